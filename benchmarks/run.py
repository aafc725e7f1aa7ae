"""Run a benchmark suite: ``python -m benchmarks.run --suite quick|full [--out DIR]``.

For every case of the suite (``benchmarks/config.toml``) two fresh processes are started with the
pinned environment (:data:`benchmarks.machine.PINNED_ENV`, ``NUMBA_NUM_THREADS`` explicit):

- *cold*: an empty ``NUMBA_CACHE_DIR``; the first call's time (compilation included);
- *cached*: the same directory, now filled; the first call's time, the peak RSS of that call, then
  the *warm* figure: the median of ``repeats`` further calls in that process.

Competitors run the same way (their cold and cached figures differ only by the operating system's
file cache). The results table is printed and written to ``benchmarks/results/<run-id>/``:
``results.csv`` and ``results.json`` (one row per case, with the machine, versions, git SHA and date
in every row), ``config.toml`` (the suite used) and ``machine.json`` (with the dgemm rates).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .machine import (
    PINNED_ENV,
    REPO,
    child_env,
    dgemm_gflops,
    git_info,
    machine_info,
    now,
    versions,
    write_gbs,
)

__all__ = [
    "COLUMNS",
    "META_COLUMNS",
    "expand",
    "format_table",
    "load_config",
    "main",
    "run_suite",
    "write_results",
]

CONFIG = Path(__file__).with_name("config.toml")
RESULTS = Path(__file__).with_name("results")

META_COLUMNS = [
    "run_id",
    "suite",
    "date",
    "git_sha",
    "git_dirty",
    "cpu",
    "cores",
    "mem_gb",
    "python",
    "numpy",
    "numba",
    "pandas",
    "scipy",
    "statsmodels",
    "glum",
    "excessmort",
    "env",
]
COLUMNS = [
    *META_COLUMNS,
    "workload",
    "case",
    "n_series",
    "n_weeks",
    "n_ref",
    "p",
    "offset",
    "threads",
    "n_timed",
    "status",
    "cold_s",
    "cached_s",
    "warm_s",
    "warm_min_s",
    "repeats",
    "import_s",
    "warm_us_per_series",
    "extrapolated_s",
    "ratio_base",
    "ratio",
    "ratio_vs_fit",
    "ratio_vs_kernels",
    "gflops",
    "dgemm_gflops",
    "pct_dgemm",
    "deaths_mb",
    "peak_rss_mb",
    "mem_total_x",
    "mem_call_x",
    "output_mb",
    "mem_output_x",
    "mem_work_x",
    "max_rel_diff_expected",
    "n_equal_work",
    "nonconverged",
    "mean_iter",
    "stages",
    "note",
]

#: Predicted peak memory of a case, as a multiple of its deaths array (for the memory guard).
_MEM_FACTOR = {
    "excessmort.kernels": 4.5,
    "excessmort.fit": 16.0,
    "excessmort.fit_frame": 40.0,
    "excessmort.user_path": 40.0,
}
_NAN = float("nan")


def load_config(path: Path = CONFIG) -> dict[str, Any]:
    """The parsed config file."""
    with open(path, "rb") as fh:
        return tomllib.load(fh)


def expand(config: dict[str, Any], suite: str) -> list[dict[str, Any]]:
    """One spec per measured case (workload x size x case x threads), in run order."""
    if suite not in config.get("suite", {}):
        raise SystemExit(
            f"unknown suite {suite!r}; the suites are {sorted(config.get('suite', {}))}"
        )
    defaults = config.get("defaults", {})
    specs = []
    for wl in config["suite"][suite].get("workload", []):
        sizes_s = wl["n_series"] if isinstance(wl.get("n_series"), list) else [wl.get("n_series")]
        sizes_t = wl["n_weeks"] if isinstance(wl["n_weeks"], list) else [wl["n_weeks"]]
        for n_weeks in sizes_t:
            for n_series in sizes_s:
                for case in wl["cases"]:
                    for threads in wl.get("threads", {}).get(case, [1]):
                        specs.append(
                            {
                                "workload": wl["name"],
                                "scaling": bool(wl.get("scaling", False)),
                                "case": case,
                                "threads": int(threads),
                                "keys": wl.get("keys"),
                                "n_series": 297 if wl.get("keys") == "monthly" else int(n_series),
                                "n_weeks": int(n_weeks),
                                "n_ref": int(wl.get("n_ref", 261)),
                                "offset": bool(wl.get("offset", False)),
                                "sample": int(wl.get("sample", {}).get(case, 100)),
                                "seed": int(defaults.get("seed", 20240501)),
                                "repeats": int(max(5, defaults.get("repeats", 5))),
                                "equal_k": int(defaults.get("equal_k", 20)),
                            }
                        )
    return specs


def _child(
    spec: dict[str, Any], *, cache_dir: str, src: Path | None, timeout: float
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="em-bench-") as tmp:
        spec_path, out_path = Path(tmp, "spec.json"), Path(tmp, "out.json")
        spec_path.write_text(json.dumps(spec))
        env = child_env(threads=spec["threads"], cache_dir=cache_dir, src=src)
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "benchmarks._worker", str(spec_path), str(out_path)],
                env=env,
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return {"status": f"error: timed out after {timeout:.0f} s"}
        if out_path.exists():
            return dict(json.loads(out_path.read_text()))
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"status": f"error: exit {proc.returncode}: {tail[0][:200]}"}


def measure_isolated(
    spec: dict[str, Any],
    *,
    src: Path | None = None,
    phases: Iterable[str] = ("cold", "cached"),
    timeout: float = 1800.0,
) -> dict[str, Any]:
    """Cold and cached (+ warm) figures of one case, each in a fresh process."""
    phases = tuple(phases)
    cache_dir = tempfile.mkdtemp(prefix="em-numba-cache-")
    try:
        if not spec["case"].startswith("excessmort"):
            # No JIT in a competitor: its first call in a fresh process is both its cold and its
            # cached figure (one process, not two that would differ only by the file cache).
            res = _child(spec, cache_dir=cache_dir, src=src, timeout=timeout)
            if res.get("status") == "ok":
                res["cold_s"] = res["cached_s"] = res.pop("first_s")
                res["note"] = (
                    (res.get("note") or "") + " no JIT: cold = cached (first call, fresh process)"
                ).strip()
            return res
        cold: dict[str, Any] = {}
        if "cold" in phases:
            cold = _child(
                {**spec, "repeats": 0, "equal_work": False},
                cache_dir=cache_dir,
                src=src,
                timeout=timeout,
            )
            if cold.get("status") != "ok":
                return cold
        else:  # fill the cache without recording a figure
            _child(
                {
                    **spec,
                    "n_series": min(spec["n_series"], 50),
                    "keys": spec.get("keys"),
                    "repeats": 0,
                    "equal_work": False,
                },
                cache_dir=cache_dir,
                src=src,
                timeout=timeout,
            )
        cached = _child(spec, cache_dir=cache_dir, src=src, timeout=timeout)
        if cached.get("status") != "ok":
            return cached
        cached["cold_s"] = cold.get("first_s", _NAN)
        cached["cached_s"] = cached.pop("first_s")
        return cached
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)


def measure_in_process(spec: dict[str, Any]) -> dict[str, Any]:
    """Warm figure only, in this process (cold and cached are not defined here)."""
    from contextlib import nullcontext, suppress

    from ._worker import measure

    if spec["case"] == "glum.loop":  # load its OpenMP runtime first, so that the limit applies
        with suppress(ImportError):
            import glum  # noqa: F401
    try:
        from threadpoolctl import threadpool_limits

        limits: Any = threadpool_limits(limits=1)  # BLAS/OpenMP pools as in the pinned children
    except ImportError:  # pragma: no cover - threadpoolctl comes with glum (bench extra)
        limits = nullcontext()
    try:
        with limits:
            res = measure(spec, fresh_process=False)
    except Exception as exc:
        return {"status": f"error: {type(exc).__name__}: {exc}"[:300]}
    res["cold_s"] = _NAN
    res["cached_s"] = _NAN
    res.pop("first_s", None)
    return res


def _available_memory() -> float:
    try:
        import psutil

        return float(psutil.virtual_memory().available)
    except ImportError:  # pragma: no cover
        return math.inf


def _guard(
    spec: dict[str, Any], done: list[dict[str, Any]], defaults: dict[str, Any]
) -> str | None:
    """Why a (scaling) case is skipped: predicted memory or time over the limits; None to run it."""
    deaths = spec["n_series"] * spec["n_weeks"] * 8.0
    need = _MEM_FACTOR.get(spec["case"], 4.0) * deaths
    avail = _available_memory() * float(defaults.get("mem_fraction", 0.6))
    if need > avail:
        return f"skipped: memory (needs ~{need / 2**30:.1f} GiB, {avail / 2**30:.1f} GiB allowed)"
    if not spec.get("scaling"):
        return None
    prior = [
        r
        for r in done
        if r.get("case") == spec["case"]
        and r.get("threads") == spec["threads"]
        and r.get("n_weeks") == spec["n_weeks"]
        and r.get("status") == "ok"
        and isinstance(r.get("warm_s"), float)
        and math.isfinite(r["warm_s"])
    ]
    if not prior:
        return None
    last = max(prior, key=lambda r: r["n_series"])
    per_series = last["warm_s"] / last["n_series"]
    compile_s = max(0.0, (last.get("cold_s") or 0.0) - (last.get("cached_s") or 0.0))
    predicted = compile_s + per_series * spec["n_series"] * (spec["repeats"] + 2) + 10.0
    budget = float(defaults.get("case_budget_s", 150))
    if predicted > budget:
        return f"skipped: time (predicted {predicted:.0f} s for all runs > budget {budget:.0f} s)"
    return None


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def derive(rows: list[dict[str, Any]], dgemm: dict[int, float]) -> None:
    """Per-series times, ratios to excessmort, GFLOP/s vs dgemm, memory multiples (in place)."""
    for r in rows:
        if r.get("status") != "ok":
            continue
        n_timed = r.get("n_timed") or 0
        if _finite(r.get("warm_s")) and n_timed:
            r["warm_us_per_series"] = r["warm_s"] / n_timed * 1e6
            r["extrapolated_s"] = r["warm_us_per_series"] * r["n_series"] / 1e6
        if _finite(r.get("flops")) and _finite(r.get("warm_s")) and r["warm_s"] > 0:
            r["gflops"] = r["flops"] / r["warm_s"] / 1e9
            rate = dgemm.get(int(r["threads"]), _NAN)
            r["dgemm_gflops"] = rate
            r["pct_dgemm"] = 100.0 * r["gflops"] / rate if _finite(rate) and rate > 0 else _NAN
        deaths = r.get("deaths_bytes") or 0
        r["deaths_mb"] = deaths / 2**20 if deaths else _NAN
        if _finite(r.get("peak_rss_bytes")):
            r["peak_rss_mb"] = r["peak_rss_bytes"] / 2**20
            # multiples only where the whole panel is the work (competitors time a sample)
            if deaths and r.get("n_timed") == r.get("n_series"):
                timed = deaths
                r["mem_total_x"] = (r["peak_rss_bytes"] - r["rss_start_bytes"]) / timed
                r["mem_call_x"] = (r["peak_rss_bytes"] - r["rss_call_bytes"]) / timed
                if _finite(r.get("output_bytes")):
                    # the result frame's own size, and the peak above it in a warm call (the
                    # first call also loads the kernels): the working memory
                    r["mem_output_x"] = r["output_bytes"] / timed
                    peak, before = r.get("warm_peak_rss_bytes"), r.get("warm_rss_call_bytes")
                    if not (_finite(peak) and _finite(before)):
                        peak, before = r["peak_rss_bytes"], r["rss_call_bytes"]
                    r["mem_work_x"] = (peak - before - r["output_bytes"]) / timed
        if _finite(r.get("output_bytes")):
            r["output_mb"] = r["output_bytes"] / 2**20
    # ratios: competitor time per series / excessmort's, same workload and panel size, most threads
    for r in rows:
        if r.get("status") != "ok" or not _finite(r.get("warm_us_per_series")):
            continue
        same = [
            o
            for o in rows
            if o.get("status") == "ok"
            and o["workload"] == r["workload"]
            and o["n_series"] == r["n_series"]
            and o["n_weeks"] == r["n_weeks"]
            and _finite(o.get("warm_us_per_series"))
        ]
        for base, col in (
            ("excessmort.fit", "ratio_vs_fit"),
            ("excessmort.kernels", "ratio_vs_kernels"),
            ("excessmort.user_path", "ratio_vs_user_path"),
        ):
            cands = [o for o in same if o["case"] == base]
            if cands and not r["case"].startswith("excessmort"):
                best = max(cands, key=lambda o: o["threads"])
                r[col] = r["warm_us_per_series"] / best["warm_us_per_series"]
        if r["case"] == "excessmort.sums_dependence":
            # the cost of the dependence model: its sums' time over the independence sums'
            base = [o for o in same if o["case"] == "excessmort.sums"]
            if base:
                best = max(base, key=lambda o: o["threads"])
                r["ratio_base"] = "excessmort.sums"
                r["ratio"] = r["warm_us_per_series"] / best["warm_us_per_series"]
        if not r["case"].startswith(("excessmort", "pooled.")):
            if r["case"] == "statsmodels.user_loop" and _finite(r.get("ratio_vs_user_path")):
                # frames on both sides: against the end-to-end user path, not the array path
                r["ratio_base"], r["ratio"] = "excessmort.user_path", r["ratio_vs_user_path"]
            elif _finite(r.get("ratio_vs_fit")):
                r["ratio_base"], r["ratio"] = "excessmort.fit", r["ratio_vs_fit"]
            elif _finite(r.get("ratio_vs_kernels")):
                r["ratio_base"], r["ratio"] = "excessmort.kernels", r["ratio_vs_kernels"]


def run_suite(
    config: dict[str, Any],
    suite: str,
    *,
    isolate: bool = True,
    src: Path | None = None,
    cli: bool | None = None,
    pooled: bool | str | None = None,
    log: Callable[[str], None] = print,
    specs: list[dict[str, Any]] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Measure every case of ``suite``; returns (rows, metadata)."""
    defaults = config.get("defaults", {})
    specs = expand(config, suite) if specs is None else specs
    started = time.perf_counter()
    meta: dict[str, Any] = {
        "suite": suite,
        "date": now(),
        **git_info(),
        **{k: v for k, v in machine_info().items() if k in ("cpu", "cores", "mem_gb")},
        **versions(),
        "env": " ".join(f"{k}={v}" for k, v in PINNED_ENV.items()) + " NUMBA_NUM_THREADS=<threads>",
        "isolated": isolate,
    }
    dgemm: dict[int, float] = {}
    if isolate:
        dgemm = dgemm_gflops(sorted({s["threads"] for s in specs} | {1, 2}))
        for t, rate in dgemm.items():
            log(f"dgemm 2000x2000 float64, {t} thread(s): {rate:.1f} GFLOP/s")
    meta["dgemm_gflops"] = {str(k): v for k, v in dgemm.items()}
    if isolate:
        meta["write_gbs"] = write_gbs(2)
        meta["write_gbs_fresh"] = round(meta["write_gbs"]["fresh"], 3)
        log(
            "float64 fill on 2 threads: {fresh:.2f} GB/s into fresh memory, {warm:.2f} GB/s "
            "rewriting it, {fresh_after_idle:.2f} GB/s into memory freed 5 s before".format(
                **meta["write_gbs"]
            )
        )
    rows: list[dict[str, Any]] = []
    for i, spec in enumerate(specs, 1):
        label = (
            f"[{i}/{len(specs)}] {spec['workload']} {spec['case']} S={spec['n_series']} "
            f"T={spec['n_weeks']} threads={spec['threads']}"
        )
        skip = _guard(spec, rows, defaults) if isolate else None
        t0 = time.perf_counter()
        if skip is not None:
            res: dict[str, Any] = {"status": skip}
        elif isolate:
            res = measure_isolated(spec, src=src)
        else:
            res = measure_in_process(spec)
        row = {
            k: spec[k]
            for k in ("workload", "case", "n_series", "n_weeks", "n_ref", "offset", "threads")
        }
        row["repeats"] = spec["repeats"]
        row.update(res)
        row["n_series"] = spec["n_series"] if "n_series" not in res else res["n_series"]
        rows.append(row)
        log(f"{label}: {row['status']} ({time.perf_counter() - t0:.1f} s)")
    run_cli = config["suite"][suite].get("cli", False) if cli is None else cli
    if run_cli:
        from .cli_e2e import measure_cli

        t0 = time.perf_counter()
        row = measure_cli(src=src)
        rows.append(row)
        log(f"[cli] excessmort run: {row['status']} ({time.perf_counter() - t0:.1f} s)")
    run_pooled = config["suite"][suite].get("pooled", False) if pooled is None else pooled
    if run_pooled:
        from .pooled_case import measure_pooled

        t0 = time.perf_counter()
        mode = run_pooled if isinstance(run_pooled, str) else "quick"
        pooled_rows = measure_pooled(mode)
        rows += pooled_rows
        log(
            f"[pooled] bench_pooled.py ({mode}): {len(pooled_rows)} rows "
            f"({time.perf_counter() - t0:.1f} s)"
        )
    derive(rows, dgemm)
    meta["elapsed_s"] = round(time.perf_counter() - started, 1)
    return rows, meta


