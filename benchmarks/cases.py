"""The benchmark cases: what each engine computes, on the same synthetic panel.

Every case does the same work for the series it times: fit the Poisson log-link GLM (quasi-Poisson
dispersion) on the reference weeks, then give expected deaths and the standard error of log expected
deaths for *every* week (statsmodels ``fit`` + ``get_prediction``). A case is prepared once per
process (``prepare``), then ``run()`` is timed; ``check(out)`` turns what ``run()`` returned into
the equal-work figures (expected deaths of the equal-work sample, non-converged count, IRLS
iterations).

Cases
-----
excessmort.kernels
    ``irls_poisson`` + ``quad_form_rows`` (numba), all series: the core of the engine.
excessmort.fit
    The library path of ``fit()`` after the input frame is validated and pivoted: ``Panel`` ->
    ``QuasiPoisson.fit`` -> ``Fit`` weekly interval arrays (expected, prediction and excess bounds,
    z, P) and the cumulative excess (g'Vg) per series. "One fit call with all intervals" (issue 3).
excessmort.fit_frame
    ``excessmort.fit(frame)`` from the tidy long frame + ``.weekly`` + ``.cumulative()`` (frames in,
    frames out; validation included). Only on the monthly batch (W1).
excessmort.user_path
    The end-to-end user path (issue 18): ``excessmort.fit(frame).weekly`` from a long frame with
    plain string keys (``area`` x ``age_group``, object columns as read from a CSV; one row per
    series and week), frames in and the weekly frame (every interval column) out.
statsmodels.user_loop
    The same work the way a user would write it with statsmodels, timed the same way (frames on
    both sides): ``groupby`` the long frame by series, per series ``GLM(...).fit(scale="X2")`` +
    ``get_prediction``, the nine weekly columns (expected and its bounds, excess and its bounds,
    z, P) built per series, and one ``concat``.
excessmort.sums / excessmort.sums_dependence
    The sums a producer publishes from one fitted panel (the fit is prepared, not timed): every
    series' cumulative excess over the weeks after the reference, the nine "regions" (series
    s % 9) and their total through ``by()``, and the regions' running cumulative paths, with
    ``dependence=False`` (independence: sum phi mu + g'Vg) and with the default residual-dependence
    model. The ratio of the second to the first is the cost of honest intervals for sums.
numpy.batched
    The plain-numpy batched IRLS (``engine="numpy"``: einsum + solve), the engine's own twin.
statsmodels.loop
    ``GLM(Poisson, offset).fit(scale="X2")`` + ``get_prediction(which="linear")``, one series at
    a time.
glum.loop
    ``GeneralizedLinearRegressor(family="poisson", alpha=0)`` + ``predict`` + ``covariance_matrix``
    (non-robust) and x'Vx, one series at a time.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._data import UNIQUE, SyntheticPanel

__all__ = [
    "CASES",
    "EXCESSMORT_CASES",
    "Prepared",
    "available",
    "equal_work_sample",
    "irls_flops",
    "prepare",
    "statsmodels_expected",
]

EXCESSMORT_CASES = (
    "excessmort.kernels",
    "excessmort.fit",
    "excessmort.fit_frame",
    "excessmort.user_path",
    "excessmort.sums",
    "excessmort.sums_dependence",
)
COMPETITORS = ("numpy.batched", "statsmodels.loop", "glum.loop", "statsmodels.user_loop")
CASES = EXCESSMORT_CASES + COMPETITORS


@dataclass
class Prepared:
    """A case ready to time: ``run()`` does the work for ``n_timed`` series."""

    run: Callable[[], Any]
    check: Callable[[Any], dict[str, Any]]
    n_timed: int
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def available(case: str) -> str | None:
    """None when the case can run here, else the reason it cannot."""
    if case == "glum.loop" and importlib.util.find_spec("glum") is None:
        return "not available: glum is not installed (pip install excessmort[bench])"
    if case == "statsmodels.loop" and importlib.util.find_spec("statsmodels") is None:
        return "not available: statsmodels is not installed"
    if case == "excessmort.fit_frame" and importlib.util.find_spec("excessmort.io") is None:
        return "not available: excessmort.io (read) has not landed"
    return None


def frame_bytes(frame: Any) -> int:
    """Bytes a frame holds, each shared buffer counted once (``memory_usage`` counts a column
    per column, so columns sharing one array would count it twice)."""
    import pandas as pd

    seen: set[tuple[int, int]] = set()
    total = int(frame.index.memory_usage(deep=False))
    for name in frame.columns:
        column = frame[name]
        data = None
        if isinstance(column.dtype, np.dtype):  # numpy-backed: float, int, bool, datetime64
            data = column.to_numpy(copy=False)
        elif isinstance(column.dtype, pd.CategoricalDtype):
            total += int(column.cat.categories.memory_usage(deep=False))
            data = column.cat.codes.to_numpy(copy=False)
        if isinstance(data, np.ndarray):
            key = (data.__array_interface__["data"][0], data.nbytes)
            if key not in seen:
                seen.add(key)
                total += int(data.nbytes)
            continue
        total += int(column.memory_usage(index=False, deep=False))
    return total


def equal_work_sample(n_series: int, k: int) -> np.ndarray:
    """k distinct series spread over the panel's unique block (fixed: every case uses the same)."""
    n = min(n_series, UNIQUE)
    return np.unique(np.linspace(0, n - 1, min(k, n)).round().astype(np.int64))


