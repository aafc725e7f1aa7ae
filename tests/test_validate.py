"""Input rules: one test per rule; each asserts the message names column, value, row, series."""

from __future__ import annotations

import datetime as dt
import logging

import numpy as np
import pandas as pd
import pytest

import excessmort as em
from excessmort import validate as v
from excessmort.exceptions import InputError

REGIONS_USED = ("E12000007", "E12000001")


def _frame(n_weeks: int = 700, start: str = "2015-01-02") -> pd.DataFrame:
    """Two regions x n_weeks Fridays, region-major: row 700 + k is North East's week k."""
    weeks = pd.date_range(start, periods=n_weeks, freq="7D").strftime("%Y-%m-%d")
    return pd.DataFrame(
        {
            "region": np.repeat(REGIONS_USED, n_weeks),
            "sex": "female",
            "week_ending": np.tile(weeks, 2),
            "deaths": np.arange(2 * n_weeks, dtype=np.int64) % 97 + 10,
        }
    )


def _refused(frame: pd.DataFrame, **kwargs) -> InputError:
    with pytest.raises(InputError) as err:
        em.read(frame, **kwargs)
    return err.value


# Row 1,204 of _frame() is North East (E12000001), its week 504: 2015-01-02 + 504 weeks.
ROW = 1204
ROW_WEEK = "2024-08-30"


def test_row_position_and_series_are_as_documented() -> None:
    frame = _frame()
    assert frame.loc[ROW, "region"] == "E12000001" and frame.loc[ROW, "week_ending"] == ROW_WEEK


def test_empty_input() -> None:
    err = _refused(_frame().iloc[:0])
    assert "the input is empty (0 rows; columns: 'region', 'sex', 'week_ending', 'deaths')" in str(
        err
    )
    assert (err.column, err.value, err.row) == (None, 0, None)


def test_empty_after_leaving_out_wales() -> None:
    wales = pd.DataFrame({"area_code": ["W92000004"], "week_ending": ["2020-01-03"], "deaths": [5]})
    err = _refused(wales)
    assert "no rows are left after leaving out Wales (W92000004); pass keep_wales=True" in str(err)
    assert len(em.read(wales, keep_wales=True)) == 1


def test_missing_required_columns_lists_what_is_there() -> None:
    err = _refused(_frame().rename(columns={"week_ending": "when", "deaths": "n"}))
    msg = str(err)
    assert "missing required column 'week_ending' (or 'date'" in msg
    assert "and 'deaths' (or 'count')" in msg
    assert "the input has columns 'region', 'sex', 'when', 'n'" in msg
    assert err.column == "week_ending"


def test_negative_deaths() -> None:
    frame = _frame()
    frame.loc[ROW, "deaths"] = -3
    err = _refused(frame)
    assert str(err).startswith(
        f"column 'deaths' has a negative value -3 at row 1,204 (region E12000001, sex female, "
        f"week ending {ROW_WEEK}); deaths must be non-negative"
    )
    assert (err.column, err.value, err.row) == ("deaths", -3.0, ROW)


def test_fractional_deaths() -> None:
    frame = _frame().astype({"deaths": float})
    frame.loc[ROW, "deaths"] = 12.5
    err = _refused(frame)
    assert "column 'deaths' has a fractional value 12.5 at row 1,204 (region E12000001" in str(err)
    assert (err.column, err.value, err.row) == ("deaths", 12.5, ROW)


def test_non_numeric_deaths() -> None:
    frame = _frame().astype({"deaths": object})
    frame.loc[ROW, "deaths"] = "12a"
    err = _refused(frame)
    assert "column 'deaths' has a non-numeric value '12a' at row 1,204 (region E12000001" in str(
        err
    )
    assert (err.column, err.value, err.row) == ("deaths", "12a", ROW)


def test_infinite_deaths_are_not_numbers() -> None:
    frame = _frame().astype({"deaths": float})
    frame.loc[ROW, "deaths"] = np.inf
    err = _refused(frame)
    assert "column 'deaths' has a non-numeric value inf at row 1,204" in str(err)


def test_missing_deaths_are_a_missing_week() -> None:
    frame = _frame().astype({"deaths": float})
    frame.loc[ROW, "deaths"] = np.nan
    tidy = em.read(frame)
    assert tidy["deaths"].isna().sum() == 1


