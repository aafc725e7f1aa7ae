"""The bundled demo data: a deterministic, synthetic, England-like weekly deaths panel and truth.

:func:`demo_data` imitates the ONS weekly death registrations for the nine English regions by sex
and age band (72 series), from the first Friday of 2010 to the last complete month. It is
**synthetic**: no real count is in it. :func:`demo_truth` gives the means it was drawn from, so
tests can check an estimator against the truth rather than against another estimator.

How the counts are made (all vectorised over ``[S, T]`` arrays, series first):

1. Population ``P[s, t]`` for region x sex x age band: region totals and age structures of
   England's regions around 2017, growing at an age-specific rate (fastest in the oldest band).
2. Occurrence mean with no excess, ``B[s, t] = P[s, t] * r_s * exp(rho * tau_t) * season_a(t)``:
   a per-capita death rate ``r_s`` falling by ``rho`` = 1 % a year, times a winter seasonality of
   two harmonics on the log scale, stronger in the old (peak in early January, flat summer
   trough), normalised to average one over a year. ``r_s`` comes from raking a plausible age-sex
   rate schedule so that regional, age and sex shares of deaths resemble ONS annual deaths
   2015-2019. The log-mean has exactly the form of the default quasi-Poisson baseline (offset,
   linear trend, K = 2 harmonics of DESIGN's ``tau``): there are no flu seasons of varying
   severity, so the baseline model is correctly specified apart from registration shifts.
3. Excess in occurrence space, ``E[s, t] = B[s, t] * sum_e A_e * w_e(s) * shape_e(t)``:
   raised-cosine waves (:data:`EPISODES`) with a known peak, rise and fall, region/sex/age
   weights, and an amplitude ``A_e`` set so that England's mean at the peak week is
   ``1 + england_peak`` times its baseline. No excess before 2020.
4. Registration shifts (the demo imitates *registrations*): a share ``f_t`` of the occurrences of
   a week holding a bank holiday (0.15 per weekday bank holiday, plus 0.10 in the Christmas
   week) is registered later: 2/3 in the next week holding no bank holiday, 1/3 in the one after.
   The shift is one linear map ``L`` applied to both ``B`` and ``E``; it keeps totals.
5. Counts ``y ~ Poisson(mu * G)`` with ``G ~ Gamma(mean 1, variance (phi_s - 1) / mu)``: a
   negative binomial with mean ``mu = L(B + E)`` and variance ``phi_s * mu`` (the quasi-Poisson
   variance), the dispersion ``phi_s`` of each series drawn once in [1.4, 2.0].

Truth (see :func:`demo_truth`): ``true_baseline = L(B)``, ``true_mean = L(B + E)``,
``true_excess = true_mean - true_baseline = L(E)``, all in registration weeks (shifts included).

Everything is generated on a fixed grid (first Friday of 2010 to the last Friday of 2035) from one
constant seed and then cut at ``end``, so a week's values never depend on ``end`` or today's date.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from excessmort._typing import FloatArray
from excessmort.exceptions import InputError
from excessmort.regions import REGIONS
from excessmort.weeks import bank_holidays, to_timestamp

__all__ = ["AGE_GROUPS", "EPISODES", "SEXES", "Episode", "demo_data", "demo_truth"]

SEED = 20_100_101
FIRST_WEEK = pd.Timestamp("2010-01-01")  # the first Friday of 2010
HORIZON = pd.Timestamp("2035-12-28")  # the last Friday of 2035: the fixed far end of the grid
_LEAD_WEEKS = 4  # weeks generated before FIRST_WEEK, so the first weeks get their holiday rebounds
_ORIGIN = pd.Timestamp("2017-07-01")  # tau = 0: rates and populations below are for this date

REGION_CODES: tuple[str, ...] = tuple(REGIONS)
SEXES: tuple[str, ...] = ("F", "M")
AGE_GROUPS: tuple[str, ...] = ("0-64", "65-74", "75-84", "85+")
KEYS: tuple[str, ...] = ("region", "sex", "age_group")

# --- calibration (rounded, England around 2017: the demo imitates these, it holds no real data) ---
# Resident population (millions) of E12000001..9 and the shares aged 65-74, 75-84, 85+.
_REGION_POP = np.array([2.64, 7.26, 5.45, 4.77, 5.86, 6.17, 8.83, 9.08, 5.56]) * 1e6
_REGION_OLD_SHARES = np.array(
    [
        [0.105, 0.062, 0.024],  # North East
        [0.099, 0.058, 0.023],  # North West
        [0.097, 0.058, 0.023],  # Yorkshire and The Humber
        [0.104, 0.061, 0.024],  # East Midlands
        [0.097, 0.060, 0.024],  # West Midlands
        [0.106, 0.064, 0.027],  # East of England
        [0.065, 0.038, 0.016],  # London
        [0.104, 0.064, 0.028],  # South East
        [0.118, 0.071, 0.031],  # South West
    ]
)
_FEMALE_POP_SHARE = np.array([0.50, 0.52, 0.55, 0.63])  # by age band
# Shares of deaths: by region (ONS annual deaths 2015-2019, rounded), by age band, male by band.
_REGION_DEATH_SHARE = np.array([0.057, 0.144, 0.105, 0.091, 0.110, 0.116, 0.100, 0.164, 0.113])
_AGE_DEATH_SHARE = np.array([0.15, 0.17, 0.28, 0.40])
_MALE_DEATH_SHARE = np.array([0.62, 0.58, 0.53, 0.39])
# Annual death rates per person used as the seed of the raking (F, M by age band).
_SEED_RATES = np.array([[0.0008, 0.011, 0.035, 0.13], [0.0014, 0.017, 0.050, 0.16]])
_ENGLAND_WEEKLY = 10_650.0  # England's mean weekly occurrences over the year at tau = 0
_RATE_TREND = -0.010  # per-capita death rate, log change per year
_POP_GROWTH = np.array([0.005, 0.012, 0.018, 0.022])  # population, log change per year by age band
# Seasonality on the log scale: a1 cos(2 pi (tau - peak)) + a2 cos(4 pi (tau - peak)), by age band.
_SEASON_A1 = np.array([0.045, 0.08, 0.11, 0.13])
_SEASON_A2 = np.array([0.01, 0.02, 0.03, 0.035])
_SEASON_PEAK = 8.0 / 365.25  # years after 1 January: about 8 January
_DISPERSION_RANGE = (1.4, 2.0)
# Registration shifts.
_SHIFT_PER_HOLIDAY = 0.15
_SHIFT_CHRISTMAS_EXTRA = 0.10
_SHIFT_SPLIT = (2.0 / 3.0, 1.0 / 3.0)


@dataclass(frozen=True)
class Episode:
    """An injected excess wave (occurrence space), as documented in ``data/README.md``.

    Attributes
    ----------
    name : str
        Short label.
    peak : str
        Week ending (a Friday) of the peak.
    rise_weeks, fall_weeks : float
        Weeks from the start to the peak and from the peak to the end; the wave is
        ``cos(pi/2 * d / w)**2`` inside, exactly zero outside.
    england_peak : float
        Relative excess of England at the peak week (occurrences): 1.0 doubles the deaths.
    region, sex, age : tuple of float
        Relative weights of the excess (E12000001..9; F, M; 0-64..85+).
    """

    name: str
    peak: str
    rise_weeks: float
    fall_weeks: float
    england_peak: float
    region: tuple[float, ...]
    sex: tuple[float, float]
    age: tuple[float, float, float, float]


#                      NE    NW    YH    EM    WM    E     L     SE    SW
EPISODES: tuple[Episode, ...] = (
    Episode("spring_2020", "2020-04-17", 5, 9, 1.00,
            (1.00, 1.20, 0.90, 0.80, 1.30, 0.90, 1.80, 0.80, 0.45),
            (0.88, 1.15), (0.55, 0.85, 1.00, 1.15)),
    Episode("winter_2020_21", "2021-01-22", 10, 9, 0.45,
            (0.90, 1.00, 0.90, 0.90, 1.10, 1.20, 1.30, 1.30, 0.70),
            (0.88, 1.15), (0.55, 0.85, 1.00, 1.15)),
    Episode("heatwave_2022", "2022-07-22", 1.5, 1.5, 0.12,
            (0.50, 0.70, 0.80, 1.10, 1.10, 1.30, 1.40, 1.30, 0.90),
            (1.05, 0.95), (0.30, 0.60, 1.00, 1.50)),
    Episode("winter_2022_23", "2022-12-30", 7, 7, 0.18,
            (1.00, 1.00, 1.00, 1.00, 1.00, 1.00, 1.00, 1.00, 1.00),
            (1.00, 1.00), (0.50, 0.80, 1.00, 1.20)),
)  # fmt: skip


def _years(weeks: pd.DatetimeIndex, origin: pd.Timestamp) -> FloatArray:
    return np.asarray((weeks - origin).days, dtype=np.float64) / 365.25


def _population0() -> FloatArray:
    """Population ``[9, 2, 4]`` (region, sex, age band) at ``tau = 0``."""
    old = _REGION_OLD_SHARES
    age_share = np.column_stack([1.0 - old.sum(axis=1), old])  # [9, 4]
    by_age = _REGION_POP[:, None] * age_share
    sex_share = np.stack([_FEMALE_POP_SHARE, 1.0 - _FEMALE_POP_SHARE])  # [2, 4]
    return np.round(by_age[:, None, :] * sex_share[None, :, :])


def _weekly_deaths0(pop0: FloatArray) -> FloatArray:
    """Weekly deaths ``[9, 2, 4]`` at ``tau = 0`` by raking seed rates to the target shares."""
    deaths = pop0 * _SEED_RATES[None, :, :] / 52.18
    age_sex = _AGE_DEATH_SHARE[None, :] * np.stack([1.0 - _MALE_DEATH_SHARE, _MALE_DEATH_SHARE])
    region_target = _ENGLAND_WEEKLY * _REGION_DEATH_SHARE / _REGION_DEATH_SHARE.sum()
    age_sex_target = _ENGLAND_WEEKLY * age_sex / age_sex.sum()
    for _ in range(50):  # iterative proportional fitting on two margins: converges in a few steps
        deaths *= (region_target / deaths.sum(axis=(1, 2)))[:, None, None]
        deaths *= (age_sex_target / deaths.sum(axis=0))[None, :, :]
    return deaths


def _season(tau_calendar: FloatArray) -> FloatArray:
    """Seasonal factor ``[4, T]`` by age band, averaging one over a year."""
    theta = 2.0 * np.pi * (tau_calendar - _SEASON_PEAK)
    log_s = (
        _SEASON_A1[:, None] * np.cos(theta)[None, :]
        + _SEASON_A2[:, None] * np.cos(2.0 * theta)[None, :]
    )
    grid = 2.0 * np.pi * (np.arange(10_000) + 0.5) / 10_000  # yearly mean of exp(.), by age band
    norm = np.exp(
        _SEASON_A1[:, None] * np.cos(grid)[None, :]
        + _SEASON_A2[:, None] * np.cos(2 * grid)[None, :]
    ).mean(axis=1)
    return np.exp(log_s) / norm[:, None]


def _shift_fractions(weeks: pd.DatetimeIndex) -> FloatArray:
    """Share ``f_t`` of a week's occurrences registered in later weeks (bank holidays)."""
    bh = bank_holidays(weeks[0].year - 1, weeks[-1].year)
    bh = bh[bh.day_of_week < 5].unique()  # registration offices close on weekday holidays only
    # ONS week of a date: the Friday on or after it.
    week_of = bh + pd.to_timedelta((4 - bh.day_of_week) % 7, unit="D")
    christmas = (bh.month == 12) & (bh.day >= 24)
    pos = weeks.get_indexer(week_of)
    inside = pos >= 0
    frac = np.zeros(len(weeks))
    np.add.at(frac, pos[inside], _SHIFT_PER_HOLIDAY)
    xmas_weeks = np.unique(pos[inside & christmas])
    frac[xmas_weeks] += _SHIFT_CHRISTMAS_EXTRA
    return frac


