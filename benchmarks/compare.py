"""Regression gate: ``python -m benchmarks.compare --base REV``.

Checks ``REV`` out into a temporary git worktree and runs the engine's cases of the quick grid there
(base) and on the working tree (head), on this machine with the same pinned process settings,
alternating base and head for ``rounds`` rounds (each side keeps its own numba cache, filled once
first). For every case the best (lowest) cached and warm figures of each side are compared; the gate
fails (exit 1) when a figure is more than 15 % **and** more than 50 ms slower at head (thresholds in
``benchmarks/config.toml`` ``[gate]``). Peers (statsmodels, glum) do not depend on this code and are
left out; cold figures (compilation) are too noisy for a gate and are left out too.
"""

from __future__ import annotations

import argparse
import math
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from .machine import REPO
from .run import CONFIG, _child, expand, load_config

__all__ = ["compare", "main", "verdicts"]

GATED_CASES = (
    "excessmort.kernels",
    "excessmort.fit",
    "excessmort.fit_frame",
    "excessmort.user_path",
    "numpy.batched",
)


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)


def verdicts(
    base: dict[str, float], head: dict[str, float], *, rel: float, abs_s: float
) -> list[dict[str, Any]]:
    """Per figure: base, head, change, and whether head regressed (> rel AND > abs_s slower)."""
    out = []
    for key in head:
        b, h = base.get(key, math.nan), head[key]
        if not (math.isfinite(b) and math.isfinite(h)):
            out.append({"key": key, "base": b, "head": h, "change": math.nan, "regression": False})
            continue
        change = (h - b) / b if b > 0 else math.inf
        out.append(
            {
                "key": key,
                "base": b,
                "head": h,
                "change": change,
                "regression": bool(h > b * (1.0 + rel) and h - b > abs_s),
            }
        )
    return out


def _best(results: list[dict[str, Any]], field: str) -> float:
    vals = [
        r[field]
        for r in results
        if r.get("status") == "ok" and math.isfinite(r.get(field, math.nan))
    ]
    return min(vals) if vals else math.nan


def compare(
    base_rev: str, *, suite: str = "quick", rounds: int | None = None, log: Any = print
) -> tuple[int, str]:
    """Run the gate; returns (exit status, table)."""
    config = load_config(CONFIG)
    gate = config.get("gate", {})
    rel, abs_s = float(gate.get("rel", 0.15)), float(gate.get("abs_s", 0.050))
    rounds = int(rounds or gate.get("rounds", 2))
    sha = _git("rev-parse", "--verify", f"{base_rev}^{{commit}}")
    if sha.returncode != 0:
        return 2, f"unknown revision {base_rev!r}: {sha.stderr.strip()}"
    specs = [s for s in expand(config, suite) if s["case"] in GATED_CASES]
    tmp = Path(tempfile.mkdtemp(prefix="em-gate-"))
    worktree = tmp / "base"
    added = _git("worktree", "add", "--detach", str(worktree), sha.stdout.strip())
    if added.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        return 2, f"git worktree add failed: {added.stderr.strip()}"
    caches = {
        side: tempfile.mkdtemp(prefix=f"em-gate-cache-{side}-", dir=tmp)
        for side in ("base", "head")
    }
    srcs = {"base": worktree / "src", "head": REPO / "src"}
    lines = []
    failed = False
    try:
        # Fill each side's numba cache once (every engine case shares the kernels; a case that
        # compiles more pays it in its first round only, and the best of the rounds is compared).
        fill = next((s for s in specs if s["case"].startswith("excessmort")), None)
        if fill is not None:
            for side in ("base", "head"):
                _child(
                    {**fill, "repeats": 0, "equal_work": False},
                    cache_dir=caches[side],
                    src=srcs[side],
                    timeout=1800,
                )
        for spec in specs:
            label = (
                f"{spec['workload']} {spec['case']} S={spec['n_series']} T={spec['n_weeks']} "
                f"threads={spec['threads']}"
            )
            got: dict[str, list[dict[str, Any]]] = {"base": [], "head": []}
            for _ in range(rounds):
                for side in ("base", "head"):
                    res = _child(
                        {**spec, "equal_work": False},
                        cache_dir=caches[side],
                        src=srcs[side],
                        timeout=1800,
                    )
                    if res.get("status") == "ok" and not str(
                        res.get("excessmort_file", "")
                    ).startswith(str(srcs[side])):
                        raise RuntimeError(
                            f"{side} imported excessmort from {res.get('excessmort_file')}, "
                            f"not {srcs[side]}"
                        )
                    if res.get("status") == "ok":
                        res["cached_s"] = res.pop("first_s")
                    got[side].append(res)
            status = {
                side: next((r["status"] for r in got[side] if r.get("status") != "ok"), "ok")
                for side in got
            }
            if status["head"] != "ok" or status["base"] != "ok":
                lines.append(f"{label}: base {status['base']}; head {status['head']}")
                log(lines[-1])
                if (
                    status["base"] == "ok"
                    and status["head"] != "ok"
                    and not status["head"].startswith("not available")
                ):
                    failed = True
                continue
            figures = {
                side: {f: _best(got[side], f) for f in ("cached_s", "warm_s")} for side in got
            }
            for v in verdicts(figures["base"], figures["head"], rel=rel, abs_s=abs_s):
                mark = "REGRESSION" if v["regression"] else "ok"
                failed |= v["regression"]
                lines.append(
                    f"{label:<70} {v['key']:<9} base {v['base']:9.4f} s  head {v['head']:9.4f} s  "
                    f"{100 * v['change']:+7.1f} %  {mark}"
                )
                log(lines[-1])
    finally:
        _git("worktree", "remove", "--force", str(worktree))
        _git("worktree", "prune")
        shutil.rmtree(tmp, ignore_errors=True)
    head = (
        f"gate: base {base_rev} ({sha.stdout.strip()[:12]}) vs working tree; fail when "
        f"> {100 * rel:.0f} % and > {1000 * abs_s:.0f} ms slower; best of {rounds} alternating "
        "rounds"
    )
    table = "\n".join([head, *lines, "FAILED: a case is slower" if failed else "passed"])
    return (1 if failed else 0), table


def main(argv: list[str] | None = None) -> int:
    """Command line."""
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.compare", description=__doc__.splitlines()[0]
    )
    ap.add_argument(
        "--base", default="HEAD~1", help="git revision to compare with (default HEAD~1)"
    )
    ap.add_argument("--suite", default="quick")
    ap.add_argument("--rounds", type=int, default=None)
    args = ap.parse_args(argv)
    code, table = compare(
        args.base, suite=args.suite, rounds=args.rounds, log=lambda s: print(s, file=sys.stderr)
    )
    print(table)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