@pytest.mark.parametrize(
    ("value", "what", "shown"),
    [
        ("lots", "a non-numeric value", "'lots'"),
        (-5, "a negative value", "-5"),
        (0, "a zero value", "0"),
    ],
)
def test_bad_population(value: object, what: str, shown: str) -> None:
    frame = _frame().assign(population=pd.Series(1e5, index=range(1400), dtype=object))
    frame.loc[ROW, "population"] = value
    err = _refused(frame)
    assert str(err).startswith(
        f"column 'population' has {what} {shown} at row 1,204 (region E12000001, sex female, "
        f"week ending {ROW_WEEK}); population is the exposure"
    )
    assert (err.column, err.row) == ("population", ROW)


def test_missing_population_only_on_a_missing_week() -> None:
    frame = _frame().assign(population=1e5)
    frame.loc[ROW, "population"] = np.nan
    err = _refused(frame)
    assert "column 'population' has a missing value at row 1,204 (region E12000001" in str(err)
    frame.loc[ROW, "deaths"] = np.nan
    assert em.read(frame)["population"].isna().sum() == 1


@pytest.mark.parametrize(
    ("value", "what"),
    [("2024-13-01", "an unparseable date '2024-13-01'"), ("soon", "an unparseable date 'soon'")],
)
def test_unparseable_dates(value: str, what: str) -> None:
    frame = _frame()
    frame.loc[ROW, "week_ending"] = value
    err = _refused(frame)
    assert str(err).startswith(
        f"column 'week_ending' has {what} at row 1,204 (region E12000001, sex female, week ending "
        f"{value}); week_ending must be a date"
    )
    assert (err.column, err.value, err.row) == ("week_ending", value, ROW)


def test_missing_date() -> None:
    frame = _frame()
    frame.loc[ROW, "week_ending"] = None
    err = _refused(frame)
    assert "column 'week_ending' has a missing date at row 1,204 (region E12000001" in str(err)
    assert (err.column, err.row) == ("week_ending", ROW)


def test_numbers_are_not_dates() -> None:
    frame = _frame().assign(week_ending=20150102)
    err = _refused(frame)
    assert "column 'week_ending' has a number, not a date, 20150102 at row 0" in str(err)


def test_other_date_spellings_are_read() -> None:
    frame = pd.DataFrame(
        {
            "week_ending": ["03/01/2020", "10/01/2020", "17 January 2020", dt.date(2020, 1, 24)],
            "deaths": [1, 2, 3, 4],
        }
    )
    tidy = em.read(frame)
    assert tidy["week_ending"].tolist() == list(pd.date_range("2020-01-03", periods=4, freq="7D"))


def test_duplicate_series_weeks_name_both_rows() -> None:
    frame = _frame()
    frame.loc[ROW, "week_ending"] = frame.loc[703, "week_ending"]  # same as North East's week 3
    err = _refused(frame)
    msg = str(err)
    assert (
        f"column 'week_ending' has the duplicate series-week {frame.loc[703, 'week_ending']}" in msg
    )
    assert "at row 1,204, already given at row 703 (region E12000001, sex female" in msg
    assert (err.column, err.row) == ("week_ending", ROW)
    assert err.value == pd.Timestamp(frame.loc[703, "week_ending"])


def test_thursday_among_fridays() -> None:
    frame = _frame()
    frame.loc[ROW, "week_ending"] = "2024-08-29"
    err = _refused(frame)
    assert str(err).startswith(
        "column 'week_ending' has 2024-08-29 (a Thursday) at row 1,204 (region E12000001, sex "
        "female, week ending 2024-08-29), 6 days after 2024-08-23, the previous week of its "
        "series; dates must be weekly: every week_ending on the same weekday (Friday here"
    )
    assert (err.column, err.row) == ("week_ending", ROW)


def test_ten_day_gap() -> None:
    frame = _frame(n_weeks=5)
    frame.loc[8, "week_ending"] = "2015-01-26"  # North East's week 3: 10 days after week 2
    err = _refused(frame)
    assert (
        "2015-01-26 (a Monday) at row 8 (region E12000001, sex female, week ending 2015-01-26), "
        in str(err)
    )
    assert "10 days after 2015-01-16, the previous week of its series" in str(err)


