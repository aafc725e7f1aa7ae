"""Readiness checks: the staged demo release passes every check, and each check fails on a release
broken in exactly its way, with a message naming the cause.

File-level breaks edit a copy of the staged release and, unless the break is to the files' integrity
itself, write the manifest again, so that only the check under test has something to find. Breaks
that need different input (a stale week, a gap, a model that did not converge, a script tag in a
stratum) are staged for real, from one region to keep them quick.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from excessmort._fit import fit as fit_frame
from excessmort.baselines import QuasiPoisson
from excessmort.datasets import demo_data
from excessmort.regions import region_slug
from excessmort.release import stage_release
from excessmort.report.manifest import manifest_digest, read_manifest, write_manifest
from excessmort.report.readiness import (
    FIGURE_CHECKS,
    Check,
    Readiness,
    check_figures,
    check_release,
)
from excessmort.report.stage import _write_frame
from test_stage import demo_release

MONTH = "2021-04"
END = "2021-04-30"
SLOT = datetime.fromisoformat("2021-05-20T14:00:00+01:00")
BEFORE = SLOT - timedelta(hours=1)
AFTER = SLOT + timedelta(minutes=1)
NAMES = [
    "regions_complete",
    "data_coverage",
    "series_complete",
    "models_converged",
    "figures_finite",
    "counts_plausible",
    "expected_plausible",
    "feeds_alive",
    "england_and_pscores",
    "england_sum",
    "weekly_cumulative",
    "manifest_checksums",
    "html_self_contained",
    "embargo",
]


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return demo_data(end=END)


@pytest.fixture(scope="module")
def staged() -> Path:
    return demo_release()  # shared with test_stage: never modified, only copied


@pytest.fixture
def release(staged: Path, tmp_path: Path) -> Path:
    """A private copy of the staged release, to break."""
    return Path(shutil.copytree(staged, tmp_path / staged.name))


@pytest.fixture(scope="module")
def north_east(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame[frame["region"].astype(str) == "E12000001"].copy()
    out["region"] = out["region"].astype(str)
    return out


def _checks(path: Path, **kw) -> Readiness:
    kw.setdefault("live_root", path.parent / "no-live-target")
    kw.setdefault("now", BEFORE)
    return check_release(path, **kw)


def _restamp(root: Path) -> None:
    """Write the manifest again, so that only the break under test is left to find."""
    write_manifest(root, read_manifest(root)["release"])


def _edit_figures(root: Path, where: str, edit) -> None:
    if where == "england":
        folder, stem = root, "england-figures"
    else:
        folder, stem = root / where, "figures"
    frame = pd.read_parquet(folder / f"{stem}.parquet")
    edit(frame)
    _write_frame(frame, folder, stem)


def _only_failure(readiness: Readiness, name: str) -> Check:
    failed = [c.name for c in readiness.checks if c.verdict == "fail"]
    assert failed == [name], str(readiness)
    return readiness[name]


# -------------------------------------------------------------------------------- passing


def test_staged_demo_release_passes_every_check(staged: Path) -> None:
    readiness = _checks(staged)
    assert [c.name for c in readiness.checks] == NAMES
    assert all(c.verdict == "pass" for c in readiness.checks), str(readiness)
    assert readiness.ready
    written = json.loads((staged / "readiness.json").read_text())
    assert written["ready"] is True and [c["name"] for c in written["checks"]] == NAMES
    assert "READY: 14 checks, 0 failed, 0 warnings" in str(readiness)


# -------------------------------------------------------------------------------- breaks


def test_figure_verdicts_given_are_used_and_the_rest_run(release: Path) -> None:
    """Staging checks the figure files while the pages are drawn (check_figures) and hands the
    verdicts to check_release: they are the ones check_release finds itself, taken as given, and
    only for those checks (a verdict given for the manifest is not taken)."""
    early = check_figures(release)
    assert len(early) == len(FIGURE_CHECKS) == 10
    full = _checks(release)
    assert [full[name] for name in early] == list(early.values())
    given = {
        **early,
        "data_coverage": Check("data_coverage", "fail", "checked while drawing"),
        "manifest_checksums": Check("manifest_checksums", "fail", "not taken"),
    }
    check = _only_failure(_checks(release, checked=given), "data_coverage")
    assert check.message == "checked while drawing"


def test_a_deleted_region_fails(release: Path) -> None:
    shutil.rmtree(release / "north-east")
    readiness = _checks(release)
    assert not readiness.ready
    msg = readiness["regions_complete"]
    assert (
        msg.verdict == "fail" and "1 of 9 regions missing: North East (north-east/)" in msg.message
    )
    assert readiness["manifest_checksums"].verdict == "fail"
    assert (
        "north-east/chart-excess.svg: listed in the manifest but missing"
        in readiness["manifest_checksums"].message
    )


def test_a_missing_region_file_fails(release: Path) -> None:
    (release / "london" / "chart-ratio.svg").unlink()
    _restamp(release)
    readiness = _checks(release)
    assert [c.name for c in readiness.failed] == ["regions_complete", "html_self_contained"]
    assert "london/ lacks chart-ratio.svg" in readiness["regions_complete"].message
    assert (
        "links to 'chart-ratio.svg', which is not in the release"
        in readiness["html_self_contained"].message
    )


def test_an_altered_file_fails(release: Path) -> None:
    csv = release / "london" / "figures.csv"
    csv.write_bytes(csv.read_bytes() + b"\n")
    report = release / "south-west" / "report.html"
    text = report.read_text(encoding="utf-8")
    i = text.index("deaths registered against") - 2  # a digit of a figure: same size, other bytes
    digit = text[i]
    assert digit.isdigit()
    report.write_text(text[:i] + str((int(digit) + 1) % 10) + text[i + 1 :], encoding="utf-8")
    check = _only_failure(_checks(release), "manifest_checksums")
    assert "2 files do not match manifest.json" in check.message
    assert "london/figures.csv: size" in check.message
    assert "south-west/report.html: checksum differs from the manifest" in check.message


def test_an_unlisted_file_fails(release: Path) -> None:
    (release / "london" / "notes.txt").write_text("draft")
    check = _only_failure(_checks(release), "manifest_checksums")
    assert "london/notes.txt: inside a region folder but not in the manifest" in check.message


def test_a_stale_week_fails(north_east: pd.DataFrame, tmp_path: Path) -> None:
    stale = north_east[north_east["week_ending"] <= "2021-04-23"]
    path = stage_release(stale, month=MONTH, out=tmp_path)
    check = _checks(path)["data_coverage"]
    assert check.verdict == "fail"
    assert "whose last registration week ends on Friday 2021-04-30" in check.message
    assert "North East ends at week ending 2021-04-23" in check.message


def test_a_gapped_series_fails(north_east: pd.DataFrame, tmp_path: Path) -> None:
    gapped = north_east.copy()
    hole = (
        (gapped["week_ending"] == "2021-03-05")
        & (gapped["sex"].astype(str) == "M")
        & (gapped["age_group"].astype(str) == "85+")
    )
    gapped.loc[hole, "deaths"] = np.nan
    path = stage_release(gapped, month=MONTH, out=tmp_path)
    check = _checks(path)["series_complete"]
    assert check.verdict == "fail"
    assert "North East, sex=M, age_group=85+: 1 missing weeks (2021-03-05)" in check.message
    assert "North East: no observed deaths for week ending 2021-03-05" in check.message


def test_a_non_converged_model_fails(north_east: pd.DataFrame, tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="did not converge"):
        fitted = fit_frame(north_east, baseline=QuasiPoisson(max_iter=1))
    path = stage_release(fitted, month=MONTH, out=tmp_path)
    check = _checks(path)["models_converged"]
    assert check.verdict == "fail"
    assert "8 of 8 series did not converge (quasipoisson)" in check.message
    assert "North East, sex=F, age_group=0-64" in check.message


def test_a_non_converged_series_in_model_json_fails(release: Path) -> None:
    model = json.loads((release / "model.json").read_text())
    series = next(
        s
        for s in model["series"]
        if (s["region"], s["sex"], s["age_group"]) == ("E12000007", "M", "85+")
    )
    series["converged"] = False
    (release / "model.json").write_text(json.dumps(model))
    _restamp(release)
    check = _only_failure(_checks(release), "models_converged")
    assert "1 of 72 series did not converge" in check.message
    assert "London, sex=M, age_group=85+" in check.message


def test_implausible_dispersion_warns_but_does_not_block(release: Path) -> None:
    model = json.loads((release / "model.json").read_text())
    model["series"][3]["dispersion_raw"] = 25.0
    (release / "model.json").write_text(json.dumps(model))
    _restamp(release)
    readiness = _checks(release)
    assert readiness.ready
    check = readiness["models_converged"]
    assert check.verdict == "warn"
    assert "(phi=25, ordinary up to 10)" in check.message
    assert "size makes ordinary" in check.message


def test_england_not_the_sum_of_the_regions_fails(release: Path) -> None:
    week = pd.Timestamp("2020-04-17")
    delta = 37.0

    def shift(frame: pd.DataFrame) -> None:
        # one weekly row of London and every cumulative row covering it move together, so the
        # region stays self-consistent and only England's sum breaks
        weekly = (
            (frame["table"] == "weekly")
            & (frame["week_ending"] == week)
            & (frame["breakdown"] == "all")
        )
        cum = (
            (frame["table"] == "cumulative")
            & (frame["breakdown"] == "all")
            & (frame["start"] <= week)
            & (frame["end"] >= week)
        )
        for col in ("observed", "excess"):
            frame.loc[weekly | cum, col] += delta

    _edit_figures(release, "london", shift)
    _restamp(release)
    check = _only_failure(_checks(release), "england_sum")
    assert "England does not equal the sum of the nine regions" in check.message
    assert "observed: " in check.message and "weekly week all 2020-04-17" in check.message


def test_weekly_and_cumulative_disagreeing_fails(release: Path) -> None:
    def bump(frame: pd.DataFrame) -> None:
        row = (
            (frame["table"] == "cumulative")
            & (frame["period"] == "latest_month")
            & (frame["breakdown"] == "sex")
            & (frame["level"] == "F")
        )
        assert row.sum() == 1
        frame.loc[row, "excess"] += 100.0

    _edit_figures(release, "west-midlands", bump)
    _edit_figures(release, "england", bump)  # England stays the sum of the regions
    _restamp(release)
    check = _only_failure(_checks(release), "weekly_cumulative")
    assert (
        "West Midlands cumulative latest_month sex=F 2021-04-02..2021-04-30: weekly excess "
        "sums to" in check.message
    )
    assert "England cumulative latest_month sex=F" in check.message


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        (
            '<a href="https://example.org/more">more</a>',
            "links to 'https://example.org/more' (https: is outside the release)",
        ),
        ('<img src="http://example.org/pixel.png" alt="">', "(http: is outside the release)"),
        ('<link rel="stylesheet" href="//cdn.example.org/x.css">', "(another host)"),
        ('<a href="../../../etc/passwd">x</a>', "outside the release folder"),
        ('<a href="/etc/passwd">x</a>', "outside the release folder"),
        ('<a href="london/missing.csv">x</a>', "which is not in the release"),
        (
            '<p style="background: url(https://example.org/t.gif)">x</p>',
            "https://example.org/t.gif",
        ),
        ("<script>alert(1)</script>", "<script> element (reports must not run code)"),
        ('<p onclick="steal()">x</p>', "onclick= handler on <p>"),
        ('<a href="javascript:alert(1)">x</a>', "(javascript: is outside the release)"),
        ("<table><tr><td>x</td></tr>", "<table> opened on line"),
    ],
)
def test_html_that_leaves_the_release_or_runs_code_fails(
    release: Path, snippet: str, expected: str
) -> None:
    index = release / "index.html"
    html = index.read_text(encoding="utf-8")
    index.write_text(html.replace("<main>", "<main>\n" + snippet, 1), encoding="utf-8")
    _restamp(release)
    check = _only_failure(_checks(release), "html_self_contained")
    assert "index.html: " in check.message and expected in check.message


def test_safe_links_pass(release: Path) -> None:
    index = release / "index.html"
    html = index.read_text(encoding="utf-8")
    extra = (
        '<a href="#summary">top</a> <a href="mailto:a@example.org">mail</a> '
        '<a href="london/figures.csv#x">csv</a> <a href="./london/report.html">l</a>'
    )
    index.write_text(html.replace("<main>", "<main>\n" + extra, 1), encoding="utf-8")
    _restamp(release)
    assert _checks(release).ready


def test_a_script_tag_in_a_stratum_is_escaped(north_east: pd.DataFrame, tmp_path: Path) -> None:
    evil = '<script>alert("x")</script>'
    data = north_east.copy()
    data["sex"] = data["sex"].astype(str).replace({"F": evil})
    path = stage_release(data, month=MONTH, out=tmp_path)
    report = (path / "north-east" / "report.html").read_text(encoding="utf-8")
    assert "<script" not in report.lower()
    assert "Sex: &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in report  # table text, escaped
    svg = (path / "north-east" / "chart-ratio.svg").read_text(encoding="utf-8")
    assert "<script" not in svg and "&lt;script&gt;alert" in svg
    figures = pd.read_parquet(path / "north-east" / "figures.parquet")
    assert evil in set(figures["level"])  # the data keep the name as given
    assert _checks(path)["html_self_contained"].verdict == "pass"
    # the same name put in raw is caught
    page = path / "north-east" / "report.html"
    page.write_text(
        report.replace("&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;", evil, 1), encoding="utf-8"
    )
    _restamp(path)
    check = _checks(path)["html_self_contained"]
    assert check.verdict == "fail" and "north-east/report.html: line" in check.message
    assert "<script> element" in check.message


# -------------------------------------------------------------------------------- embargo


def _publish_copy(release: Path, live: Path) -> Path:
    """Lay the release out as the directory target does: releases/<id> and current -> it."""
    manifest = read_manifest(release)
    release_id = f"{manifest['release']['release_date']}-{manifest_digest(manifest)[:12]}"
    target = live / "releases" / release_id
    shutil.copytree(release, target)
    os.symlink(f"releases/{release_id}", live / "current")
    return target


def test_embargo_broken_before_the_slot_fails(release: Path, tmp_path: Path) -> None:
    live = tmp_path / "live"
    target = _publish_copy(release, live)
    check = _only_failure(_checks(release, live_root=live, now=BEFORE), "embargo")
    assert "embargo broken" in check.message and "2021-05-20T14:00:00+01:00" in check.message
    assert str(target) in check.message and "Head of Profession" in check.message
    # after the slot the same layout is the published release
    assert _checks(release, live_root=live, now=AFTER)["embargo"].verdict == "pass"


def test_embargo_holds_with_an_empty_live_target(release: Path, tmp_path: Path) -> None:
    live = tmp_path / "live"
    (live / "releases" / "2021-04-15-0123456789ab").mkdir(parents=True)  # last month's release
    check = _checks(release, live_root=live, now=BEFORE)["embargo"]
    assert check.verdict == "pass" and "embargoed until 2021-05-20T14:00:00+01:00" in check.message


def test_embargo_unchecked_without_a_live_target_warns(staged: Path) -> None:
    readiness = check_release(staged, live_root=None)
    assert readiness["embargo"].verdict == "warn" and readiness.ready


# -------------------------------------------------------------------------------- API


def test_check_and_readiness_objects() -> None:
    with pytest.raises(ValueError, match="pass, warn or fail"):
        Check("x", "maybe", "?")  # type: ignore[arg-type]
    r = Readiness([Check("a", "pass", "ok"), Check("b", "warn", "look")])
    assert r.ready and r.failed == []
    r.checks.append(Check("c", "fail", "broken"))
    assert not r.ready and [c.name for c in r.failed] == ["c"]
    assert r.to_dict()["checks"][2] == {"name": "c", "verdict": "fail", "message": "broken"}


def test_a_missing_folder_is_not_ready(tmp_path: Path) -> None:
    readiness = check_release(tmp_path / "nope")
    assert not readiness.ready and "is not a staged release folder" in readiness.checks[0].message


def test_a_folder_without_a_manifest_fails_every_check_that_needs_it(tmp_path: Path) -> None:
    readiness = check_release(tmp_path, live_root=tmp_path / "live")
    assert not readiness.ready
    assert (
        "manifest.json is missing: stage the release first" in readiness["regions_complete"].message
    )


def test_region_slugs_used_for_folders() -> None:
    assert region_slug("E12000003") == "yorkshire-and-the-humber"


def test_weekly_sums_in_one_pass_judge_as_the_group_by_group_rule(staged: Path) -> None:
    """The weekly_cumulative check sums every cumulative row's weeks in one pass and walks the
    groups only to word a failure: on each staged figure file and on 150 damaged copies (a weekly
    count changed, a cumulative figure changed, a weekly figure missing, a week count off, a
    weekly row dropped) the one pass passes exactly what the group-by-group rule passes."""
    from excessmort.report import readiness

    frames = [pd.read_parquet(p) for p in sorted(staged.rglob("*figures.parquet"))]
    assert len(frames) == 10
    for frame in frames:
        assert readiness._weekly_sums_agree(frame)
        assert readiness._weekly_vs_cumulative(frame, "x") == []
    rng = np.random.default_rng(3)
    frame = frames[4]
    table = frame["table"].to_numpy()
    weekly, cumulative = np.flatnonzero(table == "weekly"), np.flatnonzero(table == "cumulative")
    caught = 0
    for trial in range(150):
        damaged = frame.copy()
        kind = trial % 5
        if kind == 0:
            damaged.loc[rng.choice(weekly), "observed"] += 1.0
        elif kind == 1:
            damaged.loc[rng.choice(cumulative), "excess"] *= 1.001
        elif kind == 2:
            damaged.loc[rng.choice(weekly), "expected"] = np.nan
        elif kind == 3:
            damaged.loc[rng.choice(cumulative), "n_weeks"] += 1
        else:
            damaged = damaged.drop(index=rng.choice(weekly))
        agree = readiness._weekly_sums_agree(damaged)
        slow = readiness._weekly_vs_cumulative_by_group(damaged, "x")
        assert agree == (slow == []), (trial, kind, slow)
        caught += not agree
    assert caught > 100  # most damage reaches some cumulative figure


def test_pages_checked_in_the_render_pool_page_by_page_judge_as_in_process(
    release: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Staging's render workers check the pages one job per page: the verdict and its message
    (problems in page order) are those of the check in this process, passing and failing."""
    from excessmort.report import render

    monkeypatch.setenv("EXCESSMORT_RENDER_PROCESSES", "2")
    with render.render_workers() as pool:
        assert pool is not None
        assert (
            _checks(release, pool=pool)["html_self_contained"]
            == (_checks(release)["html_self_contained"])
        )
        for page, snippet in [
            ("london/report.html", "<script>x()</script>"),
            ("index.html", '<a href="https://example.org">out</a>'),
            ("north-east/report.html", '<p onclick="x()">x</p>'),
        ]:
            path = release / page
            html = path.read_text(encoding="utf-8")
            path.write_text(html.replace("<main>", "<main>\n" + snippet, 1), encoding="utf-8")
        _restamp(release)
        pooled = _checks(release, pool=pool)["html_self_contained"]
        monkeypatch.setenv("EXCESSMORT_RENDER_PROCESSES", "1")
        here = _checks(release)["html_self_contained"]
    assert pooled == here and pooled.verdict == "fail"
    assert here.message.index("index.html") < here.message.index("london/report.html")
    assert here.message.index("london/report.html") < here.message.index("north-east/report.html")


def test_a_page_is_checked_without_the_engine(staged: Path) -> None:
    """Staging's render workers, forked before the engine is imported, check the pages: one page's
    check (report.pages) imports neither the engine (excessmort._fit) nor scipy."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from excessmort.report.pages import check_page\n"
        f"root = Path({str(staged)!r})\n"
        "print(check_page(root / 'index.html', root), "
        "sorted(m for m in ('excessmort._fit', 'scipy', 'numba') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "[] []", done.stdout + done.stderr
