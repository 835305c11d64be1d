"""Disk-cached numba passes for sweeps: signals -> fills -> equity -> metric sums, without per-bar records.

They simulate a combination on one symbol without keeping per-bar records and return the sufficient
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
def _trade_pnl(size, entry_price, entry_fees, exit_price, exit_fees, long):
    """vectorbt's ``get_trade_stats_nb`` (PnL only)."""
    entry_val = size * entry_price
    exit_val = size * exit_price
    val_diff = _add(exit_val, -entry_val)
    if val_diff != 0 and not long:
        val_diff *= -1
    return val_diff - entry_fees - exit_fees


@numba.njit(cache=True)
def _keep_above(mdd: float) -> float:
    """The fraction of the peak at or above which equity's drawdown ``1 - equity / peak`` is certainly not deeper
    than ``mdd`` (a safe margin of 1e-12 covers the rounding), or inf when that cannot be said cheaply."""
    if 0.0 <= mdd < 0.999:
        return (1.0 - mdd) * (1.0 + 1e-12)
    return math.inf


# ------------------------------------------------------------------------------ the simulation


# numba's disk cache notices changes to this file only, not to the functions it calls from elsewhere. The fill
# model lives in sim/kernel.py: its source hash is a closure variable of the fill pass, and numba's cache key includes
# closure variables, so changing the fill model recompiles the pass instead of reusing a stale one.
RULES_STAMP = hashlib.sha256(inspect.getsource(fm).encode()).hexdigest()

# A combination is simulated in three passes, each a short loop with few live variables (one fused loop kept ~30
# values live, more than the CPU has registers, and ran at about half the speed):
#   fill_pass     the fill model on bars with a signal (or a position with stops): trades, and the cash and position
#                 held from each bar where they change ("segments");
#   equity_pass   equity bar by bar from the segments: drawdown, exposure, and the bar returns into a buffer;
#   moments_pass  mean, variance, downside and PBO block sums of four combinations' returns at once: the running
#                 mean is a chain of divisions, and four independent chains run in about the time of one.
# Every figure goes through the same operations in the same order as a single loop would, so results are
# bit-identical to it (tests/test_sweep_lanes.py).


def _compile(rules_stamp: str):
    """The fill pass as a closure over ``rules_stamp``, so numba's cache key changes with the position rules."""

    @numba.njit(cache=True)
    def fill_pass(open_, high, low, close, long_entries, long_exits, short_entries, short_exits, events, start, stop,
                  cash0, params, stats, seg_bar, seg_cash, seg_position, pnl_out):
        """Fill bars ``[start, stop)`` and write the trade statistics of ``STATS`` into ``stats``.

        Signal arrays are the strategy's columns after the direction rule (``resolve_signals``), on the bar where
        they were computed: a signal on bar i-1 acts at bar i's open, for bars after ``start``. ``params`` is the
        fill model's parameter vector (``sim.rules.params_vector``); ``events`` are the bars (ascending) where any
        signal column is true, so quiet stretches are skipped without reading them. The cash and position held from bar
        ``seg_bar[j]`` on are ``seg_cash[j]`` and ``seg_position[j]`` (as vectorbt rebuilds them from the orders);
        ``pnl_out`` receives the closed trades' PnL when it is not empty. Returns the number of segments (the
        arrays hold at least ``stop - start``).
        """
        if len(rules_stamp) == 0:  # never true: ties the compiled pass to the source of the fill model
            return -1
        record_pnl = pnl_out.shape[0] > 0
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
        n_seg = 0
        # _add(x, 0.0) is idempotent: after one quiet bar it changes nothing until the next fill
        settled = False
        next_event = 0
        i = start - 1
        while i + 1 < stop:
            i += 1
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
                if settled:
                    if not (has_stops and state[0, fm.X_POSITION] != 0):
                        # nothing can happen before the next signal: skip to the bar before it acts
                        while next_event < events.shape[0] and events[next_event] < i:
                            next_event += 1
                        i = min(events[next_event], stop - 1) if next_event < events.shape[0] else stop - 1
                    continue
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
            seg_bar[n_seg] = i
            seg_cash[n_seg] = rep_cash
            seg_position[n_seg] = rep_position
            n_seg += 1
        stats[S_CLOSED] = closed
        stats[S_WINS] = wins
        stats[S_GAINS] = gains
        stats[S_LOSSES] = losses
        stats[S_PNL] = pnl_sum
        stats[S_FEES] = fees_total
        stats[S_OPEN] = 1 if (in_trade and _is_less(-entry_size_sum, 0.0)) else 0
        return n_seg

    return fill_pass


