"""numba: variances of running sums of a serially correlated series (numpy twin: dependence_ref.py).

Rows g (groups) are independent problems; week t of row g has standard deviation s[g, t] and two
weeks k apart have correlation rho[g, k - 1] for k = 1..L (estimated lags) and A[g] phi[g]^(k - 1)
beyond (a geometric, ARMA(1, 1), tail). The variance of the running sum up to week k is

    V_k = V_{k-1} + s_k^2 + 2 s_k (sum_{j=1..L} rho_j s_{k-j} + A phi^L q_k),
    q_k = phi q_{k-1} + s_{k-L-1},

so every prefix comes in O(W L) per row instead of the O(W^2) of the full covariance.
"""

from __future__ import annotations

import numpy as np

from ._jit import jit, jit_parallel, prange


@jit
def _row(s: np.ndarray, rho: np.ndarray, a: float, phi: float, out: np.ndarray) -> None:
    n_lags = rho.shape[0]
    tail = a * phi**n_lags
    total = 0.0
    q = 0.0
    for k in range(s.shape[0]):
        if k - n_lags - 1 >= 0:
            q = phi * q + s[k - n_lags - 1]
        cross = tail * q
        for j in range(1, min(n_lags, k) + 1):
            cross += rho[j - 1] * s[k - j]
        sk = s[k]
        total += sk * sk + 2.0 * sk * cross
        out[k] = total


@jit_parallel
def running_variance(
    s: np.ndarray, rho: np.ndarray, a: np.ndarray, phi: np.ndarray, out: np.ndarray
) -> None:
    """out[g, k] = variance of sum_{t <= k} of row g (prange over rows)."""
    for g in prange(s.shape[0]):
        _row(s[g], rho[g], a[g], phi[g], out[g])


@jit
def running_variance_serial(
    s: np.ndarray, rho: np.ndarray, a: np.ndarray, phi: np.ndarray, out: np.ndarray
) -> None:
    """As :func:`running_variance`, without threads (for thread pools on the workqueue layer)."""
    for g in range(s.shape[0]):
        _row(s[g], rho[g], a[g], phi[g], out[g])


# ------------------------------------------------------------------------------ group sums
@jit
def _sum_groups(
    lo: int,
    hi: int,
    order: np.ndarray,
    ptr: np.ndarray,
    deaths: np.ndarray,
    mu: np.ndarray,
    mask: np.ndarray,
    finite_mu: bool,
    obs: np.ndarray,
    use_phi: bool,
    phi: np.ndarray,
    q: np.ndarray,
    use_q: bool,
    resid: np.ndarray,
    obs_out: np.ndarray,
    mu_out: np.ndarray,
    root_out: np.ndarray,
    fitted: np.ndarray,
    flags: np.ndarray,
    own_rows: bool,
) -> None:
    """Groups lo..hi-1: add each member row s = order[ptr[g]:ptr[g + 1]] (ascending) into row g of
    the sums; group G (= resid.shape[0], the series in no group) only flags its residual weeks.
    ``own_rows`` (every series its own group): the sums of mu and sqrt(obs) are not formed (they are
    mu and sqrt(obs) themselves)."""
    n_groups, n_weeks = resid.shape
    for g in range(lo, hi):
        for i in range(ptr[g], ptr[g + 1]):
            s = order[i]
            for t in range(n_weeks):
                m = mask[s, t]
                mst = mu[s, t]
                if finite_mu and not np.isfinite(mst):
                    m = False
                if m:
                    flags[t] = True
                if g == n_groups:
                    continue
                o = phi[s] * mst if use_phi else obs[s, t]
                resid[g, t] += deaths[s, t] - mst if m else np.nan
                obs_out[g, t] += o
                if not own_rows:
                    mu_out[g, t] += mst
                    root_out[g, t] += np.sqrt(o)
                if use_q:
                    fitted[g, t] += phi[s] * (mst * mst) * q[s, t]


