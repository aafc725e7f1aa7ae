"""fit() and Fit: excess, intervals and aggregates against closed forms (1e-12)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import excessmort as em
from _sim import simulate
from excessmort.exceptions import InputError

REF = ("2015-01-01", "2019-12-31")


@pytest.fixture(scope="module")
def regional() -> em.Fit:
    """Nine regions x two sexes with population."""
    frame, _ = simulate(18, 470, seed=21, phi=1.4, excess=0.3, excess_from="2020-03-20")
    codes = [f"E1200000{i}" for i in range(1, 10)]
    area = frame["area"].str[1:].astype(int)
    frame["region"] = [codes[a // 2] for a in area]
    frame["sex"] = np.where(area % 2 == 0, "F", "M")
    frame = frame.drop(columns="area")[["region", "sex", "week_ending", "deaths", "population"]]
    # The closed forms below are those of the independence mode (sums of phi mu); the dependence
    # model that is the default for sums is tested in test_dependence.py.
    return em.fit(frame, reference=REF, dependence=False)


def _series_cumulative_variance(fit: em.Fit, series: np.ndarray, window: np.ndarray) -> float:
    """g'Vg + sum phi mu, from the coefficients' covariance, summed over independent series."""
    res = fit.result
    X = res.design.X[window]
    total = 0.0
    for s in series:
        mu = res.mu[s, window]
        g = mu @ X
        V = res.dispersion[s] * res.cov_unscaled[s]
        total += g @ V @ g + np.sum(res.dispersion[s] * mu)
    return float(total)


def test_cumulative_interval_is_g_v_g_plus_sum_phi_mu(regional: em.Fit) -> None:
    z = stats.norm.ppf(0.975)
    window = (regional.weeks >= "2020-03-01") & (regional.weeks <= "2020-12-31")
    cum = regional.cumulative("2020-03-01", "2020-12-31")
    for s in range(regional.panel.n_series):
        sd = np.sqrt(_series_cumulative_variance(regional, np.array([s]), window))
        row = cum.iloc[s]
        np.testing.assert_allclose(row["excess_upper"] - row["excess"], z * sd, rtol=1e-12)
        np.testing.assert_allclose(row["excess"] - row["excess_lower"], z * sd, rtol=1e-12)
        np.testing.assert_allclose(
            row["observed"], np.nansum(regional.panel.deaths[s, window]), rtol=1e-12
        )


def test_cumulative_is_not_the_sum_of_weekly_variances(regional: em.Fit) -> None:
    window = (regional.weeks >= "2020-03-01") & (regional.weeks <= "2020-12-31")
    res = regional.result
    naive = np.sum(res.dispersion[0] * res.mu[0, window] ** 2 * res.q[0, window])
    correct = (
        res.param_variance_window(np.array([0]), 1, window)[0] if res.mu.shape[0] == 1 else None
    )
    g = res.mu[0, window] @ res.design.X[window]
    correct = res.dispersion[0] * g @ res.cov_unscaled[0] @ g
    assert (
        correct > 2 * naive
    )  # positively correlated weekly errors: the sum of variances understates


def test_england_is_sum_of_regions_with_its_own_interval(regional: em.Fit) -> None:
    england = regional.by().weekly
    assert (england["region"] == "E92000001").all() and len(england) == len(regional.weeks)
    per_series = regional.weekly
    sums = per_series.groupby("week_ending")[["observed", "expected", "excess"]].sum()
    np.testing.assert_allclose(
        england[["observed", "expected"]].to_numpy(),
        sums[["observed", "expected"]].to_numpy(),
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        england["excess"].to_numpy(), sums["excess"].to_numpy(), rtol=1e-12, atol=1e-8
    )
    # weekly aggregate variance: series are fitted independently, so variances add
    res = regional.result
    z = stats.norm.ppf(0.975)
    t = 300
    var = np.sum(res.dispersion * res.mu[:, t] + res.dispersion * res.mu[:, t] ** 2 * res.q[:, t])
    row = england.iloc[t]
    np.testing.assert_allclose(row["excess_upper"] - row["excess"], z * np.sqrt(var), rtol=1e-12)
    cum = regional.by().cumulative("2020-03-01", "2020-12-31").iloc[0]
    window = (regional.weeks >= "2020-03-01") & (regional.weeks <= "2020-12-31")
    sd = np.sqrt(_series_cumulative_variance(regional, np.arange(18), window))
    np.testing.assert_allclose(cum["excess_upper"] - cum["excess"], z * sd, rtol=1e-12)


def test_by_region_sums_sexes(regional: em.Fit) -> None:
    by_region = regional.by("region").cumulative("2020-01-01", "2020-12-31")
    assert by_region["region"].astype(str).tolist() == [f"E1200000{i}" for i in range(1, 10)]
    per_series = regional.cumulative("2020-01-01", "2020-12-31")
    sums = per_series.groupby("region", observed=True)[["observed", "expected"]].sum()
    np.testing.assert_allclose(
        by_region[["observed", "expected"]].to_numpy(), sums.to_numpy(), rtol=1e-12
    )


def test_z_and_p_scores_closed_form(regional: em.Fit) -> None:
    w = regional.weekly
    res = regional.result
    y = regional.panel.deaths.reshape(-1)
    mu = res.mu.reshape(-1)
    sd = np.sqrt(
        (res.dispersion[:, None] * res.mu + res.dispersion[:, None] * res.mu**2 * res.q).reshape(-1)
    )
    np.testing.assert_allclose(w["z_score"], (y - mu) / sd, rtol=1e-12)
    np.testing.assert_allclose(w["p_score"], 100 * (y - mu) / mu, rtol=1e-12)


def test_weekly_columns_are_the_public_contract(regional: em.Fit) -> None:
    # Issue 17: names beside codes, week numbers, prediction bounds and the ratio (as the CLI's
    # figures files) joined the contract.
    assert regional.weekly.columns.tolist() == [
        "region",
        "region_name",
        "sex",
        "week_ending",
        "iso_year",
        "iso_week",
        "year",
        "week",
        "observed",
        "expected",
        "expected_lower",
        "expected_upper",
        "prediction_lower",
        "prediction_upper",
        "excess",
        "excess_lower",
        "excess_upper",
        "z_score",
        "p_score",
        "ratio",
        "ratio_lower",
        "ratio_upper",
        # with a population in the data, the rates per 100,000 (issue 17 item 8)
        "population",
        "observed_rate",
        "expected_rate",
        "excess_rate",
        "excess_rate_lower",
        "excess_rate_upper",
    ]
    cum = regional.cumulative("2020-01-01", "2020-12-31")
    for col in ["region", "sex", "observed", "expected", "excess", "excess_lower", "excess_upper"]:
        assert col in cum.columns


def test_cumulative_outside_data_names_both_ranges(regional: em.Fit) -> None:
    with pytest.raises(
        InputError,
        match=r"2030-01-01 to 2030-12-31 lies outside the data, which run from 2015-01-02",
    ):
        regional.cumulative("2030-01-01", "2030-12-31")


def test_reference_outside_data_is_refused() -> None:
    frame, _ = simulate(2, 200, seed=1)
    with pytest.raises(
        InputError,
        match=r"reference period 1990-01-01\.\.1994-12-31 lies outside the data: it is wholly before",
    ):
        em.fit(frame, reference=("1990-01-01", "1994-12-31"))


def test_too_little_history_is_refused() -> None:
    frame, _ = simulate(2, 200, seed=1)
    with pytest.raises(InputError, match=r"too little history"):
        em.fit(frame, reference=("2015-01-01", "2015-02-28"))


@pytest.mark.parametrize("level", [0, 1, 1.5, "0.95", True])
def test_level_is_validated_and_echoed(level) -> None:
    frame, _ = simulate(2, 200, seed=1)
    with pytest.raises(
        InputError,
        match=r"level must be a float in \(0, 1\).*got " + repr(level).replace(".", r"\."),
    ):
        em.fit(frame, reference=REF, level=level)


def test_unknown_baseline_lists_the_allowed() -> None:
    frame, _ = simulate(2, 200, seed=1)
    with pytest.raises(InputError, match=r"baseline must be one of \['quasipoisson'.*got 'qp'"):
        em.fit(frame, baseline="qp")


def test_baseline_name_literal_and_fit_docstring_list_the_registry() -> None:
    import re
    import typing

    from excessmort._typing import BaselineName
    from excessmort.baselines import available

    assert list(typing.get_args(BaselineName)) == available()
    doc = em.fit.__doc__ or ""
    section = doc[doc.index("baseline : ") : doc.index("reference : ")]
    assert re.findall(r'``"(\w+)"``', section) == available()


def test_unknown_stratum_in_by() -> None:
    frame, _ = simulate(2, 313, seed=1)  # a reference may not run past the data
    fit = em.fit(frame, reference=REF)
    with pytest.raises(InputError, match=r"unknown strata \['sex'\]"):
        fit.by("sex")


def test_wales_is_never_summed_into_england() -> None:
    frame, _ = simulate(3, 313, seed=5)
    frame["region"] = frame["area"].map(
        {"A0000": "E12000001", "A0001": "E12000002", "A0002": "W92000004"}
    )
    frame = frame.drop(columns="area")[["region", "week_ending", "deaths", "population"]]
    fit = em.fit(em.read(frame, keep_wales=True), reference=REF)
    england = fit.by().weekly
    sums = fit.weekly.query("region != 'W92000004'").groupby("week_ending")["observed"].sum()
    np.testing.assert_allclose(england["observed"].to_numpy(), sums.to_numpy())
    assert (england["region"] == "E92000001").all()


def test_repr_names_baseline_series_and_reference(regional: em.Fit) -> None:
    text = repr(regional)
    assert text.startswith("<excessmort.Fit quasipoisson: 18 series, 2015-01-02..")
    assert "reference 2015-01-01..2019-12-31, 0 not converged>" in text


def test_wales_alone_can_be_fitted_when_asked() -> None:
    frame, _ = simulate(1, 313, seed=6)
    frame = frame.assign(region="W92000004").drop(columns="area")[
        ["region", "week_ending", "deaths", "population"]
    ]
    fit = em.fit(frame, reference=REF, keep_wales=True)
    assert fit.weekly["region"].astype(str).unique().tolist() == ["W92000004"]
    again = em.fit(em.read(frame, keep_wales=True), reference=REF)  # remembered from read()
    np.testing.assert_array_equal(again.weekly["expected"], fit.weekly["expected"])
    with pytest.raises(InputError):
        em.fit(frame, reference=REF)  # by default Wales is left out, leaving nothing
