"""Kernel-level tests: numba vs the numpy twin on awkward inputs, status codes, no-JIT run.

Tolerance numba vs numpy: 1e-10 relative (same algorithm and stopping rule; sums may be ordered
differently). Marked ``nojit``: test_kernels_without_jit re-runs this file with NUMBA_DISABLE_JIT=1
so the kernels' Python source is executed (and covered) too.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from excessmort._kernels import irls_poisson, quad_form_rows, warmup
from excessmort._kernels.irls import STATUS_CONVERGED, STATUS_MAX_ITER, STATUS_SINGULAR

pytestmark = pytest.mark.nojit


def _design(T: int) -> np.ndarray:
    t = np.arange(T) / 52.18
    return np.column_stack([np.ones(T), t, np.sin(2 * np.pi * t), np.cos(2 * np.pi * t)])


def _awkward(seed: int = 0, T: int = 160) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = _design(T)
    levels = np.array([0.05, 0.5, 3.0, 40.0, 900.0, 25.0, 7.0, 60.0])
    mu = levels[:, None] * np.exp(0.3 * X[:, 2])[None, :]
    Y = rng.poisson(mu).astype(float)
    Y[1, ::7] = np.nan  # holes
    Y[5, :150] = np.nan  # only 10 weeks left, 8 of them in the reference: few but >= p
    Y[6, :] = np.nan  # nothing at all
    Y[7, :] = (
        0.0  # all zeros: the MLE runs to -inf, as in R it "converges" with a huge negative intercept
    )
    off = np.log(rng.uniform(1e3, 1e5, size=Y.shape))
    ref = np.arange(T) < 152
    return X, Y, off, ref


@pytest.mark.parametrize("with_offset", [True, False])
def test_numba_equals_numpy_twin_on_awkward_series(with_offset: bool) -> None:
    X, Y, off, ref = _awkward()
    offset = off if with_offset else None
    a = irls_poisson(X, Y, offset, ref, engine="numba")
    b = irls_poisson(X, Y, offset, ref, engine="numpy")
    np.testing.assert_array_equal(a["status"], b["status"])
    np.testing.assert_array_equal(a["n_iter"], b["n_iter"])
    np.testing.assert_array_equal(a["n_obs"], b["n_obs"])
    for key in ("beta", "cov", "mu", "deviance", "pearson"):
        np.testing.assert_array_equal(
            np.isnan(a[key]), np.isnan(b[key]), err_msg=key
        )  # NaN positions first
        # coefficients that are exactly 0 in theory (the all-zero series' slopes) carry ~1e-13 noise
        atol = 1e-11 if key == "beta" else 0.0
        np.testing.assert_allclose(a[key], b[key], rtol=1e-10, atol=atol, err_msg=key)
    qa = quad_form_rows(X, a["cov"], engine="numba")
    qb = quad_form_rows(X, b["cov"], engine="numpy")
    np.testing.assert_allclose(qa, qb, rtol=1e-10)


def test_status_codes() -> None:
    X, Y, off, ref = _awkward()
    out = irls_poisson(X, Y, off, ref)
    status = out["status"]
    assert status[6] == STATUS_SINGULAR and out["n_obs"][6] == 0 and np.isnan(out["mu"][6]).all()
    assert status[0] == STATUS_CONVERGED and status[4] == STATUS_CONVERGED
    assert out["n_obs"][1] == ref.sum() - np.isnan(Y[1, ref]).sum()
    limited = irls_poisson(X, Y[[4]], off[[4]], ref, max_iter=2)
    assert limited["status"][0] == STATUS_MAX_ITER and limited["n_iter"][0] == 2


def test_deviance_and_pearson_match_direct_formulas() -> None:
    X, Y, off, ref = _awkward()
    out = irls_poisson(X, Y, off, ref)
    for s in (0, 2, 3, 4):
        y, mu = Y[s, ref], out["mu"][s, ref]
        use = np.isfinite(y)
        y, mu = y[use], mu[use]
        with np.errstate(divide="ignore", invalid="ignore"):
            dev = 2 * np.sum(np.where(y > 0, y * np.log(y / mu), 0.0) - (y - mu))
        np.testing.assert_allclose(out["deviance"][s], dev, rtol=1e-9)
        np.testing.assert_allclose(out["pearson"][s], np.sum((y - mu) ** 2 / mu), rtol=1e-12)


def test_covariance_is_inverse_fisher_information_at_the_fit() -> None:
    X, Y, off, ref = _awkward()
    out = irls_poisson(X, Y, off, ref)
    s = 4
    use = ref & np.isfinite(Y[s])
    info = (X[use] * out["mu"][s, use][:, None]).T @ X[use]
    np.testing.assert_allclose(out["cov"][s] @ info, np.eye(X.shape[1]), atol=1e-9)


def test_quad_form_matches_einsum() -> None:
    rng = np.random.default_rng(1)
    X = _design(50)
    A = rng.normal(size=(3, 4, 4))
    cov = A @ A.transpose(0, 2, 1)
    np.testing.assert_allclose(
        quad_form_rows(X, cov), np.einsum("tj,sjk,tk->st", X, cov, X), rtol=1e-12
    )


def test_inputs_are_coerced_to_one_signature() -> None:
    X, Y, off, ref = _awkward()
    a = irls_poisson(
        np.asfortranarray(X), Y.astype(np.float32).astype(np.float64), off, ref.astype(int)
    )
    b = irls_poisson(X, Y, off, ref)
    np.testing.assert_array_equal(a["beta"], b["beta"])


def test_warmup_runs() -> None:
    assert warmup() >= 0.0


def test_unknown_engine_is_refused() -> None:
    X, Y, off, ref = _awkward()
    with pytest.raises(
        ValueError, match=r"engine must be one of \('auto', 'numba', 'numpy'\), got 'gpu'"
    ):
        irls_poisson(X, Y, off, ref, engine="gpu")  # type: ignore[arg-type]


@pytest.mark.skipif(
    os.environ.get("NUMBA_DISABLE_JIT") == "1", reason="this is the no-JIT run itself"
)
def test_kernels_without_jit() -> None:
    """Run this file again with NUMBA_DISABLE_JIT=1: the kernels' Python source must give the same answers."""
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(Path(__file__)),
            "-k",
            "not warmup",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout


