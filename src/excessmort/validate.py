"""Input rules: one function per rule, each refusing bad input with an :class:`InputError`.

Every message names the column, the value and the row (the 0-based position of the row in the
user's input, written like ``row 1,204``) and the series the row belongs to (its strata values and
week), and says what to do. The checks are vectorised: numpy finds the first offending row, and only
then is a message built, so a million-row input costs a few array passes.

The functions work on the *working frame* of :func:`excessmort.read`: the user's columns after
recognition (``week_ending``, ``deaths``, ``population``, strata), indexed by the position of each
row in the user's input. Two rules need the options of a fit and are called by the fit code:
:func:`check_history` (too little history for the baseline asked for) and :func:`check_reference`
(a reference period outside the data).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .exceptions import InputError
from .regions import WALES_CODE, is_england, normalise_region
from .weeks import reference_bounds

__all__ = [
    "REQUIRED_COLUMNS",
    "check_dates",
    "check_deaths",
    "check_duplicates",
    "check_history",
    "check_not_empty",
    "check_population",
    "check_reference",
    "check_regions",
    "check_required_columns",
    "check_strata_values",
    "check_weekly",
    "describe_row",
    "format_row",
]

#: Columns every input must have (after aliases such as ``date`` -> ``week_ending``).
REQUIRED_COLUMNS: tuple[str, ...] = ("week_ending", "deaths")

_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


# ---------------------------------------------------------------------------------------- helpers
def format_row(position: int) -> str:
    """``'row 1,204'``: a row position as the messages write it."""
    return f"row {int(position):,}"


def _fmt_value(value: Any) -> str:
    if isinstance(value, pd.Timestamp | np.datetime64):
        ts = pd.Timestamp(value)
        return "NaT" if pd.isna(ts) else str(ts.date()) if ts == ts.normalize() else str(ts)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str):
        return repr(value)
    return str(value)


def _fmt_cell(value: Any) -> str:
    """A stratum or date value inside the series description (no quotes)."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "<missing>"
    if isinstance(value, pd.Timestamp | np.datetime64):
        return _fmt_value(value)
    return str(value)


def describe_row(frame: pd.DataFrame, label: Any, strata: Sequence[str]) -> str:
    """The series and week of one row of the working frame, e.g. ``region E12000007, week ending
    2021-01-15``.

    Parameters
    ----------
    frame : DataFrame
        The working frame (indexed by the row positions of the user's input).
    label : int
        The index label (= input position) of the row.
    strata : sequence of str
        The stratum columns.
    """
    row = frame.loc[label]
    parts = [f"{col} {_fmt_cell(row[col])}" for col in strata if col in frame.columns]
    if "week_ending" in frame.columns:
        parts.append(f"week ending {_fmt_cell(row['week_ending'])}")
    return ", ".join(parts) if parts else "the only series"


def _raise_at(
    frame: pd.DataFrame,
    strata: Sequence[str],
    pos_in_frame: int,
    column: str,
    value: Any,
    what: str,
    advice: str,
    *,
    shown_column: str | None = None,
) -> None:
    """Raise the InputError for the row at positional index ``pos_in_frame`` of ``frame``."""
    label = frame.index[pos_in_frame]
    shown = shown_column or column
    shown_value = "" if value is None else f" {_fmt_value(value)}"
    message = (
        f"column {shown!r} has {what}{shown_value} at {format_row(label)} "
        f"({describe_row(frame, label, strata)}); {advice}"
    )
    raise InputError(message, column=shown, value=value, row=int(label))


# ---------------------------------------------------------------------------------------- rules
def check_not_empty(frame: pd.DataFrame, *, after: str | None = None) -> None:
    """Refuse an input with no rows (or no columns).

    Parameters
    ----------
    frame : DataFrame
    after : str, optional
        What removed rows before the check (e.g. ``"leaving out Wales"``), to say so.

    Raises
    ------
    InputError
    """
    if len(frame) and len(frame.columns):
        return
    if after:
        message = f"no rows are left after {after}; nothing to read"
    else:
        cols = ", ".join(map(repr, frame.columns)) or "none"
        message = (
            f"the input is empty ({len(frame):,} rows; columns: {cols}); give one row per series "
            "and week with columns 'week_ending' and 'deaths'"
        )
    raise InputError(message, column=None, value=len(frame), row=None)


