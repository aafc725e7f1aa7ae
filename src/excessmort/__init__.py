"""excessmort: excess mortality for many series at once.

Expected-death baselines fitted for every series in one vectorised pass, observed minus expected
with confidence and prediction intervals (weekly and cumulative), z-scores and P-scores, and a thin
report layer for an orderly monthly release.

Examples
--------
>>> import excessmort as em
>>> frame = em.demo_data()
>>> fit = em.fit(frame, reference=("2015-01-01", "2019-12-31"))   # doctest: +SKIP
>>> fit.by("region").cumulative("2020-03-01", "2020-06-30")        # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

# Public name -> module that defines it; loaded on first use so `import excessmort` stays cheap
# (no numba, scipy or statsmodels import until a fit is asked for).
_EXPORTS: dict[str, str] = {
    "read": "excessmort.io",
    "demo_data": "excessmort.datasets",
    "demo_truth": "excessmort.datasets",
    "fit": "excessmort._fit",
    "Fit": "excessmort._fit",
    "DaskFit": "excessmort._dask",
    "compare": "excessmort._compare",
    "backtest": "excessmort._backtest",
    "Backtest": "excessmort._backtest",
    "Comparison": "excessmort._compare",
    "GroupedFit": "excessmort._groups",
    "periods": "excessmort.periods",
    "european_standard_population": "excessmort.standardise",
    "interpolate_population": "excessmort.population",
    "warmup": "excessmort._kernels",
    "baselines": "excessmort.baselines",
    "QuasiPoisson": "excessmort.baselines",
    "Poisson": "excessmort.baselines",
    "FiveYearAverage": "excessmort.baselines",
    "EuroMOMO": "excessmort.baselines",
    "Pooled": "excessmort.baselines",
    "FarringtonFlexible": "excessmort.baselines",
    "InputError": "excessmort.exceptions",
    "ExcessmortError": "excessmort.exceptions",
    "ConvergenceWarning": "excessmort.exceptions",
    "DispersionWarning": "excessmort.exceptions",
    "MissingDataWarning": "excessmort.exceptions",
    "ModelNoteWarning": "excessmort.exceptions",
    "AreaWarning": "excessmort.exceptions",
    "ReleaseError": "excessmort.exceptions",
}

__all__ = ["__version__", *_EXPORTS]


def _version() -> str:
    """The installed distribution's version, looked up on first use of ``__version__`` (importing
    ``importlib.metadata`` and finding the distribution took 70 ms of every ``import excessmort``)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("excessmort")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.0.0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        globals()[name] = value = _version()
        return value
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'excessmort' has no attribute {name!r}")
    module = importlib.import_module(module_name)
    value = module if name in ("baselines", "periods") else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
