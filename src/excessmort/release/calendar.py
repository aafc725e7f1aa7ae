"""Release slots and the 12-month release calendar (Code of Practice for Statistics, T3.1).

The default rule is the third Thursday of each month at 14:00 Europe/London. Times are computed with
:mod:`zoneinfo`, so a slot is 14:00 GMT (14:00 UTC) in winter and 14:00 BST (13:00 UTC) in summer.
The calendar warns when a slot is announced less than four weeks ahead (T3.1).

Examples
--------
>>> slot_for_month("2027-03").isoformat()
'2027-03-18T14:00:00+00:00'
>>> slot_for_month("2027-04").isoformat()
'2027-04-15T14:00:00+01:00'
"""

from __future__ import annotations

import calendar as _stdcal
import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..exceptions import InputError
from ..report.settings import parse_month

__all__ = [
    "DEFAULT_RULE",
    "NOTICE_DAYS",
    "WEEKDAYS",
    "CalendarEntry",
    "ReleaseRule",
    "calendar",
    "format_calendar",
    "next_slot",
    "parse_month",
    "slot_for_month",
]

#: Minimum notice for a pre-announced release (T3.1: at least four weeks).
NOTICE_DAYS = 28
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_ORDINALS = {1: "1st", 2: "2nd", 3: "3rd", 4: "4th", -1: "last"}
CalendarFormat = Literal["text", "csv", "ics"]


@dataclass(frozen=True)
class ReleaseRule:
    """When in a month a release goes out: the ``nth`` ``weekday`` at ``at`` local time.

    Parameters
    ----------
    weekday : int
        0 = Monday ... 6 = Sunday (default 3, Thursday).
    nth : int
        1 to 4 for the first to fourth such weekday, -1 for the last (default 3).
    at : datetime.time
        Local clock time (default 14:00).
    timezone : str
        IANA zone name (default ``"Europe/London"``).
    """

    weekday: int = 3
    nth: int = 3
    at: time = time(14, 0)
    timezone: str = "Europe/London"

    def __post_init__(self) -> None:
        if not isinstance(self.weekday, int) or not 0 <= self.weekday <= 6:
            raise InputError(
                "configuration key 'release.weekday': must be 0 (Monday) to 6 (Sunday), "
                f"got {self.weekday!r}",
                column="release.weekday",
                value=self.weekday,
            )
        if self.nth not in _ORDINALS:
            raise InputError(
                "configuration key 'release.nth': must be 1, 2, 3, 4 or -1 (last), "
                f"got {self.nth!r}",
                column="release.nth",
                value=self.nth,
            )
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise InputError(
                "configuration key 'release.timezone': must be a known IANA time zone such as "
                f"'Europe/London', got {self.timezone!r}",
                column="release.timezone",
                value=self.timezone,
            ) from None

    @property
    def zone(self) -> ZoneInfo:
        """The rule's time zone."""
        return ZoneInfo(self.timezone)

    def describe(self) -> str:
        """Plain words, e.g. ``'3rd Thursday of each month at 14:00 Europe/London'``."""
        return (
            f"{_ORDINALS[self.nth]} {WEEKDAYS[self.weekday]} of each month at "
            f"{self.at:%H:%M} {self.timezone}"
        )


DEFAULT_RULE = ReleaseRule()


@dataclass(frozen=True)
class CalendarEntry:
    """One release slot of the calendar."""

    month: str
    slot: datetime
    notice_days: int | None
    warning: str | None

    @property
    def release_date(self) -> date:
        """Local date of the slot."""
        return self.slot.date()

    @property
    def slot_utc(self) -> datetime:
        """The slot in UTC."""
        return self.slot.astimezone(UTC)


def _nth_weekday(year: int, month: int, weekday: int, nth: int) -> date:
    days = [
        d
        for d in range(1, _stdcal.monthrange(year, month)[1] + 1)
        if date(year, month, d).weekday() == weekday
    ]
    return date(year, month, days[nth - 1] if nth > 0 else days[-1])


def slot_for_month(
    month: str | date | tuple[int, int], rule: ReleaseRule = DEFAULT_RULE
) -> datetime:
    """The release slot of ``month`` as an aware datetime in the rule's time zone.

    Parameters
    ----------
    month : str, date or (year, month)
        The publication month, e.g. ``"2027-04"``.
    rule : ReleaseRule
        The release rule (default third Thursday, 14:00 Europe/London).

    Returns
    -------
    datetime
        Aware; ``.astimezone(datetime.UTC)`` gives the instant in UTC.

    Raises
    ------
    InputError
        When ``month`` is not ``YYYY-MM``.

    Examples
    --------
    >>> from datetime import UTC
    >>> slot_for_month("2027-04").astimezone(UTC).strftime("%Y-%m-%d %H:%M")
    '2027-04-15 13:00'
    """
    year, mon = parse_month(month)
    day = _nth_weekday(year, mon, rule.weekday, rule.nth)
    return datetime.combine(day, rule.at, tzinfo=rule.zone)


