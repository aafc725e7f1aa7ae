"""``excessmort run`` and ``excessmort check``: exit codes, default month, output, JSON."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from excessmort.cli import main
from excessmort.datasets import demo_data
from excessmort.report.manifest import manifest_digest, read_manifest


@pytest.fixture(autouse=True)
def _restore_logging():
    """The CLI configures the ``excessmort`` logger; leave it as it was for other tests."""
    logger = logging.getLogger("excessmort")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]


@pytest.fixture(scope="module")
def csv_input(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # data to Friday 21 May 2021: May is incomplete, so the latest complete month is April
    path = tmp_path_factory.mktemp("input") / "deaths.csv"
    demo_data(end="2021-05-21").to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def run_result(csv_input: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("out")
    live = tmp_path_factory.mktemp("live") / "root"
    import contextlib
    import io

    stdout, stderr = io.StringIO(), io.StringIO()
    logger = logging.getLogger("excessmort")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = main(
                ["run", "--input", str(csv_input), "--out", str(out), "--live-root", str(live)]
            )
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]
    return code, stdout.getvalue(), stderr.getvalue(), out, live


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--help"]) == 0
    text = capsys.readouterr().out
    for option in (
        "--input",
        "--month",
        "--baseline",
        "--out",
        "--config",
        "--reference",
        "--level",
    ):
        assert option in text
    assert main(["check", "--help"]) == 0
    assert "--json" in capsys.readouterr().out


def test_run_stages_the_latest_complete_month_and_is_ready(run_result) -> None:
    code, stdout, stderr, out, _ = run_result
    assert code == 0, stdout + stderr
    release = out / "2021-05-20"
    assert [p.name for p in out.iterdir()] == ["2021-05-20"]
    assert read_manifest(release)["release"]["month"] == "2021-04"
    assert "READY: 14 checks, 0 failed, 0 warnings" in stdout
    assert "compiled/loaded kernels in" in stderr
    assert "stage render took" in stderr and "staged release 2021-05-20" in stderr
    # the data were cut at the covered month's last Friday
    figures = pd.read_parquet(release / "london" / "figures.parquet")
    assert figures["week_ending"].max() == pd.Timestamp("2021-04-30")
    assert json.loads((release / "readiness.json").read_text())["ready"] is True


def test_check_json_passes(run_result, capsys: pytest.CaptureFixture[str]) -> None:
    _, _, _, out, live = run_result
    assert main(["check", str(out / "2021-05-20"), "--json", "--live-root", str(live)]) == 0
    data = json.loads(capsys.readouterr().out)
    # the fourteen readiness checks (five of plausibility) and the release-contents check of
    # `check` (issue 16)
    assert data["ready"] is True and len(data["checks"]) == 15
    assert {c["verdict"] for c in data["checks"]} == {"pass"}


def test_check_fails_on_a_broken_release(
    run_result, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, _, _, out, live = run_result
    broken = Path(shutil.copytree(out / "2021-05-20", tmp_path / "2021-05-20"))
    shutil.rmtree(broken / "london")
    assert main(["check", str(broken), "--live-root", str(live)]) == 1
    captured = capsys.readouterr()
    assert "FAIL  regions_complete     1 of 9 regions missing: London (london/)" in captured.out
    assert "NOT READY" in captured.err and "regions_complete" in captured.err


def test_check_catches_a_broken_embargo(
    run_result, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, _, _, out, _ = run_result
    release = out / "2021-05-20"
    manifest = read_manifest(release)
    live = tmp_path / "live"
    (live / "releases").mkdir(parents=True)
    os.symlink(release, live / "releases" / f"2021-05-20-{manifest_digest(manifest)[:12]}")
    argv = ["check", str(release), "--json", "--live-root", str(live)]
    assert main([*argv, "--now", "2021-05-20T13:59:00+01:00"]) == 1
    embargo = json.loads(capsys.readouterr().out)["checks"][-1]
    assert embargo["name"] == "embargo" and embargo["verdict"] == "fail"
    assert main([*argv, "--now", "2021-05-20T14:00:00+01:00"]) == 0


def test_run_exits_1_when_not_ready(
    csv_input: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one = pd.read_csv(csv_input)
    one = one[one["region"] == "E12000001"]
    path = tmp_path / "one-region.csv"
    one.to_csv(path, index=False)
    code = main(
        [
            "-q",
            "run",
            "--input",
            str(path),
            "--month",
            "2021-04",
            "--out",
            str(tmp_path / "out"),
            "--live-root",
            str(tmp_path / "live"),
        ]
    )
    captured = capsys.readouterr()
    assert code == 1
    assert "FAIL  regions_complete     8 of 9 regions missing" in captured.out
    assert "release 2021-05-20 is NOT READY: regions_complete; england_sum" in captured.err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--month", "2021-13"], "'2021-13' is not a month: the month must be 1 to 12"),
        (["run", "--month", "April"], "month must be a month such as '2021-04' (YYYY-MM)"),
        (["run", "--month", "2021Q2"], "got '2021Q2', a quarter"),
        (["release", "--month", "2021", "--input", "x.csv"], "got '2021', a year"),
        (["publish", "x", "--to", "y", "--slot", "2021-04-15"], "got '2021-04-15', a date"),
        (["calendar", "2027Q1"], "got '2027Q1', a quarter"),
        (["backtest", "--input", "x.csv", "--years", "2019-04"], "--years must be a range"),
        (["check", "no/such/release"], "no/such/release is not a folder"),
        (["check", ".", "--now", "soon"], "--now must be an ISO date-time"),
    ],
)
def test_usage_errors_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("month", "message"),
    [
        (
            "2009-11",
            "month 2009-11 lies outside the data, which run from 2010-01-01 to 2021-05-21 (the "
            "period holds the weeks ending 2009-11-06 to 2009-11-27)",
        ),
        (
            "2021-08",
            "month 2021-08 lies outside the data, which run from 2010-01-01 to 2021-05-21 (the "
            "period holds the weeks ending 2021-08-06 to 2021-08-27)",
        ),
    ],
)
def test_month_past_the_data_names_both_ranges_before_fitting(
    csv_input: Path, tmp_path: Path, month: str, message: str, capsys, monkeypatch
) -> None:
    # issue 17: --month goes through the one period parser: a month holding no week of the data
    # is a usage error naming the month's weeks and the data's range, and nothing is fitted for it
    # (a month the data reach in part is staged, and its readiness check data_coverage fails).
    import excessmort._fit as fit_module

    def no_fit(*args, **kwargs):
        raise AssertionError("fitted before the month was checked")

    monkeypatch.setattr(fit_module, "fit", no_fit)
    monkeypatch.setattr("excessmort.warmup", lambda **kw: 0.0)
    argv = ["run", "--input", str(csv_input), "--month", month, "--out", str(tmp_path)]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_reference_takes_the_periods_forms(capsys, monkeypatch, tmp_path: Path) -> None:
    # --reference is read by the same parser as fit(reference=...): years and months stand for
    # their days, and what is not a period is refused with the parser's message.
    from excessmort.weeks import reference_bounds

    assert reference_bounds("2015", "2019") == reference_bounds("2015-01", "2019-12")
    assert reference_bounds("2015Q1", "2019Q4") == (
        pd.Timestamp("2015-01-01"),
        pd.Timestamp("2019-12-31"),
    )
    monkeypatch.setattr("excessmort.warmup", lambda **kw: 0.0)
    small = demo_data(end="2021-05-21")
    small = small[small["region"] == "E12000001"]
    path = tmp_path / "one.csv"
    small.to_csv(path, index=False)
    argv = [
        "run",
        "--input",
        str(path),
        "--out",
        str(tmp_path / "out"),
        "--reference",
        "2015",
        "soon",
    ]
    assert main(argv) == 2
    assert "reference: 'soon' is not a period: give a year (2020)" in capsys.readouterr().err


def test_month_outside_the_ons_data_is_refused(
    shared: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    # The real ONS regional file ends with the week ending 30 April 2021: June 2021 has none of it.
    monkeypatch.setattr("excessmort.warmup", lambda **kw: 0.0)  # refused before any kernel runs
    ons = shared / "data" / "ons" / "ons_weekly_deaths_by_region.csv"
    argv = ["run", "--input", str(ons), "--month", "2021-06", "--out", str(tmp_path)]
    assert main(argv) == 2
    assert (
        "month 2021-06 lies outside the data, which run from 2015-01-02 to 2021-04-30 (the period "
        "holds the weeks ending 2021-06-04 to 2021-06-25)"
    ) in capsys.readouterr().err


def test_the_program_ends_run_with_its_code_and_everything_written(
    csv_input: Path, tmp_path: Path
) -> None:
    """``python -m excessmort run`` ends without the interpreter's teardown (cli.entry): its exit
    code, both streams (piped, so block-buffered) and every file of the release still arrive."""
    import subprocess
    import sys

    src = Path(__file__).resolve().parents[1] / "src"
    env = {**os.environ, "PYTHONPATH": str(src)}

    def program(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "excessmort", *args]
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)

    out = tmp_path / "out"
    ready = program("run", "--input", str(csv_input), "--out", str(out))
    assert ready.returncode == 0, ready.stderr
    assert ready.stdout.rstrip().endswith("READY: 14 checks, 0 failed, 0 warnings")
    assert "staged release 2021-05-20" in ready.stderr  # the log's last lines, flushed
    (release,) = out.iterdir()
    assert json.loads((release / "readiness.json").read_text())["ready"] is True
    assert len(read_manifest(release)["files"]) > 60  # the nine reports, their charts and figures
    refused = program("run", "--input", str(csv_input), "--out", str(out), "--month", "1999-01")
    assert refused.returncode == 2
    assert "lies outside the data" in refused.stderr
    assert [p.name for p in out.iterdir()] == [release.name]
