"""``excessmort run``: the monthly batch: fit once, stage the nine regional reports, say if ready.

Writes ``OUT/<release-date>/`` (see :mod:`excessmort.report.stage`) and ends with the readiness
checks; the exit status is 0 only when the release is ready.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from typing import Any

log = logging.getLogger("excessmort")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``run`` subcommand."""
    parser = subparsers.add_parser(
        "run",
        help="stage the monthly release: nine regional reports, figures, manifest, readiness",
        description="Fit expected deaths for every series at once and stage the release covering "
        "--month: OUT/<release-date>/ with one folder per region (report.html, figures.csv, "
        "figures.parquet, charts), index.html, manifest.json and readiness.json. The release date "
        "is the configured slot (default third Thursday, 14:00 Europe/London) of the month after "
        "--month. Exit 0 when the release is ready, 1 when a readiness check fails, 2 on a usage "
        "or input error.",
    )
    parser.add_argument(
        "--input",
        default=None,
        metavar="PATH",
        help="deaths table: CSV, Parquet or ONS workbook (default: the demo data)",
    )
    parser.add_argument(
        "--month",
        default=None,
        metavar="YYYY-MM",
        help="month the release covers (default: the latest complete month of the "
        "data, i.e. whose last Friday the data reach)",
    )
    parser.add_argument(
        "--baseline",
        default="quasipoisson",
        metavar="NAME",
        help="baseline: one of the registered names (excessmort.baselines.available(): "
        "quasipoisson (default), poisson, five_year_average, euromomo, pooled, ons2024, wmd, "
        "negative_binomial, ...)",
    )
    parser.add_argument(
        "--out", default="out", metavar="DIR", help="folder for staged releases (default: out)"
    )
    parser.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help="release configuration TOML (default: the demo's)",
    )
    parser.add_argument(
        "--reference",
        nargs=2,
        default=("2015-01-01", "2019-12-31"),
        metavar=("START", "END"),
        help="reference period (default 2015-01-01 2019-12-31)",
    )
    parser.add_argument(
        "--level", type=float, default=0.95, metavar="L", help="interval level (default 0.95)"
    )
    parser.add_argument(
        "--live-root",
        default=None,
        metavar="PATH",
        help="live target root for the embargo check (default: the configuration's main target)",
    )
    parser.add_argument(
        "--allow-pandemic-reference",
        action="store_true",
        help="allow a reference period reaching into the pandemic weeks (March 2020 to 2021), "
        "refused by default",
    )
    parser.add_argument(
        "--allow-short-history",
        action="store_true",
        help="fit series with fewer reference weeks than the baseline needs on what they have "
        "(refused by default, naming the series)",
    )
    parser.add_argument("--json", action="store_true", help="print the readiness verdict as JSON")
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    """Stage the release and print the verdict; 0 when ready, 1 when not."""
    from ..release.calendar import parse_month
    from ..report.render import render_workers

    if args.month is not None:
        parse_month(args.month)  # a bad month is a usage error before any work
    # The render workers fork first, while this process is still light (before the engine's
    # imports), and load matplotlib on the other core while the engine is imported, the data made
    # and the model fitted; staging takes the same pool (render.render_workers).
    with render_workers():
        return _stage(args)


def _stage(args: argparse.Namespace) -> int:
    """Stage the release (the render workers are forked) and print the verdict."""
    import excessmort

    from ..release.config import load_config
    from ..report.readiness import read_readiness
    from ..report.stage import stage_release

    config = load_config(args.config)
    log.info(
        "run: input=%s month=%s baseline=%s reference=%s..%s level=%s out=%s config=%s",
        args.input or "demo data",
        args.month or "latest complete",
        args.baseline,
        args.reference[0],
        args.reference[1],
        args.level,
        args.out,
        config.source or "defaults",
    )
    # No warm-up: each kernel is loaded from numba's cache, or compiled (saying so), on its first
    # call, and only the kernels (and the driver, serial or parallel) this run uses; calls on small
    # problems (the demo's) run the numpy twins and need no numba (_kernels.NUMPY_MAX_CELLS).
    source: Any = args.input
    if source is None:
        started = time.perf_counter()
        source = excessmort.demo_data()
        log.info("demo data made in %.2f s", time.perf_counter() - started)
    staged = stage_release(
        source,
        month=args.month,
        out=args.out,
        baseline=args.baseline,
        reference=tuple(args.reference),
        config=config,
        level=args.level,
        live_root=args.live_root,
        allow_pandemic=args.allow_pandemic_reference,
        allow_short_history=args.allow_short_history,
    )
    from .._kernels import first_call_seconds

    kernels = first_call_seconds()
    log.info(
        "compiled/loaded kernels in %.2f s (first calls of %s)",
        sum(kernels.values()),
        ", ".join(kernels)
        or (
            "none: every kernel call was small enough for its numpy twin"
            + ("" if "numba" in sys.modules else "; numba not imported")
        ),
    )
    readiness = read_readiness(staged)
    if args.json:
        print(json.dumps({"release": str(staged), **readiness.to_dict()}, indent=2))
    else:
        print(f"staged {staged}")
        print(readiness)
    if not readiness.ready:
        print(
            f"excessmort: release {staged.name} is NOT READY: "
            + "; ".join(c.name for c in readiness.failed),
            file=sys.stderr,
        )
    return 0 if readiness.ready else 1
