"""The paper-trading daemon: one APScheduler job per bot, fired just after each candle close.

Before anything is written, every bot is checked: its strategy, its timeframe, and its market on the venue
(``load_markets``: an unknown symbol or timeframe is refused with the closest valid names). Then the daemon
takes the ledger's lock (one daemon per ledger, ``systrade.live.lock``) and keeps it for its whole life.

Exchange trouble never stops it: a tick that still fails after the retry policy is skipped and the
next candle catches up; one bot's exception never touches another bot. The ledger failing does stop it
(``LedgerFailure``: its file deleted, replaced or read-only, the disk full, an I/O error): one error line is
logged and the daemon exits 1 rather than trade on without its books. SIGINT/SIGTERM let the running ticks
finish, then the daemon exits 0.
"""

from __future__ import annotations

import logging
import signal
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from systrade.config import Settings, allocate_capital, check_bot_symbols
from systrade.data.calendars import calendar_name
from systrade.data.timeframes import timeframe_seconds
from systrade.errors import UserError
from systrade.exchange import (
    RetryPolicy,
    TransientDataError,
    call_with_retry,
    check_market,
    create_exchange,
    describe_error,
    is_retryable,
    market_rule_overrides,
)
from systrade.live.broker import PaperBroker, SandboxBroker
from systrade.live.broker_orders import BrokerSandbox
from systrade.live.commands import CommandListener
from systrade.live.group import GroupRunner
from systrade.live.ledger import Ledger, LedgerFailure
from systrade.live.market import MarketData
from systrade.live.notify import Notice, Notifier, targets_from
from systrade.live.runner import BotRunner, TickResult
from systrade.live.sessions import SessionTrigger
from systrade.strategy import StrategyRef, load_strategy
from systrade.venues.base import is_broker

log = logging.getLogger("systrade.paper")


class StartFailure(Exception):
    """The daemon could not start for a reason that is not the user's (the exchange unreachable)."""


@dataclass
class Prepared:
    """What every bot needs, checked before the ledger is touched: strategies and one checked client per exchange."""

    refs: dict[str, StrategyRef]
    clients: dict[str, Any]
    policy: RetryPolicy
    targets: list = field(default_factory=list)  # notification targets ([notify]), checked for their token


def prepare(settings: Settings, schedule: bool = False) -> Prepared:
    """Check every configured bot without writing anything: its strategy loads, its timeframe parses (and, with
    ``schedule``, can be scheduled), the sandbox has keys, and its exchange lists its symbol and serves its
    timeframe. User mistakes raise ``UserError``; an exchange that cannot be reached raises ``StartFailure``."""
    paper = settings.paper
    if not paper.bots:
        raise UserError("no bots configured; add [[paper.bots]] tables to systrade.toml (see the README)")
    refs = {bot.name: load_strategy(bot.strategy, settings.strategies.folders) for bot in paper.bots}
    for bot in paper.bots:
        check_bot_symbols(bot, refs[bot.name].cls)
    for bot in paper.bots:
        timeframe_seconds(bot.timeframe)
        if schedule and not is_broker(bot.exchange):
            cron_fields(bot.timeframe, paper.tick_delay_seconds)
    policy = RetryPolicy(**settings.network.model_dump())
    clients: dict[Any, Any] = {}
    for bot in paper.bots:
        key = client_key(bot, paper.mode_of(bot))
        if key in clients:
            continue
        if is_broker(bot.exchange):
            clients[key] = _broker_client(bot.exchange, paper.mode_of(bot), settings, policy)
            continue
        client = create_exchange(bot.exchange, settings, with_secrets=paper.mode_of(bot) == "sandbox")
        if paper.mode_of(bot) == "sandbox":
            _enable_sandbox(client, bot.exchange)
        clients[key] = client
    for key, client in clients.items():
        if not is_broker(key[0]):
            _load_markets(client, key[0], policy)
    for bot in paper.bots:
        client = clients[client_key(bot, paper.mode_of(bot))]
        try:
            for symbol in (*bot.traded, *refs[bot.name].cls.inputs):  # the traded symbols and the strategy's inputs
                checked = bot.model_copy(update={"symbol": symbol})
                if is_broker(bot.exchange):
                    _check_broker_market(client, checked, policy)
                else:
                    check_market(client, bot.exchange, symbol, bot.timeframe)
        except UserError as error:
            raise UserError(f"bot {bot.name}: {error}") from None
    return Prepared(refs, clients, policy, targets_from(settings))


