"""Strategies that trade several symbols together (``symbols = [...]``): one signals() call sees every symbol and
returns one Signals per symbol; the backtest trades them as one portfolio sharing its cash. The bundled monthly
momentum rotation is checked against the rotation worked out by hand."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from systrade.data import calendars

ETFS = ["SPY", "QQQ", "TLT"]


def etf_candles(seed: int, drift: float, days: pd.DatetimeIndex) -> pd.DataFrame:
    """Daily candles on XNYS sessions; a drifting walk whose leader changes over the years."""
    rng = np.random.default_rng(seed)
    wave = np.sin(np.arange(len(days)) / (90 + 20 * seed)) * 0.004
    close = 100 * np.exp(np.cumsum(drift + wave + rng.normal(0, 0.008, len(days))))
    opens = close * (1 + rng.normal(0, 0.002, len(days)))
    return pd.DataFrame({"open": opens, "high": np.maximum(opens, close) * 1.004,
                         "low": np.minimum(opens, close) * 0.996, "close": close, "volume": 1e6},
                        index=days.rename("time"))


@pytest.fixture
def store(run_cli, workdir: Path) -> dict[str, pd.DataFrame]:
    days = calendars.bar_opens("XNYS", "1d", pd.Timestamp("2019-01-02"), pd.Timestamp("2022-12-30"))
    drifts = (0.0003, 0.0004, 0.0001)
    frames = {symbol: etf_candles(i, drift, days) for i, (symbol, drift) in enumerate(zip(ETFS, drifts, strict=True))}
    for symbol, frame in frames.items():
        frame.to_csv(workdir / f"{symbol}.csv")
        stored = run_cli("data", "import", f"{symbol}.csv", "--exchange", "alpaca", "--symbol", symbol)
        assert stored.returncode == 0, stored.stderr
    return frames


def rotation_by_hand(frames: dict[str, pd.DataFrame], lookback: int) -> list[tuple[str, pd.Timestamp]]:
    """(symbol, entry time) of each holding: on the first session of a month, the best positive momentum is chosen;
    it is bought at the next session's open."""
    closes = pd.DataFrame({s: f["close"] for s, f in frames.items()})
    index = closes.index
    holding, entries = "cash", []
    for i in range(1, len(index) - 1):
        if index[i].month == index[i - 1].month:
            continue
        momentum = {s: closes[s].iloc[i] / closes[s].iloc[i - lookback] - 1 for s in frames} if i >= lookback else {}
        best = max(momentum, key=momentum.get) if momentum and max(momentum.values()) > 0 else "cash"
        if best != holding:
            holding = best
            if best != "cash":
                entries.append((best, index[i + 1]))
    return entries


def test_the_monthly_rotation_holds_one_etf_at_a_time_as_worked_out_by_hand(store, run_cli, workdir: Path) -> None:
    result = run_cli("backtest", "momentum_rotation", "--exchange", "alpaca", "-p", "lookback=40", "--json",
                     "out.json")
    assert result.returncode == 0, result.stderr
    doc = json.loads((workdir / "out.json").read_text())
    assert [run["symbol"] for run in doc["runs"]] == ETFS and "portfolio" in doc  # one portfolio, shared cash
    trades = sorted(((run["symbol"], pd.Timestamp(t["entry_time"]), t["exit_time"]) for run in doc["runs"]
                     for t in run["trades"]), key=lambda t: t[1])
    expected = rotation_by_hand(store, 40)
    assert [(s, t) for s, t, _ in trades] == expected
    for (_, _, exit_time), (_, next_entry, _) in zip(trades, trades[1:], strict=False):  # never two held at once
        assert exit_time is not None and pd.Timestamp(exit_time) <= next_entry


def test_a_multi_symbol_strategy_must_answer_for_each_symbol(store, run_cli, workdir: Path) -> None:
    (workdir / "half.py").write_text(
        "from systrade import Signals, Strategy\n\n\nclass Half(Strategy):\n    symbols = ['SPY', 'QQQ']\n\n"
        "    def signals(self, data):\n        spy = data['SPY']['close']\n"
        "        return {'SPY': Signals(entries=spy > spy.shift())}\n")
    result = run_cli("backtest", "half.py", "--exchange", "alpaca")
    assert result.returncode == 2
    assert "must return {symbol: Signals} for exactly those symbols, got ['SPY']" in result.stderr
