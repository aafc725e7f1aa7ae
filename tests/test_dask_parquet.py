"""Parquet read by excessmort itself on the Dask path (strata as Arrow dictionaries), against Dask's
own partitions of the same ``dd.read_parquet`` frame.

Oracle: the previous path, every partition as Dask reads it (``ddf.partitions[i]``, or the whole
fit with :func:`excessmort._dask._parquet_pieces` turned off). A frame read with the strata as
dictionaries must give read() the same series, keys, codes and arrays, pass 1 the same calendar,
categories and series, the fit the same numbers (exactly: the same arrays go into the same
kernels), and bad input the same error (message, column, value, row). No cluster: Dask's
synchronous scheduler runs the same task functions.
"""

from __future__ import annotations

from pathlib import Path

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import excessmort as em
from excessmort import _dask
from excessmort.exceptions import InputError

pytestmark = [pytest.mark.dask, pytest.mark.timeout(120)]

REFERENCE = ("2015-01-01", "2019-12-31")
#: a stratum whose natural order differs from its text order and from its order of appearance
CLASS = {0: "85+", 1: "<1", 2: "10-14", 3: "9", 4: "1-4"}


@pytest.fixture(autouse=True)
def synchronous():
    with dask.config.set(scheduler="synchronous"):
        yield


def _raw(demo: pd.DataFrame) -> pd.DataFrame:
    """Demo data as text, with an extra stratum, Wales rows, and one region given by name."""
    raw = demo[demo["week_ending"] >= pd.Timestamp("2013-01-01")].copy()
    for col in ("region", "sex", "age_group"):
        raw[col] = raw[col].astype(str)
    codes = raw.groupby(["region", "sex"], observed=True).ngroup().to_numpy() % len(CLASS)
    raw["class"] = [CLASS[c] for c in codes]
    wales = raw[raw["region"] == "E12000004"].assign(region=em.regions.WALES_CODE)
    raw = pd.concat([raw, wales], ignore_index=True)
    raw.loc[raw["region"] == "E12000001", "region"] = "North East"
    return raw.reset_index(drop=True)


def write_dataset(frame: pd.DataFrame, root: Path, row_group_size: int = 2_000) -> Path:
    """Whole series per file, three regions a file (text strata, several row groups per file,
    each with its own dictionary)."""
    root.mkdir(parents=True, exist_ok=True)
    regions = sorted(frame["region"].unique())
    for k in range(0, len(regions), 3):
        part = frame[frame["region"].isin(regions[k : k + 3])]
        table = pa.Table.from_pandas(part, preserve_index=False)
        pq.write_table(table, root / f"part.{k // 3:03d}.parquet", row_group_size=row_group_size)
    return root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_dataset(_raw(em.demo_data()), tmp_path_factory.mktemp("pq") / "in")


def _strata(ddf) -> list[str]:
    return list(_dask._recognise(list(ddf.columns), None, False).strata_raw)


def test_pieces_read_what_dask_reads(dataset):
    """Every partition: ``as_dask`` is Dask's frame exactly; the dictionary read is the same frame
    with the text strata as categoricals in read()'s natural order."""
    ddf = dd.read_parquet(dataset)
    pieces = _dask._parquet_pieces(ddf, _strata(ddf))
    assert pieces is not None and len(pieces) == ddf.npartitions == 4
    assert pieces[0].text == ("region", "sex", "age_group", "class")
    for i, piece in enumerate(pieces):
        want = ddf.partitions[i].compute()
        pd.testing.assert_frame_equal(piece.read(as_dask=True), want, check_exact=True)
        got = piece.read()
        assert pq.ParquetFile(piece.path).num_row_groups > 1
        for col in piece.text:
            assert isinstance(got[col].dtype, pd.CategoricalDtype)
            assert list(got[col].cat.categories) == sorted(
                want[col].unique(), key=em.io._natural_key
            )
        back = got.astype({c: want[c].dtype for c in piece.text})
        pd.testing.assert_frame_equal(back, want, check_exact=True)


