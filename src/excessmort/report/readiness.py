"""Is a staged release ready? One function per check: a verdict and a message a person can act on.

Every check reads the staged files only (``manifest.json``, ``model.json``, the figures, the HTML):
never the fit and never the input data, so ``excessmort check DIR`` gives the same verdict on
another machine. The plausibility checks compare the figures with reference-period statistics that
staging writes into ``model.json`` (per series and per aggregate), with the thresholds of the
release configuration's ``[plausibility]`` table (:class:`~.settings.Plausibility`), also recorded
there. A release is ready when no check fails; a warning is reported but does not block.

Checks (in order):

``regions_complete``     the nine region folders exist, with every file, each in the manifest
``data_coverage``        the figures reach the last Friday of the month the release covers
``series_complete``      no series is short or has a missing week in the period reported
``models_converged``     every series' model converged; dispersion plausible (warning otherwise),
                         and never above the hard bound ``dispersion_max`` (fail)
``figures_finite``       no figure NaN or infinite where it should be a number
``counts_plausible``     no count far outside its series' reference median and MAD (any week up
                         to the last reported, reference weeks included), none above a plausible
                         share of its population
``expected_plausible``   expected deaths of the period reported near their reference level
``feeds_alive``          no series drops to zero or repeats one count for weeks (a broken feed)
``england_and_pscores``  England's weekly totals within its history; P-scores within hard bounds
``england_sum``          England's figures equal the sum of the nine regions' (1e-6 relative)
``weekly_cumulative``    each cumulative figure equals the sum of its weekly figures (1e-6 relative)
``manifest_checksums``   every file in the manifest exists with its size and SHA-256; none unlisted
``html_self_contained``  every page parses, runs no script, links only to files in the release
``embargo``              the release is not on the live target before its slot
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import cached_property, partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from .._atomic import atomic_write_text
from .._dispersion import judge_dispersion
from ..exceptions import ReleaseError
from ..regions import REGIONS, region_name, region_slug
from .manifest import manifest_digest, read_manifest, verify_manifest
from .pages import check_page
from .settings import Plausibility
from .stage import ENGLAND_FILES, MODEL_NAME, READINESS_NAME, REGION_FILES, last_friday

__all__ = [
    "CHECKS",
    "FIGURE_CHECKS",
    "Check",
    "Readiness",
    "check_counts",
    "check_data_coverage",
    "check_embargo",
    "check_england",
    "check_england_sum",
    "check_expected",
    "check_feeds",
    "check_figures",
    "check_finite",
    "check_html",
    "check_manifest",
    "check_models",
    "check_regions",
    "check_release",
    "check_series",
    "check_weekly_cumulative",
    "read_readiness",
    "write_readiness",
]

Verdict = Literal["pass", "warn", "fail"]
RTOL = 1e-6
_SHOWN = 5


@dataclass(frozen=True)
class Check:
    """One readiness check: its name, verdict (``pass``, ``warn`` or ``fail``) and message."""

    name: str
    verdict: Verdict
    message: str

    def __post_init__(self) -> None:
        if self.verdict not in ("pass", "warn", "fail"):
            raise ValueError(f"verdict must be pass, warn or fail, got {self.verdict!r}")


@dataclass
class Readiness:
    """The checks of a staged release; :attr:`ready` when none fails."""

    checks: list[Check] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        """No check failed (warnings allowed)."""
        return not any(c.verdict == "fail" for c in self.checks)

    @property
    def failed(self) -> list[Check]:
        """The failed checks."""
        return [c for c in self.checks if c.verdict == "fail"]

    def __getitem__(self, name: str) -> Check:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """``{"ready": bool, "checks": [{"name", "verdict", "message"}, ...]}``."""
        return {"ready": self.ready, "checks": [asdict(c) for c in self.checks]}

    def __str__(self) -> str:
        width = max((len(c.name) for c in self.checks), default=4)
        lines = [f"{c.verdict.upper():<4}  {c.name:<{width}}  {c.message}" for c in self.checks]
        n_fail = len(self.failed)
        n_warn = sum(c.verdict == "warn" for c in self.checks)
        verdict = "READY" if self.ready else "NOT READY"
        lines.append(f"{verdict}: {len(self.checks)} checks, {n_fail} failed, {n_warn} warnings")
        return "\n".join(lines)


def _listing(items: list[str], shown: int = _SHOWN) -> str:
    head = "; ".join(items[:shown])
    return head + (f"; and {len(items) - shown} more" if len(items) > shown else "")


# --------------------------------------------------------------------------------------------------
# the staged files, read lazily


class StagedFiles:
    """Lazy access to the files of a staged release (each read once, shared by the checks)."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        plausibility: Plausibility | None = None,
        month: str | None = None,
    ) -> None:
        self.root = Path(root)
        self._plausibility = plausibility
        if month is not None:  # (given while staging, before the manifest is written)
            self.__dict__["month"] = month

    @cached_property
    def plausibility(self) -> Plausibility:
        """The thresholds given, else those written at staging, else the defaults."""
        if self._plausibility is not None:
            return self._plausibility
        section = self.model.get("plausibility")
        stored = section.get("thresholds") if isinstance(section, dict) else None
        if not isinstance(stored, dict):
            return Plausibility()
        known = Plausibility.__dataclass_fields__
        return Plausibility(**{k: v for k, v in stored.items() if k in known})

    @cached_property
    def manifest(self) -> dict[str, Any]:
        return read_manifest(self.root)

    @cached_property
    def month(self) -> str:
        month = self.manifest["release"].get("month")
        if not month:
            raise ReleaseError(f"{self.root / 'manifest.json'} has no release.month")
        return str(month)

    @cached_property
    def cover_end(self) -> pd.Timestamp:
        return last_friday(self.month)

    @cached_property
    def model(self) -> dict[str, Any]:
        path = self.root / MODEL_NAME
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ReleaseError(f"{MODEL_NAME} is missing: re-stage the release") from None
        except json.JSONDecodeError as exc:
            raise ReleaseError(
                f"{MODEL_NAME} is not valid JSON ({exc}): re-stage the release"
            ) from None

    def figures(self, code: str) -> pd.DataFrame:
        """A region's figures (``england`` for England), from the Parquet file."""
        return self._figures(code)

    def _figures(self, code: str) -> pd.DataFrame:
        cache = self.__dict__.setdefault("_figure_cache", {})
        if code not in cache:
            path = (
                self.root / ENGLAND_FILES[1]
                if code == "england"
                else self.root / region_slug(code) / "figures.parquet"
            )
            if not path.is_file():
                raise ReleaseError(f"{path.relative_to(self.root)} is missing")
            # (one file: pyarrow's ParquetFile, the same frame as pd.read_parquet without loading
            # pyarrow.dataset, a tenth of a second of a command-line run)
            import pyarrow.parquet as pq

            cache[code] = pq.ParquetFile(path).read().to_pandas()
        return cache[code]

    def present_regions(self) -> list[str]:
        return [c for c in REGIONS if (self.root / region_slug(c) / "figures.parquet").is_file()]


