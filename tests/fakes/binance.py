"""A local fake of the Binance spot REST API for tests.

Why: the downloader and everything above it must be tested against the real
``ccxt.binance`` client (its URL building, parsing and error mapping are part
of what we rely on) without ever touching the network, with a clock we
control and with faults we can inject on demand.

``FakeBinance`` runs a ``ThreadingHTTPServer`` on 127.0.0.1 (random free
port) serving ``/api/v3/exchangeInfo``, ``/klines``, ``/ticker/24hr``,
``/depth`` and ``/time``. Point ccxt at it with::

    with FakeBinance(clock_ms=now) as fake:
        fake.add_market("BTC/USDT", candles_1m)
        ex = ccxt.binance({**fake.ccxt_config(), "enableRateLimit": False, "timeout": 2000})

``ccxt_config()`` rewrites *every* URL ccxt.binance knows (spot, sapi, fapi,
dapi, eapi, papi, and the testnet/demo sets) onto the fake, keeping the path,
so a call to an endpoint we do not serve shows up as a logged 404 (plain
text; ccxt raises ``ExchangeNotAvailable`` for it) instead of leaking to
binance.com. It also sets the options that keep ``load_markets``
to one ``GET /api/v3/exchangeInfo``:

* ``fetchMarkets: {"types": ["spot"]}`` (default also loads linear/inverse
  via fapi/dapi),
* ``fetchMargins: False`` (would call sapi margin pairs when keys are set),
* ``fetchCurrencies: False`` (would call sapi capital/config when keys are set).

Fault kinds (``FaultPlan.kinds``) and the ccxt exception each one produces
with ccxt 4.5.90 (asserted in tests/test_fake_exchange.py)::

    "429"      HTTP 429, Binance JSON body (-1003), Retry-After  -> ccxt.DDoSProtection
    "418"      HTTP 418, Binance IP-ban JSON body, Retry-After   -> ccxt.DDoSProtection
    "500html"  HTTP 502 or 503 with an HTML body                 -> ccxt.ExchangeNotAvailable
    "badjson"  HTTP 200, JSON body truncated halfway             -> NO ccxt error (see below)
    "drop"     socket closed without any response                -> ccxt.NetworkError (exactly)
    "slow"     answer delayed by ``slow_seconds``                -> ccxt.RequestTimeout

(``"lostresponse"``, for trading endpoints, is described below.)

Notes for a retry policy: ``DDoSProtection``, ``ExchangeNotAvailable`` and
``RequestTimeout`` are all subclasses of ``NetworkError``; ``RateLimitExceeded``
is *not* raised for 429/418 because binance's ``handle_errors`` raises
``DDoSProtection`` for both before looking at the body (and in this ccxt
version RateLimitExceeded is a sibling of DDoSProtection, not a subclass).
Malformed JSON is swallowed: ccxt's ``parse_json`` returns None and ``fetch``
hands the raw text to the parser, which walks the *string*. Observed results:
``fetch_ohlcv`` without ``since`` gives ``limit`` junk rows like
``[9, None, None, None, None, None]``; WITH ``since`` it gives ``[]``, which
looks exactly like "no more data"; ``fetch_ticker`` gives all-None fields,
``fetch_order_book`` empty sides with nonce None, ``fetch_time`` None and
``load_markets`` ``{}``. A downloader must validate what it gets back (e.g.
treat ``[]`` before ``now`` as suspicious, reject rows containing None).

Unknown symbols: ``fetch_ohlcv("NOPE/USDT")`` raises ``ccxt.BadSymbol`` inside
ccxt before any request; a raw request with an unknown Binance id gets HTTP
400 ``{"code": -1121}`` which ccxt also maps to ``BadSymbol`` (a subclass of
``BadRequest``). An interval we cannot serve gets 400 ``{"code": -1120}``,
which ccxt maps to ``BadRequest``.

Trading (signed endpoints)
--------------------------
``POST/GET/DELETE /api/v3/order``, ``POST /api/v3/order/test``,
``GET /api/v3/openOrders``, ``/allOrders``, ``/myTrades`` and ``/account`` are
served for one default account (``fake.api_key`` / ``fake.secret``, fixed test
values unless given to the constructor or reassigned; ``add_account`` adds
more). Requests are authenticated like Binance: ``X-MBX-APIKEY`` header, then
``timestamp``, then an HMAC-SHA256 hex ``signature`` of the query string
concatenated with the body (without the signature itself). ccxt.binance with
``apiKey``/``secret`` from ``fake.ccxt_config(credentials=True)`` works as is,
also after ``set_sandbox_mode(True)`` (the ``test`` URL set points here too)::

    fake.set_balances({"USDT": 10_000.0, "BTC": 0.0})
    ex = ccxt.binance({**fake.ccxt_config(credentials=True), "enableRateLimit": False})
    ex.set_sandbox_mode(True)
    ex.create_order("BTC/USDT", "market", "buy", 0.01, params={"clientOrderId": "run1-0001"})
    ex.fetch_order(None, "BTC/USDT", params={"clientOrderId": "run1-0001"})  # or fetch_order_with_client_order_id

Matching: MARKET orders (``quantity`` or ``quoteOrderQty``) walk the same
synthetic book ``/depth`` shows (best bid/ask ``spread_bps`` around the last
close, a level every ``book_spacing_ticks`` ticks holding ``book_qty`` rounded
down to the step size); every order sees the full book again (no depletion).
LIMIT (GTC/IOC/FOK) and LIMIT_MAKER orders take what crosses and rest the
rest; resting orders lock funds and NEVER fill later (cancel them). Taker
commission ``fake.taker_fee`` (default 0.001) is charged in the asset
received, one fill per book level. With ``fake.fee_asset = "BNB"`` it is
charged in BNB instead whenever the account holds enough BNB (as Binance does
for accounts paying fees in BNB, without the discount): the fee's value in
the quote currency divided by BNB's price (``fake.fee_asset_prices["BNB"]``
if given, else the last price of the BNB/<quote> market).
``fake.omit_fill_prices = True`` answers orders (placing and looking up)
without ``cummulativeQuoteQty``, ``fills`` and with price 0, like an exchange
that has not reported the execution price yet (ccxt then gives ``average``,
``price`` and ``cost`` None); trades (``myTrades``) keep their prices. Filters: LOT_SIZE (minQty, maxQty,
stepSize), PRICE_FILTER and NOTIONAL (for MARKET orders the notional uses the
last price instead of Binance's 5-minute average price); PERCENT_PRICE_BY_SIDE
is not enforced. Stop/take-profit/OCO orders are not served.

Errors and the ccxt 4.5.90 exception each one produces (asserted in
tests/test_fake_exchange_orders.py). Binance's top-level code table applies:
the fake's http://127.0.0.1 URL selects no market-type table in
``get_exceptions_by_url``, and for these codes the spot table is empty anyway::

    400 -1013 "Filter failure: LOT_SIZE" / "...: PRICE_FILTER"  -> ccxt.InvalidOrder (body text match)
    400 -1013 "Filter failure: NOTIONAL"                       -> ccxt.BadRequest (NOT InvalidOrder)
    400 -2010 "Account has insufficient balance for requested action." -> ccxt.InsufficientFunds
    400 -2010 "Duplicate order sent."                          -> ccxt.InvalidOrder (not DuplicateOrderId)
    400 -2010 "Order would immediately match and take."        -> ccxt.OrderImmediatelyFillable
    400 -2013 "Order does not exist."          (GET order)     -> ccxt.OrderNotFound
    400 -2011 "Unknown order sent."            (DELETE order)  -> ccxt.OrderNotFound (a filled order too)
    400 -1022 "Signature for this request is not valid."       -> ccxt.AuthenticationError
    401 -2014 "API-key format invalid."        (no/bad header) -> ccxt.AuthenticationError
    401 -2015 "Invalid API-key, IP, or permissions for action." -> ccxt.AuthenticationError, but
              ccxt.DDoSProtection (a NetworkError!) once that client had any private call succeed
    400 -1102 missing ``timestamp``/``signature``/``symbol``... -> ccxt.BadRequest
    400 -1021 timestamp outside ``recvWindow`` / 1 s ahead      -> ccxt.InvalidNonce (a NetworkError)

The ``timestamp``/``recvWindow`` check (Binance's rule: ``timestamp <
server time + 1000`` and ``server time - timestamp <= recvWindow``, default
5000) runs against the fake's clock only when ``fake.check_recv_window`` is
True (default False): ccxt signs with its local wall time, and the fake's
clock is usually frozen somewhere else.

Client order ids (``newClientOrderId``, ``^[a-zA-Z0-9-_]{1,36}$``, generated
if absent). Binance documents the id as "a unique id among open orders" and
"orders with the same newClientOrderID can be accepted only when the previous
one is filled". The fake follows that by default
(``fake.duplicate_client_order_id = "open"``): a new order reusing the id of a
NEW/PARTIALLY_FILLED order gets -2010 "Duplicate order sent.", but reusing
the id of a FILLED order is ACCEPTED and trades again (so is reuse after a
cancel/expiry, where Binance's two sentences disagree).
A MARKET order is filled at once, so on Binance a client order id does NOT by
itself stop a retried market order from executing twice: look the order up
first. ``duplicate_client_order_id = "any"`` rejects reuse of any id this
account has ever used (stricter than Binance). Lookups by
``origClientOrderId`` return the newest order with that id.

Signed requests appear in the request log like any other, with the
``signature`` value replaced by ``"<redacted>"`` (the secret is never sent, so
never logged); ``fake.private_requests()`` lists the requests to signed
paths (order, openOrders, allOrders, myTrades, account, ... and any /sapi).

Faults on trading paths: a fault answered before the request is processed
("429", "418", "500html", "drop") means the order was NOT placed (on real
Binance a 5xx means "status unknown"; use "lostresponse" for that case).
"slow" processes the request after the delay, even if the client has given
up; "badjson" processes it and truncates the answer. One more kind, opt-in
(not in the default ``FaultPlan.kinds``, so seeded default plans keep their
sequences)::

    "lostresponse"  the request IS processed (an order is placed and filled),
                    then the connection is dropped without an answer
                                                               -> ccxt.NetworkError (exactly)

That is the classic ambiguous case: before retrying, the client must look
the order up by its client order id (``fetch_order`` with
``params={"clientOrderId": ...}``); the retry with the same id would be
accepted and trade again, see above.

Holding a request (a deterministic moment to kill a client)
-----------------------------------------------------------
``hold = fake.hold("POST", "/api/v3/order", process=True)`` keeps the next
matching request (after ``skip`` others, default 0) waiting (recorded with fault ``"hold"``) until
``hold.release()``. ``hold.wait_held()`` returns once a client is blocked on
it, so a test can SIGKILL the client at exactly that step of its protocol.
On release the request is processed as if it had just arrived
(``process=True``: an order IS placed, whether or not the client is still
there to read the answer) or dropped unprocessed (``process=False``);
``hold.wait_done()`` returns when that has happened.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import math
import random
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pandas as pd

from .http import LocalFake, QuietServer, TrackedHandler

FAULT_KINDS: tuple[str, ...] = ("429", "418", "500html", "badjson", "drop", "slow")  # FaultPlan's default
# Kinds a FaultPlan accepts; "lostresponse" is opt-in so default plans keep their seeded sequences.
ALL_FAULT_KINDS: tuple[str, ...] = (*FAULT_KINDS, "lostresponse")

# Fixed credentials of the default account (64 alphanumerics, like real keys).
DEFAULT_API_KEY = "fakeBinanceTestApiKey".ljust(64, "0")
DEFAULT_SECRET = "fakeBinanceTestSecret".ljust(64, "0")
REDACTED = "<redacted>"
# Path prefixes of Binance's signed (USER_DATA/TRADE) spot endpoints, served or not.
PRIVATE_PATH_PREFIXES: tuple[str, ...] = (
    "/api/v3/order",  # order, order/test, order/cancelReplace, orderList/*
    "/api/v3/openOrder",  # openOrders, openOrderList
    "/api/v3/allOrder",  # allOrders, allOrderList
    "/api/v3/my",  # myTrades, myPreventedMatches, myAllocations
    "/api/v3/account",
    "/api/v3/sor/",
    "/api/v3/rateLimit/order",
    "/sapi/",
)

_MINUTE = 60_000
_DAY = 86_400_000
# Binance interval -> (length ms, bin origin ms). Weeks start on Monday
# 1970-01-05; everything else is aligned to the epoch. "1M" is not served.
INTERVALS: dict[str, tuple[int, int]] = {
    "1s": (1_000, 0),
    "1m": (_MINUTE, 0),
    "3m": (3 * _MINUTE, 0),
    "5m": (5 * _MINUTE, 0),
    "15m": (15 * _MINUTE, 0),
    "30m": (30 * _MINUTE, 0),
    "1h": (60 * _MINUTE, 0),
    "2h": (120 * _MINUTE, 0),
    "4h": (240 * _MINUTE, 0),
    "6h": (360 * _MINUTE, 0),
    "8h": (480 * _MINUTE, 0),
    "12h": (720 * _MINUTE, 0),
    "1d": (_DAY, 0),
    "3d": (3 * _DAY, 0),
    "1w": (7 * _DAY, 4 * _DAY),
}

_RATE_LIMITS = [
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
    {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
    {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
]

_ORDER_TYPES = ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"]


class _ApiError(Exception):
    """A Binance-style error answer: HTTP status plus ``{"code", "msg"}``."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


