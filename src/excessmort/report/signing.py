"""Optional Ed25519 signature of a release's manifest (``cryptography``).

``STAGED/manifest.sig`` holds ``{"algorithm": "ed25519", "key": <SHA-256 of the raw public key>,
"signature": <base64 of the signature of the exact bytes of manifest.json>}``. The manifest lists
every content file with its SHA-256, so a valid signature vouches for the whole release: a changed
file fails the manifest check, a changed (or regenerated) manifest fails the signature.

Keys are PEM files (``openssl genpkey -algorithm ed25519 -out release.pem`` and
``openssl pkey -in release.pem -pubout -out release.pub.pem``) named in the release configuration
(``[signing] private_key``, ``public_key``). When a public key is configured, ``excessmort check``
and ``excessmort publish`` refuse a release whose signature is missing or does not verify;
``publish`` verifies it again, on the bytes it copies, just before the switch.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._atomic import atomic_write_text
from ..exceptions import ReleaseError
from .manifest import MANIFEST_NAME

if TYPE_CHECKING:
    from .readiness import Check

__all__ = [
    "SIGNATURE_NAME",
    "check_signature",
    "load_private_key",
    "load_public_key",
    "sign_manifest",
    "verify_signature",
]

SIGNATURE_NAME = "manifest.sig"


def _read_key_file(path: str | os.PathLike[str], what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ReleaseError(f"cannot read the {what} {path}: {exc.strerror or exc}") from None


def load_private_key(path: str | os.PathLike[str]) -> Any:
    """The Ed25519 private key in the PEM file ``path`` (unencrypted)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    data = _read_key_file(path, "signing key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ReleaseError(f"{path} is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ReleaseError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    return key


def load_public_key(path: str | os.PathLike[str]) -> Any:
    """The Ed25519 public key in the PEM file ``path``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    data = _read_key_file(path, "public key")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise ReleaseError(f"{path} is not a PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ReleaseError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    return key


def _fingerprint(public_key: Any) -> str:
    from cryptography.hazmat.primitives import serialization

    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def sign_manifest(root: str | os.PathLike[str], private_key: str | os.PathLike[str]) -> Path:
    """Sign ``root/manifest.json`` with the key in ``private_key``; write ``root/manifest.sig``."""
    key = load_private_key(private_key)
    base = Path(root)
    data = (base / MANIFEST_NAME).read_bytes()
    doc = {
        "algorithm": "ed25519",
        "key": _fingerprint(key.public_key()),
        "signature": base64.b64encode(key.sign(data)).decode("ascii"),
    }
    out = base / SIGNATURE_NAME
    atomic_write_text(out, json.dumps(doc, indent=2) + "\n")
    out.chmod(0o644)
    return out


def verify_signature(
    manifest_bytes: bytes, signature_bytes: bytes | None, public_key: str | os.PathLike[str]
) -> None:
    """Check a manifest's signature.

    Raises
    ------
    ReleaseError
        When the signature is missing, malformed, made with another key, or does not verify.
    """
    from cryptography.exceptions import InvalidSignature

    key = load_public_key(public_key)
    if signature_bytes is None:
        raise ReleaseError(f"the manifest is not signed ({SIGNATURE_NAME} is missing)")
    try:
        doc = json.loads(signature_bytes)
        signature = base64.b64decode(doc["signature"], validate=True)
        algorithm, fingerprint = doc["algorithm"], doc["key"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ReleaseError(f"{SIGNATURE_NAME} is malformed ({exc})") from None
    if algorithm != "ed25519":
        raise ReleaseError(f"{SIGNATURE_NAME} uses {algorithm!r}, not ed25519")
    if fingerprint != _fingerprint(key):
        raise ReleaseError(
            f"{SIGNATURE_NAME} was made with another key ({str(fingerprint)[:12]}...), "
            f"not {public_key} ({_fingerprint(key)[:12]}...)"
        )
    try:
        key.verify(signature, manifest_bytes)
    except InvalidSignature:
        raise ReleaseError(
            f"the signature in {SIGNATURE_NAME} does not match manifest.json: the manifest was "
            "changed after signing"
        ) from None


def check_signature(root: str | os.PathLike[str], public_key: str | os.PathLike[str]) -> Check:
    """The ``manifest_signature`` readiness check."""
    from .readiness import Check

    base = Path(root)
    sig = base / SIGNATURE_NAME
    try:
        verify_signature(
            (base / MANIFEST_NAME).read_bytes(),
            sig.read_bytes() if sig.is_file() and not sig.is_symlink() else None,
            public_key,
        )
    except (ReleaseError, OSError) as exc:
        return Check("manifest_signature", "fail", f"{exc}; re-stage and sign the release")
    return Check("manifest_signature", "pass", f"manifest.json is signed by the key {public_key}")
