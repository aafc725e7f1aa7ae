"""Baselines by name: ``get_baseline("quasipoisson", harmonics=3)`` or an object passed through.

Registered names: ``quasipoisson`` (default), ``poisson``, ``five_year_average``, ``euromomo``,
``pooled``, ``farrington``, ``ons2024``, ``wmd``, ``negative_binomial``. Classes are imported on
first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..exceptions import InputError
from ._base import Baseline, BaselineResult

__all__ = [
    "WMD",
    "Baseline",
    "BaselineResult",
    "EuroMOMO",
    "FarringtonFlexible",
    "FiveYearAverage",
    "NegativeBinomial",
    "Ons2024",
    "Poisson",
    "Pooled",
    "QuasiPoisson",
    "available",
    "get_baseline",
]

_REGISTRY: dict[str, str] = {
    "quasipoisson": "excessmort.baselines.glm:QuasiPoisson",
    "poisson": "excessmort.baselines.glm:Poisson",
    "five_year_average": "excessmort.baselines.average:FiveYearAverage",
    "euromomo": "excessmort.baselines.euromomo:EuroMOMO",
    "pooled": "excessmort.baselines.pooled:Pooled",
    "farrington": "excessmort.baselines.farrington:FarringtonFlexible",
    "ons2024": "excessmort.baselines.ons2024:Ons2024",
    "wmd": "excessmort.baselines.wmd:WMD",
    "negative_binomial": "excessmort.baselines.negbin:NegativeBinomial",
}
_CLASS_NAMES = {v.split(":")[1]: k for k, v in _REGISTRY.items()}


def available() -> list[str]:
    """The registered baseline names."""
    return list(_REGISTRY)


def _load(name: str) -> type[Baseline]:
    module_name, cls_name = _REGISTRY[name].split(":")
    return getattr(importlib.import_module(module_name), cls_name)  # type: ignore[no-any-return]


def _canonical(name: str) -> str | None:
    """The registered name for a name in any case or spelling (``"EuroMOMO"``, ``"five-year
    average"``, ``"FiveYearAverage"``, ``"quasi_poisson"``), or None."""
    import re

    key = re.sub(r"[^a-z0-9]", "", name.lower())
    for registered, target in _REGISTRY.items():
        cls_name = target.split(":")[1]
        if key in (registered.replace("_", ""), cls_name.lower()):
            return registered
    return None


def get_baseline(baseline: str | Baseline | type, **options: Any) -> Baseline:
    """A baseline object from a registered name (with options), a class, or the object itself.

    Names are matched ignoring case and punctuation (``"EuroMOMO"``, ``"Five-year average"``);
    a class (``em.QuasiPoisson``) is instantiated with the options.

    Raises
    ------
    InputError
        For an unknown name (the message lists the registered ones, the closest first) or options
        given with an object.

    Examples
    --------
    >>> get_baseline("EuroMOMO").name, get_baseline("Five-year average").name
    ('euromomo', 'five_year_average')
    >>> get_baseline(_load("quasipoisson"), harmonics=1).harmonics
    1
    """
    if isinstance(baseline, type) and issubclass(baseline, Baseline):
        try:
            return baseline(**options)
        except TypeError as exc:
            raise InputError(
                f"bad option for baseline {baseline.__name__}: {exc}",
                column="baseline",
                value=options,
            ) from exc
    if isinstance(baseline, str) and baseline not in _REGISTRY:
        baseline = _canonical(baseline) or baseline
    if isinstance(baseline, Baseline):
        if options:
            raise InputError(
                f"options {sorted(options)} were given with a baseline object; set them on the object "
                f"instead, e.g. {type(baseline).__name__}({', '.join(f'{k}=...' for k in options)})",
                column="baseline",
                value=baseline,
            )
        return baseline
    if not isinstance(baseline, str) or baseline not in _REGISTRY:
        from .._suggest import did_you_mean

        hint = did_you_mean(baseline, available()) if isinstance(baseline, str) else ""
        raise InputError(
            f"baseline must be one of {available()}, a baseline class or object, got "
            f"{baseline!r}{hint}",
            column="baseline",
            value=baseline,
        )
    cls = _load(baseline)
    try:
        return cls(**options)
    except TypeError as exc:
        raise InputError(
            f"bad option for baseline {baseline!r}: {exc}", column="baseline", value=options
        ) from exc


def __getattr__(name: str) -> Any:
    if name in _CLASS_NAMES:
        return _load(_CLASS_NAMES[name])
    raise AttributeError(f"module 'excessmort.baselines' has no attribute {name!r}")
