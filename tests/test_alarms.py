"""Alarms: CUSUM against a plain-Python loop and hand-computed cases, the CUSUM without reset
against R surveillance's ``algo.cusum`` (live, no-alarm part: statistic = h - upperbound), the
limit's formula, the EuroMOMO bands, and the detected periods against :meth:`Fit.cumulative`.

Tolerances: exact for the loop and hand cases (the same floating-point operations), 1e-12 against
R (printed with 17 digits) and against Fit.cumulative.
"""

from __future__ import annotations

import math
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

import excessmort as em
from _sim import simulate
from excessmort.alarms import BAND_EDGES, cusum, cusum_limit, excess_runs, z_band
from excessmort.exceptions import InputError


def _loop_cusum(z, k, h, reset):
    """The textbook recursion, one series at a time, in plain Python."""
    stat, alarm = [], []
    c = 0.0
    for v in z:
        if math.isnan(v):
            stat.append(math.nan)
            alarm.append(False)
            continue
        c = max(0.0, c + v - k)
        hit = c > h
        stat.append(c)
        alarm.append(hit)
        if hit and reset:
            c = 0.0
    return stat, alarm


def test_limit_formula():
    for arl0 in (5.0, 20.0, 100.0):
        h = (arl0 + 4) / (arl0 + 2) * math.log(arl0 / 2 + 1) - 1.16666
        assert cusum_limit(arl0) == pytest.approx(h, rel=1e-15)
    assert cusum_limit(20) == pytest.approx(1.449226, abs=1e-6)  # "about 1.449"
    with pytest.raises(InputError, match="arl0"):
        cusum_limit(0)


def test_hand_cases():
    h = cusum_limit(20)
    # z = 1 for six weeks: C = 0.75, 1.5 (> h: alarm, reset), 0.75, 1.5 (alarm), ...
    stat, alarm = cusum(np.ones((1, 6)), k=0.25, h=h)
    assert stat[0].tolist() == [0.75, 1.5, 0.75, 1.5, 0.75, 1.5]
    assert alarm[0].tolist() == [False, True, False, True, False, True]
    # without reset the statistic keeps growing and every week from the second alarms
    stat, alarm = cusum(np.ones((1, 4)), k=0.25, h=h, reset=False)
    assert stat[0].tolist() == [0.75, 1.5, 2.25, 3.0]
    assert alarm[0].tolist() == [False, True, True, True]
    # negative z cannot take C below 0; a NaN week leaves C unchanged
    stat, alarm = cusum(np.array([[-3.0, 0.75, np.nan, 0.75, 0.5]]), k=0.25, h=h)
    assert np.isnan(stat[0, 2])
    assert stat[0, [0, 1, 3, 4]].tolist() == [0.0, 0.5, 1.0, 1.25]
    assert not alarm.any()


@pytest.mark.parametrize("reset", [True, False])
def test_matches_loop(reset):
    rng = np.random.default_rng(3)
    z = rng.normal(0.3, 1.2, (40, 150))
    z[rng.random(z.shape) < 0.05] = np.nan
    stat, alarm = cusum(z, k=0.25, h=cusum_limit(20), reset=reset)
    for g in range(z.shape[0]):
        s_ref, a_ref = _loop_cusum(z[g].tolist(), 0.25, cusum_limit(20), reset)
        np.testing.assert_array_equal(stat[g], np.array(s_ref))
        assert alarm[g].tolist() == a_ref
    assert alarm.any()


def test_matches_r_surveillance_without_reset(tmp_path):
    rscript = shutil.which("Rscript")
    assert rscript, "Rscript is missing: make test installs r-base-core r-cran-surveillance"
    rng = np.random.default_rng(9)
    z = rng.normal(0.0, 1.0, 120)
    h = 1e6  # no alarm: surveillance and ours must agree on the statistic
    script = tmp_path / "cusum.R"
    script.write_text(
        "suppressMessages(library(surveillance))\n"
        f"z <- scan('{tmp_path / 'z.txt'}', quiet = TRUE)\n"
        "obs <- c(0, z)\n"
        "d <- suppressWarnings(create.disProg(week = seq_along(obs), observed = obs,"
        " state = rep(0, length(obs))))\n"
        f"r <- algo.cusum(d, control = list(range = 2:length(obs), k = 0.25, h = {h:.1f},"
        " m = 0, trans = 'none'))\n"
        f"writeLines(format({h:.1f} - r$upperbound, digits = 17), '{tmp_path / 'out.txt'}')\n"
    )
    np.savetxt(tmp_path / "z.txt", z, fmt="%.17g")
    subprocess.run([rscript, str(script)], check=True, capture_output=True, timeout=300)
    r_stat = np.loadtxt(tmp_path / "out.txt")
    stat, alarm = cusum(z[None, :], k=0.25, h=h, reset=False)
    assert not alarm.any()
    np.testing.assert_allclose(stat[0], r_stat, rtol=1e-12, atol=1e-9)


def test_bands():
    z = np.array([-1.0, 0.0, 1.999, 2.0, 3.9, 4.0, 7.0, 9.99, 10.0, 15.0, 40.0, np.nan])
    assert z_band(z).tolist() == [0, 0, 0, 1, 1, 2, 3, 3, 4, 5, 5, -1]
    assert BAND_EDGES == (2.0, 4.0, 7.0, 10.0, 15.0)


