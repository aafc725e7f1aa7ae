"""The pooled baseline against statsmodels on the same dense design, scipy quantiles, closed forms.

The dense design is built here, independently of the structured one, with R's ``model.matrix``
coding of the producer's terms written out by hand (treatment contrasts for a main effect, one
indicator per level for a stratum whose margin is not in the model, calendar columns slowest and the
first stratum fastest inside a term).

Tolerances (relative): beta, mu, phi, covariance 1e-8 against statsmodels (covariance relative to
sqrt(V_ii V_jj), since some entries are structural zeros); numba vs numpy 1e-10; thread counts
exact; quantiles exact; aggregate variances vs dense algebra 1e-10.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats

import excessmort as em
from excessmort.baselines.pooled import (
    DEFAULT_TERMS,
    Pooled,
    PooledResult,
    build_pooled_design,
    irls_pooled,
    parse_terms,
)
from excessmort.calendar_terms import holiday_indicators, month_weights, trend_term
from excessmort.exceptions import InputError
from excessmort.panel import Panel

REGIONS = ["E12000001", "E12000002", "E12000003"]
SEXES = ["F", "M"]
AGES = ["0-64", "65-84", "85+"]
REFERENCE = ("2015-01-01", "2019-12-31")


def _frame(seed: int = 1, phi: float = 1.5) -> pd.DataFrame:
    """3 regions x 2 sexes x 3 age groups, 2015-2020 weekly, counts with variance phi mu."""
    rng = np.random.default_rng(seed)
    weeks = pd.date_range("2015-01-02", "2020-12-25", freq="7D")
    t = np.arange(len(weeks))
    hol, _ = holiday_indicators(weeks)
    parts = []
    for r in REGIONS:
        for sx in SEXES:
            for a in AGES:
                pop = rng.uniform(1e5, 5e5)
                rate = {"0-64": 2e-5, "65-84": 2e-4, "85+": 1e-3}[a] * (1.15 if sx == "M" else 1.0)
                season = 1 + {"0-64": 0.05, "65-84": 0.15, "85+": 0.25}[a] * np.cos(
                    2 * np.pi * t / 52.18
                )
                mu = (
                    pop
                    * rate
                    * season
                    * (1 - 0.08 * hol[:, 0] + 0.1 * hol[:, 1] - 0.05 * hol[:, 3])
                )
                size = mu / (phi - 1.0)
                y = rng.negative_binomial(size, size / (size + mu))
                parts.append(
                    pd.DataFrame(
                        {
                            "region": r,
                            "sex": sx,
                            "age_group": a,
                            "week_ending": weeks,
                            "deaths": y.astype(float),
                            "population": pop,
                        }
                    )
                )
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="module")
def panel() -> Panel:
    return Panel.from_frame(_frame())


def _dense_default(panel: Panel) -> tuple[np.ndarray, list[str]]:
    """X [S * T, p] of DEFAULT_TERMS in R's column order, written out by hand."""
    weeks = panel.weeks
    trend, _ = trend_term(weeks)
    months, _ = month_weights(weeks)
    hol, hol_names = holiday_indicators(weeks)
    keys = panel.keys.astype(str)
    names = ["intercept", "trend", *hol_names]
    names += [f"region[{r}]" for r in REGIONS[1:]]
    names += [f"month{m}:age_group[{a}]" for m in range(1, 13) for a in AGES]
    names += [f"sex[{sx}]:age_group[{a}]" for a in AGES for sx in SEXES]
    blocks = []
    for s in range(panel.n_series):
        r, sx, a = keys.loc[s, "region"], keys.loc[s, "sex"], keys.loc[s, "age_group"]
        cols = [np.ones(len(weeks)), trend[:, 0], *hol.T]
        cols += [np.full(len(weeks), float(r == lv)) for lv in REGIONS[1:]]
        cols += [months[:, m] * float(a == lv) for m in range(12) for lv in AGES]
        cols += [np.full(len(weeks), float(a == la and sx == ls)) for la in AGES for ls in SEXES]
        blocks.append(np.column_stack(cols))
    return np.vstack(blocks), names


