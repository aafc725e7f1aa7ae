"""numba kernels of the ``farrington`` baseline: every rolling refit of R surveillance's
``farringtonFlexible``, for every series and predicted week, in one parallel pass.

For a series s and a predicted week k the model is R's ``algo.farrington.fitGLM.flexible``:
a quasi-Poisson GLM with log link on the weeks of k's window (the b years before k, w weeks either
side, plus, with ``noPeriods > 1``, the seasonal blocks between), with one level per seasonal block
(``seasgroups``), an optional linear time trend (``wtime``, in weeks) and an optional offset. The
factor is parametrised by cell means (one indicator column per level, no intercept) and the trend
is centred within each level: an exact reparametrisation of R's treatment contrasts, so fitted
values, the trend coefficient, its standard error and every prediction are R's. X'WX is then an
arrow matrix (diagonal over levels, one dense trend row), so each IRLS step costs O(rows + levels).

IRLS is R ``glm.fit`` step for step (start mu = y + 0.1, mu = pmax(exp(eta), eps), convergence
|dev - dev_old| / (|dev| + 0.1) < tol within ``max_iter``); the covariance, hat values and
dispersion use the working weights of the last iteration, as R's QR and ``summary.glm`` do.
The procedure per (s, k) (``algo.farrington.glm``):

1. fit with the trend (if asked); not converged: fit without; still not: no result (status 1);
2. phi = max(1, dispersion); reweighting: Anscombe residuals
   s_i = 3/2 (y^(2/3) mu^(-1/6) - mu^(1/2)) / sqrt(phi (1 - h_i)), weights gamma s_i^-2 where
   s_i > threshold, else gamma, with gamma making them average 1; refit with these prior weights;
   phi = max(1, dispersion of the refit);
3. trend kept only when b >= 3, its t-test p-value < ``pThresholdTrend`` (|t| > the Student
   quantile with n - rank df, tabulated by the caller) and the predicted mean is not above the
   largest count of the window; otherwise steps 1-2 again without the trend;
4. prediction at k: eta, se(eta) = sqrt(d x' (X'WX)^-1 x) and phi, where d is the dispersion R's
   ``summary.glm`` finds on the returned model, not phi: R passes ``dispersion`` inside ``newdata``
   so ``predict.glm`` estimates its own, and after reweighting R has overwritten the model's working
   weights by the prior weights, so d = sum omega ((y - mu) / mu)^2 / (n - rank) (without
   reweighting, the usual dispersion). The same d enters the trend's t-test. For large counts d is
   far below phi, so R's thresholds then carry almost no parameter uncertainty; we reproduce it.

Tasks are (series, block of ``KBLOCK`` predicted weeks), fixed in size, each computed sequentially:
results are bitwise identical for any thread count.
"""

from __future__ import annotations

import numpy as np

from ._jit import jit, jit_parallel, jit_reduce, prange
from .irls import exp_into

EPS = 2.220446049250313e-16  # .Machine$double.eps: R's floor of mu and mu.eta for the log link
LOG_EPS = float(np.log(EPS))
KBLOCK = 64  # predicted weeks per parallel task (fixed, so results do not depend on threads)

STATUS_OK = 0
STATUS_NO_FIT = 1  # R: "could not converge with nor without time trend" (NA week)
STATUS_SINGULAR = 2  # too few weeks, an empty predicted level, or a singular trend column

# Columns of the per-(series, week) output ``out`` [S, K, N_OUT].
O_ETA, O_SE, O_PHI, O_DISP, O_TREND, O_COEF, O_STATUS, O_ITER, O_NOBS = range(9)
N_OUT = 9


@jit_reduce
def _accumulate(n, P, lstart, mu, eta, offv, yv, tauv, wt, wlast, wzv, A, B, R):  # type: ignore[no-untyped-def]
    """The arrow X'WX and X'Wz at the current mu (W = wt mu): A_l, B_l, R[1 + l]; returns
    (sum w tau^2, sum w tau z). One flat elementwise pass (it stores w and wz) and per-level sums
    that only read: both vectorise (a store inside the short per-level loops does not)."""
    ctt = 0.0
    rt = 0.0
    for i in range(n):
        m = mu[i]
        wi = wt[i] * m
        wz = wi * (eta[i] - offv[i]) + wt[i] * (yv[i] - m)
        wlast[i] = wi
        wzv[i] = wz
        ti = tauv[i]
        ctt += wi * ti * ti
        rt += wz * ti
    for lvl in range(P):
        a = 0.0
        bb = 0.0
        r = 0.0
        for i in range(lstart[lvl], lstart[lvl + 1]):
            wi = wlast[i]
            a += wi
            bb += wi * tauv[i]
            r += wzv[i]
        A[lvl] = a
        B[lvl] = bb
        R[lvl + 1] = r
    return ctt, rt


