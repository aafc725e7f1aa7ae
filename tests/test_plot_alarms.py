"""plot_alarms: z-scores with the lines at 2 and 4, alarms and excess periods; data first, ax last,
Axes returned."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

import excessmort as em
from _sim import simulate
from excessmort.plotting import plot_alarms


def test_plot_alarms_draws_lines_alarms_and_periods():
    frame, _ = simulate(n_series=2, n_weeks=330, seed=5, excess=0.3, excess_from="2021-01-01")
    fit = em.fit(frame, reference=("2015-01-01", "2019-12-31"))
    fig, given = plt.subplots()
    ax = plot_alarms(fit, ax=given)
    assert ax is given
    hlines = [ln.get_ydata()[0] for ln in ax.get_lines() if len(set(ln.get_ydata())) == 1]
    assert 2.0 in hlines and 4.0 in hlines
    a = fit.by().alarms()
    z_line = ax.get_lines()[0]
    np.testing.assert_array_equal(z_line.get_ydata(), a.weekly["z_score"].to_numpy())
    alarm_line = ax.get_lines()[1]
    assert len(alarm_line.get_xdata()) == int(a.weekly["alarm"].sum()) > 0
    assert len(ax.patches) == len(a.periods) > 0
    plt.close(fig)
    ax = plot_alarms(fit, {"area": "A0000"})
    assert "A0000" in ax.get_title()
    plt.close(ax.figure)
