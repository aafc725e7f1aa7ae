"""An SFTP publish target (OpenSSH server, driven with asyncssh), with the folder target's layout::

    ROOT/releases/<release-id>/          one folder per published release (old ones kept)
    ROOT/releases/.<release-id>.partial/ an upload in progress (resumed, or removed by another release)
    ROOT/current -> releases/<release-id>  what the web server serves; swapped atomically
    ROOT/.publish.lock                   the one-publisher lock (created with O_EXCL)

The release is uploaded into ``releases/.<id>.partial/`` (each file fsynced with OpenSSH's
``fsync@openssh.com``), read back over SFTP and checked against the manifest (sizes and SHA-256),
renamed to ``releases/<id>/``, and then made live: a symlink made at a temporary name is renamed over
``current`` with ``posix-rename@openssh.com``, which replaces the old link in one ``rename(2)`` on
the server (SFTP v3's own RENAME refuses to overwrite). A reader therefore sees the old release or
the new, never a mix, and an interrupted upload is never visible.

Host keys are always verified against a ``known_hosts`` file (default ``~/.ssh/known_hosts``); an
unknown or changed host key is refused, not retried, and the message shows the fingerprint the
server offered. Secrets (a key passphrase) are held only in memory and never appear in messages,
logs or ``repr``.

Every network operation has a timeout (``timeout`` seconds, also SSH keep-alives), so a server that
hangs fails the attempt instead of hanging the publisher; :func:`~excessmort.release.publish.publish`
retries with backoff and falls back to other targets.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import posixpath
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

import asyncssh

from ..report.manifest import MANIFEST_NAME
from . import _remote
from .targets import Fault, PublishError, StagedRelease, checkpoint

__all__ = ["SftpTarget"]

T = TypeVar("T")
LOCK_NAME = ".publish.lock"


def _no_fault(step: str, path: Any) -> None:
    return None


class _Refused(Exception):
    """Internal: a failure that retrying cannot fix (wrapped into a non-retryable PublishError)."""


class SftpTarget:
    """A web server's folder reached over SFTP (see the module docstring for the layout).

    Parameters
    ----------
    name : str
        Label for logs.
    host : str
        Server name or address.
    root : str
        Absolute path (or relative to the login folder) of the target root on the server; it must
        exist (never created).
    port : int
        SSH port.
    username : str, optional
        Login name (default: the SSH default, the local user).
    identity_file : path, optional
        Private key (default: the SSH defaults ``~/.ssh/id_*`` and the agent).
    known_hosts : path, optional
        ``known_hosts`` file to verify the host key with (default ``~/.ssh/known_hosts``).
    passphrase : str, optional
        Passphrase of the identity file (a secret: kept in memory only, never shown).
    base_url : str
        URL at which ``ROOT/current`` is served; empty skips HTTP verification.
    timeout : float
        Seconds for connecting and for each SFTP request.
    http_timeout : float
        Seconds per HTTP request when verifying over HTTP.
    ca_file : path, optional
        PEM bundle of the certificate authorities trusted for an ``https`` base URL (the readers'
        web server), instead of the system store: an internal server's own authority.
    lock_stale_seconds : float
        A lock not refreshed for this long is stale and may be broken (the holder refreshes it
        every quarter of that).
    fault : callable, optional
        Test hook ``fault(step, remote_path)`` at ``prepare``, ``copy`` (per file), ``after_copy``,
        ``switch`` and ``verify``.
    """

    def __init__(
        self,
        name: str,
        host: str,
        root: str,
        *,
        port: int = 22,
        username: str | None = None,
        identity_file: str | os.PathLike[str] | None = None,
        known_hosts: str | os.PathLike[str] | None = None,
        passphrase: str | None = None,
        base_url: str = "",
        timeout: float = 10.0,
        http_timeout: float = 10.0,
        ca_file: str | os.PathLike[str] | None = None,
        lock_stale_seconds: float = 120.0,
        fault: Fault | Callable[[str, PurePosixPath], None] | None = None,
    ) -> None:
        self.name = name
        self.host = host
        self.port = int(port)
        self.root = PurePosixPath(root)
        self.username = username
        self.identity_file = Path(os.path.expanduser(identity_file)) if identity_file else None
        self.known_hosts = Path(
            os.path.expanduser(known_hosts if known_hosts else "~/.ssh/known_hosts")
        )
        self._passphrase = passphrase
        self.base_url = base_url
        self.timeout = float(timeout)
        self.http_timeout = float(http_timeout)
        self.ca_file = os.fspath(os.path.expanduser(ca_file)) if ca_file else None
        self.lock_stale_seconds = float(lock_stale_seconds)
        self.fault = fault or _no_fault
        self._conn: asyncssh.SSHClientConnection | None = None
        self._sftp: asyncssh.SFTPClient | None = None
        self._previous: str | None = None
        self._lock_nonce: str | None = None
        self._key: asyncssh.SSHKey | None = None

    def __repr__(self) -> str:
        who = f"{self.username}@" if self.username else ""
        return f"SftpTarget({self.name!r}, 'sftp://{who}{self.host}:{self.port}{self.root}')"

    @property
    def where(self) -> str:
        """``host:port:/root`` for messages."""
        return f"{self.host}:{self.port}:{self.root}"

    def _path(self, *parts: str) -> str:
        return str(self.root.joinpath(*parts))

    # -- connection -------------------------------------------------------------------------------

    async def _connect(self) -> asyncssh.SFTPClient:
        if self._sftp is not None and self._conn is not None and not self._conn.is_closed():
            return self._sftp
        await self._drop()
        if not self.known_hosts.is_file():
            raise _Refused(
                f"no known_hosts file at {self.known_hosts}: host keys are always verified; add "
                f"the server's key first (ssh-keyscan -p {self.port} {self.host}, then check its "
                "fingerprint with the server's administrator)"
            )
        options: dict[str, Any] = {
            "port": self.port,
            "known_hosts": str(self.known_hosts),
            "connect_timeout": self.timeout,
            "login_timeout": self.timeout,
            "keepalive_interval": max(1.0, self.timeout / 2),
            "keepalive_count_max": 2,
        }
        if self.username:
            options["username"] = self.username
        if self._passphrase is not None:
            options["passphrase"] = self._passphrase
        try:
            if self.identity_file is not None:
                if self._key is None:  # decrypted once (a bcrypt KDF), not at every reconnect
                    self._key = asyncssh.read_private_key(str(self.identity_file), self._passphrase)
                options["client_keys"] = [self._key]
                options["agent_path"] = None
            conn = await asyncssh.connect(self.host, **options)
        except asyncssh.HostKeyNotVerifiable:
            raise _Refused(await self._host_key_problem()) from None
        except asyncssh.PermissionDenied:
            raise _Refused(
                f"SSH authentication refused on {self.host}:{self.port} for user "
                f"{self.username or '(default)'} with "
                f"{self.identity_file or 'the default keys'}"
            ) from None
        except (FileNotFoundError, PermissionError) as exc:
            raise _Refused(
                f"could not read the identity file {self.identity_file}: {exc.strerror}"
            ) from None
        except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError) as exc:
            # the message of these errors never holds the passphrase; keep only their type
            raise _Refused(
                f"could not load the identity file {self.identity_file} "
                f"({type(exc).__name__}: wrong or missing passphrase, or not a private key)"
            ) from None
        try:
            sftp = await asyncio.wait_for(conn.start_sftp_client(), self.timeout)
        except BaseException:
            conn.close()
            raise
        self._conn, self._sftp = conn, sftp
        return sftp

    async def _host_key_problem(self) -> str:
        try:
            key = await asyncio.wait_for(
                asyncssh.get_server_host_key(self.host, self.port), self.timeout
            )
            offered = f"{key.get_algorithm()} {key.get_fingerprint('sha256')}"
        except (OSError, asyncssh.Error, TimeoutError) as exc:
            offered = f"(could not read it again: {exc})"
        try:
            known = asyncssh.read_known_hosts(str(self.known_hosts)).match(
                self.host, self.host, self.port
            )[0]
        except (OSError, ValueError, asyncssh.Error):
            known = []
        if known:
            expected = ", ".join(k.get_fingerprint("sha256") for k in known)
            return (
                f"host key of {self.host}:{self.port} has CHANGED: the server offered {offered}, "
                f"{self.known_hosts} expects {expected}; refused (someone may be impersonating the "
                "server; if the key really changed, fix known_hosts by hand)"
            )
        return (
            f"host key of {self.host}:{self.port} is not in {self.known_hosts}: the server offered "
            f"{offered}; refused. If that is the web server's key, add it to known_hosts"
        )

    async def _drop(self) -> None:
        conn, self._conn, self._sftp = self._conn, None, None
        if conn is not None:
            conn.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.wait_closed(), 2)

    def close(self) -> None:
        """Close the SSH connection (it is opened again when needed)."""
        _remote.run(self._drop())

    async def _op(self, awaitable: Awaitable[T]) -> T:
        return await asyncio.wait_for(awaitable, self.timeout)

    def _call(self, step: str, make: Callable[[], Awaitable[T]]) -> T:
        """Run one step on the network loop; map every failure to a :class:`PublishError`."""

        async def guarded() -> T:
            try:
                return await make()
            except BaseException:
                if self._conn is not None and self._conn.is_closed():
                    await self._drop()
                raise

        try:
            return _remote.run(guarded())
        except PublishError:
            raise
        except _Refused as exc:
            raise PublishError(str(exc), step=step, retryable=False) from None
        except asyncssh.SFTPError as exc:
            _remote.run(self._drop())
            raise PublishError(
                f"SFTP {step} on {self.where} failed: {exc.reason or type(exc).__name__}", step=step
            ) from None
        except (asyncssh.Error, OSError, TimeoutError, EOFError) as exc:
            _remote.run(self._drop())
            reason = str(exc) or type(exc).__name__
            if isinstance(exc, TimeoutError):
                reason = f"timed out after {self.timeout:g} s"
            raise PublishError(
                f"SFTP {step} on {self.where} failed: {type(exc).__name__}: {reason}", step=step
            ) from None

    # -- remote helpers ---------------------------------------------------------------------------

    async def _lstat(self, sftp: asyncssh.SFTPClient, path: str) -> asyncssh.SFTPAttrs | None:
        try:
            return await self._op(sftp.lstat(path))
        except asyncssh.SFTPNoSuchFile:
            return None

    async def _readlink(self, sftp: asyncssh.SFTPClient, path: str) -> str | None:
        try:
            return str(await self._op(sftp.readlink(path)))
        except (asyncssh.SFTPNoSuchFile, asyncssh.SFTPFailure, asyncssh.SFTPBadMessage):
            return None

    async def _digest(self, sftp: asyncssh.SFTPClient, path: str) -> tuple[int, str] | None:
        """Size and SHA-256 of a remote file, read back over SFTP (``None`` when missing)."""
        digest = hashlib.sha256()
        size = 0
        try:
            handle = await self._op(sftp.open(path, "rb"))
        except asyncssh.SFTPNoSuchFile:
            return None
        try:
            while True:
                chunk = await self._op(handle.read(_remote.CHUNK))
                if not chunk:
                    break
                size += len(chunk)
                digest.update(chunk)
        finally:
            with contextlib.suppress(Exception):
                await self._op(handle.close())
        return size, digest.hexdigest()

    async def _write(
        self, sftp: asyncssh.SFTPClient, path: str, source: tuple[Path, str] | bytes
    ) -> None:
        """Write ``source`` (bytes, or a staged (root, relative path) opened without following
        symlinks) to ``path`` on the server."""
        fh_source = None if isinstance(source, bytes) else _remote.open_staged(*source)
        handle = await self._op(sftp.open(path, "wb"))
        try:
            if isinstance(source, bytes):
                await self._op(handle.write(source))
            else:
                with fh_source as fh:
                    while chunk := fh.read(_remote.CHUNK):
                        await self._op(handle.write(chunk))
            # a server without fsync@openssh.com: the read-back check still holds
            with contextlib.suppress(asyncssh.SFTPOpUnsupported):
                await self._op(handle.fsync())
        finally:
            with contextlib.suppress(Exception):
                await self._op(handle.close())

    async def _problems(
        self, sftp: asyncssh.SFTPClient, folder: str, release: StagedRelease
    ) -> list[str]:
        """Read every manifest file and extra back from ``folder``; one sentence per difference."""
        problems: list[str] = []
        for entry in release.manifest["files"]:
            rel = str(entry["path"])
            got = await self._digest(sftp, posixpath.join(folder, rel))
            if got is None:
                problems.append(f"{rel}: listed in the manifest but missing")
            elif got[0] != int(entry["bytes"]):
                problems.append(f"{rel}: size {got[0]} bytes, manifest says {entry['bytes']}")
            elif got[1] != entry["sha256"]:
                problems.append(
                    f"{rel}: checksum differs from the manifest (expected {entry['sha256'][:12]}"
                    f"..., found {got[1][:12]}...)"
                )
        for name, data in release.extras.items():
            got = await self._digest(sftp, posixpath.join(folder, name))
            if got is None or got[1] != hashlib.sha256(data).hexdigest():
                problems.append(f"{name}: missing or different on the server")
        return problems

    async def _free_bytes(self, sftp: asyncssh.SFTPClient) -> int | None:
        try:
            vfs = await self._op(sftp.statvfs(str(self.root)))
        except (asyncssh.SFTPOpUnsupported, asyncssh.SFTPFailure):
            return None  # a server without statvfs@openssh.com
        return int(vfs.bavail) * int(vfs.frsize)

    # -- Target interface -------------------------------------------------------------------------

    def live_release(self) -> str | None:
        """Id of the live release, read from the ``current`` symlink on the server.

        Raises
        ------
        PublishError
            When the server cannot be reached (unknown is not the same as nothing live).
        """

        async def go() -> str | None:
            sftp = await self._connect()
            link = await self._readlink(sftp, self._path("current"))
            return PurePosixPath(link).name if link else None

        return self._call("live", go)

    def live_manifest(self) -> dict[str, Any] | None:
        """The live release's ``manifest.json``, read over SFTP (``None`` when nothing is live)."""

        async def go() -> bytes | None:
            sftp = await self._connect()
            if await self._readlink(sftp, self._path("current")) is None:
                return None
            try:
                handle = await self._op(sftp.open(self._path("current", MANIFEST_NAME), "rb"))
            except asyncssh.SFTPNoSuchFile:
                return None
            try:
                return bytes(await self._op(handle.read()))
            finally:
                with contextlib.suppress(Exception):
                    await self._op(handle.close())

        data = self._call("live", go)
        return _remote.parse_lock(data) if data is not None else None

    def discard(self, release: StagedRelease) -> None:
        """Remove this release's partial upload (it will not be used)."""

        async def go() -> None:
            sftp = await self._connect()
            partial = self._path("releases", f".{release.release_id}.partial")
            if await self._lstat(sftp, partial) is not None:
                await self._op(sftp.rmtree(partial))

        self._call("discard", go)

    def prepare(self, release: StagedRelease) -> None:
        """Connect, check ``root`` exists, make ``releases/``, roll back other releases' partials."""
        checkpoint("prepare")

        async def go() -> None:
            self.fault("prepare", self.root)
            sftp = await self._connect()
            await self._check_lock(sftp)
            attrs = await self._lstat(sftp, str(self.root))
            if attrs is None or attrs.type != asyncssh.FILEXFER_TYPE_DIRECTORY:
                raise PublishError(
                    f"target folder {self.root} does not exist on {self.host}:{self.port}",
                    step="prepare",
                )
            current = await self._lstat(sftp, self._path("current"))
            if current is not None and current.type != asyncssh.FILEXFER_TYPE_SYMLINK:
                raise PublishError(
                    f"{self.where}/current is not a symlink; this target needs it to be a "
                    "symlink to releases/<id> (move it aside once by hand)",
                    step="prepare",
                    retryable=False,
                )
            releases = self._path("releases")
            if await self._lstat(sftp, releases) is None:
                await self._op(sftp.mkdir(releases))
            mine = f".{release.release_id}.partial"
            for name in await self._op(sftp.listdir(releases)):
                if name.endswith(".partial") and name != mine:
                    await self._op(sftp.rmtree(posixpath.join(releases, name)))
            for name in await self._op(sftp.listdir(str(self.root))):
                if name.startswith(".current.") and name.endswith(".tmp"):
                    await self._op(sftp.remove(self._path(name)))

        self._call("prepare", go)

    def upload(self, release: StagedRelease) -> None:
        """Upload into ``releases/.<id>.partial`` (resuming), read it back, rename it."""

        async def go() -> None:
            sftp = await self._connect()
            final = self._path("releases", release.release_id)
            if await self._lstat(sftp, final) is not None:
                if not await self._problems(sftp, final, release):
                    return  # already uploaded and intact: idempotent
                live = await self._readlink(sftp, self._path("current"))
                if live and PurePosixPath(live).name == release.release_id:
                    raise PublishError(
                        f"live release folder {self.where}/releases/{release.release_id} differs "
                        "from its manifest; repair it by hand",
                        step="upload",
                        retryable=False,
                    )
                await self._op(sftp.rmtree(final))
            partial = self._path("releases", f".{release.release_id}.partial")
            await self._op(sftp.makedirs(partial, exist_ok=True))
            todo: list[dict[str, Any]] = []
            for entry in release.manifest["files"]:
                got = await self._digest(sftp, posixpath.join(partial, str(entry["path"])))
                if got != (int(entry["bytes"]), entry["sha256"]):
                    todo.append(entry)  # missing or torn: (re)upload; intact ones are kept
            need = sum(int(e["bytes"]) for e in todo) + sum(len(d) for d in release.extras.values())
            free = await self._free_bytes(sftp)
            if free is not None and free < need:
                await self._op(sftp.rmtree(partial))
                raise PublishError(
                    f"not enough space on {self.where}: {free} bytes free, the release needs "
                    f"{need} more (ENOSPC); the live release is untouched",
                    step="upload",
                )
            made: set[str] = set()
            for entry in todo:
                rel = str(entry["path"])
                dst = posixpath.join(partial, rel)
                parent = posixpath.dirname(dst)
                if parent not in made:
                    await self._op(sftp.makedirs(parent, exist_ok=True))
                    made.add(parent)
                self.fault("copy", PurePosixPath(dst))
                try:
                    await self._write(sftp, dst, (release.root, rel))
                except asyncssh.SFTPFailure:
                    free = await self._free_bytes(sftp)
                    if free is not None and free < int(entry["bytes"]):
                        with contextlib.suppress(asyncssh.Error):
                            await self._op(sftp.rmtree(partial))
                        raise PublishError(
                            f"writing {rel} on {self.where} failed: no space left (ENOSPC, "
                            f"{free} bytes free); the live release is untouched",
                            step="upload",
                        ) from None
                    raise
                checkpoint("copy")
            for name, data in release.extras.items():
                await self._write(sftp, posixpath.join(partial, name), data)
            checkpoint("copied")
            self.fault("after_copy", PurePosixPath(partial))
            problems = await self._problems(sftp, partial, release)
            if problems:
                await self._op(sftp.rmtree(partial))
                raise PublishError(
                    "upload read back from the server does not match the manifest: "
                    + "; ".join(problems[:3]),
                    step="upload",
                )
            await self._op(sftp.posix_rename(partial, final))
            checkpoint("renamed")

        self._call("upload", go)

    async def _point(self, sftp: asyncssh.SFTPClient, wanted: str) -> None:
        tmp = self._path(f".current.{os.getpid()}.tmp")
        if await self._lstat(sftp, tmp) is not None:
            await self._op(sftp.remove(tmp))
        await self._op(sftp.symlink(wanted, tmp))
        checkpoint("symlinked")
        try:
            self.fault("switch", PurePosixPath(self._path("current")))
            await self._op(sftp.posix_rename(tmp, self._path("current")))
        except asyncssh.SFTPOpUnsupported:
            raise _Refused(
                f"{self.host}:{self.port} does not offer posix-rename@openssh.com: no atomic "
                "switch is possible on this server"
            ) from None
        except BaseException:
            with contextlib.suppress(Exception):
                await self._op(sftp.remove(tmp))
            raise

    def switch(self, release: StagedRelease) -> None:
        """Point ``current`` at the release: a symlink at a temporary name, posix-renamed over it."""

        async def go() -> None:
            sftp = await self._connect()
            wanted = f"releases/{release.release_id}"
            previous = await self._readlink(sftp, self._path("current"))
            if previous == wanted:
                return
            self._previous = previous
            await self._point(sftp, wanted)
            checkpoint("switched")

        self._call("switch", go)

    def verify(self, release: StagedRelease) -> None:
        """Read every manifest file back through ``current``, then over HTTP when configured.

        A mismatch on the server switches ``current`` back to the previous release before raising;
        an HTTP failure leaves the (verified over SFTP) release live and raises, to be retried.
        """
        checkpoint("verify")

        async def go() -> None:
            self.fault("verify", PurePosixPath(self._path("current")))
            sftp = await self._connect()
            link = await self._readlink(sftp, self._path("current"))
            live = PurePosixPath(link).name if link else None
            if live != release.release_id:
                raise PublishError(
                    f"{self.where}/current points at {live!r}, not {release.release_id!r}",
                    step="verify",
                )
            problems = await self._problems(sftp, self._path("current"), release)
            if problems:
                if self._previous is not None:
                    await self._point(sftp, self._previous)
                raise PublishError(
                    "live release does not match the manifest (switched back): "
                    + "; ".join(problems[:3]),
                    step="verify",
                )

        self._call("verify", go)
        if self.base_url:
            _remote.verify_http(
                (
                    (_remote.url_join(self.base_url, str(e["path"])), str(e["sha256"]))
                    for e in release.manifest["files"]
                ),
                self.http_timeout,
                self.ca_file,
            )

    # -- the one-publisher lock -------------------------------------------------------------------

    async def _read_lock(
        self, sftp: asyncssh.SFTPClient
    ) -> tuple[dict[str, Any] | None, float] | None:
        path = self._path(LOCK_NAME)
        try:
            attrs = await self._op(sftp.stat(path))
            handle = await self._op(sftp.open(path, "rb"))
        except asyncssh.SFTPNoSuchFile:
            return None
        try:
            data = await self._op(handle.read())
        finally:
            with contextlib.suppress(Exception):
                await self._op(handle.close())
        return _remote.parse_lock(data or b""), float(attrs.mtime or 0)

    async def _check_lock(self, sftp: asyncssh.SFTPClient) -> None:
        """While we hold the lock, make sure nobody broke it (after a long outage of ours)."""
        if self._lock_nonce is None:
            return
        found = await self._read_lock(sftp)
        record = found[0] if found else None
        if not record or record.get("nonce") != self._lock_nonce:
            raise PublishError(
                f"the publish lock on {self.where} is no longer ours (now held by "
                f"{_remote.lock_holder(record)}); stopping",
                step="lock",
                retryable=False,
            )

    async def _try_lock(self, sftp: asyncssh.SFTPClient, record: dict[str, Any]) -> bool:
        path = self._path(LOCK_NAME)
        flags = asyncssh.FXF_WRITE | asyncssh.FXF_CREAT | asyncssh.FXF_EXCL
        try:
            handle = await self._op(sftp.open(path, flags, encoding=None))
        except (asyncssh.SFTPFailure, asyncssh.SFTPFileAlreadyExists):
            if await self._lstat(sftp, path) is None:
                raise  # a real failure, not "exists"
            return False
        try:
            await self._op(handle.write(json.dumps(record).encode()))
            with contextlib.suppress(asyncssh.SFTPOpUnsupported):
                await self._op(handle.fsync())
        finally:
            await self._op(handle.close())
        return True

    async def _break_if_stale(
        self, sftp: asyncssh.SFTPClient, found: tuple[dict[str, Any] | None, float]
    ) -> bool:
        record, mtime = found
        age = time.time() - mtime
        if age < self.lock_stale_seconds and not _remote.dead_on_this_host(record):
            return False
        # move it aside under a unique name (only one contender can), check it is the one judged
        # stale, and put it back if a fresh lock slipped in meanwhile
        aside = self._path(f"{LOCK_NAME}.stale.{os.getpid()}.{time.monotonic_ns()}")
        try:
            await self._op(sftp.rename(self._path(LOCK_NAME), aside))
        except (asyncssh.SFTPNoSuchFile, asyncssh.SFTPFailure):
            return True  # someone else moved it: try again
        handle = await self._op(sftp.open(aside, "rb"))
        try:
            moved = _remote.parse_lock(await self._op(handle.read()) or b"")
        finally:
            await self._op(handle.close())
        if (moved or {}).get("nonce") != (record or {}).get("nonce"):
            await self._op(sftp.posix_rename(aside, self._path(LOCK_NAME)))
            return False
        await self._op(sftp.remove(aside))
        _remote.log.warning(
            "broke the stale publish lock on %s held by %s (not refreshed for %.0f s)",
            self.where,
            _remote.lock_holder(record),
            age,
        )
        return True

    @contextlib.contextmanager
    def lock(self, holder: str, timeout: float = 0.0) -> Iterator[None]:
        """Hold the server-side one-publisher lock ``ROOT/.publish.lock`` for the ``with`` block.

        The lock file is created with ``O_CREAT|O_EXCL`` over SFTP and holds the holder, host, pid
        and time; it is refreshed every ``lock_stale_seconds / 4`` and removed on exit. A lock
        not refreshed for ``lock_stale_seconds`` (or whose holder died on this machine) is
        broken.

        Raises
        ------
        PublishError
            ``step="lock"``, ``retryable=False``, naming the holder, when another publisher keeps
            the lock for ``timeout`` seconds; ``retryable=True`` when the server cannot be reached.
        """
        record = _remote.lock_record(holder)

        async def acquire() -> bool:
            sftp = await self._connect()
            if await self._try_lock(sftp, record):
                return True
            found = await self._read_lock(sftp)
            if found is None:
                return False  # released meanwhile: try again
            if await self._break_if_stale(sftp, found):
                return await self._try_lock(sftp, record)
            self._seen_holder = found[0]
            return False

        self._seen_holder: dict[str, Any] | None = None
        deadline = time.monotonic() + timeout
        while not self._call("lock", acquire):
            if not _remote.wait_until(deadline):
                raise PublishError(
                    f"{self.where} is being published by {_remote.lock_holder(self._seen_holder)}; "
                    "refusing to interleave (the lock is ROOT/.publish.lock)",
                    step="lock",
                    retryable=False,
                )
        self._lock_nonce = record["nonce"]

        async def beat() -> None:
            sftp = await self._connect()
            now = time.time()
            await self._op(sftp.utime(self._path(LOCK_NAME), (now, now)))

        heartbeat = _remote.Heartbeat(
            lambda: self._call("lock", beat), self.lock_stale_seconds / 4, self.where
        )

        async def release() -> None:
            sftp = await self._connect()
            found = await self._read_lock(sftp)
            if found and found[0] and found[0].get("nonce") == record["nonce"]:
                await self._op(sftp.remove(self._path(LOCK_NAME)))

        try:
            yield
        finally:
            heartbeat.stop()
            self._lock_nonce = None
            try:
                self._call("lock", release)
            except PublishError as exc:  # it goes stale and is broken by the next publisher
                _remote.log.warning("could not remove the publish lock on %s: %s", self.where, exc)