@jit_reduce
def _update(n, lev, beta, bt, offv, tauv, eta):  # type: ignore[no-untyped-def]
    """eta = beta_level + bt tau + offset (flat, the level of row i is lev[i])."""
    for i in range(n):
        eta[i] = beta[lev[i]] + bt * tauv[i] + offv[i]


@jit_reduce
def _floor_deviance(n, eta, mu, yv, wt):  # type: ignore[no-untyped-def]
    """mu = pmax(mu, eps) (R's linkinv); returns (sum wt y log mu, sum wt (mu - y))."""
    sy = 0.0
    sm = 0.0
    for i in range(n):
        m = mu[i]
        low = m < EPS
        m = EPS if low else m
        mu[i] = m
        lm = LOG_EPS if low else eta[i]
        sy += wt[i] * yv[i] * lm
        sm += wt[i] * (m - yv[i])
    return sy, sm


@jit
def _fit_cells(
    n,
    P,
    lstart,
    lev,
    yv,
    offv,
    tauv,
    wt,
    lny,
    mu0,
    ylogy,
    trend,
    max_iter,
    tol,
    beta,
    eta,
    mu,
    wlast,
    A,
    B,
    R,
    tmp,
    wzv,
):  # type: ignore[no-untyped-def]
    """One R ``glm.fit`` (quasi-Poisson, log link) on cell means (+ centred trend).

    Rows are grouped by level: level l holds rows lstart[l]..lstart[l+1]. Writes beta [P + 1]
    (trend last), eta/mu [n] at the final iterate, wlast [n] the last working weights and, in A, B
    and R[0], the arrow X'WX at those weights (A_l = sum w, B_l = sum w tau, R[0] = sum w tau^2).
    Returns (converged, n_iter, ok) where ok is False for a singular system or a non-finite
    deviance.
    """
    kconst = 0.0
    for i in range(n):
        eta[i] = lny[i]
        mu[i] = mu0[i]  # exp(log(y + 0.1)), tabulated per series
        kconst += wt[i] * ylogy[i]
    sy, sm = _floor_deviance(n, eta, mu, yv, wt)
    dev_old = 2.0 * (kconst - sy + sm)
    conv = False
    n_iter = 0
    bt = 0.0
    ctt = 0.0
    for it in range(1, max_iter + 1):
        n_iter = it
        ctt, rt = _accumulate(n, P, lstart, mu, eta, offv, yv, tauv, wt, wlast, wzv, A, B, R)
        if trend:
            s = ctt
            rr = rt
            for lvl in range(P):
                if A[lvl] > 0.0:
                    s -= B[lvl] * B[lvl] / A[lvl]
                    rr -= B[lvl] * R[lvl + 1] / A[lvl]
            if not (s > 1e-12 * ctt) or not np.isfinite(s):
                return False, n_iter, False
            bt = rr / s
        for lvl in range(P):
            if A[lvl] > 0.0:
                beta[lvl] = (R[lvl + 1] - B[lvl] * bt) / A[lvl] if trend else R[lvl + 1] / A[lvl]
            else:
                beta[lvl] = 0.0
        beta[P] = bt if trend else 0.0
        _update(n, lev, beta, beta[P], offv, tauv, eta)
        exp_into(eta, mu, tmp, n)
        sy, sm = _floor_deviance(n, eta, mu, yv, wt)
        dev = 2.0 * (kconst - sy + sm)
        if not np.isfinite(dev):
            return False, n_iter, False
        if abs(dev - dev_old) / (abs(dev) + 0.1) < tol:
            conv = True
            break
        dev_old = dev
    R[0] = ctt
    return conv, n_iter, True


@jit
def _dispersion(n, rank, yv, mu, wlast):  # type: ignore[no-untyped-def]
    """summary.glm's quasi-Poisson dispersion: sum w (y - mu)^2 / mu^2 / (n - rank)."""
    if n - rank <= 0:
        return np.nan
    acc = 0.0
    for i in range(n):
        d = (yv[i] - mu[i]) / mu[i]
        acc += wlast[i] * d * d
    return acc / (n - rank)


