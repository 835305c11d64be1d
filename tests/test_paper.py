"""Paper trading against the local fake Binance with the real ccxt client, SQLite and APScheduler."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import ccxt
import pandas as pd
import pytest
from conftest import STRATEGIES, systrade_exe
from fakes.binance import FAULT_KINDS, FakeBinance, FaultPlan
from paper_helpers import flat_candles, paper_config, sma_bot

from systrade.backtest.engine import simulate
from systrade.backtest.run import compute_signals
from systrade.config import Settings, load_settings
from systrade.data.load import Candles
from systrade.exchange import RetryPolicy, create_exchange
from systrade.live.broker import OrderRequest, PaperBroker
from systrade.live.daemon import build_runners, run_once
from systrade.live.market import MarketData
from systrade.sim.rules import PositionRules
from systrade.strategy import build_strategy, load_strategy

MINUTE = 60_000
PUBLIC = {"/api/v3/exchangeInfo", "/api/v3/klines", "/api/v3/depth", "/api/v3/ticker/24hr", "/api/v3/time",
          "/api/v3/ticker/price", "/api/v3/ticker/bookTicker"}
FEE = 0.001  # the fake market's taker fee as ccxt reports it

# A 418 bans the exchange for 60 s (systrade.exchange.BAN_SECONDS, tested in test_korean_exchanges.py):
# the random faults here are the ones retried at once.
NO_BAN = tuple(k for k in FAULT_KINDS if k != "418")


def ms(stamp: pd.Timestamp) -> int:
    return int(stamp.value // 1_000_000)


def backtest_fills(candles: pd.DataFrame, direction: str, fast: int = 3, slow: int = 8) -> pd.DataFrame:
    """The vectorized backtest's orders (one per bar, a reversal is one order) for the same candles."""
    strategy = build_strategy(load_strategy("sma_cross", STRATEGIES), {"fast": fast, "slow": slow})
    signals = compute_signals(strategy, Candles("BTC/USDT", "1m", candles, "test", False))
    orders = simulate({"X": candles}, {"X": signals}, PositionRules(direction=direction, fees=FEE), 10_000.0,
                      pd.Timedelta(minutes=1)).orders()
    return orders[["time", "side", "size", "price"]].reset_index(drop=True)


def ledger_fills(ledger, bar: pd.Timedelta) -> pd.DataFrame:
    """Paper fills keyed like the backtest: the signal bar plus one bar is the bar the order fills in."""
    rows = [(pd.Timestamp(f.bar_time).tz_localize("UTC") + bar if pd.Timestamp(f.bar_time).tzinfo is None
             else pd.Timestamp(f.bar_time) + bar, f.side, f.amount, f.price) for f in ledger.fills()]
    return pd.DataFrame(rows, columns=["time", "side", "size", "price"])


@pytest.mark.parametrize("direction", ["long", "both"])
def test_ticks_place_the_backtests_orders(tmp_path: Path, direction: str) -> None:
    candles = flat_candles(160, pd.Timestamp("2024-05-01", tz="UTC"), "1min")
    first = 60
    candles.iloc[:first, :4] = 100.0  # no signal before the bot starts: both begin flat
    with FakeBinance(clock_ms=ms(candles.index[first]) + 30_000, spread_bps=0, book_qty=1e6) as fake:
        fake.add_market("BTC/USDT", candles, tick_size=1e-8, step_size=1e-8, min_qty=1e-8)
        config = paper_config(tmp_path / "systrade.toml", fake, [sma_bot(direction=direction)])
        ledger, runners = build_runners(load_settings(str(config)))
        for _ in range(first, len(candles) - 1):
            run_once(runners)
            fake.advance(MINUTE)
        assert {r.path for r in fake.requests} <= PUBLIC  # paper trading never calls a private endpoint
    paper = ledger_fills(ledger, pd.Timedelta(minutes=1))
    expected = backtest_fills(candles, direction)
    assert expected["time"].min() > candles.index[first]
    assert len(paper) >= 6
    assert paper["time"].tolist() == expected["time"].tolist()
    assert paper["side"].tolist() == expected["side"].tolist()
    for got, want in zip(paper["price"], expected["price"], strict=True):
        assert got == pytest.approx(want, abs=2e-8)  # one tick: the fake's ask is one tick above the open
    for got, want in zip(paper["size"], expected["size"], strict=True):
        assert got == pytest.approx(want, rel=1e-7)  # 1e-8 steps and the one-tick spread
    balances = ledger.balances()
    fills = ledger.fills()
    usdt = 10_000.0 + sum((-1 if f.side == "buy" else 1) * f.amount * f.price - f.fee for f in fills)
    btc = sum((1 if f.side == "buy" else -1) * f.amount for f in fills)
    assert balances["USDT"] == pytest.approx(usdt, rel=1e-12, abs=1e-9)
    assert balances["BTC"] == pytest.approx(btc, abs=1e-12)
    assert ledger.bot("btc-sma").position == pytest.approx(btc, abs=1e-12)


