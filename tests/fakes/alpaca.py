"""A local fake of Alpaca's trading API and market data API for tests.

Why: the Alpaca adapter must be tested against the real alpaca-py clients (their URL building and error
raising are part of what we rely on) without touching the network, with a clock we control and faults we inject.

``FakeAlpaca`` runs a ``ThreadingHTTPServer`` on 127.0.0.1 (random free port) serving both APIs under one
base URL; point ``trading_url`` and ``data_url`` at ``fake.url``::

    with FakeAlpaca() as fake:
        fake.add_asset("AAPL")
        fake.set_bars("AAPL", "1d", frame)           # daily frames indexed by session date
        fake.set_clock("2024-03-08T21:00:00Z", is_open=False, next_open=..., next_close=...)

Every request must carry ``APCA-API-KEY-ID`` / ``APCA-API-SECRET-KEY`` equal to ``fake.api_key`` /
``fake.secret`` (401 ``{"code": 40110000, "message": "request is not authorized"}`` otherwise).

Served (paths as alpaca-py 0.44 calls them, after ``/v2``)::

    GET  /v2/assets/{symbol}            404 {"code": 40410000} when unknown
    GET  /v2/clock, /v2/calendar, /v2/account
    GET  /v2/positions/{symbol}         404 {"code": 40410000, "message": "position does not exist"}
    POST /v2/orders                     422 {"code": 40010001, "message": "client_order_id must be unique"}
    GET  /v2/orders, /v2/orders/{id}, /v2/orders:by_client_order_id?client_order_id=...
    GET  /v2/stocks/bars?symbols=..     (and /v2/stocks/{symbol}/bars) paged by ``limit`` / ``page_token``;
                                        ``fake.page_limit`` caps a page (small in tests to force paging)
    GET  /v2/stocks/quotes/latest?symbols=..., /v2/stocks/trades/latest?symbols=...

Daily bars are stamped at midnight America/New_York in UTC (04:00 or 05:00 UTC), as Alpaca does; intraday bars
at their UTC open time. Only bars whose open time is before the fake's clock are served, so the forming bar IS
served (as Alpaca does): dropping it is the client's job.

Orders are asynchronous: an accepted order stays ``accepted`` until ``fake.fill(client_order_id, qty, price)``
(partial or full; updates filled_qty, filled_avg_price, status, cash and position), unless
``fake.auto_fill`` is True (filled at once at the latest trade price).

Faults: ``fake.fail(kind, path=..., method=None, count=1)`` makes the next ``count`` requests whose path starts
with ``path`` (and with that method) fail, in the order queued. Kinds::

    "429"           HTTP 429 {"code": 42910000, "message": "rate limit exceeded"}, Retry-After: 0
    "500" "502" "504"  that HTTP status with a short body
    "drop"          the connection is closed without an answer (the request is NOT processed)
    "lostresponse"  the request IS processed (an order is placed), then the connection is closed
    "notfound"      404 {"code": 40410000, "message": "order not found"} without looking (a lagging read, so a
                    client that looked an existing order up sends it again and meets the duplicate-id 422)

Every request is recorded (``fake.requests``: method, path, query params, non-secret headers, fault, status).
"""

from __future__ import annotations

import itertools
import json
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import pandas as pd

from .http import LocalFake, QuietServer, TrackedHandler

DEFAULT_API_KEY = "PKFAKEALPACAKEY0000000001"
DEFAULT_SECRET = "fakeAlpacaSecret0000000000000000000000001"
FAULT_KINDS = ("429", "500", "502", "504", "drop", "lostresponse", "notfound")
SECRET_HEADERS = {"apca-api-key-id", "apca-api-secret-key", "authorization"}
NEW_YORK = "America/New_York"
TIMEFRAMES = {"1Min": pd.Timedelta(minutes=1), "5Min": pd.Timedelta(minutes=5), "15Min": pd.Timedelta(minutes=15),
              "30Min": pd.Timedelta(minutes=30), "1Hour": pd.Timedelta(hours=1), "1Day": pd.Timedelta(days=1)}
