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

from ._dispersion import judge_dispersion, mean_fitted_count
from ._frames import add_region_name
from ._rates import add_rates
from ._typing import Engine, IntArray
from .baselines import Baseline, BaselineResult, get_baseline
from .exceptions import ConvergenceWarning, DispersionWarning, InputError, MissingDataWarning
from .excess import excess_arrays, validate_level
from .panel import Panel
from .periods import Period, period_table, resolve_period
from .regions import ENGLAND_CODE, REGIONS, WALES_CODE
from .weeks import reference_bounds

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


def repeated_keys(keys: pd.DataFrame, n_weeks: int) -> dict[str, Any]:
    """The columns of ``keys`` (with ``region_name`` after ``region``), each row repeated
    ``n_weeks`` times: categorical strata through their integer codes
    (``Categorical.from_codes``), never through the objects."""
    named = add_region_name(keys.copy())
    out: dict[str, Any] = {}
    for c in named.columns:
        col = named[c]
        if isinstance(col.dtype, pd.CategoricalDtype):
            codes = np.repeat(col.cat.codes.to_numpy(), n_weeks)
            out[c] = pd.Categorical.from_codes(codes, dtype=col.dtype)
        else:
            out[c] = col.array.take(np.repeat(np.arange(len(col)), n_weeks))
    return out


def week_table(weeks: pd.DatetimeIndex, n_rows: int) -> dict[str, Any]:
    """``week_ending`` and its week numbers (:func:`excessmort.periods.week_columns`, computed on
    the T weeks once) for ``n_rows`` rows of T weeks each. Columns with the same numbers (the ONS
    ``year``/``week`` of Friday weeks are the ISO ones) are one Series, tiled once: a frame built
    from them shares it, and copy-on-write copies whichever column is edited."""
    from ._kernels import tile
    from .periods import week_columns

    out: dict[str, Any] = {"week_ending": tile(weeks.to_numpy(), n_rows)}
    tiled: list[tuple[np.ndarray, pd.Series]] = []
    for name, values in week_columns(weeks).items():
        same = next((col for v, col in tiled if np.array_equal(v, values)), None)
        if same is None:
            same = pd.Series(tile(values, n_rows), copy=False)
            tiled.append((values, same))
        out[name] = same
    return out


#: The interval columns of the weekly frame, in order, and the arrays they come from.
_WEEKLY_FROM = (
    ("observed", "observed"),
    ("expected", "expected"),
    ("expected_lower", "expected_lower"),
    ("expected_upper", "expected_upper"),
    ("prediction_lower", "lower"),
    ("prediction_upper", "upper"),
    ("excess", "excess"),
    ("excess_lower", "excess_lower"),
    ("excess_upper", "excess_upper"),
    ("z_score", "z_score"),
    ("p_score", "p_score"),
    ("ratio", "ratio"),
    ("ratio_lower", "ratio_lower"),
    ("ratio_upper", "ratio_upper"),
)


def weekly_frame(
    weeks: pd.DatetimeIndex, keys: pd.DataFrame, arrays: dict[str, np.ndarray]
) -> pd.DataFrame:
    """The weekly frame of rows ``keys`` from the arrays of :func:`excessmort.excess.excess_arrays`.

    Assembled without copying the numbers: every interval column adopts its array (a row of the
    fused kernel's buffer, or the panel's own observed and expected) as a flat view; strata are
    categoricals from repeated codes. The frame writes into those arrays if edited in place: a
    caller that keeps using them hands out ``frame.copy(deep=False)`` and keeps the frame alive
    (pandas' copy-on-write then copies an edited column instead).
    """
    n_rows = len(keys)
    cols: dict[str, Any] = repeated_keys(keys, len(weeks))
    cols.update(week_table(weeks, n_rows))
    for name, src in _WEEKLY_FROM:
        values = arrays.get(src)
        if values is None and src.startswith("ratio"):
            from .excess import ratio_columns

            ratio = ratio_columns(
                arrays["observed"], arrays["expected"], arrays["lower"], arrays["upper"]
            )
            arrays = {**arrays, "ratio": ratio[0], "ratio_lower": ratio[1], "ratio_upper": ratio[2]}
            values = arrays[src]
        cols[name] = np.asarray(values, dtype=np.float64).reshape(-1)
    return pd.DataFrame(cols, copy=False)


def cumulative_frame(
    keys: pd.DataFrame,
    weeks: pd.DatetimeIndex,
    window: np.ndarray,
    arrays: dict[str, np.ndarray],
    label: str | None = None,
) -> pd.DataFrame:
    """The cumulative frame of rows ``keys`` over the weeks of ``window``."""
    out = add_region_name(keys.copy())
    if label is not None:
        out["period"] = label
    out["start"] = weeks[window][0]
    out["end"] = weeks[window][-1]
    out["n_weeks"] = int(window.sum())
    for c in CUMULATIVE_COLUMNS:
        out[c] = arrays[c]
    out["p_score"] = arrays["p_score"]
    return out


def _per_series_glm(res: BaselineResult) -> bool:
    """A per-series GLM result with the default variances (phi mu; phi mu^2 x' (X'WX)^-1 x)."""
    from .baselines.glm import GLMResult

    cls = type(res)
    return (
        isinstance(res, GLMResult)
        and cls.obs_variance is BaselineResult.obs_variance
        and cls.param_variance_weekly is GLMResult.param_variance_weekly
    )


def _as_tidy(frame: Any, keep_wales: bool | None = None) -> pd.DataFrame:
    """Validate a user's input with :func:`excessmort.read` (frames are not modified).

    ``keep_wales=None`` keeps Wales when the frame came from ``read(..., keep_wales=True)``.
    """
    from .io import read

    attrs = frame.attrs.get("excessmort", {}) if isinstance(frame, pd.DataFrame) else {}
    if keep_wales is None:
        keep_wales = bool(attrs.get("keep_wales", False))
    return read(
        frame,
        keep_wales=keep_wales,
        estimated_counts=bool(attrs.get("estimated_counts", False)),
    )


def _as_panel(
    frame: Any, keep_wales: bool | None = None, engine: str = "auto"
) -> tuple[Panel, bool]:
    """``Panel.from_frame(_as_tidy(frame, keep_wales))`` without building the tidy frame, and
    whether the counts are estimates (``read(..., estimated_counts=True)``); ``engine`` picks the
    row kernels of the read as it picks the fit's kernels."""
    from .io import _read_panel

    attrs = frame.attrs.get("excessmort", {}) if isinstance(frame, pd.DataFrame) else {}
    if keep_wales is None:
        keep_wales = bool(attrs.get("keep_wales", False))
    estimated = bool(attrs.get("estimated_counts", False))
    panel = _read_panel(frame, keep_wales=keep_wales, estimated=estimated, engine=engine)
    return panel, estimated


_ONS_MONTHLY_OPTIONS = (
    "age_group",
    "sex",
    "geography",
    "coarse_age",
    "predict_from",
    "intervals",
    "max_iter",
    "tol",
)


def _is_monthly(frame: Any) -> bool:
    """A frame of months (``year`` and ``month``, no ``week_ending``): ONS's monthly layout."""
    columns = getattr(frame, "columns", ())
    return "year" in columns and "month" in columns and "week_ending" not in columns


