"""One measured case in one fresh process: ``python -m benchmarks._worker SPEC.json OUT.json``.

The parent (:mod:`benchmarks.run`) sets the environment (pinned BLAS threads, ``NUMBA_NUM_THREADS``,
``NUMBA_CACHE_DIR``: an empty directory for the *cold* figure, the same directory again for the
*cached* one). This process:

1. imports the engine and the case's library (timed: ``import_s``);
2. draws the seeded panel (not timed) and prepares the case (not timed);
3. resets the kernel's peak-RSS counter (``/proc/self/clear_refs``), times the first call
   (``first_s``: cold or cached, by the state of the cache) and reads the peak RSS of that call;
4. when asked, times ``repeats`` more calls in the same process (the *warm* figure: median; the
   first call was the warm-up);
5. compares expected deaths of a fixed sample of series with statsmodels (equal work).

:func:`measure` is the same thing in the calling process (used by the smoke test and by
``--in-process``), where the cold and cached figures are not defined.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["measure"]


def _rss_bytes() -> int:
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:  # pragma: no cover
        return 0


def _reset_peak() -> bool:
    """Reset VmHWM (Linux >= 4.0); False where the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_bytes() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def build_panel(spec: dict[str, Any]) -> Any:
    """The workload's panel from its spec (seeded)."""
    from ._data import monthly_batch_keys, synthetic_panel

    keys = monthly_batch_keys() if spec.get("keys") == "monthly" else None
    n_series = len(keys) if keys is not None else int(spec["n_series"])
    return synthetic_panel(
        n_series,
        int(spec["n_weeks"]),
        n_ref=int(spec["n_ref"]),
        offset=bool(spec["offset"]),
        seed=int(spec.get("seed", 20240501)),
        keys=keys,
    )


def measure(spec: dict[str, Any], *, fresh_process: bool) -> dict[str, Any]:
    """Run one case as described by ``spec``; returns the raw measurements."""
    t0 = time.perf_counter()
    import excessmort  # noqa: F401  (import time is part of a fresh process's cost)

    from .cases import available, equal_work_sample, irls_flops, prepare, statsmodels_expected

    import_s = time.perf_counter() - t0
    case = spec["case"]
    reason = available(case)
    if reason is not None:
        return {"status": reason}
    rss0 = _rss_bytes()
    panel = build_panel(spec)
    equal_idx = equal_work_sample(panel.n_series, int(spec.get("equal_k", 20)))
    prepared = prepare(
        case,
        panel,
        sample=int(spec.get("sample", 100)),
        equal_idx=equal_idx,
        threads=int(spec["threads"]),
    )
    import gc

    gc.collect()
    rss_call = _rss_bytes()
    peak_ok = _reset_peak()
    t1 = time.perf_counter()
    out = prepared.run()
    first_s = time.perf_counter() - t1
    peak = _peak_bytes() if peak_ok else max(_peak_bytes(), rss_call)
    checked = prepared.check(out)
    del out
    warm: list[float] = []
    warm_peak = warm_rss = float("nan")
    for k in range(int(spec.get("repeats", 0))):
        if k == 0:  # the peak of a warm call: no kernel loading, nothing compiled
            gc.collect()
            warm_rss = _rss_bytes()
            warm_ok = _reset_peak()
        t1 = time.perf_counter()
        res = prepared.run()
        warm.append(time.perf_counter() - t1)
        if k == 0 and warm_ok:
            warm_peak = _peak_bytes()
        del res
    result: dict[str, Any] = {
        "status": "ok",
        "import_s": import_s,
        "first_s": first_s,
        "warm_times": warm,
        "warm_s": statistics.median(warm) if warm else float("nan"),
        "warm_min_s": min(warm) if warm else float("nan"),
        "n_timed": prepared.n_timed,
        "n_series": panel.n_series,
        "n_weeks": panel.n_weeks,
        "n_ref": int(panel.ref.sum()),
        "p": int(panel.X.shape[1]),
        "deaths_bytes": int(panel.deaths.nbytes),
        "timed_deaths_bytes": int(prepared.n_timed * panel.n_weeks * 8),
        "rss_start_bytes": rss0,
        "rss_call_bytes": rss_call,
        "peak_rss_bytes": peak if fresh_process else float("nan"),
        "peak_exact": peak_ok,
        "warm_rss_call_bytes": warm_rss if fresh_process else float("nan"),
        "warm_peak_rss_bytes": warm_peak if fresh_process else float("nan"),
        "note": prepared.note,
        "excessmort_file": sys.modules["excessmort"].__file__,
        "numba_threads": os.environ.get("NUMBA_NUM_THREADS", ""),
    }
    if "nonconverged" in checked:
        result["nonconverged"] = checked["nonconverged"]
    if "output_bytes" in checked:
        result["output_bytes"] = int(checked["output_bytes"])
    if "n_iter" in checked and np.size(checked["n_iter"]):
        n_iter = np.asarray(checked["n_iter"])
        result["mean_iter"] = float(np.mean(n_iter))
        if case.startswith("excessmort") or case == "numpy.batched":
            scale = prepared.n_timed / max(n_iter.size, 1)
            result["flops"] = (
                irls_flops(n_iter, panel.n_weeks, int(panel.ref.sum()), int(panel.X.shape[1]))
                * scale
            )
    if spec.get("equal_work", True) and case != "statsmodels.loop":
        ref_mu, _ = statsmodels_expected(panel, equal_idx)
        mine = np.asarray(checked["expected_sample"], dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = np.abs(mine - ref_mu) / np.abs(ref_mu)
        result["max_rel_diff_expected"] = (
            float(np.nanmax(rel)) if np.isfinite(rel).any() else float("nan")
        )
        result["n_equal_work"] = int(equal_idx.size)
    elif case == "statsmodels.loop":
        result["max_rel_diff_expected"] = 0.0
        result["n_equal_work"] = int(equal_idx.size)
    return result


def main(argv: list[str] | None = None) -> int:
    """Entry point: read the spec, measure, write the result JSON (errors included)."""
    argv = sys.argv[1:] if argv is None else argv
    spec = json.loads(Path(argv[0]).read_text())
    try:
        result = measure(spec, fresh_process=True)
    except MemoryError:
        result = {"status": "error: MemoryError"}
    except Exception as exc:  # recorded in the results row, never hidden
        result = {"status": f"error: {type(exc).__name__}: {exc}"[:300]}
    Path(argv[1]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
