"""Row kernels of :func:`excessmort.read`: one pass over the input's rows for what numpy would do in
several (each a full temporary of the rows).

- :func:`day_scan`: the range of a datetime column's ticks, and its first missing (NaT) row;
- :func:`week_codes`: every row's week on the weekly grid from the first week, the first row off
  that grid, and whether the rows are sorted by series then week with no series-week twice (the
  grid occupancy rule on runs of equal strata);
- :func:`text_changes`: the rows of an Arrow string column whose text differs from the row before
  (where runs of equal strata start), read from the column's offsets and bytes;
  :func:`text_changes_pieces` the same scan cut into pieces for the threads (large inputs);
- :func:`tile_into`: a frame's week columns, the T weeks repeated for every series, written by
  the threads (first writes to fresh memory are the cost);
- :func:`masked_row_means`: each row's mean over its masked, non-NaN cells (the mean weekly count
  a fit's dispersion check judges phi by), without the [S, T] temporaries numpy needs.

Serial (the rows are read once; no ``prange``) but for :func:`text_changes_pieces` and
:func:`tile_into`. Pure integer work but for :func:`masked_row_means` (a sum in week order): the
results are exact, and the numpy twins in :mod:`excessmort._kernels.rows_ref` (for
:func:`text_changes`, Arrow's own ``not_equal`` in :func:`excessmort.io._change_rows`; for
:func:`tile_into`, ``np.tile``) give the same values (tested; the means to 1e-14).
"""

from __future__ import annotations

import numpy as np

from ._jit import jit, jit_parallel, prange

#: numpy's NaT as int64.
NAT = np.iinfo(np.int64).min


@jit
def day_scan(ticks: np.ndarray) -> tuple[int, int, int]:
    """(lo, hi, first NaT row or -1) of ``ticks`` [n] (the int64 ticks of a datetime64 column);
    lo = hi = 0 when every row is NaT."""
    nat = np.iinfo(np.int64).min
    lo = np.iinfo(np.int64).max
    hi = nat
    first_nat = -1
    for i in range(ticks.shape[0]):
        x = ticks[i]
        if x == nat:
            if first_nat < 0:
                first_nat = i
            continue
        lo = min(lo, x)
        hi = max(hi, x)
    if hi == nat:
        lo = 0
        hi = 0
    return lo, hi, first_nat


@jit
def week_codes(
    ticks: np.ndarray,
    first: int,
    week: int,
    run_start: np.ndarray,
    run_series: np.ndarray,
    out: np.ndarray,
) -> tuple[int, bool]:
    """Write every row's week ``(ticks - first) // week`` into ``out`` [n]; return (the first row
    whose ticks are not a whole number of weeks from ``first``, or -1; whether the rows are sorted
    by (series, week) strictly rising). Rows are cut into runs (``run_start`` [R], the series of
    each run ``run_series`` [R]); a run's weeks must rise inside it, and at a run boundary the
    (series, week) key must rise. A row one week after the row before (the usual case) costs no
    division. An empty ``out`` checks without writing (the weeks of a complete grid are implied)."""
    n = ticks.shape[0]
    n_runs = run_start.shape[0]
    first_off = -1
    rising = True
    prev_series = -1
    prev_week = -1
    prev_offset = -1
    write = out.shape[0] == n
    for r in range(n_runs):
        lo = run_start[r]
        hi = run_start[r + 1] if r + 1 < n_runs else n
        s = run_series[r]
        for i in range(lo, hi):
            offset = ticks[i] - first
            if i > lo and offset == prev_offset + week:
                w = prev_week + 1
            else:
                w = offset // week
                if first_off < 0 and w * week != offset:
                    first_off = i
            if write:
                out[i] = w
            if rising and i > 0 and not (s > prev_series or (s == prev_series and w > prev_week)):
                rising = False
            prev_series = s
            prev_week = w
            prev_offset = offset
    return first_off, rising


#: Rows per block of :func:`text_changes` (a block whose rows all equal the row before is one check).
TEXT_BLOCK = 64


@jit
def _same_as_back(data: np.ndarray, words: np.ndarray, start: int, end: int, back: int) -> bool:
    """Whether ``data[start:end]`` equals ``data[start - back:end - back]`` (``start >= back``).

    ``words`` is ``data`` as little-endian uint64 words (its whole words; empty: bytes only). The
    whole words inside the range are compared with the 8 bytes ``back`` before them, built from
    two aligned words by shifts (one constant shift for the range); the bytes at either end one by
    one. Indices are unsigned, so numba adds no wraparound checks and LLVM vectorises the loops."""
    u = np.uint64
    lo, hi, b = u(start), u(end), u(back)
    diff = np.uint8(0)
    if words.shape[0] == 0 or hi - lo < u(32):
        j = lo
        while j < hi:
            diff |= data[j] ^ data[j - b]
            j += u(1)
        return diff == 0
    k0 = (lo + u(7)) >> u(3)  # the first whole word, and the end of the whole words
    k1 = hi >> u(3)
    j = lo
    while j < k0 << u(3):
        diff |= data[j] ^ data[j - b]
        j += u(1)
    j = k1 << u(3)
    while j < hi:
        diff |= data[j] ^ data[j - b]
        j += u(1)
    if diff != 0:
        return False
    seen = u(0)
    k = k0
    shift = (u(8) - (b & u(7))) & u(7)  # bytes 8k - back start this far into word k - d
    if shift == 0:
        d = b >> u(3)
        while k < k1:
            seen |= words[k] ^ words[k - d]
            k += u(1)
    else:
        d = (b + u(7)) >> u(3)
        right = shift << u(3)
        left = u(64) - right
        while k < k1:
            seen |= words[k] ^ ((words[k - d] >> right) | (words[k - d + u(1)] << left))
            k += u(1)
    return seen == 0


