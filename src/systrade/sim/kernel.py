"""The fill model's arithmetic, compiled with numba: the one place where orders are sized, priced and booked.

docs/semantics.md states the rules; this module is them. A bar is three steps, each a function here that the
backtest loop (``simulate``), the sweep kernel and the live tick call alike:

1. ``gap_stop``: a stop level the open has already crossed exits at the open;
2. ``signal_order``: the order decided (``decide``) from the previous bar's signals fills at the open;
3. ``bar_stop``: the position held after the open is checked against the bar's low and high.

State is plain arrays so that numba and Python share it: ``cash[g]`` per cash group and ``state[c]`` per
column (position, stop-loss level, take-profit level). Per-column parameters are a float vector (``P_*``).
Every fill and every skipped order is appended to a record array (``F_*`` / ``K_*`` columns).
"""

from __future__ import annotations

import math

import numba
import numpy as np

MIN_SIZE = 1e-8
"""Orders smaller than this many units are never placed."""
TIE = 1e-9
"""Relative distance to a lot or tick multiple below which a number counts as that multiple (float noise)."""

# ---- parameters of one column (a float vector)
P_SIZE, P_SIZE_TYPE, P_LOT, P_TICK, P_MIN_AMOUNT, P_MIN_COST, P_BUY_FEE, P_SELL_FEE, P_SLIPPAGE, \
    P_STOP_LOSS, P_TAKE_PROFIT, P_COST_STEP = range(12)
N_PARAMS = 12
SIZE_PERCENT, SIZE_AMOUNT, SIZE_VALUE = 0, 1, 2
SIZE_TYPES = ("percent", "amount", "value")

# ---- actions a bar's signals ask for
HOLD, BUY, SELL, CLOSE, REVERSE = range(5)
ACTIONS = ("hold", "buy", "sell", "close", "reverse")

# ---- per-column state
X_POSITION, X_STOP_LOSS, X_TAKE_PROFIT = range(3)
N_STATE = 3

# ---- fill records (F_PRICE is the fill price, slippage included; F_QUOTE the price it was asked at)
F_BAR, F_COL, F_SIDE, F_SIZE, F_PRICE, F_FEE, F_KIND, F_QUOTE = range(8)
N_FILL = 8
KIND_OPEN, KIND_CLOSE, KIND_REVERSE, KIND_STOP_LOSS, KIND_TAKE_PROFIT = range(5)
FILL_KINDS = ("open", "close", "reverse", "stop_loss", "take_profit")
# A trade's exit_reason is the kind of the fill that ended it ("close" is an exit signal); "open": not ended yet.
EXIT_REASONS = ("signal", "stop_loss", "take_profit", "reverse", "open")
EXIT_REASON_OF_KIND = {"close": "signal", "reverse": "reverse", "stop_loss": "stop_loss", "take_profit": "take_profit"}

# ---- skipped-order records
K_BAR, K_COL, K_REASON, K_SIZE = range(4)
N_SKIP = 4
R_MIN_AMOUNT, R_MIN_COST, R_NO_CASH = range(3)
SKIP_REASONS = ("min_amount", "min_cost", "no_cash")

# ---- counters: fills written, skips written, 1 when a record array was full
C_FILLS, C_SKIPS, C_OVERFLOW = range(3)


@numba.njit(cache=True)
def decide(position: float, long_entry: bool, long_exit: bool, short_entry: bool, short_exit: bool) -> int:
    """What one bar's signals do to ``position``: HOLD, BUY/SELL (open from flat), CLOSE or REVERSE.

    An entry and an exit of one side cancel, and so do a long and a short entry; an entry in the direction
    already held is ignored (no pyramiding); an opposite entry reverses in one order.
    """
    if long_entry and long_exit:
        long_entry = long_exit = False
    if short_entry and short_exit:
        short_entry = short_exit = False
    if long_entry and short_entry:
        long_entry = short_entry = False
    if position > 0:
        if short_entry:
            return REVERSE
        return CLOSE if long_exit else HOLD
    if position < 0:
        if long_entry:
            return REVERSE
        return CLOSE if short_exit else HOLD
    if long_entry:
        return BUY
    if short_entry:
        return SELL
    return HOLD


