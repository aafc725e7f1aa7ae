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

The report says only what happened, read from the publish log: which targets were tried and how
they failed, which were configured but never tried, which fallback went live (or that none exists or
none went live), whether the system is still retrying or has stopped (and why), which readiness
checks failed, and every e-mail with its outcome (sent, failed with the error, refused recipients,
or not sent because notifications were off). It is rewritten after each e-mail so that the copy in
the release folder records the outcome.

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
from .publog import append_record, read_records

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


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _names(names: Sequence[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)


def _what_happened(info: MissedSlot, config: Config) -> str:
    tz = config.release_rule.zone
    attempts = info.attempts
    main, fallbacks = (info.targets[0] if info.targets else None), list(info.targets[1:])
    parts = [
        f"The {info.release.get('month', '')} release of {config.title} was pre-announced for "
        f"{_when(info.slot, tz)} ({info.slot.astimezone(UTC):%Y-%m-%d %H:%M} UTC)."
    ]
    if info.not_ready and not attempts:
        parts.append(
            "The release failed its readiness checks and the publication system refused to "
            "publish it: " + "; ".join(info.not_ready[:5]) + "."
        )
    elif info.not_ready:
        parts.append(
            "The release failed its readiness checks ("
            + ", ".join(c.split(":", 1)[0] for c in info.not_ready)
            + ") and was published under an override recorded in the publish and access logs."
        )
    tried: list[str] = []
    if attempts:
        per_target = Counter(a["target"] for a in attempts)
        tried = list(per_target)
        failed = [a for a in attempts if not a["ok"]]
        parts.append(
            f"Between {attempts[0]['started']} and {attempts[-1]['finished']} the publication "
            f"system made {_plural(len(attempts), 'attempt')} ("
            + ", ".join(f"{name}: {count}" for name, count in per_target.items())
            + f"), {len(failed)} of which failed."
        )
        last: dict[str, dict[str, Any]] = {}
        for a in failed:
            last[a["target"]] = a
        for name, a in last.items():
            parts.append(f"Last failure on target '{name}' at step {a['step']}: {a['error']}.")
    elif not info.not_ready:
        parts.append("No publication attempt was recorded.")
    untried = [t for t in info.targets if t not in tried]
    if attempts and untried:
        parts.append(f"Configured but never tried: {_names(untried)}.")
    if info.published_at is None:
        if not fallbacks:
            parts.append("No fallback target is configured.")
        elif any(t in tried for t in fallbacks):
            parts.append(
                f"No fallback target went live (tried: {_names([t for t in fallbacks if t in tried])})."
            )
        else:
            parts.append(f"The fallback targets ({_names(fallbacks)}) were not tried.")
    parts.append(
        f"The release was not live and verified by the deadline "
        f"{info.deadline_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC."
    )
    if info.published_at is not None:
        delay = (info.published_at - info.slot).total_seconds()
        where = "fallback target" if info.published_to != main else "target"
        parts.append(
            f"It went live on {where} '{info.published_to}' at "
            f"{_when(info.published_at, tz)}, {_duration(delay)} after the slot."
        )
    elif info.stopped:
        parts.append(f"The publication system stopped without publishing: {info.stopped}.")
    else:
        parts.append("At the time of this report the publication system is still retrying.")
    if info.stale:
        parts.append(
            f"Target(s) {_names(info.stale)} still serve an earlier release "
            "(`excessmort resync` brings them up to date)."
        )
    return " ".join(parts)


def _mail_line(m: dict[str, Any]) -> str:
    n = len(m.get("recipients") or [])
    subject = m.get("subject", "")
    if m.get("skipped"):
        return f"Not sent (notifications were switched off): '{subject}'."
    if m.get("pending"):
        return f"Being sent at {m.get('at')} to {_plural(n, 'recipient')}: '{subject}'."
    if m.get("ok"):
        refused = m.get("refused") or {}
        extra = f"; refused by the server for {', '.join(refused)}" if refused else ""
        return f"Sent at {m.get('at')} to {_plural(n, 'recipient')}: '{subject}'{extra}."
    return f"FAILED at {m.get('at')} to {_plural(n, 'recipient')}: '{subject}': {m.get('error')}."


def build_breach_report(
    info: MissedSlot,
    config: Config,
    *,
    reported_at: datetime,
    pre_release_access: int = 0,
    mails: Sequence[dict[str, Any]] = (),
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
    mails : sequence of dict
        The e-mail records of the publish log (``subject``, ``recipients``, ``ok``, ``error``,
        ``refused``, ``skipped``, ``pending``, ``at``); none: no e-mail is claimed.

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
    attempts = info.attempts
    main = info.targets[0] if info.targets else None
    per_target = Counter(a["target"] for a in attempts)
    mitigation_parts: list[str] = []
    if attempts:
        retried = [t for t, c in per_target.items() if c > 1]
        mitigation_parts.append(
            f"The publication system tried {_names(list(per_target))}"
            + (f", retrying {_names(retried)} with exponential backoff" if retried else "")
            + "."
        )
        moved = [t for t in per_target if t != main]
        if moved:
            mitigation_parts.append(f"It moved to the fallback target(s) {_names(moved)}.")
    if published is not None:
        mitigation_parts.append(f"The release was published late on target '{info.published_to}'.")
    elif info.stopped:
        mitigation_parts.append(
            "The publication system has stopped; the release must be published by hand once the "
            "cause is fixed."
        )
    else:
        mitigation_parts.append("It keeps retrying and publishes as soon as a target recovers.")
    mitigation_parts.append("A change notice for users was written (change_notice.md).")
    if mails:
        mitigation_parts += [f"E-mail: {_mail_line(dict(m))}" for m in mails]
    else:
        mitigation_parts.append("No e-mail has been sent.")
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
        "mitigation": " ".join(mitigation_parts),
        "targets_tried": list(per_target),
        "stopped": info.stopped,
        "not_ready": list(info.not_ready),
        "stale_targets": list(info.stale),
        "emails": [dict(m) for m in mails],
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
        "## E-mails",
        "",
        *(
            [f"- {_mail_line(m)}" for m in report.get("emails", [])]
            or ["- No e-mail has been sent."]
        ),
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
    if info.not_ready and not info.attempts:
        why = "The release did not pass its quality checks at the time of release."
    elif failed:
        why = (
            f"Our publication servers failed at the time of release (last error: "
            f"{failed[-1]['error']})."
        )
    elif info.stopped:
        why = f"The release could not be published: {info.stopped}."
    else:
        why = "The release was not published in time."
    if info.published_at is not None:
        status = f"Published late at {_when(info.published_at, tz)}."
        when = f"The release has been available since {_when(info.published_at, tz)}."
    else:
        status = "Delayed: not yet published."
        when = expected or (
            "A new time will be announced once the cause is fixed; this notice will be updated."
            if info.stopped
            else "It will be published as soon as a publication server is available; "
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
    pending: Sequence[dict[str, Any]] = (),
) -> dict[str, Path]:
    """Write ``change_notice.md``, ``breach_report.md`` and ``breach_report.json`` atomically.

    The e-mails listed are those of the publish log, then ``pending`` (about to be sent).
    """
    mails = [
        {k: v for k, v in r.items() if k not in ("schema", "event", "run")}
        for r in read_records(staged)
        if r.get("event") == "mail" and r.get("release_id") in (None, info.release_id)
    ]
    report = build_breach_report(
        info,
        config,
        reported_at=reported_at,
        pre_release_access=len(read_access_log(staged)),
        mails=[*mails, *pending],
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


def send_email(
    config: Config, subject: str, body: str, recipients: Sequence[str]
) -> dict[str, str]:
    """Send one plain-text e-mail through the configured SMTP server; return refused recipients.

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
        refused = smtp.send_message(msg)
    return {k: f"{v[0]} {v[1]!r}" for k, v in (refused or {}).items()}


@dataclass
class BreachHandler:
    """The breach hook for :func:`~excessmort.release.publish.publish`.

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

    def _mail(self, info: MissedSlot, subject: str, body: str) -> None:
        recipients = self.config.recipients()
        base = {"release_id": info.release_id, "subject": subject, "recipients": recipients}
        if not self.notify:
            append_record(info.staged, {"event": "mail", "run": info.run, **base, "skipped": True})
            return
        try:
            refused = send_email(self.config, subject, body, recipients)
        except (OSError, smtplib.SMTPException) as exc:
            append_record(
                info.staged,
                {"event": "mail", "run": info.run, **base, "ok": False, "error": repr(exc)},
            )
            raise
        append_record(
            info.staged, {"event": "mail", "run": info.run, **base, "ok": True, "refused": refused}
        )
        self.sent.append(subject)
        log.info("notified %d recipients: %s", len(recipients), subject)

    def _paperwork(self, info: MissedSlot, pending: Sequence[dict[str, Any]] = ()) -> None:
        self.written = write_breach_paperwork(
            info.staged,
            info,
            self.config,
            reported_at=self.now(),
            expected=self.expected,
            pending=pending,
        )
        append_record(
            info.staged,
            {
                "event": "paperwork",
                "run": info.run,
                "files": sorted(p.name for p in self.written.values()),
            },
        )

    def _send_and_record(self, info: MissedSlot, subject: str, body: Callable[[], str]) -> None:
        pending = {
            "subject": subject,
            "recipients": self.config.recipients() if self.notify else [],
            "pending": self.notify,
            "skipped": not self.notify,
            "at": self.now().astimezone(UTC).isoformat(),
        }
        self._paperwork(info, [pending])
        try:
            self._mail(info, subject, body())
        finally:
            self._paperwork(info)  # now with the outcome of the e-mail, from the log

    def missed(self, info: MissedSlot) -> None:
        """Write the paperwork and tell the Head of Profession and the regional teams."""
        tz = self.config.release_rule.zone
        subject = (
            f"Breach of pre-announced release time: {self.config.title} "
            f"{info.release.get('month', '')} (due {_when(info.slot, tz)})"
        )

        def body() -> str:
            return (
                "The release below missed its pre-announced slot and is not live.\n\n"
                + self.written["change_notice"].read_text(encoding="utf-8")
                + "\n---\n\n"
                + self.written["breach_report_md"].read_text(encoding="utf-8")
            )

        self._send_and_record(info, subject, body)

    def published(self, info: MissedSlot) -> None:
        """Rewrite the paperwork with the actual publication time and say so by e-mail."""
        tz = self.config.release_rule.zone
        when = _when(info.published_at, tz) if info.published_at else "unknown"
        subject = (
            f"Published late: {self.config.title} {info.release.get('month', '')} (live at {when})"
        )

        def body() -> str:
            return (
                f"The delayed release is now live on target '{info.published_to}' at {when}.\n\n"
                + self.written["breach_report_md"].read_text(encoding="utf-8")
            )

        self._send_and_record(info, subject, body)
