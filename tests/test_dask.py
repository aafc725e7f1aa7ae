"""The Dask engine against the in-memory fit on the same data, on a 2-worker LocalCluster.

Oracle: ``excessmort.fit`` on the pandas frame (itself tested against statsmodels and R). Per-series
GLM fits are independent, so the partitioned fit must give every series the in-memory numbers, and
aggregates (England, regions) the same sums. Tolerance: |dask - memory| <= 1e-12 (|memory| + m) per
column, m the column's largest magnitude (sums over series are added in another order, and excess =
y - mu cancels); NaN positions, keys, row sets and dtypes must match exactly.
"""

from __future__ import annotations

import logging
import os
import signal

import dask.dataframe as dd  # the dask extra is part of `make test`: a missing install fails here
import distributed
import numpy as np
import pandas as pd
import pytest

import excessmort as em
from excessmort._dask import DaskFit
from excessmort._fit import fit as fit_memory
from excessmort.baselines.glm import QuasiPoisson
from excessmort.exceptions import InputError

pytestmark = [pytest.mark.dask, pytest.mark.timeout(300)]

STRATA = ["region", "sex", "age_group"]
RTOL = 1e-12


@pytest.fixture(scope="module")
def client():
    """One LocalCluster for the module: 2 worker processes, 1 thread each."""
    logging.getLogger("distributed.shuffle").setLevel(logging.ERROR)
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


@pytest.fixture(scope="module")
def demo() -> pd.DataFrame:
    return em.demo_data()


@pytest.fixture(scope="module")
def uneven(demo: pd.DataFrame) -> pd.DataFrame:
    """Demo data whose series start and end at different weeks, with missing weeks inside (NaN)."""
    frame = demo.copy()
    series = frame.groupby(STRATA, observed=True).ngroup().to_numpy()
    week = frame.groupby(STRATA, observed=True).cumcount().to_numpy()
    n_weeks = int(week.max()) + 1
    late_start = (series % 5 == 1) & (week < 60)
    early_end = (series % 7 == 2) & (week >= n_weeks - 30)
    frame = frame.loc[~(late_start | early_end)].copy()
    gaps = (series[frame.index] % 3 == 0) & (week[frame.index] % 97 == 5)
    frame.loc[gaps, "deaths"] = np.nan
    return frame.reset_index(drop=True)


def assert_close(got: pd.DataFrame, want: pd.DataFrame, keys: list[str]) -> None:
    """Same rows, keys and dtypes; NaN in the same places; numbers within the module tolerance."""
    assert list(got.columns) == list(want.columns)
    assert got.dtypes.to_dict() == want.dtypes.to_dict()
    if keys:
        got = got.sort_values(keys, kind="stable").reset_index(drop=True)
        want = want.sort_values(keys, kind="stable").reset_index(drop=True)
    assert len(got) == len(want)
    for col in want.columns:
        a, b = got[col], want[col]
        if not pd.api.types.is_float_dtype(b.dtype):
            pd.testing.assert_series_equal(a, b, check_names=True)
            continue
        a, b = a.to_numpy(), b.to_numpy()
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=f"NaN positions of {col}")
        ok = ~np.isnan(b)
        scale = np.max(np.abs(b[ok]), initial=0.0)
        err = np.abs(a[ok] - b[ok])
        bound = RTOL * (np.abs(b[ok]) + scale)
        assert np.all(err <= bound), f"{col}: worst {np.max(err - bound)} over the bound"


def check_against_memory(f: DaskFit, mem: em.Fit, window: tuple[str, str]) -> None:
    assert_close(f.weekly.compute(), mem.weekly, [*STRATA, "week_ending"])
    assert_close(f.coefficients.compute(), mem.coefficients, STRATA)
    assert_close(f.cumulative(*window), mem.cumulative(*window), STRATA)
    assert_close(f.cumulative(), mem.cumulative(), STRATA)
    for by in [(), ("region",), ("sex", "age_group")]:
        assert_close(f.by(*by).weekly, mem.by(*by).weekly, [])  # same row order too
        assert_close(f.by(*by).cumulative(*window), mem.by(*by).cumulative(*window), [])