OUR_TIMEFRAMES = {"1m": "1Min", "5m": "5Min", "15m": "15Min", "30m": "30Min", "1h": "1Hour", "1d": "1Day"}


@dataclass
class RecordedRequest:
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    fault: str | None = None
    status: int | None = None


@dataclass
class _Fault:
    kind: str
    path: str
    method: str | None
    count: int


class _ApiError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _iso(stamp: pd.Timestamp) -> str:
    return pd.Timestamp(stamp).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


def _num(x: float) -> str:
    return format(float(x), ".10g")


@dataclass
class _Order:
    id: str
    client_order_id: str
    symbol: str
    side: str
    qty: float
    created_at: pd.Timestamp
    status: str = "accepted"
    filled_qty: float = 0.0
    filled_avg_price: float | None = None

    def json(self) -> dict[str, Any]:
        return {"id": self.id, "client_order_id": self.client_order_id, "symbol": self.symbol,
                "asset_class": "us_equity", "side": self.side, "qty": _num(self.qty), "notional": None,
                "type": "market", "order_type": "market", "time_in_force": "day", "status": self.status,
                "filled_qty": _num(self.filled_qty),
                "filled_avg_price": None if self.filled_avg_price is None else _num(self.filled_avg_price),
                "created_at": _iso(self.created_at), "submitted_at": _iso(self.created_at),
                "extended_hours": False}


