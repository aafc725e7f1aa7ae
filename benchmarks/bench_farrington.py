"""The ``farrington`` baseline against R surveillance's ``farringtonFlexible``, per series.

``python -m benchmarks.bench_farrington [--series N] [--r-series M] [--settings S ...] [--out FILE]``

Workload: N seeded series x 470 weeks (Fridays 2015-01-02 to 2023-12-29), negative-binomial
counts (variance 1.3 mu, levels 20 to 1,500 a week, a trend and a winter wave) with a population;
two settings: ``noufaily-delta`` (the settings of ../shared/references: b=5, w=3, noPeriods=10,
pastWeeksNotIncluded=26, reweighting at 2.58, trend, 2/3-power delta threshold, alpha 0.025,
population offset; 207 predicted weeks of 238 window weeks each) and ``farrington1996`` (b=5, w=3,
noPeriods=1, reweighting at 1, 2/3 power; 35 window weeks).

Cases, each in its own fresh process with pinned BLAS threads:

- ``excessmort`` at 1 and 2 numba threads: ``FarringtonFlexible(...).fit(panel)`` for all N series
  (every refit, thresholds, alarms); ``first_s`` the first call (kernels loaded from numba's cache,
  compiled when it is empty), ``warm_s`` the median of 3 more; per series = warm_s / N;
- ``R``: ``surveillance::farringtonFlexible`` (Rscript, one thread), one call per series on the
  first M series of the same panel, timed by ``system.time`` per call; per series = the median.

Both wall time and CPU time (``time.process_time``; R's user + system) are recorded: on a shared
machine the wall-clock ratio moves with the other load, the CPU-time ratio much less.

Equal work: the largest relative difference of expected and upper bound between excessmort and R
on the M series (and the count of alarm mismatches). Ratio = R per series / excessmort per series.
Writes ``benchmarks/results/farrington_<date>.csv`` and prints a table.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]

SETTINGS: dict[str, dict[str, Any]] = {
    "noufaily-delta": {
        "b": 5, "w": 3, "no_periods": 10, "past_weeks_not_included": 26, "reweight": True,
        "weights_threshold": 2.58, "trend": True, "p_threshold_trend": 0.05, "powertrans": "2/3",
        "threshold_method": "delta", "alpha": 0.025, "population_offset": True, "limit54": (5, 4),
    },
    "farrington1996": {
        "b": 5, "w": 3, "no_periods": 1, "past_weeks_not_included": 3, "reweight": True,
        "weights_threshold": 1.0, "trend": True, "p_threshold_trend": 0.05, "powertrans": "2/3",
        "threshold_method": "delta", "alpha": 0.025, "population_offset": False, "limit54": (5, 4),
    },
}  # fmt: skip

R_NAMES = {
    "weights_threshold": "weightsThreshold", "p_threshold_trend": "pThresholdTrend",
    "population_offset": "populationOffset", "no_periods": "noPeriods",
    "past_weeks_not_included": "pastWeeksNotIncluded", "threshold_method": "thresholdMethod",
}  # fmt: skip

R_SCRIPT = r"""
suppressMessages(library(surveillance))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1], stringsAsFactors = FALSE)
ctl <- eval(parse(text = args[3]))
names <- unique(d$series)
dates <- as.Date(unique(d$week_ending))
secs <- numeric(0); cpu <- numeric(0); out <- list()
for (s in names) {
  x <- sts(observed = matrix(d$deaths[d$series == s]), epoch = dates, frequency = 52,
           population = matrix(d$population[d$series == s]))
  tm <- system.time(r <- suppressWarnings(farringtonFlexible(x, control = ctl)))
  secs <- c(secs, tm[["elapsed"]])
  cpu <- c(cpu, tm[["user.self"]] + tm[["sys.self"]])
  out[[s]] <- data.frame(series = s, week_ending = format(as.Date(epoch(r))),
    expected = r@control$expected[, 1], upperbound = upperbound(r)[, 1],
    alarm = as.integer(alarms(r)[, 1]))
}
write.csv(do.call(rbind, out), args[2], row.names = FALSE)
cat(paste(secs, collapse = ","), "\n")
cat(paste(cpu, collapse = ","), "\n")
"""


def make_frame(n_series: int, seed: int = 19) -> Any:
    """Seeded long frame: series, week_ending, deaths, population (470 weeks)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    weeks = pd.date_range("2015-01-02", periods=470, freq="7D")
    t = np.arange(470.0)
    level = rng.uniform(20, 1500, n_series)[:, None]
    phase = rng.uniform(0, 52, n_series)[:, None]
    mean = level * np.exp(0.0004 * t + 0.15 * np.cos(2 * np.pi * (t - phase) / 52.18))
    lam = rng.gamma(mean / 0.3, 0.3)
    deaths = rng.poisson(lam).astype(float)
    pop = (level * 5000.0) * np.exp(0.0003 * t)
    return pd.DataFrame(
        {
            "series": np.repeat([f"S{i:05d}" for i in range(n_series)], 470),
            "week_ending": np.tile(weeks.to_numpy(), n_series),
            "deaths": deaths.reshape(-1),
            "population": pop.reshape(-1),
        }
    )