def check_required_columns(
    frame: pd.DataFrame | Sequence[str],
    required: Sequence[str] = REQUIRED_COLUMNS,
    *,
    present: Sequence[object] | None = None,
) -> None:
    """Refuse an input that lacks ``week_ending`` or ``deaths``; the message lists what is there.

    Parameters
    ----------
    frame : DataFrame or sequence of str
        The frame (or its column names) after aliases are resolved.
    required : sequence of str
    present : sequence, optional
        The column names as the user wrote them, for the message (default: ``frame``'s).

    Raises
    ------
    InputError
    """
    columns = list(frame.columns) if isinstance(frame, pd.DataFrame) else list(frame)
    missing = [c for c in required if c not in columns]
    if not missing:
        return
    shown = columns if present is None else list(present)
    there = ", ".join(repr(str(c)) for c in shown) or "none"
    aliases = {
        "week_ending": "'week_ending' (or 'date', 'week_end', 'week_ending_date')",
        "deaths": "'deaths' (or 'count')",
    }
    wanted = " and ".join(aliases.get(c, repr(c)) for c in missing)
    raise InputError(
        f"missing required column {wanted}; the input has columns {there}",
        column=missing[0],
        value=None,
        row=None,
    )


def check_strata_values(frame: pd.DataFrame, strata: Sequence[str]) -> None:
    """Refuse a missing value in a stratum column (a row must belong to one series).

    Raises
    ------
    InputError
    """
    for col in strata:
        missing = frame[col].isna().to_numpy()
        if missing.any():
            pos = int(np.argmax(missing))
            _raise_at(
                frame,
                strata,
                pos,
                col,
                None,
                "a missing value",
                "every row must name its series: fill the stratum or drop the row",
            )


def check_regions(
    frame: pd.DataFrame,
    strata: Sequence[str],
    *,
    column: str = "region",
    shown_column: str | None = None,
) -> tuple[pd.Categorical, np.ndarray]:
    """Normalise region names and codes to ONS codes; refuse England and unknown regions.

    Parameters
    ----------
    frame : DataFrame
        The working frame with a region column.
    strata : sequence of str
        The stratum columns (for the series description).
    column : str
        The region column of ``frame``.
    shown_column : str, optional
        The column name the user wrote (``'area_code'`` for ONS files).

    Returns
    -------
    codes : Categorical
        ONS codes, one per row (categories in code order).
    is_wales : ndarray of bool
        Rows that are Wales (W92000004); whether they are kept is the caller's decision.

    Raises
    ------
    InputError
        England (E92000001) rows: England is derived as the sum of the regions, never read.
        Unknown regions.
    """
    values = frame[column]
    row_codes, uniques = pd.factorize(values, sort=False)
    mapped: list[str | None] = []
    for value in uniques:
        text = str(value)
        if is_england(text):
            mapped.append("england")
        else:
            mapped.append(normalise_region(text, allow_wales=True))
    for kind in ("england", None):
        bad_unique = [i for i, m in enumerate(mapped) if m == kind]
        if not bad_unique:
            continue
        pos = int(np.argmax(np.isin(row_codes, bad_unique)))
        value = values.iloc[pos]
        if kind == "england":
            _raise_at(
                frame,
                strata,
                pos,
                column,
                value,
                "the England value",
                "England is derived as the sum of the nine regions E12000001..E12000009, never "
                "read: leave its rows out",
                shown_column=shown_column,
            )
        _raise_at(
            frame,
            strata,
            pos,
            column,
            value,
            "an unknown region",
            "regions are the ONS codes E12000001..E12000009 or their names (such as 'London', "
            "'East'); Wales (W92000004) is kept with keep_wales=True",
            shown_column=shown_column,
        )
    codes_per_unique = np.array(mapped, dtype=object)
    categories = sorted(set(mapped))  # type: ignore[type-var]
    cat_index = {c: i for i, c in enumerate(categories)}
    unique_to_cat = np.array([cat_index[c] for c in codes_per_unique], dtype=np.int64)
    cat_codes = unique_to_cat[row_codes] if len(row_codes) else np.zeros(0, dtype=np.int64)
    result = pd.Categorical.from_codes(cat_codes, categories=pd.Index(categories))
    is_wales = (
        np.asarray(result == WALES_CODE, dtype=bool)
        if WALES_CODE in cat_index
        else (np.zeros(len(frame), dtype=bool))
    )
    return result, is_wales


