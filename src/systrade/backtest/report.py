"""A self-contained HTML report (Plotly, embedded once: it opens offline): the run's rules in words, then one
section per symbol with its metrics, candles with the strategy's plots and the trades coloured by P&L, equity
against buy-and-hold with the drawdown, monthly returns and the trade list; a shared-cash run starts with the
portfolio's own equity."""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from systrade.backtest.run import BacktestRun, SymbolResult
from systrade.charts import equity_figure, monthly_returns_html, price_figure
from systrade.fsutil import atomic_write_text
from systrade.reporting import figure_html, metrics_table, page, params_text, rules_sentence, trades_table


def buy_and_hold(frame: pd.DataFrame, cash: float) -> pd.Series:
    """Equity of buying with all the cash at the first open and holding, no costs (as ``buy_and_hold_pct``)."""
    return cash * frame["close"] / float(frame["open"].iloc[0])


def _symbol_section(run: BacktestRun, result: SymbolResult) -> str:
    candles = result.candles
    frame = candles.frame
    name = f"{candles.symbol} {candles.timeframe}"
    parts = [f"<section><h2>{html.escape(name)}</h2>",
             f"<p class='lead'>{frame.index[0]:%Y-%m-%d %H:%M} to {frame.index[-1]:%Y-%m-%d %H:%M} UTC, "
             f"{len(frame):,} bars; data: {html.escape(candles.note)}</p>"]
    if result.rules is not None and result.rules != run.rules:
        parts.append(f"<p class='lead'>rules for {html.escape(candles.symbol)}: "
                     f"{html.escape(rules_sentence(result.rules))}</p>")
    if result.skipped:
        skipped = ", ".join(f"{count:,} {reason}" for reason, count in result.skipped.items())
        parts.append(f"<p class='lead'>orders not placed (market minimums): {html.escape(skipped)}</p>")
    parts.append(metrics_table(result.metrics))
    parts.append(figure_html(price_figure(frame, plots=result.plots, trades=result.trades,
                                          title=f"{name}: candles, indicators and trades")))
    if not result.equity.isna().all():
        parts.append(figure_html(equity_figure(result.equity, benchmark=buy_and_hold(frame, run.initial_cash),
                                               title="equity vs buy and hold, drawdown")))
        parts.append("<h3>monthly returns</h3>" + monthly_returns_html(result.equity))
    parts.append(f"<h3>trades ({len(result.trades):,})</h3>" + trades_table(result.trades, frame["close"]))
    return "".join(parts) + "</section>"


def _portfolio_section(run: BacktestRun) -> str:
    """A shared-cash run: the portfolio's equity against holding equal parts of every symbol."""
    equity = run.portfolio_metrics["equity"]
    share = run.initial_cash / len(run.results)
    # a symbol whose candles start later keeps its share as cash until its first open
    hold = sum(buy_and_hold(r.candles.frame, share).reindex(equity.index).ffill().fillna(share) for r in run.results)
    return ("<section><h2>portfolio (shared cash)</h2>" + metrics_table(run.portfolio_metrics)
            + figure_html(equity_figure(equity, benchmark=hold,
                                        title="portfolio equity vs buy and hold (equal parts), drawdown"))
            + "<h3>monthly returns</h3>" + monthly_returns_html(equity) + "</section>")


def render_report(run: BacktestRun) -> str:
    """The report as one HTML string with plotly.js embedded once."""
    symbols = ", ".join(f"{r.candles.symbol} {r.candles.timeframe}" for r in run.results)
    intro = [f"<p class='lead'>Strategy <b>{html.escape(run.strategy)}</b> with "
             f"{html.escape(params_text(run.params))} on {html.escape(symbols)}"
             f"{' (one portfolio sharing its cash)' if run.cash_sharing else ''}.</p>",
             f"<p class='lead rules'>Rules: {html.escape(rules_sentence(run.rules, run.initial_cash))}.</p>",
             f"<p class='lead'>Ratios are annualised with {run.year_days:g} days a year.</p>"]
    intro += [f"<p class='lead'>note: {html.escape(note)}</p>" for note in run.notes]
    sections = [_portfolio_section(run)] if run.portfolio_metrics is not None else []
    sections += [_symbol_section(run, result) for result in run.results]
    synthetic = any(r.candles.synthetic for r in run.results)
    return page(f"systrade backtest: {run.strategy}", "".join(intro + sections), synthetic)


def write_report(path: str | Path, run: BacktestRun) -> Path:
    """Write the HTML report atomically."""
    return atomic_write_text(path, render_report(run))
