"""Is a staged release ready? One function per check: a verdict and a message a person can act on.

Every check reads the staged files only (``manifest.json``, ``model.json``, the figures, the HTML):
never the fit and never the input data, so ``excessmort check DIR`` gives the same verdict on
another machine. A release is ready when no check fails; a warning is reported but does not block.

Checks (in order):

``regions_complete``     the nine region folders exist, with every file, each in the manifest
``data_coverage``        the figures reach the last Friday of the month the release covers
``series_complete``      no series is short or has a missing week in the period reported
``models_converged``     every series' model converged; dispersion plausible (warning otherwise)
``england_sum``          England's figures equal the sum of the nine regions' (1e-6 relative)
``weekly_cumulative``    each cumulative figure equals the sum of its weekly figures (1e-6 relative)
``manifest_checksums``   every file in the manifest exists with its size and SHA-256; none unlisted
``html_self_contained``  every page parses, runs no script, links only to files in the release
``embargo``              the release is not on the live target before its slot
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

import numpy as np
import pandas as pd

from .._atomic import atomic_write_text
from ..exceptions import ReleaseError
from ..regions import REGIONS, region_name, region_slug
from .manifest import manifest_digest, read_manifest, verify_manifest
from .stage import ENGLAND_FILES, MODEL_NAME, READINESS_NAME, REGION_FILES, last_friday

__all__ = [
    "CHECKS",
    "Check",
    "Readiness",
    "check_data_coverage",
    "check_embargo",
    "check_england_sum",
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

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

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
            cache[code] = pd.read_parquet(path)
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
    lo, hi = model.get("dispersion_range", (0.2, 10.0))
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
    odd = [
        f"{_series_label(r, strata)} (phi={r['dispersion_raw']:.3g})"
        for r in series
        if r.get("dispersion_raw") is not None and not lo <= r["dispersion_raw"] <= hi
    ]
    if odd:
        return Check(
            name,
            "warn",
            (
                f"all {len(series)} series converged, but {len(odd)} have dispersion outside the "
                f"plausible range [{lo}, {hi}]: {_listing(odd)}. "
                "Check those series for outliers or "
                "misclassified strata before publishing."
            ),
        )
    return Check(
        name, "pass", f"all {len(series)} series converged; dispersion within [{lo}, {hi}]"
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


def _weekly_vs_cumulative(frame: pd.DataFrame, label: str) -> list[str]:
    """Compare each cumulative row with the sum of its group's weekly rows over [start, end]."""
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
# HTML


_VOID = frozenset(
    {
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "param",
        "source",
        "track",
        "wbr",
    }
)
_LINK_ATTRS = frozenset(
    {
        "href",
        "src",
        "xlink:href",
        "action",
        "formaction",
        "data",
        "poster",
        "srcset",
        "background",
        "cite",
        "longdesc",
        "manifest",
        "ping",
    }
)
_SAFE_SCHEMES = frozenset({"mailto", "tel"})
_CSS_URL = re.compile(r"url\(\s*(['\"]?)(.*?)\1\s*\)|@import\s+(['\"])(.*?)\3", re.I | re.S)


