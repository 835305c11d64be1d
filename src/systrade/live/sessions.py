"""When a stock bot ticks: after each of its bars closes, and at each session's open; never on a holiday.

A stock market makes bars only in session. A bot decides after each bar closes (plus the daemon's tick delay):
a daily bot after the session's close, an intraday bot after each bar inside the session. An order decided
while the market is closed is placed for the next session's open: Alpaca queues a day order itself, so it is
sent at once; KIS's mock trading and paper mode wait, and the tick at the session's open (plus the delay) sends
or fills it, sized at the open's prices, as the backtest fills a signal at the next bar's open. Nothing fires on
weekends and holidays.
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
    """The ticks of a bot between ``start`` and ``end``: each bar's close (a session's close for daily bars, the
    earlier of the bar's end and the session's close for intraday ones) and each session's open, plus
    ``delay_seconds``."""
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    table = calendars.schedule(calendar, start - pd.Timedelta(days=1), end)
    opens = pd.DatetimeIndex(table["open"]).tz_convert("UTC")
    closes = pd.DatetimeIndex(table["close"]).tz_convert("UTC")
    if timeframe_seconds(timeframe) >= 86_400:
        ends = closes
    else:
        bars = calendars.bar_opens(calendar, timeframe, start - pd.Timedelta(days=1), end)
        session = closes.searchsorted(bars, side="right")  # each bar's session: the first to close after it opens
        step = pd.Timedelta(seconds=timeframe_seconds(timeframe))
        ends = pd.DatetimeIndex([min(bar + step, close) for bar, close in zip(bars, closes[session], strict=True)])
    times = opens.append(ends).unique().sort_values() + pd.Timedelta(seconds=delay_seconds)
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
