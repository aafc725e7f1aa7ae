"""numpy twin of :mod:`excessmort._kernels.pooled`: the same passes with einsum and bincount.

Same signatures (outputs written into the arrays passed in), the same quantities; used as the
oracle of the numba kernels in tests and as the ``engine="numpy"`` fallback.
"""

from __future__ import annotations

import numpy as np

__all__ = ["crossprod", "group_var_weekly", "group_var_window", "linear_predictor", "scatter"]


def _dense_z(zptr: np.ndarray, zidx: np.ndarray, zval: np.ndarray, n_cal: int) -> np.ndarray:
    n_weeks = zptr.shape[0] - 1
    Z = np.zeros((n_weeks, n_cal))
    rows = np.repeat(np.arange(n_weeks), np.diff(zptr))
    Z[rows, zidx] = zval
    return Z


def _series_coef(cols: np.ndarray, col_cal: np.ndarray, beta: np.ndarray, n_cal: int) -> np.ndarray:
    """b_s [S, q]: beta summed by calendar component over each series' columns."""
    n_series = cols.shape[0]
    s_idx, a_idx = np.nonzero(cols >= 0)
    j = cols[s_idx, a_idx]
    flat = s_idx * n_cal + col_cal[j]
    return np.bincount(flat, weights=beta[j], minlength=n_series * n_cal).reshape(n_series, n_cal)


def linear_predictor(
    zptr, zidx, zval, cols, col_cal, beta, OFF, Y, FIT, ETA, MU, dev, pear
) -> None:  # type: ignore[no-untyped-def]
    """eta, mu for every row; deviance and Pearson chi2 per series over FIT rows."""
    n_cal = int(col_cal.max()) + 1 if col_cal.size else 1
    Z = _dense_z(zptr, zidx, zval, n_cal)
    B = _series_coef(cols, col_cal, beta, n_cal)
    ETA[...] = OFF + B @ Z.T
    MU[...] = np.exp(ETA)
    y = np.where(FIT, Y, 0.0)
    m = MU
    with np.errstate(divide="ignore", invalid="ignore"):
        ylog = np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0) / m), 0.0)
        unit = np.where(FIT, ylog - (y - m), 0.0)
        pr = np.where(FIT, (y - m) ** 2 / m, 0.0)
    dev[...] = 2.0 * unit.sum(axis=1)
    pear[...] = pr.sum(axis=1)


def crossprod(zptr, zidx, zval, OFF, Y, FIT, ETA, MU, C, R) -> None:  # type: ignore[no-untyped-def]
    """C[s] = sum_t mu z z' and R[s] = sum_t mu zw z over FIT rows."""
    n_cal = C.shape[1]
    Z = _dense_z(zptr, zidx, zval, n_cal)
    w = np.where(FIT, MU, 0.0)
    wz = np.where(FIT, MU * (ETA - OFF) + (np.where(FIT, Y, 0.0) - MU), 0.0)
    C[...] = np.einsum("st,ta,tb->sab", w, Z, Z)
    R[...] = wz @ Z


def scatter(cols, col_cal, C, R, A, b) -> None:  # type: ignore[no-untyped-def]
    """A += sum_s P_s' C[s] P_s, b += sum_s P_s' R[s]."""
    p = A.shape[0]
    n_series, width = cols.shape
    s_idx, a_idx = np.nonzero(cols >= 0)
    j = cols[s_idx, a_idx]
    b += np.bincount(j, weights=R[s_idx, col_cal[j]], minlength=p)
    # all pairs (a, a2) of one series' columns
    jj = np.where(cols >= 0, cols, -1)
    J1 = np.repeat(jj[:, :, None], width, axis=2)
    J2 = np.repeat(jj[:, None, :], width, axis=1)
    ok = (J1 >= 0) & (J2 >= 0)
    s3 = np.broadcast_to(np.arange(n_series)[:, None, None], J1.shape)[ok]
    j1, j2 = J1[ok], J2[ok]
    vals = C[s3, col_cal[j1], col_cal[j2]]
    A += np.bincount(j1 * p + j2, weights=vals, minlength=p * p).reshape(p, p)


def _group_x(Z, cols, col_cal, MU, order, gptr, U, uptr, g):  # type: ignore[no-untyped-def]
    """(columns U_g, [T, |U_g|] = sum over group g's series of mu_st x_st on those columns)."""
    members = order[gptr[g] : gptr[g + 1]]
    Ug = U[uptr[g] : uptr[g + 1]]
    local = np.full(col_cal.shape[0], -1, dtype=np.int64)
    local[Ug] = np.arange(Ug.size)
    sub = cols[members]
    r_idx, a_idx = np.nonzero(sub >= 0)
    ind = np.zeros((members.size, Ug.size))
    np.add.at(ind, (r_idx, local[sub[r_idx, a_idx]]), 1.0)
    M = ind.T @ MU[members]  # [|U|, T]
    return Ug, M.T * Z[:, col_cal[Ug]]


def group_var_weekly(Z, cols, col_cal, MU, order, gptr, U, uptr, V, out) -> None:  # type: ignore[no-untyped-def]
    """out[g, t] = g_t' V g_t with g_t = sum_{s in g} mu_st x_st."""
    for g in range(gptr.shape[0] - 1):
        Ug, X = _group_x(Z, cols, col_cal, MU, order, gptr, U, uptr, g)
        out[g] = np.einsum("ta,ab,tb->t", X, V[np.ix_(Ug, Ug)], X)


def group_var_window(Z, cols, col_cal, MU, order, gptr, U, uptr, V, weeks, out) -> None:  # type: ignore[no-untyped-def]
    """out[g] = g' V g with g = sum_{t in weeks} sum_{s in g} mu_st x_st."""
    w = np.asarray(weeks, dtype=bool)
    for g in range(gptr.shape[0] - 1):
        Ug, X = _group_x(Z, cols, col_cal, MU, order, gptr, U, uptr, g)
        x = X[w].sum(axis=0)
        out[g] = x @ V[np.ix_(Ug, Ug)] @ x
