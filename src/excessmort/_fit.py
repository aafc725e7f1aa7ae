"""``fit()`` and the ``Fit`` result: weekly and cumulative excess for series and their aggregates.

A :class:`Fit` holds the panel and the baseline's result (arrays); its properties build frames on
demand. ``Fit.by(*strata)`` is the same object viewed over sums of series (England is ``by()`` when
the strata are the regions): sums of expected deaths get variances from the baseline's covariance,
never a sum of weekly interval widths.
"""

from __future__ import annotations

import warnings
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from ._typing import Engine, IntArray
from .baselines import Baseline, BaselineResult, get_baseline
from .exceptions import ConvergenceWarning, DispersionWarning, InputError
from .excess import excess_arrays, validate_level
from .panel import Panel
from .regions import ENGLAND_CODE, REGIONS
from .weeks import reference_bounds, to_timestamp

__all__ = ["DEFAULT_REFERENCE", "Fit", "fit"]

#: The reference period used when none is given: the five years before the pandemic.
DEFAULT_REFERENCE = ("2015-01-01", "2019-12-31")

WEEKLY_COLUMNS = (
    "observed",
    "expected",
    "expected_lower",
    "expected_upper",
    "excess",
    "excess_lower",
    "excess_upper",
    "z_score",
    "p_score",
)
CUMULATIVE_COLUMNS = ("observed", "expected", "excess", "excess_lower", "excess_upper")

# Phi outside this range is flagged: counts of deaths are rarely under-dispersed, and phi above 10
# usually means a structural break or misspecified strata.
DISPERSION_RANGE = (0.2, 10.0)


def _as_tidy(frame: Any, keep_wales: bool | None = None) -> pd.DataFrame:
    """Validate a user's input with :func:`excessmort.read` (frames are not modified).

    ``keep_wales=None`` keeps Wales when the frame came from ``read(..., keep_wales=True)``.
    """
    from .io import read

    if keep_wales is None:
        attrs = frame.attrs.get("excessmort", {}) if isinstance(frame, pd.DataFrame) else {}
        keep_wales = bool(attrs.get("keep_wales", False))
    return read(frame, keep_wales=keep_wales)


def _as_panel(frame: Any, keep_wales: bool | None = None) -> Panel:
    """``Panel.from_frame(_as_tidy(frame, keep_wales))``, without building the tidy frame."""
    from .io import _read_panel

    if keep_wales is None:
        attrs = frame.attrs.get("excessmort", {}) if isinstance(frame, pd.DataFrame) else {}
        keep_wales = bool(attrs.get("keep_wales", False))
    return _read_panel(frame, keep_wales=keep_wales)  # type: ignore[no-any-return]


def fit(
    frame: Any,
    *,
    baseline: str | Baseline = "quasipoisson",
    reference: tuple[Any, Any] | None = DEFAULT_REFERENCE,
    level: float = 0.95,
    engine: Engine = "auto",
    keep_wales: bool | None = None,
    progress: bool | None = None,
    **options: Any,
) -> Fit:
    """Fit expected deaths for every series at once and return the result.

    Parameters
    ----------
    frame : DataFrame or path
        Long format, one row per series and week (see :func:`excessmort.read`).
    baseline : str or Baseline
        ``"quasipoisson"`` (default), ``"poisson"``, ``"five_year_average"``, ``"euromomo"``,
        ``"pooled"``, or a baseline object with options.
    reference : (start, end)
        The reference period the baseline is fitted on (inclusive; a bare year as ``end`` means its
        31 December). Default 2015-01-01 to 2019-12-31.
    level : float
        Interval level in (0, 1).
    engine : {"auto", "numba", "numpy"}
        Kernel engine.
    keep_wales : bool, optional
        Keep Wales (W92000004) as an area of its own; it is never summed into England. By default
        Wales is kept only when ``frame`` came from ``read(..., keep_wales=True)``.
    progress : bool, optional
        Show a progress bar over the stages of the fit (``None``: only above 10,000 series and when
        a terminal or notebook can show it; ``EXCESSMORT_PROGRESS=0`` silences it everywhere).
    **options
        Options of the named baseline, e.g. ``harmonics=3`` or ``dispersion_floor=0``.

    Returns
    -------
    Fit

    Raises
    ------
    InputError
        Bad input data (naming column, value and row), an unknown baseline or option, a level outside
        (0, 1), or a reference period outside the data.

    Examples
    --------
    >>> import excessmort as em
    >>> f = em.fit(em.demo_data(), reference=("2015-01-01", "2019-12-31"))
    >>> f.weekly.columns[-9:].tolist()
    ['observed', 'expected', 'expected_lower', 'expected_upper', 'excess', 'excess_lower', 'excess_upper', 'z_score', 'p_score']
    """
    if hasattr(frame, "npartitions") and hasattr(
        frame, "to_delayed"
    ):  # Dask: fitted partition by partition
        from ._dask import fit_dask

        return fit_dask(
            frame,
            baseline=baseline,
            reference=reference,
            level=level,
            engine=engine,  # type: ignore[return-value]
            keep_wales=keep_wales,
            **options,
        )
    level = validate_level(level)
    model = get_baseline(baseline, **options)
    panel = _as_panel(frame, keep_wales)
    from ._progress import PROGRESS_MIN_SERIES, Stages

    show = progress if progress is not None else panel.n_series > PROGRESS_MIN_SERIES
    with Stages(
        ["read", "panel", "baseline", "checks"],
        desc=f"fitting {panel.n_series:,} series",
        show=show,
    ) as stages:
        stages.advance("read")
        stages.advance("panel")
        if reference is not None:
            reference = _check_reference(panel, reference)
        result = model.fit(panel, reference=reference, engine=engine)
        stages.advance("baseline")
        out = Fit(panel=panel, result=result, model=model, reference=reference, level=level)
        out._warn()
        stages.advance("checks")
    return out


