"""Deflated Sharpe Ratio and PBO (CSCV) against values derived independently of the module.

Normal CDF/quantiles here come from math.erf and statistics.NormalDist (not scipy, which the module uses), and PBO
is checked against a plain-Python CSCV that works on the concatenated return arrays rather than block sums.
"""

from __future__ import annotations

import itertools
import math
from statistics import NormalDist

import numpy as np
import pytest

from systrade.optimize.overfitting import (
    block_stats_from_returns,
    deflated_sharpe,
    expected_max_sharpe,
    pbo_cscv,
    pbo_from_returns,
    probabilistic_sharpe,
    sharpe_moments,
)

EULER_GAMMA = 0.5772156649015329
INV_PHI = NormalDist().inv_cdf


def phi(z: float) -> float:
    """Standard normal CDF via erf."""
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


# ------------------------------------------------------------------------------------------------------ PSR / DSR


def test_dsr_hand_computed_example():
    # best SR 0.1 per bar, N = 10 trials, Var[SR_n] = 0.001, T = 1000 bars, skew -0.5, kurtosis 5:
    #   Phi^-1(1 - 1/10)        = Phi^-1(0.9)          = 1.2815515655
    #   Phi^-1(1 - 1/(10 e))    = Phi^-1(0.9632120559) = 1.7892417646
    #   E[max]/sd = (1 - 0.5772156649) * 1.2815515655 + 0.5772156649 * 1.7892417646 = 1.5745983013
    #   SR0  = sqrt(0.001) * 1.5745983013 = 0.0316227766 * 1.5745983013 = 0.0497931703
    #   num  = (0.1 - 0.0497931703) * sqrt(999) = 0.0502068297 * 31.6069613 = 1.5868853206
    #   den  = sqrt(1 - (-0.5)(0.1) + (5 - 1)/4 * 0.01) = sqrt(1.06) = 1.0295630141
    #   z    = 1.5868853206 / 1.0295630141 = 1.5413192771  ->  DSR = Phi(z) = 0.93838045
    sr0 = math.sqrt(0.001) * ((1 - EULER_GAMMA) * INV_PHI(0.9) + EULER_GAMMA * INV_PHI(1 - 1 / (10 * math.e)))
    assert sr0 == pytest.approx(0.0497931703, abs=1e-10)
    assert expected_max_sharpe(10, 0.001) == pytest.approx(sr0, rel=1e-12)
    z = (0.1 - sr0) * math.sqrt(999) / math.sqrt(1.06)
    assert z == pytest.approx(1.5413192771, abs=1e-9)
    dsr = deflated_sharpe(best_sharpe=0.1, n_trials=10, n_obs=1000, skew=-0.5, kurtosis=5.0, trials_sharpe_var=0.001)
    assert dsr == pytest.approx(0.93838045, abs=1e-8)
    assert dsr == pytest.approx(phi(z), abs=1e-13)


def test_dsr_paper_numerical_example():
    # Bailey & Lopez de Prado (2014) numerical example: annualised SR 2.5 (250 bars a year) -> 2.5/sqrt(250)
    # = 0.1581138830 per bar; 100 trials with annualised Var[SR] 0.5 -> 0.5/250 = 0.002 per bar; T = 1250; skew -3;
    # kurtosis 10.  E[max]/sd = 0.4227843351 * Phi^-1(0.99) + 0.5772156649 * Phi^-1(1 - 1/(100 e))
    # = 0.4227843351 * 2.3263478740 + 0.5772156649 * 2.6802104450 = 2.5306028932; SR0 = sqrt(0.002) * 2.5306 = 0.11317
    # z = (0.1581138830 - 0.1131720019) * sqrt(1249) / sqrt(1 + 3 * 0.1581138830 + 9/4 * 0.025)
    #   = 1.5882997444 / 1.2371708245 = 1.2838160365 -> DSR = 0.9004 (the paper's value).
    best = 2.5 / math.sqrt(250)
    assert expected_max_sharpe(100, 0.002) == pytest.approx(0.1131720019, abs=1e-9)
    dsr = deflated_sharpe(best, n_trials=100, n_obs=1250, skew=-3.0, kurtosis=10.0, trials_sharpe_var=0.002)
    assert dsr == pytest.approx(phi(1.2838160365), abs=1e-9)
    assert round(dsr, 4) == 0.9004


