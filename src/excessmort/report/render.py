"""Render the regional reports and the index page: jinja2 templates and matplotlib SVG charts.

Every page is self-contained: the CSS is inline, the charts are inline SVG (text kept as text,
``svg.fonttype = none``; no fonts, scripts, images or styles are fetched), and the only links are to
files inside the release. Every string that comes from the data or the configuration goes through
jinja2's autoescaping; chart labels are escaped by matplotlib's SVG writer and mathtext is off, so a
stratum named ``<script>`` or ``$x$`` shows as typed.

Charts are drawn with matplotlib's object API (no pyplot state) and the Agg/SVG canvases, once per
region; the same SVG text is inlined in the report and written beside it as a file.
"""

from __future__ import annotations

import dataclasses
import io
import math
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..regions import ENGLAND_CODE, REGIONS, region_name, region_slug
from .settings import StageSettings

__all__ = [
    "BASELINE_DESCRIPTIONS",
    "ReleaseContext",
    "chart_alarms",
    "chart_excess",
    "chart_observed",
    "chart_ratio",
    "render_release",
]

BASELINE_DESCRIPTIONS: dict[str, str] = {
    "quasipoisson": (
        "a quasi-Poisson regression fitted separately to each series (a log-linear trend, two "
        "pairs of yearly seasonal terms and, where the data carry it, a population offset), with "
        "the extra-Poisson variation (dispersion) estimated from the reference weeks"
    ),
    "poisson": (
        "a Poisson regression fitted separately to each series (a log-linear trend and yearly "
        "seasonal terms)"
    ),
    "five_year_average": (
        "the average of the same week in the five previous years (the method ONS used until 2023)"
    ),
    "euromomo": (
        "the EuroMOMO model (trend and one seasonal pair fitted on spring and autumn weeks of the "
        "last five years)"
    ),
    "pooled": (
        "one quasi-Poisson regression over every region, sex and age group at once, with trend, "
        "seasonality by age group, bank-holiday effects and population offsets (the producer's "
        "published method)"
    ),
    "ons2024": (
        "ONS's model since 2024: one quasi-Poisson regression over age groups, sexes and areas with "
        "a trend, week-of-year effects and population offsets, refitted for every week on the five "
        "years ending a year before it, with the COVID-19 weeks of 2020 and 2021 left out"
    ),
    "wmd": (
        "the World Mortality Dataset's model: a least-squares fit to each series of a linear "
        "trend over years and an effect for each week of the year"
    ),
    "negative_binomial": (
        "a negative-binomial regression fitted separately to each series (a log-linear trend, "
        "yearly seasonal terms and a population offset), its over-dispersion estimated by "
        "maximum likelihood"
    ),
}
STRATUM_LABELS = {
    "sex": "Sex",
    "age_group": "Age group",
    "cause": "Cause of death",
    "place_of_death": "Place of death",
    "deprivation": "Deprivation",
    "ethnic_group": "Ethnic group",
}
PERIOD_LABELS = {"since_reference": "Since the reference period", "latest_month": "Latest month"}

_COLOURS = {
    "observed": "#1f3a93",
    "expected": "#555555",
    "band": "#b9c7e8",
    "excess_pos": "#c0392b",
    "excess_neg": "#2e86c1",
    "month": "#f5e6b3",
    "since": "#1f3a93",
    "latest": "#c0392b",
}


# --------------------------------------------------------------------------------------------------
# formatting (jinja filters)


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def fmt_count(value: Any) -> str:
    """A count with thousands separators (``12,345``); en dash when missing."""
    if not _finite(value):
        return "\u2013"
    return f"{float(value):,.0f}".replace("-", "\u2212")


def fmt_signed(value: Any) -> str:
    """A signed count (``+1,234`` / ``\u22121,234``)."""
    if not _finite(value):
        return "\u2013"
    v = round(float(value))
    return ("+" if v > 0 else "") + fmt_count(v)


