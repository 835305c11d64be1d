"""``systrade backtest STRATEGY``."""

from __future__ import annotations

import typer
from rich.console import Console

from systrade.cli import app, settings

out = Console()


@app.command()
def backtest(
    strategy: str = typer.Argument(..., help="Strategy name (see `systrade strategies list`) or file.py[:Class]."),
    param: list[str] = typer.Option([], "--param", "-p", help="Override a parameter: name=value (repeatable)."),
    data: str | None = typer.Option(None, "--data", help="CSV or Parquet file of candles."),
    exchange: str | None = typer.Option(None, "--exchange", help="Store exchange folder (with --symbol)."),
    symbol: list[str] = typer.Option([], "--symbol", help="Stored symbol, repeatable: one column each."),
    timeframe: str | None = typer.Option(None, "--timeframe", help="Timeframe, e.g. 1h (inferred if omitted)."),
    start: str | None = typer.Option(None, "--start", help="First candle to use (ISO date)."),
    end: str | None = typer.Option(None, "--end", help="Last candle to use (ISO date)."),
    cash: float | None = typer.Option(None, "--cash", help="Starting cash (default from config: 10000)."),
    fees: float | None = typer.Option(None, "--fees", help="Fee per fill as a fraction of value (0.001 = 0.1%)."),
    slippage: float | None = typer.Option(None, "--slippage", help="Adverse price move per fill, a fraction."),
    size: str = typer.Option("all", "--size", help="`all` (all available cash) or a number (see --size-type)."),
    size_type: str = typer.Option("percent", "--size-type", help="percent | amount | value (ignored for all)."),
    granularity: float | None = typer.Option(None, "--granularity", help="Round sizes down (1 = whole shares)."),
    direction: str | None = typer.Option(None, "--direction", help="long | short | both (default: strategy's)."),
    stop_loss: float | None = typer.Option(None, "--stop-loss", help="Stop loss, fraction of entry price."),
    take_profit: float | None = typer.Option(None, "--take-profit", help="Take profit, fraction of entry price."),
    cash_sharing: bool = typer.Option(False, "--cash-sharing", help="Several symbols share one cash balance."),
    year_days: float | None = typer.Option(None, "--year-days", help="Days per year for annualising (252 for stocks)."),
    json_path: str | None = typer.Option(None, "--json", help="Write results as JSON (schema in README)."),
    trades_path: str | None = typer.Option(None, "--trades", help="Write the trade list as CSV."),
    report_path: str | None = typer.Option(None, "--report", help="Write a self-contained HTML report."),
) -> None:
    """Backtest a strategy (on the bundled synthetic sample unless --data/--symbol is given)."""
    from systrade.backtest.output import data_notes, run_payload, summary_table, write_json, write_trades_csv
    from systrade.backtest.request import BacktestOptions, prepare_backtest

    options = BacktestOptions(strategy, param, data, exchange, symbol, timeframe, start, end, cash, fees, slippage,
                              size, size_type, granularity, direction, stop_loss, take_profit, cash_sharing, year_days)
    run = prepare_backtest(options, settings()).run()
    for note in data_notes(run):
        out.print(f"[yellow]note:[/] {note}", highlight=False)
    out.print(summary_table(run))
    if json_path:
        write_json(json_path, run_payload(run))
    if trades_path:
        write_trades_csv(trades_path, run)
    if report_path:
        from systrade.backtest.report import write_report

        write_report(report_path, run)
