"""The ons2024 baseline against a live R oracle (ONS's modelling step, tests/r/ons2024_oracle.R) and
statsmodels on the same dense design.

R: ``glm(family = quasipoisson)`` with ONS's formula, window and COVID exclusions, and
``predict(type = "response", se.fit = TRUE)``, on a synthetic data set in ONS's input layout (year,
week or month, agegrp, agegrp_coarse, sex, geography, deaths, population). Tolerances (relative):
expected deaths and their standard error 1e-8 against R and against statsmodels
``GLM(Poisson, offset, scale="X2")`` on the dense design of the same window (statsmodels keeps
the aliased columns and solves with a pseudo-inverse: the fitted values and x'Vx of estimable rows
do not depend on which columns are dropped).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import linalg, stats

import excessmort as em
from _ons_synth import ons_layout
from excessmort.baselines.ons2024 import (
    ONS_COVID_MONTHS,
    ONS_COVID_WEEKS,
    Ons2024,
    OnsMonthlyFit,
    ons_monthly,
    ons_week_windows,
    working_days,
)
from excessmort.exceptions import InputError
from excessmort.weeks import iso_year_week

ORACLE = Path(__file__).parent / "r" / "ons2024_oracle.R"
AGES = {"a15-44": "c00-64", "a45-64": "c00-64", "a65-84": "c65+", "a85+": "c65+"}
RATES = {"a15-44": 2e-5, "a45-64": 1e-4, "a65-84": 6e-4, "a85+": 3e-3}
REGIONS = ["E12000001", "E12000002", "E12000003"]
RTOL = 1e-8


def _weekly(seed: int = 3, regions=REGIONS) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    weeks = pd.date_range("2014-01-03", "2022-12-30", freq="7D")
    t = np.arange(len(weeks))
    rows = []
    for r in regions:
        for sx in ("F", "M"):
            for a, rate in RATES.items():
                pop = rng.uniform(2e5, 8e5) * (1 + 0.002 * t / 52)
                season = 1 + (0.1 if rate < 1e-4 else 0.25) * np.cos(2 * np.pi * (t - 2) / 52.18)
                mu = pop * rate * season * (1.1 if sx == "M" else 1.0) * (1 - 0.004 * t / 52)
                y = rng.negative_binomial(mu / 0.5, 1 / 1.5)  # variance 1.5 mu
                rows.append(
                    pd.DataFrame(
                        {
                            "region": r,
                            "sex": sx,
                            "age_group": a,
                            "age_group_coarse": AGES[a],
                            "week_ending": weeks,
                            "deaths": y,
                            "population": np.round(pop),
                        }
                    )
                )
    return pd.concat(rows, ignore_index=True)


def _rscript() -> str:
    path = shutil.which("Rscript")
    assert path, "Rscript is missing: make test installs r-base-core (Debian)"
    return path


def _run_r(tmp_path: Path, mode: str, data: pd.DataFrame, periods: list[int]) -> pd.DataFrame:
    src = tmp_path / f"{mode}.csv"
    out = tmp_path / f"{mode}_out.csv"
    data.to_csv(src, index=False)
    subprocess.run(
        [_rscript(), str(ORACLE), mode, str(src), ",".join(map(str, periods)), str(out)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return pd.read_csv(out)


PERIODS = [202001, 202014, 202053, 202101, 202126, 202152, 202210]


@pytest.fixture(scope="module")
def weekly_case(tmp_path_factory):
    frame = _weekly()
    fit = em.fit(frame, baseline=Ons2024(coarse_age="age_group_coarse", predict_from="2020-01-01"))
    r = _run_r(tmp_path_factory.mktemp("ons"), "weekly", ons_layout(frame), PERIODS)
    return frame, fit, r


def _ours(fit, periods) -> pd.DataFrame:
    w = fit.weekly
    y, wk = iso_year_week(w["week_ending"])
    w = w.assign(period=y * 100 + wk)
    se = fit.result.se_expected()
    w["se"] = se.reshape(-1)
    return w[w["period"].isin(periods)]


def test_weekly_matches_r(weekly_case):
    _, fit, r = weekly_case
    ours = _ours(fit, PERIODS)
    m = ours.merge(
        r.rename(columns={"agegrp": "age_group", "geography": "region"}),
        on=["period", "age_group", "sex", "region"],
        validate="one_to_one",
    )
    assert len(m) == len(PERIODS) * 24
    np.testing.assert_allclose(m["expected"], m["d_hat"], rtol=RTOL)
    np.testing.assert_allclose(m["se"], m["se_d_hat"], rtol=RTOL)
    # the per-fit dispersion is R's summary()$dispersion
    y, wk = iso_year_week(fit.weeks)
    phi = pd.Series(fit.result.phi_t, index=y * 100 + wk)
    np.testing.assert_allclose(
        phi.loc[r["period"]].to_numpy(), r["dispersion"].to_numpy(), rtol=RTOL
    )


def test_weekly_ons_intervals_are_expected_plus_minus_z_se(weekly_case):
    _, fit, _ = weekly_case
    ours = _ours(fit, PERIODS)
    z = stats.norm.ppf(0.975)
    np.testing.assert_allclose(
        ours["expected_lower"], ours["expected"] - z * ours["se"], rtol=1e-12
    )
    np.testing.assert_allclose(
        ours["expected_upper"], ours["expected"] + z * ours["se"], rtol=1e-12
    )
    exc = ours["observed"] - ours["expected"]
    np.testing.assert_allclose(ours["excess_lower"], exc - z * ours["se"], rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(ours["excess_upper"], exc + z * ours["se"], rtol=1e-10, atol=1e-9)
    # aggregates add the variances, as ONS's script aggregates
    tot = fit.by().weekly
    tot = tot[tot["week_ending"] == pd.Timestamp("2021-01-08")]
    rows = ours[ours["week_ending"] == pd.Timestamp("2021-01-08")]
    sd = np.sqrt(np.sum(rows["se"] ** 2))
    np.testing.assert_allclose(tot["expected_upper"], rows["expected"].sum() + z * sd, rtol=1e-10)


def _window_rows(fit, period):
    y, wk = iso_year_week(fit.weeks)
    t = int(np.flatnonzero(y * 100 + wk == period)[0])
    k = fit.result.fit_of[t]
    first, last = fit.result.windows[k]
    return t, np.arange(first, last + 1)


@pytest.fixture(autouse=True)
def _one_blas_thread():
    """A multi-threaded BLAS on a busy machine spends minutes syncing threads on these sizes."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.mark.parametrize("period", [202053, 202126])
