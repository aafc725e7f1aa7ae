"""Exports of an in-memory fit: ``Fit.to_csv``, ``Fit.to_parquet``, ``Fit.to_excel``.

Every write is atomic (a temporary sibling, fsync, then a rename: see :mod:`excessmort._atomic`):
a failed export leaves what was at the path untouched. Tables are named:

- ``weekly``: :attr:`Fit.weekly`;
- ``cumulative``: :meth:`Fit.cumulative` over the period given (default: after the reference);
- ``monthly``, ``quarterly``, ``yearly``: :meth:`Fit.totals` of that frequency (whole periods);
- ``coefficients``, ``diagnostics``: per series;
- ``summary``: :meth:`Fit.summary`.

The workbook has one sheet per table and a ``notes`` sheet saying the baseline, the reference
period, the exclusions, the interval level and what the intervals are.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from ._atomic import atomic_write, atomic_write_bytes
from .exceptions import InputError

if TYPE_CHECKING:
    from ._fit import Fit

__all__ = ["TABLES", "export_table", "notes", "to_csv", "to_excel", "to_parquet"]

TABLES: tuple[str, ...] = (
    "weekly",
    "cumulative",
    "monthly",
    "quarterly",
    "yearly",
    "coefficients",
    "diagnostics",
    "summary",
)
_FREQ = {"monthly": "month", "quarterly": "quarter", "yearly": "year"}
DEFAULT_SHEETS = ("weekly", "cumulative", "monthly", "coefficients")


def export_table(fit: Fit, table: str, **period: Any) -> pd.DataFrame:
    """The frame of a named table (see the module docstring).

    Raises
    ------
    InputError
        For a table name that is not one of :data:`TABLES` (listed in the message).
    """
    if table not in TABLES:
        from ._suggest import did_you_mean

        raise InputError(
            f"table must be one of {list(TABLES)}, got {table!r}{did_you_mean(table, TABLES)}",
            column="table",
            value=table,
        )
    if table == "weekly":
        return fit.weekly if not period else fit.weekly_in(**period)
    if table == "cumulative":
        return fit.cumulative(**period)
    if table in _FREQ:
        return fit.totals(_FREQ[table], **period)
    if table == "summary":
        return fit.summary(**period)
    return getattr(fit, table)  # type: ignore[no-any-return]


def _interval_text(fit: Fit) -> str:
    pred = {
        "five_year_average": "quasi-Poisson model of the history counts (ONS published none)",
        "euromomo": "EuroMOMO's 2/3-power prediction interval",
        "pooled": "the pooled model's prediction interval",
    }.get(fit.baseline, "normal prediction interval mu -+ z sqrt(phi mu + var(mu))")
    return (
        f"{100 * fit.level:g}% intervals. expected_lower/upper: confidence interval of the "
        "expected deaths (parameter uncertainty). prediction_lower/upper and excess_lower/upper: "
        f"prediction interval of the count with no excess ({pred}); excess bounds are observed "
        "minus the prediction bounds. Cumulative and period totals: variance g' V g + sum phi mu "
        "over the weeks summed (never a sum of weekly widths)."
    )


def notes(fit: Fit) -> pd.DataFrame:
    """The notes of an export: (field, value) rows saying how the figures were made.

    Examples
    --------
    >>> import excessmort as em
    >>> n = notes(em.fit(em.demo_data()))
    >>> n["field"].tolist()[:3]
    ['package', 'baseline', 'options']
    """
    import excessmort

    ref = f"{fit.reference[0].date()} to {fit.reference[1].date()}" if fit.reference else "none"
    excluded = getattr(fit, "excluded", None)
    if excluded is not None and excluded.any():
        weeks = fit.weeks[excluded]
        exclusion = f"{int(excluded.sum())} weeks, ending {weeks[0].date()} to {weeks[-1].date()}"
    else:
        exclusion = "none"
    rows = [
        ("package", f"excessmort {excessmort.__version__}"),
        ("baseline", fit.baseline),
        ("options", repr(fit.model)),
        ("reference period", ref),
        ("excluded from the baseline", exclusion),
        ("interval level", f"{fit.level:g}"),
        ("intervals", _interval_text(fit)),
        ("series", f"{fit.panel.n_series:,} ({', '.join(fit.panel.strata) or 'one series'})"),
        ("weeks", f"{fit.panel.n_weeks:,}: {fit.weeks[0].date()} to {fit.weeks[-1].date()}"),
        (
            "periods",
            "a week belongs to the month/quarter of its week-ending date; years are ONS "
            "registration years for weeks ending on Friday, ISO years otherwise",
        ),
    ]
    if getattr(fit, "estimated_counts", False):
        rows.append(("counts", "estimated (fractional counts read with estimated_counts=True)"))
    return pd.DataFrame(rows, columns=["field", "value"])


def _excel_safe(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for col in out.columns:
        if isinstance(out[col].dtype, pd.CategoricalDtype):
            out[col] = out[col].astype(str)
    return out


def to_csv(fit: Fit, path: str | os.PathLike[str], table: str = "weekly", **period: Any) -> None:
    """Write one table as CSV, atomically."""
    frame = export_table(fit, table, **period)
    with atomic_write(path, "w", encoding="utf-8", newline="") as fh:
        frame.to_csv(fh, index=False)


def to_parquet(
    fit: Fit, path: str | os.PathLike[str], table: str = "weekly", **period: Any
) -> None:
    """Write one table as Parquet, atomically (the notes go in the file's metadata)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = export_table(fit, table, **period)
    arrow = pa.Table.from_pandas(frame, preserve_index=False)
    meta = dict(arrow.schema.metadata or {})
    for field, value in notes(fit).itertuples(index=False):
        meta[f"excessmort.{field}".encode()] = str(value).encode()
    arrow = arrow.replace_schema_metadata(meta)
    buf = io.BytesIO()
    pq.write_table(arrow, buf)
    atomic_write_bytes(path, buf.getvalue())


def to_excel(
    fit: Fit, path: str | os.PathLike[str], tables: Sequence[str] = DEFAULT_SHEETS
) -> None:
    """Write a workbook with one sheet per table and a ``notes`` sheet, atomically.

    Raises
    ------
    ImportError
        When openpyxl (the ``excessmort[io]`` extra) is missing.
    """
    try:
        import openpyxl  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "writing a workbook needs openpyxl: pip install 'excessmort[io]'"
        ) from exc
    if isinstance(tables, str):
        tables = [tables]
    frames = {t: export_table(fit, t) for t in tables}
    buf = io.BytesIO()
    with pd.ExcelWriter(buf, engine="openpyxl") as writer:
        for name, frame in frames.items():
            _excel_safe(frame).to_excel(writer, sheet_name=name, index=False)
        notes(fit).to_excel(writer, sheet_name="notes", index=False)
    atomic_write_bytes(path, buf.getvalue())
