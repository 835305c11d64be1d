"""``systrade paper run|status|trades|halt|resume``."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from systrade.cli import app, settings

group = typer.Typer(help="Paper-trade configured bots against live exchange data.", no_args_is_help=True)
app.add_typer(group, name="paper")
out = Console()


@group.command("run")
def run(
    once: bool = typer.Option(False, "--once", help="Run one tick of every bot now and exit."),
    log_json: str | None = typer.Option(None, "--log-json", help="Also write JSON-lines logs to this file."),
) -> None:
    """Start the daemon: one scheduled job per bot, at every candle close."""
    from systrade.live.daemon import build_runners, run_forever, run_once
    from systrade.live.logs import setup_logging

    config = settings()
    setup_logging(log_json)
    _, runners = build_runners(config)
    if once:
        run_once(runners)
        return
    run_forever(runners, config.paper.tick_delay_seconds)


@group.command("status")
def status(as_json: bool = typer.Option(False, "--json", help="Print JSON (schema in the README).")) -> None:
    """Equity, cash, balances and each bot's position, last processed candle and halt state."""
    from systrade.live.ledger import Ledger
    from systrade.live.status import last_prices
    from systrade.live.status import status as build

    config = settings()
    ledger = Ledger(config.paper.database)
    quote = next(iter(config.paper.balances), "USDT")
    report = build(ledger, quote, last_prices(ledger))
    if as_json:
        print(json.dumps(report, indent=2))
        return
    out.print(f"equity {report['equity']:,.2f} {quote} (positions at their last fill price)  "
              f"cash {report['cash']:,.2f} {quote}", highlight=False)
    out.print("balances: " + ", ".join(f"{k} {v:,.8g}" for k, v in report["balances"].items()), highlight=False)
    table = Table("bot", "strategy", "market", "timeframe", "position", "last bar", "halted")
    for bot in report["bots"]:
        table.add_row(bot["name"], bot["strategy"], f"{bot['exchange']} {bot['symbol']}", bot["timeframe"],
                      f"{bot['position']:.8g}", bot["last_bar"] or "-",
                      f"yes: {bot['halted_reason']}" if bot["halted"] else "no")
    out.print(table)


@group.command("trades")
def trades(as_json: bool = typer.Option(False, "--json", help="Print JSON (schema in the README).")) -> None:
    """Every paper fill."""
    from systrade.live.ledger import Ledger
    from systrade.live.status import trades as build

    fills = build(Ledger(settings().paper.database))
    if as_json:
        print(json.dumps(fills, indent=2))
        return
    table = Table("time", "bot", "symbol", "side", "amount", "price", "fee", "bar", "client order id")
    for f in fills:
        table.add_row(f["time"], f["bot"], f["symbol"], f["side"], f"{f['amount']:.8g}", f"{f['price']:.8g}",
                      f"{f['fee']:.8g}", f["bar_time"], f["client_order_id"])
    out.print(table)


@group.command("halt")
def halt(bot: str | None = typer.Argument(None, help="Bot name (default: every bot).")) -> None:
    """Stop a bot from trading until resumed (persists across restarts)."""
    from systrade.live.ledger import Ledger

    names = Ledger(settings().paper.database).set_halted(bot, True, "halted by user")
    out.print(f"halted: {', '.join(names) or 'no bots in the ledger'}", highlight=False)


@group.command("resume")
def resume(bot: str | None = typer.Argument(None, help="Bot name (default: every bot).")) -> None:
    """Let a halted bot trade again."""
    from systrade.live.ledger import Ledger

    names = Ledger(settings().paper.database).set_halted(bot, False)
    out.print(f"resumed: {', '.join(names) or 'no bots in the ledger'}", highlight=False)
