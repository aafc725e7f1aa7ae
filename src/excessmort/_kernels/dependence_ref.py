"""numpy reference of :mod:`excessmort._kernels.dependence`: the same sums, vectorised over rows (and, for
the running variances, over weeks)."""

from __future__ import annotations

import numpy as np


def running_variance_ref(
    s: np.ndarray, rho: np.ndarray, a: np.ndarray, phi: np.ndarray
) -> np.ndarray:
    """[G, W]: variance of every running sum (see the kernel module for the recursion), with whole
    [G, W] array steps instead of one step per week.

    Week k's covariance with the weeks before it is ``cross[k] = tail q[k] + sum_j rho_j s[k - j]``
    (lags 1..L), where ``q[k] = phi q[k - 1] + s[k - L - 1]`` sums the weeks beyond the lags with
    geometric weights; that first-order recursion is solved by doubling (log2 W steps: after the
    step of size d each entry holds the sum over its last 2d weeks). The running variance is the
    running sum of ``s[k]^2 + 2 s[k] cross[k]``."""
    n_rows, n_weeks = s.shape
    n_lags = rho.shape[1]
    tail = a * phi**n_lags
    q = np.zeros((n_rows, n_weeks))
    beyond = n_weeks - n_lags - 1
    if beyond > 0:
        q[:, n_lags + 1 :] = s[:, :beyond]
        run = q[:, n_lags + 1 :]
        power = phi.copy()
        step = 1
        while step < beyond:
            run[:, step:] = run[:, step:] + power[:, None] * run[:, :-step]  # (right side first)
            power = power * power
            step *= 2
    cross = tail[:, None] * q
    for j in range(1, min(n_lags, n_weeks - 1) + 1):
        cross[:, j:] = cross[:, j:] + rho[:, j - 1 : j] * s[:, :-j]
    return np.cumsum(s * s + 2.0 * s * cross, axis=1)


def _running_variance_by_week(
    s: np.ndarray, rho: np.ndarray, a: np.ndarray, phi: np.ndarray
) -> np.ndarray:
    """The recursion of :func:`running_variance_ref` one week at a time, as the kernel runs it (the
    reference the array steps are tested against)."""
    n_rows, n_weeks = s.shape
    n_lags = rho.shape[1]
    tail = a * phi**n_lags
    out = np.empty((n_rows, n_weeks))
    total = np.zeros(n_rows)
    q = np.zeros(n_rows)
    for k in range(n_weeks):
        if k - n_lags - 1 >= 0:
            q = phi * q + s[:, k - n_lags - 1]
        cross = tail * q
        for j in range(1, min(n_lags, k) + 1):
            cross = cross + rho[:, j - 1] * s[:, k - j]
        total = total + s[:, k] * s[:, k] + 2.0 * s[:, k] * cross
        out[:, k] = total
    return out


def running_variance_dense(
    s: np.ndarray, rho: np.ndarray, a: np.ndarray, phi: np.ndarray
) -> np.ndarray:
    """The same from the full W x W covariance (an oracle for tests on small arrays)."""
    n_rows, n_weeks = s.shape
    n_lags = rho.shape[1]
    lag = np.abs(np.arange(n_weeks)[:, None] - np.arange(n_weeks)[None, :])
    out = np.empty((n_rows, n_weeks))
    for g in range(n_rows):
        full = np.r_[1.0, rho[g]]
        corr = np.where(
            lag <= n_lags, full[np.minimum(lag, n_lags)], a[g] * phi[g] ** np.maximum(lag - 1, 0)
        )
        cov = s[g][:, None] * s[g][None, :] * corr
        out[g] = [cov[: k + 1, : k + 1].sum() for k in range(n_weeks)]
    return out


# ------------------------------------------------------------------------------ the dependence sums
# The numpy twins of the sums and per-row estimates of :mod:`excessmort.dependence` (the code the
# kernels of :mod:`excessmort._kernels.dependence` replaced, kept as it was: tests pin the two).


