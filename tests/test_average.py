"""FiveYearAverage: expected deaths against a direct pandas computation (closed form, 1e-12),
week 53, short history, exclude_years, dispersion and the window covariance, interval calibration."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import excessmort as em
from excessmort.baselines.average import FiveYearAverage, history_index
from excessmort.exceptions import InputError

RTOL = 1e-12

# Resolve the lazy export before anything imports the submodule excessmort.fit (which would bind the
# package attribute ``fit`` to the module).
fit_frame = em.fit


def _has_53(year: int) -> bool:
    return dt.date(year, 12, 28).isocalendar()[1] == 53


def _frame(
    seed: int = 1, start: str = "2008-03-07", end: str = "2021-12-31", n_series: int = 4
) -> pd.DataFrame:
    """Poisson counts on Friday weeks for a few areas; 2009, 2015 and 2020 have a week 53."""
    rng = np.random.default_rng(seed)
    weeks = pd.date_range(start, end, freq="7D")
    level = rng.uniform(40, 400, n_series)
    season = 1 + 0.2 * np.cos(2 * np.pi * np.arange(len(weeks)) / 52.18)
    deaths = rng.poisson(level[:, None] * season[None, :]).astype(float)
    return pd.DataFrame(
        {
            "area": np.repeat([f"A{i}" for i in range(n_series)], len(weeks)),
            "week_ending": np.tile(weeks.to_numpy(), n_series),
            "deaths": deaths.reshape(-1),
        }
    )


def _sources(frame: pd.DataFrame, years: int = 5, exclude: tuple[int, ...] = ()) -> pd.DataFrame:
    """One row per (target week, history count) with the count's deaths: the ONS rule spelled out."""
    iso = frame["week_ending"].dt.isocalendar()
    long = frame.assign(
        year=iso["year"].astype(int).to_numpy(), week=iso["week"].astype(int).to_numpy()
    )
    prior: dict[int, list[int]] = {}
    for y in long["year"].unique():
        cands = [c for c in range(y - 1, y - 100, -1) if c not in exclude]
        prior[int(y)] = cands[:years]
    rows = []
    for k in range(years):
        src_year = long["year"].map(lambda y, k=k: prior[int(y)][k])
        src_week = np.where(
            (long["week"] == 53) & ~src_year.map(_has_53).to_numpy(), 52, long["week"]
        )
        rows.append(long.assign(src_year=src_year.to_numpy(), src_week=src_week, k=k))
    targets = pd.concat(rows, ignore_index=True)
    history = long.rename(
        columns={
            "year": "src_year",
            "week": "src_week",
            "deaths": "src_deaths",
            "week_ending": "src_week_ending",
        }
    )
    return targets.merge(history, on=["area", "src_year", "src_week"], how="left")


def _oracle_mu(frame: pd.DataFrame, years: int = 5, exclude: tuple[int, ...] = ()) -> pd.DataFrame:
    src = _sources(frame, years, exclude)
    g = src.groupby(["area", "week_ending"])["src_deaths"]
    out = g.agg(["mean", "count"]).reset_index()
    out.loc[out["count"] < years, "mean"] = np.nan  # a missing year (or a NaN count) gives NaN
    return out


def _fit(frame: pd.DataFrame, reference=None, **options) -> em.Fit:
    return fit_frame(frame, baseline="five_year_average", reference=reference, **options)


def _compare(got: np.ndarray, want: np.ndarray, rtol: float = RTOL) -> None:
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))  # NaN positions first
    ok = ~np.isnan(want)
    np.testing.assert_allclose(got[ok], want[ok], rtol=rtol, atol=0)


