"""Stage a monthly release: one fit, nine regional reports, their figures, a manifest and a verdict.

:func:`stage_release` fits once, computes every figure the reports show (weekly by region and by
region x each other stratum, cumulative over the period since the reference ends, over the latest
month and month by month), renders the nine reports (:mod:`.render`), writes the manifest
(:mod:`.manifest`) and the readiness verdict (:mod:`.readiness`), all in a temporary folder that is
renamed into place only when everything has been written::

    OUT/<release-date>/
      manifest.json  readiness.json  index.html  model.json  england-figures.csv/.parquet
      <region-slug>/report.html  figures.csv  figures.parquet  chart-*.svg

``--month`` is the month the release covers: its data reach the last Friday of that month (the last
ONS registration week ending in it); its slot is the release rule's slot of the following month.

Every figure in the files is in one long table (:data:`FIGURE_COLUMNS`): ``table`` is ``weekly`` or
``cumulative``; ``period`` is ``week`` (weekly rows), ``since_reference``, ``latest_month`` or
``running`` (cumulative since the reference ends, to the end of each month; regions only, all
deaths); ``breakdown`` is
``all`` or the stratum the rows are split by, ``level`` its value.
"""

from __future__ import annotations

import calendar as _stdcal
import io
import json
import logging
import math
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._atomic import atomic_directory
from .._dispersion import mean_fitted_count
from .._fit import WEEKLY_COLUMNS
from .._kernels._layout import INTERVAL_COLUMNS
from ..exceptions import InputError
from ..regions import REGIONS, region_name, region_slug
from .manifest import write_manifest
from .render import ReleaseFigures
from .settings import StageSettings, parse_month

__all__ = [
    "CHART_NAMES",
    "ENGLAND_FILES",
    "FIGURE_COLUMNS",
    "MODEL_NAME",
    "REGION_FILES",
    "ReleaseFigures",
    "check_month_in_data",
    "covered_month",
    "last_friday",
    "release_figures",
    "running_totals",
    "stage_release",
]

log = logging.getLogger("excessmort")

MODEL_NAME = "model.json"
READINESS_NAME = "readiness.json"
CHART_NAMES = ("chart-observed.svg", "chart-excess.svg", "chart-ratio.svg", "chart-alarms.svg")
#: The files every region folder holds.
REGION_FILES = ("report.html", "figures.csv", "figures.parquet", *CHART_NAMES)
ENGLAND_FILES = ("england-figures.csv", "england-figures.parquet")
#: The weekly figures of every file: the counts, then the fused interval kernel's columns in its
#: order (the order of ``Fit.weekly``).
VALUE_COLUMNS = ("observed", "expected", *INTERVAL_COLUMNS)
FIGURE_COLUMNS = (
    "region",
    "region_name",
    "table",
    "period",
    "breakdown",
    "level",
    "week_ending",
    "start",
    "end",
    "n_weeks",
    *VALUE_COLUMNS,
)


# --------------------------------------------------------------------------------------------------
# months


def last_friday(month: str | tuple[int, int]) -> pd.Timestamp:
    """The last Friday of ``month``: the last ONS registration week ending in it.

    Examples
    --------
    >>> last_friday("2021-04").date().isoformat()
    '2021-04-30'
    >>> last_friday("2021-05").date().isoformat()
    '2021-05-28'
    """
    year, mon = parse_month(month) if not isinstance(month, tuple) else month
    end = pd.Timestamp(year, mon, _stdcal.monthrange(year, mon)[1])
    return end - pd.Timedelta(days=(end.day_of_week - 4) % 7)


def covered_month(last_week: Any) -> str:
    """The latest complete month of data ending at ``last_week``: the month whose last Friday is the
    latest one on or before it.

    Examples
    --------
    >>> covered_month("2021-04-30"), covered_month("2021-05-21")
    ('2021-04', '2021-04')
    """
    day = pd.Timestamp(last_week).normalize()
    if last_friday((day.year, day.month)) <= day:
        return f"{day.year:04d}-{day.month:02d}"
    prev = day.replace(day=1) - pd.Timedelta(days=1)
    return f"{prev.year:04d}-{prev.month:02d}"


