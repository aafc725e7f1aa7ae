"""The five-year average as ONS published it (issue 12, item 2), on real ONS registrations.

``five_year_average`` on the nine English regions, summed to England with ``Fit.by()``, equals the
2020 England averages ONS published (weeks 1 to 20) to the published rounding (|diff| <= 0.5), and
Wales likewise. Read ../shared/data/ons/PROVENANCE.md: the 2020 averages rest on 2015-2019, which the
regional file holds; England is the sum of the nine regions.

Measured (2020 weeks 1-20): worst |diff| 0.4 for England, 0.4 for Wales. Week 19 (VE Day: the
early-May bank holiday moved to Friday 8 May 2020): ONS averaged week 19 of 2015-2019 as usual
(8,937.4 against a published 8,937); averaging instead the weeks that held the early-May bank holiday
in those years would give 8,347.0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import excessmort as em
from excessmort.baselines.average import FiveYearAverage
from excessmort.panel import Panel
from excessmort.regions import REGIONS, WALES_CODE
from excessmort.weeks import bank_holidays

# em.fit before em.Fit: the lazy export of the function must be resolved before anything imports the
# submodule excessmort.fit, whose import would otherwise bind the name ``excessmort.fit`` to the module.
fit_frame = em.fit
Fit = em.Fit

ONS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ons"
ROUNDING = 0.5  # ONS published the averages rounded to whole deaths


@pytest.fixture(scope="module")
def published() -> pd.DataFrame:
    assert ONS.is_dir(), f"{ONS} is missing: this test reads the real ONS data at test time"
    pub = pd.read_csv(ONS / "ons_published_weekly_totals.csv", parse_dates=["week_ending"])
    pub = pub[(pub["year"] == 2020) & pub["week"].between(1, 20)].set_index("week_ending")
    assert (
        len(pub) == 20
        and pub[["five_year_average_england", "five_year_average_wales"]].notna().all().all()
    )
    return pub


@pytest.fixture(scope="module")
def regions() -> pd.DataFrame:
    return em.read(ONS / "ons_weekly_deaths_by_region.csv")


@pytest.fixture(scope="module")
def england(regions: pd.DataFrame) -> Fit:
    return fit_frame(regions, baseline="five_year_average")


def _wales_fit(**options) -> Fit:
    """Wales on its own. ``em.fit`` re-reads its input with the default keep_wales=False, which
    leaves Wales out, so the Fit is assembled from the same parts ``em.fit`` uses."""
    frame = em.read(ONS / "ons_weekly_deaths_by_region.csv", keep_wales=True)
    wales = frame[frame["region"] == WALES_CODE].reset_index(drop=True)
    panel = Panel.from_frame(wales)
    model = FiveYearAverage(**options)
    reference = (pd.Timestamp("2015-01-01"), pd.Timestamp("2019-12-31"))
    return Fit(
        panel=panel,
        result=model.fit(panel, reference=reference),
        model=model,
        reference=reference,
        level=0.95,
    )


def test_regions_read_as_nine_english_regions(regions: pd.DataFrame, england: Fit) -> None:
    assert sorted(regions["region"].astype(str).unique()) == sorted(REGIONS)
    assert england.panel.n_series == 9
    assert england.weeks[0] == pd.Timestamp("2015-01-02") and england.weeks[-1] == pd.Timestamp(
        "2021-04-30"
    )


def test_england_equals_published_2020_five_year_average(
    england: Fit, published: pd.DataFrame
) -> None:
    total = england.by().weekly.set_index("week_ending")
    assert (total["region"].astype(str) == "E92000001").all()
    ours = total["expected"].reindex(published.index)
    diff = (ours - published["five_year_average_england"]).abs()
    assert diff.notna().all()
    assert diff.max() <= ROUNDING, diff.idxmax()
    # Not a coincidence of rounding: the averages are whole deaths / 5 and the published are whole.
    np.testing.assert_allclose((ours * 5).to_numpy(), np.round((ours * 5).to_numpy()), atol=1e-9)
    # The observed column is the sum of the nine regions too (regions only: below E&W totals).
    assert (
        total["observed"].reindex(published.index) < published["deaths_england_and_wales"]
    ).all()


def test_wales_equals_published_2020_five_year_average(published: pd.DataFrame) -> None:
    fit = _wales_fit()
    weekly = fit.weekly.set_index("week_ending")
    assert (weekly["region"].astype(str) == WALES_CODE).all()
    diff = (
        weekly["expected"].reindex(published.index) - published["five_year_average_wales"]
    ).abs()
    assert diff.notna().all()
    assert diff.max() <= ROUNDING, diff.idxmax()


def test_wales_is_never_summed_into_england(published: pd.DataFrame) -> None:
    """One fit holding Wales too: ``by()`` is still England (nine regions), Wales stays its own row."""
    frame = em.read(ONS / "ons_weekly_deaths_by_region.csv", keep_wales=True)
    panel = Panel.from_frame(frame)
    assert WALES_CODE in set(panel.keys["region"].astype(str))
    model = FiveYearAverage()
    fit = Fit(
        panel=panel,
        result=model.fit(panel, reference=None),
        model=model,
        reference=None,
        level=0.95,
    )
    total = fit.by().weekly.set_index("week_ending")["expected"].reindex(published.index)
    assert (total - published["five_year_average_england"]).abs().max() <= ROUNDING


def test_week_19_2020_averages_week_19_as_ons_did(england: Fit, published: pd.DataFrame) -> None:
    """VE Day moved the early-May bank holiday to Friday 8 May 2020 (week 19). ONS did not realign:
    the published week-19 average is the mean of week 19 of 2015-2019, not of the weeks that held the
    early-May bank holiday (weeks 18 or 19 in those years)."""
    week19 = pd.Timestamp("2020-05-08")
    assert week19 in bank_holidays(2020, 2020)
    ours = england.by().weekly.set_index("week_ending").loc[week19, "expected"]
    pub = published.loc[week19, "five_year_average_england"]
    assert abs(ours - pub) <= ROUNDING
    # The alternative: the weeks (ending on a Friday) that held the first May bank holiday, 2015-2019.
    holidays = bank_holidays(2015, 2019)
    early_may = holidays[(holidays.month == 5) & (holidays.day <= 7)]
    assert len(early_may) == 5
    holding = early_may + pd.to_timedelta(
        (4 - early_may.day_of_week) % 7, unit="D"
    )  # the Friday after
    observed = england.by().weekly.set_index("week_ending")["observed"]
    aligned = observed.loc[holding].mean()
    assert sorted(holding.isocalendar()["week"].tolist()) == [18, 18, 19, 19, 19]
    assert abs(aligned - pub) > 100 * ROUNDING


def test_2021_against_2015_2019_with_exclude_years(
    regions: pd.DataFrame, published: pd.DataFrame
) -> None:
    """ONS compared 2021 with 2015-2019 (skipping 2020): ``exclude_years=(2020,)`` gives, for 2021
    week w, the 2015-2019 average of week w, which ONS had published for 2020 week w. ONS's bulletins
    for 2021 weeks 16 and 17 say so: England 9,312 deaths, 475 below the average (9,787) and 9,094,
    674 below (9,768); Wales 616, 45 below (661) and 582, 80 below (662)."""
    fit = fit_frame(regions, baseline="five_year_average", exclude_years=(2020,))
    total = fit.by().weekly.set_index("week_ending")
    weeks21 = total.index[(total.index >= "2021-01-08") & (total.index <= "2021-04-30")]
    assert len(weeks21) == 17
    ours = total.loc[weeks21, "expected"].to_numpy()
    pub = published["five_year_average_england"].to_numpy()[:17]
    assert np.abs(ours - pub).max() <= ROUNDING
    np.testing.assert_allclose(np.round(ours[15:17]), [9787, 9768])
    wales = _wales_fit(exclude_years=(2020,)).weekly.set_index("week_ending")
    np.testing.assert_allclose(
        np.round(wales.loc[weeks21[15:17], "expected"].to_numpy()), [661, 662]
    )
    # Issue 17: with the default reference (2015-2019) no year after it is history, so the default
    # is ONS's 2015-2019 comparison too; the rolling average (2016-2020, asked for with
    # rolling=True) is a different, pandemic-inflated baseline for spring 2021.
    default = fit_frame(regions, baseline="five_year_average").by().weekly.set_index("week_ending")
    np.testing.assert_array_equal(default.loc[weeks21, "expected"].to_numpy(), ours)
    rolling = fit_frame(regions, baseline="five_year_average", rolling=True).by().weekly
    rolling = rolling.set_index("week_ending")
    assert (rolling.loc[weeks21[13:17], "expected"].to_numpy() > ours[13:17] + 1000).all()
