"""Stock bots in the daemon: Alpaca and KIS, in paper mode (fills simulated on the broker's quotes) and in sandbox
mode (real orders on the broker's paper account, filled later and in parts), on the market's calendar.

Everything is real: the `systrade` command as a subprocess, alpaca-py and our KIS client against the local fakes
(tests/fakes/alpaca.py, tests/fakes/kis.py), SQLite ledgers. The always-long strategy holds 10 shares from its
first candle on, so the position a bot should hold is known here without the code under test.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from conftest import STRATEGIES, systrade_exe, tree
from paper_helpers import always_long, toml_value

from systrade.data import calendars
from systrade.live.sessions import SessionTrigger, tick_times
from tests.fakes.alpaca import DEFAULT_API_KEY, DEFAULT_SECRET, FakeAlpaca
from tests.fakes.kis import FakeKis

SHARES = 10.0
ALPACA_KEYS = {"SYSTRADE_ALPACA_API_KEY": DEFAULT_API_KEY, "SYSTRADE_ALPACA_SECRET": DEFAULT_SECRET}


def session_candles(calendar: str, start: str, end: str, price: float = 100.0) -> pd.DataFrame:
    """Flat daily candles (open = high = low = close) on the calendar's sessions."""
    days = calendars.bar_opens(calendar, "1d", pd.Timestamp(start), pd.Timestamp(end))
    return pd.DataFrame({"open": price, "high": price, "low": price, "close": price, "volume": 1000.0},
                        index=days).rename_axis("time")


def write_config(tmp_path: Path, bot: dict, mode: str, brokers: str, balances: dict) -> Path:
    folder = tmp_path / "strategies"
    folder.mkdir(exist_ok=True)
    bot = {"name": "stock-bot", "strategy": always_long(folder), "params": {}, "timeframe": "1d", "size": SHARES,
           "size_type": "amount", **bot}
    lines = [f"[strategies]\ndir = {json.dumps(str(STRATEGIES))}",
             f"[data]\ndir = {json.dumps(str(tmp_path / 'data'))}",
             "[network]\nretries = 2\nbackoff_seconds = 0\nrate_limit_backoff_seconds = 0\nmax_backoff_seconds = 0",
             brokers,
             f"[paper]\ndatabase = {json.dumps('sqlite:///' + str(tmp_path / 'paper.sqlite'))}\n"
             f"balances = {toml_value(balances)}\ntick_delay_seconds = 0\nmode = \"{mode}\"",
             "[[paper.bots]]\n" + "\n".join(f"{k} = {toml_value(v)}" for k, v in bot.items())]
    path = tmp_path / "systrade.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def cli(config: Path, *args: str, env: dict) -> subprocess.CompletedProcess:
    full = {**os.environ, "SYSTRADE_CONFIG": str(config), "COLUMNS": "250", "NO_PROXY": "127.0.0.1",
            "XDG_CACHE_HOME": str(config.parent / "cache"), **env}
    return subprocess.run([systrade_exe(), *args], env=full, cwd=config.parent, capture_output=True, text=True,
                          timeout=180)


def query(db: Path, sql: str) -> list[tuple]:
    connection = sqlite3.connect(db)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


def assert_no_secret(tmp_path: Path, outputs: list[str], secrets: list[str], but_in: str = "") -> None:
    """No secret in any output, or in any file the runs wrote (ledger, logs...), except files under ``but_in``
    (the token cache, whose job is to keep the token)."""
    texts = list(outputs)
    for name in tree(tmp_path):
        if not (but_in and name.startswith(but_in)):
            texts.append((tmp_path / name).read_bytes().decode("utf-8", "replace"))
    for secret in secrets:
        assert not any(secret in text for text in texts), "a secret was written"


# ---------------------------------------------------------------- Alpaca


@pytest.fixture
def alpaca():
    with FakeAlpaca() as fake:
        fake.add_asset("AAPL", fractionable=False)
        fake.set_bars("AAPL", "1d", session_candles("XNYS", "2024-02-01", "2024-03-27"))
        # 28 March 2024, 13:30:03 UTC: the session has just opened; 27 March is the last closed daily candle
        fake.set_clock("2024-03-28T13:30:03Z", is_open=True, next_open="2024-04-01T13:30:00Z",
                       next_close="2024-03-28T20:00:00Z")
        fake.set_quote("AAPL", bid=100.0, ask=100.5, bid_size=500, ask_size=500)
        fake.set_trade("AAPL", 100.2)
        yield fake


