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

from ._jit import jit, jit_parallel, jit_reduce, jit_vector, prange
from ._layout import MAX_HALVINGS as _MAX_HALVINGS
from ._layout import STATUS_CONVERGED, STATUS_MAX_ITER, STATUS_SINGULAR

CHUNK = 32  # series per parallel task; fixed, so results do not depend on the thread count


# exp(x) = 2^k exp(r), x = k ln2 + r, |r| <= ln2 / 2: Cody-Waite reduction, a degree-13 Taylor
# polynomial (truncation error < 5e-18) and 2^k added to the exponent bits. Unlike libm's scalar exp
# this loop vectorises; it agrees with np.exp to 2 ulp. Arguments outside [-700, 700] (never reached
# by log expected deaths) and NaN go to np.exp.
_LOG2E = 1.4426950408889634
_LN2_HI = 0.6931471803691238
_LN2_LO = 1.9082149292705877e-10
_MAGIC = 6755399441055744.0  # 1.5 * 2**52: adding it rounds to an integer held in the low bits
_MAGIC_BITS = 0x4338000000000000
_INV_FACT = tuple(1.0 / float(np.prod(np.arange(1, k + 1))) for k in range(14))


@jit_vector
def exp_into(src, dst, tmp, n):  # type: ignore[no-untyped-def]
    """dst[:n] = exp(src[:n]), vectorised; ``tmp`` is [n] workspace."""
    c2, c3, c4, c5 = _INV_FACT[2], _INV_FACT[3], _INV_FACT[4], _INV_FACT[5]
    c6, c7, c8, c9 = _INV_FACT[6], _INV_FACT[7], _INV_FACT[8], _INV_FACT[9]
    c10, c11, c12, c13 = _INV_FACT[10], _INV_FACT[11], _INV_FACT[12], _INV_FACT[13]
    for i in range(n):
        x = min(max(src[i], -700.0), 700.0)
        t = x * _LOG2E + _MAGIC
        k = t - _MAGIC
        r = (x - k * _LN2_HI) - k * _LN2_LO
        p = c13
        p = p * r + c12
        p = p * r + c11
        p = p * r + c10
        p = p * r + c9
        p = p * r + c8
        p = p * r + c7
        p = p * r + c6
        p = p * r + c5
        p = p * r + c4
        p = p * r + c3
        p = p * r + c2
        p = p * r + 1.0
        p = p * r + 1.0
        tmp[i] = t
        dst[i] = p
    ti = tmp[:n].view(np.int64)
    di = dst[:n].view(np.int64)
    for i in range(n):
        di[i] += (ti[i] - _MAGIC_BITS) << 52
    for i in range(n):
        x = src[i]
        if not (-700.0 <= x <= 700.0):
            dst[i] = np.exp(x)


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
def _eta_mu_dev(Xr, beta, offu, yu, m, R, eta, mu, tmp):  # type: ignore[no-untyped-def]
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
    exp_into(eta, mu, tmp, R)
    sy = 0.0
    sm = 0.0
    for r in range(R):
        mr = mu[r] if m[r] > 0.0 else 0.0
        mu[r] = mr
        sy += yu[r] * eta[r]
        sm += mr
    return sy, sm


