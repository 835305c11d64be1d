"""A higher timeframe's candles lined up on a strategy's own bars, causally.

The rule (drawn in the README): a bar sees the higher-timeframe candles that had **closed by its own close**, never
the one still forming. A 1h bar opening at 13:00 on day D closes at 14:00 and sees day D-1's daily candle; the
23:00 bar closes at midnight, when day D's candle closes, so it sees day D's. The higher candles are built from
the bars themselves (open of the first, highest high, lowest low, close of the last, summed volume), in buckets
aligned on the clock as exchanges build them (days from 00:00 UTC, weeks from Monday); a first bucket the data
covers only partly is left out (NaN), never passed off as a whole candle.

This is how freqtrade's "informative pairs" should be merged and most often are not: merging a higher timeframe
without shifting it lets every bar of day D see day D's close.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from systrade.data.timeframes import infer_timeframe, timeframe_seconds
from systrade.errors import UserError

COLUMNS = ["open", "high", "low", "close", "volume"]
WEEK_ORIGIN_NS = 4 * 86_400 * 1_000_000_000  # 1970-01-05, a Monday: weekly buckets start on Mondays


def higher_timeframe(data: pd.DataFrame, timeframe: str, base: str | None = None,
                     apply: Callable[[pd.DataFrame], pd.Series | pd.DataFrame] | None = None) -> pd.DataFrame:
    """``timeframe`` candles built from ``data`` (bars of ``base``, inferred when omitted), aligned on
    ``data.index``: each row holds the newest higher candle closed by that bar's close (NaN before the first).

    ``apply`` computes something on the higher candles themselves (indexed by their open time), e.g.
    ``lambda d: d["close"].rolling(20).mean()``; its value for a candle is seen from that candle's close on.
    """
    if base is None and len(data) < 2:  # one bar says nothing of its length: nothing can be known closed
        nothing = pd.DataFrame(np.nan, index=data.index, columns=COLUMNS)
        return nothing if apply is None else _nothing_like(apply, data, nothing)
    base = base or infer_timeframe(data.index)
    base_seconds, seconds = timeframe_seconds(base), timeframe_seconds(timeframe)
    if seconds < base_seconds or seconds % base_seconds:
        raise UserError(f"higher timeframe {timeframe} is not a whole multiple of the data's {base} bars; use a "
                        f"timeframe such as {_multiples(base_seconds)}")
    candles, bucket_close = _candles(data, seconds)
    values = candles if apply is None else apply(candles)
    frame = values.to_frame() if isinstance(values, pd.Series) else values
    if not frame.index.equals(candles.index):
        raise UserError("higher(..., apply=...) must return values on the higher candles' own index (e.g. a rolling "
                        "mean of their close), not a reindexed or shifted one")
    stamps = data.index.as_unit("ns").asi8
    bar_close = stamps + base_seconds * 1_000_000_000
    newest = np.searchsorted(bucket_close, bar_close, side="right") - 1
    seen = frame.to_numpy(dtype=float)[np.clip(newest, 0, None)] if len(frame) else \
        np.full((len(data), frame.shape[1]), np.nan)
    seen[newest < 0] = np.nan
    aligned = pd.DataFrame(seen, index=data.index, columns=frame.columns)
    return aligned.iloc[:, 0].rename(values.name) if isinstance(values, pd.Series) else aligned


def _nothing_like(apply, data: pd.DataFrame, nothing: pd.DataFrame) -> pd.Series | pd.DataFrame:
    """NaN in the shape ``apply`` gives (a Series or a frame), on ``data.index``."""
    values = apply(nothing.iloc[:0])
    if isinstance(values, pd.Series):
        return pd.Series(np.nan, index=data.index, name=values.name)
    return pd.DataFrame(np.nan, index=data.index, columns=values.columns)


def _candles(data: pd.DataFrame, seconds: int) -> tuple[pd.DataFrame, np.ndarray]:
    """The higher candles (indexed by their UTC open time; a partial first one NaN) and their close times (ns)."""
    if data.empty:
        return pd.DataFrame(columns=COLUMNS, index=pd.DatetimeIndex([], tz="UTC", name="time"), dtype=float), \
            np.zeros(0, dtype=np.int64)
    stamps = data.index.as_unit("ns").asi8
    step = seconds * 1_000_000_000
    origin = WEEK_ORIGIN_NS if seconds % (7 * 86_400) == 0 else 0
    key = (stamps - origin) // step
    grouped = data[COLUMNS].astype(float).groupby(key, sort=True)
    candles = pd.DataFrame({"open": grouped["open"].first(), "high": grouped["high"].max(),
                            "low": grouped["low"].min(), "close": grouped["close"].last(),
                            "volume": grouped["volume"].sum()})
    bucket_open = candles.index.to_numpy(dtype=np.int64) * step + origin
    if stamps[0] > bucket_open[0]:  # the data starts inside its first bucket: that candle is partial
        candles.iloc[0] = np.nan
    candles.index = pd.DatetimeIndex(pd.to_datetime(bucket_open, utc=True), name="time")
    return candles, bucket_open + step


def _multiples(base_seconds: int) -> str:
    from systrade.data.timeframes import seconds_to_timeframe

    return " or ".join(seconds_to_timeframe(base_seconds * k) for k in (4, 24) if base_seconds * k <= 7 * 86_400) \
        or seconds_to_timeframe(base_seconds * 2)
