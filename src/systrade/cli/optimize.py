"""``systrade optimize STRATEGY`` and ``systrade walkforward STRATEGY``: argument parsing only."""

from __future__ import annotations

import typer
from rich.console import Console

from systrade.backtest.options import BacktestOptions
from systrade.cli import app, settings
from systrade.cli.options import SEARCH, SEARCH_TIMEOUT, SEED, TRIALS, backtest_options

out = Console()

STRATEGY = typer.Argument(..., help="Strategy name (see `systrade strategies list`) or file.py[:Class].")
GRID = typer.Option([], "--grid", "-g", help="name=start:stop:step (both ends included) or name=v1,v2,... "
                    "(repeatable). Default: every parameter's low/high/step.")
METRIC = typer.Option("sharpe", "--metric", help="sharpe | total_return | calmar | sortino | profit_factor.")
MEMORY = typer.Option("2GB", "--memory", help="Memory budget of the whole run, all workers together (e.g. 2GB).")
WORKERS = typer.Option(None, "--workers", help="Local worker processes (default: one per CPU core).")
CLUSTER = typer.Option(None, "--cluster", help="Dask scheduler address, e.g. tcp://host:8786.")
CHUNK = typer.Option(None, "--chunk-size", help="Combinations per chunk (default: planned from --memory).")
JSON = typer.Option(None, "--json", help="Write results as JSON (schema in docs/optimize.md).")
REPORT = typer.Option(None, "--report", help="Write a self-contained HTML report.")
HEATMAP = typer.Option(None, "--heatmap", help="Two swept parameters for the report's heatmap: x,y.")
QUIET = typer.Option(False, "--no-progress", help="Do not show the progress bar.")


@app.command()
@backtest_options(year_days=True)
def optimize(
    strategy: str = STRATEGY, grid: list[str] = GRID, metric: str = METRIC,
    top: int = typer.Option(10, "--top", help="How many of the best combinations to list."),
    memory: str = MEMORY, workers: int | None = WORKERS, cluster: str | None = CLUSTER,
    chunk_size: int | None = CHUNK, json_path: str | None = JSON, report_path: str | None = REPORT,
    heatmap: str | None = HEATMAP, no_progress: bool = QUIET, search: str = SEARCH, trials: int | None = TRIALS,
    seed: int = SEED, search_timeout: float | None = SEARCH_TIMEOUT, options: BacktestOptions = None,
) -> None:
    """Sweep a parameter grid (or sample it) in bounded memory; rank by a metric; say how much of the best is luck."""
    from systrade.optimize.command import optimize_command
    from systrade.optimize.run import SweepOptions

    sweep = SweepOptions(backtest=options, grid=grid, metric=metric, memory=memory, workers=workers, cluster=cluster,
                         chunk_size=chunk_size, progress=not no_progress, search=search, trials=trials, seed=seed,
                         search_timeout=search_timeout)
    optimize_command(sweep, settings(), out, top, json_path, report_path, heatmap)


@app.command()
@backtest_options(year_days=True)
def walkforward(
    strategy: str = STRATEGY,
    train: str = typer.Option(..., "--train", help="Length of each training window with its unit: "
                              "min, h, d, w, mo (30.4375 days) or y (365.25 days), e.g. 180d or 6mo."),
    test: str = typer.Option(..., "--test", help="Length of each test window that follows it, "
                             "e.g. 30d or 1mo (a bare m is refused: min or mo)."),
    anchored: bool = typer.Option(False, "--anchored", help="Every training window starts at the data's start."),
    grid: list[str] = GRID, metric: str = METRIC, memory: str = MEMORY, workers: int | None = WORKERS,
    cluster: str | None = CLUSTER, chunk_size: int | None = CHUNK, json_path: str | None = JSON,
    report_path: str | None = REPORT, no_progress: bool = QUIET, search: str = SEARCH, trials: int | None = TRIALS,
    seed: int = SEED, search_timeout: float | None = SEARCH_TIMEOUT, options: BacktestOptions = None,
) -> None:
    """Optimize on each training window, trade the chosen params on the next test window, stitch the results."""
    from systrade.optimize.command import walkforward_command
    from systrade.optimize.run import SweepOptions

    sweep = SweepOptions(backtest=options, grid=grid, metric=metric, memory=memory, workers=workers, cluster=cluster,
                         chunk_size=chunk_size, progress=not no_progress, search=search, trials=trials, seed=seed,
                         search_timeout=search_timeout)
    walkforward_command(sweep, settings(), out, train, test, anchored, json_path, report_path)
