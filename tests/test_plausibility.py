"""Plausibility checks of the readiness gate: quiet on real data (pandemic included), and each one
failing on its own when its kind of absurdity is put into a staged release.

The release is the real ONS regional file (2015 to April 2021), staged once per module. Breaks edit
a copy's ``model.json`` (the reference statistics staging writes) or its figures, and write the
manifest again, so that only the check under test has something to find; the end-to-end cases (a
count of 10^4 / 10^9, a feed of zeros, a short reference fitted anyway) stage real broken input.
"""

from __future__ import annotations

import json
import shutil
import warnings
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from excessmort.exceptions import DispersionWarning
from excessmort.release import stage_release
from excessmort.release.config import Plausibility
from excessmort.report.manifest import read_manifest, write_manifest
from excessmort.report.readiness import Readiness, check_release
from excessmort.report.stage import _longest_runs, _write_frame

MONTH = "2021-04"
BEFORE = datetime.fromisoformat("2021-05-20T13:00:00+01:00")
PLAUSIBILITY = [
    "figures_finite",
    "counts_plausible",
    "expected_plausible",
    "feeds_alive",
    "england_and_pscores",
]


@pytest.fixture(scope="module")
def ons(shared) -> pd.DataFrame:
    return pd.read_csv(shared / "data" / "ons" / "ons_weekly_deaths_by_region.csv")


