"""ONS's excess-deaths model since February 2024 (ONS-Health-modelling-hub/Excess_deaths,
``ons_weekly_ed.R`` and ``ons_monthly_ed.R``), weekly and monthly.

Model, for series s (an age group, a sex, a geography) and period t, fitted by one quasi-Poisson GLM
over all series at once (R ``glm(family = quasipoisson)``)::

    deaths ~ agegrp + sex + geography + trend + season [+ working_days]
             + coarse:sex + coarse:trend + coarse:season + offset(log(population))

- ``trend`` is the period's position in the data (1, 2, ...: ONS's ``seq_along``);
- ``season`` is a factor: the ISO week of the registration week with week 53 recoded to 52
  (weekly), or the calendar month (monthly);
- ``coarse`` is a coarse age grouping of ``agegrp`` (ONS's ``agegrp_coarse``);
- ``working_days`` (monthly only) is the number of working days in the month (Monday to Friday
  less England and Wales bank holidays unless given);
- R's ``model.matrix`` coding (treatment contrasts for a factor whose margin is in the model, one
  indicator per level otherwise, so ``coarse:season`` has one column per week and coarse level
  after the first), aliased columns dropped as R's pivoting QR drops them.

Window: the fit for period (Y, W) uses the five years that end one year before it. Weekly: from
week W + 1 of Y - 6 to week W of Y - 1 (for W = 52 or 53: week 1 of Y - 5 to week 52 of Y - 1);
monthly: the 60 months ending 12 months before. The COVID periods 2020 weeks 14-22 and 45-53 and
2021 weeks 1-8 (monthly: April-May 2020, November 2020-February 2021) are left out of every fit. The
model is refitted for every period estimated; periods with the same window (weeks 52 and 53 of a
year) share one fit.

Intervals. ``intervals="ons"`` (default, as ONS computes them): the variance of an expected count is
the squared standard error of the fitted mean, ``mu^2 x' V x`` with V = phi (X'WX)^-1 and phi the
Pearson dispersion of that period's fit (no floor); the 95% interval is expected +- z se and the
excess interval (y - expected) +- z se: no observation variance. Aggregates over series or periods
add the variances, as ONS's script does. ``intervals="full"``: the project's rule, observation
variance phi mu plus the parameter variance g' V g with g the sum of mu x over the aggregate's
series (they share one fit); for a window of periods, fitted separately on overlapping windows,
the parameter variances of the periods k, l are combined with correlation equal to the share of
fitting rows their windows have in common (a stated approximation to the covariance of estimates
from overlapping data).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
from scipy import linalg, stats

from .._typing import BoolArray, FloatArray, IntArray
from ..exceptions import InputError
from ..weeks import iso_year_week
from ._base import Baseline, BaselineResult, normal_prediction
from ._util import group_sum
from .pooled import _aliased, _single_threaded_blas

if TYPE_CHECKING:
    from .._typing import Engine
    from ..panel import Panel

__all__ = [
    "ONS_COVID_MONTHS",
    "ONS_COVID_WEEKS",
    "Ons2024",
    "Ons2024Result",
    "OnsDesign",
    "OnsMonthlyFit",
    "build_ons_design",
    "fit_ons",
    "fit_ons_monthly",
    "ons_monthly",
    "ons_week_windows",
    "working_days",
]

#: The weeks ONS leaves out of every weekly fit: 2020 w14-22, 2020 w45-53, 2021 w1-8.
ONS_COVID_WEEKS: tuple[tuple[int, int], ...] = (
    *((2020, w) for w in range(14, 23)),
    *((2020, w) for w in range(45, 54)),
    *((2021, w) for w in range(1, 9)),
)
#: The months ONS leaves out of every monthly fit.
ONS_COVID_MONTHS: tuple[tuple[int, int], ...] = (
    (2020, 4),
    (2020, 5),
    (2020, 11),
    (2020, 12),
    (2021, 1),
    (2021, 2),
)
INTERVALS = ("ons", "full")


# ---------------------------------------------------------------------------------------- design
@dataclass(frozen=True, eq=False)
class OnsDesign:
    """The ONS design in cell form: row (s, t) is x_st = sum_a e_{cols[s, j, a]} F[t, comp[s, j, a]]
    with j = season[t]; never materialised.

    Attributes
    ----------
    names : tuple of str [p]
    cols : ndarray [S, J, m] of int64
        Columns used by series s in season level j, padded with -1.
    comp : ndarray [S, J, m] of int64
        Calendar component of each: 0 the constant 1, 1 the trend, 2 the working days.
    F : ndarray [T, K]
        Calendar components per period (1, trend[, working days]).
    season : ndarray [T] of int64
        Season level 0..J-1 of each period.
    """

    names: tuple[str, ...]
    cols: IntArray
    comp: IntArray
    F: FloatArray
    season: IntArray

    @property
    def n_terms(self) -> int:
        """p, the number of columns."""
        return len(self.names)

    def dense(self, series: IntArray, periods: IntArray) -> FloatArray:
        """Rows x_st for the pairs (series[i], periods[i]): [n, p] (tests and small problems)."""
        series = np.asarray(series, dtype=np.int64)
        periods = np.asarray(periods, dtype=np.int64)
        X = np.zeros((series.size, self.n_terms))
        cols = self.cols[series, self.season[periods]]  # [n, m]
        comp = self.comp[series, self.season[periods]]
        vals = self.F[periods[:, None], np.maximum(comp, 0)]
        rows = np.broadcast_to(np.arange(series.size)[:, None], cols.shape)
        ok = cols >= 0
        np.add.at(X, (rows[ok], cols[ok]), vals[ok])
        return X


def _codes(values: Sequence[Any]) -> tuple[list[str], IntArray]:
    cat = pd.Categorical(pd.Series(values).astype(str))
    return [str(c) for c in cat.categories], cat.codes.astype(np.int64)


def build_ons_design(
    age: Sequence[Any],
    coarse: Sequence[Any],
    sex: Sequence[Any] | None,
    geography: Sequence[Any] | None,
    season: IntArray,
    n_season: int,
    trend: FloatArray,
    extra: FloatArray | None = None,
    season_names: Sequence[str] | None = None,
) -> OnsDesign:
    """The ONS model's columns in R's order, in cell form.

    Parameters
    ----------
    age, coarse, sex, geography : sequences [S]
        Each series' fine age group, coarse age group, sex and geography (``None``: no such term,
        as ONS's models for a single country have no geography).
    season : ndarray [T] of int
        Season level 0..n_season-1 of each period (week of year with 53 as 52 minus 1, or month - 1).
    trend : ndarray [T]
        The trend value of each period.
    extra : ndarray [T], optional
        A numeric calendar term (the working days of a month).

    Returns
    -------
    OnsDesign
    """
    a_lv, a = _codes(age)
    c_lv, c = _codes(coarse)
    n_series = a.size
    names: list[str] = ["intercept"]
    const: list[list[int]] = [[0] for _ in range(n_series)]
    trendc: list[list[int]] = [[] for _ in range(n_series)]

    def add_factor(label: str, levels: list[str], codes: IntArray) -> None:
        base = len(names)
        names.extend(f"{label}[{lv}]" for lv in levels[1:])
        for s in range(n_series):
            if codes[s] > 0:
                const[s].append(base + int(codes[s]) - 1)

    add_factor("agegrp", a_lv, a)
    x_lv: list[str] = []
    x = np.zeros(n_series, dtype=np.int64)
    if sex is not None:
        x_lv, x = _codes(sex)
        add_factor("sex", x_lv, x)
    if geography is not None:
        g_lv, g = _codes(geography)
        add_factor("geography", g_lv, g)
    trend_col = len(names)
    names.append("trend")
    for s in range(n_series):
        trendc[s].append(trend_col)
    s_names = (
        list(season_names) if season_names is not None else [str(j + 1) for j in range(n_season)]
    )
    season_base = len(names)
    names.extend(f"season[{s_names[j]}]" for j in range(1, n_season))
    extra_col = -1
    if extra is not None:
        extra_col = len(names)
        names.append("working_days")
    n_c = len(c_lv)
    if sex is not None:  # coarse:sex, coarse by contrasts, sex by indicators; coarse fastest
        base = len(names)
        names.extend(f"coarse[{cl}]:sex[{xl}]" for xl in x_lv for cl in c_lv[1:])
        for s in range(n_series):
            if c[s] > 0:
                const[s].append(base + int(x[s]) * (n_c - 1) + int(c[s]) - 1)
    base = len(names)
    names.extend(f"coarse[{cl}]:trend" for cl in c_lv[1:])
    for s in range(n_series):
        if c[s] > 0:
            trendc[s].append(base + int(c[s]) - 1)
    cs_base = len(names)
    names.extend(f"coarse[{cl}]:season[{s_names[j]}]" for j in range(n_season) for cl in c_lv[1:])

    m = max(len(v) for v in const) + max(len(v) for v in trendc) + 2 + (extra is not None)
    cols = np.full((n_series, n_season, m), -1, dtype=np.int64)
    comp = np.full((n_series, n_season, m), -1, dtype=np.int64)
    for s in range(n_series):
        for j in range(n_season):
            cl = list(const[s])
            if j > 0:
                cl.append(season_base + j - 1)
            if c[s] > 0:
                cl.append(cs_base + j * (n_c - 1) + int(c[s]) - 1)
            row = [*cl, *trendc[s]]
            kinds = [0] * len(cl) + [1] * len(trendc[s])
            if extra is not None:
                row.append(extra_col)
                kinds.append(2)
            cols[s, j, : len(row)] = row
            comp[s, j, : len(row)] = kinds
    comps = [np.ones_like(trend, dtype=np.float64), np.asarray(trend, dtype=np.float64)]
    if extra is not None:
        comps.append(np.asarray(extra, dtype=np.float64))
    return OnsDesign(
        names=tuple(names),
        cols=cols,
        comp=comp,
        F=np.ascontiguousarray(np.column_stack(comps)),
        season=np.asarray(season, dtype=np.int64),
    )


# ---------------------------------------------------------------------------------------- fitting
@dataclass
class _Scatter:
    """Fixed index arrays mapping the cell sums onto X'WX and X'Wz."""

    A_idx: IntArray
    A_src: IntArray
    b_idx: IntArray
    b_src: IntArray
    HFF: FloatArray  # [T, J K K]: season indicator times F F'
    HF: FloatArray  # [T, J K]
    n_season: int
    K: int
    p: int


def _scatter(design: OnsDesign) -> _Scatter:
    S, J, _ = design.cols.shape
    K = design.F.shape[1]
    p = design.n_terms
    cols, comp = design.cols, design.comp
    cell = (np.arange(S)[:, None] * J + np.arange(J)[None, :])[:, :, None]  # [S, J, 1]
    ok = cols >= 0
    ca, cb = cols[:, :, :, None], cols[:, :, None, :]
    ka, kb = comp[:, :, :, None], comp[:, :, None, :]
    ok2 = ok[:, :, :, None] & ok[:, :, None, :]
    A_idx = (ca * p + cb)[ok2]
    A_src = ((cell[..., None] * K + ka) * K + kb)[ok2]
    b_idx = cols[ok]
    b_src = (cell * K + comp)[ok]
    T = design.season.size
    H = np.zeros((T, J))
    H[np.arange(T), design.season] = 1.0
    F = design.F
    FF = (F[:, :, None] * F[:, None, :]).reshape(T, K * K)
    HFF = np.ascontiguousarray((H[:, :, None] * FF[:, None, :]).reshape(T, J * K * K))
    HF = np.ascontiguousarray((H[:, :, None] * F[:, None, :]).reshape(T, J * K))
    return _Scatter(A_idx, A_src, b_idx, b_src, HFF, HF, J, K, p)


def _cell_sums(
    W: FloatArray, R: FloatArray, design: OnsDesign, sc: _Scatter, rows: IntArray
) -> tuple[FloatArray, FloatArray]:
    """X'WX and X'R for weights W [S, n] and responses R [S, n] at the periods ``rows`` [n]."""
    sl = slice(int(rows[0]), int(rows[-1]) + 1)  # rows are a contiguous range
    M = W @ sc.HFF[sl]  # [S, J K K]
    r = R @ sc.HF[sl]  # [S, J K]
    p = sc.p
    A = np.bincount(sc.A_idx, M.reshape(-1)[sc.A_src], minlength=p * p).reshape(p, p)
    b = np.bincount(sc.b_idx, r.reshape(-1)[sc.b_src], minlength=p)
    return A, b


def _eta(design: OnsDesign, beta: FloatArray, rows: IntArray) -> FloatArray:
    """x_st' beta [S, len(rows)]."""
    S, J, _ = design.cols.shape
    K = design.F.shape[1]
    bpad = np.concatenate([beta, [0.0]])
    vals = bpad[design.cols]  # -1 -> 0
    B = np.zeros((S, J, K))
    for k in range(K):
        B[:, :, k] = np.sum(np.where(design.comp == k, vals, 0.0), axis=2)
    F = design.F[rows]
    Bj = B[:, design.season[rows], :]  # [S, n, K]
    return np.einsum("snk,nk->sn", Bj, F)


