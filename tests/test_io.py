"""excessmort.read: CSV, Parquet, frames and ONS workbooks into the validated tidy frame.

Oracles: the shared ONS files read independently with the standard-library ``csv`` module, the
arrays written into the test workbooks, and ``datetime.date.isocalendar`` for week numbers.
"""

from __future__ import annotations

import csv
import datetime as dt
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import excessmort as em
from excessmort.exceptions import InputError
from excessmort.regions import REGIONS, WALES_CODE, normalise_region
from excessmort.weeks import iso_year_week

NINE = sorted(REGIONS)


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _assert_contract(frame: pd.DataFrame, strata: list[str], population: bool = False) -> None:
    """The tidy-frame contract: columns, dtypes, sort order, index."""
    expected = [*strata, "week_ending", "deaths"] + (["population"] if population else [])
    assert list(frame.columns) == expected
    for col in strata:
        assert isinstance(frame[col].dtype, pd.CategoricalDtype), col
        assert all(isinstance(c, str) for c in frame[col].cat.categories), col
    assert frame["week_ending"].dtype == np.dtype("datetime64[ns]")
    assert frame["deaths"].dtype == np.float64
    if population:
        assert frame["population"].dtype == np.float64
    assert isinstance(frame.index, pd.RangeIndex) and frame.index.start == 0
    keys = [frame[c].cat.codes.to_numpy() for c in strata]
    order = np.lexsort((frame["week_ending"].to_numpy(), *reversed(keys)))
    assert np.array_equal(order, np.arange(len(frame))), "not sorted by strata then week"


def _toy(n_weeks: int = 6, regions: tuple[str, ...] = ("London", "North East")) -> pd.DataFrame:
    weeks = pd.date_range("2020-01-03", periods=n_weeks, freq="7D").strftime("%Y-%m-%d")
    return pd.DataFrame(
        {
            "region": np.repeat(regions, n_weeks),
            "week_ending": np.tile(weeks, len(regions)),
            "deaths": np.arange(len(regions) * n_weeks, dtype=np.int64) * 3 + 100,
        }
    )


# -------------------------------------------------------------------------------- real ONS files
def test_ons_region_file_leaves_wales_out_by_default(shared: Path, caplog) -> None:
    path = shared / "data" / "ons" / "ons_weekly_deaths_by_region.csv"
    raw = _csv_rows(path)
    assert len(raw) == 3310
    with caplog.at_level(logging.INFO, logger="excessmort.io"):
        tidy = em.read(path)
    assert any("331 rows of Wales" in r.getMessage() for r in caplog.records)
    _assert_contract(tidy, ["region"])
    assert len(tidy) == 3310 - 331 == 2979
    assert tidy["region"].cat.categories.tolist() == NINE
    assert tidy["region"].value_counts().tolist() == [331] * 9
    assert tidy["week_ending"].min() == pd.Timestamp("2015-01-02")
    assert tidy["week_ending"].max() == pd.Timestamp("2021-04-30")
    # Every figure equals the file's, looked up by (area_code, week_ending) from the csv module.
    want = {(r["area_code"], r["week_ending"]): float(r["deaths"]) for r in raw}
    got = zip(
        tidy["region"].astype(str),
        tidy["week_ending"].dt.strftime("%Y-%m-%d"),
        tidy["deaths"],
        strict=True,
    )
    assert all(want[(code, week)] == deaths for code, week, deaths in got)


def test_ons_region_file_keeps_wales_when_asked(shared: Path) -> None:
    path = shared / "data" / "ons" / "ons_weekly_deaths_by_region.csv"
    tidy = em.read(path, keep_wales=True)
    _assert_contract(tidy, ["region"])
    assert len(tidy) == 3310
    assert tidy["region"].cat.categories.tolist() == [*NINE, WALES_CODE]
    wales = tidy[tidy["region"] == WALES_CODE]
    raw = [r for r in _csv_rows(path) if r["area_code"] == WALES_CODE]
    assert wales["deaths"].tolist() == [float(r["deaths"]) for r in raw]


