"""Issue 16, the hostile suite of the release pipeline: the readiness gate of ``publish``, concurrent
publishers, never back to an older release, nothing outside the release reaching the live folder
(symlinks, unlisted files, escaping paths, script in SVG/HTML), the manifest signature, breach
paperwork that says only what happened, and the clean-ups (partial copies, stale main target,
leftovers of killed runs, readers during switches).

Small staged folders come from :func:`test_publish.make_staged`; the readiness gate is tested on
the real demo release (staged once, shared with test_stage and test_readiness), copied before any
change.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from excessmort.cli import main
from excessmort.exceptions import ReleaseError
from excessmort.release.access import read_access_log
from excessmort.release.breach import BreachHandler
from excessmort.release.config import RetryPolicy, SmtpSettings, load_config
from excessmort.release.publish import resync
from excessmort.release.publog import (
    PUBLISH_LOG_NAME,
    append_record,
    read_publish_log,
    read_records,
)
from excessmort.release.targets import DirectoryTarget, StagedRelease
from excessmort.report.contents import scan_markup, scan_release
from excessmort.report.manifest import (
    build_manifest,
    file_sha256,
    read_manifest,
    verify_manifest,
    write_manifest,
)
from excessmort.report.signing import check_signature, sign_manifest
from test_breach import smtp_server
from test_publish import FAST, SLOT, Clock, closed_port_url, live_is, make_staged, run, serve

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("EXCESSMORT_PUBLISH_KILL_AT", None)
    return env


def _live_files(root: Path) -> set[str]:
    """Every path under the target's releases (what a web server could serve)."""
    out = set()
    for folder, dirs, files in os.walk(root / "releases"):
        for name in [*dirs, *files]:
            out.add(str((Path(folder) / name).relative_to(root)))
    return out


# ------------------------------------------------------------------------------ the readiness gate


@pytest.fixture(scope="module")
def demo() -> Path:
    from test_stage import demo_release

    return demo_release()  # never modified: copied below


@pytest.fixture
def ready(demo: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(demo, tmp_path / "staged" / demo.name))


def test_publish_refuses_a_release_that_is_not_ready_and_override_is_recorded(
    ready: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "www"
    root.mkdir()
    # a broken release with a consistent manifest: London's figures lose half their rows
    # (England no longer sums), manifest re-stamped so only the figures fail
    import pandas as pd

    fig = ready / "london" / "figures.parquet"
    frame = pd.read_parquet(fig)
    frame.iloc[: len(frame) // 2].to_parquet(fig)  # London loses half its rows
    write_manifest(ready, read_manifest(ready)["release"])
    code = main(["publish", str(ready), "--to", str(root), "--no-email"])
    err = capsys.readouterr().err
    assert code == 1
    assert "NOT READY" in err and "fail: " in err
    failed = re.findall(r"fail: (\w+):", err)
    assert failed and set(failed) <= {
        "england_sum",
        "series_complete",
        "data_coverage",
        "weekly_cumulative",
        "regions_complete",
    }
    assert not (root / "current").exists() and not (root / "releases").exists()
    log = read_publish_log(ready)
    assert log["status"] == "refused"
    assert log["runs"][-1]["refused"]["failed"] == failed
    # the slot (2021) has passed: refusing at the slot misses it, so the paperwork is written
    report = json.loads((ready / "breach_report.json").read_text())
    assert "failed its readiness checks" in report["what_happened"]
    assert report["published_at"] is None and report["attempts"] == []

    # an override needs a reason
    assert main(["publish", str(ready), "--to", str(root), "--force-unready"]) == 2
    assert not (root / "current").exists()
    reason = "ministerial statement depends on it; London corrected next week"
    code = main(
        [
            "publish",
            str(ready),
            "--to",
            str(root),
            "--no-email",
            "--force-unready",
            "--reason",
            reason,
        ]
    )
    assert code == 1  # published, but late (the 2021 slot)
    assert live_is(root, ready) == ready
    runs = read_publish_log(ready)["runs"]
    assert runs[-1]["override"]["reason"] == reason
    assert runs[-1]["override"]["failed"] == failed
    access = read_access_log(ready)
    assert access[-1]["kind"] == "readiness-override" and reason in access[-1]["reason"]
    live_access = json.loads((root / "current" / "pre_release_access.json").read_text())
    assert live_access["records"][-1]["kind"] == "readiness-override"


def test_a_ready_release_publishes_without_override_and_tampering_is_refused(
    ready: Path, tmp_path: Path
) -> None:
    root = tmp_path / "www"
    root.mkdir()
    bad = Path(shutil.copytree(ready, tmp_path / "bad" / ready.name))
    assert main(["publish", str(ready), "--to", str(root), "--no-email"]) == 1  # late, but live
    assert live_is(root, ready) == ready
    assert read_publish_log(ready)["runs"][-1]["readiness"]["ready"] is True
    # script in an SVG chart, manifest regenerated: the readiness checks do not see SVG, the
    # release-contents check does
    svg = bad / "london" / "chart-excess.svg"
    svg.write_text(svg.read_text().replace("</svg>", '<script>alert("x")</script></svg>'))
    write_manifest(bad, read_manifest(bad)["release"])
    before = _live_files(root)
    assert main(["publish", str(bad), "--to", str(root), "--no-email"]) == 1
    assert read_publish_log(bad)["runs"][-1]["refused"]["failed"] == ["release_contents"]
    assert _live_files(root) == before and live_is(root, ready, bad) == ready
    assert main(["check", str(bad), "--live-root", str(tmp_path / "none")]) == 1


# ------------------------------------------------------------------------- concurrent publishers

RACE = """
import json, sys, time
from datetime import datetime, timedelta, UTC
from excessmort.release.config import RetryPolicy
from excessmort.release.publish import publish
from excessmort.release.targets import DirectoryTarget
staged, root, go = sys.argv[1], sys.argv[2], float(sys.argv[3])
while time.time() < go:
    time.sleep(0.001)
result = publish(staged, DirectoryTarget("live", root), deadline=timedelta(days=36500),
                 retry=RetryPolicy(initial_seconds=0.01, give_up_hours=0.0003),
                 check_ready=False, lock_timeout=120)
live = DirectoryTarget("live", root).live_release()
print(json.dumps({"published": result.published, "id": result.release_id,
                  "error": result.error, "run": result.attempts[0].run if result.attempts else None}))
sys.exit(0 if result.published else 1)
"""


def race(tmp_path: Path, staged: list[Path], root: Path) -> list[tuple[int, dict[str, Any]]]:
    go = time.time() + 3.0  # every process imports first, then they start together
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACE, str(s), str(root), str(go)],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for s in staged
    ]
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=300)
        assert stdout.strip(), stderr
        out.append((p.returncode, json.loads(stdout.strip().splitlines()[-1])))
    return out