def fmt_ratio(value: Any) -> str:
    """A ratio with two decimals; ``\u221e`` when unbounded."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "\u2013"
    if math.isinf(v):
        return "\u221e"
    return f"{v:.2f}" if math.isfinite(v) else "\u2013"


def fmt_pct(value: Any) -> str:
    """A signed percentage with one decimal."""
    if not _finite(value):
        return "\u2013"
    v = float(value)
    return ("+" if v > 0 else "") + f"{v:.1f}%".replace("-", "\u2212")


def fmt_date(value: Any) -> str:
    """``30 April 2021``."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or pd.isna(value):
        return "\u2013"
    ts = pd.Timestamp(value)
    return f"{ts.day} {ts:%B %Y}"


def fmt_slot(value: datetime) -> str:
    """``14:00 BST, Thursday 20 May 2021``."""
    return f"{value:%H:%M} {value.tzname()}, {value:%A} {value.day} {value:%B %Y}"


# --------------------------------------------------------------------------------------------------
# charts


def _svg(fig: Any) -> str:
    """The figure as an SVG fragment for inlining: no XML prolog, no DOCTYPE, no metadata."""
    from matplotlib.backends.backend_svg import FigureCanvasSVG

    FigureCanvasSVG(fig)
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)
    return text.strip() + "\n"


#: Figures kept for reuse, per thread: one per chart kind and size (see :func:`_figure`).
_FIGURES = threading.local()
_FIGURES_KEPT = 8


def _figure(
    width: float = 8.0,
    height: float = 3.6,
    nrows: int = 1,
    *,
    left: float = 0.8,
    top: float = 0.35,
    kind: str = "",
    unlabelled: str = "x",
    **kw: Any,
) -> Any:
    """A figure with fixed margins in inches (no layout engine: it costs more than the drawing).

    ``unlabelled`` names the axes ("x", "y", both or none) whose label the chart never sets: their
    (empty) label is pinned in place, so that drawing skips placing it clear of the tick labels
    (matplotlib measures every tick label of the axes again for that; 5% of a report's drawing).

    The figure of a kind and size is made once per thread and drawn again for every chart of that
    kind: its axes are emptied (data artists, legend, limits) instead of made anew, so their ticks,
    spines and text objects are reused (making them cost about a third of each chart). The SVG is
    the same text as a fresh figure's (pinned in tests/test_render.py)."""
    key = (kind, width, height, nrows, left, top, unlabelled, tuple(sorted(kw.items())))
    cache = getattr(_FIGURES, "figures", None)
    if cache is None:
        cache = _FIGURES.figures = {}
    if key in cache:
        fig, axes = cache[key]
        for ax in axes:
            _empty(ax)
        return fig, axes
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(
        left=left / width,
        right=1 - 0.2 / width,
        bottom=0.45 / height,
        top=1 - top / height,
        hspace=0.12 * nrows,
    )
    axes = fig.subplots(nrows, 1, squeeze=False, **kw)[:, 0]
    for ax in axes:
        for name in unlabelled:
            getattr(ax, f"{name}axis").set_label_coords(0.5, 0.5)  # (never drawn: no text)
    if kind:
        if len(cache) >= _FIGURES_KEPT:  # sizes vary with the groups: keep the latest few
            del cache[next(iter(cache))]
        cache[key] = (fig, axes)
    return fig, axes


#: The figures every chart kind draws on (the ratio chart's height follows its groups): made by
#: each worker while it waits for its first report, and by the charts themselves otherwise.
_FIGURE_KINDS: dict[str, dict[str, Any]] = {
    "observed": {},
    "excess": {"height": 5.4, "nrows": 2, "sharex": True},
    "alarms": {"height": 3.2},
}


def _empty(ax: Any) -> None:
    """Take a drawn chart's data off ``ax``: artists, legend, titles, limits (autoscaled again)."""
    from matplotlib import transforms as mtransforms

    for artist in (*ax.lines, *ax.collections, *ax.patches, *ax.texts):
        artist.remove()
    if ax.legend_ is not None:
        ax.legend_.remove()
    for title in (ax.title, ax._left_title, ax._right_title):
        title.set_text("")
    ax.dataLim.set_points(mtransforms.Bbox.null().get_points())
    ax.ignore_existing_data_limits = True
    ax.set_autoscale_on(True)
    ax.relim()


