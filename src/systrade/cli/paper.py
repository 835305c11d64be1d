"""``systrade paper run|status|trades|halt|resume``."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from systrade.backtest.options import BacktestOptions
from systrade.cli import app, settings
from systrade.cli.options import backtest_options

group = typer.Typer(help="Paper-trade configured bots against live exchange data.", no_args_is_help=True)
app.add_typer(group, name="paper")
out = Console()


@group.command("run")
def run(
    once: bool = typer.Option(False, "--once", help="Run one tick of every bot now and exit."),
    log_json: str | None = typer.Option(None, "--log-json", help="Also write JSON-lines logs to this file."),
    allow_lookahead: bool = typer.Option(False, "--allow-lookahead",
                                         help="Start bots whose strategy fails the lookahead check anyway."),
) -> None:
    """Start the daemon: one scheduled job per bot, at every candle close.

    Exit codes: 2 for a configuration mistake (unknown symbol or timeframe, another daemon holding the ledger,
    ...; nothing is written), 1 when a tick failed (--once), the exchange could not be reached at start or the
    ledger failed while running (one error line in the log), 0 otherwise.
    """
    from systrade.checks.preflight import preflight
    from systrade.live.daemon import run_daemon
    from systrade.live.logs import setup_logging

    config = settings()
    checks = preflight(config)
    biased = [c for c in checks if c.lookahead.biased]
    for check in biased:
        style = "yellow" if allow_lookahead else "bold red"
        out.print(f"[{style}]bot {check.bot}: strategy {check.lookahead.strategy} looks ahead[/] (checked on "
                  f"{check.source}): {check.lookahead.message()}", highlight=False)
    if biased and not allow_lookahead:
        out.print("refusing to start: a strategy that peeks at later candles trades differently live than in its "
                  "backtest; fix it (`systrade check lookahead`) or pass --allow-lookahead", highlight=False)
        raise typer.Exit(1)
    setup_logging(log_json)
    code = run_daemon(config, warmups={c.bot: c.warmup for c in checks}, once=once)
    if code:
        raise typer.Exit(code)


def _existing_ledger(url: str, write: bool = False):
    """The ledger at ``url`` if it exists (a missing one is a ``UserError`` naming where it was looked for; nothing
    is created); ``write``: it must also be writable. A ledger that cannot be read is one error line, exit 1."""
    from systrade.cli import err
    from systrade.live.ledger import Ledger, LedgerFailure
    from systrade.live.lock import check_writable

    if write:
        check_writable(url)
    try:
        return Ledger(url, create=False)
    except LedgerFailure as failure:
        err.print(f"[bold red]error:[/] {escape(str(failure))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


WHOLE_CURRENCIES = {"KRW", "JPY"}  # amounts a person reads without decimals


def local_time(stamp: str | None, zone: str) -> str:
    """An ISO UTC time from the ledger as a person reads it in ``zone`` (``2026-12-01 09:00:00 KST``)."""
    if not stamp:
        return "-"
    from datetime import datetime
    from zoneinfo import ZoneInfo

    return datetime.fromisoformat(stamp).astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S %Z")


def money(value: float | None, currency: str = "", sign: str = "", places: int = 2) -> str:
    """An amount as a person reads it: thousands separated, no decimals for KRW (1,234,567), else ``places``."""
    if value is None:
        return "-"
    return f"{value:{sign},.{0 if currency in WHOLE_CURRENCIES else places}f}"


@group.command("status")
def status(json_path: str | None = typer.Option(None, "--json", help="Write JSON to PATH, or - for standard output "
                                               "(schema in the README).")) -> None:
    """Equity, cash, balances and each bot's capital, cash, equity, profit, fees, position and halt state."""
    from systrade.live.status import last_prices
    from systrade.live.status import status as build

    config = settings()
    ledger = _existing_ledger(config.paper.database)
    quote = next(iter(config.paper.balances), "USDT")
    report = build(ledger, quote, last_prices(ledger))
    if json_path:
        from systrade.backtest.output import write_json

        write_json(json_path, report)
        return
    out.print(f"equity {money(report['equity'], quote)} {quote} (positions at their last fill price)  "
              f"cash {money(report['cash'], quote)} {quote}", highlight=False)
    out.print("balances: " + ", ".join(f"{k} {money(v, k) if k in WHOLE_CURRENCIES else format(v, ',.8g')}"
                                       for k, v in report["balances"].items()), highlight=False)
    for asset, amount in report["negative_balances"].items():
        out.print(f"[bold yellow]warning:[/] the {asset} balance is negative ({amount:,.8g} {asset}): fees were paid "
                  f"in {asset}, which the paper account does not hold enough of; add {asset} to [paper] balances",
                  highlight=False)
    if report["unvalued"]:
        out.print(f"not in the equity (no {quote} price known): {', '.join(report['unvalued'])}", highlight=False)
    table = Table("bot", "strategy", "market", "timeframe", "position", "capital", "cash", "equity", "pnl", "fees",
                  "last bar", "halted")
    for bot in report["bots"]:
        currency = bot["quote"] or ""
        table.add_row(bot["name"], bot["strategy"], f"{bot['exchange']} {bot['symbol']}", bot["timeframe"],
                      _positions_text(bot), money(bot["capital"], currency), money(bot["cash"], currency),
                      money(bot["equity"], currency), money(bot["pnl"], currency, "+"),
                      money(bot["fees"], currency, places=4), local_time(bot["last_bar"], config.paper.timezone),
                      f"yes: {bot['halted_reason']}" if bot["halted"] else "no")
    out.print(table)
    for bot in report["bots"]:
        refused = bot["last_rejection"]
        if refused:
            out.print(f"{bot['name']}: last order {refused['status']} at "
                      f"{local_time(refused['time'], config.paper.timezone)}: {refused['reason']}",
                      highlight=False, markup=False)


