"""The producer's pooled quasi-Poisson GLM: one model over all strata at once (DESIGN.md "The pooled
baseline").

Rows are stratum-weeks. log mu_st = log(population_st) + x_st' beta, with x_st built from a
formula-like ``terms`` string over stratum columns and the calendar terms of
:mod:`excessmort.calendar_terms` (``trend``, ``seasonality``, ``holidays``), joined by ``+``,
with ``:`` for interactions and an intercept always included. Fitted by IRLS (R ``glm.fit``
rules) on the reference weeks; phi = Pearson chi2 / (n - rank), floored at ``dispersion_floor``
for intervals.

Coding of the columns follows R's ``model.matrix`` with treatment contrasts, so that coefficients
mean what they mean in R:

- terms are ordered as R's ``terms()`` orders them: by the number of factors (a calendar term
  counts as one factor), stable within an order;
- a stratum F in a term T is coded by contrasts (its first level dropped) when the term T without F
  is in the model (the intercept is the empty term), and by one indicator per level otherwise; so
  ``region`` alone is region[2..K], ``sex:age_group`` with neither main effect is one indicator per
  combination, ``seasonality:age_group`` is twelve month weights per age group;
- within a term the calendar columns vary slowest and the first-named stratum fastest;
- aliased columns (linearly dependent on earlier ones over the fitted rows, as R's pivoting QR finds
  them in column order) get a NaN coefficient and contribute nothing, so fitted values are R's.

The design is never materialised: every row is x_st = P_s z_t with z_t the week's calendar values
and P_s the series' placement of them into its columns, so X'WX is built from per-series q x q
cross-products (numba kernels in :mod:`excessmort._kernels.pooled`) and the p x p solve is a
Cholesky in scipy.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
from scipy import linalg, stats

from .._typing import BoolArray, FloatArray, IntArray
from ..calendar_terms import (
    holiday_indicators,
    later_holiday_indicators,
    month_weights,
    registration_days,
    trend_term,
)
from ..exceptions import ConvergenceWarning, InputError
from ..weeks import reference_mask
from ._base import Baseline, BaselineResult, normal_prediction

if TYPE_CHECKING:
    from .._typing import Engine
    from ..panel import Panel

__all__ = [
    "CALENDAR_TERMS",
    "DEFAULT_TERMS",
    "Pooled",
    "PooledDesign",
    "PooledResult",
    "build_pooled_design",
    "parse_terms",
]

log = logging.getLogger("excessmort")

#: The producer's model for strata region (or local authority), sex and age group.
DEFAULT_TERMS = "trend + seasonality:age_group + holidays + sex:age_group + region"

#: Calendar terms usable in ``terms`` and the functions that build them.
CALENDAR_TERMS: dict[str, Callable[[pd.DatetimeIndex], tuple[FloatArray, tuple[str, ...]]]] = {
    "trend": trend_term,
    "seasonality": month_weights,
    "holidays": holiday_indicators,
    # the producer's later terms, one column each (ukhsa-collaboration/excess-deaths)
    "consecutive_bh": lambda w: _one_later(w, 0),
    "xmas_tue_to_thu_post_1": lambda w: _one_later(w, 1),
    "xmas_tue_to_thu_post_2": lambda w: _one_later(w, 2),
}


def _one_later(weeks: pd.DatetimeIndex, k: int) -> tuple[FloatArray, tuple[str, ...]]:
    values, names = later_holiday_indicators(weeks)
    return np.ascontiguousarray(values[:, k : k + 1]), (names[k],)


INTERVALS = ("distribution", "delta")

#: A column is aliased when its squared residual norm, after projection (in the IRLS weight metric
#: of the first iteration) on the earlier kept columns, is below this fraction of its squared norm.
#: R's glm.fit pivots its QR at a relative norm of 1e-11; in cross-product form exact dependence
#: leaves ~1e-15 and real columns leave O(1), so this threshold separates them the same way.
ALIAS_TOL = 1e-9


# ---------------------------------------------------------------------------------------- terms
def parse_terms(terms: str) -> list[tuple[str, ...]]:
    """Split a terms string into terms, each a tuple of factor names in written order.

    ``"trend + seasonality:age_group + region"`` -> ``[("trend",), ("seasonality", "age_group"),
    ("region",)]``. ``1`` (the intercept, always included) is accepted and ignored; duplicates are
    dropped.

    Raises
    ------
    InputError
        For an empty term or factor, a factor repeated within a term, a term with two calendar
        terms, or an attempt to remove the intercept.

    Examples
    --------
    >>> parse_terms("trend + sex:age_group + 1 + region")
    [('trend',), ('sex', 'age_group'), ('region',)]
    """
    if not isinstance(terms, str) or not terms.strip():
        raise InputError(
            f"terms must be a non-empty string such as {DEFAULT_TERMS!r}, got {terms!r}",
            column="terms",
            value=terms,
        )
    out: list[tuple[str, ...]] = []
    seen: set[frozenset[str]] = set()
    for raw in terms.split("+"):
        term = raw.strip()
        if term in {"1"}:
            continue
        if term in {"0", "-1"} or term.startswith("-"):
            raise InputError(
                f"the pooled model always has an intercept; remove {term!r} from terms {terms!r}",
                column="terms",
                value=term,
            )
        factors = tuple(f.strip() for f in term.split(":"))
        if not term or any(not f for f in factors):
            raise InputError(
                f"empty term or factor in terms {terms!r}", column="terms", value=terms
            )
        if len(set(factors)) != len(factors):
            raise InputError(f"term {term!r} names a factor twice", column="terms", value=term)
        if sum(f in CALENDAR_TERMS for f in factors) > 1:
            raise InputError(
                f"term {term!r} multiplies two calendar terms; a term may hold at most one of "
                f"{sorted(CALENDAR_TERMS)}",
                column="terms",
                value=term,
            )
        key = frozenset(factors)
        if key not in seen:
            seen.add(key)
            out.append(factors)
    return out


def format_terms(terms: Sequence[tuple[str, ...]]) -> str:
    """The inverse of :func:`parse_terms` (``"1"`` when there are no terms)."""
    return " + ".join(":".join(t) for t in terms) or "1"


def restrict_terms(
    terms: Sequence[tuple[str, ...]], strata: Sequence[str]
) -> tuple[list[tuple[str, ...]], list[str]]:
    """Drop the strata a panel lacks from every term: ``seasonality:age_group`` becomes
    ``seasonality``, a term left empty is dropped. Returns (terms, the strata dropped)."""
    present = set(strata)
    dropped: list[str] = []
    out: list[tuple[str, ...]] = []
    seen: set[frozenset[str]] = set()
    for term in terms:
        kept = tuple(f for f in term if f in CALENDAR_TERMS or f in present)
        dropped += [f for f in term if f not in kept and f not in dropped]
        if kept and frozenset(kept) not in seen:
            seen.add(frozenset(kept))
            out.append(kept)
    return out, dropped


# ---------------------------------------------------------------------------------------- design
@dataclass(frozen=True, eq=False)
class PooledDesign:
    """The pooled design in structured form: x_st = P_s z_t, never materialised.

    Attributes
    ----------
    names : tuple of str [p]
        Column names (``intercept``, ``trend``, ``month3:age_group[85+]``,
        ``region[E12000002]``...).
    col_cal : ndarray [p] of int64
        Calendar component of each column (index into ``Z``'s columns; 0 is the constant 1).
    Z : ndarray [T, q]
        Calendar values of every week: 1 and the calendar columns the terms use.
    cal_names : tuple of str [q]
    cols : ndarray [S, m] of int64
        The columns each series uses, padded with -1.
    terms : list of tuple of str
        The terms, in R's order.
    """

    names: tuple[str, ...]
    col_cal: IntArray
    Z: FloatArray
    cal_names: tuple[str, ...]
    cols: IntArray
    terms: list[tuple[str, ...]]

    @property
    def n_terms(self) -> int:
        """p, the number of columns."""
        return len(self.names)

    def csr(self) -> tuple[IntArray, IntArray, FloatArray]:
        """The non-zeros of ``Z`` row by row: (zptr [T+1], zidx, zval)."""
        nz = self.Z != 0.0
        zptr = np.concatenate([[0], np.cumsum(nz.sum(axis=1))]).astype(np.int64)
        rows, idx = np.nonzero(nz)
        return (
            zptr,
            np.ascontiguousarray(idx, dtype=np.int64),
            np.ascontiguousarray(self.Z[rows, idx]),
        )

    def dense(self, series: Sequence[int] | IntArray | None = None) -> FloatArray:
        """Dense design rows of some series, [len(series) * T, p] (series-major): for oracles and
        benchmarks on small problems only; the fit never builds it."""
        idx = (
            np.arange(self.cols.shape[0]) if series is None else np.asarray(series, dtype=np.int64)
        )
        n_weeks = self.Z.shape[0]
        out = np.zeros((idx.size, n_weeks, self.n_terms))
        for r, s in enumerate(idx):
            js = self.cols[s][self.cols[s] >= 0]
            out[r][:, js] += self.Z[:, self.col_cal[js]]
        return out.reshape(idx.size * n_weeks, self.n_terms)


def _factor_levels(keys: pd.DataFrame, name: str) -> tuple[list[str], IntArray]:
    col = keys[name]
    cat = col if isinstance(col.dtype, pd.CategoricalDtype) else col.astype("category")
    codes = cat.cat.codes.to_numpy().astype(np.int64)
    if (codes < 0).any():
        row = int(np.flatnonzero(codes < 0)[0])
        raise InputError(
            f"stratum {name!r} is missing for series {row}", column=name, value=None, row=row
        )
    return [str(v) for v in cat.cat.categories], codes


def build_pooled_design(
    keys: pd.DataFrame,
    weeks: pd.DatetimeIndex,
    terms: Sequence[tuple[str, ...]],
    country: str = "GB-ENG",
) -> PooledDesign:
    """Build the structured design for series ``keys`` [S] and ``weeks`` [T].

    Parameters
    ----------
    keys : DataFrame
        One row per series, one (categorical) column per stratum.
    weeks : DatetimeIndex
        Week-ending dates.
    terms : sequence of tuple of str
        Parsed terms (:func:`parse_terms`); every non-calendar factor must be a column of ``keys``.

    Returns
    -------
    PooledDesign

    Raises
    ------
    InputError
        When a term names a stratum that ``keys`` lacks.

    Examples
    --------
    >>> keys = pd.DataFrame({"region": pd.Categorical(["A", "B"])})
    >>> d = build_pooled_design(keys, pd.date_range("2019-01-04", periods=4, freq="7D"),
    ...                         parse_terms("trend + region"))
    >>> d.names, d.cols.tolist()
    (('intercept', 'trend', 'region[B]'), [[0, 1, -1], [0, 1, 2]])
    """
    n_series = len(keys)
    for term in terms:
        for f in term:
            if f not in CALENDAR_TERMS and f not in keys.columns:
                raise InputError(
                    f"terms name the stratum {f!r}, which the data lack; the strata are "
                    f"{list(keys.columns)} and the calendar terms {sorted(CALENDAR_TERMS)}",
                    column=f,
                    value=format_terms(terms),
                )
    ordered = sorted(terms, key=len)  # R's terms(): by order, stable
    present = {frozenset(t) for t in ordered} | {frozenset()}

    # calendar block: constant first, then each calendar term used, in order of first use
    cal_blocks: dict[str, tuple[int, int]] = {}
    z_cols = [np.ones((len(weeks), 1))]
    cal_names: list[str] = ["(constant)"]
    for term in ordered:
        for f in term:
            if f in CALENDAR_TERMS and f not in cal_blocks:
                values, names = (
                    holiday_indicators(weeks, country)
                    if f == "holidays"
                    else CALENDAR_TERMS[f](weeks)
                )
                cal_blocks[f] = (len(cal_names), len(cal_names) + len(names))
                z_cols.append(values)
                cal_names += list(names)
    Z = np.ascontiguousarray(np.column_stack(z_cols), dtype=np.float64)

    levels = {
        f: _factor_levels(keys, f) for term in ordered for f in term if f not in CALENDAR_TERMS
    }
    names: list[str] = ["intercept"]
    col_cal: list[int] = [0]
    series_cols: list[IntArray] = [np.zeros((n_series, 1), dtype=np.int64)]
    for term in ordered:
        cal = [f for f in term if f in CALENDAR_TERMS]
        strata = [f for f in term if f not in CALENDAR_TERMS]
        if cal:
            lo, hi = cal_blocks[cal[0]]
            comps = list(range(lo, hi))
        else:
            comps = [0]
        # per stratum: contrasts (drop first level) when the term without it is in the model
        kept_levels: list[list[str]] = []
        combo = np.zeros(n_series, dtype=np.int64)
        valid = np.ones(n_series, dtype=bool)
        stride = 1
        for f in strata:
            labels, codes = levels[f]
            contrast = frozenset(t for t in term if t != f) in present
            if contrast:
                kept_levels.append(labels[1:])
                valid &= codes >= 1
                idx = codes - 1
            else:
                kept_levels.append(labels)
                idx = codes
            combo += np.where(valid, idx, 0) * stride
            stride *= len(kept_levels[-1])
        n_combo = stride
        base = len(names)
        block = np.full((n_series, len(comps)), -1, dtype=np.int64)
        for k, comp in enumerate(comps):
            block[valid, k] = base + k * n_combo + combo[valid]
            # names: first stratum fastest
            for combo_levels in itertools.product(*reversed(kept_levels)):
                parts = []
                lv = dict(zip(reversed(strata), combo_levels, strict=True))
                for f in term:
                    parts.append(cal_names[comp] if f in CALENDAR_TERMS else f"{f}[{lv[f]}]")
                names.append(":".join(parts))
                col_cal.append(comp)
        series_cols.append(block)
    cols = np.ascontiguousarray(np.concatenate(series_cols, axis=1), dtype=np.int64)
    return PooledDesign(
        names=tuple(names),
        col_cal=np.asarray(col_cal, dtype=np.int64),
        Z=Z,
        cal_names=tuple(cal_names),
        cols=cols,
        terms=list(ordered),
    )


# ---------------------------------------------------------------------------------------- kernels
def _kernels(engine: str) -> Any:
    from .._kernels import _serial_needed, resolve_engine

    if resolve_engine(engine) == "numpy":
        from .._kernels import pooled_ref

        return pooled_ref
    from .._kernels import pooled as nb

    class _Serial:
        linear_predictor = nb.linear_predictor_serial
        crossprod = nb.crossprod_serial
        scatter = nb.scatter
        group_var_weekly = nb.group_var_weekly_serial
        group_var_window = nb.group_var_window_serial

    return _Serial if _serial_needed() else nb


def _aliased(A: FloatArray, tol: float = ALIAS_TOL) -> BoolArray:
    """Columns of X'WX linearly dependent on earlier columns (in column order, as R's QR pivots).

    Right-looking Cholesky without pivoting on the cross-product scaled to unit diagonal: column j
    is aliased when its squared residual after the kept earlier columns (the diagonal of the
    Schur complement) is below ``tol``, or its norm is zero; an aliased column is skipped.
    """
    p = A.shape[0]
    d = np.sqrt(np.clip(np.diag(A), 0.0, None))
    aliased = d == 0.0
    scale = np.where(aliased, 1.0, d)
    S = A / scale[:, None] / scale[None, :]
    for j in range(p):
        if aliased[j]:
            continue
        pivot = S[j, j]
        if pivot <= tol:
            aliased[j] = True
            continue
        col = S[j + 1 :, j] / np.sqrt(pivot)
        trailing = S[j + 1 :, j + 1 :]
        trailing -= np.outer(col, col)
    return aliased


@dataclass
class _IrlsOutput:
    beta: FloatArray  # [p], NaN where aliased
    cov_unscaled: FloatArray  # [p, p] (X'WX)^-1 at the final mu, zero rows/columns where aliased
    aliased: BoolArray
    mu: FloatArray
    eta: FloatArray
    converged: bool
    n_iter: int
    deviance: FloatArray  # per series
    pearson: FloatArray  # per series
    step_halvings: int
    A_diag: FloatArray


def _single_threaded_blas() -> contextlib.AbstractContextManager[Any]:
    """BLAS limited to one thread for the small p x p algebra (threadpoolctl, when installed).

    A multi-threaded OpenBLAS spends far more on waking and syncing its threads than on a p x p
    Cholesky with p of a few hundred: on a busy 2-core machine one 300 x 300 factorisation took
    0.3 s with the default pool and 1 ms with one thread.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def irls_pooled(
    design: PooledDesign,
    Y: FloatArray,
    OFF: FloatArray,
    FIT: BoolArray,
    *,
    max_iter: int = 25,
    tol: float = 1e-8,
    engine: str = "auto",
) -> _IrlsOutput:
    """Poisson IRLS (log link) on the structured design with R ``glm.fit``'s rules.

    Start mu = y + 0.1; converge when |dev - dev_old| / (|dev| + 0.1) < tol; at most ``max_iter``
    iterations; step-halving (towards the previous coefficients) when the deviance is not finite or
    rises. Aliased columns are found once, at the first iteration, and left out of every solve.
    The unscaled covariance (X'WX)^-1 is computed at the final mu.
    """
    with _single_threaded_blas():
        return _irls_pooled(design, Y, OFF, FIT, max_iter=max_iter, tol=tol, engine=engine)