def _xvx(design: OnsDesign, cov: FloatArray, t: int) -> FloatArray:
    """x_st' C x_st for every series at period t: [S]."""
    j = design.season[t]
    cols = design.cols[:, j, :]
    vals = np.where(cols >= 0, design.F[t, np.maximum(design.comp[:, j, :], 0)], 0.0)
    cidx = np.maximum(cols, 0)
    sub = cov[cidx[:, :, None], cidx[:, None, :]]  # [S, m, m]
    return np.einsum("sa,sab,sb->s", vals, sub, vals)


def _group_g(
    design: OnsDesign, mu_t: FloatArray, t: int, groups: IntArray, n_groups: int
) -> FloatArray:
    """g = sum_{s in group} mu_st x_st: [G, p]."""
    j = design.season[t]
    cols = design.cols[:, j, :]
    vals = np.where(cols >= 0, design.F[t, np.maximum(design.comp[:, j, :], 0)], 0.0)
    w = np.nan_to_num(mu_t)[:, None] * vals
    p = design.n_terms
    idx = groups[:, None] * p + np.maximum(cols, 0)
    return np.bincount(idx[cols >= 0], w[cols >= 0], minlength=n_groups * p).reshape(n_groups, p)


def _checked_factor(A: FloatArray, keep: IntArray) -> Any:
    """Cholesky of A[keep, keep] if every pivot (unit-diagonal scale) exceeds ALIAS_TOL, else None."""
    from .pooled import ALIAS_TOL

    Akk = A[np.ix_(keep, keep)]
    d = np.sqrt(np.diag(Akk))
    if not np.all(d > 0):
        return None
    try:
        L = linalg.cholesky(Akk / d[:, None] / d[None, :], lower=True, check_finite=False)
    except linalg.LinAlgError:
        return None
    if np.min(np.diag(L)) ** 2 <= ALIAS_TOL:
        return None
    return (L * d[:, None], True)


@dataclass
class _FitOut:
    mu: FloatArray  # [S, n_pred] at the predicted periods
    xvx: FloatArray  # [S, n_pred] x' (X'WX)^-1 x
    phi: float
    cov: FloatArray | None
    converged: bool
    n_iter: int
    n_obs: int
    rank: int
    beta: FloatArray
    aliased: BoolArray


