"""Kernel dispatch: engine choice, dtype/contiguity coercion, and :func:`warmup`.

``engine="auto"`` uses numba when it imports, else numpy (logged once at INFO); ``"numba"`` and
``"numpy"`` force one. Inputs are coerced here with ``np.ascontiguousarray(..., dtype=float64)`` so
exactly one signature per kernel is compiled and cached.

Thread safety: when called from a thread of a ``ThreadPoolExecutor`` (a Dask threaded worker, say)
while numba's threading layer is ``workqueue``, which is not thread-safe, the serial kernels are used.

Small panels (fewer than :data:`PARALLEL_MIN_SERIES` series) also run the serial drivers: threads save
milliseconds there, and a first run on a fresh machine then compiles only the serial driver of each
kernel it calls (the parallel drivers cost about 60% more compile time). Both drivers run the same
per-series code, so the results are the same bits. Compilation is lazy and per kernel: the first
call of a kernel that numba's cache does not hold says so once per process
("compiling kernels (first run only)...") and logs what it compiled and how long it took.

Small problems do not use numba at all: with ``engine="auto"``, a call on fewer than
:data:`NUMPY_MAX_CELLS` cells (rows x weeks of its input) runs the kernel's numpy twin
(``*_ref.py``, equal to the numba kernel to 1e-12, pinned by the tests). The rule depends on the
call's shape only, never on what numba's cache holds, so the same input always takes the same path.
Loading numba and its cached kernels costs about 1.5 s per process and compiling them on a fresh
machine about 15 s, against 0.25 s for the numpy twins on the demo panel (72 series x 883 weeks);
the monthly batch on such a panel then never imports numba. ``engine="numba"`` forces the kernels.
"""

from __future__ import annotations

import logging
import threading
import time
from functools import partial
from types import SimpleNamespace
from typing import Any, NamedTuple

import numpy as np

from .._typing import BoolArray, Engine, FloatArray

__all__ = [
    "BASELINE_KERNELS",
    "DEPENDENCE_NUMBA_MIN_CELLS",
    "NUMPY_MAX_CELLS",
    "PARALLEL_MIN_SERIES",
    "SeriesRows",
    "column_totals",
    "dependence_engine",
    "dependence_sums",
    "farrington_glm",
    "first_call_seconds",
    "glm_year_fitted",
    "interval_columns",
    "irls_poisson",
    "masked_row_means",
    "ons_kernels",
    "own_column_totals",
    "own_serial_model",
    "own_year_moments",
    "quad_form_rows",
    "resolve_engine",
    "row_kernels",
    "running_variance",
    "serial_model",
    "tile",
    "warmup",
    "window_serial_total",
    "year_moments",
]

log = logging.getLogger("excessmort")
_ENGINES = ("auto", "numba", "numpy")
_warned_fallback = False


#: ``engine="auto"`` runs the numpy twin of a kernel on fewer cells (rows x weeks) than this: numba
#: is neither imported nor compiled for small problems (see the module docstring).
NUMPY_MAX_CELLS = 250_000


def __getattr__(name: str) -> Any:
    if name == "HAVE_NUMBA":  # imported on first use: small problems never import numba
        from ._jit import HAVE_NUMBA

        return HAVE_NUMBA
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _have_numba() -> bool:
    from ._jit import HAVE_NUMBA

    return HAVE_NUMBA


def resolve_engine(
    engine: str, cells: int | None = None, *, numpy_below: int = NUMPY_MAX_CELLS
) -> str:
    """Validate ``engine`` and resolve ``"auto"``; returns ``"numba"`` or ``"numpy"``.

    ``cells`` (rows x weeks of the call's input): ``"auto"`` on fewer than ``numpy_below`` cells
    (the kernel's bound: :data:`NUMPY_MAX_CELLS`, or :data:`DEPENDENCE_NUMBA_MIN_CELLS` for the
    dependence model's kernels) resolves to ``"numpy"`` without importing numba. The one
    small-problem rule of every dispatcher; it depends on the call's shape only."""
    global _warned_fallback
    if engine not in _ENGINES:
        raise ValueError(f"engine must be one of {_ENGINES}, got {engine!r}")
    if engine == "numpy" or (engine == "auto" and cells is not None and cells < numpy_below):
        return "numpy"  # without importing numba
    HAVE_NUMBA = _have_numba()
    if engine == "numba" and not HAVE_NUMBA:
        raise ImportError(
            "engine='numba' was asked for but numba does not import; use engine='numpy'"
        )
    if engine == "auto":
        if HAVE_NUMBA:
            return "numba"
        if not _warned_fallback:
            log.info("numba is not available; using the numpy engine")
            _warned_fallback = True
        return "numpy"
    return engine


def _serial_needed() -> bool:
    """True inside a non-main thread when numba's threading layer is the non-thread-safe workqueue."""
    if threading.current_thread() is threading.main_thread():
        return False
    try:
        import numba

        layer = numba.threading_layer()
    except (ValueError, ImportError):  # layer not chosen yet: be safe off the main thread
        return True
    return layer == "workqueue"


#: Panels with fewer series than this run the serial drivers (see the module docstring).
PARALLEL_MIN_SERIES = 256

_first_calls: dict[str, float] = {}
_announced = False
COMPILE_NOTICE = "compiling kernels (first run only)..."


def _pick(parallel: Any, serial: Any, n_series: int) -> Any:
    """The driver to run for ``n_series`` series from this thread."""
    if n_series < PARALLEL_MIN_SERIES or _serial_needed():
        return serial
    return parallel


def _announce() -> None:
    """Say once per process that kernels are being compiled: at INFO on the ``excessmort`` logger
    (the command line shows it), and on standard error when nobody listens to that logger but a
    person can see the output (a terminal or a notebook, :mod:`excessmort._progress`)."""
    global _announced
    if _announced:
        return
    _announced = True
    if log.isEnabledFor(logging.INFO) and log.hasHandlers():
        log.info(COMPILE_NOTICE)
        return
    from .._progress import enabled

    if enabled():
        import sys

        print(f"excessmort: {COMPILE_NOTICE}", file=sys.stderr, flush=True)


def _call(name: str, kernel: Any, *args: Any) -> Any:
    """Call ``kernel``; its first call in this process is timed (numba loads it from its cache or
    compiles it then), and a compile is announced before it starts and logged after."""
    if name in _first_calls:
        return kernel(*args)
    from ._jit import compiled_on_disk

    compiling = (
        hasattr(kernel, "signatures")  # not a plain function (no numba, NUMBA_DISABLE_JIT)
        and not kernel.signatures
        and compiled_on_disk(kernel) is not True
    )
    if compiling:
        _announce()
    start = time.perf_counter()
    out = kernel(*args)
    _first_calls[name] = seconds = time.perf_counter() - start
    if compiling:
        log.info("compiled kernel %s in %.2f s (numba caches it for the next runs)", name, seconds)
    return out