def _register(occurrences: FloatArray, frac: FloatArray) -> FloatArray:
    """Registrations ``[S, T]`` from occurrences ``[S, T]``: the linear registration-shift map L.

    A share ``frac[t]`` of week ``t`` moves to the next two weeks holding no bank holiday (2/3 and
    1/3); what would move past the grid's end is dropped.
    """
    out = occurrences * (1.0 - frac)[None, :]
    held = np.flatnonzero(frac > 0)
    free = np.flatnonzero(frac == 0)
    nxt = np.searchsorted(free, held, side="right")
    moved = occurrences[:, held] * frac[held][None, :]
    for k, share in enumerate(_SHIFT_SPLIT):
        ok = nxt + k < free.size
        target = free[np.minimum(nxt + k, free.size - 1)]
        np.add.at(out, (slice(None), target[ok]), moved[:, ok] * share)
    return out


def _episode_shape(weeks: pd.DatetimeIndex, episode: Episode) -> FloatArray:
    days = np.asarray((weeks - pd.Timestamp(episode.peak)).days, dtype=np.float64)
    width = np.where(days < 0, episode.rise_weeks, episode.fall_weeks) * 7.0
    z = days / width
    return np.where(np.abs(z) < 1.0, np.cos(0.5 * np.pi * z) ** 2, 0.0)


