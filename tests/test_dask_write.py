"""The Dask engine's partition writer (``_dask._write_part``) against the writer it replaced.

Oracle: ``pa.Table.from_pandas(frame, preserve_index=False)`` written with ``pq.write_table`` (the
previous writer, options and all). The new writer assembles the Arrow table itself and writes with
other options (statistics, encodings) and drop-behind; what a reader gets back must not change: the
Arrow tables read back are equal with their metadata (schema, pandas metadata, NaN stored as null),
and so are the pandas frames (values, dtypes, column order, categories).
"""

from __future__ import annotations

import os

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import excessmort as em
from excessmort import _dask
from excessmort._fit import fit as fit_memory

pytestmark = [pytest.mark.dask, pytest.mark.timeout(300)]

STRATA = ["region", "sex", "age_group"]
REFERENCE = ("2015-01-01", "2019-12-31")


def previous_writer(frame: pd.DataFrame, target: os.PathLike[str] | str) -> None:
    """``_write_part``'s body before this change (git 898b49d)."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    repeated = [
        f.name
        for f in table.schema
        if pa.types.is_dictionary(f.type)
        or pa.types.is_timestamp(f.type)
        or pa.types.is_integer(f.type)
    ]
    compression = {
        f.name: "none" if pa.types.is_floating(f.type) else "snappy" for f in table.schema
    }
    pq.write_table(table, target, use_dictionary=repeated, compression=compression)


@pytest.fixture(scope="module")
def demo() -> pd.DataFrame:
    return em.demo_data()


@pytest.fixture(scope="module")
def gappy(demo: pd.DataFrame) -> pd.DataFrame:
    """Demo data with missing weeks (NaN deaths: NaN in several weekly columns)."""
    frame = demo.copy()
    frame.loc[frame.index % 97 == 5, "deaths"] = np.nan
    return frame


@pytest.fixture(scope="module")
def frames(demo: pd.DataFrame, gappy: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Frames of every kind a partition writes, and some it could."""
    fit = fit_memory(demo, reference=REFERENCE)
    gaps = fit_memory(gappy, reference=REFERENCE)
    no_population = fit_memory(demo.drop(columns="population"), reference=REFERENCE)
    return {
        "weekly": fit.weekly,
        "weekly with NaN": gaps.weekly,
        "weekly without rates": no_population.weekly,
        "coefficients": fit.coefficients,
        "diagnostics": gaps.diagnostics,
        "by region": fit.by("region").weekly,
        "cumulative": fit.cumulative(),
        "no rows": fit.weekly.iloc[:0],
    }


def odd_frame() -> pd.DataFrame:
    """Columns off the fast paths: NaT, a missing category, float32, tz-aware dates, strings."""
    return pd.DataFrame(
        {
            "cat": pd.Categorical(["a", None, "b"], categories=["b", "a"], ordered=True),
            "when": pd.to_datetime(["2020-01-03", None, "2020-01-17"]),
            "when_us": pd.to_datetime(["2020-01-03", "2020-01-10", "2020-01-17"]).astype(
                "datetime64[us]"
            ),
            "zoned": pd.date_range("2020-01-03", periods=3, freq="7D", tz="Europe/London"),
            "f32": np.array([1.5, np.nan, 2.5], dtype=np.float32),
            "text": ["x", "y", None],
            "objects": pd.Series(["x", None, "z"], dtype=object),
            "flag": [True, False, True],
            "n": pd.array([1, None, 3], dtype="Int64"),
        }
    )


def test_arrow_table_is_from_pandas(frames):
    for name, frame in {**frames, "odd": odd_frame()}.items():
        got = _dask._arrow_table(frame)
        want = pa.Table.from_pandas(frame, preserve_index=False)
        assert got.equals(want, check_metadata=True), name
        assert got.schema.metadata == want.schema.metadata, name


def test_nan_is_stored_as_null_as_before(frames):
    table = _dask._arrow_table(frames["weekly with NaN"])
    observed = frames["weekly with NaN"]["observed"]
    assert observed.isna().any()
    assert table.column("observed").null_count == observed.isna().sum()


def test_fast_path_adopts_the_weekly_arrays(frames):
    """The weekly partition's float and datetime columns become Arrow arrays over the same memory
    (the copy that Table.from_pandas makes is the cost removed)."""
    frame = frames["weekly"]
    table = _dask._arrow_table(frame)
    for col in ["week_ending", "expected", "excess_upper", "ratio_lower"]:
        data = table.column(col).chunk(0).buffers()[1]
        assert data.address == frame[col].to_numpy().ctypes.data, col


def test_duplicate_or_untyped_columns_go_through_from_pandas():
    frame = pd.DataFrame(np.arange(6.0).reshape(3, 2), columns=["a", "a"])
    with pytest.raises(ValueError, match="Duplicate column names"):
        _dask._arrow_table(frame)
    empty_objects = pd.DataFrame({"o": pd.Series([], dtype=object), "x": np.array([])})
    got = _dask._arrow_table(empty_objects)
    assert got.equals(pa.Table.from_pandas(empty_objects, preserve_index=False))