fill_pass = _compile(RULES_STAMP)
"""The fill pass, compiled once per version of the position rules (and of this file) and cached on disk."""


@numba.njit(cache=True)
def equity_pass(close, start, stop, seg_bar, seg_cash, seg_position, n_seg, stats, returns, equity_out):
    """Equity on bars ``[start, stop)`` from the fill pass's segments: initial and final equity, bars, maximum
    drawdown, exposed bars and return count into ``stats``; bar returns into ``returns`` (``stop - start - 1``);
    the equity per bar into ``equity_out`` when it is not empty. One loop: the prices are read once."""
    record_equity = equity_out.shape[0] > 0
    initial = 0.0
    prev = 0.0
    mdd = 0.0
    exposed = 0
    n_ret = 0
    if stop > start:
        s = 0
        rep_cash = seg_cash[0]
        rep_position = seg_position[0]
        next_bar = seg_bar[1] if n_seg > 1 else stop
        if rep_position != 0:
            exposed += 1
        equity = rep_cash + close[start] * rep_position
        if record_equity:
            equity_out[0] = equity
        initial = equity
        peak = equity
        mdd = 1.0 - equity / peak
        keep = _keep_above(mdd)
        skip_from = peak * keep if 0.0 < peak < math.inf else math.inf
        prev = equity
        for i in range(start + 1, stop):
            if i == next_bar:
                s += 1
                rep_cash = seg_cash[s]
                rep_position = seg_position[s]
                next_bar = seg_bar[s + 1] if s + 1 < n_seg else stop
            if rep_position != 0:
                exposed += 1
            equity = rep_cash + close[i] * rep_position
            if record_equity:
                equity_out[i - start] = equity
            # selects, not branches: a branch on "did the equity move" or "is this a new peak" is mispredicted
            # often enough to cost more than the division it saves
            ratio = equity / prev - 1.0
            r = 0.0 if (equity == prev and prev != 0.0 and np.isfinite(prev)) else ratio  # exactly 1: 0
            returns[n_ret] = r
            n_ret += 1
            new_peak = equity > peak
            peak = equity if new_peak else peak
            skip_from = peak * keep if new_peak else skip_from
            # the drawdown needs a division only when it may beat the deepest so far
            if not (0.0 < equity < math.inf and equity >= skip_from):
                dd = 1.0 - equity / peak
                if dd > mdd:
                    mdd = dd
                    keep = _keep_above(mdd)
                    skip_from = peak * keep if 0.0 < peak < math.inf else math.inf
            prev = equity
    stats[S_INITIAL] = initial
    stats[S_FINAL] = prev
    stats[S_BARS] = stop - start
    stats[S_MDD] = mdd
    stats[S_NRET] = n_ret
    stats[S_EXPOSED] = exposed


LANES = 4
"""Combinations whose return statistics are computed together (``moments_pass``)."""