@pytest.mark.parametrize(
    ("exclude", "first_defined"),
    [((), "2013-03-08"), ((2020,), "2013-03-08"), ((2012, 2016), "2014-03-07")],
)
def test_expected_equals_direct_pandas_computation(
    exclude: tuple[int, ...], first_defined: str
) -> None:
    frame = _frame()
    # A missing count: every average that uses it must be NaN.
    frame.loc[(frame["area"] == "A1") & (frame["week_ending"] == "2016-06-03"), "deaths"] = np.nan
    fit = _fit(frame, exclude_years=exclude)
    got = fit.weekly[["area", "week_ending", "expected"]]
    want = _oracle_mu(frame, exclude=exclude)
    merged = got.astype({"area": str}).merge(
        want, on=["area", "week_ending"], how="left", validate="1:1"
    )
    _compare(merged["expected"].to_numpy(), merged["mean"].to_numpy())
    # The data start in March 2008 (week 10): earlier weeks lack a year (2013 needs 2007 when 2012 is
    # excluded).
    assert merged.dropna(subset=["expected"])["week_ending"].min() == pd.Timestamp(first_defined)
    assert merged["expected"].notna().sum() > 1500
    # The NaN count of A1 (2016 week 22) kills 2017-2021 week 22 of A1 only (when 2016 is used).
    a1 = merged[
        (merged["area"] == "A1") & (merged["week_ending"].dt.isocalendar()["week"].to_numpy() == 22)
    ]
    dead = a1.loc[a1["expected"].isna() & (a1["week_ending"] > "2014-01-01"), "week_ending"].dt.year
    assert set(dead) == (
        {2017, 2018, 2019, 2020, 2021} - {y for y in range(2017, 2022) if 2016 in exclude}
    )


def test_week_53_rule_by_hand() -> None:
    frame = _frame(seed=3, start="2009-01-02")
    fit = _fit(frame)
    w = fit.weekly.astype({"area": str}).set_index(["area", "week_ending"])["expected"]
    y = frame.set_index(["area", "week_ending"])["deaths"]
    a = "A2"
    # 2020 week 53 (ending 2021-01-01): 2015 week 53 (ending 2016-01-01) and week 52 of 2016-2019.
    hist = ["2016-01-01", "2016-12-30", "2017-12-29", "2018-12-28", "2019-12-27"]
    want = np.mean([y[(a, pd.Timestamp(d))] for d in hist])
    assert w[(a, pd.Timestamp("2021-01-01"))] == pytest.approx(want, rel=RTOL, abs=0)
    # 2015 week 53: 2010-2014 have none, so the five weeks 52; 2009's week 53 is not among them.
    hist = ["2010-12-31", "2011-12-30", "2012-12-28", "2013-12-27", "2014-12-26"]
    want = np.mean([y[(a, pd.Timestamp(d))] for d in hist])
    assert w[(a, pd.Timestamp("2016-01-01"))] == pytest.approx(want, rel=RTOL, abs=0)
    # 2016 week 52 is the mean of week 52 of 2011-2015 (2015's week 53 is not used).
    hist = ["2011-12-30", "2012-12-28", "2013-12-27", "2014-12-26", "2015-12-25"]
    want = np.mean([y[(a, pd.Timestamp(d))] for d in hist])
    assert w[(a, pd.Timestamp("2016-12-30"))] == pytest.approx(want, rel=RTOL, abs=0)


def test_history_index_matches_iso_calendar() -> None:
    weeks = pd.date_range("2014-01-03", "2021-12-31", freq="7D")
    idx = history_index(weeks, years=5, exclude_years=(2020,))
    # 2021 week 1 (ending 2021-01-08) uses week 1 of 2019, 2018, 2017, 2016, 2015.
    t = weeks.get_loc(pd.Timestamp("2021-01-08"))
    assert [weeks[j].isocalendar()[:2] for j in idx[t]] == [
        (y, 1) for y in (2019, 2018, 2017, 2016, 2015)
    ]
    # 2014 weeks lack every history year.
    assert (idx[weeks.year == 2014] < 0).all()


