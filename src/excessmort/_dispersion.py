"""When is a dispersion implausible? One rule for the in-memory fit, the Dask engine and the
readiness gate (issue 17 item 5).

Weekly death rates vary around any baseline by a few per cent that no model of trend and season
explains (a cold week, a heat wave), so var = mu + (cv mu)^2 and the ordinary phi = 1 + cv^2 mu
grows with the counts: about 11 for a region's 1,000 deaths a week with cv = 0.1 (ONS's regions:
phi 5-15). phi is implausible above ``DISPERSION_FACTOR`` times that (and above 10), or below 0.2.
A fixed range of [0.2, 10] would flag every English region.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "DISPERSION_CV",
    "DISPERSION_FACTOR",
    "DISPERSION_RANGE",
    "DispersionJudgement",
    "judge_dispersion",
    "mean_fitted_count",
    "ordinary_dispersion_upper",
]

#: phi below the first is under-dispersion worth a look; the second is the least upper bound.
DISPERSION_RANGE = (0.2, 10.0)
#: cv of the weekly rate that no baseline explains (see the module docstring).
DISPERSION_CV = 0.1
#: How many times the ordinary phi of the counts' size is still plausible.
DISPERSION_FACTOR = 2.0


def ordinary_dispersion_upper(mean_count: Any, cv: float = DISPERSION_CV) -> np.ndarray:
    """The largest phi the size-aware check calls ordinary for series of this mean weekly count.

    Examples
    --------
    >>> ordinary_dispersion_upper(np.array([10.0, 1000.0, 2500.0])).round(1).tolist()
    [10.0, 22.0, 52.0]
    """
    size = DISPERSION_FACTOR * (1.0 + cv**2 * np.asarray(mean_count, dtype=float))
    return np.maximum(DISPERSION_RANGE[1], np.nan_to_num(size, nan=DISPERSION_RANGE[1]))


def mean_fitted_count(deaths: np.ndarray, fit_mask: np.ndarray, engine: str = "auto") -> np.ndarray:
    """Mean weekly count [S] over the weeks each series was fitted on (NaN: none), in one pass
    (:func:`excessmort._kernels.masked_row_means`: no [S, T] temporaries); ``engine`` the fit's."""
    from ._kernels import masked_row_means

    return masked_row_means(deaths, fit_mask, engine)


@dataclass(frozen=True)
class DispersionJudgement:
    """Which series have an implausible phi, and by what rule.

    Attributes
    ----------
    odd : ndarray of bool [S]
        phi finite and outside [lower, upper].
    lower : float
    upper : ndarray [S]
        The largest ordinary phi of each series.
    rule : str
        The rule in words, for messages.
    """

    odd: np.ndarray
    lower: float
    upper: np.ndarray
    rule: str


def judge_dispersion(
    phi: Any, mean_count: Any = None, check: Any = "auto"
) -> DispersionJudgement | None:
    """Judge each series' phi by ``check``, as ``fit(..., dispersion_check=...)`` takes it.

    ``"auto"`` (or a float, the cv) is the size-aware rule of the module docstring, which needs
    the series' mean weekly count over its fitted weeks; a (low, high) pair is a fixed range;
    ``None`` judges nothing (returns None).

    Examples
    --------
    >>> j = judge_dispersion([12.0, 12.0, 0.1], [1200.0, 30.0, 30.0])
    >>> j.odd.tolist(), j.upper.round(1).tolist()
    ([False, True, True], [26.0, 10.0, 10.0])
    >>> judge_dispersion([12.0], check=(0.5, 20)).odd.tolist()
    [False]
    """
    if check is None:
        return None
    values = np.asarray(phi, dtype=float)
    if isinstance(check, tuple | list):
        lo, hi = float(check[0]), float(check[1])
        upper = np.full(values.shape, hi)
        rule = f"outside [{lo:g}, {hi:g}]"
    else:
        cv = DISPERSION_CV if check == "auto" else float(check)
        lo = DISPERSION_RANGE[0]
        size = np.full(values.shape, np.nan) if mean_count is None else mean_count
        upper = ordinary_dispersion_upper(size, cv)
        rule = (
            f"outside what the counts' size makes ordinary (below {lo:g}, or above "
            f"{DISPERSION_FACTOR:g} (1 + {cv:g}^2 x mean weekly count) and "
            f"{DISPERSION_RANGE[1]:g})"
        )
    odd = np.isfinite(values) & ((values < lo) | (values > upper))
    return DispersionJudgement(odd=odd, lower=lo, upper=upper, rule=rule)