def alpaca_config(tmp_path: Path, fake: FakeAlpaca, mode: str, **bot) -> Path:
    brokers = f"[brokers.alpaca]\ntrading_url = {json.dumps(fake.url)}\ndata_url = {json.dumps(fake.url)}"
    return write_config(tmp_path, {"exchange": "alpaca", "symbol": "AAPL", **bot}, mode, brokers,
                        {"USD": 10_000.0})


def test_an_alpaca_paper_bot_fills_at_the_quote_and_never_sends_an_order(tmp_path: Path, alpaca) -> None:
    config = alpaca_config(tmp_path, alpaca, "paper")
    run = cli(config, "paper", "run", "--once", env=ALPACA_KEYS)
    assert run.returncode == 0, run.stderr
    fills = query(tmp_path / "paper.sqlite", "select side, amount, price, fee from fills")
    assert fills == [("buy", SHARES, 100.5, 0.0)]  # the ask; Alpaca charges no commission
    assert alpaca.requests_to("/v2/orders", "POST") == []  # paper mode: the broker never sees an order
    status = cli(config, "paper", "status", "--json", "-", env=ALPACA_KEYS)
    doc = json.loads(status.stdout)
    balances = doc["balances"]
    assert balances["USD"] == pytest.approx(10_000 - SHARES * 100.5) and balances["AAPL"] == SHARES
    assert doc["bots"][0]["position"] == SHARES
    again = cli(config, "paper", "run", "--once", env=ALPACA_KEYS)  # the same session: no new candle, no order
    assert again.returncode == 0 and len(query(tmp_path / "paper.sqlite", "select * from fills")) == 1
    trades = json.loads(cli(config, "paper", "trades", "--json", "-", env=ALPACA_KEYS).stdout)
    assert [(t["bot"], t["symbol"], t["side"], t["amount"], t["price"], t["fee_currency"]) for t in trades] == [
        ("stock-bot", "AAPL", "buy", SHARES, 100.5, "USD")]
    assert_no_secret(tmp_path, [run.stdout, run.stderr, status.stdout, again.stderr], [DEFAULT_SECRET])


def test_a_paper_order_decided_after_the_close_fills_at_the_next_open_sized_at_its_prices(tmp_path: Path,
                                                                                          alpaca) -> None:
    db = tmp_path / "paper.sqlite"
    config = alpaca_config(tmp_path, alpaca, "paper", size="all", size_type="percent")
    alpaca.set_clock("2024-03-27T20:00:03Z", is_open=False, next_open="2024-03-28T13:30:00Z",
                     next_close="2024-03-28T20:00:00Z")  # just after the close of 27 March
    closed = cli(config, "paper", "run", "--once", env=ALPACA_KEYS)
    assert closed.returncode == 0, closed.stderr
    assert "pending" in closed.stderr and "next session's open" in closed.stderr
    assert query(db, "select status from orders") == [("intent",)]
    assert query(db, "select count(*) from fills") == [(0,)]
    still_closed = cli(config, "paper", "run", "--once", env=ALPACA_KEYS)  # later that night: still waiting
    assert still_closed.returncode == 0 and query(db, "select count(*) from fills") == [(0,)]

    alpaca.set_clock("2024-03-28T13:30:03Z", is_open=True, next_open="2024-04-01T13:30:00Z",
                     next_close="2024-03-28T20:00:00Z")
    alpaca.set_quote("AAPL", bid=101.5, ask=102.0, bid_size=500, ask_size=500)  # it opens higher
    opened = cli(config, "paper", "run", "--once", env=ALPACA_KEYS)
    assert opened.returncode == 0, opened.stderr
    # all the cash, whole shares (AAPL is not fractionable here), at the open's ask: 9,800 / 102 -> 98, not
    # the 99 that 100.5 (the ask after the close) would have bought
    assert query(db, "select side, amount, price from fills") == [("buy", 98.0, 102.0)]
    assert query(db, "select status, amount from orders") == [("filled", 98.0)]


