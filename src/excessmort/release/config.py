"""Release configuration: a small TOML file read with :mod:`tomllib`.

Every setting has a default suitable for the demo (fictional people, ``example.org`` addresses), so
``load_config(None)`` works out of the box. ``data/release.example.toml`` shows every key. Unknown
keys and bad values raise :class:`~excessmort.exceptions.InputError` whose ``column`` is the key
path (for example ``"targets[1].kind"``) and whose ``value`` is the offending value.

Examples
--------
>>> cfg = load_config(None)
>>> cfg.release_rule.describe()
'3rd Thursday of each month at 14:00 Europe/London'
>>> len(cfg.regional_teams)
9
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time
from pathlib import Path
from typing import Any, Literal

from ..exceptions import InputError
from ..regions import REGIONS, normalise_region, region_name, region_slug
from ..report.settings import Plausibility, StageSettings
from .calendar import DEFAULT_RULE, WEEKDAYS, ReleaseRule, next_slot, slot_for_month

__all__ = [
    "Config",
    "Contact",
    "Plausibility",
    "RetryPolicy",
    "SmtpSettings",
    "TargetSpec",
    "default_config",
    "load_config",
]

_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")


@dataclass(frozen=True)
class Contact:
    """A person or team: name, e-mail and (optionally) telephone."""

    name: str
    email: str
    phone: str = ""


@dataclass(frozen=True)
class TargetSpec:
    """Where a release can be published.

    Parameters
    ----------
    name : str
        Label used in logs and on the command line (``--to live``).
    kind : {"directory", "sftp", "webdav"}
        ``directory``: a local or mounted folder served by a web server; ``sftp`` and ``webdav``:
        a web server reached over the network (see :mod:`.target_url`).
    path : Path
        The target's root folder (``ROOT/current`` is what the web server serves).
    base_url : str
        URL at which ``ROOT/current`` is served; empty for no HTTP verification.
    url, identity_file, known_hosts, ca_file, timeout_seconds, password_env, passphrase_env
        Network targets: the target URL and its settings (:mod:`.target_url`); secrets are named by
        environment variable, never stored.
    """

    name: str
    kind: Literal["directory", "sftp", "webdav"] = "directory"
    path: Path = Path("live")
    base_url: str = ""
    url: str = ""
    identity_file: Path | None = None
    known_hosts: Path | None = None
    ca_file: Path | None = None
    timeout_seconds: float = 10.0
    password_env: str = ""
    passphrase_env: str = ""


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff with jitter: ``min(max_seconds, initial * factor**k) * (1 +- jitter)``."""

    initial_seconds: float = 5.0
    factor: float = 2.0
    max_seconds: float = 300.0
    jitter: float = 0.2
    fallback_after_seconds: float = 30.0
    give_up_hours: float = 24.0
    http_timeout_seconds: float = 10.0
    #: how long a second publisher waits for a target's lock before it refuses (issue 16)
    lock_wait_seconds: float = 600.0


@dataclass(frozen=True)
class SmtpSettings:
    """Outgoing mail for breach notifications (no authentication; STARTTLS off by default)."""

    host: str = "localhost"
    port: int = 25
    sender: str = "releases@example.org"
    starttls: bool = False
    timeout_seconds: float = 10.0


def _default_teams() -> dict[str, Contact]:
    return {
        code: Contact(
            f"{region_name(code)} mortality team (fictional)",
            f"{region_slug(code)}-team@example.org",
        )
        for code in REGIONS
    }


