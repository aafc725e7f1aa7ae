"""``excessmort sign STAGED [--key PEM]``: sign a staged release's manifest (Ed25519)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..exceptions import InputError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``sign`` subcommand."""
    parser = subparsers.add_parser(
        "sign",
        help="sign a staged release's manifest.json with an Ed25519 key",
        description="Write STAGED/manifest.sig, the Ed25519 signature of manifest.json, with the "
        "key given or the configuration's [signing] private_key. `check` and `publish` verify it "
        "when [signing] public_key is configured. Staging signs by itself when a private key is "
        "configured.",
    )
    parser.add_argument("staged", help="staged release folder (holds manifest.json)")
    parser.add_argument(
        "--key", default=None, help="PEM private key (default: the configuration's)"
    )
    parser.add_argument("--config", default=None, help="release configuration TOML file")
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    """Sign the manifest."""
    from ..release.config import load_config
    from ..report.manifest import read_manifest
    from ..report.signing import sign_manifest

    key = args.key or load_config(args.config).signing_private_key
    if key is None:
        raise InputError(
            "no signing key: give --key PEM or set [signing] private_key in the configuration",
            column="--key",
        )
    read_manifest(args.staged)  # a clear error when it is not a staged release
    print(sign_manifest(Path(args.staged), key))
    return 0
