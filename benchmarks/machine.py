"""Machine, versions and process settings recorded in every results row; the dgemm rate."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = [
    "PINNED_ENV",
    "REPO",
    "child_env",
    "dgemm_gflops",
    "git_info",
    "machine_info",
    "versions",
    "write_gbs",
]

REPO = Path(__file__).resolve().parents[1]

#: Environment of every measured process (glum CI): BLAS pools pinned to one thread, hashing fixed.
PINNED_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "PYTHONHASHSEED": "0",
}

_PACKAGES = ("numpy", "numba", "pandas", "scipy", "statsmodels", "glum", "llvmlite")


def child_env(*, threads: int, cache_dir: str | None, src: Path | None = None) -> dict[str, str]:
    """Environment for a measured child process: pinned BLAS, explicit numba threads and caches
    (numba's and excessmort's own holiday cache in ``cache_dir``)."""
    env = dict(os.environ)
    env.update(PINNED_ENV)
    env["NUMBA_NUM_THREADS"] = str(int(threads))
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
        env["EXCESSMORT_CACHE_DIR"] = cache_dir  # the holiday dates too: cold is a first-ever run
    paths = [str(src)] if src is not None else []
    paths.append(str(REPO))
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """CPU model, cores, memory, OS."""
    try:
        import psutil

        mem_gb = round(psutil.virtual_memory().total / 2**30, 1)
        physical = psutil.cpu_count(logical=False)
    except ImportError:  # pragma: no cover - psutil is in the bench extra
        mem_gb, physical = float("nan"), None
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "physical_cores": physical,
        "mem_gb": mem_gb,
        "os": f"{platform.system()} {platform.release()}",
    }


def versions() -> dict[str, str]:
    """python and the numeric stack, plus excessmort itself."""
    out = {"python": platform.python_version()}
    for name in (*_PACKAGES, "excessmort"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = ""
    return out


def git_info(repo: Path = REPO) -> dict[str, Any]:
    """SHA of HEAD and whether the work tree differs from it."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=repo, capture_output=True, text=True, check=False
        ).stdout.strip()

    sha = git("rev-parse", "HEAD")
    dirty = bool(git("status", "--porcelain", "--untracked-files=no", "--", "src"))
    return {"git_sha": sha[:12], "git_dirty": dirty}


def now() -> str:
    """UTC date-time, ISO 8601 to the second."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_DGEMM_CODE = """
import json, time, numpy as np
from threadpoolctl import threadpool_limits
n = {n}
rng = np.random.default_rng(0)
a = rng.standard_normal((n, n)); b = rng.standard_normal((n, n))
out = {{}}
for threads in {threads}:
    with threadpool_limits(limits=threads, user_api="blas"):
        a @ b
        best = float("inf")
        for _ in range({repeats}):
            t0 = time.perf_counter(); a @ b; best = min(best, time.perf_counter() - t0)
    out[threads] = 2.0 * n**3 / best / 1e9
print(json.dumps(out))
"""


_FIRST_TOUCH_CODE = """
import json, time, numpy as np, numba
from numba import njit, prange

@njit(parallel=True, cache=False)
def fill(a, v):
    for i in prange(a.shape[0]):
        a[i] = v

n = int({gb} * 1e9 / 8)
fill(np.empty(1000), 0.0)  # compile
fresh, warm, idle = [], [], []
for _ in range({repeats}):
    t0 = time.perf_counter(); a = np.empty(n); fill(a, 1.0); fresh.append(time.perf_counter() - t0)
    t0 = time.perf_counter(); fill(a, 2.0); warm.append(time.perf_counter() - t0)
    del a
for _ in range({idle_repeats}):  # memory freed {idle} s before: a VM's host may have taken it back
    time.sleep({idle})
    t0 = time.perf_counter(); a = np.empty(n); fill(a, 1.0); idle.append(time.perf_counter() - t0)
    del a
print(json.dumps({{"fresh": 8 * n / 1e9 / sorted(fresh)[len(fresh) // 2],
                   "warm": 8 * n / 1e9 / sorted(warm)[len(warm) // 2],
                   "fresh_after_idle": 8 * n / 1e9 / sorted(idle)[len(idle) // 2]
                   if idle else float("nan")}}))
"""


def write_gbs(
    threads: int, *, gb: float = 4.0, repeats: int = 5, idle: float = 5.0, idle_repeats: int = 2
) -> dict[str, float]:
    """GB/s of a float64 fill on ``threads`` numba threads: into a fresh ``np.empty`` array (the
    pages are faulted in and zeroed by the kernel as they are first written: what every new result
    array costs) and into the same array again (memory bandwidth); medians of ``repeats``. Then
    ``fresh_after_idle``: into a fresh array again, ``idle`` seconds after the last one was freed
    (median of ``idle_repeats``).

    The first figure bounds from below what any case that returns new [S, T] arrays can take: W2's
    twelve weekly interval columns are 96 T bytes per series. The last tells a virtual machine whose
    host takes freed guest memory back within seconds (free page reporting): there a case that
    allocates memory freed a while before pays the host's page faults as well (measured on the AMD
    EPYC VM of session 12: 13.8 GB/s back to back, 0.8 GB/s after 5 s).
    """
    code = _FIRST_TOUCH_CODE.format(gb=gb, repeats=repeats, idle=idle, idle_repeats=idle_repeats)
    out = _child_json(code, child_env(threads=threads, cache_dir=None))
    if out is None:
        return {"fresh": float("nan"), "warm": float("nan"), "fresh_after_idle": float("nan")}
    return {k: float(v) for k, v in out.items()}


def _child_json(code: str, env: dict[str, str]) -> dict[str, Any] | None:
    """Run ``code`` in a fresh interpreter with ``env``; the JSON object of its last output line,
    or ``None`` when it fails."""
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if proc.returncode != 0:
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def dgemm_gflops(threads: list[int], *, n: int = 2000, repeats: int = 3) -> dict[int, float]:
    """Best-of-``repeats`` GFLOP/s of numpy's float64 matmul (n x n) for each BLAS thread count.

    One fresh interpreter started with the BLAS pool sized for the largest count; ``threadpoolctl``
    limits it to each count in turn (the achieved kernel rates are set against these).
    """
    env = child_env(threads=max(threads), cache_dir=None)
    for key in (
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "VECLIB_MAXIMUM_THREADS",
    ):
        env[key] = str(max(threads))
    out = _child_json(_DGEMM_CODE.format(n=n, repeats=repeats, threads=list(threads)), env)
    if out is None:
        return {t: float("nan") for t in threads}
    return {int(k): float(v) for k, v in out.items()}