def test_ons_week_numbers_are_iso_weeks_of_week_ending(shared: Path) -> None:
    """ONS year/week equal the ISO year/week of the Friday ending the week, on every row."""
    for name in ("ons_weekly_deaths_by_region.csv", "ons_weekly_deaths_by_sex_age.csv"):
        raw = _csv_rows(shared / "data" / "ons" / name)
        dates = [r["week_ending"] for r in raw]
        year, week = iso_year_week(pd.to_datetime(dates))
        assert year.tolist() == [int(r["year"]) for r in raw], name
        assert week.tolist() == [int(r["week"]) for r in raw], name
        # Oracle independent of pandas: the standard library's ISO calendar.
        iso = [dt.date.fromisoformat(d).isocalendar() for d in dates]
        assert [(i[0], i[1]) for i in iso] == list(zip(year.tolist(), week.tolist(), strict=True))
        assert all(dt.date.fromisoformat(d).weekday() == 4 for d in dates), "ONS weeks end Friday"


def test_ons_sex_age_file_is_a_panel_without_region(shared: Path) -> None:
    path = shared / "data" / "ons" / "ons_weekly_deaths_by_sex_age.csv"
    raw = _csv_rows(path)
    tidy = em.read(path)
    _assert_contract(tidy, ["sex", "age_group"])
    assert len(tidy) == len(raw) == 4228
    assert tidy["sex"].cat.categories.tolist() == ["female", "male"]
    assert tidy["age_group"].cat.categories.tolist() == [
        "<1",
        "1-14",
        "15-44",
        "45-64",
        "65-74",
        "75-84",
        "85+",
    ]
    assert tidy.groupby(["sex", "age_group"], observed=True).size().tolist() == [302] * 14
    assert tidy["week_ending"].min() == pd.Timestamp("2015-01-02")
    assert tidy["week_ending"].max() == pd.Timestamp("2020-10-09")
    assert tidy["deaths"].sum() == sum(float(r["deaths"]) for r in raw)
    from excessmort.panel import Panel

    panel = Panel.from_frame(tidy)
    assert (panel.n_series, panel.n_weeks) == (14, 302)
    assert not np.isnan(panel.deaths).any()


# ---------------------------------------------------------------------------------------- columns
def test_aliases_area_names_and_bookkeeping_columns(caplog) -> None:
    raw = pd.DataFrame(
        {
            "year": [2020, 2020],
            "week": [1, 1],
            "area_name": ["East", "Yorkshire and The Humber"],
            "date": ["2020-01-03", "2020-01-03"],
            "count": [1200, 900],
            "source": ["ons_workbook", "compiled"],
        }
    )
    before = raw.copy(deep=True)
    with caplog.at_level(logging.INFO, logger="excessmort.io"):
        tidy = em.read(raw)
    pd.testing.assert_frame_equal(raw, before)  # the user's frame is not modified
    assert any("year" in r.getMessage() and "source" in r.getMessage() for r in caplog.records)
    _assert_contract(tidy, ["region"])
    assert tidy["region"].tolist() == ["E12000003", "E12000006"]
    assert tidy["deaths"].tolist() == [900.0, 1200.0]


def test_area_code_wins_and_area_name_must_agree() -> None:
    raw = pd.DataFrame(
        {
            "week_ending": ["2020-01-03", "2020-01-03"],
            "area_code": ["E12000001", "E12000007"],
            "area_name": ["North East", "London"],
            "deaths": [1, 2],
        }
    )
    tidy = em.read(raw)
    assert list(tidy.columns) == ["region", "week_ending", "deaths"]
    bad = raw.assign(area_name=["North East", "North West"])
    with pytest.raises(InputError) as err:
        em.read(bad)
    msg = str(err.value)
    assert "'area_name'" in msg and "'North West'" in msg and "row 1 " in msg and "E12000007" in msg
    assert (err.value.column, err.value.value, err.value.row) == ("area_name", "North West", 1)


def test_region_names_normalised_and_strata_order_kept() -> None:
    raw = pd.DataFrame(
        {
            "sex": ["male", "female"] * 2,
            "week_ending": ["2020-01-10", "2020-01-10", "2020-01-03", "2020-01-03"],
            "region": ["south west", "E12000009", "South West", "south-west"],
            "deaths": [4, 3, 2, 1],
            "population": [10, 20, 30, 40],
        }
    )
    tidy = em.read(raw)
    _assert_contract(tidy, ["sex", "region"], population=True)
    assert tidy["region"].cat.categories.tolist() == ["E12000009"]
    assert tidy["deaths"].tolist() == [1.0, 3.0, 2.0, 4.0]
    assert tidy["population"].tolist() == [40.0, 20.0, 30.0, 10.0]


