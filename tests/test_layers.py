"""The two publication packages (DESIGN, Publication): ``report/`` stages, renders and checks and
never imports ``release/``; ``release/`` holds the calendar, configuration, targets, publishing,
access log and breach paperwork."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import excessmort

PACKAGE = Path(excessmort.__file__).parent
REPORT = PACKAGE / "report"
RELEASE = PACKAGE / "release"


def _imports(path: Path, package: list[str] | None = None) -> list[tuple[int, str]]:
    """Every module ``path`` imports (absolute names; relative ones resolved against its package)."""
    package = package or ["excessmort", *path.parent.relative_to(PACKAGE).parts]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.append((node.lineno, module))
            # ``from .. import release`` names the package in the alias
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def _is_release(module: str) -> bool:
    return module == "excessmort.release" or module.startswith("excessmort.release.")


def test_resolver_sees_relative_and_absolute_release_imports(tmp_path: Path) -> None:
    # the checker itself can fail: a planted import of each form is found
    fake = tmp_path / "planted.py"
    fake.write_text(
        "from ..release.config import Config\nfrom .. import release\nimport excessmort.release\n"
        "from .manifest import read_manifest\n",
        encoding="utf-8",
    )
    found = _imports(fake, ["excessmort", "report"])
    hits = {(line, m) for line, m in found if _is_release(m)}
    assert hits == {
        (1, "excessmort.release.config"),
        (1, "excessmort.release.config.Config"),
        (2, "excessmort.release"),
        (3, "excessmort.release"),
    }
    assert (4, "excessmort.report.manifest") in found


def test_report_never_imports_release() -> None:
    files = sorted(REPORT.rglob("*.py"))
    assert {p.name for p in files} >= {"stage.py", "render.py", "readiness.py", "manifest.py"}
    offending = [
        f"{p.relative_to(PACKAGE)}:{line}: {module}"
        for p in files
        for line, module in _imports(p)
        if _is_release(module)
    ]
    assert offending == []


def test_release_modules_live_in_release() -> None:
    names = {p.stem for p in RELEASE.glob("*.py")}
    assert names >= {"calendar", "config", "targets", "publish", "breach", "access"}
    assert names >= {"sftp", "webdav", "target_url"}
    assert not ({p.stem for p in REPORT.glob("*.py")} & names - {"__init__"})


def test_importing_the_report_layer_loads_no_release_module() -> None:
    code = (
        "import sys\n"
        "import excessmort.report.stage, excessmort.report.render, excessmort.report.readiness\n"
        "import excessmort.report.contents, excessmort.report.signing, excessmort.report.manifest\n"
        "print(sorted(m for m in sys.modules if m.startswith('excessmort.release')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert out.stdout.strip() == "[]"


def test_report_staging_reads_no_configuration(tmp_path: Path) -> None:
    import pytest

    from excessmort.exceptions import InputError
    from excessmort.report import stage_release

    for config in (None, tmp_path / "release.toml", {"title": "x"}):
        with pytest.raises(InputError, match="release settings") as err:
            stage_release(tmp_path / "no-data.csv", month="2021-04", out=tmp_path, config=config)
        assert err.value.column == "config"
    assert not list(tmp_path.iterdir())


def test_configuration_hands_the_calendar_slots_to_staging() -> None:
    from datetime import datetime

    from excessmort.release import default_config, next_slot, slot_for_month

    cfg = default_config()
    settings = cfg.stage_settings()
    slot, following = settings.slots((2021, 5))
    assert slot == slot_for_month("2021-05", cfg.release_rule)
    assert slot == datetime.fromisoformat("2021-05-20T14:00:00+01:00")
    assert following == next_slot(slot, cfg.release_rule)
    assert following == datetime.fromisoformat("2021-06-17T14:00:00+01:00")
    assert settings.plausibility == cfg.plausibility
    assert settings.live_root == cfg.target_spec(cfg.target).path
    assert settings.release_rule.describe() == cfg.release_rule.describe()
