"""Upbit (and Bithumb) end to end through systrade, against the local fakes in tests/fakes/.

Downloads, market files, paper bots, backtests and the sandbox refusal run the real `systrade` command; the
418 ban is tested in-process with a controllable clock. ccxt's upbit has no server time, so the fakes' candles
sit around the REAL current minute and the fakes keep the wall clock.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import tree
from fakes.bithumb import FakeBithumb
from fakes.upbit import FakeUpbit, krw_tick
from paper_helpers import always_long, toml_value

import systrade.exchange as exchange_mod
from systrade.config import MARKET_RULE_KEYS, Settings
from systrade.data.download import Downloader, ExchangeUnavailable
from systrade.data.store import SeriesKey, read_series
from systrade.exchange import RetryPolicy, create_exchange
from systrade.live.market import MarketData

pytestmark = pytest.mark.usefixtures("loopback_only")  # in-process code reaches 127.0.0.1 only

OHLCV = ["open", "high", "low", "close", "volume"]
MINUTE = pd.Timedelta(minutes=1)
NOW = pd.Timestamp.now(tz="UTC").floor("min")  # the module's "now"; the fakes keep the wall clock
START = NOW - pd.Timedelta(minutes=1000)
HOLE = (NOW - pd.Timedelta(minutes=600), NOW - pd.Timedelta(minutes=350))  # 250 minutes without trades
FLAT_FROM = NOW - pd.Timedelta(minutes=60)  # the price is flat from here: the book is known whatever the minute
PRICE = 60_000_000.0  # BTC/KRW; Upbit's KRW tick at this level is 1,000 KRW


def make_candles() -> pd.DataFrame:
    """1m candles from 1,000 minutes ago to 3 hours ahead (the fake serves none after its now) on the tick grid."""
    index = pd.date_range(START, NOW + pd.Timedelta(minutes=180), freq="1min", tz="UTC")
    rng = np.random.default_rng(7)
    close = np.round(PRICE * np.exp(np.cumsum(rng.normal(0, 1e-3, len(index)))) / 1000) * 1000
    close[index >= FLAT_FROM] = PRICE
    open_ = np.r_[close[0], close[:-1]]
    open_[index >= FLAT_FROM] = PRICE
    wick = np.round(rng.uniform(0, 5e-4, (2, len(index))) * PRICE / 1000) * 1000
    frame = pd.DataFrame({"open": open_, "high": np.maximum(open_, close) + wick[0],
                          "low": np.minimum(open_, close) - wick[1], "close": close,
                          "volume": np.round(rng.uniform(0.01, 3.0, len(index)), 8)}, index=index)
    return frame[(frame.index < HOLE[0]) | (frame.index >= HOLE[1])]


CANDLES = make_candles()
FAST_NETWORK = ("[network]\nretries = 4\nbackoff_seconds = 0.01\nrate_limit_backoff_seconds = 0.02\n"
                "max_backoff_seconds = 0.1\n")


@pytest.fixture(autouse=True)
def _no_ban() -> Iterator[None]:
    """The per-exchange ban is process-wide: every test starts and ends without one."""
    exchange_mod._banned_until.clear()
    yield
    exchange_mod._banned_until.clear()


@pytest.fixture(scope="module")
def upbit_server() -> Iterator[FakeUpbit]:
    with FakeUpbit({"BTC/KRW": CANDLES}) as fake:
        yield fake


@pytest.fixture
def upbit(upbit_server: FakeUpbit) -> FakeUpbit:
    upbit_server.now_ms = None  # wall clock
    upbit_server.clear_faults()
    upbit_server.clear_requests()
    upbit_server.ban_seconds, upbit_server.per_second_limit = 0.0, None
    upbit_server.set_tick("BTC/KRW", None)
    return upbit_server


def exchange_table(fake: FakeUpbit, rules: dict | None = None) -> str:
    table = {**fake.ccxt_config(), "enableRateLimit": False, "timeout": 3000}
    lines = [f"{k} = {toml_value(v)}" for k, v in table.items()]
    if rules:
        lines.append(f"market_rules = {toml_value(rules)}")
    return "\n".join(lines)


def add_exchange(workdir: Path, exchange_id: str, fake: FakeUpbit, rules: dict | None = None) -> None:
    """Point ``[exchanges.<id>]`` of the workdir's config at ``fake``, with quick retries."""
    config = workdir / "systrade.toml"
    config.write_text(config.read_text() + FAST_NETWORK + f"[exchanges.{exchange_id}]\n"
                      + exchange_table(fake, rules) + "\n")


