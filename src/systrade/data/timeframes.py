"""Timeframe strings (``1m``, ``4h``, ``1d``) and inferring them from a candle index."""

from __future__ import annotations

import re

import pandas as pd

from systrade.errors import UserError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PATTERN = re.compile(r"^(\d+)([smhdw])$")


def timeframe_seconds(timeframe: str) -> int:
    """Seconds in one candle of ``timeframe`` (``"1h"`` -> 3600)."""
    match = _PATTERN.match(timeframe.strip())
    if not match or int(match.group(1)) == 0:
        raise UserError(f"timeframe {timeframe!r} is not valid; use a number and a unit s/m/h/d/w, e.g. 1h or 1d")
    return int(match.group(1)) * _UNITS[match.group(2)]


def seconds_to_timeframe(seconds: float) -> str:
    """Largest whole unit that expresses ``seconds`` (3600 -> ``1h``, 5400 -> ``90m``)."""
    seconds = int(round(seconds))
    for unit, size in sorted(_UNITS.items(), key=lambda kv: -kv[1]):
        if seconds % size == 0 and seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def utc_timestamp(text: str, option: str) -> pd.Timestamp:
    """Parse a user's date (``2024-01-31``, ``2024-01-31T13:00Z``, with or without zone) as UTC."""
    try:
        stamp = pd.Timestamp(text)
    except (ValueError, TypeError):
        raise UserError(f"{option} {text!r} is not a date; use ISO format like 2024-01-31 or 2024-01-31T13:00Z") \
            from None
    if pd.isna(stamp):
        raise UserError(f"{option} {text!r} is not a date; use ISO format like 2024-01-31")
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def weekdays_only(index: pd.DatetimeIndex, timeframe: str) -> bool:
    """Whether ``index`` is a daily series without weekend candles, as a stock market's (not crypto's, which trades
    every day): daily candles, at least 20 of them over at least 4 weeks, falling on at most 5 of the 7 weekdays
    (Monday to Friday, or Sunday to Thursday where a market's midnight is the previous day in UTC)."""
    if timeframe_seconds(timeframe) != 86400 or len(index) < 20 or index[-1] - index[0] < pd.Timedelta(days=28):
        return False
    return len(set(index.day_of_week)) <= 5


def infer_timeframe(index: pd.DatetimeIndex) -> str:
    """The most common spacing between candles, as a timeframe string.

    Daily stock data (no weekends) still infers ``1d`` because the mode ignores weekend gaps.
    """
    if len(index) < 2:
        raise UserError("cannot infer the timeframe from fewer than 2 candles; pass --timeframe")
    diffs = pd.Series(index.sort_values()).diff().dropna()
    diffs = diffs[diffs > pd.Timedelta(0)]
    if diffs.empty:
        raise UserError("cannot infer the timeframe: all timestamps are equal; pass --timeframe")
    return seconds_to_timeframe(diffs.mode().iloc[0].total_seconds())