def first_call_seconds() -> dict[str, float]:
    """Seconds of each kernel's first call in this process (its load from numba's cache or its
    compilation, and that call's work), by kernel name, in call order."""
    return dict(_first_calls)


def _f64(a: Any) -> FloatArray:
    return np.ascontiguousarray(a, dtype=np.float64)


def _shared_design(
    X: FloatArray, ref: BoolArray
) -> tuple[FloatArray, FloatArray, FloatArray, np.ndarray]:
    """Xt [p, T], and on the reference weeks Xr [p, R], pair products Pr, and their indices."""
    from .irls import pair_products

    ref_idx = np.flatnonzero(ref).astype(np.int64)
    Xr = X[ref_idx]
    return (
        np.ascontiguousarray(X.T),
        np.ascontiguousarray(Xr.T),
        pair_products(Xr),
        ref_idx,
    )


def irls_poisson(
    X: FloatArray,
    Y: FloatArray,
    offset: FloatArray | None,
    ref: BoolArray,
    *,
    max_iter: int = 25,
    tol: float = 1e-8,
    engine: Engine = "auto",
) -> dict[str, np.ndarray]:
    """Poisson IRLS (log link) for every series at once.

    Parameters
    ----------
    X : ndarray [T, p]
        The shared design.
    Y : ndarray [S, T]
        Deaths; NaN weeks are left out of the fit.
    offset : ndarray [S, T] or None
        log exposure, or None for no offset.
    ref : ndarray [T] of bool
        Weeks of the reference period (the fit uses ref & observed).
    max_iter, tol : int, float
        R ``glm.control`` defaults: 25 iterations, relative deviance change 1e-8.
    engine : {"auto", "numba", "numpy"}

    Returns
    -------
    dict
        ``beta`` [S, p], ``cov`` [S, p, p] = (X'WX)^-1, ``mu`` [S, T] for every week, ``status`` [S]
        (0 converged, 1 max_iter reached, 2 singular / too few weeks), ``n_iter``, ``deviance``,
        ``pearson`` (chi2 over fitted weeks), ``n_obs`` [S].
    """
    X = _f64(X)
    Y = _f64(Y)
    n_series, n_weeks = Y.shape
    OFF = np.zeros((1, n_weeks)) if offset is None else _f64(offset)
    ref = np.ascontiguousarray(ref, dtype=np.bool_)
    if resolve_engine(engine, Y.size) == "numpy":
        from .irls_ref import irls_poisson_batched_ref

        return irls_poisson_batched_ref(X, Y, OFF, ref, max_iter, tol)
    from .irls import irls_poisson_batched, irls_poisson_batched_serial, start_tables

    p = X.shape[1]
    out = {
        "beta": np.empty((n_series, p)),
        "cov": np.empty((n_series, p, p)),
        "mu": np.empty((n_series, n_weeks)),
        "status": np.empty(n_series, dtype=np.int64),
        "n_iter": np.empty(n_series, dtype=np.int64),
        "deviance": np.empty(n_series),
        "pearson": np.empty(n_series),
        "n_obs": np.empty(n_series, dtype=np.int64),
    }
    kernel = _pick(irls_poisson_batched, irls_poisson_batched_serial, n_series)
    _call(
        "irls_poisson_batched" + ("_serial" if kernel is irls_poisson_batched_serial else ""),
        kernel,
        *_shared_design(X, ref),
        *start_tables(Y),
        Y,
        OFF,
        int(max_iter),
        float(tol),
        out["beta"],
        out["cov"],
        out["mu"],
        out["status"],
        out["n_iter"],
        out["deviance"],
        out["pearson"],
        out["n_obs"],
    )
    return out


def quad_form_rows(X: FloatArray, cov: FloatArray, *, engine: Engine = "auto") -> FloatArray:
    """x_t' cov[s] x_t for every series s and week t: [S, T]."""
    X = _f64(X)
    cov = _f64(cov)
    if resolve_engine(engine, cov.shape[0] * X.shape[0]) == "numpy":
        from .irls_ref import quad_form_rows_ref

        return quad_form_rows_ref(X, cov)
    from .irls import pair_products, quad_form_rows_serial
    from .irls import quad_form_rows as kernel

    out = np.empty((cov.shape[0], X.shape[0]))
    chosen = _pick(kernel, quad_form_rows_serial, cov.shape[0])
    tag = "_serial" if chosen is quad_form_rows_serial else ""
    _call("quad_form_rows" + tag, chosen, pair_products(X), cov, out)
    return out


def running_variance(
    s: FloatArray,
    rho: FloatArray,
    a: FloatArray,
    phi: FloatArray,
    *,
    engine: Engine = "auto",
) -> FloatArray:
    """Variance of every running sum of rows with sds ``s`` [G, W], correlation ``rho`` [G, L] at
    lags 1..L and A phi^(k-1) beyond (``a``, ``phi`` [G]): [G, W]. See :mod:`._kernels.dependence`."""
    s = _f64(s)
    rho = _f64(rho)
    a = _f64(a)
    phi = _f64(phi)
    if resolve_engine(engine, s.size) == "numpy":
        from .dependence_ref import running_variance_ref

        return running_variance_ref(s, rho, a, phi)
    from .dependence import running_variance as kernel
    from .dependence import running_variance_serial

    out = np.empty(s.shape)
    # Small problems run without threads: waking numba's pool costs more than the work (measured
    # 11 ms against 1.5 ms for 342 rows x 52 weeks on 2 loaded cores). Rows are independent, so
    # the result is the same either way (bitwise).
    small = s.size * (rho.shape[1] + 2) < _RUNNING_VARIANCE_SERIAL_OPS
    chosen = (
        running_variance_serial if small else _pick(kernel, running_variance_serial, s.shape[0])
    )
    tag = "_serial" if chosen is running_variance_serial else ""
    _call("running_variance" + tag, chosen, s, rho, a, phi, out)
    return out


#: Below this many multiply-adds (rows x weeks x (lags + 2)), :func:`running_variance` runs serially.
_RUNNING_VARIANCE_SERIAL_OPS = 20_000_000


#: ``engine="auto"``: below this many cells (rows x weeks) of a call, the dependence model's
#: dispatchers run their numpy twins (:func:`resolve_engine`'s rule with a higher bound than
#: :data:`NUMPY_MAX_CELLS`, because these kernels cost more to compile than they save below it).
#: They take milliseconds there, and a first run on small data
#: (the demo, a country's regions) then compiles none of these kernels (about 10 s on 2 cores);
#: the twins agree with the kernels to 1e-12 (tests/test_dependence_kernels.py).
DEPENDENCE_NUMBA_MIN_CELLS = 500_000