@jit
def _floor1(d):  # type: ignore[no-untyped-def]
    """R's max(d, 1) (NaN stays NaN)."""
    if d > 1.0:
        return d
    if d <= 1.0:
        return 1.0
    return np.nan


@jit_reduce
def _anscombe(
    n, P, lstart, trend, s, ia, cb, tauv, eta, mu, y23, wlast, phi, wthr, tmp, sres, ria, rcb
):  # type: ignore[no-untyped-def]
    """Anscombe residuals sres [n] of the fit (hat values from the arrow inverse, see _fit_fun);
    returns sum(s^-2 where s > wthr, else 1). The level's 1/A and B/A are spread to rows first
    (ria, rcb [n] workspace): the flat loop then vectorises (with a gather by level it does not)."""
    s_eff = s if trend else np.inf  # without the trend, x' M^-1 x = 1/A
    for i in range(n):
        tmp[i] = -(eta[i] if mu[i] > EPS else LOG_EPS) / 6.0
    exp_into(tmp, sres, tmp[n:], n)  # mu^(-1/6)
    for lvl in range(P):
        a_l = ia[lvl]
        c_l = cb[lvl]
        for i in range(lstart[lvl], lstart[lvl + 1]):
            ria[i] = a_l
            rcb[i] = c_l
    big = 1.0 - 10.0 * EPS
    gsum = 0.0
    for i in range(n):
        u = tauv[i] - rcb[i]
        h = wlast[i] * (ria[i] + u * u / s_eff)
        h = 1.0 if h > big else h
        a = 1.5 * (y23[i] * sres[i] - np.sqrt(mu[i])) / np.sqrt(phi * (1.0 - h))
        sres[i] = a
        gsum += 1.0 / (a * a) if a > wthr else 1.0
    return gsum


@jit
def _fit_fun(
    n,
    P,
    lstart,
    lev,
    yv,
    offv,
    tauv,
    y23,
    lny,
    mu0,
    ylogy,
    trend,
    reweight,
    wthr,
    max_iter,
    tol,
    wt,
    beta,
    eta,
    mu,
    wlast,
    A,
    B,
    R,
    tmp,
    sres,
    wzv,
    ia,
    cb,
    ria,
):  # type: ignore[no-untyped-def]
    """R ``algo.farrington.fitGLM.flexible``.

    Returns (status, trend_used, n_iter, disp, disp_se, phi): ``disp`` is summary.glm's dispersion
    of the final fit and phi = max(1, disp). ``disp_se`` is the dispersion R's later ``summary`` and
    ``predict`` calls use: after reweighting R overwrites ``model$weights`` (the working weights)
    with the prior weights omega, so it is sum omega ((y - mu) / mu)^2 / (n - rank) there.
    """
    for i in range(n):
        wt[i] = 1.0
    n_iter = 0
    rank = np.int64(0)  # not the literal 0: numba would compile _dispersion for it too
    disp = np.nan
    disp_se = np.nan
    phi = np.nan
    # phase 0: the first fit; 1: refitted without trend after a fit that did not converge;
    # 2: refitted with the reweighting weights (R does not check that fit's convergence)
    phase = 0
    while True:
        conv, it, ok = _fit_cells(
            n, P, lstart, lev, yv, offv, tauv, wt, lny, mu0, ylogy, trend, max_iter, tol, beta,
            eta, mu, wlast, A, B, R, tmp, wzv,
        )  # fmt: skip
        n_iter += it
        if not ok:
            return STATUS_SINGULAR, trend, n_iter, np.nan, np.nan, np.nan
        if phase == 2:
            disp = _dispersion(n, rank, yv, mu, wlast)
            phi = _floor1(disp)
            disp_se = _dispersion(n, rank, yv, mu, wt)
            break
        if not conv:
            if phase == 1 or not trend:
                return STATUS_NO_FIT, trend, n_iter, np.nan, np.nan, np.nan
            trend = False
            phase = 1
            continue
        rank = np.int64(0)
        for lvl in range(P):
            if A[lvl] > 0.0:
                rank += 1
        if trend:
            rank += 1
        disp = _dispersion(n, rank, yv, mu, wlast)
        phi = _floor1(disp)
        disp_se = disp
        if not reweight:
            break
        # hat values h_i = w_i x_i' (X'WX)^-1 x_i from the arrow inverse:
        # x_i' M^-1 x_i = 1/A + (tau - B/A)^2 / s, with the level's 1/A and B/A in ia and cb
        s = 0.0
        if trend:
            s = R[0]
            for lvl in range(P):
                if A[lvl] > 0.0:
                    s -= B[lvl] * B[lvl] / A[lvl]
        for lvl in range(P):
            ia[lvl] = 1.0 / A[lvl] if A[lvl] > 0.0 else 0.0
            cb[lvl] = B[lvl] * ia[lvl]
        gsum = _anscombe(
            n, P, lstart, trend, s, ia, cb, tauv, eta, mu, y23, wlast, phi, wthr, tmp, sres, ria, wzv
        )  # fmt: skip
        gamma = n / gsum
        for i in range(n):
            a = sres[i]
            wt[i] = gamma / (a * a) if a > wthr else gamma
        phase = 2
    return STATUS_OK, trend, n_iter, disp, disp_se, phi