def test_small_panels_run_the_serial_drivers_with_the_same_bits(monkeypatch) -> None:
    """Below PARALLEL_MIN_SERIES the serial drivers run (a first run compiles only those); they give
    the parallel drivers' results bit for bit, and each kernel's first call is recorded."""
    from excessmort import _kernels
    from excessmort._kernels import running_variance

    X, Y, off, ref = _awkward()
    rng = np.random.default_rng(5)
    s, rho = rng.uniform(1, 3, (Y.shape[0], 40)), rng.uniform(0, 0.3, (Y.shape[0], 3))
    a, phi = rng.uniform(0, 0.2, Y.shape[0]), rng.uniform(0.2, 0.9, Y.shape[0])
    assert Y.shape[0] < _kernels.PARALLEL_MIN_SERIES
    serial = irls_poisson(X, Y, off, ref, engine="numba")
    q_serial = quad_form_rows(X, serial["cov"], engine="numba")
    v_serial = running_variance(s, rho, a, phi, engine="numba")
    calls = _kernels.first_call_seconds()
    if _kernels.HAVE_NUMBA and os.environ.get("NUMBA_DISABLE_JIT") != "1":
        for name in (
            "irls_poisson_batched_serial",
            "quad_form_rows_serial",
            "running_variance_serial",
        ):
            assert name in calls and calls[name] >= 0.0
    monkeypatch.setattr(_kernels, "PARALLEL_MIN_SERIES", 0)
    parallel = irls_poisson(X, Y, off, ref, engine="numba")
    for key in serial:
        np.testing.assert_array_equal(serial[key], parallel[key])
    np.testing.assert_array_equal(q_serial, quad_form_rows(X, parallel["cov"], engine="numba"))
    np.testing.assert_array_equal(v_serial, running_variance(s, rho, a, phi, engine="numba"))