def test_partition_steps_equal_dask_partitions(dataset):
    """Pass 1's summary, the panel and the tidy frame of each partition, read as dictionaries,
    equal those of Dask's partition (keys and their dtypes, series order, arrays)."""
    ddf = dd.read_parquet(dataset)
    cols = _dask._recognise(list(ddf.columns), None, False)
    pieces = _dask._parquet_pieces(ddf, cols.strata_raw)
    needed = [*cols.strata_raw, cols.week_col]
    summaries = []
    for i, piece in enumerate(pieces):
        part = ddf.partitions[i].compute()
        small = _dask.dataclasses.replace(piece, columns=tuple(needed))
        got, want = _dask._summarise(small, cols, i), _dask._summarise(part[needed], cols, i)
        if not want["n"]:  # a file of Wales alone: left out
            assert got == want and (part["region"] == em.regions.WALES_CODE).all()
            continue
        assert (got["n"], got["lo"], got["hi"]) == (want["n"], want["lo"], want["hi"])
        np.testing.assert_array_equal(got["residues"], want["residues"])
        np.testing.assert_array_equal(got["hashes"], want["hashes"])
        for col in cols.strata_raw:
            assert sorted(map(str, got["uniques"][col])) == sorted(map(str, want["uniques"][col]))
        summaries.append(want)
        new, old = (
            _dask._read_panel_partition(piece, cols, i),
            _dask._read_panel_partition(part, cols, i),
        )
        pd.testing.assert_frame_equal(new.keys, old.keys, check_exact=True)
        np.testing.assert_array_equal(new.deaths, old.deaths)
        np.testing.assert_array_equal(new.exposure, old.exposure)
        assert new.weeks.equals(old.weeks)
    uniques = {c: [s["uniques"][c] for s in summaries] for c in cols.strata_raw}
    categories = _dask._categories(uniques, cols)
    assert em.regions.WALES_CODE not in categories["region"].categories
    for i, piece in enumerate(pieces):
        new = _dask._read_partition(piece, cols, categories, i)
        old = _dask._read_partition(ddf.partitions[i].compute(), cols, categories, i)
        if old is None:  # Wales alone
            assert new is None
            continue
        pd.testing.assert_frame_equal(new, old, check_exact=True)


def _fit_both(source, monkeypatch, **kwargs):
    """The fit of ``source`` with Parquet read by excessmort, then read by Dask."""
    new = _dask.fit_dask(dd.read_parquet(source), reference=REFERENCE, warmup=False, **kwargs)
    with monkeypatch.context() as m:
        m.setattr(_dask, "_parquet_pieces", lambda *args: None)
        old = _dask.fit_dask(dd.read_parquet(source), reference=REFERENCE, warmup=False, **kwargs)
    assert isinstance(new._parts[0], _dask._ParquetPiece)
    assert not isinstance(old._parts[0], _dask._ParquetPiece)
    return new, old


def test_fit_equals_the_fit_of_dask_partitions(dataset, monkeypatch, tmp_path):
    """Weekly, coefficients, aggregates and the datasets written: equal exactly."""
    new, old = _fit_both(dataset, monkeypatch)
    assert new.weeks.equals(old.weeks) and new._plan.categories == old._plan.categories
    for name in ("weekly", "coefficients", "diagnostics"):
        got, want = getattr(new, name).compute(), getattr(old, name).compute()
        pd.testing.assert_frame_equal(got, want, check_exact=True)
    pd.testing.assert_frame_equal(new.by().weekly, old.by().weekly, check_exact=True)
    pd.testing.assert_frame_equal(new.by("class").weekly, old.by("class").weekly, check_exact=True)
    a, b = new.to_parquet(tmp_path / "new", by=[()]), old.to_parquet(tmp_path / "old", by=[()])
    for name in a:
        pd.testing.assert_frame_equal(pd.read_parquet(a[name]), pd.read_parquet(b[name]))
    mem = em.fit(
        pd.concat([pq.read_table(p).to_pandas() for p in sorted(dataset.glob("*.parquet"))]),
        reference=REFERENCE,
    )
    keys = ["region", "sex", "age_group", "class", "week_ending"]
    got = new.weekly.compute().sort_values(keys, ignore_index=True)
    want = mem.weekly.sort_values(keys, ignore_index=True)
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-12)


