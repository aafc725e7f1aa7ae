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

import logging
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .exceptions import InputError
from .regions import ENGLAND_CODE, REGIONS, WALES_CODE, is_england, normalise_region
from .weeks import reference_bounds

logger = logging.getLogger("excessmort.io")

__all__ = [
    "PANDEMIC",
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
    "check_strata_spelling",
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
    hint = ""
    names = [str(c).strip() for c in shown]
    if len(names) == 1 and any(sep in names[0] for sep in (";", "\t", "|")):
        hint = "; it looks like a table with another separator read as one column"
    elif any(re.fullmatch(r"[-+]?\d+([./-]\d+)*", n) for n in names):
        hint = "; the first row looks like data, not a header: add a header row"
    raise InputError(
        f"missing required column {wanted}; the input has columns {there}{hint}",
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


def check_strata_spelling(
    frame: pd.DataFrame, strata: Sequence[str], cats: dict[str, pd.Categorical]
) -> None:
    """Refuse stratum values that differ only in case or spaces (``'F'`` and ``'f'``, ``'85+'`` and
    ``'85+ '``): they would be two series where the user meant one. Looks at the categories only.

    Raises
    ------
    InputError
        Naming both spellings and a row of each.
    """
    for col in strata:
        cat = cats[col]
        labels = pd.Index(cat.categories.astype(str))
        folded = labels.str.lower().str.replace(r"\s+", " ", regex=True).str.strip()
        clash = folded.duplicated(keep=False)
        if not clash.any():
            continue
        key = folded[clash][0]
        a, b = [i for i in np.flatnonzero(clash) if folded[i] == key][:2]
        codes = np.asarray(cat.codes)
        row_a, row_b = int(np.argmax(codes == a)), int(np.argmax(codes == b))
        if labels[a].strip() == labels[b].strip():
            how = "only in spaces"
        elif labels[a].lower() == labels[b].lower():
            how = "only in case"
        else:
            how = "only in case and spaces"
        label_b = frame.index[row_b]
        raise InputError(
            f"column {col!r}: strata {labels[a]!r} and {labels[b]!r} differ {how} "
            f"({format_row(frame.index[row_a])} has {labels[a]!r}, {format_row(label_b)} has "
            f"{labels[b]!r}); they would be two series: spell each stratum one way",
            column=col,
            value=labels[b],
            row=int(label_b),
        )


def check_regions(
    frame: pd.DataFrame,
    strata: Sequence[str],
    *,
    column: str = "region",
    shown_column: str | None = None,
) -> tuple[pd.Categorical, np.ndarray]:
    """Normalise region names and codes to ONS codes; refuse unknown regions.

    England (E92000001 or "England") is a series of its own (an
    :class:`~excessmort.exceptions.AreaWarning` when its regions are in the same frame). A column
    none of whose values is an ONS region, England or Wales is another country's areas: kept as
    given.

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
        A value that is no ONS region beside values that are (the closest name suggested).
    """
    values = frame[column]
    row_codes, uniques = pd.factorize(values, sort=False)
    mapped: list[str | None] = []
    for value in uniques:
        text = str(value)
        if is_england(text):
            mapped.append(ENGLAND_CODE)
        else:
            mapped.append(normalise_region(text, allow_wales=True))
    if uniques.size and all(m is None for m in mapped):
        # No value is an ONS code or name: ``region`` is an area stratum of the user's own
        # (another country's regions), kept as given and never summed into England.
        return pd.Categorical(values.astype(str)), np.zeros(len(frame), dtype=bool)
    bad_unique = [i for i, m in enumerate(mapped) if m is None]
    if bad_unique:
        from ._suggest import did_you_mean

        pos = int(np.argmax(np.isin(row_codes, bad_unique)))
        value = values.iloc[pos]
        names = [*REGIONS.values(), "Wales", "England"]
        _raise_at(
            frame,
            strata,
            pos,
            column,
            value,
            "an unknown region",
            f"regions are the ONS codes E12000001..E12000009 or their names (such as 'London', "
            f"'East'){did_you_mean(value, names)}; Wales (W92000004) is kept with "
            "keep_wales=True, England (E92000001) is a series of its own. A column of other areas "
            "(another country's) must hold no ONS region at all",
            shown_column=shown_column,
        )
    if ENGLAND_CODE in mapped and any(m in REGIONS for m in mapped):
        import warnings

        from .exceptions import AreaWarning

        warnings.warn(
            f"column {shown_column or column!r} holds England ({ENGLAND_CODE}) beside its regions: "
            "England is kept as a series of its own and never summed with them (Fit.by() is the "
            "sum of the regions); leave England's rows out, or fit it alone, to avoid counting its "
            "deaths twice in your own sums",
            AreaWarning,
            stacklevel=5,
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


_TZ_SUFFIX = r"(?:\s*(?:Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?))$"


def _to_datetime_safe(values: pd.Series, **kwargs: Any) -> pd.Series:
    """``pd.to_datetime(errors="coerce")`` that never raises (pandas raises, coerce or not, for
    some spellings: out-of-bounds years from 'Jan-15', mixed time zones); NaT where it fails."""
    try:
        out = pd.to_datetime(values, errors="coerce", **kwargs)
    except (ValueError, TypeError, OverflowError):
        return pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
    if isinstance(out.dtype, pd.DatetimeTZDtype):
        out = out.dt.tz_localize(None)
    return pd.Series(out, index=values.index)


def _parse_iso(
    frame: pd.DataFrame, strata: Sequence[str], column: str, text: pd.Series
) -> pd.Series:
    """ISO dates; a time and a time-zone offset (``2021-01-15T00:00:00+01:00``) are allowed and
    the local date is kept (the date the supplier wrote), logged once."""
    try:
        parsed = pd.to_datetime(text, errors="coerce", format="ISO8601")
        aware = isinstance(parsed.dtype, pd.DatetimeTZDtype)
    except (ValueError, TypeError, OverflowError):  # mixed offsets: pandas raises even on coerce
        parsed, aware = None, True
    if not aware:
        return parsed
    stripped = text.astype(str).str.replace(_TZ_SUFFIX, "", regex=True).where(text.notna())
    example = text.dropna().iloc[0] if text.notna().any() else None
    logger.info(
        "column %r has dates with a time-zone offset (such as %r): kept the local date of each",
        column,
        example,
    )
    return _to_datetime_safe(stripped, format="ISO8601")


def _refuse_unclear_dates(
    frame: pd.DataFrame,
    strata: Sequence[str],
    column: str,
    text: pd.Series,
    retry: np.ndarray,
) -> None:
    """Refuse dates whose reading would be a guess: US month/day, Excel month-year ('Jan-15').

    Works on the distinct spellings of the dates that are not ISO (a few hundred weeks), not on
    every row.
    """
    values = text[retry].astype(str)
    uniq = pd.Series(values.unique())
    month_year = uniq.str.fullmatch(r"\s*[A-Za-z]{3,9}[-\s/.']*\d{2,4}\s*")
    if month_year.any():
        shown = uniq[month_year].iloc[0]
        pos = int(np.flatnonzero(retry)[int(np.argmax(values.to_numpy() == shown))])
        _raise_at(
            frame,
            strata,
            pos,
            column,
            shown,
            "a month and year without a day,",
            "it looks like Excel's 'mmm-yy' date format, which drops the day: format the column "
            "as a full date (YYYY-MM-DD, such as 2021-01-15) before saving",
        )
    serial = uniq.str.fullmatch(r"\s*\d{5}(\.\d+)?\s*")
    if serial.any():
        shown = uniq[serial].iloc[0]
        pos = int(np.flatnonzero(retry)[int(np.argmax(values.to_numpy() == shown))])
        _raise_at(
            frame,
            strata,
            pos,
            column,
            shown,
            "a number, not a date,",
            "it looks like an Excel serial day number: format the column as a date "
            "(YYYY-MM-DD, such as 2021-01-15) before saving",
        )
    parts = uniq.str.extract(r"^\s*(\d{1,2})[/.-](\d{1,2})[/.-](\d{2,4})\b")
    first = pd.to_numeric(parts[0], errors="coerce")
    second = pd.to_numeric(parts[1], errors="coerce")
    month_first = (second > 12) & (first <= 12)
    day_first = (first > 12) & (second <= 12)
    if month_first.any():
        shown = uniq[month_first].iloc[0]
        pos = int(np.flatnonzero(retry)[int(np.argmax(values.to_numpy() == shown))])
        mixed = " mixed with day/month dates" if day_first.any() else ""
        _raise_at(
            frame,
            strata,
            pos,
            column,
            shown,
            f"a date that looks like US month/day{mixed},",
            "dates are read day first (03/01/2020 is 3 January) and this one cannot be: write "
            "dates as YYYY-MM-DD (such as 2021-01-15), or as day/month/year",
        )


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
        parsed = _parse_iso(frame, strata, column, text)
        # Other spellings are read day first (UK: 03/01/2020 is 3 January): one inferred format
        # for the bulk, then element by element. A value that looks ISO but failed stays refused
        # (a day-first retry would read 2024-13-01 as 13 January).
        retry = parsed.isna().to_numpy() & raw.notna().to_numpy()
        if retry.any():
            failed = text[retry].astype(str).str.match(r"\s*\d{4}-\d{1,2}-\d{1,2}")
            retry[np.flatnonzero(retry)[failed.to_numpy(dtype=bool)]] = False
        if retry.any():
            _refuse_unclear_dates(frame, strata, column, text, retry)
            parsed = parsed.copy()
            again = _to_datetime_safe(text[retry], dayfirst=True)
            still = again.isna().to_numpy()
            if still.any():
                again[still] = _to_datetime_safe(text[retry][still], dayfirst=True, format="mixed")
            parsed[retry] = again
    index = pd.DatetimeIndex(parsed)
    if index.unit != "ns":  # a parse at a coarser unit can hold years nanoseconds cannot
        values = index.to_numpy()
        with np.errstate(invalid="ignore"):
            out_of_range = (values < np.datetime64("1678-01-01")) | (
                values > np.datetime64("2261-12-31")
            )
        if out_of_range.any():
            pos = int(np.argmax(out_of_range))
            _raise_at(
                frame,
                strata,
                pos,
                column,
                raw.iloc[pos],
                "a date out of range,",
                "week_ending must be a date between the years 1678 and 2261, such as 2021-01-15",
            )
    parsed = pd.Series(
        index.normalize().astype("datetime64[ns]"),
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
            value = raw.iloc[pos]
            text = str(value).strip()
            if re.fullmatch(r"[+-]?\d{1,3}([,.' ]\d{3})+", text):
                advice += (
                    f"; {text!r} looks like a number with a thousands separator: write it as "
                    f"{re.sub(r'[^0-9+-]', '', text)}"
                )
            elif re.fullmatch(r"[+-]?\d+,\d+", text):
                advice += f"; {text!r} looks like a decimal comma"
            _raise_at(frame, strata, pos, column, value, "a non-numeric value", advice)
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


def check_deaths(
    frame: pd.DataFrame, strata: Sequence[str], column: str = "deaths", *, estimated: bool = False
) -> np.ndarray:
    """Refuse negative, fractional or non-numeric deaths; NaN is an explicitly missing week.

    ``estimated=True`` accepts fractional counts (estimates, such as HMD STMF's age splits).

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
    if fractional.any() and not estimated:
        pos = int(np.argmax(fractional))
        _raise_at(
            frame,
            strata,
            pos,
            column,
            float(values[pos]),
            "a fractional value",
            advice + "; if the counts are estimates (split by age, say), read them with "
            "estimated_counts=True",
        )
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
    # Each series weekly on its own weekday (ISO weeks ending Sunday beside ONS's Fridays)?
    first_day = pd.Series(weekday).groupby(codes).agg(["min", "max"])
    if (first_day["min"] == first_day["max"]).all():
        other = int(np.argmax(~off))
        raise InputError(
            f"series end their weeks on different weekdays: {describe_row(frame, frame.index[pos], strata)} "
            f"is weekly on {_WEEKDAYS[weekday[pos]]}s, {describe_row(frame, frame.index[other], strata)} "
            f"on {_WEEKDAYS[usual]}s. Each series is weekly, but one fit shares one weekly calendar: "
            "fit the series of each weekday apart, or move one set of dates to the other weekday",
            column="week_ending",
            value=dates.iloc[pos],
            row=int(frame.index[pos]),
        )
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


#: The pandemic weeks a reference period must not reach unless asked for explicitly
#: (``fit(..., allow_pandemic=True)``): the first COVID-19 deaths were registered in England in
#: March 2020, and the waves of excess ran to the end of 2021. A baseline fitted on them expects
#: pandemic deaths and hides the excess it is meant to measure.
PANDEMIC: tuple[str, str] = ("2020-03-01", "2021-12-31")


def check_reference(
    weeks: pd.DataFrame | pd.DatetimeIndex | Sequence[Any],
    reference: tuple[Any, Any],
    *,
    pandemic: tuple[Any, Any] | None = None,
) -> None:
    """Refuse a reference period that cannot be fitted honestly; the message names the rule.

    The reference period ``(start, end)`` selects the weeks whose week-ending date lies in
    ``[start, end]`` (a bare year as ``end`` means 31 December). The rules, in order:

    1. it starts before it ends (a reversed period is told it is reversed);
    2. it starts inside the data: ``start`` later than a week before the first week (a reference
       that asks for weeks the data lack, such as 1900-2100, is refused rather than shortened);
    3. it ends inside the data: ``end`` earlier than a week after the last observed week;
    4. it selects at least one week;
    5. with ``pandemic=(start, end)``: it does not reach into those weeks.

    Parameters
    ----------
    weeks : DatetimeIndex, sequence of dates or tidy DataFrame
        The data's week-ending dates.
    reference : (start, end)
        Dates, date strings or years.
    pandemic : (start, end), optional
        Weeks the reference must not overlap (the fit passes :data:`PANDEMIC` unless
        ``allow_pandemic=True``).

    Raises
    ------
    InputError
        Naming the rule broken, the requested and the available ranges.
    """
    idx = _weeks_of(weeks)
    lo, hi = reference_bounds(*reference)
    asked = _range_text(lo, hi)

    def refuse(text: str) -> None:
        raise InputError(text, column="week_ending", value=reference, row=None)

    if lo > hi:
        refuse(
            f"the reference period {asked} ends before it starts: it is reversed; give it as "
            f"(start, end), e.g. ({hi.date()}, {lo.date()})"
        )
    if len(idx) == 0:
        refuse(f"the reference period {asked} lies outside the data: there are no weeks")
    first, last = idx[0], idx[-1]
    available = f"the data hold weeks ending {_range_text(first, last)}"
    week = pd.Timedelta(days=7)
    if hi < first or lo > last:
        refuse(
            f"the reference period {asked} lies outside the data: it is wholly "
            f"{'before' if hi < first else 'after'} them; {available}; choose a reference period "
            "within them"
        )
    if lo <= first - week:
        refuse(
            f"the reference period {asked} lies outside the data: it starts before the first week "
            f"({first.date()}), so the weeks it asks for before then are missing; {available}; "
            "choose a reference period within them"
        )
    if hi >= last + week:
        refuse(
            f"the reference period {asked} lies outside the data: it runs past the last observed "
            f"week ({last.date()}); {available}; choose a reference period within them"
        )
    if int(((idx >= lo) & (idx <= hi)).sum()) == 0:
        refuse(
            f"the reference period {asked} lies outside the data: it selects no week of the "
            f"data; {available}; choose a reference period within them"
        )
    if pandemic is not None:
        p_lo, p_hi = reference_bounds(*pandemic)
        if lo <= p_hi and hi >= p_lo:
            refuse(
                f"the reference period {asked} runs into the pandemic weeks "
                f"{_range_text(p_lo, p_hi)}: a baseline fitted on them expects pandemic deaths "
                "and hides the excess; end the reference before "
                f"{p_lo.date()} (the default is 2015-01-01..2019-12-31), or pass "
                "allow_pandemic=True (--allow-pandemic-reference) to fit on them knowingly"
            )


def check_history(
    frame_or_weeks: pd.DataFrame | pd.DatetimeIndex | Sequence[Any] | Any,
    reference: tuple[Any, Any],
    min_weeks: int,
    *,
    baseline: str | None = None,
) -> None:
    """Refuse too little history for the baseline asked for.

    Counts, for each series, the weeks of the reference period with observed deaths (a tidy frame),
    or the weeks of the reference period (dates only), and refuses when the smallest count is below
    ``min_weeks``.

    Parameters
    ----------
    frame_or_weeks : tidy DataFrame, Panel, DatetimeIndex or sequence of dates
        A :class:`~excessmort.panel.Panel` is counted on its dense ``deaths`` array (one pass, no
        grouping), which is how the fit calls it.
    reference : (start, end)
        Dates, date strings or years.
    min_weeks : int
        The fewest reference weeks the baseline needs (each baseline states its
        ``min_reference_weeks``).
    baseline : str, optional
        The baseline's name, for the message.

    Raises
    ------
    InputError
        Naming the requested reference period, the available weeks and the series short of them.
    """
    lo, hi = reference_bounds(*reference)
    if not isinstance(frame_or_weeks, pd.DataFrame) and hasattr(frame_or_weeks, "deaths"):
        panel = frame_or_weeks
        weeks = pd.DatetimeIndex(panel.weeks)
        in_ref = np.asarray((weeks >= lo) & (weeks <= hi), dtype=bool)
        deaths = np.asarray(panel.deaths)
        cols = np.flatnonzero(in_ref)
        if len(cols) and cols[-1] - cols[0] + 1 == len(cols):  # the weeks are a range: a view
            ref_deaths = deaths[:, cols[0] : cols[-1] + 1]
        else:
            ref_deaths = deaths[:, in_ref]
        counts = (
            np.count_nonzero(np.isfinite(ref_deaths), axis=1) if deaths.shape[0] else np.zeros(1)
        )
        worst = int(np.argmin(counts))
        count = int(counts[worst])
        series = ""
        keys = panel.keys
        if deaths.shape[0] and len(keys.columns):
            label = ", ".join(f"{c} {_fmt_cell(keys[c].iloc[worst])}" for c in keys.columns)
            short = int((counts < min_weeks).sum())
            more = f"; {short - 1:,} other series are short too" if short > 1 else ""
            series = f" for series ({label}){more}"
        seen = np.flatnonzero(np.isfinite(deaths[worst])) if deaths.shape[0] else []
        avail = _range_text(weeks[seen[0]], weeks[seen[-1]]) if len(seen) else "no weeks at all"
    elif isinstance(frame_or_weeks, pd.DataFrame):
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
    which = f"the {baseline} baseline" if baseline else "the baseline asked for"
    raise InputError(
        f"too little history for {which}: the reference period "
        f"{_range_text(lo, hi)} holds {count:,} weeks with deaths{series} (the data hold weeks "
        f"ending {avail}); {'it' if baseline else 'the baseline'} needs at least "
        f"{int(min_weeks):,}: widen the reference period or give more history",
        column="week_ending",
        value=count,
        row=None,
    )