@dataclass(frozen=True)
class Config:
    """Everything the release pipeline needs besides the data."""

    producer: str = "Example Statistics Office (fictional producer)"
    title: str = "Excess mortality in English regions"
    url: str = "https://stats.example.org/excess-mortality"
    lead_statistician: Contact = Contact(
        "Alex Example (fictional)", "alex.example@example.org", "+44 20 7946 0000"
    )
    head_of_profession: Contact = Contact("Sam Sample (fictional)", "sam.sample@example.org")
    regional_teams: Mapping[str, Contact] = field(default_factory=_default_teams)
    release_rule: ReleaseRule = DEFAULT_RULE
    targets: tuple[TargetSpec, ...] = (TargetSpec("live", "directory", Path("live")),)
    target: str = "live"
    fallbacks: tuple[str, ...] = ()
    deadline_minutes: float = 15.0
    retry: RetryPolicy = RetryPolicy()
    smtp: SmtpSettings = SmtpSettings()
    plausibility: Plausibility = field(default_factory=Plausibility)
    source: Path | None = None
    #: ``[signing]``: Ed25519 PEM keys; the manifest is signed at staging with the private key and
    #: checked by ``check`` and ``publish`` with the public key (issue 16)
    signing_private_key: Path | None = None
    signing_public_key: Path | None = None

    def target_spec(self, name: str) -> TargetSpec:
        """The target named ``name``.

        Raises
        ------
        InputError
            When no target has that name (the message lists the names known).
        """
        for spec in self.targets:
            if spec.name == name:
                return spec
        known = ", ".join(s.name for s in self.targets) or "none"
        raise InputError(
            f"no publish target named {name!r} in the configuration (known: {known})",
            column="publish.target",
            value=name,
        )

    def stage_settings(self) -> StageSettings:
        """What staging needs from this configuration (:func:`excessmort.report.stage_release`
        reads no configuration itself: ``report/`` never imports ``release/``)."""
        rule = self.release_rule

        def slots(month: tuple[int, int]) -> tuple[datetime, datetime]:
            slot = slot_for_month(month, rule)
            return slot, next_slot(slot, rule)

        try:
            live_root: Path | None = self.target_spec(self.target).path
        except InputError:
            live_root = None
        return StageSettings(
            slots=slots,
            release_rule=rule,
            producer=self.producer,
            title=self.title,
            url=self.url,
            lead_statistician=self.lead_statistician,
            regional_teams=self.regional_teams,
            plausibility=self.plausibility,
            signing_private_key=self.signing_private_key,
            live_root=live_root,
        )

    def recipients(self) -> list[str]:
        """E-mail addresses to notify of a breach: Head of Profession and every regional team."""
        seen: list[str] = []
        for contact in [self.head_of_profession, *self.regional_teams.values()]:
            if contact.email and contact.email not in seen:
                seen.append(contact.email)
        return seen


def default_config() -> Config:
    """The demo configuration (fictional people, ``example.org`` addresses)."""
    return Config()


# --------------------------------------------------------------------------------------------------
# reading and validation


def _fail(key: str, value: Any, why: str) -> InputError:
    return InputError(f"configuration key {key!r}: {why}, got {value!r}", column=key, value=value)


def _check_keys(table: Mapping[str, Any], allowed: set[str], prefix: str) -> None:
    for key in table:
        if key not in allowed:
            path = f"{prefix}.{key}" if prefix else key
            raise _fail(path, table[key], f"unknown key (allowed: {', '.join(sorted(allowed))})")


def _table(data: Mapping[str, Any], key: str, prefix: str = "") -> Mapping[str, Any]:
    value = data.get(key, {})
    path = f"{prefix}.{key}" if prefix else key
    if not isinstance(value, Mapping):
        raise _fail(path, value, "must be a table")
    return value


def _str(table: Mapping[str, Any], key: str, default: str, path: str, *, empty: bool = True) -> str:
    value = table.get(key, default)
    if not isinstance(value, str) or (not empty and not value.strip()):
        raise _fail(path, value, "must be a non-empty string" if not empty else "must be a string")
    return value


def _number(
    table: Mapping[str, Any],
    key: str,
    default: float,
    path: str,
    *,
    minimum: float = 0.0,
    strict: bool = False,
) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(path, value, "must be a number")
    if value < minimum or (strict and value == minimum):
        raise _fail(path, value, f"must be {'>' if strict else '>='} {minimum}")
    return float(value)


