"""Temporary folders of killed runs are removed by the next run (issue 16, item 8)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from excessmort._atomic import atomic_directory


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                          capture_output=True, text=True)  # fmt: skip
    return int(proc.stdout)


def test_a_killed_runs_temp_folder_is_removed_and_a_live_ones_kept(tmp_path: Path) -> None:
    final = tmp_path / "2026-12-17"
    dead = tmp_path / f".{final.name}.pid{_dead_pid()}.abc123.tmp"
    (dead / "london").mkdir(parents=True)
    (dead / "london" / "report.html").write_text("half a release")
    old = tmp_path / f".{final.name}.pid{_dead_pid()}.xyz.old"
    old.mkdir()
    alive = tmp_path / f".{final.name}.pid{os.getppid()}.live.tmp"  # a run still building
    alive.mkdir()
    other = tmp_path / ".another-release.pid1.tmp"  # not a sibling of this release
    other.mkdir()
    with atomic_directory(final) as tmp:
        (tmp / "index.html").write_text("new")
    assert not dead.exists() and not old.exists()
    assert alive.exists() and other.exists()
    assert (final / "index.html").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [final.name, alive.name, other.name]
    )
