"""Run signals through ``vectorbt.Portfolio.from_signals`` under the shared position rules.

vectorbt is imported lazily (it takes seconds) and its Rust engine is used when
``vectorbt-rust`` is installed: it needs no numba compilation, which otherwise costs
several seconds in every new process.
"""

from __future__ import annotations

import importlib.util
import warnings
from typing import Any

import numpy as np
import pandas as pd

from systrade.positions import PositionRules, resolve_signals, to_fill_bars, vectorbt_order_args

SIGNAL_NAMES = ("entries", "exits", "short_entries", "short_exits")

# vectorbt still uses pandas APIs that pandas 3 deprecates; those warnings are not the user's concern.
warnings.filterwarnings("ignore", module=r"vectorbt(\.|$)")


def engine_name() -> str:
    """``rust`` when vectorbt's Rust engine is installed, else ``numba``."""
    return "rust" if importlib.util.find_spec("vectorbt_rust") is not None else "numba"


def simulate(
    datas: dict[str, pd.DataFrame],
    signals: dict[str, dict[str, np.ndarray | None]],
    rules: PositionRules,
    cash: float,
    bar: pd.Timedelta,
    cash_sharing: bool = False,
) -> Any:
    """Simulate one column per symbol and return the vectorbt Portfolio.

    ``signals`` are the strategy's raw columns per symbol (bar t = where they were computed);
    the position rules move them to the fill bar and pick the sides that trade.
    """
    import vectorbt as vbt

    symbols = list(datas)
    index = datas[symbols[0]].index
    for symbol in symbols[1:]:
        index = index.union(datas[symbol].index)

    def wide(column: str) -> pd.DataFrame:
        return pd.DataFrame({s: datas[s][column].reindex(index) for s in symbols}, index=index)

    fills = {}
    for name in SIGNAL_NAMES:
        columns = {}
        for symbol in symbols:
            resolved = to_fill_bars(resolve_signals(signals[symbol], rules.direction))
            columns[symbol] = pd.Series(resolved[name], index=datas[symbol].index).reindex(index, fill_value=False)
        fills[name] = pd.DataFrame(columns, index=index).astype(bool)

    opens = wide("open")
    return vbt.Portfolio.from_signals(
        close=wide("close"),
        entries=fills["entries"],
        exits=fills["exits"],
        short_entries=fills["short_entries"],
        short_exits=fills["short_exits"],
        price=opens,
        val_price=opens,
        open=opens,
        high=wide("high"),
        low=wide("low"),
        init_cash=cash,
        cash_sharing=cash_sharing,
        group_by=True if cash_sharing else None,
        freq=bar,
        engine=engine_name(),
        **vectorbt_order_args(rules),
    )
