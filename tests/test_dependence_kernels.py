"""The dependence model's numba kernels (issue 18) against their numpy twins, which are the code
they replaced (``_kernels/dependence_ref.py``), on ONS-like (the England regions) and STMF-like
(country x sex x age) inputs: the groups' sums, the serial model (c, autocorrelation, ARMA(1, 1)),
the year-effect moments and every interval of a sum agree to 1e-12 relative (the kernels run here
on inputs below ``DEPENDENCE_NUMBA_MIN_CELLS``, where ``engine="auto"`` would take the twins). The correlations
rho and A are compared to 1e-12 absolute: they are ratios of sums with cancellation, whose relative
error where they are near 0 says nothing about the variances they enter. The window totals of
``cumulative`` are pinned against the last column of the running sums they replaced.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import excessmort as em
import excessmort._kernels as kernels
from excessmort._fit import Fit
from excessmort.dependence import GroupSums, dependence_from_sums, year_effect_from_sums

RTOL = 1e-12
NUMBERS = ("observed", "expected", "excess", "excess_lower", "excess_upper", "p_score")


@pytest.fixture(scope="module")
def ons(shared) -> pd.DataFrame:
    f = pd.read_csv(shared / "data" / "ons" / "ons_weekly_deaths_by_region.csv")
    f = f[f["area_code"].str.startswith("E") & (f["area_code"] != "E92000001")]
    return f[["area_code", "week_ending", "deaths"]].rename(columns={"area_code": "region"})


@pytest.fixture(scope="module")
def stmf(shared) -> pd.DataFrame:
    f = pd.read_csv(shared / "data" / "world" / "stmf_weekly_deaths_by_sex_age.csv")
    keep = ["AUT", "BEL", "DNK", "FIN"]
    f = f[f["country"].isin(keep) & (f["week_ending"] >= "2008-01-01")].copy()
    f["deaths"] = f["deaths"].round()
    return f


@pytest.fixture(autouse=True)
def _kernels_on_small_inputs(monkeypatch: pytest.MonkeyPatch) -> None:
    """``engine="auto"`` runs the numpy twins below DEPENDENCE_NUMBA_MIN_CELLS: here the kernels."""
    monkeypatch.setattr(kernels, "DEPENDENCE_NUMBA_MIN_CELLS", 0)


def _numpy_twins(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every kernel dispatcher runs its numpy twin (the previous code)."""
    monkeypatch.setattr(kernels, "resolve_engine", lambda engine, cells=None, **_: "numpy")


def _fresh(f: Fit) -> Fit:
    """A view of the same fitted result with nothing estimated yet (the fitted q kept)."""
    getattr(f.result, "q", None)  # x'(X'WX)^-1 x once, by the numba engine, for both sides
    return Fit(
        panel=f.panel,
        result=f.result,
        model=f.model,
        reference=f.reference,
        level=f.level,
        dependence=True,
    )


