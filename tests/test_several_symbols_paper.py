"""A paper bot trading several symbols with one capital: one tick per bar for all of them, sells before buys, one
cash; its fills are the backtest's cash-sharing portfolio's (the fake exchange on 127.0.0.1, ccxt, SQLite)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from conftest import systrade_exe
from fakes.binance import FakeBinance
from paper_helpers import flat_candles, paper_config

from systrade.backtest.engine import simulate
from systrade.config import load_settings
from systrade.live.daemon import build_runners, run_once
from systrade.sim.rules import PositionRules
from systrade.strategy import call_signals_together, load_strategy

MINUTE = 60_000
FEE = 0.001
COINS = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
ROTATION = '''import pandas as pd

from systrade import Param, Signals, Strategy


class CoinRotation(Strategy):
    """Hold the coin with the best momentum over ``lookback`` bars, when it is positive."""

    symbols = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
    lookback = Param(4, low=1, high=50)

    def signals(self, data):
        closes = pd.DataFrame({symbol: frame["close"] for symbol, frame in data.items()})
        momentum = closes / closes.shift(self.lookback) - 1
        best = momentum.fillna(-1.0).idxmax(axis=1).where(momentum.max(axis=1) > 0, "cash")
        out = {}
        for symbol, frame in data.items():
            holding = (best == symbol).reindex(frame.index, fill_value=False)
            out[symbol] = Signals(entries=holding & ~holding.shift(1, fill_value=False),
                                  exits=~holding & holding.shift(1, fill_value=False))
        return out
'''


def ms(stamp: pd.Timestamp) -> int:
    return int(stamp.value // 1_000_000)


def coin_candles(n: int = 140) -> dict[str, pd.DataFrame]:
    start = pd.Timestamp("2024-05-01", tz="UTC")
    return {symbol: flat_candles(n, start, "1min", seed=i + 3, period=3.0 + 1.7 * i) * [1, 1, 1, 1, 1]
            for i, symbol in enumerate(COINS)}


def rotation_bot(path: str, **overrides) -> dict:
    bot = {"name": "rotation", "strategy": path, "exchange": "binance", "symbols": COINS, "timeframe": "1m",
           "size": "all", "direction": "long", "candles": 40}
    bot.update(overrides)
    return bot


@pytest.fixture
def strategy_file(tmp_path: Path) -> str:
    path = tmp_path / "coin_rotation.py"
    path.write_text(ROTATION)
    return str(path)


def fake_with(candles: dict[str, pd.DataFrame], first: int) -> FakeBinance:
    fake = FakeBinance(clock_ms=ms(candles[COINS[0]].index[first]) + 30_000, spread_bps=0, book_qty=1e6)
    return fake


def test_the_bot_places_the_cash_sharing_backtests_orders(tmp_path: Path, strategy_file: str) -> None:
    candles = coin_candles()
    first = 40
    with fake_with(candles, first) as fake:
        for symbol, frame in candles.items():
            fake.add_market(symbol, frame, tick_size=1e-8, step_size=1e-8, min_qty=1e-8, min_notional=0.0)
        config = paper_config(tmp_path / "systrade.toml", fake, [rotation_bot(strategy_file)])
        ledger, runners = build_runners(load_settings(str(config)))
        for _ in range(first, len(candles[COINS[0]]) - 1):
            run_once(runners)
            fake.advance(MINUTE)
    # the oracle: the backtest's cash-sharing portfolio on the bars the bot traded (from its first tick on)
    ref = load_strategy(strategy_file)
    traded = {s: f.iloc[first - 1:] for s, f in candles.items()}
    full = call_signals_together(ref.cls(), candles)
    signals = {s: {k: (v[first - 1:] if v is not None else None) for k, v in full[s].items()} for s in COINS}
    orders = simulate(traded, signals, PositionRules(direction="long", fees=FEE), 10_000.0,
                      pd.Timedelta(minutes=1), cash_sharing=True).orders()
    expected = [(row.column, pd.Timestamp(row.time), row.side, row.size, row.price) for row in orders.itertuples()]
    fills = ledger.fills()
    got = [(f.symbol, pd.Timestamp(f.bar_time).tz_localize("UTC") + pd.Timedelta(minutes=1)
            if pd.Timestamp(f.bar_time).tzinfo is None else pd.Timestamp(f.bar_time) + pd.Timedelta(minutes=1),
            f.side, f.amount, f.price) for f in fills]
    assert len(expected) >= 6 and {e[0] for e in expected} == set(COINS)  # it rotated through every coin
    assert [(s, t, side) for s, t, side, _, _ in got] == [(s, t, side) for s, t, side, _, _ in expected]
    for (_, _, _, size, price), (_, _, _, want_size, want_price) in zip(got, expected, strict=True):
        assert price == pytest.approx(want_price, abs=2e-8) and size == pytest.approx(want_size, rel=1e-7)
    # one cash: the bot's row holds it, every symbol's position is its own leg's
    bot = ledger.bot("rotation")
    cash = 10_000.0 + sum((-1 if f.side == "buy" else 1) * f.amount * f.price - f.fee for f in fills)
    assert bot.cash == pytest.approx(cash, rel=1e-12) and bot.capital == 10_000.0
    for symbol in COINS:
        held = sum((1 if f.side == "buy" else -1) * f.amount for f in fills if f.symbol == symbol)
        assert ledger.bot(f"rotation:{symbol}").position == pytest.approx(held, abs=1e-12)


def test_status_run_and_config_errors_through_the_real_command(tmp_path: Path, strategy_file: str) -> None:
    candles = coin_candles(80)
    with fake_with(candles, 40) as fake:
        for symbol, frame in candles.items():
            fake.add_market(symbol, frame, tick_size=1e-8, step_size=1e-8, min_qty=1e-8, min_notional=0.0)
        config = paper_config(tmp_path / "systrade.toml", fake, [rotation_bot(strategy_file)])
        env = {**os.environ, "SYSTRADE_CONFIG": str(config), "COLUMNS": "250"}

        def cli(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([systrade_exe(), *args], env=env, cwd=tmp_path, capture_output=True, text=True,
                                  timeout=180)

        _, runners = build_runners(load_settings(str(config)))
        for _ in range(8):  # in-process ticks are quick; the last ones go through the real command
            run_once(runners)
            fake.advance(MINUTE)
        for _ in range(3):
            ran = cli("paper", "run", "--once")
            assert ran.returncode == 0, ran.stdout + ran.stderr
            fake.advance(MINUTE)
        status = json.loads(cli("paper", "status", "--json", "-").stdout)
        trades = json.loads(cli("paper", "trades", "--json", "-").stdout)
        table = cli("paper", "status")
    assert [b["name"] for b in status["bots"]] == ["rotation"]  # one bot, its symbols folded in
    bot = status["bots"][0]
    assert bot["symbols"] == COINS and [p["symbol"] for p in bot["positions"]] == COINS
    assert {"name", "strategy", "exchange", "symbol", "quote", "timeframe", "position", "capital", "cash", "equity",
            "pnl", "fees", "last_bar", "halted"} <= set(bot)
    assert trades and {t["bot"] for t in trades} == {"rotation"}
    for p in bot["positions"]:
        assert p["position"] == pytest.approx(sum(t["amount"] * (1 if t["side"] == "buy" else -1)
                                                  for t in trades if t["symbol"] == p["symbol"]), abs=1e-12)
    held = [p for p in bot["positions"] if p["position"]]
    value = sum(p["position"] * p["price"] for p in held)
    assert bot["equity"] == pytest.approx(bot["cash"] + value, rel=1e-12)
    assert bot["pnl"] == pytest.approx(bot["equity"] - 10_000.0, rel=1e-9)
    assert bot["fees"] == pytest.approx(sum(t["fee_quote"] for t in trades), rel=1e-12)
    assert table.returncode == 0 and "rotation" in table.stdout


@pytest.mark.parametrize("change, words", [
    ({"symbol": "BTC/USDT"}, "sets both symbol and symbols"),
    ({"symbols": ["BTC/USDT", "ETH/USDT"]}, "differs from the list strategy coin_rotation trades"),
    ({"symbols": None, "symbol": "BTC/USDT"}, "give the bot symbols = [\"BTC/USDT\", \"ETH/USDT\", \"SOL/USDT\"]"),
])
def test_config_mistakes_exit_2_with_a_clear_message(tmp_path: Path, strategy_file: str, change: dict,
                                                     words: str) -> None:
    with FakeBinance(clock_ms=ms(pd.Timestamp("2024-05-01 00:40", tz="UTC")), spread_bps=0) as fake:
        for symbol, frame in coin_candles(60).items():
            fake.add_market(symbol, frame)
        bot = {k: v for k, v in {**rotation_bot(strategy_file), **change}.items() if v is not None}
        config = paper_config(tmp_path / "systrade.toml", fake, [bot])
        result = subprocess.run([systrade_exe(), "paper", "run", "--once"], cwd=tmp_path, capture_output=True,
                                text=True, timeout=120, env={**os.environ, "SYSTRADE_CONFIG": str(config)})
    assert result.returncode == 2, result.stdout + result.stderr
    assert words in " ".join(result.stderr.split()) and "Traceback" not in result.stderr
    assert not (tmp_path / "paper.sqlite").exists()


def test_start_up_checks_cover_every_symbol(tmp_path: Path, strategy_file: str) -> None:
    """No stored candles: each symbol gets its own synthetic series. Momentum over 4 bars needs 5 candles, and an
    entry compares with the bar before: 6 (worked out by hand)."""
    from systrade.checks.preflight import preflight

    peeking = tmp_path / "peek.py"
    peeking.write_text(ROTATION.replace("class CoinRotation", "class PeekRotation").replace(
        "momentum = closes / closes.shift(self.lookback) - 1", "momentum = closes.shift(-1) / closes - 1"))
    with FakeBinance(clock_ms=ms(pd.Timestamp("2024-05-01 00:40", tz="UTC"))) as fake:
        config = paper_config(tmp_path / "systrade.toml", fake, [
            {**rotation_bot(strategy_file), "candles": None},
            {**rotation_bot(str(peeking)), "name": "peek", "candles": None}])
        text = config.read_text().replace("candles = null\n", "")
        config.write_text("\n".join(line for line in text.splitlines() if not line.startswith("candles")) + "\n")
        checks = {c.bot: c for c in preflight(load_settings(str(config)))}
    honest = checks["rotation"]
    assert all(symbol in honest.source for symbol in COINS) and not honest.lookahead.biased
    assert honest.warmup == 6
    assert checks["peek"].lookahead.biased and checks["peek"].lookahead.symbol in COINS
