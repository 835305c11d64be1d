"""How much of the best result of a parameter sweep is luck: Deflated Sharpe Ratio and PBO.

Two complementary answers to "I tried many parameter combinations and kept the best one":

* ``deflated_sharpe`` asks whether the winner's Sharpe ratio beats what the best of ``n_trials``
  worthless strategies would have scored anyway (Bailey & Lopez de Prado, 2014).
* ``pbo_cscv`` asks how often the in-sample winner lands in the bottom half out of sample
  (Bailey, Borwein, Lopez de Prado & Zhu, 2015).

All Sharpe ratios here are per bar (mean / sample std of bar returns, risk-free rate 0), never annualised:
the formulas below are stated in the sampling frequency of the returns.

PBO works from per-block sufficient statistics (count, sum, sum of squares) rather than the full
T x N returns matrix, so a sweep of 10,000 combinations over 100,000 bars only has to keep
S x N x 3 numbers, and the computation itself needs only 2 x N more.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtr, ndtri

__all__ = [
    "block_stats_from_returns",
    "deflated_sharpe",
    "expected_max_sharpe",
    "pbo_cscv",
    "pbo_from_returns",
    "probabilistic_sharpe",
    "sharpe_moments",
]

# In a half, a sum of squared deviations below this fraction of the sum of squares is rounding noise from
# sum/sum-of-squares cancellation: the combination is treated as having zero variance (|Sharpe| would be > ~1e5).
_ZERO_VAR_RTOL = 1e-10


# --------------------------------------------------------------------------------------------- Sharpe statistics


def sharpe_moments(returns: np.ndarray) -> tuple[float, float, float, int]:
    """Per-bar Sharpe, skewness, non-excess kurtosis and count of one return series: the inputs of PSR/DSR.

    Non-finite values (NaN warm-up bars, etc.) are dropped first. Sharpe uses the sample std (ddof=1), like
    ``metrics.sharpe``; skewness and kurtosis are the plain moment ratios m3 / m2^1.5 and m4 / m2^2 (ddof=0),
    the estimators used by Bailey & Lopez de Prado. Kurtosis is Pearson's (3 for a normal distribution).
    With fewer than 2 observations or zero variance (up to rounding, as in ``pbo_cscv``) the three statistics are nan
    (undefined, not zero).
    """
    r = np.asarray(returns, dtype=float).ravel()
    r = r[np.isfinite(r)]
    n = int(r.size)
    if n < 2:
        return math.nan, math.nan, math.nan, n
    mean = float(np.mean(r))
    dev = r - mean
    m2 = float(np.mean(dev**2))
    if not m2 > _ZERO_VAR_RTOL * float(np.mean(r * r)):  # zero variance up to rounding (constant series)
        return math.nan, math.nan, math.nan, n
    m3 = float(np.mean(dev**3))
    m4 = float(np.mean(dev**4))
    sharpe = mean / math.sqrt(m2 * n / (n - 1))
    return sharpe, m3 / m2**1.5, m4 / m2**2, n


def probabilistic_sharpe(sharpe: float, benchmark: float, n_obs: int, skew: float, kurtosis: float) -> float:
    """Probabilistic Sharpe Ratio: probability that the true per-bar Sharpe exceeds ``benchmark``.

    A Sharpe estimate from ``n_obs`` non-normal returns has standard error
    sqrt((1 - skew*SR + (kurt - 1)/4 * SR^2) / (T - 1)) (Mertens 2002; Lo 2002 for the normal case), so
    (Bailey & Lopez de Prado 2012, "The Sharpe Ratio Efficient Frontier"; eq. for PSR restated in the 2014 DSR paper)::

        PSR(SR*) = Phi( (SR - SR*) * sqrt(T - 1) / sqrt(1 - skew*SR + (kurt - 1)/4 * SR^2) )

    ``kurtosis`` is non-excess (3 for normal). Returns nan for non-finite inputs, ``n_obs < 2`` or a non-positive
    variance term (inconsistent skew/kurtosis: any real distribution has kurt >= 1 + skew^2, which keeps it >= 0).
    """
    if not all(math.isfinite(x) for x in (sharpe, benchmark, skew, kurtosis)) or n_obs < 2:
        return math.nan
    var_term = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2
    if not var_term > 0.0:
        return math.nan
    z = (sharpe - benchmark) * math.sqrt(n_obs - 1) / math.sqrt(var_term)
    return float(ndtr(z))


def expected_max_sharpe(n_trials: int, trials_sharpe_var: float) -> float:
    """SR0: the expected maximum of ``n_trials`` Sharpe estimates whose true Sharpe is 0 (the DSR benchmark).

    From the False Strategy theorem / extreme-value approximation for the maximum of N iid normals
    (Bailey & Lopez de Prado 2014, SR0 in "The Deflated Sharpe Ratio"; Bailey, Borwein, Lopez de Prado & Zhu 2014)::

        SR0 = sqrt(V[SR_n]) * ((1 - gamma) * Phi^-1(1 - 1/N) + gamma * Phi^-1(1 - 1/(N e)))

    with gamma the Euler-Mascheroni constant and V[SR_n] the variance of the trials' Sharpe ratios. N == 1 means no
    selection, so SR0 = 0 (the formula's first term would be -inf). Uses Phi^-1(1 - p) = -Phi^-1(p) to keep precision.
    """
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    if not math.isfinite(trials_sharpe_var):
        return math.nan
    if trials_sharpe_var < 0:
        raise ValueError(f"trials_sharpe_var must be >= 0, got {trials_sharpe_var}")
    if n_trials == 1:
        return 0.0
    g = float(np.euler_gamma)
    z = (1.0 - g) * -float(ndtri(1.0 / n_trials)) + g * -float(ndtri(1.0 / (n_trials * math.e)))
    return math.sqrt(trials_sharpe_var) * z


def deflated_sharpe(
    best_sharpe: float, n_trials: int, n_obs: int, skew: float, kurtosis: float, trials_sharpe_var: float
) -> float:
    """Deflated Sharpe Ratio: probability that the sweep winner's true per-bar Sharpe beats the luck of the draw.

    Bailey & Lopez de Prado (2014), "The Deflated Sharpe Ratio: Correcting for Selection Bias, Backtest Overfitting
    and Non-Normality": DSR = PSR(SR0), i.e. the PSR of the best strategy against the Sharpe the best of
    ``n_trials`` zero-skill strategies would show (``expected_max_sharpe``)::

        DSR = Phi( (SR_best - SR0) * sqrt(T - 1) / sqrt(1 - skew*SR_best + (kurt - 1)/4 * SR_best^2) )

    ``skew``/``kurtosis`` (non-excess) and ``n_obs`` describe the best strategy's bar returns (see
    ``sharpe_moments``); ``trials_sharpe_var`` is the variance of the per-bar Sharpe ratios across the trials.
    With ``n_trials == 1`` this is PSR against 0. Returns a probability in [0, 1], or nan for non-finite inputs,
    ``n_obs < 2`` or a non-positive variance term. Raises ValueError for ``n_trials < 1`` or a negative variance.
    """
    sr0 = expected_max_sharpe(n_trials, trials_sharpe_var)
    return probabilistic_sharpe(best_sharpe, sr0, n_obs, skew, kurtosis)


# ----------------------------------------------------------------------------------------------------------- PBO


def block_stats_from_returns(returns: np.ndarray, n_blocks: int) -> np.ndarray:
    """Per-block sufficient statistics [count, sum r, sum r^2] of a (T, N) returns matrix, shape (n_blocks, N, 3).

    Blocks are consecutive bars of as-equal-as-possible length (``np.array_split`` on the time axis). Non-finite
    returns are left out of all three sums (so ``count`` can differ between columns). A 1-D series is one column.
    """
    r = np.asarray(returns, dtype=float)
    if r.ndim == 1:
        r = r[:, None]
    if r.ndim != 2:
        raise ValueError(f"returns must be 1-D or 2-D (T, N), got shape {r.shape}")
    if not 1 <= n_blocks <= r.shape[0]:
        raise ValueError(f"n_blocks must be between 1 and the number of bars ({r.shape[0]}), got {n_blocks}")
    out = np.empty((n_blocks, r.shape[1], 3))
    for s, block in enumerate(np.array_split(r, n_blocks, axis=0)):
        finite = np.isfinite(block)
        clean = np.where(finite, block, 0.0)
        out[s, :, 0] = finite.sum(axis=0)
        out[s, :, 1] = clean.sum(axis=0)
        out[s, :, 2] = (clean * clean).sum(axis=0)
    return out


def pbo_from_returns(returns: np.ndarray, n_blocks: int = 16) -> float:
    """PBO by CSCV straight from a (T, N) returns matrix (tests and small sweeps); see ``pbo_cscv``."""
    return pbo_cscv(block_stats_from_returns(returns, n_blocks))


def pbo_cscv(block_stats: np.ndarray, n_blocks: int | None = None) -> float:
    """Probability of Backtest Overfitting by Combinatorially Symmetric Cross-Validation.

    Bailey, Borwein, Lopez de Prado & Zhu (2015), "The Probability of Backtest Overfitting", CSCV steps:
    the S time blocks are split every possible way into an in-sample (IS) half J and its out-of-sample (OS)
    complement (all C(S, S/2) splits); for each split c, n* = argmax of the IS Sharpe ratios, w_c = relative rank
    of n* among the OS Sharpe ratios = rank / (N + 1) (ranks 1..N ascending, ties averaged),
    lambda_c = ln(w_c / (1 - w_c)), and PBO = integral of the lambda distribution below 0, i.e. the fraction of
    splits with lambda_c <= 0 (the IS winner did no better than the OS median).

    ``block_stats`` has shape (S, N, 3): per block s and combination n the [count, sum r, sum r^2] of its bar
    returns (``block_stats_from_returns``). A half's Sharpe is mean / sample std (ddof=1) over the union of its
    blocks, computed from the summed statistics. ``n_blocks``, if given, merges consecutive stored blocks into that
    many groups (``np.array_split`` on the block axis), so a sweep can store fine blocks and choose S later;
    None uses S = block_stats.shape[0]. S must be even and N >= 2.

    Conventions (the paper leaves them open):
    * A combination whose returns in a half have zero variance (e.g. it never traded) or fewer than 2 observations
      gets Sharpe 0 there, so it ranks as "flat" instead of poisoning the ranking with nan/inf. Variance counts as
      zero when the sum of squared deviations is below 1e-10 of the sum of squares (cancellation noise).
    * IS ties go to the lowest column index; OS ties get the average rank, so a split where everything ties gives
      w = 1/2, lambda = 0, which counts as overfit.
    * lambda <= 0 is tested exactly as 2 * rank <= N + 1 (no logarithm needed, no rounding at w = 1/2).

    Implementation: each split is a pair (a, b) of a subset of the first S/2 blocks and a subset of the last S/2;
    sums over a split are L[a] + R[b] from precomputed subset sums (meet in the middle: one addition per statistic
    instead of S/2, and identical columns give bit-identical Sharpe ratios, so ties are exact). The splits come in
    complementary pairs (the OS half of one is the IS half of the other), so a compiled loop (``pbo_kernel``)
    computes each half's N Sharpe ratios once and uses them for both splits of its pair: never a splits x
    combinations matrix; the subset sums take ``pbo_kernel.pbo_work_bytes`` (12 KB per combination at S = 16). Time
    grows as C(S, S/2) / 2 * N: about 0.05 s per 1,000 combinations at S = 16 on one core; both compiled loops share
    the work among the CPU's cores.
    """
    stats = np.asarray(block_stats, dtype=float)
    if stats.ndim != 3 or stats.shape[2] != 3:
        raise ValueError(f"block_stats must have shape (S, N, 3), got {stats.shape}")
    if not np.all(np.isfinite(stats)):
        raise ValueError("block_stats must be finite (leave NaN returns out of the sums instead)")
    if n_blocks is not None and n_blocks != stats.shape[0]:
        if not 1 <= n_blocks <= stats.shape[0]:
            raise ValueError(f"n_blocks must be between 1 and {stats.shape[0]} (stored blocks), got {n_blocks}")
        stats = np.stack([g.sum(axis=0) for g in np.array_split(stats, n_blocks, axis=0)])
    n_s, n_cols = stats.shape[0], stats.shape[1]
    if n_s < 2 or n_s % 2:
        raise ValueError(f"the number of blocks S must be even and >= 2, got {n_s}")
    if n_cols < 2:
        raise ValueError(f"PBO needs at least 2 combinations, got {n_cols}")
    import numba

    from systrade.optimize.pbo_kernel import count_overfit_splits, subset_sums

    half = n_s // 2
    stats_t = np.ascontiguousarray(stats.transpose(0, 2, 1))  # (S, 3, N): columns contiguous
    threads = numba.get_num_threads()
    left, right = subset_sums(stats_t[:half], threads), subset_sums(stats_t[half:], threads)
    overfit = count_overfit_splits(left, right, _split_pairs(half), _ZERO_VAR_RTOL, threads)
    return float(overfit / math.comb(n_s, half))


def _split_pairs(half: int) -> np.ndarray:
    """The splits by complementary pairs: per pair the (left, right) subsets of one IS half (the one that holds
    block 0), then those of its complement (the IS half of the other split)."""
    is_left, is_right = _split_masks(half)
    full = (1 << half) - 1
    one = (is_left & 1) == 1
    return np.column_stack([is_left[one], is_right[one], full ^ is_left[one], full ^ is_right[one]])


def _split_masks(half: int) -> tuple[np.ndarray, np.ndarray]:
    """All C(2h, h) IS halves as (left subset, right subset) bitmasks over h blocks each, |left| + |right| = h."""
    by_size: list[list[int]] = [[] for _ in range(half + 1)]
    for m in range(1 << half):
        by_size[m.bit_count()].append(m)
    left: list[int] = []
    right: list[int] = []
    for k in range(half + 1):
        for a in by_size[k]:
            for b in by_size[half - k]:
                left.append(a)
                right.append(b)
    return np.asarray(left, dtype=np.intp), np.asarray(right, dtype=np.intp)
