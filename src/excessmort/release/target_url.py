"""Publish targets named by URL, and the configuration keys of network targets.

======================================  ==================================================
``file:///srv/live``                    :class:`~excessmort.release.targets.DirectoryTarget`
``sftp://user@host:port/srv/live``      :class:`~excessmort.release.sftp.SftpTarget`
``webdav+https://user@host/dav/live``   :class:`~excessmort.release.webdav.WebdavTarget`
``webdav+http://host:8080/live``        (plain HTTP: only on a private network)
======================================  ==================================================

The same settings can be given as ``[[targets]]`` keys in the release configuration or as query
parameters of the URL (``sftp://host/srv/live?known_hosts=/etc/excessmort/known_hosts``):

- ``identity_file``: SSH private key (default: the SSH defaults, ``~/.ssh/id_*`` and the agent);
- ``known_hosts``: file the SSH host key is checked against (default ``~/.ssh/known_hosts``); host
  keys are always verified, an unknown or changed key is refused with its fingerprint shown;
- ``timeout_seconds``: connect and per-request timeout;
- ``ca_file``: PEM bundle of the certificate authorities trusted for ``https`` (WebDAV and the
  ``base_url`` checks), instead of the system store, for a web server certified by the agency's own
  authority; certificates and host names are always verified, and a refused certificate sends the
  release to the next target at once (it is not retried);
- ``base_url``: where the web server serves ``current/`` (SFTP, folder) or the root (WebDAV), for
  verification over HTTP;
- ``password_env`` / ``passphrase_env``: the NAME of an environment variable holding the WebDAV
  password or the SSH key passphrase.

Secrets are never written in a URL or in the configuration: a password in a URL
(``user:secret@host``) or a ``password=``/``passphrase=`` query is refused, with the secret blanked
out of the message.
"""

from __future__ import annotations

import contextlib
import os
import re
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..exceptions import InputError
from .config import TargetSpec
from .targets import DirectoryTarget, Target

__all__ = [
    "NETWORK_KEYS",
    "build_target",
    "is_target_url",
    "redact_url",
    "spec_from_table",
    "spec_from_url",
    "target_from_url",
]

#: Configuration keys of ``[[targets]]`` besides ``name``, ``kind``, ``path`` and ``base_url``.
NETWORK_KEYS = frozenset(
    {
        "url",
        "identity_file",
        "known_hosts",
        "ca_file",
        "timeout_seconds",
        "password_env",
        "passphrase_env",
    }
)
_QUERY_KEYS = (NETWORK_KEYS - {"url"}) | {"base_url"}
_SECRET_QUERY = {"password", "passphrase", "pass", "secret", "token"}
_SCHEMES = {"file": "directory", "sftp": "sftp", "webdav+http": "webdav", "webdav+https": "webdav"}
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def is_target_url(text: str) -> bool:
    """Whether ``text`` names a target by URL (``scheme://...``) rather than by name or path."""
    return bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", text))


