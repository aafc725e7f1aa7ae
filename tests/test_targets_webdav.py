"""Publishing over WebDAV to a real wsgidav server (a temporary folder, through cheroot).

Readers fetch the same folder from a separate static web server (``ThreadingHTTPServer``), as on a
real site where the WebDAV endpoint is for publishers only. The live release is named by the pointer
``index.html`` (see :mod:`excessmort.release.webdav` for why a pointer and not a collection MOVE).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from _servers import HttpSite, Sshd, Webdav, tmpfs
from excessmort.cli import main
from excessmort.release.config import RetryPolicy, load_config
from excessmort.release.publish import read_publish_log
from excessmort.release.target_url import build_target
from excessmort.release.targets import PublishError, StagedRelease
from excessmort.release.webdav import POINTER_NAME, WebdavTarget, pointed_release
from excessmort.report.manifest import verify_manifest
from test_publish import SLOT, Clock, assert_staged_intact, make_staged, run
from test_targets_sftp import cli_logging, files_of, sftp_target, unready_ok  # noqa: F401

pytestmark = [pytest.mark.timeout(120), pytest.mark.network]


@pytest.fixture
def dav_root(tmp_path: Path) -> Path:
    root = tmp_path / "dav"
    root.mkdir()
    return root


@pytest.fixture
def dav(dav_root: Path):
    with Webdav(dav_root) as server:
        yield server


def dav_live(root: Path, *staged: Path) -> Path:
    """Assert the pointer names exactly one of the staged releases, complete; return which."""
    rid = pointed_release((root / POINTER_NAME).read_bytes())
    assert rid, "nothing live"
    folder = root / "releases" / rid
    matches = [
        s
        for s in staged
        if not verify_manifest(folder, json.loads((s / "manifest.json").read_text()))
    ]
    assert len(matches) == 1, f"{rid} matches none of {staged}"
    return matches[0]


def test_webdav_release_goes_live_verified_over_webdav_and_http(dav, dav_root, tmp_path):
    old, new = make_staged(tmp_path, "old"), make_staged(tmp_path, "new")
    with HttpSite(dav_root) as site:
        target = WebdavTarget("dav", dav.url, base_url=site.url, timeout=5)
        r1 = run(old, target)
        assert r1.published and r1.target == "dav"
        assert dav_live(dav_root, old, new) == old
        wanted = {f"/releases/{r1.release_id}/{rel}" for rel in files_of(old)}
        assert wanted <= set(site.requests) and "/index.html" in site.requests
        r2 = run(new, target)
        assert r2.published and dav_live(dav_root, old, new) == new
        # readers who follow the pointer page land in the new release
        page = httpx.get(site.url, follow_redirects=False).text
        assert f"url=releases/{r2.release_id}/" in page
    assert target.live_release() == r2.release_id
    assert target.live_manifest() == json.loads((new / "manifest.json").read_text())
    (dav_root / "releases" / f".{r1.release_id}.partial").mkdir()
    target.discard(StagedRelease.load(old))
    assert not (dav_root / "releases" / f".{r1.release_id}.partial").exists()
    assert (dav_root / "releases" / r1.release_id).is_dir()  # the old release is kept
    assert (dav_root / "releases" / r2.release_id / "manifest.json").read_bytes() == (
        new / "manifest.json"
    ).read_bytes()
    assert not [p for p in dav_root.rglob(".*") if p.name != ".publish.lock"]
    # publishing again uploads nothing and does not touch the pointer
    before = (dav_root / POINTER_NAME).stat().st_mtime_ns
    steps: list[str] = []
    target.fault = lambda step, path: steps.append(step)
    target.base_url = ""  # the readers' web server is gone now
    assert run(new, target).published
    assert "copy" not in steps and "switch" not in steps
    assert (dav_root / POINTER_NAME).stat().st_mtime_ns == before


def test_webdav_partial_upload_is_resumed_and_other_partials_removed(dav, dav_root, tmp_path):
    staged = make_staged(tmp_path)
    release = StagedRelease.load(staged)
    partial = dav_root / "releases" / f".{release.release_id}.partial"
    (partial / "london").mkdir(parents=True)
    (partial / "index.html").write_bytes((staged / "index.html").read_bytes())
    (partial / "london" / "report.html").write_text("torn")
    other = dav_root / "releases" / ".2027-02-18-abcdef.partial"
    other.mkdir()
    (other / "x").write_text("stale")
    copied: list[str] = []

    def fault(step: str, path: Any) -> None:
        if step == "copy":
            copied.append(str(path).split(".partial/")[1])

    assert run(staged, WebdavTarget("dav", dav.url, fault=fault)).published
    assert dav_live(dav_root, staged) == staged
    assert "index.html" not in copied and "london/report.html" in copied
    assert len(copied) == len(files_of(staged)) - 1
    assert not other.exists() and not partial.exists()


def test_webdav_down_at_the_slot_and_back_before_the_deadline(dav, dav_root, tmp_path):
    old, new = make_staged(tmp_path, "old"), make_staged(tmp_path, "new")
    target = WebdavTarget("dav", dav.url, timeout=5)
    assert run(old, target).published
    dav.stop()
    clock = Clock(SLOT)

    def on_sleep(now: Any) -> None:
        if len(clock.sleeps) == 2:
            assert dav_live(dav_root, old, new) == old
            dav.start()

    clock.on_sleep = on_sleep
    result = run(new, target, clock)
    assert result.published and not result.late
    failed = [a for a in result.attempts if not a.ok]
    assert len(failed) == 2 and all("refused" in (a.error or "").lower() for a in failed)
    assert dav_live(dav_root, old, new) == new


def test_webdav_down_for_good_falls_back_to_sftp(dav, dav_root, tmp_path):
    staged = make_staged(tmp_path)
    www = tmp_path / "www"
    www.mkdir()
    dav.stop()
    with Sshd(tmp_path / "sshd") as sshd:
        result = run(
            staged,
            WebdavTarget("dav", dav.url, timeout=2),
            fallbacks=[sftp_target(sshd, www, name="sftp-mirror")],
            retry=RetryPolicy(),
        )
    assert result.published and result.target == "sftp-mirror"
    assert (result.published_at - SLOT).total_seconds() < 60
    assert not verify_manifest(www / "current", json.loads((staged / "manifest.json").read_text()))
    assert not (dav_root / POINTER_NAME).exists()


def test_webdav_server_gone_mid_upload_never_shows_a_partial_release(dav, dav_root, tmp_path):
    old, new = make_staged(tmp_path, "old"), make_staged(tmp_path, "new", big=200 * 1024)
    assert run(old, WebdavTarget("dav", dav.url)).published
    copies: list[str] = []
    clock = Clock(SLOT)

    def fault(step: str, path: Any) -> None:
        if step == "copy":
            copies.append(str(path))
            if len(copies) == 3:
                dav.stop()  # the server goes away under the upload
                assert dav_live(dav_root, old, new) == old

    clock.on_sleep = lambda now: dav.start() if len(clock.sleeps) == 2 else None
    result = run(new, WebdavTarget("dav", dav.url, fault=fault, timeout=3), clock)
    assert result.published
    assert not result.attempts[0].ok and result.attempts[0].step == "upload"
    assert len(copies) == len(files_of(new)) + 1  # resumed: only the interrupted file again
    assert dav_live(dav_root, old, new) == new
    assert not list((dav_root / "releases").glob(".*.partial"))


def test_webdav_corrupt_upload_never_goes_live(dav, dav_root, tmp_path):
    old, new = make_staged(tmp_path, "old"), make_staged(tmp_path, "new")
    assert run(old, WebdavTarget("dav", dav.url)).published
    hits = {"n": 0}

    def fault(step: str, path: Any) -> None:
        if step == "after_copy" and hits["n"] == 0:
            hits["n"] += 1
            victim = dav_root / str(path) / "london" / "report.html"
            victim.write_bytes(victim.read_bytes().replace(b"new", b"bad"))
        if step == "switch":
            assert dav_live(dav_root, old, new) == old

    result = run(new, WebdavTarget("dav", dav.url, fault=fault))
    assert result.published
    assert result.attempts[0].step == "upload" and "checksum differs" in (
        result.attempts[0].error or ""
    )
    assert dav_live(dav_root, old, new) == new


def test_webdav_full_disk_keeps_the_old_release(tmp_path):
    old = make_staged(tmp_path, "old")
    new = make_staged(tmp_path, "new", big=400 * 1024)
    root = tmp_path / "small"
    with tmpfs(root, 256) as mounted, Webdav(root) as dav:
        assert mounted, "the test runs as root and mounts a tmpfs (see _servers.tmpfs)"
        target = WebdavTarget("dav", dav.url)
        assert run(old, target).published
        result = run(
            new,
            target,
            deadline=timedelta(minutes=1),
            retry=RetryPolicy(initial_seconds=1, max_seconds=60, give_up_hours=0.005),
        )
        assert not result.published and len(result.attempts) > 1
        assert all(a.step == "upload" and "HTTP 5" in (a.error or "") for a in result.attempts)
        assert dav_live(root, old, new) == old
    assert_staged_intact(old, new)


def test_reader_following_the_pointer_never_sees_a_mix(dav, dav_root, tmp_path):
    old, new = make_staged(tmp_path, "old"), make_staged(tmp_path, "new")
    target = WebdavTarget("dav", dav.url)
    ids = {}
    for staged in (old, new):
        ids[run(staged, target).release_id] = files_of(staged)
    problems: list[str] = []
    releases_seen: list[str] = []
    pointer_misses = {"n": 0}
    stop = threading.Event()
    # the readers' web server serves the fallback pointer while index.html is being replaced
    with HttpSite(dav_root, try_files={"/index.html": "/index-fallback.html"}) as site:

        def reader() -> None:
            with httpx.Client(base_url=site.url, timeout=5) as http:
                while not stop.is_set():
                    page = http.get(POINTER_NAME)
                    if page.status_code != 200:
                        pointer_misses["n"] += 1
                        continue
                    rid = pointed_release(page.content)
                    if rid not in ids:
                        problems.append(f"pointer names {rid!r}")
                        continue
                    for rel, body in ids[rid].items():
                        got = http.get(f"releases/{rid}/{rel}")
                        if got.status_code != 200 or got.content != body:
                            problems.append(f"{rid}/{rel}: HTTP {got.status_code}")
                    releases_seen.append(rid)

        thread = threading.Thread(target=reader)
        thread.start()
        switches = 0
        for staged in [old, new] * 3:
            assert run(staged, target).published
            switches += 1
        stop.set()
        thread.join(10)
    print(
        f"webdav reader: {switches} switches, {len(releases_seen)} whole releases read, "
        f"{pointer_misses['n']} pointer 404s, {site.fallback_hits} answered by the fallback pointer"
    )
    assert not problems, problems[:5]
    assert switches == 6 and set(releases_seen) == set(ids)
    assert pointer_misses["n"] == 0  # old pointer or new, never a 404


def test_webdav_lock_is_exclusive_names_the_holder_and_expires(dav, dav_root):
    a = WebdavTarget("a", dav.url, lock_stale_seconds=2)
    b = WebdavTarget("b", dav.url, lock_stale_seconds=2)
    with a.lock("staging-1", timeout=0):
        # waiting longer than the lock's timeout: the holder refreshes it
        with pytest.raises(PublishError) as info, b.lock("staging-2", timeout=2.6):
            pass
        assert info.value.step == "lock" and "staging-1" in str(info.value)
    with b.lock("staging-2", timeout=0):
        pass
    # a publisher killed while holding the lock: its LOCK expires on the server
    body = (
        '<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/>'
        "</D:lockscope><D:locktype><D:write/></D:locktype><D:owner>crashed</D:owner></D:lockinfo>"
    )
    crashed = httpx.request(
        "LOCK",
        dav.url + ".publish.lock",
        content=body,
        headers={"Timeout": "Second-1", "Depth": "0"},
    )
    assert crashed.status_code in (200, 201)
    with pytest.raises(PublishError, match="being published"), b.lock("staging-2", timeout=0):
        pass
    started = time.monotonic()
    with b.lock("staging-2", timeout=5):
        assert time.monotonic() - started < 4


def test_webdav_password_never_appears_in_output_logs_or_paperwork(
    tmp_path,
    monkeypatch,
    caplog,
    capsys,
    cli_logging,  # noqa: F811
):
    secret = "dav-SECRET-91c2e"
    root = tmp_path / "dav"
    root.mkdir()
    # the slot passed ten minutes ago: published late on purpose, so the paperwork is written too
    recent = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    staged = make_staged(tmp_path, slot=recent)
    with Webdav(root, user="publisher", password=secret) as dav:
        cfg = tmp_path / "release.toml"
        cfg.write_text(
            f"""
