"""Plots of a :class:`~excessmort.Fit`, with matplotlib imported only when a plot is asked for.

Every function takes a ``Fit`` (or fits), draws on ``ax`` (a new figure when ``ax=None``) and
returns the ``Axes`` (the grid returns ``(Figure, axes array)``). Defaults: dates on the x axis
(``ConciseDateFormatter``), thousands separators on counts, the Okabe-Ito colour-blind-safe palette,
titles from the strata (region names for region codes).

Which series: ``strata=None`` plots the fit's only row, or the total (England when the strata
are the regions); ``strata={"region": "London", "sex": "F"}`` (or just ``"London"``) plots the
sum of the series with those values (one value per stratum named).

A missing matplotlib raises ``ImportError`` naming the ``excessmort[plot]`` extra.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .exceptions import InputError
from .regions import ENGLAND_CODE, REGIONS, region_name

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ._fit import Fit

__all__ = [
    "OKABE_ITO",
    "cumulative_path",
    "plot_alarms",
    "plot_baselines",
    "plot_cumulative",
    "plot_excess",
    "plot_expected",
    "plot_regions",
    "plot_weekly",
    "plot_zscores",
]

#: The Okabe-Ito palette (Okabe & Ito 2008), safe for the common colour-vision deficiencies.
OKABE_ITO: dict[str, str] = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
}
#: Colours of successive baselines in comparisons.
CYCLE: tuple[str, ...] = (
    OKABE_ITO["blue"],
    OKABE_ITO["orange"],
    OKABE_ITO["bluish_green"],
    OKABE_ITO["reddish_purple"],
    OKABE_ITO["vermillion"],
    OKABE_ITO["sky_blue"],
)
OBSERVED = OKABE_ITO["black"]
EXPECTED = OKABE_ITO["blue"]
POSITIVE = OKABE_ITO["vermillion"]
NEGATIVE = OKABE_ITO["blue"]
CUMULATIVE = OKABE_ITO["reddish_purple"]


# ----------------------------------------------------------------------------------------- helpers
def _mpl() -> Any:
    """``matplotlib.pyplot``, or an ImportError naming the extra."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(
            "plotting needs matplotlib, which is not installed: pip install 'excessmort[plot]'"
        ) from exc
    return plt


def _axes(ax: Any, figsize: tuple[float, float] = (9.0, 4.0)) -> Axes:
    if ax is not None:
        return ax
    plt = _mpl()
    _, new = plt.subplots(figsize=figsize, layout="constrained")
    return new  # type: ignore[no-any-return]


def _style(
    ax: Axes,
    *,
    dates: bool = True,
    counts: bool = True,
    title: str | None = None,
    ylabel: str | None = None,
) -> None:
    """Dates on x (concise), thousands separators on y, a title and a light grid."""
    import matplotlib.dates as mdates
    import matplotlib.ticker as mticker

    if dates:
        locator = mdates.AutoDateLocator(maxticks=8)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    if counts:
        ax.yaxis.set_major_formatter(mticker.StrMethodFormatter("{x:,.0f}"))
    if title is not None:
        ax.set_title(title)
    if ylabel is not None:
        ax.set_ylabel(ylabel)
    ax.grid(True, axis="y", alpha=0.3)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _label_value(column: str, value: Any) -> str:
    if column == "region":
        return region_name(str(value))
    return f"{column.replace('_', ' ')} {value}"


def title_of(keys: pd.DataFrame, row: int = 0) -> str:
    """A title from the strata of a row: region names for codes, ``sex F``, ``age group 85+``."""
    if keys.shape[1] == 0:
        return "All series"
    return ", ".join(_label_value(c, keys[c].iloc[row]) for c in keys.columns)


def _one_row(fit: Fit, strata: Any) -> tuple[Fit, str]:
    """The one-row view a single-series plot draws, and its title."""
    if strata is None:
        _, keys, _ = fit._grouping
        view = fit if len(keys) == 1 else fit.by()
    else:
        if isinstance(strata, str):
            strata = {_stratum_of_value(fit, strata): strata}
        if not isinstance(strata, Mapping):
            raise InputError(
                f"strata must be a dict such as {{'region': 'London'}} or a region, got {strata!r}",
                column="strata",
                value=strata,
            )
        view = fit.select(**strata).by(*strata)
    _, keys, _ = view._grouping
    if len(keys) != 1:
        raise InputError(
            f"strata {strata!r} give {len(keys)} rows; name one value per stratum to plot one "
            "series (or use plot_regions for a grid)",
            column="strata",
            value=strata,
        )
    return view, title_of(keys, 0)


