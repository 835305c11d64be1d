"""Alpaca (US stocks and ETFs) through alpaca-py: candles, live market data and paper orders.

The rest of systrade calls only the three factories ``candle_source``, ``live_market`` and ``order_gateway``.

How alpaca-py is used
---------------------
* Clients: ``TradingClient(paper=True, url_override=trading_url)`` and
  ``StockHistoricalDataClient(url_override=data_url)``, both with ``raw_data=True`` (answers are Alpaca's JSON
  dicts, so a field Alpaca adds or drops cannot break a pydantic model here).
* Retries: alpaca-py 0.44 retries 429 and 504 itself (``RESTClient._retry`` = 3 attempts, 3 s apart; this version
  reads no ``APCA_RETRY_*`` variables). We set ``_retry = 0`` and ``_retry_codes = []`` on both clients, so one
  call is one HTTP request and ``call_with_retry`` is the only retry loop.
* Timeouts: alpaca-py passes no timeout to its ``requests.Session``; we replace the session by one that adds
  ``timeout=settings.brokers.alpaca.timeout`` to every request.
* Bars: ``StockHistoricalDataClient.get_stock_bars`` walks every ``next_page_token`` inside one call, so a fault
  on page 7 would repeat pages 1-6. We call its REST layer (``client.get("/stocks/bars", params)``) one page at a
  time instead, each page under the retry policy with its own ``page_token``.

Errors: connection errors, timeouts and 5xx -> ``BrokerRetryable``; 429 -> ``BrokerRateLimited``; 401/403 ->
``BrokerAuthError``; 404/422 on assets or bars -> ``BrokerBadSymbol``; other 4xx -> ``BrokerError``. Every
message passes through ``redact`` (keys travel in headers only, never in URLs or messages).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any

import pandas as pd
import requests

from systrade.config import Settings
from systrade.errors import UserError
from systrade.exchange import RetryPolicy, call_with_retry, redact
from systrade.venues.base import BrokerOrder, MarketRules, OrderIntent
from systrade.venues.errors import (
    BrokerAuthError,
    BrokerBadSymbol,
    BrokerError,
    BrokerRateLimited,
    BrokerRetryable,
)

VENUE = "alpaca"
KEY_ENV = "SYSTRADE_ALPACA_API_KEY"
SECRET_ENV = "SYSTRADE_ALPACA_SECRET"
NEW_YORK = "America/New_York"
# systrade timeframe -> (Alpaca's timeframe string, bar length)
TIMEFRAMES: dict[str, tuple[str, pd.Timedelta]] = {
    "1m": ("1Min", pd.Timedelta(minutes=1)),
    "5m": ("5Min", pd.Timedelta(minutes=5)),
    "15m": ("15Min", pd.Timedelta(minutes=15)),
    "30m": ("30Min", pd.Timedelta(minutes=30)),
    "1h": ("1Hour", pd.Timedelta(hours=1)),
    "1d": ("1Day", pd.Timedelta(days=1)),
}
PAGE_LIMIT = 10_000  # Alpaca's maximum bars per page
COLUMNS = ["open", "high", "low", "close", "volume"]
STATUSES = {
    **dict.fromkeys(("new", "accepted", "pending_new", "accepted_for_bidding", "pending_replace", "replaced",
                     "calculated", "held", "pending_cancel"), "submitted"),
    "partially_filled": "partially_filled",
    "filled": "filled",
    **dict.fromkeys(("canceled", "expired", "done_for_day", "stopped"), "cancelled"),
    **dict.fromkeys(("rejected", "suspended"), "rejected"),
}
DUPLICATE_CLIENT_ID = 40010001  # Alpaca's code for "client_order_id must be unique"


# ------------------------------------------------------------------ clients, errors


class _TimeoutSession(requests.Session):
    """A session that gives every request a timeout (alpaca-py sets none)."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs.setdefault("timeout", self.timeout)
        return super().request(method, url, *args, **kwargs)


def _keys() -> tuple[str, str]:
    key, secret = os.environ.get(KEY_ENV, "").strip(), os.environ.get(SECRET_ENV, "").strip()
    if not key or not secret:
        raise UserError(f"Alpaca needs API keys: set {KEY_ENV} and {SECRET_ENV} in the environment (Alpaca's "
                        "market data needs keys too; free paper-account keys from https://app.alpaca.markets)")
    return key, secret


