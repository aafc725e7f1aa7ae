"""Calibration on simulated data with known truth: intervals cover what they claim.

95% weekly prediction intervals must cover 93-97% of no-excess weeks; 95% intervals of yearly
cumulative excess must cover the true excess 92-98% of the time (R excessmort covers 62-84% on such
data because it leaves out the baseline's uncertainty). Bands are about +-3 binomial SE.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import excessmort as em
from _sim import simulate

pytestmark = pytest.mark.calibration


@pytest.mark.parametrize(("phi", "seed"), [(1.0, 101), (1.8, 202)])
def test_weekly_prediction_intervals_cover_95_percent(phi: float, seed: int) -> None:
    frame, _truth = simulate(400, 313 + 52, seed=seed, phi=phi, level=(20.0, 800.0))
    fit = em.fit(frame, reference=("2015-01-01", "2019-12-31"))
    w = fit.weekly
    after = (w["week_ending"] > "2019-12-31").to_numpy()
    # no excess: the excess interval must contain 0, i.e. y lies in the prediction interval
    covered = (w["excess_lower"] <= 0) & (w["excess_upper"] >= 0)
    rate = covered[after].mean()
    assert 0.93 <= rate <= 0.97, rate


@pytest.mark.parametrize(("phi", "excess", "seed"), [(1.0, 0.0, 303), (1.8, 0.15, 404)])
def test_yearly_cumulative_intervals_cover_the_true_excess(
    phi: float, excess: float, seed: int
) -> None:
    frame, truth = simulate(
        500,
        313 + 52,
        seed=seed,
        phi=phi,
        level=(20.0, 800.0),
        excess=excess,
        excess_from="2020-01-01",
    )
    fit = em.fit(frame, reference=("2015-01-01", "2019-12-31"))
    cum = fit.cumulative("2020-01-01", "2020-12-31")
    in_2020 = truth["week_ending"].between(pd.Timestamp("2020-01-01"), pd.Timestamp("2020-12-31"))
    window = truth[in_2020]
    true_excess = (
        window.groupby("area")["true_excess"].sum().loc[cum["area"].astype(str)].to_numpy()
    )
    covered = (cum["excess_lower"].to_numpy() <= true_excess) & (
        true_excess <= cum["excess_upper"].to_numpy()
    )
    assert 0.92 <= covered.mean() <= 0.98, covered.mean()
    # and without the baseline's uncertainty (sum of phi mu only) the coverage falls short
    z = 1.959963984540054
    weeks_2020 = (fit.weeks >= "2020-01-01") & (fit.weeks <= "2020-12-31")
    sd_naive = np.sqrt(fit.result.obs_variance()[:, weeks_2020].sum(axis=1))
    naive = np.abs(cum["excess"].to_numpy() - true_excess) <= z * sd_naive
    assert naive.mean() < covered.mean() - 0.03
