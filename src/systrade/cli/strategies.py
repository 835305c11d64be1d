"""``systrade strategies list|show``."""

from __future__ import annotations

import inspect

import typer
from rich.console import Console
from rich.table import Table

from systrade.cli import app, settings

group = typer.Typer(help="List and inspect strategy plugins.", no_args_is_help=True)
app.add_typer(group, name="strategies")
out = Console()


@group.command("list")
def list_strategies() -> None:
    """Every strategy found in ./strategies and installed plugins."""
    from systrade.strategy import discover

    found, problems = discover(settings().strategies.dir)
    table = Table("name", "summary", "source")
    for name in sorted(found):
        ref = found[name]
        table.add_row(name, ref.cls.summary(), ref.source)
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
    ref = load_strategy(name, config.strategies.dir)
    cls = ref.cls
    out.print(f"[bold]{cls.strategy_name()}[/] ({cls.__name__}) from {ref.source}", highlight=False)
    out.print(inspect.getdoc(cls) or "(no docstring)", highlight=False)
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
