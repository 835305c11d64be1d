"""Find what is wrong with a candle series: gaps, duplicates, order, NaN, impossible bars."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from systrade.data.timeframes import infer_timeframe, timeframe_seconds
from systrade.errors import UserError

PRICES = ["open", "high", "low", "close"]


@dataclass
class Problem:
    """One kind of problem, how often it occurs and where it first occurs."""

    kind: str
    count: int
    first: str

    def to_dict(self) -> dict:
        return {"kind": self.kind, "count": self.count, "first": self.first}


def find_problems(frame: pd.DataFrame, timeframe: str | None = None, calendar: str | None = None) -> list[Problem]:
    """Every problem in ``frame``; an empty list means the series is clean.

    Gaps: with a market ``calendar`` (a stock broker's series), each run of sessions (or intraday bars of
    sessions) the calendar expects and the series lacks, and candles where the market had no session are
    reported; a holiday is not a gap. Without one, a step larger than the timeframe, except that daily data with
    no weekend candles (stocks) may step up to 4 days (weekend plus a holiday).
    """
    problems: list[Problem] = []
    index = frame.index

    def add(kind: str, mask: np.ndarray) -> None:
        if mask.any():
            problems.append(Problem(kind, int(mask.sum()), str(index[int(np.argmax(mask))])))

    add("duplicate timestamp", index.duplicated(keep="first"))
    steps = np.diff(index.as_unit("ns").asi8)  # any resolution the frame came with, in ns
    add("unsorted (timestamp earlier than the previous one)", np.concatenate([[False], steps < 0]))
    add("NaN in open/high/low/close", frame[PRICES].isna().any(axis=1).to_numpy())
    add("high < low", (frame["high"] < frame["low"]).to_numpy())
    body_high = frame[["open", "close"]].max(axis=1)
    body_low = frame[["open", "close"]].min(axis=1)
    add("open/close outside the high-low range",
        ((frame["high"] < body_high) | (frame["low"] > body_low)).to_numpy()
        & (frame["high"] >= frame["low"]).to_numpy())
    add("non-positive price", (frame[PRICES] <= 0).any(axis=1).to_numpy())
    add("negative volume", (frame["volume"] < 0).to_numpy())
    if calendar is not None and len(index) >= 2 and (steps > 0).all():
        problems.extend(_calendar_gaps(index, timeframe or infer_timeframe(index), calendar))
    elif len(index) >= 2 and (steps > 0).any():
        tf_seconds = timeframe_seconds(timeframe or infer_timeframe(index))
        allowed = tf_seconds * 1_000_000_000
        trading_days_only = tf_seconds == 86400 and not (index.day_of_week >= 5).any()
        if trading_days_only:
            allowed = 4 * 86400 * 1_000_000_000
        add("gap (missing candles)", np.concatenate([[False], steps > allowed]))
    return problems


def _calendar_gaps(index: pd.DatetimeIndex, timeframe: str, calendar: str) -> list[Problem]:
    from systrade.data import calendars

    expected = calendars.bar_opens(calendar, timeframe, index.min(), index.max())
    missing = expected.difference(index.as_unit("ns"))
    problems = []
    runs = calendars.gap_runs(missing, expected)
    if runs:
        problems.append(Problem(f"gap (missing {calendar} sessions or bars; {len(missing)} missing)", len(runs),
                                str(runs[0])))
    outside = ~index.as_unit("ns").isin(expected)
    if outside.any():
        problems.append(Problem(f"candle outside the {calendar} sessions (a holiday, a weekend or extended hours)",
                                int(outside.sum()), str(index[int(np.argmax(outside))])))
    return problems


def gap_count(frame: pd.DataFrame, timeframe: str, calendar: str | None = None) -> int:
    """Number of gaps (for `data list`)."""
    return next((p.count for p in find_problems(frame, timeframe, calendar) if p.kind.startswith("gap")), 0)


def prepare(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Make a frame fit to backtest: sorted, unique, no NaN prices; raise UserError otherwise."""
    if not frame.index.is_monotonic_increasing:
        frame = frame.sort_index(kind="stable")
    duplicated = frame.index.duplicated()
    if duplicated.any():
        raise UserError(f"{source} has {int(duplicated.sum())} duplicate timestamps (first "
                        f"{frame.index[duplicated][0]}); run `systrade data validate` and remove them")
    nan_rows = frame[PRICES].isna().any(axis=1)
    if nan_rows.any():
        raise UserError(f"{source} has {int(nan_rows.sum())} candles with missing prices (first "
                        f"{frame.index[nan_rows.to_numpy()][0]}); fill or remove them")
    return frame
