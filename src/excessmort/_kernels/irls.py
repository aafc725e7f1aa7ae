"""numba kernels: batched Poisson IRLS (log link, offset) over series, and quadratic forms.

Pure functions on C-contiguous float64 arrays; ``prange`` over fixed-size chunks of series, each
series' work sequential, so results are bitwise identical for any thread count. Status codes per
series: 0 converged, 1 not converged within ``max_iter``, 2 singular or too few observations.

The algorithm is R's ``glm.fit`` for the Poisson family: start mu = y + 0.1, weights w = mu, working
response z = eta - offset + (y - mu) / mu, convergence when |dev - dev_old| / (|dev| + 0.1) < tol,
step-halving when the deviance is not finite or rises. Implementation notes (all exact rewrites):
- X is passed transposed (Xt [p, T]) so inner loops run over contiguous weeks and vectorise;
- every series shares the reference weeks: X and its column-pair products x_tj x_tk are gathered on
  them once for all series, so X'WX is p(p+1)/2 dot products; weeks a series lacks get weight 0;
- the deviance is 2 (K - sum y eta + sum mu) with K = sum (y log y - y) computed once, so the
  iterations need one exp per fitted week and no log;
- w z = mu (eta - offset) + y - mu, so X'Wz needs no division.
"""

from __future__ import annotations

import numpy as np

from ._jit import jit, jit_parallel, jit_reduce, prange

STATUS_CONVERGED = 0
STATUS_MAX_ITER = 1
STATUS_SINGULAR = 2

_MAX_HALVINGS = 30
CHUNK = 32  # series per parallel task; fixed, so results do not depend on the thread count


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


@jit_reduce
def _eta_mu_dev(Xr, beta, offu, yu, m, R, eta, mu):  # type: ignore[no-untyped-def]
    """eta = Xr' beta + off, mu = exp(eta) (0 where m = 0) over the R reference weeks;
    returns (sum y eta, sum mu) over the weeks used."""
    p = Xr.shape[0]
    for r in range(R):
        eta[r] = offu[r]
    for j in range(p):
        bj = beta[j]
        xj = Xr[j]
        for r in range(R):
            eta[r] += xj[r] * bj
    sy = 0.0
    sm = 0.0
    for r in range(R):
        e = np.exp(eta[r])
        mr = e if m[r] > 0.0 else 0.0
        mu[r] = mr
        sy += yu[r] * eta[r]
        sm += mr
    return sy, sm


@jit_reduce
def _weighted_cross_products(Xr, Pr, mu, eta, offu, yu, m, R, A, b, w, rhs, with_b):  # type: ignore[no-untyped-def]
    """A = X' W X from the shared column-pair products Pr, b = X' W z (W = diag(mu) on used weeks)."""
    p = Xr.shape[0]
    for r in range(R):
        w[r] = m[r] * mu[r]
        rhs[r] = w[r] * (eta[r] - offu[r]) + m[r] * (yu[r] - mu[r])
    if with_b:
        for j in range(p):
            xj = Xr[j]
            acc = 0.0
            for r in range(R):
                acc += xj[r] * rhs[r]
            b[j] = acc
    pair = 0
    for j in range(p):
        for k in range(j, p):
            pp = Pr[pair]
            acc = 0.0
            for r in range(R):
                acc += pp[r] * w[r]
            A[j, k] = acc
            A[k, j] = acc
            pair += 1


