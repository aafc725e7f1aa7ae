"""A hostile suite of our own: inputs an adversarial (or unlucky) user gives, none of them the cases
of the issue that asked for it (issue 16).

Every case is made from the real ONS regional file (../shared) broken one way. Each one either
reads correctly (an encoding, a compression or a separator detected and decoded, logged), or is an
:class:`~excessmort.exceptions.InputError` naming what is wrong (column, value, row, or what the file
looks like), which the command line turns into exit 2 with no traceback; absurd but parseable
numbers stage a release that is NOT READY with the check named (exit 1). A representative subset
runs the command line in a subprocess to prove that no traceback reaches stderr.

``python tests/test_hostile.py`` prints how each case ends (used for the figures of the issue's
note, before and after the fix).
"""

from __future__ import annotations

import bz2
import codecs
import gzip
import io
import lzma
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import excessmort as em
from excessmort.exceptions import InputError

ROOT = Path(__file__).resolve().parents[1]
ONS = ROOT.parent / "shared" / "data" / "ons" / "ons_weekly_deaths_by_region.csv"
N_ROWS = 2979  # 9 regions x 331 weeks (Wales left out)


@dataclass(frozen=True)
class Case:
    """One hostile input: how to make it, and what reading it must do."""

    name: str
    make: Callable[[Path, pd.DataFrame], Path]
    match: str | None = None  # regex of the InputError's message; None: it must read
    column: str | None = None  # the InputError's column, when it is about one
    row: int | None = None  # the InputError's row, when it is about one
    rows: int = N_ROWS  # rows of the tidy frame, when it reads


def _text(frame: pd.DataFrame, **kw) -> str:
    return frame.to_csv(index=False, lineterminator=kw.pop("lineterminator", "\n"), **kw)


def _write(name: str, data: bytes | str, encoding: str = "utf-8"):
    def make(tmp: Path, base: pd.DataFrame) -> Path:
        path = tmp / name
        payload = data(base) if callable(data) else data
        path.write_bytes(payload if isinstance(payload, bytes) else payload.encode(encoding))
        return path

    return make


def _frame(name: str, edit: Callable[[pd.DataFrame], pd.DataFrame], **kw):
    return _write(name, lambda base: _text(edit(base.copy()), **kw))


def _set(mask: Callable[[pd.DataFrame], pd.Series], column: str, value):
    def edit(d: pd.DataFrame) -> pd.DataFrame:
        d[column] = d[column].astype(object)
        d.loc[mask(d), column] = value
        return d

    return edit


def _row_of(d: pd.DataFrame, region: str = "E12000007", week: str = "2018-06-01") -> pd.Series:
    return (d["area_code"] == region) & (d["week_ending"] == week)


def _london_2018(d: pd.DataFrame) -> pd.Series:
    return _row_of(d)


#: Row position of London, week ending 2018-06-01, in the ONS file (0-based, as messages say).
def _position(base: pd.DataFrame) -> int:
    return int(np.flatnonzero(_row_of(base).to_numpy())[0])


def _zip(name: str, members: dict[str, Callable[[pd.DataFrame], bytes]]):
    def make(tmp: Path, base: pd.DataFrame) -> Path:
        path = tmp / name
        with zipfile.ZipFile(path, "w") as zf:
            for member, data in members.items():
                zf.writestr(member, data(base))
        return path

    return make


def _csv_bytes(base: pd.DataFrame) -> bytes:
    return _text(base).encode()


def _truncated_gzip(base: pd.DataFrame) -> bytes:
    data = gzip.compress(_csv_bytes(base))
    return data[: len(data) // 2]


def _parquet_named_csv(tmp: Path, base: pd.DataFrame) -> Path:
    path = tmp / "really-parquet.csv"
    base.to_parquet(path, index=False)
    return path


def _xlsx_named_csv(tmp: Path, base: pd.DataFrame) -> Path:
    path = tmp / "really-a-workbook.csv"
    base.head(20).to_excel(path, index=False, engine="openpyxl")
    return path


def _broken_parquet(tmp: Path, base: pd.DataFrame) -> Path:
    path = tmp / "cut.parquet"
    buf = io.BytesIO()
    base.to_parquet(buf, index=False)
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 3])
    return path


