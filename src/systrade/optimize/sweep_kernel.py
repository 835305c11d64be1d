"""A fused, disk-cached numba kernel for sweeps: signals -> fills -> equity -> metric sums in one pass.

It simulates one combination on one symbol without keeping per-bar records and returns the sufficient
statistics of every headline metric (``STATS``); ``metrics_from_stats`` turns them into the metrics with
the formulas of ``metrics.py`` (docs/metrics.md). Every fill comes from the fill model's own step functions
(``systrade.sim.kernel``: stop at the open, the signal's order, stops inside the bar), so a sweep trades
exactly as a backtest and the daemon do; this module only aggregates the fills the way vectorbt reports a
backtest's (cash and assets rebuilt from the orders, exit trades), so its metrics equal the backtest's.
"""

from __future__ import annotations

import hashlib
import inspect
import math

import numba
import numpy as np

from systrade.backtest.metrics import cagr, periods_per_year
from systrade.sim import kernel as fm

REL_TOL = 1e-9  # vectorbt.utils.math_.rel_tol
ABS_TOL = 1e-12  # vectorbt.utils.math_.abs_tol
MIN_SIZE = 1e-8  # vectorbt's default portfolio.min_size: smaller orders are not placed

STATS = ("initial", "final", "bars", "max_drawdown", "ret_mean", "ret_m2", "ret_down_sq", "ret_count",
         "closed", "wins", "gains", "losses", "pnl_sum", "fees", "exposed_bars", "open_trades")
N_STATS = len(STATS)
S_INITIAL, S_FINAL, S_BARS, S_MDD, S_MEAN, S_M2, S_DOWN, S_NRET, S_CLOSED, S_WINS, S_GAINS, S_LOSSES, \
    S_PNL, S_FEES, S_EXPOSED, S_OPEN = range(N_STATS)

# ------------------------------------------------------------------------------ vectorbt's float helpers


@numba.njit(cache=True)
def _is_close(a: float, b: float) -> bool:
    if np.isnan(a) or np.isnan(b) or np.isinf(a) or np.isinf(b):
        return False
    if a == b:
        return True
    return abs(a - b) <= max(REL_TOL * max(abs(a), abs(b)), ABS_TOL)


@numba.njit(cache=True)
def _is_less(a: float, b: float) -> bool:
    if _is_close(a, b):
        return False
    return a < b


@numba.njit(cache=True)
def _is_close_or_less(a: float, b: float) -> bool:
    if _is_close(a, b):
        return True
    return a < b


@numba.njit(cache=True)
def _add(a: float, b: float) -> float:
    """``a + b`` snapped to 0 when the two cancel (vectorbt's ``add_nb``)."""
    if np.sign(a) != np.sign(b):
        zero = _is_close(abs(a), abs(b))
    else:
        zero = _is_close(a + b, 0.0)
    return 0.0 if zero else a + b


@numba.njit(cache=True)
def _snap(x: float) -> float:
    return 0.0 if _is_close(x, 0.0) else x


@numba.njit(cache=True)
def _trade_pnl(size, entry_price, entry_fees, exit_price, exit_fees, long):
    """vectorbt's ``get_trade_stats_nb`` (PnL only)."""
    entry_val = size * entry_price
    exit_val = size * exit_price
    val_diff = _add(exit_val, -entry_val)
    if val_diff != 0 and not long:
        val_diff *= -1
    return val_diff - entry_fees - exit_fees


@numba.njit(cache=True)
def _skip_from(peak: float, mdd: float) -> float:
    """The equity at or above which a bar's drawdown ``1 - equity / peak`` is certainly not deeper than ``mdd``
    (a safe margin of 1e-12 for rounding), or inf when that cannot be said cheaply (odd peak or drawdown)."""
    if 0.0 < peak < math.inf and 0.0 <= mdd < 0.999:
        return peak * (1.0 - mdd) * (1.0 + 1e-12)
    return math.inf


# ------------------------------------------------------------------------------ the simulation


# numba's disk cache notices changes to this file only, not to the functions it calls from elsewhere. The fill
# model lives in sim/kernel.py: its source hash is a closure variable of the kernel, and numba's cache key includes
# closure variables, so changing the fill model recompiles the kernel instead of reusing a stale one.
RULES_STAMP = hashlib.sha256(inspect.getsource(fm).encode()).hexdigest()


