"""Panel: the tidy long frame as series keys [S] plus dense C-contiguous float64 arrays [S, T].

Every series shares one weekly calendar (``weeks``, length T), so one design matrix serves them all.
Weeks a series lacks are NaN in ``deaths`` and are left out of every fit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ._typing import BoolArray, FloatArray, IntArray
from .weeks import weekly_grid

__all__ = ["VALUE_COLUMNS", "Panel", "strata_columns"]

#: Columns of the tidy frame that are values, not strata.
VALUE_COLUMNS: tuple[str, ...] = ("week_ending", "deaths", "population")


def strata_columns(frame: pd.DataFrame) -> list[str]:
    """The strata of a tidy frame: every column that is not a value column, in frame order."""
    return [c for c in frame.columns if c not in VALUE_COLUMNS]


@dataclass(frozen=True, eq=False)
class Panel:
    """Series keys and dense arrays, series first and weeks contiguous.

    Attributes
    ----------
    keys : DataFrame
        One row per series (S rows, RangeIndex), one column per stratum (categoricals).
    weeks : DatetimeIndex
        The shared weekly calendar (T week-ending dates, 7 days apart).
    deaths : ndarray [S, T]
        Observed deaths, NaN where a series has no value for the week.
    exposure : ndarray [S, T] or None
        Population (the offset is its log), or None when the input had no ``population``.
    """

    keys: pd.DataFrame
    weeks: pd.DatetimeIndex
    deaths: FloatArray
    exposure: FloatArray | None = None
    _cache: dict[str, object] = field(default_factory=dict, repr=False, compare=False)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_frame(cls, frame: pd.DataFrame, strata: Sequence[str] | None = None) -> Panel:
        """Build a panel from a validated tidy frame (see :func:`excessmort.read`).

        Parameters
        ----------
        frame : DataFrame
            Columns ``week_ending``, ``deaths``, optional ``population`` and strata.
        strata : sequence of str, optional
            The stratum columns; by default every column that is not a value column.

        Returns
        -------
        Panel
        """
        strata = list(strata_columns(frame) if strata is None else strata)
        fast = _codes_layout(frame, strata)
        if fast is not None:
            weeks, week_pos, codes, keys = fast
        else:
            weeks = weekly_grid(frame["week_ending"])
            week_pos = ((pd.DatetimeIndex(frame["week_ending"]) - weeks[0]).days // 7).to_numpy()
            if strata:
                codes = frame.groupby(strata, observed=True, sort=True).ngroup().to_numpy()
                first = pd.Series(np.arange(len(frame))).groupby(codes).first().to_numpy()
                keys = frame.iloc[first][strata].reset_index(drop=True)
                for col in strata:
                    if not isinstance(keys[col].dtype, pd.CategoricalDtype):
                        keys[col] = keys[col].astype("category")
                    keys[col] = keys[col].cat.remove_unused_categories()
            else:
                codes = np.zeros(len(frame), dtype=np.int64)
                keys = pd.DataFrame(index=pd.RangeIndex(1))
        n_series, n_weeks = len(keys), len(weeks)
        deaths = np.full((n_series, n_weeks), np.nan)
        deaths[codes, week_pos] = frame["deaths"].to_numpy(dtype=np.float64, na_value=np.nan)
        exposure = None
        if "population" in frame.columns:
            exposure = np.full((n_series, n_weeks), np.nan)
            exposure[codes, week_pos] = frame["population"].to_numpy(
                dtype=np.float64, na_value=np.nan
            )
        if exposure is not None and np.isnan(exposure).any():
            # Population changes slowly: carry the nearest known value into weeks a series lacks.
            exposure = (
                pd.DataFrame(exposure.T)
                .ffill()
                .bfill()
                .to_numpy(dtype=np.float64)
                .T.copy(order="C")
            )
        return cls(keys=keys, weeks=weeks, deaths=deaths, exposure=exposure)

    # ------------------------------------------------------------------ shape and views
    @property
    def strata(self) -> list[str]:
        """Names of the stratum columns."""
        return list(self.keys.columns)

    @property
    def n_series(self) -> int:
        """S, the number of series."""
        return int(self.deaths.shape[0])

    @property
    def n_weeks(self) -> int:
        """T, the number of weeks."""
        return int(self.deaths.shape[1])

    @property
    def offset(self) -> FloatArray:
        """log(exposure) [S, T], or zeros when there is no population."""
        if "offset" not in self._cache:
            if self.exposure is None:
                off = np.zeros_like(self.deaths)
            else:
                with np.errstate(divide="ignore"):
                    off = np.log(self.exposure)
            self._cache["offset"] = np.ascontiguousarray(off, dtype=np.float64)
        return self._cache["offset"]  # type: ignore[return-value]

    @property
    def observed_mask(self) -> BoolArray:
        """True where deaths are observed [S, T]."""
        return ~np.isnan(self.deaths)

    def take(self, series: IntArray | Sequence[int] | BoolArray) -> Panel:
        """The panel restricted to some series (by position or boolean mask)."""
        idx = np.asarray(series)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        keys = self.keys.iloc[idx].reset_index(drop=True)
        exposure = None if self.exposure is None else np.ascontiguousarray(self.exposure[idx])
        return Panel(
            keys=keys,
            weeks=self.weeks,
            deaths=np.ascontiguousarray(self.deaths[idx]),
            exposure=exposure,
        )

    def label(self, s: int) -> str:
        """A readable name of series ``s`` such as ``region=E12000007, sex=F``."""
        if not self.strata:
            return "series 0"
        row = self.keys.iloc[s]
        return ", ".join(f"{c}={row[c]}" for c in self.strata)

    # ------------------------------------------------------------------ back to a frame
    def to_frame(
        self,
        arrays: Mapping[str, FloatArray],
        *,
        keys: pd.DataFrame | None = None,
        adopt: bool = False,
    ) -> pd.DataFrame:
        """A tidy long frame: strata..., ``week_ending``, then one column per [S, T] array.

        Parameters
        ----------
        arrays : mapping of str to ndarray [S, T]
            Columns to add, in order.
        keys : DataFrame, optional
            Row keys when the arrays are not per series of this panel (e.g. aggregates).
        adopt : bool, default False
            Let the frame hold C-contiguous float64 arrays as they are (their rows flattened,
            no copy); for arrays made for this frame only. By default every column is a copy.

        Returns
        -------
        DataFrame
        """
        keys = self.keys if keys is None else keys
        n_rows = len(keys)
        n_weeks = self.n_weeks
        cols: dict[str, object] = {}
        for col in keys.columns:
            key = keys[col]
            if isinstance(key.dtype, pd.CategoricalDtype):
                # strata as codes repeated week by week: no take over the key frame
                codes = np.repeat(key.cat.codes.to_numpy(), n_weeks)
                cols[col] = pd.Categorical.from_codes(codes, dtype=key.dtype, validate=False)
            else:
                cols[col] = np.repeat(key.to_numpy(), n_weeks)
        cols["week_ending"] = np.tile(self.weeks.to_numpy(), n_rows)
        for name, values in arrays.items():
            values = np.asarray(values)
            if values.shape != (n_rows, n_weeks):
                raise ValueError(
                    f"array {name!r} has shape {values.shape}, expected {(n_rows, n_weeks)}"
                )
            flat = values.reshape(-1)
            keep = adopt and flat.dtype == np.float64 and np.shares_memory(flat, values)
            cols[name] = flat if keep else flat.copy()
        # copy=False: the columns above are new arrays (or adopted ones): nothing is copied twice
        return pd.DataFrame(cols, copy=False)

    def group_index(self, by: Sequence[str]) -> tuple[IntArray, pd.DataFrame]:
        """Group the series by some strata: (group id [S], group keys [G])."""
        by = list(by)
        unknown = [c for c in by if c not in self.strata]
        if unknown:
            raise KeyError(f"unknown strata {unknown}; the panel's strata are {self.strata}")
        if not by:
            return np.zeros(self.n_series, dtype=np.int64), pd.DataFrame(index=pd.RangeIndex(1))
        grouped = self.keys.groupby(by, observed=True, sort=True)
        ids = grouped.ngroup().to_numpy(dtype=np.int64)
        first = pd.Series(np.arange(self.n_series)).groupby(ids).first().to_numpy()
        group_keys = self.keys.iloc[first][by].reset_index(drop=True)
        for col in by:
            group_keys[col] = group_keys[col].cat.remove_unused_categories()
        return ids, group_keys


_DAY_NS = 86_400_000_000_000


def _codes_layout(
    frame: pd.DataFrame, strata: list[str]
) -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray, pd.DataFrame] | None:
    """(weeks, week position [n], series [n], keys) of a tidy frame from integer codes: the
    strata's category codes and the dates as integers (no groupby, no hashing of dates); None when
    the frame is not of that shape (strata not all categorical, missing codes, dates not
    datetime64[ns]), and the caller takes the general path."""
    stamps = frame["week_ending"]
    if stamps.dtype != np.dtype("datetime64[ns]") or len(frame) == 0:
        return None
    cols = [frame[c] for c in strata]
    if not all(isinstance(c.dtype, pd.CategoricalDtype) for c in cols):
        return None
    days = stamps.to_numpy().view(np.int64) // _DAY_NS
    if (days < -(2**40)).any():  # NaT
        return None
    first = int(days.min())
    offset = days - first
    if np.any(offset % 7):
        return None  # not on one weekly grid: the general path says so
    week_pos = offset // 7
    n_weeks = int(week_pos.max()) + 1
    weeks = pd.date_range(pd.Timestamp(first, unit="D"), periods=n_weeks, freq="7D", unit="ns")
    if not strata:
        return (
            weeks,
            week_pos,
            np.zeros(len(frame), dtype=np.int64),
            pd.DataFrame(index=pd.RangeIndex(1)),
        )
    combined = np.zeros(len(frame), dtype=np.int64)
    size = 1
    codes = []
    for col in cols:
        c = col.cat.codes.to_numpy().astype(np.int64)
        if (c < 0).any():
            return None
        n_cat = max(len(col.cat.categories), 1)
        size *= n_cat
        if size >= 2**62:
            return None
        combined = combined * np.int64(n_cat) + c
        codes.append(c)
    step = combined[1:] != combined[:-1]
    if bool(np.all(combined[1:] >= combined[:-1])):  # sorted by series (as read() gives)
        series = np.concatenate([[0], np.cumsum(step, dtype=np.int64)])
        first_row = np.concatenate([[0], np.flatnonzero(step) + 1])
    else:
        _, first_row, series = np.unique(combined, return_index=True, return_inverse=True)
        series = series.astype(np.int64).reshape(-1)
    keys = pd.DataFrame(
        {
            name: pd.Categorical.from_codes(
                c[first_row], dtype=col.dtype, validate=False
            ).remove_unused_categories()
            for name, col, c in zip(strata, cols, codes, strict=True)
        }
    )
    return weeks, week_pos, series, keys