def test_concurrent_publishers_leave_the_newest_live_with_honest_exit_codes(tmp_path: Path) -> None:
    months = [datetime(2020, m, 16, 14, tzinfo=UTC) for m in (1, 2, 3, 4, 5)]
    staged = [make_staged(tmp_path / f"m{i}", f"v{i}", slot=s) for i, s in enumerate(months)]
    same = staged[2]  # three more publishers of one release: their log records must all be kept
    root = tmp_path / "www"
    root.mkdir()
    outcomes = race(tmp_path, [*staged, same, same, same], root)
    newest = staged[-1]
    assert live_is(root, *staged) == newest
    ids = {str(s): StagedRelease.load(s).release_id for s in staged}
    for code, out in outcomes:
        assert code == (0 if out["published"] else 1)
        if not out["published"]:  # refused only for a newer release live, never for a lost race
            assert "newer than" in out["error"] and "refusing to go back" in out["error"]
    assert outcomes[len(staged) - 1][0] == 0  # the newest always goes live
    # order on the target: the releases that reported success went live in increasing slots
    published = []
    for s in staged:
        for rec in read_records(s):
            if rec["event"] == "published":
                published.append((rec["at"], rec["live"], rec["published_at"]))
                assert rec["live"] == ids[str(s)]  # live when it said so (read under the lock)
    published.sort()
    order = [list(ids.values()).index(live) for _, live, _ in published]
    assert order == sorted(order)
    # the log: every run present, each with its start, readiness, attempt(s) and finish
    log = read_publish_log(same)
    runs = log["runs"]
    assert sorted(r["run"] for r in runs) == [1, 2, 3, 4]
    for r in runs:
        events = [rec["event"] for rec in log["records"] if rec.get("run") == r["run"]]
        assert events[0] == "run" and events[1] == "readiness" and events[-1] == "status"
        assert "finished" in events and r["attempts"]
    for s in staged:
        for line in (s / PUBLISH_LOG_NAME).read_text().splitlines():
            json.loads(line)  # every line whole


def test_a_held_lock_makes_the_second_publisher_wait_then_refuse_naming_the_holder(
    tmp_path: Path,
) -> None:
    staged = make_staged(tmp_path)
    root = tmp_path / "www"
    root.mkdir()
    holder = DirectoryTarget("live", root)
    with holder.lock("ops-host pid 4242 publishing 2027-03-18-x since 2027-03-18T14:00", 1):
        started = time.monotonic()
        result = run(staged, DirectoryTarget("live", root), lock_timeout=0.5)
        waited = time.monotonic() - started
    assert not result.published and 0.5 <= waited < 10
    assert result.attempts[0].step == "lock"
    assert "locked by ops-host pid 4242 publishing 2027-03-18-x" in (result.error or "")
    assert not (root / "current").exists()
    # released: the next publisher goes through; a lock of a killed process is never in the way
    killed = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from excessmort.release.targets import DirectoryTarget as D\n"
            "with D('x', sys.argv[1]).lock('victim', 1):\n"
            "    print('locked', flush=True); time.sleep(60)",
            str(root),
        ],
        env=_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert killed.stdout and killed.stdout.readline().strip() == "locked"
    killed.kill()
    killed.wait()
    assert run(staged, DirectoryTarget("live", root), lock_timeout=5).published


