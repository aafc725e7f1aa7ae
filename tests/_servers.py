"""Real servers for the network publishing tests, started on 127.0.0.1 by the test set-up.

- :class:`Sshd`: Debian's OpenSSH server (``/usr/sbin/sshd``) run in the foreground (``-D -e``) on a
  free port with its own ``sshd_config``, a generated host key and one authorized test key, all in a
  temporary folder: no system-wide change (only ``/run/sshd``, the privilege separation folder
  sshd insists on, is created when missing, as the Debian package does). It can be stopped (the
  listener and every session it forked), started again on the same port, or have only its sessions
  killed (a connection dropped mid-upload).
- :class:`Webdav`: ``wsgidav`` serving a temporary folder through ``cheroot`` in a thread.
- :class:`HttpSite`: Python's ``ThreadingHTTPServer`` serving a folder as readers fetch it (it
  follows the ``current`` symlink like any static web server).
- :class:`Pki`: a certificate authority and server certificates made with ``cryptography``, so
  both servers can speak HTTPS (``tls=``) as an agency's internal web server does.

Keys are generated with asyncssh (OpenSSH formats), so no ``ssh-keygen`` is needed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncssh
import psutil

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, *, up: bool, timeout: float = 10.0) -> None:
    """Wait until ``127.0.0.1:port`` accepts connections (``up``) or refuses them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                if up:
                    return
        except OSError:
            if not up:
                return
        time.sleep(0.02)
    raise TimeoutError(f"port {port} did not come {'up' if up else 'down'} in {timeout} s")


def write_key(path: Path, key: asyncssh.SSHKey, passphrase: str | None = None) -> Path:
    """Write a private key (OpenSSH format, mode 0600) and its ``.pub`` beside it."""
    # few KDF rounds (bcrypt warns about it): a throw-away test key, decrypted in milliseconds
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*bcrypt.kdf.*", category=UserWarning)
        path.write_bytes(key.export_private_key("openssh", passphrase, rounds=4))
    path.chmod(0o600)
    path.with_name(path.name + ".pub").write_bytes(key.export_public_key("openssh"))
    return path


def fingerprint(key_path: Path) -> str:
    """``SHA256:...`` fingerprint of a key file's public key."""
    return asyncssh.read_private_key(key_path).get_fingerprint("sha256")


class Sshd:
    """One OpenSSH server on 127.0.0.1 (see the module docstring)."""

    def __init__(self, base: Path, *, user: str | None = None) -> None:
        self.base = base
        base.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.user = user or _current_user()
        self.host_key = write_key(
            base / "ssh_host_ed25519_key", asyncssh.generate_private_key("ssh-ed25519")
        )
        self.client_key = write_key(
            base / "id_ed25519", asyncssh.generate_private_key("ssh-ed25519")
        )
        (base / "authorized_keys").write_bytes(self.client_key.with_suffix(".pub").read_bytes())
        self.known_hosts = base / "known_hosts"
        self.known_hosts.write_text(self.known_hosts_line())
        self.config = base / "sshd_config"
        self.config.write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {self.host_key}",
                    f"PidFile {base / 'sshd.pid'}",
                    f"AuthorizedKeysFile {base / 'authorized_keys'}",
                    "PermitRootLogin prohibit-password",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    "StrictModes no",
                    "X11Forwarding no",
                    "AllowTcpForwarding no",
                    "PrintMotd no",
                    "LogLevel ERROR",
                    "Subsystem sftp internal-sftp",
                    "",
                ]
            )
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = base / "sshd.log"

    def known_hosts_line(self, host_key: Path | None = None) -> str:
        """The ``known_hosts`` line for this server (``[127.0.0.1]:port ssh-ed25519 ...``)."""
        pub = (host_key or self.host_key).with_name((host_key or self.host_key).name + ".pub")
        kind, blob = pub.read_text().split()[:2]
        return f"[127.0.0.1]:{self.port} {kind} {blob}\n"

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.host_key)

    def url(self, path: str | os.PathLike[str], **query: str) -> str:
        """``sftp://user@127.0.0.1:port/<absolute path>[?query]``."""
        url = f"sftp://{self.user}@127.0.0.1:{self.port}{Path(path).resolve()}"
        if query:
            url += "?" + "&".join(f"{k}={v}" for k, v in query.items())
        return url

    def start(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)  # privilege separation
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        try:
            wait_port(self.port, up=True)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"sshd did not start: {self.log.read_text()[-2000:]}") from None

    def _sessions(self) -> list[psutil.Process]:
        if self.proc is None:
            return []
        try:
            return psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def kill_sessions(self) -> int:
        """Kill every session process (connections drop; the listener stays)."""
        sessions = self._sessions()
        for child in sessions:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(_alive(c) for c in sessions):
            time.sleep(0.01)
        return len(sessions)

    def stop(self) -> None:
        """Stop the listener and every session (the server is down)."""
        if self.proc is None:
            return
        self.kill_sessions()  # first, so that the listener reaps them
        self.proc.kill()
        self.proc.wait(10)
        self.proc = None
        wait_port(self.port, up=False)

    def __enter__(self) -> Sshd:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _current_user() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name


