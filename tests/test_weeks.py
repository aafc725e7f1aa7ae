"""Weeks: ISO weeks and week 53, weekly grid, reference periods, bank holidays.

Oracles: the standard library's ``datetime.date.isocalendar`` and published calendar facts.
"""

from __future__ import annotations

import datetime as dt
import os

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from excessmort.weeks import (
    bank_holidays,
    has_week_53,
    iso_year_week,
    reference_bounds,
    reference_mask,
    to_timestamp,
    weekly_grid,
)


def test_iso_year_week_matches_the_standard_library() -> None:
    days = pd.date_range("1999-12-01", "2031-01-31", freq="D")
    year, week = iso_year_week(days)
    iso = [d.isocalendar() for d in days.date]
    assert year.tolist() == [i[0] for i in iso]
    assert week.tolist() == [i[1] for i in iso]
    assert year.dtype == np.int64 and week.dtype == np.int64


@given(st.dates(dt.date(1900, 1, 1), dt.date(2100, 12, 31)))
def test_iso_year_week_any_date(day: dt.date) -> None:
    year, week = iso_year_week([day])
    assert (int(year[0]), int(week[0])) == day.isocalendar()[:2]


def test_week_53_years() -> None:
    with_53 = [y for y in range(2000, 2031) if has_week_53(y)]
    assert with_53 == [2004, 2009, 2015, 2020, 2026]
    # Oracle: the number of distinct ISO weeks of the year.
    for y in range(2000, 2031):
        weeks = {d.isocalendar()[1] for d in pd.date_range(f"{y}-01-04", f"{y}-12-28").date}
        assert has_week_53(y) == (max(weeks) == 53)


def test_ons_week_53_ends_on_new_years_day() -> None:
    year, week = iso_year_week(pd.to_datetime(["2016-01-01", "2021-01-01", "2021-01-08"]))
    assert list(zip(year.tolist(), week.tolist(), strict=True)) == [
        (2015, 53),
        (2020, 53),
        (2021, 1),
    ]


def test_weekly_grid_fills_missing_weeks_and_refuses_off_grid_dates() -> None:
    grid = weekly_grid(["2020-01-17", "2020-01-03", "2020-01-03", "2020-02-07"])
    assert list(grid) == list(pd.date_range("2020-01-03", "2020-02-07", freq="7D"))
    assert len(weekly_grid([])) == 0
    with pytest.raises(
        ValueError, match="2020-01-13 is not a whole number of weeks after 2020-01-03"
    ):
        weekly_grid(["2020-01-03", "2020-01-13"])


def test_reference_bounds_and_mask() -> None:
    assert reference_bounds(2015, 2019) == (pd.Timestamp("2015-01-01"), pd.Timestamp("2019-12-31"))
    assert reference_bounds("2015", "2019") == reference_bounds(2015, 2019)
    assert reference_bounds("2015-03-01", "2019-06-30")[1] == pd.Timestamp("2019-06-30")
    assert to_timestamp(2020) == pd.Timestamp("2020-01-01")
    assert to_timestamp("2020-05-08 13:45") == pd.Timestamp("2020-05-08")
    weeks = pd.date_range("2014-12-26", "2020-01-03", freq="7D")
    mask = reference_mask(weeks, 2015, 2019)
    assert mask.dtype == bool and mask.sum() == 261  # 2015 has 53 weeks, 2016-2019 52 each
    assert weeks[mask][0] == pd.Timestamp("2015-01-02") and weeks[mask][-1] == pd.Timestamp(
        "2019-12-27"
    )


def test_bank_holidays_2020_moved_ve_day() -> None:
    bh = bank_holidays(2020, 2020)
    assert pd.Timestamp("2020-05-08") in bh and pd.Timestamp("2020-05-04") not in bh
    for day in [
        "2020-01-01",
        "2020-04-10",
        "2020-04-13",
        "2020-05-25",
        "2020-08-31",
        "2020-12-25",
        "2020-12-28",
    ]:
        assert pd.Timestamp(day) in bh, day
    assert pd.Timestamp("2020-03-17") not in bh  # St Patrick's Day is Northern Ireland only
    assert pd.Timestamp("2020-08-03") not in bh  # Scottish summer holiday


def test_holidays_asked_before_come_from_the_cache_file(tmp_path, monkeypatch) -> None:
    """The holidays of a country and years are asked of the package once per version of it and
    kept in ``holidays-<version>.json``: a later process reads them from there, the same dates,
    without loading the package's countries; a damaged file is asked again and rewritten, and
    ``EXCESSMORT_CACHE_DIR=0`` or a folder that cannot be written leaves no file and no error."""
    import json
    import subprocess
    import sys

    import holidays

    from excessmort import weeks

    monkeypatch.setenv("EXCESSMORT_CACHE_DIR", str(tmp_path))
    weeks._bank_holidays.cache_clear()
    want = weeks._bank_holidays(2019, 2021, "GB-SCT")
    assert dt.date(2020, 11, 30) in want  # St Andrew's Day: Scotland's, not England's
    file = tmp_path / f"holidays-{holidays.__version__}.json"
    assert json.loads(file.read_text())["GB-SCT:2019:2021"] == [d.isoformat() for d in want]
    script = (
        "import sys\n"
        "from excessmort import weeks\n"
        "days = weeks._bank_holidays(2019, 2021, 'GB-SCT')\n"
        "print(len(days), days[0].isoformat(), 'holidays.countries' in sys.modules)\n"
    )
    env = {**os.environ, "EXCESSMORT_CACHE_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    )
    assert done.stdout.split() == [str(len(want)), want[0].isoformat(), "False"]

    file.write_text('{"GB-SCT:2019:2021": ["not a date"', encoding="utf-8")
    weeks._bank_holidays.cache_clear()
    assert weeks._bank_holidays(2019, 2021, "GB-SCT") == want
    assert json.loads(file.read_text())["GB-SCT:2019:2021"] == [d.isoformat() for d in want]

    with pytest.raises(ValueError, match="not a country"):
        weeks._bank_holidays(2019, 2021, "XX")  # a bad code is never cached
    assert "XX:2019:2021" not in json.loads(file.read_text())

    for setting in ("0", str(tmp_path / "file-not-folder" / "x")):
        (tmp_path / "file-not-folder").write_text("")
        monkeypatch.setenv("EXCESSMORT_CACHE_DIR", setting)
        weeks._bank_holidays.cache_clear()
        assert weeks._bank_holidays(2019, 2021, "SE") == weeks._bank_holidays.__wrapped__(
            2019, 2021, "SE"
        )
    assert not list((tmp_path).glob("*/holidays-*.json"))
    weeks._bank_holidays.cache_clear()
