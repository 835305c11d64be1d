"""Tests for tests/fakes/binance.py, driven through the REAL ccxt.binance client.

Two guards keep everything on loopback: ``RecordingBinance.fetch`` refuses any
URL that is not on the fake *before* ccxt sends it, and an autouse fixture
makes ``socket.getaddrinfo``/``connect`` fail for any non-loopback host (so not
even a DNS query leaves the machine).
"""

from __future__ import annotations

import ipaddress
import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import ccxt
import numpy as np
import pandas as pd
import pytest

try:  # tests/ is not a package today; keep working if it becomes one
    from fakes import FakeBinance, FaultPlan
except ImportError:  # pragma: no cover
    from tests.fakes import FakeBinance, FaultPlan

START = pd.Timestamp("2024-01-01", tz="UTC")
N_CANDLES = 3000
# 17:40:30 on day two: mid-minute and 40 minutes into an hour, so both the
# 1m and the 1h candle containing "now" are forming.
NOW = START + pd.Timedelta(minutes=2500, seconds=30)
START_MS = int(START.timestamp() * 1000)
NOW_MS = int(NOW.timestamp() * 1000)
HOUR_MS = 3_600_000
OHLCV = ["open", "high", "low", "close", "volume"]

# What each injected fault turns into inside ccxt 4.5.90 (exact class).
FAULT_TO_CCXT: dict[str, type[Exception]] = {
    "429": ccxt.DDoSProtection,
    "418": ccxt.DDoSProtection,
    "500html": ccxt.ExchangeNotAvailable,
    "drop": ccxt.NetworkError,
    "slow": ccxt.RequestTimeout,
}


def random_walk(n: int, price: float, tick: float, seed: int) -> pd.DataFrame:
    """1m candles on the tick grid, open = previous close, like a real feed."""
    rng = np.random.default_rng(seed)
    close = np.round(price * np.exp(np.cumsum(rng.normal(0, 1e-3, n))) / tick) * tick
    open_ = np.r_[close[0], close[:-1]]
    wick = np.round(rng.uniform(0, 5e-4, (2, n)) * price / tick) * tick
    return pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) + wick[0],
            "low": np.minimum(open_, close) - wick[1],
            "close": close,
            "volume": np.round(rng.uniform(0.1, 10, n), 5),
        },
        index=pd.date_range(START, periods=n, freq="1min"),
    )


BTC = random_walk(N_CANDLES, 30_000.0, 0.01, seed=1)
ETH_BTC = random_walk(N_CANDLES, 0.05, 0.000001, seed=2)


def resample(df: pd.DataFrame, rule: str) -> pd.DataFrame:
    """Reference aggregation, computed independently with pandas."""
    agg = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    origin = "start_day" if rule.startswith("W-") else "epoch"  # anchored weeks ignore origin
    out = df.resample(rule, origin=origin, label="left", closed="left").agg(agg)
    return out.dropna(subset=["open"])


def visible(df: pd.DataFrame, now: pd.Timestamp = NOW) -> pd.DataFrame:
    """Base candles opened at or before now."""
    return df[df.index <= now]


def to_frame(rows: list[list[Any]]) -> pd.DataFrame:
    index = pd.to_datetime([r[0] for r in rows], unit="ms", utc=True)
    return pd.DataFrame([r[1:] for r in rows], index=index, columns=OHLCV)


