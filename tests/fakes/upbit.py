"""A local fake of Upbit's PUBLIC (quotation) REST API for tests.

The real ``ccxt.upbit`` client talks to it (URL building, parsing and error
mapping are part of what we test), never the network::

    with FakeUpbit(clock_ms=now) as fake:
        fake.add_market("BTC/KRW", candles_1m)          # tz-aware 1m frame, holes allowed
        ex = ccxt.upbit({**fake.ccxt_config(), "timeout": 2000})

Served (GET only, paths as ccxt 4.5 builds them: ``/v1/`` + its api path):

* ``/v1/market/all`` (``isDetails``/``is_details`` accepted and answered with ``market_event``),
* ``/v1/candles/minutes/{1,3,5,10,15,30,60,240}``, ``/v1/candles/days``, ``/v1/candles/weeks``
  with ``market``, ``count`` (1..200, default 1; more is a 400 like Upbit's) and ``to``
  (EXCLUSIVE upper bound on the candle open time; ISO 8601 with or without zone, no zone
  meaning UTC; missing = the fake's now). Answer: the newest ``count`` candles opened before
  ``to`` and not after now, NEWEST FIRST. The candle containing now is served as the forming
  candle (built from base candles opened up to now), as Upbit does: dropping it is the
  client's job. Minutes without trades (holes in the frame) are absent. Days open at 00:00
  UTC (09:00 KST), weeks on Monday 00:00 UTC.
* ``/v1/orderbook?markets=A,B`` (15 levels a tick apart, ``book_qty`` each: best bid = last price
  rounded down to the tick, best ask one tick above),
* ``/v1/ticker?markets=A,B`` and ``/v1/ticker/all?quote_currencies=KRW,BTC``,
* ``/v1/orderbook/instruments?markets=A,B``: ``tick_size`` is what ``set_tick`` gave, else
  ``krw_tick(last price)`` for KRW markets, 0.00000001 for BTC markets, 0.01 for USDT ones.

Every answer (errors included) carries ``Remaining-Req: group=<group>; min=1800; sec=<n>``
where the group is ``market``, ``candles``, ``ticker``, ``orderbook`` or ``trade`` and ``sec``
counts down from ``per_second - 1`` within each WALL-clock second, per group.
``fake.per_second_limit = 10`` makes the fake itself answer 429 once a group used up its
second (off by default).

Faults: ``fake.fail(kind, path_prefix="", count=1, body=None)`` queues faults taken in order
by the next matching requests. Kinds and what ccxt 4.5.90 raises for them (asserted in
tests/test_fake_korean_exchanges.py)::

    "429"   HTTP 429, body {"error": {"name": 429, "message": "Too many API requests."}}
                                      -> ccxt.ExchangeError (!), see below
    "429" with a non-JSON body        -> ccxt.RateLimitExceeded
    "418"   HTTP 418, body {"error": {"name": 418, "message": "...blocked..."}}
                                      -> ccxt.ExchangeError (!)
    "418" with a non-JSON body        -> ccxt.DDoSProtection
    "500"   HTTP 500, plain text body -> ccxt.ExchangeNotAvailable
    "drop"  connection closed without an answer -> ccxt.NetworkError (exactly)

Why ExchangeError: ``upbit.handle_errors`` runs before the HTTP status is looked at and
raises ``ExchangeError`` for ANY ``{"error": {...}}`` body whose name/message it does not
know (429 and 418 are not in its table), so a rate limit with Upbit's JSON body is not a
``NetworkError`` for ccxt. A retry policy has to look at the HTTP status
(``client.last_http_response``/the message text, or ``fake.requests[-1].status`` in tests).

``fake.ban_seconds`` (default 0): after an injected 418 every request is answered 418 for
that many WALL-clock seconds (``clear_faults()`` lifts it). ``fake.requests_since_ban()``
counts the requests that arrived after the last injected 418 (0 = the client waited/stopped).

Unknown market: 404 ``{"error": {"name": 404, "message": "Code not found"}}`` (ccxt:
ExchangeError; ccxt rejects unknown symbols itself before sending). Bad ``count``/``to``:
400 ``{"error": {"name": 400, "message": ...}}``.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pandas as pd

from .binance import RecordedRequest, _aggregate, _Bars
from .http import LocalFake, QuietServer, TrackedHandler

__all__ = ["FakeUpbit", "FAULT_KINDS", "krw_tick", "RecordedRequest"]

FAULT_KINDS: tuple[str, ...] = ("429", "418", "500", "drop")
MAX_COUNT = 200
_MINUTE = 60_000
_DAY = 86_400_000
_KST = 9 * 3_600_000
MINUTE_UNITS = (1, 3, 5, 10, 15, 30, 60, 240)
# path -> (candle length ms, bin origin ms); weeks start on Monday (1970-01-05).
CANDLE_PATHS: dict[str, tuple[int, int]] = {
    **{f"/v1/candles/minutes/{u}": (u * _MINUTE, 0) for u in MINUTE_UNITS},
    "/v1/candles/days": (_DAY, 0),
    "/v1/candles/weeks": (7 * _DAY, 4 * _DAY),
}
_BOOK_LEVELS = 15

# Upbit KRW market tick table ("원화(KRW) 마켓 주문 가격 단위", docs.upbit.com/kr/docs/krw-market-info,
# policy in force since 2025-07-31): (lower bound inclusive, tick). The rows from 100 KRW up are
# that page's; the rows below 100 KRW are the pre-2025-07-31 table's (docs.upbit.com
# market-info-trade-price-detail, v1.4.5), which that page did not show us in full.
# Exceptions Upbit applies per coin (e.g. USDT/USDC/KRW) are not modelled: use set_tick().
_KRW_TICKS: tuple[tuple[Decimal, Decimal], ...] = tuple(
    (Decimal(lo), Decimal(t))
    for lo, t in (
        ("1000000", "1000"),
        ("500000", "500"),
        ("100000", "100"),
        ("50000", "50"),
        ("10000", "10"),
        ("5000", "5"),
        ("100", "1"),
        ("10", "0.01"),
        ("1", "0.001"),
        ("0.1", "0.0001"),
        ("0.01", "0.00001"),
        ("0.001", "0.000001"),
        ("0.0001", "0.0000001"),
        ("0", "0.00000001"),
    )
)


def krw_tick(price: float | str | Decimal) -> Decimal:
    """Upbit's KRW-market tick size at ``price`` (see the table's comment above)."""
    p = Decimal(str(price))
    for lo, tick in _KRW_TICKS:
        if p >= lo:
            return tick
    return _KRW_TICKS[-1][1]


def _iso(ms: int) -> str:
    """Upbit's zone-less ``yyyy-MM-ddTHH:mm:ss``."""
    return pd.Timestamp(ms, unit="ms").strftime("%Y-%m-%dT%H:%M:%S")