def test_never_back_to_an_older_release_unless_named(tmp_path: Path) -> None:
    old = make_staged(tmp_path / "a", "old", slot=SLOT)
    new = make_staged(tmp_path / "b", "new", slot=SLOT + timedelta(days=28))
    root = tmp_path / "www"
    root.mkdir()
    assert run(new, DirectoryTarget("live", root), Clock(SLOT + timedelta(days=28))).published
    back = run(old, DirectoryTarget("live", root), Clock(SLOT + timedelta(days=29)))
    assert not back.published and back.attempts[-1].step == "order"
    assert live_is(root, old, new) == new
    old_id = StagedRelease.load(old).release_id
    with pytest.raises(ReleaseError, match="name the release you are publishing"):
        run(old, DirectoryTarget("live", root), rollback_to="2027-03-18-nonsense")
    rolled = run(
        old, DirectoryTarget("live", root), Clock(SLOT + timedelta(days=29)), rollback_to=old_id
    )
    assert rolled.published and live_is(root, old, new) == old


def test_publish_log_survives_a_torn_line_and_reads_the_old_format(tmp_path: Path) -> None:
    staged = make_staged(tmp_path)
    append_record(staged, {"event": "status", "run": 1, "status": "waiting"})
    with open(staged / PUBLISH_LOG_NAME, "a") as fh:
        fh.write('{"event": "status", "run": 1, "sta')  # SIGKILL mid-write
    append_record(staged, {"event": "status", "run": 1, "status": "publishing"})
    assert [r["status"] for r in read_records(staged)] == ["waiting", "publishing"]
    (staged / PUBLISH_LOG_NAME).unlink()
    (staged / "publish_log.json").write_text(
        json.dumps(
            {
                "schema": 1,
                "release_id": "x",
                "status": "published",
                "published_at": "2027-03-18T14:00:01+00:00",
                "published_to": "live",
                "breached": False,
                "runs": [{"run": 1, "attempts": [{"n": 1, "ok": True, "target": "live"}]}],
            }
        )
    )
    log = read_publish_log(staged)
    assert log["status"] == "published" and log["runs"][0]["attempts"][0]["ok"]
    # a new run after an old-format log numbers itself after the old runs
    root = tmp_path / "www"
    root.mkdir()
    assert run(staged, DirectoryTarget("live", root)).published
    assert [r["run"] for r in read_publish_log(staged)["runs"]] == [1, 2]
    # a log that cannot be written: a clear error, exit 1, nothing published
    other = make_staged(tmp_path, "unloggable")
    (other / PUBLISH_LOG_NAME).mkdir()
    with pytest.raises(ReleaseError, match=r"cannot (read|write) the publish log"):
        run(other, DirectoryTarget("live", tmp_path / "www2"))
    assert main(["publish", str(other), "--to", str(root), "--no-email"]) == 1


# -------------------------------------------------------------------- nothing outside the release


@pytest.fixture
def private(tmp_path: Path) -> Path:
    secret = tmp_path / "private"
    secret.mkdir()
    (secret / "figures.csv").write_text("name,nhs_number\nJ. Doe,943 476 5919\n")
    return secret


def _hand_manifest(root: Path) -> None:
    """Regenerate the manifest by hand, following symlinks, as an attacker would."""
    release = read_manifest(root)["release"]
    files = []
    for folder, _dirs, names in os.walk(root, followlinks=True):
        for name in names:
            rel = (Path(folder) / name).relative_to(root).as_posix()
            if "/" not in rel and (rel.endswith(".json") or rel.endswith(".sig")):
                continue
            path = Path(folder) / name
            files.append({"path": rel, "sha256": file_sha256(path), "bytes": path.stat().st_size})
    (root / "manifest.json").write_text(
        json.dumps(
            {"schema": 1, "release": release, "files": sorted(files, key=lambda e: e["path"])}
        )
    )


