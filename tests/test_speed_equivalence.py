"""The fast user path gives the same numbers as the code before it (issue 18), to 1e-12.

``tests/data/speed_golden.npz`` holds outputs of the code *before* the speed work (main at
ef859b3) on two inputs: a string-keyed synthetic long frame with gaps, NaN weeks, a population
offset and shuffled rows, and the demo data. The new read/validate/panel/interval path must
reproduce them to 1e-12 relative on the scale of each row's figures (:func:`_assert_on_scale`; the
kernels are unchanged, the edges only move data).
Regenerate ONLY on purpose, from the code you want to freeze:
``python tests/test_speed_equivalence.py --overwrite``.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import excessmort as em

GOLDEN = Path(__file__).parent / "data" / "speed_golden.npz"
WEEKLY = (
    "observed",
    "expected",
    "expected_lower",
    "expected_upper",
    "excess",
    "excess_lower",
    "excess_upper",
    "z_score",
    "p_score",
)
#: Point estimates: never changed by an interval method.
POINT = ("observed", "expected", "excess", "p_score")
CUMULATIVE = ("observed", "expected", "excess", "excess_lower", "excess_upper", "p_score")
RTOL = 1e-12


def synthetic_frame() -> pd.DataFrame:
    """12 series (area x sex, strings), 300 weeks, gaps, NaN weeks, shuffled rows."""
    rng = np.random.default_rng(18)
    weeks = pd.date_range("2014-01-03", periods=300, freq="7D")
    areas = [f"area {i:02d}" for i in range(6)]
    rows = []
    for a, area in enumerate(areas):
        for sex in ("F", "M"):
            size = 20.0 + 40.0 * a + (5.0 if sex == "M" else 0.0)
            t = np.arange(300) / 52.18
            mu = size * np.exp(0.01 * t + 0.15 * np.cos(2 * np.pi * t))
            pop = size * 1000.0 * (1.0 + 0.003 * t)
            deaths = rng.poisson(mu * rng.gamma(20.0, 1 / 20.0, 300)).astype(float)
            frame = pd.DataFrame(
                {
                    "area": area,
                    "sex": sex,
                    "week_ending": weeks,
                    "deaths": deaths,
                    "population": pop,
                }
            )
            rows.append(frame)
    frame = pd.concat(rows, ignore_index=True)
    frame.loc[rng.choice(len(frame), 40, replace=False), "deaths"] = np.nan  # missing weeks
    frame = frame.drop(index=rng.choice(len(frame), 25, replace=False))  # absent rows (gaps)
    return frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)


def _weekly(frame: pd.DataFrame, strata: list[str]) -> dict[str, np.ndarray]:
    frame = frame.sort_values([*strata, "week_ending"]).reset_index(drop=True)
    out = {c: frame[c].to_numpy(dtype=np.float64) for c in WEEKLY}
    out["week"] = frame["week_ending"].to_numpy(dtype="datetime64[D]").astype(np.int64)
    for s in strata:
        out["key_" + s] = frame[s].astype(str).to_numpy(dtype="U")
    return out


def _cumulative(frame: pd.DataFrame, strata: list[str]) -> dict[str, np.ndarray]:
    frame = frame.sort_values(strata).reset_index(drop=True) if strata else frame
    out = {c: frame[c].to_numpy(dtype=np.float64) for c in CUMULATIVE}
    for s in strata:
        out["key_" + s] = frame[s].astype(str).to_numpy(dtype="U")
    return out


def outputs(engine: str = "numba") -> dict[str, np.ndarray]:
    """Every frozen array, keyed ``<input>/<table>/<column>``; by default from the numba kernels
    (what the golden froze: both inputs are small enough that ``engine="auto"`` now runs the numpy
    twins, compared with the golden by :func:`test_numpy_engine_on_small_panels_matches_golden`)."""
    result: dict[str, np.ndarray] = {}

    def put(prefix: str, arrays: dict[str, np.ndarray]) -> None:
        for k, v in arrays.items():
            result[f"{prefix}/{k}"] = v

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # dependence=False: the intervals of the code the golden froze (issue 21's
        # dependence-aware sums change aggregate and cumulative bounds by design)
        syn = em.fit(
            synthetic_frame(),
            reference=("2014-01-01", "2018-12-31"),
            dependence=False,
            engine=engine,  # type: ignore[arg-type]
        )
        put("syn/weekly", _weekly(syn.weekly, ["area", "sex"]))
        put("syn/by_sex", _weekly(syn.by("sex").weekly, ["sex"]))
        put("syn/cum", _cumulative(syn.cumulative("2019-01-01", "2019-09-30"), ["area", "sex"]))
        put("syn/by_total_cum", _cumulative(syn.by().cumulative("2019-01-01", None), []))
        coef = syn.coefficients.sort_values(["area", "sex"]).reset_index(drop=True)
        terms = [c for c in coef.columns if c not in ("area", "sex", "converged", "n_iter")]
        result["syn/coef"] = coef[terms].to_numpy(dtype=np.float64)
        result["syn/coef_names"] = np.array(terms, dtype="U")

        demo = em.fit(
            em.demo_data(),
            reference=("2015-01-01", "2019-12-31"),
            dependence=False,
            engine=engine,  # type: ignore[arg-type]
        )
        weekly = demo.weekly
        pick = weekly["age_group"].astype(str).eq("85+") & weekly["region"].astype(str).isin(
            ["E12000001", "E12000007"]
        )
        put("demo/weekly", _weekly(weekly[pick], ["region", "sex", "age_group"]))
        put("demo/total", _weekly(demo.by().weekly, ["region"]))
        put(
            "demo/by_region_cum",
            _cumulative(demo.by("region").cumulative("2020-03-01", "2020-12-31"), ["region"]),
        )
        put(
            "demo/cum",
            _cumulative(
                demo.cumulative("2020-03-01", "2021-06-30"), ["region", "sex", "age_group"]
            ),
        )
        coef = demo.coefficients
        terms = [c for c in coef.columns if c not in ("region", "sex", "age_group", "converged")]
        result["demo/coef"] = coef[terms].to_numpy(dtype=np.float64)
    return result


@pytest.fixture(scope="module")
def current() -> dict[str, np.ndarray]:
    return outputs()


@pytest.fixture(scope="module")
def stored() -> dict[str, np.ndarray]:
    with np.load(GOLDEN) as data:
        return {k: data[k] for k in data.files}


def _assert_on_scale(
    ours: dict[str, np.ndarray], stored: dict[str, np.ndarray], k: str, rtol: float
) -> None:
    """``ours[k]`` equals ``stored[k]`` to ``rtol`` relative on the scale of each row's figures.

    Expected deaths and their bounds are compared relative to themselves. A difference of two
    figures (excess = observed - expected, its bounds, z, P) is compared on the scale of the row's
    expected deaths (P on 100, z on expected / sd): excess cancels, so its own relative difference
    is that of expected divided by the P-score, meaningless near 0. Coefficients are compared
    relative to their series' largest (a coefficient near 0 is the difference of larger terms).
    NaNs must sit in the same places.

    Why a scale and not ``assert_allclose``: the kernels' inner reductions may reassociate
    (``_jit.jit_reduce``), so their rounding depends on the CPU's vector width. The golden was
    frozen on another machine; on an AVX-512 one (2026-12-02) the same code differs from it by up
    to 2.6e-13 on this scale, and by up to 4.3e-9 as a plain relative difference of an excess
    near 0.
    """
    prefix, col = k.rsplit("/", 1)
    want = stored[k]
    if col == "coef":
        scale = np.nanmax(np.abs(want), axis=1, keepdims=True)
    elif col == "p_score":  # 100 (y - mu) / mu
        scale = np.maximum(np.abs(want), 100.0)
    elif col == "z_score":  # (y - mu) / sd: on the scale of mu / sd
        z_crit = 1.959963984540054  # the 95% level's quantile
        sd = (stored[f"{prefix}/excess_upper"] - stored[f"{prefix}/excess_lower"]) / (2 * z_crit)
        scale = np.maximum(np.abs(want), np.abs(stored[f"{prefix}/expected"]) / sd)
    else:
        scale = np.maximum(np.abs(stored[f"{prefix}/expected"]), np.abs(want))
    np.testing.assert_array_equal(np.isnan(ours[k]), np.isnan(want), err_msg=k)
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.abs(ours[k] - want) / scale
    worst = float(rel[np.isfinite(rel)].max(initial=0.0))
    assert worst <= rtol, (k, worst)


def test_same_arrays(stored: dict[str, np.ndarray], current: dict[str, np.ndarray]) -> None:
    assert sorted(current) == sorted(stored)


@pytest.mark.parametrize(
    "prefix", ["syn/weekly", "syn/by_sex", "demo/weekly", "demo/total"], ids=str
)
def test_weekly_unchanged(
    prefix: str, stored: dict[str, np.ndarray], current: dict[str, np.ndarray]
) -> None:
    keys = [k for k in stored if k.startswith(prefix + "/key_")] + [prefix + "/week"]
    for k in keys:
        np.testing.assert_array_equal(current[k], stored[k], err_msg=k)
    for col in WEEKLY:
        _assert_on_scale(current, stored, f"{prefix}/{col}", RTOL)


@pytest.mark.parametrize(
    "prefix", ["syn/cum", "syn/by_total_cum", "demo/by_region_cum", "demo/cum"], ids=str
)
def test_cumulative_unchanged(
    prefix: str, stored: dict[str, np.ndarray], current: dict[str, np.ndarray]
) -> None:
    for k in (k for k in stored if k.startswith(prefix + "/key_")):
        np.testing.assert_array_equal(current[k], stored[k], err_msg=k)
    for col in CUMULATIVE:
        _assert_on_scale(current, stored, f"{prefix}/{col}", RTOL)


def test_coefficients_unchanged(
    stored: dict[str, np.ndarray], current: dict[str, np.ndarray]
) -> None:
    np.testing.assert_array_equal(current["syn/coef_names"], stored["syn/coef_names"])
    for k in ("syn/coef", "demo/coef"):
        _assert_on_scale(current, stored, k, RTOL)


#: The numpy twins against the numba kernels (the golden): both run R's IRLS to the same stopping
#: rule, with exp and the reductions rounded differently, so the fitted values agree to a few ulps
#: times the conditioning of X'WX (measured at most 1.3e-12 relative on the demo's expected deaths).
TWIN_RTOL = 5e-12


def test_numpy_engine_on_small_panels_matches_golden(stored: dict[str, np.ndarray]) -> None:
    """``engine="auto"`` runs the numpy twins on small panels (``NUMPY_MAX_CELLS``; the demo and
    the synthetic frame are both below it): their figures equal the golden (numba) ones to
    TWIN_RTOL relative on the scale of each row's expected deaths. Differences (excess, its bounds)
    are compared on that scale too: excess = observed - expected cancels, so its own relative
    difference is that of expected divided by the P-score, meaningless for an excess near 0."""
    from excessmort import _kernels

    assert max(12 * 300, 72 * 883) < _kernels.NUMPY_MAX_CELLS
    ours = outputs("auto")
    assert sorted(ours) == sorted(stored)
    for k in stored:
        _, col = k.rsplit("/", 1)
        if col.startswith("key_") or col in ("week", "coef_names"):
            np.testing.assert_array_equal(ours[k], stored[k], err_msg=k)
            continue
        _assert_on_scale(ours, stored, k, TWIN_RTOL)


def test_release_running_totals_are_the_window_calls() -> None:
    """The release's month-by-month running totals come from one running pass
    (``cumulative_path``); they equal one ``cumulative`` call per month end."""
    from excessmort.report.stage import _month_ends, running_totals

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        view = em.fit(em.demo_data()).by("region")
    start = pd.Timestamp("2020-01-01")
    ends = _month_ends(start, pd.Timestamp("2021-04-30"))
    ours = running_totals(view, start, ends)
    ref = pd.concat([view.cumulative(start, e) for e in ends], ignore_index=True)
    # the columns the release's tables read (cumulative() has more: names, labels)
    assert set(ours.columns) <= set(ref.columns) and len(ours) == len(ref) == 9 * len(ends)
    for c in ("region", "start", "end", "n_weeks"):
        assert ours[c].astype(str).tolist() == ref[c].astype(str).tolist(), c
    for c in CUMULATIVE:
        np.testing.assert_allclose(ours[c], ref[c], rtol=1e-12, atol=0, err_msg=c)


def _sorted_frame() -> pd.DataFrame:
    frame = synthetic_frame()
    return frame.sort_values(["area", "sex", "week_ending"]).reset_index(drop=True)


@pytest.mark.parametrize("layout", ["sorted", "shuffled", "split", "week_major"])
def test_row_layouts_give_one_result(layout: str) -> None:
    """The fast paths (runs of equal strata, sorted rows, grid occupancy) and the general path
    read the same frame and fill the same panel whatever the row order."""
    from excessmort.io import _read_panel

    base = _sorted_frame()
    if layout == "shuffled":
        frame = base.sample(frac=1.0, random_state=3).reset_index(drop=True)
    elif layout == "split":  # every series in two blocks
        late = base["week_ending"] >= pd.Timestamp("2017-01-01")
        frame = pd.concat([base[~late], base[late]], ignore_index=True)
    elif layout == "week_major":
        frame = base.sort_values(["week_ending", "area", "sex"]).reset_index(drop=True)
    else:
        frame = base
    ref = em.read(base)
    got = em.read(frame)
    pd.testing.assert_frame_equal(got, ref)
    a, b = _read_panel(base), _read_panel(frame)
    pd.testing.assert_frame_equal(a.keys, b.keys)
    np.testing.assert_array_equal(a.deaths, b.deaths)
    np.testing.assert_array_equal(a.exposure, b.exposure)
    assert a.weeks.equals(b.weeks)


@pytest.mark.parametrize("layout", ["sorted", "shuffled"])
def test_duplicate_found_on_the_grid_names_both_rows(layout: str) -> None:
    base = _sorted_frame()
    dup = base.iloc[[100]]
    frame = pd.concat([base.iloc[:101], dup, base.iloc[101:]], ignore_index=True)
    if layout == "shuffled":
        order = np.random.default_rng(1).permutation(len(frame))
        frame = frame.iloc[order].reset_index(drop=True)
        first, second = sorted(np.flatnonzero(np.isin(order, [100, 101])))
    else:
        first, second = 100, 101
    with pytest.raises(em.InputError) as info:
        em.fit(frame, reference=("2014-01-01", "2018-12-31"))
    text = str(info.value)
    assert "duplicate series-week" in text
    assert f"row {second:,}" in text and f"already given at row {first:,}" in text
    assert info.value.row == second


def test_off_weekday_found_on_the_grid_names_the_row() -> None:
    frame = _sorted_frame()
    frame.loc[37, "week_ending"] = frame.loc[37, "week_ending"] - pd.Timedelta(days=1)
    with pytest.raises(em.InputError) as info:
        em.read(frame)
    assert "row 37" in str(info.value) and "(a Thursday)" in str(info.value)
    assert info.value.column == "week_ending"


# ---------------------------------------------------------------- the row kernels of read
# read's dates and week grid: the numba row kernels (_kernels/rows.py) against their numpy twins
# (_kernels/rows_ref.py) and the whole read on engine="numpy" (the numpy code before them).


def _rows_cases() -> list[tuple[np.ndarray, int, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(5)
    week = 7 * 86_400
    cases = []
    grid = np.tile(np.arange(30, dtype=np.int64) * week + 10**9 // 86_400 * 86_400, 4)
    starts = np.arange(0, 120, 30, dtype=np.int64)
    cases.append((grid, week, starts, np.arange(4, dtype=np.int64)))  # sorted, complete
    gaps = np.delete(grid, [3, 4, 50, 119])
    cases.append((gaps, week, np.array([0, 28, 57, 87]), np.arange(4, dtype=np.int64)))
    off = grid.copy()
    off[[7, 61]] += 86_400  # off the weekday
    cases.append((off, week, starts, np.arange(4, dtype=np.int64)))
    shuffled = rng.permutation(grid)
    cases.append((shuffled, week, np.arange(120, dtype=np.int64), rng.integers(0, 4, 120)))
    dup = grid.copy()
    dup[5] = dup[4]  # a week twice in one run
    cases.append((dup, week, starts, np.arange(4, dtype=np.int64)))
    back = grid.copy()
    back[[10, 11]] = back[[11, 10]]  # weeks out of order inside a run
    cases.append((back, week, starts, np.array([0, 2, 1, 3])))
    return cases


@pytest.mark.parametrize("case", range(6))
def test_row_kernels_equal_their_numpy_twins(case: int) -> None:
    from excessmort._kernels import rows, rows_ref

    ticks, week, starts, series = _rows_cases()[case]
    with_nat = ticks.copy()
    with_nat[[2, 9]] = rows.NAT
    for t in (ticks, with_nat, with_nat[:0], np.full(3, rows.NAT)):
        assert rows.day_scan(t) == rows_ref.day_scan_ref(t)
    first = int(ticks.min())
    got, want = np.empty_like(ticks), np.empty_like(ticks)
    a = rows.week_codes(ticks, first, week, starts, series, got)
    b = rows_ref.week_codes_ref(ticks, first, week, starts, series, want)
    assert a == b
    np.testing.assert_array_equal(got, want)
    # an empty out: the same checks, nothing written
    empty = np.empty(0, dtype=np.int64)
    assert rows.week_codes(ticks, first, week, starts, series, empty) == a
    assert rows_ref.week_codes_ref(ticks, first, week, starts, series, empty) == a


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
@pytest.mark.parametrize("layout", ["sorted", "shuffled", "noon", "some_noon"])
def test_read_with_row_kernels_equals_numpy_read(unit: str, layout: str) -> None:
    """read and fit's panel on the row kernels (dates kept in their own unit, no copy) equal the
    numpy read (every date converted to ns, as before), whatever the unit and row order; dates at
    noon are normalised to midnight on both (``some_noon``: the kernels find them off the week grid
    and hand the column to check_dates)."""
    from excessmort.io import _read_panel

    frame = _sorted_frame()
    if layout == "shuffled":
        frame = frame.sample(frac=1.0, random_state=4).reset_index(drop=True)
    elif layout == "noon":
        frame["week_ending"] = frame["week_ending"] + pd.Timedelta(hours=12)
    elif layout == "some_noon":  # the first date at midnight: found off the grid, then normalised
        frame.loc[500:509, "week_ending"] += pd.Timedelta(hours=12)
    frame["week_ending"] = frame["week_ending"].astype(f"datetime64[{unit}]")
    a, b = _read_panel(frame, engine="numpy"), _read_panel(frame, engine="numba")
    pd.testing.assert_frame_equal(a.keys, b.keys)
    np.testing.assert_array_equal(a.deaths, b.deaths)
    np.testing.assert_array_equal(a.exposure, b.exposure)
    assert a.weeks.equals(b.weeks)
    from excessmort.io import _validate

    ref = em.read(_sorted_frame())
    for engine in ("numpy", "numba"):  # the tidy frame of read() on either path
        got = _validate(frame, strata=None, keep_wales=False, engine=engine).frame()
        pd.testing.assert_frame_equal(got, ref)
        assert str(got["week_ending"].dtype) == "datetime64[ns]"


def test_fast_dates_leave_the_input_alone() -> None:
    from excessmort.io import _validate

    frame = _sorted_frame()
    frame["week_ending"] = frame["week_ending"].astype("datetime64[us]")
    before = frame.copy()
    tidy = _validate(frame, strata=None, keep_wales=False, engine="numba").frame()
    pd.testing.assert_frame_equal(tidy, em.read(before))
    pd.testing.assert_frame_equal(frame, before)
    assert not np.shares_memory(tidy["week_ending"].to_numpy(), frame["week_ending"].to_numpy())


def _previous_change_rows(values: pd.Series) -> np.ndarray:
    """The run boundaries of a column as the code before the text kernel found them (Arrow's
    ``not_equal`` of the column against itself shifted by one row)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    data = pa.array(values.array)
    if isinstance(data, pa.ChunkedArray):
        data = data.combine_chunks()
    changed = pc.not_equal(data.slice(1), data.slice(0, len(data) - 1))
    return np.flatnonzero(changed.to_numpy(zero_copy_only=False)).astype(np.int64) + 1


