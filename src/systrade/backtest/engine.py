"""Run signals through ``vectorbt.Portfolio.from_signals`` under the shared position rules.

vectorbt is imported lazily (it takes seconds) and its Rust engine is used when
``vectorbt-rust`` is installed: it needs no numba compilation, which otherwise costs
several seconds in every new process.

Granularity is simulated in whole lots: prices are quoted per lot of ``granularity`` units and
vectorbt rounds to whole lots. vectorbt rounds every order (closing ones too) with a float floor,
so ``2.001 / 0.001`` would become 2000 and leave unsellable dust; whole lots are exact integers.
``Simulation`` converts everything back to units.
"""

from __future__ import annotations

import importlib.util
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from systrade.positions import PositionRules, resolve_signals, to_fill_bars, vectorbt_order_args

SIGNAL_NAMES = ("entries", "exits", "short_entries", "short_exits")
TRADE_FIELDS = ["direction", "entry_time", "entry_price", "exit_time", "exit_price", "size", "pnl",
                "return_pct", "fees", "status"]

# vectorbt still uses pandas APIs that pandas 3 deprecates; those warnings are not the user's concern.
warnings.filterwarnings("ignore", module=r"vectorbt(\.|$)")


def engine_name() -> str:
    """``rust`` when vectorbt's Rust engine is installed, else ``numba``."""
    return "rust" if importlib.util.find_spec("vectorbt_rust") is not None else "numba"


@dataclass
class Simulation:
    """A finished simulation, reported in units and prices per unit (not lots)."""

    portfolio: Any
    lot: float

    @property
    def index(self) -> pd.DatetimeIndex:
        """The bars simulated (UTC)."""
        return self.portfolio.wrapper.index.tz_localize("UTC")

    def value(self) -> pd.DataFrame | pd.Series:
        """Equity per bar: one column per symbol, or one series for a cash-sharing group."""
        return _utc(self.portfolio.value())

    def assets(self) -> pd.DataFrame:
        """Position in units per bar and symbol (negative when short)."""
        return _utc(self.portfolio.assets() * self.lot)

    def orders(self) -> pd.DataFrame:
        """Every fill: ``column, time, side, size, price, fees``."""
        records = self.portfolio.orders.records_readable
        return pd.DataFrame({
            "column": records["Column"].to_numpy(),
            "time": pd.to_datetime(records["Timestamp"], utc=True).to_numpy(),
            "side": records["Side"].astype(str).str.lower().to_numpy(),
            "size": records["Size"].to_numpy(dtype=float) * self.lot,
            "price": records["Price"].to_numpy(dtype=float) / self.lot,
            "fees": records["Fees"].to_numpy(dtype=float),
        })

    def trades(self) -> pd.DataFrame:
        """Every trade (closed and open) in the JSON schema's fields plus ``column``.

        Open trades are marked to market at the last close: ``pnl`` is unrealised and ``exit_*`` empty.
        """
        records = self.portfolio.exit_trades.records_readable
        if records.empty:
            return pd.DataFrame(columns=["column", *TRADE_FIELDS])
        status = records["Status"].astype(str).str.lower()
        is_open = (status == "open").to_numpy()
        frame = pd.DataFrame({
            "column": records["Column"].to_numpy(),
            "direction": records["Direction"].astype(str).str.lower().to_numpy(),
            "entry_time": pd.to_datetime(records["Entry Timestamp"], utc=True).to_numpy(),
            "entry_price": records["Avg Entry Price"].to_numpy(dtype=float) / self.lot,
            "exit_time": pd.to_datetime(records["Exit Timestamp"], utc=True).where(~is_open),
            "exit_price": records["Avg Exit Price"].where(~is_open).to_numpy(dtype=float) / self.lot,
            "size": records["Size"].to_numpy(dtype=float) * self.lot,
            "pnl": records["PnL"].to_numpy(dtype=float),
            "return_pct": records["Return"].to_numpy(dtype=float) * 100.0,
            "fees": (records["Entry Fees"] + records["Exit Fees"].where(~is_open, 0.0)).to_numpy(dtype=float),
            "status": status.to_numpy(),
        })
        frame["entry_time"] = pd.to_datetime(frame["entry_time"], utc=True)
        frame["exit_time"] = pd.to_datetime(frame["exit_time"], utc=True)
        return frame


def _utc(frame: pd.DataFrame | pd.Series) -> pd.DataFrame | pd.Series:
    """vectorbt works on a naive index (see ``simulate``): give results their UTC index back."""
    frame.index = frame.index.tz_localize("UTC")
    return frame


def _lot_args(rules: PositionRules) -> tuple[float, dict]:
    """Lot size and the order arguments restated per lot."""
    args = vectorbt_order_args(rules)
    if rules.granularity is None:
        return 1.0, args
    lot = float(rules.granularity)
    args["size_granularity"] = 1.0
    if rules.size != "all" and rules.size_type == "amount":
        lots = float(rules.size) / lot
        args["size"] = float(math.floor(round(lots, 9)))  # 0.043 / 0.001 is 42.99999999999999: 43 lots
    return lot, args


def simulate(
    datas: dict[str, pd.DataFrame],
    signals: dict[str, dict[str, np.ndarray | None]],
    rules: PositionRules,
    cash: float,
    bar: pd.Timedelta,
    cash_sharing: bool = False,
) -> Simulation:
    """Simulate one column per symbol.

    ``signals`` are the strategy's raw columns per symbol (bar t = where they were computed);
    the position rules move them to the fill bar and pick the sides that trade.
    """
    import vectorbt as vbt

    lot, order_args = _lot_args(rules)
    symbols = list(datas)
    index = datas[symbols[0]].index
    for symbol in symbols[1:]:
        index = index.union(datas[symbol].index)

    # vectorbt turns a tz-aware index into an array of Timestamp objects in its shape checks (about a
    # second per backtest of 20k bars); a naive index holding the same UTC times avoids that.
    naive = index.tz_convert(None)

    def wide(column: str) -> pd.DataFrame:
        return pd.DataFrame({s: datas[s][column].reindex(index).to_numpy() * lot for s in symbols}, index=naive)

    fills = {}
    for name in SIGNAL_NAMES:
        columns = {}
        for symbol in symbols:
            resolved = to_fill_bars(resolve_signals(signals[symbol], rules.direction))
            columns[symbol] = pd.Series(resolved[name], index=datas[symbol].index).reindex(
                index, fill_value=False).to_numpy()
        fills[name] = pd.DataFrame(columns, index=naive).astype(bool)

    opens = wide("open")
    portfolio = vbt.Portfolio.from_signals(
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
        **order_args,
    )
    return Simulation(portfolio, lot)
