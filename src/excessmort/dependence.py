"""Residual dependence across series and weeks, estimated on the reference weeks (for sums).

Counts are not independent given the baseline: a flu winter moves every series of an area in the
same weeks, lasts for weeks, and makes one year's total differ from the next. The variance of a sum
of rows (an aggregate over series, a window over weeks, or both) is therefore estimated from the
reference residuals of that sum's own structure (DESIGN.md "Residual dependence"). The model, for a
group g of series (a single series is its own group) and its reference residual e_gt = sum_s (y - mu):

1. Cross-series inflation. The null variance of e_gt is d_gt = sum_s phi_s mu_st - f_gt in-sample
   (f: variance of the fitted sum; the fit absorbs that part, a leverage correction) or + f_gt when
   the residuals are out of sample (the five-year average). u_gt = e_gt / sqrt(d_gt) and
   c_g = max(1, mean_t u_gt^2): the variance of the group's weekly sum is c_g sum_s phi_s mu_st. A
   single series has c = 1 by definition (its own phi), so one series and one week is phi mu.
2. Serial dependence. The autocorrelation of u_g at lags 1..L (L = 13, a quarter) is fitted by the
   ARMA(1, 1) form rho_k = A phi^(k-1) (least squares over a grid of phi, A in [0, 1]: negative
   sample correlations, mostly noise, never narrow a sum). A window's observation variance is
   sum_{t, t'} s_t s_t' rho_|t - t'| with s_t = sqrt(c_g sum_s phi_s mu_st), computed by a prefix
   recursion (O(W L) per group, never a W x W matrix; :mod:`excessmort._kernels.dependence`, which
   also takes estimated lags 1..L followed by a geometric tail).
3. Year effects. Winters differ as whole seasons: the ARMA part explains little of the spread of yearly
   totals. A relative year effect a_y (mu_st -> mu_st (1 + a_y) for every week of year y) adds
   sigma^2 [(sum mu)^2 - sum mu^2] to a year's sum. sigma^2 is a moment estimate pooled over every
   series of the panel (weights (sum mu)^2): the squared in-sample yearly sums of residuals less what
   parts 1-2 explain, divided by sum [(sum mu)^2 - sum mu^2] (1 - h_y), h_y the leverage of year y in
   the year-level regression the baseline implies (intercept and trend: 1/n + (y - ybar)^2 / Sxx; a
   five-year average: out of sample, 1 + 1/n). For a sum in year y the fitted level carries the
   reference years' effects too, so the window's year part is sigma^2 [(1 + h_y)(sum mu)^2 - sum mu^2].
   A pooled estimate is used for every aggregate: by Cauchy-Schwarz the relative year effect of a sum
   is no larger than its members' (conservative). Its small-sample uncertainty is carried by a
   Student-t quantile, with Satterthwaite's degrees of freedom n_eff (n_years - p_y), n_eff = S / c of
   the panel total (the number of effectively independent series).
4. Parameter uncertainty. V = phi (X'WX)^-1 assumes independent errors; g' V g of a group is
   multiplied by c_g times the finite-sample long-run variance factor of part 2 over the n reference
   weeks, f(n) = 1 + 2 sum_{k<n} (1 - k/n) rho_k (the sandwich for a mean under correlated errors).
   Coefficients shared by several series (the pooled model) are estimated from all of them at
   once, so a row's own c f(n) misses the dependence of the other series' residuals that inform
   them (a region's share of a seasonality fitted on all regions looked as certain as if the
   regions' winters were independent). Their covariance under dependence is the Driscoll-Kraay
   sandwich of the weekly scores summed over series (:func:`shared_coefficient_cov`: cross-series
   and serial dependence, Bartlett lags 1..L, invariant to the design's parametrisation); every
   row's and aggregate's parameter variance is the wider of c f(n) g' V g and g' V_DK g (the
   sandwich truncates at L lags, the ARMA tail of f(n) does not). In a week's interval the
   dependent parameter part applies to weeks outside the fit only: inside it, y and the fitted mu
   share the same shocks (Cov(y, x'b) grows with Var(x'b) by the same design effect), so the
   residual's variance is at most c phi mu + x'Vx, the in-sample form (as for the year effects of
   part 3, which only weeks outside the reference years carry).

Where the reference holds fewer than :data:`MIN_WEEKS` residual weeks, or fewer than
:data:`MIN_YEARS` complete years, the dependence cannot be estimated: the window's observation part
is then taken as fully correlated over weeks (A = phi = 1, the Cauchy-Schwarz upper bound), never
independent, and :attr:`Dependence.short` says so (``Fit`` warns).

Everything is one pass over the reference residuals of the groups asked for: O(S T) for the group
sums, O(G T L) for the autocorrelations; nothing is S x S or T x T. The sums, the per-group serial
model, the year-effect moments and the window totals are numba kernels
(:mod:`excessmort._kernels.dependence`) beside their numpy twins (``dependence_ref.py``, the code
they replaced; ``engine="auto"`` runs the twins for calls under
:data:`excessmort._kernels.DEPENDENCE_NUMBA_MIN_CELLS` cells, which compile nothing). When every
series is its own group (a per-series view, :func:`series_dependence`) the sums are the series' own
arrays and are never formed: the ``own_*`` kernels read the series' counts, mu and variances in
place, with the same arithmetic.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _stats as stats
from ._typing import BoolArray, FloatArray, IntArray

if TYPE_CHECKING:
    import pandas as pd

    from .baselines._base import BaselineResult

__all__ = [
    "MAX_LAG",
    "MIN_WEEKS",
    "MIN_YEARS",
    "Dependence",
    "DependenceWarning",
    "GroupSums",
    "YearEffect",
    "arma_fit",
    "autocorrelation",
    "dependence_from_sums",
    "describe_interval",
    "estimate_groups",
    "estimate_year_effect",
    "long_run_factor",
    "series_dependence",
    "shared_coefficient_cov",
    "year_effect_from_sums",
]

#: Lags of the autocorrelation fitted by the ARMA(1, 1) form (one quarter).
MAX_LAG = 13
#: Fewer reference residual weeks than this: the serial dependence is not estimated (full correlation).
MIN_WEEKS = 104
#: Fewer complete reference years than this: year effects are not estimated (full correlation).
MIN_YEARS = 3
#: A year block counts when it has at least this share of its weeks.
YEAR_COVERAGE = 0.8
_PHI_GRID = np.linspace(0.0, 0.98, 50)


class DependenceWarning(UserWarning):
    """The reference period is too short to estimate the residual dependence; intervals are widened."""


# ---------------------------------------------------------------------------------------- pieces
def autocorrelation(u: FloatArray, max_lag: int = MAX_LAG, demean: bool = True) -> FloatArray:
    """Autocorrelation at lags 0..max_lag of mean-zero rows with NaN gaps: [G, max_lag + 1].

    rho_k = sum_t u_t u_{t+k} / sum_t u_t^2 over the pairs present (the residuals of a fit have mean
    zero, so they are not demeaned).
    """
    ok = np.isfinite(u)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        centre = np.nanmean(u, axis=1) if demean else np.zeros(u.shape[0])
    x = np.where(ok, u - np.nan_to_num(centre)[:, None], 0.0)
    den = np.sum(x * x, axis=1)
    out = np.empty((u.shape[0], max_lag + 1))
    n_weeks = u.shape[1]
    with np.errstate(invalid="ignore", divide="ignore"):
        for k in range(max_lag + 1):
            if k >= n_weeks:
                out[:, k] = 0.0
                continue
            # row-wise dot products without a [G, T] temporary per lag
            out[:, k] = np.einsum("ij,ij->i", x[:, k:], x[:, : n_weeks - k]) / den
    return np.where(np.isfinite(out), out, 0.0)


def arma_fit(rho: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Least-squares fit of rho_k = A phi^(k-1), k = 1..L, over a grid of phi in [0, 0.98] and A in
    [0, 1]: (A [G], phi [G]). Negative correlation is taken as none (never narrower)."""
    r = rho[:, 1:]
    k = np.arange(1, r.shape[1] + 1)
    basis = _PHI_GRID[:, None] ** (k[None, :] - 1)  # [P, L]
    amp = np.clip((r @ basis.T) / np.sum(basis * basis, axis=1)[None, :], 0.0, 1.0)  # [G, P]
    sse = np.sum((r[:, None, :] - amp[:, :, None] * basis[None, :, :]) ** 2, axis=2)
    best = np.argmin(sse, axis=1)
    rows = np.arange(r.shape[0])
    return amp[rows, best], _PHI_GRID[best]


