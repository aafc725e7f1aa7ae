"""Read deaths tables (CSV, Parquet, ONS workbooks, pandas or Dask frames) into the tidy frame.

The tidy frame has one row per series and week: the stratum columns (pandas Categoricals with string
categories, in the input's column order), ``week_ending`` (datetime64[ns]), ``deaths`` (float64, NaN
only for an explicitly missing week) and, when given, ``population`` (float64). Rows are sorted by
strata then week, with a RangeIndex. Every input rule of :mod:`excessmort.validate` is applied.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import math
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import _sniff
from . import validate as v
from .exceptions import InputError
from .regions import WALES_CODE, is_england, normalise_region

__all__ = ["BOOKKEEPING_COLUMNS", "read"]

logger = logging.getLogger(__name__)

_WEEK_ALIASES = frozenset({"week_ending", "date", "week_end", "week_ending_date", "week_ended"})
_DEATHS_ALIASES = frozenset({"deaths", "count"})
_REGION_COLUMNS = ("region", "area_code", "area_name")
#: ONS bookkeeping columns: recognised and dropped (``year`` and ``week`` restate ``week_ending``;
#: ``source`` says where ONS or the compiler took a figure from). Name one in ``strata`` to keep it.
BOOKKEEPING_COLUMNS: tuple[str, ...] = ("year", "week", "source")
_CSV_SUFFIXES = (".csv", ".txt", ".tsv")
_PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
_WORKBOOK_SUFFIXES = (".xlsx", ".xlsm", ".xls")

Source = str | PathLike[str] | pd.DataFrame


def read(
    source: Source | Any,
    *,
    strata: Sequence[str] | None = None,
    keep_wales: bool = False,
    sheet: str | None = None,
    engine: str = "pandas",
    estimated_counts: bool = False,
) -> pd.DataFrame:
    """Read a deaths table and return the validated tidy frame.

    Parameters
    ----------
    source : str, path, DataFrame or Dask DataFrame
        A CSV file, a Parquet file or partitioned Parquet directory, an ONS weekly-deaths workbook
        (``.xlsx``; ``.xls`` needs ``xlrd``) or a frame (never modified). Long format, one row per
        series and week.
    strata : sequence of str, optional
        The stratum columns to keep. By default every column that is not a value column
        (``week_ending``, ``deaths``, ``population``) or an ONS bookkeeping column (``year``,
        ``week``, ``source``) is a stratum. When given, other columns are left out (logged at INFO);
        a bookkeeping column named here is kept as a stratum.
    keep_wales : bool, default False
        ONS files always hold Wales (W92000004), an area outside England. By default its rows are
        left out (logged at INFO, not an error); with ``keep_wales=True`` Wales stays as a value of
        ``region``. It is never summed into England.
    sheet : str, optional
        For a workbook: the sheet to read; by default the first sheet named like
        "Weekly figures 2020".
    engine : {"pandas", "dask"}, default "pandas"
        ``"dask"``: a lazy Dask DataFrame of the tidy frame for a partitioned Parquet dataset, CSV
        files (a file, a glob or a folder of them; one partition per file) or a Dask DataFrame,
        partitioned so that each partition holds whole series and validated partition by partition
        when computed (see ``excessmort._dask.read_dask``).
    estimated_counts : bool, default False
        Accept fractional deaths: the counts are estimates (HMD STMF's deaths split by age, say).
        A fit of them says so (``Fit.estimated_counts``, the notes of an export).

    Returns
    -------
    DataFrame
        Strata (Categoricals with string categories, in input column order; ``region`` holds ONS
        codes), ``week_ending`` (datetime64[ns]), ``deaths`` (float64) and, when given,
        ``population`` (float64); sorted by strata then week, RangeIndex.

    Raises
    ------
    InputError
        When the input breaks a rule (see :mod:`excessmort.validate`); the message names the column,
        the value, the row (its 0-based position in the input) and the series.

    Notes
    -----
    Columns are recognised by name, ignoring case and punctuation: ``week_ending`` (aliases
    ``date``, ``week_end``, ``week_ending_date``, ``week_ended``), ``deaths`` (alias ``count``),
    ``population``. ONS files name the region ``area_code`` and ``area_name``: the code becomes
    ``region`` (names such as "East" are normalised to codes) and ``area_name`` is dropped once it
    agrees with the code. ``year``, ``week`` and ``source`` are dropped. Rows for England
    (E92000001) are a series of their own (never summed with the regions; warned about beside them). In a
    workbook the regional table ("Deaths by Region of usual residence") is read, England rows there
    are skipped for the same reason, and weeks not yet published (empty columns) are left out.

    Examples
    --------
    >>> import pandas as pd
    >>> raw = pd.DataFrame({"area_name": ["East", "London"], "date": ["2020-01-03"] * 2,
    ...                     "deaths": [1200, 1500]})
    >>> tidy = read(raw)
    >>> tidy["region"].tolist(), str(tidy["week_ending"].dtype), str(tidy["deaths"].dtype)
    (['E12000006', 'E12000007'], 'datetime64[ns]', 'float64')
    """
    if engine == "dask":
        from ._dask import read_dask

        return read_dask(source, strata=strata, keep_wales=keep_wales)  # type: ignore[no-any-return]
    if engine != "pandas":
        raise InputError(
            f"engine must be 'pandas' or 'dask', got {engine!r}", column="engine", value=engine
        )
    frame = _load(source, sheet=sheet)
    tidy = _tidy(frame, strata=strata, keep_wales=keep_wales, estimated=bool(estimated_counts))
    # Remembered so that fit() re-validating this frame keeps what the user asked for.
    tidy.attrs["excessmort"] = {
        "validated": True,
        "keep_wales": bool(keep_wales),
        "estimated_counts": bool(estimated_counts),
    }
    return tidy


def _read_panel(
    source: Source | Any,
    *,
    keep_wales: bool = False,
    estimated: bool = False,
    engine: str = "auto",
    strata: Sequence[str] | None = None,
) -> Any:
    """``Panel.from_frame(read(source, strata=strata))`` without building the tidy frame: the same
    validation and messages, the panel filled straight from the validated rows. ``engine`` picks
    the row kernels (:mod:`excessmort._kernels.rows`) or the numpy code."""
    from .panel import Panel

    rows = _validate(
        _load(source, sheet=None),
        strata=strata,
        keep_wales=keep_wales,
        estimated=estimated,
        engine=engine,
    )
    deaths, exposure = rows.panel_arrays()
    weeks = pd.date_range(pd.Timestamp(rows.first_week), periods=rows.n_weeks, freq="7D", unit="ns")
    return Panel(keys=rows.keys(), weeks=weeks, deaths=deaths, exposure=exposure)


# ---------------------------------------------------------------------------------------- loading
def _load(source: Any, *, sheet: str | None) -> pd.DataFrame:
    if isinstance(source, pd.DataFrame):
        return source.copy(deep=False)
    if hasattr(source, "compute") and hasattr(source, "npartitions"):  # a Dask DataFrame
        frame = source.compute()
        if not isinstance(frame, pd.DataFrame):
            raise InputError(f"a Dask collection of {type(frame).__name__} is not a table")
        return frame
    if not isinstance(source, str | PathLike):
        raise InputError(
            f"cannot read a {type(source).__name__}; give a path to a CSV, Parquet or workbook "
            "file, or a pandas DataFrame",
            value=type(source).__name__,
        )
    path = Path(source)
    if path.is_dir():
        return _sniff.read_parquet(path)
    if not path.exists():
        raise InputError(f"no such file: {path}", column=None, value=str(path), row=None)
    suffixes = [s.lower() for s in path.suffixes]
    suffix = suffixes[-1] if suffixes else ""
    if suffix in (".gz", ".bz2", ".zip", ".xz", ".zst") and len(suffixes) > 1:
        suffix = suffixes[-2]
    # The suffix is a hint; the first bytes say what the file is (see excessmort._sniff).
    with path.open("rb") as fh:
        kind = _sniff.magic_kind(fh.read(16))
    if suffix in _CSV_SUFFIXES:
        if kind == "parquet":
            logger.info("%s is a Parquet file despite its name: read as Parquet", path.name)
            return _sniff.read_parquet(path)
        if kind == "zip" and _is_xlsx(path):
            logger.info("%s is an Excel workbook despite its name: read as a workbook", path.name)
            return _read_workbook(path, sheet=sheet)
        if kind == "ole":
            raise InputError(
                f"cannot read {path.name!r}: it is an old Excel (.xls) workbook under another "
                "name: rename it .xls, or save it as CSV",
                value="xls",
            )
        return _read_csv(path, sep="\t" if suffix == ".tsv" else ",")
    if suffix in _PARQUET_SUFFIXES:
        return _sniff.read_parquet(path)
    if suffix in _WORKBOOK_SUFFIXES:
        want = "ole" if suffix == ".xls" else "zip"
        if kind != want or (want == "zip" and not _is_xlsx(path)):
            raise InputError(
                f"cannot read {path.name!r}: it is not an Excel workbook, whatever its name "
                f"({_what_is(path)}); save it as .xlsx, or give it its real suffix",
                value=suffix,
            )
        return _read_workbook(path, sheet=sheet)
    raise InputError(
        f"cannot tell the format of {path.name!r} from its suffix {suffix or '(none)'!r}; use "
        f"{', '.join(_CSV_SUFFIXES + _PARQUET_SUFFIXES + _WORKBOOK_SUFFIXES)} or pass a DataFrame",
        value=suffix,
    )


def _norm(name: object) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(name).strip().lower()).strip("_")


def _read_csv(path: Path, *, sep: str) -> pd.DataFrame:
    numeric = _DEATHS_ALIASES | {"population"}

    def dtype_for(header: pd.Index) -> dict[Any, Any]:
        # Strata and dates are read as text (so "01" stays "01"); counts are left to the parser.
        return {c: str for c in header if _norm(c) not in numeric}

    return _sniff.read_text_table(path, sep=sep, dtype_for=dtype_for)


def _is_xlsx(path: Path) -> bool:
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            return any(n.startswith("xl/") for n in zf.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _what_is(path: Path) -> str:
    with path.open("rb") as fh:
        head = fh.read(_sniff.HEAD_BYTES)
    if not head:
        return "it is empty"
    kind = _sniff.magic_kind(head)
    if kind is not None:
        return f"it is a {kind} file"
    try:
        _, text = _sniff._decode_head(path, head)
    except InputError:
        return "it holds binary data"
    return _sniff._looks_like(text)


# ---------------------------------------------------------------------------------------- tidying
def _recognise(
    columns: Sequence[Any], strata: Sequence[str] | None
) -> tuple[dict[Any, str], str | None, list[Any]]:
    """Map input columns to canonical names.

    Returns (rename map for kept columns, the input column holding the region, dropped columns).
    """
    repeated = pd.Index(columns)[pd.Index(columns).duplicated()].unique().tolist()
    if repeated:
        raise InputError(
            f"column {repeated[0]!r} appears more than once; give each column once",
            column=str(repeated[0]),
        )
    wanted = {_norm(s) for s in strata} if strata is not None else set()
    canon: dict[Any, str] = {}
    by_target: dict[str, Any] = {}
    region_cols: dict[str, Any] = {}
    dropped: list[Any] = []
    for col in columns:
        key = _norm(col)
        if key in _WEEK_ALIASES:
            target = "week_ending"
        elif key in _DEATHS_ALIASES:
            target = "deaths"
        elif key == "population":
            target = "population"
        elif key in _REGION_COLUMNS:
            if key in region_cols:
                raise InputError(
                    f"columns {region_cols[key]!r} and {col!r} both look like {key!r}; keep one",
                    column=str(col),
                )
            region_cols[key] = col
            continue
        elif key in BOOKKEEPING_COLUMNS and key not in wanted and col not in (strata or ()):
            dropped.append(col)
            continue
        else:
            target = str(col)
        if target in by_target:
            raise InputError(
                f"columns {by_target[target]!r} and {col!r} both look like {target!r}; keep one",
                column=str(col),
            )
        by_target[target] = col
        canon[col] = target
    region_source: Any = None
    if region_cols:
        if "region" in region_cols and len(region_cols) > 1:
            others = [c for k, c in region_cols.items() if k != "region"]
            raise InputError(
                f"column {region_cols['region']!r} and {others[0]!r} both name the region; "
                "keep one",
                column=str(others[0]),
            )
        region_source = region_cols.get("region", region_cols.get("area_code"))
        if region_source is None:
            region_source = region_cols["area_name"]
        if "region" in by_target:
            raise InputError(
                f"columns {by_target['region']!r} and {region_source!r} both name the region",
                column="region",
            )
        canon[region_source] = "region"
    return canon, region_source, dropped


_FIRST_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_UNDER = re.compile(r"\s*(<|under\b)", re.IGNORECASE)


def _natural_key(text: str) -> tuple[float, str]:
    """Order strata values naturally: '<1', '1-14', '15-44', ..., '85+'; codes in code order."""
    match = _FIRST_NUMBER.search(text)
    number = float(match.group()) if match else math.inf
    if _UNDER.match(text):
        number -= 0.5
    return number, text


def _as_text(value: object) -> str:
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, pd.Timestamp) and value == value.normalize():
        return str(value.date())
    return str(value)


def _to_categorical(values: pd.Series) -> pd.Categorical:
    """A stratum column as a Categorical with string categories (values already non-missing)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        codes = values.cat.codes.to_numpy(dtype=np.int64)
        uniques = list(values.cat.categories)
        ordered = bool(values.cat.ordered)
        keep_order = True
    else:
        codes, uniq = pd.factorize(values, sort=False)
        codes = codes.astype(np.int64)
        uniques = list(uniq)
        ordered = False
        keep_order = False
    texts = [_as_text(u) for u in uniques]
    used = np.zeros(len(texts), dtype=bool)
    used[np.unique(codes)] = True
    categories = [t for t, u in zip(texts, used, strict=True) if u]
    categories = list(dict.fromkeys(categories))  # 1 and "1" are one category
    if not keep_order:
        categories.sort(key=_natural_key)
    position = {t: i for i, t in enumerate(categories)}
    remap = np.array([position.get(t, -1) for t in texts], dtype=np.int64)
    new_codes = remap[codes] if len(codes) else codes
    return pd.Categorical.from_codes(
        new_codes, categories=pd.Index(categories, dtype=object).astype(str), ordered=ordered
    )


def _unnamed(col: object) -> bool:
    text = str(col).strip()
    return text == "" or bool(re.fullmatch(r"Unnamed: \d+(_level_\d+)?", text))


def _drop_unnamed(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns without a header: a saved pandas index (first column holding unique whole numbers,
    such as 0..n-1) is dropped, as are columns left empty by trailing separators; any other column
    without a name is refused. Only the column names are looked at unless one has no name."""
    columns = list(frame.columns)
    unnamed = [i for i, c in enumerate(columns) if _unnamed(c)]
    if not unnamed:
        return frame
    drop: list[Any] = []
    for i in unnamed:
        col = columns[i]
        values = frame.iloc[:, i]
        if values.isna().all():
            logger.info("dropped column %d, which has no name and no values", i + 1)
            drop.append(col)
            continue
        numbers = pd.to_numeric(values, errors="coerce")
        whole = numbers.notna().all() and bool((numbers == np.floor(numbers)).all())
        if i == 0 and whole and numbers.is_unique:
            first, last = int(numbers.iloc[0]), int(numbers.iloc[-1])
            logger.info(
                "dropped the first column, which has no name and holds the row numbers %s..%s: "
                "a saved pandas index (save with index=False to leave it out)",
                f"{first:,}",
                f"{last:,}",
            )
            drop.append(col)
            continue
        sample = values.dropna().iloc[0]
        raise InputError(
            f"column {i + 1} of the input has no name (read as {str(col)!r}) and holds values "
            f"such as {sample!r} at {v.format_row(int(values.notna().to_numpy().argmax()))}: give "
            "it a header, or remove it",
            column=str(col),
            value=sample,
            row=int(values.notna().to_numpy().argmax()),
        )
    return frame.drop(columns=drop)


def _tidy(
    raw: pd.DataFrame,
    *,
    strata: Sequence[str] | None,
    keep_wales: bool,
    estimated: bool = False,
) -> pd.DataFrame:
    return _validate(raw, strata=strata, keep_wales=keep_wales, estimated=estimated).frame()


def _validate(
    raw: pd.DataFrame,
    *,
    strata: Sequence[str] | None,
    keep_wales: bool,
    estimated: bool = False,
    engine: str = "auto",
) -> _Rows:
    """Every input rule on ``raw``; the validated rows on integer keys. ``engine`` picks the row
    kernels (:mod:`excessmort._kernels.rows`, ``"auto"``/``"numba"``) or the numpy code."""
    from ._kernels import row_kernels

    kernels = row_kernels(engine, len(raw))
    frame = raw.reset_index(drop=True)
    v.check_not_empty(frame)
    frame = _drop_unnamed(frame)
    v.check_not_empty(frame)
    canon, region_source, dropped = _recognise(list(frame.columns), strata)
    if dropped:
        logger.info(
            "dropped the ONS bookkeeping columns %s (year and week restate week_ending)", dropped
        )

    renamed = [canon[c] for c in frame.columns if c in canon]
    value_cols = ("week_ending", "deaths", "population")
    available = [c for c in renamed if c not in value_cols]
    if "region" in available and region_source is not None:
        # area_name is dropped once the region comes from area_code (after checking they agree).
        name_col = next(
            (c for c in frame.columns if _norm(c) == "area_name" and c != region_source), None
        )
    else:
        name_col = None
    if strata is None:
        chosen = available
    else:
        chosen = []
        for s in strata:
            target = "region" if _norm(s) in _REGION_COLUMNS else canon.get(s, str(s))
            if target not in available:
                raise InputError(
                    f"stratum {s!r} is not a column of the input; its columns are "
                    f"{', '.join(map(repr, map(str, frame.columns)))}",
                    column=str(s),
                )
            if target not in chosen:
                chosen.append(target)
        left_out = [c for c in available if c not in chosen]
        if left_out:
            logger.info("left out columns %s (not among strata=%s)", left_out, list(strata))
        chosen = [c for c in available if c in chosen]  # input column order
    work_cols = {canon[c]: frame[c] for c in frame.columns if c in canon}
    v.check_required_columns(list(work_cols), present=list(frame.columns))
    ordered_cols = [*chosen, *(c for c in value_cols if c in work_cols)]
    work = pd.DataFrame({c: work_cols[c] for c in ordered_cols}, index=frame.index, copy=False)

    v.check_strata_values(work, chosen)
    if "region" in chosen:
        shown = str(region_source)
        codes, is_wales = v.check_regions(work, chosen, shown_column=shown)
        if name_col is not None:
            _check_area_names(work, chosen, frame[name_col], str(name_col), codes)
        work["region"] = codes
        if is_wales.any() and not keep_wales:
            logger.info(
                "left out %s rows of Wales (%s), an area outside England; pass keep_wales=True "
                "to keep it",
                f"{int(is_wales.sum()):,}",
                WALES_CODE,
            )
            work = work.loc[~is_wales]
            v.check_not_empty(
                work, after=f"leaving out Wales ({WALES_CODE}); pass keep_wales=True to keep it"
            )

    dates = _midnight_dates(work["week_ending"], kernels)
    if dates is None:  # parsed, normalised or refused (with its message) by the rule function
        parsed = v.check_dates(work, chosen)
        dates = _Dates(parsed.to_numpy(dtype="datetime64[ns]"), _DAY_NS, lambda: parsed)
    else:
        dates.series = lambda: v.check_dates(work, chosen)
    deaths = v.check_deaths(work, chosen, estimated=estimated)
    population = v.check_population(work, chosen, deaths) if "population" in work else None
    return _arrange(work, chosen, dates, deaths, population, kernels)


# ---------------------------------------------------------------------------------------- layout
_DAY_NS = 86_400_000_000_000
_WEEK_NS = 7 * _DAY_NS
#: The dates nanoseconds can hold (pandas' bounds), in ns since 1970.
_NS_LO, _NS_HI = np.iinfo(np.int64).min + 1, np.iinfo(np.int64).max


@dataclass(eq=False)
class _Dates:
    """A validated ``week_ending`` column: ``stamps`` [n] datetime64 at midnight (any unit), ``day``
    ticks of that unit a day; ``series()`` the rule function's datetime64[ns] Series (for messages
    and the tidy frame's slow paths)."""

    stamps: np.ndarray
    day: int
    series: Any
    first: int | None = None  # the earliest and latest ticks, when known
    last: int | None = None

    @property
    def ticks(self) -> np.ndarray:
        """The stamps' int64 ticks, read-only (the row kernels then compile one signature whether
        the column came read-only from pandas or was parsed)."""
        from ._kernels import _read_only

        return _read_only(self.stamps.view(np.int64))


def _midnight_dates(raw: pd.Series, kernels: Any) -> _Dates | None:
    """A numpy datetime64 column without NaT, inside the nanosecond range and whose first date is
    at midnight, as it is (no copy, no conversion: one pass of
    :func:`~excessmort._kernels.rows.day_scan`); None for anything else
    (:func:`excessmort.validate.check_dates` parses, normalises or refuses it). Every other date
    is at midnight when it is a whole number of weeks from the first, which
    :func:`~excessmort._kernels.rows.week_codes` checks (``_arrange`` falls back to
    ``check_dates`` when a date is not)."""
    dtype = raw.dtype
    if kernels is None or not (isinstance(dtype, np.dtype) and dtype.kind == "M"):
        return None
    unit, count = np.datetime_data(dtype)
    if unit not in ("s", "ms", "us", "ns") or count != 1:
        return None
    stamps = raw.to_numpy()
    if stamps.dtype != dtype or not stamps.flags.c_contiguous:
        return None
    per_ns = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}[unit]
    day = _DAY_NS // per_ns
    lo, hi, first_nat = kernels.day_scan(stamps.view(np.int64))
    if first_nat >= 0 or lo % day:
        return None
    if len(stamps) and not (lo * per_ns >= _NS_LO and hi * per_ns <= _NS_HI):
        return None  # the rule function refuses it
    return _Dates(stamps, day, None, lo, hi)


#: Above this share of rows starting a new run of strata, rows are encoded one by one.
_RUN_SHARE = 0.25


@dataclass(eq=False)
class _Rows:
    """The validated rows of an input on integer keys: the tidy frame and the panel, unbuilt.

    Rows are the kept rows of the input in input order. ``run_start`` [R] and ``run_len`` [R] cut
    them into runs of equal strata (R = n for unsorted input); ``run_codes[c]`` [R] is the category
    code of stratum c on each run and ``run_series`` [R] the series (0..S-1, in the order of the
    strata's categories). ``week`` [n] is each row's week on the grid starting at ``first_week``
    (``n_weeks`` weeks; empty when the rows are a sorted complete grid, whose weeks are implied);
    ``order`` sorts the rows by series then week (None: already sorted).
    """

    strata: list[str]
    categories: dict[str, pd.Index]
    ordered: dict[str, bool]
    run_start: np.ndarray
    run_len: np.ndarray
    run_codes: dict[str, np.ndarray]
    run_series: np.ndarray
    n_series: int
    week: np.ndarray
    first_week: np.datetime64
    n_weeks: int
    week_ns: np.ndarray
    deaths: np.ndarray
    population: np.ndarray | None
    order: np.ndarray | None

    @property
    def n_rows(self) -> int:
        return int(self.deaths.shape[0])

    def per_row(self, values: np.ndarray) -> np.ndarray:
        """A per-run array expanded to one value per row."""
        if self.run_len.shape[0] == self.n_rows:
            return values
        return np.repeat(values, self.run_len)

    def series(self) -> np.ndarray:
        """The series (0..S-1) of every row."""
        return self.per_row(self.run_series)

    def sorted_rows(self, values: np.ndarray) -> np.ndarray:
        return values if self.order is None else values[self.order]

    def frame(self) -> pd.DataFrame:
        """The tidy frame: strata, week_ending, deaths, population; sorted by series then week."""
        out: dict[str, Any] = {}
        for c in self.strata:
            codes = self.sorted_rows(self.per_row(self.run_codes[c]))
            out[c] = pd.Categorical.from_codes(
                codes, categories=self.categories[c], ordered=self.ordered[c], validate=False
            )
        stamps = self.sorted_rows(self.week_ns)
        if stamps.dtype != np.dtype("datetime64[ns]"):
            stamps = stamps.astype("datetime64[ns]")  # in range (checked): a new array
        out["week_ending"] = _own(stamps)
        out["deaths"] = _own(self.sorted_rows(self.deaths))
        if self.population is not None:
            out["population"] = _own(self.sorted_rows(self.population))
        return pd.DataFrame(out, copy=False)

    def keys(self) -> pd.DataFrame:
        """One row per series (S rows): the strata as Categoricals."""
        if not self.strata:
            return pd.DataFrame(index=pd.RangeIndex(1))
        first = np.full(self.n_series, -1, dtype=np.int64)
        runs = np.arange(self.run_series.shape[0], dtype=np.int64)
        first[self.run_series[::-1]] = runs[::-1]  # the first run of every series
        return pd.DataFrame(
            {
                c: pd.Categorical.from_codes(
                    self.run_codes[c][first],
                    categories=self.categories[c],
                    ordered=self.ordered[c],
                    validate=False,
                )
                for c in self.strata
            }
        )

    def panel_arrays(self) -> tuple[np.ndarray, np.ndarray | None]:
        """deaths [S, T] (NaN where a series lacks a week) and exposure [S, T] or None."""
        shape = (self.n_series, self.n_weeks)
        complete = self.order is None and self.n_rows == shape[0] * shape[1]

        def grid(values: np.ndarray) -> np.ndarray:
            if complete:
                return _own(values).reshape(shape)
            out = np.full(shape, np.nan)
            out[self.series(), self.week] = values
            return out

        deaths = grid(self.deaths)
        exposure = None
        if self.population is not None:
            exposure = grid(self.population)
            if np.isnan(exposure).any():
                # Population changes slowly: carry the nearest known value into weeks a series
                # lacks (as Panel.from_frame does).
                exposure = (
                    pd.DataFrame(exposure.T).ffill().bfill().to_numpy(dtype=np.float64).T.copy()
                )
        return deaths, exposure


def _own(values: np.ndarray) -> np.ndarray:
    """``values`` when this array owns its writeable memory (made here), else a copy: an output
    never shares memory with the caller's input."""
    return values if values.flags.owndata and values.flags.writeable else values.copy()


def _change_points(values: pd.Series) -> np.ndarray:
    """[n - 1] bool: where a column's value differs from the row before."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        codes = values.cat.codes.to_numpy()
        return codes[1:] != codes[:-1]
    array = values.array
    if hasattr(array, "__arrow_array__") and len(values) > 1:
        import pyarrow as pa
        import pyarrow.compute as pc

        data = pa.array(array)
        if isinstance(data, pa.ChunkedArray):
            data = data.combine_chunks()
        changed = pc.not_equal(data.slice(1), data.slice(0, len(data) - 1))
        return np.asarray(changed.to_numpy(zero_copy_only=False), dtype=bool)
    raw = values.to_numpy()
    return np.asarray(raw[1:] != raw[:-1], dtype=bool)


def _text_buffers(data: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """An Arrow string column without nulls as (int64 offsets [n + 1], uint8 bytes, the bytes' whole
    uint64 words), views of its buffers (int32 offsets widened; no words when the bytes are not
    8-byte aligned or the machine is big-endian); None for any other Arrow type or with nulls."""
    import pyarrow as pa

    from ._kernels import _read_only

    if data.null_count or not (
        pa.types.is_string(data.type) or pa.types.is_large_string(data.type)
    ):
        return None
    buffers = data.buffers()
    wide = pa.types.is_large_string(data.type)
    offsets = np.frombuffer(buffers[1], dtype=np.int64 if wide else np.int32)
    offsets = offsets[data.offset : data.offset + len(data) + 1]
    if not wide:
        offsets = offsets.astype(np.int64)
    raw = buffers[2]
    text = np.frombuffer(raw, dtype=np.uint8) if raw is not None else np.zeros(0, np.uint8)
    offsets, text = (
        _read_only(offsets),
        _read_only(text),
    )  # one compiled signature, whatever made them
    if sys.byteorder == "little" and text.ctypes.data % 8 == 0:
        words = text[: text.shape[0] // 8 * 8].view(np.uint64)
    else:
        words = _read_only(np.zeros(0, dtype=np.uint64))
    return offsets, text, words


def _change_rows(values: pd.Series, kernels: Any = None, limit: int | None = None) -> np.ndarray:
    """The rows i >= 1 whose value differs from row i - 1's (int64, rising): for an Arrow column
    found from its buffers by :func:`~excessmort._kernels.rows.text_changes` (with ``kernels``)
    or by Arrow itself, so that only the (few) positions reach numpy, not a bool per row. With a
    ``limit``, more than ``limit`` rows may be cut short to the first ``limit + 1``."""
    array = values.array
    if not isinstance(values.dtype, pd.CategoricalDtype) and hasattr(array, "__arrow_array__"):
        import pyarrow as pa
        import pyarrow.compute as pc

        data = pa.array(array)
        if isinstance(data, pa.ChunkedArray):
            data = data.combine_chunks()
        buffers = _text_buffers(data) if kernels is not None else None
        if buffers is not None:
            size = len(data) - 1 if limit is None else min(len(data) - 1, int(limit) + 1)
            if kernels.pieces and len(data) > kernels.pieces:
                # the scan in pieces, each into its own rows (its first `size` changes at most)
                bounds = np.linspace(1, len(data), kernels.pieces + 1).astype(np.int64)
                cap = min(int(np.diff(bounds).max()), size)
                parts = np.empty((kernels.pieces, cap), dtype=np.int64)
                counts = np.zeros(kernels.pieces, dtype=np.int64)
                kernels.text_changes_pieces(*buffers, bounds, parts, counts)
                found = np.concatenate([parts[p, : counts[p]] for p in range(kernels.pieces)])
                return found[:size]
            out = np.empty(max(size, 0), dtype=np.int64)
            found = kernels.text_changes(*buffers, out)
            return out[:found].copy()
        changed = pc.not_equal(data.slice(1), data.slice(0, len(data) - 1))
        if changed.null_count == 0:  # a null compares as null: the bool path below words it
            rows = pc.indices_nonzero(changed).to_numpy(zero_copy_only=False)
            return rows.astype(np.int64) + 1
    return np.flatnonzero(_change_points(values)).astype(np.int64) + 1


def _runs(work: pd.DataFrame, strata: Sequence[str], kernels: Any = None) -> np.ndarray | None:
    """Start positions of the runs of equal strata, or None when runs would not pay (unsorted);
    ``kernels`` (the row kernels, or None) as for :func:`_change_rows`."""
    n = len(work)
    if not strata or n < 2:
        return np.zeros(min(n, 1), dtype=np.int64)
    limit = _RUN_SHARE * n
    starts = np.zeros(1, dtype=np.int64)
    for c in strata:
        rows = _change_rows(work[c], kernels, int(limit))
        if rows.shape[0] > limit:
            return None
        starts = np.union1d(starts, rows)
        if starts.shape[0] - 1 > limit:
            return None
    return starts.astype(np.int64)


def _arrange(
    work: pd.DataFrame,
    chosen: list[str],
    dates: _Dates,
    deaths: np.ndarray,
    population: np.ndarray | None,
    kernels: Any = None,
) -> _Rows:
    """Strata to integer codes (once, on runs of equal strata), then the duplicate and weekly
    rules on series x week codes (grid occupancy); the slow rule functions run only to word the
    message of a rule that failed."""
    n = len(work)
    starts = _runs(work, chosen, kernels)
    if starts is None:  # unsorted: every row its own run
        starts = np.arange(n, dtype=np.int64)
    lengths = np.diff(np.append(starts, n)).astype(np.int64)
    heads = starts if starts.shape[0] < n else None
    cats: dict[str, pd.Categorical] = {}
    for c in chosen:
        col = work[c]
        cats[c] = _to_categorical(col.iloc[heads] if heads is not None else col)
    spelled = [c for c in chosen if c != "region"]
    if any(_spelling_clash(cats[c]) for c in spelled):  # the rule words it, on every row
        expanded = {c: _expand(cats[c], lengths, heads) for c in chosen}
        frame = work.copy()
        for c in chosen:
            frame[c] = expanded[c]
        v.check_strata_spelling(frame, spelled, expanded)
    run_combined = _series_codes(cats, chosen, starts.shape[0])
    if chosen:
        uniq, run_series = np.unique(run_combined, return_inverse=True)
        n_series = int(uniq.shape[0])
    else:
        run_series = np.zeros(starts.shape[0], dtype=np.int64)
        n_series = 1
    run_series = run_series.astype(np.int64, copy=False)

    stamps = dates.stamps
    ticks = dates.ticks
    day = int(dates.day)
    week_ticks = 7 * day
    if kernels is not None and n:
        if dates.first is not None and dates.last is not None:
            first, last = dates.first, dates.last
        else:
            first, last, _ = kernels.day_scan(ticks)
        # A sorted grid of every series x week, if the rows are one: their weeks are then implied
        # and only checked (no [n] array written).
        grid = n == n_series * ((last - first) // week_ticks + 1)
        week = np.empty(0 if grid else n, dtype=np.int64)
        off_row, in_order = kernels.week_codes(ticks, first, week_ticks, starts, run_series, week)
        if grid and (off_row >= 0 or not in_order):  # not a sorted grid after all: the weeks
            week = np.empty(n, dtype=np.int64)
            kernels.week_codes(ticks, first, week_ticks, starts, run_series, week)
        if off_row >= 0 and dates.first is not None:
            # Not one weekday, or not at midnight (unchecked on this path): the rule function
            # normalises the dates, then the grid is checked again on them.
            parsed = dates.series()
            return _arrange(
                work,
                chosen,
                _Dates(parsed.to_numpy(dtype="datetime64[ns]"), _DAY_NS, lambda: parsed),
                deaths,
                population,
                kernels,
            )
        off_grid = off_row >= 0
    else:
        first = int(ticks.min()) if n else 0
        offset = ticks - first
        week = offset // week_ticks
        off_grid = bool(n) and not np.array_equal(week * week_ticks, offset)
        in_order = None
    if off_grid:
        # Not one weekday: the rule functions word it (a duplicate is reported first, as before).
        frame = _slow_frame(work, chosen, cats, lengths, heads, dates.series())
        series = _series_codes({c: _expand(cats[c], lengths, heads) for c in chosen}, chosen, n)
        v.check_duplicates(frame, chosen, series)
        v.check_weekly(frame, chosen, series)
    # A sorted grid (no week array): weeks 0..n_weeks - 1 in every series, checked.
    n_weeks = int(week.max()) + 1 if week.shape[0] else (n // n_series if n else 0)
    # Sorted by series then week, with no series-week twice: weeks rise inside every run, and at
    # every run boundary the (series, week) key rises. Checked without a per-row series array.
    order: np.ndarray | None = None
    if in_order is None:
        rising = week[1:] > week[:-1]
        if starts.shape[0] > 1 and heads is not None:
            b = starts[1:]
            prev_series = run_series[:-1]
            rising[b - 1] = (run_series[1:] > prev_series) | (
                (run_series[1:] == prev_series) & (week[b] > week[b - 1])
            )
        elif heads is None and n > 1:  # every row its own run
            rising = (run_series[1:] > run_series[:-1]) | (
                (run_series[1:] == run_series[:-1]) & rising
            )
        in_order = n < 2 or bool(rising.all())
    if not in_order:
        row_series = np.repeat(run_series, lengths) if heads is not None else run_series
        key = row_series * np.int64(max(n_weeks, 1)) + week
        occupied = np.bincount(key, minlength=n_series * max(n_weeks, 1))
        if occupied.max() > 1:
            frame = _slow_frame(work, chosen, cats, lengths, heads, dates.series())
            series = _series_codes({c: _expand(cats[c], lengths, heads) for c in chosen}, chosen, n)
            v.check_duplicates(frame, chosen, series)
        order = np.argsort(key, kind="stable")
    first = first // day
    categories = {c: cats[c].categories for c in chosen}
    return _Rows(
        strata=list(chosen),
        categories=categories,
        ordered={c: bool(cats[c].ordered) for c in chosen},
        run_start=starts,
        run_len=lengths,
        run_codes={c: np.asarray(cats[c].codes, dtype=np.int64) for c in chosen},
        run_series=run_series,
        n_series=n_series,
        week=week,
        first_week=np.datetime64(first, "D"),
        n_weeks=n_weeks,
        week_ns=stamps,
        deaths=deaths,
        population=population,
        order=order,
    )


def _spelling_clash(cat: pd.Categorical) -> bool:
    """Two categories that differ only in case or spaces (what check_strata_spelling refuses)."""
    labels = pd.Index(cat.categories.astype(str))
    folded = labels.str.lower().str.replace(r"\s+", " ", regex=True).str.strip()
    return bool(folded.duplicated().any())


def _expand(cat: pd.Categorical, lengths: np.ndarray, heads: np.ndarray | None) -> pd.Categorical:
    if heads is None:
        return cat
    return pd.Categorical.from_codes(
        np.repeat(np.asarray(cat.codes), lengths), dtype=cat.dtype, validate=False
    )


def _slow_frame(
    work: pd.DataFrame,
    chosen: list[str],
    cats: dict[str, pd.Categorical],
    lengths: np.ndarray,
    heads: np.ndarray | None,
    week_ending: pd.Series,
) -> pd.DataFrame:
    """The working frame as the rule functions word their messages from (error path only)."""
    frame = work.copy()
    frame["week_ending"] = week_ending
    for c in chosen:
        frame[c] = _expand(cats[c], lengths, heads)
    return frame


def _series_codes(cats: dict[str, pd.Categorical], strata: Sequence[str], n: int) -> np.ndarray:
    """One int64 per row, ordered like the strata's categories (lexicographic over strata)."""
    code = np.zeros(n, dtype=np.int64)
    size = 1
    for c in strata:
        cat = cats[c]
        n_cat = max(len(cat.categories), 1)
        if size * n_cat >= 2**62:  # compact before the combined code could overflow
            uniq, code = np.unique(code, return_inverse=True)
            size = len(uniq)
        code = code * np.int64(n_cat) + np.asarray(cat.codes, dtype=np.int64)
        size *= n_cat
    return code.astype(np.int64)


def _check_area_names(
    work: pd.DataFrame,
    strata: Sequence[str],
    names: pd.Series,
    name_col: str,
    codes: pd.Categorical,
) -> None:
    """Refuse an ``area_name`` that names another region than its ``area_code``."""
    pairs = pd.DataFrame({"code": np.asarray(codes.codes), "name": names.to_numpy()})
    first = ~pairs.duplicated()
    for pos in np.flatnonzero(first.to_numpy()):
        name = pairs["name"].iloc[pos]
        if name is None or (not isinstance(name, str) and pd.isna(name)):
            continue
        code = codes.categories[pairs["code"].iloc[pos]]
        named = normalise_region(str(name), allow_wales=True)
        if named != code:
            label = work.index[pos]
            raise InputError(
                f"column {name_col!r} has {name!r} at {v.format_row(label)} "
                f"({v.describe_row(work, label, strata)}), which is not the name of its area code "
                f"{code}; fix the name or the code",
                column=name_col,
                value=name,
                row=int(label),
            )


# ---------------------------------------------------------------------------------------- workbooks
_MISSING_CELLS = frozenset({"", ":", "-", "..", "x", "z", "[x]", "[z]"})


def _column_letter(index: int) -> str:
    """Spreadsheet column letters of a 0-based column index (0 -> 'A', 26 -> 'AA')."""
    letters = ""
    n = index + 1
    while n:
        n, rem = divmod(n - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def _pick_sheet(names: Sequence[str], sheet: str | None, path: Path) -> str:
    listed = ", ".join(map(repr, names))
    if sheet is not None:
        for name in names:
            if name == sheet or name.strip().lower() == sheet.strip().lower():
                return name
        raise InputError(
            f"workbook {path.name!r} has no sheet {sheet!r}; its sheets are {listed}", value=sheet
        )
    for name in names:
        if re.match(r"\s*weekly\s+figures", name, re.IGNORECASE):
            return name
    if len(names) == 1:
        return names[0]
    raise InputError(
        f"workbook {path.name!r} has no sheet named like 'Weekly figures 2020'; its sheets are "
        f"{listed}: pass sheet= to choose one",
        value=None,
    )


def _sheet_rows(path: Path, sheet: str | None) -> tuple[str, list[tuple[Any, ...]]]:
    if path.suffix.lower() == ".xls":
        try:
            import xlrd  # noqa: F401
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                f"reading the .xls workbook {path.name!r} needs the 'xlrd' package "
                "(pip install xlrd), or save it as .xlsx"
            ) from exc
        book = pd.read_excel(path, sheet_name=None, header=None)
        name = _pick_sheet(list(book), sheet, path)
        rows = [
            tuple(None if (not isinstance(x, str) and pd.isna(x)) else x for x in r)
            for r in book[name].itertuples(index=False, name=None)
        ]
        return name, rows
    try:
        import openpyxl
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "reading a workbook needs openpyxl: pip install 'excessmort[io]'"
        ) from exc
    try:  # a file object: openpyxl judges a path by its suffix, and a workbook may be misnamed
        book = openpyxl.load_workbook(io.BytesIO(path.read_bytes()), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises zip, XML and its own errors for a damaged file
        raise InputError(
            f"cannot read the workbook {path.name!r}: it is damaged or not a workbook "
            f"({type(exc).__name__}: {exc})",
            value=path.name,
        ) from None
    try:
        name = _pick_sheet(book.sheetnames, sheet, path)
        rows = [tuple(r) for r in book[name].iter_rows(values_only=True)]
    finally:
        book.close()
    return name, rows


def _as_date(cell: Any) -> pd.Timestamp | None:
    if isinstance(cell, dt.datetime | dt.date):
        return pd.Timestamp(cell).normalize()
    if isinstance(cell, str) and cell.strip():
        parsed = pd.to_datetime(cell.strip(), errors="coerce", dayfirst=True)
        return None if pd.isna(parsed) else pd.Timestamp(parsed).normalize()
    return None


def _is_blank(cell: Any) -> bool:
    return cell is None or (isinstance(cell, str) and cell.strip().lower() in _MISSING_CELLS)


def _region_of_row(row: tuple[Any, ...], width: int) -> str | None:
    """'england', a region/Wales code, or None, from the label cells of a row."""
    for cell in row[:width]:
        if isinstance(cell, str) and cell.strip():
            label = re.sub(r"\s*\d+$", "", cell.strip())  # footnote markers: "Wales 4"
            if is_england(label) or is_england(cell):
                return "england"
            code = normalise_region(cell, allow_wales=True) or normalise_region(
                label, allow_wales=True
            )
            if code is not None:
                return code
    return None


def _read_workbook(path: Path, *, sheet: str | None) -> pd.DataFrame:
    """The regional table of an ONS weekly-deaths workbook as a long frame.

    Layout ("Deaths registered weekly in England and Wales, provisional"): a sheet such as
    "Weekly figures 2020"; title rows; a row labelled "Week ended" holding the week-ending dates
    (one column per week); further down, a section "Deaths by Region of usual residence" whose rows
    are the regions (names, or codes beside names) and Wales, one count per week column.
    """
    name, rows = _sheet_rows(path, sheet)
    where = f"sheet {name!r} of {path.name!r}"

    sections = [
        r
        for r, row in enumerate(rows)
        if any(isinstance(c, str) and re.search(r"\bregion\b", c, re.IGNORECASE) for c in row)
    ]
    if not sections:
        raise InputError(
            f"{where} has no regional table: no row labelled 'Deaths by Region of usual "
            "residence' (pass sheet= to choose the sheet that holds it)",
            value=name,
        )

    def week_row(candidates: range) -> tuple[int, int, dict[int, pd.Timestamp]] | None:
        for r in candidates:
            row = rows[r]
            for c, cell in enumerate(row):
                if isinstance(cell, str) and re.match(r"\s*week\s+end(ed|ing)\b", cell, re.I):
                    dates = {j: d for j in range(c + 1, len(row)) if (d := _as_date(row[j]))}
                    if dates:
                        return r, min(dates), dates
        return None

    def region_block(section: int, width: int) -> list[tuple[int, str]]:
        block: list[tuple[int, str]] = []
        for r in range(section + 1, len(rows)):
            code = _region_of_row(rows[r], width)
            if code is None:
                if block or not all(_is_blank(c) for c in rows[r]):
                    break  # the section ends at the first row that is not a region
                continue
            block.append((r, code))
        return block

    region_rows: list[tuple[int, str]] = []
    dates: dict[int, pd.Timestamp] = {}
    first_col = 0
    for section in sections:
        found = week_row(range(section, -1, -1)) or week_row(range(len(rows)))
        if found is None:
            raise InputError(
                f"{where} has no 'Week ended' row with the week-ending dates above its regional "
                "table",
                value=name,
            )
        _, first_col, dates = found
        region_rows = region_block(section, first_col)
        if region_rows:
            break
    if not region_rows:
        raise InputError(
            f"{where} has no regional table: no region rows (such as 'North East' or E12000001) "
            f"follow a row naming the regions (row {sections[0] + 1})",
            value=name,
        )

    week_cols = sorted(dates)
    values = np.full((len(region_rows), len(week_cols)), np.nan)
    for i, (r, _) in enumerate(region_rows):
        row = rows[r]
        for j, c in enumerate(week_cols):
            cell = row[c] if c < len(row) else None
            if _is_blank(cell):
                continue
            if isinstance(cell, bool):
                number = math.nan
            elif isinstance(cell, int | float):
                number = float(cell)
            else:
                try:
                    number = float(str(cell).replace(",", "").strip())
                except ValueError:
                    number = math.nan
            if math.isnan(number):
                raise InputError(
                    f"{where}, cell {_column_letter(c)}{r + 1} has the non-numeric value {cell!r} "
                    f"(region {region_rows[i][1]}, week ending {dates[c].date()}); deaths must be "
                    "counts",
                    column="deaths",
                    value=cell,
                    row=r,
                )
            values[i, j] = number

    published = ~np.all(np.isnan(values), axis=0)
    if not published.all():
        logger.info(
            "%s: left out %d week columns with no figures yet", where, int((~published).sum())
        )
    codes = [code for _, code in region_rows]
    keep = np.array([code != "england" for code in codes], dtype=bool)
    if not keep.all():
        logger.info(
            "%s: skipped the England row: England is derived as the sum of the regions", where
        )
    week_dates = pd.DatetimeIndex([dates[c] for c in week_cols])[published]
    values = values[keep][:, published]
    kept_codes = [c for c, k in zip(codes, keep, strict=True) if k]
    n_weeks = len(week_dates)
    logger.info("%s: read %d areas x %d weeks", where, len(kept_codes), n_weeks)
    return pd.DataFrame(
        {
            "region": np.repeat(np.array(kept_codes, dtype=object), n_weeks),
            "week_ending": np.tile(week_dates.to_numpy(dtype="datetime64[ns]"), len(kept_codes)),
            "deaths": values.reshape(-1),
        }
    )
