"""Rates per 100,000 and age-standardised rates (observed, expected, excess) with intervals.

Crude rates (:meth:`Fit.rates`): the figures of :meth:`Fit.cumulative` divided by the mean
population of the period (the sum over the series of each series' mean ``population`` over the
weeks), per 100,000. The interval of a rate is the interval of the count over the same population.

Age-standardised rates (:meth:`Fit.standardised`): for each row of the strata kept (``region``,
``sex``...), summing over the age groups a,

    ASR = 100,000 sum_a w_a y_a / P_a  /  sum_a w_a,

with y_a the deaths of age group a over the period (summed over the row's series of that age: the
sexes, when ``by=["region"]`` keeps fewer strata than the data have), P_a its mean population over
the period (summed likewise) and w_a the standard population of the age group: the 2013 European
Standard Population (ESP2013, Eurostat; 19 five-year bands to 90+ summing to 100,000; its bands are
summed into the data's age groups, which must start on ESP band edges) or the user's
``{age_group: weight}``. Expected and excess rates use mu_a for y_a. The excess rate is the weighted
sum sum_s c_s sum_t (y_st - mu_st) over the row's series, c_s = 100,000 w_a / (P_a sum w) for a
series of age a. Its variance:

- with the residual dependence (the default, ``fit(..., dependence=True)``): the model of
  :mod:`excessmort.dependence` for the weighted sum itself, as for an unweighted aggregate: the
  row's weighted reference residuals sum_s c_s (y_st - mu_st) against their null variance
  sum_s c_s^2 phi_s mu_st (less the fitted sum's), their autocorrelation and year effects, over the
  weeks of the period; the parameter part inflated as for any sum. With c_s = 1 it is exactly the
  variance :meth:`Fit.cumulative` gives the aggregate; for one series it is c^2 times the series'
  own;
- with ``dependence=False``: independence, sum_s c_s^2 (sum_t phi_s mu_st) plus the parameter part.

The parameter part is Var(sum_a c_a M_a) for the row's age sums M_a of expected deaths: sum_s
c_s^2 var_s when every series has its own fit, else from the baseline's group variances with
cov(a, b) = (var(a + b) - var(a) - var(b)) / 2 (exact, the shared coefficients of the pooled
models included). Bounds are normal, rate -+ z sd; for the baselines whose own interval rule is not
(EuroMOMO's 2/3-power scale) this is an approximation, and ``attrs["intervals"]`` says so
(``rule``, ``baseline_rule``, ``text``) beside what the interval contains.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from .exceptions import InputError

if TYPE_CHECKING:
    from ._fit import Fit

__all__ = ["ESP2013", "european_standard_population", "rates", "standardised"]

#: The 2013 European Standard Population: (lower age, upper age exclusive or None, weight).
ESP2013: tuple[tuple[int, int | None, int], ...] = (
    (0, 1, 1000),
    (1, 5, 4000),
    (5, 10, 5500),
    (10, 15, 5500),
    (15, 20, 5500),
    (20, 25, 6000),
    (25, 30, 6000),
    (30, 35, 6500),
    (35, 40, 7000),
    (40, 45, 7000),
    (45, 50, 7000),
    (50, 55, 7000),
    (55, 60, 6500),
    (60, 65, 6000),
    (65, 70, 5500),
    (70, 75, 5000),
    (75, 80, 4000),
    (80, 85, 2500),
    (85, 90, 1500),
    (90, 95, 800),
    (95, None, 200),
)


def _age_range(label: str) -> tuple[int, int | None]:
    """[lower, upper) of an age-group label: '<1', '1-14', '85+', '90 and over', '0-64'."""
    text = str(label).strip().lower()
    if m := re.fullmatch(r"(?:<|under\s*)(\d+)", text):
        return 0, int(m.group(1))
    if m := re.fullmatch(r"(\d+)\s*(?:\+|and over|plus|or over)", text):
        return int(m.group(1)), None
    if m := re.fullmatch(r"(\d+)\s*(?:-|to|\u2013)\s*(\d+)", text):
        return int(m.group(1)), int(m.group(2)) + 1
    if m := re.fullmatch(r"(\d+)", text):
        return int(m.group(1)), int(m.group(1)) + 1
    raise InputError(
        f"cannot read the age group {label!r} as an age range (such as '<1', '15-44', '85+')",
        column="age_group",
        value=label,
    )


def european_standard_population(age_groups: Sequence[str]) -> dict[str, float]:
    """ESP2013 weights summed into the given age groups.

    Raises
    ------
    InputError
        When an age group does not start and end on ESP2013 band edges (0, 1, 5, 10, ..., 95), or
        the groups leave ages uncovered.

    Examples
    --------
    >>> european_standard_population(["<1", "1-14", "15-44", "45-64", "65-74", "75-84", "85+"])
    {'<1': 1000.0, '1-14': 15000.0, '15-44': 38000.0, '45-64': 26500.0, '65-74': 10500.0, '75-84': 6500.0, '85+': 2500.0}
    """
    edges = {lo for lo, _, _ in ESP2013} | {95}
    out: dict[str, float] = {}
    for label in age_groups:
        lo, hi = _age_range(label)
        if lo not in edges or (hi is not None and hi not in edges | {100}):
            raise InputError(
                f"age group {label!r} ({lo} to {'' if hi is None else hi - 1}) does not start and "
                "end on the bands of the 2013 European Standard Population (0, 1, 5, 10, ..., 95); "
                "pass standard={age_group: weight} instead",
                column="age_group",
                value=label,
            )
        out[str(label)] = float(
            sum(w for a, b, w in ESP2013 if a >= lo and (hi is None or (b is not None and b <= hi)))
        )
    if abs(sum(out.values()) - 100_000) > 1e-9:
        raise InputError(
            f"the age groups {list(age_groups)} cover {sum(out.values()):,.0f} of the 100,000 of "
            "the 2013 European Standard Population: some ages are missing or counted twice",
            column="age_group",
            value=list(age_groups),
        )
    return out


def _needs_population(fit: Fit) -> np.ndarray:
    exposure = fit.panel.exposure
    if exposure is None:
        raise InputError(
            "rates need a 'population' column in the data (per series and week; see "
            "excessmort.population.add_population to interpolate mid-year estimates)",
            column="population",
        )
    return exposure


def rates(
    fit: Fit, start: Any = None, end: Any = None, *, per: float = 100_000, **period: Any
) -> pd.DataFrame:
    """Crude rates of :meth:`Fit.cumulative` per ``per`` of the mean population (see the module)."""
    from ._rates import add_rates

    exposure = _needs_population(fit)
    p = fit.period(start, end, **period)
    cum = fit.cumulative(start, end, **period)  # carries the rates per 100,000 already
    return add_rates(cum, fit._sum(exposure[:, p.mask].mean(axis=1)), per=per)


def standardised(
    fit: Fit,
    start: Any = None,
    end: Any = None,
    *,
    by: Sequence[str] | None = None,
    age: str = "age_group",
    standard: str | Mapping[str, float] = "esp2013",
    per: float = 100_000,
    **period: Any,
) -> pd.DataFrame:
    """Age-standardised observed, expected and excess rates with intervals (see the module)."""
    from ._fit import Fit

    if not isinstance(fit, Fit) or fit._by is not None:
        raise InputError(
            "standardised() works on the fit of the series (not a by() view); pass by= to it",
            column="by",
            value=getattr(fit, "_by", None),
        )
    exposure = _needs_population(fit)
    age = fit._stratum_name(age, "standardised")
    keep = (
        [c for c in fit.panel.strata if c != age]
        if by is None
        else [fit._stratum_name(c, "standardised") for c in by]
    )
    if age in keep:
        raise InputError("by= must not hold the age stratum", column="by", value=list(keep))
    labels = [str(c) for c in fit.panel.keys[age].cat.categories]
    if isinstance(standard, str):
        if standard.lower().replace("_", "") not in ("esp2013", "esp", "european"):
            raise InputError(
                f"standard must be 'esp2013' or a mapping of age group to weight, got {standard!r}",
                column="standard",
                value=standard,
            )
        weights = european_standard_population(labels)
    else:
        missing = [a for a in labels if a not in standard]
        if missing:
            raise InputError(
                f"the standard population lacks the age groups {missing}; it has {list(standard)}",
                column="standard",
                value=missing,
            )
        weights = {a: float(standard[a]) for a in labels}
    total_w = sum(weights.values())
    p = fit.period(start, end, **period)
    window = p.mask
    panel, res = fit.panel, fit.result
    ages = panel.keys[age].astype(str).to_numpy()
    # The rows: groups of the strata kept (one row when none is kept).
    if keep:
        gid, keys = panel.group_index(keep)
    else:
        gid, keys = np.zeros(panel.n_series, dtype=np.int64), pd.DataFrame(index=pd.RangeIndex(1))
    n_groups = len(keys)
    age_levels = list(dict.fromkeys(ages))
    age_pos = {a: i for i, a in enumerate(age_levels)}
    a_idx = np.array([age_pos[a] for a in ages])
    n_age = len(age_levels)
    # P_a of a row: the mean population of its age group over the period, summed over the row's
    # series of that age (sexes, areas... when by= keeps fewer strata than the data have)
    cell = gid * n_age + a_idx
    cell_pop = np.bincount(
        cell, weights=exposure[:, window].mean(axis=1), minlength=n_groups * n_age
    )
    w = np.array([weights[a] for a in ages])
    c = per * w / (cell_pop[cell] * total_w)  # [S], one value per (row, age) cell
    coef = np.zeros(n_groups * n_age)
    coef[cell] = c
    coef = coef.reshape(n_groups, n_age)
    y = np.sum(panel.deaths[:, window], axis=1)
    mu = np.sum(res.mu[:, window], axis=1)

    def group_sum(values: np.ndarray) -> np.ndarray:
        out = np.zeros((n_groups, *values.shape[1:]))
        np.add.at(out, gid, values)
        return out

    observed = group_sum(c * y)
    expected = group_sum(c * mu)
    # Parameter (co)variances of the rows' weighted sums, from the baseline's own group variances.
    additive = res.additive_variance
    var_par = weighted_group_variance(
        lambda g, n: res.param_variance_window(g, n, window), gid, a_idx, coef, additive
    )
    dep = None
    if fit._dependence_on:
        var_obs, var_par, dep = _dependence_variances(fit, window, gid, a_idx, coef, c, var_par)
    else:
        var_obs = group_sum(c**2 * np.sum(res.obs_variance()[:, window], axis=1))
    z = stats.norm.ppf(0.5 + fit.level / 2.0)
    sd = np.sqrt(var_obs + var_par)
    with np.errstate(invalid="ignore", divide="ignore"):
        se_log = np.sqrt(var_par) / expected
    excess = observed - expected
    out = keys.copy()
    from ._frames import add_region_name

    add_region_name(out)
    out["period"] = p.label
    out["start"] = p.first
    out["end"] = p.last
    out["n_weeks"] = p.n_weeks
    out["standard"] = "ESP2013" if isinstance(standard, str) else "user"
    out["observed_rate"] = observed
    out["expected_rate"] = expected
    out["expected_rate_lower"] = expected * np.exp(-z * se_log)
    out["expected_rate_upper"] = expected * np.exp(z * se_log)
    out["excess_rate"] = excess
    out["excess_rate_lower"] = excess - z * sd
    out["excess_rate_upper"] = excess + z * sd
    with np.errstate(invalid="ignore", divide="ignore"):
        out["p_score"] = 100.0 * excess / expected
    out.attrs["intervals"] = _describe(fit, dep)
    out.attrs["level"] = fit.level
    return out


def weighted_group_variance(
    call: Callable[[np.ndarray, int], np.ndarray],
    gid: np.ndarray,
    a_idx: np.ndarray,
    coef: np.ndarray,
    additive: bool = False,
) -> np.ndarray:
    """Var of sum_a coef[g, a] M_ga for every row g, M_ga the sum over the row's series of age a.

    ``call(groups, n_groups)`` gives the variance of unweighted group sums ([n_groups, ...]: a
    baseline's parameter or fitted variance, weekly or over a window); covariances come from
    cov(a, b) = (var(a + b) - var(a) - var(b)) / 2, exact for every baseline (the shared
    coefficients of the pooled model included): n_age (n_age + 1) / 2 calls. ``additive``
    (the result's group variances are sums over its series, :attr:`BaselineResult.additive_variance`):
    one call, sum_s c_s^2 var_s.
    """
    n_groups, n_age = coef.shape
    if additive:
        # the series' estimates are independent (one fit per series): sum_s c_s^2 var_s, one call
        from .baselines._util import group_sum

        n_series = gid.size
        per = np.asarray(call(np.arange(n_series, dtype=np.int64), n_series))
        c = coef[gid, a_idx].reshape((n_series,) + (1,) * (per.ndim - 1))
        return group_sum(c**2 * per, gid, n_groups)

    def var_of(members: np.ndarray) -> np.ndarray:
        g = np.where(members, gid, n_groups)
        return np.asarray(call(g, n_groups + 1))[:n_groups]

    single = [var_of(a_idx == i) for i in range(n_age)]
    shape = (n_groups,) + (1,) * (single[0].ndim - 1)
    k = [coef[:, i].reshape(shape) for i in range(n_age)]
    total = sum(k[i] ** 2 * single[i] for i in range(n_age))
    for i in range(n_age):
        for j in range(i + 1, n_age):
            both = var_of((a_idx == i) | (a_idx == j))
            total = total + k[i] * k[j] * (both - single[i] - single[j])
    return np.asarray(total, dtype=np.float64)


def _dependence_variances(
    fit: Fit,
    window: np.ndarray,
    gid: np.ndarray,
    a_idx: np.ndarray,
    coef: np.ndarray,
    c: np.ndarray,
    param_window: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, Any]:
    """(observation, parameter variance [G], dependence model) of the rows' weighted window sums.

    The dependence model of :mod:`excessmort.dependence` for the weighted sum e_gt = sum_s c_s
    (y_st - mu_st) of each row: its reference residuals, null variances sum c_s^2 phi_s mu_st and
    the fitted sum's variance (weighted), sum c_s mu_st for the year effects; then the window's
    serial + year variance and the inflated parameter variance, as :meth:`Fit.cumulative` does for
    an unweighted aggregate (with c_s = 1 it is that).
    """
    import warnings

    from .baselines._util import group_sum
    from .dependence import (
        DependenceWarning,
        GroupSums,
        dependence_from_sums,
        year_effect_from_sums,
    )

    res, weeks = fit.result, fit.weeks
    n_groups = coef.shape[0]
    additive = res.additive_variance
    view, counts = res.dependence_view(fit.panel.deaths)
    rmask = view.residual_mask()
    obs_series = view.obs_variance()

    def gsum(values: np.ndarray) -> np.ndarray:
        return group_sum(values, gid, n_groups)  # NaN in a member makes the row's week NaN

    with np.errstate(invalid="ignore"):
        resid = gsum(c[:, None] * np.where(rmask, counts - view.mu, np.nan))
    cal = np.asarray(weeks.year, dtype=np.float64)
    years = np.unique(cal)
    resid_weeks = np.any(rmask, axis=0)
    year_fitted = np.zeros((years.size, n_groups))
    if res.residuals_in_sample:  # the leverage of a year's sum (only in-sample residuals use it)
        for j, yr in enumerate(years):
            span = (cal == yr) & resid_weeks
            if span.any():
                year_fitted[j] = weighted_group_variance(
                    lambda g, n, span=span: view.fitted_variance_window(g, n, span),
                    gid,
                    a_idx,
                    coef,
                    additive,
                )
    sums = GroupSums(
        resid=resid,
        obs=gsum(c[:, None] ** 2 * obs_series),
        fitted=weighted_group_variance(view.fitted_variance_weekly, gid, a_idx, coef, additive),
        mu=gsum(c[:, None] * view.mu),
        root=gsum(c[:, None] * np.sqrt(obs_series)),
        members=np.bincount(gid, minlength=n_groups).astype(np.float64),
        phi=np.bincount(gid, weights=np.asarray(res.dispersion), minlength=n_groups),
        resid_weeks=resid_weeks,
        year_fitted=year_fitted,
        years=years,
    )
    year = year_effect_from_sums(sums, res, weeks)
    dep = dependence_from_sums(sums, year, res, weeks)
    if dep.short.any():
        warnings.warn(
            f"{int(dep.short.sum())} of {n_groups} standardised rows have too short a reference "
            "to estimate the residual dependence: their sums over weeks are taken as fully "
            "correlated (wider intervals, never narrower)",
            DependenceWarning,
            stacklevel=4,
        )
    obs_w = gsum(c[:, None] ** 2 * res.obs_variance()[:, window])
    mu_w = gsum(c[:, None] * res.mu[:, window])
    pv = np.zeros_like(mu_w)
    pv[:, -1] = param_window
    param_weekly = weighted_group_variance(res.param_variance_weekly, gid, a_idx, coef, additive)[
        :, window
    ]
    obs_run, param_run, _ = dep.running(
        obs_w,
        mu_w,
        pv,
        weeks[window],
        fit.level,
        engine=fit._engine,
        param_weekly=param_weekly,
    )
    return obs_run[:, -1], param_run[:, -1], dep


def _describe(fit: Fit, dep: Any) -> dict[str, Any]:
    """What the standardised rates' intervals contain (``attrs["intervals"]``)."""
    info = dict(fit.intervals)
    rule = info["rule"]
    info["baseline_rule"] = rule
    info["rule"] = "normal"
    if rule != "normal":
        info["text"] += (
            f"; bounds normal (rate -+ z sd) with the variance of the weighted sum, an "
            f"approximation to the baseline's own {rule} interval"
        )
    if dep is not None:
        info["short_reference_rows"] = int(dep.short.sum())
        info["year_effect_sd"] = float(np.sqrt(dep.year.sigma2))
    return info