def test_whole_week_gaps_are_missing_weeks() -> None:
    frame = _frame(n_weeks=10).drop(index=[3, 4, 15])
    tidy = em.read(frame)
    assert len(tidy) == 17


def test_series_on_different_weekdays() -> None:
    frame = _frame(n_weeks=6)
    sundays = pd.to_datetime(frame["week_ending"]) + pd.Timedelta(days=2)
    frame.loc[6:, "week_ending"] = sundays[6:].dt.strftime("%Y-%m-%d")
    frame = pd.concat([frame, _frame(n_weeks=6).iloc[:6].assign(sex="male")], ignore_index=True)
    err = _refused(frame)
    # Issue 17: each series is weekly, on its own weekday; the message says so (it used to point at
    # one row as if the series were broken).
    assert str(err).startswith(
        "series end their weeks on different weekdays: region E12000001, sex female, week ending "
        "2015-01-04 is weekly on Sundays"
    )
    assert "on Fridays" in str(err) and err.row == 6 and err.column == "week_ending"


def test_unknown_region() -> None:
    frame = _frame()
    frame.loc[ROW, "region"] = "Scotland"
    err = _refused(frame)
    assert str(err).startswith(
        f"column 'region' has an unknown region 'Scotland' at row 1,204 (region Scotland, sex "
        f"female, week ending {ROW_WEEK}); regions are the ONS codes E12000001..E12000009"
    )
    assert (err.column, err.value, err.row) == ("region", "Scotland", ROW)


def test_england_beside_its_regions_is_a_series_of_its_own_with_a_warning() -> None:
    # Issue 17 changed this rule: England rows were refused; now England is a series of its own
    # (a national series can be read and fitted), with a warning when its regions are beside it.
    from excessmort.exceptions import AreaWarning

    frame = _frame().rename(columns={"region": "area_code"})
    england = frame.loc[frame["area_code"] == frame["area_code"].iloc[0]].assign(
        area_code="E92000001"
    )
    with pytest.warns(AreaWarning, match=r"holds England \(E92000001\) beside its regions"):
        tidy = em.read(pd.concat([frame, england], ignore_index=True))
    assert "E92000001" in tidy["region"].cat.categories


def test_unknown_region_suggests_the_closest_name() -> None:
    frame = _frame()
    frame.loc[ROW, "region"] = "Londn"
    err = _refused(frame)
    assert "(did you mean 'London'?)" in str(err)


def test_wales_left_out_or_kept(caplog) -> None:
    frame = _frame(n_weeks=4)
    frame.loc[4:, "region"] = "Wales"
    with caplog.at_level(logging.INFO, logger="excessmort.io"):
        tidy = em.read(frame)
    assert tidy["region"].cat.categories.tolist() == ["E12000007"] and len(tidy) == 4
    assert "left out 4 rows of Wales (W92000004)" in caplog.text
    kept = em.read(frame, keep_wales=True)
    assert kept["region"].cat.categories.tolist() == ["E12000007", "W92000004"]


def test_row_is_the_input_position_after_wales_and_with_any_index() -> None:
    frame = _frame(n_weeks=4)
    frame = pd.concat([frame.iloc[:4].assign(region="W92000004"), frame], ignore_index=True)
    frame.loc[9, "deaths"] = -1
    frame.index = [f"r{i}" for i in range(len(frame))]
    err = _refused(frame)
    assert err.row == 9 and "at row 9 (region E12000001" in str(err)


def test_missing_stratum_value() -> None:
    frame = _frame()
    frame.loc[ROW, "sex"] = None
    err = _refused(frame)
    assert str(err).startswith(
        f"column 'sex' has a missing value at row 1,204 (region E12000001, sex <missing>, week "
        f"ending {ROW_WEEK}); every row must name its series"
    )
    assert (err.column, err.row) == ("sex", ROW)


def test_ambiguous_columns() -> None:
    frame = _frame().assign(date=lambda f: f["week_ending"])
    with pytest.raises(
        InputError, match=r"columns 'week_ending' and 'date' both look like 'week_ending'"
    ):
        em.read(frame)
    frame = pd.concat([_frame(), _frame()[["sex"]]], axis=1)
    with pytest.raises(InputError, match=r"column 'sex' appears more than once"):
        em.read(frame)
    frame = _frame().assign(area_code="E12000001")
    with pytest.raises(InputError, match=r"column 'region' and 'area_code' both name the region"):
        em.read(frame)


