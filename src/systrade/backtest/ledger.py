"""The books of a backtest, kept from the fill model's fills: cash, position, equity per bar and exit trades.

This is vectorbt's bookkeeping of order records written out (``Portfolio.value`` and ``exit_trades`` in
vectorbt 1.2: ``asset_flow_nb``, ``cash_flow_nb``, ``cash_grouped_nb``, ``get_exit_trades_nb``), float for
float, so that a backtest no longer needs to import vectorbt (seconds at start-up) and still reports the same
numbers. ``tests/test_ledger_vs_vectorbt.py`` keeps vectorbt as the independent cross-check.
"""

from __future__ import annotations

import numba
import numpy as np

REL_TOL = 1e-9  # vectorbt.utils.math_.rel_tol
ABS_TOL = 1e-12  # vectorbt.utils.math_.abs_tol

# ---- exit-trade records (columns of the float array ``exit_trades`` returns)
T_COL, T_SIZE, T_ENTRY_BAR, T_ENTRY_PRICE, T_ENTRY_FEES, T_EXIT_BAR, T_EXIT_PRICE, T_EXIT_FEES, T_PNL, \
    T_RETURN, T_LONG, T_OPEN, T_EXIT_FILL = range(13)
N_TRADE = 13


@numba.njit(cache=True)
def is_close(a: float, b: float) -> bool:
    """vectorbt's ``is_close_nb``."""
    if np.isnan(a) or np.isnan(b) or np.isinf(a) or np.isinf(b):
        return False
    if a == b:
        return True
    return abs(a - b) <= max(REL_TOL * max(abs(a), abs(b)), ABS_TOL)


@numba.njit(cache=True)
def add(a: float, b: float) -> float:
    """``a + b`` snapped to 0 when the two cancel (vectorbt's ``add_nb``)."""
    if np.sign(a) != np.sign(b):
        zero = is_close(abs(a), abs(b))
    else:
        zero = is_close(a + b, 0.0)
    return 0.0 if zero else a + b


@numba.njit(cache=True)
def books(n_bars: int, n_cols: int, bars: np.ndarray, cols: np.ndarray, signed: np.ndarray, prices: np.ndarray,
          fees: np.ndarray, close: np.ndarray, initial_cash: float, cash_sharing: bool) -> np.ndarray:
    """Equity per bar (bars x columns, or bars x 1 when cash is shared) from the fills in fill order.

    ``signed`` is each fill's size, negative for a sell; ``close`` the bars' closes (NaN where a column has no
    candle: a held position is valued at the last close before, or the first after, as vectorbt does).
    """
    asset_flow = np.zeros((n_bars, n_cols))
    cash_flow = np.zeros((n_bars, n_cols))
    for k in range(bars.shape[0]):
        i, c = bars[k], cols[k]
        asset_flow[i, c] = add(asset_flow[i, c], signed[k])
        cash_flow[i, c] = add(cash_flow[i, c], -signed[k] * prices[k] - fees[k])
    filled = close.copy()
    for c in range(n_cols):  # forward fill, then backward fill
        for i in range(1, n_bars):
            if np.isnan(filled[i, c]):
                filled[i, c] = filled[i - 1, c]
        for i in range(n_bars - 2, -1, -1):
            if np.isnan(filled[i, c]):
                filled[i, c] = filled[i + 1, c]
    asset_value = np.zeros((n_bars, n_cols))
    for c in range(n_cols):
        position = 0.0
        for i in range(n_bars):
            position = add(position, asset_flow[i, c])
            asset_value[i, c] = 0.0 if position == 0 else filled[i, c] * position
    groups = 1 if cash_sharing else n_cols
    value = np.empty((n_bars, groups))
    for g in range(groups):
        cash = initial_cash
        for i in range(n_bars):
            if cash_sharing:
                flow = 0.0
                held = 0.0
                for c in range(n_cols):
                    flow += cash_flow[i, c]
                    held += asset_value[i, c]
            else:
                flow = cash_flow[i, g]
                held = asset_value[i, g]
            cash = add(cash, flow)
            value[i, g] = cash + held
    return value