@numba.njit(cache=True)
def moments_pass(r0, r1, r2, r3, n_ret, edges, s0, s1, s2, s3, b0, b1, b2, b3):
    """Running mean and squared deviations (Welford), downside squares and the S x 3 block sums of bar returns
    (``edges``: S+1 bounds, ``block_edges``) of four combinations at once (``r``: returns, ``s``: stats,
    ``b``: blocks; repeat a lane's arguments for fewer).

    The running mean is a chain of divisions, each waiting for the last: four independent chains take the time of
    one. So every statement is written once per lane (scalars stay in registers; arrays of four would not). Each
    lane's figures go through the same operations in the same order as a combination simulated alone.
    """
    n_blocks = b0.shape[0]
    for s in range(n_blocks):
        for j in range(3):
            b0[s, j] = 0.0
            b1[s, j] = 0.0
            b2[s, j] = 0.0
            b3[s, j] = 0.0
    mean0 = 0.0
    mean1 = 0.0
    mean2 = 0.0
    mean3 = 0.0
    m2_0 = 0.0
    m2_1 = 0.0
    m2_2 = 0.0
    m2_3 = 0.0
    down0 = 0.0
    down1 = 0.0
    down2 = 0.0
    down3 = 0.0
    count0 = 0
    count1 = 0
    count2 = 0
    count3 = 0
    sum0 = 0.0
    sum1 = 0.0
    sum2 = 0.0
    sum3 = 0.0
    sq0 = 0.0
    sq1 = 0.0
    sq2 = 0.0
    sq3 = 0.0
    block = 0
    next_edge = edges[1] if n_blocks > 1 else n_ret + 1
    for t in range(n_ret):
        n = t + 1
        x0 = r0[t]
        x1 = r1[t]
        x2 = r2[t]
        x3 = r3[t]
        d0 = x0 - mean0
        d1 = x1 - mean1
        d2 = x2 - mean2
        d3 = x3 - mean3
        mean0 += d0 / n
        mean1 += d1 / n
        mean2 += d2 / n
        mean3 += d3 / n
        m2_0 += d0 * (x0 - mean0)
        m2_1 += d1 * (x1 - mean1)
        m2_2 += d2 * (x2 - mean2)
        m2_3 += d3 * (x3 - mean3)
        # a select, not a branch (adding 0.0 changes nothing)
        u0 = x0 if x0 < 0 else 0.0
        u1 = x1 if x1 < 0 else 0.0
        u2 = x2 if x2 < 0 else 0.0
        u3 = x3 if x3 < 0 else 0.0
        down0 += u0 * u0
        down1 += u1 * u1
        down2 += u2 * u2
        down3 += u3 * u3
        while t >= next_edge:  # next_edge is past the end once the last block is reached
            b0[block, 0] = count0
            b1[block, 0] = count1
            b2[block, 0] = count2
            b3[block, 0] = count3
            b0[block, 1] = sum0
            b1[block, 1] = sum1
            b2[block, 1] = sum2
            b3[block, 1] = sum3
            b0[block, 2] = sq0
            b1[block, 2] = sq1
            b2[block, 2] = sq2
            b3[block, 2] = sq3
            count0 = 0
            count1 = 0
            count2 = 0
            count3 = 0
            sum0 = 0.0
            sum1 = 0.0
            sum2 = 0.0
            sum3 = 0.0
            sq0 = 0.0
            sq1 = 0.0
            sq2 = 0.0
            sq3 = 0.0
            block += 1
            next_edge = edges[block + 1] if block < n_blocks - 1 else n_ret + 1
        if n_blocks > 0:
            if np.isfinite(x0):
                count0 += 1
                sum0 += x0
                sq0 += x0 * x0
            if np.isfinite(x1):
                count1 += 1
                sum1 += x1
                sq1 += x1 * x1
            if np.isfinite(x2):
                count2 += 1
                sum2 += x2
                sq2 += x2 * x2
            if np.isfinite(x3):
                count3 += 1
                sum3 += x3
                sq3 += x3 * x3
    if n_blocks > 0:
        b0[block, 0] = count0
        b1[block, 0] = count1
        b2[block, 0] = count2
        b3[block, 0] = count3
        b0[block, 1] = sum0
        b1[block, 1] = sum1
        b2[block, 1] = sum2
        b3[block, 1] = sum3
        b0[block, 2] = sq0
        b1[block, 2] = sq1
        b2[block, 2] = sq2
        b3[block, 2] = sq3
    s0[S_MEAN] = mean0
    s1[S_MEAN] = mean1
    s2[S_MEAN] = mean2
    s3[S_MEAN] = mean3
    s0[S_M2] = m2_0
    s1[S_M2] = m2_1
    s2[S_M2] = m2_2
    s3[S_M2] = m2_3
    s0[S_DOWN] = down0
    s1[S_DOWN] = down1
    s2[S_DOWN] = down2
    s3[S_DOWN] = down3


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


