"""Staged -> live on time: embargo, atomic switch, verification, retries, fallbacks, breach hook.

:func:`publish` waits for the slot (never earlier: the embargo), then runs the target's steps
``prepare -> upload -> switch -> verify``. A failed attempt is retried with exponential backoff and
jitter; after ``fallback_after`` seconds on one target the next target is tried, round-robin, until
the release is live and verified or ``give_up`` has passed. If it is not live by ``slot + deadline``
the breach hook is called once (change notice, breach report, e-mails: :mod:`.breach`), and the
retries go on so that the late release is published as soon as a target recovers; the hook is called
again with the actual publication time.

Every attempt is recorded with its times in ``STAGED/publish_log.json`` (atomic writes; a re-run
appends a new run). Publishing the same release again changes nothing on the target.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from .._atomic import atomic_write_text
from ..exceptions import ReleaseError
from .config import RetryPolicy
from .targets import (
    DirectoryTarget,
    PublishError,
    StagedRelease,
    Target,
    checkpoint,
    describe_os_error,
)

__all__ = [
    "PUBLISH_LOG_NAME",
    "Attempt",
    "BreachHook",
    "MissedSlot",
    "PublishResult",
    "publish",
    "read_publish_log",
]

PUBLISH_LOG_NAME = "publish_log.json"
MAX_ATTEMPTS = 10_000
DEFAULT_RETRY = RetryPolicy()
log = logging.getLogger("excessmort.publish")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


@dataclass
class Attempt:
    """One try at one target."""

    n: int
    run: int
    target: str
    started: str
    finished: str
    ok: bool
    step: str
    error: str | None = None


@dataclass
class MissedSlot:
    """What the breach hook is told: the release, its slot, and what has happened so far."""

    staged: Path
    release: dict[str, Any]
    release_id: str
    slot: datetime
    deadline_at: datetime
    detected_at: datetime
    targets: list[str]
    attempts: list[dict[str, Any]]
    published_at: datetime | None = None
    published_to: str | None = None


class BreachHook(Protocol):
    """Called when the slot is missed, and again when the late release is live."""

    def missed(self, info: MissedSlot) -> None:
        """The deadline passed with the release not live and verified."""

    def published(self, info: MissedSlot) -> None:
        """The late release is now live (``info.published_at``, ``info.published_to``)."""


@dataclass
class PublishResult:
    """Outcome of :func:`publish`."""

    published: bool
    release_id: str
    slot: datetime
    deadline_at: datetime
    target: str | None = None
    published_at: datetime | None = None
    late: bool = False
    breached: bool = False
    attempts: list[Attempt] = field(default_factory=list)
    log_path: Path | None = None
    error: str | None = None


def read_publish_log(staged: str | os.PathLike[str]) -> dict[str, Any]:
    """The attempt log of a staged release (``{}`` when it was never published)."""
    path = Path(staged) / PUBLISH_LOG_NAME
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ReleaseError(f"{path} is not valid JSON ({exc})") from None
    return data if isinstance(data, dict) else {}


def _as_target(spec: Target | str | os.PathLike[str], timeout: float) -> Target:
    if isinstance(spec, str) and "://" in spec:
        from .target_url import target_from_url

        return target_from_url(spec, http_timeout=timeout)
    if isinstance(spec, str | os.PathLike):
        path = Path(spec)
        return DirectoryTarget(path.name or str(path), path, http_timeout=timeout)
    return spec


def _aware(moment: datetime, what: str) -> datetime:
    if moment.tzinfo is None:
        raise ReleaseError(f"{what} {moment.isoformat()} has no time zone; give an aware datetime")
    return moment


def _slot_of(release: StagedRelease, slot: datetime | None) -> datetime:
    text = release.manifest["release"].get("slot")
    announced = _aware(datetime.fromisoformat(str(text)), "manifest release.slot") if text else None
    if slot is None:
        if announced is None:
            raise ReleaseError(
                f"{release.root / 'manifest.json'} has no release.slot; pass the slot"
            )
        return announced
    slot = _aware(slot, "slot")
    if announced is not None and slot < announced:
        raise ReleaseError(
            f"refusing to publish at {slot.isoformat()}, before the pre-announced "
            f"slot {announced.isoformat()}: that would break the embargo"
        )
    return slot


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, PublishError):
        return str(exc)
    if isinstance(exc, OSError):
        return describe_os_error(exc)
    return f"{type(exc).__name__}: {exc}"


def _call_hook(
    hook: Callable[[MissedSlot], None],
    info: MissedSlot,
    run: dict[str, Any],
    logger: logging.Logger,
) -> None:
    # the paperwork must never stop the publishing: a failing hook is logged and recorded
    try:
        hook(info)
    except Exception as exc:
        logger.error("breach paperwork step %s failed: %s", getattr(hook, "__name__", hook), exc)
        run.setdefault("hook_errors", []).append(f"{getattr(hook, '__name__', hook)}: {exc!r}")


def publish(
    staged_dir: str | os.PathLike[str],
    target: Target | str | os.PathLike[str],
    *,
    fallbacks: Sequence[Target | str | os.PathLike[str]] = (),
    slot: datetime | None = None,
    deadline: timedelta = timedelta(minutes=15),
    retry: RetryPolicy = DEFAULT_RETRY,
    breach: BreachHook | None = None,
    now: Callable[[], datetime] = _utcnow,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
    logger: logging.Logger = log,
) -> PublishResult:
    """Publish a staged release at its slot, atomically, verified, with retries and fallbacks.

    Parameters
    ----------
    staged_dir : path
        The staged release (its files must match ``manifest.json``).
    target : Target or path
        The main target; a path means a :class:`~excessmort.report.targets.DirectoryTarget`.
    fallbacks : sequence of Target or path
        Tried in turn when the main target keeps failing for ``retry.fallback_after_seconds``.
    slot : datetime, optional
        Aware release time; default ``release.slot`` from the manifest. Nothing is published before
        it, and it may not be earlier than the manifest's slot (a delayed slot may be later).
    deadline : timedelta
        Grace after the slot; not live and verified by ``slot + deadline`` is a breach.
    retry : RetryPolicy
        Backoff (initial, factor, max, jitter), time per target before falling back, give-up time.
    breach : BreachHook, optional
        Told when the slot is missed and when the late release goes live.
    now, sleep, rng : callables
        Clock (aware UTC), sleeper and random source, injected in tests.
    logger : logging.Logger
        Where progress is logged.

    Returns
    -------
    PublishResult
        ``published`` false only when every target failed until ``give_up`` (or refused for good).

    Raises
    ------
    ReleaseError
        When the staged release is missing or damaged, or the slot is unknown or earlier than the
        pre-announced one.
    """
    release = StagedRelease.load(staged_dir)
    slot_at = _slot_of(release, slot)
    deadline_at = slot_at + deadline
    timeout = retry.http_timeout_seconds
    rotation = [_as_target(t, timeout) for t in (target, *fallbacks)]
    random_source = rng or random.Random()
    log_path = release.root / PUBLISH_LOG_NAME
    doc = read_publish_log(release.root)
    runs = doc.get("runs", []) if doc.get("release_id") == release.release_id else []
    run_no = len(runs) + 1
    run: dict[str, Any] = {"run": run_no, "started": _iso(now()), "attempts": []}
    runs.append(run)
    all_attempts = [a for r in runs for a in r["attempts"]]
    result = PublishResult(False, release.release_id, slot_at, deadline_at, log_path=log_path)
    previous_breach = any(r.get("breached") for r in runs[:-1])

    def write_log(status: str) -> None:
        document = {
            "schema": 1,
            "release_id": release.release_id,
            "release": release.manifest["release"],
            "slot": _iso(slot_at),
            "deadline": _iso(deadline_at),
            "targets": [t.name for t in rotation],
            "status": status,
            "published_at": _iso(result.published_at),
            "published_to": result.target,
            "breached": result.breached or previous_breach,
            "runs": runs,
        }
        atomic_write_text(log_path, json.dumps(document, indent=2) + "\n")
        checkpoint(f"log:{status}")

    def info(detected: datetime) -> MissedSlot:
        return MissedSlot(
            release.root,
            dict(release.manifest["release"]),
            release.release_id,
            slot_at,
            deadline_at,
            detected,
            [t.name for t in rotation],
            list(all_attempts),
            result.published_at,
            result.target,
        )

    write_log("waiting")
    # -- embargo: never before the slot -----------------------------------------------------------
    for _ in range(10_000_000):
        remaining = (slot_at - now()).total_seconds()
        if remaining <= 0:
            break
        logger.info(
            "embargo: %s waits %.0f s for its slot %s",
            release.release_id,
            remaining,
            slot_at.isoformat(),
        )
        sleep(min(remaining, 60.0))
    start = now()
    give_up_at = max(start, slot_at) + timedelta(hours=retry.give_up_hours)
    logger.info("publishing %s to %s", release.release_id, ", ".join(t.name for t in rotation))
    write_log("publishing")

    active = list(range(len(rotation)))
    position = 0
    window_start = start
    backoff_k = [0] * len(rotation)  # per target, kept across turns: long outages back off fully
    for n in range(1, MAX_ATTEMPTS + 1):
        tgt = rotation[active[position]]
        started = now()
        step = "prepare"
        error: str | None = None
        retryable = True
        try:
            tgt.prepare(release)
            step = "upload"
            tgt.upload(release)
            step = "switch"
            tgt.switch(release)
            step = "verify"
            tgt.verify(release)
            step = "done"
        except PublishError as exc:
            step, error, retryable = exc.step, _error_text(exc), exc.retryable
        except (OSError, ReleaseError) as exc:
            error = _error_text(exc)
        finished = now()
        attempt = Attempt(
            n,
            run_no,
            tgt.name,
            _iso(started) or "",
            _iso(finished) or "",
            error is None,
            step,
            error,
        )
        result.attempts.append(attempt)
        run["attempts"].append(asdict(attempt))
        all_attempts.append(asdict(attempt))
        if error is None:
            result.published, result.target, result.published_at = True, tgt.name, finished
            result.late = finished > deadline_at
            run["finished"] = _iso(finished)
            logger.info(
                "%s is live on %s (verified) at %s",
                release.release_id,
                tgt.name,
                finished.isoformat(),
            )
            if result.late and breach is not None:
                if not (result.breached or previous_breach):
                    result.breached = True
                    run["breached"] = True
                    _call_hook(breach.missed, info(finished), run, logger)
                _call_hook(breach.published, info(finished), run, logger)
            write_log("published")
            return result
        logger.warning("attempt %d on %s failed at %s: %s", n, tgt.name, step, error)
        if not retryable:
            active.pop(position)
            if not active:
                result.error = error
                break
            position %= len(active)
            window_start = finished
        clock = now()
        if not result.breached and not previous_breach and clock >= deadline_at:
            result.breached = True
            run["breached"] = True
            write_log("late")
            logger.error(
                "slot %s missed: %s is not live by %s",
                slot_at.isoformat(),
                release.release_id,
                deadline_at.isoformat(),
            )
            if breach is not None:
                _call_hook(breach.missed, info(clock), run, logger)
        write_log("late" if clock >= deadline_at else "retrying")
        if clock >= give_up_at:
            result.error = error
            break
        if (
            retryable
            and len(active) > 1
            and (clock - window_start).total_seconds() >= (retry.fallback_after_seconds)
        ):
            position = (position + 1) % len(active)
            window_start = clock
            logger.warning("falling back to %s", rotation[active[position]].name)
            continue
        k = backoff_k[active[position]]
        delay = min(retry.max_seconds, retry.initial_seconds * retry.factor ** min(k, 64))
        delay *= 1 + retry.jitter * random_source.uniform(-1.0, 1.0)
        backoff_k[active[position]] = k + 1
        limits = [give_up_at]
        if len(active) > 1:
            limits.append(window_start + timedelta(seconds=retry.fallback_after_seconds))
        if not result.breached and not previous_breach:
            limits.append(deadline_at)
        room = min((lim - clock).total_seconds() for lim in limits)
        sleep(max(0.0, min(delay, room)))
    else:
        result.error = f"gave up after {MAX_ATTEMPTS} attempts"
    run["finished"] = _iso(now())
    write_log("failed")
    logger.error("%s could not be published: %s", release.release_id, result.error)
    return result