@jit
def irls_poisson_one(
    Xt, Xr, Pr, ref_idx, y, off, has_offset, max_iter, tol, beta, cov, mu_out, sw, sp
):  # type: ignore[no-untyped-def]
    """Fit one series; writes beta [p], cov = (X'WX)^-1 [p, p] and mu_out [T] (every week).

    ``Xr`` [p, R] and ``Pr`` [p(p+1)/2, R] are the design and its column-pair products on the R
    reference weeks ``ref_idx``; weeks a series lacks get weight 0. ``sw`` is [9, R] and ``sp``
    [2p + 3, p] workspace. Returns (status, n_iter, deviance, pearson_chi2, n_obs).
    """
    p, T = Xt.shape
    R = ref_idx.shape[0]
    beta[:] = np.nan
    cov[:, :] = np.nan
    mu_out[:] = np.nan
    yu = sw[0]
    offu = sw[1]
    m = sw[2]
    eta = sw[3]
    mu = sw[4]
    eta_new = sw[5]
    mu_new = sw[6]
    w = sw[7]
    rhs = sw[8]
    A = sp[0:p]
    L = sp[p : 2 * p]
    b = sp[2 * p]
    beta_new = sp[2 * p + 1]
    beta_cur = sp[2 * p + 2]
    n = 0
    K = 0.0
    dev_old = 0.0
    for r in range(R):
        t = ref_idx[r]
        yt = y[t]
        ot = off[t] if has_offset else 0.0
        if np.isfinite(yt) and np.isfinite(ot):
            m[r] = 1.0
            yu[r] = yt
            offu[r] = ot
            mu[r] = yt + 0.1
            eta[r] = np.log(mu[r])
            n += 1
            if yt > 0.0:
                K += yt * np.log(yt) - yt
                dev_old += yt * np.log(yt / mu[r]) - (yt - mu[r])
            else:
                dev_old += mu[r]
        else:
            m[r] = 0.0
            yu[r] = 0.0
            offu[r] = 0.0
            mu[r] = 0.0
            eta[r] = 0.0
    dev_old *= 2.0
    if n < p:
        return STATUS_SINGULAR, 0, np.nan, np.nan, n
    status = STATUS_MAX_ITER
    n_iter = 0
    dev = dev_old
    for it in range(1, max_iter + 1):
        n_iter = it
        _weighted_cross_products(Xr, Pr, mu, eta, offu, yu, m, R, A, b, w, rhs, True)
        if not cholesky_lower(A, L):
            status = STATUS_SINGULAR
            break
        cholesky_solve(L, b, beta_new)
        sy, sm = _eta_mu_dev(Xr, beta_new, offu, yu, m, R, eta_new, mu_new)
        dev = 2.0 * (K - sy + sm)
        if it > 1:
            h = 0
            while (not np.isfinite(dev) or dev > dev_old * (1.0 + 1e-12)) and h < _MAX_HALVINGS:
                for j in range(p):
                    beta_new[j] = 0.5 * (beta_new[j] + beta_cur[j])
                sy, sm = _eta_mu_dev(Xr, beta_new, offu, yu, m, R, eta_new, mu_new)
                dev = 2.0 * (K - sy + sm)
                h += 1
        if not np.isfinite(dev):
            status = STATUS_SINGULAR
            break
        for j in range(p):
            beta_cur[j] = beta_new[j]
        for r in range(R):
            eta[r] = eta_new[r]
            mu[r] = mu_new[r]
        converged = abs(dev - dev_old) / (abs(dev) + 0.1) < tol
        dev_old = dev
        if converged:
            status = STATUS_CONVERGED
            break
    if status == STATUS_SINGULAR:
        return status, n_iter, np.nan, np.nan, n
    # Covariance (X'WX)^-1 at the final mu, and Pearson's chi2.
    pearson = 0.0
    for r in range(R):
        if m[r] > 0.0:
            d = yu[r] - mu[r]
            pearson += d * d / mu[r]
    _weighted_cross_products(Xr, Pr, mu, eta, offu, yu, m, R, A, b, w, rhs, False)
    if not cholesky_lower(A, L):
        return STATUS_SINGULAR, n_iter, dev, pearson, n
    e = b
    col = beta_new
    for j in range(p):
        e[:] = 0.0
        e[j] = 1.0
        cholesky_solve(L, e, col)
        for i in range(p):
            cov[i, j] = col[i]
    for j in range(p):
        beta[j] = beta_cur[j]
    _expected_all_weeks(Xt, beta_cur, off, has_offset, mu_out)
    return status, n_iter, dev, pearson, n


@jit_reduce
def _expected_all_weeks(Xt, beta, off, has_offset, mu_out):  # type: ignore[no-untyped-def]
    p, T = Xt.shape
    if has_offset:
        for t in range(T):
            mu_out[t] = off[t]
    else:
        for t in range(T):
            mu_out[t] = 0.0
    for j in range(p):
        bj = beta[j]
        xj = Xt[j]
        for t in range(T):
            mu_out[t] += xj[t] * bj
    for t in range(T):
        mu_out[t] = np.exp(mu_out[t])


def _irls_batched(
    Xt, Xr, Pr, ref_idx, Y, OFF, max_iter, tol, beta, cov, mu, status, n_iter, dev, pearson, n_obs
):  # type: ignore[no-untyped-def]
    n_series, T = Y.shape
    p = Xt.shape[0]
    R = ref_idx.shape[0]
    has_offset = OFF.shape[0] == n_series
    n_chunks = (n_series + CHUNK - 1) // CHUNK
    for c in prange(n_chunks):
        sw = np.empty((9, max(R, 1)))
        sp = np.empty((2 * p + 3, p))
        for s in range(c * CHUNK, min(n_series, (c + 1) * CHUNK)):
            off_row = OFF[s] if has_offset else OFF[0]
            st, it, d, pc, n = irls_poisson_one(
                Xt,
                Xr,
                Pr,
                ref_idx,
                Y[s],
                off_row,
                has_offset,
                max_iter,
                tol,
                beta[s],
                cov[s],
                mu[s],
                sw,
                sp,
            )
            status[s] = st
            n_iter[s] = it
            dev[s] = d
            pearson[s] = pc
            n_obs[s] = n


irls_poisson_batched = jit_parallel(_irls_batched)
irls_poisson_batched_serial = jit(_irls_batched)


def _quad_form_rows(P, cov, out):  # type: ignore[no-untyped-def]
    """out[s, t] = x_t' cov[s] x_t, from the column-pair products P[(j,k), t] = x_tj x_tk (j <= k)."""
    n_series = cov.shape[0]
    p = cov.shape[1]
    T = P.shape[1]
    n_chunks = (n_series + CHUNK - 1) // CHUNK
    for c in prange(n_chunks):
        for s in range(c * CHUNK, min(n_series, (c + 1) * CHUNK)):
            row = out[s]
            for t in range(T):
                row[t] = 0.0
            C = cov[s]
            pair = 0
            for j in range(p):
                for k in range(j, p):
                    w = C[j, k] if j == k else 2.0 * C[j, k]
                    Pp = P[pair]
                    for t in range(T):
                        row[t] += w * Pp[t]
                    pair += 1


quad_form_rows = jit_parallel(_quad_form_rows)
quad_form_rows_serial = jit(_quad_form_rows)


def pair_products(X: np.ndarray) -> np.ndarray:
    """P[(j,k), t] = X[t, j] X[t, k] for j <= k, C-contiguous [p (p + 1) / 2, T]."""
    p = X.shape[1]
    rows = [X[:, j] * X[:, k] for j in range(p) for k in range(j, p)]
    return np.ascontiguousarray(np.vstack(rows))
