"""A bot's past as the dashboard draws it: its candles from the store, its fills, round trips and equity.

The ledger keeps fills and the bots' present state, not an equity history, so a bot's equity is worked out
backwards from its present cash and position through its fills, valued at each stored candle's close. A fill
belongs to the bar whose open it filled at: the bar after its signal's bar (``bar_time``), or the bar itself
for a stop exit, which fills inside the bar it was hit in.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from systrade.data.store import SeriesKey, read_series
from systrade.data.timeframes import timeframe_seconds


def stored_candles(data_dir: str, exchange: str, symbol: str, timeframe: str, limit: int) -> pd.DataFrame | None:
    """The last ``limit`` stored candles of the bot's market (None when the store has none)."""
    key = SeriesKey(exchange, symbol, timeframe)
    if not key.path(data_dir).is_file():
        return None
    return read_series(key, data_dir).iloc[-limit:]


def bot_fills(trade_rows: list[dict[str, Any]], bot: str, timeframe: str) -> pd.DataFrame:
    """The bot's fills (rows of ``status.trades``) oldest first, ``time`` being the open of the bar they filled at."""
    rows = [r for r in trade_rows if r["bot"] == bot]
    step = pd.Timedelta(seconds=timeframe_seconds(timeframe))
    frame = pd.DataFrame({
        "time": [pd.Timestamp(r["bar_time"]) + (pd.Timedelta(0) if r["action"] == "stop" else step) for r in rows],
        "side": [r["side"] for r in rows], "price": [float(r["price"]) for r in rows],
        "amount": [float(r["amount"]) for r in rows], "fee_quote": [float(r["fee_quote"] or 0.0) for r in rows],
    })
    if frame.empty:
        frame["time"] = pd.DatetimeIndex([], tz="UTC")
    return frame.sort_values("time", kind="stable").reset_index(drop=True)


def round_trips(fills: pd.DataFrame) -> pd.DataFrame:
    """Positions opened and closed by the fills: direction, entry and exit (time, average price), P&L after fees
    and status (``open`` for the position still held)."""
    trips: list[dict[str, Any]] = []
    position, current = 0.0, None
    for fill in fills.itertuples():
        signed = fill.amount if fill.side == "buy" else -fill.amount
        rest = signed
        if current is not None and np.sign(signed) != np.sign(position):  # reduces, closes or flips the position
            closing = min(abs(signed), abs(position))
            share = closing / abs(signed)
            current["exit_value"] += closing * fill.price
            current["exit_amount"] += closing
            current["fees"] += fill.fee_quote * share
            current["exit_time"] = fill.time
            position += np.sign(signed) * closing
            rest = signed - np.sign(signed) * closing
            if abs(position) <= 1e-12:
                trips.append(_finish(current, "closed"))
                current, position = None, 0.0
            if abs(rest) <= 1e-12:
                continue
        if current is None:
            current = {"direction": "long" if rest > 0 else "short", "entry_time": fill.time, "entry_value": 0.0,
                       "entry_amount": 0.0, "exit_value": 0.0, "exit_amount": 0.0, "fees": 0.0, "exit_time": None}
        current["entry_value"] += abs(rest) * fill.price
        current["entry_amount"] += abs(rest)
        current["fees"] += fill.fee_quote * abs(rest) / abs(signed)
        position += rest
    if current is not None:
        trips.append(_finish(current, "open"))
    columns = ["direction", "entry_time", "entry_price", "exit_time", "exit_price", "pnl", "status"]
    return pd.DataFrame(trips, columns=columns)


def _finish(trip: dict[str, Any], status: str) -> dict[str, Any]:
    entry = trip["entry_value"] / trip["entry_amount"]
    exit_price = trip["exit_value"] / trip["exit_amount"] if trip["exit_amount"] else None
    sign = 1.0 if trip["direction"] == "long" else -1.0
    pnl = sign * (trip["exit_value"] - entry * trip["exit_amount"]) - trip["fees"]
    return {"direction": trip["direction"], "entry_time": trip["entry_time"], "entry_price": entry,
            "exit_time": trip["exit_time"] if status == "closed" else None, "exit_price": exit_price,
            "pnl": pnl, "status": status}


def equity_curve(cash: float | None, position: float | None, fills: pd.DataFrame,
                 closes: pd.Series | None) -> pd.Series:
    """The bot's equity at each close of ``closes`` (index: bar open times), worked back from its present
    ``cash`` and ``position`` through the fills after each bar; without candles, at each fill's price. Empty for
    a bot trading several symbols (``position`` None: no one symbol's closes value it)."""
    if cash is None or position is None:
        return pd.Series(dtype=float)
    if closes is None or closes.empty:
        if fills.empty:
            return pd.Series(dtype=float)
        closes = fills.groupby("time")["price"].last()
    signed = np.where(fills["side"] == "buy", 1.0, -1.0) * fills["amount"].to_numpy()
    flow = -signed * fills["price"].to_numpy() - fills["fee_quote"].to_numpy()
    times = fills["time"].to_numpy(dtype="datetime64[ns]") if len(fills) else np.array([], dtype="datetime64[ns]")
    done = np.searchsorted(times, closes.index.to_numpy(dtype="datetime64[ns]"), side="right")  # fills up to bar
    flow_after = np.concatenate([np.cumsum(flow[::-1])[::-1], [0.0]])  # flow_after[k]: fills k.. together
    signed_after = np.concatenate([np.cumsum(signed[::-1])[::-1], [0.0]])
    cash_then = cash - flow_after[done]
    position_then = position - signed_after[done]
    return pd.Series(cash_then + position_then * closes.to_numpy(dtype=float), index=closes.index, name="equity")


def drawdown(equity: pd.Series) -> pd.Series:
    """How far below its running peak the equity is, as a negative fraction."""
    return equity / equity.cummax() - 1.0


def account_curve(curves: list[pd.Series], present_total: float, present_bots: float) -> pd.Series:
    """The account's equity: its bots' curves summed on one time axis plus what no bot holds (the account's equity
    now minus its bots' equity now, taken as constant)."""
    curves = [c for c in curves if not c.empty]
    if not curves:
        return pd.Series(dtype=float)
    frame = pd.concat(curves, axis=1).sort_index().ffill().bfill()
    return (frame.sum(axis=1) + (present_total - present_bots)).rename("equity")
