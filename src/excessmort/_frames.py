"""What every output frame carries beside the numbers: names beside codes, week numbers, bounds.

- ``region_name`` right after ``region`` (ONS codes stay the key; names are for people);
- ``iso_year``, ``iso_week`` after ``week_ending`` and, for ONS registration weeks (ending on a
  Friday), the ONS ``year`` and ``week``;
- the prediction bounds of the count (``prediction_lower``/``prediction_upper``) and the
  observed/expected ``ratio`` with its bounds, as in the CLI's figures files.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .periods import week_columns

__all__ = ["add_prediction", "add_region_name", "add_week_numbers"]


def add_region_name(frame: pd.DataFrame) -> pd.DataFrame:
    """Insert ``region_name`` after ``region`` (in place; returns the frame)."""
    if "region" not in frame.columns or "region_name" in frame.columns:
        return frame
    from .regions import region_name

    codes = frame["region"]
    if isinstance(codes.dtype, pd.CategoricalDtype):
        names = [region_name(str(c)) for c in codes.cat.categories]
        values = (
            pd.Categorical.from_codes(
                codes.cat.codes.to_numpy(), categories=pd.Index(list(dict.fromkeys(names)))
            )
            if len(set(names)) == len(names)
            else pd.Categorical([region_name(str(c)) for c in codes])
        )
    else:
        values = pd.Categorical([region_name(str(c)) for c in codes])
    frame.insert(frame.columns.get_loc("region") + 1, "region_name", values)
    return frame


def add_week_numbers(frame: pd.DataFrame) -> pd.DataFrame:
    """Insert ``iso_year``, ``iso_week`` (and ONS ``year``, ``week``) after ``week_ending``."""
    if "week_ending" not in frame.columns or "iso_year" in frame.columns:
        return frame
    at = frame.columns.get_loc("week_ending") + 1
    uniq, inverse = np.unique(frame["week_ending"].to_numpy(), return_inverse=True)
    cols = week_columns(pd.DatetimeIndex(uniq))
    for k, name in enumerate(cols):
        frame.insert(at + k, name, cols[name][inverse])
    return frame


def add_prediction(frame: pd.DataFrame, lower: np.ndarray, upper: np.ndarray) -> pd.DataFrame:
    """Insert the prediction bounds after ``expected_upper`` and ``ratio`` (+ bounds) at the end.

    ``ratio = observed / expected``; its bounds are observed over the prediction bounds (a lower
    prediction bound at or below zero leaves the ratio without an upper bound: ``inf``).
    """
    at = frame.columns.get_loc("expected_upper") + 1
    frame.insert(at, "prediction_lower", np.asarray(lower).reshape(-1))
    frame.insert(at + 1, "prediction_upper", np.asarray(upper).reshape(-1))
    y = frame["observed"].to_numpy(dtype=float)
    mu = frame["expected"].to_numpy(dtype=float)
    lo = frame["prediction_lower"].to_numpy(dtype=float)
    hi = frame["prediction_upper"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        frame["ratio"] = np.where(mu > 0, y / mu, np.nan)
        frame["ratio_lower"] = np.where(hi > 0, y / hi, np.nan)
        frame["ratio_upper"] = np.where(
            lo > 0, y / lo, np.where(np.isfinite(lo) & np.isfinite(y), np.inf, np.nan)
        )
    return frame