class RecordingBinance(ccxt.binance):
    """Real ccxt.binance that records every URL and refuses any not on the fake."""

    def __init__(self, config: dict[str, Any], allowed_prefix: str) -> None:
        super().__init__(config)
        self.allowed_prefix = allowed_prefix
        self.sent: list[str] = []

    def fetch(self, url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        self.sent.append(url)
        if not url.startswith(self.allowed_prefix):
            raise AssertionError(f"ccxt tried to leave the fake: {method} {url}")
        return super().fetch(url, method, headers, body)


def make_client(fake: FakeBinance, timeout_ms: int = 2000) -> RecordingBinance:
    config = {**fake.ccxt_config(), "enableRateLimit": False, "timeout": timeout_ms}
    return RecordingBinance(config, fake.url + "/")


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo


def _check_loopback(host: Any) -> None:
    if host in (None, "localhost"):
        return
    try:
        ok = ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = False
    if not ok:
        raise AssertionError(f"test tried to reach non-loopback host {host!r}")


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        _check_loopback(host)
        return _real_getaddrinfo(host, *args, **kwargs)

    def connect(self: socket.socket, address: Any) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            _check_loopback(address[0])
        return _real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            _check_loopback(address[0])
        return _real_connect_ex(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)


@pytest.fixture
def fake() -> Iterator[FakeBinance]:
    with FakeBinance(clock_ms=NOW_MS) as f:
        f.add_market("BTC/USDT", BTC)  # defaults: tick 0.01, step 1e-5, min notional 5
        f.add_market("ETH/BTC", ETH_BTC, tick_size=0.000001, step_size=0.0001, min_qty=0.0001, min_notional=0.0001)
        yield f


@pytest.fixture
def ex(fake: FakeBinance) -> Iterator[RecordingBinance]:
    client = make_client(fake)
    yield client
    client.close()
    # Every request ccxt made landed on the fake, and nothing else did.
    assert all(url.startswith(fake.url + "/") for url in client.sent)
    assert len(client.sent) == fake.count()


@pytest.fixture
def loaded(ex: RecordingBinance, fake: FakeBinance) -> RecordingBinance:
    ex.load_markets()
    fake.clear_requests()
    ex.sent.clear()
    return ex


# --------------------------------------------------------------- config/markets
def test_ccxt_config_points_every_url_at_the_fake(fake: FakeBinance, ex: RecordingBinance) -> None:
    for section in ("api", "test", "demo"):
        for key, url in ex.urls[section].items():
            assert url.startswith(fake.url + "/"), (section, key, url)
    assert ex.urls["api"]["public"] == fake.url + "/api/v3"


def test_guards_stop_anything_leaving_loopback(fake: FakeBinance) -> None:
    client = make_client(fake)
    client.urls["api"]["public"] = "https://api.binance.com/api/v3"
    with pytest.raises(AssertionError, match="leave the fake"):
        client.fetch_time()
    with pytest.raises(AssertionError, match="non-loopback"):
        socket.create_connection(("api.binance.com", 443), timeout=0.1)
    with pytest.raises(AssertionError, match="non-loopback"):
        socket.create_connection(("192.0.2.1", 443), timeout=0.1)
    assert fake.count() == 0


def test_load_markets_parses_precision_and_limits(fake: FakeBinance, ex: RecordingBinance) -> None:
    markets = ex.load_markets()

    # Only spot exchangeInfo: no fapi/dapi/sapi/currencies calls.
    assert [(r.method, r.path) for r in fake.requests] == [("GET", "/api/v3/exchangeInfo")]
    assert set(markets) == {"BTC/USDT", "ETH/BTC"}
    btc = markets["BTC/USDT"]
    assert (btc["id"], btc["base"], btc["quote"], btc["type"]) == ("BTCUSDT", "BTC", "USDT", "spot")
    assert btc["spot"] and btc["active"] and not btc["margin"]
    assert btc["precision"]["price"] == 0.01
    assert btc["precision"]["amount"] == 0.00001
    assert btc["limits"]["amount"]["min"] == 0.00001
    assert btc["limits"]["cost"]["min"] == 5.0
    eth = markets["ETH/BTC"]
    assert eth["precision"]["price"] == 0.000001
    assert eth["precision"]["amount"] == 0.0001
    assert eth["limits"]["amount"]["min"] == 0.0001
    assert eth["limits"]["cost"]["min"] == 0.0001


def test_fetch_time_follows_the_clock(fake: FakeBinance, ex: RecordingBinance) -> None:
    assert ex.fetch_time() == NOW_MS
    fake.now_ms = NOW_MS + 1234
    assert ex.fetch_time() == NOW_MS + 1234
    fake.now_ms = None  # back to the wall clock
    assert abs(ex.fetch_time() - time.time() * 1000) < 5_000


def test_add_market_rejects_naive_index() -> None:
    with pytest.raises(ValueError, match="tz-aware"):
        FakeBinance().add_market("BTC/USDT", BTC.tz_localize(None))


# -------------------------------------------------------------------- klines
def fetch_all(ex: RecordingBinance, symbol: str, timeframe: str, since: int) -> list[list[Any]]:
    """Page forward with limit=1000; the next since is mid-candle on purpose."""
    rows: list[list[Any]] = []
    while page := ex.fetch_ohlcv(symbol, timeframe, since=since, limit=1000):
        rows += page
        since = page[-1][0] + 1
    return rows


def test_fetch_ohlcv_1m_pages_return_the_source_candles(fake: FakeBinance, loaded: RecordingBinance) -> None:
    rows = fetch_all(loaded, "BTC/USDT", "1m", START_MS)

    expected = visible(BTC)
    assert len(rows) == len(expected) == 2501
    pd.testing.assert_frame_equal(to_frame(rows), expected, check_freq=False, check_index_type=False)
    assert fake.count("/api/v3/klines") == 4  # 1000 + 1000 + 501 + empty


def test_fetch_ohlcv_resampled_1h(loaded: RecordingBinance) -> None:
    rows = fetch_all(loaded, "ETH/BTC", "1h", START_MS)

    expected = resample(visible(ETH_BTC), "1h")
    got = to_frame(rows)
    assert list(got.index) == list(expected.index)
    np.testing.assert_array_equal(got[["open", "high", "low", "close"]], expected[["open", "high", "low", "close"]])
    np.testing.assert_allclose(got["volume"], expected["volume"], rtol=1e-12)


def test_markets_argument_hourly_base_and_weekly_bins() -> None:
    """Base timeframe is inferred (1h here); weekly bins start on Monday like Binance's."""
    hourly = random_walk(24 * 40, 100.0, 0.01, seed=3)
    hourly.index = pd.date_range(START + pd.Timedelta(days=2, hours=5), periods=len(hourly), freq="1h")  # a Wed
    with FakeBinance({"SOL/USDT": hourly}, clock_ms=int(hourly.index[-1].timestamp() * 1000)) as fake:
        client = make_client(fake)
        weekly = to_frame(client.fetch_ohlcv("SOL/USDT", "1w", since=0, limit=10))
        expected = resample(hourly, "W-MON")  # weeks [Mon, Mon), labelled by their Monday
        assert all(t.day_name() == "Monday" for t in weekly.index) and len(weekly) == 7
        pd.testing.assert_frame_equal(weekly, expected, check_freq=False, check_index_type=False, rtol=1e-12)
        with pytest.raises(ccxt.BadRequest):  # finer than the hourly base data
            client.fetch_ohlcv("SOL/USDT", "1m")
        client.close()


@pytest.mark.parametrize(
    ("timeframe", "since", "first"),
    [
        ("1m", START_MS, START_MS),
        ("1m", START_MS + 1, START_MS + 60_000),
        ("1m", START_MS + 90_000, START_MS + 120_000),
        ("1h", START_MS + 1, START_MS + HOUR_MS),
        ("4h", START_MS + HOUR_MS, START_MS + 4 * HOUR_MS),
        ("1d", START_MS - 1, START_MS),
    ],
)
def test_since_off_boundary_is_rounded_up(loaded: RecordingBinance, timeframe: str, since: int, first: int) -> None:
    rows = loaded.fetch_ohlcv("BTC/USDT", timeframe, since=since, limit=2)
    assert rows[0][0] == first


def test_until_maps_to_end_time(loaded: RecordingBinance, fake: FakeBinance) -> None:
    rows = loaded.fetch_ohlcv("BTC/USDT", "1m", since=START_MS, params={"until": START_MS + 59 * 60_000})
    assert len(rows) == 60
    assert fake.requests[-1].params["endTime"] == str(START_MS + 59 * 60_000)
    tail = loaded.fetch_ohlcv("BTC/USDT", "1m", limit=3, params={"until": START_MS + 10 * 60_000})
    assert [r[0] for r in tail] == [START_MS + k * 60_000 for k in (8, 9, 10)]


def test_forming_candle_is_last_and_only_uses_data_up_to_now(loaded: RecordingBinance) -> None:
    raw = loaded.publicGetKlines({"symbol": "BTCUSDT", "interval": "1h", "limit": 3})
    hour_open = NOW.floor("1h")
    last = raw[-1]
    assert last[0] == int(hour_open.timestamp() * 1000)
    assert last[6] == last[0] + HOUR_MS - 1 > NOW_MS  # still open
    assert raw[-2][6] < NOW_MS  # previous one closed

    so_far = BTC[(BTC.index >= hour_open) & (BTC.index <= NOW)]
    whole_hour = BTC[(BTC.index >= hour_open) & (BTC.index < hour_open + pd.Timedelta(hours=1))]
    assert len(so_far) == 41 and len(whole_hour) == 60
    rows = loaded.fetch_ohlcv("BTC/USDT", "1h", limit=3)
    o, h, low, c, v = rows[-1][1:]
    assert (o, h, low, c) == (
        so_far["open"].iloc[0],
        so_far["high"].max(),
        so_far["low"].min(),
        so_far["close"].iloc[-1],
    )
    assert v == pytest.approx(so_far["volume"].sum(), rel=1e-12)
    assert v < whole_hour["volume"].sum()


def test_advancing_the_clock_reveals_more_candles(fake: FakeBinance, loaded: RecordingBinance) -> None:
    assert loaded.fetch_ohlcv("BTC/USDT", "1m", limit=2)[-1][0] == int(NOW.floor("1min").timestamp() * 1000)
    assert loaded.fetch_ohlcv("BTC/USDT", "1m", since=NOW_MS + 60_000) == []
    vol_before = loaded.fetch_ohlcv("BTC/USDT", "1h", limit=1)[-1][5]

    fake.advance(10 * 60_000)

    later = NOW + pd.Timedelta(minutes=10)
    rows = loaded.fetch_ohlcv("BTC/USDT", "1m", since=NOW_MS - 30_000, limit=100)
    assert [r[0] for r in rows] == [int(t.timestamp() * 1000) for t in BTC.index[2500:2511]]
    assert rows[-1][4] == BTC.loc[later.floor("1min"), "close"]
    hour = loaded.fetch_ohlcv("BTC/USDT", "1h", limit=1)[-1]
    assert hour[0] == int(NOW.floor("1h").timestamp() * 1000)
    assert hour[5] > vol_before


# --------------------------------------------------------- ticker / order book
def test_fetch_ticker(loaded: RecordingBinance) -> None:
    t = loaded.fetch_ticker("BTC/USDT")
    last = BTC.loc[NOW.floor("1min"), "close"]
    day = BTC[(BTC.index > NOW - pd.Timedelta(days=1)) & (BTC.index <= NOW)]
    assert t["symbol"] == "BTC/USDT"
    assert t["timestamp"] == NOW_MS
    assert t["last"] == t["close"] == last
    assert t["bid"] < last < t["ask"]
    assert (t["ask"] - t["bid"]) / last == pytest.approx(1e-4, abs=2 * 0.01 / last)  # 1 bp +- rounding
    assert round(t["bid"] / 0.01, 6) % 1 == 0 and round(t["ask"] / 0.01, 6) % 1 == 0
    assert t["open"] == day["open"].iloc[0]
    assert t["high"] == day["high"].max() and t["low"] == day["low"].min()
    assert t["baseVolume"] == pytest.approx(day["volume"].sum(), rel=1e-12)


def test_fetch_order_book(fake: FakeBinance, loaded: RecordingBinance) -> None:
    t = loaded.fetch_ticker("BTC/USDT")
    book = loaded.fetch_order_book("BTC/USDT", limit=5)
    assert book["nonce"] == NOW_MS
    assert [b[0] for b in book["bids"]] == pytest.approx([t["bid"] - 0.01 * k for k in range(5)])
    assert [a[0] for a in book["asks"]] == pytest.approx([t["ask"] + 0.01 * k for k in range(5)])
    assert all(level[1] == 1.0 for level in book["bids"] + book["asks"])

    fake.book_spacing_ticks, fake.book_qty = 10, 0.5
    book = loaded.fetch_order_book("BTC/USDT", limit=3)
    assert [b[0] for b in book["bids"]] == pytest.approx([t["bid"] - 0.1 * k for k in range(3)])
    assert all(level[1] == 0.5 for level in book["bids"] + book["asks"])
    assert fake.requests[-1].params == {"symbol": "BTCUSDT", "limit": "3"}


# ------------------------------------------------------------- bad requests
def test_unknown_symbol(fake: FakeBinance, loaded: RecordingBinance) -> None:
    # ccxt rejects an unknown unified symbol itself, without a request ...
    with pytest.raises(ccxt.BadSymbol):
        loaded.fetch_ohlcv("DOGE/USDT", "1m")
    assert fake.count() == 0
    # ... and maps the server's -1121 "Invalid symbol." to BadSymbol (a BadRequest).
    with pytest.raises(ccxt.BadSymbol):
        loaded.publicGetKlines({"symbol": "DOGEUSDT", "interval": "1m"})
    assert fake.requests[-1].status == 400


def test_bad_interval_is_bad_request(fake: FakeBinance, loaded: RecordingBinance) -> None:
    with pytest.raises(ccxt.BadRequest) as err:
        loaded.fetch_ohlcv("BTC/USDT", "7m")  # unknown timeframes are passed through
    assert not isinstance(err.value, ccxt.BadSymbol)
    assert "-1120" in str(err.value)
    with pytest.raises(ccxt.BadRequest):
        loaded.fetch_ohlcv("BTC/USDT", "1s")  # finer than the 1m base data


# ------------------------------------------------------------------- faults
@pytest.mark.parametrize("kind", sorted(FAULT_TO_CCXT))
def test_fault_maps_to_ccxt_exception(fake: FakeBinance, loaded: RecordingBinance, kind: str) -> None:
    if kind == "slow":
        loaded.timeout = 250
    fake.faults = FaultPlan(kinds=(kind,), paths=("/api/v3/klines",), slow_seconds=1.0)

    with pytest.raises(ccxt.NetworkError) as err:
        loaded.fetch_ohlcv("BTC/USDT", "1m", limit=3)
    assert type(err.value) is FAULT_TO_CCXT[kind]
    assert not isinstance(err.value, ccxt.RateLimitExceeded)
    rec = fake.requests[-1]
    assert (rec.path, rec.fault) == ("/api/v3/klines", kind)

    assert loaded.fetch_time() == NOW_MS  # other paths are not faulted
    fake.faults = None
    assert len(loaded.fetch_ohlcv("BTC/USDT", "1m", limit=3)) == 3  # client recovers


def test_bad_json_is_not_a_ccxt_error(fake: FakeBinance, loaded: RecordingBinance) -> None:
    """ccxt swallows the JSON error and parses the raw text: callers must validate."""
    fake.faults = FaultPlan(kinds=("badjson",))
    rows = loaded.fetch_ohlcv("BTC/USDT", "1m", limit=3)
    assert len(rows) == 3 and all(row[1:] == [None] * 5 for row in rows)  # junk rows
    # With since, the junk is filtered away: indistinguishable from "no more data".
    assert loaded.fetch_ohlcv("BTC/USDT", "1m", since=START_MS, limit=3) == []
    assert loaded.fetch_ticker("BTC/USDT")["last"] is None
    assert loaded.fetch_order_book("BTC/USDT", limit=5)["bids"] == []
    assert loaded.fetch_time() is None
    assert [(r.fault, r.status) for r in fake.requests] == [("badjson", 200)] * 5


def _raw_get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # loopback only
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_fault_wire_format(fake: FakeBinance) -> None:
    url = fake.url + "/api/v3/klines?symbol=BTCUSDT&interval=1m&limit=4"

    fake.faults = FaultPlan(kinds=("429",), retry_after=7)
    status, headers, body = _raw_get(url)
    assert status == 429 and headers["Retry-After"] == "7" and json.loads(body)["code"] == -1003

    fake.faults = FaultPlan(kinds=("418",))
    status, headers, body = _raw_get(url)
    assert status == 418 and "banned until" in json.loads(body)["msg"]

    fake.faults = FaultPlan(kinds=("500html",))
    status, headers, body = _raw_get(url)
    assert status in (502, 503) and headers["Content-Type"] == "text/html" and body.startswith(b"<html>")

    fake.faults = FaultPlan(kinds=("badjson",))
    status, _, body = _raw_get(url)
    assert status == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)

    fake.faults = None
    status, _, body = _raw_get(url)
    row = json.loads(body)[0]
    assert status == 200 and len(row) == 12 and row[6] == row[0] + 59_999 and isinstance(row[1], str)
    assert [r.fault for r in fake.requests] == ["429", "418", "500html", "badjson", None]