@jit
def _predict(P, lvl, tau_k, off_k, trend, beta, A, B, R):  # type: ignore[no-untyped-def]
    """(eta_k, x' (X'WX)^-1 x) at the predicted week (level ``lvl``, centred time ``tau_k``)."""
    ia = 1.0 / A[lvl]
    if not trend:
        return beta[lvl] + off_k, ia
    s = R[0]
    for j in range(P):
        if A[j] > 0.0:
            s -= B[j] * B[j] / A[j]
    u = tau_k - B[lvl] * ia
    return beta[lvl] + beta[P] * tau_k + off_k, ia + u * u / s


@jit
def farrington_pair(
    y,
    off,
    lny_s,
    y23_s,
    ylogy_s,
    mu0_s,
    k_week,
    t0,
    rt,
    lptr,
    cen,
    P,
    trend_opt,
    reweight,
    wthr,
    b_ok,
    tcrit,
    max_iter,
    tol,
    out,
    iw,
    fw,
):  # type: ignore[no-untyped-def]
    """Everything for one series and one predicted week; writes ``out`` [N_OUT].

    ``rt`` are the window's weeks grouped by level (level l: rt[lptr[l]:lptr[l+1]]), ``cen`` [P] the
    centring of time per level, ``t0`` the first week of the window (R's wtime origin).
    ``iw`` [P + 1 + n_max] int and ``fw`` [16, max(2 n_max, 6 P + 2)] float are workspace.
    """
    for j in range(N_OUT):
        out[j] = np.nan
    yv = fw[0]
    offv = fw[1]
    tauv = fw[2]
    y23 = fw[3]
    lny = fw[4]
    ylogy = fw[5]
    wt = fw[6]
    eta = fw[7]
    mu = fw[8]
    wlast = fw[9]
    sres = fw[10]
    lstart = iw[: P + 1]
    lev = iw[P + 1 :]
    wzv = fw[13]
    mu0 = fw[14]
    ria = fw[15]
    n = 0
    t_first = -1
    ymax = -np.inf
    for lvl in range(P):
        lstart[lvl] = n
        for r in range(lptr[lvl], lptr[lvl + 1]):
            t = rt[r]
            yt = y[t]
            ot = off[t]
            if np.isfinite(yt) and np.isfinite(ot):
                yv[n] = yt
                lev[n] = lvl
                offv[n] = ot
                tauv[n] = t - cen[lvl]
                y23[n] = y23_s[t]
                lny[n] = lny_s[t]
                mu0[n] = mu0_s[t]
                ylogy[n] = ylogy_s[t]
                if t_first < 0 or t < t_first:
                    t_first = t
                if yt > ymax:
                    ymax = yt
                n += 1
    lstart[P] = n
    # n read back from the array: the counter's literal start value 0 would otherwise make numba
    # compile every callee a second time, for n = Literal[int](0) (doubling the compile time)
    n = lstart[P]
    out[O_NOBS] = n
    pl = P - 1
    if n == 0 or lstart[pl + 1] == lstart[pl] or not np.isfinite(off[k_week]):
        out[O_STATUS] = STATUS_SINGULAR
        return
    # Prediction time: R's wtime of week k counts from the first *observed* week of the window,
    # while the data's wtime counts from the window's first week t0.
    t_pred = k_week - t_first + t0
    tau_k = t_pred - cen[pl]
    beta = fw[12][: P + 1]
    A = fw[12][P + 1 : 2 * P + 1]
    B = fw[12][2 * P + 1 : 3 * P + 1]
    R = fw[12][3 * P + 1 : 4 * P + 2]
    ia = fw[12][4 * P + 2 : 5 * P + 2]
    cb = fw[12][5 * P + 2 : 6 * P + 2]
    tmp2 = fw[11]
    total_iter = 0
    use_trend = trend_opt
    # at most two fits: with the trend asked for, then without it when the trend is not kept
    while True:
        st, trend, n_iter, disp, disp_se, phi = _fit_fun(
            n, P, lstart, lev, yv, offv, tauv, y23, lny, mu0, ylogy, use_trend, reweight, wthr,
            max_iter, tol, wt, beta, eta, mu, wlast, A, B, R, tmp2, sres, wzv, ia, cb, ria,
        )  # fmt: skip
        total_iter += n_iter
        if not (use_trend and st == STATUS_OK and trend):
            break
        eta_k, q = _predict(P, pl, tau_k, off[k_week], trend, beta, A, B, R)  # trend is True
        mu_k = np.exp(eta_k)
        if mu_k < EPS:
            mu_k = EPS
        s = R[0]
        for j in range(P):
            if A[j] > 0.0:
                s -= B[j] * B[j] / A[j]
        se_b = np.sqrt(disp_se / s)
        rank = 1
        for j in range(P):
            if A[j] > 0.0:
                rank += 1
        df = n - rank
        tstat = abs(beta[P] / se_b)
        significant = df > 0 and tstat > tcrit[df]
        if b_ok and significant and mu_k <= ymax:
            break
        use_trend = False
    out[O_ITER] = total_iter
    out[O_STATUS] = st
    if st != STATUS_OK:
        return
    eta_k, q = _predict(P, pl, tau_k, off[k_week], trend, beta, A, B, R)
    out[O_ETA] = eta_k
    out[O_SE] = np.sqrt(disp_se * q)
    out[O_PHI] = phi
    out[O_DISP] = disp
    out[O_TREND] = 1.0 if trend else 0.0
    out[O_COEF] = beta[P] if trend else np.nan


