"""Tests for tests/fakes/upbit.py and tests/fakes/bithumb.py through the REAL ccxt clients.

An autouse fixture makes every non-loopback ``connect``/``getaddrinfo`` fail, so nothing
leaves the machine even if a URL were not rewritten onto the fake.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import ccxt
import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.usefixtures("loopback_only")  # in-process code reaches 127.0.0.1 only

try:  # tests/ is not a package today; keep working if it becomes one
    from fakes.bithumb import FakeBithumb
    from fakes.upbit import FakeUpbit, krw_tick
except ImportError:  # pragma: no cover
    from tests.fakes.bithumb import FakeBithumb
    from tests.fakes.upbit import FakeUpbit, krw_tick

MIN = 60_000
DAY = 86_400_000
START = pd.Timestamp("2024-01-01", tz="UTC")
N = 3000
# 2024-01-02 17:40:30 UTC: mid-minute, so the minute (and 5m, day) candle containing now is forming.
NOW_MS = int(START.timestamp() * 1000) + 2500 * MIN + 30_000
START_MS = int(START.timestamp() * 1000)
OHLCV = ["open", "high", "low", "close", "volume"]


def walk(n: int, price: float, tick: float, seed: int) -> pd.DataFrame:
    """1m candles on the tick grid, open = previous close."""
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
            "volume": np.round(rng.uniform(0.01, 3.0, n), 8),
        },
        index=pd.date_range(START, periods=n, freq="1min"),
    )


BTC = walk(N, 60_000_000, 1000, 1)
HOLES = BTC.drop(BTC.index[[101, 102, 150, 299]])  # minutes without trades
ETH_BTC = walk(N, 0.05, 1e-8, 3)


def rows(frame: pd.DataFrame) -> list[list[float]]:
    ts = frame.index.as_unit("ms").asi8
    return [[int(t), *map(float, r)] for t, r in zip(ts, frame[OHLCV].to_numpy(), strict=True)]


def resample(frame: pd.DataFrame, rule: str) -> pd.DataFrame:
    agg = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    return frame[OHLCV].resample(rule, label="left", closed="left").agg(agg).dropna()


@pytest.fixture(scope="module")
def upbit() -> Iterator[FakeUpbit]:
    with FakeUpbit({"BTC/KRW": BTC, "ETH/KRW": walk(N, 3_000_000, 1000, 2), "ETH/BTC": ETH_BTC}) as fake:
        fake.add_market("XRP/KRW", HOLES.assign(**{c: HOLES[c] / 60_000 for c in OHLCV[:4]}))
        yield fake


@pytest.fixture
def fake(upbit: FakeUpbit) -> FakeUpbit:
    upbit.now_ms = NOW_MS
    upbit.clear_faults()
    upbit.clear_requests()
    upbit.ban_seconds, upbit.per_second_limit = 0.0, None
    for s in ("BTC/KRW", "ETH/KRW", "XRP/KRW", "ETH/BTC"):
        upbit.set_tick(s, None)
    return upbit


@pytest.fixture
def client(fake: FakeUpbit) -> ccxt.upbit:
    return ccxt.upbit({**fake.ccxt_config(), "timeout": 3000})


# ------------------------------------------------------------------- Upbit
def test_load_markets_lists_upbit_ids_as_unified_symbols(client: ccxt.upbit, fake: FakeUpbit) -> None:
    markets = client.load_markets()
    assert markets["BTC/KRW"]["id"] == "KRW-BTC"
    assert markets["ETH/BTC"]["id"] == "BTC-ETH"
    assert set(markets) == {"BTC/KRW", "ETH/KRW", "XRP/KRW", "ETH/BTC"}
    assert [r.path for r in fake.requests] == ["/v1/market/all"]


def test_fetch_ohlcv_since_becomes_to_and_returns_the_window_oldest_first(client: ccxt.upbit, fake: FakeUpbit) -> None:
    since = START_MS + 700 * MIN
    got = client.fetch_ohlcv("BTC/KRW", "1m", since=since, limit=200)
    assert got == rows(BTC.iloc[700:900])
    req = fake.requests[-1]
    assert req.path == "/v1/candles/minutes/1"
    assert req.params == {"market": "KRW-BTC", "count": "200", "to": "2024-01-01T15:00:00.000Z"}
    # the raw answer is newest first, with Upbit's fields
    raw = client.public_get_candles_minutes_unit({"unit": 1, "market": "KRW-BTC", "count": 2, "to": req.params["to"]})
    assert [r["candle_date_time_utc"] for r in raw] == ["2024-01-01T14:59:00", "2024-01-01T14:58:00"]
    assert raw[0]["candle_date_time_kst"] == "2024-01-01T23:59:00"
    assert set(raw[0]) == {
        "market", "candle_date_time_utc", "candle_date_time_kst", "opening_price", "high_price", "low_price",
        "trade_price", "timestamp", "candle_acc_trade_price", "candle_acc_trade_volume", "unit",
    }  # fmt: skip


@pytest.mark.parametrize("to", ["2024-01-01 15:00:00", "2024-01-01T15:00:00", "2024-01-02T00:00:00+09:00"])
def test_to_without_zone_is_utc_and_with_zone_is_honoured(client: ccxt.upbit, to: str) -> None:
    raw = client.public_get_candles_minutes_1({"market": "KRW-BTC", "count": 1, "to": to})
    assert raw[0]["candle_date_time_utc"] == "2024-01-01T14:59:00"


def test_count_above_200_is_refused_so_callers_must_page(client: ccxt.upbit, fake: FakeUpbit) -> None:
    with pytest.raises(ccxt.ExchangeError, match="count"):  # 400 with Upbit's error body
        client.fetch_ohlcv("BTC/KRW", "1m", since=START_MS, limit=1000)
    assert fake.requests[-1].status == 400
    paged: list[list[float]] = []
    since = START_MS
    while since < START_MS + 1000 * MIN:
        paged += client.fetch_ohlcv("BTC/KRW", "1m", since=since, limit=200)
        since += 200 * MIN
    assert paged == rows(BTC.iloc[:1000])


def test_holes_stay_holes(client: ccxt.upbit) -> None:
    got = client.fetch_ohlcv("XRP/KRW", "1m", since=START_MS + 100 * MIN, limit=200)
    want = HOLES[(HOLES.index >= START + pd.Timedelta(minutes=100)) & (HOLES.index < START + pd.Timedelta(minutes=300))]
    assert len(got) == 200 - 4
    assert [r[0] for r in got] == list(want.index.as_unit("ms").asi8)


def test_forming_candle_is_served_and_the_clock_moves_it(client: ccxt.upbit, fake: FakeUpbit) -> None:
    latest = client.fetch_ohlcv("BTC/KRW", "5m", limit=3)
    assert latest[-1][0] == START_MS + 2500 * MIN  # 17:40, forming: only its first minute so far
    assert latest[-1][5] == pytest.approx(BTC["volume"].iloc[2500])
    assert latest[-1][4] == BTC["close"].iloc[2500]
    # nothing after the forming minute, however far `to` reaches
    assert client.fetch_ohlcv("BTC/KRW", "1m", since=START_MS + 2500 * MIN, limit=200) == rows(BTC.iloc[2500:2501])
    fake.advance(3 * MIN)
    latest = client.fetch_ohlcv("BTC/KRW", "5m", limit=1)
    assert latest[0][5] == pytest.approx(BTC["volume"].iloc[2500:2504].sum())


def test_day_candles_open_at_midnight_utc(client: ccxt.upbit, fake: FakeUpbit) -> None:
    got = client.fetch_ohlcv("BTC/KRW", "1d", since=START_MS, limit=5)
    seen = BTC[BTC.index.as_unit("ms").asi8 <= NOW_MS]
    want = resample(seen, "1D")
    assert [r[0] for r in got] == [START_MS, START_MS + DAY]  # day two is the forming one
    assert np.allclose(np.array(got)[:, 1:], want.to_numpy())
    raw = client.public_get_candles_days({"market": "KRW-BTC", "count": 1})
    assert raw[0]["candle_date_time_utc"] == "2024-01-02T00:00:00"
    assert raw[0]["candle_date_time_kst"] == "2024-01-02T09:00:00"
    weeks = client.fetch_ohlcv("BTC/KRW", "1w", limit=2)
    assert [pd.Timestamp(r[0], unit="ms").day_name() for r in weeks] == ["Monday"]


def test_order_book_and_ticker(client: ccxt.upbit) -> None:
    last = float(BTC["close"].iloc[2500])
    book = client.fetch_order_book("BTC/KRW")
    assert book["bids"][0] == [last, 1.0] and book["asks"][0] == [last + 1000, 1.0]
    assert len(book["bids"]) == 15 and book["bids"][1][0] == last - 1000
    assert book["timestamp"] == NOW_MS
    ticker = client.fetch_ticker("BTC/KRW")
    day = BTC.iloc[1440:2501]
    assert ticker["last"] == last
    assert ticker["open"] == day["open"].iloc[0]
    assert ticker["high"] == day["high"].max() and ticker["low"] == day["low"].min()
    assert ticker["previousClose"] == BTC["close"].iloc[1439]
    assert ticker["baseVolume"] == pytest.approx(BTC["volume"].iloc[1061:2501].sum())
    tickers = client.fetch_tickers()  # ticker/all?quote_currencies=BTC,KRW
    assert set(tickers) == {"BTC/KRW", "ETH/KRW", "XRP/KRW", "ETH/BTC"}
    assert tickers["ETH/BTC"]["last"] == ETH_BTC["close"].iloc[2500]


# (fault, body, what ccxt 4.5.90 raises). A JSON {"error": ...} body wins over the HTTP status:
# upbit.handle_errors raises ExchangeError for names/messages it does not know (429/418 included).
FAULTS = [
    ("429", None, ccxt.ExchangeError),
    ("429", "Too many API requests.", ccxt.RateLimitExceeded),
    ("418", None, ccxt.ExchangeError),
    ("418", "IP blocked", ccxt.DDoSProtection),
    ("500", None, ccxt.ExchangeNotAvailable),
    ("drop", None, ccxt.NetworkError),
]


@pytest.mark.parametrize(("kind", "body", "exc"), FAULTS)
def test_faults_map_to_ccxt_errors(client: ccxt.upbit, fake: FakeUpbit, kind: str, body: str | None, exc: type) -> None:
    client.load_markets()
    fake.fail(kind, "/v1/candles", body=body)
    with pytest.raises(exc) as info:
        client.fetch_ohlcv("BTC/KRW", "1m", limit=5)
    assert type(info.value) is exc  # exactly, not a subclass
    if kind != "drop":
        assert fake.requests[-1].status == int(kind)
        assert client.last_response_headers["Remaining-Req"].startswith("group=candles;")
    assert len(client.fetch_ohlcv("BTC/KRW", "1m", limit=5)) == 5  # one fault only


def test_418_ban_and_requests_after_it(client: ccxt.upbit, fake: FakeUpbit) -> None:
    client.load_markets()
    fake.ban_seconds = 60.0
    fake.fail("418", "/v1/ticker")
    with pytest.raises(ccxt.ExchangeError, match="418"):
        client.fetch_ticker("BTC/KRW")
    assert fake.requests_since_ban() == 0
    with pytest.raises(ccxt.ExchangeError, match="418"):  # still banned, whatever the endpoint
        client.fetch_order_book("BTC/KRW")
    assert fake.requests_since_ban() == 1
    fake.clear_faults()  # lifts the ban
    assert client.fetch_ticker("BTC/KRW")["last"] == BTC["close"].iloc[2500]


def test_remaining_req_header_per_group_counts_down(client: ccxt.upbit, fake: FakeUpbit) -> None:
    client.load_markets()
    assert client.last_response_headers["Remaining-Req"].startswith("group=market; min=1800; sec=")
    secs = []
    for _ in range(3):
        client.fetch_ohlcv("BTC/KRW", "1m", limit=1)
        header = client.last_response_headers["Remaining-Req"]
        assert header.startswith("group=candles; min=1800; sec=")
        secs.append(int(header.rsplit("=", 1)[1]))
    assert secs == sorted(secs, reverse=True) or secs[-1] == 9  # a wall-clock second may have turned
    client.fetch_order_book("BTC/KRW")
    assert client.last_response_headers["Remaining-Req"].startswith("group=orderbook;")


def test_per_second_limit_answers_429(client: ccxt.upbit, fake: FakeUpbit) -> None:
    client.load_markets()
    fake.per_second_limit = 0
    with pytest.raises(ccxt.ExchangeError, match="429"):
        client.fetch_ticker("BTC/KRW")
    assert fake.requests[-1].status == 429


def test_instruments_tick_via_implicit_method(client: ccxt.upbit, fake: FakeUpbit) -> None:
    answer = client.public_get_orderbook_instruments({"markets": "KRW-BTC,BTC-ETH"})
    assert answer[0]["market"] == "KRW-BTC" and answer[0]["quote_currency"] == "KRW"
    assert answer[0]["tick_size"] == "1000"  # krw_tick at ~60M KRW
    assert answer[0]["supported_levels"][0] == "0"
    assert answer[1]["tick_size"] == "0.00000001"
    assert client.last_response_headers["Remaining-Req"].startswith("group=orderbook;")
    fake.set_tick("BTC/KRW", "5000")
    assert client.publicGetOrderbookInstruments({"markets": "KRW-BTC"})[0]["tick_size"] == "5000"
    assert fake.requests[-1].path == "/v1/orderbook/instruments"


@pytest.mark.parametrize(
    ("price", "tick"),
    [(60_000_000, "1000"), (1_500_000, "1000"), (700_000, "500"), (200_000, "100"), (70_000, "50"),
     (20_000, "10"), (7_000, "5"), (2_000, "1"), (500, "1"), (50, "0.01"), (5, "0.001")],
)  # fmt: skip
def test_krw_tick_table(price: float, tick: str) -> None:
    assert krw_tick(price) == Decimal(tick)


# ------------------------------------------------------------------ Bithumb
@pytest.fixture(scope="module")
def bithumb() -> Iterator[FakeBithumb]:
    with FakeBithumb({"BTC/KRW": BTC, "ETH/BTC": ETH_BTC}, clock_ms=NOW_MS) as fake:
        yield fake


def test_bithumb_markets_ohlcv_book_ticker(bithumb: FakeBithumb) -> None:
    bithumb.clear_requests()
    client = ccxt.bithumb({**bithumb.ccxt_config(), "timeout": 3000})
    markets = client.load_markets()
    assert set(markets) == {"BTC/KRW", "ETH/BTC"} and markets["BTC/KRW"]["id"] == "KRW-BTC"
    assert bithumb.requests[-1].params == {"isDetails": "true"}
    # generation 2: count = limit, no `to`: the newest candles (forming one included)
    assert client.fetch_ohlcv("BTC/KRW", "1m", limit=200) == rows(BTC.iloc[2301:2501])
    assert bithumb.requests[-1].params == {"market": "KRW-BTC", "count": "200"}
    assert len(client.fetch_ohlcv("BTC/KRW", "1m")) == 1  # no limit: no count: ONE candle
    # since is only a client-side filter of that newest window
    assert client.fetch_ohlcv("BTC/KRW", "1m", since=START_MS, limit=200) == rows(BTC.iloc[2301:2501])
    assert client.fetch_ohlcv("BTC/KRW", "1m", since=START_MS + 2450 * MIN, limit=200) == rows(BTC.iloc[2450:2501])
    paged = client.fetch_ohlcv("BTC/KRW", "1m", limit=200, params={"to": "2024-01-01T15:00:00"})
    assert paged == rows(BTC.iloc[700:900])  # paging back works only with an explicit `to`
    last = float(BTC["close"].iloc[2500])
    book = client.fetch_order_book("BTC/KRW")
    assert book["bids"][0] == [last, 1.0] and book["asks"][0] == [last + 1000, 1.0]
    ticker = client.fetch_ticker("BTC/KRW")
    assert ticker["last"] == last and ticker["timestamp"] is not None
    assert "Remaining-Req" not in client.last_response_headers


def test_bithumb_generation_1_endpoints(bithumb: FakeBithumb) -> None:
    bithumb.clear_requests()
    client = ccxt.bithumb({**bithumb.ccxt_config(), "timeout": 3000, "options": {"generation": 1}})
    assert set(client.load_markets()) == {"BTC/KRW", "ETH/BTC"}
    assert [r.path for r in bithumb.requests] == ["/public/ticker/ALL_KRW", "/public/ticker/ALL_BTC"]
    window = client.fetch_ohlcv("BTC/KRW", "1m")  # fixed window, oldest first
    assert bithumb.requests[-1].path == "/public/candlestick/BTC_KRW/1m" and bithumb.requests[-1].params == {}
    assert window == rows(BTC.iloc[2501 - 1500 : 2501])
    assert client.fetch_ohlcv("BTC/KRW", "1m", since=START_MS + 2000 * MIN, limit=3) == rows(BTC.iloc[2000:2003])
    assert client.fetch_ohlcv("BTC/KRW", "1m", since=START_MS, limit=3) == rows(BTC.iloc[1001:1004])  # not older
    last = float(BTC["close"].iloc[2500])
    assert client.fetch_order_book("BTC/KRW")["bids"][0] == [last, 1.0]
    assert client.fetch_ticker("BTC/KRW")["last"] == last


@pytest.mark.parametrize(("kind", "body", "exc"), FAULTS)
def test_bithumb_faults(bithumb: FakeBithumb, kind: str, body: str | None, exc: type) -> None:
    client = ccxt.bithumb({**bithumb.ccxt_config(), "timeout": 3000})
    client.load_markets()
    bithumb.fail(kind, "/v1/ticker", body=body)
    with pytest.raises(exc) as info:
        client.fetch_ticker("BTC/KRW")
    assert type(info.value) is exc
    assert client.fetch_ticker("BTC/KRW")["last"] == BTC["close"].iloc[2500]
