"""``systrade check parity|lookahead|warmup``: argument parsing and printing only."""

from __future__ import annotations

import typer
from rich.console import Console

from systrade.backtest.options import BacktestOptions
from systrade.cli import app, settings
from systrade.cli.options import backtest_options
from systrade.fsutil import check_output_path

group = typer.Typer(help="Trust checks: backtest/paper parity, lookahead and warmup.", no_args_is_help=True)
app.add_typer(group, name="check")
out = Console()

STRATEGY = typer.Argument(..., help="Strategy name (see `systrade strategies list`) or file.py[:Class].")
JSON = typer.Option(None, "--json", help="Write the result as JSON (schema in docs/checks.md).")


def _inputs(options: BacktestOptions):
    from systrade.checks.common import load_check_inputs

    config = settings()
    return load_check_inputs(options.strategy, options.params, config.strategies.folders, config.data.dir,
                             options.data_file, options.exchange, list(options.symbols),
                             options.timeframe, options.start, options.end, date_format=options.date_format,
                             max_file_mb=config.data.max_file_mb)


def _note(candles) -> None:
    from systrade.data.load import data_notes

    for note in data_notes(candles):
        out.print(f"[yellow]note:[/] {note}", highlight=False)


@group.command("lookahead")
@backtest_options(rules=False)
def lookahead(strategy: str = STRATEGY, json_path: str | None = JSON, options: BacktestOptions = None) -> None:
    """Recompute the signals on truncated copies of the data; exit 1 if any bar's signal used later candles."""
    from systrade.backtest.output import write_json
    from systrade.checks.lookahead import check_lookahead

    check_output_path(json_path, "--json")
    inputs = _inputs(options)
    _note(inputs.candles)
    report = check_lookahead(inputs.strategy, inputs.data)
    if json_path:
        write_json(json_path, {**report.to_dict(), "symbols": inputs.symbols, "data_source": inputs.candles.source,
                               "synthetic": inputs.candles.synthetic})
    style = "bold red" if report.biased else "green"
    out.print(f"[{style}]{report.message()}[/] ({report.seconds:.2f} s)", highlight=False)
    if report.biased:
        raise typer.Exit(1)


@group.command("warmup")
@backtest_options(rules=False)
def warmup(strategy: str = STRATEGY, json_path: str | None = JSON, options: BacktestOptions = None) -> None:
    """The smallest history whose last-bar signals equal the full history's (what a tick must fetch)."""
    from systrade.backtest.output import write_json
    from systrade.checks.warmup import measure_warmup

    check_output_path(json_path, "--json")
    inputs = _inputs(options)
    _note(inputs.candles)
    report = measure_warmup(inputs.strategy, inputs.data)
    if json_path:
        write_json(json_path, {**report.to_dict(), "symbols": inputs.symbols, "data_source": inputs.candles.source,
                               "synthetic": inputs.candles.synthetic})
    out.print(f"{report.message()} ({report.seconds:.2f} s)", highlight=False)


@group.command("parity")
@backtest_options()
def parity(
    strategy: str = STRATEGY,
    history: int | None = typer.Option(None, "--history", help="Candles per tick (default: measured warmup + 250)."),
    json_path: str | None = JSON,
    options: BacktestOptions = None,
) -> None:
    """Backtest and replay the daemon's ticks on the same candles; exit 1 unless every trade is identical."""
    from systrade.backtest.output import write_json
    from systrade.backtest.request import prepare_backtest
    from systrade.checks.parity import check_parity
    from systrade.errors import UserError
    from systrade.progress import progress_bar
    from systrade.strategy import load_strategy

    if history is not None and not 2 <= history <= 5000:
        raise UserError(f"--history {history} is not valid; give 2 to 5000 candles (a bot's `candles` range)")
    check_output_path(json_path, "--json")
    config = settings()
    prepared = prepare_backtest(options, config)
    _note(prepared.candles[0])
    ref = load_strategy(strategy, config.strategies.folders)
    with progress_bar("bars") as bar:
        task = bar.add_task("replay", total=max(len(c.frame) for c in prepared.candles), rate="")
        report = check_parity(prepared, ref, history,
                              on_bar=lambda done, total: bar.update(task, completed=done) if done % 200 == 0 else None)
        bar.update(task, completed=report.bars)
    if json_path:
        write_json(json_path, report.to_dict())
    out.print(f"{report.bars} bars, history {report.history} candles per tick; backtest {report.backtest_trades} "
              f"trades, replay {report.replay_trades} trades ({report.replay_bars_per_second:,.0f} bars/s)",
              highlight=False)
    if report.identical:
        out.print("[green]parity: every trade is identical (direction, times, size, prices to 1e-9)[/]")
        return
    out.print(f"[bold red]parity: {report.differences_total} trade(s) differ[/]", highlight=False)
    for diff in report.differences[:5]:
        whose = f"{diff['symbol']} " if diff.get("symbol") else ""
        out.print(f"{whose}trade {diff['trade']}: {', '.join(diff['fields'])} differ", highlight=False)
        out.print(f"  backtest: {_trade_text(diff['backtest'])}", highlight=False)
        out.print(f"  replay:   {_trade_text(diff['replay'])}", highlight=False)
        out.print(f"  why: {diff['why']}", highlight=False)
    raise typer.Exit(1)


def _trade_text(trade: dict | None) -> str:
    if trade is None:
        return "(none)"
    exit_text = f"exit {trade['exit_time']} @ {trade['exit_price']:.10g}" if trade["exit_time"] else "open"
    return (f"{trade['direction']} {trade['size']:.10g} entry {trade['entry_time']} @ {trade['entry_price']:.10g}, "
            f"{exit_text}")
