"""``systrade optimize STRATEGY`` and ``systrade walkforward STRATEGY``: argument parsing only."""

from __future__ import annotations

import typer
from rich.console import Console

from systrade.cli import app, settings

out = Console()

STRATEGY = typer.Argument(..., help="Strategy name (see `systrade strategies list`) or file.py[:Class].")
GRID = typer.Option([], "--grid", "-g", help="name=start:stop:step (both ends included) or name=v1,v2,... "
                    "(repeatable). Default: every parameter's low/high/step.")
METRIC = typer.Option("sharpe", "--metric", help="sharpe | total_return | calmar | sortino | profit_factor.")
MEMORY = typer.Option("2GB", "--memory", help="Memory budget of the whole run, all workers together (e.g. 2GB).")
WORKERS = typer.Option(None, "--workers", help="Local worker processes (default: one per CPU core).")
CLUSTER = typer.Option(None, "--cluster", help="Dask scheduler address, e.g. tcp://host:8786.")
CHUNK = typer.Option(None, "--chunk-size", help="Combinations per chunk (default: planned from --memory).")
PARAM = typer.Option([], "--param", "-p", help="Fix a parameter that is not swept: name=value (repeatable).")
DATA = typer.Option(None, "--data", help="CSV or Parquet file of candles.")
EXCHANGE = typer.Option(None, "--exchange", help="Store exchange folder (with --symbol).")
SYMBOL = typer.Option(None, "--symbol", help="Stored symbol (one).")
TIMEFRAME = typer.Option(None, "--timeframe", help="Timeframe, e.g. 1h (inferred if omitted).")
START = typer.Option(None, "--start", help="First candle to use (ISO date).")
END = typer.Option(None, "--end", help="Last candle to use (ISO date).")
CASH = typer.Option(None, "--cash", help="Starting cash (default from config: 10000).")
FEES = typer.Option(None, "--fees", help="Fee per fill as a fraction of value (0.001 = 0.1%).")
SLIPPAGE = typer.Option(None, "--slippage", help="Adverse price move per fill, a fraction.")
SIZE = typer.Option("all", "--size", help="`all` (all available cash) or a number (see --size-type).")
SIZE_TYPE = typer.Option("percent", "--size-type", help="percent | amount | value (ignored for all).")
GRANULARITY = typer.Option(None, "--granularity", help="Round sizes down (1 = whole shares).")
DIRECTION = typer.Option(None, "--direction", help="long | short | both (default: strategy's).")
STOP_LOSS = typer.Option(None, "--stop-loss", help="Stop loss, fraction of entry price.")
TAKE_PROFIT = typer.Option(None, "--take-profit", help="Take profit, fraction of entry price.")
YEAR_DAYS = typer.Option(None, "--year-days", help="Days per year for annualising (252 for stocks).")
JSON = typer.Option(None, "--json", help="Write results as JSON (schema in docs/optimize.md).")
REPORT = typer.Option(None, "--report", help="Write a self-contained HTML report.")
HEATMAP = typer.Option(None, "--heatmap", help="Two swept parameters for the report's heatmap: x,y.")
QUIET = typer.Option(False, "--no-progress", help="Do not show the progress bar.")


@app.command()
def optimize(
    strategy: str = STRATEGY, grid: list[str] = GRID, metric: str = METRIC,
    top: int = typer.Option(10, "--top", help="How many of the best combinations to list."),
    memory: str = MEMORY, workers: int | None = WORKERS, cluster: str | None = CLUSTER,
    chunk_size: int | None = CHUNK, param: list[str] = PARAM, data: str | None = DATA,
    exchange: str | None = EXCHANGE, symbol: str | None = SYMBOL, timeframe: str | None = TIMEFRAME,
    start: str | None = START, end: str | None = END, cash: float | None = CASH, fees: float | None = FEES,
    slippage: float | None = SLIPPAGE, size: str = SIZE, size_type: str = SIZE_TYPE,
    granularity: float | None = GRANULARITY, direction: str | None = DIRECTION, stop_loss: float | None = STOP_LOSS,
    take_profit: float | None = TAKE_PROFIT, year_days: float | None = YEAR_DAYS, json_path: str | None = JSON,
    report_path: str | None = REPORT, heatmap: str | None = HEATMAP, no_progress: bool = QUIET,
) -> None:
    """Sweep a parameter grid in bounded memory; rank by a metric; say how much of the best is luck."""
    from systrade.backtest.request import BacktestOptions
    from systrade.optimize.command import optimize_command
    from systrade.optimize.run import SweepOptions

    options = SweepOptions(
        BacktestOptions(strategy, param, data, exchange, [symbol] if symbol else [], timeframe, start, end, cash,
                        fees, slippage, size, size_type, granularity, direction, stop_loss, take_profit, False,
                        year_days),
        grid, metric, memory, workers, cluster, chunk_size, not no_progress)
    optimize_command(options, settings(), out, top, json_path, report_path, heatmap)


@app.command()
def walkforward(
    strategy: str = STRATEGY,
    train: str = typer.Option(..., "--train", help="Length of each training window, e.g. 180d."),
    test: str = typer.Option(..., "--test", help="Length of each test window that follows it, e.g. 30d."),
    anchored: bool = typer.Option(False, "--anchored", help="Every training window starts at the data's start."),
    grid: list[str] = GRID, metric: str = METRIC, memory: str = MEMORY, workers: int | None = WORKERS,
    cluster: str | None = CLUSTER, chunk_size: int | None = CHUNK, param: list[str] = PARAM,
    data: str | None = DATA, exchange: str | None = EXCHANGE, symbol: str | None = SYMBOL,
    timeframe: str | None = TIMEFRAME, start: str | None = START, end: str | None = END, cash: float | None = CASH,
    fees: float | None = FEES, slippage: float | None = SLIPPAGE, size: str = SIZE, size_type: str = SIZE_TYPE,
    granularity: float | None = GRANULARITY, direction: str | None = DIRECTION, stop_loss: float | None = STOP_LOSS,
    take_profit: float | None = TAKE_PROFIT, year_days: float | None = YEAR_DAYS, json_path: str | None = JSON,
    report_path: str | None = REPORT, no_progress: bool = QUIET,
) -> None:
    """Optimize on each training window, trade the chosen params on the next test window, stitch the results."""
    from systrade.backtest.request import BacktestOptions
    from systrade.optimize.command import walkforward_command
    from systrade.optimize.run import SweepOptions

    options = SweepOptions(
        BacktestOptions(strategy, param, data, exchange, [symbol] if symbol else [], timeframe, start, end, cash,
                        fees, slippage, size, size_type, granularity, direction, stop_loss, take_profit, False,
                        year_days),
        grid, metric, memory, workers, cluster, chunk_size, not no_progress)
    walkforward_command(options, settings(), out, train, test, anchored, json_path, report_path)
