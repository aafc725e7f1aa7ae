"""Pieces shared by the network targets (:mod:`.sftp`, :mod:`.webdav`).

- :func:`run`: a private asyncio event loop in a daemon thread, so the synchronous ``Target``
  interface can drive asyncssh from any thread (also from code that already runs a loop).
- :func:`verify_http`: fetch every manifest file from the readers' web server and compare checksums.
- :func:`lock_record` / :func:`lock_holder`: what a one-publisher lock says about its holder.
- :class:`Heartbeat`: refreshes a held lock in the background so a killed publisher's lock goes
  stale while a live one's never does.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import logging
import os
import socket
import ssl
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Coroutine, Iterable
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx

from .targets import PublishError

T = TypeVar("T")
log = logging.getLogger("excessmort.publish")
CHUNK = 1 << 18


def open_staged(root: Any, rel: str) -> Any:
    """A staged file opened for reading without following any symlink (as the folder target
    copies): a symlink, FIFO or escaping path swapped in after the checks is refused, not sent."""
    from ..report.manifest import open_nofollow

    try:
        return os.fdopen(open_nofollow(root, rel), "rb")
    except OSError as exc:
        raise PublishError(
            f"staged file {rel} cannot be sent: {exc.strerror or exc} (only regular files inside "
            "the staged release are published)",
            step="copy",
            retryable=False,
        ) from None


_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def _event_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _loop_lock:
        if _loop is None or _loop.is_closed():
            _loop = asyncio.new_event_loop()
            threading.Thread(
                target=_loop.run_forever, name="excessmort-network", daemon=True
            ).start()
        return _loop


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the network loop and wait for it (timeouts live inside the coroutine)."""
    return asyncio.run_coroutine_threadsafe(coro, _event_loop()).result()


@functools.lru_cache(maxsize=8)
def tls_context(ca_file: str | None = None) -> ssl.SSLContext:
    """One TLS context per trust store, shared by every HTTP client (certificates and host names
    always verified).

    ``ca_file`` (a PEM bundle) replaces the system CA store: the certificate authority of an
    agency's internal web server. Building a context reads the whole store (~0.1 s); a fresh client
    per attempt would pay it each time.
    """
    return ssl.create_default_context(cafile=ca_file)


def tls_failure(exc: BaseException) -> ssl.SSLError | None:
    """The TLS error behind an httpx/OS error (certificate not trusted, host name mismatch,
    handshake failure), or ``None``."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLError):
            return current
        current = current.__cause__ or current.__context__
    return None


def describe_tls_error(error: ssl.SSLError, url: str, ca_file: str | None) -> str:
    """Why the server at ``url`` was not trusted, and what to set."""
    host = urllib.parse.urlsplit(url).netloc or url
    if isinstance(error, ssl.SSLCertVerificationError):
        reason = error.verify_message or str(error)
        trust = f"the CA bundle {ca_file}" if ca_file else "the system CA store"
        return (
            f"TLS certificate of {host} not accepted ({reason}; checked against {trust}): set "
            "ca_file to the PEM bundle of the authority that signed the server's certificate, "
            "or fix the certificate; the release was not sent"
        )
    return f"TLS handshake with {host} failed ({error.reason or error}); the release was not sent"


def http_error(
    exc: BaseException, what: str, url: str, step: str, ca_file: str | None = None
) -> PublishError:
    """The :class:`PublishError` for a failed request: a TLS refusal is not retried (the target is
    left for the next one at once), anything else is."""
    tls = tls_failure(exc)
    if tls is not None:
        return PublishError(
            f"{what} failed: {describe_tls_error(tls, url, ca_file)}", step=step, retryable=False
        )
    return PublishError(f"{what} failed: {describe_http_error(exc)}", step=step)


def verify_http(
    urls: Iterable[tuple[str, str]], timeout: float, ca_file: str | None = None
) -> None:
    """GET each ``(url, sha256)`` and compare; raise ``PublishError(step="verify-http")``."""
    with httpx.Client(
        timeout=timeout, follow_redirects=False, trust_env=False, verify=tls_context(ca_file)
    ) as client:
        for url, sha in urls:
            digest = hashlib.sha256()
            try:
                with client.stream("GET", url) as response:
                    if response.status_code != 200:
                        raise PublishError(
                            f"GET {url} answered HTTP {response.status_code} "
                            f"{response.reason_phrase}",
                            step="verify-http",
                        )
                    for chunk in response.iter_bytes(1 << 20):
                        digest.update(chunk)
            except (httpx.HTTPError, OSError) as exc:
                raise http_error(exc, f"GET {url}", url, "verify-http", ca_file) from None
            if digest.hexdigest() != sha:
                raise PublishError(
                    f"GET {url} returned content whose checksum differs from the manifest",
                    step="verify-http",
                )


def describe_http_error(exc: BaseException) -> str:
    """A short reason for an httpx error (``connection refused``, ``timed out`` ...)."""
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out ({type(exc).__name__})"
    text = str(exc) or type(exc).__name__
    if "refused" in text.lower() or "Errno 111" in text:
        return f"connection refused ({text})"
    return text


def url_join(base: str, rel: str) -> str:
    """``base`` (ending in ``/``) joined with a relative POSIX path, percent-quoted."""
    return base.rstrip("/") + "/" + urllib.parse.quote(rel)


def lock_record(holder: str) -> dict[str, Any]:
    """What the lock says: holder, host, pid, time and a nonce (to tell two locks apart)."""
    return {
        "holder": holder,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "acquired": datetime.now(UTC).isoformat(timespec="seconds"),
        "nonce": uuid.uuid4().hex,
    }


def lock_holder(record: dict[str, Any] | None) -> str:
    """``'holder (pid 12 on host, since ...)'`` for messages."""
    if not record:
        return "an unknown publisher"
    return (
        f"{record.get('holder', '?')} (pid {record.get('pid', '?')} on {record.get('host', '?')}, "
        f"since {record.get('acquired', '?')})"
    )


def parse_lock(data: bytes) -> dict[str, Any] | None:
    """A JSON object from bytes (a lock record, a manifest); ``None`` when it is not one."""
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


def dead_on_this_host(record: dict[str, Any] | None) -> bool:
    """The holder ran on this machine and its process is gone (its lock is stale at once)."""
    if not record or record.get("host") != socket.gethostname():
        return False
    pid = record.get("pid")
    if not isinstance(pid, int) or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class Heartbeat:
    """Call ``beat()`` every ``interval`` seconds in a thread until stopped (errors logged)."""

    def __init__(self, beat: Callable[[], None], interval: float, what: str) -> None:
        self._beat, self._interval, self._what = beat, interval, what
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat {what}", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._beat()
            except Exception as exc:  # the next beat tries again; staleness is the server's view
                log.warning("could not refresh the publish lock on %s: %s", self._what, exc)

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(RuntimeError):
            self._thread.join(30)


def wait_until(deadline: float) -> bool:
    """Sleep a little; ``False`` once ``deadline`` (monotonic) has passed."""
    left = deadline - time.monotonic()
    if left <= 0:
        return False
    time.sleep(min(0.25, left))
    return True
