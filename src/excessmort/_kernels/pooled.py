"""numba kernels of the pooled quasi-Poisson GLM: the O(rows) passes of IRLS on a structured design.

The pooled design has one row per series s and week t, and every row is x_st = P_s z_t: z_t [q] is a
short vector of calendar values shared by all series (1, trend, twelve month weights, eight holiday
indicators: few are non-zero in any week), and P_s places them into the p columns the series uses
(its fixed effects and interactions). A series' columns are ``cols[s, :]`` (padded with -1) and
column j carries the calendar component ``col_cal[j]``. So

- eta_st = offset_st + z_t' b_s, with b_s[c] = sum of beta_j over the series' columns with
  col_cal[j] = c;
- X'WX = sum_s P_s' (sum_t w_st z_t z_t') P_s: the per-series q x q cross-products are computed in
  parallel (prange over series, each sequential inside, so results do not depend on the thread
  count) and scattered serially into the p x p matrix.

The p x p solve is done outside numba (numpy/scipy Cholesky). Calendar rows come as CSR arrays
(``zptr`` [T+1], ``zidx`` sorted within a row, ``zval``). Kernels write into output arrays; the
numpy twin (:mod:`excessmort._kernels.pooled_ref`) has the same signatures.
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import jit, jit_parallel, prange

__all__ = [
    "crossprod",
    "crossprod_serial",
    "group_var_weekly",
    "group_var_weekly_serial",
    "group_var_window",
    "group_var_window_serial",
    "linear_predictor",
    "linear_predictor_serial",
    "scatter",
    "warmup",
]


def _linear_predictor(zptr, zidx, zval, cols, col_cal, beta, OFF, Y, FIT, ETA, MU, dev, pear):  # type: ignore[no-untyped-def]
    """eta = offset + z_t' b_s and mu = exp(eta) for every row; Poisson deviance and Pearson chi2
    per series over the fitted rows (FIT)."""
    n_series, n_weeks = OFF.shape
    n_cal = 0
    for j in range(col_cal.shape[0]):
        if col_cal[j] + 1 > n_cal:
            n_cal = col_cal[j] + 1
    for s in prange(n_series):
        b = np.zeros(n_cal)
        for a in range(cols.shape[1]):
            j = cols[s, a]
            if j >= 0:
                b[col_cal[j]] += beta[j]
        d = 0.0
        pc = 0.0
        for t in range(n_weeks):
            e = OFF[s, t]
            for k in range(zptr[t], zptr[t + 1]):
                e += zval[k] * b[zidx[k]]
            m = math.exp(e)
            ETA[s, t] = e
            MU[s, t] = m
            if FIT[s, t]:
                y = Y[s, t]
                r = y - m
                pc += r * r / m
                if y > 0.0:
                    d += y * math.log(y / m) - r
                else:
                    d += m
        dev[s] = 2.0 * d
        pear[s] = pc


def _crossprod(zptr, zidx, zval, OFF, Y, FIT, ETA, MU, C, R):  # type: ignore[no-untyped-def]
    """Per series: C[s] = sum_t w z_t z_t' and R[s] = sum_t w zw z_t over fitted rows, with the IRLS
    weight w = mu and working response zw = eta - offset + (y - mu) / mu (log link)."""
    n_series, n_weeks = OFF.shape
    n_cal = C.shape[1]
    for s in prange(n_series):
        cs = np.zeros((n_cal, n_cal))
        rs = np.zeros(n_cal)
        for t in range(n_weeks):
            if not FIT[s, t]:
                continue
            m = MU[s, t]
            wz = m * (ETA[s, t] - OFF[s, t]) + (Y[s, t] - m)
            hi = zptr[t + 1]
            for k in range(zptr[t], hi):
                a = zidx[k]
                va = zval[k]
                rs[a] += va * wz
                vm = va * m
                for k2 in range(k, hi):
                    cs[a, zidx[k2]] += vm * zval[k2]
        for a in range(n_cal):
            R[s, a] = rs[a]
            C[s, a, a] = cs[a, a]
            for c in range(a + 1, n_cal):
                C[s, a, c] = cs[a, c]
                C[s, c, a] = cs[a, c]


@jit
def scatter(cols, col_cal, C, R, A, b):  # type: ignore[no-untyped-def]
    """A += sum_s P_s' C[s] P_s and b += sum_s P_s' R[s] (serial: a fixed summation order)."""
    n_series, width = cols.shape
    for s in range(n_series):
        for a in range(width):
            j = cols[s, a]
            if j < 0:
                continue
            ca = col_cal[j]
            b[j] += R[s, ca]
            for a2 in range(width):
                k = cols[s, a2]
                if k >= 0:
                    A[j, k] += C[s, ca, col_cal[k]]


def _group_totals(s_lo, s_hi, order, cols, col_cal, MU, U, u_lo, u_hi, pos, M):  # type: ignore[no-untyped-def]
    n_weeks = MU.shape[1]
    for i in range(u_lo, u_hi):
        pos[U[i]] = i - u_lo
    for i in range(s_lo, s_hi):
        s = order[i]
        for a in range(cols.shape[1]):
            j = cols[s, a]
            if j < 0:
                continue
            la = pos[j]
            for t in range(n_weeks):
                M[la, t] += MU[s, t]


_group_totals_jit = jit(_group_totals)


def _group_var_weekly(Z, cols, col_cal, MU, order, gptr, U, uptr, V, out):  # type: ignore[no-untyped-def]
    """out[g, t] = g_t' V g_t with g_t = sum_{s in group g} mu_st x_st (group's columns U)."""
    n_groups = gptr.shape[0] - 1
    n_weeks = MU.shape[1]
    p = V.shape[0]
    for g in prange(n_groups):
        u_lo = uptr[g]
        u_hi = uptr[g + 1]
        nu = u_hi - u_lo
        pos = np.full(p, -1, dtype=np.int64)
        M = np.zeros((nu, n_weeks))
        _group_totals_jit(gptr[g], gptr[g + 1], order, cols, col_cal, MU, U, u_lo, u_hi, pos, M)
        act = np.empty(nu, dtype=np.int64)
        gv = np.empty(nu)
        for t in range(n_weeks):
            na = 0
            for la in range(nu):
                zt = Z[t, col_cal[U[u_lo + la]]]
                if zt != 0.0:
                    act[na] = U[u_lo + la]
                    gv[na] = zt * M[la, t]
                    na += 1
            v = 0.0
            for i in range(na):
                row = 0.0
                for k in range(na):
                    row += V[act[i], act[k]] * gv[k]
                v += gv[i] * row
            out[g, t] = v


def _group_var_window(Z, cols, col_cal, MU, order, gptr, U, uptr, V, weeks, out):  # type: ignore[no-untyped-def]
    """out[g] = g' V g with g = sum_{t in weeks} sum_{s in group g} mu_st x_st."""
    n_groups = gptr.shape[0] - 1
    n_weeks = MU.shape[1]
    p = V.shape[0]
    for g in prange(n_groups):
        u_lo = uptr[g]
        u_hi = uptr[g + 1]
        nu = u_hi - u_lo
        pos = np.full(p, -1, dtype=np.int64)
        M = np.zeros((nu, n_weeks))
        _group_totals_jit(gptr[g], gptr[g + 1], order, cols, col_cal, MU, U, u_lo, u_hi, pos, M)
        gv = np.zeros(nu)
        for la in range(nu):
            c = col_cal[U[u_lo + la]]
            acc = 0.0
            for t in range(n_weeks):
                if weeks[t]:
                    acc += Z[t, c] * M[la, t]
            gv[la] = acc
        v = 0.0
        for i in range(nu):
            row = 0.0
            ji = U[u_lo + i]
            for k in range(nu):
                row += V[ji, U[u_lo + k]] * gv[k]
            v += gv[i] * row
        out[g] = v


