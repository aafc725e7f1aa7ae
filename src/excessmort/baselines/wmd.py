"""The World Mortality Dataset's baseline (Karlinsky & Kobak 2021, eLife 10:e69336).

Per series, ordinary least squares on the weeks of the reference period::

    deaths_t = b0 + b1 (year_t - 2000) + sum_{w=2..52} c_w [week_t = w] + e_t,   var(e_t) = sigma^2

with ``year_t`` the ISO year and ``week_t`` the ISO week of the week-ending date, week 53 treated as
week 52. No offset, no population.

Intervals (normal, on the count scale):

- expected: mu -+ z sqrt(x' V x), V = sigma^2 (X'X)^-1 with sigma^2 = RSS / (n - p);
- prediction (observed): mu -+ z sqrt(sigma^2 + x' V x), excess = y minus those bounds;
- a sum over weeks W (and series): var = g' V g + |W| sigma^2 with g = sum_{t in W} x_t, the full
  covariance of the coefficients across weeks (the year term and the week effects are shared by
  the predictions of every week, so weekly variances are not added);
- series are fitted independently: variances of sums over series add.

Every series observed in all reference weeks shares one design, so one solve serves them all;
series with missing weeks get their own normal equations in the same batched solve.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
from scipy import stats

from .._typing import BoolArray, FloatArray, IntArray
from ..design import DesignMatrix
from ..exceptions import InputError
from ..weeks import iso_year_week, reference_mask
from ._base import Baseline, BaselineResult
from ._util import group_sum

if TYPE_CHECKING:
    from .._typing import Engine
    from ..panel import Panel

__all__ = ["WMD", "WMDResult", "wmd_design"]


def wmd_design(weeks: pd.DatetimeIndex) -> DesignMatrix:
    """Columns intercept, year, week2..week52 (ISO week, 53 as 52) for the weeks [T].

    ``year`` is the ISO year minus 2000 (the fit is the same as on the year itself, only the
    intercept moves, and the cross-product stays well conditioned).

    Examples
    --------
    >>> d = wmd_design(pd.DatetimeIndex(["2020-12-25", "2021-01-01", "2021-01-08"]))
    >>> d.X[:, [1, 52]].tolist()  # year - 2000; week 52 indicator (2020 w52 and w53)
    [[20.0, 1.0], [20.0, 1.0], [21.0, 0.0]]
    """
    weeks = pd.DatetimeIndex(weeks)
    year, week = iso_year_week(weeks)
    week = np.minimum(week, 52)
    X = np.zeros((len(weeks), 53))
    X[:, 0] = 1.0
    X[:, 1] = year.astype(np.float64) - 2000.0
    rows = np.flatnonzero(week >= 2)
    X[rows, week[rows]] = 1.0  # column w for week w = 2..52
    names = ("intercept", "year", *(f"week{w}" for w in range(2, 53)))
    return DesignMatrix(X=np.ascontiguousarray(X), names=names, weeks=weeks)


@dataclass(eq=False)
class WMDResult(BaselineResult):
    """OLS coefficients and covariance per series; see the module docstring.

    ``sigma2`` [S] is the residual variance; ``dispersion`` is sigma^2 / mean(mu over the fitted
    weeks), an index of dispersion comparable with a quasi-Poisson phi (for display and checks).
    """

    #: One fit per series: a group's variances are sums of its series' own.
    additive_variance: ClassVar[bool] = True

    design: DesignMatrix | None = None
    coef: FloatArray | None = None  # [S, p]
    cov_patterns: FloatArray | None = None  # [K, p, p] (X'X)^-1 of each pattern of fitted weeks
    pattern: IntArray | None = None  # [S] the pattern of each series
    sigma2: FloatArray | None = None  # [S]

    #: One (X'X)^-1 per pattern of fitted weeks, shared by the series with that pattern.
    _shared_fields: ClassVar[tuple[str, ...]] = ("cov_patterns",)

    def obs_variance(self) -> FloatArray:
        """sigma^2 for every week [S, T] (NaN where mu is)."""
        assert self.sigma2 is not None
        return np.where(np.isnan(self.mu), np.nan, self.sigma2[:, None])

    @property
    def q(self) -> FloatArray:
        """x_t' (X'X)_s^-1 x_t [S, T]."""
        assert self.design is not None and self.cov_patterns is not None
        assert self.pattern is not None
        X = self.design.X
        per_pattern = np.einsum("tj,kjl,tl->kt", X, self.cov_patterns, X, optimize=True)
        return per_pattern[self.pattern]

    def _gvg(self, G: FloatArray) -> FloatArray:
        """g_i' (X'X)_s^-1 g_i for rows g_i of G [K, p]: [S, K]."""
        assert self.cov_patterns is not None and self.pattern is not None
        per_pattern = np.einsum("ij,kjl,il->ki", G, self.cov_patterns, G, optimize=True)
        return per_pattern[self.pattern]

    def param_variance_weekly(self, groups: IntArray, n_groups: int) -> FloatArray:
        """sum_{s in g} sigma_s^2 x_t' (X'X)_s^-1 x_t: [G, T]."""
        assert self.sigma2 is not None
        return group_sum(self.sigma2[:, None] * self.q, groups, n_groups)

    def param_variance_window(
        self, groups: IntArray, n_groups: int, weeks: BoolArray
    ) -> FloatArray:
        """sum_{s in g} sigma_s^2 g' (X'X)_s^-1 g, g = sum_{t in weeks} x_t: [G]."""
        assert self.design is not None and self.sigma2 is not None
        g = self.design.X[weeks].sum(axis=0)
        per_series = self.sigma2 * self._gvg(g[None, :])[:, 0]
        per_series = np.where(np.isnan(self.mu[:, weeks]).any(axis=1), np.nan, per_series)
        return group_sum(per_series, groups, n_groups)

    def param_variance_running(
        self, groups: IntArray, n_groups: int, weeks: BoolArray
    ) -> FloatArray:
        """Window variances for every prefix of ``weeks`` from a cumulative sum of x_t."""
        assert self.design is not None and self.sigma2 is not None
        G = np.cumsum(self.design.X[weeks], axis=0)  # [K, p]
        per = self.sigma2[:, None] * self._gvg(G)
        return group_sum(per, groups, n_groups)

    def expected_bounds(
        self, mu: FloatArray, param_var: FloatArray, level: float
    ) -> tuple[FloatArray, FloatArray]:
        """mu -+ z sqrt(x' V x): the OLS confidence interval of the mean, on the count scale."""
        z = stats.norm.ppf(0.5 + level / 2.0)
        sd = np.sqrt(param_var)
        return mu - z * sd, mu + z * sd

    def coefficients(self, keys: pd.DataFrame) -> pd.DataFrame:
        """Strata, intercept, year, week2..week52, sigma2, dispersion, converged, n_iter."""
        assert self.design is not None and self.coef is not None
        out = keys.copy()
        for j, name in enumerate(self.design.names):
            out[name] = self.coef[:, j]
        out["sigma2"] = self.sigma2
        out["dispersion"] = self.dispersion_raw
        out["converged"] = self.converged
        out["n_iter"] = self.n_iter
        return out


class WMD(Baseline):
    """World Mortality Dataset baseline: per-series OLS of deaths on a linear year term and
    week-of-year effects (week 53 as week 52), fitted on the reference weeks.

    Intervals are normal on the count scale: the expected count's from x' V x with V = sigma^2
    (X'X)^-1 (parameter uncertainty only), the prediction interval's from sigma^2 + x' V x
    (residual variance plus parameter uncertainty); a window of weeks uses g' V g with g the sum
    of the weeks' rows (the full coefficient covariance across weeks) plus |W| sigma^2.

    Examples
    --------
    >>> WMD()
    WMD()
    """

    name: ClassVar[str] = "wmd"

    def fit(
        self, panel: Panel, *, reference: tuple[Any, Any] | None, engine: Engine = "auto"
    ) -> WMDResult:
        """Fit every series by OLS on the reference weeks.

        Raises
        ------
        InputError
            Without a reference period or with too few reference weeks.
        """
        if reference is None:
            raise InputError(
                "the wmd baseline needs a reference period (start, end)", column="reference"
            )
        design = wmd_design(panel.weeks)
        X = design.X
        p = design.n_terms
        ref = reference_mask(panel.weeks, *reference)
        fit = ref[None, :] & panel.observed_mask
        n_obs = fit.sum(axis=1)
        # columns the reference weeks cannot identify (a week never seen) make every fit singular
        present = X[ref].any(axis=0) if ref.any() else np.zeros(p, bool)
        if int(ref.sum()) < 2 * p or not present.all():
            raise InputError(
                f"too little history for the wmd baseline: the reference period {reference[0]} to "
                f"{reference[1]} holds {int(ref.sum())} weeks; its {p} terms (a year trend and 51 "
                "week effects) need every week of the year and at least two years",
                column="week_ending",
                value=int(ref.sum()),
            )
        Y = np.where(fit, panel.deaths, 0.0)
        masks, inverse = np.unique(fit, axis=0, return_inverse=True)
        inverse = np.asarray(inverse).reshape(-1)
        covs = np.empty((masks.shape[0], p, p))
        ok_mask = np.ones(masks.shape[0], dtype=bool)
        for k, m in enumerate(masks):  # one solve per distinct pattern of missing weeks
            Xm = X[m]
            A = Xm.T @ Xm
            try:
                covs[k] = np.linalg.inv(A)
                ok_mask[k] = np.linalg.matrix_rank(A) == p
            except np.linalg.LinAlgError:
                covs[k] = np.nan
                ok_mask[k] = False
        XtY = Y @ X  # [S, p]
        coef = np.empty((panel.n_series, p))
        for k in range(masks.shape[0]):  # (X'X)^-1 X'y: one product per pattern, all its series
            rows = inverse == k
            coef[rows] = XtY[rows] @ covs[k].T
        mu = coef @ X.T
        resid = np.where(fit, panel.deaths - mu, 0.0)
        df = n_obs - p
        with np.errstate(invalid="ignore", divide="ignore"):
            sigma2 = np.where(df > 0, np.sum(resid**2, axis=1) / df, np.nan)
            mean_mu = np.sum(np.where(fit, mu, 0.0), axis=1) / n_obs
            index = sigma2 / mean_mu
        converged = ok_mask[inverse] & (df > 0)
        mu[~converged] = np.nan
        return WMDResult(
            baseline=self.name,
            mu=np.ascontiguousarray(mu),
            dispersion=index,
            dispersion_raw=index,
            converged=converged,
            n_iter=np.ones(panel.n_series, dtype=np.int64),
            fit_mask=fit,
            info={"n_obs": n_obs, "rss": np.sum(resid**2, axis=1)},
            design=design,
            coef=coef,
            cov_patterns=covs,
            pattern=inverse.astype(np.int64),
            sigma2=sigma2,
        )