def _rc() -> Any:
    import matplotlib

    return matplotlib.rc_context(
        {
            "svg.fonttype": "none",
            "svg.hashsalt": "excessmort",
            "text.parse_math": False,
            "text.usetex": False,
            "font.family": "sans-serif",
            "font.size": 9.0,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "grid.color": "#e3e3e3",
            "grid.linewidth": 0.6,
        }
    )


def _shade_month(ax: Any, start: pd.Timestamp, end: pd.Timestamp) -> None:
    ax.axvspan(
        start - pd.Timedelta(days=6),
        end,
        color=_COLOURS["month"],
        lw=0,
        zorder=0,
        label="latest month",
    )


def chart_observed(
    weekly: pd.DataFrame,
    month_start: pd.Timestamp,
    cover_end: pd.Timestamp,
    title: str,
    level: float,
) -> str:
    """Weekly observed deaths against expected deaths and the prediction band, as SVG text."""
    with _rc():
        fig, (ax,) = _figure(kind="observed", **_FIGURE_KINDS["observed"])
        x = pd.to_datetime(weekly["week_ending"])
        _shade_month(ax, month_start, cover_end)
        ax.fill_between(
            x,
            weekly["prediction_lower"],
            weekly["prediction_upper"],
            color=_COLOURS["band"],
            lw=0,
            label=f"{level:.0%} prediction interval",
        )
        ax.plot(
            x, weekly["expected"], color=_COLOURS["expected"], lw=1.2, ls="--", label="expected"
        )
        ax.plot(x, weekly["observed"], color=_COLOURS["observed"], lw=1.4, label="observed")
        ax.set_ylabel("deaths per week")
        ax.set_title(title, loc="left", fontsize=10, y=1.0)
        ax.legend(loc="upper left", fontsize=8, ncols=4, frameon=False)
        top = np.nanmax(weekly[["observed", "prediction_upper"]].to_numpy(dtype=float), initial=1.0)
        ax.set_ylim(0, 1.18 * top)
        return _svg(fig)


def chart_excess(
    weekly: pd.DataFrame,
    running: pd.DataFrame,
    month_start: pd.Timestamp,
    cover_end: pd.Timestamp,
    title: str,
    level: float,
) -> str:
    """Weekly excess with its interval (top) and cumulative excess month by month (bottom)."""
    with _rc():
        fig, (top, bottom) = _figure(kind="excess", **_FIGURE_KINDS["excess"])
        x = pd.to_datetime(weekly["week_ending"])
        excess = weekly["excess"].to_numpy(dtype=float)
        _shade_month(top, month_start, cover_end)
        top.fill_between(
            x,
            weekly["excess_lower"],
            weekly["excess_upper"],
            color=_COLOURS["band"],
            lw=0,
            label=f"{level:.0%} interval",
        )
        _weekly_bars(top, x, np.nan_to_num(excess))
        top.axhline(0, color="#333333", lw=0.8)
        top.set_ylabel("excess deaths per week")
        top.set_title(title, loc="left", fontsize=10, y=1.0)
        top.legend(loc="upper left", fontsize=8, ncols=3, frameon=False)
        xr = pd.to_datetime(running["end"])
        _shade_month(bottom, month_start, cover_end)
        bottom.fill_between(
            xr,
            running["excess_lower"],
            running["excess_upper"],
            color=_COLOURS["band"],
            lw=0,
            label=f"{level:.0%} interval",
        )
        bottom.plot(
            xr,
            running["excess"],
            color=_COLOURS["observed"],
            lw=1.4,
            marker="o",
            ms=2.5,
            label="cumulative excess",
        )
        bottom.axhline(0, color="#333333", lw=0.8)
        bottom.set_ylabel("cumulative excess deaths")
        bottom.legend(loc="upper left", fontsize=8, ncols=2, frameon=False)
        return _svg(fig)


