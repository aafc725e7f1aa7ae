"""numba: variances of running sums of a serially correlated series (numpy twin: dependence_ref.py).

Rows g (groups) are independent problems; week t of row g has standard deviation s[g, t] and two
weeks k apart have correlation rho[g, k - 1] for k = 1..L (estimated lags) and A[g] phi[g]^(k - 1)
beyond (a geometric, ARMA(1, 1), tail). The variance of the running sum up to week k is

    V_k = V_{k-1} + s_k^2 + 2 s_k (sum_{j=1..L} rho_j s_{k-j} + A phi^L q_k),
    q_k = phi q_{k-1} + s_{k-L-1},

so every prefix comes in O(W L) per row instead of the O(W^2) of the full covariance.
"""

from __future__ import annotations

import numpy as np

from ._jit import jit, jit_parallel, prange


@jit
def _row(s: np.ndarray, rho: np.ndarray, a: float, phi: float, out: np.ndarray) -> None:
    n_lags = rho.shape[0]
    tail = a * phi**n_lags
    total = 0.0
    q = 0.0
    for k in range(s.shape[0]):
        if k - n_lags - 1 >= 0:
            q = phi * q + s[k - n_lags - 1]
        cross = tail * q
        for j in range(1, min(n_lags, k) + 1):
            cross += rho[j - 1] * s[k - j]
        sk = s[k]
        total += sk * sk + 2.0 * sk * cross
        out[k] = total


@jit_parallel
def running_variance(
    s: np.ndarray, rho: np.ndarray, a: np.ndarray, phi: np.ndarray, out: np.ndarray
) -> None:
    """out[g, k] = variance of sum_{t <= k} of row g (prange over rows)."""
    for g in prange(s.shape[0]):
        _row(s[g], rho[g], a[g], phi[g], out[g])


@jit
def running_variance_serial(
    s: np.ndarray, rho: np.ndarray, a: np.ndarray, phi: np.ndarray, out: np.ndarray
) -> None:
    """As :func:`running_variance`, without threads (for thread pools on the workqueue layer)."""
    for g in range(s.shape[0]):
        _row(s[g], rho[g], a[g], phi[g], out[g])