def arma_lags(a: FloatArray, phi: FloatArray, max_lag: int = MAX_LAG) -> FloatArray:
    """rho_k = A phi^(k-1) at lags 1..max_lag: [G, max_lag]."""
    k = np.arange(1, max_lag + 1)
    return np.asarray(a)[:, None] * np.asarray(phi)[:, None] ** (k[None, :] - 1)


def _tapered_geometric(phi: FloatArray, m: FloatArray, n: FloatArray) -> FloatArray:
    """sum_{k=1}^{m} (1 - k/n) phi^(k-1), in closed form."""
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        geo = (1.0 - phi**m) / (1.0 - phi)
        der = (1.0 - (m + 1.0) * phi**m + m * phi ** (m + 1.0)) / (1.0 - phi) ** 2
        at_one = m - m * (m + 1.0) / (2.0 * n)
        return np.where(phi >= 1.0, at_one, geo - der / n)


def long_run_factor(rho: FloatArray, a: FloatArray, phi: FloatArray, n: FloatArray) -> FloatArray:
    """f(n) = 1 + 2 sum_{k=1}^{n-1} (1 - k/n) rho_k with rho_k estimated for k <= L and A phi^(k-1)
    beyond: the variance of a mean of n weeks relative to independence (floored at 1/4)."""
    rho, a, phi, n = (np.asarray(v, dtype=np.float64) for v in (rho, a, phi, n))
    n = np.maximum(n, 1.0)
    n_lags = rho.shape[1]
    k = np.arange(1, n_lags + 1, dtype=np.float64)
    head = np.sum(
        np.where(k[None, :] < n[:, None], (1.0 - k[None, :] / n[:, None]) * rho, 0.0), axis=1
    )
    m = np.maximum(n - 1.0, float(n_lags))
    tail = a * (_tapered_geometric(phi, m, n) - _tapered_geometric(phi, np.full_like(n, n_lags), n))
    return np.maximum(1.0 + 2.0 * (head + tail), 0.25)


def _null_variance(obs: FloatArray, fitted: FloatArray, in_sample: bool) -> FloatArray:
    with np.errstate(invalid="ignore"):
        d = obs - fitted if in_sample else obs + fitted
        return np.maximum(d, 0.05 * obs)


