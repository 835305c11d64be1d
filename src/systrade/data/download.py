"""Download closed candles from any ccxt exchange into the store, incrementally and atomically.

Pagination is our own loop over ``since``/``limit`` (ccxt's ``paginate`` option stops after a
fixed number of calls). Only candles that have closed by the exchange's clock are stored. Each
run fetches only what the store lacks: before its first candle, gaps inside it, after its last.
Progress is written every few pages with an atomic rename, so a killed download leaves the
previous file intact and the next run resumes from the last checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from systrade.data.markets import market_record, save_market
from systrade.data.readers import OHLCV
from systrade.data.store import SeriesKey, read_series, write_series
from systrade.errors import UserError
from systrade.exchange import RetryPolicy, TransientDataError, call_with_retry, check_market, describe_error
from systrade.venues.korea import has_public_rules, public_rules

PAGE_LIMIT = 1000
CHECKPOINT_PAGES = 5
# Exchanges that answer a time window (ccxt turns ``since`` into Upbit's ``to``): a window without trades is
# empty and the next one may not be, so an empty page moves on instead of ending the range.
WINDOW_PAGED = {"upbit", "bithumb"}
TO_PAGED = {"bithumb"}  # ccxt ignores ``since`` here: the window's end is asked for with Upbit's ``to``


def window_params(exchange: Any, timeframe: str, since: int, limit: int) -> dict[str, str]:
    """The request parameters of the window of ``limit`` candles from ``since`` (Bithumb: an explicit ``to``)."""
    if exchange.id not in TO_PAGED:
        return {}
    return {"to": exchange.iso8601(since + limit * int(exchange.parse_timeframe(timeframe) * 1000))}


def page_limit_of(exchange: Any) -> int:
    """The most candles one request may ask this exchange for (ccxt's ``features``; Upbit and Bithumb: 200)."""
    features = getattr(exchange, "features", None) or {}
    limit = ((features.get("spot") or {}).get("fetchOHLCV") or {}).get("limit")
    return int(min(limit, PAGE_LIMIT)) if isinstance(limit, (int, float)) and limit > 0 else PAGE_LIMIT


class ExchangeUnavailable(UserError):
    """The exchange kept failing after every retry."""


@dataclass
class DownloadResult:
    """What one symbol's download did."""

    key: SeriesKey
    path: Path
    added: int
    rows: int
    first: pd.Timestamp | None
    last: pd.Timestamp | None


def candles_from_rows(rows: list[list[Any]]) -> pd.DataFrame:
    """ccxt OHLCV rows ``[ms, o, h, l, c, v]`` -> the store's frame (UTC index of open times)."""
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in OHLCV},
                            index=pd.DatetimeIndex([], tz="UTC", name="time"))
    array = np.asarray([row[:6] for row in rows], dtype=float)
    index = pd.to_datetime(array[:, 0].astype(np.int64), unit="ms", utc=True).as_unit("ns").rename("time")
    return pd.DataFrame(array[:, 1:6], index=index, columns=OHLCV)


def merge_candles(old: pd.DataFrame | None, new: pd.DataFrame) -> pd.DataFrame:
    """Union of two candle frames, sorted, newer rows winning on equal timestamps."""
    frame = new if old is None or old.empty else pd.concat([old[OHLCV], new[OHLCV]])
    return frame[~frame.index.duplicated(keep="last")].sort_index()


def missing_ranges(existing: pd.DatetimeIndex | None, first_ms: int, last_ms: int, tf_ms: int) -> list[tuple[int, int]]:
    """Open-time ranges ``[lo, hi]`` (ms, inclusive) inside ``[first_ms, last_ms]`` the store lacks."""
    if last_ms < first_ms:
        return []
    if existing is None or len(existing) == 0:
        return [(first_ms, last_ms)]
    stamps = existing.as_unit("ms").asi8.astype(np.int64)
    ranges = []
    if first_ms < stamps[0]:
        ranges.append((first_ms, min(stamps[0] - tf_ms, last_ms)))
    steps = np.diff(stamps)
    for i in np.nonzero(steps > tf_ms)[0]:
        lo, hi = int(stamps[i] + tf_ms), int(stamps[i + 1] - tf_ms)
        lo, hi = max(lo, first_ms), min(hi, last_ms)
        if lo <= hi:
            ranges.append((lo, hi))
    if stamps[-1] + tf_ms <= last_ms:
        ranges.append((max(int(stamps[-1] + tf_ms), first_ms), last_ms))
    return [(lo, hi) for lo, hi in ranges if lo <= hi]


