"""A fused, disk-cached numba kernel for sweeps: signals -> fills -> equity -> metric sums in one pass.

It simulates one combination on one symbol without keeping per-bar records and returns the sufficient
statistics of every headline metric (``STATS``); ``metrics_from_stats`` turns them into the metrics with
the formulas of ``metrics.py`` (docs/metrics.md). The order arithmetic is vectorbt's (``buy_nb``, ``sell_nb``,
``execute_order_nb``, the from-orders cash/asset reconstruction and ``get_exit_trades_nb`` of vectorbt 1.2),
restricted to what the kernel supports, so its numbers equal the engine's (tests prove it on random inputs).

What a bar's signals do is decided by ``systrade.positions.decide`` itself, compiled with numba: the
position rules are not re-implemented here. Supported: one symbol, ``--size all``, any direction, fees and
slippage; not supported (``supports`` says so and the sweep falls back to the vectorbt engine): stops,
granularity, fixed or percent sizes.
"""

from __future__ import annotations

import hashlib
import inspect
import math

import numba
import numpy as np

from systrade.backtest.metrics import cagr, periods_per_year
from systrade.positions import PositionRules, decide

REL_TOL = 1e-9  # vectorbt.utils.math_.rel_tol
ABS_TOL = 1e-12  # vectorbt.utils.math_.abs_tol
MIN_SIZE = 1e-8  # vectorbt's default portfolio.min_size: smaller orders are not placed

STATS = ("initial", "final", "bars", "max_drawdown", "ret_mean", "ret_m2", "ret_down_sq", "ret_count",
         "closed", "wins", "gains", "losses", "pnl_sum", "fees", "exposed_bars", "open_trades")
N_STATS = len(STATS)
S_INITIAL, S_FINAL, S_BARS, S_MDD, S_MEAN, S_M2, S_DOWN, S_NRET, S_CLOSED, S_WINS, S_GAINS, S_LOSSES, \
    S_PNL, S_FEES, S_EXPOSED, S_OPEN = range(N_STATS)

_decide = numba.njit(cache=True)(decide)


def supports(rules: PositionRules) -> bool:
    """Whether the kernel implements these rules (else the sweep uses the vectorbt engine)."""
    return (rules.size == "all" and rules.granularity is None and rules.stop_loss is None
            and rules.take_profit is None)


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


# ------------------------------------------------------------------------------ orders (vectorbt buy_nb / sell_nb)


@numba.njit(cache=True)
def _buy(cash, position, debt, free_cash, size, price, fees, slippage, short_only):
    """A buy of ``size`` units (inf: all cash) or a cover (``short_only``). Returns filled?, state, size, price, fee."""
    adj_price = price * (1.0 + slippage)
    cash_limit = cash
    if short_only:
        if position == 0:
            return False, cash, position, debt, free_cash, 0.0, 0.0, 0.0
        adj_size = min(-position, size)
    else:
        if cash_limit == 0:
            return False, cash, position, debt, free_cash, 0.0, 0.0, 0.0
        adj_size = size
    if adj_size == 0:
        return False, cash, position, debt, free_cash, 0.0, 0.0, 0.0
    req_cash = adj_size * adj_price
    req_fees = req_cash * fees + 0.0
    total_req_cash = req_cash + req_fees
    if _is_close_or_less(total_req_cash, cash_limit):
        final_size = adj_size
        fees_paid = req_fees
        final_req_cash = total_req_cash
    else:
        max_req_cash = _add(cash_limit, -0.0) / (1.0 + fees)
        if max_req_cash <= 0:
            return False, cash, position, debt, free_cash, 0.0, 0.0, 0.0
        final_size = max_req_cash / adj_price
        fees_paid = cash_limit - max_req_cash
        final_req_cash = cash_limit
    if _is_close(adj_size, 0.0) or _is_less(final_size, MIN_SIZE):
        return False, cash, position, debt, free_cash, 0.0, 0.0, 0.0
    new_cash = _add(cash, -final_req_cash)
    new_position = _add(position, final_size)
    if position < 0:
        short_size = final_size if new_position < 0 else abs(position)
        avg_entry_price = debt / abs(position)
        debt_diff = short_size * avg_entry_price
        new_debt = _add(debt, -debt_diff)
        new_free_cash = _add(free_cash + 2 * debt_diff, -final_req_cash)
    else:
        new_debt = debt
        new_free_cash = _add(free_cash, -final_req_cash)
    return True, new_cash, new_position, new_debt, new_free_cash, final_size, adj_price, fees_paid