def redact_url(url: str) -> str:
    """``url`` with any password in it and any secret-looking query value blanked out."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":***"
        netloc = f"{userinfo}@{hostport}"
    query = urllib.parse.urlencode(
        [
            (k, "***" if k.lower() in _SECRET_QUERY else v)
            for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        ],
        safe="/:*",
    )
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _fail(key: str, value: Any, why: str) -> InputError:
    return InputError(f"target {key!r}: {why}, got {value!r}", column=key, value=value)


def _path_value(value: Any, key: str, base: Path) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise _fail(key, value, "must be a non-empty path")
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() else base / path


def ca_file_value(value: Any, key: str, base: Path) -> Path:
    """A ``ca_file`` setting: an existing PEM bundle that holds at least one certificate."""
    import ssl

    path = _path_value(value, key, base)
    if not path.is_file():
        raise _fail(key, str(path), "must be an existing PEM file of CA certificates")
    try:
        context = ssl.create_default_context(cafile=str(path))
    except (ssl.SSLError, OSError) as exc:
        raise _fail(key, str(path), f"cannot be read as PEM CA certificates ({exc})") from None
    if not context.get_ca_certs():
        raise _fail(key, str(path), "holds no CA certificate")
    return path


def _options(table: Mapping[str, Any], prefix: str, base: Path) -> dict[str, Any]:
    """Validate the network keys of a table (or URL query) into TargetSpec fields."""
    out: dict[str, Any] = {}
    for key in ("identity_file", "known_hosts"):
        if key in table:
            out[key] = _path_value(table[key], f"{prefix}.{key}", base)
    if "ca_file" in table:
        out["ca_file"] = ca_file_value(table["ca_file"], f"{prefix}.ca_file", base)
    if "timeout_seconds" in table:
        value = table["timeout_seconds"]
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise _fail(f"{prefix}.timeout_seconds", value, "must be a number > 0")
        out["timeout_seconds"] = float(value)
    for key in ("password_env", "passphrase_env"):
        if key in table:
            value = table[key]
            if not isinstance(value, str) or not _ENV_NAME.match(value):
                raise _fail(
                    f"{prefix}.{key}",
                    value,
                    "must be the NAME of an environment variable (the secret itself never goes "
                    "in the configuration)",
                )
            out[key] = value
    if "base_url" in table:
        value = table["base_url"]
        if not isinstance(value, str) or (value and not re.match(r"^https?://", value)):
            raise _fail(f"{prefix}.base_url", value, "must start with http:// or https://")
        out["base_url"] = value
    return out


def spec_from_url(
    url: str, *, name: str | None = None, base: Path | None = None, prefix: str = "--to"
) -> TargetSpec:
    """Parse a target URL (with optional query settings) into a :class:`TargetSpec`.

    Raises
    ------
    InputError
        For an unknown scheme, a missing host or path, a secret in the URL, or a bad setting.
    """
    shown = redact_url(url)
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InputError(
            f"{prefix}: {shown} is not a valid URL ({exc})", column=prefix, value=shown
        ) from None
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise InputError(
            f"{prefix}: unknown target scheme {scheme!r} in {shown} (use file://, sftp://, "
            "webdav+http:// or webdav+https://)",
            column=prefix,
            value=shown,
        )
    if parts.password is not None:
        raise InputError(
            f"{prefix}: {shown} holds a password; secrets never go in a URL: set password_env "
            "(or passphrase_env) to the name of an environment variable instead",
            column=prefix,
            value=shown,
        )
    query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
    for key in query:
        if key.lower() in _SECRET_QUERY:
            raise InputError(
                f"{prefix}: {shown} holds a {key!r} parameter; secrets never go in a URL: use "
                "password_env / passphrase_env (the name of an environment variable)",
                column=prefix,
                value=shown,
            )
        if key not in _QUERY_KEYS:
            raise InputError(
                f"{prefix}: unknown URL parameter {key!r} in {shown} (allowed: "
                f"{', '.join(sorted(_QUERY_KEYS))})",
                column=prefix,
                value=shown,
            )
    kind = _SCHEMES[scheme]
    options = _options(query, prefix, base or Path.cwd())
    path = urllib.parse.unquote(parts.path)
    if kind == "directory":
        if parts.netloc not in ("", "localhost"):
            raise InputError(
                f"{prefix}: {shown}: a file:// URL names a local folder (file:///srv/live)",
                column=prefix,
                value=shown,
            )
        folder = Path(path)
        return TargetSpec(
            name or folder.name or str(folder),
            "directory",
            folder,
            options.get("base_url", ""),
            url=url,
        )
    if not parts.hostname:
        raise InputError(f"{prefix}: {shown} has no host", column=prefix, value=shown)
    if kind == "sftp" and (not path or path == "/"):
        raise InputError(
            f"{prefix}: {shown} has no folder (sftp://user@host:port/srv/live)",
            column=prefix,
            value=shown,
        )
    label = name or f"{parts.hostname}{':' + str(port) if port else ''}{path.rstrip('/')}"
    return TargetSpec(
        label,
        kind,  # type: ignore[arg-type]
        Path(path or "/"),
        options.pop("base_url", ""),
        url=urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")),
        **options,
    )


def spec_from_table(item: Mapping[str, Any], name: str, prefix: str, base: Path) -> TargetSpec:
    """A ``[[targets]]`` table that has ``url`` (or a network ``kind``) as a :class:`TargetSpec`."""
    url = item.get("url")
    if not isinstance(url, str) or not url.strip():
        raise _fail(
            f"{prefix}.url", url, "must be a target URL (sftp://, webdav+https://, file://)"
        )
    if "?" in url:
        raise _fail(
            f"{prefix}.url", redact_url(url), "give the settings as keys, not URL parameters"
        )
    spec = spec_from_url(url, name=name, base=base, prefix=f"{prefix}.url")
    kind = item.get("kind", spec.kind)
    if kind != spec.kind:
        raise _fail(f"{prefix}.kind", kind, f"does not match the URL scheme (a {spec.kind} URL)")
    if "path" in item:
        raise _fail(f"{prefix}.path", item["path"], "give either path or url, not both")
    options = _options(item, prefix, base)
    base_url = options.pop("base_url", spec.base_url)
    fields = {**spec.__dict__, **options, "base_url": base_url}
    return TargetSpec(**fields)


def _secret(env: str, what: str, name: str) -> str | None:
    if not env:
        return None
    value = os.environ.get(env)
    if value is None:
        raise InputError(
            f"target {name!r}: environment variable {env} ({what}) is not set",
            column=f"{name}.{what}",
            value=env,
        )
    return value


def build_target(spec: TargetSpec, http_timeout: float = 10.0, **kw: Any) -> Target:
    """The target a :class:`TargetSpec` describes (secrets read from the environment now).

    ``kw`` goes to the target's constructor (``fault``, ``lock_stale_seconds``).
    """
    if spec.kind == "directory":
        return DirectoryTarget(
            spec.name,
            spec.path,
            base_url=spec.base_url,
            http_timeout=http_timeout,
            ca_file=spec.ca_file,
            **kw,
        )
    parts = urllib.parse.urlsplit(spec.url)
    common: dict[str, Any] = {
        "base_url": spec.base_url,
        "timeout": spec.timeout_seconds,
        "http_timeout": http_timeout,
        **kw,
    }
    user = urllib.parse.unquote(parts.username) if parts.username else None
    if spec.kind == "sftp":
        from .sftp import SftpTarget

        root = urllib.parse.unquote(parts.path)
        if root.startswith("/~/"):
            root = root[3:]  # relative to the login folder
        return SftpTarget(
            spec.name,
            parts.hostname or "",
            root,
            port=parts.port or 22,
            username=user,
            identity_file=spec.identity_file,
            known_hosts=spec.known_hosts,
            ca_file=spec.ca_file,
            passphrase=_secret(spec.passphrase_env, "passphrase_env", spec.name),
            **common,
        )
    if spec.kind == "webdav":
        from .webdav import WebdavTarget

        scheme = parts.scheme.lower().removeprefix("webdav+")
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        if parts.port:
            netloc += f":{parts.port}"
        return WebdavTarget(
            spec.name,
            urllib.parse.urlunsplit((scheme, netloc, parts.path or "/", "", "")),
            username=user or "",
            password=_secret(spec.password_env, "password_env", spec.name),
            ca_file=spec.ca_file,
            **common,
        )
    raise InputError(
        f"target {spec.name!r}: unknown kind {spec.kind!r}", column="kind", value=spec.kind
    )


def target_from_url(
    url: str, *, name: str | None = None, http_timeout: float = 10.0, **kw: Any
) -> Target:
    """The target a URL names (see the module docstring)."""
    return build_target(spec_from_url(url, name=name), http_timeout, **kw)