@pytest.mark.parametrize("drop_behind", ["1", "0"])
def test_written_files_read_back_as_the_previous_writer(frames, tmp_path, monkeypatch, drop_behind):
    monkeypatch.setenv(_dask.DROP_BEHIND_ENV, drop_behind)
    for i, (name, frame) in enumerate(frames.items()):
        new, old = tmp_path / f"new{i}.parquet", tmp_path / f"old{i}.parquet"
        rows = _dask._write_part(frame, lambda fit, meta: fit, None, str(new))
        previous_writer(frame, old)
        assert rows == len(frame)
        got, want = pq.read_table(new), pq.read_table(old)
        assert got.equals(want, check_metadata=True), name
        pd.testing.assert_frame_equal(pd.read_parquet(new), pd.read_parquet(old), check_exact=True)
        if len(frame):  # (no rows: Parquet keeps no categories, for either writer)
            pd.testing.assert_frame_equal(pd.read_parquet(new), frame, check_exact=True)


def test_statistics_only_on_the_strata(frames, tmp_path):
    """Min/max where they let a reader skip files (the strata), not on the weeks (every file spans
    the calendar) nor the floats; a filter on a stratum still finds its rows."""
    target = tmp_path / "w.parquet"
    frame = frames["weekly"]
    _dask._write_part(frame, lambda fit, meta: fit, None, str(target))
    group = pq.ParquetFile(target).metadata.row_group(0)
    stats = {
        group.column(j).path_in_schema: group.column(j).is_stats_set
        for j in range(group.num_columns)
    }
    assert {c for c, has in stats.items() if has} == {*STRATA, "region_name"}  # categoricals
    region = frame["region"].cat.categories[3]
    got = pd.read_parquet(target, filters=[("region", "==", region)])
    want = frame[frame["region"] == region].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want, check_exact=True)


def test_to_parquet_reads_back_as_the_previous_writer(gappy, tmp_path):
    """End to end on Dask's local scheduler: every partition file equals the previous writer's file
    of the same partition, and the dataset the in-memory fit."""
    ddf = dd.from_pandas(gappy, npartitions=3, sort=False)
    f = fit_memory(ddf, reference=REFERENCE)
    written = f.to_parquet(tmp_path / "out")
    mem = fit_memory(gappy, reference=REFERENCE)
    for name, func in [("weekly", _dask._weekly), ("coefficients", _dask._coefficients)]:
        files = sorted(written[name].glob("part.*.parquet"))
        assert len(files) == f.npartitions
        meta = getattr(f._meta_fit, name).iloc[:0]
        for i, path in enumerate(files):
            fit = _dask._fit_partition(f._parts[i].compute(), f._plan, i)
            previous_writer(func(fit, meta), tmp_path / "old.parquet")
            got, want = pq.read_table(path), pq.read_table(tmp_path / "old.parquet")
            assert got.equals(want, check_metadata=True), (name, i)
        keys = [*STRATA, "week_ending"] if name == "weekly" else STRATA
        got = pd.read_parquet(written[name]).sort_values(keys, ignore_index=True)
        want = getattr(mem, name).sort_values(keys, ignore_index=True)
        for col in STRATA:  # each file carries the categories of the whole frame; compare values
            got[col], want[col] = got[col].astype(str), want[col].astype(str)
        pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-12)


def test_drop_behind_advises_every_file_again_on_later_writes(tmp_path, monkeypatch):
    calls: list[tuple[str, int]] = []
    names: dict[int, str] = {}
    real_open = os.open

    def opened(path, flags, *args):
        fd = real_open(path, flags, *args)
        names[fd] = os.fspath(path)
        return fd

    monkeypatch.setattr(_dask.os, "open", opened)
    monkeypatch.setattr(
        _dask.os,
        "posix_fadvise",
        lambda fd, off, n, advice: calls.append((names[fd], advice)),
        raising=False,
    )
    monkeypatch.setattr(_dask, "_DROP_PENDING", type(_dask._DROP_PENDING)(maxlen=4))
    monkeypatch.delenv(_dask.DROP_BEHIND_ENV, raising=False)
    paths = [str(tmp_path / f"p{i}") for i in range(6)]
    for p in paths:
        with open(p, "wb") as fh:
            fh.write(b"x" * 10)
    for p in paths[:2]:
        assert _dask._drop_behind(p)
    os.remove(paths[0])  # e.g. renamed into place: left alone
    for p in paths[2:]:
        assert _dask._drop_behind(p)
    dropped = [name for name, advice in calls]
    assert all(advice == os.POSIX_FADV_DONTNEED for _, advice in calls)
    assert dropped[:3] == [paths[0], paths[1], paths[0]]
    assert dropped[3:5] == [paths[2], paths[1]]  # paths[0] is gone: not opened
    # every file is advised when written and again at each of the next four writes
    assert dropped.count(paths[2]) == 4 and dropped.count(paths[5]) == 1


def test_drop_behind_off_by_env_or_without_fadvise(tmp_path, monkeypatch):
    path = tmp_path / "p"
    path.write_bytes(b"x")
    monkeypatch.setenv(_dask.DROP_BEHIND_ENV, "0")
    assert not _dask._drop_behind(str(path))
    monkeypatch.delenv(_dask.DROP_BEHIND_ENV)
    monkeypatch.delattr(_dask.os, "posix_fadvise", raising=False)
    assert not _dask._drop_behind(str(path))


def test_drop_behind_survives_a_filesystem_without_fadvise(tmp_path, monkeypatch):
    def refuse(*args):
        raise OSError(95, "Operation not supported")

    monkeypatch.setattr(_dask.os, "posix_fadvise", refuse, raising=False)
    monkeypatch.delenv(_dask.DROP_BEHIND_ENV, raising=False)
    path = tmp_path / "p"
    path.write_bytes(b"abc")
    assert _dask._drop_behind(str(path))
    assert path.read_bytes() == b"abc"