def _compile(rules_stamp: str):
    """The kernel as a closure over ``rules_stamp``, so numba's cache key changes with the position rules."""

    @numba.njit(cache=True)
    def simulate_stats(open_, high, low, close, long_entries, long_exits, short_entries, short_exits, start, stop,
                       cash0, params, edges, stats, blocks, equity_out, pnl_out):
        """Simulate bars ``[start, stop)`` and fill ``stats`` (``STATS``) and ``blocks`` (S x 3 sums of bar returns).

        Signal arrays are the strategy's columns after the direction rule (``resolve_signals``), on the bar where
        they were computed: a signal on bar i-1 acts at bar i's open, for bars after ``start``. ``edges`` are the S+1
        bounds of the return blocks (``np.array_split`` of the ``stop - start - 1`` bar returns). ``equity_out`` and
        ``pnl_out`` receive the equity per bar and the closed trades' PnL when they are not empty. ``params`` is
        the fill model's parameter vector (``sim.rules.params_vector``). Returns the number of closed trades.
        """
        if len(rules_stamp) == 0:  # never true: ties the compiled kernel to the source of the fill model
            return -1
        record_equity = equity_out.shape[0] > 0
        record_pnl = pnl_out.shape[0] > 0
        n_blocks = blocks.shape[0]
        for s in range(n_blocks):
            blocks[s, 0] = 0.0
            blocks[s, 1] = 0.0
            blocks[s, 2] = 0.0
        # the fill model's state, a small buffer for one bar's fills, and the state rebuilt from the orders
        cash = np.full(1, cash0)
        state = np.full((1, fm.N_STATE), np.nan)
        state[0, fm.X_POSITION] = 0.0
        has_stops = not (np.isnan(params[fm.P_STOP_LOSS]) and np.isnan(params[fm.P_TAKE_PROFIT]))
        fills = np.empty((4, fm.N_FILL))
        skips = np.empty((4, fm.N_SKIP))
        counts = np.zeros(3, dtype=np.int64)
        rep_cash = cash0
        rep_position = 0.0
        # exit-trade aggregation (vectorbt get_exit_trades_nb)
        in_trade = False
        trade_long = True
        entry_size_sum = 0.0
        entry_gross_sum = 0.0
        entry_fees_sum = 0.0
        closed = 0
        wins = 0
        gains = 0.0
        losses = 0.0
        pnl_sum = 0.0
        fees_total = 0.0
        exposed = 0
        # equity statistics
        initial = 0.0
        prev = 0.0
        peak = 0.0
        mdd = 0.0
        mean = 0.0
        m2 = 0.0
        down_sq = 0.0
        n_ret = 0
        block = 0
        # the current block's sums, kept in registers and stored when the block ends (same additions, same order)
        block_n = 0.0
        block_sum = 0.0
        block_sq = 0.0
        next_edge = edges[1] if n_blocks > 1 else stop + 1
        skip_from = math.inf
        # _add(x, 0.0) is idempotent: after one quiet bar it changes nothing until the next fill
        settled = False
        for i in range(start, stop):
            # the steps are called only when they can act (a position with stops; a signal): most bars do nothing
            signal = i > start and (long_entries[i - 1] | long_exits[i - 1] | short_entries[i - 1]
                                    | short_exits[i - 1])
            n_fills = 0
            if signal or (has_stops and state[0, fm.X_POSITION] != 0):
                counts[fm.C_FILLS] = 0
                if has_stops and state[0, fm.X_POSITION] != 0:
                    fm.gap_stop(cash, 0, state, 0, i, open_[i], params, fills, skips, counts)
                if signal:
                    action = fm.decide(state[0, fm.X_POSITION], long_entries[i - 1], long_exits[i - 1],
                                       short_entries[i - 1], short_exits[i - 1])
                    if action != fm.HOLD:
                        fm.signal_order(cash, 0, state, 0, i, open_[i], action, params, fills, skips, counts)
                if has_stops and state[0, fm.X_POSITION] != 0:
                    fm.bar_stop(cash, 0, state, 0, i, open_[i], high[i], low[i], params, fills, skips, counts)
                counts[fm.C_SKIPS] = 0
                n_fills = counts[fm.C_FILLS]
            if n_fills == 0:
                if not settled:
                    rep_position = _add(rep_position, 0.0)
                    rep_cash = _add(rep_cash, 0.0)
                    settled = True
            else:
                settled = False
            for k in range(n_fills):
                side_buy = fills[k, fm.F_SIDE] > 0
                o_size = fills[k, fm.F_SIZE]
                o_price = fills[k, fm.F_PRICE]
                o_fees = fills[k, fm.F_FEE]
                fees_total += o_fees
                signed = o_size if side_buy else -o_size
                rep_position = _add(rep_position, _add(0.0, signed))
                rep_cash = _add(rep_cash, _add(0.0, -signed * o_price - o_fees))
                # trades
                if not in_trade:
                    in_trade = True
                    trade_long = side_buy
                    entry_size_sum = 0.0
                    entry_gross_sum = 0.0
                    entry_fees_sum = 0.0
                if trade_long == side_buy:
                    entry_size_sum += o_size
                    entry_gross_sum += o_size * o_price
                    entry_fees_sum += o_fees
                elif _is_close_or_less(o_size, entry_size_sum):
                    exit_size = entry_size_sum if _is_close(o_size, entry_size_sum) else o_size
                    entry_price = entry_gross_sum / entry_size_sum
                    entry_fees = exit_size / entry_size_sum * entry_fees_sum
                    pnl = _trade_pnl(exit_size, entry_price, entry_fees, o_price, o_fees, trade_long)
                    if record_pnl:
                        pnl_out[closed] = pnl
                    closed += 1
                    pnl_sum += pnl
                    if pnl > 0:
                        wins += 1
                        gains += pnl
                    elif pnl < 0:
                        losses -= pnl
                    if _is_close(o_size, entry_size_sum):
                        in_trade = False
                    else:
                        fraction = (entry_size_sum - o_size) / entry_size_sum
                        entry_size_sum *= fraction
                        entry_gross_sum *= fraction
                        entry_fees_sum *= fraction
                else:  # reversal: close the trade, open the opposite one with the rest of the order
                    cl_size = entry_size_sum
                    cl_fees = cl_size / o_size * o_fees
                    entry_price = entry_gross_sum / entry_size_sum
                    entry_fees = cl_size / entry_size_sum * entry_fees_sum
                    pnl = _trade_pnl(cl_size, entry_price, entry_fees, o_price, cl_fees, trade_long)
                    if record_pnl:
                        pnl_out[closed] = pnl
                    closed += 1
                    pnl_sum += pnl
                    if pnl > 0:
                        wins += 1
                        gains += pnl
                    elif pnl < 0:
                        losses -= pnl
                    entry_size_sum = o_size - cl_size
                    entry_gross_sum = entry_size_sum * o_price
                    entry_fees_sum = o_fees - cl_fees
                    trade_long = not trade_long
            if rep_position != 0:
                exposed += 1
            equity = rep_cash + close[i] * rep_position
            if record_equity:
                equity_out[i - start] = equity
            if i == start:
                initial = equity
                peak = equity
                mdd = 1.0 - equity / peak
                skip_from = _skip_from(peak, mdd)
            else:
                if equity == prev and prev != 0.0 and np.isfinite(prev):
                    r = 0.0  # equity / prev is exactly 1
                else:
                    r = equity / prev - 1.0
                n_ret += 1
                delta = r - mean
                mean += delta / n_ret
                m2 += delta * (r - mean)
                down = r if r < 0 else 0.0  # a select, not a branch (adding 0.0 changes nothing)
                down_sq += down * down
                t = n_ret - 1
                while t >= next_edge:  # next_edge is past the end once the last block is reached
                    blocks[block, 0] = block_n
                    blocks[block, 1] = block_sum
                    blocks[block, 2] = block_sq
                    block_n = 0.0
                    block_sum = 0.0
                    block_sq = 0.0
                    block += 1
                    next_edge = edges[block + 1] if block < n_blocks - 1 else stop + 1
                if n_blocks > 0 and np.isfinite(r):
                    block_n += 1.0
                    block_sum += r
                    block_sq += r * r
                top = max(peak, equity)
                if top != peak:
                    skip_from = _skip_from(top, mdd)
                peak = top
                # the drawdown needs a division only when it may beat the deepest so far
                if not (0.0 < equity < math.inf and equity >= skip_from):
                    dd = 1.0 - equity / peak
                    if dd > mdd:
                        mdd = dd
                        skip_from = _skip_from(peak, mdd)
            prev = equity
        if n_blocks > 0:
            blocks[block, 0] = block_n
            blocks[block, 1] = block_sum
            blocks[block, 2] = block_sq
        open_trades = 1 if (in_trade and _is_less(-entry_size_sum, 0.0)) else 0
        stats[S_INITIAL] = initial
        stats[S_FINAL] = prev
        stats[S_BARS] = stop - start
        stats[S_MDD] = mdd
        stats[S_MEAN] = mean
        stats[S_M2] = m2
        stats[S_DOWN] = down_sq
        stats[S_NRET] = n_ret
        stats[S_CLOSED] = closed
        stats[S_WINS] = wins
        stats[S_GAINS] = gains
        stats[S_LOSSES] = losses
        stats[S_PNL] = pnl_sum
        stats[S_FEES] = fees_total
        stats[S_EXPOSED] = exposed
        stats[S_OPEN] = open_trades
        return closed

    return simulate_stats


