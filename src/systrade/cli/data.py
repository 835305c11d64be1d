"""``systrade data import|list|validate|sample``."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from systrade.cli import app, settings

group = typer.Typer(help="Import, list, validate and generate candle data.", no_args_is_help=True)
app.add_typer(group, name="data")
out = Console()


@group.command("import")
def import_(
    file: str = typer.Argument(..., help="CSV or Parquet file of candles."),
    exchange: str = typer.Option(..., "--exchange", help="Store folder, e.g. local or binance."),
    symbol: str = typer.Option(..., "--symbol", help="Symbol, e.g. GOOG or BTC/USDT."),
    timeframe: str | None = typer.Option(None, "--timeframe", help="e.g. 1d (inferred when omitted)."),
) -> None:
    """Copy a file into the store as data/<exchange>/<symbol>-<timeframe>.parquet."""
    from systrade.data.manage import import_file

    path, rows, tf = import_file(file, exchange, symbol, timeframe, settings().data.dir)
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
) -> None:
    """Check for gaps, duplicates, unsorted index, NaN, high < low and non-positive prices (exit 1 if any)."""
    from systrade.backtest.output import write_json
    from systrade.data.manage import validate_target

    results = validate_target(path, settings().data.dir)
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