def client_key(bot, mode: str) -> tuple[str, str]:
    """Bots on one venue in one mode share a client (a ccxt client with keys only in sandbox mode)."""
    return bot.exchange, mode


@dataclass
class BrokerClient:
    """A stock broker's adapters for one mode: its candle source (checks), live market data, and in sandbox mode
    its order gateway."""

    source: Any
    market: Any
    gateway: Any | None


def _broker_client(venue: str, mode: str, settings: Settings, policy: RetryPolicy) -> BrokerClient:
    from systrade import venues

    return BrokerClient(venues.candle_source(venue, settings, policy), venues.live_market(venue, settings, policy),
                        venues.order_gateway(venue, settings, policy) if mode == "sandbox" else None)


def _check_broker_market(client: BrokerClient, bot, policy: RetryPolicy) -> None:
    """The broker lists the bot's symbol and serves its timeframe; an unreachable broker is a ``StartFailure``."""
    from systrade.venues.errors import BrokerAuthError, BrokerRetryable

    try:
        client.source.check(bot.symbol, bot.timeframe)
    except BrokerAuthError as error:
        raise UserError(f"{bot.exchange} refused the credentials ({describe_error(error, bot.exchange)}); check "
                        f"the SYSTRADE_{bot.exchange.upper()}_* variables (see the README)") from None
    except BrokerRetryable as error:
        raise StartFailure(f"{bot.exchange} could not be reached to check the bots' markets after "
                           f"{policy.retries} retries ({describe_error(error, bot.exchange)}); nothing was "
                           "started: try again when it answers") from None


def _load_markets(client, exchange_id: str, policy: RetryPolicy) -> None:
    import ccxt

    def load() -> dict:
        markets = client.load_markets()
        if not markets:
            raise TransientDataError("the exchange returned no markets")
        return markets

    try:
        call_with_retry(load, policy, "loading markets", venue=exchange_id)
    except ccxt.AuthenticationError as error:
        raise UserError(f"{exchange_id} refused the credentials while loading markets "
                        f"({describe_error(error, exchange_id)}); check SYSTRADE_{exchange_id.upper()}_API_KEY/"
                        "_SECRET") from None
    except Exception as error:
        if is_retryable(error) or isinstance(error, TransientDataError):
            raise StartFailure(f"{exchange_id} could not be reached to check the bots' markets after "
                               f"{policy.retries} retries ({describe_error(error, exchange_id)}); nothing was "
                               "started: try again when it answers") from None
        raise