def dependence_engine(engine: str, cells: int) -> str:
    """The engine a dependence dispatcher runs for ``cells`` cells (see
    :data:`DEPENDENCE_NUMBA_MIN_CELLS`): ``"numba"`` or ``"numpy"``."""
    return resolve_engine(engine, cells, numpy_below=DEPENDENCE_NUMBA_MIN_CELLS)


def _driver(module: Any, name: str, n_rows: int) -> tuple[str, Any]:
    """(name, kernel) of ``module.name`` or its ``_serial`` twin for ``n_rows`` rows (:func:`_pick`)."""
    chosen = _pick(getattr(module, name), getattr(module, name + "_serial"), n_rows)
    return (name if chosen is getattr(module, name) else name + "_serial"), chosen


def dependence_sums(
    deaths: FloatArray,
    mu: FloatArray,
    mask: BoolArray,
    finite_mu: bool,
    obs: FloatArray | None,
    phi: FloatArray,
    q: FloatArray | None,
    groups: np.ndarray,
    n_groups: int,
    *,
    engine: Engine = "auto",
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray | None, FloatArray | None, BoolArray]:
    """The sums over each group's series of the dependence model (:mod:`.dependence`
    ``group_sums``) in one pass: (resid, obs, mu, root, fitted or None, resid_weeks). ``obs`` [S, T]
    the null variance, or None for phi mu; ``q`` [S, T] (x' (X'WX)^-1 x) gives fitted = phi mu^2 q.
    With every series its own group (numba), ``mu`` is the input itself and ``root`` None
    (sqrt(obs): :attr:`excessmort.dependence.GroupSums.root_sums`)."""
    groups = np.ascontiguousarray(groups, dtype=np.int64)
    if dependence_engine(engine, mu.size) == "numpy":
        from .dependence_ref import group_sums_ref

        obs_s = phi[:, None] * mu if obs is None else obs
        out = group_sums_ref(deaths, mu, mask, finite_mu, obs_s, groups, n_groups)
        fitted = None
        if q is not None:
            from ..baselines._util import group_sum

            keep = groups >= 0
            fitted = group_sum((phi[:, None] * mu**2 * q)[keep], groups[keep], n_groups)
        return (*out[:4], fitted, out[4])
    from . import dependence as dk

    deaths, mu = _f64(deaths), _f64(mu)
    n_series, n_weeks = mu.shape
    none = np.empty((1, 1))
    # every series its own group: the sums of mu and sqrt(obs) are those arrays (root: None)
    own_rows = n_groups == n_series and bool(np.array_equal(groups, np.arange(n_series)))
    resid, obs_out = np.zeros((n_groups, n_weeks)), np.zeros((n_groups, n_weeks))
    mu_out, root = (none, none) if own_rows else (np.zeros((n_groups, n_weeks)) for _ in range(2))
    fitted = np.zeros((n_groups, n_weeks)) if q is not None else none
    # members of each group in ascending order, the series in no group last (group n_groups)
    slot = np.where(groups >= 0, groups, n_groups)
    order = np.argsort(slot, kind="stable").astype(np.int64)
    ptr = np.r_[0, np.cumsum(np.bincount(slot, minlength=n_groups + 1))].astype(np.int64)
    n_chunks = min(n_groups + 1, 64)
    chunks = np.linspace(0, n_groups + 1, n_chunks + 1).round().astype(np.int64)
    flags = np.zeros((n_chunks, n_weeks), dtype=np.bool_)
    name, kernel = _driver(dk, "group_sums", n_series)
    _call(
        name, kernel, order, ptr, chunks, deaths, mu, np.ascontiguousarray(mask, dtype=np.bool_),
        bool(finite_mu), none if obs is None else _f64(obs), obs is None, _f64(phi),
        none if q is None else _f64(q), q is not None, resid, obs_out, mu_out, root, fitted, flags,
        own_rows,
    )  # fmt: skip
    fitted_out = fitted if q is not None else None
    if own_rows:
        return resid, obs_out, mu, None, fitted_out, np.any(flags, axis=0)
    return resid, obs_out, mu_out, root, fitted_out, np.any(flags, axis=0)


def glm_year_fitted(
    mu: FloatArray,
    X: FloatArray,
    cov: FloatArray,
    phi: FloatArray,
    year_of: np.ndarray,
    n_years: int,
    *,
    engine: Engine = "auto",
) -> FloatArray:
    """[Y, S]: phi_s g' C_s g, g = sum of mu_st x_t over the weeks of year j (``year_of`` [T], -1:
    none); numpy: one product per year."""
    year_of = np.ascontiguousarray(year_of, dtype=np.int64)
    mu, X, cov, phi = (_f64(v) for v in (mu, X, cov, phi))
    if dependence_engine(engine, mu.size) == "numpy":
        out = np.zeros((n_years, mu.shape[0]))
        for j in range(n_years):
            weeks = year_of == j
            g = mu[:, weeks] @ X[weeks]
            out[j] = phi * np.einsum("sj,sjk,sk->s", g, cov, g)
        return out
    from . import dependence as dk

    out = np.empty((n_years, mu.shape[0]))
    name, kernel = _driver(dk, "year_window_quad", mu.shape[0])
    _call(name, kernel, mu, X, cov, phi, year_of, int(n_years), out)
    return out


def serial_model(
    resid: FloatArray,
    obs: FloatArray,
    fitted: FloatArray,
    in_sample: bool,
    members: FloatArray,
    phi_sum: FloatArray,
    shared_dispersion: bool,
    basis: FloatArray,
    norm: FloatArray,
    grid: FloatArray,
    *,
    engine: Engine = "auto",
) -> tuple[FloatArray, ...]:
    """(n, c_raw, c, rho [G, L], A, phi) of the groups from their sums (:mod:`.dependence`
    ``serial_rows``)."""
    resid, obs, fitted, members, phi_sum, basis, norm, grid = (
        _f64(v) for v in (resid, obs, fitted, members, phi_sum, basis, norm, grid)
    )
    if dependence_engine(engine, resid.size) == "numpy":
        from .dependence_ref import serial_rows_ref

        return serial_rows_ref(
            resid, obs, fitted, in_sample, members, phi_sum, shared_dispersion, basis, norm, grid
        )
    from . import dependence as dk

    n_rows = resid.shape[0]
    n, c_raw, c, a, phi = (np.empty(n_rows) for _ in range(5))
    rho = np.empty((n_rows, basis.shape[1]))
    name, kernel = _driver(dk, "serial_rows", n_rows)
    _call(
        name, kernel, resid, obs, fitted, bool(in_sample), members, phi_sum,
        bool(shared_dispersion), basis, norm, grid, n, c_raw, c, rho, a, phi,
    )  # fmt: skip
    return n, c_raw, c, rho, a, phi


