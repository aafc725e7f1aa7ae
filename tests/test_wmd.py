"""The wmd baseline (World Mortality Dataset) against statsmodels OLS on the same design.

Tolerances (relative): coefficients, fitted values, sigma^2 1e-8 against ``sm.OLS``; x'Vx and
the window variance g'Vg against ``OLSResults.cov_params()`` 1e-8; interval formulas exact (1e-12).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats

import excessmort as em
from _sim import simulate
from excessmort.baselines.wmd import wmd_design
from excessmort.exceptions import InputError
from excessmort.weeks import iso_year_week

REF = ("2015-01-01", "2019-12-31")


@pytest.fixture(scope="module")
def case():
    frame, _ = simulate(n_series=5, n_weeks=470, seed=4, phi=1.4, population=False)
    frame.loc[7, "deaths"] = np.nan  # one missing reference week: its own normal equations
    # The closed forms below are the independence ones (the dependence model is tested apart).
    return frame, em.fit(frame, baseline="wmd", reference=REF, dependence=False)


def test_design_week_53_is_week_52():
    weeks = pd.date_range("2020-12-18", periods=4, freq="7D")  # 2020 w51, w52, w53, 2021 w1
    d = wmd_design(weeks)
    assert d.names[:3] == ("intercept", "year", "week2")
    assert d.X[:, 52].tolist() == [0.0, 1.0, 1.0, 0.0]
    assert d.X[:, 51].tolist() == [1.0, 0.0, 0.0, 0.0]
    assert d.X[3, 2:].sum() == 0.0  # week 1 is the reference level
    y, _ = iso_year_week(weeks)
    assert d.X[:, 1].tolist() == (y - 2000).astype(float).tolist()


def test_matches_statsmodels_ols(case):
    _, fit = case
    res = fit.result
    X = res.design.X
    ref = (fit.weeks >= REF[0]) & (fit.weeks <= REF[1])
    worst = 0.0
    for s in range(fit.panel.n_series):
        use = ref & ~np.isnan(fit.panel.deaths[s])
        m = sm.OLS(fit.panel.deaths[s, use], X[use]).fit()
        np.testing.assert_allclose(res.coef[s], m.params, rtol=1e-8, atol=1e-8)
        np.testing.assert_allclose(res.mu[s], X @ m.params, rtol=1e-8)
        np.testing.assert_allclose(res.sigma2[s], m.scale, rtol=1e-8)
        V = m.cov_params()
        qv = np.einsum("tj,jk,tk->t", X, V, X)
        np.testing.assert_allclose(res.sigma2[s] * res.q[s], qv, rtol=1e-8)
        worst = max(worst, float(np.max(np.abs(res.mu[s] / (X @ m.params) - 1))))
        # a window's variance: g' V g with g the sum of the window's rows (full covariance)
        win = np.asarray((fit.weeks >= "2020-03-01") & (fit.weeks <= "2020-12-31"))
        g = X[win].sum(axis=0)
        gvg = res.param_variance_window(np.arange(5), 5, win)[s]
        np.testing.assert_allclose(gvg, g @ V @ g, rtol=1e-8)
        assert gvg > np.sum(qv[win]) * 1.5  # weeks are positively correlated through the year term
    assert worst < 1e-8


def test_interval_formulas(case):
    _, fit = case
    res = fit.result
    w = fit.weekly
    z = stats.norm.ppf(0.975)
    sig2 = np.repeat(res.sigma2, fit.panel.n_weeks)
    pv = (res.sigma2[:, None] * res.q).reshape(-1)
    mu = w["expected"].to_numpy()
    np.testing.assert_allclose(w["expected_upper"], mu + z * np.sqrt(pv), rtol=1e-12)
    np.testing.assert_allclose(w["expected_lower"], mu - z * np.sqrt(pv), rtol=1e-12)
    sd = np.sqrt(sig2 + pv)
    np.testing.assert_allclose(w["z_score"], (w["observed"] - mu) / sd, rtol=1e-12)
    np.testing.assert_allclose(
        w["excess_lower"], w["observed"] - (mu + z * sd), rtol=1e-12, atol=1e-9
    )
    c = fit.cumulative("2020-03-01", "2020-12-31")
    win = np.asarray((fit.weeks >= "2020-03-01") & (fit.weeks <= "2020-12-31"))
    var = res.param_variance_window(np.arange(5), 5, win) + win.sum() * res.sigma2
    np.testing.assert_allclose(
        c["excess_upper"],
        c["observed"] - np.maximum(c["expected"] - z * np.sqrt(var), 0),
        rtol=1e-12,
    )
    path = fit.cumulative_path("2020-03-01", "2020-12-31")
    last = path[path["week_ending"] == path["week_ending"].max()]
    np.testing.assert_allclose(
        last["excess_upper"].to_numpy(), c["excess_upper"].to_numpy(), rtol=1e-10
    )
    assert np.isfinite(fit.by().cumulative("2020-03-01", "2020-12-31")["excess_lower"]).all()


def test_coverage_on_model_data():
    """Prediction intervals of an OLS model hold their level on data from that model."""
    rng = np.random.default_rng(11)
    weeks = pd.date_range("2015-01-02", periods=365, freq="7D")
    X = wmd_design(weeks).X
    beta = np.concatenate([[500.0, -3.0], rng.normal(0, 20, 51)])
    n = 400
    Y = X @ beta + rng.normal(0, 15.0, (n, len(weeks)))
    frame = pd.DataFrame(
        {
            "area": np.repeat([f"A{i}" for i in range(n)], len(weeks)),
            "week_ending": np.tile(weeks, n),
            "deaths": np.round(Y).reshape(-1).clip(0),
        }
    )
    fit = em.fit(frame, baseline="wmd", reference=REF)
    wk = fit.weekly[fit.weekly["week_ending"] > "2020-01-01"]
    inside = ((wk["excess_lower"] <= 0) & (wk["excess_upper"] >= 0)).mean()
    se = np.sqrt(0.95 * 0.05 / (n * 5))  # about 5 effective independent draws per series
    assert abs(inside - 0.95) < 3 * se + 0.01


def test_errors():
    frame, _ = simulate(n_series=2, n_weeks=80, seed=1)
    with pytest.raises(InputError, match="too little history"):
        em.fit(frame, baseline="wmd", reference=("2015-01-01", "2015-06-30"))