@jit_parallel
def group_sums(
    order: np.ndarray,
    ptr: np.ndarray,
    chunks: np.ndarray,
    deaths: np.ndarray,
    mu: np.ndarray,
    mask: np.ndarray,
    finite_mu: bool,
    obs: np.ndarray,
    use_phi: bool,
    phi: np.ndarray,
    q: np.ndarray,
    use_q: bool,
    resid: np.ndarray,
    obs_out: np.ndarray,
    mu_out: np.ndarray,
    root_out: np.ndarray,
    fitted: np.ndarray,
    flags: np.ndarray,
    own_rows: bool,
) -> None:
    """One pass over the series: per group g and week t the sums of the residual y - mu on the
    residual weeks (NaN off them), the null variance phi mu (``use_phi``) or ``obs``, mu, sqrt of
    the null variance and, with ``use_q``, phi mu^2 q (the fitted variance of a per-series GLM).

    ``mask`` is the residual mask [S, T] (and mu finite when ``finite_mu``); the members of group g
    are order[ptr[g]:ptr[g + 1]] (ascending; group G: the series left out). The sums start at zero
    and add their members in order. prange over the chunks of groups chunks[c]..chunks[c + 1]
    (flags[c] [T]: weeks with a residual in the chunk); each row is written by one thread."""
    for c in prange(chunks.shape[0] - 1):
        _sum_groups(
            chunks[c], chunks[c + 1], order, ptr, deaths, mu, mask, finite_mu, obs, use_phi, phi,
            q, use_q, resid, obs_out, mu_out, root_out, fitted, flags[c], own_rows,
        )  # fmt: skip


@jit
def group_sums_serial(
    order: np.ndarray,
    ptr: np.ndarray,
    chunks: np.ndarray,
    deaths: np.ndarray,
    mu: np.ndarray,
    mask: np.ndarray,
    finite_mu: bool,
    obs: np.ndarray,
    use_phi: bool,
    phi: np.ndarray,
    q: np.ndarray,
    use_q: bool,
    resid: np.ndarray,
    obs_out: np.ndarray,
    mu_out: np.ndarray,
    root_out: np.ndarray,
    fitted: np.ndarray,
    flags: np.ndarray,
    own_rows: bool,
) -> None:
    """As :func:`group_sums`, without threads."""
    for c in range(chunks.shape[0] - 1):
        _sum_groups(
            chunks[c], chunks[c + 1], order, ptr, deaths, mu, mask, finite_mu, obs, use_phi, phi,
            q, use_q, resid, obs_out, mu_out, root_out, fitted, flags[c], own_rows,
        )  # fmt: skip


@jit
def _quad_series(
    s: int,
    mu: np.ndarray,
    X: np.ndarray,
    cov: np.ndarray,
    phi: np.ndarray,
    year_of: np.ndarray,
    n_years: int,
    out: np.ndarray,
) -> None:
    n_weeks = mu.shape[1]
    p = X.shape[1]
    g = np.zeros((n_years, p))
    for t in range(n_weeks):
        j = year_of[t]
        if j < 0:
            continue
        mst = mu[s, t]
        for k in range(p):
            g[j, k] += mst * X[t, k]
    for j in range(n_years):
        acc = 0.0
        for k in range(p):
            row = 0.0
            for m in range(p):
                row += cov[s, k, m] * g[j, m]
            acc += g[j, k] * row
        out[j, s] = phi[s] * acc


@jit_parallel
def year_window_quad(
    mu: np.ndarray,
    X: np.ndarray,
    cov: np.ndarray,
    phi: np.ndarray,
    year_of: np.ndarray,
    n_years: int,
    out: np.ndarray,
) -> None:
    """out[j, s] = phi_s g' C_s g with g = sum over the weeks t of year j (``year_of[t] == j``,
    -1: none) of mu[s, t] x_t: a per-series GLM's fitted variance of each year's sum (prange over
    series)."""
    for s in prange(mu.shape[0]):
        _quad_series(s, mu, X, cov, phi, year_of, n_years, out)


@jit
def year_window_quad_serial(
    mu: np.ndarray,
    X: np.ndarray,
    cov: np.ndarray,
    phi: np.ndarray,
    year_of: np.ndarray,
    n_years: int,
    out: np.ndarray,
) -> None:
    """As :func:`year_window_quad`, without threads."""
    for s in range(mu.shape[0]):
        _quad_series(s, mu, X, cov, phi, year_of, n_years, out)


# ------------------------------------------------------------------------------ serial model
@jit
def _nan_max(x: float, y: float) -> float:
    """np.maximum: NaN when either is NaN."""
    if np.isnan(x) or np.isnan(y):
        return np.nan
    return x if x >= y else y


@jit
def _null(obs: float, fitted: float, in_sample: bool) -> float:
    d = obs - fitted if in_sample else obs + fitted
    return _nan_max(d, 0.05 * obs)