@numba.njit(cache=True)
def _sell(cash, position, debt, free_cash, size, price, fees, slippage, long_only, percent):
    """A sale of ``size`` units (``long_only``: a close) or, with size inf and percent 1, all cash short."""
    adj_price = price * (1.0 - slippage)
    if long_only:
        size_limit = min(position, size)
    elif np.isinf(size) and not np.isnan(percent):
        long_size = max(position, 0.0)
        long_cash = long_size * adj_price * (1.0 - fees)
        total_free_cash = _add(free_cash, long_cash)
        if total_free_cash <= 0:
            if position <= 0:
                return False, cash, position, debt, free_cash, 0.0, 0.0, 0.0
            max_size_limit = long_size
        else:
            max_short_size = _add(total_free_cash, -0.0) / (adj_price * (1.0 + fees))
            max_size_limit = _add(long_size, max_short_size)
            if max_size_limit <= 0:
                return False, cash, position, debt, free_cash, 0.0, 0.0, 0.0
        size_limit = max_size_limit
    else:
        size_limit = size
    if not np.isnan(percent):
        size_limit = percent * size_limit
    if long_only and position == 0:
        return False, cash, position, debt, free_cash, 0.0, 0.0, 0.0
    if _is_close(size_limit, 0.0) or _is_less(size_limit, MIN_SIZE):
        return False, cash, position, debt, free_cash, 0.0, 0.0, 0.0
    acq_cash = size_limit * adj_price
    fees_paid = acq_cash * fees + 0.0
    final_acq_cash = _add(acq_cash, -fees_paid)
    if final_acq_cash < 0:
        return False, cash, position, debt, free_cash, 0.0, 0.0, 0.0
    new_cash = cash + final_acq_cash
    new_position = _add(position, -size_limit)
    if new_position < 0:
        short_size = size_limit if position < 0 else abs(new_position)
        short_value = short_size * adj_price
        new_debt = debt + short_value
        new_free_cash = _add(free_cash, _add(final_acq_cash, -2 * short_value))
    else:
        new_debt = debt
        new_free_cash = free_cash + final_acq_cash
    return True, new_cash, new_position, new_debt, new_free_cash, size_limit, adj_price, fees_paid


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


# ------------------------------------------------------------------------------ the simulation


# numba's disk cache notices changes to this file only, not to the functions it calls from elsewhere. ``decide``
# lives in positions.py: its source hash is a closure variable of the kernel, and numba's cache key includes
# closure variables, so changing the position rules recompiles the kernel instead of reusing a stale one.
RULES_STAMP = hashlib.sha256(inspect.getsource(decide).encode()).hexdigest()