def ms(stamp: pd.Timestamp) -> int:
    return int(stamp.value // 1_000_000)


def candle_requests(fake: FakeUpbit) -> list:
    return [r for r in fake.requests if r.path.startswith("/v1/candles")]


def stored(workdir: Path, exchange_id: str) -> pd.DataFrame:
    return read_series(SeriesKey(exchange_id, "BTC/KRW", "1m"), workdir / "data")


def assert_fake_candles(frame: pd.DataFrame, since: pd.Timestamp, before: pd.Timestamp,
                        after: pd.Timestamp) -> None:
    """``frame`` is the fake's candles from ``since`` to the last closed one (closed between ``before`` and
    ``after``, the wall clock around the run), holes included, the forming candle not."""
    assert frame.index[0] == since
    assert before.floor("min") - MINUTE <= frame.index[-1] <= after.floor("min") - MINUTE  # forming: not stored
    expected = CANDLES.loc[since:frame.index[-1], OHLCV]
    assert list(frame.index) == list(expected.index)
    np.testing.assert_allclose(frame[OHLCV].to_numpy(float), expected.to_numpy(float), rtol=0, atol=0)


def iso_to(value: str) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


# ------------------------------------------------------------------------------------------------ 1. download
def test_download_through_faults_keeps_holes_and_pages_by_200(upbit: FakeUpbit, workdir: Path, run_cli) -> None:
    add_exchange(workdir, "upbit", upbit)
    since = NOW - pd.Timedelta(minutes=900)
    for kind in ("429", "500", "drop"):  # 429 with Upbit's JSON body (ccxt alone calls it an ExchangeError)
        upbit.fail(kind, "/v1/candles")
    before = pd.Timestamp.now(tz="UTC")
    result = run_cli("data", "download", "upbit", "BTC/KRW", "--timeframe", "1m", "--since", since.isoformat())
    after = pd.Timestamp.now(tz="UTC")
    assert result.returncode == 0, result.stdout + result.stderr
    requests = candle_requests(upbit)
    assert [r.fault for r in requests if r.fault] == ["429", "500", "drop"]
    assert requests and all(1 <= int(r.params["count"]) <= 200 for r in requests)
    frame = stored(workdir, "upbit")
    assert_fake_candles(frame, since, before, after)
    hole = frame.loc[HOLE[0] - MINUTE:HOLE[1]].index
    assert list(hole) == [HOLE[0] - MINUTE, HOLE[1]]  # the 250 minutes without trades stay a hole

    market = json.loads((workdir / "data" / "upbit" / "BTC_KRW.market.json").read_text())
    assert market["min_cost"] == 5000
    assert market["taker_fee"] == 0.0005
    assert market["tick"] == float(krw_tick(PRICE)) == 1000.0

    # A second run asks only for what closed since: nothing inside the store, the hole included.
    last = frame.index[-1]
    upbit.clear_requests()
    result = run_cli("data", "download", "upbit", "BTC/KRW", "--timeframe", "1m", "--since", since.isoformat())
    assert result.returncode == 0, result.stdout + result.stderr
    again = candle_requests(upbit)
    assert len(again) <= 2  # none when no minute closed in between
    assert all(iso_to(r.params["to"]) > last for r in again)
    assert_fake_candles(stored(workdir, "upbit"), since, before, pd.Timestamp.now(tz="UTC"))


# ------------------------------------------------------------------------------------------- 2. market_rules
def test_market_rules_override_and_unknown_key(upbit: FakeUpbit, workdir: Path, run_cli) -> None:
    since = (NOW - pd.Timedelta(minutes=30)).isoformat()
    original = (workdir / "systrade.toml").read_text()
    add_exchange(workdir, "upbit", upbit, {"min_cost": 10000})
    result = run_cli("data", "download", "upbit", "BTC/KRW", "--timeframe", "1m", "--since", since)
    assert result.returncode == 0, result.stdout + result.stderr
    market = json.loads((workdir / "data" / "upbit" / "BTC_KRW.market.json").read_text())
    assert market["min_cost"] == 10000
    assert market["taker_fee"] == 0.0005  # the other published rules stay

    bad = workdir / "bad"
    bad.mkdir()
    (bad / "systrade.toml").write_text(original)
    add_exchange(bad, "upbit", upbit, {"min_value": 1})
    files = tree(bad)
    result = run_cli("data", "download", "upbit", "BTC/KRW", "--timeframe", "1m", "--since", since, cwd=bad)
    assert result.returncode == 2, result.stdout + result.stderr
    text = result.stdout + result.stderr
    assert "min_value" in text
    assert all(key in text for key in MARKET_RULE_KEYS), text
    assert tree(bad) == files


# ----------------------------------------------------------------------------------------------- 3. 418 ban
class FakeClock:
    """``time.monotonic``/``sleep`` for systrade.exchange: sleeping moves the clock, not the test."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += max(seconds, 0.0)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    clock = FakeClock()
    monkeypatch.setattr(exchange_mod, "time", SimpleNamespace(monotonic=clock.monotonic, sleep=clock.sleep,
                                                              time=time.time))
    # call_with_retry's ``sleep=time.sleep`` default was bound at import: the fake clock's sleep replaces it
    defaults = exchange_mod.call_with_retry.__defaults__
    assert defaults is not None and time.sleep in defaults
    monkeypatch.setattr(exchange_mod.call_with_retry, "__defaults__",
                        tuple(clock.sleep if d is time.sleep else d for d in defaults))
    return clock


def timed_client(fake: FakeUpbit, clock: FakeClock, log: list[tuple[float, str]]) -> Any:
    """A systrade Upbit client on ``fake`` whose every HTTP request is logged with the fake clock's time."""
    settings = Settings.model_validate({"exchanges": {"upbit": {**fake.ccxt_config(), "timeout": 3000}}})
    client = create_exchange("upbit", settings)
    real_fetch = client.fetch

    def fetch(url, *args, **kwargs):
        log.append((clock.now, url))
        return real_fetch(url, *args, **kwargs)

    client.fetch = fetch
    return client


def test_418_bans_the_exchange_for_a_minute_in_the_whole_process(upbit: FakeUpbit, clock: FakeClock,
                                                                 tmp_path: Path) -> None:
    policy = RetryPolicy(retries=3, backoff_seconds=0.01, rate_limit_backoff_seconds=0.02, max_backoff_seconds=0.1)
    since = ms(NOW - pd.Timedelta(minutes=100))

    # The same object: the request after the 418 comes a ban later.
    log: list[tuple[float, str]] = []
    upbit.fail("418", "/v1/candles")
    Downloader(timed_client(upbit, clock, log), "upbit", tmp_path / "a", policy).download("BTC/KRW", "1m", since)
    faults = [r.fault for r in upbit.requests]
    banned = faults.index("418")
    assert len(log) == len(faults)
    assert log[banned + 1][0] - log[banned][0] >= exchange_mod.BAN_SECONDS
    assert all(not f for f in faults[banned + 1:])

    # Another object on another client of the same exchange waits for the same ban before its first request.
    exchange_mod._banned_until.clear()
    upbit.clear_requests()
    first: list[tuple[float, str]] = []
    upbit.fail("418", "/v1/candles")
    stopper = Downloader(timed_client(upbit, clock, first), "upbit", tmp_path / "b",
                         RetryPolicy(retries=0))
    with pytest.raises(ExchangeUnavailable):
        stopper.download("BTC/KRW", "1m", since)  # no retry: it stops at the 418
    ban_time = first[-1][0]
    assert upbit.requests[-1].fault == "418"
    second: list[tuple[float, str]] = []
    market = MarketData(timed_client(upbit, clock, second), policy)
    candles = market.closed_candles("BTC/KRW", "1m", 5)
    assert len(candles) == 5
    assert second and second[0][0] - ban_time >= exchange_mod.BAN_SECONDS
    assert upbit.requests_since_ban() == len(second)  # it sent nothing more before the ban ended


# ---------------------------------------------------------------------------------------------- 4. paper bot
def paper_workdir(folder: Path, fake: FakeUpbit, size: float, mode: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    bot = {"name": "upbit-long", "strategy": always_long(folder), "exchange": "upbit", "symbol": "BTC/KRW",
           "timeframe": "1m", "size": size, "size_type": "value", "direction": "long", "candles": 450}
    if mode:
        bot["mode"] = mode
    lines = [
        f"[data]\ndir = {json.dumps(str(folder / 'data'))}",
        FAST_NETWORK,
        "[exchanges.upbit]\n" + exchange_table(fake),
        f"[paper]\ndatabase = {json.dumps('sqlite:///' + str(folder / 'paper.sqlite'))}\n"
        f"balances = {toml_value({'KRW': 1000000.0})}\ntick_delay_seconds = 0",
        "[[paper.bots]]\n" + "\n".join(f"{k} = {toml_value(v)}" for k, v in bot.items()),
    ]
    (folder / "systrade.toml").write_text("\n".join(lines) + "\n")
    return folder


def cli_json(run_cli, folder: Path, *args: str) -> Any:
    result = run_cli(*args, "--json", "-", cwd=folder)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def test_paper_bot_under_upbits_minimum_is_skipped_and_above_it_fills(upbit: FakeUpbit, tmp_path: Path,
                                                                       run_cli) -> None:
    small = paper_workdir(tmp_path / "small", upbit, 4000)
    result = run_cli("paper", "run", "--once", cwd=small)
    assert result.returncode == 0, result.stdout + result.stderr
    requests = candle_requests(upbit)
    assert len(requests) >= 3 and all(1 <= int(r.params["count"]) <= 200 for r in requests)
    orders = cli_json(run_cli, small, "paper", "orders")
    assert len(orders) == 1
    assert orders[0]["status"] == "skipped" and orders[0]["side"] == "buy"
    assert "minimum" in orders[0]["reason"] and "5,000 KRW" in orders[0]["reason"], orders[0]["reason"]
    status = cli_json(run_cli, small, "paper", "status")
    bot = next(b for b in status["bots"] if b["name"] == "upbit-long")
    assert bot["last_rejection"]["status"] == "skipped"
    assert "5,000 KRW" in bot["last_rejection"]["reason"]
    assert bot["position"] == 0
    assert cli_json(run_cli, small, "paper", "trades") == []

    upbit.clear_requests()
    big = paper_workdir(tmp_path / "big", upbit, 20000)
    result = run_cli("paper", "run", "--once", cwd=big)
    assert result.returncode == 0, result.stdout + result.stderr
    requests = candle_requests(upbit)
    assert len(requests) >= 3 and all(1 <= int(r.params["count"]) <= 200 for r in requests)
    fills = cli_json(run_cli, big, "paper", "trades")
    assert len(fills) == 1
    fill = fills[0]
    ask = PRICE + float(krw_tick(PRICE))  # the fake's best ask: the last price (on the grid) plus one tick
    assert fill["side"] == "buy" and fill["price"] == ask
    value = fill["amount"] * fill["price"]
    # a market buy by cost: the value is rounded down to whole KRW (19,999 here), the amount then to 1e-8 BTC
    assert 20000 - 1 - 1e-8 * ask <= value <= 20000
    assert fill["fee_quote"] == pytest.approx(0.0005 * value, rel=1e-9)
    status = cli_json(run_cli, big, "paper", "status")
    assert status["balances"]["KRW"] == pytest.approx(1_000_000 - value - fill["fee_quote"], rel=1e-12)
    assert status["balances"]["BTC"] == pytest.approx(fill["amount"], rel=1e-12)
    assert [o["status"] for o in cli_json(run_cli, big, "paper", "orders")] == ["filled"]

    # what a person reads: KRW without decimals, times in Seoul's zone when asked ([paper] timezone)
    text = (big / "systrade.toml").read_text().replace("tick_delay_seconds = 0",
                                                         'tick_delay_seconds = 0\ntimezone = "Asia/Seoul"')
    (big / "systrade.toml").write_text(text)
    table = run_cli("paper", "status", cwd=big, env={"COLUMNS": "300"})
    assert table.returncode == 0, table.stderr
    cash = 1_000_000 - value - fill["fee_quote"]
    assert f"{cash:,.0f}" in table.stdout and f"{cash:,.2f}" not in table.stdout
    last_bar = pd.Timestamp(status["bots"][0]["last_bar"])  # UTC in JSON
    assert (last_bar + pd.Timedelta(hours=9)).strftime("%Y-%m-%d %H:%M:%S KST") in table.stdout


# ----------------------------------------------------------------------------------------------- 5. backtest
def test_backtest_skips_orders_under_upbits_minimum_like_paper(upbit: FakeUpbit, workdir: Path, run_cli) -> None:
    add_exchange(workdir, "upbit", upbit)
    since = (NOW - pd.Timedelta(minutes=300)).isoformat()
    result = run_cli("data", "download", "upbit", "BTC/KRW", "--timeframe", "1m", "--since", since)
    assert result.returncode == 0, result.stdout + result.stderr
    strategy = always_long(workdir)
    out = {}
    for size in ("4000", "20000"):
        result = run_cli("backtest", strategy, "--exchange", "upbit", "--symbol", "BTC/KRW", "--timeframe", "1m",
                         "--cash", "1000000", "--size", size, "--size-type", "value", "--json", f"out{size}.json")
        assert result.returncode == 0, result.stdout + result.stderr
        out[size] = json.loads((workdir / f"out{size}.json").read_text())
    small, big = out["4000"], out["20000"]
    assert small["rules"]["min_cost"] == 5000  # from the market file saved at download
    assert small["trades"] == []
    assert small["skipped_orders"]["total"] >= 1
    assert set(small["skipped_orders"]["by_reason"]) == {"min_cost"}
    assert len(big["trades"]) >= 1
    assert big["skipped_orders"]["total"] == 0


# ------------------------------------------------------------------------------------------------ 6. sandbox
def test_sandbox_mode_on_upbit_is_refused_and_writes_nothing(upbit: FakeUpbit, tmp_path: Path, run_cli) -> None:
    # Fails today (product bug): ccxt.upbit has urls["test"] = None, so set_sandbox_mode raises TypeError, not the
    # NotSupported that live/daemon.py's _enable_sandbox catches: "internal error: TypeError ..." and exit 1.
    folder = paper_workdir(tmp_path / "sandbox", upbit, 20000, mode="sandbox")
    files = tree(folder)
    result = run_cli("paper", "run", "--once", cwd=folder)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    line = lines[0].lower()
    assert "upbit" in line and ("sandbox" in line or "testnet" in line) and "paper" in line
    assert not (folder / "paper.sqlite").exists()
    assert tree(folder) == files


# ------------------------------------------------------------------------------------------------ 7. Bithumb
def test_bithumb_download_pages_with_to(workdir: Path, run_cli) -> None:
    since = NOW - pd.Timedelta(minutes=650)  # 50 minutes before the hole
    with FakeBithumb({"BTC/KRW": CANDLES}) as fake:
        add_exchange(workdir, "bithumb", fake)
        before = pd.Timestamp.now(tz="UTC")
        result = run_cli("data", "download", "bithumb", "BTC/KRW", "--timeframe", "1m", "--since",
                         since.isoformat())
        after = pd.Timestamp.now(tz="UTC")
        requests = candle_requests(fake)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(requests) >= 3
    assert all("to" in r.params and 1 <= int(r.params["count"]) <= 200 for r in requests)
    assert iso_to(requests[0].params["to"]) <= since + pd.Timedelta(minutes=200)  # paged from the start
    assert_fake_candles(stored(workdir, "bithumb"), since, before, after)


def test_a_paper_bots_tick_comes_from_the_instruments_endpoint_else_the_table(upbit: FakeUpbit) -> None:
    settings = Settings.model_validate({"exchanges": {"upbit": {**upbit.ccxt_config(), "enableRateLimit": False,
                                                                "timeout": 3000}}})
    policy = RetryPolicy(retries=0, backoff_seconds=0, rate_limit_backoff_seconds=0)
    upbit.set_tick("BTC/KRW", 500.0)  # what the exchange says today, not the table's 1,000 at this price
    assert MarketData(create_exchange("upbit", settings), policy).rules("BTC/KRW").tick == 500.0
    assert upbit.count("/v1/orderbook/instruments") == 1
    upbit.fail("500", "/v1/orderbook/instruments")  # unreachable: the published table at the last price
    rules = MarketData(create_exchange("upbit", settings), policy).rules("BTC/KRW")
    assert rules.tick == 1_000.0 and rules.min_cost == 5_000.0 and rules.cost_step == 1.0