@pytest.mark.parametrize("bad", ["deaths", "null_stratum", "unknown_region", "two_weekdays"])
def test_bad_input_gives_dask_partitions_error(demo_raw, tmp_path, monkeypatch, bad):
    """The same InputError (message, column, value, row) as on Dask's partitions."""
    raw = demo_raw.copy()
    row = int(np.flatnonzero(raw["region"] == "E12000007")[37])
    if bad == "deaths":
        raw.loc[row, "deaths"] = -3.0
    elif bad == "null_stratum":
        raw.loc[row, "sex"] = None
    elif bad == "unknown_region":
        raw.loc[raw["region"] == "E12000007", "region"] = "Atlantis"
    else:
        raw.loc[row, "week_ending"] += pd.Timedelta(days=1)
    source = write_dataset(raw, tmp_path / "in")
    errors = []
    for off in (False, True):
        with monkeypatch.context() as m:
            if off:
                m.setattr(_dask, "_parquet_pieces", lambda *args: None)
            with pytest.raises(InputError) as err:
                f = _dask.fit_dask(dd.read_parquet(source), reference=REFERENCE, warmup=False)
                f.coefficients.compute()
        errors.append(err.value)
    new, old = errors
    assert str(new) == str(old)
    assert (new.column, new.row) == (old.column, old.row)
    assert str(new.value) == str(old.value)


@pytest.fixture(scope="module")
def demo_raw() -> pd.DataFrame:
    return _raw(em.demo_data())


def test_other_frames_are_read_by_dask(dataset, demo_raw):
    """Only a plain ``dd.read_parquet`` frame (or a selection of its columns) is read by
    excessmort; any option that changes what Dask reads, and any other frame, leaves it to Dask."""
    strata = ["region", "sex", "age_group", "class"]
    selected = dd.read_parquet(dataset)[["region", "sex", "age_group", "week_ending", "deaths"]]
    pieces = _dask._parquet_pieces(selected, strata)
    assert pieces is not None and pieces[0].text == ("region", "sex", "age_group")
    pd.testing.assert_frame_equal(
        pieces[1].read(as_dask=True), selected.partitions[1].compute(), check_exact=True
    )
    others = [
        dd.from_pandas(demo_raw, npartitions=2),
        dd.read_parquet(dataset, filters=[("sex", "==", "F")]),
        dd.read_parquet(dataset, index="week_ending"),
        dd.read_parquet(dataset, dtype_backend="pyarrow"),
        dd.read_parquet(dataset, filesystem="arrow"),
        dd.read_parquet(dataset).assign(deaths=lambda d: d["deaths"] + 0),
        dd.read_parquet(dataset).partitions[1:],
    ]
    for ddf in others:
        assert _dask._parquet_pieces(ddf, strata) is None
    numbers = demo_raw.assign(sex=demo_raw["sex"].map({"F": 1, "M": 2}))
    numeric = write_dataset(numbers, dataset.parent / "numeric")
    pieces = _dask._parquet_pieces(dd.read_parquet(numeric), strata)
    assert pieces is not None and "sex" not in pieces[0].text  # read as Dask reads it
    assert _dask._parquet_pieces(dd.read_parquet(numeric), ["sex"]) is None