def test_repeated_ticks_and_restarts_never_duplicate_an_order(tmp_path: Path) -> None:
    candles = flat_candles(120, pd.Timestamp("2024-05-01", tz="UTC"), "1min")
    with FakeBinance(clock_ms=ms(candles.index[60]) + 30_000, spread_bps=0, book_qty=1e6) as fake:
        fake.add_market("BTC/USDT", candles, tick_size=1e-8, step_size=1e-8, min_qty=1e-8)
        config = paper_config(tmp_path / "systrade.toml", fake, [sma_bot()])
        for _ in range(50):
            ledger, runners = build_runners(load_settings(str(config)))  # a restart every bar
            run_once(runners)
            run_once(runners)  # a duplicated tick
            fake.advance(MINUTE)
    orders = ledger.orders()
    assert len(orders) >= 3
    assert len({o.bar_time for o in orders}) == len(orders) == len(ledger.fills())


def test_an_intent_left_by_a_crash_is_completed_once(tmp_path: Path) -> None:
    candles = flat_candles(120, pd.Timestamp("2024-05-01", tz="UTC"), "1min")
    with FakeBinance(clock_ms=ms(candles.index[60]) + 30_000, spread_bps=0, book_qty=1e6) as fake:
        fake.add_market("BTC/USDT", candles, tick_size=1e-8, step_size=1e-8, min_qty=1e-8)
        config = paper_config(tmp_path / "systrade.toml", fake, [sma_bot()])
        ledger, runners = build_runners(load_settings(str(config)))
        runner = runners[0]
        original = runner.broker.execute
        runner.broker.execute = lambda *a, **k: (_ for _ in ()).throw(SystemExit("killed mid-order"))
        for _ in range(40):
            try:
                run_once(runners)
            except SystemExit:
                break
            fake.advance(MINUTE)
        intents = ledger.orders("intent")
        assert len(intents) == 1 and ledger.fills() == []
        runner.broker.execute = original
        ledger, runners = build_runners(load_settings(str(config)))  # the restart
        run_once(runners)
        run_once(runners)
    assert ledger.orders("intent") == []
    fills = ledger.fills()
    assert len(fills) == 1 and fills[0].client_order_id == intents[0].client_order_id


def test_exchange_faults_skip_ticks_and_the_bot_catches_up(tmp_path: Path) -> None:
    candles = flat_candles(120, pd.Timestamp("2024-05-01", tz="UTC"), "1min")
    with FakeBinance(clock_ms=ms(candles.index[60]) + 30_000, spread_bps=0, book_qty=1e6) as fake:
        fake.add_market("BTC/USDT", candles, tick_size=1e-8, step_size=1e-8, min_qty=1e-8)
        config = paper_config(tmp_path / "systrade.toml", fake, [sma_bot(), sma_bot(name="eth-sma")],
                              timeout_ms=300, retries=1)
        ledger, runners = build_runners(load_settings(str(config)))
        fake.faults = FaultPlan(rate=0.3, seed=3, slow_seconds=0.5, kinds=NO_BAN)
        outcomes = []
        for _ in range(40):
            outcomes += [r.outcome for r in run_once(runners)]
            fake.advance(MINUTE)
        fake.faults = None
        run_once(runners)
        newest = candles.index[60 + 40 - 1]
    assert "skipped" in outcomes and "error" not in outcomes
    assert outcomes.count("skipped") < len(outcomes) / 2
    for bot in ("btc-sma", "eth-sma"):
        assert pd.Timestamp(ledger.bot(bot).last_bar).tz_localize(None) == newest.tz_localize(None)