def _close(
    got: np.ndarray, want: np.ndarray, rtol: float = RTOL, atol: float | None = None
) -> None:
    """Equal to ``rtol`` of each value and of the array's scale (differences such as an excess
    near 0 cancel: their relative error is not the kernels'), or to ``atol`` when given."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    ok = np.isfinite(want)
    if atol is None:
        atol = rtol * float(np.max(np.abs(want[ok]), initial=0.0))
    np.testing.assert_allclose(got[ok], want[ok], rtol=rtol, atol=atol)


def _outputs(f: Fit, by: tuple[str, ...], period: tuple[str, str]) -> dict[str, np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        series = _fresh(f)
        view = series.by(*by)
        out = {}
        for name, v in (("series", series), ("by", view)):
            c = v.cumulative(*period)
            for col in NUMBERS:
                out[f"{name}.cum.{col}"] = c[col].to_numpy(dtype=np.float64)
        # the running sums (Dependence.running) of the aggregate over four weeks: the pooled
        # model's window variance is one product per week
        path = view.cumulative_path(period[0], pd.Timestamp(period[0]) + pd.Timedelta(weeks=4))
        for col in ("excess_lower", "excess_upper"):
            out[f"by.path.{col}"] = path[col].to_numpy(dtype=np.float64)
        w = view.weekly
        for col in ("expected_lower", "expected_upper", "excess_lower", "excess_upper", "z_score"):
            out[f"by.weekly.{col}"] = w[col].to_numpy(dtype=np.float64)
        dep = view._dependence
        for field in ("c", "param_factor", "n_weeks"):
            out[f"by.dep.{field}"] = getattr(dep, field)
        out["by.dep.sigma2"] = np.array([dep.year.sigma2])
        sdep = series._dependence
        for field in ("c", "param_factor", "n_weeks"):
            out[f"series.dep.{field}"] = getattr(sdep, field)
        out["series.dep.sigma2"] = np.array([sdep.year.sigma2])
        for name, d in (("by", dep), ("series", sdep)):
            out[f"{name}.corr.rho"] = d.rho
            out[f"{name}.corr.a"] = d.a
            out[f"{name}.corr.phi"] = d.phi
    return out


REFERENCE = {"ons": ("2015-01-01", "2019-12-31"), "stmf": ("2013-01-01", "2019-12-31")}
CASES = [
    ("ons", "quasipoisson", (), ("2020-01-01", "2020-12-31")),
    ("ons", "pooled", (), ("2020-01-01", "2020-12-31")),
    ("ons", "five_year_average", (), ("2020-01-01", "2020-12-31")),
    ("stmf", "quasipoisson", ("country",), ("2020-01-01", "2020-10-31")),
    ("stmf", "negative_binomial", ("country", "sex"), ("2020-01-01", "2020-10-31")),
]


@pytest.mark.parametrize(("data", "baseline", "by", "period"), CASES)
def test_numba_kernels_equal_their_numpy_twins(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    data: str,
    baseline: str,
    by: tuple[str, ...],
    period: tuple[str, str],
) -> None:
    frame = request.getfixturevalue(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f = em.fit(frame, baseline=baseline, reference=REFERENCE[data])
    got = _outputs(f, by, period)
    _numpy_twins(monkeypatch)
    want = _outputs(f, by, period)
    assert got.keys() == want.keys()
    for key in got:
        if ".corr." in key:
            _close(got[key], want[key], rtol=0.0, atol=1e-12)
        else:
            _close(got[key], want[key])
    # a real test: the dependence model is on and moves the intervals
    assert (got["by.dep.c"] > 1.0).any() or baseline == "five_year_average"


def test_group_sums_of_series_and_groups_equal_numpy_twin(
    stmf: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f = em.fit(stmf, reference=("2013-01-01", "2019-12-31"))
    res, deaths, weeks = f.result, f.panel.deaths, f.weeks
    res.q  # noqa: B018
    n = deaths.shape[0]
    grouped = np.arange(n) % 5 - 1  # four groups, one series in five left out
    cases = [(None, None), (grouped, 4)]
    got = [GroupSums.of(res, deaths, weeks, g, k) for g, k in cases]
    _numpy_twins(monkeypatch)
    want = [GroupSums.of(res, deaths, weeks, g, k) for g, k in cases]
    for a, b in zip(got, want, strict=True):
        for field in ("resid", "obs", "fitted", "mu", "members", "phi", "year_fitted"):
            _close(getattr(a, field), getattr(b, field))
        _close(a.root_sums(), b.root_sums())
        np.testing.assert_array_equal(a.resid_weeks, b.resid_weeks)
        wa, pa = a.stacked()
        wb, pb = b.stacked()
        _close(wa, wb)
        _close(pa, pb)
    # the series' own sums are their arrays, not copies; the residual sums are y - mu exactly
    assert got[0].mu is res.mu and got[0].root is None
    rmask = res.residual_mask()
    np.testing.assert_array_equal(got[0].resid, np.where(rmask, deaths - res.mu, np.nan))


def test_year_effect_and_model_from_sums_equal_numpy_twin(
    stmf: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f = em.fit(stmf, reference=("2013-01-01", "2019-12-31"))
    res, weeks = f.result, f.weeks
    sums = GroupSums.of(res, f.panel.deaths, weeks)

    def estimate() -> tuple:
        part = GroupSums(**{k: getattr(sums, k) for k in sums.__dataclass_fields__})
        year = year_effect_from_sums(part, res, weeks)
        return year, dependence_from_sums(part, year, res, weeks)

    year, dep = estimate()
    _numpy_twins(monkeypatch)
    year_ref, dep_ref = estimate()
    assert year.sigma2 > 0 and year.n_years == year_ref.n_years == 7
    for field in ("num", "den", "e_total", "d_total"):
        _close(getattr(year, field), getattr(year_ref, field))
    for field in ("c", "param_factor", "n_weeks", "short"):
        _close(getattr(dep, field), getattr(dep_ref, field))
    for field in ("rho", "a", "phi"):
        _close(getattr(dep, field), getattr(dep_ref, field), rtol=0.0, atol=1e-12)


@pytest.mark.parametrize("baseline", ["quasipoisson", "five_year_average"])
def test_window_total_is_the_last_running_sum(stmf: pd.DataFrame, baseline: str) -> None:
    """``Dependence.total`` (cumulative) against the last column of ``Dependence.running`` (the
    previous path), with a year part (t quantiles) and, for the five-year average, out-of-sample
    residuals."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        view = em.fit(stmf, baseline=baseline, reference=REFERENCE["stmf"])
        dep = view._dependence
    assert dep.year.sigma2 > 0 or baseline == "five_year_average"
    res = view.result
    window = view.period("2019-10-01", "2020-10-31").mask
    obs = view._sum(res.obs_variance()[:, window])
    mu = view._sum(res.mu[:, window])
    running = view._masked_result_call("param_variance_running", window)
    weekly = view._masked_result_call("param_variance_weekly")[:, window]
    param_total = running[:, -1]
    pv = np.zeros_like(mu)
    pv[:, -1] = param_total
    for engine in ("numba", "numpy"):
        o_run, p_run, parts = dep.running(
            obs, mu, pv, view.weeks[window], 0.95, engine=engine, param_weekly=weekly
        )
        o_tot, p_tot = dep.total(
            obs, mu, param_total, view.weeks[window], 0.95, engine=engine, param_weekly=weekly
        )
        assert (parts["t_factor"][:, -1] > 1.0).any() or dep.year.sigma2 == 0
        _close(o_tot, o_run[:, -1])
        _close(p_tot, p_run[:, -1])


