"""Replay: the daemon's tick code over historical candles, and its stop handling, against the backtest."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
from conftest import STRATEGIES, shared_file

from systrade import Signals, Strategy
from systrade.backtest.request import BacktestOptions, PreparedBacktest, prepare_backtest
from systrade.checks.parity import check_parity, trade_record
from systrade.config import BotSettings, Settings, StrategySettings
from systrade.data.load import Candles
from systrade.errors import UserError
from systrade.live.broker import PaperBroker, SandboxBroker
from systrade.live.ledger import Ledger
from systrade.live.replay import ReplayMarket, replay, replay_bot_settings, trades_from_fills
from systrade.live.runner import BotRunner
from systrade.sim.rules import PositionRules
from systrade.strategy import StrategyRef, load_strategy

COLUMNS = ("entries", "exits", "short_entries", "short_exits")


class Scripted(Strategy):
    """Signals looked up by bar time in a table the test writes: what a tick sees does not depend on its history."""

    table: ClassVar[pd.DataFrame]

    def signals(self, data):
        rows = self.table.reindex(data.index, fill_value=False).astype(bool)
        return Signals(**{c: rows[c] for c in self.table.columns})


def scripted(frame: pd.DataFrame, **marks: list[int]) -> StrategyRef:
    """A strategy whose signals are True at the given bar positions, e.g. ``entries=[2], exits=[7]``.

    Columns not named are not given (None), so a strategy of entries/exits only is mirrored for shorts.
    """
    table = pd.DataFrame(False, index=frame.index, columns=["entries", *[c for c in COLUMNS[1:] if c in marks]])
    for column, bars in marks.items():
        table.iloc[bars, table.columns.get_loc(column)] = True
    return StrategyRef(type("Script", (Scripted,), {"table": table}), "test")


def candles(rows: list[tuple[float, float, float, float]], freq: str = "1h") -> pd.DataFrame:
    """OHLC rows -> a candle frame (volume 1)."""
    index = pd.date_range("2024-03-01", periods=len(rows), freq=freq, tz="UTC", name="time")
    frame = pd.DataFrame(rows, columns=["open", "high", "low", "close"], index=index, dtype=float)
    frame["volume"] = 1.0
    return frame


def run_both(ref: StrategyRef, frame: pd.DataFrame, history: int | None = 5, cash: float = 10_000.0, **rules):
    """Parity report of backtest vs replay for a scripted strategy on ``frame``."""
    prepared = PreparedBacktest(ref.cls(), [Candles("T/USD", "1h", frame, "test", False)], PositionRules(**rules),
                                cash, False, 365.0)
    return check_parity(prepared, ref, history=history)


def do_replay(ref: StrategyRef, frame: pd.DataFrame, cash: float = 10_000.0, history: int = 5, **rules):
    rules = PositionRules(**rules)
    return replay(ref, frame, replay_bot_settings("script", "T/USD", "1h", rules, {}, history), rules, cash)


FLAT = (100.0, 100.5, 99.5, 100.0)


def test_fills_are_at_the_next_open_with_fees_and_slippage_like_the_backtest() -> None:
    frame = candles([FLAT, (101, 102, 100, 101), (103, 104, 102, 103), (104, 105, 103, 104), (106, 107, 105, 106)])
    ref = scripted(frame, entries=[0], exits=[2])
    result = do_replay(ref, frame, fees=0.001, slippage=0.002)
    buy, sell = result.fills.to_dict("records")
    assert buy["time"] == frame.index[1] and buy["price"] == pytest.approx(101 * 1.002, rel=1e-12)
    assert buy["size"] == pytest.approx(10_000 / (101 * 1.002 * 1.001), rel=1e-12)
    assert buy["fee"] == pytest.approx(buy["size"] * buy["price"] * 0.001, rel=1e-12)
    assert sell["time"] == frame.index[3] and sell["price"] == pytest.approx(104 * 0.998, rel=1e-12)
    assert sell["size"] == buy["size"]  # a close sells exactly the position
    assert run_both(ref, frame, fees=0.001, slippage=0.002).identical
    assert result.outcomes == {"filled": 2, "hold": 2} and result.final_position == 0


def test_a_stop_inside_a_bar_fills_at_its_level_in_that_bar() -> None:
    # entry at bar 1's open (100); bar 2 is the entry bar's successor and dips to 94: a 5% stop fills at 95
    frame = candles([FLAT, FLAT, (99, 100, 94, 96), (96, 97, 95, 96), (96, 97, 95, 96)])
    ref = scripted(frame, entries=[0])
    result = do_replay(ref, frame, stop_loss=0.05, slippage=0.001, fees=0.001)
    stop = result.fills.iloc[-1]
    entry_price = 100 * 1.001
    assert stop["action"] == "stop" and stop["reason"] == "stop_loss" and stop["time"] == frame.index[2]
    assert stop["price"] == pytest.approx(entry_price * 0.95 * 0.999, rel=1e-12)
    assert result.trades.iloc[0]["exit_reason"] == "stop_loss"
    assert run_both(ref, frame, stop_loss=0.05, slippage=0.001, fees=0.001).identical


def test_a_stop_is_checked_in_the_entry_bar_after_its_open() -> None:
    # entry at bar 1's open (100); bar 1 itself then falls to 80: step 3 checks the position entered at this very
    # open, so the 5% stop fills at 95 inside bar 1 (until the one fill model, the entry bar was skipped)
    frame = candles([FLAT, (100, 100, 80, 99), (99, 100, 98, 99), (99, 100, 98, 99)])
    ref = scripted(frame, entries=[0])
    result = do_replay(ref, frame, stop_loss=0.05)
    assert len(result.fills) == 2 and result.final_position == 0
    stop = result.fills.iloc[1]
    assert stop["time"] == frame.index[1] and stop["price"] == pytest.approx(95) and stop["reason"] == "stop_loss"
    assert run_both(ref, frame, stop_loss=0.05).identical


def test_a_gap_beyond_the_stop_fills_at_the_open_and_the_stop_loss_wins_over_the_take_profit() -> None:
    gap = candles([FLAT, FLAT, (90, 91, 89, 90), FLAT, FLAT, (100, 120, 80, 100), FLAT])
    ref = scripted(gap, entries=[0, 3])
    result = do_replay(ref, gap, stop_loss=0.05, take_profit=0.05)
    first, second = result.fills.iloc[1], result.fills.iloc[3]
    assert first["time"] == gap.index[2] and first["price"] == 90  # opened below the stop: exits at the open
    assert second["time"] == gap.index[5] and second["price"] == pytest.approx(95)  # both levels reached: stop loss
    assert second["reason"] == "stop_loss"
    assert run_both(ref, gap, stop_loss=0.05, take_profit=0.05).identical


def test_a_reversal_at_an_open_beyond_the_stop_is_a_stop_exit_then_an_entry() -> None:
    # short from bar 1's open (100, stop 105); the long entry of bar 2 acts at bar 3's open (110), which is beyond
    # the stop: step 1 buys the short back at the open, then step 2 decides the entry against the flat position
    # and opens a long at the same open
    frame = candles([FLAT, FLAT, (101, 102, 100, 101), (110, 111, 109, 110), (110, 111, 109, 110), FLAT])
    ref = scripted(frame, short_entries=[0], entries=[2])
    result = do_replay(ref, frame, direction="both", stop_loss=0.05)
    assert list(result.fills["action"])[:3] == ["sell", "stop", "buy"]
    assert list(result.fills["price"])[:3] == [100, 110, 110]
    assert list(result.fills["time"])[1:3] == [frame.index[3]] * 2
    assert run_both(ref, frame, direction="both", stop_loss=0.05).identical


@pytest.mark.parametrize("direction", ["long", "short"])
def test_a_position_closed_at_an_open_is_not_stopped_later_in_that_bar(direction: str) -> None:
    # long from bar 1; the exit of bar 2 acts at bar 3's open (100); bar 3 then falls to 90, through the stop
    # level 95. The position was closed at the open, so nothing more happens, in the backtest as in the replay
    # (vectorbt's from_signals would have replaced the exit with a stop exit at 95). Short: the mirror image.
    if direction == "long":
        frame = candles([FLAT, FLAT, FLAT, (100, 101, 90, 92), FLAT])
        ref = scripted(frame, entries=[0], exits=[2])
    else:
        frame = candles([FLAT, FLAT, FLAT, (100, 110, 99, 108), FLAT])
        ref = scripted(frame, exits=[0], entries=[2])
    report = run_both(ref, frame, stop_loss=0.05, direction=direction)
    assert report.identical, report.differences
    assert report.trades["backtest"][0]["exit_price"] == 100 == report.trades["replay"][0]["exit_price"]


def test_a_repeated_tick_records_a_stop_once() -> None:
    frame = candles([FLAT, FLAT, (99, 100, 94, 96), FLAT, FLAT])
    ref = scripted(frame, entries=[0])
    rules = PositionRules(stop_loss=0.05)
    market = ReplayMarket(frame, "T/USD", 0.0)
    ledger = Ledger("sqlite://")
    ledger.ensure_account({"USD": 10_000.0})
    bot = replay_bot_settings("script", "T/USD", "1h", rules, {}, 5)
    runner = BotRunner(bot, ref, ledger, market, PaperBroker(market), rules=rules, clock=market.now)
    for closed in range(1, 4):
        market.advance(closed)
        runner.tick()
    runner.tick()  # the same bar again
    assert runner.settle_stops() is False
    stops = [o for o in ledger.orders() if o.action == "stop"]
    assert len(stops) == 1 and len(ledger.fills()) == 2 and ledger.bot("replay").position == 0


def test_sandbox_bots_refuse_stops() -> None:
    frame = candles([FLAT] * 5)
    ref = scripted(frame, entries=[0])
    market = ReplayMarket(frame, "T/USD", 0.0)
    bot = BotSettings(name="s", strategy="x", exchange="binance", symbol="T/USD", timeframe="1h")
    with pytest.raises(UserError, match="sandbox bots do not support"):
        BotRunner(bot, ref, Ledger("sqlite://"), market, SandboxBroker(None, None), rules=PositionRules(stop_loss=0.1))


def test_granularity_rounds_down_and_closes_exactly() -> None:
    frame = candles([FLAT, (3.3, 3.4, 3.2, 3.3), (3.1, 3.2, 3.0, 3.1), (3.2, 3.3, 3.1, 3.2), (3.2, 3.3, 3.1, 3.2)])
    ref = scripted(frame, entries=[0], exits=[2])
    result = do_replay(ref, frame, granularity=0.001, fees=0.001)
    buy, sell = result.fills["size"]
    assert buy == pytest.approx(3027.275, abs=1e-9) and sell == buy  # 10000 / (3.3 * 1.001) = 3027.2757... -> 3027.275
    assert run_both(ref, frame, granularity=0.001, fees=0.001).identical


@pytest.mark.parametrize("size, size_type, direction", [(25.0, "percent", "long"), (40.0, "amount", "both"),
                                                        (2500.0, "value", "short")])
def test_fixed_sizes_match_the_backtest(size: float, size_type: str, direction: str) -> None:
    rng = np.random.default_rng(11)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 120)))
    opens = np.r_[100.0, close[:-1]] * np.exp(rng.normal(0, 0.002, 120))
    frame = candles([(o, max(o, c) * 1.003, min(o, c) * 0.997, c) for o, c in zip(opens, close, strict=True)])
    ref = scripted(frame, entries=list(range(3, 120, 11)), exits=list(range(8, 120, 11)))
    report = run_both(ref, frame, size=size, size_type=size_type, direction=direction, fees=0.001, slippage=0.001)
    assert report.identical and report.backtest_trades >= 8, report.differences[:1]


def test_trades_from_fills_split_a_reversal_like_the_backtest() -> None:
    times = pd.date_range("2024-01-01", periods=3, freq="1h", tz="UTC")
    fills = pd.DataFrame({"time": times, "side": ["buy", "sell", "buy"], "size": [2.0, 5.0, 3.0],
                          "price": [10.0, 12.0, 11.0], "fee": [0.2, 0.5, 0.3], "action": ["buy", "reverse", "close"],
                          "reason": ["", "", ""], "signal_bar": times})
    trades = trades_from_fills(fills)
    assert trades[["direction", "size", "entry_price", "exit_price"]].values.tolist() == [
        ["long", 2.0, 10.0, 12.0], ["short", 3.0, 12.0, 11.0]]
    assert trades["fees"].tolist() == pytest.approx([0.2 + 0.2, 0.3 + 0.3])


def test_an_old_ledger_gains_the_entry_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.execute("create table bots (name varchar(64) primary key, strategy varchar(200), exchange varchar(50), "
               "symbol varchar(50), timeframe varchar(10), position float, last_bar datetime, halted boolean, "
               "halted_reason varchar(300), day varchar(10), day_start_value float, day_cash_flow float)")
    db.execute("insert into bots values ('old', 's', 'e', 'A/B', '1h', 1.5, null, 0, null, null, null, 0)")
    db.commit()
    db.close()
    ledger = Ledger(f"sqlite:///{path}")
    state = ledger.bot("old")
    assert state.position == 1.5 and state.entry_price is None and state.entry_bar is None


def test_paper_replay_command_matches_the_backtests_orders(run_cli, workdir: Path) -> None:
    path = shared_file("ETH_BTC-5m.csv")
    args = ["--data", str(path), "--start", "2018-01-20", "--end", "2018-01-21T12:00", "-p", "fast=5", "-p", "slow=20",
            "--fees", "0.001", "--slippage", "0.0005", "--direction", "both", "--stop-loss", "0.01"]
    result = run_cli("paper", "replay", "sma_cross", *args, "--json", "replay.json")
    assert result.returncode == 0, result.stderr
    assert "bars replayed through the daemon's tick" in result.stdout
    replayed = json.loads((workdir / "replay.json").read_text())
    options = BacktestOptions(strategy="sma_cross", params=["fast=5", "slow=20"], data_file=str(path),
                              start="2018-01-20", end="2018-01-21T12:00", fees=0.001, slippage=0.0005,
                              direction="both", stop_loss=0.01)
    run = prepare_backtest(options, Settings(strategies=StrategySettings(dir=str(STRATEGIES)))).run()
    expected = [trade_record(row) for _, row in run.results[0].trades.iterrows()]
    assert len(replayed["trades"]) == len(expected) >= 10
    for got, want in zip(replayed["trades"], expected, strict=True):
        assert (got["direction"], got["entry_time"], got["exit_time"]) == (
            want["direction"], want["entry_time"], want["exit_time"])
        assert got["size"] == pytest.approx(want["size"], rel=1e-9)
        assert got["entry_price"] == pytest.approx(want["entry_price"], rel=1e-9)
    assert replayed["final_equity"] > 0 and replayed["bars"] == 433 and replayed["synthetic"] is False
    assert {"fills", "outcomes", "history", "warmup", "rules", "bars_per_second"} <= set(replayed)


def test_paper_replay_of_a_configured_bot(run_cli, workdir: Path) -> None:
    path = shared_file("orcl-1995-2014.txt")
    config = workdir / "systrade.toml"
    config.write_text(config.read_text() + '[[paper.bots]]\nname = "orcl-don"\nstrategy = "donchian_breakout"\n'
                      'params = { entry_window = 10, exit_window = 6 }\nexchange = "local"\nsymbol = "ORCL"\n'
                      'timeframe = "1d"\nsize = 50\nsize_type = "percent"\nslippage = 0.001\nfees = 0.0005\n')
    result = run_cli("paper", "replay", "orcl-don", "--data", str(path), "--start", "2014-01-01", "--json", "r.json")
    assert result.returncode == 0, result.stderr
    document = json.loads((workdir / "r.json").read_text())
    assert document["bot"] == "orcl-don" and document["params"] == {"entry_window": 10, "exit_window": 6}
    assert document["rules"]["size"] == 50 and document["rules"]["fees"] == 0.0005
    buy = next(f for f in document["fills"] if f["side"] == "buy")
    assert buy["fee"] == pytest.approx(buy["size"] * buy["price"] * 0.0005)
    assert len(document["trades"]) >= 3


def test_a_strategy_that_fails_on_short_history_is_reported_not_fatal() -> None:
    ref = load_strategy("sma_cross", STRATEGIES)
    frame = candles([FLAT] * 40)

    class Fussy(ref.cls):
        def signals(self, data):
            if len(data) < 10:
                raise ValueError("need 10 bars")
            return super().signals(data)

    result = do_replay(StrategyRef(Fussy, "test"), frame, history=20)
    assert result.outcomes["error"] == 9 and "need 10 bars" in result.errors[0]


def _runner(frame: pd.DataFrame, ref: StrategyRef, rules: PositionRules):
    market = ReplayMarket(frame, "T/USD", rules.fees)
    ledger = Ledger("sqlite://")
    ledger.ensure_account({"USD": 10_000.0})
    bot = replay_bot_settings("script", "T/USD", "1h", rules, {}, 5)
    return market, ledger, BotRunner(bot, ref, ledger, market, PaperBroker(market), rules=rules, clock=market.now)


def test_a_halted_bot_still_executes_its_stop() -> None:
    # long from bar 1's open (100, stop 95); the bot is halted after bar 1; bar 2 falls to 90: the stop fills at 95
    # (before the one fill model a halted bot returned at once and the position ran unprotected)
    frame = candles([FLAT, FLAT, (99, 100, 90, 91), FLAT, FLAT])
    market, ledger, runner = _runner(frame, scripted(frame, entries=[0]), PositionRules(stop_loss=0.05))
    for closed in (1, 2):
        market.advance(closed)
        runner.tick()
    assert ledger.bot("replay").position > 0
    ledger.set_halted("replay", True, "halted by a test")
    market.advance(3)
    result = runner.tick()
    assert result.outcome == "halted"
    stops = [f for f in ledger.fills() if f.side == "sell"]
    assert len(stops) == 1 and stops[0].price == pytest.approx(95) and ledger.bot("replay").position == 0


def test_a_halted_bot_exits_on_its_signal_but_opens_nothing() -> None:
    frame = candles([FLAT] * 7)
    market, ledger, runner = _runner(frame, scripted(frame, entries=[0, 4], exits=[2]), PositionRules())
    market.advance(1)
    runner.tick()  # the entry of bar 0 buys at bar 1's open
    ledger.set_halted("replay", True, "halted by a test")
    for closed in range(2, 7):
        market.advance(closed)
        runner.tick()
    sides = [f.side for f in ledger.fills()]
    assert sides == ["buy", "sell"]  # the exit of bar 2 sold; the entry of bar 4 bought nothing
    assert ledger.bot("replay").position == 0
