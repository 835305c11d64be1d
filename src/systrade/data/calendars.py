"""Market calendars of the stock brokers' markets (``exchange_calendars``): sessions, holidays, bar times.

A stock market trades in sessions: no weekends, no holidays, a few hours a day. A missing session is a gap in
the data and a holiday is none; a year has the calendar's sessions, not 365 days; a daemon ticks only while
the market trades. Calendars are built lazily (each takes a second or two): annualising uses the table of
sessions per year below, which the tests check against the calendars themselves.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from systrade.data.timeframes import timeframe_seconds

VENUE_CALENDARS = {"alpaca": "XNYS", "kis": "XKRX"}  # the market each broker trades
# Sessions per year, the mean over 2015-2024 of each calendar (checked by tests/test_calendars.py).
SESSIONS_PER_YEAR = {"XNYS": 251.6, "XKRX": 245.8}
# The regular session of each market in local time: its opening (seconds after midnight) and length.
REGULAR_SESSION = {"XNYS": (9 * 3600 + 1800, 6 * 3600 + 1800), "XKRX": (9 * 3600, 6 * 3600 + 1800)}
DAY_NS = 86_400 * 1_000_000_000


def calendar_name(venue: str | None) -> str | None:
    """The calendar of a venue (an exchange folder of the store or a bot's exchange), None for crypto (24/7)."""
    return VENUE_CALENDARS.get(venue or "")


@lru_cache(maxsize=8)
def _calendar(name: str, start_year: int) -> Any:
    import exchange_calendars

    return exchange_calendars.get_calendar(name, start=pd.Timestamp(f"{start_year}-01-01"))


def calendar(name: str, since: pd.Timestamp | None = None) -> Any:
    """The ``exchange_calendars`` calendar ``name`` covering ``since`` (default: its last twenty years)."""
    year = pd.Timestamp.now().year - 19
    if since is not None:
        year = min(_utc(since).year, year)
    return _calendar(name, max(year, 1990))


def schedule(name: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """The sessions whose date lies in ``[start, end]`` with their UTC ``open`` and ``close``, indexed by date."""
    start, end = _utc(start).normalize(), _utc(end).normalize()
    cal = calendar(name, start)
    first, last = max(start.tz_localize(None), cal.first_session), min(end.tz_localize(None), cal.last_session)
    if first > last:
        return pd.DataFrame({"open": pd.Series(dtype="datetime64[ns, UTC]"),
                             "close": pd.Series(dtype="datetime64[ns, UTC]")})
    table = cal.schedule.loc[first:last, ["open", "close"]]
    return table


def bar_opens(name: str, timeframe: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DatetimeIndex:
    """The bars a market makes between ``start`` and ``end`` (inclusive): daily bars at 00:00 UTC of each session
    date; intraday bars at their UTC open time, aligned on the clock as brokers aggregate them (an hourly bar of a
    session opening at 09:30 opens at 09:00 and holds its first half hour), while they open before the close."""
    seconds = timeframe_seconds(timeframe)
    table = schedule(name, start, end)
    if seconds >= 86_400:
        return pd.DatetimeIndex(table.index.tz_localize("UTC"), name="time").as_unit("ns")
    step = seconds * 1_000_000_000
    opens = table["open"].dt.tz_convert("UTC").astype("int64").to_numpy() // step * step
    closes = table["close"].dt.tz_convert("UTC").astype("int64").to_numpy()
    counts = -((opens - closes) // step)  # bars per session: ceil((close - first bar open) / step)
    stamps = np.repeat(opens, counts) + step * (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts,
                                                                                    counts))
    index = pd.DatetimeIndex(pd.to_datetime(stamps, utc=True), name="time").as_unit("ns")
    return index[(index >= _utc(start)) & (index <= _utc(end))]


def is_open(name: str, when: pd.Timestamp) -> bool:
    """Whether the market is in session at ``when`` (regular hours; early closes and holidays included)."""
    when = _utc(when)
    table = schedule(name, when - pd.Timedelta(days=1), when)
    return bool(((table["open"] <= when) & (when < table["close"])).any())


def missing_bars(name: str, index: pd.DatetimeIndex, timeframe: str) -> pd.DatetimeIndex:
    """The bars the calendar expects between the first and last of ``index`` that ``index`` lacks."""
    if len(index) < 2:
        return pd.DatetimeIndex([], tz="UTC", name="time")
    expected = bar_opens(name, timeframe, index.min(), index.max())
    return expected.difference(index.as_unit("ns"))


def gap_runs(missing: pd.DatetimeIndex, expected: pd.DatetimeIndex) -> list[pd.Timestamp]:
    """The first bar of each run of consecutive missing bars (runs are consecutive in ``expected``)."""
    if len(missing) == 0:
        return []
    positions = np.sort(expected.get_indexer(missing))
    starts = positions[np.concatenate([[True], np.diff(positions) > 1])]
    return [expected[int(i)] for i in starts]


def off_session(name: str, index: pd.DatetimeIndex, timeframe: str) -> np.ndarray:
    """Which bars of ``index`` the calendar has no session for (a weekend, a holiday, extended hours)."""
    if len(index) == 0:
        return np.zeros(0, dtype=bool)
    expected = bar_opens(name, timeframe, index.min(), index.max())
    return ~index.as_unit("ns").isin(expected)


def session_candles(frame: pd.DataFrame, name: str, timeframe: str) -> pd.DataFrame:
    """``frame`` without its candles outside the calendar's sessions (extended hours), for intraday timeframes."""
    if timeframe_seconds(timeframe) >= 86_400 or frame.empty:
        return frame
    return frame[~off_session(name, frame.index, timeframe)]


def bars_per_year(name: str, timeframe: str) -> float:
    """Bars a year of this market makes: sessions per year times the bars of a regular session."""
    sessions = SESSIONS_PER_YEAR[name]
    seconds = timeframe_seconds(timeframe)
    if seconds >= 86_400:
        return sessions * 86_400 / seconds
    opening, length = REGULAR_SESSION[name]
    return sessions * -(-(opening % seconds + length) // seconds)


def year_days(name: str, timeframe: str) -> float:
    """Annualisation as "days per year" of continuous time (what the metrics take): bars per year x bar length."""
    return bars_per_year(name, timeframe) * timeframe_seconds(timeframe) / 86_400


def _utc(stamp: Any) -> pd.Timestamp:
    stamp = pd.Timestamp(stamp)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
