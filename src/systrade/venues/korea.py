"""Upbit's public trading rules, which ccxt does not carry: minimum order value, fees and price ticks.

ccxt describes every Upbit market with a price precision of 1e-8 and no minimum, but Upbit refuses orders
under 5,000 KRW on KRW markets and prices off its tick grid, whose step depends on the price level. These
rules are published (docs.upbit.com: "원화(KRW) 마켓 주문 가격 단위 / 최소 주문 가능 금액", and the BTC and USDT
market pages), so paper trading and backtests apply them without calling a private endpoint. The live tick
comes from Upbit's public orderbook-instruments endpoint when it answers; the table below is the fallback and
what backtests use. Any of them can be overridden in ``[exchanges.upbit.market_rules]``.
"""

from __future__ import annotations

from typing import Any

MIN_ORDER = {"KRW": 5_000.0, "BTC": 0.00005, "USDT": 0.5}  # minimum order value per quote currency
FEES = {"KRW": 0.0005, "BTC": 0.0025, "USDT": 0.0025}  # the published base trading fee per quote currency

# KRW ticks by price level (from 31 July 2025; levels under 100 KRW as published before that change).
KRW_TICKS = ((1_000_000, 1_000.0), (500_000, 500.0), (100_000, 100.0), (50_000, 50.0), (10_000, 10.0),
             (5_000, 5.0), (100, 1.0), (10, 0.01), (1, 0.001), (0.1, 0.0001), (0.01, 0.00001),
             (0.001, 0.000001), (0.0001, 0.0000001))
USDT_TICKS = ((10, 0.01), (1, 0.001), (0.1, 0.0001), (0.01, 0.00001), (0.001, 0.000001), (0.0001, 0.0000001))
SMALLEST_TICK = 0.00000001


def upbit_tick(quote: str, price: float) -> float:
    """The price step of an Upbit market quoted in ``quote`` at ``price`` (BTC markets: one step)."""
    table = {"KRW": KRW_TICKS, "USDT": USDT_TICKS}.get(quote)
    if table is None:
        return SMALLEST_TICK
    return next((tick for level, tick in table if price >= level), SMALLEST_TICK)


def has_public_rules(exchange_id: str) -> bool:
    return exchange_id == "upbit"


def public_rules(exchange_id: str, quote: str, price: float | None,
                 overrides: dict[str, Any] | None = None) -> dict[str, float]:
    """The rules systrade knows for a market of ``exchange_id`` beyond ccxt's (Upbit's minimum, fees, and the
    tick at ``price``), with the user's ``[exchanges.<id>.market_rules]`` on top; empty for other exchanges."""
    rules: dict[str, float] = {}
    if has_public_rules(exchange_id):
        if quote in MIN_ORDER:
            rules["min_cost"] = MIN_ORDER[quote]
        if quote in FEES:
            rules["taker_fee"] = rules["maker_fee"] = FEES[quote]
        if quote == "KRW":
            rules["cost_step"] = 1.0  # a market buy is placed by its KRW value, in whole won
        if price:
            rules["tick"] = upbit_tick(quote, price)
    for key, value in (overrides or {}).items():
        if value is not None:
            rules[key] = float(value)
    return rules
