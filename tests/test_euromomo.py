"""EuroMOMO: a hand-checked example against statsmodels on exactly the spring and autumn weeks
(coefficients 1e-8), the 2/3-power z-scores and bounds from their closed forms (1e-10), the fit mask,
MOMOpack's parametrisation, and the calibration of z-scores on simulated no-excess data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats

import excessmort as em
from excessmort.baselines.euromomo import EuroMOMO, EuroMOMOResult
from excessmort.exceptions import InputError

REFERENCE = ("2015-01-01", "2019-12-31")

# Resolve the lazy export before anything imports the submodule excessmort.fit (which would bind the
# package attribute ``fit`` to the module).
fit_frame = em.fit


def _frame(
    seed: int = 0,
    n_series: int = 2,
    phi: float = 1.0,
    start: str = "2014-01-03",
    end: str = "2020-12-25",
) -> pd.DataFrame:
    """Counts from a trend + one annual harmonic (the EuroMOMO model), Poisson or NB(phi)."""
    rng = np.random.default_rng(seed)
    weeks = pd.date_range(start, end, freq="7D")
    t = (weeks - weeks[0]).days.to_numpy() / 7.0
    level = rng.uniform(100, 1500, n_series)
    mean = level[:, None] * np.exp(
        0.0004 * t[None, :]
        + 0.15 * np.cos(2 * np.pi * (t[None, :] - rng.uniform(0, 5, (n_series, 1))) / 52.18)
    )
    counts = (
        rng.poisson(mean) if phi == 1.0 else rng.poisson(rng.gamma(mean / (phi - 1.0), phi - 1.0))
    )
    return pd.DataFrame(
        {
            "area": np.repeat([f"S{i:04d}" for i in range(n_series)], len(weeks)),
            "week_ending": np.tile(weeks.to_numpy(), n_series),
            "deaths": counts.reshape(-1).astype(float),
        }
    )


def _spring_autumn(weeks: pd.DatetimeIndex) -> np.ndarray:
    iso_week = weeks.isocalendar()["week"].to_numpy()
    in_ref = (weeks >= REFERENCE[0]) & (weeks <= REFERENCE[1])
    return np.asarray(
        in_ref & (((iso_week >= 15) & (iso_week <= 26)) | ((iso_week >= 36) & (iso_week <= 45)))
    )


def _columns(weeks: pd.DatetimeIndex) -> np.ndarray:
    """By hand: 1, years since 2000-01-01, and the 52.18-week harmonic."""
    days = (weeks - pd.Timestamp("2000-01-01")).days.to_numpy().astype(float)
    angle = 2 * np.pi * days / (7 * 52.18)
    return np.column_stack([np.ones_like(days), days / 365.25, np.sin(angle), np.cos(angle)])


def _closed_form(y, mu, phi, var_mu, level=0.95):
    """Var(y^(2/3)) ~ (4/9) mu^(-2/3) (phi mu + var(mu)); bounds (mu^(2/3) -+ q sd)^(3/2)."""
    q = stats.norm.ppf(0.5 + level / 2)
    sd = np.sqrt(4 / 9 * mu ** (-2 / 3) * (phi * mu + var_mu))
    z = (y ** (2 / 3) - mu ** (2 / 3)) / sd
    lower = np.clip(mu ** (2 / 3) - q * sd, 0, None) ** 1.5
    upper = (mu ** (2 / 3) + q * sd) ** 1.5
    return z, lower, upper


@pytest.mark.parametrize("phi_true", [1.0, 3.0])
def test_hand_checked_example(phi_true: float) -> None:
    frame = _frame(seed=4, phi=phi_true)
    fit = fit_frame(frame, baseline="euromomo", reference=REFERENCE)
    res = fit.result
    assert isinstance(res, EuroMOMOResult)
    weeks = fit.weeks
    mask = _spring_autumn(weeks)
    X = _columns(weeks)
    weekly = fit.weekly
    coefs = fit.coefficients
    for s, area in enumerate(fit.panel.keys["area"].astype(str)):
        y = frame.loc[frame["area"] == area, "deaths"].to_numpy()
        sm_fit = sm.GLM(y[mask], X[mask], family=sm.families.Poisson()).fit(tol=1e-12)
        beta = sm_fit.params
        phi = max(1.0, sm_fit.pearson_chi2 / sm_fit.df_resid)
        np.testing.assert_allclose(
            coefs.loc[s, ["intercept", "trend", "sin", "cos"]].to_numpy(float), beta, rtol=1e-8
        )
        assert coefs.loc[s, "dispersion"] == pytest.approx(
            sm_fit.pearson_chi2 / sm_fit.df_resid, rel=1e-8
        )
        assert res.dispersion[s] == pytest.approx(phi, rel=1e-8)
        mu = np.exp(X @ beta)
        cov = sm_fit.cov_params()  # (X'WX)^-1: Poisson scale 1
        var_mu = phi * mu**2 * np.einsum("tj,jk,tk->t", X, cov, X)
        rows = weekly[weekly["area"].astype(str) == area]
        np.testing.assert_allclose(rows["expected"].to_numpy(), mu, rtol=1e-8)
        z, lower, upper = _closed_form(y, mu, phi, var_mu)
        # Against statsmodels' inputs: as close as the two fits agree (STYLE: bounds 1e-6).
        np.testing.assert_allclose(rows["z_score"].to_numpy(), z, rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose((y - rows["excess_upper"]).to_numpy(), lower, rtol=1e-6)
        np.testing.assert_allclose((y - rows["excess_lower"]).to_numpy(), upper, rtol=1e-6)
        # The closed form on the engine's own mu, phi and x'(X'WX)^-1 x: 1e-10.
        mu_e = res.mu[s]
        var_e = res.dispersion[s] * mu_e**2 * res.q[s]
        z, lower, upper = _closed_form(y, mu_e, res.dispersion[s], var_e)
        np.testing.assert_allclose(rows["z_score"].to_numpy(), z, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose((y - rows["excess_upper"]).to_numpy(), lower, rtol=1e-10)
        np.testing.assert_allclose((y - rows["excess_lower"]).to_numpy(), upper, rtol=1e-10)
    if phi_true == 3.0:
        assert np.all(res.dispersion_raw > 1.5)  # over-dispersion estimated, not floored away
    # The 2/3-power interval is asymmetric around mu: wider above.
    up = weekly["excess_lower"].rsub(weekly["observed"]) - weekly["expected"]
    down = weekly["expected"] - weekly["excess_upper"].rsub(weekly["observed"])
    assert (up > down).all()


def test_fit_uses_only_spring_and_autumn_weeks_of_the_reference() -> None:
    frame = _frame(seed=5)
    res = fit_frame(frame, baseline="euromomo", reference=REFERENCE).result
    weeks = pd.date_range("2014-01-03", "2020-12-25", freq="7D")
    np.testing.assert_array_equal(
        res.fit_mask, np.broadcast_to(_spring_autumn(weeks), res.fit_mask.shape)
    )
    iso_week = weeks.isocalendar()["week"].to_numpy()
    used = np.unique(iso_week[res.fit_mask[0]])
    assert set(used) == set(range(15, 27)) | set(range(36, 46))  # no winter or summer week
    assert weeks[res.fit_mask[0]].min() >= pd.Timestamp(REFERENCE[0])
    assert weeks[res.fit_mask[0]].max() <= pd.Timestamp(REFERENCE[1])
    assert res.info["n_obs"][0] == 5 * 22  # 12 spring + 10 autumn weeks in each of 5 years
    # MOMOpack v4.3's strict bounds, as an option: weeks 16-25 and 37-44.
    strict = fit_frame(
        frame, baseline=EuroMOMO(seasons=((16, 25), (37, 44))), reference=REFERENCE
    ).result
    assert set(np.unique(iso_week[strict.fit_mask[0]])) == set(range(16, 26)) | set(range(37, 45))


def test_fitted_values_equal_momopack_parametrisation() -> None:
    """MOMOpack: nbc ~ sin + cos + wk, wk a week counter, sin(2 pi wk / 52.18): the same fitted values."""
    frame = _frame(seed=6, n_series=1)
    fit = fit_frame(frame, baseline="euromomo", reference=REFERENCE)
    weeks = fit.weeks
    wk = np.arange(1, len(weeks) + 1, dtype=float)
    X = np.column_stack(
        [np.ones_like(wk), np.sin(2 * np.pi * wk / 52.18), np.cos(2 * np.pi * wk / 52.18), wk]
    )
    mask = _spring_autumn(weeks)
    y = frame["deaths"].to_numpy()
    momo = sm.GLM(y[mask], X[mask], family=sm.families.Poisson()).fit(tol=1e-12)
    np.testing.assert_allclose(fit.result.mu[0], momo.predict(X), rtol=1e-8)
    # stdp of MOMOpack: predict(se.fit=TRUE) with the quasi-Poisson scale max(1, od).
    od = max(1.0, momo.pearson_chi2 / momo.df_resid)
    stdp = np.sqrt(od * np.einsum("tj,jk,tk->t", X, momo.cov_params(), X))
    np.testing.assert_allclose(fit.result.se_log_expected()[0], stdp, rtol=1e-6)


def test_dispersion_floor() -> None:
    # Under-dispersed counts (binomial with small variance): raw phi < 1, floored to 1 by default.
    rng = np.random.default_rng(8)
    frame = _frame(seed=8, n_series=1)
    frame["deaths"] = rng.binomial(2000, 0.5, len(frame)).astype(float)
    res = fit_frame(frame, baseline="euromomo", reference=REFERENCE).result
    assert res.dispersion_raw[0] < 0.8
    assert res.dispersion[0] == 1.0
    res0 = fit_frame(frame, baseline="euromomo", reference=REFERENCE, dispersion_floor=0).result
    assert res0.dispersion[0] == pytest.approx(res.dispersion_raw[0], rel=1e-12)


def test_bad_options() -> None:
    frame = _frame(seed=9, n_series=1)
    with pytest.raises(InputError) as err:
        fit_frame(frame, baseline="euromomo", reference=REFERENCE, seasons=((30, 20),))
    assert err.value.column == "seasons"
    with pytest.raises(InputError) as err:
        fit_frame(frame, baseline="euromomo", reference=REFERENCE, period_weeks=0)
    assert err.value.column == "period_weeks"
    with pytest.raises(InputError, match="too little history"):
        fit_frame(
            frame, baseline="euromomo", reference=("2015-01-01", "2015-04-30")
        )  # weeks 15-18 only
    with pytest.raises(InputError, match="reference period"):
        EuroMOMO().fit(
            fit_frame(frame, baseline="euromomo", reference=REFERENCE).panel, reference=None
        )


@pytest.mark.calibration
@pytest.mark.parametrize("phi", [1.0, 2.5])
def test_z_scores_of_no_excess_data_are_standard_normal(phi: float) -> None:
    """Calibration: z-scores of the year after the reference, on data from the model, are ~N(0, 1)."""
    frame = _frame(seed=12, n_series=300, phi=phi)
    fit = fit_frame(frame, baseline="euromomo", reference=REFERENCE)
    wk = fit.weekly
    z = wk.loc[wk["week_ending"].dt.year == 2020, "z_score"].to_numpy()
    assert z.size == 300 * 52
    assert abs(z.mean()) < 0.1, z.mean()
    assert abs(z.std() - 1.0) < 0.1, z.std()
    # And the 95% prediction intervals cover about 95% (binomial SE band, 3 SE, plus the 0.5% that
    # phi's floor and the power approximation may move it).
    inside = np.mean(
        (wk.loc[wk["week_ending"].dt.year == 2020, "excess_lower"] <= 0)
        & (wk.loc[wk["week_ending"].dt.year == 2020, "excess_upper"] >= 0)
    )
    assert abs(inside - 0.95) < 3 * np.sqrt(0.95 * 0.05 / z.size) + 0.005, inside