def test_an_alpaca_sandbox_order_fills_in_parts_across_ticks_and_is_sent_once(tmp_path: Path, alpaca) -> None:
    db = tmp_path / "paper.sqlite"
    config = alpaca_config(tmp_path, alpaca, "sandbox")
    alpaca.fail("lostresponse", "/v2/orders", method="POST")  # the broker takes the order, the answer is lost
    first = cli(config, "paper", "run", "--once", env=ALPACA_KEYS)
    assert first.returncode == 0, first.stderr
    orders = alpaca.orders()
    assert len(orders) == 1 and orders[0]["qty"] in ("10", "10.0", 10, 10.0)
    cid = orders[0]["client_order_id"]
    assert query(db, "select client_order_id, status from orders") == [(cid, "submitted")]
    assert query(db, "select count(*) from fills") == [(0,)]

    alpaca.fill(cid, 4, 101.0)  # part of it fills
    second = cli(config, "paper", "run", "--once", env=ALPACA_KEYS)
    assert second.returncode == 0, second.stderr
    assert query(db, "select status, filled from orders") == [("partial", 4.0)]
    assert query(db, "select position from bots") == [(4.0,)]

    alpaca.fill(cid, 6, 102.0)  # the rest
    third = cli(config, "paper", "run", "--once", env=ALPACA_KEYS)
    assert third.returncode == 0, third.stderr
    assert query(db, "select status, amount, filled from orders") == [("filled", SHARES, SHARES)]
    [(amount, price)] = query(db, "select amount, price from fills")
    assert amount == SHARES and price == pytest.approx((4 * 101.0 + 6 * 102.0) / 10)
    [(position, cash)] = query(db, "select position, cash from bots")
    assert position == SHARES and cash == pytest.approx(10_000 - 4 * 101.0 - 6 * 102.0)
    assert len(alpaca.requests_to("/v2/orders", "POST")) == 1  # one send, through the lost answer and two restarts
    assert len(alpaca.orders()) == 1
    assert query(db, "select count(*) from events where kind = 'position'") == [(0,)]  # the account agrees

    alpaca._positions["AAPL"] += 5  # shares bought outside systrade
    fourth = cli(config, "paper", "run", "--once", env=ALPACA_KEYS)
    assert fourth.returncode == 0 and "holds 15 AAPL, the ledger's bots 10" in fourth.stderr
    assert query(db, "select count(*) from events where kind = 'position'") == [(1,)]
    assert query(db, "select position from bots") == [(SHARES,)]  # the bot's own position is unchanged


def test_an_open_order_holds_back_the_next_decision(tmp_path: Path, alpaca) -> None:
    """While the broker has not finished an order, the next bar places nothing on top of it."""
    db = tmp_path / "paper.sqlite"
    config = alpaca_config(tmp_path, alpaca, "sandbox")
    assert cli(config, "paper", "run", "--once", env=ALPACA_KEYS).returncode == 0
    alpaca.set_bars("AAPL", "1d", session_candles("XNYS", "2024-02-01", "2024-03-28"))
    alpaca.set_clock("2024-04-01T13:30:03Z", is_open=True, next_open="2024-04-02T13:30:00Z",
                     next_close="2024-04-01T20:00:00Z")
    later = cli(config, "paper", "run", "--once", env=ALPACA_KEYS)
    assert later.returncode == 0, later.stderr
    assert len(alpaca.orders()) == 1
    assert query(db, "select outcome from ticks order by id desc limit 1") == [("waiting",)]


# ---------------------------------------------------------------- KIS


@pytest.fixture
def kis():
    with FakeKis() as fake:
        today = pd.Timestamp.now(tz="UTC").normalize().tz_localize(None)  # the client asks for recent sessions
        recent = session_candles("XKRX", str(today - pd.Timedelta(days=90)), str(today - pd.Timedelta(days=2)),
                                 price=70_000.0)
        fake.add_stock("005930", recent, price=70_000.0)
        yield fake


def kis_env(fake: FakeKis) -> dict:
    return {"SYSTRADE_KIS_APP_KEY": fake.app_key, "SYSTRADE_KIS_APP_SECRET": fake.app_secret,
            "SYSTRADE_KIS_ACCOUNT": fake.account}


