"""The same fit on a Dask cluster, for panels that do not fit in one machine's memory.

Series are independent given the shared weekly calendar, so a panel partitions cleanly by series:

1. one small pass over the raw partitions (only the strata and week columns are read) finds the global
   weekly calendar, the categories of every stratum, and whether any series is split across
   partitions;
2. only if one is, the frame is shuffled on the stratum columns so that every partition holds whole
   series;
3. every partition is validated with :func:`excessmort.read` and fitted through the in-memory path
   (``Panel.from_frame`` -> ``baseline.fit`` -> :class:`excessmort.Fit`) on the *global* calendar,
   so every partition shares one design matrix and the numba kernels give each series exactly the
   result the in-memory fit gives it;
4. results stay on the workers: ``weekly`` and ``coefficients`` are Dask DataFrames, ``to_parquet``
   writes them partition by partition, and aggregates over series (``by()``, England) are reduced
   from per-partition sums of observed, mu, phi mu and the parameter variance (weekly [G, T], over a
   window [G]). Per-series GLM fits are independent, so these sums add exactly across partitions; the
   client applies the same interval code (:func:`excessmort.excess.excess_arrays` and the baseline's
   prediction rule) to the small reduced arrays.

The ``pooled`` baseline is one joint fit over all series and cannot be partitioned.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import logging
import os
import threading
import uuid
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ._fit import (
    Fit,
    _check_reference,
    _exclusion_mask,
    _fit_baseline,
    _pandemic_excluded,
    cumulative_frame,
    weekly_frame,
)
from .baselines import Baseline, get_baseline
from .baselines._util import group_sum
from .exceptions import ConvergenceWarning, DispersionWarning, InputError
from .excess import excess_arrays, validate_level
from .panel import Panel
from .regions import WALES_CODE, is_england, normalise_region
from .weeks import weekly_grid

if TYPE_CHECKING:
    import dask.dataframe as dd
    from dask.delayed import Delayed

__all__ = ["DaskFit", "DaskFitView", "fit_dask", "is_dask_frame", "read_dask"]

log = logging.getLogger("excessmort")

_VALUE_TARGETS = ("week_ending", "deaths", "population")
#: Frames made by :func:`read_dask` (by Dask name): their calendar, categories and keep_wales.
_TIDY_LAYOUTS: dict[str, tuple[pd.DatetimeIndex, dict[str, pd.CategoricalDtype], bool]] = {}
#: Partial results are merged on the workers in groups of this many before the client sees them.
_TREE_WIDTH = 16


def is_dask_frame(obj: Any) -> bool:
    """True for a Dask DataFrame (checked without importing dask)."""
    return hasattr(obj, "npartitions") and hasattr(obj, "to_delayed") and hasattr(obj, "columns")


# ---------------------------------------------------------------------------------------- plan
@dataclass(frozen=True)
class _Columns:
    """How the raw columns map to the tidy frame (from :func:`excessmort.io._recognise`)."""

    strata_raw: tuple[str, ...]  # raw column names of the strata, input order
    strata: tuple[str, ...]  # their tidy names (``area_code`` -> ``region``)
    week_col: Any
    region_source: Any  # raw column that becomes ``region``, or None
    read_strata: tuple[str, ...] | None  # ``strata=`` given to read()
    keep_wales: bool
    has_population: bool


@dataclass(frozen=True)
class _Plan:
    """What every partition task needs: small, shipped once in the graph."""

    columns: _Columns
    weeks: pd.DatetimeIndex
    categories: dict[str, pd.CategoricalDtype]
    model: Baseline | None
    reference: tuple[pd.Timestamp, pd.Timestamp] | None
    level: float
    engine: str
    dependence: bool = False
    dispersion_check: Any = "auto"
    #: the weeks [T] of ``exclude=`` on the global calendar (None: no window)
    excluded: np.ndarray | None = None
    #: refuse series with fewer observed reference weeks than the baseline's minimum
    check_history: bool = True


def _recognise(columns: Sequence[Any], strata: Sequence[str] | None, keep_wales: bool) -> _Columns:
    from . import validate as v
    from .io import _recognise as recognise

    canon, region_source, _ = recognise(list(columns), strata)
    v.check_required_columns(list(canon.values()), present=list(columns))
    strata_raw = [c for c in columns if c in canon and canon[c] not in _VALUE_TARGETS]
    if strata is not None:
        wanted = {
            "region" if str(s).lower() in ("region", "area_code", "area_name") else str(s)
            for s in strata
        }
        strata_raw = [c for c in strata_raw if canon[c] in wanted or c in wanted]
    week_col = next(c for c in columns if canon.get(c) == "week_ending")
    return _Columns(
        strata_raw=tuple(strata_raw),
        strata=tuple(canon[c] for c in strata_raw),
        week_col=week_col,
        region_source=region_source if region_source in strata_raw else None,
        read_strata=None if strata is None else tuple(strata),
        keep_wales=bool(keep_wales),
        has_population="population" in canon.values(),
    )


def _in_partition(exc: InputError, index: int) -> InputError:
    """The same error, saying which partition (row numbers count within the partition)."""
    out = InputError(
        f"partition {index} (rows counted within it): {exc}",
        column=exc.column,
        value=exc.value,
        row=exc.row,
    )
    return out


def _kept_rows(frame: pd.DataFrame, cols: _Columns) -> np.ndarray | None:
    """Rows read() keeps (Wales is left out unless asked for); None when it keeps every row."""
    if cols.region_source is None or cols.keep_wales:
        return None
    codes, uniques = pd.factorize(frame[cols.region_source], sort=False)
    wales = np.array(
        [normalise_region(str(u), allow_wales=True) == WALES_CODE for u in uniques], dtype=bool
    )
    if not wales.any():
        return None
    return ~(wales[codes] & (codes >= 0))


# ---------------------------------------------------------------------------------------- parquet
@dataclass(frozen=True)
class _ParquetPiece:
    """One partition of a frame straight from ``dd.read_parquet``, read by excessmort itself: the
    text strata as Arrow dictionaries (:func:`_parquet_pieces`). Small: each task carries its own.

    Parquet stores a text column as a dictionary of its distinct values and codes; Dask's reader
    decodes it into one string per row, which read() then hashes back into codes. Read as a
    dictionary, the strata cost a fraction of that (measured in process per 2,000-series x
    470-week partition of ``benchmarks.bench_dask``: pass 1's read of the strata and week 54 ms ->
    24 ms and its summary 29 -> 6 ms; the whole partition read 41 -> 29 ms and read()'s validation
    into its panel 31 -> 10 ms).
    """

    fs: Any  # Dask's fsspec filesystem of the dataset
    path: str
    row_groups: tuple[int, ...] | None  # None: the whole file
    columns: tuple[Any, ...]  # in the Dask frame's order
    text: tuple[Any, ...]  # the strata among them stored as text: read as dictionaries
    convert_string: bool  # Dask's own option: text as pandas' pyarrow-backed strings

    def _table(self, text: Sequence[Any]) -> Any:
        import pyarrow.parquet as pq
        from fsspec.implementations.local import LocalFileSystem

        local = isinstance(self.fs, LocalFileSystem)  # pyarrow's own file reads: a little faster
        opened = contextlib.nullcontext(self.path) if local else self.fs.open(self.path, "rb")
        with opened as fh:
            pf = pq.ParquetFile(fh, read_dictionary=list(text), pre_buffer=True)
            kwargs = {"columns": list(self.columns), "use_threads": False}
            if self.row_groups is None:
                return pf.read(use_pandas_metadata=True, **kwargs)
            return pf.read_row_groups(list(self.row_groups), use_pandas_metadata=True, **kwargs)

    def _to_pandas(self, table: Any) -> pd.DataFrame:
        """``table`` as Dask's reader converts it (its own conversion, with its options)."""
        from dask.dataframe.io.parquet.arrow import ArrowDatasetEngine

        return ArrowDatasetEngine._arrow_table_to_pandas(
            table, None, dtype_backend=None, convert_string=self.convert_string
        )

    def read(self, *, as_dask: bool = False) -> pd.DataFrame:
        """The partition's frame: the text strata as categoricals whose categories are in read()'s
        own order (so that read() gives the series, keys and codes it gives the text); the other
        columns as Dask converts them. ``as_dask``: every column as Dask gives it."""
        if as_dask:
            return self._to_pandas(self._table(()))
        table = self._table(self.text)
        rest = [c for c in self.columns if c not in self.text]
        frame = (
            self._to_pandas(table.select(rest))
            if rest
            else pd.DataFrame(index=pd.RangeIndex(table.num_rows))
        )
        out = {
            c: _natural_categorical(table.column(c)) if c in self.text else frame[c]
            for c in self.columns
        }
        return pd.DataFrame(out, index=frame.index, columns=list(self.columns), copy=False)


