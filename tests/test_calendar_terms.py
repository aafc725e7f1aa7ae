"""Calendar terms of the pooled baseline against day-by-day closed forms and a hand-checked list."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from excessmort.calendar_terms import (
    HOLIDAY_NAMES,
    holiday_indicators,
    month_weights,
    registration_holidays,
    trend_term,
)

WEEKS = pd.date_range("2014-12-26", "2022-01-14", freq="7D")  # Fridays


def _days(week_end: pd.Timestamp) -> list[dt.date]:
    end = week_end.date()
    return [end - dt.timedelta(days=k) for k in range(6, -1, -1)]


def test_trend_day_by_day() -> None:
    x, names = trend_term(WEEKS)
    assert names == ("trend",)
    assert x.shape == (len(WEEKS), 1)
    origin = dt.date(2016, 12, 31)
    expected = [sum((d - origin).days / 365.25 for d in _days(w)) / 7 for w in WEEKS]
    np.testing.assert_allclose(x[:, 0], expected, rtol=1e-12, atol=1e-14)
    # the week Saturday 31 December 2016 .. Friday 6 January 2017 has mean day 3
    assert x[WEEKS.get_loc(pd.Timestamp("2017-01-06")), 0] == pytest.approx(3 / 365.25, rel=1e-12)


def _day_weights(d: dt.date) -> np.ndarray:
    w = np.zeros(12)
    m, month = d.day, d.month - 1
    if m <= 16:
        w[month] += (14 + m) / 30
        w[(month - 1) % 12] += (16 - m) / 30
    else:
        w[month] += (46 - m) / 30
        w[(month + 1) % 12] += (m - 16) / 30
    return w


def test_month_weights_day_by_day() -> None:
    x, names = month_weights(WEEKS)
    assert names == tuple(f"month{m}" for m in range(1, 13))
    expected = np.array([np.mean([_day_weights(d) for d in _days(w)], axis=0) for w in WEEKS])
    np.testing.assert_allclose(x, expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(x.sum(axis=1), 1.0, rtol=1e-12)
    # 11..17 January 2020: January 194/210, February 1/210, December 15/210
    row = x[WEEKS.get_loc(pd.Timestamp("2020-01-17"))]
    np.testing.assert_allclose(row[[0, 1, 11]], np.array([194, 1, 15]) / 210, rtol=1e-12)
    assert np.count_nonzero(row) == 3


def test_registration_holidays_drop_weekend_entries() -> None:
    bh = registration_holidays(2020, 2021)
    assert (bh.day_of_week < 5).all()
    assert (
        pd.Timestamp("2020-12-26") not in bh
    )  # Boxing Day on a Saturday: substitute Monday instead
    assert pd.Timestamp("2020-12-28") in bh
    assert pd.Timestamp("2020-05-08") in bh  # VE Day
    assert pd.Timestamp("2020-05-04") not in bh
    assert {pd.Timestamp("2021-12-27"), pd.Timestamp("2021-12-28")} <= set(bh)
    assert pd.Timestamp("2021-12-25") not in bh


# Hand-checked against a calendar: the week (ending Friday) holding each marked day.
HAND_CHECKED: dict[str, list[str]] = {
    # Good Fridays 3 Apr 2015, 25 Mar 2016, 14 Apr 2017, 30 Mar 2018, 19 Apr 2019, 10 Apr 2020,
    # 2 Apr 2021, and Christmas Day on a Friday (2015, 2020): F - 1 lies in the week ending F.
    "easter_pre": [
        "2015-04-03",
        "2015-12-25",
        "2016-03-25",
        "2017-04-14",
        "2018-03-30",
        "2019-04-19",
        "2020-04-10",
        "2020-12-25",
        "2021-04-02",
    ],
    # F + 4 (the Tuesday after the Monday holiday): the week ending F + 7
    "easter_post_1": [
        "2015-04-10",
        "2016-01-01",
        "2016-04-01",
        "2017-04-21",
        "2018-04-06",
        "2019-04-26",
        "2020-04-17",
        "2021-01-01",
        "2021-04-09",
    ],
    # F + 10 (the Monday after that): the week ending F + 14
    "easter_post_2": [
        "2015-04-17",
        "2016-01-08",
        "2016-04-08",
        "2017-04-28",
        "2018-04-13",
        "2019-05-03",
        "2020-04-24",
        "2021-01-08",
        "2021-04-16",
    ],
    # Monday holidays M: M + 1; Friday holidays B (New Year 2016, 2021, VE Day 2020): B - 1.
    # Not marked: New Year on Thu 2015, Tue 2019, Wed 2020.
    "bh_nearest": [
        "2015-05-08",
        "2015-05-29",
        "2015-09-04",
        "2016-01-01",
        "2016-05-06",
        "2016-06-03",
        "2016-09-02",
        "2017-01-06",
        "2017-05-05",
        "2017-06-02",
        "2017-09-01",
        "2018-01-05",
        "2018-05-11",
        "2018-06-01",
        "2018-08-31",
        "2019-05-10",
        "2019-05-31",
        "2019-08-30",
        "2020-05-08",
        "2020-05-29",
        "2020-09-04",
        "2021-01-01",
        "2021-05-07",
        "2021-06-04",
        "2021-09-03",
        "2022-01-07",
    ],  # Monday 3 January 2022 (New Year substitute)
    # M - 3 (the Friday before), B + 3 (the Monday after)
    "bh_next_nearest": [
        "2015-05-01",
        "2015-05-22",
        "2015-08-28",
        "2016-01-08",
        "2016-04-29",
        "2016-05-27",
        "2016-08-26",
        "2016-12-30",  # Monday 2 January 2017
        "2017-04-28",
        "2017-05-26",
        "2017-08-25",
        "2017-12-29",  # Monday 1 January 2018
        "2018-05-04",
        "2018-05-25",
        "2018-08-24",
        "2019-05-03",
        "2019-05-24",
        "2019-08-23",
        "2020-05-15",
        "2020-05-22",
        "2020-08-28",
        "2021-01-08",
        "2021-04-30",
        "2021-05-28",
        "2021-08-27",
        "2021-12-31",
    ],  # Monday 3 January 2022
    # 25 December on Sun 2016, Mon 2017, Sat 2021
    "xmas_sat_to_mon": ["2016-12-30", "2017-12-29", "2021-12-31"],
    "xmas_sat_to_mon_post_1": ["2017-01-06", "2018-01-05", "2022-01-07"],
    "xmas_sat_to_mon_post_2": ["2017-01-13", "2018-01-12", "2022-01-14"],
}


def test_holiday_indicators_hand_checked() -> None:
    x, names = holiday_indicators(WEEKS)
    assert names == HOLIDAY_NAMES
    assert set(np.unique(x)) <= {0.0, 1.0}
    for k, name in enumerate(names):
        got = [str(d.date()) for d in WEEKS[x[:, k] == 1.0]]
        assert got == HAND_CHECKED[name], name


def test_holiday_indicators_named_examples() -> None:
    x, names = holiday_indicators(WEEKS)
    col = {n: x[:, k] for k, n in enumerate(names)}

    def at(day: str) -> int:
        return WEEKS.get_loc(pd.Timestamp(day))

    # Easter 2020: Good Friday 10 April
    assert col["easter_pre"][at("2020-04-10")] == 1
    assert col["easter_post_1"][at("2020-04-17")] == 1
    assert col["easter_post_2"][at("2020-04-24")] == 1
    # VE Day Friday 8 May 2020: Thursday 7 May is the nearest working day, not Mon 4 May
    assert col["bh_nearest"][at("2020-05-08")] == 1
    assert col["bh_next_nearest"][at("2020-05-15")] == 1
    assert col["bh_next_nearest"][at("2020-05-01")] == 0
    # Christmas 2021 on a Saturday
    assert col["xmas_sat_to_mon"][at("2021-12-31")] == 1


def test_terms_accept_any_weekday_and_empty() -> None:
    x, _ = holiday_indicators(pd.DatetimeIndex([]))
    assert x.shape == (0, 8)
    # a week ending on a Sunday holds Monday..Sunday
    t, _ = trend_term(pd.DatetimeIndex(["2017-01-08"]))
    assert t[0, 0] == pytest.approx(5 / 365.25, rel=1e-12)
