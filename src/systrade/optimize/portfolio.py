"""Parameter search over a strategy trading several symbols together (``symbols = [...]``).

Each combination is simulated as the one cash-sharing portfolio ``systrade backtest`` runs: one ``signals()`` call
on every symbol's candles, the fill model per symbol with shared cash (``backtest.engine.simulate``), and the
portfolio's metrics computed as the backtest computes them (``backtest.run.shared_cash_metrics``). It is slower than
the one-symbol sweep kernel, and runs one combination at a time in this process: memory stays that of one backtest.

A window's bars are positions on the union of the symbols' times (the same for all of them when they share a
market's calendar); each symbol keeps its own candles inside the window.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from systrade.backtest.engine import simulate
from systrade.backtest.metrics import bar_returns
from systrade.backtest.run import buy_and_hold_pct, shared_cash_metrics
from systrade.data.load import Candles
from systrade.optimize.sweep import COLUMNS, ChunkResult, Detail, SweepJob, Window, n_blocks_for
from systrade.sim.rules import PositionRules, resolve_signals
from systrade.strategy import call_signals_together


@dataclass
class PortfolioJob(SweepJob):
    """A sweep of a several-symbol strategy: ``candles`` carries the union of times (for windows and labels),
    ``traded`` every symbol's own candles, ``rules_by_symbol`` each symbol's market rules."""

    traded: list[Candles] = field(default_factory=list)
    rules_by_symbol: dict[str, PositionRules] = field(default_factory=dict)


def portfolio_job(strategy_cls: type, grid: Any, traded: list[Candles], rules_by_symbol: dict[str, PositionRules],
                  cash: float, year_days: float) -> PortfolioJob:
    """The job for ``traded`` (every symbol the strategy trades), windows counted on the union of their times."""
    union = traded[0].frame.index
    for other in traded[1:]:
        union = union.union(other.frame.index)
    first = traded[0]
    carrier = Candles(", ".join(c.symbol for c in traded), first.timeframe, first.frame.reindex(union).ffill(),
                      "; ".join(c.source for c in traded), any(c.synthetic for c in traded))
    return PortfolioJob(strategy_cls, grid, carrier, rules_by_symbol[first.symbol], cash, year_days,
                        traded=traded, rules_by_symbol=rules_by_symbol)


def _frames(job: PortfolioJob, start: int, stop: int) -> dict[str, pd.DataFrame]:
    """Each symbol's candles whose times fall in bars ``[start, stop)`` of the union (inputs ride along in attrs)."""
    times = job.candles.frame.index[start:stop]
    return {c.symbol: c.frame.loc[times[0]:times[-1]] for c in job.traded}


def simulate_combo(job: PortfolioJob, params: dict[str, Any], window: Window, cash: float | None = None,
                   exit_at_end: bool = False):
    """The portfolio's simulation of ``params`` on ``window``: signals from ``sig_start``, trading from
    ``sim_start`` (a signal before it does not act). ``exit_at_end`` closes every position at the open of the
    window's last bar, through the fill model like an exit signal (a walk-forward window hands on cash)."""
    frames = _frames(job, window.sig_start, window.stop)
    raw = call_signals_together(job.strategy_cls(**params), frames)
    index = job.candles.frame.index
    first, before_last = index[window.sim_start], index[window.stop - 2] if window.stop - 2 >= 0 else None
    datas, signals = {}, {}
    for symbol, frame in frames.items():
        rules = job.rules_by_symbol[symbol]
        resolved = resolve_signals(raw[symbol], rules.direction)
        keep = frame.index >= first
        columns = {name: column[keep].copy() for name, column in resolved.items()}
        datas[symbol] = frame.loc[keep]
        if exit_at_end and before_last is not None and before_last >= first:
            rows = np.flatnonzero(datas[symbol].index == before_last)
            if rows.size:
                columns["entries"][rows] = columns["short_entries"][rows] = False
                columns["exits"][rows] = columns["short_exits"][rows] = True
        signals[symbol] = columns
    bar = pd.Timedelta(seconds=job.bar_seconds)
    return simulate(datas, signals, job.rules_by_symbol, float(job.cash if cash is None else cash), bar, True)


def _metrics(job: PortfolioJob, simulation) -> tuple[pd.Series, dict[str, Any], np.ndarray]:
    trades = simulation.trades()
    metrics = shared_cash_metrics(simulation.value(), simulation.assets(), trades, simulation.orders(),
                                  job.bar_seconds, job.year_days)
    equity = metrics.pop("equity")
    closed_mask = (trades["status"] == "closed").to_numpy()
    closed = int(closed_mask.sum())
    metrics.update(total_trades=len(trades), closed_trades=closed, open_trades=len(trades) - closed)
    return equity, metrics, trades.loc[closed_mask, "pnl"].to_numpy(dtype=float)


def evaluate_portfolio(job: PortfolioJob, k0: int, k1: int, window: Window,
                       combos: list[dict[str, Any]] | None = None) -> ChunkResult:
    """Metrics (``COLUMNS``) and return-block sums of combinations ``k0 .. k1-1``, one simulated at a time."""
    from systrade.optimize.overfitting import block_stats_from_returns

    n_blocks = n_blocks_for(window, job.n_blocks)
    metrics = np.empty((k1 - k0, len(COLUMNS)))
    blocks = np.zeros((k1 - k0, n_blocks, 3))
    for row, k in enumerate(range(k0, k1)):
        params = job.grid.combo(k) if combos is None else combos[row]
        equity, values, _ = _metrics(job, simulate_combo(job, params, window))
        metrics[row] = [values[name] for name in COLUMNS]
        if n_blocks:
            blocks[row] = block_stats_from_returns(bar_returns(equity.to_numpy()), n_blocks)[:, 0, :]
    return ChunkResult(k0, metrics, blocks if n_blocks else None)


def portfolio_detail(job: PortfolioJob, k: int, window: Window, cash: float | None = None,
                     exit_at_end: bool = False) -> Detail:
    """Combination ``k`` on ``window`` with its equity curve (what ``sweep.detail`` is for one symbol)."""
    params = job.grid.combo(k)
    simulation = simulate_combo(job, params, window, cash, exit_at_end)
    equity, metrics, pnls = _metrics(job, simulation)
    exposed = int((simulation.assets() != 0).any(axis=1).sum())
    frames = _frames(job, window.sim_start, window.stop)
    metrics["buy_and_hold_return_pct"] = float(np.mean([buy_and_hold_pct(f) for f in frames.values()]))
    return Detail(params, equity, pnls, float(metrics["fees_paid"]), exposed, int(metrics["open_trades"]), metrics)


class PortfolioRunner:
    """Evaluates chunks in this process, one combination at a time (the portfolio sweep's executor)."""

    kind = "local, one combination at a time (several symbols)"
    workers = 1

    def __init__(self, job: PortfolioJob) -> None:
        self.job = job

    def run(self, tasks: list[tuple[int, int]], window: Window, combos: list | None = None
            ) -> Iterator[ChunkResult]:
        for k0, k1 in tasks:
            yield evaluate_portfolio(self.job, k0, k1, window, None if combos is None else combos[k0:k1])

    def close(self) -> None:
        pass