def _irls_pooled(
    design: PooledDesign,
    Y: FloatArray,
    OFF: FloatArray,
    FIT: BoolArray,
    *,
    max_iter: int,
    tol: float,
    engine: str,
) -> _IrlsOutput:
    K = _kernels(engine)
    zptr, zidx, zval = design.csr()
    cols, col_cal = design.cols, design.col_cal
    n_series = Y.shape[0]
    p, q = design.n_terms, design.Z.shape[1]
    Y = np.ascontiguousarray(np.where(FIT, Y, 0.0), dtype=np.float64)
    OFF = np.ascontiguousarray(OFF, dtype=np.float64)
    FIT = np.ascontiguousarray(FIT, dtype=np.bool_)
    MU = np.where(FIT, Y + 0.1, 1.0)
    ETA = np.ascontiguousarray(np.log(MU))
    MU = np.ascontiguousarray(MU)
    y = Y[FIT]
    m0 = MU[FIT]
    with np.errstate(divide="ignore", invalid="ignore"):
        dev_old = float(
            2.0 * np.sum(np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0) / m0), 0.0) - (y - m0))
        )
    C = np.empty((n_series, q, q))
    R = np.empty((n_series, q))
    dev_s = np.empty(n_series)
    pear_s = np.empty(n_series)

    def normal_equations() -> tuple[FloatArray, FloatArray]:
        K.crossprod(zptr, zidx, zval, OFF, Y, FIT, ETA, MU, C, R)
        A = np.zeros((p, p))
        b = np.zeros(p)
        K.scatter(cols, col_cal, C, R, A, b)
        return A, b

    def update(beta: FloatArray) -> float:
        K.linear_predictor(
            zptr, zidx, zval, cols, col_cal, beta, OFF, Y, FIT, ETA, MU, dev_s, pear_s
        )
        return float(np.sum(dev_s))

    aliased: BoolArray | None = None
    keep: IntArray = np.arange(p)
    beta_old: FloatArray | None = None
    converged = False
    halvings = 0
    it = 0
    A_diag = np.zeros(p)
    for it in range(1, max_iter + 1):  # noqa: B007
        A, b = normal_equations()
        if aliased is None:
            A_diag = np.diag(A).copy()
            aliased = _aliased(A)
            keep = np.flatnonzero(~aliased)
        beta = np.zeros(p)
        factor = linalg.cho_factor(A[np.ix_(keep, keep)], lower=True, check_finite=False)
        beta[keep] = linalg.cho_solve(factor, b[keep], check_finite=False)
        dev = update(beta)
        if beta_old is not None:
            n_half = 0
            while (
                not np.isfinite(dev) or (dev - dev_old) / (abs(dev) + 0.1) >= tol
            ) and n_half < max_iter:
                beta = 0.5 * (beta + beta_old)
                dev = update(beta)
                n_half += 1
            halvings += n_half
        elif not np.isfinite(dev):
            break  # R: "no valid set of coefficients has been found"
        if abs(dev - dev_old) / (abs(dev) + 0.1) < tol:
            converged = True
            break
        dev_old = dev
        beta_old = beta
    assert aliased is not None
    A, _ = normal_equations()  # X'WX at the final mu, for the covariance
    cov = np.zeros((p, p))
    if keep.size:
        Akk = A[np.ix_(keep, keep)]
        factor = linalg.cho_factor(Akk, lower=True, check_finite=False)
        cov[np.ix_(keep, keep)] = linalg.cho_solve(factor, np.eye(keep.size), check_finite=False)
        cov = 0.5 * (cov + cov.T)
    beta_out = np.where(aliased, np.nan, beta)
    return _IrlsOutput(
        beta=beta_out,
        cov_unscaled=cov,
        aliased=aliased,
        mu=MU,
        eta=ETA,
        converged=converged,
        n_iter=it,
        deviance=dev_s.copy(),
        pearson=pear_s.copy(),
        step_halvings=halvings,
        A_diag=A_diag,
    )