def test_threaded_dependence_kernels_equal_serial() -> None:
    """The threaded drivers (panels of at least 256 series) give the serial drivers' bits."""
    from excessmort._kernels import dependence as dk

    rng = np.random.default_rng(18)
    n, t = 300, 160
    mu = rng.uniform(5.0, 80.0, (n, t))
    mu[7] = np.nan
    deaths = rng.poisson(np.nan_to_num(mu) * rng.gamma(30.0, 1 / 30.0, t)).astype(np.float64)
    mask = rng.random((n, t)) > 0.05
    phi = rng.uniform(0.9, 2.0, n)
    q = rng.uniform(1e-4, 1e-3, (n, t))
    none = np.empty((1, 1))
    for groups, n_groups in ((np.arange(n), n), (rng.integers(-1, 7, n), 7)):
        slot = np.where(groups >= 0, groups, n_groups)
        order = np.argsort(slot, kind="stable").astype(np.int64)
        ptr = np.r_[0, np.cumsum(np.bincount(slot, minlength=n_groups + 1))].astype(np.int64)
        chunks = np.linspace(0, n_groups + 1, 9).round().astype(np.int64)
        own = n_groups == n
        outs = []
        for kernel in (dk.group_sums, dk.group_sums_serial):
            o = [np.zeros((n_groups, t)) for _ in range(5)]
            flags = np.zeros((8, t), dtype=np.bool_)
            kernel(
                order, ptr, chunks, deaths, mu, mask, True, none, True, phi, q, True, *o, flags,
                own,
            )  # fmt: skip
            outs.append([*o, flags.any(axis=0)])
        for x, y in zip(*outs, strict=True):
            np.testing.assert_array_equal(x, y)
    sums = [np.ascontiguousarray(a) for a in (deaths - mu, mu, 0.01 * mu)]
    k = np.arange(1, 14)
    grid = np.linspace(0.0, 0.98, 50)
    basis = grid[:, None] ** (k[None, :] - 1)
    members = rng.integers(1, 4, n).astype(np.float64)
    serial = []
    for kernel in (dk.serial_rows, dk.serial_rows_serial):
        o = [np.empty(n) for _ in range(3)] + [np.empty((n, 13))] + [np.empty(n) for _ in range(2)]
        kernel(*sums, True, members, members * 1.3, True, basis, (basis**2).sum(1), grid, *o)
        serial.append(o)
    for x, y in zip(*serial, strict=True):
        np.testing.assert_array_equal(x, y)
    _, _, c, rho, a, ph = serial[0]
    totals = []
    for kernel in (dk.window_serial_total, dk.window_serial_total_serial):
        out = np.empty(n)
        kernel(mu, 0.1 * mu, True, c, rho, a, ph, out)
        totals.append(out)
    np.testing.assert_array_equal(*totals)
    pos = np.r_[np.arange(0, 52), np.arange(52, 104)].astype(np.int64)
    ptr = np.array([0, 52, 104], dtype=np.int64)
    years = []
    for kernel in (dk.year_rows, dk.year_rows_serial):
        o = [np.zeros((2, n)), np.zeros((2, n)), np.zeros((2, n), dtype=np.bool_)]
        kernel(
            *sums, mu, True, c, rho, a, ph, c * 1.1, pos, ptr, np.array([0.2, 0.3]),
            np.full((2, n), 5.0), 0.8, *o,
        )  # fmt: skip
        years.append(o)
    for x, y in zip(*years, strict=True):
        np.testing.assert_array_equal(x, y)