# ---------------------------------------------------------------------------------------- fit rules
def test_too_little_history_for_the_baseline() -> None:
    tidy = em.read(_frame(n_weeks=300))  # 2015-01-02 .. 2020-09-25
    v.check_history(tidy, (2015, 2019), min_weeks=260)
    short = tidy[~((tidy["region"] == "E12000001") & (tidy["week_ending"] < "2018-01-01"))]
    with pytest.raises(InputError) as err:
        v.check_history(short.reset_index(drop=True), (2015, 2019), min_weeks=260)
    msg = str(err.value)
    assert msg.startswith("too little history for the baseline asked for: the reference period ")
    assert (
        "2015-01-01..2019-12-31 holds 104 weeks with deaths for series "
        "(region E12000001, sex female)" in msg
    )
    assert (
        "(the data hold weeks ending 2018-01-05..2020-09-25); the baseline needs at least 260"
        in msg
    )
    assert (err.value.column, err.value.value) == ("week_ending", 104)
    # Missing weeks (NaN deaths) do not count as history.
    gappy = tidy.copy()
    gappy.loc[:10, "deaths"] = np.nan
    with pytest.raises(
        InputError, match=r"holds 250 weeks with deaths for series \(region E12000001"
    ):
        v.check_history(gappy, ("2015-01-01", "2019-12-31"), min_weeks=261)
    # Dates only.
    with pytest.raises(
        InputError, match=r"holds 52 weeks with deaths \(the data hold weeks ending 2019-01-04"
    ):
        v.check_history(pd.date_range("2019-01-04", periods=60, freq="7D"), (2019, 2019), 100)


def test_reference_period_outside_the_data() -> None:
    weeks = pd.date_range("2015-01-02", "2021-04-30", freq="7D")
    v.check_reference(weeks, (2015, 2019))
    v.check_reference(weeks, ("2014-12-27", "2021-05-06"))  # asks for no week the data lack
    before = (
        "it starts before the first week (2015-01-02), so the weeks it asks for before then are "
        "missing"
    )
    for reference, shown, rule in [
        ((2010, 2019), "2010-01-01..2019-12-31", before),
        (
            ("2014-12-26", "2019-12-31"),
            "2014-12-26..2019-12-31",
            before,
        ),  # would want the week ending 12-26
        (
            ("2020-01-01", "2021-05-07"),
            "2020-01-01..2021-05-07",
            "it runs past the last observed week (2021-04-30)",
        ),
        ((2030, 2031), "2030-01-01..2031-12-31", "it is wholly after them"),
    ]:
        with pytest.raises(InputError) as err:
            v.check_reference(weeks, reference)
        assert str(err.value) == (
            f"the reference period {shown} lies outside the data: {rule}; the data hold weeks "
            "ending 2015-01-02..2021-04-30; choose a reference period within them"
        )
        assert err.value.column == "week_ending" and err.value.value == reference
    with pytest.raises(
        InputError, match=r"2019-12-31..2015-01-01 ends before it starts: it is reversed"
    ):
        v.check_reference(weeks, ("2019-12-31", "2015-01-01"))
    # Reversed and outside the data: told it is reversed first.
    with pytest.raises(InputError, match=r"2100-01-01..1900-12-31 ends before it starts"):
        v.check_reference(weeks, ("2100-01-01", "1900"))
    # The pandemic rule, when asked for.
    v.check_reference(weeks, (2015, 2019), pandemic=v.PANDEMIC)
    with pytest.raises(InputError, match=r"runs into the pandemic weeks 2020-03-01..2021-12-31"):
        v.check_reference(weeks, ("2015-01-01", "2021-04-30"), pandemic=v.PANDEMIC)
    tidy = em.read(_frame(n_weeks=10))
    with pytest.raises(InputError, match=r"weeks ending 2015-01-02..2015-03-06"):
        v.check_reference(tidy, (2016, 2017))


def test_format_row() -> None:
    assert v.format_row(0) == "row 0"
    assert v.format_row(1204) == "row 1,204"
    assert v.format_row(1_000_000) == "row 1,000,000"