def build_runners(settings: Settings, warmups: dict[str, int] | None = None,
                  clock: Callable[[], datetime] | None = None, prepared: Prepared | None = None,
                  ledger: Ledger | None = None) -> tuple[Ledger, list[BotRunner]]:
    """Open the ledger and make one runner per configured bot (validating everything first).

    ``warmups`` (bot name -> measured warmup, from ``preflight``) sets how many candles each tick fetches
    when the bot does not say (``candles``): the larger of it and the strategy's declared warmup, plus 250.
    Each bot gets its capital (``config.allocate_capital`` against the ledger's starting balances);
    ``clock`` gives the runners' "now" (default: the system clock). ``prepared`` is ``prepare``'s checked
    result (made here when not given); ``ledger`` an open ledger (the daemon's, under its lock; default: opened
    from the config, created if new).
    """
    paper = settings.paper
    prepared = prepared or prepare(settings)
    ledger = ledger or Ledger(paper.database)
    ledger.check_markets_kept([(bot.name, bot.exchange, bot.market_text) for bot in paper.bots])
    ledger.ensure_account(paper.balances)
    capitals = bot_capitals(settings, ledger)
    runners = []
    for bot in paper.bots:
        mode = paper.mode_of(bot)
        client = prepared.clients[client_key(bot, mode)]
        if isinstance(client, BrokerClient):
            market = client.market
            broker = BrokerSandbox(client.gateway, prepared.policy, bot.exchange) if mode == "sandbox" else \
                PaperBroker(market)
        else:
            market = MarketData(client, prepared.policy, market_rule_overrides(bot.exchange, settings))
            broker = SandboxBroker(client, prepared.policy) if mode == "sandbox" else PaperBroker(market)
        kind = GroupRunner if bot.symbols else BotRunner
        runners.append(kind(bot, prepared.refs[bot.name], ledger, market, broker,
                            warmup=(warmups or {}).get(bot.name), clock=clock, capital=capitals.get(bot.name)))
    return ledger, runners


def bot_capitals(settings: Settings, ledger: Ledger) -> dict[str, float]:
    """Every configured bot's capital: the config's allocation, checked against the ledger's starting balances
    (which may differ from the config's when the ledger is older), keeping what the ledger assigned before."""
    assigned = {bot.name: bot.capital for bot in ledger.bots() if bot.capital is not None}
    try:
        return allocate_capital(settings.paper.bots, ledger.initial_balances(), assigned)
    except ValueError as error:
        raise UserError(f"paper bots: {error}") from None


def _enable_sandbox(client, exchange_id: str) -> None:
    import ccxt

    from systrade.config import secret_env_names

    try:
        if not (client.urls or {}).get("test"):  # Upbit lists a "test" URL of None: no testnet either
            raise ccxt.NotSupported(exchange_id)
        client.set_sandbox_mode(True)
    except ccxt.NotSupported:
        raise UserError(f"{exchange_id} has no sandbox (testnet) for orders; use mode = \"paper\", which "
                        "simulates fills on its live order book") from None
    names = secret_env_names(exchange_id)
    if not (client.apiKey and client.secret):
        raise UserError(f"sandbox mode needs testnet keys in {names['apiKey']} and {names['secret']}")


def safe_tick(runner: BotRunner) -> TickResult:
    """A tick that raises only ``LedgerFailure``: exchange failures skip the bar, bugs are logged with their
    traceback (both give a result with ``failed`` set), and a ledger that can no longer be written stops the
    daemon. The ledger's file is checked before the tick starts."""
    runner.ledger.check()
    try:
        result = runner.tick()
    except Exception as error:
        failure = runner.ledger.storage_failure(error)
        if failure is not None:
            raise failure from error
        if is_retryable(error) or isinstance(error, TransientDataError):
            reason = describe_error(error, runner.settings.exchange)
            message = f"exchange unavailable after retries, tick skipped: {reason}"
            log.warning("%s: %s", runner.name, message)
            outcome = "skipped"
        else:
            message = f"{type(error).__name__}: {error}"
            log.error("%s: tick failed: %s\n%s", runner.name, message, traceback.format_exc())
            outcome = "error"
        if runner.notify is not None:
            runner.notify(Notice("error", f"{message}; the bot keeps running and the next tick tries again",
                                 runner.name, runner.settings.symbol))
        try:
            runner.ledger.record_tick(runner.name, None, outcome, message)
            runner.ledger.record(outcome, message, runner.name)
        except Exception as record_error:  # an exchange or strategy failure never stops the daemon; the ledger does
            failure = runner.ledger.storage_failure(record_error)
            if failure is not None:
                raise failure from record_error
            log.exception("%s: could not record the failed tick", runner.name)
        return TickResult(runner.name, outcome, message=message, failed=True)
    if result.outcome not in ("no-new-bar",):
        log.info("%s", tick_line(result))
    return result


