"""One tick of one bot: closed candles -> strategy -> shared position rules -> broker -> ledger.

The order for a bar is decided exactly as the backtest decides it (``systrade.positions``):
the signal of the last closed bar acts now, at the next bar's open. Its client order id is
derived from bot and bar, written as an intent before the broker is called, and completed in
one transaction with the fill: a crash, a repeated tick or a restart cannot place it twice.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from systrade.config import BotSettings
from systrade.exchange import TransientDataError, describe_error, is_retryable
from systrade.live.broker import Execution, OrderRequest, book_price
from systrade.live.ledger import Balance, Bot, Fill, Ledger, Order, Tick, as_utc, client_order_id, utcnow
from systrade.live.market import MarketData
from systrade.positions import PositionRules, decide, order_amount, resolve_signals
from systrade.strategy import Strategy, StrategyRef, build_strategy, validate_signals

log = logging.getLogger("systrade.paper")
ACCOUNT_LOCK = threading.Lock()  # bots share one cash balance: size and fill one order at a time
DEFAULT_HISTORY = 250


@dataclass
class TickResult:
    bot: str
    outcome: str
    bar_time: datetime | None = None
    message: str = ""


class BotRunner:
    """Runs ticks for one configured bot."""

    def __init__(self, settings: BotSettings, ref: StrategyRef, ledger: Ledger, market: MarketData, broker) -> None:
        self.settings = settings
        self.strategy: Strategy = build_strategy(ref, settings.params)
        cls = ref.cls
        self.rules = PositionRules(direction=settings.direction or cls.direction, size=settings.size,
                                   size_type=settings.size_type, fees=settings.fees or 0.0,
                                   slippage=settings.slippage)
        if cls.stop_loss is not None or cls.take_profit is not None:
            from systrade.errors import UserError

            raise UserError(f"bot {settings.name}: strategy {cls.strategy_name()} uses stop_loss/take_profit, which "
                            "paper bots do not support yet; remove them or backtest only")
        self.history = settings.candles or (int(cls.warmup or 0) + DEFAULT_HISTORY)
        self.ledger = ledger
        self.market = market
        self.broker = broker
        ledger.ensure_bot(settings.name, cls.strategy_name(), settings.exchange, settings.symbol, settings.timeframe)

    @property
    def name(self) -> str:
        return self.settings.name

    def tick(self) -> TickResult:
        """Process the newest closed candle, if it is new. Exchange errors surface after the retry policy."""
        state = self.ledger.bot(self.name)
        if state.halted:
            return self._done(TickResult(self.name, "halted", message=state.halted_reason or "halted"))
        self.reconcile()
        candles = self.market.closed_candles(self.settings.symbol, self.settings.timeframe, self.history)
        if candles.empty:
            return self._done(TickResult(self.name, "skipped", message="no closed candles yet"))
        bar = candles.index[-1].to_pydatetime()
        if state.last_bar is not None and bar <= as_utc(state.last_bar):
            return TickResult(self.name, "no-new-bar", bar)
        arrays = validate_signals(self.strategy.signals(candles.copy()), candles, self.strategy.strategy_name())
        resolved = resolve_signals(arrays, self.rules.direction)
        action = decide(state.position, *(bool(resolved[k][-1]) for k in
                                          ("entries", "exits", "short_entries", "short_exits")))
        with ACCOUNT_LOCK:
            if self._loss_limit_hit(candles):
                return self._done(TickResult(self.name, "halted", bar, "daily loss limit reached"))
            if action == "hold":
                self._mark_bar(bar, "hold")
                return TickResult(self.name, "hold", bar)
            return self._trade(action, bar)

    # ------------------------------------------------------------------ orders

    def _trade(self, action: str, bar: datetime) -> TickResult:
        rules = self.market.rules(self.settings.symbol)
        fee_rate = rules.taker_fee if self.settings.fees is None else self.settings.fees
        balances = self.ledger.balances()
        cash = balances.get(rules.quote, 0.0)
        position = self.ledger.bot(self.name).position
        book = self.market.order_book(self.settings.symbol)
        amount = self._size(action, position, cash, book, fee_rate)
        amount = self._cap_position(position, amount, cash, book)
        if abs(amount) <= 0:
            self._mark_bar(bar, "hold", f"{action} sized to nothing")
            return TickResult(self.name, "hold", bar, f"{action} sized to nothing")
        request = OrderRequest(client_order_id(self.name, bar), self.settings.symbol, "buy" if amount > 0 else "sell",
                               abs(amount), 0.0, fee_rate, self.settings.slippage,
                               allow_short=self.rules.direction != "long", base_available=max(position, 0.0),
                               quote_available=cash)
        try:
            with self.ledger.transaction() as s:
                s.add(Order(client_order_id=request.client_order_id, bot=self.name, symbol=request.symbol,
                            side=request.side, amount=request.amount, bar_time=bar, action=action, status="intent",
                            created=utcnow()))
        except IntegrityError:  # this bar's order exists already: a repeated tick; reconcile, never resend
            self.reconcile()
            return TickResult(self.name, "duplicate", bar, "order for this bar exists")
        execution = self._execute(request, book)
        self._apply(request.client_order_id, execution, bar)
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

    def _size(self, action: str, position: float, cash: float, book: dict, fee_rate: float) -> float:
        """Order amount by the shared rules, at the price the book gives for that amount."""
        buying = action == "buy" or (action == "reverse" and position < 0) or (action == "close" and position < 0)
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

    def _book_fill(self, s, order: Order, bot: Bot, execution: Execution) -> None:
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
        bot.position = (bot.position or 0.0) + signed
        if abs(bot.position) < 1e-12:
            bot.position = 0.0
        bot.day_cash_flow = (bot.day_cash_flow or 0.0) + quote_flow - fee_in_quote
        order.status, order.amount = "filled", execution.amount
        s.add(Fill(order_id=order.id, client_order_id=order.client_order_id, bot=self.name, symbol=order.symbol,
                   side=order.side, amount=execution.amount, price=execution.price, fee=execution.fee,
                   fee_currency=execution.fee_currency or market.quote, bar_time=order.bar_time, time=utcnow()))
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
        for order in self.ledger.orders("intent"):
            if order.bot != self.name:
                continue
            request = OrderRequest(order.client_order_id, order.symbol, order.side, order.amount, 0.0,
                                   self.settings.fees, self.settings.slippage,
                                   allow_short=self.rules.direction != "long",
                                   base_available=max(self.ledger.bot(self.name).position, 0.0),
                                   quote_available=self.ledger.balances().get(
                                       self.market.rules(order.symbol).quote, 0.0))
            self.ledger.record("reconcile", f"completing order {order.client_order_id} left as an intent", self.name)
            log.warning("%s: reconciling order %s left as an intent", self.name, order.client_order_id)
            with ACCOUNT_LOCK:
                execution = self._execute(request)
                self._apply(order.client_order_id, execution, as_utc(order.bar_time))

    # ------------------------------------------------------------------ bookkeeping

    def _mark_bar(self, bar: datetime, outcome: str, message: str = "") -> None:
        with self.ledger.transaction() as s:
            bot = s.get(Bot, self.name)
            bot.last_bar = bar
            s.add(Tick(bot=self.name, bar_time=bar, time=utcnow(), outcome=outcome, message=message))

    def _done(self, result: TickResult) -> TickResult:
        self.ledger.record_tick(self.name, result.bar_time, result.outcome, result.message)
        return result

    def _loss_limit_hit(self, candles: pd.DataFrame) -> bool:
        """Track the bot's profit since the UTC day began; halt (persisted) past the daily loss limit."""
        price = float(candles["close"].iloc[-1])
        today = datetime.now(UTC).date().isoformat()
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