class Pki:
    """A private certificate authority in ``folder`` (``ca.pem``) issuing server certificates."""

    def __init__(self, folder: Path, name: str = "Test Agency Root CA") -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.now(UTC)
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False
            )
            .sign(self._key, hashes.SHA256())
        )
        self.ca_file = folder / "ca.pem"
        self.ca_file.write_bytes(self._pem(self._cert))

    @staticmethod
    def _pem(cert: Any) -> bytes:
        from cryptography.hazmat.primitives import serialization

        return cert.public_bytes(serialization.Encoding.PEM)

    def issue(
        self, name: str, *, hosts: tuple[str, ...] = ("127.0.0.1", "localhost"), days: int = 30
    ) -> tuple[Path, Path]:
        """A server certificate for ``hosts`` (IP addresses and DNS names): ``(cert, key)`` files.
        ``days`` < 0 gives a certificate that has expired."""
        import ipaddress

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        now = datetime.now(UTC)
        start, end = (now - timedelta(days=1), now + timedelta(days=days))
        if days < 0:
            start, end = now + timedelta(days=2 * days), now + timedelta(days=days)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                critical=False,
            )
            .sign(self._key, hashes.SHA256())
        )
        cert_file, key_file = self.folder / f"{name}.pem", self.folder / f"{name}.key"
        cert_file.write_bytes(self._pem(cert))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return cert_file, key_file


def server_tls(tls: tuple[Path, Path]) -> ssl.SSLContext:
    """The server side of HTTPS with ``(cert, key)``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(tls[0]), str(tls[1]))
    return context


class _Thread:
    def __init__(self, server: Any, serve: Any, stop: Any) -> None:
        self.server, self._stop = server, stop
        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self._stop()
        self.thread.join(10)


class Webdav:
    """``wsgidav`` over ``cheroot`` serving ``root`` at ``http://127.0.0.1:port/`` (``https`` with
    ``tls=(cert, key)``)."""

    def __init__(
        self,
        root: Path,
        *,
        user: str = "",
        password: str = "",
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.root = root
        self.user, self.password = user, password
        self.tls = tls
        self.port = free_port()
        self._server: _Thread | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/"

    def start(self) -> None:
        from cheroot import wsgi
        from wsgidav.wsgidav_app import WsgiDAVApp

        auth: dict[str, Any] = {"user_mapping": {"*": True}}
        if self.user:
            auth = {"user_mapping": {"*": {self.user: {"password": self.password}}}}
        config = {
            "host": "127.0.0.1",
            "port": self.port,
            "provider_mapping": {"/": str(self.root)},
            "simple_dc": auth,
            "http_authenticator": {
                "domain_controller": None,
                "accept_basic": True,
                "accept_digest": False,
                "default_to_digest": False,
            },
            "verbose": 0,
            "logging": {"enable": False, "enable_loggers": []},
            "dir_browser": {"enable": False},
            "lock_storage": True,
            "property_manager": True,
        }
        app = WsgiDAVApp(config)
        server = wsgi.Server(("127.0.0.1", self.port), app, numthreads=8)
        if self.tls:
            from cheroot.ssl.builtin import BuiltinSSLAdapter

            server.ssl_adapter = BuiltinSSLAdapter(str(self.tls[0]), str(self.tls[1]))
        server.prepare()
        self._server = _Thread(server, server.serve, server.stop)
        wait_port(self.port, up=True)

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
            wait_port(self.port, up=False)

    def __enter__(self) -> Webdav:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class HttpSite:
    """A static web server on ``root`` (what readers fetch); ``url`` is the root's URL.

    ``try_files`` maps a URL path to a file served when the path's own file is missing, as nginx's
    ``try_files $uri /fallback;`` does.
    """

    def __init__(
        self,
        root: Path,
        *,
        try_files: dict[str, str] | None = None,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.root = root
        self.requests: list[str] = []
        self.try_files = dict(try_files or {})
        self.fallback_hits = 0
        site = self

        class Handler(SimpleHTTPRequestHandler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, directory=str(root), **kwargs)

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                site.requests.append(self.path)
                fallback = site.try_files.get(self.path)
                if fallback is not None:
                    for name in (self.path, fallback):
                        try:
                            body = (root / name.lstrip("/")).read_bytes()
                        except FileNotFoundError:
                            continue
                        site.fallback_hits += name == fallback
                        self.send_response(200)
                        self.send_header("Content-Type", "text/html; charset=utf-8")
                        self.send_header("Content-Length", str(len(body)))
                        self.end_headers()
                        self.wfile.write(body)
                        return
                super().do_GET()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls:
            self.server.socket = server_tls(tls).wrap_socket(self.server.socket, server_side=True)
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}/"
        self._thread: _Thread | None = None

    def __enter__(self) -> HttpSite:
        self._thread = _Thread(
            self.server, lambda: self.server.serve_forever(poll_interval=0.05), self.server.shutdown
        )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread is not None:
            self._thread.stop()
        self.server.server_close()


@contextlib.contextmanager
def tmpfs(path: Path, size_kib: int) -> Iterator[bool]:
    """Mount a ``size_kib`` tmpfs at ``path`` (root only); yields whether it is mounted.

    Unmounted in ``finally`` (lazily if busy) so a failing test leaves no mount behind.
    """
    path.mkdir(parents=True, exist_ok=True)
    mounted = (
        os.geteuid() == 0
        and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_kib}k,mode=0755", "tmpfs", str(path)],
            capture_output=True,
            check=False,
        ).returncode
        == 0
    )
    try:
        yield mounted
    finally:
        if mounted and subprocess.run(["umount", str(path)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], check=False)
