"""The compiled loop of PBO by CSCV (``overfitting.pbo_cscv``): the Sharpe ratios of both halves of each
complementary pair of splits, the IS winner of each and its OS rank, never a splits x combinations matrix.

A half's sums are ``left[a] + right[b]`` from the subset sums that ``overfitting`` builds; every Sharpe ratio then
takes the same operations whatever the column, so identical columns tie exactly. The loops over columns have no
branch, so they are vectorised (SIMD).
"""

from __future__ import annotations

import numba
import numpy as np


def pbo_work_bytes(n_blocks: int, n_combos: int) -> int:
    """Memory PBO needs besides the block sums: the subset sums of both halves (2 x 2^(S/2) x 3 x N floats)."""
    return 2 * (1 << (n_blocks // 2)) * 3 * 8 * n_combos if n_blocks else 0


@numba.njit(cache=True, parallel=True)
def subset_sums(stats, n_threads):
    """Sums of ``stats`` (h, 3, N) over every subset of its h blocks, indexed by bitmask: shape (2^h, 3, N).

    Each entry is sum(mask without its lowest block) + lowest block, the same operations for every column, so
    identical columns get bit-identical sums. The columns are shared among ``n_threads`` threads (the output is
    about 12 KB per column at h = 8: writing it is most of the work).
    """
    h, k, n = stats.shape
    out = np.empty((1 << h, k, n))
    n_parts = max(1, min(n_threads, n))
    for part in numba.prange(n_parts):
        first = part * n // n_parts
        end = (part + 1) * n // n_parts
        for j in range(k):
            for c in range(first, end):
                out[0, j, c] = 0.0
        for m in range(1, 1 << h):
            low = m & -m
            block = 0
            while (1 << block) != low:
                block += 1
            for j in range(k):
                for c in range(first, end):
                    out[m, j, c] = out[m ^ low, j, c] + stats[block, j, c]
    return out


@numba.njit(cache=True, error_model="numpy")
def _half_sharpes(left, right, rtol, out):
    """Per-bar Sharpe (ddof=1) of every column from its half's sums ``left + right`` (rows: count, sum, sum of
    squares); 0 where undefined (fewer than 2 returns, or zero variance up to rounding)."""
    ln, ls, lq = left[0], left[1], left[2]
    rn, rs, rq = right[0], right[1], right[2]
    for c in range(out.shape[0]):
        n = ln[c] + rn[c]
        s = ls[c] + rs[c]
        q = lq[c] + rq[c]
        mean = s / n
        ssd = q - s * mean  # sum of squared deviations
        ok = (ssd > rtol * q) & (n >= 2.0)
        sharpe = mean / np.sqrt(ssd / (n - 1.0))
        out[c] = sharpe if ok else 0.0


@numba.njit(cache=True)
def _overfit(in_sample, out_of_sample) -> int:
    """1 when the IS winner (first column among ties) ranks at or below the OS median (ties averaged), else 0."""
    n = in_sample.shape[0]
    best = 0
    best_value = in_sample[0]
    for c in range(1, n):
        if in_sample[c] > best_value:
            best = c
            best_value = in_sample[c]
    star = out_of_sample[best]
    below = 0
    ties = 0
    for c in range(n):
        below += out_of_sample[c] < star
        ties += out_of_sample[c] == star
    # w = rank / (N + 1) <= 1/2  <=>  2 * rank = 2 * below + ties + 1 <= N + 1  (integers, exact)
    return 1 if 2 * below + ties + 1 <= n + 1 else 0


@numba.njit(cache=True, parallel=True)
def count_overfit_splits(left, right, pairs, rtol, n_threads) -> int:
    """Splits whose IS winner lands at or below the OS median, over both splits of each complementary pair.

    ``left``/``right`` (2^(S/2), 3, N): sums over every subset of the first S/2 blocks; ``pairs`` (P, 4): the
    subsets (left, right) of one split's IS half, then those of its complement. The pairs are shared among
    ``n_threads`` threads (``numba.get_num_threads()``; each works on its own half buffers); the count is an exact
    integer sum, whatever the order.
    """
    n_cols = left.shape[2]
    n_pairs = pairs.shape[0]
    n_parts = max(1, min(n_threads, n_pairs))
    overfit = 0
    for part in numba.prange(n_parts):
        first = np.empty(n_cols)
        second = np.empty(n_cols)
        count = 0
        for p in range(part * n_pairs // n_parts, (part + 1) * n_pairs // n_parts):
            _half_sharpes(left[pairs[p, 0]], right[pairs[p, 1]], rtol, first)
            _half_sharpes(left[pairs[p, 2]], right[pairs[p, 3]], rtol, second)
            count += _overfit(first, second) + _overfit(second, first)
        overfit += count
    return overfit
