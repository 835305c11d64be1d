"""Parameter sweeps in bounded memory: what one chunk of combinations costs, evaluating a chunk, ranking.

A sweep keeps only each combination's metrics and 16 blocks of return sums (for PBO), never a bars x
combinations matrix: a worker computes one combination's signals at a time and runs the fused kernel
(``sweep_kernel``: the fill model's steps, no per-bar records). Each combination is simulated on its own, so
results do not depend on chunking, worker count or cluster.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from systrade.backtest.metrics import bar_returns, periods_per_year
from systrade.backtest.run import buy_and_hold_pct, compute_signals
from systrade.data.load import Candles
from systrade.data.timeframes import timeframe_seconds
from systrade.errors import UserError
from systrade.optimize.grid import Grid
from systrade.sim.rules import PositionRules, params_vector, resolve_signals
from systrade.strategy import Strategy

METRICS = {"sharpe": "sharpe", "total_return": "total_return_pct", "calmar": "calmar", "sortino": "sortino",
           "profit_factor": "profit_factor"}
COLUMNS = ("final_equity", "total_return_pct", "cagr_pct", "max_drawdown_pct", "sharpe", "sortino", "calmar",
           "win_rate_pct", "profit_factor", "expectancy", "exposure_pct", "fees_paid", "total_trades",
           "closed_trades", "open_trades")
COLUMN = {name: i for i, name in enumerate(COLUMNS)}
INT_COLUMNS = ("total_trades", "closed_trades", "open_trades")
N_BLOCKS = 16

# Memory model (bytes), measured on this code with vectorbt 1.2 and pandas 3 (see docs/optimize.md):
# one combination in flight: data copy, the strategy's temporaries, signal arrays (600), and the simulator's
# segments and four lanes of bar returns (56)
KERNEL_BYTES_PER_BAR = 656
RESULT_BYTES_PER_COMBO = 8 * (len(COLUMNS) + 3 * N_BLOCKS) + 64
INDICATOR_CACHE_CAP = 256_000_000  # per worker; half of what the budget leaves, at most this


@dataclass(frozen=True)
class Window:
    """Bars ``[sig_start, stop)`` are given to ``signals()``; bars ``[sim_start, stop)`` are simulated."""

    sig_start: int
    sim_start: int
    stop: int

    @property
    def bars(self) -> int:
        return self.stop - self.sim_start


@dataclass
class SweepJob:
    """Everything a worker needs to evaluate any chunk: shipped once per worker."""

    strategy_cls: type[Strategy]
    grid: Grid
    candles: Candles
    rules: PositionRules
    cash: float
    year_days: float
    n_blocks: int = N_BLOCKS
    cache_bytes: int = 0  # per worker, for @indicator results

    @property
    def bar_seconds(self) -> float:
        return float(timeframe_seconds(self.candles.timeframe))

    def full_window(self) -> Window:
        return Window(0, 0, len(self.candles.frame))


@dataclass
class ChunkResult:
    """Metrics (k x COLUMNS) and return-block sums (k x S x 3, or None) of combinations ``k0 .. k0+k-1``."""

    k0: int
    metrics: np.ndarray
    blocks: np.ndarray | None


def _slice(candles: Candles, start: int, stop: int) -> Candles:
    frame = candles.frame.iloc[start:stop]
    frame.attrs = dict(candles.frame.attrs)
    return Candles(candles.symbol, candles.timeframe, frame, candles.source, candles.synthetic)


def combo_signals(job: SweepJob, k: int, data: Candles,
                  params: dict[str, Any] | None = None) -> dict[str, np.ndarray | None]:
    """The strategy's validated signals for combination ``k`` (or for ``params`` when given), exactly as
    ``systrade backtest`` gets them."""
    return compute_signals(job.strategy_cls(**(job.grid.combo(k) if params is None else params)), data)


def n_blocks_for(window: Window, n_blocks: int) -> int:
    """S for PBO, or 0 when the window has fewer bar returns than blocks."""
    return n_blocks if window.bars - 1 >= n_blocks else 0


def evaluate(job: SweepJob, k0: int, k1: int, window: Window,
             combos: list[dict[str, Any]] | None = None) -> ChunkResult:
    """Metrics and block sums of combinations ``k0 .. k1-1`` on ``window``.

    ``combos``: the parameter sets of these combinations given explicitly (``k1 - k0`` of them; a sampled
    search's trials), instead of the job's grid. ``@indicator`` results are reused across the combinations a
    worker evaluates on the same data.
    """
    from systrade.reuse import indicator_cache

    data = _slice(job.candles, window.sig_start, window.stop)
    with indicator_cache(data.frame, job.cache_bytes, keep=True):
        return _evaluate_kernel(job, k0, k1, window, data, combos)


def _evaluate_kernel(job: SweepJob, k0: int, k1: int, window: Window, data: Candles,
                     combos: list[dict[str, Any]] | None = None) -> ChunkResult:
    from systrade.optimize.sweep_kernel import N_STATS, Simulator, metrics_from_stats

    prices = (data.frame[c].to_numpy(dtype=float) for c in ("open", "high", "low", "close"))
    start, stop = window.sim_start - window.sig_start, window.stop - window.sig_start
    n_blocks = n_blocks_for(window, job.n_blocks)
    simulator = Simulator(*prices, start, stop, job.cash, params_vector(job.rules), n_blocks)
    metrics = np.empty((k1 - k0, len(COLUMNS)))
    blocks = np.zeros((k1 - k0, n_blocks, 3))
    stats = np.empty((k1 - k0, N_STATS))

    def record(rows: list) -> None:
        for row in rows:
            values = metrics_from_stats(stats[row], job.bar_seconds, job.year_days)
            metrics[row] = [values[name] for name in COLUMNS]

    for row, k in enumerate(range(k0, k1)):
        given = None if combos is None else combos[row]
        s = resolve_signals(combo_signals(job, k, data, given), job.rules.direction)
        record(simulator.push(row, s, stats[row], blocks[row]))
    record(simulator.finish())
    return ChunkResult(k0, metrics, blocks if n_blocks else None)


@dataclass
class Detail:
    """One combination simulated with its equity curve (for luck statistics, reports, walk-forward)."""

    params: dict[str, Any]
    equity: pd.Series
    closed_pnls: np.ndarray
    fees: float
    exposed_bars: int
    open_trades: int
    metrics: dict[str, Any]


def detail(job: SweepJob, k: int, window: Window, cash: float | None = None, exit_at_end: bool = False) -> Detail:
    """Simulate combination ``k`` on ``window`` keeping its equity curve (``cash``: starting cash override).

    ``exit_at_end``: a position still open is closed at the open of the window's last bar, through the fill
    model like any exit signal (fees and slippage charged): a walk-forward window hands on cash, not a position.
    """
    cash = job.cash if cash is None else cash
    data = _slice(job.candles, window.sig_start, window.stop)
    index = data.frame.index[window.sim_start - window.sig_start:]
    params = job.grid.combo(k)
    from systrade.optimize.sweep_kernel import S_EXPOSED, S_FEES, S_OPEN, metrics_from_stats, run_combo

    resolved = resolve_signals(combo_signals(job, k, data), job.rules.direction)
    last = window.stop - window.sig_start - 2  # its signal acts at the last bar's open
    if exit_at_end and last >= window.sim_start - window.sig_start:
        resolved = {name: column.copy() for name, column in resolved.items()}
        resolved["entries"][last] = resolved["short_entries"][last] = False
        resolved["exits"][last] = resolved["short_exits"][last] = True
    prices = (data.frame[c].to_numpy(dtype=float) for c in ("open", "high", "low", "close"))
    stats, _, equity, pnls = run_combo(*prices, resolved, window.sim_start - window.sig_start,
                                       window.stop - window.sig_start, cash, params_vector(job.rules), 0, detail=True)
    metrics = metrics_from_stats(stats, job.bar_seconds, job.year_days)
    result = Detail(params, pd.Series(equity, index=index), pnls, float(stats[S_FEES]), int(stats[S_EXPOSED]),
                    int(stats[S_OPEN]), metrics)
    result.metrics["buy_and_hold_return_pct"] = buy_and_hold_pct(data.frame.iloc[window.sim_start - window.sig_start:])
    return result


# ------------------------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class Plan:
    """How a sweep runs: worker processes, combinations per chunk and the memory that should take."""

    workers: int
    chunk_size: int
    estimated_peak: int
    budget: int
    note: str = ""
    cache_bytes: int = 0  # per worker, for reused @indicator results (included in estimated_peak)


def estimate_peak(n_bars: int, n_combos: int, workers: int, chunk: int, base: int,
                  processes: bool = True) -> int:
    """Peak resident memory of the whole run (this process plus its workers), in bytes.

    Counted conservatively: a forked worker is charged the parent's whole resident size, although most of
    it is shared copy-on-write.
    """
    in_flight = KERNEL_BYTES_PER_BAR * n_bars + RESULT_BYTES_PER_COMBO * chunk
    extra_processes = workers if (processes and workers > 1) else 0
    return base * (1 + extra_processes) + max(workers, 1) * in_flight + RESULT_BYTES_PER_COMBO * n_combos


def plan_sweep(n_bars: int, n_combos: int, workers: int, budget: int, base: int,
               chunk_size: int | None = None, processes: bool = True) -> Plan:
    """Pick worker count and chunk size so the estimated peak stays within ``budget`` bytes.

    Fewer workers are used when their base memory does not fit; a UserError says what is needed when not
    even one combination at a time fits.
    """
    workers = max(1, workers)
    note = ""
    while True:
        fixed = estimate_peak(n_bars, n_combos, workers, 0, base, processes)
        per_combo = estimate_peak(n_bars, n_combos, workers, 1, base, processes) - fixed
        room = budget - fixed
        if room >= per_combo * max(workers, 1) or workers == 1:
            break
        workers -= 1
        note = f"fewer workers ({workers}) so that the run fits in the memory budget"
    if room < per_combo:
        need = fixed + per_combo
        raise UserError(f"--memory {budget / 1e9:.2f}GB is too small for this sweep: it needs about "
                        f"{need / 1e9:.2f}GB ({n_bars:,} bars); raise --memory or cut the data "
                        "with --start/--end")
    largest = max(1, int(room // (per_combo * max(workers, 1))))
    if chunk_size is not None:
        if chunk_size < 1:
            raise UserError("--chunk-size must be at least 1")
        if chunk_size > largest:
            raise UserError(f"--chunk-size {chunk_size} does not fit in the memory budget (at most {largest} "
                            "combinations per chunk here); lower it or raise --memory")
        chunk = chunk_size
    else:
        # many chunks per worker, so all workers finish together (a chunk is a fraction of a second)
        balanced = math.ceil(n_combos / (max(workers, 1) * 16))
        cap = 64
        chunk = max(1, min(largest, balanced, cap))
    peak = estimate_peak(n_bars, n_combos, workers, chunk, base, processes)
    cache = int(max(0, min(INDICATOR_CACHE_CAP, (budget - peak) // (2 * max(workers, 1)))))
    # after the sweep (workers gone) this process alone computes PBO, with its subset sums
    from systrade.optimize.pbo_kernel import pbo_work_bytes

    statistics = base + RESULT_BYTES_PER_COMBO * n_combos + pbo_work_bytes(N_BLOCKS, n_combos)
    if statistics > budget:
        raise UserError(f"--memory {budget / 1e9:.2f}GB is too small for the overfitting statistics of "
                        f"{n_combos:,} combinations: they need about {statistics / 1e9:.2f}GB; raise --memory or "
                        "sweep fewer combinations")
    return Plan(workers, chunk, max(peak + max(workers, 1) * cache, statistics), budget, note, cache)


def chunks(n_combos: int, chunk_size: int) -> list[tuple[int, int]]:
    return [(k, min(k + chunk_size, n_combos)) for k in range(0, n_combos, chunk_size)]


# ------------------------------------------------------------------------------------------- results


@dataclass
class Sweep:
    """A finished sweep: every combination's metrics and block sums, ranked by ``metric``."""

    job: SweepJob
    window: Window
    metric: str
    metrics: np.ndarray
    blocks: np.ndarray | None
    order: np.ndarray
    elapsed_s: float

    @property
    def n_combos(self) -> int:
        return len(self.metrics)

    @property
    def best(self) -> int:
        return int(self.order[0])

    def row(self, k: int) -> dict[str, Any]:
        """Combination ``k``: its params and metrics (counts as ints)."""
        values: dict[str, Any] = {}
        for name in COLUMNS:
            value = float(self.metrics[k, COLUMN[name]])
            values[name] = int(value) if name in INT_COLUMNS else value
        return {"params": self.job.grid.combo(k), **values}

    def column(self, name: str) -> np.ndarray:
        return self.metrics[:, COLUMN[name]]


def rank(values: np.ndarray) -> np.ndarray:
    """Combination indices best first: larger is better, NaN last, ties in grid (parameter) order."""
    values = np.asarray(values, dtype=float)
    nan = np.isnan(values)
    key = np.where(nan, 0.0, -values)
    return np.lexsort((np.arange(len(values)), key, nan))


def run_sweep(job: SweepJob, window: Window, metric: str, runner: Callable[[list[tuple[int, int]]], Iterable],
              plan: Plan, on_progress: Callable[[int], None] | None = None) -> Sweep:
    """Evaluate every combination in chunks through ``runner`` and rank them by ``metric``.

    ``runner(tasks)`` yields ``ChunkResult`` in any order; results are placed by combination index, so the
    outcome does not depend on the order chunks finish in.
    """
    if metric not in METRICS:
        raise UserError(f"--metric {metric!r} is not known; use one of {', '.join(METRICS)}")
    started = time.perf_counter()
    n = len(job.grid)
    metrics = np.full((n, len(COLUMNS)), np.nan)
    n_blocks = n_blocks_for(window, job.n_blocks)
    blocks = np.zeros((n, n_blocks, 3)) if n_blocks else None
    done = 0
    _preload_statistics()
    for result in runner(chunks(n, plan.chunk_size)):
        k1 = result.k0 + len(result.metrics)
        metrics[result.k0:k1] = result.metrics
        if blocks is not None and result.blocks is not None:
            blocks[result.k0:k1] = result.blocks
        done += len(result.metrics)
        if on_progress is not None:
            on_progress(done)
    order = rank(metrics[:, COLUMN[METRICS[metric]]])
    return Sweep(job, window, metric, metrics, blocks, order, time.perf_counter() - started)


_PRELOAD: list = []  # the background thread loading the statistics, if one was started


def _preload_statistics() -> None:
    """Import the overfitting statistics (SciPy, the compiled PBO loop and its threads: about a second) in the
    background while workers sweep."""
    import sys
    import threading

    if "systrade.optimize.overfitting" not in sys.modules and not _PRELOAD:
        thread = threading.Thread(target=_load_statistics, daemon=True)
        thread.start()
        _PRELOAD.append(thread)


def _wait_for_statistics() -> None:
    """Let the background load finish before computing (two threads must not run the PBO loop at once)."""
    while _PRELOAD:
        _PRELOAD.pop().join()


def _load_statistics() -> None:
    import numpy as np

    from systrade.optimize.overfitting import pbo_cscv

    pbo_cscv(np.ones((2, 2, 3)))  # loads the compiled PBO loop from numba's disk cache


def luck(sweep: Sweep, best_detail: Detail | None = None) -> dict[str, Any]:
    """Deflated Sharpe Ratio of the winner given the number of trials, and PBO by CSCV (Sharpe-ranked).

    The winner's skewness and kurtosis come from its bar returns (``best_detail``, simulated again); the
    variance of the trials' Sharpe ratios from every combination with a defined Sharpe.
    """
    _wait_for_statistics()
    from systrade.optimize.overfitting import deflated_sharpe, pbo_cscv, sharpe_moments

    job = sweep.job
    ppy = periods_per_year(job.bar_seconds, job.year_days)
    per_bar = sweep.column("sharpe") / math.sqrt(ppy)
    finite = per_bar[np.isfinite(per_bar)]
    trials_var = float(np.var(finite, ddof=1)) if len(finite) >= 2 else math.nan
    if best_detail is None:
        best_detail = detail(job, sweep.best, sweep.window)
    sharpe_bar, skew, kurtosis, n_obs = sharpe_moments(bar_returns(best_detail.equity.to_numpy()))
    dsr = math.nan
    if math.isfinite(trials_var) or sweep.n_combos == 1:
        dsr = deflated_sharpe(sharpe_bar, sweep.n_combos, n_obs, skew, kurtosis,
                              trials_var if math.isfinite(trials_var) else 0.0)
    pbo = math.nan
    if sweep.blocks is not None and sweep.n_combos >= 2:
        pbo = pbo_cscv(np.ascontiguousarray(sweep.blocks.transpose(1, 0, 2)))
    return {"deflated_sharpe": dsr, "pbo": pbo, "best_sharpe_per_bar": sharpe_bar, "skew": skew,
            "kurtosis": kurtosis, "n_obs": n_obs, "n_trials": sweep.n_combos, "trials_sharpe_var": trials_var,
            "pbo_blocks": sweep.blocks.shape[1] if sweep.blocks is not None else 0}
