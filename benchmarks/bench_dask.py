"""The Dask engine end to end: a partitioned Parquet panel larger than a worker's memory, fitted on a
LocalCluster and written back as Parquet, with series per second, peak memory per worker and the
1 -> 2 worker scaling.

    python -m benchmarks.bench_dask [--series N] [--weeks 470] [--workers 1 2] [--memory-limit 2GB]
                                    [--chunk 2000] [--data DIR] [--keep-data] [--keep-output]

1. Generates N series x T weeks as one Parquet file per ``--chunk`` series (whole series per file,
   written chunk by chunk, so generation never holds the panel), in a temporary folder beside the
   results unless ``--data`` names one (an existing dataset there with the same shape is reused).
2. For each worker count: a LocalCluster (1 thread and ``--memory-limit`` per worker, BLAS and numba
   pinned to 1 thread), kernels warmed on every worker (timed apart), then
   ``excessmort.fit(dd.read_parquet(...)).to_parquet(out, by=[()])``: weekly + coefficients datasets
   and the England-like total, in one pass (a frame straight from ``dd.read_parquet`` has its files
   read by excessmort, the text strata as Arrow dictionaries: ``excessmort._dask._parquet_pieces``). Peak memory per worker is the largest RSS of each worker
   process, sampled every 0.2 s with psutil; worker CPU is the user + system seconds the workers
   spent in the fit and write (summed over workers).
3. Equal work: the first two files are fitted in memory with ``excessmort.fit`` and compared with the
   rows the cluster wrote for those series (largest relative difference over every weekly column);
   the number of non-converged series is read from the coefficients dataset.

Prints a table and writes ``benchmarks/results/dask_<date>.csv`` (machine, versions, git SHA per row).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from excessmort._fit import WEEKLY_COLUMNS

from .machine import PINNED_ENV, REPO, git_info, machine_info, now, versions

RESULTS = REPO / "benchmarks" / "results"
REFERENCE = ("2016-01-01", "2019-12-31")
START = "2016-01-01"  # a Friday
AGE_GROUPS = ("0-4", "5-14", "15-24", "25-34", "35-44", "45-54", "55-64", "65-74", "75-84", "85+")


# ---------------------------------------------------------------------------------------- data
def _chunk(first: int, last: int, weeks: pd.DatetimeIndex, seed: int) -> Any:
    """Series first..last-1 as an Arrow table: area x sex x age group, a trend, a winter wave and a
    2020 excess; negative-binomial counts (variance 1.3 mu)."""
    import pyarrow as pa

    rng = np.random.default_rng([seed, first])
    n, t = last - first, len(weeks)
    ids = np.arange(first, last)
    tau = ((weeks - pd.Timestamp("2000-01-01")).days.to_numpy() / 365.25)[None, :]
    size = np.exp(rng.uniform(np.log(2.0), np.log(200.0), n))[:, None]
    trend = rng.normal(-0.01, 0.01, n)[:, None] * (tau - tau[0, 0])
    wave = rng.uniform(0.08, 0.25, n)[:, None] * np.cos(
        2 * np.pi * (tau + rng.uniform(-0.05, 0.05, n)[:, None])
    )
    excess = np.where(
        (weeks >= pd.Timestamp("2020-03-20")) & (weeks <= pd.Timestamp("2020-06-26")), 0.3, 0.0
    )
    mu = size * np.exp(trend + wave) * (1.0 + excess[None, :])
    deaths = rng.poisson(rng.gamma(mu / 0.3, 0.3)).astype(np.int32)
    areas = np.arange(first // 20, (last - 1) // 20 + 1)

    def text(codes: np.ndarray, labels: list[str]) -> Any:  # plain strings, built in Arrow
        return pa.DictionaryArray.from_arrays(
            pa.array(np.repeat(codes, t).astype(np.int32)), pa.array(labels)
        ).cast(pa.string())

    return pa.table(
        {
            "area": text(ids // 20 - areas[0], [f"L{i:06d}" for i in areas]),
            "sex": text((ids // 10) % 2, ["F", "M"]),
            "age_group": text(ids % 10, list(AGE_GROUPS)),
            "week_ending": pa.array(np.tile(weeks.to_numpy(dtype="datetime64[ns]"), n)),
            "deaths": pa.array(deaths.reshape(-1)),
        }
    )


def generate(root: Path, n_series: int, n_weeks: int, chunk: int, seed: int = 0) -> float:
    """Write the dataset file by file; returns seconds (0 when a complete one is already there)."""
    import pyarrow.parquet as pq

    stamp = root / "_SHAPE"
    shape = f"{n_series} {n_weeks} {chunk} {seed}"
    if stamp.exists() and stamp.read_text() == shape:
        return 0.0
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    weeks = pd.date_range(START, periods=n_weeks, freq="7D")
    start = time.perf_counter()
    for k, first in enumerate(range(0, n_series, chunk)):
        table = _chunk(first, min(first + chunk, n_series), weeks, seed)
        pq.write_table(table, root / f"part.{k:05d}.parquet", row_group_size=len(table))
    stamp.write_text(shape)
    return time.perf_counter() - start


# ---------------------------------------------------------------------------------------- memory
class PeakRSS:
    """Largest RSS of every child process (the Dask workers of a LocalCluster), sampled in a thread."""

    def __init__(self, interval: float = 0.2) -> None:
        import psutil

        self._me = psutil.Process()
        self._interval = interval
        self.peak: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            for child in self._me.children(recursive=True):
                try:
                    rss = child.memory_info().rss
                except psutil.Error:
                    continue
                self.peak[child.pid] = max(self.peak.get(child.pid, 0), rss)
            self._stop.wait(self._interval)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# ---------------------------------------------------------------------------------------- runs
def _cpu_seconds() -> float:
    """User + system CPU seconds of this process (run on each worker)."""
    t = os.times()
    return t.user + t.system


def run_once(
    data: Path, out: Path, *, workers: int, memory_limit: str, n_series: int
) -> dict[str, Any]:
    import dask.dataframe as dd
    import distributed

    from excessmort._dask import fit_dask, warm_workers

    env = {**PINNED_ENV, "NUMBA_NUM_THREADS": "1"}
    cluster = distributed.LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        memory_limit=memory_limit,
        dashboard_address=None,
        env=env,
        silence_logs=logging.ERROR,
    )
    client = distributed.Client(cluster)
    try:
        worker_pids = set(client.run(os.getpid).values())
        t0 = time.perf_counter()
        warm_workers(client)
        warm_s = time.perf_counter() - t0
        cpu0 = client.run(_cpu_seconds)
        with PeakRSS() as rss:
            t0 = time.perf_counter()
            f = fit_dask(dd.read_parquet(data), client=client, reference=REFERENCE, warmup=False)
            plan_s = time.perf_counter() - t0
            written = f.to_parquet(out, by=[()])
            wall = time.perf_counter() - t0
        cpu = sum(c - cpu0[w] for w, c in client.run(_cpu_seconds).items())
        peaks = [rss.peak.get(pid, 0) for pid in sorted(worker_pids)]
        restarted = len(set(client.run(os.getpid).values()) - worker_pids)
    finally:
        client.close()
        cluster.close()
    return {
        "workers": workers,
        "memory_limit": memory_limit,
        "partitions": f.npartitions,
        "shuffled": f.shuffled,
        "warmup_s": round(warm_s, 2),
        "first_pass_s": round(plan_s, 2),
        "wall_s": round(wall, 2),
        "series_per_s": round(n_series / wall, 1),
        "worker_cpu_s": round(cpu, 2),
        "peak_rss_mb_max": round(max(peaks) / 2**20, 1),
        "peak_rss_mb_workers": " ".join(f"{p / 2**20:.0f}" for p in peaks),
        "workers_restarted": restarted,
        "written": written,
    }


def equal_work(data: Path, written: dict[str, Path]) -> dict[str, Any]:
    """The first two files fitted in memory vs the rows the cluster wrote; non-converged series."""
    import pyarrow.parquet as pq

    from excessmort._fit import fit

    files = sorted(data.glob("part.*.parquet"))[:2]
    raw = pd.concat([pq.read_table(p).to_pandas() for p in files], ignore_index=True)
    mem = fit(raw, reference=REFERENCE)
    want = mem.weekly
    areas = sorted(raw["area"].unique().tolist())
    got = pd.read_parquet(written["weekly"], filters=[("area", "in", areas)])
    keys = ["area", "sex", "age_group", "week_ending"]
    want = (
        want.assign(**{k: want[k].astype(str) for k in keys[:3]})
        .sort_values(keys)
        .reset_index(drop=True)
    )
    got = (
        got.assign(**{k: got[k].astype(str) for k in keys[:3]})
        .sort_values(keys)
        .reset_index(drop=True)
    )
    assert len(got) == len(want), (len(got), len(want))
    worst = 0.0
    for col in WEEKLY_COLUMNS:
        a, b = got[col].to_numpy(), want[col].to_numpy()
        assert np.array_equal(np.isnan(a), np.isnan(b)), col
        ok = ~np.isnan(b)
        scale = np.abs(b[ok]) + np.max(np.abs(b[ok]))
        worst = max(worst, float(np.max(np.abs(a[ok] - b[ok]) / scale)))
    converged = pd.read_parquet(written["coefficients"], columns=["converged"])["converged"]
    per_series = {
        name: frame.memory_usage(deep=True).sum() / mem.panel.n_series
        for name, frame in (("input", raw), ("weekly", want))
    }
    return {
        "subset_series": mem.panel.n_series,
        "subset_max_rel_diff": worst,
        "not_converged": int((~converged.astype(bool)).sum()),
        "input_pandas_bytes_per_series": int(per_series["input"]),
        "weekly_pandas_bytes_per_series": int(per_series["weekly"]),
    }


def _bytes(text: str) -> int:
    from dask.utils import parse_bytes

    return int(parse_bytes(text))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_dask", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--series", type=int, default=1_000_000)
    parser.add_argument("--weeks", type=int, default=470)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--memory-limit", default="2GB", help="per worker")
    parser.add_argument(
        "--chunk", type=int, default=2000, help="series per Parquet file (= per partition)"
    )
    parser.add_argument(
        "--data", type=Path, help="dataset folder (kept; reused when its shape matches)"
    )
    parser.add_argument(
        "--scratch", type=Path, default=None, help="folder for temporary data and output"
    )
    parser.add_argument("--keep-data", action="store_true")
    parser.add_argument("--keep-output", action="store_true")
    parser.add_argument("--no-check", action="store_true", help="skip the in-memory comparison")
    args = parser.parse_args(argv)
    for key, value in PINNED_ENV.items():
        os.environ.setdefault(key, value)

    scratch = Path(tempfile.mkdtemp(prefix="bench_dask_", dir=args.scratch))
    data = args.data or scratch / "panel"
    panel_gb = args.series * args.weeks * 8 / 1e9
    print(
        f"panel: {args.series:,} series x {args.weeks} weeks = {args.series * args.weeks:,} rows; "
        f"deaths alone as float64 [S, T]: {panel_gb:.2f} GB; memory per worker {args.memory_limit}"
    )
    gen_s = generate(data, args.series, args.weeks, args.chunk)
    size_gb = sum(p.stat().st_size for p in data.glob("*.parquet")) / 1e9
    print(f"dataset {data}: {size_gb:.2f} GB on disk, generated in {gen_s:.1f} s")

    rows = []
    meta = {"date": now(), **git_info(), **machine_info(), **versions()}
    import dask
    import distributed

    meta.update({"dask": dask.__version__, "distributed": distributed.__version__})
    try:
        for workers in args.workers:
            out = scratch / f"out_{workers}"
            res = run_once(
                data, out, workers=workers, memory_limit=args.memory_limit, n_series=args.series
            )
            written = res.pop("written")
            check = {} if args.no_check else equal_work(data, written)
            out_gb = sum(p.stat().st_size for p in out.rglob("*.parquet")) / 1e9
            if check:  # the panel as pandas frames, against the memory all workers were given
                check["input_pandas_gb"] = round(
                    check["input_pandas_bytes_per_series"] * args.series / 1e9, 2
                )
                check["weekly_pandas_gb"] = round(
                    check["weekly_pandas_bytes_per_series"] * args.series / 1e9, 2
                )
            row = {
                **meta,
                "series": args.series,
                "weeks": args.weeks,
                "rows": args.series * args.weeks,
                "series_per_partition": args.chunk,
                "input_gb": round(size_gb, 3),
                "deaths_array_gb": round(panel_gb, 3),
                "memory_limit_bytes": _bytes(args.memory_limit),
                "generate_s": round(gen_s, 1),
                **res,
                "output_gb": round(out_gb, 3),
                **check,
            }
            rows.append(row)
            print(
                f"{workers} worker(s): {res['wall_s']:.1f} s, {res['series_per_s']:,.0f} series/s, peak RSS "
                f"{res['peak_rss_mb_workers']} MB, restarted {res['workers_restarted']}, {check}"
            )
            if not args.keep_output:
                shutil.rmtree(out, ignore_errors=True)
    finally:
        if not args.keep_data and args.data is None:
            shutil.rmtree(scratch, ignore_errors=True)

    table = pd.DataFrame(rows)
    if len(table) > 1:
        base = table["series_per_s"].iloc[0]
        table["speedup_vs_first"] = (table["series_per_s"] / base).round(2)
    shown = [
        "workers",
        "series",
        "weeks",
        "partitions",
        "memory_limit",
        "wall_s",
        "series_per_s",
        "worker_cpu_s",
        "peak_rss_mb_max",
        "workers_restarted",
        *[c for c in ("speedup_vs_first", "subset_max_rel_diff", "not_converged") if c in table],
    ]
    print(table[shown].to_string(index=False))
    RESULTS.mkdir(parents=True, exist_ok=True)
    target = RESULTS / f"dask_{dt.date.today().isoformat()}.csv"
    if target.exists():
        table = pd.concat([pd.read_csv(target), table], ignore_index=True)
    from excessmort._atomic import atomic_write_text

    atomic_write_text(target, table.to_csv(index=False))
    print(f"wrote {target.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
