"""A paper bot trading several symbols with one capital (a strategy with ``symbols = [...]``).

The bot ticks once per bar for all its symbols: each symbol's closed candles are fetched, ``signals()`` is called
once with ``{symbol: frame}``, then each symbol goes through the one-symbol tick's steps (``BotRunner``): stops
first for every symbol, then the signal orders, sells before buys (each in the strategy's symbol order), exactly
as the backtest's cash-sharing portfolio places them (``sim.kernel.simulate``), so a sale frees cash before a buy
sizes from it.

In the ledger the bot is one row holding the capital and the shared cash (its ``symbol`` lists the symbols), and
each symbol is a leg row named ``bot:SYMBOL`` holding that symbol's position, entry and last bar; every order and
fill names its leg. ``paper status`` folds the legs into their bot.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from systrade.config import BotSettings
from systrade.data.load import attach_inputs
from systrade.live.ledger import Bot, Ledger, leg_name
from systrade.live.runner import ACCOUNT_LOCK, BotRunner, TickResult
from systrade.sim import kernel
from systrade.sim.rules import PositionRules
from systrade.strategy import Strategy, StrategyRef, build_strategy, call_signals_together


class LegRunner(BotRunner):
    """One symbol of a several-symbol bot: its own position, stops and orders; the bot's shared cash."""

    def __init__(self, group: str, *args, **kwargs) -> None:
        self.group = group
        super().__init__(*args, **kwargs)

    def _cash(self) -> float:
        return float(self.ledger.bot_state(self.group).cash or 0.0)

    def _wallet(self, s, bot: Bot) -> Bot:
        return s.get(Bot, self.group)

    def _group_halted(self) -> bool:
        return bool(self.ledger.bot_state(self.group).halted)


class GroupRunner:
    """Runs ticks for one bot trading several symbols together (same interface as ``BotRunner`` for the daemon)."""

    def __init__(self, settings: BotSettings, ref: StrategyRef, ledger: Ledger, market, broker,
                 rules: PositionRules | None = None, warmup: int | None = None,
                 clock: Callable[[], datetime] | None = None, capital: float | None = None) -> None:
        self.settings = settings
        self.ledger, self.market, self.broker = ledger, market, broker
        self.strategy: Strategy = build_strategy(ref, settings.params)
        if capital is None:
            capital = float(settings.capital) if settings.capital is not None else \
                ledger.initial_balances().get(market.rules(settings.symbol).quote, 0.0) * \
                (settings.capital_fraction or 1.0)
        ledger.ensure_bot(settings.name, ref.cls.strategy_name(), settings.exchange, settings.market_text,
                          settings.timeframe, capital)
        self.legs = [LegRunner(settings.name, settings.model_copy(update={"name": leg_name(settings.name, symbol),
                                                                          "symbol": symbol, "symbols": None}),
                               ref, ledger, market, broker, rules=rules, warmup=warmup, clock=clock, capital=0.0)
                     for symbol in settings.traded]
        self.history = self.legs[0].history
        self.rules = self.legs[0].rules
        self.last_signals: dict[str, dict[str, bool]] | None = None  # per symbol (for replays)
        self._notify = None

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def notify(self):
        return self._notify

    @notify.setter
    def notify(self, publish) -> None:
        self._notify = publish
        for leg in self.legs:
            leg.notify = publish

    def tick(self) -> TickResult:
        """One bar for every symbol: one ``signals()`` call, stops, then sells before buys."""
        ready = {}
        for leg in self.legs:
            got = leg.prepare_tick()
            if isinstance(got, TickResult):  # no new bar, no candles, an order still open: the bot waits whole
                return TickResult(self.name, got.outcome, got.bar_time, f"{leg.settings.symbol}: {got.message}"
                                  if got.message else "")
            ready[leg] = got
        frames = {leg.settings.symbol: candles for leg, (candles, _, _) in ready.items()}
        declared = type(self.strategy).inputs
        first = next(iter(frames.values()))
        if declared and "inputs" not in first.attrs:
            attach_inputs(first, {symbol: self.market.closed_candles(symbol, self.settings.timeframe, self.history)
                                  for symbol in declared})
        arrays = call_signals_together(self.strategy, frames)
        outcomes: list[tuple[str, TickResult]] = []
        with ACCOUNT_LOCK:
            decided = []
            for leg, (candles, bar, state) in ready.items():
                result = leg.decide_bar(candles, arrays[leg.settings.symbol], bar, state)
                if isinstance(result, TickResult):
                    outcomes.append((leg.settings.symbol, result))
                else:
                    position = self.ledger.bot_state(leg.name).position
                    decided.append((not kernel.is_sell(position, result[0]), leg, bar, result))
            self.last_signals = {leg.settings.symbol: leg.last_signals for leg in self.legs}
            for _, leg, bar, (action, late) in sorted(decided, key=lambda item: item[0]):  # sells first, stable
                outcomes.append((leg.settings.symbol, leg._trade(action, bar, late)))
        bar = max(r.bar_time for _, r in outcomes if r.bar_time is not None)
        traded = [(symbol, r) for symbol, r in outcomes if r.outcome not in ("hold",)]
        outcome = traded[0][1].outcome if len(traded) == 1 else ("orders" if traded else "hold")
        message = "; ".join(f"{symbol}: {r.outcome}" + (f" ({r.message})" if r.message else "")
                            for symbol, r in traded)
        return TickResult(self.name, outcome, bar, message)

    def settle_stops(self) -> bool:
        """Check every symbol's newest closed bars for stop exits (a replay's last bar)."""
        return any([leg.settle_stops() for leg in self.legs])

    def reconcile(self) -> None:
        for leg in self.legs:
            leg.reconcile()