@jit
def _serial_row(
    resid: np.ndarray,
    obs: np.ndarray,
    fitted: np.ndarray,
    in_sample: bool,
    basis: np.ndarray,
    norm: np.ndarray,
    grid: np.ndarray,
    u: np.ndarray,
    acf: np.ndarray,
    rho: np.ndarray,
) -> tuple[float, float, float, float]:
    """(n, c_raw, A, phi) of one row, rho [L] written: the standardised residuals, their mean
    square, autocorrelation (demeaned, lags 0..L) and the ARMA(1, 1) grid fit."""
    n_weeks = resid.shape[0]
    n_lags = rho.shape[0]
    n = 0
    total = 0.0
    square = 0.0
    for t in range(n_weeks):
        ut = resid[t] / np.sqrt(_null(obs[t], fitted[t], in_sample))
        if np.isfinite(ut):
            u[t] = ut
            n += 1
            total += ut
            square += ut * ut
        else:
            u[t] = np.nan
    c_raw = square / n if n > 0 else np.nan
    centre = total / n if n > 0 else 0.0
    for t in range(n_weeks):
        u[t] = u[t] - centre if np.isfinite(u[t]) else 0.0
    den = 0.0
    for t in range(n_weeks):
        den += u[t] * u[t]
    # lag k's sum runs over t ascending as a chain of its own; the lags advance together (the
    # same additions in the same order as one lag after the other, without L serial chains)
    for k in range(n_lags + 1):
        acf[k] = 0.0
    for t in range(n_weeks - 1):
        ut = u[t]
        top = min(n_lags, n_weeks - 1 - t)
        for k in range(1, top + 1):
            acf[k] += u[t + k] * ut
    for k in range(1, n_lags + 1):
        if k >= n_weeks:
            acf[k] = 0.0
            continue
        r = acf[k] / den
        acf[k] = r if np.isfinite(r) else 0.0
    # the grid fit: every grid point's sums over k in ascending order, the points side by side
    n_grid = grid.shape[0]
    dot = np.zeros(n_grid)
    sse = np.zeros(n_grid)
    for k in range(n_lags):
        ak = acf[k + 1]
        for p in range(n_grid):
            dot[p] += ak * basis[p, k]
    for p in range(n_grid):
        amp = dot[p] / norm[p]
        dot[p] = 0.0 if amp < 0.0 else (1.0 if amp > 1.0 else amp)
    for k in range(n_lags):
        ak = acf[k + 1]
        for p in range(n_grid):
            e = ak - dot[p] * basis[p, k]
            sse[p] += e * e
    best = 0
    best_sse = np.inf
    best_amp = 0.0
    for p in range(n_grid):
        if sse[p] < best_sse or p == 0:
            best = p
            best_sse = sse[p]
            best_amp = dot[p]
    for k in range(n_lags):
        rho[k] = best_amp * basis[best, k]
    return float(n), c_raw, best_amp, grid[best]


@jit
def _serial_group(
    g: int,
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
    n_out: np.ndarray,
    c_raw: np.ndarray,
    c: np.ndarray,
    rho: np.ndarray,
    a: np.ndarray,
    phi: np.ndarray,
) -> None:
    u = np.empty(resid.shape[1])
    acf = np.zeros(rho.shape[1] + 1)
    n, cr, amp, ph = _serial_row(
        resid[g], obs[g], fitted[g], in_sample, basis, norm, grid, u, acf, rho[g]
    )
    n_out[g] = n
    c_raw[g] = cr
    a[g] = amp
    phi[g] = ph
    c[g] = _row_c(cr, members[g], phi_sum[g], shared_dispersion)


@jit
def _row_c(cr: float, members: float, phi_sum: float, shared_dispersion: bool) -> float:
    """c of a row from its raw mean square ``cr`` (part 1 of :mod:`excessmort.dependence`)."""
    known = 1.0 if np.isnan(cr) else cr
    if members > 1:
        return known if known > 1.0 else 1.0
    if shared_dispersion:
        phi_row = phi_sum / (members if members > 1.0 else 1.0)
        floor = 1.0 / phi_row if phi_row > 0 else 1.0
        return _nan_max(known, floor)
    return 1.0