simulate_stats = _compile(RULES_STAMP)
"""The kernel, compiled once per version of the position rules (and of this file) and cached on disk."""


# ------------------------------------------------------------------------------ Python side


def block_edges(n_returns: int, n_blocks: int) -> np.ndarray:
    """The S+1 bounds of ``np.array_split(returns, S)`` (the split ``overfitting.block_stats_from_returns`` uses)."""
    if n_blocks <= 0 or n_returns < n_blocks:
        return np.zeros(1, dtype=np.int64)
    base, extra = divmod(n_returns, n_blocks)
    sizes = np.full(n_blocks, base, dtype=np.int64)
    sizes[:extra] += 1
    return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)


EMPTY_F = np.zeros(0)


def readonly(values: np.ndarray) -> np.ndarray:
    """A read-only view: inputs always reach the kernel read-only (as pandas' copy-on-write hands them out),
    so it is compiled and loaded from its disk cache for one signature only."""
    if not values.flags.writeable:
        return values
    view = values.view()
    view.flags.writeable = False
    return view


def run_combo(open_: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray,
              resolved: dict[str, np.ndarray], start: int, stop: int, cash: float, params: np.ndarray,
              n_blocks: int, detail: bool = False):
    """Simulate one combination: ``(stats, blocks)``, plus ``(equity, closed pnls)`` when ``detail``.

    ``params`` is the fill model's parameter vector (``sim.rules.params_vector``).
    """
    edges = block_edges(stop - start - 1, n_blocks)
    stats = np.empty(N_STATS)
    blocks = np.empty((len(edges) - 1, 3))
    equity = np.empty(stop - start) if detail else EMPTY_F
    pnls = np.empty(stop - start) if detail else EMPTY_F
    closed = simulate_stats(readonly(open_), readonly(high), readonly(low), readonly(close),
                            readonly(resolved["entries"]), readonly(resolved["exits"]),
                            readonly(resolved["short_entries"]), readonly(resolved["short_exits"]), start, stop,
                            float(cash), readonly(params), edges, stats, blocks, equity, pnls)
    if detail:
        return stats, blocks, equity, pnls[:closed]
    return stats, blocks