def _statsmodels(X: np.ndarray, panel: Panel, fit: np.ndarray, tol: float = 1e-10):  # type: ignore[no-untyped-def]
    # statsmodels stops when two consecutive deviances differ by less than ``tol`` absolutely. The
    # deviance here is about 4.7e3, whose last bit is 9e-13: 1e-10 (2e-14 relative) is as tight as
    # it can be met; 1e-13 was met only when two iterations rounded alike, which depends on the
    # CPU's BLAS kernels (on an AVX-512 machine it ran 100 iterations with changes of 1e-15 to
    # 1e-14 relative). The comparisons below are at 1e-8.
    y = panel.deaths.ravel()[fit]
    off = panel.offset.ravel()[fit]
    out = sm.GLM(y, X[fit], family=sm.families.Poisson(), offset=off).fit(
        scale="X2", tol=tol, maxiter=100
    )
    assert out.fit_history["iteration"] < 100  # converged
    return out


FULL_RANK_TERMS = "trend + holidays + region + sex + age_group"


@pytest.fixture(scope="module")
def oracle_full_rank(panel: Panel):  # type: ignore[no-untyped-def]
    """statsmodels on the dense full-rank design (fitted once, shared by both engines)."""
    res = Pooled(terms=FULL_RANK_TERMS, dispersion_floor=0.0).fit(
        panel, reference=REFERENCE, engine="numpy"
    )
    return _statsmodels(res.design.dense(), panel, res.fit_mask.ravel())


@pytest.fixture(scope="module")
def oracle_default(panel: Panel):  # type: ignore[no-untyped-def]
    """statsmodels on the hand-built default design: (full design with pinv, design less the columns
    R drops)."""
    X, _ = _dense_default(panel)
    fit = (panel.observed_mask & (panel.weeks <= pd.Timestamp(REFERENCE[1]))[None, :]).ravel()
    # Its pinv steps do not settle below a relative deviance change of ~1e-12: default tol there.
    with pytest.warns(Warning):
        full = _statsmodels(X, panel, fit, tol=1e-8)
    aliased = np.isin(
        _dense_default(panel)[1],
        ["month12:age_group[85+]"] + [f"sex[M]:age_group[{a}]" for a in AGES],
    )
    return full, _statsmodels(X[:, ~aliased], panel, fit)


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b) / np.abs(b)))


# --------------------------------------------------------------------------- statsmodels oracle
def test_full_rank_matches_statsmodels(panel: Panel, engine: str, oracle_full_rank) -> None:  # type: ignore[no-untyped-def]
    res = Pooled(terms=FULL_RANK_TERMS, dispersion_floor=0.0).fit(
        panel, reference=REFERENCE, engine=engine
    )
    assert res.info["model"]["aliased"] == []
    X = res.design.dense()
    # the dense design written out by hand equals the structured one
    X_hand, names = _dense_default(panel)
    hand = {n: X_hand[:, k] for k, n in enumerate(names)}
    assert res.design.names[:12] == (
        "intercept",
        "trend",
        *names[2:10],
        "region[E12000002]",
        "region[E12000003]",
    )
    for k, n in enumerate(res.design.names[:12]):
        np.testing.assert_array_equal(X[:, k], hand[n])
    sexM = (panel.keys["sex"].astype(str).to_numpy() == "M").repeat(panel.n_weeks).astype(float)
    np.testing.assert_array_equal(X[:, res.design.names.index("sex[M]")], sexM)

    fit = res.fit_mask.ravel()
    ref = oracle_full_rank
    assert res.converged.all()
    assert _rel(res.coef, ref.params) < 1e-8
    mu_ref = np.exp(X @ ref.params + panel.offset.ravel())
    assert _rel(res.mu.ravel(), mu_ref) < 1e-8  # every week, fitted or not
    assert res.dispersion_raw[0] == pytest.approx(ref.scale, rel=1e-8)
    V = res.cov_unscaled * res.dispersion_raw[0]
    V_ref = ref.cov_params()
    sd = np.sqrt(np.outer(np.diag(V_ref), np.diag(V_ref)))
    assert np.max(np.abs(V - V_ref) / sd) < 1e-8
    table = res.info["coef_table"]
    np.testing.assert_allclose(table["std_error"], ref.bse, rtol=1e-8)
    assert res.info["model"]["n_obs"] == fit.sum() == ref.nobs


