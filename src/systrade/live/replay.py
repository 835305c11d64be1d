"""Replay: drive the daemon's own tick code over historical candles with a simulated clock.

Nothing here decides an order. ``BotRunner.tick`` (signals, ``positions.decide``, ``order_amount``, stops,
ledger writes) runs exactly as in the daemon; only its surroundings are simulated:

* ``ReplayMarket`` has the interface of ``MarketData``. Its clock stands at the open of the bar after the
  last closed one; ``closed_candles`` serves the candles closed by then; the order book is one level of
  unlimited size at that next bar's open, so the paper broker fills at the next open with the slippage
  and fees of the backtest; amounts are rounded to the rules' granularity (round down to whole lots,
  closes exact) instead of an exchange's precision.
* The ledger is an in-memory SQLite database; the account starts with the backtest's cash.

No exchange and no network are involved.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from systrade.config import BotSettings
from systrade.live.broker import PaperBroker
from systrade.live.ledger import Ledger, as_utc
from systrade.live.market import MarketRules
from systrade.live.runner import BotRunner
from systrade.live.status import exit_reason
from systrade.sim import kernel
from systrade.sim.rules import SIGNAL_COLUMNS, PositionRules
from systrade.strategy import StrategyRef

REPLAY_BOT = "replay"
TRADE_COLUMNS = ["direction", "entry_time", "entry_price", "exit_time", "exit_price", "size", "fees", "status",
                 "exit_reason"]


class ReplayMarket:
    """Historical candles served up to a simulated clock, with the interface of ``live.market.MarketData``."""

    def __init__(self, frame: pd.DataFrame, symbol: str, fee: float, granularity: float | None = None) -> None:
        self.frame = frame
        self.symbol = symbol
        base, _, quote = symbol.partition("/")
        self._rules = MarketRules(symbol, base or symbol, quote or "QUOTE", fee, None, None)
        self.granularity = granularity
        self.opens = frame["open"].to_numpy(dtype=float)
        self.times = frame.index
        step = frame.index[-1] - frame.index[-2] if len(frame) > 1 else pd.Timedelta(0)
        self._end = frame.index[-1] + step
        self.closed = 0  # bars closed at the simulated clock

    def advance(self, closed: int) -> None:
        """Move the clock to the moment bar ``closed - 1`` has closed (the open of bar ``closed``)."""
        self.closed = closed

    def now(self) -> datetime:
        """The simulated clock: the next bar's open time."""
        stamp = self.times[self.closed] if self.closed < len(self.times) else self._end
        return stamp.to_pydatetime()

    def next_open(self) -> float:
        if self.closed >= len(self.opens):
            raise RuntimeError("the replay has no bar after the last one to fill an order at")
        return float(self.opens[self.closed])

    # ---- the MarketData interface
    def rules(self, symbol: str) -> MarketRules:
        return self._rules

    def amount_to_precision(self, symbol: str, amount: float) -> float:
        return kernel.lot_floor(amount, self.granularity or 0.0)

    def server_time_ms(self) -> int:
        return int(pd.Timestamp(self.now()).value // 1_000_000)

    def closed_candles(self, symbol: str, timeframe: str, count: int) -> pd.DataFrame:
        return self.frame.iloc[max(0, self.closed - count):self.closed]

    def order_book(self, symbol: str) -> dict:
        level = [[self.next_open(), math.inf]]
        return {"bids": level, "asks": level}

    def last_price(self, symbol: str) -> float:
        return self.next_open()

    def conversion_price(self, asset: str, quote: str) -> float | None:
        return None  # one market only (the paper broker charges fees in its quote currency anyway)


class PortfolioReplayMarket:
    """Several symbols' candles served up to one simulated clock (a bot trading them together): the clock walks
    the union of their times; each symbol's closed candles and next open are its own ``ReplayMarket``'s."""

    def __init__(self, frames: dict[str, pd.DataFrame], fee: float, granularity: float | None = None) -> None:
        self.markets = {symbol: ReplayMarket(frame, symbol, fee, granularity) for symbol, frame in frames.items()}
        frames_list = list(frames.values())
        index = frames_list[0].index
        for frame in frames_list[1:]:
            index = index.union(frame.index)
        self.times = index
        step = index[-1] - index[-2] if len(index) > 1 else pd.Timedelta(0)
        self._end = index[-1] + step
        self.closed = 0

    def advance(self, closed: int) -> None:
        """Move the clock to the open of union bar ``closed``: each symbol has closed the candles opened before."""
        self.closed = closed
        now = pd.Timestamp(self.now())
        for market in self.markets.values():
            market.advance(int(market.times.searchsorted(now, side="left")))

    def now(self) -> datetime:
        stamp = self.times[self.closed] if self.closed < len(self.times) else self._end
        return stamp.to_pydatetime()

    def rules(self, symbol: str) -> MarketRules:
        return self.markets[symbol].rules(symbol)

    def amount_to_precision(self, symbol: str, amount: float) -> float:
        return self.markets[symbol].amount_to_precision(symbol, amount)

    def server_time_ms(self) -> int:
        return int(pd.Timestamp(self.now()).value // 1_000_000)

    def closed_candles(self, symbol: str, timeframe: str, count: int) -> pd.DataFrame:
        return self.markets[symbol].closed_candles(symbol, timeframe, count)

    def order_book(self, symbol: str) -> dict:
        return self.markets[symbol].order_book(symbol)

    def last_price(self, symbol: str) -> float:
        return self.markets[symbol].last_price(symbol)

    def conversion_price(self, asset: str, quote: str) -> float | None:
        return None


@dataclass
class ReplayResult:
    """What the daemon's tick code did over the candles."""

    symbol: str
    timeframe: str
    bars: int
    history: int
    initial_cash: float
    fills: pd.DataFrame  # time (fill bar), side, size, price, fee, action, reason, signal_bar
    trades: pd.DataFrame  # TRADE_COLUMNS
    signals: dict[str, np.ndarray]  # per bar: the resolved signals the tick acted on
    outcomes: dict[str, int]
    rejections: list[str]
    errors: list[str]
    final_cash: float
    final_position: float
    final_equity: float
    seconds: float

    @property
    def bars_per_second(self) -> float:
        return self.bars / self.seconds if self.seconds > 0 else math.inf


def replay_bot_settings(strategy_name: str, symbol: str | list[str], timeframe: str, rules: PositionRules,
                        params: dict | None = None, history: int | None = None) -> BotSettings:
    """Settings of the one bot a replay runs when no configured bot is named (``symbol``: a list for a strategy
    trading several symbols together)."""
    market = {"symbols": symbol} if isinstance(symbol, list) else {"symbol": symbol}
    return BotSettings(name=REPLAY_BOT, strategy=strategy_name, params=params or {}, exchange="replay",
                       **market, timeframe=timeframe, size=rules.size, size_type=rules.size_type,
                       direction=rules.direction, slippage=rules.slippage, fees=rules.fees, candles=history)


def replay(ref: StrategyRef, frame: pd.DataFrame, bot: BotSettings, rules: PositionRules, cash: float,
           warmup: int | None = None, market: ReplayMarket | None = None,
           on_bar: Callable[[int, int], None] | None = None) -> ReplayResult:
    """Run ``BotRunner.tick`` once per bar of ``frame``, as the daemon would after each candle closes.

    The tick after bar i acts on bar i's signals at bar i+1's open; the last bar has no next bar, so it is
    only checked for stop exits (as in the backtest, its signals do nothing). ``bot`` carries the strategy
    parameters, history length and risk settings; ``rules`` the position rules (the backtest's).
    """
    market = market or ReplayMarket(frame, bot.symbol, rules.fees if bot.fees is None else bot.fees,
                                    rules.granularity)
    ledger = Ledger("sqlite://")
    ledger.ensure_account({market.rules(bot.symbol).quote: float(cash)})
    runner = BotRunner(bot, ref, ledger, market, PaperBroker(market), rules=rules, warmup=warmup, clock=market.now,
                       capital=float(cash))
    n = len(frame)
    signals = {k: np.zeros(n, dtype=bool) for k in SIGNAL_COLUMNS}

    def keep_signals(i: int) -> None:
        if runner.last_signals is not None:
            for k, value in runner.last_signals.items():
                signals[k][i] = value

    outcomes, errors, seconds = _tick_through(runner, market, frame.index, on_bar, keep_signals)
    fills = ledger_fills(ledger, frame.index)
    quote = market.rules(bot.symbol).quote
    final_cash = ledger.balances().get(quote, 0.0)
    position = ledger.bot(bot.name).position
    rejections = [f"{as_utc(o.bar_time)}: {o.action} {o.side} {o.amount:.10g}: {o.reason}"
                  for o in ledger.orders("rejected")]
    return ReplayResult(
        symbol=bot.symbol, timeframe=bot.timeframe, bars=n, history=runner.history, initial_cash=float(cash),
        fills=fills, trades=trades_from_fills(fills), signals=signals, outcomes=dict(outcomes),
        rejections=rejections, errors=errors, final_cash=final_cash, final_position=position,
        final_equity=final_cash + position * float(frame["close"].iloc[-1]), seconds=seconds)


def replay_together(ref: StrategyRef, frames: dict[str, pd.DataFrame], bot: BotSettings, rules: PositionRules,
                    cash: float, warmup: int | None = None,
                    on_bar: Callable[[int, int], None] | None = None) -> dict[str, ReplayResult]:
    """``replay`` of a bot trading several symbols together (``GroupRunner``): one tick per bar of the union of
    their times, one cash; a result per symbol (its fills and trades; cash and equity are the bot's)."""
    from systrade.live.group import GroupRunner

    market = PortfolioReplayMarket(frames, rules.fees if bot.fees is None else bot.fees, rules.granularity)
    ledger = Ledger("sqlite://")
    quote = market.rules(bot.symbol).quote
    ledger.ensure_account({quote: float(cash)})
    runner = GroupRunner(bot, ref, ledger, market, PaperBroker(market), rules=rules, warmup=warmup,
                         clock=market.now, capital=float(cash))
    n = len(market.times)
    outcomes, errors, seconds = _tick_through(runner, market, market.times, on_bar)
    final_cash = float(ledger.bot(bot.name).cash or 0.0)
    equity = final_cash + sum(ledger.bot(leg.name).position * float(frames[leg.settings.symbol]["close"].iloc[-1])
                              for leg in runner.legs)
    rejections = [f"{as_utc(o.bar_time)}: {o.symbol} {o.action} {o.side} {o.amount:.10g}: {o.reason}"
                  for o in ledger.orders("rejected")]
    results = {}
    for leg in runner.legs:
        symbol = leg.settings.symbol
        fills = ledger_fills(ledger, market.times, symbol)
        results[symbol] = ReplayResult(
            symbol=symbol, timeframe=bot.timeframe, bars=n, history=runner.history, initial_cash=float(cash),
            fills=fills, trades=trades_from_fills(fills), signals={}, outcomes=dict(outcomes), rejections=rejections,
            errors=errors, final_cash=final_cash, final_position=ledger.bot(leg.name).position, final_equity=equity,
            seconds=seconds)
    return results


def _tick_through(runner, market, times, on_bar: Callable[[int, int], None] | None,
                  after_tick: Callable[[int], None] | None = None) -> tuple[Counter[str], list[str], float]:
    """Advance the simulated clock bar by bar and tick ``runner`` after each close, as the daemon would; the last
    bar is only checked for stops. Returns the tick outcomes, the failed ticks (skipped, as the daemon's
    ``safe_tick`` does) and the seconds taken."""
    n = len(times)
    outcomes: Counter[str] = Counter()
    errors: list[str] = []
    quiet = logging.getLogger("systrade.paper")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # rejections are reported in the result, not logged per bar
    started = time.perf_counter()
    try:
        for i in range(n):
            market.advance(i + 1)
            if i == n - 1:
                runner.settle_stops()
                break
            runner.last_signals = None
            try:
                result = runner.tick()
            except Exception as error:
                errors.append(f"bar {times[i]}: {type(error).__name__}: {error}")
                outcomes["error"] += 1
            else:
                outcomes[result.outcome] += 1
            if after_tick is not None:
                after_tick(i)
            if on_bar is not None:
                on_bar(i + 1, n)
    finally:
        quiet.setLevel(level)
    return outcomes, errors, time.perf_counter() - started


def ledger_fills(ledger: Ledger, index: pd.DatetimeIndex, symbol: str | None = None) -> pd.DataFrame:
    """The ledger's fills with the bar each one filled in (from its fill time on the simulated clock); only
    ``symbol``'s when given."""
    actions = {o.client_order_id: (o.action, o.reason) for o in ledger.orders()}
    rows = []
    for f in ledger.fills():
        if symbol is not None and f.symbol != symbol:
            continue
        moment = pd.Timestamp(as_utc(f.time))
        position = int(index.searchsorted(moment, side="right")) - 1
        action, reason = actions.get(f.client_order_id, ("", ""))
        rows.append((index[max(position, 0)], f.side, f.amount, f.price, f.fee, action, reason,
                     pd.Timestamp(as_utc(f.bar_time))))
    return pd.DataFrame(rows, columns=["time", "side", "size", "price", "fee", "action", "reason", "signal_bar"])


def trades_from_fills(fills: pd.DataFrame) -> pd.DataFrame:
    """Round trips from a list of fills, as the backtest lists them (exit trades).

    A fill against the open trade closes it (partly, if smaller); what is left of a larger fill (a reversal)
    opens a trade the other way at the same price. Fees are split by size. ``exit_reason`` is the backtest's:
    ``signal``, ``reverse``, ``stop_loss``, ``take_profit`` from the closing order, ``open`` while not closed.
    """
    trades: list[dict] = []
    current: dict | None = None
    for fill in fills.itertuples(index=False):
        size, sign = float(fill.size), (1.0 if fill.side == "buy" else -1.0)
        fee_per_unit = float(fill.fee) / size if size else 0.0
        if current is not None and (sign > 0) == (current["direction"] == "long"):  # adding to the trade
            total = current["size"] + size
            current["entry_price"] = (current["entry_price"] * current["size"] + fill.price * size) / total
            current["size"], current["fees"] = total, current["fees"] + float(fill.fee)
            continue
        if current is not None:
            closing = size if size < current["size"] * (1 - 1e-9) else current["size"]
            trades.append({**current, "size": closing, "exit_time": fill.time, "exit_price": float(fill.price),
                           "fees": current["fees"] * closing / current["size"] + fee_per_unit * closing,
                           "status": "closed", "exit_reason": exit_reason(fill.action, fill.reason) or fill.action})
            left = current["size"] - closing
            current = {**current, "size": left, "fees": current["fees"] * left / current["size"]} if left > 0 else None
            size -= closing
            if size <= 1e-9 * closing:
                continue
        current = {"direction": "long" if sign > 0 else "short", "entry_time": fill.time,
                   "entry_price": float(fill.price), "size": size, "fees": fee_per_unit * size}
    if current is not None:
        trades.append({**current, "exit_time": pd.NaT, "exit_price": math.nan, "status": "open", "exit_reason": "open"})
    frame = pd.DataFrame(trades, columns=TRADE_COLUMNS)
    for column in ("entry_time", "exit_time"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame
