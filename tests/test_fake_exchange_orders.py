"""Signed trading endpoints of tests/fakes/binance.py, driven through the REAL ccxt.binance client.

Clients run in sandbox (testnet) mode with the fake's keys. The loopback guard
fixture of tests/test_fake_exchange.py is reused (autouse), and every client
refuses URLs that are not on the fake before sending them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import ccxt
import pytest

try:  # tests/ is not a package today; keep working if it becomes one
    from fakes import FakeBinance, FaultPlan
    from fakes.binance import ALL_FAULT_KINDS, FAULT_KINDS, REDACTED
    from test_fake_exchange import BTC, NOW_MS, RecordingBinance, loopback_only  # noqa: F401 (autouse guard)
except ImportError:  # pragma: no cover
    from tests.fakes import FakeBinance, FaultPlan
    from tests.fakes.binance import ALL_FAULT_KINDS, FAULT_KINDS, REDACTED
    from tests.test_fake_exchange import BTC, NOW_MS, RecordingBinance, loopback_only  # noqa: F401

SYMBOL = "BTC/USDT"
START_USDT = 10_000.0
FEE = 0.001

# What each trading error turns into inside ccxt 4.5.90 (exact class).
ORDER_ERRORS: dict[str, tuple[type[Exception], int, str]] = {
    "lot_size": (ccxt.InvalidOrder, -1013, "Filter failure: LOT_SIZE"),
    "price_filter": (ccxt.InvalidOrder, -1013, "Filter failure: PRICE_FILTER"),
    "notional": (ccxt.BadRequest, -1013, "Filter failure: NOTIONAL"),
    "insufficient_buy": (ccxt.InsufficientFunds, -2010, "Account has insufficient balance for requested action."),
    "insufficient_sell": (ccxt.InsufficientFunds, -2010, "Account has insufficient balance for requested action."),
}


class TradingClient(RecordingBinance):
    """RecordingBinance that also keeps (method, url, body) of every request, signatures included."""

    def __init__(self, config: dict[str, Any], allowed_prefix: str) -> None:
        super().__init__(config, allowed_prefix)
        self.wire: list[tuple[str, str, str]] = []

    def fetch(self, url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        self.wire.append((method, url, body or ""))
        return super().fetch(url, method, headers, body)

    def signatures(self) -> list[str]:
        found = []
        for _, url, body in self.wire:
            for raw in (urllib.parse.urlsplit(url).query, body):
                found += [v for k, v in urllib.parse.parse_qsl(raw) if k == "signature"]
        return found


def make_trader(fake: FakeBinance, *, sandbox: bool = True, **overrides: Any) -> TradingClient:
    config = {**fake.ccxt_config(credentials=True), "enableRateLimit": False, "timeout": 2000, **overrides}
    client = TradingClient(config, fake.url + "/")
    if sandbox:
        client.set_sandbox_mode(True)
    return client


@pytest.fixture
def fake() -> Iterator[FakeBinance]:
    with FakeBinance(clock_ms=NOW_MS) as f:
        f.add_market(SYMBOL, BTC)  # tick 0.01, step/minQty 1e-5, maxQty 9000, min notional 5
        f.set_balances({"USDT": START_USDT, "BTC": 0.0})
        yield f


@pytest.fixture
def ex(fake: FakeBinance) -> Iterator[TradingClient]:
    client = make_trader(fake)
    client.load_markets()
    fake.clear_requests()
    client.sent.clear()
    yield client
    client.close()
    assert all(url.startswith(fake.url + "/") for url in client.sent)
    assert len(client.sent) == fake.count()


def book_top(ex: TradingClient) -> tuple[float, float]:
    t = ex.fetch_ticker(SYMBOL)
    return t["bid"], t["ask"]


def signed_request(
    fake: FakeBinance,
    method: str,
    path: str,
    params: dict[str, Any],
    *,
    secret: str | None = None,
    api_key: str | None = None,
    sign: bool = True,
    in_body: bool = False,
) -> tuple[int, dict[str, Any]]:
    """Hand-built Binance request (query or form body), signed like the docs say."""
    query = urllib.parse.urlencode(params)
    if sign:
        key = (secret or fake.secret).encode()
        query += "&signature=" + hmac.new(key, query.encode(), hashlib.sha256).hexdigest()
    url = fake.url + path + ("" if in_body else "?" + query)
    req = urllib.request.Request(url, data=query.encode() if in_body else None, method=method)
    if api_key != "":
        req.add_header("X-MBX-APIKEY", api_key or fake.api_key)
    try:
        with urllib.request.urlopen(req, timeout=2) as resp:  # loopback only
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


# ------------------------------------------------------------ sandbox / config
def test_sandbox_mode_swaps_in_the_test_urls_which_point_at_the_fake(fake: FakeBinance) -> None:
    client = make_trader(fake)
    assert client.isSandboxModeEnabled
    # ccxt copied urls["test"] over urls["api"]; both that and the backup point at the fake.
    assert set(client.urls["api"]) == set(client.urls["test"])
    for section in ("api", "apiBackup", "test"):
        for key, url in client.urls[section].items():
            assert url.startswith(fake.url + "/"), (section, key, url)
    assert client.fetch_time() == NOW_MS
    assert [(r.method, r.path) for r in fake.requests] == [("GET", "/api/v3/time")]
    # The testnet set has no sapi URL: ccxt refuses such calls itself, nothing is sent.
    with pytest.raises(ccxt.NotSupported, match="testnet/sandbox URL for sapi"):
        client.sapiGetCapitalConfigGetall()
    assert fake.count() == 1
    client.close()


@pytest.mark.parametrize("sandbox", [True, False])
def test_load_markets_with_keys_makes_only_the_exchange_info_call(fake: FakeBinance, sandbox: bool) -> None:
    client = make_trader(fake, sandbox=sandbox)
    assert client.apiKey == fake.api_key and client.secret == fake.secret
    assert set(client.load_markets()) == {SYMBOL}
    assert [(r.method, r.path) for r in fake.requests] == [("GET", "/api/v3/exchangeInfo")]
    assert fake.private_requests() == []
    client.close()


def test_credentials_are_configurable(fake: FakeBinance) -> None:
    assert len(fake.api_key) == len(fake.secret) == 64
    assert "apiKey" not in fake.ccxt_config()
    fake.api_key, fake.secret = "myTestKey42", "my-test-secret"
    client = make_trader(fake)
    assert client.fetch_balance()["USDT"]["free"] == START_USDT  # the default account follows the keys
    fake.add_account("secondKey", "second-secret", {"USDT": 1.5})
    other = make_trader(fake, apiKey="secondKey", secret="second-secret")
    assert other.fetch_balance()["total"] == {"USDT": 1.5}
    assert fake.balances(api_key="secondKey") == {"USDT": {"free": 1.5, "locked": 0.0}}
    client.close()
    other.close()


# ------------------------------------------------------------ market orders
def test_market_buy_walks_the_book_and_charges_the_fee_in_base(fake: FakeBinance, ex: TradingClient) -> None:
    bid, ask = book_top(ex)
    fake.book_qty = 0.01  # three levels for 0.025 BTC

    order = ex.create_order(SYMBOL, "market", "buy", 0.025, params={"clientOrderId": "buy-0001"})

    prices = [ask, ask + 0.01, ask + 0.02]
    qtys = [0.01, 0.01, 0.005]
    cost = sum(p * q for p, q in zip(prices, qtys, strict=True))
    assert order["clientOrderId"] == "buy-0001" and order["id"] == str(order["info"]["orderId"])
    assert (order["status"], order["side"], order["type"]) == ("closed", "buy", "market")
    assert order["amount"] == order["filled"] == 0.025 and order["remaining"] == 0
    assert order["cost"] == pytest.approx(cost, rel=1e-12)
    assert order["average"] == pytest.approx(cost / 0.025, rel=1e-12)
    assert order["fee"] == {"currency": "BTC", "cost": pytest.approx(0.025 * FEE, rel=1e-9)}
    assert [t["price"] for t in order["trades"]] == pytest.approx(prices)
    assert [t["amount"] for t in order["trades"]] == pytest.approx(qtys)
    info = order["info"]
    assert info["status"] == "FILLED" and info["executedQty"] == "0.02500000"
    assert info["transactTime"] == NOW_MS
    assert [f["commissionAsset"] for f in info["fills"]] == ["BTC"] * 3
    assert [f["commission"] for f in info["fills"]] == ["0.00001000", "0.00001000", "0.00000500"]

    sent = fake.requests[-1]
    assert (sent.method, sent.path) == ("POST", "/api/v3/order")
    assert {k: sent.params[k] for k in ("symbol", "side", "type", "quantity", "newClientOrderId")} == {
        "symbol": "BTCUSDT",
        "side": "BUY",
        "type": "MARKET",
        "quantity": "0.025",
        "newClientOrderId": "buy-0001",
    }
    assert sent.params["newOrderRespType"] == "FULL" and "timestamp" in sent.params

    balance = ex.fetch_balance()
    assert balance["BTC"]["free"] == pytest.approx(0.025 * (1 - FEE), rel=1e-12)
    assert balance["USDT"]["free"] == pytest.approx(START_USDT - cost, rel=1e-12)
    assert balance["USDT"]["used"] == 0


def test_market_sell_charges_the_fee_in_quote_and_balances_add_up(fake: FakeBinance, ex: TradingClient) -> None:
    bid, ask = book_top(ex)
    buy = ex.create_order(SYMBOL, "market", "buy", 0.02)
    sell = ex.create_order(SYMBOL, "market", "sell", 0.015)

    assert (sell["status"], sell["filled"], sell["average"]) == ("closed", 0.015, bid)
    assert sell["fee"]["currency"] == "USDT"
    assert sell["fee"]["cost"] == pytest.approx(0.015 * bid * FEE, abs=1e-8)
    assert buy["clientOrderId"].startswith("x-TKT5PX2F")  # ccxt's generated id (broker prefix) is accepted

    balance = ex.fetch_balance()
    assert balance["BTC"]["total"] == pytest.approx(0.02 * (1 - FEE) - 0.015, abs=1e-12)
    usdt = START_USDT - 0.02 * ask + 0.015 * bid * (1 - FEE)
    assert balance["USDT"]["total"] == pytest.approx(usdt, abs=1e-8)
    assert fake.balances() == {
        "USDT": {"free": pytest.approx(usdt, abs=1e-8), "locked": 0.0},
        "BTC": {"free": pytest.approx(0.02 * (1 - FEE) - 0.015, abs=1e-12), "locked": 0.0},
    }

    trades = ex.fetch_my_trades(SYMBOL)
    assert [(t["side"], t["amount"], t["fee"]["currency"]) for t in trades] == [
        ("buy", 0.02, "BTC"),
        ("sell", 0.015, "USDT"),
    ]
    assert [t["order"] for t in trades] == [buy["id"], sell["id"]]
    assert [o["status"] for o in fake.orders()] == ["FILLED", "FILLED"]


def test_market_buy_by_cost_uses_quote_order_qty(fake: FakeBinance, ex: TradingClient) -> None:
    bid, ask = book_top(ex)
    order = ex.create_market_buy_order_with_cost(SYMBOL, 100)
    assert fake.requests[-1].params["quoteOrderQty"] == "100"
    assert "quantity" not in fake.requests[-1].params
    expected_qty = int(100 / ask / 1e-5) * 1e-5  # floored to the step size
    assert order["filled"] == pytest.approx(expected_qty, abs=1e-12)
    assert order["cost"] <= 100 and order["average"] == ask
    assert float(order["info"]["origQuoteOrderQty"]) == 100


def test_test_order_endpoint_validates_without_trading(fake: FakeBinance, ex: TradingClient) -> None:
    ex.create_order(SYMBOL, "market", "buy", 0.01, params={"test": True})
    assert fake.requests[-1].path == "/api/v3/order/test" and fake.requests[-1].status == 200
    with pytest.raises(ccxt.BadRequest, match="NOTIONAL"):
        ex.create_order(SYMBOL, "market", "buy", 0.0001, params={"test": True})
    assert fake.orders() == [] and fake.balances()["USDT"]["free"] == START_USDT


# ----------------------------------------------------------- look-up / cancel
def test_fetch_order_by_client_order_id(fake: FakeBinance, ex: TradingClient) -> None:
    placed = ex.create_order(SYMBOL, "market", "buy", 0.01, params={"clientOrderId": "lookup-1"})

    ways = {
        "clientOrderId param": lambda: ex.fetch_order(None, SYMBOL, params={"clientOrderId": "lookup-1"}),
        "origClientOrderId param": lambda: ex.fetch_order(None, SYMBOL, params={"origClientOrderId": "lookup-1"}),
        "fetch_order_with_client_order_id": lambda: ex.fetch_order_with_client_order_id("lookup-1", SYMBOL),
    }
    for name, fetch in ways.items():
        got = fetch()
        assert (got["id"], got["clientOrderId"], got["status"], got["filled"]) == (
            placed["id"],
            "lookup-1",
            "closed",
            0.01,
        ), name
        sent = fake.requests[-1]
        assert (sent.method, sent.path, sent.params["origClientOrderId"]) == ("GET", "/api/v3/order", "lookup-1")
        assert "orderId" not in sent.params and "clientOrderId" not in sent.params
    by_id = ex.fetch_order(placed["id"], SYMBOL)
    assert by_id["clientOrderId"] == "lookup-1" and fake.requests[-1].params["orderId"] == placed["id"]

    with pytest.raises(ccxt.OrderNotFound, match="-2013"):
        ex.fetch_order(None, SYMBOL, params={"clientOrderId": "never-sent"})
    with pytest.raises(ccxt.OrderNotFound, match="-2013"):
        ex.fetch_order("424242", SYMBOL)


def test_cancel_of_a_filled_market_order_is_unknown_order(fake: FakeBinance, ex: TradingClient) -> None:
    placed = ex.create_order(SYMBOL, "market", "buy", 0.01, params={"clientOrderId": "cancel-me"})
    with pytest.raises(ccxt.OrderNotFound) as err:
        ex.cancel_order(placed["id"], SYMBOL)
    assert type(err.value) is ccxt.OrderNotFound and '"code":-2011' in str(err.value)
    assert "Unknown order sent." in str(err.value)
    with pytest.raises(ccxt.OrderNotFound, match="-2011"):
        ex.cancel_order_with_client_order_id("cancel-me", SYMBOL)
    assert fake.requests[-1].method == "DELETE" and fake.requests[-1].status == 400
    assert ex.fetch_order(placed["id"], SYMBOL)["status"] == "closed"


def test_limit_order_rests_locks_funds_and_cancels(fake: FakeBinance, ex: TradingClient) -> None:
    bid, ask = book_top(ex)
    price = round(bid - 1000, 2)
    order = ex.create_order(SYMBOL, "limit", "buy", 0.1, price, params={"clientOrderId": "rest-1"})
    assert (order["status"], order["filled"], order["price"]) == ("open", 0, price)
    assert [o["clientOrderId"] for o in ex.fetch_open_orders(SYMBOL)] == ["rest-1"]
    balance = ex.fetch_balance()
    assert balance["USDT"]["used"] == pytest.approx(0.1 * price)
    assert balance["USDT"]["free"] == pytest.approx(START_USDT - 0.1 * price)

    canceled = ex.cancel_order(order["id"], SYMBOL)
    assert canceled["status"] == "canceled" and canceled["info"]["origClientOrderId"] == "rest-1"
    assert ex.fetch_open_orders(SYMBOL) == []
    assert fake.balances()["USDT"] == {"free": START_USDT, "locked": 0.0}
    with pytest.raises(ccxt.OrderNotFound, match="-2011"):  # twice: not open any more
        ex.cancel_order(order["id"], SYMBOL)

    # A crossing limit buy takes what is at or below its price and fills at the book, not the limit.
    taker = ex.create_order(SYMBOL, "limit", "buy", 0.01, round(ask + 5, 2))
    assert (taker["status"], taker["average"]) == ("closed", ask)
    with pytest.raises(ccxt.OrderImmediatelyFillable):  # LIMIT_MAKER that would take
        ex.create_order(SYMBOL, "limit", "buy", 0.01, round(ask + 5, 2), params={"postOnly": True})


# ------------------------------------------------------- duplicate client ids
def test_duplicate_client_order_id_of_an_open_order_is_rejected(fake: FakeBinance, ex: TradingClient) -> None:
    bid, _ = book_top(ex)
    ex.create_order(SYMBOL, "limit", "buy", 0.01, round(bid - 500, 2), params={"clientOrderId": "dup-open"})

    with pytest.raises(ccxt.InvalidOrder) as err:
        ex.create_order(SYMBOL, "market", "buy", 0.01, params={"clientOrderId": "dup-open"})

    assert type(err.value) is ccxt.InvalidOrder  # -2010 maps to InvalidOrder, not DuplicateOrderId
    assert not isinstance(err.value, ccxt.DuplicateOrderId)
    assert '{"code":-2010,"msg":"Duplicate order sent."}' in str(err.value)
    assert len(fake.orders()) == 1 and fake.balances()["BTC"]["free"] == 0


def test_client_order_id_of_a_filled_order_can_be_reused_like_on_binance(fake: FakeBinance, ex: TradingClient) -> None:
    """Binance: "a unique id among open orders" -- a filled market order does not block a retry."""
    first = ex.create_order(SYMBOL, "market", "buy", 0.01, params={"clientOrderId": "dup-filled"})
    again = ex.create_order(SYMBOL, "market", "buy", 0.01, params={"clientOrderId": "dup-filled"})

    assert first["id"] != again["id"]
    assert [o["clientOrderId"] for o in fake.orders()] == ["dup-filled", "dup-filled"]
    assert ex.fetch_balance()["BTC"]["total"] == pytest.approx(0.02 * (1 - FEE))  # traded twice
    assert ex.fetch_order(None, SYMBOL, params={"clientOrderId": "dup-filled"})["id"] == again["id"]  # newest


def test_strict_mode_rejects_any_reused_client_order_id(fake: FakeBinance, ex: TradingClient) -> None:
    fake.duplicate_client_order_id = "any"
    ex.create_order(SYMBOL, "market", "buy", 0.01, params={"clientOrderId": "dup-strict"})
    with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent") as err:
        ex.create_order(SYMBOL, "market", "buy", 0.01, params={"clientOrderId": "dup-strict"})
    assert type(err.value) is ccxt.InvalidOrder
    assert len(fake.orders()) == 1
    assert ex.fetch_balance()["BTC"]["total"] == pytest.approx(0.01 * (1 - FEE))


# ------------------------------------------------------------- order errors
@pytest.mark.parametrize("case", sorted(ORDER_ERRORS))
def test_order_errors_map_to_ccxt_exceptions(fake: FakeBinance, ex: TradingClient, case: str) -> None:
    bid, ask = book_top(ex)
    attempts = {
        "lot_size": lambda: ex.create_order(SYMBOL, "market", "buy", 9001),  # above maxQty
        "price_filter": lambda: ex.privatePostOrder(  # price off the 0.01 tick grid
            {
                "symbol": "BTCUSDT",
                "side": "BUY",
                "type": "LIMIT",
                "timeInForce": "GTC",
                "quantity": "0.01",
                "price": f"{bid - 100:.2f}5",
            }
        ),
        "notional": lambda: ex.create_order(SYMBOL, "market", "buy", 0.0001),  # ~3 USDT < 5
        "insufficient_buy": lambda: ex.create_order(SYMBOL, "market", "buy", 1),  # ~29k USDT > 10k
        "insufficient_sell": lambda: ex.create_order(SYMBOL, "market", "sell", 0.01),  # holds no BTC
    }
    cls, code, msg = ORDER_ERRORS[case]

    with pytest.raises(ccxt.ExchangeError) as err:
        attempts[case]()

    assert type(err.value) is cls, (case, type(err.value))
    assert msg in str(err.value)
    rec = fake.requests[-1]
    assert (rec.method, rec.path, rec.status) == ("POST", "/api/v3/order", 400)
    assert fake.orders() == [] and fake.balances()["USDT"]["free"] == START_USDT
    # Same class as against the real spot/testnet hosts (whose URL selects ccxt's "spot" table).
    body = json.dumps({"code": code, "msg": msg}, separators=(",", ":"))
    for url in ("https://api.binance.com/api/v3/order", "https://testnet.binance.vision/api/v3/order"):
        with pytest.raises(ccxt.ExchangeError) as real:
            ex.handle_errors(400, "Bad Request", url, "POST", {}, body, json.loads(body), {}, "")
        assert type(real.value) is cls


def test_step_size_violation_is_lot_size(fake: FakeBinance, ex: TradingClient) -> None:
    # ccxt truncates amounts to the step itself; a raw request shows the server-side check.
    with pytest.raises(ccxt.InvalidOrder, match="LOT_SIZE"):
        ex.privatePostOrder({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.000015"})
    with pytest.raises(ccxt.BadRequest, match="-1100"):
        ex.privatePostOrder({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "1e-3"})
    with pytest.raises(ccxt.BadRequest, match="-1100"):  # client order id longer than 36 characters
        ex.create_order(SYMBOL, "market", "buy", 0.01, params={"clientOrderId": "x" * 37})
    assert fake.orders() == []


# ------------------------------------------------------------ authentication
def test_bad_secret_is_authentication_error(fake: FakeBinance) -> None:
    client = make_trader(fake, secret="not-the-secret")
    with pytest.raises(ccxt.AuthenticationError, match="-1022") as err:
        client.create_order(SYMBOL, "market", "buy", 0.01)
    assert type(err.value) is ccxt.AuthenticationError
    assert "Signature for this request is not valid." in str(err.value)
    assert fake.requests[-1].status == 400 and fake.orders() == []
    client.close()


def test_unknown_api_key_is_authentication_error_until_a_private_call_succeeded(fake: FakeBinance) -> None:
    client = make_trader(fake, apiKey="someoneElsesKey")
    with pytest.raises(ccxt.AuthenticationError, match="-2015") as err:
        client.fetch_balance()
    assert type(err.value) is ccxt.AuthenticationError and fake.requests[-1].status == 401
    client.apiKey = "not a key!"
    with pytest.raises(ccxt.AuthenticationError, match="-2014"):
        client.fetch_balance()

    # ccxt's workaround: after any successful private call, -2015 is read as a temporary ban.
    good = make_trader(fake)
    good.fetch_balance()
    good.apiKey = "someoneElsesKey"
    with pytest.raises(ccxt.DDoSProtection, match="-2015"):
        good.fetch_balance()
    client.close()
    good.close()


def test_wire_level_auth_checks(fake: FakeBinance) -> None:
    ts = int(time.time() * 1000)
    order = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01", "timestamp": ts}

    status, body = signed_request(fake, "GET", "/api/v3/account", {"timestamp": ts}, api_key="")
    assert (status, body["code"], body["msg"]) == (401, -2014, "API-key format invalid.")
    status, body = signed_request(fake, "GET", "/api/v3/account", {"recvWindow": 5000})
    assert (status, body["code"]) == (400, -1102) and "'timestamp'" in body["msg"]
    status, body = signed_request(fake, "GET", "/api/v3/account", {"timestamp": ts}, sign=False)
    assert (status, body["code"]) == (400, -1102) and "'signature'" in body["msg"]
    status, body = signed_request(fake, "GET", "/api/v3/account", {"timestamp": ts}, secret="wrong")
    assert (status, body["code"]) == (400, -1022)
    assert fake.orders() == []

    # Signed form body (what ccxt sends for POST) and signed query string both work.
    status, body = signed_request(fake, "POST", "/api/v3/order", order, in_body=True)
    assert status == 200 and body["status"] == "FILLED" and len(body["fills"]) == 1
    status, body = signed_request(fake, "POST", "/api/v3/order", {**order, "newOrderRespType": "ACK"})
    assert status == 200 and set(body) == {"symbol", "orderId", "orderListId", "clientOrderId", "transactTime"}
    status, body = signed_request(fake, "GET", "/api/v3/account", {"timestamp": ts})
    assert status == 200 and body["canTrade"] and body["accountType"] == "SPOT"
    assert {b["asset"] for b in body["balances"]} == {"USDT", "BTC"}
    assert body["commissionRates"]["taker"] == "0.00100000"


def test_recv_window_is_enforced_only_when_asked(fake: FakeBinance, ex: TradingClient) -> None:
    assert ex.fetch_balance()["USDT"]["free"] == START_USDT  # fake clock is in 2024, ccxt signs with now
    fake.check_recv_window = True
    with pytest.raises(ccxt.InvalidNonce, match="1000ms ahead of the server's time"):  # client is in the future
        ex.fetch_balance()
    fake.now_ms = int(time.time() * 1000) + 60_000  # server a minute ahead: request older than recvWindow
    with pytest.raises(ccxt.InvalidNonce, match="outside of the recvWindow"):
        ex.fetch_balance()
    fake.now_ms = None  # wall clock
    assert ex.fetch_balance()["USDT"]["free"] == START_USDT
    assert fake.requests[-1].params["recvWindow"] == "10000"  # ccxt's default


# -------------------------------------------------------------------- faults
def test_lost_response_order_is_placed_and_found_by_client_order_id(fake: FakeBinance, ex: TradingClient) -> None:
    fake.faults = FaultPlan(kinds=("lostresponse",), paths=("/api/v3/order",), max_faults=1)

    with pytest.raises(ccxt.NetworkError) as err:
        ex.create_order(SYMBOL, "market", "buy", 0.01, params={"clientOrderId": "lost-0001"})

    assert type(err.value) is ccxt.NetworkError
    rec = fake.requests[-1]
    assert (rec.method, rec.path, rec.fault, rec.status) == ("POST", "/api/v3/order", "lostresponse", None)
    assert [(o["clientOrderId"], o["status"]) for o in fake.orders()] == [("lost-0001", "FILLED")]
    found = ex.fetch_order(None, SYMBOL, params={"clientOrderId": "lost-0001"})  # max_faults: lookups get through
    assert (found["status"], found["filled"], found["clientOrderId"]) == ("closed", 0.01, "lost-0001")
    assert ex.fetch_balance()["BTC"]["total"] == pytest.approx(0.01 * (1 - FEE))


@pytest.mark.parametrize(
    ("kind", "cls"), [("429", ccxt.DDoSProtection), ("500html", ccxt.ExchangeNotAvailable), ("drop", ccxt.NetworkError)]
)
def test_faults_answered_before_processing_place_no_order(
    fake: FakeBinance, ex: TradingClient, kind: str, cls: type[Exception]
) -> None:
    fake.faults = FaultPlan(kinds=(kind,), paths=("/api/v3/order",))
    with pytest.raises(ccxt.NetworkError) as err:
        ex.create_order(SYMBOL, "market", "buy", 0.01, params={"clientOrderId": f"fault-{kind}"})
    assert type(err.value) is cls
    with pytest.raises(cls):  # the look-up path is faulted too
        ex.fetch_order(None, SYMBOL, params={"clientOrderId": f"fault-{kind}"})
    fake.faults = None
    assert fake.orders() == []
    with pytest.raises(ccxt.OrderNotFound):
        ex.fetch_order(None, SYMBOL, params={"clientOrderId": f"fault-{kind}"})


def test_lostresponse_is_opt_in() -> None:
    assert FaultPlan().kinds == FAULT_KINDS and "lostresponse" not in FAULT_KINDS
    assert ALL_FAULT_KINDS == (*FAULT_KINDS, "lostresponse")
    FaultPlan(kinds=("lostresponse",))
    with pytest.raises(ValueError, match="subset"):
        FaultPlan(kinds=("timeout",))


# --------------------------------------------------------------- request log
def test_private_requests_are_logged_without_signatures(fake: FakeBinance, ex: TradingClient) -> None:
    ex.fetch_ticker(SYMBOL)
    placed = ex.create_order(SYMBOL, "market", "buy", 0.01, params={"clientOrderId": "log-1"})
    ex.fetch_order(placed["id"], SYMBOL)
    with pytest.raises(ccxt.OrderNotFound):
        ex.cancel_order(placed["id"], SYMBOL)
    ex.fetch_open_orders(SYMBOL)
    ex.fetch_my_trades(SYMBOL)
    ex.fetch_balance()
    ex.fetch_time()

    private = fake.private_requests()
    assert [(r.method, r.path) for r in private] == [
        ("POST", "/api/v3/order"),
        ("GET", "/api/v3/order"),
        ("DELETE", "/api/v3/order"),
        ("GET", "/api/v3/openOrders"),
        ("GET", "/api/v3/myTrades"),
        ("GET", "/api/v3/account"),
    ]
    assert [r.status for r in private] == [200, 200, 400, 200, 200, 200]
    assert all(r.params["signature"] == REDACTED and "timestamp" in r.params for r in private)
    assert private[0].params["newClientOrderId"] == "log-1"
    assert len(fake.requests) == len(private) + 2  # ticker and time are public

    signatures = ex.signatures()
    assert len(signatures) == len(private) and all(len(s) == 64 for s in signatures)
    log_text = repr(fake.requests)
    assert not any(s in log_text for s in signatures)
    assert fake.secret not in log_text


def test_any_sapi_path_counts_as_private(fake: FakeBinance) -> None:
    client = make_trader(fake, sandbox=False)  # the testnet URL set has no sapi
    with pytest.raises(ccxt.ExchangeNotAvailable):  # ccxt maps the plain-text 404 so (a NetworkError)
        client.sapiGetCapitalConfigGetall()
    rec = fake.requests[-1]
    assert (rec.path, rec.status, rec.params["signature"]) == ("/sapi/v1/capital/config/getall", 404, REDACTED)
    assert fake.private_requests() == [rec]
    client.close()
