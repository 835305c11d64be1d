"""Public market data for the live path: closed candles, order book, ticker and market rules.

Only public endpoints are called here, with the shared error policy; paper trading needs no keys.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from systrade.data.markets import precision_step
from systrade.exchange import RetryPolicy, TransientDataError, call_with_retry
from systrade.venues.base import MarketRules


def precise_amount(client: Any, symbol: str, amount: float) -> float:
    """``amount`` truncated to the market's precision; 0 when nothing is left after truncation."""
    import ccxt

    try:
        return float(client.amount_to_precision(symbol, amount))
    except ccxt.InvalidOrder:  # ccxt refuses amounts that truncate to zero
        return 0.0


class MarketData:
    """A ccxt client used for public calls only."""

    def __init__(self, client: Any, policy: RetryPolicy) -> None:
        self.client = client
        self.policy = policy
        self._loaded = False

    def _call(self, fn, what: str):
        return call_with_retry(fn, self.policy, what)

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
        return MarketRules(symbol, market["base"], market["quote"], float(market.get("taker") or 0.0),
                           (limits.get("amount") or {}).get("min"), (limits.get("cost") or {}).get("min"),
                           precision_step(self.client, precision.get("amount")),
                           precision_step(self.client, precision.get("price")))

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
        """The last ``count`` closed candles (the forming one is dropped by the exchange's clock)."""
        tf_ms = int(self.client.parse_timeframe(timeframe) * 1000)

        def fetch() -> list:
            rows = self.client.fetch_ohlcv(symbol, timeframe, limit=count + 1)
            if not isinstance(rows, list) or not rows or any(
                    not isinstance(r, (list, tuple)) or len(r) < 6 or any(v is None for v in r[:6]) for r in rows):
                raise TransientDataError("malformed or empty candles")
            return rows

        rows = self._call(fetch, f"fetching {symbol} {timeframe} candles")
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
