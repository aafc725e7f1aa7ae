"""Golden master of ``Fit.coefficients`` on ``demo_data()`` (quasi-Poisson, reference 2015-2019).

Guards against unintended changes to the engine or to the demo data. Regenerate ONLY on purpose:
``python tests/test_golden.py --overwrite`` (then review the diff of tests/data/golden_coefficients.json).
Tolerance 1e-9 relative: the fit is deterministic; the margin covers BLAS/libm differences across
machines.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import excessmort as em

GOLDEN = Path(__file__).parent / "data" / "golden_coefficients.json"


def _coefficients() -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", em.DispersionWarning)
        fit = em.fit(em.demo_data(), reference=("2015-01-01", "2019-12-31"))
    coef = fit.coefficients
    for col in fit.panel.strata:
        coef[col] = coef[col].astype(str)
    return coef


def test_coefficients_match_golden_master() -> None:
    stored = pd.DataFrame(json.loads(GOLDEN.read_text()))
    current = _coefficients()
    assert current.columns.tolist() == stored.columns.tolist()
    keys = ["region", "sex", "age_group"]
    pd.testing.assert_frame_equal(current[keys].reset_index(drop=True), stored[keys].astype(str))
    numeric = [c for c in stored.columns if c not in keys and c != "converged"]
    np.testing.assert_allclose(
        current[numeric].to_numpy(float), stored[numeric].to_numpy(float), rtol=1e-9
    )
    assert current["converged"].tolist() == stored["converged"].tolist()


if __name__ == "__main__":
    if "--overwrite" not in sys.argv:
        raise SystemExit("usage: python tests/test_golden.py --overwrite")
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    GOLDEN.write_text(json.dumps(_coefficients().to_dict(orient="list"), indent=1) + "\n")
    print(f"wrote {GOLDEN}")
