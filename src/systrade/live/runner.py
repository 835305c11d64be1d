"""One tick of one bot: closed candles -> strategy -> shared position rules -> broker -> ledger.

The order for a bar is decided exactly as the backtest decides it (``systrade.positions``):
the signal of the last closed bar acts now, at the next bar's open. Its client order id is
derived from bot and bar, written as an intent before the broker is called, and completed in
one transaction with the fill: a crash, a repeated tick or a restart cannot place it twice.

Stops (paper mode) follow the backtest's rules too. A stop is simulated as a resting order: the tick
after bar t closes first checks bar t (and any bar since the last tick) against the open position's
stop levels, from the bar after its entry bar; a bar that reached a level is recorded as a fill at
that level (or at the bar's open when it opened beyond it) inside that bar. Only then does it act on
bar t's signals. A closing or reversing signal that would trade at a price already beyond a stop
level is a stop exit instead (the stop wins over the signal at that open, and no reversal follows).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from systrade.config import BotSettings
from systrade.errors import UserError
from systrade.exchange import TransientDataError, describe_error, is_retryable
from systrade.live.broker import Execution, OrderRequest, book_price
from systrade.live.ledger import Balance, Bot, Fill, Ledger, Order, Tick, as_utc, client_order_id, utcnow
from systrade.live.market import MarketData
from systrade.positions import PositionRules, decide, order_amount, resolve_signals, stop_exit
from systrade.strategy import Strategy, StrategyRef, build_strategy, validate_signals

log = logging.getLogger("systrade.paper")
ACCOUNT_LOCK = threading.Lock()  # bots share one cash balance: size and fill one order at a time
DEFAULT_HISTORY = 250
SIGNAL_COLUMNS = ("entries", "exits", "short_entries", "short_exits")


@dataclass
class TickResult:
    bot: str
    outcome: str
    bar_time: datetime | None = None
    message: str = ""


class BotRunner:
    """Runs ticks for one configured bot.

    ``rules`` overrides the position rules built from the bot's settings (the replay passes the backtest's);
    ``warmup`` is a measured history length (``systrade.checks.warmup``) used when it exceeds the strategy's
    declared ``warmup``; ``clock`` gives "now" (the replay's simulated clock; default: the system clock).
    """

    def __init__(self, settings: BotSettings, ref: StrategyRef, ledger: Ledger, market: MarketData, broker,
                 rules: PositionRules | None = None, warmup: int | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.settings = settings
        self.strategy: Strategy = build_strategy(ref, settings.params)
        cls = ref.cls
        self.rules = rules or PositionRules(direction=settings.direction or cls.direction, size=settings.size,
                                            size_type=settings.size_type, fees=settings.fees or 0.0,
                                            slippage=settings.slippage, stop_loss=cls.stop_loss,
                                            take_profit=cls.take_profit)
        if self.has_stops and not getattr(broker, "supports_stops", False):
            raise UserError(f"bot {settings.name}: strategy {cls.strategy_name()} uses stop_loss/take_profit, which "
                            "sandbox bots do not support (a stop fills inside a bar that has already closed); use "
                            "mode = \"paper\" or remove the stops")
        self.warmup = max(int(cls.warmup or 0), int(warmup or 0))
        self.history = settings.candles or (self.warmup + DEFAULT_HISTORY)
        self.clock = clock or utcnow
        self.last_signals: dict[str, bool] | None = None  # the newest bar's resolved signals (for replays)
        self._reconcile_due = True  # intents can only be left by an earlier process or a tick that raised
        self.ledger = ledger
        self.market = market
        self.broker = broker
        ledger.ensure_bot(settings.name, cls.strategy_name(), settings.exchange, settings.symbol, settings.timeframe)

    @property
    def has_stops(self) -> bool:
        return self.rules.stop_loss is not None or self.rules.take_profit is not None

    @property
    def name(self) -> str:
        return self.settings.name

    def tick(self) -> TickResult:
        """Process the newest closed candle, if it is new. Exchange errors surface after the retry policy."""
        state = self.ledger.bot_state(self.name)
        if state.halted:
            return self._done(TickResult(self.name, "halted", message=state.halted_reason or "halted"))
        if self._reconcile_due:
            self.reconcile()
        candles = self.market.closed_candles(self.settings.symbol, self.settings.timeframe, self.history)
        if candles.empty:
            return self._done(TickResult(self.name, "skipped", message="no closed candles yet"))
        bar = candles.index[-1].to_pydatetime()
        if state.last_bar is not None and bar <= as_utc(state.last_bar):
            return TickResult(self.name, "no-new-bar", bar)
        arrays = validate_signals(self.strategy.signals(candles.copy()), candles, self.strategy.strategy_name())
        resolved = resolve_signals(arrays, self.rules.direction)
        self.last_signals = {k: bool(resolved[k][-1]) for k in SIGNAL_COLUMNS}
        with ACCOUNT_LOCK:
            if self.has_stops and self._stops_in(candles, state):
                state = self.ledger.bot_state(self.name)
            action = decide(state.position, *self.last_signals.values())
            if self._loss_limit_hit(candles, state):
                return self._done(TickResult(self.name, "halted", bar, "daily loss limit reached"))
            if action == "hold":
                self._mark_bar(bar, "hold")
                return TickResult(self.name, "hold", bar)
            return self._trade(action, bar)

    def settle_stops(self) -> bool:
        """Check the newest closed bars for stop exits without acting on signals (a replay's last bar)."""
        state = self.ledger.bot(self.name)
        if state.halted or not self.has_stops:
            return False
        candles = self.market.closed_candles(self.settings.symbol, self.settings.timeframe, self.history)
        with ACCOUNT_LOCK:
            return not candles.empty and self._stops_in(candles, state)

    # ------------------------------------------------------------------ stops

    def _stops_in(self, candles: pd.DataFrame, state) -> bool:
        """Record the first stop exit inside the closed bars not checked yet; True when one filled.

        ``state`` is the bot's ledger row (``Ledger.bot_state``).

        Bars checked: after the entry bar (the bar after the signal bar that opened the position) and after
        the last bar a tick processed (that tick checked it).
        """
        if not state.position or state.entry_price is None:
            return False
        index = candles.index
        first = 0
        if state.entry_bar is not None:
            signal_bar = pd.Timestamp(as_utc(state.entry_bar))
            if signal_bar >= index[0]:
                first = int(index.searchsorted(signal_bar, side="right")) + 1  # skip the entry bar itself
        if state.last_bar is not None:
            first = max(first, int(index.searchsorted(pd.Timestamp(as_utc(state.last_bar)), side="right")))
        opens, highs, lows = (candles[c].to_numpy() for c in ("open", "high", "low"))
        for i in range(first, len(index)):
            hit = stop_exit(state.position, state.entry_price, float(opens[i]), float(highs[i]), float(lows[i]),
                            self.rules.stop_loss, self.rules.take_profit)
            if hit is not None:
                return self._stop_fill(index[i].to_pydatetime(), hit[0], hit[1], state.position)
        return False

    def _stop_fill(self, bar: datetime, kind: str, price: float, position: float) -> bool:
        """Fill a stop exit inside ``bar`` at ``price`` (before slippage): order, fill and balances in one
        transaction (nothing leaves the process, so no intent is needed); the client order id makes it once only."""
        rules = self.market.rules(self.settings.symbol)
        fee_rate = rules.taker_fee if self.settings.fees is None else self.settings.fees
        cash = self.ledger.balances().get(rules.quote, 0.0)
        request = OrderRequest(client_order_id(self.name, bar, "s"), self.settings.symbol,
                               "sell" if position > 0 else "buy", abs(position), price, fee_rate,
                               self.rules.slippage,
                               allow_short=self.rules.direction != "long", base_available=max(position, 0.0),
                               quote_available=cash)
        execution = self.broker.fill_at(request, price)
        try:
            with self.ledger.transaction() as s:
                order = Order(client_order_id=request.client_order_id, bot=self.name, symbol=request.symbol,
                              side=request.side, amount=request.amount, bar_time=bar, action="stop",
                              status="intent", reason=kind, created=utcnow())
                s.add(order)
                s.flush()
                bot = s.get(Bot, self.name)
                if execution.status != "filled":
                    order.status, order.reason = "rejected", execution.reason
                    self.ledger.record("rejected", f"{kind} {order.side} {order.amount:.10g}: {execution.reason}",
                                       self.name, s)
                    log.warning("%s: %s exit rejected: %s", self.name, kind, execution.reason)
                else:
                    self._book_fill(s, order, bot, execution, fill_time=bar)
                s.add(Tick(bot=self.name, bar_time=bar, time=utcnow(), outcome=kind, message=execution.reason))
        except IntegrityError:  # recorded already (a repeated tick)
            return False
        return execution.status == "filled"

    # ------------------------------------------------------------------ orders

    def _trade(self, action: str, bar: datetime) -> TickResult:
        rules = self.market.rules(self.settings.symbol)
        fee_rate = rules.taker_fee if self.settings.fees is None else self.settings.fees
        balances = self.ledger.balances()
        cash = balances.get(rules.quote, 0.0)
        position = self.ledger.bot(self.name).position
        book = self.market.order_book(self.settings.symbol)
        stop_kind = self._beyond_stop(position, book) if self.has_stops and action in ("close", "reverse") else None
        if stop_kind:
            action = "stop"  # the stop wins over a signal at this open: close only, no reversal (as the backtest)
        amount = self._size(action, position, cash, book, fee_rate)
        amount = self._cap_position(position, amount, cash, book)
        if abs(amount) <= 0:
            self._mark_bar(bar, "hold", f"{action} sized to nothing")
            return TickResult(self.name, "hold", bar, f"{action} sized to nothing")
        request = OrderRequest(client_order_id(self.name, bar), self.settings.symbol, "buy" if amount > 0 else "sell",
                               abs(amount), 0.0, fee_rate, self.rules.slippage,
                               allow_short=self.rules.direction != "long", base_available=max(position, 0.0),
                               quote_available=cash)
        try:
            with self.ledger.transaction() as s:
                s.add(Order(client_order_id=request.client_order_id, bot=self.name, symbol=request.symbol,
                            side=request.side, amount=request.amount, bar_time=bar, action=action, status="intent",
                            reason=stop_kind or "", created=utcnow()))
        except IntegrityError:  # this bar's order exists already: a repeated tick; reconcile, never resend
            self.reconcile()
            return TickResult(self.name, "duplicate", bar, "order for this bar exists")
        try:
            execution = self._execute(request, book)
            self._apply(request.client_order_id, execution, bar)
        except BaseException:
            self._reconcile_due = True  # the intent stays: the next tick completes it
            raise
        return TickResult(self.name, execution.status, bar, execution.reason)

    def _execute(self, request: OrderRequest, book: dict | None = None) -> Execution:
        """The broker's answer; an error that retrying cannot fix becomes a rejection, not a stuck intent.

        Exchange trouble (after the retry policy) propagates: the intent stays and is reconciled later.
        """
        try:
            return self.broker.execute(request, book)
        except Exception as error:
            if is_retryable(error) or isinstance(error, TransientDataError):
                raise
            reason = describe_error(error, self.settings.exchange)
            return Execution("rejected", reason=reason)

    def _beyond_stop(self, position: float, book: dict) -> str | None:
        """Which stop (``stop_loss``/``take_profit``) closing ``position`` now would already be beyond, if any."""
        state = self.ledger.bot(self.name)
        levels = book["bids"] if position > 0 else book["asks"]
        price = float(levels[0][0]) if levels else self.market.last_price(self.settings.symbol)
        hit = stop_exit(position, state.entry_price, price, price, price, self.rules.stop_loss, self.rules.take_profit)
        return hit[0] if hit else None

    def _size(self, action: str, position: float, cash: float, book: dict, fee_rate: float) -> float:
        """Order amount by the shared rules, at the price the book gives for that amount."""
        if action == "stop":
            action = "close"
        buying = action == "buy" or (action in ("reverse", "close") and position < 0)
        levels = book["asks"] if buying else book["bids"]
        fallback = None if levels else self.market.last_price(self.settings.symbol)
        best = float(levels[0][0]) if levels else fallback
        amount = order_amount(action, position, cash, best, self.rules, fee_rate)
        for _ in range(4):
            # Deeper levels cost more: re-size at the average price of walking the current amount. Keeping
            # only smaller amounts keeps the order affordable (a smaller amount walks to a lower average).
            if amount == 0:
                break
            walked = book_price(levels, abs(amount), fallback)
            resized = order_amount(action, position, cash, walked, self.rules, fee_rate)
            if abs(resized) >= abs(amount):
                break
            amount = resized
        return amount

    def _cap_position(self, position: float, amount: float, cash: float, book: dict) -> float:
        limit = self.settings.max_position
        if limit is None:
            return amount
        mid = float(book["asks"][0][0]) if book.get("asks") else self.market.last_price(self.settings.symbol)
        equity = cash + position * mid
        most = limit * equity / mid
        target = max(-most, min(most, position + amount))
        return target - position if abs(position + amount) > most else amount

    def _apply(self, cid: str, execution: Execution, bar: datetime) -> None:
        """Record the outcome, the fill and every balance change in one transaction."""
        with self.ledger.transaction() as s:
            order = s.scalar(select(Order).where(Order.client_order_id == cid))
            bot = s.get(Bot, self.name)
            order.exchange_order_id = execution.exchange_order_id
            if execution.status != "filled":
                order.status, order.reason = "rejected", execution.reason
                self.ledger.record("rejected", f"{order.side} {order.amount:.10g} {order.symbol}: {execution.reason}",
                                   self.name, s)
                log.warning("%s: order rejected: %s", self.name, execution.reason)
            else:
                self._book_fill(s, order, bot, execution)
            if bot.last_bar is None or as_utc(bot.last_bar) < bar:
                bot.last_bar = bar
            s.add(Tick(bot=self.name, bar_time=bar, time=utcnow(), outcome=order.status, message=execution.reason))

    def _book_fill(self, s, order: Order, bot: Bot, execution: Execution, fill_time: datetime | None = None) -> None:
        market = self.market.rules(order.symbol)
        signed = execution.amount if order.side == "buy" else -execution.amount
        quote_flow = -signed * execution.price
        self._add_balance(s, market.base, signed)
        self._add_balance(s, market.quote, quote_flow)
        if execution.fee:
            self._add_balance(s, execution.fee_currency or market.quote, -execution.fee)
        fee_in_quote = execution.fee if (execution.fee_currency or market.quote) == market.quote \
            else execution.fee * execution.price
        if (execution.fee_currency or market.quote) == market.base:
            signed -= execution.fee
        before = bot.position or 0.0
        bot.position = before + signed
        if abs(bot.position) < 1e-12:
            bot.position = 0.0
        if bot.position == 0:
            bot.entry_price, bot.entry_bar = None, None
        elif before == 0 or (before > 0) != (bot.position > 0):  # opened or reversed: stops count from this fill
            bot.entry_price, bot.entry_bar = execution.price, order.bar_time
        bot.day_cash_flow = (bot.day_cash_flow or 0.0) + quote_flow - fee_in_quote
        order.status, order.amount = "filled", execution.amount
        s.add(Fill(order_id=order.id, client_order_id=order.client_order_id, bot=self.name, symbol=order.symbol,
                   side=order.side, amount=execution.amount, price=execution.price, fee=execution.fee,
                   fee_currency=execution.fee_currency or market.quote, bar_time=order.bar_time,
                   time=fill_time or self.clock()))
        log.info("%s: %s %s %.10g @ %.10g fee %.10g (%s)", self.name, order.action, order.side, execution.amount,
                 execution.price, execution.fee, order.client_order_id)

    @staticmethod
    def _add_balance(s, asset: str, delta: float) -> None:
        row = s.get(Balance, asset)
        if row is None:
            s.add(Balance(asset=asset, amount=delta, initial=0.0))
        else:
            row.amount += delta

    def reconcile(self) -> None:
        """Complete orders written as intents but never finished (a crash or an error mid-tick)."""
        self._reconcile_due = True
        for order in self.ledger.orders("intent"):
            if order.bot != self.name:
                continue
            request = OrderRequest(order.client_order_id, order.symbol, order.side, order.amount, 0.0,
                                   self.settings.fees, self.rules.slippage,
                                   allow_short=self.rules.direction != "long",
                                   base_available=max(self.ledger.bot(self.name).position, 0.0),
                                   quote_available=self.ledger.balances().get(
                                       self.market.rules(order.symbol).quote, 0.0))
            self.ledger.record("reconcile", f"completing order {order.client_order_id} left as an intent", self.name)
            log.warning("%s: reconciling order %s left as an intent", self.name, order.client_order_id)
            with ACCOUNT_LOCK:
                execution = self._execute(request)
                self._apply(order.client_order_id, execution, as_utc(order.bar_time))
        self._reconcile_due = False

    # ------------------------------------------------------------------ bookkeeping

    def _mark_bar(self, bar: datetime, outcome: str, message: str = "") -> None:
        self.ledger.mark_bar(self.name, bar, outcome, message)

    def _done(self, result: TickResult) -> TickResult:
        self.ledger.record_tick(self.name, result.bar_time, result.outcome, result.message)
        return result

    def _loss_limit_hit(self, candles: pd.DataFrame, state) -> bool:
        """Track the bot's profit since the UTC day began; halt (persisted) past the daily loss limit."""
        price = float(candles["close"].iloc[-1])
        today = self.clock().astimezone(UTC).date().isoformat()
        if self.settings.daily_loss_limit is None and state.day == today:
            return False  # nothing to check and nothing to write
        quote = self.market.rules(self.settings.symbol).quote
        with self.ledger.transaction() as s:
            bot = s.get(Bot, self.name)
            if bot.day != today:
                bot.day, bot.day_cash_flow = today, 0.0
                bot.day_start_value = bot.position * price
            limit = self.settings.daily_loss_limit
            if limit is None:
                return False
            profit = (bot.day_cash_flow or 0.0) + bot.position * price - (bot.day_start_value or 0.0)
            capital = (s.get(Balance, quote).amount if s.get(Balance, quote) else 0.0) - (bot.day_cash_flow or 0.0) \
                + (bot.day_start_value or 0.0)
            if profit < -limit * capital:
                bot.halted, bot.halted_reason = True, f"daily loss limit: {profit:.2f} {quote} today"
                self.ledger.record("halt", bot.halted_reason, self.name, s)
                log.error("%s: halted: %s", self.name, bot.halted_reason)
                return True
        return False
