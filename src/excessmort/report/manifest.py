"""The manifest of a staged release: every file with its SHA-256 and size.

A staged release ``OUT/<release-date>/`` holds ``manifest.json``::

    {"schema": 1,
     "release": {"month": "2027-03", "release_date": "2027-03-18",
                 "slot": "2027-03-18T14:00:00+00:00", "title": ..., "producer": ...,
                 "baseline": ..., "generated_at": ...},
     "files": [{"path": "north-east/report.html", "sha256": "<hex>", "bytes": 1234}, ...]}

Paths are relative, POSIX and sorted. The release's own metadata files (``manifest.json``,
``readiness.json``, ``access_log.json``, ``publish_log.json`` and the breach paperwork) are not
listed: they change after staging while the content must not. Hidden files (temporary files of an
interrupted atomic write) are never listed.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._atomic import atomic_write_text
from ..exceptions import ReleaseError

__all__ = [
    "MANIFEST_NAME",
    "METADATA_FILES",
    "build_manifest",
    "file_sha256",
    "manifest_digest",
    "read_manifest",
    "verify_manifest",
    "write_manifest",
]

MANIFEST_NAME = "manifest.json"
SCHEMA = 1
#: Top-level files of a staged release that describe it rather than belong to it (never listed).
METADATA_FILES = frozenset(
    {
        MANIFEST_NAME,
        "readiness.json",
        "access_log.json",
        "publish_log.json",
        "breach_report.json",
        "breach_report.md",
        "change_notice.md",
    }
)
_CHUNK = 1 << 20


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 hex digest of a file, read in 1 MiB chunks.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a"
    >>> _ = p.write_bytes(b"abc")
    >>> file_sha256(p)[:16]
    'ba7816bf8f01cfea'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _content_files(root: Path) -> list[str]:
    found: list[str] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        rel_folder = Path(folder).relative_to(root)
        for name in files:
            if name.startswith("."):
                continue
            if rel_folder == Path(".") and name in METADATA_FILES:
                continue
            found.append((rel_folder / name).as_posix())
    return sorted(found)


def build_manifest(root: str | os.PathLike[str], release_meta: Mapping[str, Any]) -> dict[str, Any]:
    """Describe every content file under ``root`` with its checksum and size.

    Parameters
    ----------
    root : path
        The staged release folder.
    release_meta : mapping
        The ``release`` block (month, release_date, slot, title, producer, baseline, generated_at).

    Returns
    -------
    dict
        ``{"schema": 1, "release": {...}, "files": [{"path", "sha256", "bytes"}, ...]}``.

    Raises
    ------
    ReleaseError
        When ``root`` is not a folder.
    """
    base = Path(root)
    if not base.is_dir():
        raise ReleaseError(f"staged release folder {base} does not exist")
    files = [
        {"path": rel, "sha256": file_sha256(base / rel), "bytes": (base / rel).stat().st_size}
        for rel in _content_files(base)
    ]
    return {"schema": SCHEMA, "release": dict(release_meta), "files": files}


def write_manifest(root: str | os.PathLike[str], release_meta: Mapping[str, Any]) -> Path:
    """Build the manifest of ``root`` and write it atomically to ``root/manifest.json``."""
    manifest = build_manifest(root, release_meta)
    path = Path(root) / MANIFEST_NAME
    atomic_write_text(path, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return path


def read_manifest(root: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check the shape of ``root/manifest.json``.

    Raises
    ------
    ReleaseError
        When the file is missing, is not JSON, or lacks ``release`` / ``files``.
    """
    path = Path(root) / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReleaseError(f"{path} is missing: stage the release first") from None
    except json.JSONDecodeError as exc:
        raise ReleaseError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("files"), list):
        raise ReleaseError(f"{path} has no 'files' list")
    if not isinstance(data.get("release"), dict):
        raise ReleaseError(f"{path} has no 'release' block")
    for i, entry in enumerate(data["files"]):
        if not isinstance(entry, dict) or not {"path", "sha256", "bytes"} <= entry.keys():
            raise ReleaseError(f"{path}: files[{i}] needs path, sha256 and bytes, got {entry!r}")
        rel = str(entry["path"])
        if rel.startswith("/") or ".." in Path(rel).parts:
            raise ReleaseError(f"{path}: files[{i}] path {rel!r} leaves the release folder")
    return data


def manifest_digest(manifest: Mapping[str, Any]) -> str:
    """One SHA-256 over the listed paths, checksums and sizes (the identity of the content)."""
    digest = hashlib.sha256()
    for entry in sorted(manifest["files"], key=lambda e: e["path"]):
        digest.update(f"{entry['path']}\0{entry['sha256']}\0{entry['bytes']}\n".encode())
    return digest.hexdigest()


def verify_manifest(
    root: str | os.PathLike[str], manifest: Mapping[str, Any] | None = None
) -> list[str]:
    """Check ``root`` against its manifest; return one sentence per problem (empty when it holds).

    Problems: a listed file missing, a size or checksum that differs, and a file inside a region
    folder (any sub-folder) that the manifest does not list.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (root / "a.csv").write_text("x")
    >>> _ = write_manifest(root, {"month": "2027-03"})
    >>> verify_manifest(root)
    []
    >>> _ = (root / "a.csv").write_text("y")
    >>> verify_manifest(root)[0][:45]
    'a.csv: checksum differs from the manifest (ex'
    """
    base = Path(root)
    data = read_manifest(base) if manifest is None else manifest
    problems: list[str] = []
    listed = set()
    for entry in data["files"]:
        rel = str(entry["path"])
        listed.add(rel)
        path = base / rel
        if not path.is_file():
            problems.append(f"{rel}: listed in the manifest but missing")
            continue
        size = path.stat().st_size
        if size != int(entry["bytes"]):
            problems.append(f"{rel}: size {size} bytes, manifest says {entry['bytes']}")
            continue
        actual = file_sha256(path)
        if actual != entry["sha256"]:
            problems.append(
                f"{rel}: checksum differs from the manifest (expected {entry['sha256'][:12]}..., "
                f"found {actual[:12]}...)"
            )
    if base.is_dir():
        for folder, _dirs, files in os.walk(base):
            rel_folder = Path(folder).relative_to(base)
            if rel_folder == Path("."):
                continue
            for name in files:
                rel = (rel_folder / name).as_posix()
                if rel not in listed:
                    problems.append(f"{rel}: inside a region folder but not in the manifest")
    return sorted(problems)
