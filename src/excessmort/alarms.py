"""Alarms on any fit: EuroMOMO's z-score bands, a CUSUM on the z-scores, and detected excess periods.

- Bands (EuroMOMO): the weekly z-score (the baseline's own: ``(y - mu) / sqrt(obs var + param
  var)``, on the 2/3-power scale for EuroMOMO) falls in ``< 2`` (band 0, baseline), 2-4 (1,
  moderate), 4-7 (2, high), 7-10 (3, very high), 10-15 (4, extraordinarily high), ``>= 15`` (5,
  exceptional).
- CUSUM (one-sided, upper) on z - k: C_t = max(0, C_{t-1} + z_t - k), C_0 = 0; an alarm when
  C_t > h, after which C is reset to 0 (R ``surveillance``'s ``cusum`` does not reset). Defaults
  k = 0.25 and h from the in-control average run length ARL0 = 20 by Siegmund's approximation as
  EuroMOMO uses it: h = ((ARL0 + 4)/(ARL0 + 2)) ln(ARL0/2 + 1) - 1.16666 (1.4492 for ARL0 = 20).
  A week without a z-score (no data, no estimate) leaves C unchanged and has no statistic.
- Excess periods (R ``excessmort``'s detected intervals): runs of consecutive weeks whose weekly
  excess lower bound is above zero, at least ``min_weeks`` long, each with its cumulative observed,
  expected and excess deaths and the excess interval from :meth:`Fit.cumulative` over the run
  (g' V g + the observation variance of the sum, never a sum of weekly widths).

The CUSUM recursion is vectorised over series (one pass over the weeks on [G] vectors).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ._typing import BoolArray, FloatArray, IntArray
from .exceptions import InputError

if TYPE_CHECKING:
    from ._fit import Fit

__all__ = [
    "BAND_EDGES",
    "BAND_LABELS",
    "Alarms",
    "alarms",
    "cusum",
    "cusum_limit",
    "excess_runs",
    "release_alarms",
    "z_band",
]

#: Lower edges of the EuroMOMO z-score bands 1..5.
BAND_EDGES: tuple[float, ...] = (2.0, 4.0, 7.0, 10.0, 15.0)
#: Labels of the bands 0..5.
BAND_LABELS: tuple[str, ...] = (
    "baseline",
    "moderate",
    "high",
    "very high",
    "extraordinarily high",
    "exceptional",
)


def cusum_limit(arl0: float = 20.0) -> float:
    """h = ((ARL0 + 4)/(ARL0 + 2)) ln(ARL0/2 + 1) - 1.16666.

    Examples
    --------
    >>> round(cusum_limit(20), 4)
    1.4492
    """
    if not np.isfinite(arl0) or arl0 <= 0:
        raise InputError(f"arl0 must be a positive number, got {arl0!r}", column="arl0", value=arl0)
    return float((arl0 + 4.0) / (arl0 + 2.0) * np.log(arl0 / 2.0 + 1.0) - 1.16666)


def z_band(z: FloatArray) -> IntArray:
    """The EuroMOMO band 0..5 of each z-score (-1 where z is NaN).

    Examples
    --------
    >>> z_band(np.array([-3.0, 1.99, 2.0, 6.9, 7.0, 14.9, 15.0, np.nan])).tolist()
    [0, 0, 1, 2, 3, 4, 5, -1]
    """
    z = np.asarray(z, dtype=np.float64)
    out = np.searchsorted(np.asarray(BAND_EDGES), z, side="right").astype(np.int64)
    return np.where(np.isnan(z), -1, out)


def cusum(
    z: FloatArray, k: float = 0.25, h: float | None = None, *, reset: bool = True
) -> tuple[FloatArray, BoolArray]:
    """Upper CUSUM of z - k for every row of z [G, T] at once.

    Parameters
    ----------
    z : ndarray [G, T]
        z-scores; NaN weeks leave the statistic unchanged (and get NaN).
    k : float
        Reference value (allowance).
    h : float, optional
        Decision limit (default :func:`cusum_limit` ``(20)``).
    reset : bool
        Reset the statistic to 0 after each alarm (EuroMOMO); False is the plain CUSUM.

    Returns
    -------
    statistic : ndarray [G, T]
        C_t (before the reset of an alarm week: the value that crossed h).
    alarm : ndarray [G, T] of bool

    Examples
    --------
    >>> c, a = cusum(np.array([[1.0, 1.0, 0.0, -5.0]]), k=0.25, h=1.4)
    >>> c.tolist(), a.tolist()
    ([[0.75, 1.5, 0.0, 0.0]], [[False, True, False, False]])
    """
    z = np.atleast_2d(np.asarray(z, dtype=np.float64))
    h = cusum_limit() if h is None else float(h)
    n_rows, n_weeks = z.shape
    stat = np.full((n_rows, n_weeks), np.nan)
    alarm = np.zeros((n_rows, n_weeks), dtype=bool)
    c = np.zeros(n_rows)
    for t in range(n_weeks):
        zt = z[:, t]
        ok = ~np.isnan(zt)
        new = np.maximum(0.0, np.where(ok, c + zt - k, c))
        hit = ok & (new > h)
        stat[ok, t] = new[ok]
        alarm[:, t] = hit
        c = np.where(ok, np.where(hit & reset, 0.0, new), c)
    return stat, alarm


def excess_runs(flag: BoolArray, min_weeks: int = 1) -> list[tuple[int, int, int]]:
    """Runs of True in each row of flag [G, T]: (row, first week, last week), in row order.

    Examples
    --------
    >>> excess_runs(np.array([[0, 1, 1, 0, 1], [1, 1, 0, 0, 0]], bool))
    [(0, 1, 2), (0, 4, 4), (1, 0, 1)]
    """
    f = np.asarray(flag, dtype=bool)
    padded = np.zeros((f.shape[0], f.shape[1] + 2), dtype=np.int8)
    padded[:, 1:-1] = f
    d = np.diff(padded, axis=1)
    rs, starts = np.nonzero(d == 1)
    re, ends = np.nonzero(d == -1)
    order_s = np.lexsort((starts, rs))
    order_e = np.lexsort((ends, re))
    out = []
    for r, a, b in zip(rs[order_s], starts[order_s], ends[order_e] - 1, strict=True):
        if b - a + 1 >= min_weeks:
            out.append((int(r), int(a), int(b)))
    return out


@dataclass(frozen=True)
class Alarms:
    """Alarms of a fit (or of a :meth:`Fit.by` view).

    Attributes
    ----------
    weekly : DataFrame
        strata..., week_ending, z_score, band (0-5, -1 without a z-score), band_label, cusum,
        alarm.
    periods : DataFrame
        One row per detected excess period: strata..., start, end, n_weeks, observed, expected,
        excess, excess_lower, excess_upper, p_score, max_z.
    k, h : float
        The CUSUM's reference value and limit.
    reset : bool
    """

    weekly: pd.DataFrame
    periods: pd.DataFrame
    k: float
    h: float
    reset: bool


def alarms(
    fit: Fit,
    *,
    k: float = 0.25,
    arl0: float = 20.0,
    h: float | None = None,
    reset: bool = True,
    min_weeks: int = 1,
    start: Any = None,
    end: Any = None,
) -> Alarms:
    """Bands, CUSUM and detected excess periods of every row of ``fit`` (see the module docstring).

    Parameters
    ----------
    fit : Fit
        A fit or a :meth:`Fit.by` view (rows are its series or aggregates).
    k, arl0, h : float
        CUSUM reference value, in-control run length (sets h unless ``h`` is given).
    reset : bool
        Reset after an alarm (EuroMOMO); False for the plain CUSUM.
    min_weeks : int
        Shortest run of weeks with excess lower bound above zero reported as a period.
    start, end : date-like, optional
        Weeks monitored (default: from the week after the reference period, else all).

    Returns
    -------
    Alarms

    Raises
    ------
    InputError
        For a non-positive ``arl0``, ``min_weeks`` below 1, or a period outside the data.
    """
    if not isinstance(min_weeks, int | np.integer) or min_weeks < 1:
        raise InputError(
            f"min_weeks must be an integer >= 1, got {min_weeks!r}",
            column="min_weeks",
            value=min_weeks,
        )
    limit = cusum_limit(arl0) if h is None else float(h)
    weeks = fit.weeks
    if start is None and fit.reference is not None and fit.reference[1] < weeks[-1]:
        start = fit.reference[1] + pd.Timedelta(days=1)
    window = fit._window(
        start if start is not None else weeks[0], end if end is not None else weeks[-1]
    )
    arrays = fit._weekly_arrays
    z = np.asarray(arrays["z_score"], dtype=np.float64)[:, window]
    stat, alarm = cusum(z, k=k, h=limit, reset=reset)
    band = z_band(z)
    _, keys, _ = fit._grouping
    n_rows, n_weeks = z.shape
    shown = weeks[window]
    weekly = keys.iloc[np.repeat(np.arange(n_rows), n_weeks)].reset_index(drop=True)
    weekly["week_ending"] = np.tile(shown.to_numpy(), n_rows)
    weekly["z_score"] = z.reshape(-1)
    weekly["band"] = band.reshape(-1)
    labels = np.asarray(("", *BAND_LABELS), dtype=object)
    weekly["band_label"] = labels[band.reshape(-1) + 1]
    weekly["cusum"] = stat.reshape(-1)
    weekly["alarm"] = alarm.reshape(-1)

    lower = np.asarray(arrays["excess_lower"], dtype=np.float64)[:, window]
    runs = excess_runs(np.nan_to_num(lower, nan=-np.inf) > 0, min_weeks)
    cols = ["observed", "expected", "excess", "excess_lower", "excess_upper", "p_score"]
    periods = _period_figures(fit, keys, shown, z, runs, cols)
    return Alarms(weekly=weekly, periods=periods, k=float(k), h=limit, reset=bool(reset))


def _period_figures(
    fit: Fit,
    keys: pd.DataFrame,
    shown: pd.DatetimeIndex,
    z: FloatArray,
    runs: list[tuple[int, int, int]],
    cols: list[str],
) -> pd.DataFrame:
    """One row per run with the figures :meth:`Fit.cumulative` gives over its weeks, in row then
    start order.

    The numbers are those of ``fit.cumulative(shown[a], shown[b])`` row by row (the same window
    sums, dependence-aware variances and interval calls, once per distinct window), but no frame
    is built per window: the rows are gathered from the arrays and the frame is made once (the
    frames of the per-window calls cost five times the arithmetic on the release's 60-odd
    periods). Pinned equal to the per-window calls in tests/test_alarms.py.
    """
    from .excess import excess_arrays

    if not runs:
        return pd.DataFrame(columns=[*keys.columns, "start", "end", "n_weeks", *cols, "max_z"])
    by_window: dict[tuple[int, int], list[int]] = {}
    for r, a, b in runs:
        by_window.setdefault((a, b), []).append(r)
    res = fit.result
    engine = str(getattr(res, "engine", "auto"))
    n = len(runs)
    row = np.empty(n, dtype=np.int64)
    first = np.empty(n, dtype=np.int64)
    last = np.empty(n, dtype=np.int64)
    n_weeks = np.empty(n, dtype=np.int64)
    values = {c: np.empty(n) for c in cols}
    max_z = np.empty(n)
    at = 0
    for (a, b), members in by_window.items():
        window = fit._window(shown[a], shown[b])
        observed, mu, obs_var, param_var = fit._window_variances(window, running=False)
        arrays = excess_arrays(
            observed, mu, obs_var, param_var, fit.level, res.prediction, engine=engine
        )
        fit._warn_missing(mu, observed, window=window)
        take = slice(at, at + len(members))
        idx = np.asarray(members, dtype=np.int64)
        row[take], first[take], last[take] = idx, a, b
        n_weeks[take] = int(window.sum())
        for c in cols:
            values[c][take] = np.asarray(arrays[c], dtype=np.float64)[idx]
        max_z[take] = [float(np.nanmax(z[r, a : b + 1])) for r in members]
        at += len(members)
    order = np.lexsort((first, row))  # row, then start (each row's runs are disjoint)
    periods = keys.iloc[row[order]].reset_index(drop=True)
    periods["start"] = shown[first[order]]
    periods["end"] = shown[last[order]]
    periods["n_weeks"] = n_weeks[order]
    for c in cols:
        periods[c] = values[c][order]
    periods["max_z"] = max_z[order]
    return periods


def release_alarms(
    fit: Fit, start: Any, end: Any, *, views: tuple[Fit, Fit] | None = None
) -> dict[str, dict[str, pd.DataFrame]]:
    """The alarms a regional release shows: for every region (all its series summed) and England,
    the weekly bands and CUSUM and the detected excess periods over [start, end].

    ``views``: ``(fit.by("region"), fit.by())`` when the caller holds them already (their weekly
    figures are then not computed again).

    Returns
    -------
    dict
        Region code (and the England code) -> ``{"weekly": frame, "periods": frame}``; the frames
        are :class:`Alarms`' with the ``region`` column.
    """
    out: dict[str, dict[str, pd.DataFrame]] = {}
    for view in views if views is not None else (fit.by("region"), fit.by()):
        a = view.alarms(start=start, end=end)
        for code, part in a.weekly.groupby("region", observed=True, sort=False):
            periods = a.periods[a.periods["region"].astype(str) == str(code)]
            out[str(code)] = {
                "weekly": part.reset_index(drop=True),
                "periods": periods.reset_index(drop=True),
            }
    return out