def check_dates(
    frame: pd.DataFrame, strata: Sequence[str], column: str = "week_ending"
) -> pd.Series:
    """Parse ``week_ending``; refuse missing or unparseable dates.

    Returns
    -------
    Series of datetime64[ns]
        The dates at midnight, indexed like ``frame``.

    Raises
    ------
    InputError
    """
    raw = frame[column]
    if isinstance(raw.dtype, np.dtype) and raw.dtype.kind == "M":
        # pandas' cast (not numpy's): it refuses dates outside the nanosecond range, never wraps
        stamps = raw.astype("datetime64[ns]").to_numpy()
        ints = stamps.view(np.int64)
        nat = ints == np.iinfo(np.int64).min
        if not np.any((ints % 86_400_000_000_000 != 0) & ~nat):
            # Already at midnight (the usual case): no parsing, no normalising copy.
            if nat.any():
                _raise_missing_date(frame, strata, column, raw, int(np.argmax(nat)))
            return pd.Series(stamps, index=frame.index, name=column, copy=False)
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        parsed = raw.dt.tz_localize(None)
    elif pd.api.types.is_datetime64_any_dtype(raw.dtype):
        parsed = raw
    elif pd.api.types.is_numeric_dtype(raw.dtype) or pd.api.types.is_bool_dtype(raw.dtype):
        numbers = ~raw.isna().to_numpy()
        if numbers.any():
            pos = int(np.argmax(numbers))
            _raise_at(
                frame,
                strata,
                pos,
                column,
                raw.iloc[pos],
                "a number, not a date,",
                "week_ending must be a date such as 2021-01-15 (the Friday that ends the ONS week)",
            )
        parsed = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns]")
    else:
        text = raw.astype(object)
        parsed = pd.to_datetime(text, errors="coerce", format="ISO8601")
        # Other spellings are read day first (UK: 03/01/2020 is 3 January): one inferred format
        # for the bulk, then element by element. A value that looks ISO but failed stays refused
        # (a day-first retry would read 2024-13-01 as 13 January).
        retry = parsed.isna().to_numpy() & raw.notna().to_numpy()
        if retry.any():
            failed = text[retry].astype(str).str.match(r"\s*\d{4}-\d{1,2}-\d{1,2}")
            retry[np.flatnonzero(retry)[failed.to_numpy(dtype=bool)]] = False
        if retry.any():
            parsed = parsed.copy()
            again = pd.to_datetime(text[retry], errors="coerce", dayfirst=True)
            still = again.isna().to_numpy()
            if still.any():
                again[still] = pd.to_datetime(
                    text[retry][still], errors="coerce", format="mixed", dayfirst=True
                )
            parsed[retry] = again
    parsed = pd.Series(
        pd.DatetimeIndex(parsed).normalize().astype("datetime64[ns]"),
        index=frame.index,
        name=column,
    )
    bad = parsed.isna().to_numpy()
    if bad.any():
        _raise_missing_date(frame, strata, column, raw, int(np.argmax(bad)))
    return parsed


def _raise_missing_date(
    frame: pd.DataFrame, strata: Sequence[str], column: str, raw: pd.Series, pos: int
) -> None:
    value = raw.iloc[pos]
    missing = value is None or (not isinstance(value, str) and pd.isna(value))
    _raise_at(
        frame,
        strata,
        pos,
        column,
        None if missing else value,
        "a missing date" if missing else "an unparseable date",
        "week_ending must be a date such as 2021-01-15 (the Friday that ends the ONS week)",
    )