def test_small_calls_take_the_numpy_twins_under_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kernels, "DEPENDENCE_NUMBA_MIN_CELLS", 500_000)
    assert kernels.dependence_engine("auto", 499_999) == "numpy"
    assert kernels.dependence_engine("auto", 500_000) == "numba"
    assert kernels.dependence_engine("numba", 10) == "numba"
    assert kernels.dependence_engine("numpy", 10**9) == "numpy"


# ------------------------------------------------------------------ the series' own rows (W2)
def _holed(stmf: pd.DataFrame) -> pd.DataFrame:
    """STMF with 1 % of its counts missing (some in the reference years, some after)."""
    out = stmf.copy()
    out.loc[out.sample(frac=0.01, random_state=4).index, "deaths"] = np.nan
    return out


def _many_series() -> tuple:
    """300 series (threaded drivers) x 400 weeks, missing weeks in and after the reference."""
    from benchmarks._data import synthetic_panel

    from excessmort.panel import Panel

    sp = synthetic_panel(300, 400, n_ref=261)
    deaths = sp.deaths.copy()
    deaths[5, 10:14] = np.nan
    deaths[17, 300] = np.nan
    deaths[40, 100] = np.nan
    keys = pd.DataFrame({"series": pd.Categorical(np.arange(300))})
    return Panel(keys=keys, weeks=sp.weeks, deaths=deaths), sp.reference


def _series_fit(request: pytest.FixtureRequest, data: str, baseline: str, reference: tuple) -> Fit:
    from excessmort.baselines import get_baseline

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if data == "many":
            panel, reference = _many_series()
            model = get_baseline(baseline)
            res = model.fit(panel, reference=reference, engine="numba")
            return Fit(panel=panel, result=res, model=model, reference=reference, level=0.95)
        frame = _holed(request.getfixturevalue("stmf"))
        return em.fit(frame, baseline=baseline, reference=reference, engine="numba")


SERIES_CASES = [
    ("stmf", "quasipoisson", REFERENCE["stmf"]),
    ("stmf", "quasipoisson", ("2017-11-01", "2019-12-31")),  # short: too few years
    ("stmf", "five_year_average", REFERENCE["stmf"]),
    ("stmf", "negative_binomial", REFERENCE["stmf"]),
    ("stmf", "euromomo", REFERENCE["stmf"]),
    ("many", "quasipoisson", None),
    ("many", "five_year_average", None),
]


