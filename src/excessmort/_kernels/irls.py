"""numba kernels: batched Poisson IRLS (log link, offset) over series, and quadratic forms.

Pure functions on C-contiguous float64 arrays; ``prange`` over series only, each series' work
sequential, so results are bitwise identical for any thread count. Status codes per series:
0 converged, 1 not converged within ``max_iter``, 2 singular or too few observations.

The algorithm is R's ``glm.fit`` for the Poisson family: start mu = y + 0.1, weights w = mu, working
response z = eta - offset + (y - mu) / mu, convergence when |dev - dev_old| / (|dev| + 0.1) < tol,
step-halving when the deviance is not finite or rises.
"""

from __future__ import annotations

import numpy as np

from ._jit import jit, jit_parallel, prange

STATUS_CONVERGED = 0
STATUS_MAX_ITER = 1
STATUS_SINGULAR = 2

_MAX_HALVINGS = 30


@jit
def cholesky_lower(A, L):  # type: ignore[no-untyped-def]
    """L L' = A for a symmetric positive definite [p, p]; False when a pivot is not positive."""
    p = A.shape[0]
    for j in range(p):
        s = A[j, j]
        for k in range(j):
            s -= L[j, k] * L[j, k]
        if not (s > 1e-12 * abs(A[j, j])) or not np.isfinite(s):
            return False
        L[j, j] = np.sqrt(s)
        for i in range(j + 1, p):
            s = A[i, j]
            for k in range(j):
                s -= L[i, k] * L[j, k]
            L[i, j] = s / L[j, j]
        for i in range(j):
            L[i, j] = 0.0
    return True


@jit
def cholesky_solve(L, b, x):  # type: ignore[no-untyped-def]
    """Solve L L' x = b."""
    p = L.shape[0]
    for i in range(p):
        s = b[i]
        for k in range(i):
            s -= L[i, k] * x[k]
        x[i] = s / L[i, i]
    for i in range(p - 1, -1, -1):
        s = x[i]
        for k in range(i + 1, p):
            s -= L[k, i] * x[k]
        x[i] = s / L[i, i]


@jit
def _deviance(y, mu, T, ref):  # type: ignore[no-untyped-def]
    dev = 0.0
    for t in range(T):
        if ref[t] and np.isfinite(y[t]):
            if y[t] > 0.0:
                dev += 2.0 * (y[t] * np.log(y[t] / mu[t]) - (y[t] - mu[t]))
            else:
                dev += 2.0 * mu[t]
    return dev


@jit
def _linear_predictor(X, beta, off, has_offset, eta, mu):  # type: ignore[no-untyped-def]
    T, p = X.shape
    for t in range(T):
        e = 0.0
        for j in range(p):
            e += X[t, j] * beta[j]
        if has_offset:
            e += off[t]
        eta[t] = e
        mu[t] = np.exp(e)


