"""The residual-dependence model: kernels against dense oracles, closed forms, the reduction to
phi mu for one series and one week, short references, labels, and calibration on simulated panels
whose residuals are correlated across series and in time."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import excessmort as em
from _sim import simulate, simulate_correlated
from excessmort._kernels import running_variance
from excessmort._kernels.dependence_ref import (
    _running_variance_by_week,
    running_variance_dense,
    running_variance_ref,
)
from excessmort.dependence import (
    DependenceWarning,
    arma_fit,
    arma_lags,
    autocorrelation,
    long_run_factor,
)

REF = ("2015-01-01", "2019-12-31")
REF3 = ("2015-01-01", "2017-12-22")


# --------------------------------------------------------------------------- kernels and closed forms
@pytest.mark.parametrize("n_lags", [1, 4, 13])
def test_running_variance_matches_dense_covariance(engine: str, n_lags: int) -> None:
    rng = np.random.default_rng(1)
    s = rng.uniform(0.5, 3.0, (5, 40))
    rho = rng.uniform(-0.2, 0.6, (5, n_lags))
    a = rng.uniform(0.0, 0.8, 5)
    phi = rng.uniform(0.0, 0.95, 5)
    got = running_variance(s, rho, a, phi, engine=engine)
    np.testing.assert_allclose(got, running_variance_dense(s, rho, a, phi), rtol=1e-10)
    np.testing.assert_allclose(got, running_variance_ref(s, rho, a, phi), rtol=1e-10)


def test_running_variance_in_array_steps_is_the_weekly_recursion() -> None:
    """The numpy twin solves the recursion in log2(W) array steps: the same variances as one week
    at a time (to 1e-12 of the independent part sum s^2), the same NaNs (a missing sd, a missing
    tail), for no lags, lags longer than the weeks, phi = 0 and one week."""
    rng = np.random.default_rng(5)
    for trial in range(200):
        G, W, L = int(rng.integers(1, 9)), int(rng.integers(1, 300)), int(rng.integers(0, 6))
        s = rng.uniform(0.1, 50.0, (G, W))
        rho = rng.uniform(-0.3, 0.6, (G, L))
        a = rng.uniform(-0.2, 0.6, G)
        phi = rng.uniform(0.0, 0.99, G)
        if trial % 5 == 0:
            s[rng.integers(G), rng.integers(W)] = np.nan
        if trial % 7 == 0:
            a[0] = np.nan
        if trial % 11 == 0:
            phi[0] = 0.0
        got, want = running_variance_ref(s, rho, a, phi), _running_variance_by_week(s, rho, a, phi)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        scale = np.cumsum(s * s, axis=1)
        ok = ~np.isnan(want)
        assert np.all(np.abs(got - want)[ok] <= 1e-12 * scale[ok]), trial


def test_running_variance_numba_equals_numpy_with_nan() -> None:
    rng = np.random.default_rng(2)
    s = rng.uniform(0.5, 3.0, (4, 30))
    s[1, 10] = np.nan
    rho = arma_lags(np.full(4, 0.5), np.full(4, 0.8))
    a, phi = np.full(4, 0.5), np.full(4, 0.8)
    x = running_variance(s, rho, a, phi, engine="numba")
    y = running_variance(s, rho, a, phi, engine="numpy")
    np.testing.assert_array_equal(np.isnan(x), np.isnan(y))
    assert np.isnan(x[1, 10:]).all() and np.isfinite(x[1, :10]).all()
    ok = np.isfinite(y)
    np.testing.assert_allclose(x[ok], y[ok], rtol=1e-12)


def test_running_variance_threaded_kernel_equals_serial() -> None:
    # the wrapper runs small problems serially; the threaded kernel (large panels) must agree bitwise
    from excessmort._kernels import dependence as dk

    rng = np.random.default_rng(4)
    s = rng.uniform(0.5, 3.0, (64, 120))
    rho = arma_lags(rng.uniform(0, 0.6, 64), rng.uniform(0, 0.9, 64))
    a, phi = rng.uniform(0, 0.6, 64), rng.uniform(0, 0.9, 64)
    threaded, serial = np.empty(s.shape), np.empty(s.shape)
    dk.running_variance(s, rho, a, phi, threaded)
    dk.running_variance_serial(s, rho, a, phi, serial)
    np.testing.assert_array_equal(threaded, serial)
    np.testing.assert_array_equal(running_variance(s, rho, a, phi, engine="numba"), serial)


def test_long_run_factor_closed_form() -> None:
    a = np.array([0.0, 0.3, 0.5, 0.9])
    phi = np.array([0.5, 0.7, 0.98, 0.2])
    n = np.array([52.0, 260.0, 30.0, 5.0])
    rho = arma_lags(a, phi)
    got = long_run_factor(rho, a, phi, n)
    for g in range(4):
        k = np.arange(1, int(n[g]))
        brute = 1 + 2 * np.sum((1 - k / n[g]) * a[g] * phi[g] ** (k - 1))
        assert got[g] == pytest.approx(brute, rel=1e-12)
    # a mean of n weeks fully correlated has n times the variance of independence
    assert long_run_factor(np.ones((1, 13)), np.ones(1), np.ones(1), np.array([52.0]))[
        0
    ] == pytest.approx(52.0)


def test_arma_fit_recovers_exact_autocorrelation() -> None:
    a, phi = np.array([0.4, 0.1, 0.0]), np.array([0.7, 0.3, 0.5])
    acf = np.c_[np.ones(3), arma_lags(a, phi)]
    a_hat, phi_hat = arma_fit(acf)
    np.testing.assert_allclose(a_hat, a, atol=1e-9)
    np.testing.assert_allclose(phi_hat[:2], phi[:2], atol=0.011)  # grid step 0.02
    # and on a simulated AR(1) of 5,000 weeks, the sample autocorrelation gives rho_1 = 0.6
    rng = np.random.default_rng(3)
    x = np.zeros(5000)
    for t in range(1, 5000):
        x[t] = 0.6 * x[t - 1] + rng.normal()
    r = autocorrelation(x[None, :])
    assert r[0, 1] == pytest.approx(0.6, abs=0.03) and r[0, 3] == pytest.approx(0.216, abs=0.04)


# --------------------------------------------------------------------------- contract
@pytest.fixture(scope="module")
def regions() -> tuple[em.Fit, em.Fit]:
    frame = simulate_correlated(9, 365, seed=11, shock_sd=0.04, ar=0.6, year_sd=0.02)
    frame = frame.rename(columns={"area": "region"})
    frame["region"] = frame["region"].map({f"A{i:03d}": f"E1200000{i + 1}" for i in range(9)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dep = em.fit(frame, reference=REF)
        ind = em.fit(frame, reference=REF, dependence=False)
    return dep, ind


def test_one_series_one_week_is_phi_mu(regions: tuple[em.Fit, em.Fit]) -> None:
    dep, ind = regions
    cols = ["expected_lower", "expected_upper", "excess_lower", "excess_upper", "z_score"]
    pd.testing.assert_frame_equal(dep.weekly[cols], ind.weekly[cols])
    # a view whose groups are single series is the same too
    pd.testing.assert_frame_equal(dep.by("region").weekly[cols], ind.weekly[cols])


def test_england_weekly_variance_is_c_times_sum_of_regions(regions: tuple[em.Fit, em.Fit]) -> None:
    dep, _ind = regions
    d = dep.by()._dependence
    assert d.members[0] == 9 and d.c[0] > 2.0  # a shared weekly shock: far from independence
    res = dep.result
    t = 320
    obs = np.sum(res.obs_variance()[:, t])
    par = np.sum(res.param_variance_weekly(np.arange(9), 9)[:, t])
    year = float(dep.weeks[t].year)  # after the reference: a new year's level (2 h sigma^2 mu^2)
    centre, sxx = 2017.0, 10.0  # reference years 2015-2019, trend fitted
    h = 1 / 5 + (year - centre) ** 2 / sxx
    mu = np.sum(res.mu[:, t])
    want = np.sqrt(d.c[0] * obs + d.param_factor[0] * par + d.year.sigma2 * 2 * h * mu**2)
    row = dep.by().weekly.iloc[t]
    z = 1.959963984540054
    assert row["excess_upper"] - row["excess"] == pytest.approx(z * want, rel=1e-12)
    # residual correlation over weeks: the lag-1 autocorrelation of England's residuals is found
    assert d.a[0] > 0.2


def test_path_ends_at_the_cumulative(regions: tuple[em.Fit, em.Fit]) -> None:
    dep, _ = regions
    for view in (dep, dep.by()):
        cum = view.cumulative("2020-01-01", "2020-12-31")
        path = view.cumulative_path("2020-01-01", "2020-12-31")
        last = path.groupby(view.strata, observed=True).tail(1) if view.strata else path.tail(1)
        np.testing.assert_allclose(
            last["excess_lower"].to_numpy(), cum["excess_lower"].to_numpy(), rtol=1e-10
        )
        # running widths never shrink as weeks are added
        width = (path["excess_upper"] - path["excess_lower"]).to_numpy().reshape(len(cum), -1)
        assert (np.diff(width, axis=1) > -1e-6).all()


def test_sums_are_wider_with_dependence(regions: tuple[em.Fit, em.Fit]) -> None:
    dep, ind = regions
    for view in ("series", "total"):
        a = (
            dep.cumulative("2020-01-01", "2020-12-31")
            if view == "series"
            else dep.by().cumulative("2020-01-01", "2020-12-31")
        )
        b = (
            ind.cumulative("2020-01-01", "2020-12-31")
            if view == "series"
            else ind.by().cumulative("2020-01-01", "2020-12-31")
        )
        wa = (a["excess_upper"] - a["excess_lower"]).to_numpy()
        wb = (b["excess_upper"] - b["excess_lower"]).to_numpy()
        assert (wa >= wb * (1 - 1e-12)).all()
    assert wa[0] > 2 * wb[0]  # England's year: common shocks that last


def test_intervals_state_what_they_contain(regions: tuple[em.Fit, em.Fit]) -> None:
    dep, ind = regions
    w = dep.by().cumulative("2020-01-01", "2020-12-31")
    info = w.attrs["intervals"]
    assert (
        info["cross_series_dependence"]
        and info["autocorrelation"]
        and info["parameter_uncertainty"]
    )
    assert "year_effect_sd" in info and info["short_reference_rows"] == 0
    assert not ind.weekly.attrs["intervals"]["cross_series_dependence"]
    assert "assumed independent" in ind.intervals["text"]
    assert any(k == "intervals" for k, _ in dep._header())
    frame, _ = simulate(3, 313 + 52, seed=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        producer = em.fit(frame, baseline="pooled", intervals="distribution", reference=REF)
    info = producer.intervals
    assert info["rule"] == "negative-binomial quantiles"
    assert not info["parameter_uncertainty"] and not info["cross_series_dependence"]


def test_short_reference_warns_and_widens() -> None:
    frame, _ = simulate(6, 200, seed=5, phi=1.3)
    ref = ("2015-01-01", "2016-06-30")  # 78 weeks: too short to estimate the dependence
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # allow_short_history: the fit's own minimum (104 weeks) would refuse it otherwise.
        ind = em.fit(frame, reference=ref, dependence=False, allow_short_history=True)
        dep = em.fit(frame, reference=ref, allow_short_history=True)
    with pytest.warns(DependenceWarning, match="too short"):
        a = dep.by().cumulative("2017-01-01", "2017-12-31")
    b = ind.by().cumulative("2017-01-01", "2017-12-31")
    assert a.attrs["intervals"]["short_reference_rows"] == 1
    assert (a["excess_upper"] - a["excess_lower"]).iloc[0] > 1.5 * (
        b["excess_upper"] - b["excess_lower"]
    ).iloc[0]


# --------------------------------------------------------------------------- calibration (simulated)
def _areas(n_areas: int, cells: int, seed: int, **kw) -> pd.DataFrame:
    """n_areas areas of `cells` series each; shocks shared within an area, AR in time, year effects."""
    frames = []
    for i in range(n_areas):
        f = simulate_correlated(cells, 52 * 12 + 1, start="2008-01-04", seed=seed + i, **kw)
        f = f.rename(columns={"area": "cell"})
        f.insert(0, "area", f"R{i:03d}")
        frames.append(f)
    return pd.concat(frames, ignore_index=True)


@pytest.mark.calibration
@pytest.mark.parametrize(
    ("kw", "seed"),
    [
        ({"shock_sd": 0.05, "ar": 0.6, "year_sd": 0.0, "shared": 1.0}, 100),  # common AR shocks
        ({"shock_sd": 0.04, "ar": 0.5, "year_sd": 0.025, "shared": 0.7}, 200),  # + year effects
    ],
)
def test_backtest_calibrated_on_correlated_panels(kw: dict, seed: int) -> None:
    frame = _areas(36, 4, seed, phi=1.5, **kw)
    dep = em.backtest(frame, years=range(2013, 2020), by=("area",))
    ind = em.backtest(frame, years=range(2013, 2020), by=("area",), dependence=False)
    s = dep.summary().set_index("level")
    i = ind.summary().set_index("level")
    assert 93.0 <= s.loc["by area", "weekly_coverage"] <= 97.0, s
    assert 90.0 <= s.loc["by area", "yearly_coverage"] <= 98.0, s
    assert 90.0 <= s.loc["series", "yearly_coverage"] <= 98.0, s
    # independence covers far less for the areas' years (common shocks that last)
    assert i.loc["by area", "yearly_coverage"] < s.loc["by area", "yearly_coverage"] - 15.0, i


@pytest.mark.calibration
def test_independent_panel_stays_calibrated() -> None:
    frame = _areas(36, 4, 300, phi=1.5, shock_sd=1e-9, ar=0.0)
    s = em.backtest(frame, years=range(2013, 2020), by=("area",)).summary().set_index("level")
    for level in ("series", "by area"):
        assert 93.0 <= s.loc[level, "weekly_coverage"] <= 97.0, s
        assert 90.0 <= s.loc[level, "yearly_coverage"] <= 98.0, s


# --------------------------------------------------------------------------- pooled: shared coefficients
def _dense_pooled_design(res) -> np.ndarray:
    """[S, T, p] of the pooled design x_st (an oracle only: never built by the engine)."""
    d = res.design
    n_series, n_weeks = res.mu.shape
    x = np.zeros((n_series, n_weeks, d.n_terms))
    for s in range(n_series):
        for j in d.cols[s][d.cols[s] >= 0]:
            x[s, :, j] = d.Z[:, d.col_cal[j]]
    return x


def test_shared_coefficient_cov_is_statsmodels_driscoll_kraay() -> None:
    """The pooled model's dependent covariance is Driscoll-Kraay's (statsmodels' hac-groupsum with
    Bartlett weights) on the dense design of a small correlated panel."""
    sm = pytest.importorskip("statsmodels.api")
    from excessmort.dependence import MAX_LAG, shared_coefficient_cov

    frame = simulate_correlated(4, 156, seed=3, shock_sd=0.05, ar=0.6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = em.fit(frame, baseline="pooled", terms="trend + seasonality + area", reference=REF3)
    res = fit.result
    keep = ~np.asarray(res.aliased)  # the month weights sum to the intercept (R drops the last)
    x = _dense_pooled_design(res).reshape(-1, res.design.n_terms)[:, keep]
    y = fit.panel.deaths.reshape(-1)
    time = np.tile(np.arange(res.mu.shape[1]), res.mu.shape[0])
    glm = sm.GLM(y, x, family=sm.families.Poisson()).fit(
        cov_type="hac-groupsum",
        cov_kwds={"time": time, "maxlags": MAX_LAG, "use_correction": False},
    )
    np.testing.assert_allclose(res.coef[keep], glm.params, rtol=1e-8)
    cov = shared_coefficient_cov(res, fit.panel.deaths)
    np.testing.assert_allclose(cov[np.ix_(keep, keep)], glm.cov_params(), rtol=1e-6, atol=1e-14)
    assert np.all(cov[~keep] == 0.0)


def test_pooled_rows_carry_the_shared_dependence_outside_the_fit_only() -> None:
    """A region of a pooled fit: inside the reference its weekly parameter part is the model's
    x'Vx; after it, the wider of x'Vx and the sandwich's (here wider: a shared winter shock)."""
    from excessmort.dependence import shared_coefficient_cov

    frame = simulate_correlated(6, 365, seed=5, shock_sd=0.05, ar=0.7, year_sd=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = em.fit(frame, baseline="pooled", terms="trend + seasonality + area", reference=REF)
        ind = em.fit(
            frame,
            baseline="pooled",
            terms="trend + seasonality + area",
            reference=REF,
            dependence=False,
        )
    res = fit.result
    n = res.mu.shape[0]
    inside = np.asarray(fit.weeks <= pd.Timestamp(REF[1]))
    model = res.param_variance_weekly(np.arange(n), n)
    dk = res.with_cov(shared_coefficient_cov(res, fit.panel.deaths)).param_variance_weekly(
        np.arange(n), n
    )
    assert np.median(dk[:, ~inside] / model[:, ~inside]) > 2.0
    a, b = fit._weekly_arrays, ind._weekly_arrays
    z = 1.959963984540054
    var = ((a["upper"] - a["lower"]) / (2 * z)) ** 2
    obs = res.obs_variance() * fit._dependence.c[:, None]
    t_in, t_out = np.flatnonzero(inside)[100], np.flatnonzero(~inside)[10]
    np.testing.assert_allclose(var[:, t_in], obs[:, t_in] + model[:, t_in], rtol=1e-9)
    extra = var[:, t_out] - obs[:, t_out] - np.fmax(model, dk)[:, t_out]
    assert np.all(extra >= -1e-9 * var[:, t_out])  # the rest is the year effect (>= 0)
    # independence (dependence=False) has the model's V in every week
    ind_var = ((b["upper"] - b["lower"]) / (2 * z)) ** 2
    np.testing.assert_allclose(ind_var[:, t_out], res.obs_variance()[:, t_out] + model[:, t_out])