def test_weekly_matches_statsmodels(weekly_case, period):
    frame, _, _ = weekly_case
    # statsmodels iterates to 1e-13; R (and our default) stop at a relative deviance change of
    # 1e-8 and take the covariance at the weights of the last iteration, which moves se by ~1e-6.
    # Refit to the same tight tolerance for the comparison (the default fit matches R above).
    y, wk = iso_year_week(frame["week_ending"])
    day = frame.loc[(y * 100 + wk) == period, "week_ending"].iloc[0]
    sub = frame[frame["week_ending"] <= day]
    base = Ons2024(coarse_age="age_group_coarse", predict_from=day, tol=1e-13)
    fit = em.fit(sub, baseline=base, dependence=False)  # the weekly fit alone is compared
    res = fit.result
    panel = fit.panel
    t, rows = _window_rows(fit, period)
    y, wk = iso_year_week(fit.weeks)
    covid = np.array([(a, b) in set(ONS_COVID_WEEKS) for a, b in zip(y, wk, strict=True)])
    rows = rows[~covid[rows]]
    S = panel.n_series
    ss, tt = np.repeat(np.arange(S), rows.size), np.tile(rows, S)
    X = res.design.dense(ss, tt)
    # an independent set of columns: scipy's column-pivoted QR (rank at 1e-9 of the largest pivot)
    _, R, piv = linalg.qr(X, mode="economic", pivoting=True)
    rank = int(np.sum(np.abs(np.diag(R)) > 1e-9 * abs(R[0, 0])))
    keep = np.sort(piv[:rank])
    X = X[:, keep]
    yy = panel.deaths[ss, tt]
    off = panel.offset[ss, tt]
    m = sm.GLM(yy, X, family=sm.families.Poisson(), offset=off).fit(scale="X2", tol=1e-13)
    Xp = res.design.dense(np.arange(S), np.full(S, t))[:, keep]
    mu_sm = np.exp(Xp @ m.params + panel.offset[:, t])
    np.testing.assert_allclose(res.mu[:, t], mu_sm, rtol=RTOL)
    se_sm = mu_sm * np.sqrt(np.einsum("ij,jk,ik->i", Xp, m.cov_params(), Xp))
    np.testing.assert_allclose(res.se_expected()[:, t], se_sm, rtol=RTOL)