def _email(value: Any, path: str) -> str:
    if not isinstance(value, str) or not _EMAIL.match(value):
        raise _fail(path, value, "must be an e-mail address like name@example.org")
    return value


def _contact(data: Mapping[str, Any], key: str, default: Contact, phone: bool) -> Contact:
    if key not in data:
        return default
    table = _table(data, key)
    _check_keys(table, {"name", "email", "phone"} if phone else {"name", "email"}, key)
    name = _str(table, "name", default.name, f"{key}.name", empty=False)
    email = _email(table.get("email", default.email), f"{key}.email")
    tel = _str(table, "phone", default.phone, f"{key}.phone") if phone else ""
    return Contact(name, email, tel)


def _rule(table: Mapping[str, Any]) -> ReleaseRule:
    default = ReleaseRule()
    weekday: Any = table.get("weekday", WEEKDAYS[default.weekday])
    if isinstance(weekday, str):
        names = [w.lower() for w in WEEKDAYS]
        if weekday.lower() not in names:
            raise _fail("release.weekday", weekday, f"must be one of {', '.join(WEEKDAYS)}")
        weekday = names.index(weekday.lower())
    elif isinstance(weekday, bool) or not isinstance(weekday, int) or not 0 <= weekday <= 6:
        raise _fail("release.weekday", weekday, "must be a weekday name or 0 (Monday)..6 (Sunday)")
    nth = table.get("nth", default.nth)
    if isinstance(nth, bool) or nth not in (1, 2, 3, 4, -1):
        raise _fail("release.nth", nth, "must be 1, 2, 3, 4 or -1 (last)")
    at_raw = table.get("time", f"{default.at:%H:%M}")
    if isinstance(at_raw, time):
        at = at_raw
    else:
        match = re.fullmatch(r"(\d{1,2}):(\d{2})", str(at_raw))
        if not match or int(match.group(1)) > 23 or int(match.group(2)) > 59:
            raise _fail("release.time", at_raw, 'must be a local time HH:MM such as "14:00"')
        at = time(int(match.group(1)), int(match.group(2)))
    tz = _str(table, "timezone", default.timezone, "release.timezone", empty=False)
    return ReleaseRule(weekday=weekday, nth=nth, at=at, timezone=tz)


def _targets(raw: Any, base: Path) -> tuple[TargetSpec, ...]:
    if not isinstance(raw, list) or not raw:
        raise _fail("targets", raw, "must be a non-empty array of tables ([[targets]])")
    specs: list[TargetSpec] = []
    for i, item in enumerate(raw):
        prefix = f"targets[{i}]"
        if not isinstance(item, Mapping):
            raise _fail(prefix, item, "must be a table")
        from .target_url import NETWORK_KEYS, ca_file_value, spec_from_table

        _check_keys(item, {"name", "kind", "path", "base_url", *NETWORK_KEYS}, prefix)
        name = _str(item, "name", "", f"{prefix}.name", empty=False)
        if any(s.name == name for s in specs):
            raise _fail(f"{prefix}.name", name, "is used by another target; names must be unique")
        if "url" in item or item.get("kind", "directory") in ("sftp", "webdav"):
            specs.append(spec_from_table(item, name, prefix, base))
            continue
        kind = item.get("kind", "directory")
        if kind != "directory":
            raise _fail(f"{prefix}.kind", kind, "must be 'directory', 'sftp' or 'webdav'")
        for key in sorted((NETWORK_KEYS - {"ca_file"}) & set(item)):
            raise _fail(f"{prefix}.{key}", item[key], "applies to sftp/webdav targets (give url)")
        path_raw = _str(item, "path", "", f"{prefix}.path", empty=False)
        path = Path(os.path.expanduser(path_raw))
        if not path.is_absolute():
            path = base / path
        base_url = _str(item, "base_url", "", f"{prefix}.base_url")
        if base_url and not re.match(r"^https?://", base_url):
            raise _fail(f"{prefix}.base_url", base_url, "must start with http:// or https://")
        ca_file = (
            ca_file_value(item["ca_file"], f"{prefix}.ca_file", base) if "ca_file" in item else None
        )
        specs.append(TargetSpec(name, "directory", path, base_url, ca_file=ca_file))
    return tuple(specs)


