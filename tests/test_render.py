"""Rendering: number formats, self-contained SVG charts, escaping of data and configuration text."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from excessmort._fit import fit as fit_frame
from excessmort.datasets import demo_data
from excessmort.release.calendar import slot_for_month
from excessmort.release.config import Contact, default_config
from excessmort.report import render
from excessmort.report.readiness import check_page
from excessmort.report.stage import release_figures

EVIL = '<b onmouseover="x()">Evil & Co\'s "stats"</b>'


@pytest.fixture(scope="module")
def figures():
    frame = demo_data(end="2021-04-30")
    frame = frame[frame["region"].astype(str).isin(["E12000001", "E12000009"])].copy()
    frame["region"] = frame["region"].astype(str)
    frame["age_group"] = frame["age_group"].astype(str).replace({"85+": "85+ $x^2$ <i>"})
    return release_figures(fit_frame(frame), "2021-04")


@pytest.fixture(scope="module")
def pages(figures, tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = dataclasses.replace(
        default_config(),
        producer=EVIL,
        title="Deaths <in> regions",
        lead_statistician=Contact("Ann <Lead>", "ann@example.org", "+44 1 <2>"),
    )
    ctx = render.ReleaseContext(
        figures=figures,
        config=config.stage_settings(),
        month="2021-04",
        month_label="April 2021",
        slot=slot_for_month("2021-05"),
        next_slot=slot_for_month("2021-06"),
        generated_at=datetime(2021, 5, 1, 9, 0, tzinfo=UTC),
    )
    root = tmp_path_factory.mktemp("pages")
    render.render_release(ctx, root)
    return root


@pytest.mark.parametrize(
    ("fn", "value", "text"),
    [
        (render.fmt_count, 12345.4, "12,345"),
        (render.fmt_count, -1234.6, "\u22121,235"),
        (render.fmt_count, np.nan, "\u2013"),
        (render.fmt_signed, 1234.4, "+1,234"),
        (render.fmt_signed, -0.4, "0"),
        (render.fmt_signed, -12.6, "\u221213"),
        (render.fmt_ratio, 1.0349, "1.03"),
        (render.fmt_ratio, np.inf, "\u221e"),
        (render.fmt_ratio, None, "\u2013"),
        (render.fmt_pct, 6.84, "+6.8%"),
        (render.fmt_pct, -2.25, "\u22122.2%"),
        (render.fmt_date, pd.Timestamp("2021-04-02"), "2 April 2021"),
        (render.fmt_date, pd.NaT, "\u2013"),
    ],
)
def test_formats(fn, value, text: str) -> None:
    assert fn(value) == text


def test_slot_format_names_the_zone() -> None:
    assert render.fmt_slot(slot_for_month("2021-05")) == "14:00 BST, Thursday 20 May 2021"
    assert render.fmt_slot(slot_for_month("2021-12")) == "14:00 GMT, Thursday 16 December 2021"


def test_charts_are_self_contained_text_svg_and_deterministic(figures) -> None:
    frame = figures.regions["E12000009"]
    weekly = frame[(frame["table"] == "weekly") & (frame["breakdown"] == "all")]
    args = (weekly, figures.month_start, figures.cover_end, "South West: weekly <deaths>", 0.95)
    svg = render.chart_observed(*args)
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert "<?xml" not in svg and "<!DOCTYPE" not in svg and "<metadata" not in svg
    assert "<script" not in svg.lower()
    hrefs = re.findall(r'(?:href|src)="([^"]*)"', svg)
    assert all(h.startswith("#") for h in hrefs), hrefs  # only internal references
    assert "http://purl.org" not in svg and "https://" not in svg
    # fonttype none: the title is text, escaped by the SVG writer
    assert ">South West: weekly &lt;deaths&gt;</text>" in svg
    assert render.chart_observed(*args) == svg


def _four_charts(figures, code: str) -> list[str]:
    frame = figures.regions[code]
    weekly = frame[(frame["table"] == "weekly") & (frame["breakdown"] == "all")]
    cum = frame[frame["table"] == "cumulative"]
    running = cum[(cum["breakdown"] == "all") & cum["period"].isin(["running", "since_reference"])]
    ratio = cum[cum["period"].isin(["since_reference", "latest_month"])]
    alarm = figures.extra["alarms"][code]
    span = (figures.month_start, figures.cover_end)
    return [
        render.chart_observed(weekly, *span, f"{code} observed", 0.95),
        render.chart_excess(weekly, running.sort_values("end"), *span, f"{code} excess", 0.9),
        render.chart_ratio(ratio, f"{code} ratio", 0.95),
        render.chart_alarms(alarm["weekly"], alarm["periods"], *span, f"{code} alarms"),
    ]


def test_reused_figures_draw_the_same_svg_as_fresh_ones(figures) -> None:
    """Each chart kind's figure is drawn again for the next region (its axes emptied, not made
    anew): every chart is the same SVG text as one drawn on a fresh figure."""
    codes = ["E12000001", "E12000009"]
    fresh = {}
    for code in codes:
        render._FIGURES.figures = {}  # a fresh figure for each chart of this region
        fresh[code] = _four_charts(figures, code)
    for code in codes:  # each drawn on the figures the other region's charts were drawn on
        assert _four_charts(figures, code) == fresh[code], code


def test_ratio_chart_shows_every_group_as_typed(figures) -> None:
    frame = figures.regions["E12000001"]
    rows = frame[
        (frame["table"] == "cumulative") & frame["period"].isin(["since_reference", "latest_month"])
    ]
    svg = render.chart_ratio(rows, "t", 0.95)
    for label in ("All", "Sex: F", "Sex: M", "Age group: 0-64", "Age group: 85+ $x^2$ &lt;i&gt;"):
        assert f">{label}</text>" in svg, label  # mathtext off: dollars kept, markup escaped


def test_data_and_configuration_text_is_escaped(pages: Path) -> None:
    for page in (pages / "index.html", pages / "north-east" / "report.html"):
        html = page.read_text(encoding="utf-8")
        assert EVIL not in html and "<b onmouseover" not in html
        assert (
            "&lt;b onmouseover=&#34;x()&#34;&gt;Evil &amp; Co&#39;s &#34;stats&#34;&lt;/b&gt;"
            in html
        )
        assert "Deaths &lt;in&gt; regions" in html and "Ann &lt;Lead&gt;" in html
        assert "+44 1 &lt;2&gt;" in html
        assert "<i>" not in html
        # only rendered here (no data files beside the pages): every other problem would count
        problems = [p for p in check_page(page, pages) if not p.endswith("not in the release")]
        assert problems == [], page


def test_report_has_the_required_sections(pages: Path) -> None:
    html = (pages / "south-west" / "report.html").read_text(encoding="utf-8")
    for heading in (
        "Main points",
        "Weekly deaths: observed and expected",
        "Excess deaths, weekly and cumulative",
        "Observed / expected deaths by group",
        "The figures",
        "Method",
    ):
        assert f">{heading}</h2>" in html, heading
    assert "Excess deaths in South West: April 2021" in html
    assert "Weeks ending 2 April 2021 to 30 April 2021 (5 weeks)" in html
    assert "Weeks ending 3 January 2020 to 30 April 2021 (70 weeks)" in html
    assert "14:00 BST, Thursday 17 June 2021" in html  # next release
    # the latest month's weekly table: 5 weeks x (all + 2 sexes + 4 age groups)
    table = html.split("Weekly deaths in the latest month")[1].split("</table>")[0]
    assert table.count("<tr><td") == 5 * 7


def test_missing_figures_render_as_dashes(figures, tmp_path: Path) -> None:
    broken = dataclasses.replace(
        figures,
        regions={
            code: frame.assign(
                observed=np.nan,
                excess=np.nan,
                ratio=np.nan,
                ratio_lower=np.nan,
                ratio_upper=np.nan,
                prediction_lower=np.nan,
                prediction_upper=np.nan,
            )
            for code, frame in figures.regions.items()
        },
    )
    ctx = render.ReleaseContext(
        figures=broken,
        config=default_config().stage_settings(),
        month="2021-04",
        month_label="April 2021",
        slot=slot_for_month("2021-05"),
        next_slot=slot_for_month("2021-06"),
        generated_at=datetime(2021, 5, 1, tzinfo=UTC),
    )
    path = render.render_region(ctx, "E12000001", tmp_path / "north-east")
    html = path.read_text(encoding="utf-8")
    assert '<span class="big">\u2013</span> excess deaths' in html
    assert "nan" not in re.sub(r"<svg.*?</svg>", "", html, flags=re.S).lower()


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _context(figures, config=None) -> render.ReleaseContext:
    return render.ReleaseContext(
        figures=figures,
        config=config or default_config().stage_settings(),
        month="2021-04",
        month_label="April 2021",
        slot=slot_for_month("2021-05"),
        next_slot=slot_for_month("2021-06"),
        generated_at=datetime(2021, 5, 1, 9, 0, tzinfo=UTC),
    )


def test_workers_forked_early_draw_the_same_bytes_as_this_process(
    figures, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Staging forks its render workers before it fits (render_workers) and sends each report its
    region's figures: every page and chart is the same file as one drawn in this process, and a
    configuration that does not pickle is drawn in this process instead of failing."""
    ctx = _context(figures)
    monkeypatch.setenv("EXCESSMORT_RENDER_PROCESSES", "1")
    render.render_release(ctx, tmp_path / "here")
    monkeypatch.setenv("EXCESSMORT_RENDER_PROCESSES", "2")
    with render.render_workers() as pool:
        assert pool is not None
        paths = render.render_release(ctx, tmp_path / "pool", pool=pool)
    assert [p.parent.name for p in paths] == ["north-east", "south-west"]
    here = _tree(tmp_path / "here")
    assert len(here) == 11  # two reports with four charts each, and the index
    assert _tree(tmp_path / "pool") == here

    unpicklable = dataclasses.replace(ctx.config, release_rule=_Rule(lambda: None))
    assert not render._picklable(
        render._region_context(_context(figures, unpicklable), "E12000001")
    )
    with render.render_workers() as pool:
        render.render_release(_context(figures, unpicklable), tmp_path / "odd", pool=pool)
    assert _tree(tmp_path / "odd") == here


