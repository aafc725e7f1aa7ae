"""Publishing over SFTP to a real OpenSSH server (Debian's ``/usr/sbin/sshd`` on 127.0.0.1).

Every test starts its own sshd (a generated host key, one authorized key, its own sshd_config in a
temporary folder; see ``_servers.py``) and, where readers matter, a real web server on the target
folder. Faults are real: the server is stopped and started, its sessions are killed mid-upload, the
disk is a 256 KiB tmpfs, the known_hosts file holds another key. Clocks are injected (virtual
minutes), so the tests wait for real only as long as the network takes.

Also here: targets named by URL and their configuration keys, secrets kept out of every output, and
``excessmort publish STAGED --to sftp://...`` through the installed command in a subprocess.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from _servers import HttpSite, Sshd, Webdav, tmpfs, write_key
from excessmort.cli import main
from excessmort.exceptions import InputError
from excessmort.release.breach import BreachHandler
from excessmort.release.config import RetryPolicy, load_config
from excessmort.release.publish import read_publish_log
from excessmort.release.sftp import LOCK_NAME, SftpTarget
from excessmort.release.target_url import build_target, redact_url, spec_from_url, target_from_url
from excessmort.release.targets import PublishError, StagedRelease
from excessmort.release.webdav import WebdavTarget
from excessmort.report.manifest import read_manifest
from test_publish import SLOT, Clock, assert_staged_intact, live_is, make_staged, run

pytestmark = [pytest.mark.timeout(120), pytest.mark.network]


@pytest.fixture
def sshd(tmp_path: Path):
    with Sshd(tmp_path / "sshd") as server:
        yield server


@pytest.fixture
def cli_logging():
    """Put the ``excessmort`` logger back after an in-process ``main()`` (it binds stderr)."""
    logger = logging.getLogger("excessmort")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:] = saved[0]
    logger.setLevel(saved[1])
    logger.propagate = saved[2]


@pytest.fixture
def www(tmp_path: Path) -> Path:
    root = tmp_path / "www"
    root.mkdir()
    return root


def sftp_target(server: Sshd, root: Path, name: str = "web", **kw: Any) -> SftpTarget:
    kw.setdefault("timeout", 5.0)
    kw.setdefault("known_hosts", server.known_hosts)
    return SftpTarget(
        name,
        "127.0.0.1",
        str(root),
        port=server.port,
        username=server.user,
        identity_file=server.client_key,
        **kw,
    )


def unready_ok() -> list[str]:
    """CLI flags letting these small fixtures (not full releases) through issue 16's readiness
    gate, when the gate is there (``publish(check_ready=...)``)."""
    import inspect

    from excessmort.release.publish import publish

    if "check_ready" in inspect.signature(publish).parameters:
        return ["--force-unready", "--reason", "test fixture: a small staged folder"]
    return []


def files_of(staged: Path) -> dict[str, bytes]:
    return {e["path"]: (staged / e["path"]).read_bytes() for e in read_manifest(staged)["files"]}


# -- the normal path


def test_sftp_release_goes_live_verified_over_sftp_and_http(sshd, www, tmp_path):
    old, new = make_staged(tmp_path, "old"), make_staged(tmp_path, "new")
    with HttpSite(www) as site:
        target = sftp_target(sshd, www, base_url=site.url + "current/")
        r1 = run(old, target)
        assert r1.published and r1.target == "web" and r1.published_at == SLOT
        assert live_is(www, old, new) == old
        fetched = [p.removeprefix("/current/") for p in site.requests]
        assert sorted(fetched) == sorted(files_of(old))  # every manifest file over HTTP
        r2 = run(new, target)
    assert r2.published and live_is(www, old, new) == new
    assert os.readlink(www / "current") == f"releases/{r2.release_id}"
    assert (www / "releases" / r1.release_id).is_dir()  # the old release is kept
    assert target.live_release() == r2.release_id
    assert target.live_manifest() == read_manifest(new)
    # discard: this release's partial upload removed (publish calls it when refusing a release)
    (www / "releases" / f".{r1.release_id}.partial").mkdir()
    target.discard(StagedRelease.load(old))
    assert not (www / "releases" / f".{r1.release_id}.partial").exists()
    live = www / "current"
    assert (live / "manifest.json").read_bytes() == (new / "manifest.json").read_bytes()
    assert json.loads((live / "pre_release_access.json").read_text())["records"] == []
    assert not list(www.glob(".current.*")) and not list((www / "releases").glob(".*"))
    assert not (www / LOCK_NAME).exists()
    target.close()


def test_sftp_publishing_twice_changes_nothing(sshd, www, tmp_path):
    staged = make_staged(tmp_path)
    target = sftp_target(sshd, www)
    assert run(staged, target).published
    before = {
        str(p.relative_to(www)): (p.lstat().st_ino, p.lstat().st_mtime_ns) for p in www.rglob("*")
    }
    copied: list[str] = []
    target.fault = lambda step, path: copied.append(step)
    again = run(staged, target)
    assert again.published
    assert "copy" not in copied
    after = {
        str(p.relative_to(www)): (p.lstat().st_ino, p.lstat().st_mtime_ns) for p in www.rglob("*")
    }
    assert after == before
    assert [r["run"] for r in read_publish_log(staged)["runs"]] == [1, 2]


def test_sftp_partial_upload_is_resumed_and_other_partials_removed(sshd, www, tmp_path):
    staged = make_staged(tmp_path)
    release = StagedRelease.load(staged)
    partial = www / "releases" / f".{release.release_id}.partial"
    (partial / "north-east").mkdir(parents=True)
    (partial / "index.html").write_bytes((staged / "index.html").read_bytes())  # good: kept
    (partial / "north-east" / "report.html").write_text("half a fi")  # torn: redone
    other = www / "releases" / ".2027-02-18-abcdef.partial"
    other.mkdir()
    (other / "x").write_text("stale")
    os.symlink("releases/nowhere", www / ".current.999.tmp")
    kept = (partial / "index.html").stat().st_ino
    copied: list[str] = []

    def fault(step: str, path: Any) -> None:
        if step == "copy":
            copied.append(str(path).split(".partial/")[1])

    assert run(staged, sftp_target(sshd, www, fault=fault)).published
    assert live_is(www, staged) == staged
    assert "index.html" not in copied and "north-east/report.html" in copied
    assert len(copied) == len(files_of(staged)) - 1
    assert (www / "releases" / release.release_id / "index.html").stat().st_ino == kept
    assert not other.exists() and not (www / ".current.999.tmp").exists()


# -- faults


def test_sshd_stopped_at_the_slot_and_back_before_the_deadline(sshd, www, tmp_path):
    old, new = make_staged(tmp_path, "old"), make_staged(tmp_path, "new")
    target = sftp_target(sshd, www)
    assert run(old, target).published
    sshd.stop()  # down at 14:00
    clock = Clock(SLOT)
    restarted: list[datetime] = []

    def on_sleep(now: datetime) -> None:
        if len(clock.sleeps) == 3 and not restarted:
            assert live_is(www, old, new) == old
            sshd.start()
            restarted.append(now)

    clock.on_sleep = on_sleep
    result = run(new, target, clock, deadline=timedelta(minutes=15))
    assert result.published and result.target == "web" and not result.late
    failed = [a for a in result.attempts if not a.ok]
    assert len(failed) == 3
    assert all(
        a.step in ("lock", "prepare") and "refused" in (a.error or "").lower() for a in failed
    )
    assert result.published_at is not None and result.published_at < SLOT + timedelta(minutes=15)
    assert result.published_at >= restarted[0]
    assert clock.sleeps[:3] == pytest.approx([1, 2, 4], rel=0.21)  # backoff with jitter
    assert live_is(www, old, new) == new
    assert_staged_intact(old, new)


def test_sshd_down_for_good_falls_back_to_webdav_then_main_catches_up(sshd, www, tmp_path):
    old, new = make_staged(tmp_path, "old"), make_staged(tmp_path, "new")
    dav_root = tmp_path / "dav"
    dav_root.mkdir()
    main_target = sftp_target(sshd, www)
    assert run(old, main_target).published
    sshd.stop()
    with Webdav(dav_root) as dav, HttpSite(dav_root) as site:
        mirror = WebdavTarget("mirror", dav.url, base_url=site.url, timeout=5)
        result = run(new, main_target, fallbacks=[mirror], retry=RetryPolicy())
        assert result.published and result.target == "mirror" and not result.late
        assert (result.published_at - SLOT).total_seconds() < 60
        assert live_is(www, old, new) == old  # the main site still has the old release, whole
        assert mirror.live_release() == result.release_id
        # the fallback that went live is remembered: once the main host is back, the next run
        # brings it up to date (and the fallback keeps the release)
        sshd.start()
        again = run(new, main_target, fallbacks=[mirror])
        assert again.published and again.target == "web"
        assert main_target.live_release() == result.release_id == mirror.live_release()
    assert live_is(www, old, new) == new
    log = read_publish_log(new)
    assert [r["run"] for r in log["runs"]] == [1, 2] and log["published_to"] == "web"
    assert any(a["target"] == "mirror" and a["ok"] for a in log["runs"][0]["attempts"])


def test_every_host_down_writes_the_breach_paperwork(sshd, www, tmp_path):
    old, new = make_staged(tmp_path, "old"), make_staged(tmp_path, "new")
    dav_root = tmp_path / "dav"
    dav_root.mkdir()
    main_target = sftp_target(sshd, www)
    assert run(old, main_target).published
    sshd.stop()
    dav = Webdav(dav_root)  # never started: connection refused
    handler = BreachHandler(load_config(None), notify=False, now=lambda: SLOT)
    result = run(
        new,
        main_target,
        fallbacks=[WebdavTarget("mirror", dav.url, timeout=2)],
        breach=handler,
        deadline=timedelta(minutes=5),
        retry=RetryPolicy(
            initial_seconds=1, max_seconds=60, fallback_after_seconds=20, give_up_hours=0.1
        ),
    )
    assert not result.published and result.breached
    assert {a.target for a in result.attempts} == {"web", "mirror"}
    assert all("refused" in (a.error or "").lower() for a in result.attempts)
    report = json.loads((new / "breach_report.json").read_text())
    assert report["release_id"] == result.release_id if "release_id" in report else True
    assert (new / "change_notice.md").exists()
    assert read_publish_log(new)["status"] == "failed"
    assert live_is(www, old, new) == old
    assert_staged_intact(old, new)


def test_connection_dropped_mid_upload_never_shows_a_partial_release(sshd, www, tmp_path):
    old = make_staged(tmp_path, "old")
    new = make_staged(tmp_path, "new", big=300 * 1024)
    assert run(old, sftp_target(sshd, www)).published
    copies: list[str] = []
    seen_live: list[Path] = []

    def fault(step: str, path: Any) -> None:
        if step == "copy":
            copies.append(str(path).split(".partial/")[1])
            if len(copies) == 3:
                assert sshd.kill_sessions() >= 1  # the connection drops under the upload
                seen_live.append(live_is(www, old, new))

    with HttpSite(www) as site:
        result = run(new, sftp_target(sshd, www, fault=fault, base_url=site.url + "current/"))
    assert result.published and result.target == "web"
    first = result.attempts[0]
    assert not first.ok and first.step == "upload"
    dropped = ("connectionlost", "broken pipe", "closed", "reset", "eof")
    assert any(word in (first.error or "").lower() for word in dropped), first.error
    assert seen_live == [old]  # while the upload was broken, readers had the old release whole
    # resumed: the files written before the drop were kept, the interrupted one was redone
    n = len(files_of(new))
    assert len(copies) == n + 1 and copies[2] == copies[3]
    assert live_is(www, old, new) == new
    assert not list((www / "releases").glob(".*.partial"))


def test_full_remote_disk_keeps_the_old_release(sshd, tmp_path, monkeypatch):
    old = make_staged(tmp_path, "old")
    new = make_staged(tmp_path, "new", big=400 * 1024)  # does not fit in 256 KiB
    root = tmp_path / "small"
    with tmpfs(root, 256) as mounted:
        assert mounted, "the test runs as root and mounts a tmpfs (see _servers.tmpfs)"
        target = sftp_target(sshd, root)
        assert run(old, target).published
        # first attempt: let the free-space check pass so the server really runs out mid-write
        real = SftpTarget._free_bytes
        calls = {"n": 0}

        async def optimistic(self: SftpTarget, sftp: Any) -> int | None:
            calls["n"] += 1
            return 1 << 40 if calls["n"] == 1 else await real(self, sftp)

        monkeypatch.setattr(SftpTarget, "_free_bytes", optimistic)
        result = run(
            new,
            target,
            deadline=timedelta(minutes=1),
            retry=RetryPolicy(initial_seconds=1, max_seconds=60, give_up_hours=0.05),
        )
        assert not result.published
        errors = [a.error or "" for a in result.attempts]
        assert "no space left (ENOSPC" in errors[0]  # the real ENOSPC from the server, mid-file
        assert all("ENOSPC" in e for e in errors) and len(errors) > 2
        assert all("the release needs" in e for e in errors[1:])  # refused before writing
        assert live_is(root, old, new) == old
        assert not list((root / "releases").glob(".*.partial"))  # the space is given back
    assert_staged_intact(old, new)


def test_wrong_host_key_is_refused_with_its_fingerprint_and_not_retried(sshd, www, tmp_path):
    staged = make_staged(tmp_path)
    impostor = write_key(tmp_path / "other_host_key", asyncssh.generate_private_key("ssh-ed25519"))
    wrong = tmp_path / "known_hosts_wrong"
    wrong.write_text(sshd.known_hosts_line(impostor))
    result = run(staged, sftp_target(sshd, www, known_hosts=wrong))
    assert not result.published and len(result.attempts) == 1  # refused, not retried
    error = result.attempts[0].error or ""
    assert "CHANGED" in error and sshd.fingerprint in error
    assert asyncssh.read_public_key(str(impostor) + ".pub").get_fingerprint() in error
    # an unknown host: refused too, showing the fingerprint to check
    empty = tmp_path / "known_hosts_empty"
    empty.write_text("")
    with pytest.raises(PublishError) as info:
        sftp_target(sshd, www, known_hosts=empty).prepare(StagedRelease.load(staged))
    assert not info.value.retryable and "is not in" in str(info.value)
    assert sshd.fingerprint in str(info.value)
    # no known_hosts file at all: refused (never connect unverified)
    with pytest.raises(PublishError, match="host keys are always verified") as info:
        sftp_target(sshd, www, known_hosts=tmp_path / "missing").prepare(StagedRelease.load(staged))
    assert not info.value.retryable
    assert not (www / "current").exists() and not (www / "releases").exists()


def test_reader_polling_over_http_during_switches_never_sees_a_mix(sshd, www, tmp_path):
    old, new = make_staged(tmp_path, "old"), make_staged(tmp_path, "new")
    versions = {"old": files_of(old), "new": files_of(new)}
    target = sftp_target(sshd, www)
    assert run(old, target).published
    assert run(new, target).published  # both uploaded: the loop below only switches
    seen: list[tuple[str, str]] = []
    problems: list[str] = []
    stop = threading.Event()

    with HttpSite(www) as site:

        def reader() -> None:
            while not stop.is_set():
                for rel in versions["old"]:
                    try:
                        with urllib.request.urlopen(site.url + "current/" + rel, timeout=5) as r:
                            body = r.read()
                    except Exception as exc:
                        problems.append(f"{rel}: {exc}")
                        continue
                    which = [v for v, files in versions.items() if files[rel] == body]
                    if len(which) != 1:
                        problems.append(f"{rel}: neither release ({body[:40]!r})")
                    else:
                        seen.append((rel, which[0]))

        thread = threading.Thread(target=reader)
        thread.start()
        switches = 0
        for staged in [old, new] * 3:
            assert run(staged, target).published
            switches += 1
        stop.set()
        thread.join(10)
    print(f"sftp reader: {switches} switches, {len(seen)} files fetched during them")
    assert not problems, problems[:5]
    assert switches == 6 and len(seen) > 50
    assert {w for _, w in seen} == {"old", "new"}


def test_one_publisher_lock_on_the_server(sshd, www):
    a = sftp_target(sshd, www, name="a", lock_stale_seconds=2.0)
    b = sftp_target(sshd, www, name="b", lock_stale_seconds=2.0)
    with a.lock("staging-1", timeout=0):
        record = json.loads((www / LOCK_NAME).read_text())
        assert record["holder"] == "staging-1" and record["pid"] == os.getpid()
        first = (www / LOCK_NAME).stat().st_mtime
        # waiting longer than the stale time: the holder's heartbeat keeps the lock fresh
        with pytest.raises(PublishError) as info, b.lock("staging-2", timeout=2.6):
            pass
        assert info.value.step == "lock" and "staging-1" in str(info.value)
        assert (www / LOCK_NAME).stat().st_mtime > first  # refreshed while held
    assert not (www / LOCK_NAME).exists()
    with b.lock("staging-2", timeout=0):
        assert json.loads((www / LOCK_NAME).read_text())["holder"] == "staging-2"
    # a lock left by a killed publisher: stale once not refreshed, broken by the next one
    (www / LOCK_NAME).write_text(json.dumps({"holder": "crashed", "host": "elsewhere", "pid": 1}))
    old = time.time() - 3600
    os.utime(www / LOCK_NAME, (old, old))
    with b.lock("staging-2", timeout=0):
        assert json.loads((www / LOCK_NAME).read_text())["holder"] == "staging-2"
    # a fresh lock of a dead process on this machine is stale at once
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    import socket

    (www / LOCK_NAME).write_text(
        json.dumps({"holder": "dead", "host": socket.gethostname(), "pid": int(dead.stdout)})
    )
    with a.lock("staging-1", timeout=0):
        assert json.loads((www / LOCK_NAME).read_text())["holder"] == "staging-1"
    assert not list(www.glob(LOCK_NAME + ".stale.*"))


# -- targets by URL, configuration, secrets


def test_target_urls_and_configuration_keys(tmp_path):
    spec = spec_from_url("sftp://deploy@web1.example.org:2222/srv/live")
    assert (spec.kind, spec.path, spec.name) == (
        "sftp",
        Path("/srv/live"),
        "web1.example.org:2222/srv/live",
    )
    target = build_target(spec)
    assert isinstance(target, SftpTarget)
    assert (target.host, target.port, target.username, str(target.root)) == (
        "web1.example.org",
        2222,
        "deploy",
        "/srv/live",
    )
    folder = target_from_url(f"file://{tmp_path}")
    assert type(folder).__name__ == "DirectoryTarget" and folder.root == tmp_path
    dav = target_from_url(
        "webdav+https://pub@dav.example.org/site/live?base_url=https://www.example.org/"
    )
    assert isinstance(dav, WebdavTarget) and dav.url == "https://dav.example.org/site/live/"
    assert dav.base_url == "https://www.example.org/" and dav.username == "pub"
    with_q = spec_from_url("sftp://h/srv?known_hosts=/etc/kh&timeout_seconds=3&identity_file=/k")
    assert (with_q.known_hosts, with_q.identity_file, with_q.timeout_seconds) == (
        Path("/etc/kh"),
        Path("/k"),
        3.0,
    )
    for bad, why in [
        ("ftp://h/srv", "unknown target scheme"),
        ("sftp://h", "has no folder"),
        ("sftp://h/srv?colour=red", "unknown URL parameter"),
        ("sftp:///srv", "has no host"),
        ("sftp://h/srv?timeout_seconds=-1", "must be a number > 0"),
    ]:
        with pytest.raises(InputError, match=why):
            spec_from_url(bad)
    # secrets are refused in URLs, and blanked out of the message
    for url in [
        "webdav+https://pub:hunter2-SECRET@dav.example.org/x",
        "sftp://h/srv?passphrase=hunter2-SECRET",
    ]:
        with pytest.raises(InputError) as info:
            spec_from_url(url)
        assert "hunter2-SECRET" not in str(info.value) and "secrets never go in a URL" in str(
            info.value
        )
        assert "hunter2-SECRET" not in redact_url(url)

    cfg = tmp_path / "release.toml"
    cfg.write_text(
        """
