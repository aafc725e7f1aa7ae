"""When a pre-announced slot is missed: change notice, breach report, e-mails (Code T3).

The breach report carries the fields of the UK Statistics Authority's breach report form: title and
link of the output, producer, the person dealing with the report and the Head of Profession with
their contacts, date of the report, principle and practice breached, date and time of the breach,
what happened (from the publish attempt log), impact and mitigation. It is written as Markdown and
JSON into the staged release folder (``breach_report.md``, ``breach_report.json``) beside a change
notice for users (``change_notice.md``: what is late, why, when it is expected; T3.2), all with
atomic writes, and the Head of Profession and the regional teams are told by e-mail. When the late
release goes live, the report and the notice are rewritten with the actual publication time and a
second e-mail says so.

The practice texts below are short paraphrases of the Code of Practice for Statistics (edition 2.0),
not quotations.
"""

from __future__ import annotations

import json
import logging
import smtplib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from .._atomic import atomic_write_text
from .access import read_access_log
from .config import Config, Contact
from .publish import MissedSlot

__all__ = [
    "BreachHandler",
    "build_breach_report",
    "render_breach_markdown",
    "render_change_notice",
    "send_email",
    "write_breach_paperwork",
]

log = logging.getLogger("excessmort.breach")

PRINCIPLE = "T3 Orderly release"
PRACTICES = {
    "T3.2": "Changes to a pre-announced release date or time are agreed by the Head of "
    "Profession and announced promptly, with the reasons (paraphrase).",
    "T3.6": "Statistics are released to all users at the pre-announced time (paraphrase).",
}


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _when(moment: datetime, tz: Any) -> str:
    local = moment.astimezone(tz)
    return f"{local:%H:%M} {local.tzname()} on {local:%A} {local.day} {local:%B %Y}"


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    hours, mins = divmod(minutes, 60)
    if hours:
        return f"{hours} h {mins:02d} min"
    return f"{mins} min"


def _contact(c: Contact) -> dict[str, str]:
    return {"name": c.name, "email": c.email, "phone": c.phone}


def _what_happened(info: MissedSlot, config: Config) -> str:
    tz = config.release_rule.zone
    attempts = info.attempts
    parts = [
        f"The {info.release.get('month', '')} release of {config.title} was pre-announced for "
        f"{_when(info.slot, tz)} ({info.slot.astimezone(UTC):%Y-%m-%d %H:%M} UTC)."
    ]
    if attempts:
        per_target = Counter(a["target"] for a in attempts)
        failed = [a for a in attempts if not a["ok"]]
        parts.append(
            f"Between {attempts[0]['started']} and {attempts[-1]['finished']} the publication "
            f"system made {len(attempts)} attempts ("
            + ", ".join(f"{name}: {count}" for name, count in per_target.items())
            + f"), {len(failed)} of which failed."
        )
        last: dict[str, dict[str, Any]] = {}
        for a in failed:
            last[a["target"]] = a
        for name, a in last.items():
            parts.append(f"Last failure on target '{name}' at step {a['step']}: {a['error']}.")
    else:
        parts.append("No publication attempt was recorded.")
    parts.append(
        f"The release was not live and verified by the deadline "
        f"{info.deadline_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC."
    )
    if info.published_at is not None:
        delay = (info.published_at - info.slot).total_seconds()
        parts.append(
            f"It went live on target '{info.published_to}' at "
            f"{_when(info.published_at, tz)}, {_duration(delay)} after the slot."
        )
    return " ".join(parts)


