"""What every broker adapter offers: a candle source, live market data, and an order gateway.

The daemon and the downloader use these shapes only, so Alpaca and KIS plug in beside ccxt exchanges. Times
are UTC; daily candles are indexed by their session date at 00:00 UTC, intraday ones by their open time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import pandas as pd


@dataclass
class MarketRules:
    """What the exchange allows for one market."""

    symbol: str
    base: str
    quote: str
    taker_fee: float
    min_amount: float | None
    min_cost: float | None
    lot: float | None = None  # amount step
    tick: float | None = None  # price step
    sell_fee: float | None = None  # a sell's fee when it differs from a buy's (a sell-side tax), else taker_fee
    cost_step: float | None = None  # market buys are placed by cost, rounded down to this (Upbit KRW: 1)


BROKERS = ("alpaca", "kis")


def is_broker(venue: str) -> bool:
    """True for a stock broker (not a ccxt exchange id)."""
    return venue in BROKERS


class CandleSource(Protocol):
    """Historical candles of one broker, for ``systrade data download``."""

    venue: str
    adjustment: str  # what the prices are: "all" (split- and dividend-adjusted) or "raw"

    def check(self, symbol: str, timeframe: str) -> None:
        """Raise ``UserError`` for a symbol the broker does not list or a timeframe it does not serve."""

    def candles(self, symbol: str, timeframe: str, start: pd.Timestamp, end: pd.Timestamp,
                on_page: Callable[[int], None] | None = None) -> pd.DataFrame:
        """Every closed candle with an open time in ``[start, end)``, as the store's frame (float OHLCV, UTC
        ``time`` index, sorted, unique), fetched page by page under the retry policy; ``on_page(rows)`` after each
        page."""

    def market(self, symbol: str) -> dict:
        """The market's rules as ``data.markets`` saves them (lot, tick, min_amount, min_cost, taker_fee,
        maker_fee, base, quote)."""


class LiveMarket(Protocol):
    """Public market data for the paper daemon (the same calls ``systrade.live.market.MarketData`` answers)."""

    def rules(self, symbol: str) -> MarketRules: ...
    def amount_to_precision(self, symbol: str, amount: float) -> float: ...
    def server_time_ms(self) -> int: ...
    # optional: ``market_open() -> bool`` from the broker's own clock (else the calendar at ``server_time_ms``)
    def closed_candles(self, symbol: str, timeframe: str, count: int) -> pd.DataFrame: ...
    def order_book(self, symbol: str) -> dict: ...  # {"bids": [[price, size]], "asks": [[price, size]]}
    def last_price(self, symbol: str) -> float: ...
    def conversion_price(self, asset: str, quote: str) -> float | None: ...


@dataclass
class BrokerOrder:
    """A broker's view of one order: it may fill later and in parts."""

    client_order_id: str
    status: str  # submitted | partially_filled | filled | cancelled | rejected
    filled: float = 0.0  # shares filled so far
    average_price: float | None = None  # of the filled shares
    fee: float = 0.0  # fees and taxes charged so far, in the quote currency
    reason: str = ""
    broker_order_id: str | None = None

    @property
    def open(self) -> bool:
        return self.status in ("submitted", "partially_filled")


@dataclass(frozen=True)
class OrderIntent:
    """One order as the ledger wrote it before sending: enough to send it, and to find it again after a crash."""

    client_order_id: str
    symbol: str
    side: str  # buy | sell
    amount: float  # shares
    created: datetime  # when the intent was written (UTC): a broker without client ids matches orders after it
    broker_order_id: str | None = None  # known once the broker answered
    claimed: frozenset[str] = frozenset()  # broker order ids other ledger orders own (never matched to this one)


class OrderGateway(Protocol):
    """Market orders on the broker's paper account, never sent twice for one intent."""

    def submit(self, intent: OrderIntent) -> BrokerOrder:
        """Send a market day order unless the broker already has it (``lookup`` first); the broker's answer.
        Raises ``BrokerMarketClosed`` when the broker refuses orders outside the session."""

    def lookup(self, intent: OrderIntent) -> BrokerOrder | None:
        """The broker's record of the order (by client order id, or by broker order id, or for a broker without
        client ids by matching the day's orders after ``created``), or None when it never arrived."""

    def position(self, symbol: str) -> float:
        """Shares held on the broker's account."""

    def cash(self) -> float:
        """Cash on the broker's account, in its quote currency."""