def _irls_window(
    design: OnsDesign,
    sc: _Scatter,
    Y: FloatArray,
    OFF: FloatArray,
    FIT: BoolArray,
    rows: IntArray,
    pred: IntArray,
    *,
    max_iter: int,
    tol: float,
    keep_cov: bool,
    aliased_hint: BoolArray | None = None,
) -> _FitOut:
    """R ``glm.fit`` (Poisson, log link) on the rows (s, t in ``rows``) with FIT true.

    ``aliased_hint`` (the previous window's aliased columns) is reused when the kept columns'
    cross-product is still well conditioned (every Cholesky pivot above ALIAS_TOL of its diagonal
    on the unit-diagonal scale); otherwise the columns are sought again in column order.
    """
    fit = FIT[:, rows]
    y = np.where(fit, Y[:, rows], 0.0)
    off = np.where(fit, OFF[:, rows], 0.0)
    mu = np.where(fit, y + 0.1, 1.0)
    eta = np.log(mu)
    p = design.n_terms

    def deviance(mu_: FloatArray) -> float:
        with np.errstate(divide="ignore", invalid="ignore"):
            d = np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0) / mu_), 0.0) - (y - mu_)
        return float(2.0 * np.sum(np.where(fit, d, 0.0)))

    def normal_eq(mu_: FloatArray, eta_: FloatArray) -> tuple[FloatArray, FloatArray]:
        Wf = np.where(fit, mu_, 0.0)
        z = eta_ - off + (y - mu_) / mu_
        return _cell_sums(Wf, np.where(fit, Wf * z, 0.0), design, sc, rows)

    dev_old = deviance(mu)
    aliased: BoolArray | None = None
    keep = np.arange(p)
    beta = np.zeros(p)
    beta_old: FloatArray | None = None
    converged = False
    it = 0
    w_prev = mu
    for it in range(1, max_iter + 1):  # noqa: B007
        A, b = normal_eq(mu, eta)
        w_prev = mu
        fac = None
        if aliased is None and aliased_hint is not None:
            fac = _checked_factor(A, np.flatnonzero(~aliased_hint))
            if fac is not None:
                aliased = aliased_hint.copy()
                keep = np.flatnonzero(~aliased)
        if aliased is None:
            aliased = _aliased(A)
            keep = np.flatnonzero(~aliased)
        beta = np.zeros(p)
        if fac is None:
            fac = linalg.cho_factor(A[np.ix_(keep, keep)], lower=True, check_finite=False)
        beta[keep] = linalg.cho_solve(fac, b[keep], check_finite=False)

        def update(beta_: FloatArray) -> tuple[FloatArray, FloatArray, float]:
            e = _eta(design, beta_, rows) + off
            m_ = np.exp(e)
            return e, m_, deviance(m_)

        eta_new, mu_new, dev = update(beta)
        if beta_old is not None:  # R glm.fit halves the step only when the deviance is not finite
            n_half = 0
            while not np.isfinite(dev) and n_half < max_iter:
                beta = 0.5 * (beta + beta_old)
                eta_new, mu_new, dev = update(beta)
                n_half += 1
        eta, mu = eta_new, mu_new
        if abs(dev - dev_old) / (abs(dev) + 0.1) < tol:
            converged = True
            break
        dev_old = dev
        beta_old = beta
    assert aliased is not None and fac is not None
    # As R's glm.fit: the covariance comes from the weights of the last iteration (the mu before
    # its update) and summary.glm's dispersion sums those weights times the squared working
    # residuals (y - mu) / mu at the final mu.
    w_last = np.where(fit, w_prev, 0.0)
    cov = np.zeros((p, p))
    cov[np.ix_(keep, keep)] = linalg.cho_solve(fac, np.eye(keep.size), check_finite=False)
    cov = 0.5 * (cov + cov.T)
    n_obs = int(fit.sum())
    rank = int(keep.size)
    with np.errstate(divide="ignore", invalid="ignore"):
        pearson = float(np.sum(np.where(fit, w_last * ((y - mu) / mu) ** 2, 0.0)))
    phi = pearson / (n_obs - rank) if n_obs > rank else np.nan
    mu_pred = np.exp(_eta(design, beta, pred) + OFF[:, pred])
    xvx = np.column_stack([_xvx(design, cov, int(t)) for t in pred])
    return _FitOut(
        mu=mu_pred,
        xvx=xvx,
        phi=phi,
        cov=cov if keep_cov else None,
        converged=converged,
        n_iter=it,
        n_obs=n_obs,
        rank=rank,
        beta=np.where(aliased, np.nan, beta),
        aliased=aliased,
    )


def fit_ons(
    design: OnsDesign,
    deaths: FloatArray,
    offset: FloatArray,
    usable: BoolArray,
    windows: Mapping[tuple[int, int], IntArray],
    *,
    max_iter: int = 25,
    tol: float = 1e-8,
    keep_cov: bool = False,
    batched: bool = True,
    engine: str = "auto",
    cells: int = 4_000_000,
) -> dict[str, Any]:
    """Fit one GLM per window and predict its periods.

    ``batched`` (default): every window in one stacked pass (:func:`_fit_ons_batched`); False:
    one window after another (:func:`_irls_window`, the reference the batched pass is tested
    against). ``engine`` chooses the batched pass's kernels (numba or their numpy twin);
    ``cells`` bounds the series-weeks of one block of windows iterated together (memory).

    Parameters
    ----------
    design : OnsDesign
    deaths, offset : ndarray [S, T]
    usable : ndarray [S, T] of bool
        Rows that may be fitted (observed, finite offset, not a COVID period).
    windows : mapping (first, last) -> periods predicted
        Each window is the inclusive range of period positions fitted.

    Returns
    -------
    dict
        ``mu``, ``xvx``, ``phi_t`` [S, T] / [T] (NaN where not predicted), ``fit_of`` [T] (index of
        the fit, -1), per-fit arrays ``phi``, ``converged``, ``n_iter``, ``n_obs``, ``rank``,
        ``first``, ``last``, ``cov`` (list, when ``keep_cov``), ``beta`` of the last fit.
    """
    S, T = deaths.shape
    sc = _scatter(design)
    mu = np.full((S, T), np.nan)
    xvx = np.full((S, T), np.nan)
    fit_of = np.full(T, -1, dtype=np.int64)
    out: dict[str, list[Any]] = {
        k: [] for k in ("phi", "converged", "n_iter", "n_obs", "rank", "first", "last", "cov")
    }
    beta_last = np.full(design.n_terms, np.nan)
    Y = np.where(usable, deaths, 0.0)
    wins = [
        (int(first), int(last), np.asarray(pred, dtype=np.int64))
        for (first, last), pred in sorted(windows.items())
    ]
    with _single_threaded_blas():
        if batched:
            fits = _fit_ons_batched(
                design,
                sc,
                Y,
                offset,
                usable,
                wins,
                max_iter=max_iter,
                tol=tol,
                keep_cov=keep_cov,
                engine=engine,
                cells=cells,
            )
        else:
            fits = []
            hint: BoolArray | None = None
            for first, last, pred in wins:
                r = _irls_window(
                    design,
                    sc,
                    Y,
                    offset,
                    usable,
                    np.arange(first, last + 1, dtype=np.int64),
                    pred,
                    max_iter=max_iter,
                    tol=tol,
                    keep_cov=keep_cov,
                    aliased_hint=hint,
                )
                hint = r.aliased
                fits.append(r)
    for k, ((first, last, pred), r) in enumerate(zip(wins, fits, strict=True)):
        ok = r.converged and np.isfinite(r.phi)
        mu[:, pred] = r.mu if ok else np.nan
        xvx[:, pred] = r.xvx
        fit_of[pred] = k
        for name in ("phi", "converged", "n_iter", "n_obs", "rank"):
            out[name].append(getattr(r, name))
        out["first"].append(first)
        out["last"].append(last)
        out["cov"].append(r.cov)
        beta_last = r.beta
    res: dict[str, Any] = {
        "mu": mu,
        "xvx": xvx,
        "fit_of": fit_of,
        "phi": np.asarray(out["phi"], dtype=np.float64),
        "converged": np.asarray(out["converged"], dtype=bool),
        "n_iter": np.asarray(out["n_iter"], dtype=np.int64),
        "n_obs": np.asarray(out["n_obs"], dtype=np.int64),
        "rank": np.asarray(out["rank"], dtype=np.int64),
        "first": np.asarray(out["first"], dtype=np.int64),
        "last": np.asarray(out["last"], dtype=np.int64),
        "cov": out["cov"] if keep_cov else None,
        "beta": beta_last,
    }
    phi_t = np.full(T, np.nan)
    has = fit_of >= 0
    phi_t[has] = res["phi"][fit_of[has]]
    res["phi_t"] = phi_t
    return res


