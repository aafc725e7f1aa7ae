"""The report layer: stages, renders and checks a release (stage, render, readiness, manifest,
templates).

It reads result frames and metadata only; it never refits and never touches the kernels. It never
imports the release machinery (:mod:`excessmort.release`): what the release side decides (slot,
people, thresholds, signing key) comes in as :class:`~.settings.StageSettings`.
"""

from __future__ import annotations

from .manifest import build_manifest, read_manifest, verify_manifest, write_manifest
from .settings import Plausibility, StageSettings, parse_month

# Staging and readiness pull in pandas and matplotlib: loaded on first use (see __getattr__).
_LAZY = {
    "stage_release": ".stage",
    "check_release": ".readiness",
    "read_readiness": ".readiness",
    "Check": ".readiness",
    "Readiness": ".readiness",
    "full_check": ".contents",
    "sign_manifest": ".signing",
    "verify_signature": ".signing",
}

__all__ = [
    *_LAZY,
    "Plausibility",
    "StageSettings",
    "build_manifest",
    "parse_month",
    "read_manifest",
    "verify_manifest",
    "write_manifest",
]


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
