"""Staging a release: the layout of the contract, figures against the fit and closed forms,
atomicity, timings.

One demo release is staged per session (:func:`demo_release`); its figures are compared with the
accessors of an independent fit of the same data (exact plumbing), with closed forms (ratio bounds,
prediction bounds from the z-score and the normal quantile), and with each other (CSV, Parquet).
"""

from __future__ import annotations

import atexit
import functools
import json
import logging
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

import excessmort
from excessmort._fit import fit as fit_frame
from excessmort.datasets import demo_data
from excessmort.exceptions import InputError
from excessmort.regions import ENGLAND_CODE, REGIONS, region_slug
from excessmort.release import stage_release  # the report layer staging with the demo configuration
from excessmort.report.manifest import read_manifest
from excessmort.report.readiness import check_release, read_readiness
from excessmort.report.stage import (
    CHART_NAMES,
    FIGURE_COLUMNS,
    REGION_FILES,
    covered_month,
    last_friday,
)

MONTH = "2021-04"
END = "2021-04-30"


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return demo_data(end=END)


@pytest.fixture(scope="module")
def fitted(frame: pd.DataFrame):
    return fit_frame(frame, reference=("2015-01-01", "2019-12-31"))


@functools.lru_cache(maxsize=1)
def demo_release() -> Path:
    """The demo release covering April 2021, staged once per session from the demo data (read, fit,
    render, write: the whole path) and shared with test_readiness, which breaks copies of it.

    Staging is dominated by matplotlib; one shared staging keeps the report tests quick.
    """
    root = Path(tempfile.mkdtemp(prefix="excessmort-demo-release-"))
    atexit.register(shutil.rmtree, root, True)
    return stage_release(
        demo_data(end=END), month=MONTH, out=root / "out", live_root=root / "nothing-live"
    )


@pytest.fixture(scope="module")
def staged() -> Path:
    return demo_release()


# ------------------------------------------------------------------------------------ months


@pytest.mark.parametrize(
    ("month", "friday"),
    [
        ("2021-04", "2021-04-30"),
        ("2021-05", "2021-05-28"),
        ("2020-12", "2020-12-25"),
        ("2027-02", "2027-02-26"),
    ],
)
def test_last_friday(month: str, friday: str) -> None:
    day = last_friday(month)
    assert day == pd.Timestamp(friday)
    assert day.day_of_week == 4
    assert (day + pd.Timedelta(days=7)).month != day.month


@pytest.mark.parametrize(
    ("last_week", "month"),
    [
        ("2021-04-30", "2021-04"),
        ("2021-05-21", "2021-04"),
        ("2021-05-28", "2021-05"),
        ("2021-01-01", "2020-12"),
        ("2021-06-04", "2021-05"),
    ],
)
def test_covered_month_is_the_latest_complete_month(last_week: str, month: str) -> None:
    assert covered_month(last_week) == month


# ------------------------------------------------------------------------------------ layout


def test_layout_follows_the_contract(staged: Path) -> None:
    # April 2021 is released on the third Thursday of May 2021 at 14:00 BST
    assert staged.name == "2021-05-20"
    for code in REGIONS:
        folder = staged / region_slug(code)
        assert sorted(p.name for p in folder.iterdir()) == sorted(REGION_FILES)
    for name in (
        "manifest.json",
        "readiness.json",
        "index.html",
        "model.json",
        "england-figures.csv",
        "england-figures.parquet",
    ):
        assert (staged / name).is_file(), name
    manifest = read_manifest(staged)
    assert manifest["schema"] == 1
    release = manifest["release"]
    assert set(release) == {
        "month",
        "release_date",
        "slot",
        "title",
        "producer",
        "baseline",
        "generated_at",
    }
    assert release["month"] == MONTH
    assert release["release_date"] == "2021-05-20"
    assert release["slot"] == "2021-05-20T14:00:00+01:00"
    assert release["baseline"] == "quasipoisson"
    listed = {e["path"] for e in manifest["files"]}
    assert {f"north-east/{f}" for f in REGION_FILES} <= listed
    assert "index.html" in listed and "manifest.json" not in listed
    # readable by a web server once published, like every file in it
    assert staged.stat().st_mode & 0o777 == 0o755
    assert (staged / "manifest.json").stat().st_mode & 0o777 == 0o644
    # nothing left behind by the atomic folder
    assert [p.name for p in staged.parent.iterdir()] == ["2021-05-20"]


def test_index_links_the_nine_reports(staged: Path) -> None:
    html = (staged / "index.html").read_text(encoding="utf-8")
    links = re.findall(r'href="([^"]+/report\.html)"', html)
    assert links == [f"{region_slug(c)}/report.html" for c in REGIONS]


def test_staged_demo_release_is_ready(staged: Path) -> None:
    readiness = read_readiness(staged)
    assert readiness.ready, str(readiness)
    assert [c.verdict for c in readiness.checks] == ["pass"] * len(readiness.checks)
    assert read_readiness(staged).to_dict() == json.loads((staged / "readiness.json").read_text())


