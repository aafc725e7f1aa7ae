"""User-defined groupings (``Fit.by(groups=...)``): one stacked pass against one view per group.

``python -m benchmarks.bench_groups [--repeats N] [--out FILE]``

Workload: the real ONS regional file (../shared/data/ons, nine English regions and Wales,
2015 to April 2021), quasi-Poisson, reference 2015-2019, dependence model on; ten groups: England
and Wales and each of the nine regions. Each repeat asks for ``weekly``, ``cumulative(2020)`` and
``cumulative_path("2020-03", "2020-12")`` of a fresh ``by(groups=...)``.

Cases, in one process after one warm-up each (warm figures, median of ``--repeats``):

- ``stacked``: the engine's path, every group's series stacked into one view (one call of each
  variance kernel over all groups, the dependence model from one set of group sums);
- ``per_group``: the reference path a user would otherwise write, one ``Fit`` view per group
  (``GroupedFit._concat``), which the tests hold the stacked path equal to (1e-12).

Equal work: the largest relative difference between the two paths over every float column.
Ratio = per_group / stacked. Writes ``benchmarks/results/groups_<date>.csv`` and prints the row.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "ons" / "ons_weekly_deaths_by_region.csv"


def _calls(g: Any, stacked: bool) -> list[Any]:
    asks = [("weekly", ()), ("cumulative", (2020,)), ("cumulative_path", ("2020-03", "2020-12"))]
    out = []
    for name, args in asks:
        if stacked:
            value = getattr(g, name)
            out.append(value(*args) if callable(value) else value)
        else:
            out.append(g._concat(name, *args))
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print and append its row."""
    import excessmort as em
    from benchmarks.machine import git_info, now, versions
    from excessmort.regions import REGIONS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    frame = em.read(DATA, keep_wales=True)
    fit = em.fit(frame, reference=("2015-01-01", "2019-12-31"))
    groups = {"England and Wales": ["England", "Wales"], **{n: [n] for n in REGIONS.values()}}

    def timed(stacked: bool) -> tuple[float, list[Any]]:
        g = fit.by(groups=groups)
        started = time.perf_counter()
        frames = _calls(g, stacked)
        return time.perf_counter() - started, frames

    _, a = timed(True)
    _, b = timed(False)
    worst = 0.0
    for x, y in zip(a, b, strict=True):
        for col in y.columns:
            if y[col].dtype.kind == "f":
                u, v = x[col].to_numpy(), y[col].to_numpy()
                ok = np.isfinite(v) & (v != 0)
                worst = max(worst, float(np.max(np.abs(u[ok] - v[ok]) / np.abs(v[ok]), initial=0)))
    stacked = statistics.median(timed(True)[0] for _ in range(args.repeats))
    per_group = statistics.median(timed(False)[0] for _ in range(args.repeats))
    row = {
        "date": now(),
        **git_info(),
        **{f"version_{k}": v for k, v in versions().items()},
        "groups": len(groups),
        "series": fit.panel.n_series,
        "weeks": fit.panel.n_weeks,
        "repeats": args.repeats,
        "stacked_s": round(stacked, 4),
        "per_group_s": round(per_group, 4),
        "ratio": round(per_group / stacked, 2),
        "max_rel_diff": worst,
    }
    out = Path(args.out or REPO / "benchmarks" / "results" / f"groups_{row['date'][:10]}.csv")
    out.parent.mkdir(parents=True, exist_ok=True)
    new = not out.exists()
    with out.open("a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)
    print(row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
