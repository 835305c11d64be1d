"""The fused sweep kernel against a backtest: same equity, same metrics, same return blocks.

Random markets, sparse random signals and random rules (sizes, lots, minimums, fees per side, stops, ticks)
go through ``run_backtest`` (what ``systrade backtest`` runs: the fill model, then vectorbt's reports and
``metrics.py``) and through the kernel; every metric must agree to 1e-9, the equity
curve to 1e-12 and the PBO block sums to those of ``overfitting.block_stats_from_returns``. Also: the NumPy
compiled ``crossed_above``/``crossed_below``/``crossings`` equal the pandas expressions they replace.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st
from test_engine_reference import make_market

from systrade import Signals, Strategy, crossed_above, crossed_below, crossings
from systrade.backtest.metrics import bar_returns
from systrade.backtest.run import run_backtest
from systrade.data.load import Candles
from systrade.optimize import sweep_kernel as kernel
from systrade.optimize.overfitting import block_stats_from_returns
from systrade.optimize.sweep import COLUMNS
from systrade.sim.rules import PositionRules, params_vector, resolve_signals

SIGNAL_NAMES = ("entries", "exits", "short_entries", "short_exits")


def same(a: float, b: float) -> bool:
    if isinstance(a, float) and isinstance(b, float) and (math.isnan(a) or math.isnan(b)):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def prices(frame: pd.DataFrame) -> list[np.ndarray]:
    return [frame[c].to_numpy(dtype=float) for c in ("open", "high", "low", "close")]


def fixed_signals_strategy(signals: dict[str, np.ndarray | None]) -> Strategy:
    class Fixed(Strategy):
        def signals(self, data):
            return Signals(**{k: None if v is None else pd.Series(v, index=data.index) for k, v in signals.items()})

    return Fixed()


@st.composite
def cases(draw):
    n = draw(st.integers(3, 260))
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    open_, high, low, close = make_market(rng, n, draw(st.sampled_from([0.002, 0.01, 0.03, 0.08])),
                                          cents=draw(st.booleans()))
    density = draw(st.sampled_from([0.03, 0.1, 0.3]))

    def flags():
        return np.array([rng.random() < density for _ in range(n)])

    signals: dict[str, np.ndarray | None] = {"entries": flags(), "exits": flags(), "short_entries": None,
                                             "short_exits": None}
    if draw(st.integers(0, 3)) == 0:
        signals["exits"] = None
    if draw(st.booleans()):
        signals["short_entries"] = flags()
        signals["short_exits"] = flags() if draw(st.booleans()) else None
    direction = draw(st.sampled_from(["long", "short", "both"]))
    cash = draw(st.sampled_from([10_000.0, 1_000.0]) | st.floats(100.0, 1e6))
    kind = draw(st.sampled_from(["all", "amount", "value"] + (["percent"] if direction != "both" else [])))
    size = {"all": "all", "percent": draw(st.floats(1.0, 100.0)),
            "amount": draw(st.floats(0.05, 1.5)) * cash / open_[0], "value": draw(st.floats(0.05, 1.5)) * cash}[kind]
    rules = PositionRules(direction=direction, size=size, size_type="percent" if kind == "all" else kind,
                          fees=draw(st.just(0.0) | st.floats(0.0, 0.01)),
                          sell_fees=draw(st.none() | st.floats(0.0, 0.01)),
                          slippage=draw(st.just(0.0) | st.floats(0.0, 0.01)),
                          granularity=draw(st.sampled_from([None, 1.0, 0.001])),
                          min_cost=draw(st.sampled_from([None, 0.05 * cash])),
                          stop_loss=draw(st.none() | st.floats(0.005, 0.3)),
                          take_profit=draw(st.none() | st.floats(0.005, 1.0)),
                          tick=draw(st.sampled_from([None, 0.01])))
    timeframe = draw(st.sampled_from(["1h", "1d"]))
    note(f"n={n} rules={rules} cash={cash} timeframe={timeframe}")
    return open_, high, low, close, signals, rules, cash, timeframe


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_kernel_equals_the_vectorbt_engine_on_every_metric(case) -> None:
    open_, high, low, close, signals, rules, cash, timeframe = case
    n = len(close)
    index = pd.date_range("2024-01-01", periods=n, freq={"1h": "1h", "1d": "1D"}[timeframe], tz="UTC")
    frame = pd.DataFrame({"open": open_, "high": high, "low": low, "close": close, "volume": 1.0}, index=index)
    run = run_backtest(fixed_signals_strategy(signals), [Candles("X", timeframe, frame, "test", False)], rules, cash,
                       year_days=252.0 if timeframe == "1d" else 365.0)
    expected = run.results[0].metrics

    resolved = resolve_signals(signals, rules.direction)
    stats, blocks, equity, pnls = kernel.run_combo(*prices(frame), resolved, 0, n, cash, params_vector(rules), 16,
                                                   detail=True)
    got = kernel.metrics_from_stats(stats, 3600.0 if timeframe == "1h" else 86400.0,
                                    252.0 if timeframe == "1d" else 365.0)
    assert set(got) == set(COLUMNS)
    for name in COLUMNS:
        assert same(float(got[name]), float(expected[name])), f"{name}: kernel {got[name]} engine {expected[name]}"
    engine_equity = run.results[0].equity.to_numpy()
    np.testing.assert_allclose(equity, engine_equity, rtol=1e-12, atol=0)
    trades = run.results[0].trades
    np.testing.assert_allclose(pnls, trades.loc[trades["status"] == "closed", "pnl"].to_numpy(dtype=float),
                               rtol=1e-9, atol=1e-9)
    returns = bar_returns(engine_equity)
    if len(returns) >= 16:
        np.testing.assert_allclose(blocks, block_stats_from_returns(returns, 16)[:, 0, :], rtol=1e-9, atol=1e-15)
        event("blocks compared")
    else:
        assert blocks.shape == (0, 3)
    event(f"trades: {'none' if not expected['total_trades'] else 'some'}")
    if any(t == "short" for t in trades["direction"]):
        event("has a short trade")


def test_kernel_simulates_a_slice_like_the_engine_on_that_slice() -> None:
    """Bars [start, stop) of a longer signal array behave as a backtest of just those bars."""
    rng = random.Random(7)
    open_, high, low, close = make_market(rng, 300, 0.02, cents=False)
    index = pd.date_range("2024-01-01", periods=300, freq="1h", tz="UTC")
    frame = pd.DataFrame({"open": open_, "high": high, "low": low, "close": close, "volume": 1.0}, index=index)
    signals = {"entries": np.array([rng.random() < 0.1 for _ in range(300)]),
               "exits": np.array([rng.random() < 0.1 for _ in range(300)]), "short_entries": None,
               "short_exits": None}
    rules = PositionRules(direction="both", fees=0.001, slippage=0.0005, stop_loss=0.02, granularity=0.01)
    part = frame.iloc[120:260]
    sliced = {k: None if v is None else v[120:260] for k, v in signals.items()}
    run = run_backtest(fixed_signals_strategy(sliced), [Candles("X", "1h", part, "t", False)], rules, 5000.0)
    stats, _, equity, _ = kernel.run_combo(*prices(frame), resolve_signals(signals, "both"), 120, 260, 5000.0,
                                           params_vector(rules), 0, detail=True)
    np.testing.assert_allclose(equity, run.results[0].equity.to_numpy(), rtol=1e-12)
    got = kernel.metrics_from_stats(stats, 3600.0, 365.0)
    assert got["total_trades"] == run.results[0].metrics["total_trades"] > 0


def test_block_edges_split_like_numpy_array_split() -> None:
    for n, s in ((16, 16), (17, 16), (100, 16), (1001, 7)):
        parts = np.array_split(np.arange(n), s)
        edges = kernel.block_edges(n, s)
        assert [len(p) for p in parts] == list(np.diff(edges))
    assert len(kernel.block_edges(10, 16)) == 1  # fewer returns than blocks: no blocks


@st.composite
def series_pairs(draw):
    n = draw(st.integers(0, 40))
    values = st.sampled_from([np.nan, 0.0, 1.0, 2.0, -1.0]) | st.floats(-5, 5, allow_nan=False)
    a = pd.Series(draw(st.lists(values, min_size=n, max_size=n)), dtype=float, name=draw(st.sampled_from(["a", None])))
    if draw(st.booleans()):
        b = pd.Series(draw(st.lists(values, min_size=n, max_size=n)), dtype=float,
                      name=draw(st.sampled_from(["a", "b", None])))
    else:
        b = draw(st.sampled_from([0.0, 1.0, 2, np.float64(1.5)]))
    return a, b


@settings(max_examples=150, deadline=None)
@given(series_pairs())
def test_compiled_crossings_equal_the_pandas_expression(pair) -> None:
    a, b = pair
    b_prev = b.shift(1) if isinstance(b, pd.Series) else b
    above = ((a.shift(1) < b_prev) & (a > b)).astype(bool)
    below = ((a.shift(1) > b_prev) & (a < b)).astype(bool)
    pd.testing.assert_series_equal(crossed_above(a, b), above)
    pd.testing.assert_series_equal(crossed_below(a, b), below)
    both = crossings(a, b)  # one pass for both directions
    pd.testing.assert_series_equal(both.above, above)
    pd.testing.assert_series_equal(both.below, below)


def test_crossings_of_other_dtypes_still_use_pandas() -> None:
    a = pd.Series([1, 3, 1, 3])  # int64
    assert crossed_above(a, 2).tolist() == [False, True, False, True]
    up, down = crossings(a, 2)
    assert (up.tolist(), down.tolist()) == ([False, True, False, True], [False, False, True, False])
    b = pd.Series([2.0, 2.0, 2.0, 2.0], index=[1, 2, 3, 4])  # different index: pandas alignment rules apply
    try:
        crossed_above(a.astype(float), b)
    except ValueError:
        pass  # pandas refuses differently-labelled Series, and so must the fast path's fallback
    else:
        raise AssertionError("differently-labelled Series must not be compared silently")