@dataclass(frozen=True)
class _Simulation:
    weeks: pd.DatetimeIndex  # [T] Fridays, FIRST_WEEK..HORIZON
    population: FloatArray  # [S, T]
    occurrence_baseline: FloatArray  # [S, T] B: no excess, no registration shift
    occurrence_excess: FloatArray  # [S, T] E
    shift: FloatArray  # [T] f_t
    true_baseline: FloatArray  # [S, T] L(B)
    true_mean: FloatArray  # [S, T] L(B + E)
    deaths: FloatArray  # [S, T]
    dispersion: FloatArray  # [S]


@lru_cache(maxsize=1)
def _simulate() -> _Simulation:
    """Generate the whole grid once (deterministic); arrays are read-only."""
    rng = np.random.default_rng(SEED)
    weeks = pd.date_range(FIRST_WEEK - pd.Timedelta(weeks=_LEAD_WEEKS), HORIZON, freq="7D")
    n_weeks = len(weeks)
    n_region, n_sex, n_age = len(REGION_CODES), len(SEXES), len(AGE_GROUPS)
    # series s = (region, sex, age), age fastest
    age_of = np.tile(np.arange(n_age), n_region * n_sex)
    tau = _years(weeks, _ORIGIN)  # [T]
    tau_calendar = _years(weeks, pd.Timestamp("2000-01-01"))  # DESIGN's tau: the model's own scale

    pop0 = _population0().reshape(-1)  # [S]
    deaths0 = _weekly_deaths0(_population0()).reshape(-1)  # [S] weekly, tau = 0
    population = np.round(pop0[:, None] * np.exp(_POP_GROWTH[age_of][:, None] * tau[None, :]))
    rate = (deaths0 / pop0)[:, None] * np.exp(_RATE_TREND * tau)[None, :]
    baseline = population * rate * _season(tau_calendar)[age_of, :]

    region_of = np.repeat(np.arange(n_region), n_sex * n_age)
    sex_of = np.tile(np.repeat(np.arange(n_sex), n_age), n_region)
    relative = np.zeros((len(age_of), n_weeks))
    for episode in EPISODES:  # four waves: a loop over episodes, never over weeks or series
        weight = (
            np.asarray(episode.region)[region_of]
            * np.asarray(episode.sex)[sex_of]
            * np.asarray(episode.age)[age_of]
        )
        peak = weeks.get_loc(pd.Timestamp(episode.peak))
        amplitude = episode.england_peak * baseline[:, peak].sum() / (baseline[:, peak] @ weight)
        relative += amplitude * weight[:, None] * _episode_shape(weeks, episode)[None, :]
    excess = baseline * relative

    frac = _shift_fractions(weeks)
    true_baseline = _register(baseline, frac)
    true_mean = true_baseline + _register(excess, frac)

    lo, hi = _DISPERSION_RANGE
    dispersion = rng.uniform(lo, hi, size=len(age_of))
    size = true_mean / (dispersion - 1.0)[:, None]  # NB size mu / (phi - 1): variance phi * mu
    gamma = rng.gamma(shape=size, scale=1.0 / size)
    deaths = rng.poisson(true_mean * gamma).astype(np.float64)

    sim = _Simulation(
        weeks=weeks,
        population=population,
        occurrence_baseline=baseline,
        occurrence_excess=excess,
        shift=frac,
        true_baseline=true_baseline,
        true_mean=true_mean,
        deaths=deaths,
        dispersion=dispersion,
    )
    for value in vars(sim).values():
        if isinstance(value, np.ndarray):
            value.setflags(write=False)
    return sim