def _weekly_bars(ax: Any, x: pd.Series, values: np.ndarray) -> None:
    """A vertical line from 0 to each week's value, red above zero and blue below: one path per
    colour (vertical segments joined by NaN breaks), not one SVG element per week as a
    LineCollection writes them; the same lines, a fraction of the drawing time."""
    stamps = np.asarray(x.to_numpy(), dtype="datetime64[ns]")
    for colour, keep, label in (
        (_COLOURS["excess_pos"], values >= 0, "weekly excess"),
        (_COLOURS["excess_neg"], values < 0, None),
    ):
        n = int(keep.sum())
        xs = np.empty(3 * n, dtype="datetime64[ns]")
        ys = np.empty(3 * n)
        xs[0::3] = xs[1::3] = xs[2::3] = stamps[keep]
        ys[0::3], ys[1::3], ys[2::3] = 0.0, values[keep], np.nan
        ax.plot(xs, ys, color=colour, lw=1.6, solid_capstyle="butt", label=label)


#: Lower edges of EuroMOMO's z-score bands drawn on the alarm chart, and their colours.
_BAND_COLOURS = ("#ffffff", "#fde9c9", "#f9c784", "#f08c5a", "#d9483b", "#8e1b2d")


def chart_alarms(
    weekly: pd.DataFrame,
    periods: pd.DataFrame,
    month_start: pd.Timestamp,
    cover_end: pd.Timestamp,
    title: str,
) -> str:
    """Weekly z-scores on EuroMOMO's bands (2, 4, 7, 10, 15) with CUSUM alarms marked, and the
    detected excess periods shaded."""
    from ..alarms import BAND_EDGES

    with _rc():
        fig, (ax,) = _figure(kind="alarms", **_FIGURE_KINDS["alarms"])
        x = pd.to_datetime(weekly["week_ending"])
        z = weekly["z_score"].to_numpy(dtype=float)
        top = max(float(np.nanmax(z, initial=0.0)) * 1.1, 5.0)
        edges = (-np.inf, *BAND_EDGES, np.inf)
        for b in range(1, len(edges) - 1):
            lo, hi = edges[b], min(edges[b + 1], top)
            if lo < top:
                ax.axhspan(lo, hi, color=_BAND_COLOURS[b], lw=0, zorder=0)
        for _, p in periods.iterrows():
            ax.axvspan(
                pd.Timestamp(p["start"]) - pd.Timedelta(days=6),
                pd.Timestamp(p["end"]),
                color=_COLOURS["band"],
                alpha=0.6,
                lw=0,
                zorder=1,
            )
        _shade_month(ax, month_start, cover_end)
        ax.plot(x, z, color=_COLOURS["observed"], lw=1.2, zorder=3, label="z-score")
        hit = weekly["alarm"].to_numpy(dtype=bool)
        ax.plot(
            x[hit], z[hit], "o", color=_COLOURS["excess_pos"], ms=3, zorder=4, label="CUSUM alarm"
        )
        for h in (2.0, 4.0):
            ax.axhline(h, color="#333333", lw=0.7, ls="--", zorder=2)
        ax.axhline(0, color="#333333", lw=0.8, zorder=2)
        ax.set_ylim(min(float(np.nanmin(z, initial=0.0)) * 1.1, -2.0), top)
        ax.set_ylabel("z-score")
        ax.set_title(title, loc="left", fontsize=10, y=1.0)
        ax.legend(loc="upper left", fontsize=8, ncols=2, frameon=False)
        return _svg(fig)