def complete_rows(
    rows: list[dict[str, Any]], meta: dict[str, Any], run_id: str
) -> list[dict[str, Any]]:
    """Every row with every column, metadata included."""
    out = []
    for r in rows:
        full = {c: _NAN for c in COLUMNS}
        full.update({k: meta.get(k, "") for k in META_COLUMNS})
        full["run_id"] = run_id
        full.update({k: v for k, v in r.items() if k in COLUMNS})
        for k in ("stages", "note", "ratio_base"):
            if not isinstance(full[k], str):
                full[k] = ""
        out.append(full)
    return out


def write_results(
    rows: list[dict[str, Any]],
    meta: dict[str, Any],
    out_dir: Path,
    config: dict[str, Any],
    suite: str,
) -> Path:
    """results.csv, results.json, config.toml (the suite's snapshot), machine.json; atomic."""
    import pandas as pd

    from excessmort._atomic import atomic_write_text

    out_dir.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(rows, columns=COLUMNS)
    atomic_write_text(out_dir / "results.csv", frame.to_csv(index=False, float_format="%.6g"))
    atomic_write_text(
        out_dir / "results.json", json.dumps({"meta": meta, "rows": rows}, indent=1, default=str)
    )
    import tomli_w

    snapshot = {"defaults": config.get("defaults", {}), "suite": {suite: config["suite"][suite]}}
    atomic_write_text(out_dir / "config.toml", tomli_w.dumps(snapshot))
    atomic_write_text(
        out_dir / "machine.json",
        json.dumps(
            {
                **machine_info(),
                **versions(),
                **git_info(),
                "dgemm_gflops": meta.get("dgemm_gflops", {}),
                "write_gbs": meta.get("write_gbs", {}),
                "env": meta.get("env"),
                "date": meta.get("date"),
            },
            indent=1,
        ),
    )
    return out_dir / "results.csv"


