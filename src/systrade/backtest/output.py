"""Backtest results as the documented JSON schema, a trades CSV and a terminal table."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import pandas as pd
from rich.table import Table

from systrade.backtest.run import TRADE_FIELDS, BacktestRun, SymbolResult
from systrade.data.load import data_notes as candle_notes
from systrade.fsutil import atomic_write, atomic_write_text
from systrade.sim.rules import PositionRules

METRIC_FIELDS = ["final_equity", "total_return_pct", "cagr_pct", "max_drawdown_pct", "sharpe", "sortino",
                 "calmar", "win_rate_pct", "profit_factor", "expectancy", "exposure_pct", "fees_paid",
                 "total_trades", "closed_trades", "open_trades", "buy_and_hold_return_pct"]


def clean(value: Any) -> Any:
    """JSON-safe value: NaN and infinities become null, timestamps ISO strings, numpy scalars Python."""
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if isinstance(value, pd.Timestamp):
        return None if pd.isna(value) else value.isoformat()
    if value is None or value is pd.NaT:
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def trade_records(trades: pd.DataFrame) -> list[dict[str, Any]]:
    """Trades as plain dicts in the schema's field order."""
    return [clean({f: row[f] for f in TRADE_FIELDS}) for _, row in trades.iterrows()]


def symbol_payload(run: BacktestRun, result: SymbolResult) -> dict[str, Any]:
    """One symbol's JSON object."""
    frame = result.candles.frame
    payload: dict[str, Any] = {
        "strategy": run.strategy,
        "params": run.params,
        "symbol": result.candles.symbol,
        "timeframe": result.candles.timeframe,
        "start": frame.index[0],
        "end": frame.index[-1],
        "initial_cash": run.initial_cash,
    }
    payload.update({name: result.metrics.get(name) for name in METRIC_FIELDS})
    payload.update(year_days=run.year_days, year_days_source=run.year_days_source)
    payload["trades"] = trade_records(result.trades)
    payload["data_source"] = result.candles.note
    payload["synthetic"] = result.candles.synthetic
    payload["rules"] = (result.rules or run.rules).to_dict()
    payload["skipped_orders"] = {"total": sum(result.skipped.values()), "by_reason": dict(result.skipped)}
    return clean(payload)


def run_payload(run: BacktestRun) -> dict[str, Any]:
    """The whole JSON document: one object for one symbol, ``{"runs": [...]}`` for several."""
    runs = [symbol_payload(run, r) for r in run.results]
    if len(runs) == 1 and not run.cash_sharing:
        return runs[0]
    document: dict[str, Any] = {"runs": runs}
    if run.portfolio_metrics is not None:
        document["portfolio"] = clean({k: v for k, v in run.portfolio_metrics.items() if k != "equity"})
    return document


def write_json(path: str | Path, document: Any) -> Path | None:
    """Write a JSON document atomically (strict JSON: no NaN); ``-`` writes it to standard output."""
    text = json.dumps(clean(document), indent=2, allow_nan=False) + "\n"
    if str(path) == "-":  # the process's real standard output (the CLI sends everything else to stderr)
        sys.__stdout__.write(text)
        sys.__stdout__.flush()
        return None
    return atomic_write_text(path, text)


def write_trades_csv(path: str | Path, run: BacktestRun) -> Path:
    """All trades of all symbols as CSV (one row per trade, a ``symbol`` column first)."""
    frames = [r.trades.assign(symbol=r.candles.symbol)[["symbol", *TRADE_FIELDS]] for r in run.results]
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["symbol", *TRADE_FIELDS])
    return atomic_write(path, lambda tmp: table.to_csv(tmp, index=False))


def _fmt(value: Any, suffix: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a" if value is None or math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, float):
        return f"{value:,.2f}{suffix}"
    return f"{value}{suffix}"


def data_notes(run: BacktestRun) -> list[str]:
    """What to say about the data before the results (``data.load.data_notes`` of every symbol, then the run's
    own notes, e.g. that daily stock candles are annualised with 252 days)."""
    return [note for result in run.results for note in candle_notes(result.candles)] + list(run.notes)


def summary_table(run: BacktestRun) -> Table:
    """A rich table: one column per symbol (plus the shared portfolio when cash is shared)."""
    table = Table(title=f"{run.strategy} {run.params}")
    table.add_column("metric")
    for result in run.results:
        table.add_column(f"{result.candles.symbol} {result.candles.timeframe}", justify="right")
    if run.portfolio_metrics is not None:
        table.add_column("portfolio", justify="right")
    rows = [("start", None), ("end", None), ("final_equity", ""), ("total_return_pct", "%"), ("cagr_pct", "%"),
            ("max_drawdown_pct", "%"), ("sharpe", ""), ("sortino", ""), ("calmar", ""),
            ("win_rate_pct", "%"), ("profit_factor", ""), ("expectancy", ""), ("exposure_pct", "%"),
            ("fees_paid", ""), ("total_trades", ""), ("closed_trades", ""), ("open_trades", ""),
            ("buy_and_hold_return_pct", "%")]
    for name, suffix in rows:
        cells = []
        for result in run.results:
            if suffix is None:
                cells.append(str(result.candles.frame.index[0 if name == "start" else -1]))
            else:
                cells.append(_fmt(result.metrics.get(name), suffix))
        if run.portfolio_metrics is not None:
            cells.append("" if suffix is None else _fmt(run.portfolio_metrics.get(name), suffix))
        table.add_row(name, *cells)
    if any(r.skipped for r in run.results):
        table.add_row("skipped_orders", *[", ".join(f"{n} {k}" for k, n in r.skipped.items()) or "0"
                                          for r in run.results], *([""] if run.portfolio_metrics is not None else []))
    captions = list(dict.fromkeys(costs_caption(r.rules or run.rules) for r in run.results))
    table.caption = captions[0] if len(captions) == 1 else "; ".join(
        f"{r.candles.symbol} {costs_caption(r.rules or run.rules)}" for r in run.results)
    return table


def costs_caption(rules: PositionRules) -> str:
    """The costs and market rules a run applied, in one line under its table."""
    sell = "" if rules.sell_fees is None else f", sells {rules.sell_fees * 100:g}%"
    text = f"costs: fees {rules.fees * 100:g}% per fill{sell}, slippage {rules.slippage * 100:g}%"
    for name, label in (("granularity", "lot"), ("tick", "tick"), ("min_amount", "min amount"),
                        ("min_cost", "min cost")):
        value = getattr(rules, name)
        if value is not None:
            text += f", {label} {value:g}"
    return text
