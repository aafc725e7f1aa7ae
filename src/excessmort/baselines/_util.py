"""Helpers shared by baseline results: sums over groups of series."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import numpy as np
from scipy import sparse

from .._typing import FloatArray, IntArray

_LOCK = threading.Lock()


_INDICATORS: OrderedDict[tuple[int, int, bytes], Any] = OrderedDict()
_INDICATORS_KEPT = 16


def _indicator(groups: IntArray, n_groups: int) -> Any:
    """The sparse [G, S] indicator of ``groups``, made once per grouping (a view sums its rows
    hundreds of times per release: making the matrix cost more than the product). The last
    :data:`_INDICATORS_KEPT` groupings are kept, keyed on the group ids themselves; the matrices
    are never written to."""
    key = (n_groups, groups.size, groups.tobytes())
    with _LOCK:
        found = _INDICATORS.get(key)
        if found is not None:
            _INDICATORS.move_to_end(key)
            return found
    n_series = groups.size
    made = sparse.csr_matrix(
        (np.ones(n_series), (groups, np.arange(n_series))), shape=(n_groups, n_series)
    )
    with _LOCK:
        _INDICATORS[key] = made
        while len(_INDICATORS) > _INDICATORS_KEPT:
            _INDICATORS.popitem(last=False)
    return made


def group_sum(values: FloatArray, groups: IntArray, n_groups: int) -> FloatArray:
    """Sum rows of ``values`` [S, ...] by group id [S]; NaN in any member makes the group NaN.

    Examples
    --------
    >>> group_sum(np.array([[1.0, 2.0], [3.0, np.nan], [5.0, 6.0]]), np.array([0, 0, 1]), 2)
    array([[ 4., nan],
           [ 5.,  6.]])
    """
    values = np.asarray(values, dtype=np.float64)
    n_series = values.shape[0]
    if n_groups == n_series and np.array_equal(groups, np.arange(n_series)):
        return values.copy()
    indicator = _indicator(np.asarray(groups, dtype=np.int64), n_groups)
    flat = values.reshape(n_series, -1)
    return np.asarray(indicator @ flat).reshape((n_groups, *values.shape[1:]))