def _text_columns(seed: int) -> list[pd.Series]:
    """String columns with runs of every length around the kernel's block, texts of equal and of
    different lengths side by side (``ab``/``ba``, ``a``/``aa``), empty texts and non-ASCII."""
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    texts = np.array(
        ["", "a", "aa", "ab", "ba", "abc", "\xe9", "e\u0301", "E06000001", "E06000002"]
    )
    n_runs = int(rng.integers(1, 80))
    runs = texts[rng.integers(0, len(texts), n_runs)]
    values = runs.repeat(rng.integers(1, 3 * 64, n_runs)).tolist()
    base = pd.Series(values, dtype="str")
    return [
        base,
        base.iloc[int(rng.integers(0, 5)) :],  # a slice: the Arrow array has an offset
        pd.Series(pd.arrays.ArrowExtensionArray(pa.array(values, type=pa.string()))),  # int32
        pd.Series(
            pd.arrays.ArrowExtensionArray(
                pa.chunked_array([pa.array(values[:7], pa.large_string()), values[7:]])
            )
        ),
    ]


@pytest.mark.parametrize("seed", range(40))
def test_text_kernel_finds_the_runs_arrow_finds(seed: int) -> None:
    """read's run boundaries of string strata from the text kernel (Arrow's buffers) equal the
    previous implementation's (Arrow's own comparison), and the numpy engine's."""
    from excessmort._kernels import row_kernels
    from excessmort.io import _change_rows

    kernels = row_kernels("numba")
    for col in _text_columns(seed):
        if len(col) < 2:
            continue
        want = _previous_change_rows(col)
        np.testing.assert_array_equal(_change_rows(col, kernels=kernels), want)
        np.testing.assert_array_equal(_change_rows(col), want)
        for limit in (0, 3, len(want)):  # the scan stops after limit + 1 rows (read's unsorted cue)
            got = _change_rows(col, kernels=kernels, limit=limit)
            np.testing.assert_array_equal(got, want[: limit + 1])


