"""Brokers turn an order request into a fill or a rejection.

``PaperBroker`` fills market orders against the live order book (walking the levels, falling
back to the ticker) with the market's taker fee and adverse slippage; it calls public endpoints
only and needs no API keys. ``SandboxBroker`` sends real orders to the exchange's testnet and finds
a lost order again by its client order id before ever sending it twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from systrade.exchange import RetryPolicy, TransientDataError, call_with_retry, is_retryable
from systrade.live.market import MarketData, precise_amount


@dataclass
class OrderRequest:
    """One market order a bot wants for a bar."""

    client_order_id: str
    symbol: str
    side: str  # buy | sell
    amount: float
    reference_price: float
    fee_rate: float | None = None  # None: the market's taker fee
    slippage: float = 0.0
    allow_short: bool = False
    base_available: float = 0.0
    quote_available: float = 0.0
    created: datetime | None = None  # when the intent was written (a broker without client ids matches after it)
    broker_order_id: str | None = None  # the broker's id, once it answered
    claimed: frozenset[str] = frozenset()  # broker order ids other ledger orders own


@dataclass
class Execution:
    """What happened to an order: filled (with average price and fee) or rejected (with the reason); a stock
    broker's order may also be ``open`` (accepted, ``amount`` filled so far), ``cancelled`` (``amount`` filled
    before) or ``pending`` (not sent: the market is closed)."""

    status: str
    amount: float = 0.0
    price: float = 0.0
    fee: float = 0.0
    fee_currency: str = ""
    reason: str = ""
    exchange_order_id: str | None = None
    broker_status: str = ""  # a broker's order still open: submitted or partial (``live.broker_orders``)


def book_price(levels: list[list[float]], amount: float, fallback: float | None = None) -> float:
    """Average price of taking ``amount`` from ``levels`` ([price, size], best first).

    What the book does not show is priced at its worst level; an empty book gives ``fallback``
    (the ticker's last price).
    """
    remaining, cost, worst = amount, 0.0, None
    for level in levels:
        worst, size = float(level[0]), float(level[1])
        take = min(remaining, size)
        cost += take * worst
        remaining -= take
        if remaining <= 1e-15:
            return cost / amount
    if worst is None:
        if fallback is None:
            raise ValueError("empty order book and no fallback price")
        return fallback
    return (cost + max(remaining, 0.0) * worst) / amount


class PaperBroker:
    """Simulated fills from public market data; the exchange never sees an order."""

    supports_stops = True  # a stop is simulated as a resting order filled within the bar that reached it

    def __init__(self, market: MarketData) -> None:
        self.market = market

    def execute(self, request: OrderRequest, book: dict | None = None) -> Execution:
        """Fill ``request`` against ``book`` (the snapshot the order was sized on) or a fresh one."""
        rules = self.market.rules(request.symbol)
        amount = self.market.amount_to_precision(request.symbol, request.amount)
        if amount <= 0 or (rules.min_amount and amount < rules.min_amount):
            return Execution("rejected", reason=f"amount {request.amount:.10g} is below the market minimum "
                                                f"{rules.min_amount} {rules.base} after rounding to its precision")
        book = book if book is not None else self.market.order_book(request.symbol)
        levels = book["asks"] if request.side == "buy" else book["bids"]
        price = book_price(levels, amount, None if levels else self.market.last_price(request.symbol))
        return self._fill(request, amount, price)

    def fill_at(self, request: OrderRequest, price: float) -> Execution:
        """Fill ``request`` at ``price`` (before slippage): a resting stop order that the bar reached."""
        amount = self.market.amount_to_precision(request.symbol, request.amount)
        if amount <= 0:
            return Execution("rejected", reason=f"amount {request.amount:.10g} is below the market's precision")
        return self._fill(request, amount, price)

    def _fill(self, request: OrderRequest, amount: float, price: float) -> Execution:
        """Slippage, minimum value, fee and balance checks of a fill of ``amount`` at ``price``."""
        rules = self.market.rules(request.symbol)
        price *= (1 + request.slippage) if request.side == "buy" else (1 - request.slippage)
        cost = amount * price
        if rules.min_cost and cost < rules.min_cost:
            return Execution("rejected", reason=f"order value {cost:.10g} {rules.quote} is below the market minimum "
                                                f"{rules.min_cost} {rules.quote}")
        fee_rate = rules.taker_fee if request.fee_rate is None else request.fee_rate
        fee = cost * fee_rate
        if request.side == "buy" and cost + fee > request.quote_available * (1 + 1e-9):
            return Execution("rejected", reason=f"insufficient balance: the buy needs {cost + fee:.10g} {rules.quote}, "
                                                f"{request.quote_available:.10g} available")
        if request.side == "sell" and not request.allow_short and amount > request.base_available + 1e-12:
            return Execution("rejected", reason=f"insufficient balance: the sell needs {amount:.10g} {rules.base}, "
                                                f"{request.base_available:.10g} held")
        return Execution("filled", amount, price, fee, rules.quote)


class OrderInDoubt(TransientDataError):
    """A send failed without a clear answer and the exchange does not list the order (yet): not sent again now."""


class SandboxBroker:
    """Real market orders on the exchange's testnet, idempotent by client order id."""

    supports_stops = False  # a fill inside a bar that has already closed cannot be sent to an exchange

    def __init__(self, client: Any, policy: RetryPolicy) -> None:
        self.client = client
        self.policy = policy

    def find(self, request: OrderRequest) -> dict | None:
        """The exchange's record of an order we may already have sent, or None."""
        import ccxt

        try:
            return call_with_retry(lambda: self.client.fetch_order(
                None, request.symbol, {"origClientOrderId": request.client_order_id}), self.policy, "looking up order")
        except ccxt.OrderNotFound:
            return None

    def execute(self, request: OrderRequest, book: dict | None = None) -> Execution:
        """Send the order unless the exchange already has it (looked up by client order id first).

        Binance accepts a client order id again once the earlier order has filled, so the id alone cannot stop a
        second market order: every send is preceded by a lookup. A send that fails without a clear answer
        (timeout, dropped connection, 5xx) may still reach the exchange later, so it is never repeated in the
        same tick: the order is looked up once (an answer lost on the way back), and if the exchange does not
        list it yet, ``OrderInDoubt`` leaves the intent for the next tick, which looks it up again and sends it
        only if the exchange still does not have it.
        """
        import ccxt

        amount = precise_amount(self.client, request.symbol, request.amount)
        if amount <= 0:
            return Execution("rejected", reason=f"amount {request.amount:.10g} is below the market's precision")
        order = self.find(request)
        if order is None:
            try:
                order = self.client.create_order(request.symbol, "market", request.side, amount, None,
                                                 {"newClientOrderId": request.client_order_id})
            except ccxt.InsufficientFunds as error:
                return Execution("rejected", reason=f"insufficient balance: {error}")
            except (ccxt.InvalidOrder, ccxt.BadRequest) as error:  # NOTIONAL failures arrive as BadRequest
                return Execution("rejected", reason=f"{type(error).__name__}: {error}")
            except Exception as error:
                if not is_retryable(error):
                    raise
                order = self.find(request)
                if order is None:
                    raise OrderInDoubt(f"order {request.client_order_id} was sent without a clear answer "
                                       f"({type(error).__name__}) and the exchange does not list it yet; the next "
                                       "tick looks it up again and sends it only if the exchange still does not "
                                       "have it") from error
        return self._execution(order)

    def _execution(self, order: dict) -> Execution:
        """The fill the exchange reports; a fill without a price is not booked (``TransientDataError``: the intent
        stays and the next tick looks the order up again by its client order id)."""
        filled = float(order.get("filled") or 0.0)
        if filled <= 0:
            return Execution("rejected", reason=f"the exchange did not fill the order (status {order.get('status')})",
                             exchange_order_id=str(order.get("id")))
        price = fill_price(order, filled)
        if price is None:
            raise TransientDataError(f"the exchange reports order {order.get('id')} filled ({filled:.10g}) without a "
                                     "price; it is looked up again at the next tick")
        cost, currency = self._fee(order)
        return Execution("filled", filled, price, cost, currency, exchange_order_id=str(order.get("id")))

    def _fee(self, order: dict) -> tuple[float, str]:
        """The order's fee and its currency; from the order's trades when the order itself names none (an order
        looked up after a lost answer carries no fills)."""
        fee = order.get("fee")
        if not fee and not order.get("fees"):
            trades = call_with_retry(lambda: self.client.fetch_order_trades(order.get("id"), order.get("symbol")),
                                     self.policy, "fetching the order's trades")
            fees = [t["fee"] for t in trades if t.get("fee") and t["fee"].get("cost") is not None]
            currencies = {f.get("currency") for f in fees}
            if len(currencies) == 1:
                return sum(float(f["cost"]) for f in fees), str(currencies.pop() or "")
            fee = fees[0] if fees else None
        elif not fee:
            fee = order["fees"][0]
        fee = fee or {}
        return float(fee.get("cost") or 0.0), str(fee.get("currency") or "")


def fill_price(order: dict, filled: float) -> float | None:
    """An order's average fill price: ``average``, else ``cost / filled``; None when the exchange gave neither."""
    if order.get("average"):
        return float(order["average"])
    if order.get("cost") and filled > 0:
        return float(order["cost"]) / filled
    return None