# ---------------------------------------------------------------------------------------- result
def _group_csr(
    groups: IntArray, n_groups: int, cols: IntArray, p: int
) -> tuple[IntArray, IntArray, IntArray, IntArray]:
    """Members of each group (order, gptr) and the union of their columns (U, uptr)."""
    groups = np.asarray(groups, dtype=np.int64)
    order = np.argsort(groups, kind="stable").astype(np.int64)
    gptr = np.concatenate([[0], np.cumsum(np.bincount(groups, minlength=n_groups))]).astype(
        np.int64
    )
    s_idx, a_idx = np.nonzero(cols >= 0)
    key = np.unique(groups[s_idx] * p + cols[s_idx, a_idx])
    U = (key % p).astype(np.int64)
    uptr = np.concatenate([[0], np.cumsum(np.bincount(key // p, minlength=n_groups))]).astype(
        np.int64
    )
    return order, gptr, np.ascontiguousarray(U), uptr


@dataclass(eq=False)
class PooledResult(BaselineResult):
    """Result of the pooled fit: one set of coefficients shared by every series.

    V = phi (X'WX)^-1 (phi after the floor) is the covariance of the shared coefficients; the
    variance from parameter uncertainty of an aggregate (a series, a region, England) in a week, or
    over a window of weeks, is g' V g with g the sum of mu x over the aggregate's rows.

    In ``"distribution"`` mode (the producer's) intervals carry no parameter uncertainty:
    :meth:`param_variance_weekly` and :meth:`param_variance_window` return zeros, and
    :meth:`prediction` gives negative-binomial quantiles. V stays available through
    :meth:`coef_variance_weekly` / :meth:`coef_variance_window` and ``info["coef_table"]``.
    In ``"delta"`` mode they return g' V g and prediction is the normal rule.
    """

    design: PooledDesign | None = None
    coef: FloatArray | None = None
    cov_unscaled: FloatArray | None = None
    aliased: BoolArray | None = None
    intervals: str = "distribution"
    engine: str = "auto"

    #: Shared by every series: never sliced by :meth:`take`.
    _shared_fields: ClassVar[tuple[str, ...]] = ("coef", "cov_unscaled", "aliased")
    shared_dispersion: ClassVar[bool] = True
    shared_coefficients: ClassVar[bool] = True

    def _take_extra(self, idx: IntArray) -> dict[str, Any]:
        """:meth:`take` keeps the shared design but only the column placement of the kept series."""
        if self.design is None:
            return {}
        return {
            "design": dataclasses.replace(
                self.design, cols=np.ascontiguousarray(self.design.cols[idx])
            )
        }

    # ------------------------------------------------------------------ covariance
    @property
    def V(self) -> FloatArray:
        """phi (X'WX)^-1 [p, p] with phi the floored dispersion; zero rows/columns where aliased."""
        assert self.cov_unscaled is not None
        return (
            self.cov_unscaled * float(self.dispersion[0])
            if self.dispersion.size
            else self.cov_unscaled
        )

    def coef_variance_weekly(self, groups: IntArray, n_groups: int) -> FloatArray:
        """g_t' V g_t with g_t = sum_{s in group} mu_st x_st, for every group and week: [G, T]."""
        assert self.design is not None
        d = self.design
        order, gptr, U, uptr = _group_csr(groups, n_groups, d.cols, d.n_terms)
        out = np.empty((n_groups, self.mu.shape[1]))
        mu = np.ascontiguousarray(self.mu, dtype=np.float64)
        _kernels(self.engine).group_var_weekly(
            d.Z, d.cols, d.col_cal, mu, order, gptr, U, uptr, np.ascontiguousarray(self.V), out
        )
        return out

    def coef_variance_window(self, groups: IntArray, n_groups: int, weeks: BoolArray) -> FloatArray:
        """g' V g with g = sum_{t in weeks} sum_{s in group} mu_st x_st: [G]."""
        assert self.design is not None
        d = self.design
        order, gptr, U, uptr = _group_csr(groups, n_groups, d.cols, d.n_terms)
        out = np.empty(n_groups)
        mu = np.ascontiguousarray(self.mu, dtype=np.float64)
        _kernels(self.engine).group_var_window(
            d.Z,
            d.cols,
            d.col_cal,
            mu,
            order,
            gptr,
            U,
            uptr,
            np.ascontiguousarray(self.V),
            np.ascontiguousarray(weeks, dtype=np.bool_),
            out,
        )
        return out

    def se_log_expected(self) -> FloatArray:
        """Standard error of log mu [S, T]: sqrt(x' V x) (whatever the interval mode)."""
        n_series = self.mu.shape[0]
        var = self.coef_variance_weekly(np.arange(n_series, dtype=np.int64), n_series)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.sqrt(var) / self.mu

    def param_variance_weekly(self, groups: IntArray, n_groups: int) -> FloatArray:
        """[G, T]: zeros in ``"distribution"`` mode (no parameter uncertainty), else g' V g."""
        if self.intervals == "distribution":
            return np.zeros((n_groups, self.mu.shape[1]))
        return self.coef_variance_weekly(groups, n_groups)

    def param_variance_window(
        self, groups: IntArray, n_groups: int, weeks: BoolArray
    ) -> FloatArray:
        """[G]: zeros in ``"distribution"`` mode (no parameter uncertainty), else g' V g."""
        if self.intervals == "distribution":
            return np.zeros(n_groups)
        return self.coef_variance_window(groups, n_groups, weeks)

    # ------------------------------------------------------------------ dependence
    def column_sums(self, values: FloatArray) -> FloatArray:
        """[p, T]: for every column j of the design, the sum of ``values`` [S, T] over the series
        that use it (the residuals of column j's estimating equation, up to the calendar factor)."""
        from scipy import sparse

        assert self.design is not None
        cols = self.design.cols
        used = cols >= 0
        series = np.broadcast_to(np.arange(cols.shape[0])[:, None], cols.shape)[used]
        incidence = sparse.csr_matrix(
            (np.ones(series.size), (cols[used], series)),
            shape=(self.design.n_terms, cols.shape[0]),
        )
        return np.asarray(incidence @ np.asarray(values, dtype=np.float64))

    def with_cov(self, cov: FloatArray) -> PooledResult:
        """The same fit with V = phi (X'WX)^-1 replaced by ``cov`` [p, p] (a sandwich under residual
        dependence, :func:`excessmort.dependence.shared_coefficient_cov`)."""
        phi = float(self.dispersion[0]) if self.dispersion.size else 1.0
        return dataclasses.replace(
            self, cov_unscaled=np.ascontiguousarray(np.asarray(cov, dtype=np.float64) / phi)
        )

    def fitted_variance_weekly(self, groups: IntArray, n_groups: int) -> FloatArray:
        """g' V g per group and week in every mode (the leverage of the in-sample residuals)."""
        return self.coef_variance_weekly(groups, n_groups)

    def fitted_variance_window(
        self, groups: IntArray, n_groups: int, weeks: BoolArray
    ) -> FloatArray:
        """g' V g per group over a window in every mode."""
        return self.coef_variance_window(groups, n_groups, weeks)

    def year_model(self) -> tuple[str, int | None]:
        """``("trend", None)`` when the terms have the calendar ``trend``, else ``("mean", None)``."""
        assert self.design is not None
        has_trend = any("trend" in t for t in self.design.terms)
        return ("trend", None) if has_trend else ("mean", None)

    @property
    def dependence_applies(self) -> bool:
        """``"distribution"`` is the producer's interval exactly: independence, no dependence."""
        return self.intervals != "distribution"

    @property
    def has_parameter_uncertainty(self) -> bool:
        """Only ``"delta"`` intervals carry parameter uncertainty."""
        return self.intervals != "distribution"

    @property
    def interval_rule(self) -> str:  # type: ignore[override]
        """Negative-binomial quantiles (the producer's) or normal (delta)."""
        return "negative-binomial quantiles" if self.intervals == "distribution" else "normal"

    # ------------------------------------------------------------------ intervals
    def prediction(
        self,
        observed: FloatArray,
        mu: FloatArray,
        obs_var: FloatArray,
        param_var: FloatArray,
        level: float,
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Prediction bounds and z-scores for rows or aggregates of any shape.

        ``"distribution"``: the quantiles (1 - level)/2 and (1 + level)/2 of a negative binomial
        with
        mean mu and size mu/(phi - 1), phi = obs_var / mu (Poisson when phi <= 1 + 1e-12); the
        z-score is (y - mu) / sqrt(obs_var + param_var). ``"delta"``: the normal rule.
        """
        if self.intervals == "delta":
            return normal_prediction(observed, mu, obs_var, param_var, level)
        return negative_binomial_prediction(observed, mu, obs_var, param_var, level)

    # ------------------------------------------------------------------ coefficients
    def coefficients(self, keys: pd.DataFrame) -> pd.DataFrame:
        """One row per series: strata, dispersion (before the floor), converged, n_iter.

        The coefficients are shared by all series, so they are not repeated per row: the table
        (term, estimate, std_error, aliased) is ``info["coef_table"]``; std_error uses the
        dispersion before the floor, as R's ``summary.glm``.
        """
        return super().coefficients(keys)


def negative_binomial_prediction(
    observed: FloatArray, mu: FloatArray, obs_var: FloatArray, param_var: FloatArray, level: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """The producer's interval, computed exactly: negative-binomial quantiles around mu.

    Quantiles (1 - level)/2 and (1 + level)/2 of NB(mean mu, size mu / (phi - 1)) with
    phi = obs_var / mu; Poisson(mu) when phi <= 1 + 1e-12. NaN where mu is NaN; 0 where mu is 0.

    Returns
    -------
    lower, upper, z_score : ndarray
        Broadcast shape of the inputs; z = (y - mu) / sqrt(obs_var + param_var).
    """
    observed, mu, obs_var, param_var = np.broadcast_arrays(
        *(np.asarray(a, dtype=np.float64) for a in (observed, mu, obs_var, param_var))
    )
    q_lo, q_hi = (1.0 - level) / 2.0, (1.0 + level) / 2.0
    lower = np.full(mu.shape, np.nan)
    upper = np.full(mu.shape, np.nan)
    ok = np.isfinite(mu) & np.isfinite(obs_var) & (mu > 0)
    zero = np.isfinite(mu) & (mu == 0)
    lower[zero] = upper[zero] = 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        phi = np.where(ok, obs_var / np.where(ok, mu, 1.0), np.nan)
        pois = ok & (phi <= 1.0 + 1e-12)
        nb = ok & ~pois
        if pois.any():
            lower[pois] = stats.poisson.ppf(q_lo, mu[pois])
            upper[pois] = stats.poisson.ppf(q_hi, mu[pois])
        if nb.any():
            size = mu[nb] / (phi[nb] - 1.0)
            prob = 1.0 / phi[nb]  # size / (size + mu)
            lower[nb] = stats.nbinom.ppf(q_lo, size, prob)
            upper[nb] = stats.nbinom.ppf(q_hi, size, prob)
        z = (observed - mu) / np.sqrt(obs_var + param_var)
    return lower, upper, z


# ---------------------------------------------------------------------------------------- baseline
class Pooled(Baseline):
    """The producer's pooled quasi-Poisson GLM over all strata at once.

    Parameters
    ----------
    terms : str, optional
        Formula-like terms over stratum columns and the calendar terms ``trend``, ``seasonality``
        and ``holidays``, joined by ``+``, with ``:`` for interactions; the intercept is always
        included. ``None`` (default) means :data:`DEFAULT_TERMS`,
        ``"trend + seasonality:age_group + holidays + sex:age_group + region"``, restricted to the
        strata the data have (``seasonality:age_group`` becomes ``seasonality`` on a regions-only
        file; the strata dropped are logged and kept in ``info["dropped_strata"]``). Terms given
        explicitly must name only strata the data have.
    dispersion_floor : float, default 1.0
        phi = max(floor, Pearson chi2 / (n - rank)) for intervals (the producer floors at 1).
    intervals : {"delta", "distribution"}, default "delta"
        ``"delta"``: normal intervals with parameter uncertainty (g' V g) and, by default, the
        residual dependence of :mod:`excessmort.dependence` for sums (the honest interval);
        ``"distribution"``: the producer's published interval exactly, negative-binomial quantiles
        without parameter uncertainty, rows and sums assumed independent.
    max_iter, tol : int, float
        R ``glm.control`` defaults (25, 1e-8).
    registration_days : bool, default False
        Build the offset from registration days, as the producer's later editions do: the daily
        population is zero on weekends and England and Wales bank holidays and summed to the week,
        i.e. log(population x the week's open days) (the weekly population is taken as constant
        within its week). False (the default) is the offset of the editions whose figures are in
        ``../shared/data/phe``, log(population); the later terms ``consecutive_bh``,
        ``xmas_tue_to_thu_post_1`` and ``xmas_tue_to_thu_post_2`` may be named in ``terms``.
    country : str, default "GB-ENG"
        Whose public holidays the ``holidays`` term marks (England and Wales by default; an ISO
        3166 code such as ``"SE"`` or ``"GB-SCT"`` from the ``holidays`` package).

    Examples
    --------
    >>> Pooled(terms="trend + seasonality + holidays + region")
    ... # doctest: +NORMALIZE_WHITESPACE
    Pooled(terms='trend + seasonality + holidays + region', dispersion_floor=1.0,
           intervals='delta', max_iter=25, tol=1e-08, registration_days=False,
           country='GB-ENG')
    """

    name: ClassVar[str] = "pooled"
    #: Two years, as for the quasi-Poisson GLM: its trend and seasonality need two cycles.
    min_reference_weeks: ClassVar[int] = 104

    def __init__(
        self,
        terms: str | None = None,
        dispersion_floor: float = 1.0,
        intervals: str = "delta",
        max_iter: int = 25,
        tol: float = 1e-8,
        registration_days: bool = False,
        country: str = "GB-ENG",
    ) -> None:
        self.terms = terms
        self.dispersion_floor = dispersion_floor
        self.intervals = intervals
        self.max_iter = max_iter
        self.tol = tol
        self.registration_days = registration_days
        self.country = country

    def _validate(self) -> None:
        if self.intervals not in INTERVALS:
            raise InputError(
                f"intervals must be one of {INTERVALS}, got {self.intervals!r}",
                column="intervals",
                value=self.intervals,
            )
        f = self.dispersion_floor
        if isinstance(f, bool) or not isinstance(f, int | float) or not np.isfinite(f) or f < 0:
            raise InputError(
                f"dispersion_floor must be a finite number >= 0, got {f!r}",
                column="dispersion_floor",
                value=f,
            )
        if (
            isinstance(self.max_iter, bool)
            or not isinstance(self.max_iter, int | np.integer)
            or self.max_iter < 1
        ):
            raise InputError(
                f"max_iter must be a positive integer, got {self.max_iter!r}",
                column="max_iter",
                value=self.max_iter,
            )
        if not isinstance(self.tol, int | float) or not self.tol > 0:
            raise InputError(
                f"tol must be a positive number, got {self.tol!r}", column="tol", value=self.tol
            )

    def resolve_terms(
        self, strata: Sequence[str], constant: Sequence[str] = ()
    ) -> tuple[list[tuple[str, ...]], list[str]]:
        """The terms used for data with these strata, and the strata dropped from the defaults.

        ``constant`` strata hold one level only (e.g. one country's data): terms may leave them
        out, since every series shares their level."""
        if self.terms is None:
            terms, dropped = restrict_terms(parse_terms(DEFAULT_TERMS), strata)
            if dropped:
                import warnings

                from ..exceptions import ModelNoteWarning

                warnings.warn(
                    "pooled baseline: the data have no "
                    f"{' or '.join(repr(d) for d in dropped)}; the default terms {DEFAULT_TERMS!r} "
                    f"become {format_terms(terms)!r} (pass terms= to choose them; filter "
                    "excessmort.ModelNoteWarning to silence this note)",
                    ModelNoteWarning,
                    stacklevel=4,
                )
            return terms, dropped
        terms = parse_terms(self.terms)
        missing = [f for t in terms for f in t if f not in CALENDAR_TERMS and f not in strata]
        if missing:
            from .._suggest import did_you_mean

            raise InputError(
                f"terms {self.terms!r} name the stratum {missing[0]!r}, which the data lack"
                f"{did_you_mean(missing[0], strata)}; the strata are {list(strata)} and the "
                f"calendar terms {sorted(CALENDAR_TERMS)}",
                column=missing[0],
                value=self.terms,
            )
        used = {f for t in terms for f in t}
        unused = [s for s in strata if s not in used and s not in constant]
        if unused:
            # Without a level per value, every value of that stratum gets the same expected deaths
            # (girls 0-14 expected like women 85+): not a model of the panel.
            raise InputError(
                f"terms {self.terms!r} leave out the stratum {unused[0]!r} of the data: every "
                f"{unused[0]} would get the same expected deaths. Add it to the terms (e.g. "
                f"'{self.terms} + {unused[0]}', or an interaction such as "
                f"'seasonality:{unused[0]}'), or sum the data over it first",
                column=unused[0],
                value=self.terms,
            )
        return terms, []

    def fit(
        self, panel: Panel, *, reference: tuple[Any, Any] | None, engine: Engine = "auto"
    ) -> PooledResult:
        """Fit the pooled model on the reference weeks; see the class docstring.

        Raises
        ------
        InputError
            For bad options, no reference period, terms naming a missing stratum, a stratum level
            without data in the reference period, or too few rows for the coefficients.
        """
        self._validate()
        if reference is None:
            raise InputError(
                "the pooled baseline needs a reference period (start, end)", column="reference"
            )
        constant = [s for s in panel.strata if panel.keys[s].nunique(dropna=False) <= 1]
        terms, dropped = self.resolve_terms(panel.strata, constant)
        design = build_pooled_design(panel.keys, panel.weeks, terms, self.country)
        ref = reference_mask(panel.weeks, *reference)
        offset = panel.offset
        if self.registration_days:
            with np.errstate(divide="ignore"):
                offset = offset + np.log(registration_days(panel.weeks))[None, :]
        fit_mask = ref[None, :] & panel.observed_mask & np.isfinite(offset)
        n_obs = int(fit_mask.sum())
        if n_obs <= design.n_terms:
            raise InputError(
                f"too little history for the pooled baseline: the reference period "
                f"{reference[0]} to {reference[1]} holds {n_obs} stratum-weeks with data, "
                f"and the model has {design.n_terms} columns",
                column="week_ending",
                value=reference,
            )
        out = irls_pooled(
            design,
            panel.deaths,
            offset,
            fit_mask,
            max_iter=int(self.max_iter),
            tol=float(self.tol),
            engine=engine,
        )
        empty = np.flatnonzero(out.A_diag == 0.0)
        if empty.size:
            raise InputError(
                f"the pooled model cannot estimate {design.names[empty[0]]!r}: no stratum-week "
                f"with that level has data in the reference period {reference[0]}-{reference[1]}",
                column=design.names[empty[0]].split("[")[0].split(":")[-1],
                value=design.names[empty[0]],
            )
        rank = int((~out.aliased).sum())
        df_resid = n_obs - rank
        phi_raw = float(np.sum(out.pearson) / df_resid)
        phi = max(phi_raw, float(self.dispersion_floor))
        n_series = panel.n_series
        mu = out.mu
        if not out.converged:
            warnings.warn(
                f"the pooled model did not converge in max_iter={self.max_iter} iterations; its "
                f"expected deaths are left out (NaN) for all {n_series} series",
                ConvergenceWarning,
                stacklevel=2,
            )
            mu = np.full_like(mu, np.nan)
        se = np.sqrt(phi_raw * np.diag(out.cov_unscaled))
        coef_table = pd.DataFrame(
            {
                "term": list(design.names),
                "estimate": out.beta,
                "std_error": np.where(out.aliased, np.nan, se),
                "aliased": out.aliased,
            }
        )
        info: dict[str, Any] = {
            "terms": format_terms(design.terms),
            "dropped_strata": dropped,
            "coef_table": coef_table,
            "deviance": out.deviance,
            "pearson": out.pearson,
            "n_obs": fit_mask.sum(axis=1),
            "model": {
                "deviance": float(np.sum(out.deviance)),
                "pearson": float(np.sum(out.pearson)),
                "n_obs": n_obs,
                "rank": rank,
                "df_resid": df_resid,
                "n_terms": design.n_terms,
                "aliased": [n for n, a in zip(design.names, out.aliased, strict=True) if a],
                "step_halvings": out.step_halvings,
                "intervals": self.intervals,
            },
        }
        return PooledResult(
            baseline=self.name,
            mu=np.ascontiguousarray(mu),
            dispersion=np.full(n_series, phi),
            dispersion_raw=np.full(n_series, phi_raw),
            converged=np.full(n_series, out.converged),
            n_iter=np.full(n_series, out.n_iter, dtype=np.int64),
            fit_mask=fit_mask,
            info=info,
            design=design,
            coef=out.beta,
            cov_unscaled=out.cov_unscaled,
            aliased=out.aliased,
            intervals=self.intervals,
            engine=engine,
        )
