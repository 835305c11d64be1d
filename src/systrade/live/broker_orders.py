"""Sandbox orders on a stock broker's paper account: accepted now, filled later, sometimes in parts.

``BrokerSandbox`` speaks the runner's language (``OrderRequest`` in, ``Execution`` out) over a broker's
``OrderGateway`` (``systrade.venues``). Unlike a crypto exchange's market order, a broker's order is often still
open when the answer comes: the execution then says ``open`` with what has filled so far, and every later tick
looks the order up again until it is filled, cancelled (a day order expires at the close) or rejected. An order
refused because the market is closed (KIS mock trading) stays an intent and is sent at the next session's open.
The gateway looks an order up before sending it, so a restart or a lost answer never sends it twice.
"""

from __future__ import annotations

from datetime import UTC, datetime

from systrade.exchange import RetryPolicy, describe_error
from systrade.live.broker import Execution, OrderRequest
from systrade.venues.base import BrokerOrder, OrderIntent
from systrade.venues.errors import BrokerAuthError, BrokerError, BrokerMarketClosed

OPEN_STATUSES = {"submitted": "submitted", "partially_filled": "partial"}  # broker status -> the ledger's


class BrokerSandbox:
    """A broker's paper account behind the runner's broker interface."""

    supports_stops = False  # a fill inside a bar that has already closed cannot be sent to a broker
    asynchronous = True  # orders may stay open across ticks: the runner looks them up every tick

    def __init__(self, gateway, policy: RetryPolicy, venue: str = "") -> None:
        self.gateway = gateway
        self.policy = policy
        self.venue = venue

    def execute(self, request: OrderRequest, book: dict | None = None) -> Execution:
        """Send the order unless the broker has it already; what the broker says about it now."""
        amount = float(request.amount)
        if amount <= 0:
            return Execution("rejected", reason=f"amount {request.amount:.10g} is below the market's precision")
        try:
            order = self.gateway.submit(self._intent(request))
        except BrokerMarketClosed as error:
            return Execution("pending", reason=f"the market is closed ({describe_error(error, self.venue)}); the "
                                               "order is sent at the next session's open")  # runner.MARKET_CLOSED
        except BrokerAuthError:
            raise
        except BrokerError as error:
            return Execution("rejected", reason=describe_error(error, self.venue))
        return execution_of(order)

    def refresh(self, request: OrderRequest) -> Execution | None:
        """The broker's current view of an order sent earlier, or None when it does not list it."""
        order = self.gateway.lookup(self._intent(request))
        return None if order is None else execution_of(order)

    def position(self, symbol: str) -> float:
        """Shares the broker's account holds."""
        return float(self.gateway.position(symbol))

    @staticmethod
    def _intent(request: OrderRequest) -> OrderIntent:
        return OrderIntent(request.client_order_id, request.symbol, request.side, float(request.amount),
                           request.created or datetime.now(UTC), request.broker_order_id, request.claimed)


def execution_of(order: BrokerOrder) -> Execution:
    """A broker order as the runner books it: ``filled``, ``open`` (what filled so far), ``cancelled`` (with any
    part that filled before) or ``rejected``."""
    status = order.status
    if status in OPEN_STATUSES:
        status = "open"
    elif status not in ("filled", "cancelled", "rejected"):
        status = "open"
    price = float(order.average_price) if order.average_price else 0.0
    reason = order.reason or ("" if status in ("filled", "open") else f"the broker {order.status} the order")
    return Execution(status, float(order.filled or 0.0), price, float(order.fee or 0.0), "", reason,
                     order.broker_order_id, broker_status=OPEN_STATUSES.get(order.status, order.status))