@pytest.mark.parametrize("seed", range(12))
def test_text_scan_in_pieces_finds_the_same_runs(seed: int) -> None:
    """The text scan cut into pieces for the threads (large inputs) gives the serial scan's rows,
    whatever the number of pieces, and the same first ``limit + 1`` rows when cut short."""
    from types import SimpleNamespace

    from excessmort import _kernels
    from excessmort._kernels import rows
    from excessmort.io import _change_rows

    serial = _kernels.row_kernels("numba")
    assert serial.text_changes_pieces is None and serial.pieces == 0  # no row count: never cut
    for col in _text_columns(seed):
        if len(col) < 2:
            continue
        want = _change_rows(col, kernels=serial)
        for pieces in (2, 3, 7, 64):
            kernels = SimpleNamespace(
                **{
                    **vars(serial),
                    "text_changes_pieces": rows.text_changes_pieces,
                    "pieces": pieces,
                }
            )
            np.testing.assert_array_equal(_change_rows(col, kernels=kernels), want)
            for limit in (0, 3, len(want)):
                got = _change_rows(col, kernels=kernels, limit=limit)
                np.testing.assert_array_equal(got, want[: limit + 1])


def test_large_reads_cut_the_text_scan_on_threads() -> None:
    """From PARALLEL_MIN_ROWS rows on the main thread with several numba threads, read's row
    kernels cut the text scan into pieces; below it, or on one thread, they do not."""
    import numba

    from excessmort import _kernels

    big = _kernels.row_kernels("numba", _kernels.PARALLEL_MIN_ROWS)
    small = _kernels.row_kernels("numba", _kernels.PARALLEL_MIN_ROWS - 1)
    assert small.text_changes_pieces is None and small.pieces == 0
    if numba.get_num_threads() > 1:
        assert big.text_changes_pieces is not None
        assert big.pieces == 2 * numba.get_num_threads()
    else:
        assert big.text_changes_pieces is None and big.pieces == 0