def year_moments(
    resid: FloatArray,
    obs: FloatArray,
    fitted: FloatArray,
    mu: FloatArray,
    in_sample: bool,
    c: FloatArray,
    rho: FloatArray,
    a: FloatArray,
    phi: FloatArray,
    pf: FloatArray,
    blocks: list[np.ndarray],
    h: FloatArray,
    year_fitted: FloatArray,
    coverage: float,
    *,
    engine: Engine = "auto",
) -> tuple[float, float]:
    """(num, den) of the year effect summed over the rows and the reference year ``blocks``
    (positions; ``year_fitted`` [J, G] the fitted variance of each block's year): :mod:`.dependence`
    ``year_rows``."""
    resid, obs, fitted, mu, c, rho, a, phi, pf, h, year_fitted = (
        _f64(v) for v in (resid, obs, fitted, mu, c, rho, a, phi, pf, h, year_fitted)
    )
    if dependence_engine(engine, resid.size) == "numpy":
        from .dependence_ref import year_moments_ref

        return year_moments_ref(
            resid, obs, fitted, mu, in_sample, c, rho, a, phi, pf, blocks, h, year_fitted,
            coverage,
        )  # fmt: skip
    from . import dependence as dk

    n_rows = resid.shape[0]
    n_blocks = len(blocks)
    pos = np.concatenate(blocks).astype(np.int64) if blocks else np.zeros(0, dtype=np.int64)
    ptr = np.r_[0, np.cumsum([b.size for b in blocks])].astype(np.int64)
    num = np.zeros((n_blocks, n_rows))
    den = np.zeros((n_blocks, n_rows))
    good = np.zeros((n_blocks, n_rows), dtype=np.bool_)
    name, kernel = _driver(dk, "year_rows", n_rows)
    _call(
        name, kernel, resid, obs, fitted, mu, bool(in_sample), c, rho, a, phi, pf, pos, ptr, h,
        year_fitted, float(coverage), num, den, good,
    )  # fmt: skip
    # summed over the rows of each block as numpy does (the same order, pairwise)
    return _block_totals(num, den, good)


def column_totals(
    resid: FloatArray,
    obs: FloatArray,
    fitted: FloatArray,
    in_sample: bool,
    c: FloatArray,
    *,
    engine: Engine = "auto",
) -> tuple[FloatArray, FloatArray]:
    """(sum_g resid [T], nansum_g c d [T]) of the groups' sums (:mod:`.dependence`)."""
    resid, obs, fitted, c = (_f64(v) for v in (resid, obs, fitted, c))
    if dependence_engine(engine, resid.size) == "numpy":
        from .dependence_ref import column_totals_ref

        return column_totals_ref(resid, obs, fitted, in_sample, c)
    from . import dependence as dk

    e_total = np.zeros(resid.shape[1])
    d_total = np.zeros(resid.shape[1])
    _call(
        "column_totals", dk.column_totals, resid, obs, fitted, bool(in_sample), c, e_total, d_total
    )
    return e_total, d_total


def window_serial_total(
    obs: FloatArray,
    extra: FloatArray | None,
    c: FloatArray,
    rho: FloatArray,
    a: FloatArray,
    phi: FloatArray,
    *,
    engine: Engine = "auto",
    scale: FloatArray | None = None,
    cols: slice | None = None,
) -> FloatArray:
    """[G]: the variance of the whole sum of rows with sds sqrt(c (obs + extra)) [G, K] (the last
    column of :func:`running_variance`, without its [G, K] output).

    With ``scale`` [G] and ``cols`` (a slice of consecutive weeks), ``obs`` is [G, T] and the
    rows' variances are scale * obs over its columns ``cols``, read in place (a per-series phi mu
    is never formed); ``extra`` must then be None."""
    if scale is not None or cols is not None:
        return _window_scaled_total(obs, scale, cols, c, rho, a, phi, engine=engine)
    obs, c, rho, a, phi = (_f64(v) for v in (obs, c, rho, a, phi))
    if dependence_engine(engine, obs.size) == "numpy":
        from .dependence_ref import running_variance_ref

        s = np.sqrt(c[:, None] * (obs if extra is None else obs + extra))
        if s.shape[1] == 0:
            return np.zeros(s.shape[0])
        return running_variance_ref(s, rho, a, phi)[:, -1]
    from . import dependence as dk

    out = np.empty(obs.shape[0])
    name, kernel = _driver(dk, "window_serial_total", obs.shape[0])
    none = np.empty((1, 1))
    extra_ = none if extra is None else _f64(extra)
    _call(name, kernel, obs, extra_, extra is not None, c, rho, a, phi, out)
    return out


class SeriesRows(NamedTuple):
    """The inputs of :func:`dependence_sums` when every series is its own group: the kernels
    ``own_*`` form each row's sums where they read them (never [S, T] sums)."""

    deaths: FloatArray
    mu: FloatArray
    #: The residual mask [S, T] (with mu finite when ``finite_mu``).
    mask: BoolArray
    finite_mu: bool
    #: The null variance [S, T], or None for phi mu.
    obs: FloatArray | None
    phi: FloatArray
    #: x' (X'WX)^-1 x [S, T] (fitted = phi mu^2 q), or None with ``fitted`` given.
    q: FloatArray | None
    fitted: FloatArray | None

    def kernel_args(self) -> tuple[Any, ...]:
        """The arrays and switches of the ``own_*`` kernels, coerced (one signature)."""
        none = np.empty((1, 1))
        return (
            _f64(self.deaths),
            _f64(self.mu),
            np.ascontiguousarray(self.mask, dtype=np.bool_),
            bool(self.finite_mu),
            none if self.obs is None else _f64(self.obs),
            self.obs is None,
            _f64(self.phi),
            none if self.q is None else _f64(self.q),
            self.q is not None,
            none if self.fitted is None else _f64(self.fitted),
        )

    def sums_ref(self) -> tuple[FloatArray, FloatArray, FloatArray, BoolArray]:
        """(resid, obs, fitted [S, T], residual weeks [T]) by the numpy twins (the previous code)."""
        from .dependence_ref import own_sums_ref

        return own_sums_ref(*self)


def _row_chunks(n_rows: int) -> np.ndarray:
    """Bounds of the chunks of rows the ``own_*`` kernels' threads take (64 at most)."""
    n_chunks = max(min(n_rows, 64), 1)
    return np.linspace(0, n_rows, n_chunks + 1).round().astype(np.int64)


