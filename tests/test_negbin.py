"""The negative_binomial baseline against statsmodels: ``NegativeBinomial(loglike_method="nb2")``
(joint maximum likelihood of beta and alpha) and ``GLM(family=NegativeBinomial(alpha))`` at the
estimated alpha for the covariance.

Tolerances (relative): beta and alpha 1e-8 (statsmodels started from its Poisson GLM, BFGS then
Newton to 1e-14); (X'WX)^-1 1e-8 relative to sqrt(V_ii V_jj); interval formulas 1e-12.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats

import excessmort as em
from _sim import simulate
from excessmort._kernels.negbin_ref import negbin_loglik
from excessmort.exceptions import InputError

REF = ("2015-01-01", "2019-12-31")


@pytest.fixture(scope="module")
def case():
    frame, _ = simulate(n_series=6, n_weeks=400, seed=8, phi=2.0, level=(20.0, 800.0))
    return em.fit(frame, baseline="negative_binomial", reference=REF)


def _sm_fit(y, X, off):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pois = sm.GLM(y, X, family=sm.families.Poisson(), offset=off).fit()
        mod = sm.NegativeBinomial(y, X, offset=off, loglike_method="nb2")
        m = mod.fit(
            start_params=np.append(pois.params, 0.05),
            method="bfgs",
            maxiter=5000,
            gtol=1e-12,
            disp=0,
        )
        m = mod.fit(start_params=m.params, method="newton", maxiter=200, tol=1e-14, disp=0)
    return m


def test_matches_statsmodels_ml(case):
    fit = case
    res = fit.result
    X = res.design.X
    worst = 0.0
    for s in range(fit.panel.n_series):
        use = res.fit_mask[s]
        y, off = fit.panel.deaths[s, use], fit.panel.offset[s, use]
        m = _sm_fit(y, X[use], off)
        np.testing.assert_allclose(res.coef[s], m.params[:-1], rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(res.alpha[s], m.params[-1], rtol=1e-8)
        np.testing.assert_allclose(res.info["loglik"][s], m.llf, rtol=1e-10)
        worst = max(worst, float(np.max(np.abs(res.coef[s] / m.params[:-1] - 1))))
        g = sm.GLM(y, X[use], family=sm.families.NegativeBinomial(alpha=res.alpha[s]), offset=off)
        V = g.fit(tol=1e-14).cov_params()
        d = np.sqrt(np.outer(np.diag(V), np.diag(V)))
        assert np.max(np.abs(res.cov_unscaled[s] - V) / d) < 1e-8
    assert worst < 1e-8


def test_alpha_near_truth_and_intervals(case):
    fit = case
    res = fit.result
    # simulate(phi=2): variance 2 mu, i.e. NB with alpha = 1/mu per week; the ML alpha is of that
    # order (1/mean mu), not zero
    mean_mu = np.nanmean(np.where(res.fit_mask, res.mu, np.nan), axis=1)
    assert np.all(res.alpha * mean_mu > 0.3) and np.all(res.alpha * mean_mu < 3)
    w = fit.weekly
    mu = w["expected"].to_numpy()
    alpha = np.repeat(res.alpha, fit.panel.n_weeks)
    q = res.q.reshape(-1)
    z = stats.norm.ppf(0.975)
    sd = np.sqrt(mu + alpha * mu**2 + mu**2 * q)
    np.testing.assert_allclose(w["z_score"], (w["observed"] - mu) / sd, rtol=1e-12)
    np.testing.assert_allclose(w["expected_upper"], mu * np.exp(z * np.sqrt(q)), rtol=1e-12)
    c = fit.by().cumulative("2020-01-01", "2020-12-31")
    assert np.isfinite(c["excess_lower"]).all()
    assert "alpha" in fit.coefficients.columns


def test_poisson_limit_is_bounded():
    """Poisson data: alpha goes to its lower bound, the fit still converges to the Poisson fit."""
    frame, _ = simulate(n_series=3, n_weeks=300, seed=2, phi=1.0)
    fit = em.fit(frame, baseline="negative_binomial", reference=REF)
    qp = em.fit(frame, baseline="poisson", reference=REF)
    assert fit.result.converged.all()
    bound = fit.result.info["alpha_at_bound"]
    np.testing.assert_allclose(fit.result.coef[bound], qp.result.coef[bound], rtol=1e-5, atol=1e-7)


def test_loglik_matches_scipy():
    rng = np.random.default_rng(0)
    mu = rng.uniform(5, 50, (2, 30))
    theta = np.array([3.0, 40.0])
    y = rng.poisson(mu).astype(float)
    ours = negbin_loglik(y, mu, theta, np.ones_like(y, bool))
    ref = stats.nbinom.logpmf(y, theta[:, None], theta[:, None] / (theta[:, None] + mu)).sum(axis=1)
    np.testing.assert_allclose(ours, ref, rtol=1e-12)


def test_errors():
    frame, _ = simulate(n_series=2, n_weeks=60, seed=1)
    with pytest.raises(InputError, match="too little history"):
        em.fit(frame, baseline="negative_binomial", reference=("2015-01-01", "2015-02-28"))
    with pytest.raises(InputError, match="reference"):
        em.fit(frame, baseline="negative_binomial", reference=None)
