"""The release machinery: calendar, configuration, targets, publishing, access log and breach
paperwork.

It uses the report layer (:mod:`excessmort.report`) only through the staged folder, its manifest
and the readiness checks (and :func:`stage_release`, which hands the configuration's settings to
:func:`excessmort.report.stage_release`); ``report/`` never imports this package.
"""

from __future__ import annotations

from .access import grant_access, read_access_log
from .breach import BreachHandler, build_breach_report, write_breach_paperwork
from .calendar import ReleaseRule, format_calendar, next_slot, parse_month, slot_for_month
from .calendar import calendar as release_calendar
from .config import (
    Config,
    Contact,
    RetryPolicy,
    SmtpSettings,
    TargetSpec,
    default_config,
    load_config,
)
from .publish import MissedSlot, PublishResult, publish, read_publish_log, resync
from .staging import stage_release
from .targets import DirectoryTarget, PublishError, Target

# network targets pull in asyncssh / httpx: loaded on first use (see __getattr__)
_LAZY = {
    "SftpTarget": ".sftp",
    "WebdavTarget": ".webdav",
    "target_from_url": ".target_url",
}

__all__ = [
    *_LAZY,
    "BreachHandler",
    "Config",
    "Contact",
    "DirectoryTarget",
    "MissedSlot",
    "PublishError",
    "PublishResult",
    "ReleaseRule",
    "RetryPolicy",
    "SmtpSettings",
    "Target",
    "TargetSpec",
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
    "write_breach_paperwork",
]


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