def test_strata_option_keeps_only_named_columns(caplog) -> None:
    raw = _toy().assign(note="draft", cause="all")
    with caplog.at_level(logging.INFO, logger="excessmort.io"):
        tidy = em.read(raw, strata=["region"])
    assert list(tidy.columns) == ["region", "week_ending", "deaths"]
    assert any("note" in r.getMessage() for r in caplog.records)
    assert list(em.read(raw).columns) == ["region", "note", "cause", "week_ending", "deaths"]
    with pytest.raises(InputError, match=r"stratum 'sex' is not a column.*'region'"):
        em.read(raw, strata=["sex"])


def test_numeric_strata_become_string_categories() -> None:
    raw = pd.DataFrame(
        {"deprivation": [10, 2, 1], "week_ending": ["2020-01-03"] * 3, "deaths": [5, 6, 7]}
    )
    tidy = em.read(raw)
    assert tidy["deprivation"].cat.categories.tolist() == ["1", "2", "10"]  # natural order
    assert tidy["deaths"].tolist() == [7.0, 6.0, 5.0]


# ---------------------------------------------------------------------------------------- formats
def test_csv_parquet_and_partitioned_parquet_agree(tmp_path: Path) -> None:
    raw = _toy().assign(population=1e6)
    expected = em.read(raw)
    raw.to_csv(tmp_path / "in.csv", index=False)
    pd.testing.assert_frame_equal(em.read(tmp_path / "in.csv"), expected)
    pd.testing.assert_frame_equal(em.read(str(tmp_path / "in.csv")), expected)
    expected.to_parquet(tmp_path / "tidy.parquet")
    pd.testing.assert_frame_equal(em.read(tmp_path / "tidy.parquet"), expected)
    # pandas alone keeps every dtype through Parquet as well.
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "tidy.parquet"), expected)
    raw.to_parquet(tmp_path / "parts", partition_cols=["region"])
    pd.testing.assert_frame_equal(em.read(tmp_path / "parts"), expected)


def test_dask_frame_is_read() -> None:
    import dask.dataframe as dd  # the dask extra is part of make test

    raw = _toy()
    pd.testing.assert_frame_equal(em.read(dd.from_pandas(raw, npartitions=2)), em.read(raw))


def test_unknown_suffix_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "deaths.json"
    path.write_text("{}")
    with pytest.raises(InputError, match=r"'deaths.json'.*'\.json'"):
        em.read(path)


# ---------------------------------------------------------------------------------------- workbook
WB_REGIONS = [
    "North East",
    "North West",
    "Yorkshire and The Humber",
    "East Midlands",
    "West Midlands",
    "East",
    "London",
    "South East",
    "South West",
    "Wales",
]


def _workbook(
    path: Path,
    values: np.ndarray,
    weeks: pd.DatetimeIndex,
    *,
    with_codes: bool = False,
    blank_weeks: int = 0,
    sheet: str = "Weekly figures 2020",
    region_section: bool = True,
    extra_sheets: tuple[str, ...] = ("Contents", "Information"),
) -> None:
    """A workbook laid out as ONS 'Deaths registered weekly in England and Wales, provisional'."""
    import openpyxl

    book = openpyxl.Workbook()
    book.active.title = extra_sheets[0]
    book.active["A1"] = "Contents"
    for name in extra_sheets[1:]:
        book.create_sheet(name)["A1"] = "Notes"
    ws = book.create_sheet(sheet)
    label = 2 if with_codes else 1  # column of the row labels (1-based); weeks start after it
    first = label + 1
    ws.cell(1, 1, "Weekly provisional figures on deaths registered in England and Wales")
    ws.cell(2, 1, "Deaths registered weekly in England and Wales, provisional")
    ws.cell(4, label, "Week number")
    ws.cell(5, label, "Week ended")
    n_all = len(weeks) + blank_weeks
    all_weeks = pd.date_range(weeks[0], periods=n_all, freq="7D")
    for j in range(n_all):
        ws.cell(4, first + j, j + 1)
        ws.cell(5, first + j, all_weeks[j].to_pydatetime())
    ws.cell(7, label, "Total deaths, all ages")
    ws.cell(9, label, "Deaths by age group")
    ws.cell(10, label, "Under 1 year")
    for j in range(len(weeks)):
        ws.cell(7, first + j, int(values[:, j].sum()) + 500)
        ws.cell(10, first + j, 50)
    row = 12
    if region_section:
        ws.cell(row, 1, "Deaths by Region of usual residence 4")
        row += 1
        if with_codes:
            ws.cell(row, 1, "E92000001")
            ws.cell(row, 2, "England")
            for j in range(len(weeks)):
                ws.cell(row, first + j, int(values[:9, j].sum()))
            row += 1
        for i, name in enumerate(WB_REGIONS):
            if with_codes:
                code = normalise_region(name, allow_wales=True)
                ws.cell(row, 1, code)
            ws.cell(row, label, name)
            for j in range(len(weeks)):
                ws.cell(row, first + j, int(values[i, j]))
            row += 1
    ws.cell(row + 1, 1, "Source: Office for National Statistics")
    book.save(path)


