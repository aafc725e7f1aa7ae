"""Several baselines on the same data: one tidy frame, cumulative figures and a side-by-side plot.

``excessmort.compare(frame, baselines=["quasipoisson", "five_year_average"])`` reads and validates
the frame once, fits every baseline on it (each in one vectorised pass) and returns a
:class:`Comparison`; ``by=("region",)`` compares aggregates (``Fit.by``) instead of series.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ._fit import DEFAULT_REFERENCE, WEEKLY_COLUMNS, Fit, _as_tidy
from ._fit import fit as fit_frame
from .baselines import Baseline, get_baseline
from .exceptions import InputError

if TYPE_CHECKING:
    pass

__all__ = ["Comparison", "compare"]


class Comparison:
    """Fits of several baselines on the same data, side by side.

    Attributes
    ----------
    fits : dict of str -> Fit
        One fit per baseline, by name (``five_year_average``, ``quasipoisson (2)`` for a repeat).
    by : tuple of str or None
        The aggregate compared (``Fit.by(*by)``), or None for the series themselves.
    start, end : period-like or None
        The default period of :attr:`weekly` and :meth:`cumulative` (None: all weeks / from the
        end of the reference period).

    Examples
    --------
    >>> import excessmort as em
    >>> c = em.compare(em.demo_data(), ["quasipoisson", "five_year_average"], by="region")
    >>> c.wide("excess", 2020).shape
    (9, 4)
    >>> c.summary(2020)["baseline"].tolist()
    ['quasipoisson', 'five_year_average']
    """

    def __init__(
        self,
        fits: Mapping[str, Fit],
        *,
        by: str | Sequence[str] | None = None,
        start: Any = None,
        end: Any = None,
    ) -> None:
        self.fits = dict(fits)
        self.by = _as_by(by)
        self.start = start
        self.end = end

    def _view(self, f: Fit) -> Fit:
        return f if self.by is None else f.by(*self.by)

    @property
    def baselines(self) -> list[str]:
        """The baseline names, in the order given.

        Examples
        --------
        >>> import excessmort as em
        >>> c = em.compare(em.demo_data(), ["quasipoisson", "poisson"], by="region")
        >>> c.baselines
        ['quasipoisson', 'poisson']
        """
        return list(self.fits)

    def _stack(self, frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
        parts = []
        for name, frame in frames.items():
            frame = frame.copy()
            frame.insert(0, "baseline", name)
            parts.append(frame)
        out = pd.concat(parts, ignore_index=True)
        out["baseline"] = pd.Categorical(out["baseline"], categories=self.baselines)
        return out

    @cached_property
    def weekly(self) -> pd.DataFrame:
        """Tidy: baseline, strata..., week_ending, ... as :attr:`Fit.weekly`; one row per baseline,
        series (or aggregate) and week of the comparison's period (all weeks by default).

        Examples
        --------
        >>> import excessmort as em
        >>> c = em.compare(em.demo_data(), ["quasipoisson", "poisson"], by="region")
        >>> c.weekly.columns[:3].tolist()
        ['baseline', 'region', 'region_name']
        """
        if self.start is None and self.end is None:
            return self._stack({n: self._view(f).weekly for n, f in self.fits.items()})
        return self.weekly_in(self.start, self.end)

    def weekly_in(self, start: Any = None, end: Any = None, **period: Any) -> pd.DataFrame:
        """:attr:`weekly` over a period given as :meth:`Fit.cumulative` takes it.

        Examples
        --------
        >>> import excessmort as em
        >>> c = em.compare(em.demo_data(), ["quasipoisson", "poisson"], by="region")
        >>> len(c.weekly_in("2020-04"))  # 2 baselines x 9 regions x 4 weeks
        72
        """
        return self._stack(
            {n: self._view(f).weekly_in(start, end, **period) for n, f in self.fits.items()}
        )

    def cumulative(self, start: Any = None, end: Any = None, **period: Any) -> pd.DataFrame:
        """baseline, strata..., period, start, end, n_weeks, observed, expected, excess and bounds,
        p_score: :meth:`Fit.cumulative` over the period for each baseline (default the
        comparison's period, else from the end of the reference period).

        Examples
        --------
        >>> import excessmort as em
        >>> c = em.compare(em.demo_data(), ["quasipoisson", "poisson"], by="region")
        >>> c.cumulative("2020Q2")["period"].unique().tolist()
        ['2020Q2']
        """
        if start is None and end is None and not period:
            start, end = self.start, self.end
        return self._stack(
            {n: self._view(f).cumulative(start, end, **period) for n, f in self.fits.items()}
        )

    def totals(
        self, freq: str = "month", start: Any = None, end: Any = None, **kw: Any
    ) -> pd.DataFrame:
        """:meth:`Fit.totals` for each baseline, stacked.

        Examples
        --------
        >>> import excessmort as em
        >>> c = em.compare(em.demo_data(), ["quasipoisson", "poisson"], by="region")
        >>> c.totals("quarter", 2020)["period"].nunique()
        4
        """
        return self._stack(
            {n: self._view(f).totals(freq, start, end, **kw) for n, f in self.fits.items()}
        )

    def wide(
        self, value: str = "excess", start: Any = None, end: Any = None, **period: Any
    ) -> pd.DataFrame:
        """One row per series (or aggregate), one column per baseline: ``value`` of
        :meth:`cumulative` (``"excess"``, ``"expected"``, ``"p_score"``, ...) over the period.

        Raises
        ------
        InputError
            For a value that is not a column of :meth:`cumulative`.

        Examples
        --------
        >>> import excessmort as em
        >>> c = em.compare(em.demo_data(), ["quasipoisson", "poisson"], by="region")
        >>> c.wide("p_score", 2020).columns.tolist()
        ['region', 'region_name', 'quasipoisson', 'poisson']
        """
        cum = self.cumulative(start, end, **period)
        if value not in cum.columns:
            raise InputError(
                f"value must be a column of Comparison.cumulative, such as 'excess' or 'p_score'; "
                f"got {value!r}",
                column="value",
                value=value,
            )
        keys = [c for c in cum.columns if c in [*self._strata(), "region_name"]]
        if not keys:
            cum = cum.assign(series="total")
            keys = ["series"]
        out = cum.pivot_table(
            index=keys, columns="baseline", values=value, observed=True, sort=False
        )
        out = out[[b for b in self.baselines if b in out.columns]]
        out.columns.name = None
        out = out.reset_index()
        return out

    def _strata(self) -> list[str]:
        first = next(iter(self.fits.values()))
        return list(self._view(first).strata)

    def summary(self, start: Any = None, end: Any = None, **period: Any) -> pd.DataFrame:
        """One row per baseline: the total (England when the strata are the regions) over the period,
        with its interval and P-score.

        Examples
        --------
        >>> import excessmort as em
        >>> c = em.compare(em.demo_data(), ["quasipoisson", "poisson"], by="region")
        >>> c.summary(2020)[["baseline", "n_weeks"]].to_dict("records")
        [{'baseline': 'quasipoisson', 'n_weeks': 53}, {'baseline': 'poisson', 'n_weeks': 53}]
        """
        frames = {
            n: f.by().cumulative(*self._period(start, end), **period) for n, f in self.fits.items()
        }
        out = self._stack(frames)
        cols = [
            "baseline",
            "period",
            "n_weeks",
            "observed",
            "expected",
            "excess",
            "excess_lower",
            "excess_upper",
            "p_score",
        ]
        return out[[c for c in cols if c in out.columns]]

    def _period(self, start: Any, end: Any) -> tuple[Any, Any]:
        if start is None and end is None:
            return self.start, self.end
        return start, end

    def _repr_html_(self) -> str:
        from ._display import render

        try:
            table: pd.DataFrame | None = self.summary()
            caption = f"Total over {table['period'].iloc[0]}; P-score in %."  # type: ignore[index]
        except InputError as exc:
            table, caption = None, f"no summary: {exc}"
        first = next(iter(self.fits.values()))
        header = [
            ("baselines", ", ".join(self.baselines)),
            ("compared", "series" if self.by is None else f"by {', '.join(self.by) or 'total'}"),
            (
                "reference period",
                f"{first.reference[0].date()} to {first.reference[1].date()}"
                if first.reference
                else "none",
            ),
            ("level", f"{first.level:g}"),
        ]
        return render(
            "excessmort.Comparison",
            header,
            table,
            style="html",
            decimals=1,
            level=first.level,
            caption=caption,
        )

    def plot(
        self,
        strata: Any = None,
        *,
        start: Any = None,
        end: Any = None,
        axes: Any = None,
        ax: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Expected deaths (left) and cumulative excess (right) of every baseline, side by side.

        Parameters
        ----------
        strata : dict or str, optional
            Which series or aggregate (as in :func:`excessmort.plotting.plot_weekly`); default the
            total (England).
        start, end : date-like, optional
            Default the comparison's period; the cumulative panel starts at ``start`` (or after
            the reference period).
        axes, ax : sequence of two Axes, optional
            Where to draw (``ax`` is the same, for the argument order of every plot).
        **kwargs
            Passed to every baseline's line.

        Returns
        -------
        ndarray of two Axes

        Examples
        --------
        >>> import excessmort as em
        >>> c = em.compare(em.demo_data(), ["quasipoisson", "poisson"])
        >>> c.plot("London").shape
        (2,)
        """
        from .plotting import _mpl, plot_baselines

        plt = _mpl()
        axes = ax if axes is None else axes
        if axes is None:
            _, axes = plt.subplots(1, 2, figsize=(14.0, 4.5), layout="constrained")
        axes = np.asarray(axes, dtype=object).ravel()
        if axes.size != 2:
            raise InputError(
                f"axes must hold two Axes, got {axes.size}", column="axes", value=axes.size
            )
        start = self.start if start is None else start
        end = self.end if end is None else end
        plot_baselines(
            self.fits, strata, kind="expected", start=start, end=end, ax=axes[0], **kwargs
        )
        plot_baselines(
            self.fits, strata, kind="cumulative", start=start, end=end, ax=axes[1], **kwargs
        )
        return axes

    @property
    def intervals(self) -> pd.DataFrame:
        """What each baseline's intervals contain (they differ: the producer's pooled interval has
        no parameter uncertainty, the independence ones no dependence): one row per baseline.

        Examples
        --------
        >>> import excessmort as em
        >>> c = em.compare(em.demo_data(), ["quasipoisson", "five_year_average"], by="region")
        >>> c.intervals["baseline"].tolist()
        ['quasipoisson', 'five_year_average']
        """
        rows = [{"baseline": name, **f.intervals} for name, f in self.fits.items()]
        return pd.DataFrame(rows)

    def __repr__(self) -> str:
        view = f" by {', '.join(self.by) or 'total'}" if self.by is not None else ""
        lines = [f"<excessmort.Comparison {', '.join(self.baselines)}{view}>"]
        lines += [
            f"  {name}: {f.intervals['rule']}; {f.intervals['text']}"
            for name, f in self.fits.items()
        ]
        return "\n".join(lines)


def _as_by(by: Any) -> tuple[str, ...] | None:
    """``by`` as a tuple of strata: a string is one stratum (never its letters)."""
    if by is None:
        return None
    if isinstance(by, str):
        return (by,)
    return tuple(by)


def _caller_stacklevel() -> int:
    """The ``stacklevel`` of the first frame outside this module, seen from the caller of this
    helper (``compare`` is reached directly or through the callable module)."""
    frame = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_code.co_filename == __file__:
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return level


def compare(
    frame: Any,
    baselines: Sequence[str | Baseline] = ("quasipoisson", "five_year_average"),
    *,
    reference: tuple[Any, Any] | None = DEFAULT_REFERENCE,
    level: float = 0.95,
    start: Any = None,
    end: Any = None,
    by: str | Sequence[str] | None = None,
    engine: str = "auto",
    keep_wales: bool | None = None,
    **fit_options: Any,
) -> Comparison:
    """Fit several baselines on the same data and compare their expected and excess deaths.

    Parameters
    ----------
    frame : DataFrame, path, Fit, sequence or mapping of Fits
        Long format (see :func:`excessmort.read`; read and validated once and fitted with every
        baseline), or fits you already have (``compare([qp, fya])``, ``compare({"a": qp})``):
        then nothing is refitted and ``baselines`` is ignored.
    baselines : sequence of str or Baseline
        Names (``"quasipoisson"``, ``"poisson"``, ``"five_year_average"``, ``"euromomo"``,
        ``"pooled"``) or baseline objects with options.
    reference, level, engine, keep_wales
        As in :func:`excessmort.fit`, shared by every baseline.
    start, end : date-like, optional
        Period of the weekly frame (default all weeks) and of the cumulative figures (default from
        the week after the reference period to the last week).
    by : str or sequence of str, optional
        Compare aggregates ``Fit.by(*by)`` (``"region"``, ``("region", "sex")``; ``()`` is the
        total, England) instead of series.
    **fit_options
        Passed to :func:`excessmort.fit` for every baseline (``exclude=``,
        ``dispersion_check=``).

    Returns
    -------
    Comparison

    Raises
    ------
    InputError
        Bad input data, an unknown baseline (the message lists the registered ones), fewer than one
        baseline, or a stratum in ``by`` the data lack.

    Examples
    --------
    >>> import excessmort as em
    >>> c = em.compare(em.demo_data(), ["quasipoisson", "poisson"], by="region")
    >>> c.cumulative(2020)["baseline"].unique().tolist()
    ['quasipoisson', 'poisson']
    >>> qp = c.fits["quasipoisson"]
    >>> em.compare([qp, em.fit(em.demo_data(), baseline="five_year_average")], by="region").baselines
    ['quasipoisson', 'five_year_average']
    """
    by = _as_by(by)
    given = _given_fits(frame)
    if given is not None:
        if by is not None:
            next(iter(given.values())).by(*by)
        return Comparison(given, by=by, start=start, end=end)
    if isinstance(baselines, str | Baseline | type):
        baselines = [baselines]
    baselines = list(baselines)
    if not baselines:
        raise InputError("compare needs at least one baseline", column="baselines", value=baselines)
    models = [get_baseline(b) for b in baselines]
    tidy = _as_tidy(frame, keep_wales)
    fits: dict[str, Fit] = {}
    for model in models:
        name, k = model.name, 2
        while name in fits:
            name, k = f"{model.name} ({k})", k + 1
        # Warnings (convergence, dispersion) name the baseline and point at the caller's line.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fits[name] = fit_frame(
                tidy,
                baseline=model,
                reference=reference,
                level=level,
                engine=engine,
                keep_wales=keep_wales,
                **fit_options,
            )  # type: ignore[arg-type]
        for w in caught:
            warnings.warn(f"{name}: {w.message}", w.category, stacklevel=_caller_stacklevel())
    if by is not None:
        next(iter(fits.values())).by(*by)  # validates the strata named
    return Comparison(fits, by=by, start=start, end=end)


def _given_fits(frame: Any) -> dict[str, Fit] | None:
    """Fits the user passed (a Fit, a sequence or a mapping of them), named, or None for data."""
    if isinstance(frame, Fit):
        return {frame.baseline: frame}
    if isinstance(frame, Mapping) and frame and all(isinstance(v, Fit) for v in frame.values()):
        return {str(k): v for k, v in frame.items()}
    if isinstance(frame, list | tuple) and frame and all(isinstance(v, Fit) for v in frame):
        out: dict[str, Fit] = {}
        for f in frame:
            name, k = f.baseline, 2
            while name in out:
                name, k = f"{f.baseline} ({k})", k + 1
            out[name] = f
        return out
    return None


# The columns of Comparison.weekly after ``baseline`` and the strata (for documentation and tests).
COMPARISON_VALUE_COLUMNS = ("week_ending", *WEEKLY_COLUMNS)