def check_month_in_data(weeks: Any, month: str) -> None:
    """Refuse a month that holds no week of the data, before anything is fitted.

    The period parser's message (:func:`excessmort.periods.resolve_period`) names the month's
    weeks and the data's range. A month the data reach only in part (they stop before its last
    Friday) is staged: the readiness check ``data_coverage`` then fails naming each region's last
    week, which is what the monthly job reports.

    Examples
    --------
    >>> weeks = pd.date_range("2015-01-02", "2021-05-21", freq="7D")
    >>> check_month_in_data(weeks, "2021-05")  # in part: staged, and data_coverage will fail
    >>> check_month_in_data(weeks, "2021-08")
    Traceback (most recent call last):
    ...
    excessmort.exceptions.InputError: month 2021-08 lies outside the data, which run from 2015-01-02 to 2021-05-21 (the period holds the weeks ending 2021-08-06 to 2021-08-27)
    """
    from ..periods import period_bounds, resolve_period

    idx = pd.DatetimeIndex(weeks).sort_values()
    lo, hi, _, _ = period_bounds(month)
    if len(idx) and bool(((idx >= lo) & (idx <= hi)).any()):
        return
    resolve_period(idx, month, what="month")


def _following(month: str) -> tuple[int, int]:
    year, mon = parse_month(month)
    return (year + 1, 1) if mon == 12 else (year, mon + 1)


def _month_label(month: str) -> str:
    year, mon = parse_month(month)
    return f"{_stdcal.month_name[mon]} {year}"


# --------------------------------------------------------------------------------------------------
# figures


def _add_ratio(cols: dict[str, Any]) -> None:
    """Prediction bounds for the count and the observed/expected ratio with its interval.

    The excess interval is observed minus the prediction interval's bounds, so the prediction bounds
    are ``observed - excess_upper`` (lower) and ``observed - excess_lower`` (upper); the ratio's
    bounds are observed divided by them. A lower prediction bound at or below zero leaves the ratio
    without an upper bound (``inf``).
    """
    y = cols["observed"]
    mu = cols["expected"]
    pred_lo = y - cols["excess_upper"]
    pred_hi = y - cols["excess_lower"]
    cols["prediction_lower"] = pred_lo
    cols["prediction_upper"] = pred_hi
    with np.errstate(divide="ignore", invalid="ignore"):
        cols["ratio"] = np.where(mu > 0, y / mu, np.nan)
        cols["ratio_lower"] = np.where(pred_hi > 0, y / pred_hi, np.nan)
        cols["ratio_upper"] = np.where(
            pred_lo > 0,
            y / pred_lo,
            np.where(np.isfinite(pred_lo) & np.isfinite(y), np.inf, np.nan),
        )