def test_week_windows_follow_ons_rule():
    weeks = pd.date_range("2014-01-03", "2022-12-30", freq="7D")
    y, w = iso_year_week(weeks)
    win = ons_week_windows(y, w, np.ones(len(weeks), bool))
    by_period = {int(y[t] * 100 + w[t]): k for k, ts in win.items() for t in ts}
    label = lambda i: int(y[i] * 100 + w[i])  # noqa: E731
    first, last = by_period[202101]
    assert (label(first), label(last)) == (201502, 202001)
    first, last = by_period[202053]
    assert (label(first), label(last)) == (201501, 201952)
    assert by_period[202052] == by_period[202053]  # weeks 52 and 53 share one fit
    first, last = by_period[202210]
    assert (label(first), label(last)) == (201611, 202110)
    assert 201910 not in by_period  # 2013 is not in the data


def test_full_intervals_option(weekly_case):
    frame, fit_ons, _ = weekly_case
    fit = em.fit(
        frame[frame["week_ending"] <= "2021-04-30"],
        baseline=Ons2024(
            coarse_age="age_group_coarse", predict_from="2021-01-01", intervals="full"
        ),
        dependence=False,  # the closed forms below assume rows independent given the baseline
    )
    res = fit.result
    t = int(np.flatnonzero(fit.weeks == pd.Timestamp("2021-03-05"))[0])
    # g'Vg for one series equals its squared standard error of the fitted mean
    var = res.param_variance_weekly(np.arange(fit.panel.n_series), fit.panel.n_series)
    np.testing.assert_allclose(var[:, t], res.se_expected()[:, t] ** 2, rtol=1e-10)
    # England: the shared parameters' covariance g'Vg with g = sum mu x (dense check)
    S = fit.panel.n_series
    Xp = res.design.dense(np.arange(S), np.full(S, t))
    g = res.mu[:, t] @ Xp
    V = res.phi_t[t] * res.covs[res.fit_of[t]]
    tot = res.param_variance_weekly(np.zeros(S, dtype=np.int64), 1)
    np.testing.assert_allclose(tot[0, t], g @ V @ g, rtol=1e-10)
    w = fit.by().weekly.set_index("week_ending").loc[pd.Timestamp("2021-03-05")]
    sd = np.sqrt(g @ V @ g + np.sum(res.phi_t[t] * res.mu[:, t]))
    z = stats.norm.ppf(0.975)
    np.testing.assert_allclose(
        w["excess_upper"], w["observed"] - max(w["expected"] - z * sd, 0), rtol=1e-10
    )
    # intervals wider than ONS's (observation variance added)
    assert (fit.weekly["excess_upper"] - fit.weekly["excess_lower"]).dropna().min() > 0
    ons_w = fit_ons.weekly.set_index(["region", "sex", "age_group", "week_ending"])
    full_w = fit.weekly.set_index(["region", "sex", "age_group", "week_ending"])
    both = full_w.merge(ons_w, left_index=True, right_index=True, suffixes=("", "_ons"))
    both = both.dropna(subset=["expected", "expected_ons"])
    np.testing.assert_allclose(both["expected"], both["expected_ons"], rtol=1e-9)
    assert (
        (both["excess_upper"] - both["excess_lower"])
        > (both["excess_upper_ons"] - both["excess_lower_ons"])
    ).all()
    # a cumulative window: between independent and perfectly correlated weeks
    cum = fit.by().cumulative("2021-03-05", "2021-04-30")
    assert np.isfinite(cum["excess_lower"]).all()


