"""Rich progress bars for long work (downloads, sweeps, replays): count, rate and ETA."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


def progress_bar(unit: str, console: Console | None = None) -> Progress:
    """A progress display showing done/total, ``<rate> <unit>/s`` and the time remaining."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=console or Console(stderr=True),
        transient=False,
    )


def rate_text(speed: float | None, unit: str) -> str:
    """``1,234 candles/s`` or blank while unknown."""
    return f"{speed:,.0f} {unit}/s" if speed else ""
