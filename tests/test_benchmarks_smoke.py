"""Smoke test of the benchmark harness: 20 series x 120 weeks, in process, no timing assertion.

Checks that every case runs, that the results file has every column and every row the metadata
(machine, versions, git SHA, date), that the engines did the same work as statsmodels (expected
deaths within 1e-6 relative: the oracle tolerance of STYLE.md for fitted values is 1e-8, loosened
for glum, whose own stopping rule differs), that competitor ratios are filled in, that the CLI's
stage lines parse, and that the README table is the one the tracked docs results give.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import readme_table  # noqa: E402
from benchmarks.cli_e2e import parse_stages  # noqa: E402
from benchmarks.run import (  # noqa: E402
    COLUMNS,
    META_COLUMNS,
    complete_rows,
    format_table,
    run_suite,
    write_results,
)

SMOKE = {
    "defaults": {"seed": 7, "repeats": 5, "equal_k": 6},
    "suite": {
        "smoke": {
            "cli": False,
            "workload": [
                {
                    "name": "smoke",
                    "n_series": 20,
                    "n_weeks": 120,
                    "n_ref": 104,
                    "offset": True,
                    "cases": [
                        "excessmort.kernels",
                        "excessmort.fit",
                        "numpy.batched",
                        "statsmodels.loop",
                        "glum.loop",
                        "excessmort.sums",
                        "excessmort.sums_dependence",
                    ],
                    "threads": {"excessmort.kernels": [1], "excessmort.fit": [1]},
                    "sample": {"numpy.batched": 20, "statsmodels.loop": 5, "glum.loop": 3},
                }
            ],
        }
    },
}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, list[dict], Path]:
    rows, meta = run_suite(SMOKE, "smoke", isolate=False, cli=False, log=lambda _: None)
    full = complete_rows(rows, meta, "smoke")
    out = tmp_path_factory.mktemp("bench")
    path = write_results(full, meta, out, SMOKE, "smoke")
    return pd.read_csv(path, keep_default_na=False), full, out


def test_every_column_and_metadata_in_every_row(results):
    frame, _, out = results
    assert list(frame.columns) == COLUMNS
    assert len(frame) == 7
    for col in (
        "cpu",
        "cores",
        "python",
        "numpy",
        "numba",
        "pandas",
        "statsmodels",
        "git_sha",
        "date",
        "env",
        "suite",
        "run_id",
    ):
        assert col in META_COLUMNS
        assert (frame[col].astype(str).str.len() > 0).all(), col
    assert frame["run_id"].eq("smoke").all()
    for name in ("results.json", "config.toml", "machine.json"):
        assert (out / name).is_file()


def test_cases_ran_and_did_the_same_work(results):
    frame, _, _ = results
    statuses = dict(zip(frame["case"], frame["status"], strict=True))
    for case in (
        "excessmort.kernels",
        "excessmort.fit",
        "numpy.batched",
        "statsmodels.loop",
        "excessmort.sums",
        "excessmort.sums_dependence",
    ):
        assert statuses[case] == "ok", (case, statuses[case])
    assert statuses["glum.loop"] == "ok" or statuses["glum.loop"].startswith("not available")
    ok = frame[frame["status"] == "ok"]
    diffs = pd.to_numeric(ok["max_rel_diff_expected"])
    assert (diffs < 1e-6).all(), ok[["case", "max_rel_diff_expected"]]
    exact = ok[
        ok["case"].isin(
            ["excessmort.kernels", "excessmort.fit", "numpy.batched", "excessmort.sums"]
        )
    ]
    assert (pd.to_numeric(exact["max_rel_diff_expected"]) < 1e-8).all()
    assert (pd.to_numeric(ok["warm_s"]) > 0).all()
    assert (pd.to_numeric(ok["repeats"]) >= 5).all()
    # cold and cached are not defined in process: left empty, never made up
    assert ok["cold_s"].eq("").all() and ok["cached_s"].eq("").all()


def test_ratios_and_flops(results):
    frame, full, _ = results
    comp = frame[(frame["status"] == "ok") & ~frame["case"].str.startswith("excessmort")]
    assert (pd.to_numeric(comp["ratio_vs_fit"]) > 0).all()
    assert (comp["ratio_base"] == "excessmort.fit").all()
    kern = frame[frame["case"] == "excessmort.kernels"].iloc[0]
    assert float(kern["mean_iter"]) >= 2
    assert int(kern["nonconverged"]) == 0
    # the dependence model's cost: its sums over the independence sums of the same fitted panel
    dep = frame[frame["case"] == "excessmort.sums_dependence"].iloc[0]
    ind = frame[frame["case"] == "excessmort.sums"].iloc[0]
    assert dep["ratio_base"] == "excessmort.sums"
    assert float(dep["ratio"]) == pytest.approx(
        float(dep["warm_us_per_series"]) / float(ind["warm_us_per_series"]), rel=1e-5
    )
    text = format_table(full)
    for case in ("numpy.batched", "statsmodels.loop", "excessmort.fit", "vs excessmort.sums"):
        assert case in text


def test_stage_lines_parse():
    log = (
        "INFO excessmort: compiled/loaded kernels in 0.11 s\n"
        "INFO excessmort: stage read took 0.42 s\n"
        "INFO excessmort: stage fit took 1.50 s\n"
        "INFO excessmort: stage render took 2.25 s\n"
        "INFO excessmort: stage render took 0.25 s\n"
    )
    assert parse_stages(log) == {"warmup": 0.11, "read": 0.42, "fit": 1.5, "render": 2.5}


def test_readme_table_is_generated_from_the_docs_results():
    assert readme_table.DOCS_CSV.is_file(), (
        "commit a docs run: python -m benchmarks.run --suite full --out benchmarks/results/docs"
    )
    old, new = readme_table.rewrite()
    assert old == new, "README.md benchmark table is stale: run python -m benchmarks.readme_table"
    docs = pd.read_csv(readme_table.DOCS_CSV, keep_default_na=False, dtype={"git_sha": str})
    assert list(docs.columns) == COLUMNS
    assert (docs["git_sha"].str.len() > 0).all() and (docs["cpu"].str.len() > 0).all()
    assert math.isfinite(float(docs["cores"].iloc[0]))


def test_readme_dask_table_is_generated_from_the_newest_dask_results():
    """The Dask section's table is the newest ``bench_dask`` results file, a row per run, with the
    speed-up computed against the one-worker run of the same panel, code and memory limit."""
    path = readme_table.dask_csv()
    assert path is not None, "commit a run: python -m benchmarks.bench_dask"
    frame = pd.read_csv(path, dtype={"git_sha": str})
    block = readme_table.render_dask(path)
    rows = [line for line in block.splitlines() if line.startswith("| ") and "x 470" in line]
    assert len(rows) == len(frame)
    readme = readme_table.README.read_text(encoding="utf-8")
    assert f"{readme_table.DASK_START}\n{block}\n{readme_table.DASK_END}" in readme
    for row, (_, r) in zip(rows, frame.iterrows(), strict=True):
        cells = [c.strip() for c in row.strip("|").split("|")]
        same = ["series", "git_sha", "memory_limit"]
        ones = frame[(frame[same] == r[same]).all(axis=1) & (frame["workers"] == 1)]
        assert float(cells[9]) == pytest.approx(
            r["series_per_s"] / ones["series_per_s"].iloc[-1], abs=0.005
        )


def test_frame_bytes_counts_a_shared_column_once() -> None:
    """W4's output size (its working memory is the peak above it): two columns sharing one array
    count once, a categorical is its codes and categories, a copy counts again."""
    import numpy as np
    import pandas as pd
    from benchmarks.cases import frame_bytes

    frame = pd.DataFrame({"x": np.arange(1000.0), "c": pd.Categorical(["a", "b"] * 500)})
    alone = frame_bytes(frame)
    assert alone == frame.memory_usage(deep=False).sum()
    frame["y"] = frame["x"]  # shares x's array (copy-on-write)
    assert frame_bytes(frame) == alone
    frame["z"] = frame["x"].to_numpy().copy()
    assert frame_bytes(frame) == alone + 8000