def _as_str(column: pd.Series) -> np.ndarray:
    """``column.astype(str).to_numpy()``; for a categorical without missing values from its
    categories and codes (the same strings, without converting every row)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        codes = column.cat.codes.to_numpy()
        if codes.size == 0 or codes.min() >= 0:
            labels = np.asarray(column.cat.categories.astype(str).to_numpy(), dtype=object)
            return labels[codes]
    return column.astype(str).to_numpy()


def _tidy(frame: pd.DataFrame, *, table: str, period: str, breakdown: str | None) -> pd.DataFrame:
    n = len(frame)
    regions = _as_str(frame["region"])
    names = {c: region_name(c) for c in set(regions)}
    cols: dict[str, Any] = {
        "region": regions,
        "region_name": np.array([names[c] for c in regions], dtype=object),
        "table": np.full(n, table, dtype=object),
        "period": np.full(n, period, dtype=object),
        "breakdown": np.full(n, breakdown or "all", dtype=object),
        "level": (_as_str(frame[breakdown]) if breakdown else np.full(n, "all", dtype=object)),
    }
    nat = np.full(n, np.datetime64("NaT", "ns"))
    if table == "weekly":
        cols["week_ending"] = frame["week_ending"].to_numpy().astype("datetime64[ns]")
        cols["start"] = nat
        cols["end"] = nat
        cols["n_weeks"] = np.ones(n, dtype=np.int64)
    else:
        cols["week_ending"] = nat
        cols["start"] = frame["start"].to_numpy().astype("datetime64[ns]")
        cols["end"] = frame["end"].to_numpy().astype("datetime64[ns]")
        cols["n_weeks"] = frame["n_weeks"].to_numpy(dtype=np.int64)
    for col in WEEKLY_COLUMNS:
        cols[col] = frame[col].to_numpy(dtype=float) if col in frame else np.full(n, np.nan)
    _add_ratio(cols)
    return pd.DataFrame({c: cols[c] for c in FIGURE_COLUMNS})


def _month_ends(start: pd.Timestamp, end: pd.Timestamp) -> list[pd.Timestamp]:
    ends = pd.date_range(start, end, freq="ME")
    return [e for e in ends if e < end]


def _view_figures(
    fit: Any,
    keys: tuple[str, ...],
    breakdown: str | None,
    windows: Sequence[tuple[str, pd.Timestamp, pd.Timestamp]],
    lo: pd.Timestamp,
    hi: pd.Timestamp,
    *,
    running: bool,
    history: list[dict[str, Any]] | None = None,
    views: dict[tuple[str, ...], Any] | None = None,
) -> list[pd.DataFrame]:
    view = _view(fit, keys, views)
    weekly = view.weekly
    if history is not None:
        history += _aggregate_history(weekly, keys, breakdown, fit.reference)
    weeks = weekly["week_ending"]
    weekly = weekly[(weeks >= lo) & (weeks <= hi)]
    parts = [_tidy(weekly, table="weekly", period="week", breakdown=breakdown)]
    ends = [end for period, _, end in windows if period == "running"]
    for period, start, end in windows:
        if period == "running":
            continue
        # The release's windows may reach past stale data, which the readiness checks report;
        # the fit's period parser refuses such a window, so it is cut to the data here.
        start = max(pd.Timestamp(start), view.weeks[0])
        end = min(pd.Timestamp(end), view.weeks[-1])
        parts.append(
            _tidy(
                view.cumulative(start, end), table="cumulative", period=period, breakdown=breakdown
            )
        )
    if ends and breakdown is None and running:
        start = next(start for period, start, _ in windows if period == "running")
        start = max(pd.Timestamp(start), view.weeks[0])  # cut to the data, as the windows above
        ends = [min(pd.Timestamp(e), view.weeks[-1]) for e in ends]
        parts.append(
            _tidy(
                running_totals(view, start, ends),
                table="cumulative",
                period="running",
                breakdown=breakdown,
            )
        )
    return parts


def _view(fit: Any, keys: tuple[str, ...], views: dict[tuple[str, ...], Any] | None) -> Any:
    """``fit.by(*keys)``, made once per release: a view caches its weekly arrays, groupings and
    dependence estimates, so the figures and the alarms of the same rows share them."""
    if views is None:
        return fit.by(*keys)
    if keys not in views:
        views[keys] = fit.by(*keys)
    return views[keys]


def running_totals(view: Any, start: pd.Timestamp, ends: Sequence[pd.Timestamp]) -> pd.DataFrame:
    """``concat([view.cumulative(start, e) for e in ends])`` from one running pass.

    :meth:`excessmort.Fit.cumulative_path` gives the cumulative figures from ``start`` to every
    week at once (running sums, and the window variance for every prefix from one cumulative sum
    of g); the rows of each month end are those of its last week. Same figures as the window
    calls (to rounding: sums in another order), one pass instead of one per month.
    """
    last = max(ends)
    path = view.cumulative_path(start, last)
    weeks = view.weeks
    window = np.asarray((weeks >= pd.Timestamp(start)) & (weeks <= last))
    in_window = weeks[window]
    n_weeks = len(in_window)
    strata = [c for c in path.columns if c in (*view.strata, "region_name")]
    n_groups = len(path) // max(n_weeks, 1)
    stamps = in_window.to_numpy()
    ks = [int(np.searchsorted(stamps, np.datetime64(end, "ns"), side="right")) - 1 for end in ends]
    if any(k < 0 for k in ks):  # an end with no week in (start, end]: one window at a time
        return _running_totals_each(view, start, ends, path, in_window, strata, n_groups, ks)
    # every month end's rows at once (end-major, the groups in order within each end)
    k = np.repeat(np.asarray(ks, dtype=np.int64), n_groups)
    rows = path.iloc[np.tile(np.arange(n_groups) * n_weeks, len(ks)) + k].reset_index(drop=True)
    cols: dict[str, Any] = {c: rows[c] for c in strata}
    cols["start"] = in_window[np.zeros(len(k), dtype=np.int64)]
    cols["end"] = in_window[k]
    cols["n_weeks"] = k + 1
    for c in _CUMULATIVE_VALUES:
        cols[c] = rows[c].to_numpy()
    return pd.DataFrame(cols)


def _running_totals_each(
    view: Any,
    start: pd.Timestamp,
    ends: Sequence[pd.Timestamp],
    path: pd.DataFrame,
    in_window: pd.DatetimeIndex,
    strata: list[str],
    n_groups: int,
    ks: list[int],
) -> pd.DataFrame:
    """:func:`running_totals` one month end at a time (when some end has no week)."""
    n_weeks = len(in_window)
    parts = []
    for end, k in zip(ends, ks, strict=True):
        if k < 0:  # no week in (start, end]: as cumulative() would say
            parts.append(view.cumulative(start, end))
            continue
        rows = path.iloc[np.arange(n_groups) * n_weeks + k].reset_index(drop=True)
        out = rows[strata].copy()
        out["start"] = in_window[0]
        out["end"] = in_window[k]
        out["n_weeks"] = k + 1
        for c in _CUMULATIVE_VALUES:
            out[c] = rows[c].to_numpy()
        parts.append(out)
    return pd.concat(parts, ignore_index=True)


_CUMULATIVE_VALUES = ("observed", "expected", "excess", "excess_lower", "excess_upper", "p_score")


_MAD_SCALE = 1.4826  # the MAD of a normal sample times this estimates its standard deviation


def _robust_level(
    values: np.ndarray, in_ref: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median, scaled MAD and number of observed weeks of each row over the reference weeks."""
    ref = np.where(in_ref[None, :], values, np.nan)
    n_ref = np.isfinite(ref).sum(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: NaN, reported as such
        median = np.nanmedian(ref, axis=1)
        mad = _MAD_SCALE * np.nanmedian(np.abs(ref - median[:, None]), axis=1)
    return median, mad, n_ref


def _arg_extreme(values: np.ndarray, mask: np.ndarray, *, largest: bool) -> np.ndarray:
    """Per row, the column of the largest (smallest) finite value inside ``mask``; -1 if none."""
    ok = mask & np.isfinite(values)
    fill = -np.inf if largest else np.inf
    work = np.where(ok, values, fill)
    pos = np.argmax(work, axis=1) if largest else np.argmin(work, axis=1)
    return np.where(ok.any(axis=1), pos, -1)


def _longest_runs(flags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of a boolean [S, T] array, the length and first column of its longest run of True
    (length 0, start -1 when there is none). One pass over the flattened array, no loop."""
    n_rows, n_cols = flags.shape
    if flags.size == 0:
        return np.zeros(n_rows, dtype=np.int64), np.full(n_rows, -1, dtype=np.int64)
    padded = np.concatenate([flags, np.zeros((n_rows, 1), dtype=bool)], axis=1).ravel()
    prev = np.concatenate([[False], padded[:-1]])
    starts = np.flatnonzero(padded & ~prev)
    ends = np.flatnonzero(~padded & prev)  # one past the end of each run (the padding stops it)
    lengths = ends - starts
    rows = starts // (n_cols + 1)
    best_len = np.zeros(n_rows, dtype=np.int64)
    best_start = np.full(n_rows, -1, dtype=np.int64)
    if starts.size:
        order = np.lexsort((-lengths, rows))  # per row, the longest (then the earliest) first
        first = order[np.r_[True, rows[order][1:] != rows[order][:-1]]]
        best_len[rows[first]] = lengths[first]
        best_start[rows[first]] = starts[first] - rows[first] * (n_cols + 1)
    return best_len, best_start


def _week_value(weeks: pd.DatetimeIndex, values: np.ndarray, pos: np.ndarray, s: int) -> Any:
    p = int(pos[s])
    if p < 0:
        return None
    return {"week": weeks[p].date().isoformat(), "value": _json_float(values[s, p])}


def _series_history(fit: Any, hi: pd.Timestamp) -> tuple[list[dict[str, Any]], np.ndarray | None]:
    """Per-series statistics of the reference weeks and the extremes of every week up to ``hi``.

    What the plausibility checks of :mod:`.readiness` compare the figures with, without refitting:
    the reference median and scaled MAD of the observed counts; the largest and smallest count (any
    week up to ``hi``); the largest deaths / population; the largest and smallest expected deaths of
    the period reported; the longest run of zero counts and of one repeated count.
    """
    panel = fit.panel
    weeks = pd.DatetimeIndex(panel.weeks)
    deaths = np.asarray(panel.deaths, dtype=float)
    upto = np.asarray(weeks <= hi)
    ref = fit.reference
    in_ref = np.asarray((weeks >= ref[0]) & (weeks <= ref[1])) if ref else np.zeros_like(upto)
    reported = upto & ~in_ref & (np.asarray(weeks > ref[1]) if ref else True)
    median, mad, n_ref = _robust_level(deaths, in_ref)
    top = _arg_extreme(deaths, upto[None, :], largest=True)
    low = _arg_extreme(deaths, upto[None, :], largest=False)
    mu = np.asarray(fit.result.mu, dtype=float)
    mu_top = _arg_extreme(mu, reported[None, :], largest=True)
    mu_low = _arg_extreme(mu, reported[None, :], largest=False)
    mu_bad = reported[None, :] & ~np.isfinite(mu)
    seen = np.isfinite(deaths) & upto[None, :]
    zero_len, zero_at = _longest_runs(seen & (deaths == 0))
    same = np.zeros_like(seen)
    same[:, 1:] = seen[:, 1:] & seen[:, :-1] & (deaths[:, 1:] == deaths[:, :-1])
    flat_len, flat_at = _longest_runs(same)  # k equal steps: k + 1 weeks of one count
    exposure = getattr(panel, "exposure", None)
    rate = rate_top = None
    if exposure is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = deaths / np.asarray(exposure, dtype=float)
        rate_top = _arg_extreme(rate, upto[None, :], largest=True)
    out = []
    for s in range(panel.n_series):
        row: dict[str, Any] = {
            "reference_weeks": int(n_ref[s]),
            "median": _json_float(median[s]),
            "mad": _json_float(mad[s]),
            "max": _week_value(weeks, deaths, top, s),
            "min": _week_value(weeks, deaths, low, s),
            "expected_max": _week_value(weeks, mu, mu_top, s),
            "expected_min": _week_value(weeks, mu, mu_low, s),
            "expected_nonfinite": int(mu_bad[s].sum()),
            "zero_run": (
                {"weeks": int(zero_len[s]), "from": weeks[zero_at[s]].date().isoformat()}
                if zero_len[s]
                else None
            ),
            "flat_run": (
                {
                    "weeks": int(flat_len[s]) + 1,
                    "from": weeks[flat_at[s] - 1].date().isoformat(),
                    "value": _json_float(deaths[s, flat_at[s]]),
                }
                if flat_len[s]
                else None
            ),
        }
        if rate is not None and rate_top is not None:
            row["rate_max"] = _week_value(weeks, rate, rate_top, s)
        out.append(row)
    return out, in_ref


def _aggregate_history(
    weekly: pd.DataFrame, keys: tuple[str, ...], breakdown: str | None, ref: Any
) -> list[dict[str, Any]]:
    """Reference median and scaled MAD of the observed deaths of every row group of a view (a
    region, a region x stratum level, England, an England x stratum level)."""
    if ref is None or not len(weekly):
        return []
    weeks = weekly["week_ending"]
    part = weekly.loc[(weeks >= ref[0]) & (weeks <= ref[1])]
    by = ["region", breakdown] if breakdown else ["region"]
    keys_of = [part[c].astype(str) for c in by]
    values = part["observed"].astype(float)
    groups = values.groupby(keys_of, sort=True)
    median = groups.median()
    deviation = (values - groups.transform("median")).abs()
    mad = _MAD_SCALE * deviation.groupby(keys_of, sort=True).median()
    count = groups.count()
    out = []
    for key in median.index:
        k = key if isinstance(key, tuple) else (key,)
        region = str(k[0])
        out.append(
            {
                "region": region,
                "breakdown": breakdown or "all",
                "level": str(k[1]) if breakdown else "all",
                "reference_weeks": int(count.loc[key]),
                "median": _json_float(median.loc[key]),
                "mad": _json_float(mad.loc[key]),
            }
        )
    return out


def _model_info(
    fit: Any,
    lo: pd.Timestamp,
    hi: pd.Timestamp,
    aggregates: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Per-series convergence, dispersion, data coverage and history statistics, and the reference
    statistics of every aggregate in the figures (read by the readiness checks)."""
    diag = fit.diagnostics
    panel = fit.panel
    weeks = panel.weeks
    deaths = np.asarray(panel.deaths, dtype=float)
    present = np.isfinite(deaths)
    in_period = np.asarray((weeks >= lo) & (weeks <= hi))
    series = []
    strata = list(panel.strata)
    keys = panel.keys
    history, _ = _series_history(fit, hi)
    # the dispersion rule's inputs: the fit's own check and each series' mean fitted count
    mean_count = mean_fitted_count(deaths, fit.result.fit_mask, fit._engine)
    # columns as arrays once (a pandas lookup per series and column cost more than the rest)
    key_values = {k: keys[k].to_numpy() for k in strata}
    converged, n_iter, dispersion, dispersion_raw = (
        diag[c].to_numpy() for c in ("converged", "n_iter", "dispersion", "dispersion_raw")
    )
    iso = [d.isoformat() for d in weeks.date]
    for s in range(panel.n_series):
        seen = np.flatnonzero(present[s])
        missing = np.flatnonzero(in_period & ~present[s])
        row: dict[str, Any] = {k: str(key_values[k][s]) for k in strata}
        row.update(
            converged=bool(converged[s]),
            n_iter=int(n_iter[s]),
            dispersion=_json_float(dispersion[s]),
            dispersion_raw=_json_float(dispersion_raw[s]),
            mean_count=_json_float(mean_count[s]),
            first_week=iso[seen[0]] if seen.size else None,
            last_week=iso[seen[-1]] if seen.size else None,
            missing_weeks=[iso[i] for i in missing],
            history=history[s],
        )
        series.append(row)
    ref = fit.reference
    return {
        "schema": 1,
        "baseline": fit.baseline,
        "level": fit.level,
        "reference": [ref[0].date().isoformat(), ref[1].date().isoformat()] if ref else None,
        "period": {"start": lo.date().isoformat(), "end": hi.date().isoformat()},
        "strata": strata,
        "intervals": getattr(fit.model, "intervals", None),
        "dispersion_check": _check_json(getattr(fit, "_dispersion_check", "auto")),
        "series": series,
        # The plausibility checks' inputs; stage_release adds the thresholds in force.
        "plausibility": {"aggregates": aggregates or []},
    }


def _check_json(check: Any) -> Any:
    """``fit(dispersion_check=...)`` as JSON: "auto", a cv, a [low, high] pair or null."""
    if check is None or isinstance(check, str):
        return check
    if isinstance(check, tuple | list):
        return [float(check[0]), float(check[1])]
    return float(check)


def _json_float(value: Any) -> float | None:
    v = float(value)
    return v if math.isfinite(v) else None


def _release_alarms(
    fit: Any,
    start: pd.Timestamp,
    end: pd.Timestamp,
    views: dict[tuple[str, ...], Any] | None = None,
) -> dict[str, Any]:
    """EuroMOMO bands, CUSUM and detected excess periods per region and England (issue 19), on the
    release's views (their weekly figures are not computed again)."""
    from ..alarms import release_alarms

    if views is None:
        return release_alarms(fit, start, end)
    return release_alarms(
        fit, start, end, views=(_view(fit, ("region",), views), _view(fit, (), views))
    )


def release_figures(fit: Any, month: str) -> ReleaseFigures:
    """Compute every figure of the release covering ``month`` from a fit (no refitting).

    Parameters
    ----------
    fit : Fit
        A fit whose strata include ``region``.
    month : str
        The month covered, ``YYYY-MM``.

    Returns
    -------
    ReleaseFigures

    Raises
    ------
    InputError
        When the data have no ``region`` stratum, or the month ends before the reference period.
    """
    if "region" not in fit.strata:
        raise InputError(
            f"a regional release needs a 'region' column; the data's strata are {fit.strata}",
            column="region",
            value=None,
        )
    check_month_in_data(fit.weeks, month)
    cover_end = last_friday(month)
    year, mon = parse_month(month)
    month_start = pd.Timestamp(year, mon, 1)
    ref = fit.reference
    ref_end = ref[1] if ref is not None else pd.Timestamp("2019-12-31")
    period_start = ref_end + pd.Timedelta(days=1)
    if cover_end < period_start:
        raise InputError(
            f"month {month} ends (last Friday {cover_end.date()}) before the reference period ends "
            f"({ref_end.date()}); choose a month after the reference period",
            column="month",
            value=month,
        )
    windows: list[tuple[str, pd.Timestamp, pd.Timestamp]] = [
        ("since_reference", period_start, cover_end),
        ("latest_month", month_start, cover_end),
    ]
    windows += [("running", period_start, e) for e in _month_ends(period_start, cover_end)]
    breakdowns = [s for s in fit.strata if s != "region"]
    aggregates: list[dict[str, Any]] = []
    views: dict[tuple[str, ...], Any] = {}
    regional: list[pd.DataFrame] = []
    national: list[pd.DataFrame] = []
    for breakdown in [None, *breakdowns]:
        extra = (breakdown,) if breakdown else ()
        regional += _view_figures(
            fit,
            ("region", *extra),
            breakdown,
            windows,
            period_start,
            cover_end,
            running=True,
            history=aggregates,
            views=views,
        )
        national += _view_figures(
            fit,
            extra,
            breakdown,
            windows,
            period_start,
            cover_end,
            running=False,
            history=aggregates,
            views=views,
        )
    regions_all = pd.concat(regional, ignore_index=True)
    england = pd.concat(national, ignore_index=True)
    regions = {
        code: part.reset_index(drop=True)
        for code, part in regions_all.groupby("region", sort=False)
        if code in REGIONS
    }
    return ReleaseFigures(
        month=month,
        period_start=period_start,
        month_start=month_start,
        cover_end=cover_end,
        breakdowns=breakdowns,
        regions=regions,
        england=england,
        model=_model_info(fit, period_start, cover_end, aggregates),
        reference=ref,
        level=fit.level,
        baseline=fit.baseline,
        last_week=fit.weeks[-1],
        extra={
            "intervals": getattr(fit.model, "intervals", None),
            "first_week": next(iter(fit.weeks[fit.weeks >= period_start]), period_start),
            # Clipped to the data: stale data still reach the readiness check, which names them.
            "alarms": _release_alarms(fit, period_start, min(cover_end, fit.weeks[-1]), views),
        },
    )


# --------------------------------------------------------------------------------------------------
# staging


class _Timer:
    def __init__(self) -> None:
        self.times: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            took = time.perf_counter() - start
            self.times[name] = self.times.get(name, 0.0) + took
            log.info("stage %s took %.2f s", name, took)


def _write_frame(frame: pd.DataFrame, folder: Path, stem: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    frame.to_csv(buf, index=False, date_format="%Y-%m-%d", lineterminator="\n")
    (folder / f"{stem}.csv").write_text(buf.getvalue(), encoding="utf-8")
    frame.to_parquet(folder / f"{stem}.parquet", index=False)


def _release_meta(
    month: str, slot: datetime, config: StageSettings, baseline: str, generated_at: datetime
) -> dict[str, Any]:
    return {
        "month": month,
        "release_date": slot.date().isoformat(),
        "slot": slot.isoformat(),
        "title": config.title,
        "producer": config.producer,
        "baseline": baseline,
        "generated_at": generated_at.astimezone(UTC).isoformat(timespec="seconds"),
    }


def _settings(config: Any) -> StageSettings:
    if isinstance(config, StageSettings):
        return config
    if callable(getattr(config, "stage_settings", None)):
        settings = config.stage_settings()
        if isinstance(settings, StageSettings):
            return settings
    raise InputError(
        "staging needs the release settings: pass config=excessmort.release.load_config(...) or "
        "a StageSettings, or call excessmort.release.stage_release (which loads the configuration)",
        column="config",
        value=config,
    )


def _fit_source(
    source: Any, month: str | None, timer: _Timer, **fit_options: Any
) -> tuple[Any, str]:
    """The fit a release is staged from, and its month (default the latest complete one): ``source``
    itself when it is a Fit, else the deaths table read, cut at the month's last Friday and fitted
    (timed as the "read" and "fit" stages)."""
    from .._fit import Fit
    from .._fit import fit as fit_frame

    if isinstance(source, Fit):
        timer.times["read"] = 0.0
        return source, month or covered_month(source.weeks[-1])
    from ..io import read

    with timer.stage("read"):
        tidy = read(source)
        last = pd.Timestamp(tidy["week_ending"].max())
        month = month or covered_month(last)
        check_month_in_data(pd.unique(tidy["week_ending"]), month)
        tidy = tidy[tidy["week_ending"] <= last_friday(month)].reset_index(drop=True)
    with timer.stage("fit"):
        return fit_frame(tidy, **fit_options), month


def stage_release(
    source: Any,
    *,
    month: str | None = None,
    out: str | Path = "out",
    baseline: Any = "quasipoisson",
    reference: tuple[Any, Any] | None = ("2015-01-01", "2019-12-31"),
    config: Any = None,
    level: float = 0.95,
    live_root: str | Path | None = None,
    now: datetime | None = None,
    allow_pandemic: bool = False,
    allow_short_history: bool = False,
) -> Path:
    """Fit once and stage the release covering ``month`` under ``out/<release-date>/``.

    Parameters
    ----------
    source : DataFrame, path or Fit
        The deaths table (validated with :func:`excessmort.read`) or an existing fit (used as is).
    month : str, optional
        The month the release covers, ``YYYY-MM``; default the latest complete month of the data.
        Frames and paths are cut at the month's last Friday before fitting.
    out : path
        Folder holding staged releases.
    baseline, reference, level
        As in :func:`excessmort.fit` (ignored when ``source`` is a fit).
    config : StageSettings or Config
        What the release side decides (slot, people, thresholds, signing key): a
        :class:`~excessmort.report.settings.StageSettings`, or any object with a
        ``stage_settings()`` method such as :class:`excessmort.release.Config`. ``report/`` reads no
        configuration itself; :func:`excessmort.release.stage_release` loads one (``None``: the
        demo's) and calls this.
    live_root : path, optional
        The live target's root, for the embargo check; default the settings' ``live_root``.
    now : datetime, optional
        The time of the embargo check (default now).
    allow_pandemic, allow_short_history : bool
        As in :func:`excessmort.fit`: fit on a reference reaching into the pandemic weeks, or series
        with fewer reference weeks than the baseline needs (both refused by default).

    Returns
    -------
    Path
        The staged release folder, holding ``readiness.json`` with the verdict.

    Raises
    ------
    InputError
        Bad input data, month or configuration.
    """
    from . import render
    from .readiness import check_figures, check_release, write_readiness

    timer = _Timer()
    started = time.perf_counter()
    cfg = _settings(config)
    if month is not None:
        year, mon = parse_month(month)
        month = f"{year:04d}-{mon:02d}"

    # The render workers fork now, before this staging's fit could start numba's threads, and load
    # matplotlib on the other core while this process reads and fits; the page check runs in them.
    with render.render_workers() as pool:
        fitted, month = _fit_source(
            source,
            month,
            timer,
            baseline=baseline,
            reference=reference,
            level=level,
            allow_pandemic=allow_pandemic,
            allow_short_history=allow_short_history,
        )
        with timer.stage("intervals"):
            figures = release_figures(fitted, month)

        slot, following = cfg.slots(_following(month))
        generated = datetime.now(UTC)
        meta = _release_meta(month, slot, cfg, fitted.baseline, generated)
        final = Path(out) / slot.date().isoformat()
        if live_root is None:
            live_root = cfg.live_root

        with atomic_directory(final) as tmp:
            tmp.chmod(0o755)  # mkdtemp makes it private; a release is meant to be served
            written: list[float] = []
            checked: dict[str, Any] = {}  # the figure checks' verdicts, once their files exist

            def write_figures() -> None:
                """The figure files and model.json: written while the render workers draw."""
                begun = time.perf_counter()
                for code, frame in figures.regions.items():
                    _write_frame(frame, tmp / region_slug(code), "figures")
                _write_frame(figures.england, tmp, "england-figures")
                figures.model.setdefault("plausibility", {})["thresholds"] = asdict(
                    cfg.plausibility
                )
                text = json.dumps(figures.model, indent=1) + "\n"
                (tmp / MODEL_NAME).write_text(text, encoding="utf-8")
                written.append(time.perf_counter() - begun)
                with timer.stage("figure-checks"):  # (while the pages are drawn)
                    checked.update(check_figures(tmp, plausibility=cfg.plausibility, month=month))

            with timer.stage("render"):  # (the figure files are written meanwhile: see "write")
                context = render.ReleaseContext(
                    figures=figures,
                    config=cfg,
                    month=month,
                    month_label=_month_label(month),
                    slot=slot,
                    next_slot=following,
                    generated_at=generated,
                )
                reports = render.render_release(context, tmp, meanwhile=write_figures, pool=pool)
            if not written:  # (a renderer that does not take the work along)
                write_figures()
            write_started = time.perf_counter() - sum(written)
            write_manifest(tmp, meta)
            if cfg.signing_private_key is not None:  # issue 16: optional Ed25519 manifest signature
                from .signing import sign_manifest

                sign_manifest(tmp, cfg.signing_private_key)
            with timer.stage("checks"):  # the pages, manifest and embargo; the figures' verdicts
                readiness = check_release(
                    tmp,
                    live_root=live_root,
                    now=now,
                    plausibility=cfg.plausibility,
                    pool=pool,
                    checked=checked,
                )
            write_readiness(tmp, readiness)
            for name in ("manifest.json", READINESS_NAME):  # written by mkstemp: private until now
                (tmp / name).chmod(0o644)
    # "write": figures, model, manifest, verdict, fsync and the rename into place (checks excluded)
    timer.times["write"] = time.perf_counter() - write_started - timer.times["checks"]
    log.info("stage write took %.2f s", timer.times["write"])
    total = time.perf_counter() - started
    parts = ", ".join(f"{k} {v:.2f} s" for k, v in timer.times.items())
    log.info(
        "staged release %s (%s, %d regional reports) in %.2f s (%s): %s; %s",
        final.name,
        month,
        len(reports),
        total,
        parts,
        final,
        "READY" if readiness.ready else "NOT READY",
    )
    return final
