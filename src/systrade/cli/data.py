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


def _to_ms(text: str | None, option: str) -> int | None:
    from systrade.data.timeframes import utc_timestamp

    return None if text is None else int(utc_timestamp(text, option).value // 1_000_000)


def _run_downloads(exchange_id: str, jobs: list[tuple[str, str, int, int | None]],
                   adjustment: str | None = None) -> None:
    """Download each (symbol, timeframe, since, until) with one progress bar per symbol, from a ccxt exchange or a
    stock broker (``alpaca``, ``kis``)."""
    import pandas as pd

    from systrade.data.broker_download import download_from_broker
    from systrade.data.download import Downloader
    from systrade.errors import UserError
    from systrade.exchange import RetryPolicy, create_exchange, describe_error, market_rule_overrides
    from systrade.progress import progress_bar, rate_text
    from systrade.venues import candle_source
    from systrade.venues.base import is_broker

    config = settings()
    policy = RetryPolicy(**config.network.model_dump())
    broker = is_broker(exchange_id)
    if adjustment is not None and not broker:
        raise UserError(f"--adjustment applies to stock brokers (alpaca, kis), not to {exchange_id}; drop it")
    with progress_bar("candles") as bars:
        def on_retry(attempt: int, error: BaseException, wait: float) -> None:
            bars.console.print(f"[yellow]retry {attempt}[/] in {wait:.1f}s after "
                               f"{describe_error(error, exchange_id)}", highlight=False)

        if broker:
            source = candle_source(exchange_id, config, policy, adjustment or "all")
        else:
            downloader = Downloader(create_exchange(exchange_id, config), exchange_id, config.data.dir, policy,
                                    on_retry, overrides=market_rule_overrides(exchange_id, config))
        for symbol, timeframe, since, until in jobs:
            task = bars.add_task(f"{exchange_id} {symbol} {timeframe}", total=None, rate="")

            def on_candles(added: int, expected: int, task=task) -> None:
                bars.update(task, advance=added, total=max(expected, bars.tasks[task].completed + added))
                bars.update(task, rate=rate_text(bars.tasks[task].speed, "candles"))

            if broker:
                end = None if until is None else pd.Timestamp(until, unit="ms", tz="UTC")
                result = download_from_broker(source, symbol, timeframe, pd.Timestamp(since, unit="ms", tz="UTC"), end,
                                              config.data.dir, on_candles)
            else:
                result = downloader.download(symbol, timeframe, since, until, on_candles)
            done = bars.tasks[task].completed
            bars.update(task, total=done, completed=done)
            bars.console.print(f"{symbol} {timeframe}: +{result.added} candles, {result.rows} stored "
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
    since_ms = _to_ms(since, "--since")
    until_ms = _to_ms(until, "--until")
    if until_ms is not None and until_ms <= since_ms:
        from systrade.errors import UserError

        raise UserError(f"--until {until} is not after --since {since}; give an --until later than --since")
    if adjustment is not None and adjustment not in ("all", "raw"):
        from systrade.errors import UserError

        raise UserError(f"--adjustment {adjustment!r} is not valid; use all (adjusted prices) or raw")
    _run_downloads(exchange, [(s, timeframe, since_ms, until_ms) for s in symbols], adjustment)


@group.command("update")
def update() -> None:
    """Bring every stored series from a ccxt exchange or a stock broker up to date (ccxt: and fill its gaps)."""
    import ccxt

    from systrade.data.store import list_series, read_series
    from systrade.venues.base import is_broker

    data_dir = settings().data.dir
    by_exchange: dict[tuple[str, str | None], list] = {}
    for key, _ in list_series(data_dir):
        if key.exchange not in ccxt.exchanges and not is_broker(key.exchange):
            out.print(f"skipped {key.exchange}/{key.symbol} {key.timeframe}: not a ccxt exchange or stock broker",
                      highlight=False)
            continue
        frame = read_series(key, data_dir)
        adjustment = frame.attrs.get("adjustment", "all") if is_broker(key.exchange) else None
        by_exchange.setdefault((key.exchange, adjustment), []).append(
            (key.symbol, key.timeframe, int(frame.index[0].value // 1_000_000), None))
    for (exchange_id, adjustment), jobs in by_exchange.items():
        _run_downloads(exchange_id, jobs, adjustment)