# ---------------------------------------------------------------------------------------- batched
def _window_maps(design: OnsDesign, sc: _Scatter) -> tuple[Any, Any, Any]:
    """Sparse maps of the cell form: cell sums -> X'WX (flattened), cell sums -> X'Wz, and
    beta -> per-cell coefficients B[s, j, k] (the weight of calendar component k in x_st'beta)."""
    from scipy import sparse

    S, J, _ = design.cols.shape
    K, p = sc.K, sc.p
    A_map = sparse.csr_matrix(
        (np.ones(sc.A_idx.size), (sc.A_idx, sc.A_src)), shape=(p * p, S * J * K * K)
    )
    b_map = sparse.csr_matrix((np.ones(sc.b_idx.size), (sc.b_idx, sc.b_src)), shape=(p, S * J * K))
    ok = design.cols >= 0
    cell = np.broadcast_to(
        (np.arange(S)[:, None] * J + np.arange(J)[None, :])[:, :, None], ok.shape
    )
    B_map = sparse.csr_matrix(
        (np.ones(int(ok.sum())), ((cell * K + design.comp)[ok], design.cols[ok])),
        shape=(S * J * K, p),
    )
    return A_map, b_map, B_map


def _groups(aliased: BoolArray) -> list[tuple[IntArray, IntArray]]:
    """(rows, kept columns) for each pattern of aliased columns among the stacked systems."""
    pats, inv = np.unique(aliased, axis=0, return_inverse=True)
    return [
        (np.flatnonzero(inv.reshape(-1) == g), np.flatnonzero(~pats[g]))
        for g in range(pats.shape[0])
    ]


def _solve_stacked(A: FloatArray, b: FloatArray, aliased: BoolArray) -> FloatArray:
    """beta [a, p] of the stacked systems A [a, p, p] beta = b on each one's kept columns, zero
    where aliased (stacked LAPACK solves, one call per pattern of aliased columns)."""
    beta = np.zeros(b.shape)
    for sel, keep in _groups(aliased):
        sol = np.linalg.solve(A[np.ix_(sel, keep, keep)], b[np.ix_(sel, keep)][:, :, None])
        beta[np.ix_(sel, keep)] = sol[:, :, 0]
    return beta


def _hint_holds(A: FloatArray, hint: BoolArray) -> bool:
    """Whether every stacked A keeps the hint's columns well conditioned: each Cholesky pivot on
    the unit-diagonal scale above ALIAS_TOL (as :func:`_checked_factor`, all at once)."""
    from .pooled import ALIAS_TOL

    keep = np.flatnonzero(~hint)
    Akk = A[:, keep][:, :, keep]
    d = np.sqrt(np.einsum("aii->ai", Akk))
    if not np.all(d > 0):
        return False
    try:
        Lc = np.linalg.cholesky(Akk / d[:, :, None] / d[:, None, :])
    except np.linalg.LinAlgError:
        return False
    return bool(np.min(np.einsum("aii->ai", Lc)) ** 2 > ALIAS_TOL)


def _fit_block(
    kern: Any,
    maps: tuple[Any, Any, Any],
    design: OnsDesign,
    Yc: FloatArray,
    OFFc: FloatArray,
    FITc: BoolArray,
    OFF: FloatArray,
    block: list[tuple[int, int, IntArray]],
    hint: BoolArray | None,
    max_iter: int,
    tol: float,
    keep_cov: bool,
) -> tuple[list[_FitOut], BoolArray | None]:
    """The windows of one block of :func:`_fit_ons_batched`, iterated together."""
    A_map, b_map, B_map = maps
    S, J, _ = design.cols.shape
    K, p = design.F.shape[1], design.n_terms
    F = np.ascontiguousarray(design.F, dtype=np.float64)
    season = np.ascontiguousarray(design.season, dtype=np.int64)
    outs: list[_FitOut] = []
    c = len(block)
    first = np.array([w[0] for w in block], dtype=np.int64)
    length = np.array([w[1] - w[0] + 1 for w in block], dtype=np.int64)
    L = int(length.max())
    ETA = np.zeros((c, S, L))
    MU = np.ones((c, S, L))
    ETA2, MU2 = ETA.copy(), MU.copy()
    DEV = np.zeros((c, S))
    PEAR = np.zeros((c, S))
    M = np.zeros((c, S, J, K, K))
    r = np.zeros((c, S, J, K))
    kern.start(first, length, FITc, Yc, ETA, MU, DEV)
    dev_old = DEV.sum(axis=1)
    beta = np.zeros((c, p))
    beta_old = np.zeros((c, p))
    has_old = np.zeros(c, dtype=bool)
    active = np.ones(c, dtype=bool)
    converged = np.zeros(c, dtype=bool)
    n_iter = np.zeros(c, dtype=np.int64)
    aliased = np.zeros((c, p), dtype=bool)
    pearson = np.zeros(c)
    A_last = np.zeros((c, p, p))

    def update(k: IntArray, beta_k: FloatArray) -> FloatArray:
        B = np.zeros((c, S, J, K))
        B[k] = np.asarray(B_map @ beta_k.T).T.reshape(k.size, S, J, K)
        kern.update(first, length, FITc, Yc, OFFc, season, F, B, k, MU, ETA2, MU2, DEV, PEAR)
        return DEV[k].sum(axis=1)  # type: ignore[no-any-return]

    for it in range(1, max_iter + 1):
        k = np.flatnonzero(active)
        if k.size == 0:
            break
        kern.normal_eq(first, length, FITc, Yc, OFFc, season, F, ETA, MU, k, M, r)
        A = np.asarray(A_map @ M[k].reshape(k.size, -1).T).T.reshape(k.size, p, p)
        b = np.asarray(b_map @ r[k].reshape(k.size, -1).T).T
        A_last[k] = A
        if it == 1:  # every window is active at the first iteration
            if hint is not None and _hint_holds(A, hint):
                aliased[:] = hint
            else:  # one window after another, each checking the previous one's columns
                for i in range(c):
                    if hint is None or _checked_factor(A[i], np.flatnonzero(~hint)) is None:
                        hint = _aliased(A[i])
                    aliased[i] = hint
        beta_k = _solve_stacked(A, b, aliased[k])
        dev = update(k, beta_k)
        n_half = 0  # R glm.fit halves the step only when the deviance is not finite
        bad = has_old[k] & ~np.isfinite(dev)
        while bad.any() and n_half < max_iter:
            hb = np.flatnonzero(bad)
            beta_k[hb] = 0.5 * (beta_k[hb] + beta_old[k[hb]])
            dev[hb] = update(k[hb], beta_k[hb])
            bad = has_old[k] & ~np.isfinite(dev)
            n_half += 1
        ETA[k], ETA2[k] = ETA2[k], ETA[k]
        MU[k], MU2[k] = MU2[k], MU[k]
        beta[k] = beta_k
        pearson[k] = PEAR[k].sum(axis=1)
        n_iter[k] = it
        done = np.abs(dev - dev_old[k]) / (np.abs(dev) + 0.1) < tol
        converged[k[done]] = True
        active[k[done]] = False
        dev_old[k] = dev
        beta_old[k] = beta_k
        has_old[k] = True
    # covariance from the weights of the last iteration, dispersion at the final mu (as R)
    n_obs = np.array([int(FITc[:, f : f + n].sum()) for f, n in zip(first, length, strict=True)])
    cov = np.zeros((c, p, p))
    for sel, keep in _groups(aliased):
        ck = np.linalg.inv(A_last[np.ix_(sel, keep, keep)])
        cov[np.ix_(sel, keep, keep)] = 0.5 * (ck + np.swapaxes(ck, 1, 2))
    for i, (_, _, pred) in enumerate(block):
        rank = int((~aliased[i]).sum())
        phi = float(pearson[i] / (n_obs[i] - rank)) if n_obs[i] > rank else np.nan
        e = _eta(design, beta[i], pred) + OFF[:, pred]
        outs.append(
            _FitOut(
                mu=np.exp(e),
                xvx=np.column_stack([_xvx(design, cov[i], int(t)) for t in pred]),
                phi=phi,
                cov=cov[i] if keep_cov else None,
                converged=bool(converged[i]),
                n_iter=int(n_iter[i]),
                n_obs=int(n_obs[i]),
                rank=rank,
                beta=np.where(aliased[i], np.nan, beta[i]),
                aliased=aliased[i].copy(),
            )
        )
    return outs, hint