linear_predictor = jit_parallel(_linear_predictor)
linear_predictor_serial = jit(_linear_predictor)
crossprod = jit_parallel(_crossprod)
crossprod_serial = jit(_crossprod)
group_var_weekly = jit_parallel(_group_var_weekly)
group_var_weekly_serial = jit(_group_var_weekly)
group_var_window = jit_parallel(_group_var_window)
group_var_window_serial = jit(_group_var_window)


def warmup() -> None:
    """Compile (or load from cache) every pooled kernel on a toy problem (2 series x 3 weeks)."""
    Z = np.ascontiguousarray([[1.0, 0.5], [1.0, 0.0], [1.0, 0.25]])
    zptr = np.array([0, 2, 3, 5], dtype=np.int64)
    zidx = np.array([0, 1, 0, 0, 1], dtype=np.int64)
    zval = np.array([1.0, 0.5, 1.0, 1.0, 0.25])
    cols = np.array([[0, 1, 2], [0, 1, -1]], dtype=np.int64)
    col_cal = np.array([0, 1, 0], dtype=np.int64)
    beta = np.array([1.0, 0.1, 0.2])
    OFF = np.zeros((2, 3))
    Y = np.full((2, 3), 3.0)
    FIT = np.ones((2, 3), dtype=np.bool_)
    ETA = np.empty((2, 3))
    MU = np.empty((2, 3))
    dev = np.empty(2)
    pear = np.empty(2)
    C = np.empty((2, 2, 2))
    R = np.empty((2, 2))
    A = np.zeros((3, 3))
    b = np.zeros(3)
    order = np.array([0, 1], dtype=np.int64)
    gptr = np.array([0, 2], dtype=np.int64)
    U = np.array([0, 1, 2], dtype=np.int64)
    uptr = np.array([0, 3], dtype=np.int64)
    V = np.eye(3)
    weeks = np.ones(3, dtype=np.bool_)
    for lp, cp, gw, gv in (
        (linear_predictor, crossprod, group_var_weekly, group_var_window),
        (
            linear_predictor_serial,
            crossprod_serial,
            group_var_weekly_serial,
            group_var_window_serial,
        ),
    ):
        lp(zptr, zidx, zval, cols, col_cal, beta, OFF, Y, FIT, ETA, MU, dev, pear)
        cp(zptr, zidx, zval, OFF, Y, FIT, ETA, MU, C, R)
        gw(Z, cols, col_cal, MU, order, gptr, U, uptr, V, np.empty((1, 3)))
        gv(Z, cols, col_cal, MU, order, gptr, U, uptr, V, weeks, np.empty(1))
    scatter(cols, col_cal, C, R, A, b)