@jit
def irls_poisson_one(X, y, off, has_offset, ref, max_iter, tol, beta, cov, mu_out):  # type: ignore[no-untyped-def]
    """Fit one series; writes beta [p], cov = (X'WX)^-1 [p, p] and mu_out [T] (every week).

    Returns (status, n_iter, deviance, pearson_chi2, n_obs).
    """
    T, p = X.shape
    n_obs = 0
    for t in range(T):
        if ref[t] and np.isfinite(y[t]) and (not has_offset or np.isfinite(off[t])):
            n_obs += 1
    beta[:] = np.nan
    cov[:, :] = np.nan
    mu_out[:] = np.nan
    if n_obs < p:
        return STATUS_SINGULAR, 0, np.nan, np.nan, n_obs
    use = np.zeros(T, dtype=np.bool_)
    for t in range(T):
        use[t] = ref[t] and np.isfinite(y[t]) and (not has_offset or np.isfinite(off[t]))
    eta = np.zeros(T)
    mu = np.zeros(T)
    for t in range(T):
        if use[t]:
            mu[t] = y[t] + 0.1
            eta[t] = np.log(mu[t])
    dev_old = _deviance(y, mu, T, use)
    A = np.zeros((p, p))
    L = np.zeros((p, p))
    b = np.zeros(p)
    beta_new = np.zeros(p)
    beta_cur = np.zeros(p)
    eta_new = np.zeros(T)
    mu_new = np.zeros(T)
    status = STATUS_MAX_ITER
    n_iter = 0
    dev = dev_old
    for it in range(1, max_iter + 1):
        n_iter = it
        A[:, :] = 0.0
        b[:] = 0.0
        for t in range(T):
            if use[t]:
                w = mu[t]
                z = eta[t] + (y[t] - mu[t]) / mu[t]
                if has_offset:
                    z -= off[t]
                for j in range(p):
                    xj = X[t, j] * w
                    b[j] += xj * z
                    for k in range(j + 1):
                        A[j, k] += xj * X[t, k]
        for j in range(p):
            for k in range(j):
                A[k, j] = A[j, k]
        if not cholesky_lower(A, L):
            status = STATUS_SINGULAR
            break
        cholesky_solve(L, b, beta_new)
        _linear_predictor(X, beta_new, off, has_offset, eta_new, mu_new)
        dev = _deviance(y, mu_new, T, use)
        if it > 1:
            h = 0
            while (not np.isfinite(dev) or dev > dev_old * (1.0 + 1e-12)) and h < _MAX_HALVINGS:
                for j in range(p):
                    beta_new[j] = 0.5 * (beta_new[j] + beta_cur[j])
                _linear_predictor(X, beta_new, off, has_offset, eta_new, mu_new)
                dev = _deviance(y, mu_new, T, use)
                h += 1
        if not np.isfinite(dev):
            status = STATUS_SINGULAR
            break
        for j in range(p):
            beta_cur[j] = beta_new[j]
        for t in range(T):
            eta[t] = eta_new[t]
            mu[t] = mu_new[t]
        converged = abs(dev - dev_old) / (abs(dev) + 0.1) < tol
        dev_old = dev
        if converged:
            status = STATUS_CONVERGED
            break
    if status == STATUS_SINGULAR:
        return status, n_iter, np.nan, np.nan, n_obs
    # Covariance (X'WX)^-1 at the final mu, and Pearson's chi2.
    A[:, :] = 0.0
    pearson = 0.0
    for t in range(T):
        if use[t]:
            w = mu[t]
            r = y[t] - mu[t]
            pearson += r * r / mu[t]
            for j in range(p):
                xj = X[t, j] * w
                for k in range(j + 1):
                    A[j, k] += xj * X[t, k]
    for j in range(p):
        for k in range(j):
            A[k, j] = A[j, k]
    if not cholesky_lower(A, L):
        return STATUS_SINGULAR, n_iter, dev, pearson, n_obs
    e = np.zeros(p)
    col = np.zeros(p)
    for j in range(p):
        e[:] = 0.0
        e[j] = 1.0
        cholesky_solve(L, e, col)
        for i in range(p):
            cov[i, j] = col[i]
    for j in range(p):
        beta[j] = beta_cur[j]
    _linear_predictor(X, beta_cur, off, has_offset, eta_new, mu_out)
    return status, n_iter, dev, pearson, n_obs


def _irls_batched(X, Y, OFF, ref, max_iter, tol, beta, cov, mu, status, n_iter, dev, pearson, n_obs):  # type: ignore[no-untyped-def]
    n_series = Y.shape[0]
    has_offset = OFF.shape[0] == n_series
    for s in prange(n_series):
        off_row = OFF[s] if has_offset else OFF[0]
        st, it, d, pc, n = irls_poisson_one(
            X, Y[s], off_row, has_offset, ref, max_iter, tol, beta[s], cov[s], mu[s]
        )
        status[s] = st
        n_iter[s] = it
        dev[s] = d
        pearson[s] = pc
        n_obs[s] = n


irls_poisson_batched = jit_parallel(_irls_batched)
irls_poisson_batched_serial = jit(_irls_batched)


def _quad_form_rows(X, cov, out):  # type: ignore[no-untyped-def]
    """out[s, t] = x_t' cov[s] x_t for every series and week."""
    n_series = cov.shape[0]
    T, p = X.shape
    for s in prange(n_series):
        C = cov[s]
        for t in range(T):
            acc = 0.0
            for j in range(p):
                cj = 0.0
                for k in range(p):
                    cj += C[j, k] * X[t, k]
                acc += X[t, j] * cj
            out[s, t] = acc


quad_form_rows = jit_parallel(_quad_form_rows)
quad_form_rows_serial = jit(_quad_form_rows)
