"""Calendar terms of the producer's pooled model, each the mean over the seven days of a week.

A registration week runs Saturday to Friday and is named by the Friday it ends on; more generally a
week ending on date d holds the days d - 6 .. d. Every term is a daily value averaged over those
seven days (DESIGN.md "The pooled baseline"):

- ``trend``: (day - 2016-12-31 in days) / 365.25 (years).
- ``seasonality``: twelve month weights. A day with day-of-month m gives its own month the weight
  (14 + m)/30 and the previous month (16 - m)/30 when m <= 16; its own month (46 - m)/30 and the
  next month (m - 16)/30 when m >= 17 (the weights of a day sum to 1, so the twelve weekly columns
  sum to 1 and are collinear with an intercept).
- ``holidays``: eight 0/1 indicators of registration effects around England and Wales bank
  holidays (see :func:`holiday_indicators`).

These functions take a DatetimeIndex of week-ending dates [T] and return a ``([T, k] float64 array,
names)`` pair; the per-series baseline (``QuasiPoisson(holidays=True)``) uses
:func:`holiday_indicators` too, so their signatures are stable.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._typing import FloatArray
from .weeks import bank_holidays

__all__ = [
    "HOLIDAY_NAMES",
    "LATER_HOLIDAY_NAMES",
    "MONTH_NAMES",
    "TREND_ORIGIN",
    "holiday_indicators",
    "later_holiday_indicators",
    "month_weights",
    "registration_days",
    "registration_holidays",
    "trend_term",
]

#: Day zero of the producer's trend (years from 31 December 2016).
TREND_ORIGIN = pd.Timestamp("2016-12-31")

#: Names of the twelve month-weight columns, January first.
MONTH_NAMES: tuple[str, ...] = tuple(f"month{m}" for m in range(1, 13))

#: Names of the eight holiday indicators, in column order.
HOLIDAY_NAMES: tuple[str, ...] = (
    "easter_pre",
    "easter_post_1",
    "easter_post_2",
    "bh_nearest",
    "bh_next_nearest",
    "xmas_sat_to_mon",
    "xmas_sat_to_mon_post_1",
    "xmas_sat_to_mon_post_2",
)


def _week_days(weeks: pd.DatetimeIndex) -> np.ndarray:
    """The seven days of every week as int64 day numbers since 1970-01-01: [T, 7]."""
    ends = pd.DatetimeIndex(weeks).normalize().values.astype("datetime64[D]").astype(np.int64)
    return ends[:, None] + np.arange(-6, 1, dtype=np.int64)[None, :]


def _as_weeks(weeks: object) -> pd.DatetimeIndex:
    idx = pd.DatetimeIndex(pd.to_datetime(weeks))  # type: ignore[arg-type]
    if idx.hasnans:
        raise ValueError("week-ending dates must not be missing")
    return idx


def trend_term(weeks: pd.DatetimeIndex) -> tuple[FloatArray, tuple[str, ...]]:
    """The producer's linear trend: mean over the week's days of (day - 2016-12-31) / 365.25.

    Parameters
    ----------
    weeks : DatetimeIndex
        Week-ending dates [T]; the week ending on d holds the days d - 6 .. d.

    Returns
    -------
    values : ndarray [T, 1]
    names : tuple of str
        ``("trend",)``.

    Examples
    --------
    >>> x, names = trend_term(pd.DatetimeIndex(["2017-01-06"]))  # days 2016-12-31 .. 2017-01-06
    >>> names, round(float(x[0, 0]) * 365.25, 12)
    (('trend',), 3.0)
    """
    days = _week_days(_as_weeks(weeks))
    origin = np.datetime64(TREND_ORIGIN.date(), "D").astype(np.int64)
    values = ((days - origin).astype(np.float64) / 365.25).mean(axis=1)
    return np.ascontiguousarray(values[:, None]), ("trend",)


def month_weights(weeks: pd.DatetimeIndex) -> tuple[FloatArray, tuple[str, ...]]:
    """Twelve month weights: the mean over the week's days of each day's weights on the months.

    A day with day-of-month m weighs its own month (14 + m)/30 and the previous month (16 - m)/30
    when m <= 16, its own month (46 - m)/30 and the next month (m - 16)/30 when m >= 17.

    Parameters
    ----------
    weeks : DatetimeIndex
        Week-ending dates [T].

    Returns
    -------
    values : ndarray [T, 12]
        Columns January..December; every row sums to 1.
    names : tuple of str
        ``("month1", ..., "month12")``.

    Examples
    --------
    >>> x, names = month_weights(pd.DatetimeIndex(["2020-01-17"]))  # 11..17 January
    >>> np.round(x[0, [0, 1, 11]] * 30 * 7, 10).tolist()   # Jan, Feb, Dec (x 210)
    [194.0, 1.0, 15.0]
    """
    days = _week_days(_as_weeks(weeks))
    dates = pd.DatetimeIndex(days.ravel().astype("datetime64[D]"))
    dom = dates.day.to_numpy().astype(np.float64)
    month = dates.month.to_numpy().astype(np.int64) - 1  # 0..11
    early = dom <= 16
    own = np.where(early, (14.0 + dom) / 30.0, (46.0 - dom) / 30.0)
    other = np.where(early, (16.0 - dom) / 30.0, (dom - 16.0) / 30.0)
    other_month = np.where(early, (month - 1) % 12, (month + 1) % 12)
    daily = np.zeros((days.size, 12))
    rows = np.arange(days.size)
    daily[rows, month] += own
    daily[rows, other_month] += other
    values = daily.reshape(days.shape[0], 7, 12).mean(axis=1)
    return np.ascontiguousarray(values), MONTH_NAMES


def registration_holidays(
    first_year: int, last_year: int, country: str = "GB-ENG"
) -> pd.DatetimeIndex:
    """England and Wales bank holidays: the days register offices close, first_year..last_year.

    From the ``holidays`` package (``GB``, subdivision ``ENG``), keeping only Monday to Friday: the
    package lists a holiday that falls at a weekend on the weekend day itself and again on its
    substitute weekday ("Boxing Day" on Saturday 26 December 2020 and "Boxing Day (observed)" on
    Monday 28 December); offices close on the substitute, so the weekend entries are dropped.

    Parameters
    ----------
    first_year, last_year : int
        Calendar years, inclusive.

    Returns
    -------
    DatetimeIndex
        Sorted, unique weekday bank holidays.

    Examples
    --------
    >>> bh = registration_holidays(2020, 2020)
    >>> [d.strftime("%a %d %b") for d in bh[-2:]]
    ['Fri 25 Dec', 'Mon 28 Dec']
    """
    days = bank_holidays(first_year, last_year, country)
    return days[days.day_of_week < 5].unique().sort_values()


def holiday_indicators(
    weeks: pd.DatetimeIndex, country: str = "GB-ENG"
) -> tuple[FloatArray, tuple[str, ...]]:
    """The eight registration-effect indicators of the producer's model, one row per week.

    Bank holidays are :func:`registration_holidays` (weekday closures of register offices). An
    "Easter-type Friday" F is a bank holiday three days before another bank holiday (Good Friday,
    and a Christmas Day on a Friday, followed by a Monday holiday):

    - ``easter_pre``: the week holds F - 1 (the Thursday before);
    - ``easter_post_1``: the week holds F + 4 (the Tuesday after Easter Monday);
    - ``easter_post_2``: the week holds F + 10 (the Monday after that).

    Of the other bank holidays (all but each F and the holiday three days after it) outside
    December, on a Friday B or a Monday M:

    - ``bh_nearest``: the week holds B - 1 or M + 1 (the nearest working day);
    - ``bh_next_nearest``: the week holds M - 3 or B + 3 (the next-nearest).

    When 25 December falls on a Saturday, Sunday or Monday: ``xmas_sat_to_mon`` for the week
    holding it, ``xmas_sat_to_mon_post_1`` and ``xmas_sat_to_mon_post_2`` for the two weeks after.

    Parameters
    ----------
    weeks : DatetimeIndex
        Week-ending dates [T]; the week ending on d holds the days d - 6 .. d.

    Returns
    -------
    values : ndarray [T, 8] of 0.0 / 1.0
    names : tuple of str
        :data:`HOLIDAY_NAMES`.

    Examples
    --------
    >>> weeks = pd.date_range("2020-04-03", "2020-05-15", freq="7D")
    >>> x, names = holiday_indicators(weeks)
    >>> {n: [str(d.date()) for d in weeks[x[:, k] == 1]] for k, n in enumerate(names[:5])}
    ... # doctest: +NORMALIZE_WHITESPACE
    {'easter_pre': ['2020-04-10'], 'easter_post_1': ['2020-04-17'], 'easter_post_2': ['2020-04-24'],
     'bh_nearest': ['2020-05-08'], 'bh_next_nearest': ['2020-05-15']}
    """
    weeks = _as_weeks(weeks)
    n_weeks = len(weeks)
    out = np.zeros((n_weeks, len(HOLIDAY_NAMES)))
    if n_weeks == 0:
        return out, HOLIDAY_NAMES
    days = _week_days(weeks)
    first = pd.Timestamp(days.min().astype("datetime64[D]")).year - 1
    last = pd.Timestamp(days.max().astype("datetime64[D]")).year + 1
    bh = registration_holidays(first, last, country)
    bh_days = bh.values.astype("datetime64[D]").astype(np.int64)
    bh_set = set(bh_days.tolist())

    fridays = np.array([d for d in bh_days if d + 3 in bh_set], dtype=np.int64)  # Easter-type F
    pair = set(fridays.tolist()) | set((fridays + 3).tolist())
    other = np.array([d for d in bh_days if d not in pair], dtype=np.int64)
    other_idx = pd.DatetimeIndex(other.astype("datetime64[D]"))
    outside_dec = other_idx.month != 12
    b = other[outside_dec & (other_idx.day_of_week == 4)]  # Friday
    m = other[outside_dec & (other_idx.day_of_week == 0)]  # Monday

    christmases = pd.DatetimeIndex([pd.Timestamp(y, 12, 25) for y in range(first, last + 1)])
    xmas = christmases[christmases.day_of_week.isin([5, 6, 0])]  # Saturday, Sunday, Monday
    x = xmas.values.astype("datetime64[D]").astype(np.int64)

    day_sets = (
        fridays - 1,
        fridays + 4,
        fridays + 10,
        np.concatenate([b - 1, m + 1]),
        np.concatenate([m - 3, b + 3]),
        x,
        x + 7,
        x + 14,
    )
    for k, marked in enumerate(day_sets):
        out[:, k] = np.isin(days, marked).any(axis=1)
    return np.ascontiguousarray(out), HOLIDAY_NAMES


#: Names of the producer's later calendar terms (one column each).
LATER_HOLIDAY_NAMES: tuple[str, ...] = (
    "consecutive_bh",
    "xmas_tue_to_thu_post_1",
    "xmas_tue_to_thu_post_2",
)


def registration_days(weeks: pd.DatetimeIndex) -> FloatArray:
    """Days register offices are open in each week: Monday to Friday less the England and Wales
    bank holidays (:func:`registration_holidays`) among the week's seven days.

    The producer's offset (ukhsa-collaboration/excess-deaths, ``remove_we_bh_denominators``) sets
    the daily population to zero on weekends and bank holidays before summing it to the week; with
    a population constant within the week that is population x registration days.

    Parameters
    ----------
    weeks : DatetimeIndex
        Week-ending dates [T].

    Returns
    -------
    ndarray [T] of float

    Examples
    --------
    >>> weeks = pd.DatetimeIndex(["2020-04-10", "2020-04-17", "2020-12-25", "2021-01-01"])
    >>> registration_days(weeks).tolist()  # Good Friday; Easter Monday; 25 Dec; 28 Dec and 1 Jan
    [4.0, 4.0, 4.0, 3.0]
    """
    weeks = _as_weeks(weeks)
    if len(weeks) == 0:
        return np.zeros(0)
    days = _week_days(weeks)
    first = pd.Timestamp(days.min().astype("datetime64[D]")).year
    last = pd.Timestamp(days.max().astype("datetime64[D]")).year
    bh = registration_holidays(first, last).values.astype("datetime64[D]").astype(np.int64)
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday: 0 = Monday
    open_ = (weekday < 5) & ~np.isin(days, bh)
    return open_.sum(axis=1).astype(np.float64)


def later_holiday_indicators(weeks: pd.DatetimeIndex) -> tuple[FloatArray, tuple[str, ...]]:
    """The producer's later registration terms, one row per week:

    - ``consecutive_bh``: the week holds a bank holiday d, not a Monday, followed by another on
      d + 1 (Christmas on a Tuesday to Thursday with Boxing Day; the 2022 Platinum Jubilee
      Thursday and Friday);
    - ``xmas_tue_to_thu_post_1`` / ``_post_2``: the week ending 7 / 14 days after a
      ``consecutive_bh`` week, when that week ends in December or January (the two weeks after
      such a Christmas).

    Parameters
    ----------
    weeks : DatetimeIndex
        Week-ending dates [T]; the week ending on d holds the days d - 6 .. d.

    Returns
    -------
    values : ndarray [T, 3] of 0.0 / 1.0
    names : tuple of str
        :data:`LATER_HOLIDAY_NAMES`.

    Examples
    --------
    >>> w = pd.DatetimeIndex(["2022-06-03", "2024-12-27", "2025-01-03", "2025-01-10"])
    >>> later_holiday_indicators(w)[0].tolist()
    [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    """
    weeks = _as_weeks(weeks)
    n_weeks = len(weeks)
    out = np.zeros((n_weeks, len(LATER_HOLIDAY_NAMES)))
    if n_weeks == 0:
        return out, LATER_HOLIDAY_NAMES
    days = _week_days(weeks)
    first = pd.Timestamp(days.min().astype("datetime64[D]")).year - 1
    last = pd.Timestamp(days.max().astype("datetime64[D]")).year + 1
    bh = registration_holidays(first, last).values.astype("datetime64[D]").astype(np.int64)
    pair_start = bh[np.isin(bh + 1, bh) & ((bh + 3) % 7 != 0)]  # d and d + 1, d not a Monday
    marked = np.isin(days, pair_start).any(axis=1)
    ends = days[:, -1]
    marked_ends = ends[marked]
    month = pd.DatetimeIndex(weeks).month.to_numpy()
    winter = np.isin(month, (1, 12))
    out[:, 0] = marked
    out[:, 1] = np.isin(ends - 7, marked_ends) & winter
    out[:, 2] = np.isin(ends - 14, marked_ends) & winter
    return np.ascontiguousarray(out), LATER_HOLIDAY_NAMES