def test_through_fit_api_and_errors(weekly_case):
    frame, fit, _ = weekly_case
    assert fit.baseline == "ons2024"
    assert fit.weekly["expected"].notna().sum() > 0
    assert np.isnan(fit.weekly.loc[fit.weekly["week_ending"] < "2020-01-01", "expected"]).all()
    c = fit.by("region").cumulative("2020-03-01", "2020-12-31")
    assert len(c) == 3 and np.isfinite(c["excess_lower"]).all()
    with pytest.raises(InputError, match="intervals"):
        em.fit(frame, baseline="ons2024", intervals="bad")
    with pytest.raises(InputError, match="population"):
        em.fit(frame.drop(columns="population"), baseline="ons2024")
    with pytest.raises(InputError, match="too little history"):
        em.fit(frame[frame["week_ending"] < "2019-06-01"], baseline="ons2024", reference=None)


# ------------------------------------------------------------------------------------------ monthly
def _monthly(seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    months = pd.period_range("2013-01", "2022-12", freq="M")
    t = np.arange(len(months))
    wd = working_days(months.year, months.month)
    rows = []
    for r in REGIONS[:2]:
        for sx in ("F", "M"):
            for a, rate in RATES.items():
                pop = rng.uniform(2e5, 8e5) * (1 + 0.002 * t / 12)
                season = 1 + 0.2 * np.cos(2 * np.pi * t / 12)
                mu = pop * rate * 4.3 * season * (wd / 21.0) ** 0.5
                y = rng.negative_binomial(mu / 0.4, 1 / 1.4)
                rows.append(
                    pd.DataFrame(
                        {
                            "region": r,
                            "sex": sx,
                            "age_group": a,
                            "age_group_coarse": AGES[a],
                            "year": months.year,
                            "month": months.month,
                            "working_days": wd,
                            "deaths": y,
                            "population": np.round(pop),
                        }
                    )
                )
    return pd.concat(rows, ignore_index=True)


def test_monthly_matches_r(tmp_path):
    frame = _monthly()
    ours = ons_monthly(frame, coarse_age="age_group_coarse", predict_from=(2020, 1))
    layout = frame.rename(
        columns={
            "age_group": "agegrp",
            "age_group_coarse": "agegrp_coarse",
            "region": "geography",
            "working_days": "weekdays",
        }
    )
    periods = [202001, 202006, 202012, 202107, 202212]
    r = _run_r(tmp_path, "monthly", layout, periods)
    ours["period"] = ours["year"] * 100 + ours["month"]
    m = ours.merge(
        r.rename(columns={"agegrp": "age_group", "geography": "region"}),
        on=["period", "age_group", "sex", "region"],
        validate="one_to_one",
    )
    assert len(m) == len(periods) * 16
    np.testing.assert_allclose(m["expected"], m["d_hat"], rtol=RTOL)
    np.testing.assert_allclose(m["se"], m["se_d_hat"], rtol=RTOL)
    np.testing.assert_allclose(m["dispersion_x"], m["dispersion_y"], rtol=RTOL)
    z = stats.norm.ppf(0.975)
    np.testing.assert_allclose(
        m["excess_upper"], m["observed"] - m["expected"] + z * m["se"], rtol=1e-10
    )


def test_working_days_closed_form():
    # January 2021: 21 weekdays, New Year's Day a Friday -> 20; August 2022: 23 weekdays less the
    # summer bank holiday -> 22; May 2020: 21 weekdays less 8 May (VE Day) and 25 May -> 19
    assert working_days([2021, 2022, 2020], [1, 8, 5]).tolist() == [20, 22, 19]


@pytest.mark.parametrize("engine", ["numba", "numpy"])
def test_batched_pass_matches_the_window_loop(weekly_case, engine):
    """Every window in one stacked pass (numba kernels or their numpy twin) against one window
    after another (the per-window glm.fit that matches R above): 1e-10 relative."""
    from excessmort.baselines.ons2024 import fit_ons

    _, fit, _ = weekly_case
    res, panel = fit.result, fit.panel
    y, wk = iso_year_week(panel.weeks)
    covid = np.array([(a, b) in set(ONS_COVID_WEEKS) for a, b in zip(y, wk, strict=True)])
    usable = panel.observed_mask & np.isfinite(panel.offset) & ~covid[None, :]
    predict = np.asarray((panel.weeks >= "2020-11-20") & (panel.weeks <= "2021-03-05"))
    wins = ons_week_windows(y, wk, predict)
    args = (res.design, panel.deaths, panel.offset, usable, wins)
    loop = fit_ons(*args, keep_cov=True, batched=False)
    both = fit_ons(*args, keep_cov=True, batched=True, engine=engine, cells=30_000)
    assert len(wins) == 15 and both["phi"].size == 15  # weeks 2020 w52 and w53 share one fit
    for key in ("mu", "xvx", "phi_t"):
        ok = np.isfinite(loop[key])
        assert np.array_equal(ok, np.isfinite(both[key]))
        np.testing.assert_allclose(both[key][ok], loop[key][ok], rtol=1e-10)
    for key in ("n_iter", "rank", "n_obs", "converged", "first", "last"):
        np.testing.assert_array_equal(both[key], loop[key])
    for a, b in zip(both["cov"], loop["cov"], strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-10 * np.max(np.abs(b)))


# ------------------------------------------------------------------ ONS's own script (stored run)
def test_matches_ons_own_script_stored_run():
    """ONS's own ``ons_weekly_ed.R`` (run unmodified on tests/_ons_synth.py's data in its workbook
    layout by tests/r/ons_script_reference.R; its output stored in tests/data, the script itself is
    not: the repository has no licence) against ours: its five models (England and Wales, the
    English regions, Wales, Scotland, Northern Ireland), three weeks, every series; 1e-8."""
    from _ons_synth import MODEL_GROUPS, REGIONS, ons_script_synthetic
    from excessmort.baselines.ons2024 import build_ons_design, fit_ons
    from excessmort.panel import Panel

    ref = pd.read_csv(Path(__file__).parent / "data" / "ons_script_weekly.csv")
    frame = ons_script_synthetic()
    frame["region"] = frame["region"].map(lambda g: f"R{REGIONS.index(g)}" if g in REGIONS else g)
    panel = Panel.from_frame(frame, strata=["region", "sex", "age_group", "age_group_coarse"])
    y, wk = iso_year_week(panel.weeks)
    periods = sorted(ref["period"].unique())
    t_ref = [int(np.flatnonzero(y * 100 + wk == p)[0]) for p in periods]
    covid = np.array([(a, b) in set(ONS_COVID_WEEKS) for a, b in zip(y, wk, strict=True)])
    rows = []
    for geos in MODEL_GROUPS:
        names = [f"R{REGIONS.index(g)}" if g in REGIONS else g for g in geos]
        sub = panel.take(np.flatnonzero(panel.keys["region"].isin(names).to_numpy()))
        k = sub.keys
        design = build_ons_design(
            k["age_group"].tolist(), k["age_group_coarse"].tolist(), k["sex"].tolist(),
            k["region"].tolist(), np.minimum(wk, 52) - 1, 52,
            np.arange(1, sub.n_weeks + 1, dtype=float),
        )  # fmt: skip
        predict = np.zeros(sub.n_weeks, dtype=bool)
        predict[t_ref] = True
        usable = sub.observed_mask & np.isfinite(sub.offset) & ~covid[None, :]
        out = fit_ons(design, sub.deaths, sub.offset, usable, ons_week_windows(y, wk, predict))
        for p, t in zip(periods, t_ref, strict=True):
            rows.append(
                k.assign(
                    period=p,
                    deaths=sub.deaths[:, t],
                    expected=out["mu"][:, t],
                    se=out["mu"][:, t] * np.sqrt(out["phi_t"][t] * out["xvx"][:, t]),
                )
            )
    ours = pd.concat(rows)
    ours["geography"] = ours["region"].map(lambda g: REGIONS[int(g[1:])] if g[0] == "R" else g)
    m = ours.merge(
        ref.rename(columns={"agegrp": "age_group", "deaths": "deaths_ons"}),
        on=["period", "geography", "sex", "age_group"],
        validate="one_to_one",
    )
    assert len(m) == len(ref) == 3 * 520
    np.testing.assert_array_equal(m["deaths"], m["deaths_ons"])  # the same synthetic data
    np.testing.assert_allclose(m["expected"], m["d_hat"], rtol=RTOL)
    np.testing.assert_allclose(m["se"], m["se_d_hat"], rtol=RTOL)


# ---------------------------------------------------------------------- monthly: fit, views, sums
@pytest.fixture(scope="module")
def monthly_full():
    frame = _monthly()
    # statsmodels iterates to 1e-13: refit to the same tolerance for the comparison
    fit = em.fit(frame, baseline="ons2024", predict_from="2020-01", intervals="full", tol=1e-13)
    return frame, fit


def test_monthly_through_fit_equals_the_frame_function():
    frame = _monthly()
    fit = em.fit(frame, baseline="ons2024", predict_from=(2020, 1))
    assert isinstance(fit, OnsMonthlyFit) and fit.intervals == "ons"
    direct = ons_monthly(frame, coarse_age="age_group_coarse", predict_from=(2020, 1))
    pd.testing.assert_frame_equal(fit.monthly, direct)
    assert "se of the fitted mean" in fit.monthly.attrs["intervals"]


def test_monthly_full_intervals_match_statsmodels(monthly_full):
    frame, fit = monthly_full
    res = fit.result
    t = int(np.flatnonzero((fit.years == 2021) & (fit.months == 3))[0])
    rows = np.arange(t - 71, t - 11)
    covid = {(int(a), int(b)) for a, b in ONS_COVID_MONTHS}
    rows = rows[[(int(fit.years[r]), int(fit.months[r])) not in covid for r in rows]]
    S = len(fit.series_keys)
    ss, tt = np.repeat(np.arange(S), rows.size), np.tile(rows, S)
    X = res.design.dense(ss, tt)
    _, R, piv = linalg.qr(X, mode="economic", pivoting=True)
    rank = int(np.sum(np.abs(np.diag(R)) > 1e-9 * abs(R[0, 0])))
    keep = np.sort(piv[:rank])
    pop = frame.pivot_table(
        index=["age_group", "age_group_coarse", "sex", "region"],
        columns=["year", "month"],
        values="population",
    ).to_numpy()
    offset = np.log(pop)
    m = sm.GLM(
        fit.deaths[ss, tt], X[:, keep], family=sm.families.Poisson(), offset=offset[ss, tt]
    ).fit(scale="X2", tol=1e-13)
    Xp = res.design.dense(np.arange(S), np.full(S, t))[:, keep]
    mu = np.exp(Xp @ m.params + offset[:, t])
    np.testing.assert_allclose(res.mu[:, t], mu, rtol=RTOL)
    # the total of the month: phi sum(mu) + g'Vg with g = sum mu x, V statsmodels' covariance
    g = mu @ Xp
    var = m.scale * mu.sum() + g @ m.cov_params() @ g
    tot = fit.by().monthly.set_index(["year", "month"]).loc[(2021, 3)]
    np.testing.assert_allclose(tot["expected"], mu.sum(), rtol=RTOL)
    np.testing.assert_allclose(tot["se"] ** 2, g @ m.cov_params() @ g, rtol=RTOL)
    z = stats.norm.ppf(0.975)
    np.testing.assert_allclose(
        tot["excess_upper"], tot["observed"] - max(mu.sum() - z * np.sqrt(var), 0.0), rtol=RTOL
    )
    np.testing.assert_allclose(
        tot["excess_lower"], tot["observed"] - mu.sum() - z * np.sqrt(var), rtol=RTOL
    )


def test_monthly_sums_add_variances_as_ons_does():
    fit = em.fit(_monthly(), baseline="ons2024", predict_from="2020-01")
    rows = fit.monthly
    regions = fit.by("region").monthly
    assert list(regions.columns[:3]) == ["region", "year", "month"]
    want = rows.groupby(["region", "year", "month"]).agg(
        expected=("expected", "sum"), var=("se", lambda s: float(np.sum(s**2)))
    )
    got = regions.set_index(["region", "year", "month"])
    np.testing.assert_allclose(got["expected"], want["expected"], rtol=1e-12)
    np.testing.assert_allclose(got["se"] ** 2, want["var"], rtol=1e-12)
    cum = fit.by("region").cumulative("2020").set_index("region")
    in_2020 = rows[rows["year"] == 2020].groupby("region")
    np.testing.assert_allclose(cum["observed"], in_2020["observed"].sum(), rtol=1e-12)
    np.testing.assert_allclose(
        cum["se"] ** 2, in_2020["se"].apply(lambda s: float(np.sum(s**2))), rtol=1e-12
    )
    assert (cum["months"] == 12).all()


def test_monthly_window_of_one_month_is_that_month(monthly_full):
    _, fit = monthly_full
    month = fit.by("sex").monthly.set_index(["sex", "year", "month"]).xs((2020, 6), level=[1, 2])
    cum = fit.by("sex").cumulative("2020-06").set_index("sex")
    for col in ("observed", "expected", "se", "excess", "excess_lower", "excess_upper"):
        np.testing.assert_allclose(cum[col], month[col], rtol=1e-12)
    # a window: wider than one month, narrower than perfectly correlated months
    year = fit.by().cumulative("2021")
    months = fit.by().monthly.query("year == 2021")
    assert months["se"].sum() ** 2 >= year["se"].iloc[0] ** 2 >= np.sum(months["se"] ** 2)


def test_monthly_bad_input_names_column_value_and_row():
    frame = _monthly()
    bad = frame.copy()
    bad.loc[7, "month"] = 13
    with pytest.raises(InputError, match="'month' holds 13 in row 7") as err:
        em.fit(bad, baseline="ons2024")
    assert (err.value.column, err.value.row) == ("month", 7)
    dup = pd.concat([frame, frame.iloc[[30]]], ignore_index=True)
    with pytest.raises(InputError, match=f"row {len(frame)} repeats the month") as err:
        em.fit(dup, baseline="ons2024")
    neg = frame.copy()
    neg.loc[3, "deaths"] = -1
    with pytest.raises(InputError, match="'deaths' holds -1"):
        em.fit(neg, baseline="ons2024")
    fit = em.fit(frame, baseline="ons2024", predict_from="2020-01")
    with pytest.raises(InputError, match="month 2019-01 has no estimate"):
        fit.by().cumulative("2019")
    with pytest.raises(InputError, match="'ward' is not a stratum"):
        fit.by("ward")
    with pytest.raises(InputError, match="intervals"):
        em.fit(frame, baseline="ons2024", intervals="bad")
