"""``systrade strategies list|show``."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Column, Table

from systrade.cli import app, settings

group = typer.Typer(help="List and inspect strategy plugins.", no_args_is_help=True)
app.add_typer(group, name="strategies")
out = Console()


def origin_text(ref) -> str:
    """Where a strategy comes from, and which others of its name it wins over."""
    return ref.origin + (f" (over {', '.join(ref.shadows)})" if ref.shadows else "")


@group.command("list")
def list_strategies() -> None:
    """Every strategy: the project's folders, then installed plugins, then the bundled ones."""
    from systrade.strategy import discover

    found, problems = discover(settings().strategies.folders)
    table = Table("name", "summary", "from", Column("source", overflow="fold"))  # a path is never cut
    for name in sorted(found):
        ref = found[name]
        table.add_row(name, ref.cls.summary(), origin_text(ref), ref.source)
    out.print(table)
    for problem in problems:
        out.print(f"[yellow]skipped:[/] {problem}", highlight=False)


@group.command("show")
def show(name: str = typer.Argument(..., help="Strategy name or path (file.py[:Class]).")) -> None:
    """Parameters with ranges, the docstring and where the code lives."""
    from systrade.checks.warmup import measure_warmup
    from systrade.data.sample import load_sample
    from systrade.strategy import build_strategy, load_strategy

    config = settings()
    ref = load_strategy(name, config.strategies.folders)
    cls = ref.cls
    out.print(f"[bold]{cls.strategy_name()}[/] ({cls.__name__}) from {ref.source} [{origin_text(ref)}]",
              highlight=False)
    out.print(cls.docstring() or "(no docstring)", highlight=False)
    out.print(f"timeframe: {cls.timeframe or 'any'}  direction: {cls.direction}  warmup: {cls.warmup}  "
              f"stop_loss: {cls.stop_loss}  take_profit: {cls.take_profit}", highlight=False)
    try:
        measured = f"{measure_warmup(build_strategy(ref), load_sample(config.data.dir)).warmup} candles"
    except Exception as error:  # a strategy that fails on the sample still gets shown
        measured = f"unavailable ({type(error).__name__}: {error})"
    out.print(f"measured warmup: {measured} with the default parameters on the bundled synthetic sample "
              "(`systrade check warmup` for other data or parameters)", highlight=False)
    table = Table("param", "default", "range", "help")
    for pname, param in cls.params().items():
        table.add_row(pname, repr(param.default), param.describe_range(), param.help)
    out.print(table)