def _as_float(frame: pd.DataFrame, strata: Sequence[str], column: str, advice: str) -> np.ndarray:
    """A column as float64 (NaN for missing); refuse non-numeric and infinite values."""
    raw = frame[column]
    dtype = raw.dtype
    if pd.api.types.is_bool_dtype(dtype) and len(raw):
        _raise_at(frame, strata, 0, column, raw.iloc[0], "a non-numeric value", advice)
    if pd.api.types.is_numeric_dtype(dtype):
        values = raw.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        numbers = pd.to_numeric(raw.astype(object), errors="coerce")
        values = np.asarray(numbers, dtype=np.float64)
        bad = np.isnan(values) & raw.notna().to_numpy()
        if bad.any():
            pos = int(np.argmax(bad))
            _raise_at(frame, strata, pos, column, raw.iloc[pos], "a non-numeric value", advice)
    infinite = np.isinf(values)
    if infinite.any():
        pos = int(np.argmax(infinite))
        _raise_at(frame, strata, pos, column, float(values[pos]), "a non-numeric value", advice)
    return values


def _plain_integers(values: pd.Series) -> np.ndarray | None:
    """The column's numpy integer array (no missing values possible), or None for other dtypes."""
    dtype = values.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "iu":
        return values.to_numpy()
    return None


def check_deaths(frame: pd.DataFrame, strata: Sequence[str], column: str = "deaths") -> np.ndarray:
    """Refuse negative, fractional or non-numeric deaths; NaN is an explicitly missing week.

    Returns
    -------
    ndarray of float64
        The deaths, NaN where a week is missing.

    Raises
    ------
    InputError
    """
    advice = "deaths must be non-negative whole counts (leave a missing week empty)"
    counts = _plain_integers(frame[column])
    if counts is not None and (counts.size == 0 or counts.min() >= 0):
        return counts.astype(np.float64)  # whole, finite and non-negative: one pass
    values = _as_float(frame, strata, column, advice)
    negative = values < 0
    if negative.any():
        pos = int(np.argmax(negative))
        _raise_at(frame, strata, pos, column, float(values[pos]), "a negative value", advice)
    with np.errstate(invalid="ignore"):
        fractional = values != np.floor(values)
    fractional &= ~np.isnan(values)
    if fractional.any():
        pos = int(np.argmax(fractional))
        _raise_at(frame, strata, pos, column, float(values[pos]), "a fractional value", advice)
    return values


def check_population(
    frame: pd.DataFrame,
    strata: Sequence[str],
    deaths: np.ndarray | None = None,
    column: str = "population",
) -> np.ndarray:
    """Refuse non-numeric, negative, zero or missing population (the exposure of a log offset).

    A population may be missing only on a row whose deaths are missing too (a missing week).

    Returns
    -------
    ndarray of float64

    Raises
    ------
    InputError
    """
    advice = "population is the exposure of a log offset and must be a positive number"
    counts = _plain_integers(frame[column])
    if counts is not None and (counts.size == 0 or counts.min() > 0):
        return counts.astype(np.float64)  # positive and never missing: one pass
    values = _as_float(frame, strata, column, advice)
    not_positive = values <= 0
    if not_positive.any():
        pos = int(np.argmax(not_positive))
        what = "a zero value" if values[pos] == 0 else "a negative value"
        _raise_at(frame, strata, pos, column, float(values[pos]), what, advice)
    missing = np.isnan(values)
    if deaths is not None:
        missing &= ~np.isnan(deaths)
    if missing.any():
        pos = int(np.argmax(missing))
        _raise_at(
            frame,
            strata,
            pos,
            column,
            None,
            "a missing value",
            advice + " on every row with deaths",
        )
    return values


def _series_codes(frame: pd.DataFrame, strata: Sequence[str]) -> np.ndarray:
    if not strata:
        return np.zeros(len(frame), dtype=np.int64)
    return (
        frame.groupby(list(strata), observed=True, sort=False, dropna=False)
        .ngroup()
        .to_numpy(dtype=np.int64)
    )