@numba.njit(cache=True)
def lot_floor(units: float, lot: float) -> float:
    """``units`` rounded down to a multiple of ``lot`` (no rounding when ``lot`` is 0), read in decimal terms.

    2.001 is a multiple of 0.001 although the float ``2.001 / 0.001`` is 2000.9999999999998.
    """
    if not units > 0:
        return 0.0
    if lot > 0:
        lots = units / lot
        nearest = round(lots)
        if abs(lots - nearest) <= TIE * max(1.0, abs(lots)):
            return nearest * lot
        return math.floor(lots) * lot
    return units


@numba.njit(cache=True)
def tick_round(level: float, tick: float, up: bool) -> float:
    """A price level on the tick grid, rounded up or down (no rounding when ``tick`` is 0)."""
    if not tick > 0:
        return level
    ticks = level / tick
    nearest = round(ticks)
    if abs(ticks - nearest) <= TIE * max(1.0, abs(ticks)):
        return nearest * tick
    return (math.ceil(ticks) if up else math.floor(ticks)) * tick


@numba.njit(cache=True)
def opening_units(available: float, fill: float, fee_rate: float, open_: float, p: np.ndarray) -> float:
    """Units of a new position: ``all`` or percent of ``available`` cash at ``fill`` with fees, a fixed
    amount, or a value converted at the unslipped ``open_``; rounded down to the lot."""
    size = p[P_SIZE]
    if np.isinf(size) or p[P_SIZE_TYPE] == SIZE_PERCENT:
        raw = available / (fill * (1.0 + fee_rate)) if available > 0 else 0.0
        if not np.isinf(size):
            raw *= size / 100.0
    elif p[P_SIZE_TYPE] == SIZE_AMOUNT:
        raw = size
    else:
        raw = size / open_
    return lot_floor(raw, p[P_LOT])


@numba.njit(cache=True)
def below_minimum(units: float, fill: float, by_cash: bool, p: np.ndarray) -> int:
    """The reason an order of ``units`` at ``fill`` may not be placed (``R_*``), or -1 when it may."""
    if not units >= MIN_SIZE:
        return R_NO_CASH if by_cash else R_MIN_AMOUNT
    if units < p[P_MIN_AMOUNT]:
        return R_MIN_AMOUNT
    if units * fill < p[P_MIN_COST]:
        return R_MIN_COST
    return -1


@numba.njit(cache=True)
def _skip(bar: int, c: int, reason: int, units: float, skips: np.ndarray, counts: np.ndarray) -> None:
    k = counts[C_SKIPS]
    if k < skips.shape[0]:
        skips[k, K_BAR] = bar
        skips[k, K_COL] = c
        skips[k, K_REASON] = reason
        skips[k, K_SIZE] = units
        counts[C_SKIPS] = k + 1
    else:
        counts[C_OVERFLOW] = 1


@numba.njit(cache=True)
def place(cash: np.ndarray, g: int, state: np.ndarray, c: int, bar: int, is_buy: bool, units: float,
          price: float, kind: int, by_cash: bool, p: np.ndarray, fills: np.ndarray, skips: np.ndarray,
          counts: np.ndarray) -> float:
    """Fill one market order of ``units`` at ``price`` (before slippage) and book it; the units filled.

    A buy the cash cannot pay for is filled partly (rounded down to the lot); an order below a minimum is
    recorded as skipped and changes nothing. Opening or reversing sets the stop levels from the fill price.
    ``by_cash``: the size was computed from the cash, so a buy sized to nothing is skipped for want of cash.
    """
    slip = p[P_SLIPPAGE]
    lot = p[P_LOT]
    limited = by_cash and is_buy
    if is_buy:
        fill = price * (1.0 + slip)
        rate = p[P_BUY_FEE]
        if units * fill * (1.0 + rate) > cash[g]:
            affordable = lot_floor(cash[g] / (fill * (1.0 + rate)), lot) if cash[g] > 0 else 0.0
            if affordable < units:
                units = affordable
                limited = True
        step = p[P_COST_STEP]
        if step > 0:  # a market buy by cost (Upbit): its value rounded down to whole KRW, the amount follows
            units = lot_floor(math.floor(units * fill / step * (1.0 + TIE)) * step / fill, lot)
    else:
        fill = price * (1.0 - slip)
        rate = p[P_SELL_FEE]
    reason = below_minimum(units, fill, limited, p)
    if reason >= 0:
        _skip(bar, c, reason, units, skips, counts)
        return 0.0
    fee = rate * units * fill
    before_cash = cash[g]
    if is_buy:
        after_cash = before_cash - (units * fill + fee)
        if abs(after_cash) <= TIE * abs(before_cash):
            after_cash = 0.0  # spent all the cash: no float dust
        cash[g] = after_cash
    else:
        cash[g] = before_cash + units * fill - fee
    before = state[c, X_POSITION]
    delta = units if is_buy else -units
    after = before + delta
    if abs(after) <= TIE * max(abs(before), abs(delta)):
        after = 0.0  # a full close: no float dust
    state[c, X_POSITION] = after
    if after == 0:
        state[c, X_STOP_LOSS] = np.nan
        state[c, X_TAKE_PROFIT] = np.nan
    elif before == 0 or (before > 0) != (after > 0):
        set_stop_levels(state, c, after > 0, fill, p)
    k = counts[C_FILLS]
    if k < fills.shape[0]:
        fills[k, F_BAR] = bar
        fills[k, F_COL] = c
        fills[k, F_SIDE] = 1.0 if is_buy else -1.0
        fills[k, F_SIZE] = units
        fills[k, F_PRICE] = fill
        fills[k, F_FEE] = fee
        fills[k, F_KIND] = kind
        fills[k, F_QUOTE] = price
        counts[C_FILLS] = k + 1
    else:
        counts[C_OVERFLOW] = 1
    return units


