"""``excessmort grant-access STAGED --name NAME --reason WHY [--role ROLE] [--granted-by NAME]``."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``grant-access`` subcommand."""
    parser = subparsers.add_parser(
        "grant-access",
        help="record pre-release access to a staged release (Code T3.3/T3.4)",
        description="Append who was given the staged release before its slot, when and why, to "
        "STAGED/access_log.json. Refused once the release is published or its slot has passed.",
    )
    parser.add_argument("staged", help="staged release folder")
    parser.add_argument("--name", required=True, help="person given access")
    parser.add_argument("--reason", required=True, help="why they need it before the slot")
    parser.add_argument("--role", default="", help="their role or organisation")
    parser.add_argument("--granted-by", default=None, help="who authorised it (default: you)")
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    """Record the grant and print it."""
    from ..release.access import grant_access

    record = grant_access(
        args.staged, name=args.name, reason=args.reason, role=args.role, granted_by=args.granted_by
    )
    print(json.dumps(record))
    return 0