def _stratum_of_value(fit: Fit, value: str) -> str:
    """The stratum a bare value names: the region (codes or names) when there is one and it
    matches, else the one stratum holding the value (``"85+"`` is an age group)."""
    from .regions import normalise_region

    keys = fit.panel.keys
    if "region" in keys.columns:
        present = set(keys["region"].astype(str))
        if value in present or normalise_region(value, allow_wales=True) in present:
            return "region"
    holding = [c for c in keys.columns if value in set(keys[c].astype(str))]
    if len(holding) == 1:
        return holding[0]
    if not holding and "region" in keys.columns:
        return "region"  # select() explains, with the available regions
    from ._suggest import did_you_mean

    values = sorted({str(v) for c in keys.columns for v in keys[c].astype(str)})
    raise InputError(
        f"strata {value!r} names "
        + (
            f"a value of several strata {holding}"
            if holding
            else f"no value of this fit's strata {list(keys.columns)}{did_you_mean(value, values)}"
        )
        + "; pass a dict such as {'age_group': '85+'}",
        column="strata",
        value=value,
    )


def _span(weeks: pd.DatetimeIndex, start: Any, end: Any) -> np.ndarray:
    """The weeks of a plot's period, read by the one period parser (:mod:`excessmort.periods`)."""
    from .periods import resolve_period

    if start is None and end is None:
        return np.ones(len(weeks), dtype=bool)
    return resolve_period(weeks, start, end, default=(weeks[0], weeks[-1]), what="plot period").mask


def _row_arrays(view: Fit, start: Any, end: Any) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    arrays = view._weekly_arrays
    window = _span(view.weeks, start, end)
    x = view.weeks[window].to_numpy()
    return x, {k: np.asarray(v)[0, window] for k, v in arrays.items()}


def _pct(level: float) -> str:
    return f"{100 * level:g}%"


# ----------------------------------------------------------------------------------- single series
def plot_weekly(
    fit: Fit,
    strata: Any = None,
    *,
    start: Any = None,
    end: Any = None,
    ax: Any = None,
    **kwargs: Any,
) -> Axes:
    """Observed deaths against expected deaths with the prediction band.

    The band is where the observed count falls with probability ``level`` when there is no excess
    (the baseline's prediction interval: mu -+ z sqrt(phi mu + var(mu)) for the GLMs).

    Parameters
    ----------
    fit : Fit
    strata : dict or str, optional
        Which series or aggregate (see the module docstring).
    start, end : date-like, optional
        Weeks shown (default all).
    ax : Axes, optional
    **kwargs
        Passed to the observed line (``Axes.plot``).

    Returns
    -------
    Axes

    Raises
    ------
    InputError
        For strata that select no single row, or a period outside the data.
    ImportError
        When matplotlib is missing.

    Examples
    --------
    >>> import excessmort as em
    >>> from excessmort import plotting
    >>> ax = plotting.plot_weekly(em.fit(em.demo_data()), "London", start="2020-01-01", end="2020-12-31")
    >>> ax.get_title()
    'London'
    """
    _mpl()
    view, title = _one_row(fit, strata)
    x, a = _row_arrays(view, start, end)
    ax = _axes(ax)
    ax.fill_between(
        x,
        a["lower"],
        a["upper"],
        color=EXPECTED,
        alpha=0.2,
        linewidth=0,
        label=f"{_pct(view.level)} prediction interval",
    )
    ax.plot(x, a["expected"], color=EXPECTED, linewidth=1.5, label=f"expected ({view.baseline})")
    ax.plot(
        x, a["observed"], **{"color": OBSERVED, "linewidth": 1.0, "label": "observed", **kwargs}
    )
    ax.legend(loc="upper left", frameon=False)
    _style(ax, title=title, ylabel="deaths per week")
    return ax


