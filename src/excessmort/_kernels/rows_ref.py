"""numpy twins of :mod:`excessmort._kernels.rows` (the code these kernels replaced), for tests and
``engine="numpy"``."""

from __future__ import annotations

import numpy as np

NAT = np.iinfo(np.int64).min


def day_scan_ref(ticks: np.ndarray) -> tuple[int, int, int]:
    nat = ticks == NAT
    first_nat = int(np.argmax(nat)) if nat.any() else -1
    valid = ticks[~nat]
    if valid.size == 0:
        return 0, 0, first_nat
    return int(valid.min()), int(valid.max()), first_nat


def week_codes_ref(
    ticks: np.ndarray,
    first: int,
    week: int,
    run_start: np.ndarray,
    run_series: np.ndarray,
    out: np.ndarray,
) -> tuple[int, bool]:
    n = ticks.shape[0]
    offset = ticks - first
    w = offset // week
    if out.shape[0] == n:
        out[:] = w
    off = w * week != offset
    first_off = int(np.argmax(off)) if off.any() else -1
    lengths = np.diff(np.append(run_start, n))
    series = np.repeat(run_series, lengths)
    rising = (series[1:] > series[:-1]) | ((series[1:] == series[:-1]) & (w[1:] > w[:-1]))
    return first_off, bool(rising.all())


def masked_row_means_ref(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """:func:`~excessmort._kernels.rows.masked_row_means` in numpy (the dispersion check's code
    before the kernel): one masked reduction, NaN for a row without a counted cell."""
    valid = np.asarray(mask, dtype=bool) & ~np.isnan(values)
    total = np.add.reduce(values, axis=1, where=valid)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(total / np.count_nonzero(valid, axis=1), dtype=float)
