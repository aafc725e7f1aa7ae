"""numpy twin of the IRLS kernels: the same algorithm, batched with einsum + solve.

The oracle for the numba kernels in tests and the ``engine="numpy"`` fallback. Each series stops on
its own by R's rule; converged series are frozen while the others iterate.
"""

from __future__ import annotations

import numpy as np

from ._layout import MAX_HALVINGS as _MAX_HALVINGS
from ._layout import STATUS_CONVERGED, STATUS_MAX_ITER, STATUS_SINGULAR


def _deviance(y: np.ndarray, mu: np.ndarray, use: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        term = np.where(y > 0, y * np.log(y / mu) - (y - mu), mu)
    return 2.0 * np.where(use, term, 0.0).sum(axis=1)


def _chol_ok(A: np.ndarray) -> np.ndarray:
    """Which [p, p] matrices of a batch are numerically positive definite (same test as the kernel)."""
    ok = np.ones(A.shape[0], dtype=bool)
    for i in range(A.shape[0]):
        try:
            L = np.linalg.cholesky(A[i])
            ok[i] = bool(np.all(np.diag(L) ** 2 > 1e-12 * np.abs(np.diag(A[i]))))
        except np.linalg.LinAlgError:
            ok[i] = False
    return ok


def irls_poisson_batched_ref(
    X: np.ndarray, Y: np.ndarray, OFF: np.ndarray, ref: np.ndarray, max_iter: int, tol: float
) -> dict[str, np.ndarray]:
    """Batched Poisson IRLS in numpy; returns the same arrays as the numba kernel."""
    n_series, T = Y.shape
    p = X.shape[1]
    off = np.broadcast_to(OFF, (n_series, T)) if OFF.shape[0] != n_series else OFF
    use = ref[None, :] & np.isfinite(Y) & np.isfinite(off)
    n_obs = use.sum(axis=1)
    y = np.where(use, Y, 0.0)
    offz = np.where(use, off, 0.0)
    mu = np.where(use, y + 0.1, 1.0)
    eta = np.log(mu)
    dev_old = _deviance(y, mu, use)
    beta = np.zeros((n_series, p))
    status = np.full(n_series, STATUS_MAX_ITER, dtype=np.int64)
    status[n_obs < p] = STATUS_SINGULAR
    n_iter = np.zeros(n_series, dtype=np.int64)
    active = status == STATUS_MAX_ITER
    dev = dev_old.copy()
    for it in range(1, max_iter + 1):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        n_iter[idx] = it
        w = np.where(use[idx], mu[idx], 0.0)
        z = eta[idx] - offz[idx] + (y[idx] - mu[idx]) / mu[idx]
        A = np.einsum("st,tj,tk->sjk", w, X, X)
        b = np.einsum("st,tj->sj", w * z, X)
        ok = _chol_ok(A)
        status[idx[~ok]] = STATUS_SINGULAR
        idx, A, b = idx[ok], A[ok], b[ok]
        if idx.size == 0:
            break
        beta_new = np.linalg.solve(A, b[..., None])[..., 0]
        eta_new = beta_new @ X.T + offz[idx]
        mu_new = np.exp(eta_new)
        d = _deviance(y[idx], mu_new, use[idx])
        if it > 1:
            for _ in range(_MAX_HALVINGS):
                bad = ~np.isfinite(d) | (d > dev_old[idx] * (1.0 + 1e-12))
                if not bad.any():
                    break
                beta_new[bad] = 0.5 * (beta_new[bad] + beta[idx[bad]])
                eta_new[bad] = beta_new[bad] @ X.T + offz[idx[bad]]
                mu_new[bad] = np.exp(eta_new[bad])
                d[bad] = _deviance(y[idx[bad]], mu_new[bad], use[idx[bad]])
        fin = np.isfinite(d)
        status[idx[~fin]] = STATUS_SINGULAR
        idx, beta_new, eta_new, mu_new, d = (
            idx[fin],
            beta_new[fin],
            eta_new[fin],
            mu_new[fin],
            d[fin],
        )
        beta[idx] = beta_new
        eta[idx] = eta_new
        mu[idx] = mu_new
        conv = np.abs(d - dev_old[idx]) / (np.abs(d) + 0.1) < tol
        dev_old[idx] = d
        dev[idx] = d
        status[idx[conv]] = STATUS_CONVERGED
        active = status == STATUS_MAX_ITER
    fitted = status != STATUS_SINGULAR
    w = np.where(use, mu, 0.0)
    A = np.einsum("st,tj,tk->sjk", w, X, X)
    ok = fitted.copy()
    ok[fitted] = _chol_ok(A[fitted])
    status[fitted & ~ok] = STATUS_SINGULAR
    cov = np.full((n_series, p, p), np.nan)
    cov[ok] = np.linalg.inv(A[ok])
    with np.errstate(divide="ignore", invalid="ignore"):
        pearson = np.where(use, (y - mu) ** 2 / mu, 0.0).sum(axis=1)
    beta_out = np.where(ok[:, None], beta, np.nan)
    mu_all = np.exp(beta_out @ X.T + (off if off.shape == (n_series, T) else 0.0))
    dev = np.where(ok, dev, np.nan)
    pearson = np.where(ok, pearson, np.nan)
    return {
        "beta": beta_out,
        "cov": cov,
        "mu": mu_all,
        "status": status,
        "n_iter": n_iter,
        "deviance": dev,
        "pearson": pearson,
        "n_obs": n_obs.astype(np.int64),
    }


def quad_form_rows_ref(X: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """out[s, t] = x_t' cov[s] x_t."""
    return np.einsum("tj,sjk,tk->st", X, cov, X)
