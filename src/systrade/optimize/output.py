"""Sweep results as the documented JSON schema (docs/optimize.md) and terminal tables."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from systrade.backtest.output import _fmt, clean
from systrade.optimize.run import OptimizeResult
from systrade.optimize.sweep import METRICS, Sweep
from systrade.optimize.verdicts import Verdict, dsr_verdict, pbo_verdict

TABLE_COLUMNS = (("total_return_pct", "return %"), ("sharpe", "sharpe"), ("sortino", "sortino"),
                 ("calmar", "calmar"), ("max_drawdown_pct", "max dd %"), ("profit_factor", "PF"),
                 ("total_trades", "trades"))


def top_rows(sweep: Sweep, n: int) -> list[dict[str, Any]]:
    """The ``n`` best combinations, best first, each with its rank, params and metrics."""
    return [{"rank": i + 1, **sweep.row(int(k))} for i, k in enumerate(sweep.order[:max(n, 0)])]


def luck_verdicts(stats: dict[str, Any], scope: str = "") -> dict[str, Verdict]:
    """The DSR and PBO of a sweep (``sweep.luck``) in plain words (``optimize.verdicts``)."""
    return {"deflated_sharpe": dsr_verdict(stats["deflated_sharpe"], stats["n_trials"], scope),
            "pbo": pbo_verdict(stats["pbo"], scope)}


def luck_fields(stats: dict[str, Any]) -> dict[str, Any]:
    return {
        "deflated_sharpe": stats["deflated_sharpe"],
        "pbo": stats["pbo"],
        "luck": {k: v for k, v in stats.items() if k not in ("deflated_sharpe", "pbo")},
        "verdicts": {name: verdict.to_dict() for name, verdict in luck_verdicts(stats).items()},
    }


def optimize_payload(result: OptimizeResult, top: int) -> dict[str, Any]:
    """The ``--json`` document of ``systrade optimize``."""
    session, sweep = result.session, result.sweep
    frame = session.candles.frame
    best = {"params": result.best.params, **{k: v for k, v in result.best.metrics.items()}}
    payload: dict[str, Any] = {
        "strategy": session.job.strategy_cls.strategy_name(),
        "symbol": session.candles.symbol,
        "timeframe": session.candles.timeframe,
        "start": frame.index[0],
        "end": frame.index[-1],
        "bars": len(frame),
        "metric": sweep.metric,
        "grid": session.grid.describe(),
        "fixed": {k: v for k, v in session.grid.fixed.items()},
        "combos": sweep.n_combos,
        "search": session.options.search,
        "trials": sweep.n_combos,
        "seed": session.options.seed if session.space is not None else None,
        "skipped_invalid": session.grid.skipped,
        "best": best,
        "top": top_rows(sweep, top),
        **luck_fields(result.luck),
        "elapsed_s": result.elapsed_s,
        "combos_per_s": sweep.n_combos / sweep.elapsed_s if sweep.elapsed_s > 0 else None,
        "run": run_fields(session),
        "initial_cash": session.prepared.cash,
        "year_days": session.prepared.year_days,
        "year_days_source": session.prepared.year_days_source,
        "rules": session.prepared.rules.to_dict(),
        "data_source": session.candles.note,
        "synthetic": session.candles.synthetic,
    }
    return clean(payload)


def run_fields(session) -> dict[str, Any]:
    plan = session.plan
    return {"executor": session.runner.kind, "workers": session.runner.workers,
            "chunk_size": plan.chunk_size, "memory_budget_bytes": plan.budget,
            "estimated_peak_bytes": plan.estimated_peak}


def top_table(sweep: Sweep, n: int, title: str) -> Table:
    """The best ``n`` combinations as a rich table."""
    table = Table(title=title)
    table.add_column("#", justify="right")
    names = sweep.job.grid.names
    for name in names:
        table.add_column(name, justify="right")
    key = METRICS[sweep.metric]
    shown = [(key, sweep.metric)] + [(c, label) for c, label in TABLE_COLUMNS if c != key]
    for _, label in shown:
        table.add_column(label, justify="right")
    for row in top_rows(sweep, n):
        cells = [str(row["rank"])] + [str(row["params"][name]) for name in names]
        cells += [_fmt(row[c]) for c, _ in shown]
        table.add_row(*cells)
    return table


def luck_lines(stats: dict[str, Any]) -> list[str]:
    """Plain sentences for the terminal and the report: how much of the best result may be luck."""
    return [verdict.text for verdict in luck_verdicts(stats).values()]