def until_daemon(process: subprocess.Popen, reached, deadline: float, stderr: Path) -> None:
    """Poll ``reached()`` while the daemon runs; fail with its error output (written to ``stderr``) if it exits or
    the deadline passes."""
    end = time.monotonic() + deadline
    while not reached():
        if process.poll() is not None:
            pytest.fail(f"the daemon exited with {process.returncode}: {stderr.read_text()[-3000:]}")
        if time.monotonic() > end:
            process.kill()
            process.wait()
            pytest.fail(f"not reached within {deadline} s: {stderr.read_text()[-3000:]}")
        time.sleep(0.01)


def _count(folder: Path, sql: str) -> int:
    path = folder / "paper.sqlite"
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
            return int(db.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:  # the daemon has not created its tables yet
        return 0


def ticked_bars(folder: Path) -> int:
    return _count(folder, "select count(distinct bar_time) from ticks where bar_time is not null")


def fills_count(folder: Path) -> int:
    return _count(folder, "select count(*) from fills")


def test_daemon_process_runs_bots_on_schedule_and_stops_cleanly(tmp_path: Path) -> None:
    now = pd.Timestamp.now(tz="UTC").floor("s")
    candles = flat_candles(400, now - pd.Timedelta(seconds=200), "1s", period=1.2)
    candles.iloc[:205, :4] = 100.0  # flat until the daemon has started: no signal before it runs
    with FakeBinance(spread_bps=0, book_qty=1e6) as fake:
        fake.add_market("BTC/USDT", candles, tick_size=1e-8, step_size=1e-8, min_qty=1e-8)
        config = paper_config(tmp_path / "systrade.toml", fake, [sma_bot(timeframe="1s", params={"fast": 2,
                                                                                                   "slow": 5})])
        fake.faults = FaultPlan(rate=0.3, seed=9, kinds=("429", "500html", "badjson", "drop"))
        log = tmp_path / "log.jsonl"
        env = {**os.environ, "SYSTRADE_CONFIG": str(config)}
        errors = tmp_path / "stderr.txt"
        with open(errors, "w") as sink:
            process = subprocess.Popen([systrade_exe(), "paper", "run", "--log-json", str(log)], env=env,
                                       cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=sink, text=True)
        # runs until it has ticked 6 bars and traded (a deadline, not a fixed sleep: start-up is slow under load)
        until_daemon(process, lambda: ticked_bars(tmp_path) >= 6 and fills_count(tmp_path) > 0, 150, errors)
        # still running despite 30% failing requests
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        assert process.returncode == 0, errors.read_text()[-3000:]
        assert {r.path for r in fake.requests} <= PUBLIC
    db = sqlite3.connect(tmp_path / "paper.sqlite")
    bars = [row[0] for row in db.execute("select bar_time from ticks where bar_time is not null")]
    assert len(set(bars)) >= 6
    assert '"level": "info"' in log.read_text()
    fills = db.execute("select side, price, bar_time from fills").fetchall()
    assert fills, "the sine after the flat start crosses every few bars"
    assert db.execute("select count(*) from orders").fetchone()[0] == len(fills)


def test_paper_broker_precision_minimums_and_balance(tmp_path: Path) -> None:
    candles = flat_candles(50, pd.Timestamp("2024-05-01", tz="UTC"), "1min")
    with FakeBinance(clock_ms=ms(candles.index[-1]), spread_bps=0, book_qty=1e6) as fake:
        fake.add_market("BTC/USDT", candles, tick_size=0.01, step_size=0.001, min_qty=0.01, min_notional=10.0)
        settings = Settings.model_validate({"exchanges": {"binance": {**fake.ccxt_config(),
                                                                      "enableRateLimit": False}}})
        broker = PaperBroker(MarketData(create_exchange("binance", settings, with_secrets=False),
                                        RetryPolicy(retries=0)))

        def order(side: str, amount: float, quote: float = 1e6, base: float = 0.0):
            return broker.execute(OrderRequest("cid", "BTC/USDT", side, amount, 0.0, None, 0.0,
                                               base_available=base, quote_available=quote))

        filled = order("buy", 0.5129)
        assert filled.status == "filled" and filled.amount == 0.512  # truncated to the step size
        assert filled.fee == pytest.approx(filled.amount * filled.price * FEE)
        assert "below the market minimum 0.01" in order("buy", 0.0099).reason
        assert "order value" in order("buy", 0.05).reason  # ~5 USDT < 10 USDT minimum notional
        assert "insufficient balance" in order("buy", 1.0, quote=50.0).reason
        assert "insufficient balance" in order("sell", 1.0, base=0.5).reason
        assert order("sell", 0.5, base=0.5).status == "filled"
        assert {r.path for r in fake.requests} <= PUBLIC


def test_status_trades_halt_resume_commands(tmp_path: Path) -> None:
    candles = flat_candles(120, pd.Timestamp("2024-05-01", tz="UTC"), "1min")
    with FakeBinance(clock_ms=ms(candles.index[60]) + 30_000, spread_bps=0, book_qty=1e6) as fake:
        fake.add_market("BTC/USDT", candles, tick_size=1e-8, step_size=1e-8, min_qty=1e-8)
        config = paper_config(tmp_path / "systrade.toml", fake, [sma_bot()])
        env = {**os.environ, "SYSTRADE_CONFIG": str(config)}

        def cli(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([systrade_exe(), *args], env=env, cwd=tmp_path, capture_output=True, text=True,
                                  timeout=120)

        _, runners = build_runners(load_settings(str(config)))
        for _ in range(19):  # in-process ticks are quick; the last one goes through the real command
            run_once(runners)
            fake.advance(MINUTE)
        assert cli("paper", "run", "--once").returncode == 0
        fake.advance(MINUTE)

        status = json.loads(cli("paper", "status", "--json", "-").stdout)
        assert {"equity", "cash", "balances", "bots"} <= set(status)
        legacy = cli("paper", "status", "--json")  # the old flag form still prints it, with a note on stderr
        assert json.loads(legacy.stdout) == status and "deprecated" in legacy.stderr
        assert cli("paper", "status", "--json", "status.json").stdout == ""
        assert json.loads((tmp_path / "status.json").read_text()) == status
        bot = status["bots"][0]
        assert {k: bot[k] for k in ("name", "strategy", "exchange", "symbol", "timeframe", "halted")} == {
            "name": "btc-sma", "strategy": "sma_cross", "exchange": "binance", "symbol": "BTC/USDT",
            "timeframe": "1m", "halted": False}
        assert bot["last_bar"].startswith(str(candles.index[79].date()))
        trades = json.loads(cli("paper", "trades", "--json").stdout)
        assert trades and set(trades[0]) >= {"bot", "symbol", "side", "amount", "price", "fee", "bar_time",
                                             "client_order_id", "time"}
        assert bot["position"] == pytest.approx(sum(t["amount"] * (1 if t["side"] == "buy" else -1) for t in trades))
        assert cli("paper", "halt", "btc-sma").returncode == 0
        fake.advance(MINUTE)
        cli("paper", "run", "--once")
        halted = json.loads(cli("paper", "status", "--json").stdout)["bots"][0]
        assert halted["halted"] is True
        # a halted bot keeps watching its bars (its stops and exits still execute) but opens nothing
        assert halted["last_bar"] > bot["last_bar"] and abs(halted["position"]) <= abs(bot["position"])
        assert cli("paper", "resume").returncode == 0
        fake.advance(MINUTE)
        cli("paper", "run", "--once")
        assert json.loads(cli("paper", "status", "--json").stdout)["bots"][0]["last_bar"] > halted["last_bar"]
        unknown = cli("paper", "halt", "nobot")
        assert unknown.returncode == 2 and "unknown bot 'nobot'" in unknown.stderr


def test_daily_loss_limit_halts_and_stays_halted(tmp_path: Path) -> None:
    candles = flat_candles(120, pd.Timestamp("2024-05-01", tz="UTC"), "1min")
    with FakeBinance(clock_ms=ms(candles.index[60]) + 30_000, spread_bps=0, book_qty=1e6) as fake:
        fake.add_market("BTC/USDT", candles, tick_size=1e-8, step_size=1e-8, min_qty=1e-8)
        config = paper_config(tmp_path / "systrade.toml", fake, [sma_bot(daily_loss_limit=0.0005)])
        ledger, runners = build_runners(load_settings(str(config)))
        for _ in range(50):
            run_once(runners)
            fake.advance(MINUTE)
        assert ledger.bot("btc-sma").halted and "daily loss limit" in ledger.bot("btc-sma").halted_reason
        ledger, runners = build_runners(load_settings(str(config)))
        assert run_once(runners)[0].outcome == "halted"


def test_max_position_caps_the_order(tmp_path: Path) -> None:
    candles = flat_candles(120, pd.Timestamp("2024-05-01", tz="UTC"), "1min")
    with FakeBinance(clock_ms=ms(candles.index[60]) + 30_000, spread_bps=0, book_qty=1e6) as fake:
        fake.add_market("BTC/USDT", candles, tick_size=1e-8, step_size=1e-8, min_qty=1e-8)
        config = paper_config(tmp_path / "systrade.toml", fake, [sma_bot(max_position=0.25)])
        ledger, runners = build_runners(load_settings(str(config)))
        for _ in range(30):
            run_once(runners)
            fake.advance(MINUTE)
    buy = next(f for f in ledger.fills() if f.side == "buy")
    assert buy.amount * buy.price == pytest.approx(2500.0, rel=1e-4)


def test_bad_paper_config_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "systrade.toml").write_text("[paper]\nmode = 'live'\n")
    env = {**os.environ, "SYSTRADE_CONFIG": str(tmp_path / "systrade.toml")}
    result = subprocess.run([systrade_exe(), "paper", "run", "--once"], env=env, cwd=tmp_path, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2 and "paper.mode" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists()


def test_ccxt_is_the_real_client() -> None:
    assert create_exchange("binance", Settings(), with_secrets=False).__class__ is ccxt.binance


def test_sigkill_during_ticks_then_restart_keeps_the_books_exact(tmp_path: Path) -> None:
    now = pd.Timestamp.now(tz="UTC").floor("s")
    candles = flat_candles(600, now - pd.Timedelta(seconds=300), "1s", period=1.2)
    with FakeBinance(spread_bps=0, book_qty=1e6) as fake:
        fake.add_market("BTC/USDT", candles, tick_size=1e-8, step_size=1e-8, min_qty=1e-8)
        config = paper_config(tmp_path / "systrade.toml", fake, [sma_bot(timeframe="1s", direction="both",
                                                                         params={"fast": 2, "slow": 5})])
        fake.faults = FaultPlan(rate=1.0, kinds=("slow",), paths=("/api/v3/depth",), slow_seconds=0.4)
        env = {**os.environ, "SYSTRADE_CONFIG": str(config)}
        for _ in range(4):  # kill inside a tick: while the second order of this run waits 0.4 s for the book
            seen = fake.count("/api/v3/depth") + 1  # the first completes an order the last kill interrupted, or trades
            errors = tmp_path / "stderr.txt"
            with open(errors, "w") as sink:
                process = subprocess.Popen([systrade_exe(), "paper", "run"], env=env, cwd=tmp_path,
                                           stdout=subprocess.DEVNULL, stderr=sink)
            until_daemon(process, lambda seen=seen: fake.count("/api/v3/depth") > seen, 150, errors)
            process.send_signal(signal.SIGKILL)
            process.wait()
        fake.faults = None
        final = subprocess.run([systrade_exe(), "paper", "run", "--once"], env=env, cwd=tmp_path,
                               capture_output=True, text=True, timeout=120)
        assert final.returncode == 0, final.stderr
    db = sqlite3.connect(tmp_path / "paper.sqlite")
    orders = db.execute("select client_order_id, bar_time, status from orders").fetchall()
    fills = db.execute("select side, amount, price, fee, client_order_id from fills").fetchall()
    assert len(fills) >= 2, "the daemon traded between the kills"
    assert len({o[1] for o in orders}) == len(orders)  # one order per bar at most
    assert [o for o in orders if o[2] == "intent"] == []  # every interrupted order was completed on restart
    assert len({f[4] for f in fills}) == len(fills) == sum(1 for o in orders if o[2] == "filled")
    balances = dict(db.execute("select asset, amount from balances").fetchall())
    usdt = 10_000.0 + sum((-1 if s == "buy" else 1) * a * p - fee for s, a, p, fee, _ in fills)
    btc = sum((1 if s == "buy" else -1) * a for s, a, _, _, _ in fills)
    assert balances["USDT"] == pytest.approx(usdt, rel=1e-12, abs=1e-9)
    assert balances["BTC"] == pytest.approx(btc, abs=1e-12)
    assert db.execute("select position from bots").fetchone()[0] == pytest.approx(btc, abs=1e-12)


def test_sandbox_mode_sends_real_orders_and_finds_a_lost_one(tmp_path: Path, monkeypatch) -> None:
    from fakes.binance import DEFAULT_API_KEY, DEFAULT_SECRET

    candles = flat_candles(120, pd.Timestamp("2024-05-01", tz="UTC"), "1min")
    candles.iloc[:60, :4] = 100.0
    with FakeBinance(clock_ms=ms(candles.index[60]) + 30_000, spread_bps=0, book_qty=1e6) as fake:
        fake.add_market("BTC/USDT", candles, tick_size=0.01, step_size=0.00001, min_qty=0.00001)
        fake.set_balances({"USDT": 10_000.0, "BTC": 0.0})
        config = paper_config(tmp_path / "systrade.toml", fake, [sma_bot(size=0.5, size_type="amount")],
                              extra='mode = "sandbox"')
        monkeypatch.delenv("SYSTRADE_BINANCE_API_KEY", raising=False)
        with pytest.raises(Exception, match="sandbox mode needs testnet keys in SYSTRADE_BINANCE_API_KEY"):
            build_runners(load_settings(str(config)))
        monkeypatch.setenv("SYSTRADE_BINANCE_API_KEY", DEFAULT_API_KEY)
        monkeypatch.setenv("SYSTRADE_BINANCE_SECRET", DEFAULT_SECRET)
        ledger, runners = build_runners(load_settings(str(config)))
        fake.faults = FaultPlan(rate=1.0, kinds=("lostresponse",), paths=("/api/v3/order",), max_faults=1)
        for _ in range(50):
            run_once(runners)
            fake.advance(MINUTE)
        exchange_orders = fake.orders()
        assert fake.faults.injected == 1
    fills = ledger.fills()
    assert len(fills) >= 3 and len(exchange_orders) == len(fills)  # the lost answer did not cause a resend
    assert sorted(o["clientOrderId"] for o in exchange_orders) == sorted(f.client_order_id for f in fills)
    assert all(f.amount == pytest.approx(0.5) or f.side == "sell" for f in fills)
    assert ledger.bot("btc-sma").position == pytest.approx(
        sum(f.amount * (1 if f.side == "buy" else -1) - (f.fee if f.fee_currency == "BTC" else 0) for f in fills))
