"""Per-series quasi-Poisson and Poisson GLM baselines on the shared design, via the IRLS kernels.

log mu_t = log(offset_t) + b0 + b1 tau_t + sum_k (a_k sin(2 pi k tau_t) + c_k cos(2 pi k tau_t)),
fitted on the weeks of the reference period; phi = max(floor, Pearson chi2 / (n - p)).
With ``dispersion_floor=0`` it is the same fit as statsmodels ``GLM(Poisson, scale="X2")`` and R
``glm(family = quasipoisson)`` on the same columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from .._kernels import dependence_engine, glm_year_fitted, irls_poisson, quad_form_rows
from .._typing import BoolArray, FloatArray, IntArray
from ..design import DesignMatrix, build_design
from ..exceptions import InputError
from ..weeks import reference_mask
from ._base import Baseline, BaselineResult
from ._util import group_sum

if TYPE_CHECKING:
    from .._typing import Engine
    from ..panel import Panel

__all__ = ["GLMResult", "Poisson", "QuasiPoisson", "fit_glm"]


@dataclass(eq=False)
class GLMResult(BaselineResult):
    """Result of a per-series GLM: coefficients, (X'WX)^-1 and the shared design.

    V_s = phi_s (X'WX)_s^-1; var(mu_st) = mu_st^2 x_t' V_s x_t; for a window W,
    var(sum_{t in W} mu_st) = g_s' V_s g_s with g_s = sum_{t in W} mu_st x_t. Series are fitted
    independently, so variances of sums over series add.
    """

    #: One fit per series: a group's variances are sums of its series' own.
    additive_variance: ClassVar[bool] = True

    design: DesignMatrix | None = None
    coef: FloatArray | None = None
    cov_unscaled: FloatArray | None = None
    engine: str = "auto"
    _q: FloatArray | None = field(default=None, repr=False)

    @property
    def q(self) -> FloatArray:
        """x_t' (X'WX)_s^-1 x_t [S, T], computed once."""
        if self._q is None:
            assert self.design is not None and self.cov_unscaled is not None
            self._q = quad_form_rows(self.design.X, self.cov_unscaled, engine=self.engine)  # type: ignore[arg-type]
        return self._q

    def se_log_expected(self) -> FloatArray:
        """Standard error of log mu [S, T]: sqrt(phi x' (X'WX)^-1 x)."""
        return np.sqrt(self.dispersion[:, None] * self.q)

    def param_variance_weekly(self, groups: IntArray, n_groups: int) -> FloatArray:
        """sum_{s in g} phi_s mu_st^2 x_t' (X'WX)_s^-1 x_t: [G, T]."""
        per_series = self.dispersion[:, None] * self.mu**2 * self.q
        return group_sum(per_series, groups, n_groups)

    def param_variance_window(
        self, groups: IntArray, n_groups: int, weeks: BoolArray
    ) -> FloatArray:
        """sum_{s in g} phi_s g_s' (X'WX)_s^-1 g_s with g_s = sum_{t in weeks} mu_st x_t: [G]."""
        assert self.design is not None and self.cov_unscaled is not None
        if dependence_engine(self.engine, self.mu.size) == "numba":
            # one pass over the rows, mu read in place (no [S, K] copy of the window): the kernel
            # of each reference year's fitted variance, with the window as its one "year"; it
            # agrees with the product below to ~1e-14 relative (tests/test_glm.py)
            year_of = np.where(np.asarray(weeks, dtype=bool), 0, -1)
            per_series = glm_year_fitted(
                self.mu, self.design.X, self.cov_unscaled, self.dispersion, year_of, 1,
                engine="numba",
            )[0]  # fmt: skip
            return group_sum(per_series, groups, n_groups)
        X = self.design.X[weeks]
        g = self.mu[:, weeks] @ X  # [S, p]
        per_series = self.dispersion * np.einsum("sj,sjk,sk->s", g, self.cov_unscaled, g)
        return group_sum(per_series, groups, n_groups)

    def param_variance_running(
        self, groups: IntArray, n_groups: int, weeks: BoolArray
    ) -> FloatArray:
        """The window variance for every prefix of ``weeks`` at once: g_s is a running sum of
        mu_st x_t, so all K windows come from one cumsum ([S, K, p]) instead of K passes."""
        assert self.design is not None and self.cov_unscaled is not None
        X = self.design.X[weeks]
        g = np.cumsum(self.mu[:, weeks, None] * X[None, :, :], axis=1)  # [S, K, p]
        per_series = self.dispersion[:, None] * np.einsum(
            "skj,sjl,skl->sk", g, self.cov_unscaled, g, optimize=True
        )
        return group_sum(per_series, groups, n_groups)

    def year_model(self) -> tuple[str, int | None]:
        """``("trend", None)`` when the design has a trend column, else ``("mean", None)``."""
        assert self.design is not None
        return ("trend", None) if "trend" in self.design.names else ("mean", None)

    def coefficients(self, keys: pd.DataFrame) -> pd.DataFrame:
        """Strata, one column per term, dispersion (before the floor), converged, n_iter."""
        assert self.design is not None and self.coef is not None
        out = super().coefficients(keys)
        for j, name in enumerate(self.design.names):
            out.insert(keys.shape[1] + j, name, self.coef[:, j])
        return out


def _check_floor(value: Any) -> float:
    if not isinstance(value, int | float) or not np.isfinite(value) or value < 0:
        raise InputError(
            f"dispersion_floor must be a finite number >= 0, got {value!r}",
            column="dispersion_floor",
            value=value,
        )
    return float(value)


def fit_glm(
    panel: Panel,
    design: DesignMatrix,
    ref: BoolArray,
    *,
    baseline: str,
    dispersion_floor: float | None,
    max_iter: int,
    tol: float,
    engine: Engine,
    result_cls: type[GLMResult] = GLMResult,
) -> GLMResult:
    """Fit every series of ``panel`` on ``design`` over the weeks ``ref``; ``dispersion_floor=None``
    fixes phi at 1 (Poisson)."""
    offset = panel.offset if panel.exposure is not None else None
    out = irls_poisson(
        design.X, panel.deaths, offset, ref, max_iter=max_iter, tol=tol, engine=engine
    )
    n_terms = design.n_terms
    df_resid = out["n_obs"] - n_terms
    with np.errstate(divide="ignore", invalid="ignore"):
        phi_raw = np.where(df_resid > 0, out["pearson"] / df_resid, np.nan)
    if dispersion_floor is None:
        phi = np.where(np.isfinite(phi_raw), 1.0, np.nan)
    else:
        phi = np.maximum(phi_raw, dispersion_floor)
    status = out["status"]
    converged = status == 0
    mu = out["mu"]
    mu[~converged] = np.nan  # never report estimates of a fit that did not converge
    fit_mask = ref[None, :] & panel.observed_mask
    return result_cls(
        baseline=baseline,
        mu=mu,
        dispersion=phi,
        dispersion_raw=phi_raw,
        converged=converged,
        n_iter=out["n_iter"],
        fit_mask=fit_mask,
        info={
            "status": status,
            "deviance": out["deviance"],
            "pearson": out["pearson"],
            "n_obs": out["n_obs"],
        },
        design=design,
        coef=out["beta"],
        cov_unscaled=out["cov"],
        engine=engine,
    )


class QuasiPoisson(Baseline):
    """Per-series quasi-Poisson GLM with trend and seasonal harmonics (the default baseline).

    Parameters
    ----------
    harmonics : int, default 2
        K Fourier pairs on a 365.25-day year.
    trend : bool, default True
        Linear trend in years.
    holidays : bool or str, default False
        Add the producer's eight bank-holiday registration indicators: ``True`` for England and
        Wales bank holidays, a country code (``"SE"``, ``"GB-SCT"``) for that country's.
    dispersion_floor : float, default 1.0
        phi = max(floor, Pearson chi2 / (n - p)); 0 reproduces R ``glm(family = quasipoisson)``.
    max_iter, tol : int, float
        R ``glm.control`` defaults (25, 1e-8).

    Examples
    --------
    >>> QuasiPoisson(harmonics=1)
    QuasiPoisson(harmonics=1, trend=True, holidays=False, dispersion_floor=1.0, max_iter=25, tol=1e-08)
    """

    name: ClassVar[str] = "quasipoisson"
    #: Two years: a trend and an annual seasonal cycle cannot be told apart in less.
    min_reference_weeks: ClassVar[int] = 104

    def __init__(
        self,
        harmonics: int = 2,
        trend: bool = True,
        holidays: bool | str = False,
        dispersion_floor: float = 1.0,
        max_iter: int = 25,
        tol: float = 1e-8,
    ) -> None:
        self.harmonics = harmonics
        self.trend = trend
        self.holidays = holidays
        self.dispersion_floor = dispersion_floor
        self.max_iter = max_iter
        self.tol = tol

    def _floor(self) -> float | None:
        return _check_floor(self.dispersion_floor)

    def design(self, weeks: pd.DatetimeIndex) -> DesignMatrix:
        """The shared design for these weeks."""
        if not isinstance(self.harmonics, int | np.integer) or self.harmonics < 0:
            raise InputError(
                f"harmonics must be a non-negative integer, got {self.harmonics!r}",
                column="harmonics",
                value=self.harmonics,
            )
        return build_design(
            weeks,
            trend=bool(self.trend),
            harmonics=int(self.harmonics),
            holidays=self.holidays if isinstance(self.holidays, str) else bool(self.holidays),
        )

    def _reference_design(
        self, panel: Panel, reference: tuple[Any, Any] | None
    ) -> tuple[DesignMatrix, BoolArray]:
        """The design and the reference weeks, refusing no reference or too few weeks."""
        if reference is None:
            raise InputError(
                f"the {self.name} baseline needs a reference period (start, end)",
                column="reference",
            )
        design = self.design(panel.weeks)
        ref = reference_mask(panel.weeks, *reference)
        n_ref = int(ref.sum())
        if n_ref < 2 * design.n_terms:
            raise InputError(
                f"too little history for the {self.name} baseline: the reference period "
                f"{reference[0]} to {reference[1]} holds {n_ref} weeks of data, and "
                f"{design.n_terms} terms need at least {2 * design.n_terms}",
                column="week_ending",
                value=n_ref,
            )
        return design, ref

    def fit(
        self, panel: Panel, *, reference: tuple[Any, Any] | None, engine: Engine = "auto"
    ) -> GLMResult:
        """Fit every series on the reference weeks; see the class docstring."""
        design, ref = self._reference_design(panel, reference)
        return fit_glm(
            panel,
            design,
            ref,
            baseline=self.name,
            dispersion_floor=self._floor(),
            max_iter=self.max_iter,
            tol=self.tol,
            engine=engine,
        )


class Poisson(QuasiPoisson):
    """Per-series Poisson GLM: as :class:`QuasiPoisson` with phi fixed at 1."""

    name: ClassVar[str] = "poisson"

    def _floor(self) -> float | None:
        return None
