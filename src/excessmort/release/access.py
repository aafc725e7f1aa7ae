"""Pre-release access log (Code of Practice for Statistics T3.3 / T3.4).

Who was given the staged release before its slot, when, why, in what role and on whose authority is
appended to ``STAGED/access_log.json`` (read-modify-write under an exclusive lock, then an atomic
rename). Access is refused once the release is published or its slot has passed: after that the
release is public and the log is closed. :func:`excessmort.release.publish.publish` copies the log
into the live release as ``pre_release_access.json``.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import json
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .._atomic import atomic_write_text
from ..exceptions import InputError, ReleaseError
from ..report.manifest import read_manifest

__all__ = ["ACCESS_LOG_NAME", "grant_access", "read_access_log", "record_override"]

ACCESS_LOG_NAME = "access_log.json"


def _utcnow() -> datetime:
    return datetime.now(UTC)


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def read_access_log(staged: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The access records of a staged release, oldest first (empty when none were granted).

    Raises
    ------
    ReleaseError
        When the file exists but is not a JSON list of records.
    """
    path = Path(staged) / ACCESS_LOG_NAME
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ReleaseError(f"{path} is not valid JSON ({exc}); fix it by hand") from None
    records = data.get("records") if isinstance(data, dict) else None
    if not isinstance(records, list):
        raise ReleaseError(f"{path} has no 'records' list")
    return records


def _published(staged: Path) -> str | None:
    from .publog import read_publish_log

    with contextlib.suppress(OSError, ReleaseError, AttributeError, ValueError):
        data = read_publish_log(staged)
        if data.get("published_at"):
            return str(data.get("published_at"))
    return None


def record_override(
    staged: str | os.PathLike[str],
    *,
    by: str,
    reason: str,
    failed: list[str],
    moment: datetime | None = None,
) -> dict[str, Any]:
    """Record in the access log that ``by`` published the release although it was not ready.

    The record goes beside the pre-release access records (and so into the live
    ``pre_release_access.json``): ``kind: "readiness-override"``, who, why, which checks failed.
    """
    folder = Path(staged)
    release = read_manifest(folder)["release"]
    at = (moment or _utcnow()).astimezone(UTC).isoformat()
    record = {
        "kind": "readiness-override",
        "name": by,
        "role": "publisher",
        "reason": f"published although NOT READY ({', '.join(failed)}): {reason.strip()}",
        "granted_by": by,
        "granted_at": at,
        "failed_checks": list(failed),
    }
    with _locked(folder):
        records = read_access_log(folder)
        records.append(record)
        doc = {"schema": 1, "release": release.get("release_date", folder.name), "records": records}
        atomic_write_text(folder / ACCESS_LOG_NAME, json.dumps(doc, indent=2) + "\n")
    return record


def grant_access(
    staged: str | os.PathLike[str],
    *,
    name: str,
    reason: str,
    role: str = "",
    granted_by: str | None = None,
    now: Callable[[], datetime] = _utcnow,
) -> dict[str, Any]:
    """Record that ``name`` was given pre-release access to the staged release.

    Parameters
    ----------
    staged : path
        The staged release folder (it must hold ``manifest.json``).
    name, reason : str
        Who, and why (both required: T3.4 asks for the list and the justification).
    role : str
        Their role or organisation.
    granted_by : str, optional
        Who authorised it (default: the operating-system user running the command).
    now : callable
        Clock returning an aware UTC datetime (injected in tests).

    Returns
    -------
    dict
        The record written: ``name, role, reason, granted_by, granted_at``.

    Raises
    ------
    InputError
        When ``name`` or ``reason`` is empty.
    ReleaseError
        When the release is already published or its slot has passed.
    """
    folder = Path(staged)
    for key, value in (("name", name), ("reason", reason)):
        if not isinstance(value, str) or not value.strip():
            raise InputError(
                f"pre-release access needs a non-empty {key}, got {value!r}",
                column=key,
                value=value,
            )
    release = read_manifest(folder)["release"]
    moment = now()
    published = _published(folder)
    if published:
        raise ReleaseError(
            f"release {folder.name} was published at {published}; pre-release "
            "access can no longer be granted (the release is public)"
        )
    slot_text = release.get("slot")
    if slot_text:
        slot = datetime.fromisoformat(str(slot_text))
        if moment >= slot:
            raise ReleaseError(
                f"the slot of release {folder.name} ({slot.isoformat()}) has passed "
                f"(now {moment.isoformat()}); pre-release access is closed"
            )
    record = {
        "name": name.strip(),
        "role": role.strip(),
        "reason": reason.strip(),
        "granted_by": (granted_by or getpass.getuser()).strip(),
        "granted_at": moment.astimezone(UTC).isoformat(),
    }
    with _locked(folder):
        records = read_access_log(folder)
        records.append(record)
        doc = {"schema": 1, "release": release.get("release_date", folder.name), "records": records}
        atomic_write_text(folder / ACCESS_LOG_NAME, json.dumps(doc, indent=2) + "\n")
    return record
