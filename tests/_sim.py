"""Seeded synthetic panels with known truth, shared by the tests (not a fixture so scripts can import it)."""

from __future__ import annotations

import numpy as np
import pandas as pd

SHARED = __import__("pathlib").Path(__file__).resolve().parents[1].parent / "shared"


def simulate(
    n_series: int = 9,
    n_weeks: int = 313,
    *,
    start: str = "2015-01-02",
    seed: int = 0,
    phi: float = 1.0,
    level: tuple[float, float] = (50.0, 2000.0),
    population: bool = True,
    excess: float = 0.0,
    excess_from: str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A tidy frame (area, week_ending, deaths, population) and its truth.

    log mu = log(pop) + b0 + b1 tau + a1 sin + c1 cos + a2 sin2 + c2 cos2, the model the baselines
    fit; counts Poisson (phi = 1) or negative binomial with variance phi * mu. ``excess`` multiplies
    the mean by (1 + excess) from ``excess_from`` on.
    """
    rng = np.random.default_rng(seed)
    weeks = pd.date_range(start, periods=n_weeks, freq="7D")
    tau = ((weeks - pd.Timestamp("2000-01-01")).days / 365.25).to_numpy()
    size = np.exp(rng.uniform(np.log(level[0]), np.log(level[1]), n_series))
    pop = (
        size[:, None] * 1_000 * (1 + 0.004 * (tau[None, :] - tau[0]))
        if population
        else np.ones((n_series, n_weeks))
    )
    b1 = rng.normal(-0.01, 0.01, n_series)
    amp = rng.uniform(0.08, 0.2, n_series)
    phase = rng.uniform(-0.3, 0.3, n_series)
    seasonal = amp[:, None] * np.cos(
        2 * np.pi * (tau[None, :] + phase[:, None] / (2 * np.pi))
    ) + 0.03 * np.sin(4 * np.pi * tau[None, :])
    baseline = size[:, None] * np.exp(b1[:, None] * (tau[None, :] - tau[0]) + seasonal)
    baseline = baseline * pop / pop[:, :1] if population else baseline
    mean = baseline.copy()
    if excess and excess_from is not None:
        mean[:, weeks >= pd.Timestamp(excess_from)] *= 1.0 + excess
    if phi > 1.0:
        # Negative binomial with variance phi * mu: gamma-Poisson with shape mu / (phi - 1).
        shape = mean / (phi - 1.0)
        lam = rng.gamma(shape, (phi - 1.0))
        deaths = rng.poisson(lam)
    else:
        deaths = rng.poisson(mean)
    area = [f"A{i:04d}" for i in range(n_series)]
    frame = pd.DataFrame(
        {
            "area": np.repeat(area, n_weeks),
            "week_ending": np.tile(weeks.to_numpy(), n_series),
            "deaths": deaths.reshape(-1).astype(float),
        }
    )
    if population:
        frame["population"] = pop.reshape(-1)
    truth = frame[["area", "week_ending"]].copy()
    truth["true_baseline"] = baseline.reshape(-1)
    truth["true_mean"] = mean.reshape(-1)
    truth["true_excess"] = (mean - baseline).reshape(-1)
    return frame, truth


def simulate_correlated(
    n_series: int = 20,
    n_weeks: int = 365,
    *,
    start: str = "2015-01-02",
    seed: int = 0,
    phi: float = 1.5,
    shock_sd: float = 0.03,
    ar: float = 0.7,
    year_sd: float = 0.0,
    shared: float = 1.0,
    level: tuple[float, float] = (200.0, 2000.0),
) -> pd.DataFrame:
    """A panel whose counts are *not* independent given the baseline (area, week_ending, deaths).

    log mean = the seasonal baseline of :func:`simulate` + z_st, z_st = sqrt(shared) w_t +
    sqrt(1 - shared) v_st with w, v AR(1) in time (coefficient ``ar``, marginal sd ``shock_sd``):
    a weekly shock common to every series (``shared=1``) that lasts for weeks, plus a relative year
    effect N(0, year_sd^2) common to every series; counts negative binomial with variance phi x mean.
    """
    rng = np.random.default_rng(seed)
    weeks = pd.date_range(start, periods=n_weeks, freq="7D")
    tau = ((weeks - pd.Timestamp("2000-01-01")).days / 365.25).to_numpy()
    size = np.exp(rng.uniform(np.log(level[0]), np.log(level[1]), n_series))
    amp = rng.uniform(0.08, 0.2, n_series)
    seasonal = amp[:, None] * np.cos(2 * np.pi * tau[None, :])
    base = size[:, None] * np.exp(-0.01 * (tau[None, :] - tau[0]) + seasonal)

    def ar1(n_rows: int) -> np.ndarray:
        e = rng.normal(0.0, shock_sd * np.sqrt(1 - ar**2), (n_rows, n_weeks))
        z = np.empty_like(e)
        z[:, 0] = rng.normal(0.0, shock_sd, n_rows)
        for t in range(1, n_weeks):
            z[:, t] = ar * z[:, t - 1] + e[:, t]
        return z

    z = np.sqrt(shared) * ar1(1) + np.sqrt(1.0 - shared) * ar1(n_series)
    years = weeks.year.to_numpy()
    if year_sd > 0:
        effect = {y: rng.normal(0.0, year_sd) for y in np.unique(years)}
        z = z + np.array([effect[y] for y in years])[None, :]
    mean = base * np.exp(z)
    shape = mean / (phi - 1.0)
    deaths = rng.poisson(rng.gamma(shape, phi - 1.0))
    return pd.DataFrame(
        {
            "area": np.repeat([f"A{i:03d}" for i in range(n_series)], n_weeks),
            "week_ending": np.tile(weeks.to_numpy(), n_series),
            "deaths": deaths.reshape(-1).astype(float),
        }
    )
