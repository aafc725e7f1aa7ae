"""Population over time: mid-year estimates interpolated to weeks (R excessmort's
``approx_demographics`` idea).

ONS publishes one population estimate per year, for 30 June (mid-year). A weekly offset that jumps
each 1 July, or stays at one year's value for a decade, puts the change of population into the
trend of the baseline. :func:`interpolate_population` draws a straight line between consecutive
mid-year estimates and reads it at every week-ending date; before the first and after the last
estimate it continues the line of the two nearest estimates (``extrapolate="linear"``) or holds
the nearest value (``extrapolate="constant"``, which is also used when a series has one estimate).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .exceptions import InputError

__all__ = ["add_population", "interpolate_population"]


def _mid_year(year: np.ndarray) -> np.ndarray:
    """Days since the epoch of 30 June of each year (float)."""
    dates = pd.to_datetime({"year": year, "month": 6, "day": 30})
    return dates.to_numpy(dtype="datetime64[D]").astype(np.int64).astype(float)


def interpolate_population(
    estimates: pd.DataFrame,
    weeks: Any,
    *,
    by: Sequence[str] | None = None,
    extrapolate: str = "linear",
) -> pd.DataFrame:
    """Weekly population from mid-year estimates, per series.

    Parameters
    ----------
    estimates : DataFrame
        Columns ``year`` (the mid-year of the estimate), ``population`` and the strata ``by``.
    weeks : sequence of dates
        The week-ending dates to read the population at.
    by : sequence of str, optional
        The strata of the estimates (default: every column but ``year`` and ``population``).
    extrapolate : {"linear", "constant"}
        Outside the years estimated: continue the line of the two nearest estimates, or hold the
        nearest one.

    Returns
    -------
    DataFrame
        strata..., ``week_ending``, ``population``: one row per series and week.

    Raises
    ------
    InputError
        For a missing column, a repeated (series, year), a negative or missing population, or an
        unknown ``extrapolate``.

    Examples
    --------
    >>> est = pd.DataFrame({"year": [2019, 2020], "population": [1000.0, 1100.0]})
    >>> out = interpolate_population(est, ["2019-06-30", "2019-12-29", "2021-06-30"])
    >>> out["population"].round(1).tolist()
    [1000.0, 1049.7, 1199.7]
    """
    if extrapolate not in ("linear", "constant"):
        raise InputError(
            f"extrapolate must be 'linear' or 'constant', got {extrapolate!r}",
            column="extrapolate",
            value=extrapolate,
        )
    for col in ("year", "population"):
        if col not in estimates.columns:
            raise InputError(
                f"the population estimates need a {col!r} column; their columns are "
                f"{list(estimates.columns)}",
                column=col,
            )
    strata = (
        [c for c in estimates.columns if c not in ("year", "population")]
        if by is None
        else list(by)
    )
    pop = pd.to_numeric(estimates["population"], errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isfinite(pop) | (pop < 0))
    if bad.size:
        r = int(bad[0])
        raise InputError(
            f"column 'population' has {estimates['population'].iloc[r]!r} at row {r:,}; "
            "populations must be non-negative numbers",
            column="population",
            value=estimates["population"].iloc[r],
            row=r,
        )
    dup = estimates.duplicated([*strata, "year"])
    if dup.any():
        r = int(np.flatnonzero(dup.to_numpy())[0])
        raise InputError(
            f"the population estimates repeat year {estimates['year'].iloc[r]} for one series at "
            f"row {r:,}; give one estimate per series and year",
            column="year",
            value=estimates["year"].iloc[r],
            row=r,
        )
    week_ending = pd.DatetimeIndex(
        pd.to_datetime(list(weeks) if not isinstance(weeks, pd.Index) else weeks)
    )
    t = week_ending.to_numpy(dtype="datetime64[D]").astype(np.int64).astype(float)
    frames = []
    groups = estimates.groupby(strata, observed=True, sort=True) if strata else [((), estimates)]
    for key, part in groups:
        part = part.sort_values("year")
        x = _mid_year(part["year"].to_numpy(dtype=np.int64))
        y = part["population"].to_numpy(dtype=float)
        values = np.interp(t, x, y)
        if extrapolate == "linear" and len(x) >= 2:
            lo, hi = t < x[0], t > x[-1]
            values[lo] = y[0] + (t[lo] - x[0]) * (y[1] - y[0]) / (x[1] - x[0])
            values[hi] = y[-1] + (t[hi] - x[-1]) * (y[-1] - y[-2]) / (x[-1] - x[-2])
            values = np.maximum(values, 0.0)
        out = pd.DataFrame({"week_ending": week_ending, "population": values})
        key = key if isinstance(key, tuple) else (key,)
        for col, val in zip(strata, key, strict=True):
            out.insert(len(out.columns) - 2, col, val)
        frames.append(out)
    return pd.concat(frames, ignore_index=True)


def add_population(
    deaths: pd.DataFrame, estimates: pd.DataFrame, *, extrapolate: str = "linear"
) -> pd.DataFrame:
    """The deaths frame with a weekly ``population`` column interpolated from mid-year estimates.

    The strata shared by both frames join them (``region``, ``sex``, ``age_group``...); every
    series of ``deaths`` must have estimates.

    Raises
    ------
    InputError
        When a series of ``deaths`` has no estimate (the message names it).

    Examples
    --------
    >>> deaths = pd.DataFrame({"week_ending": pd.date_range("2019-01-04", periods=3, freq="7D"),
    ...                        "deaths": [10, 12, 11]})
    >>> est = pd.DataFrame({"year": [2018, 2019], "population": [1000.0, 1010.0]})
    >>> add_population(deaths, est)["population"].round(2).tolist()
    [1005.15, 1005.34, 1005.53]
    """
    frame = deaths.drop(columns=[c for c in ("population",) if c in deaths.columns])
    strata = [
        c for c in estimates.columns if c not in ("year", "population") and c in frame.columns
    ]
    weeks = pd.DatetimeIndex(pd.to_datetime(frame["week_ending"])).unique().sort_values()
    weekly = interpolate_population(
        estimates[[*strata, "year", "population"]], weeks, by=strata, extrapolate=extrapolate
    )
    left = frame.assign(week_ending=pd.to_datetime(frame["week_ending"]))
    for col in strata:
        left[col] = left[col].astype(str)
        weekly[col] = weekly[col].astype(str)
    out = left.merge(weekly, on=[*strata, "week_ending"], how="left")
    missing = out["population"].isna()
    if missing.any():
        r = int(np.flatnonzero(missing.to_numpy())[0])
        series = ", ".join(f"{c}={out[c].iloc[r]}" for c in strata) or "the series"
        raise InputError(
            f"no population estimate for {series}; the estimates cover "
            f"{estimates[strata].drop_duplicates().to_dict('records') if strata else 'one series'}",
            column="population",
            row=r,
        )
    return out