def test_psr_hand_computed_example():
    # PSR(0) for SR 0.1, T 1000, skew -0.5, kurt 5: z = 0.1 * sqrt(999) / sqrt(1.06) = 3.069958; Phi(z) = 0.998929489
    assert probabilistic_sharpe(0.1, 0.0, 1000, -0.5, 5.0) == pytest.approx(0.99892948918, abs=1e-10)
    # Normal returns (skew 0, kurt 3): the variance term is Lo's 1 + SR^2 / 2. SR 0.05 vs benchmark 0.02, T = 401:
    # z = 0.03 * 20 / sqrt(1.00125) = 0.599625...
    assert probabilistic_sharpe(0.05, 0.02, 401, 0.0, 3.0) == pytest.approx(phi(0.6 / math.sqrt(1.00125)), abs=1e-13)


def test_dsr_with_one_trial_is_psr_against_zero():
    for sr, t, skew, kurt, var in [(0.1, 1000, -0.5, 5.0, 0.001), (-0.03, 50, 0.8, 7.0, 0.3), (0.0, 2, 0.0, 3.0, 0.0)]:
        assert expected_max_sharpe(1, var) == 0.0
        assert deflated_sharpe(sr, 1, t, skew, kurt, var) == probabilistic_sharpe(sr, 0.0, t, skew, kurt)


def test_dsr_decreases_with_more_trials():
    values = [deflated_sharpe(0.1, n, 500, -0.3, 4.0, 0.0005) for n in (1, 2, 3, 5, 10, 30, 100, 1000, 10**4, 10**6)]
    assert all(a > b for a, b in itertools.pairwise(values)), values
    assert values[0] > 0.95 and values[-1] < 0.5


def test_dsr_decreases_with_more_dispersed_trials():
    values = [deflated_sharpe(0.1, 50, 500, -0.3, 4.0, v) for v in (0.0, 1e-5, 1e-4, 5e-4, 1e-3, 3e-3, 1e-2)]
    assert all(a > b for a, b in itertools.pairwise(values)), values
    assert values[0] == probabilistic_sharpe(0.1, 0.0, 500, -0.3, 4.0)  # no dispersion, no deflation


@pytest.mark.parametrize(("n_trials", "reps"), [(10, 2000), (100, 400)])
def test_expected_max_sharpe_matches_monte_carlo(n_trials: int, reps: int):
    # E[max of N Sharpe estimates] of zero-edge strategies (iid normal bar returns, T = 100), estimated by simulation.
    t = 100
    rng = np.random.default_rng(20140501 + n_trials)
    r = rng.standard_normal((reps, n_trials, t))
    sr = r.mean(axis=2) / r.std(axis=2, ddof=1)
    mc_max = sr.max(axis=1).mean()
    formula = expected_max_sharpe(n_trials, float(sr.var()))
    assert formula == pytest.approx(mc_max, rel=0.05)


@pytest.mark.parametrize("n_trials", [10, 100, 1000])
def test_expected_max_factor_close_to_exact_normal_order_statistic(n_trials: int):
    # Exact E[max of N standard normals] = integral of x * N phi(x) Phi(x)^(N-1) dx (trapezoid on a fine grid);
    # the DSR approximation is within a few percent of it (about 2% at N = 10, <1% at N = 100).
    x = np.linspace(-8, 10, 36_001)
    pdf = np.exp(-0.5 * x**2) / math.sqrt(2 * math.pi)
    cdf = np.array([phi(v) for v in x])
    exact = float(np.trapezoid(x * n_trials * pdf * cdf ** (n_trials - 1), x))
    assert expected_max_sharpe(n_trials, 1.0) == pytest.approx(exact, rel=0.03)


