"""The manifest of a staged release: every file with its SHA-256 and size.

A staged release ``OUT/<release-date>/`` holds ``manifest.json``::

    {"schema": 1,
     "release": {"month": "2027-03", "release_date": "2027-03-18",
                 "slot": "2027-03-18T14:00:00+00:00", "title": ..., "producer": ...,
                 "baseline": ..., "generated_at": ...},
     "files": [{"path": "north-east/report.html", "sha256": "<hex>", "bytes": 1234}, ...]}

Paths are relative, POSIX and sorted. The release's own metadata files (``manifest.json``,
``readiness.json``, ``access_log.json``, the publish log, the signature and the breach paperwork)
are not listed: they change after staging while the content must not. Hidden files (temporary files
of an interrupted atomic write) are never listed.

Only regular files belong to a release: :func:`build_manifest` refuses a symlink (file or folder)
and :func:`verify_manifest` reports one, as it reports any file the manifest does not list (only the
metadata files above, and the hidden temporary files of an atomic write at the top, are allowed
beside the content). Files are opened with ``O_NOFOLLOW``, one folder at a time, so a symlink
swapped in after the check is refused rather than followed.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
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
    "is_atomic_temp",
    "manifest_digest",
    "open_nofollow",
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
        "publish_log.jsonl",
        "pre_release_access.json",
        "manifest.sig",
        "breach_report.json",
        "breach_report.md",
        "change_notice.md",
    }
)
_CHUNK = 1 << 20


def _bad_rel(rel: str) -> str | None:
    if not rel or rel.startswith("/") or "\\" in rel or "\0" in rel:
        return "is not a relative POSIX path"
    parts = rel.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return "leaves the release folder (empty, '.' or '..' part)"
    if any(ord(ch) < 32 for ch in rel):
        return "has a control character in its name"
    return None


def open_nofollow(root: str | os.PathLike[str], rel: str) -> int:
    """Open ``root/rel`` read-only without following any symlink below ``root``.

    Every folder on the way is opened with ``O_NOFOLLOW | O_DIRECTORY`` relative to the one
    before, and the file itself with ``O_NOFOLLOW``; the result must be a regular file.

    Raises
    ------
    OSError
        ``ELOOP`` (a symlink on the way), ``ENOENT``, or ``EINVAL`` for a path leaving ``root`` or
        a file that is not regular (a FIFO, a device).
    """
    why = _bad_rel(rel)
    if why:
        raise OSError(errno.EINVAL, f"path {rel!r} {why}", rel)
    parts = rel.split("/")
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in parts[:-1]:
            nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nxt
        leaf = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd)
    except OSError as exc:
        if exc.errno == errno.ENOTDIR:
            raise OSError(
                errno.ELOOP, "a folder on the way is a symlink or not a folder", rel
            ) from None
        raise OSError(exc.errno, exc.strerror, rel) from None
    finally:
        os.close(fd)
    if not stat.S_ISREG(os.fstat(leaf).st_mode):
        os.close(leaf)
        raise OSError(errno.EINVAL, "not a regular file", rel)
    return leaf


def file_sha256(path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> str:
    """SHA-256 hex digest of a file, read in 1 MiB chunks.

    With ``root``, ``path`` is relative to it and opened with :func:`open_nofollow`.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a"
    >>> _ = p.write_bytes(b"abc")
    >>> file_sha256(p)[:16]
    'ba7816bf8f01cfea'
    """
    digest = hashlib.sha256()
    if root is None:
        fh = open(path, "rb")  # noqa: SIM115 - closed below
    else:
        fh = os.fdopen(open_nofollow(root, Path(path).as_posix()), "rb")
    with fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def is_atomic_temp(name: str) -> bool:
    """A temporary file of an atomic write (``.NAME.xxxx.tmp``)."""
    return name.startswith(".") and name.endswith(".tmp")


def _content_files(root: Path) -> list[str]:
    found: list[str] = []
    for folder, dirs, files in os.walk(root):
        rel_folder = Path(folder).relative_to(root)
        for name in [*dirs, *files]:
            if os.path.islink(os.path.join(folder, name)):
                raise ReleaseError(
                    f"{(rel_folder / name).as_posix()} in {root} is a symlink: a release holds "
                    "regular files only (copy the file in instead)"
                )
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
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
        When ``root`` is not a folder, or holds a symlink.
    """
    base = Path(root)
    if not base.is_dir():
        raise ReleaseError(f"staged release folder {base} does not exist")
    files = [
        {"path": rel, "sha256": file_sha256(rel, base), "bytes": (base / rel).stat().st_size}
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
        why = _bad_rel(rel)
        if why:
            raise ReleaseError(f"{path}: files[{i}] path {rel!r} {why}")
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

    Problems: a listed file missing, a size or checksum that differs, a symlink anywhere (a listed
    file that is one or lies under one, or any other), and a file the manifest does not list
    (anywhere but the metadata files and atomic-write temporaries at the top).

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
        try:
            fd = open_nofollow(base, rel)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                problems.append(f"{rel}: listed in the manifest but missing")
            elif exc.errno == errno.ELOOP:
                problems.append(f"{rel}: is a symlink or lies under one (regular files only)")
            else:
                problems.append(f"{rel}: cannot be read safely ({exc.strerror or exc})")
            continue
        with os.fdopen(fd, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size != int(entry["bytes"]):
                problems.append(f"{rel}: size {size} bytes, manifest says {entry['bytes']}")
                continue
            digest = hashlib.sha256()
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
        actual = digest.hexdigest()
        if actual != entry["sha256"]:
            problems.append(
                f"{rel}: checksum differs from the manifest (expected {entry['sha256'][:12]}..., "
                f"found {actual[:12]}...)"
            )
    if base.is_dir():
        for folder, dirs, files in os.walk(base):
            rel_folder = Path(folder).relative_to(base)
            top = rel_folder == Path(".")
            for name in sorted([*dirs, *files]):
                rel = (rel_folder / name).as_posix()
                if os.path.islink(os.path.join(folder, name)):
                    if rel not in listed:
                        problems.append(f"{rel}: is a symlink (a release holds regular files only)")
                    continue
                if name in dirs:
                    continue
                if rel in listed or (top and (name in METADATA_FILES or is_atomic_temp(name))):
                    continue
                where = "at the top of the release" if top else "inside a region folder"
                problems.append(f"{rel}: {where} but not in the manifest")
    return sorted(problems)