def build_breach_report(
    info: MissedSlot, config: Config, *, reported_at: datetime, pre_release_access: int = 0
) -> dict[str, Any]:
    """The breach report as a dict (the fields of the Statistics Authority's breach form).

    Parameters
    ----------
    info : MissedSlot
        From the publish pipeline.
    config : Config
        Producer, output, people.
    reported_at : datetime
        Date and time of the report.
    pre_release_access : int
        Number of people who had pre-release access (their exposure grows with the delay).

    Returns
    -------
    dict
    """
    tz = config.release_rule.zone
    published = info.published_at
    practices = ["T3.6"]
    if published is None or published.astimezone(tz).date() != info.slot.astimezone(tz).date():
        practices.append("T3.2")
    until = (
        f"until it went live at {_when(published, tz)}"
        if published is not None
        else "and it is still not available at the time of this report"
    )
    impact = (
        f"Users could not see the statistics at the pre-announced time: the release was not "
        f"available from {_when(info.slot, tz)} {until}. The embargo held (nothing was published "
        f"before the slot)."
    )
    if pre_release_access:
        impact += (
            f" {pre_release_access} person(s) with pre-release access held the statistics "
            "for longer than the announced pre-release period."
        )
    mitigation = (
        f"The publication system retried every target ({', '.join(info.targets)}) with "
        "exponential backoff and moved to the fallback targets; it publishes automatically as "
        "soon as a target recovers. A change notice for users was written (change_notice.md) and "
        "the Head of Profession and the regional teams were notified by e-mail."
    )
    if published is not None:
        mitigation += f" The release was published late on target '{info.published_to}'."
    return {
        "schema": 1,
        "title_of_output": config.title,
        "link_to_output": config.url,
        "producer": config.producer,
        "person_dealing_with_report": _contact(config.lead_statistician),
        "head_of_profession": _contact(config.head_of_profession),
        "date_of_report": reported_at.astimezone(tz).date().isoformat(),
        "reported_at": reported_at.astimezone(UTC).isoformat(),
        "principle": PRINCIPLE,
        "practices": [{"code": code, "text": PRACTICES[code]} for code in practices],
        "release": {
            "month": info.release.get("month"),
            "release_date": info.release.get("release_date"),
            "release_id": info.release_id,
        },
        "date_and_time_of_breach": info.slot.astimezone(tz).isoformat(),
        "deadline": info.deadline_at.astimezone(UTC).isoformat(),
        "detected_at": info.detected_at.astimezone(UTC).isoformat(),
        "published_at": None if published is None else published.astimezone(UTC).isoformat(),
        "published_to": info.published_to,
        "what_happened": _what_happened(info, config),
        "impact": impact,
        "mitigation": mitigation,
        "attempts": info.attempts,
    }


def render_breach_markdown(report: dict[str, Any]) -> str:
    """Markdown of a breach report dict, in the order of the breach form."""
    person, hop = report["person_dealing_with_report"], report["head_of_profession"]

    def who(c: dict[str, str]) -> str:
        return ", ".join(x for x in (c["name"], c["email"], c["phone"]) if x)

    practices = "; ".join(f"{p['code']}: {p['text']}" for p in report["practices"])
    lines = [
        f"# Breach report: {report['title_of_output']}",
        "",
        "| Field | Entry |",
        "|---|---|",
        f"| Title of the output | {report['title_of_output']} |",
        f"| Link to the output | {report['link_to_output']} |",
        f"| Producer | {report['producer']} |",
        f"| Person dealing with this report | {who(person)} |",
        f"| Head of Profession | {who(hop)} |",
        f"| Date of report | {report['date_of_report']} |",
        f"| Principle | {report['principle']} |",
        f"| Practice | {practices} |",
        f"| Date and time of breach | {report['date_and_time_of_breach']} |",
        f"| Published at | {report['published_at'] or 'not yet published'} |",
        "",
        "## What happened",
        "",
        report["what_happened"],
        "",
        "## Impact",
        "",
        report["impact"],
        "",
        "## Mitigation",
        "",
        report["mitigation"],
        "",
        "## Publication attempts",
        "",
        "| # | target | started | finished | step | result |",
        "|---|---|---|---|---|---|",
    ]
    for a in report["attempts"]:
        outcome = "ok" if a["ok"] else str(a["error"]).replace("|", "\\|")
        lines.append(
            f"| {a['n']} | {a['target']} | {a['started']} | {a['finished']} | "
            f"{a['step']} | {outcome} |"
        )
    return "\n".join(lines) + "\n"


def render_change_notice(info: MissedSlot, config: Config, *, expected: str | None = None) -> str:
    """The change notice for users (T3.2): what is late, why, and when it is expected."""
    tz = config.release_rule.zone
    failed = [a for a in info.attempts if not a["ok"]]
    why = (
        f"Our publication servers failed at the time of release (last error: "
        f"{failed[-1]['error']})."
        if failed
        else "Our publication servers were unavailable."
    )
    if info.published_at is not None:
        status = f"Published late at {_when(info.published_at, tz)}."
        when = f"The release has been available since {_when(info.published_at, tz)}."
    else:
        status = "Delayed: not yet published."
        when = expected or (
            "It will be published as soon as a publication server is available; "
            "the release system retries automatically and this notice will be "
            "updated with the actual publication time."
        )
    lead, hop = config.lead_statistician, config.head_of_profession
    return "\n".join(
        [
            f"# Change to a pre-announced release: {config.title}",
            "",
            f"- Release: {config.title}, {info.release.get('month', '')} ({config.url})",
            f"- Pre-announced for: {_when(info.slot, tz)}",
            f"- Status: {status}",
            "",
            "## What is late",
            "",
            f"The {info.release.get('month', '')} release of {config.title}, pre-announced for "
            f"{_when(info.slot, tz)}, was not published at that time.",
            "",
            "## Why",
            "",
            why,
            "",
            "## When it is expected",
            "",
            when,
            "",
            f"This change has been reported to the Head of Profession for Statistics, {hop.name} "
            f"({hop.email}), under practice T3.2 of the Code of Practice for Statistics. Questions: "
            f"{lead.name}, {lead.email}" + (f", {lead.phone}" if lead.phone else "") + ".",
            "",
        ]
    )


