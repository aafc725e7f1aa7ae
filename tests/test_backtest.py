"""excessmort.backtest and `excessmort backtest`: folds, batching, the tidy result, display, plot."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import excessmort as em
from _sim import simulate
from excessmort.cli import main
from excessmort.exceptions import InputError


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    f, _ = simulate(6, 52 * 9 + 1, start="2010-01-01", seed=7, phi=1.3)
    f["group"] = np.where(f["area"].str[-1].astype(int) % 2 == 0, "even", "odd")
    return f[["group", "area", "week_ending", "deaths", "population"]]


def test_stacked_folds_equal_separate_fits(frame: pd.DataFrame) -> None:
    """The folds are fitted in one kernel call as extra series: each equals its own fit."""
    bt = em.backtest(frame, years=[2016, 2018], reference_years=5, by=("group",))
    for year in (2016, 2018):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            f = em.fit(frame, reference=(f"{year - 5}-01-01", f"{year - 1}-12-31"))
        # the year's weeks in the data (a period past the data is an error since issue 17)
        end = min(pd.Timestamp(f"{year}-12-31"), f.weeks[-1])
        cum = f.cumulative(f"{year}-01-01", end)
        rows = bt.rows[(bt.rows["level"] == "series") & (bt.rows["year"] == year)]
        np.testing.assert_allclose(rows["year_expected"], cum["expected"], rtol=1e-8)
        np.testing.assert_allclose(rows["year_lower"], cum["excess_lower"], rtol=1e-6)
        agg = f.by("group").cumulative(f"{year}-01-01", end)
        rows = bt.rows[(bt.rows["level"] == "by group") & (bt.rows["year"] == year)]
        np.testing.assert_allclose(rows["year_upper"], agg["excess_upper"], rtol=1e-6)
        w = f.weekly[f.weekly["week_ending"].dt.year == year]
        covered = (
            ((w["excess_lower"] <= 0) & (w["excess_upper"] >= 0))
            .groupby(w["area"].astype(str))
            .mean()
        )
        got = bt.rows[(bt.rows["level"] == "series") & (bt.rows["year"] == year)]
        np.testing.assert_allclose(got["weekly_coverage"], covered.loc[got["area"]].to_numpy())


def test_result_summary_display_and_plot(frame: pd.DataFrame) -> None:
    bt = em.backtest(frame, years=range(2015, 2019), by=[("group",), ()])
    s = bt.summary()
    assert s["level"].tolist() == ["series", "by group", "by total"]
    assert {
        "weekly_coverage",
        "yearly_coverage",
        "yearly_bias",
        "yearly_score",
        "weekly_width",
    } <= set(s)
    assert s["rows"].tolist() == [24, 8, 4]
    assert ((s["weekly_coverage"] > 50) & (s["weekly_coverage"] <= 100)).all()
    assert "excessmort.Backtest quasipoisson" in repr(bt) and "<table" in bt._repr_html_()
    assert len(bt.by_year()) == 12
    import matplotlib

    matplotlib.use("Agg")
    ax = bt.plot()
    assert ax.get_ylabel() == "coverage (%)"
    # interval score is never below the width
    rows = bt.rows.dropna(subset=["year_score"])
    assert (rows["year_score"] >= rows["year_width"] - 1e-12).all()


@pytest.mark.parametrize("baseline", ["five_year_average", "pooled", "euromomo", "poisson"])
def test_every_baseline_backtests(frame: pd.DataFrame, baseline: str) -> None:
    bt = em.backtest(frame, baseline=baseline, years=[2017, 2018], by=())
    s = bt.summary()
    assert bt.baseline == baseline and len(s) == 2
    assert np.isfinite(s["weekly_coverage"]).all()


def test_bad_options_are_input_errors(frame: pd.DataFrame) -> None:
    with pytest.raises(InputError, match="reference years"):
        em.backtest(frame, years=[2012])
    with pytest.raises(InputError, match="unknown strata"):
        em.backtest(frame, years=[2017], by=("region",))
    with pytest.raises(InputError, match="reference_years"):
        em.backtest(frame, reference_years=1)
    with pytest.raises(InputError, match="level"):
        em.backtest(frame, level=95)


def test_cli_backtest(frame: pd.DataFrame, tmp_path, capsys) -> None:
    path = tmp_path / "deaths.csv"
    frame.to_csv(path, index=False)
    out = tmp_path / "rows.csv"
    code = main(
        [
            "backtest",
            "--input",
            str(path),
            "--years",
            "2016-2018",
            "--by",
            "group",
            "--by",
            "total",
            "--out",
            str(out),
            "--json",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert '"weekly_coverage"' in printed
    rows = pd.read_csv(out)
    assert (
        set(rows["level"]) == {"series", "by group", "by total"} and len(rows) == 3 * 6 + 3 * 2 + 3
    )
    assert main(["backtest", "--input", str(path), "--years", "20x6"]) == 2
