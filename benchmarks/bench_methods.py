"""The ons2024, wmd and negative_binomial baselines against what a user would run instead:
statsmodels, one model at a time.

``python -m benchmarks.bench_methods [--series N] [--out FILE]``

Cases (one process, BLAS pinned to one thread, timings are medians of ``--repeat`` warm calls
after one warm-up; wall and CPU time ``time.process_time``):

- ``ons2024``: ONS's 2024 model on 24 series (3 regions x 2 sexes x 4 age groups, 2014-2022),
  every week from 2020 w1 estimated (156 refits on five-year windows). excessmort: the batched
  pass (``fit_ons``, numba) and the per-window loop (``batched=False``); statsmodels:
  ``GLM(Poisson, offset, scale="X2")`` on the dense design of each window (ONS's columns less the
  aliased ones) with ``get_prediction`` at the estimated week, on the first ``--sm-windows``
  windows; per refit = time / windows.
- ``wmd``: N series x 470 weeks, ``WMD().fit(panel)`` against ``sm.OLS`` per series with the
  covariance of the fitted values at every week (x' V x).
- ``negative_binomial``: N / 4 series x 470 weeks, ``NegativeBinomial().fit(panel)`` against
  ``sm.NegativeBinomial(loglike_method="nb2")`` per series (Poisson start, BFGS then Newton to
  1e-14, as tests/test_negbin.py) with x' V x.

Ratio = statsmodels per unit / excessmort per unit (CPU time). Equal work: the largest relative
difference of expected deaths between the two. Writes ``benchmarks/results/methods_<date>.csv``.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _timed(fn: Callable[[], Any], repeat: int) -> tuple[Any, float, float]:
    fn()  # warm-up: numba kernels loaded or compiled
    walls, cpus, out = [], [], None
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return out, statistics.median(walls), statistics.median(cpus)


def _ons_case(sm_windows: int, repeat: int) -> list[dict[str, Any]]:
    import statsmodels.api as sm
    from scipy import linalg

    sys.path.insert(0, str(REPO / "tests"))
    import excessmort as em
    from excessmort.baselines.ons2024 import ONS_COVID_WEEKS, Ons2024, fit_ons, ons_week_windows
    from excessmort.weeks import iso_year_week
    from test_ons2024 import _weekly

    frame = _weekly()
    fit = em.fit(
        frame,
        baseline=Ons2024(coarse_age="age_group_coarse", predict_from="2020-01-01"),
        dependence=False,
    )
    res, panel = fit.result, fit.panel
    y, wk = iso_year_week(panel.weeks)
    covid = np.array([(a, b) in set(ONS_COVID_WEEKS) for a, b in zip(y, wk, strict=True)])
    usable = panel.observed_mask & np.isfinite(panel.offset) & ~covid[None, :]
    wins = ons_week_windows(y, wk, np.asarray(panel.weeks >= np.datetime64("2020-01-01")))
    args = (res.design, panel.deaths, panel.offset, usable, wins)
    n_win = len(wins)
    batched, w_b, c_b = _timed(lambda: fit_ons(*args, batched=True, engine="numba"), repeat)
    _, w_l, c_l = _timed(lambda: fit_ons(*args, batched=False), repeat)

    S = panel.n_series
    items = sorted(wins.items())[:sm_windows]

    def sm_loop() -> list[float]:
        worst = []
        for (first, last), pred in items:
            rows = np.arange(first, last + 1)
            rows = rows[~covid[rows]]
            ss, tt = np.repeat(np.arange(S), rows.size), np.tile(rows, S)
            X = res.design.dense(ss, tt)
            _, R, piv = linalg.qr(X, mode="economic", pivoting=True)
            rank = int(np.sum(np.abs(np.diag(R)) > 1e-9 * abs(R[0, 0])))
            keep = np.sort(piv[:rank])
            m = sm.GLM(
                panel.deaths[ss, tt], X[:, keep], family=sm.families.Poisson(),
                offset=panel.offset[ss, tt],
            ).fit(scale="X2")  # fmt: skip
            t = int(pred[0])
            Xp = res.design.dense(np.arange(S), np.full(S, t))[:, keep]
            p = m.get_prediction(Xp, offset=panel.offset[:, t])
            worst.append(float(np.max(np.abs(p.predicted_mean / batched["mu"][:, t] - 1))))
        return worst

    worst, w_s, c_s = _timed(sm_loop, 1)
    n_sm = len(items)
    rows = []
    for case, wall, cpu, n in (
        ("excessmort batched (numba)", w_b, c_b, n_win),
        ("excessmort per-window loop", w_l, c_l, n_win),
        ("statsmodels GLM loop", w_s, c_s, n_sm),
    ):
        rows.append(
            {
                "baseline": "ons2024",
                "case": case,
                "units": n,
                "unit": "refit",
                "wall_s": wall,
                "cpu_s": cpu,
                "cpu_per_unit_ms": 1e3 * cpu / n,
                "ratio_vs_statsmodels": (c_s / n_sm) / (cpu / n),
                "max_rel_diff": max(worst) if case.startswith("statsmodels") else np.nan,
            }
        )
    return rows


def _series_case(baseline: str, n_series: int, repeat: int) -> list[dict[str, Any]]:
    import statsmodels.api as sm

    sys.path.insert(0, str(REPO / "tests"))
    import excessmort as em
    from _sim import simulate
    from excessmort.baselines import get_baseline
    from test_negbin import _sm_fit

    ref = ("2015-01-01", "2019-12-31")
    frame, _ = simulate(n_series=n_series, n_weeks=470, seed=5, phi=1.6, level=(30.0, 800.0))
    fit = em.fit(frame, baseline=baseline, reference=ref, dependence=False)
    panel = fit.panel
    model = get_baseline(baseline)
    res, wall, cpu = _timed(lambda: model.fit(panel, reference=ref), repeat)
    X = res.design.X

    def sm_loop() -> float:
        worst = 0.0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for s in range(panel.n_series):
                use = res.fit_mask[s]
                yv = panel.deaths[s, use]
                if baseline == "wmd":
                    m = sm.OLS(yv, X[use]).fit()
                    mu = X @ m.params
                    V = m.cov_params()
                else:
                    off = panel.offset[s, use]
                    m = _sm_fit(yv, X[use], off)  # as tests/test_negbin.py
                    mu = np.exp(X @ m.params[:-1] + panel.offset[s])
                    V = m.cov_params()[:-1, :-1]
                np.einsum("tj,jk,tk->t", X, V, X)
                worst = max(worst, float(np.nanmax(np.abs(mu / res.mu[s] - 1))))
        return worst

    worst, w_s, c_s = _timed(sm_loop, 1)
    n = panel.n_series
    return [
        {
            "baseline": baseline,
            "case": case,
            "units": n,
            "unit": "series",
            "wall_s": w,
            "cpu_s": c,
            "cpu_per_unit_ms": 1e3 * c / n,
            "ratio_vs_statsmodels": c_s / c,
            "max_rel_diff": worst if case.startswith("statsmodels") else np.nan,
        }
        for case, w, c in (("excessmort", wall, cpu), ("statsmodels loop", w_s, c_s))
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--series", type=int, default=200)
    ap.add_argument("--sm-windows", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        rows = _ons_case(a.sm_windows, a.repeat)
        rows += _series_case("wmd", a.series, a.repeat)
        rows += _series_case("negative_binomial", max(1, a.series // 4), a.repeat)
    out = a.out or REPO / "benchmarks" / "results" / f"methods_{date.today().isoformat()}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    with tmp.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    tmp.replace(out)
    for r in rows:
        print(
            f"{r['baseline']:18s} {r['case']:28s} {r['units']:5d} {r['unit']:6s} "
            f"{r['cpu_per_unit_ms']:10.2f} ms/unit  x{r['ratio_vs_statsmodels']:8.1f}  "
            f"diff {r['max_rel_diff']:.1e}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
