"""User-defined groupings of areas (``Fit.by(groups={...})``): England and Wales, the North, ...

Each group is the fit restricted to its series (nothing refitted: the baseline's result is taken
over those series, shared coefficients and covariance kept), then summed over everything but the
strata asked for; the sums get their variances from the baseline's covariance as any aggregate
does. Groups may overlap (London is in both "England" and "England and Wales").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .exceptions import InputError
from .regions import ENGLAND_CODE, REGIONS, WALES_CODE, is_england, normalise_region

if TYPE_CHECKING:
    from ._fit import Fit

__all__ = ["GroupedFit"]


def _members(fit: Fit, over: str, label: str, values: Any) -> np.ndarray:
    """The series [S] of one group: the values named (``England``: the nine regions)."""
    from ._suggest import did_you_mean

    if isinstance(values, str):
        values = [values]
    present = fit.panel.keys[over].astype(str)
    available = sorted(pd.unique(present))
    mask = np.zeros(fit.panel.n_series, dtype=bool)
    for v in values:
        text = str(v)
        if over == "region" and text not in available:
            if is_england(text) and ENGLAND_CODE not in available:
                codes = [c for c in REGIONS if c in available]
                if not codes:
                    raise InputError(
                        f"group {label!r}: England needs its regions, and this fit has none",
                        column=over,
                        value=v,
                    )
                mask |= present.isin(codes).to_numpy()
                continue
            text = normalise_region(text, allow_wales=True) or (
                ENGLAND_CODE if is_england(text) else text
            )
        if text not in available:
            hint = ""
            if text == WALES_CODE:
                hint = (
                    "; Wales was left out when the data were read: read them with "
                    "keep_wales=True (or fit(..., keep_wales=True)) to keep it"
                )
            else:
                names = available
                if over == "region":
                    from .regions import region_name

                    names = [*available, *(region_name(c) for c in available)]
                hint = did_you_mean(v, names)
            raise InputError(
                f"group {label!r}: {over}={v!r} matches no series{hint}; available values are "
                f"{available}",
                column=over,
                value=v,
            )
        mask |= (present == text).to_numpy()
    return mask


class GroupedFit:
    """Aggregates of groups of series, each with its own interval (``Fit.by(groups=...)``).

    The accessors are those of :class:`~excessmort.Fit` (``weekly``, ``weekly_in``,
    ``cumulative``, ``cumulative_path``, ``totals``); the ``over`` column (``region``) holds the
    group's name.
    """

    def __init__(
        self, fit: Fit, groups: Mapping[str, Any], *, strata: tuple[str, ...], over: str = "region"
    ) -> None:
        from ._fit import Fit

        if not isinstance(groups, Mapping) or not groups:
            raise InputError(
                f"groups must be a mapping of a name to the values it groups, e.g. "
                f"{{'England and Wales': ['England', 'Wales']}}; got {groups!r}",
                column="groups",
                value=groups,
            )
        over = fit._stratum_name(over, "groups")
        if over in strata:
            raise InputError(
                f"groups group the {over!r} stratum, which by() also keeps; leave it out of by()",
                column="by",
                value=over,
            )
        self.fit = fit
        self.over = over
        self.strata = strata
        self.views: dict[str, Fit] = {}
        shared = fit._panel_state()
        for label, values in groups.items():
            idx = np.flatnonzero(_members(fit, over, str(label), values))
            view = Fit(
                panel=fit.panel.take(idx),
                result=fit.result.take(idx),
                model=fit.model,
                reference=fit.reference,
                level=fit.level,
                by=strata,
                dependence=fit.dependence,
                shared=shared,
            )
            view._label = str(label)
            view._label_over = over
            view._inherit(fit)
            self.views[str(label)] = view

    def _concat(self, name: str, *args: Any, **kwargs: Any) -> pd.DataFrame:
        frames = []
        for view in self.views.values():
            value = getattr(view, name)
            frames.append(value(*args, **kwargs) if callable(value) else value)
        out = pd.concat(frames, ignore_index=True)
        out[self.over] = pd.Categorical(out[self.over].astype(str), categories=list(self.views))
        if "region_name" in out.columns:
            out["region_name"] = out[self.over]
        return out

    @property
    def weekly(self) -> pd.DataFrame:
        """As :attr:`Fit.weekly`, one row set per group."""
        return self._concat("weekly")

    def weekly_in(self, *args: Any, **kwargs: Any) -> pd.DataFrame:
        """As :meth:`Fit.weekly_in`, one row set per group."""
        return self._concat("weekly_in", *args, **kwargs)

    def cumulative(self, *args: Any, **kwargs: Any) -> pd.DataFrame:
        """As :meth:`Fit.cumulative`, one row per group (and stratum kept)."""
        return self._concat("cumulative", *args, **kwargs)

    def cumulative_path(self, *args: Any, **kwargs: Any) -> pd.DataFrame:
        """As :meth:`Fit.cumulative_path`, one row set per group."""
        return self._concat("cumulative_path", *args, **kwargs)

    def totals(self, *args: Any, **kwargs: Any) -> pd.DataFrame:
        """As :meth:`Fit.totals`, one row set per group."""
        return self._concat("totals", *args, **kwargs)

    def __repr__(self) -> str:
        return f"<excessmort.GroupedFit {list(self.views)} of {self.fit!r}>"
