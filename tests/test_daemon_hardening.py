"""Hardening the daemon: crashes at every step of the order protocol, one daemon per ledger, a ledger that
disappears under the daemon, unknown markets, failures cron and the log must see, impossible balances.

Everything is real: the `systrade` command as a subprocess (killed with SIGKILL at chosen steps), the ccxt
client against the local fake Binance, SQLite files, APScheduler. The moments to kill are made exact by the
fake holding a request until the test releases it (``FakeBinance.hold``), not by sleeping. The position a
bot should hold is worked out here from the candles: the always-long strategy holds one unit from its first
candle on, whatever happens to the process.
"""

from __future__ import annotations

import logging
import os
import re
import resource
import signal
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import ccxt
import pandas as pd
import pytest
from conftest import systrade_exe, tree
from fakes.binance import DEFAULT_API_KEY, DEFAULT_SECRET, FakeBinance, FaultPlan
from paper_helpers import always_long, fake_clock, flat_candles, paper_config, sma_bot, stepped_candles

from systrade.config import load_settings
from systrade.live.daemon import build_runners, run_once

MINUTE = 60_000
START = pd.Timestamp("2024-05-01", tz="UTC")
NEWEST = 19  # the newest closed candle when a test starts: the fake's clock is half-way through candle 20
TAKER = 0.001  # the fake's taker fee; in sandbox mode Binance keeps it out of the base currency bought
UNITS = 1.0  # what the always-long bot buys (size = 1, size_type = "amount")
SANDBOX_KEYS = {"SYSTRADE_BINANCE_API_KEY": DEFAULT_API_KEY, "SYSTRADE_BINANCE_SECRET": DEFAULT_SECRET}
FILL_LINE = re.compile(r"(?:bought|sold) [0-9.e+-]+ \S+ @ [0-9.e+-]+(?: to \w+)?, fee [0-9.e+-]+ \w+ "
                       r"\(order (st[0-9a-f]+-[0-9]+[a-z]?)\)")


