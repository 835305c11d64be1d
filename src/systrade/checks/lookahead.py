"""Lookahead check: does any signal change when later candles are removed?

A signal on bar t may use data up to bar t's close. So the signals computed on the first c bars must
equal, bar for bar, the first c values of the signals computed on the whole history; if a column differs
at some bar before the cut, that bar's signal depended on candles after it. Prefix truncation leaves every
input up to the cut unchanged, so a causal strategy reproduces its values exactly, warmup bars included:
nothing is excused.

The check does not recompute once per bar. It cuts the data at a few dozen points, chosen so that each
kind of peeking shows: ``shift(-k)`` and centred windows differ at the last bars before any cut;
statistics of the whole sample (its mean or maximum) differ almost everywhere; a resample to a higher
timeframe without shifting differs only when the cut falls inside a bucket, so cuts are moved off the
boundaries of common timeframes (15m ... 1 month); ``bfill`` of a leading gap differs only when the cut
falls inside the gap, so there are short cuts at the start (and right after the declared warmup).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from systrade.checks.common import CheckData, first_difference, raw_signals, split_key
from systrade.errors import UserError
from systrade.strategy import Strategy

SPREAD_CUTS = 48
EARLY_CUTS = (2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377)
_GOLDEN = 0.6180339887498949
_BUCKETS = [pd.Timedelta(x) for x in ("15min", "30min", "1h", "2h", "4h", "6h", "12h", "1D")]


@dataclass
class LookaheadReport:
    """Outcome of the lookahead check (``--json`` schema: these fields)."""

    strategy: str
    params: dict[str, Any]
    bars: int
    cuts: int
    biased: bool
    first_bar: int | None = None  # position in the data of the earliest biased bar found
    first_time: str | None = None  # its open time (ISO, UTC)
    column: str | None = None  # the signal column that differs there
    symbol: str | None = None  # whose signal it is, for a strategy trading several symbols
    cut: int | None = None  # the truncated length that revealed it
    truncated_value: bool | None = None
    full_value: bool | None = None
    biased_cuts: int = 0
    skipped_cuts: list[str] = field(default_factory=list)  # cuts where signals() failed on the short data
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def message(self) -> str:
        if not self.biased:
            return (f"no lookahead: every signal column matched at every bar before each of {self.cuts} cuts "
                    f"of {self.bars} bars")
        whose = f"{self.symbol} " if self.symbol else ""
        return (f"lookahead: {whose}{self.column} at bar {self.first_bar} ({self.first_time}) is {self.full_value} "
                f"with the full history but {self.truncated_value} when the data ends at bar {self.cut - 1}: the "
                f"signal used later candles ({self.biased_cuts} of {self.cuts} cuts differ)")


def _bar_spacing(index: pd.DatetimeIndex) -> pd.Timedelta:
    if len(index) < 2:
        return pd.Timedelta(0)
    return pd.Timedelta(int(np.median(np.diff(index.asi8))), unit=index.unit)


def _inside_buckets(before: pd.Timestamp, after: pd.Timestamp, spacing: pd.Timedelta) -> bool:
    """True when ``before`` and ``after`` share every bucket coarser than the bars (15m ... day, week, month)."""
    for bucket in _BUCKETS:
        if bucket > spacing and before.floor(bucket) != after.floor(bucket):
            return False
    if spacing < pd.Timedelta("7D"):
        if (before - pd.Timedelta(days=before.weekday())).normalize() != \
                (after - pd.Timedelta(days=after.weekday())).normalize():
            return False
    return (before.year, before.month) == (after.year, after.month)


def cut_points(index: pd.DatetimeIndex, warmup: int = 0, spread: int = SPREAD_CUTS) -> list[int]:
    """Truncated lengths to test: short ones at the start, a few after ``warmup``, ``spread`` spread over the
    data off bucket boundaries (deterministic golden-ratio jitter), and the data minus its last bar."""
    n = len(index)
    spacing = _bar_spacing(index)
    cuts = {c for c in EARLY_CUTS if c < n}
    cuts.update(c for c in (warmup + 1, warmup + 2, warmup + 5, 2 * warmup + 3) if 2 <= c < n)
    low = min(n - 1, max(EARLY_CUTS[-1], 2 * warmup))
    for k in range(spread):
        jitter = ((k + 1) * _GOLDEN) % 1.0 - 0.5
        c = int(low + (k + 0.5 + 0.8 * jitter) * (n - low) / spread)
        for candidate in range(c, min(n, c + 24)):
            if 2 <= candidate < n and _inside_buckets(index[candidate - 1], index[candidate], spacing):
                c = candidate
                break
        if 2 <= c < n:
            cuts.add(c)
    if n > 2:
        cuts.add(n - 1)
    return sorted(cuts)


def check_lookahead(strategy: Strategy, frame: CheckData, warmup: int | None = None) -> LookaheadReport:
    """Compare every signal column at every bar before each cut with the full-history signals."""
    started = time.perf_counter()
    name = strategy.strategy_name()
    if len(frame) < 3:
        raise UserError(f"the lookahead check needs at least 3 candles; the data has {len(frame)}")
    full = raw_signals(strategy, frame)
    cuts = cut_points(frame.index, int(warmup if warmup is not None else getattr(strategy, "warmup", 0) or 0))
    report = LookaheadReport(name, strategy.param_values, len(frame), len(cuts), False)
    best: tuple[int, str, int] | None = None
    for cut in cuts:
        try:
            truncated = raw_signals(strategy, frame.iloc[:cut])
        except Exception as error:  # a strategy may not cope with a handful of candles
            report.skipped_cuts.append(f"{cut} bars: {type(error).__name__}: {error}")
            continue
        found = first_difference(truncated, {k: values[:cut] for k, values in full.items()})
        if found is None:
            continue
        report.biased_cuts += 1
        if best is None or found[0] < best[0]:
            best = (found[0], found[1], cut)
            report.truncated_value = bool(truncated[found[1]][found[0]])
    if len(report.skipped_cuts) == len(cuts):
        raise UserError(f"strategy {name}: signals() failed on every truncated copy of the data "
                        f"(first: {report.skipped_cuts[0]}); fix the strategy")
    if best is not None:
        bar, column, cut = best
        report.biased = True
        report.first_bar, report.cut = bar, cut
        report.symbol, report.column = split_key(column)
        report.first_time = frame.index[bar].isoformat()
        report.full_value = bool(full[column][bar])
    report.seconds = time.perf_counter() - started
    return report