@pytest.fixture(scope="module")
def staged(ons: pd.DataFrame, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ons-release")
    # phi 10-15.5 in five regions is ordinary for counts of this size: no dispersion warning.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = stage_release(ons, month=MONTH, out=root / "out", live_root=root / "no-live")
    assert not [w for w in caught if issubclass(w.category, DispersionWarning)]
    return path


@pytest.fixture
def release(staged: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(staged, tmp_path / staged.name))


def _checks(path: Path, **kw) -> Readiness:
    return check_release(path, live_root=path.parent / "no-live", now=BEFORE, **kw)


def _failed(readiness: Readiness) -> list[str]:
    return [c.name for c in readiness.checks if c.verdict == "fail"]


def _edit_model(root: Path, edit) -> None:
    model = json.loads((root / "model.json").read_text())
    edit(model)
    (root / "model.json").write_text(json.dumps(model))
    write_manifest(root, read_manifest(root)["release"])


def _series(model: dict, region: str) -> dict:
    return next(s for s in model["series"] if s["region"] == region)


# ------------------------------------------------------------------------------------ quiet


def test_real_pandemic_data_stay_ready(staged: Path) -> None:
    readiness = _checks(staged)
    assert readiness.ready, str(readiness)
    for name in PLAUSIBILITY:
        assert readiness[name].verdict == "pass", str(readiness)
    # The pandemic is in the figures: P-scores of more than +100% in April 2020.
    london = pd.read_parquet(staged / "london" / "figures.parquet")
    weekly = london[(london["table"] == "weekly") & (london["breakdown"] == "all")]
    assert weekly["p_score"].max() > 200
    model = json.loads((staged / "model.json").read_text())
    assert model["plausibility"]["thresholds"] == Plausibility().__dict__


@pytest.mark.slow
def test_real_pandemic_data_stay_ready_with_the_pooled_baseline(
    ons: pd.DataFrame, tmp_path: Path
) -> None:
    path = stage_release(
        ons, month=MONTH, baseline="pooled", out=tmp_path, live_root=tmp_path / "no-live"
    )
    readiness = _checks(path)
    assert readiness.ready and all(readiness[n].verdict == "pass" for n in PLAUSIBILITY), str(
        readiness
    )


def test_demo_data_with_strata_stay_ready() -> None:
    from test_stage import demo_release

    readiness = _checks(demo_release())
    assert all(readiness[n].verdict == "pass" for n in PLAUSIBILITY), str(readiness)


# ------------------------------------------------------------------------------------ each check


def test_a_non_finite_figure_fails_figures_finite(release: Path) -> None:
    frame = pd.read_parquet(release / "london" / "figures.parquet")
    row = frame.index[(frame["table"] == "weekly") & (frame["week_ending"] == "2020-04-17")][0]
    frame.loc[row, "ratio_lower"] = np.nan
    frame.loc[row, "z_score"] = np.inf
    _write_frame(frame, release / "london", "figures")
    write_manifest(release, read_manifest(release)["release"])
    readiness = _checks(release)
    assert _failed(readiness) == ["figures_finite"], str(readiness)
    msg = readiness["figures_finite"].message
    assert "London weekly week all 2020-04-17: z_score is inf" in msg
    assert "ratio_lower is nan" in msg


def test_an_infinite_ratio_upper_is_allowed_where_the_prediction_reaches_zero(
    release: Path,
) -> None:
    frame = pd.read_parquet(release / "london" / "figures.parquet")
    row = frame.index[frame["table"] == "weekly"][0]
    frame.loc[row, ["prediction_lower", "ratio_upper"]] = [0.0, np.inf]
    _write_frame(frame, release / "london", "figures")
    write_manifest(release, read_manifest(release)["release"])
    assert _checks(release)["figures_finite"].verdict == "pass"


def test_a_count_far_above_its_history_fails_counts_plausible(release: Path) -> None:
    def edit(model: dict) -> None:
        _series(model, "E12000001")["history"]["max"] = {"week": "2019-10-18", "value": 1e9}

    _edit_model(release, edit)
    readiness = _checks(release)
    assert _failed(readiness) == ["counts_plausible"], str(readiness)
    msg = readiness["counts_plausible"].message
    assert "North East: 1e+09 deaths in week ending 2019-10-18" in msg
    assert "times its reference median 526" in msg


def test_a_count_far_below_its_history_fails_counts_plausible(release: Path) -> None:
    def edit(model: dict) -> None:
        _series(model, "E12000007")["history"]["min"] = {"week": "2020-08-07", "value": 40.0}

    _edit_model(release, edit)
    readiness = _checks(release)
    assert _failed(readiness) == ["counts_plausible"], str(readiness)
    assert "London: 40 deaths in week ending 2020-08-07" in readiness["counts_plausible"].message


def test_more_deaths_than_a_population_allows_fails_counts_plausible(release: Path) -> None:
    def edit(model: dict) -> None:
        _series(model, "E12000009")["history"]["rate_max"] = {"week": "2020-04-10", "value": 0.2}

    _edit_model(release, edit)
    readiness = _checks(release)
    assert _failed(readiness) == ["counts_plausible"], str(readiness)
    assert "South West: 20% of its population died in the week ending 2020-04-10" in (
        readiness["counts_plausible"].message
    )


def test_expected_far_from_the_reference_level_fails_expected_plausible(release: Path) -> None:
    def edit(model: dict) -> None:
        h = _series(model, "E12000004")["history"]
        h["expected_max"] = {"week": "2021-01-08", "value": 5.0 * h["median"]}

    _edit_model(release, edit)
    readiness = _checks(release)
    assert _failed(readiness) == ["expected_plausible"], str(readiness)
    msg = readiness["expected_plausible"].message
    assert (
        "East Midlands: expected" in msg
        and "week ending 2021-01-08, 5 times its reference median" in msg
    )


def test_a_feed_of_zeros_fails_feeds_alive(release: Path) -> None:
    def edit(model: dict) -> None:
        _series(model, "E12000001")["history"]["zero_run"] = {"weeks": 3, "from": "2021-04-16"}

    _edit_model(release, edit)
    readiness = _checks(release)
    assert _failed(readiness) == ["feeds_alive"], str(readiness)
    assert "North East: 0 deaths for 3 weeks in a row from week ending 2021-04-16" in (
        readiness["feeds_alive"].message
    )


def test_a_flat_feed_fails_feeds_alive(release: Path) -> None:
    def edit(model: dict) -> None:
        _series(model, "E12000002")["history"]["flat_run"] = {
            "weeks": 8,
            "from": "2021-03-05",
            "value": 1400.0,
        }

    _edit_model(release, edit)
    readiness = _checks(release)
    assert _failed(readiness) == ["feeds_alive"], str(readiness)
    assert "North West: the same count 1,400 for 8 weeks in a row" in (
        readiness["feeds_alive"].message
    )


def test_dispersion_gate_uses_the_fits_rule(staged: Path, tmp_path: Path) -> None:
    # Quiet on the real regions (phi 10-15.5 is ordinary for 500-1,500 deaths a week), by the
    # same function as the fit's DispersionWarning (excessmort._dispersion.judge_dispersion).
    # (The check alone: the whole gate on this release is test_real_pandemic_data_stay_ready.)
    from excessmort._dispersion import judge_dispersion
    from excessmort.report.readiness import StagedFiles, check_models

    check = check_models(StagedFiles(staged))
    assert check.verdict == "pass", check.message
    model = json.loads((staged / "model.json").read_text())
    phi = np.array([s["dispersion_raw"] for s in model["series"]])
    assert phi.max() > 10  # a fixed [0.2, 10] range would have warned
    sizes = [s["mean_count"] for s in model["series"]]
    assert model["dispersion_check"] == "auto"
    assert not judge_dispersion(phi, sizes).odd.any()
    assert judge_dispersion(phi, sizes, (0.2, 10)).odd.any()

    # An absurd phi for London's size (60 against an ordinary 2 (1 + 0.01 x ~1,000)) warns.
    _series(model, "E12000007")["dispersion_raw"] = 60.0
    release = tmp_path / "release"
    release.mkdir()
    (release / "model.json").write_text(json.dumps(model))
    check = check_models(StagedFiles(release))
    assert check.verdict == "warn", check.message
    assert "London (phi=60, ordinary up to 2" in check.message
    assert "size makes ordinary" in check.message


def test_dispersion_above_the_hard_bound_fails_models_converged(release: Path) -> None:
    def edit(model: dict) -> None:
        _series(model, "E12000008")["dispersion_raw"] = 3.5e202

    _edit_model(release, edit)
    readiness = _checks(release)
    assert _failed(readiness) == ["models_converged"], str(readiness)
    assert "South East (phi=3.5e+202)" in readiness["models_converged"].message
    assert "hard bound 100" in readiness["models_converged"].message


def test_an_england_total_outside_its_history_fails_england_and_pscores(staged: Path) -> None:
    # England reached 2.27 times its reference median in April 2020: a bound of 2 catches it.
    tight = replace(Plausibility(), england_max_ratio=2.0)
    readiness = _checks(staged, plausibility=tight)
    assert _failed(readiness) == ["england_and_pscores"], str(readiness)
    msg = readiness["england_and_pscores"].message
    assert "England: 21,157 deaths in week ending 2020-04-17" in msg and "2.3 times" in msg


def test_a_p_score_outside_the_bounds_fails_england_and_pscores(staged: Path) -> None:
    tight = replace(Plausibility(), pscore_max=200.0)  # London reached +251% in April 2020
    readiness = _checks(staged, plausibility=tight)
    assert _failed(readiness) == ["england_and_pscores"], str(readiness)
    assert "London weekly week all 2020-04-17: P-score +251%" in (
        readiness["england_and_pscores"].message
    )


def test_thresholds_recorded_at_staging_are_used_by_default(release: Path) -> None:
    def edit(model: dict) -> None:
        model["plausibility"]["thresholds"]["pscore_max"] = 200.0

    _edit_model(release, edit)
    assert _failed(_checks(release)) == ["england_and_pscores"]


def test_a_release_without_history_statistics_fails_and_says_restage(release: Path) -> None:
    def edit(model: dict) -> None:
        del model["plausibility"]
        for s in model["series"]:
            del s["history"]

    _edit_model(release, edit)
    readiness = _checks(release)
    assert {"counts_plausible", "expected_plausible", "feeds_alive"} <= set(_failed(readiness))
    assert "re-stage the release" in readiness["feeds_alive"].message


# ------------------------------------------------------------------------------------ for real


def _broken(ons: pd.DataFrame, where, value) -> pd.DataFrame:
    out = ons.copy()
    out.loc[where(out), "deaths"] = value
    return out


@pytest.mark.slow
def test_a_count_of_ten_thousand_in_the_reference_is_not_ready(
    ons: pd.DataFrame, tmp_path: Path
) -> None:
    data = _broken(
        ons, lambda d: (d["area_code"] == "E12000001") & (d["week_ending"] == "2019-10-18"), 10_000
    )
    with pytest.warns(UserWarning):
        path = stage_release(data, month=MONTH, out=tmp_path, live_root=tmp_path / "no-live")
    readiness = _checks(path)
    assert not readiness.ready
    assert "counts_plausible" in _failed(readiness) and "models_converged" in _failed(readiness)
    assert "North East: 10,000 deaths in week ending 2019-10-18, 19.0 times its reference " in (
        readiness["counts_plausible"].message
    )


@pytest.mark.slow
def test_a_feed_of_zeros_from_2020_is_not_ready(ons: pd.DataFrame, tmp_path: Path) -> None:
    data = _broken(
        ons, lambda d: (d["area_code"] == "E12000001") & (d["week_ending"] >= "2020-01-01"), 0
    )
    with warnings.catch_warnings():  # the fit may or may not warn; the gate must catch it
        warnings.simplefilter("ignore")
        path = stage_release(data, month=MONTH, out=tmp_path, live_root=tmp_path / "no-live")
    readiness = _checks(path)
    assert "feeds_alive" in _failed(readiness)
    assert "North East: 0 deaths for 70 weeks in a row from week ending 2020-01-03" in (
        readiness["feeds_alive"].message
    )
    assert "P-score -100%" in readiness["england_and_pscores"].message


@pytest.mark.slow
def test_a_short_reference_fitted_anyway_is_not_ready(ons: pd.DataFrame, tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fit overflows: that is the point
        path = stage_release(
            ons,
            month=MONTH,
            reference=("2019-09-01", "2019-12-07"),
            allow_short_history=True,
            out=tmp_path,
            live_root=tmp_path / "no-live",
        )
    readiness = _checks(path)
    assert "expected_plausible" in _failed(readiness), str(readiness)


# ------------------------------------------------------------------------------------ helpers


def test_longest_runs_against_a_loop() -> None:
    rng = np.random.default_rng(4)
    flags = rng.random((40, 30)) < 0.6
    flags[3] = False
    flags[4] = True
    length, start = _longest_runs(flags)
    for s in range(flags.shape[0]):
        best, at, run = 0, -1, 0
        for t in range(flags.shape[1]):
            run = run + 1 if flags[s, t] else 0
            if run > best:
                best, at = run, t - run + 1
        assert (length[s], start[s]) == (best, at), s


def test_check_command_uses_the_configuration_thresholds(staged: Path, tmp_path: Path, capsys):
    from excessmort.cli import main

    live = ["--live-root", str(tmp_path / "no-live"), "--now", BEFORE.isoformat()]
    assert main(["check", str(staged), *live]) == 0  # the thresholds recorded at staging
    config = tmp_path / "tight.toml"
    config.write_text("[plausibility]\npscore_max = 200\n")
    assert main(["check", str(staged), "--config", str(config), *live]) == 1
    captured = capsys.readouterr()
    assert "is NOT READY: england_and_pscores" in captured.err
    assert "P-score +251%" in captured.out