@pytest.fixture(scope="module")
def split_fit(client, demo: pd.DataFrame) -> tuple[DaskFit, em.Fit]:
    """Partitions cut by week, so that every series is split across them (a shuffle is needed)."""
    raw = demo.sort_values("week_ending", kind="stable").reset_index(drop=True)
    raw["region"] = raw["region"].astype(str)  # plain strings, as in a raw file
    ddf = dd.from_pandas(raw, npartitions=4, sort=False)
    f = fit_memory(ddf, client=client, reference=("2015-01-01", "2019-12-31"))
    return f.persist(), fit_memory(demo, reference=("2015-01-01", "2019-12-31"))


def test_intervals_said_as_in_memory(demo):
    """(First in the module, before the LocalCluster fixture becomes the default client.)
    ``DaskFit.intervals``, its header line and the frames' ``attrs["intervals"]`` are the
    in-memory fit's (Dask's local scheduler: no cluster, one region of the demo)."""
    frame = demo[demo["region"] == demo["region"].iloc[0]].reset_index(drop=True)
    ddf = dd.from_pandas(frame, npartitions=2, sort=False)
    f, m = fit_memory(ddf, warmup=False), fit_memory(frame)
    assert f.intervals == m.intervals and m.intervals["autocorrelation"]
    line = dict(f._header())["intervals"]
    assert line == dict(m._header())["intervals"] and line in f._repr_html_()
    for d, p in ((f.by("sex"), m.by("sex")), (f, m)):
        assert d.cumulative(2020).attrs == p.cumulative(2020).attrs
    ind = fit_memory(ddf, warmup=False, dependence=False)
    assert ind.intervals == fit_memory(frame, dependence=False).intervals
    assert not ind.intervals["autocorrelation"]


def test_fit_dispatches_to_dask(split_fit):
    f, _ = split_fit
    assert isinstance(f, DaskFit)
    assert f.shuffled  # series were split across partitions
    assert isinstance(f.weekly, dd.DataFrame)
    assert isinstance(f.coefficients, dd.DataFrame)


def test_split_series_equal_in_memory(split_fit):
    f, mem = split_fit
    check_against_memory(f, mem, ("2020-03-01", "2020-12-31"))


def test_england_is_the_sum_of_regions(split_fit, demo):
    """A closed form beside the oracle: England's observed and expected are the sums over regions."""
    f, _ = split_fit
    eng = f.by().weekly
    reg = f.by("region").weekly
    assert eng["region"].astype(str).unique().tolist() == [em.regions.ENGLAND_CODE]
    sums = reg.groupby("week_ending")[["observed", "expected"]].sum()
    np.testing.assert_allclose(
        eng.set_index("week_ending")[["observed", "expected"]], sums, rtol=1e-12
    )
    assert eng["observed"].sum() == demo["deaths"].sum()


def test_parquet_to_parquet_by_series(client, uneven, tmp_path):
    """A dataset partitioned by region (whole series per file): no shuffle; read(engine="dask"),
    fit, to_parquet, read back; uneven spans and missing weeks go through the global calendar."""
    source = tmp_path / "in"
    source.mkdir()
    raw = uneven.copy()
    for col in STRATA:
        raw[col] = raw[col].astype(str)
    for i, (_, part) in enumerate(raw.groupby("region", sort=True)):
        part.to_parquet(source / f"part.{i}.parquet", index=False)
    ddf = em.read(source, engine="dask")
    assert isinstance(ddf, dd.DataFrame) and ddf.npartitions == 9
    f = fit_memory(ddf, client=client, reference=("2015-01-01", "2019-12-31"))
    mem = fit_memory(raw, reference=("2015-01-01", "2019-12-31"))  # the same data, in memory
    assert not f.shuffled
    assert f.weeks.equals(mem.weeks)

    out = tmp_path / "out"
    written = f.to_parquet(out, by=[(), ("region",)])
    assert sorted(p.name for p in out.iterdir()) == [
        "by_region.parquet",
        "by_total.parquet",
        "coefficients",
        "weekly",
    ]  # no temporary folders left behind
    assert len(list(written["weekly"].glob("part.*.parquet"))) == 9
    assert_close(pd.read_parquet(written["weekly"]), mem.weekly, [*STRATA, "week_ending"])
    assert_close(pd.read_parquet(written["coefficients"]), mem.coefficients, STRATA)
    assert_close(pd.read_parquet(written["by_total"]), mem.by().weekly, [])
    assert_close(pd.read_parquet(written["by_region"]), mem.by("region").weekly, [])
    assert dd.read_parquet(written["weekly"]).npartitions == 9

    # Writing again replaces the datasets whole.
    f.to_parquet(out)
    assert sorted(p.name for p in out.iterdir()) == [
        "by_region.parquet",
        "by_total.parquet",
        "coefficients",
        "weekly",
    ]