def own_serial_model(
    rows: SeriesRows,
    in_sample: bool,
    shared_dispersion: bool,
    basis: FloatArray,
    norm: FloatArray,
    grid: FloatArray,
    *,
    engine: Engine = "auto",
) -> tuple[FloatArray, ...]:
    """(n, c_raw, c, rho [S, L], A, phi, residual weeks [T]) of every series its own group:
    :func:`dependence_sums` then :func:`serial_model` in one pass (:mod:`.dependence`
    ``own_serial_rows``), the same numbers."""
    basis, norm, grid = (_f64(v) for v in (basis, norm, grid))
    n_rows, n_weeks = rows.mu.shape
    if dependence_engine(engine, rows.mu.size) == "numpy":
        from .dependence_ref import serial_rows_ref

        resid, obs, fitted, resid_weeks = rows.sums_ref()
        out = serial_rows_ref(
            resid, obs, fitted, in_sample, np.ones(n_rows), _f64(rows.phi), shared_dispersion,
            basis, norm, grid,
        )  # fmt: skip
        return (*out, resid_weeks)
    from . import dependence as dk

    n, c_raw, c, a, phi = (np.empty(n_rows) for _ in range(5))
    rho = np.empty((n_rows, basis.shape[1]))
    chunks = _row_chunks(n_rows)
    flags = np.zeros((chunks.size - 1, n_weeks), dtype=np.bool_)
    name, kernel = _driver(dk, "own_serial_rows", n_rows)
    _call(
        name, kernel, chunks, *rows.kernel_args(), bool(in_sample), bool(shared_dispersion), basis,
        norm, grid, n, c_raw, c, rho, a, phi, flags,
    )  # fmt: skip
    return n, c_raw, c, rho, a, phi, np.any(flags, axis=0)


def own_year_moments(
    rows: SeriesRows,
    in_sample: bool,
    c: FloatArray,
    rho: FloatArray,
    a: FloatArray,
    phi: FloatArray,
    pf: FloatArray,
    blocks: list[np.ndarray],
    h: FloatArray,
    year_fitted: FloatArray | None,
    coverage: float,
    *,
    quad: tuple[FloatArray, FloatArray] | None = None,
    engine: Engine = "auto",
) -> tuple[float, float]:
    """:func:`year_moments` of every series its own group, from the series' arrays (at the
    blocks' weeks only: :mod:`.dependence` ``own_year_rows``). ``quad`` (X [T, p], (X'WX)^-1
    [S, p, p] of a per-series GLM) in place of ``year_fitted`` [J, S]: each block's fitted
    variance phi g' C g (:func:`glm_year_fitted` of the block's year) is formed on the way."""
    c, rho, a, phi, pf, h = (_f64(v) for v in (c, rho, a, phi, pf, h))
    n_rows = rows.mu.shape[0]
    if quad is not None:
        X, cov = _f64(quad[0]), _f64(quad[1])
        year_fitted = np.zeros((len(blocks), n_rows))
    else:
        assert year_fitted is not None
        X, cov = np.empty((1, 1)), np.empty((1, 1, 1))
        year_fitted = _f64(year_fitted)
    if dependence_engine(engine, rows.mu.size) == "numpy":
        from .dependence_ref import year_moments_ref

        if quad is not None:
            mu, phi_s = _f64(rows.mu), _f64(rows.phi)
            for j, weeks in enumerate(blocks):
                g = mu[:, weeks] @ X[weeks]
                year_fitted[j] = phi_s * np.einsum("sj,sjk,sk->s", g, cov, g)
        resid, obs, fitted, _ = rows.sums_ref()
        return year_moments_ref(
            resid, obs, fitted, _f64(rows.mu), in_sample, c, rho, a, phi, pf, blocks, h,
            year_fitted, coverage,
        )  # fmt: skip
    from . import dependence as dk

    n_blocks = len(blocks)
    pos = np.concatenate(blocks).astype(np.int64) if blocks else np.zeros(0, dtype=np.int64)
    ptr = np.r_[0, np.cumsum([b.size for b in blocks])].astype(np.int64)
    num = np.zeros((n_blocks, n_rows))
    den = np.zeros((n_blocks, n_rows))
    good = np.zeros((n_blocks, n_rows), dtype=np.bool_)
    name, kernel = _driver(dk, "own_year_rows", n_rows)
    _call(
        name, kernel, _row_chunks(n_rows), *rows.kernel_args(), bool(in_sample), c, rho, a, phi,
        pf, pos, ptr, h, year_fitted, quad is not None, X, cov, float(coverage), num, den, good,
    )  # fmt: skip
    return _block_totals(num, den, good)


def _block_totals(num: FloatArray, den: FloatArray, good: np.ndarray) -> tuple[float, float]:
    """The year moments summed over the rows of each block as numpy does (the same order)."""
    total_num = 0.0
    total_den = 0.0
    for j in range(num.shape[0]):
        total_num += float(np.sum(num[j][good[j]]))
        total_den += float(np.sum(den[j][good[j]]))
    return total_num, total_den


def own_column_totals(
    rows: SeriesRows, in_sample: bool, c: FloatArray, *, engine: Engine = "auto"
) -> tuple[FloatArray, FloatArray]:
    """:func:`column_totals` of every series its own group, from the series' arrays (threads on
    blocks of weeks, each adding the rows in order: the same sums bit for bit)."""
    c = _f64(c)
    if dependence_engine(engine, rows.mu.size) == "numpy":
        from .dependence_ref import column_totals_ref

        resid, obs, fitted, _ = rows.sums_ref()
        return column_totals_ref(resid, obs, fitted, in_sample, c)
    from . import dependence as dk

    n_rows, n_weeks = rows.mu.shape
    e_total = np.zeros(n_weeks)
    d_total = np.zeros(n_weeks)
    n_chunks = max(min(n_weeks, 2 if n_rows >= PARALLEL_MIN_SERIES else 1), 1)
    chunks = np.linspace(0, n_weeks, n_chunks + 1).round().astype(np.int64)
    name, kernel = _driver(dk, "own_column_totals", n_rows)
    _call(
        name, kernel, chunks, *rows.kernel_args(), bool(in_sample), c, e_total, d_total
    )  # fmt: skip
    return e_total, d_total


def _window_scaled_total(
    obs: FloatArray,
    scale: FloatArray | None,
    cols: slice | None,
    c: FloatArray,
    rho: FloatArray,
    a: FloatArray,
    phi: FloatArray,
    *,
    engine: Engine,
) -> FloatArray:
    """:func:`window_serial_total` of ``scale * obs[:, cols]`` without forming it."""
    n_rows, n_weeks = obs.shape
    lo, hi, step = (cols or slice(None)).indices(n_weeks)
    if step != 1:
        raise ValueError(f"cols must be a slice of consecutive weeks, got {cols!r}")
    hi = max(hi, lo)
    scale = np.ones(n_rows) if scale is None else _f64(scale)
    c, rho, a, phi = (_f64(v) for v in (c, rho, a, phi))
    if dependence_engine(engine, n_rows * (hi - lo)) == "numpy":
        return window_serial_total(
            scale[:, None] * obs[:, lo:hi], None, c, rho, a, phi, engine="numpy"
        )
    from . import dependence as dk

    out = np.empty(n_rows)
    name, kernel = _driver(dk, "window_scaled_total", n_rows)
    _call(name, kernel, _f64(obs), scale, int(lo), int(hi), c, rho, a, phi, out)
    return out