def test_dispersion_and_weekly_variance_closed_form() -> None:
    frame = _frame(seed=5, start="2013-01-04", end="2020-12-25")
    fit = _fit(frame, reference=("2014-01-01", "2019-12-31"))
    res = fit.result
    src = _sources(frame)
    # Weeks whose five history counts all end within the reference period.
    src["in_ref"] = src["src_week_ending"].between("2014-01-01", "2019-12-31")
    per_week = src.groupby(["area", "week_ending"]).agg(
        mean=("src_deaths", "mean"),
        var=("src_deaths", lambda v: v.var(ddof=1)),
        n=("src_deaths", "count"),
        in_ref=("in_ref", "all"),
    )
    per_week = per_week[(per_week["n"] == 5) & per_week["in_ref"]]
    phi_raw = (per_week["var"] / per_week["mean"]).groupby("area").mean()
    keys = fit.panel.keys["area"].astype(str)
    np.testing.assert_allclose(res.dispersion_raw, phi_raw.loc[keys].to_numpy(), rtol=RTOL)
    np.testing.assert_allclose(
        res.dispersion, np.maximum(phi_raw.loc[keys].to_numpy(), 1.0), rtol=RTOL
    )
    # Only the 2019 weeks (history 2014-2018) and the 2020 weeks (2015-2019) qualify.
    assert (per_week.reset_index()["week_ending"].dt.year.isin([2019, 2020])).all()
    assert (
        res.info["dispersion_weeks"] == per_week.groupby("area").size().loc[keys].to_numpy()
    ).all()
    # Weekly parameter variance of a group: sum_s phi_s mu_st / 5; observation variance phi mu.
    groups = np.array([0, 1, 0, 1])
    want = np.stack(
        [(res.dispersion[:, None] * res.mu / 5.0)[groups == g].sum(axis=0) for g in (0, 1)]
    )
    _compare(res.param_variance_weekly(groups, 2), want)
    _compare(res.obs_variance(), res.dispersion[:, None] * res.mu)


def test_dispersion_floor_option_and_no_reference() -> None:
    frame = _frame(seed=6, start="2012-01-06", end="2019-12-27")
    res = _fit(frame, dispersion_floor=0).result
    src = _sources(frame)
    per_week = src.groupby(["area", "week_ending"])["src_deaths"].agg(["mean", "var", "count"])
    per_week = per_week[per_week["count"] == 5]
    phi = (per_week["var"] / per_week["mean"]).groupby("area").mean()
    np.testing.assert_allclose(
        res.dispersion, phi.loc[_fit(frame).panel.keys["area"].astype(str)].to_numpy(), rtol=RTOL
    )
    # Poisson data: phi near 1 (mean of ratios with ~4 df each over many weeks).
    assert np.all(np.abs(res.dispersion - 1.0) < 0.25)


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (
            "2020-12-18",
            "2021-01-15",
        ),  # weeks 51, 52, 53 of 2020 and 1-2 of 2021: week 52 counts reused
        ("2020-03-06", "2021-06-25"),
    ],  # spans two target years: four history years shared by each week
)
@pytest.mark.parametrize("exclude", [(), (2020,)])
def test_window_variance_counts_shared_history(
    start: str, end: str, exclude: tuple[int, ...]
) -> None:
    frame = _frame(seed=7, start="2014-01-03", end="2021-12-31")
    # the closed form of the independence mode (the dependence model is tested in test_dependence)
    fit = _fit(frame, exclude_years=exclude, dependence=False)
    res = fit.result
    weeks = fit.weeks
    window = np.asarray((weeks >= start) & (weeks <= end))
    src = _sources(frame, exclude=exclude)
    src = src[src["week_ending"].between(start, end)]
    # Multiplicity n_j of each history count j over the window: var = phi sum_j (n_j / 5)^2 y_j.
    mult = src.groupby(["area", "src_week_ending"]).agg(n=("k", "size"), y=("src_deaths", "first"))
    assert mult["n"].max() >= 2  # the case under test: some counts are reused
    contrib = ((mult["n"] / 5.0) ** 2 * mult["y"]).groupby("area").sum()
    keys = fit.panel.keys["area"].astype(str)
    want = res.dispersion * contrib.loc[keys].to_numpy()
    got = res.param_variance_window(np.arange(4), 4, window)
    np.testing.assert_allclose(got, want, rtol=RTOL)
    # Summing weekly variances would miss the covariance: it is strictly larger here.
    assert np.all(
        got > res.param_variance_weekly(np.arange(4), 4)[:, window].sum(axis=1) * (1 + 1e-6)
    )
    # Groups add (series are independent) and Fit.cumulative uses it: total bounds from the closed form.
    total = fit.by().cumulative(start, end)
    mu = res.mu[:, window].sum()
    sd = np.sqrt((res.dispersion[:, None] * res.mu)[:, window].sum() + want.sum())
    z = stats.norm.ppf(0.975)
    obs = frame.loc[frame["week_ending"].between(start, end), "deaths"].sum()
    assert total["expected"].iloc[0] == pytest.approx(mu, rel=RTOL)
    assert total["excess_lower"].iloc[0] == pytest.approx(obs - (mu + z * sd), rel=1e-12)
    assert total["excess_upper"].iloc[0] == pytest.approx(obs - (mu - z * sd), rel=1e-12)


