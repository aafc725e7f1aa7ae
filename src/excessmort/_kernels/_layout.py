"""Constants the kernels and their numpy twins share, in a module that does not import numba.

The numpy twins (``*_ref.py``) and the report layer read them from here, so that a run on the
numpy engine (``engine="auto"`` on a small problem, :data:`excessmort._kernels.NUMPY_MAX_CELLS`)
never imports numba. The numba modules re-export them under their old names.
"""

from __future__ import annotations

#: IRLS status codes (:mod:`excessmort._kernels.irls`).
STATUS_CONVERGED = 0
STATUS_MAX_ITER = 1
STATUS_SINGULAR = 2
#: Step halvings per IRLS iteration before a series is declared singular.
MAX_HALVINGS = 30

#: The fused interval kernel's output columns, in the order of the rows of its ``out`` buffer (and
#: of ``Fit.weekly``) (:mod:`excessmort._kernels.intervals`).
INTERVAL_COLUMNS = (
    "expected_lower",
    "expected_upper",
    "prediction_lower",
    "prediction_upper",
    "excess",
    "excess_lower",
    "excess_upper",
    "z_score",
    "p_score",
    "ratio",
    "ratio_lower",
    "ratio_upper",
)
N_INTERVAL_COLUMNS = len(INTERVAL_COLUMNS)
