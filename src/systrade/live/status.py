"""What `systrade paper status` and `paper trades` report, read from the ledger."""

from __future__ import annotations

from typing import Any

from systrade.config import BROKER_QUOTES, bot_quote
from systrade.live.ledger import Fill, Ledger, as_utc, group_of

NEGATIVE = -1e-12  # a balance below this is reported as negative (float dust is not)


def _iso(value) -> str | None:
    value = as_utc(value)
    return value.isoformat() if value is not None else None


def status(ledger: Ledger, quote: str, prices: dict[str, float]) -> dict[str, Any]:
    """The account (equity, cash, balances) and every bot's capital, cash, equity, profit and fees.

    ``prices`` (symbol -> last price) values positions; the account's equity values every other balance it
    has a price for in ``quote`` and lists the assets it could not value. A negative balance (a fee paid in a
    currency the paper account did not hold) is listed in ``negative_balances``.
    """
    balances = ledger.balances()
    fills = ledger.fills()
    refused = {o.bot: {"time": _iso(o.created), "status": o.status, "reason": o.reason or ""}
               for o in ledger.orders() if o.status in ("rejected", "skipped")}  # each bot's last, by order id
    stocks = {bot.symbol: BROKER_QUOTES[bot.exchange] for bot in ledger.bots() if bot.exchange in BROKER_QUOTES}
    asset_prices = _asset_prices(fills, prices, quote, stocks)
    equity, unvalued = balances.get(quote, 0.0), []
    for asset, amount in balances.items():
        if asset == quote or amount == 0:
            continue
        if asset in asset_prices:
            equity += amount * asset_prices[asset]
        else:
            unvalued.append(asset)
    return {
        "equity": equity,
        "cash": balances.get(quote, 0.0),
        "balances": balances,
        "negative_balances": {asset: amount for asset, amount in balances.items() if amount < NEGATIVE},
        "unvalued": unvalued,
        "bots": _bots(ledger.bots(), fills, prices, refused),
    }


def _bots(rows: list, fills: list[Fill], prices: dict[str, float], refused: dict) -> list[dict[str, Any]]:
    """Every bot's row; a bot trading several symbols is one row whose ``positions`` lists its legs (its ledger's
    ``bot:SYMBOL`` rows), valued together with its one cash."""
    legs: dict[str, list] = {}
    for row in rows:
        group = group_of(row.name)
        if group is not None:
            legs.setdefault(group, []).append(row)
    out = []
    for row in rows:
        if group_of(row.name) is not None:
            continue
        if row.name in legs:
            out.append(_group(row, legs[row.name], fills, prices, refused))
        else:
            entry = _bot(row, fills, prices, refused.get(row.name))
            entry["symbols"] = [row.symbol]
            entry["positions"] = [_position(row, prices)]
            out.append(entry)
    return out


def _position(row, prices: dict[str, float]) -> dict[str, Any]:
    price = prices.get(row.symbol)
    value = 0.0 if row.position == 0 else (row.position * price if price is not None else None)
    return {"symbol": row.symbol, "position": row.position, "entry_price": row.entry_price, "price": price,
            "value": value, "last_bar": _iso(row.last_bar)}


def _group(bot, legs: list, fills: list[Fill], prices: dict[str, float], refused: dict) -> dict[str, Any]:
    """A several-symbol bot: its capital and cash (its own row), each leg's position, and its P&L as a whole."""
    names = {bot.name, *(leg.name for leg in legs)}
    positions = [_position(leg, prices) for leg in legs]
    values = [p["value"] for p in positions]
    equity = bot.cash + sum(values) if bot.cash is not None and None not in values else None
    rejections = [refused[n] for n in names if n in refused]
    last_bars = [as_utc(leg.last_bar) for leg in legs if leg.last_bar is not None]
    return {"name": bot.name, "strategy": bot.strategy, "exchange": bot.exchange, "symbol": bot.symbol,
            "quote": bot_quote(bot.exchange, legs[0].symbol), "timeframe": bot.timeframe, "position": None,
            "last_bar": _iso(max(last_bars)) if last_bars else None, "halted": bool(bot.halted),
            "halted_reason": bot.halted_reason, "capital": bot.capital, "cash": bot.cash, "equity": equity,
            "pnl": equity - bot.capital if equity is not None and bot.capital is not None else None,
            "fees": sum(_fee_in_quote(f) for f in fills if f.bot in names),
            "last_rejection": max(rejections, key=lambda r: r["time"] or "") if rejections else None,
            "symbols": [leg.symbol for leg in legs], "positions": positions}


