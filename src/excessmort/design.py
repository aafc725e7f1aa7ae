"""DesignMatrix: one X [T, p] built once per panel and shared by every series.

Columns (DESIGN.md "Statistics"): intercept; linear trend tau_t = (d_t - 2000-01-01 in days) / 365.25
(years); K Fourier pairs sin(2 pi k tau_t), cos(2 pi k tau_t) on a 365.25-day year; optionally the
producer's bank-holiday registration indicators (:func:`excessmort.calendar_terms.holiday_indicators`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ._typing import FloatArray

__all__ = ["ORIGIN", "DesignMatrix", "build_design", "years_since_origin"]

#: Origin of tau, the time in years used by the trend and the harmonics.
ORIGIN = pd.Timestamp("2000-01-01")


def years_since_origin(weeks: pd.DatetimeIndex) -> FloatArray:
    """tau_t = (d_t - 2000-01-01 in days) / 365.25."""
    days = (pd.DatetimeIndex(weeks) - ORIGIN) / pd.Timedelta(days=1)
    return np.asarray(days, dtype=np.float64) / 365.25


@dataclass(frozen=True)
class DesignMatrix:
    """The shared design: ``X`` [T, p] (C-contiguous float64) and the term ``names`` [p]."""

    X: FloatArray
    names: tuple[str, ...]
    weeks: pd.DatetimeIndex

    @property
    def n_terms(self) -> int:
        """p, the number of columns."""
        return int(self.X.shape[1])

    def to_frame(self) -> pd.DataFrame:
        """X as a frame indexed by week-ending date, one column per term."""
        return pd.DataFrame(self.X, index=self.weeks, columns=list(self.names))


def build_design(
    weeks: pd.DatetimeIndex,
    *,
    trend: bool = True,
    harmonics: int = 2,
    holidays: bool | str = False,
) -> DesignMatrix:
    """Build the design shared by every series.

    Parameters
    ----------
    weeks : DatetimeIndex
        Week-ending dates [T].
    trend : bool
        Include the linear trend in years (``tau``).
    harmonics : int
        K, the number of Fourier pairs (``sin1, cos1, ..., sinK, cosK``).
    holidays : bool or str
        Include the eight bank-holiday registration indicators of the producer's method: ``True``
        for England and Wales bank holidays, or a country code (``"SE"``, ``"GB-SCT"``) for that
        country's public holidays.

    Returns
    -------
    DesignMatrix

    Examples
    --------
    >>> d = build_design(pd.date_range("2015-01-02", periods=3, freq="7D"))
    >>> d.names
    ('intercept', 'trend', 'sin1', 'cos1', 'sin2', 'cos2')
    """
    if harmonics < 0:
        raise ValueError(f"harmonics must be a non-negative integer, got {harmonics!r}")
    weeks = pd.DatetimeIndex(weeks)
    tau = years_since_origin(weeks)
    cols = [np.ones_like(tau)]
    names = ["intercept"]
    if trend:
        cols.append(tau)
        names.append("trend")
    for k in range(1, harmonics + 1):
        angle = 2.0 * np.pi * k * tau
        cols += [np.sin(angle), np.cos(angle)]
        names += [f"sin{k}", f"cos{k}"]
    if holidays:
        from .calendar_terms import holiday_indicators

        country = holidays if isinstance(holidays, str) else "GB-ENG"
        hol, hol_names = holiday_indicators(weeks, country)
        cols += list(np.asarray(hol, dtype=np.float64).T)
        names += list(hol_names)
    X = np.ascontiguousarray(np.column_stack(cols), dtype=np.float64)
    return DesignMatrix(X=X, names=tuple(names), weeks=weeks)
