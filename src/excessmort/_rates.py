"""Rates per 100,000 beside the counts of every frame, when the data give a population.

A weekly row's population is the sum of its series' ``population`` in that week; a period's is the
sum over its series of each series' mean population over the period's weeks (as
:meth:`excessmort.Fit.rates`). Rates are deaths in the row's weeks per ``per`` people (not
annualised): ``observed_rate``, ``expected_rate``, ``excess_rate`` and its interval
``excess_rate_lower``/``excess_rate_upper``, the count's interval over the same population.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["RATE_COLUMNS", "add_rates"]

#: (count column, rate column) pairs.
RATE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("observed", "observed_rate"),
    ("expected", "expected_rate"),
    ("excess", "excess_rate"),
    ("excess_lower", "excess_rate_lower"),
    ("excess_upper", "excess_rate_upper"),
)


def add_rates(frame: pd.DataFrame, population: Any, per: float = 100_000) -> pd.DataFrame:
    """Add (or replace) ``population`` and the rate columns of :data:`RATE_COLUMNS` (in place).

    ``population`` is aligned with the rows. It goes after ``n_weeks`` in a period's frame and at
    the end of a weekly frame; the rates follow at the end.

    Examples
    --------
    >>> f = pd.DataFrame({"observed": [30.0], "expected": [20.0], "excess": [10.0],
    ...                   "excess_lower": [2.0], "excess_upper": [18.0]})
    >>> add_rates(f, [50_000.0])[["population", "excess_rate", "excess_rate_upper"]].values.tolist()
    [[50000.0, 20.0, 36.0]]
    """
    pop = np.asarray(population, dtype=float).reshape(-1)
    drop = ["population", *(rate for _, rate in RATE_COLUMNS)]
    for c in drop:
        if c in frame.columns:
            del frame[c]
    if "n_weeks" in frame.columns:
        frame.insert(frame.columns.get_loc("n_weeks") + 1, "population", pop)
    else:
        frame["population"] = pop
    with np.errstate(divide="ignore", invalid="ignore"):
        for count, rate in RATE_COLUMNS:
            frame[rate] = per * frame[count].to_numpy(dtype=float) / pop
    return frame
