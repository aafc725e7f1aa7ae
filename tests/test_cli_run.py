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
        (["run", "--month", "2021-13"], "month '2021-13' has month number 13"),
        (["run", "--month", "April"], "month must look like YYYY-MM"),
        (["check", "no/such/release"], "no/such/release is not a folder"),
        (["check", ".", "--now", "soon"], "--now must be an ISO date-time"),
    ],
)
def test_usage_errors_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err
