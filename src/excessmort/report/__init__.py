"""The report layer: staging, readiness, release calendar, publication and breach paperwork.

It reads result frames and metadata only; it never refits and never touches the kernels.
"""

from __future__ import annotations

from .access import grant_access, read_access_log
from .breach import BreachHandler, build_breach_report, write_breach_paperwork
from .config import Config, load_config
from .manifest import build_manifest, read_manifest, verify_manifest, write_manifest
from .publish import PublishResult, publish, read_publish_log, resync
from .release_calendar import ReleaseRule, calendar, format_calendar, next_slot, slot_for_month
from .targets import DirectoryTarget, Target

# Staging and readiness pull in pandas and matplotlib: loaded on first use (see __getattr__).
_LAZY = {
    "stage_release": ".stage",
    "check_release": ".readiness",
    "Check": ".readiness",
    "Readiness": ".readiness",
    # network targets pull in asyncssh / httpx: loaded on first use too
    "SftpTarget": ".sftp",
    "WebdavTarget": ".webdav",
    "target_from_url": ".target_url",
}

__all__ = [
    *_LAZY,
    "BreachHandler",
    "Config",
    "DirectoryTarget",
    "PublishResult",
    "ReleaseRule",
    "Target",
    "build_breach_report",
    "build_manifest",
    "calendar",
    "format_calendar",
    "grant_access",
    "load_config",
    "next_slot",
    "publish",
    "read_access_log",
    "read_manifest",
    "read_publish_log",
    "resync",
    "slot_for_month",
    "verify_manifest",
    "write_breach_paperwork",
    "write_manifest",
]


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
