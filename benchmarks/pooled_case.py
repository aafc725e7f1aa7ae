"""The pooled baseline's benchmark (``benchmarks/bench_pooled.py``, by its own engineer) as optional
rows of a suite: run in a subprocess, its CSV mapped onto the suite's columns.

Its figures: ``first_s`` (first call in a fresh process with numba's default cache) is reported as
the cached figure, ``warm_s`` (median of 3 more) as warm; ``peak_mb`` as the peak RSS of the call.
The ratio is the case's time over the pooled excessmort fit's warm time at the same size.
"""

from __future__ import annotations

import csv
import math
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from .machine import REPO, child_env

__all__ = ["measure_pooled"]

SCRIPT = Path(__file__).with_name("bench_pooled.py")


def _int(x: Any) -> int:
    v = _float(x)
    return int(v) if math.isfinite(v) else 0


def _float(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def measure_pooled(mode: str = "quick", *, timeout: float = 1800.0) -> list[dict[str, Any]]:
    """Rows for the pooled cases (``mode``: "quick" = 15 local authorities, "full" = 150)."""
    base = {"workload": "W4 pooled (producer's model)", "n_weeks": 261, "n_ref": 261,
            "offset": True, "threads": 2, "repeats": 3}  # fmt: skip
    if not SCRIPT.exists():
        return [{**base, "case": "pooled", "n_series": 0,
                 "status": "not available: benchmarks/bench_pooled.py has not landed"}]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="em-bench-pooled-") as tmp:
        out = Path(tmp, "pooled.csv")
        cmd = [sys.executable, "-m", "benchmarks.bench_pooled", "--out", str(out)]
        if mode != "full":
            cmd.append("--quick")
        try:
            env = child_env(threads=2, cache_dir=None)
            proc = subprocess.run(
                cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            return [{**base, "case": "pooled", "n_series": 0,
                     "status": f"error: timed out after {timeout:.0f} s"}]  # fmt: skip
        if proc.returncode != 0 or not out.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            status = f"error: exit {proc.returncode}: {tail[0][:180]}"
            return [{**base, "case": "pooled", "n_series": 0, "status": status}]
        with out.open(newline="") as fh:
            src = list(csv.DictReader(fh))
    rows = []
    for r in src:
        n_la = _int(r.get("n_la"))
        row = {**base, "workload": f"W4 pooled ({n_la} LAs)", "case": f"pooled.{r['case']}",
               "n_series": _int(r.get("n_series"))}  # fmt: skip
        if r.get("error"):
            rows.append({**row, "status": f"error: {r['error'][:200]}"})
            continue
        sm = _float(r.get("max_rel_diff_vs_statsmodels"))
        em = _float(r.get("max_rel_diff_vs_excessmort"))
        row.update(
            status="ok",
            cold_s=math.nan,
            cached_s=_float(r.get("first_s")),
            warm_s=_float(r.get("warm_s")),
            n_timed=row["n_series"],
            peak_rss_mb=_float(r.get("peak_mb")),
            max_rel_diff_expected=sm if math.isfinite(sm) else em,
            mean_iter=_float(r.get("n_iter")),
            note=(f"bench_pooled.py: p={r.get('p')}, rank={r.get('rank')}, rows={r.get('n_rows')}; "
                  "cached = first call in a fresh process with the default numba cache; "
                  + ("max rel diff vs statsmodels" if math.isfinite(sm)
                     else "max rel diff vs pooled excessmort")),
        )  # fmt: skip
        speed = _float(r.get("excessmort_speedup_warm"))
        if r["case"] != "excessmort" and math.isfinite(speed):
            row["ratio"], row["ratio_base"] = speed, "pooled.excessmort"
        rows.append(row)
    return rows
