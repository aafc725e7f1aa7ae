"""A staged report in a real headless browser (Debian chromium): no console errors, nothing
executed, and the charts render (screenshot with more than a blank page in it).

Two browser launches: the report as staged (screenshot + console log), and a copy of it with the
injected stratum name put in raw, which must execute and be seen in the console log -- the proof
that the console capture would catch an error or an executed script in the real report.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from excessmort.datasets import demo_data
from excessmort.release import stage_release

pytestmark = pytest.mark.browser

INJECTED = '<script>console.error("INJECTED-" + 6 * 7)</script>'
_CONSOLE = re.compile(r'CONSOLE[^\]]*\] "(.*)", source: (\S*)')
BAND = (0xB9, 0xC7, 0xE8)  # the prediction band's fill (render._COLOURS["band"])
OBSERVED = (0x1F, 0x3A, 0x93)


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail(
        "Debian chromium is not installed: `apt-get install -y chromium` "
        "(make test installs it when missing)"
    )


def _browse(page: Path, tmp: Path, *extra: str) -> tuple[list[tuple[str, str]], str]:
    """Open ``page`` headless; return (console messages, stdout)."""
    profile = tmp / f"profile-{page.stem}-{len(list(tmp.iterdir()))}"
    profile.mkdir()
    cmd = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        *extra,
        page.resolve().as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90, cwd=tmp)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return _CONSOLE.findall(proc.stderr), proc.stdout


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    frame = demo_data(end="2021-04-30")
    frame = frame[frame["region"].astype(str) == "E12000007"].copy()
    frame["region"] = frame["region"].astype(str)
    frame["age_group"] = frame["age_group"].astype(str).replace({"85+": INJECTED})
    staged = stage_release(frame, month="2021-04", out=tmp_path_factory.mktemp("browser"))
    return staged / "london" / "report.html"


def test_report_renders_without_console_errors(report: Path, tmp_path: Path) -> None:
    from PIL import Image

    shot = tmp_path / "report.png"
    console, _ = _browse(report, tmp_path, f"--screenshot={shot}", "--window-size=1280,2600")
    assert console == [], console  # no errors, no failed loads, and the injected script never ran
    image = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert image.shape[:2] == (2600, 1280)
    pixels = image.reshape(-1, 3)
    non_white = np.any(pixels < 245, axis=1).mean()
    colours = len(np.unique(pixels[:, 0] * 65536 + pixels[:, 1] * 256 + pixels[:, 2]))
    band = np.all(np.abs(pixels - BAND) <= 4, axis=1).sum()
    line = np.all(np.abs(pixels - OBSERVED) <= 20, axis=1).sum()
    assert non_white > 0.03, non_white  # not a blank page (the report measures about 0.07)
    assert colours > 200, colours  # anti-aliased text and charts, not a flat image
    assert band > 5_000, band  # the charts' bands are drawn (about 21,000; none without charts)
    assert line > 1_000, line  # the observed line and the masthead rule (about 9,600)


def test_console_capture_sees_an_executed_script(report: Path, tmp_path: Path) -> None:
    html = report.read_text(encoding="utf-8")
    escaped = "Age group: &lt;script&gt;console.error(&#34;INJECTED-&#34; + 6 * 7)&lt;/script&gt;"
    assert escaped in html and "<script" not in html
    raw = report.parent / "raw-copy.html"
    raw.write_text(html.replace(escaped, "Age group: " + INJECTED, 1), encoding="utf-8")
    console, dom = _browse(raw, tmp_path, "--dump-dom")
    assert [m for m, _ in console] == ["INJECTED-42"]
    assert "Observed / expected deaths by group" in dom
    raw.unlink()
