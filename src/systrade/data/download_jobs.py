"""Downloads from any venue: what ``data download`` and ``data update`` ask for, as jobs, and who serves them.

A ccxt exchange is served by ``download.Downloader``, a stock broker (alpaca, kis) by
``broker_download.download_from_broker``; the command line only shows progress.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from systrade.errors import UserError

ADJUSTMENTS = ("all", "raw")


@dataclass(frozen=True)
class Job:
    """One series to fetch: candles from ``since_ms`` up to ``until_ms`` (None: up to now), in UTC milliseconds."""

    symbol: str
    timeframe: str
    since_ms: int
    until_ms: int | None = None


def _to_ms(text: str | None, option: str) -> int | None:
    from systrade.data.timeframes import utc_timestamp

    return None if text is None else int(utc_timestamp(text, option).value // 1_000_000)


def download_jobs(symbols: list[str], timeframe: str, since: str, until: str | None,
                  adjustment: str | None) -> list[Job]:
    """The jobs of ``systrade data download``, its options checked (a ``UserError`` naming the fix)."""
    since_ms = _to_ms(since, "--since")
    until_ms = _to_ms(until, "--until")
    if until_ms is not None and until_ms <= since_ms:
        raise UserError(f"--until {until} is not after --since {since}; give an --until later than --since")
    if adjustment is not None and adjustment not in ADJUSTMENTS:
        raise UserError(f"--adjustment {adjustment!r} is not valid; use all (adjusted prices) or raw")
    return [Job(symbol, timeframe, since_ms, until_ms) for symbol in symbols]


def update_jobs(data_dir: str | Path) -> tuple[dict[tuple[str, str | None], list[Job]], list[str]]:
    """``systrade data update``: every stored series from its first candle on, grouped by (venue, adjustment),
    and the series no venue serves (described for the person)."""
    import ccxt

    from systrade.data.store import list_series, read_series
    from systrade.venues.base import is_broker

    groups: dict[tuple[str, str | None], list[Job]] = {}
    skipped: list[str] = []
    for key, _ in list_series(data_dir):
        if key.exchange not in ccxt.exchanges and not is_broker(key.exchange):
            skipped.append(f"{key.exchange}/{key.symbol} {key.timeframe}: not a ccxt exchange or stock broker")
            continue
        frame = read_series(key, data_dir)
        adjustment = frame.attrs.get("adjustment", "all") if is_broker(key.exchange) else None
        groups.setdefault((key.exchange, adjustment), []).append(
            Job(key.symbol, key.timeframe, int(frame.index[0].value // 1_000_000)))
    return groups, skipped


def run_jobs(exchange_id: str, jobs: list[Job], config, adjustment: str | None,
             on_retry: Callable[[int, BaseException, float], None],
             progress: Callable[[Job], Callable[[int, int], None]]) -> Iterator[tuple[Job, Any]]:
    """Fetch each job from ``exchange_id`` (a ccxt exchange or a stock broker) into the store, yielding its
    result; ``progress(job)`` gives the ``on_candles(added, expected)`` callback of that job."""
    import pandas as pd

    from systrade.data.broker_download import download_from_broker
    from systrade.data.download import Downloader
    from systrade.exchange import RetryPolicy, create_exchange, market_rule_overrides
    from systrade.venues import candle_source
    from systrade.venues.base import is_broker

    policy = RetryPolicy(**config.network.model_dump())
    broker = is_broker(exchange_id)
    if adjustment is not None and not broker:
        raise UserError(f"--adjustment applies to stock brokers (alpaca, kis), not to {exchange_id}; drop it")
    if broker:
        source = candle_source(exchange_id, config, policy, adjustment or "all")
    else:
        downloader = Downloader(create_exchange(exchange_id, config), exchange_id, config.data.dir, policy,
                                on_retry, overrides=market_rule_overrides(exchange_id, config))
    for job in jobs:
        on_candles = progress(job)
        if broker:
            end = None if job.until_ms is None else pd.Timestamp(job.until_ms, unit="ms", tz="UTC")
            result = download_from_broker(source, job.symbol, job.timeframe,
                                          pd.Timestamp(job.since_ms, unit="ms", tz="UTC"), end, config.data.dir,
                                          on_candles)
        else:
            result = downloader.download(job.symbol, job.timeframe, job.since_ms, job.until_ms, on_candles)
        yield job, result