# --------------------------------------------------------------------------------------------------
# checks


def check_regions(files: StagedFiles) -> Check:
    """All nine regions present and complete: every file in each folder, listed in the manifest."""
    name = "regions_complete"
    listed = {str(e["path"]) for e in files.manifest["files"]}
    missing_regions: list[str] = []
    problems: list[str] = []
    for code in REGIONS:
        slug = region_slug(code)
        folder = files.root / slug
        if not folder.is_dir():
            missing_regions.append(f"{region_name(code)} ({slug}/)")
            continue
        absent = [f for f in REGION_FILES if not (folder / f).is_file()]
        unlisted = [f for f in REGION_FILES if f"{slug}/{f}" not in listed and f not in absent]
        if absent:
            problems.append(f"{slug}/ lacks {', '.join(absent)}")
        if unlisted:
            problems.append(f"{slug}/{', '.join(unlisted)} not in the manifest")
    for f in ENGLAND_FILES:
        if not (files.root / f).is_file():
            problems.append(f"{f} (England) is missing")
    if missing_regions or problems:
        parts = []
        if missing_regions:
            parts.append(
                f"{len(missing_regions)} of 9 regions missing: {_listing(missing_regions, 9)}"
            )
        if problems:
            parts.append(_listing(problems))
        return Check(
            name,
            "fail",
            "; ".join(parts) + ". Re-stage the release (excessmort run) with "
            "input data holding every region.",
        )
    return Check(
        name,
        "pass",
        f"all 9 regions present, each with {len(REGION_FILES)} files listed in the manifest",
    )


