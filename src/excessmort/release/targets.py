"""Publish targets behind one small interface: ``prepare``, ``upload``, ``switch``, ``verify``.

:class:`DirectoryTarget` is a local or mounted folder that a web server serves::

    ROOT/releases/<release-id>/...      one folder per published release (old ones kept)
    ROOT/releases/.<release-id>.partial a copy in progress (completed or rolled back next run)
    ROOT/current -> releases/<release-id>   what the web server serves; swapped atomically
    ROOT/index.html                     entry page sending readers to releases/<release-id>/
    ROOT/.publish-holder.json           who holds the publish lock (flock on ROOT itself)

A new release is copied beside the old one, fsynced, checked against the manifest and renamed into
``releases/``; then a new symlink made at a temporary name is renamed over ``current`` (one atomic
``rename(2)``), so a reader sees the old release or the new, never a mix. Pages link relatively
inside their release, so a reader who enters through ``ROOT/index.html`` (which points at the
immutable ``releases/<release-id>/`` path) keeps reading that release's files even while ``current``
switches. One publisher at a time: :meth:`DirectoryTarget.lock` takes an ``fcntl`` lock on ``ROOT``
for the whole publish, and names its holder to anyone kept waiting. Verification reads every
manifest file under ``current`` and, when the target has a ``base_url``, fetches each one over HTTP
from the web server and compares checksums.

Web servers on other machines are reached over the network with the same steps and guarantees:
:class:`~excessmort.release.sftp.SftpTarget` (the same layout, ``current`` swapped with OpenSSH's
``posix-rename``) and :class:`~excessmort.release.webdav.WebdavTarget` (a pointer page MOVEd over
with ``Overwrite: T``). :mod:`.target_url` builds any of them from a URL (``file://``, ``sftp://``,
``webdav+https://``) or a configuration entry.

Fault injection for tests: a target takes ``fault(step, path)``, called at named steps, which may
raise (``OSError(EROFS)``, ``OSError(ENOSPC)``) or alter files (``after_copy``). The environment
variable ``EXCESSMORT_PUBLISH_KILL_AT=k`` makes the process SIGKILL itself at its k-th checkpoint
and ``EXCESSMORT_PUBLISH_TRACE=FILE`` appends ``k step`` lines, so a test can kill at every step.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import html
import json
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from .._atomic import _fsync_dir, atomic_write_text
from ..exceptions import ReleaseError
from ..report.manifest import (
    MANIFEST_NAME,
    METADATA_FILES,
    is_atomic_temp,
    manifest_digest,
    open_nofollow,
    read_manifest,
    verify_manifest,
)
from .access import read_access_log

__all__ = [
    "ENTRY_PAGE",
    "HOLDER_NAME",
    "DirectoryTarget",
    "PublishError",
    "StagedRelease",
    "Target",
    "checkpoint",
]

ENTRY_PAGE = "index.html"
HOLDER_NAME = ".publish-holder.json"
_ENTRY_MARK = '<meta name="generator" content="excessmort publish">'
SIGNATURE_NAME = "manifest.sig"
KILL_ENV = "EXCESSMORT_PUBLISH_KILL_AT"
TRACE_ENV = "EXCESSMORT_PUBLISH_TRACE"
_checkpoints = 0
Fault = Callable[[str, Path], None]


def checkpoint(step: str) -> None:
    """Mark a publishing step (test hook: trace it, or SIGKILL the process at the k-th one)."""
    global _checkpoints
    _checkpoints += 1
    trace = os.environ.get(TRACE_ENV)
    if trace:
        with open(trace, "a", encoding="utf-8") as fh:
            fh.write(f"{_checkpoints} {step}\n")
    if os.environ.get(KILL_ENV) == str(_checkpoints):
        os.kill(os.getpid(), signal.SIGKILL)


class PublishError(ReleaseError):
    """One publishing step failed; ``retryable`` says whether trying again may help."""

    def __init__(self, message: str, *, step: str, retryable: bool = True) -> None:
        super().__init__(message)
        self.step = step
        self.retryable = retryable


@dataclass(frozen=True)
class StagedRelease:
    """A staged release checked against its manifest, with the extra files that go live with it."""

    root: Path
    manifest: dict[str, Any]
    release_id: str
    extras: Mapping[str, bytes] = field(default_factory=dict)

    @classmethod
    def load(cls, root: str | os.PathLike[str]) -> StagedRelease:
        """Read and verify a staged release.

        Raises
        ------
        ReleaseError
            When the manifest is missing or the staged files do not match it (nothing is published
            from a damaged staging folder).
        """
        base = Path(root)
        linked = sorted(m for m in METADATA_FILES if (base / m).is_symlink())
        if linked:
            raise ReleaseError(
                f"staged release {base} has symlinked metadata ({', '.join(linked)}): a release "
                "holds regular files only"
            )
        manifest = read_manifest(base)
        problems = verify_manifest(base, manifest)
        if problems:
            raise ReleaseError(
                f"staged release {base} does not match its manifest: " + "; ".join(problems[:5])
            )
        release = manifest["release"]
        date = str(release.get("release_date") or base.name)
        release_id = f"{date}-{manifest_digest(manifest)[:12]}"
        access = {"schema": 1, "release": date, "records": read_access_log(base)}
        extras = {
            MANIFEST_NAME: (base / MANIFEST_NAME).read_bytes(),
            "pre_release_access.json": (json.dumps(access, indent=2) + "\n").encode(),
        }
        sig = base / SIGNATURE_NAME
        if sig.is_file() and not sig.is_symlink():
            extras[SIGNATURE_NAME] = sig.read_bytes()
        return cls(base, manifest, release_id, extras)

    def reloaded(self) -> StagedRelease:
        """The same release with its extra files read again (after the access log changed)."""
        return StagedRelease.load(self.root)

    @property
    def order_key(self) -> tuple[str, str]:
        """``(slot, generated_at)`` of the release: a live release with a larger key is newer."""
        return _order_key(self.manifest)

    @property
    def files(self) -> list[str]:
        """Relative paths of the content files."""
        return [str(e["path"]) for e in self.manifest["files"]]


@runtime_checkable
class Target(Protocol):
    """Where a release goes live.

    A target may also offer ``discard(release)`` (optional, looked up with ``getattr``): remove
    this release's partial upload when :func:`~excessmort.release.publish.publish` refuses it
    because a newer release is live.
    """

    name: str

    def prepare(self, release: StagedRelease) -> None:
        """Check the target is reachable and writable; clean up an interrupted earlier attempt."""

    def upload(self, release: StagedRelease) -> None:
        """Put the release's files on the target beside the live one (not yet visible)."""

    def switch(self, release: StagedRelease) -> None:
        """Make the uploaded release the live one in one atomic step."""

    def verify(self, release: StagedRelease) -> None:
        """Check the live release file by file; raise :class:`PublishError` on any difference."""

    def live_release(self) -> str | None:
        """Id of the release that is live now (``None`` when nothing is)."""

    def live_manifest(self) -> dict[str, Any] | None:
        """The ``manifest.json`` of the live release, parsed (``None`` when nothing is live).

        :func:`~excessmort.release.publish.publish` reads its ``release.slot`` and
        ``release.generated_at`` under the lock, before the switch, so that the live release never
        goes back to an older one unless a rollback to that release is asked for by name.
        """

    def lock(self, holder: str, timeout: float) -> contextlib.AbstractContextManager[None]:
        """The one-publisher lock of this target, held for the whole publish.

        ``holder`` describes this publisher (host, pid, release, since); it is stored with the lock
        so that a publisher kept waiting can name who holds it. Waits up to ``timeout`` seconds,
        then raises :class:`PublishError` with ``step="lock"``, ``retryable=False`` and the
        holder's description in the message. A lock left by a killed process must not block the
        next run (an ``fcntl`` lock dies with its process; a lock file on a server needs a lease).
        Raises :class:`PublishError` with ``step="lock"`` and ``retryable=True`` when the target
        cannot be reached to take the lock.
        """