def _compile(rules_stamp: str):
    """The kernel as a closure over ``rules_stamp``, so numba's cache key changes with the position rules."""

    @numba.njit(cache=True)
    def simulate_stats(open_, close, long_entries, long_exits, short_entries, short_exits, start, stop, cash0, fees,
                       slippage, edges, stats, blocks, equity_out, pnl_out):
        """Simulate bars ``[start, stop)`` and fill ``stats`` (``STATS``) and ``blocks`` (S x 3 sums of bar returns).

        Signal arrays are the strategy's columns after the direction rule (``resolve_signals``), on the bar where
        they were computed: a signal on bar i-1 acts at bar i's open, for bars after ``start``. ``edges`` are the S+1
        bounds of the return blocks (``np.array_split`` of the ``stop - start - 1`` bar returns). ``equity_out`` and
        ``pnl_out`` receive the equity per bar and the closed trades' PnL when they are not empty.
        Returns the number of closed trades.
        """
        if len(rules_stamp) == 0:  # never true: ties the compiled kernel to the source of positions.decide
            return -1
        record_equity = equity_out.shape[0] > 0
        record_pnl = pnl_out.shape[0] > 0
        n_blocks = blocks.shape[0]
        for s in range(n_blocks):
            blocks[s, 0] = 0.0
            blocks[s, 1] = 0.0
            blocks[s, 2] = 0.0
        # simulation state (vectorbt's exec state) and the state rebuilt from order records (what it reports)
        cash = cash0
        position = 0.0
        debt = 0.0
        free_cash = cash0
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
        for i in range(start, stop):
            filled = False
            side_buy = True
            o_size = 0.0
            o_price = 0.0
            o_fees = 0.0
            if i > start:
                le = long_entries[i - 1]
                lx = long_exits[i - 1]
                se = short_entries[i - 1]
                sx = short_exits[i - 1]
                if le or lx or se or sx:
                    action = _decide(position, le, lx, se, sx)
                    if action != "hold":
                        price = open_[i]
                        c = _snap(cash)
                        p = _snap(position)
                        d = _snap(debt)
                        f = _snap(free_cash)
                        if action == "buy" or (action == "reverse" and position < 0):
                            filled, c, p, d, f, o_size, o_price, o_fees = _buy(
                                c, p, d, f, np.inf, price, fees, slippage, False)
                            side_buy = True
                        elif action == "sell" or action == "reverse":
                            filled, c, p, d, f, o_size, o_price, o_fees = _sell(
                                c, p, d, f, np.inf, price, fees, slippage, False, 1.0)
                            side_buy = False
                        elif position > 0:  # close a long
                            filled, c, p, d, f, o_size, o_price, o_fees = _sell(
                                c, p, d, f, abs(position), price, fees, slippage, True, np.nan)
                            side_buy = False
                        else:  # close a short
                            filled, c, p, d, f, o_size, o_price, o_fees = _buy(
                                c, p, d, f, abs(position), price, fees, slippage, True)
                            side_buy = True
                        if filled:
                            cash, position, debt, free_cash = c, p, d, f
            if filled:
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
            else:
                rep_position = _add(rep_position, 0.0)
                rep_cash = _add(rep_cash, 0.0)
            if rep_position != 0:
                exposed += 1
            equity = rep_cash + close[i] * rep_position
            if record_equity:
                equity_out[i - start] = equity
            if i == start:
                initial = equity
                peak = equity
            else:
                r = equity / prev - 1.0
                n_ret += 1
                delta = r - mean
                mean += delta / n_ret
                m2 += delta * (r - mean)
                if r < 0:
                    down_sq += r * r
                t = n_ret - 1
                while block < n_blocks - 1 and t >= edges[block + 1]:
                    block += 1
                if n_blocks > 0 and np.isfinite(r):
                    blocks[block, 0] += 1.0
                    blocks[block, 1] += r
                    blocks[block, 2] += r * r
                peak = max(peak, equity)
            dd = 1.0 - equity / peak
            if dd > mdd or i == start:
                mdd = dd
            prev = equity
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


def run_combo(open_: np.ndarray, close: np.ndarray, resolved: dict[str, np.ndarray], start: int, stop: int,
              cash: float, fees: float, slippage: float, n_blocks: int, detail: bool = False):
    """Simulate one combination: ``(stats, blocks)``, plus ``(equity, closed pnls)`` when ``detail``."""
    edges = block_edges(stop - start - 1, n_blocks)
    stats = np.empty(N_STATS)
    blocks = np.empty((len(edges) - 1, 3))
    equity = np.empty(stop - start) if detail else EMPTY_F
    pnls = np.empty(stop - start) if detail else EMPTY_F
    closed = simulate_stats(readonly(open_), readonly(close), readonly(resolved["entries"]),
                            readonly(resolved["exits"]), readonly(resolved["short_entries"]),
                            readonly(resolved["short_exits"]), start, stop, float(cash), float(fees), float(slippage),
                            edges, stats, blocks, equity, pnls)
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