@dataclasses.dataclass(frozen=True)
class _Rule:
    """A release rule of a caller's own making, holding a closure (which does not pickle)."""

    hook: object

    def describe(self) -> str:
        return default_config().stage_settings().release_rule.describe()


def test_workers_opened_inside_open_ones_are_the_same_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    """``excessmort run`` opens the workers first and staging opens them again: the inner call
    yields the outer pool and leaves it open; a call after the outer one closed forks anew, and a
    process forked from this one (another process id) does not take this one's pool."""
    monkeypatch.setenv("EXCESSMORT_RENDER_PROCESSES", "2")
    with render.render_workers() as outer:
        assert outer is not None
        with render.render_workers() as inner:
            assert inner is outer
        assert outer.submit(int, "7").result() == 7  # still open
        render._OPEN.pool = (-1, outer)  # what a child forked from a process holding it sees
        with render.render_workers() as child:
            assert child is not None and child is not outer
    with render.render_workers() as later:
        assert later is not None and later is not outer
    monkeypatch.setenv("EXCESSMORT_RENDER_PROCESSES", "1")
    with render.render_workers() as none:
        assert none is None


def test_a_report_job_takes_no_engine_into_a_worker(figures, tmp_path: Path) -> None:
    """``excessmort run`` forks its render workers before it imports the fitting engine: a report's
    job (its figures, settings and context) is taken in and drawn by a process that has imported
    only the rendering, without the engine (excessmort._fit), numba or scipy."""
    import pickle
    import subprocess
    import sys

    job = (_context(figures), "E12000001", str(tmp_path / "north-east"))
    (tmp_path / "job.pickle").write_bytes(pickle.dumps(render._region_context(job[0], job[1])))
    script = (
        "import pickle, sys\n"
        "from excessmort.report import render\n"
        f"ctx = pickle.loads(open({str(tmp_path / 'job.pickle')!r}, 'rb').read())\n"
        f"render._render_job(ctx, {job[1]!r}, {job[2]!r})\n"
        "print(sorted(m for m in ('excessmort._fit', 'numba', 'scipy') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
    assert (tmp_path / "north-east" / "report.html").stat().st_size > 0