@jit_reduce
def _weighted_cross_products(Xr, Pr, mu, eta, offu, yu, m, R, A, b, w, rhs):  # type: ignore[no-untyped-def]
    """A = X' W X from the shared column-pair products Pr, b = X' W z (W = diag(mu) on used weeks).

    Always both (no flag: a literal flag argument is one compiled specialisation per value)."""
    p = Xr.shape[0]
    for r in range(R):
        w[r] = m[r] * mu[r]
        rhs[r] = w[r] * (eta[r] - offu[r]) + m[r] * (yu[r] - mu[r])
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
    Xt,
    Xr,
    Pr,
    ref_idx,
    log_y01,
    ylogy_y,
    y,
    off,
    has_offset,
    max_iter,
    tol,
    beta,
    cov,
    mu_out,
    sw,
    sp,
):  # type: ignore[no-untyped-def]
    """Fit one series; writes beta [p], cov = (X'WX)^-1 [p, p] and mu_out [T] (every week).

    ``Xr`` [p, R] and ``Pr`` [p(p+1)/2, R] are the design and its column-pair products on the R
    reference weeks ``ref_idx``; weeks a series lacks get weight 0. ``log_y01[k] = log(k + 0.1)`` and
    ``ylogy_y[k] = k log k - k`` tabulate the start for whole counts. ``sw`` is [9, max(R, 2T)] and ``sp``
    [2p + 3, p] workspace. Returns (status, n_iter, deviance, pearson_chi2, n_obs).
    """
    p = Xt.shape[0]
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
            n += 1
            iy = int(yt)
            if iy == yt and iy < log_y01.shape[0]:  # whole counts: tabulated logs
                eta[r] = log_y01[iy]
                ylogy = ylogy_y[iy]
            else:
                eta[r] = np.log(mu[r])
                ylogy = yt * np.log(yt) - yt if yt > 0.0 else 0.0
            K += ylogy
            # y log(y / mu) - (y - mu) = (y log y - y) - y log mu + mu
            dev_old += ylogy - yt * eta[r] + mu[r]
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
        _weighted_cross_products(Xr, Pr, mu, eta, offu, yu, m, R, A, b, w, rhs)
        if not cholesky_lower(A, L):
            status = STATUS_SINGULAR
            break
        cholesky_solve(L, b, beta_new)
        sy, sm = _eta_mu_dev(Xr, beta_new, offu, yu, m, R, eta_new, mu_new, w)
        dev = 2.0 * (K - sy + sm)
        if it > 1:
            h = 0
            while (not np.isfinite(dev) or dev > dev_old * (1.0 + 1e-12)) and h < _MAX_HALVINGS:
                for j in range(p):
                    beta_new[j] = 0.5 * (beta_new[j] + beta_cur[j])
                sy, sm = _eta_mu_dev(Xr, beta_new, offu, yu, m, R, eta_new, mu_new, w)
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
    _weighted_cross_products(Xr, Pr, mu, eta, offu, yu, m, R, A, b, w, rhs)  # b unused here
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
    _expected_all_weeks(Xt, beta_cur, off, has_offset, mu_out, sw[5])
    return status, n_iter, dev, pearson, n


@jit_reduce
def _expected_all_weeks(Xt, beta, off, has_offset, mu_out, eta):  # type: ignore[no-untyped-def]
    """mu_out = exp(X beta + off) for every week; ``eta`` is [2T] workspace."""
    p, T = Xt.shape
    if has_offset:
        for t in range(T):
            eta[t] = off[t]
    else:
        for t in range(T):
            eta[t] = 0.0
    for j in range(p):
        bj = beta[j]
        xj = Xt[j]
        for t in range(T):
            eta[t] += xj[t] * bj
    exp_into(eta, mu_out, eta[T : 2 * T], T)


def _irls_batched(
    Xt,
    Xr,
    Pr,
    ref_idx,
    log_y01,
    ylogy_y,
    Y,
    OFF,
    max_iter,
    tol,
    beta,
    cov,
    mu,
    status,
    n_iter,
    dev,
    pearson,
    n_obs,
):  # type: ignore[no-untyped-def]
    n_series, T = Y.shape
    p = Xt.shape[0]
    R = ref_idx.shape[0]
    has_offset = OFF.shape[0] == n_series
    n_chunks = (n_series + CHUNK - 1) // CHUNK
    for c in prange(n_chunks):
        sw = np.empty((9, max(R, 2 * T, 1)))
        sp = np.empty((2 * p + 3, p))
        for s in range(c * CHUNK, min(n_series, (c + 1) * CHUNK)):
            off_row = OFF[s] if has_offset else OFF[0]
            st, it, d, pc, n = irls_poisson_one(
                Xt,
                Xr,
                Pr,
                ref_idx,
                log_y01,
                ylogy_y,
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


def start_tables(Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log(k + 0.1) and k log k - k for whole counts k = 0..max(Y) (capped at 1e6), for the IRLS start."""
    # The largest finite count (0 when none, or when all are below 0): fmax skips NaN, so one
    # pass without a mask or a copy; only an inf needs the finite values picked out.
    largest = float(np.fmax.reduce(Y, axis=None, initial=0.0))
    if np.isinf(largest):
        largest = float(Y[np.isfinite(Y)].max(initial=0.0))
    top = int(min(largest, 1e6)) + 1
    k = np.arange(top, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ylogy = np.where(k > 0, k * np.log(k) - k, 0.0)
    return np.log(k + 0.1), ylogy


def pair_products(X: np.ndarray) -> np.ndarray:
    """P[(j,k), t] = X[t, j] X[t, k] for j <= k, C-contiguous [p (p + 1) / 2, T]."""
    p = X.shape[1]
    rows = [X[:, j] * X[:, k] for j in range(p) for k in range(j, p)]
    return np.ascontiguousarray(np.vstack(rows))
