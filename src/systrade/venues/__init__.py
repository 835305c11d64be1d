"""Adapters at the edge: stock brokers (Alpaca, Korea Investment & Securities) beside the ccxt exchanges.

Each broker module offers the same three faces to the rest of systrade: a candle source for ``data download``
(``CandleSource``), public market data for the paper daemon (``LiveMarket``) and, for sandbox bots, order
placement on the broker's own paper account (``OrderGateway``). ``systrade.venues.base`` declares them.
"""

from __future__ import annotations

import importlib
from typing import Any


def _module(venue: str) -> Any:
    return importlib.import_module(f"systrade.venues.{venue}")


def candle_source(venue: str, settings: Any, policy: Any, adjustment: str = "all") -> Any:
    """The broker's ``CandleSource``."""
    return _module(venue).candle_source(settings, policy, adjustment=adjustment)


def live_market(venue: str, settings: Any, policy: Any) -> Any:
    """The broker's ``LiveMarket`` (public market data for the daemon)."""
    return _module(venue).live_market(settings, policy)


def order_gateway(venue: str, settings: Any, policy: Any) -> Any:
    """The broker's ``OrderGateway`` (orders on its paper account)."""
    return _module(venue).order_gateway(settings, policy)
