"""The model in the open: coefficients with standard errors, like R's ``summary(glm)``.

For the per-series GLMs (quasi-Poisson, Poisson, EuroMOMO) one row per series and term: the
estimate, its standard error sqrt(phi (X'WX)^-1_jj), the statistic estimate / std_error and its
two-sided p-value. As ``summary.glm``: quasi-Poisson models use phi = Pearson chi2 / (n - p) (before
any floor) and Student's t with n - p degrees of freedom; the Poisson model phi = 1 and the normal.
For the pooled model the coefficients are shared by every series: one row per term (``series`` is
``"all"``), aliased terms with NaN standard errors. The five-year average has no coefficients.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import stats

from .exceptions import InputError

if TYPE_CHECKING:
    from ._fit import Fit

__all__ = ["coefficient_table"]

COLUMNS = ("term", "estimate", "std_error", "statistic", "p_value", "dispersion", "df_resid")


def coefficient_table(fit: Fit) -> pd.DataFrame:
    """The coefficient table of a fit (see the module docstring).

    Raises
    ------
    InputError
        For a baseline without coefficients (the five-year average).
    """
    res = fit.result
    info = res.info
    if "coef_table" in info:  # pooled: shared coefficients
        table = info["coef_table"].copy()
        model = info.get("model", {})
        phi = float(res.dispersion_raw[0]) if res.dispersion_raw.size else np.nan
        df = float(model.get("df_resid", np.nan))
        with np.errstate(invalid="ignore", divide="ignore"):
            stat = table["estimate"].to_numpy() / table["std_error"].to_numpy()
        p = (
            2 * stats.t.sf(np.abs(stat), df)
            if np.isfinite(df) and df > 0
            else 2 * stats.norm.sf(np.abs(stat))
        )
        table["statistic"] = stat
        table["p_value"] = p
        table["dispersion"] = phi
        table["df_resid"] = df
        table.insert(0, "series", "all")
        return table
    coef = getattr(res, "coef", None)
    cov = getattr(res, "cov_unscaled", None)
    design = getattr(res, "design", None)
    if coef is None or cov is None or design is None:
        raise InputError(
            f"the {fit.baseline} baseline has no model coefficients (it averages earlier years); "
            "see Fit.coefficients for its dispersion",
            column="baseline",
            value=fit.baseline,
        )
    n_series, n_terms = coef.shape
    poisson = fit.baseline == "poisson"
    phi = np.ones(n_series) if poisson else np.asarray(res.dispersion_raw, dtype=float)
    n_obs = np.asarray(info.get("n_obs", np.full(n_series, np.nan)), dtype=float)
    df = n_obs - n_terms
    var = np.einsum("sjj->sj", cov)
    se = np.sqrt(phi[:, None] * var)
    with np.errstate(invalid="ignore", divide="ignore"):
        stat = coef / se
    p = 2 * (stats.norm.sf(np.abs(stat)) if poisson else stats.t.sf(np.abs(stat), df[:, None]))
    keys = fit.panel.keys
    out = keys.iloc[np.repeat(np.arange(n_series), n_terms)].reset_index(drop=True)
    from ._frames import add_region_name

    add_region_name(out)
    out["term"] = np.tile(np.asarray(design.names, dtype=object), n_series)
    out["estimate"] = coef.reshape(-1)
    out["std_error"] = se.reshape(-1)
    out["statistic"] = stat.reshape(-1)
    out["p_value"] = p.reshape(-1)
    out["dispersion"] = np.repeat(phi, n_terms)
    out["df_resid"] = np.repeat(df, n_terms)
    return out