def write_breach_paperwork(
    staged: Path,
    info: MissedSlot,
    config: Config,
    *,
    reported_at: datetime,
    expected: str | None = None,
) -> dict[str, Path]:
    """Write ``change_notice.md``, ``breach_report.md`` and ``breach_report.json`` atomically."""
    report = build_breach_report(
        info, config, reported_at=reported_at, pre_release_access=len(read_access_log(staged))
    )
    paths = {
        "change_notice": staged / "change_notice.md",
        "breach_report_md": staged / "breach_report.md",
        "breach_report_json": staged / "breach_report.json",
    }
    atomic_write_text(paths["change_notice"], render_change_notice(info, config, expected=expected))
    atomic_write_text(paths["breach_report_md"], render_breach_markdown(report))
    atomic_write_text(paths["breach_report_json"], json.dumps(report, indent=2) + "\n")
    return paths


def send_email(config: Config, subject: str, body: str, recipients: Sequence[str]) -> None:
    """Send one plain-text e-mail through the configured SMTP server.

    Raises
    ------
    OSError, smtplib.SMTPException
        When the server cannot be reached or refuses the message.
    """
    msg = EmailMessage()
    msg["From"] = config.smtp.sender
    msg["To"] = ", ".join(recipients)
    msg["Subject"] = subject
    msg.set_content(body)
    with smtplib.SMTP(
        config.smtp.host, config.smtp.port, timeout=config.smtp.timeout_seconds
    ) as smtp:
        if config.smtp.starttls:
            smtp.starttls()
        smtp.send_message(msg)


@dataclass
class BreachHandler:
    """The breach hook for :func:`~excessmort.report.publish.publish`.

    Parameters
    ----------
    config : Config
        Producer, output, people, SMTP.
    notify : bool
        Send e-mails (off for dry runs).
    now : callable
        Clock for the report date.
    expected : str, optional
        Sentence for "when it is expected" in the change notice.
    """

    config: Config
    notify: bool = True
    now: Callable[[], datetime] = _utcnow
    expected: str | None = None
    written: dict[str, Path] = field(default_factory=dict)
    sent: list[str] = field(default_factory=list)

    def _mail(self, subject: str, body: str) -> None:
        if not self.notify:
            return
        recipients = self.config.recipients()
        send_email(self.config, subject, body, recipients)
        self.sent.append(subject)
        log.info("notified %d recipients: %s", len(recipients), subject)

    def missed(self, info: MissedSlot) -> None:
        """Write the paperwork and tell the Head of Profession and the regional teams."""
        self.written = write_breach_paperwork(
            info.staged, info, self.config, reported_at=self.now(), expected=self.expected
        )
        tz = self.config.release_rule.zone
        subject = (
            f"Breach of pre-announced release time: {self.config.title} "
            f"{info.release.get('month', '')} (due {_when(info.slot, tz)})"
        )
        body = (
            "The release below missed its pre-announced slot and is not live.\n\n"
            + self.written["change_notice"].read_text(encoding="utf-8")
            + "\n---\n\n"
            + self.written["breach_report_md"].read_text(encoding="utf-8")
        )
        self._mail(subject, body)

    def published(self, info: MissedSlot) -> None:
        """Rewrite the paperwork with the actual publication time and say so by e-mail."""
        self.written = write_breach_paperwork(
            info.staged, info, self.config, reported_at=self.now(), expected=self.expected
        )
        tz = self.config.release_rule.zone
        when = _when(info.published_at, tz) if info.published_at else "unknown"
        subject = (
            f"Published late: {self.config.title} {info.release.get('month', '')} (live at {when})"
        )
        body = (
            f"The delayed release is now live on target '{info.published_to}' at {when}.\n\n"
            + self.written["breach_report_md"].read_text(encoding="utf-8")
        )
        self._mail(subject, body)