def _positions_text(bot: dict) -> str:
    """One bot's position; each symbol's for a bot trading several."""
    if bot["position"] is not None:
        return f"{bot['position']:.8g}"
    return ", ".join(f"{p['position']:.8g} {p['symbol']}" for p in bot["positions"])


@group.command("trades")
def trades(json_path: str | None = typer.Option(None, "--json", help="Write JSON to PATH, or - for standard output "
                                               "(schema in the README).")) -> None:
    """Every paper fill."""
    from systrade.live.status import trades as build

    config = settings()
    fills = build(_existing_ledger(config.paper.database))
    if json_path:
        from systrade.backtest.output import write_json

        write_json(json_path, fills)
        return
    table = Table("time", "bot", "symbol", "side", "amount", "price", "fee", "bar", "exit", "client order id")
    for f in fills:
        zone = config.paper.timezone
        table.add_row(local_time(f["time"], zone), f["bot"], f["symbol"], f["side"], f"{f['amount']:.8g}",
                      f"{f['price']:.8g}", f"{f['fee']:.8g} {f['fee_currency']}", local_time(f["bar_time"], zone),
                      f["exit_reason"] or "-",
                      f["client_order_id"])
    out.print(table)


@group.command("orders")
def orders(json_path: str | None = typer.Option(None, "--json", help="Write JSON to PATH, or - for standard output "
                                               "(schema in the README).")) -> None:
    """Every order the bots decided, with its status (filled, rejected, skipped, pending, ...) and why."""
    from systrade.live.status import orders as build

    config = settings()
    rows = build(_existing_ledger(config.paper.database))
    if json_path:
        from systrade.backtest.output import write_json

        write_json(json_path, rows)
        return
    table = Table("created", "bot", "symbol", "side", "amount", "status", "reason", "bar", "client order id")
    for o in rows:
        zone = config.paper.timezone
        table.add_row(local_time(o["created"], zone), o["bot"], o["symbol"], o["side"], f"{o['amount']:.8g}",
                      o["status"], o["reason"] or "-", local_time(o["bar_time"], zone), o["client_order_id"])
    out.print(table)