def _fmt(x: Any, spec: str = ".3g") -> str:
    if isinstance(x, float):
        return "-" if not math.isfinite(x) else format(x, spec)
    return "-" if x is None or x == "" else str(x)


def format_table(rows: list[dict[str, Any]], write_gbs: float | None = None) -> str:
    """The results as a fixed-width text table, then the ratios and the issue-3 and issue-18
    targets; ``write_gbs``: the machine's first-touch fill rate (:func:`machine.write_gbs`), for the
    floor it sets under W2's interval columns."""
    head = [
        "workload",
        "case",
        "S x T",
        "thr",
        "cold s",
        "cached s",
        "warm s",
        "us/series",
        "ratio",
        "GFLOP/s",
        "%dgemm",
        "peak MB",
        "mem x",
        "max rel diff",
        "nonconv",
    ]
    lines = []
    for r in rows:
        ok = r.get("status") == "ok"
        lines.append(
            [
                str(r.get("workload", "")),
                str(r.get("case", "")),
                f"{r.get('n_series', '')} x {r.get('n_weeks', '')}",
                str(r.get("threads", "")),
                _fmt(r.get("cold_s")),
                _fmt(r.get("cached_s")),
                _fmt(r.get("warm_s")),
                _fmt(r.get("warm_us_per_series"), ".4g"),
                (_fmt(r.get("ratio"), ".1f") + "x") if _finite(r.get("ratio")) else "-",
                _fmt(r.get("gflops")),
                _fmt(r.get("pct_dgemm"), ".1f"),
                _fmt(r.get("peak_rss_mb"), ".0f"),
                _fmt(r.get("mem_total_x"), ".2f"),
                _fmt(r.get("max_rel_diff_expected"), ".1e"),
                _fmt(r.get("nonconverged"), "d") if isinstance(r.get("nonconverged"), int) else "-",
            ]
            if ok
            else [
                str(r.get("workload", "")),
                str(r.get("case", "")),
                f"{r.get('n_series', '')} x {r.get('n_weeks', '')}",
                str(r.get("threads", "")),
                str(r.get("status")),
            ]
        )
    full_rows = [row for row in lines if len(row) == len(head)]  # status-only rows do not size
    widths = [max([len(h)] + [len(row[i]) for row in full_rows]) for i, h in enumerate(head)]
    sep = "  "
    out = [sep.join(h.ljust(w) for h, w in zip(head, widths, strict=True))]
    out.append(sep.join("-" * w for w in widths))
    for row in lines:
        if len(row) == len(head):
            out.append(sep.join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
        else:
            out.append(
                sep.join(c.ljust(w) for c, w in zip(row[:4], widths[:4], strict=True))
                + sep
                + row[4]
            )
    out.append("")
    out.append(
        "ratios (competitor time per series / excessmort's, warm, same panel; "
        ">1: excessmort is faster):"
    )
    for r in rows:
        if r.get("case") == "pooled.excessmort":
            continue
        if str(r.get("case", "")).startswith("pooled.") and r.get("status") == "ok":
            out.append(
                f"  {r['workload']:<24} {r['case']:<18} vs pooled.excessmort "
                f"{_fmt(r.get('ratio'), '.1f'):>8}x   (warm {_fmt(r.get('warm_s'))} s)"
            )
            continue
        if r.get("status") == "ok" and r.get("case") == "excessmort.sums_dependence":
            out.append(
                f"  {r['workload']:<24} {r['case']:<18} vs excessmort.sums "
                f"{_fmt(r.get('ratio'), '.1f'):>8}x   (cost of the dependence model; >1: slower "
                f"than independence sums; warm {_fmt(r.get('warm_s'))} s)"
            )
            continue
        if r.get("status") == "ok" and r.get("case") == "statsmodels.user_loop":
            out.append(
                f"  {r['workload']:<24} {r['case']:<18} vs excessmort.user_path "
                f"{_fmt(r.get('ratio'), '.1f'):>8}x   ({r['n_timed']} series timed, "
                f"{_fmt(r.get('warm_us_per_series'), '.4g')} us/series; frames on both sides)"
            )
            continue
        if (
            r.get("status") == "ok"
            and not str(r.get("case", "")).startswith("excessmort")
            and r.get("case") != "cli.run"
        ):
            vs_fit = _fmt(r.get("ratio_vs_fit"), ".1f")
            vs_k = _fmt(r.get("ratio_vs_kernels"), ".1f")
            out.append(
                f"  {r['workload']:<24} {r['case']:<18} vs excessmort.fit {vs_fit:>8}x   "
                f"vs excessmort.kernels {vs_k:>8}x   ({r['n_timed']} series timed, "
                f"{_fmt(r.get('warm_us_per_series'), '.4g')} us/series)"
            )
        elif r.get("status") != "ok" and not str(r.get("case", "")).startswith("excessmort"):
            out.append(
                f"  {r.get('workload', '')!s:<24} {r.get('case', '')!s:<18} {r.get('status')}"
            )
    out += _targets(rows, write_gbs)
    for r in rows:
        if r.get("case") == "cli.run":
            out.append("")
            out.append(
                f"excessmort run (monthly batch on the demo data, subprocess): {r.get('status')}"
            )
            if r.get("stages"):
                out.append(f"  stages (cached run, from the CLI's own log): {r['stages']}")
    return "\n".join(out)


def _targets(rows: list[dict[str, Any]], write_gbs: float | None = None) -> list[str]:
    """Issue 3's and issue 18's performance figures, where the suite has those panels."""
    return _targets_w2(rows, write_gbs) + _targets_user(rows)


def _targets_user(rows: list[dict[str, Any]]) -> list[str]:
    """Issue 18: the end-to-end user path at 20,000 x 470 (2 threads, warm)."""
    w4 = [
        r for r in rows if r.get("status") == "ok" and str(r.get("workload", "")).startswith("W4")
    ]
    user = [r for r in w4 if r["case"] == "excessmort.user_path"]
    if not user:
        return []
    best = max(user, key=lambda r: r["threads"])
    us = best.get("warm_us_per_series", _NAN)
    size = f"{best['n_series']:,} x {best['n_weeks']}"
    out = ["", f"issue 18 targets (W4 user path, {size}, {best['threads']} threads, warm):"]
    out.append(
        f"  excessmort.user_path: {_fmt(us, '.3g')} us/series (target <= 25 at 20,000 x 470): "
        f"{'met' if _finite(us) and us <= 25 else 'NOT met'}"
    )
    out.append(
        f"  peak memory {_fmt(best.get('mem_total_x', _NAN), '.2f')} x the deaths array "
        "(input frame, fit, weekly frame)"
    )
    work = best.get("mem_work_x", _NAN)
    out.append(
        f"  above the input: weekly frame {_fmt(best.get('mem_output_x', _NAN), '.2f')} x (its "
        f"own size) + working memory {_fmt(work, '.2f')} x (read, fit, every interval; target "
        f"<= 4): {'met' if _finite(work) and work <= 4 else 'NOT met'}"
    )
    loop = [r for r in w4 if r["case"] == "statsmodels.user_loop"]
    if loop:
        ratio = loop[0].get("ratio", _NAN)
        out.append(
            f"  statsmodels.user_loop: {_fmt(ratio, '.1f')}x (target >= 100x): "
            f"{'met' if _finite(ratio) and ratio >= 100 else 'NOT met'}"
        )
    return out


def _targets_w2(rows: list[dict[str, Any]], write_gbs: float | None = None) -> list[str]:
    """Issue 3's performance figures on W2 (100,000 x 470), where the suite has that panel."""
    w2 = [
        r
        for r in rows
        if r.get("status") == "ok"
        and r.get("n_series") == 100_000
        and r.get("n_weeks") == 470
        and str(r.get("workload", "")).startswith("W2")
    ]
    if not w2:
        return []
    out = ["", "issue 3 targets (W2, 100,000 series x 470 weeks, 261 reference weeks, p = 6):"]

    def pick(case: str) -> dict[str, Any] | None:
        c = [r for r in w2 if r["case"] == case]
        return max(c, key=lambda r: r["threads"]) if c else None

    fit = pick("excessmort.fit") or pick("excessmort.kernels")
    if fit is not None:
        us = fit.get("warm_us_per_series", _NAN)
        out.append(
            f"  {fit['case']} ({fit['threads']} threads): {_fmt(us, '.3g')} us/series "
            "(target <= 5): "
            f"{'met' if _finite(us) and us <= 5 else 'NOT met'}"
        )
        mem = fit.get("mem_total_x", _NAN)
        out.append(
            f"  peak memory {_fmt(mem, '.2f')} x the deaths array (target <= 3): "
            f"{'met' if _finite(mem) and mem <= 3 else 'NOT met'}"
        )
    fit = pick("excessmort.fit")
    if fit is not None:
        us = fit.get("warm_us_per_series", _NAN)
        rate = float(write_gbs) if write_gbs is not None else _NAN
        # the twelve weekly interval columns alone: 12 float64 per series and week, all new arrays
        floor = 96.0 * fit["n_weeks"] / (rate * 1e3) if _finite(rate) and rate > 0 else _NAN
        out.append(
            f"  issue 18: excessmort.fit with every interval: {_fmt(us, '.3g')} us/series "
            f"(target <= 8): {'met' if _finite(us) and us <= 8 else 'NOT met'}; writing its "
            f"twelve interval columns into fresh memory alone takes {_fmt(floor, '.3g')} us/series "
            f"here ({_fmt(rate, '.3g')} GB/s first-touch fill on 2 threads)"
        )
    for case, target in (("statsmodels.loop", 200), ("numpy.batched", 20)):
        r = pick(case)
        if r is not None:
            ratio = r.get("ratio", _NAN)
            out.append(
                f"  {case}: {_fmt(ratio, '.1f')}x (target >= {target}x): "
                f"{'met' if _finite(ratio) and ratio >= target else 'NOT met'}"
            )
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__.splitlines()[0]
    )
    ap.add_argument("--suite", default="quick", help="quick | full (see benchmarks/config.toml)")
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help="results folder (default benchmarks/results/<run-id>)",
    )
    ap.add_argument("--config", type=Path, default=CONFIG)
    ap.add_argument(
        "--in-process", action="store_true", help="warm figures only, no fresh processes"
    )
    ap.add_argument(
        "--no-cli", action="store_true", help="leave out the end-to-end `excessmort run` case"
    )
    ap.add_argument(
        "--cli", action="store_true", help="include the end-to-end `excessmort run` case"
    )
    ap.add_argument(
        "--pooled",
        choices=["quick", "full", "no"],
        default=None,
        help="the pooled baseline's benchmark (bench_pooled.py): 15 or 150 local authorities",
    )
    ap.add_argument("--case", action="append", default=None, help="only these cases (repeatable)")
    args = ap.parse_args(argv)
    config = load_config(args.config)
    specs = expand(config, args.suite)
    if args.case:
        specs = [s for s in specs if s["case"] in args.case]
    cli = False if args.no_cli else (True if args.cli else None)
    t0 = time.perf_counter()
    pooled = None if args.pooled is None else (False if args.pooled == "no" else args.pooled)
    rows, meta = run_suite(
        config, args.suite, isolate=not args.in_process, cli=cli, pooled=pooled, specs=specs
    )
    sha = meta.get("git_sha") or "nogit"
    run_id = args.out.name if args.out else f"{meta['date'][:10]}-{args.suite}-{sha[:8]}"
    out_dir = args.out if args.out else RESULTS / run_id
    meta["command"] = "python -m benchmarks.run " + " ".join(sys.argv[1:] if argv is None else argv)
    full = complete_rows(rows, meta, run_id)
    path = write_results(full, meta, out_dir, config, args.suite)
    print()
    print(format_table(full, meta.get("write_gbs_fresh")))
    print()
    print(
        f"{meta['cpu']}, {meta['cores']} cores; python {meta['python']}, numpy {meta['numpy']}, "
        f"numba {meta['numba']}; git {sha}{' (dirty)' if meta.get('git_dirty') else ''}; "
        f"{meta['date']}"
    )
    print(f"wrote {path} ({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