def _natural_categorical(column: Any) -> pd.Categorical:
    """A dictionary column as a Categorical whose categories are in read()'s order of text strata
    (natural order, :func:`excessmort.io._natural_key`); nulls stay missing. The codes are the
    column's own indices mapped through the rank of each dictionary value (one gather)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from .io import _natural_key

    if column.num_chunks == 0:
        return pd.Categorical([], categories=pd.Index([], dtype=str))
    if column.num_chunks > 1:  # several row groups: one dictionary for all of them
        chunks = column.unify_dictionaries().chunks
        indices = pa.chunked_array([c.indices for c in chunks]).combine_chunks()
        dictionary = chunks[0].dictionary
    else:
        indices, dictionary = column.chunk(0).indices, column.chunk(0).dictionary
    texts = dictionary.to_pylist()
    n = len(texts)
    order = sorted(range(n), key=lambda k: _natural_key(texts[k]))
    code_type = np.int8 if n < 127 else np.int16 if n < 32_767 else np.int32
    rank = np.empty(n + 1, dtype=code_type)
    rank[order] = np.arange(n)
    rank[n] = -1  # a null's code
    nulls = indices.null_count > 0
    if nulls:
        indices = pc.fill_null(indices, n)
    values = indices.to_numpy(zero_copy_only=False)
    if order == list(range(n)):  # a dictionary in natural order already (a sorted file)
        codes = values.astype(code_type)
        if nulls:
            codes[values == n] = -1
    else:
        codes = rank.take(values)
    dtype = pd.CategoricalDtype(pd.Index([texts[k] for k in order], dtype=str))
    return pd.Categorical.from_codes(codes, dtype=dtype, validate=False)


def _parquet_pieces(ddf: Any, strata: Sequence[Any]) -> list[_ParquetPiece] | None:
    """The partitions of ``ddf`` as :class:`_ParquetPiece` when ``ddf`` is ``dd.read_parquet(path)``
    (or a selection of its columns) with Dask's default options and text strata; None otherwise
    (any other frame, or any option that changes what Dask reads: filters, an index, categories,
    hive partitions, dtype_backend, ...), and then Dask reads the partitions."""
    try:
        import pyarrow as pa
        from dask.dataframe.dask_expr.io.parquet import ReadParquetFSSpec

        expr = ddf.expr
        if not isinstance(expr, ReadParquetFSSpec):
            expr = expr.simplify()
        if type(expr) is not ReadParquetFSSpec or expr.operand("kwargs") != {"dtype_backend": None}:
            return None
        defaults = {"filters": None, "categories": None, "index": None, "_partitions": None}
        if any(expr.operand(k) is not None for k in defaults) or expr.operand("_series"):
            return None
        if expr.operand("aggregate_files") or expr.operand("calculate_divisions"):
            return None
        info = expr._dataset_info
        if info["index_cols"] or info["partitions"] or info["partition_names"]:
            return None
        columns = list(ddf.columns)
        if len(set(columns)) < len(columns):
            return None
        if list(expr.columns) != columns or ddf._meta.index.name is not None:
            return None
        plan = expr._plan
        schema = plan["common_kwargs"]["schema"]
        convert_string = bool(plan["common_kwargs"]["convert_string"])
        text = tuple(
            c
            for c in strata
            if c in columns
            and (
                pa.types.is_string(schema.field(c).type)
                or pa.types.is_large_string(schema.field(c).type)
            )
        )
        if not text:
            return None
        pieces = []
        for part in plan["parts"]:
            if not isinstance(part, dict) or set(part) != {"piece"}:
                return None
            path, row_groups, keys = part["piece"]
            if keys or not isinstance(path, str):
                return None
            pieces.append(
                _ParquetPiece(
                    fs=info["fs"],
                    path=path,
                    row_groups=None if row_groups is None else tuple(int(r) for r in row_groups),
                    columns=tuple(columns),
                    text=text,
                    convert_string=convert_string,
                )
            )
    except (ImportError, AttributeError, KeyError, TypeError, ValueError):  # another Dask
        return None
    if len(pieces) != ddf.npartitions:
        return None
    return pieces


def _on_frame(part: Any, func: Callable[[pd.DataFrame], Any]) -> Any:
    """``func(frame)`` of a partition, a frame or a :class:`_ParquetPiece` (read here, inside the
    task). Bad input in a piece is met again on the frame Dask would have given (every column as
    Dask reads it), so that the error is the one Dask's partition gives, whatever the reading."""
    if not isinstance(part, _ParquetPiece):
        return func(part)
    try:
        return func(part.read())
    except InputError:
        pass
    return func(part.read(as_dask=True))


# ---------------------------------------------------------------------------------------- pass 1
def _run_starts(frame: pd.DataFrame) -> np.ndarray:
    """Rows whose values differ from the previous row's in some column (the first row always)."""
    starts = np.zeros(len(frame), dtype=bool)
    starts[:1] = True
    for col in frame.columns:
        values = frame[col].array
        differ = values[1:] != values[:-1]
        if isinstance(differ, pd.api.extensions.ExtensionArray):
            differ = differ.fillna(True)
        differ = np.asarray(differ, dtype=bool)
        # NaN != NaN: a run of missing values starts again every row, which only costs time.
        starts[1:] |= differ
    return starts


