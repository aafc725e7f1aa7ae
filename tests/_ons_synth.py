"""A synthetic data set in the input layout of ONS's ``ons_weekly_ed.R`` (ONS-Health-modelling-hub/
Excess_deaths): ONS's 20 age groups, 7 coarse age groups, 2 sexes and 13 geographies (the four
country rows and the nine English regions), ISO weeks 2015 w1 to 2023 w10. The script reorders
its factor levels by position, so it needs exactly these many levels.

``tests/data/ons_script_weekly.csv`` holds what ONS's own script computed on it (see
``tests/r/ons_script_reference.R``); the generator is seeded and its total is stored with it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from excessmort.weeks import iso_year_week

AGES = [
    "Under 1 year", "1 to 4 years", "5 to 9 years", "10 to 14 years", "15 to 19 years",
    "20 to 24 years", "25 to 29 years", "30 to 34 years", "35 to 39 years", "40 to 44 years",
    "45 to 49 years", "50 to 54 years", "55 to 59 years", "60 to 64 years", "65 to 69 years",
    "70 to 74 years", "75 to 79 years", "80 to 84 years", "85 to 89 years", "90 years and over",
]  # fmt: skip
COARSE = [
    "Under 15 years", "Under 15 years", "Under 15 years", "Under 15 years", "15 to 44 years",
    "15 to 44 years", "15 to 44 years", "15 to 44 years", "15 to 44 years", "15 to 44 years",
    "45 to 64 years", "45 to 64 years", "45 to 64 years", "45 to 64 years", "65 to 74 years",
    "65 to 74 years", "75 to 84 years", "75 to 84 years", "85 to 89 years", "90 years and over",
]  # fmt: skip
COUNTRIES = [
    "England and Wales, including non-residents",
    "Wales, excluding non-residents",
    "Scotland, including non-residents",
    "Northern Ireland, including non-residents",
]
REGIONS = [
    "North East", "North West", "Yorkshire and The Humber", "East Midlands", "West Midlands",
    "East", "London", "South East", "South West",
]  # fmt: skip
SEXES = ["Female", "Male"]
#: ONS's script fits each of these on its own (``weekly.modelling`` called five times).
MODEL_GROUPS = [[COUNTRIES[0]], REGIONS, [COUNTRIES[1]], [COUNTRIES[2]], [COUNTRIES[3]]]


def ons_script_synthetic(seed: int = 2024) -> pd.DataFrame:
    """Weekly deaths and population per age group, sex and geography (long, ``week_ending``)."""
    rng = np.random.default_rng(seed)
    weeks = pd.date_range("2015-01-02", "2023-03-10", freq="7D")  # ISO 2015 w1 .. 2023 w10
    t = np.arange(len(weeks)) / 52.18
    keys, deaths, pops = [], [], []
    for geo in COUNTRIES + REGIONS:
        size = 8.0 if geo == COUNTRIES[0] else rng.uniform(0.3, 1.2)
        for sex in SEXES:
            for i, (age, coarse) in enumerate(zip(AGES, COARSE, strict=True)):
                rate = 2e-4 * np.exp(0.085 * (i - 10)) * (1.15 if sex == "Male" else 1.0)
                pop = np.round(size * rng.uniform(1.5e5, 2.5e5) * (1 + 0.004 * t))
                season = 1 + (0.05 + 0.012 * i) * np.cos(2 * np.pi * (t - 0.03))
                mu = pop * rate * season * (1 - 0.006 * t)
                deaths.append(rng.negative_binomial(mu / 0.3, 1 / 1.3))  # variance 1.3 mu
                pops.append(pop)
                keys.append((geo, sex, age, coarse))
    n = len(weeks)
    k = pd.DataFrame(keys, columns=["region", "sex", "age_group", "age_group_coarse"])
    out = k.loc[k.index.repeat(n)].reset_index(drop=True)
    out["week_ending"] = np.tile(weeks.to_numpy(), len(keys))
    out["deaths"] = np.concatenate(deaths)
    out["population"] = np.concatenate(pops)
    return out


def ons_layout(frame: pd.DataFrame) -> pd.DataFrame:
    """The columns of ONS's workbook, in its order."""
    y, w = iso_year_week(frame["week_ending"])
    return pd.DataFrame(
        {
            "year": y,
            "week": w,
            "agegrp": frame["age_group"],
            "agegrp_coarse": frame["age_group_coarse"],
            "sex": frame["sex"],
            "geography": frame["region"],
            "deaths": frame["deaths"],
            "population": frame["population"],
        }
    )