def _order_key(manifest: Mapping[str, Any]) -> tuple[str, str]:
    from datetime import UTC, datetime

    release = manifest.get("release", {}) if isinstance(manifest, Mapping) else {}
    slot = str(release.get("slot") or release.get("release_date") or "")
    with contextlib.suppress(ValueError):
        slot = datetime.fromisoformat(slot).astimezone(UTC).isoformat()
    return slot, str(release.get("generated_at") or "")


def _no_fault(step: str, path: Path) -> None:
    return None


def _copy_file(root: Path, rel: str, dst: Path) -> None:
    """Copy the regular file ``root/rel`` (no symlink followed on the way) to ``dst``, fsynced."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd = open_nofollow(root, rel)
    with os.fdopen(fd, "rb") as fin, open(dst, "wb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)
        fout.flush()
        os.fsync(fout.fileno())


def _same_file(path: Path, entry: Mapping[str, Any]) -> bool:
    if path.is_symlink() or not path.is_file() or path.stat().st_size != int(entry["bytes"]):
        return False
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest() == entry["sha256"]


def entry_page(release_id: str, title: str = "") -> str:
    """The entry page at the target root: it sends readers to the immutable release path."""
    href = f"releases/{html.escape(release_id)}/index.html"
    name = html.escape(title or "Latest release")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"{_ENTRY_MARK}\n"
        f'<meta http-equiv="refresh" content="0; url={href}">\n'
        f'<link rel="canonical" href="{href}">\n<title>{name}</title>\n</head>\n'
        f'<body><p><a href="{href}">{name}: release {html.escape(release_id)}</a></p></body>\n'
        "</html>\n"
    )


def _write_bytes(dst: Path, data: bytes) -> None:
    with open(dst, "wb") as fout:
        fout.write(data)
        fout.flush()
        os.fsync(fout.fileno())


class DirectoryTarget:
    """A local or mounted folder served by a web server (see the module docstring for the layout).

    Parameters
    ----------
    name : str
        Label for logs.
    root : path
        The target root; it must exist (a missing mount is an error, never silently created).
    base_url : str
        URL at which ``ROOT/current`` is served; empty skips HTTP verification.
    http_timeout : float
        Seconds per HTTP request.
    ca_file : path, optional
        PEM bundle of the certificate authorities trusted for an ``https`` base URL, instead of
        the system store (an internal web server's own authority).
    fault : callable, optional
        Test hook ``fault(step, path)`` called at ``prepare``, ``copy`` (per file), ``after_copy``,
        ``switch`` and ``verify``.
    """

    def __init__(
        self,
        name: str,
        root: str | os.PathLike[str],
        *,
        base_url: str = "",
        http_timeout: float = 10.0,
        ca_file: str | os.PathLike[str] | None = None,
        fault: Fault | None = None,
    ) -> None:
        self.name = name
        self.root = Path(root)
        self.base_url = base_url
        self.http_timeout = http_timeout
        self.ca_file = os.fspath(ca_file) if ca_file else None
        self.fault = fault or _no_fault
        self._previous: str | None = None

    def __repr__(self) -> str:
        return f"DirectoryTarget({self.name!r}, {str(self.root)!r})"

    @property
    def releases(self) -> Path:
        """Folder of published releases."""
        return self.root / "releases"

    @property
    def current(self) -> Path:
        """The live symlink."""
        return self.root / "current"

    def live_release(self) -> str | None:
        """Id of the live release, read from the ``current`` symlink."""
        try:
            return Path(os.readlink(self.current)).name
        except OSError:
            return None

    def live_manifest(self) -> dict[str, Any] | None:
        """The live release's ``manifest.json`` (``None`` when nothing is live or it is unreadable)."""
        if self.live_release() is None:
            return None
        try:
            return read_manifest(self.current)
        except (ReleaseError, OSError):
            return None

    def holder(self) -> str:
        """Who holds (or last held) the publish lock, as recorded beside it."""
        try:
            data = json.loads((self.root / HOLDER_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return "another publisher (no holder recorded)"
        return str(data.get("holder") or "another publisher")

    @contextlib.contextmanager
    def lock(self, holder: str, timeout: float) -> Iterator[None]:
        """Hold an exclusive ``fcntl`` lock on ``ROOT`` (waiting up to ``timeout`` seconds).

        The lock dies with its process, so a killed publisher never blocks the next. The holder is
        written to ``ROOT/.publish-holder.json`` (best effort: a read-only target still locks).

        Raises
        ------
        PublishError
            ``step="lock"``: not retryable when another publisher holds the lock past the
            timeout (the message names it); retryable when ``ROOT`` cannot be opened.
        """
        try:
            fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            why = (
                f"target folder {self.root} does not exist (is it mounted?)"
                if exc.errno == errno.ENOENT
                else f"cannot open target folder to lock it: {describe_os_error(exc)}"
            )
            raise PublishError(why, step="lock") from None
        try:
            started = time.monotonic()
            pause = 0.01
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    waited = time.monotonic() - started
                    if waited >= timeout:
                        raise PublishError(
                            f"target {self.name} ({self.root}) is locked by {self.holder()}; "
                            f"waited {waited:.1f} s, refusing to publish beside it",
                            step="lock",
                            retryable=False,
                        ) from None
                    time.sleep(min(pause, max(0.0, timeout - waited)))
                    pause = min(pause * 2, 0.2)
            with contextlib.suppress(OSError):
                atomic_write_text(
                    self.root / HOLDER_NAME,
                    json.dumps({"holder": holder, "pid": os.getpid()}) + "\n",
                )
            checkpoint("locked")
            yield
        finally:
            os.close(fd)  # releases the lock

    # -- steps ------------------------------------------------------------------------------------

    def prepare(self, release: StagedRelease) -> None:
        """Check ``root`` exists, make ``releases/``, roll back other releases' partial copies."""
        checkpoint("prepare")
        self.fault("prepare", self.root)
        if not self.root.is_dir():
            raise PublishError(
                f"target folder {self.root} does not exist (is it mounted?)", step="prepare"
            )
        if self.current.exists() and not self.current.is_symlink():
            raise PublishError(
                f"{self.current} is a real folder; this target needs it to be a "
                "symlink to releases/<id> (move it aside once by hand)",
                step="prepare",
                retryable=False,
            )
        self.releases.mkdir(exist_ok=True)
        mine = f".{release.release_id}.partial"
        for leftover in self.releases.iterdir():
            if leftover.name.endswith(".partial") and leftover.name != mine:
                shutil.rmtree(leftover)  # another release's interrupted copy: roll it back
        for tmp in self.root.iterdir():  # leftovers of killed runs (we hold the lock)
            if (tmp.name.startswith(".current.") and tmp.name.endswith(".tmp")) or (
                is_atomic_temp(tmp.name) and tmp.is_file() and not tmp.is_symlink()
            ):
                tmp.unlink()

    def discard(self, release: StagedRelease) -> None:
        """Remove this release's partial copy (it will not go live: a newer release is live)."""
        shutil.rmtree(self.releases / f".{release.release_id}.partial", ignore_errors=True)

    @staticmethod
    def _extras_problems(folder: Path, release: StagedRelease) -> list[str]:
        """The manifest, its signature and the access log, byte for byte as staged."""
        problems = []
        for name, data in release.extras.items():
            path = folder / name
            if path.is_symlink() or not path.is_file() or path.read_bytes() != data:
                problems.append(f"{name}: differs from the staged copy")
        return problems

    def _matches(self, folder: Path, release: StagedRelease) -> bool:
        if verify_manifest(folder, release.manifest):
            return False
        for name, data in release.extras.items():
            path = folder / name
            if not path.is_file() or path.read_bytes() != data:
                return False
        return True

    def upload(self, release: StagedRelease) -> None:
        """Copy into ``releases/.<id>.partial`` (completing an interrupted copy), check, rename."""
        final = self.releases / release.release_id
        if final.is_dir():
            if self._matches(final, release):
                return  # already uploaded: idempotent
            if self.live_release() == release.release_id:
                raise PublishError(
                    f"live release folder {final} differs from its manifest; repair it by hand",
                    step="upload",
                    retryable=False,
                )
            shutil.rmtree(final)
        partial = self.releases / f".{release.release_id}.partial"
        partial.mkdir(exist_ok=True)
        try:
            for entry in release.manifest["files"]:
                rel = str(entry["path"])
                dst = partial / rel
                if _same_file(dst, entry):
                    continue  # copied by an interrupted earlier attempt: keep it
                self.fault("copy", dst)
                try:
                    _copy_file(release.root, rel, dst)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.EINVAL) and exc.filename == rel:
                        raise PublishError(
                            f"staged file {rel} is a symlink, lies under one, or is not a "
                            "regular file: refusing to publish it",
                            step="upload",
                            retryable=False,
                        ) from None
                    raise
                checkpoint("copy")
            for name, data in release.extras.items():
                _write_bytes(partial / name, data)
            for folder, _dirs, _files in os.walk(partial):
                _fsync_dir(Path(folder))
        except BaseException as exc:
            if isinstance(exc, OSError | PublishError):  # a failed copy leaves nothing behind
                shutil.rmtree(partial, ignore_errors=True)
            raise
        checkpoint("copied")
        self.fault("after_copy", partial)
        problems = verify_manifest(partial, release.manifest) + self._extras_problems(
            partial, release
        )
        if problems:
            shutil.rmtree(partial, ignore_errors=True)
            raise PublishError(
                "copy on the target does not match the manifest: " + "; ".join(problems[:3]),
                step="upload",
            )
        os.rename(partial, final)
        _fsync_dir(self.releases)
        checkpoint("renamed")

    def switch(self, release: StagedRelease) -> None:
        """Point ``current`` at the release: new symlink at a temporary name, renamed over it."""
        wanted = f"releases/{release.release_id}"
        try:
            previous: str | None = os.readlink(self.current)
        except OSError:
            previous = None
        if previous == wanted:
            return
        self._previous = previous
        tmp = self.root / f".current.{os.getpid()}.tmp"
        tmp.unlink(missing_ok=True)
        os.symlink(wanted, tmp)
        checkpoint("symlinked")
        try:
            self.fault("switch", self.current)
            os.replace(tmp, self.current)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(self.root)
        checkpoint("switched")
        self._write_entry(release.release_id, str(release.manifest["release"].get("title", "")))

    def _write_entry(self, release_id: str, title: str = "") -> None:
        """Point ``ROOT/index.html`` at the release's immutable path (never over a foreign page)."""
        page = self.root / ENTRY_PAGE
        if page.is_symlink():
            return
        if page.exists():
            try:
                if _ENTRY_MARK not in page.read_text(encoding="utf-8", errors="replace"):
                    return  # somebody else's page: leave it
            except OSError:
                return
        atomic_write_text(page, entry_page(release_id, title))
        with contextlib.suppress(OSError):
            page.chmod(0o644)
        checkpoint("entry")

    def _rollback(self) -> None:
        if self._previous is None:
            return
        tmp = self.root / f".current.{os.getpid()}.tmp"
        tmp.unlink(missing_ok=True)
        os.symlink(self._previous, tmp)
        os.replace(tmp, self.current)
        _fsync_dir(self.root)
        self._write_entry(Path(self._previous).name)

    def verify(self, release: StagedRelease) -> None:
        """Check every manifest file under ``current``, then over HTTP when there is a base URL.

        A local mismatch switches ``current`` back to the previous release before raising; an HTTP
        failure leaves the (locally verified) release live and raises, to be retried.
        """
        checkpoint("verify")
        self.fault("verify", self.current)
        if self.live_release() != release.release_id:
            raise PublishError(
                f"{self.current} points at {self.live_release()!r}, not {release.release_id!r}",
                step="verify",
            )
        problems = verify_manifest(self.current, release.manifest) + self._extras_problems(
            self.current, release
        )
        if problems:
            self._rollback()
            raise PublishError(
                "live release does not match the manifest (switched back): "
                + "; ".join(problems[:3]),
                step="verify",
            )
        if self.base_url:
            self._verify_http(release)

    def _verify_http(self, release: StagedRelease) -> None:
        from . import _remote  # httpx only when there is a web server to check

        _remote.verify_http(
            (
                (_remote.url_join(self.base_url, str(e["path"])), str(e["sha256"]))
                for e in release.manifest["files"]
            ),
            self.http_timeout,
            self.ca_file,
        )


def describe_os_error(exc: OSError) -> str:
    """``'ENOSPC (No space left on device): /path'`` for an OSError."""
    code = errno.errorcode.get(exc.errno or 0, "OSError")
    where = f": {exc.filename}" if exc.filename else ""
    return f"{code} ({exc.strerror or exc}){where}"
