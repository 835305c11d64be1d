"""Public market data for the live path: closed candles, order book, ticker and market rules.

Only public endpoints are called here, with the shared error policy; paper trading needs no keys.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pandas as pd

from systrade.data.download import WINDOW_PAGED, page_limit_of, window_params
from systrade.data.markets import precision_step
from systrade.exchange import RetryPolicy, TransientDataError, call_with_retry
from systrade.venues.base import MarketRules
from systrade.venues.korea import has_public_rules, public_rules, upbit_tick


def precise_amount(client: Any, symbol: str, amount: float) -> float:
    """``amount`` truncated to the market's precision; 0 when nothing is left after truncation."""
    import ccxt

    try:
        return float(client.amount_to_precision(symbol, amount))
    except ccxt.InvalidOrder:  # ccxt refuses amounts that truncate to zero
        return 0.0


class MarketData:
    """A ccxt client used for public calls only."""

    def __init__(self, client: Any, policy: RetryPolicy, overrides: dict[str, float] | None = None) -> None:
        self.client = client
        self.policy = policy
        self.overrides = overrides or {}  # [exchanges.<id>.market_rules]
        self._loaded = False
        self._ticks: dict[str, tuple[float, float]] = {}  # symbol -> (monotonic time, tick) for price-level ticks

    def _call(self, fn, what: str):
        return call_with_retry(fn, self.policy, what, venue=self.client.id)

    def _load(self) -> None:
        if not self._loaded:
            markets = self._call(self.client.load_markets, "loading markets")
            if not markets:
                raise TransientDataError("the exchange returned no markets")
            self._loaded = True

    def rules(self, symbol: str) -> MarketRules:
        self._load()
        market = self.client.market(symbol)
        limits = market.get("limits") or {}
        precision = market.get("precision") or {}
        rules = MarketRules(symbol, market["base"], market["quote"], float(market.get("taker") or 0.0),
                            (limits.get("amount") or {}).get("min"), (limits.get("cost") or {}).get("min"),
                            precision_step(self.client, precision.get("amount")),
                            precision_step(self.client, precision.get("price")))
        extra = public_rules(self.client.id, market["quote"], None, self.overrides)
        if has_public_rules(self.client.id) and "tick" not in self.overrides:
            extra["tick"] = self._tick(symbol, market)
        return replace(rules, **{k: v for k, v in extra.items() if k != "maker_fee"})

    def _tick(self, symbol: str, market: dict) -> float:
        """The market's price step now: Upbit's orderbook-instruments answer, else its table at the last price
        (asked again after a minute: the step follows the price level)."""
        cached = self._ticks.get(symbol)
        if cached is not None and time.monotonic() - cached[0] < 60:
            return cached[1]
        tick = None
        try:
            answer = self._call(lambda: self.client.public_get_orderbook_instruments({"markets": market["id"]}),
                                "fetching the price step")
            tick = float(answer[0]["tick_size"]) if answer and answer[0].get("tick_size") else None
        except Exception:  # the endpoint is new and optional: the published table stands in
            tick = None
        if tick is None:
            tick = upbit_tick(market["quote"], self.last_price(symbol))
        self._ticks[symbol] = (time.monotonic(), tick)
        return tick

    def amount_to_precision(self, symbol: str, amount: float) -> float:
        """``amount`` truncated to the market's precision (0 when nothing is left)."""
        return precise_amount(self.client, symbol, amount)

    def server_time_ms(self) -> int:
        if self.client.has.get("fetchTime"):
            value = self._call(self.client.fetch_time, "reading the server time")
            if isinstance(value, (int, float)) and value > 0:
                return int(value)
        return int(self.client.milliseconds())

    def closed_candles(self, symbol: str, timeframe: str, count: int) -> pd.DataFrame:
        """The last ``count`` closed candles (the forming one is dropped by the exchange's clock), in pages when
        more are needed than one request may ask for (Upbit: 200)."""
        tf_ms = int(self.client.parse_timeframe(timeframe) * 1000)
        limit = page_limit_of(self.client)

        def fetch(since: int | None = None, size: int = count + 1) -> list:
            params = window_params(self.client, timeframe, since, size) if since is not None else {}
            rows = self.client.fetch_ohlcv(symbol, timeframe, since=since, limit=size, params=params)
            if not isinstance(rows, list) or (not rows and since is None) or any(
                    not isinstance(r, (list, tuple)) or len(r) < 6 or any(v is None for v in r[:6]) for r in rows):
                raise TransientDataError("malformed or empty candles")
            return rows

        now = self.server_time_ms()
        if count + 1 <= limit:
            rows = self._call(fetch, f"fetching {symbol} {timeframe} candles")
        else:
            rows, cursor = [], (now // tf_ms - count) * tf_ms
            while cursor <= now:
                page = self._call(lambda c=cursor: fetch(c, limit), f"fetching {symbol} {timeframe} candles")
                rows += [r for r in page if r[0] >= cursor]
                newest = max((int(r[0]) for r in page), default=cursor + (limit - 1) * tf_ms)
                cursor = max(newest, cursor + (limit - 1) * tf_ms) + tf_ms if self.client.id in WINDOW_PAGED \
                    else newest + tf_ms
                if not page and self.client.id not in WINDOW_PAGED:
                    break
        now = self.server_time_ms()
        closed = [r for r in rows if r[0] + tf_ms <= now][-count:]
        index = pd.to_datetime([int(r[0]) for r in closed], unit="ms", utc=True).as_unit("ns").rename("time")
        frame = pd.DataFrame([[float(v) for v in r[1:6]] for r in closed], index=index,
                             columns=["open", "high", "low", "close", "volume"])
        return frame[~frame.index.duplicated(keep="last")].sort_index()

    def order_book(self, symbol: str) -> dict:
        def fetch() -> dict:
            book = self.client.fetch_order_book(symbol)
            if not isinstance(book, dict) or ("bids" not in book or "asks" not in book):
                raise TransientDataError("malformed order book")
            return book
        return self._call(fetch, f"fetching the {symbol} order book")

    def last_price(self, symbol: str) -> float:
        def fetch() -> float:
            ticker = self.client.fetch_ticker(symbol)
            price = ticker.get("last") or ticker.get("close")
            if not price:
                raise TransientDataError("ticker without a price")
            return float(price)
        return self._call(fetch, f"fetching the {symbol} ticker")

    def conversion_price(self, asset: str, quote: str) -> float | None:
        """The last price of one ``asset`` in ``quote`` (from ASSET/QUOTE, else QUOTE/ASSET inverted), or None
        when the exchange lists neither market."""
        self._load()
        markets = self.client.markets or {}
        if f"{asset}/{quote}" in markets:
            return self.last_price(f"{asset}/{quote}")
        if f"{quote}/{asset}" in markets:
            return 1.0 / self.last_price(f"{quote}/{asset}")
        return None
