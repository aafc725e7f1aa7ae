"""numpy twin of the ``farrington`` kernels: the same procedure written the way R computes it.

Independent of the numba kernel in how it computes: R's own parametrisation (treatment contrasts
of the levels present, raw ``wtime`` counted from the window's first week, no centring), weighted
least squares by Householder QR (LAPACK via ``numpy.linalg.qr``) as R's ``Cdqrls``, hat values as
row sums of Q^2 (``lm.influence``), the covariance from the R factor (``chol2inv``), ``np.power``
for the Anscombe residuals. One fit at a time (series and predicted weeks in Python loops): the
oracle for the kernel in tests and the ``engine="numpy"`` fallback, not the fast path.
"""

from __future__ import annotations

import numpy as np

from .farrington import (
    EPS,
    N_OUT,
    O_COEF,
    O_DISP,
    O_ETA,
    O_ITER,
    O_NOBS,
    O_PHI,
    O_SE,
    O_STATUS,
    O_TREND,
    STATUS_NO_FIT,
    STATUS_OK,
    STATUS_SINGULAR,
)


def _glm(X, y, off, wt, max_iter, tol):  # type: ignore[no-untyped-def]
    """R glm.fit for quasipoisson(log): (converged, n_iter, beta, mu, Q, Rfac, w_last) or None."""
    eta = np.log(y + 0.1)
    mu = np.maximum(np.exp(eta), EPS)

    def dev_of(mu_: np.ndarray) -> float:
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(y > 0, y * np.log(y / mu_) - (y - mu_), mu_)
        return float(2.0 * np.sum(wt * r))

    dev_old = dev_of(mu)
    conv = False
    beta = np.zeros(X.shape[1])
    it = 0
    Q = Rf = w2 = None
    for it in range(1, max_iter + 1):  # noqa: B007
        m = np.maximum(np.exp(eta), EPS)
        z = (eta - off) + (y - mu) / m
        w = np.sqrt(wt * m**2 / mu)
        Q, Rf = np.linalg.qr(X * w[:, None])
        d = np.abs(np.diag(Rf))
        if not np.all(d > 1e-7 * max(d.max(), 1e-300)):
            return None
        beta = np.linalg.solve(Rf, Q.T @ (z * w))
        eta = X @ beta + off
        mu = np.maximum(np.exp(eta), EPS)
        w2 = w**2
        dev = dev_of(mu)
        if not np.isfinite(dev):
            return None
        if abs(dev - dev_old) / (abs(dev) + 0.1) < tol:
            conv = True
            break
        dev_old = dev
    return conv, it, beta, mu, Q, Rf, w2


def _design(levels: np.ndarray, wtime: np.ndarray, trend: bool) -> tuple[np.ndarray, np.ndarray]:
    """Treatment contrasts of the levels present (first = reference) and wtime; the present levels."""
    present = np.unique(levels)
    cols = [np.ones(levels.size)] + [(levels == lv).astype(float) for lv in present[1:]]
    if trend:
        cols.append(wtime.astype(float))
    return np.column_stack(cols), present


def _x_pred(present: np.ndarray, level: int, wtime: float, trend: bool) -> np.ndarray:
    x = [1.0] + [1.0 if lv == level else 0.0 for lv in present[1:]]
    if trend:
        x.append(wtime)
    return np.asarray(x)


