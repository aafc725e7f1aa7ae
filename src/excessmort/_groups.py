"""User-defined groupings of areas (``Fit.by(groups={...})``): England and Wales, the North, ...

Each group is the fit restricted to its series (nothing refitted: the baseline's result is taken
over those series, shared coefficients and covariance kept), then summed over everything but the
strata asked for; the sums get their variances from the baseline's covariance as any aggregate
does. Groups may overlap (London is in both "England" and "England and Wales").

All groups go through one pass: the series of every group are stacked into one view (a series in
two groups appears twice), whose rows are (group, strata kept), so each sum and each variance
kernel (g' V g weekly, over a window, running) is one call over all groups. The dependence model
(:mod:`excessmort.dependence`) is estimated from one set of group sums too, then each group's part
is the model a view of that group alone would have (its year effect pooled over its own rows).
:meth:`GroupedFit._per_group` is the reference, one view per group, that the tests hold it to.
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
        self.members = {
            str(label): _members(fit, over, str(label), v) for label, v in groups.items()
        }
        self.labels = list(self.members)
        self.view = self._stacked()

    def _view_of(self, idx: np.ndarray, label: str | None) -> Fit:
        from ._fit import Fit

        fit = self.fit
        # coefficients shared by every series (pooled): their sandwich is the whole panel's
        fit._dependence_result  # noqa: B018 - estimated on the whole panel before restricting
        shared = {k: v for k, v in fit._shared.items() if k == "shared_cov"}
        view = Fit(
            panel=fit.panel.take(idx),
            result=fit.result.take(idx),
            model=fit.model,
            reference=fit.reference,
            level=fit.level,
            by=self.strata,
            dependence=fit.dependence,
            shared=shared or None,
        )
        view._label = label
        view._label_over = self.over
        view._inherit(fit)
        return view

    def _per_group(self) -> dict[str, Fit]:
        """The reference path: one view per group (the group's series taken, then summed)."""
        return {
            label: self._view_of(np.flatnonzero(mask), label)
            for label, mask in self.members.items()
        }

    def _stacked(self) -> Fit:
        """One view over the series of every group, stacked, with rows (group, strata kept)."""
        blocks = [np.flatnonzero(self.members[label]) for label in self.labels]
        view = self._view_of(np.concatenate(blocks), None)
        ids, keys, spans, start, row = [], [], [], 0, 0
        for label, idx in zip(self.labels, blocks, strict=True):
            g, k = _group_index(view.panel.keys.iloc[start : start + idx.size], self.strata)
            k.insert(0, self.over, pd.Categorical([label] * len(k)))
            ids.append(g + row)
            keys.append(k)
            spans.append((slice(start, start + idx.size), slice(row, row + len(k))))
            start, row = start + idx.size, row + len(k)
        groups = np.concatenate(ids).astype(np.int64)
        all_keys = pd.concat(keys, ignore_index=True)
        all_keys[self.over] = pd.Categorical(
            all_keys[self.over].astype(str), categories=self.labels
        )
        # cached properties of the view, set once: its grouping, and its dependence model (lazy)
        view.__dict__["_grouping"] = (groups, all_keys, np.ones(len(groups), dtype=bool))
        if view._dependence_on:
            view.__dict__["_dependence"] = _StackedDependence(view, groups, spans)
        return view

    def _frame(self, name: str, *args: Any, **kwargs: Any) -> pd.DataFrame:
        value = getattr(self.view, name)
        return self._tidy(value(*args, **kwargs) if callable(value) else value)

    def _tidy(self, out: pd.DataFrame) -> pd.DataFrame:
        out[self.over] = pd.Categorical(out[self.over].astype(str), categories=self.labels)
        if "region_name" in out.columns:
            out["region_name"] = out[self.over]
        return out

    def _concat(self, name: str, *args: Any, **kwargs: Any) -> pd.DataFrame:
        """The reference path's frame: one per group view, concatenated."""
        frames = []
        for view in self._per_group().values():
            value = getattr(view, name)
            frames.append(value(*args, **kwargs) if callable(value) else value)
        return self._tidy(pd.concat(frames, ignore_index=True))

    @property
    def weekly(self) -> pd.DataFrame:
        """As :attr:`Fit.weekly`, one row set per group."""
        return self._frame("weekly")

    def weekly_in(self, *args: Any, **kwargs: Any) -> pd.DataFrame:
        """As :meth:`Fit.weekly_in`, one row set per group."""
        return self._frame("weekly_in", *args, **kwargs)

    def cumulative(self, *args: Any, **kwargs: Any) -> pd.DataFrame:
        """As :meth:`Fit.cumulative`, one row per group (and stratum kept)."""
        return self._frame("cumulative", *args, **kwargs)

    def cumulative_path(self, *args: Any, **kwargs: Any) -> pd.DataFrame:
        """As :meth:`Fit.cumulative_path`, one row set per group."""
        return self._frame("cumulative_path", *args, **kwargs)

    def totals(self, *args: Any, **kwargs: Any) -> pd.DataFrame:
        """As :meth:`Fit.totals`, one row set per group."""
        return self._frame("totals", *args, **kwargs)

    def __repr__(self) -> str:
        return f"<excessmort.GroupedFit {self.labels} of {self.fit!r}>"


def _group_index(keys: pd.DataFrame, by: tuple[str, ...]) -> tuple[np.ndarray, pd.DataFrame]:
    """:meth:`Panel.group_index` of some series' keys: (group id per series, group keys)."""
    keys = keys.reset_index(drop=True)
    if not by:
        return np.zeros(len(keys), dtype=np.int64), pd.DataFrame(index=pd.RangeIndex(1))
    ids = keys.groupby(list(by), observed=True, sort=True).ngroup().to_numpy(dtype=np.int64)
    first = pd.Series(np.arange(len(keys))).groupby(ids).first().to_numpy()
    group_keys = keys.iloc[first][list(by)].reset_index(drop=True)
    for col in by:
        group_keys[col] = group_keys[col].cat.remove_unused_categories()
    return ids, group_keys


class _StackedDependence:
    """The dependence models of a stacked view's groups, estimated from one set of group sums.

    Group k's model is what a view of group k alone estimates (:meth:`Fit._dependence`): its
    year effect pooled over its own rows, its serial model per row. Applied slice by slice.
    """

    def __init__(self, view: Fit, groups: np.ndarray, spans: list[tuple[slice, slice]]) -> None:
        self._view, self._groups, self._spans = view, groups, spans

    @property
    def parts(self) -> list[Any]:
        if "_parts" not in self.__dict__:
            self.__dict__["_parts"] = self._estimate()
        return self.__dict__["_parts"]

    def _estimate(self) -> list[Any]:
        import warnings

        from .dependence import (
            DependenceWarning,
            GroupSums,
            dependence_from_sums,
            estimate_groups,
            estimate_year_effect,
            year_effect_from_sums,
        )

        view = self._view
        res, deaths, weeks = view.result, view.panel.deaths, view.weeks
        n_rows = self._spans[-1][1].stop
        sums = GroupSums.of(res, deaths, weeks, self._groups, n_rows)
        weekly, per_group = sums.stacked()
        rmask = res.residual_mask()
        parts = []
        for series, rows in self._spans:
            own_weeks = np.any(rmask[series], axis=0)
            if np.array_equal(own_weeks, sums.resid_weeks):
                part = GroupSums.from_stacked(
                    weekly[:, rows], per_group[:, rows], sums.resid_weeks, sums.years
                )
                year = year_effect_from_sums(part, res, weeks)
                parts.append(dependence_from_sums(part, year, res, weeks))
            else:  # the group's residual weeks are its own: estimate on its series alone
                sub = res.take(np.arange(series.start, series.stop))
                g = self._groups[series] - rows.start
                year = estimate_year_effect(sub, deaths[series], weeks, g, rows.stop - rows.start)
                parts.append(
                    estimate_groups(sub, deaths[series], g, rows.stop - rows.start, year, weeks)
                )
        short = np.concatenate([d.short for d in parts])
        if short.any():
            warnings.warn(
                f"{int(short.sum())} of {short.size} rows have too short a reference to estimate "
                f"the residual dependence (fewer than two years of residual weeks, or fewer than "
                f"three complete years): their sums over weeks are taken as fully correlated (wider "
                f"intervals, never narrower)",
                DependenceWarning,
                stacklevel=4,
            )
        return parts

    @property
    def short(self) -> np.ndarray:
        return np.concatenate([d.short for d in self.parts])

    @property
    def year(self) -> Any:
        """The year effect with the largest variance among the groups' (for the frames' attrs)."""
        return max((d.year for d in self.parts), key=lambda y: y.sigma2)

    def weekly(
        self,
        obs_var: np.ndarray,
        param_var: np.ndarray,
        mu: Any = None,
        weeks: Any = None,
        param_floor: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        obs, param = [], []
        for dep, (_, rows) in zip(self.parts, self._spans, strict=True):
            o, p = dep.weekly(
                obs_var[rows],
                param_var[rows],
                None if mu is None else mu[rows],
                weeks,
                param_floor=None if param_floor is None else param_floor[rows],
            )
            obs.append(o)
            param.append(p)
        return np.concatenate(obs), np.concatenate(param)

    def running(
        self,
        obs_var: np.ndarray,
        mu: np.ndarray,
        param_var: np.ndarray,
        weeks: Any,
        level: float,
        engine: str = "auto",
        param_weekly: np.ndarray | None = None,
        param_floor: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        parts = self._each(
            "running", obs_var, mu, param_var, weeks, level, engine, param_weekly, param_floor
        )
        merged = {k: np.concatenate([d[k] for _, _, d in parts]) for k in parts[0][2]}
        return (
            np.concatenate([o for o, _, _ in parts]),
            np.concatenate([p for _, p, _ in parts]),
            merged,
        )

    def _each(
        self,
        method: str,
        obs_var: np.ndarray,
        mu: np.ndarray,
        param_var: np.ndarray,
        weeks: Any,
        level: float,
        engine: str,
        param_weekly: np.ndarray | None,
        param_floor: np.ndarray | None,
    ) -> list[Any]:
        """``method`` of each group's :class:`~excessmort.dependence.Dependence` on its rows."""
        return [
            getattr(dep, method)(
                obs_var[rows],
                mu[rows],
                param_var[rows],
                weeks,
                level,
                engine=engine,
                param_weekly=None if param_weekly is None else param_weekly[rows],
                param_floor=None if param_floor is None else param_floor[rows],
            )
            for dep, (_, rows) in zip(self.parts, self._spans, strict=True)
        ]

    def total(
        self,
        obs_var: np.ndarray,
        mu: np.ndarray,
        param_var: np.ndarray,
        weeks: Any,
        level: float,
        engine: str = "auto",
        param_weekly: np.ndarray | None = None,
        param_floor: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`excessmort.dependence.Dependence.total` of every group, slice by slice."""
        parts = self._each(
            "total", obs_var, mu, param_var, weeks, level, engine, param_weekly, param_floor
        )
        return np.concatenate([o for o, _ in parts]), np.concatenate([p for _, p in parts])
