"""Periods as analysts say them: one parser for every accessor of a fit and for the CLI.

A period is a set of weeks of the fit's calendar, chosen by their week-ending dates:

- a year: ``2020``, ``"2020"`` or ``year=2020``. For weeks ending on a Friday (ONS registration
  weeks, Saturday to Friday) the year is the ONS registration year: week 1 is the week whose Friday
  is in ISO week 1, so 2020 runs from the week ending 3 January 2020 to the week ending 1 January
  2021 (53 weeks). For other weekdays it is the ISO year of the week-ending date (for weeks ending
  on Sunday, the ISO week itself). ``calendar="calendar"`` asks for the weeks ending in the
  calendar year instead (1 January to 31 December);
- weeks of a year: ``year=2020, weeks=(1, 53)`` (inclusive), or ``"2020-W05"``;
- a month or a quarter: ``"2020-04"``, ``"2020Q2"`` (also ``"2020-Q2"``, ``pandas.Period``). A week
  belongs to the month (quarter) of its last day, its week-ending date;
- plain dates: ``"2020-03-01"``, a ``date`` or ``Timestamp``: the weeks ending on or after a start
  date, on or before an end date.

``start`` and ``end`` may each be any of these: the period runs from the first week of ``start``
to the last week of ``end`` (``("2021-01", "2021-04")`` is January to April 2021). A single
``start`` that is a year, month, quarter or week means that period alone; a single date means
from that date to the last week of the data.

A period must lie inside the data: one holding no week of the calendar, or one that reaches past
the first or the last week of the data, is an :class:`~excessmort.exceptions.InputError` naming the
period's weeks and the data's (never an ``IndexError``, never a silently shorter period).

Examples
--------
>>> import pandas as pd
>>> weeks = pd.date_range("2015-01-02", "2021-04-30", freq="7D")
>>> p = resolve_period(weeks, 2020)
>>> p.label, p.n_weeks, str(p.first.date()), str(p.last.date())
('2020 (ONS registration year)', 53, '2020-01-03', '2021-01-01')
>>> resolve_period(weeks, "2021-01", "2021-04").n_weeks  # the week ending 1 January is January's
18
>>> resolve_period(weeks, "2020Q2").label
'2020Q2'
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from .exceptions import InputError

__all__ = [
    "Period",
    "parse_month",
    "parse_year",
    "period_bounds",
    "period_kind",
    "period_table",
    "resolve_period",
    "week_calendar",
    "week_columns",
]

Calendar = Literal["auto", "ons", "iso", "calendar"]
_CALENDARS = ("auto", "ons", "iso", "calendar")
_FREQS = ("week", "month", "quarter", "year")


@dataclass(frozen=True)
class Period:
    """A resolved period: the weeks of a calendar it holds and how it was asked for.

    Attributes
    ----------
    mask : ndarray of bool [T]
        The weeks of the calendar in the period.
    first, last : Timestamp
        The first and last week-ending dates in the period.
    label : str
        How the period reads in output (``"2020 (ONS registration year)"``, ``"2020-04"``,
        ``"2020-03-01 to 2020-12-31"``).
    lo, hi : Timestamp
        The bounds on week-ending dates the period stands for.
    """

    mask: np.ndarray
    first: pd.Timestamp
    last: pd.Timestamp
    label: str
    lo: pd.Timestamp
    hi: pd.Timestamp

    @property
    def n_weeks(self) -> int:
        """The number of weeks in the period."""
        return int(self.mask.sum())


def week_calendar(weeks: pd.DatetimeIndex) -> str:
    """``"ons"`` when the weeks end on a Friday (ONS registration weeks), else ``"iso"``.

    Examples
    --------
    >>> week_calendar(pd.date_range("2020-01-03", periods=3, freq="7D"))
    'ons'
    >>> week_calendar(pd.date_range("2020-01-05", periods=3, freq="7D"))
    'iso'
    """
    if len(weeks) and int(pd.Timestamp(weeks[0]).day_of_week) == 4:
        return "ons"
    return "iso"


def _calendar(weeks: pd.DatetimeIndex, calendar: str) -> str:
    if calendar not in _CALENDARS:
        raise InputError(
            f"calendar must be one of {list(_CALENDARS)}, got {calendar!r}",
            column="calendar",
            value=calendar,
        )
    return week_calendar(weeks) if calendar == "auto" else calendar


def _year_name(cal: str) -> str:
    return {"ons": "ONS registration year", "iso": "ISO year", "calendar": "calendar year"}[cal]


def _iso_year_bounds(year: int) -> tuple[pd.Timestamp, pd.Timestamp]:
    last_week = dt.date(year, 12, 28).isocalendar()[1]
    return (
        pd.Timestamp(dt.date.fromisocalendar(year, 1, 1)),
        pd.Timestamp(dt.date.fromisocalendar(year, last_week, 7)),
    )


def _year_bounds(year: int, cal: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    if cal == "calendar":
        return pd.Timestamp(year, 1, 1), pd.Timestamp(year, 12, 31)
    return _iso_year_bounds(year)


def _week_bounds(year: int, first: int, last: int) -> tuple[pd.Timestamp, pd.Timestamp]:
    n_weeks = dt.date(year, 12, 28).isocalendar()[1]
    for w in (first, last):
        if isinstance(w, bool) or not isinstance(w, int | np.integer) or not 1 <= w <= n_weeks:
            raise InputError(
                f"week {w!r} is not a week of {year}, which has weeks 1 to {n_weeks}",
                column="weeks",
                value=w,
            )
    if last < first:
        raise InputError(
            f"weeks=({first}, {last}): the last week is before the first",
            column="weeks",
            value=(first, last),
        )
    return (
        pd.Timestamp(dt.date.fromisocalendar(year, int(first), 1)),
        pd.Timestamp(dt.date.fromisocalendar(year, int(last), 7)),
    )


_YEAR = re.compile(r"^\s*(\d{4})\s*$")
_MONTH = re.compile(r"^\s*(\d{4})-(\d{1,2})\s*$")
_QUARTER = re.compile(r"^\s*(\d{4})\s*-?\s*[Qq]([1-4])\s*$|^\s*[Qq]([1-4])\s*-?\s*(\d{4})\s*$")
_WEEK = re.compile(r"^\s*(\d{4})\s*-?\s*W(\d{1,2})\s*$", re.IGNORECASE)


def period_bounds(
    value: Any, *, calendar: str = "ons"
) -> tuple[pd.Timestamp, pd.Timestamp, str, bool]:
    """Bounds on week-ending dates of one period-like value: (lo, hi, label, is_date).

    ``is_date`` is True for a plain date (lo == hi), whose meaning depends on whether it starts or
    ends a period.

    Raises
    ------
    InputError
        For a value that is not a year, week, month, quarter or date.

    Examples
    --------
    >>> lo, hi, label, _ = period_bounds("2020-02")
    >>> str(lo.date()), str(hi.date()), label
    ('2020-02-01', '2020-02-29', '2020-02')
    """
    if isinstance(value, Period):
        return value.lo, value.hi, value.label, False
    if isinstance(value, pd.Period):
        lo, hi = value.start_time.normalize(), value.end_time.normalize()
        return lo, hi, str(value), False
    if isinstance(value, bool):
        raise InputError(f"{value!r} is not a period", column="period", value=value)
    if isinstance(value, int | np.integer):
        lo, hi = _year_bounds(int(value), calendar)
        return lo, hi, f"{int(value)} ({_year_name(calendar)})", False
    if isinstance(value, str):
        if m := _YEAR.match(value):
            return period_bounds(int(m.group(1)), calendar=calendar)
        if m := _MONTH.match(value):
            year, month = int(m.group(1)), int(m.group(2))
            if not 1 <= month <= 12:
                raise InputError(
                    f"{value!r} is not a month: the month must be 1 to 12",
                    column="period",
                    value=value,
                )
            p = pd.Period(year=year, month=month, freq="M")
            return p.start_time.normalize(), p.end_time.normalize(), f"{year}-{month:02d}", False
        if m := _QUARTER.match(value):
            year = int(m.group(1) or m.group(4))
            q = int(m.group(2) or m.group(3))
            p = pd.Period(year=year, quarter=q, freq="Q")
            return p.start_time.normalize(), p.end_time.normalize(), f"{year}Q{q}", False
        if m := _WEEK.match(value):
            year, week = int(m.group(1)), int(m.group(2))
            lo, hi = _week_bounds(year, week, week)
            return lo, hi, f"{year} week {week}", False
    not_period = InputError(
        f"{value!r} is not a period: give a year (2020), a month ('2020-04'), a quarter "
        "('2020Q2'), a week ('2020-W05') or a date ('2020-03-01')",
        column="period",
        value=value,
    )
    if isinstance(value, str) and not re.search(r"\d{4}", value):
        raise not_period  # 'April' or 'soon' would otherwise be read as a day of this year
    try:
        ts = pd.Timestamp(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise not_period from exc
    if pd.isna(ts):
        raise InputError(f"{value!r} is not a period", column="period", value=value)
    ts = ts.normalize()
    return ts, ts, str(ts.date()), True


def period_kind(value: Any) -> str:
    """What a period-like value is: ``"year"``, ``"month"``, ``"quarter"``, ``"week"`` or ``"date"``.

    Raises
    ------
    InputError
        For a value that is not a period (as :func:`period_bounds`).

    Examples
    --------
    >>> [period_kind(v) for v in (2020, "2020-04", "2020Q2", "2020-W05", "2020-03-01")]
    ['year', 'month', 'quarter', 'week', 'date']
    """
    if isinstance(value, Period):
        return "period"
    if isinstance(value, pd.Period):
        base = str(value.freqstr).upper()
        for prefix, kind in (("M", "month"), ("Q", "quarter"), ("Y", "year"), ("A", "year")):
            if base.startswith(prefix):
                return kind
        return "week" if base.startswith("W") else "date"
    _, _, label, is_date = period_bounds(value)
    if is_date:
        return "date"
    if label.endswith(")"):
        return "year"
    if "Q" in label:
        return "quarter"
    return "week" if "week" in label else "month"


_KIND_ARTICLE = {
    "year": "a year",
    "month": "a month",
    "quarter": "a quarter",
    "week": "a week",
    "date": "a date",
}


def parse_month(value: Any, *, what: str = "month") -> tuple[int, int]:
    """``(year, month)`` of a month given as :func:`resolve_period` takes one.

    The forms are the periods' own: ``"2021-04"`` (also ``"2021-4"``), a monthly
    ``pandas.Period``, ``(2021, 4)``, or a ``date``/``Timestamp`` object (its month). Every command
    line option naming a month (``excessmort run --month``, ``release --month``, ``publish
    --slot``) goes through here.

    Raises
    ------
    InputError
        For a value that is not a month: a bad month number, a year, quarter, week or date
        written as text (the message says which), or text that is not a period.

    Examples
    --------
    >>> parse_month("2021-04"), parse_month("2021-4"), parse_month(pd.Period("2021-04", "M"))
    ((2021, 4), (2021, 4), (2021, 4))
    >>> parse_month("2021Q2")
    Traceback (most recent call last):
    ...
    excessmort.exceptions.InputError: month must be a month such as '2021-04' (YYYY-MM); got '2021Q2', a quarter
    """
    if isinstance(value, tuple):
        try:
            year, mon = (int(v) for v in value)
        except (TypeError, ValueError) as exc:
            raise InputError(
                f"{what} must be a (year, month) pair, got {value!r}", column=what, value=value
            ) from exc
        if not 1 <= mon <= 12:
            raise InputError(
                f"{value!r} is not a month: the month must be 1 to 12", column=what, value=value
            )
        return year, mon
    if isinstance(value, dt.date):  # a date object (also datetime, Timestamp): its month
        return value.year, value.month
    try:
        kind = period_kind(value)
    except InputError as exc:
        if isinstance(value, str) and _MONTH.match(value):
            raise InputError(str(exc), column=what, value=value) from None
        raise InputError(
            f"{what} must be a month such as '2021-04' (YYYY-MM); got {value!r}, which is not a "
            "period",
            column=what,
            value=value,
        ) from None
    if kind != "month":
        raise InputError(
            f"{what} must be a month such as '2021-04' (YYYY-MM); got {value!r}, "
            f"{_KIND_ARTICLE.get(kind, kind)}",
            column=what,
            value=value,
        )
    lo, _, _, _ = period_bounds(value)
    return lo.year, lo.month


def parse_year(value: Any, *, what: str = "year") -> int:
    """A year given as :func:`resolve_period` takes one (``2020``, ``"2020"``).

    Raises
    ------
    InputError
        For anything else, saying what the value is.

    Examples
    --------
    >>> parse_year("2020"), parse_year(2019)
    (2020, 2019)
    """
    try:
        kind = period_kind(value)
    except InputError:
        kind = "not a period"
    if kind == "year" and isinstance(value, pd.Period):
        return int(value.year)
    if kind != "year":
        shown = _KIND_ARTICLE.get(kind, kind)
        raise InputError(
            f"{what} must be a year such as 2020; got {value!r}, {shown}",
            column=what,
            value=value,
        )
    return int(str(value).strip())


def _describe_range(lo: pd.Timestamp, hi: pd.Timestamp) -> str:
    return f"{lo.date()} to {hi.date()}"


def resolve_period(
    weeks: pd.DatetimeIndex,
    start: Any = None,
    end: Any = None,
    *,
    year: int | None = None,
    weeks_of_year: tuple[int, int] | None = None,
    calendar: str = "auto",
    default: tuple[Any, Any] | None = None,
    what: str = "period",
) -> Period:
    """The weeks of ``weeks`` in a period given as analysts say it (see the module docstring).

    Parameters
    ----------
    weeks : DatetimeIndex
        The calendar [T] (week-ending dates, 7 days apart).
    start, end : period-like, optional
        A year, week, month, quarter or date each (or a :class:`Period`).
    year : int, optional
        A year (as ``start=year``); with ``weeks_of_year``, weeks of that year.
    weeks_of_year : (int, int), optional
        First and last week number (inclusive) of ``year``.
    calendar : {"auto", "ons", "iso", "calendar"}
        What a year means: ``auto`` is the ONS registration year for weeks ending on a Friday, the
        ISO year otherwise.
    default : (start, end), optional
        Used for a missing ``start`` / ``end`` (default: the first / last week of the data).
    what : str
        The name of the accessor, for messages.

    Returns
    -------
    Period

    Raises
    ------
    InputError
        For a value that is not a period, an end before the start, a period with no week, or one
        reaching past the data (the message gives both ranges).

    Examples
    --------
    >>> weeks = pd.date_range("2015-01-02", "2021-04-30", freq="7D")
    >>> resolve_period(weeks, year=2021, weeks_of_year=(1, 17)).n_weeks
    17
    >>> resolve_period(weeks, year=2021)
    Traceback (most recent call last):
    ...
    excessmort.exceptions.InputError: period 2021 (ONS registration year) reaches past the data, which run from 2015-01-02 to 2021-04-30: the period holds the weeks ending 2021-01-08 to 2021-12-31, but the data end with the week ending 2021-04-30; ask for a period inside the data (e.g. end='2021-04-30') rather than a shorter one without saying so
    """
    weeks = pd.DatetimeIndex(weeks)
    if len(weeks) == 0:
        raise InputError(f"{what}: the fit has no weeks", column="week_ending")
    cal = _calendar(weeks, calendar)
    if year is not None:
        if start is not None or end is not None:
            raise InputError(
                f"{what}: give either year= or start/end, not both",
                column="year",
                value=year,
            )
        if isinstance(year, bool) or not isinstance(year, int | np.integer):
            try:
                year = int(str(year).strip())
            except ValueError as exc:
                raise InputError(
                    f"year must be a year such as 2020, got {year!r}", column="year", value=year
                ) from exc
        if weeks_of_year is not None:
            try:
                w1, w2 = weeks_of_year
            except (TypeError, ValueError) as exc:
                raise InputError(
                    f"weeks must be a (first, last) pair such as (1, 53), got {weeks_of_year!r}",
                    column="weeks",
                    value=weeks_of_year,
                ) from exc
            if cal == "calendar":
                raise InputError(
                    "weeks=(first, last) numbers ISO or ONS weeks; use calendar='ons' or 'iso'",
                    column="calendar",
                    value=calendar,
                )
            lo, hi = _week_bounds(int(year), w1, w2)
            label = f"{year} weeks {w1}-{w2} ({_year_name(cal)})"
        else:
            lo, hi = _year_bounds(int(year), cal)
            label = f"{int(year)} ({_year_name(cal)})"
        return _make(weeks, lo, hi, label, what)
    if weeks_of_year is not None:
        raise InputError(
            f"{what}: weeks=(first, last) needs year=", column="weeks", value=weeks_of_year
        )
    if isinstance(start, tuple) and len(start) == 2 and end is None:
        start, end = start
    single = start is not None and end is None
    d_start, d_end = default if default is not None else (None, None)
    if start is None:
        start = d_start if d_start is not None else weeks[0]
    if end is None and not single:
        end = d_end if d_end is not None else weeks[-1]
    lo, hi_s, label_s, start_is_date = period_bounds(start, calendar=cal)
    if single:
        if start_is_date:
            end = d_end if d_end is not None else weeks[-1]
        else:
            return _make(weeks, lo, hi_s, label_s, what)
    _, hi, label_e, end_is_date = period_bounds(end, calendar=cal)
    if hi < lo:
        raise InputError(
            f"{what}: end {label_e} is before start {label_s}", column="end", value=end
        )
    label = label_s if label_s == label_e else f"{label_s} to {label_e}"
    if start_is_date and end_is_date:
        label = _describe_range(lo, hi)
    return _make(weeks, lo, hi, label, what)


def _make(
    weeks: pd.DatetimeIndex, lo: pd.Timestamp, hi: pd.Timestamp, label: str, what: str
) -> Period:
    first, last = weeks[0], weeks[-1]
    data = f"the data run from {first.date()} to {last.date()}"
    # The week-ending dates the period holds on the data's weekly grid (whether or not in the data).
    k0 = int(np.ceil((lo - first).days / 7))
    k1 = int(np.floor((hi - first).days / 7))
    if k1 < k0:
        raise InputError(
            f"{what}: no week ends in {label} ({_describe_range(lo, hi)}); {data}, one week ending "
            f"every {first.day_name()}",
            column="week_ending",
            value=label,
        )
    g_lo = first + pd.Timedelta(days=7 * k0)
    g_hi = first + pd.Timedelta(days=7 * k1)
    if g_lo < first or g_hi > last:
        side = (
            f"the data begin with the week ending {first.date()}"
            if g_lo < first
            else f"the data end with the week ending {last.date()}"
        )
        hint = f"start='{first.date()}'" if g_lo < first else f"end='{last.date()}'"
        if g_hi < first or g_lo > last:
            raise InputError(
                f"{what} {label} lies outside the data, which run from {first.date()} to "
                f"{last.date()} (the period holds the weeks ending {_describe_range(g_lo, g_hi)})",
                column="week_ending",
                value=label,
            )
        raise InputError(
            f"{what} {label} reaches past the data, which run from {first.date()} to "
            f"{last.date()}: the period holds the weeks ending {_describe_range(g_lo, g_hi)}, but "
            f"{side}; ask for a period inside the data (e.g. {hint}) rather than a shorter one "
            "without saying so",
            column="week_ending",
            value=label,
        )
    mask = np.asarray((weeks >= lo) & (weeks <= hi), dtype=bool)
    return Period(mask=mask, first=g_lo, last=g_hi, label=label, lo=lo, hi=hi)


def week_columns(weeks: pd.DatetimeIndex | pd.Series) -> dict[str, np.ndarray]:
    """``iso_year``, ``iso_week`` of each week-ending date, and for Friday weeks ONS ``year``/``week``.

    ONS numbers a registration week (Saturday to Friday) by the ISO week of its Friday, so for
    Friday weeks ``year``/``week`` equal ``iso_year``/``iso_week``; both are given so that a table
    says which numbering it uses.

    Examples
    --------
    >>> cols = week_columns(pd.to_datetime(["2021-01-01", "2021-01-08"]))
    >>> {k: v.tolist() for k, v in cols.items()}
    {'iso_year': [2020, 2021], 'iso_week': [53, 1], 'year': [2020, 2021], 'week': [53, 1]}
    """
    idx = pd.DatetimeIndex(weeks)
    iso = idx.isocalendar()
    out = {
        "iso_year": iso["year"].to_numpy(dtype=np.int64),
        "iso_week": iso["week"].to_numpy(dtype=np.int64),
    }
    if len(idx) and bool(np.all(idx.day_of_week == 4)):
        out["year"] = out["iso_year"].copy()
        out["week"] = out["iso_week"].copy()
    return out


def period_table(
    weeks: pd.DatetimeIndex,
    freq: str,
    *,
    calendar: str = "auto",
    within: Period | None = None,
    partial: bool = False,
) -> list[tuple[str, np.ndarray, bool]]:
    """The periods of a frequency in a calendar: [(label, mask [T], complete)].

    ``freq`` is ``"week"``, ``"month"``, ``"quarter"`` or ``"year"``; a week belongs to the period
    of its week-ending date (a year is as in :func:`resolve_period`). Only periods whose every week
    is in the data are listed unless ``partial=True`` (then edge periods are listed too, with
    ``complete=False``). ``within`` restricts the weeks to a period.

    Raises
    ------
    InputError
        For an unknown ``freq``.

    Examples
    --------
    >>> weeks = pd.date_range("2020-01-03", "2020-04-17", freq="7D")  # April lacks the 24th
    >>> [(label, int(m.sum())) for label, m, _ in period_table(weeks, "month")]
    [('2020-01', 5), ('2020-02', 4), ('2020-03', 4)]
    """
    if freq not in _FREQS:
        raise InputError(
            f"freq must be one of {list(_FREQS)}, got {freq!r}", column="freq", value=freq
        )
    weeks = pd.DatetimeIndex(weeks)
    cal = _calendar(weeks, calendar)
    if freq == "week":
        cols = week_columns(weeks)
        keys = [f"{y}-W{w:02d}" for y, w in zip(cols["iso_year"], cols["iso_week"], strict=True)]
    elif freq == "month":
        keys = [f"{d.year}-{d.month:02d}" for d in weeks]
    elif freq == "quarter":
        keys = [f"{d.year}Q{(d.month - 1) // 3 + 1}" for d in weeks]
    elif cal == "calendar":
        keys = [str(d.year) for d in weeks]
    else:
        keys = [str(y) for y in weeks.isocalendar()["year"].to_numpy()]
    keys_arr = np.asarray(keys, dtype=object)
    first, last = weeks[0], weeks[-1]
    out = []
    inside = np.ones(len(weeks), dtype=bool) if within is None else within.mask
    for key in dict.fromkeys(keys_arr[inside]):
        mask = (keys_arr == key) & inside
        if freq == "week":
            complete = True
        else:
            value = int(key) if freq == "year" else key
            lo, hi, _, _ = period_bounds(value, calendar=cal)
            complete = bool(lo > first - pd.Timedelta(days=7) and hi < last + pd.Timedelta(days=7))
            if within is not None:
                complete = complete and bool(np.array_equal(mask, (keys_arr == key)))
        if complete or partial:
            out.append((key, mask, complete))
    return out