def farrington_glm(
    Y: FloatArray,
    offset: FloatArray | None,
    windows: dict[str, Any],
    *,
    trend: bool,
    reweight: bool,
    weights_threshold: float,
    b_ok: bool,
    tcrit: FloatArray,
    max_iter: int = 25,
    tol: float = 1e-8,
    engine: Engine = "auto",
) -> FloatArray:
    """Every rolling refit of R ``farringtonFlexible``: [S, K, N_OUT] (see ``farrington.py``).

    ``windows`` is :func:`excessmort.baselines.farrington.farrington_windows`'s calendar; ``tcrit``
    [n_max + 1] the two-sided Student quantile of the trend test for each residual df.
    """
    Y = _f64(Y)
    n_series, n_weeks = Y.shape
    OFF = np.zeros((1, n_weeks)) if offset is None else _f64(offset)
    w = windows
    args = (
        Y,
        OFF,
        np.ascontiguousarray(w["kpos"], dtype=np.int64),
        np.ascontiguousarray(w["t0"], dtype=np.int64),
        np.ascontiguousarray(w["wptr"], dtype=np.int64),
        np.ascontiguousarray(w["rt"], dtype=np.int64),
        np.ascontiguousarray(w["lptr"], dtype=np.int64),
        _f64(w["cen"]),
        int(w["P"]),
    )
    opts = (
        bool(trend),
        bool(reweight),
        float(weights_threshold),
        bool(b_ok),
        _f64(tcrit),
        int(max_iter),
        float(tol),
    )
    if resolve_engine(engine) == "numpy":
        from .farrington_ref import farrington_batched_ref

        return farrington_batched_ref(*args, *opts)  # type: ignore[no-any-return]
    from .farrington import N_OUT, farrington_batched, farrington_batched_serial

    out = np.empty((n_series, len(w["kpos"]), N_OUT))
    kernel = farrington_batched_serial if _serial_needed() else farrington_batched
    kernel(*args, int(w["n_max"]), *opts, out)
    return out


def interval_columns(
    observed: FloatArray,
    mu: FloatArray,
    obs_var: FloatArray,
    param_var: FloatArray,
    z: float,
    *,
    obs_scale: FloatArray | None = None,
    param_scale: FloatArray | None = None,
    param_mu2: bool = False,
    engine: Engine = "auto",
) -> FloatArray:
    """Every interval column of [G, T] rows in one pass: [N_COLUMNS, G * T] (see
    :mod:`._kernels.intervals`); ``obs_scale``/``param_scale`` [G] default to 1."""
    # read-only views: one compiled signature whether the arrays come from pandas (read-only) or
    # from a kernel
    observed, mu, obs_var, param_var = (
        _read_only(_f64(a)) for a in (observed, mu, obs_var, param_var)
    )
    n_rows = mu.shape[0]
    ones = np.ones(n_rows)
    obs_scale = ones if obs_scale is None else _f64(obs_scale)
    param_scale = ones if param_scale is None else _f64(param_scale)
    if resolve_engine(engine, mu.size) == "numpy":
        from .intervals_ref import interval_columns_ref

        return interval_columns_ref(
            observed, mu, obs_var, obs_scale, param_var, param_scale, param_mu2, float(z)
        )
    from .intervals import N_COLUMNS, interval_columns_serial
    from .intervals import interval_columns as kernel

    out = np.empty((N_COLUMNS, mu.size))
    chosen = _pick(kernel, interval_columns_serial, n_rows)
    tag = "_serial" if chosen is interval_columns_serial else ""
    _call(
        "interval_columns" + tag,
        chosen,
        observed,
        mu,
        obs_var,
        obs_scale,
        param_var,
        param_scale,
        bool(param_mu2),
        float(z),
        out,
    )
    return out


#: The row kernels of :func:`excessmort.read` (:mod:`.rows`).
ROW_KERNELS = ("day_scan", "week_codes", "text_changes")
#: Rows from which :func:`excessmort.io` cuts the text scan into pieces for the threads.
PARALLEL_MIN_ROWS = 1 << 17


def row_kernels(engine: Engine | str = "auto", n_rows: int | None = None) -> Any:
    """The row kernels of :func:`excessmort.read` (:mod:`.rows`, serial, safe in any thread), or
    ``None`` for the numpy engine (read then runs numpy code, as :mod:`.rows_ref` does);
    ``n_rows`` (the input's rows, one cell each) as ``cells`` of :func:`resolve_engine`. With at
    least :data:`PARALLEL_MIN_ROWS` rows, where threads may run, ``pieces`` is the number of
    pieces ``text_changes_pieces`` scans text in at once (0, and no such kernel, otherwise)."""
    if resolve_engine(engine, n_rows) == "numpy":
        return None
    from . import rows

    kernels = {name: partial(_call, name, getattr(rows, name)) for name in ROW_KERNELS}
    scan, pieces = None, 0
    if n_rows is not None and n_rows >= PARALLEL_MIN_ROWS and not _serial_needed():
        import numba

        if numba.get_num_threads() > 1:
            scan = partial(_call, "text_changes_pieces", rows.text_changes_pieces)
            pieces = 2 * numba.get_num_threads()
    return SimpleNamespace(**kernels, text_changes_pieces=scan, pieces=pieces)


def masked_row_means(values: FloatArray, mask: Any, engine: Engine | str = "auto") -> FloatArray:
    """[G]: each row of ``values`` [G, T] averaged over its cells where ``mask`` [G, T] holds and
    the value is not NaN (NaN when none): :func:`.rows.masked_row_means` or its numpy twin."""
    values = _read_only(_f64(values))  # one compiled signature, whatever the caller's flags
    mask = _read_only(np.ascontiguousarray(mask, dtype=np.bool_))
    if resolve_engine(engine, values.size) == "numpy":
        from .rows_ref import masked_row_means_ref

        return masked_row_means_ref(values, mask)
    from . import rows

    out = np.empty(values.shape[0])
    _call("masked_row_means", rows.masked_row_means, values, mask, out)
    return out


