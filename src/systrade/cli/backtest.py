"""``systrade backtest STRATEGY``."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape

from systrade.backtest.options import BacktestOptions
from systrade.cli import app, settings
from systrade.cli.options import backtest_options

out = Console()


@app.command()
@backtest_options(many_symbols=True, year_days=True, cash_sharing=True)
def backtest(
    strategy: str = typer.Argument(..., help="Strategy name (see `systrade strategies list`) or file.py[:Class]."),
    json_path: str | None = typer.Option(None, "--json", help="Write results as JSON (schema in README)."),
    trades_path: str | None = typer.Option(None, "--trades", help="Write the trade list as CSV."),
    report_path: str | None = typer.Option(None, "--report", help="Write a self-contained HTML report."),
    options: BacktestOptions = None,
) -> None:
    """Backtest a strategy (on the bundled synthetic sample unless --data/--symbol is given)."""
    from systrade.backtest.output import data_notes, run_payload, summary_table, write_json, write_trades_csv
    from systrade.backtest.request import prepare_backtest
    from systrade.fsutil import check_output_path

    for path, option in ((json_path, "--json"), (trades_path, "--trades"), (report_path, "--report")):
        check_output_path(path, option)
    run = prepare_backtest(options, settings()).run()
    for note in data_notes(run):
        out.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    out.print(summary_table(run))
    if json_path:
        write_json(json_path, run_payload(run))
    if trades_path:
        write_trades_csv(trades_path, run)
    if report_path:
        from systrade.backtest.report import write_report

        write_report(report_path, run)
