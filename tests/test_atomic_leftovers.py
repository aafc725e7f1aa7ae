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


def test_network_targets_open_staged_files_without_following_symlinks(tmp_path: Path) -> None:
    """SFTP and WebDAV uploads read staged files as the folder target copies them (issue 16 item 5):
    a symlink swapped in after the checks is refused, not followed."""
    import pytest

    from excessmort.release._remote import open_staged
    from excessmort.release.targets import PublishError

    (tmp_path / "london").mkdir()
    (tmp_path / "london" / "figures.csv").write_text("a,b\n1,2\n")
    secret = tmp_path.parent / f"{tmp_path.name}-private.txt"
    secret.write_text("private")
    (tmp_path / "london" / "report.html").symlink_to(secret)
    with open_staged(tmp_path, "london/figures.csv") as fh:
        assert fh.read() == b"a,b\n1,2\n"
    for rel in ("london/report.html", "../x", "london/missing.csv"):
        with pytest.raises(PublishError) as info:
            open_staged(tmp_path, rel)
        assert not info.value.retryable and info.value.step == "copy"