# ------------------------------------------------------------------------------------ figures


def _read(staged: Path, code: str) -> pd.DataFrame:
    if code == ENGLAND_CODE:
        return pd.read_parquet(staged / "england-figures.parquet")
    return pd.read_parquet(staged / region_slug(code) / "figures.parquet")


def test_weekly_figures_are_the_fits(staged: Path, fitted) -> None:
    period = (pd.Timestamp("2020-01-01"), pd.Timestamp(END))
    cols = [
        "observed",
        "expected",
        "expected_lower",
        "expected_upper",
        "excess",
        "excess_lower",
        "excess_upper",
        "z_score",
        "p_score",
    ]
    for code, view, key in (
        ("E12000007", fitted.by("region"), "all"),
        ("E12000002", fitted.by("region", "age_group"), "age_group"),
        (ENGLAND_CODE, fitted.by("sex"), "sex"),
    ):
        ours = _read(staged, code)
        ours = ours[(ours["table"] == "weekly") & (ours["breakdown"] == key)]
        ref = view.weekly
        ref = ref[(ref["region"].astype(str) == code) & ref["week_ending"].between(*period)]
        assert len(ours) == len(ref) > 60
        np.testing.assert_array_equal(ours["week_ending"].to_numpy(), ref["week_ending"].to_numpy())
        if key != "all":
            assert ours["level"].tolist() == ref[key].astype(str).tolist()
        for c in cols:
            np.testing.assert_allclose(ours[c].to_numpy(), ref[c].to_numpy(), rtol=1e-12, err_msg=c)


def test_cumulative_figures_are_the_fits(staged: Path, fitted) -> None:
    ours = _read(staged, "E12000005")
    cum = ours[(ours["table"] == "cumulative") & (ours["breakdown"] == "all")].set_index("period")
    start = pd.Timestamp("2020-01-01")
    ref_all = fitted.by("region").cumulative(start, END)
    ref = ref_all[ref_all["region"].astype(str) == "E12000005"].iloc[0]
    row = cum.loc["since_reference"]
    for c in ("observed", "expected", "excess", "excess_lower", "excess_upper", "p_score"):
        assert row[c] == pytest.approx(ref[c], rel=1e-12), c
    assert row["n_weeks"] == 70  # weeks ending 3 January 2020 .. 30 April 2021
    month = cum.loc["latest_month"]
    assert (month["start"], month["end"], month["n_weeks"]) == (
        pd.Timestamp("2021-04-02"),
        pd.Timestamp("2021-04-30"),
        5,
    )
    running = ours[ours["period"] == "running"].sort_values("end")
    # one running total per month end before the covered month's end: January 2020 .. March 2021
    assert running["end"].dt.strftime("%Y-%m").tolist() == [
        f"{y}-{m:02d}"
        for y, m in [(2020, m) for m in range(1, 13)] + [(2021, 1), (2021, 2), (2021, 3)]
    ]


def test_ratio_and_prediction_bounds_closed_form(staged: Path) -> None:
    frame = _read(staged, "E12000003")
    y, mu = frame["observed"].to_numpy(), frame["expected"].to_numpy()
    lo, hi = frame["excess_lower"].to_numpy(), frame["excess_upper"].to_numpy()
    # excess interval = observed - prediction bounds, so ratio bounds = y / (y - excess bound)
    np.testing.assert_allclose(frame["ratio"], y / mu, rtol=1e-14)
    np.testing.assert_allclose(frame["ratio_lower"], y / (y - lo), rtol=1e-14)
    np.testing.assert_allclose(frame["ratio_upper"], y / (y - hi), rtol=1e-14)
    assert (frame["ratio_lower"] <= frame["ratio"]).all() and (
        frame["ratio"] <= frame["ratio_upper"]
    ).all()
    # weekly: the prediction interval is mu -+ z sd with sd = (y - mu) / z_score, z = Phi^-1(0.975)
    weekly = frame[frame["table"] == "weekly"]
    z = norm.ppf(0.975)
    sd = weekly["excess"] / weekly["z_score"]
    np.testing.assert_allclose(weekly["prediction_upper"], weekly["expected"] + z * sd, rtol=1e-8)
    np.testing.assert_allclose(weekly["prediction_lower"], weekly["expected"] - z * sd, rtol=1e-8)


def test_csv_and_parquet_hold_the_same_figures(staged: Path) -> None:
    folder = staged / "london"
    pq = pd.read_parquet(folder / "figures.parquet")
    csv = pd.read_csv(folder / "figures.csv", parse_dates=["week_ending", "start", "end"])
    assert list(pq.columns) == list(FIGURE_COLUMNS) == list(csv.columns)
    assert len(pq) == len(csv)
    for c in FIGURE_COLUMNS:
        if pq[c].dtype.kind == "f":
            np.testing.assert_allclose(
                csv[c].to_numpy(float), pq[c].to_numpy(float), rtol=1e-15, err_msg=c
            )
        elif pq[c].dtype.kind == "M":
            np.testing.assert_array_equal(
                csv[c].to_numpy("datetime64[ns]"), pq[c].to_numpy("datetime64[ns]")
            )
        else:
            assert csv[c].astype(str).tolist() == pq[c].astype(str).tolist(), c