def _month_add(year: int, month: int, n: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + n
    return index // 12, index % 12 + 1


def _as_aware(moment: datetime | date) -> datetime:
    if isinstance(moment, datetime):
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return datetime.combine(moment, time(0), tzinfo=UTC)


def next_slot(after: datetime | date, rule: ReleaseRule = DEFAULT_RULE) -> datetime:
    """The first slot strictly after ``after`` (naive datetimes are read as UTC).

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> next_slot(datetime(2027, 3, 18, 14, 0, tzinfo=UTC)).date().isoformat()
    '2027-04-15'
    """
    moment = _as_aware(after)
    local = moment.astimezone(rule.zone)
    year, mon = local.year, local.month
    for _ in range(3):
        slot = slot_for_month((year, mon), rule)
        if slot > moment:
            return slot
        year, mon = _month_add(year, mon, 1)
    raise AssertionError("unreachable: a later month always has a later slot")  # pragma: no cover


def _is_year(text: str) -> bool:
    from ..periods import period_kind

    try:
        return period_kind(text) == "year"
    except InputError:
        return False


def calendar(
    start: int | str | date,
    months: int = 12,
    *,
    rule: ReleaseRule = DEFAULT_RULE,
    announced: date | None = None,
) -> list[CalendarEntry]:
    """Twelve (or ``months``) release slots from ``start``.

    Parameters
    ----------
    start : int, str or date
        A year (January to December of it), a month ``"YYYY-MM"`` or a date (its month).
    months : int
        Number of monthly slots (1..120).
    rule : ReleaseRule
        The release rule.
    announced : date, optional
        The date the calendar is announced; each slot closer than four weeks to it gets a warning
        (T3.1). ``None`` skips the check.

    Returns
    -------
    list of CalendarEntry

    Raises
    ------
    InputError
        On a bad start month or a number of months outside 1..120.

    Examples
    --------
    >>> [e.release_date.day for e in calendar(2027, 3)]
    [21, 18, 18]
    """
    if not isinstance(months, int) or not 1 <= months <= 120:
        raise InputError(
            f"months must be an integer 1..120, got {months!r}", column="months", value=months
        )
    if isinstance(start, str) and _is_year(start):
        start = int(start.strip())  # "2027": January to December, as the year 2027
    if isinstance(start, int) and not isinstance(start, bool):
        if not 1900 <= start <= 9999:
            raise InputError(f"year must be 1900..9999, got {start}", column="year", value=start)
        year, mon = start, 1
    else:
        year, mon = parse_month(start)
    entries = []
    for i in range(months):
        y, m = _month_add(year, mon, i)
        slot = slot_for_month((y, m), rule)
        notice = warning = None
        if announced is not None:
            notice = (slot.date() - announced).days
            if notice < NOTICE_DAYS:
                warning = (
                    f"T3.1: the {y}-{m:02d} slot ({slot:%d %B %Y %H:%M %Z}) is only {notice} days "
                    f"after the announcement on {announced.isoformat()}; at least "
                    f"{NOTICE_DAYS} days (four weeks) are required"
                )
        entries.append(CalendarEntry(f"{y}-{m:02d}", slot, notice, warning))
    return entries


# --------------------------------------------------------------------------------------------------
# formats


def _offset(slot: datetime) -> str:
    off = slot.utcoffset() or timedelta(0)
    minutes = int(off.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _format_text(entries: Sequence[CalendarEntry], rule: ReleaseRule, title: str) -> str:
    lines = [
        f"Release calendar: {title}",
        f"Rule: {rule.describe()}",
        "",
        f"{'month':<8} {'release date':<28} {'local time':<11} {'UTC':<17}  notice",
    ]
    for e in entries:
        local = f"{e.slot:%H:%M} {e.slot.tzname()}"
        when = f"{e.slot:%A} {e.slot.day} {e.slot:%B %Y}"
        notice = "" if e.notice_days is None else f"{e.notice_days} days"
        if e.warning:
            notice += "  WARNING: less than four weeks (T3.1)"
        lines.append(
            f"{e.month:<8} {when:<28} {local:<11} {e.slot_utc:%Y-%m-%d %H:%MZ}  {notice}".rstrip()
        )
    warnings = [e.warning for e in entries if e.warning]
    if warnings:
        lines += ["", *(f"warning: {w}" for w in warnings)]
    return "\n".join(lines) + "\n"


def _format_csv(entries: Sequence[CalendarEntry], rule: ReleaseRule) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(
        [
            "month",
            "release_date",
            "weekday",
            "local_time",
            "timezone",
            "utc_offset",
            "slot_utc",
            "notice_days",
            "warning",
        ]
    )
    for e in entries:
        writer.writerow(
            [
                e.month,
                e.release_date.isoformat(),
                f"{e.slot:%A}",
                f"{e.slot:%H:%M}",
                rule.timezone,
                _offset(e.slot),
                e.slot_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "" if e.notice_days is None else e.notice_days,
                e.warning or "",
            ]
        )
    return buf.getvalue()


_LONDON_VTIMEZONE = [
    "BEGIN:VTIMEZONE",
    "TZID:Europe/London",
    "BEGIN:DAYLIGHT",
    "TZOFFSETFROM:+0000",
    "TZOFFSETTO:+0100",
    "TZNAME:BST",
    "DTSTART:19810329T010000",
    "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU",
    "END:DAYLIGHT",
    "BEGIN:STANDARD",
    "TZOFFSETFROM:+0100",
    "TZOFFSETTO:+0000",
    "TZNAME:GMT",
    "DTSTART:19961027T020000",
    "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU",
    "END:STANDARD",
    "END:VTIMEZONE",
]


def _ics_escape(text: str) -> str:
    return (
        text.replace("\\", "\\\\")
        .replace(";", "\\;")
        .replace(",", "\\,")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
    )


def _ics_fold(line: str) -> list[str]:
    """Fold a content line to at most 75 octets per physical line (RFC 5545 3.1)."""
    out: list[str] = []
    current = ""
    limit = 75
    for char in line:
        if len((current + char).encode("utf-8")) > limit:
            out.append(current)
            current = " " + char
            limit = 75
        else:
            current += char
    out.append(current)
    return out


def _format_ics(
    entries: Sequence[CalendarEntry],
    rule: ReleaseRule,
    title: str,
    url: str,
    dtstamp: datetime,
    uid_domain: str,
) -> str:
    london = rule.timezone == "Europe/London"
    stamp = dtstamp.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "release"
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//excessmort//release calendar//EN",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        f"X-WR-CALNAME:{_ics_escape('Release calendar: ' + title)}",
    ]
    if london:
        lines += _LONDON_VTIMEZONE
    for e in entries:
        if london:
            start = f"DTSTART;TZID=Europe/London:{e.slot:%Y%m%dT%H%M%S}"
            end = f"DTEND;TZID=Europe/London:{e.slot + timedelta(minutes=30):%Y%m%dT%H%M%S}"
        else:  # any other zone: state the instant in UTC (always valid, no VTIMEZONE needed)
            start = f"DTSTART:{e.slot_utc:%Y%m%dT%H%M%SZ}"
            end = f"DTEND:{e.slot_utc + timedelta(minutes=30):%Y%m%dT%H%M%SZ}"
        description = f"Scheduled release of {title} for {e.month} at {e.slot:%H:%M %Z}."
        lines += [
            "BEGIN:VEVENT",
            f"UID:{slug}-{e.month}@{uid_domain}",
            f"DTSTAMP:{stamp}",
            start,
            end,
            f"SUMMARY:{_ics_escape(title + ' (' + e.month + ')')}",
            f"DESCRIPTION:{_ics_escape(description)}",
        ]
        if url:
            lines.append(f"URL:{url}")
        lines += ["TRANSP:TRANSPARENT", "END:VEVENT"]
    lines.append("END:VCALENDAR")
    folded = [part for line in lines for part in _ics_fold(line)]
    return "\r\n".join(folded) + "\r\n"


def format_calendar(
    entries: Sequence[CalendarEntry],
    fmt: CalendarFormat = "text",
    *,
    rule: ReleaseRule = DEFAULT_RULE,
    title: str = "Excess mortality in English regions",
    url: str = "",
    dtstamp: datetime | None = None,
    uid_domain: str = "excessmort.example.org",
) -> str:
    """Render the calendar as plain text, CSV or an RFC 5545 iCalendar file.

    Parameters
    ----------
    entries : sequence of CalendarEntry
        From :func:`calendar`.
    fmt : {"text", "csv", "ics"}
        Output format.
    rule : ReleaseRule
        The rule the entries were made with (named in the text and CSV).
    title, url : str
        The output's title and link.
    dtstamp : datetime, optional
        ICS ``DTSTAMP`` (default now); fix it for reproducible files.
    uid_domain : str
        Right-hand side of each event's ``UID``.

    Returns
    -------
    str
        ICS uses CRLF line ends; text and CSV use LF.

    Raises
    ------
    InputError
        On an unknown format.
    """
    if fmt == "text":
        return _format_text(entries, rule, title)
    if fmt == "csv":
        return _format_csv(entries, rule)
    if fmt == "ics":
        return _format_ics(entries, rule, title, url, dtstamp or datetime.now(UTC), uid_domain)
    raise InputError(
        f"format must be one of 'text', 'csv', 'ics', got {fmt!r}", column="format", value=fmt
    )
