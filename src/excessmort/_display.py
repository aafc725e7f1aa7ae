"""One renderer for text, HTML and LaTeX: the ``Fit`` summary and the readiness checks of a release.

A display is a title, a header block of (field, value) pairs and an optional table (a frame).
Numbers are formatted here (thousands separators, fixed decimals, intervals as ``lower to
upper``); layout is pandas' own ``to_string`` / ``to_html`` / ``to_latex``, so the three
styles show the same cells.

``Fit._repr_html_``, ``Fit.print_summary`` and the report layer's readiness display all call
:func:`render`; :func:`render_checks` turns ``(name, verdict, message)`` checks into that shape.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

__all__ = ["STYLES", "format_number", "format_table", "render", "render_checks"]

Style = Literal["ascii", "html", "latex"]
STYLES: tuple[str, ...] = ("ascii", "html", "latex")

#: Columns shown with at least one decimal place (percentages and scores, not counts).
_RATIO_COLUMNS = ("p_score", "z_score", "ratio", "dispersion")
#: Interval pairs shown as one column (thousands separators, ``decimals`` places).
_INTERVAL_PAIRS = (("excess_lower", "excess_upper"), ("expected_lower", "expected_upper"))


def _check_style(style: str) -> str:
    if style not in STYLES:
        from .exceptions import InputError

        raise InputError(
            f"style must be one of {list(STYLES)}, got {style!r}", column="style", value=style
        )
    return style


def format_number(value: Any, decimals: int = 0) -> str:
    """A number with thousands separators and ``decimals`` places; ``-`` for NaN or None.

    Examples
    --------
    >>> format_number(12345.678, 1), format_number(float("nan")), format_number(-3, 0)
    ('12,345.7', '-', '-3')
    """
    if value is None or value is pd.NA:
        return "-"
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(x):
        return "-"
    return f"{x:,.{int(decimals)}f}"


def format_table(
    frame: pd.DataFrame, decimals: int = 2, *, level: float | None = None
) -> pd.DataFrame:
    """Cells as strings: counts as whole numbers with separators, P-scores and other ratios with
    ``decimals`` places, each interval pair (``excess_lower``, ``excess_upper``) as one column
    ``"lower to upper"``.

    Parameters
    ----------
    frame : DataFrame
    decimals : int
        Decimal places of the ratios (P-score, z-score, ratio, dispersion); deaths are counts and
        are shown whole.
    level : float, optional
        Interval level, used in the interval column's name (``95% interval``).

    Returns
    -------
    DataFrame
        Of strings, one row per row of ``frame``.
    """
    out = pd.DataFrame(index=frame.index)
    pairs = {lo: hi for lo, hi in _INTERVAL_PAIRS if lo in frame.columns and hi in frame.columns}
    skip = set(pairs.values())
    label = f"{100 * level:g}% interval" if level is not None else "interval"
    for col in frame.columns:
        if col in skip:
            continue
        values = frame[col]
        if col in pairs:
            hi = frame[pairs[col]]
            name = label if col == "excess_lower" else f"{col.split('_')[0]} {label}"
            out[name] = [
                f"{format_number(a, 0)} to {format_number(b, 0)}"
                for a, b in zip(values, hi, strict=True)
            ]
        elif pd.api.types.is_bool_dtype(values.dtype):
            out[col] = values.map(lambda v: "yes" if v else "no")
        elif pd.api.types.is_numeric_dtype(values.dtype):
            places = max(decimals, 1) if col in _RATIO_COLUMNS else 0
            out[col] = [format_number(v, places) for v in values]
        elif pd.api.types.is_datetime64_any_dtype(values.dtype):
            out[col] = [("-" if pd.isna(v) else str(pd.Timestamp(v).date())) for v in values]
        else:
            out[col] = values.astype(object).map(
                lambda v: "-" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
            )
    return out


def _header_frame(header: Sequence[tuple[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(
        {"field": [str(k) for k, _ in header], "value": [str(v) for _, v in header]}
    )


_LATEX_SPECIAL = {
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "\\": r"\textbackslash{}",
}


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def render(
    title: str,
    header: Sequence[tuple[str, Any]],
    table: pd.DataFrame | None = None,
    *,
    style: str = "ascii",
    decimals: int = 2,
    level: float | None = None,
    caption: str | None = None,
) -> str:
    """Render a title, a header block and an optional table in one style.

    Parameters
    ----------
    title : str
    header : sequence of (field, value)
        Shown as a two-column block; values are shown with ``str``.
    table : DataFrame, optional
        Numbers are formatted by :func:`format_table` (already formatted strings pass through).
    style : {"ascii", "html", "latex"}
    decimals : int
        Decimal places of the table's numbers.
    level : float, optional
        Interval level, for the interval column's name.
    caption : str, optional
        A line under the table (e.g. the period the figures cover).

    Returns
    -------
    str

    Raises
    ------
    InputError
        For an unknown style (the message lists the allowed ones).
    """
    style = _check_style(style)
    head = _header_frame(header)
    body = format_table(table, decimals, level=level) if table is not None else None
    if style == "ascii":
        width = max((len(k) for k in head["field"]), default=0)
        lines = [title, "-" * max(len(title), 8)]
        lines += [f"{k:<{width}}  {v}" for k, v in zip(head["field"], head["value"], strict=True)]
        if body is not None:
            lines += ["", body.to_string(index=False) if len(body) else "(no rows)"]
        if caption:
            lines += ["", caption]
        return "\n".join(lines)
    if style == "html":
        parts = [f'<div class="excessmort-summary"><p><strong>{html.escape(title)}</strong></p>']
        parts.append('<table class="excessmort-header">')
        parts += [
            f'<tr><th style="text-align:left">{html.escape(k)}</th>'
            f'<td style="text-align:left">{html.escape(v)}</td></tr>'
            for k, v in zip(head["field"], head["value"], strict=True)
        ]
        parts.append("</table>")
        if body is not None:
            parts.append(
                body.to_html(index=False, escape=True, border=0, classes="excessmort-table")
            )
        if caption:
            parts.append(f"<p><em>{html.escape(caption)}</em></p>")
        parts.append("</div>")
        return "\n".join(parts)
    # latex
    parts = [
        r"\begin{tabular}{ll}",
        r"\multicolumn{2}{l}{\textbf{" + _latex_escape(title) + r"}} \\",
    ]
    parts += [
        f"{_latex_escape(k)} & {_latex_escape(v)} \\\\"
        for k, v in zip(head["field"], head["value"], strict=True)
    ]
    parts.append(r"\end{tabular}")
    if body is not None:
        escaped = body.map(_latex_escape)
        escaped.columns = [_latex_escape(str(c)) for c in body.columns]
        parts.append(escaped.to_latex(index=False, escape=False))
    if caption:
        parts.append(_latex_escape(caption))
    return "\n".join(parts)


def _check_fields(check: Any) -> tuple[str, str, str]:
    if isinstance(check, tuple | list):
        name, verdict, message = check
    else:
        name, verdict, message = check.name, check.verdict, check.message
    return str(name), str(verdict), str(message)


def render_checks(checks: Iterable[Any], *, style: str = "ascii", title: str = "Readiness") -> str:
    """Render readiness checks ``(name, verdict, message)``: tuples or objects with those fields.

    The header gives the verdict (``READY`` when no check failed) and the counts; the table one row
    per check.

    Parameters
    ----------
    checks : iterable
        ``(name, verdict, message)`` tuples or objects with ``name``, ``verdict``, ``message``;
        verdicts are ``pass``, ``warn`` or ``fail``.
    style : {"ascii", "html", "latex"}
    title : str

    Returns
    -------
    str

    Examples
    --------
    >>> print(render_checks([("embargo", "pass", "nothing live before the slot")]))
    Readiness
    ---------
    verdict  READY
    checks   1 (0 failed, 0 warnings)
    <BLANKLINE>
    verdict   check                      message
       PASS embargo nothing live before the slot
    """
    rows = [_check_fields(c) for c in checks]
    n_fail = sum(v == "fail" for _, v, _ in rows)
    n_warn = sum(v == "warn" for _, v, _ in rows)
    header = [
        ("verdict", "READY" if n_fail == 0 else "NOT READY"),
        ("checks", f"{len(rows)} ({n_fail} failed, {n_warn} warnings)"),
    ]
    table = pd.DataFrame(
        {
            "verdict": [v.upper() for _, v, _ in rows],
            "check": [n for n, _, _ in rows],
            "message": [m for _, _, m in rows],
        },
        dtype=object,
    )
    return render(title, header, table, style=style)
