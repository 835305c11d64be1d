"""What the checks share: computing a strategy's raw signal columns and loading a check's inputs.

A check runs on one symbol's candles (a DataFrame) or, for a strategy trading several symbols together, on
``Together``: every traded symbol's candles on the union of their times, cut and windowed by position on that
union exactly as one frame is. Signal columns are then keyed ``"SYMBOL column"`` (``split_key`` parts them), so
the checks compare every column of every symbol the same way and name the symbol that differs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from systrade.data.load import Candles, load_candles, load_inputs
from systrade.data.readers import DEFAULT_MAX_FILE_MB
from systrade.errors import UserError
from systrade.sim.rules import SIGNAL_COLUMNS
from systrade.strategy import (
    Folders,
    Strategy,
    StrategyRef,
    build_strategy,
    call_signals,
    call_signals_together,
    load_strategy,
    parse_param_overrides,
)


class Together:
    """Several symbols' candles on the union of their times; ``iloc[a:b]`` keeps each symbol's candles whose times
    fall in that slice of the union (what a cut or a window of one frame is for one symbol)."""

    def __init__(self, frames: dict[str, pd.DataFrame], index: pd.DatetimeIndex | None = None) -> None:
        self.frames = frames
        if index is None:
            index = next(iter(frames.values())).index
            for frame in list(frames.values())[1:]:
                index = index.union(frame.index)
        self.index = index

    def __len__(self) -> int:
        return len(self.index)

    @property
    def iloc(self) -> _Positions:
        return _Positions(self)


class _Positions:
    def __init__(self, data: Together) -> None:
        self.data = data

    def __getitem__(self, where: slice) -> Together:
        times = self.data.index[where]
        if len(times) == 0:
            return Together({s: f.iloc[:0] for s, f in self.data.frames.items()}, times)
        return Together({s: f.loc[times[0]:times[-1]] for s, f in self.data.frames.items()}, times)


CheckData = pd.DataFrame | Together


def split_key(key: str) -> tuple[str | None, str]:
    """``"SPY entries"`` -> ``("SPY", "entries")``; ``"entries"`` (one symbol) -> ``(None, "entries")``."""
    symbol, _, column = key.rpartition(" ")
    return (symbol or None), column


def raw_signals(strategy: Strategy, frame: CheckData, fill: bool = True) -> dict[str, np.ndarray | None]:
    """The strategy's four signal columns on ``frame`` as validated boolean arrays, computed on a copy so the
    strategy cannot change ``frame``. A column it does not give is all False, or None with ``fill=False`` (what
    ``positions.resolve_signals`` needs to mirror a long-only strategy for shorts).

    On ``Together`` each symbol's columns are keyed ``"SYMBOL column"`` and laid on the union of times (False
    where the symbol has no candle)."""
    if isinstance(frame, Together):
        return _together_signals(strategy, frame, fill)
    arrays = call_signals(strategy, frame)
    if not fill:
        return arrays
    return {k: (v if v is not None else np.zeros(len(frame), dtype=bool)) for k, v in arrays.items()}


def _together_signals(strategy: Strategy, data: Together, fill: bool) -> dict[str, np.ndarray | None]:
    out: dict[str, np.ndarray | None] = {}
    for symbol, arrays in call_signals_together(strategy, data.frames).items():
        rows = data.index.get_indexer(data.frames[symbol].index)
        for column in SIGNAL_COLUMNS:
            values = arrays[column]
            if values is None and not fill:
                out[f"{symbol} {column}"] = None
                continue
            wide = np.zeros(len(data), dtype=bool)
            if values is not None:
                wide[rows] = values
            out[f"{symbol} {column}"] = wide
    return out


def first_difference(a: dict[str, np.ndarray], b: dict[str, np.ndarray], offset: int = 0
                     ) -> tuple[int, str] | None:
    """The earliest bar (``offset`` + position) where any column of ``a`` and ``b`` differs, with that column."""
    best: tuple[int, str] | None = None
    for column in a:
        where = np.flatnonzero(a[column] != b[column])
        if where.size and (best is None or where[0] + offset < best[0]):
            best = (int(where[0]) + offset, column)
    return best


@dataclass
class CheckInputs:
    """A strategy instance and the candles a check runs on: one series, or every symbol a strategy trades."""

    ref: StrategyRef
    strategy: Strategy
    candles: Candles  # the (first) traded symbol's
    traded: list[Candles] = field(default_factory=list)  # every traded symbol's (one for most strategies)

    @property
    def data(self) -> CheckData:
        """What the check computes signals on: the one frame, or ``Together`` for several symbols."""
        if len(self.traded) > 1:
            return Together({c.symbol: c.frame for c in self.traded})
        return self.candles.frame

    @property
    def symbols(self) -> list[str]:
        return [c.symbol for c in self.traded]


def load_check_inputs(strategy: str, params: list[str] | None, strategies_dir: Folders, data_dir: str,
                      data_file: str | None = None, exchange: str | None = None, symbol: str | list[str] | None = None,
                      timeframe: str | None = None, start: str | None = None, end: str | None = None, *,
                      date_format: str | None = None, max_file_mb: float | None = DEFAULT_MAX_FILE_MB) -> CheckInputs:
    """Load and validate a strategy (with ``--param`` overrides) and its candles: one series (the sample by
    default), or every symbol of a strategy trading several together (from the store)."""
    ref = load_strategy(strategy, strategies_dir)
    instance = build_strategy(ref, parse_param_overrides(params))
    symbols = [symbol] if isinstance(symbol, str) else list(symbol or [])
    if ref.cls.symbols:
        together = ", ".join(ref.cls.symbols)
        if data_file:
            raise UserError(f"strategy {ref.cls.strategy_name()} trades {together} together; it reads them from the "
                            "store (--exchange), not from one --data file")
        if symbols and {s.upper() for s in symbols} != {s.upper() for s in ref.cls.symbols}:
            raise UserError(f"strategy {ref.cls.strategy_name()} trades {together} together; drop --symbol, the "
                            "check covers all of them")
        symbols = list(ref.cls.symbols)
    candles = load_candles(data_dir, data_file, exchange, symbols, timeframe, start, end,
                           date_format=date_format, max_file_mb=max_file_mb)
    if len(candles) != 1 and not ref.cls.symbols:  # (several --symbol for a one-symbol strategy)
        raise UserError("checks run on one series; give one --symbol or one --data file")
    if ref.cls.inputs:
        for series in candles:
            load_inputs(series, list(ref.cls.inputs), data_dir, ref.cls.strategy_name())
    return CheckInputs(ref, instance, candles[0], candles)