def _plausibility(table: Mapping[str, Any]) -> Plausibility:
    fields = Plausibility.__dataclass_fields__
    _check_keys(table, set(fields), "plausibility")
    default = Plausibility()
    values: dict[str, Any] = {}
    for key in fields:
        path = f"plausibility.{key}"
        signed = key in ("pscore_min",)
        value = _number(
            table,
            key,
            getattr(default, key),
            path,
            minimum=-100.0 if signed else 0.0,
            strict=key.endswith("_ratio") or key in ("counts_max_z", "dispersion_max"),
        )
        if key.endswith("_weeks"):
            if value != int(value) or value < 1:
                raise _fail(path, table.get(key), "must be a whole number of weeks >= 1")
            value = int(value)
        values[key] = value
    pairs = [
        ("counts_min_ratio", "counts_max_ratio"),
        ("expected_min_ratio", "expected_max_ratio"),
        ("england_min_ratio", "england_max_ratio"),
        ("pscore_min", "pscore_max"),
    ]
    for lo, hi in pairs:
        if values[lo] >= values[hi]:
            raise _fail(
                f"plausibility.{lo}", values[lo], f"must be below plausibility.{hi} ({values[hi]})"
            )
    return Plausibility(**values)


def _config_from_mapping(data: Mapping[str, Any], base: Path, source: Path | None) -> Config:
    default = Config()
    _check_keys(
        data,
        {
            "producer",
            "output",
            "lead_statistician",
            "head_of_profession",
            "regional_teams",
            "release",
            "targets",
            "publish",
            "smtp",
            "signing",
            "plausibility",
        },
        "",
    )
    producer = _str(data, "producer", default.producer, "producer", empty=False)
    output = _table(data, "output")
    _check_keys(output, {"title", "url"}, "output")
    title = _str(output, "title", default.title, "output.title", empty=False)
    url = _str(output, "url", default.url, "output.url")
    lead = _contact(data, "lead_statistician", default.lead_statistician, phone=True)
    hop = _contact(data, "head_of_profession", default.head_of_profession, phone=True)

    teams: dict[str, Contact] = dict(default.regional_teams)
    if "regional_teams" in data:
        teams = {}
        for key, value in _table(data, "regional_teams").items():
            path = f"regional_teams.{key}"
            code = normalise_region(key)
            if code is None:
                raise _fail(path, key, "is not an English region code or name (E12000001..9)")
            if not isinstance(value, Mapping):
                raise _fail(path, value, "must be a table with name and email")
            _check_keys(value, {"name", "email"}, path)
            teams[code] = Contact(
                _str(value, "name", "", f"{path}.name", empty=False),
                _email(value.get("email"), f"{path}.email"),
            )

    release = _table(data, "release")
    _check_keys(release, {"weekday", "nth", "time", "timezone"}, "release")
    rule = _rule(release)

    targets = _targets(data["targets"], base) if "targets" in data else default.targets
    publish = _table(data, "publish")
    _check_keys(publish, {"target", "fallbacks", "deadline_minutes", "retry"}, "publish")
    target = _str(publish, "target", targets[0].name, "publish.target", empty=False)
    names = [s.name for s in targets]
    if target not in names:
        raise _fail("publish.target", target, f"must name one of the targets ({', '.join(names)})")
    fallbacks_raw = publish.get("fallbacks", [])
    if not isinstance(fallbacks_raw, list):
        raise _fail("publish.fallbacks", fallbacks_raw, "must be an array of target names")
    for i, name in enumerate(fallbacks_raw):
        if name not in names or name == target:
            raise _fail(
                f"publish.fallbacks[{i}]",
                name,
                f"must name a target other than the main one ({', '.join(names)})",
            )
    deadline = _number(
        publish,
        "deadline_minutes",
        default.deadline_minutes,
        "publish.deadline_minutes",
        strict=True,
    )
    retry_t = _table(publish, "retry", "publish")
    fields = RetryPolicy.__dataclass_fields__
    _check_keys(retry_t, set(fields), "publish.retry")
    dr = RetryPolicy()
    retry = RetryPolicy(
        **{
            k: _number(
                retry_t,
                k,
                getattr(dr, k),
                f"publish.retry.{k}",
                minimum=1.0 if k == "factor" else 0.0,
                strict=k
                in {"initial_seconds", "max_seconds", "http_timeout_seconds", "give_up_hours"},
            )
            for k in fields
        }
    )
    if retry.jitter >= 1:
        raise _fail("publish.retry.jitter", retry.jitter, "must be a fraction in [0, 1)")

    smtp_t = _table(data, "smtp")
    _check_keys(smtp_t, {"host", "port", "from", "starttls", "timeout_seconds"}, "smtp")
    ds = SmtpSettings()
    port = smtp_t.get("port", ds.port)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise _fail("smtp.port", port, "must be an integer port 1..65535")
    starttls = smtp_t.get("starttls", ds.starttls)
    if not isinstance(starttls, bool):
        raise _fail("smtp.starttls", starttls, "must be true or false")
    smtp = SmtpSettings(
        host=_str(smtp_t, "host", ds.host, "smtp.host", empty=False),
        port=port,
        sender=_email(smtp_t.get("from", ds.sender), "smtp.from"),
        starttls=starttls,
        timeout_seconds=_number(
            smtp_t, "timeout_seconds", ds.timeout_seconds, "smtp.timeout_seconds", strict=True
        ),
    )
    plausibility = _plausibility(_table(data, "plausibility"))
    signing = _table(data, "signing")
    _check_keys(signing, {"private_key", "public_key"}, "signing")
    keys: dict[str, Path | None] = {}
    for key in ("private_key", "public_key"):
        raw = _str(signing, key, "", f"signing.{key}")
        path = Path(os.path.expanduser(raw)) if raw else None
        keys[key] = None if path is None else (path if path.is_absolute() else base / path)
    return Config(
        signing_private_key=keys["private_key"],
        signing_public_key=keys["public_key"],
        producer=producer,
        title=title,
        url=url,
        lead_statistician=lead,
        head_of_profession=hop,
        regional_teams=teams,
        release_rule=rule,
        targets=targets,
        target=target,
        fallbacks=tuple(fallbacks_raw),
        deadline_minutes=deadline,
        retry=retry,
        smtp=smtp,
        plausibility=plausibility,
        source=source,
    )


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read a release configuration TOML file (``None``: the demo defaults).

    Relative target paths are resolved against the file's folder.

    Parameters
    ----------
    path : path or None
        The TOML file.

    Returns
    -------
    Config

    Raises
    ------
    InputError
        When the file is missing or not TOML, or a key is unknown or has a bad value; ``column``
        is the key path and ``value`` the value found.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "r.toml"
    >>> _ = p.write_text('[release]\\nnth = 5\\n')
    >>> load_config(p)
    Traceback (most recent call last):
    ...
    excessmort.exceptions.InputError: configuration key 'release.nth': must be 1, 2, 3, 4 or -1 ...
    """
    if path is None:
        return default_config()
    file = Path(path)
    try:
        with file.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise InputError(
            f"configuration file {file} does not exist", column="config", value=str(file)
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(
            f"configuration file {file} is not valid TOML: {exc}", column="config", value=str(file)
        ) from None
    return _config_from_mapping(data, file.resolve().parent, file.resolve())