@jit_parallel
def serial_rows(
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
    n_out: np.ndarray,
    c_raw: np.ndarray,
    c: np.ndarray,
    rho: np.ndarray,
    a: np.ndarray,
    phi: np.ndarray,
) -> None:
    """Parts 1-2 of :mod:`excessmort.dependence` for every group row (prange over rows): n, c_raw,
    c, rho [G, L] (the fitted A phi^(k-1)), A and phi from the group sums [G, T]; ``basis`` [P, L]
    holds grid^(k-1) and ``norm`` [P] its row sums of squares."""
    for g in prange(resid.shape[0]):
        _serial_group(
            g, resid, obs, fitted, in_sample, members, phi_sum, shared_dispersion, basis, norm,
            grid, n_out, c_raw, c, rho, a, phi,
        )  # fmt: skip


@jit
def serial_rows_serial(
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
    n_out: np.ndarray,
    c_raw: np.ndarray,
    c: np.ndarray,
    rho: np.ndarray,
    a: np.ndarray,
    phi: np.ndarray,
) -> None:
    """As :func:`serial_rows`, without threads."""
    for g in range(resid.shape[0]):
        _serial_group(
            g, resid, obs, fitted, in_sample, members, phi_sum, shared_dispersion, basis, norm,
            grid, n_out, c_raw, c, rho, a, phi,
        )  # fmt: skip


# ------------------------------------------------------------------------------ year effect
@jit
def _running_last(s: np.ndarray, rho: np.ndarray, a: float, phi: float) -> float:
    """The variance of the whole sum of one row (the last value of :func:`_row`)."""
    n_lags = rho.shape[0]
    tail = a * phi**n_lags
    total = 0.0
    q = 0.0
    for k in range(s.shape[0]):
        if k - n_lags - 1 >= 0:
            q = phi * q + s[k - n_lags - 1]
        cross = tail * q
        for j in range(1, min(n_lags, k) + 1):
            cross += rho[j - 1] * s[k - j]
        sk = s[k]
        total += sk * sk + 2.0 * sk * cross
    return total


@jit
def _year_row(
    g: int,
    resid: np.ndarray,
    obs: np.ndarray,
    fitted: np.ndarray,
    mu: np.ndarray,
    in_sample: bool,
    c: float,
    rho: np.ndarray,
    a: float,
    phi: float,
    pf: float,
    pos: np.ndarray,
    ptr: np.ndarray,
    h: np.ndarray,
    year_fitted: np.ndarray,
    coverage: float,
    num: np.ndarray,
    den: np.ndarray,
    good: np.ndarray,
    span: np.ndarray,
) -> None:
    """Part 3 of row g from its sums ``resid``, ``obs``, ``fitted``, ``mu`` [T] (read at the block
    positions only); ``span`` scratch of at least the longest block's span."""
    n_blocks = ptr.shape[0] - 1
    for j in range(n_blocks):
        lo = ptr[j]
        hi = ptr[j + 1]
        size = hi - lo
        first = pos[lo]
        width = pos[hi - 1] - first + 1
        row = span[:width]
        row[:] = 0.0
        present = 0
        b = 0.0
        sm = 0.0
        sq = 0.0
        for i in range(lo, hi):
            t = pos[i]
            r = resid[t]
            if np.isfinite(r):
                present += 1
                b += r
                m = mu[t]
                sm += m
                sq += m * m
                base = obs[t] if in_sample else obs[t] + fitted[t]
                row[t - first] = np.sqrt(c * base)
            elif not np.isnan(r):
                b += r
        if present < coverage * size:
            good[j, g] = False
            continue
        serial = _running_last(row, rho, a, phi)
        explained = serial - year_fitted[j, g] * pf if in_sample else serial
        big = sm * sm - sq
        factor = 1.0 - h[j] if in_sample else 1.0 + h[j]
        num[j, g] = b * b - explained
        den[j, g] = big * factor
        good[j, g] = np.isfinite(b) and np.isfinite(explained) and np.isfinite(big)


@jit
def _block_width(pos: np.ndarray, ptr: np.ndarray) -> int:
    """The longest span of weeks of a block (scratch length of :func:`_year_row`)."""
    width = 1
    for j in range(ptr.shape[0] - 1):
        if ptr[j + 1] > ptr[j]:
            w = pos[ptr[j + 1] - 1] - pos[ptr[j]] + 1
            width = w if w > width else width
    return width


