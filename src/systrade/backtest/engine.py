"""A backtest's simulation: the fill model (``systrade.sim``) decides every fill; its books report on them.

Equity per bar and the exit trades are kept from the fills by ``ledger`` (vectorbt's bookkeeping written
out), so a backtest does not import vectorbt (seconds at start-up). ``vectorbt_books`` builds the same books
through a ``vectorbt.Portfolio``: the tests' independent cross-check.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from systrade.backtest import ledger
from systrade.sim.kernel import EXIT_REASON_OF_KIND
from systrade.sim.rules import PositionRules
from systrade.sim.run import FillModelRun, run_fill_model

TRADE_FIELDS = ["direction", "entry_time", "entry_price", "exit_time", "exit_price", "size", "pnl",
                "return_pct", "fees", "status", "exit_reason"]

__all__ = ["TRADE_FIELDS", "Simulation", "simulate"]


@dataclass
class Simulation:
    """A finished simulation: the fill model's run and the closes its positions are valued at."""

    model: FillModelRun
    close: np.ndarray  # bars x columns, NaN where a symbol has no candle
    bar: pd.Timedelta  # the bars' length (``vectorbt_books`` gives it to vectorbt)

    @property
    def index(self) -> pd.DatetimeIndex:
        """The bars simulated (UTC)."""
        return self.model.index

    def _fill_arrays(self) -> tuple[np.ndarray, ...]:
        """The fills as the ledger takes them: bar, column, signed size, price, fee (writable copies, so the
        compiled ledger is always called with one signature and loaded from its disk cache)."""
        fills = self.model.fills
        cols = np.array([self.model.columns.index(c) for c in fills["column"]], dtype=np.int64)
        size = np.array(fills["size"], dtype=float)
        signed = np.where(fills["side"].to_numpy() == "buy", size, -size)
        return (np.array(fills["bar"], dtype=np.int64), cols, signed, np.array(fills["price"], dtype=float),
                np.array(fills["fee"], dtype=float))

    def value(self) -> pd.DataFrame | pd.Series:
        """Equity per bar: one column per symbol, or one series for a cash-sharing group."""
        model = self.model
        value = ledger.books(len(model.index), len(model.columns), *self._fill_arrays(), self.close,
                             model.initial_cash, model.cash_sharing)
        if model.cash_sharing:
            return pd.Series(value[:, 0], index=model.index, name="group")
        return pd.DataFrame(value, index=model.index, columns=model.columns)

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
        """Every trade (closed and open) in the JSON schema's fields plus ``column``, column by column.

        Each fill that reduces a position ends one trade (a partial exit splits the trade). Open trades are
        marked to market at the last close: ``pnl`` is unrealised and ``exit_*`` empty. ``exit_reason`` is the
        kind of the fill that ended the trade (``EXIT_REASON_OF_KIND``), ``open`` for an open one.
        """
        model = self.model
        records = ledger.exit_trades(len(model.columns), *self._fill_arrays(), self.close[-1])
        if len(records) == 0:
            return pd.DataFrame(columns=["column", *TRADE_FIELDS])
        is_open = records[:, ledger.T_OPEN] > 0
        entry_bars = records[:, ledger.T_ENTRY_BAR].astype(np.int64)
        exit_bars = np.where(is_open, 0, records[:, ledger.T_EXIT_BAR]).astype(np.int64)
        exit_fills = np.where(is_open, 0, records[:, ledger.T_EXIT_FILL]).astype(np.int64)
        kinds = model.fills["kind"].to_numpy()
        fees = records[:, ledger.T_ENTRY_FEES] + np.where(is_open, 0.0, records[:, ledger.T_EXIT_FEES])
        return pd.DataFrame({
            "column": [model.columns[int(c)] for c in records[:, ledger.T_COL]],
            "direction": np.where(records[:, ledger.T_LONG] > 0, "long", "short").astype(object),
            "entry_time": model.index[entry_bars],
            "entry_price": records[:, ledger.T_ENTRY_PRICE],
            "exit_time": pd.DatetimeIndex(model.index[exit_bars]).where(~is_open),
            "exit_price": np.where(is_open, np.nan, records[:, ledger.T_EXIT_PRICE]),
            "size": records[:, ledger.T_SIZE],
            "pnl": records[:, ledger.T_PNL],
            "return_pct": records[:, ledger.T_RETURN] * 100.0,
            "fees": fees,
            "status": np.where(is_open, "open", "closed").astype(object),
            "exit_reason": ["open" if still_open else EXIT_REASON_OF_KIND[kinds[k]]
                            for still_open, k in zip(is_open, exit_fills, strict=True)],
        })


def simulate(
    datas: dict[str, pd.DataFrame],
    signals: dict[str, dict[str, np.ndarray | None]],
    rules: PositionRules | dict[str, PositionRules],
    cash: float,
    bar: pd.Timedelta,
    cash_sharing: bool = False,
) -> Simulation:
    """Simulate one column per symbol with the fill model.

    ``signals`` are the strategy's raw columns per symbol (bar t = where they were computed).
    """
    model = run_fill_model(datas, signals, rules, cash, cash_sharing)
    close = np.column_stack([datas[s]["close"].reindex(model.index).to_numpy(dtype=float) for s in model.columns])
    return Simulation(model, close, bar)
