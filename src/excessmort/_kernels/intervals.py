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
    """Row g of every column; ``work`` is [3, T] workspace. Each column (or pair) is its own
    loop over the weeks, reading back the bounds already written, so that every loop has few
    arrays and vectorises; the exponentials of the expected bounds are one vectorised pass
    (:func:`~excessmort._kernels.irls.exp_into`, within 2 ulp of ``np.exp``; NaN, inf and
    arguments beyond +-700 go to ``np.exp``). The arithmetic of each cell is that of one pass
    per week (bitwise: tested)."""
    n_cols = mu.shape[1]
    lo_i, hi_i = g * n_cols, (g + 1) * n_cols
    m_, y_, q_, v_ = mu[g], observed[g], param_var[g], obs_var[g]
    arg, e_, sd_ = work[0], work[1], work[2]
    for t in range(n_cols):
        m = m_[t]
        pv = param_scale * q_[t]
        if param_mu2:
            pv = param_scale * (m * m) * q_[t]
        arg[t] = z * (np.sqrt(pv) * (1.0 / m))
    exp_into(arg, e_, sd_, n_cols)
    # pv again rather than kept from the loop above: one loop writing both arg and sd was slower
    # (7.1-7.2 against 5.9-6.0 us/series on one thread, 20,000 x 470, session 12)
    for t in range(n_cols):
        m = m_[t]
        pv = param_scale * q_[t]
        if param_mu2:
            pv = param_scale * (m * m) * q_[t]
        sd_[t] = np.sqrt(obs_scale * v_[t] + pv)
    lower, upper = out[0, lo_i:hi_i], out[1, lo_i:hi_i]
    for t in range(n_cols):
        lower[t] = m_[t] / e_[t]
        upper[t] = m_[t] * e_[t]
    lo_, hi_ = out[2, lo_i:hi_i], out[3, lo_i:hi_i]
    for t in range(n_cols):
        lo = m_[t] - z * sd_[t]
        lo_[t] = 0.0 if lo < 0.0 else lo  # NaN stays NaN
        hi_[t] = m_[t] + z * sd_[t]
    ex_ = out[4, lo_i:hi_i]
    for t in range(n_cols):
        ex_[t] = y_[t] - m_[t]
    ex_lo, ex_hi = out[5, lo_i:hi_i], out[6, lo_i:hi_i]
    for t in range(n_cols):
        ex_lo[t] = y_[t] - hi_[t]
        ex_hi[t] = y_[t] - lo_[t]
    z_, p_ = out[7, lo_i:hi_i], out[8, lo_i:hi_i]
    for t in range(n_cols):
        z_[t] = ex_[t] / sd_[t]
        p_[t] = 100.0 * ex_[t] * (1.0 / m_[t])
    ratio = out[9, lo_i:hi_i]
    for t in range(n_cols):
        m = m_[t]
        ratio[t] = y_[t] * (1.0 / m) if m > 0.0 else np.nan
    ratio_lo = out[10, lo_i:hi_i]
    for t in range(n_cols):
        hi = hi_[t]
        ratio_lo[t] = y_[t] / hi if hi > 0.0 else np.nan
    ratio_hi = out[11, lo_i:hi_i]
    for t in range(n_cols):
        lo = lo_[t]
        y = y_[t]
        r = y / lo
        if not lo > 0.0:  # no upper bound (inf) when lo is 0 and both are finite
            r = np.inf if (lo - lo == 0.0 and y - y == 0.0) else np.nan
        ratio_hi[t] = r


def _interval_columns(
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
    """Fill ``out`` [N_COLUMNS, G * T] from the [G, T] inputs and the [G] scales (see module):
    prange over blocks of :data:`CHUNK` rows, each with its own workspace."""
    n_rows, n_cols = mu.shape
    for c in prange((n_rows + CHUNK - 1) // CHUNK):
        work = np.empty((3, n_cols))
        for g in range(c * CHUNK, min(n_rows, (c + 1) * CHUNK)):
            s_obs, s_par = obs_scale[g], param_scale[g]
            _row(g, observed, mu, obs_var, s_obs, param_var, s_par, param_mu2, z, out, work)


interval_columns = jit_parallel(_interval_columns)
#: :func:`interval_columns` without threads (inside a thread pool on the workqueue layer; prange
#: runs as range).
interval_columns_serial = jit(_interval_columns)