@pytest.mark.parametrize("kind", ["file", "folder", "unlisted", "escape", "fifo", "metadata"])
def test_nothing_outside_the_release_reaches_the_live_folder(
    kind: str, tmp_path: Path, private: Path
) -> None:
    old = make_staged(tmp_path / "old", "old")
    staged = make_staged(tmp_path / "new", "new")
    root = tmp_path / "www"
    root.mkdir()
    assert run(old, DirectoryTarget("live", root)).published
    if kind == "file":
        (staged / "north-east" / "figures.csv").unlink()
        os.symlink(private / "figures.csv", staged / "north-east" / "figures.csv")
        _hand_manifest(staged)
    elif kind == "folder":
        shutil.rmtree(staged / "north-east")
        os.symlink(private, staged / "north-east")
        _hand_manifest(staged)
    elif kind == "unlisted":
        (staged / "london" / "leak.csv").write_text("secret\n")
        (staged / "notes.txt").write_text("secret\n")
    elif kind == "escape":
        manifest = read_manifest(staged)
        manifest["files"].append(
            {"path": "../private/figures.csv", "sha256": "0" * 64, "bytes": 10}
        )
        (staged / "manifest.json").write_text(json.dumps(manifest))
    elif kind == "metadata":  # the access log (copied live as pre_release_access.json)
        (private / "log.json").write_text('{"records": [{"name": "943 476 5919"}]}')
        os.symlink(private / "log.json", staged / "access_log.json")
    elif kind == "fifo":
        os.mkfifo(staged / "london" / "pipe.csv")
        manifest = read_manifest(staged)
        manifest["files"].append({"path": "london/pipe.csv", "sha256": "0" * 64, "bytes": 0})
        (staged / "manifest.json").write_text(json.dumps(manifest))
    before = _live_files(root)
    # `check`: fails, naming the problem
    problems = scan_release(staged)
    assert problems, kind
    assert main(["check", str(staged), "--live-root", str(root)]) == 1
    # the gate refuses it; without the gate, loading or copying refuses it
    with pytest.raises(ReleaseError):
        StagedRelease.load(staged)
    assert main(["publish", str(staged), "--to", str(root), "--no-email"]) == 1
    assert _live_files(root) == before
    assert live_is(root, old) == old
    served = "".join(
        p.read_text(errors="replace") for p in (root / "releases").rglob("*") if p.is_file()
    )
    assert "943 476 5919" not in served and "secret" not in served


def test_a_symlink_swapped_in_after_the_check_is_not_followed(
    tmp_path: Path, private: Path
) -> None:
    staged = make_staged(tmp_path)
    root = tmp_path / "www"
    root.mkdir()

    def swap(step: str, path: Path) -> None:  # between StagedRelease.load and the copy
        if step == "prepare":
            target = staged / "north-east" / "figures.csv"
            target.unlink()
            os.symlink(private / "figures.csv", target)

    result = run(staged, DirectoryTarget("live", root, fault=swap))
    assert not result.published
    assert "symlink" in (result.error or "") and result.attempts[0].step == "upload"
    assert len(result.attempts) == 1  # refused for good, not retried
    assert not (root / "current").exists()
    assert not list((root / "releases").iterdir())  # the partial copy was removed


ACTIVE = {
    "script": '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
    "onload": '<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><g/></svg>',
    "onclick-upper": '<svg><rect OnClick="x()"/></svg>',
    "javascript-href": '<svg><a href="javascript:alert(1)"><text>x</text></a></svg>',
    "javascript-tab": '<svg><a xlink:href="java\tscript:alert(1)"><text>x</text></a></svg>',
    "javascript-entity": '<svg><a href="&#106;avascript:alert(1)">x</a></svg>',
    "external-image": '<svg><image href="https://tracker.example.net/p.png"/></svg>',
    "external-xlink": '<svg><use xlink:href="http://evil.example/s.svg#a"/></svg>',
    "protocol-relative": '<svg><image href="//evil.example/p.png"/></svg>',
    "absolute-path": '<svg><image href="/etc/passwd"/></svg>',
    "dotdot": '<svg><image href="../../private/figures.csv"/></svg>',
    "iframe": "<svg><foreignObject><iframe src='x.html'></iframe></foreignObject></svg>",
    "foreign-object-script": "<svg><foreignObject><body><script>x()</script></body></foreignObject></svg>",
    "object": '<svg><object data="x.swf"></object></svg>',
    "css-url": "<svg><style>rect { fill: url(https://evil.example/f.svg#g) }</style></svg>",
    "css-import": "<svg><style>@import 'https://evil.example/s.css';</style></svg>",
    "css-cdata": "<svg><style><![CDATA[ g { background: url(http://evil.example/x) } ]]></style></svg>",
    "style-attr": '<svg><rect style="fill:url(http://evil.example/x)"/></svg>',
    "fill-attr": '<svg><rect fill="url(http://evil.example/x#g)"/></svg>',
    "animate-to": '<svg><a><animate attributeName="href" to="javascript:alert(1)"/></a></svg>',
    "data-html": '<svg><image href="data:text/html;base64,PHNjcmlwdD4="/></svg>',
    "entity": '<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]><svg>&x;</svg>',
    "stylesheet-pi": '<?xml-stylesheet href="http://evil.example/s.css"?><svg/>',
    "meta-refresh": '<svg><meta http-equiv="refresh" content="0;url=http://x"/></svg>',
    "base": '<svg><base href="http://evil.example/"/></svg>',
}


@pytest.mark.parametrize("case", sorted(ACTIVE))
def test_active_content_in_svg_is_refused(case: str) -> None:
    assert scan_markup(ACTIVE[case], "london/chart-excess.svg"), case