class Simulator:
    """Simulates combinations on one window of one market, four at a time (see the passes above).

    ``push`` simulates one combination up to its returns and hands back the keys of the combinations whose
    statistics are complete: none, or the last four together; ``finish`` completes the rest. The buffers
    (segments, four return series) are allocated once.
    """

    def __init__(self, open_: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray, start: int, stop: int,
                 cash: float, params: np.ndarray, n_blocks: int) -> None:
        self.prices = tuple(readonly(p) for p in (open_, high, low, close))
        self.start, self.stop, self.cash = start, stop, float(cash)
        self.params = readonly(params)
        self.edges = block_edges(stop - start - 1, n_blocks)
        self.n_blocks = len(self.edges) - 1
        bars = max(stop - start, 1)
        self.seg_bar = np.empty(bars, dtype=np.int64)
        self.seg_cash = np.empty(bars)
        self.seg_position = np.empty(bars)
        self.returns = np.empty((LANES, max(stop - start - 1, 0)))
        self._spare_stats = np.empty((LANES, N_STATS))
        self._spare_blocks = np.empty((LANES, self.n_blocks, 3))
        self._pending: list[tuple[object, np.ndarray, np.ndarray]] = []

    def _fill_and_equity(self, lane: int, resolved: dict[str, np.ndarray], stats: np.ndarray,
                         equity_out: np.ndarray, pnl_out: np.ndarray) -> None:
        open_, high, low, close = self.prices
        columns = [readonly(resolved[name]) for name in ("entries", "exits", "short_entries", "short_exits")]
        events = np.flatnonzero(columns[0] | columns[1] | columns[2] | columns[3])
        n_seg = fill_pass(open_, high, low, close, *columns, events, self.start, self.stop, self.cash, self.params,
                          stats, self.seg_bar, self.seg_cash, self.seg_position, pnl_out)
        equity_pass(close, self.start, self.stop, self.seg_bar, self.seg_cash, self.seg_position, n_seg, stats,
                    self.returns[lane], equity_out)

    def _moments(self) -> list[object]:
        """Complete the pending combinations (unused lanes repeat the first one into spare outputs)."""
        lanes = [(self.returns[i], stats, blocks) for i, (_, stats, blocks) in enumerate(self._pending)]
        lanes += [(self.returns[0], self._spare_stats[i], self._spare_blocks[i]) for i in range(len(lanes), LANES)]
        returns, stats, blocks = zip(*lanes, strict=True)
        moments_pass(*returns, self.returns.shape[1], self.edges, *stats, *blocks)
        keys = [key for key, _, _ in self._pending]
        self._pending.clear()
        return keys

    def push(self, key: object, resolved: dict[str, np.ndarray], stats: np.ndarray, blocks: np.ndarray
             ) -> list[object]:
        """Simulate ``resolved`` (signals after the direction rule) into ``stats`` (``STATS``) and ``blocks``
        (S x 3); returns the keys whose ``stats`` and ``blocks`` are now complete."""
        self._fill_and_equity(len(self._pending), resolved, stats, EMPTY_F, EMPTY_F)
        self._pending.append((key, stats, blocks))
        return self._moments() if len(self._pending) == LANES else []

    def finish(self) -> list[object]:
        """Complete the combinations still pending; returns their keys."""
        return self._moments() if self._pending else []

    def one(self, resolved: dict[str, np.ndarray], stats: np.ndarray, blocks: np.ndarray, equity_out: np.ndarray,
            pnl_out: np.ndarray) -> int:
        """Simulate one combination on its own, keeping its equity per bar (``stop - start``) and closed PnLs when
        the outputs are not empty; returns the number of closed trades."""
        if self._pending:
            raise RuntimeError("finish() the pending combinations first")
        self._fill_and_equity(0, resolved, stats, equity_out, pnl_out)
        self._pending.append((None, stats, blocks))
        self._moments()
        return int(stats[S_CLOSED])


def run_combo(open_: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray,
              resolved: dict[str, np.ndarray], start: int, stop: int, cash: float, params: np.ndarray,
              n_blocks: int, detail: bool = False):
    """Simulate one combination: ``(stats, blocks)``, plus ``(equity, closed pnls)`` when ``detail``.

    ``params`` is the fill model's parameter vector (``sim.rules.params_vector``).
    """
    simulator = Simulator(open_, high, low, close, start, stop, cash, params, n_blocks)
    stats = np.empty(N_STATS)
    blocks = np.empty((simulator.n_blocks, 3))
    equity = np.empty(stop - start) if detail else EMPTY_F
    pnls = np.empty(stop - start) if detail else EMPTY_F
    closed = simulator.one(resolved, stats, blocks, equity, pnls)
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