@pytest.mark.parametrize("baseline", ["five_year_average", "euromomo"])  # their own variance rules
def test_other_per_series_baselines(client, demo, baseline):
    ddf = dd.from_pandas(demo, npartitions=3, sort=False)
    f = fit_memory(
        ddf, client=client, baseline=baseline, reference=("2015-01-01", "2019-12-31")
    ).persist()
    mem = fit_memory(demo, baseline=baseline, reference=("2015-01-01", "2019-12-31"))
    assert_close(f.weekly.compute(), mem.weekly, [*STRATA, "week_ending"])
    assert_close(f.by().weekly, mem.by().weekly, [])
    assert_close(
        f.by("region").cumulative("2020-03-01", "2020-12-31"),
        mem.by("region").cumulative("2020-03-01", "2020-12-31"),
        [],
    )


def test_pooled_is_refused(client, demo):
    ddf = dd.from_pandas(demo, npartitions=2)
    with pytest.raises(InputError, match=r"pooled.*cannot be fitted partition by partition") as err:
        fit_memory(ddf, client=client, baseline="pooled")
    assert err.value.column == "baseline"


def test_bad_input_names_column_value_and_partition(client, demo):
    raw = demo.copy()
    raw.loc[1000, "deaths"] = -3.0
    ddf = dd.from_pandas(raw, npartitions=3, sort=False)
    f = fit_memory(ddf, client=client)
    with pytest.raises(InputError, match=r"partition \d.*'deaths'.*-3") as err:
        f.coefficients.compute()
    assert err.value.column == "deaths"
    assert err.value.value == -3


def test_reference_outside_data_is_refused_before_fitting(client, demo):
    ddf = dd.from_pandas(demo, npartitions=2)
    with pytest.raises(InputError, match="outside the data"):
        fit_memory(ddf, client=client, reference=("1990-01-01", "1995-12-31"))


def test_reference_rules_exclude_and_history_as_in_memory(client, demo):
    """fit's reference options reach the partitions: ``exclude=`` gives the in-memory figures, a
    reference over the pandemic is refused unless allowed (or excluded), and a series with too
    little history is refused naming it unless ``allow_short_history``."""
    ddf = dd.from_pandas(demo, npartitions=2)
    window = [("2018-01-01", "2018-03-31")]
    f = fit_memory(ddf, client=client, reference=("2015-01-01", "2019-12-31"), exclude=window)
    mem = fit_memory(demo, reference=("2015-01-01", "2019-12-31"), exclude=window)
    plain = fit_memory(demo, reference=("2015-01-01", "2019-12-31"))
    assert_close(f.by("region").cumulative(2020), mem.by("region").cumulative(2020), [])
    assert not np.allclose(
        mem.by().cumulative(2020)["expected"], plain.by().cumulative(2020)["expected"]
    )
    pandemic = ("2016-01-01", "2020-12-31")
    with pytest.raises(InputError, match="pandemic"):
        fit_memory(ddf, client=client, reference=pandemic)
    allowed = fit_memory(ddf, client=client, reference=pandemic, allow_pandemic=True)
    assert allowed.reference[1] == pd.Timestamp("2020-12-31")
    fit_memory(ddf, client=client, reference=pandemic, exclude=[("2020-03-01", "2020-12-31")])
    short = demo.copy()
    london = short["region"].astype(str) == "E12000007"
    short = short[~(london & (short["week_ending"] < "2019-06-01"))]
    sddf = dd.from_pandas(short, npartitions=2)
    with pytest.raises(InputError, match="E12000007"):
        fit_memory(sddf, client=client, reference=("2015-01-01", "2019-12-31")).by().cumulative()
    lenient = fit_memory(
        sddf, client=client, reference=("2015-01-01", "2019-12-31"), allow_short_history=True
    )
    assert np.isfinite(lenient.by().cumulative(2020)["expected"]).all()