def test_runs():
    f = np.array([[1, 1, 0, 1, 1, 1], [0, 0, 0, 0, 0, 0], [1, 0, 1, 0, 1, 0]], bool)
    assert excess_runs(f) == [(0, 0, 1), (0, 3, 5), (2, 0, 0), (2, 2, 2), (2, 4, 4)]
    assert excess_runs(f, min_weeks=2) == [(0, 0, 1), (0, 3, 5)]


@pytest.fixture(scope="module")
def excess_fit():
    frame, _ = simulate(n_series=4, n_weeks=330, seed=5, excess=0.3, excess_from="2021-01-01")
    return em.fit(frame, reference=("2015-01-01", "2019-12-31"))


def test_fit_alarms_and_periods(excess_fit):
    fit = excess_fit
    a = fit.alarms()
    w = a.weekly
    assert set(w.columns) >= {
        "area",
        "week_ending",
        "z_score",
        "band",
        "band_label",
        "cusum",
        "alarm",
    }
    assert w["week_ending"].min() > fit.reference[1]
    # the weekly frame's z-scores are the fit's, and the CUSUM is the loop's
    ref = fit.weekly.merge(w, on=["area", "week_ending"], suffixes=("", "_a"))
    np.testing.assert_array_equal(ref["z_score"], ref["z_score_a"])
    for _area, g in w.groupby("area", observed=True):
        s_ref, a_ref = _loop_cusum(g["z_score"].tolist(), 0.25, cusum_limit(20), True)
        np.testing.assert_array_equal(g["cusum"].to_numpy(), np.array(s_ref))
        assert g["alarm"].tolist() == a_ref
    # injected 30% excess from 2021: alarms and a detected period in every series
    assert w.loc[w["week_ending"] >= "2021-02-01", "alarm"].mean() > 0.3
    p = a.periods
    assert set(p["area"].astype(str)) == set(fit.panel.keys["area"].astype(str))
    # each period is a run of weeks with excess_lower > 0, and its figures are Fit.cumulative's
    wk = fit.weekly
    for _, row in p.iterrows():
        rows = wk[(wk["area"] == row["area"]) & wk["week_ending"].between(row["start"], row["end"])]
        assert len(rows) == row["n_weeks"] and (rows["excess_lower"] > 0).all()
        before = wk[
            (wk["area"] == row["area"]) & (wk["week_ending"] == row["start"] - pd.Timedelta(days=7))
        ]
        assert before.empty or not (before["excess_lower"] > 0).any()
        cum = fit.cumulative(row["start"], row["end"])
        cum = cum[cum["area"] == row["area"]].iloc[0]
        for c in ("observed", "expected", "excess", "excess_lower", "excess_upper"):
            assert row[c] == pytest.approx(cum[c], rel=1e-12)
    # the aggregate view works the same way
    tot = fit.by().alarms(min_weeks=3)
    assert (tot.periods["n_weeks"] >= 3).all() and len(tot.periods) >= 1


def test_alarms_options_and_errors(excess_fit):
    a = excess_fit.alarms(reset=False, k=0.5, h=3.0, start="2020-06-01", end="2021-04-23")
    assert a.h == 3.0 and not a.reset
    assert a.weekly["week_ending"].min() >= pd.Timestamp("2020-06-01")
    with pytest.raises(InputError, match="min_weeks"):
        excess_fit.alarms(min_weeks=0)
    with pytest.raises(InputError, match="outside the data"):
        excess_fit.alarms(start="2030-01-01", end="2031-01-01")


def test_no_period():
    frame, _ = simulate(n_series=2, n_weeks=300, seed=1)
    fit = em.fit(frame, reference=("2015-01-01", "2019-12-31"))
    p = fit.alarms(min_weeks=50).periods
    assert p.empty and "excess_upper" in p.columns


def test_jupyter_display_shows_alarms(excess_fit):
    html = excess_fit._repr_html_()
    assert 'class="excessmort-alarms"' in html
    n = len(excess_fit.by().alarms().periods)
    assert f"{n} excess period(s)" in html and "CUSUM" in html


def _periods_by_cumulative(fit, start, end):
    """The periods as the code before the batched path built them: one Fit.cumulative per window."""
    from excessmort.alarms import excess_runs

    a = fit.alarms(start=start, end=end)
    window = fit._window(start, end)
    shown = fit.weeks[window]
    z = np.asarray(fit._weekly_arrays["z_score"])[:, window]
    lower = np.asarray(fit._weekly_arrays["excess_lower"])[:, window]
    _, keys, _ = fit._grouping
    cols = ["observed", "expected", "excess", "excess_lower", "excess_upper", "p_score"]
    parts = []
    for r, i, j in excess_runs(np.nan_to_num(lower, nan=-np.inf) > 0):
        cum = fit.cumulative(shown[i], shown[j]).iloc[[r]]
        part = cum[[*keys.columns, "start", "end", "n_weeks", *cols]].copy()
        part["max_z"] = float(np.nanmax(z[r, i : j + 1]))
        parts.append(part)
    return a.periods, pd.concat(parts, ignore_index=True)


def test_periods_equal_one_cumulative_per_window(excess_fit):
    """The alarm periods (the release's regions have 60-odd) are gathered from the window arrays
    in one frame; they are the per-window Fit.cumulative rows exactly (same bits, same columns and
    dtypes, same order), for series and for an aggregate view."""
    for fit in (excess_fit, excess_fit.by()):
        ours, ref = _periods_by_cumulative(fit, "2020-01-03", fit.weeks[-1])
        assert len(ours) >= (4 if fit is excess_fit else 1)
    pd.testing.assert_frame_equal(ours, ref, check_exact=True)
