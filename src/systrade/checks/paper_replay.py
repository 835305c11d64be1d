"""``paper replay``: pick the bot (a configured one, or one made from backtest options) and replay it.

This sits above ``backtest`` and ``live``: it reuses the backtest's option handling (``prepare_backtest``:
strategy, parameters, data, sizing, fees, slippage, stops) and hands the result to ``live.replay``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from systrade.backtest.request import BacktestOptions, prepare_backtest, with_market_rules
from systrade.checks.common import Together
from systrade.checks.warmup import warmup_for_ticks
from systrade.config import BotSettings, Settings, allocate_capital
from systrade.data.load import Candles, load_candles
from systrade.errors import UserError
from systrade.live.replay import ReplayResult, replay, replay_bot_settings, replay_together
from systrade.live.runner import bot_rules
from systrade.sim.rules import PositionRules
from systrade.strategy import StrategyRef, build_strategy, load_strategy, parse_param_overrides


@dataclass
class ReplayRun:
    """A finished replay with what it ran on."""

    ref: StrategyRef
    bot: BotSettings
    configured_bot: bool
    candles: Candles
    rules: PositionRules
    warmup: int
    result: ReplayResult


def run_replay(options: BacktestOptions, settings: Settings, history: int | None = None,
               on_bar: Callable[[int, int], None] | None = None) -> ReplayRun:
    """Replay ``options.strategy``: a configured bot's name (its settings) or a strategy with backtest options."""
    bots = {bot.name: bot for bot in settings.paper.bots}
    if options.strategy in bots:
        configured = bots[options.strategy]
        ref = load_strategy(configured.strategy, settings.strategies.folders)
        params = {**configured.params, **parse_param_overrides(options.params)}
        strategy = build_strategy(ref, params)
        cls = ref.cls
        given = {name: getattr(options, name) for name in ("direction", "fees", "slippage", "stop_loss", "take_profit")
                 if getattr(options, name) is not None}  # options given on the command line win
        rules = replace(bot_rules(configured.model_copy(update=given), cls, settings.backtest.fees),
                        sell_fees=options.sell_fees, granularity=options.granularity, tick=options.tick,
                        min_amount=options.min_amount, min_cost=options.min_cost)
        if configured.symbols:  # a bot trading several symbols together: all of them, from the store
            traded = load_candles(settings.data.dir, None, options.exchange or configured.exchange, configured.traded,
                                  options.timeframe or configured.timeframe, options.start, options.end,
                                  max_file_mb=settings.data.max_file_mb)
            bot = configured.model_copy(update={"params": strategy.param_values, "fees": rules.fees,
                                                **({"candles": history} if history else {})})
            cash = options.cash if options.cash is not None else allocate_capital(
                settings.paper.bots, settings.paper.balances).get(configured.name, settings.backtest.cash)
            return _together(ref, strategy, traded, bot, rules, cash, True, on_bar)
        symbols = options.symbols or ([] if options.data_file else [configured.symbol])
        candles = load_candles(settings.data.dir, options.data_file,
                               options.exchange or (None if options.data_file else configured.exchange), symbols,
                               options.timeframe or (None if options.data_file else configured.timeframe),
                               options.start, options.end, date_format=options.date_format,
                               max_file_mb=settings.data.max_file_mb)[0]
        fees_given = options.fees is not None or configured.fees is not None
        rules = with_market_rules(rules, candles.market, options, fees_given)  # a stored series' market rules
        bot = configured.model_copy(update={"params": strategy.param_values, "fees": rules.fees,
                                            **({"candles": history} if history else {})})
        # the bot's own capital, as the daemon allocates it from [paper] balances
        cash = options.cash if options.cash is not None else \
            allocate_capital(settings.paper.bots, settings.paper.balances).get(configured.name, settings.backtest.cash)
    else:
        prepared = prepare_backtest(options, settings)
        if type(prepared.strategy).symbols:
            return _replay_together(prepared, load_strategy(options.strategy, settings.strategies.folders), history,
                                    on_bar)
        if len(prepared.candles) != 1:
            raise UserError("a replay runs one symbol; give one --symbol or one --data file")
        ref = load_strategy(options.strategy, settings.strategies.folders)
        strategy, rules, candles, cash = prepared.strategy, prepared.rules, prepared.candles[0], prepared.cash
        bot = replay_bot_settings(strategy.strategy_name(), candles.symbol, candles.timeframe, rules,
                                  strategy.param_values, history)
    warmup = warmup_for_ticks(strategy, candles.frame)
    result = replay(ref, candles.frame, bot, rules, cash, warmup=warmup, on_bar=on_bar)
    return ReplayRun(ref, bot, options.strategy in bots, candles, rules, warmup, result)


