"""The sweep's split passes against the fused loop they replaced: every statistic and block sum bit for bit.

Random markets, sparse random signals and random rules (sizes, lots, fees, slippage, stops, short sides), random
windows and PBO block counts go through ``fused_kernel_reference`` (the one-loop kernel whose results were
checked equal to the reference revision's on the billion bar-combination benchmark) and through
``sweep_kernel.Simulator``: one combination alone with its equity and trade PnLs, and several pushed together,
so the four lanes of ``moments_pass`` are checked for independence (a lane's figures must not depend on its
neighbours, nor on how many lanes were filled).
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from fused_kernel_reference import run_fused
from test_engine_reference import make_market

from systrade.optimize import sweep_kernel as kernel
from systrade.sim.rules import PositionRules, params_vector, resolve_signals


def identical(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal bit for bit: same shape, same values, NaN where NaN, and the same sign of zero."""
    return (a.shape == b.shape and np.array_equal(a, b, equal_nan=True)
            and np.array_equal(np.signbit(a), np.signbit(b)))


def random_case(seed: int, bars: tuple[int, int] = (1, 300)):
    rng = random.Random(seed)
    n = rng.randint(*bars)
    prices = tuple(np.asarray(v, dtype=float) for v in make_market(rng, n, rng.choice([0.002, 0.01, 0.03, 0.08]),
                                                                    cents=rng.random() < 0.5))
    density = rng.choice([0.01, 0.05, 0.2])

    def flags():
        return np.array([rng.random() < density for _ in range(n)])

    def signals():
        return {"entries": flags(), "exits": flags() if rng.random() < 0.8 else None,
                "short_entries": flags() if rng.random() < 0.4 else None,
                "short_exits": flags() if rng.random() < 0.3 else None}

    direction = rng.choice(["long", "short", "both"])
    size, size_type = rng.choice([("all", "percent"), (500.0, "value"), (0.7, "amount")]
                                 + ([(40.0, "percent")] if direction != "both" else []))
    rules = PositionRules(direction=direction, fees=rng.choice([0.0, 0.001, 0.01]),
                          slippage=rng.choice([0.0, 0.002]), granularity=rng.choice([None, 1.0, 0.001]),
                          stop_loss=rng.choice([None, 0.01, 0.05]), take_profit=rng.choice([None, 0.02, 0.1]),
                          size=size, size_type=size_type)
    start = rng.randint(0, n - 1)
    stop = rng.randint(start, n)
    combos = [resolve_signals(signals(), rules.direction) for _ in range(rng.randint(1, 9))]
    return prices, combos, start, stop, rng.choice([10_000.0, 1_000.0]), params_vector(rules), \
        rng.choice([0, 1, 4, 16])


@pytest.mark.parametrize(("seed", "bars"), [*((seed, (1, 300)) for seed in range(0, 400, 40)),
                                             (1000, (2_000, 6_000))])
def test_split_passes_equal_the_fused_loop_bit_for_bit(seed: int, bars: tuple[int, int]) -> None:
    """Short series, and a few thousand bars (many segments and blocks)."""
    for case_seed in range(seed, seed + 40):
        prices, combos, start, stop, cash, params, n_blocks = random_case(case_seed, bars)
        expected = [run_fused(*prices, s, start, stop, cash, params, n_blocks) for s in combos]
        # alone, with the equity curve and the closed trades' PnL
        for s, (stats, blocks, equity, pnls) in zip(combos, expected, strict=True):
            got = kernel.run_combo(*prices, s, start, stop, cash, params, n_blocks, detail=True)
            for name, a, b in zip(("stats", "blocks", "equity", "pnls"), got, (stats, blocks, equity, pnls),
                                  strict=True):
                assert identical(a, b), f"case {case_seed}: {name} differs alone\n{a}\n{b}"
        # together: lanes filled four at a time, the rest completed by finish()
        simulator = kernel.Simulator(*prices, start, stop, cash, params, n_blocks)
        stats = np.full((len(combos), kernel.N_STATS), -1.0)
        blocks = np.full((len(combos), simulator.n_blocks, 3), -1.0)
        done = []
        for k, s in enumerate(combos):
            done += simulator.push(k, s, stats[k], blocks[k])
        done += simulator.finish()
        assert done == list(range(len(combos)))
        for k, (want_stats, want_blocks, _, _) in enumerate(expected):
            assert identical(stats[k], want_stats), f"case {case_seed}: combination {k} of {len(combos)}"
            assert identical(blocks[k], want_blocks), f"case {case_seed}: blocks of combination {k}"


def test_the_fill_pass_skips_quiet_bars_but_not_stops() -> None:
    """A position with a stop is watched on every bar, not only on signal bars: the stop fills on a bar with no
    signal (the quiet-bar skip must not jump over it)."""
    n = 50
    close = np.full(n, 100.0)
    close[30:] = 80.0  # a 20% fall long after the entry
    open_, high, low = close.copy(), close + 0.5, close - 0.5
    open_[30] = 80.0
    entries = np.zeros(n, dtype=bool)
    entries[5] = True
    none = np.zeros(n, dtype=bool)
    resolved = {"entries": entries, "exits": none, "short_entries": none, "short_exits": none}
    params = params_vector(PositionRules(stop_loss=0.1))
    stats, _, equity, pnls = kernel.run_combo(open_, high, low, close, resolved, 0, n, 10_000.0, params, 0,
                                              detail=True)
    assert stats[kernel.S_CLOSED] == 1 and pnls[0] < 0  # stopped out, at a loss
    assert equity[-1] == equity[31]  # flat after the stop
    assert equity[29] == pytest.approx(10_000.0)