def _bot(bot, fills: list[Fill], prices: dict[str, float], last_rejection: dict | None = None) -> dict[str, Any]:
    """One bot's row: its own money in its quote currency (capital, cash, equity, pnl, fees); None where the ledger
    does not know it yet (a ledger from before per-bot capital, upgraded when the daemon next starts)."""
    price = prices.get(bot.symbol)
    capital, cash = bot.capital, bot.cash
    if cash is None:
        equity = None
    elif bot.position == 0:
        equity = cash
    else:
        equity = cash + bot.position * price if price is not None else None
    quote = bot_quote(bot.exchange, bot.symbol)
    return {"name": bot.name, "strategy": bot.strategy, "exchange": bot.exchange, "symbol": bot.symbol,
            "quote": quote,
            "timeframe": bot.timeframe, "position": bot.position, "last_bar": _iso(bot.last_bar),
            "halted": bool(bot.halted), "halted_reason": bot.halted_reason, "capital": capital, "cash": cash,
            "equity": equity, "pnl": equity - capital if equity is not None and capital is not None else None,
            "fees": sum(_fee_in_quote(f) for f in fills if f.bot == bot.name), "last_rejection": last_rejection}


def _fee_in_quote(fill: Fill) -> float:
    """A fill's fee in its quote currency: as stored at fill time, else (older ledgers) worked out when it can be."""
    if fill.fee_quote is not None:
        return fill.fee_quote
    base, _, rest = fill.symbol.partition("/")
    if fill.fee_currency == rest.split(":", 1)[0]:
        return fill.fee
    return fill.fee * fill.price if fill.fee_currency == base else 0.0


def _asset_prices(fills: list[Fill], prices: dict[str, float], quote: str,
                  stocks: dict[str, str] | None = None) -> dict[str, float]:
    """Prices in ``quote`` that the ledger knows: ASSET/QUOTE symbols' last prices, a stock broker's symbols'
    (``stocks``: symbol -> its currency) and fee currencies' values at their latest fill (fee_quote / fee)."""
    known: dict[str, float] = {}
    for fill in fills:
        base, _, rest = fill.symbol.partition("/")
        if rest.split(":", 1)[0] == quote and fill.fee_currency not in (base, quote) and fill.fee and fill.fee_quote:
            known[fill.fee_currency] = fill.fee_quote / fill.fee
    for symbol, price in prices.items():
        base, _, rest = symbol.partition("/")
        if rest.split(":", 1)[0] == quote or (stocks or {}).get(symbol) == quote:
            known[base] = price
    return known


def exit_reason(action: str, reason: str | None) -> str | None:
    """Why an order of the ledger ended a position, as the backtest says it (``EXIT_REASON_OF_KIND``): ``signal``
    (an exit signal's close), ``reverse``, ``stop_loss`` or ``take_profit`` (a stop order, whose reason is its
    kind); None for an order that opens a position."""
    from systrade.sim.kernel import EXIT_REASON_OF_KIND  # numba: only when trades are listed, not for `status`

    return EXIT_REASON_OF_KIND.get(reason if action == "stop" else action)


def trades(ledger: Ledger) -> list[dict[str, Any]]:
    """Every fill, oldest first, with the order's ``action`` and, for a fill that ends a position, its
    ``exit_reason`` (null for a fill that opens one)."""
    orders = {o.client_order_id: (o.action, o.reason) for o in ledger.orders()}
    rows = []
    for f in ledger.fills():
        action, reason = orders.get(f.client_order_id, ("", ""))
        rows.append({"bot": group_of(f.bot) or f.bot, "symbol": f.symbol, "side": f.side, "amount": f.amount,
                     "price": f.price,
                     "fee": f.fee, "fee_currency": f.fee_currency, "fee_quote": _fee_in_quote(f),
                     "bar_time": _iso(f.bar_time), "client_order_id": f.client_order_id, "time": _iso(f.time),
                     "action": action, "exit_reason": exit_reason(action, reason)})
    return rows


ORDER_STATUS = {"intent": "pending"}  # the ledger's word -> the listing's (an intent is an order not yet sent)


def orders(ledger: Ledger) -> list[dict[str, Any]]:
    """Every order the bots decided, oldest first, with its ``status`` (filled, partial, submitted, pending,
    cancelled, rejected, skipped) and ``reason``: a rejected or skipped order is visible, not only logged."""
    return [{"bot": group_of(o.bot) or o.bot, "symbol": o.symbol, "side": o.side, "amount": o.amount,
             "filled": o.filled,
             "status": ORDER_STATUS.get(o.status, o.status), "reason": o.reason or "", "action": o.action,
             "bar_time": _iso(o.bar_time), "created": _iso(o.created), "client_order_id": o.client_order_id,
             "exchange_order_id": o.exchange_order_id} for o in ledger.orders()]


def last_prices(ledger: Ledger) -> dict[str, float]:
    """Each symbol's most recent fill price (valuation when the exchange is not asked)."""
    prices: dict[str, float] = {}
    for fill in ledger.fills():
        prices[fill.symbol] = fill.price
    return prices
