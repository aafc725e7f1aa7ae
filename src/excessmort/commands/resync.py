"""``excessmort resync STAGED``: bring targets a fallback left behind up to date."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .publish import resolve_target


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``resync`` subcommand."""
    parser = subparsers.add_parser(
        "resync",
        help="bring every target up to date with an already published release",
        description="After a release went live on a fallback, the main target still serves the "
        "previous release. This publishes the (already public) staged release to every target "
        "that does not serve it, under each target's lock, never replacing a newer release. "
        "Exit 0 when every target serves it (or a newer one), 1 otherwise.",
    )
    parser.add_argument("staged", help="staged release folder (already published)")
    parser.add_argument(
        "--to",
        action="append",
        default=None,
        help="target name or folder; repeatable (default: the configured target and fallbacks)",
    )
    parser.add_argument("--config", default=None, help="release configuration TOML file")
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    """Resync the targets."""
    from ..release.config import load_config
    from ..release.publish import resync

    config = load_config(args.config)
    names = args.to or [config.target, *config.fallbacks]
    targets = [resolve_target(config, n) for n in names]
    result = resync(
        Path(args.staged), targets, retry=config.retry, public_key=config.signing_public_key
    )
    for name, what in result.targets.items():
        print(f"{name}: {what}")
    if not result.ok:
        print(f"excessmort: {result.release_id} is not live everywhere", file=sys.stderr)
    return 0 if result.ok else 1