def test_clean_markup_passes() -> None:
    clean = (
        '<?xml version="1.0" encoding="utf-8" standalone="no"?>\n'
        '<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN"\n'
        '  "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n'
        '<svg xmlns:xlink="http://www.w3.org/1999/xlink" xmlns="http://www.w3.org/2000/svg">'
        '<defs><style type="text/css">*{stroke-linejoin: round}</style>'
        '<path id="m1" d="M 0 0 L 1 1"/></defs>'
        '<g clip-path="url(#p1)"><use xlink:href="#m1" x="1" y="2"/></g>'
        '<a href="../index.html">up</a><a href="mailto:a@example.org">mail</a></svg>'
    )
    # a PUBLIC DTD identifier is a declaration, not an entity: allowed
    assert scan_markup(clean, "london/chart-excess.svg") == []


# ---------------------------------------------------------------------------------- signature


def _keys(tmp_path: Path) -> tuple[Path, Path]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    tmp_path.mkdir(parents=True, exist_ok=True)
    private = tmp_path / "release.pem"
    public = tmp_path / "release.pub.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def test_signed_manifest_verifies_and_every_tamper_fails(tmp_path: Path) -> None:
    staged = make_staged(tmp_path)
    private, public = _keys(tmp_path / "k1")
    other_private, other_public = _keys(tmp_path / "k2")
    assert check_signature(staged, public).verdict == "fail"  # unsigned
    sign_manifest(staged, private)
    assert check_signature(staged, public).verdict == "pass"
    assert check_signature(staged, other_public).verdict == "fail"  # another key
    root = tmp_path / "www"
    root.mkdir()
    assert run(staged, DirectoryTarget("live", root), public_key=public).published
    assert (root / "current" / "manifest.sig").read_bytes() == (
        staged / "manifest.sig"
    ).read_bytes()
    cases = 0
    # a changed file with the manifest regenerated (no key): the signature fails
    t1 = Path(shutil.copytree(staged, tmp_path / "t1" / staged.name))
    (t1 / "london" / "report.html").write_text("<html>tampered</html>\n")
    write_manifest(t1, read_manifest(t1)["release"])
    assert "does not match" in check_signature(t1, public).message
    cases += 1
    # a changed file, manifest left alone: the manifest check fails
    t2 = Path(shutil.copytree(staged, tmp_path / "t2" / staged.name))
    (t2 / "london" / "report.html").write_text("<html>tampered!</html>\n")
    assert verify_manifest(t2)
    cases += 1
    # a manifest re-signed with another key
    t3 = Path(shutil.copytree(t1, tmp_path / "t3" / staged.name))
    sign_manifest(t3, other_private)
    assert "another key" in check_signature(t3, public).message
    cases += 1
    # the signature removed
    t4 = Path(shutil.copytree(t1, tmp_path / "t4" / staged.name))
    (t4 / "manifest.sig").unlink()
    assert "not signed" in check_signature(t4, public).message
    cases += 1
    for t in (t1, t3, t4):
        www = tmp_path / f"www-{t.parent.name}"
        www.mkdir()
        result = run(t, DirectoryTarget("live", www), public_key=public)
        assert not result.published and result.refused
        assert not (www / "current").exists()
    # the manifest swapped on the target after the copy (before the switch): never goes live
    www = tmp_path / "www-swap"
    www.mkdir()

    swaps = []

    def swap_manifest(step: str, path: Path) -> None:
        if step == "after_copy" and not swaps:
            swaps.append(path)
            (path / "manifest.json").write_bytes((t1 / "manifest.json").read_bytes())

    result = run(staged, DirectoryTarget("live", www, fault=swap_manifest), public_key=public)
    assert result.attempts[0].step == "upload" and "manifest.json: differs" in (
        result.attempts[0].error or ""
    )
    assert result.published  # the retry copies it again, intact
    assert (www / "current" / "manifest.json").read_bytes() == (
        staged / "manifest.json"
    ).read_bytes()
    cases += 1
    assert cases == 5
    cfg = tmp_path / "r.toml"
    cfg.write_text(f'[signing]\npublic_key = "{public}"\nprivate_key = "{other_private}"\n')
    assert main(["check", str(t1), "--config", str(cfg), "--live-root", str(tmp_path / "no")]) == 1
    # the CLI signs with the configured key; --key overrides it
    t5 = Path(shutil.copytree(t4, tmp_path / "t5" / staged.name))
    assert main(["sign", str(t5), "--config", str(cfg)]) == 0
    assert "another key" in check_signature(t5, public).message
    assert main(["sign", str(t5), "--key", str(private)]) == 0
    assert check_signature(t5, public).verdict == "pass"
    assert main(["sign", str(t5)]) == 2  # no key anywhere


# ------------------------------------------------------------------------ breach paperwork