@numba.njit(cache=True)
def set_stop_levels(state: np.ndarray, c: int, long: bool, entry: float, p: np.ndarray) -> None:
    """Stop-loss and take-profit levels of a position entered at ``entry``, on the tick grid away from it."""
    sl, tp, tick = p[P_STOP_LOSS], p[P_TAKE_PROFIT], p[P_TICK]
    sign = 1.0 if long else -1.0
    state[c, X_STOP_LOSS] = tick_round(entry * (1.0 - sign * sl), tick, not long) if sl == sl else np.nan
    state[c, X_TAKE_PROFIT] = tick_round(entry * (1.0 + sign * tp), tick, long) if tp == tp else np.nan


@numba.njit(cache=True)
def close_position(cash, g, state, c, bar, price, kind, p, fills, skips, counts) -> float:
    """Sell a long or buy back a short in full at ``price`` (a cover is capped by the cash)."""
    position = state[c, X_POSITION]
    return place(cash, g, state, c, bar, position < 0, abs(position), price, kind, False, p, fills, skips, counts)


@numba.njit(cache=True)
def gap_stop(cash, g, state, c, bar, open_, p, fills, skips, counts) -> bool:
    """Step 1: a position whose stop level the open has crossed exits at the open. True when it did."""
    position = state[c, X_POSITION]
    if position == 0:
        return False
    sl, tp = state[c, X_STOP_LOSS], state[c, X_TAKE_PROFIT]
    kind = -1
    if position > 0:
        if open_ <= sl:
            kind = KIND_STOP_LOSS
        elif open_ >= tp:
            kind = KIND_TAKE_PROFIT
    else:
        if open_ >= sl:
            kind = KIND_STOP_LOSS
        elif open_ <= tp:
            kind = KIND_TAKE_PROFIT
    if kind < 0:
        return False
    return close_position(cash, g, state, c, bar, open_, kind, p, fills, skips, counts) > 0


@numba.njit(cache=True)
def is_sell(position: float, action: int) -> bool:
    """Whether ``action`` on ``position`` is a sell order (cash sharing places sells before buys)."""
    return action == SELL or ((action == CLOSE or action == REVERSE) and position > 0)