def _num(x: float) -> str:
    """Binance-looking decimal string (>= 8 decimals) that round-trips exactly."""
    return np.format_float_positional(float(x), unique=True, trim="k", min_digits=8)


def _decimals(step: float) -> int:
    """Number of decimals needed to write multiples of ``step``."""
    text = np.format_float_positional(float(step), unique=True, trim="-")
    return len(text.split(".")[1]) if "." in text else 0


def _on_grid(n_steps: int, step: float) -> str:
    """Price/qty ``n_steps * step`` written without float noise."""
    return f"{n_steps * step:.{max(_decimals(step), 8)}f}"


@dataclass(frozen=True)
class _Bars:
    """Column arrays of OHLCV bars keyed by open time in epoch ms (sorted)."""

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    quote_volume: np.ndarray
    trades: np.ndarray

    def __len__(self) -> int:
        return len(self.ts)

    def slice(self, lo: int, hi: int) -> _Bars:
        return _Bars(*(getattr(self, f)[lo:hi] for f in _BAR_FIELDS))


_BAR_FIELDS = ("ts", "open", "high", "low", "close", "volume", "quote_volume", "trades")


def _aggregate(bars: _Bars, interval_ms: int, origin_ms: int) -> _Bars:
    """Resample with first/max/min/last/sum into left-closed, left-labelled bins."""
    if len(bars) == 0:
        return bars
    keys = (bars.ts - origin_ms) // interval_ms * interval_ms + origin_ms
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    ends = np.r_[starts[1:], len(keys)] - 1
    return _Bars(
        ts=keys[starts],
        open=bars.open[starts],
        high=np.maximum.reduceat(bars.high, starts),
        low=np.minimum.reduceat(bars.low, starts),
        close=bars.close[ends],
        volume=np.add.reduceat(bars.volume, starts),
        quote_volume=np.add.reduceat(bars.quote_volume, starts),
        trades=np.add.reduceat(bars.trades, starts),
    )


@dataclass
class _Market:
    symbol: str
    id: str
    base: str
    quote: str
    bars: _Bars
    base_ms: int
    tick_size: float
    step_size: float
    min_qty: float
    max_qty: float
    min_notional: float
    resampled: dict[str, _Bars] = field(default_factory=dict)


_QTY_RE = re.compile(r"^([0-9]{1,20})(\.[0-9]{1,20})?$")
_CLIENT_ID_RE = re.compile(r"^[a-zA-Z0-9-_]{1,36}$")
_API_KEY_RE = re.compile(r"^[A-Za-z0-9]{1,128}$")
_ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_OPEN = ("NEW", "PARTIALLY_FILLED")
_ILLEGAL = "Illegal characters found in parameter '{}'; legal range is '{}'."
_BOTH_EMPTY = "Param '{}' or '{}' must be sent, but both were empty/null!"
_ZERO = Decimal(0)


