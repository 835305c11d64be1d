"""Adapters at the edge: stock brokers (Alpaca, Korea Investment & Securities) beside the ccxt exchanges.

Each broker module offers the same three faces to the rest of systrade: a candle source for ``data download``
(``CandleSource``), public market data for the paper daemon (``LiveMarket``) and, for sandbox bots, order
placement on the broker's own paper account (``OrderGateway``). ``systrade.venues.base`` declares them.
"""