def tile(values: np.ndarray, n_rows: int, engine: Engine | str = "auto") -> np.ndarray:
    """``np.tile(values, n_rows)`` for a [T] int64 or datetime64 column, written by the threads
    (:func:`.rows.tile_into`) on large outputs; numpy's own on small ones or where threads may not
    run."""
    values = np.ascontiguousarray(values)
    n_cells = n_rows * values.shape[0]
    if (
        values.dtype.kind not in "iM"
        or values.dtype.itemsize != 8
        or resolve_engine(engine, n_cells) == "numpy"
        or n_rows < PARALLEL_MIN_SERIES
        or _serial_needed()
    ):
        return np.tile(values, n_rows)
    from . import rows

    out = np.empty((n_rows, values.shape[0]), dtype=values.dtype)
    _call("tile_into", rows.tile_into, _read_only(values.view(np.int64)), out.view(np.int64))
    return out.reshape(-1)


def _read_only(values: np.ndarray) -> np.ndarray:
    """``values`` as a read-only array (a read-only view when it is writeable): a kernel's inputs
    then reach numba as one type, and it compiles (and caches) one signature."""
    if values.flags.writeable:
        values = values.view()
        values.flags.writeable = False
    return values


def ons_kernels(engine: Engine | str = "auto") -> Any:
    """The batched ONS 2024 refits' kernels: :mod:`.ons` (numba) or its numpy twin :mod:`.ons_ref`."""
    if resolve_engine(engine) == "numpy":
        from . import ons_ref

        return ons_ref
    from . import ons

    if _serial_needed():
        return SimpleNamespace(
            start=ons.start_serial, normal_eq=ons.normal_eq_serial, update=ons.update_serial
        )
    return ons


#: The kernels each baseline runs (by registry name); the rest are compiled only when used.
BASELINE_KERNELS: dict[str, tuple[str, ...]] = {
    "quasipoisson": ("rows", "irls", "quad_form", "dependence", "intervals"),
    "poisson": ("rows", "irls", "quad_form", "dependence", "intervals"),
    "euromomo": ("rows", "irls", "quad_form", "dependence"),
    "negbin": ("rows", "irls", "quad_form", "dependence", "intervals"),
    "five_year_average": ("rows", "dependence", "intervals"),
    "pooled": ("rows", "pooled", "dependence"),
    "farrington": ("rows", "farrington", "intervals"),
}
_ALL_KERNELS = ("rows", "irls", "quad_form", "dependence", "intervals", "farrington", "pooled")


def _toy() -> tuple[FloatArray, FloatArray, BoolArray]:
    rng = np.random.default_rng(0)
    t = np.arange(60.0)
    X = np.column_stack(
        [np.ones(60), t / 52.0, np.sin(2 * np.pi * t / 52.0), np.cos(2 * np.pi * t / 52.0)]
    )
    Y = rng.poisson(50.0, size=(2, 60)).astype(np.float64)
    return X, Y, np.ones(60, dtype=bool)


def warmup(
    *,
    engine: Engine = "auto",
    baseline: str | None = None,
    serial: bool | None = None,
) -> float:
    """Compile (or load from numba's cache) the kernels on a 2 x 60 toy panel; returns seconds.

    Parameters
    ----------
    engine : {"auto", "numba", "numpy"}
    baseline : str, optional
        Only the kernels this baseline runs (``"quasipoisson"``: the batched IRLS and the variance
        pass); by default every kernel.
    serial : bool, optional
        Which variant: the parallel drivers (``False``), the serial ones used inside thread pools
        (``True``), or both (``None``, the default; with ``baseline`` given: the variant this
        thread would run on a panel of at least :data:`PARALLEL_MIN_SERIES` series; smaller ones
        run the serial drivers).

    Not needed before a fit: each kernel is compiled (or loaded) on its first call, and only the
    kernels a fit uses. ``excessmort run`` logs which kernels its run loaded or compiled and how
    long that took. When fanning out over processes, call it in the parent first so that workers
    only read the cache.

    Examples
    --------
    >>> seconds = warmup()
    >>> seconds >= 0
    True
    """
    start = time.perf_counter()
    names = _ALL_KERNELS if baseline is None else BASELINE_KERNELS.get(baseline, _ALL_KERNELS)
    if resolve_engine(engine) == "numpy" or not names:
        return time.perf_counter() - start
    if serial is None and baseline is not None:
        serial = _serial_needed()
    variants = (False, True) if serial is None else (bool(serial),)
    from . import irls

    X, Y, ref = _toy()
    res = None
    used: list[tuple[str, Any]] = []
    if "rows" in names:  # serial kernels: one variant
        from . import rows

        ticks = np.arange(0, 60 * 7, 7, dtype=np.int64)
        ticks = _read_only(ticks)
        rows.day_scan(ticks)
        rows.week_codes(ticks, 0, 7, np.zeros(1, np.int64), np.zeros(1, np.int64), ticks.copy())
        import pyarrow as pa

        from ..io import _text_buffers

        text = _text_buffers(pa.array(["a", "a", "b"], pa.large_string()))
        assert text is not None
        rows.text_changes(*text, np.empty(2, np.int64))
        rows.text_changes_pieces(
            *text, np.array([1, 2, 3]), np.empty((2, 1), np.int64), np.empty(2, np.int64)
        )
        ones, yes = _read_only(np.ones((2, 3))), _read_only(np.ones((2, 3), np.bool_))
        rows.masked_row_means(ones, yes, np.empty(2))
        rows.tile_into(_read_only(np.arange(3, dtype=np.int64)), np.empty((2, 3), np.int64))
        extra = ("text_changes_pieces", "masked_row_means", "tile_into")
        used += [(name, getattr(rows, name)) for name in (*ROW_KERNELS, *extra)]
    for use_serial in variants:
        tag = "_serial" if use_serial else ""
        if "irls" in names or "quad_form" in names:
            kernel = irls.irls_poisson_batched_serial if use_serial else irls.irls_poisson_batched
            used.append(("irls_poisson_batched" + tag, kernel))
            p = X.shape[1]
            out = {
                "beta": np.empty((2, p)),
                "cov": np.empty((2, p, p)),
                "mu": np.empty((2, 60)),
                "status": np.empty(2, dtype=np.int64),
                "n_iter": np.empty(2, dtype=np.int64),
                "deviance": np.empty(2),
                "pearson": np.empty(2),
                "n_obs": np.empty(2, dtype=np.int64),
            }
            kernel(
                *_shared_design(X, ref),
                *irls.start_tables(Y),
                Y,
                np.zeros((1, 60)),
                25,
                1e-8,
                *out.values(),
            )
            res = out
        if "quad_form" in names and res is not None:
            quad = irls.quad_form_rows_serial if use_serial else irls.quad_form_rows
            used.append(("quad_form_rows" + tag, quad))
            quad(irls.pair_products(X), res["cov"], np.empty((2, 60)))
        if "dependence" in names:
            from . import dependence as dk

            rv = dk.running_variance_serial if use_serial else dk.running_variance
            used.append(("running_variance" + tag, rv))
            rv(
                Y,
                np.full((2, 3), 0.1),
                np.array([0.5, 0.2]),
                np.array([0.5, 0.9]),
                np.empty((2, 60)),
            )
            used += _warm_dependence(Y, X, use_serial)
        if "intervals" in names:
            from . import intervals as ik

            ic = ik.interval_columns_serial if use_serial else ik.interval_columns
            used.append(("interval_columns" + tag, ic))
            ones, Yr = np.ones(2), _read_only(Y)  # as interval_columns passes them
            ic(Yr, Yr, Yr, ones, Yr, ones, False, 1.96, np.empty((ik.N_COLUMNS, Y.size)))
        if "farrington" in names:
            used += _warm_farrington(use_serial)
    if "pooled" in names:
        try:
            from . import pooled as _pooled  # the pooled baseline's kernels, when present

            if hasattr(_pooled, "warmup"):
                _pooled.warmup()
        except ImportError:
            pass
    seconds = time.perf_counter() - start
    loaded = sum(sum(k.stats.cache_hits.values()) for _, k in used)
    compiled = sum(sum(k.stats.cache_misses.values()) for _, k in used)
    log.log(
        logging.INFO if baseline is not None else logging.DEBUG,
        "warmup: kernels %s (%s) in %.2f s: %d compiled, %d loaded from numba's cache",
        ", ".join(n for n, _ in used) or "+".join(names),
        "serial" if variants == (True,) else "parallel" if variants == (False,) else "both",
        seconds,
        compiled,
        loaded,
    )
    return seconds


