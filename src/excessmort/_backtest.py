"""Rolling-origin backtests of any baseline: coverage, bias, width and interval score on real data.

For every test year Y (years without excess), the baseline is fitted on the ``reference_years``
years before it (Y - n .. Y - 1), exactly as a producer would have fitted it at the time, and its
intervals for year Y are judged against what happened:

- weekly: is each week's count inside its prediction interval (the excess interval contains 0)?
- yearly: does the interval of the year's cumulative excess contain 0?
- bias: the year's excess (observed - expected), also relative to expected;
- width: of the weekly prediction interval and of the yearly interval, relative to expected;
- interval score (Gneiting & Raftery 2007): width + (2 / alpha) x the distance by which the truth
  falls outside, relative to expected (lower is better; it rewards narrow intervals that still
  cover).

Rows are the series and, with ``by``, their aggregates (``by=()`` the total), each judged with the
same :class:`excessmort.Fit` accessors a user calls. Per-series GLM baselines are fitted for every
fold at once (the folds are stacked as extra series of one panel: one kernel call); the pooled model
and the five-year average are fitted once per fold. The dependence model is estimated within each
fold from that fold's reference weeks only (no look-ahead).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ._fit import Fit, _as_tidy
from .baselines import Baseline, get_baseline
from .baselines.glm import GLMResult
from .exceptions import InputError
from .excess import validate_level
from .panel import Panel

__all__ = ["Backtest", "backtest"]

_GLM_STACKABLE = ("quasipoisson", "poisson", "euromomo")


def _years(panel: Panel, years: Any, reference_years: int) -> list[int]:
    cal = np.asarray(panel.weeks.year)
    first, last = int(cal.min()), int(cal.max())
    if years is None:
        # full years only, and none from 2020 on (the pandemic is excess, not a test of the baseline)
        full_last = (
            last if (panel.weeks[-1].month == 12 and panel.weeks[-1].day >= 24) else last - 1
        )
        start = (
            first + reference_years
            if panel.weeks[0].dayofyear <= 7
            else first + 1 + reference_years
        )
        out = list(range(start, min(full_last, 2019) + 1))
    else:
        try:
            out = sorted({int(y) for y in years})
        except (TypeError, ValueError) as exc:
            raise InputError(
                f"years must be a sequence of years such as range(2012, 2020), got {years!r}",
                column="years",
                value=years,
            ) from exc
    bad = [y for y in out if y - reference_years < first or y > last]
    if bad:
        raise InputError(
            f"test years {bad} need {reference_years} reference years before them inside the data, "
            f"which run from {panel.weeks[0].date()} to {panel.weeks[-1].date()}",
            column="years",
            value=bad,
        )
    if not out:
        raise InputError(
            f"no test year: the data ({panel.weeks[0].date()} to {panel.weeks[-1].date()}) hold no "
            f"full year after {reference_years} reference years before 2020",
            column="years",
            value=years,
        )
    return out


def _reference(year: int, n: int) -> tuple[pd.Timestamp, pd.Timestamp]:
    return pd.Timestamp(f"{year - n}-01-01"), pd.Timestamp(f"{year - 1}-12-31")


def _fold_fits(
    panel: Panel,
    model: Baseline,
    years: list[int],
    reference_years: int,
    level: float,
    dependence: bool,
    engine: str,
) -> list[Fit]:
    """One :class:`Fit` per test year, fitted on its own reference years."""
    fits: list[Fit] = []
    if getattr(model, "name", "") in _GLM_STACKABLE:
        # Stack the folds as extra series: series (s, k) holds y_s on fold k's reference years only,
        # so one IRLS call fits every series of every fold on the shared design.
        n_folds, n_series = len(years), panel.n_series
        in_ref = np.zeros((n_folds, panel.n_weeks), dtype=bool)
        for k, y in enumerate(years):
            lo, hi = _reference(y, reference_years)
            in_ref[k] = np.asarray((panel.weeks >= lo) & (panel.weeks <= hi))
        stacked = np.where(in_ref[:, None, :], panel.deaths[None, :, :], np.nan).reshape(
            n_folds * n_series, panel.n_weeks
        )
        exposure = (
            None
            if panel.exposure is None
            else np.tile(panel.exposure, (n_folds, 1)).copy(order="C")
        )
        keys = pd.concat([panel.keys] * n_folds, ignore_index=True)
        big = Panel(keys=keys, weeks=panel.weeks, deaths=stacked, exposure=exposure)
        lo, _ = _reference(years[0], reference_years)
        _, hi = _reference(years[-1], reference_years)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = model.fit(big, reference=(lo, hi), engine=engine)  # type: ignore[arg-type]
        assert isinstance(result, GLMResult)
        for k, y in enumerate(years):
            idx = np.arange(k * n_series, (k + 1) * n_series)
            fits.append(
                Fit(
                    panel=panel,
                    result=result.take(idx),
                    model=model,
                    reference=_reference(y, reference_years),
                    level=level,
                    dependence=dependence,
                )
            )
        return fits
    for y in years:
        ref = _reference(y, reference_years)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = model.fit(panel, reference=ref, engine=engine)  # type: ignore[arg-type]
        fits.append(
            Fit(
                panel=panel,
                result=result,
                model=model,
                reference=ref,
                level=level,
                dependence=dependence,
            )
        )
    return fits


def _year_window(panel: Panel, year: int) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """The weeks of ``year`` without leading or trailing weeks that some series lacks."""
    weeks = panel.weeks
    pos = np.flatnonzero(np.asarray(weeks.year == year))
    if pos.size == 0:
        return None
    full = np.all(panel.observed_mask[:, pos], axis=0)
    if not full.any():
        return None
    first, last = np.flatnonzero(full)[[0, -1]]
    return weeks[pos[first]], weeks[pos[last]]


def _score(y: np.ndarray, lower: np.ndarray, upper: np.ndarray, alpha: float) -> np.ndarray:
    """Interval score of [lower, upper] for the truth y."""
    return (
        (upper - lower)
        + (2.0 / alpha) * np.maximum(lower - y, 0.0)
        + (2.0 / alpha) * np.maximum(y - upper, 0.0)
    )


def _evaluate(
    view: Fit, year: int, window: tuple[Any, Any] | None, level_name: str
) -> pd.DataFrame:
    alpha = 1.0 - view.level
    arrays = view._weekly_arrays
    in_year = np.asarray(view.weeks.year == year)
    y = arrays["observed"][:, in_year]
    mu = arrays["expected"][:, in_year]
    lo = arrays["lower"][:, in_year]
    hi = arrays["upper"][:, in_year]
    ok = np.isfinite(y) & np.isfinite(lo) & np.isfinite(hi) & np.isfinite(mu)
    covered = np.where(ok, (y >= lo) & (y <= hi), False)
    with np.errstate(invalid="ignore", divide="ignore"):
        n_weeks = ok.sum(axis=1)
        wk_cov = covered.sum(axis=1) / n_weeks
        wk_width = np.nansum(np.where(ok, (hi - lo) / mu, 0.0), axis=1) / n_weeks
        wk_score = np.nansum(np.where(ok, _score(y, lo, hi, alpha) / mu, 0.0), axis=1) / n_weeks
    _, keys, _ = view._grouping
    out = keys.copy().reset_index(drop=True)
    for col in out.columns:
        out[col] = out[col].astype(str)
    out.insert(0, "level", level_name)
    out["year"] = year
    out["weeks"] = n_weeks
    out["weekly_coverage"] = wk_cov
    out["weekly_width"] = wk_width
    out["weekly_score"] = wk_score
    if window is None:
        for c in ("observed", "expected", "excess", "lower", "upper", "covered", "z"):
            out[f"year_{c}"] = np.nan
        return out
    cum = view.cumulative(*window)
    excess = cum["excess"].to_numpy()
    e_lo, e_hi = cum["excess_lower"].to_numpy(), cum["excess_upper"].to_numpy()
    expected = cum["expected"].to_numpy()
    observed = cum["observed"].to_numpy()
    q = stats.norm.ppf(0.5 + view.level / 2.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        half = (e_hi - e_lo) / 2.0
        out["year_observed"] = observed
        out["year_expected"] = expected
        out["year_excess"] = excess
        out["year_lower"] = e_lo
        out["year_upper"] = e_hi
        good = np.isfinite(e_lo) & np.isfinite(e_hi)
        out["year_covered"] = np.where(good, (e_lo <= 0) & (e_hi >= 0), np.nan)
        out["year_z"] = np.where(good, excess / (half / q), np.nan)
        out["year_bias"] = 100.0 * excess / expected
        out["year_width"] = (e_hi - e_lo) / expected
        # prediction interval of the year's count: [observed - e_hi, observed - e_lo]
        out["year_score"] = _score(observed, observed - e_hi, observed - e_lo, alpha) / expected
    return out


@dataclass
class Backtest:
    """The result of :func:`backtest`.

    Attributes
    ----------
    rows : DataFrame
        One row per level (``series`` or ``by ...``), row keys (strata) and test year: weeks judged,
        weekly coverage, mean weekly width and interval score (relative to expected), the year's
        observed, expected, excess and interval, whether it covers 0, its z (excess / sd), bias
        (% of expected), width and interval score (relative to expected).
    baseline : str
    level : float
    reference_years : int
    years : list of int
    dependence : bool
    intervals : dict
        What the intervals contain (as ``Fit.intervals``).
    """

    rows: pd.DataFrame
    baseline: str
    level: float
    reference_years: int
    years: list[int]
    dependence: bool
    intervals: dict[str, Any]

    def summary(self) -> pd.DataFrame:
        """One row per level: weekly and yearly coverage (%), bias, z spread, width and score.

        Columns: level, rows (row-years), weekly_coverage, yearly_coverage, yearly_z_sd,
        yearly_bias (mean % of expected), yearly_abs_bias, weekly_width, yearly_width,
        weekly_score, yearly_score; the binomial standard errors of the coverages in
        ``weekly_coverage_se`` / ``yearly_coverage_se`` (percentage points, rows taken as
        independent).
        """
        out = []
        for level, g in self.rows.groupby("level", sort=False):
            w = g["weeks"].to_numpy(dtype=float)
            n_w = float(np.nansum(w))
            wk_cov = float(np.nansum(g["weekly_coverage"] * w) / n_w) if n_w else np.nan
            yc = g["year_covered"].dropna().to_numpy(dtype=float)
            z = g["year_z"].dropna().to_numpy(dtype=float)
            out.append(
                {
                    "level": level,
                    "rows": len(g),
                    "weekly_coverage": 100.0 * wk_cov,
                    "weekly_coverage_se": 100.0 * np.sqrt(wk_cov * (1 - wk_cov) / max(n_w, 1)),
                    "yearly_coverage": 100.0 * yc.mean() if yc.size else np.nan,
                    "yearly_coverage_se": 100.0 * np.sqrt(yc.mean() * (1 - yc.mean()) / yc.size)
                    if yc.size
                    else np.nan,
                    "yearly_z_sd": float(np.std(z)) if z.size else np.nan,
                    "yearly_bias": float(np.nanmean(g["year_bias"])),
                    "yearly_abs_bias": float(np.nanmean(np.abs(g["year_bias"]))),
                    "weekly_width": float(np.nansum(g["weekly_width"] * w) / n_w)
                    if n_w
                    else np.nan,
                    "yearly_width": float(np.nanmean(g["year_width"])),
                    "weekly_score": float(np.nansum(g["weekly_score"] * w) / n_w)
                    if n_w
                    else np.nan,
                    "yearly_score": float(np.nanmean(g["year_score"])),
                }
            )
        return pd.DataFrame(out)

    def by_year(self) -> pd.DataFrame:
        """Coverage and mean yearly z by level and test year (common shocks show up here)."""
        g = self.rows.groupby(["level", "year"], sort=False)
        return pd.DataFrame(
            {
                "weekly_coverage": 100.0
                * g.apply(
                    lambda d: np.nansum(d["weekly_coverage"] * d["weeks"]) / d["weeks"].sum()
                ),
                "yearly_coverage": 100.0 * g["year_covered"].mean(),
                "yearly_z_mean": g["year_z"].mean(),
                "yearly_bias": g["year_bias"].mean(),
            }
        ).reset_index()

    # ------------------------------------------------------------------ display
    def _title(self) -> str:
        span = f"{self.years[0]}-{self.years[-1]}" if self.years else "none"
        return (
            f"excessmort.Backtest {self.baseline}: test years {span}, {self.reference_years}-year "
            f"references, {self.level:.0%} intervals ({self.intervals['text']})"
        )

    def __repr__(self) -> str:
        table = self.summary().round(2).to_string(index=False)
        return f"{self._title()}\n{table}"

    def _repr_html_(self) -> str:
        from html import escape

        return f"<p><b>{escape(self._title())}</b></p>" + self.summary().round(2).to_html(
            index=False
        )

    def plot(self, ax: Any = None, **kwargs: Any) -> Any:
        """Weekly and yearly coverage per level against the target band (bars with 2 SE).

        Returns
        -------
        matplotlib.axes.Axes

        Raises
        ------
        ImportError
            When matplotlib (the ``excessmort[plot]`` extra) is missing.
        """
        try:
            import matplotlib.pyplot as plt
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("plotting needs matplotlib: pip install 'excessmort[plot]'") from exc
        s = self.summary()
        if ax is None:
            _, ax = plt.subplots(figsize=kwargs.pop("figsize", (6, 3.5)))
        x = np.arange(len(s))
        ax.bar(x - 0.2, s["weekly_coverage"], 0.4, yerr=2 * s["weekly_coverage_se"], label="weekly")
        ax.bar(x + 0.2, s["yearly_coverage"], 0.4, yerr=2 * s["yearly_coverage_se"], label="yearly")
        ax.axhline(100 * self.level, color="k", lw=1, ls="--", label=f"nominal {self.level:.0%}")
        ax.set_xticks(x, s["level"])
        ax.set_ylabel("coverage (%)")
        ax.set_ylim(
            min(50.0, float(np.nanmin(s[["weekly_coverage", "yearly_coverage"]].to_numpy())) - 5),
            100,
        )
        ax.set_title(f"backtest: {self.baseline}, {self.years[0]}-{self.years[-1]}")
        ax.legend(loc="lower right", fontsize="small")
        return ax


def backtest(
    frame: Any,
    *,
    baseline: str | Baseline = "quasipoisson",
    years: Sequence[int] | None = None,
    reference_years: int = 5,
    level: float = 0.95,
    by: Sequence[str] | Sequence[Sequence[str]] | None = None,
    dependence: bool = True,
    engine: str = "auto",
    **options: Any,
) -> Backtest:
    """Rolling-origin backtest: for each test year, fit on the years before it, judge its intervals.

    Parameters
    ----------
    frame : DataFrame or path
        As :func:`excessmort.fit` (deaths must be whole counts).
    baseline : str or Baseline
        Any baseline, with ``**options``.
    years : sequence of int, optional
        Test years (years without excess). Default: every full year with ``reference_years`` years
        before it in the data, up to 2019.
    reference_years : int, default 5
        Years each fold is fitted on (the years just before its test year).
    level : float, default 0.95
    by : sequence of str, or a sequence of them, optional
        Aggregates judged beside the series, as :meth:`excessmort.Fit.by` arguments: ``("country",)``
        for country totals, ``()`` for the total, ``[("region",), ()]`` for several.
    dependence : bool, default True
        As :func:`excessmort.fit`; ``False`` judges the independence intervals.
    engine : {"auto", "numba", "numpy"}

    Returns
    -------
    Backtest

    Raises
    ------
    InputError
        For bad input or options, or test years without enough history.

    Examples
    --------
    >>> import excessmort as em
    >>> bt = em.backtest(em.demo_data(), years=[2016, 2017], reference_years=5)  # doctest: +SKIP
    >>> bt.summary()  # doctest: +SKIP
    """
    level = validate_level(level)
    if (
        isinstance(reference_years, bool)
        or not isinstance(reference_years, int | np.integer)
        or reference_years < 2
    ):
        raise InputError(
            f"reference_years must be an integer >= 2, got {reference_years!r}",
            column="reference_years",
            value=reference_years,
        )
    model = get_baseline(baseline, **options)
    tidy = _as_tidy(frame)
    panel = Panel.from_frame(tidy)
    test_years = _years(panel, years, int(reference_years))
    if by is None:
        levels: list[tuple[str, ...]] = []
    elif len(by) == 0 or isinstance(next(iter(by)), str):
        levels = [tuple(by)]  # type: ignore[arg-type]
    else:
        levels = [tuple(b) for b in by]  # type: ignore[union-attr]
    for lv in levels:
        unknown = [s for s in lv if s not in panel.strata]
        if unknown:
            raise InputError(
                f"by: unknown strata {unknown}; the data's strata are {panel.strata}",
                column="by",
                value=unknown,
            )
    fits = _fold_fits(panel, model, test_years, int(reference_years), level, dependence, engine)
    frames = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for year, f in zip(test_years, fits, strict=True):
            window = _year_window(panel, year)
            frames.append(_evaluate(f, year, window, "series"))
            for lv in levels:
                name = "by " + (", ".join(lv) if lv else "total")
                frames.append(_evaluate(f.by(*lv), year, window, name))
    rows = pd.concat(frames, ignore_index=True)
    return Backtest(
        rows=rows,
        baseline=model.name,
        level=level,
        reference_years=int(reference_years),
        years=test_years,
        dependence=bool(dependence),
        intervals=fits[0].intervals,
    )