def chart_ratio(rows: pd.DataFrame, title: str, level: float) -> str:
    """Observed/expected ratio with its interval by group, since the reference period and in the
    latest month (a forest plot)."""
    groups = rows[["breakdown", "level"]].drop_duplicates().reset_index(drop=True)
    labels = [
        "All" if b == "all" else f"{STRATUM_LABELS.get(b, b)}: {lv}"
        for b, lv in zip(groups["breakdown"], groups["level"], strict=True)
    ]
    n = len(groups)
    left = min(3.5, 0.4 + 0.065 * max((len(s) for s in labels), default=3))
    with _rc():
        fig, (ax,) = _figure(
            height=max(2.0, 0.34 * n + 1.5), left=left, top=0.75, kind="ratio", unlabelled="y"
        )
        y = np.arange(n, dtype=float)
        for offset, period, colour in (
            (-0.15, "since_reference", _COLOURS["since"]),
            (0.15, "latest_month", _COLOURS["latest"]),
        ):
            part = rows[rows["period"] == period].merge(
                groups, on=["breakdown", "level"], how="right"
            )
            ratio = part["ratio"].to_numpy(dtype=float)
            lo = part["ratio_lower"].to_numpy(dtype=float)
            hi = part["ratio_upper"].to_numpy(dtype=float)
            finite_hi = np.where(np.isfinite(hi), hi, np.nan)
            ax.hlines(y + offset, lo, finite_hi, color=colour, lw=1.6)
            ax.plot(ratio, y + offset, "o", color=colour, ms=4, label=PERIOD_LABELS[period].lower())
        ax.axvline(1.0, color="#333333", lw=0.8)
        ax.set_yticks(y, labels)
        ax.yaxis.set_inverted(True)  # (not invert_yaxis(): a reused axes is inverted already)
        ax.set_xlabel(f"observed / expected deaths ({level:.0%} interval)")
        fig.suptitle(
            title,
            x=0.1 / fig.get_figwidth(),
            y=1 - 0.05 / fig.get_figheight(),
            ha="left",
            va="top",
            fontsize=10,
        )
        ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), fontsize=8, ncols=2, frameon=False)
        ax.grid(axis="y", visible=False)
        return _svg(fig)


# --------------------------------------------------------------------------------------------------
# pages


@dataclass
class ReleaseFigures:
    """Every figure of a release, ready to render and write (made by
    :func:`~excessmort.report.stage.release_figures`; kept here, with the rendering, so that a
    render worker takes it in without importing the engine that fitted it).

    Attributes
    ----------
    month : str
        The month covered, ``YYYY-MM``.
    period_start : Timestamp
        The day after the reference period ends (the start of the period reported).
    month_start, cover_end : Timestamp
        First day of the covered month and its last Friday.
    breakdowns : list of str
        The strata other than region.
    regions : dict
        Region code -> its figures (:data:`~excessmort.report.stage.FIGURE_COLUMNS`).
    england : DataFrame
        England's figures (the sum of the nine regions).
    model : dict
        Per-series convergence, dispersion and gaps (written as ``model.json``).
    """

    month: str
    period_start: pd.Timestamp
    month_start: pd.Timestamp
    cover_end: pd.Timestamp
    breakdowns: list[str]
    regions: dict[str, pd.DataFrame]
    england: pd.DataFrame
    model: dict[str, Any]
    reference: tuple[pd.Timestamp, pd.Timestamp] | None
    level: float
    baseline: str
    last_week: pd.Timestamp
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ReleaseContext:
    """What every page of a release needs besides its region's figures."""

    figures: ReleaseFigures
    config: StageSettings
    month: str
    month_label: str
    slot: datetime
    next_slot: datetime
    generated_at: datetime


@lru_cache(maxsize=1)
def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("excessmort.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        count=fmt_count,
        signed=fmt_signed,
        ratio=fmt_ratio,
        pct=fmt_pct,
        date=fmt_date,
        slot=fmt_slot,
    )
    return env


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return frame.to_dict("records")


