"""numba kernels of the ONS 2024 model's batched refits (:mod:`excessmort.baselines.ons2024`).

Every window k fitted is a quasi-Poisson GLM on the rows (s, t) with t in
``first[k] .. first[k] + length[k] - 1`` and ``FIT[s, t]``. Row (s, t) of the design is
x_st = sum_a e_{cols[s, j, a]} F[t, comp[s, j, a]] with j = season[t] (cell form), so

- X'WX and X'Wz are scatters of the cell sums M[k, s, j, a, b] = sum_t w F[t, a] F[t, b] and
  r[k, s, j, a] = sum_t w z F[t, a] over the window's rows of season j (:func:`normal_eq`);
- eta_st = offset_st + sum_a B[k, s, j, a] F[t, a], with B the coefficients gathered per cell
  (:func:`update`).

The drivers ``prange`` over (window, series) pairs; each pair is summed sequentially in time order,
so results do not depend on the thread count. The numpy twin (:mod:`excessmort._kernels.ons_ref`)
has the same signatures.
"""

from __future__ import annotations

import math

from ._jit import jit, jit_parallel, prange

__all__ = [
    "normal_eq",
    "normal_eq_serial",
    "start",
    "start_serial",
    "update",
    "update_serial",
]


def _start(first, length, FIT, Y, ETA, MU, DEV):  # type: ignore[no-untyped-def]
    """R glm.fit's start mu = y + 0.1 on every window's rows; deviance per pair [c, S]."""
    n_win, n_series = DEV.shape
    for task in prange(n_win * n_series):
        k = task // n_series
        s = task - k * n_series
        d = 0.0
        for i in range(length[k]):
            t = first[k] + i
            if FIT[s, t]:
                y = Y[s, t]
                m = y + 0.1
                MU[k, s, i] = m
                ETA[k, s, i] = math.log(m)
                d += (y * math.log(y / m) if y > 0.0 else 0.0) - (y - m)
        DEV[k, s] = 2.0 * d


def _normal_eq(first, length, FIT, Y, OFF, season, F, ETA, MU, active, M, r):  # type: ignore[no-untyped-def]
    """Cell sums of the active windows: M [c, S, J, K, K] and r [c, S, J, K] (zeroed here)."""
    n_series = M.shape[1]
    n_k = F.shape[1]
    for task in prange(active.shape[0] * n_series):
        k = active[task // n_series]
        s = task - (task // n_series) * n_series
        M[k, s] = 0.0
        r[k, s] = 0.0
        for i in range(length[k]):
            t = first[k] + i
            if not FIT[s, t]:
                continue
            w = MU[k, s, i]
            z = ETA[k, s, i] - OFF[s, t] + (Y[s, t] - w) / w
            j = season[t]
            for a in range(n_k):
                wa = w * F[t, a]
                r[k, s, j, a] += wa * z
                for b in range(n_k):
                    M[k, s, j, a, b] += wa * F[t, b]


def _update(first, length, FIT, Y, OFF, season, F, B, active, MU, ETA_NEW, MU_NEW, DEV, PEAR):  # type: ignore[no-untyped-def]
    """eta and mu at the coefficients B [c, S, J, K] of the active windows, the deviance per pair
    and the Pearson sum with the previous mu as weights (summary.glm's dispersion)."""
    n_series = B.shape[1]
    n_k = F.shape[1]
    for task in prange(active.shape[0] * n_series):
        k = active[task // n_series]
        s = task - (task // n_series) * n_series
        d = 0.0
        pe = 0.0
        for i in range(length[k]):
            t = first[k] + i
            if not FIT[s, t]:
                continue
            j = season[t]
            e = OFF[s, t]
            for a in range(n_k):
                e += B[k, s, j, a] * F[t, a]
            m = math.exp(e)
            ETA_NEW[k, s, i] = e
            MU_NEW[k, s, i] = m
            y = Y[s, t]
            d += (y * math.log(y / m) if y > 0.0 else 0.0) - (y - m)
            u = (y - m) / m
            pe += MU[k, s, i] * u * u
        DEV[k, s] = 2.0 * d
        PEAR[k, s] = pe


start = jit_parallel(_start)
start_serial = jit(_start)
normal_eq = jit_parallel(_normal_eq)
normal_eq_serial = jit(_normal_eq)
update = jit_parallel(_update)
update_serial = jit(_update)