@jit
def _year_group(
    g: int,
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
    pos: np.ndarray,
    ptr: np.ndarray,
    h: np.ndarray,
    year_fitted: np.ndarray,
    coverage: float,
    num: np.ndarray,
    den: np.ndarray,
    good: np.ndarray,
) -> None:
    width = _block_width(pos, ptr)
    _year_row(
        g, resid[g], obs[g], fitted[g], mu[g], in_sample, c[g], rho[g], a[g], phi[g], pf[g], pos,
        ptr, h, year_fitted, coverage, num, den, good, np.empty(width),
    )  # fmt: skip


@jit
def _window_row(
    g: int,
    obs: np.ndarray,
    extra: np.ndarray,
    use_extra: bool,
    c: np.ndarray,
    rho: np.ndarray,
    a: np.ndarray,
    phi: np.ndarray,
    out: np.ndarray,
) -> None:
    n_weeks = obs.shape[1]
    s = np.empty(n_weeks)
    for t in range(n_weeks):
        v = obs[g, t] + extra[g, t] if use_extra else obs[g, t]
        s[t] = np.sqrt(c[g] * v)
    out[g] = _running_last(s, rho[g], a[g], phi[g])


@jit
def _window_scaled_row(
    g: int,
    mu: np.ndarray,
    scale: np.ndarray,
    lo: int,
    hi: int,
    c: np.ndarray,
    rho: np.ndarray,
    a: np.ndarray,
    phi: np.ndarray,
    out: np.ndarray,
) -> None:
    s = np.empty(hi - lo)
    for t in range(lo, hi):
        s[t - lo] = np.sqrt(c[g] * (scale[g] * mu[g, t]))
    out[g] = _running_last(s, rho[g], a[g], phi[g])


def _window_scaled_total(
    mu: np.ndarray,
    scale: np.ndarray,
    lo: int,
    hi: int,
    c: np.ndarray,
    rho: np.ndarray,
    a: np.ndarray,
    phi: np.ndarray,
    out: np.ndarray,
) -> None:
    """:func:`window_serial_total` of the weeks lo..hi-1 of rows with sds sqrt(c_g scale_g mu_gt)
    (a per-series phi mu, never formed; prange over rows)."""
    for g in prange(mu.shape[0]):
        _window_scaled_row(g, mu, scale, lo, hi, c, rho, a, phi, out)


window_scaled_total = jit_parallel(_window_scaled_total)
window_scaled_total_serial = jit(_window_scaled_total)  # (prange runs as range)


@jit_parallel
def window_serial_total(
    obs: np.ndarray,
    extra: np.ndarray,
    use_extra: bool,
    c: np.ndarray,
    rho: np.ndarray,
    a: np.ndarray,
    phi: np.ndarray,
    out: np.ndarray,
) -> None:
    """out[g] = variance of the sum over all weeks of row g with sds sqrt(c_g (obs + extra)) (the
    last column of :func:`running_variance`; prange over rows)."""
    for g in prange(obs.shape[0]):
        _window_row(g, obs, extra, use_extra, c, rho, a, phi, out)


@jit
def window_serial_total_serial(
    obs: np.ndarray,
    extra: np.ndarray,
    use_extra: bool,
    c: np.ndarray,
    rho: np.ndarray,
    a: np.ndarray,
    phi: np.ndarray,
    out: np.ndarray,
) -> None:
    """As :func:`window_serial_total`, without threads."""
    for g in range(obs.shape[0]):
        _window_row(g, obs, extra, use_extra, c, rho, a, phi, out)


@jit_parallel
def year_rows(
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
    pos: np.ndarray,
    ptr: np.ndarray,
    h: np.ndarray,
    year_fitted: np.ndarray,
    coverage: float,
    num: np.ndarray,
    den: np.ndarray,
    good: np.ndarray,
) -> None:
    """Part 3 per group row and reference year block j (positions pos[ptr[j]:ptr[j + 1]],
    ``year_fitted`` [J, G] its rows): num[j, g] = B^2 - explained, den[j, g] = [(sum mu)^2 -
    sum mu^2] (1 -+ h_j), good[j, g] whether they count (prange over rows)."""
    for g in prange(resid.shape[0]):
        _year_group(
            g,
            resid,
            obs,
            fitted,
            mu,
            in_sample,
            c,
            rho,
            a,
            phi,
            pf,
            pos,
            ptr,
            h,
            year_fitted,
            coverage,
            num,
            den,
            good,
        )