def check_duplicates(
    frame: pd.DataFrame, strata: Sequence[str], series: np.ndarray | None = None
) -> None:
    """Refuse a series-week given twice; the message names both rows.

    Parameters
    ----------
    frame : DataFrame
        Working frame with parsed ``week_ending`` (datetime64).
    strata : sequence of str
    series : ndarray of int, optional
        Series code per row (computed when not given).

    Raises
    ------
    InputError
    """
    codes = _series_codes(frame, strata) if series is None else series
    days = frame["week_ending"].to_numpy(dtype="datetime64[D]").astype(np.int64)
    key = pd.Series(codes * np.int64(1 << 32) + (days - days.min() if len(days) else days))
    dup = key.duplicated(keep="first").to_numpy()
    if not dup.any():
        return
    pos = int(np.argmax(dup))
    first = int(np.argmax(key.to_numpy() == key.iloc[pos]))
    label, first_label = frame.index[pos], frame.index[first]
    value = frame["week_ending"].iloc[pos]
    raise InputError(
        f"column 'week_ending' has the duplicate series-week {_fmt_value(value)} at "
        f"{format_row(label)}, already given at {format_row(first_label)} "
        f"({describe_row(frame, label, strata)}); each series has one row per week: remove one "
        "or add the stratum that tells them apart",
        column="week_ending",
        value=value,
        row=int(label),
    )


def check_weekly(
    frame: pd.DataFrame, strata: Sequence[str], series: np.ndarray | None = None
) -> None:
    """Refuse dates that are not weekly: every ``week_ending`` must fall on one weekday.

    Gaps of whole weeks inside a series are missing weeks and are allowed; a gap that is not a whole
    number of weeks (a Thursday among Fridays, a 10-day gap) is not, and all series share one
    weekday so that they share one weekly calendar.

    Raises
    ------
    InputError
    """
    dates = frame["week_ending"]
    days = dates.to_numpy(dtype="datetime64[D]").astype(np.int64)
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday (3); Monday is 0
    counts = np.bincount(weekday, minlength=7)
    if (counts > 0).sum() <= 1:
        return
    usual = int(np.argmax(counts))
    off = weekday != usual
    pos = int(np.argmax(off))
    codes = _series_codes(frame, strata) if series is None else series
    same = codes == codes[pos]
    earlier = same & (days < days[pos])
    later = same & (days > days[pos])
    if earlier.any():
        ref = int(days[earlier].max())
        relation = f"{int(days[pos]) - ref} days after {np.datetime64(ref, 'D')}, the previous week"
    elif later.any():
        ref = int(days[later].min())
        relation = f"{ref - int(days[pos])} days before {np.datetime64(ref, 'D')}, the next week"
    else:
        relation = "the only week"
    value = dates.iloc[pos]
    label = frame.index[pos]
    raise InputError(
        f"column 'week_ending' has {_fmt_value(value)} (a {_WEEKDAYS[weekday[pos]]}) at "
        f"{format_row(label)} ({describe_row(frame, label, strata)}), {relation} of its series; "
        f"dates must be weekly: every week_ending on the same weekday ({_WEEKDAYS[usual]} here, "
        f"as on {int(counts[usual]):,} rows), missing weeks left out or given as NaN deaths",
        column="week_ending",
        value=value,
        row=int(label),
    )


# ---------------------------------------------------------------------------------------- fit rules
def _weeks_of(frame_or_weeks: pd.DataFrame | pd.DatetimeIndex | Sequence[Any]) -> pd.DatetimeIndex:
    if isinstance(frame_or_weeks, pd.DataFrame):
        values = frame_or_weeks["week_ending"]
    else:
        values = frame_or_weeks
    return pd.DatetimeIndex(pd.to_datetime(pd.Index(values))).unique().sort_values()


def _range_text(lo: pd.Timestamp, hi: pd.Timestamp) -> str:
    return f"{lo.date()}..{hi.date()}"


