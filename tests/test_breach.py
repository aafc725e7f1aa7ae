"""Missed slot: change notice, breach report (form fields, golden files), e-mail through a real
local SMTP server (aiosmtpd), and late publication as soon as a target recovers (real web
server)."""

from __future__ import annotations

import contextlib
import json
import os
import random
import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from excessmort.release.breach import (
    BreachHandler,
    build_breach_report,
    render_breach_markdown,
    render_change_notice,
)
from excessmort.release.config import Config, RetryPolicy, SmtpSettings, load_config
from excessmort.release.publish import MissedSlot, publish, read_publish_log
from excessmort.release.targets import DirectoryTarget
from excessmort.report.manifest import read_manifest, verify_manifest, write_manifest

GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("EXCESSMORT_UPDATE_GOLDEN") == "1"
SLOT = datetime(2027, 3, 18, 14, 0, tzinfo=UTC)
FORM_FIELDS = [
    "title_of_output",
    "link_to_output",
    "producer",
    "person_dealing_with_report",
    "head_of_profession",
    "date_of_report",
    "principle",
    "practices",
    "date_and_time_of_breach",
    "what_happened",
    "impact",
    "mitigation",
]


def _attempts() -> list[dict[str, Any]]:
    rows = []
    t = SLOT
    for n, (target, step, error) in enumerate(
        [
            ("live", "prepare", "target folder /srv/live does not exist (is it mounted?)"),
            ("live", "prepare", "target folder /srv/live does not exist (is it mounted?)"),
            ("mirror", "upload", "EROFS (Read-only file system): /srv/mirror/releases/.x.partial"),
            (
                "live",
                "verify-http",
                "GET https://stats.example.org/index.html answered HTTP 500 Internal Server Error",
            ),
            ("live", "done", None),
        ],
        start=1,
    ):
        rows.append(
            {
                "n": n,
                "run": 1,
                "target": target,
                "started": t.isoformat(),
                "finished": (t + timedelta(seconds=2)).isoformat(),
                "ok": error is None,
                "step": step,
                "error": error,
            }
        )
        t += timedelta(minutes=11)
    return rows


def _info(published: bool) -> MissedSlot:
    attempts = _attempts() if published else _attempts()[:4]
    return MissedSlot(
        staged=Path("unused"),
        release={"month": "2027-03", "release_date": "2027-03-18"},
        release_id="2027-03-18-0123456789ab",
        slot=SLOT,
        deadline_at=SLOT + timedelta(minutes=15),
        detected_at=SLOT + timedelta(minutes=22),
        targets=["live", "mirror"],
        attempts=attempts,
        published_at=SLOT + timedelta(minutes=44, seconds=2) if published else None,
        published_to="live" if published else None,
    )


@pytest.mark.parametrize("name", ["breach_report.md", "breach_report.json", "change_notice.md"])
def test_golden_breach_paperwork(name):
    info = _info(published=True)
    config = load_config(None)
    mails = [
        {
            "subject": "Breach of pre-announced release time",
            "recipients": ["hop@example.org", "team@example.org"],
            "ok": True,
            "refused": {},
            "at": (SLOT + timedelta(minutes=22)).isoformat(),
        },
        {
            "subject": "Published late",
            "recipients": ["hop@example.org", "team@example.org"],
            "ok": False,
            "error": "ConnectionRefusedError(111, 'Connection refused')",
            "at": (SLOT + timedelta(minutes=44)).isoformat(),
        },
    ]
    report = build_breach_report(
        info, config, reported_at=SLOT + timedelta(hours=1), pre_release_access=2, mails=mails
    )
    text = {
        "breach_report.md": render_breach_markdown(report),
        "breach_report.json": json.dumps(report, indent=2) + "\n",
        "change_notice.md": render_change_notice(info, config),
    }[name]
    golden = GOLDEN / name
    if UPDATE:
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")