def _check_reference(panel: Panel, reference: tuple[Any, Any]) -> tuple[pd.Timestamp, pd.Timestamp]:
    try:
        start, end = reference
        lo, hi = reference_bounds(start, end)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"reference must be a (start, end) pair of dates, got {reference!r}",
            column="reference",
            value=reference,
        ) from exc
    first, last = panel.weeks[0], panel.weeks[-1]
    if hi < lo or hi < first or lo > last:
        raise InputError(
            f"the reference period {lo.date()} to {hi.date()} lies outside the data, which run from "
            f"{first.date()} to {last.date()}",
            column="week_ending",
            value=reference,
        )
    return lo, hi


class Fit:
    """Expected and excess deaths for every series (or, after :meth:`by`, for sums of series).

    Attributes
    ----------
    panel : Panel
    result : BaselineResult
    model : Baseline
    reference : (Timestamp, Timestamp) or None
    level : float
    """

    def __init__(
        self,
        *,
        panel: Panel,
        result: BaselineResult,
        model: Baseline,
        reference: tuple[pd.Timestamp, pd.Timestamp] | None,
        level: float,
        by: tuple[str, ...] | None = None,
    ) -> None:
        self.panel = panel
        self.result = result
        self.model = model
        self.reference = reference
        self.level = level
        self._by = by

    # ------------------------------------------------------------------ groupings
    @property
    def baseline(self) -> str:
        """Name of the baseline."""
        return self.result.baseline

    @property
    def strata(self) -> list[str]:
        """The strata of the rows of this view."""
        return list(self.panel.strata if self._by is None else self._by)

    @property
    def weeks(self) -> pd.DatetimeIndex:
        """Week-ending dates [T]."""
        return self.panel.weeks

    def by(self, *strata: str) -> Fit:
        """The same accessors with rows summed over every stratum not named.

        ``by()`` is the total: England when the strata are the regions. Areas outside England (Wales)
        are never summed into an aggregate over regions.

        Raises
        ------
        InputError
            For a stratum the data do not have.
        """
        unknown = [s for s in strata if s not in self.panel.strata]
        if unknown:
            raise InputError(
                f"unknown strata {unknown}; this fit's strata are {self.panel.strata}",
                column="by",
                value=unknown,
            )
        return Fit(
            panel=self.panel,
            result=self.result,
            model=self.model,
            reference=self.reference,
            level=self.level,
            by=tuple(strata),
        )

    @cached_property
    def _grouping(self) -> tuple[IntArray, pd.DataFrame, np.ndarray]:
        """(group id per series [S] (-1: left out), group keys [G], included series mask [S])."""
        panel = self.panel
        include = np.ones(panel.n_series, dtype=bool)
        if self._by is None:
            return np.arange(panel.n_series, dtype=np.int64), panel.keys, include
        sums_regions = "region" in panel.strata and "region" not in self._by
        if sums_regions:
            include = panel.keys["region"].astype(str).isin(list(REGIONS)).to_numpy()
        ids, keys = panel.take(include).group_index(self._by)
        groups = np.full(panel.n_series, -1, dtype=np.int64)
        groups[include] = ids
        if sums_regions:
            keys = keys.copy()
            keys.insert(0, "region", pd.Categorical([ENGLAND_CODE] * len(keys)))
        return groups, keys, include

    def _sum(self, values: np.ndarray) -> np.ndarray:
        from .baselines._util import group_sum

        groups, keys, include = self._grouping
        if self._by is None:
            return values
        return group_sum(values[include], groups[include], len(keys))

    def _masked_result_call(self, method: str, *args: Any) -> np.ndarray:
        groups, keys, _ = self._grouping
        if self._by is None:
            return getattr(self.result, method)(groups, len(keys), *args)
        # Series outside every group go to a spare group that is then dropped.
        spare = len(keys)
        g = np.where(groups < 0, spare, groups)
        return getattr(self.result, method)(g, spare + 1, *args)[:spare]

    # ------------------------------------------------------------------ weekly
    @cached_property
    def _weekly_arrays(self) -> dict[str, np.ndarray]:
        res = self.result
        observed = self._sum(self.panel.deaths)
        mu = self._sum(res.mu)
        obs_var = self._sum(res.obs_variance())
        param_var = self._masked_result_call("param_variance_weekly")
        return excess_arrays(observed, mu, obs_var, param_var, self.level, res.prediction)

    @cached_property
    def weekly(self) -> pd.DataFrame:
        """Strata..., week_ending, observed, expected and its bounds, excess and its bounds, z_score,
        p_score: one row per series (or group) and week."""
        arrays = dict(self._weekly_arrays)
        _, keys, _ = self._grouping
        for c in ("observed", "expected"):  # the panel's and the baseline's own arrays: copied
            if arrays[c] is self.panel.deaths or arrays[c] is self.result.mu:
                arrays[c] = arrays[c].copy()
        return self.panel.to_frame({c: arrays[c] for c in WEEKLY_COLUMNS}, keys=keys, adopt=True)

    # ------------------------------------------------------------------ cumulative
    def _window(self, start: Any, end: Any) -> np.ndarray:
        lo = to_timestamp(start)
        hi = to_timestamp(end)
        weeks = self.weeks
        if hi < lo:
            raise InputError(
                f"cumulative: end {hi.date()} is before start {lo.date()}", column="end", value=end
            )
        if lo > weeks[-1] or hi < weeks[0]:
            raise InputError(
                f"cumulative period {lo.date()} to {hi.date()} lies outside the data, which run from "
                f"{weeks[0].date()} to {weeks[-1].date()}",
                column="week_ending",
                value=(start, end),
            )
        return np.asarray((weeks >= lo) & (weeks <= hi))

    def cumulative(self, start: Any = None, end: Any = None) -> pd.DataFrame:
        """Cumulative observed, expected and excess over the weeks ending in [start, end].

        The variance of the cumulative excess is g' V g + sum phi mu, with g = sum_t mu_t x_t: the
        shared coefficients make weekly errors correlated, so weekly variances are not summed.
        Defaults: from the week after the reference period to the last week.

        Raises
        ------
        InputError
            When the period lies outside the data (the message gives both ranges).
        """
        if start is None:
            start = (self.reference[1] + pd.Timedelta(days=1)) if self.reference else self.weeks[0]
        if end is None:
            end = self.weeks[-1]
        window = self._window(start, end)
        res = self.result
        observed = self._sum(np.sum(self.panel.deaths[:, window], axis=1))
        mu = self._sum(np.sum(res.mu[:, window], axis=1))
        obs_var = self._sum(np.sum(res.obs_variance()[:, window], axis=1))
        param_var = self._masked_result_call("param_variance_window", window)
        arrays = excess_arrays(observed, mu, obs_var, param_var, self.level, res.prediction)
        _, keys, _ = self._grouping
        out = keys.copy()
        out["start"] = self.weeks[window][0]
        out["end"] = self.weeks[window][-1]
        out["n_weeks"] = int(window.sum())
        for c in CUMULATIVE_COLUMNS:
            out[c] = arrays[c]
        out["p_score"] = arrays["p_score"]
        return out

    def cumulative_path(self, start: Any = None, end: Any = None) -> pd.DataFrame:
        """The running cumulative excess from ``start``: for every week ending in [start, end], the
        figures :meth:`cumulative` gives for (start, that week).

        Sums are running sums; the parameter variance g' V g is the baseline's, for each window
        [start, week] (one call per week on arrays: the same variance as :meth:`cumulative`, never a
        sum of weekly variances).

        Returns
        -------
        DataFrame
            strata..., week_ending, observed, expected, excess, excess_lower, excess_upper, p_score.

        Raises
        ------
        InputError
            When the period lies outside the data.
        """
        if start is None:
            start = (self.reference[1] + pd.Timedelta(days=1)) if self.reference else self.weeks[0]
        if end is None:
            end = self.weeks[-1]
        window = self._window(start, end)
        res = self.result
        observed = self._sum(np.cumsum(self.panel.deaths[:, window], axis=1))
        mu = self._sum(np.cumsum(res.mu[:, window], axis=1))
        obs_var = self._sum(np.cumsum(res.obs_variance()[:, window], axis=1))
        param_var = self._masked_result_call("param_variance_running", window)
        arrays = excess_arrays(observed, mu, obs_var, param_var, self.level, res.prediction)
        _, keys, _ = self._grouping
        n_rows, n_weeks = mu.shape
        out = keys.iloc[np.repeat(np.arange(n_rows), n_weeks)].reset_index(drop=True)
        out["week_ending"] = np.tile(self.weeks[window].to_numpy(), n_rows)
        for c in (*CUMULATIVE_COLUMNS, "p_score"):
            out[c] = np.asarray(arrays[c]).reshape(-1)
        return out

    # ------------------------------------------------------------------ models
    @property
    def coefficients(self) -> pd.DataFrame:
        """One row per series: strata, model terms, dispersion, converged, n_iter."""
        return self.result.coefficients(self.panel.keys)

    @property
    def diagnostics(self) -> pd.DataFrame:
        """One row per series: converged, n_iter, dispersion before and after the floor, and any
        further per-series diagnostics of the baseline (deviance, Pearson chi2, weeks fitted)."""
        res = self.result
        out = self.panel.keys.copy()
        out["converged"] = res.converged
        out["n_iter"] = res.n_iter
        out["dispersion_raw"] = res.dispersion_raw
        out["dispersion"] = res.dispersion
        for k in ("deviance", "pearson", "n_obs"):
            if k in res.info:
                out[k] = res.info[k]
        return out

    @property
    def not_converged(self) -> list[str]:
        """Readable labels of the series whose fit did not converge."""
        return [self.panel.label(s) for s in np.flatnonzero(~self.result.converged)]

    def _warn(self) -> None:
        bad = self.not_converged
        if bad:
            shown = "; ".join(bad[:10]) + (f"; and {len(bad) - 10} more" if len(bad) > 10 else "")
            warnings.warn(
                f"{len(bad)} of {self.panel.n_series} series did not converge ({self.baseline}, "
                f"max_iter={getattr(self.model, 'max_iter', 'n/a')}): {shown}. Their rows are kept with "
                "NaN estimates; see Fit.diagnostics.",
                ConvergenceWarning,
                stacklevel=3,
            )
        phi = self.result.dispersion_raw
        lo, hi = DISPERSION_RANGE
        odd = np.flatnonzero(np.isfinite(phi) & ((phi < lo) | (phi > hi)))
        if odd.size:
            shown = "; ".join(f"{self.panel.label(s)} (phi={phi[s]:.3g})" for s in odd[:10])
            warnings.warn(
                f"implausible dispersion outside [{lo}, {hi}] in {odd.size} series: {shown}",
                DispersionWarning,
                stacklevel=3,
            )

    # ------------------------------------------------------------------ display
    def __repr__(self) -> str:
        ref = (
            f"{self.reference[0].date()}..{self.reference[1].date()}" if self.reference else "none"
        )
        n_bad = int((~self.result.converged).sum())
        view = f" by {', '.join(self._by) or 'total'}" if self._by is not None else ""
        return (
            f"<excessmort.Fit {self.baseline}{view}: {self.panel.n_series} series, "
            f"{self.weeks[0].date()}..{self.weeks[-1].date()}, reference {ref}, {n_bad} not converged>"
        )

    # ------------------------------------------------------------------ summary (issue 7)
    def _summary_key(self) -> str | None:
        """The stratum the summary is by: region when present, else the first stratum."""
        strata = self.strata
        if "region" in strata:
            return "region"
        return strata[0] if strata else None

    def summary(self, start: Any = None, end: Any = None) -> pd.DataFrame:
        """Headline numbers by region (or by the first stratum when there is no region).

        One row per region with observed, expected and excess deaths, the excess interval and the
        P-score, over the weeks ending in [start, end], then a total row (England: the sum of the
        English regions; ``All`` for another stratum) when there is more than one row.

        Parameters
        ----------
        start, end : date-like, optional
            Default: from the week after the reference period to the last week (as
            :meth:`cumulative`).

        Returns
        -------
        DataFrame
            Columns: the stratum (``region`` codes), ``name`` (region names, with region),
            observed, expected, excess, excess_lower, excess_upper, p_score. ``attrs["period"]``
            holds the (first, last) week ending summed.

        Raises
        ------
        InputError
            When the period lies outside the data.

        Examples
        --------
        >>> import excessmort as em
        >>> s = em.fit(em.demo_data()).summary("2020-03-01", "2020-12-31")
        >>> s["region"].tolist()[-1], len(s)
        ('E92000001', 10)
        """
        from .regions import region_name

        key = self._summary_key()
        cols = ["observed", "expected", "excess", "excess_lower", "excess_upper", "p_score"]
        if key is None:
            cum = self.cumulative(start, end)
            out = cum[cols].reset_index(drop=True)
        else:
            cum = self.by(key).cumulative(start, end)
            rows = cum[[key, *cols]].copy()
            rows[key] = rows[key].astype(str).astype(object)
            if len(rows) > 1:
                total = self.by().cumulative(start, end)
                label = str(total[key].iloc[0]) if key in total.columns else "All"
                total = total[cols].copy()
                total.insert(0, key, [label])
                rows = pd.concat([rows, total], ignore_index=True)
            if key == "region":
                rows.insert(1, "name", [region_name(str(c)) for c in rows["region"]])
            out = rows.reset_index(drop=True)
        out.attrs["period"] = (pd.Timestamp(cum["start"].iloc[0]), pd.Timestamp(cum["end"].iloc[0]))
        return out

    def _header(self) -> list[tuple[str, str]]:
        """(field, value) pairs of the display header."""
        ref = (
            f"{self.reference[0].date()} to {self.reference[1].date()}"
            if self.reference
            else "none"
        )
        phi = self.result.dispersion_raw
        finite = phi[np.isfinite(phi)]
        phi_range = f"{finite.min():.3g} to {finite.max():.3g}" if finite.size else "n/a"
        n_bad = int((~self.result.converged).sum())
        header = [
            ("baseline", self.baseline),
            ("reference period", ref),
            ("level", f"{self.level:g}"),
            (
                "series",
                f"{self.panel.n_series:,}"
                + (f" ({', '.join(self.panel.strata)})" if self.panel.strata else ""),
            ),
            ("weeks", f"{self.panel.n_weeks:,}: {self.weeks[0].date()} to {self.weeks[-1].date()}"),
            ("not converged", f"{n_bad:,}"),
            ("dispersion (phi)", phi_range),
        ]
        if self._by is not None:
            header.insert(4, ("view", f"by {', '.join(self._by) or 'total'}"))
        return header

    def _render(self, style: str, decimals: int, start: Any = None, end: Any = None) -> str:
        from ._display import render

        title = f"excessmort.Fit: {self.baseline}"
        try:
            table: pd.DataFrame | None = self.summary(start, end)
        except InputError as exc:
            table, caption = None, f"no summary: {exc}"
        else:
            lo, hi = table.attrs["period"]
            caption = (
                f"Cumulative deaths over the weeks ending {lo.date()} to {hi.date()}; P-score in %."
            )
        return render(
            title,
            self._header(),
            table,
            style=style,
            decimals=decimals,
            level=self.level,
            caption=caption,
        )

    def print_summary(
        self, decimals: int = 2, style: str = "ascii", *, start: Any = None, end: Any = None
    ) -> None:
        """Print the header block and the summary table (:meth:`summary`).

        Parameters
        ----------
        decimals : int
            Decimal places of the numbers.
        style : {"ascii", "html", "latex"}
        start, end : date-like, optional
            The period of the summary (default as :meth:`summary`).

        Raises
        ------
        InputError
            For an unknown style (the message lists the allowed ones).
        """
        print(self._render(style, decimals, start, end))

    def _repr_html_(self) -> str:
        """The header block and the summary table by region, for Jupyter."""
        return self._render("html", 0)

    # ------------------------------------------------------------------ selection (issue 7)
    def select(self, **criteria: Any) -> Fit:
        """The fit of the series whose strata take the given values.

        ``fit.select(region="London", sex="F")``: a value may be one value or a list; regions may be
        named by code or name (``"London"``, ``"E12000007"``, ``"east"``). The result is a
        :class:`Fit` over those series only (the panel and the baseline's result restricted to
        them, nothing refitted), so ``weekly`` and ``cumulative`` equal the rows of the full fit.

        Returns
        -------
        Fit

        Raises
        ------
        InputError
            For a stratum the data lack, or a value no series has (the message lists the
            available ones), or criteria no series meets together.

        Examples
        --------
        >>> import excessmort as em
        >>> f = em.fit(em.demo_data())
        >>> f.select(region="London", sex="F").panel.n_series
        4
        """
        from .regions import normalise_region

        keys = self.panel.keys
        mask = np.ones(self.panel.n_series, dtype=bool)
        for column, wanted in criteria.items():
            if column not in self.panel.strata:
                raise InputError(
                    f"select: unknown stratum {column!r}; this fit's strata are {self.panel.strata}",
                    column=column,
                    value=wanted,
                )
            values = (
                list(wanted)
                if isinstance(wanted, list | tuple | set | np.ndarray | pd.Index)
                else [wanted]
            )
            present = keys[column].astype(str)
            available = sorted(pd.unique(present))
            chosen = []
            for v in values:
                text = str(v)
                if column == "region" and text not in available:
                    text = normalise_region(text, allow_wales=True) or text
                if text not in available:
                    raise InputError(
                        f"select: {column}={v!r} matches no series; available values are {available}",
                        column=column,
                        value=v,
                    )
                chosen.append(text)
            mask &= present.isin(chosen).to_numpy()
        if not mask.any():
            raise InputError(
                f"select: no series has {criteria}", column=", ".join(criteria), value=criteria
            )
        idx = np.flatnonzero(mask)
        return Fit(
            panel=self.panel.take(idx),
            result=self.result.take(idx),
            model=self.model,
            reference=self.reference,
            level=self.level,
            by=self._by,
        )

    def __getitem__(self, region: Any) -> Fit:
        """``fit["E12000007"]`` (or ``fit["London"]``): :meth:`select` of one region."""
        if "region" not in self.panel.strata:
            raise InputError(
                f"fit[{region!r}] selects a region, but this fit's strata are {self.panel.strata}; "
                "use fit.select(stratum=value)",
                column="region",
                value=region,
            )
        return self.select(region=region)

    # ------------------------------------------------------------------ plots (issue 7)
    def plot(self, kind: str = "weekly", strata: Any = None, ax: Any = None, **kwargs: Any) -> Any:
        """Plot one series or aggregate; see :mod:`excessmort.plotting`.

        Parameters
        ----------
        kind : {"weekly", "excess", "cumulative", "expected"}
            Observed vs expected with the prediction band; weekly excess bars with intervals;
            cumulative excess with its band; expected deaths with their confidence band.
        strata : dict or str, optional
            Which series or aggregate (``{"region": "London", "sex": "F"}``, or a region); default
            the only row, or the total (England).
        ax : matplotlib Axes, optional
        **kwargs
            ``start``/``end`` and matplotlib options passed on.

        Returns
        -------
        matplotlib.axes.Axes

        Raises
        ------
        InputError
            For an unknown kind (the message lists the allowed ones).
        ImportError
            When matplotlib (the ``excessmort[plot]`` extra) is missing.
        """
        from . import plotting

        kinds = {
            "weekly": plotting.plot_weekly,
            "excess": plotting.plot_excess,
            "cumulative": plotting.plot_cumulative,
            "expected": plotting.plot_expected,
        }
        if kind not in kinds:
            raise InputError(
                f"kind must be one of {list(kinds)}, got {kind!r}", column="kind", value=kind
            )
        return kinds[kind](self, strata=strata, ax=ax, **kwargs)
