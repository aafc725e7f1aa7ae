"""The EuroMOMO baseline: a quasi-Poisson GLM fitted on spring and autumn weeks, 2/3-power intervals.

The model of the EuroMOMO network (methods page https://www.euromomo.eu/how-it-works/methods and the
A-MOMO code, MOMOpack v4.3 for Stata by B. Gergonne, SSI, as ported to R by T. Lytras):

    log mu_t = b0 + b1 t + a sin(2 pi t / 52.18) + c cos(2 pi t / 52.18),    t in weeks,

fitted by Poisson IRLS on the spring and autumn weeks of the most recent five years before the weeks
that need delay correction, overdispersion phi = max(1, Pearson chi2 / (n - p)). Here:

- the harmonic has MOMOpack's period of 52.18 weeks (365.26 days), not the 365.25-day year of the
  quasi-Poisson baseline; the trend is linear in time. The columns are computed from the week-ending
  date as ``trend`` = years since 2000-01-01 (days / 365.25) and the angle
  2 pi (days since 2000-01-01) / (7 x 52.18): an affine change of MOMOpack's week counter, so the
  fitted values are MOMOpack's exactly (only the trend coefficient's unit and the phase origin of
  the harmonic differ).
- The weeks fitted are the weeks of ``reference`` (start, end) whose ISO week number (of the
  week-ending date, as ONS numbers registration weeks) lies in ``seasons``: by default spring weeks
  15-26 and autumn weeks 36-45 inclusive, as the EuroMOMO methods page states. (MOMOpack v4.3's code
  tests ``WoDi > 15 & WoDi < 26`` and ``WoDi > 36 & WoDi < 45``, i.e. weeks 16-25 and 37-44; pass
  ``seasons=((16, 25), (37, 44))`` to reproduce that code.) EuroMOMO's own window is the five years
  before the delay period; give it as ``reference`` (there is no delay correction here).
- Dispersion floor: 1 by default (``dispersion_floor``), as EuroMOMO.
- Prediction intervals and z-scores are on the 2/3-power scale (MOMOpack ``UPIb``/``zscore``, without
  the delay-variance term):
  Var(y^(2/3)) ~ (4/9) mu^(-2/3) (phi mu + var(mu)), with var(mu) = phi mu^2 x' (X'WX)^-1 x;
  z = (y^(2/3) - mu^(2/3)) / sd; bounds ((mu^(2/3) -+ z_level sd)^(3/2)), the lower one 0 when
  mu^(2/3) - z_level sd < 0. For an aggregate of series or a window of weeks the same rule is applied
  to the sums (mu, phi mu and var(mu) of the sum).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
from scipy import stats

from .._typing import BoolArray, FloatArray
from ..design import DesignMatrix, years_since_origin
from ..exceptions import InputError
from ..weeks import iso_year_week, reference_mask
from ._base import Baseline
from .glm import GLMResult, _check_floor, fit_glm

if TYPE_CHECKING:
    from .._typing import Engine
    from ..panel import Panel

__all__ = ["EuroMOMO", "EuroMOMOResult", "euromomo_design", "season_mask", "two_thirds_prediction"]

#: Period of the EuroMOMO harmonic, in weeks (MOMOpack: ``sin(2*pi*wk/52.18)``).
PERIOD_WEEKS = 52.18


def two_thirds_prediction(
    observed: FloatArray, mu: FloatArray, obs_var: FloatArray, param_var: FloatArray, level: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Prediction bounds and z-scores on the 2/3-power scale (EuroMOMO).

    sd = sqrt((4/9) mu^(-2/3) (obs_var + param_var)); z = (y^(2/3) - mu^(2/3)) / sd;
    bounds ((mu^(2/3) -+ z_level sd)^(3/2)), lower 0 when its base is negative.

    Returns
    -------
    lower, upper, z_score : ndarray
    """
    q = stats.norm.ppf(0.5 + level / 2.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        m23 = np.power(mu, 2.0 / 3.0)
        sd = np.sqrt((4.0 / 9.0) * np.power(mu, -2.0 / 3.0) * (obs_var + param_var))
        z_score = (np.power(observed, 2.0 / 3.0) - m23) / sd
        lower = np.power(np.maximum(m23 - q * sd, 0.0), 1.5)
        upper = np.power(m23 + q * sd, 1.5)
    return lower, upper, z_score


def euromomo_design(weeks: pd.DatetimeIndex, period_weeks: float = PERIOD_WEEKS) -> DesignMatrix:
    """Columns intercept, trend (years since 2000-01-01), sin, cos (period ``period_weeks`` weeks).

    Examples
    --------
    >>> euromomo_design(pd.date_range("2015-01-02", periods=3, freq="7D")).names
    ('intercept', 'trend', 'sin', 'cos')
    """
    weeks = pd.DatetimeIndex(weeks)
    tau = years_since_origin(weeks)
    angle = 2.0 * np.pi * (tau * 365.25) / (7.0 * period_weeks)
    X = np.ascontiguousarray(
        np.column_stack([np.ones_like(tau), tau, np.sin(angle), np.cos(angle)])
    )
    return DesignMatrix(X=X, names=("intercept", "trend", "sin", "cos"), weeks=weeks)


@dataclass(eq=False)
class EuroMOMOResult(GLMResult):
    """A :class:`GLMResult` whose prediction intervals and z-scores are on the 2/3-power scale."""

    interval_rule: ClassVar[str] = "2/3-power normal"

    interval_rule: ClassVar[str] = "2/3-power normal"

    def prediction(
        self,
        observed: FloatArray,
        mu: FloatArray,
        obs_var: FloatArray,
        param_var: FloatArray,
        level: float,
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """See :func:`two_thirds_prediction`."""
        return two_thirds_prediction(observed, mu, obs_var, param_var, level)


def _check_seasons(seasons: Any) -> tuple[tuple[int, int], ...]:
    try:
        out = tuple((int(a), int(b)) for a, b in seasons)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"seasons must be pairs of ISO weeks (first, last) such as ((15, 26), (36, 45)), got {seasons!r}",
            column="seasons",
            value=seasons,
        ) from exc
    for a, b in out:
        if not 1 <= a <= b <= 53:
            raise InputError(
                f"each season must be (first, last) with 1 <= first <= last <= 53, got {(a, b)!r}",
                column="seasons",
                value=seasons,
            )
    if not out:
        raise InputError(
            "seasons must name at least one range of weeks", column="seasons", value=seasons
        )
    return out


def season_mask(weeks: pd.DatetimeIndex, seasons: Any = ((15, 26), (36, 45))) -> BoolArray:
    """True for the weeks whose ISO week number lies in one of ``seasons`` (inclusive ranges)."""
    _, iso_week = iso_year_week(weeks)
    mask = np.zeros(len(iso_week), dtype=bool)
    for a, b in _check_seasons(seasons):
        mask |= (iso_week >= a) & (iso_week <= b)
    return mask


@dataclass(eq=False, repr=False)
class EuroMOMO(Baseline):
    """The EuroMOMO baseline (see the module docstring for the model and its sources).

    Parameters
    ----------
    seasons : sequence of (int, int), default ((15, 26), (36, 45))
        Inclusive ranges of ISO weeks fitted (spring, autumn).
    period_weeks : float, default 52.18
        Period of the harmonic in weeks.
    dispersion_floor : float, default 1.0
        phi = max(floor, Pearson chi2 / (n - p)).
    max_iter, tol : int, float
        R ``glm.control`` defaults (25, 1e-8).

    Examples
    --------
    >>> EuroMOMO()
    EuroMOMO(seasons=((15, 26), (36, 45)), period_weeks=52.18, dispersion_floor=1.0, max_iter=25, tol=1e-08)
    """

    name: ClassVar[str] = "euromomo"
    #: Two years of weeks (of which only spring and autumn are fitted; EuroMOMO uses five).
    min_reference_weeks: ClassVar[int] = 104

    seasons: Any = ((15, 26), (36, 45))
    period_weeks: float = PERIOD_WEEKS
    dispersion_floor: float = 1.0
    max_iter: int = 25
    tol: float = 1e-8

    def fit(
        self, panel: Panel, *, reference: tuple[Any, Any] | None, engine: Engine = "auto"
    ) -> EuroMOMOResult:
        """Fit every series on the spring and autumn weeks of the reference period.

        Raises
        ------
        InputError
            Without a reference period, for bad options, or when too few weeks are left to fit.
        """
        if reference is None:
            raise InputError(
                "the euromomo baseline needs a reference period (start, end): EuroMOMO fits the five "
                "most recent years before the prediction period",
                column="reference",
            )
        period = self.period_weeks
        if (
            isinstance(period, bool)
            or not isinstance(period, int | float)
            or not np.isfinite(period)
            or period <= 0
        ):
            raise InputError(
                f"period_weeks must be a positive number, got {period!r}",
                column="period_weeks",
                value=period,
            )
        floor = _check_floor(self.dispersion_floor)
        design = euromomo_design(panel.weeks, float(period))
        ref = reference_mask(panel.weeks, *reference) & season_mask(panel.weeks, self.seasons)
        n_ref = int(ref.sum())
        if n_ref < 2 * design.n_terms:
            raise InputError(
                f"too little history for the {self.name} baseline: the reference period {reference[0]} to "
                f"{reference[1]} holds {n_ref} spring and autumn weeks (ISO weeks {self.seasons}), and "
                f"{design.n_terms} terms need at least {2 * design.n_terms}",
                column="week_ending",
                value=n_ref,
            )
        result = fit_glm(
            panel,
            design,
            ref,
            baseline=self.name,
            dispersion_floor=floor,
            max_iter=self.max_iter,
            tol=self.tol,
            engine=engine,
            result_cls=EuroMOMOResult,
        )
        assert isinstance(result, EuroMOMOResult)
        return result