def kis_config(tmp_path: Path, fake: FakeKis, mode: str) -> Path:
    brokers = f"[brokers.kis]\nurl = {json.dumps(fake.url)}\nmin_interval_seconds = 0"
    return write_config(tmp_path, {"exchange": "kis", "symbol": "005930"}, mode, brokers, {"KRW": 10_000_000.0})


def test_a_kis_order_decided_after_hours_waits_for_the_open_and_the_token_is_issued_once(tmp_path: Path,
                                                                                         kis) -> None:
    db = tmp_path / "paper.sqlite"
    config = kis_config(tmp_path, kis, "sandbox")
    kis.set_session(open=False)  # KIS mock trading refuses orders outside the session
    closed = cli(config, "paper", "run", "--once", env=kis_env(kis))
    assert closed.returncode == 0, closed.stderr
    assert "pending" in closed.stderr and "next session's open" in closed.stderr
    assert query(db, "select status from orders") == [("intent",)]
    assert [o for o in kis.orders] == []

    kis.set_session(open=True)
    opened = cli(config, "paper", "run", "--once", env=kis_env(kis))
    assert opened.returncode == 0, opened.stderr
    assert len(kis.orders) == 1 and kis.orders[0].qty == SHARES
    assert query(db, "select status from orders") == [("submitted",)]

    kis.fill(kis.orders[0].odno, 10, 70_100.0)
    filled = cli(config, "paper", "run", "--once", env=kis_env(kis))
    assert filled.returncode == 0, filled.stderr
    [(amount, price, fee)] = query(db, "select amount, price, fee from fills")
    assert (amount, price) == (SHARES, 70_100.0)
    assert fee == pytest.approx(SHARES * 70_100.0 * 0.00015)  # the default commission; no tax on a buy
    assert len(kis.orders) == 1
    assert kis.token_issues == 1  # three processes, one token (cached on disk, reused)
    outputs = [r.stdout + r.stderr for r in (closed, opened, filled)]
    assert_no_secret(tmp_path, outputs, [kis.app_key, kis.app_secret, kis.account, kis.cano])
    assert_no_secret(tmp_path, outputs, list(kis.tokens), but_in="cache/")
    [cached] = [name for name in tree(tmp_path) if name.startswith("cache/")]
    assert oct((tmp_path / cached).stat().st_mode & 0o777) == "0o600"


def test_a_kis_order_whose_answer_is_lost_is_found_again_and_never_sent_twice(tmp_path: Path, kis) -> None:
    """KIS has no client order id: after a lost answer the day's orders are searched before anything is resent."""
    db = tmp_path / "paper.sqlite"
    config = kis_config(tmp_path, kis, "sandbox")
    kis.fail("/uapi/domestic-stock/v1/trading/order-cash", "lost")  # KIS takes the order, the answer never comes
    first = cli(config, "paper", "run", "--once", env=kis_env(kis))
    assert first.returncode == 0, first.stderr
    assert len(kis.orders) == 1
    [(status, broker_id)] = query(db, "select status, exchange_order_id from orders")
    assert status == "submitted" and broker_id == kis.orders[0].odno  # matched by stock, side, quantity, time
    for _ in range(2):  # restarts: looked up by its order number, never sent again
        again = cli(config, "paper", "run", "--once", env=kis_env(kis))
        assert again.returncode == 0, again.stderr
    assert len(kis.orders) == 1 and kis.count("/uapi/domestic-stock/v1/trading/order-cash") == 1
    kis.fill(kis.orders[0].odno, 10, 70_200.0)
    done = cli(config, "paper", "run", "--once", env=kis_env(kis))
    assert done.returncode == 0, done.stderr
    assert query(db, "select status, filled from orders") == [("filled", SHARES)]
    assert query(db, "select position from bots") == [(SHARES,)]


