"""The fused weekly interval kernel: every interval column of a weekly (or cumulative) table in one
pass over the rows, written straight into a preallocated output buffer.

For row g and column t, with expected mu, observed y, observation variance
``ov = obs_scale[g] * obs_var[g, t]`` and parameter variance ``pv = param_scale[g] * param_var[g, t]``
(times ``mu^2`` when ``param_mu2``: the per-series GLM's ``phi mu^2 x' (X'WX)^-1 x`` from
``q = x' (X'WX)^-1 x`` without materialising it) and z = Phi^-1(1 - alpha/2)
(DESIGN.md "Intervals", the normal rule):

- expected bounds: mu exp(-+ z se), se = sqrt(pv) / mu (one exp: the lower bound is mu / exp(z se);
  the exponentials of a row are one vectorised pass, within 2 ulp of ``np.exp``);
- prediction bounds: mu -+ z sqrt(ov + pv), the lower clipped at 0 (NaN stays NaN);
- excess y - mu and its bounds y minus the prediction bounds; z = (y - mu) / sqrt(ov + pv);
  P = 100 (y - mu) / mu;
- ratio y / mu (NaN unless mu > 0) and its bounds y over the prediction bounds (a lower
  prediction bound at or below 0 leaves the ratio without an upper bound: inf).

``out`` is ``[N_COLUMNS, G * T]``, one contiguous row per column in the order of :data:`COLUMNS`,
so that a frame can adopt each row as a column without a copy. Rows are independent (``prange``
over blocks of rows, no reductions): results are bitwise identical for any thread count. The numpy
twin is :func:`excessmort._kernels.intervals_ref.interval_columns_ref`.
"""

from __future__ import annotations

import numpy as np

from ._jit import jit, jit_parallel, prange
from ._layout import INTERVAL_COLUMNS, N_INTERVAL_COLUMNS
from .irls import exp_into

#: The output columns, in the order of the rows of ``out`` (and of ``Fit.weekly``).
COLUMNS = INTERVAL_COLUMNS
N_COLUMNS = N_INTERVAL_COLUMNS


#: Rows per parallel task (each task has its own [3, T] workspace); results do not depend on it.
CHUNK = 64


@jit
def _row(
    g: int,
    observed: np.ndarray,
    mu: np.ndarray,
    obs_var: np.ndarray,
    obs_scale: float,
    param_var: np.ndarray,
    param_scale: float,
    param_mu2: bool,
    z: float,
    out: np.ndarray,
    work: np.ndarray,
) -> None:
    """Row g of every column; ``work`` is [3, T] workspace. The exponentials of the expected
    bounds are one vectorised pass (:func:`~excessmort._kernels.irls.exp_into`, within 2 ulp of
    ``np.exp``; NaN, inf and arguments beyond +-700 go to ``np.exp``), the rest one pass per
    week."""
    n_cols = mu.shape[1]
    base = g * n_cols
    arg = work[0]
    for t in range(n_cols):
        m = mu[g, t]
        pv = param_scale * param_var[g, t]
        if param_mu2:
            pv = param_scale * (m * m) * param_var[g, t]
        arg[t] = z * (np.sqrt(pv) * (1.0 / m))
    exp_into(arg, work[1], work[2], n_cols)
    e_row = work[1]
    for t in range(n_cols):
        m = mu[g, t]
        y = observed[g, t]
        pv = param_scale * param_var[g, t]
        if param_mu2:
            pv = param_scale * (m * m) * param_var[g, t]
        ov = obs_scale * obs_var[g, t]
        inv_m = 1.0 / m
        sd = np.sqrt(ov + pv)
        lo = m - z * sd
        if lo < 0.0:
            lo = 0.0
        hi = m + z * sd
        ex = y - m
        e = e_row[t]
        i = base + t
        out[0, i] = m / e
        out[1, i] = m * e
        out[2, i] = lo
        out[3, i] = hi
        out[4, i] = ex
        out[5, i] = y - hi
        out[6, i] = y - lo
        out[7, i] = ex / sd
        out[8, i] = 100.0 * ex * inv_m
        out[9, i] = y * inv_m if m > 0.0 else np.nan
        out[10, i] = y / hi if hi > 0.0 else np.nan
        if lo > 0.0:
            out[11, i] = y / lo
        elif np.isfinite(lo) and np.isfinite(y):
            out[11, i] = np.inf
        else:
            out[11, i] = np.nan


@jit_parallel
def interval_columns(
    observed: np.ndarray,
    mu: np.ndarray,
    obs_var: np.ndarray,
    obs_scale: np.ndarray,
    param_var: np.ndarray,
    param_scale: np.ndarray,
    param_mu2: bool,
    z: float,
    out: np.ndarray,
) -> None:
    """Fill ``out`` [N_COLUMNS, G * T] from the [G, T] inputs and the [G] scales (see module)."""
    n_rows, n_cols = mu.shape
    for c in prange((n_rows + CHUNK - 1) // CHUNK):
        work = np.empty((3, n_cols))
        for g in range(c * CHUNK, min(n_rows, (c + 1) * CHUNK)):
            _row(
                g,
                observed,
                mu,
                obs_var,
                obs_scale[g],
                param_var,
                param_scale[g],
                param_mu2,
                z,
                out,
                work,
            )


@jit
def interval_columns_serial(
    observed: np.ndarray,
    mu: np.ndarray,
    obs_var: np.ndarray,
    obs_scale: np.ndarray,
    param_var: np.ndarray,
    param_scale: np.ndarray,
    param_mu2: bool,
    z: float,
    out: np.ndarray,
) -> None:
    """:func:`interval_columns` without threads (inside a thread pool on the workqueue layer)."""
    work = np.empty((3, mu.shape[1]))
    for g in range(mu.shape[0]):
        _row(
            g,
            observed,
            mu,
            obs_var,
            obs_scale[g],
            param_var,
            param_scale[g],
            param_mu2,
            z,
            out,
            work,
        )