# ---------------------------------------------------------------------------------------- year effect
@dataclass
class YearEffect:
    """The panel's relative year effect: moment sums over series (they add across Dask partitions).

    Attributes
    ----------
    num, den : float
        sum over series and reference years of (B^2 - explained) and of
        [(sum mu)^2 - sum mu^2] (1 -+ h): sigma^2 = max(0, num / den).
    n_series : int
    n_years : int
        Complete reference years (the most any series has).
    e_total, d_total : ndarray [T]
        Residual and null variance of the panel total on the reference weeks (for c of the total).
    p_year : int
        Year-level parameters the baseline fits (2 with a trend, 1 without, 0 out of sample).
    """

    num: float
    den: float
    n_series: int
    n_years: int
    e_total: FloatArray
    d_total: FloatArray
    p_year: int

    @property
    def sigma2(self) -> float:
        """sigma^2 of the relative year effect (0 when it cannot be estimated)."""
        if self.den <= 0 or not np.isfinite(self.num) or self.n_years < MIN_YEARS:
            return 0.0
        return max(self.num / self.den, 0.0)

    @property
    def c_total(self) -> float:
        """Cross-series inflation of the panel total (>= 1)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            u2 = self.e_total**2 / self.d_total
        u2 = u2[np.isfinite(u2)]
        return max(float(u2.mean()), 1.0) if u2.size else 1.0

    @property
    def df(self) -> float:
        """Degrees of freedom of sigma^2: n_eff (n_years - p_year), n_eff = S / c_total in [1, S]."""
        n_eff = min(max(self.n_series / self.c_total, 1.0), float(max(self.n_series, 1)))
        return n_eff * max(self.n_years - self.p_year, 1)

    @staticmethod
    def merge(parts: list[YearEffect]) -> YearEffect:
        """Sum the moments of several partitions of the series (exact)."""
        first = parts[0]
        return YearEffect(
            num=float(sum(p.num for p in parts)),
            den=float(sum(p.den for p in parts)),
            n_series=int(sum(p.n_series for p in parts)),
            n_years=int(max(p.n_years for p in parts)),
            e_total=np.sum([p.e_total for p in parts], axis=0),
            d_total=np.sum([p.d_total for p in parts], axis=0),
            p_year=first.p_year,
        )


def _year_blocks(weeks: pd.DatetimeIndex, resid_weeks: BoolArray) -> list[np.ndarray]:
    """Positions of each calendar year's reference residual weeks (years holding enough of them)."""
    years = np.asarray(weeks.year)
    found = [np.flatnonzero((years == y) & resid_weeks) for y in np.unique(years[resid_weeks])]
    if not found:
        return []
    # a year counts when it holds most of the residual weeks a year has (52 for a whole-year fit,
    # about 22 for EuroMOMO's spring and autumn weeks)
    full = max(pos.size for pos in found)
    return [pos for pos in found if pos.size >= YEAR_COVERAGE * full]


def year_leverage(
    result: BaselineResult, ref_years: FloatArray, target_years: FloatArray
) -> FloatArray:
    """h of target years in the year-level regression the baseline implies (see the module doc)."""
    kind, n_avg = result.year_model()
    target = np.asarray(target_years, dtype=np.float64)
    n = max(len(ref_years), 1)
    if kind in ("average", "loyo"):
        return np.full(target.shape, 1.0 / float(n_avg or 5))
    if kind == "trend" and n >= 2:
        centre = float(np.mean(ref_years))
        sxx = float(np.sum((np.asarray(ref_years) - centre) ** 2))
        return 1.0 / n + (target - centre) ** 2 / sxx
    return np.full(target.shape, 1.0 / n)


@dataclass
class GroupSums:
    """What the dependence model of a view needs, as sums over each group's series (they add
    exactly across Dask partitions of the series; :meth:`merge`).

    Attributes
    ----------
    resid, obs, fitted, mu, root : ndarray [G, T]
        sum (y - mu) on the residual weeks (NaN where a member lacks one), sum phi mu, the variance
        of the fitted sum, sum mu, sum sqrt(phi mu). With every group one series, the kernels leave
        ``root`` None (it is sqrt(obs): :meth:`root_sums`) and ``mu`` is the result's own array.
    members : ndarray [G]
    phi : ndarray [G]
        sum of the members' phi (for a single series under a shared phi).
    resid_weeks : ndarray [T] of bool
        Weeks with any residual.
    year_fitted : ndarray [Y, G]
        Variance of the fitted sum over each calendar year's residual weeks (``years``).
    years : ndarray [Y]
    """

    resid: FloatArray
    obs: FloatArray
    fitted: FloatArray
    mu: FloatArray
    root: FloatArray | None
    members: FloatArray
    phi: FloatArray
    resid_weeks: BoolArray
    year_fitted: FloatArray
    years: FloatArray

    @staticmethod
    def of(
        result: BaselineResult,
        deaths: FloatArray,
        weeks: pd.DatetimeIndex,
        groups: IntArray | None = None,
        n_groups: int | None = None,
    ) -> GroupSums:
        """The sums of one panel (or partition); ``groups=None``: every series its own group.

        One pass over the series (:func:`excessmort._kernels.dependence_sums`); a per-series GLM's
        fitted variances (weekly and over each year) come from the same kernels, without [S, T]
        temporaries; other baselines' from their own methods."""
        from ._kernels import dependence_engine, dependence_sums, glm_year_fitted
        from .baselines._base import BaselineResult as Base
        from .baselines._util import group_sum

        n_series = result.mu.shape[0]
        result, deaths = result.dependence_view(deaths)
        engine = dependence_engine(str(getattr(result, "engine", "auto")), result.mu.size)
        if groups is None:
            groups = np.arange(n_series, dtype=np.int64)
            n_groups = n_series
        assert n_groups is not None
        groups = np.asarray(groups, dtype=np.int64)
        keep = groups >= 0
        spare = np.where(keep, groups, n_groups)
        fast = engine == "numba"
        own_mask = fast and type(result).residual_mask is Base.residual_mask
        phi_mu = fast and type(result).obs_variance is Base.obs_variance
        glm = fast and _plain_glm(result)
        phi_s = np.asarray(result.dispersion, dtype=np.float64)
        resid, obs, mu, root, fitted, resid_weeks = dependence_sums(
            deaths,
            result.mu,
            result.fit_mask if own_mask else result.residual_mask(),
            own_mask,
            None if phi_mu else result.obs_variance(),
            phi_s,
            result.q if glm else None,  # type: ignore[attr-defined]
            groups,
            n_groups,
            engine=engine,
        )
        if fitted is None:
            fitted = result.fitted_variance_weekly(spare, n_groups + 1)[:n_groups]
        cal = np.asarray(weeks.year, dtype=np.float64)
        years = np.unique(cal)
        year_fitted = np.zeros((years.size, n_groups))
        if glm:
            year_of = np.where(resid_weeks, np.searchsorted(years, cal), -1)
            per_series = glm_year_fitted(
                result.mu,
                result.design.X,  # type: ignore[attr-defined]
                result.cov_unscaled,  # type: ignore[attr-defined]
                phi_s,
                year_of,
                years.size,
                engine=engine,
            )
            present = np.isin(np.arange(years.size), year_of)  # years without a residual week: 0
            year_fitted[present] = group_sum(per_series[present].T[keep], groups[keep], n_groups).T
        else:
            for j, y in enumerate(years):
                window = (cal == y) & resid_weeks
                if window.any():
                    year_fitted[j] = result.fitted_variance_window(spare, n_groups + 1, window)[
                        :n_groups
                    ]
        return GroupSums(
            resid=resid,
            obs=obs,
            fitted=fitted,
            mu=mu,
            root=root,
            members=np.bincount(groups[keep], minlength=n_groups).astype(np.float64),
            phi=np.bincount(groups[keep], weights=phi_s[keep], minlength=n_groups),
            resid_weeks=resid_weeks,
            year_fitted=year_fitted,
            years=years,
        )

    def root_sums(self) -> FloatArray:
        """sum sqrt(phi mu) [G, T] (formed from ``obs`` when every group is one series)."""
        return np.sqrt(self.obs) if self.root is None else self.root

    def stacked(self) -> tuple[FloatArray, FloatArray]:
        """([5, G, T] weekly sums, [2 + Y, G] per-group sums) for merging by group keys."""
        weekly = np.stack([self.resid, self.obs, self.fitted, self.mu, self.root_sums()])
        per_group = np.vstack([self.members[None], self.phi[None], self.year_fitted])
        return weekly, per_group

    @staticmethod
    def from_stacked(
        weekly: FloatArray, per_group: FloatArray, resid_weeks: BoolArray, years: FloatArray
    ) -> GroupSums:
        """Inverse of :meth:`stacked` (after the sums of several partitions were added)."""
        return GroupSums(
            resid=weekly[0],
            obs=weekly[1],
            fitted=weekly[2],
            mu=weekly[3],
            root=weekly[4],
            members=per_group[0],
            phi=per_group[1],
            resid_weeks=resid_weeks,
            year_fitted=per_group[2:],
            years=years,
        )