def test_rank_deficient_default_terms_matches_statsmodels(
    panel: Panel, engine: str, oracle_default
) -> None:  # type: ignore[no-untyped-def]
    res = Pooled(dispersion_floor=0.0).fit(panel, reference=REFERENCE, engine=engine)
    X, names = _dense_default(panel)
    assert list(res.design.names) == names
    np.testing.assert_array_equal(res.design.dense(), X)
    # R (pivoting QR in column order) drops: the last month x age column (the month weights sum to
    # one within an age group, so they span the intercept) and sex[M] within every age group
    expected_aliased = ["month12:age_group[85+]"] + [f"sex[M]:age_group[{a}]" for a in AGES]
    assert res.info["model"]["aliased"] == expected_aliased
    assert np.isnan(res.coef[res.aliased]).all() and np.isfinite(res.coef[~res.aliased]).all()
    off = panel.offset.ravel()

    # statsmodels on the full rank-deficient design (pinv): same fitted values
    full, ref = oracle_default
    assert full.nobs == ref.nobs == res.fit_mask.sum()
    assert _rel(res.mu.ravel(), np.exp(X @ full.params + off)) < 1e-8

    # statsmodels on the design without the aliased columns: same coefficients, phi, covariance
    keep = ~res.aliased
    assert _rel(res.coef[keep], ref.params) < 1e-8
    assert _rel(res.mu.ravel(), np.exp(X[:, keep] @ ref.params + off)) < 1e-8
    assert res.dispersion_raw[0] == pytest.approx(ref.scale, rel=1e-8)
    assert res.info["model"]["df_resid"] == ref.df_resid
    V = (res.cov_unscaled * res.dispersion_raw[0])[np.ix_(keep, keep)]
    V_ref = ref.cov_params()
    sd = np.sqrt(np.outer(np.diag(V_ref), np.diag(V_ref)))
    assert np.max(np.abs(V - V_ref) / sd) < 1e-8
    assert np.all(res.cov_unscaled[res.aliased] == 0.0)


def test_dispersion_floor(panel: Panel) -> None:
    raw = Pooled(dispersion_floor=0.0).fit(panel, reference=REFERENCE)
    floored = Pooled(dispersion_floor=50.0).fit(panel, reference=REFERENCE)
    assert raw.dispersion_raw[0] == floored.dispersion_raw[0] > 1.0
    np.testing.assert_array_equal(floored.dispersion, 50.0)
    np.testing.assert_array_equal(raw.dispersion, raw.dispersion_raw)
    np.testing.assert_array_equal(raw.mu, floored.mu)


# --------------------------------------------------------------------------- kernels
def test_numba_matches_numpy_and_threads(panel: Panel) -> None:
    import numba

    a = Pooled().fit(panel, reference=REFERENCE, engine="numba")
    b = Pooled().fit(panel, reference=REFERENCE, engine="numpy")
    assert a.n_iter[0] == b.n_iter[0]
    np.testing.assert_allclose(a.coef, b.coef, rtol=1e-10)
    np.testing.assert_allclose(a.mu, b.mu, rtol=1e-10)
    np.testing.assert_allclose(a.dispersion_raw, b.dispersion_raw, rtol=1e-10)
    groups = panel.keys["region"].cat.codes.to_numpy().astype(np.int64)
    for g, n in (
        (groups, 3),
        (np.arange(panel.n_series), panel.n_series),
        (np.zeros(panel.n_series, dtype=np.int64), 1),
    ):
        np.testing.assert_allclose(
            a.coef_variance_weekly(g, n), b.coef_variance_weekly(g, n), rtol=1e-10
        )
        w = panel.weeks >= pd.Timestamp("2020-03-01")
        np.testing.assert_allclose(
            a.coef_variance_window(g, n, w), b.coef_variance_window(g, n, w), rtol=1e-10
        )

    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = Pooled().fit(panel, reference=REFERENCE, engine="numba")
        v_one = one.coef_variance_weekly(groups, 3)
    finally:
        numba.set_num_threads(before)
    many = Pooled().fit(panel, reference=REFERENCE, engine="numba")
    np.testing.assert_array_equal(one.coef, many.coef)
    np.testing.assert_array_equal(one.mu, many.mu)
    np.testing.assert_array_equal(v_one, many.coef_variance_weekly(groups, 3))