def test_breach_form_fields_and_practices():
    config = load_config(None)
    missed = build_breach_report(_info(False), config, reported_at=SLOT + timedelta(minutes=30))
    for key in FORM_FIELDS:
        assert missed[key], key
    assert missed["person_dealing_with_report"]["email"] == config.lead_statistician.email
    assert missed["head_of_profession"]["name"] == config.head_of_profession.name
    assert missed["principle"] == "T3 Orderly release"
    # not published: the pre-announced date is changed too (T3.2)
    assert [p["code"] for p in missed["practices"]] == ["T3.6", "T3.2"]
    assert missed["published_at"] is None
    assert missed["date_and_time_of_breach"] == "2027-03-18T14:00:00+00:00"
    assert "4 attempts (live: 3, mirror: 1), 4 of which failed" in missed["what_happened"]
    assert "HTTP 500" in missed["what_happened"] and "EROFS" in missed["what_happened"]
    assert "still not available" in missed["impact"]
    late = build_breach_report(_info(True), config, reported_at=SLOT + timedelta(hours=1))
    assert [p["code"] for p in late["practices"]] == ["T3.6"]  # same day: time changed only
    assert "44 min after the slot" in late["what_happened"]
    next_day = replace(_info(True), published_at=SLOT + timedelta(hours=19))
    late2 = build_breach_report(next_day, config, reported_at=SLOT + timedelta(hours=20))
    assert [p["code"] for p in late2["practices"]] == ["T3.6", "T3.2"]
    assert "19 h 00 min after the slot" in late2["what_happened"]
    # BST: the local breach time carries the +01:00 offset
    bst = replace(_info(False), slot=datetime(2027, 4, 15, 13, tzinfo=UTC))
    report = build_breach_report(bst, config, reported_at=SLOT)
    assert report["date_and_time_of_breach"] == "2027-04-15T14:00:00+01:00"
    assert "14:00 BST on Thursday 15 April 2027" in report["impact"]


# -- end to end: real SMTP and web servers


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Message]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, ready_timeout=10)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@contextlib.contextmanager
def web_server(root: Path) -> Iterator[str]:
    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _staged(base: Path) -> Path:
    root = base / "staged" / "2027-03-18"
    for rel, text in {
        "index.html": "<html>i</html>\n",
        "london/report.html": "<html>l</html>\n",
        "london/figures.csv": "a,b\n1,2\n",
    }.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    write_manifest(
        root,
        {
            "month": "2027-03",
            "release_date": "2027-03-18",
            "slot": SLOT.isoformat(),
            "title": "t",
            "producer": "p",
        },
    )
    return root


class Clock:
    def __init__(self, start: datetime) -> None:
        self.t = start
        self.hooks: list[Any] = []

    def now(self) -> datetime:
        return self.t

    def sleep(self, seconds: float) -> None:
        assert 0 <= seconds <= 3600
        self.t += timedelta(seconds=seconds)
        for hook in self.hooks:
            hook(self.t)


