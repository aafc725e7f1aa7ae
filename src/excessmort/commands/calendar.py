"""``excessmort calendar [YEAR] [--format text|csv|ics] [--config FILE] [--announced DATE]``."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, date, datetime

from ..exceptions import InputError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``calendar`` subcommand."""
    parser = subparsers.add_parser(
        "calendar",
        help="print the 12-month release calendar (text, CSV or iCalendar)",
        description="Twelve monthly release slots from YEAR (or YYYY-MM), by the configured rule "
        "(default third Thursday, 14:00 Europe/London). Warns when a slot is less than four weeks "
        "after the announcement date (Code of Practice T3.1).",
    )
    parser.add_argument(
        "start",
        nargs="?",
        default=None,
        help="year (January to December) or first month YYYY-MM; default this year",
    )
    parser.add_argument("--format", choices=["text", "csv", "ics"], default="text")
    parser.add_argument("--months", type=int, default=12, help="number of slots (default 12)")
    parser.add_argument("--config", default=None, help="release configuration TOML file")
    parser.add_argument(
        "--announced",
        default=None,
        help="announcement date YYYY-MM-DD for the four-week check (default today)",
    )
    parser.add_argument("--output", "-o", default=None, help="write to this file (atomically)")
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    """Print or write the calendar; exit 0, or 1 when a slot breaks the four-week notice."""
    from .._atomic import atomic_write_text
    from ..release.calendar import calendar, format_calendar
    from ..release.config import load_config

    config = load_config(args.config)
    today = datetime.now(UTC).date()
    try:
        announced = date.fromisoformat(args.announced) if args.announced else today
    except ValueError:
        raise InputError(
            f"--announced must be a date YYYY-MM-DD, got {args.announced!r}",
            column="--announced",
            value=args.announced,
        ) from None
    start: int | str = args.start or today.year  # a year or a month, read by the period parser
    entries = calendar(start, args.months, rule=config.release_rule, announced=announced)
    dtstamp = datetime.combine(announced, datetime.min.time(), tzinfo=UTC)
    text = format_calendar(
        entries,
        args.format,
        rule=config.release_rule,
        title=config.title,
        url=config.url,
        dtstamp=dtstamp,
    )
    if args.output:
        atomic_write_text(args.output, text)
    else:
        sys.stdout.buffer.write(text.encode("utf-8"))
        sys.stdout.flush()
    warnings = [e.warning for e in entries if e.warning]
    for warning in warnings:
        print(f"excessmort: warning: {warning}", file=sys.stderr)
    return 1 if warnings else 0