@jit
def text_changes_between(
    offsets: np.ndarray,
    data: np.ndarray,
    words: np.ndarray,
    lo_row: int,
    hi_row: int,
    out: np.ndarray,
) -> int:
    """:func:`text_changes` on the rows ``lo_row <= i < hi_row`` (``lo_row >= 1``): write those
    whose string differs from row i - 1's into ``out`` (rising) and return how many (the scan stops
    when ``out`` is full)."""
    k = 0
    for lo in range(lo_row, hi_row, TEXT_BLOCK):
        hi = min(lo + TEXT_BLOCK, hi_row)
        length = offsets[lo] - offsets[lo - 1]
        other = 0
        for i in range(lo, hi):
            other |= (offsets[i + 1] - offsets[i]) ^ length
        if other == 0 and _same_as_back(data, words, offsets[lo], offsets[hi], length):
            continue
        for i in range(lo, hi):
            start = offsets[i]
            size = offsets[i + 1] - start
            changed = size != start - offsets[i - 1]
            if not changed:
                for j in range(start, start + size):
                    if data[j] != data[j - size]:
                        changed = True
                        break
            if changed:
                if k == out.shape[0]:
                    return k
                out[k] = i
                k += 1
    return k


@jit
def text_changes(offsets: np.ndarray, data: np.ndarray, words: np.ndarray, out: np.ndarray) -> int:
    """Write the rows i >= 1 whose string differs from row i - 1's into ``out`` (rising); return
    how many (``out.shape[0]`` when ``out`` filled up: the scan stops there; [n - 1] holds them
    all). String i is ``data[offsets[i]:offsets[i + 1]]`` (an Arrow string column's int64 offsets
    [n + 1] and uint8 bytes, without nulls); ``words`` is ``data`` as little-endian uint64 words
    (see :func:`_same_as_back`; empty to compare bytes only).

    Two equal-length strings side by side are equal when the bytes of the second equal the bytes
    one length back, so a block of rows that all have the previous row's length is compared as one
    run of bytes against itself shifted by that length (:func:`_same_as_back`); only a block with
    a change is compared row by row."""
    return text_changes_between(offsets, data, words, 1, offsets.shape[0] - 1, out)


@jit_parallel
def text_changes_pieces(
    offsets: np.ndarray,
    data: np.ndarray,
    words: np.ndarray,
    bounds: np.ndarray,
    out: np.ndarray,
    counts: np.ndarray,
) -> None:
    """:func:`text_changes` cut into pieces run in parallel: piece p scans the rows
    ``bounds[p] <= i < bounds[p + 1]`` into ``out[p]`` and ``counts[p]`` says how many it found.
    The pieces' rows in order are :func:`text_changes`' rows whatever the cut (the test of a row
    reads only it and the row before)."""
    for p in prange(bounds.shape[0] - 1):
        counts[p] = text_changes_between(offsets, data, words, bounds[p], bounds[p + 1], out[p])


@jit
def masked_row_means(values: np.ndarray, mask: np.ndarray, out: np.ndarray) -> None:
    """``out[g]`` = the mean of ``values[g, t]`` over the t where ``mask[g, t]`` and the value is not
    NaN (NaN where there are none); ``values`` [G, T] float64, ``mask`` [G, T] bool."""
    n_rows, n_cols = values.shape
    for g in range(n_rows):
        total = 0.0
        count = 0
        for t in range(n_cols):
            x = values[g, t]
            if mask[g, t] and not np.isnan(x):
                total += x
                count += 1
        out[g] = total / count if count else np.nan


#: Rows per task of :func:`tile_into`.
TILE_ROWS = 256


@jit_parallel
def tile_into(values: np.ndarray, out: np.ndarray) -> None:
    """``out[g, :] = values`` for every row g of ``out`` [G, T] (``values`` [T], int64: a
    datetime64 column is its int64 view), in blocks of :data:`TILE_ROWS` rows per task."""
    n_rows, n_cols = out.shape
    for c in prange((n_rows + TILE_ROWS - 1) // TILE_ROWS):
        for g in range(c * TILE_ROWS, min(n_rows, (c + 1) * TILE_ROWS)):
            for t in range(n_cols):
                out[g, t] = values[t]
