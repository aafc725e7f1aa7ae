"""Seeded synthetic panels for the benchmarks: quasi-Poisson weekly deaths with trend and seasons.

Every series s has a level ``base_s`` (log-uniform, 2 to 400 deaths a week), a yearly trend
``b_s`` (-2 % to +2 % a year) and a seasonal wave (winter peak, relative amplitude 5 % to 30 %).
Counts are negative binomial with mean mu and variance ``phi * mu`` (phi = 1.3: quasi-Poisson
over-dispersion). With ``offset=True`` the series also carry a population (exposure) that enters
the model as a log offset.

Large panels repeat a block of ``UNIQUE`` distinct series (a copy is as much work for every engine
as a fresh draw, and drawing 500 million counts would dominate the benchmark's own run time);
the block and the layout are fully determined by the seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = [
    "FIRST_WEEK",
    "UNIQUE",
    "SyntheticPanel",
    "monthly_batch_frame",
    "monthly_batch_keys",
    "synthetic_panel",
]

#: First week-ending date (a Friday, as ONS registration weeks).
FIRST_WEEK = pd.Timestamp("2010-01-01")
#: Distinct series drawn; larger panels repeat this block.
UNIQUE = 5_000
#: Over-dispersion of the simulated counts (variance = PHI * mu).
PHI = 1.3


@dataclass
class SyntheticPanel:
    """Arrays of one synthetic workload.

    Attributes
    ----------
    weeks : DatetimeIndex [T]
    X : ndarray [T, p]
        The engine's own design (:func:`excessmort.design.build_design`, p = 6).
    deaths : ndarray [S, T]
    population : ndarray [S, T] or None
    offset : ndarray [S, T] or None
        log(population).
    ref : ndarray [T] of bool
        Reference weeks (the first ``n_ref``).
    keys : DataFrame or None
        Strata of each series (W1 only).
    """

    weeks: pd.DatetimeIndex
    X: np.ndarray
    deaths: np.ndarray
    population: np.ndarray | None
    offset: np.ndarray | None
    ref: np.ndarray
    keys: pd.DataFrame | None = None
    meta: dict[str, object] = field(default_factory=dict)

    @property
    def n_series(self) -> int:
        return int(self.deaths.shape[0])

    @property
    def n_weeks(self) -> int:
        return int(self.deaths.shape[1])

    @property
    def reference(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        """(first, last) week-ending date of the reference weeks."""
        idx = np.flatnonzero(self.ref)
        return self.weeks[idx[0]], self.weeks[idx[-1]]


def _block(
    rng: np.random.Generator, n: int, tau: np.ndarray, offset: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    base = np.exp(rng.uniform(np.log(2.0), np.log(400.0), size=n))
    trend = rng.uniform(-0.02, 0.02, size=n)
    amp = rng.uniform(0.05, 0.30, size=n)
    phase = rng.uniform(-0.05, 0.05, size=n)
    t0 = tau - tau[0]
    log_mu = (
        np.log(base)[:, None]
        + trend[:, None] * t0[None, :]
        + amp[:, None] * np.cos(2.0 * np.pi * (tau[None, :] - phase[:, None]))
    )
    pop = None
    if offset:
        size0 = rng.uniform(2e4, 2e6, size=n)
        growth = rng.uniform(0.0, 0.01, size=n)
        pop = np.round(size0[:, None] * np.exp(growth[:, None] * t0[None, :]))
    mu = np.exp(log_mu)
    # negative binomial with mean mu and variance PHI * mu: size r = mu / (PHI - 1)
    r = mu / (PHI - 1.0)
    y = rng.negative_binomial(r, r / (r + mu)).astype(np.float64)
    return y, pop


def synthetic_panel(
    n_series: int,
    n_weeks: int,
    *,
    n_ref: int = 261,
    offset: bool = False,
    seed: int = 20240501,
    keys: pd.DataFrame | None = None,
) -> SyntheticPanel:
    """A seeded panel of ``n_series`` x ``n_weeks`` weekly counts (C-contiguous float64).

    Parameters
    ----------
    n_series, n_weeks : int
        S and T.
    n_ref : int
        Reference weeks, the first ``min(n_ref, n_weeks)`` weeks.
    offset : bool
        Give every series a population (log offset).
    seed : int
        Seed of :class:`numpy.random.Generator`.
    keys : DataFrame, optional
        Strata of the series (one row per series).

    Returns
    -------
    SyntheticPanel
    """
    from excessmort.design import build_design, years_since_origin

    weeks = pd.date_range(FIRST_WEEK, periods=n_weeks, freq="7D")
    tau = years_since_origin(weeks)
    rng = np.random.default_rng(seed)
    n_block = min(n_series, UNIQUE)
    y_block, pop_block = _block(rng, n_block, tau, offset)
    deaths = np.empty((n_series, n_weeks))
    population = np.empty((n_series, n_weeks)) if offset else None
    for start in range(0, n_series, n_block):
        stop = min(start + n_block, n_series)
        deaths[start:stop] = y_block[: stop - start]
        if population is not None and pop_block is not None:
            population[start:stop] = pop_block[: stop - start]
    del y_block, pop_block
    off = None if population is None else np.log(population)
    ref = np.zeros(n_weeks, dtype=bool)
    ref[: min(n_ref, n_weeks)] = True
    X = build_design(weeks).X
    return SyntheticPanel(
        weeks=weeks,
        X=X,
        deaths=deaths,
        population=population,
        offset=off,
        ref=ref,
        keys=keys,
        meta={
            "n_series": n_series,
            "n_weeks": n_weeks,
            "n_ref": int(ref.sum()),
            "offset": offset,
            "seed": seed,
            "unique_series": n_block,
            "p": int(X.shape[1]),
        },
    )


_AGE_BANDS = [f"{a}-{a + 4}" for a in range(0, 90, 5)] + ["90+"]  # 19 bands
_DEPRIVATION = [f"Q{i}" for i in range(1, 6)]
_PLACE = ["home", "hospital", "care home", "hospice", "other communal", "elsewhere"]


def monthly_batch_keys() -> pd.DataFrame:
    """Strata of the monthly batch (W1): the nine regions, each broken down by sex, by age band, by
    deprivation quintile and by place of death, as the monthly tables are (9 x (2 + 19 + 5 + 6 + 1)
    = 297 series: one 'all persons' total per region plus the four breakdowns).

    Columns: region, sex, age_group, deprivation, place_of_death; "all" where a series is not broken
    down by that stratum.
    """
    from excessmort.regions import REGIONS

    rows = []
    for region in REGIONS:
        rows.append((region, "all", "all", "all", "all"))
        rows += [(region, s, "all", "all", "all") for s in ("female", "male")]
        rows += [(region, "all", a, "all", "all") for a in _AGE_BANDS]
        rows += [(region, "all", "all", d, "all") for d in _DEPRIVATION]
        rows += [(region, "all", "all", "all", p) for p in _PLACE]
    return pd.DataFrame(
        rows, columns=["region", "sex", "age_group", "deprivation", "place_of_death"]
    )


def monthly_batch_frame(panel: SyntheticPanel) -> pd.DataFrame:
    """The panel as the tidy long frame a user would pass to :func:`excessmort.fit`."""
    if panel.keys is None:
        raise ValueError("monthly_batch_frame needs a panel built with keys")
    S, T = panel.deaths.shape
    frame = panel.keys.loc[np.repeat(np.arange(S), T)].reset_index(drop=True)
    frame["week_ending"] = np.tile(panel.weeks.to_numpy(), S)
    frame["deaths"] = panel.deaths.reshape(-1).astype(np.int64)
    if panel.population is not None:
        frame["population"] = panel.population.reshape(-1).astype(np.int64)
    return frame


#: Age bands of the end-to-end user frame (10 per area).
USER_AGES = ("0-44", "45-64", "65-69", "70-74", "75-79", "80-84", "85-89", "90-94", "95-99", "100+")


def user_keys(n_series: int) -> pd.DataFrame:
    """Strata of the end-to-end user path: ``area`` (local-authority-like codes) x ``age_group``
    (10 bands), plain Python strings (object dtype), as read from a CSV; ``n_series`` must be a
    multiple of 10."""
    if n_series % len(USER_AGES):
        raise ValueError(f"n_series must be a multiple of {len(USER_AGES)}, got {n_series}")
    n_areas = n_series // len(USER_AGES)
    areas = np.array([f"E{6000000 + i:08d}" for i in range(n_areas)], dtype=object)
    return pd.DataFrame(
        {
            "area": np.repeat(areas, len(USER_AGES)),
            "age_group": np.tile(np.array(USER_AGES, dtype=object), n_areas),
        }
    )


def user_frame(panel: SyntheticPanel, keys: pd.DataFrame) -> pd.DataFrame:
    """The panel as a user's long frame: object-string strata, datetime64 week_ending, int64
    deaths, one row per series and week, sorted by series then week (as a CSV export is)."""
    S, T = panel.deaths.shape
    rows = np.repeat(np.arange(S), T)
    frame = pd.DataFrame({c: keys[c].to_numpy(dtype=object)[rows] for c in keys.columns})
    frame["week_ending"] = np.tile(panel.weeks.to_numpy(), S)
    frame["deaths"] = panel.deaths.reshape(-1).astype(np.int64)
    if panel.population is not None:
        frame["population"] = panel.population.reshape(-1).astype(np.int64)
    return frame