@group.command("halt")
def halt(bot: str | None = typer.Argument(None, help="Bot name (default: every bot).")) -> None:
    """Stop a bot from trading until resumed (persists across restarts)."""
    _halt_or_resume(bot, True)


@group.command("resume")
def resume(bot: str | None = typer.Argument(None, help="Bot name (default: every bot).")) -> None:
    """Let a halted bot trade again."""
    _halt_or_resume(bot, False)


def _halt_or_resume(bot: str | None, halted: bool) -> None:
    from systrade.live.control import set_halted

    config = settings()
    names, warnings = set_halted(_existing_ledger(config.paper.database, write=True), bot, halted,
                                 "halted by user", settings=config)
    out.print(f"{'halted' if halted else 'resumed'}: {', '.join(names) or 'no bots in the ledger'}",
              highlight=False)
    for warning in warnings:
        out.print(f"[yellow]{escape(warning)}[/]", highlight=False)


@group.command("replay")
@backtest_options()
def replay(
    strategy: str = typer.Argument(..., help="Strategy name or file.py[:Class], or a configured bot's name."),
    history: int | None = typer.Option(None, "--history", help="Candles per tick (default: measured warmup + 250)."),
    json_path: str | None = typer.Option(None, "--json", help="Write the replay as JSON (schema in docs/checks.md)."),
    options: BacktestOptions = None,
) -> None:
    """Run the daemon's tick code over historical candles with a simulated clock (no exchange, no network)."""
    from systrade.backtest.output import write_json
    from systrade.checks.paper_replay import replay_payload, run_replay
    from systrade.errors import UserError
    from systrade.fsutil import check_output_path
    from systrade.progress import progress_bar

    check_output_path(json_path, "--json")
    if history is not None and not 2 <= history <= 5000:
        raise UserError(f"--history {history} is not valid; give 2 to 5000 candles (a bot's `candles` range)")
    bar = progress_bar("bars")
    tasks: list = []

    def advance(done: int, total: int) -> None:
        if not tasks:  # shown once the data has loaded, so an error in it stays one line
            bar.start()
            tasks.append(bar.add_task("replay", total=total, rate=""))
        if done % 200 == 0 or done == total:
            bar.update(tasks[0], completed=done, total=total)

    try:
        result = run_replay(options, settings(), history, on_bar=advance)
    finally:
        bar.stop()
    payload = replay_payload(result)
    from systrade.data.load import data_notes

    for note in data_notes(result.candles):
        out.print(f"[yellow]note:[/] {note}", highlight=False)
    r = result.result
    out.print(f"{payload['strategy']} on {payload['symbol']} {payload['timeframe']}: {r.bars} bars replayed through "
              f"the daemon's tick ({r.history} candles per tick) in {r.seconds:.1f} s ({r.bars_per_second:,.0f} "
              "bars/s)", highlight=False)
    out.print(f"ticks: {', '.join(f'{k} {v}' for k, v in sorted(r.outcomes.items()))}; fills {len(r.fills)}, "
              f"trades {len(r.trades)}; equity {r.initial_cash:,.2f} -> {r.final_equity:,.2f} "
              f"({payload['total_return_pct']:+.2f}%)", highlight=False)
    table = Table("direction", "entry", "entry price", "exit", "exit price", "size", "exit by")
    for trade in payload["trades"][:20]:
        table.add_row(trade["direction"], trade["entry_time"], f"{trade['entry_price']:.8g}",
                      trade["exit_time"] or "open", f"{trade['exit_price']:.8g}" if trade["exit_price"] else "-",
                      f"{trade['size']:.8g}", trade["exit_reason"] or "-")
    out.print(table)
    if len(payload["trades"]) > 20:
        out.print(f"... {len(payload['trades']) - 20} more trades (--json writes them all)")
    for problem in (r.rejections + r.errors)[:5]:
        out.print(f"[yellow]{problem}[/]", highlight=False)
    if json_path:
        write_json(json_path, payload)
