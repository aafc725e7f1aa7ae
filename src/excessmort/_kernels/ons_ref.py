"""numpy twin of :mod:`excessmort._kernels.ons` (same signatures, arrays written in place)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["normal_eq", "start", "update"]


def _rows(first: Any, length: Any, k: Any) -> tuple[Any, Any]:
    L = int(length[k].max()) if np.size(k) else 0
    i = np.arange(L)
    valid = i[None, :] < length[k][:, None]
    rows = np.where(valid, first[k][:, None] + i[None, :], first[k][:, None])
    return rows, valid


def _window_rows(first: Any, length: Any, FIT: Any, Y: Any, OFF: Any, k: Any) -> tuple[Any, ...]:
    """Period of each window row [a, L], rows fitted, y and offset [a, S, L] of windows k."""
    rows, valid = _rows(first, length, k)
    fit = FIT[:, rows].transpose(1, 0, 2) & valid[:, None, :]
    return rows, fit, Y[:, rows].transpose(1, 0, 2), OFF[:, rows].transpose(1, 0, 2)


def _deviance_terms(y: Any, m: Any) -> Any:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0) / m), 0.0) - (y - m)


def start(first, length, FIT, Y, ETA, MU, DEV):  # type: ignore[no-untyped-def]
    """See :func:`excessmort._kernels.ons.start`."""
    k = np.arange(DEV.shape[0])
    rows, valid = _rows(first, length, k)
    L = rows.shape[1]
    fit = FIT[:, rows].transpose(1, 0, 2) & valid[:, None, :]
    y = Y[:, rows].transpose(1, 0, 2)
    m = y + 0.1
    MU[:, :, :L] = np.where(fit, m, MU[:, :, :L])
    ETA[:, :, :L] = np.where(fit, np.log(np.where(fit, m, 1.0)), ETA[:, :, :L])
    DEV[:] = 2.0 * np.sum(np.where(fit, _deviance_terms(y, m), 0.0), axis=2)


def normal_eq(first, length, FIT, Y, OFF, season, F, ETA, MU, active, M, r):  # type: ignore[no-untyped-def]
    """See :func:`excessmort._kernels.ons.normal_eq`."""
    k = np.asarray(active)
    if k.size == 0:
        return
    rows, fit, y, off = _window_rows(first, length, FIT, Y, OFF, k)
    L = rows.shape[1]
    J = M.shape[2]
    mu = np.where(fit, MU[k, :, :L], 1.0)
    w = np.where(fit, mu, 0.0)
    z = ETA[k, :, :L] - off + (y - mu) / mu
    wz = np.where(fit, w * z, 0.0)
    H = (season[rows][:, :, None] == np.arange(J)[None, None, :]).astype(np.float64)  # [a, L, J]
    Fr = F[rows]  # [a, L, K]
    n_k = Fr.shape[2]
    a, S = k.size, w.shape[1]
    FF = (Fr[:, :, :, None] * Fr[:, :, None, :]).reshape(a, 1, L, n_k * n_k)
    WF = (w[:, :, :, None] * FF).transpose(0, 1, 3, 2).reshape(a, S * n_k * n_k, L)
    M[k] = np.matmul(WF, H).reshape(a, S, n_k, n_k, J).transpose(0, 1, 4, 2, 3)
    RF = (wz[:, :, :, None] * Fr[:, None, :, :]).transpose(0, 1, 3, 2).reshape(a, S * n_k, L)
    r[k] = np.matmul(RF, H).reshape(a, S, n_k, J).transpose(0, 1, 3, 2)


def update(first, length, FIT, Y, OFF, season, F, B, active, MU, ETA_NEW, MU_NEW, DEV, PEAR):  # type: ignore[no-untyped-def]
    """See :func:`excessmort._kernels.ons.update`."""
    k = np.asarray(active)
    if k.size == 0:
        return
    rows, fit, y, off = _window_rows(first, length, FIT, Y, OFF, k)
    L = rows.shape[1]
    S = B.shape[1]
    Bg = B[k[:, None, None], np.arange(S)[None, :, None], season[rows][:, None, :]]  # [a, S, L, K]
    e = np.einsum("aslp,alp->asl", Bg, F[rows]) + off
    m = np.exp(e)
    ETA_NEW[k, :, :L] = np.where(fit, e, ETA_NEW[k, :, :L])
    MU_NEW[k, :, :L] = np.where(fit, m, MU_NEW[k, :, :L])
    DEV[k] = 2.0 * np.sum(np.where(fit, _deviance_terms(y, m), 0.0), axis=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        pe = np.where(fit, MU[k, :, :L] * ((y - m) / m) ** 2, 0.0)
    PEAR[k] = np.sum(pe, axis=2)
