"""A backtest's simulation: the fill model (``systrade.sim``) decides every fill; vectorbt reports on them.

The fills go to a ``vectorbt.Portfolio`` as its order records, so vectorbt's statistics, trade records and
plots describe exactly the orders the fill model placed (and that the paper daemon would place). vectorbt
is imported lazily (it takes seconds to import).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from systrade.sim.kernel import EXIT_REASON_OF_KIND
from systrade.sim.rules import PositionRules
from systrade.sim.run import FillModelRun, run_fill_model

TRADE_FIELDS = ["direction", "entry_time", "entry_price", "exit_time", "exit_price", "size", "pnl",
                "return_pct", "fees", "status", "exit_reason"]

# vectorbt still uses pandas APIs that pandas 3 deprecates; those warnings are not the user's concern.
warnings.filterwarnings("ignore", module=r"vectorbt(\.|$)")

__all__ = ["TRADE_FIELDS", "Simulation", "simulate"]


@dataclass
class Simulation:
    """A finished simulation: the fill model's run and the vectorbt Portfolio built from its fills."""

    portfolio: Any
    model: FillModelRun

    @property
    def index(self) -> pd.DatetimeIndex:
        """The bars simulated (UTC)."""
        return self.portfolio.wrapper.index.tz_localize("UTC")

    def value(self) -> pd.DataFrame | pd.Series:
        """Equity per bar: one column per symbol, or one series for a cash-sharing group."""
        return _utc(self.portfolio.value())

    def assets(self) -> pd.DataFrame:
        """Position in units per bar and symbol (negative when short)."""
        return pd.DataFrame(self.model.position, index=self.model.index, columns=self.model.columns)

    def orders(self) -> pd.DataFrame:
        """Every fill: ``column, time, side, size, price, fees, kind`` (open, close, reverse, stop_loss, ...)."""
        fills = self.model.fills
        return pd.DataFrame({"column": fills["column"], "time": fills["time"], "side": fills["side"],
                             "size": fills["size"], "price": fills["price"], "fees": fills["fee"],
                             "kind": fills["kind"]})

    def skipped(self) -> pd.DataFrame:
        """Orders the market's minimums kept from being placed: ``column, time, reason, size``."""
        return self.model.skipped[["column", "time", "reason", "size"]]

    def trades(self) -> pd.DataFrame:
        """Every trade (closed and open) in the JSON schema's fields plus ``column``.

        Open trades are marked to market at the last close: ``pnl`` is unrealised and ``exit_*`` empty.
        ``exit_reason`` is the kind of the fill that ended the trade (``EXIT_REASON_OF_KIND``), ``open`` for an
        open one.
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
            "entry_price": records["Avg Entry Price"].to_numpy(dtype=float),
            "exit_time": pd.to_datetime(records["Exit Timestamp"], utc=True).where(~is_open),
            "exit_price": records["Avg Exit Price"].where(~is_open).to_numpy(dtype=float),
            "size": records["Size"].to_numpy(dtype=float),
            "pnl": records["PnL"].to_numpy(dtype=float),
            "return_pct": records["Return"].to_numpy(dtype=float) * 100.0,
            "fees": (records["Entry Fees"] + records["Exit Fees"].where(~is_open, 0.0)).to_numpy(dtype=float),
            "status": status.to_numpy(),
        })
        frame["exit_reason"] = self._exit_reasons(frame, is_open)
        frame["entry_time"] = pd.to_datetime(frame["entry_time"], utc=True)
        frame["exit_time"] = pd.to_datetime(frame["exit_time"], utc=True)
        return frame


    def _exit_reasons(self, trades: pd.DataFrame, is_open: np.ndarray) -> list[str]:
        """Each trade's exit reason: vectorbt ends one exit trade per fill that reduces a position, in fill order
        per column, so a column's closed trades pair in order with its fills that are not openings."""
        fills = self.model.fills
        ending = fills[fills["kind"] != "open"]
        queues = {column: list(zip(group["time"], group["kind"], strict=True))
                  for column, group in ending.groupby("column", sort=False)}
        reasons = []
        for column, exit_time, still_open in zip(trades["column"], trades["exit_time"], is_open, strict=True):
            if still_open:
                reasons.append("open")
                continue
            time, kind = queues[column].pop(0)
            if pd.Timestamp(time) != pd.Timestamp(exit_time):
                raise RuntimeError(f"trade exit at {exit_time} does not match the fill at {time} ({column})")
            reasons.append(EXIT_REASON_OF_KIND[kind])
        return reasons


def _utc(frame: pd.DataFrame | pd.Series) -> pd.DataFrame | pd.Series:
    """vectorbt works on a naive index (see ``simulate``): give results their UTC index back."""
    frame.index = frame.index.tz_localize("UTC")
    return frame


def portfolio_from_fills(model: FillModelRun, close: pd.DataFrame, bar: pd.Timedelta) -> Any:
    """A ``vectorbt.Portfolio`` whose order records are the fill model's fills (sorted by column, in order)."""
    from vectorbt.base.array_wrapper import ArrayWrapper
    from vectorbt.portfolio.base import Portfolio
    from vectorbt.portfolio.enums import log_dt, order_dt

    fills = model.fills
    cols = np.array([model.columns.index(c) for c in fills["column"]], dtype=np.int64)
    order = np.argsort(cols, kind="stable")
    records = np.empty(len(fills), dtype=order_dt)
    records["id"] = np.arange(len(fills))
    records["col"] = cols[order]
    records["idx"] = fills["bar"].to_numpy()[order]
    records["size"] = fills["size"].to_numpy()[order]
    records["price"] = fills["price"].to_numpy()[order]
    records["fees"] = fills["fee"].to_numpy()[order]
    records["side"] = np.where(fills["side"].to_numpy()[order] == "buy", 0, 1)
    wrapper = ArrayWrapper.from_obj(close, freq=bar, group_by=True if model.cash_sharing else None)
    groups = 1 if model.cash_sharing else len(model.columns)
    return Portfolio(wrapper, close, records, np.empty(0, dtype=log_dt), np.full(groups, model.initial_cash),
                     model.cash_sharing)


def simulate(
    datas: dict[str, pd.DataFrame],
    signals: dict[str, dict[str, np.ndarray | None]],
    rules: PositionRules | dict[str, PositionRules],
    cash: float,
    bar: pd.Timedelta,
    cash_sharing: bool = False,
) -> Simulation:
    """Simulate one column per symbol with the fill model and hand the fills to vectorbt.

    ``signals`` are the strategy's raw columns per symbol (bar t = where they were computed).
    """
    model = run_fill_model(datas, signals, rules, cash, cash_sharing)
    # vectorbt turns a tz-aware index into an array of Timestamp objects in its shape checks (about a
    # second per backtest of 20k bars); a naive index holding the same UTC times avoids that.
    close = pd.DataFrame({s: datas[s]["close"].reindex(model.index).to_numpy(dtype=float) for s in model.columns},
                         index=model.index.tz_convert(None))
    return Simulation(portfolio_from_fills(model, close, bar), model)
