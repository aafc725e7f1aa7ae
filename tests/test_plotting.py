"""Every plot renders to a PNG (Agg) and draws what it says: lines, bands, bars with error bars,
labels, date and thousands formatters, titles. Plotted values are checked against the fit's frames
(1e-12) and running cumulative figures against ``Fit.cumulative`` week by week (1e-10 relative).
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import matplotlib.ticker as mticker
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection, QuadMesh
from matplotlib.colors import to_hex
from matplotlib.container import BarContainer

import excessmort as em
from excessmort import plotting
from excessmort.exceptions import InputError
from excessmort.regions import REGIONS

START, END = "2019-06-01", "2021-06-30"


@pytest.fixture(scope="module")
def demo() -> pd.DataFrame:
    return em.demo_data()


@pytest.fixture(scope="module")
def qp(demo: pd.DataFrame) -> em.Fit:
    return em.fit(demo)


@pytest.fixture(scope="module")
def fya(demo: pd.DataFrame) -> em.Fit:
    return em.fit(demo, baseline="five_year_average")


@pytest.fixture(autouse=True)
def _close() -> None:
    yield
    plt.close("all")


def _render(ax_or_fig, path: Path) -> None:
    fig = ax_or_fig if isinstance(ax_or_fig, matplotlib.figure.Figure) else ax_or_fig.figure
    fig.savefig(path, dpi=60)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000


def _window(frame: pd.DataFrame, start=START, end=END) -> pd.DataFrame:
    keep = (frame["week_ending"] >= pd.Timestamp(start)) & (
        frame["week_ending"] <= pd.Timestamp(end)
    )
    return frame.loc[keep].reset_index(drop=True)


def _assert_axes_style(ax) -> None:
    assert isinstance(ax.xaxis.get_major_formatter(), mdates.ConciseDateFormatter)
    fmt = ax.yaxis.get_major_formatter()
    assert isinstance(fmt, mticker.StrMethodFormatter) and fmt.fmt == "{x:,.0f}"
    assert fmt(12345.0) == "12,345"


def _bands(ax) -> list[PolyCollection]:
    return [c for c in ax.collections if isinstance(c, PolyCollection)]


def _band_range(band: PolyCollection) -> tuple[float, float]:
    y = np.concatenate([p.vertices[:, 1] for p in band.get_paths()])
    return float(np.nanmin(y)), float(np.nanmax(y))


# ----------------------------------------------------------------------------------- single series
def test_plot_weekly_observed_expected_and_prediction_band(qp: em.Fit, tmp_path: Path) -> None:
    ax = plotting.plot_weekly(qp, start=START, end=END)
    _render(ax, tmp_path / "weekly.png")
    w = _window(qp.by().weekly)
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"expected (quasipoisson)", "observed"}
    np.testing.assert_allclose(lines["observed"].get_ydata(), w["observed"], rtol=1e-12)
    np.testing.assert_allclose(
        lines["expected (quasipoisson)"].get_ydata(), w["expected"], rtol=1e-12
    )
    assert to_hex(lines["observed"].get_color()) == "#000000"
    assert (
        to_hex(lines["expected (quasipoisson)"].get_color()) == plotting.OKABE_ITO["blue"].lower()
    )
    (band,) = _bands(ax)
    assert band.get_label() == "95% prediction interval"
    lo, hi = _band_range(band)
    # The prediction band is observed minus the excess bounds.
    np.testing.assert_allclose(lo, (w["observed"] - w["excess_upper"]).min(), rtol=1e-12)
    np.testing.assert_allclose(hi, (w["observed"] - w["excess_lower"]).max(), rtol=1e-12)
    assert ax.get_title() == "England"
    assert ax.get_ylabel() == "deaths per week"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "95% prediction interval",
        "expected (quasipoisson)",
        "observed",
    ]
    _assert_axes_style(ax)
    x = lines["observed"].get_xdata()
    assert (
        pd.Timestamp(x[0]) == w["week_ending"].iloc[0]
        and pd.Timestamp(x[-1]) == w["week_ending"].iloc[-1]
    )


def test_plot_weekly_strata_and_given_axes(qp: em.Fit, tmp_path: Path) -> None:
    fig, given = plt.subplots()
    ax = plotting.plot_weekly(
        qp, {"region": "London", "sex": "F"}, start=START, end=END, ax=given, linewidth=2.5
    )
    assert ax is given
    _render(fig, tmp_path / "london_f.png")
    assert ax.get_title() == "London, sex F"
    w = _window(qp.select(region="London", sex="F").by("region", "sex").weekly)
    obs = next(line for line in ax.get_lines() if line.get_label() == "observed")
    assert obs.get_linewidth() == 2.5
    np.testing.assert_allclose(obs.get_ydata(), w["observed"], rtol=1e-12)
    ax2 = plotting.plot_weekly(qp, "E12000001", start=START, end=END)
    assert ax2.get_title() == "North East"


def test_plot_expected_confidence_band(qp: em.Fit, tmp_path: Path) -> None:
    ax = plotting.plot_expected(qp, "London", start=START, end=END)
    _render(ax, tmp_path / "expected.png")
    w = _window(qp.select(region="London").by("region").weekly)
    (band,) = _bands(ax)
    assert band.get_label() == "95% confidence interval"
    lo, hi = _band_range(band)
    np.testing.assert_allclose(
        [lo, hi], [w["expected_lower"].min(), w["expected_upper"].max()], rtol=1e-12
    )
    points = next(line for line in ax.get_lines() if line.get_label() == "observed")
    assert points.get_linestyle() == "None" and points.get_marker() == "."
    _assert_axes_style(ax)


def test_plot_excess_bars_with_error_bars(qp: em.Fit, tmp_path: Path) -> None:
    ax = plotting.plot_excess(qp, "London", start=START, end=END)
    _render(ax, tmp_path / "excess.png")
    w = _window(qp.select(region="London").by("region").weekly)
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert len(bars) == 1
    (bar,) = bars
    assert len(bar.patches) == len(w)
    heights = np.array([p.get_height() for p in bar.patches])
    np.testing.assert_allclose(heights, w["excess"], rtol=1e-12)
    up = heights > 0
    assert {to_hex(p.get_facecolor()) for p, u in zip(bar.patches, up, strict=True) if u} == {
        plotting.POSITIVE.lower()
    }
    assert {to_hex(p.get_facecolor()) for p, u in zip(bar.patches, up, strict=True) if not u} == {
        plotting.NEGATIVE.lower()
    }
    # Error bars: one vertical segment per week from excess_lower to excess_upper.
    assert bar.errorbar is not None
    segments = bar.errorbar.lines[2][0].get_segments()
    ys = np.array([[s[0, 1], s[1, 1]] for s in segments])
    np.testing.assert_allclose(ys[:, 0], w["excess_lower"], rtol=1e-12)
    np.testing.assert_allclose(ys[:, 1], w["excess_upper"], rtol=1e-12)
    assert ax.get_title() == "London" and ax.get_ylabel() == "excess deaths per week"
    _assert_axes_style(ax)


def test_plot_excess_default_starts_after_the_reference(qp: em.Fit) -> None:
    ax = plotting.plot_excess(qp)
    (bar,) = [c for c in ax.containers if isinstance(c, BarContainer)]
    first = mdates.num2date(bar.patches[0].get_x() + bar.patches[0].get_width() / 2).replace(
        tzinfo=None
    )
    assert pd.Timestamp(first).normalize() == qp.weeks[qp.weeks > pd.Timestamp("2019-12-31")][0]


@pytest.mark.parametrize("which", ["qp", "fya"])
def test_cumulative_path_equals_cumulative_week_by_week(
    which: str, request: pytest.FixtureRequest
) -> None:
    f = request.getfixturevalue(which)
    view = f.select(region="London").by("region")
    path = plotting.cumulative_path(f, "London", start="2020-03-01", end="2020-12-31")
    weeks = view.weeks[
        (view.weeks >= pd.Timestamp("2020-03-01")) & (view.weeks <= pd.Timestamp("2020-12-31"))
    ]
    assert path["week_ending"].tolist() == list(weeks)
    for i, week in enumerate(weeks):
        one = view.cumulative("2020-03-01", week).iloc[0]
        for col in ("observed", "expected", "excess", "excess_lower", "excess_upper"):
            np.testing.assert_allclose(
                path[col].iloc[i], one[col], rtol=1e-10, err_msg=f"{col} {week}"
            )


def test_fit_cumulative_path_all_rows(qp: em.Fit) -> None:
    view = qp.by("region")
    path = view.cumulative_path("2020-03-01", "2020-05-01")
    assert list(path.columns) == [  # issue 17: names and week numbers beside codes and dates
        "region",
        "region_name",
        "week_ending",
        "iso_year",
        "iso_week",
        "year",
        "week",
        "observed",
        "expected",
        "excess",
        "excess_lower",
        "excess_upper",
        "p_score",
        # the demo data have a population: the running rates per 100,000 (issue 17 item 8)
        "population",
        "observed_rate",
        "expected_rate",
        "excess_rate",
        "excess_rate_lower",
        "excess_rate_upper",
    ]
    last = path[path["week_ending"] == path["week_ending"].max()].reset_index(drop=True)
    cum = view.cumulative("2020-03-01", "2020-05-01")
    for col in (
        "observed",
        "expected",
        "excess",
        "excess_lower",
        "excess_upper",
        "p_score",
        "population",
        "excess_rate",
        "excess_rate_upper",
    ):
        np.testing.assert_allclose(last[col], cum[col], rtol=1e-10)


def test_plot_cumulative_line_and_band(qp: em.Fit, tmp_path: Path) -> None:
    ax = plotting.plot_cumulative(qp, "London", start="2020-03-01", end="2021-03-31")
    _render(ax, tmp_path / "cumulative.png")
    view = qp.select(region="London").by("region")
    (line,) = [x for x in ax.get_lines() if x.get_label() == "cumulative excess"]
    y = np.asarray(line.get_ydata())
    x = [pd.Timestamp(v) for v in line.get_xdata()]
    for i in (0, 10, len(x) - 1):
        one = view.cumulative("2020-03-01", x[i]).iloc[0]
        np.testing.assert_allclose(y[i], one["excess"], rtol=1e-10)
    (band,) = _bands(ax)
    lo, hi = _band_range(band)
    each = pd.concat([view.cumulative("2020-03-01", w) for w in x])
    np.testing.assert_allclose(
        [lo, hi], [each["excess_lower"].min(), each["excess_upper"].max()], rtol=1e-10
    )
    assert ax.get_title() == "London: cumulative excess from 2020-02-29"
    _assert_axes_style(ax)


# ------------------------------------------------------------------------------------- many series
def test_plot_regions_grid(qp: em.Fit, tmp_path: Path) -> None:
    # Issue 17: grids return the Figure (axes in fig.axes, row by row).
    fig = plotting.plot_regions(qp, "weekly", start=START, end=END)
    axes = np.asarray(fig.axes).reshape(3, 3)
    _render(fig, tmp_path / "regions.png")
    assert axes.shape == (3, 3)
    assert [a.get_title() for a in axes.flat] == list(REGIONS.values())
    assert fig.get_suptitle() == "Observed and expected deaths by region (quasipoisson)"
    regional = qp.by("region").weekly
    for ax, code in zip(axes.flat, REGIONS, strict=True):
        w = _window(regional[regional["region"].astype(str) == code])
        obs = next(line for line in ax.get_lines() if line.get_label() == "observed")
        np.testing.assert_allclose(obs.get_ydata(), w["observed"], rtol=1e-12)
        assert len(_bands(ax)) == 1
    assert axes[0, 0].get_legend() is not None and axes[1, 1].get_legend() is None
    assert axes[0, 0].get_ylabel() == "deaths per week" and axes[0, 1].get_ylabel() == ""
    fig2 = plotting.plot_regions(qp, "cumulative", end="2020-12-31")
    axes2 = np.asarray(fig2.axes)
    assert fig2.get_suptitle().startswith("Cumulative excess deaths")
    assert all(len(_bands(a)) == 1 for a in axes2.flat)
    with pytest.raises(InputError, match="kind must be one of"):
        plotting.plot_regions(qp, "pie")


def test_plot_regions_needs_regions(demo: pd.DataFrame) -> None:
    frame = demo.groupby(["sex", "week_ending"], as_index=False, observed=True)[["deaths"]].sum()
    with pytest.warns(em.DispersionWarning):
        f = em.fit(frame, dispersion_check=(0.2, 10))
    with pytest.raises(InputError, match="needs a region stratum"):
        plotting.plot_regions(f)
    with pytest.raises(InputError, match="needs a region stratum"):
        plotting.plot_zscores(f)


def test_plot_zscores_heatmap(qp: em.Fit, tmp_path: Path) -> None:
    ax = plotting.plot_zscores(qp, start="2020-01-01", end="2020-12-31")
    _render(ax, tmp_path / "z.png")
    (mesh,) = [c for c in ax.collections if isinstance(c, QuadMesh)]
    regional = _window(qp.by("region").weekly, "2020-01-01", "2020-12-31")
    z = regional.pivot(index="region", columns="week_ending", values="z_score").to_numpy()
    england = _window(qp.by().weekly, "2020-01-01", "2020-12-31")["z_score"].to_numpy()
    expected = np.vstack([z, england])
    np.testing.assert_allclose(
        np.asarray(mesh.get_array()).reshape(expected.shape), expected, rtol=1e-12
    )
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == [*REGIONS.values(), "England"]
    lo, hi = mesh.get_clim()
    assert lo == -hi and hi >= 2
    cbar = mesh.colorbar
    assert cbar is not None and cbar.ax.get_ylabel() == "z-score"
    assert isinstance(ax.xaxis.get_major_formatter(), mdates.ConciseDateFormatter)
    assert ax.get_title() == "Weekly z-scores by region (quasipoisson)"


def test_plot_baselines_same_axes(qp: em.Fit, fya: em.Fit, tmp_path: Path) -> None:
    ax = plotting.plot_baselines([qp, fya], "London", start=START, end=END)
    _render(ax, tmp_path / "baselines.png")
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["observed", "quasipoisson", "five_year_average"]
    colours = [to_hex(line.get_color()) for line in ax.get_lines()[1:]]
    assert colours == [c.lower() for c in plotting.CYCLE[:2]]
    assert len(_bands(ax)) == 2
    for f, line in zip([qp, fya], ax.get_lines()[1:], strict=True):
        w = _window(f.select(region="London").by("region").weekly)
        np.testing.assert_allclose(line.get_ydata(), w["expected"], rtol=1e-12)
    assert ax.get_title() == "London: expected deaths by baseline"
    _assert_axes_style(ax)
    ax2 = plotting.plot_baselines(
        {"GLM": qp, "ONS average": fya}, kind="cumulative", end="2020-12-31"
    )
    _render(ax2, tmp_path / "baselines_cum.png")
    assert [
        line.get_label() for line in ax2.get_lines() if not line.get_label().startswith("_")
    ] == ["GLM", "ONS average"]
    assert len(_bands(ax2)) == 2
    end = {
        name: f.by().cumulative(None, "2020-12-31")["excess"].iloc[0]
        for name, f in {"GLM": qp, "ONS average": fya}.items()
    }
    for line in ax2.get_lines():
        if line.get_label() in end:
            np.testing.assert_allclose(line.get_ydata()[-1], end[line.get_label()], rtol=1e-10)
    with pytest.raises(InputError, match="kind must be one of"):
        plotting.plot_baselines([qp], kind="weekly")


# ----------------------------------------------------------------------------- Fit.plot and errors
@pytest.mark.parametrize(
    ("kind", "artist"),
    [("weekly", "band"), ("expected", "band"), ("excess", "bars"), ("cumulative", "band")],
)
def test_fit_plot_dispatches(qp: em.Fit, kind: str, artist: str, tmp_path: Path) -> None:
    ax = qp.plot(kind, strata={"region": "London"}, end="2020-12-31")
    _render(ax, tmp_path / f"{kind}.png")
    assert ax.get_title().startswith("London")
    if artist == "bars":
        assert any(isinstance(c, BarContainer) for c in ax.containers)
    else:
        assert len(_bands(ax)) == 1
    _assert_axes_style(ax)


def test_fit_plot_errors(qp: em.Fit) -> None:
    with pytest.raises(
        InputError,
        match=r"kind must be one of \['weekly', 'excess', 'cumulative', 'expected'\], got 'pie'",
    ):
        qp.plot("pie")
    with pytest.raises(InputError, match="give 2 rows"):
        qp.plot("weekly", strata={"region": ["London", "East"]})
    with pytest.raises(InputError, match="outside the data"):
        qp.plot("weekly", start="1990-01-01", end="1991-01-01")


def test_missing_matplotlib_names_the_extra(qp: em.Fit, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"excessmort\[plot\]"):
        qp.plot()
    with pytest.raises(ImportError, match=r"excessmort\[plot\]"):
        plotting.plot_zscores(qp)