def _weekly_calendar(
    raw: pd.Series, engine: str = "auto"
) -> tuple[pd.Timestamp, pd.Timestamp, np.ndarray] | None:
    """(first, last, weekday residues) of a datetime64 column at midnight whose dates all fall on
    one weekday, in two passes of the row kernels (no conversion, no sort); None for anything else
    (``check_dates`` and the general computation then)."""
    from ._kernels import row_kernels
    from .io import _midnight_dates

    kernels = row_kernels(engine, len(raw))
    dates = _midnight_dates(raw, kernels)
    if dates is None or dates.first is None or dates.last is None or len(raw) == 0:
        return None
    one = np.zeros(1, dtype=np.int64)
    week = 7 * dates.day
    off_row, _ = kernels.week_codes(dates.ticks, dates.first, week, one, one, one[:0])
    if off_row >= 0:
        return None
    unit = np.datetime_data(dates.stamps.dtype)[0]

    def stamp(ticks: int) -> pd.Timestamp:
        return pd.Timestamp(np.datetime64(ticks, unit).astype("datetime64[ns]"))

    residue = np.array([(dates.first // dates.day) % 7], dtype=np.int64)
    return stamp(dates.first), stamp(dates.last), residue


def _summarise(part: pd.DataFrame, cols: _Columns, index: int) -> dict[str, Any]:
    """Calendar, stratum values and series hashes of one raw partition."""
    if isinstance(part, _ParquetPiece):
        return _summarise_piece(part, cols, index)
    if len(part) == 0:
        return {"n": 0}
    frame = part.reset_index(drop=True)
    keep = _kept_rows(frame, cols)
    if keep is not None:
        frame = frame.loc[keep].reset_index(drop=True)
        if len(frame) == 0:
            return {"n": 0}
    # Every stratum value and every series shows at the first row of a run of equal keys; long
    # format keeps a series' weeks together, so hashing only those rows is ~6x cheaper than all.
    strata = frame[list(cols.strata_raw)]
    return _summary(frame[cols.week_col], strata.loc[_run_starts(strata)], len(frame), cols, index)


def _summarise_piece(piece: _ParquetPiece, cols: _Columns, index: int) -> dict[str, Any]:
    """:func:`_summarise` of a Parquet piece from its Arrow table: the runs of equal keys found on
    the strata's dictionary codes, and only the rows that start one decoded to text (as Dask
    converts them), so the summary is the one of Dask's partition. With Wales to leave out (rows
    chosen by their values) the piece is read into a frame first."""
    import pyarrow as pa

    if cols.region_source is not None and not cols.keep_wales:
        return _on_frame(piece, functools.partial(_summarise, cols=cols, index=index))
    try:
        table = piece._table(piece.text)
        if table.num_rows == 0:
            return {"n": 0}
        plain = piece._to_pandas(table.select([c for c in piece.columns if c not in piece.text]))
        strata = list(cols.strata_raw)
        other = [c for c in strata if c not in piece.text]
        starts = _run_starts(plain[other]) if other else np.zeros(table.num_rows, dtype=bool)
        starts[:1] = True
        for c in piece.text:  # a run starts where a code differs from the previous row's
            codes = _dictionary_codes(table.column(c))
            starts[1:] |= codes[1:] != codes[:-1]
        rows = np.flatnonzero(starts)
        text = [c for c in strata if c in piece.text]
        decoded = piece._to_pandas(
            pa.table(
                {
                    c: table.column(c).take(rows).cast(table.schema.field(c).type.value_type)
                    for c in text
                }
            )
        )
        first = pd.DataFrame(
            {c: (decoded[c] if c in piece.text else plain[c].iloc[rows]).array for c in strata},
            index=pd.Index(rows),
        )
        return _summary(plain[cols.week_col], first, table.num_rows, cols, index)
    except InputError:  # the error of Dask's partition (or its summary)
        return _summarise(piece.read(as_dask=True), cols, index)


def _dictionary_codes(column: Any) -> np.ndarray:
    """The codes of a dictionary column, one dictionary for all its chunks; nulls are -1."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if column.num_chunks == 1:
        indices = column.chunk(0).indices
    else:
        column = column.unify_dictionaries()
        chunks = [c.indices for c in column.chunks]
        indices = pa.chunked_array(chunks, type=column.type.index_type).combine_chunks()
    if indices.null_count:
        indices = pc.fill_null(indices, -1)
    return indices.to_numpy(zero_copy_only=False)


def _summary(
    week: pd.Series, strata: pd.DataFrame, n: int, cols: _Columns, index: int
) -> dict[str, Any]:
    """The summary of a partition of ``n`` rows from its week column and the rows of its strata
    that start a run of equal keys."""
    from . import validate as v

    calendar = _weekly_calendar(week)
    if calendar is None:
        try:
            dates = v.check_dates(pd.DataFrame({"week_ending": week}), [])
        except InputError as exc:
            raise _in_partition(exc, index) from exc
        days = dates.to_numpy(dtype="datetime64[ns]").astype("datetime64[D]").astype(np.int64)
        calendar = dates.min(), dates.max(), np.unique(days % 7)
    hashes = (
        np.unique(pd.util.hash_pandas_object(strata, index=False).to_numpy())
        if cols.strata_raw
        else np.zeros(1, dtype=np.uint64)
    )
    return {
        "n": n,
        "lo": calendar[0],
        "hi": calendar[1],
        "residues": calendar[2],
        "hashes": hashes,
        "uniques": {c: strata[c].dropna().unique() for c in cols.strata_raw},
    }


def _categories(uniques: dict[Any, list[Any]], cols: _Columns) -> dict[str, pd.CategoricalDtype]:
    """The categorical dtype read() gives each stratum of the whole frame (natural order, or the
    input's own order for a categorical column; region codes)."""
    from .io import _to_categorical

    out: dict[str, pd.CategoricalDtype] = {}
    for raw, name in zip(cols.strata_raw, cols.strata, strict=True):
        values = uniques[raw]
        if raw == cols.region_source:
            texts = {str(u) for part in values for u in part}
            codes = {normalise_region(t, allow_wales=True) for t in texts if not is_england(t)}
            codes.discard(None)
            if not cols.keep_wales:
                codes.discard(WALES_CODE)
            out[name] = pd.CategoricalDtype(pd.Index(sorted(codes)).astype(str))  # type: ignore[type-var]
            continue
        series = [pd.Series(part) for part in values if len(part)]
        if not series:
            out[name] = pd.CategoricalDtype(pd.Index([], dtype=object).astype(str))
            continue
        joined = pd.concat(series, ignore_index=True)
        out[name] = _to_categorical(joined.drop_duplicates()).dtype
    return out


# ---------------------------------------------------------------------------------------- client
def _get_client(client: Any) -> Any:
    """A distributed Client from ``client`` (a Client, a scheduler address) or the default one."""
    if client is not None and not isinstance(client, str):
        return client
    try:
        from distributed import Client, default_client
    except ImportError as exc:  # pragma: no cover - distributed is in the dask extra
        if client is not None:
            raise ImportError(
                "a scheduler address needs the 'distributed' package: pip install 'excessmort[dask]'"
            ) from exc
        return None
    if isinstance(client, str):
        return Client(client, set_as_default=False)
    try:
        return default_client()
    except ValueError:
        return None  # no cluster: Dask's local scheduler


#: glibc's ``M_MMAP_THRESHOLD`` option of ``mallopt``.
_M_MMAP_THRESHOLD = -3
#: Allocations below this come from the heap and are reused across partitions (glibc's own ceiling
#: for its dynamic threshold on 64-bit Linux); see :func:`tune_malloc`.
MMAP_THRESHOLD = 32 * 2**20


def tune_malloc(threshold: int | None = None) -> bool:
    """Let glibc reuse freed heap memory for arrays below ``threshold`` bytes (default 32 MiB).

    Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536`` so that freed memory goes
    back to the system. Setting any such variable also freezes glibc's mmap threshold at 128 KiB, so
    every partition's [S, T] arrays (7.5 MB for 2,000 series x 470 weeks) are fresh ``mmap`` pages,
    faulted in and zeroed each time (measured per 2,000-series partition: 0.84 s against 0.69 s on a
    Dask worker). Raising the mmap threshold to glibc's own dynamic ceiling restores its default reuse;
    the trim threshold still returns the top of the heap to the system. Environment variable
    ``EXCESSMORT_MMAP_THRESHOLD``: bytes, or ``0`` to leave the allocator alone.

    Returns
    -------
    bool
        Whether the threshold was set (False off glibc, or when turned off).
    """
    import ctypes
    import ctypes.util

    if threshold is None:
        threshold = int(os.environ.get("EXCESSMORT_MMAP_THRESHOLD", MMAP_THRESHOLD))
    if threshold <= 0:
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl without mallopt)
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, ctypes.c_int(threshold)))


def _prepare_worker() -> float:
    tune_malloc()
    from ._kernels import warmup

    return warmup()


def warm_workers(client: Any) -> dict[str, float]:
    """Compile or load the kernels on every worker, one worker first so the rest only read numba's
    cache (no concurrent cache writes), and set each worker's allocator with :func:`tune_malloc`;
    returns seconds per worker."""
    from ._kernels import warmup

    if client is None:
        return {"local": warmup()}
    workers = sorted(client.scheduler_info().get("workers", {}))
    if not workers:
        return {}
    first = client.run(_prepare_worker, workers=workers[:1])
    rest = client.run(_prepare_worker, workers=workers[1:]) if len(workers) > 1 else {}
    seconds = {**first, **rest}
    log.info(
        "warmed %d workers: %s", len(seconds), ", ".join(f"{t:.2f} s" for t in seconds.values())
    )
    return seconds


def _compute(client: Any, tasks: list[Any], retries: int) -> list[Any]:
    import dask

    if client is None:
        return list(dask.compute(*tasks))
    return list(client.compute(tasks, sync=True, retries=retries))


# ---------------------------------------------------------------------------------------- pass 2
def _with_categories(
    frame: pd.DataFrame, categories: dict[str, pd.CategoricalDtype], columns: Sequence[str]
) -> pd.DataFrame:
    """Give stratum columns the global categories (a value outside them is an internal error)."""
    frame = frame.copy()
    for col in columns:
        before = frame[col].isna().to_numpy()
        frame[col] = frame[col].astype(categories[col])
        if (frame[col].isna().to_numpy() & ~before).any():
            bad = frame[col].astype(object)[frame[col].isna() & ~before].iloc[0]
            raise RuntimeError(
                f"stratum {col!r}: value {bad!r} is missing from the global categories"
            )
    return frame


def _read_partition(
    part: pd.DataFrame, cols: _Columns, categories: dict[str, pd.CategoricalDtype], index: int
) -> pd.DataFrame | None:
    """read() one partition (holding whole series) and give it the global categories."""
    from .io import read

    if isinstance(part, _ParquetPiece):
        call = functools.partial(_read_partition, cols=cols, categories=categories, index=index)
        return _on_frame(part, call)
    if len(part) == 0:
        return None
    keep = _kept_rows(part.reset_index(drop=True), cols)
    if keep is not None and not keep.any():
        return None  # only Wales, left out
    try:
        tidy = read(part, strata=cols.read_strata, keep_wales=cols.keep_wales)
    except InputError as exc:
        raise _in_partition(exc, index) from exc
    return _with_categories(tidy, categories, cols.strata)


def _read_panel_partition(
    part: pd.DataFrame, cols: _Columns, index: int, engine: str = "auto"
) -> Panel | None:
    """``Panel.from_frame(read(part))`` of one partition (holding whole series) without the tidy
    frame: the same validation and messages (:func:`excessmort.io._read_panel`)."""
    from .io import _read_panel

    if isinstance(part, _ParquetPiece):
        call = functools.partial(_read_panel_partition, cols=cols, index=index, engine=engine)
        return _on_frame(part, call)
    if len(part) == 0:
        return None
    keep = _kept_rows(part.reset_index(drop=True), cols)
    if keep is not None and not keep.any():
        return None  # only Wales, left out
    try:
        return _read_panel(
            part,
            strata=cols.read_strata,
            keep_wales=cols.keep_wales,
            engine=engine,
        )
    except InputError as exc:
        raise _in_partition(exc, index) from exc


def _on_calendar(
    panel: Panel, weeks: pd.DatetimeIndex, categories: dict[str, pd.CategoricalDtype]
) -> Panel:
    """The panel on the global calendar and categories: weeks it lacks are NaN deaths, and
    population is carried to them as :meth:`Panel.from_frame` carries it (nearest known value);
    series in the order of the global categories' codes (as ``Panel.from_frame`` orders them)."""
    keys = panel.keys.copy()
    for col in keys.columns:
        before = keys[col].isna().to_numpy()
        keys[col] = keys[col].astype(categories[col])
        if (keys[col].isna().to_numpy() & ~before).any():
            bad = panel.keys[col].astype(object)[keys[col].isna() & ~before].iloc[0]
            raise RuntimeError(
                f"stratum {col!r}: value {bad!r} is missing from the global categories"
            )
    if len(keys.columns) and len(keys) > 1:
        codes = [keys[c].cat.codes.to_numpy() for c in keys.columns]
        order = np.lexsort(codes[::-1])
        if not np.array_equal(order, np.arange(len(keys))):
            keys = keys.iloc[order].reset_index(drop=True)
            panel = Panel(
                keys=panel.keys.iloc[order].reset_index(drop=True),
                weeks=panel.weeks,
                deaths=np.ascontiguousarray(panel.deaths[order]),
                exposure=None
                if panel.exposure is None
                else np.ascontiguousarray(panel.exposure[order]),
            )
    if len(panel.weeks) == len(weeks) and panel.weeks.equals(weeks):
        return Panel(keys=keys, weeks=weeks, deaths=panel.deaths, exposure=panel.exposure)
    start = int((panel.weeks[0] - weeks[0]).days) // 7
    stop = start + panel.n_weeks
    if start < 0 or stop > len(weeks) or (panel.weeks[0] - weeks[0]).days % 7:
        raise InputError(
            f"the weeks {panel.weeks[0].date()} to {panel.weeks[-1].date()} of a partition are not on the "
            f"weekly calendar {weeks[0].date()} to {weeks[-1].date()} of the whole frame",
            column="week_ending",
            value=panel.weeks[0],
        )
    deaths = np.full((panel.n_series, len(weeks)), np.nan)
    deaths[:, start:stop] = panel.deaths
    exposure = None
    if panel.exposure is not None:
        padded = np.full((panel.n_series, len(weeks)), np.nan)
        padded[:, start:stop] = panel.exposure
        exposure = (
            pd.DataFrame(padded.T).ffill().bfill().to_numpy(dtype=np.float64).T.copy(order="C")
        )
    return Panel(keys=keys, weeks=weeks, deaths=deaths, exposure=exposure)


def _check_dispersion_rule(check: Any) -> None:
    """Refuse a ``dispersion_check`` the workers could not apply, before any task runs."""
    from ._dispersion import judge_dispersion

    try:
        judge_dispersion([1.0], [1.0], check)
    except (TypeError, ValueError, IndexError):
        raise InputError(
            "dispersion_check must be 'auto', a coefficient of variation (a number), a (low, high) "
            f"pair or None, got {check!r}",
            column="dispersion_check",
            value=check,
        ) from None


def _fit_tidy(tidy: pd.DataFrame, plan: _Plan) -> Fit:
    """The in-memory path on one partition's tidy frame, on the global calendar."""
    return _fit_panel(Panel.from_frame(tidy), plan)


def _fit_panel(panel: Panel, plan: _Plan) -> Fit:
    """The in-memory path on one partition's panel, on the global calendar and categories."""
    assert plan.model is not None
    panel = _on_calendar(panel, plan.weeks, plan.categories)
    if plan.check_history and plan.reference is not None and panel.n_series:
        from . import validate

        need = int(getattr(plan.model, "min_reference_weeks", 0))
        validate.check_history(
            panel, plan.reference, need, baseline=getattr(plan.model, "name", None)
        )
    result = _fit_baseline(plan.model, panel, plan.reference, plan.engine, plan.excluded)  # type: ignore[arg-type]
    out = Fit(
        panel=panel,
        result=result,
        model=plan.model,
        reference=plan.reference,
        level=plan.level,
        dependence=False,  # sums are reduced across partitions under independence (see fit_dask)
    )
    out._dispersion_check = plan.dispersion_check
    out.excluded = plan.excluded
    return out


def _fit_partition(part: pd.DataFrame, plan: _Plan, index: int) -> Fit | None:
    panel = _read_panel_partition(part, plan.columns, index, plan.engine)
    if panel is None:
        return None
    return _fit_panel(panel, plan)


def _fit_tidy_partition(tidy: pd.DataFrame, plan: _Plan) -> Fit | None:
    """A partition of :func:`read_dask`'s frame: already validated, with the global categories."""
    return None if len(tidy) == 0 else _fit_tidy(tidy, plan)


def _fit_any(part: pd.DataFrame, plan: _Plan, index: int, tidy: bool) -> Fit | None:
    return _fit_tidy_partition(part, plan) if tidy else _fit_partition(part, plan, index)


#: What a task does with a fitted partition: ``func(fit, *args)``.
Job = tuple[Callable[..., Any], tuple[Any, ...]]


def _run_jobs(fit: Fit | None, jobs: Sequence[Job]) -> tuple[Any, ...]:
    return tuple(func(fit, *args) for func, args in jobs)


def _fit_and_run(
    part: pd.DataFrame, plan: _Plan, index: int, tidy: bool, jobs: Sequence[Job]
) -> tuple[Any, ...]:
    """Fit one partition and run ``jobs`` on it in the same task, so that the fitted arrays (about
    ten [S, T] float arrays) live only while this task runs, whatever order the scheduler picks."""
    return _run_jobs(_fit_any(part, plan, index, tidy), jobs)


with contextlib.suppress(ImportError):  # dask is an extra; this module is only used with it
    from dask.sizeof import sizeof as _sizeof

    @_sizeof.register(Fit)
    def _fit_nbytes(fit: Fit) -> int:
        """Bytes of a fitted partition, so that Dask's memory accounting (spill, pause) sees a
        persisted fit at its real size rather than as a small Python object: Dask's own ``sizeof``
        of every attribute of the panel, the result and the objects they hold (the design, caches)."""

        def size(obj: Any) -> int:
            if hasattr(obj, "__dict__") and not isinstance(
                obj, np.ndarray | pd.Index | pd.DataFrame
            ):
                return sum(size(v) for v in vars(obj).values())
            return int(_sizeof(obj))

        return size(fit.panel) + size(fit.result) + 1024


def _fresh(fit: Fit) -> Fit:
    """A view of the same arrays whose cached frames die with the task, not with the fit."""
    return Fit(
        panel=fit.panel,
        result=fit.result,
        model=fit.model,
        reference=fit.reference,
        level=fit.level,
        dependence=False,
    )


def _weekly(fit: Fit | None, meta: pd.DataFrame) -> pd.DataFrame:
    return meta if fit is None else _fresh(fit).weekly


def _coefficients(fit: Fit | None, meta: pd.DataFrame) -> pd.DataFrame:
    return meta if fit is None else fit.coefficients


def _diagnostics(fit: Fit | None, meta: pd.DataFrame) -> pd.DataFrame:
    return meta if fit is None else fit.diagnostics


def _cumulative(fit: Fit | None, start: Any, end: Any, year: Any = None) -> pd.DataFrame | None:
    if fit is None:
        return None
    if year is None:
        return _fresh(fit).cumulative(start, end)
    with_year = Fit(
        panel=fit.panel,
        result=fit.result,
        model=fit.model,
        reference=fit.reference,
        level=fit.level,
        dependence=True,
        shared={"year": year},
    )
    return with_year.cumulative(start, end)


def _year_moments(fit: Fit | None) -> Any:
    """The series' year-effect moments of one partition (:class:`excessmort.dependence.YearEffect`)."""
    if fit is None:
        return None
    from .dependence import estimate_year_effect

    return estimate_year_effect(fit.result, fit.panel.deaths, fit.weeks)


def _merge_years(parts: Sequence[Any]) -> Any:
    from .dependence import YearEffect

    kept = [p for p in parts if p is not None]
    return YearEffect.merge(kept) if kept else None


def _status(fit: Fit | None) -> dict[str, Any]:
    """Counts and first labels of non-converged series and of implausible dispersion."""
    if fit is None:
        return {"n": 0, "bad": [], "n_bad": 0, "odd": [], "n_odd": 0, "rule": ""}
    from ._dispersion import judge_dispersion, mean_fitted_count

    bad = np.flatnonzero(~fit.result.converged)
    phi = fit.result.dispersion_raw
    # the in-memory fit's rule (each series judged on its own counts, so partitions agree)
    judged = judge_dispersion(
        phi,
        mean_fitted_count(fit.panel.deaths, fit.result.fit_mask, fit._engine),
        fit._dispersion_check,
    )
    odd = np.flatnonzero(judged.odd) if judged is not None else np.zeros(0, dtype=np.int64)
    return {
        "n": fit.panel.n_series,
        "n_bad": int(bad.size),
        "bad": [fit.panel.label(s) for s in bad[:10]],
        "n_odd": int(odd.size),
        "odd": [
            f"{fit.panel.label(s)} (phi={phi[s]:.3g}, ordinary up to {judged.upper[s]:.3g})"
            for s in odd[:10]
        ]
        if judged is not None
        else [],
        "rule": judged.rule if judged is not None else "",
    }


def _warn(status: dict[str, Any], baseline: str) -> None:
    """Warn once for all partitions from their merged :func:`_status`."""
    n, n_bad, bad = status["n"], status["n_bad"], status["bad"]
    if n_bad:
        warnings.warn(
            f"{n_bad} of {n} series did not converge ({baseline}): {'; '.join(bad)}"
            + (f"; and {n_bad - len(bad)} more" if n_bad > len(bad) else "")
            + ". Their rows are kept with NaN estimates; see DaskFit.diagnostics.",
            ConvergenceWarning,
            stacklevel=3,
        )
    n_odd, odd = status["n_odd"], status["odd"]
    if n_odd:
        warnings.warn(
            f"implausible dispersion {status.get('rule', '')} in {n_odd} series: "
            f"{'; '.join(odd)}"
            + (f"; and {n_odd - len(odd)} more" if n_odd > len(odd) else "")
            + ". Check for a structural break or strata that mix different populations",
            DispersionWarning,
            stacklevel=3,
        )


# ---------------------------------------------------------------------------------------- aggregates
# group keys [G], stacked (observed, mu, phi mu, param var) [4, G, ...], and the dependence sums
# (GroupSums.stacked weekly [5, G, T], per group [2 + Y, G], residual weeks [T], window sums
# (phi mu, mu, weekly param var) [3, G, K]) or None
Partial = tuple[pd.DataFrame, np.ndarray, Any]


def _partial(
    fit: Fit | None, by: tuple[str, ...], window: np.ndarray | None, plan: _Plan
) -> Partial | None:
    """Per-group sums of one partition, with Fit's own grouping (England = regions only)."""
    if fit is None:
        return None
    view = _fresh(fit).by(*by)
    _, keys, _ = view._grouping
    res, deaths = fit.result, fit.panel.deaths
    if window is None:
        parts = [
            view._sum(deaths),
            view._sum(res.mu),
            view._sum(res.obs_variance()),
            view._masked_result_call("param_variance_weekly"),
        ]
    else:
        parts = [
            view._sum(np.sum(deaths[:, window], axis=1)),
            view._sum(np.sum(res.mu[:, window], axis=1)),
            view._sum(np.sum(res.obs_variance()[:, window], axis=1)),
            view._masked_result_call("param_variance_window", window),
        ]
    exposure = fit.panel.exposure
    if exposure is not None:  # the population of each sum (for the rates per 100,000)
        parts.append(view._sum(exposure if window is None else exposure[:, window].mean(axis=1)))
    keys = keys.copy()
    for col in by:
        keys[col] = keys[col].astype(plan.categories[col])
    extra = None
    if plan.dependence and res.dependence_applies:
        from .dependence import GroupSums

        groups, _, include = view._grouping
        g = np.where(include, groups, -1)
        sums = GroupSums.of(res, deaths, fit.weeks, g, len(keys))
        weekly, per_group = sums.stacked()
        win = None
        if window is not None:
            win = np.stack(
                [
                    view._sum(res.obs_variance()[:, window]),
                    view._sum(res.mu[:, window]),
                    view._masked_result_call("param_variance_weekly")[:, window],
                ]
            )
        extra = (weekly, per_group, sums.resid_weeks, win)
    return keys, np.stack(parts), extra


def _with_rates(frame: pd.DataFrame, values: np.ndarray) -> pd.DataFrame:
    """The rates per 100,000 of :attr:`Fit.weekly` when the partials carry a population row."""
    if values.shape[0] > 4:
        from ._rates import add_rates

        add_rates(frame, values[4])
    return frame


def _merge(partials: Sequence[Partial | None]) -> Partial | None:
    """Sum partials over equal group keys (series are fitted independently: sums add exactly)."""
    parts = [p for p in partials if p is not None]
    if not parts:
        return None
    keys = pd.concat([p[0] for p in parts], ignore_index=True)
    values = np.concatenate([p[1] for p in parts], axis=1)
    extras = [p[2] for p in parts]
    if keys.shape[1] == 0:
        ids = np.zeros(len(keys), dtype=np.int64)
    else:
        ids = (
            keys.groupby(list(keys.columns), observed=True, sort=True)
            .ngroup()
            .to_numpy(dtype=np.int64)
        )
    n_groups = int(ids.max()) + 1 if len(ids) else 0
    first = pd.Series(np.arange(len(ids))).groupby(ids).first().to_numpy()
    out = np.stack([group_sum(values[k], ids, n_groups) for k in range(values.shape[0])])
    extra = None
    if all(e is not None for e in extras):

        def add(arrays: list[np.ndarray]) -> np.ndarray:
            stacked = np.concatenate(arrays, axis=1)
            return np.stack([group_sum(stacked[k], ids, n_groups) for k in range(stacked.shape[0])])

        win = None if extras[0][3] is None else add([e[3] for e in extras])
        resid_weeks = np.logical_or.reduce([e[2] for e in extras])
        extra = (add([e[0] for e in extras]), add([e[1] for e in extras]), resid_weeks, win)
    return keys.iloc[first].reset_index(drop=True), out, extra


def _merge_status(statuses: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One status for several partitions: counts add, the first ten labels are kept."""
    return {
        "n": sum(s["n"] for s in statuses),
        "n_bad": sum(s["n_bad"] for s in statuses),
        "bad": [b for s in statuses for b in s["bad"]][:10],
        "n_odd": sum(s["n_odd"] for s in statuses),
        "odd": [b for s in statuses for b in s["odd"]][:10],
        "rule": next((s["rule"] for s in statuses if s.get("rule")), ""),
    }


def _combine(
    items: Sequence[tuple[Any, ...]], mergers: Sequence[Callable[[Sequence[Any]], Any]]
) -> tuple[Any, ...]:
    """Merge the job results of several partitions position by position, ``mergers[k]`` merging
    the k-th job's results."""
    return tuple(
        merge(column) for merge, column in zip(mergers, zip(*items, strict=True), strict=True)
    )


def _tree(results: list[Any], mergers: Sequence[Callable[[Sequence[Any]], Any]]) -> Any:
    """Combine delayed per-partition job results on the workers, ``_TREE_WIDTH`` at a time, down to
    one (only a small tuple reaches the client)."""
    from dask import delayed

    level = results
    while len(level) > 1:
        level = [
            delayed(_combine, pure=True)(level[i : i + _TREE_WIDTH], mergers)
            for i in range(0, len(level), _TREE_WIDTH)
        ]
    return level[0]


# ---------------------------------------------------------------------------------------- results
class DaskFitView:
    """Aggregates of a :class:`DaskFit` over series (``DaskFit.by(*strata)``): small pandas frames."""

    def __init__(self, parent: DaskFit, by: tuple[str, ...] | None) -> None:
        self._parent = parent
        self._by = by

    @property
    def strata(self) -> list[str]:
        """The strata of the rows of this view."""
        return list(self._parent.strata if self._by is None else self._by)

    def _job(self, window: np.ndarray | None) -> Job:
        return (_partial, (self._by or (), window, self._parent._shared("plan")))

    def _reduce(self, window: np.ndarray | None) -> Partial:
        p = self._parent
        jobs = [self._job(window), (_status, ())]
        merged, status = p._run([_tree(p._each(lambda i: jobs), (_merge, _merge_status))])[0]
        _warn(status, p.baseline)
        return self._finish(merged)

    def _finish(self, merged: Partial | None) -> Partial:
        if merged is None:
            raise InputError("the frame holds no series to aggregate", column="by", value=self._by)
        keys, values, extra = merged
        keys = keys.copy()
        for col in self._by or ():
            keys[col] = keys[col].cat.remove_unused_categories()
        return keys, values, extra

    def _dependence(self, extra: Any) -> Any:
        """The in-memory dependence model of the groups, from the merged sums."""
        from .dependence import GroupSums, dependence_from_sums, year_effect_from_sums

        p = self._parent
        weekly, per_group, resid_weeks, _ = extra
        years = np.unique(np.asarray(p.weeks.year, dtype=np.float64))
        sums = GroupSums.from_stacked(weekly, per_group, resid_weeks, years)
        meta = p._meta_fit.result
        year = year_effect_from_sums(sums, meta, p.weeks)
        return dependence_from_sums(sums, year, meta, p.weeks)

    def _attrs(
        self, frame: pd.DataFrame, dep: Any = None, short: int | None = None
    ) -> pd.DataFrame:
        """``attrs["intervals"]`` and ``attrs["level"]`` as :class:`excessmort.Fit` sets them."""
        info = dict(self._parent.intervals)
        if dep is not None:
            info["short_reference_rows"] = int(dep.short.sum())
            info["year_effect_sd"] = float(np.sqrt(dep.year.sigma2))
        elif short is not None:
            info["short_reference_rows"] = short
        frame.attrs["intervals"] = info
        frame.attrs["level"] = self._parent.level
        return frame

    def _weekly_frame(self, reduced: Partial) -> pd.DataFrame:
        keys, values, extra = reduced
        observed, mu, obs_var, param_var = values[:4]
        p = self._parent
        dep = None
        if extra is not None:
            dep = self._dependence(extra)
            obs_var, param_var = dep.weekly(obs_var, param_var, mu, p.weeks)
        arrays = excess_arrays(observed, mu, obs_var, param_var, p.level, p._prediction)
        return self._attrs(_with_rates(weekly_frame(p.weeks, keys, arrays), values), dep)

    @property
    def weekly(self) -> pd.DataFrame:
        """As :attr:`excessmort.Fit.weekly` for sums of series (computed; one row per group and week)."""
        if self._by is None:
            return self._attrs(self._parent.weekly.compute())
        return self._weekly_frame(self._reduce(None))

    def cumulative(self, start: Any = None, end: Any = None) -> pd.DataFrame:
        """As :meth:`excessmort.Fit.cumulative`: variance g' V g + sum phi mu, summed over series."""
        p = self._parent
        start, end = p._period(start, end)
        if self._by is None:
            year = None
            if p._plan.dependence and p._meta_fit.result.dependence_applies:
                # the panel's year effect first (moments over series add across partitions)
                jobs = [(_year_moments, ())]
                year = p._run([_tree(p._each(lambda i: jobs), (_merge_years,))])[0][0]
            results = p._run(p._each(lambda i: [(_cumulative, (start, end, year)), (_status, ())]))
            _warn(_merge_status([status for _, status in results]), p.baseline)
            frames = [frame for frame, _ in results if frame is not None]
            short = [f.attrs.get("intervals", {}).get("short_reference_rows") for f in frames]
            out = pd.concat(frames, ignore_index=True)
            out = (
                out.sort_values(p.strata, kind="stable").reset_index(drop=True) if p.strata else out
            )
            info = frames[0].attrs.get("intervals", {}) if frames else {}
            out = self._attrs(out, short=sum(short) if None not in short and short else None)
            if "year_effect_sd" in info:  # the panel's year effect, the same in every partition
                out.attrs["intervals"]["year_effect_sd"] = info["year_effect_sd"]
            return out
        period = p._meta_fit.period(start, end)
        window = period.mask
        keys, values, extra = self._reduce(window)
        observed, mu, obs_var, param_var = values[:4]
        dep = None
        if extra is not None:
            obs_w, mu_w, pw_w = extra[3]
            dep = self._dependence(extra)
            # the window's total alone (the last of its running sums, Dependence.total)
            obs_var, param_var = dep.total(
                obs_w, mu_w, param_var, p.weeks[window], p.level, param_weekly=pw_w
            )
        arrays = excess_arrays(observed, mu, obs_var, param_var, p.level, p._prediction)
        return self._attrs(
            _with_rates(cumulative_frame(keys, p.weeks, period.mask, arrays, period.label), values),
            dep,
        )

    def __repr__(self) -> str:
        view = ", ".join(self._by) if self._by else "total"
        return f"<excessmort.DaskFit view by {view} of {self._parent!r}>"


def _delayed(func: Callable[..., Any], *args: Any) -> Delayed:
    from dask import delayed

    return delayed(func, pure=True)(*args)


def _shared(obj: Any, name: str) -> Delayed:
    """``obj`` as one key of the graph that every task refers to.

    A plain argument is embedded (and tokenized) in every task that takes it; the plan and the empty
    meta frames carry the global categories, which grow with the panel (50,000 areas pickle to
    0.75 MB), so embedding them in every partition's tasks costs O(partitions x series) of client,
    scheduler and worker memory. As one key, each worker fetches it once and holds it while its
    dependents run.
    """
    from dask import delayed

    return delayed(obj, name=name, traverse=False)


class DaskFit:
    """The result of :func:`excessmort.fit` on a Dask DataFrame.

    Nothing large comes back to the client: ``weekly``, ``coefficients`` and ``diagnostics`` are Dask
    DataFrames (one partition per fitted partition), :meth:`to_parquet` writes them from the workers,
    and :meth:`by` / :meth:`cumulative` reduce per-partition sums on the workers before the client
    applies the interval formulas. Each accessor is one pass over the data (fits are recomputed)
    unless :meth:`persist` has kept the fitted partitions in the workers' memory.

    Attributes
    ----------
    weeks : DatetimeIndex
        The global weekly calendar shared by every partition.
    strata : list of str
    level : float
    reference : (Timestamp, Timestamp) or None
    shuffled : bool
        Whether the input had to be shuffled so that each partition holds whole series.
    """

    def __init__(
        self,
        *,
        plan: _Plan,
        parts: list[Delayed],
        tidy: bool,
        client: Any,
        retries: int,
        meta_fit: Fit,
        shuffled: bool,
        token: str,
    ) -> None:
        self._plan = plan
        self._token = token
        self._keys: dict[str, Delayed] = {"plan": _shared(plan, f"excessmort-plan-{token}")}
        self._parts = parts  # the input partitions, each holding whole series
        self._tidy = tidy  # partitions of read_dask's frame (validated already)
        self._fits: list[Any] | None = None  # fitted partitions, once persisted
        self._client = client
        self._retries = retries
        self._meta_fit = meta_fit
        self._prediction = meta_fit.result.prediction  # the result class's rule (tiny result)
        self.shuffled = shuffled

    # ------------------------------------------------------------------ properties
    @property
    def baseline(self) -> str:
        """Name of the baseline."""
        return self._meta_fit.baseline

    @property
    def weeks(self) -> pd.DatetimeIndex:
        """The global weekly calendar."""
        return self._plan.weeks

    @property
    def strata(self) -> list[str]:
        """The strata of the series."""
        return list(self._plan.columns.strata)

    @property
    def level(self) -> float:
        """Interval level."""
        return self._plan.level

    @property
    def reference(self) -> tuple[pd.Timestamp, pd.Timestamp] | None:
        """The reference period."""
        return self._plan.reference

    @property
    def npartitions(self) -> int:
        """Number of fitted partitions."""
        return len(self._parts)

    def _run(self, tasks: list[Any]) -> list[Any]:
        return _compute(self._client, tasks, self._retries)

    def _each(self, jobs: Callable[[int], Sequence[Job]]) -> list[Delayed]:
        """One task per partition that fits it (or takes its persisted fit) and runs ``jobs(i)`` on
        it, returning their results as a tuple."""
        if self._fits is not None:
            return [_delayed(_run_jobs, f, jobs(i)) for i, f in enumerate(self._fits)]
        plan = self._shared("plan")
        return [
            _delayed(_fit_and_run, part, plan, i, self._tidy, jobs(i))
            for i, part in enumerate(self._parts)
        ]

    def _shared(self, name: str) -> Delayed:
        """The plan, or the empty ``weekly``/``coefficients``/``diagnostics`` frame, as one graph key."""
        if name not in self._keys:
            meta = getattr(self._meta_fit, name).iloc[:0]
            self._keys[name] = _shared(meta, f"excessmort-meta-{name}-{self._token}")
        return self._keys[name]

    def _period(self, start: Any, end: Any) -> tuple[Any, Any]:
        self._meta_fit.period(start, end)  # the in-memory parser, checks and messages
        return start, end

    # ------------------------------------------------------------------ frames
    def _frame(self, func: Callable[..., pd.DataFrame], name: str) -> dd.DataFrame:
        import dask.dataframe as dd

        parts = [_delayed(_first, t) for t in self._each(lambda i: [(func, (self._shared(name),))])]
        meta = getattr(self._meta_fit, name).iloc[:0]
        return dd.from_delayed(parts, meta=meta, verify_meta=False)

    @property
    def weekly(self) -> dd.DataFrame:
        """As :attr:`excessmort.Fit.weekly`, one row per series and week, as a Dask DataFrame."""
        return self._frame(_weekly, "weekly")

    @property
    def coefficients(self) -> dd.DataFrame:
        """As :attr:`excessmort.Fit.coefficients`, one row per series, as a Dask DataFrame."""
        return self._frame(_coefficients, "coefficients")

    @property
    def diagnostics(self) -> dd.DataFrame:
        """As :attr:`excessmort.Fit.diagnostics`, one row per series, as a Dask DataFrame."""
        return self._frame(_diagnostics, "diagnostics")

    def by(self, *strata: str) -> DaskFitView:
        """Sums over every stratum not named; ``by()`` is the total (England when the strata are the
        regions; Wales is never summed into it).

        Raises
        ------
        InputError
            For a stratum the data do not have.
        """
        unknown = [s for s in strata if s not in self.strata]
        if unknown:
            raise InputError(
                f"unknown strata {unknown}; this fit's strata are {self.strata}",
                column="by",
                value=unknown,
            )
        return DaskFitView(self, tuple(strata))

    def cumulative(self, start: Any = None, end: Any = None) -> pd.DataFrame:
        """As :meth:`excessmort.Fit.cumulative`, one row per series, computed into a pandas frame."""
        return DaskFitView(self, None).cumulative(start, end)

    # ------------------------------------------------------------------ memory and output
    def persist(self) -> DaskFit:
        """Keep the fitted partitions in the workers' memory, so that later accessors do not refit.

        Only for panels whose fits fit in the cluster's memory; otherwise use :meth:`to_parquet`.
        """
        import dask

        if self._fits is not None:
            return self
        plan = self._shared("plan")
        fits = [_delayed(_fit_any, p, plan, i, self._tidy) for i, p in enumerate(self._parts)]
        if self._client is not None:
            self._fits = list(self._client.persist(fits, retries=self._retries))
        else:
            self._fits = list(dask.persist(*fits))
        return self

    def to_parquet(
        self, path: str | os.PathLike[str], *, by: Sequence[Sequence[str]] = ()
    ) -> dict[str, Path]:
        """Write ``weekly`` and ``coefficients`` as partitioned Parquet datasets, from the workers.

        ``path/weekly/`` and ``path/coefficients/`` hold one file per partition; each dataset is built
        in a temporary sibling folder and renamed into place only when every partition is written
        (so a reader sees the old dataset or the new, never half). ``path`` must be on a filesystem
        that the workers and the client share. Aggregates named in ``by`` (e.g. ``[(), ("region",)]``)
        are computed in the same pass and written as ``path/by_<strata or total>.parquet``.

        Returns
        -------
        dict
            Name -> path of each dataset or file written.

        Raises
        ------
        InputError
            For an unknown stratum in ``by``.
        """
        from ._atomic import atomic_directory, atomic_write

        root = Path(path)
        views = [self.by(*b) for b in by]
        metas = {"weekly": _weekly, "coefficients": _coefficients}
        with contextlib.ExitStack() as stack:
            folders = {name: stack.enter_context(atomic_directory(root / name)) for name in metas}

            def jobs(i: int) -> list[Job]:
                writes = [
                    (
                        _write_part,
                        (func, self._shared(name), str(folders[name] / f"part.{i:05d}.parquet")),
                    )
                    for name, func in metas.items()
                ]
                return [*writes, *[view._job(None) for view in views], (_status, ())]

            # One task per partition fits, writes and sums; only a small tuple reaches the client.
            mergers = [sum] * len(metas) + [_merge] * len(views) + [_merge_status]
            *merged, status = self._run([_tree(self._each(jobs), mergers)])[0]
        rows, merged_views = merged[: len(metas)], merged[len(metas) :]
        _warn(status, self.baseline)
        log.info(
            "dask fit: wrote %s rows",
            ", ".join(f"{n:,} {name}" for name, n in zip(metas, rows, strict=True)),
        )
        written = {name: root / name for name in metas}
        for view, merged in zip(views, merged_views, strict=True):
            frame = view._weekly_frame(view._finish(merged))
            name = "by_" + ("_".join(view.strata) if view._by else "total")
            target = root / f"{name}.parquet"
            with atomic_write(target, "wb") as fh:
                frame.to_parquet(fh, index=False)
            written[name] = target
        return written

    def __repr__(self) -> str:
        ref = (
            f"{self.reference[0].date()}..{self.reference[1].date()}" if self.reference else "none"
        )
        return (
            f"<excessmort.DaskFit {self.baseline}: {self.npartitions} partitions, strata {self.strata}, "
            f"{self.weeks[0].date()}..{self.weeks[-1].date()}, reference {ref}>"
        )

    @property
    def intervals(self) -> dict[str, Any]:
        """What the intervals contain, as :attr:`excessmort.Fit.intervals` (the same dict): rule,
        parameter uncertainty, overdispersion, cross-series dependence, autocorrelation, year
        effects, and a one-line ``text``."""
        from .dependence import describe_interval

        return describe_interval(self._meta_fit.result, self._plan.dependence)

    def _header(self) -> list[tuple[str, Any]]:
        """What is known without a pass over the data (showing the fit computes nothing)."""
        ref = self.reference
        scheduler = getattr(getattr(self._client, "scheduler", None), "address", None)
        return [
            ("baseline", self.baseline),
            (
                "partitions",
                f"{self.npartitions:,}" + (" (shuffled on the strata)" if self.shuffled else ""),
            ),
            (
                "strata",
                ", ".join(
                    f"{s} ({len(self._plan.categories[s].categories):,} values)"
                    for s in self.strata
                )
                or "none",
            ),
            ("weeks", f"{self.weeks[0].date()} to {self.weeks[-1].date()} ({len(self.weeks):,})"),
            ("reference", f"{ref[0].date()} to {ref[1].date()}" if ref else "none"),
            ("level", f"{self.level:.0%}"),
            ("intervals", f"{self.intervals['rule']}: {self.intervals['text']}"),
            ("scheduler", scheduler or "Dask's local scheduler"),
            (
                "fits",
                "persisted on the workers"
                if self._fits is not None
                else "recomputed by each accessor",
            ),
        ]

    def _repr_html_(self) -> str:
        """The header block for Jupyter; the figures are computed only when asked for."""
        from ._display import render

        return render("excessmort.DaskFit", self._header(), style="html")


def _first(results: tuple[Any, ...]) -> Any:
    return results[0]


def _arrow_column(col: pd.Series) -> Any:
    """``pa.array(col, from_pandas=True)``, as ``Table.from_pandas`` converts a column (NaN and NaT
    as null), without its copies where none is needed: a float or datetime column without NaN/NaT is
    adopted as it is, and a categorical without missing values is built from its codes."""
    import pyarrow as pa

    dtype = col.dtype
    if isinstance(dtype, np.dtype) and dtype.kind == "f":
        values = col.to_numpy()
        if not np.isnan(values.sum()):  # a NaN anywhere makes the sum NaN (and no temporary)
            return pa.array(values)
    elif isinstance(dtype, np.dtype) and dtype.kind == "M":
        ticks = np.ascontiguousarray(col.to_numpy()).view(np.int64)
        if not ticks.size or ticks.min() != np.iinfo(np.int64).min:  # no NaT
            unit = pa.timestamp(np.datetime_data(dtype)[0])
            return pa.Array.from_buffers(unit, len(ticks), [None, pa.py_buffer(ticks)])
    elif isinstance(dtype, pd.CategoricalDtype):
        codes = col.array.codes
        if not codes.size or codes.min() >= 0:  # codes below len(categories): pandas' invariant
            categories = pa.array(dtype.categories, from_pandas=True)
            return pa.DictionaryArray.from_arrays(
                codes, categories, ordered=dtype.ordered, safe=False
            )
    return pa.array(col, from_pandas=True)


def _arrow_table(frame: pd.DataFrame) -> Any:
    """``pa.Table.from_pandas(frame, preserve_index=False)``: the same schema, pandas metadata and
    values, assembled column by column with :func:`_arrow_column` (a third of the time on a weekly
    partition, whose fourteen float columns are all copied by ``from_pandas``).

    The schema and its metadata come from the frame's first zero rows; a column whose type cannot be
    told from no rows (object columns) sends the whole frame through ``from_pandas``.
    """
    import pyarrow as pa

    if frame.columns.has_duplicates:  # from_pandas' own error
        return pa.Table.from_pandas(frame, preserve_index=False)
    schema = pa.Schema.from_pandas(frame.iloc[:0], preserve_index=False)
    arrays = [_arrow_column(frame.iloc[:, i]) for i in range(frame.shape[1])]
    if [a.type for a in arrays] != schema.types:
        return pa.Table.from_pandas(frame, preserve_index=False)
    return pa.Table.from_arrays(arrays, schema=schema)


def _write_options(schema: Any) -> dict[str, Any]:
    """``pq.write_table`` options for a partition's table (the values read back are the same under
    any of them; only time and size differ).

    - Dictionary pages and min/max statistics for the strata (dictionary columns) only. Statistics
      let a reader skip the files of other series; every file spans the whole calendar, so those of
      the week columns would never skip one, and those of the float columns cost a fifth of the
      write. Dictionary pages on float columns, whose values are all distinct, cost a third of it.
    - The week and its numbers (iso_year, iso_week, ...) plain and snappy-compressed: a third of the
      time of dictionary pages, at about 2% of the file (2,000 series x 470 weeks: 2.0 MB of 106).
    - Float columns uncompressed: snappy shrinks them by under a tenth and costs a third of the write.
    - Values handed to the encoders 65,536 at a time, not 1,024: a fifth less CPU for the write
      (pages still close at about 1 MB, plus at most one batch).
    """
    import pyarrow as pa

    strata = [f.name for f in schema if pa.types.is_dictionary(f.type)]
    return {
        "use_dictionary": strata,
        "write_statistics": strata,
        "write_batch_size": 65_536,
        "compression": {
            f.name: "none" if pa.types.is_floating(f.type) else "snappy" for f in schema
        },
    }


#: ``EXCESSMORT_DROP_BEHIND=0`` leaves the partitions written in the page cache (see :func:`_drop_behind`).
DROP_BEHIND_ENV = "EXCESSMORT_DROP_BEHIND"
#: The last files this process wrote, whose pages may have been dirty when last dropped.
_DROP_PENDING: collections.deque[str] = collections.deque(maxlen=4)
_DROP_LOCK = threading.Lock()


def _drop_cached(path: str) -> None:
    """``posix_fadvise(DONTNEED)`` on ``path``: Linux starts writing its dirty pages back (without
    waiting for them) and frees its clean ones. A file gone (renamed into place) is left alone."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    except OSError:  # a filesystem without it: the pages stay cached, as without drop-behind
        pass
    finally:
        os.close(fd)


def _drop_behind(path: str) -> bool:
    """Keep the partitions written out of the page cache: start writing ``path`` back to disk now,
    and free the pages of the files written before it (written back since).

    Each 2,000-series weekly partition is about 100 MB; left cached, every partition takes fresh
    pages from the kernel (filled at first touch, and on a virtual machine faulted in from the host)
    until memory is full, then the kernel reclaims the cache it no longer needs. Freed as it is
    written, the next partition reuses the same pages (measured per partition: 0.31 s to write into
    fresh page cache, 0.15 s with drop-behind; ``to_parquet``'s closing fsync then finds the data on
    disk). Off with ``EXCESSMORT_DROP_BEHIND=0``, and where ``posix_fadvise`` is missing (not Linux
    or another POSIX system): then it does nothing and returns False.
    """
    if not hasattr(os, "posix_fadvise") or os.environ.get(DROP_BEHIND_ENV, "1") == "0":
        return False
    with _DROP_LOCK:
        earlier = list(_DROP_PENDING)
        _DROP_PENDING.append(path)
    _drop_cached(path)
    # A weekly file is followed by the small coefficients file, then by the next partition's: the
    # last four written cover both.
    for done in earlier:
        _drop_cached(done)
    return True


def _write_part(
    fit: Fit | None, func: Callable[..., pd.DataFrame], meta: pd.DataFrame, target: str
) -> int:
    """Write one partition's frame with pyarrow (then :func:`_drop_behind`); returns its rows."""
    import pyarrow.parquet as pq

    frame = func(fit, meta)
    table = _arrow_table(frame)
    pq.write_table(table, target, **_write_options(table.schema))
    _drop_behind(target)
    return len(frame)


# ---------------------------------------------------------------------------------------- entry points
def _layout(
    ddf: Any, cols: _Columns, client: Any, retries: int, npartitions: int | None
) -> tuple[list[Any], pd.DatetimeIndex, dict[str, pd.CategoricalDtype], bool]:
    """Pass 1 and, when needed, the shuffle: (partitions holding whole series, weeks, categories,
    shuffled). A partition is a Delayed frame, or a :class:`_ParquetPiece` when excessmort reads
    the files of ``dd.read_parquet`` itself (:func:`_parquet_pieces`)."""
    needed = list(dict.fromkeys([*cols.strata_raw, cols.week_col]))
    pieces = _parquet_pieces(ddf, cols.strata_raw)
    if pieces is not None:  # only the columns needed, strata as dictionaries
        parts: list[Any] = [
            dataclasses.replace(
                p, columns=tuple(needed), text=tuple(c for c in p.text if c in needed)
            )
            for p in pieces
        ]
    else:
        parts = ddf[needed].to_delayed()
    summaries = _compute(
        client, [_delayed(_summarise, p, cols, i) for i, p in enumerate(parts)], retries
    )
    filled = [s for s in summaries if s["n"]]
    if not filled:
        raise InputError("the frame has no rows", column=None, value=None)
    residues = np.unique(np.concatenate([s["residues"] for s in filled]))
    lo = min(s["lo"] for s in filled)
    hi = max(s["hi"] for s in filled)
    if residues.size > 1:
        raise InputError(
            f"column 'week_ending': dates fall on {residues.size} different weekdays across the frame; "
            "week-ending dates must share one weekday (ONS weeks end on a Friday)",
            column="week_ending",
            value=sorted(residues.tolist()),
        )
    weeks = weekly_grid(pd.Series(pd.DatetimeIndex([lo, hi]).astype("datetime64[ns]")))
    uniques = {c: [s["uniques"][c] for s in filled] for c in cols.strata_raw}
    categories = _categories(uniques, cols)
    hashes = np.concatenate([s["hashes"] for s in filled])
    split = len(np.unique(hashes)) < len(hashes)
    if split:
        if cols.strata_raw:
            ddf = ddf.shuffle(on=list(cols.strata_raw), npartitions=npartitions or ddf.npartitions)
        else:
            ddf = ddf.repartition(npartitions=1)
    parts = list(ddf.to_delayed()) if split or pieces is None else list(pieces)
    log.info(
        "dask fit: %d partitions, %s series split across partitions%s%s",
        len(parts),
        "some" if split else "no",
        " (shuffled on the strata)" if split else "",
        " (Parquet strata read as dictionaries)" if pieces is not None and not split else "",
    )
    return parts, weeks, categories, split


def _csv_files(source: str | os.PathLike[str]) -> tuple[list[str], str] | None:
    """The CSV files named by ``source`` (a file, a glob, or a folder of CSV files and no Parquet)
    and their separator; None when ``source`` is Parquet."""
    import glob

    from .io import _CSV_SUFFIXES, _PARQUET_SUFFIXES

    path = Path(source)
    if path.is_dir():
        names = sorted(
            p for p in path.iterdir() if p.is_file() and not p.name.startswith((".", "_"))
        )
        csv = [p for p in names if p.suffix.lower() in _CSV_SUFFIXES]
        if not csv or any(p.suffix.lower() in _PARQUET_SUFFIXES for p in names):
            return None
        files = [str(p) for p in csv]
    elif path.suffix.lower() in _CSV_SUFFIXES:
        files = sorted(glob.glob(str(path))) if glob.has_magic(str(path)) else [str(path)]
    else:
        return None
    if not files:
        raise FileNotFoundError(f"no CSV files match {str(source)!r}")
    suffixes = {Path(f).suffix.lower() for f in files}
    if ".tsv" in suffixes and len(suffixes) > 1:
        raise InputError(
            f"{source}: mixes tab- and comma-separated files ({', '.join(sorted(suffixes))})",
            value=sorted(suffixes),
        )
    return files, "\t" if suffixes == {".tsv"} else ","


def _as_ddf(source: Any) -> Any:
    if is_dask_frame(source):
        return source
    import dask.dataframe as dd

    if isinstance(source, str | os.PathLike):
        csv = _csv_files(source)
        if csv is None:
            return dd.read_parquet(source)
        files, sep = csv
        # One partition per file (write one file per group of whole series and nothing is
        # shuffled). Every column is read as text: read() parses the numbers partition by
        # partition and names the row of a bad value, and no file's dtypes can disagree with
        # another's.
        return dd.read_csv(files, sep=sep, blocksize=None, dtype=str, keep_default_na=True)
    if isinstance(source, pd.DataFrame):
        raise InputError(
            "give a Dask DataFrame (e.g. dask.dataframe.from_pandas) or a Parquet dataset path",
            value=type(source).__name__,
        )
    raise InputError(
        f"cannot read a {type(source).__name__} with engine='dask'; give a partitioned Parquet "
        "dataset (a directory or glob), CSV files (a file, a glob or a folder) or a Dask DataFrame",
        value=type(source).__name__,
    )


def read_dask(
    source: Any,
    *,
    strata: Sequence[str] | None = None,
    keep_wales: bool = False,
    client: Any = None,
    npartitions: int | None = None,
    retries: int = 2,
) -> dd.DataFrame:
    """``excessmort.read(source, engine="dask")``: a lazy validated tidy Dask DataFrame.

    One small pass reads the strata and weeks (for the categories and to see whether series are
    split across partitions, which are then shuffled so that each holds whole series); each
    partition is validated with :func:`excessmort.read` when computed.

    Returns
    -------
    dask.dataframe.DataFrame
        The tidy frame of :func:`excessmort.read`, partitioned by series (categories are global).
    """
    import dask.dataframe as dd

    ddf = _as_ddf(source)
    client = _get_client(client)
    cols = _recognise(list(ddf.columns), strata, keep_wales)
    parts, weeks, categories, _ = _layout(ddf, cols, client, retries, npartitions)
    meta = _meta_tidy(cols, weeks, categories).iloc[:0]
    token = uuid.uuid4().hex[:12]
    shared = _shared((cols, categories, meta), f"excessmort-read-{token}")
    tidy = [_delayed(_read_or_meta, p, shared, i) for i, p in enumerate(parts)]
    out = dd.from_delayed(tidy, meta=meta, verify_meta=False)
    # fit() of this very frame skips the first pass and the second validation.
    _TIDY_LAYOUTS[out._name] = (weeks, categories, bool(keep_wales))
    return out


def _read_or_meta(
    part: pd.DataFrame,
    shared: tuple[_Columns, dict[str, pd.CategoricalDtype], pd.DataFrame],
    index: int,
) -> pd.DataFrame:
    cols, categories, meta = shared
    out = _read_partition(part, cols, categories, index)
    return meta if out is None else out


def _meta_tidy(
    cols: _Columns, weeks: pd.DatetimeIndex, categories: dict[str, pd.CategoricalDtype]
) -> pd.DataFrame:
    """One synthetic series over the global calendar with the tidy frame's dtypes (for meta)."""
    n = len(weeks)
    data: dict[str, Any] = {}
    for col in cols.strata:
        dtype = categories[col]
        if len(dtype.categories) == 0:
            raise InputError(f"stratum {col!r} has no values", column=col)
        data[col] = pd.Categorical([dtype.categories[0]] * n, dtype=dtype)
    data["week_ending"] = weeks.to_numpy(dtype="datetime64[ns]")
    data["deaths"] = np.random.default_rng(0).poisson(100.0, n).astype(np.float64)
    if cols.has_population:
        data["population"] = np.full(n, 1e5)
    return pd.DataFrame(data)


def fit_dask(
    frame: Any,
    *,
    baseline: str | Baseline = "quasipoisson",
    reference: tuple[Any, Any] | None = ("2015-01-01", "2019-12-31"),
    level: float = 0.95,
    engine: str = "auto",
    keep_wales: bool | None = None,
    client: Any = None,
    npartitions: int | None = None,
    retries: int = 2,
    warmup: bool = True,
    dependence: bool = True,
    dispersion_check: Any = "auto",
    allow_pandemic: bool = False,
    allow_short_history: bool = False,
    exclude: Any = None,
    **options: Any,
) -> DaskFit:
    """:func:`excessmort.fit` on a Dask DataFrame (or a partitioned Parquet dataset path).

    Parameters
    ----------
    frame : dask.dataframe.DataFrame or path
        Long format, one row per series and week, as for :func:`excessmort.read`; partitions may
        split series (they are then shuffled on the strata). A path is a partitioned Parquet
        dataset, or CSV files (a file, a glob such as ``"deaths/*.csv"`` or a folder of them; one
        partition per file).
    baseline, reference, level, engine, keep_wales, **options
        As :func:`excessmort.fit`. Every baseline fitted per series works; ``pooled`` does not.
    client : distributed.Client or str, optional
        A client, or a scheduler address such as ``"tcp://10.0.0.5:8786"``; by default the current
        default client, or Dask's local scheduler when there is none.
    npartitions : int, optional
        Partitions after a shuffle (default: as many as the input).
    retries : int, default 2
        Times a failed task is retried (a task on a worker that died is rescheduled by Dask anyway).
    warmup : bool, default True
        Compile or load the numba kernels on every worker before the fit (one worker first, so the
        others only read numba's cache).
    dependence : bool, default True
        As :func:`excessmort.fit`: the residual dependence of :mod:`excessmort.dependence` in every
        variance of a sum. Its sums (residuals, phi mu, fitted variances, year moments) are reduced
        across partitions exactly, so the intervals equal the in-memory ones.
    dispersion_check : "auto", float, (low, high) or None
        As :func:`excessmort.fit`: the rule the warning about implausible dispersion applies to
        each series (judged on the series alone, so every partition judges alike).
    allow_pandemic, allow_short_history, exclude
        As :func:`excessmort.fit`. The reference rules are checked on the global calendar before
        any task runs; the history rule per series in the partition that holds it (the error
        names the series).

    Returns
    -------
    DaskFit

    Raises
    ------
    InputError
        As :func:`excessmort.fit`; also for the ``pooled`` baseline, which is one joint fit across all
        series and cannot be partitioned.
    """
    from ._kernels import resolve_engine

    level = validate_level(level)
    _check_dispersion_rule(dispersion_check)
    model = get_baseline(baseline, **options)
    if getattr(model, "name", None) == "pooled":
        raise InputError(
            "the 'pooled' baseline is one joint GLM over all series (shared fixed effects), so it cannot "
            "be fitted partition by partition on Dask; fit it in memory with excessmort.fit on a pandas "
            "frame, or use a per-series baseline such as 'quasipoisson'",
            column="baseline",
            value="pooled",
        )
    resolve_engine(engine)
    ddf = _as_ddf(frame)
    client = _get_client(client)
    tidy = _TIDY_LAYOUTS.get(getattr(ddf, "_name", ""))
    if tidy is not None and keep_wales not in (None, tidy[2]):
        tidy = None  # read with another keep_wales: validate again
    if keep_wales is None:
        keep_wales = tidy[2] if tidy is not None else False
    cols = _recognise(list(ddf.columns), None, bool(keep_wales))
    if warmup:
        warm_workers(client)
    if tidy is None:
        parts, weeks, categories, shuffled = _layout(ddf, cols, client, retries, npartitions)
    else:
        (weeks, categories, _), shuffled = tidy, False
        parts = list(ddf.to_delayed())
    empty = Panel(
        keys=pd.DataFrame(index=pd.RangeIndex(0)), weeks=weeks, deaths=np.empty((0, len(weeks)))
    )
    excluded = _exclusion_mask(weeks, exclude)
    ref = (
        _check_reference(
            empty,
            reference,
            allow_pandemic=allow_pandemic or _pandemic_excluded(weeks, excluded, reference),
        )
        if reference is not None
        else None
    )
    plan = _Plan(
        columns=cols,
        weeks=weeks,
        categories=categories,
        model=model,
        reference=ref,
        level=level,
        engine=engine,
        dependence=bool(dependence),
        dispersion_check=dispersion_check,
        excluded=excluded,
        check_history=not allow_short_history,
    )
    with (
        warnings.catch_warnings()
    ):  # the synthetic series only gives dtypes and the prediction rule
        warnings.simplefilter("ignore")
        meta_fit = _fit_tidy(_meta_tidy(cols, weeks, categories), plan)

    token = uuid.uuid4().hex[:12]
    return DaskFit(
        plan=plan,
        parts=parts,
        tidy=tidy is not None,
        client=client,
        retries=retries,
        meta_fit=meta_fit,
        shuffled=shuffled,
        token=token,
    )