@pytest.mark.parametrize(("data", "baseline", "reference"), SERIES_CASES)
def test_series_dependence_is_the_group_sums_path(
    request: pytest.FixtureRequest, data: str, baseline: str, reference: tuple
) -> None:
    """The per-series path (``own_*`` kernels, no [S, T] sums) gives the numbers of the
    GroupSums path it replaced, bit for bit, on data with missing weeks, several years and (the
    two-year reference) rows too short to estimate."""
    from excessmort.dependence import series_dependence

    f = _series_fit(request, data, baseline, reference)
    res, deaths, weeks = f.result, f.panel.deaths, f.weeks
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sums = GroupSums.of(res, deaths, weeks)
        year_ref = year_effect_from_sums(sums, res, weeks)
        dep_ref = dependence_from_sums(sums, year_ref, res, weeks)
        year, dep = series_dependence(res, deaths, weeks)
        _, dep_given = series_dependence(res, deaths, weeks, year=year_ref)
    assert np.isnan(deaths).any()
    assert dep.year is year and dep_given.year is year_ref
    for field in ("num", "den", "n_series", "n_years", "p_year", "e_total", "d_total"):
        np.testing.assert_array_equal(getattr(year, field), getattr(year_ref, field))
    for d in (dep, dep_given):
        for field in ("c", "rho", "a", "phi", "n_weeks", "members", "param_factor", "short"):
            np.testing.assert_array_equal(getattr(d, field), getattr(dep_ref, field))
        np.testing.assert_array_equal(d.ref_years, dep_ref.ref_years)
        np.testing.assert_array_equal(d.fitted_weeks, dep_ref.fitted_weeks)
    if reference == ("2017-11-01", "2019-12-31"):
        assert dep.short.all()
    else:
        assert year.sigma2 > 0 or baseline == "five_year_average"


@pytest.mark.parametrize(("data", "baseline", "reference"), SERIES_CASES[:2] + SERIES_CASES[5:6])
def test_series_cumulative_equals_the_group_sums_path(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    data: str,
    baseline: str,
    reference: tuple,
) -> None:
    """A per-series view's cumulative (window total read in place, missing-week scan of the NaN
    rows) against the same view through the previous path: the GroupSums model and the window
    total on formed phi mu arrays."""
    import excessmort.dependence as dependence

    f = _series_fit(request, data, baseline, reference)
    period = ("2019-06-01", "2020-10-31") if data == "stmf" else (None, None)

    def run() -> tuple[pd.DataFrame, list[str]]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            c = _fresh(f).cumulative(*period)
        return c, sorted(str(w.message) for w in caught)

    got, got_warn = run()

    def previous(result, deaths, weeks, year=None):  # type: ignore[no-untyped-def]
        sums = GroupSums.of(result, deaths, weeks)
        year = year_effect_from_sums(sums, result, weeks) if year is None else year
        return year, dependence_from_sums(sums, year, result, weeks)

    monkeypatch.setattr(dependence, "series_dependence", previous)
    total = dependence.Dependence.total

    def formed(self, obs_var, mu, *args, obs_scale=None, cols=None, **kw):  # type: ignore[no-untyped-def]
        if cols is not None or obs_scale is not None:
            cols = slice(None) if cols is None else cols
            obs_var = obs_scale[:, None] * obs_var[:, cols]
            mu = mu[:, cols]
        return total(self, obs_var, mu, *args, **kw)

    monkeypatch.setattr(dependence.Dependence, "total", formed)
    monkeypatch.setattr(Fit, "_warn_missing", _full_scan)
    want, want_warn = run()
    for col in NUMBERS:
        np.testing.assert_array_equal(got[col].to_numpy(), want[col].to_numpy())
    assert got_warn == want_warn
    assert any("missing weeks" in w for w in got_warn)


