"""One tick of one bot: closed candles -> strategy -> the fill model's steps -> broker -> ledger.

Everything about an order is decided by the fill model (``systrade.sim.kernel``), the very functions a
backtest runs, in the order of events of docs/semantics.md. The tick after bar t closes:

1. checks bar t (and any bar since the last tick) against the open position's stops (step 3 of those bars,
   and step 1 of bars whose open no tick saw): a reached level is a fill at that level inside that bar;
2. checks the price at hand, bar t+1's open, against the stops (step 1): a crossed level exits now;
3. decides bar t's signals against the position left (``kernel.decide``), sizes the order with the fill
   model (lot, the bot's own cash, minimums) and sends it (step 2).

When ticks were missed (the daemon was down), the signals of the bars no tick saw are walked with
``kernel.decide`` from the position held, and one order at today's prices takes the bot to the position the
strategy holds now; it is recorded as late, and a ``missed`` event names the bars.

Each bot trades its own capital: it sizes from its own cash, and every fill moves both its cash and the
account's balances (which stay the sum of truth).

The order's client order id is derived from bot and bar, written as an intent before the broker is called,
and completed in one transaction with the fill: a crash, a repeated tick or a restart cannot place it twice.
A tick completes every intent left before it (by a crash or a failed tick) before it reads the bot's position
or cash, so it never decides from a position that an order already in flight is about to change. A fill is
logged only once its transaction has committed. A halted bot opens nothing, but its stops and exits still
execute.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from systrade.config import BotSettings
from systrade.data import calendars
from systrade.data.calendars import calendar_name, session_candles
from systrade.data.load import attach_inputs
from systrade.data.timeframes import timeframe_seconds
from systrade.errors import UserError
from systrade.exchange import TransientDataError, describe_error, is_retryable
from systrade.live.broker import Execution, OrderRequest, book_price
from systrade.live.ledger import Balance, Bot, Fill, Ledger, Order, Tick, as_utc, client_order_id, utcnow
from systrade.live.market import MarketData
from systrade.live.notify import Notice
from systrade.sim import kernel
from systrade.sim.rules import SIGNAL_COLUMNS, PositionRules, params_vector, resolve_signals
from systrade.strategy import Strategy, StrategyRef, build_strategy, call_signals

log = logging.getLogger("systrade.paper")
# Bots share one account's balances: size and fill one order at a time (re-entrant: a tick holding it may
# complete an intent it meets on the way).
ACCOUNT_LOCK = threading.RLock()
DEFAULT_HISTORY = 250
LISTED_MISSED = 5  # a missed-candles message lists every bar up to this many, else the first and the last
MARKET_CLOSED = "the market is closed"  # how a pending order's reason starts (sent or filled at the next open)


@dataclass
class TickResult:
    bot: str
    outcome: str
    bar_time: datetime | None = None
    message: str = ""
    failed: bool = False  # the tick raised (exchange unavailable after retries, or a bug): the bar was not processed


class BotRunner:
    """Runs ticks for one configured bot.

    ``rules`` overrides the position rules built from the bot's settings (the replay passes the backtest's);
    ``warmup`` is a measured history length (``systrade.checks.warmup``) used when it exceeds the strategy's
    declared ``warmup``; ``clock`` gives "now" (the replay's simulated clock; default: the system clock);
    ``capital`` is the bot's share of the account (``config.allocate_capital`` over every configured bot;
    default: as if it were the only bot).
    """

    def __init__(self, settings: BotSettings, ref: StrategyRef, ledger: Ledger, market: MarketData, broker,
                 rules: PositionRules | None = None, warmup: int | None = None,
                 clock: Callable[[], datetime] | None = None, capital: float | None = None) -> None:
        self.settings = settings
        self.strategy: Strategy = build_strategy(ref, settings.params)
        cls = ref.cls
        self.rules = rules or bot_rules(settings, cls)
        self.market_fees = rules is None and settings.fees is None  # fees from the market's taker fee
        if self.has_stops and not getattr(broker, "supports_stops", False):
            raise UserError(f"bot {settings.name}: strategy {cls.strategy_name()} uses stop_loss/take_profit, which "
                            "sandbox bots do not support (a stop fills inside a bar that has already closed); use "
                            "mode = \"paper\" or remove the stops")
        self.warmup = max(int(cls.warmup or 0), int(warmup or 0))
        self.history = settings.candles or (self.warmup + DEFAULT_HISTORY)
        self.clock = clock or utcnow
        self.last_signals: dict[str, bool] | None = None  # the newest bar's resolved signals (for replays)
        self._reconcile_due = True  # intents can only be left by an earlier process or a tick that raised
        self._position_warned = 0.0  # the last difference between the broker's position and the ledger's
        self.notify: Callable[[Notice], None] | None = None  # the daemon's ``Notifier.publish``
        self._notices: list[Notice] = []  # what a transaction will tell once it has committed
        self.ledger = ledger
        self.market = market
        self.broker = broker
        self.calendar = calendar_name(settings.exchange)  # a stock market's: orders wait for its sessions
        if capital is None:
            capital = self._lone_capital()
        ledger.ensure_bot(settings.name, cls.strategy_name(), settings.exchange, settings.symbol, settings.timeframe,
                          capital)

    def _lone_capital(self) -> float:
        """The capital of a bot allocated on its own: its setting, else the ledger's, else all of its currency."""
        if self.settings.capital is not None:
            return float(self.settings.capital)
        balance = self.ledger.initial_balances().get(self.market.rules(self.settings.symbol).quote, 0.0)
        if self.settings.capital_fraction is not None:
            return self.settings.capital_fraction * balance
        existing = self.ledger.bot(self.name)
        return float(existing.capital) if existing is not None and existing.capital is not None else balance

    @property
    def has_stops(self) -> bool:
        return self.rules.stop_loss is not None or self.rules.take_profit is not None

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def asynchronous(self) -> bool:
        """Whether the broker's orders may stay open across ticks (a stock broker's paper account)."""
        return bool(getattr(self.broker, "asynchronous", False))

    def tick(self) -> TickResult:
        """Process the newest closed candle, if it is new. Exchange errors surface after the retry policy."""
        ready = self.prepare_tick()
        if isinstance(ready, TickResult):
            return ready
        candles, bar, state = ready
        arrays = call_signals(self.strategy, candles)
        with ACCOUNT_LOCK:
            decided = self.decide_bar(candles, arrays, bar, state)
            if isinstance(decided, TickResult):
                return decided
            return self._trade(decided[0], bar, decided[1])

    def prepare_tick(self):
        """Before the strategy runs: complete what earlier ticks left, fetch the closed candles; ``(candles, bar,
        state)``, or the TickResult that ends the tick here (no candles, no new bar, an order still open)."""
        if self._reconcile_due or self.asynchronous or self.calendar:
            self.reconcile()
        state = self.ledger.bot_state(self.name)  # after reconcile: a completed intent changes the position
        candles = self.market.closed_candles(self.settings.symbol, self.settings.timeframe, self.history)
        if self.calendar is not None:  # the session's bars only (no extended hours), as the store keeps them
            candles = session_candles(candles, self.calendar, self.settings.timeframe)
        declared = type(self.strategy).inputs
        if declared and "inputs" not in candles.attrs:  # the replay's candles carry them already
            attach_inputs(candles, {symbol: self.market.closed_candles(symbol, self.settings.timeframe, self.history)
                                    for symbol in declared})
        if candles.empty:
            return self._done(TickResult(self.name, "skipped", message="no closed candles yet"))
        bar = candles.index[-1].to_pydatetime()
        if state.last_bar is not None and bar <= as_utc(state.last_bar):
            return TickResult(self.name, "no-new-bar", bar)
        waiting = self._unfinished_order()
        if waiting is not None:  # never decide on top of an order the broker has not finished
            message = f"order {waiting.client_order_id} is still {waiting.status}; no new order until it is done"
            self._mark_bar(bar, "waiting", message)
            return TickResult(self.name, "waiting", bar, message)
        return candles, bar, state

    def decide_bar(self, candles: pd.DataFrame, arrays: dict[str, np.ndarray | None], bar: datetime, state):
        """Steps 1 and 3 of the stops, then the action the newest bar's signals (``arrays``, validated) ask for:
        ``(action, late)`` to trade, or the TickResult of a bar that trades nothing. Call it under ACCOUNT_LOCK."""
        resolved = resolve_signals(arrays, self.rules.direction)
        self.last_signals = {k: bool(resolved[k][-1]) for k in SIGNAL_COLUMNS}
        last_bar = as_utc(state.last_bar)
        stop_bar = None
        if self.has_stops:
            stop_bar = self._stops_in(candles, state)
            self._stop_at_price(bar)
        state = self.ledger.bot_state(self.name)
        action = kernel.decide(state.position, *self.last_signals.values())
        late = ""
        if last_bar is not None:
            action, late = self._catch_up(candles, resolved, last_bar, stop_bar, state.position, action)
        if state.halted or self._group_halted():
            if action not in (kernel.CLOSE, kernel.REVERSE):
                self._mark_bar(bar, "halted")
                return TickResult(self.name, "halted", bar, state.halted_reason or "halted")
            action = kernel.CLOSE  # a halted bot still exits, but opens nothing
        elif self._loss_limit_hit(candles, state):
            self._mark_bar(bar, "halted", "daily loss limit reached")
            return TickResult(self.name, "halted", bar, "daily loss limit reached")
        if action == kernel.HOLD:
            self._mark_bar(bar, "hold")
            return TickResult(self.name, "hold", bar)
        return action, late

    def _group_halted(self) -> bool:
        """Whether the bot this runner trades for is halted as a whole (a several-symbol bot's; see ``group``)."""
        return False

    # ------------------------------------------------------------------ missed candles

    def _catch_up(self, candles: pd.DataFrame, resolved: dict[str, np.ndarray], last_bar: datetime,
                  stop_bar: int | None, position: float, action: int) -> tuple[int, str]:
        """The action that takes the bot to the position its strategy holds now, when ticks were missed.

        The bars after ``last_bar`` and before the newest one never had their signals acted on; they are walked
        with ``kernel.decide`` (as the backtest would have, bar after bar) from the position held, starting at a
        stop that filled inside them, and the newest bar's signals act on the result. Returns ``action``
        unchanged when no bar was missed, and the reason that marks a late order (else "").
        """
        index = candles.index
        newest = len(index) - 1
        first = int(index.searchsorted(pd.Timestamp(last_bar), side="right"))
        missed = index[first:newest]
        earlier = 0  # missed bars older than the fetched history
        if first == 0:
            bar_seconds = timeframe_seconds(self.settings.timeframe)
            earlier = max(round((index[0] - pd.Timestamp(last_bar)).total_seconds() / bar_seconds) - 1, 0)
        count = len(missed) + earlier
        if count == 0:
            return action, ""
        self._record_missed(missed, count)
        start = max(first, stop_bar) if stop_bar is not None else first
        held = float(np.sign(position))
        walked, changed = held, None
        for i in range(start, newest):
            step = kernel.decide(walked, *(bool(resolved[k][i]) for k in SIGNAL_COLUMNS))
            if step != kernel.HOLD:
                walked, changed = _after(walked, step), i
        if changed is None:
            return action, ""
        target = _after(walked, kernel.decide(walked, *self.last_signals.values()))
        wanted = _transition(held, target)
        if wanted == action:
            return action, ""
        return wanted, f"late by {_bars(newest - changed)} (missed {_missed_text(missed, count)})"

    def _record_missed(self, missed: pd.DatetimeIndex, count: int) -> None:
        """A ``missed`` event naming the candles no tick processed (recorded whether or not an order follows)."""
        message = f"missed {_bars(count, 'candle')}: {_missed_text(missed, count)}"
        self.ledger.record("missed", message, self.name)
        log.warning("%s: %s", self.name, message)

    def settle_stops(self) -> bool:
        """Check the newest closed bars for stop exits without acting on signals (a replay's last bar)."""
        if self._reconcile_due:
            self.reconcile()
        state = self.ledger.bot_state(self.name)  # after reconcile, as in ``tick``
        if not self.has_stops:
            return False
        candles = self.market.closed_candles(self.settings.symbol, self.settings.timeframe, self.history)
        with ACCOUNT_LOCK:
            return not candles.empty and self._stops_in(candles, state) is not None

    # ------------------------------------------------------------------ the fill model

    def params(self) -> np.ndarray:
        """The fill model's parameters for this bot: its rules, completed by the market's (lot, tick, minimums,
        taker fee when the bot sets no fees)."""
        market = self.market.rules(self.settings.symbol)
        rules = self.rules
        rules = replace(rules, granularity=rules.granularity or market.lot, tick=rules.tick or market.tick,
                        min_amount=rules.min_amount or market.min_amount, min_cost=rules.min_cost or market.min_cost,
                        cost_step=rules.cost_step or market.cost_step)
        if self.market_fees:
            rules = replace(rules, fees=market.taker_fee, sell_fees=market.sell_fee)
        return params_vector(rules)

    def _model(self, position: float, entry_price: float | None, cash: float, params: np.ndarray):
        """The fill model's state for this bot: cash, position and stop levels (from the entry fill price)."""
        state = np.full((1, kernel.N_STATE), np.nan)
        state[0, kernel.X_POSITION] = position
        if position and entry_price is not None:
            kernel.set_stop_levels(state, 0, position > 0, float(entry_price), params)
        fills = np.zeros((4, kernel.N_FILL))
        skips = np.zeros((4, kernel.N_SKIP))
        return np.array([float(cash)]), state, fills, skips, np.zeros(3, dtype=np.int64)

    # ------------------------------------------------------------------ stops

    def _stops_in(self, candles: pd.DataFrame, state) -> int | None:
        """Record the first stop exit inside the closed bars no tick has checked yet; the index of its bar, if any.

        The bar after the last processed bar had its open checked by that tick (at the price then at hand), so
        only its low and high are checked (step 3); bars no tick saw get step 1 at their open as well.
        """
        if not state.position or state.entry_price is None:
            return None
        index = candles.index
        first = 0
        if state.last_bar is not None:
            first = int(index.searchsorted(pd.Timestamp(as_utc(state.last_bar)), side="right"))
        elif state.entry_bar is not None:
            first = int(index.searchsorted(pd.Timestamp(as_utc(state.entry_bar)), side="right"))
        params = self.params()
        opens, highs, lows = (candles[c].to_numpy(dtype=float) for c in ("open", "high", "low"))
        for i in range(first, len(index)):
            cash, model, fills, skips, counts = self._model(state.position, state.entry_price, self._cash(), params)
            if i > first or state.last_bar is None:
                kernel.gap_stop(cash, 0, model, 0, i, opens[i], params, fills, skips, counts)
            if not counts[kernel.C_FILLS]:
                kernel.bar_stop(cash, 0, model, 0, i, opens[i], highs[i], lows[i], params, fills, skips, counts)
            if counts[kernel.C_FILLS]:
                kind = kernel.FILL_KINDS[int(fills[0, kernel.F_KIND])]
                filled = self._stop_fill(index[i].to_pydatetime(), kind, fills[0, kernel.F_QUOTE], state.position,
                                         fills[0, kernel.F_SIZE], params)
                return i if filled else None
        return None

    def _stop_at_price(self, bar: datetime) -> bool:
        """Step 1 at the price at hand (the next bar's open): a position beyond a stop level exits now."""
        state = self.ledger.bot_state(self.name)
        if not state.position or state.entry_price is None:
            return False
        params = self.params()
        price = self._best(state.position < 0)
        cash, model, fills, skips, counts = self._model(state.position, state.entry_price, self._cash(), params)
        kernel.gap_stop(cash, 0, model, 0, 0, price, params, fills, skips, counts)
        if not counts[kernel.C_FILLS]:
            return False
        kind = kernel.FILL_KINDS[int(fills[0, kernel.F_KIND])]
        result = self._send("stop", kind, fills[0, kernel.F_SIDE] > 0, fills[0, kernel.F_SIZE], bar, params,
                            suffix="g")
        return result.outcome == "filled"

    def _stop_fill(self, bar: datetime, kind: str, price: float, position: float, amount: float,
                   params: np.ndarray) -> bool:
        """Fill a stop exit inside ``bar`` at ``price`` (before slippage): order, fill and balances in one
        transaction (nothing leaves the process, so no intent is needed); the client order id makes it once only."""
        side = "sell" if position > 0 else "buy"
        request = self._request(client_order_id(self.name, bar, "s"), side, amount, params, position)
        execution = self.broker.fill_at(request, price)
        fee_quote = self._fee_in_quote(execution) if execution.status == "filled" else 0.0
        self._notices = []
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
                    done = (logging.WARNING, f"{self.name}: {kind} exit rejected: {execution.reason}")
                else:
                    done = (logging.INFO, self._book_fill(s, order, bot, execution, fee_quote, fill_time=bar))
                s.add(Tick(bot=self.name, bar_time=bar, time=utcnow(), outcome=kind, message=execution.reason))
        except IntegrityError:  # recorded already (a repeated tick)
            return False
        log.log(*done)  # only now: the log never reports a fill that was rolled back
        self._tell()
        return execution.status == "filled"

    # ------------------------------------------------------------------ orders

    def _cash(self) -> float:
        """The bot's own cash (its capital, moved by its fills): what it sizes from."""
        return float(self.ledger.bot_state(self.name).cash or 0.0)

    def _wallet(self, s, bot: Bot) -> Bot:
        """The ledger row whose cash this runner's fills move: the bot's own."""
        return bot

    def _best(self, buying: bool, book: dict | None = None) -> float:
        """The best price a market order would meet now (the ticker's when the book side is empty)."""
        book = book if book is not None else self.market.order_book(self.settings.symbol)
        levels = book["asks"] if buying else book["bids"]
        return float(levels[0][0]) if levels else self.market.last_price(self.settings.symbol)

    def _request(self, cid: str, side: str, amount: float, params: np.ndarray, position: float) -> OrderRequest:
        fee_rate = params[kernel.P_BUY_FEE] if side == "buy" else params[kernel.P_SELL_FEE]
        return OrderRequest(cid, self.settings.symbol, side, float(amount), 0.0, float(fee_rate), self.rules.slippage,
                            allow_short=self.rules.direction != "long", base_available=max(position, 0.0),
                            quote_available=self._cash())

    def _size(self, action: int, params: np.ndarray, book: dict):
        """Size ``action`` with the fill model at the book's prices, from the bot's position and cash now: the fill
        model's fills, skips and counts."""
        state = self.ledger.bot_state(self.name)
        position, cash = state.position, self._cash()
        buying = action == kernel.BUY or (action in (kernel.CLOSE, kernel.REVERSE) and position < 0)
        levels = book["asks"] if buying else book["bids"]
        fallback = None if levels else self.market.last_price(self.settings.symbol)
        price = self._best(buying, book)
        for _ in range(4):
            # Deeper levels cost more: re-size at the average price of walking the current amount, keeping only
            # smaller amounts (a smaller amount walks to a lower average, so the order stays affordable).
            money, model, fills, skips, counts = self._model(position, state.entry_price, cash, params)
            kernel.signal_order(money, 0, model, 0, 0, price, action, params, fills, skips, counts)
            if not counts[kernel.C_FILLS]:
                break
            walked = book_price(levels, fills[counts[kernel.C_FILLS] - 1, kernel.F_SIZE], fallback)
            if walked == price or (walked < price) == buying:
                break
            price = walked
        return fills, skips, counts

    def _trade(self, action: int, bar: datetime, late: str = "") -> TickResult:
        """Step 2: size ``action`` with the fill model at the book's prices and send it (``late``: the reason a
        caught-up order gives)."""
        params = self.params()
        state = self.ledger.bot_state(self.name)
        position, cash = state.position, self._cash()
        book = self.market.order_book(self.settings.symbol)
        fills, skips, counts = self._size(action, params, book)
        if counts[kernel.C_SKIPS]:
            reason = kernel.SKIP_REASONS[int(skips[0, kernel.K_REASON])]
            self.ledger.record("skipped", f"{kernel.ACTIONS[action]} not placed: {reason} "
                               f"({skips[0, kernel.K_SIZE]:.10g} {self.settings.symbol})", self.name)
            if not counts[kernel.C_FILLS]:
                self._record_skipped(action, bar, float(skips[0, kernel.K_SIZE]), reason, position)
        if not counts[kernel.C_FILLS]:
            message = f"{kernel.ACTIONS[action]} sized to nothing" + (f" ({reason})" if counts[kernel.C_SKIPS] else "")
            self._mark_bar(bar, "skipped" if counts[kernel.C_SKIPS] else "hold", message)
            return TickResult(self.name, "skipped" if counts[kernel.C_SKIPS] else "hold", bar, message)
        fill = fills[counts[kernel.C_FILLS] - 1]
        is_buy = fill[kernel.F_SIDE] > 0
        amount = self._cap_position(position, fill[kernel.F_SIZE] * (1 if is_buy else -1), cash, book)
        if abs(amount) <= 0:
            self._mark_bar(bar, "hold", f"{kernel.ACTIONS[action]} capped to nothing by max_position")
            return TickResult(self.name, "hold", bar, "capped by max_position")
        kind = kernel.FILL_KINDS[int(fill[kernel.F_KIND])]  # a reversal whose new side is too small only closes
        return self._send("close" if kind == "close" else kernel.ACTIONS[action], late, is_buy, abs(amount), bar,
                          params, book=book)

    def _record_skipped(self, action: int, bar: datetime, amount: float, reason: str, position: float) -> None:
        """The order the fill model refused to place (under a minimum, no cash), listed with the bot's orders."""
        buying = action == kernel.BUY or (action in (kernel.CLOSE, kernel.REVERSE) and position < 0)
        market = self.market.rules(self.settings.symbol)
        reason = {"min_cost": f"min_cost: its value is under the market's minimum order of {market.min_cost:,.10g} "
                              f"{market.quote}" if market.min_cost else "min_cost",
                  "min_amount": f"min_amount: its amount is under the market's minimum of {market.min_amount:.10g} "
                                f"{market.base}" if market.min_amount else "min_amount",
                  "no_cash": f"no_cash: the bot's cash buys less than one lot of {self.settings.symbol}"}.get(reason,
                                                                                                       reason)
        try:
            with self.ledger.transaction() as s:
                s.add(Order(client_order_id=client_order_id(self.name, bar), bot=self.name,
                            symbol=self.settings.symbol, side="buy" if buying else "sell", amount=amount,
                            bar_time=bar, action=kernel.ACTIONS[action], status="skipped", reason=reason[:300],
                            created=utcnow()))
        except IntegrityError:  # this bar's order exists already (a repeated tick)
            pass

    def _resized(self, order: Order) -> float:
        """A pending order's amount sized again at the prices of the open it waited for (the backtest sizes at the
        next bar's open too); 0 when the fill model now sizes it to nothing."""
        if order.action not in kernel.ACTIONS:
            return order.amount
        action = kernel.ACTIONS.index(order.action)
        book = self.market.order_book(self.settings.symbol)
        fills, _, counts = self._size(action, self.params(), book)
        if not counts[kernel.C_FILLS]:
            return 0.0
        fill = fills[counts[kernel.C_FILLS] - 1]
        if (fill[kernel.F_SIDE] > 0) != (order.side == "buy"):
            return order.amount
        state = self.ledger.bot_state(self.name)
        signed = fill[kernel.F_SIZE] * (1 if order.side == "buy" else -1)
        return abs(self._cap_position(state.position, signed, self._cash(), book))

    def _send(self, action: str, reason: str, is_buy: bool, amount: float, bar: datetime, params: np.ndarray,
              book: dict | None = None, suffix: str = "") -> TickResult:
        """Write the intent, call the broker, book the outcome (the intent is completed later if this fails)."""
        position = self.ledger.bot_state(self.name).position
        request = self._request(client_order_id(self.name, bar, suffix) if suffix else client_order_id(self.name, bar),
                                "buy" if is_buy else "sell", amount, params, position)
        request.created, request.claimed = utcnow(), self._claimed(request.client_order_id)
        try:
            with self.ledger.transaction() as s:
                s.add(Order(client_order_id=request.client_order_id, bot=self.name, symbol=request.symbol,
                            side=request.side, amount=request.amount, bar_time=bar, action=action, status="intent",
                            reason=reason, created=request.created))
        except IntegrityError:  # this bar's order exists already: a repeated tick; reconcile, never resend
            self.reconcile()
            return TickResult(self.name, "duplicate", bar, "order for this bar exists")
        try:
            execution = self._execute(request, book)
            self._apply(request.client_order_id, execution, bar)
        except BaseException:
            self._reconcile_due = True  # the intent stays: the next tick completes it
            raise
        return TickResult(self.name, execution.status, bar, "; ".join(filter(None, (reason, execution.reason))))

    def _execute(self, request: OrderRequest, book: dict | None = None) -> Execution:
        """The broker's answer; an error that retrying cannot fix becomes a rejection, not a stuck intent.

        Exchange trouble (after the retry policy) propagates: the intent stays and is reconciled later.
        """
        if not self.asynchronous and self.calendar and not self._market_open():
            return Execution("pending", reason=f"{MARKET_CLOSED}; the order fills at the next session's open")
        try:
            return self.broker.execute(request, book)
        except Exception as error:
            if is_retryable(error) or isinstance(error, TransientDataError):
                raise
            reason = describe_error(error, self.settings.exchange)
            return Execution("rejected", reason=reason)

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
        """Record the outcome, the fill and every balance change in one transaction.

        A stock broker's order may be ``open`` (booked as far as it has filled), ``cancelled`` (the part filled
        before is booked), or ``pending`` (the market is closed: it stays an intent, sent at the next open).
        """
        booked = execution.status in ("filled", "open", "cancelled")
        fee_quote = self._fee_in_quote(execution) if booked and execution.amount > 0 else 0.0  # before: may ask
        self._notices = []
        with self.ledger.transaction() as s:
            order = s.scalar(select(Order).where(Order.client_order_id == cid))
            bot = s.get(Bot, self.name)
            order.exchange_order_id = execution.exchange_order_id or order.exchange_order_id
            lines = []
            if execution.status == "pending":
                order.reason = execution.reason[:300]
                self.ledger.record("pending", f"{order.side} {order.amount:.10g} {order.symbol}: {execution.reason}",
                                   self.name, s)
                lines.append((logging.INFO, f"{self.name}: order {cid} pending: {execution.reason}"))
            elif booked:
                lines += self._book_progress(s, order, bot, execution, fee_quote)
            else:
                order.status, order.reason = "rejected", execution.reason
                self.ledger.record("rejected", f"{order.side} {order.amount:.10g} {order.symbol}: {execution.reason}",
                                   self.name, s)
                lines.append((logging.WARNING, f"{self.name}: order rejected: {execution.reason}"))
                self._notices.append(Notice("rejected", f"{order.side} {order.amount:.10g} {order.symbol} rejected: "
                                            f"{execution.reason}; the bot keeps running", self.name, order.symbol,
                                            order.side, order.amount))
            if bot.last_bar is None or as_utc(bot.last_bar) < bar:
                bot.last_bar = bar
            outcome = "pending" if execution.status == "pending" else order.status
            s.add(Tick(bot=self.name, bar_time=bar, time=utcnow(), outcome=outcome,
                       message=(execution.reason or order.reason or "")[:500]))
        for line in lines:
            log.log(*line)  # only now: the log never reports a fill that was rolled back
        self._tell()

    def _book_progress(self, s, order: Order, bot: Bot, execution: Execution,
                       fee_quote: float) -> list[tuple[int, str]]:
        """Book what an order has filled since it was last booked (all of it for an exchange's market order, the
        new part for a broker's order filling in parts) and set its status; the lines to log. ``fee_quote`` is the
        value in quote of the order's whole fee so far."""
        lines = []
        before = s.scalar(select(Fill).where(Fill.order_id == order.id))
        done_amount = before.amount if before is not None else 0.0
        done_cost = done_amount * before.price if before is not None else 0.0
        done_fee = before.fee if before is not None else 0.0
        new = execution.amount - done_amount
        if new > 1e-12:
            price = (execution.amount * execution.price - done_cost) / new
            increment = replace(execution, status="filled", amount=new, price=price,
                                fee=max(execution.fee - done_fee, 0.0))
            fee_before = (before.fee_quote or 0.0) if before is not None else 0.0
            lines.append((logging.INFO, self._book_fill(s, order, bot, increment, max(fee_quote - fee_before, 0.0),
                                                        complete=execution.status == "filled")))
        order.filled = max(execution.amount, done_amount)
        if execution.status == "filled" and order.status != "filled":  # nothing new: the rest was booked before
            order.status, order.amount = "filled", order.filled
        elif execution.status == "open":
            order.status = execution.broker_status if execution.broker_status in ("submitted", "partial") else \
                "submitted"
        elif execution.status == "cancelled":
            order.status, order.reason = "cancelled", execution.reason[:300]
            message = (f"{order.side} {order.amount:.10g} {order.symbol}: {execution.reason}; "
                       f"{order.filled:.10g} filled")
            self.ledger.record("cancelled", message, self.name, s)
            lines.append((logging.WARNING, f"{self.name}: order {order.client_order_id} cancelled: {execution.reason}"
                                           f" ({order.filled:.10g} of {order.amount:.10g} filled)"))
        return lines

    def _fee_in_quote(self, execution: Execution) -> float:
        """The fee's value in the quote currency at fill time, paid in quote, base or a third currency (BNB).

        A third currency is valued at its own market (FEE/QUOTE, else QUOTE/FEE inverted), never at the traded
        symbol's price; when neither market exists the fee counts as 0 and an event says so.
        """
        market = self.market.rules(self.settings.symbol)
        currency = execution.fee_currency or market.quote
        if not execution.fee or currency == market.quote:
            return execution.fee
        if currency == market.base:
            return execution.fee * execution.price
        price = self.market.conversion_price(currency, market.quote)
        if price is None:
            message = (f"fee of {execution.fee:.10g} {currency} on {self.settings.symbol} could not be valued in "
                       f"{market.quote} (no {currency}/{market.quote} or {market.quote}/{currency} market); "
                       "counted as 0")
            self.ledger.record("fee", message, self.name)
            log.warning("%s: %s", self.name, message)
            return 0.0
        return execution.fee * price

    def _book_fill(self, s, order: Order, bot: Bot, execution: Execution, fee_quote: float,
                   fill_time: datetime | None = None, complete: bool = True) -> str:
        """Book a fill on the account (every currency it touches) and on the bot (position and cash); the line to
        log once the transaction has committed.

        A fee is counted once: in quote it leaves the cash, in base it leaves the position, in a third currency
        its quote value (``fee_quote``) leaves the bot's cash while the account pays it from that currency.
        """
        market = self.market.rules(order.symbol)
        currency = execution.fee_currency or market.quote
        signed = execution.amount if order.side == "buy" else -execution.amount
        quote_flow = -signed * execution.price
        self._add_balance(s, market.base, signed)
        self._add_balance(s, market.quote, quote_flow)
        if execution.fee:
            self._add_balance(s, currency, -execution.fee)
        cash_flow = quote_flow
        if currency == market.base:
            signed -= execution.fee
        else:
            cash_flow -= fee_quote
        before = bot.position or 0.0
        bot.position = before + signed
        if abs(bot.position) < 1e-12:
            bot.position = 0.0
        if bot.position == 0:
            bot.entry_price, bot.entry_bar = None, None
        elif before == 0 or (before > 0) != (bot.position > 0):  # opened or reversed: stops count from this fill
            bot.entry_price, bot.entry_bar = execution.price, order.bar_time
        wallet = self._wallet(s, bot)
        wallet.cash = (wallet.cash or 0.0) + cash_flow
        wallet.day_cash_flow = (wallet.day_cash_flow or 0.0) + cash_flow
        earlier = s.scalar(select(Fill).where(Fill.order_id == order.id)) if order.id is not None else None
        if earlier is None:
            s.add(Fill(order_id=order.id, client_order_id=order.client_order_id, bot=self.name, symbol=order.symbol,
                       side=order.side, amount=execution.amount, price=execution.price, fee=execution.fee,
                       fee_currency=currency, fee_quote=fee_quote, bar_time=order.bar_time,
                       time=fill_time or self.clock()))
        else:  # one fill row per order: a broker's order filling in parts grows it (average price, total fee)
            total = earlier.amount + execution.amount
            earlier.price = (earlier.amount * earlier.price + execution.amount * execution.price) / total
            earlier.amount, earlier.fee = total, earlier.fee + execution.fee
            earlier.fee_quote = (earlier.fee_quote or 0.0) + fee_quote
            earlier.time = fill_time or self.clock()
            if bot.entry_bar is not None and as_utc(bot.entry_bar) == as_utc(order.bar_time):
                bot.entry_price = earlier.price  # the position this order opened: its average price
        if complete:
            order.status, order.amount = "filled", (earlier.amount if earlier is not None else execution.amount)
        why = "" if order.action == order.side else f" to {order.reason or order.action}"  # close, reverse, stop
        pnl = bot.cash + bot.position * execution.price - bot.capital \
            if wallet is bot and bot.capital is not None else None
        self._notices.append(Notice(
            "fill", f"{'bought' if order.side == 'buy' else 'sold'} {execution.amount:.10g} {order.symbol} @ "
            f"{execution.price:.10g}{why}, fee {execution.fee:.10g} {currency}"
            + (f"; the bot's P&L {pnl:+,.2f} {market.quote}" if pnl is not None else ""),
            self.name, order.symbol, order.side, execution.amount, execution.price, execution.fee, currency, pnl,
            market.quote))
        return (f"{self.name}: {'bought' if order.side == 'buy' else 'sold'} {execution.amount:.10g} {order.symbol} @ "
                f"{execution.price:.10g}{why}, fee {execution.fee:.10g} {currency} (order {order.client_order_id})")

    @staticmethod
    def _add_balance(s, asset: str, delta: float) -> None:
        row = s.get(Balance, asset)
        if row is None:
            s.add(Balance(asset=asset, amount=delta, initial=0.0))
        else:
            row.amount += delta

    def reconcile(self) -> None:
        """Complete orders written as intents but never finished (a crash, an error mid-tick, or a broker's market
        closed when it was decided), and bring a broker's open orders up to date."""
        self._reconcile_due = True
        for order in self.ledger.orders():
            if order.bot != self.name or order.status not in ("intent", "submitted", "partial"):
                continue
            request = self._request(order.client_order_id, order.side, order.amount, self.params(),
                                    self.ledger.bot(self.name).position)
            request.created, request.broker_order_id = as_utc(order.created), order.exchange_order_id
            request.claimed = self._claimed(order.client_order_id)
            if order.status != "intent":  # sent: only ask the broker how far it has filled
                with ACCOUNT_LOCK:
                    execution = self.broker.refresh(request)
                    if execution is not None:
                        self._apply(order.client_order_id, execution, as_utc(order.bar_time))
                continue
            waited = order.reason.startswith(MARKET_CLOSED)
            if waited:  # decided after the close: sent at the open, sized at the open's prices
                if not self.asynchronous and not self._market_open():
                    continue
                with ACCOUNT_LOCK:
                    request.amount = self._resized(order)
                    if request.amount <= 0:
                        self._apply(order.client_order_id, Execution("rejected", reason="sized to nothing at the "
                                                                     "open's prices"), as_utc(order.bar_time))
                        continue
                    self.ledger.set_order_amount(order.client_order_id, request.amount)
            else:
                self.ledger.record("reconcile", f"completing order {order.client_order_id} left as an intent",
                                   self.name)
                log.warning("%s: reconciling order %s left as an intent", self.name, order.client_order_id)
            with ACCOUNT_LOCK:
                execution = self._execute(request)
                self._apply(order.client_order_id, execution, as_utc(order.bar_time))
        if self.asynchronous:
            self._compare_position()
        self._reconcile_due = False

    def _compare_position(self) -> None:
        """Warn (once per difference) when the broker's account holds another position in the symbol than the
        ledger's bots on it: shares bought or sold outside systrade, or a fill the ledger has not booked."""
        symbol = self.settings.symbol
        held = self.broker.position(symbol)
        booked = sum(b.position or 0.0 for b in self.ledger.bots()
                     if b.symbol == symbol and b.exchange == self.settings.exchange)
        difference = round(held - booked, 9)
        if difference and difference != self._position_warned:
            message = (f"the {self.settings.exchange} account holds {held:.10g} {symbol}, the ledger's bots "
                       f"{booked:.10g}: shares traded outside systrade are not this bot's, and are not traded by it")
            self.ledger.record("position", message, self.name)
            log.warning("%s: %s", self.name, message)
        self._position_warned = difference

    def _tell(self) -> None:
        """Publish what the transaction just committed (fills, rejections) to the notifier, if any."""
        notices, self._notices = self._notices, []
        if self.notify is not None:
            for notice in notices:
                self.notify(notice)

    def _market_open(self) -> bool:
        """Whether the bot's market trades now: by the broker's clock when it has one, else by the calendar at the
        market's time (always, for crypto)."""
        is_open = getattr(self.market, "market_open", None)
        if is_open is not None:
            return bool(is_open())
        if self.calendar is None:
            return True
        return calendars.is_open(self.calendar, pd.Timestamp(self.market.server_time_ms(), unit="ms", tz="UTC"))

    def _claimed(self, client_order_id: str) -> frozenset[str]:
        """The broker order ids of every other order in the ledger (never matched to this one)."""
        return frozenset(o.exchange_order_id for o in self.ledger.orders()
                         if o.exchange_order_id and o.client_order_id != client_order_id)

    def _unfinished_order(self) -> Order | None:
        """The bot's order a broker still has open (submitted or partly filled), if any."""
        return next((o for o in self.ledger.orders() if o.bot == self.name and (
            o.status in ("submitted", "partial") or (o.status == "intent" and o.reason.startswith(MARKET_CLOSED)))),
                    None)

    # ------------------------------------------------------------------ bookkeeping

    def _mark_bar(self, bar: datetime, outcome: str, message: str = "") -> None:
        self.ledger.mark_bar(self.name, bar, outcome, message)

    def _done(self, result: TickResult) -> TickResult:
        self.ledger.record_tick(self.name, result.bar_time, result.outcome, result.message)
        return result

    def _loss_limit_hit(self, candles: pd.DataFrame, state) -> bool:
        """Track the bot's profit since the UTC day began; halt (persisted) past the daily loss limit.

        Profit is the change of the bot's own equity (its cash and position): every fee counts once.
        """
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
            start_equity = (bot.cash or 0.0) - (bot.day_cash_flow or 0.0) + (bot.day_start_value or 0.0)
            if profit < -limit * start_equity:
                bot.halted, bot.halted_reason = True, f"daily loss limit: {profit:.2f} {quote} today"
                self.ledger.record("halt", bot.halted_reason, self.name, s)
                reason = bot.halted_reason
            else:
                return False
        log.error("%s: halted: %s", self.name, reason)
        if self.notify is not None:
            self.notify(Notice("halt", f"halted: {reason}; it opens nothing until `systrade paper resume "
                                       f"{self.name}`, its exits still run", self.name, self.settings.symbol))
        return True