class KillOnce(QuasiPoisson):
    """Kills the worker process that runs its first fit (marker file), then fits normally."""

    def __init__(self, marker: str) -> None:
        super().__init__()
        self.marker = marker

    def fit(self, panel, *, reference, engine="auto"):
        try:
            distributed.get_worker()
        except ValueError:  # on the client (the dtypes fit): never kill the test process
            return super().fit(panel, reference=reference, engine=engine)
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return super().fit(panel, reference=reference, engine=engine)
        os.close(fd)
        os.kill(os.getpid(), signal.SIGKILL)  # the worker dies mid-fit; its nanny starts a new one
        raise AssertionError("unreachable")


def test_worker_killed_mid_fit_is_retried(client, demo, tmp_path):
    marker = tmp_path / "killed"
    pids = set(client.run(os.getpid).values())
    ddf = dd.from_pandas(demo, npartitions=4, sort=False)
    f = fit_memory(
        ddf, client=client, baseline=KillOnce(str(marker)), reference=("2015-01-01", "2019-12-31")
    )
    written = f.to_parquet(tmp_path / "out", by=[()])
    assert marker.exists()  # a worker was killed
    client.wait_for_workers(2, timeout=60)
    assert set(client.run(os.getpid).values()) != pids  # ... and replaced
    mem = fit_memory(demo, reference=("2015-01-01", "2019-12-31"))
    weekly = pd.read_parquet(written["weekly"])
    assert len(weekly) == len(demo)  # complete
    assert_close(weekly, mem.weekly, [*STRATA, "week_ending"])
    assert_close(pd.read_parquet(written["by_total"]), mem.by().weekly, [])


@pytest.mark.parametrize("layout", ["sorted", "interleaved"])
def test_run_starts_find_every_series(layout):
    """The first pass hashes only the rows that start a run of equal keys; the set of series (and of
    values per stratum) must be that of all rows, whatever the row order, dtype or missing values."""
    from excessmort._dask import _run_starts

    rng = np.random.default_rng(3)
    keys = pd.DataFrame(
        {
            "area": pd.array(rng.choice(["A", "B", "C", None], 400), dtype="str"),
            "sex": pd.Categorical(rng.choice(["F", "M"], 400)),
            "age": rng.integers(0, 3, 400),
            "code": rng.choice([1.5, np.nan], 400),
        }
    )
    frame = keys.loc[np.repeat(np.arange(400), 5)].reset_index(drop=True)
    if layout == "sorted":
        frame = frame.sort_values(list(frame.columns), kind="stable").reset_index(drop=True)
    starts = _run_starts(frame)
    assert starts[0] and starts.sum() < len(frame)
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    assert set(hashed[starts]) == set(hashed)
    for col in frame.columns:
        assert set(frame[col][starts].dropna()) == set(frame[col].dropna())


def test_plan_is_one_key_not_copied_into_every_task(demo):
    """The plan carries the global categories, which grow with the panel; each partition's task must
    refer to it by key (fetched once per worker), not embed a copy (O(partitions x series))."""
    import pickle

    from excessmort._dask import _status

    f = fit_memory(dd.from_pandas(demo, npartitions=6, sort=False), warmup=False)
    tasks = f._each(lambda i: [(_status, ())])
    graph: dict = {}
    for t in tasks:
        graph.update(t.dask)
    plan_key = f._shared("plan").key
    plan_size = len(pickle.dumps(f._plan))
    assert plan_key in graph
    fit_tasks = [k for k in graph if str(k).startswith("_fit_and_run")]
    assert len(fit_tasks) == 6
    for key in fit_tasks:
        spec = graph[key]
        assert plan_key in spec.dependencies
        assert len(pickle.dumps(spec)) < plan_size / 3, key


def test_scheduler_address_string(client, demo):
    """``client=`` may be a scheduler address: fit connects to it (a client of its own)."""
    address = client.scheduler.address
    ddf = dd.from_pandas(demo, npartitions=3, sort=False)
    f = fit_memory(ddf, client=address, reference=("2015-01-01", "2019-12-31"))
    assert f._client is not client and f._client.scheduler.address == address
    try:
        mem = fit_memory(demo, reference=("2015-01-01", "2019-12-31"))
        assert_close(f.coefficients.compute(), mem.coefficients, STRATA)
        assert_close(f.by("region").weekly, mem.by("region").weekly, [])
    finally:
        f._client.close()


