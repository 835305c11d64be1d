"""Warmup check: how many candles of history a tick needs for its signals to equal the full history's.

The daemon computes signals on its last N closed candles and acts on the last bar. Rolling windows need
their length plus what their crossings look back; recursive indicators (EMA, Wilder's RSI) never forget
their start completely, so they need more than their window before their booleans stop differing.

Measured, not derived: the strategy runs on windows of the data that start at many different bars.
Signals computed on ``data[s:s+W]`` at its k-th bar are what a tick with k+1 candles of history would
see (a tick's strategy sees nothing later, the lookahead check makes sure). Comparing each window with the
full-history signals at every bar tests every history length at as many end positions as there are
starts, with one strategy call per start instead of one per (length, end). The warmup is one more than
the longest history that still gave a different signal anywhere (so any shorter history is known to be
wrong somewhere). Windows start short (2,048 bars, at most half the data) and double while the differences
reach past half of them.

One kind of difference is not about history: at a near-tie (a fast and a slow average equal to the last
digit) the boolean can flip with the float rounding of rolling sums, which depends on where the window
starts. Such a difference comes back in windows several times longer; it is reported separately
(``rounding_bars``) and does not inflate the warmup.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from systrade.checks.common import CheckData, raw_signals, split_key
from systrade.errors import UserError
from systrade.strategy import Strategy

STARTS = 160
FIRST_WINDOW = 2048
_GOLDEN = 0.6180339887498949


class DataTooShort(UserError):
    """The data is shorter than the history the strategy needs, so no warmup can be measured on it.

    ``needs_more_than``: candles of history known not to be enough (the data must be longer than this)."""

    def __init__(self, message: str, needs_more_than: int) -> None:
        super().__init__(message)
        self.needs_more_than = needs_more_than


@dataclass
class WarmupReport:
    """Outcome of the warmup check (``--json`` schema: these fields)."""

    strategy: str
    params: dict[str, Any]
    bars: int
    warmup: int  # candles of history a tick needs (>= the strategy's declared warmup is not implied)
    declared: int  # the strategy's ``warmup`` attribute
    starts: int  # windows tested
    window: int  # their length (bars)
    ends_tested: int  # (window, bar) pairs compared
    bounded: bool  # False when differences reached the end of the longest window (the data was too short)
    worst_start: str | None = None  # start (ISO) of the window whose longest differing history set the warmup
    worst_time: str | None = None  # the bar (ISO) where it differed
    worst_column: str | None = None
    worst_symbol: str | None = None  # the traded symbol whose signal differed (strategies trading several)
    rounding_bars: list[str] = field(default_factory=list)  # "time column" where the signal flips with float rounding
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def message(self) -> str:
        text = (f"warmup: {self.warmup} candles (signals on the last bar equal the full history's with at "
                f"least this much history; {self.starts} windows of {self.window} bars, {self.ends_tested:,} "
                f"end positions compared; declared warmup {self.declared})")
        if self.rounding_bars:
            text += (f"; {len(self.rounding_bars)} bar(s) flip with float rounding whatever the history (near-ties, "
                     f"first {self.rounding_bars[0]}): a live bot and the backtest may disagree there")
        return text


def _starts(n: int, window: int, count: int) -> list[int]:
    last = max(1, n - window)
    picked = set()
    for k in range(count):
        jitter = ((k + 1) * _GOLDEN) % 1.0 - 0.5
        picked.add(min(n - 2, max(1, int(1 + (k + 0.5 + 0.8 * jitter) * (last - 1) / count))))
    return sorted(picked)


def _longer_windows_differ(strategy: Strategy, frame: CheckData, full: dict, end: int, length: int,
                           column: str) -> bool:
    """Whether windows much longer than ``length`` ending at bar ``end`` also differ from the full history there.

    A difference caused by too little history fades with more history; one caused by float rounding at a
    near-tie (two rolling sums that equal each other to the last digit) depends on where the window starts,
    not on its length, and shows up again in some of the longer windows.
    """
    for factor in (2, 3, 4, 5, 6, 8):
        start = end + 1 - factor * length
        if start <= 0:
            break
        if bool(raw_signals(strategy, frame.iloc[start:end + 1])[column][-1]) != bool(full[column][end]):
            return True
    return False


def measure_warmup(strategy: Strategy, frame: CheckData, starts: int = STARTS,
                   first_window: int = FIRST_WINDOW) -> WarmupReport:
    """The smallest history length whose last-bar signals matched the full history's at every tested end.

    Differences that longer histories reproduce (float rounding at near-ties) do not count towards the
    warmup; they are listed in ``rounding_bars`` instead. Raises ``DataTooShort`` when the data cannot bound the
    warmup: no signal at all in it (every history gives the same nothing), a declared warmup as long as the data,
    or differences that reach the end of the longest window.
    """
    began = time.perf_counter()
    n = len(frame)
    if n < 10:
        raise UserError(f"the warmup check needs at least 10 candles; the data has {n}")
    full = raw_signals(strategy, frame)
    declared = int(getattr(strategy, "warmup", 0) or 0)
    name = strategy.strategy_name()
    if declared >= n:
        raise DataTooShort(f"the data ({n} candles) is too short to measure the warmup of strategy {name}: it "
                           f"declares warmup = {declared}; give more than {2 * declared} candles", declared)
    if not any(values.any() for values in full.values()):
        raise DataTooShort(f"the data ({n} candles) is too short to measure the warmup of strategy {name}: its "
                           "signals are False on every bar, so every history length looks alike; give more candles "
                           "(enough for the strategy to signal)", n - 1)
    largest = n - max(8, min(64, n // 4))  # windows shorter than the data, so that they start at many bars
    window = min(first_window, n // 2)
    rounding: dict[int, str] = {}
    while True:
        need, worst, ends = 1, None, 0
        chosen = _starts(n, window, starts)
        for s in chosen:
            part = frame.iloc[s:s + window]
            signals = raw_signals(strategy, part)
            ends += len(part)
            differing = sorted(((int(i), column) for column in full
                                for i in (signals[column] != full[column][s:s + len(part)]).nonzero()[0]),
                               reverse=True)
            for offset, column in differing:  # the longest differing history first
                if offset + 2 <= need:
                    break
                end = s + offset
                if end in rounding or _longer_windows_differ(strategy, frame, full, end, offset + 1, column):
                    rounding.setdefault(end, column)
                    continue
                need, worst = offset + 2, (s, end, column)  # a history of offset + 1 candles was not enough
                break
        bounded = need <= window // 2
        if bounded or window >= largest:
            break
        window = min(largest, window * 2)
    if not bounded:
        raise DataTooShort(f"the data ({n} candles) is too short to measure the warmup of strategy {name}: signals "
                           f"computed from {need - 1} candles of history still differ from the full history's "
                           f"(windows of {window} bars); it needs more than {need - 1} candles of history, so give "
                           f"at least {2 * need} candles", need - 1)
    report = WarmupReport(name, strategy.param_values, n, need, declared, len(chosen), window,
                          ends, bounded, seconds=time.perf_counter() - began)
    report.rounding_bars = [f"{frame.index[i].isoformat()} {c}" for i, c in sorted(rounding.items())]
    if worst is not None:
        report.worst_start = frame.index[worst[0]].isoformat()
        report.worst_time = frame.index[worst[1]].isoformat()
        report.worst_symbol, report.worst_column = split_key(worst[2])
    return report


def warmup_for_ticks(strategy: Strategy, frame: CheckData) -> int:
    """The warmup a replay's ticks are given on ``frame``: the measured one, or the whole data when the data is
    too short to measure it (then each tick sees every candle up to its bar: never too little history)."""
    if len(frame) < 10:
        return len(frame)
    try:
        return measure_warmup(strategy, frame).warmup
    except DataTooShort:
        return len(frame)
