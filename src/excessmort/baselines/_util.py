"""Helpers shared by baseline results: sums over groups of series."""

from __future__ import annotations

import numpy as np
from scipy import sparse

from .._typing import FloatArray, IntArray


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
    indicator = sparse.csr_matrix(
        (np.ones(n_series), (np.asarray(groups), np.arange(n_series))), shape=(n_groups, n_series)
    )
    flat = values.reshape(n_series, -1)
    return np.asarray(indicator @ flat).reshape((n_groups, *values.shape[1:]))