@jit
def year_rows_serial(
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
    pos: np.ndarray,
    ptr: np.ndarray,
    h: np.ndarray,
    year_fitted: np.ndarray,
    coverage: float,
    num: np.ndarray,
    den: np.ndarray,
    good: np.ndarray,
) -> None:
    """As :func:`year_rows`, without threads."""
    for g in range(resid.shape[0]):
        _year_group(
            g,
            resid,
            obs,
            fitted,
            mu,
            in_sample,
            c,
            rho,
            a,
            phi,
            pf,
            pos,
            ptr,
            h,
            year_fitted,
            coverage,
            num,
            den,
            good,
        )


@jit
def column_totals(
    resid: np.ndarray,
    obs: np.ndarray,
    fitted: np.ndarray,
    in_sample: bool,
    c: np.ndarray,
    e_total: np.ndarray,
    d_total: np.ndarray,
) -> None:
    """e_total[t] = sum_g resid[g, t], d_total[t] = nansum_g c_g d_gt: rows added in order (as
    numpy's reduction over the first axis), row by row over contiguous memory, without threads (a
    pass over memory: threads on column blocks only contend for cache lines)."""
    n_rows, n_weeks = resid.shape
    for g in range(n_rows):
        for t in range(n_weeks):
            e_total[t] += resid[g, t]
            v = c[g] * _null(obs[g, t], fitted[g, t], in_sample)
            if not np.isnan(v):
                d_total[t] += v


# ------------------------------------------------------------------------------ series' own rows
# Every series its own group (the rows of a per-series view): the group sums are the series' own
# arrays, so these kernels form each row's residual, null and fitted variances where they read them
# (the arithmetic of ``_sum_groups`` for one member, from zero) and never write [S, T] sums.


@jit
def _own_cell(
    s: int,
    t: int,
    deaths: np.ndarray,
    mu: np.ndarray,
    mask: np.ndarray,
    finite_mu: bool,
    obs: np.ndarray,
    use_phi: bool,
    phi: np.ndarray,
    q: np.ndarray,
    use_q: bool,
    fitted: np.ndarray,
) -> tuple[bool, float, float, float]:
    """(residual week, resid, obs, fitted) of series s, week t, as ``group_sums`` sums them (a
    non-GLM's ``fitted`` [S, T] is taken as given)."""
    m = mask[s, t]
    mst = mu[s, t]
    if finite_mu and not np.isfinite(mst):
        m = False
    r = 0.0
    r += deaths[s, t] - mst if m else np.nan
    o = 0.0
    o += phi[s] * mst if use_phi else obs[s, t]
    if use_q:
        f = 0.0
        f += phi[s] * (mst * mst) * q[s, t]
    else:
        f = fitted[s, t]
    return m, r, o, f


@jit
def _own_serial_chunk(
    lo: int,
    hi: int,
    deaths: np.ndarray,
    mu: np.ndarray,
    mask: np.ndarray,
    finite_mu: bool,
    obs: np.ndarray,
    use_phi: bool,
    phi: np.ndarray,
    q: np.ndarray,
    use_q: bool,
    fitted: np.ndarray,
    in_sample: bool,
    shared_dispersion: bool,
    basis: np.ndarray,
    norm: np.ndarray,
    grid: np.ndarray,
    n_out: np.ndarray,
    c_raw: np.ndarray,
    c: np.ndarray,
    rho: np.ndarray,
    a: np.ndarray,
    phi_out: np.ndarray,
    flags: np.ndarray,
) -> None:
    n_weeks = mu.shape[1]
    resid = np.empty(n_weeks)
    null = np.empty(n_weeks)
    fit = np.empty(n_weeks)
    u = np.empty(n_weeks)
    acf = np.zeros(rho.shape[1] + 1)
    for g in range(lo, hi):
        # the row's residual weeks first..last: outside them u is NaN, so it enters every sum of
        # _serial_row as a zero after demeaning, and adding those zeros changes no sum (bit for
        # bit): the row is read and standardised on first..last only
        first = n_weeks
        last = -1
        for t in range(n_weeks):
            # mu is read only on the masked weeks (the post-reference weeks are not touched)
            m = mask[g, t] and not (finite_mu and not np.isfinite(mu[g, t]))
            if m:
                flags[t] = True
                last = t
                if first == n_weeks:
                    first = t
        if last < 0:  # no residual week: the whole row, as the group sums give it
            first = 0
            last = n_weeks - 1
        for t in range(first, last + 1):
            _, r, o, f = _own_cell(
                g, t, deaths, mu, mask, finite_mu, obs, use_phi, phi, q, use_q, fitted
            )
            resid[t] = r
            null[t] = o
            fit[t] = f
        stop = last + 1
        n, cr, amp, ph = _serial_row(
            resid[first:stop], null[first:stop], fit[first:stop], in_sample, basis, norm, grid,
            u[: stop - first], acf, rho[g],
        )  # fmt: skip
        n_out[g] = n
        c_raw[g] = cr
        a[g] = amp
        phi_out[g] = ph
        c[g] = _row_c(cr, 1.0, 0.0 + phi[g], shared_dispersion)