@pytest.mark.parametrize("form", ["folder", "glob", "tsv"])
def test_csv_files_with_engine_dask(client, uneven, tmp_path, form):
    """CSV files, one per region, read lazily (one partition per file) and fitted: the in-memory
    numbers. Text columns stay text ("01" is not 1); a bad count names its partition and row."""
    raw = uneven.copy()
    for col in STRATA:
        raw[col] = raw[col].astype(str)  # as the CSV holds them
    raw["sex"] = raw["sex"].map({"F": "01", "M": "02"})
    sep, suffix = ("\t", ".tsv") if form == "tsv" else (",", ".csv")
    for i, (_, part) in enumerate(raw.groupby("region", sort=True)):
        part.to_csv(tmp_path / f"part.{i}{suffix}", index=False, sep=sep)
    source = tmp_path if form == "folder" else tmp_path / f"part.*{suffix}"
    ddf = em.read(source, engine="dask")
    assert ddf.npartitions == 9
    f = fit_memory(ddf, client=client, reference=("2015-01-01", "2019-12-31"))
    assert not f.shuffled
    mem = fit_memory(em.read(raw), reference=("2015-01-01", "2019-12-31"))
    assert sorted(f.coefficients.compute()["sex"].astype(str).unique()) == ["01", "02"]
    assert_close(f.coefficients.compute(), mem.coefficients, STRATA)
    assert_close(f.by().weekly, mem.by().weekly, [])

    if form == "folder":
        bad = raw.copy()
        bad["deaths"] = bad["deaths"].astype(object)
        bad.loc[bad.index[7], "deaths"] = "seven"
        bad.iloc[:100].to_csv(tmp_path / "part.0.csv", index=False)
        lazy = em.read(tmp_path, engine="dask")
        with pytest.raises(InputError, match=r"(?s)partition 0.*'deaths'.*seven") as err:
            fit_memory(lazy, client=client).coefficients.compute()
        assert (err.value.column, err.value.value, err.value.row) == ("deaths", "seven", 7)


def test_each_partition_is_fitted_and_written_in_one_task(client, demo, tmp_path):
    """The fitted arrays of a partition (about ten [S, T] floats) must not be a key of their own that
    a worker holds until every reader of it has run: that is what made worker memory grow across
    the 500 partitions of the 1M-series benchmark. Fitting, writing and summing are one task."""
    ddf = dd.from_pandas(demo, npartitions=4, sort=False)
    f = fit_memory(ddf, client=client, reference=("2015-01-01", "2019-12-31"))
    seen: list[str] = []
    original = f._run

    def spy(tasks):
        for t in tasks:
            seen.extend(str(k) for k in t.__dask_graph__())
        return original(tasks)

    f._run = spy
    f.to_parquet(tmp_path / "out", by=[()])
    per_partition = [k for k in seen if k.startswith("_fit_and_run")]
    assert len(set(per_partition)) == 4
    assert not [k for k in seen if k.startswith(("_fit_any", "_fit_partition", "_write_part"))]


def test_html_display_computes_nothing(client, demo):
    """Jupyter shows the fit's header without a pass over the data (no task is submitted)."""
    ddf = dd.from_pandas(demo, npartitions=3, sort=False)
    f = fit_memory(ddf, client=client, reference=("2015-01-01", "2019-12-31"))
    before = client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.transition_counter)
    page = f._repr_html_()
    after = client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.transition_counter)
    assert before == after
    assert "<table" in page and "quasipoisson" in page
    assert "region (9 values)" in page and "sex (2 values)" in page
    weeks = demo["week_ending"]
    span = f"{weeks.min().date()} to {weeks.max().date()} ({weeks.nunique():,})"
    assert span in page and "2015-01-01 to 2019-12-31" in page
    assert client.scheduler.address in page and "recomputed by each accessor" in page
    assert "persisted on the workers" in f.persist()._repr_html_()


def _page_faults_per_array() -> float:
    """Minor page faults per 8 MB array allocated and freed while another one lives above it in the
    heap (the pattern of a partition's [S, T] arrays): ~0 when freed memory is reused, ~1 per
    touched page when every array is a fresh mmap."""
    import resource

    first = np.ones(1_000_000)
    pinned = np.ones(1_000_000)  # noqa: F841 - keeps the heap's top above the freed array
    del first
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        a = np.ones(1_000_000)
        del a
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20


