"""``excessmort backtest``: rolling-origin backtest of a baseline's intervals on a deaths file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..exceptions import InputError


def _years(text: str | None) -> list[int] | None:
    """``2012-2019`` or ``2017,2018,2019``; each year read by the period parser."""
    from ..periods import parse_year

    if not text:
        return None
    try:
        if "-" in text and "," not in text:
            lo, hi = (parse_year(v, what="--years") for v in text.split("-"))
            return list(range(lo, hi + 1))
        return [parse_year(v, what="--years") for v in text.split(",")]
    except (InputError, ValueError):
        raise InputError(
            f"--years must be a range such as 2012-2019 or a list such as 2017,2018,2019; got {text!r}",
            column="--years",
            value=text,
        ) from None


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``backtest`` subcommand."""
    parser = subparsers.add_parser(
        "backtest",
        help="rolling-origin backtest of a baseline's weekly and yearly intervals",
        description="For each test year, fit the baseline on the years before it and judge its "
        "intervals for that year: coverage of weekly and yearly 95%% intervals, bias, width and "
        "interval score, for the series and, with --by, their aggregates. Exit 0 on success, 2 on "
        "a usage error.",
    )
    parser.add_argument("--input", required=True, metavar="PATH", help="deaths file (CSV, Parquet)")
    parser.add_argument(
        "--baseline", default="quasipoisson", help="baseline name (default quasipoisson)"
    )
    parser.add_argument(
        "--years",
        default=None,
        help="test years, e.g. 2012-2019 (default: all full years before 2020)",
    )
    parser.add_argument(
        "--reference-years", type=int, default=5, help="years each fold is fitted on (default 5)"
    )
    parser.add_argument("--level", type=float, default=0.95, help="interval level (default 0.95)")
    parser.add_argument(
        "--by",
        action="append",
        default=None,
        metavar="STRATA",
        help="aggregate to judge too: comma-separated strata, or 'total'; repeatable",
    )
    parser.add_argument(
        "--independent",
        action="store_true",
        help="judge the independence intervals (sums of phi mu) instead of the dependence model",
    )
    parser.add_argument(
        "--round-deaths",
        action="store_true",
        help="round fractional counts (e.g. HMD STMF's split age groups) to whole deaths first",
    )
    parser.add_argument("--out", default=None, metavar="CSV", help="write the per-row results here")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    """Run the backtest; print its summary; 0 on success."""
    import pandas as pd

    from .._atomic import atomic_write_text
    from .._backtest import backtest

    years = _years(args.years)  # a bad --years is a usage error before any reading
    path = Path(args.input)
    if not path.exists():
        raise InputError(f"--input {path} does not exist", column="--input", value=str(path))
    frame = pd.read_parquet(path) if path.suffix in (".parquet", ".pq") else pd.read_csv(path)
    if args.round_deaths and "deaths" in frame.columns:
        frame["deaths"] = pd.to_numeric(frame["deaths"], errors="coerce").round()
    by = None
    if args.by:
        by = [
            () if b.strip() in ("total", "") else tuple(s.strip() for s in b.split(","))
            for b in args.by
        ]
    result = backtest(
        frame,
        baseline=args.baseline,
        years=years,
        reference_years=args.reference_years,
        level=args.level,
        by=by,
        dependence=not args.independent,
    )
    if args.out:
        atomic_write_text(Path(args.out), result.rows.to_csv(index=False))
    if args.json:
        print(
            json.dumps(
                {"title": result._title(), "summary": result.summary().to_dict(orient="records")},
                indent=2,
            )
        )
    else:
        print(result)
    return 0
