"""``excessmort release --month YYYY-MM``: stage, check, wait for the slot, publish, verify.

One command a scheduler (cron, a systemd timer) can start shortly before the slot. ``--month`` is
the month the release covers, as for ``excessmort run``; the slot is the release rule's slot of the
following month, read back from the staged manifest. ``--dry-run`` stages and checks, prints the
slot and the targets, and publishes nothing.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from ..exceptions import ReleaseError
from .publish import add_target_arguments, report, resolve_target, run_publish


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``release`` subcommand."""
    parser = subparsers.add_parser(
        "release",
        help="the monthly job: stage, check, wait for the slot, publish, verify",
        description="Stage the release covering --month, run the readiness checks, wait for the "
        "slot (the rule's slot of the following month) and publish it as `excessmort publish` "
        "does. Exit 0 when published on time (with --dry-run: when ready), 1 when not ready, late "
        "or not published, 2 on a usage error.",
    )
    parser.add_argument("--month", required=True, help="month the release covers, YYYY-MM")
    parser.add_argument("--input", default=None, help="deaths table (default: the demo data)")
    parser.add_argument("--out", default="out", help="folder for staged releases (default out)")
    parser.add_argument("--baseline", default="quasipoisson", help="baseline name")
    parser.add_argument(
        "--dry-run", action="store_true", help="stage and check only; print what would be published"
    )
    add_target_arguments(parser)
    parser.set_defaults(func=handle)


def _staging() -> tuple[Callable[..., Path], Callable[..., Any]]:
    # imported here: staging pulls in pandas and the fitting stack, which `publish` does not need
    try:
        from ..report.contents import full_check as check_release
        from ..report.stage import stage_release
    except ImportError as exc:  # pragma: no cover - a broken installation
        raise ReleaseError(f"this installation cannot stage releases: {exc}") from None
    return stage_release, check_release


def handle(args: argparse.Namespace) -> int:
    """Run the monthly release job."""
    from ..release.calendar import parse_month
    from ..release.config import load_config
    from ..report.manifest import read_manifest

    config = load_config(args.config)
    year, mon = parse_month(args.month)
    main_target = resolve_target(config, args.to or config.target)
    stage_release, check_release = _staging()
    source: Any = args.input
    if source is None:
        from ..datasets import demo_data

        source = demo_data()
    staged = Path(
        stage_release(
            source,
            month=f"{year:04d}-{mon:02d}",
            out=args.out,
            baseline=args.baseline,
            config=config,
            live_root=main_target.root,
        )
    )
    signed = {"public_key": config.signing_public_key} if config.signing_public_key else {}
    readiness = check_release(staged, live_root=main_target.root, **signed)
    print(f"staged {staged}: {'ready' if readiness.ready else 'NOT READY'}")
    if not readiness.ready and not (args.force_unready and not args.dry_run):
        for check in readiness.checks:
            if check.verdict != "pass":
                print(f"  {check.verdict}: {check.name}: {check.message}", file=sys.stderr)
        return 1
    slot = datetime.fromisoformat(str(read_manifest(staged)["release"]["slot"]))
    if args.dry_run:
        targets = [args.to or config.target, *(args.fallback or config.fallbacks)]
        print(f"dry run: would publish {staged} at {slot.isoformat()} to {', '.join(targets)}")
        return 0
    return report(run_publish(args, staged, config, None, readiness))
