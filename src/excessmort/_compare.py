"""Several baselines on the same data: one tidy frame, cumulative figures and a side-by-side plot.

``excessmort.compare(frame, baselines=["quasipoisson", "five_year_average"])`` reads and validates
the frame once, fits every baseline on it (each in one vectorised pass) and returns a
:class:`Comparison`; ``by=("region",)`` compares aggregates (``Fit.by``) instead of series.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ._fit import DEFAULT_REFERENCE, WEEKLY_COLUMNS, Fit, _as_tidy
from ._fit import fit as fit_frame
from .baselines import Baseline, get_baseline
from .exceptions import InputError
from .weeks import to_timestamp

if TYPE_CHECKING:
    pass

__all__ = ["Comparison", "compare"]


class Comparison:
    """Fits of several baselines on the same data.

    Attributes
    ----------
    fits : dict of str -> Fit
        One fit per baseline, by name (``five_year_average``, ``quasipoisson (2)`` for a repeat).
    by : tuple of str or None
        The aggregate compared (``Fit.by(*by)``), or None for the series themselves.
    start, end : Timestamp or None
        The period of :attr:`weekly` and :attr:`cumulative` (None: all weeks / from the end of
        the reference period).
    """

    def __init__(
        self,
        fits: Mapping[str, Fit],
        *,
        by: Sequence[str] | None = None,
        start: Any = None,
        end: Any = None,
    ) -> None:
        self.fits = dict(fits)
        self.by = None if by is None else tuple(by)
        self.start = None if start is None else to_timestamp(start)
        self.end = None if end is None else to_timestamp(end)

    def _view(self, f: Fit) -> Fit:
        return f if self.by is None else f.by(*self.by)

    @property
    def baselines(self) -> list[str]:
        """The baseline names, in the order given."""
        return list(self.fits)

    @cached_property
    def weekly(self) -> pd.DataFrame:
        """Tidy: baseline, strata..., week_ending, observed, expected and bounds, excess and bounds,
        z_score, p_score; one row per baseline, series (or aggregate) and week in [start, end]."""
        frames = []
        for name, f in self.fits.items():
            w = self._view(f).weekly
            keep = np.ones(len(w), dtype=bool)
            if self.start is not None:
                keep &= (w["week_ending"] >= self.start).to_numpy()
            if self.end is not None:
                keep &= (w["week_ending"] <= self.end).to_numpy()
            w = w.loc[keep].reset_index(drop=True)
            w.insert(0, "baseline", name)
            frames.append(w)
        out = pd.concat(frames, ignore_index=True)
        out["baseline"] = pd.Categorical(out["baseline"], categories=self.baselines)
        return out

    @cached_property
    def cumulative(self) -> pd.DataFrame:
        """baseline, strata..., start, end, n_weeks, observed, expected, excess and bounds, p_score:
        :meth:`Fit.cumulative` over [start, end] for each baseline."""
        frames = []
        for name, f in self.fits.items():
            c = self._view(f).cumulative(self.start, self.end)
            c.insert(0, "baseline", name)
            frames.append(c)
        out = pd.concat(frames, ignore_index=True)
        out["baseline"] = pd.Categorical(out["baseline"], categories=self.baselines)
        return out

    def plot(
        self,
        strata: Any = None,
        *,
        axes: Any = None,
        start: Any = None,
        end: Any = None,
        **kwargs: Any,
    ) -> np.ndarray:
        """Expected deaths (left) and cumulative excess (right) of every baseline, side by side.

        Parameters
        ----------
        strata : dict or str, optional
            Which series or aggregate (as in :func:`excessmort.plotting.plot_weekly`); default the
            total (England).
        axes : sequence of two Axes, optional
        start, end : date-like, optional
            Default the comparison's period; the cumulative panel starts at ``start`` (or after
            the reference period).
        **kwargs
            Passed to every baseline's line.

        Returns
        -------
        ndarray of two Axes
        """
        from .plotting import _mpl, plot_baselines

        plt = _mpl()
        if axes is None:
            _, axes = plt.subplots(1, 2, figsize=(14.0, 4.5), layout="constrained")
        axes = np.asarray(axes, dtype=object).ravel()
        if axes.size != 2:
            raise InputError(
                f"axes must hold two Axes, got {axes.size}", column="axes", value=axes.size
            )
        start = self.start if start is None else start
        end = self.end if end is None else end
        plot_baselines(
            self.fits, strata, kind="expected", start=start, end=end, ax=axes[0], **kwargs
        )
        plot_baselines(
            self.fits, strata, kind="cumulative", start=start, end=end, ax=axes[1], **kwargs
        )
        return axes

    @property
    def intervals(self) -> pd.DataFrame:
        """What each baseline's intervals contain (they differ: the producer's pooled interval has
        no parameter uncertainty, the independence ones no dependence): one row per baseline."""
        rows = [{"baseline": name, **f.intervals} for name, f in self.fits.items()]
        return pd.DataFrame(rows)

    def __repr__(self) -> str:
        view = f" by {', '.join(self.by) or 'total'}" if self.by is not None else ""
        lines = [f"<excessmort.Comparison {', '.join(self.baselines)}{view}>"]
        lines += [
            f"  {name}: {f.intervals['rule']}; {f.intervals['text']}"
            for name, f in self.fits.items()
        ]
        return "\n".join(lines)


def _caller_stacklevel() -> int:
    """The ``stacklevel`` of the first frame outside this module, seen from the caller of this
    helper (``compare`` is reached directly or through the callable module)."""
    frame = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_code.co_filename == __file__:
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return level


def compare(
    frame: Any,
    baselines: Sequence[str | Baseline] = ("quasipoisson", "five_year_average"),
    *,
    reference: tuple[Any, Any] | None = DEFAULT_REFERENCE,
    level: float = 0.95,
    start: Any = None,
    end: Any = None,
    by: Sequence[str] | None = None,
    engine: str = "auto",
    keep_wales: bool | None = None,
) -> Comparison:
    """Fit several baselines on the same data and compare their expected and excess deaths.

    Parameters
    ----------
    frame : DataFrame or path
        Long format (see :func:`excessmort.read`); read and validated once.
    baselines : sequence of str or Baseline
        Names (``"quasipoisson"``, ``"poisson"``, ``"five_year_average"``, ``"euromomo"``,
        ``"pooled"``) or baseline objects with options.
    reference, level, engine, keep_wales
        As in :func:`excessmort.fit`, shared by every baseline.
    start, end : date-like, optional
        Period of the weekly frame (default all weeks) and of the cumulative figures (default from
        the week after the reference period to the last week).
    by : sequence of str, optional
        Compare aggregates ``Fit.by(*by)`` (``()`` is the total, England) instead of series.

    Returns
    -------
    Comparison

    Raises
    ------
    InputError
        Bad input data, an unknown baseline (the message lists the registered ones), fewer than one
        baseline, or a stratum in ``by`` the data lack.

    Examples
    --------
    >>> import excessmort as em
    >>> c = em.compare(em.demo_data(), ["quasipoisson", "poisson"], by=("region",))
    >>> c.cumulative["baseline"].unique().tolist()
    ['quasipoisson', 'poisson']
    """
    if isinstance(baselines, str | Baseline):
        baselines = [baselines]
    baselines = list(baselines)
    if not baselines:
        raise InputError("compare needs at least one baseline", column="baselines", value=baselines)
    models = [get_baseline(b) for b in baselines]
    tidy = _as_tidy(frame, keep_wales)
    fits: dict[str, Fit] = {}
    for model in models:
        name, k = model.name, 2
        while name in fits:
            name, k = f"{model.name} ({k})", k + 1
        # Warnings (convergence, dispersion) name the baseline and point at the caller's line.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fits[name] = fit_frame(
                tidy,
                baseline=model,
                reference=reference,
                level=level,
                engine=engine,
                keep_wales=keep_wales,
            )  # type: ignore[arg-type]
        for w in caught:
            warnings.warn(f"{name}: {w.message}", w.category, stacklevel=_caller_stacklevel())
    if by is not None:
        next(iter(fits.values())).by(*by)  # validates the strata named
    return Comparison(fits, by=by, start=start, end=end)


# The columns of Comparison.weekly after ``baseline`` and the strata (for documentation and tests).
COMPARISON_VALUE_COLUMNS = ("week_ending", *WEEKLY_COLUMNS)