def tick_line(result: TickResult) -> str:
    """One readable log line for a tick: ``bot: bar 2024-05-01 10:00: halted (by the user)``."""
    bar = f"bar {result.bar_time:%Y-%m-%d %H:%M}: " if result.bar_time else ""
    message = result.message.strip()
    if message.startswith(result.outcome):  # "halted" + "halted by user" said once
        message = message[len(result.outcome):].strip()
    return f"{result.bot}: {bar}{result.outcome}" + (f" ({message})" if message else "")


def run_once(runners: list[BotRunner]) -> list[TickResult]:
    """One tick of every bot, now (``LedgerFailure`` stops it at once)."""
    return [safe_tick(runner) for runner in runners]


def run_daemon(settings: Settings, warmups: dict[str, int] | None = None, once: bool = False) -> int:
    """``systrade paper run``: check every bot, take the ledger's lock, then tick every bot once (``once``) or run
    the schedule until a signal. Returns the exit code: 0, or 1 when a tick failed (``once``), the exchange
    could not be reached to check the bots, or the ledger failed (one error line each). User mistakes
    (including another daemon holding the ledger) raise ``UserError`` before anything is written."""
    from systrade.live.lock import check_writable, locked_ledger

    check_writable(settings.paper.database)
    try:
        prepared = prepare(settings, schedule=not once)
    except StartFailure as error:
        log.error("%s", error)
        return 1
    notifier = None
    try:
        with locked_ledger(settings.paper.database) as ledger:
            try:
                _, runners = build_runners(settings, warmups, prepared=prepared, ledger=ledger)
                if prepared.targets:
                    notifier = Notifier(prepared.targets, settings.notify.events, ledger).start()
                    for runner in runners:
                        runner.notify = notifier.publish
                if not once:
                    try:
                        run_forever(runners, settings.paper.tick_delay_seconds, notifier, settings)
                    finally:
                        if notifier is not None:
                            notifier.stop(FLUSH_SECONDS)
                    return 0
                failed = [result.bot for result in run_once(runners) if result.failed]
                if notifier is not None:
                    notifier.stop(FLUSH_SECONDS)  # what is not sent by then waits in the ledger for the next start
            except Exception as error:  # the ledger failing at start is a ledger failure too
                failure = ledger.storage_failure(error)
                if failure is None:
                    raise
                raise failure from error
    except LedgerFailure as failure:
        log.error("%s; the daemon stopped", failure)
        return 1
    if failed:
        log.error("paper run --once: the tick failed for %s %s (see above)", "bot" if len(failed) == 1 else "bots",
                  ", ".join(failed))
        return 1
    return 0


FLUSH_SECONDS = 30.0  # how long a stopping daemon waits for its messages to go out


def _local_zone() -> str:
    """The machine's time zone (for the daily summary when [notify] timezone is unset)."""
    zone = datetime.now().astimezone().tzinfo
    return getattr(zone, "key", None) or "UTC"


def daily_summary(runners: list[BotRunner]) -> Notice:
    """One message on every bot: its position, cash, and profit so far."""
    lines = []
    for runner in runners:
        state = runner.ledger.bot_state(runner.name)
        bot = runner.ledger.bot(runner.name)
        quote = runner.market.rules(runner.settings.symbol).quote
        held = ", ".join(f"{runner.ledger.bot_state(leg.name).position:.8g} {leg.settings.symbol}"
                         for leg in getattr(runner, "legs", [runner]))
        line = f"{runner.name}: position {held}, cash {state.cash or 0:,.2f} " \
               f"{quote}" + (" (halted)" if state.halted else "")
        if bot is not None and bot.capital is not None:
            line += f", capital {bot.capital:,.2f} {quote}"
        lines.append(line)
    return Notice("daily_summary", "\n".join(lines))