def irls_flops(n_iter: np.ndarray, n_weeks: int, n_ref: int, p: int) -> float:
    """Floating-point operations of the IRLS + variance pass, counted as the kernel does them.

    Per series, with n_iter iterations, T weeks, T_ref fitted weeks and p terms (one multiply-add =
    2 flops; exp and log count 1):

    - each iteration: X'WX lower triangle and X'Wz on the fitted weeks, T_ref (p^2 + 4p + 6)
      (p(p+1) for the triangle, p for x w, 2p for b, 6 for the working response and deviance),
      and the linear predictor for every week, T (2p + 1);
    - after convergence: X'WX and Pearson chi2 again, T_ref (p^2 + p + 3), the final linear
      predictor T (2p + 1), and the variance pass x_t' C x_t for every week, T (2p^2 + 2p);
    - the Cholesky factor and inverse (~ p^3) are left out (p = 6: under 1 %).
    """
    it = float(np.sum(n_iter))
    s = float(np.size(n_iter))
    per_iter = n_ref * (p * p + 4 * p + 6) + n_weeks * (2 * p + 1)
    tail = n_ref * (p * p + p + 3) + n_weeks * (2 * p + 1) + n_weeks * (2 * p * p + 2 * p)
    return it * per_iter + s * tail


def _sample_panel(panel: SyntheticPanel, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    Y = np.ascontiguousarray(panel.deaths[idx])
    off = None if panel.offset is None else np.ascontiguousarray(panel.offset[idx])
    return Y, off


def statsmodels_expected(panel: SyntheticPanel, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """statsmodels' expected deaths and se of log expected, every week, for the series ``idx``."""
    import statsmodels.api as sm

    X, ref = panel.X, panel.ref
    family = sm.families.Poisson()
    mu = np.empty((idx.size, panel.n_weeks))
    se = np.empty_like(mu)
    for i, s in enumerate(idx):
        y = panel.deaths[s]
        off = None if panel.offset is None else panel.offset[s]
        res = sm.GLM(y[ref], X[ref], family=family, offset=None if off is None else off[ref]).fit(
            scale="X2"
        )
        pred = res.get_prediction(X, offset=off, which="linear")
        mu[i] = np.exp(pred.predicted)
        se[i] = pred.se
    return mu, se


def _finish(
    mu_sample: np.ndarray, status: np.ndarray | None, n_iter: np.ndarray | None
) -> dict[str, Any]:
    out: dict[str, Any] = {"expected_sample": mu_sample}
    if status is not None:
        out["nonconverged"] = int(np.sum(np.asarray(status) != 0))
    if n_iter is not None:
        out["n_iter"] = np.asarray(n_iter)
    return out


def prepare(
    case: str, panel: SyntheticPanel, *, sample: int, equal_idx: np.ndarray, threads: int
) -> Prepared:
    """Build the timed callable of ``case`` on ``panel``.

    Parameters
    ----------
    case : str
        One of :data:`CASES`.
    panel : SyntheticPanel
    sample : int
        Series timed by the per-series competitors (statsmodels, glum, numpy); excessmort cases time
        every series.
    equal_idx : ndarray
        Series whose expected deaths are compared with statsmodels.
    threads : int
        Recorded only; numba reads ``NUMBA_NUM_THREADS`` from the environment at start-up.
    """
    X, ref = panel.X, panel.ref
    S = panel.n_series
    if case == "excessmort.kernels":
        from excessmort._kernels import irls_poisson, quad_form_rows

        def run() -> Any:
            out = irls_poisson(X, panel.deaths, panel.offset, ref, engine="numba")
            out["q"] = quad_form_rows(X, out["cov"], engine="numba")
            return out

        def check(out: Any) -> dict[str, Any]:
            return _finish(out["mu"][equal_idx], out["status"], out["n_iter"])

        return Prepared(run, check, S)

    if case == "excessmort.fit":
        import pandas as pd

        from excessmort._fit import Fit
        from excessmort.baselines.glm import QuasiPoisson
        from excessmort.panel import Panel

        keys = panel.keys if panel.keys is not None else pd.DataFrame({"series": np.arange(S)})
        reference = panel.reference
        post = (
            (panel.weeks[~ref][0], panel.weeks[-1])
            if (~ref).any()
            else (panel.weeks[0], panel.weeks[-1])
        )

        def run() -> Any:
            pnl = Panel(
                keys=keys, weeks=panel.weeks, deaths=panel.deaths, exposure=panel.population
            )
            model = QuasiPoisson()
            result = model.fit(pnl, reference=reference, engine="numba")
            f = Fit(panel=pnl, result=result, model=model, reference=reference, level=0.95)
            weekly = f._weekly_arrays if hasattr(f, "_weekly_arrays") else f.weekly
            cumulative = f.cumulative(*post)
            return result, weekly, cumulative

        def check(out: Any) -> dict[str, Any]:
            result = out[0]
            status = ~np.asarray(result.converged)
            return _finish(np.asarray(result.mu)[equal_idx], status, result.n_iter)

        return Prepared(
            run,
            check,
            S,
            note="Panel -> QuasiPoisson.fit -> weekly intervals + cumulative (arrays)",
        )

    if case in ("excessmort.sums", "excessmort.sums_dependence"):
        import pandas as pd

        from excessmort._fit import Fit
        from excessmort.baselines.glm import QuasiPoisson
        from excessmort.panel import Panel

        keys = pd.DataFrame(
            {"region": [f"R{s % 9}" for s in range(S)], "cell": [f"C{s // 9}" for s in range(S)]}
        ).astype("category")
        reference = panel.reference
        post = (panel.weeks[~ref][0], panel.weeks[-1])
        pnl = Panel(keys=keys, weeks=panel.weeks, deaths=panel.deaths, exposure=panel.population)
        model = QuasiPoisson()
        result = model.fit(pnl, reference=reference, engine="numba")
        dependence = case == "excessmort.sums_dependence"

        def run() -> Any:
            f = Fit(
                panel=pnl,
                result=result,
                model=model,
                reference=reference,
                level=0.95,
                dependence=dependence,
            )
            regions = f.by("region")
            return (
                f.cumulative(*post),
                regions.cumulative(*post),
                f.by().cumulative(*post),
                regions.cumulative_path(*post),
            )

        def check(out: Any) -> dict[str, Any]:
            status = ~np.asarray(result.converged)
            return _finish(np.asarray(result.mu)[equal_idx], status, result.n_iter)

        return Prepared(
            run,
            check,
            S,
            note="series, by(region), by() cumulative + by(region) path; fit not timed"
            + ("; dependence model" if dependence else "; independence"),
        )

    if case == "excessmort.fit_frame":
        import excessmort

        from ._data import monthly_batch_frame

        frame = monthly_batch_frame(panel)
        reference = tuple(str(d.date()) for d in panel.reference)
        post = (
            (panel.weeks[~ref][0], panel.weeks[-1])
            if (~ref).any()
            else (panel.weeks[0], panel.weeks[-1])
        )
        strata = list(panel.keys.columns) if panel.keys is not None else []

        def run() -> Any:
            f = excessmort.fit(frame, reference=reference, engine="numba")
            return f, f.weekly, f.cumulative(*post)

        def check(out: Any) -> dict[str, Any]:
            f, weekly, _ = out
            # Series order of the result follows the sorted strata; map back to the panel's order.
            keys = panel.keys
            assert keys is not None
            wide = weekly.pivot_table(
                index=strata, columns="week_ending", values="expected", observed=True
            )
            idx = keys.iloc[equal_idx]
            rows = wide.loc[[tuple(r) for r in idx.itertuples(index=False)]].to_numpy(
                dtype=np.float64
            )
            conv = np.asarray(f.coefficients["converged"], dtype=bool)
            return _finish(rows, ~conv, np.asarray(f.coefficients.get("n_iter", np.zeros(0))))

        return Prepared(run, check, S, note="excessmort.fit(frame) + .weekly + .cumulative()")

    if case == "excessmort.user_path":
        import excessmort

        from ._data import user_frame, user_keys

        frame = user_frame(panel, user_keys(S))
        reference = tuple(str(d.date()) for d in panel.reference)

        def run() -> Any:
            f = excessmort.fit(frame, reference=reference, engine="numba")
            return f, f.weekly

        def check(out: Any) -> dict[str, Any]:
            f, weekly = out
            T = panel.n_weeks
            # series come out sorted by (area, age_group): the panel's own order (tested here)
            first = weekly.iloc[np.arange(S) * T]
            assert (
                first["area"].astype(str).tolist() == frame["area"].iloc[np.arange(S) * T].tolist()
            )
            mu = weekly["expected"].to_numpy(dtype=np.float64).reshape(S, T)
            conv = np.asarray(f.result.converged, dtype=bool)
            out = _finish(mu[equal_idx], ~conv, np.asarray(f.result.n_iter))
            # the weekly frame's own size (its columns adopt the fit's arrays, and equal week
            # columns share one array: counted once): peak memory above it is the working
            # memory of read, fit and intervals
            out["output_bytes"] = frame_bytes(weekly)
            return out

        return Prepared(
            run,
            check,
            S,
            note="excessmort.fit(string-keyed long frame).weekly (all interval columns)",
        )

    if case == "statsmodels.user_loop":
        import pandas as pd
        import statsmodels.api as sm
        from scipy import stats

        from ._data import user_frame, user_keys

        idx = np.unique(np.concatenate([equal_sample_first(S, sample), equal_idx]))
        pos = np.searchsorted(idx, equal_idx)
        T = panel.n_weeks
        rows = (idx[:, None] * T + np.arange(T)[None, :]).reshape(-1)
        frame = user_frame(panel, user_keys(S)).iloc[rows].reset_index(drop=True)
        family = sm.families.Poisson()
        z = float(stats.norm.ppf(0.975))
        first_ref, last_ref = panel.reference

        def run() -> Any:
            out = []
            for _, g in frame.groupby(["area", "age_group"], sort=True):
                g = g.sort_values("week_ending")
                y = g["deaths"].to_numpy(dtype=np.float64)
                weeks = g["week_ending"]
                in_ref = ((weeks >= first_ref) & (weeks <= last_ref)).to_numpy()
                res = sm.GLM(y[in_ref], X[in_ref], family=family).fit(scale="X2")
                pred = res.get_prediction(X, which="linear")
                mu = np.exp(pred.predicted)
                se = pred.se
                sd = np.sqrt(res.scale * mu + (mu * se) ** 2)
                lo, hi = np.maximum(mu - z * sd, 0.0), mu + z * sd
                part = g[["area", "age_group", "week_ending"]].copy()
                part["observed"] = y
                part["expected"] = mu
                part["expected_lower"] = mu * np.exp(-z * se)
                part["expected_upper"] = mu * np.exp(z * se)
                part["excess"] = y - mu
                part["excess_lower"] = y - hi
                part["excess_upper"] = y - lo
                part["z_score"] = (y - mu) / sd
                part["p_score"] = 100.0 * (y - mu) / mu
                part["converged"] = bool(res.converged)
                out.append(part)
            return pd.concat(out, ignore_index=True)

        keys = user_keys(S)
        series_of = {
            (a, g): i for i, (a, g) in enumerate(zip(keys["area"], keys["age_group"], strict=True))
        }

        def check(weekly: Any) -> dict[str, Any]:
            # groupby sorts the string keys ('100+' before '45-64'): back to the panel's order
            heads = weekly.iloc[np.arange(idx.size) * T]
            series = np.array(
                [series_of[k] for k in zip(heads["area"], heads["age_group"], strict=True)]
            )
            order = np.argsort(series)
            assert np.array_equal(series[order], idx)
            mu = weekly["expected"].to_numpy(dtype=np.float64).reshape(idx.size, T)[order]
            conv = weekly["converged"].to_numpy(dtype=bool).reshape(idx.size, T)[order, 0]
            return _finish(mu[pos], ~conv, None)

        return Prepared(
            run,
            check,
            int(idx.size),
            note="groupby + GLM.fit + get_prediction + nine weekly columns + concat, per series",
        )

    if case == "numpy.batched":
        from excessmort._kernels import irls_poisson, quad_form_rows

        idx = np.unique(np.concatenate([np.arange(min(sample, S)), equal_idx]))
        Y, off = _sample_panel(panel, idx)
        pos = np.searchsorted(idx, equal_idx)

        def run() -> Any:
            out = irls_poisson(X, Y, off, ref, engine="numpy")
            out["q"] = quad_form_rows(X, out["cov"], engine="numpy")
            return out

        def check(out: Any) -> dict[str, Any]:
            return _finish(out["mu"][pos], out["status"], out["n_iter"])

        return Prepared(run, check, int(idx.size))

    if case == "statsmodels.loop":
        import statsmodels.api as sm

        idx = np.unique(np.concatenate([equal_sample_first(S, sample), equal_idx]))
        pos = np.searchsorted(idx, equal_idx)
        family = sm.families.Poisson()

        def run() -> Any:
            mu = np.empty((idx.size, panel.n_weeks))
            conv = np.empty(idx.size, dtype=bool)
            n_iter = np.empty(idx.size, dtype=np.int64)
            for i, s in enumerate(idx):
                y = panel.deaths[s]
                off = None if panel.offset is None else panel.offset[s]
                res = sm.GLM(
                    y[ref], X[ref], family=family, offset=None if off is None else off[ref]
                ).fit(scale="X2")
                pred = res.get_prediction(X, offset=off, which="linear")
                mu[i] = np.exp(pred.predicted)
                _ = pred.se
                conv[i] = bool(res.converged)
                n_iter[i] = int(res.fit_history["iteration"])
            return mu, conv, n_iter

        def check(out: Any) -> dict[str, Any]:
            mu, conv, n_iter = out
            return _finish(mu[pos], ~conv, n_iter)

        return Prepared(run, check, int(idx.size))

    if case == "glum.loop":
        import warnings

        from glum import GeneralizedLinearRegressor

        idx = np.unique(np.concatenate([equal_sample_first(S, sample), equal_idx]))
        pos = np.searchsorted(idx, equal_idx)
        Xr = np.ascontiguousarray(X[ref])

        def run() -> Any:
            mu = np.empty((idx.size, panel.n_weeks))
            n_iter = np.empty(idx.size, dtype=np.int64)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for i, s in enumerate(idx):
                    y = panel.deaths[s]
                    off = None if panel.offset is None else panel.offset[s]
                    model = GeneralizedLinearRegressor(
                        family="poisson",
                        alpha=0,
                        fit_intercept=False,
                        gradient_tol=1e-10,
                        scale_predictors=False,
                    )
                    off_ref = None if off is None else off[ref]
                    model.fit(Xr, y[ref], offset=off_ref)
                    mu[i] = model.predict(X, offset=off)
                    cov = model.covariance_matrix(Xr, y[ref], offset=off_ref, robust=False)
                    _ = np.einsum("tj,jk,tk->t", X, np.asarray(cov), X)
                    n_iter[i] = int(getattr(model, "n_iter_", 0))
            return mu, n_iter

        def check(out: Any) -> dict[str, Any]:
            mu, n_iter = out
            return _finish(mu[pos], None, n_iter)

        return Prepared(run, check, int(idx.size))

    raise ValueError(f"unknown case {case!r}; the cases are {CASES}")


def equal_sample_first(n_series: int, k: int) -> np.ndarray:
    """The series timed by a per-series competitor: k series spread over the unique block."""
    return equal_work_sample(n_series, k)