def group_sums_ref(
    deaths: np.ndarray,
    mu: np.ndarray,
    mask: np.ndarray,
    finite_mu: bool,
    obs: np.ndarray,
    groups: np.ndarray,
    n_groups: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(resid, obs, mu, root [G, T], resid_weeks [T]): see :func:`..dependence.group_sums`; ``obs``
    is the [S, T] null variance."""
    from ..baselines._util import group_sum

    rmask = mask & np.isfinite(mu) if finite_mu else mask
    keep = groups >= 0

    def gsum(values: np.ndarray) -> np.ndarray:
        return group_sum(values[keep], groups[keep], n_groups)

    return (
        gsum(np.where(rmask, deaths - mu, np.nan)),
        gsum(obs),
        gsum(mu),
        gsum(np.sqrt(obs)),
        np.any(rmask, axis=0),
    )


def own_sums_ref(
    deaths: np.ndarray,
    mu: np.ndarray,
    mask: np.ndarray,
    finite_mu: bool,
    obs: np.ndarray | None,
    phi: np.ndarray,
    q: np.ndarray | None,
    fitted: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(resid, obs, fitted [S, T], resid_weeks [T]) of every series its own group (the sums the
    ``own_*`` kernels form where they read them): ``obs`` None is phi mu, ``q`` gives fitted =
    phi mu^2 q, else ``fitted`` is given."""
    rmask = mask & np.isfinite(mu) if finite_mu else mask
    null = phi[:, None] * mu if obs is None else obs
    fit = phi[:, None] * mu**2 * q if q is not None else fitted
    assert fit is not None
    return np.where(rmask, deaths - mu, np.nan), null, fit, np.any(rmask, axis=0)


def _autocorrelation(u: np.ndarray, max_lag: int) -> np.ndarray:
    import warnings

    ok = np.isfinite(u)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        centre = np.nanmean(u, axis=1)
    x = np.where(ok, u - np.nan_to_num(centre)[:, None], 0.0)
    den = np.sum(x * x, axis=1)
    out = np.empty((u.shape[0], max_lag + 1))
    n_weeks = u.shape[1]
    with np.errstate(invalid="ignore", divide="ignore"):
        for k in range(max_lag + 1):
            if k >= n_weeks:
                out[:, k] = 0.0
                continue
            out[:, k] = np.einsum("ij,ij->i", x[:, k:], x[:, : n_weeks - k]) / den
    return np.where(np.isfinite(out), out, 0.0)


def serial_rows_ref(
    resid: np.ndarray,
    obs: np.ndarray,
    fitted: np.ndarray,
    in_sample: bool,
    members: np.ndarray,
    phi_sum: np.ndarray,
    shared_dispersion: bool,
    basis: np.ndarray,
    norm: np.ndarray,
    grid: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """(n, c_raw, c, rho [G, L], A, phi): see :func:`..dependence.serial_rows`."""
    import warnings

    with np.errstate(invalid="ignore"):
        d = obs - fitted if in_sample else obs + fitted
        d = np.maximum(d, 0.05 * obs)
    with np.errstate(invalid="ignore", divide="ignore"):
        u = resid / np.sqrt(d)
    u = np.where(np.isfinite(u), u, np.nan)
    n = np.sum(np.isfinite(u), axis=1).astype(np.float64)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        c_raw = np.nanmean(u * u, axis=1)
    multi = members > 1
    c = np.where(multi, np.maximum(np.nan_to_num(c_raw, nan=1.0), 1.0), 1.0)
    if shared_dispersion:
        with np.errstate(invalid="ignore", divide="ignore"):
            phi_row = phi_sum / np.maximum(members, 1.0)
            floor = np.where(phi_row > 0, 1.0 / phi_row, 1.0)
        own = np.maximum(np.nan_to_num(c_raw, nan=1.0), floor)
        c = np.where(multi, c, own)
    r = _autocorrelation(u, basis.shape[1])[:, 1:]
    amp = np.clip((r @ basis.T) / norm[None, :], 0.0, 1.0)  # [G, P]
    sse = np.sum((r[:, None, :] - amp[:, :, None] * basis[None, :, :]) ** 2, axis=2)
    best = np.argmin(sse, axis=1)
    a = amp[np.arange(r.shape[0]), best]
    phi = grid[best]
    k = np.arange(1, basis.shape[1] + 1)
    rho = a[:, None] * phi[:, None] ** (k[None, :] - 1)
    return n, c_raw, c, rho, a, phi


def year_moments_ref(
    resid: np.ndarray,
    obs: np.ndarray,
    fitted: np.ndarray,
    mu: np.ndarray,
    in_sample: bool,
    c: np.ndarray,
    rho: np.ndarray,
    a: np.ndarray,
    phi: np.ndarray,
    pf: np.ndarray,
    blocks: list[np.ndarray],
    h: np.ndarray,
    year_fitted: np.ndarray,
    coverage: float,
) -> tuple[float, float]:
    """(num, den) of the year effect over the rows and blocks: see :func:`..dependence.year_rows`
    (``year_fitted`` [J, G]: the rows of each block's year)."""
    num = 0.0
    den = 0.0
    for j, pos in enumerate(blocks):
        r = resid[:, pos]
        present = np.isfinite(r)
        ok = present.sum(axis=1) >= coverage * pos.size
        if not ok.any():
            continue
        sel = np.flatnonzero(ok)
        m = np.where(present, mu[:, pos], 0.0)[sel]
        base = obs[:, pos] if in_sample else obs[:, pos] + fitted[:, pos]
        weekly = c[:, None] * base
        s = np.sqrt(np.where(present, weekly, 0.0)[sel])
        span = np.zeros((sel.size, pos[-1] - pos[0] + 1))
        span[:, pos - pos[0]] = s
        serial = running_variance_ref(span, rho[sel], a[sel], phi[sel])[:, -1]
        explained = serial - year_fitted[j][sel] * pf[sel] if in_sample else serial
        b = np.nansum(r[sel], axis=1)
        big = np.sum(m, axis=1) ** 2 - np.sum(m * m, axis=1)
        factor = (1.0 - h[j]) if in_sample else (1.0 + h[j])
        good = np.isfinite(b) & np.isfinite(explained) & np.isfinite(big)
        num += float(np.sum((b * b - explained)[good]))
        den += float(np.sum((big * factor)[good]))
    return num, den


def column_totals_ref(
    resid: np.ndarray, obs: np.ndarray, fitted: np.ndarray, in_sample: bool, c: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(sum_g resid, nansum_g c d) per week."""
    with np.errstate(invalid="ignore"):
        d = obs - fitted if in_sample else obs + fitted
        d = np.maximum(d, 0.05 * obs)
    return np.sum(resid, axis=0), np.nansum(c[:, None] * d, axis=0)