def test_all_targets_down_then_recovery_publishes_late_with_paperwork_and_emails(tmp_path):
    staged = _staged(tmp_path)
    served = tmp_path / "srv"
    served.mkdir()
    live_root, mirror_root = tmp_path / "live-not-mounted", served / "mirror"
    clock = Clock(SLOT)
    recovered_at: list[datetime] = []

    def recover(t: datetime) -> None:  # the mirror's disk comes back 40 minutes after the slot
        if not recovered_at and t >= SLOT + timedelta(minutes=40):
            mirror_root.mkdir()
            recovered_at.append(t)

    clock.hooks.append(recover)
    with smtp_server() as (inbox, port), web_server(served) as url:
        config = replace(
            load_config(None),
            smtp=SmtpSettings(
                host="127.0.0.1", port=port, sender="rel@example.org", timeout_seconds=5
            ),
        )
        handler = BreachHandler(config, now=clock.now)
        result = publish(
            staged,
            DirectoryTarget("live", live_root),
            fallbacks=[DirectoryTarget("mirror", mirror_root, base_url=f"{url}/mirror/current/")],
            deadline=timedelta(minutes=15),
            retry=RetryPolicy(
                initial_seconds=5, max_seconds=60, fallback_after_seconds=30, give_up_hours=2
            ),
            breach=handler,
            now=clock.now,
            sleep=clock.sleep,
            rng=random.Random(1),
            check_ready=False,
        )
        messages = list(inbox.messages)
    assert result.published and result.late and result.breached and result.target == "mirror"
    assert recovered_at and result.published_at is not None
    # live as soon as the target is back: within one backoff cycle (max 60 s + 20 % jitter, plus
    # at most one 30 s turn on the other target)
    assert timedelta(0) <= result.published_at - recovered_at[0] <= timedelta(seconds=72 + 30)
    assert verify_manifest(mirror_root / "current", read_manifest(staged)) == []
    assert not live_root.exists()

    report = json.loads((staged / "breach_report.json").read_text())
    assert report["published_at"] == result.published_at.isoformat()
    assert report["published_to"] == "mirror"
    assert report["date_and_time_of_breach"] == "2027-03-18T14:00:00+00:00"
    assert datetime.fromisoformat(report["detected_at"]) >= SLOT + timedelta(minutes=15)
    for key in FORM_FIELDS:
        assert report[key], key
    log = read_publish_log(staged)
    assert log["breached"] is True and log["status"] == "published"
    assert len(report["attempts"]) == len(log["runs"][0]["attempts"])
    markdown = (staged / "breach_report.md").read_text()
    assert "## What happened" in markdown and "does not exist" in markdown
    notice = (staged / "change_notice.md").read_text()
    assert "## What is late" in notice and "## Why" in notice and "## When it is expected" in notice
    assert "Published late at" in notice

    assert len(messages) == 2
    (rcpt1, missed), (rcpt2, late) = messages
    expected = sorted(config.recipients())
    assert sorted(rcpt1) == expected and sorted(rcpt2) == expected
    assert config.head_of_profession.email in rcpt1 and "london-team@example.org" in rcpt1
    assert missed["Subject"].startswith("Breach of pre-announced release time: Excess mortality")
    assert "14:00 GMT on Thursday 18 March 2027" in missed["Subject"]
    assert missed["From"] == "rel@example.org"
    body = missed.get_payload(decode=True).decode()
    assert "missed its pre-announced slot" in body and "## What happened" in body
    assert "Not yet published" in body or "not yet published" in body
    assert late["Subject"].startswith("Published late: Excess mortality")
    assert "now live on target 'mirror'" in late.get_payload(decode=True).decode()


def test_smtp_down_does_not_stop_publication(tmp_path):
    staged = _staged(tmp_path)
    root = tmp_path / "www"
    clock = Clock(SLOT)
    clock.hooks.append(
        lambda t: root.mkdir() if t >= SLOT + timedelta(minutes=20) and not root.exists() else None
    )
    config: Config = replace(
        load_config(None), smtp=SmtpSettings(host="127.0.0.1", port=_free_port(), timeout_seconds=2)
    )
    result = publish(
        staged,
        DirectoryTarget("live", root),
        deadline=timedelta(minutes=10),
        retry=RetryPolicy(initial_seconds=5, max_seconds=60, give_up_hours=1),
        breach=BreachHandler(config, now=clock.now),
        now=clock.now,
        sleep=clock.sleep,
        rng=random.Random(0),
        check_ready=False,
    )
    assert result.published and result.late
    assert (staged / "breach_report.json").exists() and (staged / "change_notice.md").exists()
    errors = read_publish_log(staged)["runs"][0]["hook_errors"]
    assert len(errors) == 2 and all(
        "Connection refused" in e or "ConnectionRefused" in e for e in errors
    )
