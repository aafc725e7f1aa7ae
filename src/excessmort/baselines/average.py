"""The five-year average: the baseline ONS published for England and Wales until 2023.

mu for ISO week w of ISO year Y is the mean of the deaths of week w in the ``years`` (5) most recent
years before Y that are not in ``exclude_years``. Weeks are numbered by the ISO week of their
week-ending date, as ONS numbers its Saturday-to-Friday registration weeks.

Week 53 (DESIGN.md: "week 53 uses week 52 where a year has none"):

- the average for week 53 of a year Y that has one takes, from each earlier year, its week 53
  where that year has one and its week 52 where it has none. For 2020 (2015-2019) that is
  2015 week 53 and week 52 of 2016 to 2019; for 2015 (2010-2014, no week 53) it is the mean of the
  five weeks 52, which is what ONS published for 2015 week 53 (8,139.0 for England and Wales, against
  8,139.2 for week 52: the 0.2 is a revision of the 2010-2014 counts between the two tables);
- a year without a week 53 never uses the week 53 of earlier years.

What ONS did in later years follows from the reference period: in 2021 ONS compared with the
2015-2019 average (the default reference 2015-2019 gives it), and in 2022 with 2016-2019 and 2021
(``reference=("2016", "2021"), exclude_years=(2020,)``).

ONS averaged the registration week of the same number whatever its bank holidays: 2020 week 19
(the early-May bank holiday moved to Friday 8 May, VE Day) is the mean of week 19 of 2015-2019,
and the published figures agree with that to the published rounding.

A week whose average would need a year, or a week, that the data lack (or that is missing, NaN, in a
series) gets NaN: the mean of fewer years is never taken silently.

Intervals. ONS published none. Ours rest on a stated model, not on ONS: each history count y_j is
independent with mean m_j and variance phi_s m_j (quasi-Poisson), where phi_s is estimated per series
as the mean over weeks of (sample variance of the five history values / their mean), floored at
``dispersion_floor``. Then

- observation variance of a week: phi mu;
- parameter variance of the average of a week: phi mu / n, n = ``years`` (the plug-in
  sum_k y_k / n^2 of the exact sum_k phi m_k / n^2);
- parameter variance of a sum of averages over a window of weeks W: mu_W = sum_j c_j y_j with c_j
  the number of weeks of W whose average uses count j, divided by n; var = phi sum_j c_j^2 y_j.
  This is exact under the model: averages of different weeks share history *years* but not history
  *counts*, so they are uncorrelated unless a count is reused, which happens (i) when week 53 reuses
  week 52 of an earlier year, and (ii) when a window spans several years (the 2020 and 2021 averages
  of week w share four counts, all five with ``exclude_years=(2020,)``). Both are counted.
- Assumption, stated: there are no year-level effects. A bad influenza winter raises every week of
  its year together; such a shared year effect would correlate the averages of different weeks and
  widen cumulative intervals. With five years per average it cannot be estimated apart from phi, so
  it is left out; window intervals are narrower than they would be under year effects.
- Sums over series and weeks carry the residual dependence of :mod:`excessmort.dependence` by
  default (year effects included), estimated on out-of-sample reference residuals: each reference
  week against the average of its own earlier years. When the data start at (or just before) the
  reference, so that fewer than two years of such weeks exist, it rests on leave-one-year-out
  residuals instead: in each history set of n counts, count j against the mean of the other n - 1,
  scaled by sqrt(1 - 1/n^2) so that their variance is that of a prediction from n years
  (:meth:`FiveYearAverageResult.dependence_view`). They know no trend: on the HMD panel (data
  from 2005) taking them instead of the out-of-sample residuals lowers the yearly coverage of the
  backtest from 95.1% to 86.7% (series) and 92.7% to 89.6% (country totals), so they are only the
  fallback. With n = 1 neither exists, and sums over weeks are taken as fully correlated.
- The counts of the target year that are themselves history of a later average (2020 counts in the
  2021 average) make observed and expected correlated across years; this is ignored.

``reference`` and ``exclude_years`` mean what they mean for every baseline (see
:func:`excessmort.fit`): the baseline rests on the data of the reference period, and the excluded
years or windows are left out of it.

- ``reference``: no year after the reference period is used as history. With the default
  2015-2019, the averages of 2020 *and of 2021* (and later) are the 2015-2019 means, as ONS
  compared 2021 with 2015-2019; ``rolling=True`` asks for the rolling average instead (2021 from
  2016-2020). Without a reference the average is rolling. The reference also selects the weeks
  whose dispersion is estimated: the weeks whose history counts all lie in the reference period
  (each distinct set of history counts once: the 2020 and 2021 averages of a week share all five);
  without a reference, or when no week qualifies, every week with an average (the latter with a
  :class:`~excessmort.exceptions.DispersionWarning`).
- ``exclude_years``: years never used as history; the average takes the next earlier year instead,
  so it still averages ``years`` years (``(2020,)`` with ``rolling=True`` is ONS's 2022
  comparison: 2016-2019 and 2021).
- exclusion windows (``fit(..., exclude=[(start, end)])``): weeks never used as history, replaced by
  the same week of the next earlier year.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
from scipy import sparse

from .._typing import BoolArray, FloatArray, IntArray
from ..exceptions import DispersionWarning, InputError
from ..weeks import iso_year_week, reference_bounds
from ._base import Baseline, BaselineResult
from ._util import group_sum

if TYPE_CHECKING:
    from .._typing import Engine
    from ..panel import Panel

__all__ = ["FiveYearAverage", "FiveYearAverageResult", "averaging_matrix", "history_index"]


def history_index(
    weeks: pd.DatetimeIndex,
    years: int = 5,
    exclude_years: Iterable[int] = (),
    *,
    last_year: int | None = None,
    exclude_weeks: BoolArray | None = None,
) -> IntArray:
    """Positions of the history counts of every week: ``idx`` [T, years], -1 where the data lack one.

    Row t lists, for the week-ending date ``weeks[t]`` of ISO year Y and week w, the positions in
    ``weeks`` of week w (week 53: 53 if that year has one, else 52) of the ``years`` most recent
    years before Y that are not in ``exclude_years``, not after ``last_year``, and whose week w is
    not in ``exclude_weeks`` (an excluded week is replaced by the same week of the next earlier
    year, so an average always has ``years`` counts), most recent first.

    Parameters
    ----------
    weeks : DatetimeIndex
        The weekly calendar [T].
    years : int
        Number of years averaged.
    exclude_years : iterable of int
        Years never used as history.
    last_year : int, optional
        No year after it is used as history (the last year of the reference period).
    exclude_weeks : ndarray of bool [T], optional
        Weeks never used as history (exclusion windows inside the reference period).

    Returns
    -------
    ndarray of int64 [T, years]

    Examples
    --------
    >>> w = pd.date_range("2015-01-02", "2021-01-08", freq="7D")
    >>> idx = history_index(w)
    >>> [str(w[j].date()) for j in idx[w.get_loc("2021-01-01")]]  # 2020 week 53
    ['2019-12-27', '2018-12-28', '2017-12-29', '2016-12-30', '2016-01-01']
    >>> w = pd.date_range("2015-01-02", "2021-04-30", freq="7D")
    >>> idx = history_index(w, last_year=2019)  # 2021 week 1: 2015-2019, not 2020
    >>> sorted({w[j].year for j in idx[w.get_loc("2021-01-08")]})
    [2015, 2016, 2017, 2018, 2019]
    """
    excluded = np.array(sorted({int(y) for y in exclude_years}), dtype=np.int64)
    iso_year, iso_week = iso_year_week(weeks)
    if len(weeks) == 0:
        return np.empty((0, years), dtype=np.int64)
    n_weeks = len(weeks)
    first_year = int(iso_year.min()) - years - len(excluded) - 1
    n_years = int(iso_year.max()) - first_year + 1
    # pos[year - first_year, week - 1] = position in `weeks`, -1 where the calendar lacks it.
    pos = np.full((n_years, 53), -1, dtype=np.int64)
    pos[iso_year - first_year, iso_week - 1] = np.arange(n_weeks)
    # Which years have a week 53 (by the calendar: ISO year Y has one iff 28 December is in it).
    dec28 = pd.DatetimeIndex([f"{y}-12-28" for y in range(first_year, first_year + n_years)])
    has_53 = dec28.isocalendar()["week"].to_numpy() == 53

    # Candidates Y-1, Y-2, ... down to first_year; keep the allowed ones, take the first `years`.
    n_cand = n_years - 1
    candidates = iso_year[:, None] - np.arange(1, n_cand + 1)[None, :]  # [T, K]
    valid = candidates >= first_year
    row = np.where(valid, candidates - first_year, 0)
    week = np.broadcast_to(iso_week[:, None], candidates.shape)
    week = np.where((week == 53) & ~has_53[row], 52, week)
    cand_pos = np.where(valid, pos[row, week - 1], -1)
    keep = valid & ~np.isin(candidates, excluded)
    if last_year is not None:
        keep &= candidates <= int(last_year)
    if exclude_weeks is not None:
        ex = np.asarray(exclude_weeks, dtype=bool)
        keep &= ~((cand_pos >= 0) & ex[np.maximum(cand_pos, 0)])
    rank = np.cumsum(keep, axis=1)
    out = np.full((n_weeks, years), -1, dtype=np.int64)
    t_idx, k_idx = np.nonzero(keep & (rank <= years))
    out[t_idx, rank[t_idx, k_idx] - 1] = cand_pos[t_idx, k_idx]
    return out


def averaging_matrix(history: IntArray) -> sparse.csr_matrix:
    """A [T, T] with mu[s] = A @ y[s]: 1/n at (t, history[t, k]); -1 positions are left out.

    Rows with a missing history position sum fewer counts; callers set those weeks to NaN.
    """
    n_weeks, n_years = history.shape
    ok = history >= 0
    rows = np.broadcast_to(np.arange(n_weeks)[:, None], history.shape)[ok]
    return sparse.csr_matrix(
        (np.full(rows.size, 1.0 / n_years), (rows, history[ok])), shape=(n_weeks, n_weeks)
    )


@dataclass(eq=False)
class FiveYearAverageResult(BaselineResult):
    """Result of :class:`FiveYearAverage`: the history index and the variances of the module docstring.

    Attributes
    ----------
    history : ndarray of int64 [T, n]
        Positions of the history counts of each week (-1: not in the data).
    deaths : ndarray [S, T]
        The counts the averages are taken of (the plug-in for their means in the variances).
    """

    #: One fit per series: a group's variances are sums of its series' own.
    additive_variance: ClassVar[bool] = True

    history: IntArray | None = None
    deaths: FloatArray | None = None
    #: The distinct history sets [R, n] of the reference (the positions each prediction averages).
    history_sets: IntArray | None = None
    #: The dependence rests on leave-one-year-out residuals of ``history_sets`` (see
    #: :meth:`dependence_view`), because the data hold too few out-of-sample reference weeks.
    leave_one_out: bool = False
    _weights: Any = field(default=None, repr=False)

    #: The residual of a week against the average of earlier years is out of sample.
    residuals_in_sample: ClassVar[bool] = False
    #: Calendar-shaped (never sliced by :meth:`take`, even when S equals T).
    _shared_fields: ClassVar[tuple[str, ...]] = ("history", "history_sets")

    def year_model(self) -> tuple[str, int | None]:
        """``("average", n)``: each year's level is the mean of n earlier years (``("loyo", n)``
        when the dependence rests on leave-one-year-out residuals: one year-level degree of
        freedom is spent on their mean)."""
        return ("loyo" if self.leave_one_out else "average", self.n_years)

    def dependence_view(self, deaths: FloatArray) -> tuple[FiveYearAverageResult, FloatArray]:
        """The result and counts whose residuals on :meth:`residual_mask` estimate the dependence.

        Out-of-sample residuals (each reference week against the average of its own earlier years)
        when the data hold enough of them; otherwise (``leave_one_out``, data starting at the
        reference) leave-one-year-out residuals: in each history set of n counts (the n years a
        prediction averages), count j against the mean m_j of the other n - 1, scaled by
        sqrt(1 - 1/n^2). Under counts independent across years with a common mean (a year effect
        included) y_j - m_j has variance v (1 + 1/(n - 1)) and a new year's y - mu has
        v (1 + 1/n): the scale gives the latter's second moments, the prediction error of the
        n-year average itself. The view has mu = m_j on those weeks (so phi mu and phi mu / n are
        the null variances) and counts m_j + s (y_j - m_j).
        """
        if not self.leave_one_out or self.history_sets is None:
            return self, deaths
        sets = self.history_sets
        n = sets.shape[1]
        values = np.asarray(deaths, dtype=np.float64)[:, sets]  # [S, R, n]
        others = (values.sum(axis=2, keepdims=True) - values) / (n - 1)
        scale = np.sqrt(1.0 - 1.0 / n**2)
        # a position in two sets (week 52 reused for week 53) keeps its first set's residual
        flat = sets.ravel()
        positions, first = np.unique(flat, return_index=True)
        mu = self.mu.copy()
        counts = np.array(deaths, dtype=np.float64)
        m = others.reshape(values.shape[0], -1)[:, first]
        y = values.reshape(values.shape[0], -1)[:, first]
        mu[:, positions] = m
        counts[:, positions] = m + scale * (y - m)
        mask = np.zeros_like(self.fit_mask)
        mask[:, positions] = np.isfinite(m) & np.isfinite(y)
        view = dataclasses.replace(self, mu=mu, fit_mask=mask, _weights=self._weights)
        return view, counts

    def residual_mask(self) -> BoolArray:
        """Weeks of the reference period (the weeks whose own counts were averaged for the
        dispersion) that have an average of their own earlier years."""
        return self.fit_mask & np.isfinite(self.mu)

    @property
    def n_years(self) -> int:
        """n, the number of years averaged."""
        assert self.history is not None
        return int(self.history.shape[1])

    def _averaging_matrix(self) -> sparse.csr_matrix:
        if self._weights is None:
            assert self.history is not None
            self._weights = averaging_matrix(self.history)
        return self._weights

    def param_variance_weekly(self, groups: IntArray, n_groups: int) -> FloatArray:
        """sum_{s in g} phi_s mu_st / n: [G, T]."""
        per_series = self.dispersion[:, None] * self.mu / self.n_years
        return group_sum(per_series, groups, n_groups)

    def param_variance_window(
        self, groups: IntArray, n_groups: int, weeks: BoolArray
    ) -> FloatArray:
        """sum_{s in g} phi_s sum_j c_j^2 y_sj, c = (A' 1_W) (counts reused across weeks counted): [G]."""
        assert self.deaths is not None
        weeks = np.asarray(weeks, dtype=bool)
        c = np.asarray(self._averaging_matrix()[weeks].sum(axis=0)).ravel()
        used = c > 0
        contrib = self.deaths[:, used] @ (c[used] ** 2)
        defined = np.all(np.isfinite(self.mu[:, weeks]), axis=1)
        per_series = np.where(defined, self.dispersion * contrib, np.nan)
        return group_sum(per_series, groups, n_groups)

    def coefficients(self, keys: pd.DataFrame) -> pd.DataFrame:
        """Strata, dispersion (before the floor), the number of weeks it rests on, converged, n_iter."""
        out = super().coefficients(keys)
        out.insert(len(keys.columns) + 1, "dispersion_weeks", self.info.get("dispersion_weeks"))
        return out


def _check_options(
    years: Any, exclude_years: Any, floor: Any
) -> tuple[int, tuple[int, ...], float]:
    if isinstance(years, bool) or not isinstance(years, int | np.integer) or years < 1:
        raise InputError(
            f"years must be a positive integer, got {years!r}", column="years", value=years
        )
    try:
        excluded = tuple(sorted({int(y) for y in exclude_years}))
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"exclude_years must be a sequence of years such as (2020,), got {exclude_years!r}",
            column="exclude_years",
            value=exclude_years,
        ) from exc
    if (
        isinstance(floor, bool)
        or not isinstance(floor, int | float)
        or not np.isfinite(floor)
        or floor < 0
    ):
        raise InputError(
            f"dispersion_floor must be a finite number >= 0, got {floor!r}",
            column="dispersion_floor",
            value=floor,
        )
    return int(years), excluded, float(floor)