@jit
def series_tables(y, lny, y23, ylogy, mu0, tmp):  # type: ignore[no-untyped-def]
    """log(y + 0.1), y^(2/3), y log y (0 at y = 0) and exp(log(y + 0.1)) (glm.fit's starting mu
    before its floor) for one series (NaN stays NaN); ``tmp`` is workspace."""
    T = y.shape[0]
    for t in range(T):
        v = y[t]
        lny[t] = np.log(v + 0.1)
        y23[t] = v ** (2.0 / 3.0)
        ylogy[t] = v * np.log(v) if v > 0.0 else 0.0
    exp_into(lny, mu0, tmp, T)


def _farrington_batched(
    Y,
    OFF,
    kpos,
    t0,
    wptr,
    rt,
    lptr,
    cen,
    P,
    n_max,
    trend_opt,
    reweight,
    wthr,
    b_ok,
    tcrit,
    max_iter,
    tol,
    out,
):  # type: ignore[no-untyped-def]
    """All series x predicted weeks. ``wptr`` [K + 1] delimits each week's rows in ``rt``;
    ``lptr`` [K, P + 1] are level offsets relative to wptr[k]; ``out`` [S, K, N_OUT]."""
    n_series, T = Y.shape
    K = kpos.shape[0]
    has_off = OFF.shape[0] == n_series
    n_blocks = (K + KBLOCK - 1) // KBLOCK
    n_tasks = n_series * n_blocks
    for task in prange(n_tasks):
        s = task // n_blocks
        blk = task - s * n_blocks
        tab = np.empty((5, T))
        y = Y[s]
        off = OFF[s] if has_off else OFF[0]
        series_tables(y, tab[0], tab[1], tab[2], tab[3], tab[4])
        fw = np.empty((16, max(2 * n_max, 6 * P + 2)))
        iw = np.empty(P + 1 + n_max, dtype=np.int64)
        for k in range(blk * KBLOCK, min(K, (blk + 1) * KBLOCK)):
            lo = wptr[k]
            farrington_pair(
                y, off, tab[0], tab[1], tab[2], tab[3], kpos[k], t0[k], rt[lo : wptr[k + 1]], lptr[k],
                cen[k], P, trend_opt, reweight, wthr, b_ok, tcrit, max_iter, tol, out[s, k], iw, fw,
            )  # fmt: skip


farrington_batched = jit_parallel(_farrington_batched)
farrington_batched_serial = jit(_farrington_batched)
