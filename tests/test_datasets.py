"""Tests of the bundled demo data (excessmort.datasets): format, determinism, realism, truth.

Realism is checked against the real ONS weekly registrations in ../shared/data/ons (regional, age
and sex shares) and the generator against its own truth (means, dispersion, registration shifts).
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dateutil.easter import easter

import excessmort
from excessmort import datasets
from excessmort.exceptions import InputError
from excessmort.regions import REGIONS

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
ONS = SHARED / "data" / "ons"
KEYS = ["region", "sex", "age_group"]


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return excessmort.demo_data()


@pytest.fixture(scope="module")
def truth() -> pd.DataFrame:
    return excessmort.demo_truth()


@pytest.fixture(scope="module")
def england(frame: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """England = sum of the 72 series, by week: observed and truth."""
    both = pd.concat([frame, truth[["true_baseline", "true_mean", "true_excess"]]], axis=1)
    return both.groupby("week_ending")[
        ["deaths", "true_baseline", "true_mean", "true_excess"]
    ].sum()


def assert_frames_identical(left: pd.DataFrame, right: pd.DataFrame) -> None:
    """Exact equality of two frames (categoricals by dtype and codes: far faster than by value)."""
    assert list(left.columns) == list(right.columns)
    pd.testing.assert_index_equal(left.index, right.index, exact=True)
    for column in left.columns:
        a, b = left[column], right[column]
        if isinstance(a.dtype, pd.CategoricalDtype):
            assert a.dtype == b.dtype, column
            np.testing.assert_array_equal(a.cat.codes.to_numpy(), b.cat.codes.to_numpy())
        else:
            pd.testing.assert_series_equal(a, b)


def _years(index: pd.DatetimeIndex, first: int, last: int) -> np.ndarray:
    return np.asarray((index.year >= first) & (index.year <= last))


# --- format -------------------------------------------------------------------------------------


def test_columns_dtypes_and_categories(frame: pd.DataFrame) -> None:
    assert list(frame.columns) == [*KEYS, "week_ending", "deaths", "population"]
    assert isinstance(frame.index, pd.RangeIndex) and frame.index.start == 0
    assert list(frame["region"].cat.categories) == list(REGIONS)
    assert list(frame["sex"].cat.categories) == ["F", "M"]
    assert list(frame["age_group"].cat.categories) == ["0-64", "65-74", "75-84", "85+"]
    assert frame["age_group"].cat.ordered and not frame["region"].cat.ordered
    assert frame["week_ending"].dtype == np.dtype("datetime64[ns]")
    assert frame["deaths"].dtype == np.float64 and frame["population"].dtype == np.float64
    deaths = frame["deaths"].to_numpy()
    assert np.all(deaths >= 0) and np.array_equal(deaths, np.round(deaths))
    assert np.all(frame["population"].to_numpy() > 0)
    assert not frame.isna().any().any()


def test_sorted_by_series_then_week(frame: pd.DataFrame) -> None:
    expected = frame.sort_values([*KEYS, "week_ending"], kind="stable", ignore_index=True)
    assert_frames_identical(frame, expected)


def test_72_series_weekly_fridays_without_gaps(frame: pd.DataFrame) -> None:
    series = frame.groupby(KEYS, observed=True)
    assert series.ngroups == 9 * 2 * 4
    weeks = frame["week_ending"]
    assert set(weeks.dt.day_of_week) == {4}  # Friday
    assert weeks.min() == pd.Timestamp("2010-01-01")  # the first Friday of 2010
    steps = series["week_ending"].diff().dropna()
    assert (steps == pd.Timedelta(days=7)).all()
    assert series.size().nunique() == 1 and series["week_ending"].max().nunique() == 1


def test_week_53_years_are_on_the_calendar(frame: pd.DataFrame) -> None:
    weeks = pd.DatetimeIndex(frame["week_ending"].unique())
    iso = weeks.isocalendar()
    counts = iso.groupby("year")["week"].agg(["size", "max"])
    complete = counts.loc[2010 : weeks.max().year - 1]
    expected = [53 if dt.date(y, 12, 28).isocalendar()[1] == 53 else 52 for y in complete.index]
    assert complete["size"].tolist() == expected and complete["max"].tolist() == expected
    assert iso.loc[pd.Timestamp("2016-01-01"), "week"] == 53  # 2015 week 53
    assert iso.loc[pd.Timestamp("2021-01-01"), "week"] == 53  # 2020 week 53


def test_default_end_is_last_friday_of_latest_complete_month(frame: pd.DataFrame) -> None:
    today = pd.Timestamp(dt.date.today())
    month_start = today.to_period("M").start_time
    previous = pd.date_range(
        month_start - pd.offsets.MonthBegin(1), month_start - pd.Timedelta(days=1)
    )
    assert frame["week_ending"].max() == previous[previous.day_of_week == 4][-1]
    for today_, expected in [
        (dt.date(2026, 11, 25), "2026-10-30"),
        (dt.date(2026, 10, 31), "2026-09-25"),  # October not complete on its last day
        (dt.date(2026, 11, 1), "2026-10-30"),
        (dt.date(2021, 1, 5), "2020-12-25"),
    ]:
        assert datasets._default_end(today_) == pd.Timestamp(expected)


# --- determinism ----------------------------------------------------------------------------------


def test_deterministic_and_independent_of_end(frame: pd.DataFrame, truth: pd.DataFrame) -> None:
    assert_frames_identical(excessmort.demo_data(), frame)
    assert_frames_identical(excessmort.demo_truth(), truth)
    # a fresh generation (cache cleared) gives identical values
    datasets._simulate.cache_clear()
    assert_frames_identical(excessmort.demo_data(), frame)

    early = excessmort.demo_data(end="2019-12-31")
    cut = frame[frame["week_ending"] <= "2019-12-31"].reset_index(drop=True)
    assert_frames_identical(early, cut)
    early_truth = excessmort.demo_truth(end=dt.date(2019, 12, 31))
    assert_frames_identical(
        early_truth, truth[truth["week_ending"] <= "2019-12-31"].reset_index(drop=True)
    )

    later = excessmort.demo_data(end="2031-06-30")
    assert later["week_ending"].max() == pd.Timestamp("2031-06-27")
    head = later[later["week_ending"] <= frame["week_ending"].max()].reset_index(drop=True)
    assert_frames_identical(head, frame)


def test_returned_frames_are_independent_copies() -> None:
    first = excessmort.demo_data(end="2012-12-31")
    first.loc[0, "deaths"] = -1.0
    assert excessmort.demo_data(end="2012-12-31").loc[0, "deaths"] >= 0


def test_truth_rows_match_data_rows(frame: pd.DataFrame, truth: pd.DataFrame) -> None:
    assert list(truth.columns) == [
        *KEYS,
        "week_ending",
        "true_baseline",
        "true_mean",
        "true_excess",
    ]
    assert_frames_identical(truth[[*KEYS, "week_ending"]], frame[[*KEYS, "week_ending"]])
    for column in ["true_baseline", "true_mean", "true_excess"]:
        assert truth[column].dtype == np.float64


@pytest.mark.parametrize("end", ["2009-12-31", "2036-01-31", "not a date"])
def test_bad_end_is_refused(end: str) -> None:
    with pytest.raises(InputError, match=r"end=") as info:
        excessmort.demo_data(end=end)
    assert info.value.column == "end" and info.value.value == end


def test_fast() -> None:
    datasets._simulate.cache_clear()
    start = time.perf_counter()
    excessmort.demo_data()
    assert time.perf_counter() - start < 2.0  # about 0.05 s once imports are done


# --- realism --------------------------------------------------------------------------------------


def test_england_weekly_level_2015_2019(england: pd.DataFrame) -> None:
    deaths = england["deaths"]
    weeks = pd.DatetimeIndex(deaths.index)
    holidays = excessmort.weeks.bank_holidays(2015, 2019)
    holiday_weeks = holidays + pd.to_timedelta((4 - holidays.day_of_week) % 7, unit="D")
    touched = (
        set(holiday_weeks)
        | set(holiday_weeks + pd.Timedelta(weeks=1))
        | set(holiday_weeks + pd.Timedelta(weeks=2))
    )
    for year in range(2015, 2020):
        summer = deaths[(weeks.year == year) & weeks.month.isin([6, 7, 8])]
        assert 9_500 <= summer.mean() <= 10_500, (year, summer.mean())
        plain = summer[~summer.index.isin(list(touched))]
        assert len(plain) >= 6
        assert plain.between(9_000, 11_000).all(), (year, plain.min(), plain.max())
        winter = deaths.rolling(4, center=True).mean()[f"{year}-11-01" : f"{year + 1}-02-28"]
        assert 12_000 <= winter.max() <= 14_000, (year, winter.max())


def _ons_region_shares() -> pd.Series:
    ons = pd.read_csv(ONS / "ons_weekly_deaths_by_region.csv")
    ons = ons[ons["year"].between(2015, 2019) & ons["area_code"].str.startswith("E12")]
    totals = ons.groupby("area_code")["deaths"].sum()
    return totals / totals.sum()


def test_regional_sizes_resemble_ons(frame: pd.DataFrame) -> None:
    years = frame["week_ending"].dt.year.between(2015, 2019)
    totals = frame[years].groupby("region", observed=True)["deaths"].sum()
    shares = totals / totals.sum()
    shares.index = shares.index.astype(str)
    real = _ons_region_shares()
    np.testing.assert_allclose(shares[real.index], real, atol=0.005)
    order = [REGIONS[code] for code in totals.sort_values(ascending=False).index]
    assert order == [
        "South East",
        "North West",
        "East of England",
        "South West",
        "West Midlands",
        "Yorkshire and The Humber",
        "London",
        "East Midlands",
        "North East",
    ]


def test_age_and_sex_shares_resemble_ons(frame: pd.DataFrame) -> None:
    ons = pd.read_csv(ONS / "ons_weekly_deaths_by_sex_age.csv")
    ons = ons[ons["year"].between(2015, 2019)]
    band = ons["age_group"].where(ons["age_group"].isin(["65-74", "75-84", "85+"]), "0-64")
    sex = ons["sex"].map({"female": "F", "male": "M"})
    real = ons.groupby([sex, band])["deaths"].sum()
    real = real / real.sum()
    years = frame["week_ending"].dt.year.between(2015, 2019)
    demo = frame[years].groupby(["sex", "age_group"], observed=True)["deaths"].sum()
    demo = demo / demo.sum()
    demo.index = pd.MultiIndex.from_tuples([(str(s), str(a)) for s, a in demo.index])
    np.testing.assert_allclose(demo[real.index], real, atol=0.015)
    by_age = demo.groupby(level=1).sum()
    bands = ["0-64", "65-74", "75-84", "85+"]
    np.testing.assert_allclose(by_age[bands], [0.15, 0.17, 0.28, 0.40], atol=0.02)
    assert 0.45 <= demo.groupby(level=0).sum()["M"] <= 0.55


def test_population_grows_and_death_rates_fall(frame: pd.DataFrame, truth: pd.DataFrame) -> None:
    year = frame["week_ending"].dt.year
    keys = [frame[k] for k in KEYS]
    pop = frame.groupby([*keys, year], observed=True)["population"].mean().unstack()
    growth = np.log(pop[2019] / pop[2011]) / 8
    assert growth.between(0.0, 0.03).all()
    by_age = growth.groupby(level="age_group", observed=True).mean()
    assert by_age.is_monotonic_increasing and by_age["85+"] > by_age["0-64"] + 0.01
    rate = (
        truth.groupby([*keys, year], observed=True)["true_baseline"].sum()
        / frame.groupby([*keys, year], observed=True)["population"].mean()
    ).unstack()
    change = np.log(rate[2019] / rate[2011]) / 8
    assert change.between(-0.02, -0.005).all()  # per capita: about -1 % a year


def test_winter_seasonality_stronger_in_the_old(truth: pd.DataFrame) -> None:
    sel = truth["week_ending"].dt.year.between(2015, 2019)
    sub = truth[sel]
    month = sub["week_ending"].dt.month
    mean = sub.groupby(["age_group", month], observed=True)["true_baseline"].mean().unstack()
    ratio = mean[[1, 2]].mean(axis=1) / mean[[7, 8]].mean(axis=1)
    assert (ratio > 1.05).all() and ratio.is_monotonic_increasing


# --- truth ----------------------------------------------------------------------------------------


def test_truth_is_consistent(
    frame: pd.DataFrame, truth: pd.DataFrame, england: pd.DataFrame
) -> None:
    np.testing.assert_array_equal(truth["true_excess"], truth["true_mean"] - truth["true_baseline"])
    assert (truth["true_excess"] >= 0).all() and (truth["true_baseline"] > 0).all()
    sel = _years(pd.DatetimeIndex(england.index), 2015, 2019)
    ratio = england["deaths"][sel].sum() / england["true_mean"][sel].sum()
    assert abs(ratio - 1) < 0.01, ratio
    years = frame["week_ending"].dt.year.between(2015, 2019)
    by_region = (
        frame[years].groupby("region", observed=True)["deaths"].sum()
        / truth[years].groupby("region", observed=True)["true_mean"].sum()
    )
    assert (by_region - 1).abs().max() < 0.02


def test_over_dispersion(frame: pd.DataFrame, truth: pd.DataFrame) -> None:
    years = frame["week_ending"].dt.year.between(2015, 2019).to_numpy()
    y = frame["deaths"].to_numpy()[years]
    mu = truth["true_mean"].to_numpy()[years]
    pearson = (y - mu) ** 2 / mu
    assert 1.2 <= pearson.mean() <= 3.0, pearson.mean()
    per_series = pd.Series(pearson).groupby(np.arange(years.sum()) // (years.sum() // 72)).mean()
    # a Poisson series would give 1 +- 0.09 (sd sqrt(2 / 261)); nearly every series exceeds it
    assert (per_series > 1.1).mean() >= 0.9


def test_no_excess_before_2020_or_between_episodes(truth: pd.DataFrame) -> None:
    weeks = truth["week_ending"]
    quiet = (
        (weeks < "2020-01-01")
        | weeks.between("2020-07-10", "2020-10-31")
        | weeks.between("2021-04-30", "2022-06-30")
        | weeks.between("2022-08-05", "2022-10-28")
        | (weeks >= "2023-03-01")
    )
    assert (truth.loc[quiet, "true_excess"] == 0).all()
    assert (truth.loc[quiet, "true_mean"] == truth.loc[quiet, "true_baseline"]).all()


@pytest.mark.parametrize(
    ("window", "peak_from", "peak_to", "low", "high"),
    [
        (("2020-01-01", "2020-07-31"), "2020-04-10", "2020-04-24", 1.8, 2.2),
        (("2020-11-01", "2021-03-31"), "2021-01-01", "2021-01-31", 1.3, 1.6),
        (("2022-06-24", "2022-08-26"), "2022-07-22", "2022-07-22", 1.05, 1.2),
        (("2022-11-01", "2023-02-28"), "2022-12-01", "2023-01-31", 1.1, 1.3),
    ],
    ids=["spring_2020", "winter_2020_21", "heatwave_2022", "winter_2022_23"],
)
def test_excess_episodes_in_truth(
    england: pd.DataFrame,
    window: tuple[str, str],
    peak_from: str,
    peak_to: str,
    low: float,
    high: float,
) -> None:
    sub = england[window[0] : window[1]]
    ratio = sub["true_mean"] / sub["true_baseline"]
    peak = ratio.idxmax()
    assert pd.Timestamp(peak_from) <= peak <= pd.Timestamp(peak_to), peak
    assert low <= ratio.max() <= high, ratio.max()
    # the observed counts carry it: observed minus true baseline recovers the true excess to within
    # 4 sd of the noise (variance phi * mu with phi <= 2)
    observed_excess = (sub["deaths"] - sub["true_baseline"]).sum()
    noise_sd = np.sqrt(2.0 * sub["true_mean"].sum())
    assert abs(observed_excess - sub["true_excess"].sum()) < 4 * noise_sd
    assert sub["true_excess"].sum() > 3 * noise_sd  # an episode stands out of the noise


def test_spring_2020_hits_london_and_the_old_hardest(truth: pd.DataFrame) -> None:
    peak = truth[truth["week_ending"] == "2020-04-17"]
    by_region = peak.groupby("region", observed=True)[["true_mean", "true_baseline"]].sum()
    region_ratio = by_region["true_mean"] / by_region["true_baseline"]
    assert region_ratio.idxmax() == "E12000007" and region_ratio.idxmin() == "E12000009"
    by_age = peak.groupby("age_group", observed=True)[["true_mean", "true_baseline"]].sum()
    assert (by_age["true_mean"] / by_age["true_baseline"]).is_monotonic_increasing


# --- registration shifts --------------------------------------------------------------------------


def test_easter_dip_and_rebound() -> None:
    sim = datasets._simulate()
    weeks = sim.weeks
    counterfactual = sim.occurrence_baseline.sum(axis=0)  # no registration shift, no excess
    observed = sim.deaths.sum(axis=0)
    holding, following = [], []
    for year in range(2010, 2020):
        easter_monday = pd.Timestamp(easter(year)) + pd.Timedelta(days=1)  # dateutil, not holidays
        week = int(weeks.searchsorted(easter_monday))
        holding.append(observed[week] / counterfactual[week])
        following.append(observed[week + 1] / counterfactual[week + 1])
    assert np.mean(holding) < 0.95, holding
    assert np.mean(following) > 1.05, following
    christmas = [int(weeks.searchsorted(pd.Timestamp(y, 12, 25))) for y in range(2010, 2020)]
    assert (observed[christmas] < 0.85 * counterfactual[christmas]).all()


def test_registration_shift_moves_but_keeps_totals() -> None:
    sim = datasets._simulate()
    weeks = sim.weeks
    cum_registered = sim.true_baseline.sum(axis=0).cumsum()
    cum_occurred = sim.occurrence_baseline.sum(axis=0).cumsum()
    # by the end of October every shifted registration (no October bank holidays) is in
    ends = [int(weeks.searchsorted(pd.Timestamp(y, 10, 31))) - 1 for y in range(2010, 2035)]
    np.testing.assert_allclose(cum_registered[ends], cum_occurred[ends], rtol=1e-12)
    assert np.abs(sim.true_baseline - sim.occurrence_baseline).max() > 10  # and shifts do happen


# --- the validated format -------------------------------------------------------------------------


def test_passes_the_reader() -> None:
    if importlib.util.find_spec("excessmort.io") is None:
        pytest.skip("excessmort.io (read) not written yet; the tests above check the format")
    frame = excessmort.demo_data(end="2016-12-31")
    validated = excessmort.read(frame)
    assert len(validated) == len(frame)
    assert set(validated.columns) == set(frame.columns)
    validated = validated.sort_values([*KEYS, "week_ending"], ignore_index=True)
    for column in KEYS:
        assert isinstance(validated[column].dtype, pd.CategoricalDtype), column
        np.testing.assert_array_equal(
            validated[column].astype(str).to_numpy(), frame[column].astype(str).to_numpy()
        )
    for column in ["week_ending", "deaths", "population"]:
        np.testing.assert_array_equal(validated[column].to_numpy(), frame[column].to_numpy())