def _wb_values(n_weeks: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    sizes = np.array([550, 1400, 1050, 850, 1100, 1100, 1000, 1600, 1150, 650])
    return rng.poisson(sizes[:, None], size=(10, n_weeks)).astype(np.int64)


@pytest.mark.parametrize("with_codes", [False, True])
def test_ons_workbook_regional_table(tmp_path: Path, with_codes: bool) -> None:
    weeks = pd.date_range("2020-01-03", periods=12, freq="7D")
    values = _wb_values(12)
    path = tmp_path / "publishedweek2020.xlsx"
    _workbook(path, values, weeks, with_codes=with_codes, blank_weeks=41)
    tidy = em.read(path)
    _assert_contract(tidy, ["region"])
    assert tidy["region"].cat.categories.tolist() == NINE
    assert len(tidy) == 9 * 12  # Wales left out, unpublished weeks left out, England skipped
    codes = [normalise_region(n) for n in WB_REGIONS[:9]]
    for i, code in enumerate(codes):
        series = tidy[tidy["region"] == code]
        assert series["week_ending"].tolist() == list(weeks)
        assert series["deaths"].tolist() == values[i].astype(float).tolist()
    with_wales = em.read(path, keep_wales=True)
    wales = with_wales[with_wales["region"] == WALES_CODE]
    assert wales["deaths"].tolist() == values[9].astype(float).tolist()


def test_ons_workbook_sheet_choice_and_missing_region_table(tmp_path: Path) -> None:
    weeks = pd.date_range("2019-01-04", periods=4, freq="7D")
    path = tmp_path / "no_regions.xlsx"
    _workbook(path, _wb_values(4), weeks, sheet="Weekly figures 2019", region_section=False)
    with pytest.raises(
        InputError, match=r"sheet 'Weekly figures 2019' of 'no_regions.xlsx' has no regional table"
    ):
        em.read(path)
    path = tmp_path / "other.xlsx"
    _workbook(path, _wb_values(4), weeks, sheet="Registrations")
    with pytest.raises(
        InputError, match=r"no sheet named like 'Weekly figures 2020'.*'Registrations'"
    ):
        em.read(path)
    assert len(em.read(path, sheet="registrations")) == 36
    with pytest.raises(InputError, match=r"no sheet 'Nope'; its sheets are 'Contents'"):
        em.read(path, sheet="Nope")


def test_ons_workbook_non_numeric_cell_names_the_cell(tmp_path: Path) -> None:
    import openpyxl

    weeks = pd.date_range("2020-01-03", periods=3, freq="7D")
    path = tmp_path / "bad.xlsx"
    _workbook(path, _wb_values(3), weeks)
    book = openpyxl.load_workbook(path)
    book["Weekly figures 2020"]["C19"] = "n/a"  # London (row 13 + 6), second week (column C)
    book.save(path)
    with pytest.raises(InputError) as err:
        em.read(path)
    msg = str(err.value)
    assert "cell C19" in msg and "'n/a'" in msg and "E12000007" in msg and "2020-01-10" in msg


# -------------------------------------------------------------------------------- properties
@st.composite
def tidy_inputs(draw: st.DrawFn) -> pd.DataFrame:
    regions = draw(st.lists(st.sampled_from(NINE), min_size=1, max_size=4, unique=True))
    sexes = draw(st.lists(st.sampled_from(["female", "male"]), min_size=1, max_size=2, unique=True))
    n_weeks = draw(st.integers(1, 8))
    start = pd.Timestamp("2019-12-27") + pd.Timedelta(days=7 * draw(st.integers(0, 400)))
    weeks = pd.date_range(start, periods=n_weeks, freq="7D")
    index = pd.MultiIndex.from_product(
        [regions, sexes, weeks], names=["region", "sex", "week_ending"]
    )
    frame = index.to_frame(index=False)
    n = len(frame)
    deaths = draw(st.lists(st.integers(0, 10**6) | st.none(), min_size=n, max_size=n))
    frame["deaths"] = pd.array(deaths, dtype="Int64")
    frame["population"] = draw(
        st.lists(st.floats(1.0, 1e8, allow_nan=False), min_size=n, max_size=n)
    )
    keep = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    keep[0] = True
    frame = frame[np.asarray(keep)]
    perm = draw(st.permutations(range(len(frame))))
    return frame.iloc[list(perm)].reset_index(drop=True)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(frame=tidy_inputs())
def test_property_valid_frames_round_trip(frame: pd.DataFrame, tmp_path_factory) -> None:
    tidy = em.read(frame)
    _assert_contract(tidy, ["region", "sex"], population=True)
    assert len(tidy) == len(frame)
    # Same rows as the input, matched by key.
    merged = frame.assign(week_ending=pd.to_datetime(frame["week_ending"])).merge(
        tidy.astype({"region": str, "sex": str}), on=["region", "sex", "week_ending"]
    )
    assert len(merged) == len(frame)
    assert np.array_equal(
        merged["deaths_x"].to_numpy(dtype=float, na_value=np.nan),
        merged["deaths_y"],
        equal_nan=True,
    )
    assert np.array_equal(merged["population_x"].to_numpy(float), merged["population_y"])
    pd.testing.assert_frame_equal(em.read(tidy), tidy)  # idempotent
    path = tmp_path_factory.mktemp("rt") / "tidy.parquet"
    tidy.to_parquet(path)
    pd.testing.assert_frame_equal(em.read(path), tidy)
    pd.testing.assert_frame_equal(pd.read_parquet(path), tidy)


@settings(max_examples=60, deadline=None)
@given(frame=tidy_inputs(), data=st.data())
def test_property_negative_value_reported_at_its_row(
    frame: pd.DataFrame, data: st.DataObject
) -> None:
    row = data.draw(st.integers(0, len(frame) - 1))
    value = data.draw(st.integers(-(10**6), -1))
    bad = frame.copy()
    bad["deaths"] = bad["deaths"].fillna(0)
    bad.loc[row, "deaths"] = value
    with pytest.raises(InputError) as err:
        em.read(bad)
    assert (err.value.column, err.value.value, err.value.row) == ("deaths", float(value), row)
    assert f"row {row:,} " in str(err.value) and f"negative value {value}" in str(err.value)


# ---------------------------------------------------------------------------------------- scale
@pytest.mark.slow
def test_read_a_million_rows_quickly() -> None:
    """No Python loop over rows: 1.08 M rows read and validated in seconds (measured ~1.4 s)."""
    rng = np.random.default_rng(0)
    weeks = pd.date_range("2010-01-01", periods=600, freq="7D").strftime("%Y-%m-%d")
    n_series = 9 * 2 * 100
    frame = pd.DataFrame(
        {
            "region": np.repeat(np.array(NINE), 200 * 600),
            "sex": np.tile(np.repeat(["female", "male"], 100 * 600), 9),
            "age_group": np.tile(np.repeat([f"a{i}" for i in range(100)], 600), 18),
            "week_ending": np.tile(weeks, n_series),
            "deaths": rng.poisson(20, n_series * 600),
        }
    )
    frame = frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)
    start = time.perf_counter()
    tidy = em.read(frame)
    elapsed = time.perf_counter() - start
    assert len(tidy) == 1_080_000
    assert elapsed < 20, f"read took {elapsed:.1f} s"
    bad = frame.copy()
    bad.loc[1_000_000, "deaths"] = -1
    with pytest.raises(InputError, match=r"row 1,000,000 "):
        em.read(bad)
