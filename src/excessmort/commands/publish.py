"""``excessmort publish STAGED --to TARGET [--fallback TARGET ...] [--at TIME | --slot MONTH]``.

The staged release must be ready (the readiness checks, the release-contents check and, with a
configured public key, the manifest signature): a release that is not ready is refused with exit 1
and the failing checks printed, unless ``--force-unready --reason TEXT`` is given (recorded in the
publish log and the access log). ``--rollback-to RELEASE_ID`` lets an older release replace a newer
live one, by name.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..exceptions import InputError

if TYPE_CHECKING:
    from ..release.config import Config
    from ..release.publish import PublishResult
    from ..release.targets import Target


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``publish`` subcommand."""
    parser = subparsers.add_parser(
        "publish",
        help="publish a staged release at its slot (atomic, verified, retried, with fallbacks)",
        description="Wait for the slot (embargo), make the staged release live atomically, verify "
        "it, retry with backoff, fall back to other targets, and write the breach paperwork and "
        "notify people if the slot is missed. Refuses a release that is not ready (the "
        "readiness checks run first) unless --force-unready --reason is given. Exit 0 when "
        "published on time, 1 when refused, late or not published.",
    )
    add_target_arguments(parser)
    parser.add_argument("staged", help="staged release folder (holds manifest.json)")
    when = parser.add_mutually_exclusive_group()
    when.add_argument(
        "--at", default=None, help="release time, ISO 8601 (no offset: the release time zone)"
    )
    when.add_argument("--slot", default=None, help="release month YYYY-MM (its slot by the rule)")
    parser.set_defaults(func=handle)


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared with ``release``: --to, --fallback, --deadline, --config, --no-email."""
    parser.add_argument(
        "--to",
        dest="to",
        default=None,
        help="target: a name from the configuration, a URL (sftp://user@host:port/srv/live, "
        "webdav+https://host/path, file:///srv/live) or a folder path "
        "(default: the configured target)",
    )
    parser.add_argument(
        "--fallback",
        action="append",
        default=None,
        help="fallback target (name, URL or folder); repeatable",
    )
    parser.add_argument(
        "--deadline",
        type=float,
        default=None,
        help="minutes after the slot before it counts as missed (default config)",
    )
    parser.add_argument("--config", default=None, help="release configuration TOML file")
    parser.add_argument("--no-email", action="store_true", help="write the paperwork, send no mail")
    parser.add_argument(
        "--force-unready",
        action="store_true",
        help="publish although the readiness checks fail (needs --reason; recorded in the "
        "publish log and the access log)",
    )
    parser.add_argument("--reason", default=None, help="why the readiness gate is overridden")
    parser.add_argument(
        "--rollback-to",
        default=None,
        metavar="RELEASE_ID",
        help="let this (older) release replace a newer live one: give its id",
    )


def resolve_target(config: Config, name_or_path: str) -> Target:
    """A configured target by name, a target URL (sftp://, webdav+https://, file://), or a folder."""
    from ..release.target_url import build_target, is_target_url, target_from_url
    from ..release.targets import DirectoryTarget

    timeout = config.retry.http_timeout_seconds
    for spec in config.targets:
        if spec.name == name_or_path:
            return build_target(spec, timeout)
    if is_target_url(name_or_path):
        return target_from_url(name_or_path, http_timeout=timeout)
    path = Path(name_or_path)
    looks_like_path = path.is_absolute() or name_or_path.startswith(".") or "/" in name_or_path
    if not looks_like_path and not path.exists():
        known = ", ".join(s.name for s in config.targets)
        raise InputError(
            f"target {name_or_path!r} is neither a configured target ({known}) "
            "nor an existing folder",
            column="--to",
            value=name_or_path,
        )
    return DirectoryTarget(path.name or name_or_path, path, http_timeout=timeout)


def parse_when(config: Config, at: str | None, slot_month: str | None) -> datetime | None:
    """The slot from ``--at`` or ``--slot`` (``None``: the manifest's)."""
    from ..release.calendar import slot_for_month

    if slot_month:
        return slot_for_month(slot_month, config.release_rule)
    if at:
        try:
            moment = datetime.fromisoformat(at)
        except ValueError:
            raise InputError(
                f"--at must be an ISO 8601 time such as 2027-03-18T14:00, got {at!r}",
                column="--at",
                value=at,
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=config.release_rule.zone)
        return moment
    return None


def override_reason(args: argparse.Namespace) -> str | None:
    """The reason of ``--force-unready --reason TEXT`` (``None`` without the flag)."""
    reason = getattr(args, "reason", None)
    if not getattr(args, "force_unready", False):
        if reason:
            raise InputError(
                "--reason is only for --force-unready", column="--reason", value=reason
            )
        return None
    if not reason or not reason.strip():
        raise InputError(
            "--force-unready needs --reason TEXT saying why a release that is not ready is "
            "published (it is recorded in the publish and access logs)",
            column="--reason",
            value=reason,
        )
    return str(reason).strip()


def run_publish(
    args: argparse.Namespace,
    staged: Path,
    config: Config,
    slot: datetime | None,
    readiness: Any = None,
) -> PublishResult:
    """Publish ``staged`` with the targets and options of ``args`` (shared with ``release``)."""
    from ..release.breach import BreachHandler
    from ..release.publish import publish

    main = resolve_target(config, args.to or config.target)
    names: Sequence[str] = args.fallback if args.fallback is not None else config.fallbacks
    fallbacks = [resolve_target(config, n) for n in names]
    minutes = args.deadline if args.deadline is not None else config.deadline_minutes
    if minutes <= 0:
        raise InputError(
            f"--deadline must be > 0 minutes, got {minutes}", column="--deadline", value=minutes
        )
    handler = BreachHandler(config, notify=not args.no_email)
    return publish(
        staged,
        main,
        fallbacks=fallbacks,
        slot=slot,
        deadline=timedelta(minutes=minutes),
        retry=config.retry,
        breach=handler,
        readiness=readiness,
        force_unready=override_reason(args),
        rollback_to=getattr(args, "rollback_to", None),
        public_key=config.signing_public_key,
    )


def report(result: PublishResult) -> int:
    """Print the outcome; exit 0 on time, 1 refused, late or not published."""
    verdict = result.readiness
    if result.override and verdict is not None:
        failed = ", ".join(c.name for c in verdict.checks if c.verdict == "fail")
        print(
            f"excessmort: WARNING: {result.release_id} is NOT READY ({failed}); published "
            f"under the override: {result.override}",
            file=sys.stderr,
        )
    if result.published:
        late = " LATE (breach report written)" if result.late else ""
        print(
            f"published {result.release_id} to {result.target} at "
            f"{result.published_at.isoformat() if result.published_at else '?'}{late}"
        )
        for name, live in result.stale.items():
            print(
                f"excessmort: WARNING: target {name} is stale: it still serves {live or 'nothing'}; "
                f"bring it up to date with `excessmort resync {result.log_path.parent if result.log_path else 'STAGED'}`",
                file=sys.stderr,
            )
        return 1 if result.late else 0
    if result.refused and verdict is not None:
        for check in verdict.checks:
            if check.verdict == "fail":
                print(f"  fail: {check.name}: {check.message}", file=sys.stderr)
        print(
            f"excessmort: {result.release_id} is NOT READY and was not published; fix the "
            "release, or override with --force-unready --reason TEXT",
            file=sys.stderr,
        )
    if result.breached:
        print("excessmort: the slot is missed: breach paperwork written", file=sys.stderr)
    print(f"excessmort: {result.release_id} NOT published: {result.error}", file=sys.stderr)
    return 1


def handle(args: argparse.Namespace) -> int:
    """Publish the staged release."""
    from ..release.config import load_config

    config = load_config(args.config)
    slot = parse_when(config, args.at, args.slot)
    return report(run_publish(args, Path(args.staged), config, slot))