class _Handler(TrackedHandler):
    methods = ("GET", "POST", "DELETE")

    def _serve(self, method: str) -> None:
        fake = self.server.fake
        split = urlsplit(self.path)
        path = unquote(split.path)
        params = dict(parse_qsl(split.query, keep_blank_values=True))
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        headers = {k: v for k, v in self.headers.items() if k.lower() not in SECRET_HEADERS}
        fault = fake._take_fault(method, path)
        rec = RecordedRequest(method, path, params, headers, fault)
        fake._record(rec)
        try:
            if fault == "drop":
                self._drop()
                return
            if fault == "notfound":
                self._send(rec, 404, {"code": 40410000, "message": "order not found"})
                return
            if fault in ("429", "500", "502", "504"):
                status = int(fault)
                payload = ({"code": 42910000, "message": "rate limit exceeded"} if status == 429
                           else {"code": 50010000, "message": "internal server error"})
                self._send(rec, status, payload, {"Retry-After": "0"} if status == 429 else None)
                return
            key, secret = self.headers.get("APCA-API-KEY-ID"), self.headers.get("APCA-API-SECRET-KEY")
            if key != fake.api_key or secret != fake.secret:
                self._send(rec, 401, {"code": 40110000, "message": "request is not authorized"})
                return
            try:
                data = json.loads(body) if body else {}
                status, payload = 200, fake._dispatch(method, path, params, data)
            except _ApiError as error:
                status, payload = error.status, {"code": error.code, "message": error.message}
            if fault == "lostresponse":
                self._drop()
                return
            self._send(rec, status, payload)
        except OSError:
            self.close_connection = True

    def _send(self, rec: RecordedRequest, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        rec.status = status
        self.wfile.write(body)


@dataclass
class FakeAlpaca(LocalFake):
    """The fake broker; see the module docstring."""

    handler_class = _Handler
    _fake_name = "FakeAlpaca"

    api_key: str = DEFAULT_API_KEY
    secret: str = DEFAULT_SECRET
    page_limit: int = 10_000
    auto_fill: bool = False
    requests: list[RecordedRequest] = field(default_factory=list)
    _assets: dict[str, dict] = field(default_factory=dict)
    _bars: dict[tuple[str, str], pd.DataFrame] = field(default_factory=dict)
    _quotes: dict[str, dict] = field(default_factory=dict)
    _trades: dict[str, float] = field(default_factory=dict)
    _orders: list[_Order] = field(default_factory=list)
    _positions: dict[str, float] = field(default_factory=dict)
    _faults: list[_Fault] = field(default_factory=list)
    cash_amount: float = 100_000.0
    now: pd.Timestamp = field(default_factory=lambda: pd.Timestamp("2024-03-08T21:00:00Z"))
    is_open: bool = False
    next_open: pd.Timestamp | None = None
    next_close: pd.Timestamp | None = None
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _conns: set = field(default_factory=set)
    _server: QuietServer | None = None
    _thread: threading.Thread | None = None
    _ids: Any = field(default_factory=itertools.count)

    # ------------------------------------------------------------ test controls
    def add_asset(self, symbol: str, fractionable: bool = True, tradable: bool = True, price_increment: float = 0.01,
                  min_order_size: float = 0.000000001, min_trade_increment: float = 0.000000001) -> None:
        self._assets[symbol] = {
            "id": str(uuid.uuid5(uuid.NAMESPACE_DNS, symbol)), "class": "us_equity", "exchange": "NASDAQ",
            "symbol": symbol, "name": f"{symbol} Inc.", "status": "active", "tradable": tradable,
            "marginable": True, "shortable": True, "easy_to_borrow": True, "fractionable": fractionable,
            "min_order_size": _num(min_order_size), "min_trade_increment": _num(min_trade_increment),
            "price_increment": _num(price_increment), "attributes": [],
        }

    def set_bars(self, symbol: str, timeframe: str, frame: pd.DataFrame) -> None:
        """``frame``: OHLCV columns, UTC index (daily: the session date at 00:00 UTC); ``timeframe`` ours or
        Alpaca's ("1d" or "1Day")."""
        name = OUR_TIMEFRAMES.get(timeframe, timeframe)
        frame = frame.copy()
        index = pd.DatetimeIndex(frame.index)
        index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
        if name == "1Day":  # stamped at midnight New York, like Alpaca
            index = pd.DatetimeIndex(index.tz_localize(None).normalize()).tz_localize(NEW_YORK).tz_convert("UTC")
        frame.index = index
        with self._lock:
            self._bars[(symbol, name)] = frame.sort_index()

    def set_clock(self, timestamp: Any, is_open: bool = False, next_open: Any = None, next_close: Any = None) -> None:
        with self._lock:
            self.now = pd.Timestamp(timestamp).tz_convert("UTC") if pd.Timestamp(timestamp).tzinfo else \
                pd.Timestamp(timestamp).tz_localize("UTC")
            self.is_open = is_open
            self.next_open = None if next_open is None else pd.Timestamp(next_open)
            self.next_close = None if next_close is None else pd.Timestamp(next_close)

    def set_quote(self, symbol: str, bid: float, ask: float, bid_size: float = 100, ask_size: float = 100) -> None:
        self._quotes[symbol] = {"bp": bid, "ap": ask, "bs": bid_size, "as": ask_size}

    def set_trade(self, symbol: str, price: float) -> None:
        self._trades[symbol] = price

    def set_cash(self, amount: float) -> None:
        self.cash_amount = amount

    def position(self, symbol: str) -> float:
        return self._positions.get(symbol, 0.0)

    def orders(self) -> list[dict[str, Any]]:
        with self._lock:
            return [o.json() for o in self._orders]

    def fill(self, client_order_id: str, qty: float, price: float) -> None:
        """Fill ``qty`` more shares of the order at ``price``."""
        with self._lock:
            order = next(o for o in self._orders if o.client_order_id == client_order_id)
            total = order.filled_qty + qty
            if total > order.qty + 1e-9:
                raise ValueError(f"fill of {qty} exceeds the order's {order.qty - order.filled_qty} open shares")
            order.filled_avg_price = ((order.filled_avg_price or 0.0) * order.filled_qty + price * qty) / total
            order.filled_qty = total
            order.status = "filled" if total >= order.qty - 1e-9 else "partially_filled"
            sign = 1 if order.side == "buy" else -1
            self._positions[order.symbol] = self._positions.get(order.symbol, 0.0) + sign * qty
            self.cash_amount -= sign * qty * price

    def fail(self, kind: str, path: str = "/", method: str | None = None, count: int = 1) -> None:
        """The next ``count`` requests to a path starting with ``path`` (and ``method``) fail with ``kind``."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {FAULT_KINDS}, got {kind!r}")
        with self._lock:
            self._faults.append(_Fault(kind, path, method.upper() if method else None, count))

    def requests_to(self, path_prefix: str, method: str | None = None) -> list[RecordedRequest]:
        return [r for r in list(self.requests)
                if r.path.startswith(path_prefix) and (method is None or r.method == method)]

    def _record(self, rec: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(rec)

    def _take_fault(self, method: str, path: str) -> str | None:
        with self._lock:
            for fault in self._faults:
                if path.startswith(fault.path) and (fault.method is None or fault.method == method):
                    fault.count -= 1
                    if fault.count <= 0:
                        self._faults.remove(fault)
                    return fault.kind
        return None

    # ------------------------------------------------------------ API
    def _dispatch(self, method: str, path: str, params: dict[str, str], data: dict) -> Any:
        with self._lock:
            if not path.startswith("/v2/"):
                raise _ApiError(404, 40410000, "endpoint not found")
            parts = path[len("/v2/"):].split("/")
            head = parts[0]
            if method == "GET" and head == "assets" and len(parts) == 2:
                return self._asset(parts[1])
            if method == "GET" and path == "/v2/clock":
                return self._clock()
            if method == "GET" and path == "/v2/calendar":
                return self._calendar(params)
            if method == "GET" and path == "/v2/account":
                return {"id": "fake-account", "status": "ACTIVE", "currency": "USD", "cash": _num(self.cash_amount),
                        "buying_power": _num(self.cash_amount), "equity": _num(self.cash_amount)}
            if method == "GET" and head == "positions" and len(parts) == 2:
                qty = self._positions.get(parts[1], 0.0)
                if qty == 0:
                    raise _ApiError(404, 40410000, "position does not exist")
                return {"symbol": parts[1], "qty": _num(qty), "side": "long" if qty > 0 else "short",
                        "asset_class": "us_equity"}
            if path == "/v2/orders" and method == "POST":
                return self._new_order(data)
            if path == "/v2/orders" and method == "GET":
                return [o.json() for o in self._orders]
            if path == "/v2/orders:by_client_order_id" and method == "GET":
                return self._find(lambda o: o.client_order_id == params.get("client_order_id"))
            if head == "orders" and len(parts) == 2 and method == "GET":
                return self._find(lambda o: o.id == parts[1])
            if method == "GET" and path == "/v2/stocks/bars":
                return self._bars_page(params.get("symbols", ""), params, multi=True)
            if method == "GET" and head == "stocks" and len(parts) == 3 and parts[2] == "bars":
                return self._bars_page(parts[1], params, multi=False)
            if method == "GET" and path == "/v2/stocks/quotes/latest":
                return {"quotes": {s: {**q, "t": _iso(self.now), "c": ["R"], "z": "C"}
                                   for s in params.get("symbols", "").split(",") if (q := self._quotes.get(s))}}
            if method == "GET" and path == "/v2/stocks/trades/latest":
                return {"trades": {s: {"p": p, "s": 100, "t": _iso(self.now), "x": "V", "i": 1, "c": ["@"],
                                       "z": "C"}
                                   for s in params.get("symbols", "").split(",") if (p := self._trades.get(s))}}
            raise _ApiError(404, 40410000, "endpoint not found")

    def _asset(self, symbol: str) -> dict:
        if symbol not in self._assets:
            raise _ApiError(404, 40410000, f"asset not found for {symbol}")
        return self._assets[symbol]

    def _clock(self) -> dict:
        ny = self.now.tz_convert(NEW_YORK)
        next_open = self.next_open if self.next_open is not None else (
            ny.normalize() + pd.Timedelta(days=1, hours=9, minutes=30))
        next_close = self.next_close if self.next_close is not None else (
            ny.normalize() + pd.Timedelta(hours=16))
        return {"timestamp": ny.isoformat(), "is_open": self.is_open,
                "next_open": pd.Timestamp(next_open).tz_convert(NEW_YORK).isoformat(),
                "next_close": pd.Timestamp(next_close).tz_convert(NEW_YORK).isoformat()}

    @staticmethod
    def _calendar(params: dict[str, str]) -> list[dict]:
        import exchange_calendars as xcals

        cal = xcals.get_calendar("XNYS")
        start = pd.Timestamp(params.get("start") or cal.first_session)
        end = pd.Timestamp(params.get("end") or cal.last_session)
        out = []
        for session in cal.sessions_in_range(start.tz_localize(None), end.tz_localize(None)):
            open_, close = cal.session_open(session), cal.session_close(session)
            out.append({"date": session.strftime("%Y-%m-%d"),
                        "open": open_.tz_convert(NEW_YORK).strftime("%H:%M"),
                        "close": close.tz_convert(NEW_YORK).strftime("%H:%M")})
        return out

    def _find(self, match: Any) -> dict:
        for order in reversed(self._orders):
            if match(order):
                return order.json()
        raise _ApiError(404, 40410000, "order not found")

    def _new_order(self, data: dict) -> dict:
        symbol, client_id = data.get("symbol", ""), data.get("client_order_id") or str(uuid.uuid4())
        if symbol not in self._assets or not self._assets[symbol]["tradable"]:
            raise _ApiError(422, 40010001, f"asset {symbol} is not tradable")
        if any(o.client_order_id == client_id for o in self._orders):
            raise _ApiError(422, 40010001, "client_order_id must be unique")
        if data.get("type") != "market" or data.get("side") not in ("buy", "sell"):
            raise _ApiError(422, 40010001, "only market buy/sell orders are served by the fake")
        qty = float(data.get("qty") or 0)
        if qty <= 0:
            raise _ApiError(422, 40010001, "qty must be > 0")
        if not self._assets[symbol]["fractionable"] and qty != int(qty):
            raise _ApiError(422, 40010001, "fractional orders are not supported for this asset")
        order = _Order(str(uuid.UUID(int=next(self._ids) + 1)), client_id, symbol, data["side"], qty, self.now)
        self._orders.append(order)
        if self.auto_fill:
            price = self._trades.get(symbol)
            if price is None:
                raise _ApiError(500, 50010000, "no trade price to fill at")
            self.fill(client_id, qty, price)
        return order.json()

    def _bars_page(self, symbols: str, params: dict[str, str], multi: bool) -> dict:
        name = params.get("timeframe", "")
        if name not in TIMEFRAMES:
            raise _ApiError(422, 42210000, f"invalid timeframe {name!r}")
        limit = min(int(params.get("limit") or 1000), self.page_limit)
        start = pd.Timestamp(params["start"]) if params.get("start") else self.now.normalize()
        end = pd.Timestamp(params["end"]) if params.get("end") else self.now
        offset = int(params.get("page_token") or 0)
        rows: list[tuple[str, dict]] = []
        for symbol in symbols.split(","):
            frame = self._bars.get((symbol, name))
            if frame is None:
                continue
            frame = frame[(frame.index >= start) & (frame.index <= end) & (frame.index < self.now)]
            if params.get("sort") == "desc":
                frame = frame.iloc[::-1]
            for t, r in frame.iterrows():
                rows.append((symbol, {"t": _iso(t), "o": float(r["open"]), "h": float(r["high"]),
                                      "l": float(r["low"]), "c": float(r["close"]), "v": float(r["volume"]),
                                      "n": 1, "vw": float(r["close"])}))
        page = rows[offset:offset + limit]
        token = str(offset + limit) if offset + limit < len(rows) else None
        if not multi:
            return {"symbol": symbols, "bars": [r for _, r in page], "next_page_token": token}
        bars: dict[str, list] = {}
        for symbol, row in page:
            bars.setdefault(symbol, []).append(row)
        return {"bars": bars, "next_page_token": token}
