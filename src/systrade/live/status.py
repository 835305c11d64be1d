"""What `systrade paper status` and `paper trades` report, read from the ledger."""

from __future__ import annotations

from typing import Any

from systrade.live.ledger import Ledger, as_utc


def _iso(value) -> str | None:
    value = as_utc(value)
    return value.isoformat() if value is not None else None


def status(ledger: Ledger, quote: str, prices: dict[str, float]) -> dict[str, Any]:
    """Equity, cash, balances and bots. Positions are valued at ``prices`` (symbol -> last price)."""
    balances = ledger.balances()
    bots = ledger.bots()
    equity = balances.get(quote, 0.0)
    for bot in bots:
        equity += bot.position * prices.get(bot.symbol, 0.0)
    return {
        "equity": equity,
        "cash": balances.get(quote, 0.0),
        "balances": balances,
        "bots": [{"name": b.name, "strategy": b.strategy, "exchange": b.exchange, "symbol": b.symbol,
                  "timeframe": b.timeframe, "position": b.position, "last_bar": _iso(b.last_bar),
                  "halted": bool(b.halted), "halted_reason": b.halted_reason} for b in bots],
    }


def trades(ledger: Ledger) -> list[dict[str, Any]]:
    """Every fill, oldest first."""
    return [{"bot": f.bot, "symbol": f.symbol, "side": f.side, "amount": f.amount, "price": f.price, "fee": f.fee,
             "fee_currency": f.fee_currency, "bar_time": _iso(f.bar_time), "client_order_id": f.client_order_id,
             "time": _iso(f.time)} for f in ledger.fills()]


def last_prices(ledger: Ledger) -> dict[str, float]:
    """Each symbol's most recent fill price (valuation when the exchange is not asked)."""
    prices: dict[str, float] = {}
    for fill in ledger.fills():
        prices[fill.symbol] = fill.price
    return prices
