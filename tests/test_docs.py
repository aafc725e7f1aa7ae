"""The documentation site builds with warnings as errors, and the package builds and installs.

- ``mkdocs build --strict`` (mkdocs-material, mkdocstrings from the docstrings, mkdocs-jupyter for
  the notebooks) into a temporary folder;
- ``python -m build`` (wheel and sdist, no isolation: offline) passes ``twine check``; a fresh venv
  gets the wheel (``pip install --no-index --no-deps``; its dependencies come from this
  environment's site-packages through a ``.pth`` file) and runs ``excessmort --help`` from it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src")
    env["NO_MKDOCS_2_WARNING"] = "1"
    return env


@pytest.mark.slow
def test_docs_build_strict(tmp_path: Path) -> None:
    site = tmp_path / "site"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "-q",
            "-f",
            str(ROOT / "mkdocs.yml"),
            "-d",
            str(site),
        ],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    api = (site / "api" / "fit" / "index.html").read_text(encoding="utf-8")
    assert "cumulative" in api and "coefficient_table" in api
    assert (site / "notebooks" / "01-quickstart" / "index.html").is_file()
    assert "ONS registration year" in (site / "analysts" / "index.html").read_text(encoding="utf-8")


@pytest.mark.slow
def test_wheel_and_sdist_build_check_and_install(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--no-isolation",
            "--wheel",
            "--sdist",
            "--outdir",
            str(dist),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    wheels = list(dist.glob("excessmort-*.whl"))
    sdists = list(dist.glob("excessmort-*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1
    with zipfile.ZipFile(wheels[0]) as zf:
        names = zf.namelist()
    assert "excessmort/periods.py" in names and "excessmort/py.typed" in names
    check = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, wheels + sdists)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120
    )
    py = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # The dependencies (numpy, pandas, numba...) from this environment, after the venv's own.
    Path(purelib, "_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(py),
            "install",
            "--quiet",
            "--no-index",
            "--no-deps",
            str(wheels[0]),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run(
        [str(py), "-c", "import excessmort; print(excessmort.__file__, excessmort.__version__)"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert where.returncode == 0, where.stderr
    assert where.stdout.startswith(str(venv)), where.stdout
    cli = subprocess.run(
        [str(venv / "bin" / "excessmort"), "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert cli.returncode == 0, cli.stderr
    assert "run" in cli.stdout and "usage" in cli.stdout.lower()