def test_fault_plan_is_deterministic() -> None:
    def sequence(seed: int) -> list[str | None]:
        plan = FaultPlan(rate=0.3, seed=seed, paths=("/api/v3/klines",))
        return [plan.pick("/api/v3/klines")[0] for _ in range(300)]

    a, b = sequence(1), sequence(1)
    assert a == b != sequence(2)
    assert 0.2 < sum(k is not None for k in a) / len(a) < 0.4
    assert set(a) - {None} == {"429", "418", "500html", "badjson", "drop", "slow"}
    assert FaultPlan(paths=("/api/v3/klines",)).pick("/api/v3/time")[0] is None


def test_fault_plan_against_ccxt_matches_the_seeded_sequence(fake: FakeBinance, loaded: RecordingBinance) -> None:
    kinds = ("429", "418", "500html", "drop")
    fake.faults = FaultPlan(rate=0.3, kinds=kinds, seed=1, paths=("/api/v3/klines",))
    outcomes = []
    for _ in range(20):
        try:
            loaded.fetch_ohlcv("BTC/USDT", "1m", limit=2)
            outcomes.append(None)
        except ccxt.NetworkError as e:
            outcomes.append(type(e))
    reference = FaultPlan(rate=0.3, kinds=kinds, seed=1)
    expected = [reference.pick("/")[0] for _ in range(20)]
    assert [r.fault for r in fake.requests] == expected
    assert outcomes == [FAULT_TO_CCXT[k] if k else None for k in expected]
    assert 0 < fake.faults.injected < 20


