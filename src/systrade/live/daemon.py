"""The paper-trading daemon: one APScheduler job per bot, fired just after each candle closes.

Exchange trouble never stops it: a tick that still fails after the retry policy is skipped and the
next candle catches up; one bot's exception never touches another bot. SIGINT/SIGTERM let the
running ticks finish, then the daemon exits 0.
"""

from __future__ import annotations

import logging
import signal
import traceback
from collections.abc import Callable
from datetime import datetime

from systrade.config import Settings, allocate_capital
from systrade.data.timeframes import timeframe_seconds
from systrade.errors import UserError
from systrade.exchange import RetryPolicy, TransientDataError, create_exchange, describe_error, is_retryable
from systrade.live.broker import PaperBroker, SandboxBroker
from systrade.live.ledger import Ledger
from systrade.live.market import MarketData
from systrade.live.runner import BotRunner, TickResult
from systrade.strategy import load_strategy

log = logging.getLogger("systrade.paper")


def build_runners(settings: Settings, warmups: dict[str, int] | None = None,
                  clock: Callable[[], datetime] | None = None) -> tuple[Ledger, list[BotRunner]]:
    """Open the ledger and make one runner per configured bot (validating everything first).

    ``warmups`` (bot name -> measured warmup, from ``preflight``) sets how many candles each tick fetches
    when the bot does not say (``candles``): the larger of it and the strategy's declared warmup, plus 250.
    Each bot gets its capital (``config.allocate_capital`` against the ledger's starting balances);
    ``clock`` gives the runners' "now" (default: the system clock).
    """
    paper = settings.paper
    if not paper.bots:
        raise UserError("no bots configured; add [[paper.bots]] tables to systrade.toml (see the README)")
    refs = {bot.name: load_strategy(bot.strategy, settings.strategies.folders) for bot in paper.bots}
    for bot in paper.bots:
        timeframe_seconds(bot.timeframe)
    ledger = Ledger(paper.database)
    ledger.ensure_account(paper.balances)
    capitals = bot_capitals(settings, ledger)
    policy = RetryPolicy(**settings.network.model_dump())
    clients: dict[str, object] = {}
    runners = []
    for bot in paper.bots:
        if bot.exchange not in clients:
            client = create_exchange(bot.exchange, settings, with_secrets=paper.mode == "sandbox")
            if paper.mode == "sandbox":
                _enable_sandbox(client, bot.exchange)
            clients[bot.exchange] = client
        client = clients[bot.exchange]
        market = MarketData(client, policy)
        broker = SandboxBroker(client, policy) if paper.mode == "sandbox" else PaperBroker(market)
        runners.append(BotRunner(bot, refs[bot.name], ledger, market, broker,
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
        client.set_sandbox_mode(True)
    except ccxt.NotSupported:
        raise UserError(f"{exchange_id} has no sandbox (testnet) in ccxt; use mode = \"paper\"") from None
    names = secret_env_names(exchange_id)
    if not (client.apiKey and client.secret):
        raise UserError(f"sandbox mode needs testnet keys in {names['apiKey']} and {names['secret']}")


def safe_tick(runner: BotRunner) -> TickResult:
    """A tick that never raises: exchange failures skip the bar, bugs are logged with their traceback."""
    try:
        result = runner.tick()
    except Exception as error:
        if is_retryable(error) or isinstance(error, TransientDataError):
            reason = describe_error(error, runner.settings.exchange)
            message = f"exchange unavailable after retries, tick skipped: {reason}"
            log.warning("%s: %s", runner.name, message)
            outcome = "skipped"
        else:
            message = f"{type(error).__name__}: {error}"
            log.error("%s: tick failed: %s\n%s", runner.name, message, traceback.format_exc())
            outcome = "error"
        try:
            runner.ledger.record_tick(runner.name, None, outcome, message)
            runner.ledger.record(outcome, message, runner.name)
        except Exception:  # the ledger itself failing must not kill the daemon either
            log.exception("%s: could not record the failed tick", runner.name)
        return TickResult(runner.name, outcome, message=message)
    if result.outcome not in ("no-new-bar",):
        log.info("%s: %s %s %s", runner.name, result.outcome, result.bar_time or "", result.message)
    return result


def run_once(runners: list[BotRunner]) -> list[TickResult]:
    """One tick of every bot, now."""
    return [safe_tick(runner) for runner in runners]


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


def run_forever(runners: list[BotRunner], delay: int) -> None:
    """Schedule every bot and block until SIGINT/SIGTERM, then let running ticks finish."""
    from apscheduler.schedulers.blocking import BlockingScheduler
    from apscheduler.triggers.cron import CronTrigger

    scheduler = BlockingScheduler(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1})
    for runner in runners:
        seconds = timeframe_seconds(runner.settings.timeframe)
        scheduler.add_job(safe_tick, CronTrigger(timezone="UTC", **cron_fields(runner.settings.timeframe, delay)),
                          args=[runner], id=runner.name, name=runner.name,
                          misfire_grace_time=max(1, seconds // 2))
        log.info("%s: scheduled %s %s %s every %s", runner.name, runner.strategy.strategy_name(),
                 runner.settings.exchange, runner.settings.symbol, runner.settings.timeframe)

    def stop(signum, _frame) -> None:
        log.info("signal %s: finishing running ticks, then stopping", signal.Signals(signum).name)
        scheduler.shutdown(wait=True)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    for runner in runners:  # catch up on start: process the newest closed candle now
        safe_tick(runner)
    scheduler.start()
    log.info("daemon stopped")