def fit(
    frame: Any,
    *,
    baseline: str | Baseline = "quasipoisson",
    reference: tuple[Any, Any] | None = DEFAULT_REFERENCE,
    level: float = 0.95,
    engine: Engine = "auto",
    keep_wales: bool | None = None,
    progress: bool | None = None,
    allow_pandemic: bool = False,
    allow_short_history: bool = False,
    dependence: bool = True,
    exclude: Any = None,
    dispersion_check: Any = "auto",
    **options: Any,
) -> Fit:
    """Fit expected deaths for every series at once and return the result.

    Parameters
    ----------
    frame : DataFrame or path
        Long format, one row per series and week (see :func:`excessmort.read`). With
        ``baseline="ons2024"``, a frame of months (columns ``year`` and ``month``, no
        ``week_ending``) gets ONS's monthly model instead and returns an
        :class:`~excessmort.baselines.ons2024.OnsMonthlyFit` (``.monthly``, ``.cumulative``,
        ``.by``).
    baseline : str or Baseline
        A registered name (:func:`excessmort.baselines.available`): ``"quasipoisson"``
        (default), ``"poisson"``, ``"five_year_average"``, ``"euromomo"``, ``"pooled"``,
        ``"farrington"``, ``"ons2024"``, ``"wmd"``, ``"negative_binomial"``; or a baseline class
        or object with options.
    reference : (start, end)
        The reference period: the data every baseline rests on (inclusive; a bare year as ``end``
        means its 31 December). Default 2015-01-01 to 2019-12-31. The GLM baselines (and pooled,
        EuroMOMO) are fitted on its weeks; the five-year average takes its history years from it
        (no year after it: 2021's average is 2015-2019's unless ``rolling=True``).
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
    allow_pandemic : bool, default False
        Allow a reference period that reaches into the pandemic weeks
        (:data:`excessmort.validate.PANDEMIC`, March 2020 to 2021); refused otherwise.
    allow_short_history : bool, default False
        Fit series with fewer observed reference weeks than the baseline's
        ``min_reference_weeks`` on what they have (a series with none is flagged as not converged);
        refused otherwise, naming the series.
    dependence : bool, default True
        Estimate the residual dependence across series and weeks on the reference weeks
        (:mod:`excessmort.dependence`) and use it in every variance of a sum: aggregates of
        :meth:`Fit.by`, cumulative windows and running paths. ``False`` assumes rows independent
        given the baseline (sums of phi mu), as published intervals of producers do; the weekly
        interval of a single series is the same either way.
    exclude : sequence of (start, end) or periods, optional
        Windows inside the reference period that no baseline uses (R excessmort's ``exclude``),
        e.g. ``[("2018-01-01", "2018-03-31")]`` for a bad influenza winter, or a year ``[2020]``.
        Each is a period as :meth:`Fit.cumulative` takes it. The GLM baselines leave those weeks
        out of the fit; the five-year average replaces a history week in them by the same week of
        the next earlier year. ``exclude_years`` of :class:`~excessmort.FiveYearAverage` is the
        same idea by whole years.
    dispersion_check : "auto", float, (low, high) or None
        When to warn about implausible dispersion (:class:`~excessmort.DispersionWarning`):
        ``"auto"`` judges phi against what the counts' size makes ordinary (phi above
        2 (1 + cv^2 mean count) with cv = 0.1, and above 10, or below 0.2; quiet on ONS's regions,
        whose phi of 5-15 is ordinary for 500-1,500 deaths a week); a float sets cv; a pair a
        fixed range; ``None`` never warns.
    **options
        Options of the named baseline, e.g. ``harmonics=3`` or ``dispersion_floor=0``.

    Returns
    -------
    Fit

    Raises
    ------
    InputError
        Bad input data (naming column, value and row), an unknown baseline or option, a level outside
        (0, 1), or a reference period that cannot be fitted honestly: reversed, outside the data,
        into the pandemic weeks, or holding fewer observed weeks in a series than the baseline's
        ``min_reference_weeks``.

    Examples
    --------
    >>> import excessmort as em
    >>> f = em.fit(em.demo_data(), reference=("2015-01-01", "2019-12-31"))
    >>> f.by().cumulative(2020)[["period", "n_weeks"]].to_dict("records")
    [{'period': '2020 (ONS registration year)', 'n_weeks': 53}]
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
            dependence=dependence,
            dispersion_check=dispersion_check,
            allow_pandemic=allow_pandemic,
            allow_short_history=allow_short_history,
            exclude=exclude,
            **options,
        )
    level = validate_level(level)
    model = get_baseline(baseline, **options)
    if _is_monthly(frame) and model.name == "ons2024":  # ONS's monthly model: a frame of months
        from .baselines.ons2024 import fit_ons_monthly

        return fit_ons_monthly(  # type: ignore[return-value]
            frame,
            **{k: getattr(model, k) for k in _ONS_MONTHLY_OPTIONS if k in vars(model)},
            level=level,
            engine=engine,
        )
    panel, estimated_counts = _as_panel(frame, keep_wales, engine)
    from ._progress import PROGRESS_MIN_SERIES, Stages

    show = progress if progress is not None else panel.n_series > PROGRESS_MIN_SERIES
    with Stages(
        ["read", "panel", "baseline", "checks"],
        desc=f"fitting {panel.n_series:,} series",
        show=show,
    ) as stages:
        stages.advance("read")
        stages.advance("panel")
        excluded = _exclusion_mask(panel.weeks, exclude)
        if reference is not None:
            reference = _check_reference(
                panel,
                reference,
                model=None if allow_short_history else model,
                allow_pandemic=allow_pandemic
                or _pandemic_excluded(panel.weeks, excluded, reference),
            )
        result = _fit_baseline(model, panel, reference, engine, excluded)
        stages.advance("baseline")
        out = Fit(
            panel=panel,
            result=result,
            model=model,
            reference=reference,
            level=level,
            dependence=bool(dependence),
        )
        out.excluded = excluded
        out.estimated_counts = estimated_counts
        out._dispersion_check = dispersion_check
        out._warn()
        stages.advance("checks")
    return out


def _pandemic_excluded(
    weeks: pd.DatetimeIndex, excluded: np.ndarray | None, reference: tuple[Any, Any]
) -> bool:
    """Whether ``exclude=`` covers every pandemic week inside the reference period (so a
    reference that spans them fits none of them)."""
    if excluded is None:
        return False
    from .validate import PANDEMIC

    try:
        ref_lo, ref_hi = reference_bounds(*reference)
    except (TypeError, ValueError):
        return False  # _check_reference words the error
    lo, hi = (pd.Timestamp(d) for d in PANDEMIC)
    inside = np.asarray(
        (weeks >= max(lo, ref_lo)) & (weeks <= min(hi + pd.Timedelta(days=6), ref_hi))
    )
    return bool(inside.any() and excluded[inside].all())


def _exclusion_mask(weeks: pd.DatetimeIndex, exclude: Any) -> np.ndarray | None:
    """The weeks [T] of the exclusion windows, or None."""
    if exclude is None:
        return None
    items = [exclude] if isinstance(exclude, str | int | pd.Period) else list(exclude)
    mask = np.zeros(len(weeks), dtype=bool)
    for item in items:
        if isinstance(item, tuple | list) and len(item) == 2:
            period = resolve_period(weeks, item[0], item[1], what="exclude window")
        else:
            period = resolve_period(weeks, item, what="exclude window")
        mask |= period.mask
    return mask


def _fit_baseline(
    model: Baseline,
    panel: Panel,
    reference: tuple[pd.Timestamp, pd.Timestamp] | None,
    engine: Engine,
    excluded: np.ndarray | None,
) -> BaselineResult:
    """``model.fit``; exclusion windows go to a baseline that takes ``exclude=``, else its weeks
    are hidden from the baseline (NaN deaths: every baseline leaves missing weeks out)."""
    if excluded is None or not excluded.any():
        return model.fit(panel, reference=reference, engine=engine)
    import inspect

    if "exclude" in inspect.signature(model.fit).parameters:
        return model.fit(panel, reference=reference, engine=engine, exclude=excluded)  # type: ignore[call-arg]
    deaths = panel.deaths.copy()
    deaths[:, excluded] = np.nan
    hidden = Panel(keys=panel.keys, weeks=panel.weeks, deaths=deaths, exposure=panel.exposure)
    return model.fit(hidden, reference=reference, engine=engine)


def _check_reference(
    panel: Panel,
    reference: tuple[Any, Any],
    *,
    model: Baseline | None = None,
    allow_pandemic: bool = False,
) -> tuple[pd.Timestamp, pd.Timestamp]:
    try:
        start, end = reference
        lo, hi = reference_bounds(start, end)
    except InputError as exc:  # the period parser's own message, naming the value
        raise InputError(f"reference: {exc}", column="reference", value=reference) from exc
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"reference must be a (start, end) pair of dates, got {reference!r}",
            column="reference",
            value=reference,
        ) from exc
    from . import validate

    # The rules of validate, in order (reversed, before/after the data, pandemic), then enough
    # observed reference weeks in every series for the baseline (its min_reference_weeks).
    validate.check_reference(
        panel.weeks, (lo, hi), pandemic=None if allow_pandemic else validate.PANDEMIC
    )
    if model is not None and panel.n_series:
        need = int(getattr(model, "min_reference_weeks", 0))
        validate.check_history(panel, (lo, hi), need, baseline=getattr(model, "name", None))
    return lo, hi


def _columns(window: np.ndarray) -> Any:
    """A boolean mask of weeks as a slice when its weeks are consecutive (read through views)."""
    pos = np.flatnonzero(window)
    if pos.size and pos[-1] - pos[0] + 1 == pos.size:
        return slice(pos[0], pos[-1] + 1)
    return window


class Fit:
    """Expected and excess deaths for every series (or, after :meth:`by`, for sums of series).

    Attributes
    ----------
    panel : Panel
    result : BaselineResult
    model : Baseline
    reference : (Timestamp, Timestamp) or None
    level : float
    dependence : bool
        Whether sums carry the residual dependence estimated on the reference weeks.
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
        dependence: bool = True,
        shared: dict[str, Any] | None = None,
    ) -> None:
        self.panel = panel
        self.result = result
        self.model = model
        self.reference = reference
        self.level = level
        self._by = by
        self.dependence = bool(dependence)
        # Panel-level estimates shared by every view of this fit (the year effect of the series).
        self._shared = {} if shared is None else shared
        self.excluded: np.ndarray | None = None
        self._label: str | None = None
        self._label_over = "region"
        self._dispersion_check: Any = "auto"
        #: Whether the deaths are estimates (read with ``estimated_counts=True``).
        self.estimated_counts = False

    # ------------------------------------------------------------------ groupings
    @property
    def baseline(self) -> str:
        """Name of the baseline.

        Examples
        --------
        >>> import excessmort as em
        >>> em.fit(em.demo_data(), baseline="poisson").baseline
        'poisson'
        """
        return self.result.baseline

    @property
    def strata(self) -> list[str]:
        """The strata of the rows of this view.

        Examples
        --------
        >>> import excessmort as em
        >>> f = em.fit(em.demo_data())
        >>> f.strata, f.by("region").strata
        (['region', 'sex', 'age_group'], ['region'])
        """
        return list(self.panel.strata if self._by is None else self._by)

    @property
    def weeks(self) -> pd.DatetimeIndex:
        """Week-ending dates [T].

        Examples
        --------
        >>> import excessmort as em
        >>> str(em.fit(em.demo_data()).weeks[0].date())
        '2010-01-01'
        """
        return self.panel.weeks

    def by(self, *strata: str, groups: Any = None, over: str = "region") -> Any:
        """The same accessors with rows summed over every stratum not named.

        ``by()`` is the total: England when the strata are the regions (a national series, England
        read on its own, is its own total). Wales is never summed into an aggregate over regions;
        another country's areas in ``region`` are summed into ``All``.

        Parameters
        ----------
        *strata : str
            The strata kept (``by("region")``, ``by("region", "sex")``); a name like
            ``"Region"`` or a sequence are accepted.
        groups : mapping of str to list, optional
            Groupings of your own over the values of ``over`` (the region by default), each summed
            with its own interval from the baseline's covariance: ``groups={"England and Wales":
            ["England", "Wales"], "North": ["North East", "North West", "Yorkshire"]}``. Values
            are codes or names; ``"England"`` stands for the nine regions. Groups may overlap.
        over : str, default "region"
            The stratum ``groups`` group.

        Returns
        -------
        Fit or GroupedFit
            A view with the same accessors (``weekly``, ``cumulative``, ``totals``, ...); with
            ``groups``, one row set per group.

        Raises
        ------
        InputError
            For a stratum the data do not have (the closest one suggested), or a group value no
            series has (Wales: read it with ``keep_wales=True``).

        Examples
        --------
        >>> import excessmort as em
        >>> f = em.fit(em.demo_data())
        >>> f.by("region").cumulative(2020)["region_name"].tolist()[:2]
        ['North East', 'North West']
        >>> g = f.by(groups={"North": ["North East", "North West", "Yorkshire"]})
        >>> g.cumulative(2020)[["region", "n_weeks"]].to_dict("records")
        [{'region': 'North', 'n_weeks': 53}]
        """
        if len(strata) == 1 and not isinstance(strata[0], str) and strata[0] is not None:
            strata = tuple(strata[0])
        strata = tuple(self._stratum_name(s, "by") for s in strata)
        if groups is not None:
            from ._groups import GroupedFit

            return GroupedFit(self, groups, strata=strata, over=over)
        out = Fit(
            panel=self.panel,
            result=self.result,
            model=self.model,
            reference=self.reference,
            level=self.level,
            by=tuple(strata),
            dependence=self.dependence,
            shared=self._shared,
        )
        out._inherit(self)
        return out

    def _inherit(self, other: Fit) -> None:
        """Carry the fit-level facts (exclusions, estimated counts, checks) to a view."""
        self.excluded = other.excluded
        self.estimated_counts = other.estimated_counts
        self._dispersion_check = other._dispersion_check

    def _stratum_name(self, name: Any, what: str) -> str:
        """A stratum of this fit named as given or in another case, else an InputError with a hint."""
        from ._suggest import did_you_mean

        if name in self.panel.strata:
            return str(name)
        for s in self.panel.strata:
            if str(name).strip().lower() == s.lower():
                return s
        raise InputError(
            f"{what}: unknown strata {[name]}{did_you_mean(name, self.panel.strata)}; this fit's "
            f"strata are {self.panel.strata}",
            column="by",
            value=name,
        )

    @cached_property
    def _grouping(self) -> tuple[IntArray, pd.DataFrame, np.ndarray]:
        """(group id per series [S] (-1: left out), group keys [G], included series mask [S])."""
        panel = self.panel
        include = np.ones(panel.n_series, dtype=bool)
        if self._by is None:
            return np.arange(panel.n_series, dtype=np.int64), panel.keys, include
        label = self._label
        sums_regions = label is None and "region" in panel.strata and "region" not in self._by
        region_label = ENGLAND_CODE
        if sums_regions:
            codes = panel.keys["region"].astype(str)
            english = codes.isin(list(REGIONS)).to_numpy()
            if english.any():
                # (A selection of one region keeps the England label: the Dask engine merges the
                # partial sums of its partitions by these keys.)
                include = english
            elif (codes == ENGLAND_CODE).any():  # a national series: the total is England itself
                include = (codes == ENGLAND_CODE).to_numpy()
            else:  # another country's areas (or Wales alone): summed, labelled "All"
                include = (
                    (codes != WALES_CODE).to_numpy() if (codes != WALES_CODE).any() else include
                )
                region_label = WALES_CODE if not (codes != WALES_CODE).any() else "All"
        ids, keys = panel.take(include).group_index(self._by)
        groups = np.full(panel.n_series, -1, dtype=np.int64)
        groups[include] = ids
        if sums_regions or label is not None:
            keys = keys.copy()
            over = self._label_over if label is not None else "region"
            keys.insert(
                0, over, pd.Categorical([label if label is not None else region_label] * len(keys))
            )
        return groups, keys, include

    def _sum(self, values: np.ndarray) -> np.ndarray:
        from .baselines._util import group_sum

        groups, keys, include = self._grouping
        if self._by is None:
            return values
        return group_sum(values[include], groups[include], len(keys))

    def _masked_result_call(self, method: str, *args: Any, result: Any = None) -> np.ndarray:
        res = self.result if result is None else result
        groups, keys, _ = self._grouping
        if self._by is None:
            return getattr(res, method)(groups, len(keys), *args)
        # Series outside every group go to a spare group that is then dropped.
        spare = len(keys)
        g = np.where(groups < 0, spare, groups)
        return getattr(res, method)(g, spare + 1, *args)[:spare]

    # ------------------------------------------------------------------ dependence
    @property
    def _dependence_on(self) -> bool:
        return self.dependence and self.result.dependence_applies

    @property
    def _year_effect(self) -> Any:
        """The panel's year effect (:class:`excessmort.dependence.YearEffect`), estimated once."""
        if "year" not in self._shared:
            from .dependence import estimate_year_effect

            self._shared["year"] = estimate_year_effect(self.result, self.panel.deaths, self.weeks)
        return self._shared["year"]

    @property
    def _dependence_result(self) -> Any:
        """The result whose parameter variances carry the residual dependence: for coefficients
        shared by every series (the pooled model) the same fit with V replaced by the sandwich of
        the whole panel (:func:`excessmort.dependence.shared_coefficient_cov`); otherwise the result
        itself (its rows' factors are applied by the dependence model)."""
        res = self.result
        if not (self._dependence_on and getattr(res, "shared_coefficients", False)):
            return res
        if "shared_cov" not in self._shared:
            from .dependence import shared_coefficient_cov

            self._shared["shared_cov"] = shared_coefficient_cov(res, self.panel.deaths)
        return res.with_cov(self._shared["shared_cov"])

    def _param_floor(self, method: str, *args: Any) -> np.ndarray | None:
        """``method``'s parameter variances from the sandwich of coefficients shared by every series
        (a lower bound of the dependent parameter part), or None for per-series coefficients."""
        dres = self._dependence_result
        if dres is self.result:
            return None
        return self._masked_result_call(method, *args, result=dres)

    def _panel_state(self) -> dict[str, Any] | None:
        """What views of a subset of the series inherit from the whole panel (estimated first)."""
        if self.dependence and self.result.dependence_applies:
            self._year_effect  # noqa: B018 - estimated on the whole panel before restricting
            self._dependence_result  # noqa: B018
        keep = {k: v for k, v in self._shared.items() if k in ("year", "shared_cov")}
        return keep or None

    @cached_property
    def _dependence(self) -> Any:
        """The dependence model of this view's groups, or None when it is off."""
        if not self._dependence_on:
            return None
        from .dependence import (
            DependenceWarning,
            GroupSums,
            dependence_from_sums,
            series_dependence,
            year_effect_from_sums,
        )

        groups, keys, include = self._grouping
        if self._by is None:
            # the series' own groups (their sums are their arrays, never formed): the panel's
            # year effect (shared by every view) is theirs
            year, dep = series_dependence(
                self.result, self.panel.deaths, self.weeks, year=self._shared.get("year")
            )
            self._shared.setdefault("year", year)
        else:
            # the groups' sums once, for their year effect and their serial model alike
            g = np.where(include, groups, -1)
            sums = GroupSums.of(self.result, self.panel.deaths, self.weeks, g, len(keys))
            # the year effect beyond each group's own serial model, pooled over the view's groups
            year = year_effect_from_sums(sums, self.result, self.weeks)
            dep = dependence_from_sums(sums, year, self.result, self.weeks)
        if dep.short.any():
            warnings.warn(
                f"{int(dep.short.sum())} of {len(keys)} rows have too short a reference to estimate "
                f"the residual dependence (fewer than two years of residual weeks, or fewer than "
                f"three complete years): their sums over weeks are taken as fully correlated (wider "
                f"intervals, never narrower)",
                DependenceWarning,
                stacklevel=3,
            )
        return dep

    @property
    def intervals(self) -> dict[str, Any]:
        """What the intervals contain: rule, parameter uncertainty, overdispersion, cross-series
        dependence, autocorrelation, year effects, and a one-line ``text``.

        Examples
        --------
        >>> import excessmort as em
        >>> f = em.fit(em.demo_data())
        >>> f.intervals["cross_series_dependence"], f.intervals["rule"]
        (True, 'normal')
        >>> em.fit(em.demo_data(), dependence=False).intervals["autocorrelation"]
        False
        """
        from .dependence import describe_interval

        return describe_interval(self.result, self.dependence)

    def _attrs(self, frame: pd.DataFrame) -> pd.DataFrame:
        info = dict(self.intervals)
        dep = self.__dict__.get("_dependence")  # only when a sum has used it
        if dep is not None:
            info["short_reference_rows"] = int(dep.short.sum())
            info["year_effect_sd"] = float(np.sqrt(dep.year.sigma2))
        frame.attrs["intervals"] = info
        frame.attrs["level"] = self.level
        return frame

    # ------------------------------------------------------------------ weekly
    @cached_property
    def _weekly_arrays(self) -> dict[str, np.ndarray]:
        res = self.result
        if self._by is None and _per_series_glm(res):
            # phi mu and phi mu^2 q are formed inside the fused kernel, never as [S, T] arrays
            phi = np.asarray(res.dispersion, dtype=np.float64)
            return excess_arrays(
                self.panel.deaths,
                res.mu,
                res.mu,
                res.q,  # type: ignore[attr-defined]
                self.level,
                res.prediction,
                obs_scale=phi,
                param_scale=phi,
                param_mu2=True,
                engine=self._engine,
            )
        observed = self._sum(self.panel.deaths)
        mu = self._sum(res.mu)
        obs_var = self._sum(res.obs_variance())
        param_var = self._masked_result_call("param_variance_weekly")
        if self._dependence_on and (self._by is not None or res.shared_dispersion):
            obs_var, param_var = self._dependence.weekly(
                obs_var,
                param_var,
                mu,
                self.weeks,
                param_floor=self._param_floor("param_variance_weekly"),
            )
        return excess_arrays(
            observed, mu, obs_var, param_var, self.level, res.prediction, engine=self._engine
        )

    @cached_property
    def weekly(self) -> pd.DataFrame:
        """One row per series (or group) and week: strata (``region`` with ``region_name``),
        week_ending, iso_year, iso_week (and the ONS registration ``year``/``week`` for weeks ending
        on a Friday), observed, expected and its confidence bounds, the prediction bounds of the
        count, excess and its bounds, z_score, p_score, and the observed/expected ratio with bounds;
        with a ``population`` in the data, the row's population and the observed, expected and excess
        deaths of the week per 100,000 (``observed_rate``, ``expected_rate``, ``excess_rate`` and
        its bounds ``excess_rate_lower``/``excess_rate_upper``).

        :meth:`weekly_in` gives the rows of a period (``fit.weekly_in(2020)``).

        Examples
        --------
        >>> import excessmort as em
        >>> w = em.fit(em.demo_data()).by("region").weekly
        >>> w.columns[:6].tolist()
        ['region', 'region_name', 'week_ending', 'iso_year', 'iso_week', 'year']
        >>> row = w.iloc[1]  # the demo's weeks end on Fridays: ONS year and week given too
        >>> row["region_name"], int(row["iso_year"]), int(row["iso_week"]), int(row["week"])
        ('North East', 2010, 1, 1)
        """
        arrays = self._weekly_arrays
        _, keys, _ = self._grouping
        self._warn_missing(arrays["expected"], arrays["observed"])
        # The frame adopts the fit's arrays (mu, the deaths, the kernel's buffer) without copying;
        # the base frame kept here makes pandas' copy-on-write see them as shared, so an edit of
        # the returned frame copies the column it edits and never writes into the fit.
        frame = weekly_frame(self.panel.weeks, keys, arrays)
        if self.panel.exposure is not None:  # rates per 100,000 (issue 17 item 8)
            add_rates(frame, self._sum(self.panel.exposure))
        self._weekly_base = frame
        return self._attrs(frame.copy(deep=False))

    def _window_variances(
        self, window: np.ndarray, running: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(observed, mu, observation variance, parameter variance) of the window's sums: [G] or,
        running, [G, K]. With dependence the observation part is the serial + year model of
        :mod:`excessmort.dependence`, never sum(phi mu)."""
        res = self.result
        # a window of consecutive weeks (every period) is read through views, not copies
        cols = _columns(window)
        deaths, mu_all = self.panel.deaths[:, cols], res.mu[:, cols]
        phi_mu = type(res).obs_variance is BaselineResult.obs_variance
        # the series' own window total under dependence reads phi and mu in place (below)
        in_place = (
            phi_mu
            and not running
            and self._by is None
            and self._dependence_on
            and isinstance(cols, slice)
            and res.residuals_in_sample
        )
        obs_all: Any = None
        if phi_mu and not in_place:
            obs_all = res.dispersion[:, None] * mu_all  # phi mu on the window only
        elif not phi_mu:
            obs_all = res.obs_variance()[:, window]
        if running:
            observed = self._sum(np.cumsum(deaths, axis=1))
            mu = self._sum(np.cumsum(mu_all, axis=1))
            param_var = self._masked_result_call("param_variance_running", window)
        else:
            observed = self._sum(np.sum(deaths, axis=1))
            mu = self._sum(np.sum(mu_all, axis=1))
            param_var = self._masked_result_call("param_variance_window", window)
        if not self._dependence_on:
            obs = self._sum(obs_all)
            obs_var = np.cumsum(obs, axis=1) if running else np.sum(obs, axis=1)
            return observed, mu, obs_var, param_var
        dep = self._dependence
        floor = self._param_floor(
            "param_variance_running" if running else "param_variance_window", window
        )
        if in_place:
            # every series its own row: phi mu over the window's columns, never formed
            obs_tot, param_tot = dep.total(
                res.mu,
                res.mu,
                param_var,
                self.weeks[window],
                self.level,
                engine=self._engine,
                param_floor=floor,
                obs_scale=np.asarray(res.dispersion, dtype=np.float64),
                cols=cols,
            )
            return observed, mu, obs_tot, param_tot
        weekly_obs = self._sum(obs_all)
        weekly_mu = self._sum(mu_all)
        # the weekly parameter variances enter only when the residuals were out of sample
        param_weekly = (
            None
            if res.residuals_in_sample
            else self._masked_result_call("param_variance_weekly")[:, window]
        )
        if not running:
            # the sum over the whole window: the last column of the running sums, formed alone
            obs_tot, param_tot = dep.total(
                weekly_obs,
                weekly_mu,
                param_var,
                self.weeks[window],
                self.level,
                engine=self._engine,
                param_weekly=param_weekly,
                param_floor=floor,
            )
            return observed, mu, obs_tot, param_tot
        obs_run, param_run, _ = dep.running(
            weekly_obs,
            weekly_mu,
            param_var,
            self.weeks[window],
            self.level,
            engine=self._engine,
            param_weekly=param_weekly,
            param_floor=floor,
        )
        return observed, mu, obs_run, param_run

    @property
    def _engine(self) -> str:
        return str(getattr(self.result, "engine", "auto"))

    def weekly_in(
        self,
        start: Any = None,
        end: Any = None,
        *,
        year: int | None = None,
        weeks: tuple[int, int] | None = None,
        calendar: str = "auto",
    ) -> pd.DataFrame:
        """The rows of :attr:`weekly` in a period, given as :meth:`cumulative` takes it.

        Raises
        ------
        InputError
            For a period with no week in it or reaching past the data (both ranges named).

        Examples
        --------
        >>> import excessmort as em
        >>> w = em.fit(em.demo_data()).by().weekly_in(year=2020, weeks=(10, 19))
        >>> len(w), w["iso_week"].tolist()[::9]
        (10, [10, 19])
        """
        period = self.period(start, end, year=year, weeks=weeks, calendar=calendar, default=False)
        w = self.weekly
        keep = np.isin(w["week_ending"].to_numpy(), self.weeks[period.mask].to_numpy())
        out = w.loc[keep].reset_index(drop=True)
        out.attrs["period"] = period.label
        return out

    # ------------------------------------------------------------------ cumulative
    def period(
        self,
        start: Any = None,
        end: Any = None,
        *,
        year: int | None = None,
        weeks: tuple[int, int] | None = None,
        calendar: str = "auto",
        default: bool = True,
    ) -> Period:
        """The weeks of a period as analysts say it (see :mod:`excessmort.periods`).

        ``start``/``end`` may be a year (``2020``: the ONS registration year for Friday weeks, the
        ISO year otherwise), a month (``"2020-04"``), a quarter (``"2020Q2"``), a week
        (``"2020-W05"``) or a date; ``year=2020, weeks=(1, 53)`` picks weeks of a year. With
        ``default=True`` a missing start is the week after the reference period and a missing end
        the last week.

        Raises
        ------
        InputError
            For a period with no week in it or reaching past the data (both ranges named).

        Examples
        --------
        >>> import excessmort as em
        >>> p = em.fit(em.demo_data()).period(2020)
        >>> p.label, p.n_weeks
        ('2020 (ONS registration year)', 53)
        """
        dflt = None
        if default:
            after = self.reference[1] + pd.Timedelta(days=1) if self.reference else self.weeks[0]
            dflt = (after, self.weeks[-1])
        return resolve_period(
            self.weeks,
            start,
            end,
            year=year,
            weeks_of_year=weeks,
            calendar=calendar,
            default=dflt,
            what="period",
        )

    def _window(self, start: Any, end: Any) -> np.ndarray:
        return self.period(start, end).mask

    def cumulative(
        self,
        start: Any = None,
        end: Any = None,
        *,
        year: int | None = None,
        weeks: tuple[int, int] | None = None,
        calendar: str = "auto",
    ) -> pd.DataFrame:
        """Cumulative observed, expected and excess over a period.

        The period is given as analysts say it (:meth:`period`): ``cumulative(2020)`` is the
        registration year 2020 (53 weeks), ``cumulative("2021-01", "2021-04")`` January to April
        2021, ``cumulative(year=2020, weeks=(10, 26))`` weeks 10 to 26, and plain dates the weeks
        ending in [start, end]. Defaults: from the week after the reference period to the last week.

        The variance of the cumulative excess is g' V g + sum phi mu, with g = sum_t mu_t x_t: the
        shared coefficients make weekly errors correlated, so weekly variances are not summed.

        Returns
        -------
        DataFrame
            strata (with ``region_name``), period, start, end, n_weeks, observed, expected, excess,
            excess_lower, excess_upper, p_score; with a ``population`` in the data, the period's
            mean ``population`` (after n_weeks) and the rates per 100,000 of :attr:`weekly`.

        Raises
        ------
        InputError
            When the period holds no week or reaches past the data (the message gives both ranges).

        Examples
        --------
        >>> import excessmort as em
        >>> c = em.fit(em.demo_data()).by().cumulative(2020)
        >>> str(c.loc[0, "period"]), int(c.loc[0, "n_weeks"])
        ('2020 (ONS registration year)', 53)
        """
        period = self.period(start, end, year=year, weeks=weeks, calendar=calendar)
        window = period.mask
        res = self.result
        observed, mu, obs_var, param_var = self._window_variances(window, running=False)
        arrays = excess_arrays(
            observed, mu, obs_var, param_var, self.level, res.prediction, engine=self._engine
        )
        _, keys, _ = self._grouping
        # the window's sums of the deaths tell which rows hold a missing week (NaN propagates)
        self._warn_missing(mu, observed, window=window, sums=observed)
        frame = cumulative_frame(keys, self.weeks, window, arrays, period.label)
        if self.panel.exposure is not None:  # rates per 100,000 of the period's mean population
            add_rates(frame, self._sum(self.panel.exposure[:, window].mean(axis=1)))
        return self._attrs(frame)

    def cumulative_path(self, start: Any = None, end: Any = None) -> pd.DataFrame:
        """The running cumulative excess from ``start``: for every week ending in [start, end], the
        figures :meth:`cumulative` gives for (start, that week).

        Sums are running sums; the parameter variance g' V g is the baseline's, for each window
        [start, week] (one call per week on arrays: the same variance as :meth:`cumulative`, never a
        sum of weekly variances).

        Returns
        -------
        DataFrame
            strata..., week_ending, observed, expected, excess, excess_lower, excess_upper, p_score;
            with a ``population`` in the data, the mean population of the weeks so far and the
            running figures per 100,000 of it (as :meth:`cumulative` gives them).

        Raises
        ------
        InputError
            When the period lies outside the data.

        Examples
        --------
        >>> import excessmort as em
        >>> path = em.fit(em.demo_data()).by().cumulative_path("2020-03")
        >>> len(path), bool(path["excess"].is_monotonic_increasing)
        (4, True)
        """
        window = self.period(start, end).mask
        res = self.result
        observed, mu, obs_var, param_var = self._window_variances(window, running=True)
        arrays = excess_arrays(
            observed, mu, obs_var, param_var, self.level, res.prediction, engine=self._engine
        )
        _, keys, _ = self._grouping
        n_rows, n_weeks = mu.shape
        cols: dict[str, Any] = repeated_keys(keys, n_weeks)
        cols.update(week_table(self.weeks[window], n_rows))
        for c in (*CUMULATIVE_COLUMNS, "p_score"):
            cols[c] = np.asarray(arrays[c], dtype=np.float64).reshape(-1)
        frame = pd.DataFrame(cols, copy=False)
        if self.panel.exposure is not None:  # per 100,000 of the mean population so far
            pop = self._sum(self.panel.exposure[:, window])
            running = np.cumsum(pop, axis=1) / np.arange(1, pop.shape[1] + 1)
            add_rates(frame, running.reshape(-1))
        return self._attrs(frame)

    def totals(
        self,
        freq: str = "month",
        start: Any = None,
        end: Any = None,
        *,
        calendar: str = "auto",
        partial: bool = False,
    ) -> pd.DataFrame:
        """Totals by month, quarter or year (or week), each with its interval.

        A week belongs to the month (quarter) of its week-ending date; a year is the ONS
        registration year for Friday weeks, the ISO year otherwise (``calendar="calendar"`` for
        weeks ending in the calendar year). Every period's interval comes from the same variance as
        :meth:`cumulative` over its weeks (g' V g + sum phi mu, never a sum of weekly widths).

        Parameters
        ----------
        freq : {"month", "quarter", "year", "week"}
        start, end : period-like, optional
            The span covered (as :meth:`cumulative`; default from the week after the reference
            period to the last week).
        calendar : {"auto", "ons", "iso", "calendar"}
        partial : bool, default False
            Also give the periods at the edges of the span that it holds only in part (flagged
            ``complete=False``); by default only whole periods are given.

        Returns
        -------
        DataFrame
            One row per group and period: strata, period, start, end, n_weeks, complete, and the
            :meth:`cumulative` columns.

        Raises
        ------
        InputError
            For an unknown ``freq``, or a span with no whole period.

        Examples
        --------
        >>> import excessmort as em
        >>> q = em.fit(em.demo_data()).by().totals("quarter", "2020-01-01", "2020-12-31")
        >>> q["period"].tolist(), q["n_weeks"].tolist()
        (['2020Q1', '2020Q2', '2020Q3', '2020Q4'], [13, 13, 13, 13])
        """
        span = self.period(start, end, calendar=calendar)
        table = period_table(self.weeks, freq, calendar=calendar, within=span, partial=partial)
        if not table:
            raise InputError(
                f"totals: no whole {freq} in {span.label} (weeks ending {span.first.date()} to "
                f"{span.last.date()}); pass partial=True for the parts",
                column="freq",
                value=freq,
            )
        frames = []
        for label, mask, complete in table:
            first = self.weeks[mask][0]
            last = self.weeks[mask][-1]
            frame = self.cumulative(first, last)
            frame["period"] = label
            frame.insert(frame.columns.get_loc("n_weeks") + 1, "complete", complete)
            frames.append(frame)
        out = pd.concat(frames, ignore_index=True)
        keys = [c for c in self._grouping[1].columns if c in out.columns]
        if keys:  # strata first, then the periods in order
            out = out.sort_values(keys, kind="stable").reset_index(drop=True)
        out.attrs["freq"] = freq
        return out

    def _warn_missing(
        self,
        mu: np.ndarray,
        observed: np.ndarray,
        window: np.ndarray | None = None,
        *,
        sums: np.ndarray | None = None,
    ) -> None:
        """Warn once per frame when missing weeks of some series make rows NaN (names both).

        ``sums`` [G]: this view's rows' sums of the deaths over ``window``; a missing week makes
        its row's sum NaN, so only the series of NaN rows are scanned (none when there is none)."""
        _, _, include = self._grouping
        scan = include
        if sums is not None:
            nan_rows = np.isnan(sums)
            if not nan_rows.any():
                return
            if self._by is None:  # the rows are the series
                scan = include & nan_rows
        cols = slice(None) if window is None else _columns(window)
        weeks = self.weeks if window is None else self.weeks[window]
        if scan.all():
            rows = np.arange(scan.size)
            missing = np.isnan(self.panel.deaths[:, cols])
        else:
            rows = np.flatnonzero(scan)
            missing = np.isnan(self.panel.deaths[rows][:, cols])
        if not missing.any():
            return
        series = rows[missing.any(axis=1)]
        gaps = np.flatnonzero(missing.any(axis=0))
        shown = "; ".join(self.panel.label(s) for s in series[:5]) + (
            f"; and {series.size - 5} more" if series.size > 5 else ""
        )
        dates = ", ".join(str(weeks[t].date()) for t in gaps[:5]) + (
            f" and {gaps.size - 5} more" if gaps.size > 5 else ""
        )
        where = "aggregates" if self._by is not None else "rows"
        warnings.warn(
            f"missing weeks make {where} NaN: {series.size} series lack data ({shown}) in the weeks "
            f"ending {dates}; figures over those weeks (and sums containing them) are NaN. Fill the "
            "weeks, or choose a period without them",
            MissingDataWarning,
            stacklevel=3,
        )

    # ------------------------------------------------------------------ rates
    def rates(
        self, start: Any = None, end: Any = None, *, per: float = 100_000, **period: Any
    ) -> pd.DataFrame:
        """:meth:`cumulative` with the mean population of the period and every count as a rate
        per ``per`` (100,000): ``observed_rate``, ``expected_rate``, ``excess_rate`` and its
        bounds. Needs a ``population`` column in the data.

        Raises
        ------
        InputError
            Without population, or for a period as :meth:`cumulative`.

        Examples
        --------
        >>> import excessmort as em
        >>> r = em.fit(em.demo_data()).by("region").rates(2020)
        >>> bool((r["excess_rate"] == 1e5 * r["excess"] / r["population"]).all())
        True
        """
        from .standardise import rates

        return rates(self, start, end, per=per, **period)

    def standardised(
        self,
        start: Any = None,
        end: Any = None,
        *,
        by: Any = None,
        age: str = "age_group",
        standard: Any = "esp2013",
        per: float = 100_000,
        **period: Any,
    ) -> pd.DataFrame:
        """Age-standardised observed, expected and excess rates per 100,000 over a period, with
        intervals, for every row of the strata kept (default every stratum but the age).

        ``standard`` is ``"esp2013"`` (the 2013 European Standard Population, its bands summed into
        the data's age groups) or ``{age_group: weight}``. Rates are deaths in the period per
        ``per`` of the population (not annualised). See :mod:`excessmort.standardise` for the
        variance (exact for every baseline: the covariances of the age groups' expected deaths come
        from the baseline).

        Raises
        ------
        InputError
            Without population, an age stratum, or age groups on ESP2013's band edges.

        Examples
        --------
        >>> import excessmort as em
        >>> s = em.fit(em.demo_data()).standardised(2020, by=["region"])
        >>> s.columns[:3].tolist(), len(s)
        (['region', 'region_name', 'period'], 9)
        """
        from .standardise import standardised

        return standardised(self, start, end, by=by, age=age, standard=standard, per=per, **period)

    # ------------------------------------------------------------------ exports
    def to_csv(self, path: Any, table: str = "weekly", **period: Any) -> None:
        """Write a table (``weekly``, ``cumulative``, ``monthly``, ``quarterly``, ``yearly``,
        ``coefficients``, ``diagnostics``, ``summary``) as CSV, atomically.

        ``period`` (``start=``, ``end=``, ``year=``, ...) goes to the table's accessor.

        Examples
        --------
        >>> import excessmort as em, tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "england.csv"
        >>> em.fit(em.demo_data()).by().to_csv(path, "monthly", start=2020, end=2020)
        >>> len(pd.read_csv(path))
        12
        """
        from ._export import to_csv

        to_csv(self, path, table, **period)

    def to_parquet(self, path: Any, table: str = "weekly", **period: Any) -> None:
        """Write a table (as :meth:`to_csv`) as Parquet, atomically; the notes of the export
        (baseline, reference, intervals) are in the file's metadata.

        Examples
        --------
        >>> import excessmort as em, tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "weekly.parquet"
        >>> em.fit(em.demo_data()).by("region").to_parquet(path)
        >>> pd.read_parquet(path)["region_name"].iloc[0]
        'North East'
        """
        from ._export import to_parquet

        to_parquet(self, path, table, **period)

    def to_excel(
        self, path: Any, tables: Any = ("weekly", "cumulative", "monthly", "coefficients")
    ) -> None:
        """Write a workbook, one sheet per table and a ``notes`` sheet (method, reference period,
        exclusions, interval level and type), atomically.

        Examples
        --------
        >>> import excessmort as em, tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "fit.xlsx"
        >>> em.fit(em.demo_data()).by("region").to_excel(path, ["cumulative", "coefficients"])
        >>> list(pd.read_excel(path, sheet_name=None))
        ['cumulative', 'coefficients', 'notes']
        """
        from ._export import to_excel

        to_excel(self, path, tables)

    # ------------------------------------------------------------------ models
    @property
    def coefficients(self) -> pd.DataFrame:
        """One row per series: strata, model terms, dispersion, converged, n_iter.

        :attr:`coefficient_table` has the standard errors (as R's ``summary(glm)``).

        Examples
        --------
        >>> import excessmort as em
        >>> em.fit(em.demo_data()).coefficients.columns[:4].tolist()
        ['region', 'sex', 'age_group', 'intercept']
        """
        return self.result.coefficients(self.panel.keys)

    @property
    def coefficient_table(self) -> pd.DataFrame:
        """Coefficients with standard errors, statistics and p-values, like R's ``summary(glm)``:
        one row per series and term (per term for the pooled model, whose coefficients every series
        shares). See :mod:`excessmort._coeftable` for the dispersion and degrees of freedom used.

        Raises
        ------
        InputError
            For the five-year average, which has no coefficients.

        Examples
        --------
        >>> import excessmort as em
        >>> t = em.fit(em.demo_data())["London"].coefficient_table
        >>> t.columns[4:9].tolist()
        ['term', 'estimate', 'std_error', 'statistic', 'p_value']
        """
        from ._coeftable import coefficient_table

        return coefficient_table(self)

    @property
    def diagnostics(self) -> pd.DataFrame:
        """One row per series: converged, n_iter, dispersion before and after the floor, and any
        further per-series diagnostics of the baseline (deviance, Pearson chi2, weeks fitted).

        Examples
        --------
        >>> import excessmort as em
        >>> d = em.fit(em.demo_data()).diagnostics
        >>> bool(d["converged"].all()), "deviance" in d.columns
        (True, True)
        """
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
        """Readable labels of the series whose fit did not converge.

        Examples
        --------
        >>> import excessmort as em
        >>> em.fit(em.demo_data()).not_converged
        []
        """
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
        check = self._dispersion_check
        if check is None:
            return
        phi = self.result.dispersion_raw
        judged = judge_dispersion(
            phi, mean_fitted_count(self.panel.deaths, self.result.fit_mask, self._engine), check
        )
        assert judged is not None
        upper, rule = judged.upper, judged.rule
        odd = np.flatnonzero(judged.odd)
        if odd.size:
            shown = "; ".join(
                f"{self.panel.label(s)} (phi={phi[s]:.3g}, ordinary up to {upper[s]:.3g})"
                for s in odd[:10]
            )
            warnings.warn(
                f"implausible dispersion {rule} in {odd.size} series: {shown}. Check for a "
                "structural break or strata that mix different populations; "
                "fit(..., dispersion_check=None) silences this",
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
            Columns: the stratum (``region`` codes), ``region_name`` (with region; the name
            every other frame gives it, ``name`` before issue 17),
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
                rows.insert(1, "region_name", [region_name(str(c)) for c in rows["region"]])
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
            ("intervals", f"{self.intervals['rule']}: {self.intervals['text']}"),
        ]
        if self.estimated_counts:
            header.append(("counts", "estimated (fractional deaths accepted)"))
        if self.excluded is not None and self.excluded.any():
            header.insert(2, ("excluded", f"{int(self.excluded.sum())} weeks of the reference"))
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

        Examples
        --------
        >>> import excessmort as em
        >>> em.fit(em.demo_data()).print_summary(start=2020, end=2020)  # doctest: +ELLIPSIS
        excessmort.Fit: quasipoisson
        ...
        """
        print(self._render(style, decimals, start, end))

    def _repr_html_(self) -> str:
        """The header block and the summary table by region, for Jupyter, then the alarms line."""
        return self._render("html", 0) + self._alarms_html()

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
                    from ._suggest import did_you_mean
                    from .regions import WALES_CODE, region_name

                    names = list(available)
                    if column == "region":
                        names += [region_name(c) for c in available]
                    hint = did_you_mean(v, names)
                    if column == "region" and text == WALES_CODE:
                        hint = (
                            " (Wales was left out when the data were read: read them with "
                            "keep_wales=True to keep it)"
                        )
                    raise InputError(
                        f"select: {column}={v!r} matches no series{hint}; available values are "
                        f"{available}",
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
        state = self._panel_state()
        out = Fit(
            panel=self.panel.take(idx),
            result=self.result.take(idx),
            model=self.model,
            reference=self.reference,
            level=self.level,
            by=self._by,
            dependence=self.dependence,
            shared=state,
        )
        out._inherit(self)
        return out

    def __getitem__(self, region: Any) -> Fit:
        """``fit["E12000007"]`` (or ``fit["London"]``): :meth:`select` of one region.

        Examples
        --------
        >>> import excessmort as em
        >>> em.fit(em.demo_data())["London"].panel.n_series
        8
        """
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

        Examples
        --------
        >>> import excessmort as em
        >>> f = em.fit(em.demo_data())
        >>> f.plot("cumulative", "London", start="2020-03-01").get_title()
        'London: cumulative excess from 2020-02-29'
        >>> f.plot("weekly", "85+").get_title()  # a bare value finds its stratum
        'England, age group 85+'
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

    # ------------------------------------------------------------------ alarms (issue 19)
    def alarms(self, **options: Any) -> Any:
        """EuroMOMO z-score bands, the CUSUM on z - k with its alarms, and the detected excess
        periods (runs of weeks whose excess lower bound is above zero) of every row of this view.

        Options (see :func:`excessmort.alarms.alarms`): ``k=0.25``, ``arl0=20`` (h about 1.449),
        ``h``, ``reset=True``, ``min_weeks=1``, ``start``, ``end``.

        Returns
        -------
        excessmort.alarms.Alarms
            ``.weekly`` (band, cusum, alarm per row and week) and ``.periods`` (one row per
            period with its cumulative excess and interval from :meth:`cumulative`).

        Examples
        --------
        >>> import excessmort as em
        >>> a = em.fit(em.demo_data()).by().alarms()
        >>> a.periods.columns[:4].tolist()
        ['region', 'start', 'end', 'n_weeks']
        """
        from .alarms import alarms

        return alarms(self, **options)

    def _alarms_html(self) -> str:
        """One paragraph for Jupyter: the total's detected excess periods and its latest CUSUM."""
        import html

        try:
            view = self if len(self._grouping[1]) == 1 else self.by()
            a = view.alarms()
        except (InputError, ValueError):
            return ""
        p = a.periods
        last = a.weekly.iloc[-1] if len(a.weekly) else None
        text = f"Alarms ({'total' if view is not self else 'this row'}): {len(p)} excess period(s)"
        if len(p):
            q = p.iloc[-1]
            text += (
                f"; latest {pd.Timestamp(q['start']).date()} to {pd.Timestamp(q['end']).date()}, "
                f"excess {q['excess']:,.0f} ({q['excess_lower']:,.0f} to {q['excess_upper']:,.0f})"
            )
        if last is not None:
            text += (
                f"; week ending {pd.Timestamp(last['week_ending']).date()}: z = {last['z_score']:.1f}"
                f" ({last['band_label']}), CUSUM {'alarm' if last['alarm'] else 'no alarm'}"
            )
        return f'<p class="excessmort-alarms">{html.escape(text)}.</p>'
