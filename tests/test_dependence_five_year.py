"""The five-year average's residual dependence when the data start at its reference (issue 21).

With no week before the reference there are no out-of-sample reference residuals; the dependence is
then estimated on leave-one-year-out residuals (each reference count against the mean of the other
n - 1 counts of its history set, scaled by sqrt(1 - 1/n^2)). Tested: the view against its closed
form, the choice of path, the variance of a cumulative sum against the exact covariance of a
simulated panel with known dependence (AR(1) shocks shared by an area's series and year effects),
and England 2020 on the ONS registrations.

Measured (seeds 1-8 of the simulated panel, 80 areas x 4 series): the model's variance of the 2020
cumulative excess over the exact one, mean over areas, 0.86-1.18 (mean 1.04; series 0.88-1.16),
series coverage 89-97%; independence gives 0.075 (areas). ONS England 2020: 71,898 (95%: 49,630 to 94,166); fully
correlated (before): -3,324 to 147,120; independence: 68,329 to 75,467.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import excessmort as em
from excessmort.baselines.average import FiveYearAverage, history_index
from excessmort.dependence import DependenceWarning
from excessmort.panel import Panel
from excessmort.weeks import iso_year_week

ONS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ons"
Z = stats.norm.ppf(0.975)
TAU, RHO, YEAR_SD, MU, CELLS = 0.04, 0.6, 0.02, 150.0, 4


def _panel(
    n_areas: int, seed: int, start: str = "2015-01-02"
) -> tuple[pd.DataFrame, pd.DatetimeIndex]:
    """Counts Poisson(MU (1 + w_gt + a_gy)) for CELLS series per area g: w AR(1) (coefficient RHO,
    sd TAU) shared by the area's series, a_gy a year effect (sd YEAR_SD) of ISO year y."""
    rng = np.random.default_rng(seed)
    weeks = pd.date_range(start, "2021-01-01", freq="7D")
    n_weeks = len(weeks)
    iso_year, _ = iso_year_week(weeks)
    w = np.empty((n_areas, n_weeks))
    w[:, 0] = rng.normal(0.0, TAU, n_areas)
    e = rng.normal(0.0, TAU * np.sqrt(1 - RHO**2), (n_areas, n_weeks))
    for t in range(1, n_weeks):
        w[:, t] = RHO * w[:, t - 1] + e[:, t]
    years = np.unique(iso_year)
    a = rng.normal(0.0, YEAR_SD, (n_areas, years.size))[:, np.searchsorted(years, iso_year)]
    y = rng.poisson(np.repeat(MU * (1.0 + w + a), CELLS, axis=0))
    frame = pd.DataFrame(
        {
            "area": np.repeat([f"R{i:03d}" for i in range(n_areas)], CELLS * n_weeks),
            "cell": np.tile(np.repeat([f"C{j}" for j in range(CELLS)], n_weeks), n_areas),
            "week_ending": np.tile(weeks.to_numpy(), n_areas * CELLS),
            "deaths": y.reshape(-1).astype(float),
        }
    )
    return frame, weeks


def _exact_variance(weeks: pd.DatetimeIndex, cells: int) -> float:
    """Var of the 2020 cumulative y - mu of a sum of ``cells`` series: v' Sigma v, v = 1 on the 53
    weeks of 2020 and -1/5 (times its reuse) on each history count, Sigma the exact covariance of
    the generating model (Poisson + shared AR(1) + ISO-year effects)."""
    iso_year, _ = iso_year_week(weeks)
    idx = history_index(weeks, 5, last_year=2019)
    window = np.flatnonzero(iso_year == 2020)
    v = np.zeros(len(weeks))
    v[window] = 1.0
    np.add.at(v, idx[window].ravel(), -0.2)
    m = cells * MU
    t = np.arange(len(weeks))
    cov = m * m * (
        TAU**2 * RHO ** np.abs(t[:, None] - t[None, :])
        + YEAR_SD**2 * (iso_year[:, None] == iso_year[None, :])
    ) + np.diag(np.full(len(weeks), m))
    return float(v @ cov @ v)


def _variance(frame: pd.DataFrame) -> np.ndarray:
    """The normal-equivalent variance of each row's interval (its half-width / z, squared)."""
    return ((frame["excess_upper"] - frame["excess_lower"]).to_numpy() / (2 * Z)) ** 2


