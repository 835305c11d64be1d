"""The same books as ``ledger``, kept by vectorbt: the independent cross-check of a backtest's numbers.

The fill model's fills go to a ``vectorbt.Portfolio`` as its order records; its ``value()`` and exit trades,
read into the trade table's fields, must equal ``Simulation.value()`` and ``Simulation.trades()``
(tests/test_ledger_vs_vectorbt.py). Nothing in a backtest's own path imports this module: vectorbt takes
seconds to import.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from systrade.backtest.engine import TRADE_FIELDS, Simulation
from systrade.sim.kernel import EXIT_REASON_OF_KIND

# vectorbt still uses pandas APIs that pandas 3 deprecates; those warnings are not the user's concern.
warnings.filterwarnings("ignore", module=r"vectorbt(\.|$)")


def portfolio(simulation: Simulation) -> Any:
    """A ``vectorbt.Portfolio`` whose order records are the fill model's fills (sorted by column, in order)."""
    from vectorbt.base.array_wrapper import ArrayWrapper
    from vectorbt.portfolio.base import Portfolio
    from vectorbt.portfolio.enums import log_dt, order_dt

    model = simulation.model
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
    # a naive index holding the same UTC times: vectorbt turns a tz-aware one into Timestamp objects (slow)
    close = pd.DataFrame(simulation.close, index=model.index.tz_convert(None), columns=model.columns)
    wrapper = ArrayWrapper.from_obj(close, freq=simulation.bar, group_by=True if model.cash_sharing else None)
    groups = 1 if model.cash_sharing else len(model.columns)
    return Portfolio(wrapper, close, records, np.empty(0, dtype=log_dt), np.full(groups, model.initial_cash),
                     model.cash_sharing)


def value(pf: Any) -> pd.DataFrame | pd.Series:
    """vectorbt's equity per bar, on the UTC index."""
    frame = pf.value()
    frame.index = frame.index.tz_localize("UTC")
    return frame


def trades(pf: Any, simulation: Simulation) -> pd.DataFrame:
    """vectorbt's exit trades in the trade table's fields (``Simulation.trades``), plus ``column``."""
    records = pf.exit_trades.records_readable
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
    frame["exit_reason"] = _exit_reasons(simulation, frame, is_open)
    frame["entry_time"] = pd.to_datetime(frame["entry_time"], utc=True)
    frame["exit_time"] = pd.to_datetime(frame["exit_time"], utc=True)
    return frame


def _exit_reasons(simulation: Simulation, trades: pd.DataFrame, is_open: np.ndarray) -> list[str]:
    """Each trade's exit reason: vectorbt ends one exit trade per fill that reduces a position, in fill order
    per column, so a column's closed trades pair in order with its fills that are not openings."""
    fills = simulation.model.fills
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