def _period_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The cumulative rows of both reported periods, as records in the frame's order (one pass,
    instead of one boolean filter of the frame per group and period)."""
    cum = frame[(frame["table"] == "cumulative") & frame["period"].isin(list(PERIOD_LABELS))]
    return cum.to_dict("records")


def _summary(
    frame: pd.DataFrame, rows: list[dict[str, Any]] | None = None
) -> dict[str, dict[str, Any]]:
    """The first all-deaths row of each reported period."""
    out: dict[str, dict[str, Any]] = {}
    for row in _period_rows(frame) if rows is None else rows:
        if row["breakdown"] == "all":
            out.setdefault(row["period"], row)
    return {period: out[period] for period in ("since_reference", "latest_month") if period in out}


def _by_group(
    frame: pd.DataFrame, rows: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Cumulative rows for both periods, one entry per group (all, then each stratum level)."""
    first: dict[tuple[Any, Any], dict[str, dict[str, Any]]] = {}
    for row in _period_rows(frame) if rows is None else rows:
        first.setdefault((row["breakdown"], row["level"]), {}).setdefault(row["period"], row)
    out = []
    for (breakdown, level), periods in first.items():
        entry: dict[str, Any] = {
            "breakdown": "All" if breakdown == "all" else STRATUM_LABELS.get(breakdown, breakdown),
            "level": "all deaths" if breakdown == "all" else level,
        }
        for period in PERIOD_LABELS:
            entry[period] = periods.get(period)
        out.append(entry)
    return out


def _page_context(ctx: ReleaseContext) -> dict[str, Any]:
    figs = ctx.figures
    cfg = ctx.config
    ref = figs.reference
    return {
        "title": cfg.title,
        "producer": cfg.producer,
        "url": cfg.url,
        "lead": cfg.lead_statistician,
        "month": ctx.month,
        "month_label": ctx.month_label,
        "slot": ctx.slot,
        "next_slot": ctx.next_slot,
        "generated_at": ctx.generated_at,
        "period_start": figs.period_start,
        "first_week": figs.extra.get("first_week", figs.period_start),
        "month_start": figs.month_start,
        "cover_end": figs.cover_end,
        "reference": ref,
        "level_pct": f"{figs.level:.0%}"
        if round(figs.level * 100, 6).is_integer()
        else f"{figs.level:.2%}",
        "baseline": figs.baseline,
        "intervals": figs.extra.get("intervals"),
        "baseline_text": BASELINE_DESCRIPTIONS.get(figs.baseline, f"the {figs.baseline} baseline"),
        "breakdowns": [STRATUM_LABELS.get(b, b) for b in figs.breakdowns],
        "rule": cfg.release_rule.describe(),
    }


def render_region(ctx: ReleaseContext, code: str, folder: Path) -> Path:
    """Write one region's charts and report into ``folder``; returns the report's path."""
    frame = ctx.figures.regions[code]
    name = region_name(code)
    weekly_all = frame[(frame["table"] == "weekly") & (frame["breakdown"] == "all")]
    running = frame[
        (frame["table"] == "cumulative")
        & (frame["breakdown"] == "all")
        & frame["period"].isin(["running", "since_reference"])
    ].sort_values("end")
    ratio_rows = frame[(frame["table"] == "cumulative") & frame["period"].isin(list(PERIOD_LABELS))]
    period_rows = ratio_rows.to_dict("records")
    figs = ctx.figures
    level = figs.level
    charts = {
        "chart-observed.svg": chart_observed(
            weekly_all,
            figs.month_start,
            figs.cover_end,
            f"{name}: deaths registered each week, observed and expected",
            level,
        ),
        "chart-excess.svg": chart_excess(
            weekly_all,
            running,
            figs.month_start,
            figs.cover_end,
            f"{name}: excess deaths each week and cumulative",
            level,
        ),
        "chart-ratio.svg": chart_ratio(
            ratio_rows, f"{name}: observed / expected deaths by group", level
        ),
    }
    alarm = figs.extra.get("alarms", {}).get(code)
    if alarm is not None:
        charts["chart-alarms.svg"] = chart_alarms(
            alarm["weekly"],
            alarm["periods"],
            figs.month_start,
            figs.cover_end,
            f"{name}: weekly z-scores, EuroMOMO bands and CUSUM alarms",
        )
    folder.mkdir(parents=True, exist_ok=True)
    for file, svg in charts.items():
        (folder / file).write_text(svg, encoding="utf-8")
    latest_weeks = frame[
        (frame["table"] == "weekly")
        & (frame["week_ending"] >= figs.month_start)
        & (frame["week_ending"] <= figs.cover_end)
    ]
    html = (
        _environment()
        .get_template("report.html.j2")
        .render(
            **_page_context(ctx),
            region=code,
            region_name=name,
            charts={k.removesuffix(".svg").removeprefix("chart-"): v for k, v in charts.items()},
            chart_files=list(charts),
            summary=_summary(frame, period_rows),
            groups=_by_group(frame, period_rows),
            latest_weeks=_records(latest_weeks),
            alarm_periods=_records(alarm["periods"]) if alarm is not None else None,
            team=ctx.config.regional_teams.get(code),
        )
    )
    path = folder / "report.html"
    path.write_text(html, encoding="utf-8")
    return path


