"""What the report layer needs from the release machinery, passed in by the caller.

``report/`` stages, renders and checks; it never imports ``release/`` (DESIGN, Publication). The
release configuration (:class:`excessmort.release.Config`) turns itself into a
:class:`StageSettings` with :meth:`~excessmort.release.Config.stage_settings`: the page facts, the
release slot and the next one (from the release calendar), the signing key and the live root for the
embargo check. The readiness thresholds (:class:`Plausibility`) are the report layer's own; the
configuration's ``[plausibility]`` table fills them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

__all__ = ["Plausibility", "StageSettings", "parse_month"]


def parse_month(month: str | date | tuple[int, int]) -> tuple[int, int]:
    """``"2027-03"`` (or a date, or ``(2027, 3)``) -> ``(2027, 3)``; anything but a month raises
    InputError. The one period parser's (:func:`excessmort.periods.parse_month`)."""
    from ..periods import parse_month as parse

    return parse(month, what="month")


@dataclass(frozen=True)
class Plausibility:
    """Thresholds of the readiness gate's plausibility checks (``[plausibility]`` in the TOML).

    The defaults stay quiet on the real ONS regional registrations 2015 to April 2021 (pandemic
    included: weekly P-scores up to +260%, counts up to 3.5 times the reference median, robust z up
    to 22, phi up to 15.5) and on the demo data, and catch a count of 10^4 in a region, a feed
    dropping to zero for three weeks, and the expected deaths of a fit on too short a reference.
    A series' *scale* is its reference MAD times 1.4826, at least the square root of its median (the
    Poisson noise of a count), and its *robust z* is (count - reference median) / scale.
    """

    #: A count is implausibly high when it exceeds this many times its series' reference median...
    counts_max_ratio: float = 6.0
    #: ...and its robust z exceeds this (both: small series swing widely in ratio, large ones in z).
    counts_max_z: float = 20.0
    #: A count is implausibly low below this fraction of its reference median...
    counts_min_ratio: float = 0.15
    #: ...in a series whose reference median is at least this (lower counts are Poisson noise).
    counts_min_median: float = 50.0
    #: With a population column: at most this fraction of a population dying in one week.
    max_weekly_rate: float = 0.05
    #: Expected deaths of the period reported within [min, max] times the reference median...
    expected_min_ratio: float = 0.5
    expected_max_ratio: float = 2.0
    #: ...of series and aggregates whose reference median is at least this.
    expected_min_median: float = 10.0
    #: A broken feed: this many weeks of zero deaths in a row...
    feed_zero_weeks: int = 3
    #: ...or this many weeks of one repeated count...
    feed_flat_weeks: int = 8
    #: ...in a series whose reference median is at least this.
    feed_min_median: float = 10.0
    #: Dispersion (phi, as estimated) above this blocks the release (phi above 10 only warns).
    dispersion_max: float = 100.0
    #: England's weekly total within [min, max] times England's reference median.
    england_min_ratio: float = 0.5
    england_max_ratio: float = 3.0
    #: Weekly and cumulative P-scores (percent) of England, regions and strata within [min, max]...
    pscore_min: float = -75.0
    pscore_max: float = 400.0
    #: ...where the expected deaths are at least this (P-scores of tiny counts are noise).
    pscore_min_expected: float = 20.0


@dataclass(frozen=True)
class StageSettings:
    """Everything :func:`~excessmort.report.stage.stage_release` takes from the release side.

    Parameters
    ----------
    slots : callable
        ``(year, month)`` of the release month -> ``(slot, next slot)``, aware datetimes (the
        release calendar's rule).
    release_rule : object
        The rule, printed on the pages through its ``describe()``.
    producer, title, url : str
        Printed on every page and recorded in the manifest.
    lead_statistician : object
        ``name``, ``email`` and ``phone`` of the lead statistician (T3.7).
    regional_teams : mapping
        Region code -> contact (``name``, ``email``) printed on that region's page.
    plausibility : Plausibility
        Thresholds of the readiness gate's plausibility checks.
    signing_private_key : path, optional
        Ed25519 PEM key: sign the manifest at staging.
    live_root : path, optional
        The live target's root, for the embargo check.
    """

    slots: Callable[[tuple[int, int]], tuple[datetime, datetime]]
    release_rule: Any
    producer: str
    title: str
    url: str
    lead_statistician: Any
    regional_teams: Mapping[str, Any] = field(default_factory=dict)
    plausibility: Plausibility = field(default_factory=lambda: Plausibility())
    signing_private_key: Path | None = None
    live_root: Path | None = None