def ms(stamp: pd.Timestamp) -> int:
    return int(stamp.value // 1_000_000)


def held_position(mode: str) -> float:
    """What the always-long bot holds after its one buy: one unit, less the exchange's fee in sandbox mode."""
    return UNITS * (1 - TAKER) if mode == "sandbox" else UNITS


def minute_fake(bars: int = 40) -> FakeBinance:
    """A fake with BTC/USDT (flat at 100) and ETH/BTC, its clock frozen half-way through candle NEWEST + 1."""
    candles = stepped_candles([100.0] * bars, START)
    fake = FakeBinance(clock_ms=ms(candles.index[NEWEST + 1]) + 30_000, spread_bps=0, book_qty=1e6).start()
    fake.add_market("BTC/USDT", candles, tick_size=0.01, step_size=0.00001, min_qty=0.00001)
    fake.add_market("ETH/BTC", stepped_candles([0.05] * bars, START), tick_size=0.00001, step_size=0.0001,
                    min_qty=0.0001, min_notional=0.0001)
    fake.set_balances({"USDT": 10_000.0, "BTC": 0.0})
    return fake


def long_bot(tmp_path: Path, **overrides) -> dict:
    """The always-long bot buying one unit; its strategy file lives in ``strategies/`` (Python caches it there)."""
    folder = tmp_path / "strategies"
    folder.mkdir(exist_ok=True)
    return sma_bot(strategy=always_long(folder), params={}, size=UNITS, size_type="amount", **overrides)


def written(tmp_path: Path) -> set[str]:
    """Every file under ``tmp_path`` but the strategy's folder."""
    return {name for name in tree(tmp_path) if not name.startswith("strategies/")}


def config_for(tmp_path: Path, fake: FakeBinance, bots: list[dict], mode: str = "paper", **kwargs) -> Path:
    return paper_config(tmp_path / "systrade.toml", fake, bots, extra=f'mode = "{mode}"', **kwargs)


def environment(config: Path, mode: str = "paper") -> dict:
    env = {**os.environ, "SYSTRADE_CONFIG": str(config), "COLUMNS": "250"}
    if mode == "sandbox":
        env.update(SANDBOX_KEYS)
    return env


def cli(config: Path, *args: str, mode: str = "paper", timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([systrade_exe(), *args], env=environment(config, mode), cwd=config.parent,
                          capture_output=True, text=True, timeout=timeout)


def start(config: Path, *args: str, mode: str = "paper", **kwargs) -> subprocess.Popen:
    return subprocess.Popen([systrade_exe(), *args], env=environment(config, mode), cwd=config.parent,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def query(db: Path, sql: str, *args) -> list[tuple]:
    connection = sqlite3.connect(db, timeout=30)
    try:
        return connection.execute(sql, args).fetchall()
    finally:
        connection.close()


def wait_for(condition, what: str, process: subprocess.Popen | None = None, limit: float = 120.0) -> None:
    """Poll until ``condition()`` holds (a bound against hanging, not a timing assertion)."""
    deadline = time.monotonic() + limit
    while not condition():
        if process is not None and process.poll() is not None:
            pytest.fail(f"the daemon exited ({process.returncode}) before {what}: {process.communicate()[1][-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)


def count(db: Path, sql: str) -> int:
    """The number ``sql`` counts in the ledger at ``db`` (0 before the daemon has created it and its tables)."""
    try:
        return query(db, sql)[0][0] if db.exists() else 0
    except sqlite3.OperationalError:
        return 0


def filled(db: Path) -> int:
    return count(db, "select count(*) from orders where status = 'filled'")


def bot_row(db: Path) -> tuple[float, int, int]:
    """The bot's position, its filled orders and the orders left as intents."""
    [(position,)] = query(db, "select position from bots")
    filled = query(db, "select count(*) from orders where status = 'filled'")[0][0]
    intents = query(db, "select count(*) from orders where status = 'intent'")[0][0]
    return position, filled, intents


# ---------------------------------------------------------------- 1. a crash at any step never buys twice


SANDBOX_STEPS = {
    # step -> (method, path, whether the exchange processes the held request on release, requests to let by)
    "after the intent is written, before the send": ("GET", "/api/v3/order", False, 0),
    "the send is in flight and the exchange takes it": ("POST", "/api/v3/order", True, 0),
    "the send is in flight and never reaches the exchange": ("POST", "/api/v3/order", False, 0),
    "after the send, the answer lost, before the fill is recorded": ("GET", "/api/v3/order", False, 1),
}


@pytest.mark.parametrize("step", list(SANDBOX_STEPS))
def test_sigkill_at_each_step_of_the_order_protocol_never_buys_twice(tmp_path: Path, step: str) -> None:
    method, path, process, skip = SANDBOX_STEPS[step]
    db = tmp_path / "paper.sqlite"
    with minute_fake() as fake:
        config = config_for(tmp_path, fake, [long_bot(tmp_path)], mode="sandbox")
        if skip:  # the order is placed, then its answer is lost: the client looks it up, and is killed there
            fake.faults = FaultPlan(kinds=("lostresponse",), paths=("/api/v3/order",), methods=("POST",),
                                    max_faults=1)
        hold = fake.hold(method, path, process=process, skip=skip)
        daemon = start(config, "paper", "run", "--once", mode="sandbox")
        hold.wait_held()
        daemon.send_signal(signal.SIGKILL)
        daemon.communicate()
        hold.release()
        hold.wait_done()
        fake.faults = None
        placed = len(fake.orders())
        assert placed == (1 if process or skip else 0)
        assert bot_row(db) == (0.0, 0, 1)  # killed with the order written as an intent, nothing booked

        again = cli(config, "paper", "run", "--once", mode="sandbox")  # the restart, in the same candle
        assert again.returncode == 0, again.stderr
        assert bot_row(db) == (pytest.approx(held_position("sandbox"), abs=1e-12), 1, 0)
        fake.advance(3 * MINUTE)  # an outage of three candles, then one more start
        later = cli(config, "paper", "run", "--once", mode="sandbox")
        assert later.returncode == 0, later.stderr
        orders, balances = fake.orders(), fake.balances()
    position, filled, intents = bot_row(db)
    assert position == pytest.approx(held_position("sandbox"), abs=1e-12)  # never twice it
    assert len(orders) == filled == 1 and intents == 0
    assert balances["BTC"]["free"] == pytest.approx(position, abs=1e-12)  # the exchange agrees with the ledger
    assert [o["clientOrderId"] for o in orders] == [r[0] for r in query(db, "select client_order_id from fills")]


class Killed(BaseException):
    """Stands for the process dying at that line (escapes every handler, like SIGKILL would)."""


def crash_at(runner, step: str) -> None:
    """Make ``runner`` fail at ``step`` of its order protocol, once."""
    execute, book_fill = runner.broker.execute, runner._book_fill

    def before_send(*args, **kwargs):
        raise Killed(step)

    def after_send(*args, **kwargs):
        execute(*args, **kwargs)
        raise Killed(step)

    def mid_transaction(*args, **kwargs):
        book_fill(*args, **kwargs)  # the fill, position and balances are written, not committed
        raise Killed(step)

    def exchange_error(*args, **kwargs):
        raise ccxt.RequestTimeout("binance GET https://127.0.0.1/api/v3/depth request timeout")

    if step == "mid-transaction":
        runner._book_fill = mid_transaction
    else:
        runner.broker.execute = {"after the intent": before_send, "after the fill": after_send,
                                 "exchange error": exchange_error}[step]


@pytest.mark.parametrize("step", ["after the intent", "after the fill", "mid-transaction", "exchange error"])
def test_a_crash_at_each_step_in_paper_mode_ends_with_the_one_position(tmp_path: Path, step: str) -> None:
    with minute_fake() as fake:
        config = config_for(tmp_path, fake, [long_bot(tmp_path)])
        ledger, runners = build_runners(load_settings(str(config)), clock=fake_clock(fake))
        crash_at(runners[0], step)
        try:
            [result] = run_once(runners)
            assert step == "exchange error" and result.outcome == "skipped"
        except Killed:
            ledger, runners = build_runners(load_settings(str(config)), clock=fake_clock(fake))  # the restart
        assert [o.status for o in ledger.orders()] == ["intent"]
        if step == "exchange error":
            del runners[0].broker.execute  # the exchange answers again
        run_once(runners)  # the same candle
        assert ledger.bot("btc-sma").position == held_position("paper")
        fake.advance(3 * MINUTE)
        run_once(runners)
    assert ledger.bot("btc-sma").position == held_position("paper")
    assert [o.status for o in ledger.orders()] == ["filled"] and len(ledger.fills()) == 1
    assert ledger.balances()["BTC"] == held_position("paper")


def test_a_send_that_times_out_is_never_placed_a_second_time(tmp_path: Path, monkeypatch) -> None:
    for name, value in SANDBOX_KEYS.items():
        monkeypatch.setenv(name, value)
    with minute_fake() as fake:
        config = config_for(tmp_path, fake, [long_bot(tmp_path)], mode="sandbox", timeout_ms=500, retries=2)
        ledger, runners = build_runners(load_settings(str(config)), clock=fake_clock(fake))
        # the exchange takes the order, but only after the client gave up waiting for the answer
        fake.faults = FaultPlan(kinds=("slow",), paths=("/api/v3/order",), methods=("POST",), slow_seconds=1.5,
                                max_faults=1)
        def answered() -> bool:  # every order request processed (the slow one too), so the count below is final
            sent = [r for r in fake.requests if r.method == "POST" and r.path == "/api/v3/order"]
            return all(r.status is not None for r in sent)

        [result] = run_once(runners)
        wait_for(answered, "the exchange to process the slow order")
        for _ in range(3):
            fake.advance(MINUTE)
            run_once(runners)
        wait_for(answered, "the exchange to answer every order")
        orders, balances = fake.orders(), fake.balances()
    assert result.outcome in ("skipped", "filled")
    assert len(orders) == 1, f"the order was placed {len(orders)} times"
    position = ledger.bot("btc-sma").position
    assert position == pytest.approx(held_position("sandbox"), abs=1e-12)
    assert balances["BTC"]["free"] == pytest.approx(position, abs=1e-12)


# ---------------------------------------------------------------- 2. one daemon per ledger


def lock_holder(lock: Path) -> str:
    try:
        return lock.read_text()
    except FileNotFoundError:
        return ""


def test_a_second_daemon_on_the_same_ledger_is_refused(tmp_path: Path) -> None:
    db, lock = tmp_path / "paper.sqlite", tmp_path / "paper.sqlite.lock"
    host = socket.gethostname()
    with minute_fake() as fake:
        config = config_for(tmp_path, fake, [long_bot(tmp_path)])
        first = start(config, "paper", "run")
        try:
            wait_for(lambda: f"pid {first.pid}" in lock_holder(lock), "the daemon to take the lock", first)
            wait_for(lambda: filled(db) == 1, "the daemon's first tick", first)
            before = [query(db, f"select count(*) from {t}") for t in ("ticks", "events", "orders", "fills")]
            for args in (("paper", "run", "--once"), ("paper", "run")):
                second = cli(config, *args)
                assert second.returncode == 2, second.stderr
                assert f"pid {first.pid}" in second.stderr and host in second.stderr
                assert "Traceback" not in second.stderr and len(second.stderr.strip().splitlines()) == 1
            assert [query(db, f"select count(*) from {t}") for t in ("ticks", "events", "orders", "fills")] == before
            assert first.poll() is None  # the first daemon runs on, untouched
        finally:
            first.send_signal(signal.SIGTERM)
            _, stderr = first.communicate(timeout=60)
        assert first.returncode == 0, stderr
        assert not lock.exists()  # released at exit
        after = cli(config, "paper", "run", "--once")
        assert after.returncode == 0, after.stderr

        killed = start(config, "paper", "run")  # a daemon killed outright leaves its lock file behind
        wait_for(lambda: f"pid {killed.pid}" in lock_holder(lock), "the daemon to take the lock", killed)
        killed.send_signal(signal.SIGKILL)
        killed.communicate()
        assert f"pid {killed.pid}" in lock_holder(lock)
        restart = cli(config, "paper", "run", "--once")  # the kernel released its lock: the next start goes ahead
        assert restart.returncode == 0, restart.stderr
    assert bot_row(db) == (held_position("paper"), 1, 0)


def test_paper_run_once_holds_the_lock_while_it_ticks(tmp_path: Path) -> None:
    lock = tmp_path / "paper.sqlite.lock"
    with minute_fake() as fake:
        # The held request must not time out while the second daemon starts (slow on a busy machine): the
        # --once run would give up its tick, exit and free the lock.
        config = config_for(tmp_path, fake, [long_bot(tmp_path)], timeout_ms=600_000)
        hold = fake.hold("GET", "/api/v3/depth")  # the tick sizing its order: the --once run is mid-tick
        once = start(config, "paper", "run", "--once")
        try:
            hold.wait_held()
            assert f"pid {once.pid}" in lock_holder(lock)
            daemon = cli(config, "paper", "run")
            assert daemon.returncode == 2 and f"pid {once.pid}" in daemon.stderr
        finally:
            hold.release()
            _, stderr = once.communicate(timeout=120)
        assert once.returncode == 0, stderr


def test_a_lease_row_keeps_a_second_daemon_off_a_server_ledger(tmp_path: Path) -> None:
    """Server databases (PostgreSQL, ...) get a lease row with a heartbeat; exercised here on a SQLite file."""
    from systrade.errors import UserError
    from systrade.live.ledger import Ledger
    from systrade.live.lock import LeaseLock

    url = f"sqlite:///{tmp_path / 'server.sqlite'}"
    first = LeaseLock(Ledger(url), holder="first", ttl_seconds=30, now=lambda: 1_000.0)
    first.acquire()
    second = LeaseLock(Ledger(url), holder="second", ttl_seconds=30, now=lambda: 1_010.0)
    with pytest.raises(UserError, match=f"pid {os.getpid()} on {re.escape(socket.gethostname())}"):
        second.acquire()
    stale = LeaseLock(Ledger(url), holder="third", ttl_seconds=30, now=lambda: 1_031.0)
    stale.acquire()  # the first holder stopped beating 31 s ago: its lease lapsed
    assert first.lost() and not stale.lost()
    stale.release()
    LeaseLock(Ledger(url), holder="fourth", ttl_seconds=30, now=lambda: 1_032.0).acquire()


# ---------------------------------------------------------------- 3. the ledger file under the daemon


def second_daemon_candles() -> pd.DataFrame:
    now = pd.Timestamp.now(tz="UTC").floor("s")
    return flat_candles(1200, now - pd.Timedelta(seconds=300), "1s", period=1.2)


@pytest.mark.parametrize("change", ["deleted", "replaced", "read-only"])
def test_a_ledger_file_deleted_or_replaced_under_the_daemon_stops_it(tmp_path: Path, change: str) -> None:
    db = tmp_path / "paper.sqlite"
    with FakeBinance(spread_bps=0, book_qty=1e6) as fake:  # on the wall clock: the daemon ticks every second
        fake.add_market("BTC/USDT", second_daemon_candles(), tick_size=1e-8, step_size=1e-8, min_qty=1e-8)
        config = config_for(tmp_path, fake, [long_bot(tmp_path, timeframe="1s")])
        daemon = start(config, "paper", "run")
        try:
            wait_for(lambda: count(db, "select count(*) from ticks") >= 2, "the daemon's ticks", daemon)
            if change == "deleted":  # what `rm data/paper.sqlite*` does
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{db}{suffix}").unlink(missing_ok=True)
            elif change == "replaced":  # a copy moved over it: another inode
                copy = sqlite3.connect(tmp_path / "copy.sqlite")
                source = sqlite3.connect(db)
                source.backup(copy)
                source.close()
                copy.close()
                os.replace(tmp_path / "copy.sqlite", db)
            else:
                db.chmod(0o444)
            _, stderr = daemon.communicate(timeout=60)
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.communicate()
        status = cli(config, "paper", "status")  # before anything starts again
        ledger_after_status = db.exists()
        again = cli(config, "paper", "run", "--once")
    assert daemon.returncode == 1, stderr
    errors = [line for line in stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and str(db) in errors[0] and change in errors[0], stderr
    assert "Traceback" not in stderr
    if change == "deleted":
        assert status.returncode == 2 and "no paper ledger" in status.stderr and str(db) in status.stderr
        assert not ledger_after_status
        assert again.returncode == 0, again.stderr  # a new start begins a new ledger: deleting it is the user's call
    elif change == "read-only":
        assert again.returncode == 2 and "read-only" in again.stderr and str(db) in again.stderr
    else:
        assert again.returncode == 0, again.stderr  # the file now at the path is a ledger too: the daemon runs on it


@pytest.mark.parametrize("command", [("status",), ("status", "--json"), ("trades",), ("trades", "--json"),
                                     ("halt",), ("halt", "btc-sma"), ("resume",)])
def test_read_only_commands_never_create_a_ledger(tmp_path: Path, command: tuple[str, ...]) -> None:
    with FakeBinance() as fake:
        config = paper_config(tmp_path / "systrade.toml", fake, [sma_bot()])
    text = config.read_text().replace(str(tmp_path / "paper.sqlite"), str(tmp_path / "data" / "paper.sqlite"))
    config.write_text(text)
    result = cli(config, "paper", *command)
    assert result.returncode == 2, result.stderr
    assert "no paper ledger" in result.stderr and str(tmp_path / "data" / "paper.sqlite") in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert tree(tmp_path) == {"systrade.toml"}


# ---------------------------------------------------------------- 4. unknown symbols and timeframes


@pytest.mark.parametrize("bot, expected", [
    ({"symbol": "DOGE/USDT"}, "bot btc-sma: binance has no market 'DOGE/USDT'"),
    ({"symbol": "btc/USDT"}, "bot btc-sma: binance has no market 'btc/USDT'; did you mean BTC/USDT?"),
    ({"symbol": "eth/btc"}, "bot btc-sma: symbol 'eth/btc' quotes in 'btc' but the balance is 'BTC' (currency "
                            "codes are case-sensitive); write the symbol as the exchange does, e.g. 'ETH/BTC'"),
    ({"timeframe": "7m"}, "bot btc-sma: binance has no timeframe '7m'; did you mean"),
])
def test_an_unknown_symbol_or_timeframe_is_refused_at_start(tmp_path: Path, bot: dict, expected: str) -> None:
    with minute_fake() as fake:
        config = config_for(tmp_path, fake, [long_bot(tmp_path, **bot)], balances={"USDT": 10_000.0, "BTC": 1.0})
        results = [cli(config, "paper", "run", "--once"), cli(config, "paper", "run")]
        klines = fake.count("/api/v3/klines")
    for result in results:
        assert result.returncode == 2, result.stderr
        assert expected in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert klines == 0  # refused before any tick
    assert written(tmp_path) == {"systrade.toml"}


# ---------------------------------------------------------------- 5. failures cron and the log must see


def test_run_once_exits_1_naming_the_bots_whose_tick_failed(tmp_path: Path) -> None:
    with minute_fake() as fake:
        config = config_for(tmp_path, fake, [long_bot(tmp_path, name="first"), long_bot(tmp_path, name="second")],
                            retries=0)
        fake.faults = FaultPlan(kinds=("500html",), paths=("/api/v3/klines",), max_faults=1)  # the first bot's
        failed = cli(config, "paper", "run", "--once")
        fake.faults = None
        fine = cli(config, "paper", "run", "--once")
    assert failed.returncode == 1, failed.stderr
    [line] = [line for line in failed.stderr.splitlines() if "failed" in line and " ERROR " in line]
    assert "first" in line and "second" not in line
    assert fine.returncode == 0, fine.stderr


def test_the_log_never_reports_a_fill_whose_transaction_failed(tmp_path: Path, caplog) -> None:
    from systrade.live.ledger import LedgerFailure

    db = tmp_path / "paper.sqlite"
    with minute_fake() as fake:
        config = config_for(tmp_path, fake, [long_bot(tmp_path)])
        ledger, runners = build_runners(load_settings(str(config)), clock=fake_clock(fake))
        broker = runners[0].broker
        execute = broker.execute
        wal = Path(f"{db}-wal")
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)

        def fill_then_disk_full(*args, **kwargs):
            execution = execute(*args, **kwargs)
            # the disk fills up now: the ledger cannot grow by another byte (Python ignores SIGXFSZ)
            resource.setrlimit(resource.RLIMIT_FSIZE, (wal.stat().st_size, hard))
            return execution

        broker.execute = fill_then_disk_full
        caplog.set_level(logging.INFO, logger="systrade")
        try:
            with pytest.raises(LedgerFailure, match="disk"):
                run_once(runners)
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        assert not [r for r in caplog.records if FILL_LINE.search(r.getMessage())]
        assert query(db, "select count(*) from fills") == [(0,)]
        assert query(db, "select status from orders") == [("intent",)]
        ledger, runners = build_runners(load_settings(str(config)), clock=fake_clock(fake))  # the next start
        run_once(runners)
    logged = [FILL_LINE.search(r.getMessage()) for r in caplog.records]
    assert [m.group(1) for m in logged if m] == [r[0] for r in query(db, "select client_order_id from fills")]
    assert ledger.bot("btc-sma").position == held_position("paper")


def test_a_full_disk_stops_the_daemon_with_one_line_and_every_logged_fill_is_in_the_ledger(tmp_path: Path) -> None:
    db = tmp_path / "paper.sqlite"
    with FakeBinance(spread_bps=0, book_qty=1e6) as fake:
        fake.add_market("BTC/USDT", second_daemon_candles(), tick_size=1e-8, step_size=1e-8, min_qty=1e-8)
        config = config_for(tmp_path, fake, [sma_bot(timeframe="1s", direction="both", params={"fast": 2,
                                                                                               "slow": 5})])
        first = cli(config, "paper", "run", "--once")  # the ledger exists; its WAL is folded in at exit
        assert first.returncode == 0, first.stderr

        def small_disk() -> None:  # room for SQLite's shared memory file and a few pages of WAL
            resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

        daemon = start(config, "paper", "run", preexec_fn=small_disk)
        try:
            _, stderr = daemon.communicate(timeout=120)
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.communicate()
    assert daemon.returncode == 1, stderr
    errors = [line for line in stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and str(db) in errors[0] and "disk" in errors[0], stderr
    assert "Traceback" not in stderr
    logged = FILL_LINE.findall(stderr)
    booked = {row[0] for row in query(db, "select client_order_id from fills")}
    assert set(logged) <= booked  # nothing the log called filled was rolled back


# ---------------------------------------------------------------- 6. impossible balances


@pytest.mark.parametrize("amount, shown", [(-5.0, "-5"), (float("nan"), "nan"), (float("inf"), "inf")])
def test_negative_nan_or_infinite_balances_are_refused(tmp_path: Path, amount: float, shown: str) -> None:
    with minute_fake() as fake:
        config = config_for(tmp_path, fake, [long_bot(tmp_path)], balances={"USDT": 10_000.0, "BNB": amount})
        results = [cli(config, "paper", "run", "--once"), cli(config, "paper", "status")]
    for result in results:
        assert result.returncode == 2, result.stderr
        assert "paper.balances" in result.stderr and "BNB" in result.stderr and shown in result.stderr
        assert "Traceback" not in result.stderr
    assert written(tmp_path) == {"systrade.toml"}


def test_log_lines_read_as_sentences() -> None:
    """A fill says what was done ("bought 0.5 BTC/USDT @ 100 to close"), a tick line says its outcome once."""
    from systrade.live.daemon import tick_line
    from systrade.live.runner import TickResult

    bar = pd.Timestamp("2024-05-01 10:00", tz="UTC").to_pydatetime()
    assert tick_line(TickResult("btc", "halted", bar, "halted by user")) == \
        "btc: bar 2024-05-01 10:00: halted (by user)"
    assert tick_line(TickResult("btc", "hold", bar)) == "btc: bar 2024-05-01 10:00: hold"
    assert tick_line(TickResult("btc", "filled", bar, "late by 2 bars")) == \
        "btc: bar 2024-05-01 10:00: filled (late by 2 bars)"
