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

Under the normal rule every column is written in one pass by the fused kernel
:mod:`excessmort._kernels.intervals` (numpy twin beside it) into one buffer that the weekly frame
adopts without copying; baselines with their own rule (EuroMOMO, ONS 2024, WMD, the producer's
quantiles) go through their ``prediction``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import _stats as stats
from ._typing import FloatArray

__all__ = ["excess_arrays", "ratio_columns", "validate_level"]

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


def _is_normal(prediction: Prediction) -> bool:
    """Whether ``prediction`` is the default normal rule (no baseline-specific bounds)."""
    from .baselines._base import BaselineResult, normal_prediction

    owner = getattr(prediction, "__self__", None)
    if owner is None:
        return prediction is normal_prediction
    func = getattr(prediction, "__func__", None)
    return func is BaselineResult.prediction and getattr(owner, "expected_bounds", None) is None


def ratio_columns(
    observed: FloatArray, mu: FloatArray, lower: FloatArray, upper: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """observed / expected and its bounds, observed over the prediction bounds (a lower bound at or
    below zero leaves the ratio without an upper bound: ``inf``)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(mu > 0, observed / mu, np.nan)
        ratio_lower = np.where(upper > 0, observed / upper, np.nan)
        ratio_upper = np.where(
            lower > 0,
            observed / lower,
            np.where(np.isfinite(lower) & np.isfinite(observed), np.inf, np.nan),
        )
    return ratio, ratio_lower, ratio_upper


def excess_arrays(
    observed: FloatArray,
    mu: FloatArray,
    obs_var: FloatArray,
    param_var: FloatArray,
    level: float,
    prediction: Prediction,
    *,
    obs_scale: FloatArray | None = None,
    param_scale: FloatArray | None = None,
    param_mu2: bool = False,
    engine: str = "auto",
) -> dict[str, FloatArray]:
    """All interval columns for rows of any shape.

    Under the default normal rule one fused kernel
    (:func:`excessmort._kernels.interval_columns`) writes every column into one buffer; the
    returned arrays are views of its rows (reshaped to the rows' shape), which a frame adopts
    without copying. ``observed`` and ``expected`` are the inputs themselves. Other rules
    (EuroMOMO, ONS 2024, WMD, the producer's quantiles) go through the baseline's ``prediction``.

    With ``obs_scale``/``param_scale`` [G] (first axis of the rows) the variances are
    ``obs_scale * obs_var`` and ``param_scale * param_var`` (times ``mu^2`` with ``param_mu2``):
    the per-series GLM passes ``mu``, ``q`` and ``phi`` instead of building ``phi mu`` and
    ``phi mu^2 q``.

    Returns
    -------
    dict
        observed, expected, expected_lower, expected_upper, excess, excess_lower, excess_upper,
        z_score, p_score, the prediction bounds ``lower``/``upper`` and ``ratio``,
        ``ratio_lower``, ``ratio_upper``.
    """
    z = stats.norm.ppf(0.5 + level / 2.0)
    observed = np.asarray(observed, dtype=np.float64)
    mu = np.asarray(mu, dtype=np.float64)
    shape = np.broadcast_shapes(observed.shape, mu.shape)
    scaled = obs_scale is not None or param_scale is not None or param_mu2
    if _is_normal(prediction):
        from ._kernels import interval_columns
        from ._kernels._layout import INTERVAL_COLUMNS as COLUMNS

        n_rows = shape[0] if shape else 1
        rows = (n_rows, int(np.prod(shape[1:], dtype=np.int64)))
        arrays = [
            np.broadcast_to(a, shape).reshape(rows) for a in (observed, mu, obs_var, param_var)
        ]
        buf = interval_columns(
            *arrays,
            float(z),
            obs_scale=obs_scale,
            param_scale=param_scale,
            param_mu2=param_mu2,
            engine=engine,  # type: ignore[arg-type]
        )
        cols = {c: buf[k].reshape(shape) for k, c in enumerate(COLUMNS)}
        return {
            "observed": observed,
            "expected": mu,
            "expected_lower": cols["expected_lower"],
            "expected_upper": cols["expected_upper"],
            "excess": cols["excess"],
            "excess_lower": cols["excess_lower"],
            "excess_upper": cols["excess_upper"],
            "z_score": cols["z_score"],
            "p_score": cols["p_score"],
            "lower": cols["prediction_lower"],
            "upper": cols["prediction_upper"],
            "ratio": cols["ratio"],
            "ratio_lower": cols["ratio_lower"],
            "ratio_upper": cols["ratio_upper"],
        }
    if scaled:
        obs_var, param_var = _unscale(mu, obs_var, param_var, obs_scale, param_scale, param_mu2)
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
        ratio, ratio_lower, ratio_upper = ratio_columns(observed, mu, lower, upper)
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
            "ratio": ratio,
            "ratio_lower": ratio_lower,
            "ratio_upper": ratio_upper,
        }


def _unscale(
    mu: FloatArray,
    obs_var: FloatArray,
    param_var: FloatArray,
    obs_scale: FloatArray | None,
    param_scale: FloatArray | None,
    param_mu2: bool,
) -> tuple[FloatArray, FloatArray]:
    """The variances the scaled form of :func:`excess_arrays` stands for, as arrays."""
    extra = (1,) * (np.ndim(mu) - 1)
    ov = obs_var if obs_scale is None else np.reshape(obs_scale, (-1, *extra)) * obs_var
    ps = 1.0 if param_scale is None else np.reshape(param_scale, (-1, *extra))
    pv = ps * mu**2 * param_var if param_mu2 else ps * param_var
    return np.asarray(ov, dtype=np.float64), np.asarray(pv, dtype=np.float64)