@numba.njit(cache=True)
def signal_order(cash, g, state, c, bar, open_, action, p, fills, skips, counts) -> float:
    """Step 2: the order ``action`` (from ``decide``) at the open; the units filled (0: none)."""
    position = state[c, X_POSITION]
    slip = p[P_SLIPPAGE]
    if action == HOLD:
        return 0.0
    if action == CLOSE:
        return close_position(cash, g, state, c, bar, open_, KIND_CLOSE, p, fills, skips, counts)
    by_cash = np.isinf(p[P_SIZE]) or p[P_SIZE_TYPE] == SIZE_PERCENT
    if action == BUY:
        fill = open_ * (1.0 + slip)
        units = opening_units(cash[g], fill, p[P_BUY_FEE], open_, p)
        return place(cash, g, state, c, bar, True, units, open_, KIND_OPEN, by_cash, p, fills, skips, counts)
    if action == SELL:
        fill = open_ * (1.0 - slip)
        units = opening_units(cash[g], fill, p[P_SELL_FEE], open_, p)
        return place(cash, g, state, c, bar, False, units, open_, KIND_OPEN, by_cash, p, fills, skips, counts)
    # REVERSE: close and open the other side in one order, the new side sized from the cash the close leaves
    held = abs(position)
    if position > 0:
        fill = open_ * (1.0 - slip)
        after_close = cash[g] + held * fill * (1.0 - p[P_SELL_FEE])
        units = opening_units(after_close, fill, p[P_SELL_FEE], open_, p)
        by_cash = False  # a short sale is not limited by cash
    else:
        fill = open_ * (1.0 + slip)
        rate = p[P_BUY_FEE]
        after_close = cash[g] - held * fill * (1.0 + rate)
        units = opening_units(max(after_close, 0.0), fill, rate, open_, p)
        affordable = lot_floor(after_close / (fill * (1.0 + rate)), p[P_LOT]) if after_close > 0 else 0.0
        if units > affordable:  # the cash the close leaves pays for fewer units
            units = affordable
            by_cash = True
    reason = below_minimum(units, fill, by_cash, p)
    if reason >= 0:  # the new side would be below a minimum: only close
        _skip(bar, c, reason, units, skips, counts)
        return close_position(cash, g, state, c, bar, open_, KIND_CLOSE, p, fills, skips, counts)
    return place(cash, g, state, c, bar, position < 0, held + units, open_, KIND_REVERSE, False, p, fills, skips,
                 counts)


@numba.njit(cache=True)
def bar_stop(cash, g, state, c, bar, open_, high, low, p, fills, skips, counts) -> bool:
    """Step 3: the position held after the open against the bar's low and high, stop loss first."""
    position = state[c, X_POSITION]
    if position == 0:
        return False
    sl, tp = state[c, X_STOP_LOSS], state[c, X_TAKE_PROFIT]
    kind = -1
    price = 0.0
    if position > 0:
        if low <= sl:
            kind, price = KIND_STOP_LOSS, min(sl, open_)
        elif high >= tp:
            kind, price = KIND_TAKE_PROFIT, tp
    else:
        if high >= sl:
            kind, price = KIND_STOP_LOSS, max(sl, open_)
        elif low <= tp:
            kind, price = KIND_TAKE_PROFIT, tp
    if kind < 0:
        return False
    return close_position(cash, g, state, c, bar, price, kind, p, fills, skips, counts) > 0


@numba.njit(cache=True)
def simulate(open_, high, low, close, long_entries, long_exits, short_entries, short_exits, start, stop,
             group_of, cash, params, state, fills, skips, counts, cash_out, position_out) -> None:
    """Bars ``[start, stop)`` of every column (2-D arrays, bars x columns), in the order of events.

    Signals are the resolved columns on the bar they were computed: bar i-1's act at bar i's open, for
    bars after ``start``. ``group_of[c]`` is column c's cash group (``cash[g]``); within a bar, orders of
    one step go sells first, then buys, each in column order. ``cash_out``/``position_out`` receive the
    cash per group and the position per column at each bar's end (rows ``i - start``).
    """
    n_cols = open_.shape[1]
    actions = np.zeros(n_cols, dtype=np.int64)
    sells = np.zeros(n_cols, dtype=np.bool_)
    for i in range(start, stop):
        for c in range(n_cols):
            gap_stop(cash, group_of[c], state, c, i, open_[i, c], params[c], fills, skips, counts)
        if i > start:
            for c in range(n_cols):
                actions[c] = decide(state[c, X_POSITION], long_entries[i - 1, c], long_exits[i - 1, c],
                                    short_entries[i - 1, c], short_exits[i - 1, c])
                sells[c] = is_sell(state[c, X_POSITION], actions[c])
            for selling in (True, False):
                for c in range(n_cols):
                    if open_[i, c] != open_[i, c]:
                        continue  # no candle for this column at this bar
                    if actions[c] != HOLD and sells[c] == selling:
                        signal_order(cash, group_of[c], state, c, i, open_[i, c], actions[c], params[c], fills,
                                     skips, counts)
        for c in range(n_cols):
            bar_stop(cash, group_of[c], state, c, i, open_[i, c], high[i, c], low[i, c], params[c], fills, skips,
                     counts)
        for g in range(cash.shape[0]):
            cash_out[i - start, g] = cash[g]
        for c in range(n_cols):
            position_out[i - start, c] = state[c, X_POSITION]