def test_model_json_records_every_series(staged: Path) -> None:
    model = json.loads((staged / "model.json").read_text())
    assert len(model["series"]) == 72
    assert model["period"] == {"start": "2020-01-01", "end": END}
    assert all(s["converged"] and s["missing_weeks"] == [] for s in model["series"])
    assert all(s["dispersion"] >= 1.0 for s in model["series"])


def test_report_states_release_contacts_and_method(staged: Path) -> None:
    html = (staged / "london" / "report.html").read_text(encoding="utf-8")
    assert "14:00 BST, Thursday 20 May 2021" in html
    assert "14:00 BST, Thursday 17 June 2021" in html  # the next release
    assert "Alex Example (fictional)" in html and "alex.example@example.org" in html
    assert "+44 20 7946 0000" in html
    assert "1 January 2015 to 31 December 2019" in html  # the reference period
    assert "weeks ending 3 January 2020 to 30 April 2021; latest month April 2021" in html
    assert "observed / upper prediction bound" in html  # the ratio's interval is defined
    for chart in CHART_NAMES:
        assert f'href="{chart}"' in html
    assert html.count("<svg") == 4  # observed, excess, ratio and (issue 19) the alarm chart
    assert "Periods of excess deaths since" in html
    assert "Age group: 85+" in (staged / "london" / "chart-ratio.svg").read_text()


# ------------------------------------------------------------------------------------ behaviour


def test_staging_a_fit_does_not_refit(
    fitted, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from excessmort.report import render

    def refuse(*args, **kwargs):
        raise AssertionError("stage_release refitted a Fit")

    monkeypatch.setattr("excessmort._fit.fit", refuse)
    monkeypatch.setattr("excessmort.io.read", refuse)
    monkeypatch.setattr(render, "render_release", lambda ctx, root, **kw: [])  # no charts needed
    path = stage_release(fitted, out=tmp_path)  # month: the latest complete month of the fit
    assert read_manifest(path)["release"]["month"] == MONTH


def test_a_crash_leaves_no_half_staged_release(
    fitted, staged: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from excessmort.report import render

    out = tmp_path / "out"
    shutil.copytree(staged, out / staged.name)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    calls = []

    def crash(ctx, code, folder):
        calls.append(code)
        if len(calls) == 3:
            raise OSError("disk full (simulated)")
        return original(ctx, code, folder)

    original = render.render_region
    monkeypatch.setattr(render, "render_region", crash)
    with pytest.raises(OSError, match="disk full"):
        stage_release(fitted, month=MONTH, out=out)
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before  # the old release untouched, no temporary folder left
    assert [p.name for p in out.iterdir()] == [staged.name]


def test_timings_are_logged(
    fitted,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    frame: pd.DataFrame,
) -> None:
    from excessmort.report import render

    # rendering replaced by a stub: this test is about the log lines, not the charts
    monkeypatch.setattr(render, "render_release", lambda ctx, root, **kw: [])
    small = frame[frame["region"].astype(str) == "E12000001"]
    logger = logging.getLogger("excessmort")
    logger.addHandler(caplog.handler)  # the CLI may have set propagate=False on this logger
    try:
        with caplog.at_level(logging.INFO, logger="excessmort"):
            stage_release(small, month=MONTH, out=tmp_path)
    finally:
        logger.removeHandler(caplog.handler)
    text = caplog.text
    for stage in ("read", "fit", "intervals", "render", "write"):
        assert re.search(rf"stage {stage} took \d+\.\d\d s", text), stage
    assert re.search(
        r"staged release 2021-05-20 \(2021-04, 0 regional reports\) in \d+\.\d\d s", text
    )


def test_month_before_the_reference_ends_is_refused(
    fitted, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import multiprocessing

    monkeypatch.setenv("EXCESSMORT_RENDER_PROCESSES", "2")  # (the workers fork before the fit)
    with pytest.raises(InputError, match="before the reference period ends"):
        stage_release(fitted, month="2019-06", out=tmp_path)
    assert multiprocessing.active_children() == []  # a refused month leaves no render worker
    with pytest.raises(InputError, match="YYYY-MM"):
        stage_release(fitted, month="April 2021", out=tmp_path)


def test_public_names() -> None:
    import excessmort.release as release
    import excessmort.report as report
    from excessmort.report.stage import stage_release as report_stage

    assert report.stage_release is report_stage
    assert release.stage_release is stage_release
    assert report.check_release is check_release
    assert excessmort.__version__
