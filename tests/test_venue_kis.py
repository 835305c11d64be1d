"""The KIS client and adapter (systrade.venues.kis) against the local fake (tests/fakes/kis.py); no internet."""

from __future__ import annotations

import json
import logging
import os
import stat
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from systrade.config import Settings
from systrade.errors import UserError
from systrade.exchange import RetryPolicy
from systrade.venues import kis
from systrade.venues.base import OrderIntent
from systrade.venues.errors import BrokerAuthError, BrokerMarketClosed, BrokerRetryable
from tests.fakes.kis import QUOTES, TRADING, FakeKis

POLICY = RetryPolicy(retries=3, backoff_seconds=0, rate_limit_backoff_seconds=0)
CHART = QUOTES + "inquire-daily-itemchartprice"
ORDER = TRADING + "order-cash"
CCLD = TRADING + "inquire-daily-ccld"
SYMBOL = "005930"


def _frame(dates: pd.DatetimeIndex, seed: int, base: float = 70_000.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = np.round(base + np.cumsum(rng.integers(-10, 11, len(dates))) * 100.0)
    frame = pd.DataFrame({"open": close - 100, "high": close + 300, "low": close - 400, "close": close,
                          "volume": rng.integers(1_000, 100_000, len(dates)).astype(float)}, index=dates)
    return frame.astype(float)


DATES = pd.bdate_range("2024-01-02", periods=250, tz="UTC")
RAW = _frame(DATES, 1)
ADJUSTED = RAW.copy()
ADJUSTED.loc[DATES[:120], ["open", "high", "low", "close"]] /= 2  # a 2:1 split in the middle
ADJUSTED.loc[DATES[:120], "volume"] *= 2


@pytest.fixture
def fake():
    with FakeKis() as server:
        server.add_stock(SYMBOL, RAW, ADJUSTED)
        recent = pd.bdate_range(end=pd.Timestamp.now(tz="UTC").floor("D") - pd.Timedelta(days=3), periods=40,
                                tz="UTC")
        server.add_stock("000660", _frame(recent, 2, 150_000.0))
        yield server


@pytest.fixture
def env(monkeypatch, fake):
    monkeypatch.setenv("SYSTRADE_KIS_APP_KEY", fake.app_key)
    monkeypatch.setenv("SYSTRADE_KIS_APP_SECRET", fake.app_secret)
    monkeypatch.setenv("SYSTRADE_KIS_ACCOUNT", fake.account)
    return fake


def _settings(fake: FakeKis) -> Settings:
    return Settings.model_validate({"brokers": {"kis": {"url": fake.url}}})


def _kw(fake: FakeKis, tmp_path, sleeps: list[float] | None = None) -> dict:
    def sleep(seconds: float) -> None:  # the client's waits move the fake's clock instead of the test's time
        if sleeps is not None:
            sleeps.append(seconds)
        fake.advance(seconds)

    return {"token_cache_dir": tmp_path, "min_interval": 0, "sleep": sleep}


def _secrets(fake: FakeKis) -> list[str]:
    return [fake.app_key, fake.app_secret, fake.account, fake.cano, *fake.tokens]


def assert_clean(error: BaseException, fake: FakeKis) -> None:
    text = f"{error} {error!r}"
    for secret in _secrets(fake):
        assert secret not in text


def _intent(cid: str, side: str = "buy", amount: float = 3, **kw) -> OrderIntent:
    created = kw.pop("created", datetime.now(UTC) - timedelta(seconds=1))
    return OrderIntent(cid, kw.pop("symbol", SYMBOL), side, amount, created, **kw)


# ------------------------------------------------------------------ pure functions
def test_tr_ids_mock_everywhere_but_the_real_host():
    real = "https://openapi.koreainvestment.com:9443"
    for url in ("https://openapivts.koreainvestment.com:29443", "http://127.0.0.1:8080",
                "https://openapi.koreainvestment.com.example.org"):
        assert kis.tr_id("buy", url) == "VTTC0012U"
        assert kis.tr_id("sell", url) == "VTTC0011U"
        assert kis.tr_id("balance", url) == "VTTC8434R"
        assert kis.tr_id("daily_ccld", url) == "VTTC0081R"
    assert kis.tr_id("buy", real) == "TTTC0012U"
    assert kis.tr_id("sell", real) == "TTTC0011U"
    assert kis.tr_id("balance", real) == "TTTC8434R"
    assert kis.tr_id("daily_ccld", real) == "TTTC0081R"
    for name, tr in (("daily_chart", "FHKST03010100"), ("price", "FHKST01010100"),
                     ("asking_price", "FHKST01010200")):
        assert kis.tr_id(name, real) == kis.tr_id(name, "http://127.0.0.1:1") == tr


def test_krx_ticks():
    cases = [(1_999, 1), (2_000, 5), (4_999, 5), (5_000, 10), (19_990, 10), (20_000, 50), (49_950, 50),
             (50_000, 100), (199_900, 100), (200_000, 500), (499_500, 500), (500_000, 1_000), (1_500_000, 1_000)]
    for price, tick in cases:
        assert kis.krx_tick(price) == tick, price


def test_today_is_dropped_until_the_close():
    index = pd.DatetimeIndex([pd.Timestamp("2024-05-09", tz="UTC"), pd.Timestamp("2024-05-10", tz="UTC")],
                             name="time")
    frame = pd.DataFrame({"close": [1.0, 2.0]}, index=index)
    before = datetime(2024, 5, 10, 15, 29, tzinfo=kis.KST)
    after = datetime(2024, 5, 10, 15, 30, tzinfo=kis.KST)
    assert list(kis._closed_sessions(frame, before).index) == [index[0]]
    assert list(kis._closed_sessions(frame, after).index) == list(index)


def test_missing_and_malformed_environment(monkeypatch, fake, tmp_path):
    for name in ("SYSTRADE_KIS_APP_KEY", "SYSTRADE_KIS_APP_SECRET", "SYSTRADE_KIS_ACCOUNT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(UserError) as missing:
        kis.candle_source(_settings(fake), POLICY)
    assert "SYSTRADE_KIS_APP_KEY" in str(missing.value) and "SYSTRADE_KIS_ACCOUNT" in str(missing.value)
    monkeypatch.setenv("SYSTRADE_KIS_APP_KEY", fake.app_key)
    monkeypatch.setenv("SYSTRADE_KIS_APP_SECRET", fake.app_secret)
    monkeypatch.setenv("SYSTRADE_KIS_ACCOUNT", "5001234501x")
    with pytest.raises(UserError) as bad:
        kis.order_gateway(_settings(fake), POLICY, **_kw(fake, tmp_path))
    assert "50012345-01" in str(bad.value) and "5001234501x" not in str(bad.value)
    assert_clean(bad.value, fake)


# ------------------------------------------------------------------ candles
def _expected(frame: pd.DataFrame, start: str, end: str) -> pd.DataFrame:
    out = frame.copy()
    out.index = pd.DatetimeIndex(list(out.index), name="time")
    return out[(out.index >= pd.Timestamp(start, tz="UTC")) & (out.index < pd.Timestamp(end, tz="UTC"))]


def test_daily_candles_page_backwards_through_faults(env, tmp_path):
    fake = env
    fake.fail(CHART, "500", skip=1)  # page 2 fails three times, page 3 once: each retries alone
    fake.fail(CHART, "drop")
    fake.fail(CHART, "rate")
    fake.fail(CHART, "429", skip=1)
    source = kis.candle_source(_settings(fake), POLICY, **_kw(fake, tmp_path))
    pages: list[int] = []
    got = source.candles(SYMBOL, "1d", pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2025-01-01", tz="UTC"),
                         on_page=pages.append)
    pd.testing.assert_frame_equal(got, _expected(ADJUSTED, "2024-01-01", "2025-01-01"))
    assert str(got.index.tz) == "UTC" and got.index.name == "time" and got.index.is_unique
    assert (got.index == got.index.normalize()).all()
    assert pages[:3] == [100, 100, 50]
    served = [r for r in fake.requests if r.path == CHART and r.status == 200]
    assert len(served) >= 3
    assert [r.params["FID_INPUT_DATE_2"] for r in served[:3]] == [
        "20241231", (DATES[-100] - pd.Timedelta(days=1)).strftime("%Y%m%d"),
        (DATES[-200] - pd.Timedelta(days=1)).strftime("%Y%m%d")]
    assert all(r.params["FID_INPUT_DATE_1"] == "20240101" and r.params["FID_ORG_ADJ_PRC"] == "0" for r in served)
    assert sum(1 for r in fake.requests if r.path == CHART and r.fault) == 4


def test_raw_prices_when_asked_and_range_bounds(env, tmp_path):
    fake = env
    source = kis.candle_source(_settings(fake), POLICY, adjustment="raw", **_kw(fake, tmp_path))
    start, end = str(DATES[10].date()), str(DATES[130].date())
    got = source.candles(SYMBOL, "1d", pd.Timestamp(start, tz="UTC"), pd.Timestamp(end, tz="UTC"))
    pd.testing.assert_frame_equal(got, _expected(RAW, start, end))
    assert len(got) == 120 and got.index[-1] == DATES[129]
    assert {r.params["FID_ORG_ADJ_PRC"] for r in fake.requests if r.path == CHART} == {"1"}


def test_check_and_market(env, tmp_path):
    fake = env
    source = kis.candle_source(_settings(fake), POLICY, **_kw(fake, tmp_path))
    source.check(SYMBOL, "1d")
    with pytest.raises(UserError, match="daily history only"):
        source.check(SYMBOL, "1h")
    with pytest.raises(UserError, match="005930"):
        source.check("AAPL", "1d")
    with pytest.raises(UserError, match="kis has no stock"):
        source.check("123456", "1d")
    market = source.market(SYMBOL)
    assert market == {"exchange": "kis", "symbol": SYMBOL, "base": SYMBOL, "quote": "KRW", "lot": 1.0,
                      "tick": kis.krx_tick(RAW["close"].iloc[-1]), "min_amount": 1.0, "min_cost": None,
                      "taker_fee": 0.00015, "maker_fee": 0.00015}


# ------------------------------------------------------------------ token
def test_token_cached_on_disk_and_reused_by_a_new_client(env, tmp_path):
    fake = env
    kis.candle_source(_settings(fake), POLICY, **_kw(fake, tmp_path)).check(SYMBOL, "1d")
    kis.live_market(_settings(fake), POLICY, **_kw(fake, tmp_path)).last_price(SYMBOL)  # "another process"
    assert fake.token_issues == 1
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].name.startswith("kis-token-")
    assert stat.S_IMODE(os.stat(files[0]).st_mode) == 0o600
    text = files[0].read_text()
    assert fake.app_key not in text and fake.app_secret not in text and fake.cano not in text
    assert set(json.loads(text)) == {"access_token", "expires_at"}


def test_expired_token_is_refreshed_once(env, tmp_path):
    fake = env
    market = kis.live_market(_settings(fake), POLICY, **_kw(fake, tmp_path))
    market.last_price(SYMBOL)
    fake.expire_tokens()  # KIS now answers EGW00123 (HTTP 500)
    fake.advance(61)
    assert market.last_price(SYMBOL) == RAW["close"].iloc[-1]
    assert fake.token_issues == 2
    assert fake.count("/oauth2/tokenP") == 2


def test_one_issue_per_minute_is_waited_out(env, tmp_path):
    fake = env
    kis.live_market(_settings(fake), POLICY, **_kw(fake, tmp_path / "a")).last_price(SYMBOL)
    sleeps: list[float] = []
    other = kis.live_market(_settings(fake), POLICY, **_kw(fake, tmp_path / "b", sleeps))  # its own cache
    assert other.last_price(SYMBOL) > 0
    assert fake.token_refusals == 1 and fake.token_issues == 2
    assert sleeps == [60.0]


def test_bad_credentials_are_an_auth_error_without_secrets(env, tmp_path):
    fake = env
    fake.app_secret = "anotherSecretValue123"
    market = kis.live_market(_settings(fake), POLICY, **_kw(fake, tmp_path))
    with pytest.raises(BrokerAuthError) as caught:
        market.last_price(SYMBOL)
    assert "EGW00103" in str(caught.value)
    assert_clean(caught.value, fake)
    assert os.environ["SYSTRADE_KIS_APP_SECRET"] not in str(caught.value)


# ------------------------------------------------------------------ live market
def test_live_market_data(env, tmp_path):
    fake = env
    market = kis.live_market(_settings(fake), POLICY, **_kw(fake, tmp_path))
    price = fake.stocks["000660"].price
    assert market.last_price("000660") == price
    book = market.order_book("000660")
    assert book["asks"][0] == [price + 100, 100.0] and book["bids"][0] == [price, 90.0]
    assert len(book["asks"]) == len(book["bids"]) == 10
    rules = market.rules("000660")
    assert (rules.quote, rules.lot, rules.min_amount, rules.tick) == ("KRW", 1.0, 1.0, kis.krx_tick(price))
    assert market.amount_to_precision("000660", 3.99) == 3.0
    assert market.conversion_price("000660", "KRW") is None
    candles = market.closed_candles("000660", "1d", 5)
    expected = fake.stocks["000660"].raw.tail(5)
    assert list(candles.index) == list(expected.index)
    assert abs(market.server_time_ms() - datetime.now(UTC).timestamp() * 1000) < 5_000
    assert {r.tr_id for r in fake.requests if r.tr_id} <= {"FHKST01010100", "FHKST01010200", "FHKST03010100"}


# ------------------------------------------------------------------ orders
def test_submit_is_exactly_once_across_lost_answer_retry_and_resubmit(env, tmp_path):
    fake = env
    gateway = kis.order_gateway(_settings(fake), POLICY, **_kw(fake, tmp_path))
    fake.fail(ORDER, "500")  # not taken: the submit fails, the caller retries
    intent = _intent("c-1")
    with pytest.raises(BrokerRetryable) as caught:
        gateway.submit(intent)
    assert_clean(caught.value, fake)
    assert fake.orders == []
    fake.fail(ORDER, "lost")  # taken, answer lost: found by the lookup that follows
    order = gateway.submit(intent)
    assert len(fake.orders) == 1
    assert order.status == "submitted" and order.broker_order_id == fake.orders[0].odno
    again = gateway.submit(intent)  # the same intent after a crash
    assert again.broker_order_id == order.broker_order_id and len(fake.orders) == 1
    assert fake.count(ORDER) == 2  # the 500 and the lost one; never a third
    assert fake.orders[0].qty == 3 and fake.orders[0].side == "02"
    posts = [r for r in fake.requests if r.path == ORDER]
    assert all(r.tr_id == "VTTC0012U" and r.hashkey for r in posts)
    assert posts[-1].params["ORD_DVSN"] == "01" and posts[-1].params["ORD_UNPR"] == "0"
    assert posts[-1].params["ORD_QTY"] == "3"


def test_lookup_matches_after_lost_answer_and_skips_claimed(env, tmp_path):
    fake = env
    gateway = kis.order_gateway(_settings(fake), POLICY, **_kw(fake, tmp_path))
    first = _intent("c-1")
    fake.fail(ORDER, "lost")
    with pytest.raises(BrokerRetryable):  # the lost answer, but the lookup that follows is cut off too
        fake.fail(CCLD, "drop", count=4, skip=1)
        gateway.submit(first)
    assert len(fake.orders) == 1
    found = gateway.lookup(first)  # matched by symbol, side, quantity and time
    assert found is not None and found.broker_order_id == fake.orders[0].odno
    second = _intent("c-2", created=first.created, claimed=frozenset({found.broker_order_id}))
    assert gateway.lookup(second) is None
    placed = gateway.submit(second)
    assert len(fake.orders) == 2 and placed.broker_order_id == fake.orders[1].odno
    assert gateway.lookup(second).broker_order_id == placed.broker_order_id
    other_side = _intent("c-3", side="sell", created=first.created)
    assert gateway.lookup(other_side) is None
    later = _intent("c-4", created=datetime.now(UTC) + timedelta(minutes=5))
    assert gateway.lookup(later) is None


def test_lookup_by_order_number_pages_through_the_day(env, tmp_path):
    fake = env
    fake.auto_fill = True
    gateway = kis.order_gateway(_settings(fake), POLICY, **_kw(fake, tmp_path))
    created = datetime.now(UTC) - timedelta(seconds=1)
    placed = [gateway.submit(_intent(f"c-{n}", amount=n, created=created)) for n in range(1, 21)]
    assert len(fake.orders) == 20
    last = gateway.lookup(_intent("c-20", amount=20, created=created, broker_order_id=placed[-1].broker_order_id))
    assert last is not None and last.status == "filled" and last.filled == 20
    assert any(r.path == CCLD and r.tr_cont == "N" and r.params["CTX_AREA_NK100"] for r in fake.requests)
    assert {r.tr_id for r in fake.requests if r.path == CCLD} == {"VTTC0081R"}


def test_market_closed(env, tmp_path):
    fake = env
    fake.set_session(open=False)
    gateway = kis.order_gateway(_settings(fake), POLICY, **_kw(fake, tmp_path))
    with pytest.raises(BrokerMarketClosed) as caught:
        gateway.submit(_intent("c-1"))
    assert "40580000" in str(caught.value)
    assert_clean(caught.value, fake)
    assert fake.orders == [] and fake.count(ORDER) == 1


def test_partial_then_full_fill_position_and_cash(env, tmp_path):
    fake = env
    gateway = kis.order_gateway(_settings(fake), POLICY, **_kw(fake, tmp_path))
    intent = _intent("c-1")
    order = gateway.submit(intent)
    odno = order.broker_order_id
    fake.fill(odno, 1, 70_000)
    part = gateway.lookup(intent)
    assert (part.status, part.filled, part.average_price) == ("partially_filled", 1.0, 70_000.0)
    assert part.open and part.fee == pytest.approx(70_000 * 0.00015)
    fake.fill(odno, 2, 71_000)
    full = gateway.lookup(OrderIntent("c-1", SYMBOL, "buy", 3, intent.created, broker_order_id=odno))
    assert (full.status, full.filled) == ("filled", 3.0)
    assert full.average_price == pytest.approx(212_000 / 3)
    assert full.fee == pytest.approx(212_000 * 0.00015)
    assert gateway.position(SYMBOL) == 3.0 and gateway.position("000660") == 0.0
    assert gateway.cash() == pytest.approx(10_000_000 - 212_000)


def test_sell_fee_includes_the_tax(env, tmp_path):
    fake = env
    fake.holdings[SYMBOL] = 10
    fake.auto_fill = True
    gateway = kis.order_gateway(_settings(fake), POLICY, **_kw(fake, tmp_path))
    order = gateway.submit(_intent("s-1", side="sell", amount=5.7))  # whole shares only
    assert fake.orders[0].qty == 5 and fake.orders[0].side == "01"
    done = gateway.lookup(_intent("s-1", side="sell", amount=5, broker_order_id=order.broker_order_id))
    value = 5 * fake.stocks[SYMBOL].price
    assert done.status == "filled"
    assert done.fee == pytest.approx(value * (0.00015 + 0.0015))
    assert gateway.position(SYMBOL) == 5.0
    assert {r.tr_id for r in fake.requests if r.path == ORDER} == {"VTTC0011U"}


def test_rate_limit_answers_are_retried_and_no_secret_leaks(env, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    fake = env
    gateway = kis.order_gateway(_settings(fake), POLICY, **_kw(fake, tmp_path))
    fake.fail(TRADING + "inquire-balance", "rate", count=2)
    assert gateway.cash() == 10_000_000
    fake.fail(TRADING + "inquire-balance", "rate", count=4)
    with pytest.raises(BrokerRetryable) as caught:
        gateway.cash()
    assert "EGW00201" in str(caught.value)
    assert_clean(caught.value, fake)
    for rec in fake.requests:  # the fake's log holds no secrets either
        text = json.dumps(rec.params, ensure_ascii=False)
        for secret in _secrets(fake):
            assert secret not in text
    assert any("inquire-balance" in r.getMessage() for r in caplog.records)  # httpx logged the requests...
    for record in caplog.records:  # ...without the account number in the query, the key, secret or token
        for secret in _secrets(fake):
            assert secret not in record.getMessage()
