"""``excessmort check DIR``: the readiness checks of a staged release, verdicts, reasons."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path

from ..exceptions import InputError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``check`` subcommand."""
    parser = subparsers.add_parser(
        "check",
        help="run the readiness checks on a staged release",
        description="Check a staged release (OUT/<release-date>): all nine regions present and "
        "complete, data reaching the last week covered, no short or gapped series, every model "
        "converged, England equal to the sum of the regions, weekly and cumulative figures in "
        "agreement, every file matching the manifest, self-contained HTML, the embargo, nothing but "
        "regular listed files with no script or external reference in HTML/SVG (symlinks, "
        "unlisted files and escaping paths fail), and the manifest signature when a public key "
        "is configured. Exit 0 "
        "when no check fails, 1 when one does, 2 on a usage error.",
    )
    parser.add_argument("release", metavar="DIR", help="the staged release folder")
    parser.add_argument("--json", action="store_true", help="print the verdict as JSON")
    parser.add_argument(
        "--live-root",
        default=None,
        metavar="PATH",
        help="live target root for the embargo check (default: the configuration's main target)",
    )
    parser.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help="release configuration TOML (for the live target and the [plausibility] thresholds; "
        "default: the thresholds recorded at staging)",
    )
    parser.add_argument(
        "--now",
        default=None,
        metavar="ISO-TIME",
        help="judge the embargo at this time (default now), e.g. 2027-03-18T13:59:00+00:00",
    )
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    """Run the checks; print them; 0 when none fails."""
    from ..release.config import load_config
    from ..report.contents import full_check

    folder = Path(args.release)
    if not folder.is_dir():
        raise InputError(
            f"{folder} is not a folder; give a staged release such as out/2027-03-18",
            column="DIR",
            value=str(folder),
        )
    now = None
    if args.now:
        try:
            now = datetime.fromisoformat(args.now)
        except ValueError:
            raise InputError(
                f"--now must be an ISO date-time, got {args.now!r}", column="--now", value=args.now
            ) from None
    config = load_config(args.config)
    live_root = args.live_root
    if live_root is None:
        live_root = config.target_spec(config.target).path
    # The plausibility thresholds: the configuration's when one is given, else those recorded in
    # model.json at staging (so that the verdict is the one the release was staged with).
    plausibility = config.plausibility if args.config else None
    readiness = full_check(
        folder,
        live_root=live_root,
        now=now,
        public_key=config.signing_public_key,
        plausibility=plausibility,
    )
    if args.json:
        print(json.dumps({"release": str(folder), **readiness.to_dict()}, indent=2))
    else:
        print(readiness)
    if not readiness.ready:
        print(
            f"excessmort: {folder} is NOT READY: " + "; ".join(c.name for c in readiness.failed),
            file=sys.stderr,
        )
    return 0 if readiness.ready else 1