class _PageParser(HTMLParser):
    """Collects structure errors, links and anything executable from one page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, tuple[int, int]]] = []
        self.errors: list[str] = []
        self.links: list[str] = []
        self.executable: list[str] = []
        self.seen_html = False
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._attrs(tag, attrs)
        if tag == "html":
            self.seen_html = True
        if tag == "style":
            self._in_style = True
        if tag not in _VOID:
            self.stack.append((tag, self.getpos()))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._attrs(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False
        if tag in _VOID:
            return
        if not self.stack:
            self.errors.append(f"line {self.getpos()[0]}: </{tag}> closes nothing")
            return
        open_tag, pos = self.stack.pop()
        if open_tag != tag:
            self.errors.append(
                f"line {self.getpos()[0]}: </{tag}> closes <{open_tag}> opened on line {pos[0]}"
            )

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self._css(data)

    def _css(self, text: str) -> None:
        for m in _CSS_URL.finditer(text):
            self.links.append(m.group(2) if m.group(2) is not None else m.group(4))

    def _attrs(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        line = self.getpos()[0]
        if tag in ("script", "iframe", "object", "embed", "applet", "frame"):
            self.executable.append(f"line {line}: <{tag}> element")
        if tag == "meta" and any(
            k == "http-equiv" and (v or "").lower() == "refresh" for k, v in attrs
        ):
            self.executable.append(f"line {line}: <meta http-equiv=refresh>")
        for key, value in attrs:
            if key.startswith("on"):
                self.executable.append(f"line {line}: {key}= handler on <{tag}>")
            if value is None:
                continue
            if key in _LINK_ATTRS:
                if key == "srcset":
                    self.links += [
                        part.strip().split(" ")[0] for part in value.split(",") if part.strip()
                    ]
                else:
                    self.links.append(value)
            elif key == "style":
                self._css(value)


def _link_problem(link: str, page: Path, root: Path) -> str | None:
    text = link.strip()
    if not text or text.startswith("#"):
        return None
    parts = urlsplit(text)
    if parts.scheme:
        if parts.scheme.lower() in _SAFE_SCHEMES:
            return None
        return f"links to {text!r} ({parts.scheme}: is outside the release)"
    if parts.netloc or text.startswith("//"):
        return f"links to {text!r} (another host)"
    target = unquote(parts.path)
    if not target:
        return None
    resolved = (root / target.lstrip("/")) if target.startswith("/") else (page.parent / target)
    resolved = Path(os.path.normpath(resolved))
    root_norm = Path(os.path.normpath(root))
    if target.startswith("/") or (resolved != root_norm and root_norm not in resolved.parents):
        return f"links to {text!r}, outside the release folder"
    if not resolved.exists():
        return f"links to {text!r}, which is not in the release"
    return None


def check_page(path: Path, root: Path) -> list[str]:
    """Problems of one HTML page: structure, executable content, links leaving the release."""
    rel = path.relative_to(root).as_posix()
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        return [f"{rel}: not UTF-8 ({exc})"]
    parser = _PageParser()
    parser.feed(text)
    parser.close()
    problems = [f"{rel}: {e}" for e in parser.errors[:3]]
    if parser.stack:
        tag, pos = parser.stack[-1]
        problems.append(f"{rel}: <{tag}> opened on line {pos[0]} is never closed")
    if not text.lstrip().lower().startswith("<!doctype html>") or not parser.seen_html:
        problems.append(f"{rel}: not an HTML document (no <!DOCTYPE html> / <html>)")
    problems += [f"{rel}: {e} (reports must not run code)" for e in parser.executable[:3]]
    for link in parser.links:
        why = _link_problem(link, path, root)
        if why:
            problems.append(f"{rel}: {why}")
    return problems


def check_html(files: StagedFiles) -> Check:
    """Every HTML page parses, runs no script and links only to files inside the release."""
    name = "html_self_contained"
    pages = sorted(
        p
        for p in files.root.rglob("*.html")
        if not any(part.startswith(".") for part in p.relative_to(files.root).parts)
    )
    if not pages:
        return Check(name, "fail", "no HTML pages in the release: re-stage it")
    problems: list[str] = []
    for page in pages:
        problems += check_page(page, files.root)
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

CHECKS: tuple[Callable[[StagedFiles], Check], ...] = (
    check_regions,
    check_data_coverage,
    check_series,
    check_models,
    check_england_sum,
    check_weekly_cumulative,
    check_manifest,
    check_html,
)
_NAMES = {
    check_regions: "regions_complete",
    check_data_coverage: "data_coverage",
    check_series: "series_complete",
    check_models: "models_converged",
    check_england_sum: "england_sum",
    check_weekly_cumulative: "weekly_cumulative",
    check_manifest: "manifest_checksums",
    check_html: "html_self_contained",
}


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

    Returns
    -------
    Readiness
        ``ready`` when no check fails.
    """
    files = StagedFiles(path)
    if not files.root.is_dir():
        return Readiness(
            [Check("manifest_checksums", "fail", f"{files.root} is not a staged release folder")]
        )
    checks = [_guarded(_NAMES[fn], lambda fn=fn: fn(files)) for fn in CHECKS]
    checks.append(_guarded("embargo", lambda: check_embargo(files, live_root=live_root, now=now)))
    return Readiness(checks)


def write_readiness(path: str | os.PathLike[str], readiness: Readiness) -> Path:
    """Write ``readiness.json`` into the release folder (atomically)."""
    out = Path(path) / READINESS_NAME
    atomic_write_text(out, json.dumps(readiness.to_dict(), indent=2) + "\n")
    return out


def read_readiness(path: str | os.PathLike[str]) -> Readiness:
    """Read ``readiness.json`` of a staged release."""
    data = json.loads((Path(path) / READINESS_NAME).read_text(encoding="utf-8"))
    return Readiness([Check(**c) for c in data["checks"]])