def test_every_target_refusing_at_once_writes_paperwork_saying_what_happened(
    tmp_path: Path,
) -> None:
    staged = make_staged(tmp_path)
    root = tmp_path / "www"
    (root / "current").mkdir(parents=True)  # a real folder: refused for good, at once
    config = replace(
        load_config(None),
        smtp=SmtpSettings(
            host="127.0.0.1",
            port=int(closed_port_url().split(":")[2].split("/")[0]),
            timeout_seconds=2,
        ),
    )
    result = run(
        staged,
        DirectoryTarget("live", root),
        breach=BreachHandler(config, now=lambda: SLOT),
    )
    assert not result.published and result.breached
    assert len(result.attempts) == 1 and result.attempts[0].step == "prepare"
    report = json.loads((staged / "breach_report.json").read_text())
    what, mitigation = report["what_happened"], report["mitigation"]
    assert "is a real folder" in what
    assert "No fallback target is configured" in what
    assert "stopped without publishing" in what
    assert "notified by e-mail" not in mitigation and "moved to the fallback" not in mitigation
    assert "keeps retrying" not in mitigation and "has stopped" in mitigation
    assert [m["ok"] for m in report["emails"]] == [False]
    assert "Connection refused" in report["emails"][0]["error"]
    assert "FAILED" in (staged / "breach_report.md").read_text()
    notice = (staged / "change_notice.md").read_text()
    assert "is a real folder" in notice and "A new time will be announced" in notice
    log = read_publish_log(staged)
    assert log["breached"] and log["status"] == "failed"
    assert [m["ok"] for m in log["runs"][-1]["mails"]] == [False]


def test_paperwork_names_the_fallback_tried_and_the_mails_sent(tmp_path: Path) -> None:
    staged = make_staged(tmp_path)
    main_root, mirror = tmp_path / "main", tmp_path / "mirror"
    (main_root / "current").mkdir(parents=True)
    (mirror / "current").mkdir(parents=True)
    with smtp_server() as (inbox, port):
        config = replace(
            load_config(None),
            smtp=SmtpSettings(host="127.0.0.1", port=port, timeout_seconds=5),
        )
        result = run(
            staged,
            DirectoryTarget("live", main_root),
            fallbacks=[DirectoryTarget("mirror", mirror), DirectoryTarget("spare", tmp_path / "x")],
            breach=BreachHandler(config, now=lambda: SLOT),
            retry=replace(FAST, give_up_hours=0.01),
        )
        n_mails = len(inbox.messages)
    assert not result.published
    report = json.loads((staged / "breach_report.json").read_text())
    assert "No fallback target went live (tried: 'mirror', 'spare')" in report["what_happened"]
    assert "It moved to the fallback target(s) 'mirror', 'spare'" in report["mitigation"]
    assert n_mails == 1 and [m["ok"] for m in report["emails"]] == [True]
    assert "Sent at" in report["mitigation"]


# ------------------------------------------------------------------------------- clean-ups


def test_a_failed_copy_leaves_no_partial_copy(tmp_path: Path) -> None:
    old = make_staged(tmp_path, "old")
    new = make_staged(tmp_path, "new", big=64 * 1024)
    root = tmp_path / "www"
    root.mkdir()
    assert run(old, DirectoryTarget("live", root)).published
    seen: list[list[str]] = []

    def enospc(step: str, where: Path) -> None:
        if step == "copy" and where.name == "figures.parquet":
            seen.append(sorted(p.name for p in (root / "releases").iterdir()))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(where))

    result = run(
        new,
        DirectoryTarget("live", root, fault=enospc),
        retry=RetryPolicy(initial_seconds=1, max_seconds=5, give_up_hours=0.002),
    )
    assert not result.published and len(result.attempts) >= 2
    assert all("ENOSPC" in (a.error or "") for a in result.attempts)
    assert any(any(n.endswith(".partial") for n in names) for names in seen)  # it was there
    assert [p.name for p in (root / "releases").iterdir()] == [
        old_id := os.readlink(root / "current").split("/")[1]
    ]
    assert live_is(root, old, new) == old and old_id