def test_tune_malloc_reuses_freed_arrays_on_workers(client):
    """Dask starts workers with MALLOC_TRIM_THRESHOLD_ set, which pins glibc's mmap threshold at
    128 KiB: each big array is then fresh pages. warm_workers() lifts it on every worker."""
    from excessmort._dask import tune_malloc, warm_workers

    env = client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_"))
    assert set(env.values()) == {"65536"}  # Dask's default: the case being fixed
    warm_workers(client)
    tuned = client.run(_page_faults_per_array)
    assert len(tuned) == 2 and max(tuned.values()) < 10, tuned
    assert tune_malloc(0) is False
    os.environ["EXCESSMORT_MMAP_THRESHOLD"] = "0"
    try:
        assert tune_malloc() is False
    finally:
        del os.environ["EXCESSMORT_MMAP_THRESHOLD"]


def test_untuned_allocator_faults_every_array(tmp_path):
    """The oracle for the test above: the same measurement in a fresh process with Dask's setting,
    without and with tune_malloc()."""
    import subprocess
    import sys

    script = tmp_path / "faults.py"
    script.write_text(
        "import sys\n"
        "from test_dask import _page_faults_per_array\n"
        "from excessmort._dask import tune_malloc\n"
        "if sys.argv[1] == 'tune':\n"
        "    assert tune_malloc()\n"
        "print(_page_faults_per_array())\n"
    )
    env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "65536", "PYTHONPATH": os.path.dirname(__file__)}
    faults = {
        mode: float(
            subprocess.run(
                [sys.executable, str(script), mode],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        for mode in ("plain", "tune")
    }
    assert faults["plain"] > 200 and faults["tune"] < 10, faults


def test_persisted_fit_is_counted_at_its_real_size(demo):
    """Dask's memory accounting of a persisted partition: ``sizeof`` of a Fit against an independent
    measure of what it holds, the bytes of its panel and result pickled (arrays, the design and the
    panel's caches), within 5%."""
    import pickle

    from dask.sizeof import sizeof

    fit = fit_memory(demo, reference=("2015-01-01", "2019-12-31"))
    _ = fit.weekly  # fills caches, which a worker's persisted fit also holds
    pickled = len(pickle.dumps((fit.panel, fit.result), protocol=5))
    assert sizeof(fit) == pytest.approx(pickled, rel=0.05)


def test_dispersion_judged_by_the_in_memory_rule_on_ons_regions(client, shared):
    # issue 17: the Dask engine warns by the fit's own size-aware rule (excessmort._dispersion),
    # not a fixed [0.2, 10] range: quiet on the real ONS regions (phi 10-15.5), loud on a break.
    import warnings

    from excessmort.exceptions import DispersionWarning

    regions = em.read(shared / "data" / "ons" / "ons_weekly_deaths_by_region.csv")
    ref = ("2015-01-01", "2019-12-31")
    mem = fit_memory(regions, reference=ref)
    assert mem.result.dispersion_raw.max() > 10
    with warnings.catch_warnings():
        warnings.simplefilter("error", DispersionWarning)
        f = fit_memory(
            dd.from_pandas(regions, npartitions=3, sort=False), client=client, reference=ref
        )
        f.by().cumulative(2020)  # runs the partitions' status job, which warns
    broken = regions.copy()
    london = broken["region"].astype(str) == "E12000007"
    late = broken["week_ending"].between("2017-07-01", "2019-12-31")
    broken.loc[london & late, "deaths"] = (broken.loc[london & late, "deaths"] * 1.6).round()
    with pytest.warns(DispersionWarning, match=r"size makes ordinary") as memory_warning:
        fit_memory(broken, reference=ref)
    f = fit_memory(dd.from_pandas(broken, npartitions=3, sort=False), client=client, reference=ref)
    with pytest.warns(DispersionWarning, match=r"size makes ordinary") as dask_warning:
        f.by().cumulative(2020)
    # the same series flagged with the same bound by both engines
    flagged = str(memory_warning[0].message).split(": ", 1)[1].split(". Check")[0]
    assert flagged in str(dask_warning[0].message), (flagged, str(dask_warning[0].message))
    assert "region=E12000007 (phi=" in flagged
    # fit_dask takes the fit's dispersion_check: None silences it, a fixed range flags the ordinary
    with warnings.catch_warnings():
        warnings.simplefilter("error", DispersionWarning)
        quiet = fit_memory(
            dd.from_pandas(broken, npartitions=3, sort=False),
            client=client,
            reference=ref,
            dispersion_check=None,
        )
        quiet.by().cumulative(2020)
    strict = fit_memory(
        dd.from_pandas(regions, npartitions=3, sort=False),
        client=client,
        reference=ref,
        dispersion_check=(0.2, 5.0),
    )
    with pytest.warns(DispersionWarning, match=r"outside \[0.2, 5\] in 8 series: region=E12000002"):
        strict.by().cumulative(2020)
    with pytest.raises(em.InputError, match="dispersion_check must be"):
        fit_memory(dd.from_pandas(regions, npartitions=3), client=client, dispersion_check="loud")


@pytest.mark.parametrize("order", ["strings", "categories_reversed"])
def test_partition_panel_equals_the_panel_of_its_tidy_frame(demo, order):
    """A partition read straight into its panel (issue 18 item 5) equals the previous path,
    ``Panel.from_frame`` of its tidy frame with the global categories: keys (order and dtype),
    deaths, exposure; also when the partition's own categories are in another order than the
    global ones (series then reordered on the global codes). No cluster: the per-partition code."""
    from excessmort._dask import (
        _categories,
        _on_calendar,
        _read_panel_partition,
        _read_partition,
        _recognise,
    )
    from excessmort.panel import Panel

    weeks = pd.DatetimeIndex(np.sort(demo["week_ending"].unique()))
    raw = demo[demo["region"].astype(str).isin(["E12000003", "E12000007"])]
    raw = raw[raw["week_ending"] >= pd.Timestamp("2012-01-01")].reset_index(drop=True)
    for col in ("sex", "age_group"):
        values = raw[col].astype(str)
        if order == "strings":
            raw[col] = values
        else:
            cats = sorted(values.unique(), reverse=True)
            raw[col] = pd.Categorical(values, categories=cats)
    raw["region"] = raw["region"].astype(str)
    cols = _recognise(list(raw.columns), None, False)
    categories = _categories({c: [demo[c].astype(str).unique()] for c in cols.strata_raw}, cols)
    old = _on_calendar(
        Panel.from_frame(_read_partition(raw, cols, categories, 0)), weeks, categories
    )
    new = _on_calendar(_read_panel_partition(raw, cols, 0), weeks, categories)
    pd.testing.assert_frame_equal(new.keys, old.keys)
    np.testing.assert_array_equal(new.deaths, old.deaths)
    np.testing.assert_array_equal(new.exposure, old.exposure)
    assert new.weeks.equals(old.weeks)


@pytest.mark.parametrize("unit", ["s", "us", "ns"])
@pytest.mark.parametrize("dates", ["weekly", "two_weekdays", "noon", "before_1970"])
def test_partition_calendar_equals_check_dates(demo, unit, dates):
    """Pass 1's calendar of a partition (first and last week, weekday residues) from the row
    kernels equals the computation on check_dates' parsed dates (the code before them)."""
    from excessmort import validate as v
    from excessmort._dask import _weekly_calendar

    raw = demo["week_ending"].iloc[:2000].reset_index(drop=True)
    if dates == "two_weekdays":
        raw = raw.where(raw.index % 7 != 3, raw + pd.Timedelta(days=1))
    elif dates == "noon":
        raw = raw.where(raw.index != 10, raw + pd.Timedelta(hours=12))
    elif dates == "before_1970":
        raw = raw - pd.Timedelta(days=7 * 3000)
    raw = raw.astype(f"datetime64[{unit}]")
    parsed = v.check_dates(pd.DataFrame({"week_ending": raw}), [])
    days = parsed.to_numpy(dtype="datetime64[ns]").astype("datetime64[D]").astype(np.int64)
    want = parsed.min(), parsed.max(), np.unique(days % 7)
    got = _weekly_calendar(raw, engine="numba")  # the kernels, whatever the size
    if len(raw) < 250_000:  # a partition this small goes without numba on "auto"
        assert _weekly_calendar(raw) is None
    if dates in ("two_weekdays", "noon"):
        assert got is None  # left to check_dates
        return
    assert got is not None
    assert got[0] == want[0] and got[1] == want[1]
    assert got[0].unit == want[0].unit == "ns"
    np.testing.assert_array_equal(got[2], want[2])
