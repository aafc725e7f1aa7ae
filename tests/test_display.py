"""Fit display (repr, HTML, summary, print_summary), the shared renderer, selection and progress.

Oracles: summary figures against closed forms on the result's arrays (sums of the weekly frame;
the cumulative variance g' V g + sum phi mu written out per series with numpy), 1e-9 relative;
selection against slices of the full fit's frames (1e-12, NaN positions equal).
"""

from __future__ import annotations

import io
import re
from contextlib import redirect_stdout
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import excessmort as em
from excessmort import _display, _progress
from excessmort.exceptions import InputError
from excessmort.regions import ENGLAND_CODE, REGIONS

PERIOD = ("2020-03-01", "2020-12-31")


@pytest.fixture(scope="module")
def demo() -> pd.DataFrame:
    return em.demo_data()


@pytest.fixture(scope="module")
def qp(demo: pd.DataFrame) -> em.Fit:
    return em.fit(demo, reference=("2015-01-01", "2019-12-31"))


class _Tables(HTMLParser):
    """Counts tables and collects the cells of each."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


# ------------------------------------------------------------------------------------- repr / html
def test_repr_is_one_line_with_the_header_fields(qp: em.Fit) -> None:
    text = repr(qp)
    assert "\n" not in text
    assert text.startswith("<excessmort.Fit quasipoisson: 72 series, ")
    first, last = qp.weeks[0].date(), qp.weeks[-1].date()
    assert f"{first}..{last}" in text
    assert "reference 2015-01-01..2019-12-31" in text
    assert text.endswith("0 not converged>")


def test_repr_html_has_header_block_and_region_table(qp: em.Fit) -> None:
    page = qp._repr_html_()
    parser = _Tables()
    parser.feed(page)
    assert len(parser.tables) == 2
    header = {row[0]: row[1] for row in parser.tables[0]}
    phi = qp.result.dispersion_raw
    assert header["baseline"] == "quasipoisson"
    assert header["reference period"] == "2015-01-01 to 2019-12-31"
    assert header["level"] == "0.95"
    assert header["series"].startswith("72 ")
    assert header["not converged"] == "0"
    assert header["dispersion (phi)"] == f"{np.nanmin(phi):.3g} to {np.nanmax(phi):.3g}"
    assert header["weeks"].startswith(f"{qp.panel.n_weeks:,}: ")
    table = parser.tables[1]
    assert table[0][:5] == ["region", "region_name", "observed", "expected", "excess"]
    assert "95% interval" in table[0]
    names = [row[1] for row in table[1:]]
    assert names == [*REGIONS.values(), "England"]
    # Numbers are shown with thousands separators.
    summary = qp.summary()
    assert table[-1][2] == f"{summary['observed'].iloc[-1]:,.0f}"


def test_repr_html_of_a_view_says_so(qp: em.Fit) -> None:
    page = qp.by("sex")._repr_html_()
    assert "by sex" in page
    parser = _Tables()
    parser.feed(page)
    assert [row[0] for row in parser.tables[1][1:]] == ["F", "M", "All"]


# ----------------------------------------------------------------------------------------- summary
def _window_variance(
    fit: em.Fit, series: np.ndarray, weeks: np.ndarray
) -> tuple[float, float, float, float]:
    """observed, expected, var(excess) by the closed form, written out per series (GLM result)."""
    res = fit.result
    X = res.design.X[weeks]
    obs = float(np.sum(fit.panel.deaths[np.ix_(series, weeks)]))
    mu = res.mu[np.ix_(series, weeks)]
    var = 0.0
    for k, s in enumerate(series):
        g = mu[k] @ X
        var += res.dispersion[s] * (g @ res.cov_unscaled[s] @ g) + res.dispersion[s] * mu[k].sum()
    return obs, float(mu.sum()), var, float(np.sum(fit.panel.deaths[np.ix_(series, weeks)]))


def test_summary_by_region_matches_the_closed_form(demo: pd.DataFrame) -> None:
    # the closed form of the independence mode (dependence=False); the default's sums carry the
    # dependence model (tests/test_dependence.py)
    qp = em.fit(demo, reference=("2015-01-01", "2019-12-31"), dependence=False)
    s = qp.summary(*PERIOD)
    assert list(s.columns) == [
        "region",
        "region_name",
        "observed",
        "expected",
        "excess",
        "excess_lower",
        "excess_upper",
        "p_score",
    ]
    assert s["region"].tolist() == [*REGIONS, ENGLAND_CODE]
    weeks = np.asarray(
        (qp.weeks >= pd.Timestamp(PERIOD[0])) & (qp.weeks <= pd.Timestamp(PERIOD[1]))
    )
    assert s.attrs["period"] == (qp.weeks[weeks][0], qp.weeks[weeks][-1])
    z = stats.norm.ppf(0.975)
    region = qp.panel.keys["region"].astype(str).to_numpy()
    for code in [*REGIONS, ENGLAND_CODE]:
        series = (
            np.flatnonzero(region == code) if code != ENGLAND_CODE else np.arange(qp.panel.n_series)
        )
        obs, mu, var, _ = _window_variance(qp, series, weeks)
        row = s.loc[s["region"] == code].iloc[0]
        np.testing.assert_allclose(row["observed"], obs, rtol=1e-12)
        np.testing.assert_allclose(row["expected"], mu, rtol=1e-9)
        np.testing.assert_allclose(row["excess"], obs - mu, rtol=1e-9)
        np.testing.assert_allclose(row["excess_lower"], obs - mu - z * np.sqrt(var), rtol=1e-9)
        np.testing.assert_allclose(row["excess_upper"], obs - mu + z * np.sqrt(var), rtol=1e-9)
        np.testing.assert_allclose(row["p_score"], 100 * (obs - mu) / mu, rtol=1e-9)


def test_summary_default_period_starts_after_the_reference(qp: em.Fit) -> None:
    s = qp.summary()
    lo, hi = s.attrs["period"]
    assert lo == qp.weeks[qp.weeks > pd.Timestamp("2019-12-31")][0]
    assert hi == qp.weeks[-1]
    weekly = qp.by("region").weekly
    w = weekly[(weekly["week_ending"] >= lo)]
    np.testing.assert_allclose(
        s["observed"].iloc[:9], w.groupby("region", observed=True)["observed"].sum(), rtol=1e-12
    )


@pytest.mark.filterwarnings("ignore::excessmort.exceptions.DispersionWarning")
def test_summary_without_region_uses_the_first_stratum(demo: pd.DataFrame) -> None:
    frame = demo.groupby(["sex", "age_group", "week_ending"], as_index=False, observed=True)[
        ["deaths", "population"]
    ].sum()
    f = em.fit(frame)
    s = f.summary(*PERIOD)
    assert s.columns[0] == "sex"
    assert s["sex"].tolist() == ["F", "M", "All"]
    by_sex = f.by("sex").cumulative(*PERIOD)
    np.testing.assert_allclose(s["expected"].iloc[:2], by_sex["expected"], rtol=1e-12)
    np.testing.assert_allclose(s["expected"].iloc[2], by_sex["expected"].sum(), rtol=1e-12)
    total = demo.groupby("week_ending", as_index=False)[["deaths", "population"]].sum()
    one = em.fit(total).summary(*PERIOD)
    assert len(one) == 1
    np.testing.assert_allclose(one["observed"].iloc[0], s["observed"].iloc[2], rtol=1e-12)


def test_summary_period_outside_the_data_raises(qp: em.Fit) -> None:
    with pytest.raises(InputError, match="outside the data"):
        qp.summary("1990-01-01", "1990-12-31")


# ----------------------------------------------------------------------------------- print_summary
def _printed(fit: em.Fit, **kwargs) -> str:
    buf = io.StringIO()
    with redirect_stdout(buf):
        fit.print_summary(**kwargs)
    return buf.getvalue()


def test_print_summary_ascii_uses_the_decimals(qp: em.Fit) -> None:
    text = _printed(qp, decimals=1, start=PERIOD[0], end=PERIOD[1])
    s = qp.summary(*PERIOD)
    assert text.splitlines()[0] == "excessmort.Fit: quasipoisson"
    assert "reference period  2015-01-01 to 2019-12-31" in text
    london = next(line for line in text.splitlines() if " London " in line)
    row = s.loc[s["region_name"] == "London"].iloc[0]
    # Issue 17: deaths are counts, printed whole; decimals is for the P-score.
    assert f"{row['expected']:,.0f}" in london
    assert f"{row['excess_lower']:,.0f} to {row['excess_upper']:,.0f}" in london
    assert f"{row['p_score']:,.1f}" in london


def test_print_summary_html_and_latex(qp: em.Fit) -> None:
    page = _printed(qp, style="html")
    assert page.count("<table") == 2 and "London" in page
    tex = _printed(qp, style="latex", decimals=0)
    assert r"\begin{tabular}" in tex and r"\toprule" in tex
    assert r"95\% interval" in tex and r"p\_score" in tex
    with pytest.raises(
        InputError, match=r"style must be one of \['ascii', 'html', 'latex'\], got 'rtf'"
    ):
        qp.print_summary(style="rtf")


# ---------------------------------------------------------------------------------------- renderer
def test_format_number() -> None:
    assert _display.format_number(1234567.891, 2) == "1,234,567.89"
    assert _display.format_number(-0.4, 0) == "-0"
    assert _display.format_number(np.nan) == "-"
    assert _display.format_number(None) == "-"
    assert _display.format_number("E12000007") == "E12000007"


def test_render_checks_text_and_html() -> None:
    from excessmort.report.readiness import Check

    checks = [
        Check("regions_complete", "pass", "nine regions"),
        ("embargo", "fail", "live before <slot>"),
        ("models_converged", "warn", "phi 12 in London"),
    ]
    text = _display.render_checks(checks)
    lines = text.splitlines()
    assert lines[0] == "Readiness"
    assert "verdict  NOT READY" in text
    assert "checks   3 (1 failed, 1 warnings)" in text
    assert re.search(r"FAIL\s+embargo\s+live before <slot>", text)
    page = _display.render_checks(checks, style="html")
    assert "live before &lt;slot&gt;" in page
    parser = _Tables()
    parser.feed(page)
    assert parser.tables[1][1:] == [
        ["PASS", "regions_complete", "nine regions"],
        ["FAIL", "embargo", "live before <slot>"],
        ["WARN", "models_converged", "phi 12 in London"],
    ]
    assert "verdict  READY" in _display.render_checks([("a", "pass", "ok"), ("b", "warn", "hm")])


# --------------------------------------------------------------------------------------- selection
def _assert_frames_equal(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a.columns) == list(b.columns)
    assert len(a) == len(b)
    for col in a.columns:
        x, y = a[col].to_numpy(), b[col].to_numpy()
        if np.issubdtype(x.dtype, np.floating):
            np.testing.assert_array_equal(np.isnan(x), np.isnan(y))
            np.testing.assert_allclose(x, y, rtol=1e-12, atol=0, equal_nan=True)
        else:
            assert [str(v) for v in x] == [str(v) for v in y], col


def _rows(frame: pd.DataFrame, region: list[str], sex: list[str] | None = None) -> pd.DataFrame:
    keep = frame["region"].astype(str).isin(region)
    if sex is not None:
        keep &= frame["sex"].astype(str).isin(sex)
    return frame.loc[keep].reset_index(drop=True)


def test_select_weekly_equals_the_slice_of_the_full_fit(qp: em.Fit) -> None:
    sel = qp.select(region="London", sex="F")
    assert isinstance(sel, em.Fit)
    assert sel.panel.n_series == 4
    assert set(sel.panel.keys["region"].astype(str)) == {"E12000007"}
    assert set(sel.panel.keys["sex"].astype(str)) == {"F"}
    _assert_frames_equal(sel.weekly, _rows(qp.weekly, ["E12000007"], ["F"]))
    _assert_frames_equal(
        sel.cumulative(*PERIOD), _rows(qp.cumulative(*PERIOD), ["E12000007"], ["F"])
    )
    _assert_frames_equal(sel.coefficients, _rows(qp.coefficients, ["E12000007"], ["F"]))
    _assert_frames_equal(sel.diagnostics, _rows(qp.diagnostics, ["E12000007"], ["F"]))


def test_select_lists_names_codes_and_shorthand(qp: em.Fit) -> None:
    two = qp.select(region=["north east", "E12000007"])
    assert two.panel.n_series == 16
    _assert_frames_equal(two.weekly, _rows(qp.weekly, ["E12000001", "E12000007"]))
    _assert_frames_equal(
        two.by("region").cumulative(*PERIOD),
        _rows(qp.by("region").cumulative(*PERIOD), ["E12000001", "E12000007"]),
    )
    _assert_frames_equal(qp["London"].weekly, qp.select(region="E12000007").weekly)
    _assert_frames_equal(
        qp["E12000007"].by().weekly.drop(columns=["region", "region_name"]),
        _rows(qp.by("region").weekly, ["E12000007"]).drop(columns=["region", "region_name"]),
    )


@pytest.mark.filterwarnings("ignore::excessmort.exceptions.DispersionWarning")
def test_select_unknown_values_raise_with_the_available_ones(qp: em.Fit) -> None:
    with pytest.raises(
        InputError, match=r"region='Narnia' matches no series; available values are \['E12000001'"
    ):
        qp.select(region="Narnia")
    with pytest.raises(
        InputError, match=r"sex='X' matches no series; available values are \['F', 'M'\]"
    ):
        qp.select(sex="X")
    with pytest.raises(
        InputError,
        match=r"unknown stratum 'colour'; this fit's strata are \['region', 'sex', 'age_group'\]",
    ):
        qp.select(colour="red")
    frame = em.demo_data()
    no_region = frame.groupby(["sex", "week_ending"], as_index=False, observed=True)[
        ["deaths"]
    ].sum()
    with pytest.raises(InputError, match="selects a region"):
        em.fit(no_region)["London"]


def test_select_a_combination_no_series_has_raises(demo: pd.DataFrame) -> None:
    part = demo[~((demo["region"].astype(str) == "E12000007") & (demo["sex"].astype(str) == "F"))]
    f = em.fit(part.reset_index(drop=True))
    with pytest.raises(InputError, match="no series has"):
        f.select(region="London", sex="F")


@pytest.mark.parametrize("baseline", ["poisson", "five_year_average", "euromomo", "pooled"])
def test_select_for_other_baselines(demo: pd.DataFrame, baseline: str) -> None:
    f = em.fit(demo, baseline=baseline)
    sel = f.select(region=["London", "South West"], age_group="85+")
    regions = ["E12000007", "E12000009"]
    full = f.weekly
    keep = full["region"].astype(str).isin(regions) & (full["age_group"].astype(str) == "85+")
    _assert_frames_equal(sel.weekly, full.loc[keep].reset_index(drop=True))
    cum = f.cumulative(*PERIOD)
    keep = cum["region"].astype(str).isin(regions) & (cum["age_group"].astype(str) == "85+")
    _assert_frames_equal(sel.cumulative(*PERIOD), cum.loc[keep].reset_index(drop=True))


def test_select_pooled_delta_keeps_the_shared_covariance(demo: pd.DataFrame) -> None:
    # With parameter uncertainty the variance of a sum of the kept series is g' V g over their rows
    # only: London's total from the selection equals London's row of the full fit's by("region").
    f = em.fit(demo, baseline=em.Pooled(intervals="delta"))
    sel = f.select(region="London")
    _assert_frames_equal(
        sel.by("region").cumulative(*PERIOD),
        _rows(f.by("region").cumulative(*PERIOD), ["E12000007"]),
    )
    _assert_frames_equal(sel.weekly, _rows(f.weekly, ["E12000007"]))


def test_result_take_slices_every_series_array(qp: em.Fit) -> None:
    idx = np.array([3, 0, 40])
    r = qp.result.take(idx)
    np.testing.assert_array_equal(r.mu, qp.result.mu[idx])
    np.testing.assert_array_equal(r.coef, qp.result.coef[idx])
    np.testing.assert_array_equal(r.cov_unscaled, qp.result.cov_unscaled[idx])
    np.testing.assert_array_equal(r.info["deviance"], qp.result.info["deviance"][idx])
    np.testing.assert_array_equal(r.q, qp.result.q[idx])
    assert r.design is qp.result.design
    mask = np.zeros(qp.panel.n_series, dtype=bool)
    mask[idx] = True
    np.testing.assert_array_equal(qp.result.take(mask).mu, qp.result.mu[np.sort(idx)])


# ---------------------------------------------------------------------------------------- progress
def test_progress_silent_when_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXCESSMORT_PROGRESS", "0")
    assert not _progress.enabled(True)
    made = []
    monkeypatch.setattr(_progress, "_bar", lambda **kw: made.append(kw))
    assert list(_progress.progress(range(5), desc="x")) == [0, 1, 2, 3, 4]
    with _progress.Stages(["a", "b"], show=True) as st:
        st.advance("a")
        st.advance("b")
    assert made == []
    assert st.done == ["a", "b"]


def test_progress_bar_when_forced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXCESSMORT_PROGRESS", "1")
    assert _progress.enabled(None)
    assert not _progress.enabled(False)
    out = io.StringIO()
    from tqdm import tqdm

    bars = []

    def bar(**kw):
        bars.append(tqdm(file=out, mininterval=0, miniters=1, **kw))
        return bars[-1]

    monkeypatch.setattr(_progress, "_bar", bar)
    assert list(_progress.progress(["a", "b", "c"], desc="rendering")) == ["a", "b", "c"]
    assert len(bars) == 1 and bars[0].n == 3 and bars[0].total == 3
    assert "rendering" in out.getvalue() and "2/3" in out.getvalue()


def test_progress_auto_needs_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EXCESSMORT_PROGRESS", raising=False)
    monkeypatch.setattr("sys.stderr", io.StringIO())  # not a TTY, not a notebook
    assert not _progress.enabled(None)

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stderr", Tty())
    assert _progress.enabled(None)


def test_fit_shows_its_stages_only_when_asked_or_large(
    monkeypatch: pytest.MonkeyPatch, demo: pd.DataFrame
) -> None:
    monkeypatch.setenv("EXCESSMORT_PROGRESS", "1")
    made: list[dict] = []

    class Bar:
        def __init__(self, **kw) -> None:
            made.append(kw)
            self.n = 0

        def set_postfix_str(self, *a, **k) -> None:
            pass

        def update(self, n: int) -> None:
            self.n += n

        def close(self) -> None:
            made.append({"closed_at": self.n})

    monkeypatch.setattr(_progress, "_bar", lambda **kw: Bar(**kw))
    em.fit(demo)  # 72 series: below the threshold
    assert made == []
    em.fit(demo, progress=True)
    assert made[0]["total"] == 4 and made[0]["desc"] == "fitting 72 series"
    assert made[-1] == {"closed_at": 4}
    made.clear()
    monkeypatch.setattr(_progress, "PROGRESS_MIN_SERIES", 50)
    em.fit(demo)
    assert made and made[0]["total"] == 4
    made.clear()
    em.fit(demo, progress=False)
    assert made == []
