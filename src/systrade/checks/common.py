"""What the checks share: computing a strategy's raw signal columns and loading a check's inputs."""

from __future__ import annotations

from dataclasses import dataclass

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
    load_strategy,
    parse_param_overrides,
    refuse_several_symbols,
)


def raw_signals(strategy: Strategy, frame: pd.DataFrame, fill: bool = True) -> dict[str, np.ndarray | None]:
    """The strategy's four signal columns on ``frame`` as validated boolean arrays, computed on a copy so the
    strategy cannot change ``frame``. A column it does not give is all False, or None with ``fill=False`` (what
    ``positions.resolve_signals`` needs to mirror a long-only strategy for shorts)."""
    arrays = call_signals(strategy, frame)
    if not fill:
        return arrays
    return {k: (v if v is not None else np.zeros(len(frame), dtype=bool)) for k, v in arrays.items()}


def first_difference(a: dict[str, np.ndarray], b: dict[str, np.ndarray], offset: int = 0
                     ) -> tuple[int, str] | None:
    """The earliest bar (``offset`` + position) where any column of ``a`` and ``b`` differs, with that column."""
    best: tuple[int, str] | None = None
    for column in SIGNAL_COLUMNS:
        where = np.flatnonzero(a[column] != b[column])
        if where.size and (best is None or where[0] + offset < best[0]):
            best = (int(where[0]) + offset, column)
    return best


@dataclass
class CheckInputs:
    """A strategy instance and the one series of candles a check runs on."""

    ref: StrategyRef
    strategy: Strategy
    candles: Candles


def load_check_inputs(strategy: str, params: list[str] | None, strategies_dir: Folders, data_dir: str,
                      data_file: str | None = None, exchange: str | None = None, symbol: str | None = None,
                      timeframe: str | None = None, start: str | None = None, end: str | None = None, *,
                      date_format: str | None = None, max_file_mb: float | None = DEFAULT_MAX_FILE_MB) -> CheckInputs:
    """Load and validate a strategy (with ``--param`` overrides) and one series of candles (the sample by default)."""
    ref = load_strategy(strategy, strategies_dir)
    refuse_several_symbols(ref.cls, "`systrade check`")
    instance = build_strategy(ref, parse_param_overrides(params))
    candles = load_candles(data_dir, data_file, exchange, [symbol] if symbol else [], timeframe, start, end,
                           date_format=date_format, max_file_mb=max_file_mb)
    if len(candles) != 1:
        raise UserError("checks run on one series; give one --symbol or one --data file")
    if ref.cls.inputs:
        load_inputs(candles[0], list(ref.cls.inputs), data_dir, ref.cls.strategy_name())
    return CheckInputs(ref, instance, candles[0])
