"""A self-contained HTML report (Plotly, embedded, opens offline): price with trades, equity vs
buy-and-hold, drawdown and the trade list, one section per symbol."""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from systrade.backtest.output import METRIC_FIELDS, _fmt
from systrade.backtest.run import BacktestRun, SymbolResult
from systrade.fsutil import atomic_write_text


def _figure(run: BacktestRun, result: SymbolResult):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    frame = result.candles.frame
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, row_heights=[0.5, 0.3, 0.2], vertical_spacing=0.03,
                        subplot_titles=("price and trades", "equity vs buy-and-hold", "drawdown"))
    fig.add_trace(go.Scattergl(x=frame.index, y=frame["close"], name="close", line=dict(width=1)), row=1, col=1)
    trades = result.trades
    for direction, symbol_in, color in (("long", "triangle-up", "green"), ("short", "triangle-down", "red")):
        side = trades[trades["direction"] == direction]
        if not side.empty:
            fig.add_trace(go.Scatter(x=side["entry_time"], y=side["entry_price"], mode="markers",
                                     name=f"{direction} entry", marker=dict(symbol=symbol_in, size=9, color=color)),
                          row=1, col=1)
    closed = trades[trades["status"] == "closed"]
    if not closed.empty:
        fig.add_trace(go.Scatter(x=closed["exit_time"], y=closed["exit_price"], mode="markers", name="exit",
                                 marker=dict(symbol="x", size=8, color="black")), row=1, col=1)
    equity = result.equity if not result.equity.isna().all() else run.portfolio_metrics["equity"]
    hold = run.initial_cash * frame["close"] / frame["open"].iloc[0]
    fig.add_trace(go.Scattergl(x=equity.index, y=equity, name="strategy equity"), row=2, col=1)
    fig.add_trace(go.Scattergl(x=hold.index, y=hold, name="buy and hold", line=dict(dash="dot")), row=2, col=1)
    drawdown = (equity / equity.cummax() - 1.0) * 100.0
    fig.add_trace(go.Scattergl(x=drawdown.index, y=drawdown, name="drawdown %", fill="tozeroy"), row=3, col=1)
    fig.update_layout(height=900, hovermode="x unified", margin=dict(l=40, r=20, t=40, b=20))
    return fig


def _metrics_table(result: SymbolResult) -> str:
    rows = "".join(f"<tr><td>{name}</td><td>{_fmt(result.metrics.get(name))}</td></tr>" for name in METRIC_FIELDS)
    return f"<table class='metrics'>{rows}</table>"


def _trades_table(trades: pd.DataFrame) -> str:
    if trades.empty:
        return "<p>No trades.</p>"
    return trades.to_html(index=False, float_format=lambda v: f"{v:,.6g}", na_rep="", classes="trades")


def render_report(run: BacktestRun) -> str:
    """The report as one HTML string with plotly.js embedded."""
    sections = []
    for i, result in enumerate(run.results):
        fig_html = _figure(run, result).to_html(full_html=False, include_plotlyjs=(i == 0))
        title = html.escape(f"{result.candles.symbol} {result.candles.timeframe}")
        note = html.escape(result.candles.note)
        warning = ("<p class='synthetic'>SYNTHETIC DATA: made up, not a real market.</p>"
                   if result.candles.synthetic else "")
        sections.append(f"<section><h2>{title}</h2>{warning}<p>data: {note}</p>{_metrics_table(result)}"
                        f"{fig_html}<h3>trades</h3>{_trades_table(result.trades)}</section>")
    title = html.escape(f"systrade backtest: {run.strategy} {run.params}")
    style = ("body{font-family:sans-serif;margin:2em} table{border-collapse:collapse;font-size:12px}"
             "td,th{border:1px solid #ccc;padding:2px 6px} .synthetic{color:#b00;font-weight:bold}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title><style>{style}</style>"
            f"</head><body><h1>{title}</h1><p>rules: {html.escape(str(run.rules.to_dict()))}</p>"
            f"<p>annualised with {run.year_days:g} days a year</p>"
            + "".join(f"<p>note: {html.escape(note)}</p>" for note in run.notes)
            + f"{''.join(sections)}</body></html>")


def write_report(path: str | Path, run: BacktestRun) -> Path:
    """Write the HTML report atomically."""
    return atomic_write_text(path, render_report(run))