class Downloader:
    """Fetch one exchange's candles into the store under the retry policy."""

    def __init__(self, exchange: Any, exchange_id: str, data_dir: str | Path, policy: RetryPolicy,
                 on_retry: Callable[[int, BaseException, float], None] | None = None,
                 page_limit: int | None = None, checkpoint_pages: int = CHECKPOINT_PAGES,
                 overrides: dict[str, float] | None = None) -> None:
        self.exchange = exchange
        self.exchange_id = exchange_id
        self.data_dir = data_dir
        self.policy = policy
        self.on_retry = on_retry
        self.page_limit = page_limit or page_limit_of(exchange)
        self.window_paged = exchange_id in WINDOW_PAGED
        self.overrides = overrides or {}  # [exchanges.<id>.market_rules]
        self.checkpoint_pages = checkpoint_pages
        self._markets_loaded = False

    def _call(self, call: Callable[[], Any], what: str) -> Any:
        try:
            return call_with_retry(call, self.policy, what, self.on_retry, venue=self.exchange_id)
        except UserError:
            raise
        except Exception as error:
            import ccxt

            if isinstance(error, ccxt.BadSymbol):
                raise UserError(f"{self.exchange_id} rejected the symbol while {what}: "
                                f"{describe_error(error, self.exchange_id)}") from error
            if isinstance(error, ccxt.AuthenticationError):
                raise UserError(f"{self.exchange_id} refused the credentials while {what}: "
                                f"{describe_error(error, self.exchange_id)}; check SYSTRADE_"
                                f"{self.exchange_id.upper()}_API_KEY/_SECRET") from error
            raise ExchangeUnavailable(f"{self.exchange_id} failed while {what} after {self.policy.retries} retries "
                                      f"({describe_error(error, self.exchange_id)}); try again later or check "
                                      f"[exchanges.{self.exchange_id}] in the config") from error

    def load_markets(self) -> None:
        if not self._markets_loaded:
            markets = self._call(self.exchange.load_markets, "loading markets")
            if not markets:
                raise ExchangeUnavailable(f"{self.exchange_id} returned no markets; try again later")
            self._markets_loaded = True

    def check(self, symbol: str, timeframe: str) -> None:
        """Refuse unknown symbols and timeframes with the closest valid names."""
        self.load_markets()
        check_market(self.exchange, self.exchange_id, symbol, timeframe)

    def _public_rules(self, symbol: str) -> dict[str, float]:
        """Rules ccxt does not carry (Upbit's minimum, fees and the tick at the last price) and the user's
        ``[exchanges.<id>.market_rules]``."""
        quote = self.exchange.market(symbol)["quote"]
        price = None
        if has_public_rules(self.exchange_id):
            ticker = self._call(lambda: self.exchange.fetch_ticker(symbol), f"fetching the {symbol} ticker")
            price = ticker.get("last") or ticker.get("close")
        return public_rules(self.exchange_id, quote, price, self.overrides)

    def server_time_ms(self) -> int:
        """The exchange's clock (decides which candle is still forming); local clock if it has none."""
        if self.exchange.has.get("fetchTime"):
            def fetch() -> int:
                value = self.exchange.fetch_time()
                if not isinstance(value, (int, float)) or value <= 0:
                    raise TransientDataError(f"unusable server time {value!r}")
                return int(value)
            return self._call(fetch, "reading the server time")
        return int(self.exchange.milliseconds())

    def _page(self, symbol: str, timeframe: str, since: int) -> list[list[Any]]:
        rows = self.exchange.fetch_ohlcv(symbol, timeframe, since=since, limit=self.page_limit,
                                         params=window_params(self.exchange, timeframe, since, self.page_limit))
        if not isinstance(rows, list) or any(
                not isinstance(r, (list, tuple)) or len(r) < 6 or any(v is None for v in r[:6]) for r in rows):
            raise TransientDataError("malformed candles in the answer")
        if not rows and not self.window_paged:
            raise TransientDataError("empty page where candles were expected")
        return rows

    def download(self, symbol: str, timeframe: str, since_ms: int, until_ms: int | None = None,
                 on_candles: Callable[[int, int], None] | None = None) -> DownloadResult:
        """Fetch the closed candles of ``[since_ms, until_ms)`` that the store lacks; return what changed.

        ``on_candles(added, expected_total)`` reports progress.
        """
        self.check(symbol, timeframe)
        save_market(self.data_dir, market_record(self.exchange, self.exchange_id, symbol,
                                                 self._public_rules(symbol)))  # rules for backtests
        tf_ms = int(self.exchange.parse_timeframe(timeframe) * 1000)
        now_ms = self.server_time_ms()
        last_ms = now_ms - tf_ms  # a candle opened after this has not closed yet
        if until_ms is not None:
            last_ms = min(last_ms, until_ms - 1)
        first_ms = int(math.ceil(since_ms / tf_ms) * tf_ms)  # exchanges round `since` up to a candle open
        last_ms = int(last_ms // tf_ms * tf_ms)
        key = SeriesKey(self.exchange_id, symbol, timeframe)
        path = key.path(self.data_dir)
        stored = read_series(key, self.data_dir) if path.is_file() else None
        ranges = missing_ranges(stored.index if stored is not None else None, first_ms, last_ms, tf_ms)
        if self.window_paged and stored is not None and len(stored):
            # Upbit has no candle for a time without trades: a hole inside the store is not missing data
            first, last = int(stored.index[0].value // 1_000_000), int(stored.index[-1].value // 1_000_000)
            ranges = [(lo, hi) for lo, hi in ranges if lo < first or hi > last]
        expected = sum((hi - lo) // tf_ms + 1 for lo, hi in ranges)
        frame, added, pending, pages = stored, 0, [], 0
        for lo, hi in ranges:
            cursor = lo
            while cursor <= hi:
                try:
                    rows = self._call(lambda c=cursor: self._page(symbol, timeframe, c),
                                      f"downloading {symbol} {timeframe}")
                except ExchangeUnavailable as error:
                    if isinstance(error.__cause__, TransientDataError):
                        break  # still nothing after every retry: the exchange has no more candles here
                    if pending:
                        write_series(merge_candles(frame, candles_from_rows(pending)), key, self.data_dir)
                    raise
                fresh = [r for r in rows if cursor <= r[0] <= hi]
                pending.extend(fresh)
                added += len(fresh)
                pages += 1
                if on_candles is not None:
                    on_candles(len(fresh), expected)
                if self.window_paged:  # the window [cursor, cursor + limit candles) is done, with or without trades
                    cursor += self.page_limit * tf_ms
                else:
                    newest = int(rows[-1][0])
                    if newest < cursor or not fresh:
                        break
                    cursor = newest + tf_ms
                if pages % self.checkpoint_pages == 0:
                    frame = merge_candles(frame, candles_from_rows(pending))
                    write_series(frame, key, self.data_dir)
                    pending = []
        if pending or frame is None:
            frame = merge_candles(frame, candles_from_rows(pending))
        if len(frame) == 0:
            raise UserError(f"{self.exchange_id} has no closed {timeframe} candles of {symbol} in the range "
                            "asked for; check --since/--until")
        path = write_series(frame, key, self.data_dir) if pending or added or stored is None else path
        return DownloadResult(key, path, added, len(frame), frame.index[0], frame.index[-1])