[[targets]]
name = "web"
url = "sftp://deploy@web1.example.org:2222/srv/live"
identity_file = "keys/deploy_ed25519"
known_hosts = "keys/known_hosts"
timeout_seconds = 7
passphrase_env = "DEPLOY_KEY_PASSPHRASE"
base_url = "https://www.example.org/excess-mortality/current/"

[[targets]]
name = "mirror"
url = "webdav+https://pub@dav.example.net/live"
password_env = "MIRROR_DAV_PASSWORD"
base_url = "https://mirror.example.net/"

[publish]
target = "web"
fallbacks = ["mirror"]
"""
    )
    config = load_config(cfg)
    web, mirror = config.targets
    assert web.kind == "sftp" and web.identity_file == tmp_path / "keys" / "deploy_ed25519"
    assert web.known_hosts == tmp_path / "keys" / "known_hosts" and web.timeout_seconds == 7.0
    assert mirror.kind == "webdav" and mirror.password_env == "MIRROR_DAV_PASSWORD"
    assert config.fallbacks == ("mirror",)
    with pytest.raises(InputError, match="MIRROR_DAV_PASSWORD"):
        build_target(mirror)  # the variable is not set: named, never guessed
    for extra, key in [
        ('password_env = "not a name"', "password_env"),
        ('kind = "webdav"', "kind"),
        ('path = "/srv"', "path"),
    ]:
        bad = tmp_path / f"bad-{key}.toml"
        bad.write_text(f'[[targets]]\nname = "w"\nurl = "sftp://h/srv"\n{extra}\n')
        with pytest.raises(InputError) as info:
            load_config(bad)
        assert info.value.column == f"targets[0].{key}"
    bad = tmp_path / "bad-dir.toml"
    bad.write_text('[[targets]]\nname = "w"\npath = "/srv"\nknown_hosts = "/kh"\n')
    with pytest.raises(InputError, match="applies to sftp/webdav"):
        load_config(bad)


def test_secrets_never_appear_in_output_logs_or_paperwork(
    sshd, www, tmp_path, monkeypatch, caplog, capsys, cli_logging
):
    secret = "pass-PHRASE-7f3a9c"
    key = write_key(tmp_path / "locked_key", asyncssh.generate_private_key("ssh-ed25519"), secret)
    (sshd.base / "authorized_keys").write_bytes((tmp_path / "locked_key.pub").read_bytes())
    recent = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    staged = make_staged(tmp_path, slot=recent)
    cfg = tmp_path / "release.toml"
    cfg.write_text(
        f"""