def render_index(ctx: ReleaseContext, root: Path) -> Path:
    """Write the release's ``index.html``: England's headline figures and links to the nine."""
    figs = ctx.figures
    regions = []
    for code in REGIONS:
        if code not in figs.regions:
            continue
        regions.append(
            {
                "code": code,
                "name": region_name(code),
                "slug": region_slug(code),
                "summary": _summary(figs.regions[code]),
            }
        )
    england_rows = _period_rows(figs.england)
    html = (
        _environment()
        .get_template("index.html.j2")
        .render(
            **_page_context(ctx),
            england=_summary(figs.england, england_rows),
            england_groups=_by_group(figs.england, england_rows),
            england_name=region_name(ENGLAND_CODE),
            regions=regions,
        )
    )
    path = root / "index.html"
    path.write_text(html, encoding="utf-8")
    return path


def _render_processes(n_reports: int) -> int:
    """Worker processes for the regional reports: one per usable core (at most one per report),
    forked (Linux); 1 (in process) where fork is not available, on one core, or when
    ``EXCESSMORT_RENDER_PROCESSES`` says so (a number of processes).

    Measured on the 2-core machine (the nine demo reports, 3 alternating runs each): two workers
    took 56-73 s against 87-103 s in process with a load average of 18-23, so the pool pays on a
    busy machine too (each worker gets its share of the cores), not only on an idle one."""
    import multiprocessing
    import os

    setting = os.environ.get("EXCESSMORT_RENDER_PROCESSES", "").strip()
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    wanted = int(setting) if setting.isdigit() else cores
    if "fork" not in multiprocessing.get_all_start_methods():
        return 1
    return max(1, min(wanted, n_reports))


def _ready_worker(turn: Any) -> None:
    """A render worker's start: load what every chart and page needs (matplotlib's figure and SVG
    canvas, its font list, the templates) and make the reusable figures, while the parent process
    is still reading and fitting (about 0.3 s of each worker's time, off the critical path).

    The workers take ``turn`` (a lock) one after the other, so that together they use one core and
    leave the other to the parent: three processes sharing two cores would slow the fit down."""
    with turn:
        from matplotlib import font_manager  # noqa: F401  (builds the font list on import)
        from matplotlib.backends import backend_svg  # noqa: F401
        from matplotlib.figure import Figure  # noqa: F401

        _environment().get_template("report.html.j2")
        with _rc():
            for kind, size in _FIGURE_KINDS.items():
                _figure(kind=kind, **size)


def _started() -> None:
    """The first job of a pool: makes it fork its workers now (they run :func:`_ready_worker`)."""


#: The pool an open :func:`render_workers` holds, per thread: (process id, pool).
_OPEN = threading.local()


