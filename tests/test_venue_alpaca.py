"""The Alpaca adapter with the real alpaca-py clients against the local fake (tests/fakes/alpaca.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from systrade.config import AlpacaSettings, BrokersSettings, Settings
from systrade.errors import UserError
from systrade.exchange import RetryPolicy
from systrade.venues import alpaca
from systrade.venues.base import OrderIntent
from systrade.venues.errors import BrokerAuthError, BrokerRateLimited, BrokerRetryable
from tests.fakes.alpaca import DEFAULT_API_KEY, DEFAULT_SECRET, FakeAlpaca

POLICY = RetryPolicy(retries=3, backoff_seconds=0, rate_limit_backoff_seconds=0)
BARS = "/v2/stocks/bars"


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setenv("SYSTRADE_ALPACA_API_KEY", DEFAULT_API_KEY)
    monkeypatch.setenv("SYSTRADE_ALPACA_SECRET", DEFAULT_SECRET)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with FakeAlpaca() as server:
        server.add_asset("AAPL")
        server.add_asset("BRK.A", fractionable=False)
        server.add_asset("DEAD", tradable=False)
        yield server


def settings(fake: FakeAlpaca, **extra) -> Settings:
    return Settings(brokers=BrokersSettings(alpaca=AlpacaSettings(trading_url=fake.url, data_url=fake.url,
                                                                  timeout=5, **extra)))


def ohlcv(index: pd.DatetimeIndex, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 + rng.normal(0, 1, len(index)).cumsum()
    frame = pd.DataFrame({"open": close + 0.25, "high": close + 1.5, "low": close - 1.5, "close": close,
                          "volume": rng.integers(1_000, 9_000, len(index)).astype(float)}, index=index)
    frame.index.name = "time"
    return frame


def daily() -> pd.DataFrame:
    """63 weekdays across the switch to daylight time (stamped 05:00 UTC before 10 March, 04:00 UTC after)."""
    return ohlcv(pd.bdate_range("2024-01-02", "2024-03-28", tz="UTC"))


def after_close(fake: FakeAlpaca) -> None:
    fake.set_clock("2024-03-28T21:00:00Z", is_open=False, next_open="2024-04-01T13:30:00Z",
                   next_close="2024-04-01T20:00:00Z")


def intent(cid: str = "run1-0001", side: str = "buy", amount: float = 3.0, symbol: str = "AAPL") -> OrderIntent:
    return OrderIntent(cid, symbol, side, amount, datetime(2024, 3, 28, 15, tzinfo=UTC))


# ------------------------------------------------------------------ candles


def test_daily_bars_through_pages_and_faults_equal_the_served_frame(fake):
    frame = daily()
    fake.set_bars("AAPL", "1d", frame)
    after_close(fake)
    fake.page_limit = 25  # 63 bars: 3 pages
    fake.fail("500", BARS)  # on page 1
    faults = iter([("429", BARS), ("drop", BARS)])  # one on page 2, one on page 3
    pages = []

    def on_page(rows: int) -> None:
        pages.append(rows)
        kind = next(faults, None)
        if kind:
            fake.fail(*kind)

    source = alpaca.candle_source(settings(fake), POLICY)
    got = source.candles("AAPL", "1d", pd.Timestamp("2024-01-02", tz="UTC"), pd.Timestamp("2024-03-29", tz="UTC"),
                         on_page)
    pd.testing.assert_frame_equal(got, frame, check_freq=False)
    assert str(got.index.tz) == "UTC" and got.index.name == "time"
    assert got.index[0] == pd.Timestamp("2024-01-02", tz="UTC") and got.index[-1] == pd.Timestamp("2024-03-28",
                                                                                                   tz="UTC")
    assert pages == [25, 25, len(frame) - 50]
    bars = fake.requests_to(BARS)
    # each fault repeated its own page only: tokens None, None (500), 25, 25 (429), 50, 50 (drop)
    assert [r.params.get("page_token") for r in bars] == [None, None, "25", "25", "50", "50"]
    assert [r.fault for r in bars] == ["500", None, "429", None, "drop", None]
    assert all(r.params["feed"] == "iex" and r.params["adjustment"] == "all" for r in bars)
    assert all(r.params["timeframe"] == "1Day" and r.params["symbols"] == "AAPL" for r in bars)


def test_raw_adjustment_and_configured_feed_are_sent(fake):
    fake.set_bars("AAPL", "1d", daily())
    after_close(fake)
    fake.page_limit = 30
    source = alpaca.candle_source(settings(fake, feed="sip"), POLICY, adjustment="raw")
    assert source.venue == "alpaca" and source.adjustment == "raw"
    got = source.candles("AAPL", "1d", pd.Timestamp("2024-03-01", tz="UTC"), pd.Timestamp("2024-03-08", tz="UTC"))
    assert list(got.index.strftime("%m-%d")) == ["03-01", "03-04", "03-05", "03-06", "03-07"]  # end excluded
    bars = fake.requests_to(BARS)
    assert bars and all(r.params["feed"] == "sip" and r.params["adjustment"] == "raw" for r in bars)


def test_intraday_bars_by_open_time_without_the_forming_bar(fake):
    index = pd.date_range("2024-03-08 14:30", "2024-03-08 20:55", freq="5min", tz="UTC")
    frame = ohlcv(index, seed=1)
    fake.set_bars("AAPL", "5m", frame)
    fake.set_clock("2024-03-08T17:02:00Z", is_open=True)  # the 17:00 bar is forming
    source = alpaca.candle_source(settings(fake), POLICY)
    got = source.candles("AAPL", "5m", pd.Timestamp("2024-03-08", tz="UTC"), pd.Timestamp("2024-03-09", tz="UTC"))
    assert got.index[-1] == pd.Timestamp("2024-03-08 16:55", tz="UTC")
    pd.testing.assert_frame_equal(got, frame.loc[:"2024-03-08 16:55"], check_freq=False)
    assert fake.requests_to(BARS)[0].params["timeframe"] == "5Min"


def test_unknown_symbol_untradable_asset_and_timeframe_are_user_errors(fake):
    source = alpaca.candle_source(settings(fake), POLICY)
    source.check("AAPL", "1h")
    with pytest.raises(UserError, match="alpaca has no asset 'NOPE'"):
        source.check("NOPE", "1d")
    with pytest.raises(UserError, match="alpaca has no asset 'DEAD'.*not tradable"):
        source.check("DEAD", "1d")
    with pytest.raises(UserError, match=r"no timeframe '4h'; valid: 1m, 5m, 15m, 30m, 1h, 1d"):
        source.check("AAPL", "4h")
    with pytest.raises(UserError, match="valid: 1m"):
        source.candles("AAPL", "1w", pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-02-01", tz="UTC"))
    with pytest.raises(UserError, match="alpaca has no asset 'NOPE'"):
        alpaca.live_market(settings(fake), POLICY).rules("NOPE")


def test_missing_keys_are_a_user_error_naming_the_variables(fake, monkeypatch):
    monkeypatch.delenv("SYSTRADE_ALPACA_SECRET")
    for factory in (alpaca.candle_source, alpaca.live_market, alpaca.order_gateway):
        with pytest.raises(UserError) as caught:
            factory(settings(fake), POLICY)
        text = str(caught.value)
        assert "SYSTRADE_ALPACA_API_KEY" in text and "SYSTRADE_ALPACA_SECRET" in text
        assert "market data needs keys too" in text and "https://app.alpaca.markets" in text
    assert fake.requests == []


def test_market_dict_for_fractional_and_whole_share_assets(fake):
    fake.add_asset("MSFT", min_order_size=0.001, min_trade_increment=0.001, price_increment=0.01)
    source = alpaca.candle_source(settings(fake, fees=0.0005), POLICY)
    assert source.market("MSFT") == {"exchange": "alpaca", "symbol": "MSFT", "base": "MSFT", "quote": "USD",
                                     "lot": 0.001, "tick": 0.01, "min_amount": 0.001, "min_cost": 1.0,
                                     "taker_fee": 0.0005, "maker_fee": 0.0005}
    whole = source.market("BRK.A")
    assert (whole["lot"], whole["min_amount"], whole["min_cost"]) == (1.0, 1.0, None)


# ------------------------------------------------------------------ live market


def test_rules_precision_and_server_time(fake):
    fake.add_asset("MSFT", min_order_size=0.001, min_trade_increment=0.001)
    after_close(fake)
    market = alpaca.live_market(settings(fake), POLICY)
    rules = market.rules("MSFT")
    assert (rules.base, rules.quote, rules.lot, rules.tick, rules.min_amount, rules.min_cost) == (
        "MSFT", "USD", 0.001, 0.01, 0.001, 1.0)
    assert market.rules("MSFT") is rules and len(fake.requests_to("/v2/assets/MSFT")) == 1
    assert market.amount_to_precision("MSFT", 1.23456) == 1.234
    assert market.amount_to_precision("BRK.A", 2.99) == 2.0
    assert market.server_time_ms() == int(pd.Timestamp("2024-03-28T21:00:00Z").timestamp() * 1000)
    assert market.conversion_price("USD", "USD") is None


def test_closed_candles_drop_the_forming_bar_by_the_clock(fake):
    frame = daily()
    fake.set_bars("AAPL", "1d", frame)
    market = alpaca.live_market(settings(fake), POLICY)
    fake.set_clock("2024-03-28T18:00:00Z", is_open=True, next_open="2024-04-01T13:30:00Z")  # session running
    got = market.closed_candles("AAPL", "1d", 5)
    assert list(got.index.strftime("%m-%d")) == ["03-21", "03-22", "03-25", "03-26", "03-27"]
    after_close(fake)
    got = market.closed_candles("AAPL", "1d", 3)
    pd.testing.assert_frame_equal(got, frame.iloc[-3:], check_freq=False)
    assert len(market.closed_candles("AAPL", "1d", 60)) == 60  # walks back further than the first window

    index = pd.date_range("2024-03-27 13:30", "2024-03-28 19:59", freq="1min", tz="UTC")
    fake.set_bars("AAPL", "1m", ohlcv(index, seed=2))
    fake.set_clock("2024-03-28T15:00:30Z", is_open=True)
    got = market.closed_candles("AAPL", "1m", 10)
    assert len(got) == 10 and got.index[-1] == pd.Timestamp("2024-03-28 14:59", tz="UTC")


def test_order_book_and_last_price(fake):
    market = alpaca.live_market(settings(fake), POLICY)
    fake.set_quote("AAPL", bid=189.5, ask=189.6, bid_size=3, ask_size=7)
    fake.set_trade("AAPL", 189.55)
    assert market.order_book("AAPL") == {"bids": [[189.5, 3.0]], "asks": [[189.6, 7.0]]}
    assert market.last_price("AAPL") == 189.55
    fake.set_quote("AAPL", bid=0, ask=189.6, bid_size=0, ask_size=7)
    assert market.order_book("AAPL") == {"bids": [], "asks": [[189.6, 7.0]]}
    assert market.order_book("MSFT") == {"bids": [], "asks": []}
    quotes = fake.requests_to("/v2/stocks/quotes/latest")
    assert all(r.params["feed"] == "iex" and r.params["symbols"] in ("AAPL", "MSFT") for r in quotes)


# ------------------------------------------------------------------ orders


def test_submit_places_exactly_one_order(fake):
    gateway = alpaca.order_gateway(settings(fake), POLICY)
    order = intent()
    assert gateway.lookup(order) is None
    fake.fail("500", "/v2/orders", method="POST")  # not taken: the send fails, the lookup finds nothing
    with pytest.raises(BrokerRetryable):
        gateway.submit(order)
    assert fake.orders() == []
    fake.fail("lostresponse", "/v2/orders", method="POST")  # taken, answer lost: the lookup finds it
    placed = gateway.submit(order)
    assert placed.status == "submitted" and placed.filled == 0 and placed.broker_order_id
    again = gateway.submit(order)  # the same intent once more: looked up, not sent
    assert again.broker_order_id == placed.broker_order_id
    assert len(fake.orders()) == 1
    assert len(fake.requests_to("/v2/orders", "POST")) == 2  # the failed send and the lost one
    sent = fake.orders()[0]
    assert (sent["client_order_id"], sent["qty"], sent["side"], sent["type"], sent["time_in_force"]) == (
        "run1-0001", "3", "buy", "market", "day")


def test_partial_then_full_fill_and_sell_fee(fake):
    fake.set_cash(10_000)
    gateway = alpaca.order_gateway(settings(fake, sell_fees=0.001), POLICY)
    buy = intent("run1-0002", amount=10)
    assert gateway.submit(buy).status == "submitted"
    fake.fill("run1-0002", 4, 100.0)
    part = gateway.lookup(buy)
    assert (part.status, part.filled, part.average_price, part.fee, part.open) == (
        "partially_filled", 4.0, 100.0, 0.0, True)
    fake.fill("run1-0002", 6, 105.0)
    done = gateway.lookup(buy)
    assert (done.status, done.filled, done.average_price, done.open) == ("filled", 10.0, 103.0, False)
    assert gateway.position("AAPL") == 10.0 and gateway.cash() == pytest.approx(10_000 - 1030)
    assert gateway.position("MSFT") == 0.0

    fake.auto_fill = True
    fake.set_trade("AAPL", 110.0)
    sold = gateway.submit(intent("run1-0003", side="sell", amount=2.5))
    assert (sold.status, sold.filled, sold.average_price) == ("filled", 2.5, 110.0)
    assert sold.fee == pytest.approx(0.001 * 2.5 * 110.0)
    assert gateway.position("AAPL") == 7.5


def test_alpaca_py_does_not_retry_by_itself_and_timeout_is_set(fake):
    gateway = alpaca.order_gateway(settings(fake), RetryPolicy(retries=0))
    fake.fail("429", "/v2/account", count=5)
    with pytest.raises(BrokerRateLimited):
        gateway.cash()
    assert len(fake.requests_to("/v2/account")) == 1  # one request: alpaca-py's own 429 retry is off
    assert gateway.trading._session.timeout == 5


def test_keys_never_appear_in_errors(fake):
    fake.api_key, fake.secret = "otherKey000000000001", "otherSecret0000000000000001"
    gateway = alpaca.order_gateway(settings(fake), POLICY)
    source = alpaca.candle_source(settings(fake), POLICY)
    raised = []
    for call in (gateway.cash, lambda: gateway.lookup(intent()), lambda: source.market("AAPL")):
        with pytest.raises(BrokerAuthError) as caught:
            call()
        raised.append(caught.value)
    fake.api_key, fake.secret = DEFAULT_API_KEY, DEFAULT_SECRET
    fake.fail("drop", "/v2/account", count=10)
    with pytest.raises(BrokerRetryable) as caught:
        gateway.cash()
    raised.append(caught.value)
    for error in raised:
        text = f"{error!s} {error!r}"
        assert DEFAULT_API_KEY not in text and DEFAULT_SECRET not in text
    assert "401" in str(raised[0])


def test_duplicate_client_order_id_answer_returns_the_existing_order(fake):
    gateway = alpaca.order_gateway(settings(fake), POLICY)
    first = gateway.submit(intent("run1-0004"))
    fake.fail("notfound", "/v2/orders:by_client_order_id")  # the lookup misses it: the send meets the 422
    again = gateway.submit(intent("run1-0004"))
    assert again.broker_order_id == first.broker_order_id and len(fake.orders()) == 1
    posts = fake.requests_to("/v2/orders", "POST")
    assert [r.status for r in posts] == [200, 422]