def _after(sign: float, action: int) -> float:
    """The sign of the position ``action`` (from ``kernel.decide``) leaves."""
    if action == kernel.BUY:
        return 1.0
    if action == kernel.SELL:
        return -1.0
    if action == kernel.CLOSE:
        return 0.0
    if action == kernel.REVERSE:
        return -sign
    return sign


def _transition(held: float, target: float) -> int:
    """The one ``kernel.decide`` action that takes a position of sign ``held`` to sign ``target``."""
    if held == target:
        return kernel.HOLD
    if target == 0:
        return kernel.CLOSE
    if held == 0:
        return kernel.BUY if target > 0 else kernel.SELL
    return kernel.REVERSE


def _bars(count: int, word: str = "bar") -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def _missed_text(missed: pd.DatetimeIndex, count: int) -> str:
    """The missed candles by open time: all of them when few, else the first and the last."""
    stamps = [t.strftime("%Y-%m-%dT%H:%MZ") if t.second == 0 else t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in missed]
    earlier = count - len(stamps)
    if earlier == 0 and count <= LISTED_MISSED:
        return ", ".join(stamps)
    text = f"{stamps[0]} ... {stamps[-1]}" if stamps else "none in the fetched history"
    return text + f" ({_bars(count, 'candle')}" + (f", {earlier} before the fetched history)" if earlier else ")")


def bot_rules(settings: BotSettings, cls: type[Strategy], default_fees: float = 0.0) -> PositionRules:
    """A bot's position rules: its own settings, else its strategy's (direction, stops); ``default_fees`` when
    the bot sets none (the daemon then takes the market's taker fee instead, see ``BotRunner.market_fees``)."""
    def own(value, fallback):
        return fallback if value is None else value

    return PositionRules(direction=settings.direction or cls.direction, size=settings.size,
                         size_type=settings.size_type, fees=own(settings.fees, default_fees),
                         slippage=settings.slippage, stop_loss=own(settings.stop_loss, cls.stop_loss),
                         take_profit=own(settings.take_profit, cls.take_profit))
