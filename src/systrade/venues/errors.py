"""Broker errors, classified once for the shared retry policy (``systrade.exchange.call_with_retry``)."""

from __future__ import annotations


class BrokerError(Exception):
    """A broker answered with an error that repeating the same call cannot fix (bad request, refused order)."""


class BrokerAuthError(BrokerError):
    """The broker refused the credentials (or none were set)."""


class BrokerBadSymbol(BrokerError):
    """The broker does not list the symbol."""


class BrokerRetryable(Exception):
    """Network trouble, a timeout, a 5xx or a dropped connection: the same call may pass later."""


class BrokerRateLimited(BrokerRetryable):
    """429 (or the broker's own "too many requests" answer): wait ``retry_after`` seconds when the broker says."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BrokerMarketClosed(BrokerError):
    """The broker refuses orders outside the session (KIS mock trading): the order waits for the next open."""