class FiveYearAverage(Baseline):
    """The ONS five-year average (ONS practice until 2023); see the module docstring for the rules.

    Parameters
    ----------
    years : int, default 5
        Number of earlier years averaged.
    exclude_years : sequence of int, default ()
        Years never used as history (the next earlier year is taken instead).
    dispersion_floor : float, default 1.0
        phi = max(floor, mean over weeks of sample variance / mean of the history counts).
    rolling : bool, default False
        Use the years after the reference period as history too (2021 from 2016-2020); by
        default no year after the reference period is used.

    Examples
    --------
    >>> FiveYearAverage(exclude_years=(2020,))
    FiveYearAverage(years=5, exclude_years=(2020,), dispersion_floor=1.0, rolling=False)
    """

    name: ClassVar[str] = "five_year_average"
    #: One year: the reference only selects the weeks phi is estimated on (the mean is rolling).
    min_reference_weeks: ClassVar[int] = 52

    def __init__(
        self,
        years: int = 5,
        exclude_years: Iterable[int] = (),
        dispersion_floor: float = 1.0,
        rolling: bool = False,
    ) -> None:
        self.years = years
        self.exclude_years = exclude_years
        self.dispersion_floor = dispersion_floor
        self.rolling = rolling

    def fit(
        self,
        panel: Panel,
        *,
        reference: tuple[Any, Any] | None = None,
        engine: Engine = "auto",
        exclude: BoolArray | None = None,
    ) -> FiveYearAverageResult:
        """Average every series over years up to the end of ``reference`` (see the class).

        ``exclude`` [T] marks weeks never used as history (exclusion windows).

        Raises
        ------
        InputError
            For bad options, or when no week of the data has ``years`` earlier years in the data.
        """
        years, excluded, floor = _check_options(
            self.years, self.exclude_years, self.dispersion_floor
        )
        if not isinstance(self.rolling, bool | np.bool_):
            raise InputError(
                f"rolling must be True or False, got {self.rolling!r}",
                column="rolling",
                value=self.rolling,
            )
        weeks = panel.weeks
        last_year = None
        if reference is not None and not self.rolling:
            lo_ref, hi_ref = reference_bounds(*reference)
            in_ref = np.flatnonzero(np.asarray((weeks >= lo_ref) & (weeks <= hi_ref)))
            if in_ref.size:
                last_year = int(iso_year_week(weeks[in_ref[-1:]])[0][0])
        idx = history_index(weeks, years, excluded, last_year=last_year, exclude_weeks=exclude)
        complete = np.all(idx >= 0, axis=1)  # [T]: the calendar holds every history week
        if not complete.any():
            raise InputError(
                f"too little history for the {self.name} baseline: the data run from {weeks[0].date()} to "
                f"{weeks[-1].date()}, and an average needs the same week in {years} earlier years"
                + (f" other than {list(excluded)}" if excluded else ""),
                column="week_ending",
                value=f"{weeks[0].date()}..{weeks[-1].date()}",
            )
        deaths = panel.deaths
        safe = np.where(idx >= 0, idx, 0)
        # mu = A y for every series: memory of one [S, T] array, whatever S.
        mu = np.asarray(averaging_matrix(idx) @ deaths.T).T.copy(order="C")
        mu[:, ~complete] = np.nan

        # Dispersion: mean over weeks of var / mean of the history counts.
        disp_weeks = complete.copy()
        if reference is not None:
            lo, hi = reference_bounds(*reference)
            in_ref = np.asarray((weeks >= lo) & (weeks <= hi))
            disp_weeks &= np.all(in_ref[safe], axis=1)
            if not disp_weeks.any():
                warnings.warn(
                    f"{self.name}: no week has all its history in the reference period {lo.date()} to "
                    f"{hi.date()}; dispersion is estimated over every week with an average",
                    DispersionWarning,
                    stacklevel=3,
                )
                disp_weeks = complete.copy()
        # Weeks whose averages share all their counts (2020 and 2021 on 2015-2019) count once.
        disp_rows = np.flatnonzero(disp_weeks)
        _, first_row = np.unique(idx[disp_rows], axis=0, return_index=True)
        disp_weeks = np.zeros_like(disp_weeks)
        disp_weeks[disp_rows[np.sort(first_row)]] = True
        values = deaths[:, safe[disp_weeks]]  # [S, weeks of the estimate, n]
        mean = values.mean(axis=2)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = values.var(axis=2, ddof=1) / mean
        ratio = np.where(mean > 0, ratio, np.nan)
        n_disp = np.sum(np.isfinite(ratio), axis=1)
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows give NaN, as they should
            phi_raw = np.nanmean(ratio, axis=1)
        phi = np.maximum(phi_raw, floor)  # NaN stays NaN

        history_mask = np.zeros(panel.n_weeks, dtype=bool)
        history_mask[idx[disp_weeks].ravel()] = True
        fit_mask = history_mask[None, :] & panel.observed_mask
        sets = idx[disp_weeks]
        return FiveYearAverageResult(
            baseline=self.name,
            mu=mu,
            dispersion=phi,
            dispersion_raw=phi_raw,
            converged=np.ones(panel.n_series, dtype=bool),
            n_iter=np.zeros(panel.n_series, dtype=np.int64),
            fit_mask=fit_mask,
            info={
                "dispersion_weeks": n_disp,
                "years": years,
                "exclude_years": excluded,
                "last_year": last_year,
            },
            history=idx,
            deaths=deaths,
            history_sets=sets,
            leave_one_out=_needs_leave_one_out(weeks, history_mask & complete, years),
        )


def _needs_leave_one_out(weeks: pd.DatetimeIndex, out_of_sample: BoolArray, years: int) -> bool:
    """Whether the calendar's out-of-sample reference weeks (history weeks that have an average of
    their own) are too few for the dependence model, and leave-one-year-out residuals (n >= 2) can
    stand in (decided on the calendar alone, so every Dask partition decides alike)."""
    from ..dependence import MIN_WEEKS, MIN_YEARS, _year_blocks

    if years < 2:
        return False
    enough = (
        out_of_sample.sum() >= MIN_WEEKS and len(_year_blocks(weeks, out_of_sample)) >= MIN_YEARS
    )
    return not enough
