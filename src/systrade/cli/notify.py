"""``systrade notify test``."""

from __future__ import annotations

import typer
from rich.console import Console

from systrade.cli import app, settings

group = typer.Typer(help="Notifications: Telegram and webhooks.", no_args_is_help=True)
app.add_typer(group, name="notify")
out = Console()


@group.command("test")
def test() -> None:
    """Send one message to every configured target and say how each went (exit 1 when any failed)."""
    from systrade.errors import UserError
    from systrade.live.notify import Notice, Notifier, targets_from

    targets = targets_from(settings())
    if not targets:
        raise UserError("no notification target is configured; add [notify.telegram] or [[notify.webhooks]] to "
                        "systrade.toml (see the README)")
    results = Notifier(targets).send_now(Notice("test", "a test message from systrade: this target works"))
    for name, error in results.items():
        out.print(f"{name}: " + ("sent" if error is None else f"FAILED: {error}"), highlight=False, markup=False)
    failed = [name for name, error in results.items() if error is not None]
    if failed:
        out.print(f"{len(failed)} of {len(results)} targets failed: {', '.join(failed)}", highlight=False,
                  markup=False)
        raise typer.Exit(1)