def _quiet(client: Any, timeout: float) -> Any:
    """No retries of alpaca-py's own, and a timeout on every request."""
    client._retry = 0
    client._retry_codes = []
    client._session = _TimeoutSession(timeout)
    return client


def _trading_client(settings: Settings) -> Any:
    from alpaca.trading.client import TradingClient

    key, secret = _keys()
    cfg = settings.brokers.alpaca
    return _quiet(TradingClient(api_key=key, secret_key=secret, paper=True, raw_data=True,
                                url_override=cfg.trading_url.rstrip("/")), cfg.timeout)


def _data_client(settings: Settings) -> Any:
    from alpaca.data.historical import StockHistoricalDataClient

    key, secret = _keys()
    cfg = settings.brokers.alpaca
    return _quiet(StockHistoricalDataClient(api_key=key, secret_key=secret, raw_data=True,
                                            url_override=cfg.data_url.rstrip("/")), cfg.timeout)


def _classify(error: Exception, what: str, symbol_call: bool = False) -> Exception:
    """Our broker error for an alpaca-py / requests error (the message redacted)."""
    from alpaca.common.exceptions import APIError

    if isinstance(error, APIError):
        status = error.status_code
        body = " ".join(str(error).split())[:300]
        text = redact(f"alpaca {what}: HTTP {status}: {body}")
        if status == 429:
            retry_after = None
            response = error.response
            if response is not None and response.headers.get("Retry-After"):
                try:
                    retry_after = float(response.headers["Retry-After"])
                except ValueError:
                    retry_after = None
            return BrokerRateLimited(text, retry_after)
        if status is None or status >= 500:
            return BrokerRetryable(text)
        if status in (401, 403):
            return BrokerAuthError(text)
        result: BrokerError = BrokerBadSymbol(text) if symbol_call and status in (404, 422) else BrokerError(text)
        result.status = status  # type: ignore[attr-defined]
        try:
            result.code = error.code  # type: ignore[attr-defined]
        except Exception:  # body not JSON, or without a code
            result.code = None  # type: ignore[attr-defined]
        return result
    if isinstance(error, (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
                          requests.exceptions.ContentDecodingError, requests.JSONDecodeError)):
        return BrokerRetryable(redact(f"alpaca {what}: {type(error).__name__}: {' '.join(str(error).split())}"))
    return error


def _call(fn: Callable[[], Any], what: str, symbol_call: bool = False) -> Any:
    """One HTTP call, its errors classified."""
    try:
        return fn()
    except Exception as error:
        mapped = _classify(error, what, symbol_call)
        if mapped is error:
            raise
        raise mapped from None


def _status(error: BaseException) -> int | None:
    return getattr(error, "status", None)


def _utc(value: Any) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _rfc3339(stamp: pd.Timestamp) -> str:
    return _utc(stamp).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_timeframe(timeframe: str) -> tuple[str, pd.Timedelta]:
    if timeframe not in TIMEFRAMES:
        raise UserError(f"alpaca has no timeframe {timeframe!r}; valid: {', '.join(TIMEFRAMES)}")
    return TIMEFRAMES[timeframe]


def _float(value: Any, default: float | None = None) -> float | None:
    if value is None or value == "":
        return default
    return float(value)


@dataclass
class _Clock:
    now: pd.Timestamp
    is_open: bool
    next_open: pd.Timestamp | None


def _empty_frame() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype="float64") for c in COLUMNS},
                         index=pd.DatetimeIndex([], tz="UTC", name="time"))
    return frame


# ------------------------------------------------------------------ shared reads


