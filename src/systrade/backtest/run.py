"""One backtest from strategy to results: signals per symbol, the engine, trades and metrics."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from systrade.backtest.engine import TRADE_FIELDS, simulate
from systrade.backtest.metrics import compute_metrics
from systrade.data.load import Candles
from systrade.data.timeframes import timeframe_seconds
from systrade.sim.rules import PositionRules
from systrade.strategy import Strategy, call_signals, call_signals_together, call_signals_with_plots

__all__ = ["TRADE_FIELDS", "BacktestRun", "SymbolResult", "run_backtest"]


@dataclass
class SymbolResult:
    """Results for one symbol: its equity curve, trades and metrics."""

    candles: Candles
    equity: pd.Series
    position: pd.Series
    trades: pd.DataFrame
    metrics: dict[str, Any]
    skipped: dict[str, int] = field(default_factory=dict)  # orders not placed, by reason (market minimums)
    rules: PositionRules | None = None  # the rules this symbol traded under (its market's lot, minimums, fees)
    plots: dict[str, pd.Series] = field(default_factory=dict)  # the strategy's Signals.plots (for reports)


@dataclass
class BacktestRun:
    """A finished backtest over one or more symbols."""

    strategy: str
    params: dict[str, Any]
    rules: PositionRules
    initial_cash: float
    cash_sharing: bool
    results: list[SymbolResult] = field(default_factory=list)
    portfolio_metrics: dict[str, Any] | None = None
    year_days: float = 365.0  # days per year the metrics were annualised with
    year_days_source: str = "option"  # where that number came from (``request.annualisation``)
    notes: list[str] = field(default_factory=list)  # what to say before the results (e.g. the annualisation chosen)


def compute_signals(strategy: Strategy, candles: Candles) -> dict[str, np.ndarray | None]:
    """The strategy's validated signal columns on ``candles`` (``strategy.call_signals``)."""
    return call_signals(strategy, candles.frame)


def run_backtest(
    strategy: Strategy,
    candles: list[Candles],
    rules: PositionRules | dict[str, PositionRules],
    cash: float,
    cash_sharing: bool = False,
    year_days: float = 365.0,
) -> BacktestRun:
    """Backtest ``strategy`` on each symbol (one column each; one portfolio if ``cash_sharing``).

    ``rules``: one set for every symbol, or one per symbol (each market has its own lot, minimums and fees).
    """
    per_symbol = rules if isinstance(rules, dict) else {c.symbol: rules for c in candles}
    datas = {c.symbol: c.frame for c in candles}
    plots: dict[str, dict[str, pd.Series]] = {}
    if type(strategy).symbols:  # one call sees every traded symbol (a rotation, a pair)
        signals = call_signals_together(strategy, datas, plots)
    else:
        signals = {}
        for c in candles:
            signals[c.symbol], plots[c.symbol] = call_signals_with_plots(strategy, c.frame)
    bar_seconds = timeframe_seconds(candles[0].timeframe)
    simulation = simulate(datas, signals, rules, cash, pd.Timedelta(seconds=bar_seconds), cash_sharing)
    run = BacktestRun(strategy.strategy_name(), strategy.param_values, per_symbol[candles[0].symbol], cash,
                      cash_sharing, year_days=year_days)

    trades_all = simulation.trades()
    orders = simulation.orders()
    skipped = simulation.skipped()
    assets = simulation.assets()
    values = simulation.value()
    for c in candles:
        position = assets[c.symbol].reindex(c.frame.index)
        trades = trades_all[trades_all["column"] == c.symbol].drop(columns="column").reset_index(drop=True)
        fees = float(orders.loc[orders["column"] == c.symbol, "fees"].sum())
        exposure = float(np.mean(position.to_numpy() != 0))
        if cash_sharing:
            equity = pd.Series(np.nan, index=c.frame.index)
            metrics = _trade_metrics(trades, fees, exposure)
        else:
            equity = values[c.symbol].reindex(c.frame.index)
            metrics = column_metrics(equity.to_numpy(), trades, fees, exposure, timeframe_seconds(c.timeframe),
                                     year_days)
        metrics.update(_counts(trades), buy_and_hold_return_pct=buy_and_hold_pct(c.frame))
        reasons = skipped.loc[skipped["column"] == c.symbol, "reason"].value_counts().sort_index()
        run.results.append(SymbolResult(c, equity, position, trades, metrics,
                                        {str(k): int(v) for k, v in reasons.items()}, per_symbol[c.symbol],
                                        plots.get(c.symbol, {})))
    if cash_sharing:
        run.portfolio_metrics = shared_cash_metrics(values, assets, trades_all, orders, bar_seconds, year_days)
    return run


def shared_cash_metrics(values: pd.DataFrame | pd.Series, assets: pd.DataFrame, trades: pd.DataFrame,
                        orders: pd.DataFrame, bar_seconds: float, year_days: float) -> dict[str, Any]:
    """The metrics of one cash-sharing portfolio from its simulation's value, assets, trades and orders (its equity
    under ``"equity"``); parameter search of a strategy trading several symbols ranks by these very numbers."""
    equity = values.iloc[:, 0] if isinstance(values, pd.DataFrame) else values
    closed = trades.loc[trades["status"] == "closed", "pnl"].to_numpy(dtype=float)
    exposure = float(np.mean((assets != 0).any(axis=1)))
    metrics = compute_metrics(equity.to_numpy(), bar_seconds, closed, float(orders["fees"].sum()), exposure,
                              year_days)
    metrics["equity"] = equity
    return metrics


def column_metrics(equity: np.ndarray, trades: pd.DataFrame, fees: float, exposure: float, bar_seconds: float,
                   year_days: float) -> dict[str, Any]:
    """Equity and trade metrics of one simulated column (its equity curve and its trades, open ones included)."""
    closed = trades.loc[trades["status"] == "closed", "pnl"].to_numpy(dtype=float)
    metrics = compute_metrics(equity, bar_seconds, closed, fees, exposure, year_days)
    metrics.update(_counts(trades))
    return metrics


def _counts(trades: pd.DataFrame) -> dict[str, int]:
    closed = int((trades["status"] == "closed").sum())
    return {"total_trades": len(trades), "closed_trades": closed, "open_trades": len(trades) - closed}


def _trade_metrics(trades: pd.DataFrame, fees: float, exposure: float) -> dict[str, Any]:
    from systrade.backtest.metrics import trade_stats

    stats = trade_stats(trades.loc[trades["status"] == "closed", "pnl"].to_numpy(dtype=float))
    return {"win_rate_pct": stats["win_rate"] * 100.0, "profit_factor": stats["profit_factor"],
            "expectancy": stats["expectancy"], "exposure_pct": exposure * 100.0, "fees_paid": fees}


def buy_and_hold_pct(frame: pd.DataFrame) -> float:
    """Return of buying at the first open and holding to the last close, no costs."""
    first = float(frame["open"].iloc[0])
    return (float(frame["close"].iloc[-1]) / first - 1.0) * 100.0 if first > 0 and not math.isnan(first) else math.nan
