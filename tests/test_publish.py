"""Publishing staged -> live: embargo, atomic switch, verification over real HTTP, idempotence,
retries and fallbacks, and one test per fault (each ends with a complete release live and the staged
release intact). Also the pre-release access log.

Clocks are injected (a fake clock whose ``sleep`` advances it), so no test waits for real beyond the
slow-server case (about one second). Web servers are ``ThreadingHTTPServer`` on 127.0.0.1 with a
random port, serving the target root.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from excessmort.cli import main
from excessmort.exceptions import InputError, ReleaseError
from excessmort.release.access import grant_access, read_access_log
from excessmort.release.config import RetryPolicy
from excessmort.release.publish import MissedSlot, publish, read_publish_log
from excessmort.release.targets import (
    HOLDER_NAME,
    KILL_ENV,
    TRACE_ENV,
    DirectoryTarget,
    StagedRelease,
)
from excessmort.report.manifest import read_manifest, verify_manifest, write_manifest

SLOT = datetime(2027, 3, 18, 14, 0, tzinfo=UTC)
FAST = RetryPolicy(
    initial_seconds=1,
    factor=2,
    max_seconds=30,
    jitter=0.2,
    fallback_after_seconds=20,
    give_up_hours=0.5,
    http_timeout_seconds=2,
)


class Clock:
    """Fake clock: ``sleep`` advances ``now``; every sleep is recorded."""

    def __init__(self, start: datetime) -> None:
        self.t = start
        self.sleeps: list[float] = []
        self.on_sleep: Callable[[datetime], None] | None = None

    def now(self) -> datetime:
        return self.t

    def sleep(self, seconds: float) -> None:
        assert 0 <= seconds <= 3600
        self.sleeps.append(seconds)
        self.t += timedelta(seconds=seconds)
        if self.on_sleep:
            self.on_sleep(self.t)


class RecordingBreach:
    def __init__(self) -> None:
        self.missed_calls: list[MissedSlot] = []
        self.published_calls: list[MissedSlot] = []

    def missed(self, info: MissedSlot) -> None:
        self.missed_calls.append(info)

    def published(self, info: MissedSlot) -> None:
        self.published_calls.append(info)


def make_staged(base: Path, variant: str = "new", *, slot: datetime = SLOT, big: int = 0) -> Path:
    """A small staged release; ``variant`` changes the content (and so the release id)."""
    root = base / f"staged-{variant}" / slot.date().isoformat()
    files = {
        "index.html": f"<html><body>index {variant}</body></html>\n",
        "north-east/report.html": f"<html>north east {variant}</html>\n",
        "north-east/figures.csv": f"week,deaths,variant\n2027-03-05,512,{variant}\n",
        "london/report.html": f"<html>london {variant}</html>\n",
        "london/chart-weekly.svg": f"<svg><!-- {variant} --></svg>\n",
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    if big:
        (root / "london" / "figures.parquet").write_bytes(os.urandom(big))
    write_manifest(
        root,
        {
            "month": slot.strftime("%Y-%m"),
            "release_date": slot.date().isoformat(),
            "slot": slot.isoformat(),
            "title": "Excess mortality (test)",
            "producer": "Test producer",
            "baseline": "quasipoisson",
            "generated_at": "2027-03-10T09:00:00+00:00",
        },
    )
    return root


def live_is(root: Path, *staged: Path) -> Path:
    """Assert the live site is exactly one of the staged releases, complete; return which."""
    current = root / "current"
    assert current.is_symlink(), "nothing live"
    matches = [s for s in staged if not verify_manifest(current, read_manifest(s))]
    assert len(matches) == 1, f"live site matches none of {staged}: {os.readlink(current)}"
    return matches[0]


def assert_staged_intact(*staged: Path) -> None:
    for s in staged:
        assert verify_manifest(s) == [], s


def snapshot(root: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            if name == HOLDER_NAME:  # who holds the publish lock: rewritten by every run
                continue
            p = Path(folder) / name
            st = p.lstat()
            out[str(p.relative_to(root))] = (
                st.st_ino,
                st.st_mtime_ns,
                st.st_size,
                os.readlink(p) if p.is_symlink() else None,
            )
    return out


@contextlib.contextmanager
def serve(
    root: Path, behaviour: Callable[[SimpleHTTPRequestHandler], bool] | None = None
) -> Iterator[str]:
    """A real web server on 127.0.0.1 serving ``root``; yields the URL of ``root/current/``."""

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            if behaviour is not None and behaviour(self):
                return
            super().do_GET()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/current/"
    finally:
        server.shutdown()
        server.server_close()


def closed_port_url() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/current/"


def run(staged: Path, target: Any, clock: Clock | None = None, **kw: Any):
    clock = clock or Clock(SLOT)
    kw.setdefault("retry", FAST)
    kw.setdefault("rng", random.Random(0))
    kw.setdefault("check_ready", False)  # these small fixtures are not full releases: no gate
    return publish(staged, target, now=clock.now, sleep=clock.sleep, **kw)


# -- the normal path


def test_on_time_release_is_live_and_verified_over_http(tmp_path):
    staged = make_staged(tmp_path)
    root = tmp_path / "www"
    root.mkdir()
    grant_access(
        staged,
        name="Press officer",
        reason="prepare the press notice",
        role="Comms",
        granted_by="HoP",
        now=lambda: SLOT - timedelta(days=1),
    )
    fetched: list[str] = []

    def record(handler: SimpleHTTPRequestHandler) -> bool:
        fetched.append(handler.path)
        return False

    with serve(root, record) as url:
        result = run(staged, DirectoryTarget("live", root, base_url=url))
        assert result.published and not result.late and result.target == "live"
        assert result.published_at == SLOT
        assert live_is(root, staged) == staged
        # every manifest file was fetched from the web server
        assert sorted(p.removeprefix("/current/") for p in fetched) == sorted(
            e["path"] for e in read_manifest(staged)["files"]
        )
        import urllib.request

        with urllib.request.urlopen(url + "index.html", timeout=5) as r:
            assert r.read() == (staged / "index.html").read_bytes()
    live = root / "current"
    access = json.loads((live / "pre_release_access.json").read_text())
    assert [r["name"] for r in access["records"]] == ["Press officer"]
    assert (live / "manifest.json").read_bytes() == (staged / "manifest.json").read_bytes()
    log = read_publish_log(staged)
    assert log["status"] == "published" and log["published_to"] == "live"
    assert log["runs"][0]["attempts"][0]["ok"] is True
    assert os.readlink(root / "current") == f"releases/{result.release_id}"


def test_embargo_waits_for_the_slot(tmp_path):
    staged = make_staged(tmp_path)
    root = tmp_path / "www"
    root.mkdir()
    clock = Clock(SLOT - timedelta(minutes=10))
    seen: list[datetime] = []

    def fault(step: str, path: Path) -> None:
        seen.append(clock.now())
        assert not (root / "current").exists() or clock.now() >= SLOT

    result = run(staged, DirectoryTarget("live", root, fault=fault), clock)
    assert result.published
    assert min(seen) >= SLOT  # no step touched the target before the slot
    assert sum(clock.sleeps) == pytest.approx(600.0)
    assert max(clock.sleeps) <= 60.0


def test_slot_earlier_than_announced_is_refused(tmp_path):
    staged = make_staged(tmp_path)
    root = tmp_path / "www"
    root.mkdir()
    with pytest.raises(ReleaseError, match="before the pre-announced slot"):
        run(staged, DirectoryTarget("live", root), slot=SLOT - timedelta(minutes=1))
    with pytest.raises(ReleaseError, match="no time zone"):
        run(staged, DirectoryTarget("live", root), slot=datetime(2027, 3, 18, 15))
    assert not (root / "current").exists()
    later = run(staged, DirectoryTarget("live", root), Clock(SLOT), slot=SLOT + timedelta(hours=1))
    assert later.published and later.published_at == SLOT + timedelta(hours=1)


def test_new_release_replaces_old_and_old_is_kept(tmp_path):
    old, new = make_staged(tmp_path, "old"), make_staged(tmp_path, "new")
    root = tmp_path / "www"
    root.mkdir()
    r1 = run(old, DirectoryTarget("live", root))
    r2 = run(new, DirectoryTarget("live", root))
    assert r1.release_id != r2.release_id
    assert live_is(root, old, new) == new
    assert (root / "releases" / r1.release_id).is_dir()
    assert not list(root.glob(".current.*"))


def test_publishing_twice_changes_nothing(tmp_path):
    staged = make_staged(tmp_path)
    root = tmp_path / "www"
    root.mkdir()
    first = run(staged, DirectoryTarget("live", root))
    before = snapshot(root)
    time.sleep(0.01)
    second = run(staged, DirectoryTarget("live", root))
    assert second.published and second.release_id == first.release_id
    assert snapshot(root) == before
    assert [r["run"] for r in read_publish_log(staged)["runs"]] == [1, 2]


def test_partial_earlier_attempt_is_completed_and_others_rolled_back(tmp_path):
    staged = make_staged(tmp_path)
    root = tmp_path / "www"
    (root / "releases").mkdir(parents=True)
    release = StagedRelease.load(staged)
    partial = root / "releases" / f".{release.release_id}.partial"
    (partial / "north-east").mkdir(parents=True)
    shutil.copy(staged / "index.html", partial / "index.html")  # a good copy: kept
    (partial / "north-east" / "report.html").write_text("half a fi")  # torn copy: redone
    other = root / "releases" / ".2027-02-18-abcdef.partial"
    other.mkdir()
    (other / "x").write_text("stale")
    os.symlink("releases/nowhere", root / ".current.999.tmp")
    kept_inode = (partial / "index.html").stat().st_ino
    copied: list[str] = []

    def fault(step: str, path: Path) -> None:
        if step == "copy":
            copied.append(path.name)

    result = run(staged, DirectoryTarget("live", root, fault=fault))
    assert result.published
    assert live_is(root, staged) == staged
    assert "index.html" not in copied and "report.html" in copied
    assert (root / "releases" / release.release_id / "index.html").stat().st_ino == kept_inode
    assert not other.exists() and not (root / ".current.999.tmp").exists()


def test_damaged_staging_is_refused(tmp_path):
    staged = make_staged(tmp_path)
    (staged / "london" / "report.html").write_text("tampered")
    with pytest.raises(ReleaseError, match="does not match its manifest"):
        run(staged, tmp_path)


# -- faults


def test_target_missing_falls_back_within_a_minute(tmp_path):
    staged = make_staged(tmp_path)
    missing = tmp_path / "not-mounted"
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    breach = RecordingBreach()
    # the production defaults: 5 s initial backoff, fall back after 30 s
    result = run(
        staged,
        DirectoryTarget("live", missing),
        fallbacks=[DirectoryTarget("mirror", mirror)],
        retry=RetryPolicy(),
        breach=breach,
    )
    assert result.published and result.target == "mirror"
    assert result.published_at is not None
    assert (result.published_at - SLOT).total_seconds() < 60
    assert not missing.exists()  # a missing mount is never created
    assert live_is(mirror, staged) == staged
    failed = [a for a in result.attempts if not a.ok]
    assert failed and all(
        a.target == "live" and "does not exist" in (a.error or "") for a in failed
    )
    assert not breach.missed_calls and not result.late
    log = read_publish_log(staged)
    times = [(a["started"], a["finished"]) for a in log["runs"][0]["attempts"]]
    assert all(s <= f for s, f in times) and times == sorted(times)
    assert_staged_intact(staged)


@contextlib.contextmanager
def read_only(path: Path, fault_box: list[Any]) -> Iterator[str]:
    """Make ``path`` read-only: chmod (non-root), a read-only bind mount (root), or inject EROFS."""
    if os.geteuid() != 0:
        for folder, _dirs, _files in os.walk(path):
            os.chmod(folder, 0o555)
        try:
            yield "chmod"
        finally:
            for folder, _dirs, _files in os.walk(path):
                os.chmod(folder, 0o755)
        return
    ok = (
        subprocess.run(
            ["mount", "--bind", str(path), str(path)], capture_output=True, check=False
        ).returncode
        == 0
    )
    if ok:
        ok = (
            subprocess.run(
                ["mount", "-o", "remount,ro,bind", str(path)], capture_output=True, check=False
            ).returncode
            == 0
        )
        if not ok:
            subprocess.run(["umount", str(path)], check=False)
    if ok:
        try:
            yield "read-only bind mount"
        finally:
            subprocess.run(["umount", str(path)], check=True)
        return

    def erofs(step: str, where: Path) -> None:
        if step == "copy":
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(where))

    fault_box.append(erofs)
    yield "injected EROFS"


def test_read_only_target_keeps_old_release_and_breach_is_declared(tmp_path):
    old, new = make_staged(tmp_path, "old"), make_staged(tmp_path, "new")
    root = tmp_path / "www"
    root.mkdir()
    assert run(old, DirectoryTarget("live", root)).published
    box: list[Any] = []
    breach = RecordingBreach()
    with read_only(root, box) as how:
        fault = box[0] if box else None
        result = run(
            new,
            DirectoryTarget("live", root, fault=fault),
            breach=breach,
            deadline=timedelta(minutes=5),
            retry=RetryPolicy(initial_seconds=1, max_seconds=60, give_up_hours=0.25),
        )
        assert live_is(root, old, new) == old, how
    assert not result.published
    assert all("EROFS" in (a.error or "") for a in result.attempts), (how, result.attempts[0])
    assert len(breach.missed_calls) == 1
    assert breach.missed_calls[0].detected_at >= SLOT + timedelta(minutes=5)
    assert read_publish_log(new)["status"] == "failed"
    assert_staged_intact(old, new)


@contextlib.contextmanager
def small_disk(path: Path, size_kib: int, fault_box: list[Any]) -> Iterator[str]:
    """A size-limited folder: a tmpfs when we may mount (root), else injected ENOSPC."""
    path.mkdir()
    if (
        os.geteuid() == 0
        and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(path)],
            capture_output=True,
            check=False,
        ).returncode
        == 0
    ):
        try:
            yield f"tmpfs of {size_kib} KiB"
        finally:
            subprocess.run(["umount", str(path)], check=True)
        return

    def enospc(step: str, where: Path) -> None:
        if step == "copy" and where.name == "figures.parquet":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(where))

    fault_box.append(enospc)
    yield "injected ENOSPC"


def test_disk_full_keeps_old_release(tmp_path):
    old = make_staged(tmp_path, "old")
    new = make_staged(tmp_path, "new", big=400 * 1024)  # does not fit in 256 KiB
    root = tmp_path / "small"
    box: list[Any] = []
    with small_disk(root, 256, box) as how:
        fault = box[0] if box else None
        assert run(old, DirectoryTarget("live", root, fault=fault)).published
        result = run(
            new,
            DirectoryTarget("live", root, fault=fault),
            deadline=timedelta(minutes=1),
            retry=RetryPolicy(initial_seconds=1, max_seconds=60, give_up_hours=0.1),
        )
        assert not result.published, how
        assert live_is(root, old, new) == old
        assert all("ENOSPC" in (a.error or "") for a in result.attempts), how
    assert_staged_intact(old, new)


def test_connection_refused_then_fallback(tmp_path):
    staged = make_staged(tmp_path)
    main_root, mirror = tmp_path / "main", tmp_path / "mirror"
    main_root.mkdir()
    mirror.mkdir()
    with serve(mirror) as mirror_url:
        result = run(
            staged,
            DirectoryTarget("live", main_root, base_url=closed_port_url(), http_timeout=2),
            fallbacks=[DirectoryTarget("mirror", mirror, base_url=mirror_url)],
        )
    assert result.published and result.target == "mirror"
    refused = [a for a in result.attempts if a.target == "live"]
    assert refused and all(
        a.step == "verify-http" and "refused" in (a.error or "").lower() for a in refused
    )
    # the main folder holds the new release complete (switched, locally verified)
    assert live_is(main_root, staged) == staged
    assert live_is(mirror, staged) == staged
    assert (result.published_at - SLOT).total_seconds() < 60
    assert_staged_intact(staged)


def test_server_500_is_retried(tmp_path):
    staged = make_staged(tmp_path)
    root = tmp_path / "www"
    root.mkdir()
    failures = {"left": 3}

    def flaky(handler: SimpleHTTPRequestHandler) -> bool:
        if failures["left"] > 0:
            failures["left"] -= 1
            handler.send_error(500, "Internal Server Error")
            return True
        return False

    with serve(root, flaky) as url:
        result = run(staged, DirectoryTarget("live", root, base_url=url))
    assert result.published and result.target == "live"
    errors = [a.error for a in result.attempts if not a.ok]
    assert len(errors) == 3 and all("HTTP 500" in (e or "") for e in errors)
    assert live_is(root, staged) == staged


def test_slow_server_times_out_and_is_retried(tmp_path):
    staged = make_staged(tmp_path)
    root = tmp_path / "www"
    root.mkdir()
    slow = {"left": 1}

    def sleepy(handler: SimpleHTTPRequestHandler) -> bool:
        if slow["left"] > 0:
            slow["left"] -= 1
            time.sleep(1.0)
        return False

    with serve(root, sleepy) as url:
        started = time.monotonic()
        result = run(staged, DirectoryTarget("live", root, base_url=url, http_timeout=0.3))
        assert time.monotonic() - started < 5
    assert result.published
    assert "timed out" in (result.attempts[0].error or "")
    assert result.attempts[-1].ok
    assert live_is(root, staged) == staged


def test_checksum_mismatch_after_copy_never_goes_live(tmp_path):
    old, new = make_staged(tmp_path, "old"), make_staged(tmp_path, "new")
    root = tmp_path / "www"
    root.mkdir()
    run(old, DirectoryTarget("live", root))
    corrupted = {"left": 1}
    live_during_switch: list[Path] = []

    def fault(step: str, path: Path) -> None:
        if step == "after_copy" and corrupted["left"]:
            corrupted["left"] -= 1
            victim = path / "london" / "report.html"
            victim.write_bytes(victim.read_bytes().replace(b"new", b"bad"))  # same size
        if step == "switch":
            live_during_switch.append(live_is(root, old, new))

    result = run(new, DirectoryTarget("live", root, fault=fault))
    assert result.published
    first = result.attempts[0]
    assert not first.ok and first.step == "upload" and "checksum differs" in (first.error or "")
    assert live_during_switch == [old]  # the corrupt copy never reached `current`
    assert live_is(root, old, new) == new
    assert_staged_intact(old, new)


def test_corruption_after_switch_rolls_back(tmp_path):
    old, new = make_staged(tmp_path, "old"), make_staged(tmp_path, "new")
    root = tmp_path / "www"
    root.mkdir()
    run(old, DirectoryTarget("live", root))

    def fault(step: str, path: Path) -> None:
        if step == "verify":
            (path / "index.html").write_text("vandalised")

    result = run(
        new,
        DirectoryTarget("live", root, fault=fault),
        deadline=timedelta(minutes=1),
        retry=RetryPolicy(initial_seconds=1, max_seconds=10, give_up_hours=0.01),
    )
    assert not result.published
    assert "switched back" in (result.attempts[0].error or "")
    assert live_is(root, old, new) == old


KILL_SCRIPT = """
import sys
from datetime import datetime, timedelta, UTC
from excessmort.release.config import RetryPolicy
from excessmort.release.publish import publish
from excessmort.release.targets import DirectoryTarget
result = publish(sys.argv[1], DirectoryTarget("live", sys.argv[2]),
                 slot=datetime(2020, 1, 16, 14, tzinfo=UTC), deadline=timedelta(days=36500),
                 retry=RetryPolicy(initial_seconds=0.01, give_up_hours=0.0001), check_ready=False)