def check_reference(
    weeks: pd.DataFrame | pd.DatetimeIndex | Sequence[Any], reference: tuple[Any, Any]
) -> None:
    """Refuse a reference period outside the data.

    The reference period ``(start, end)`` selects the weeks whose week-ending date lies in
    ``[start, end]`` (a bare year as ``end`` means 31 December). It is inside the data when every
    week of the data's weekly grid that it selects is a week of the data: ``start`` later than a
    week before the first week, ``end`` earlier than a week after the last.

    Parameters
    ----------
    weeks : DatetimeIndex, sequence of dates or tidy DataFrame
        The data's week-ending dates.
    reference : (start, end)
        Dates, date strings or years.

    Raises
    ------
    InputError
        Naming the requested and the available ranges.
    """
    idx = _weeks_of(weeks)
    lo, hi = reference_bounds(*reference)
    if len(idx) == 0:
        raise InputError(
            f"the reference period {_range_text(lo, hi)} lies outside the data: there are no weeks",
            column="week_ending",
            value=reference,
            row=None,
        )
    first, last = idx[0], idx[-1]
    available = f"the data hold weeks ending {_range_text(first, last)}"
    if lo > hi:
        raise InputError(
            f"the reference period {_range_text(lo, hi)} ends before it starts; {available}",
            column="week_ending",
            value=reference,
            row=None,
        )
    week = pd.Timedelta(days=7)
    inside = (lo > first - week) and (hi < last + week)
    selected = ((idx >= lo) & (idx <= hi)).sum()
    if not inside or selected == 0:
        raise InputError(
            f"the reference period {_range_text(lo, hi)} lies outside the data: {available}; "
            "choose a reference period within them",
            column="week_ending",
            value=reference,
            row=None,
        )


def check_history(
    frame_or_weeks: pd.DataFrame | pd.DatetimeIndex | Sequence[Any],
    reference: tuple[Any, Any],
    min_weeks: int,
) -> None:
    """Refuse too little history for the baseline asked for.

    Counts, for each series, the weeks of the reference period with observed deaths (a tidy frame),
    or the weeks of the reference period (dates only), and refuses when the smallest count is below
    ``min_weeks``.

    Parameters
    ----------
    frame_or_weeks : tidy DataFrame, DatetimeIndex or sequence of dates
    reference : (start, end)
        Dates, date strings or years.
    min_weeks : int
        The fewest reference weeks the baseline needs (e.g. 5 years of weeks for the five-year
        average, a few times the number of terms for a GLM).

    Raises
    ------
    InputError
        Naming the requested reference period, the available weeks and the series short of them.
    """
    lo, hi = reference_bounds(*reference)
    if isinstance(frame_or_weeks, pd.DataFrame):
        frame = frame_or_weeks
        strata = [c for c in frame.columns if c not in ("week_ending", "deaths", "population")]
        dates = pd.DatetimeIndex(frame["week_ending"])
        ok = np.asarray((dates >= lo) & (dates <= hi), dtype=bool)
        if "deaths" in frame.columns:
            ok &= frame["deaths"].notna().to_numpy()
        codes = _series_codes(frame, strata)
        n_series = int(codes.max()) + 1 if len(codes) else 1
        counts = np.bincount(codes[ok], minlength=n_series)
        worst = int(np.argmin(counts))
        count = int(counts[worst])
        series = ""
        if strata and len(frame):
            pos = int(np.argmax(codes == worst))
            label = ", ".join(f"{c} {_fmt_cell(frame[c].iloc[pos])}" for c in strata)
            series = f" for series ({label})"
        in_series = dates[codes == worst] if len(frame) else dates
        avail = (
            _range_text(in_series.min(), in_series.max()) if len(in_series) else "no weeks at all"
        )
    else:
        idx = _weeks_of(frame_or_weeks)
        count = int(((idx >= lo) & (idx <= hi)).sum())
        series = ""
        avail = _range_text(idx[0], idx[-1]) if len(idx) else "no weeks at all"
    if count >= min_weeks:
        return
    raise InputError(
        f"too little history for the baseline asked for: the reference period "
        f"{_range_text(lo, hi)} holds {count:,} weeks with deaths{series} (the data hold weeks "
        f"ending {avail}); the baseline needs at least {int(min_weeks):,}: widen the reference "
        "period or give more history",
        column="week_ending",
        value=count,
        row=None,
    )