@contextmanager
def render_workers(n_reports: int = len(REGIONS)) -> Iterator[Any]:
    """Fork the render workers now and yield their pool (``None``: render in this process).

    Staging opens this before it reads and fits, so the workers load matplotlib and make their
    figures on the other core meanwhile; :func:`render_release` and the readiness gate's page check
    then take jobs from the same pool, so staging forks once, before its own fit could start
    numba's threads. The pool is shut down on leaving, also when staging fails.

    Opened inside an open one (same thread, same process), it yields that pool and leaves it open:
    ``excessmort run`` opens it first, before it imports the engine and makes the data, so the
    workers' start overlaps those too."""
    import os

    held = getattr(_OPEN, "pool", None)
    if held is not None and held[0] == os.getpid():
        yield held[1]
        return
    workers = _render_processes(n_reports)
    if workers < 2:
        yield None
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("fork")
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=_ready_worker,
        initargs=(context.Lock(),),
    )
    _OPEN.pool = (os.getpid(), pool)
    try:
        pool.submit(_started)  # (fork every worker now, not at the first report)
        yield pool
    finally:
        _OPEN.pool = None
        pool.shutdown(wait=True, cancel_futures=True)


def _not_in_workers(*_: Any) -> Any:
    raise RuntimeError("release slots are not available to a render worker")


def _region_context(ctx: ReleaseContext, code: str) -> ReleaseContext:
    """What a worker needs to render region ``code``: the context with that region's figures only,
    and without the settings' slot function (a closure, which does not pickle; pages take their
    slots from the context)."""
    figs = ctx.figures
    extra = dict(figs.extra)
    if "alarms" in extra:
        extra["alarms"] = {code: extra["alarms"][code]} if code in extra["alarms"] else {}
    mine = dataclasses.replace(
        figs,
        regions={code: figs.regions[code]},
        england=figs.england.iloc[:0],
        model={},
        extra=extra,
    )
    return dataclasses.replace(
        ctx, figures=mine, config=dataclasses.replace(ctx.config, slots=_not_in_workers)
    )


def _picklable(job: Any) -> bool:
    """Whether a report's job can be sent to a worker (settings of the caller's own making may
    hold what does not pickle: those reports are drawn in this process)."""
    import pickle

    try:
        pickle.dumps(job)
    except Exception:  # (pickle raises many kinds: PicklingError, TypeError, AttributeError)
        return False
    return True


def _render_job(ctx: ReleaseContext, code: str, folder: str) -> str:
    return str(render_region(ctx, code, Path(folder)))


def render_release(
    ctx: ReleaseContext,
    root: Path,
    meanwhile: Callable[[], None] | None = None,
    pool: Any = None,
) -> list[Path]:
    """Render the nine regional reports (those the figures hold) and the index into ``root``.

    The regional reports are independent (each draws its own charts from its own figures), so
    with two or more cores they are drawn by worker processes, one per core: ``pool`` (from
    :func:`render_workers`, forked early), else a pool forked here. Each report's job carries its
    region's figures only, in process too. The pages are the same bytes either way (``svg.hashsalt`` is fixed).
    ``meanwhile`` (the caller's other work on the release, such as writing its figure files) runs in
    this process while the workers draw, else after the pages.
    """
    codes = [code for code in REGIONS if code in ctx.figures.regions]
    Path(root).mkdir(parents=True, exist_ok=True)
    if pool is None and _render_processes(len(codes)) > 1:
        with render_workers(len(codes)) as own:
            return render_release(ctx, root, meanwhile, own)
    jobs = [(_region_context(ctx, code), code, str(root / region_slug(code))) for code in codes]
    if pool is not None and (not jobs or _picklable(jobs[0][0])):
        futures = [pool.submit(_render_job, *job) for job in jobs]
        try:
            render_index(ctx, root)  # meanwhile, in this process
            if meanwhile is not None:
                meanwhile()
            return [Path(f.result()) for f in futures]
        except BaseException:
            # No report may still be writing into ``root`` once the failure reaches the caller
            # (staging then removes the unfinished folder): the rest are cancelled or awaited.
            from concurrent.futures import wait

            for f in futures:
                f.cancel()
            wait(futures)
            raise
    paths = [Path(_render_job(*job)) for job in jobs]  # (in process: the same jobs)
    render_index(ctx, root)
    if meanwhile is not None:
        meanwhile()
    return paths
