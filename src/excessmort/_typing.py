"""Type aliases shared across the package."""

from __future__ import annotations

from typing import Literal, TypeAlias

import numpy as np
from numpy.typing import NDArray

FloatArray: TypeAlias = NDArray[np.float64]
BoolArray: TypeAlias = NDArray[np.bool_]
IntArray: TypeAlias = NDArray[np.int64]

#: The registered baseline names (:func:`excessmort.baselines.available`), in registry order.
BaselineName = Literal[
    "quasipoisson",
    "poisson",
    "five_year_average",
    "euromomo",
    "pooled",
    "farrington",
    "ons2024",
    "wmd",
    "negative_binomial",
]
Engine = Literal["auto", "numba", "numpy"]
