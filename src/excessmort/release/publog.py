"""The publish log of a staged release: append-only JSON Lines, one fsynced record per line.

``STAGED/publish_log.jsonl`` gets one JSON object per line for everything a publish run does: the
run starting (host, pid, targets, slot), the readiness verdict or its override, every attempt with
its times, each status change, the breach being declared, the paperwork written, every e-mail sent
or failed, a main target left stale by a fallback, the run finishing. Each record is appended with
``O_APPEND`` while holding an exclusive ``flock`` on the log file and fsynced before the lock is
released, so concurrent publishers of the same staged release never lose each other's records and a
SIGKILL loses at most the line being written (a torn last line is skipped by the reader and the next
writer starts a fresh line).

:func:`read_publish_log` folds the records into the summary the rest of the pipeline reads
(``status``, ``published_at``, ``published_to``, ``breached``, ``runs`` with their ``attempts``),
and still reads the single-document ``publish_log.json`` written by earlier versions.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..exceptions import ReleaseError

__all__ = [
    "OLD_PUBLISH_LOG_NAME",
    "PUBLISH_LOG_NAME",
    "append_record",
    "read_publish_log",
    "read_records",
    "start_run",
]

PUBLISH_LOG_NAME = "publish_log.jsonl"
#: The single-JSON-document log of earlier versions (read, never written).
OLD_PUBLISH_LOG_NAME = "publish_log.json"
SCHEMA = 2


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


@contextlib.contextmanager
def _locked_log(staged: Path) -> Iterator[int]:
    path = staged / PUBLISH_LOG_NAME
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        raise ReleaseError(
            f"cannot write the publish log {path}: {exc.strerror or exc} (nothing is published "
            "without its log)"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    except OSError as exc:
        raise ReleaseError(f"cannot write the publish log {path}: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _write_line(fd: int, path: Path, record: Mapping[str, Any]) -> None:
    line = json.dumps(record, sort_keys=True, default=str) + "\n"
    prefix = ""
    size = os.fstat(fd).st_size
    if size:
        with open(path, "rb") as fh:  # a torn last line (SIGKILL mid-write): start afresh
            fh.seek(size - 1)
            if fh.read(1) != b"\n":
                prefix = "\n"
    data = (prefix + line).encode("utf-8")
    written = 0
    while written < len(data):
        written += os.write(fd, data[written:])
    os.fsync(fd)


def append_record(staged: str | os.PathLike[str], record: Mapping[str, Any]) -> dict[str, Any]:
    """Append one record (with ``schema`` and ``at`` added when missing); return it."""
    base = Path(staged)
    full = {"schema": SCHEMA, "at": _now_iso(), **record}
    with _locked_log(base) as fd:
        _write_line(fd, base / PUBLISH_LOG_NAME, full)
    return full


def start_run(staged: str | os.PathLike[str], record: Mapping[str, Any]) -> int:
    """Append the ``run`` record of a new run, numbered under the lock; return its number."""
    base = Path(staged)
    with _locked_log(base) as fd:
        runs = {r.get("run") for r in read_records(base) if r.get("event") == "run"}
        runs |= {r.get("run") for r in _old_runs(base)}
        number = max((int(n) for n in runs if isinstance(n, int)), default=0) + 1
        full = {
            "schema": SCHEMA,
            "at": _now_iso(),
            "event": "run",
            "run": number,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            **record,
        }
        _write_line(fd, base / PUBLISH_LOG_NAME, full)
    return number


def read_records(staged: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every record of the JSON Lines log, in file order (a torn line is skipped)."""
    path = Path(staged) / PUBLISH_LOG_NAME
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise ReleaseError(f"cannot read the publish log {path}: {exc.strerror or exc}") from None
    records: list[dict[str, Any]] = []
    for line in raw.splitlines():
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue  # torn by a kill mid-write
        if isinstance(value, dict):
            records.append(value)
    return records


def _old_document(staged: Path) -> dict[str, Any]:
    path = staged / OLD_PUBLISH_LOG_NAME
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ReleaseError(f"{path} is not valid JSON ({exc})") from None
    return data if isinstance(data, dict) else {}


def _old_runs(staged: Path) -> list[dict[str, Any]]:
    runs = _old_document(staged).get("runs", [])
    return [r for r in runs if isinstance(r, dict)]


def read_publish_log(staged: str | os.PathLike[str]) -> dict[str, Any]:
    """The publish log of a staged release, folded into one summary (``{}`` if never published).

    Returns
    -------
    dict
        ``release_id``, ``release``, ``slot``, ``deadline``, ``targets`` (of the last run),
        ``status`` (the last status recorded), ``published_at`` / ``published_to`` (the last
        publication), ``breached`` (any run declared the slot missed), ``stale`` (targets a
        fallback left behind, until they are resynced), ``runs`` (each with ``attempts``,
        ``hook_errors``, ``mails``, ``readiness``, ``override``) and ``records`` (the raw lines).
    """
    base = Path(staged)
    old = _old_document(base)
    records = read_records(base)
    if not old and not records:
        return {}
    summary: dict[str, Any] = {
        key: old.get(key)
        for key in ("release_id", "release", "slot", "deadline", "targets", "status")
    }
    summary["published_at"] = old.get("published_at")
    summary["published_to"] = old.get("published_to")
    summary["breached"] = bool(old.get("breached"))
    runs: dict[int, dict[str, Any]] = {}
    for r in _old_runs(base):
        runs[int(r.get("run", len(runs) + 1))] = {
            "hook_errors": [],
            "mails": [],
            **r,
            "attempts": list(r.get("attempts", [])),
        }
    stale: dict[str, Any] = {}
    for rec in records:
        n = rec.get("run")
        event = rec.get("event")
        run = runs.setdefault(
            int(n) if isinstance(n, int) else 0,
            {"run": n, "attempts": [], "hook_errors": [], "mails": []},
        )
        if event == "run":
            run.update(
                {
                    "started": rec.get("started", rec.get("at")),
                    "host": rec.get("host"),
                    "pid": rec.get("pid"),
                    "targets": rec.get("targets"),
                }
            )
            for key in ("release_id", "release", "slot", "deadline", "targets"):
                summary[key] = rec.get(key)
        elif event == "attempt":
            run["attempts"].append(
                {k: v for k, v in rec.items() if k not in ("schema", "at", "event")}
            )
        elif event == "status":
            summary["status"] = rec.get("status")
            run["status"] = rec.get("status")
        elif event == "published":
            summary["published_at"] = rec.get("published_at")
            summary["published_to"] = rec.get("target")
            run["finished"] = rec.get("published_at")
            stale.pop(str(rec.get("target")), None)
        elif event == "breach":
            summary["breached"] = True
            run["breached"] = True
        elif event == "hook_error":
            run["hook_errors"].append(f"{rec.get('hook')}: {rec.get('error')}")
        elif event == "mail":
            run["mails"].append(
                {k: v for k, v in rec.items() if k not in ("schema", "event", "run")}
            )
        elif event in ("readiness", "override", "refused", "paperwork"):
            run[event] = {k: v for k, v in rec.items() if k not in ("schema", "event", "run")}
        elif event == "stale":
            stale[str(rec.get("target"))] = {"live": rec.get("live"), "at": rec.get("at")}
        elif event == "resynced":
            stale.pop(str(rec.get("target")), None)
        elif event == "finished":
            run["finished"] = rec.get("at")
    summary["stale"] = stale
    summary["runs"] = [runs[k] for k in sorted(runs)]
    summary["records"] = records
    return summary