@numba.njit(cache=True)
def _record(out: np.ndarray, t: int, col: int, size: float, entry_bar: int, entry_price: float, entry_fees: float,
            exit_bar: int, exit_price: float, exit_fees: float, long: bool, still_open: bool, exit_fill: int) -> None:
    """One exit trade with its PnL and return (vectorbt's ``fill_trade_record_nb``)."""
    entry_val = size * entry_price
    val_diff = add(size * exit_price, -entry_val)
    if val_diff != 0 and not long:
        val_diff *= -1
    pnl = val_diff - entry_fees - exit_fees
    out[t, T_COL] = col
    out[t, T_SIZE] = size
    out[t, T_ENTRY_BAR] = entry_bar
    out[t, T_ENTRY_PRICE] = entry_price
    out[t, T_ENTRY_FEES] = entry_fees
    out[t, T_EXIT_BAR] = exit_bar
    out[t, T_EXIT_PRICE] = exit_price
    out[t, T_EXIT_FEES] = exit_fees
    out[t, T_PNL] = pnl
    out[t, T_RETURN] = pnl / entry_val
    out[t, T_LONG] = 1.0 if long else 0.0
    out[t, T_OPEN] = 1.0 if still_open else 0.0
    out[t, T_EXIT_FILL] = exit_fill


@numba.njit(cache=True)
def exit_trades(n_cols: int, bars: np.ndarray, cols: np.ndarray, signed: np.ndarray, prices: np.ndarray,
                fees: np.ndarray, last_close: np.ndarray) -> np.ndarray:
    """Exit trades (``T_*`` columns) column by column: each fill that reduces a position ends one trade.

    A fill that reverses the position ends the trade and opens the other side with the rest of its size;
    a trade still open at the end is marked at the column's last close (``last_close``), without an exit fee.
    ``T_EXIT_FILL`` is the index of the fill that ended the trade (-1 when open).
    """
    out = np.empty((bars.shape[0] + n_cols, N_TRADE))
    t = 0
    for col in range(n_cols):
        in_trade = False
        long = True
        entry_bar = -1
        size_sum = gross_sum = fees_sum = 0.0
        for k in range(bars.shape[0]):
            if cols[k] != col:
                continue
            size = abs(signed[k])
            buy = signed[k] > 0
            price, fee, bar = prices[k], fees[k], bars[k]
            if not in_trade:
                in_trade = True
                entry_bar = bar
                long = buy
                size_sum = gross_sum = fees_sum = 0.0
            if long == buy:
                size_sum += size
                gross_sum += size * price
                fees_sum += fee
            elif is_close(size, size_sum) or size < size_sum:
                closes_all = is_close(size, size_sum)
                exit_size = size_sum if closes_all else size
                _record(out, t, col, exit_size, entry_bar, gross_sum / size_sum, exit_size / size_sum * fees_sum,
                        bar, price, fee, long, False, k)
                t += 1
                if closes_all:
                    in_trade = False
                else:
                    fraction = (size_sum - size) / size_sum
                    size_sum *= fraction
                    gross_sum *= fraction
                    fees_sum *= fraction
            else:  # reversal: close the trade, open the other side with the rest of the order
                closed_size = size_sum
                closed_fees = closed_size / size * fee
                _record(out, t, col, closed_size, entry_bar, gross_sum / size_sum, fees_sum, bar, price,
                        closed_fees, long, False, k)
                t += 1
                size_sum = size - closed_size
                gross_sum = size_sum * price
                fees_sum = fee - closed_fees
                entry_bar = bar
                long = not long
        if in_trade and not is_close(-size_sum, 0.0) and -size_sum < 0:
            _record(out, t, col, size_sum, entry_bar, gross_sum / size_sum, fees_sum, -1, last_close[col], 0.0,
                    long, True, -1)
            t += 1
    return out[:t]
