"""Staged -> live on time: readiness gate, embargo, one publisher per target, atomic switch,
verification, retries, fallbacks, breach hook.

:func:`publish` first runs the readiness checks on the staged folder (the readiness checks, the
release-contents check and, with a public key, the manifest signature) and refuses a release that
is not ready unless an override with a reason is given (recorded in the publish log and the access
log). It waits for the slot (never earlier: the embargo), then, holding the target's lock for the
rest of the run, runs the target's steps ``prepare -> upload -> switch -> verify``. Before the
switch it compares the live release with this one: the live release never goes back to an older
slot unless a rollback to this release is asked for by name. A failed attempt is retried with exponential backoff and
jitter; after ``fallback_after`` seconds on one target the next target is tried, round-robin, until
the release is live and verified or ``give_up`` has passed. If it is not live by ``slot + deadline``
the breach hook is called once (change notice, breach report, e-mails: :mod:`.breach`), and the
retries go on so that the late release is published as soon as a target recovers; the hook is called
again with the actual publication time.

Everything is recorded in ``STAGED/publish_log.jsonl`` (:mod:`.publog`: append-only JSON Lines,
one fsynced record per line, under a lock; a re-run appends a new run). A slot missed for any cause
(every target failing, a refusal, a lock held by another publisher) gets the breach paperwork.
Publishing on a fallback reports the main target as stale (``excessmort resync`` brings it up to
date). Publishing the same release again changes nothing on the target.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import os
import random
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..exceptions import InputError, ReleaseError
from ..report.manifest import METADATA_FILES, is_atomic_temp
from .config import RetryPolicy
from .publog import PUBLISH_LOG_NAME, append_record, read_publish_log, start_run
from .targets import (
    DirectoryTarget,
    PublishError,
    StagedRelease,
    Target,
    _order_key,
    checkpoint,
    describe_os_error,
)

if TYPE_CHECKING:
    from ..report.readiness import Readiness

__all__ = [
    "PUBLISH_LOG_NAME",
    "Attempt",
    "BreachHook",
    "MissedSlot",
    "PublishResult",
    "ResyncResult",
    "publish",
    "read_publish_log",
    "resync",
]

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
    run: int = 0
    #: why the run stopped without publishing (``None`` while it retries or once published)
    stopped: str | None = None
    #: readiness checks that failed (a refusal, or an override)
    not_ready: list[str] = field(default_factory=list)
    #: targets left serving another release by a fallback
    stale: list[str] = field(default_factory=list)


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
    refused: bool = False
    readiness: Any = None
    override: str | None = None
    stale: dict[str, str | None] = field(default_factory=dict)


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
    logger: logging.Logger,
) -> None:
    # the paperwork must never stop the publishing: a failing hook is logged and recorded
    name = getattr(hook, "__name__", str(hook))
    try:
        hook(info)
    except Exception as exc:
        logger.error("breach paperwork step %s failed: %s", name, exc)
        with contextlib.suppress(OSError):
            append_record(
                info.staged,
                {"event": "hook_error", "run": info.run, "hook": name, "error": repr(exc)},
            )


def _holder(release: StagedRelease) -> str:
    since = datetime.now(UTC).isoformat(timespec="seconds")
    return f"{socket.gethostname()} pid {os.getpid()} publishing {release.release_id} since {since}"


def _clean_staged_temps(root: Path, older_than: float = 60.0) -> list[str]:
    """Remove atomic-write temporaries of metadata files left by killed runs (older than a minute:
    a live write lasts milliseconds)."""
    removed: list[str] = []
    limit = time.time() - older_than
    for path in root.iterdir():
        name = path.name
        if not is_atomic_temp(name) or not any(name.startswith(f".{m}.") for m in METADATA_FILES):
            continue
        with contextlib.suppress(OSError):
            if path.is_file() and not path.is_symlink() and path.lstat().st_mtime < limit:
                path.unlink()
                removed.append(name)
    return removed


def _live_of(target: Target) -> str | None:
    try:
        return target.live_release()
    except Exception:  # a network target that cannot be reached: unknown
        return "unknown (target unreachable)"


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
    check_ready: bool = True,
    readiness: Readiness | None = None,
    force_unready: str | None = None,
    rollback_to: str | None = None,
    public_key: str | os.PathLike[str] | None = None,
    lock_timeout: float | None = None,
) -> PublishResult:
    """Publish a staged release at its slot, atomically, verified, with retries and fallbacks.

    Parameters
    ----------
    staged_dir : path
        The staged release (its files must match ``manifest.json``).
    target : Target or path
        The main target; a path means a :class:`~excessmort.release.targets.DirectoryTarget`.
    fallbacks : sequence of Target or path
        Tried in turn when the main target keeps failing for ``retry.fallback_after_seconds``.
    slot : datetime, optional
        Aware release time; default ``release.slot`` from the manifest. Nothing is published before
        it, and it may not be earlier than the manifest's slot (a delayed slot may be later).
    deadline : timedelta
        Grace after the slot; not live and verified by ``slot + deadline`` is a breach.
    retry : RetryPolicy
        Backoff (initial, factor, max, jitter), time per target before falling back, give-up time,
        and ``lock_wait_seconds`` (how long to wait for another publisher's lock).
    breach : BreachHook, optional
        Told when the slot is missed and when the late release goes live.
    now, sleep, rng : callables
        Clock (aware UTC), sleeper and random source, injected in tests.
    logger : logging.Logger
        Where progress is logged.
    check_ready : bool
        Run the readiness gate (default). ``False`` skips it (recorded in the log); for tests and
        callers that checked already.
    readiness : Readiness, optional
        A verdict computed by the caller (``excessmort release`` checks right after staging);
        default: :func:`~excessmort.report.contents.full_check` on the staged folder.
    force_unready : str, optional
        Publish although the release is not ready; the reason is recorded in the publish log and
        the access log (and so in the live ``pre_release_access.json``).
    rollback_to : str, optional
        The id of this release, to let it replace a newer live release (a rollback by name).
    public_key : path, optional
        Ed25519 public key: the manifest's signature is checked by the gate and before the switch.
    lock_timeout : float, optional
        Seconds to wait for a target's lock (default ``retry.lock_wait_seconds``).

    Returns
    -------
    PublishResult
        ``published`` false when refused (not ready, bad signature) or when every target failed
        until ``give_up`` (or refused for good: locked by another publisher, a newer release live,
        ``current`` not a symlink).

    Raises
    ------
    ReleaseError
        When the staged release is missing or damaged, the slot is unknown or earlier than the
        pre-announced one, or ``rollback_to`` names another release.
    InputError
        When ``force_unready`` is given but empty.
    """
    release = StagedRelease.load(staged_dir)
    slot_at = _slot_of(release, slot)
    deadline_at = slot_at + deadline
    timeout = retry.http_timeout_seconds
    wait_lock = retry.lock_wait_seconds if lock_timeout is None else lock_timeout
    rotation = [_as_target(t, timeout) for t in (target, *fallbacks)]
    if rollback_to is not None and rollback_to != release.release_id:
        raise ReleaseError(
            f"rollback to {rollback_to!r} asked for, but {release.root} is release "
            f"{release.release_id!r}: name the release you are publishing"
        )
    if force_unready is not None and not force_unready.strip():
        raise InputError(
            "an override of the readiness gate needs a reason",
            column="--reason",
            value=force_unready,
        )
    random_source = rng or random.Random()
    root = release.root
    log_path = root / PUBLISH_LOG_NAME
    history = read_publish_log(root)
    previous_breach = bool(history.get("breached")) and history.get("release_id") in (
        None,
        release.release_id,
    )
    run_no = start_run(
        root,
        {
            "release_id": release.release_id,
            "release": release.manifest["release"],
            "slot": _iso(slot_at),
            "deadline": _iso(deadline_at),
            "targets": [t.name for t in rotation],
            "started": _iso(now()),
            "rollback_to": rollback_to,
        },
    )
    result = PublishResult(False, release.release_id, slot_at, deadline_at, log_path=log_path)
    all_attempts = [a for r in history.get("runs", []) for a in r.get("attempts", [])]
    not_ready: list[str] = []
    tried: list[str] = []

    def record(event: str, **fields: Any) -> None:
        append_record(root, {"event": event, "run": run_no, **fields})

    def status(name: str) -> None:
        record("status", status=name)
        checkpoint(f"log:{name}")

    def info(detected: datetime, stopped: str | None = None) -> MissedSlot:
        return MissedSlot(
            root,
            dict(release.manifest["release"]),
            release.release_id,
            slot_at,
            deadline_at,
            detected,
            [t.name for t in rotation],
            list(all_attempts),
            result.published_at,
            result.target,
            run=run_no,
            stopped=stopped,
            not_ready=list(not_ready),
            stale=list(result.stale),
        )

    def declare_breach(moment: datetime, stopped: str | None = None) -> None:
        result.breached = True
        record("breach", detected_at=_iso(moment), stopped=stopped)
        logger.error(
            "slot %s missed: %s is not live by %s%s",
            slot_at.isoformat(),
            release.release_id,
            deadline_at.isoformat(),
            f" ({stopped})" if stopped else "",
        )
        if breach is not None:
            _call_hook(breach.missed, info(moment, stopped), logger)

    def give_up(error: str | None, final: str = "failed") -> PublishResult:
        result.error = error
        moment = now()
        if not result.breached and not previous_breach and moment >= slot_at:
            # the slot has come and this run stops without the release live: whatever the cause,
            # the slot is missed (nothing will publish it before the deadline)
            declare_breach(moment, stopped=error)
        record("finished", outcome=final, error=error)
        status(final)
        logger.error("%s could not be published: %s", release.release_id, error)
        return result

    removed = _clean_staged_temps(root)
    if removed:
        record("cleaned", removed=removed)

    # -- the gate: readiness, contents, signature --------------------------------------------------
    if check_ready:
        if readiness is None:
            from ..report.contents import full_check

            main = rotation[0]
            live_root = main.root if isinstance(main, DirectoryTarget) else None
            readiness = full_check(root, live_root=live_root, now=now(), public_key=public_key)
        failed = [c for c in readiness.checks if c.verdict == "fail"]
        not_ready = [f"{c.name}: {c.message}" for c in failed]
        result.readiness = readiness
        record(
            "readiness",
            checked=True,
            ready=not failed,
            failed=[{"name": c.name, "message": c.message} for c in failed],
            warnings=[c.name for c in readiness.checks if c.verdict == "warn"],
        )
        if failed and force_unready is None:
            result.refused = True
            names = ", ".join(c.name for c in failed)
            record("refused", why="not ready", failed=[c.name for c in failed])
            return give_up(f"not ready: {names} failed", "refused")
        if failed:
            from .access import record_override

            who = getpass.getuser()
            result.override = force_unready.strip() if force_unready else None
            record("override", reason=result.override, by=who, failed=[c.name for c in failed])
            record_override(
                root,
                by=who,
                reason=result.override or "",
                failed=[c.name for c in failed],
                moment=now(),
            )
            release = release.reloaded()
            logger.warning(
                "publishing %s although NOT READY (%s): %s",
                release.release_id,
                ", ".join(c.name for c in failed),
                result.override,
            )
    else:
        record("readiness", checked=False)
    if public_key is not None and not check_ready:
        from ..report.signing import SIGNATURE_NAME, verify_signature

        try:
            verify_signature(
                release.extras["manifest.json"], release.extras.get(SIGNATURE_NAME), public_key
            )
        except ReleaseError as exc:
            result.refused = True
            record("refused", why=f"signature: {exc}")
            return give_up(f"signature: {exc}", "refused")

    status("waiting")
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
    status("publishing")

    holder = _holder(release)
    locks = contextlib.ExitStack()
    held: set[int] = set()

    where = ["lock"]

    def attempt_on(index: int, tgt: Target) -> str:
        """Run the steps on one target (``where[0]``: the step running); raise on failure."""
        where[0] = "lock"
        if index not in held:
            lock = getattr(tgt, "lock", None)
            if lock is not None:
                locks.enter_context(lock(holder, wait_lock))
            held.add(index)
        where[0] = "prepare"
        tgt.prepare(release)
        where[0] = "order"
        live_manifest = getattr(tgt, "live_manifest", None)
        live = live_manifest() if live_manifest is not None else None
        live_id = tgt.live_release()
        if (
            live is not None
            and live_id != release.release_id
            and _order_key(live) > release.order_key
            and rollback_to != release.release_id
        ):
            discard = getattr(tgt, "discard", None)
            if discard is not None:  # this run's own partial copy will not be used
                discard(release)
            raise PublishError(
                f"{tgt.name} serves {live_id} (slot {_order_key(live)[0]}), newer than "
                f"{release.release_id} (slot {release.order_key[0]}): refusing to go back to "
                f"an older release; to roll back on purpose, name it: --rollback-to "
                f"{release.release_id}",
                step="order",
                retryable=False,
            )
        where[0] = "upload"
        tgt.upload(release)
        if public_key is not None:
            from ..report.signing import SIGNATURE_NAME, verify_signature

            where[0] = "signature"
            try:
                verify_signature(
                    release.extras["manifest.json"], release.extras.get(SIGNATURE_NAME), public_key
                )
            except ReleaseError as exc:
                raise PublishError(str(exc), step="signature", retryable=False) from None
        where[0] = "switch"
        tgt.switch(release)
        where[0] = "verify"
        tgt.verify(release)
        return "done"

    active = list(range(len(rotation)))
    position = 0
    window_start = start
    backoff_k = [0] * len(rotation)  # per target, kept across turns: long outages back off fully
    with locks:
        for n in range(1, MAX_ATTEMPTS + 1):
            index = active[position]
            tgt = rotation[index]
            if tgt.name not in tried:
                tried.append(tgt.name)
            started = now()
            step = "lock"
            error: str | None = None
            retryable = True
            try:
                step = attempt_on(index, tgt)
            except PublishError as exc:
                step, error, retryable = exc.step, _error_text(exc), exc.retryable
            except (OSError, ReleaseError) as exc:
                step, error = where[0], _error_text(exc)
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
            record("attempt", **asdict(attempt))
            all_attempts.append(asdict(attempt))
            if error is None:
                result.published, result.target, result.published_at = True, tgt.name, finished
                result.late = finished > deadline_at
                record(
                    "published",
                    target=tgt.name,
                    published_at=_iso(finished),
                    late=result.late,
                    live=tgt.live_release(),
                )
                logger.info(
                    "%s is live on %s (verified) at %s",
                    release.release_id,
                    tgt.name,
                    finished.isoformat(),
                )
                if index != 0:  # on a fallback: the main target (and others tried) lag behind
                    for other in rotation:
                        if other is tgt or (other is not rotation[0] and other.name not in tried):
                            continue
                        live_there = _live_of(other)
                        if live_there != release.release_id:
                            result.stale[other.name] = live_there
                            record("stale", target=other.name, live=live_there)
                            logger.warning(
                                "target %s still serves %s, not %s: bring it up to date with "
                                "`excessmort resync %s`",
                                other.name,
                                live_there,
                                release.release_id,
                                root,
                            )
                if result.late and breach is not None:
                    if not (result.breached or previous_breach):
                        declare_breach(finished)
                    _call_hook(breach.published, info(finished), logger)
                elif result.late and not (result.breached or previous_breach):
                    declare_breach(finished)
                record("finished", outcome="published")
                status("published")
                return result
            logger.warning("attempt %d on %s failed at %s: %s", n, tgt.name, step, error)
            dropped = not retryable
            if not retryable:
                active.pop(position)
                if not active:
                    return give_up(error)
                position %= len(active)
                window_start = finished
            clock = now()
            if not result.breached and not previous_breach and clock >= deadline_at:
                status("late")
                declare_breach(clock)
            status("late" if clock >= deadline_at else "retrying")
            if clock >= give_up_at:
                return give_up(error)
            if dropped and backoff_k[active[position]] == 0:
                continue  # the next target has not failed yet: no reason to wait before trying it
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
        return give_up(f"gave up after {MAX_ATTEMPTS} attempts")


@dataclass
class ResyncResult:
    """Outcome of :func:`resync`: per target, what it served before and what happened."""

    release_id: str
    targets: dict[str, str] = field(default_factory=dict)
    ok: bool = True


def resync(
    staged_dir: str | os.PathLike[str],
    targets: Sequence[Target | str | os.PathLike[str]],
    *,
    retry: RetryPolicy = DEFAULT_RETRY,
    lock_timeout: float | None = None,
    public_key: str | os.PathLike[str] | None = None,
    logger: logging.Logger = log,
) -> ResyncResult:
    """Bring targets left behind by a fallback up to date with an already published release.

    The release must have been published (on any target): it is public, so there is no embargo
    and no readiness gate to pass again. Each target that does not serve it gets the steps
    ``prepare -> upload -> switch -> verify`` under its lock; a target serving a newer release is
    left alone (never back to an older release), one serving it already is not touched. Every
    outcome is recorded in the publish log (``resynced`` or ``resync-failed``).

    Raises
    ------
    ReleaseError
        When the staged release is damaged or was never published.
    """
    release = StagedRelease.load(staged_dir)
    history = read_publish_log(release.root)
    if not history.get("published_at") or history.get("release_id") != release.release_id:
        raise ReleaseError(
            f"{release.root} ({release.release_id}) has not been published yet: use "
            "`excessmort publish`, which waits for the slot and runs the readiness checks"
        )
    if public_key is not None:
        from ..report.signing import SIGNATURE_NAME, verify_signature

        verify_signature(
            release.extras["manifest.json"], release.extras.get(SIGNATURE_NAME), public_key
        )
    wait = retry.lock_wait_seconds if lock_timeout is None else lock_timeout
    out = ResyncResult(release.release_id)
    run = start_run(release.root, {"release_id": release.release_id, "resync": True})
    holder = _holder(release)
    for spec in targets:
        tgt = _as_target(spec, retry.http_timeout_seconds)
        step = "lock"
        try:
            lock = getattr(tgt, "lock", None)
            with lock(holder, wait) if lock is not None else contextlib.nullcontext():
                before = tgt.live_release()
                if before == release.release_id:
                    out.targets[tgt.name] = "up to date"
                    append_record(
                        release.root,
                        {"event": "resynced", "run": run, "target": tgt.name, "was": before},
                    )
                    continue
                live = tgt.live_manifest()
                if live is not None and _order_key(live) > release.order_key:
                    out.targets[tgt.name] = f"left alone: serves the newer {before}"
                    append_record(
                        release.root,
                        {
                            "event": "resynced",
                            "run": run,
                            "target": tgt.name,
                            "was": before,
                            "newer": True,
                        },
                    )
                    continue
                for name in ("prepare", "upload", "switch", "verify"):
                    step = name
                    getattr(tgt, name)(release)
                out.targets[tgt.name] = f"updated from {before or 'nothing'}"
                append_record(
                    release.root,
                    {"event": "resynced", "run": run, "target": tgt.name, "was": before},
                )
                logger.info(
                    "resynced %s: %s is live (was %s)", tgt.name, release.release_id, before
                )
        except (PublishError, OSError, ReleaseError) as exc:
            out.ok = False
            out.targets[tgt.name] = f"FAILED at {step}: {_error_text(exc)}"
            append_record(
                release.root,
                {
                    "event": "resync-failed",
                    "run": run,
                    "target": tgt.name,
                    "step": step,
                    "error": _error_text(exc),
                },
            )
    return out
