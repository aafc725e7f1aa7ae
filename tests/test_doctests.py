"""Every public docstring example runs (issue 17), and every public member has one.

The examples run on ``demo_data()`` with the doctest module (ELLIPSIS and NORMALIZE_WHITESPACE),
one test per module, so ``make test`` runs them; a member of the public API without an
``Examples`` section holding ``>>>`` fails :func:`test_every_public_member_has_an_example`.
"""

from __future__ import annotations

import doctest
import importlib
import inspect

import pytest

import excessmort as em

MODULES = [
    "excessmort",
    "excessmort._fit",
    "excessmort._compare",
    "excessmort._groups",
    "excessmort._export",
    "excessmort._coeftable",
    "excessmort._suggest",
    "excessmort._display",
    "excessmort._atomic",
    "excessmort._dispersion",
    "excessmort._rates",
    "excessmort.periods",
    "excessmort.standardise",
    "excessmort.population",
    "excessmort.plotting",
    "excessmort.io",
    "excessmort.regions",
    "excessmort.weeks",
    "excessmort.report.stage",
    "excessmort.datasets",
    "excessmort.baselines",
    "excessmort.baselines.average",
    "excessmort.baselines.glm",
    "excessmort.baselines.euromomo",
    "excessmort.baselines.pooled",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(module, optionflags=flags, report=True, verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) of {name} failed (see above)"


def _public_members(cls: type) -> list[str]:
    return [
        n
        for n, v in vars(cls).items()
        if not n.startswith("_") and (callable(v) or isinstance(v, property | type(em.Fit.weekly)))
    ]


def _doc(obj: object) -> str:
    if isinstance(obj, property):
        obj = obj.fget
    func = getattr(obj, "func", obj)  # cached_property
    return inspect.getdoc(func) or ""


def test_every_public_member_has_an_example() -> None:
    from excessmort import plotting

    missing = []
    for cls in (em.Fit, em.Comparison):
        for name in _public_members(cls):
            if ">>>" not in _doc(vars(cls)[name]):
                missing.append(f"{cls.__name__}.{name}")
    for name in plotting.__all__:
        obj = getattr(plotting, name)
        if callable(obj) and ">>>" not in _doc(obj):
            missing.append(f"plotting.{name}")
    for name in ("read", "fit", "compare", "demo_data", "warmup"):
        if ">>>" not in _doc(getattr(em, name)):
            missing.append(name)
    assert not missing, f"public members without a docstring example: {missing}"
