"""The baseline protocol and what a baseline's fit returns.

A baseline is a small options object (sklearn rules: options in ``__init__``, no computation there,
validation in ``fit``). ``fit(panel, reference=..., engine=...)`` returns a :class:`BaselineResult`
holding, for every series s and week t, the expected deaths ``mu[s, t]`` and what the intervals need:

- the observation variance of y given mu (``phi * mu`` for the quasi-Poisson family) of one row;
  sums of rows are *not* independent given the baseline (common shocks, autocorrelation, year
  effects): :mod:`excessmort.dependence` estimates that from the reference residuals
  (:meth:`BaselineResult.residual_mask`, :meth:`~BaselineResult.fitted_variance_weekly`), and
  ``excessmort.fit(..., dependence=False)`` gives the independence sums back;
- the parameter variance of any sum of mu over a group of series, weekly or over a window of weeks
  (``g' V g``): each result knows how its coefficients are shared (one fit per series, or one pooled
  fit), so aggregates such as England get the right covariance;
- the prediction interval rule (normal by default; EuroMOMO on the 2/3-power scale; the producer's
  negative-binomial quantiles for the pooled baseline).

Everything here works on arrays; :mod:`excessmort._fit` turns them into frames.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from .. import _stats as stats
from .._typing import BoolArray, FloatArray, IntArray

if TYPE_CHECKING:
    from .._typing import Engine
    from ..panel import Panel

__all__ = ["Baseline", "BaselineResult", "normal_prediction"]


def normal_prediction(
    observed: FloatArray, mu: FloatArray, obs_var: FloatArray, param_var: FloatArray, level: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Normal prediction bounds and z-scores: mu -+ z sqrt(phi mu + var(mu)), lower clipped at 0.

    Returns
    -------
    lower, upper, z_score : ndarray
        Arrays of the broadcast shape of the inputs.
    """
    z = stats.norm.ppf(0.5 + level / 2.0)
    sd = np.sqrt(obs_var + param_var)
    with np.errstate(invalid="ignore", divide="ignore"):
        z_score = (observed - mu) / sd
    return np.maximum(mu - z * sd, 0.0), mu + z * sd, z_score