def test_step_halving_and_max_iter(panel: Panel) -> None:
    design = build_pooled_design(panel.keys, panel.weeks, parse_terms("trend + region"))
    fit = np.ones_like(panel.deaths, dtype=bool)
    out = irls_pooled(design, panel.deaths, panel.offset, fit, max_iter=1)
    assert not out.converged and out.n_iter == 1
    with pytest.warns(em.ConvergenceWarning, match="max_iter=1"):
        # Issue 17: terms must give every stratum of the panel a level (else an InputError).
        res = Pooled(terms="trend + region + sex + age_group", max_iter=1).fit(
            panel, reference=REFERENCE
        )
    assert np.isnan(res.mu).all() and not res.converged.any()


# --------------------------------------------------------------------------- intervals
def test_distribution_quantiles_equal_scipy(panel: Panel) -> None:
    # the producer's interval is asked for by name (the default is now "delta" with dependence)
    res = Pooled(intervals="distribution").fit(panel, reference=REFERENCE)
    assert isinstance(res, PooledResult)
    phi = res.dispersion[0]
    assert phi > 1.0
    level = 0.9973
    lo_q, hi_q = (1 - level) / 2, (1 + level) / 2
    # rows
    mu, y = res.mu, panel.deaths
    lower, upper, z = res.prediction(y, mu, res.obs_variance(), np.zeros_like(mu), level)
    n = mu / (phi - 1)
    np.testing.assert_array_equal(lower, stats.nbinom.ppf(lo_q, n, n / (n + mu)))
    np.testing.assert_array_equal(upper, stats.nbinom.ppf(hi_q, n, n / (n + mu)))
    np.testing.assert_allclose(z, (y - mu) / np.sqrt(phi * mu), rtol=1e-14)
    # aggregates: sum mu over each region first, then the quantiles
    codes = panel.keys["region"].cat.codes.to_numpy()
    agg_mu = np.vstack([mu[codes == g].sum(axis=0) for g in range(3)])
    agg_var = np.vstack([res.obs_variance()[codes == g].sum(axis=0) for g in range(3)])
    lower, upper, _ = res.prediction(agg_mu, agg_mu, agg_var, np.zeros_like(agg_mu), level)
    n = agg_mu / (phi - 1)
    np.testing.assert_array_equal(lower, stats.nbinom.ppf(lo_q, n, n / (n + agg_mu)))
    np.testing.assert_array_equal(upper, stats.nbinom.ppf(hi_q, n, n / (n + agg_mu)))
    # param variances are zero in distribution mode
    assert not res.param_variance_weekly(codes.astype(np.int64), 3).any()
    assert not res.param_variance_window(
        codes.astype(np.int64), 3, np.ones(panel.n_weeks, bool)
    ).any()
    assert res.coef_variance_weekly(codes.astype(np.int64), 3).min() > 0  # V stays available