def test_window_with_undefined_weeks_is_nan() -> None:
    frame = _frame(seed=8, start="2014-01-03", end="2020-12-25")
    res = _fit(frame).result
    weeks = pd.date_range("2014-01-03", "2020-12-25", freq="7D")
    window = np.asarray(
        (weeks >= "2018-06-01") & (weeks <= "2019-06-30")
    )  # 2018 has no full history
    assert np.isnan(res.param_variance_window(np.arange(4), 4, window)).all()


def test_reference_does_not_change_expected() -> None:
    frame = _frame(seed=9, start="2013-01-04", end="2020-12-25")
    a = _fit(frame, reference=("2015-01-01", "2019-12-31")).result.mu
    b = _fit(frame, reference=None).result.mu
    np.testing.assert_array_equal(a, b)


def test_bad_options_and_short_history() -> None:
    frame = _frame(start="2016-01-01", end="2020-12-25")
    with pytest.raises(InputError, match="too little history") as err:
        _fit(frame)  # 2016-2020: no week has five earlier years
    assert err.value.column == "week_ending"
    for bad in ({"years": 0}, {"years": 2.5}, {"exclude_years": "x"}, {"dispersion_floor": -1}):
        with pytest.raises(InputError) as err:
            _fit(_frame(), **bad)
        assert err.value.column == next(iter(bad))
    assert FiveYearAverage(years=3).fit  # options are stored, not validated, in __init__


@pytest.mark.calibration
def test_weekly_prediction_intervals_cover() -> None:
    """95% prediction intervals for 2020 cover 93-97% of no-excess weeks (Poisson and phi = 2)."""
    rng = np.random.default_rng(11)
    weeks = pd.date_range("2014-01-03", "2020-12-25", freq="7D")
    n_series = 300
    level = rng.uniform(50, 800, n_series)
    season = 1 + 0.25 * np.cos(2 * np.pi * (weeks.day_of_year.to_numpy() - 20) / 365.25)
    mean = level[:, None] * season[None, :]
    target = np.asarray(weeks.year == 2020)
    for phi in (1.0, 2.0):
        counts = (
            rng.poisson(mean) if phi == 1.0 else rng.poisson(rng.gamma(mean / (phi - 1), phi - 1))
        )
        frame = pd.DataFrame(
            {
                "area": np.repeat([f"S{i:03d}" for i in range(n_series)], len(weeks)),
                "week_ending": np.tile(weeks.to_numpy(), n_series),
                "deaths": counts.reshape(-1).astype(float),
            }
        )
        wk = _fit(frame, reference=("2015-01-01", "2019-12-31")).weekly
        wk = wk[wk["week_ending"].dt.year == 2020]
        inside = (wk["excess_lower"] <= 0) & (wk["excess_upper"] >= 0)
        assert 0.93 <= inside.mean() <= 0.97, (phi, inside.mean())
        assert len(wk) == n_series * target.sum()
