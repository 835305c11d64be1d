"""Drive the fill model over history: one or more symbols, each its own cash or all sharing one."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from systrade.sim import kernel
from systrade.sim.rules import SIGNAL_COLUMNS, PositionRules, params_vector, resolve_signals


@dataclass
class FillModelRun:
    """Everything the fill model did over the bars of ``index`` for ``columns`` (symbols)."""

    index: pd.DatetimeIndex
    columns: list[str]
    fills: pd.DataFrame  # column, bar, time, side, size, price, fee, kind
    skipped: pd.DataFrame  # column, bar, time, reason, size
    cash: np.ndarray  # bars x cash groups
    position: np.ndarray  # bars x columns
    initial_cash: float
    cash_sharing: bool

    def skipped_counts(self) -> dict[str, int]:
        """How many orders were not placed, by reason."""
        return {str(k): int(v) for k, v in self.skipped["reason"].value_counts().sort_index().items()}


def _records(fills: np.ndarray, skips: np.ndarray, columns: list[str], index: pd.DatetimeIndex):
    fill_bars = fills[:, kernel.F_BAR].astype(np.int64)
    fill_frame = pd.DataFrame({
        "column": [columns[int(c)] for c in fills[:, kernel.F_COL]],
        "bar": fill_bars,
        "time": index[fill_bars],
        "side": np.where(fills[:, kernel.F_SIDE] > 0, "buy", "sell"),
        "size": fills[:, kernel.F_SIZE],
        "price": fills[:, kernel.F_PRICE],
        "fee": fills[:, kernel.F_FEE],
        "kind": [kernel.FILL_KINDS[int(k)] for k in fills[:, kernel.F_KIND]],
    })
    skip_bars = skips[:, kernel.K_BAR].astype(np.int64)
    skip_frame = pd.DataFrame({
        "column": [columns[int(c)] for c in skips[:, kernel.K_COL]],
        "bar": skip_bars,
        "time": index[skip_bars],
        "reason": [kernel.SKIP_REASONS[int(r)] for r in skips[:, kernel.K_REASON]],
        "size": skips[:, kernel.K_SIZE],
    })
    return fill_frame, skip_frame


def run_fill_model(datas: dict[str, pd.DataFrame], signals: dict[str, dict[str, np.ndarray | None]],
                   rules: PositionRules | dict[str, PositionRules], cash: float,
                   cash_sharing: bool = False) -> FillModelRun:
    """Simulate each symbol of ``datas`` on the union of their indexes.

    ``signals`` are the strategy's raw columns per symbol (on the bar they were computed); ``rules`` one set
    for all symbols or one per symbol (each market has its own lot, minimums and fees).
    """
    symbols = list(datas)
    index = datas[symbols[0]].index
    for symbol in symbols[1:]:
        index = index.union(datas[symbol].index)
    n, m = len(index), len(symbols)

    def wide(column: str) -> np.ndarray:
        return np.column_stack([datas[s][column].reindex(index).to_numpy(dtype=float) for s in symbols])

    resolved = {}
    for symbol in symbols:
        per = rules[symbol] if isinstance(rules, dict) else rules
        resolved[symbol] = resolve_signals(signals[symbol], per.direction)
    flags = {name: np.column_stack([
        pd.Series(resolved[s][name], index=datas[s].index).reindex(index, fill_value=False).to_numpy(dtype=bool)
        for s in symbols]) for name in SIGNAL_COLUMNS}
    params = np.vstack([params_vector(rules[s] if isinstance(rules, dict) else rules) for s in symbols])
    group_of = np.zeros(m, dtype=np.int64) if cash_sharing else np.arange(m, dtype=np.int64)
    groups = 1 if cash_sharing else m
    cash_state = np.full(groups, float(cash))
    state = np.zeros((m, kernel.N_STATE))
    state[:, kernel.X_STOP_LOSS:] = np.nan
    capacity = 3 * n * m + 8
    fills = np.empty((capacity, kernel.N_FILL))
    skips = np.empty((capacity, kernel.N_SKIP))
    counts = np.zeros(3, dtype=np.int64)
    cash_out = np.empty((n, groups))
    position_out = np.empty((n, m))
    kernel.simulate(wide("open"), wide("high"), wide("low"), wide("close"), flags["entries"], flags["exits"],
                    flags["short_entries"], flags["short_exits"], 0, n, group_of, cash_state, params, state, fills,
                    skips, counts, cash_out, position_out)
    fill_frame, skip_frame = _records(fills[:counts[kernel.C_FILLS]], skips[:counts[kernel.C_SKIPS]], symbols, index)
    return FillModelRun(index, symbols, fill_frame, skip_frame, cash_out, position_out, float(cash), cash_sharing)
