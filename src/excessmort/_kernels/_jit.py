"""The only place numba is configured.

Policy (STYLE.md "Numba conventions"): ``cache=True`` (turn off with ``EXCESSMORT_NUMBA_CACHE=0``),
``nogil=True``, ``fastmath=False`` (results must match statsmodels to 1e-10) except the inner
reductions, which may reassociate (see :func:`jit_reduce`), ``error_model="numpy"``
(0/0 gives NaN, never a Python exception inside a kernel), ``parallel=True`` only on outer drivers
that ``prange`` over series. Compilation is lazy (no signature lists): importing excessmort never
compiles; :func:`excessmort.warmup` does it up front.

numba's cache is keyed on the source file's path, mtime and size, so every upgrade recompiles once;
when ``site-packages`` is read-only numba falls back to a user-wide cache directory, and
``NUMBA_CACHE_DIR`` points all processes of a shared batch machine at one place.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

try:  # numba is a core dependency, but engine="numpy" must keep working if it is absent or broken
    import numba

    HAVE_NUMBA = True
except Exception:  # pragma: no cover - exercised only on machines without numba
    numba = None
    HAVE_NUMBA = False

CACHE = os.environ.get("EXCESSMORT_NUMBA_CACHE", "1") not in {"0", "false", "False", "no"}

_COMMON: dict[str, Any] = {"cache": CACHE, "nogil": True, "fastmath": False, "error_model": "numpy"}


def jit(func: F) -> F:
    """Serial kernel (inner loops)."""
    if not HAVE_NUMBA:
        return func
    return numba.njit(**_COMMON)(func)  # type: ignore[no-any-return]


def jit_reduce(func: F) -> F:
    """Serial kernel whose loops are reductions: may reassociate sums (and contract to FMA) so that
    LLVM vectorises them. No ``nnan``/``ninf``: NaN and inf keep their IEEE meaning. The summation
    order is fixed by the compiled code, not by the thread count, so results stay bitwise identical
    for any ``NUMBA_NUM_THREADS``; against the numpy reference they agree to ~1e-14 relative."""
    if not HAVE_NUMBA:
        return func
    opts = dict(_COMMON, fastmath={"reassoc", "contract"})
    return numba.njit(**opts)(func)  # type: ignore[no-any-return]


def jit_vector(func: F) -> F:
    """Serial elementwise kernel: may contract a*b+c to FMA (no reassociation, no nnan/ninf)."""
    if not HAVE_NUMBA:
        return func
    opts = dict(_COMMON, fastmath={"contract"})
    return numba.njit(**opts)(func)  # type: ignore[no-any-return]


def jit_parallel(func: F) -> F:
    """Outer driver that ``prange``s over series."""
    if not HAVE_NUMBA:
        return func
    return numba.njit(parallel=True, **_COMMON)(func)  # type: ignore[no-any-return]


prange = numba.prange if HAVE_NUMBA else range


def compiled_on_disk(kernel: Any) -> bool | None:
    """Whether numba's cache holds ``kernel`` compiled for this source file and this CPU (so that its
    first call in a process loads it instead of compiling): ``None`` when that cannot be told
    (caching off, or a numba whose cache layout differs)."""
    try:
        cache = kernel._cache
        index = cache._cache_file._load_index()  # {} when missing or stale (source changed)
        magic = kernel.targetctx.codegen().magic_tuple()  # the CPU name and features
    except Exception:
        return None
    return any(isinstance(key, tuple) and len(key) > 1 and key[1] == magic for key in index)