def test_poisson_when_phi_is_one() -> None:
    res = Pooled(intervals="distribution").fit(
        Panel.from_frame(_frame(seed=3, phi=1.0 + 1e-9)), reference=REFERENCE
    )
    # data without overdispersion: raw phi near 1, floored at 1 for intervals
    mu = np.array([[0.0, 0.7, 12.5, 803.2], [np.nan, 3.0, 40.0, 5000.0]])
    lower, upper, _ = res.prediction(mu, mu, mu * 1.0, np.zeros_like(mu), 0.95)
    ok = np.isfinite(mu)
    np.testing.assert_array_equal(lower[ok], stats.poisson.ppf(0.025, mu[ok]))
    np.testing.assert_array_equal(upper[ok], stats.poisson.ppf(0.975, mu[ok]))
    assert np.isnan(lower[~ok]).all() and np.isnan(upper[~ok]).all()
    if res.dispersion_raw[0] <= 1.0:
        assert res.dispersion[0] == 1.0


def test_delta_aggregate_variance_dense(panel: Panel) -> None:
    res = Pooled(intervals="delta").fit(panel, reference=REFERENCE)
    X = res.design.dense().reshape(panel.n_series, panel.n_weeks, -1)
    V = res.cov_unscaled * res.dispersion[0]
    phi = res.dispersion[0]
    codes = panel.keys["region"].cat.codes.to_numpy().astype(np.int64)
    # weekly: g_t = sum_{s in region} mu_st x_st
    G = np.stack([np.einsum("st,stj->tj", res.mu[codes == g], X[codes == g]) for g in range(3)])
    dense = np.einsum("gtj,jk,gtk->gt", G, V, G)
    np.testing.assert_allclose(res.param_variance_weekly(codes, 3), dense, rtol=1e-10)
    # window: g = sum over weeks and series; total variance g'Vg + sum phi mu
    w = np.asarray(
        (panel.weeks >= pd.Timestamp("2020-03-20")) & (panel.weeks <= pd.Timestamp("2020-06-26"))
    )
    g = G[:, w].sum(axis=1)
    var = np.einsum("gj,jk,gk->g", g, V, g) + np.array(
        [phi * res.mu[codes == k][:, w].sum() for k in range(3)]
    )
    got = res.param_variance_window(codes, 3, w) + np.array(
        [res.obs_variance()[codes == k][:, w].sum() for k in range(3)]
    )
    np.testing.assert_allclose(got, var, rtol=1e-10)
    # per series: x' V x mu^2, and the standard error of log mu
    per = np.einsum("stj,jk,stk->st", X, V, X)
    np.testing.assert_allclose(res.se_log_expected(), np.sqrt(per), rtol=1e-10)
    # delta prediction is the normal rule
    lower, upper, _ = res.prediction(
        panel.deaths, res.mu, res.obs_variance(), res.mu**2 * per, 0.95
    )
    sd = np.sqrt(phi * res.mu + res.mu**2 * per)
    np.testing.assert_allclose(upper, res.mu + stats.norm.ppf(0.975) * sd, rtol=1e-12)
    np.testing.assert_allclose(
        lower, np.maximum(res.mu - stats.norm.ppf(0.975) * sd, 0), rtol=1e-12
    )


# --------------------------------------------------------------------------- terms and end to end
def test_terms_leaving_out_a_stratum_are_an_error(panel: Panel) -> None:
    # The Swedish girls: seasonality without age_group on a sex x age panel would expect
    # the same deaths of every age group.
    with pytest.raises(InputError, match=r"leave out the stratum 'age_group' of the data"):
        Pooled(terms="trend + seasonality + region + sex").fit(panel, reference=REFERENCE)


def test_default_terms_keep_strata_present() -> None:
    # The note is a warnings category (issue 17: not a log line on every call).
    from excessmort.exceptions import ModelNoteWarning

    frame = (
        _frame().groupby(["region", "week_ending"], as_index=False)[["deaths", "population"]].sum()
    )
    panel = Panel.from_frame(frame)
    with pytest.warns(ModelNoteWarning) as caught:
        res = Pooled().fit(panel, reference=REFERENCE)
    assert res.info["terms"] == "trend + seasonality + holidays + region"
    assert res.info["dropped_strata"] == ["age_group", "sex"]
    text = " ".join(str(w.message) for w in caught)
    assert "'age_group' or 'sex'" in text and "trend + seasonality + holidays + region" in text
    explicit = Pooled(terms="trend + seasonality + holidays + region").fit(
        panel, reference=REFERENCE
    )
    np.testing.assert_array_equal(res.mu, explicit.mu)
    with pytest.raises(
        InputError, match="name the stratum 'age_group', which the data lack"
    ) as err:
        Pooled(terms=DEFAULT_TERMS).fit(panel, reference=REFERENCE)
    assert err.value.column == "age_group"


