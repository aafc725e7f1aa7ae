"""The fused interval kernel (issue 18): numba against its numpy twin, thread counts, and the
interval formulas of DESIGN.md "Intervals" in closed form."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from excessmort._kernels import interval_columns
from excessmort._kernels.intervals import COLUMNS, N_COLUMNS

Z = float(stats.norm.ppf(0.975))


def _rows(seed: int = 0, n_rows: int = 7, n_weeks: int = 53) -> dict[str, np.ndarray]:
    """Rows with the awkward cases: NaN observed and expected, mu = 0, lower bounds below 0."""
    rng = np.random.default_rng(seed)
    mu = rng.uniform(0.2, 80.0, (n_rows, n_weeks))
    mu[0, :5] = [0.0, np.nan, 0.05, 1e-3, np.inf]
    y = rng.poisson(np.nan_to_num(mu, posinf=1.0)).astype(np.float64)
    y[1, :4] = [np.nan, 0.0, 3.0, np.nan]
    q = rng.uniform(1e-4, 5e-2, (n_rows, n_weeks))
    q[2, 0] = np.nan
    phi = rng.uniform(1.0, 3.0, n_rows)
    return {"y": y, "mu": mu, "q": q, "phi": phi}


def _closed_form(y, mu, ov, pv):
    """DESIGN.md "Intervals" written out, one formula per column."""
    with np.errstate(invalid="ignore", divide="ignore"):
        se = np.sqrt(pv) / mu
        sd = np.sqrt(ov + pv)
        lo, hi = np.maximum(mu - Z * sd, 0.0), mu + Z * sd
        cols = {
            "expected_lower": mu * np.exp(-Z * se),
            "expected_upper": mu * np.exp(Z * se),
            "prediction_lower": lo,
            "prediction_upper": hi,
            "excess": y - mu,
            "excess_lower": y - hi,
            "excess_upper": y - lo,
            "z_score": (y - mu) / sd,
            "p_score": 100.0 * (y - mu) / mu,
            "ratio": np.where(mu > 0, y / mu, np.nan),
            "ratio_lower": np.where(hi > 0, y / hi, np.nan),
            "ratio_upper": np.where(
                lo > 0, y / lo, np.where(np.isfinite(lo) & np.isfinite(y), np.inf, np.nan)
            ),
        }
    return {k: v.reshape(-1) for k, v in cols.items()}


def _assert_columns(got: np.ndarray, want: np.ndarray, rtol: float) -> None:
    assert got.shape == want.shape
    for k, name in enumerate(COLUMNS):
        np.testing.assert_array_equal(np.isnan(got[k]), np.isnan(want[k]), err_msg=name)
        np.testing.assert_allclose(got[k], want[k], rtol=rtol, atol=0, err_msg=name)


@pytest.mark.parametrize("mu2", [True, False], ids=["glm_scaled", "plain"])
def test_kernel_matches_numpy_twin(mu2: bool) -> None:
    r = _rows()
    pv = r["q"] if mu2 else r["q"] * r["mu"] ** 2
    args = (r["y"], r["mu"], r["mu"], pv, Z)
    scales = {"obs_scale": r["phi"], "param_scale": r["phi"], "param_mu2": mu2}
    got = interval_columns(*args, **scales, engine="numba")
    ref = interval_columns(*args, **scales, engine="numpy")
    assert got.shape == (N_COLUMNS, r["mu"].size)
    _assert_columns(got, ref, rtol=1e-12)


@pytest.mark.parametrize("engine", ["numba", "numpy"])
def test_kernel_is_the_closed_form(engine: str) -> None:
    r = _rows(1)
    ov = r["phi"][:, None] * r["mu"]
    pv = r["phi"][:, None] * r["mu"] ** 2 * r["q"]
    got = interval_columns(r["y"], r["mu"], ov, pv, Z, engine=engine)
    want = _closed_form(r["y"], r["mu"], ov, pv)
    _assert_columns(got, np.stack([want[c] for c in COLUMNS]), rtol=1e-13)
    # the edge rows, by hand: mu = 0 has no ratio; a lower bound clipped at 0 gives an inf ratio bound
    k = {c: i for i, c in enumerate(COLUMNS)}
    assert np.isnan(got[k["ratio"], 0]) and got[k["prediction_lower"], 0] == 0.0
    assert got[k["ratio_upper"], 0] == np.inf or np.isnan(r["y"][0, 0])
    assert np.isnan(got[:, 1]).all()  # mu NaN: every column NaN


def test_kernel_thread_count_is_bitwise() -> None:
    numba = pytest.importorskip("numba")
    r = _rows(2, n_rows=40)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = interval_columns(r["y"], r["mu"], r["mu"], r["q"], Z, obs_scale=r["phi"],
                               param_scale=r["phi"], param_mu2=True, engine="numba")  # fmt: skip
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = interval_columns(r["y"], r["mu"], r["mu"], r["q"], Z, obs_scale=r["phi"],
                               param_scale=r["phi"], param_mu2=True, engine="numba")  # fmt: skip
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(one, two)


def test_empty_rows() -> None:
    empty = np.empty((0, 5))
    for engine in ("numba", "numpy"):
        out = interval_columns(empty, empty, empty, empty, Z, engine=engine)
        assert out.shape == (N_COLUMNS, 0)
