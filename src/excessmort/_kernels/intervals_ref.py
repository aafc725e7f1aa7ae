"""numpy reference of :mod:`excessmort._kernels.intervals`: the same formulas, vectorised."""

from __future__ import annotations

import numpy as np

from ._layout import N_INTERVAL_COLUMNS as N_COLUMNS


def interval_columns_ref(
    observed: np.ndarray,
    mu: np.ndarray,
    obs_var: np.ndarray,
    obs_scale: np.ndarray,
    param_var: np.ndarray,
    param_scale: np.ndarray,
    param_mu2: bool,
    z: float,
) -> np.ndarray:
    """[N_COLUMNS, G * T]: the interval columns of :data:`~excessmort._kernels.intervals.COLUMNS`."""
    n_rows, n_cols = mu.shape
    with np.errstate(invalid="ignore", divide="ignore"):
        ps = param_scale[:, None]
        pv = ps * mu**2 * param_var if param_mu2 else ps * param_var
        ov = obs_scale[:, None] * obs_var
        inv_m = 1.0 / mu
        e = np.exp(z * (np.sqrt(pv) * inv_m))
        sd = np.sqrt(ov + pv)
        lo = np.maximum(mu - z * sd, 0.0)
        hi = mu + z * sd
        ex = observed - mu
        cols = (
            mu / e,
            mu * e,
            lo,
            hi,
            ex,
            observed - hi,
            observed - lo,
            ex / sd,
            100.0 * ex * inv_m,
            np.where(mu > 0, observed * inv_m, np.nan),
            np.where(hi > 0, observed / hi, np.nan),
            np.where(
                lo > 0,
                observed / lo,
                np.where(np.isfinite(lo) & np.isfinite(observed), np.inf, np.nan),
            ),
        )
    out = np.empty((N_COLUMNS, n_rows * n_cols))
    for k, col in enumerate(cols):
        out[k] = col.reshape(-1)
    return out