def test_max_faults_then_success(fake: FakeBinance, loaded: RecordingBinance) -> None:
    fake.faults = FaultPlan(kinds=("429",), max_faults=2)
    for _ in range(2):
        with pytest.raises(ccxt.DDoSProtection):
            loaded.fetch_ohlcv("BTC/USDT", "1m", limit=1)
    assert len(loaded.fetch_ohlcv("BTC/USDT", "1m", limit=1)) == 1


# -------------------------------------------------------------- request log
def test_request_log(fake: FakeBinance, loaded: RecordingBinance) -> None:
    t0 = time.time()
    loaded.fetch_ohlcv("BTC/USDT", "1h", since=START_MS, limit=2)
    loaded.fetch_ticker("BTC/USDT")
    loaded.fetch_time()
    t1 = time.time()

    log = fake.requests
    assert [r.path for r in log] == ["/api/v3/klines", "/api/v3/ticker/24hr", "/api/v3/time"]
    k = log[0]
    assert k.method == "GET"
    assert k.params == {"symbol": "BTCUSDT", "interval": "1h", "limit": "2", "startTime": str(START_MS)}
    assert t0 <= k.time <= t1 and k.now_ms == NOW_MS
    assert (k.fault, k.status) == (None, 200)
    assert fake.count("/api/v3/") == 3 and fake.count("/api/v3/klines") == 1 and fake.count("/sapi") == 0
    assert len(loaded.sent) == len(log)

    fake.clear_requests()
    loaded.sent.clear()
    assert fake.requests == [] and fake.count() == 0