def _warm_farrington(serial: bool) -> list[tuple[str, Any]]:
    """Compile the farrington kernel (parallel or serial) on a toy calendar of 3 years."""
    import pandas as pd

    from ..baselines.farrington import farrington_windows
    from . import farrington as fk

    weeks = pd.date_range("2015-01-02", periods=170, freq="7D")
    win = farrington_windows(weeks, b=2, w=1, no_periods=2, past_weeks_not_included=1)
    Y = np.random.default_rng(0).poisson(20.0, size=(2, 170)).astype(np.float64)
    tcrit = np.full(win["n_max"] + 1, 2.0)
    out = np.empty((2, len(win["kpos"]), fk.N_OUT))
    kernel = fk.farrington_batched_serial if serial else fk.farrington_batched
    kernel(
        Y, np.zeros((1, 170)), win["kpos"], win["t0"], win["wptr"], win["rt"], win["lptr"],
        win["cen"], win["P"], win["n_max"], True, True, 1.0, False, tcrit, 25, 1e-8, out,
    )  # fmt: skip
    return [("farrington_batched" + ("_serial" if serial else ""), kernel)]


def _warm_dependence(Y: FloatArray, X: FloatArray, serial: bool) -> list[tuple[str, Any]]:
    """Compile the dependence model's sums and per-row kernels (parallel or serial) on a toy."""
    from . import dependence as dk

    tag = "_serial" if serial else ""
    n, t = Y.shape
    mu = Y + 1.0
    none = np.empty((1, 1))
    order = np.arange(n, dtype=np.int64)
    ptr = np.arange(n + 2, dtype=np.int64)
    ptr[-1] = n
    sums = [np.zeros((n, t)) for _ in range(5)]
    flags = np.zeros((1, t), dtype=np.bool_)
    ones = np.ones(n)
    mask = np.ones((n, t), dtype=np.bool_)
    k = getattr(dk, "group_sums" + tag)
    k(
        order,
        ptr,
        np.array([0, n + 1]),
        Y,
        mu,
        mask,
        True,
        none,
        True,
        ones,
        mu,
        True,
        *sums,
        flags,
        True,
    )
    used: list[tuple[str, Any]] = [("group_sums" + tag, k)]
    quad = getattr(dk, "year_window_quad" + tag)
    quad(
        mu,
        X,
        np.ones((n, X.shape[1], X.shape[1])),
        ones,
        np.zeros(t, dtype=np.int64),
        1,
        np.empty((1, n)),
    )
    used.append(("year_window_quad" + tag, quad))
    basis = np.ones((2, 3))
    out = [np.empty(n) for _ in range(3)] + [np.empty((n, 3))] + [np.empty(n) for _ in range(2)]
    rows = getattr(dk, "serial_rows" + tag)
    rows(
        Y - mu,
        mu,
        0.1 * mu,
        True,
        ones,
        ones,
        False,
        basis,
        np.full(2, 3.0),
        np.array([0.0, 0.5]),
        *out,
    )
    used.append(("serial_rows" + tag, rows))
    rho, a, phi = out[3], out[4], out[5]
    total = getattr(dk, "window_serial_total" + tag)
    total(mu, none, False, ones, rho, a, phi, np.empty(n))
    used.append(("window_serial_total" + tag, total))
    year = getattr(dk, "year_rows" + tag)
    pos = np.arange(t, dtype=np.int64)
    year(
        Y - mu, mu, 0.1 * mu, mu, True, ones, rho, a, phi, ones, pos, np.array([0, t]), np.zeros(1),
        np.zeros((1, n)), 0.8, np.empty((1, n)), np.empty((1, n)), np.empty((1, n), dtype=np.bool_),
    )  # fmt: skip
    used.append(("year_rows" + tag, year))
    dk.column_totals(Y - mu, mu, 0.1 * mu, True, ones, np.zeros(t), np.zeros(t))
    used.append(("column_totals", dk.column_totals))
    # the series' own rows (a per-series view), their window totals read in place
    rows = (Y, mu, mask, True, none, True, ones, mu, True, none)
    chunks = np.array([0, n], dtype=np.int64)
    own = getattr(dk, "own_serial_rows" + tag)
    own(
        chunks, *rows, True, False, basis, np.full(2, 3.0), np.array([0.0, 0.5]), *out[:3],
        np.empty((n, 3)), *out[4:], np.zeros((1, t), dtype=np.bool_),
    )  # fmt: skip
    used.append(("own_serial_rows" + tag, own))
    own_year = getattr(dk, "own_year_rows" + tag)
    own_year(
        chunks, *rows, True, ones, rho, a, phi, ones, pos, np.array([0, t]), np.zeros(1),
        np.zeros((1, n)), True, X, np.ones((n, X.shape[1], X.shape[1])), 0.8, np.empty((1, n)),
        np.empty((1, n)), np.empty((1, n), dtype=np.bool_),
    )  # fmt: skip
    used.append(("own_year_rows" + tag, own_year))
    columns = getattr(dk, "own_column_totals" + tag)
    columns(np.array([0, t], dtype=np.int64), *rows, True, ones, np.zeros(t), np.zeros(t))
    used.append(("own_column_totals" + tag, columns))
    scaled = getattr(dk, "window_scaled_total" + tag)
    scaled(mu, ones, 0, t, ones, rho, a, phi, np.empty(n))
    used.append(("window_scaled_total" + tag, scaled))
    return used
