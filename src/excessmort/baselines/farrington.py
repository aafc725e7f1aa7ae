"""The ``farrington`` baseline: R surveillance's ``farringtonFlexible`` (Farrington et al. 1996;
Noufaily et al. 2013), every series and every predicted week in one batched pass.

For each predicted week k of each series, one quasi-Poisson GLM (log link) is fitted on the weeks
of k's window and used to predict week k only:

- the window: the weeks within ``w`` of the same week 1..``b`` years back (R's
  ``algo.farrington.referencetimepoints``: the date ``j`` years back, moved to the nearest date on
  the weekday of k), plus, with ``no_periods > 1``, the weeks between those windows cut into
  ``no_periods - 1`` blocks per year, each a level of a seasonal factor (R's ``blocks``); the last
  ``past_weeks_not_included`` + 1 weeks up to k are left out (default ``w``, i.e. the current window);
- the model: ``response ~ 1 [+ wtime] [+ offset(log(population))] [+ seasgroups]``, with ``wtime``
  in weeks since the window's first week;
- R's procedure step for step (fit, fall back to no trend when IRLS does not converge, dispersion
  phi = max(1, Pearson-type estimate), Anscombe-residual reweighting with ``weights_threshold``,
  refit, trend kept only if ``b >= 3``, its t-test p-value < ``p_threshold_trend`` *and* the
  predicted count is not above the largest count of the window, else all again without trend). See
  :mod:`excessmort._kernels.farrington` for the details reproduced (working weights, hat values,
  the raw dispersion in ``predict``'s standard error).

What the result holds (``mu`` is R's ``expected``):

- ``mu[s, k]`` = exp(eta_k), the predicted mean of week k; NaN for weeks not predicted (the first
  ``b`` years and ``w`` weeks: R's default ``range``; ``range`` narrows it);
- var(mu) = se.fit^2 on the response scale (R's ``predict.glm(se.fit=TRUE, type="response")``, with
  the unfloored dispersion, as R computes it); observation variance phi_k mu_k with phi_k of week
  k's own fit (floored at 1);
- the prediction interval at the Fit's ``level`` uses R's threshold rule with one-sided
  alpha = (1 - level) / 2, so its upper bound *is* R's ``upperbound`` (alpha 0.025 at level 0.95):
  ``threshold_method="delta"``: normal on the ``powertrans`` scale (y^(2/3), y^(1/2) or y),
  Var(y^e) ~ e^2 mu^(2e - 2) (phi mu + var(mu)); upper (mu^e + z sd)^(1/e), lower
  max(0, mu^e - z sd)^(1/e); ``"nbPlugin"``: negative-binomial quantiles with mean mu and size
  mu / (phi - 1) (Poisson when phi = 1), no parameter uncertainty; ``"muan"``: the same with the
  mean raised to exp(eta + z se(eta)). z-scores are on the transformed scale for ``delta``, else
  (y - mu) / sqrt(phi mu + var(mu)). Sums over series add means and variances (the fits of
  different series are independent) and apply the same rule to the sums;
- windows of weeks (cumulative excess): the predictions of one series come from overlapping
  rolling fits whose joint covariance R does not give; we bound it by treating their parameter
  errors as perfectly correlated within a series (var = (sum_t se_t)^2, an upper bound), independent
  across series;
- ``info``: R's own outputs on the [S, T] grid at the baseline's ``alpha``: ``upperbound``
  (NaN where fewer than ``limit54[0]`` deaths were registered in the ``limit54[1]`` weeks up to
  k, as R), ``alarm`` (observed > upperbound, R's score rule, never on a zero count),
  ``score``, ``enough_cases``, ``trend`` (trend kept), ``trend_coef``, ``phi``, ``status``
  (0 fitted, 1 R's "could not converge with nor without time trend", 2 too few weeks or an empty
  current level, -1 not predicted). :meth:`FarringtonResult.surveillance_frame` gives them as a
  tidy frame.

Differences from R, all documented: ``expected`` is reported for every predicted week (R blanks it
where limit54 fails; ``info["upperbound"]`` keeps R's blanks); a window whose current level has no
observed week gives NaN (R would predict from the reference level with a warning); windows that
R would have to truncate oddly (a seasonal block of length 0) are refused.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
from scipy import stats

from .._kernels import farrington_glm
from .._kernels.farrington import (
    EPS,
    O_COEF,
    O_DISP,
    O_ETA,
    O_ITER,
    O_PHI,
    O_SE,
    O_STATUS,
    O_TREND,
    STATUS_OK,
)
from .._typing import BoolArray, FloatArray, IntArray
from ..exceptions import InputError
from ..weeks import to_timestamp
from ._base import Baseline, BaselineResult
from ._util import group_sum

if TYPE_CHECKING:
    from .._typing import Engine
    from ..panel import Panel

__all__ = [
    "PRESETS",
    "FarringtonFlexible",
    "FarringtonResult",
    "farrington_prediction",
    "farrington_windows",
]

#: Named settings. ``surveillance``: R ``farringtonFlexible``'s control defaults (surveillance
#: 1.20); ``farrington1996``: the original algorithm (Farrington et al. 1996: reweighting
#: threshold 1, trend kept at p < 0.05, 2/3-power threshold, no seasonal factor);
#: ``noufaily2013``: the improved algorithm (Noufaily et al. 2013; the second example of R's
#: ``?farringtonFlexible``): 10-level seasonal factor, 26 past weeks left out, threshold 2.58,
#: trend always tried (p < 1, still dropped when it extrapolates), negative-binomial quantile.
PRESETS: dict[str, dict[str, Any]] = {
    "surveillance": {
        "b": 5,
        "w": 3,
        "reweight": True,
        "weights_threshold": 2.58,
        "trend": True,
        "p_threshold_trend": 0.05,
        "limit54": (5, 4),
        "powertrans": "2/3",
        "population_offset": False,
        "no_periods": 1,
        "past_weeks_not_included": None,
        "threshold_method": "delta",
    },
    "farrington1996": {
        "b": 5,
        "w": 3,
        "reweight": True,
        "weights_threshold": 1.0,
        "trend": True,
        "p_threshold_trend": 0.05,
        "limit54": (5, 4),
        "powertrans": "2/3",
        "population_offset": False,
        "no_periods": 1,
        "past_weeks_not_included": None,
        "threshold_method": "delta",
    },
    "noufaily2013": {
        "b": 5,
        "w": 3,
        "reweight": True,
        "weights_threshold": 2.58,
        "trend": True,
        "p_threshold_trend": 1.0,
        "limit54": (5, 4),
        "powertrans": "none",
        "population_offset": False,
        "no_periods": 10,
        "past_weeks_not_included": 26,
        "threshold_method": "nbPlugin",
    },
}

#: R control names accepted as aliases of ours.
R_NAMES: dict[str, str] = {
    "weightsThreshold": "weights_threshold",
    "pThresholdTrend": "p_threshold_trend",
    "populationOffset": "population_offset",
    "noPeriods": "no_periods",
    "pastWeeksNotIncluded": "past_weeks_not_included",
    "thresholdMethod": "threshold_method",
}
_OPTIONS = tuple(PRESETS["surveillance"])
_POWERS = {"2/3": 2.0 / 3.0, "1/2": 0.5, "none": 1.0}
_METHODS = ("delta", "nbPlugin", "muan")


# ------------------------------------------------------------------------------------- windows
def _years_back(weeks: pd.DatetimeIndex, j: int) -> IntArray:
    """Week index of R's reference time point j years before every week (may be out of range).

    R: ``seq(day, by = "-1 year")`` (same month and day, 29 February becoming 1 March), then the
    nearest date on the same weekday (R's choice between the two candidates is the nearer one).
    """
    first = pd.to_datetime(
        pd.DataFrame({"year": weeks.year - j, "month": weeks.month, "day": 1})
    ) + pd.to_timedelta(weeks.day - 1, unit="D")
    shift = (weeks.day_of_week.to_numpy() - first.dt.day_of_week.to_numpy()) % 7
    shift = np.where(shift <= 3, shift, shift - 7)
    ref = first + pd.to_timedelta(shift, unit="D")
    days = (ref - weeks[0]).dt.days.to_numpy()
    return (days // 7).astype(np.int64)


def farrington_windows(
    weeks: pd.DatetimeIndex,
    *,
    b: int,
    w: int,
    no_periods: int,
    past_weeks_not_included: int,
    predict: BoolArray | None = None,
) -> dict[str, Any]:
    """The calendar of every refit (shared by all series): which weeks, at which factor level.

    Parameters
    ----------
    weeks : DatetimeIndex
        The panel's weekly calendar [T].
    b, w, no_periods, past_weeks_not_included : int
        R's control values.
    predict : ndarray [T] of bool, optional
        Weeks asked for; default R's default ``range``, from week ``52 b + w + 1``.

    Returns
    -------
    dict
        ``kpos`` [K] predicted week positions; ``wptr`` [K + 1] and ``rt`` the window weeks of each
        (grouped by level, then by week); ``lptr`` [K, P + 1] level offsets within a window;
        ``cen`` [K, P] mean week of each level (centring); ``t0`` [K] first week of each window;
        ``n_max``; ``used`` [T] weeks in any window.

    Raises
    ------
    InputError
        When a week asked for lacks the history R needs (naming the first one) or a seasonal
        block would be empty.
    """
    T = len(weeks)
    P = int(no_periods)
    refs = np.column_stack([_years_back(weeks, j) for j in range(1, b + 1)])  # [T, b]
    k_all = np.arange(T)
    ok = (refs[:, -1] - w >= -1) & (k_all - past_weeks_not_included >= -1)
    if P > 1:
        prev = np.column_stack([k_all, refs[:, :-1]])
        periods = prev - 2 * w - 1 - refs
        ok &= np.all(periods >= P - 1, axis=1)
    if predict is None:
        predict = (k_all >= 52 * b + w) & ok
    else:
        bad = np.flatnonzero(predict & ~ok)
        if bad.size:
            raise InputError(
                f"the farrington baseline cannot predict the week ending {weeks[bad[0]].date()}: "
                f"its window needs {b} years of history before it (b={b}, w={w}"
                + (f", no_periods={P}" if P > 1 else "")
                + f") and the data start {weeks[0].date()}; start the range later or lower b",
                column="range",
                value=str(weeks[bad[0]].date()),
            )
    kpos = np.flatnonzero(predict).astype(np.int64)
    K = kpos.size
    if K == 0:
        raise InputError(
            f"too little history for the farrington baseline: no week of the data "
            f"({weeks[0].date()} to {weeks[-1].date()}) has the {b} years of history b={b}, w={w} "
            "need",
            column="week_ending",
            value=T,
        )
    tt = k_all[None, :]
    kk = kpos[:, None]
    R = refs[kpos]  # [K, b]
    level = np.full((K, T), -1, dtype=np.int64)
    level[(tt >= kk - w) & (tt <= kk)] = P - 1
    for i in range(b):
        r = R[:, i : i + 1]
        level[np.abs(tt - r) <= w] = P - 1
        if P > 1:
            r_prev = kk if i == 0 else R[:, i - 1 : i]
            lo = r + w + 1
            period = r_prev - 2 * w - 1 - r
            base = period // (P - 1)
            rest = period % (P - 1)
            o = tt - lo
            between = (o >= 0) & (o < period)
            cut = rest * (base + 1)
            j = np.where(o < cut, o // (base + 1), rest + (o - cut) // np.maximum(base, 1))
            level = np.where(between, j, level)
    level[tt >= kk - past_weeks_not_included] = -1
    k_idx, t_idx = np.nonzero(level >= 0)
    lev = level[k_idx, t_idx]
    order = np.lexsort((t_idx, lev, k_idx))
    k_idx, t_idx, lev = k_idx[order], t_idx[order], lev[order]
    counts = np.bincount(k_idx * P + lev, minlength=K * P).reshape(K, P)
    lptr = np.zeros((K, P + 1), dtype=np.int64)
    lptr[:, 1:] = np.cumsum(counts, axis=1)
    wptr = np.zeros(K + 1, dtype=np.int64)
    wptr[1:] = np.cumsum(lptr[:, -1])
    sums = np.bincount(k_idx * P + lev, weights=t_idx, minlength=K * P).reshape(K, P)
    with np.errstate(invalid="ignore", divide="ignore"):
        cen = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)
    t0 = np.full(K, T, dtype=np.int64)
    np.minimum.at(t0, k_idx, t_idx)
    used = np.zeros(T, dtype=bool)
    used[t_idx] = True
    return {
        "kpos": kpos,
        "wptr": wptr,
        "rt": np.ascontiguousarray(t_idx, dtype=np.int64),
        "lptr": lptr,
        "cen": np.ascontiguousarray(cen),
        "t0": t0,
        "n_max": int(lptr[:, -1].max()),
        "used": used,
        "P": P,
    }


# ------------------------------------------------------------------------------------- thresholds
def _nb_quantile(prob: float, mean: FloatArray, phi: FloatArray) -> FloatArray:
    """R's qnbinom(prob, size = mean / (phi - 1), prob = 1 / phi), qpois when phi <= 1."""
    with np.errstate(invalid="ignore", divide="ignore"):
        size = mean / (phi - 1.0)
        nb = stats.nbinom.ppf(prob, size, 1.0 / phi)
        po = stats.poisson.ppf(prob, mean)
    out = np.where(phi > 1.0, nb, po)
    return np.where(np.isfinite(mean) & np.isfinite(phi), out, np.nan)


def farrington_prediction(
    observed: FloatArray,
    mu: FloatArray,
    obs_var: FloatArray,
    param_var: FloatArray,
    level: float,
    *,
    powertrans: str,
    threshold_method: str,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Lower and upper bounds at one-sided alpha = (1 - level) / 2 and z-scores (R's thresholds).

    For one series-week, obs_var = phi mu and param_var = se.fit^2 (response scale), and the upper
    bound is R's ``algo.farrington.threshold.farrington`` (``delta``) or
    ``algo.farrington.threshold.noufaily`` (``nbPlugin``, ``muan``) upper bound.

    Returns
    -------
    lower, upper, z_score : ndarray
    """
    alpha = (1.0 - level) / 2.0
    q = stats.norm.isf(alpha)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        if threshold_method == "delta":
            e = _POWERS[powertrans]
            me = np.power(mu, e)
            sd = np.sqrt(e * e * np.power(mu, 2.0 * e - 2.0) * (obs_var + param_var))
            upper = np.power(me + q * sd, 1.0 / e)
            lower = np.power(np.maximum(me - q * sd, 0.0), 1.0 / e)
            z = (np.power(observed, e) - me) / sd
            return lower, upper, z
        phi = obs_var / mu
        mean = mu
        if threshold_method == "muan":
            mean = mu * np.exp(q * np.sqrt(param_var) / mu)
        mean = np.where(np.isinf(mean), np.nan, mean)
        upper = _nb_quantile(1.0 - alpha, mean, phi)
        lower = np.maximum(_nb_quantile(alpha, mean, phi), 0.0)
        z = (observed - mu) / np.sqrt(obs_var + param_var)
    return lower, upper, z


# ------------------------------------------------------------------------------------- result
@dataclass(eq=False)
class FarringtonResult(BaselineResult):
    """Result of the ``farrington`` baseline (see the module docstring).

    Attributes (beyond :class:`BaselineResult`)
    ----------
    phi : ndarray [S, T]
        phi of each predicted week's own fit (floored at 1), NaN where not predicted.
    param_var : ndarray [S, T]
        var(mu) = R's se.fit^2 on the response scale.
    se_eta : ndarray [S, T]
        R's se.fit on the link scale.
    powertrans, threshold_method : str
    alpha : float
        The one-sided alpha of ``info["upperbound"]`` and ``info["alarm"]``.
    """

    #: One fit per series: a group's variances are sums of its series' own.
    additive_variance: ClassVar[bool] = True

    phi: FloatArray | None = None
    param_var: FloatArray | None = None
    se_eta: FloatArray | None = None
    powertrans: str = "2/3"
    threshold_method: str = "delta"
    alpha: float = 0.025

    def obs_variance(self) -> FloatArray:
        """phi_st mu_st: each predicted week has its own fit and dispersion."""
        assert self.phi is not None
        return self.phi * self.mu

    def param_variance_weekly(self, groups: IntArray, n_groups: int) -> FloatArray:
        """sum over the group's series of se.fit^2 (series are fitted independently): [G, T]."""
        assert self.param_var is not None
        return group_sum(self.param_var, groups, n_groups)

    def param_variance_window(
        self, groups: IntArray, n_groups: int, weeks: BoolArray
    ) -> FloatArray:
        """(sum_t se_st)^2 per series (perfect correlation within a series: an upper bound), summed
        over series: [G]."""
        assert self.param_var is not None
        sd = np.sqrt(self.param_var[:, weeks]).sum(axis=1)
        return group_sum(sd**2, groups, n_groups)

    def param_variance_running(
        self, groups: IntArray, n_groups: int, weeks: BoolArray
    ) -> FloatArray:
        """The window rule for every prefix of ``weeks`` at once: [G, K]."""
        assert self.param_var is not None
        sd = np.cumsum(np.sqrt(self.param_var[:, weeks]), axis=1)
        return group_sum(sd**2, groups, n_groups)

    def prediction(
        self,
        observed: FloatArray,
        mu: FloatArray,
        obs_var: FloatArray,
        param_var: FloatArray,
        level: float,
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """R's threshold rule at one-sided alpha = (1 - level) / 2; see :func:`farrington_prediction`."""
        return farrington_prediction(
            observed,
            mu,
            obs_var,
            param_var,
            level,
            powertrans=self.powertrans,
            threshold_method=self.threshold_method,
        )

    def coefficients(self, keys: pd.DataFrame) -> pd.DataFrame:
        """Strata, median dispersion over predicted weeks, converged, n_iter, share of weeks whose
        fit kept the trend."""
        out = super().coefficients(keys)
        trend = self.info["trend"]
        predicted = self.info["status"] >= 0
        with np.errstate(invalid="ignore", divide="ignore"):
            out["trend_share"] = trend.sum(axis=1) / predicted.sum(axis=1)
        return out

    def surveillance_frame(self, panel: Panel) -> pd.DataFrame:
        """R's outputs per series and week, tidy: strata..., week_ending, observed, expected (R's:
        NaN where limit54 fails), upperbound, alarm, score, phi, trend, trend_coef, status."""
        info = self.info
        expected = np.where(np.isfinite(info["upperbound"]), self.mu, np.nan)
        return panel.to_frame(
            {
                "observed": panel.deaths,
                "expected": expected,
                "upperbound": info["upperbound"],
                "alarm": info["alarm"],
                "score": info["score"],
                "phi": info["phi"],
                "trend": info["trend"],
                "trend_coef": info["trend_coef"],
                "status": info["status"],
            }
        )


# ------------------------------------------------------------------------------------- baseline
class FarringtonFlexible(Baseline):
    """R surveillance's ``farringtonFlexible``: one quasi-Poisson refit per series and predicted week.

    Registered as ``"farrington"``. Options left as ``None`` take the value of ``preset``. R's
    control names are accepted too (``weightsThreshold``, ``pThresholdTrend``, ``noPeriods``,
    ``pastWeeksNotIncluded``, ``thresholdMethod``, ``populationOffset``); ``b``, ``w``,
    ``reweight``, ``trend``, ``alpha``, ``limit54``, ``powertrans`` and ``range`` are spelled as in R.

    Parameters
    ----------
    preset : {"surveillance", "farrington1996", "noufaily2013"}, default "surveillance"
        Named settings (see :data:`PRESETS`): R's defaults; Farrington et al. (1996); Noufaily et
        al. (2013).
    b : int
        Years back (R ``b``).
    w : int
        Half-window in weeks (R ``w``).
    reweight : bool
        Down-weight past outbreaks by their Anscombe residuals (R ``reweight``).
    weights_threshold : float
        Residuals above it are down-weighted (R ``weightsThreshold``; 1 in 1996, 2.58 in 2013).
    no_periods : int
        Levels of the seasonal factor; 1 = the 1996 windows only (R ``noPeriods``).
    past_weeks_not_included : int, optional
        Recent weeks left out (R ``pastWeeksNotIncluded``; ``None`` = ``w``).
    trend : bool
        Try a linear trend (R ``trend``), kept by R's rule.
    p_threshold_trend : float
        Trend kept if its p-value is below (R ``pThresholdTrend``; 0.05, or 1 in 2013).
    powertrans : {"2/3", "1/2", "none"}
        Scale of the ``delta`` threshold (R ``powertrans``).
    threshold_method : {"delta", "nbPlugin", "muan"}
        R ``thresholdMethod``.
    alpha : float, default 0.025
        One-sided alpha of ``info["upperbound"]`` and the alarms (R ``alpha``; R's default is 0.05,
        ours matches the upper bound of the default 95% interval of ``Fit.weekly``).
    limit54 : (int, int)
        No alarm (and no R ``upperbound``) unless at least ``cases`` deaths in the last ``period``
        weeks, current one included (R ``limit54``).
    population_offset : bool
        log(population) offset (R ``populationOffset``); needs a ``population`` column.
    range : (start, end), optional
        Weeks to predict (R ``range``, as dates); default every week from R's default start.
    max_iter, tol : int, float
        R ``glm.control`` (25, 1e-8).

    Notes
    -----
    ``reference`` (of :func:`excessmort.fit`) is not used to fit: each week's window is the ``b``
    years before it. It only sets ``Fit``'s default period of cumulative excess.

    Examples
    --------
    >>> FarringtonFlexible(preset="noufaily2013").settings()["no_periods"]
    10
    >>> FarringtonFlexible(noPeriods=4).no_periods
    4
    """

    name: ClassVar[str] = "farrington"

    def __init__(
        self,
        preset: str = "surveillance",
        *,
        b: int | None = None,
        w: int | None = None,
        reweight: bool | None = None,
        weights_threshold: float | None = None,
        no_periods: int | None = None,
        past_weeks_not_included: int | None = None,
        trend: bool | None = None,
        p_threshold_trend: float | None = None,
        powertrans: str | None = None,
        threshold_method: str | None = None,
        alpha: float = 0.025,
        limit54: tuple[int, int] | None = None,
        population_offset: bool | None = None,
        range: tuple[Any, Any] | None = None,
        max_iter: int = 25,
        tol: float = 1e-8,
        **r_names: Any,
    ) -> None:
        self.preset = preset
        self.b = b
        self.w = w
        self.reweight = reweight
        self.weights_threshold = weights_threshold
        self.no_periods = no_periods
        self.past_weeks_not_included = past_weeks_not_included
        self.trend = trend
        self.p_threshold_trend = p_threshold_trend
        self.powertrans = powertrans
        self.threshold_method = threshold_method
        self.alpha = alpha
        self.limit54 = limit54
        self.population_offset = population_offset
        self.range = range
        self.max_iter = max_iter
        self.tol = tol
        for key, value in r_names.items():
            if key not in R_NAMES:
                raise TypeError(
                    f"unexpected option {key!r}; options are {[*_OPTIONS, 'alpha', 'range']} "
                    f"(R names {sorted(R_NAMES)} are accepted too)"
                )
            setattr(self, R_NAMES[key], value)

    def settings(self) -> dict[str, Any]:
        """The options in force: the preset's values overridden by those given.

        Raises
        ------
        InputError
            For an unknown preset or an option outside its allowed values (the message echoes it).
        """
        if self.preset not in PRESETS:
            raise InputError(
                f"preset must be one of {list(PRESETS)}, got {self.preset!r}",
                column="preset",
                value=self.preset,
            )
        out = dict(PRESETS[self.preset])
        for key in _OPTIONS:
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if out["past_weeks_not_included"] is None:
            out["past_weeks_not_included"] = out["w"]
        out["alpha"] = self.alpha
        _validate(out, self.max_iter, self.tol)
        return out

    def fit(
        self, panel: Panel, *, reference: tuple[Any, Any] | None, engine: Engine = "auto"
    ) -> FarringtonResult:
        """Every series, every predicted week, in one kernel call; see the module docstring.

        Raises
        ------
        InputError
            For bad options, a population offset without a ``population`` column, or too little
            history for the weeks asked for.
        """
        opt = self.settings()
        weeks = panel.weeks
        if opt["population_offset"] and panel.exposure is None:
            raise InputError(
                "population_offset=True needs a 'population' column in the input",
                column="population",
            )
        predict = None
        if self.range is not None:
            try:
                lo, hi = (to_timestamp(v) for v in self.range)
            except (TypeError, ValueError) as exc:
                raise InputError(
                    f"range must be a (start, end) pair of dates, got {self.range!r}",
                    column="range",
                    value=self.range,
                ) from exc
            predict = np.asarray((weeks >= lo) & (weeks <= hi))
            if not predict.any():
                raise InputError(
                    f"range {lo.date()} to {hi.date()} holds no week of the data "
                    f"({weeks[0].date()} to {weeks[-1].date()})",
                    column="range",
                    value=self.range,
                )
        win = farrington_windows(
            weeks,
            b=opt["b"],
            w=opt["w"],
            no_periods=opt["no_periods"],
            past_weeks_not_included=opt["past_weeks_not_included"],
            predict=predict,
        )
        Y = panel.deaths
        OFF = panel.offset if opt["population_offset"] else None
        df = np.arange(win["n_max"] + 1, dtype=np.float64)
        p_half = min(max(opt["p_threshold_trend"] / 2.0, 0.0), 1.0)
        with np.errstate(invalid="ignore"):
            tcrit = np.where(df > 0, stats.t.isf(p_half, np.maximum(df, 1.0)), np.inf)
        out = farrington_glm(
            Y,
            OFF,
            win,
            trend=bool(opt["trend"]),
            reweight=bool(opt["reweight"]),
            weights_threshold=float(opt["weights_threshold"]),
            b_ok=opt["b"] >= 3,
            tcrit=tcrit,
            max_iter=int(self.max_iter),
            tol=float(self.tol),
            engine=engine,
        )
        return _result(panel, win, out, opt, engine)


def _validate(opt: dict[str, Any], max_iter: Any, tol: Any) -> None:
    def bad(name: str, want: str) -> InputError:
        return InputError(
            f"{name} must be {want}, got {opt.get(name)!r}", column=name, value=opt.get(name)
        )

    def is_int(v: Any) -> bool:
        return isinstance(v, int | np.integer) and not isinstance(v, bool)

    if not is_int(opt["b"]) or opt["b"] < 1:
        raise bad("b", "an integer >= 1")
    if not is_int(opt["w"]) or opt["w"] < 0:
        raise bad("w", "an integer >= 0")
    if not is_int(opt["no_periods"]) or opt["no_periods"] < 1:
        raise bad("no_periods", "an integer >= 1")
    if not is_int(opt["past_weeks_not_included"]) or opt["past_weeks_not_included"] < 0:
        raise bad("past_weeks_not_included", "an integer >= 0 (or None for w)")
    for name in ("reweight", "trend", "population_offset"):
        if not isinstance(opt[name], bool | np.bool_):
            raise bad(name, "True or False")
    for name in ("weights_threshold", "p_threshold_trend"):
        v = opt[name]
        if isinstance(v, bool) or not isinstance(v, int | float) or not np.isfinite(v):
            raise bad(name, "a finite number")
    if opt["powertrans"] not in _POWERS:
        raise bad("powertrans", f"one of {list(_POWERS)}")
    if opt["threshold_method"] not in _METHODS:
        raise bad("threshold_method", f"one of {list(_METHODS)}")
    a = opt["alpha"]
    if isinstance(a, bool) or not isinstance(a, int | float) or not 0.0 < a < 0.5:
        raise bad("alpha", "a float in (0, 0.5), the one-sided level of the upper bound")
    lim = opt["limit54"]
    try:
        cases, period = (int(v) for v in lim)
        okay = cases >= 0 and period > 0 and cases == lim[0] and period == lim[1]
    except (TypeError, ValueError):
        okay = False
    if not okay:
        raise bad("limit54", "a pair (cases >= 0, period > 0) of integers")
    if not is_int(max_iter) or max_iter < 1:
        raise InputError(
            f"max_iter must be an integer >= 1, got {max_iter!r}", column="max_iter", value=max_iter
        )
    if isinstance(tol, bool) or not isinstance(tol, int | float) or not tol > 0:
        raise InputError(f"tol must be a number > 0, got {tol!r}", column="tol", value=tol)


def _result(
    panel: Panel, win: dict[str, Any], out: FloatArray, opt: dict[str, Any], engine: str
) -> FarringtonResult:
    """Scatter the kernel's [S, K] output onto the [S, T] grid, R's thresholds and alarms."""
    S, T = panel.deaths.shape
    kpos = win["kpos"]

    def grid(values: FloatArray, fill: float = np.nan) -> FloatArray:
        g = np.full((S, T), fill)
        g[:, kpos] = values
        return g

    status_k = out[:, :, O_STATUS]
    good = status_k == STATUS_OK
    eta = grid(np.where(good, out[:, :, O_ETA], np.nan))
    se_eta = grid(np.where(good, out[:, :, O_SE], np.nan))
    phi = grid(np.where(good, out[:, :, O_PHI], np.nan))
    disp = grid(np.where(good, out[:, :, O_DISP], np.nan))
    with np.errstate(over="ignore"):
        mu = np.maximum(np.exp(eta), EPS)
    mu = np.where(np.isfinite(eta), mu, np.nan)
    param_var = (se_eta * mu) ** 2
    status = grid(status_k, -1.0).astype(np.int64)
    trend = grid(np.where(good, out[:, :, O_TREND], 0.0), 0.0) > 0.5
    trend_coef = grid(np.where(good, out[:, :, O_COEF], np.nan))

    y = panel.deaths
    method = opt["threshold_method"]
    level = 1.0 - 2.0 * opt["alpha"]
    _, upper, _ = farrington_prediction(
        y, mu, phi * mu, param_var, level, powertrans=opt["powertrans"], threshold_method=method
    )
    cases, period = (int(v) for v in opt["limit54"])
    recent = np.full((S, T), np.nan)
    if period <= T:  # a missing week among them makes the sum NaN (R: NA, so no bound)
        recent[:, period - 1 :] = np.lib.stride_tricks.sliding_window_view(y, period, axis=1).sum(
            -1
        )
    with np.errstate(invalid="ignore"):
        enough = recent >= cases
        pred_fit = mu if method == "delta" else eta  # R's score uses predict's scale
        score = np.where(enough, (y - pred_fit) / (upper - pred_fit), np.nan)
        alarm = ~np.isnan(score) & (score > 1.0) & (y != 0)
    upperbound = np.where(enough, upper, np.nan)

    predicted = status >= 0
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        phi_s = np.nanmedian(np.where(predicted, phi, np.nan), axis=1)
        disp_s = np.nanmedian(np.where(predicted, disp, np.nan), axis=1)
    converged = np.all(good, axis=1)
    fit_mask = win["used"][None, :] & panel.observed_mask
    n_iter = np.nanmax(out[:, :, O_ITER], axis=1, initial=0.0)
    n_iter = np.where(np.isfinite(n_iter), n_iter, 0).astype(np.int64)
    return FarringtonResult(
        baseline="farrington",
        mu=mu,
        dispersion=phi_s,
        dispersion_raw=disp_s,
        converged=converged,
        n_iter=n_iter,
        fit_mask=fit_mask,
        info={
            "upperbound": upperbound,
            "alarm": alarm,
            "score": score,
            "enough_cases": enough,
            "trend": trend,
            "trend_coef": trend_coef,
            "phi": phi,
            "dispersion_weekly": disp,
            "status": status,
        },
        phi=phi,
        param_var=param_var,
        se_eta=se_eta,
        powertrans=opt["powertrans"],
        threshold_method=method,
        alpha=float(opt["alpha"]),
    )
