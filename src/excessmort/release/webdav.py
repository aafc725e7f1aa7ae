"""A WebDAV publish target (RFC 4918, driven with webdav4 over httpx)::

    ROOT/releases/<release-id>/           one collection per published release (never changed)
    ROOT/releases/.<release-id>.partial/  an upload in progress (resumed, or removed by another)
    ROOT/index.html                       the pointer: names the live release and sends readers to
                                          releases/<release-id>/
    ROOT/index-fallback.html              the same pointer, replaced just before index.html
    ROOT/.publish.lock                    the one-publisher lock (a WebDAV LOCK, with a timeout)

WebDAV has no symlink, so the live release is named by a small pointer page. The release is PUT into
``releases/.<id>.partial/``, read back with GET and checked against the manifest (sizes and SHA-256),
MOVEd to ``releases/<id>/`` (a plain rename on the server: the destination does not exist), and
made live by PUTting the new pointer at a temporary name and MOVEing it over ``index.html`` with
``Overwrite: T``.

Why a pointer and not MOVE of the collection over ``current/``: RFC 4918 (9.9.3) says a MOVE with
``Overwrite: T`` onto an existing resource first DELETEs the destination, and wsgidav's filesystem
provider does exactly that (``dest_res.delete()`` then ``shutil.move``). Moving a collection over the
live one would therefore delete the old release file by file while readers fetch it: a reader could
get half of the old release and then 404s. Moving a one-file pointer narrows that to the instant
between an ``unlink`` and a ``rename`` of one small file (and to nothing on servers that rename over
the destination, such as nginx's dav module for files). A second copy, ``index-fallback.html``,
is replaced first; a web server told to serve it when ``index.html`` is missing (nginx:
``location = /index.html { try_files $uri /index-fallback.html; }``) closes even that instant: it
answers with the old pointer or the new, never a 404. Release collections are immutable once
renamed into ``releases/``, and the staged pages link within their release path, so a reader who
came through the pointer reads one release only: the old or the new, never a mix.

``base_url`` is where readers fetch ``ROOT`` over plain HTTP (the pointer and ``releases/``);
verification GETs the pointer there and every manifest file under ``releases/<id>/``.

The password (``password_env`` in the configuration) is held in memory only and sent as HTTP Basic
authentication (use ``https``); it never appears in URLs, messages, logs or ``repr``.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import io
import os
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import PurePosixPath
from typing import Any, TypeVar

import httpx
from webdav4.client import Client, ClientError, HTTPError, InsufficientStorage, ResourceNotFound

from ..report.manifest import MANIFEST_NAME
from . import _remote
from .targets import Fault, PublishError, StagedRelease, checkpoint

__all__ = ["FALLBACK_POINTER_NAME", "POINTER_NAME", "WebdavTarget", "pointer_page"]

T = TypeVar("T")
POINTER_NAME = "index.html"
#: A second copy of the pointer, written first; the web server serves it while ``index.html`` is
#: being replaced (nginx: ``location = /index.html { try_files $uri /index-fallback.html; }``).
FALLBACK_POINTER_NAME = "index-fallback.html"
LOCK_NAME = ".publish.lock"
_META = re.compile(r'<meta name="excessmort-release" content="([^"]+)"')


def _no_fault(step: str, path: Any) -> None:
    return None


def pointer_page(release_id: str, title: str = "") -> bytes:
    """The pointer page for ``release_id``: a redirect into ``releases/<id>/`` readers can follow."""
    rid = html.escape(release_id, quote=True)
    name = html.escape(title or "Latest release")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta name="excessmort-release" content="{rid}">\n'
        f'<meta http-equiv="refresh" content="0; url=releases/{rid}/">\n'
        f'<link rel="canonical" href="releases/{rid}/">\n<title>{name}</title>\n</head>\n'
        f'<body><p><a href="releases/{rid}/">{name}</a></p></body>\n</html>\n'
    ).encode()


def pointed_release(page: bytes) -> str | None:
    """The release id a pointer page names (``None`` when it names none)."""
    match = _META.search(page.decode("utf-8", "replace"))
    return html.unescape(match.group(1)) if match else None


class WebdavTarget:
    """A WebDAV collection served to readers over HTTP (see the module docstring for the layout).

    Parameters
    ----------
    name : str
        Label for logs.
    url : str
        ``http(s)://host[:port]/path/`` of the target root collection (it must exist).
    username, password : str, optional
        HTTP Basic credentials (the password is a secret: kept in memory, never shown).
    base_url : str
        Where readers fetch the root over HTTP; empty skips HTTP verification.
    timeout : float
        Seconds for connecting and for each request (per read of the body).
    http_timeout : float
        Seconds per request when verifying over HTTP.
    ca_file : path, optional
        PEM bundle of the certificate authorities trusted for ``https`` (the WebDAV server and the
        readers' web server), instead of the system store: an internal server's own authority.
        Certificates and host names are always verified; a refused certificate is not retried
        (the next target is tried at once).
    lock_stale_seconds : float
        Timeout asked for the WebDAV LOCK; it is refreshed every quarter of that.
    fault : callable, optional
        Test hook ``fault(step, path)`` at ``prepare``, ``copy`` (per file), ``after_copy``,
        ``switch`` and ``verify``.
    """

    def __init__(
        self,
        name: str,
        url: str,
        *,
        username: str = "",
        password: str | None = None,
        base_url: str = "",
        timeout: float = 10.0,
        http_timeout: float = 10.0,
        ca_file: str | os.PathLike[str] | None = None,
        lock_stale_seconds: float = 120.0,
        fault: Fault | Callable[[str, PurePosixPath], None] | None = None,
    ) -> None:
        self.name = name
        self.url = url.rstrip("/") + "/"
        self.username = username
        self._auth = (username, password or "") if username or password else None
        self.base_url = base_url
        self.timeout = float(timeout)
        self.http_timeout = float(http_timeout)
        self.ca_file = os.fspath(os.path.expanduser(ca_file)) if ca_file else None
        self.lock_stale_seconds = float(lock_stale_seconds)
        self.fault = fault or _no_fault
        self._client: Client | None = None
        self._previous: str | None = None

    def __repr__(self) -> str:
        return f"WebdavTarget({self.name!r}, {self.url!r})"

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(
                self.url,
                auth=self._auth,
                retry=False,  # publish() retries, with backoff and the deadline in view
                timeout=httpx.Timeout(self.timeout),
                trust_env=False,
                follow_redirects=False,
                verify=_remote.tls_context(self.ca_file),
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.http.close()
            self._client = None

    def _call(self, step: str, work: Callable[[], T]) -> T:
        """Run one step; map every failure to a :class:`PublishError`."""
        try:
            return work()
        except PublishError:
            raise
        except InsufficientStorage:
            raise PublishError(
                f"WebDAV {step} on {self.url} failed: HTTP 507 Insufficient Storage (ENOSPC); "
                "the live release is untouched",
                step=step,
            ) from None
        except HTTPError as exc:
            code = exc.status_code
            if code in (401, 403):
                self.close()
                raise PublishError(
                    f"WebDAV {step} on {self.url} refused: HTTP {code} "
                    f"(user {self.username or '(none)'}); check the credentials",
                    step=step,
                    retryable=False,
                ) from None
            raise PublishError(
                f"WebDAV {step} on {self.url} failed: HTTP {code}", step=step
            ) from None
        except ResourceNotFound as exc:
            raise PublishError(f"WebDAV {step} on {self.url}: {exc}", step=step) from None
        except ClientError as exc:
            raise PublishError(f"WebDAV {step} on {self.url} failed: {exc}", step=step) from None
        except (httpx.HTTPError, OSError) as exc:
            self.close()
            raise _remote.http_error(
                exc, f"WebDAV {step} on {self.url}", self.url, step, self.ca_file
            ) from None

    # -- remote helpers ---------------------------------------------------------------------------

    def _get(self, path: str) -> bytes | None:
        response = self.client.http.get(self.client.join_url(path))
        if response.status_code == 404:
            return None
        if response.status_code == 507:
            raise InsufficientStorage(path)
        if response.status_code >= 400:
            raise HTTPError(response)
        return response.content

    def _digest(self, path: str) -> tuple[int, str] | None:
        digest = hashlib.sha256()
        size = 0
        with self.client.http.stream("GET", self.client.join_url(path)) as response:
            if response.status_code == 404:
                return None
            if response.status_code >= 400:
                response.read()
                raise HTTPError(response)
            for chunk in response.iter_bytes(1 << 20):
                size += len(chunk)
                digest.update(chunk)
        return size, digest.hexdigest()

    def _put(self, path: str, data: bytes | tuple[Any, str]) -> None:
        """Upload bytes, or a staged (root, relative path) opened without following symlinks."""
        if isinstance(data, bytes):
            self.client.upload_fileobj(io.BytesIO(data), path, overwrite=True)
        else:
            with _remote.open_staged(*data) as fh:
                self.client.upload_fileobj(fh, path, overwrite=True)

    def _problems(self, folder: str, release: StagedRelease) -> list[str]:
        problems: list[str] = []
        for entry in release.manifest["files"]:
            rel = str(entry["path"])
            got = self._digest(f"{folder}/{rel}")
            if got is None:
                problems.append(f"{rel}: listed in the manifest but missing")
            elif got[0] != int(entry["bytes"]):
                problems.append(f"{rel}: size {got[0]} bytes, manifest says {entry['bytes']}")
            elif got[1] != entry["sha256"]:
                problems.append(f"{rel}: checksum differs from the manifest")
        for name, data in release.extras.items():
            got = self._digest(f"{folder}/{name}")
            if got is None or got[1] != hashlib.sha256(data).hexdigest():
                problems.append(f"{name}: missing or different on the server")
        return problems

    def _live(self) -> str | None:
        page = self._get(POINTER_NAME)
        if page is None:  # between the unlink and the rename of a switch: the fallback copy
            page = self._get(FALLBACK_POINTER_NAME)
        return None if page is None else pointed_release(page)

    # -- Target interface -------------------------------------------------------------------------

    def live_release(self) -> str | None:
        """Id of the live release, read from the pointer page.

        Raises
        ------
        PublishError
            When the server cannot be reached.
        """
        return self._call("live", self._live)

    def live_manifest(self) -> dict[str, Any] | None:
        """The live release's ``manifest.json`` (``None`` when nothing is live)."""

        def go() -> dict[str, Any] | None:
            live = self._live()
            data = None if live is None else self._get(f"releases/{live}/{MANIFEST_NAME}")
            return None if data is None else _remote.parse_lock(data)

        return self._call("live", go)

    def discard(self, release: StagedRelease) -> None:
        """Remove this release's partial upload (it will not be used)."""

        def go() -> None:
            partial = f"releases/.{release.release_id}.partial"
            if self.client.exists(partial):
                self.client.remove(partial)

        self._call("discard", go)

    def prepare(self, release: StagedRelease) -> None:
        """Check the root collection exists, make ``releases/``, roll back other partials."""
        checkpoint("prepare")

        def go() -> None:
            self.fault("prepare", PurePosixPath(self.url))
            try:
                is_dir = self.client.isdir("")
            except ResourceNotFound:
                is_dir = False
            if not is_dir:
                raise PublishError(f"WebDAV collection {self.url} does not exist", step="prepare")
            if not self.client.exists("releases"):
                self.client.mkdir("releases")
            mine = f".{release.release_id}.partial"
            for item in self.client.ls("releases", detail=False):
                name = PurePosixPath(str(item)).name
                if name.endswith(".partial") and name != mine:
                    self.client.remove(f"releases/{name}")
            for item in self.client.ls("", detail=False):
                name = PurePosixPath(str(item)).name
                if name.startswith(".index") and name.endswith(".tmp"):
                    self.client.remove(name)

        self._call("prepare", go)

    def upload(self, release: StagedRelease) -> None:
        """PUT into ``releases/.<id>.partial`` (resuming), read it back, MOVE it into place."""

        def go() -> None:
            final = f"releases/{release.release_id}"
            if self.client.exists(final):
                if not self._problems(final, release):
                    return  # already uploaded and intact: idempotent
                if self._live() == release.release_id:
                    raise PublishError(
                        f"live release {self.url}{final} differs from its manifest; repair it by "
                        "hand",
                        step="upload",
                        retryable=False,
                    )
                self.client.remove(final)
            partial = f"releases/.{release.release_id}.partial"
            made = {"releases"}
            parents = {
                str(PurePosixPath(partial, str(e["path"])).parent)
                for e in release.manifest["files"]
            }
            for folder in [partial, *sorted(parents)]:
                chain = PurePosixPath(folder)
                for sub in [*reversed(chain.parents), chain]:
                    text = str(sub)
                    if text in made or text == ".":
                        continue
                    if not self.client.exists(text):
                        self.client.mkdir(text)
                    made.add(text)
            for entry in release.manifest["files"]:
                rel = str(entry["path"])
                dst = f"{partial}/{rel}"
                if self._digest(dst) == (int(entry["bytes"]), entry["sha256"]):
                    continue  # uploaded by an interrupted earlier attempt: keep it
                self.fault("copy", PurePosixPath(dst))
                self._put(dst, (release.root, rel))
                checkpoint("copy")
            for name, data in release.extras.items():
                self._put(f"{partial}/{name}", data)
            checkpoint("copied")
            self.fault("after_copy", PurePosixPath(partial))
            problems = self._problems(partial, release)
            if problems:
                self.client.remove(partial)
                raise PublishError(
                    "upload read back from the server does not match the manifest: "
                    + "; ".join(problems[:3]),
                    step="upload",
                )
            self.client.move(partial, final, overwrite=False)
            checkpoint("renamed")

        self._call("upload", go)

    def _point(self, release_id: str, title: str) -> None:
        """Point both pointers at ``release_id``: the fallback copy first, then ``index.html``.

        While the fallback is replaced, ``index.html`` still names the old release; while
        ``index.html`` is replaced (deleted, then renamed into place, by wsgidav), the fallback
        already names the new one. A web server that serves the fallback when ``index.html`` is
        missing therefore always answers with the old pointer or the new.
        """
        page = pointer_page(release_id, title)
        for name in (FALLBACK_POINTER_NAME, POINTER_NAME):
            tmp = f".{name}.{os.getpid()}.tmp"
            self._put(tmp, page)
            if name == POINTER_NAME:
                checkpoint("symlinked")
            try:
                if name == POINTER_NAME:
                    self.fault("switch", PurePosixPath(POINTER_NAME))
                self.client.move(tmp, name, overwrite=True)
            except BaseException:
                with contextlib.suppress(Exception):
                    self.client.remove(tmp)
                raise

    def switch(self, release: StagedRelease) -> None:
        """Make the pointer name the release: PUT at a temporary name, MOVE with Overwrite: T."""

        def go() -> None:
            previous = self._live()
            if previous == release.release_id:
                return
            self._previous = previous
            self._point(release.release_id, str(release.manifest["release"].get("title", "")))
            checkpoint("switched")

        self._call("switch", go)

    def verify(self, release: StagedRelease) -> None:
        """GET every manifest file of the live release back, then over HTTP when configured.

        A mismatch on the server points back at the previous release before raising.
        """
        checkpoint("verify")

        def go() -> None:
            self.fault("verify", PurePosixPath(POINTER_NAME))
            for name in (POINTER_NAME, FALLBACK_POINTER_NAME):
                page = self._get(name)
                live = None if page is None else pointed_release(page)
                if live != release.release_id:
                    raise PublishError(
                        f"{self.url}{name} names {live!r}, not {release.release_id!r}",
                        step="verify",
                    )
            problems = self._problems(f"releases/{release.release_id}", release)
            if problems:
                if self._previous is not None:
                    self._point(self._previous, "")
                raise PublishError(
                    "live release does not match the manifest (switched back): "
                    + "; ".join(problems[:3]),
                    step="verify",
                )

        self._call("verify", go)
        if self.base_url:
            pointer = _remote.url_join(self.base_url, POINTER_NAME)
            try:
                page = httpx.get(
                    pointer,
                    timeout=self.http_timeout,
                    trust_env=False,
                    verify=_remote.tls_context(self.ca_file),
                )
            except httpx.HTTPError as exc:
                raise _remote.http_error(
                    exc, f"GET {pointer}", pointer, "verify-http", self.ca_file
                ) from None
            if page.status_code != 200 or pointed_release(page.content) != release.release_id:
                raise PublishError(
                    f"GET {pointer} (HTTP {page.status_code}) does not name {release.release_id}",
                    step="verify-http",
                )
            prefix = f"releases/{release.release_id}/"
            _remote.verify_http(
                (
                    (_remote.url_join(self.base_url, prefix + str(e["path"])), str(e["sha256"]))
                    for e in release.manifest["files"]
                ),
                self.http_timeout,
                self.ca_file,
            )

    # -- the one-publisher lock -------------------------------------------------------------------

    def _lock_request(self, headers: dict[str, str], body: str | None = None) -> httpx.Response:
        return self.client.http.request(
            "LOCK",
            self.client.join_url(LOCK_NAME),
            content=body,
            headers={"Timeout": f"Second-{int(self.lock_stale_seconds)}", "Depth": "0", **headers},
        )

    def _holder(self) -> str:
        """Who holds the lock, from its ``lockdiscovery`` property (PROPFIND)."""
        body = (
            '<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop>'
            "<D:lockdiscovery/></D:prop></D:propfind>"
        )
        try:
            response = self.client.http.request(
                "PROPFIND",
                self.client.join_url(LOCK_NAME),
                content=body,
                headers={"Depth": "0", "Content-Type": "application/xml"},
            )
            owner = ET.fromstring(response.content).find(".//{DAV:}owner")
        except (httpx.HTTPError, ET.ParseError):
            return _remote.lock_holder(None)
        text = "".join(owner.itertext()).strip() if owner is not None else ""
        return _remote.lock_holder(_remote.parse_lock(text.encode()))

    @contextlib.contextmanager
    def lock(self, holder: str, timeout: float = 0.0) -> Iterator[None]:
        """Hold an exclusive WebDAV LOCK on ``ROOT/.publish.lock`` for the ``with`` block.

        The lock is asked with a timeout of ``lock_stale_seconds`` (so a killed publisher's lock
        expires on the server), refreshed every quarter of that, and UNLOCKed on exit. The lock's
        owner element holds the holder, host, pid and time.

        Raises
        ------
        PublishError
            ``step="lock"``, ``retryable=False``, naming the holder, when another publisher keeps
            the lock for ``timeout`` seconds; ``retryable=True`` when the server cannot be reached.
        """
        import json

        record = _remote.lock_record(holder)
        body = (
            '<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:">'
            "<D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype>"
            f"<D:owner>{html.escape(json.dumps(record))}</D:owner></D:lockinfo>"
        )
        deadline = time.monotonic() + timeout
        token = ""
        seen = ""
        while not token:
            response = self._call(
                "lock", lambda: self._lock_request({"Content-Type": "application/xml"}, body)
            )
            if response.status_code in (200, 201):
                token = response.headers.get("Lock-Token", "").strip()
                break
            if response.status_code != 423:
                raise PublishError(
                    f"WebDAV LOCK on {self.url}{LOCK_NAME} answered HTTP {response.status_code}",
                    step="lock",
                    retryable=response.status_code not in (401, 403, 405, 501),
                )
            seen = self._holder()
            if not _remote.wait_until(deadline):
                raise PublishError(
                    f"{self.url} is being published by {seen}; refusing to interleave (WebDAV "
                    f"LOCK on {LOCK_NAME})",
                    step="lock",
                    retryable=False,
                )

        def beat() -> None:
            with httpx.Client(
                auth=self._auth,
                timeout=self.timeout,
                trust_env=False,
                verify=_remote.tls_context(self.ca_file),
            ) as http:
                response = http.request(
                    "LOCK",
                    self.client.join_url(LOCK_NAME),
                    headers={
                        "Timeout": f"Second-{int(self.lock_stale_seconds)}",
                        "If": f"({token})",
                    },
                )
                if response.status_code >= 400:
                    raise PublishError(
                        f"refreshing the LOCK answered HTTP {response.status_code}", step="lock"
                    )

        heartbeat = _remote.Heartbeat(beat, self.lock_stale_seconds / 4, self.url)
        try:
            yield
        finally:
            heartbeat.stop()
            try:
                self.client.http.request(
                    "UNLOCK", self.client.join_url(LOCK_NAME), headers={"Lock-Token": token}
                )
            except httpx.HTTPError as exc:  # it expires on the server after its timeout
                _remote.log.warning("could not UNLOCK %s%s: %s", self.url, LOCK_NAME, exc)