def test_psr_dsr_invalid_inputs():
    assert math.isnan(probabilistic_sharpe(math.nan, 0.0, 100, 0.0, 3.0))
    assert math.isnan(probabilistic_sharpe(0.1, math.inf, 100, 0.0, 3.0))
    assert math.isnan(probabilistic_sharpe(0.1, 0.0, 1, 0.0, 3.0))
    assert math.isnan(deflated_sharpe(0.1, 10, 100, math.nan, 3.0, 0.001))
    assert math.isnan(deflated_sharpe(0.1, 10, 100, 0.0, math.inf, 0.001))
    assert math.isnan(deflated_sharpe(0.1, 10, 100, 0.0, 3.0, math.nan))
    # 1 - skew*SR + (kurt-1)/4*SR^2 = 1 - 20*0.1 + 0.5*0.01 = -0.995 <= 0 (impossible moments) -> nan
    assert math.isnan(deflated_sharpe(0.1, 10, 100, 20.0, 3.0, 0.001))
    with pytest.raises(ValueError):
        deflated_sharpe(0.1, 0, 100, 0.0, 3.0, 0.001)
    with pytest.raises(ValueError):
        deflated_sharpe(0.1, 10, 100, 0.0, 3.0, -0.001)


def test_dsr_is_a_probability():
    for sr in (-5.0, -0.2, 0.0, 0.05, 0.3, 5.0):
        for n in (1, 7, 10_000):
            p = deflated_sharpe(sr, n, 250, 0.0, 3.0, 0.004)
            assert 0.0 <= p <= 1.0


def test_sharpe_moments_hand_example():
    # r = 0, 0, 0, 4 (plus NaNs, dropped): mean 1, deviations -1, -1, -1, 3
    # m2 = 12/4 = 3, m3 = (-3 + 27)/4 = 6, m4 = (3 + 81)/4 = 21; sample std = sqrt(12/3) = 2
    # Sharpe = 1/2, skew = 6 / 3^1.5 = 2/sqrt(3), kurtosis = 21 / 9 = 7/3
    sr, skew, kurt, n = sharpe_moments(np.array([np.nan, 0.0, 0.0, np.nan, 0.0, 4.0]))
    assert n == 4
    assert sr == pytest.approx(0.5, abs=1e-15)
    assert skew == pytest.approx(2 / math.sqrt(3), abs=1e-14)
    assert kurt == pytest.approx(7 / 3, abs=1e-14)


def test_sharpe_moments_undefined_cases():
    assert all(math.isnan(v) for v in sharpe_moments(np.array([0.01]))[:3])
    assert sharpe_moments(np.array([0.01]))[3] == 1
    assert all(math.isnan(v) for v in sharpe_moments(np.full(10, 0.002))[:3])


def test_sharpe_moments_of_normal_sample():
    r = np.random.default_rng(7).normal(0.01, 0.02, 200_000)
    sr, skew, kurt, n = sharpe_moments(r)
    assert n == 200_000
    assert sr == pytest.approx(0.5, abs=0.01)
    assert skew == pytest.approx(0.0, abs=0.03)
    assert kurt == pytest.approx(3.0, abs=0.05)


# ------------------------------------------------------------------------------------------------------------- PBO


def _sharpe(x: np.ndarray) -> float:
    """Per-bar Sharpe of one array (ddof=1), 0 when undefined (the module's documented convention)."""
    x = x[np.isfinite(x)]
    if x.size < 2:
        return 0.0
    sd = float(np.std(x, ddof=1))
    return float(np.mean(x)) / sd if sd > 0 else 0.0


