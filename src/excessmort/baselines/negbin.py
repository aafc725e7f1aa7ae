"""Per-series negative-binomial (NB2) GLM: log mu_t = log(offset_t) + x_t' beta with the
quasi-Poisson baseline's columns (trend, harmonics, optional bank-holiday terms), and
var(y_t) = mu_t + alpha mu_t^2, beta and alpha by maximum likelihood (R ``MASS::glm.nb``,
statsmodels ``NegativeBinomial(loglike_method="nb2")``).

Intervals: V = (X'WX)^-1 with w = mu / (1 + alpha mu) at the ML estimates (parameter uncertainty
of beta; alpha treated as known, as ``glm.nb``'s standard errors do); expected mu exp(-+ z sqrt(x'
V x)); prediction mu -+ z sqrt(mu + alpha mu^2 + mu^2 x' V x) (the NB variance of the count plus
parameter uncertainty); a window of weeks g' V g + sum (mu + alpha mu^2) with g = sum mu_t x_t.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from .._kernels import irls_poisson
from .._kernels.negbin_ref import irls_negbin_batched_ref
from .._typing import FloatArray
from .glm import GLMResult, QuasiPoisson

if TYPE_CHECKING:
    from .._typing import Engine
    from ..panel import Panel

__all__ = ["NegativeBinomial", "NegativeBinomialResult"]


@dataclass(eq=False)
class NegativeBinomialResult(GLMResult):
    """A :class:`GLMResult` with the NB2 variance: ``alpha`` [S]; ``dispersion`` is 1 (V is not
    scaled) and ``dispersion_raw`` the equivalent quasi-Poisson phi, 1 + alpha mean(mu)."""

    alpha: FloatArray | None = None

    def obs_variance(self) -> FloatArray:
        """mu + alpha mu^2 [S, T]."""
        assert self.alpha is not None
        return self.mu + self.alpha[:, None] * self.mu**2

    def coefficients(self, keys: pd.DataFrame) -> pd.DataFrame:
        """Strata, the terms, alpha, dispersion (1 + alpha mean mu), converged, n_iter."""
        out = super().coefficients(keys)
        out.insert(out.columns.get_loc("dispersion"), "alpha", self.alpha)
        return out


class NegativeBinomial(QuasiPoisson):
    """Per-series negative-binomial GLM (NB2, log link), dispersion alpha by maximum likelihood.

    The columns are the quasi-Poisson baseline's (intercept, trend, ``harmonics`` Fourier pairs,
    optional bank-holiday terms) with the population offset; the variance of a count is
    mu + alpha mu^2. Intervals: parameter uncertainty (x' V x, V = (X'WX)^-1, w = mu/(1 + alpha mu))
    and, for predictions, the NB variance mu + alpha mu^2.

    Parameters
    ----------
    harmonics, trend, holidays
        As :class:`QuasiPoisson`.
    max_iter, tol : int, float
        Rounds of the beta / alpha alternation and their relative tolerance.

    Examples
    --------
    >>> NegativeBinomial(harmonics=1)
    NegativeBinomial(harmonics=1, trend=True, holidays=False, max_iter=100, tol=1e-10)
    """

    name: ClassVar[str] = "negative_binomial"

    def __init__(
        self,
        harmonics: int = 2,
        trend: bool = True,
        holidays: bool = False,
        max_iter: int = 100,
        tol: float = 1e-10,
    ) -> None:
        self.harmonics = harmonics
        self.trend = trend
        self.holidays = holidays
        self.max_iter = max_iter
        self.tol = tol

    def fit(
        self, panel: Panel, *, reference: tuple[Any, Any] | None, engine: Engine = "auto"
    ) -> NegativeBinomialResult:
        """Fit every series on the reference weeks by maximum likelihood.

        Raises
        ------
        InputError
            Without a reference period or with too little history.
        """
        design, ref = self._reference_design(panel, reference)
        offset = panel.offset if panel.exposure is not None else None
        start = irls_poisson(design.X, panel.deaths, offset, ref, engine=engine)
        M = ref[None, :] & panel.observed_mask
        OFF = np.zeros_like(panel.deaths) if offset is None else offset
        ok = start["status"] == 0
        beta0 = np.where(ok[:, None], start["beta"], 0.0)
        if not ok.all():  # a Poisson start that failed: the log of the mean rate
            with np.errstate(invalid="ignore", divide="ignore"):
                rate = np.nanmean(np.where(M, panel.deaths, np.nan), axis=1)
                level = np.log(np.maximum(rate, 0.5)) - np.nanmean(np.where(M, OFF, np.nan), axis=1)
            beta0[~ok, 0] = np.nan_to_num(level[~ok])
        out = irls_negbin_batched_ref(
            design.X, panel.deaths, OFF, M, beta0, max_iter=self.max_iter, tol=self.tol
        )
        converged = out["converged"] & np.all(np.isfinite(out["beta"]), axis=1)
        mu = out["mu"]
        mu[~converged] = np.nan
        alpha = 1.0 / out["theta"]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_mu = np.sum(np.where(M, mu, 0.0), axis=1) / M.sum(axis=1)
        return NegativeBinomialResult(
            baseline=self.name,
            mu=mu,
            dispersion=np.ones(panel.n_series),
            dispersion_raw=1.0 + alpha * mean_mu,
            converged=converged,
            n_iter=out["n_iter"],
            fit_mask=M,
            info={
                "loglik": out["loglik"],
                "alpha_at_bound": out["at_bound"],
                "n_obs": M.sum(axis=1),
            },
            design=design,
            coef=out["beta"],
            cov_unscaled=out["cov"],
            engine=engine,
            alpha=alpha,
        )
