"""Building ccxt clients from config, the exchange error policy, and secret redaction.

Shared by the downloader (``data``) and the paper-trading path (``live``): both reach exchanges
the same way and retry the same errors. Secrets come only from ``SYSTRADE_<ID>_API_KEY``,
``_SECRET`` and ``_PASSWORD``; anything shown to the user passes through ``redact``.
"""

from __future__ import annotations

import copy
import difflib
import json
import os
import re
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from systrade.config import MARKET_RULES, Settings, secret_env_names
from systrade.errors import UserError

T = TypeVar("T")


def _ccxt():
    import ccxt  # imported lazily: it takes most of a second

    return ccxt


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``extra`` merged into a copy of ``base``, recursing into nested tables."""
    merged = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def secrets_for(exchange_id: str) -> dict[str, str]:
    """Credentials for ``exchange_id`` from the environment (only those that are set)."""
    return {field: os.environ[name] for field, name in secret_env_names(exchange_id).items() if os.environ.get(name)}


_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)(?P<password>[^@\s/]+)(?=@)")
SECRET_SUFFIXES = ("_API_KEY", "_SECRET", "_PASSWORD", "_TOKEN", "_APP_KEY", "_APP_SECRET", "_ACCOUNT")


def _secret_forms(value: str) -> set[str]:
    """The ways a secret can appear in text: as set, stripped of whitespace (a trailing newline), escaped as in
    JSON or a Python repr, and URL-encoded."""
    forms = set()
    for base in {value, value.strip()}:
        if len(base) < 4:  # too short to replace without mangling ordinary text
            continue
        forms.update({base, json.dumps(base)[1:-1], repr(base)[1:-1], urllib.parse.quote(base, safe="")})
    return forms


def redact(text: str, exchange_id: str | None = None) -> str:
    """``text`` with every configured secret (``SYSTRADE_*`` keys, secrets and passwords from the environment,
    in any of their written forms) and every password inside a URL replaced by ``***``."""
    forms: set[str] = set()
    for name, value in os.environ.items():
        if name.startswith("SYSTRADE_") and name.endswith(SECRET_SUFFIXES) and value:
            forms |= _secret_forms(value)
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, "***")
    return _URL_PASSWORD.sub(r"\g<head>***", text)


def market_rule_overrides(exchange_id: str, settings: Settings) -> dict[str, float]:
    """The user's ``[exchanges.<id>.market_rules]`` (minimum cost and amount, fees, tick, lot)."""
    return dict(settings.exchanges.get(exchange_id, {}).get(MARKET_RULES, {}))


def create_exchange(exchange_id: str, settings: Settings, with_secrets: bool = False) -> Any:
    """A ccxt client for ``exchange_id`` with the ``[exchanges.<id>]`` table deep-merged into its config.

    Keys are handed over only when asked for (sandbox orders): public work (downloads, paper mode) never gives
    the client credentials, so a wrong key cannot break it and no private endpoint is called.
    """
    ccxt = _ccxt()
    if exchange_id not in ccxt.exchanges:
        close = difflib.get_close_matches(exchange_id, ccxt.exchanges, n=3, cutoff=0.6)
        hint = f"did you mean {' or '.join(close)}?" if close else "see ccxt's list of exchange ids"
        raise UserError(f"unknown exchange {exchange_id!r}; {hint}")
    config = deep_merge({"enableRateLimit": True}, settings.exchanges.get(exchange_id, {}))
    config.pop(MARKET_RULES, None)  # systrade's own overrides (``market_rules``), not the client's
    if with_secrets:
        config.update(secrets_for(exchange_id))
    return status_first(getattr(ccxt, exchange_id)(config))


def status_first(client: Any) -> Any:
    """Make ``client`` read HTTP 429 as a rate limit and 418 as a ban whatever the body says.

    ccxt parses an exchange's error body before its HTTP status, and Upbit's and Bithumb's JSON bodies for 429
    and 418 are not in ccxt's tables, so they arrive as a plain ``ExchangeError``, which is never retried.
    """
    ccxt = _ccxt()
    original = client.handle_errors

    def handle_errors(code, reason, url, method, headers, body, response, request_headers, request_body):
        if code == 429:
            raise ccxt.RateLimitExceeded(f"{client.id} {method} {url} 429 {reason} {body}")
        if code == 418:
            raise ccxt.DDoSProtection(f"{client.id} {method} {url} 418 {reason} {body}")
        return original(code, reason, url, method, headers, body, response, request_headers, request_body)

    client.handle_errors = handle_errors
    return client


