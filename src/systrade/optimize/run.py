"""From command options to a finished sweep: data and rules as for ``backtest``, grid, plan, workers, progress."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console

from systrade.backtest.request import BacktestOptions, PreparedBacktest, prepare_backtest
from systrade.config import Settings
from systrade.errors import UserError
from systrade.optimize.grid import Grid, build_grid, parse_memory
from systrade.optimize.sweep import (
    METRICS,
    Detail,
    Plan,
    Sweep,
    SweepJob,
    Window,
    detail,
    luck,
    plan_sweep,
    run_sweep,
)
from systrade.progress import progress_bar, rate_text
from systrade.strategy import parse_param_overrides

DEFAULT_MEMORY = "2GB"


@dataclass
class SweepOptions:
    """What ``optimize`` and ``walkforward`` add to the backtest options."""

    backtest: BacktestOptions
    grid: list[str] = field(default_factory=list)
    metric: str = "sharpe"
    memory: str = DEFAULT_MEMORY
    workers: int | None = None
    cluster: str | None = None
    chunk_size: int | None = None
    progress: bool = True


def resident_bytes() -> int:
    """This process's resident memory now."""
    import psutil

    return int(psutil.Process().memory_info().rss)


def _warm_kernel() -> None:
    """Load the disk-cached kernel (compiling it once per installation) before workers are forked."""
    import numpy as np

    from systrade.optimize.sweep_kernel import run_combo
    from systrade.sim.rules import PositionRules, params_vector

    flags = np.zeros(4, dtype=bool)
    prices = np.ones(4)
    run_combo(prices, prices, prices, prices, {"entries": flags, "exits": flags, "short_entries": flags,
                                               "short_exits": flags}, 0, 4, 1.0, params_vector(PositionRules()), 0)


class SweepSession:
    """A prepared sweep: strategy, data, rules, grid, memory plan and a running executor (close it)."""

    def __init__(self, options: SweepOptions, settings: Settings, console: Console | None = None) -> None:
        if options.metric not in METRICS:
            raise UserError(f"--metric {options.metric!r} is not known; use one of {', '.join(METRICS)}")
        if options.workers is not None and options.workers < 1:
            raise UserError(f"--workers {options.workers} is not valid; give 1 or more")
        self.options = options
        self.console = console or Console(stderr=True)
        self.budget = parse_memory(options.memory)
        self.prepared: PreparedBacktest = prepare_backtest(options.backtest, settings)
        if len(self.prepared.candles) != 1 or self.prepared.cash_sharing:
            raise UserError("a sweep runs on one symbol; give one --symbol (or --data file)")
        self.candles = self.prepared.candles[0]
        cls = type(self.prepared.strategy)
        self.grid: Grid = build_grid(cls, options.grid, parse_param_overrides(options.backtest.params))
        self.job = SweepJob(cls, self.grid, self.candles, self.prepared.rules, self.prepared.cash,
                            self.prepared.year_days)
        _warm_kernel()
        workers = options.workers if options.workers is not None else (os.cpu_count() or 1)
        if options.cluster:
            workers = 1  # planned again below with the cluster's worker count
        self.base = resident_bytes()
        self.plan: Plan = plan_sweep(len(self.candles.frame), len(self.grid), workers, self.budget,
                                     self.base, options.chunk_size)
        from systrade.optimize.parallel import make_runner

        self.job.cache_bytes = self.plan.cache_bytes
        self.runner = make_runner(self.job, self.plan.workers, options.cluster, uuid.uuid4().hex)
        if options.cluster:
            self.plan = plan_sweep(len(self.candles.frame), len(self.grid), self.runner.workers,
                                   self.budget, self.base, options.chunk_size, processes=False)

    @property
    def metric(self) -> str:
        return self.options.metric

    def sweep(self, window: Window, label: str = "sweep") -> Sweep:
        """Every combination on ``window``, with a progress bar (combinations/s and ETA)."""
        total = len(self.grid)
        if not self.options.progress:
            return run_sweep(self.job, window, self.metric, lambda tasks: self.runner.run(tasks, window), self.plan)
        started = time.perf_counter()
        with progress_bar("combos", self.console) as progress:
            task = progress.add_task(label, total=total, rate="")

            def advance(done: int) -> None:
                elapsed = time.perf_counter() - started
                progress.update(task, completed=done, rate=rate_text(done / elapsed if elapsed > 0 else None,
                                                                     "combos"))

            return run_sweep(self.job, window, self.metric, lambda tasks: self.runner.run(tasks, window),
                             self.plan, advance)

    def close(self) -> None:
        from systrade.reuse import release_kept

        self.runner.close()
        release_kept()

    def __enter__(self) -> SweepSession:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


@dataclass
class OptimizeResult:
    """A finished ``optimize``: the sweep, the winner simulated again, luck statistics and how it ran."""

    session: SweepSession
    sweep: Sweep
    best: Detail
    luck: dict[str, Any]
    elapsed_s: float


def run_optimize(options: SweepOptions, settings: Settings, console: Console | None = None,
                 check: Callable[[SweepSession], Any] | None = None) -> OptimizeResult:
    """Sweep the grid on the whole (cut) data, rank by the metric and measure how much is luck.

    ``check(session)`` runs before the sweep starts (to refuse bad output options before any work).
    """
    started = time.perf_counter()
    with SweepSession(options, settings, console) as session:
        if check is not None:
            check(session)
        sweep = session.sweep(session.job.full_window(), "optimize")
    best = detail(session.job, sweep.best, sweep.window)
    stats = luck(sweep, best)
    return OptimizeResult(session, sweep, best, stats, time.perf_counter() - started)
