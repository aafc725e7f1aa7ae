"""numpy reference of :mod:`excessmort._kernels.dependence`: the same recursion, vectorised over rows."""

from __future__ import annotations

import numpy as np


def running_variance_ref(
    s: np.ndarray, rho: np.ndarray, a: np.ndarray, phi: np.ndarray
) -> np.ndarray:
    """[G, W]: variance of every running sum (see the kernel module for the recursion)."""
    n_rows, n_weeks = s.shape
    n_lags = rho.shape[1]
    tail = a * phi**n_lags
    out = np.empty((n_rows, n_weeks))
    total = np.zeros(n_rows)
    q = np.zeros(n_rows)
    for k in range(n_weeks):
        if k - n_lags - 1 >= 0:
            q = phi * q + s[:, k - n_lags - 1]
        cross = tail * q
        for j in range(1, min(n_lags, k) + 1):
            cross = cross + rho[:, j - 1] * s[:, k - j]
        total = total + s[:, k] * s[:, k] + 2.0 * s[:, k] * cross
        out[:, k] = total
    return out


def running_variance_dense(
    s: np.ndarray, rho: np.ndarray, a: np.ndarray, phi: np.ndarray
) -> np.ndarray:
    """The same from the full W x W covariance (an oracle for tests on small arrays)."""
    n_rows, n_weeks = s.shape
    n_lags = rho.shape[1]
    lag = np.abs(np.arange(n_weeks)[:, None] - np.arange(n_weeks)[None, :])
    out = np.empty((n_rows, n_weeks))
    for g in range(n_rows):
        full = np.r_[1.0, rho[g]]
        corr = np.where(
            lag <= n_lags, full[np.minimum(lag, n_lags)], a[g] * phi[g] ** np.maximum(lag - 1, 0)
        )
        cov = s[g][:, None] * s[g][None, :] * corr
        out[g] = [cov[: k + 1, : k + 1].sum() for k in range(n_weeks)]
    return out