def _full_scan(self, mu, observed, window=None, *, sums=None):  # type: ignore[no-untyped-def]
    """The missing-week warning by the scan of every series (the code before the NaN rows)."""
    from excessmort.exceptions import MissingDataWarning

    deaths = self.panel.deaths if window is None else self.panel.deaths[:, window]
    weeks = self.weeks if window is None else self.weeks[window]
    missing = np.isnan(deaths) & self._grouping[2][:, None]
    if not missing.any():
        return
    series = np.flatnonzero(missing.any(axis=1))
    gaps = np.flatnonzero(missing.any(axis=0))
    shown = "; ".join(self.panel.label(s) for s in series[:5]) + (
        f"; and {series.size - 5} more" if series.size > 5 else ""
    )
    dates = ", ".join(str(weeks[t].date()) for t in gaps[:5]) + (
        f" and {gaps.size - 5} more" if gaps.size > 5 else ""
    )
    where = "aggregates" if self._by is not None else "rows"
    warnings.warn(
        f"missing weeks make {where} NaN: {series.size} series lack data ({shown}) in the weeks "
        f"ending {dates}; figures over those weeks (and sums containing them) are NaN. Fill the "
        "weeks, or choose a period without them",
        MissingDataWarning,
        stacklevel=3,
    )


@pytest.mark.parametrize("by", [None, ("country",), ()])
def test_missing_week_warning_scans_only_nan_rows(stmf: pd.DataFrame, by: tuple | None) -> None:
    """The warning of cumulative names the same series and weeks as the scan of every series, and
    none is given for a period without a missing week."""
    frame = _holed(stmf)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f = em.fit(frame, reference=REFERENCE["stmf"])
    view = f if by is None else f.by(*by)
    for period in (("2019-06-01", "2020-10-31"), ("2008-01-01", "2008-01-31")):
        window = view.period(*period).mask
        sums = view._sum(np.sum(f.panel.deaths[:, window], axis=1))
        with warnings.catch_warnings(record=True) as got:
            warnings.simplefilter("always")
            view._warn_missing(sums, sums, window=window, sums=sums)
        with warnings.catch_warnings(record=True) as want:
            warnings.simplefilter("always")
            _full_scan(view, sums, sums, window=window)
        assert [str(w.message) for w in got] == [str(w.message) for w in want]
    assert (want and "missing weeks" in str(want[0].message)) or not np.isnan(sums).any()