[[targets]]
name = "dav"
url = "webdav+{dav.url}"
password_env = "TEST_DAV_PASSWORD"
timeout_seconds = 5
"""
        )
        cfg.write_text(cfg.read_text().replace("webdav+http://", "webdav+http://publisher@"))
        monkeypatch.setenv("TEST_DAV_PASSWORD", secret)
        caplog.set_level(logging.DEBUG)
        code = main(
            [
                "-v",
                "publish",
                str(staged),
                "--config",
                str(cfg),
                "--to",
                "dav",
                "--no-email",
                "--deadline",
                "1",
                *unready_ok(),
            ]
        )
        assert code == 1  # late (the slot is in the past), but published
        assert dav_live(root, staged) == staged
        monkeypatch.setenv("TEST_DAV_PASSWORD", "wrong-" + secret)
        target = build_target(load_config(cfg).targets[0])
        with pytest.raises(PublishError) as info:
            target.prepare(StagedRelease.load(staged))
        assert not info.value.retryable and "401" in str(info.value)
    out, err = capsys.readouterr()
    assert "HTTP Request: PUT" in caplog.text and "publishing" in err  # both logs captured
    paperwork = [p.read_text() for p in staged.iterdir() if p.suffix in (".json", ".md")]
    assert (staged / "breach_report.json").exists()
    texts = [caplog.text, out, err, str(info.value), repr(target), *paperwork]
    assert all(secret not in t for t in texts)
    assert all(not re.search(r"Authorization: Basic \S+", t) for t in texts)
    assert read_publish_log(staged)["published_to"] == "dav"
