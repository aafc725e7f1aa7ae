"""Issue 17: periods, names, groupings, warnings and the consistent API, on the real ONS data.

Figures measured here (../shared/data/ons, nine English regions, reference 2015-2019):
- England, weeks ending 1 January to 30 April 2021 (18 weeks), five-year average: excess 28,063.2
  (the 2015-2019 average, as ONS compared 2021) against 22,791.6 with the rolling 2016-2020 average
  that the baseline used before (``rolling=True``);
- 2020 as a registration year: 53 weeks, 3 January 2020 to 1 January 2021.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import excessmort as em
from _sim import SHARED
from excessmort.exceptions import (
    AreaWarning,
    DispersionWarning,
    InputError,
    MissingDataWarning,
)
from excessmort.regions import REGIONS

fit_frame = em.fit
ONS = SHARED / "data" / "ons"
REGIONAL = ONS / "ons_weekly_deaths_by_region.csv"
REFERENCE = ("2015-01-01", "2019-12-31")


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    assert REGIONAL.is_file(), f"{REGIONAL} is missing: these tests read the real ONS data"
    return pd.read_csv(REGIONAL, parse_dates=["week_ending"])


@pytest.fixture(scope="module")
def regions() -> pd.DataFrame:
    return em.read(REGIONAL)


@pytest.fixture(scope="module")
def regions_wales() -> pd.DataFrame:
    return em.read(REGIONAL, keep_wales=True)


@pytest.fixture(scope="module")
def qp(regions: pd.DataFrame) -> em.Fit:
    return fit_frame(regions, reference=REFERENCE)


@pytest.fixture(scope="module")
def qp_wales(regions_wales: pd.DataFrame) -> em.Fit:
    return fit_frame(regions_wales, reference=REFERENCE)


@pytest.fixture(scope="module")
def qp_wales_independent(regions_wales: pd.DataFrame) -> em.Fit:
    return fit_frame(regions_wales, reference=REFERENCE, dependence=False)


# --------------------------------------------------------------------------------------- 1 periods
def test_year_is_the_ons_registration_year(qp: em.Fit) -> None:
    c = qp.by().cumulative(2020)
    assert c["period"].iloc[0] == "2020 (ONS registration year)"
    assert int(c["n_weeks"].iloc[0]) == 53
    assert (c["start"].iloc[0], c["end"].iloc[0]) == (
        pd.Timestamp("2020-01-03"),
        pd.Timestamp("2021-01-01"),
    )
    for same in (
        qp.by().cumulative("2020"),
        qp.by().cumulative("2020", "2020"),
        qp.by().cumulative(year=2020),
        qp.by().cumulative(year=2020, weeks=(1, 53)),
    ):
        np.testing.assert_allclose(same["excess"], c["excess"], rtol=1e-12)
        np.testing.assert_allclose(same["excess_upper"], c["excess_upper"], rtol=1e-12)
    # The 53 weeks are the rows of the regional file with year == 2020.
    weekly = qp.by().weekly
    assert c["observed"].iloc[0] == weekly.loc[weekly["year"] == 2020, "observed"].sum()


def test_week_numbers_equal_the_ons_file(qp: em.Fit, raw: pd.DataFrame) -> None:
    w = qp.by("region").weekly
    merged = w.merge(
        raw.rename(columns={"area_code": "region", "year": "ons_year", "week": "ons_week"}).assign(
            region=lambda f: f["region"].astype(str)
        )[["region", "week_ending", "ons_year", "ons_week"]],
        on=["region", "week_ending"],
    )
    assert len(merged) == len(w)
    np.testing.assert_array_equal(merged["year"], merged["ons_year"])
    np.testing.assert_array_equal(merged["week"], merged["ons_week"])
    np.testing.assert_array_equal(merged["iso_week"], merged["ons_week"])
    assert w["region_name"].iloc[0] == "North East"


def test_periods_past_the_data_or_without_weeks_are_errors(qp: em.Fit) -> None:
    with pytest.raises(
        InputError,
        match=r"reaches past the data, which run from 2015-01-02 to "
        r"2021-04-30: the period holds the weeks ending 2021-01-08 to 2021-12-31",
    ):
        qp.cumulative(2021)
    with pytest.raises(InputError, match=r"no week ends in 2020-01-04 to 2020-01-09"):
        qp.cumulative("2020-01-04", "2020-01-09")
    with pytest.raises(InputError, match=r"lies outside the data"):
        qp.cumulative("2030-01", "2030-03")
    with pytest.raises(InputError, match=r"week 54 is not a week of 2020, which has weeks 1 to 53"):
        qp.cumulative(year=2020, weeks=(1, 54))
    with pytest.raises(InputError, match=r"is not a period"):
        qp.cumulative("spring")
    # Inside the data the same periods work, and no IndexError ever escapes.
    assert int(qp.by().cumulative(year=2021, weeks=(1, 17))["n_weeks"].iloc[0]) == 17


def test_months_and_quarters(qp: em.Fit) -> None:
    e = qp.by()
    q2 = e.cumulative("2020Q2")
    assert (q2["start"].iloc[0], q2["end"].iloc[0], int(q2["n_weeks"].iloc[0])) == (
        pd.Timestamp("2020-04-03"),
        pd.Timestamp("2020-06-26"),
        13,
    )
    april = e.cumulative("2020-04")
    assert int(april["n_weeks"].iloc[0]) == 4  # weeks ending 3, 10, 17, 24 April
    months = e.totals("month", "2020-01", "2020-12")
    assert months["period"].tolist() == [f"2020-{m:02d}" for m in range(1, 13)]
    year = e.cumulative("2020-01-01", "2020-12-31")
    assert months["observed"].sum() == year["observed"].iloc[0]
    np.testing.assert_allclose(months["excess"].sum(), year["excess"].iloc[0], rtol=1e-10)
    # Each month's interval is cumulative()'s over its weeks (one variance rule for any window).
    for _, row in months.iterrows():
        own = e.cumulative(row["start"], row["end"])
        np.testing.assert_allclose(
            [row["excess_lower"], row["excess_upper"]],
            own[["excess_lower", "excess_upper"]].to_numpy()[0],
            rtol=1e-12,
        )
    quarters = e.totals("quarter", 2020)
    assert quarters["period"].tolist() == ["2020Q1", "2020Q2", "2020Q3", "2020Q4"]
    # The first quarter of 2021 is whole in the data; the second is not and is left out.
    q21 = e.totals("quarter", "2021-01", "2021-04")
    assert q21["period"].tolist() == ["2021Q1"]
    part = e.totals("quarter", "2021-01", "2021-04", partial=True)
    assert part["period"].tolist() == ["2021Q1", "2021Q2"]
    assert part["complete"].tolist() == [True, False]


def test_iso_year_for_weeks_ending_on_sunday(regions: pd.DataFrame) -> None:
    sundays = regions.assign(week_ending=regions["week_ending"] + pd.Timedelta(days=2))
    f = fit_frame(sundays, reference=REFERENCE)
    c = f.by().cumulative(2020)
    assert c["period"].iloc[0] == "2020 (ISO year)"
    assert (c["start"].iloc[0], c["end"].iloc[0]) == (
        pd.Timestamp("2020-01-05"),
        pd.Timestamp("2021-01-03"),
    )
    assert "year" not in f.weekly.columns and "iso_week" in f.weekly.columns


# ------------------------------------------------------------------------- 2 five-year average
def test_five_year_average_never_uses_a_year_after_the_reference(regions: pd.DataFrame) -> None:
    fya = fit_frame(regions, baseline="five_year_average", reference=REFERENCE).by()
    c = fya.cumulative("2021-01-01", "2021-04-30")
    assert int(c["n_weeks"].iloc[0]) == 18
    # The figure: ONS's comparison of 2021 with 2015-2019.
    assert abs(c["excess"].iloc[0] - 28_063.2) < 0.05
    # Oracle: the direct pandas mean of the same ISO weeks of 2015-2019, summed over regions.
    tot = regions.groupby("week_ending")["deaths"].sum()
    iso = tot.index.isocalendar()
    weeks = tot.index[(tot.index >= "2021-01-01") & (tot.index <= "2021-04-30")]
    expected = 0.0
    for d in weeks:
        y, w = iso.loc[d, "year"], iso.loc[d, "week"]
        hist = [
            tot[(iso["year"] == yy) & (iso["week"] == (w if w < 53 or yy == 2015 else 52))].iloc[0]
            for yy in range(2015, 2020)
        ]
        expected += np.mean(hist)
        assert y in (2020, 2021)
    np.testing.assert_allclose(c["expected"].iloc[0], expected, rtol=1e-12)
    rolling = fit_frame(
        regions, baseline="five_year_average", reference=REFERENCE, rolling=True
    ).by()
    assert abs(rolling.cumulative("2021-01-01", "2021-04-30")["excess"].iloc[0] - 22_791.6) < 0.05
    # exclude_years means the same with the rolling average: 2020 skipped, 2015-2019 used.
    skip = fit_frame(
        regions,
        baseline="five_year_average",
        reference=REFERENCE,
        rolling=True,
        exclude_years=(2020,),
    ).by()
    np.testing.assert_allclose(
        skip.cumulative("2021-01-01", "2021-04-30")["excess"], c["excess"], rtol=1e-12
    )


# --------------------------------------------------------------------------- 9 exclusion windows
@pytest.mark.parametrize("baseline", ["quasipoisson", "poisson", "pooled", "euromomo"])
def test_exclusion_windows_are_left_out_of_every_glm(regions: pd.DataFrame, baseline: str) -> None:
    window = ("2018-01-01", "2018-03-31")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f = fit_frame(regions, baseline=baseline, reference=REFERENCE, exclude=[window])
        hidden = regions.copy()
        in_window = hidden["week_ending"].between(*window)
        hidden.loc[in_window, "deaths"] = np.nan
        oracle = fit_frame(hidden, baseline=baseline, reference=REFERENCE)
    assert int(f.excluded.sum()) == 13
    assert not f.result.fit_mask[:, f.excluded].any()
    np.testing.assert_allclose(f.result.mu, oracle.result.mu, rtol=1e-10)
    # The excluded weeks keep their observed deaths in every frame.
    assert f.weekly["observed"].notna().all()


def test_exclusion_windows_in_the_five_year_average(regions: pd.DataFrame) -> None:
    f = fit_frame(
        regions,
        baseline="five_year_average",
        reference=("2015-01-01", "2020-12-31"),
        rolling=False,
        exclude=[2020],
    ).by()
    # 2021 week 5: the 2020 week is excluded, so the average is 2015-2019's (no earlier year).
    base = fit_frame(regions, baseline="five_year_average", reference=REFERENCE).by()
    w = pd.Timestamp("2021-02-05")
    got = f.weekly.set_index("week_ending").loc[w, "expected"]
    want = base.weekly.set_index("week_ending").loc[w, "expected"]
    assert got == pytest.approx(want, rel=1e-12)


# --------------------------------------------------------------------------------------- 3 names
def test_names_everywhere_and_suggestions(qp: em.Fit) -> None:
    assert qp["London"].weekly["region_name"].unique().tolist() == ["London"]
    assert "region_name" in qp.by("region").cumulative(2020).columns
    assert qp.by().cumulative(2020)["region_name"].tolist() == ["England"]
    with pytest.raises(InputError, match=r"did you mean 'region'\?"):
        qp.by("regin")
    assert qp.by("Region").strata == ["region"]
    with pytest.raises(InputError, match=r"keep_wales=True"):
        qp.by(groups={"England and Wales": ["England", "Wales"]})
    with pytest.raises(InputError, match=r"did you mean 'London'\?"):
        qp.by(groups={"x": ["Londn"]})


# ------------------------------------------------------------------------- 4 national and groups
def test_england_as_a_national_series(regions: pd.DataFrame, qp: em.Fit) -> None:
    england = (
        regions.groupby("week_ending", as_index=False)["deaths"].sum().assign(region="E92000001")
    )
    f = fit_frame(england, reference=REFERENCE)
    assert f.panel.keys["region"].astype(str).tolist() == ["E92000001"]
    total = f.by().cumulative(2020)
    assert total["region_name"].tolist() == ["England"]
    np.testing.assert_allclose(total["excess"], f.cumulative(2020)["excess"], rtol=1e-12)
    # England beside its regions: kept as a series of its own, never summed with them.
    with pytest.warns(AreaWarning, match="beside its regions"):
        both = fit_frame(pd.concat([regions, england[regions.columns]]), reference=REFERENCE)
    np.testing.assert_allclose(
        both.by().cumulative(2020)["observed"], qp.by().cumulative(2020)["observed"], rtol=0
    )


def test_england_and_wales_group_with_its_interval(
    qp_wales: em.Fit, qp_wales_independent: em.Fit
) -> None:
    g = qp_wales.by(
        groups={
            "England and Wales": ["England", "Wales"],
            "England": ["England"],
            "Wales": ["Wales"],
        }
    )
    c = g.cumulative(2020).set_index("region")
    assert c.index.tolist() == ["England and Wales", "England", "Wales"]
    # England in a group equals by() (Wales is never in by()).
    eng = qp_wales.by().cumulative(2020)
    np.testing.assert_allclose(
        c.loc["England", ["excess", "excess_lower", "excess_upper"]].to_numpy(dtype=float),
        eng[["excess", "excess_lower", "excess_upper"]].to_numpy()[0],
        rtol=1e-12,
    )
    ew = c.loc["England and Wales"]
    np.testing.assert_allclose(
        ew["excess"], c.loc["England", "excess"] + c.loc["Wales", "excess"], rtol=1e-12
    )
    # With the dependence model (default) England's and Wales's errors are correlated (the same
    # flu winters), so England and Wales is wider than independent parts would make it.
    width = c["excess_upper"] - c["excess_lower"]
    assert width["England and Wales"] ** 2 > width["England"] ** 2 + width["Wales"] ** 2
    # Assuming independence, quasi-Poisson series are fitted apart, so the variances add.
    ind = (
        qp_wales_independent.by(
            groups={
                "England and Wales": ["England", "Wales"],
                "England": ["England"],
                "Wales": ["Wales"],
            }
        )
        .cumulative(2020)
        .set_index("region")
    )
    half = (ind["excess_upper"] - ind["excess_lower"]) / (2 * stats.norm.ppf(0.975))
    np.testing.assert_allclose(
        half["England and Wales"] ** 2, half["England"] ** 2 + half["Wales"] ** 2, rtol=1e-9
    )
    assert set(g.weekly["region"].unique()) == {"England and Wales", "England", "Wales"}


def _assert_frames_close(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert list(got.columns) == list(want.columns)
    assert got.dtypes.to_dict() == want.dtypes.to_dict()
    assert len(got) == len(want)
    for col in want.columns:
        a, b = got[col], want[col]
        if not pd.api.types.is_float_dtype(b.dtype):
            pd.testing.assert_series_equal(a, b)
            continue
        a, b = a.to_numpy(), b.to_numpy()
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=col)
        ok = np.isfinite(b)
        np.testing.assert_array_equal(a[~ok], b[~ok], err_msg=col)
        # deaths columns: 1e-12 relative on the scale of the row's expected deaths (an excess or a
        # bound near zero is a difference of two large numbers, which sums in another order move
        # by ulps of those); the others: 1e-12 relative
        scale = np.abs(b[ok])
        if "expected" in want.columns and col.startswith(("excess", "prediction")):
            scale = np.maximum(scale, np.abs(want["expected"].to_numpy(dtype=float)[ok]))
        rel = np.abs(a[ok] - b[ok]) / np.where(scale > 0, scale, 1.0)
        assert rel.max(initial=0.0) <= 1e-12, (col, float(rel.max(initial=0.0)))


@pytest.mark.parametrize("dependence", [True, False])
def test_groups_in_one_pass_equal_one_view_per_group(
    qp_wales: em.Fit, qp_wales_independent: em.Fit, dependence: bool
) -> None:
    # All groups are one stacked view (one call of each variance kernel over all groups); the
    # figures equal those of one view per group (the reference path) to 1e-12, overlaps included.
    f = qp_wales if dependence else qp_wales_independent
    groups = {
        "England and Wales": ["England", "Wales"],
        "North": ["North East", "North West", "Yorkshire and The Humber"],
        "Wales": ["Wales"],
        "London": ["London"],
    }
    g = f.by(groups=groups)
    assert g.view.panel.n_series == 10 + 3 + 1 + 1  # London is in two groups, so stacked twice
    # (totals and weekly_in are made of these)
    for name, args in [
        ("weekly", ()),
        ("cumulative", (2020,)),
        ("cumulative_path", ("2020-03", "2020-05")),
    ]:
        got = getattr(g, name)
        got = got(*args) if callable(got) else got
        _assert_frames_close(got, g._concat(name, *args))
    assert g.cumulative(2020)["region"].tolist() == list(groups)


# ------------------------------------------------------------------------------------ 5 warnings
def test_no_dispersion_warning_on_ordinary_real_data(regions: pd.DataFrame) -> None:
    sex_age = em.read(ONS / "ons_weekly_deaths_by_sex_age.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DispersionWarning)
        for baseline in ("quasipoisson", "euromomo", "five_year_average"):
            fit_frame(regions, baseline=baseline, reference=REFERENCE)
        fit_frame(sex_age, reference=REFERENCE)
    # A fixed range (the old rule) does flag the regions, phi 10-15 there.
    with pytest.warns(DispersionWarning, match=r"outside \[0.2, 10\]"):
        fit_frame(regions, reference=REFERENCE, dispersion_check=(0.2, 10))


def test_dispersion_warning_on_a_structural_break(regions: pd.DataFrame) -> None:
    broken = regions.copy()
    london = broken["region"].astype(str) == "E12000007"
    late = broken["week_ending"].between("2017-07-01", "2019-12-31")
    broken.loc[london & late, "deaths"] = (broken.loc[london & late, "deaths"] * 1.6).round()
    with pytest.warns(DispersionWarning, match=r"region=E12000007 \(phi="):
        fit_frame(broken, reference=REFERENCE)


def test_missing_weeks_warn_naming_series_and_weeks(regions: pd.DataFrame) -> None:
    gap = regions.drop(
        regions.index[
            (regions["region"].astype(str) == "E12000007")
            & (regions["week_ending"] == "2020-04-10")
        ]
    )
    f = fit_frame(gap, reference=REFERENCE)
    with pytest.warns(MissingDataWarning, match=r"region=E12000007.*2020-04-10"):
        c = f.by().cumulative("2020-04")
    assert np.isnan(c["excess"].iloc[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error", MissingDataWarning)
        f.by().cumulative("2020-05")  # no missing week in May: no warning


# ------------------------------------------------------------------------------------ 6 the API
def test_compare_takes_fits_and_a_string_by(regions: pd.DataFrame, qp: em.Fit) -> None:
    fya = fit_frame(regions, baseline="FIVE_YEAR_AVERAGE", reference=REFERENCE)
    c = em.compare([qp, fya], by="region")
    assert isinstance(c, em.Comparison) and c.by == ("region",)
    wide = c.wide("excess", 2020)
    assert wide.columns.tolist() == ["region", "region_name", "quasipoisson", "five_year_average"]
    assert len(wide) == len(REGIONS)
    np.testing.assert_allclose(
        wide["quasipoisson"], qp.by("region").cumulative(2020)["excess"], rtol=1e-12
    )
    s = c.summary(2020)
    assert s["baseline"].tolist() == ["quasipoisson", "five_year_average"]
    assert "<table" in c._repr_html_()
    refit = em.compare(regions, ["quasipoisson"], by="region", reference=REFERENCE)
    np.testing.assert_allclose(
        refit.cumulative(2020)["excess"], qp.by("region").cumulative(2020)["excess"], rtol=1e-12
    )


def test_weekly_has_the_cli_figures(qp: em.Fit) -> None:
    w = qp.by().weekly
    np.testing.assert_allclose(w["prediction_lower"], w["observed"] - w["excess_upper"], rtol=1e-12)
    np.testing.assert_allclose(w["prediction_upper"], w["observed"] - w["excess_lower"], rtol=1e-12)
    np.testing.assert_allclose(w["ratio"], w["observed"] / w["expected"], rtol=1e-12)
    np.testing.assert_allclose(w["ratio_lower"], w["observed"] / w["prediction_upper"], rtol=1e-12)


def test_baseline_names_and_classes() -> None:
    from excessmort.baselines import get_baseline

    assert get_baseline("EuroMOMO").name == "euromomo"
    assert get_baseline(em.QuasiPoisson, harmonics=1).harmonics == 1
    with pytest.raises(InputError, match=r"did you mean 'quasipoisson'\?"):
        get_baseline("quasi-poison")


# ------------------------------------------------------------------- 8 rates and standardisation
@pytest.fixture(scope="module")
def sex_age_pop() -> pd.DataFrame:
    """England and Wales by sex and age with the mid-2018 population as a constant offset."""
    deaths = em.read(ONS / "ons_weekly_deaths_by_sex_age.csv")
    pop = pd.read_csv(ONS / "ons_population_mid2018.csv")
    pop = pop[pop["area_code"] == "K04000001"][["sex", "age_group", "population"]]
    frame = deaths.assign(sex=deaths["sex"].astype(str), age_group=deaths["age_group"].astype(str))
    return frame.merge(pop, on=["sex", "age_group"], how="left")


def test_esp2013_standardised_rates_on_ons_data(sex_age_pop: pd.DataFrame) -> None:
    from excessmort.standardise import european_standard_population

    # The closed form below is the independence one (dependence=False); the dependence model's
    # weighted sums are tested in test_standardise.py.
    f = fit_frame(sex_age_pop, reference=REFERENCE, dependence=False)
    s = f.standardised("2020-03-01", "2020-10-09", by=["sex"]).set_index("sex")
    ages = ["<1", "1-14", "15-44", "45-64", "65-74", "75-84", "85+"]
    w = european_standard_population(ages)
    assert sum(w.values()) == 100_000
    cum = f.cumulative("2020-03-01", "2020-10-09")
    z = stats.norm.ppf(0.975)
    for sex in ("female", "male"):
        rows = cum[cum["sex"].astype(str) == sex].set_index("age_group")
        pop = sex_age_pop[sex_age_pop["sex"] == sex].groupby("age_group")["population"].first()
        c = np.array([1e5 * w[a] / (pop[a] * 1e5) for a in ages])
        obs = rows.loc[ages, "observed"].to_numpy()
        exp = rows.loc[ages, "expected"].to_numpy()
        # Oracle: the direct weighted sum; series of the quasi-Poisson fit are independent, so the
        # variance of the excess rate is sum c^2 var(excess_a), var from each series' interval.
        half = (rows.loc[ages, "excess_upper"] - rows.loc[ages, "excess_lower"]).to_numpy() / (
            2 * z
        )
        np.testing.assert_allclose(s.loc[sex, "observed_rate"], np.sum(c * obs), rtol=1e-12)
        np.testing.assert_allclose(s.loc[sex, "expected_rate"], np.sum(c * exp), rtol=1e-12)
        sd = np.sqrt(np.sum(c**2 * half**2))
        np.testing.assert_allclose(
            s.loc[sex, "excess_rate_upper"] - s.loc[sex, "excess_rate"], z * sd, rtol=1e-9
        )
    # Spring 2020: excess in both sexes, more for men (age-standardised).
    assert (s["excess_rate_lower"] > 0).all()
    assert s.loc["male", "excess_rate"] > s.loc["female", "excess_rate"]


def test_standardised_variance_keeps_the_pooled_covariances(sex_age_pop: pd.DataFrame) -> None:
    # With one series per age and weights proportional to population, c_a is one constant: the
    # standardised excess is that constant times the total excess, interval included, which needs
    # the covariances of the age groups' expected deaths that the pooled model shares.
    women = sex_age_pop[sex_age_pop["sex"] == "female"].drop(columns="sex")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f = fit_frame(
            women, baseline=em.Pooled(intervals="delta"), reference=REFERENCE, dependence=False
        )
    pops = women.groupby("age_group")["population"].first()
    s = (
        f.standardised(2020, standard=pops.to_dict())
        if False
        else f.standardised("2020-03-01", "2020-10-09", standard=pops.to_dict())
    )
    total = f.by().cumulative("2020-03-01", "2020-10-09")
    k = 1e5 / pops.sum()
    np.testing.assert_allclose(s["excess_rate"], k * total["excess"], rtol=1e-10)
    np.testing.assert_allclose(s["excess_rate_lower"], k * total["excess_lower"], rtol=1e-9)
    np.testing.assert_allclose(s["excess_rate_upper"], k * total["excess_upper"], rtol=1e-9)


def test_crude_rates_and_errors(regions: pd.DataFrame, sex_age_pop: pd.DataFrame) -> None:
    f = fit_frame(sex_age_pop, reference=REFERENCE)
    r = f.by().rates("2020-03-01", "2020-10-09")
    np.testing.assert_allclose(
        r["population"],
        sex_age_pop.groupby(["sex", "age_group"])["population"].first().sum(),
        rtol=1e-12,
    )
    np.testing.assert_allclose(r["excess_rate"], 1e5 * r["excess"] / r["population"], rtol=1e-12)
    with pytest.raises(InputError, match="rates need a 'population' column"):
        fit_frame(regions, reference=REFERENCE).rates(2020)
    with pytest.raises(InputError, match="European Standard Population"):
        from excessmort.standardise import european_standard_population

        european_standard_population(["0-2", "3+"])


def test_weekly_cumulative_and_totals_carry_rates_per_100000(
    regions: pd.DataFrame, qp: em.Fit
) -> None:
    # Item 8: with a population in the data, every frame gives the rates per 100,000 beside the
    # counts, intervals included. The ONS regions with their mid-2018 populations (all ages).
    pop = pd.read_csv(ONS / "ons_population_mid2018.csv")
    by_area = pop.groupby("area_code")["population"].sum()
    codes = list(REGIONS)
    frame = regions.assign(region=regions["region"].astype(str))
    frame["population"] = frame["region"].map(by_area).astype(float)
    f = fit_frame(frame, reference=REFERENCE)
    rate_cols = ["observed_rate", "expected_rate", "excess_rate"]
    bounds = ["excess_rate_lower", "excess_rate_upper"]

    w = f.weekly
    assert [*rate_cols, *bounds] == w.columns[-5:].tolist() and "population" in w.columns
    london = w[(w["region"].astype(str) == "E12000007") & (w["week_ending"] == "2020-04-17")]
    row = london.iloc[0]
    assert row["population"] == by_area["E12000007"]
    for count, rate in [("excess", "excess_rate"), ("excess_lower", "excess_rate_lower")]:
        assert row[rate] == pytest.approx(1e5 * row[count] / by_area["E12000007"], rel=1e-12)
    assert row["excess_rate_lower"] < row["excess_rate"] < row["excess_rate_upper"]

    # England: the nine regions' population, which is ONS's own England estimate.
    eng = f.by().weekly
    assert by_area[codes].sum() == by_area["E92000001"]
    np.testing.assert_allclose(eng["population"], by_area["E92000001"], rtol=1e-12)
    np.testing.assert_allclose(
        eng["excess_rate_upper"], 1e5 * eng["excess_upper"] / by_area["E92000001"], rtol=1e-12
    )
    c = f.by().cumulative(2020)
    assert c["population"].iloc[0] == pytest.approx(by_area["E92000001"], rel=1e-12)
    # England 2020 (53 registration weeks): about 130 excess deaths per 100,000.
    assert 100 < c["excess_rate"].iloc[0] < 160
    assert (
        c["excess_rate_lower"].iloc[0] < c["excess_rate"].iloc[0] < c["excess_rate_upper"].iloc[0]
    )
    # Totals by quarter carry them too, and rates() is the cumulative frame with another ``per``.
    q = f.by().totals("quarter", 2020)
    np.testing.assert_allclose(q["excess_rate"], 1e5 * q["excess"] / q["population"], rtol=1e-12)
    r = f.by().rates(2020, per=1000)
    assert r["excess_rate"].iloc[0] == pytest.approx(c["excess_rate"].iloc[0] / 100, rel=1e-12)
    assert list(r.columns) == list(c.columns)
    # The running path: every week's rates are those of cumulative(start, that week), also with
    # a population that changes from week to week (its mean over the weeks so far).
    grow = frame.assign(
        population=frame["population"]
        * (1 + 0.002 * pd.to_datetime(frame["week_ending"]).rank(method="dense"))
    )
    g = fit_frame(grow, reference=REFERENCE).by()
    path = g.cumulative_path("2020-03-01", "2020-06-30")
    for end in ("2020-04-17", path["week_ending"].max()):
        row = path[path["week_ending"] == end].iloc[0]
        whole = g.cumulative("2020-03-01", end).iloc[0]
        assert row["population"] == pytest.approx(whole["population"], rel=1e-12)
        for rate in [*rate_cols, *bounds]:
            assert row[rate] == pytest.approx(whole[rate], rel=1e-9), (end, rate)
    assert path["population"].is_monotonic_increasing
    # Without a population, frames stay as they were.
    assert "excess_rate" not in qp.by().weekly.columns
    assert "excess_rate" not in qp.by().cumulative_path("2020-03").columns


def test_population_interpolated_between_mid_years() -> None:
    from excessmort.population import add_population, interpolate_population

    est = pd.DataFrame(
        {
            "sex": ["F", "F", "F", "M", "M", "M"],
            "year": [2018, 2019, 2020] * 2,
            "population": [100.0, 110.0, 130.0, 50.0, 50.0, 40.0],
        }
    )
    weeks = pd.date_range("2018-01-05", "2021-12-31", freq="7D")
    out = interpolate_population(est, weeks)
    x = pd.to_datetime(["2018-06-30", "2019-06-30", "2020-06-30"]).to_numpy(dtype="datetime64[D]")
    t = weeks.to_numpy(dtype="datetime64[D]").astype(float)
    f = out[out["sex"] == "F"]["population"].to_numpy()
    inside = (t >= x[0].astype(float)) & (t <= x[-1].astype(float))
    np.testing.assert_allclose(
        f[inside], np.interp(t[inside], x.astype(float), [100, 110, 130]), rtol=1e-12
    )
    # Beyond the last estimate: the line of the last two (slope 20 a year for F).
    last = t > x[-1].astype(float)
    slope = 20.0 / (x[2] - x[1]).astype(float)
    np.testing.assert_allclose(f[last], 130 + slope * (t[last] - x[-1].astype(float)), rtol=1e-12)
    held = interpolate_population(est, weeks, extrapolate="constant")
    assert held[held["sex"] == "F"]["population"].iloc[-1] == 130.0
    deaths = pd.DataFrame({"sex": ["F"] * len(weeks), "week_ending": weeks, "deaths": 1})
    joined = add_population(deaths, est)
    np.testing.assert_allclose(joined["population"], f, rtol=1e-12)
    with pytest.raises(InputError, match="no population estimate for sex=X"):
        add_population(deaths.assign(sex="X"), est)


# ------------------------------------------------------------------------------------ 11 exports
def test_exports_round_trip_and_are_atomic(qp: em.Fit, tmp_path) -> None:
    view = qp.by("region")
    view.to_csv(tmp_path / "w.csv")
    back = pd.read_csv(tmp_path / "w.csv", parse_dates=["week_ending"])
    np.testing.assert_allclose(back["excess_upper"], view.weekly["excess_upper"], rtol=1e-12)
    view.to_parquet(tmp_path / "m.parquet", "monthly", start="2020-01", end="2020-12")
    monthly = pd.read_parquet(tmp_path / "m.parquet")
    assert monthly["period"].tolist()[:2] == ["2020-01", "2020-02"] and len(monthly) == 9 * 12
    import pyarrow.parquet as pq

    meta = pq.read_schema(tmp_path / "m.parquet").metadata
    assert meta[b"excessmort.reference period"] == b"2015-01-01 to 2019-12-31"
    view.to_excel(tmp_path / "fit.xlsx")
    book = pd.read_excel(tmp_path / "fit.xlsx", sheet_name=None)
    assert list(book) == ["weekly", "cumulative", "monthly", "coefficients", "notes"]
    notes = dict(book["notes"].itertuples(index=False))
    assert notes["baseline"] == "quasipoisson" and notes["interval level"] == "0.95"
    assert "prediction interval" in notes["intervals"]
    # A failed export leaves the file that was there.
    before = (tmp_path / "w.csv").read_bytes()
    with pytest.raises(InputError, match="table must be one of"):
        view.to_csv(tmp_path / "w.csv", "weeklly")
    assert (tmp_path / "w.csv").read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


# --------------------------------------------------------------------- 7 coefficients in the open
@pytest.mark.parametrize("baseline", ["quasipoisson", "poisson", "euromomo"])
def test_coefficient_table_matches_statsmodels(regions: pd.DataFrame, baseline: str) -> None:
    import statsmodels.api as sm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f = fit_frame(regions, baseline=baseline, reference=REFERENCE)
    table = f.coefficient_table
    res = f.result
    for s in (0, 6):
        mask = res.fit_mask[s]
        X = res.design.X[mask]
        y = f.panel.deaths[s, mask]
        scale = 1.0 if baseline == "poisson" else "X2"
        sm_fit = sm.GLM(y, X, family=sm.families.Poisson()).fit(
            scale=scale, use_t=baseline != "poisson", tol=1e-12
        )
        mine = table.iloc[s * X.shape[1] : (s + 1) * X.shape[1]]
        assert mine["term"].tolist() == list(res.design.names)
        np.testing.assert_allclose(mine["estimate"], sm_fit.params, rtol=1e-7)
        np.testing.assert_allclose(mine["std_error"], sm_fit.bse, rtol=1e-6)
        np.testing.assert_allclose(mine["statistic"], sm_fit.tvalues, rtol=1e-6)
        np.testing.assert_allclose(mine["p_value"], sm_fit.pvalues, rtol=1e-5, atol=1e-300)


def test_coefficient_table_of_the_pooled_model(regions: pd.DataFrame, caplog) -> None:
    from excessmort.exceptions import ModelNoteWarning

    # Item 5: the default terms' note (no sex or age group in the regional file) is one warning
    # of its own category per fit, not a log line, and the accessors do not repeat it.
    with warnings.catch_warnings(record=True) as caught, caplog.at_level("INFO", "excessmort"):
        warnings.simplefilter("always")
        f = fit_frame(regions, baseline="pooled", reference=REFERENCE)
        f.by().cumulative(2020)
        _ = f.weekly
    notes = [w for w in caught if issubclass(w.category, ModelNoteWarning)]
    assert len(notes) == 1 and "'age_group' or 'sex'" in str(notes[0].message)
    assert not [r for r in caplog.records if "age_group" in r.getMessage()]
    table = f.coefficient_table
    stored = f.result.info["coef_table"]
    assert table["series"].unique().tolist() == ["all"]
    np.testing.assert_allclose(table["std_error"], stored["std_error"], rtol=0, equal_nan=True)
    df = f.result.info["model"]["df_resid"]
    ok = stored["std_error"].notna().to_numpy()
    t = (stored["estimate"] / stored["std_error"]).to_numpy()[ok]
    np.testing.assert_allclose(
        table["p_value"].to_numpy()[ok], 2 * stats.t.sf(np.abs(t), df), rtol=1e-10
    )
    with pytest.raises(InputError, match="has no model coefficients"):
        _ = fit_frame(regions, baseline="five_year_average", reference=REFERENCE).coefficient_table


# ------------------------------------------------------------------------- 10 data from elsewhere
def _sweden(regions: pd.DataFrame) -> pd.DataFrame:
    """ONS counts relabelled as areas of another country, weeks moved to ISO weeks (Sundays)."""
    names = dict(
        zip(
            REGIONS,
            [
                "Norrbotten",
                "Stockholm",
                "Skane",
                "Uppsala",
                "Gotland",
                "Kalmar",
                "Halland",
                "Dalarna",
                "Jamtland",
            ],
            strict=True,
        )
    )
    out = regions.assign(
        region=regions["region"].astype(str).map(names),
        week_ending=regions["week_ending"] + pd.Timedelta(days=2),
    )
    return out


def test_another_countrys_areas_holidays_and_weekday(regions: pd.DataFrame, qp: em.Fit) -> None:
    se = em.read(_sweden(regions))
    assert "Stockholm" in se["region"].cat.categories
    f = fit_frame(se, reference=REFERENCE)
    total = f.by().cumulative(2020)
    assert total["region"].tolist() == ["All"] and total["period"].iloc[0] == "2020 (ISO year)"
    np.testing.assert_allclose(total["observed"], f.weekly_in(2020)["observed"].sum(), rtol=0)
    # Holidays of the country named (Sweden's national day is no English bank holiday).
    gb = fit_frame(se, baseline=em.QuasiPoisson(holidays=True), reference=REFERENCE)
    sweden = fit_frame(se, baseline=em.QuasiPoisson(holidays="SE"), reference=REFERENCE)
    assert not np.allclose(gb.result.mu, sweden.result.mu)
    from excessmort.weeks import bank_holidays

    assert pd.Timestamp("2020-06-06") in bank_holidays(2020, 2020, "SE")
    assert pd.Timestamp("2020-06-06") not in bank_holidays(2020, 2020)
    with pytest.raises(InputError, match="is not a country of the holidays package"):
        fit_frame(se, baseline=em.QuasiPoisson(holidays="XX"), reference=REFERENCE)
    # A frame mixing Friday and Sunday series says so plainly.
    both = pd.concat(
        [
            regions.assign(country="GB", region=regions["region"].astype(str)),
            _sweden(regions).assign(country="SE"),
        ]
    ).rename(columns={"region": "area"})
    with pytest.raises(InputError, match=r"series end their weeks on different weekdays"):
        em.read(both)
    # Mixing ONS regions with unknown areas is still an error (a typo, not another country).
    mixed = regions.assign(region=regions["region"].astype(str))
    mixed.loc[mixed.index[:3], "region"] = "Lundon"
    with pytest.raises(InputError, match=r"did you mean 'London'\?"):
        em.read(mixed)


def test_estimated_fractional_counts(regions: pd.DataFrame, tmp_path) -> None:
    frac = regions.assign(deaths=regions["deaths"] * 0.5)
    with pytest.raises(InputError, match="estimated_counts=True"):
        em.read(frac)
    tidy = em.read(frac, estimated_counts=True)
    f = fit_frame(tidy, reference=REFERENCE)
    assert f.estimated_counts and f.by().estimated_counts
    assert "estimated" in f._repr_html_()
    f.by().to_excel(tmp_path / "x.xlsx", ["cumulative"])
    notes = dict(pd.read_excel(tmp_path / "x.xlsx", sheet_name="notes").itertuples(index=False))
    assert notes["counts"].startswith("estimated")
    # Halved counts: the same expected shape, half the level.
    whole = fit_frame(regions, reference=REFERENCE)
    np.testing.assert_allclose(f.result.mu, 0.5 * whole.result.mu, rtol=1e-6)


def test_select_suggests_names_and_hints_at_wales(qp: em.Fit) -> None:
    with pytest.raises(
        InputError, match=r"region='Lndon' matches no series \(did you mean 'London'\?\)"
    ):
        qp.select(region="Lndon")
    with pytest.raises(InputError, match=r"Wales was left out when the data were read"):
        qp.select(region="Wales")