def test_stale_main_target_is_reported_and_resync_brings_it_up_to_date(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = make_staged(tmp_path, "old"), make_staged(tmp_path, "new")
    main_root, mirror = tmp_path / "main", tmp_path / "mirror"
    main_root.mkdir()
    mirror.mkdir()
    assert run(old, DirectoryTarget("live", main_root)).published
    down = {"on": True}

    def outage(step: str, path: Path) -> None:
        if down["on"] and step == "prepare":
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(path))

    result = run(
        new,
        DirectoryTarget("live", main_root, fault=outage),
        fallbacks=[DirectoryTarget("mirror", mirror)],
    )
    assert result.published and result.target == "mirror"
    old_id = StagedRelease.load(old).release_id
    assert result.stale == {"live": old_id}
    assert read_publish_log(new)["stale"] == {
        "live": {"live": old_id, "at": read_publish_log(new)["stale"]["live"]["at"]}
    }
    assert live_is(main_root, old, new) == old
    with pytest.raises(ReleaseError, match="has not been published"):
        resync(make_staged(tmp_path, "never"), [DirectoryTarget("live", main_root)])
    cfg = tmp_path / "r.toml"
    cfg.write_text(
        '[[targets]]\nname = "live"\npath = "main"\n[[targets]]\nname = "mirror"\npath = "mirror"\n'
        '[publish]\ntarget = "live"\nfallbacks = ["mirror"]\n'
    )
    assert main(["resync", str(new), "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert f"live: updated from {old_id}" in out and "mirror: up to date" in out
    assert live_is(main_root, old, new) == new
    assert read_publish_log(new)["stale"] == {}


def test_leftovers_of_killed_runs_are_removed_by_the_next_run(tmp_path: Path) -> None:
    staged = make_staged(tmp_path)
    root = tmp_path / "www"
    (root / "releases" / ".2027-02-18-dead.partial").mkdir(parents=True)
    os.symlink("releases/nowhere", root / ".current.31337.tmp")
    (root / ".index.html.abcd.tmp").write_text("half an entry page")
    (root / ".publish-holder.json.efgh.tmp").write_text("half")
    old = time.time() - 3600
    for name in (".breach_report.md.x1.tmp", ".change_notice.md.x2.tmp", ".access_log.json.x3.tmp"):
        (staged / name).write_text("half")
        os.utime(staged / name, (old, old))
    (staged / ".readiness.json.fresh.tmp").write_text("being written right now")
    assert run(staged, DirectoryTarget("live", root)).published
    hidden_root = sorted(p.name for p in root.iterdir() if p.name.startswith("."))
    assert hidden_root == [".publish-holder.json"]
    assert not [p for p in (root / "releases").iterdir() if p.name.startswith(".")]
    assert sorted(p.name for p in staged.iterdir() if p.name.startswith(".")) == [
        ".readiness.json.fresh.tmp"  # too young to be a killed run's: left alone
    ]


def _reader_release(base: Path, n: int) -> Path:
    slot = datetime(2020, 1, 16, 14, tzinfo=UTC) + timedelta(days=28 * n)
    root = base / f"r{n}" / slot.date().isoformat()
    pages = {
        "index.html": '<!DOCTYPE html><html><body>R{n} <a href="north-east/report.html">NE</a> '
        '<a href="london/report.html">L</a> <a href="england-figures.csv">csv</a></body></html>',
        "north-east/report.html": '<!DOCTYPE html><html><body>R{n} <a href="../index.html">up</a>'
        ' <a href="figures.csv">f</a> <a href="chart.svg">c</a></body></html>',
        "london/report.html": '<!DOCTYPE html><html><body>R{n} <a href="figures.csv">f</a>'
        "</body></html>",
        "england-figures.csv": "release\nR{n}\n",
        "north-east/figures.csv": "release\nR{n}\n" + "x" * 20000,
        "north-east/chart.svg": "<svg><!-- R{n} --></svg>",
        "london/figures.csv": "release\nR{n}\n" + "y" * 20000,
    }
    for rel, text in pages.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text.replace("{n}", f"{n:03d}"))
    write_manifest(
        root,
        {
            "month": slot.strftime("%Y-%m"),
            "release_date": slot.date().isoformat(),
            "slot": slot.isoformat(),
            "title": "t",
        },
    )
    return root


def _crawl(base: str, start: str) -> set[str]:
    """Fetch ``start`` and everything it links to (relative links), once; return the markers."""
    seen: set[str] = set()
    markers: set[str] = set()
    todo = [start]
    while todo:
        url = todo.pop()
        if url in seen:
            continue
        seen.add(url)
        with urllib.request.urlopen(base + url, timeout=10) as r:
            text = r.read().decode()
        markers |= set(re.findall(r"R\d{3}", text))
        for href in re.findall(r'href="([^"]+)"', text):
            todo.append(os.path.normpath(os.path.join(os.path.dirname(url), href)))
    return markers


def test_a_reader_never_mixes_two_releases_while_current_switches(tmp_path: Path) -> None:
    n_releases = 12
    staged = [_reader_release(tmp_path, n) for n in range(n_releases)]
    root = tmp_path / "www"
    root.mkdir()
    assert run(
        staged[0], DirectoryTarget("live", root), Clock(datetime(2021, 6, 1, tzinfo=UTC))
    ).published
    stop = threading.Event()
    passes = {"entry": 0, "entry_mixed": 0, "current": 0, "current_mixed": 0}
    errors: list[BaseException] = []

    def reader(base: str) -> None:
        try:
            while not stop.is_set():
                with urllib.request.urlopen(base + "index.html", timeout=10) as r:
                    entry = r.read().decode()
                href = re.search(r'href="(releases/[^"]+/index.html)"', entry)
                assert href, entry
                markers = _crawl(base, href.group(1))
                passes["entry"] += 1
                passes["entry_mixed"] += len(markers) != 1
                markers = _crawl(base, "current/index.html")  # for comparison: not immutable
                passes["current"] += 1
                passes["current_mixed"] += len(markers) != 1
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    with serve(root) as url:
        base = url.removesuffix("current/")
        threads = [threading.Thread(target=reader, args=(base,)) for _ in range(2)]
        for t in threads:
            t.start()
        for s in staged[1:]:
            time.sleep(0.15)
            assert run(
                s, DirectoryTarget("live", root), Clock(datetime(2021, 6, 1, tzinfo=UTC))
            ).published
        time.sleep(0.3)
        stop.set()
        for t in threads:
            t.join(30)
    assert not errors, errors
    assert passes["entry"] >= 10
    assert passes["entry_mixed"] == 0, passes
    print(f"reader passes: {passes}")
    assert live_is(root, *staged) == staged[-1]
    entry = (root / "index.html").read_text()
    assert f"releases/{os.readlink(root / 'current').split('/')[1]}/index.html" in entry


def test_the_entry_page_never_replaces_a_foreign_index(tmp_path: Path) -> None:
    staged = make_staged(tmp_path)
    root = tmp_path / "www"
    root.mkdir()
    (root / "index.html").write_text("<html>the department's own landing page</html>")
    assert run(staged, DirectoryTarget("live", root)).published
    assert "department" in (root / "index.html").read_text()


def test_build_manifest_refuses_symlinks(tmp_path: Path, private: Path) -> None:
    staged = make_staged(tmp_path)
    os.symlink(private, staged / "london" / "data")
    with pytest.raises(ReleaseError, match="is a symlink"):
        build_manifest(staged, {"month": "2027-03"})
    with contextlib.suppress(FileNotFoundError):
        (staged / "london" / "data").unlink()
    assert build_manifest(staged, {"month": "2027-03"})["files"]


def test_override_flags_are_checked_and_a_small_fixture_is_refused(tmp_path: Path) -> None:
    staged = make_staged(tmp_path)  # not a full release: every structural check fails
    root = tmp_path / "www"
    root.mkdir()
    assert main(["publish", str(staged), "--to", str(root), "--reason", "why"]) == 2
    assert (
        main(["publish", str(staged), "--to", str(root), "--force-unready", "--reason", " "]) == 2
    )
    assert not (root / "current").exists()
    assert main(["publish", str(staged), "--to", str(root), "--no-email"]) == 1
    assert not (root / "current").exists()
    assert read_publish_log(staged)["status"] == "refused"


@pytest.mark.parametrize("k", [3, 6, 13])  # killed holding the lock, mid-copy, just after switching
def test_a_publisher_killed_while_racing_a_newer_one_never_wins(k: int, tmp_path: Path) -> None:
    a = make_staged(tmp_path / "a", "a", slot=datetime(2020, 1, 16, 14, tzinfo=UTC))
    b = make_staged(tmp_path / "b", "b", slot=datetime(2020, 2, 20, 14, tzinfo=UTC))
    root = tmp_path / "www"
    root.mkdir()
    go = time.time() + 2.5
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACE, str(s), str(root), str(go)],
            env={**_env(), **({"EXCESSMORT_PUBLISH_KILL_AT": str(k)} if s is a else {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for s in (a, b)
    ]
    for p in procs:
        p.communicate(timeout=300)
    assert procs[0].returncode in (-9, 1)  # killed, or refused because b was already live
    assert procs[1].returncode == 0
    assert live_is(root, a, b) == b
    again = subprocess.run(
        [sys.executable, "-c", RACE, str(a), str(root), "0"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert again.returncode == 1 and "refusing to go back" in again.stdout
    assert live_is(root, a, b) == b
    assert not [p for p in (root / "releases").iterdir() if p.name.startswith(".")]
    assert not list(root.glob(".current.*"))
    for s in (a, b):
        for line in (s / PUBLISH_LOG_NAME).read_text().splitlines():
            json.loads(line)


def test_configuration_of_signing_keys_and_lock_wait(tmp_path: Path) -> None:
    from excessmort.exceptions import InputError

    cfg = tmp_path / "conf" / "r.toml"
    cfg.parent.mkdir()
    cfg.write_text(
        '[signing]\nprivate_key = "keys/r.pem"\npublic_key = "/abs/r.pub.pem"\n'
        "[publish.retry]\nlock_wait_seconds = 5\n"
    )
    config = load_config(cfg)
    assert config.signing_private_key == cfg.parent.resolve() / "keys" / "r.pem"
    assert config.signing_public_key == Path("/abs/r.pub.pem")
    assert config.retry.lock_wait_seconds == 5
    assert load_config(None).signing_public_key is None
    assert load_config(None).retry.lock_wait_seconds == 600
    for bad, key in (
        ('[signing]\nkey = "x"\n', "signing.key"),
        ("[signing]\npublic_key = 3\n", "signing.public_key"),
        ("[publish.retry]\nlock_wait_seconds = -1\n", "publish.retry.lock_wait_seconds"),
    ):
        cfg.write_text(bad)
        with pytest.raises(InputError) as info:
            load_config(cfg)
        assert info.value.column == key
