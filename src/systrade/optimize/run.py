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
from systrade.optimize.search import SEARCHES, Space, Trials, build_space, run_search
from systrade.optimize.sweep import (
    COLUMNS,
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
    search: str = "grid"  # grid | random | tpe
    trials: int | None = None  # distinct combinations a sampled search evaluates
    seed: int = 0
    search_timeout: float | None = None  # seconds; a sampled search stops proposing after this


DEFAULT_TRIALS = 100


def check_search_options(options: SweepOptions) -> None:
    """Refuse search options that do not fit together (before any data is read)."""
    if options.search not in SEARCHES:
        raise UserError(f"--search {options.search!r} is not known; use one of {', '.join(SEARCHES)}")
    if options.search == "grid":
        for flag, value in (("--trials", options.trials), ("--search-timeout", options.search_timeout)):
            if value is not None:
                raise UserError(f"{flag} applies to a sampled search; add --search random or --search tpe")
        return
    if options.seed < 0:
        raise UserError(f"--seed {options.seed} is not valid; give 0 or a positive whole number")
    if options.trials is not None and options.trials < 1:
        raise UserError(f"--trials {options.trials} is not valid; give 1 or more")
    if options.search_timeout is not None and options.search_timeout <= 0:
        raise UserError(f"--search-timeout {options.search_timeout} is not valid; give a positive number of seconds")


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
        check_search_options(options)
        self.options = options
        self.console = console or Console(stderr=True)
        self.budget = parse_memory(options.memory)
        self.prepared: PreparedBacktest = prepare_backtest(options.backtest, settings)
        cls = type(self.prepared.strategy)
        if (len(self.prepared.candles) != 1 or self.prepared.cash_sharing) and not cls.symbols:
            raise UserError("a sweep runs on one symbol; give one --symbol (or --data file)")
        self.candles = self.prepared.candles[0]
        overrides = parse_param_overrides(options.backtest.params)
        self.space: Space | None = None
        self.grid: Grid | Trials
        if options.search == "grid":
            self.grid = build_grid(cls, options.grid, overrides)
        else:
            self.space = build_space(cls, options.grid, overrides)
            self.grid = Trials(self.space)
        if cls.symbols:  # several symbols traded together: their own path (optimize.portfolio)
            self._start_portfolio(cls, options)
            return
        self.job = SweepJob(cls, self.grid, self.candles, self.prepared.rules, self.prepared.cash,
                            self.prepared.year_days)
        _warm_kernel()
        workers = options.workers if options.workers is not None else (os.cpu_count() or 1)
        if options.cluster:
            workers = 1  # planned again below with the cluster's worker count
        self.base = resident_bytes()
        self.plan: Plan = plan_sweep(len(self.candles.frame), self.n_planned, workers, self.budget,
                                     self.base, options.chunk_size)
        from systrade.optimize.parallel import make_runner

        self.job.cache_bytes = self.plan.cache_bytes
        self.runner = make_runner(self.job, self.plan.workers, options.cluster, uuid.uuid4().hex)
        if options.cluster:
            self.plan = plan_sweep(len(self.candles.frame), self.n_planned, self.runner.workers,
                                   self.budget, self.base, options.chunk_size, processes=False)

    def _start_portfolio(self, cls: type, options: SweepOptions) -> None:
        """One cash-sharing portfolio per combination, simulated one at a time in this process."""
        from systrade.optimize.portfolio import PortfolioRunner, portfolio_job

        if options.cluster:
            raise UserError(f"strategy {cls.strategy_name()} trades several symbols together: its search runs in this "
                            "process, one combination at a time; drop --cluster")
        prepared = self.prepared
        by_symbol = prepared.rules_by_symbol or {c.symbol: prepared.rules for c in prepared.candles}
        self.job = portfolio_job(cls, self.grid, prepared.candles, by_symbol, prepared.cash, prepared.year_days)
        self.candles = self.job.candles
        self.base = resident_bytes()
        bars = sum(len(c.frame) for c in prepared.candles)
        self.plan = plan_sweep(bars, self.n_planned, 1, self.budget, self.base, options.chunk_size)
        self.runner = PortfolioRunner(self.job)

    def detail(self, k: int, window: Window, cash: float | None = None, exit_at_end: bool = False) -> Detail:
        """Combination ``k`` simulated again on ``window`` with its equity curve."""
        from systrade.optimize.portfolio import PortfolioJob, portfolio_detail

        if isinstance(self.job, PortfolioJob):
            return portfolio_detail(self.job, k, window, cash, exit_at_end)
        return detail(self.job, k, window, cash, exit_at_end)

    @property
    def metric(self) -> str:
        return self.options.metric

    @property
    def n_planned(self) -> int:
        """Combinations the run is planned for: the grid's, or the trials asked for."""
        return len(self.grid) if self.space is None else (self.options.trials or DEFAULT_TRIALS)

    def search(self, window: Window, label: str = "search", seed: int | None = None) -> Sweep:
        """A sampled search on ``window``: trials proposed in batches, each batch evaluated by the workers.

        ``seed``: the sampler's seed when it is not ``--seed`` (walk-forward derives one per window).
        """
        import math

        import numpy as np

        from systrade.optimize.sweep import COLUMN, chunks, n_blocks_for, rank

        assert self.space is not None
        options = self.options
        started = time.perf_counter()
        metric_rows: list = []
        block_rows: list = []
        n_blocks = n_blocks_for(window, self.job.n_blocks)
        column = COLUMN[METRICS[self.metric]]
        workers = max(1, self.runner.workers)

        def evaluate(combos: list[dict[str, Any]]) -> list[float]:
            size = max(1, min(self.plan.chunk_size, math.ceil(len(combos) / workers)))
            metrics = np.full((len(combos), len(COLUMNS)), np.nan)
            blocks = np.zeros((len(combos), n_blocks, 3))
            for result in self.runner.run(chunks(len(combos), size), window, combos):
                k1 = result.k0 + len(result.metrics)
                metrics[result.k0:k1] = result.metrics
                if result.blocks is not None:
                    blocks[result.k0:k1] = result.blocks
            metric_rows.append(metrics)
            block_rows.append(blocks)
            if advance is not None:
                advance(sum(len(m) for m in metric_rows))
            return [float(v) for v in metrics[:, column]]

        advance = None
        total = self.n_planned
        seed = options.seed if seed is None else seed
        if options.progress:
            with progress_bar("trials", self.console) as progress:
                task = progress.add_task(label, total=total, rate="")

                def advance(done: int) -> None:
                    elapsed = time.perf_counter() - started
                    progress.update(task, completed=done,
                                    rate=rate_text(done / elapsed if elapsed > 0 else None, "trials"))

                trials = run_search(self.space, options.search, total, seed, evaluate, options.search_timeout)
        else:
            trials = run_search(self.space, options.search, total, seed, evaluate, options.search_timeout)
        self.grid = self.job.grid = trials
        if not metric_rows:
            raise UserError("the search evaluated no trial (--search-timeout too short?); allow it more time")
        metrics = np.concatenate(metric_rows)
        blocks = np.concatenate(block_rows) if n_blocks else None
        order = rank(metrics[:, column])
        return Sweep(self.job, window, self.metric, metrics, blocks, order, time.perf_counter() - started)

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
        window = session.job.full_window()
        sweep = session.sweep(window, "optimize") if session.space is None else session.search(window, "optimize")
    best = session.detail(sweep.best, sweep.window)
    stats = luck(sweep, best)
    return OptimizeResult(session, sweep, best, stats, time.perf_counter() - started)
