"""Backtest coverage of every baseline on the shared real data, before (independence) and after
(the dependence model): the README table "Honest intervals".

    PYTHONPATH=src python benchmarks/backtest_table.py [--write]

Data (read from ../shared, never copied): HMD STMF, the 12 countries of ../shared/data/world with
data from 2005, sex x five age groups, counts rounded; rolling origin 2012-2019, 5-year references,
95% intervals; series and country totals (``by("country")``). The pooled model is fitted per
country (its strata: sex x age group; terms without England's bank holidays). ONS: the nine English
regions, 3-year references, test years 2018-2019 (the only ordinary years with 3 before them);
series and England (``by()``). ``--write`` replaces the table between the markers in README.md.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import pandas as pd

import excessmort as em
from excessmort._backtest import Backtest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
POOLED_TERMS = "trend + seasonality:age_group + sex:age_group"
BASELINES = [
    ("quasipoisson", {}),
    ("quasipoisson", {"trend": False}),
    ("poisson", {}),
    ("five_year_average", {}),
    ("euromomo", {}),
    ("pooled", {}),
    ("pooled", {"intervals": "distribution"}),
]
START, END = "<!-- backtest-table:start -->", "<!-- backtest-table:end -->"


def stmf() -> pd.DataFrame:
    f = pd.read_csv(SHARED / "data" / "world" / "stmf_weekly_deaths_by_sex_age.csv")
    first = f.groupby("country")["week_ending"].min()
    f = f[f["country"].isin(first[first <= "2005-01-31"].index)].copy()
    f["deaths"] = f["deaths"].round()
    return f


def ons() -> pd.DataFrame:
    f = pd.read_csv(SHARED / "data" / "ons" / "ons_weekly_deaths_by_region.csv")
    f = f[f["area_code"].str.startswith("E")]
    return f[["area_code", "week_ending", "deaths"]].rename(columns={"area_code": "region"})


def run_stmf(frame: pd.DataFrame, name: str, opts: dict, dependence: bool) -> pd.DataFrame:
    if name == "pooled":
        parts = []
        for _, g in frame.groupby("country"):
            bt = em.backtest(
                g,
                baseline=name,
                terms=POOLED_TERMS,
                years=range(2012, 2020),
                by=(),
                dependence=dependence,
                **opts,
            )
            parts.append(bt.rows.replace({"level": {"by total": "by country"}}))
        return Backtest(
            pd.concat(parts, ignore_index=True), name, 0.95, 5, bt.years, dependence, bt.intervals
        ).summary()
    return em.backtest(
        frame,
        baseline=name,
        years=range(2012, 2020),
        by=("country",),
        dependence=dependence,
        **opts,
    ).summary()


def run_ons(frame: pd.DataFrame, name: str, opts: dict, dependence: bool) -> pd.DataFrame | None:
    if name == "five_year_average":
        return None  # needs five earlier years: the ONS file starts in 2015
    return em.backtest(
        frame,
        baseline=name,
        years=[2018, 2019],
        reference_years=3,
        by=(),
        dependence=dependence,
        **opts,
    ).summary()


def fmt(before: float, after: float) -> str:
    return f"{before:.1f} → **{after:.1f}**"


def main() -> str:
    warnings.simplefilter("ignore")
    data = {
        "STMF 12 countries": (stmf(), run_stmf, "by country"),
        "ONS regions": (ons(), run_ons, "by total"),
    }
    lines = [
        "| data | baseline | series weekly | series yearly | aggregate weekly | aggregate yearly | yearly z sd (series / aggregate) | yearly bias % (series / aggregate) | rows (series / aggregate) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, (frame, run, agg) in data.items():
        for name, opts in BASELINES:
            t = time.perf_counter()
            b = run(frame, name, opts, False)
            # the producer's interval never carries the dependence model: the same figures
            a = b if opts.get("intervals") == "distribution" else run(frame, name, opts, True)
            if b is None:
                continue
            b, a = b.set_index("level"), a.set_index("level")
            shown = name + (
                "" if not opts else "(" + ", ".join(f"{k}={v}" for k, v in opts.items()) + ")"
            )
            lines.append(
                f"| {label} | {shown} | {fmt(b.loc['series', 'weekly_coverage'], a.loc['series', 'weekly_coverage'])} "
                f"| {fmt(b.loc['series', 'yearly_coverage'], a.loc['series', 'yearly_coverage'])} "
                f"| {fmt(b.loc[agg, 'weekly_coverage'], a.loc[agg, 'weekly_coverage'])} "
                f"| {fmt(b.loc[agg, 'yearly_coverage'], a.loc[agg, 'yearly_coverage'])} "
                f"| {b.loc['series', 'yearly_z_sd']:.2f} / {b.loc[agg, 'yearly_z_sd']:.2f} → "
                f"**{a.loc['series', 'yearly_z_sd']:.2f} / {a.loc[agg, 'yearly_z_sd']:.2f}** "
                f"| {a.loc['series', 'yearly_bias']:+.2f} / {a.loc[agg, 'yearly_bias']:+.2f} "
                f"| {int(a.loc['series', 'rows'])} / {int(a.loc[agg, 'rows'])} |"
            )
            print(lines[-1], f"({time.perf_counter() - t:.0f} s)", file=sys.stderr, flush=True)
    return "\n".join(lines)


if __name__ == "__main__":
    table = main()
    print(table)
    if "--write" in sys.argv:
        readme = ROOT / "README.md"
        text = readme.read_text()
        head, rest = text.split(START)
        _, tail = rest.split(END)
        from excessmort._atomic import atomic_write_text

        atomic_write_text(readme, f"{head}{START}\n{table}\n{END}{tail}")