def metrics_from_stats(stats: np.ndarray, bar_seconds: float, year_days: float) -> dict[str, float]:
    """The headline metrics of ``metrics.compute_metrics`` (same formulas) from one combination's ``STATS``."""
    initial, final = float(stats[S_INITIAL]), float(stats[S_FINAL])
    n = int(stats[S_BARS])
    ppy = periods_per_year(bar_seconds, year_days)
    growth = cagr(initial, final, n / ppy)
    drawdown = float(stats[S_MDD]) if n else 0.0
    n_ret = int(stats[S_NRET])
    mean = float(stats[S_MEAN])
    sharpe = sortino = math.nan
    if n_ret >= 2:
        std = math.sqrt(stats[S_M2] / (n_ret - 1))
        sharpe = mean / std * math.sqrt(ppy) if std > 0 else math.nan
        downside = math.sqrt(stats[S_DOWN] / n_ret)
        sortino = mean / downside * math.sqrt(ppy) if downside > 0 else math.nan
    closed = int(stats[S_CLOSED])
    gains, losses = float(stats[S_GAINS]), float(stats[S_LOSSES])
    if closed:
        win_rate = stats[S_WINS] / closed
        profit_factor = gains / losses if losses > 0 else (math.inf if gains > 0 else math.nan)
        expectancy = stats[S_PNL] / closed
    else:
        win_rate = profit_factor = expectancy = math.nan
    return {
        "final_equity": final,
        "total_return_pct": (final / initial - 1.0) * 100.0,
        "cagr_pct": growth * 100.0,
        "max_drawdown_pct": drawdown * 100.0,
        "sharpe": sharpe,
        "sortino": sortino,
        "calmar": growth / drawdown if drawdown > 0 else math.nan,
        "win_rate_pct": float(win_rate) * 100.0,
        "profit_factor": float(profit_factor),
        "expectancy": float(expectancy),
        "exposure_pct": float(stats[S_EXPOSED]) / n * 100.0,
        "fees_paid": float(stats[S_FEES]),
        "total_trades": closed + int(stats[S_OPEN]),
        "closed_trades": closed,
        "open_trades": int(stats[S_OPEN]),
    }