def _fit_ons_batched(
    design: OnsDesign,
    sc: _Scatter,
    Y: FloatArray,
    OFF: FloatArray,
    FIT: BoolArray,
    wins: list[tuple[int, int, IntArray]],
    *,
    max_iter: int,
    tol: float,
    keep_cov: bool,
    engine: str = "auto",
    cells: int = 4_000_000,
) -> list[_FitOut]:
    """R ``glm.fit`` for every window at once: the windows of a block iterate together (each
    stops at its own convergence, as alone), the O(rows) passes in one kernel call over every
    (window, series) pair (:mod:`excessmort._kernels.ons`, numpy twin ``ons_ref``), the p x p
    systems in stacked LAPACK solves; a block holds about ``cells`` series-weeks.
    Same rules as :func:`_irls_window` (aliasing sought at the first iteration, the previous
    window's aliased columns reused while still well conditioned)."""
    from .._kernels import ons_kernels

    kern = ons_kernels(engine)
    S = Y.shape[0]
    maps = _window_maps(design, sc)
    Yc = np.ascontiguousarray(Y, dtype=np.float64)
    OFFc = np.ascontiguousarray(np.where(FIT, OFF, 0.0), dtype=np.float64)
    FITc = np.ascontiguousarray(FIT, dtype=np.bool_)
    n_len = max(last - first + 1 for first, last, _ in wins)
    per_block = max(1, cells // max(1, S * n_len))
    outs: list[_FitOut] = []
    hint: BoolArray | None = None
    for lo in range(0, len(wins), per_block):
        block = wins[lo : lo + per_block]
        block_outs, hint = _fit_block(
            kern, maps, design, Yc, OFFc, FITc, OFF, block, hint, max_iter, tol, keep_cov
        )
        outs.extend(block_outs)
    return outs


# ---------------------------------------------------------------------------------------- windows
def ons_week_windows(
    iso_year: IntArray, iso_week: IntArray, predict: BoolArray
) -> dict[tuple[int, int], IntArray]:
    """ONS's weekly windows: for (Y, W), week W + 1 of Y - 6 to week W of Y - 1 (W = 52, 53: week 1
    of Y - 5 to week 52 of Y - 1), as positions into the periods; periods whose window the data do
    not hold are left out. Periods with the same window are grouped.
    """
    pos = {(int(y), int(w)): i for i, (y, w) in enumerate(zip(iso_year, iso_week, strict=True))}
    groups: dict[tuple[int, int], list[int]] = {}
    for t in np.flatnonzero(predict):
        y, w = int(iso_year[t]), int(iso_week[t])
        if w >= 52:
            start, end = (y - 5, 1), (y - 1, 52)
        else:
            start, end = (y - 6, w + 1), (y - 1, w)
        if start in pos and end in pos:
            groups.setdefault((pos[start], pos[end]), []).append(int(t))
    return {k: np.asarray(v, dtype=np.int64) for k, v in groups.items()}


def _month_windows(n_periods: int, predict: BoolArray) -> dict[tuple[int, int], IntArray]:
    out: dict[tuple[int, int], IntArray] = {}
    for t in np.flatnonzero(predict):
        first, last = int(t) - 72 + 1, int(t) - 12
        if first >= 0:
            out[(first, last)] = np.asarray([t], dtype=np.int64)
    return out


def working_days(year: Iterable[int], month: Iterable[int]) -> IntArray:
    """Monday-to-Friday days in each month less the England and Wales bank holidays on them.

    Examples
    --------
    >>> working_days([2023, 2020], [12, 5]).tolist()   # 25, 26 Dec 2023; 8, 25 May 2020
    [19, 19]
    """
    from ..calendar_terms import registration_holidays

    y = np.asarray(list(year), dtype=np.int64)
    m = np.asarray(list(month), dtype=np.int64)
    if y.size == 0:
        return np.zeros(0, dtype=np.int64)
    bh = registration_holidays(int(y.min()), int(y.max()))
    bh_ym = (
        pd.Series(1, index=pd.MultiIndex.from_arrays([bh.year, bh.month]))
        .groupby(level=[0, 1])
        .sum()
    )
    out = np.empty(y.size, dtype=np.int64)
    for i, (yy, mm) in enumerate(zip(y.tolist(), m.tolist(), strict=True)):
        start = np.datetime64(f"{yy:04d}-{mm:02d}-01")
        end = start.astype("datetime64[M]") + 1
        n = int(np.busday_count(start, end.astype("datetime64[D]")))
        out[i] = n - int(bh_ym.get((yy, mm), 0))
    return out


# ---------------------------------------------------------------------------------------- result
@dataclass(eq=False)
class Ons2024Result(BaselineResult):
    """Result of the ONS 2024 model: expected deaths from one fit per period (see the module
    docstring for the intervals)."""

    design: OnsDesign | None = None
    xvx: FloatArray | None = None  # [S, T]
    phi_t: FloatArray | None = None  # [T]
    fit_of: IntArray | None = None  # [T]
    covs: list[FloatArray] | None = None
    windows: IntArray | None = None  # [n_fits, 2] first, last
    fit_n_obs: IntArray | None = None
    intervals: str = "ons"

    _shared_fields: ClassVar[tuple[str, ...]] = (
        "phi_t",
        "fit_of",
        "covs",
        "windows",
        "fit_n_obs",
    )

    def _take_extra(self, idx: IntArray) -> dict[str, Any]:
        if self.design is None:
            return {}
        from dataclasses import replace

        return {
            "design": replace(
                self.design,
                cols=np.ascontiguousarray(self.design.cols[idx]),
                comp=np.ascontiguousarray(self.design.comp[idx]),
            )
        }

    # -------------------------------------------------------------- variances
    def se_expected(self) -> FloatArray:
        """ONS's standard error of the fitted mean [S, T]: mu sqrt(phi x' (X'WX)^-1 x)."""
        assert self.xvx is not None and self.phi_t is not None
        return self.mu * np.sqrt(self.phi_t[None, :] * self.xvx)

    def obs_variance(self) -> FloatArray:
        """phi_t mu with ``intervals="full"``; zero with ONS's intervals (none in ONS's model)."""
        assert self.phi_t is not None
        if self.intervals == "ons":
            return np.where(np.isnan(self.mu), np.nan, 0.0)
        return self.phi_t[None, :] * self.mu

    def _sd_groups(self, groups: IntArray, n_groups: int) -> FloatArray:
        """sqrt(g' V g) per group and week [G, T] (``intervals="full"``)."""
        assert self.design is not None and self.fit_of is not None and self.phi_t is not None
        n_weeks = self.mu.shape[1]
        out = np.full((n_groups, n_weeks), np.nan)
        if self.covs is None:
            raise RuntimeError("the covariance of each fit was not kept (intervals='ons')")
        for t in np.flatnonzero(self.fit_of >= 0):
            cov = self.covs[int(self.fit_of[t])]
            g = _group_g(self.design, self.mu[:, t], int(t), groups, n_groups)
            val = self.phi_t[t] * np.einsum("gi,ij,gj->g", g, cov, g)
            bad = group_sum(np.isnan(self.mu[:, t]).astype(float)[:, None], groups, n_groups)[:, 0]
            out[:, t] = np.where(bad > 0, np.nan, np.sqrt(np.maximum(val, 0.0)))
        return out

    def param_variance_weekly(self, groups: IntArray, n_groups: int) -> FloatArray:
        """ONS: the sum of the squared standard errors [G, T]; full: g' V g of each week's fit."""
        if self.intervals == "ons":
            return group_sum(self.se_expected() ** 2, groups, n_groups)
        return self._sd_groups(groups, n_groups) ** 2

    def param_variance_window(
        self, groups: IntArray, n_groups: int, weeks: BoolArray
    ) -> FloatArray:
        """ONS: the sum of the squared standard errors over the window; full: sum_{k,l} r_kl sd_k
        sd_l with r_kl the share of fitting rows the windows of weeks k and l have in common."""
        if self.intervals == "ons":
            return group_sum(np.sum(self.se_expected()[:, weeks] ** 2, axis=1), groups, n_groups)
        assert self.windows is not None and self.fit_of is not None
        sd = self._sd_groups(groups, n_groups)[:, weeks]  # [G, K]
        k = self.fit_of[weeks]
        first = np.where(k >= 0, self.windows[np.maximum(k, 0), 0], 0).astype(float)
        last = np.where(k >= 0, self.windows[np.maximum(k, 0), 1], -1).astype(float)
        overlap = np.clip(
            np.minimum(last[:, None], last[None, :])
            - np.maximum(first[:, None], first[None, :])
            + 1,
            0.0,
            None,
        )
        length = np.sqrt((last - first + 1)[:, None] * (last - first + 1)[None, :])
        with np.errstate(invalid="ignore", divide="ignore"):
            rho = np.where(length > 0, overlap / length, 0.0)
        return np.einsum("gk,kl,gl->g", sd, rho, sd)

    # -------------------------------------------------------------- intervals
    def prediction(
        self,
        observed: FloatArray,
        mu: FloatArray,
        obs_var: FloatArray,
        param_var: FloatArray,
        level: float,
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """ONS: mu -+ z se (not clipped at zero), z-score (y - mu) / se; full: the normal rule."""
        if self.intervals == "full":
            return normal_prediction(observed, mu, obs_var, param_var, level)
        z = stats.norm.ppf(0.5 + level / 2.0)
        sd = np.sqrt(obs_var + param_var)
        with np.errstate(invalid="ignore", divide="ignore"):
            return mu - z * sd, mu + z * sd, (observed - mu) / sd

    def expected_bounds(
        self, mu: FloatArray, param_var: FloatArray, level: float
    ) -> tuple[FloatArray, FloatArray] | None:
        """ONS: expected -+ z se on the count scale; full: None (the log-scale default)."""
        if self.intervals == "full":
            return None
        z = stats.norm.ppf(0.5 + level / 2.0)
        sd = np.sqrt(param_var)
        return mu - z * sd, mu + z * sd


# ---------------------------------------------------------------------------------------- baseline
def _check_choice(name: str, value: Any, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise InputError(
            f"{name} must be one of {list(allowed)}, got {value!r}", column=name, value=value
        )
    return str(value)


def _coarse_values(
    keys: pd.DataFrame, age_col: str, coarse: str | Mapping[str, str] | None
) -> list[str]:
    age = keys[age_col].astype(str)
    if coarse is None:
        return age.tolist()
    if isinstance(coarse, str):
        if coarse not in keys.columns:
            raise InputError(
                f"coarse_age names the stratum {coarse!r}, which the data lack; strata are "
                f"{list(keys.columns)}",
                column="coarse_age",
                value=coarse,
            )
        return keys[coarse].astype(str).tolist()
    missing = sorted(set(age) - set(map(str, coarse)))
    if missing:
        raise InputError(
            f"coarse_age maps no coarse group to the age groups {missing}",
            column="coarse_age",
            value=missing,
        )
    return [str(coarse[a]) for a in age]  # type: ignore[index]


@dataclass(eq=False, repr=False)
class Ons2024(Baseline):
    """ONS's model since February 2024 (weekly): one quasi-Poisson GLM over all strata, refitted
    for every week on the five years ending a year before it.

    log mu_st = log(population_st) + agegrp + sex + geography + b trend_t + season_w(t)
    + coarse:sex + coarse:trend + coarse:season, with trend_t the week's position, season the ISO
    week with 53 as 52 and ``coarse`` a coarse age grouping; the COVID weeks 2020 w14-22, w45-53
    and 2021 w1-8 are left out of every fit (see :mod:`excessmort.baselines.ons2024`).

    Intervals: ``"ons"`` (default) as ONS computes them, from the standard error of the fitted mean
    only (parameter uncertainty scaled by the quasi-Poisson phi, no observation variance; sums
    add variances); ``"full"``: observation variance phi mu plus the shared-parameter covariance.

    Parameters
    ----------
    age_group, sex, geography : str or None
        The stratum columns playing ONS's ``agegrp``, ``sex`` and ``geography``; a column the data
        lack is left out of the model (ONS's country models have no geography).
    coarse_age : str, mapping or None
        ONS's ``agegrp_coarse``: a stratum column, a mapping age group -> coarse group, or None
        (default: the column ``age_group_coarse`` when present, else the age groups themselves).
    exclude : sequence of (ISO year, ISO week)
        Weeks left out of every fit (default :data:`ONS_COVID_WEEKS`).
    predict_from : date-like, optional
        First week estimated (default: the week after the reference period, or the first week with
        a full window). Every week from there with a five-year window in the data is estimated.
    intervals : {"ons", "full"}
    max_iter, tol : int, float
        R ``glm.control`` defaults.

    Examples
    --------
    >>> Ons2024().intervals
    'ons'
    """

    name: ClassVar[str] = "ons2024"

    age_group: str | None = "age_group"
    sex: str | None = "sex"
    geography: str | None = "region"
    coarse_age: str | Mapping[str, str] | None = None
    exclude: Sequence[tuple[int, int]] = ONS_COVID_WEEKS
    predict_from: Any = None
    intervals: str = "ons"
    max_iter: int = 25
    tol: float = 1e-8

    def fit(
        self, panel: Panel, *, reference: tuple[Any, Any] | None, engine: Engine = "auto"
    ) -> Ons2024Result:
        """Fit every week estimated (one GLM per window) and return the result.

        Raises
        ------
        InputError
            For bad options, data without population, or no week with a five-year window.
        """
        intervals = _check_choice("intervals", self.intervals, INTERVALS)
        keys = panel.keys
        strata = list(keys.columns)
        if panel.exposure is None:
            raise InputError(
                "the ons2024 baseline needs a population column (ONS's offset)", column="population"
            )
        age_col = self.age_group if self.age_group in strata else None
        n_series = panel.n_series
        if age_col is None:
            age = ["all"] * n_series
            coarse = ["all"] * n_series
        else:
            age = keys[age_col].astype(str).tolist()
            spec = self.coarse_age
            if spec is None and "age_group_coarse" in strata:
                spec = "age_group_coarse"
            coarse = _coarse_values(keys, age_col, spec)
        sex = keys[self.sex].astype(str).tolist() if self.sex in strata else None
        geo = keys[self.geography].astype(str).tolist() if self.geography in strata else None
        y, w = iso_year_week(panel.weeks)
        season = np.minimum(w, 52) - 1
        trend = np.arange(1, panel.n_weeks + 1, dtype=np.float64)
        design = build_ons_design(age, coarse, sex, geo, season, 52, trend)
        try:
            excl = {(int(a), int(b)) for a, b in self.exclude}
        except (TypeError, ValueError) as exc:
            raise InputError(
                f"exclude must be (ISO year, ISO week) pairs, got {self.exclude!r}",
                column="exclude",
                value=self.exclude,
            ) from exc
        covid = np.array([(int(a), int(b)) in excl for a, b in zip(y, w, strict=True)])
        offset = panel.offset
        usable = panel.observed_mask & np.isfinite(offset) & ~covid[None, :]
        if self.predict_from is not None:
            start = pd.Timestamp(self.predict_from)
        elif reference is not None:
            start = pd.Timestamp(reference[1]) + pd.Timedelta(days=1)
        else:
            start = panel.weeks[0]
        predict = np.asarray(panel.weeks >= start)
        windows = ons_week_windows(y, w, predict)
        if not windows:
            raise InputError(
                "too little history for the ons2024 baseline: no week from "
                f"{start.date()} has the five years before it (ending a year earlier) in the data, "
                f"which run from {panel.weeks[0].date()} to {panel.weeks[-1].date()}",
                column="week_ending",
                value=str(start.date()),
            )
        out = fit_ons(
            design,
            panel.deaths,
            offset,
            usable,
            windows,
            max_iter=self.max_iter,
            tol=self.tol,
            keep_cov=intervals == "full",
            engine=engine,
        )
        return _result(self.name, panel.n_series, out, design, usable, intervals)


def _result(
    name: str,
    n_series: int,
    out: dict[str, Any],
    design: OnsDesign,
    usable: BoolArray,
    intervals: str,
) -> Ons2024Result:
    phi_last = float(out["phi"][-1])
    fit_mask = np.zeros_like(usable)
    for first, last in zip(out["first"], out["last"], strict=True):
        fit_mask[:, first : last + 1] |= usable[:, first : last + 1]
    return Ons2024Result(
        baseline=name,
        mu=out["mu"],
        dispersion=np.full(n_series, phi_last),
        dispersion_raw=np.full(n_series, phi_last),
        converged=np.full(n_series, bool(out["converged"].all())),
        n_iter=np.full(n_series, int(out["n_iter"].max()), dtype=np.int64),
        fit_mask=fit_mask,
        info={
            "phi_by_fit": out["phi"],
            "n_obs_by_fit": out["n_obs"],
            "rank_by_fit": out["rank"],
            "converged_by_fit": out["converged"],
            "n_fits": int(out["phi"].size),
        },
        design=design,
        xvx=out["xvx"],
        phi_t=out["phi_t"],
        fit_of=out["fit_of"],
        covs=out["cov"],
        windows=np.column_stack([out["first"], out["last"]]),
        fit_n_obs=out["n_obs"],
        intervals=intervals,
    )


# ---------------------------------------------------------------------------------------- monthly
def _monthly_frame_checks(frame: pd.DataFrame, strata: list[str]) -> tuple[IntArray, IntArray]:
    """Year-month codes [N] and month positions, refusing bad months, counts and duplicates."""
    for col in ("year", "month", "deaths", "population"):
        values = pd.to_numeric(frame[col], errors="coerce")
        # deaths and population may be missing (that month is not fitted); year and month may not
        bad = (
            values.isna() & frame[col].notna() if col in ("deaths", "population") else values.isna()
        )
        if col in ("deaths", "population"):
            bad = bad | (values < 0)
        if col == "month":
            bad = bad | ~values.between(1, 12)
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            value = frame[col].iloc[row]
            value = value.item() if isinstance(value, np.generic) else value
            need = {
                "year": "a year",
                "month": "a month number 1 to 12",
                "deaths": "a count of deaths (not negative)",
                "population": "a population (not negative)",
            }[col]
            raise InputError(
                f"column {col!r} holds {value!r} in row {row}: it must be {need}",
                column=col,
                value=value,
                row=row,
            )
    ym = frame["year"].astype(int).to_numpy() * 12 + (frame["month"].astype(int).to_numpy() - 1)
    dup = frame.assign(_ym=ym).duplicated([*strata, "_ym"]).to_numpy()
    if dup.any():
        row = int(np.flatnonzero(dup)[0])
        what = ", ".join(f"{c}={frame[c].iloc[row]!r}" for c in strata)
        raise InputError(
            f"row {row} repeats the month {int(frame['year'].iloc[row])}-"
            f"{int(frame['month'].iloc[row]):02d} of the series ({what or 'the only series'}): "
            "one row per series and month",
            column="month",
            value=int(frame["month"].iloc[row]),
            row=row,
        )
    return ym, np.arange(int(ym.min()), int(ym.max()) + 1)


@dataclass(eq=False)
class OnsMonthlyFit:
    """ONS's monthly model (``ons_monthly_ed.R``) fitted on a monthly frame, or a view of it summed
    over strata (:meth:`by`).

    Attributes
    ----------
    keys : DataFrame [G]
        The strata of each row of the view (no columns for the total).
    years, months : ndarray [T]
        The calendar of the data.
    observed : ndarray [G, T]
    result : Ons2024Result
        The per-series fit (one GLM per month estimated).
    groups : ndarray [S] of int
        The view's group of each series.
    level : float
    intervals : {"ons", "full"}
    """

    keys: pd.DataFrame
    years: IntArray
    months: IntArray
    series_keys: pd.DataFrame
    deaths: FloatArray
    result: Ons2024Result
    groups: IntArray
    level: float
    intervals: str

    @property
    def n_groups(self) -> int:
        """Rows of the view (series, or their sums)."""
        return len(self.keys)

    def __repr__(self) -> str:
        assert self.result.fit_of is not None
        done = np.flatnonzero(self.result.fit_of >= 0)
        first, last = int(done[0]), int(done[-1])
        rows = ", ".join(map(str, self.keys.columns)) or "the total"
        return (
            f"OnsMonthlyFit: ONS's monthly model (ons2024), {len(self.series_keys)} series, "
            f"{self.n_groups} rows by {rows}; months estimated "
            f"{int(self.years[first])}-{int(self.months[first]):02d} to "
            f"{int(self.years[last])}-{int(self.months[last]):02d} "
            f"({done.size} fits); level {self.level:g}; intervals: {self.intervals_text}"
        )

    @property
    def intervals_text(self) -> str:
        """What the intervals contain, in words."""
        if self.intervals == "ons":
            return (
                "ONS's intervals: expected -+ z se of the fitted mean (parameter uncertainty scaled "
                "by phi, no observation variance); sums over series or months add the variances"
            )
        return (
            "observation variance phi mu plus the shared-parameter covariance g'Vg of each "
            "month's fit; months fitted on overlapping windows combined with correlation equal "
            "to their share of common fitting rows"
        )

    def by(self, *strata: str) -> OnsMonthlyFit:
        """The same accessors on sums over every stratum not named (``by()``: the total).

        Raises
        ------
        InputError
            For a name that is not a stratum of the fit.
        """
        cols = list(self.series_keys.columns)
        unknown = [s for s in strata if s not in cols]
        if unknown:
            raise InputError(
                f"{unknown[0]!r} is not a stratum of this fit; strata: {cols}",
                column=unknown[0],
                value=unknown[0],
            )
        names = list(strata)
        if names:
            codes = self.series_keys.groupby(names, sort=True, observed=True).ngroup()
            groups = codes.to_numpy(dtype=np.int64)
            keys = (
                self.series_keys[names]
                .assign(_g=groups)
                .drop_duplicates("_g")
                .sort_values("_g")
                .drop(columns="_g")
                .reset_index(drop=True)
            )
        else:
            groups = np.zeros(len(self.series_keys), dtype=np.int64)
            keys = pd.DataFrame(index=pd.RangeIndex(1))
        return OnsMonthlyFit(
            keys=keys,
            years=self.years,
            months=self.months,
            series_keys=self.series_keys,
            deaths=self.deaths,
            result=self.result,
            groups=groups,
            level=self.level,
            intervals=self.intervals,
        )

    def _bounds(
        self, observed: FloatArray, mu: FloatArray, obs_var: FloatArray, param_var: FloatArray
    ) -> dict[str, FloatArray]:
        res = self.result
        lo, hi, _ = res.prediction(observed, mu, obs_var, param_var, self.level)
        eb = res.expected_bounds(mu, param_var, self.level)
        if eb is None:  # the log-scale rule of the other GLM baselines: exp(eta -+ z se / mu)
            z = stats.norm.ppf(0.5 + self.level / 2.0)
            with np.errstate(invalid="ignore", divide="ignore"):
                r = np.exp(z * np.sqrt(param_var) / mu)
            eb = (mu / r, mu * r)
        return {
            "observed": observed,
            "expected": mu,
            "se": np.sqrt(param_var),
            "expected_lower": eb[0],
            "expected_upper": eb[1],
            "excess": observed - mu,
            "excess_lower": observed - hi,
            "excess_upper": observed - lo,
        }

    @property
    def monthly(self) -> pd.DataFrame:
        """strata..., year, month, observed, expected, se, expected_lower, expected_upper, excess,
        excess_lower, excess_upper, dispersion: one row per row of the view and month estimated.

        ``se`` is the standard error of the expected count (sqrt of the parameter variance)."""
        res = self.result
        G, T = self.n_groups, self.years.size
        mu = group_sum(res.mu, self.groups, G)
        obs = group_sum(self.deaths, self.groups, G)
        cols = self._bounds(
            obs,
            mu,
            group_sum(res.obs_variance(), self.groups, G),
            res.param_variance_weekly(self.groups, G),
        )
        out = self.keys.iloc[np.repeat(np.arange(G), T)].reset_index(drop=True)
        out["year"] = np.tile(self.years, G)
        out["month"] = np.tile(self.months, G)
        for name, values in cols.items():
            out[name] = values.reshape(-1)
        assert res.phi_t is not None
        out["dispersion"] = np.tile(res.phi_t, G)
        out = out[np.isfinite(out["expected"].to_numpy())].reset_index(drop=True)
        out.attrs["intervals"] = self.intervals_text
        return out

    def _months_in(self, start: Any, end: Any) -> BoolArray:
        from ..periods import period_bounds

        first = pd.Timestamp(int(self.years[0]), int(self.months[0]), 1)
        last = pd.Timestamp(int(self.years[-1]), int(self.months[-1]), 1) + pd.offsets.MonthEnd()
        lo = period_bounds(start, calendar="calendar")[0] if start is not None else first
        hi = period_bounds(end if end is not None else start, calendar="calendar")[1]
        if start is None and end is None:
            hi = last
        month_start = pd.to_datetime(
            {"year": self.years, "month": self.months, "day": np.ones_like(self.years)}
        )
        month_end = month_start + pd.offsets.MonthEnd()
        inside = ((month_start >= lo) & (month_end <= hi)).to_numpy()
        if not inside.any():
            raise InputError(
                f"no whole month of the data lies in {lo.date()} to {hi.date()}; the data run "
                f"from {first.date()} to {last.date()}",
                column="month",
                value=start,
            )
        assert self.result.fit_of is not None
        missing = inside & (self.result.fit_of < 0)
        if missing.any():
            t = int(np.flatnonzero(missing)[0])
            raise InputError(
                f"month {int(self.years[t])}-{int(self.months[t]):02d} has no estimate: the "
                "monthly ONS model needs the 72 months before a month",
                column="month",
                value=f"{int(self.years[t])}-{int(self.months[t]):02d}",
            )
        return inside

    def cumulative(self, start: Any = None, end: Any = None) -> pd.DataFrame:
        """Sums over the months of a period (``"2020"``, ``"2020-04"``, ``("2020-03",
        "2021-02")``): strata..., observed, expected, se, expected_lower, expected_upper, excess,
        excess_lower, excess_upper, months.

        Raises
        ------
        InputError
            For a period with no whole month in the data, or a month without an estimate.
        """
        inside = self._months_in(start, end)
        res = self.result
        G = self.n_groups
        mu = group_sum(res.mu[:, inside].sum(axis=1), self.groups, G)
        obs = group_sum(self.deaths[:, inside].sum(axis=1), self.groups, G)
        obs_var = group_sum(res.obs_variance()[:, inside].sum(axis=1), self.groups, G)
        param_var = res.param_variance_window(self.groups, G, inside)
        out = self.keys.copy()
        for name, values in self._bounds(obs, mu, obs_var, param_var).items():
            out[name] = values
        out["months"] = int(inside.sum())
        out.attrs["intervals"] = self.intervals_text
        return out


def fit_ons_monthly(
    frame: pd.DataFrame,
    *,
    predict_from: Any = None,
    age_group: str = "age_group",
    coarse_age: str | Mapping[str, str] | None = None,
    sex: str | None = "sex",
    geography: str | None = "region",
    exclude: Sequence[tuple[int, int]] = ONS_COVID_MONTHS,
    intervals: str = "ons",
    level: float = 0.95,
    max_iter: int = 25,
    tol: float = 1e-8,
    engine: str = "auto",
) -> OnsMonthlyFit:
    """ONS's monthly model (``ons_monthly_ed.R``) on a monthly frame: one GLM per month estimated,
    every fit in one batched pass.

    The monthly data do not fit the weekly panel, so this takes a frame of its own: columns
    ``year``, ``month`` (1-12), ``deaths``, ``population``, optional ``working_days`` (default
    :func:`working_days`) and the strata. The model is the weekly one with the month for the week
    and the working days of the month as a further term; the window for month t is months t - 71
    to t - 12; the COVID months ``exclude`` are left out. ``excessmort.fit(frame,
    baseline="ons2024")`` calls this for a frame with ``year`` and ``month`` and no
    ``week_ending``.

    Parameters
    ----------
    frame : DataFrame
    predict_from : (year, month) or "YYYY-MM", optional
        First month estimated (default: every month with a full window).
    intervals : {"ons", "full"}
        ONS's intervals (default) or the project's (see the module docstring).
    level : float
        Interval level (ONS: 0.95).

    Returns
    -------
    OnsMonthlyFit
        ``.monthly``, ``.cumulative(start, end)`` and ``.by(*strata)``.

    Raises
    ------
    InputError
        For missing columns, a bad value or a repeated month (naming column, value and row), or no
        month with a full window.
    """
    need = ["year", "month", "deaths", "population"]
    missing = [c for c in need if c not in frame.columns]
    if missing:
        raise InputError(
            f"the monthly ONS model needs columns {need}; missing {missing}",
            column=missing[0],
        )
    intervals = _check_choice("intervals", intervals, INTERVALS)
    if coarse_age is None and "age_group_coarse" in frame.columns:
        coarse_age = "age_group_coarse"  # as the weekly model
    strata = [
        c
        for c in (age_group, coarse_age if isinstance(coarse_age, str) else None, sex, geography)
        if c is not None and c in frame.columns
    ]
    ym, periods = _monthly_frame_checks(frame, strata)
    df = frame
    keys = df[strata].drop_duplicates().sort_values(strata).reset_index(drop=True)
    keys = keys.astype(str)
    key_codes = (
        df[strata].astype(str).merge(keys.reset_index(), on=strata, how="left")["index"].to_numpy()
    )
    S, T = len(keys), periods.size
    pos = (ym - periods[0]).astype(np.int64)
    deaths = np.full((S, T), np.nan)
    pop = np.full((S, T), np.nan)
    deaths[key_codes, pos] = pd.to_numeric(df["deaths"]).to_numpy(dtype=float)
    pop[key_codes, pos] = pd.to_numeric(df["population"]).to_numpy(dtype=float)
    years = periods // 12
    months = periods % 12 + 1
    if "working_days" in df.columns:
        wd = np.full(T, np.nan)
        wd[pos] = df["working_days"].to_numpy(dtype=float)
    else:
        wd = working_days(years, months).astype(float)
    age = keys[age_group].tolist() if age_group in keys.columns else ["all"] * S
    if age_group in keys.columns:
        coarse = _coarse_values(keys, age_group, coarse_age)
    else:
        coarse = ["all"] * S
    sx = keys[sex].tolist() if sex in keys.columns else None
    geo = keys[geography].tolist() if geography in keys.columns else None
    design = build_ons_design(
        age,
        coarse,
        sx,
        geo,
        months - 1,
        12,
        np.arange(1, T + 1, dtype=float),
        extra=wd,
    )
    excl = {(int(a), int(b)) for a, b in exclude}
    covid = np.array([(int(a), int(b)) in excl for a, b in zip(years, months, strict=True)])
    with np.errstate(divide="ignore"):
        offset = np.log(pop)
    usable = ~np.isnan(deaths) & np.isfinite(offset) & ~covid[None, :]
    predict = np.ones(T, dtype=bool)
    if predict_from is not None:
        from ..periods import parse_month

        py, pm = parse_month(predict_from, what="predict_from")
        predict = periods >= int(py) * 12 + int(pm) - 1
    windows = _month_windows(T, predict)
    if not windows:
        raise InputError(
            "too little history for the monthly ONS model: no month has the 72 months before it",
            column="month",
        )
    out = fit_ons(
        design,
        deaths,
        offset,
        usable,
        windows,
        max_iter=max_iter,
        tol=tol,
        keep_cov=intervals == "full",
        engine=engine,
    )
    result = _result("ons2024", S, out, design, usable, intervals)
    return OnsMonthlyFit(
        keys=keys,
        years=years.astype(np.int64),
        months=months.astype(np.int64),
        series_keys=keys,
        deaths=deaths,
        result=result,
        groups=np.arange(S, dtype=np.int64),
        level=level,
        intervals=intervals,
    )


def ons_monthly(frame: pd.DataFrame, **options: Any) -> pd.DataFrame:
    """The per-series frame of :func:`fit_ons_monthly` (``fit_ons_monthly(frame,
    **options).monthly``).

    Returns
    -------
    DataFrame
        strata..., year, month, observed, expected, se, expected_lower, expected_upper, excess,
        excess_lower, excess_upper (ONS's intervals: -+ z se), dispersion.
    """
    return fit_ons_monthly(frame, **options).monthly