def test_own_row_kernels_equal_their_numpy_twins(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ``own_*`` kernels against their numpy twins (the group sums formed, then the previous
    per-row code) on NaN mu rows, masked weeks, a given obs and fitted, shared dispersion; their
    threaded drivers against the serial ones, bit for bit."""
    from excessmort._kernels import dependence as dk
    from excessmort.dependence import _PHI_GRID, MAX_LAG

    rng = np.random.default_rng(18)
    n, t = 300, 160
    mu = rng.uniform(5.0, 80.0, (n, t))
    mu[7] = np.nan
    deaths = rng.poisson(np.nan_to_num(mu) * rng.gamma(30.0, 1 / 30.0, t)).astype(np.float64)
    deaths[3, 20:30] = np.nan
    mask = rng.random((n, t)) > 0.05
    mask[:, 130:] = False
    phi = rng.uniform(0.9, 2.0, n)
    q = rng.uniform(1e-4, 1e-3, (n, t))
    obs = phi[:, None] * mu * rng.uniform(0.9, 1.1, (n, t))
    k = np.arange(1, MAX_LAG + 1)
    basis = _PHI_GRID[:, None] ** (k[None, :] - 1)
    norm = np.sum(basis * basis, axis=1)
    blocks = [np.arange(0, 52), np.arange(52, 104), np.arange(104, 130)]
    h = np.array([0.2, 0.3, 0.25])
    year_fitted = rng.uniform(1.0, 5.0, (3, n))
    X = np.column_stack([np.ones(t), np.linspace(-1.0, 1.0, t), np.cos(np.arange(t) / 8.3)])
    root = rng.normal(size=(n, 3, 3)) * 1e-3
    cov = root @ root.transpose(0, 2, 1)
    variants = [
        kernels.SeriesRows(deaths, mu, mask, True, None, phi, q, None),
        kernels.SeriesRows(deaths, mu, mask, False, obs, phi, None, 0.01 * obs),
    ]
    for rows in variants:
        for in_sample, shared in ((True, False), (False, True)):

            def run(engine: str, rows=rows, in_sample=in_sample, shared=shared) -> list:
                model = kernels.own_serial_model(
                    rows, in_sample, shared, basis, norm, _PHI_GRID, engine=engine
                )
                _, _, c, rho, a, ph, _ = model
                pf = c * 1.3
                moments = kernels.own_year_moments(
                    rows, in_sample, c, rho, a, ph, pf, blocks, h, year_fitted, 0.8, engine=engine
                )
                quads = kernels.own_year_moments(
                    rows, in_sample, c, rho, a, ph, pf, blocks, h, None, 0.8, engine=engine,
                    quad=(X, cov),
                )  # fmt: skip
                totals = kernels.own_column_totals(rows, in_sample, c, engine=engine)
                return [*model, np.array(moments), np.array(quads), *totals]

            got = run("numba")
            want = run("numpy")
            for x, y in zip(got, want, strict=True):
                _close(x, y, rtol=0.0, atol=1e-12) if x.ndim == 2 else _close(x, y)
            assert np.isfinite(got[-1]).any() and (got[2] > 1.0).any() == shared
    # threaded against serial drivers
    args = variants[0]._replace(q=q).kernel_args()
    chunks = np.linspace(0, n, 9).round().astype(np.int64)
    outs = []
    for kernel in (dk.own_serial_rows, dk.own_serial_rows_serial):
        o = [np.empty(n) for _ in range(3)] + [np.empty((n, MAX_LAG))] + [np.empty(n), np.empty(n)]
        flags = np.zeros((8, t), dtype=np.bool_)
        kernel(chunks, *args, True, False, basis, norm, _PHI_GRID, *o, flags)
        outs.append([*o, flags.any(axis=0)])
    for x, y in zip(*outs, strict=True):
        np.testing.assert_array_equal(x, y)
    _, _, c, rho, a, ph, _ = outs[0]
    pos = np.concatenate(blocks).astype(np.int64)
    ptr = np.array([0, 52, 104, 130], dtype=np.int64)
    years = []
    for quad in (False, True):
        years = []
        for kernel in (dk.own_year_rows, dk.own_year_rows_serial):
            o = [np.zeros((3, n)), np.zeros((3, n)), np.zeros((3, n), dtype=np.bool_)]
            fitted = year_fitted.copy() if not quad else np.zeros((3, n))
            kernel(
                chunks, *args, True, c, rho, a, ph, c, pos, ptr, h, fitted, quad, X, cov, 0.8, *o
            )
            years.append([*o, fitted])
        for x, y in zip(*years, strict=True):
            np.testing.assert_array_equal(x, y)
    # the blocks' fitted variances formed on the way are the year kernel's, bit for bit
    year_of = np.full(t, -1)
    for j, b in enumerate(blocks):
        year_of[b] = j
    formed = kernels.glm_year_fitted(mu, X, cov, phi, year_of, 3, engine="numba")
    np.testing.assert_array_equal(years[0][3], formed)
    columns = []
    for kernel in (dk.own_column_totals, dk.own_column_totals_serial):
        e, d = np.zeros(t), np.zeros(t)
        kernel(np.array([0, 70, t], dtype=np.int64), *args, True, c, e, d)
        columns.append((e, d))
    np.testing.assert_array_equal(columns[0][0], columns[1][0])
    np.testing.assert_array_equal(columns[0][1], columns[1][1])
    scaled = []
    for kernel in (dk.window_scaled_total, dk.window_scaled_total_serial):
        out = np.empty(n)
        kernel(mu, phi, 40, 150, c, rho, a, ph, out)
        scaled.append(out)
    np.testing.assert_array_equal(*scaled)
    formed = kernels.window_serial_total(phi[:, None] * mu[:, 40:150], None, c, rho, a, ph)
    np.testing.assert_array_equal(scaled[0], formed)
    in_place = kernels.window_serial_total(mu, None, c, rho, a, ph, scale=phi, cols=slice(40, 150))
    np.testing.assert_array_equal(in_place, formed)
    _numpy_twins(monkeypatch)
    twin = kernels.window_serial_total(mu, None, c, rho, a, ph, scale=phi, cols=slice(40, 150))
    _close(twin, formed)