@pytest.mark.parametrize(
    ("kwargs", "column"),
    [
        ({"intervals": "exact"}, "intervals"),
        ({"dispersion_floor": -1}, "dispersion_floor"),
        ({"terms": "trend:seasonality"}, "terms"),
        ({"terms": "trend + 0"}, "terms"),
        ({"terms": "trend + :region"}, "terms"),
        ({"max_iter": 0}, "max_iter"),
    ],
)
def test_bad_options(panel: Panel, kwargs: dict, column: str) -> None:
    with pytest.raises(InputError) as err:
        Pooled(**kwargs).fit(panel, reference=REFERENCE)
    assert err.value.column == column


def test_level_without_reference_data_is_refused() -> None:
    frame = _frame()
    late = (frame["region"] == "E12000003") & (frame["week_ending"] < pd.Timestamp("2020-01-01"))
    frame.loc[late, "deaths"] = np.nan
    with pytest.raises(InputError, match=r"region\[E12000003\]") as err:
        Pooled().fit(Panel.from_frame(frame), reference=REFERENCE)
    assert err.value.column == "region"


def test_fit_end_to_end_distribution_and_delta() -> None:
    frame = _frame()
    f = em.fit(
        frame, baseline="pooled", intervals="distribution", reference=REFERENCE, level=0.9973
    )
    weekly = f.weekly
    assert len(weekly) == 18 * f.panel.n_weeks
    # no parameter uncertainty: the expected band collapses onto mu; excess bounds from NB quantiles
    np.testing.assert_array_equal(weekly["expected_lower"], weekly["expected"])
    phi = f.result.dispersion[0]
    n = weekly["expected"] / (phi - 1)
    upper = stats.nbinom.ppf((1 + 0.9973) / 2, n, n / (n + weekly["expected"]))
    np.testing.assert_array_equal(weekly["excess_lower"], weekly["observed"] - upper)
    # England (the sum of the three regions): quantiles of the summed mu
    total = f.by().weekly
    n = total["expected"] / (phi - 1)
    lower = stats.nbinom.ppf((1 - 0.9973) / 2, n, n / (n + total["expected"]))
    np.testing.assert_array_equal(total["excess_upper"], total["observed"] - lower)
    assert f.result.info["coef_table"].shape[0] == len(f.result.design.names)
    assert {"dispersion", "converged", "n_iter"} <= set(f.coefficients.columns)

    d = em.fit(frame, baseline=Pooled(intervals="delta"), reference=REFERENCE)
    cum = d.by("region").cumulative("2020-03-20", "2020-06-26")
    assert (cum["excess_upper"] > cum["excess"]).all() and (
        cum["excess_lower"] < cum["excess"]
    ).all()


def test_take_keeps_shared_coefficients(panel: Panel) -> None:
    res = Pooled(intervals="delta").fit(panel, reference=REFERENCE)
    idx = np.array([0, 5, 17])
    sub = res.take(idx)
    np.testing.assert_array_equal(sub.mu, res.mu[idx])
    np.testing.assert_array_equal(sub.coef, res.coef)  # shared, not sliced
    np.testing.assert_array_equal(sub.cov_unscaled, res.cov_unscaled)
    np.testing.assert_array_equal(sub.design.cols, res.design.cols[idx])
    full = res.param_variance_weekly(np.arange(panel.n_series), panel.n_series)[idx]
    np.testing.assert_allclose(sub.param_variance_weekly(np.arange(3), 3), full, rtol=1e-12)