sys.exit(0 if result.published else 1)
"""


def test_sigkill_at_every_step_leaves_a_complete_release(tmp_path):
    slot = datetime(2020, 1, 16, 14, tzinfo=UTC)
    old = make_staged(tmp_path, "old", slot=slot)
    new = make_staged(tmp_path, "new", slot=slot)
    base_root = tmp_path / "base"
    base_root.mkdir()
    assert run(old, DirectoryTarget("live", base_root), Clock(slot)).published
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    env.pop(KILL_ENV, None)

    def attempt(
        k: int | None, root: Path, staged: Path, trace: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        e = dict(env)
        if k is not None:
            e[KILL_ENV] = str(k)
        if trace is not None:
            e[TRACE_ENV] = str(trace)
        return subprocess.run(
            [sys.executable, "-c", KILL_SCRIPT, str(staged), str(root)],
            env=e,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    # learn the steps from a clean run
    trace = tmp_path / "trace.txt"
    clean_root, clean_staged = tmp_path / "clean", tmp_path / "clean-staged"
    shutil.copytree(base_root, clean_root, symlinks=True)
    shutil.copytree(new, clean_staged)
    proc = attempt(None, clean_root, clean_staged, trace)
    assert proc.returncode == 0, proc.stderr
    steps = [line.split(" ", 1)[1] for line in trace.read_text().splitlines()]
    for needed in ("prepare", "copy", "copied", "renamed", "symlinked", "switched", "verify"):
        assert needed in steps
    assert len(steps) >= 12

    outcomes = []
    for k in range(1, len(steps) + 1):
        root, staged = tmp_path / f"root{k}", tmp_path / f"staged{k}" / new.name
        shutil.copytree(base_root, root, symlinks=True)
        shutil.copytree(new, staged)
        killed = attempt(k, root, staged)
        assert killed.returncode == -9, (k, steps[k - 1], killed.stderr)
        outcomes.append(live_is(root, old, staged))  # old or new, complete
        assert_staged_intact(staged)
        again = attempt(None, root, staged)
        assert again.returncode == 0, (k, steps[k - 1], again.stderr)
        assert live_is(root, old, staged) == staged
        assert not list((root / "releases").glob(".*.partial"))
        assert not list(root.glob(".current.*"))
        shutil.rmtree(root)
    # killed before the switch: old live; after it: new live
    switch_at = steps.index("switched")
    assert all(o != new for o in outcomes[:switch_at])
    assert outcomes[0].name == old.name and outcomes[-1].name == new.name


# -- command line


# the CLI fixtures are small staged folders, not full releases: the gate must be overridden
FORCE = ["--force-unready", "--reason", "test fixture: a small staged folder"]


def test_cli_publish_to_folder_and_to_named_target(tmp_path):
    recent = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    staged = make_staged(tmp_path, slot=recent)
    root = tmp_path / "www"
    root.mkdir()
    assert main(["publish", str(staged), "--to", str(root), "--no-email", *FORCE]) == 0
    assert live_is(root, staged) == staged
    cfg = tmp_path / "r.toml"
    other = tmp_path / "other"
    other.mkdir()
    cfg.write_text('[[targets]]\nname = "web"\npath = "other"\n')
    assert (
        main(
            [
                "publish",
                str(staged),
                "--to",
                "web",
                "--config",
                str(cfg),
                "--at",
                recent.isoformat(),
                "--no-email",
                *FORCE,
            ]
        )
        == 0
    )
    assert live_is(other, staged) == staged
    assert not (staged / "breach_report.json").exists()
    assert main(["publish", str(staged), "--to", str(root), "--at", "yesterday"]) == 2
    assert main(["publish", str(staged), "--to", "nowhere"]) == 2
    assert main(["publish", str(tmp_path / "no-such"), "--to", str(root)]) == 1


def test_cli_publish_late_exits_1_with_paperwork(tmp_path):
    staged = make_staged(tmp_path, slot=datetime(2020, 1, 16, 14, tzinfo=UTC))
    root = tmp_path / "www"
    root.mkdir()
    assert (
        main(["publish", str(staged), "--to", str(root), "--slot", "2020-01", "--no-email", *FORCE])
        == 1
    )
    assert live_is(root, staged) == staged
    report = json.loads((staged / "breach_report.json").read_text())
    assert report["published_at"] == read_publish_log(staged)["published_at"]
    assert (staged / "change_notice.md").read_text().count("Published late") == 1


# -- pre-release access


def test_access_log_records_and_is_closed_after_slot_and_publication(tmp_path):
    staged = make_staged(tmp_path)
    before = SLOT - timedelta(hours=24)
    rec = grant_access(
        staged,
        name="Minister's private office",
        reason="briefing",
        role="Gov",
        granted_by="Sam Sample",
        now=lambda: before,
    )
    assert rec == {
        "name": "Minister's private office",
        "role": "Gov",
        "reason": "briefing",
        "granted_by": "Sam Sample",
        "granted_at": before.isoformat(),
    }
    grant_access(staged, name="Press office", reason="press notice", now=lambda: before)
    assert [r["name"] for r in read_access_log(staged)] == [
        "Minister's private office",
        "Press office",
    ]
    with pytest.raises(ReleaseError, match="has passed"):
        grant_access(staged, name="Late", reason="x", now=lambda: SLOT)
    with pytest.raises(InputError) as info:
        grant_access(staged, name=" ", reason="x", now=lambda: before)
    assert info.value.column == "name"
    assert verify_manifest(staged) == []  # the log is metadata, not content
    root = tmp_path / "www"
    root.mkdir()
    assert run(staged, DirectoryTarget("live", root)).published
    with pytest.raises(ReleaseError, match="was published"):
        grant_access(staged, name="After", reason="x", now=lambda: before)
    live = json.loads((root / "current" / "pre_release_access.json").read_text())
    assert [r["name"] for r in live["records"]] == ["Minister's private office", "Press office"]


def test_access_log_concurrent_grants_are_all_kept(tmp_path):
    staged = make_staged(tmp_path)
    before = SLOT - timedelta(days=1)

    def grant(i: int) -> None:
        for j in range(10):
            grant_access(staged, name=f"p{i}-{j}", reason="r", now=lambda: before)

    threads = [threading.Thread(target=grant, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(r["name"] for r in read_access_log(staged)) == sorted(
        f"p{i}-{j}" for i in range(3) for j in range(10)
    )


def test_cli_grant_access(tmp_path, capsys):
    staged = make_staged(tmp_path, slot=datetime(2099, 1, 15, 14, tzinfo=UTC))
    assert (
        main(
            [
                "grant-access",
                str(staged),
                "--name",
                "A. Person",
                "--reason",
                "QA",
                "--role",
                "Analyst",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["name"] == "A. Person"
    past = make_staged(tmp_path, "past", slot=datetime(2020, 1, 16, 14, tzinfo=UTC))
    assert main(["grant-access", str(past), "--name", "B", "--reason", "x"]) == 1


# -- the monthly job


class _Verdict:
    def __init__(self, ready: bool) -> None:
        self.ready = ready
        self.checks = [
            type(
                "C",
                (),
                {
                    "verdict": "pass" if ready else "fail",
                    "name": "regions",
                    "message": "London missing",
                },
            )()
        ]


def _fake_staging(monkeypatch, tmp_path: Path, slot: datetime, ready: bool = True) -> list[Any]:
    import excessmort.commands.release as release_cmd

    calls: list[Any] = []

    def stage(source: Any, *, month: str, out: str, baseline: str, config: Any, live_root: Path):
        calls.append(("stage", month, out, baseline, live_root))
        return make_staged(Path(out), slot=slot)

    def check(path: Path, *, live_root: Path) -> _Verdict:
        calls.append(("check", path, live_root))
        return _Verdict(ready)

    monkeypatch.setattr(release_cmd, "_staging", lambda: (stage, check))
    return calls


def test_cli_release_orchestrates_stage_check_publish(tmp_path, monkeypatch, capsys):
    recent = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    calls = _fake_staging(monkeypatch, tmp_path, recent)
    root = tmp_path / "www"
    root.mkdir()
    data = tmp_path / "deaths.csv"
    data.write_text("unused by the fake stager")
    common = ["--input", str(data), "--out", str(tmp_path / "out"), "--to", str(root), "--no-email"]
    assert main(["release", "--month", "2026-10", "--dry-run", *common]) == 0
    assert not (root / "current").exists()  # a dry run publishes nothing
    assert "dry run: would publish" in capsys.readouterr().out
    assert main(["release", "--month", "2026-10", *common]) == 0
    staged = tmp_path / "out" / "staged-new" / recent.date().isoformat()
    assert live_is(root, staged) == staged
    assert [c[0] for c in calls] == ["stage", "check", "stage", "check"]
    assert calls[0][1] == "2026-10" and calls[0][4] == root
    assert main(["release", "--month", "2026-13", *common]) == 2


def test_cli_release_not_ready_publishes_nothing(tmp_path, monkeypatch, capsys):
    _fake_staging(monkeypatch, tmp_path, datetime(2020, 1, 16, 14, tzinfo=UTC), ready=False)
    root = tmp_path / "www"
    root.mkdir()
    assert (
        main(
            [
                "release",
                "--month",
                "2019-12",
                "--input",
                "x.csv",
                "--out",
                str(tmp_path / "out"),
                "--to",
                str(root),
            ]
        )
        == 1
    )
    assert "fail: regions: London missing" in capsys.readouterr().err
    assert not (root / "current").exists()


@pytest.mark.slow
def test_cli_release_end_to_end_on_demo_data(tmp_path, capsys):
    """The real job on the demo data: stage (other engineer's stage_release), check, publish.

    The demo data end in 2024, so the slot of the release covering 2024-11 (19 December 2024) has
    passed: the job publishes at once, late, with the breach paperwork (no e-mail), and exits 1.
    """
    served = tmp_path / "srv"
    (served / "live").mkdir(parents=True)
    cfg = tmp_path / "release.toml"
    with serve(served) as url:
        base = url.removesuffix("current/") + "live/current/"
        cfg.write_text(f'[[targets]]\nname = "live"\npath = "srv/live"\nbase_url = "{base}"\n')
        code = main(
            [
                "release",
                "--month",
                "2024-11",
                "--out",
                str(tmp_path / "out"),
                "--config",
                str(cfg),
                "--no-email",
            ]
        )
    out = capsys.readouterr().out
    staged = tmp_path / "out" / "2024-12-19"
    assert "staged" in out and ": ready" in out
    assert code == 1 and "LATE" in out
    assert live_is(served / "live", staged) == staged
    assert read_manifest(staged)["release"]["slot"] == "2024-12-19T14:00:00+00:00"
    report = json.loads((staged / "breach_report.json").read_text())
    assert report["published_at"] == read_publish_log(staged)["published_at"]
    assert_staged_intact(staged)