[[targets]]
name = "web"
url = "{sshd.url(www)}"
identity_file = "{key}"
known_hosts = "{sshd.known_hosts}"
passphrase_env = "TEST_KEY_PASSPHRASE"
timeout_seconds = 5
"""
    )
    monkeypatch.setenv("TEST_KEY_PASSPHRASE", secret)
    caplog.set_level(logging.DEBUG)  # every logger, asyncssh's included
    assert (
        main(
            [
                "-v",
                "publish",
                str(staged),
                "--config",
                str(cfg),
                "--to",
                "web",
                "--no-email",
                *unready_ok(),
            ]
        )
        == 0
    )
    assert live_is(www, staged) == staged
    # a wrong passphrase: refused, not retried, and the (wrong) secret is not shown either
    monkeypatch.setenv("TEST_KEY_PASSPHRASE", "wrong-" + secret)
    target = build_target(load_config(cfg).targets[0])
    with pytest.raises(PublishError) as info:
        target.prepare(StagedRelease.load(staged))
    assert not info.value.retryable and "passphrase" in str(info.value)
    out, err = capsys.readouterr()
    texts = [
        caplog.text,
        out,
        err,
        str(info.value),
        repr(target),
        *[log.read_text() for log in staged.glob("publish_log*")],
    ]
    assert "Sending open" in caplog.text and "publishing" in err  # both logs were captured
    assert list(staged.glob("publish_log*"))
    assert all(secret not in t for t in texts)


def test_cli_publish_to_an_sftp_url_with_stock_ssh_settings(sshd, www, tmp_path):
    """``excessmort publish STAGED --to sftp://...`` in a subprocess, with ~/.ssh as OpenSSH has it."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_bytes(sshd.client_key.read_bytes())
    (home / ".ssh" / "id_ed25519").chmod(0o600)
    (home / ".ssh" / "known_hosts").write_text(sshd.known_hosts_line())
    recent = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    staged = make_staged(tmp_path, slot=recent)
    script = Path(sys.executable).with_name("excessmort")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "excessmort.cli"]
    env = {**os.environ, "HOME": str(home)}
    env.pop("SSH_AUTH_SOCK", None)
    with HttpSite(www) as site:
        url = sshd.url(www, base_url=site.url + "current/")
        proc = subprocess.run(
            [*command, "publish", str(staged), "--to", url, "--no-email", *unready_ok()],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert proc.returncode == 0, proc.stderr
    assert "published" in proc.stdout
    assert live_is(www, staged) == staged
    # a host it has never seen: exit 1, the fingerprint shown, nothing changed
    (home / ".ssh" / "known_hosts").write_text("")
    other = make_staged(tmp_path, "other", slot=recent)
    proc = subprocess.run(
        [*command, "publish", str(other), "--to", sshd.url(www), "--no-email", *unready_ok()],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1 and sshd.fingerprint in proc.stderr
    assert live_is(www, staged, other) == staged


def test_sftp_corruption_found_after_the_switch_switches_back(sshd, www, tmp_path):
    old, new = make_staged(tmp_path, "old"), make_staged(tmp_path, "new")
    assert run(old, sftp_target(sshd, www)).published

    def fault(step: str, path: Any) -> None:
        if step == "verify":
            (www / "current" / "index.html").write_text("vandalised")

    result = run(
        new,
        sftp_target(sshd, www, fault=fault),
        deadline=timedelta(minutes=1),
        retry=RetryPolicy(initial_seconds=1, max_seconds=10, give_up_hours=0.0001),
    )
    assert not result.published
    assert "switched back" in (result.attempts[0].error or "")
    assert live_is(www, old, new) == old


KILL_SCRIPT = """
import inspect, sys
from datetime import datetime, timedelta, UTC
from excessmort.release.config import RetryPolicy
from excessmort.release.publish import publish
from excessmort.release.sftp import SftpTarget
staged, root, port, user, key, known = sys.argv[1:7]
target = SftpTarget("web", "127.0.0.1", root, port=int(port), username=user, identity_file=key,
                    known_hosts=known, timeout=5)
extra = {"check_ready": False} if "check_ready" in inspect.signature(publish).parameters else {}
result = publish(staged, target, slot=datetime(2020, 1, 16, 14, tzinfo=UTC),
                 deadline=timedelta(days=36500),
                 retry=RetryPolicy(initial_seconds=0.01, give_up_hours=0.0001), **extra)
sys.exit(0 if result.published else 1)
"""


@pytest.mark.slow
def test_sigkill_during_an_sftp_publish_leaves_a_complete_release(sshd, tmp_path, monkeypatch):
    """The publisher SIGKILLed mid-upload, with the temporary link made, and after the switch."""
    import shutil

    from excessmort.release.targets import KILL_ENV, TRACE_ENV

    slot = datetime(2020, 1, 16, 14, tzinfo=UTC)
    old, new = make_staged(tmp_path, "old", slot=slot), make_staged(tmp_path, "new", slot=slot)
    www = tmp_path / "www"
    www.mkdir()
    assert run(old, sftp_target(sshd, www), Clock(slot)).published
    old_id, new_id = StagedRelease.load(old).release_id, StagedRelease.load(new).release_id
    # learn the checkpoints from a run (in this process) on a copy of the target folder
    probe = tmp_path / "probe"
    shutil.copytree(www, probe, symlinks=True)
    trace = tmp_path / "trace.txt"
    monkeypatch.setenv(TRACE_ENV, str(trace))
    assert run(new, sftp_target(sshd, probe), Clock(slot)).published
    monkeypatch.delenv(TRACE_ENV)
    lines = [line.split(" ", 1) for line in trace.read_text().splitlines()]
    first = int(lines[0][0])
    steps = [step for _, step in lines]
    assert int(lines[-1][0]) - first == len(steps) - 1
    for step in ("copy", "symlinked", "switched"):
        k = steps.index(step) + 2 if step == "copy" else steps.index(step) + 1
        args = [str(new), str(www), str(sshd.port), sshd.user, str(sshd.client_key)]
        killed = subprocess.run(
            [sys.executable, "-c", KILL_SCRIPT, *args, str(sshd.known_hosts)],
            env={**os.environ, KILL_ENV: str(k)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert killed.returncode == -9, (k, step, killed.stderr)
        assert live_is(www, old, new) == (new if step == "switched" else old)  # complete
        assert run(new, sftp_target(sshd, www), Clock(slot)).published  # the next run completes
        assert live_is(www, old, new) == new
        assert not list((www / "releases").glob(".*.partial")) and not list(www.glob(".current.*"))
        # back to the old release for the next kill
        os.symlink(f"releases/{old_id}", www / ".back")
        os.replace(www / ".back", www / "current")
        shutil.rmtree(www / "releases" / new_id)