def _weekly_all(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[(frame["table"] == "weekly") & (frame["breakdown"] == "all")]


def check_data_coverage(files: StagedFiles) -> Check:
    """The data reach the last week the release covers (the last Friday of the month)."""
    name = "data_coverage"
    end = files.cover_end
    stale: list[str] = []
    for code in ["england", *files.present_regions()]:
        weekly = _weekly_all(files.figures(code))
        seen = weekly.loc[np.isfinite(weekly["observed"].to_numpy(dtype=float)), "week_ending"]
        last = pd.Timestamp(seen.max()) if len(seen) else None
        if last is None or last < end:
            label = "England" if code == "england" else region_name(code)
            stale.append(
                f"{label} ends at week ending "
                f"{last.date().isoformat() if last is not None else '(no weeks)'}"
            )
    if stale:
        return Check(
            name,
            "fail",
            (
                f"the release covers {files.month}, whose last registration week ends on Friday "
                f"{end.date().isoformat()}, but {_listing(stale)}. Re-run with data up to "
                f"{end.date().isoformat()}, or stage an earlier month (--month)."
            ),
        )
    return Check(
        name,
        "pass",
        f"every region's figures reach week ending {end.date().isoformat()}, "
        f"the last week of {files.month}",
    )


def _series_label(row: dict[str, Any], strata: Iterable[str]) -> str:
    parts = []
    for k in strata:
        v = row.get(k)
        parts.append(region_name(str(v)) if k == "region" else f"{k}={v}")
    return ", ".join(parts) or "series"


def check_series(files: StagedFiles) -> Check:
    """No series short or gapped: no missing week (NaN) in the period reported, in any series."""
    name = "series_complete"
    model = files.model
    strata = model.get("strata", [])
    end = files.cover_end.date().isoformat()
    problems: list[str] = []
    for row in model["series"]:
        label = _series_label(row, strata)
        last = row.get("last_week")
        missing = row.get("missing_weeks") or []
        if last is None:
            problems.append(f"{label}: no data")
        elif last < end:
            problems.append(f"{label}: short, last week {last}")
        elif missing:
            problems.append(f"{label}: {len(missing)} missing weeks ({_listing(missing, 3)})")
    gaps: list[str] = []
    step = pd.Timedelta(days=7)
    for code in files.present_regions():
        weekly = _weekly_all(files.figures(code))
        weeks = pd.to_datetime(weekly["week_ending"]).sort_values()
        nan_weeks = weekly.loc[
            ~np.isfinite(weekly["observed"].to_numpy(dtype=float)), "week_ending"
        ]
        if len(nan_weeks):
            gaps.append(
                f"{region_name(code)}: no observed deaths for week ending "
                f"{pd.Timestamp(nan_weeks.iloc[0]).date()}"
            )
        if len(weeks) > 1 and (weeks.diff().dropna() != step).any():
            gaps.append(f"{region_name(code)}: weekly figures are not every 7 days")
    problems += gaps
    if problems:
        return Check(
            name,
            "fail",
            (
                f"{len(problems)} series short or gapped in the period "
                f"{model['period']['start']} to "
                f"{end}: {_listing(problems)}. Obtain the missing weeks from the data supplier and "
                "re-run, or stage an earlier month."
            ),
        )
    return Check(
        name,
        "pass",
        f"{len(model['series'])} series complete from {model['period']['start']} to {end}",
    )


def check_models(files: StagedFiles) -> Check:
    """Every model converged (fail otherwise) and every dispersion is plausible (warn otherwise)."""
    name = "models_converged"
    model = files.model
    strata = model.get("strata", [])
    series = model["series"]
    bad = [_series_label(r, strata) for r in series if not r.get("converged")]
    if bad:
        return Check(
            name,
            "fail",
            (
                f"{len(bad)} of {len(series)} series did not converge ({model.get('baseline')}): "
                f"{_listing(bad)}. Look at these series for structural breaks or zero counts, then "
                "re-run with another baseline or more iterations."
            ),
        )
    hard = files.plausibility.dispersion_max
    absurd = [
        f"{_series_label(r, strata)} (phi={_fmt(r['dispersion_raw'])})"
        for r in series
        if r.get("dispersion_raw") is not None and r["dispersion_raw"] > hard
    ]
    if absurd:
        return Check(
            name,
            "fail",
            (
                f"{len(absurd)} of {len(series)} series have dispersion above the hard bound "
                f"{hard:g}: {_listing(absurd)}. Such a fit is dominated by an outlier or a broken "
                "series: check those series' counts, fix the input and re-run."
            ),
        )
    # The engine's own rule (excessmort._dispersion): phi judged against what each series'
    # counts make ordinary, with the fit's dispersion_check; a release staged before the rule
    # was recorded (a fixed "dispersion_range") is judged by that range.
    check = model.get("dispersion_check", "auto")
    if "dispersion_check" not in model and "dispersion_range" in model:
        check = tuple(model["dispersion_range"])
    phi = [np.nan if r.get("dispersion_raw") is None else r["dispersion_raw"] for r in series]
    size = [np.nan if r.get("mean_count") is None else r["mean_count"] for r in series]
    judged = judge_dispersion(phi, size, check)
    if judged is None:
        return Check(
            name, "pass", f"all {len(series)} series converged; dispersion not checked (as fitted)"
        )
    odd = [
        f"{_series_label(r, strata)} (phi={r['dispersion_raw']:.3g}, ordinary up to "
        f"{judged.upper[i]:.3g})"
        for i, r in enumerate(series)
        if judged.odd[i]
    ]
    if odd:
        return Check(
            name,
            "warn",
            (
                f"all {len(series)} series converged, but {len(odd)} have dispersion "
                f"{judged.rule}: {_listing(odd)}. Check those series for a structural break, "
                "outliers or strata that mix different populations before publishing."
            ),
        )
    return Check(
        name,
        "pass",
        f"all {len(series)} series converged; no dispersion {judged.rule}",
    )


_KEY = ["table", "period", "breakdown", "level", "week_ending", "start", "end"]
_ADDITIVE = ["observed", "expected", "excess"]


def _close(a: np.ndarray, b: np.ndarray, scale: np.ndarray) -> np.ndarray:
    both_nan = np.isnan(a) & np.isnan(b)
    return both_nan | (np.abs(a - b) <= RTOL * np.maximum(np.abs(scale), 1.0))


def check_england_sum(files: StagedFiles) -> Check:
    """England's observed, expected and excess (weekly, cumulative) equal the sum of the regions."""
    name = "england_sum"
    present = files.present_regions()
    if len(present) != len(REGIONS):
        missing = [region_name(c) for c in REGIONS if c not in present]
        return Check(
            name,
            "fail",
            f"cannot sum England: figures missing for {_listing(missing, 9)}; re-stage the release",
        )
    england = files.figures("england")
    regions = pd.concat([files.figures(c) for c in present], ignore_index=True)
    summed = (
        regions.groupby(_KEY, dropna=False, sort=False)[_ADDITIVE].sum(min_count=1).reset_index()
    )
    joined = england.merge(summed, on=_KEY, how="left", suffixes=("", "_sum"), indicator=True)
    problems: list[str] = []
    only = joined[joined["_merge"] != "both"]
    if len(only):
        r = only.iloc[0]
        problems.append(
            f"{len(only)} of England's rows have no regional figures to sum "
            f"(first: {_row_label(r)})"
        )
    both = joined[joined["_merge"] == "both"]
    scale = np.maximum(
        np.abs(both["observed"].to_numpy(float)), np.abs(both["expected"].to_numpy(float))
    )
    for col in _ADDITIVE:
        ok = _close(both[col].to_numpy(float), both[f"{col}_sum"].to_numpy(float), scale)
        if not ok.all():
            r = both[~ok].iloc[0]
            problems.append(
                f"{col}: {int((~ok).sum())} rows differ (first: {_row_label(r)}, England "
                f"{r[col]:.6g}, sum of regions {r[f'{col}_sum']:.6g})"
            )
    if problems:
        return Check(
            name,
            "fail",
            "England does not equal the sum of the nine regions: "
            f"{_listing(problems)}. Re-stage the release; do not edit the figures by hand.",
        )
    return Check(
        name,
        "pass",
        f"England equals the sum of the nine regions in {len(both)} rows "
        f"(observed, expected, excess; relative tolerance {RTOL:g})",
    )


def _row_label(r: Any) -> str:
    when = (
        pd.Timestamp(r["week_ending"]).date().isoformat()
        if pd.notna(r["week_ending"])
        else f"{pd.Timestamp(r['start']).date()}..{pd.Timestamp(r['end']).date()}"
    )
    group = "all" if r["breakdown"] == "all" else f"{r['breakdown']}={r['level']}"
    return f"{r['table']} {r['period']} {group} {when}"


def _weekly_sums_agree(frame: pd.DataFrame) -> bool:
    """Whether every cumulative row has as many weekly rows of its group in [start, end] as its
    weeks and equals their sums (the rule of :func:`_weekly_vs_cumulative`), in one pass over the
    frame: the weekly rows sorted by group and week, each cumulative row's range of them found by
    binary search on (group, week) codes and summed by one reduction per column."""
    table = frame["table"].to_numpy()
    weekly, cum = table == "weekly", table == "cumulative"
    if not cum.any():
        return True
    group = frame.groupby(["breakdown", "level"], sort=False, dropna=False).ngroup().to_numpy()
    weeks = frame["week_ending"].to_numpy(dtype="datetime64[ns]")[weekly]
    days = np.unique(weeks)
    span = days.shape[0] + 1
    key = group[weekly] * span + np.searchsorted(days, weeks)
    order = np.argsort(key, kind="stable")
    key = key[order]
    first = group[cum] * span
    start = frame["start"].to_numpy(dtype="datetime64[ns]")[cum]
    end = frame["end"].to_numpy(dtype="datetime64[ns]")[cum]
    lo = np.searchsorted(key, first + np.searchsorted(days, start, side="left"), side="left")
    hi = np.searchsorted(key, first + np.searchsorted(days, end, side="right"), side="left")
    if not np.array_equal(hi - lo, frame["n_weeks"].to_numpy(dtype=np.int64)[cum]):
        return False
    scale = np.maximum(
        np.abs(frame["expected"].to_numpy(float)[cum]),
        np.abs(frame["observed"].to_numpy(float)[cum]),
    )
    bounds = np.column_stack([lo, hi]).ravel()  # each row's sum is its own [lo, hi) reduction
    empty = hi == lo
    for col in _ADDITIVE:
        column = frame[col].to_numpy(float)
        values = np.append(column[weekly][order], 0.0)  # (reduceat needs hi < its length)
        finite = np.isfinite(values)
        sums = np.add.reduceat(np.where(finite, values, 0.0), bounds)[::2]
        n_bad = np.add.reduceat((~finite).astype(np.int64), bounds)[::2]
        sums[empty] = 0.0
        sums[(n_bad > 0) & ~empty] = np.nan
        if not _close(sums, column[cum], scale).all():
            return False
    return True


def _weekly_vs_cumulative(frame: pd.DataFrame, label: str) -> list[str]:
    """Compare each cumulative row with the sum of its group's weekly rows over [start, end]: in
    one pass (:func:`_weekly_sums_agree`), and group by group only to word what disagrees."""
    return [] if _weekly_sums_agree(frame) else _weekly_vs_cumulative_by_group(frame, label)


def _weekly_vs_cumulative_by_group(frame: pd.DataFrame, label: str) -> list[str]:
    """The rule of :func:`_weekly_vs_cumulative` group by group, naming the first row that fails."""
    weekly = frame[frame["table"] == "weekly"]
    cum = frame[frame["table"] == "cumulative"]
    problems: list[str] = []
    weekly_groups = dict(iter(weekly.groupby(["breakdown", "level"], sort=False)))
    for key, rows in cum.groupby(["breakdown", "level"], sort=False):
        g = weekly_groups.get(key)
        if g is None:
            problems.append(f"{label} {_row_label(rows.iloc[0])}: no weekly figures")
            continue
        g = g.sort_values("week_ending")
        weeks = g["week_ending"].to_numpy(dtype="datetime64[ns]")
        lo = np.searchsorted(weeks, rows["start"].to_numpy(dtype="datetime64[ns]"), side="left")
        hi = np.searchsorted(weeks, rows["end"].to_numpy(dtype="datetime64[ns]"), side="right")
        counts = hi - lo
        n_weeks = rows["n_weeks"].to_numpy(dtype=np.int64)
        bad = np.flatnonzero(counts != n_weeks)
        if bad.size:
            r = rows.iloc[bad[0]]
            problems.append(
                f"{label} {_row_label(r)}: {int(r['n_weeks'])} weeks cumulated, "
                f"{int(counts[bad[0]])} weekly rows"
            )
            continue
        scale = np.maximum(
            np.abs(rows["expected"].to_numpy(float)), np.abs(rows["observed"].to_numpy(float))
        )
        for col in _ADDITIVE:
            values = g[col].to_numpy(float)
            finite = np.isfinite(values)
            prefix = np.concatenate([[0.0], np.cumsum(np.where(finite, values, 0.0))])
            n_bad = np.concatenate([[0], np.cumsum(~finite)])
            sums = prefix[hi] - prefix[lo]
            sums[(n_bad[hi] - n_bad[lo]) > 0] = np.nan
            given = rows[col].to_numpy(float)
            ok = _close(sums, given, scale)
            if not ok.all():
                i = int(np.flatnonzero(~ok)[0])
                problems.append(
                    f"{label} {_row_label(rows.iloc[i])}: weekly {col} sums to "
                    f"{sums[i]:.6g}, cumulative says {given[i]:.6g}"
                )
                break
    return problems


def check_weekly_cumulative(files: StagedFiles) -> Check:
    """Each cumulative figure is the sum of the weekly figures over its weeks."""
    name = "weekly_cumulative"
    problems: list[str] = []
    n_rows = 0
    for code in ["england", *files.present_regions()]:
        frame = files.figures(code)
        n_rows += int((frame["table"] == "cumulative").sum())
        problems += _weekly_vs_cumulative(
            frame, "England" if code == "england" else region_name(code)
        )
    if problems:
        return Check(
            name,
            "fail",
            "weekly and cumulative figures disagree: "
            f"{_listing(problems)}. Re-stage the release; do not edit the figures by hand.",
        )
    return Check(
        name,
        "pass",
        f"{n_rows} cumulative figures equal the sums of their weekly figures "
        f"(relative tolerance {RTOL:g})",
    )


def check_manifest(files: StagedFiles) -> Check:
    """Every file in the manifest exists with its size and checksum; no unlisted file."""
    name = "manifest_checksums"
    problems = verify_manifest(files.root, files.manifest)
    if problems:
        return Check(
            name,
            "fail",
            f"{len(problems)} files do not match manifest.json: "
            f"{_listing(problems)}. Files changed after staging: re-stage the release "
            "rather than editing it.",
        )
    return Check(name, "pass", f"{len(files.manifest['files'])} files match their SHA-256 and size")


# --------------------------------------------------------------------------------------------------
# plausibility: the numbers against each series' own history (model.json, written at staging)


def _fmt(x: Any) -> str:
    v = float(x)
    if not np.isfinite(v):
        return str(v)
    if abs(v) >= 1e7 or (v != 0 and abs(v) < 1e-3):
        return f"{v:.3g}"
    return f"{v:,.0f}" if abs(v - round(v)) < 1e-9 or abs(v) >= 100 else f"{v:,.1f}"


def _history_section(files: StagedFiles) -> dict[str, Any]:
    section = files.model.get("plausibility")
    if not isinstance(section, dict) or any("history" not in r for r in files.model["series"]):
        raise ReleaseError(
            f"{MODEL_NAME} has no history statistics (staged by an older version): re-stage the "
            "release"
        )
    return section


def _series_scale(h: dict[str, Any]) -> tuple[float, float] | None:
    """(median, scale) of a series or aggregate, or None without reference weeks."""
    median = h.get("median")
    if median is None:
        return None
    mad = h.get("mad") or 0.0
    return float(median), max(float(mad), float(np.sqrt(max(float(median), 1.0))))


def _region_label(code: str) -> str:
    return "England" if code in ("england", "E92000001") else region_name(code)


def _aggregate_table(files: StagedFiles) -> pd.DataFrame:
    rows = _history_section(files).get("aggregates", [])
    table = pd.DataFrame(rows, columns=["region", "breakdown", "level", "median", "mad"])
    table["median"] = table["median"].astype(float)
    table["mad"] = table["mad"].astype(float).fillna(0.0)
    table["scale"] = np.maximum(table["mad"], np.sqrt(np.maximum(table["median"], 1.0)))
    return table


def _weekly_with_history(files: StagedFiles) -> pd.DataFrame:
    """Every weekly row of the figures (England and the regions), with its aggregate's reference
    median and scale (NaN where the aggregate has none)."""
    frames = []
    for code in ["england", *files.present_regions()]:
        weekly = files.figures(code)
        frames.append(weekly[weekly["table"] == "weekly"])
    weekly = pd.concat(frames, ignore_index=True)
    table = _aggregate_table(files)
    keys = ["region", "breakdown", "level"]
    for frame in (weekly, table):
        for k in keys:
            frame[k] = frame[k].astype(str)
    return weekly.merge(table[[*keys, "median", "scale"]], on=keys, how="left")


def _group_label(r: Any) -> str:
    group = "" if r["breakdown"] == "all" else f", {r['breakdown']}={r['level']}"
    return f"{_region_label(str(r['region']))}{group}"


_CUMULATIVE_UNDEFINED = frozenset({"expected_lower", "expected_upper", "z_score"})


def check_finite(files: StagedFiles) -> Check:
    """No figure is NaN or infinite where it should be a number (rows with a missing week aside)."""
    name = "figures_finite"
    from .stage import VALUE_COLUMNS

    problems: list[str] = []
    n_cells = 0
    for code in ["england", *files.present_regions()]:
        frame = files.figures(code)
        weekly = (frame["table"] == "weekly").to_numpy()
        observed = frame["observed"].to_numpy(float)
        counted = ~np.isnan(observed)  # a missing week is series_complete's to report
        pred_lo = frame["prediction_lower"].to_numpy(float)
        for col in VALUE_COLUMNS:
            values = frame[col].to_numpy(float)
            need = counted & (weekly | (col not in _CUMULATIVE_UNDEFINED))
            bad = need & ~np.isfinite(values)
            if col == "ratio_upper":  # no upper bound when the prediction's lower bound is <= 0
                bad &= ~((values == np.inf) & (pred_lo <= 0))
            n_cells += int(need.sum())
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                r = frame.iloc[i]
                problems.append(
                    f"{_group_label(r)} {_row_label(r)}: {col} is {values[i]} "
                    f"({int(bad.sum())} such cells in {col})"
                )
    for row in files.model["series"]:
        h = row.get("history") or {}
        if h.get("expected_nonfinite"):
            problems.append(
                f"{_series_label(row, files.model.get('strata', []))}: expected deaths not finite "
                f"in {h['expected_nonfinite']} weeks reported"
            )
    if problems:
        return Check(
            name,
            "fail",
            f"{len(problems)} figures are not finite numbers: {_listing(problems)}. The fit broke "
            "down (look for an absurd count in the input, or too short a reference period): fix "
            "the input and re-run.",
        )
    return Check(name, "pass", f"{n_cells:,} figures are finite numbers")


def _series_rows(files: StagedFiles) -> list[tuple[str, dict[str, Any]]]:
    strata = files.model.get("strata", [])
    _history_section(files)
    return [(_series_label(r, strata), r["history"]) for r in files.model["series"]]


def check_counts(files: StagedFiles) -> Check:
    """No count far outside its series' own history (reference median and MAD), in any week up to
    the last one reported; none above the population's plausible weekly death rate."""
    name = "counts_plausible"
    t = files.plausibility
    problems: list[str] = []
    for label, h in _series_rows(files):
        level = _series_scale(h)
        if level is None:
            continue
        median, scale = level
        top, low = h.get("max"), h.get("min")
        if top and top["value"] is not None:
            y = float(top["value"])
            z = (y - median) / scale
            if y > t.counts_max_ratio * max(median, 1.0) and z > t.counts_max_z:
                problems.append(
                    f"{label}: {_fmt(y)} deaths in week ending {top['week']}, "
                    f"{_fmt(y / max(median, 1.0))} times its reference median {_fmt(median)} "
                    f"(robust z {_fmt(z)})"
                )
        if low and low["value"] is not None and median >= t.counts_min_median:
            y = float(low["value"])
            if y < t.counts_min_ratio * median:
                problems.append(
                    f"{label}: {_fmt(y)} deaths in week ending {low['week']}, "
                    f"{100 * y / median:.0f}% of its reference median {_fmt(median)}"
                )
        rate = h.get("rate_max")
        if rate and rate["value"] is not None and float(rate["value"]) > t.max_weekly_rate:
            problems.append(
                f"{label}: {100 * float(rate['value']):.3g}% of its population died in the week "
                f"ending {rate['week']} (at most {100 * t.max_weekly_rate:g}% is plausible)"
            )
    weekly = _weekly_with_history(files)
    y = weekly["observed"].to_numpy(float)
    med = weekly["median"].to_numpy(float)
    scale = weekly["scale"].to_numpy(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        high = (y > t.counts_max_ratio * np.maximum(med, 1.0)) & (
            (y - med) / scale > t.counts_max_z
        )
        low_ = (med >= t.counts_min_median) & (y < t.counts_min_ratio * med)
    for mask, what in ((high, "above"), (low_, "below")):
        if mask.any():
            i = int(np.flatnonzero(mask)[0])
            r = weekly.iloc[i]
            problems.append(
                f"{_group_label(r)}: {_fmt(y[i])} deaths in week ending "
                f"{pd.Timestamp(r['week_ending']).date()}, far {what} its reference median "
                f"{_fmt(med[i])} ({int(mask.sum())} such weeks in the figures)"
            )
    if problems:
        return Check(
            name,
            "fail",
            f"{len(problems)} counts are far outside their own history: {_listing(problems)}. "
            "Check these weeks with the data supplier (a typo, a duplicated extract, a unit "
            f"error?), fix the input and re-run. Thresholds: above {t.counts_max_ratio:g} times "
            f"the median and robust z above {t.counts_max_z:g}; below {t.counts_min_ratio:g} "
            f"times a median of at least {t.counts_min_median:g} ([plausibility] in the "
            "release configuration).",
        )
    return Check(
        name,
        "pass",
        f"every count within its history: none above {t.counts_max_ratio:g} times its series' "
        f"reference median with robust z above {t.counts_max_z:g}, none below "
        f"{t.counts_min_ratio:g} times it",
    )


def check_expected(files: StagedFiles) -> Check:
    """Expected deaths of the period reported close to the reference level of their series."""
    name = "expected_plausible"
    t = files.plausibility
    lo_r, hi_r, floor = t.expected_min_ratio, t.expected_max_ratio, t.expected_min_median
    problems: list[str] = []
    for label, h in _series_rows(files):
        level = _series_scale(h)
        if level is None or level[0] < floor:
            continue
        median = level[0]
        for key in ("expected_max", "expected_min"):
            e = h.get(key)
            if not e or e["value"] is None:
                continue
            ratio = float(e["value"]) / median
            if not lo_r <= ratio <= hi_r:
                problems.append(
                    f"{label}: expected {_fmt(e['value'])} deaths in week ending {e['week']}, "
                    f"{_fmt(ratio)} times its reference median {_fmt(median)}"
                )
    weekly = _weekly_with_history(files)
    mu = weekly["expected"].to_numpy(float)
    med = weekly["median"].to_numpy(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = mu / med
        bad = (med >= floor) & np.isfinite(mu) & ((ratio < lo_r) | (ratio > hi_r))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        r = weekly.iloc[i]
        problems.append(
            f"{_group_label(r)}: expected {_fmt(mu[i])} deaths in week ending "
            f"{pd.Timestamp(r['week_ending']).date()}, {_fmt(ratio[i])} times its reference "
            f"median {_fmt(med[i])} ({int(bad.sum())} such weeks in the figures)"
        )
    if problems:
        return Check(
            name,
            "fail",
            f"{len(problems)} expected values are far from their reference level: "
            f"{_listing(problems)}. The baseline extrapolates badly (too short or odd a reference "
            "period, an outlier in it, a trend out of control): check the reference period and "
            f"the input, then re-run. Allowed: {lo_r:g} to {hi_r:g} times the reference median "
            f"(series with a median of at least {floor:g}).",
        )
    return Check(
        name,
        "pass",
        f"expected deaths within {lo_r:g} to {hi_r:g} times their series' reference median",
    )


def check_feeds(files: StagedFiles) -> Check:
    """No series drops to zero or goes flat (the signature of a broken data feed)."""
    name = "feeds_alive"
    t = files.plausibility
    problems: list[str] = []
    n = 0
    for label, h in _series_rows(files):
        level = _series_scale(h)
        if level is None or level[0] < t.feed_min_median:
            continue
        n += 1
        zero, flat = h.get("zero_run"), h.get("flat_run")
        if zero and zero["weeks"] >= t.feed_zero_weeks:
            problems.append(
                f"{label}: 0 deaths for {zero['weeks']} weeks in a row from week ending "
                f"{zero['from']} (reference median {_fmt(level[0])})"
            )
        if flat and flat["weeks"] >= t.feed_flat_weeks and flat["value"]:
            problems.append(
                f"{label}: the same count {_fmt(flat['value'])} for {flat['weeks']} weeks in a row "
                f"from week ending {flat['from']}"
            )
    if problems:
        return Check(
            name,
            "fail",
            f"{len(problems)} series look like a broken feed: {_listing(problems)}. Ask the data "
            "supplier for the real counts of these weeks (or leave them empty, as missing) and "
            f"re-run. Thresholds: {t.feed_zero_weeks} zero weeks or {t.feed_flat_weeks} "
            f"repeated weeks, in series with a reference median of at least {t.feed_min_median:g}.",
        )
    return Check(
        name,
        "pass",
        f"no series of the {n} with a reference median of at least {t.feed_min_median:g} has "
        f"{t.feed_zero_weeks} zero weeks or {t.feed_flat_weeks} repeated weeks in a row",
    )


def check_england(files: StagedFiles) -> Check:
    """England's weekly totals within what its history allows; every P-score within hard bounds."""
    name = "england_and_pscores"
    t = files.plausibility
    problems: list[str] = []
    weekly = _weekly_with_history(files)
    england = weekly[(weekly["region"] == "E92000001") & (weekly["breakdown"] == "all")]
    y = england["observed"].to_numpy(float)
    med = england["median"].to_numpy(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = y / med
    bad = np.isfinite(ratio) & ((ratio < t.england_min_ratio) | (ratio > t.england_max_ratio))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        problems.append(
            f"England: {_fmt(y[i])} deaths in week ending "
            f"{pd.Timestamp(england['week_ending'].iloc[i]).date()}, {_fmt(ratio[i])} times its "
            f"reference median {_fmt(med[i])} (allowed {t.england_min_ratio:g} to "
            f"{t.england_max_ratio:g}; {int(bad.sum())} such weeks)"
        )
    frames = [files.figures(c) for c in ["england", *files.present_regions()]]
    every = pd.concat(frames, ignore_index=True)
    mu = every["expected"].to_numpy(float)
    excess = every["excess"].to_numpy(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        pscore = 100.0 * excess / mu
    big = np.isfinite(pscore) & (mu >= t.pscore_min_expected * every["n_weeks"].to_numpy(float))
    out = big & ((pscore < t.pscore_min) | (pscore > t.pscore_max))
    if out.any():
        worst = np.flatnonzero(out)
        for i in worst[np.argsort(-np.abs(pscore[worst]))][:3]:
            r = every.iloc[int(i)]
            problems.append(
                f"{_group_label(r)} {_row_label(r)}: P-score {pscore[i]:+.0f}% (observed "
                f"{_fmt(r['observed'])}, expected {_fmt(mu[i])})"
            )
        if worst.size > 3:
            problems.append(f"{worst.size - 3} more P-scores outside the bounds")
    if problems:
        return Check(
            name,
            "fail",
            f"England's totals or P-scores are outside what the history allows: "
            f"{_listing(problems)}. Check the input for these weeks and the reference period, "
            f"then re-run. P-scores must lie in [{t.pscore_min:g}%, {t.pscore_max:g}%] where "
            f"expected deaths are at least {t.pscore_min_expected:g} a week.",
        )
    return Check(
        name,
        "pass",
        f"England's weekly totals within {t.england_min_ratio:g} to {t.england_max_ratio:g} times "
        f"its reference median; every P-score within [{t.pscore_min:g}%, {t.pscore_max:g}%]",
    )


# --------------------------------------------------------------------------------------------------
# HTML


# (one page's check lives in .pages, which a render worker takes in without the engine)


def _html_pages(files: StagedFiles) -> list[Path]:
    return sorted(
        p
        for p in files.root.rglob("*.html")
        if not any(part.startswith(".") for part in p.relative_to(files.root).parts)
    )


def _html_verdict(pages: list[Path], problems: list[str]) -> Check:
    name = "html_self_contained"
    if not pages:
        return Check(name, "fail", "no HTML pages in the release: re-stage it")
    if problems:
        return Check(
            name,
            "fail",
            f"{len(problems)} problems in the HTML: {_listing(problems)}. "
            "Pages must be self-contained: re-stage the release, and remove external links "
            "or scripts from the templates or configuration.",
        )
    return Check(
        name, "pass", f"{len(pages)} pages parse, run no script and link only inside the release"
    )


def check_html(files: StagedFiles) -> Check:
    """Every HTML page parses, runs no script and links only to files inside the release."""
    pages = _html_pages(files)
    return _html_verdict(
        pages, [problem for page in pages for problem in check_page(page, files.root)]
    )


# --------------------------------------------------------------------------------------------------
# embargo


def _visible_copies(live: Path, release_date: str, digest: str) -> list[str]:
    found: list[str] = []
    candidates = [live / release_date]
    releases = live / "releases"
    if releases.is_dir():
        candidates += [
            p for p in releases.iterdir() if p.name.lstrip(".").startswith(f"{release_date}-")
        ]
    for path in candidates:
        if path.exists():
            found.append(str(path))
    current = live / "current"
    if current.is_symlink() or current.is_dir():
        target = Path(os.readlink(current)).name if current.is_symlink() else ""
        if target.startswith(f"{release_date}-"):
            found.append(f"{current} -> {os.readlink(current)}")
        elif (current / "manifest.json").is_file():
            try:
                if manifest_digest(read_manifest(current)) == digest:
                    found.append(str(current))
            except ReleaseError:
                pass
    return sorted(set(found))


def check_embargo(
    files: StagedFiles,
    *,
    live_root: str | os.PathLike[str] | None = None,
    now: datetime | None = None,
) -> Check:
    """Nothing of the release is visible on the live target before its slot."""
    name = "embargo"
    release = files.manifest["release"]
    slot_text = release.get("slot")
    if not slot_text:
        return Check(name, "fail", "manifest.json has no release.slot: re-stage the release")
    slot = datetime.fromisoformat(str(slot_text))
    moment = now or datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if live_root is None:
        return Check(
            name,
            "warn",
            f"no live target given, so the embargo until {slot_text} was not "
            "checked: pass --live-root (or a configuration with a target)",
        )
    live = Path(live_root)
    if not live.exists():
        return Check(
            name,
            "pass",
            f"the live target {live} does not exist yet: nothing is live "
            f"before the slot {slot_text}",
        )
    release_date = str(release.get("release_date") or files.root.name)
    copies = _visible_copies(live, release_date, manifest_digest(files.manifest))
    if moment < slot and copies:
        return Check(
            name,
            "fail",
            (
                f"embargo broken: the release is on the live target before its slot {slot_text} "
                f"(now {moment.astimezone(slot.tzinfo).isoformat(timespec='seconds')}): "
                f"{_listing(copies)}. Take it down now, record the breach and tell the Head of "
                "Profession."
            ),
        )
    if moment < slot:
        return Check(name, "pass", f"not on the live target {live}; embargoed until {slot_text}")
    return Check(
        name,
        "pass",
        f"the slot {slot_text} has passed; the release may be live "
        f"({'live' if copies else 'not yet live'} on {live})",
    )


# --------------------------------------------------------------------------------------------------
# running them

#: The checks that read only the figure files and ``model.json`` (not the pages, the manifest or
#: the live target): staging runs them (:func:`check_figures`) while the reports are drawn.
FIGURE_CHECKS: tuple[Callable[[StagedFiles], Check], ...] = (
    check_data_coverage,
    check_series,
    check_models,
    check_finite,
    check_counts,
    check_expected,
    check_feeds,
    check_england,
    check_england_sum,
    check_weekly_cumulative,
)


#: Every check but the embargo, in the order of the verdict.
CHECKS: tuple[Callable[[StagedFiles], Check], ...] = (
    check_regions,
    *FIGURE_CHECKS,
    check_manifest,
    check_html,
)
_NAMES = {
    check_regions: "regions_complete",
    check_data_coverage: "data_coverage",
    check_series: "series_complete",
    check_models: "models_converged",
    check_finite: "figures_finite",
    check_counts: "counts_plausible",
    check_expected: "expected_plausible",
    check_feeds: "feeds_alive",
    check_england: "england_and_pscores",
    check_england_sum: "england_sum",
    check_weekly_cumulative: "weekly_cumulative",
    check_manifest: "manifest_checksums",
    check_html: "html_self_contained",
}


def check_figures(
    path: str | os.PathLike[str],
    *,
    plausibility: Plausibility | None = None,
    month: str | None = None,
) -> dict[str, Check]:
    """The verdicts of :data:`FIGURE_CHECKS` on the figure files and ``model.json`` under ``path``
    (by check name), for :func:`check_release`'s ``checked``: staging writes those files first and
    checks them while its workers draw the pages, which the other checks need. ``month``: the
    month the release covers, ``YYYY-MM`` (default the manifest's, once it is written)."""
    files = StagedFiles(path, plausibility, month)
    return {_NAMES[fn]: _guarded(_NAMES[fn], partial(fn, files)) for fn in FIGURE_CHECKS}


def _guarded(name: str, fn: Callable[[], Check]) -> Check:
    try:
        return fn()
    except (ReleaseError, OSError, ValueError, KeyError) as exc:
        return Check(name, "fail", f"could not run: {exc}")


def check_release(
    path: str | os.PathLike[str],
    *,
    live_root: str | os.PathLike[str] | None = None,
    now: datetime | None = None,
    plausibility: Plausibility | None = None,
    pool: Any = None,
    checked: dict[str, Check] | None = None,
) -> Readiness:
    """Run every readiness check on the staged release at ``path``.

    Parameters
    ----------
    path : path
        The staged release folder (``OUT/<release-date>``).
    live_root : path, optional
        The live target's root, for the embargo check (``None``: the embargo is not checked and the
        check warns).
    now : datetime, optional
        The time the embargo is judged at (default now; naive means UTC).
    plausibility : Plausibility, optional
        Thresholds of the plausibility checks (default: those written into ``model.json`` when
        the release was staged, else the defaults).
    pool : Executor, optional
        Worker processes to run the page check in beside the others (staging passes its render
        workers); default a process forked for it, or none (see :func:`_beside`).
    checked : dict, optional
        Verdicts from :func:`check_figures` on this release's files (the same thresholds), used
        instead of running those checks again; any other check named there is run all the same.

    Returns
    -------
    Readiness
        ``ready`` when no check fails.
    """
    files = StagedFiles(path, plausibility)
    if not files.root.is_dir():
        return Readiness(
            [Check("manifest_checksums", "fail", f"{files.root} is not a staged release folder")]
        )
    given = checked or {}

    def verdict(fn: Callable[[StagedFiles], Check]) -> Check:
        name = _NAMES[fn]
        if fn in FIGURE_CHECKS and name in given:
            return given[name]
        return _guarded(name, partial(fn, files))

    with _beside(check_html, files, pool) as html:
        checks = [html() if fn is check_html else verdict(fn) for fn in CHECKS]
    checks.append(_guarded("embargo", lambda: check_embargo(files, live_root=live_root, now=now)))
    return Readiness(checks)


@contextmanager
def _beside(
    fn: Callable[[StagedFiles], Check], files: StagedFiles, pool: Any = None
) -> Iterator[Callable[[], Check]]:
    """Run the check ``fn`` in a forked process while this one runs the others; yields the function
    that waits for its verdict. The HTML check (parsing every page with its inline charts) is as
    long as all the other checks together, and reads only the pages: on two cores it runs beside
    them: in ``pool`` when given (staging's render workers, already forked; the HTML check page by
    page, so that both workers parse), else in a process forked for it. In process where the render would be (one core, no fork, or
    ``EXCESSMORT_RENDER_PROCESSES=1``: :func:`excessmort.report.render._render_processes`)."""
    from .render import _render_processes

    name = _NAMES[fn]
    pages = None
    if pool is not None and fn is check_html:
        with suppress(OSError):  # (a folder that cannot be listed: the check itself words it)
            pages = _html_pages(files)
    if pages is not None:
        # page by page, so that every worker of the pool parses its share of the pages
        futures = [pool.submit(check_page, page, files.root) for page in pages]
        yield lambda: _guarded(
            name, lambda: _html_verdict(pages, [p for f in futures for p in f.result()])
        )
        return
    if pool is not None:
        yield pool.submit(_guarded, name, partial(fn, files)).result
        return
    if _render_processes(2) < 2:
        yield lambda: _guarded(name, lambda: fn(files))
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
        future = pool.submit(_guarded, name, partial(fn, files))
        yield future.result


def write_readiness(path: str | os.PathLike[str], readiness: Readiness) -> Path:
    """Write ``readiness.json`` into the release folder (atomically)."""
    out = Path(path) / READINESS_NAME
    atomic_write_text(out, json.dumps(readiness.to_dict(), indent=2) + "\n")
    return out


def read_readiness(path: str | os.PathLike[str]) -> Readiness:
    """Read ``readiness.json`` of a staged release."""
    data = json.loads((Path(path) / READINESS_NAME).read_text(encoding="utf-8"))
    return Readiness([Check(**c) for c in data["checks"]])
