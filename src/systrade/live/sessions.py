"""When a stock bot ticks: at the open of each of its bars on the market's calendar, never on a holiday.

A signal of bar t acts at bar t+1's open (docs/semantics.md), and a stock market has quotes only in session. So
a stock bot ticks when its next bar opens: a daily bot at each session's open (the previous session's candle
has closed; the order meets the opening market, as the backtest fills it), an intraday bot at each bar's open
inside the session (the first bar of a session acts on the previous session's last bar). An hourly bar that
opens on the clock before the market does (09:00 for a 09:30 open) ticks at the market's open. Nothing fires
on weekends and holidays, and nothing fires after the close: an order decided then waits for the next open.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
from apscheduler.triggers.base import BaseTrigger

from systrade.data import calendars
from systrade.data.timeframes import timeframe_seconds

LOOKAHEAD_DAYS = 14  # enough to reach the next session over any holiday run


def tick_times(calendar: str, timeframe: str, start: pd.Timestamp, end: pd.Timestamp,
               delay_seconds: float = 0.0) -> pd.DatetimeIndex:
    """The ticks of a bot between ``start`` and ``end``: each bar's open (not before its session's open), plus
    ``delay_seconds``."""
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    table = calendars.schedule(calendar, start - pd.Timedelta(days=1), end)
    if timeframe_seconds(timeframe) >= 86_400:
        opens = pd.DatetimeIndex(table["open"])
    else:
        bars = calendars.bar_opens(calendar, timeframe, start - pd.Timedelta(days=1), end)
        closes = pd.DatetimeIndex(table["close"]).tz_convert("UTC")
        session = closes.searchsorted(bars, side="right")  # each bar's session: the first to close after it opens
        session_open = pd.DatetimeIndex(table["open"]).tz_convert("UTC")[session]
        opens = pd.DatetimeIndex([max(bar, first) for bar, first in zip(bars, session_open, strict=True)])
    times = opens.tz_convert("UTC") + pd.Timedelta(seconds=delay_seconds)
    return times[(times >= start) & (times <= end)]


class SessionTrigger(BaseTrigger):
    """An APScheduler trigger firing at ``tick_times`` of a calendar and timeframe."""

    def __init__(self, calendar: str, timeframe: str, delay_seconds: float = 0.0) -> None:
        self.calendar = calendar
        self.timeframe = timeframe
        self.delay_seconds = delay_seconds

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        after = pd.Timestamp(max(previous_fire_time, now) if previous_fire_time else now).tz_convert("UTC")
        times = tick_times(self.calendar, self.timeframe, after, after + pd.Timedelta(days=LOOKAHEAD_DAYS),
                           self.delay_seconds)
        later = times[times > after] if previous_fire_time is not None else times[times >= after]
        return later[0].to_pydatetime() if len(later) else None

    def __str__(self) -> str:
        return f"session[{self.calendar} {self.timeframe} +{self.delay_seconds:g}s]"


def next_tick(calendar: str, timeframe: str, now: datetime, delay_seconds: float = 0.0) -> datetime | None:
    """The next tick after ``now`` (for messages: "the order waits for ...")."""
    stamp = pd.Timestamp(now).tz_convert("UTC")
    times = tick_times(calendar, timeframe, stamp + timedelta(microseconds=1),
                       stamp + pd.Timedelta(days=LOOKAHEAD_DAYS), delay_seconds)
    return times[0].to_pydatetime() if len(times) else None