class Baseline(ABC):
    """A model of expected deaths. Subclasses set ``name`` and implement :meth:`fit`."""

    name: ClassVar[str]
    #: The fewest observed reference weeks every series needs (checked by ``fit`` before fitting).
    min_reference_weeks: ClassVar[int] = 104

    @abstractmethod
    def fit(
        self, panel: Panel, *, reference: tuple[Any, Any] | None, engine: Engine = "auto"
    ) -> BaselineResult:
        """Fit every series of ``panel`` and return the result."""

    def get_params(self) -> dict[str, Any]:
        """The options given to ``__init__`` (sklearn convention)."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


@dataclass(eq=False)
class BaselineResult(ABC):
    """Expected deaths for every series and week, and what intervals need.

    Attributes
    ----------
    baseline : str
        Registry name of the baseline that produced it.
    mu : ndarray [S, T]
        Expected deaths for every week, fitted or not; NaN where it cannot be estimated.
    dispersion : ndarray [S]
        phi used for intervals (after any floor).
    dispersion_raw : ndarray [S]
        phi as estimated (Pearson chi2 / (n - p) for the GLMs), before the floor.
    converged : ndarray [S] of bool
    n_iter : ndarray [S] of int
    fit_mask : ndarray [S, T] of bool
        The series-weeks the baseline was estimated on.
    """

    baseline: str
    mu: FloatArray
    dispersion: FloatArray
    dispersion_raw: FloatArray
    converged: BoolArray
    n_iter: IntArray
    fit_mask: BoolArray
    info: dict[str, Any] = field(default_factory=dict)

    # -------------------------------------------------------------- variances
    def obs_variance(self) -> FloatArray:
        """Variance of a count given its expectation, [S, T]: phi * mu."""
        return self.dispersion[:, None] * self.mu

    @abstractmethod
    def param_variance_weekly(self, groups: IntArray, n_groups: int) -> FloatArray:
        """Variance from parameter uncertainty of sum_{s in g} mu[s, t], for every group and week: [G, T]."""

    @abstractmethod
    def param_variance_window(
        self, groups: IntArray, n_groups: int, weeks: BoolArray
    ) -> FloatArray:
        """Variance from parameter uncertainty of sum_{s in g, t in weeks} mu[s, t]: [G]."""

    def param_variance_running(
        self, groups: IntArray, n_groups: int, weeks: BoolArray
    ) -> FloatArray:
        """Parameter variance of the running sums from the first week in ``weeks`` to each of them:
        [G, K] for the K weeks in ``weeks``. Generic: one :meth:`param_variance_window` per week;
        results whose windows are prefix sums override it."""
        pos = np.flatnonzero(weeks)
        out = np.empty((n_groups, pos.size))
        upto = np.zeros_like(weeks, dtype=bool)
        for k, t in enumerate(pos):
            upto[t] = True
            out[:, k] = self.param_variance_window(groups, n_groups, upto.copy())
        return out

    # -------------------------------------------------------------- dependence
    #: The residuals on :meth:`residual_mask` are in-sample (the fit saw them) or out of sample.
    residuals_in_sample: ClassVar[bool] = True
    #: How the prediction interval is formed (for the interval's description).
    interval_rule: ClassVar[str] = "normal"
    #: The parameter (and fitted) variance of a group sum is the sum of its series' own (one fit
    #: per series, no covariance between series' estimates); False (the pooled models) makes
    #: weighted sums take the covariances from group variances instead.
    additive_variance: ClassVar[bool] = False
    #: One phi shared by every series (the pooled model): the dependence model then gives each
    #: series its own dispersion relative to it.
    shared_dispersion: ClassVar[bool] = False
    #: One set of coefficients estimated from every series at once (the pooled model): their
    #: covariance is one property of the fit, the same for every row and aggregate.
    shared_coefficients: ClassVar[bool] = False

    def residual_mask(self) -> BoolArray:
        """The series-weeks whose residuals y - mu estimate the dependence [S, T]: fitted weeks
        with an expectation."""
        return self.fit_mask & np.isfinite(self.mu)

    def dependence_view(self, deaths: FloatArray) -> tuple[BaselineResult, FloatArray]:
        """The result and counts [S, T] whose residuals on :meth:`residual_mask` estimate the
        dependence: this result and the panel's counts, unless the baseline has better residuals
        to offer (the five-year average on data that start at its reference)."""
        return self, deaths

    def fitted_variance_weekly(self, groups: IntArray, n_groups: int) -> FloatArray:
        """Variance of the fitted sum of mu per group and week, whatever the interval mode [G, T]
        (the leverage correction of in-sample residuals)."""
        return self.param_variance_weekly(groups, n_groups)

    def fitted_variance_window(
        self, groups: IntArray, n_groups: int, weeks: BoolArray
    ) -> FloatArray:
        """As :meth:`fitted_variance_weekly` over a window of weeks [G]."""
        return self.param_variance_window(groups, n_groups, weeks)

    def year_model(self) -> tuple[str, int | None]:
        """How the baseline's level depends on the reference years: ``("trend", None)`` (intercept
        and trend), ``("mean", None)`` (intercept only) or ``("average", n)`` (mean of n earlier
        years, out of sample); sets the leverage of year effects."""
        return ("mean", None)

    @property
    def dependence_applies(self) -> bool:
        """False for interval modes that reproduce a producer's published interval exactly."""
        return True

    @property
    def has_parameter_uncertainty(self) -> bool:
        """Whether the intervals include the baseline's parameter uncertainty."""
        return True

    # -------------------------------------------------------------- intervals
    def prediction(
        self,
        observed: FloatArray,
        mu: FloatArray,
        obs_var: FloatArray,
        param_var: FloatArray,
        level: float,
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Prediction bounds for a count with no excess and its z-score; normal unless overridden."""
        return normal_prediction(observed, mu, obs_var, param_var, level)

    # -------------------------------------------------------------- coefficients
    def coefficients(self, keys: pd.DataFrame) -> pd.DataFrame:
        """One row per series: strata, model terms, dispersion, converged, n_iter."""
        out = keys.copy()
        out["dispersion"] = self.dispersion_raw
        out["converged"] = self.converged
        out["n_iter"] = self.n_iter
        return out

    # -------------------------------------------------------------- selection
    #: Array fields shared by every series (never sliced by :meth:`take`), e.g. the coefficients and
    #: covariance of a pooled fit, or a calendar-shaped history index.
    _shared_fields: ClassVar[tuple[str, ...]] = ()

    def take(self, index: IntArray | BoolArray) -> BaselineResult:
        """The result restricted to some series (positions or a boolean mask over [S]).

        Every dataclass field holding an array whose first axis is S (``mu``, ``dispersion``,
        ``coef`` [S, p], ``cov_unscaled`` [S, p, p], ...) is sliced, as are the per-series arrays
        of ``info``; fields named in ``_shared_fields`` and non-array fields (the shared design)
        are kept as they are. Subclasses whose non-array fields hold per-series parts (a pooled
        design's column placement) extend :meth:`_take_extra`.

        Returns
        -------
        BaselineResult
            Of the same class, over ``len(index)`` series.
        """
        idx = np.asarray(index)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64, copy=False)
        n_series = int(self.mu.shape[0])

        def per_series(value: Any) -> bool:
            return isinstance(value, np.ndarray) and value.ndim >= 1 and value.shape[0] == n_series

        changes: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if not f.init or f.name in self._shared_fields:
                continue
            value = getattr(self, f.name)
            if f.name == "info":
                changes["info"] = {
                    k: (np.ascontiguousarray(v[idx]) if per_series(v) else v)
                    for k, v in value.items()
                }
            elif per_series(value):
                changes[f.name] = np.ascontiguousarray(value[idx])
        extra = self._take_extra(idx)
        for f in dataclasses.fields(self):
            # A nested object with per-series arrays (a pooled design's column placement) that the
            # subclass does not restrict would pair the kept series with other series' parts.
            value = getattr(self, f.name)
            if (
                f.name in extra
                or f.name in self._shared_fields
                or not dataclasses.is_dataclass(value)
            ):
                continue
            nested = [
                g.name for g in dataclasses.fields(value) if per_series(getattr(value, g.name))
            ]
            if nested:
                raise NotImplementedError(
                    f"{type(self).__name__}.take cannot restrict {f.name}.{nested[0]} (one row per series); "
                    "the result class must override _take_extra"
                )
        changes.update(extra)
        return dataclasses.replace(self, **changes)

    def _take_extra(self, idx: IntArray) -> dict[str, Any]:
        """Further field changes for :meth:`take` (non-array fields with per-series parts)."""
        return {}
