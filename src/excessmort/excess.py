"""Weekly and cumulative excess, intervals, z-scores and P-scores on arrays (no pandas).

With eta = x' beta, V = phi (X'WX)^-1 and z = Phi^-1(1 - alpha/2) (DESIGN.md "Intervals"):
- expected: mu exp(-+ z se), se = sqrt(var(mu)) / mu (= sqrt(x' V x) for one series);
- prediction: the baseline's rule (normal: mu -+ z sqrt(phi mu + var(mu)), lower clipped at 0);
- excess = y - mu, its bounds y minus the prediction bounds;
- z-score = (y - mu) / sqrt(phi mu + var(mu)); P-score = 100 (y - mu) / mu.
The same formulas serve one series, an aggregate of series and a window of weeks: the caller gives
the variances of the sum, which by default come from the residual-dependence model of
:mod:`excessmort.dependence` (cross-series, serial and year effects; g' V g inflated to match), and
with ``fit(..., dependence=False)`` from independence (sum phi mu + g' V g).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import _stats as stats
from ._typing import FloatArray

__all__ = ["excess_arrays", "validate_level"]

Prediction = Callable[
    [FloatArray, FloatArray, FloatArray, FloatArray, float],
    tuple[FloatArray, FloatArray, FloatArray],
]


def validate_level(level: object) -> float:
    """``level`` as a float in (0, 1), else a ValueError echoing it."""
    from .exceptions import InputError

    if (
        isinstance(level, bool)
        or not isinstance(level, int | float | np.floating)
        or not 0.0 < float(level) < 1.0
    ):
        raise InputError(
            f"level must be a float in (0, 1), e.g. 0.95; got {level!r}",
            column="level",
            value=level,
        )
    return float(level)


def excess_arrays(
    observed: FloatArray,
    mu: FloatArray,
    obs_var: FloatArray,
    param_var: FloatArray,
    level: float,
    prediction: Prediction,
) -> dict[str, FloatArray]:
    """All interval columns for rows of any shape.

    Returns
    -------
    dict
        observed, expected, expected_lower, expected_upper, excess, excess_lower, excess_upper,
        z_score, p_score, and the prediction bounds ``lower``/``upper``.
    """
    z = stats.norm.ppf(0.5 + level / 2.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        se_log = np.sqrt(param_var) / mu
        lower, upper, z_score = prediction(observed, mu, obs_var, param_var, level)
        excess = observed - mu
        exp_lower, exp_upper = mu * np.exp(-z * se_log), mu * np.exp(z * se_log)
        # A baseline may define its own confidence bounds of the expected count (ONS 2024: the
        # count scale); the result's method is found through the bound ``prediction``.
        rule = getattr(getattr(prediction, "__self__", None), "expected_bounds", None)
        own = rule(mu, param_var, level) if rule is not None else None
        if own is not None:
            exp_lower, exp_upper = own
        return {
            "observed": observed,
            "expected": mu,
            "expected_lower": exp_lower,
            "expected_upper": exp_upper,
            "excess": excess,
            "excess_lower": observed - upper,
            "excess_upper": observed - lower,
            "z_score": z_score,
            "p_score": 100.0 * excess / mu,
            "lower": lower,
            "upper": upper,
        }
