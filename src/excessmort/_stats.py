"""The part of ``scipy.stats`` the fitting path uses, on ``scipy.special`` (``stats.norm.ppf``,
``stats.t.ppf``), so that a fit and ``excessmort run`` do not import ``scipy.stats``: that import
alone was about 40% of the command's import time, and ``scipy.special`` is a fraction of it.

Same functions, same bits: ``scipy.stats`` computes ``norm.ppf(q)`` as ``ndtri(q)`` and
``t.ppf(q, df)`` as ``stdtrit(df, q)`` inside ``0 < q < 1`` (``-inf``/``inf`` at 0/1, NaN outside
or for ``df <= 0``), times scale 1 plus loc 0; so do these (tests/test_startup.py holds them
equal to ``scipy.stats`` bit for bit). Modules import it as ``from . import _stats as stats``.

Examples
--------
>>> from excessmort import _stats
>>> round(float(_stats.norm.ppf(0.975)), 6), round(float(_stats.t.ppf(0.975, 10.0)), 6)
(1.959964, 2.228139)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import special

__all__ = ["norm", "t"]


def _scalar_or_array(out: np.ndarray) -> Any:
    return out[()] if out.ndim == 0 else out


class _Norm:
    """The standard normal distribution (``scipy.stats.norm`` with loc 0, scale 1)."""

    @staticmethod
    def ppf(q: Any) -> Any:
        """Quantile function, ``scipy.stats.norm.ppf``."""
        return _scalar_or_array(np.asarray(special.ndtri(np.asarray(q, dtype=float))))


class _StudentT:
    """Student's t distribution (``scipy.stats.t`` with loc 0, scale 1)."""

    @staticmethod
    def ppf(q: Any, df: Any) -> Any:
        """Quantile function, ``scipy.stats.t.ppf`` (NaN for ``df <= 0`` or ``q`` outside [0, 1])."""
        q, df = np.broadcast_arrays(np.asarray(q, dtype=float), np.asarray(df, dtype=float))
        out = np.full(q.shape, np.nan)
        ok = df > 0
        inner = ok & (q > 0) & (q < 1)
        out[inner] = special.stdtrit(df[inner], q[inner])
        out[ok & (q == 0)] = -np.inf
        out[ok & (q == 1)] = np.inf
        return _scalar_or_array(out)


norm = _Norm()
t = _StudentT()
