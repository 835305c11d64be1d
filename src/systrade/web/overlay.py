"""The strategy's view of a bot's candles: its entry and exit signals and the series it asks to be drawn."""

from __future__ import annotations

from typing import Any

import pandas as pd

from systrade.strategy import build_strategy, load_strategy, validate_signals


def strategy_overlay(bot: Any, folders: list[str], candles: pd.DataFrame) -> dict[str, Any]:
    """``signals`` (column -> bar times where it is true), ``plots`` (name -> Series on the candles) and ``error``
    (why they are missing: the bot is not configured here, or the strategy failed on these candles)."""
    empty: dict[str, Any] = {"signals": {}, "plots": {}, "error": None}
    if bot is None:
        return {**empty, "error": "the bot is not in this configuration's [paper] bots: its strategy is unknown here"}
    try:
        strategy = build_strategy(load_strategy(bot.strategy, folders), bot.params)
        result = strategy.signals(candles.copy(deep=False))
        arrays = validate_signals(result, candles, strategy.strategy_name())
    except Exception as exc:  # a UserError or a strategy's own mistake must not take the page down
        return {**empty, "error": f"strategy {bot.strategy}: {exc}"}
    signals = {column: [t.isoformat() for t in candles.index[values]] for column, values in arrays.items()
               if values is not None}
    plots = {}
    for name, series in (getattr(result, "plots", None) or {}).items():
        values = series.to_numpy(dtype=float) if isinstance(series, pd.Series) else pd.Series(series).to_numpy(float)
        if len(values) == len(candles):
            plots[str(name)] = pd.Series(values, index=candles.index, name=str(name))
    return {"signals": signals, "plots": plots, "error": None}