def _fit_fun(levels, wtime, y, off, y23, trend, reweight, wthr, max_iter, tol):  # type: ignore[no-untyped-def]
    """algo.farrington.fitGLM.flexible: (status, trend, n_iter, model) with model a dict."""
    n = y.size
    X, present = _design(levels, wtime, trend)
    res = _glm(X, y, off, np.ones(n), max_iter, tol)
    if res is None:
        return STATUS_SINGULAR, trend, 0, None
    n_iter = res[1]
    if not res[0]:
        if not trend:
            return STATUS_NO_FIT, trend, n_iter, None
        trend = False
        X, present = _design(levels, wtime, trend)
        res = _glm(X, y, off, np.ones(n), max_iter, tol)
        if res is None:
            return STATUS_SINGULAR, trend, n_iter, None
        n_iter += res[1]
        if not res[0]:
            return STATUS_NO_FIT, trend, n_iter, None
    df = n - X.shape[1]

    def disp_of(r):  # type: ignore[no-untyped-def]
        _, _, _, mu_, _, _, w2_ = r
        return np.sum(w2_ * ((y - mu_) / mu_) ** 2) / df if df > 0 else np.nan

    disp = disp_of(res)
    phi = max(disp, 1.0) if np.isfinite(disp) else np.nan
    disp_se = disp
    if reweight:
        _, _, _, mu, Q, _, _ = res
        h = np.sum(Q**2, axis=1)
        h[h > 1 - 10 * EPS] = 1.0
        s = 1.5 * (y23 * np.power(mu, -1.0 / 6.0) - np.power(mu, 0.5))
        s = s / np.sqrt(phi * (1.0 - h))
        over = s > wthr
        gamma = n / np.sum(np.where(over, s ** (-2.0), 1.0))
        omega = np.where(over, gamma * s ** (-2.0), gamma)
        res = _glm(X, y, off, omega, max_iter, tol)
        if res is None:
            return STATUS_SINGULAR, trend, n_iter, None
        n_iter += res[1]
        disp = disp_of(res)
        phi = max(disp, 1.0) if np.isfinite(disp) else np.nan
        mu_w = res[3]
        # R overwrites model$weights by omega: summary()/predict() then use this dispersion
        disp_se = np.sum(omega * ((y - mu_w) / mu_w) ** 2) / df if df > 0 else np.nan
    _, _, beta, mu, Q, Rf, _ = res
    Rinv = np.linalg.inv(Rf)
    cov = Rinv @ Rinv.T
    return (
        STATUS_OK,
        trend,
        n_iter,
        {
            "beta": beta,
            "cov": cov,
            "disp": disp,
            "disp_se": disp_se,
            "phi": phi,
            "present": present,
            "df": df,
        },
    )


def farrington_batched_ref(
    Y, OFF, kpos, t0, wptr, rt, lptr, cen, P, trend_opt, reweight, wthr, b_ok, tcrit, max_iter, tol
):  # type: ignore[no-untyped-def]
    """The numba driver's output [S, K, N_OUT], computed one fit at a time in numpy."""
    n_series, _T = Y.shape
    K = kpos.shape[0]
    has_off = OFF.shape[0] == n_series
    out = np.full((n_series, K, N_OUT), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        Y23 = np.power(Y, 2.0 / 3.0)
    for s in range(n_series):
        y_all = Y[s]
        off_all = OFF[s] if has_off else OFF[0]
        for k in range(K):
            o = out[s, k]
            rows = rt[wptr[k] : wptr[k + 1]]
            lev = np.repeat(np.arange(P), np.diff(lptr[k]))
            ok = np.isfinite(y_all[rows]) & np.isfinite(off_all[rows])
            rows, lev = rows[ok], lev[ok]
            order = np.argsort(rows, kind="stable")  # R's row order: by week
            rows, lev = rows[order], lev[order]
            o[O_NOBS] = rows.size
            kw = kpos[k]
            if rows.size == 0 or not np.any(lev == P - 1) or not np.isfinite(off_all[kw]):
                o[O_STATUS] = STATUS_SINGULAR
                continue
            y = y_all[rows]
            off = off_all[rows]
            wtime = rows - t0[k]
            w_pred = float(kw - rows[0])
            args = (lev, wtime, y, off, Y23[s, rows])
            st, trend, n_iter, m = _fit_fun(*args, trend_opt, reweight, wthr, max_iter, tol)
            total = n_iter
            if st == STATUS_OK and trend:
                x = _x_pred(m["present"], P - 1, w_pred, True)
                mu_k = max(np.exp(x @ m["beta"] + off_all[kw]), EPS)
                se_b = np.sqrt(m["disp_se"] * m["cov"][-1, -1])
                df = m["df"]
                significant = df > 0 and abs(m["beta"][-1] / se_b) > tcrit[df]
                if not (b_ok and significant and mu_k <= y.max()):
                    st, trend, n_iter, m = _fit_fun(*args, False, reweight, wthr, max_iter, tol)
                    total += n_iter
            o[O_ITER] = total
            o[O_STATUS] = st
            if st != STATUS_OK:
                continue
            x = _x_pred(m["present"], P - 1, w_pred, trend)
            o[O_ETA] = x @ m["beta"] + off_all[kw]
            o[O_SE] = np.sqrt(m["disp_se"] * (x @ m["cov"] @ x))
            o[O_PHI] = m["phi"]
            o[O_DISP] = m["disp"]
            o[O_TREND] = 1.0 if trend else 0.0
            o[O_COEF] = m["beta"][-1] if trend else np.nan
    return out