def brute_force_pbo(returns: np.ndarray, n_blocks: int) -> float:
    """CSCV exactly as the paper lists it, with plain loops over itertools.combinations and concatenated returns."""
    t, n = returns.shape
    blocks = np.array_split(returns, n_blocks, axis=0)
    splits = list(itertools.combinations(range(n_blocks), n_blocks // 2))
    overfit = 0
    for is_blocks in splits:
        os_blocks = [s for s in range(n_blocks) if s not in is_blocks]
        is_r = np.concatenate([blocks[s] for s in is_blocks])
        os_r = np.concatenate([blocks[s] for s in os_blocks])
        is_sr = [_sharpe(np.ascontiguousarray(is_r[:, j])) for j in range(n)]
        os_sr = [_sharpe(np.ascontiguousarray(os_r[:, j])) for j in range(n)]
        best = max(range(n), key=lambda j: is_sr[j])  # first index among IS ties
        below = sum(1 for v in os_sr if v < os_sr[best])
        equal = sum(1 for v in os_sr if v == os_sr[best])
        rank = below + (equal + 1) / 2  # average of the tied ranks below+1 .. below+equal
        w = rank / (n + 1)
        lam = math.log(w / (1 - w))
        overfit += lam <= 0
    return overfit / len(splits)


# The NumPy implementation pbo_cscv had before it was compiled (two chunked passes over splits x columns), kept
# verbatim as the reference the compiled one must equal exactly (same splits, same sums, same ties).
_REF_WORK_ELEMENTS = 1 << 21
_REF_ZERO_VAR_RTOL = 1e-10


def reference_pbo_cscv(block_stats: np.ndarray) -> float:
    """PBO by CSCV as the NumPy code computed it: pass 1 IS winners, pass 2 OS ranks, chunked."""
    stats = np.asarray(block_stats, dtype=float)
    if stats.ndim != 3 or stats.shape[2] != 3:
        raise ValueError(f"block_stats must have shape (S, N, 3), got {stats.shape}")
    if not np.all(np.isfinite(stats)):
        raise ValueError("block_stats must be finite (leave NaN returns out of the sums instead)")
    n_s, n_cols = stats.shape[0], stats.shape[1]
    if n_s < 2 or n_s % 2:
        raise ValueError(f"the number of blocks S must be even and >= 2, got {n_s}")
    if n_cols < 2:
        raise ValueError(f"PBO needs at least 2 combinations, got {n_cols}")

    half = n_s // 2
    is_left, is_right = _ref_split_masks(half)  # subset bitmasks of the IS half; the OS half is the complement
    full = (1 << half) - 1
    os_left, os_right = full ^ is_left, full ^ is_right
    n_splits = is_left.size
    # (S, 3, N) so that gathered subset sums give contiguous (splits, cols) planes per statistic.
    stats_t = np.ascontiguousarray(stats.transpose(0, 2, 1))

    col_chunk = max(1, min(n_cols, _REF_WORK_ELEMENTS // (3 << half)))
    split_chunk = max(1, _REF_WORK_ELEMENTS // (3 * col_chunk))

    # Pass 1: IS winner n* of every split (running max over column chunks; strict '>' keeps the lowest index).
    best_is = np.full(n_splits, -np.inf)
    n_star = np.zeros(n_splits, dtype=np.intp)
    for c0 in range(0, n_cols, col_chunk):
        cols = stats_t[:, :, c0 : c0 + col_chunk]
        left, right = _ref_subset_sums(cols[:half]), _ref_subset_sums(cols[half:])
        for k0 in range(0, n_splits, split_chunk):
            sl = slice(k0, k0 + split_chunk)
            sr = _ref_sharpe_from_sums(_ref_split_sums(left, right, is_left[sl], is_right[sl]))
            arg = np.argmax(sr, axis=1)
            val = sr[np.arange(sr.shape[0]), arg]
            better = val > best_is[sl]
            best_is[sl] = np.where(better, val, best_is[sl])
            n_star[sl] = np.where(better, arg + c0, n_star[sl])

    # OS Sharpe of each split's winner, computed with exactly the same operations as in pass 2 (bit-identical).
    winners, w_idx = np.unique(n_star, return_inverse=True)
    os_star = np.empty(n_splits)
    for w0 in range(0, winners.size, col_chunk):
        cols = stats_t[:, :, winners[w0 : w0 + col_chunk]]
        left, right = _ref_subset_sums(cols[:half]), _ref_subset_sums(cols[half:])
        mine = np.flatnonzero((w_idx >= w0) & (w_idx < w0 + col_chunk))
        for k0 in range(0, mine.size, split_chunk):
            sp = mine[k0 : k0 + split_chunk]
            sums = left[os_left[sp], :, w_idx[sp] - w0] + right[os_right[sp], :, w_idx[sp] - w0]  # (k, 3)
            os_star[sp] = _ref_sharpe_from_sums(sums[:, :, None])[:, 0]

    # Pass 2: OS rank of the winner = #(OS Sharpe below it) + (#ties including itself + 1) / 2.
    below = np.zeros(n_splits, dtype=np.int64)
    ties = np.zeros(n_splits, dtype=np.int64)
    for c0 in range(0, n_cols, col_chunk):
        cols = stats_t[:, :, c0 : c0 + col_chunk]
        left, right = _ref_subset_sums(cols[:half]), _ref_subset_sums(cols[half:])
        for k0 in range(0, n_splits, split_chunk):
            sl = slice(k0, k0 + split_chunk)
            sr = _ref_sharpe_from_sums(_ref_split_sums(left, right, os_left[sl], os_right[sl]))
            ref = os_star[sl, None]
            below[sl] += np.count_nonzero(sr < ref, axis=1)
            ties[sl] += np.count_nonzero(sr == ref, axis=1)

    # w = rank / (N + 1) <= 1/2  <=>  2 * rank = 2 * below + ties + 1 <= N + 1  (integers, exact).
    overfit = 2 * below + ties + 1 <= n_cols + 1
    return float(np.count_nonzero(overfit) / n_splits)


def _ref_split_masks(half: int) -> tuple[np.ndarray, np.ndarray]:
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


def _ref_subset_sums(stats: np.ndarray) -> np.ndarray:
    """Sums of ``stats`` (h, ...) over every subset of its h blocks, indexed by bitmask: shape (2^h, ...).

    Each entry is built as sum(mask without its lowest block) + lowest block, the same elementwise operations for
    every column, so identical columns get bit-identical sums.
    """
    h = stats.shape[0]
    out = np.zeros((1 << h, *stats.shape[1:]))
    for m in range(1, 1 << h):
        low = m & -m
        np.add(out[m ^ low], stats[low.bit_length() - 1], out=out[m])
    return out


def _ref_split_sums(left: np.ndarray, right: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Sums over the splits (a, b): left[a] + right[b], shape (len(a), 3, cols)."""
    out = np.take(left, a, axis=0)
    np.add(out, np.take(right, b, axis=0), out=out)
    return out


def _ref_sharpe_from_sums(sums: np.ndarray) -> np.ndarray:
    """Per-bar Sharpe (ddof=1) from [count, sum, sum of squares] on axis -2; 0 where undefined (see pbo_cscv)."""
    n, s, q = sums[..., 0, :], sums[..., 1, :], sums[..., 2, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = s / n
        ssd = s * mean
        np.subtract(q, ssd, out=ssd)  # sum of squared deviations
        ok = ssd > _REF_ZERO_VAR_RTOL * q
        ok &= n >= 2
        np.divide(ssd, n - 1.0, out=ssd)
        np.sqrt(ssd, out=ssd)
        np.divide(mean, ssd, out=mean)
    np.copyto(mean, 0.0, where=~ok)
    return mean


def _tricky_returns(seed: int, t: int = 203) -> np.ndarray:
    """Small grid with different drifts/vols, a duplicated column, a never-trading column and NaN warm-up bars."""
    rng = np.random.default_rng(seed)
    base = rng.normal(rng.normal(0, 0.05, 6), rng.uniform(0.5, 2.0, 6), size=(t, 6))
    r = np.column_stack([base, base[:, 0], np.zeros(t), base[:, 3]])  # cols 6 and 8 duplicate 0 and 3
    r[:10, 2] = np.nan
    r[:10, 8] = np.nan  # duplicate of col 3 except for warm-up: no longer identical
    return r


@pytest.mark.parametrize("n_blocks", [2, 4, 6, 8])
@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_pbo_equals_brute_force_cscv(n_blocks: int, seed: int):
    r = _tricky_returns(seed)
    assert pbo_from_returns(r, n_blocks) == brute_force_pbo(r, n_blocks)


@pytest.mark.parametrize("seed", [10, 11, 12])
def test_pbo_equals_brute_force_on_noise(seed: int):
    r = np.random.default_rng(seed).standard_normal((157, 12))
    expected = brute_force_pbo(r, 8)
    assert pbo_from_returns(r, 8) == expected
    assert 0.0 <= expected <= 1.0


def test_pbo_brute_force_sees_ties():
    # All columns identical: every split ties everywhere -> w = 1/2, lambda = 0 -> counted as overfit.
    r = np.tile(np.random.default_rng(5).standard_normal((60, 1)), (1, 4))
    assert brute_force_pbo(r, 4) == 1.0
    assert pbo_from_returns(r, 4) == 1.0


def test_pbo_in_sample_ties_go_to_the_first_column():
    # Blocks 0-1 are flat for columns 3 and 4 (Sharpe 0 there, the IS maximum when IS = {0, 1}, since columns 0-2
    # lose steadily); out of sample column "late loser" loses worse than everyone, "flat" stays at 0. So which of the
    # two tied IS winners is taken decides that split: the first column, as np.argmax / max() do.
    rng = np.random.default_rng(6)
    t = 240
    losers = rng.normal(-0.5, 1.0, size=(t, 3))
    late_loser = np.concatenate([np.zeros(t // 2), rng.normal(-1.0, 1.0, t // 2)])
    flat = np.zeros(t)
    first_loser = np.column_stack([losers, late_loser, flat])
    first_flat = np.column_stack([losers, flat, late_loser])
    assert pbo_from_returns(first_loser, 4) == brute_force_pbo(first_loser, 4)
    assert pbo_from_returns(first_flat, 4) == brute_force_pbo(first_flat, 4)
    assert brute_force_pbo(first_loser, 4) != brute_force_pbo(first_flat, 4)


def test_pbo_equals_the_numpy_reference_with_duplicates_far_apart():
    r = _tricky_returns(3, t=400)
    r = np.column_stack([r, r[:, ::-1], r[:, 0]])  # 19 columns, duplicates far apart
    expected = pbo_from_returns(r, 8)
    assert expected == reference_pbo_cscv(block_stats_from_returns(r, 8)) == brute_force_pbo(r, 8)


@pytest.mark.parametrize("seed", range(6))
def test_pbo_equals_the_numpy_reference_on_random_sweeps(seed: int):
    # Random sweeps of 16 blocks: up to 1,500 columns, drifts and
    # volatilities that make near ties, duplicated and never-trading columns, warm-up NaNs: PBO is exactly equal.
    rng = np.random.default_rng(seed)
    n_cols = int(rng.integers(2, 1500))
    t = int(rng.integers(17, 600))
    r = rng.normal(rng.normal(0, 0.03, n_cols), rng.uniform(0.5, 2.0, n_cols), size=(t, n_cols))
    if n_cols > 4:
        r[:, 1] = r[:, 0]
        r[:, 3] = 0.0
        r[: t // 4, -1] = np.nan
    stats = block_stats_from_returns(r, 16)
    assert pbo_cscv(stats) == reference_pbo_cscv(stats)


def test_pbo_of_pure_noise_is_near_one_half():
    # For iid noise each split's IS and OS halves are independent, so the winner's OS rank is uniform and
    # E[PBO] = 1/2 exactly; one grid's PBO is widely spread though (sd ~0.16 at T=2000, N=50, S=16: the 12,870
    # splits share the same data), so average a few seeded grids (sd of the mean ~0.05).
    values = [pbo_from_returns(np.random.default_rng(100 + s).standard_normal((2000, 50)), 16) for s in range(10)]
    assert 0.35 < float(np.mean(values)) < 0.65, values
    assert all(0.0 <= v <= 1.0 for v in values)


def test_pbo_with_a_genuine_edge_is_near_zero():
    rng = np.random.default_rng(42)
    r = rng.standard_normal((2000, 50))
    r[:, 17] += 0.15  # true per-bar Sharpe 0.15 on every block; noise columns' best half-sample Sharpe is ~0.08
    sr = r.mean(axis=0) / r.std(axis=0, ddof=1)
    assert int(np.argmax(sr)) == 17
    for is_blocks in [range(0, 8), range(8, 16), range(0, 16, 2)]:  # a few IS halves: column 17 wins each
        idx = np.concatenate([np.array_split(np.arange(2000), 16)[s] for s in is_blocks])
        half = r[idx]
        assert int(np.argmax(half.mean(axis=0) / half.std(axis=0, ddof=1))) == 17
    assert pbo_from_returns(r, 16) < 0.1


def test_pbo_when_is_and_os_are_anticorrelated_is_near_one():
    # Demeaned noise: each column's IS sum is minus its OS sum, so the IS winner is (nearly) the OS loser.
    r = np.random.default_rng(9).standard_normal((800, 20))
    r -= r.mean(axis=0)
    assert pbo_from_returns(r, 8) > 0.9


def test_pbo_zero_variance_column_gets_sharpe_zero():
    rng = np.random.default_rng(8)
    r = rng.standard_normal((300, 6)) * 0.01
    flat = r.copy()
    flat[:, 2] = 0.0  # never trades
    const = r.copy()
    const[:, 2] = 0.001  # constant positive return: std 0 (up to rounding), so Sharpe 0 rather than ~+inf
    assert pbo_from_returns(const, 6) == pbo_from_returns(flat, 6) == brute_force_pbo(flat, 6)


def test_block_stats_equal_direct_sums():
    rng = np.random.default_rng(1)
    r = rng.normal(0.001, 0.02, size=(103, 4))
    r[:7, 1] = np.nan
    r[50, 3] = np.inf
    stats = block_stats_from_returns(r, 5)
    assert stats.shape == (5, 4, 3)
    bounds = [0, 21, 42, 63, 83, 103]  # 103 bars in 5 blocks: 21, 21, 21, 20, 20 (array_split)
    for s in range(5):
        for j in range(4):
            x = [v for v in r[bounds[s] : bounds[s + 1], j] if math.isfinite(v)]
            assert stats[s, j, 0] == len(x)
            assert stats[s, j, 1] == pytest.approx(math.fsum(x), rel=1e-12, abs=1e-15)
            assert stats[s, j, 2] == pytest.approx(math.fsum(v * v for v in x), rel=1e-12)
    assert stats[0, 1, 0] == 14 and stats[2, 3, 0] == 20


def test_pbo_cscv_merges_stored_blocks():
    r = np.random.default_rng(4).standard_normal((320, 9))
    fine = block_stats_from_returns(r, 16)  # 20-bar blocks; merged pairwise = the 40-bar blocks of S = 8
    assert np.allclose(fine.reshape(8, 2, 9, 3).sum(axis=1), block_stats_from_returns(r, 8))
    assert pbo_cscv(fine, n_blocks=8) == pbo_from_returns(r, 8)
    assert pbo_cscv(fine) == pbo_cscv(fine, n_blocks=16) == pbo_from_returns(r, 16)


def test_pbo_cscv_rejects_bad_input():
    stats = block_stats_from_returns(np.random.default_rng(0).standard_normal((100, 5)), 8)
    with pytest.raises(ValueError):
        pbo_cscv(stats[:7])  # odd S
    with pytest.raises(ValueError):
        pbo_cscv(stats[:, :1])  # one combination
    with pytest.raises(ValueError):
        pbo_cscv(stats[..., :2])  # not (S, N, 3)
    bad = stats.copy()
    bad[0, 0, 1] = np.nan
    with pytest.raises(ValueError):
        pbo_cscv(bad)
    with pytest.raises(ValueError):
        block_stats_from_returns(np.zeros((5, 2)), 6)