def _num(x: float) -> float | int:
    """JSON number as Upbit writes them (integers without a fraction)."""
    f = float(x)
    return int(f) if f.is_integer() and abs(f) < 2**53 else f


def _group(path: str) -> str:
    if path.startswith("/v1/candles"):
        return "candles"
    if path.startswith("/v1/orderbook"):
        return "orderbook"
    if path.startswith("/v1/ticker"):
        return "ticker"
    if path.startswith("/v1/trades"):
        return "trade"
    return "market"


class _ApiError(Exception):
    def __init__(self, status: int, name: int | str, message: str) -> None:
        super().__init__(message)
        self.status, self.name, self.message = status, name, message


@dataclass
class _Fault:
    kind: str
    path_prefix: str
    remaining: int
    body: bytes | None


@dataclass
class _Market:
    symbol: str
    id: str  # QUOTE-BASE
    base: str
    quote: str
    bars: _Bars  # base candles (1m unless given otherwise)
    base_ms: int
    korean_name: str
    resampled: dict[int, _Bars] = field(default_factory=dict)


class _Handler(TrackedHandler):
    methods = ("GET", "POST", "DELETE")

    def _serve(self, method: str) -> None:
        fake = self.server.fake
        split = urlsplit(self.path)
        params = dict(parse_qsl(split.query, keep_blank_values=True))
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        rec = RecordedRequest(method, split.path, params, time.time(), fake.now_ms)
        fault = fake._take_fault(split.path)
        rec.fault = fault.kind if fault is not None else None
        fake._record(rec)
        try:
            self._answer(fake, rec, fault)
        except OSError:
            self.close_connection = True

    def _answer(self, fake: FakeUpbit, rec: RecordedRequest, fault: _Fault | None) -> None:
        if fault is not None and fault.kind == "drop":
            self._drop()
            return
        group = _group(rec.path)
        remaining = fake._spend(group)
        headers = {"Remaining-Req": f"group={group}; min=1800; sec={max(remaining, 0)}"} if fake.remaining_req else {}
        injected = fault is not None
        if fault is None and fake._banned():
            fault = _Fault("418", "", 1, None)
        if fault is None and remaining < 0:
            fault = _Fault("429", "", 1, None)
        if fault is not None:
            status = int(fault.kind)
            body = fault.body if fault.body is not None else fake._fault_body(status)
            ctype = "application/json;charset=UTF-8" if body[:1] == b"{" else "text/plain;charset=UTF-8"
            self._send(rec, status, body, ctype, headers)
            if status == 418 and injected:
                fake._note_ban(rec)
            return
        status, payload = fake._dispatch(rec.method, rec.path, rec.params, rec.now_ms)
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        self._send(rec, status, body, "application/json;charset=UTF-8", headers)

    def _send(self, rec: RecordedRequest, status: int, body: bytes, ctype: str, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        rec.status = status
        self.wfile.write(body)


class FakeUpbit(LocalFake):
    """Fake Upbit quotation REST server with a settable clock and fault injection (see module doc)."""

    handler_class = _Handler
    name = "FakeUpbit"
    remaining_req = True  # send the Remaining-Req header

    def __init__(
        self,
        markets: dict[str, pd.DataFrame] | None = None,
        clock_ms: int | None = None,
        *,
        book_qty: float = 1.0,
        per_second: int = 10,
    ) -> None:
        self._clock_ms = clock_ms
        self.book_qty = book_qty  # size at every synthetic book level
        self.per_second = per_second  # the "sec" budget Remaining-Req counts down from
        self.per_second_limit: int | None = None  # answer 429 beyond this many requests/second/group
        self.ban_seconds = 0.0  # keep answering 418 this long (wall clock) after a 418
        self._ticks: dict[str, Decimal] = {}
        self._markets: dict[str, _Market] = {}
        self._by_id: dict[str, _Market] = {}
        self._faults: list[_Fault] = []
        self._windows: dict[str, tuple[int, int]] = {}  # group -> (wall second, used)
        self._ban_until = 0.0
        self._ban_index: int | None = None  # request-log length when the last 418 was answered
        self._lock = threading.RLock()
        self._requests: list[RecordedRequest] = []
        self._log_lock = threading.Lock()
        self._conns: set[socket.socket] = set()
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
    def add_market(self, symbol: str, candles: pd.DataFrame, *, base_ms: int = _MINUTE, korean_name: str = "") -> None:
        """Register ``symbol`` ("BASE/QUOTE", id "QUOTE-BASE") with base candles (default 1m).

        ``candles``: tz-aware DatetimeIndex of open times, float columns open/high/low/close/volume,
        optional quote_volume. Missing minutes are minutes without trades.
        """
        base, quote = symbol.split("/")
        if not isinstance(candles.index, pd.DatetimeIndex) or candles.index.tz is None:
            raise ValueError("candles need a tz-aware DatetimeIndex of open times")
        frame = candles.sort_index()
        if frame.index.has_duplicates:
            raise ValueError("duplicate candle open times")
        ts = frame.index.tz_convert("UTC").as_unit("ms").asi8.astype(np.int64)
        if np.any(ts % base_ms):
            raise ValueError(f"candle open times are not aligned to {base_ms} ms")
        cols = {c: frame[c].to_numpy(dtype=float) for c in ("open", "high", "low", "close", "volume")}
        qv = frame["quote_volume"].to_numpy(float) if "quote_volume" in frame else cols["volume"] * cols["close"]
        bars = _Bars(ts=ts, quote_volume=qv, trades=np.ones(len(ts), np.int64), **cols)
        market = _Market(symbol, f"{quote}-{base}", base, quote, bars, base_ms, korean_name or base)
        with self._lock:
            self._markets[symbol] = market
            self._by_id[market.id] = market

    def set_tick(self, symbol: str, tick: float | str | Decimal | None) -> None:
        """Tick size the instruments endpoint answers for ``symbol`` (None: back to the default)."""
        with self._lock:
            if tick is None:
                self._ticks.pop(symbol, None)
            else:
                self._ticks[symbol] = Decimal(str(tick))

    def tick(self, symbol: str) -> Decimal:
        """The tick size served for ``symbol`` now."""
        with self._lock:
            m = self._markets[symbol]
            if symbol in self._ticks:
                return self._ticks[symbol]
        if m.quote == "KRW":
            return krw_tick(self._last_price(m, self.now_ms))
        return Decimal("0.01") if m.quote == "USDT" else Decimal("0.00000001")

    # ---------------------------------------------------------------- faults
    def fail(self, kind: str, path_prefix: str = "", count: int = 1, *, body: bytes | str | None = None) -> None:
        """The next ``count`` requests whose path starts with ``path_prefix`` fail with ``kind``.

        ``body`` replaces the default error body (bytes/str sent as is).
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {FAULT_KINDS}, got {kind!r}")
        raw = body.encode() if isinstance(body, str) else body
        with self._lock:
            self._faults.append(_Fault(kind, path_prefix, count, raw))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._ban_until = 0.0

    def _take_fault(self, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if path.startswith(fault.path_prefix):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _fault_body(self, status: int) -> bytes:
        if status == 429:
            return json.dumps({"error": {"name": 429, "message": "Too many API requests."}}).encode()
        if status == 418:
            secs = max(int(self.ban_seconds), 1)
            msg = f"Too many requests. Your IP is blocked for {secs} seconds."
            return json.dumps({"error": {"name": 418, "message": msg}}).encode()
        return b"Internal Server Error"

    def _spend(self, group: str) -> int:
        """Count one request of ``group`` in this wall-clock second; the remaining budget (< 0: over)."""
        second = int(time.time())
        with self._lock:
            start, used = self._windows.get(group, (second, 0))
            used = used + 1 if start == second else 1
            self._windows[group] = (second, used)
        if self.per_second_limit is not None and used > self.per_second_limit:
            return -1
        return max(self.per_second - used, 0)

    def _banned(self) -> bool:
        return time.time() < self._ban_until

    def _note_ban(self, rec: RecordedRequest) -> None:
        with self._lock:
            self._ban_until = max(self._ban_until, time.time() + self.ban_seconds)
        with self._log_lock:
            self._ban_index = self._requests.index(rec) + 1 if rec in self._requests else len(self._requests)

    def requests_since_ban(self) -> int:
        """Requests that arrived after the last injected 418 (those the ban answered 418 included; 0 if none)."""
        with self._log_lock:
            return 0 if self._ban_index is None else len(self._requests) - self._ban_index

    # ----------------------------------------------------------- request log
    @property
    def requests(self) -> list[RecordedRequest]:
        """Snapshot of every request received so far, in arrival order."""
        with self._log_lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._log_lock:
            self._requests.clear()
            self._ban_index = None

    def count(self, path_prefix: str = "") -> int:
        """Number of logged requests whose path starts with ``path_prefix``."""
        with self._log_lock:
            return sum(r.path.startswith(path_prefix) for r in self._requests)

    def _record(self, rec: RecordedRequest) -> None:
        with self._log_lock:
            self._requests.append(rec)

    # -------------------------------------------------------------- lifecycle
    @property
    def _fake_name(self) -> str:  # type: ignore[override]
        return self.name

    def ccxt_config(self) -> dict[str, Any]:
        """Constructor config making ccxt.upbit talk only to this fake.

        ccxt.upbit builds ``urls.api.<public|private>`` (``https://{hostname}``) + ``/v1/`` + path;
        both point here, so a private call shows up as a logged 404 instead of leaving the machine.
        """
        return {"urls": {"api": {"public": self.url, "private": self.url}}, "enableRateLimit": False}

    # ------------------------------------------------------------- endpoints
    def _dispatch(self, method: str, path: str, params: dict[str, str], now: int) -> tuple[int, Any]:
        """Route one request; returns (status, JSON-able payload)."""
        routes = {
            "/v1/market/all": self._market_all,
            "/v1/orderbook": self._orderbook,
            "/v1/orderbook/instruments": self._instruments,
            "/v1/ticker": self._ticker,
            "/v1/ticker/all": self._ticker_all,
        }
        handler = routes.get(path) if method == "GET" else None
        if handler is None and method == "GET" and path in CANDLE_PATHS:
            length, origin = CANDLE_PATHS[path]

            def handler(p: dict[str, str], n: int) -> Any:
                return self._candles(p, n, length, origin)

        try:
            if handler is None:
                raise _ApiError(404, 404, f"{self.name} does not serve {method} {path}")
            return 200, handler(params, now)
        except _ApiError as e:
            return e.status, {"error": {"name": e.name, "message": e.message}}

    def _market(self, market_id: str) -> _Market:
        with self._lock:
            m = self._by_id.get(market_id)
        if m is None:
            raise _ApiError(404, 404, "Code not found")
        return m

    def _markets_param(self, params: dict[str, str], name: str = "markets") -> list[_Market]:
        raw = params.get(name, "")
        if not raw:
            raise _ApiError(400, 400, "Missing request parameter error. Check the required parameters!")
        return [self._market(i.strip()) for i in raw.split(",") if i.strip()]

    def _market_all(self, params: dict[str, str], now: int) -> list[dict[str, Any]]:
        details = (params.get("isDetails") or params.get("is_details") or "").lower() == "true"
        with self._lock:
            markets = list(self._markets.values())
        rows = []
        for m in markets:
            row: dict[str, Any] = {"market": m.id, "korean_name": m.korean_name, "english_name": m.base}
            if details:
                row["market_event"] = {"warning": False, "caution": {}}
            rows.append(row)
        return rows

    # candles
    def _history(self, m: _Market, length: int, origin: int) -> _Bars:
        if length % m.base_ms or origin % m.base_ms:
            raise _ApiError(400, 400, f"{self.name} cannot build {length} ms candles from {m.base_ms} ms ones")
        with self._lock:
            bars = m.resampled.get(length)
            if bars is None:
                bars = m.bars if length == m.base_ms else _aggregate(m.bars, length, origin)
                m.resampled[length] = bars
        return bars

    @staticmethod
    def _parse_to(raw: str) -> int:
        try:
            ts = pd.Timestamp(raw.replace(" ", "T"))
        except ValueError:
            raise _ApiError(400, 400, f"Invalid parameter: to={raw}") from None
        if ts.tzinfo is None:
            ts = ts.tz_localize("UTC")
        return int(ts.tz_convert("UTC").value // 1_000_000)

    def _window(self, m: _Market, length: int, origin: int, now: int, upper: int, count: int) -> _Bars:
        """The newest ``count`` candles opened before ``upper`` and at or before ``now``, oldest first.

        Closed candles come from the cached history; the forming one (containing now) is
        rebuilt from base candles opened up to now.
        """
        bars = self._history(m, length, origin)
        forming_open = (now - origin) // length * length + origin
        n_closed = int(np.searchsorted(bars.ts, forming_open, "left"))
        hi = min(int(np.searchsorted(bars.ts, upper, "left")), n_closed)
        forming: _Bars | None = None
        if forming_open < upper:
            b = m.bars
            lo_b = int(np.searchsorted(b.ts, forming_open, "left"))
            hi_b = int(np.searchsorted(b.ts, now, "right"))
            forming = _aggregate(b.slice(lo_b, hi_b), length, origin) if hi_b > lo_b else None
        if forming is not None and len(forming):
            closed = bars.slice(max(0, hi - (count - 1)), hi)
            return _Bars(*(np.r_[getattr(closed, f), getattr(forming, f)] for f in _Bars.__dataclass_fields__))
        return bars.slice(max(0, hi - count), hi)

    def _candles(self, params: dict[str, str], now: int, length: int, origin: int) -> list[dict[str, Any]]:
        m = self._market(params.get("market", ""))
        raw_count = params.get("count", "1") or "1"
        try:
            count = int(raw_count)
        except ValueError:
            raise _ApiError(400, 400, f"Invalid parameter: count={raw_count}") from None
        if count < 1 or count > MAX_COUNT:
            raise _ApiError(400, 400, f"count must be between 1 and {MAX_COUNT}")
        upper = self._parse_to(params["to"]) if params.get("to") else now + 1
        win = self._window(m, length, origin, now, upper, count)
        unit = length // _MINUTE if length < _DAY else None
        rows = []
        for i in range(len(win) - 1, -1, -1):  # newest first
            t = int(win.ts[i])
            row: dict[str, Any] = {
                "market": m.id,
                "candle_date_time_utc": _iso(t),
                "candle_date_time_kst": _iso(t + _KST),
                "opening_price": _num(win.open[i]),
                "high_price": _num(win.high[i]),
                "low_price": _num(win.low[i]),
                "trade_price": _num(win.close[i]),
                "timestamp": min(t + length - 1, now),  # time of the candle's last trade
                "candle_acc_trade_price": _num(win.quote_volume[i]),
                "candle_acc_trade_volume": _num(win.volume[i]),
            }
            if unit is not None:
                row["unit"] = unit
            elif length == _DAY:
                prev = self._last_price(m, t - 1, default=float(win.open[i]))
                row.update(
                    prev_closing_price=_num(prev),
                    change_price=_num(float(win.close[i]) - prev),
                    change_rate=_num((float(win.close[i]) - prev) / prev if prev else 0.0),
                )
            else:
                row["first_day_of_period"] = _iso(t)[:10]
            rows.append(row)
        return rows

    # prices, book, ticker
    def _last_price(self, m: _Market, now: int, default: float | None = None) -> float:
        i = int(np.searchsorted(m.bars.ts, now, "right"))
        if i == 0:
            if default is not None:
                return default
            raise _ApiError(404, 404, f"no trade in {m.id} yet")
        return float(m.bars.close[i - 1])

    def _book_json(self, m: _Market, now: int) -> dict[str, Any]:
        last = Decimal(str(self._last_price(m, now)))
        tick = self.tick(m.symbol)
        best_bid = (last / tick).to_integral_value(rounding=ROUND_FLOOR) * tick  # last price rounded down
        best_ask = best_bid + tick
        units = [
            {
                "ask_price": _num(float(best_ask + k * tick)),
                "bid_price": _num(float(best_bid - k * tick)),
                "ask_size": _num(self.book_qty),
                "bid_size": _num(self.book_qty),
            }
            for k in range(_BOOK_LEVELS)
        ]
        size = _num(self.book_qty * _BOOK_LEVELS)
        return {
            "market": m.id,
            "timestamp": now,
            "total_ask_size": size,
            "total_bid_size": size,
            "orderbook_units": units,
            "level": 0,
        }

    def _orderbook(self, params: dict[str, str], now: int) -> list[dict[str, Any]]:
        return [self._book_json(m, now) for m in self._markets_param(params)]

    def _instruments(self, params: dict[str, str], now: int) -> list[dict[str, Any]]:
        out = []
        for m in self._markets_param(params):
            tick = self.tick(m.symbol)
            out.append(
                {
                    "market": m.id,
                    "quote_currency": m.quote,
                    "tick_size": f"{tick.normalize():f}",
                    "supported_levels": ["0", *(f"{(tick * 10**k).normalize():f}" for k in range(1, 5))],
                }
            )
        return out

    def _ticker_json(self, m: _Market, now: int) -> dict[str, Any]:
        b = m.bars
        hi = int(np.searchsorted(b.ts, now, "right"))
        if hi == 0:
            raise _ApiError(404, 404, f"no trade in {m.id} yet")
        day_open = now // _DAY * _DAY
        lo_day = int(np.searchsorted(b.ts, day_open, "left"))
        lo_24h = int(np.searchsorted(b.ts, now - _DAY, "right"))
        last = float(b.close[hi - 1])
        prev = float(b.close[lo_day - 1]) if lo_day > 0 else float(b.open[lo_day] if lo_day < hi else last)
        day = slice(lo_day, hi) if lo_day < hi else slice(hi - 1, hi)
        trade_ms = min(int(b.ts[hi - 1]) + m.base_ms - 1, now)
        change = last - prev
        return {
            "market": m.id,
            "trade_date": pd.Timestamp(trade_ms, unit="ms").strftime("%Y%m%d"),
            "trade_time": pd.Timestamp(trade_ms, unit="ms").strftime("%H%M%S"),
            "trade_date_kst": pd.Timestamp(trade_ms + _KST, unit="ms").strftime("%Y%m%d"),
            "trade_time_kst": pd.Timestamp(trade_ms + _KST, unit="ms").strftime("%H%M%S"),
            "trade_timestamp": trade_ms,
            "opening_price": _num(b.open[day][0]),
            "high_price": _num(b.high[day].max()),
            "low_price": _num(b.low[day].min()),
            "trade_price": _num(last),
            "prev_closing_price": _num(prev),
            "change": "RISE" if change > 0 else "FALL" if change < 0 else "EVEN",
            "change_price": _num(abs(change)),
            "change_rate": _num(abs(change) / prev if prev else 0.0),
            "signed_change_price": _num(change),
            "signed_change_rate": _num(change / prev if prev else 0.0),
            "trade_volume": _num(b.volume[hi - 1]),
            "acc_trade_price": _num(b.quote_volume[day].sum()),
            "acc_trade_price_24h": _num(b.quote_volume[lo_24h:hi].sum()),
            "acc_trade_volume": _num(b.volume[day].sum()),
            "acc_trade_volume_24h": _num(b.volume[lo_24h:hi].sum()),
            "highest_52_week_price": _num(b.high[:hi].max()),
            "highest_52_week_date": _iso(int(b.ts[int(np.argmax(b.high[:hi]))]))[:10],
            "lowest_52_week_price": _num(b.low[:hi].min()),
            "lowest_52_week_date": _iso(int(b.ts[int(np.argmin(b.low[:hi]))]))[:10],
            "timestamp": now,
        }

    def _ticker(self, params: dict[str, str], now: int) -> list[dict[str, Any]]:
        return [self._ticker_json(m, now) for m in self._markets_param(params)]

    def _ticker_all(self, params: dict[str, str], now: int) -> list[dict[str, Any]]:
        quotes = {q.strip() for q in params.get("quote_currencies", "").split(",") if q.strip()}
        with self._lock:
            markets = [m for m in self._markets.values() if not quotes or m.quote in quotes]
        return [self._ticker_json(m, now) for m in markets]