def _folder(tmp: Path, base: pd.DataFrame) -> Path:
    path = tmp / "a-folder"
    path.mkdir()
    (path / "notes.txt").write_text("nothing here\n")
    return path


def _missing(tmp: Path, base: pd.DataFrame) -> Path:
    return tmp / "no-such-file.csv"


def _after_64k_latin1(base: pd.DataFrame) -> bytes:
    d = base.copy()
    d["source"] = d["source"].astype(object)
    last = d.index[-1]
    d.loc[last, "source"] = "compil\xe9"  # the last row: an é in Windows-1252 after 64 KiB
    return _text(d).encode("cp1252")


def _cp1252_stratum(base: pd.DataFrame) -> bytes:
    d = base.assign(cause=np.where(base.index % 2 == 0, "caf\xe9 \u20ac", "other"))
    return _text(d).encode("cp1252")


def _utf16le_no_bom(base: pd.DataFrame) -> bytes:
    return _text(base).encode("utf-16-le")


def _repeated_header(base: pd.DataFrame) -> str:
    text = _text(base)
    lines = text.splitlines(keepends=True)
    return "".join(lines[:1000]) + lines[0] + "".join(lines[1000:])


def _drop_last_field(base: pd.DataFrame) -> str:
    text = _text(base).rstrip("\n")
    return text[: text.rindex(",")]  # the last line loses its last field and its line end


def _ragged(base: pd.DataFrame) -> str:
    lines = _text(base).splitlines(keepends=True)
    lines[5] = lines[5].rstrip("\n") + ",extra\n"
    return "".join(lines)


def _unclosed_quote(base: pd.DataFrame) -> str:
    lines = _text(base).splitlines(keepends=True)
    lines[1] = lines[1].replace("North East", '"North East', 1)
    return "".join(lines)


def _no_header(base: pd.DataFrame) -> str:
    return base.to_csv(index=False, header=False, lineterminator="\n")


def _thousands(base: pd.DataFrame) -> str:
    d = base.copy()
    d["deaths"] = d["deaths"].map(lambda x: f"{int(x):,}")
    return _text(d)


def _case_pair(d: pd.DataFrame) -> pd.DataFrame:
    return d.assign(sex=np.where(d.index % 2 == 0, "85+", "85+ "))


def _iso_weeks(d: pd.DataFrame) -> pd.DataFrame:
    iso = pd.to_datetime(d["week_ending"]).dt.isocalendar()
    d["week_ending"] = iso["year"].astype(str) + "-W" + iso["week"].astype(str).str.zfill(2)
    return d


def _serial(d: pd.DataFrame) -> pd.DataFrame:
    days = (pd.to_datetime(d["week_ending"]) - pd.Timestamp("1899-12-30")).dt.days
    d["week_ending"] = days.astype(str)
    return d


def _fmt_dates(fmt: str):
    def edit(d: pd.DataFrame) -> pd.DataFrame:
        d["week_ending"] = pd.to_datetime(d["week_ending"]).dt.strftime(fmt)
        return d

    return edit


def _population(value):
    def edit(d: pd.DataFrame) -> pd.DataFrame:
        d["population"] = 2_000_000
        d["population"] = d["population"].astype(object)
        d.loc[_row_of(d), "population"] = value
        return d

    return edit