def test_a_kis_paper_bot_waits_for_krx_to_open_and_pays_commission_and_sell_tax(tmp_path: Path, kis,
                                                                                  monkeypatch) -> None:
    """Paper mode simulates the fill on KIS's quotes when KRX trades, with the commission on both sides and the
    transaction tax on sells. In-process (the runner, our KIS client and the fake), to set the market's clock."""
    from systrade.config import load_settings
    from systrade.live.daemon import build_runners, run_once
    from systrade.sim import kernel

    for name, value in {**kis_env(kis), "XDG_CACHE_HOME": str(tmp_path / "cache")}.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(str(kis_config(tmp_path, kis, "paper")))
    ledger, [runner] = build_runners(settings)
    night = pd.Timestamp("2024-09-13 07:00", tz="UTC")  # 16:00 in Seoul: KRX has closed
    runner.market.now = lambda: night.timestamp()
    [result] = run_once([runner])
    assert result.outcome == "pending" and "next session's open" in result.message
    assert ledger.fills() == []
    runner.market.now = lambda: pd.Timestamp("2024-09-19 00:00:05", tz="UTC").timestamp()  # after Chuseok
    run_once([runner])
    [fill] = ledger.fills()
    assert (fill.side, fill.amount, fill.price) == ("buy", SHARES, 70_000.0 + 100)  # the best ask of the book
    assert fill.fee == pytest.approx(SHARES * fill.price * 0.00015) and fill.fee_currency == "KRW"
    params = runner.params()
    assert params[kernel.P_BUY_FEE] == pytest.approx(0.00015)
    assert params[kernel.P_SELL_FEE] == pytest.approx(0.00015 + 0.0015)  # the default commission and tax
    assert kis.count("/uapi/domestic-stock/v1/trading/order-cash") == 0  # paper mode: no order reaches KIS
    ledger.engine.dispose()


# ---------------------------------------------------------------- the calendar


def test_stock_bots_tick_after_each_close_and_at_each_open_never_on_a_holiday() -> None:
    import exchange_calendars

    year = tick_times("XNYS", "1d", pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-12-31 23:59", tz="UTC"),
                      3)
    xnys = exchange_calendars.get_calendar("XNYS")
    sessions = xnys.sessions_in_range("2024-01-01", "2024-12-31")
    expected = sorted([xnys.session_open(d) for d in sessions] + [xnys.session_close(d) for d in sessions])
    assert len(sessions) == 252 and list(year) == [t + pd.Timedelta(seconds=3) for t in expected]
    assert not any(t.strftime("%m-%d") in ("07-04", "12-25", "11-28") for t in year)
    assert pd.Timestamp("2024-07-03 17:00:03", tz="UTC") in year  # the early close before Independence Day
    # the trigger APScheduler runs: after the early close on the 3rd, the next tick is the 5th's open
    trigger = SessionTrigger("XNYS", "1h", 3)
    now = pd.Timestamp("2024-07-03 17:30", tz="UTC").to_pydatetime()
    fired = trigger.get_next_fire_time(None, now)
    assert fired == pd.Timestamp("2024-07-05 13:30:03", tz="UTC")  # not on the 4th
    assert trigger.get_next_fire_time(fired, fired) == pd.Timestamp("2024-07-05 14:00:03", tz="UTC")  # 13:00 bar
    chuseok = tick_times("XKRX", "1h", pd.Timestamp("2024-09-13 07:00", tz="UTC"),
                         pd.Timestamp("2024-09-19 02:00", tz="UTC"))
    assert chuseok[0] == pd.Timestamp("2024-09-19 00:00", tz="UTC")  # 13 September closed at 06:30; 16-18 closed


def test_the_daemon_schedules_a_stock_bot_for_the_next_session_open(tmp_path: Path, alpaca) -> None:
    import exchange_calendars

    config = alpaca_config(tmp_path, alpaca, "paper")
    daemon = subprocess.Popen([systrade_exe(), "paper", "run"], cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "SYSTRADE_CONFIG": str(config), "NO_PROXY": "127.0.0.1",
                                   **ALPACA_KEYS})
    try:
        line = ""
        while "scheduled" not in line:
            line = daemon.stderr.readline()
            assert line, "the daemon stopped before scheduling"
    finally:
        daemon.terminate()
        daemon.communicate(timeout=60)
    xnys, now = exchange_calendars.get_calendar("XNYS"), pd.Timestamp.now(tz="UTC").floor("min")
    expected = min(xnys.next_open(now), xnys.next_close(now))  # the next open, or the close of today's session
    assert f"next tick {expected.strftime('%Y-%m-%d %H:%M:%S')}" in line, line