@dataclass
class _Alpaca:
    """What the three adapters share: settings, policy and lazily built clients."""

    settings: Settings
    policy: RetryPolicy
    _trading: Any = None
    _data: Any = None
    _assets: dict[str, dict] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _keys()  # refuse at once, before any request

    @property
    def cfg(self) -> Any:
        return self.settings.brokers.alpaca

    @property
    def trading(self) -> Any:
        if self._trading is None:
            self._trading = _trading_client(self.settings)
        return self._trading

    @property
    def data(self) -> Any:
        if self._data is None:
            self._data = _data_client(self.settings)
        return self._data

    def retry(self, fn: Callable[[], Any], what: str, symbol_call: bool = False) -> Any:
        return call_with_retry(lambda: _call(fn, what, symbol_call), self.policy, f"alpaca {what}")

    def asset(self, symbol: str) -> dict:
        """The asset record (cached), ``BrokerBadSymbol`` when Alpaca does not know it."""
        if symbol not in self._assets:
            self._assets[symbol] = self.retry(lambda: self.trading.get_asset(symbol), f"asset {symbol}", True)
        return self._assets[symbol]

    def checked_asset(self, symbol: str) -> dict:
        """The asset, or ``UserError`` when Alpaca has none (or it cannot be traded)."""
        try:
            asset = self.asset(symbol)
        except BrokerBadSymbol:
            raise UserError(f"alpaca has no asset {symbol!r}; use its ticker as Alpaca lists it (e.g. AAPL, "
                            "BRK.B)") from None
        if not asset.get("tradable", False):
            raise UserError(f"alpaca has no asset {symbol!r} that can be traded (it is listed but not tradable)")
        return asset

    def clock(self) -> _Clock:
        raw = self.retry(self.trading.get_clock, "clock")
        return _Clock(_utc(raw["timestamp"]), bool(raw.get("is_open")),
                      _utc(raw["next_open"]) if raw.get("next_open") else None)

    def market_values(self, symbol: str) -> dict:
        asset = self.checked_asset(symbol)
        fractional = bool(asset.get("fractionable"))
        lot = _float(asset.get("min_trade_increment"), 1.0) if fractional else 1.0
        return {
            "lot": lot,
            "tick": _float(asset.get("price_increment"), 0.01),
            "min_amount": _float(asset.get("min_order_size"), lot) if fractional else 1.0,
            "min_cost": 1.0 if fractional else None,
        }

    def bars(self, symbol: str, timeframe: str, start: pd.Timestamp, end: pd.Timestamp, adjustment: str,
             on_page: Callable[[int], None] | None = None) -> pd.DataFrame:
        """Bars with open time in [start, end), closed by the server clock, page by page under the retry policy."""
        name, length = _check_timeframe(timeframe)
        start, end = _utc(start), _utc(end)
        if end <= start:
            return _empty_frame()
        daily = timeframe == "1d"
        params: dict[str, Any] = {"symbols": symbol, "timeframe": name, "start": _rfc3339(start),
                                  "end": _rfc3339(end), "limit": PAGE_LIMIT, "feed": self.cfg.feed,
                                  "adjustment": adjustment, "sort": "asc"}
        rows: list[dict] = []
        token: str | None = None
        page = 0
        while True:
            page_params = {**params, **({"page_token": token} if token else {})}
            page += 1
            answer = self.retry(lambda p=page_params: self.data.get("/stocks/bars", p),
                                f"bars {symbol} {timeframe} page {page}", True)
            got = ((answer or {}).get("bars") or {}).get(symbol) or []
            rows.extend(got)
            if on_page is not None:
                on_page(len(got))
            token = (answer or {}).get("next_page_token")
            if not token:
                break
        frame = self._frame(rows, daily)
        frame = frame[(frame.index >= start) & (frame.index < end)]
        return self._closed(frame, length, daily)

    @staticmethod
    def _frame(rows: list[dict], daily: bool) -> pd.DataFrame:
        if not rows:
            return _empty_frame()
        times = pd.DatetimeIndex([_utc(r["t"]) for r in rows])
        if daily:  # stamped at midnight New York: the session date at 00:00 UTC
            times = pd.DatetimeIndex(times.tz_convert(NEW_YORK).tz_localize(None).normalize()).tz_localize("UTC")
        frame = pd.DataFrame({"open": [r["o"] for r in rows], "high": [r["h"] for r in rows],
                              "low": [r["l"] for r in rows], "close": [r["c"] for r in rows],
                              "volume": [r["v"] for r in rows]}, index=times, dtype="float64")
        frame.index.name = "time"
        frame = frame[~frame.index.duplicated(keep="last")].sort_index()
        return frame

    def _closed(self, frame: pd.DataFrame, length: pd.Timedelta, daily: bool) -> pd.DataFrame:
        """Only bars whose close has passed by the server clock."""
        if frame.empty:
            return frame
        clock = self.clock()
        if not daily:
            return frame[frame.index + length <= clock.now]
        today = pd.Timestamp(clock.now.tz_convert(NEW_YORK).date(), tz="UTC")
        session_over = (not clock.is_open and clock.next_open is not None
                        and clock.next_open.tz_convert(NEW_YORK).normalize().tz_localize(None)
                        > today.tz_localize(None))
        keep = (frame.index < today) | ((frame.index == today) & session_over)
        return frame[keep]