def cron_fields(timeframe: str, delay: int) -> dict:
    """CronTrigger fields firing ``delay`` seconds after every candle close."""
    seconds = timeframe_seconds(timeframe)
    if seconds < 60:
        if 60 % seconds:
            raise UserError(f"timeframe {timeframe} does not divide a minute; use 1s, 2s, 5s, 10s, 15s, 20s or 30s")
        return {"second": f"{min(delay, seconds - 1)}/{seconds}"}
    if seconds < 3600:
        return {"minute": f"*/{seconds // 60}", "second": delay}
    if seconds < 86400:
        return {"hour": f"*/{seconds // 3600}", "minute": 0, "second": delay}
    if seconds == 86400:
        return {"hour": 0, "minute": 0, "second": delay}
    if seconds == 7 * 86400:
        return {"day_of_week": "mon", "hour": 0, "minute": 0, "second": delay}
    raise UserError(f"timeframe {timeframe} cannot be scheduled; use seconds, minutes, hours, 1d or 1w")


def run_forever(runners: list[BotRunner], delay: int, notifier: Notifier | None = None,
                settings: Settings | None = None) -> None:
    """Schedule every bot and block until SIGINT/SIGTERM, then let running ticks finish.

    A ``LedgerFailure`` in any tick stops the schedule too: no further tick starts, the running ones finish,
    and the failure is raised. With a ``notifier``: a start and a stop message, and the daily summary.
    """
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.cron import CronTrigger

    stop = threading.Event()
    failures: list[LedgerFailure] = []
    guard = threading.Lock()
    listener = None

    def job(runner: BotRunner) -> None:
        if stop.is_set():
            return
        try:
            safe_tick(runner)
        except LedgerFailure as failure:
            with guard:
                failures.append(failure)
            stop.set()

    scheduler = BackgroundScheduler(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1})
    for runner in runners:
        seconds = timeframe_seconds(runner.settings.timeframe)
        calendar = calendar_name(runner.settings.exchange)
        trigger = SessionTrigger(calendar, runner.settings.timeframe, delay) if calendar else \
            CronTrigger(timezone="UTC", **cron_fields(runner.settings.timeframe, delay))
        scheduler.add_job(job, trigger, args=[runner], id=runner.name, name=runner.name,
                          misfire_grace_time=max(1, seconds // 2))
        first = trigger.get_next_fire_time(None, datetime.now(UTC))
        log.info("%s: scheduled %s %s %s every %s%s; next tick %s", runner.name, runner.strategy.strategy_name(),
                 runner.settings.exchange, runner.settings.market_text, runner.settings.timeframe,
                 f" on the {calendar} sessions" if calendar else "",
                 first.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if first else "never")

    if notifier is not None and settings is not None:
        hour, minute = (int(part) for part in settings.notify.daily_summary_at.split(":"))
        scheduler.add_job(lambda: notifier.publish(daily_summary(runners)), CronTrigger(
            hour=hour, minute=minute, timezone=settings.notify.timezone or _local_zone()), id="daily-summary")
        names = ", ".join(r.name for r in runners)
        notifier.publish(Notice("start", f"the daemon started with {len(runners)} "
                                         f"bot{'s' if len(runners) != 1 else ''}: {names}"))
        if "telegram" in notifier.targets and runners:
            listener = CommandListener(notifier.targets["telegram"], notifier, runners[0].ledger).start()

    def on_signal(signum, _frame) -> None:
        log.info("signal %s: finishing running ticks, then stopping", signal.Signals(signum).name)
        stop.set()

    previous = {number: signal.signal(number, on_signal) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        for runner in runners:  # catch up on start: process the newest closed candle now
            job(runner)
        if not stop.is_set():
            scheduler.start()
            while not stop.wait(1.0):  # the main thread stays free to take the signals
                pass
            scheduler.shutdown(wait=True)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        if listener is not None:
            listener.stop()
        if notifier is not None:
            why = f"the ledger failed ({failures[0]})" if failures else "it was asked to stop"
            notifier.publish(Notice("stop" if not failures else "error", f"the daemon stopped: {why}"))
    if failures:
        raise failures[0]
    log.info("daemon stopped")
