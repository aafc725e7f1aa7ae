"""Manifest of a staged release: checksums (oracle: hashlib on whole files), verify, golden."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from excessmort.exceptions import ReleaseError
from excessmort.report.manifest import (
    build_manifest,
    file_sha256,
    manifest_digest,
    read_manifest,
    verify_manifest,
    write_manifest,
)

GOLDEN = Path(__file__).resolve().parent / "golden"
META = {
    "month": "2027-03",
    "release_date": "2027-03-18",
    "slot": "2027-03-18T14:00:00+00:00",
    "title": "Excess mortality in English regions",
    "producer": "Example Statistics Office (fictional producer)",
    "baseline": "quasipoisson",
    "generated_at": "2027-03-10T09:00:00+00:00",
}


def _tree(root: Path) -> Path:
    files = {
        "index.html": "<html>index</html>\n",
        "north-east/report.html": "<html>north east</html>\n",
        "north-east/figures.csv": "week,deaths\n2027-03-05,512\n",
        "london/chart-weekly.svg": "<svg/>\n",
        "london/report.html": "<html>london \u00e9</html>\n",
        # metadata: not listed
        "readiness.json": '{"ready": true}\n',
        "access_log.json": "{}\n",
        "publish_log.json": "{}\n",
        ".index.html.abc.tmp": "half",
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def test_checksums_match_hashlib_and_paths_are_sorted(tmp_path):
    root = _tree(tmp_path / "2027-03-18")
    big = root / "london" / "figures.parquet"
    big.write_bytes(os.urandom(3 * (1 << 20) + 17))  # spans several 1 MiB chunks
    manifest = build_manifest(root, META)
    paths = [e["path"] for e in manifest["files"]]
    assert paths == sorted(paths)
    assert paths == [
        "index.html",
        "london/chart-weekly.svg",
        "london/figures.parquet",
        "london/report.html",
        "north-east/figures.csv",
        "north-east/report.html",
    ]
    for entry in manifest["files"]:
        data = (root / entry["path"]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["bytes"] == len(data)
    assert manifest["schema"] == 1 and manifest["release"] == META
    assert file_sha256(big) == hashlib.sha256(big.read_bytes()).hexdigest()


def test_golden_manifest(tmp_path):
    root = _tree(tmp_path / "2027-03-18")
    path = write_manifest(root, META)
    text = path.read_text(encoding="utf-8")
    golden = GOLDEN / "manifest_small.json"
    if os.environ.get("EXCESSMORT_UPDATE_GOLDEN") == "1":
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")
    assert read_manifest(root) == json.loads(text)
    assert not list(root.glob(".manifest.json.*"))  # no temp file left by the atomic write


def test_verify_detects_each_problem(tmp_path):
    root = _tree(tmp_path / "r")
    write_manifest(root, META)
    assert verify_manifest(root) == []
    # issue 16: an unlisted file is refused at the top too (only the metadata files may be added)
    (root / "top-level-note.txt").write_text("not content, not metadata")
    assert verify_manifest(root) == [
        "top-level-note.txt: at the top of the release but not in the manifest"
    ]
    (root / "top-level-note.txt").unlink()
    (root / "publish_log.jsonl").write_text("{}\n")
    (root / "manifest.sig").write_text("{}\n")
    assert verify_manifest(root) == []

    (root / "north-east" / "figures.csv").write_text("week,deaths\n2027-03-05,513\n")  # same size
    (root / "london" / "report.html").write_text("short")
    (root / "index.html").unlink()
    (root / "london" / "extra.js").write_text("alert(1)")
    problems = verify_manifest(root)
    assert len(problems) == 4
    joined = "\n".join(problems)
    assert "north-east/figures.csv: checksum differs" in joined
    assert "london/report.html: size 5 bytes" in joined
    assert "index.html: listed in the manifest but missing" in joined
    assert "london/extra.js: inside a region folder but not in the manifest" in joined


def test_read_errors(tmp_path):
    with pytest.raises(ReleaseError, match="missing"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ReleaseError, match="not valid JSON"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(
        json.dumps({"release": {}, "files": [{"path": "../etc/passwd", "sha256": "0", "bytes": 1}]})
    )
    with pytest.raises(ReleaseError, match="leaves the release folder"):
        read_manifest(tmp_path)
    with pytest.raises(ReleaseError, match="does not exist"):
        build_manifest(tmp_path / "nope", META)


def test_digest_identifies_content(tmp_path):
    root = _tree(tmp_path / "r")
    a = build_manifest(root, META)
    b = build_manifest(root, {**META, "generated_at": "later"})
    assert manifest_digest(a) == manifest_digest(b)  # metadata does not change the content id
    (root / "index.html").write_text("changed")
    assert manifest_digest(build_manifest(root, META)) != manifest_digest(a)