# ------------------------------------------------------------------ candles


class AlpacaCandles(_Alpaca):
    """Historical candles (``CandleSource``) of Alpaca's market data API."""

    venue = VENUE

    def __init__(self, settings: Settings, policy: RetryPolicy, adjustment: str = "all") -> None:
        super().__init__(settings, policy)
        if adjustment not in ("all", "raw"):
            raise UserError(f"alpaca adjustment must be 'all' or 'raw', not {adjustment!r}")
        self.adjustment = adjustment

    def check(self, symbol: str, timeframe: str) -> None:
        _check_timeframe(timeframe)
        self.checked_asset(symbol)

    def candles(self, symbol: str, timeframe: str, start: pd.Timestamp, end: pd.Timestamp,
                on_page: Callable[[int], None] | None = None) -> pd.DataFrame:
        return self.bars(symbol, timeframe, start, end, self.adjustment, on_page)

    def market(self, symbol: str) -> dict:
        values = self.market_values(symbol)
        return {"exchange": VENUE, "symbol": symbol, "base": symbol, "quote": "USD", **values,
                "taker_fee": self.cfg.fees, "maker_fee": self.cfg.fees}


# ------------------------------------------------------------------ live market


class AlpacaMarket(_Alpaca):
    """Live market data (``LiveMarket``) for the paper daemon."""

    def __init__(self, settings: Settings, policy: RetryPolicy) -> None:
        super().__init__(settings, policy)
        self._rules: dict[str, MarketRules] = {}

    def rules(self, symbol: str) -> MarketRules:
        if symbol not in self._rules:
            v = self.market_values(symbol)
            self._rules[symbol] = MarketRules(symbol, base=symbol, quote="USD", taker_fee=self.cfg.fees,
                                              min_amount=v["min_amount"], min_cost=v["min_cost"], lot=v["lot"],
                                              tick=v["tick"], sell_fee=self.cfg.fees + self.cfg.sell_fees)
        return self._rules[symbol]

    def amount_to_precision(self, symbol: str, amount: float) -> float:
        lot = Decimal(str(self.rules(symbol).lot or 1.0))
        steps = (Decimal(str(amount)) / lot).to_integral_value(rounding=ROUND_DOWN)
        return float(steps * lot)

    def server_time_ms(self) -> int:
        return int(self.clock().now.value // 1_000_000)

    def market_open(self) -> bool:
        """Whether the market trades now, by Alpaca's clock (holidays and early closes included)."""
        return self.clock().is_open

    def closed_candles(self, symbol: str, timeframe: str, count: int) -> pd.DataFrame:
        """The last ``count`` closed candles: a window of calendar time wide enough for ``count`` bars (sessions
        are 6.5 hours, 5 days a week, and the IEX feed skips quiet minutes), doubled until it holds them (up to
        about 30 years back)."""
        _, length = _check_timeframe(timeframe)
        if count <= 0:
            return _empty_frame()
        end = self.clock().now
        if timeframe == "1d":
            end = pd.Timestamp(end.tz_convert(NEW_YORK).date(), tz="UTC") + pd.Timedelta(days=1)
            span = pd.Timedelta(days=math.ceil(count * 7 / 5) + 10)
        else:
            per_session = max(1, int(pd.Timedelta(hours=6.5) / length))
            span = pd.Timedelta(days=math.ceil(count / per_session * 7 / 5 * 1.5) + 4)
        while True:
            frame = self.bars(symbol, timeframe, end - span, end, "all")
            if len(frame) >= count or span > pd.Timedelta(days=366 * 30):
                return frame.iloc[-count:]
            span = span * 2

    def _latest(self, kind: str, symbol: str) -> dict | None:
        answer = self.retry(lambda: self.data.get(f"/stocks/{kind}s/latest",
                                                  {"symbols": symbol, "feed": self.cfg.feed}),
                            f"latest {kind} {symbol}", True)
        return ((answer or {}).get(f"{kind}s") or {}).get(symbol)

    def order_book(self, symbol: str) -> dict:
        quote = self._latest("quote", symbol) or {}

        def side(price_key: str, size_key: str) -> list[list[float]]:
            price = _float(quote.get(price_key), 0.0) or 0.0
            return [[price, _float(quote.get(size_key), 0.0) or 0.0]] if price > 0 else []

        return {"bids": side("bp", "bs"), "asks": side("ap", "as")}

    def last_price(self, symbol: str) -> float:
        trade = self._latest("trade", symbol)
        if not trade or not trade.get("p"):
            raise BrokerError(f"alpaca has no last trade for {symbol!r}")
        return float(trade["p"])

    def conversion_price(self, asset: str, quote: str) -> float | None:
        return None


# ------------------------------------------------------------------ orders


class AlpacaOrders(_Alpaca):
    """Market day orders on the Alpaca paper account (``OrderGateway``), never sent twice for one intent."""

    def lookup(self, intent: OrderIntent) -> BrokerOrder | None:
        try:
            raw = self.retry(lambda: self.trading.get_order_by_client_id(intent.client_order_id),
                             f"order {intent.client_order_id}")
        except BrokerError as error:
            if _status(error) == 404:
                return None
            raise
        return self._order(raw, intent)

    def submit(self, intent: OrderIntent) -> BrokerOrder:
        """Look the order up; only when the broker has none, send it once. A send whose answer is lost (a
        retryable error) is looked up once more: the broker's order when it has it, else the retryable error is
        raised again (the caller's next ``submit`` looks up before sending)."""
        found = self.lookup(intent)
        if found is not None:
            return found
        try:
            raw = _call(lambda: self.trading.submit_order(self._request(intent)), f"order {intent.client_order_id}")
        except BrokerRetryable:
            try:
                found = self.lookup(intent)
            except (BrokerRetryable, BrokerError):
                found = None
            if found is not None:
                return found
            raise
        except BrokerError as error:
            if _status(error) == 422 and (getattr(error, "code", None) == DUPLICATE_CLIENT_ID
                                          or "must be unique" in str(error)):
                found = self.lookup(intent)
                if found is not None:
                    return found
            raise
        return self._order(raw, intent)

    @staticmethod
    def _request(intent: OrderIntent) -> Any:
        from alpaca.trading.enums import OrderSide, TimeInForce
        from alpaca.trading.requests import MarketOrderRequest

        if intent.side not in ("buy", "sell"):
            raise BrokerError(f"order side must be buy or sell, not {intent.side!r}")
        return MarketOrderRequest(symbol=intent.symbol, qty=float(intent.amount),
                                  side=OrderSide.BUY if intent.side == "buy" else OrderSide.SELL,
                                  time_in_force=TimeInForce.DAY, client_order_id=intent.client_order_id)

    def _order(self, raw: dict, intent: OrderIntent) -> BrokerOrder:
        status = str(raw.get("status") or "")
        filled = _float(raw.get("filled_qty"), 0.0) or 0.0
        average = _float(raw.get("filled_avg_price"))
        side = str(raw.get("side") or intent.side)
        fee = self.cfg.sell_fees * filled * average if side == "sell" and average is not None else 0.0
        mapped = STATUSES.get(status)
        reason = "" if mapped in ("submitted", "partially_filled", "filled") else f"alpaca status {status!r}"
        return BrokerOrder(client_order_id=str(raw.get("client_order_id") or intent.client_order_id),
                           status=mapped or "submitted", filled=filled, average_price=average, fee=fee,
                           reason=reason,
                           broker_order_id=str(raw["id"]) if raw.get("id") else None)

    def position(self, symbol: str) -> float:
        try:
            raw = self.retry(lambda: self.trading.get_open_position(symbol), f"position {symbol}")
        except BrokerError as error:
            if _status(error) == 404:
                return 0.0
            raise
        return float(raw.get("qty") or 0.0)

    def cash(self) -> float:
        raw = self.retry(self.trading.get_account, "account")
        return float(raw["cash"])


# ------------------------------------------------------------------ factories


def candle_source(settings: Settings, policy: RetryPolicy, adjustment: str = "all") -> AlpacaCandles:
    """Alpaca's historical candles; ``adjustment`` "all" (split- and dividend-adjusted) or "raw"."""
    return AlpacaCandles(settings, policy, adjustment)


def live_market(settings: Settings, policy: RetryPolicy) -> AlpacaMarket:
    """Alpaca's live market data for the paper daemon."""
    return AlpacaMarket(settings, policy)


def order_gateway(settings: Settings, policy: RetryPolicy) -> AlpacaOrders:
    """Market day orders on Alpaca's paper account."""
    return AlpacaOrders(settings, policy)