def test_input_refused_on_dictionaries_is_met_again_as_dask_reads_it(dataset):
    """Bad input found on the dictionary read is looked at again on Dask's own frame, so that the
    error raised (or the result, should that frame pass) is the one of Dask's partition."""
    ddf = dd.read_parquet(dataset)
    piece = _dask._parquet_pieces(ddf, _strata(ddf))[1]
    seen = []

    def check(frame: pd.DataFrame) -> pd.DataFrame:
        seen.append(str(frame["sex"].dtype))
        if isinstance(frame["sex"].dtype, pd.CategoricalDtype):
            raise InputError("refused", column="sex", value="F", row=0)
        return frame

    got = _dask._on_frame(piece, check)
    assert seen == ["category", str(ddf["sex"].dtype)]
    pd.testing.assert_frame_equal(got, ddf.partitions[1].compute(), check_exact=True)


@pytest.mark.parametrize(
    "chunks",
    [
        [["85+", "<1", "9", "10-14", "<1"]],  # not in natural order
        [["<1", "9", "10-14", "85+"]],  # in natural order already
        [["9", None, "<1", None]],  # nulls, not in order
        [["<1", None, "9"]],  # nulls, in order
        [["b", "a"], ["c", "a", None], []],  # row groups with their own dictionaries
        [[f"L{i:04d}" for i in range(300, 0, -1)]],  # more codes than int8 holds
        [],
    ],
)
def test_natural_categorical_keeps_every_value(chunks):
    """The categorical of a dictionary column holds the column's values (nulls missing) and its
    categories in read()'s natural order."""
    column = pa.chunked_array(
        [pa.array(c, type=pa.string()).dictionary_encode() for c in chunks],
        type=pa.dictionary(pa.int32(), pa.string()),
    )
    got = _dask._natural_categorical(column)
    values = [v for c in chunks for v in c]
    assert [None if pd.isna(v) else v for v in got.astype(object)] == values
    present = {v for v in values if v is not None}
    assert list(got.categories) == sorted(present, key=em.io._natural_key)


@pytest.mark.parametrize("nulls", [False, True])
def test_pass_one_from_arrow_equals_dask_partitions(demo_raw, tmp_path, monkeypatch, nulls):
    """Without a region column (no Wales to leave out) pass 1 summarises a file from its Arrow
    table (runs found on the dictionary codes, only their first rows decoded): the calendar, row
    count, series hashes and stratum values of Dask's partition, also with missing strata (each
    a run of its own there) and a stratum stored as numbers (read as Dask reads it)."""
    raw = demo_raw.rename(columns={"region": "area"})
    raw["band"] = raw["sex"].map({"F": 1, "M": 2}).astype(np.int64)
    if nulls:
        raw.loc[raw.index % 97 == 5, "sex"] = None
        raw.loc[raw.index % 89 < 3, "class"] = None
    root = tmp_path / "in"
    root.mkdir()
    for k, (_, part) in enumerate(raw.groupby(raw["area"].str[-1])):
        table = pa.Table.from_pandas(part, preserve_index=False)
        pq.write_table(table, root / f"part.{k:03d}.parquet", row_group_size=1_500)
    ddf = dd.read_parquet(root)
    cols = _dask._recognise(list(ddf.columns), None, False)
    assert cols.region_source is None and "band" in cols.strata_raw
    needed = [*cols.strata_raw, cols.week_col]
    pieces = _dask._parquet_pieces(ddf, cols.strata_raw)
    assert "band" not in pieces[0].text
    monkeypatch.setattr(_dask._ParquetPiece, "read", None)  # not read into a frame
    for i, piece in enumerate(pieces):
        small = _dask.dataclasses.replace(piece, columns=tuple(needed))
        got = _dask._summarise(small, cols, i)
        want = _dask._summarise(ddf[needed].partitions[i].compute(), cols, i)
        assert got.keys() == want.keys()
        assert (got["n"], got["lo"], got["hi"]) == (want["n"], want["lo"], want["hi"])
        np.testing.assert_array_equal(got["residues"], want["residues"])
        np.testing.assert_array_equal(got["hashes"], want["hashes"])
        for col in cols.strata_raw:
            pd.testing.assert_series_equal(
                pd.Series(got["uniques"][col]), pd.Series(want["uniques"][col])
            )
