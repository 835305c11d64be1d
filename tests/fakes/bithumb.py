"""A small local fake of Bithumb's PUBLIC REST API for tests, driven by the real ``ccxt.bithumb``.

ccxt 4.5.90's bithumb defaults to API "generation 2" (``options.generation = 2``): Bithumb's
Upbit-shaped ``/v1`` quotation API. ``FakeBithumb`` is therefore a ``FakeUpbit`` (same markets,
candles, order book, ticker, clock, faults and request log; see tests/fakes/upbit.py) minus the
``Remaining-Req`` header, plus the generation-1 endpoints ccxt uses with
``{"options": {"generation": 1}}`` or ``params={"generation": 1}``:

* ``GET /public/ticker/ALL_{quote}`` (fetch_markets and fetch_tickers, one request per quote in
  ``options.quoteCurrencies``: KRW and BTC), ``GET /public/ticker/{base}_{quote}``,
* ``GET /public/orderbook/{base}_{quote}`` (``count``, default 30, at most 30),
* ``GET /public/candlestick/{base}_{quote}/{interval}`` (1m 3m 5m 10m 30m 1h 6h 12h 24h):
  a FIXED window, the latest ``legacy_window`` candles (forming one included), oldest first,
  rows ``[open_ms, open, close, high, low, volume]`` as strings. It takes no ``since``/``count``:
  ccxt filters the window client-side (``since``/``limit`` in ``parse_ohlcvs``), so nothing
  older than the window can be reached this way.

What ccxt.bithumb (generation 2) sends, and what the fake answers:

* ``load_markets``: ``GET /v1/market/all?isDetails=true``,
* ``fetch_ohlcv``: ``GET /v1/candles/minutes/{unit}`` (or days/weeks) with ``market`` and
  ``count`` = ``limit`` only when a limit is given (no count: Bithumb, like Upbit, answers ONE
  candle); ``since`` is NOT sent (no ``to``): ccxt only filters the newest ``count`` candles by
  it, so with ccxt.bithumb history can only be paged with ``params={"to": ...}``,
* ``fetch_order_book`` / ``fetch_ticker``: ``GET /v1/orderbook`` / ``GET /v1/ticker`` with
  ``markets``.

Errors: Bithumb v1 bodies are ``{"error": {"name": ..., "message": ...}}`` like Upbit's;
generation-1 ones ``{"status": "5500", "message": "Invalid Parameter"}``. Fault kinds as in
FakeUpbit; ccxt.bithumb's ``handle_errors`` also raises ``ExchangeError`` for a JSON error body
it does not know (so a JSON 429/418 is an ExchangeError, a non-JSON one RateLimitExceeded /
DDoSProtection).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from .upbit import _DAY, _MINUTE, FakeUpbit, _ApiError, _Bars, _Market

__all__ = ["FakeBithumb", "LEGACY_INTERVALS"]

# generation-1 candlestick interval -> (length ms, origin ms)
LEGACY_INTERVALS: dict[str, tuple[int, int]] = {
    "1m": (_MINUTE, 0),
    "3m": (3 * _MINUTE, 0),
    "5m": (5 * _MINUTE, 0),
    "10m": (10 * _MINUTE, 0),
    "30m": (30 * _MINUTE, 0),
    "1h": (60 * _MINUTE, 0),
    "6h": (360 * _MINUTE, 0),
    "12h": (720 * _MINUTE, 0),
    "24h": (_DAY, 0),
}
_PAIR = r"(?P<base>[A-Za-z0-9]+)_(?P<quote>[A-Za-z0-9]+)"
_TICKER_ALL = re.compile(r"^/public/ticker/ALL_(?P<quote>[A-Za-z0-9]+)$")
_TICKER = re.compile(rf"^/public/ticker/{_PAIR}$")
_BOOK = re.compile(rf"^/public/orderbook/{_PAIR}$")
_CANDLES = re.compile(rf"^/public/candlestick/{_PAIR}/(?P<interval>[0-9a-z]+)$")


class _LegacyError(Exception):
    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _s(x: float) -> str:
    return np.format_float_positional(float(x), unique=True, trim="-")


class FakeBithumb(FakeUpbit):
    """Fake Bithumb public REST server: FakeUpbit's v1 API plus generation-1 endpoints (see module doc)."""

    name = "FakeBithumb"
    remaining_req = False

    def __init__(self, *args: Any, legacy_window: int = 1500, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.legacy_window = legacy_window  # candles in a generation-1 candlestick answer

    def ccxt_config(self) -> dict[str, Any]:
        """Constructor config making ccxt.bithumb talk only to this fake (``https://api.{hostname}`` + path)."""
        return {"urls": {"api": {"public": self.url, "private": self.url}}, "enableRateLimit": False}

    def _dispatch(self, method: str, path: str, params: dict[str, str], now: int) -> tuple[int, Any]:
        if not path.startswith("/public/"):
            return super()._dispatch(method, path, params, now)
        try:
            for pattern, handler in (
                (_TICKER_ALL, self._legacy_ticker_all),
                (_TICKER, self._legacy_ticker),
                (_BOOK, self._legacy_book),
                (_CANDLES, self._legacy_candles),
            ):
                match = pattern.match(path)
                if match and method == "GET":
                    return 200, {"status": "0000", "data": handler(match.groupdict(), params, now)}
            return 404, {"status": "5600", "message": f"{self.name} does not serve {method} {path}"}
        except (_LegacyError, _ApiError) as e:
            if isinstance(e, _ApiError):
                e = _LegacyError("5500", "Invalid Parameter")
            return 200, {"status": e.status, "message": e.message}  # HTTP 200 here; ccxt reads "status"

    def _pair(self, g: dict[str, str]) -> _Market:
        return self._market(f"{g['quote'].upper()}-{g['base'].upper()}")

    def _legacy_ticker_json(self, m: _Market, now: int) -> dict[str, str]:
        t = self._ticker_json(m, now)
        return {
            "opening_price": _s(t["opening_price"]),
            "closing_price": _s(t["trade_price"]),
            "min_price": _s(t["low_price"]),
            "max_price": _s(t["high_price"]),
            "units_traded": _s(t["acc_trade_volume"]),
            "acc_trade_value": _s(t["acc_trade_price"]),
            "prev_closing_price": _s(t["prev_closing_price"]),
            "units_traded_24H": _s(t["acc_trade_volume_24h"]),
            "acc_trade_value_24H": _s(t["acc_trade_price_24h"]),
            "fluctate_24H": _s(t["signed_change_price"]),
            "fluctate_rate_24H": _s(round(100 * t["signed_change_rate"], 2)),
        }

    def _legacy_ticker_all(self, g: dict[str, str], params: dict[str, str], now: int) -> dict[str, Any]:
        quote = g["quote"].upper()
        with self._lock:
            markets = [m for m in self._markets.values() if m.quote == quote]
        data: dict[str, Any] = {m.base: self._legacy_ticker_json(m, now) for m in markets}
        data["date"] = str(now)
        return data

    def _legacy_ticker(self, g: dict[str, str], params: dict[str, str], now: int) -> dict[str, Any]:
        return {**self._legacy_ticker_json(self._pair(g), now), "date": str(now)}

    def _legacy_book(self, g: dict[str, str], params: dict[str, str], now: int) -> dict[str, Any]:
        m = self._pair(g)
        count = min(max(int(params.get("count") or 30), 1), 30)
        units = self._book_json(m, now)["orderbook_units"][:count]
        return {
            "timestamp": str(now),
            "payment_currency": m.quote,
            "order_currency": m.base,
            "bids": [{"price": _s(u["bid_price"]), "quantity": _s(u["bid_size"])} for u in units],
            "asks": [{"price": _s(u["ask_price"]), "quantity": _s(u["ask_size"])} for u in units],
        }

    def _legacy_candles(self, g: dict[str, str], params: dict[str, str], now: int) -> list[list[Any]]:
        m = self._pair(g)
        if g["interval"] not in LEGACY_INTERVALS:
            raise _LegacyError("5500", "Invalid Parameter")
        length, origin = LEGACY_INTERVALS[g["interval"]]
        win: _Bars = self._window(m, length, origin, now, now + 1, self.legacy_window)
        return [
            [int(win.ts[i]), _s(win.open[i]), _s(win.close[i]), _s(win.high[i]), _s(win.low[i]), _s(win.volume[i])]
            for i in range(len(win))
        ]