def plot_expected(
    fit: Fit,
    strata: Any = None,
    *,
    start: Any = None,
    end: Any = None,
    ax: Any = None,
    **kwargs: Any,
) -> Axes:
    """Expected deaths with their confidence band (parameter uncertainty only), observed as points.

    Parameters and returns as :func:`plot_weekly`; ``**kwargs`` go to the expected line.

    Examples
    --------
    >>> import excessmort as em
    >>> from excessmort import plotting
    >>> ax = plotting.plot_expected(em.fit(em.demo_data()), {"region": "London", "sex": "F"})
    >>> type(ax).__name__
    'Axes'
    """
    _mpl()
    view, title = _one_row(fit, strata)
    x, a = _row_arrays(view, start, end)
    ax = _axes(ax)
    ax.fill_between(
        x,
        a["expected_lower"],
        a["expected_upper"],
        color=EXPECTED,
        alpha=0.3,
        linewidth=0,
        label=(
            f"{_pct(view.level)} confidence interval"
            if view.intervals["parameter_uncertainty"]
            else "no parameter uncertainty (producer's interval): band of zero width"
        ),
    )
    ax.plot(
        x,
        a["expected"],
        **{"color": EXPECTED, "linewidth": 1.5, "label": f"expected ({view.baseline})", **kwargs},
    )
    ax.plot(
        x,
        a["observed"],
        linestyle="none",
        marker=".",
        markersize=3,
        color=OBSERVED,
        label="observed",
    )
    ax.legend(loc="upper left", frameon=False)
    _style(ax, title=title, ylabel="deaths per week")
    return ax


def plot_excess(
    fit: Fit,
    strata: Any = None,
    *,
    start: Any = None,
    end: Any = None,
    ax: Any = None,
    **kwargs: Any,
) -> Axes:
    """Weekly excess deaths as bars (vermillion above expected, blue below) with error bars.

    Parameters and returns as :func:`plot_weekly`; ``**kwargs`` go to ``Axes.bar``. Default period:
    from the week after the reference period.

    Examples
    --------
    >>> import excessmort as em
    >>> from excessmort import plotting
    >>> ax = plotting.plot_excess(em.fit(em.demo_data()), start="2020-03-01", end="2020-06-30")
    >>> type(ax).__name__
    'Axes'
    """
    _mpl()
    view, title = _one_row(fit, strata)
    if start is None and view.reference is not None and view.reference[1] < view.weeks[-1]:
        start = view.reference[1] + pd.Timedelta(days=1)
    x, a = _row_arrays(view, start, end)
    ex = a["excess"]
    yerr = np.vstack([ex - a["excess_lower"], a["excess_upper"] - ex])
    colours = np.where(ex >= 0, POSITIVE, NEGATIVE)
    ax = _axes(ax)
    opts = {
        "width": 6.0,
        "color": colours,
        "yerr": yerr,
        "error_kw": {"elinewidth": 0.6, "ecolor": "#555555", "capsize": 0},
        "label": f"excess deaths ({_pct(view.level)} interval)",
        **kwargs,
    }
    ax.bar(x, ex, **opts)
    ax.axhline(0.0, color=OBSERVED, linewidth=0.8)
    ax.legend(loc="upper left", frameon=False)
    _style(ax, title=title, ylabel="excess deaths per week")
    return ax


def cumulative_path(
    fit: Fit, strata: Any = None, *, start: Any = None, end: Any = None
) -> pd.DataFrame:
    """The running cumulative excess from ``start``: one row per week ending up to ``end``.

    Each row equals :meth:`Fit.cumulative` (start, that week) (see :meth:`Fit.cumulative_path`), so
    its interval uses g' V g + sum phi mu over the weeks so far, never a sum of weekly variances.

    Returns
    -------
    DataFrame
        week_ending, observed, expected, excess, excess_lower, excess_upper.

    Examples
    --------
    >>> import excessmort as em
    >>> from excessmort import plotting
    >>> path = plotting.cumulative_path(em.fit(em.demo_data()).by(), start="2020-03-01", end="2020-03-31")
    >>> len(path), path.columns[0]
    (4, 'week_ending')
    """
    view, _ = _one_row(fit, strata)
    out = view.cumulative_path(start, end)
    return out[["week_ending", "observed", "expected", "excess", "excess_lower", "excess_upper"]]


