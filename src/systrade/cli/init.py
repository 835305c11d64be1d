"""``systrade init [DIR]``: start a project."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from systrade.cli import app

out = Console()


@app.command("init")
def init(
    folder: str = typer.Argument(".", help="Folder of the new project (created if missing)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing systrade.toml with every default."),
) -> None:
    """Create a project: systrade.toml (every setting at its default), strategies/my_strategy.py, data/."""
    from systrade.project import init_project

    done = init_project(folder, force=force)
    out.print(f"systrade project in {Path(folder).resolve()}:", highlight=False)
    for path, what in done:
        name = str(path.relative_to(folder)) + ("/" if path.is_dir() else "")
        out.print(f"  {name:<26} {what}", highlight=False)
    where = "" if Path(folder).resolve() == Path.cwd().resolve() else f"cd {folder} && "
    out.print(f"next: {where}systrade backtest my_strategy", highlight=False)