def _own_serial_rows(
    chunks: np.ndarray,
    deaths: np.ndarray,
    mu: np.ndarray,
    mask: np.ndarray,
    finite_mu: bool,
    obs: np.ndarray,
    use_phi: bool,
    phi: np.ndarray,
    q: np.ndarray,
    use_q: bool,
    fitted: np.ndarray,
    in_sample: bool,
    shared_dispersion: bool,
    basis: np.ndarray,
    norm: np.ndarray,
    grid: np.ndarray,
    n_out: np.ndarray,
    c_raw: np.ndarray,
    c: np.ndarray,
    rho: np.ndarray,
    a: np.ndarray,
    phi_out: np.ndarray,
    flags: np.ndarray,
) -> None:
    """:func:`serial_rows` of every series its own group, from the series' arrays (``group_sums``'
    inputs) in one pass: prange over the chunks of rows chunks[k]..chunks[k + 1] (flags[k] [T]: the
    chunk's residual weeks)."""
    for k in prange(chunks.shape[0] - 1):
        _own_serial_chunk(
            chunks[k], chunks[k + 1], deaths, mu, mask, finite_mu, obs, use_phi, phi, q, use_q,
            fitted, in_sample, shared_dispersion, basis, norm, grid, n_out, c_raw, c, rho, a,
            phi_out, flags[k],
        )  # fmt: skip


own_serial_rows = jit_parallel(_own_serial_rows)
own_serial_rows_serial = jit(_own_serial_rows)  # (prange runs as range)


@jit
def _block_quads(
    s: int,
    mu: np.ndarray,
    X: np.ndarray,
    cov: np.ndarray,
    phi: np.ndarray,
    pos: np.ndarray,
    ptr: np.ndarray,
    g: np.ndarray,
    out: np.ndarray,
) -> None:
    """out[j, s] = phi_s g' C_s g over the weeks of block j: :func:`_quad_series` of the block's
    year (its weeks are that year's residual weeks, in the same order), the same sums."""
    p = X.shape[1]
    for j in range(ptr.shape[0] - 1):
        g[:] = 0.0
        for i in range(ptr[j], ptr[j + 1]):
            t = pos[i]
            mst = mu[s, t]
            for k in range(p):
                g[k] += mst * X[t, k]
        acc = 0.0
        for k in range(p):
            row = 0.0
            for m in range(p):
                row += cov[s, k, m] * g[m]
            acc += g[k] * row
        out[j, s] = phi[s] * acc


@jit
def _own_year_chunk(
    lo: int,
    hi: int,
    deaths: np.ndarray,
    mu: np.ndarray,
    mask: np.ndarray,
    finite_mu: bool,
    obs: np.ndarray,
    use_phi: bool,
    phi: np.ndarray,
    q: np.ndarray,
    use_q: bool,
    fitted: np.ndarray,
    in_sample: bool,
    c: np.ndarray,
    rho: np.ndarray,
    a: np.ndarray,
    phi_arma: np.ndarray,
    pf: np.ndarray,
    pos: np.ndarray,
    ptr: np.ndarray,
    h: np.ndarray,
    year_fitted: np.ndarray,
    quad: bool,
    X: np.ndarray,
    cov: np.ndarray,
    coverage: float,
    num: np.ndarray,
    den: np.ndarray,
    good: np.ndarray,
) -> None:
    n_weeks = mu.shape[1]
    resid = np.empty(n_weeks)
    null = np.empty(n_weeks)
    fit = np.empty(n_weeks)
    span = np.empty(_block_width(pos, ptr))
    gsum = np.empty(X.shape[1])
    for g in range(lo, hi):
        for i in range(pos.shape[0]):
            t = pos[i]
            _, r, o, f = _own_cell(
                g, t, deaths, mu, mask, finite_mu, obs, use_phi, phi, q, use_q, fitted
            )
            resid[t] = r
            null[t] = o
            fit[t] = f
        if quad:
            _block_quads(g, mu, X, cov, phi, pos, ptr, gsum, year_fitted)
        _year_row(
            g, resid, null, fit, mu[g], in_sample, c[g], rho[g], a[g], phi_arma[g], pf[g], pos,
            ptr, h, year_fitted, coverage, num, den, good, span,
        )  # fmt: skip