def _plain_glm(result: Any) -> bool:
    """A per-series GLM whose fitted variances are phi mu^2 x'(X'WX)^-1 x (weekly) and phi g'Vg
    (over weeks) as :class:`excessmort.baselines.glm.GLMResult` defines them."""
    from .baselines._base import BaselineResult as Base
    from .baselines.glm import GLMResult

    cls = type(result)
    return (
        isinstance(result, GLMResult)
        and cls.param_variance_weekly is GLMResult.param_variance_weekly
        and cls.param_variance_window is GLMResult.param_variance_window
        and cls.fitted_variance_weekly is Base.fitted_variance_weekly
        and cls.fitted_variance_window is Base.fitted_variance_window
        and result.design is not None
        and result.cov_unscaled is not None
        and np.ndim(result.cov_unscaled) == 3
    )


def _engine_of(result: Any) -> str:
    """The result's engine (each dispatcher then picks numpy for small calls)."""
    return str(getattr(result, "engine", "auto"))


def _serial(
    sums: GroupSums, result: BaselineResult, single_c: str
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """(c_raw, c, rho, a, phi, n) of the groups: parts 1-2 of the module docstring.

    Computed once per (sums, result): the year effect and the dependence model of a view both
    need it (the arrays returned are shared; callers do not modify them)."""
    memo = sums.__dict__.get("_serial_memo")
    if memo is not None and memo[0] is result and memo[1] == single_c:
        return memo[2]  # type: ignore[no-any-return]
    out = _serial_parts(sums, result, single_c)
    object.__setattr__(sums, "_serial_memo", (result, single_c, out))
    return out


def _serial_parts(
    sums: GroupSums, result: BaselineResult, single_c: str
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """One pass per group row (:func:`excessmort._kernels.serial_model`): the standardised
    residuals u = e / sqrt(d), their mean square, autocorrelation and ARMA(1, 1) grid fit."""
    from ._kernels import serial_model

    k = np.arange(1, MAX_LAG + 1)
    basis = _PHI_GRID[:, None] ** (k[None, :] - 1)  # [P, L], as arma_fit
    n, c_raw, c, rho, a, phi = serial_model(
        sums.resid,
        sums.obs,
        sums.fitted,
        result.residuals_in_sample,
        sums.members,
        sums.phi,
        result.shared_dispersion,
        basis,
        np.sum(basis * basis, axis=1),
        _PHI_GRID,
        engine=_engine_of(result),
    )
    return c_raw, c, rho, a, phi, n


def year_effect_from_sums(
    sums: GroupSums, result: BaselineResult, weeks: pd.DatetimeIndex
) -> YearEffect:
    """Part 3 of the module docstring from the groups' sums (pooled over the groups)."""

    from ._kernels import column_totals, year_moments

    in_sample = result.residuals_in_sample
    _, c, rho, a, phi, n = _serial(sums, result, "own")
    pf = c * long_run_factor(rho, a, phi, n)
    blocks, ref_years, h, p_year = _year_setup(result, weeks, sums.resid_weeks)
    year_row = {float(y): j for j, y in enumerate(sums.years)}
    rows = [year_row[float(y)] for y in ref_years]
    # out of sample (a five-year average), the residual carries the average's own error too
    engine = _engine_of(result)
    num, den = year_moments(
        sums.resid,
        sums.obs,
        sums.fitted,
        sums.mu,
        in_sample,
        c,
        rho,
        a,
        phi,
        pf,
        blocks,
        h,
        sums.year_fitted[rows] if rows else np.zeros((0, c.size)),
        YEAR_COVERAGE,
        engine=engine,
    )
    e_sum, d_total = column_totals(sums.resid, sums.obs, sums.fitted, in_sample, c, engine=engine)
    return _year_effect(
        num, den, sums.members.size, blocks, e_sum, d_total, sums.resid_weeks, p_year
    )


def _year_setup(
    result: BaselineResult, weeks: pd.DatetimeIndex, resid_weeks: BoolArray
) -> tuple[list[np.ndarray], FloatArray, FloatArray, int]:
    """(year blocks, their years, the years' leverage h, year-level parameters) of part 3."""
    kind, _ = result.year_model()
    # leave-one-year-out residuals ("loyo") spend one year-level degree of freedom on their mean
    p_year = 0 if kind == "average" else (2 if kind == "trend" else 1)
    blocks = _year_blocks(weeks, resid_weeks)
    ref_years = np.array([weeks.year[b[0]] for b in blocks], dtype=np.float64)
    h = np.asarray(year_leverage(result, ref_years, ref_years), dtype=np.float64)
    return blocks, ref_years, h, p_year


def _year_effect(
    num: float,
    den: float,
    n_rows: int,
    blocks: list[np.ndarray],
    e_sum: FloatArray,
    d_total: FloatArray,
    resid_weeks: BoolArray,
    p_year: int,
) -> YearEffect:
    e_total = np.where(resid_weeks, e_sum, np.nan)
    # d_total: the rows' own variances (c d), against which the total's shows their dependence
    return YearEffect(
        num=num,
        den=den,
        n_series=int(n_rows),
        n_years=len(blocks),
        e_total=e_total,
        d_total=d_total,
        p_year=p_year,
    )


def series_dependence(
    result: BaselineResult,
    deaths: FloatArray,
    weeks: pd.DatetimeIndex,
    year: YearEffect | None = None,
) -> tuple[YearEffect, Dependence]:
    """(year effect, dependence model) of the series, every series its own group: what
    :func:`year_effect_from_sums` (unless ``year`` is given) and :func:`dependence_from_sums` of
    ``GroupSums.of(result, deaths, weeks)`` give, the same numbers.

    With the numba engine the group sums are never formed (they are the series' own arrays): the
    ``own_*`` kernels of :mod:`excessmort._kernels.dependence` form each row's residuals, null and
    fitted variances where they read them, in one pass for the serial model, one over the
    reference years' weeks for the year moments and one for the column totals."""
    from ._kernels import (
        SeriesRows,
        dependence_engine,
        own_column_totals,
        own_serial_model,
        own_year_moments,
    )
    from .baselines._base import BaselineResult as Base

    view, counts = result.dependence_view(deaths)
    engine = dependence_engine(_engine_of(view), view.mu.size)
    if engine != "numba":
        sums = GroupSums.of(result, deaths, weeks)
        if year is None:
            year = year_effect_from_sums(sums, result, weeks)
        return year, dependence_from_sums(sums, year, result, weeks)
    n_series = view.mu.shape[0]
    own_mask = type(view).residual_mask is Base.residual_mask
    glm = _plain_glm(view)
    phi_s = np.asarray(view.dispersion, dtype=np.float64)
    spare = np.arange(n_series, dtype=np.int64)  # GroupSums.of's groups, with an empty spare
    rows = SeriesRows(
        deaths=counts,
        mu=view.mu,
        mask=view.fit_mask if own_mask else view.residual_mask(),
        finite_mu=own_mask,
        obs=None if type(view).obs_variance is Base.obs_variance else view.obs_variance(),
        phi=phi_s,
        q=view.q if glm else None,  # type: ignore[attr-defined]
        fitted=None if glm else view.fitted_variance_weekly(spare, n_series + 1)[:n_series],
    )
    in_sample = result.residuals_in_sample
    k = np.arange(1, MAX_LAG + 1)
    basis = _PHI_GRID[:, None] ** (k[None, :] - 1)  # [P, L], as arma_fit
    n, _, c, rho, a, phi, resid_weeks = own_serial_model(
        rows,
        in_sample,
        result.shared_dispersion,
        basis,
        np.sum(basis * basis, axis=1),
        _PHI_GRID,
        engine=engine,
    )
    if year is None:
        pf = c * long_run_factor(rho, a, phi, n)
        blocks, ref_years, h, p_year = _year_setup(result, weeks, resid_weeks)
        year_fitted = None
        quad = None
        if glm:
            # each block's fitted variance is formed by the year kernel on the way
            quad = (view.design.X, view.cov_unscaled)  # type: ignore[attr-defined]
        else:
            cal = np.asarray(weeks.year, dtype=np.float64)
            year_fitted = np.zeros((len(blocks), n_series))
            for i, y in enumerate(ref_years):
                window = (cal == y) & resid_weeks
                year_fitted[i] = view.fitted_variance_window(spare, n_series + 1, window)[:n_series]
        num, den = own_year_moments(
            rows, in_sample, c, rho, a, phi, pf, blocks, h, year_fitted, YEAR_COVERAGE,
            quad=quad, engine=engine,
        )  # fmt: skip
        e_sum, d_total = own_column_totals(rows, in_sample, c, engine=engine)
        year = _year_effect(num, den, n_series, blocks, e_sum, d_total, resid_weeks, p_year)
    members = np.ones(n_series, dtype=np.int64)
    return year, _dependence_model(c, rho, a, phi, n, members, year, result, weeks, resid_weeks)


def estimate_year_effect(
    result: BaselineResult,
    deaths: FloatArray,
    weeks: pd.DatetimeIndex,
    groups: IntArray | None = None,
    n_groups: int | None = None,
) -> YearEffect:
    """Moments of the relative year effect over the series of one panel or, with ``groups`` (id
    per series, -1 left out), over the groups of a view: each row's in-sample yearly sums beyond
    what its own cross-series and serial model (parts 1-2) explains."""
    if groups is None:
        return series_dependence(result, deaths, weeks)[0]
    return year_effect_from_sums(
        GroupSums.of(result, deaths, weeks, groups, n_groups), result, weeks
    )


# ---------------------------------------------------------------------------------------- groups
@dataclass
class Dependence:
    """The dependence model of the groups of one view (a single series is its own group).

    Attributes
    ----------
    c : ndarray [G]
        Cross-series inflation of the weekly sum (1 for a single series).
    rho : ndarray [G, L]
        Autocorrelation of the group's standardised residuals at lags 1..L (estimated).
    a, phi : ndarray [G]
        Its ARMA(1, 1) tail A phi^(k-1) beyond lag L.
    n_weeks : ndarray [G]
        Reference residual weeks it rests on.
    members : ndarray [G]
        Series in the group.
    param_factor : ndarray [G]
        c f(n): the multiplier of g' V g.
    short : ndarray [G] of bool
        Too little reference to estimate (full correlation over weeks assumed).
    year : YearEffect
    ref_years : ndarray
        The complete reference years (for the leverage of year effects).
    fitted_weeks : ndarray [T] of bool, optional
        Weeks with a reference residual (inside the fit); weekly parameter variances are inflated
        outside them only.
    """

    c: FloatArray
    rho: FloatArray
    a: FloatArray
    phi: FloatArray
    n_weeks: FloatArray
    members: IntArray
    param_factor: FloatArray
    short: BoolArray
    year: YearEffect
    ref_years: FloatArray
    result: Any = field(default=None, repr=False)
    fitted_weeks: BoolArray | None = field(default=None, repr=False)

    # ------------------------------------------------------------------ weekly rows
    def weekly(
        self,
        obs_var: FloatArray,
        param_var: FloatArray,
        mu: FloatArray | None = None,
        weeks: pd.DatetimeIndex | None = None,
        param_floor: FloatArray | None = None,
    ) -> tuple[FloatArray, FloatArray]:
        """Weekly variances of the groups [G, T]: c obs and, in weeks outside the fit, c f(n) g'Vg
        for aggregates (inside it g'Vg: module doc, part 4); a single series keeps phi mu and x'Vx
        (the model's own weekly interval), except under a phi and coefficients shared by all series
        (the pooled model), where phi becomes the series' own c phi and g'Vg takes the shared
        coefficients' factor outside the fit."""
        multi = self.members > 1
        shared = bool(getattr(self.result, "shared_dispersion", False))
        rows = multi | shared
        c = np.where(rows, self.c, 1.0)[:, None]
        param_outside = param_var * np.where(rows, self.param_factor, 1.0)[:, None]
        if param_floor is not None:
            # shared coefficients: never below their sandwich (module doc, part 4)
            param_outside = np.fmax(param_outside, param_floor)
        inside = self.fitted_weeks
        if inside is not None and inside.shape[0] == obs_var.shape[1]:
            param_var = np.where(inside[None, :], param_var, param_outside)
        else:
            param_var = param_outside
        obs = obs_var * c
        if mu is not None and weeks is not None and self.year.sigma2 > 0:
            # outside the reference years a week's level also carries the year effects the fit
            # absorbed (in-sample residuals show (1 - h) of them, a new year (1 + h)): 2 h sigma^2 mu^2
            years = np.asarray(weeks.year, dtype=np.float64)
            h = year_leverage(self.result, self.ref_years, years)
            outside = ~np.isin(years, self.ref_years)
            extra = self.year.sigma2 * np.where(outside, 2.0 * h, 0.0)[None, :] * mu * mu
            obs = obs + np.where((rows & ~self.short)[:, None], extra, 0.0)
        return obs, param_var

    # ------------------------------------------------------------------ windows
    def running(
        self,
        obs_var: FloatArray,
        mu: FloatArray,
        param_var: FloatArray,
        weeks: pd.DatetimeIndex,
        level: float,
        engine: str = "auto",
        param_weekly: FloatArray | None = None,
        param_floor: FloatArray | None = None,
    ) -> tuple[FloatArray, FloatArray, dict[str, FloatArray]]:
        """Variances of the running sums over the weeks of a window, [G, K] each.

        ``obs_var``, ``mu`` [G, K] are the groups' weekly sum phi mu and mu over the K weeks of the
        window (consecutive calendar weeks), ``param_var`` [G, K] the running g' V g (and
        ``param_weekly`` [G, K] the weekly one, used when the residuals are out of sample). Returns the
        observation and parameter variances, both multiplied by (t_nu / z)^2 when a year part is
        present (Student-t quantile with Satterthwaite's nu), and the parts.
        """
        from ._kernels import running_variance

        short = self.short
        a = np.where(short, 1.0, self.a)
        phi = np.where(short, 1.0, self.phi)
        rho = np.where(short[:, None], 1.0, self.rho)
        out_of_sample = param_weekly is not None and not self.result.residuals_in_sample
        if out_of_sample:
            # the residuals were out of sample: their autocorrelation is that of y - mu whole
            s = np.sqrt(self.c[:, None] * (obs_var + param_weekly))
            param = np.zeros_like(param_var)
        else:
            s = np.sqrt(self.c[:, None] * obs_var)
            param = param_var * self.param_factor[:, None]
            if param_floor is not None:
                param = np.fmax(param, param_floor)
        serial = running_variance(s, rho, a, phi, engine=engine)
        year = self._year_running(mu, weeks)
        year = np.where(short[:, None], 0.0, year)
        mult = self._t_factor(serial + param, year, level)
        obs_out = (serial + year) * mult
        param_out = param * mult
        return (
            obs_out,
            param_out,
            {"serial": serial, "year": year, "param": param, "t_factor": mult},
        )

    def total(
        self,
        obs_var: FloatArray,
        mu: FloatArray,
        param_var: FloatArray,
        weeks: pd.DatetimeIndex,
        level: float,
        engine: str = "auto",
        param_weekly: FloatArray | None = None,
        param_floor: FloatArray | None = None,
        *,
        obs_scale: FloatArray | None = None,
        cols: slice | None = None,
    ) -> tuple[FloatArray, FloatArray]:
        """The observation and parameter variances [G] of the sums over all K weeks of the window:
        the last column of :meth:`running` (``param_var``, ``param_floor`` [G] of the whole window;
        ``param_weekly`` [G, K] only when the residuals are out of sample), without its [G, K]
        running parts (one kernel pass per row, the year part per calendar year of the window).

        ``cols`` (a slice of consecutive weeks): ``obs_var`` and ``mu`` are [G, T] and the window
        is their columns ``cols``, read in place; ``obs_scale`` [G]: the weekly observation
        variances are ``obs_scale * obs_var`` (a per-series phi mu, never formed)."""
        from ._kernels import window_serial_total

        rho, a, phi = self._serial_parts()
        out_of_sample = param_weekly is not None and not self.result.residuals_in_sample
        if cols is not None or obs_scale is not None:
            window = slice(None) if cols is None else cols
            mu = mu[:, window]
            if out_of_sample:  # the weekly parts are added before the kernel: form them
                scale = 1.0 if obs_scale is None else np.asarray(obs_scale)[:, None]
                obs_var = scale * obs_var[:, window]
        if out_of_sample:
            serial = window_serial_total(obs_var, param_weekly, self.c, rho, a, phi, engine=engine)
            param = np.zeros_like(param_var)
        else:
            serial = window_serial_total(
                obs_var, None, self.c, rho, a, phi, engine=engine, scale=obs_scale, cols=cols
            )
            param = param_var * self.param_factor
            if param_floor is not None:
                param = np.fmax(param, param_floor)
        year = np.where(self.short, 0.0, self._year_total(mu, weeks))
        mult = self._t_factor(serial + param, year, level)
        return (serial + year) * mult, param * mult

    def _serial_parts(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        """(rho, A, phi) of the serial model, full correlation (1) for the short rows."""
        short = self.short
        return (
            np.where(short[:, None], 1.0, self.rho),
            np.where(short, 1.0, self.a),
            np.where(short, 1.0, self.phi),
        )

    def _t_factor(self, base: FloatArray, year: FloatArray, level: float) -> FloatArray:
        """(t_nu / z)^2 with Satterthwaite's nu where there is a year part, else 1."""
        sigma_df = self.year.df
        with np.errstate(invalid="ignore", divide="ignore"):
            nu = np.where(year > 0, sigma_df * (1.0 + base / year) ** 2, np.inf)
            q = 0.5 + level / 2.0
            # the Student-t quantile only where there is a year part (t.ppf is costly per element)
            mult = np.ones(np.shape(nu))
            finite = np.isfinite(nu)
            if finite.any():
                mult[finite] = (
                    stats.t.ppf(q, np.minimum(nu[finite], 1e9)) / stats.norm.ppf(q)
                ) ** 2
        return mult

    def _year_total(self, mu: FloatArray, weeks: pd.DatetimeIndex) -> FloatArray:
        """The last column of :meth:`_year_running`: sigma^2 sum_y [(1 + h_y) M_y^2 - Q_y] [G]."""
        sigma2 = self.year.sigma2
        n_rows, n_weeks = mu.shape
        if sigma2 <= 0 or n_weeks == 0:
            return np.zeros(n_rows)
        years = np.asarray(weeks.year)
        starts = np.r_[True, years[1:] != years[:-1]]
        first = np.flatnonzero(starts)
        h = year_leverage(self.result, self.ref_years, years[starts].astype(np.float64))
        m = np.add.reduceat(mu, first, axis=1)
        qq = np.add.reduceat(mu * mu, first, axis=1)
        return np.sum(sigma2 * ((1.0 + h)[None, :] * m * m - qq), axis=1)

    def _year_running(self, mu: FloatArray, weeks: pd.DatetimeIndex) -> FloatArray:
        """sigma^2 sum_y [(1 + h_y) M_y^2 - Q_y] over the years of every running window."""
        sigma2 = self.year.sigma2
        n_rows, n_weeks = mu.shape
        if sigma2 <= 0 or n_weeks == 0:
            return np.zeros((n_rows, n_weeks))
        years = np.asarray(weeks.year)
        starts = np.r_[True, years[1:] != years[:-1]]
        seg = np.cumsum(starts) - 1
        h = year_leverage(self.result, self.ref_years, years[starts].astype(np.float64))[seg]
        cm = np.cumsum(mu, axis=1)
        cq = np.cumsum(mu * mu, axis=1)
        first = np.flatnonzero(starts)
        base_m = np.where(first[seg] > 0, cm[:, np.maximum(first[seg] - 1, 0)], 0.0)
        base_q = np.where(first[seg] > 0, cq[:, np.maximum(first[seg] - 1, 0)], 0.0)
        m = cm - base_m
        qq = cq - base_q
        part = sigma2 * ((1.0 + h)[None, :] * m * m - qq)
        ends = np.r_[first[1:] - 1, n_weeks - 1]
        done = np.zeros((n_rows, n_weeks))
        finals = part[:, ends]  # [G, n_years]
        before = np.cumsum(finals, axis=1) - finals  # years before each segment
        done = before[:, seg]
        return done + part


def dependence_from_sums(
    sums: GroupSums, year: YearEffect, result: BaselineResult, weeks: pd.DatetimeIndex
) -> Dependence:
    """The dependence model of the groups from their sums (parts 1, 2 and 4)."""
    _, c, rho, a, phi, n = _serial(sums, result, "own")
    members = sums.members.astype(np.int64)
    too_few = (n < MIN_WEEKS // 4) & (members > 1)
    if too_few.any():
        # c cannot be estimated: Cauchy-Schwarz bounds the weekly sum's variance by
        # (sum_s sqrt(phi_s mu_st))^2, i.e. c <= mean_t (sum sqrt(phi mu))^2 / sum phi mu.
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            bound = np.nanmean(sums.root_sums() ** 2 / sums.obs, axis=1)
        c = np.where(too_few, np.maximum(c, np.nan_to_num(bound, nan=1.0)), c)
    return _dependence_model(c, rho, a, phi, n, members, year, result, weeks, sums.resid_weeks)


def _dependence_model(
    c: FloatArray,
    rho: FloatArray,
    a: FloatArray,
    phi: FloatArray,
    n: FloatArray,
    members: IntArray,
    year: YearEffect,
    result: BaselineResult,
    weeks: pd.DatetimeIndex,
    resid_weeks: BoolArray,
) -> Dependence:
    """The :class:`Dependence` of rows with their serial model (parts 1, 2 and 4)."""
    short = (n < MIN_WEEKS) | (year.n_years < MIN_YEARS)
    if result.residuals_in_sample:
        pf = np.where(short, c, c * long_run_factor(rho, a, phi, n))
    else:
        # out-of-sample residuals already carry the baseline's own error and its serial sharing:
        # the window's whole variance comes from their autocorrelation (see ``running``)
        pf = c.copy()
    blocks = _year_blocks(weeks, resid_weeks)
    ref_years = np.array([weeks.year[b[0]] for b in blocks], dtype=np.float64)
    return Dependence(
        c=c,
        rho=rho,
        a=a,
        phi=phi,
        n_weeks=n,
        members=members,
        param_factor=pf,
        short=short,
        year=year,
        ref_years=ref_years,
        result=result,
        fitted_weeks=np.asarray(resid_weeks, dtype=bool),
    )


def estimate_groups(
    result: BaselineResult,
    deaths: FloatArray,
    groups: IntArray,
    n_groups: int,
    year: YearEffect,
    weeks: pd.DatetimeIndex,
) -> Dependence:
    """The dependence model of ``n_groups`` groups of series (group id per series, -1 left out)."""
    return dependence_from_sums(
        GroupSums.of(result, deaths, weeks, groups, n_groups), year, result, weeks
    )


def shared_coefficient_cov(result: Any, deaths: FloatArray, max_lag: int = MAX_LAG) -> FloatArray:
    """[p, p]: the covariance of coefficients shared by several series (the pooled model) under
    residual dependence across series and weeks: the Driscoll-Kraay (1998) sandwich
    B^-1 M B^-1 with B = X'WX (``cov_unscaled`` = B^-1) and M the Bartlett-weighted (bandwidth
    ``max_lag``, a quarter) long-run covariance of the weekly scores S_t = sum_s x_st (y_st - mu_st)
    over the reference weeks (module doc, part 4); statsmodels' ``cov_type="hac-groupsum"``.

    Summing the scores over series within a week carries any cross-series dependence, the lags
    carry the serial one; it is invariant to the parametrisation of the design (an intercept and
    the strata's levels keep their compensating covariances). With x_stj = z_t,col(j) for the
    series that use column j, S_tj = z_t,col(j) R_jt, R_jt the residuals summed over those series
    (``column_sums``): O(S m T) for the sums and O(T p^2 L) for M, never S x S or T x T.
    """
    from .baselines.pooled import _single_threaded_blas

    rmask = result.residual_mask()
    design = result.design
    r = result.column_sums(np.where(rmask, deaths - result.mu, 0.0))  # [p, T]
    weeks = np.any(rmask, axis=0)
    score = np.ascontiguousarray((design.Z[:, design.col_cal].T * r)[:, weeks])  # [p, n]
    n = score.shape[1]
    bread = np.asarray(result.cov_unscaled, dtype=np.float64)
    with _single_threaded_blas():  # p x p products: waking BLAS threads costs more than the work
        meat = score @ score.T
        for k in range(1, min(max_lag, n - 1) + 1):
            cross = score[:, k:] @ score[:, : n - k].T
            meat += (1.0 - k / (max_lag + 1.0)) * (cross + cross.T)
        return np.asarray(bread @ meat @ bread)


# ---------------------------------------------------------------------------------------- labels
def describe_interval(result: BaselineResult, dependence: bool) -> dict[str, Any]:
    """What the intervals of a fit contain: a dict for ``attrs`` and the display header."""
    applies = dependence and result.dependence_applies
    param = result.has_parameter_uncertainty
    parts = []
    if param:
        parts.append("parameter uncertainty" + (" (inflated for dependence)" if applies else ""))
    parts.append("overdispersion (phi)")
    if applies:
        parts += [
            "cross-series dependence (estimated)",
            "autocorrelation (ARMA(1,1), estimated)",
            "year effects (estimated, Student-t)",
        ]
    else:
        parts.append("series and weeks assumed independent")
    return {
        "rule": result.interval_rule,
        "parameter_uncertainty": bool(param),
        "overdispersion": True,
        "cross_series_dependence": bool(applies),
        "autocorrelation": bool(applies),
        "year_effects": bool(applies),
        "text": "; ".join(parts),
    }
