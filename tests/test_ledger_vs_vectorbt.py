"""A backtest's books (``backtest.ledger``: equity per bar, the trade table, the metrics) against vectorbt's.

The backtest no longer imports vectorbt; vectorbt stays the independent check: the fill model's fills go to a
``vectorbt.Portfolio`` as its order records (``backtest.vectorbt_books``, the path backtests used before), and
its equity curve and exit trades must equal ours field by field, for bundled strategies under long, short and
reversing rules, stops, lots, minimums, fees per side and market buys by cost, on one symbol and on several
sharing their cash (with bars where one symbol has no candle).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from systrade.backtest import vectorbt_books
from systrade.backtest.engine import simulate
from systrade.backtest.metrics import compute_metrics
from systrade.backtest.run import run_backtest
from systrade.data.load import Candles, load_candles
from systrade.sim.rules import PositionRules
from systrade.strategy import build_strategy, call_signals, load_strategy

BAR = pd.Timedelta("1h")
RULES = {
    "long": PositionRules(),
    "long, fees per side, slippage": PositionRules(fees=0.001, sell_fees=0.002, slippage=0.0005),
    "short": PositionRules(direction="short", fees=0.001),
    "both, reversing": PositionRules(direction="both", fees=0.001),
    "both, amount sizing, stops": PositionRules(direction="both", size=0.5, size_type="amount", fees=0.0005,
                                                stop_loss=0.02, take_profit=0.03),
    "long, stops, lot, tick, minimums": PositionRules(fees=0.001, stop_loss=0.01, take_profit=0.02,
                                                      granularity=0.001, tick=0.01, min_amount=0.002,
                                                      min_cost=10.0),
    "long, half the cash, buys by cost": PositionRules(size=50, fees=0.0005, granularity=1e-8, cost_step=1.0),
    "both, value sizing": PositionRules(direction="both", size=3000, size_type="value", fees=0.001),
}
STRATEGIES = ["sma_cross", "rsi_reversion", "bollinger_breakout", "donchian_breakout", "macd_trend"]


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> pd.DataFrame:
    """4,000 hourly candles of the bundled sample: enough for dozens of trades per case, quick to simulate."""
    return load_candles(tmp_path_factory.mktemp("data"))[0].frame.iloc[:4000]


def assert_same_books(simulation) -> None:
    pf = vectorbt_books.portfolio(simulation)
    ours, theirs = simulation.trades(), vectorbt_books.trades(pf, simulation)
    assert len(ours) > 0
    pd.testing.assert_frame_equal(ours, theirs, check_exact=True)
    value_ours, value_theirs = simulation.value(), vectorbt_books.value(pf)
    if isinstance(value_theirs, pd.DataFrame) and not isinstance(value_ours, pd.DataFrame):
        value_theirs = value_theirs.iloc[:, 0]
    np.testing.assert_array_equal(np.asarray(value_ours), np.asarray(value_theirs))
    assert value_ours.index.equals(value_theirs.index)


@pytest.mark.parametrize("rules", list(RULES), ids=list(RULES))
@pytest.mark.parametrize("name", STRATEGIES)
def test_trades_and_equity_equal_vectorbts_on_one_symbol(sample, name: str, rules: str) -> None:
    strategy = build_strategy(load_strategy(name))
    simulation = simulate({"X": sample}, {"X": call_signals(strategy, sample)}, RULES[rules], 10_000.0, BAR)
    assert_same_books(simulation)


def test_trades_and_equity_equal_vectorbts_for_symbols_sharing_cash_with_gaps(sample) -> None:
    """Three symbols on overlapping but different bars: NaN closes where one has no candle, one cash balance."""
    strategy = build_strategy(load_strategy("sma_cross"))
    datas = {"A": sample.iloc[:3000], "B": sample.iloc[500:].mul(0.5), "C": sample.iloc[200:3800:2]}
    signals = {s: call_signals(strategy, frame) for s, frame in datas.items()}
    for rules in (RULES["long, fees per side, slippage"], RULES["both, amount sizing, stops"]):
        for sharing in (True, False):
            assert_same_books(simulate(datas, signals, rules, 10_000.0, BAR, cash_sharing=sharing))


@pytest.mark.parametrize("rules", ["both, reversing", "long, stops, lot, tick, minimums"])
def test_backtest_metrics_equal_vectorbts(sample, rules: str) -> None:
    """Every headline metric of ``run_backtest`` equals the one computed from vectorbt's equity and trades."""
    strategy = build_strategy(load_strategy("sma_cross"))
    candles = Candles("X", "1h", sample, "test", synthetic=True)
    result = run_backtest(strategy, [candles], RULES[rules], 10_000.0).results[0]
    simulation = simulate({"X": sample}, {"X": call_signals(strategy, sample)}, RULES[rules], 10_000.0, BAR)
    pf = vectorbt_books.portfolio(simulation)
    trades = vectorbt_books.trades(pf, simulation)
    closed = trades.loc[trades["status"] == "closed", "pnl"].to_numpy(dtype=float)
    fees = float(simulation.orders()["fees"].sum())
    exposure = float(np.mean(simulation.model.position[:, 0] != 0))
    expected = compute_metrics(vectorbt_books.value(pf)["X"].to_numpy(), 3600.0, closed, fees, exposure)
    for name, value in expected.items():
        assert result.metrics[name] == value or (np.isnan(value) and np.isnan(result.metrics[name])), name
    assert result.metrics["total_trades"] == len(trades)
    assert result.metrics["open_trades"] == int((trades["status"] == "open").sum())
