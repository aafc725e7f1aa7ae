"""The pooled baseline at the producer's scale, against statsmodels (dense) and glum (tabmat).

``python -m benchmarks.bench_pooled [--quick] [--out FILE]``

Workload (issue 9): 150 local authorities x 2 sexes x 20 age groups x 261 weeks (2015-2019, all
reference), about 1.57 million stratum-weeks, the producer's default terms
``trend + seasonality:age_group + holidays + sex:age_group + local_authority`` (p = 459 columns,
rank 438), population offset, negative-binomial counts (variance 1.3 mu) drawn from a model of the
same form. ``--quick``: 15 local authorities (156,600 rows) instead of 150.

Every case runs in its own fresh process (so its peak RSS is its own): the seeded data are drawn
and the case's inputs prepared (not timed), the peak-RSS counter is reset
(``/proc/self/clear_refs``), the fit is timed, and the peak RSS (VmHWM) of that call is read. All
processes get 2 threads (``NUMBA_NUM_THREADS``, ``OMP/MKL/OPENBLAS_NUM_THREADS``): the whole
machine for every library.

Cases (each gives expected deaths mu for every row):

- ``excessmort``: ``Pooled(terms).fit(panel)`` (numba), from the [S, T] panel arrays: structured
  design, IRLS, aliasing, covariance, mu. ``first_s`` is the first call in a fresh process (kernels
  loaded from numba's cache, compiled when the cache is empty); ``warm_s`` the median of 3 more.
- ``excessmort-tol1e-10``: the same with ``tol=1e-10`` instead of R's 1e-8 (the relative
  deviance change at which ``glm.fit`` stops), to show that the 1e-7 gap to statsmodels is R's
  stopping rule, not a different answer.
- ``excessmort-numpy``: the same with ``engine="numpy"`` (the numpy twin of the kernels).
- ``glum``: ``GeneralizedLinearRegressor(family="poisson", alpha=0)`` on a tabmat ``SplitMatrix``
  (dense trend + holidays, categorical local authority and sex x age group with the first level
  dropped, sparse month-weight x age-group block without month 12: the same column space, full
  rank), ``gradient_tol=1e-10``; timed: building the SplitMatrix, fit, predict.
- ``statsmodels``: ``GLM(Poisson, offset).fit(scale="X2")`` (IRLS, default tol 1e-8) on the dense
  design without the aliased columns; timed: fit and predict (building the dense design is not
  timed). At full scale the dense design alone is 1.57M x 438 x 8 B = 5.5 GB and statsmodels'
  IRLS holds several more copies (weighted design, its QR/pinv workspace): it does not fit in this
  24 GB machine; even 15 local authorities (156,600 x 283) took 559 s. So statsmodels runs on a
  subset of 3 local authorities (31,320 rows x 271 columns), where excessmort and glum run too,
  and the speed-up against statsmodels is measured there.

Equal work: the maximum relative difference of mu against statsmodels (subset) and against
excessmort (full scale), over every row.

Writes ``benchmarks/results/pooled_<date>.csv`` (one row per case, with machine, versions, git SHA
and date) and prints a table.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TERMS = "trend + seasonality:age_group + holidays + sex:age_group + local_authority"
N_SEX, N_AGE, N_WEEKS = 2, 20, 261
THREADS = 2
#: Local authorities of the subset on which statsmodels runs (and the others, for the ratio).
SUBSET_LAS = 3


# ------------------------------------------------------------------------------------------ data
def make_panel(n_la: int, seed: int = 2024) -> Any:
    """Seeded panel: n_la x 2 x 20 series x 261 weeks, counts from a pooled model, population."""
    import pandas as pd

    from excessmort.calendar_terms import holiday_indicators, month_weights, trend_term
    from excessmort.panel import Panel

    rng = np.random.default_rng(seed)
    weeks = pd.date_range("2015-01-02", periods=N_WEEKS, freq="7D")
    trend = trend_term(weeks)[0][:, 0]
    months = month_weights(weeks)[0]
    hol = holiday_indicators(weeks)[0]
    la, sex, age = np.meshgrid(np.arange(n_la), np.arange(N_SEX), np.arange(N_AGE), indexing="ij")
    la, sex, age = la.ravel(), sex.ravel(), age.ravel()
    n_series = la.size
    la_eff = rng.normal(0.0, 0.15, n_la)
    age_eff = np.linspace(-11.0, -4.0, N_AGE)
    sex_eff = np.where(sex == 1, 0.12, 0.0)
    amp = np.linspace(0.02, 0.3, N_AGE)
    season = np.cos(2 * np.pi * (np.arange(12) - 0.5) / 12.0)  # winter peak
    hol_eff = np.array([-0.1, 0.12, 0.03, -0.04, 0.02, -0.15, 0.1, 0.03])
    pop = np.exp(rng.uniform(np.log(2e3), np.log(6e4), n_series))
    log_mu = (
        np.log(pop)[:, None]
        + (age_eff[age] + sex_eff + la_eff[la])[:, None]
        - 0.01 * trend[None, :]
        + amp[age][:, None] * (months @ season)[None, :]
        + (hol @ hol_eff)[None, :]
    )
    mu = np.exp(log_mu)
    phi = 1.3
    size = mu / (phi - 1.0)
    deaths = rng.negative_binomial(size, size / (size + mu)).astype(np.float64)
    keys = pd.DataFrame(
        {
            "local_authority": pd.Categorical([f"LA{k:03d}" for k in la]),
            "sex": pd.Categorical(np.where(sex == 0, "F", "M")),
            "age_group": pd.Categorical([f"age{a:02d}" for a in age]),
        }
    )
    exposure = np.ascontiguousarray(np.repeat(pop[:, None], N_WEEKS, axis=1))
    return Panel(keys=keys, weeks=weeks, deaths=np.ascontiguousarray(deaths), exposure=exposure)


REFERENCE = ("2015-01-01", "2019-12-31")


# ------------------------------------------------------------------------------------------ cases
def _peak_reset() -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def _case_excessmort(panel: Any, engine: str, repeats: int, tol: float = 1e-8) -> dict[str, Any]:
    from excessmort.baselines.pooled import Pooled

    model = Pooled(terms=TERMS, tol=tol)
    _peak_reset()
    t0 = time.perf_counter()
    res = model.fit(panel, reference=REFERENCE, engine=engine)
    first = time.perf_counter() - t0
    peak = _peak_mb()
    warm = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.fit(panel, reference=REFERENCE, engine=engine)
        warm.append(time.perf_counter() - t0)
    m = res.info["model"]
    return {
        "first_s": first,
        "warm_s": statistics.median(warm) if warm else float("nan"),
        "peak_mb": peak,
        "mu": res.mu.ravel(),
        "p": m["n_terms"],
        "rank": m["rank"],
        "n_iter": int(res.n_iter[0]),
        "converged": bool(res.converged.all()),
    }


def _design_parts(panel: Any) -> tuple[Any, ...]:
    from excessmort.calendar_terms import holiday_indicators, month_weights, trend_term

    n_series, n_weeks = panel.deaths.shape
    weeks = panel.weeks
    dense = np.column_stack([trend_term(weeks)[0], holiday_indicators(weeks)[0]])
    dense = np.tile(dense, (n_series, 1))
    codes = {c: panel.keys[c].cat.codes.to_numpy().astype(np.int64) for c in panel.strata}
    la = np.repeat(codes["local_authority"], n_weeks)
    sexage = np.repeat(codes["age_group"] * N_SEX + codes["sex"], n_weeks)
    age = np.repeat(codes["age_group"], n_weeks)
    months = np.tile(month_weights(weeks)[0][:, :11], (n_series, 1))  # month 12 aliased
    return dense, la, sexage, age, months


def _case_glum(panel: Any) -> dict[str, Any]:
    import pandas as pd
    import tabmat
    from glum import GeneralizedLinearRegressor
    from scipy import sparse

    dense, la, sexage, age, months = _design_parts(panel)
    n_rows = dense.shape[0]
    y = panel.deaths.ravel()
    off = panel.offset.ravel()
    n_la = int(la.max()) + 1
    _peak_reset()
    t0 = time.perf_counter()
    rows = np.repeat(np.arange(n_rows), 11)
    cols = (age[:, None] * 11 + np.arange(11)[None, :]).ravel()
    vals = months.ravel()
    nz = vals != 0.0
    month_age = sparse.csc_matrix((vals[nz], (rows[nz], cols[nz])), shape=(n_rows, 11 * N_AGE))
    X = tabmat.SplitMatrix(
        [
            tabmat.DenseMatrix(dense),
            tabmat.CategoricalMatrix(
                pd.Categorical.from_codes(la, categories=[f"LA{k:03d}" for k in range(n_la)]),
                drop_first=True,
            ),
            tabmat.CategoricalMatrix(
                pd.Categorical.from_codes(sexage, categories=[f"sa{k}" for k in range(2 * N_AGE)]),
                drop_first=True,
            ),
            tabmat.SparseMatrix(month_age),
        ]
    )
    model = GeneralizedLinearRegressor(
        family="poisson", alpha=0.0, fit_intercept=True, gradient_tol=1e-10, max_iter=200
    )
    model.fit(X, y, offset=off)
    mu = model.predict(X, offset=off)
    elapsed = time.perf_counter() - t0
    return {
        "first_s": elapsed,
        "warm_s": float("nan"),
        "peak_mb": _peak_mb(),
        "mu": np.asarray(mu),
        "p": X.shape[1] + 1,
        "rank": X.shape[1] + 1,
        "n_iter": int(model.n_iter_),
        "converged": bool(model.n_iter_ < 200),
    }


def _case_statsmodels(panel: Any) -> dict[str, Any]:
    import statsmodels.api as sm

    from excessmort.baselines.pooled import Pooled, build_pooled_design

    model = Pooled(terms=TERMS)
    terms, _ = model.resolve_terms(panel.strata)
    design = build_pooled_design(panel.keys, panel.weeks, terms)
    # R's kept columns (found by the engine's column-order pivoting) for a full-rank dense design
    res = model.fit(panel, reference=REFERENCE)
    X = design.dense()[:, ~res.aliased]
    del res
    y = panel.deaths.ravel()
    off = panel.offset.ravel()
    _peak_reset()
    t0 = time.perf_counter()
    fit = sm.GLM(y, X, family=sm.families.Poisson(), offset=off).fit(scale="X2")
    mu = fit.predict(X, offset=off)
    elapsed = time.perf_counter() - t0
    return {
        "first_s": elapsed,
        "warm_s": float("nan"),
        "peak_mb": _peak_mb(),
        "mu": np.asarray(mu),
        "p": X.shape[1],
        "rank": X.shape[1],
        "n_iter": int(fit.fit_history["iteration"]),
        "converged": bool(fit.fit_history["iteration"] < 100),
    }


def worker(case: str, n_la: int, out: Path, repeats: int) -> None:
    """Run one case in this process; write its figures (json) and mu (npy) next to ``out``."""
    panel = make_panel(n_la)
    if case == "excessmort":
        r = _case_excessmort(panel, "numba", repeats)
    elif case == "excessmort-tol1e-10":
        r = _case_excessmort(panel, "numba", repeats, tol=1e-10)
    elif case == "excessmort-numpy":
        r = _case_excessmort(panel, "numpy", 0)
    elif case == "glum":
        r = _case_glum(panel)
    elif case == "statsmodels":
        r = _case_statsmodels(panel)
    else:
        raise SystemExit(f"unknown case {case!r}")
    np.save(out.with_suffix(".npy"), r.pop("mu"))
    r["n_rows"] = int(panel.deaths.size)
    r["n_series"] = int(panel.n_series)
    out.write_text(json.dumps(r))


# ------------------------------------------------------------------------------------------ parent
def _run_case(case: str, n_la: int, tmp: Path, repeats: int) -> dict[str, Any]:
    sys.path.insert(0, str(REPO))
    from benchmarks.machine import child_env

    env = child_env(threads=THREADS, cache_dir=None, src=REPO / "src")
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[k] = str(THREADS)
    out = tmp / f"{case}-{n_la}.json"
    cmd = [sys.executable, "-m", "benchmarks.bench_pooled", "--worker", case, "--las", str(n_la),
           "--result", str(out), "--repeats", str(repeats)]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        return {
            "case": case,
            "n_la": n_la,
            "error": proc.stderr.strip().splitlines()[-1:],
            "wall_s": wall,
        }
    r = json.loads(out.read_text())
    r.update(case=case, n_la=n_la, process_wall_s=wall, mu_file=str(out.with_suffix(".npy")))
    return r


def _max_rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b) / np.abs(b)))


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (parent) or one case (``--worker``)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="15 local authorities instead of 150")
    ap.add_argument("--out", type=Path, default=None, help="results CSV path")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--las", type=int, default=150, help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--repeats", type=int, default=3, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.worker, args.las, args.result, args.repeats)
        return 0

    sys.path.insert(0, str(REPO))
    from benchmarks.machine import git_info, machine_info, now, versions

    full, subset = (15, SUBSET_LAS) if args.quick else (150, SUBSET_LAS)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        plan = [("excessmort", subset), ("excessmort-tol1e-10", subset),
                ("excessmort-numpy", subset), ("glum", subset),
                ("statsmodels", subset)]  # fmt: skip
        if full != subset:
            plan += [("excessmort", full), ("excessmort-numpy", full), ("glum", full)]
        for case, n_la in plan:
            print(f"running {case} at {n_la} local authorities ...", flush=True)
            rows.append(_run_case(case, n_la, tmp, 3))
        mus = {(r["case"], r["n_la"]): np.load(r["mu_file"]) for r in rows if "mu_file" in r}
        for r in rows:
            key = (r["case"], r["n_la"])
            if key not in mus:
                continue
            sm_mu = mus.get(("statsmodels", r["n_la"]))
            em_mu = mus.get(("excessmort", r["n_la"]))
            r["max_rel_diff_vs_statsmodels"] = (
                _max_rel(mus[key], sm_mu) if sm_mu is not None else ""
            )
            r["max_rel_diff_vs_excessmort"] = _max_rel(mus[key], em_mu) if em_mu is not None else ""
        # speed-ups against excessmort (warm) at the same size
        for r in rows:
            if r["case"] == "excessmort":
                continue
            ref = next(
                (x for x in rows if x["case"] == "excessmort" and x["n_la"] == r["n_la"]), None
            )
            if ref and "first_s" in r and "warm_s" in ref:
                r["excessmort_speedup_warm"] = r["first_s"] / ref["warm_s"]
                r["excessmort_speedup_first"] = r["first_s"] / ref["first_s"]

    meta = {"date": now(), **machine_info(), **versions(), **git_info(), "threads": THREADS}
    fields = ["case", "n_la", "n_series", "n_rows", "p", "rank", "first_s", "warm_s", "peak_mb",
              "n_iter", "converged", "max_rel_diff_vs_statsmodels", "max_rel_diff_vs_excessmort",
              "excessmort_speedup_warm", "excessmort_speedup_first", "process_wall_s",
              "error"]  # fmt: skip
    out = args.out or REPO / "benchmarks" / "results" / f"pooled_{meta['date'][:10]}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_suffix(".csv.tmp")
    with tmp_out.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields + list(meta), extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({**{k: r.get(k, "") for k in fields}, **meta})
    os.replace(tmp_out, out)

    def fmt(v: Any, spec: str) -> str:
        return format(v, spec) if isinstance(v, int | float) and v == v else "-"

    print(f"\n{meta['cpu']}, {meta['cores']} cores, {meta['mem_gb']} GB; {THREADS} threads; "
          f"git {meta['git_sha']}; {meta['date']}")  # fmt: skip
    head = (f"{'case':<20}{'LAs':>5}{'rows':>10}{'p':>5}{'first s':>9}{'warm s':>8}{'peak MB':>9}"
            f"{'iter':>5}{'x excessmort':>13}{'mu vs sm':>10}{'mu vs em':>10}")  # fmt: skip
    print(head)
    print("-" * len(head))
    for r in rows:
        if "error" in r:
            print(f"{r['case']:<20}{r['n_la']:>5}  failed: {r['error']}")
            continue
        print(f"{r['case']:<20}{r['n_la']:>5}{r['n_rows']:>10,}{r['p']:>5}"
              f"{fmt(r['first_s'], '9.2f')}{fmt(r['warm_s'], '8.2f')}{fmt(r['peak_mb'], '9.0f')}"
              f"{r['n_iter']:>5}"
              f"{fmt(r.get('excessmort_speedup_warm'), '13.1f')}"
              f"{fmt(r.get('max_rel_diff_vs_statsmodels'), '10.1e')}"
              f"{fmt(r.get('max_rel_diff_vs_excessmort'), '10.1e')}")  # fmt: skip
    print(f"\nwrote {out}")
    print(
        "x excessmort: the case's time / excessmort's warm time at the same size; "
        f"statsmodels runs only on the {SUBSET_LAS}-LA subset (the full dense design does not fit)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