def _d(x: float | str | Decimal) -> Decimal:
    """Exact decimal of a float as written (``0.1`` -> ``Decimal("0.1")``)."""
    return x if isinstance(x, Decimal) else Decimal(repr(float(x)) if isinstance(x, float | int) else x)


def _fmt(x: Decimal, places: int = 8) -> str:
    return f"{x.quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP):.{places}f}"


@dataclass
class _Order:
    """One order of one account; amounts are exact decimals."""

    symbol: str  # Binance id, e.g. BTCUSDT
    order_id: int
    client_order_id: str
    side: str
    type: str
    time_in_force: str
    price: Decimal
    orig_qty: Decimal
    orig_quote_qty: Decimal
    time: int
    price_dp: int
    qty_dp: int
    executed_qty: Decimal = _ZERO
    cum_quote: Decimal = _ZERO
    status: str = "NEW"
    update_time: int = 0
    locked_asset: str = ""
    locked: Decimal = _ZERO  # still reserved for the resting part
    fills: list[dict[str, Any]] = field(default_factory=list)

    def json(self) -> dict[str, Any]:
        """``GET /api/v3/order`` shape."""
        return {
            "symbol": self.symbol,
            "orderId": self.order_id,
            "orderListId": -1,
            "clientOrderId": self.client_order_id,
            "price": _fmt(self.price, self.price_dp),
            "origQty": _fmt(self.orig_qty, self.qty_dp),
            "executedQty": _fmt(self.executed_qty, self.qty_dp),
            "cummulativeQuoteQty": _fmt(self.cum_quote),
            "status": self.status,
            "timeInForce": self.time_in_force,
            "type": self.type,
            "side": self.side,
            "stopPrice": _fmt(_ZERO, self.price_dp),
            "icebergQty": _fmt(_ZERO, self.qty_dp),
            "time": self.time,
            "updateTime": self.update_time,
            "isWorking": True,
            "workingTime": self.time,
            "origQuoteOrderQty": _fmt(self.orig_quote_qty),
            "selfTradePreventionMode": "EXPIRE_MAKER",
        }


@dataclass
class _Account:
    free: dict[str, Decimal] = field(default_factory=dict)
    locked: dict[str, Decimal] = field(default_factory=dict)
    orders: list[_Order] = field(default_factory=list)
    trades: list[dict[str, Any]] = field(default_factory=list)

    def add(self, asset: str, amount: Decimal) -> None:
        self.free[asset] = self.free.get(asset, _ZERO) + amount


@dataclass(frozen=True)
class _Wire:
    """What a signature is checked against: raw query string, raw body, API key header."""

    query: str
    body: str
    api_key: str | None


@dataclass
class RecordedRequest:
    """One request as the fake saw it.

    ``status`` stays None for dropped requests and until a slow one is answered.
    """

    method: str
    path: str
    params: dict[str, str]
    time: float  # wall clock (time.time()) at arrival
    now_ms: int  # the fake's clock at arrival
    fault: str | None = None
    status: int | None = None