def _own_year_rows(
    chunks: np.ndarray,
    deaths: np.ndarray,
    mu: np.ndarray,
    mask: np.ndarray,
    finite_mu: bool,
    obs: np.ndarray,
    use_phi: bool,
    phi: np.ndarray,
    q: np.ndarray,
    use_q: bool,
    fitted: np.ndarray,
    in_sample: bool,
    c: np.ndarray,
    rho: np.ndarray,
    a: np.ndarray,
    phi_arma: np.ndarray,
    pf: np.ndarray,
    pos: np.ndarray,
    ptr: np.ndarray,
    h: np.ndarray,
    year_fitted: np.ndarray,
    quad: bool,
    X: np.ndarray,
    cov: np.ndarray,
    coverage: float,
    num: np.ndarray,
    den: np.ndarray,
    good: np.ndarray,
) -> None:
    """:func:`year_rows` of every series its own group, from the series' arrays at the blocks'
    weeks only (prange over the chunks of rows); with ``quad`` (a per-series GLM) each block's
    fitted variance ``year_fitted`` [J, S] is formed on the way (:func:`_block_quads`)."""
    for k in prange(chunks.shape[0] - 1):
        _own_year_chunk(
            chunks[k], chunks[k + 1], deaths, mu, mask, finite_mu, obs, use_phi, phi, q, use_q,
            fitted, in_sample, c, rho, a, phi_arma, pf, pos, ptr, h, year_fitted, quad, X, cov,
            coverage, num, den, good,
        )  # fmt: skip


own_year_rows = jit_parallel(_own_year_rows)
own_year_rows_serial = jit(_own_year_rows)  # (prange runs as range)


@jit
def _own_columns(
    lo: int,
    hi: int,
    deaths: np.ndarray,
    mu: np.ndarray,
    mask: np.ndarray,
    finite_mu: bool,
    obs: np.ndarray,
    use_phi: bool,
    phi: np.ndarray,
    q: np.ndarray,
    use_q: bool,
    fitted: np.ndarray,
    in_sample: bool,
    c: np.ndarray,
    e_total: np.ndarray,
    d_total: np.ndarray,
) -> None:
    for g in range(mu.shape[0]):
        for t in range(lo, hi):
            _, r, o, f = _own_cell(
                g, t, deaths, mu, mask, finite_mu, obs, use_phi, phi, q, use_q, fitted
            )
            e_total[t] += r
            v = c[g] * _null(o, f, in_sample)
            if not np.isnan(v):
                d_total[t] += v


def _own_column_totals(
    chunks: np.ndarray,
    deaths: np.ndarray,
    mu: np.ndarray,
    mask: np.ndarray,
    finite_mu: bool,
    obs: np.ndarray,
    use_phi: bool,
    phi: np.ndarray,
    q: np.ndarray,
    use_q: bool,
    fitted: np.ndarray,
    in_sample: bool,
    c: np.ndarray,
    e_total: np.ndarray,
    d_total: np.ndarray,
) -> None:
    """:func:`column_totals` of every series its own group, from the series' arrays: prange over
    blocks of weeks chunks[k]..chunks[k + 1], each adding the rows in order (the sums of
    :func:`column_totals`, bit for bit)."""
    for k in prange(chunks.shape[0] - 1):
        _own_columns(
            chunks[k], chunks[k + 1], deaths, mu, mask, finite_mu, obs, use_phi, phi, q, use_q,
            fitted, in_sample, c, e_total, d_total,
        )  # fmt: skip


own_column_totals = jit_parallel(_own_column_totals)
own_column_totals_serial = jit(_own_column_totals)  # (prange runs as range)
