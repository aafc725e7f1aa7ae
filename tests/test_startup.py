"""Start-up: what ``import excessmort`` loads, numba's cache written and read back, and the light
replacements of ``scipy.stats`` on the fitting path giving the same bits.

No wall-clock assertion here (timings are in benchmarks/): the tests pin which modules are loaded
and that a kernel's second process loads it from the cache instead of compiling it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats

from excessmort import _stats

SRC = Path(__file__).resolve().parents[1] / "src"

#: Modules that only some paths need: plotting and reports, Parquet, Dask, the statistics libraries.
HEAVY = (
    "numba",
    "scipy",
    "scipy.stats",
    "matplotlib",
    "jinja2",
    "pyarrow",
    "dask",
    "statsmodels",
    "holidays",
    "openpyxl",
)


def _loaded(code: str, env: dict[str, str] | None = None) -> set[str]:
    script = code + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
    proc = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "PYTHONPATH": str(SRC), **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return set(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_import_excessmort_loads_no_heavy_module() -> None:
    modules = _loaded("import excessmort")
    assert "excessmort" in modules
    assert not modules & set(HEAVY), sorted(modules & set(HEAVY))


def test_the_version_is_looked_up_only_when_asked_for() -> None:
    """``import excessmort`` (and so every command) does not import importlib.metadata to find its
    version (70 ms of the import); ``excessmort.__version__`` and ``excessmort --version`` do."""
    assert "importlib.metadata" not in _loaded("import excessmort, excessmort.cli")
    modules = _loaded("import excessmort\nassert excessmort.__version__")
    assert "importlib.metadata" in modules
    from importlib.metadata import version

    proc = subprocess.run(
        [sys.executable, "-m", "excessmort", "--version"],
        env={**os.environ, "PYTHONPATH": str(SRC)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert proc.stdout == f"excessmort {version('excessmort')}\n"


def test_the_fitting_path_does_not_import_scipy_stats_or_matplotlib() -> None:
    """The modules a fit and the monthly batch's figures run (not the plots or reports) load
    neither scipy.stats (only scipy.special) nor matplotlib."""
    modules = _loaded(
        "import excessmort.cli, excessmort._fit, excessmort.excess, excessmort.dependence\n"
        "import excessmort.baselines.glm, excessmort.report.stage"
    )
    assert "excessmort.baselines.glm" in modules
    for name in ("scipy.stats", "matplotlib", "statsmodels", "dask"):
        assert name not in modules, name


def test_a_small_panel_never_imports_numba() -> None:
    """The monthly batch's panel (the demo's 72 series x 883 weeks) is below NUMPY_MAX_CELLS: a
    fit, its regional weekly and cumulative figures with the dependence-aware intervals, and the
    alarms run the numpy twins of every kernel (IRLS, quadratic forms, running variances, interval
    columns): numba is neither imported nor compiled, whatever its cache holds."""
    modules = _loaded(
        "import excessmort as em\n"
        "f = em.fit(em.demo_data(end='2020-12-31'))\n"
        "v = f.by('region')\n"
        "v.weekly, v.cumulative('2020-03-01', '2020-10-30'), v.alarms()"
    )
    assert "excessmort._kernels.irls_ref" in modules and "excessmort.dependence" in modules
    assert not {m for m in modules if m == "numba" or m.startswith("numba.")}
    assert "excessmort._kernels.irls" not in modules


def test_light_distribution_functions_equal_scipy_stats_bit_for_bit() -> None:
    q = np.array([1e-300, 1e-12, 0.025, 0.5, 0.9, 0.975, 0.99865, 1 - 1e-12, 0.0, 1.0, -0.1, 1.5])
    np.testing.assert_array_equal(_stats.norm.ppf(q), scipy_stats.norm.ppf(q))
    assert _stats.norm.ppf(0.975) == scipy_stats.norm.ppf(0.975)
    df = np.array([0.5, 1.0, 3.0, 12.5, 1e3, 1e9, np.inf, np.nan, 0.0, -1.0])
    qq, dd = np.meshgrid(q, df)
    np.testing.assert_array_equal(_stats.t.ppf(qq, dd), scipy_stats.t.ppf(qq, dd))
    assert _stats.t.ppf(0.975, 10.0) == scipy_stats.t.ppf(0.975, 10.0)
    assert np.ndim(_stats.t.ppf(0.975, 10.0)) == 0


_KERNEL = """
from excessmort._kernels._jit import jit, CACHE

@jit
def axpy(a, x, y):
    for i in range(x.shape[0]):
        y[i] += a * x[i]
"""

_CALL = """
import json, sys
import numpy as np
sys.path.insert(0, {folder!r})
import tiny_kernel as k
from excessmort._kernels._jit import compiled_on_disk
before = compiled_on_disk(k.axpy)
y = np.zeros(3)
k.axpy(2.0, np.arange(3.0), y)
print(json.dumps({{"before": before, "hits": sum(k.axpy.stats.cache_hits.values()),
                  "misses": sum(k.axpy.stats.cache_misses.values()), "y": y.tolist(),
                  "cache": k.CACHE}}))
"""


@pytest.mark.skipif(os.environ.get("NUMBA_DISABLE_JIT") == "1", reason="no JIT, no cache")
def test_numba_cache_is_written_then_read_by_the_next_process(
    tmp_path: Path, where: str = "NUMBA_CACHE_DIR"
) -> None:
    """The package's decorator caches: a first process compiles and writes numba's cache, a second
    one loads it (a hit, no compile), and compiled_on_disk tells the two apart beforehand. Run with
    ``where="beside the source"`` it checks the other place numba writes, __pycache__ beside the
    module (an editable install's source tree, or site-packages when it is writable); that passed
    too, and is left out of the suite because each pair of processes costs seconds."""
    (tmp_path / "tiny_kernel.py").write_text(textwrap.dedent(_KERNEL))
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    if where == "NUMBA_CACHE_DIR":
        cache = tmp_path / "numba-cache"
        env["NUMBA_CACHE_DIR"] = str(cache)
    else:
        cache = tmp_path / "__pycache__"
        env.pop("NUMBA_CACHE_DIR", None)
    env.pop("EXCESSMORT_NUMBA_CACHE", None)
    env.pop("NUMBA_DISABLE_JIT", None)
    runs = []
    for _ in range(2):
        proc = subprocess.run(
            [sys.executable, "-c", _CALL.format(folder=str(tmp_path))],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    first, second = runs
    assert first["cache"] is True
    assert first["y"] == second["y"] == [0.0, 2.0, 4.0]
    assert (first["before"], first["misses"], first["hits"]) == (False, 1, 0)
    assert (second["before"], second["misses"], second["hits"]) == (True, 0, 1)
    assert list(cache.rglob("*.nbi")) and list(cache.rglob("*.nbc"))