def _default_end(today: dt.date | None = None) -> pd.Timestamp:
    """The last Friday of the latest calendar month that ended before ``today``."""
    today = today or dt.date.today()
    month_end = pd.Timestamp(today.year, today.month, 1) - pd.Timedelta(days=1)
    return month_end - pd.Timedelta(days=(month_end.day_of_week - 4) % 7)


def _week_slice(end: object) -> slice:
    sim = _simulate()
    if end is None:
        stop = _default_end()
    else:
        try:
            stop = to_timestamp(end)
        except (TypeError, ValueError) as exc:
            raise InputError(
                f"end={end!r} is not a date; give a date such as '2023-12-31'",
                column="end",
                value=end,
            ) from exc
    if stop < FIRST_WEEK or stop > HORIZON:
        raise InputError(
            f"end={stop.date()} is outside the demo data's range {FIRST_WEEK.date()} to "
            f"{HORIZON.date()}; give an end date in that range",
            column="end",
            value=end,
        )
    first = _LEAD_WEEKS
    last = int(sim.weeks.searchsorted(stop, side="right"))
    return slice(first, last)


def _frame(columns: dict[str, FloatArray], end: object) -> pd.DataFrame:
    sim = _simulate()
    cut = _week_slice(end)
    weeks = sim.weeks[cut]
    n_weeks = len(weeks)
    n_region, n_sex, n_age = len(REGION_CODES), len(SEXES), len(AGE_GROUPS)
    codes = np.arange(n_region * n_sex * n_age)
    data: dict[str, object] = {
        "region": pd.Categorical.from_codes(
            np.repeat(codes // (n_sex * n_age), n_weeks), categories=pd.Index(REGION_CODES)
        ),
        "sex": pd.Categorical.from_codes(
            np.repeat(codes // n_age % n_sex, n_weeks), categories=pd.Index(SEXES)
        ),
        "age_group": pd.Categorical.from_codes(
            np.repeat(codes % n_age, n_weeks), categories=pd.Index(AGE_GROUPS), ordered=True
        ),
        "week_ending": np.tile(weeks.as_unit("ns").to_numpy(), len(codes)),
    }
    for name, values in columns.items():
        data[name] = np.ascontiguousarray(values[:, cut], dtype=np.float64).reshape(-1)
    return pd.DataFrame(data)


def demo_data(end: object = None) -> pd.DataFrame:
    """The bundled demo data: synthetic, England-like weekly death registrations (72 series).

    Nine English regions (ONS codes E12000001..E12000009) by sex (F, M) and age band (0-64, 65-74,
    75-84, 85+), weekly (ONS registration weeks ending on Friday) from 1 January 2010, with
    population. It imitates ONS weekly registrations (regional, age and sex shares, level, trend,
    winter seasonality, bank-holiday registration dips and rebounds, over-dispersion) and carries
    known excess episodes (spring 2020, winter 2020/21, the July 2022 heatwave, winter 2022/23).
    It is not real ONS data. See the module docstring for the generator and :func:`demo_truth` for
    the means it was drawn from.

    Parameters
    ----------
    end : date-like, optional
        Last week-ending date to include (weeks ending on or before it). By default, the last
        Friday of the latest complete calendar month before today. The values of a week never
        depend on ``end``.

    Returns
    -------
    pandas.DataFrame
        Columns ``region``, ``sex``, ``age_group`` (categoricals; ``age_group`` ordered),
        ``week_ending`` (datetime64[ns], Fridays), ``deaths`` (float64, whole numbers) and
        ``population`` (float64), sorted by region, sex, age group and week, with a RangeIndex.

    Raises
    ------
    InputError
        When ``end`` is not a date or lies outside 2010-01-01..2035-12-28.

    Examples
    --------
    >>> frame = demo_data(end="2019-12-31")
    >>> frame.groupby(["region", "sex", "age_group"], observed=True).ngroups
    72
    >>> frame["week_ending"].agg(["min", "max"]).dt.date.tolist()
    [datetime.date(2010, 1, 1), datetime.date(2019, 12, 27)]
    >>> list(frame.columns)
    ['region', 'sex', 'age_group', 'week_ending', 'deaths', 'population']
    """
    sim = _simulate()
    return _frame({"deaths": sim.deaths, "population": sim.population}, end)


def demo_truth(end: object = None) -> pd.DataFrame:
    """The truth behind :func:`demo_data`: the means of its counts, with and without excess.

    All three are expected *registrations* in the week (bank-holiday registration shifts included),
    so ``deaths`` in :func:`demo_data` has mean ``true_mean`` and variance ``phi_s * true_mean``.

    Parameters
    ----------
    end : date-like, optional
        As in :func:`demo_data`; the rows match ``demo_data(end)`` one to one.

    Returns
    -------
    pandas.DataFrame
        ``region``, ``sex``, ``age_group``, ``week_ending`` as in :func:`demo_data`, and
        ``true_baseline`` (expected deaths with no injected excess), ``true_mean`` (with it) and
        ``true_excess`` (``true_mean - true_baseline``; exactly 0 before 2020 and between episodes).

    Raises
    ------
    InputError
        When ``end`` is not a date or lies outside 2010-01-01..2035-12-28.

    Examples
    --------
    >>> truth = demo_truth(end="2020-12-31")
    >>> bool((truth.loc[truth["week_ending"] < "2020-01-01", "true_excess"] == 0).all())
    True
    """
    sim = _simulate()
    return _frame(
        {
            "true_baseline": sim.true_baseline,
            "true_mean": sim.true_mean,
            "true_excess": sim.true_mean - sim.true_baseline,
        },
        end,
    )