def worker(setting: str, n_series: int, result: Path) -> None:
    """One excessmort case in this (fresh, pinned) process."""
    sys.path.insert(0, str(REPO / "src"))
    import excessmort as em
    from excessmort.baselines.farrington import FarringtonFlexible
    from excessmort.panel import Panel

    panel = Panel.from_frame(em.read(make_frame(n_series)))
    model = FarringtonFlexible(**SETTINGS[setting])
    t = time.perf_counter()
    res = model.fit(panel, reference=None)
    first = time.perf_counter() - t
    warm = []
    cpu = []
    for _ in range(3):
        t = time.perf_counter()
        c = time.process_time()
        res = model.fit(panel, reference=None)
        warm.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    sf = res.surveillance_frame(panel)
    sf = sf[sf["status"] >= 0]
    sf.assign(week_ending=sf["week_ending"].dt.strftime("%Y-%m-%d")).to_csv(
        result.with_suffix(".csv"), index=False
    )
    result.write_text(
        json.dumps(
            {
                "first_s": first,
                "warm_s": statistics.median(warm),
                "warm_cpu_s": statistics.median(cpu),
                "n_predicted": int(len(sf) // n_series),
            }
        )
    )


def _r_control(opt: dict[str, Any]) -> str:
    def r(v: Any) -> str:
        if isinstance(v, bool):
            return "TRUE" if v else "FALSE"
        if isinstance(v, str):
            return f'"{v}"'
        if isinstance(v, tuple | list):
            return "c(" + ", ".join(r(x) for x in v) + ")"
        return repr(v)

    return "list(" + ", ".join(f"{R_NAMES.get(k, k)} = {r(v)}" for k, v in opt.items()) + ")"


def run_r(setting: str, n_series: int, n_r: int, tmp: Path) -> dict[str, Any]:
    frame = make_frame(n_series)
    frame = frame[frame["series"].isin(frame["series"].unique()[:n_r])]  # the first n_r series
    src, out, script = tmp / f"r_in_{setting}.csv", tmp / f"r_out_{setting}.csv", tmp / "f.R"
    script.write_text(R_SCRIPT)
    frame.assign(week_ending=frame["week_ending"].dt.strftime("%Y-%m-%d")).to_csv(src, index=False)
    t = time.perf_counter()
    proc = subprocess.run(
        ["Rscript", str(script), str(src), str(out), _r_control(SETTINGS[setting])],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    wall = time.perf_counter() - t
    lines = proc.stdout.strip().splitlines()
    secs = [float(x) for x in lines[0].split(",")]
    cpu = [float(x) for x in lines[1].split(",")]
    return {"per_series_s": statistics.median(secs), "cpu_per_series_s": statistics.median(cpu),
            "calls": secs, "process_wall_s": wall, "out": out}  # fmt: skip


def run_ours(setting: str, n_series: int, threads: int, tmp: Path) -> dict[str, Any]:
    sys.path.insert(0, str(REPO))
    from benchmarks.machine import child_env

    result = tmp / f"ours_{setting}_{threads}.json"
    env = child_env(threads=threads, cache_dir=os.environ.get("NUMBA_CACHE_DIR"))
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + str(REPO)
    cmd = [sys.executable, "-m", "benchmarks.bench_farrington", "--worker", setting,
           "--series", str(n_series), "--result", str(result)]  # fmt: skip
    subprocess.run(cmd, env=env, cwd=REPO, check=True)
    out = json.loads(result.read_text())
    out["out"] = result.with_suffix(".csv")
    return out


def equal_work(ours_csv: Path, r_csv: Path) -> dict[str, Any]:
    import pandas as pd

    o = pd.read_csv(ours_csv)
    r = pd.read_csv(r_csv)
    m = r.merge(o, on=["series", "week_ending"], suffixes=("_r", ""))
    ok = m["expected_r"].notna()

    def rel(a: str, b: str) -> float:
        return float(np.max(np.abs(m.loc[ok, a] - m.loc[ok, b]) / np.abs(m.loc[ok, b])))

    alarm_r = m["alarm_r"].fillna(0).astype(bool)
    return {
        "max_rel_expected": rel("expected", "expected_r"),
        "max_rel_upper": rel("upperbound", "upperbound_r"),
        "alarm_mismatches": int((alarm_r != m["alarm"].astype(bool)).sum()),
        "n_compared": int(ok.sum()),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (parent) or one excessmort case (``--worker``)."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--series", type=int, default=900, help="series for excessmort (default 900)")
    ap.add_argument("--r-series", type=int, default=3, help="series timed in R (default 3)")
    ap.add_argument("--out", type=Path, default=None, help="results CSV path")
    ap.add_argument(
        "--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS),
        help="settings to run (default: all)",
    )  # fmt: skip
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.worker, args.series, args.result)
        return 0

    sys.path.insert(0, str(REPO))
    from benchmarks.machine import git_info, machine_info, now, versions

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for setting in args.settings:
            print(f"R farringtonFlexible, {setting}, {args.r_series} series ...", flush=True)
            r = run_r(setting, args.series, args.r_series, tmp)
            rows.append({"setting": setting, "case": "R surveillance", "threads": 1,
                         "n_series": args.r_series, "per_series_ms": 1e3 * r["per_series_s"],
                         "cpu_per_series_ms": 1e3 * r["cpu_per_series_s"],
                         "process_wall_s": r["process_wall_s"]})  # fmt: skip
            for threads in (1, 2):
                print(
                    f"excessmort, {setting}, {args.series} series, {threads} thread(s) ...",
                    flush=True,
                )
                o = run_ours(setting, args.series, threads, tmp)
                row = {"setting": setting, "case": "excessmort", "threads": threads,
                       "n_series": args.series, "n_predicted": o["n_predicted"],
                       "first_s": o["first_s"], "warm_s": o["warm_s"],
                       "per_series_ms": 1e3 * o["warm_s"] / args.series,
                       "cpu_per_series_ms": 1e3 * o["warm_cpu_s"] / args.series}  # fmt: skip
                row["speedup_vs_r"] = 1e3 * r["per_series_s"] / row["per_series_ms"]
                row["cpu_speedup_vs_r"] = 1e3 * r["cpu_per_series_s"] / row["cpu_per_series_ms"]
                row.update(equal_work(o["out"], r["out"]))
                rows.append(row)

    meta = {"date": now(), **machine_info(), **versions(), **git_info()}
    fields = ["setting", "case", "threads", "n_series", "n_predicted", "first_s", "warm_s",
              "per_series_ms", "speedup_vs_r", "cpu_per_series_ms", "cpu_speedup_vs_r", "max_rel_expected", "max_rel_upper",
              "alarm_mismatches", "n_compared", "process_wall_s"]  # fmt: skip
    out = args.out or REPO / "benchmarks" / "results" / f"farrington_{meta['date'][:10]}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_suffix(".csv.tmp")
    with tmp_out.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields + list(meta), extrasaction="ignore")
        w.writeheader()
        for row in rows:
            w.writerow({**{k: row.get(k, "") for k in fields}, **meta})
    os.replace(tmp_out, out)

    def fmt(v: Any, spec: str) -> str:
        return format(v, spec) if isinstance(v, int | float) and v == v else "-"

    print(f"\n{meta['cpu']}, {meta['cores']} cores; git {meta['git_sha']}; {meta['date']}")
    head = (f"{'setting':<16}{'case':<16}{'thr':>4}{'series':>8}{'ms/series':>11}{'x R':>9}"
            f"{'cpu ms/s':>10}{'x R cpu':>9}"
            f"{'expected':>10}{'upper':>10}{'alarms':>7}")  # fmt: skip
    print(head)
    print("-" * len(head))
    for row in rows:
        print(f"{row['setting']:<16}{row['case']:<16}{row['threads']:>4}{row['n_series']:>8}"
              f"{fmt(row['per_series_ms'], '11.3f')}{fmt(row.get('speedup_vs_r'), '9.0f')}"
              f"{fmt(row.get('cpu_per_series_ms'), '10.3f')}{fmt(row.get('cpu_speedup_vs_r'), '9.0f')}"
              f"{fmt(row.get('max_rel_expected'), '10.1e')}{fmt(row.get('max_rel_upper'), '10.1e')}"
              f"{row.get('alarm_mismatches', '-'):>7}")  # fmt: skip
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