def plot_cumulative(
    fit: Fit,
    strata: Any = None,
    *,
    start: Any = None,
    end: Any = None,
    ax: Any = None,
    **kwargs: Any,
) -> Axes:
    """Cumulative excess deaths since ``start`` with its interval band.

    Parameters and returns as :func:`plot_weekly` (default start: the week after the reference
    period); ``**kwargs`` go to the line.

    Examples
    --------
    >>> import excessmort as em
    >>> from excessmort import plotting
    >>> ax = plotting.plot_cumulative(em.fit(em.demo_data()), "London", start="2020-03-01")
    >>> type(ax).__name__
    'Axes'
    """
    _mpl()
    view, title = _one_row(fit, strata)
    path = cumulative_path(view, start=start, end=end)
    ax = _axes(ax)
    x = path["week_ending"].to_numpy()
    colour = kwargs.pop("color", CUMULATIVE)
    ax.fill_between(
        x,
        path["excess_lower"],
        path["excess_upper"],
        color=colour,
        alpha=0.25,
        linewidth=0,
        label=f"{_pct(view.level)} interval"
        + ("" if view.intervals["cross_series_dependence"] else " (rows assumed independent)"),
    )
    ax.plot(
        x,
        path["excess"],
        **{"color": colour, "linewidth": 1.8, "label": "cumulative excess", **kwargs},
    )
    ax.axhline(0.0, color=OBSERVED, linewidth=0.8)
    ax.legend(loc="upper left", frameon=False)
    first = pd.Timestamp(path["week_ending"].iloc[0]) - pd.Timedelta(days=6)
    _style(ax, title=f"{title}: cumulative excess from {first.date()}", ylabel="excess deaths")
    return ax


# ------------------------------------------------------------------------------------- many series
def plot_regions(
    fit: Fit,
    kind: str = "weekly",
    *,
    start: Any = None,
    end: Any = None,
    sharey: bool = False,
    figsize: tuple[float, float] = (13.0, 9.0),
    **kwargs: Any,
) -> Figure:
    """Small multiples: one panel per English region (3 x 3), each the sum of its series.

    Parameters
    ----------
    fit : Fit
        A fit with a ``region`` stratum.
    kind : {"weekly", "excess", "cumulative", "expected"}
    start, end : date-like, optional
    sharey : bool
        One y scale for all panels.
    figsize : (float, float)
    **kwargs
        Passed to each panel's plot function.

    Returns
    -------
    Figure
        The grid (its axes in ``fig.axes``, row by row; panels of absent regions hidden).

    Raises
    ------
    InputError
        When the fit has no region stratum or none of the nine regions, or for an unknown kind.

    Examples
    --------
    >>> import excessmort as em
    >>> from excessmort import plotting
    >>> fig = plotting.plot_regions(em.fit(em.demo_data()), "excess", start=2020, end=2020)
    >>> len(fig.axes)
    9
    """
    plt = _mpl()
    import matplotlib.dates as mdates

    funcs = {
        "weekly": plot_weekly,
        "excess": plot_excess,
        "cumulative": plot_cumulative,
        "expected": plot_expected,
    }
    if kind not in funcs:
        raise InputError(
            f"kind must be one of {list(funcs)}, got {kind!r}", column="kind", value=kind
        )
    if "region" not in fit.panel.strata:
        raise InputError(
            f"plot_regions needs a region stratum; this fit's strata are {fit.panel.strata}",
            column="region",
        )
    present = set(fit.panel.keys["region"].astype(str))
    codes = [c for c in REGIONS if c in present]
    if not codes:
        raise InputError(
            f"plot_regions: none of the nine English regions is in the data ({sorted(present)})",
            column="region",
        )
    fig, axes = plt.subplots(
        3, 3, figsize=figsize, sharex=True, sharey=sharey, layout="constrained", squeeze=False
    )
    for ax, code in zip(axes.flat, REGIONS, strict=True):
        if code not in present:
            ax.set_visible(False)
            continue
        funcs[kind](fit, {"region": code}, start=start, end=end, ax=ax, **kwargs)
        ax.set_title(region_name(code))
        legend = ax.get_legend()
        if legend is not None and ax is not axes.flat[0]:
            legend.remove()
        if ax not in axes[:, 0]:
            ax.set_ylabel("")
    # Narrow panels: fewer date ticks, one locator for the shared axis.
    locator = mdates.AutoDateLocator(maxticks=6)
    axes.flat[0].xaxis.set_major_locator(locator)
    axes.flat[0].xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    what = {
        "weekly": "Observed and expected deaths",
        "excess": "Weekly excess deaths",
        "cumulative": "Cumulative excess deaths",
        "expected": "Expected deaths",
    }[kind]
    fig.suptitle(f"{what} by region ({fit.baseline})")
    return fig


