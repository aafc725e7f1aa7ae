"""excessmort.compare: the tidy frames equal each baseline's own fit (1e-12); the plot draws
both panels."""

from __future__ import annotations

import importlib
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

import excessmort as em
from excessmort._fit import WEEKLY_COLUMNS
from excessmort.exceptions import InputError
from excessmort.regions import REGIONS

BASELINES = ["quasipoisson", "poisson", "five_year_average", "euromomo", "pooled"]
START, END = "2020-01-01", "2021-06-30"


@pytest.fixture(scope="module")
def demo() -> pd.DataFrame:
    return em.demo_data()


@pytest.fixture(scope="module")
def comparison(demo: pd.DataFrame):
    return em.compare(demo, BASELINES, by=("region",), start=START, end=END)


@pytest.fixture(autouse=True)
def _close() -> None:
    yield
    plt.close("all")


def _assert_close(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a.columns) == list(b.columns)
    assert len(a) == len(b)
    for col in a.columns:
        x, y = a[col].to_numpy(), b[col].to_numpy()
        if np.issubdtype(x.dtype, np.floating):
            np.testing.assert_array_equal(np.isnan(x), np.isnan(y))
            np.testing.assert_allclose(x, y, rtol=1e-12, equal_nan=True, err_msg=col)
        else:
            assert [str(v) for v in x] == [str(v) for v in y], col


def test_public_functions_stay_functions_after_importing_their_modules(demo: pd.DataFrame) -> None:
    import inspect

    importlib.import_module("excessmort._compare")
    importlib.import_module("excessmort._fit")
    assert inspect.isfunction(em.compare) and inspect.isfunction(em.fit)
    assert "baselines" in inspect.signature(em.compare).parameters
    c = em.compare(demo, ["poisson"], by=())
    assert c.baselines == ["poisson"]


def test_weekly_is_tidy_and_equals_each_fit(comparison, demo: pd.DataFrame) -> None:
    w = comparison.weekly
    first = next(iter(comparison.fits.values())).by("region").weekly
    assert list(w.columns) == ["baseline", *first.columns]
    assert {"region", "region_name", "week_ending", *WEEKLY_COLUMNS} <= set(w.columns)
    assert w["baseline"].cat.categories.tolist() == BASELINES
    assert w["week_ending"].min() >= pd.Timestamp(START) and w["week_ending"].max() <= pd.Timestamp(
        END
    )
    for name in BASELINES:
        own = em.fit(demo, baseline=name).by("region").weekly
        own = own[
            (own["week_ending"] >= pd.Timestamp(START)) & (own["week_ending"] <= pd.Timestamp(END))
        ]
        mine = w[w["baseline"] == name].drop(columns="baseline").reset_index(drop=True)
        _assert_close(mine, own.reset_index(drop=True))
        assert comparison.fits[name].baseline == name


def test_cumulative_by_baseline_equals_each_fit(comparison, demo: pd.DataFrame) -> None:
    c = comparison.cumulative()
    assert c.columns[:2].tolist() == ["baseline", "region"]
    assert len(c) == len(BASELINES) * 9
    for name in ["quasipoisson", "five_year_average"]:
        own = em.fit(demo, baseline=name).by("region").cumulative(START, END)
        _assert_close(c[c["baseline"] == name].drop(columns="baseline").reset_index(drop=True), own)
    # The baselines differ: the comparison is not of one model five times (Poisson and
    # quasi-Poisson share mu and differ in their intervals).
    assert c.groupby("baseline", observed=True)["expected"].sum().nunique() == len(BASELINES) - 1
    assert c.groupby("baseline", observed=True)["excess_upper"].sum().nunique() == len(BASELINES)


def test_series_level_and_repeated_baselines(demo: pd.DataFrame) -> None:
    c = em.compare(demo, ["quasipoisson", em.QuasiPoisson(harmonics=1)])
    assert c.baselines == ["quasipoisson", "quasipoisson (2)"]
    assert c.fits["quasipoisson (2)"].model.harmonics == 1
    w = c.weekly
    assert list(w.columns[:5]) == ["baseline", "region", "region_name", "sex", "age_group"]
    assert len(w) == 2 * 72 * len(c.fits["quasipoisson"].weeks)
    cum = c.cumulative()
    lo = cum["start"].iloc[0]
    assert (
        lo
        == c.fits["quasipoisson"].weeks[c.fits["quasipoisson"].weeks > pd.Timestamp("2019-12-31")][
            0
        ]
    )


def test_compare_errors(demo: pd.DataFrame) -> None:
    with pytest.raises(InputError, match=r"baseline must be one of \['quasipoisson'"):
        em.compare(demo, ["quasipoisson", "prophet"])
    with pytest.raises(InputError, match="at least one baseline"):
        em.compare(demo, [])
    with pytest.raises(InputError, match="unknown strata"):
        em.compare(demo, ["poisson"], by=("colour",))


def test_comparison_plot_side_by_side(comparison, tmp_path: Path) -> None:
    axes = comparison.plot("London")
    assert axes.shape == (2,)
    left, right = axes
    assert left.figure is right.figure
    assert [line.get_label() for line in left.get_lines()] == ["observed", *BASELINES]
    labels = [
        line.get_label() for line in right.get_lines() if not line.get_label().startswith("_")
    ]
    assert labels == BASELINES
    assert left.get_title() == "London: expected deaths by baseline"
    assert right.get_title() == "London: cumulative excess deaths by baseline"
    # The right panel ends at the comparison's cumulative excess for London.
    cum = comparison.cumulative()
    for line in right.get_lines():
        if line.get_label() in BASELINES:
            row = cum[
                (cum["baseline"] == line.get_label()) & (cum["region"].astype(str) == "E12000007")
            ]
            np.testing.assert_allclose(line.get_ydata()[-1], row["excess"].iloc[0], rtol=1e-10)
    path = tmp_path / "compare.png"
    left.figure.savefig(path, dpi=50)
    assert path.read_bytes()[:4] == b"\x89PNG"
    _, two = plt.subplots(1, 2)
    assert comparison.plot(axes=two)[0] is two[0]
    assert two[0].get_title() == "England: expected deaths by baseline"
    assert set(REGIONS) >= set(comparison.weekly["region"].astype(str))
    with pytest.raises(InputError, match="two Axes"):
        comparison.plot(axes=[two[0]])


def test_warnings_name_the_baseline_and_the_callers_line(demo: pd.DataFrame) -> None:
    frame = demo.groupby(["sex", "week_ending"], as_index=False, observed=True)[["deaths"]].sum()
    with pytest.warns(em.DispersionWarning, match=r"^poisson: implausible dispersion") as record:
        em.compare(frame, ["poisson"], dispersion_check=(0.2, 10))
    assert record[0].filename == __file__
