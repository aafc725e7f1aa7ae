"""The release machinery: calendar, configuration, targets, publishing, access log and breach
paperwork.

It uses the report layer (:mod:`excessmort.report`) only through the staged folder, its manifest
and the readiness checks (and :func:`stage_release`, which hands the configuration's settings to
:func:`excessmort.report.stage_release`); ``report/`` never imports this package.
"""

from __future__ import annotations

#: Public name -> (submodule, name in it): imported on first use, so that ``excessmort run`` (which
#: needs the calendar and the configuration) does not import the publishing, access and breach
#: machinery (smtplib, email, the targets).
_LAZY: dict[str, tuple[str, str]] = {
    "grant_access": (".access", "grant_access"),
    "read_access_log": (".access", "read_access_log"),
    "BreachHandler": (".breach", "BreachHandler"),
    "build_breach_report": (".breach", "build_breach_report"),
    "write_breach_paperwork": (".breach", "write_breach_paperwork"),
    "ReleaseRule": (".calendar", "ReleaseRule"),
    "format_calendar": (".calendar", "format_calendar"),
    "next_slot": (".calendar", "next_slot"),
    "parse_month": (".calendar", "parse_month"),
    "slot_for_month": (".calendar", "slot_for_month"),
    "release_calendar": (".calendar", "calendar"),
    "Config": (".config", "Config"),
    "Contact": (".config", "Contact"),
    "RetryPolicy": (".config", "RetryPolicy"),
    "SmtpSettings": (".config", "SmtpSettings"),
    "TargetSpec": (".config", "TargetSpec"),
    "default_config": (".config", "default_config"),
    "load_config": (".config", "load_config"),
    "MissedSlot": (".publish", "MissedSlot"),
    "PublishResult": (".publish", "PublishResult"),
    "publish": (".publish", "publish"),
    "read_publish_log": (".publish", "read_publish_log"),
    "resync": (".publish", "resync"),
    "stage_release": (".staging", "stage_release"),
    "DirectoryTarget": (".targets", "DirectoryTarget"),
    "PublishError": (".targets", "PublishError"),
    "Target": (".targets", "Target"),
    "SftpTarget": (".sftp", "SftpTarget"),
    "WebdavTarget": (".webdav", "WebdavTarget"),
    "target_from_url": (".target_url", "target_from_url"),
}

__all__ = [
    "BreachHandler",
    "Config",
    "Contact",
    "DirectoryTarget",
    "MissedSlot",
    "PublishError",
    "PublishResult",
    "ReleaseRule",
    "RetryPolicy",
    "SftpTarget",
    "SmtpSettings",
    "Target",
    "TargetSpec",
    "WebdavTarget",
    "build_breach_report",
    "default_config",
    "format_calendar",
    "grant_access",
    "load_config",
    "next_slot",
    "parse_month",
    "publish",
    "read_access_log",
    "read_publish_log",
    "release_calendar",
    "resync",
    "slot_for_month",
    "stage_release",
    "target_from_url",
    "write_breach_paperwork",
]


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module, __name__), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