def plot_zscores(
    fit: Fit,
    *,
    start: Any = None,
    end: Any = None,
    ax: Any = None,
    cmap: str = "RdBu_r",
    vmax: float | None = None,
    **kwargs: Any,
) -> Axes:
    """Heatmap of weekly z-scores, regions by week (England last), on a symmetric diverging scale.

    Parameters
    ----------
    fit : Fit
        A fit with a ``region`` stratum (each region is the sum of its series).
    start, end : date-like, optional
        Default: from the week after the reference period.
    ax : Axes, optional
    cmap : str
        A diverging colour map (``RdBu_r``, colour-blind safe); blue below expected, red above.
    vmax : float, optional
        Colour scale limit (default the 98th percentile of |z| shown, at least 2; beyond it the
        colours saturate and the colour bar has arrows).
    **kwargs
        Passed to ``Axes.pcolormesh``.

    Returns
    -------
    Axes
        With a colour bar labelled ``z-score``.

    Examples
    --------
    >>> import excessmort as em
    >>> from excessmort import plotting
    >>> ax = plotting.plot_zscores(em.fit(em.demo_data()), start="2020-01-01", end="2020-12-31")
    >>> len(ax.get_yticklabels())
    10
    """
    plt = _mpl()
    import matplotlib.dates as mdates

    if "region" not in fit.panel.strata:
        raise InputError(
            f"plot_zscores needs a region stratum; this fit's strata are {fit.panel.strata}",
            column="region",
        )
    view = fit.by("region")
    total = fit.by()
    if start is None and fit.reference is not None and fit.reference[1] < fit.weeks[-1]:
        start = fit.reference[1] + pd.Timedelta(days=1)
    window = _span(fit.weeks, start, end)
    _, keys, _ = view._grouping
    z = np.asarray(view._weekly_arrays["z_score"])[:, window]
    labels = [region_name(str(c)) for c in keys["region"]]
    _, tkeys, _ = total._grouping
    if "region" in tkeys.columns and str(tkeys["region"].iloc[0]) == ENGLAND_CODE and len(keys) > 1:
        z = np.vstack([z, np.asarray(total._weekly_arrays["z_score"])[:, window]])
        labels.append(region_name(ENGLAND_CODE))
    weeks = fit.weeks[window]
    edges = mdates.date2num(
        np.concatenate([(weeks - pd.Timedelta(days=7)).to_numpy(), weeks[-1:].to_numpy()])
    )
    finite = np.abs(z[np.isfinite(z)])
    limit = (
        vmax
        if vmax is not None
        else max(2.0, float(np.percentile(finite, 98)) if finite.size else 2.0)
    )
    ax = _axes(ax, figsize=(11.0, 0.45 * len(labels) + 1.5))
    mesh = ax.pcolormesh(
        edges,
        np.arange(len(labels) + 1),
        z,
        cmap=cmap,
        vmin=-limit,
        vmax=limit,
        shading="flat",
        **kwargs,
    )
    ax.set_yticks(np.arange(len(labels)) + 0.5, labels)
    ax.invert_yaxis()
    ax.xaxis_date()
    bar = plt.colorbar(mesh, ax=ax, pad=0.01, extend="both")
    bar.set_label("z-score")
    _style(ax, counts=False, title=f"Weekly z-scores by region ({fit.baseline})")
    ax.grid(False)
    return ax


def _named_fits(fits: Mapping[str, Fit] | Sequence[Fit]) -> dict[str, Fit]:
    if isinstance(fits, Mapping):
        named = dict(fits)
    else:
        named = {}
        for f in fits:
            name, k = f.baseline, 2
            while name in named:
                name, k = f"{f.baseline} ({k})", k + 1
            named[name] = f
    if not named:
        raise InputError("plot_baselines needs at least one fit", column="fits", value=fits)
    return named


