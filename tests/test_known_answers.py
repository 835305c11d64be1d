"""Known answers on real candles (../shared/data) and on hand-worked metric examples."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from conftest import STRATEGIES, shared_file

from systrade.backtest.metrics import compute_metrics, max_drawdown
from systrade.backtest.run import run_backtest
from systrade.data.load import load_candles
from systrade.sim.rules import PositionRules
from systrade.strategy import build_strategy, load_strategy


def sma_cross_fills(data: pd.DataFrame, fast: int, slow: int) -> list[tuple[int, int | None]]:
    """Entry/exit bar positions of a long-only SMA cross, worked out independently with pandas."""
    f = data["close"].rolling(fast).mean().to_numpy()
    s = data["close"].rolling(slow).mean().to_numpy()
    up = [t for t in range(1, len(data)) if f[t - 1] < s[t - 1] and f[t] > s[t]]
    down = [t for t in range(1, len(data)) if f[t - 1] > s[t - 1] and f[t] < s[t]]
    trades, t, position_entry = [], 0, None
    events = sorted([(t, "up") for t in up] + [(t, "down") for t in down])
    for t, kind in events:
        if t + 1 >= len(data):
            break
        if kind == "up" and position_entry is None:
            position_entry = t + 1
        elif kind == "down" and position_entry is not None:
            trades.append((position_entry, t + 1))
            position_entry = None
    if position_entry is not None:
        trades.append((position_entry, None))
    return trades


@pytest.mark.parametrize("file, fast, slow, year_days", [
    ("orcl-1995-2014.txt", 20, 60, 252),
    ("ETH_BTC-5m.csv", 12, 48, 365),
])
@pytest.mark.parametrize("fees, slippage", [(0.0, 0.0), (0.001, 0.0005)])
def test_sma_cross_trades_and_equity_on_real_data(file, fast, slow, year_days, fees, slippage) -> None:
    candles = load_candles("unused", data_file=str(shared_file(file)))
    data = candles[0].frame
    strategy = build_strategy(load_strategy("sma_cross", STRATEGIES), {"fast": fast, "slow": slow})
    run = run_backtest(strategy, candles, PositionRules(fees=fees, slippage=slippage), 10_000.0, year_days=year_days)
    result = run.results[0]
    expected = sma_cross_fills(data, fast, slow)
    trades = result.trades
    assert len(trades) == len(expected) > 5
    opens, closes = data["open"].to_numpy(), data["close"].to_numpy()
    equity = 10_000.0
    for (entry_bar, exit_bar), (_, trade) in zip(expected, trades.iterrows(), strict=True):
        entry_price = opens[entry_bar] * (1 + slippage)
        assert trade["entry_time"] == data.index[entry_bar]
        assert trade["entry_price"] == pytest.approx(entry_price, rel=1e-12)
        units = equity / (entry_price * (1 + fees))
        assert trade["size"] == pytest.approx(units, rel=1e-9)
        if exit_bar is None:
            assert trade["status"] == "open" and pd.isna(trade["exit_time"])
            equity = equity - units * entry_price * (1 + fees) + units * closes[-1]
        else:
            exit_price = opens[exit_bar] * (1 - slippage)
            assert trade["exit_time"] == data.index[exit_bar]
            assert trade["exit_price"] == pytest.approx(exit_price, rel=1e-12)
            equity = units * exit_price * (1 - fees)
    assert result.metrics["final_equity"] == pytest.approx(equity, rel=1e-9)
    first_open = opens[0]
    assert result.metrics["buy_and_hold_return_pct"] == pytest.approx((closes[-1] / first_open - 1) * 100)


def test_stops_on_real_data_exit_at_the_stop_level_or_a_gapped_open() -> None:
    candles = load_candles("unused", data_file=str(shared_file("orcl-1995-2014.txt")))
    data = candles[0].frame
    strategy = build_strategy(load_strategy("sma_cross", STRATEGIES), {"fast": 10, "slow": 30})
    run = run_backtest(strategy, candles, PositionRules(stop_loss=0.03, take_profit=0.06), 10_000.0, year_days=252)
    stopped = 0
    for _, trade in run.results[0].trades[lambda t: t["status"] == "closed"].iterrows():
        bar = data.index.get_loc(trade["exit_time"])
        loss_level = trade["entry_price"] * 0.97
        gain_level = trade["entry_price"] * 1.06
        candidates = [data["open"].iloc[bar], loss_level, gain_level]
        if any(math.isclose(trade["exit_price"], c, rel_tol=1e-12) for c in candidates[1:]):
            stopped += 1
        assert any(math.isclose(trade["exit_price"], c, rel_tol=1e-12) for c in candidates)
        assert data["low"].iloc[bar] - 1e-9 <= trade["exit_price"] <= data["high"].iloc[bar] + 1e-9
    assert stopped > 10


def test_metrics_on_a_hand_worked_curve() -> None:
    equity = np.array([100.0, 110.0, 99.0, 108.9, 120.0])
    returns = np.array([0.10, -0.10, 0.10, 120.0 / 108.9 - 1])
    ppy = 252.0
    metrics = compute_metrics(equity, 86400, np.array([10.0, -5.0, 20.0]), fees_paid=1.5, exposure=0.5,
                              year_days=252)
    assert metrics["total_return_pct"] == pytest.approx(20.0)
    assert metrics["max_drawdown_pct"] == pytest.approx(10.0)
    assert metrics["sharpe"] == pytest.approx(returns.mean() / returns.std(ddof=1) * math.sqrt(ppy))
    assert metrics["sortino"] == pytest.approx(returns.mean() / math.sqrt(0.01 / 4) * math.sqrt(ppy))
    years = 5 / ppy
    assert metrics["cagr_pct"] == pytest.approx((1.2 ** (1 / years) - 1) * 100)
    assert metrics["calmar"] == pytest.approx((1.2 ** (1 / years) - 1) / 0.10)
    assert metrics["win_rate_pct"] == pytest.approx(200 / 3)
    assert metrics["profit_factor"] == pytest.approx(6.0)
    assert metrics["expectancy"] == pytest.approx(25 / 3)
    assert metrics["exposure_pct"] == 50.0 and metrics["fees_paid"] == 1.5
    assert max_drawdown(np.array([1.0, 2.0, 1.0, 3.0, 0.75])) == pytest.approx(0.75)


def test_flat_curve_has_no_ratios() -> None:
    metrics = compute_metrics(np.full(10, 100.0), 3600, np.array([]), 0.0, 0.0)
    assert math.isnan(metrics["sharpe"]) and math.isnan(metrics["win_rate_pct"]) and metrics["total_return_pct"] == 0


def test_cagr_of_a_short_huge_gain_is_infinite_not_a_crash() -> None:
    metrics = compute_metrics(np.linspace(100.0, 125.0, 160), 60, np.array([25.0]), 0.0, 1.0)
    assert metrics["cagr_pct"] == math.inf and metrics["total_return_pct"] == pytest.approx(25.0)
