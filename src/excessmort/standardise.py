"""Rates per 100,000 and age-standardised rates (observed, expected, excess) with intervals.

Crude rates (:meth:`Fit.rates`): the figures of :meth:`Fit.cumulative` divided by the mean
population of the period (the sum over the series of each series' mean ``population`` over the
weeks), per 100,000. The interval of a rate is the interval of the count over the same population.

Age-standardised rates (:meth:`Fit.standardised`): for each row of the strata kept (``region``,
``sex``...), summing over the age groups a,

    ASR = 100,000 sum_a w_a y_a / P_a  /  sum_a w_a,

with y_a the deaths of age group a over the period, P_a its mean population over the period and
w_a the standard population of the age group: the 2013 European Standard Population (ESP2013,
Eurostat; 19 five-year bands to 90+ summing to 100,000; its bands are summed into the data's age
groups, which must start on ESP band edges) or the user's ``{age_group: weight}``. Expected and
excess rates use mu_a for y_a. The excess rate is a linear combination sum_a c_a (y_a - mu_a) of
the series, c_a = 100,000 w_a / (P_a sum w), so its variance is

    sum_a c_a^2 (observation variance of a) + sum_ab c_a c_b cov(mu_a, mu_b),

the parameter covariances coming from the baseline's own window variances (cov(a, b) =
(var(a + b) - var(a) - var(b)) / 2: exact for every baseline, shared coefficients of the pooled
model included). Bounds are normal, mu -+ z sd (for EuroMOMO and the pooled model's distribution
intervals this is an approximation of their own rule).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
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
    pop = exposure[:, window].mean(axis=1)  # P_a per series
    w = np.array([weights[a] for a in ages])
    c = per * w / (pop * total_w)  # [S]
    y = np.sum(panel.deaths[:, window], axis=1)
    mu = np.sum(res.mu[:, window], axis=1)
    obs_var = np.sum(res.obs_variance()[:, window], axis=1)

    def group_sum(values: np.ndarray) -> np.ndarray:
        out = np.zeros(n_groups)
        np.add.at(out, gid, values)
        return out

    observed = group_sum(c * y)
    expected = group_sum(c * mu)
    var_obs = group_sum(c**2 * obs_var)
    # Parameter (co)variances of the window sums, from the baseline's own window variance.
    age_levels = list(dict.fromkeys(ages))
    age_pos = {a: i for i, a in enumerate(age_levels)}
    a_idx = np.array([age_pos[a] for a in ages])
    n_age = len(age_levels)
    # One series per (group, age): that is what the data's strata make it.
    series_of = np.full((n_groups, n_age), -1, dtype=np.int64)
    series_of[gid, a_idx] = np.arange(panel.n_series)

    def window_var(members: np.ndarray) -> np.ndarray:
        g = np.where(members, gid, n_groups)
        return res.param_variance_window(g, n_groups + 1, window)[:n_groups]

    single = np.zeros((n_groups, n_age))
    for i in range(n_age):
        single[:, i] = window_var(a_idx == i)
    coef = np.zeros((n_groups, n_age))
    ok = series_of >= 0
    coef[ok] = c[series_of[ok]]
    var_par = np.sum(coef**2 * single, axis=1)
    for i in range(n_age):
        for j in range(i + 1, n_age):
            both = window_var((a_idx == i) | (a_idx == j))
            cov = (both - single[:, i] - single[:, j]) / 2.0
            var_par += 2.0 * coef[:, i] * coef[:, j] * cov
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
    return out
