"""Download a stock broker's candles into the store: incrementally, atomically, on the market's calendar.

The broker adapter (``systrade.venues``) fetches pages under the retry policy; this module decides what to ask
for and keeps the store right. Each run asks only for what lies before the first stored candle and after the
last one (gaps inside are reported by ``data validate``). Bars outside the calendar's sessions (extended hours)
are not stored. Adjusted prices change backwards after a split or a dividend: each run fetches the last stored
candle again, and when its price has changed, the whole series is fetched anew so it stays one adjustment.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from systrade.data import calendars
from systrade.data.download import DownloadResult, merge_candles
from systrade.data.markets import save_market
from systrade.data.store import SeriesKey, read_series, write_series
from systrade.data.timeframes import timeframe_seconds
from systrade.errors import UserError


def download_from_broker(source, symbol: str, timeframe: str, since: pd.Timestamp, until: pd.Timestamp | None,
                         data_dir: str | Path,
                         on_candles: Callable[[int, int], None] | None = None) -> DownloadResult:
    """Fetch the closed candles of ``[since, until)`` (``until`` default: now) that the store lacks from
    ``source`` (a ``venues.base.CandleSource``); ``on_candles(added, expected)`` reports progress."""
    venue, adjustment = source.venue, source.adjustment
    calendar = calendars.calendar_name(venue)
    key = SeriesKey(venue, symbol, timeframe)
    path = key.path(data_dir)
    stored = read_series(key, data_dir) if path.is_file() else None
    if stored is not None and stored.attrs.get("adjustment", adjustment) != adjustment:  # refused: write nothing
        raise UserError(f"{path} holds {stored.attrs['adjustment']} prices and --adjustment {adjustment} was asked; "
                        f"download with --adjustment {stored.attrs['adjustment']}, or delete the file to start over")
    source.check(symbol, timeframe)
    save_market(data_dir, {**source.market(symbol), "calendar": calendar})  # rules for backtests
    end = pd.Timestamp.now(tz="UTC") if until is None else until
    step = pd.Timedelta(seconds=timeframe_seconds(timeframe))
    expected = len(calendars.bar_opens(calendar, timeframe, since, end)) if calendar else 0

    def fetch(lo: pd.Timestamp, hi: pd.Timestamp) -> pd.DataFrame:
        def on_page(rows: int) -> None:
            if on_candles is not None:
                on_candles(rows, expected)
        frame = source.candles(symbol, timeframe, lo, hi, on_page)
        if calendar and len(frame):
            frame = frame[~calendars.off_session(calendar, frame.index, timeframe)]
        return frame

    pieces = []
    if stored is not None and len(stored):
        first, last = stored.index[0], stored.index[-1]
        if since < first:
            pieces.append(fetch(since, first))
        newer = fetch(last, end) if last < end else fetch(last, last + step)
        if _changed(stored, newer, last):  # a split or dividend re-adjusted the history: fetch all of it again
            stored, pieces = None, [fetch(min(since, first), end)]
        else:
            pieces.append(newer)
    else:
        pieces.append(fetch(since, end))
    fresh = [p for p in pieces if len(p)]
    if not fresh and stored is None:
        raise UserError(f"{venue} has no closed {timeframe} candles of {symbol} from {since.date()} to "
                        f"{end.date()}; check --since/--until")
    before = 0 if stored is None else len(stored)
    frame = stored
    for piece in fresh:
        frame = merge_candles(frame, piece)
    added = len(frame) - before
    if added or stored is None:
        write_series(frame, key, data_dir, adjustment=adjustment)
    return DownloadResult(key, path, added, len(frame), frame.index[0], frame.index[-1])


def _changed(stored: pd.DataFrame, newer: pd.DataFrame, last: pd.Timestamp) -> bool:
    """Whether the broker's candle at ``last`` differs from the stored one (prices re-adjusted)."""
    if last not in newer.index:
        return False
    old = stored.loc[last, ["open", "high", "low", "close"]].to_numpy(dtype=float)
    new = newer.loc[last, ["open", "high", "low", "close"]].to_numpy(dtype=float)
    return not np.allclose(old, new, rtol=1e-9, atol=0.0)