class Hold:
    """One request the fake keeps waiting until the test releases it (see ``FakeBinance.hold``)."""

    def __init__(self, method: str, path: str, process: bool, skip: int = 0) -> None:
        self.method, self.path, self.process = method.upper(), path, process
        self.skip = skip  # matching requests to let through before the one held
        self.request: RecordedRequest | None = None
        self._held = threading.Event()
        self._released = threading.Event()
        self._done = threading.Event()

    def matches(self, method: str, path: str) -> bool:
        return method.upper() == self.method and path == self.path

    def wait_held(self, timeout: float = 120.0) -> RecordedRequest:
        """The held request, once a client is blocked on it (raises TimeoutError if none came)."""
        if not self._held.wait(timeout):
            raise TimeoutError(f"no {self.method} {self.path} request arrived to hold")
        assert self.request is not None
        return self.request

    def release(self) -> None:
        self._released.set()

    def wait_done(self, timeout: float = 60.0) -> None:
        """Wait until the released request was processed (or dropped)."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"the held {self.method} {self.path} request was not finished")


@dataclass
class FaultPlan:
    """Which requests fail and how, drawn from a seeded RNG.

    Each request whose path starts with one of ``paths`` (all paths if None)
    consumes the same number of draws, so the fault sequence is a pure
    function of ``seed`` and the order of matching requests. ``max_faults``
    caps the total number of injected faults (e.g. "fail twice, then work").
    ``methods`` (e.g. ``("POST",)``) narrows the plan to requests with those
    HTTP methods (all methods if None): placing an order and looking one up
    share the path ``/api/v3/order``.
    """

    rate: float = 1.0
    kinds: tuple[str, ...] = FAULT_KINDS
    seed: int = 0
    paths: tuple[str, ...] | None = None
    slow_seconds: float = 2.0
    retry_after: int = 1
    max_faults: int | None = None
    methods: tuple[str, ...] | None = None
    injected: int = field(default=0, init=False)
    _rng: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(ALL_FAULT_KINDS)
        if unknown or not self.kinds:
            raise ValueError(f"fault kinds must be a non-empty subset of {ALL_FAULT_KINDS}, got {self.kinds}")
        self._rng = random.Random(self.seed)

    def pick(self, path: str, method: str | None = None) -> tuple[str | None, float]:
        """Return (fault kind or None, an extra uniform draw for the fault's details)."""
        if self.paths is not None and not any(path.startswith(p) for p in self.paths):
            return None, 0.0
        if self.methods is not None and method is not None and method.upper() not in self.methods:
            return None, 0.0
        with self._lock:
            hit = self._rng.random() < self.rate
            kind = self.kinds[self._rng.randrange(len(self.kinds))]
            detail = self._rng.random()
            if not hit or (self.max_faults is not None and self.injected >= self.max_faults):
                return None, detail
            self.injected += 1
            return kind, detail


@functools.lru_cache(maxsize=1)
def _ccxt_binance_urls() -> dict[str, dict[str, str]]:
    """URL tables of the installed ccxt.binance (imported lazily: only tests need it)."""
    import ccxt

    urls = ccxt.binance().describe()["urls"]
    return {k: dict(urls[k]) for k in ("api", "test", "demo") if isinstance(urls.get(k), dict)}


class _Handler(TrackedHandler):

    def _serve(self, method: str) -> None:
        fake = self.server.fake
        split = urlsplit(self.path)
        params = dict(parse_qsl(split.query, keep_blank_values=True))
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        if body:
            params.update(parse_qsl(body, keep_blank_values=True))
        wire = _Wire(split.query, body, self.headers.get("X-MBX-APIKEY"))
        logged = {**params, "signature": REDACTED} if "signature" in params else params
        plan = fake.faults  # read once: tests may swap it while we answer
        hold = fake._take_hold(method, split.path)
        if hold is not None:
            plan, fault, detail = None, "hold", 0.0
        else:
            fault, detail = plan.pick(split.path, method) if plan is not None else (None, 0.0)
        rec = RecordedRequest(method, split.path, logged, time.time(), fake.now_ms, fault)
        fake._record(rec)
        try:
            if hold is not None:
                hold.request = rec
                hold._held.set()
                while not hold._released.wait(0.05):
                    if fake._stopping.is_set():
                        return
                if not hold.process:
                    self._drop()
                    return
                rec.now_ms = fake.now_ms  # processed as if it had just arrived
            self._answer(fake, rec, plan, None if hold is not None else fault, detail, params, wire)
        except OSError:  # client gave up (timeout) or went away
            self.close_connection = True
        finally:
            if hold is not None:
                hold._done.set()

    def _answer(
        self,
        fake: FakeBinance,
        rec: RecordedRequest,
        plan: FaultPlan | None,
        fault: str | None,
        detail: float,
        params: dict[str, str],
        wire: _Wire,
    ) -> None:
        if fault == "drop":
            self._drop()
            return
        if fault == "lostresponse":  # processed (an order IS placed), answer never sent
            fake._dispatch(rec.method, rec.path, params, rec.now_ms, wire)
            self._drop()
            return
        if fault in ("429", "418"):
            ban_until = rec.now_ms + 60_000
            msg = (
                "Too many requests; current limit of IP(127.0.0.1) is 6000 requests per minute. "
                "Please use the websocket for live updates to avoid polling the API."
                if fault == "429"
                else f"Way too many requests; IP(127.0.0.1) banned until {ban_until}. "
                "Please use the websocket for live updates to avoid bans."
            )
            body = json.dumps({"code": -1003, "msg": msg}).encode()
            retry = str(plan.retry_after if plan else 1)
            self._send(rec, int(fault), body, "application/json;charset=UTF-8", {"Retry-After": retry})
            return
        if fault == "500html":
            status = 502 if detail < 0.5 else 503
            reason = "Bad Gateway" if status == 502 else "Service Unavailable"
            body = (
                f"<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
                f"<center><h1>{status} {reason}</h1></center>\r\n</body>\r\n</html>\r\n"
            ).encode()
            self._send(rec, status, body, "text/html")
            return
        if fault == "slow" and fake._stopping.wait(plan.slow_seconds if plan else 2.0):
            return  # server is shutting down
        status, payload = fake._dispatch(rec.method, rec.path, params, rec.now_ms, wire)
        if isinstance(payload, bytes):
            self._send(rec, status, payload, "text/plain")
            return
        body = json.dumps(payload, separators=(",", ":")).encode()
        if fault == "badjson":
            body = body[: max(1, len(body) // 2)]
        self._send(rec, status, body, "application/json;charset=UTF-8")

    def _send(
        self, rec: RecordedRequest, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        rec.status = status
        self.wfile.write(body)


class FakeBinance(LocalFake):
    """Fake Binance spot REST server with a settable clock and fault injection.

    Candles are given at one base timeframe per market and resampled on the
    fly; only candles opened at or before ``now_ms`` are visible, and the
    last one is the forming candle built from base candles opened up to now.
    """

    handler_class = _Handler
    _fake_name = "FakeBinance"

    def __init__(
        self,
        markets: dict[str, pd.DataFrame] | None = None,
        clock_ms: int | None = None,
        *,
        spread_bps: float = 1.0,
        book_spacing_ticks: int = 1,
        book_qty: float = 1.0,
        api_key: str = DEFAULT_API_KEY,
        secret: str = DEFAULT_SECRET,
        taker_fee: float = 0.001,
    ) -> None:
        self._clock_ms = clock_ms
        self.spread_bps = spread_bps  # full bid/ask spread around the last price
        self.book_spacing_ticks = book_spacing_ticks  # distance between depth levels
        self.book_qty = book_qty  # amount at every depth level
        self.faults: FaultPlan | None = None
        # Trading (see module doc). The default account belongs to whatever api_key/secret are now.
        self.api_key = api_key
        self.secret = secret
        self.taker_fee = taker_fee  # charged in the asset received
        self.check_recv_window = False  # enforce timestamp/recvWindow against the fake's clock
        self.duplicate_client_order_id = "open"  # "open" (Binance) or "any" (reject every reuse)
        self.fee_asset: str | None = None  # e.g. "BNB": commission in that asset when the account holds enough
        self.fee_asset_prices: dict[str, float] = {}  # quote value of one unit of a fee asset (else its market)
        self.omit_fill_prices = False  # answer orders without price, cost or fills
        self._default_account = _Account()
        self._other_accounts: dict[str, tuple[str, _Account]] = {}
        self._next_order_id = 1
        self._next_trade_id = 1
        self._markets: dict[str, _Market] = {}
        self._by_id: dict[str, _Market] = {}
        self._lock = threading.RLock()
        self._requests: list[RecordedRequest] = []
        self._holds: list[Hold] = []
        self._log_lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._server: QuietServer | None = None
        self._thread: threading.Thread | None = None
        for symbol, candles in (markets or {}).items():
            self.add_market(symbol, candles)

    # ----------------------------------------------------------------- clock
    @property
    def now_ms(self) -> int:
        """The exchange's "now": the fixed clock if set, else the wall clock."""
        return int(time.time() * 1000) if self._clock_ms is None else self._clock_ms

    @now_ms.setter
    def now_ms(self, value: int | None) -> None:
        self._clock_ms = None if value is None else int(value)

    def advance(self, ms: int) -> int:
        """Move the fixed clock forward (freezing it at wall time first if unset)."""
        self.now_ms = self.now_ms + ms
        return self.now_ms

    # --------------------------------------------------------------- markets
    def add_market(
        self,
        symbol: str,
        candles: pd.DataFrame,
        *,
        timeframe: str | None = None,
        tick_size: float = 0.01,
        step_size: float = 0.00001,
        min_qty: float = 0.00001,
        max_qty: float = 9000.0,
        min_notional: float = 5.0,
    ) -> None:
        """Register ``symbol`` ("BASE/QUOTE") with OHLCV candles at one base timeframe.

        ``candles``: tz-aware DatetimeIndex of candle open times, float columns
        open/high/low/close/volume, optional quote_volume and trades. The base
        timeframe is inferred from the smallest index step unless given.
        """
        base, quote = symbol.split("/")
        index = candles.index
        if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
            raise ValueError("candles need a tz-aware DatetimeIndex of open times")
        frame = candles.sort_index()
        if frame.index.has_duplicates:
            raise ValueError("duplicate candle open times")
        ts = frame.index.tz_convert("UTC").as_unit("ms").asi8.astype(np.int64)
        if timeframe is None:
            steps = np.diff(ts)
            base_ms = int(steps.min()) if len(steps) else _MINUTE
        else:
            base_ms = INTERVALS[timeframe][0]
        if np.any(ts % base_ms):
            raise ValueError(f"candle open times are not aligned to {base_ms} ms")
        cols = {c: frame[c].to_numpy(dtype=float) for c in ("open", "high", "low", "close", "volume")}
        qv = frame["quote_volume"].to_numpy(float) if "quote_volume" in frame else cols["volume"] * cols["close"]
        trades = frame["trades"].to_numpy(np.int64) if "trades" in frame else np.ones(len(ts), np.int64)
        bars = _Bars(ts=ts, quote_volume=qv, trades=trades, **cols)
        market = _Market(
            symbol, base + quote, base, quote, bars, base_ms, tick_size, step_size, min_qty, max_qty, min_notional
        )
        with self._lock:
            self._markets[symbol] = market
            self._by_id[market.id] = market

    # -------------------------------------------------------------- accounts
    def add_account(self, api_key: str, secret: str, balances: Mapping[str, float | str] | None = None) -> None:
        """Register another account (the default one is ``self.api_key`` / ``self.secret``)."""
        with self._lock:
            self._other_accounts[api_key] = (secret, _Account())
        if balances is not None:
            self.set_balances(balances, api_key=api_key)

    def set_balances(self, balances: Mapping[str, float | str], *, api_key: str | None = None) -> None:
        """Set the account's free balances to exactly ``balances`` (other assets: 0).

        Amounts locked by resting orders are left alone.
        """
        with self._lock:
            acct = self._account(api_key)
            acct.free = {asset: _d(amount) for asset, amount in balances.items()}

    def balances(self, *, api_key: str | None = None) -> dict[str, dict[str, float]]:
        """``{asset: {"free": x, "locked": y}}`` of the account, as floats."""
        with self._lock:
            acct = self._account(api_key)
            assets = list(dict.fromkeys([*acct.free, *acct.locked]))
            return {
                a: {"free": float(acct.free.get(a, _ZERO)), "locked": float(acct.locked.get(a, _ZERO))} for a in assets
            }

    def orders(self, *, api_key: str | None = None) -> list[dict[str, Any]]:
        """Every order the account placed, oldest first, in ``GET /api/v3/order`` shape."""
        with self._lock:
            return [o.json() for o in self._account(api_key).orders]

    def _account(self, api_key: str | None) -> _Account:
        if api_key is None or api_key == self.api_key:
            return self._default_account
        try:
            return self._other_accounts[api_key][1]
        except KeyError:
            raise KeyError(f"no account with API key {api_key!r}") from None

    def _credentials(self, api_key: str) -> tuple[str, _Account] | None:
        with self._lock:
            if api_key == self.api_key:
                return self.secret, self._default_account
            return self._other_accounts.get(api_key)

    # ----------------------------------------------------------- request log
    @property
    def requests(self) -> list[RecordedRequest]:
        """Snapshot of every request received so far, in arrival order."""
        with self._log_lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._log_lock:
            self._requests.clear()

    def count(self, path_prefix: str = "") -> int:
        """Number of logged requests whose path starts with ``path_prefix``."""
        with self._log_lock:
            return sum(r.path.startswith(path_prefix) for r in self._requests)

    def private_requests(self) -> list[RecordedRequest]:
        """Logged requests to signed paths (order, openOrders, myTrades, account, ..., any /sapi)."""
        return [r for r in self.requests if r.path.startswith(PRIVATE_PATH_PREFIXES)]

    def _record(self, rec: RecordedRequest) -> None:
        with self._log_lock:
            self._requests.append(rec)

    # ----------------------------------------------------------------- holds
    def hold(self, method: str, path: str, *, process: bool = True, skip: int = 0) -> Hold:
        """Keep the next ``method path`` request (after ``skip`` others) waiting until ``release()`` (see
        module doc)."""
        hold = Hold(method, path, process, skip)
        with self._log_lock:
            self._holds.append(hold)
        return hold

    def _take_hold(self, method: str, path: str) -> Hold | None:
        with self._log_lock:
            for hold in self._holds:
                if hold.matches(method, path):
                    if hold.skip > 0:
                        hold.skip -= 1
                        continue
                    self._holds.remove(hold)
                    return hold
        return None

    # -------------------------------------------------------------- lifecycle
    def _on_start(self) -> None:
        self._stopping.clear()

    def _on_stop(self) -> None:
        self._stopping.set()  # wakes "slow" handlers

    def ccxt_config(self, *, credentials: bool = False) -> dict[str, Any]:
        """Constructor config making ccxt.binance talk only to this fake (see module doc).

        Covers the ``api``, ``test`` (sandbox) and ``demo`` URL sets. With
        ``credentials=True`` it also carries ``apiKey``/``secret`` of the
        default account.
        """
        base = self.url
        urls = {
            section: {key: base + urlsplit(u).path for key, u in table.items() if isinstance(u, str)}
            for section, table in _ccxt_binance_urls().items()
        }
        config: dict[str, Any] = {
            "urls": urls,
            "options": {
                "fetchMarkets": {"types": ["spot"]},
                "fetchMargins": False,
                "fetchCurrencies": False,
                "adjustForTimeDifference": False,
            },
        }
        if credentials:
            config.update(apiKey=self.api_key, secret=self.secret)
        return config

    # ------------------------------------------------------------- endpoints
    def _dispatch(
        self, method: str, path: str, params: dict[str, str], now: int, wire: _Wire | None = None
    ) -> tuple[int, Any]:
        """Route one request; returns (status, JSON-able payload or raw bytes)."""
        public: dict[str, Callable[[dict[str, str], int], Any]] = {
            "/api/v3/time": self._time,
            "/api/v3/exchangeInfo": self._exchange_info,
            "/api/v3/klines": self._klines,
            "/api/v3/ticker/24hr": self._ticker_24hr,
            "/api/v3/depth": self._depth,
        }
        signed: dict[tuple[str, str], Callable[[_Account, dict[str, str], int], Any]] = {
            ("POST", "/api/v3/order"): self._new_order,
            ("POST", "/api/v3/order/test"): self._test_order,
            ("GET", "/api/v3/order"): self._query_order,
            ("DELETE", "/api/v3/order"): self._cancel_order,
            ("GET", "/api/v3/openOrders"): self._open_orders,
            ("GET", "/api/v3/allOrders"): self._all_orders,
            ("GET", "/api/v3/myTrades"): self._my_trades,
            ("GET", "/api/v3/account"): self._account_info,
        }
        handler = public.get(path) if method == "GET" else None
        private = signed.get((method, path))
        if handler is None and private is None:
            return 404, f"FakeBinance does not serve {method} {path}\n".encode()
        try:
            if private is not None:
                acct = self._authenticate(params, now, wire or _Wire("", "", None))
                params = {k: v for k, v in params.items() if k != "signature"}
                with self._lock:  # one account operation at a time
                    return 200, private(acct, params, now)
            assert handler is not None
            return 200, handler(params, now)
        except _ApiError as e:
            return e.status, {"code": e.code, "msg": e.msg}

    def _market(self, params: dict[str, str]) -> _Market:
        market_id = params.get("symbol")
        if not market_id:
            raise _ApiError(400, -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
        with self._lock:
            market = self._by_id.get(market_id)
        if market is None:
            raise _ApiError(400, -1121, "Invalid symbol.")
        return market

    @staticmethod
    def _int_param(params: dict[str, str], name: str, default: int | None = None) -> int | None:
        raw = params.get(name)
        if raw is None or raw == "":
            return default
        try:
            return int(raw)
        except ValueError:
            raise _ApiError(
                400, -1100, f"Illegal characters found in parameter '{name}'; legal range is '^-?[0-9]{{1,20}}$'."
            ) from None

    def _time(self, params: dict[str, str], now: int) -> dict[str, Any]:
        return {"serverTime": now}

    def _exchange_info(self, params: dict[str, str], now: int) -> dict[str, Any]:
        with self._lock:
            markets = list(self._markets.values())
        if params.get("symbol"):
            markets = [self._market(params)]
        return {
            "timezone": "UTC",
            "serverTime": now,
            "rateLimits": _RATE_LIMITS,
            "exchangeFilters": [],
            "symbols": [self._symbol_info(m) for m in markets],
        }

    @staticmethod
    def _symbol_info(m: _Market) -> dict[str, Any]:
        return {
            "symbol": m.id,
            "status": "TRADING",
            "baseAsset": m.base,
            "baseAssetPrecision": 8,
            "quoteAsset": m.quote,
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8,
            "orderTypes": _ORDER_TYPES,
            "icebergAllowed": True,
            "ocoAllowed": True,
            "otoAllowed": True,
            "quoteOrderQtyMarketAllowed": True,
            "allowTrailingStop": True,
            "cancelReplaceAllowed": True,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": _num(m.tick_size),
                    "maxPrice": _num(1_000_000),
                    "tickSize": _num(m.tick_size),
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": _num(m.min_qty),
                    "maxQty": _num(m.max_qty),
                    "stepSize": _num(m.step_size),
                },
                {"filterType": "ICEBERG_PARTS", "limit": 10},
                {"filterType": "MARKET_LOT_SIZE", "minQty": _num(0), "maxQty": _num(m.max_qty), "stepSize": _num(0)},
                {
                    "filterType": "TRAILING_DELTA",
                    "minTrailingAboveDelta": 10,
                    "maxTrailingAboveDelta": 2000,
                    "minTrailingBelowDelta": 10,
                    "maxTrailingBelowDelta": 2000,
                },
                {
                    "filterType": "PERCENT_PRICE_BY_SIDE",
                    "bidMultiplierUp": "5",
                    "bidMultiplierDown": "0.2",
                    "askMultiplierUp": "5",
                    "askMultiplierDown": "0.2",
                    "avgPriceMins": 5,
                },
                {
                    "filterType": "NOTIONAL",
                    "minNotional": _num(m.min_notional),
                    "applyMinToMarket": True,
                    "maxNotional": _num(9_000_000),
                    "applyMaxToMarket": False,
                    "avgPriceMins": 5,
                },
                {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
                {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
            ],
            "permissions": ["SPOT"],
            "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
        }

    def _resampled(self, m: _Market, interval: str) -> tuple[_Bars, int, int]:
        """Full resampled history for ``interval`` (cached) plus its length and origin."""
        if interval not in INTERVALS:
            raise _ApiError(400, -1120, "Invalid interval.")
        length, origin = INTERVALS[interval]
        if length % m.base_ms or origin % m.base_ms:
            raise _ApiError(400, -1120, f"FakeBinance cannot build {interval} from {m.base_ms} ms base candles.")
        with self._lock:
            bars = m.resampled.get(interval)
            if bars is None:
                bars = m.bars if length == m.base_ms else _aggregate(m.bars, length, origin)
                m.resampled[interval] = bars
        return bars, length, origin

    def _klines(self, params: dict[str, str], now: int) -> list[list[Any]]:
        m = self._market(params)
        bars, length, origin = self._resampled(m, params.get("interval", ""))
        limit = min(max(self._int_param(params, "limit", 500) or 1, 1), 1000)
        start = self._int_param(params, "startTime")
        end = self._int_param(params, "endTime")
        if start is not None:  # Binance rounds a mid-candle startTime up to the next open
            start = -((origin - start) // length) * length + origin
        upper = now if end is None else min(now, end)

        # Closed candles come from the cached frame; the forming one is rebuilt
        # from base candles opened at or before now.
        forming_open = (now - origin) // length * length + origin
        n_closed = int(np.searchsorted(bars.ts, forming_open, "left"))
        hi = min(int(np.searchsorted(bars.ts, upper, "right")), n_closed)
        forming: _Bars | None = None
        if forming_open <= upper and (start is None or forming_open >= start):
            b = m.bars
            lo_b = int(np.searchsorted(b.ts, forming_open, "left"))
            hi_b = int(np.searchsorted(b.ts, now, "right"))
            forming = _aggregate(b.slice(lo_b, hi_b), length, origin) if hi_b > lo_b else None

        if start is not None:
            lo = int(np.searchsorted(bars.ts, start, "left"))
            hi = min(hi, lo + limit) if lo < hi else lo
            rows = self._kline_rows(bars.slice(lo, hi), length)
            if forming is not None and len(rows) < limit:
                rows += self._kline_rows(forming, length)
        else:  # no startTime: the latest `limit` candles up to endTime/now
            n_old = limit - (0 if forming is None else 1)
            rows = self._kline_rows(bars.slice(max(0, hi - n_old), hi), length)
            if forming is not None:
                rows += self._kline_rows(forming, length)
        return rows

    @staticmethod
    def _kline_rows(b: _Bars, length: int) -> list[list[Any]]:
        return [
            [
                int(t),
                _num(o),
                _num(h),
                _num(lo),
                _num(c),
                _num(v),
                int(t) + length - 1,
                _num(q),
                int(n),
                _num(v / 2),
                _num(q / 2),
                "0",
            ]
            for t, o, h, lo, c, v, q, n in zip(
                b.ts, b.open, b.high, b.low, b.close, b.volume, b.quote_volume, b.trades, strict=True
            )
        ]

    def _best_ticks(self, m: _Market, last: float) -> tuple[int, int]:
        """Best bid/ask in ticks: ``spread_bps`` wide around ``last``, at least one tick apart."""
        half = last * self.spread_bps / 20_000
        bid = math.floor((last - half) / m.tick_size + 1e-9)
        ask = math.ceil((last + half) / m.tick_size - 1e-9)
        if ask <= bid:
            ask = bid + 1
        return bid, ask

    def _last_index(self, m: _Market, now: int) -> int:
        """Number of base candles opened at or before now."""
        return int(np.searchsorted(m.bars.ts, now, "right"))

    def _ticker_24hr(self, params: dict[str, str], now: int) -> Any:
        if not params.get("symbol"):
            with self._lock:
                markets = list(self._markets.values())
            return [self._ticker(m, now) for m in markets]
        return self._ticker(self._market(params), now)

    def _ticker(self, m: _Market, now: int) -> dict[str, Any]:
        b = m.bars
        hi = self._last_index(m, now)
        lo = int(np.searchsorted(b.ts, now - _DAY, "right"))
        last = float(b.close[hi - 1]) if hi else 0.0
        prev = float(b.close[lo - 1]) if 0 < lo <= hi else last
        if hi > lo:
            open_, high, low = (float(b.open[lo]), float(b.high[lo:hi].max()), float(b.low[lo:hi].min()))
            vol, qvol = float(b.volume[lo:hi].sum()), float(b.quote_volume[lo:hi].sum())
            count = int(b.trades[lo:hi].sum())
        else:
            open_ = high = low = last
            vol = qvol = 0.0
            count = 0
        bid, ask = self._best_ticks(m, last)
        change = last - open_
        return {
            "symbol": m.id,
            "priceChange": f"{change:.{max(_decimals(m.tick_size), 8)}f}",
            "priceChangePercent": f"{(100 * change / open_) if open_ else 0.0:.3f}",
            "weightedAvgPrice": _num(qvol / vol if vol else last),
            "prevClosePrice": _num(prev),
            "lastPrice": _num(last),
            "lastQty": _num(m.min_qty),
            "bidPrice": _on_grid(bid, m.tick_size),
            "bidQty": _num(self.book_qty),
            "askPrice": _on_grid(ask, m.tick_size),
            "askQty": _num(self.book_qty),
            "openPrice": _num(open_),
            "highPrice": _num(high),
            "lowPrice": _num(low),
            "volume": _num(vol),
            "quoteVolume": _num(qvol),
            "openTime": now - _DAY,
            "closeTime": now,
            "firstId": 0 if count else -1,
            "lastId": count - 1,
            "count": count,
        }

    def _depth(self, params: dict[str, str], now: int) -> dict[str, Any]:
        m = self._market(params)
        limit = min(max(self._int_param(params, "limit", 100) or 1, 1), 5000)
        hi = self._last_index(m, now)
        last = float(m.bars.close[hi - 1]) if hi else 0.0
        bid, ask = self._best_ticks(m, last)
        step = max(1, self.book_spacing_ticks)
        qty = _num(self.book_qty)
        bids = [[_on_grid(bid - k * step, m.tick_size), qty] for k in range(limit) if bid - k * step > 0]
        asks = [[_on_grid(ask + k * step, m.tick_size), qty] for k in range(limit)]
        return {"lastUpdateId": now, "bids": bids, "asks": asks}

    # ------------------------------------------------------ signed endpoints
    def _authenticate(self, params: dict[str, str], now: int, wire: _Wire) -> _Account:
        """Binance's checks, in order: API key, timestamp, signature, recvWindow."""
        key = wire.api_key
        if not key or not _API_KEY_RE.match(key):
            raise _ApiError(401, -2014, "API-key format invalid.")
        found = self._credentials(key)
        if found is None:
            raise _ApiError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        secret, acct = found
        timestamp = self._int_param(params, "timestamp")
        if timestamp is None:
            raise _mandatory("timestamp")
        query, sigs_q = _strip_signature(wire.query)
        body, sigs_b = _strip_signature(wire.body)
        sigs = sigs_q + sigs_b
        if len(sigs) != 1 or not sigs[0]:
            raise _mandatory("signature")
        expected = hmac.new(secret.encode(), (query + body).encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, sigs[0].lower()):
            raise _ApiError(400, -1022, "Signature for this request is not valid.")
        recv_window = self._int_param(params, "recvWindow", 5000)
        assert recv_window is not None
        if recv_window > 60_000:
            raise _ApiError(400, -1131, "recvWindow must be less than 60000")
        if self.check_recv_window:
            if timestamp >= now + 1000:
                raise _ApiError(400, -1021, "Timestamp for this request was 1000ms ahead of the server's time.")
            if now - timestamp > recv_window:
                raise _ApiError(400, -1021, "Timestamp for this request is outside of the recvWindow.")
        return acct

    def _last_price(self, m: _Market, now: int) -> float:
        hi = self._last_index(m, now)
        return float(m.bars.close[hi - 1]) if hi else 0.0

    def _walk(
        self,
        m: _Market,
        now: int,
        side: str,
        *,
        units: int | None = None,
        quote: Decimal | None = None,
        limit: Decimal | None = None,
    ) -> list[tuple[Decimal, int]]:
        """Taker fills (price, quantity in steps) against the synthetic book, best level first.

        Walks until ``units`` steps are filled, or (``quote``) until the next
        step would spend/raise more than ``quote``, never past ``limit``.
        """
        bid, ask = self._best_ticks(m, self._last_price(m, now))
        spacing = max(1, self.book_spacing_ticks)
        tick, step = _d(m.tick_size), _d(m.step_size)
        level = max(1, int(_d(self.book_qty) / step))
        fills: list[tuple[Decimal, int]] = []
        ticks = ask if side == "BUY" else bid
        while ticks > 0:
            price = ticks * tick
            if limit is not None and (price > limit if side == "BUY" else price < limit):
                break
            if units is not None:
                take = min(level, units)
                units -= take
            else:
                assert quote is not None
                take = min(level, int(quote / (price * step)))
                quote -= price * step * take
            if take:
                fills.append((price, take))
            if (units is not None and units == 0) or (units is None and take < level):
                break
            ticks += spacing if side == "BUY" else -spacing
        return fills

    def _find_order(self, acct: _Account, symbol: str, params: dict[str, str]) -> _Order | None:
        order_id = self._int_param(params, "orderId")
        client_id = params.get("origClientOrderId") or None
        if order_id is None and client_id is None:
            raise _ApiError(400, -1102, _BOTH_EMPTY.format("origClientOrderId", "orderId"))
        for o in reversed(acct.orders):  # newest first: a reused client order id finds the latest order
            same = o.order_id == order_id if order_id is not None else o.client_order_id == client_id
            if same and o.symbol == symbol:
                return o
        return None

    def _new_order(self, acct: _Account, params: dict[str, str], now: int) -> dict[str, Any]:
        return self._place(acct, params, now, test=False)

    def _test_order(self, acct: _Account, params: dict[str, str], now: int) -> dict[str, Any]:
        return self._place(acct, params, now, test=True)

    def _place(self, acct: _Account, params: dict[str, str], now: int, *, test: bool) -> dict[str, Any]:
        m = self._market(params)
        side = params.get("side") or ""
        if not side:
            raise _mandatory("side")
        if side not in ("BUY", "SELL"):
            raise _ApiError(400, -1117, "Invalid side.")
        otype = params.get("type") or ""
        if not otype:
            raise _mandatory("type")
        if otype not in ("MARKET", "LIMIT", "LIMIT_MAKER"):
            if otype in _ORDER_TYPES:
                raise _ApiError(400, -1116, f"FakeBinance does not support orderType {otype}.")
            raise _ApiError(400, -1116, "Invalid orderType.")
        resp_type = params.get("newOrderRespType") or ("FULL" if otype in ("MARKET", "LIMIT") else "ACK")
        if resp_type not in ("ACK", "RESULT", "FULL"):
            raise _ApiError(400, -1100, "Illegal characters found in parameter 'newOrderRespType'.")
        client_id = params.get("newClientOrderId") or "".join(random.choices(_ID_CHARS, k=22))
        if not _CLIENT_ID_RE.match(client_id):
            raise _ApiError(400, -1100, _ILLEGAL.format("newClientOrderId", _CLIENT_ID_RE.pattern))
        qty = _dec_param(params, "quantity")
        quote_qty = _dec_param(params, "quoteOrderQty")
        price = _dec_param(params, "price")
        tif = params.get("timeInForce") or ""
        tick, step = _d(m.tick_size), _d(m.step_size)
        price_dp, qty_dp = max(_decimals(m.tick_size), 8), max(_decimals(m.step_size), 8)

        if otype == "MARKET":
            for name, value in (("price", price), ("timeInForce", tif)):
                if value:
                    raise _ApiError(400, -1106, f"Parameter '{name}' sent when not required.")
            if qty is None and quote_qty is None:
                raise _ApiError(400, -1102, _BOTH_EMPTY.format("quantity", "quoteOrderQty"))
            if qty is not None and quote_qty is not None:
                raise _ApiError(400, -1106, "Parameter 'quoteOrderQty' sent when not required.")
        else:
            if qty is None:
                raise _mandatory("quantity")
            if price is None:
                raise _mandatory("price")
            if quote_qty is not None:
                raise _ApiError(400, -1106, "Parameter 'quoteOrderQty' sent when not required.")
            if otype == "LIMIT" and not tif:
                raise _mandatory("timeInForce")
            if otype == "LIMIT_MAKER" and tif:
                raise _ApiError(400, -1106, "Parameter 'timeInForce' sent when not required.")
            if tif and tif not in ("GTC", "IOC", "FOK"):
                raise _ApiError(400, -1115, "Invalid timeInForce.")
            if price < tick or price > _d(1_000_000) or (price - tick) % tick:
                raise _ApiError(400, -1013, "Filter failure: PRICE_FILTER")

        # LOT_SIZE, then the fills, then NOTIONAL
        if qty is not None:
            _check_lot_size(m, qty)
            units = int(qty / step)
            fills = self._walk(m, now, side, units=units, limit=price)
        else:
            assert quote_qty is not None
            fills = self._walk(m, now, side, quote=quote_qty)
            units = sum(u for _, u in fills)
            _check_lot_size(m, units * step)
        if quote_qty is not None:
            notional = quote_qty
        elif otype == "MARKET":
            notional = units * step * _d(self._last_price(m, now))
        else:
            assert price is not None
            notional = units * step * price
        if notional < _d(m.min_notional) or (otype != "MARKET" and notional > _d(9_000_000)):
            raise _ApiError(400, -1013, "Filter failure: NOTIONAL")
        if otype == "LIMIT_MAKER" and fills:
            raise _ApiError(400, -2010, "Order would immediately match and take.")
        if tif == "FOK" and sum(u for _, u in fills) < units:
            fills = []  # expires without trading

        def holds_id(o: _Order) -> bool:
            return o.client_order_id == client_id and (self.duplicate_client_order_id == "any" or o.status in _OPEN)

        if any(holds_id(o) for o in acct.orders):
            raise _ApiError(400, -2010, "Duplicate order sent.")
        if test:
            return {}

        filled = sum(u for _, u in fills) * step
        cost = sum((p * u * step for p, u in fills), _ZERO)
        rests = otype != "MARKET" and tif not in ("IOC", "FOK") and filled < units * step
        rest_qty = units * step - filled if rests else _ZERO
        if side == "BUY":
            pay_asset, pay = m.quote, cost + (price * rest_qty if price is not None else _ZERO)
            if price is not None:  # Binance reserves the limit price for the whole order
                pay = max(pay, price * units * step)
        else:
            pay_asset, pay = m.base, units * step
        if acct.free.get(pay_asset, _ZERO) < pay:
            raise _ApiError(400, -2010, "Account has insufficient balance for requested action.")

        order = _Order(
            symbol=m.id,
            order_id=self._next_order_id,
            client_order_id=client_id,
            side=side,
            type=otype,
            time_in_force=tif or "GTC",
            price=price if price is not None else _ZERO,
            orig_qty=units * step,
            orig_quote_qty=quote_qty if quote_qty is not None else _ZERO,
            time=now,
            update_time=now,
            price_dp=price_dp,
            qty_dp=qty_dp,
        )
        self._next_order_id += 1
        fee = _d(self.taker_fee)
        for fill_price, fill_units in fills:
            fill_qty = fill_units * step
            fill_quote = fill_price * fill_qty
            in_fee_asset = self._fee_asset_commission(acct, m, fill_quote * fee, now)
            if in_fee_asset is not None:
                asset, commission = self.fee_asset, in_fee_asset
                acct.add(asset, -commission)
                acct.add(m.quote, -fill_quote if side == "BUY" else fill_quote)
                acct.add(m.base, fill_qty if side == "BUY" else -fill_qty)
            elif side == "BUY":
                asset, commission = m.base, (fill_qty * fee).quantize(Decimal("1e-8"), ROUND_HALF_UP)
                acct.add(m.quote, -fill_quote)
                acct.add(m.base, fill_qty - commission)
            else:
                asset, commission = m.quote, (fill_quote * fee).quantize(Decimal("1e-8"), ROUND_HALF_UP)
                acct.add(m.base, -fill_qty)
                acct.add(m.quote, fill_quote - commission)
            fill = {
                "price": _fmt(fill_price, price_dp),
                "qty": _fmt(fill_qty, qty_dp),
                "commission": _fmt(commission),
                "commissionAsset": asset,
                "tradeId": self._next_trade_id,
            }
            order.fills.append(fill)
            acct.trades.append(
                {
                    "symbol": m.id,
                    "id": self._next_trade_id,
                    "orderId": order.order_id,
                    "orderListId": -1,
                    "price": fill["price"],
                    "qty": fill["qty"],
                    "quoteQty": _fmt(fill_quote),
                    "commission": fill["commission"],
                    "commissionAsset": asset,
                    "time": now,
                    "isBuyer": side == "BUY",
                    "isMaker": False,
                    "isBestMatch": True,
                }
            )
            self._next_trade_id += 1
        order.executed_qty, order.cum_quote = filled, cost
        if rests:
            order.locked_asset = m.quote if side == "BUY" else m.base
            assert price is not None
            order.locked = price * rest_qty if side == "BUY" else rest_qty
            acct.add(order.locked_asset, -order.locked)
            acct.locked[order.locked_asset] = acct.locked.get(order.locked_asset, _ZERO) + order.locked
            order.status = "PARTIALLY_FILLED" if filled else "NEW"
        else:
            order.status = "FILLED" if filled == order.orig_qty and filled > 0 else "EXPIRED"
        acct.orders.append(order)

        ack = {
            "symbol": m.id,
            "orderId": order.order_id,
            "orderListId": -1,
            "clientOrderId": client_id,
            "transactTime": now,
        }
        if resp_type == "ACK":
            return ack
        full = order.json()
        result = {
            **ack,
            **{k: full[k] for k in ("price", "origQty", "executedQty", "origQuoteOrderQty", "cummulativeQuoteQty")},
            **{k: full[k] for k in ("status", "timeInForce", "type", "side", "workingTime", "selfTradePreventionMode")},
        }
        if resp_type == "FULL":
            result["fills"] = [dict(f) for f in order.fills]
        return self._without_prices(result)

    def _fee_asset_commission(self, acct: _Account, m: _Market, value: Decimal, now: int) -> Decimal | None:
        """The commission in ``fee_asset`` for a fee worth ``value`` quote, or None (not set, or not enough held)."""
        if self.fee_asset is None:
            return None
        price = self.fee_asset_prices.get(self.fee_asset)
        if price is None:
            market = self._by_id.get(self.fee_asset + m.quote)
            if market is None:
                raise ValueError(f"no price for fee asset {self.fee_asset}: add {self.fee_asset}/{m.quote} or set "
                                 "fee_asset_prices")
            price = self._last_price(market, now)
        commission = (value / _d(price)).quantize(Decimal("1e-8"), ROUND_HALF_UP)
        return commission if acct.free.get(self.fee_asset, _ZERO) >= commission else None

    def _without_prices(self, answer: dict[str, Any]) -> dict[str, Any]:
        """``answer`` as an exchange that has not reported the execution price yet gives it (omit_fill_prices)."""
        if not self.omit_fill_prices:
            return answer
        answer = {k: v for k, v in answer.items() if k not in ("cummulativeQuoteQty", "fills")}
        return {**answer, "price": "0.00000000"} if "price" in answer else answer

    def _query_order(self, acct: _Account, params: dict[str, str], now: int) -> dict[str, Any]:
        m = self._market(params)
        order = self._find_order(acct, m.id, params)
        if order is None:
            raise _ApiError(400, -2013, "Order does not exist.")
        return self._without_prices(order.json())

    def _cancel_order(self, acct: _Account, params: dict[str, str], now: int) -> dict[str, Any]:
        m = self._market(params)
        order = self._find_order(acct, m.id, params)
        if order is None or order.status not in _OPEN:
            raise _ApiError(400, -2011, "Unknown order sent.")
        acct.locked[order.locked_asset] -= order.locked
        acct.add(order.locked_asset, order.locked)
        order.locked = _ZERO
        order.status, order.update_time = "CANCELED", now
        out = order.json()
        keep = ("symbol", "orderId", "orderListId", "price", "origQty", "executedQty", "cummulativeQuoteQty")
        return {
            **{k: out[k] for k in keep},
            "origClientOrderId": order.client_order_id,
            "clientOrderId": params.get("newClientOrderId") or "".join(random.choices(_ID_CHARS, k=22)),
            "transactTime": now,
            **{k: out[k] for k in ("status", "timeInForce", "type", "side", "selfTradePreventionMode")},
        }

    def _open_orders(self, acct: _Account, params: dict[str, str], now: int) -> list[dict[str, Any]]:
        symbol = self._market(params).id if params.get("symbol") else None
        return [o.json() for o in acct.orders if o.status in _OPEN and symbol in (None, o.symbol)]

    def _all_orders(self, acct: _Account, params: dict[str, str], now: int) -> list[dict[str, Any]]:
        symbol = self._market(params).id
        from_id = self._int_param(params, "orderId", 0) or 0
        start = self._int_param(params, "startTime", 0) or 0
        end = self._int_param(params, "endTime")
        limit = min(max(self._int_param(params, "limit", 500) or 1, 1), 1000)
        rows = [
            o.json()
            for o in acct.orders
            if o.symbol == symbol and o.order_id >= from_id and start <= o.time and (end is None or o.time <= end)
        ]
        return rows[:limit] if from_id or start else rows[-limit:]

    def _my_trades(self, acct: _Account, params: dict[str, str], now: int) -> list[dict[str, Any]]:
        symbol = self._market(params).id
        order_id = self._int_param(params, "orderId")
        from_id = self._int_param(params, "fromId", 0) or 0
        start = self._int_param(params, "startTime", 0) or 0
        end = self._int_param(params, "endTime")
        limit = min(max(self._int_param(params, "limit", 500) or 1, 1), 1000)
        rows = [
            dict(t)
            for t in acct.trades
            if t["symbol"] == symbol
            and (order_id is None or t["orderId"] == order_id)
            and t["id"] >= from_id
            and start <= t["time"]
            and (end is None or t["time"] <= end)
        ]
        return rows[:limit] if from_id or start else rows[-limit:]

    def _account_info(self, acct: _Account, params: dict[str, str], now: int) -> dict[str, Any]:
        fee = _d(self.taker_fee)
        bps = int(fee * 10_000)
        assets = list(dict.fromkeys([*acct.free, *acct.locked]))
        balances = [
            {"asset": a, "free": _fmt(acct.free.get(a, _ZERO)), "locked": _fmt(acct.locked.get(a, _ZERO))}
            for a in assets
        ]
        if params.get("omitZeroBalances") == "true":
            balances = [b for b in balances if _d(b["free"]) or _d(b["locked"])]
        return {
            "makerCommission": bps,
            "takerCommission": bps,
            "buyerCommission": 0,
            "sellerCommission": 0,
            "commissionRates": {"maker": _fmt(fee), "taker": _fmt(fee), "buyer": _fmt(_ZERO), "seller": _fmt(_ZERO)},
            "canTrade": True,
            "canWithdraw": True,
            "canDeposit": True,
            "brokered": False,
            "requireSelfTradePrevention": False,
            "preventSor": False,
            "updateTime": now,
            "accountType": "SPOT",
            "balances": balances,
            "permissions": ["SPOT"],
            "uid": 1,
        }


def _mandatory(name: str) -> _ApiError:
    return _ApiError(400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def _strip_signature(raw: str) -> tuple[str, list[str]]:
    """``raw`` without its ``signature=`` parts, and the signature values found."""
    parts = raw.split("&") if raw else []
    sigs = [p[len("signature=") :] for p in parts if p.startswith("signature=")]
    return "&".join(p for p in parts if not p.startswith("signature=")), sigs


def _dec_param(params: dict[str, str], name: str) -> Decimal | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if not _QTY_RE.match(raw):
        raise _ApiError(400, -1100, _ILLEGAL.format(name, _QTY_RE.pattern))
    return Decimal(raw)


def _check_lot_size(m: _Market, qty: Decimal) -> None:
    min_qty, step = _d(m.min_qty), _d(m.step_size)
    if qty < min_qty or qty > _d(m.max_qty) or (qty - min_qty) % step:
        raise _ApiError(400, -1013, "Filter failure: LOT_SIZE")