def plot_baselines(
    fits: Mapping[str, Fit] | Sequence[Fit],
    strata: Any = None,
    *,
    kind: str = "expected",
    start: Any = None,
    end: Any = None,
    ax: Any = None,
    **kwargs: Any,
) -> Axes:
    """Two or more baselines on the same axes: expected deaths (with prediction bands) against the
    observed, or cumulative excess with bands.

    Parameters
    ----------
    fits : dict of name -> Fit, or sequence of Fit
        Fits of the same data with different baselines (names default to the baselines').
    strata : dict or str, optional
        As in :func:`plot_weekly`.
    kind : {"expected", "cumulative"}
    start, end : date-like, optional
    ax : Axes, optional
    **kwargs
        Passed to every baseline's line.

    Returns
    -------
    Axes

    Raises
    ------
    InputError
        For an unknown kind or no fits.

    Examples
    --------
    >>> import excessmort as em
    >>> from excessmort import plotting
    >>> frame = em.demo_data()
    >>> fits = {"qp": em.fit(frame), "fya": em.fit(frame, baseline="five_year_average")}
    >>> ax = plotting.plot_baselines(fits, "London", start="2020-01-01", end="2020-12-31")
    >>> type(ax).__name__
    'Axes'
    """
    _mpl()
    if kind not in ("expected", "cumulative"):
        raise InputError(
            f"kind must be one of ['expected', 'cumulative'], got {kind!r}",
            column="kind",
            value=kind,
        )
    named = _named_fits(fits)
    ax = _axes(ax)
    title = ""
    for i, (name, f) in enumerate(named.items()):
        colour = CYCLE[i % len(CYCLE)]
        view, title = _one_row(f, strata)
        if kind == "expected":
            x, a = _row_arrays(view, start, end)
            if i == 0:
                ax.plot(x, a["observed"], color=OBSERVED, linewidth=1.0, label="observed")
            ax.fill_between(x, a["lower"], a["upper"], color=colour, alpha=0.15, linewidth=0)
            ax.plot(
                x, a["expected"], **{"color": colour, "linewidth": 1.5, "label": name, **kwargs}
            )
        else:
            path = cumulative_path(view, start=start, end=end)
            x = path["week_ending"].to_numpy()
            ax.fill_between(
                x, path["excess_lower"], path["excess_upper"], color=colour, alpha=0.15, linewidth=0
            )
            ax.plot(
                x, path["excess"], **{"color": colour, "linewidth": 1.8, "label": name, **kwargs}
            )
    if kind == "cumulative":
        ax.axhline(0.0, color=OBSERVED, linewidth=0.8)
    ax.legend(loc="upper left", frameon=False)
    what = "expected deaths" if kind == "expected" else "cumulative excess deaths"
    _style(
        ax,
        title=f"{title}: {what} by baseline",
        ylabel="deaths per week" if kind == "expected" else "excess deaths",
    )
    return ax


# ----------------------------------------------------------------------------------------- alarms
def plot_alarms(
    fit: Fit,
    strata: Any = None,
    *,
    start: Any = None,
    end: Any = None,
    k: float = 0.25,
    arl0: float = 20.0,
    ax: Any = None,
    **kwargs: Any,
) -> Axes:
    """Weekly z-scores with the EuroMOMO lines at 2 and 4, CUSUM alarms marked and the detected
    excess periods shaded (see :mod:`excessmort.alarms`).

    Parameters
    ----------
    fit : Fit
    strata : dict or str, optional
        Which series or aggregate (see the module docstring).
    start, end : date-like, optional
        Weeks shown (default: from the week after the reference period).
    k, arl0 : float
        The CUSUM's reference value and in-control run length.
    ax : Axes, optional
    **kwargs
        Passed to the z-score line (``Axes.plot``).

    Returns
    -------
    Axes

    Raises
    ------
    InputError
        For strata that select no single row, or a period outside the data.
    ImportError
        When matplotlib is missing.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import excessmort as em
    >>> from excessmort.plotting import plot_alarms
    >>> ax = plot_alarms(em.fit(em.demo_data()).by())
    >>> [line.get_label() for line in ax.get_lines()][2:4]
    ['z = 2', 'z = 4']
    """
    _mpl()
    view, title = _one_row(fit, strata)
    a = view.alarms(start=start, end=end, k=k, arl0=arl0)
    w = a.weekly
    x = pd.to_datetime(w["week_ending"]).to_numpy()
    z = w["z_score"].to_numpy(dtype=float)
    ax = _axes(ax)
    for i, p in enumerate(a.periods.itertuples()):
        ax.axvspan(
            pd.Timestamp(p.start) - pd.Timedelta(days=6),
            pd.Timestamp(p.end),
            color=POSITIVE,
            alpha=0.12,
            linewidth=0,
            label="excess period (excess interval above 0)" if i == 0 else None,
        )
    ax.plot(x, z, **{"color": OBSERVED, "linewidth": 1.0, "label": "z-score", **kwargs})
    hit = w["alarm"].to_numpy(dtype=bool)
    ax.plot(x[hit], z[hit], "o", color=POSITIVE, markersize=3, label=f"CUSUM alarm (h = {a.h:.3f})")
    for level, style in ((2.0, "--"), (4.0, ":")):
        ax.axhline(level, color=EXPECTED, linewidth=0.9, linestyle=style, label=f"z = {level:g}")
    ax.axhline(0.0, color=OBSERVED, linewidth=0.6)
    ax.legend(loc="upper left", frameon=False)
    _style(ax, counts=False, title=title, ylabel=f"z-score ({view.baseline})")
    return ax