def _duplicate_week(d: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([d, d[_row_of(d)]], ignore_index=True)


def _thursday(d: pd.DataFrame) -> pd.DataFrame:
    d.loc[_row_of(d), "week_ending"] = "2018-05-31"
    return d


def _wales_only(d: pd.DataFrame) -> pd.DataFrame:
    return d[d["area_code"] == "W92000004"]


def _pandas_index_subset(base: pd.DataFrame) -> str:
    return base[base["week_ending"] >= "2015-06-01"].to_csv(lineterminator="\n")  # 3xx..n-1


CASES: list[Case] = [
    # ------------------------------------------------------------------ encodings: read
    Case("utf8-bom", _write("bom.csv", lambda b: codecs.BOM_UTF8 + _csv_bytes(b))),
    Case(
        "utf16-be-bom",
        _write("u16be.csv", lambda b: codecs.BOM_UTF16_BE + _text(b).encode("utf-16-be")),
    ),
    Case("utf16-le-no-bom", _write("u16nobom.csv", _utf16le_no_bom)),
    Case("utf32-bom", _write("u32.csv", lambda b: _text(b).encode("utf-32"))),
    Case("cp1252-euro-in-stratum", _write("cp1252.csv", _cp1252_stratum)),
    Case("latin1-after-64KiB", _write("late-latin1.csv", _after_64k_latin1)),
    Case("crlf-line-ends", _frame("crlf.csv", lambda d: d, lineterminator="\r\n")),
    # ------------------------------------------------------------------ compression and formats
    Case("bz2-named-csv", _write("bz.csv", lambda b: bz2.compress(_csv_bytes(b)))),
    Case("xz-named-csv", _write("xz.csv", lambda b: lzma.compress(_csv_bytes(b)))),
    Case("zip-of-one-csv", _zip("one.csv", {"deaths.csv": _csv_bytes})),
    Case(
        "zip-of-two-files",
        _zip("two.csv", {"a.csv": _csv_bytes, "b.csv": _csv_bytes}),
        r"cannot read 'two\.csv': it is a zip archive of 2 files \(a\.csv, b\.csv\)",
    ),
    Case(
        "gzip-cut-in-half",
        _write("cut.csv.gz", _truncated_gzip),
        r"cannot read 'cut\.csv\.gz': it is (corrupt or truncated|a gzip file that cannot be)",
    ),
    Case("gzip-of-nothing", _write("nothing.csv", gzip.compress(b"")), r"it is an empty gzip file"),
    Case("parquet-named-csv", _parquet_named_csv),
    Case(
        "xlsx-named-csv",
        _xlsx_named_csv,
        r"really-a-workbook\.csv.*has no regional table",
    ),
    Case(
        "csv-named-xlsx",
        _write("table.xlsx", _csv_bytes),
        r"'table\.xlsx': it is not an Excel workbook.*comma-separated text table starting "
        r"'week_ending,year",
    ),
    Case("empty-parquet", _write("empty.parquet", b""), r"'empty\.parquet': the file is empty"),
    Case("parquet-cut-short", _broken_parquet, r"'cut\.parquet': the Parquet file cannot be read"),
    Case("folder-without-parquet", _folder, r"'a-folder': the Parquet folder cannot be read"),
    Case("missing-file", _missing, r"no such file: .*no-such-file\.csv"),
    Case("json-suffix", _write("deaths.json", "{}"), r"cannot tell the format of 'deaths\.json'"),
    Case(
        "sqlite-named-csv",
        _write("db.csv", b"SQLite format 3\x00" + bytes(range(256)) * 40),
        r"'db\.csv': it is not a text table: .* NUL",
    ),
    # ------------------------------------------------------------------ separators
    Case("tab-named-csv", _frame("tabs.csv", lambda d: d, sep="\t")),
    Case("pipe-separated", _frame("pipes.csv", lambda d: d, sep="|")),
    Case(
        "semicolon-with-decimal-comma-population",
        _frame(
            "semi.csv",
            lambda d: d.assign(population="2000000,5"),
            sep=";",
        ),
        r"column 'population' has a non-numeric value '2000000,5' at row 0.*decimal comma",
        column="population",
        row=0,
    ),
    # ------------------------------------------------------------------ headers
    Case(
        "header-only", _write("header.csv", "week_ending,area_code,deaths\n"), r"the input is empty"
    ),
    Case("blank-lines-only", _write("blank.csv", "\n\n\n"), r"holds only blank lines"),
    Case(
        "deaths-twice",
        _write(
            "twice.csv",
            lambda b: _text(b.assign(extra=b["deaths"])).replace(",extra\n", ",deaths\n", 1),
        ),
        r"its header names the column 'deaths' more than once",
        column="deaths",
    ),
    Case(
        "shouting-header",
        _frame(
            "shout.csv",
            lambda d: d.rename(columns={"week_ending": " Week Ending ", "deaths": "DEATHS"}),
        ),
    ),
    Case(
        "no-header-row",
        _write("noheader.csv", _no_header),
        r"missing required column .*the first row looks like data, not a header",
    ),
    Case("trailing-commas", _write("trailing.csv", lambda b: _text(b).replace("\n", ",\n"))),
    Case(
        "unnamed-column-with-values",
        _frame("unnamed.csv", lambda d: d.assign(**{"": "x"})),
        r"column 8 of the input has no name \(read as 'Unnamed: 7'\) and holds values such as "
        r"'x' at row 0",
        row=0,
    ),
    Case("saved-index-of-a-subset", _write("subset-index.csv", _pandas_index_subset), rows=2781),
    Case(
        "a-row-with-an-extra-field",
        _write("ragged.csv", _ragged),
        r"cannot read 'ragged\.csv' as a comma-separated table: .*line 6",
    ),
    Case(
        "an-unclosed-quote",
        _write("quote.csv", _unclosed_quote),
        r"cannot read 'quote\.csv' as a comma-separated table",
    ),
    Case(
        "header-repeated-mid-file",
        _write("twofiles.csv", _repeated_header),
        r"column 'area_code' has an unknown region 'area_code' at row 999",
        column="area_code",
        row=999,
    ),
    Case(
        "last-line-cut-short",
        _write("cut.csv", _drop_last_field),
        r"its last line .* has 6 of the header's 7 fields and no line end: the file looks truncated",
    ),
    # ------------------------------------------------------------------ dates
    Case(
        "excel-serial-dates",
        _frame("serial.csv", _serial),
        r"column 'week_ending' has a number, not a date, '42006' at row 0 .*Excel serial",
        column="week_ending",
        row=0,
    ),
    Case(
        "iso-week-dates",
        _frame("isoweek.csv", _iso_weeks),
        r"column 'week_ending' has an unparseable date '2015-W01' at row 0",
        column="week_ending",
        row=0,
    ),
    Case("uk-day-first-dates", _frame("uk.csv", _fmt_dates("%d/%m/%Y"))),
    Case("two-digit-years", _frame("yy.csv", _fmt_dates("%d/%m/%y"))),
    Case("dates-with-times", _frame("times.csv", _fmt_dates("%Y-%m-%d 13:45:00"))),
    Case("dates-in-utc-z", _frame("zulu.csv", _fmt_dates("%Y-%m-%dT00:00:00Z"))),
    Case(
        "30-february",
        _frame("feb30.csv", _set(_london_2018, "week_ending", "2018-02-30")),
        r"column 'week_ending' has an unparseable date '2018-02-30'",
        column="week_ending",
    ),
    Case(
        "year-one",
        _frame("year1.csv", _set(_london_2018, "week_ending", "0001-06-01")),
        r"column 'week_ending' has a date out of range, '0001-06-01'",
        column="week_ending",
    ),
    Case(
        "a-thursday-among-fridays",
        _frame("thursday.csv", _thursday),
        r"column 'week_ending' has 2018-05-31 \(a Thursday\)",
        column="week_ending",
    ),
    Case(
        "a-week-given-twice",
        _frame("dup.csv", _duplicate_week),
        r"column 'week_ending' has the duplicate series-week 2018-06-01 at row 3,310, already given at "
        r"row 1,786",
        column="week_ending",
        row=3310,
    ),
    # ------------------------------------------------------------------ counts
    Case(
        "thousands-separators",
        _write("thousands.csv", _thousands),
        r"column 'deaths' has a non-numeric value '1,718' at row 1 .*thousands separator: "
        r"write it as 1718",
        column="deaths",
        row=1,
    ),
    Case(
        "negative-count",
        _frame("neg.csv", _set(_london_2018, "deaths", -3)),
        r"column 'deaths' has a negative value -3 at row 1,786 \(region E12000007, week ending "
        r"2018-06-01\)",
        column="deaths",
    ),
    Case(
        "fractional-count",
        _frame("frac.csv", _set(_london_2018, "deaths", 12.5)),
        r"column 'deaths' has a fractional value 12.5",
        column="deaths",
    ),
    Case(
        "word-for-a-count",
        _frame("word.csv", _set(_london_2018, "deaths", "twelve")),
        r"column 'deaths' has a non-numeric value 'twelve'",
        column="deaths",
    ),
    Case(
        "infinite-count",
        _frame("inf.csv", _set(_london_2018, "deaths", "inf")),
        r"column 'deaths' has a non-numeric value inf",
        column="deaths",
    ),
    Case(
        "boolean-counts",
        _frame("bool.csv", lambda d: d.assign(deaths=d["deaths"].astype(int) > 1000)),
        r"column 'deaths' has a non-numeric value False",
        column="deaths",
    ),
    Case(
        "zero-population",
        _frame("pop0.csv", _population(0)),
        r"column 'population' has a zero value 0",
        column="population",
    ),
    Case(
        "negative-population",
        _frame("popneg.csv", _population("-5")),
        r"column 'population' has a negative value -5",
        column="population",
    ),
    # ------------------------------------------------------------------ strata
    Case(
        "unknown-region",
        _frame("narnia.csv", _set(_london_2018, "area_code", "Narnia")),
        r"column 'area_code' has an unknown region 'Narnia'",
        column="area_code",
    ),
    Case(
        "england-rows",
        _frame("england.csv", _set(_london_2018, "area_code", "E92000001")),
        r"column 'area_code' has the England value 'E92000001'",
        column="area_code",
    ),
    Case(
        "strata-differ-in-spaces",
        _frame("spaces.csv", _case_pair),
        r"column 'sex': strata '85\+' and '85\+ ' differ only in spaces \(row 0 has '85\+', row 1 "
        r"has '85\+ '\)",
        column="sex",
        row=1,
    ),
    Case(
        "missing-stratum",
        _frame("nosex.csv", lambda d: _set(_london_2018, "sex", None)(d.assign(sex="all"))),
        r"column 'sex' has a missing value at row 1,786",
        column="sex",
    ),
    Case(
        "wales-only",
        _frame("wales.csv", _wales_only),
        r"no rows are left after leaving out Wales",
    ),
]


@pytest.fixture(scope="module")
def base() -> pd.DataFrame:
    assert ONS.is_file(), f"{ONS} is missing: the hostile suite breaks the real ONS file"
    return pd.read_csv(ONS, dtype=str)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_input(case: Case, base: pd.DataFrame, tmp_path: Path) -> None:
    path = case.make(tmp_path, base)
    if case.match is None:
        tidy = em.read(path)
        assert len(tidy) == case.rows
        assert sorted(tidy["region"].astype(str).unique()) == [f"E1200000{i}" for i in range(1, 10)]
        assert str(tidy["week_ending"].dtype) == "datetime64[ns]"
        assert tidy["deaths"].sum() > 0
        return
    with pytest.raises(InputError, match=case.match) as info:
        em.read(path)
    if case.column is not None:
        assert info.value.column == case.column
    if case.row is not None:
        assert info.value.row == case.row


def test_at_least_forty_hostile_inputs() -> None:
    assert len(CASES) >= 40
    assert len({c.name for c in CASES}) == len(CASES)


def test_decoded_text_is_right(base: pd.DataFrame, tmp_path: Path) -> None:
    """Decoded files give the same numbers as the clean file, and Windows-1252 text its accents."""
    clean = em.read(ONS)
    for name in ("utf16-le-no-bom", "bz2-named-csv", "tab-named-csv", "uk-day-first-dates"):
        case = next(c for c in CASES if c.name == name)
        got = em.read(case.make(tmp_path, base))
        pd.testing.assert_frame_equal(got, clean)
    cp = next(c for c in CASES if c.name == "cp1252-euro-in-stratum")
    causes = em.read(cp.make(tmp_path, base))["cause"].cat.categories.tolist()
    assert causes == ["caf\xe9 \u20ac", "other"]


# ------------------------------------------------------------------------------ the command line


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), EXCESSMORT_PROGRESS="0", MPLBACKEND="Agg")
    return subprocess.run(
        [sys.executable, "-m", "excessmort", "-q", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=600,
    )


CLI_SUBSET = [  # one per family: compression, format, binary, file system, structure, strata
    "gzip-cut-in-half",
    "csv-named-xlsx",
    "sqlite-named-csv",
    "missing-file",
    "last-line-cut-short",
    "strata-differ-in-spaces",
]


@pytest.mark.slow
@pytest.mark.parametrize("name", CLI_SUBSET)
def test_cli_exits_2_without_a_traceback(name: str, base: pd.DataFrame, tmp_path: Path) -> None:
    case = next(c for c in CASES if c.name == name)
    path = case.make(tmp_path, base)
    done = _cli("run", "--input", str(path), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "excessmort: input error: " in done.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def _ons_with(base: pd.DataFrame, tmp: Path, edit) -> Path:
    data = edit(base.copy())
    path = tmp / "broken.csv"
    path.write_text(_text(data))
    return path


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "edit", "checks", "says"),
    [
        (
            "a count of 10^9 written '1e9' in a reported week",
            _set(lambda d: _row_of(d, "E12000007", "2021-01-15"), "deaths", "1e9"),
            ["counts_plausible", "england_and_pscores"],
            "London: 1e+09 deaths in week ending 2021-01-15",
        ),
        (
            "South West repeating one count since September 2020",
            _set(
                lambda d: (d["area_code"] == "E12000009") & (d["week_ending"] >= "2020-09-01"),
                "deaths",
                "1000",
            ),
            ["feeds_alive"],
            "South West: the same count 1,000 for 35 weeks in a row from week ending 2020-09-04",
        ),
    ],
    ids=["1e9-reported-week", "flat-feed"],
)
def test_cli_absurd_numbers_are_not_ready(
    name: str, edit, checks: list[str], says: str, base: pd.DataFrame, tmp_path: Path
) -> None:
    path = _ons_with(base, tmp_path, edit)
    done = _cli(
        "run",
        "--input",
        str(path),
        "--month",
        "2021-04",
        "--out",
        str(tmp_path / "out"),
        "--live-root",
        str(tmp_path / "no-live"),
        cwd=tmp_path,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    failed = done.stderr.strip().splitlines()[-1]
    assert "is NOT READY: " in failed
    for check in checks:
        assert check in failed
        assert f"FAIL  {check}" in done.stdout
    assert says in done.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    ("reference", "says"),
    [
        (
            ("2019-01-01", "2019-12-31"),
            r"too little history for the quasipoisson baseline: the "
            r"reference period 2019-01-01\.\.2019-12-31 holds 52 weeks with deaths for series "
            r"\(region E12000001\); 8 other series are short too .* it needs at least 104",
        ),
        (("2016-01-01", "2020-06-30"), r"runs into the pandemic weeks 2020-03-01\.\.2021-12-31"),
        (("2015-01-01", "2022-12-31"), r"runs past the last observed week \(2021-04-30\)"),
        (("2020-01-01", "2015-01-01"), r"ends before it starts: it is reversed"),
    ],
    ids=["one-year", "into-pandemic", "past-the-data", "reversed"],
)
def test_cli_references_that_cannot_be_fitted_exit_2(
    reference: tuple[str, str], says: str, tmp_path: Path
) -> None:
    done = _cli(
        "run",
        "--input",
        str(ONS),
        "--month",
        "2021-04",
        "--reference",
        *reference,
        "--out",
        str(tmp_path / "out"),
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert re.search(says, done.stderr), done.stderr


# ------------------------------------------------------------------------------ figures


def _outcome(case: Case, base: pd.DataFrame, tmp: Path) -> str:
    try:
        em.read(case.make(tmp, base))
    except InputError:
        return "input error"
    except Exception as exc:  # what the suite counts
        return f"traceback ({type(exc).__name__})"
    return "read"


if __name__ == "__main__":  # the figures of the note: how every case ends with this code
    import tempfile
    from collections import Counter

    frame = pd.read_csv(ONS, dtype=str)
    tally: Counter[str] = Counter()
    with tempfile.TemporaryDirectory() as tmpdir:
        for i, case in enumerate(CASES):
            folder = Path(tmpdir) / str(i)
            folder.mkdir()
            got = _outcome(case, frame, folder)
            want = "read" if case.match is None else "input error"
            tally[got if got.startswith("traceback") is False else "traceback"] += 1
            print(
                f"{case.name:45s} {got:28s} {'ok' if got == want else 'WRONG (want ' + want + ')'}"
            )
    print(dict(tally), f"{len(CASES)} cases")