def test_text_buffers_give_one_kernel_signature() -> None:
    """Large and small string columns, slices and all-empty texts reach the text kernel as the
    same array types (read-only views), so numba compiles (and caches) it once."""
    import pyarrow as pa

    from excessmort.io import _text_buffers

    arrays = [pa.array(["ab", "ab", "c"] * 30, t) for t in (pa.large_string(), pa.string())]
    arrays += [arrays[0].slice(3), pa.array([""] * 40, pa.large_string())]
    kinds = set()
    for a in arrays:
        parts = _text_buffers(a)
        assert parts is not None
        kinds.add(
            tuple((p.dtype.str, p.ndim, p.flags.c_contiguous, p.flags.writeable) for p in parts)
        )
    assert kinds == {(("<i8", 1, True, False), ("|u1", 1, True, False), ("<u8", 1, True, False))}
    assert _text_buffers(pa.array(["a", None], pa.large_string())) is None
    assert _text_buffers(pa.array([1, 2])) is None


@pytest.mark.parametrize("text", ["abcdefgh", "abcdefghi", "abc", "E06000001xyzabcdefgh"])
def test_text_kernel_reads_every_byte(text: str) -> None:
    """A change in any byte of a long run is found, at every row of a block, on the word path
    (lengths a multiple of 8 bytes and not: shifted words) and on the bytes-only path."""
    import pyarrow as pa

    from excessmort._kernels import rows
    from excessmort.io import _text_buffers

    values = [text] * (3 * rows.TEXT_BLOCK + 5)
    for at in range(1, len(values)):
        for pos in sorted({0, len(text) // 2, len(text) - 1}):
            edited = list(values)
            edited[at] = edited[at][:pos] + "X" + edited[at][pos + 1 :]
            offsets, data, words = _text_buffers(pa.array(edited, pa.large_string()))
            assert words.shape[0] == data.shape[0] // 8  # Arrow's buffers are aligned
            want = [at, at + 1] if at + 1 < len(values) else [at]
            for w in (words, words[:0]):
                out = np.empty(len(edited) - 1, dtype=np.int64)
                found = out[: rows.text_changes(offsets, data, w, out)]
                np.testing.assert_array_equal(found, want)


def test_mean_fitted_count_is_the_masked_mean() -> None:
    """The dispersion check's mean weekly count over the fitted weeks: the one-pass kernel, its
    numpy twin (the code before it) and the mean of the picked-out values agree (to 1e-14;
    NaN for a series without a fitted week), on NaN weeks and any mask."""
    from excessmort._dispersion import mean_fitted_count

    rng = np.random.default_rng(11)
    deaths = rng.poisson(30.0, (40, 57)).astype(float)
    deaths[rng.random(deaths.shape) < 0.1] = np.nan
    mask = rng.random(deaths.shape) < 0.7
    mask[3] = False  # no fitted week
    deaths[5] = np.nan  # fitted weeks all missing
    want = np.array(
        [
            row[m & ~np.isnan(row)].mean() if (m & ~np.isnan(row)).any() else np.nan
            for row, m in zip(deaths, mask, strict=True)
        ]
    )
    for engine in ("numba", "numpy"):
        got = mean_fitted_count(deaths, mask, engine)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_allclose(got, want, rtol=1e-14)
    assert np.isnan(want[[3, 5]]).all() and np.isfinite(np.delete(want, [3, 5])).all()
    fortran = np.asfortranarray(deaths)[:, ::2]  # any layout reaches the kernel contiguous
    np.testing.assert_allclose(
        mean_fitted_count(fortran, mask[:, ::2], "numba"),
        mean_fitted_count(fortran, mask[:, ::2], "numpy"),
        rtol=1e-14,
    )


def test_tile_is_numpys_tile() -> None:
    """The weekly frame's week columns tiled by the threads equal ``np.tile``, dtype included
    (int64, datetime64 of either unit; small and large outputs; off the main thread)."""
    from concurrent.futures import ThreadPoolExecutor

    from excessmort._kernels import PARALLEL_MIN_SERIES, tile

    weeks = pd.date_range("2015-01-02", periods=37, freq="7D")
    cases = [weeks.to_numpy(), weeks.to_numpy().astype("datetime64[us]"), np.arange(37) * 3 - 50]
    for values in cases:
        for n_rows in (0, 1, 5, PARALLEL_MIN_SERIES, 3 * PARALLEL_MIN_SERIES + 7):
            for engine in ("numba", "numpy"):
                got = tile(values, n_rows, engine)
                assert got.dtype == values.dtype
                np.testing.assert_array_equal(got, np.tile(values, n_rows))
        with ThreadPoolExecutor(1) as pool:
            got = pool.submit(tile, values, 2 * PARALLEL_MIN_SERIES, "numba").result()
        np.testing.assert_array_equal(got, np.tile(values, 2 * PARALLEL_MIN_SERIES))


_AFTER_WARMUP = """
import importlib, sys
import numpy as np, pandas as pd
import excessmort
from excessmort._kernels import warmup
warmup()
mods = [importlib.import_module("excessmort._kernels." + m)
        for m in ("rows", "irls", "intervals", "dependence")]
def counts():
    return {m.__name__ + "." + k: len(v.signatures)
            for m in mods for k, v in vars(m).items() if hasattr(v, "signatures")}
before = counts()
rng = np.random.default_rng(4)
weeks = pd.date_range("2012-01-06", periods=470, freq="7D")  # 282,000 rows: the row kernels
areas = [f"E{6000000 + i:08d}" for i in range(300)]
frame = pd.DataFrame({
    "area": np.repeat(areas, 2 * len(weeks)),
    "sex": np.tile(np.repeat(["F", "M"], len(weeks)), len(areas)),
})
frame["week_ending"] = np.tile(weeks.to_numpy(), 2 * len(areas))  # as a user adds a column
frame["deaths"] = rng.poisson(30.0, 2 * len(areas) * len(weeks))
fit = excessmort.fit(frame, reference=("2012-01-01", "2018-12-31"), engine="numba")
fit.weekly, fit.cumulative("2019-01-01", "2020-09-30"), fit.by("sex").weekly
# a signature the fit added: to a kernel warmup compiled, or to one it missed
grown = {k: (before.get(k, 0), n) for k, n in counts().items() if n > before.get(k, 0)}
print(grown)
sys.exit(1 if grown else 0)
"""


def test_a_fit_after_warmup_compiles_nothing_more() -> None:
    """``warmup()`` compiles each kernel for the array types a fit passes it (read-only views,
    as pandas hands them out): a string-keyed fit, its weekly frame, a cumulative figure and a
    ``by()`` view after it compile nothing, neither a second signature of a kernel warmup
    compiled nor a kernel it missed (a fresh process, so that no earlier test's calls hide one)."""
    import subprocess

    done = subprocess.run(
        [sys.executable, "-c", _AFTER_WARMUP], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]


def test_edge_kernels_compile_one_signature() -> None:
    """The week tiling and the mean fitted count reach numba as one type whether the caller's
    arrays are writeable or not (a DatetimeIndex's values are read-only)."""
    from excessmort._kernels import PARALLEL_MIN_SERIES, masked_row_means, rows, tile, warmup

    warmup(baseline="five_year_average")  # rows, dependence, intervals
    weeks = pd.date_range("2015-01-02", periods=20, freq="7D")
    n_rows = 2 * PARALLEL_MIN_SERIES
    values = np.arange(20, dtype=np.int64)
    frozen = values.view()
    frozen.flags.writeable = False
    for v in (weeks.to_numpy(), values, frozen):
        tile(v, n_rows, "numba")
    deaths = np.ones((600, 500))
    mask = np.ones(deaths.shape, dtype=bool)
    stuck = deaths.view()
    stuck.flags.writeable = False
    for d in (deaths, stuck):
        masked_row_means(d, mask, "numba")
    assert len(rows.tile_into.signatures) == 1
    assert len(rows.masked_row_means.signatures) == 1


def test_vectorised_exp_is_within_two_ulp_of_numpy() -> None:
    """``exp_into`` (the IRLS's and the interval kernel's exponentials) against ``np.exp``: within
    2 ulp on [-700, 700] (a dense grid, uniform and normal draws), and numpy's own value for zero,
    NaN, +-inf and every argument beyond +-700 (under- and overflow included)."""
    from excessmort._kernels.irls import exp_into

    rng = np.random.default_rng(8)
    inner = np.concatenate(
        [
            np.linspace(-700.0, 700.0, 200_001),
            rng.uniform(-700, 700, 50_000),
            rng.normal(0, 3, 50_000),
        ]
    )
    inside = [0.0, -0.0, 700.0, -700.0, 1e-300, -1e-300]
    beyond = [700.5, -700.5, 709.7, 710.0, -745.0, -746.0, 1e300, -1e300, np.inf, -np.inf, np.nan]
    edges = np.array([*inside, *beyond])
    for x in (inner, edges):
        got, work = np.empty_like(x), np.empty_like(x)
        exp_into(x, got, work, x.shape[0])
        with np.errstate(over="ignore"):
            want = np.exp(x)
        normal = np.isfinite(want) & (want > 0) & (np.abs(x) <= 700.0)
        ulps = np.abs(got[normal] - want[normal]) / np.spacing(want[normal])
        assert ulps.max(initial=0.0) <= 2.0
        np.testing.assert_array_equal(got[~normal], want[~normal])  # (NaN equals NaN here)
    assert normal.sum() == len(inside)  # the edges inside +-700 were held to 2 ulp too


def test_start_tables_equal_the_previous_implementation() -> None:
    """The IRLS start tables from one fmax pass equal those of the finite values picked out."""
    from excessmort._kernels.irls import start_tables

    def previous(Y):
        finite = Y[np.isfinite(Y)]
        top = int(min(finite.max(initial=0.0), 1e6)) + 1
        k = np.arange(top, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            ylogy = np.where(k > 0, k * np.log(k) - k, 0.0)
        return np.log(k + 0.1), ylogy

    rng = np.random.default_rng(3)
    Y = rng.poisson(40.0, (7, 30)).astype(float)
    cases = [Y, np.where(Y > 45, np.nan, Y), np.full((2, 3), np.nan), np.zeros((0, 4))]
    cases += [np.array([[np.inf, 3.0, np.nan]]), np.array([[-np.inf, 5.0]]), np.array([[2e6]])]
    cases += [-Y, np.asfortranarray(Y)[:, ::2]]
    for case in cases:
        for a, b in zip(start_tables(case), previous(case), strict=True):
            np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------- the fused interval kernel
# The interval columns and the weekly frame as the code before the fused kernel built them (main
# at 3faef84: ``excess_arrays`` in numpy, the frame from ``keys.iloc`` + inserted columns); the
# fused kernel and the copy-free assembly must give the same frame to 1e-12, intervals honest
# (dependence on, the default).


def _previous_arrays(observed, mu, obs_var, param_var, level, prediction):
    from scipy import stats

    z = stats.norm.ppf(0.5 + level / 2.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        se_log = np.sqrt(param_var) / mu
        lower, upper, z_score = prediction(observed, mu, obs_var, param_var, level)
        excess = observed - mu
        return {
            "observed": observed,
            "expected": mu,
            "expected_lower": mu * np.exp(-z * se_log),
            "expected_upper": mu * np.exp(z * se_log),
            "excess": excess,
            "excess_lower": observed - upper,
            "excess_upper": observed - lower,
            "z_score": z_score,
            "p_score": 100.0 * excess / mu,
            "lower": lower,
            "upper": upper,
        }


def _previous_weekly_frame(weeks, keys, arrays):
    from excessmort._fit import WEEKLY_COLUMNS
    from excessmort._frames import add_prediction, add_region_name, add_week_numbers

    n_rows, n_weeks = len(keys), len(weeks)
    out = keys.iloc[np.repeat(np.arange(n_rows), n_weeks)].reset_index(drop=True)
    out["week_ending"] = np.tile(weeks.to_numpy(), n_rows)
    for c in WEEKLY_COLUMNS:
        out[c] = np.asarray(arrays[c]).reshape(-1)
    add_prediction(out, arrays["lower"], arrays["upper"])
    return add_week_numbers(add_region_name(out))


def _previous_weekly(view) -> pd.DataFrame:
    res = view.result
    observed = view._sum(view.panel.deaths)
    mu = view._sum(res.mu)
    obs_var = view._sum(res.obs_variance())
    param_var = view._masked_result_call("param_variance_weekly")
    if view._dependence_on and (view._by is not None or res.shared_dispersion):
        obs_var, param_var = view._dependence.weekly(obs_var, param_var, mu, view.weeks)
    arrays = _previous_arrays(observed, mu, obs_var, param_var, view.level, res.prediction)
    out = _previous_weekly_frame(view.panel.weeks, view._grouping[1], arrays)
    if view.panel.exposure is not None:  # the rates per 100,000 (issue 17) after the columns
        from excessmort._rates import add_rates

        add_rates(out, view._sum(view.panel.exposure))
    return out


def _assert_same_frame(got: pd.DataFrame, want: pd.DataFrame) -> None:
    """Same columns, dtypes and index; keys exactly, numbers to RTOL with NaN in the same places
    (column by column: ``assert_frame_equal`` takes seconds on categoricals)."""
    assert list(got.columns) == list(want.columns)
    assert got.dtypes.to_dict() == want.dtypes.to_dict()
    pd.testing.assert_index_equal(got.index, want.index)
    for c in got.columns:
        a, b = got[c], want[c]
        if a.dtype.kind == "f":
            x, y = a.to_numpy(), b.to_numpy()
            np.testing.assert_array_equal(np.isnan(x), np.isnan(y), err_msg=c)
            np.testing.assert_allclose(x, y, rtol=RTOL, atol=0, err_msg=c)
        elif isinstance(a.dtype, pd.CategoricalDtype):
            pd.testing.assert_index_equal(a.cat.categories, b.cat.categories)
            np.testing.assert_array_equal(a.cat.codes.to_numpy(), b.cat.codes.to_numpy(), c)
        else:
            np.testing.assert_array_equal(a.to_numpy(), b.to_numpy(), err_msg=c)


@pytest.fixture(scope="module")
def honest_fits():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        syn = em.fit(synthetic_frame(), reference=("2014-01-01", "2018-12-31"))
        demo = em.fit(em.demo_data())
    return {"syn": syn, "demo": demo}


@pytest.mark.parametrize(
    "name,by",
    [("syn", None), ("syn", ("sex",)), ("demo", None), ("demo", ("region",)), ("demo", ())],
    ids=["syn", "syn_by_sex", "demo", "demo_by_region", "demo_total"],
)
def test_weekly_frame_equals_previous_implementation(honest_fits, name, by) -> None:
    fit = honest_fits[name]
    view = fit if by is None else fit.by(*by)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = view.weekly
        want = _previous_weekly(view)
    _assert_same_frame(got, want)


def test_weekly_frame_adopts_the_arrays(honest_fits) -> None:
    """No copies: expected is the fit's mu, the interval columns are rows of one kernel buffer,
    strata are categoricals; copy-on-write keeps the fit safe from edits of the frame."""
    fit = honest_fits["syn"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w = fit.weekly
    mu = fit.result.mu
    assert np.shares_memory(w["expected"].to_numpy(), mu)
    assert np.shares_memory(w["observed"].to_numpy(), fit.panel.deaths)
    buf = w["excess_lower"].to_numpy()
    for c in ("expected_lower", "z_score", "p_score", "ratio_upper", "prediction_upper"):
        assert np.shares_memory(w[c].to_numpy(), buf.base if buf.base is not None else buf), c
    assert isinstance(w["area"].dtype, pd.CategoricalDtype)
    before = mu[0, 0]
    w.loc[0, "expected"] = -1.0
    assert mu[0, 0] == before


def test_week_numbers_are_tiled_once_and_edits_stay_apart(honest_fits) -> None:
    """The ONS year/week of Friday weeks are the ISO ones: one tiled array behind both columns,
    and copy-on-write keeps an edit of one out of the other (and out of the next frame)."""
    fit = honest_fits["demo"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w = fit.by("region").weekly
    assert np.shares_memory(w["year"].to_numpy(), w["iso_year"].to_numpy())
    assert np.shares_memory(w["week"].to_numpy(), w["iso_week"].to_numpy())
    iso_year, iso_week = w["iso_year"].to_numpy().copy(), w["iso_week"].to_numpy().copy()
    w.loc[0, "year"] = 1900
    w.loc[1, "iso_week"] = 99
    assert w["year"].iloc[0] == 1900 and w["iso_year"].iloc[0] == iso_year[0]
    assert w["iso_week"].iloc[1] == 99 and w["week"].iloc[1] == iso_week[1]
    path = fit.by().cumulative_path("2020-03", "2020-06")
    path.loc[0, "iso_year"] = 1900
    assert path["year"].iloc[0] != 1900


def test_cumulative_path_equals_previous_implementation(honest_fits) -> None:
    from excessmort._fit import CUMULATIVE_COLUMNS
    from excessmort._frames import add_region_name, add_week_numbers

    view = honest_fits["demo"].by("region")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = view.cumulative_path("2020-03", "2021-03")
        window = view.period("2020-03", "2021-03").mask
        observed, mu, obs_var, param_var = view._window_variances(window, running=True)
    arrays = _previous_arrays(observed, mu, obs_var, param_var, view.level, view.result.prediction)
    keys = view._grouping[1]
    n_rows, n_weeks = mu.shape
    want = keys.iloc[np.repeat(np.arange(n_rows), n_weeks)].reset_index(drop=True)
    want["week_ending"] = np.tile(view.weeks[window].to_numpy(), n_rows)
    for c in (*CUMULATIVE_COLUMNS, "p_score"):
        want[c] = np.asarray(arrays[c]).reshape(-1)
    want = add_week_numbers(add_region_name(want))
    if view.panel.exposure is not None:  # the rates (issue 17), checked against cumulative() in
        from excessmort._rates import add_rates  # test_analysts

        pop = view._sum(view.panel.exposure[:, window])
        add_rates(want, (np.cumsum(pop, axis=1) / np.arange(1, pop.shape[1] + 1)).reshape(-1))
    _assert_same_frame(got.reset_index(drop=True), want)


if __name__ == "__main__":
    if "--overwrite" not in sys.argv:
        raise SystemExit("usage: python tests/test_speed_equivalence.py --overwrite")
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(GOLDEN, **outputs())
    print(f"wrote {GOLDEN} ({GOLDEN.stat().st_size / 1024:.0f} KiB)")
