"""Release slots, the 12-month calendar, T3.1 notice warnings, and the text / CSV / ICS formats.

Oracles: pandas' ``WeekOfMonth`` offset (third Thursday), the closed-form UK summer-time rule (BST
from 01:00 UTC on the last Sunday of March to 01:00 UTC on the last Sunday of October), and the
``icalendar`` parser (with the file's own VTIMEZONE, not a zone looked up by name). Golden files in
tests/golden are regenerated only with ``EXCESSMORT_UPDATE_GOLDEN=1``.
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import icalendar
import pandas as pd
import pytest

from excessmort.cli import main
from excessmort.exceptions import InputError
from excessmort.release.calendar import (
    ReleaseRule,
    calendar,
    format_calendar,
    next_slot,
    slot_for_month,
)

GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("EXCESSMORT_UPDATE_GOLDEN") == "1"


def _last_sunday(year: int, month: int) -> date:
    nxt = date(year + (month == 12), month % 12 + 1, 1)
    last = nxt - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - 6) % 7)


def _uk_offset_hours(instant_utc: datetime) -> int:
    """Closed-form UK rule: BST (+1) between 01:00 UTC on the last Sundays of March and October."""
    y = instant_utc.year
    start = datetime.combine(_last_sunday(y, 3), time(1), tzinfo=UTC)
    end = datetime.combine(_last_sunday(y, 10), time(1), tzinfo=UTC)
    return 1 if start <= instant_utc < end else 0


def test_third_thursday_matches_pandas_week_of_month_2020_2035():
    oracle = pd.date_range("2020-01-01", "2035-12-31", freq="WOM-3THU")
    ours = [e.release_date for e in calendar("2020-01", 120)] + [
        e.release_date for e in calendar("2030-01", 72)
    ]
    assert [d.date() for d in oracle] == ours


def test_slot_is_1400_london_and_utc_offset_follows_bst_rule():
    for entry in calendar("2020-01", 120) + calendar("2030-01", 72):
        assert entry.slot.hour == 14 and entry.slot.minute == 0
        utc = entry.slot_utc
        # the local 14:00 minus the closed-form offset gives the UTC hour
        assert utc.hour == 14 - _uk_offset_hours(utc), entry


def test_2027_examples_around_the_changes():
    assert slot_for_month("2027-03").astimezone(UTC) == datetime(2027, 3, 18, 14, tzinfo=UTC)
    assert slot_for_month("2027-04").astimezone(UTC) == datetime(2027, 4, 15, 13, tzinfo=UTC)
    assert slot_for_month("2027-10").astimezone(UTC) == datetime(2027, 10, 21, 13, tzinfo=UTC)
    assert slot_for_month("2027-11").astimezone(UTC) == datetime(2027, 11, 18, 14, tzinfo=UTC)
    assert _last_sunday(2027, 3) == date(2027, 3, 28)
    assert _last_sunday(2027, 10) == date(2027, 10, 31)


@pytest.mark.parametrize(
    ("month", "at", "expected_utc"),
    [
        # a rule on the last Sunday itself: the change happens at 01:00 UTC that day
        ("2027-03", time(0, 30), datetime(2027, 3, 28, 0, 30, tzinfo=UTC)),  # still GMT
        ("2027-03", time(14, 0), datetime(2027, 3, 28, 13, 0, tzinfo=UTC)),  # BST
        ("2027-10", time(0, 30), datetime(2027, 10, 30, 23, 30, tzinfo=UTC)),  # still BST
        ("2027-10", time(14, 0), datetime(2027, 10, 31, 14, 0, tzinfo=UTC)),  # GMT again
    ],
)
def test_configurable_rule_on_the_change_days(month, at, expected_utc):
    rule = ReleaseRule(weekday=6, nth=-1, at=at)
    slot = slot_for_month(month, rule)
    assert slot.astimezone(UTC) == expected_utc
    offset = (slot.utcoffset() or timedelta(0)) // timedelta(hours=1)
    assert _uk_offset_hours(expected_utc) == offset


def test_other_rule_and_zone():
    rule = ReleaseRule(weekday=1, nth=1, at=time(9, 30), timezone="America/New_York")
    slot = slot_for_month("2027-03", rule)  # first Tuesday: 2 March, EST (UTC-5)
    assert slot.astimezone(UTC) == datetime(2027, 3, 2, 14, 30, tzinfo=UTC)
    assert rule.describe() == "1st Tuesday of each month at 09:30 America/New_York"


def test_next_slot_boundaries():
    s = slot_for_month("2027-03")
    assert next_slot(s) == slot_for_month("2027-04")
    assert next_slot(s - timedelta(seconds=1)) == s
    assert next_slot(datetime(2027, 12, 17, tzinfo=UTC)) == slot_for_month("2028-01")
    assert next_slot(date(2027, 3, 1)) == s
    assert next_slot(datetime(2027, 3, 18, 13, 59)) == s  # naive = UTC


def test_t31_warning_only_under_four_weeks():
    entries = calendar(2027, announced=date(2026, 12, 24))  # Jan slot 28 days later: allowed
    assert all(e.warning is None for e in entries)
    assert entries[0].notice_days == 28
    entries = calendar(2027, announced=date(2026, 12, 25))  # 27 days: warned
    assert [e.month for e in entries if e.warning] == ["2027-01"]
    assert "T3.1" in (entries[0].warning or "") and "27 days" in (entries[0].warning or "")
    entries = calendar(2027, announced=date(2027, 2, 1))  # after Jan: negative notice
    assert [e.month for e in entries if e.warning] == ["2027-01", "2027-02"]
    assert all(e.notice_days is None for e in calendar(2027))


@pytest.mark.parametrize(
    ("start", "months", "column"),
    [("2027-13", 12, "month"), ("27-03", 12, "month"), (2027, 0, "months"), (99, 12, "year")],
)
def test_bad_input_names_column_and_value(start, months, column):
    with pytest.raises(InputError) as info:
        calendar(start, months)
    assert info.value.column == column
    assert info.value.value in (start, months)


def test_rule_validation():
    with pytest.raises(InputError) as info:
        ReleaseRule(nth=5)
    assert info.value.column == "release.nth" and info.value.value == 5
    with pytest.raises(InputError, match="Mars/Olympus"):
        ReleaseRule(timezone="Mars/Olympus")
    with pytest.raises(InputError, match="format"):
        format_calendar(calendar(2027), "pdf")  # type: ignore[arg-type]


# -- formats and golden files


def _cli(tmp_path: Path, fmt: str) -> str:
    out = tmp_path / f"cal.{fmt}"
    code = main(
        ["calendar", "2027", "--format", fmt, "--announced", "2026-12-31", "--output", str(out)]
    )
    assert code == 1  # the January slot is only 21 days after the announcement
    return out.read_bytes().decode("utf-8")


@pytest.mark.parametrize("fmt", ["txt", "csv", "ics"])
def test_golden_2027(tmp_path, fmt):
    text = _cli(tmp_path, {"txt": "text"}.get(fmt, fmt))
    golden = GOLDEN / f"calendar_2027.{fmt}"
    if UPDATE:
        golden.write_bytes(text.encode("utf-8"))
    assert text == golden.read_bytes().decode("utf-8")


def test_csv_parses_and_agrees_with_slots(tmp_path):
    rows = list(csv.DictReader(io.StringIO(_cli(tmp_path, "csv"))))
    assert [r["month"] for r in rows] == [f"2027-{m:02d}" for m in range(1, 13)]
    for row in rows:
        utc = datetime.strptime(row["slot_utc"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        assert utc == slot_for_month(row["month"]).astimezone(UTC)
        assert row["utc_offset"] == f"+0{_uk_offset_hours(utc)}:00"
    assert rows[0]["warning"].startswith("T3.1") and not rows[1]["warning"]


def test_ics_is_valid_rfc5545_and_times_are_right(tmp_path):
    raw = _cli(tmp_path, "ics").encode("utf-8")
    assert raw.count(b"\r\n") == raw.count(b"\n")  # every line ends CRLF
    assert max(len(line) for line in raw.split(b"\r\n")) <= 75
    cal = icalendar.Calendar.from_ical(raw)
    assert str(cal["VERSION"]) == "2.0" and "PRODID" in cal
    # the file's own VTIMEZONE, built without looking the name up
    london = cal.walk("VTIMEZONE")[0].to_tz(lookup_tzid=False)
    events = cal.walk("VEVENT")
    assert len(events) == 12
    assert len({str(e["UID"]) for e in events}) == 12
    for event, entry in zip(events, calendar(2027), strict=True):
        start = event["DTSTART"]
        assert start.params["TZID"] == "Europe/London"
        assert start.dt.astimezone(UTC) == entry.slot_utc  # parser's own zone handling
        naive = start.dt.replace(tzinfo=None)
        assert naive.replace(tzinfo=london).astimezone(UTC) == entry.slot_utc  # our VTIMEZONE
        assert event["DTSTAMP"].dt == datetime(2026, 12, 31, tzinfo=UTC)
        assert event["DTEND"].dt - start.dt == timedelta(minutes=30)
        assert entry.month in str(event["SUMMARY"])


def test_ics_other_zone_uses_utc():
    rule = ReleaseRule(timezone="Europe/Paris")
    entries = calendar(2027, rule=rule)
    text = format_calendar(
        entries,
        "ics",
        rule=rule,
        dtstamp=datetime(2027, 1, 1, tzinfo=UTC),
        title="Semicolons; commas, and a long title " * 3,
    )
    cal = icalendar.Calendar.from_ical(text)
    assert not cal.walk("VTIMEZONE")
    events = cal.walk("VEVENT")
    assert [e["DTSTART"].dt for e in events] == [e.slot_utc for e in entries]
    assert str(events[0]["SUMMARY"]).startswith("Semicolons; commas, and a long title")


def test_cli_exit_codes_and_stdout():
    proc = subprocess.run(
        [sys.executable, "-m", "excessmort", "calendar", "2027-04", "--announced", "2026-01-01"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[4].startswith("2027-04  Thursday 15 April 2027") and "13:00Z" in lines[4]
    assert lines[-1].startswith("2028-03  Thursday 16 March 2028") and "14:00Z" in lines[-1]
    assert main(["calendar", "2027", "--announced", "not-a-date"]) == 2