# --------------------------------------------------------------------------- closed form and path
def test_leave_one_year_out_view_closed_form() -> None:
    frame, weeks = _panel(2, seed=1)
    panel = Panel.from_frame(frame)
    res = FiveYearAverage().fit(panel, reference=("2015-01-01", "2019-12-31"))
    assert res.leave_one_out and res.year_model() == ("loyo", 5)
    view, counts = res.dependence_view(panel.deaths)
    y = panel.deaths
    s = np.sqrt(1 - 1 / 25)
    for t in (0, 30, 51):  # 2020 weeks 1, 31, 52: history sets of five counts
        row = weeks.get_loc(pd.Timestamp("2020-01-03")) + t
        pos = history_index(weeks, 5, last_year=2019)[row]
        for j, p in enumerate(pos):
            others = np.delete(y[:, pos], j, axis=1).mean(axis=1)
            np.testing.assert_allclose(view.mu[:, p], others, rtol=1e-12)
            np.testing.assert_allclose(
                counts[:, p] - view.mu[:, p], s * (y[:, p] - others), rtol=1e-12
            )
    rmask = view.residual_mask()
    iso_year, _ = iso_year_week(weeks)
    assert (
        rmask.any(axis=0)[iso_year < 2020].all() and not rmask.any(axis=0)[iso_year == 2020].any()
    )
    # weeks outside the reference keep the fit's own mu and counts
    after = iso_year == 2020
    np.testing.assert_array_equal(view.mu[:, after], res.mu[:, after])
    np.testing.assert_array_equal(counts[:, after], y[:, after])


def test_out_of_sample_residuals_kept_when_the_data_reach_back() -> None:
    frame, _ = _panel(2, seed=1, start="2010-01-01")
    res = FiveYearAverage().fit(Panel.from_frame(frame), reference=("2015-01-01", "2019-12-31"))
    assert not res.leave_one_out and res.year_model() == ("average", 5)
    view, _ = res.dependence_view(np.zeros(1))
    assert view is res


# --------------------------------------------------------------------------- simulated, known dependence
def test_cumulative_variance_matches_exact_covariance() -> None:
    frame, weeks = _panel(80, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DependenceWarning)  # never the fully correlated fallback
        warnings.simplefilter("ignore", UserWarning)
        dep = em.fit(frame, baseline="five_year_average")
        areas, series = dep.by("area").cumulative(2020), dep.cumulative(2020)
    ind = em.fit(frame, baseline="five_year_average", dependence=False)
    exact_area, exact_series = _exact_variance(weeks, CELLS), _exact_variance(weeks, 1)
    # the oracle itself: the realised squared errors of the 2020 sums (80 and 480 of them)
    assert np.mean(areas["excess"] ** 2) / exact_area == pytest.approx(1.0, abs=0.35)
    ratio_area = _variance(areas).mean() / exact_area
    ratio_series = _variance(series).mean() / exact_series
    assert 0.8 <= ratio_area <= 1.3 and 0.8 <= ratio_series <= 1.3, (ratio_area, ratio_series)
    assert _variance(ind.by("area").cumulative(2020)).mean() / exact_area < 0.15
    covered = (series["excess_lower"] <= 0) & (series["excess_upper"] >= 0)  # no excess in 2020
    assert covered.mean() >= 0.88


def test_two_year_average_uses_leave_one_out() -> None:
    frame, _ = _panel(3, seed=4, start="2018-01-05")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DependenceWarning)
        warnings.simplefilter("ignore", UserWarning)
        f = em.fit(frame, baseline=FiveYearAverage(years=2), reference=("2018-01-01", "2019-12-31"))
        c = f.by("area").cumulative(2020)
    assert f.result.leave_one_out
    assert np.isfinite(c[["excess_lower", "excess_upper"]].to_numpy()).all()


# --------------------------------------------------------------------------- ONS: England 2020
def test_ons_england_2020_interval_is_sensible() -> None:
    regions = em.read(ONS / "ons_weekly_deaths_by_region.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DependenceWarning)
        dep = em.fit(regions, baseline="five_year_average").by().cumulative(2020).iloc[0]
    ind = em.fit(regions, baseline="five_year_average", dependence=False).by().cumulative(2020)
    half = (dep["excess_upper"] - dep["excess_lower"]) / 2
    half_ind = (ind["excess_upper"] - ind["excess_lower"]).iloc[0] / 2
    # the spread of England's registration-year totals 2015-2019 (52 weeks each), as a new year's
    # prediction error against a five-year mean: sd sqrt(1 + 1/5)
    england = regions.groupby("week_ending")["deaths"].sum()
    iso_year, iso_week = iso_year_week(pd.DatetimeIndex(england.index))
    yearly = (
        england[(iso_year <= 2019) & (iso_week <= 52)]
        .groupby(iso_year[(iso_year <= 2019) & (iso_week <= 52)])
        .sum()
    )
    spread = Z * np.sqrt(1.2) * yearly.std(ddof=1)
    assert half > half_ind * 2 and half > spread, (half, half_ind, spread)
    # before: fully correlated, 75,222; the excess is significant either way
    assert half < 3 * spread and dep["excess_lower"] > 0
