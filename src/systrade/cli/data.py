"""``systrade data import|list|validate|sample``."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from systrade.cli import app, settings

group = typer.Typer(help="Import, list, validate and generate candle data.", no_args_is_help=True)
app.add_typer(group, name="data")
out = Console()
DATE_FORMAT = typer.Option(None, "--date-format", help="How the file writes its dates, e.g. %d/%m/%Y, when they are "
                           "not ISO 8601 and day and month cannot be told apart.")


@group.command("import")
def import_(
    file: str = typer.Argument(..., help="CSV or Parquet file of candles."),
    exchange: str = typer.Option(..., "--exchange", help="Store folder, e.g. local or binance."),
    symbol: str = typer.Option(..., "--symbol", help="Symbol, e.g. GOOG or BTC/USDT."),
    timeframe: str | None = typer.Option(None, "--timeframe", help="e.g. 1d (inferred when omitted)."),
    date_format: str | None = DATE_FORMAT,
) -> None:
    """Copy a file into the store as data/<exchange>/<symbol>-<timeframe>.parquet."""
    from systrade.data.manage import import_file

    config = settings()
    path, rows, tf = import_file(file, exchange, symbol, timeframe, config.data.dir, date_format=date_format,
                                 max_file_mb=config.data.max_file_mb)
    out.print(f"stored {rows} {tf} candles of {symbol} in {path}", highlight=False)


@group.command("list")
def list_(json_path: str | None = typer.Option(None, "--json", help="Write the listing as JSON.")) -> None:
    """Every stored series with its range, rows and gaps."""
    from systrade.backtest.output import write_json
    from systrade.data.manage import describe_store

    rows = describe_store(settings().data.dir)
    table = Table("exchange", "symbol", "timeframe", "first", "last", "rows", "gaps")
    for row in rows:
        symbol = row["symbol"] + (" (synthetic)" if row["synthetic"] else "")
        table.add_row(row["exchange"], symbol, row["timeframe"], row["first"], row["last"], str(row["rows"]),
                      str(row["gaps"]))
    out.print(table)
    if json_path:
        write_json(json_path, rows)


@group.command("validate")
def validate(
    path: str | None = typer.Argument(None, help="File or folder (default: the whole store)."),
    json_path: str | None = typer.Option(None, "--json", help="Write the findings as JSON."),
    date_format: str | None = DATE_FORMAT,
) -> None:
    """Check for gaps, duplicates, unsorted index, NaN, high < low and non-positive prices (exit 1 if any)."""
    from systrade.backtest.output import write_json
    from systrade.data.manage import validate_target

    config = settings()
    results = validate_target(path, config.data.dir, date_format=date_format, max_file_mb=config.data.max_file_mb)
    found = False
    for file, problems in results:
        if not problems:
            out.print(f"[green]ok[/] {file}", highlight=False)
        for problem in problems:
            found = True
            out.print(f"[red]problem[/] {file}: {problem.kind}: {problem.count} (first at {problem.first})",
                      highlight=False)
    if json_path:
        write_json(json_path, [{"path": f, "problems": [p.to_dict() for p in ps]} for f, ps in results])
    if found:
        raise typer.Exit(1)


@group.command("sample")
def sample(seed: int = typer.Option(7, "--seed", help="Generator seed (7 makes the bundled sample).")) -> None:
    """(Re)generate the synthetic SAMPLE/USDT hourly sample in <data dir>/sample/."""
    from systrade.data.sample import write_sample

    path = write_sample(settings().data.dir, seed)
    out.print(f"wrote synthetic sample (made up, not a real market) to {path}", highlight=False)


def _run_downloads(exchange_id: str, jobs: list, adjustment: str | None = None) -> None:
    """Run the download jobs with one progress bar per symbol."""
    from systrade.data.download_jobs import run_jobs
    from systrade.exchange import describe_error
    from systrade.progress import progress_bar, rate_text

    with progress_bar("candles") as bars:
        current: list = []  # the bar of the job being fetched

        def on_retry(attempt: int, error: BaseException, wait: float) -> None:
            bars.console.print(f"[yellow]retry {attempt}[/] in {wait:.1f}s after "
                               f"{describe_error(error, exchange_id)}", highlight=False)

        def progress(job):
            task = bars.add_task(f"{exchange_id} {job.symbol} {job.timeframe}", total=None, rate="")
            current[:] = [task]

            def on_candles(added: int, expected: int) -> None:
                bars.update(task, advance=added, total=max(expected, bars.tasks[task].completed + added))
                bars.update(task, rate=rate_text(bars.tasks[task].speed, "candles"))
            return on_candles

        for job, result in run_jobs(exchange_id, jobs, settings(), adjustment, on_retry, progress):
            done = bars.tasks[current[0]].completed
            bars.update(current[0], total=done, completed=done)
            bars.console.print(f"{job.symbol} {job.timeframe}: +{result.added} candles, {result.rows} stored "
                               f"({result.first} .. {result.last}) in {result.path}", highlight=False)


@group.command("download")
def download(
    exchange: str = typer.Argument(..., help="ccxt exchange id, e.g. binance, kraken, upbit."),
    symbols: list[str] = typer.Argument(..., help="One or more symbols, e.g. BTC/USDT ETH/USDT."),
    timeframe: str = typer.Option(..., "--timeframe", help="Candle timeframe, e.g. 1h."),
    since: str = typer.Option(..., "--since", help="First candle to fetch (ISO date, UTC)."),
    until: str | None = typer.Option(None, "--until", help="Stop before this time (default: now)."),
    adjustment: str | None = typer.Option(None, "--adjustment", help="Stock brokers: `all` (split- and "
                                          "dividend-adjusted, the default) or `raw` prices."),
) -> None:
    """Download closed candles into the store from a ccxt exchange or a stock broker (alpaca: US symbols such as
    AAPL; kis: KRX codes such as 005930); running it again fetches only what is missing."""
    from systrade.data.download_jobs import download_jobs

    _run_downloads(exchange, download_jobs(symbols, timeframe, since, until, adjustment), adjustment)


@group.command("update")
def update() -> None:
    """Bring every stored series from a ccxt exchange or a stock broker up to date (ccxt: and fill its gaps)."""
    from systrade.data.download_jobs import update_jobs

    groups, skipped = update_jobs(settings().data.dir)
    for line in skipped:
        out.print(f"skipped {line}", highlight=False)
    for (exchange_id, adjustment), jobs in groups.items():
        _run_downloads(exchange_id, jobs, adjustment)