def _replay_together(prepared, ref: StrategyRef, history: int | None,
                     on_bar: Callable[[int, int], None] | None) -> ReplayRun:
    """The replay of a strategy trading several symbols together, from backtest options."""
    strategy = prepared.strategy
    bot = replay_bot_settings(strategy.strategy_name(), [c.symbol for c in prepared.candles],
                              prepared.candles[0].timeframe, prepared.rules, strategy.param_values, history)
    return _together(ref, strategy, prepared.candles, bot, prepared.rules, prepared.cash, False, on_bar)


def _together(ref: StrategyRef, strategy, candles: list[Candles], bot: BotSettings, rules: PositionRules,
              cash: float, configured: bool, on_bar: Callable[[int, int], None] | None) -> ReplayRun:
    """One bot trading ``candles``' symbols with one cash, replayed: every symbol's fills and trades (each row names
    its symbol); ``final_position`` is per symbol."""
    import pandas as pd

    frames = {c.symbol: c.frame for c in candles}
    warmup = warmup_for_ticks(strategy, Together(frames))
    results = replay_together(ref, frames, bot, rules, cash, warmup=warmup, on_bar=on_bar)
    first = next(iter(results.values()))
    together = replace(first, symbol=", ".join(frames),
                       fills=pd.concat([r.fills.assign(symbol=s) for s, r in results.items()], ignore_index=True),
                       trades=pd.concat([r.trades.assign(symbol=s) for s, r in results.items()], ignore_index=True),
                       final_position={s: r.final_position for s, r in results.items()})
    return ReplayRun(ref, bot, configured, replace(candles[0], symbol=", ".join(frames)), rules, warmup, together)


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "isoformat"):
        return None if value != value else value.isoformat()  # NaT != NaT
    return value


def replay_payload(run: ReplayRun) -> dict[str, Any]:
    """The ``paper replay --json`` document (schema in docs/checks.md)."""
    r = run.result
    return {
        "strategy": run.ref.cls.strategy_name(), "params": run.bot.params,
        "bot": run.bot.name if run.configured_bot else None,
        "symbol": run.candles.symbol, "timeframe": run.candles.timeframe, "bars": r.bars,
        "start": run.candles.frame.index[0].isoformat(), "end": run.candles.frame.index[-1].isoformat(),
        "history": r.history, "warmup": run.warmup, "rules": run.rules.to_dict(),
        "initial_cash": r.initial_cash, "final_cash": r.final_cash, "final_position": r.final_position,
        "final_equity": r.final_equity, "total_return_pct": (r.final_equity / r.initial_cash - 1) * 100.0,
        "outcomes": r.outcomes,
        "fills": [{k: _clean(v) for k, v in row.items()} for row in r.fills.to_dict("records")],
        "trades": [{k: _clean(v) for k, v in row.items()} for row in r.trades.to_dict("records")],
        "rejections": r.rejections, "errors": r.errors, "seconds": r.seconds,
        "bars_per_second": r.bars_per_second, "data_source": run.candles.source, "synthetic": run.candles.synthetic,
    }