def check_market(client: Any, exchange_id: str, symbol: str, timeframe: str) -> None:
    """Refuse (``UserError``) a symbol the exchange does not list or a timeframe it does not serve, naming the
    closest valid ones; the client's markets must be loaded. Used by downloads and by the paper daemon's start."""
    markets = client.markets or {}
    if symbol not in markets:
        symbols = list(markets)
        close = difflib.get_close_matches(symbol.upper(), symbols, n=3, cutoff=0.6)
        hint = f"did you mean {' or '.join(close)}?" if close else f"it lists {len(symbols)} markets"
        raise UserError(f"{exchange_id} has no market {symbol!r}; {hint}")
    timeframes = list(getattr(client, "timeframes", None) or {})
    if timeframes and timeframe not in timeframes:
        close = difflib.get_close_matches(timeframe, timeframes, n=3, cutoff=0.3)
        raise UserError(f"{exchange_id} has no timeframe {timeframe!r}; "
                        f"{'did you mean ' + ' or '.join(close) + '? ' if close else ''}"
                        f"valid: {', '.join(timeframes)}")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry exchange calls.

    Retried: network trouble (``NetworkError``, ``RequestTimeout``, ``ExchangeNotAvailable``) and
    ``OperationFailed``, with exponential backoff; ``DDoSProtection`` / ``RateLimitExceeded`` back off
    longer. Never retried: authentication, bad requests, bad symbols (they cannot get better).
    """

    retries: int = 5
    backoff_seconds: float = 1.0
    rate_limit_backoff_seconds: float = 5.0
    max_backoff_seconds: float = 60.0

    def delay(self, attempt: int, error: BaseException) -> float:
        from systrade.venues.errors import BrokerRateLimited

        if isinstance(error, BrokerRateLimited) and error.retry_after is not None:  # the broker said how long
            return max(float(error.retry_after), 0.0)
        ccxt = _ccxt()
        base = self.rate_limit_backoff_seconds if isinstance(
            error, (ccxt.DDoSProtection, ccxt.RateLimitExceeded, BrokerRateLimited)) else self.backoff_seconds
        return min(self.max_backoff_seconds, base * (2 ** attempt))


def is_retryable(error: BaseException) -> bool:
    """True for errors that may pass if the same call is made again (ccxt's and the brokers' alike)."""
    from systrade.venues.errors import BrokerRetryable

    ccxt = _ccxt()
    return isinstance(error, (ccxt.OperationFailed, BrokerRetryable))


class TransientDataError(Exception):
    """The exchange answered with something unusable (e.g. malformed JSON parsed as junk): retry."""


BAN_SECONDS = 60.0  # after an HTTP 418 (Upbit's temporary ban), no request to that exchange for this long
_banned_until: dict[str, float] = {}  # exchange id -> time.monotonic() when its ban ends


def is_ban(error: BaseException) -> bool:
    """An HTTP 418 answer: the exchange has banned the client for a while (ccxt raises ``DDoSProtection``)."""
    ccxt = _ccxt()
    return isinstance(error, ccxt.DDoSProtection) and re.search(r"(?<![\d.])418(?![\d.])", str(error)) is not None


def call_with_retry(call: Callable[[], T], policy: RetryPolicy, what: str,
                    on_retry: Callable[[int, BaseException, float], None] | None = None,
                    sleep: Callable[[float], None] = time.sleep, venue: str | None = None) -> T:
    """Run ``call`` under the error policy; re-raise the last error when retries run out.

    ``venue`` (an exchange id) shares a ban between every call to that exchange in the process: after a 418, no
    call is made to it for ``BAN_SECONDS``, retries included.
    """
    attempt = 0
    while True:
        if venue is not None and _banned_until.get(venue, 0.0) > time.monotonic():
            sleep(_banned_until[venue] - time.monotonic())
        try:
            return call()
        except Exception as error:  # classified below; anything else is not ours to retry
            if venue is not None and is_ban(error):
                _banned_until[venue] = time.monotonic() + BAN_SECONDS
            if not (is_retryable(error) or isinstance(error, TransientDataError)) or attempt >= policy.retries:
                raise
            wait = policy.delay(attempt, error)
            if is_ban(error):
                wait = max(wait, BAN_SECONDS)
            if on_retry is not None:
                on_retry(attempt + 1, error, wait)
            sleep(wait)
            attempt += 1


def describe_error(error: BaseException, exchange_id: str) -> str:
    """A one-line, secret-free description of an exchange error."""
    text = " ".join(str(error).split())
    if len(text) > 300:
        text = text[:300] + "..."
    return redact(f"{type(error).__name__}: {text}", exchange_id)
