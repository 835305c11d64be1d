"""``systrade check parity|lookahead|warmup``: argument parsing and printing only."""

from __future__ import annotations

import typer
from rich.console import Console

from systrade.cli import app, settings

group = typer.Typer(help="Trust checks: backtest/paper parity, lookahead and warmup.", no_args_is_help=True)
app.add_typer(group, name="check")
out = Console()

STRATEGY = typer.Argument(..., help="Strategy name (see `systrade strategies list`) or file.py[:Class].")
PARAM = typer.Option([], "--param", "-p", help="Override a parameter: name=value (repeatable).")
DATA = typer.Option(None, "--data", help="CSV or Parquet file of candles (default: the bundled sample).")
EXCHANGE = typer.Option(None, "--exchange", help="Store exchange folder (with --symbol).")
SYMBOL = typer.Option(None, "--symbol", help="Stored symbol.")
TIMEFRAME = typer.Option(None, "--timeframe", help="Timeframe, e.g. 1h (inferred if omitted).")
START = typer.Option(None, "--start", help="First candle to use (ISO date).")
END = typer.Option(None, "--end", help="Last candle to use (ISO date).")
JSON = typer.Option(None, "--json", help="Write the result as JSON (schema in docs/checks.md).")


def _inputs(strategy, param, data, exchange, symbol, timeframe, start, end):
    from systrade.checks.common import load_check_inputs

    config = settings()
    return load_check_inputs(strategy, param, config.strategies.dir, config.data.dir, data, exchange, symbol,
                             timeframe, start, end)


def _note(candles) -> None:
    if candles.synthetic:
        out.print(f"[yellow]note:[/] {candles.symbol} is {candles.note}", highlight=False)


@group.command("lookahead")
def lookahead(strategy: str = STRATEGY, param: list[str] = PARAM, data: str | None = DATA,
              exchange: str | None = EXCHANGE, symbol: str | None = SYMBOL, timeframe: str | None = TIMEFRAME,
              start: str | None = START, end: str | None = END, json_path: str | None = JSON) -> None:
    """Recompute the signals on truncated copies of the data; exit 1 if any bar's signal used later candles."""
    from systrade.backtest.output import write_json
    from systrade.checks.lookahead import check_lookahead

    inputs = _inputs(strategy, param, data, exchange, symbol, timeframe, start, end)
    _note(inputs.candles)
    report = check_lookahead(inputs.strategy, inputs.candles.frame)
    if json_path:
        write_json(json_path, {**report.to_dict(), "data_source": inputs.candles.source,
                               "synthetic": inputs.candles.synthetic})
    style = "bold red" if report.biased else "green"
    out.print(f"[{style}]{report.message()}[/] ({report.seconds:.2f} s)", highlight=False)
    if report.biased:
        raise typer.Exit(1)


@group.command("warmup")
def warmup(strategy: str = STRATEGY, param: list[str] = PARAM, data: str | None = DATA,
           exchange: str | None = EXCHANGE, symbol: str | None = SYMBOL, timeframe: str | None = TIMEFRAME,
           start: str | None = START, end: str | None = END, json_path: str | None = JSON) -> None:
    """The smallest history whose last-bar signals equal the full history's (what a tick must fetch)."""
    from systrade.backtest.output import write_json
    from systrade.checks.warmup import measure_warmup

    inputs = _inputs(strategy, param, data, exchange, symbol, timeframe, start, end)
    _note(inputs.candles)
    report = measure_warmup(inputs.strategy, inputs.candles.frame)
    if json_path:
        write_json(json_path, {**report.to_dict(), "data_source": inputs.candles.source,
                               "synthetic": inputs.candles.synthetic})
    out.print(f"{report.message()} ({report.seconds:.2f} s)", highlight=False)


@group.command("parity")
def parity(
    strategy: str = STRATEGY,
    param: list[str] = PARAM,
    data: str | None = DATA,
    exchange: str | None = EXCHANGE,
    symbol: str | None = SYMBOL,
    timeframe: str | None = TIMEFRAME,
    start: str | None = START,
    end: str | None = END,
    cash: float | None = typer.Option(None, "--cash", help="Starting cash (default from config: 10000)."),
    fees: float | None = typer.Option(None, "--fees", help="Fee per fill as a fraction of value (0.001 = 0.1%)."),
    slippage: float | None = typer.Option(None, "--slippage", help="Adverse price move per fill, a fraction."),
    size: str = typer.Option("all", "--size", help="`all` (all available cash) or a number (see --size-type)."),
    size_type: str = typer.Option("percent", "--size-type", help="percent | amount | value (ignored for all)."),
    granularity: float | None = typer.Option(None, "--granularity", help="Round sizes down (1 = whole shares)."),
    direction: str | None = typer.Option(None, "--direction", help="long | short | both (default: strategy's)."),
    stop_loss: float | None = typer.Option(None, "--stop-loss", help="Stop loss, fraction of entry price."),
    take_profit: float | None = typer.Option(None, "--take-profit", help="Take profit, fraction of entry price."),
    history: int | None = typer.Option(None, "--history", help="Candles per tick (default: measured warmup + 250)."),
    json_path: str | None = JSON,
) -> None:
    """Backtest and replay the daemon's ticks on the same candles; exit 1 unless every trade is identical."""
    from systrade.backtest.output import write_json
    from systrade.backtest.request import BacktestOptions, prepare_backtest
    from systrade.checks.parity import check_parity
    from systrade.errors import UserError
    from systrade.progress import progress_bar
    from systrade.strategy import load_strategy

    if history is not None and not 2 <= history <= 5000:
        raise UserError(f"--history {history} is not valid; give 2 to 5000 candles (a bot's `candles` range)")
    config = settings()
    options = BacktestOptions(strategy, param, data, exchange, [symbol] if symbol else [], timeframe, start, end, cash,
                              fees, slippage, size, size_type, granularity, direction, stop_loss, take_profit)
    prepared = prepare_backtest(options, config)
    _note(prepared.candles[0])
    ref = load_strategy(strategy, config.strategies.dir)
    with progress_bar("bars") as bar:
        task = bar.add_task("replay", total=len(prepared.candles[0].frame), rate="")
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
        out.print(f"trade {diff['trade']}: {', '.join(diff['fields'])} differ", highlight=False)
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
