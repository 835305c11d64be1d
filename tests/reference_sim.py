"""An independent, deliberately plain bar-by-bar reading of the fill model, to check the engine against.

This module re-reads the rules written in ``docs/semantics.md`` (the spec) with a Python ``for`` loop over
bars and plain floats. It does NOT import ``systrade``, numpy or vectorbt: if the engine and this file agree
on random inputs, two independent readings of the rules agree.

Where the spec leaves a sizing detail open, the vectorbt convention the engine has always followed is kept
and cited (file:line in the vectorbt 1.2.0 Python/numba source). The stop rules are this project's own and
are no longer vectorbt's (stops act from the entry bar, gaps through a stop exit at the open before the
signal's order, ticks, per-side fees, minimums).

The rules, as implemented here:

* Direction. ``long`` trades only the long side, ``short`` only the short side, ``both`` both. If the
  strategy gave neither ``short_entries`` nor ``short_exits``, the short side mirrors the long side:
  short entries = exits, short exits = entries.
* Timing. A signal computed on bar t acts at bar t+1's open. A signal on the last bar never acts.
* Conflicts on one bar: long entry + long exit cancel, short entry + short exit cancel, long entry + short
  entry cancel.
* Prices and fees. A buy fills at ``price * (1 + slippage)``, a sell at ``price * (1 - slippage)``, where
  price is the open or a stop's exit price. Buys pay ``fees``, sells (short sales included) pay
  ``sell_fees`` (``None``: the same as ``fees``); the fee of a fill is ``rate * size * fill price``,
  paid from cash.
* Cash. A buy pays ``size * fill + fee``; a sell (also a short sale) receives ``size * fill - fee``, so
  the proceeds of a short sale are credited to cash and equity is ``cash + position * close`` with a
  negative position (vectorbt ``value = cash + assets * close``).

The order of events in bar i (the same three steps as the spec):

1. **Stop at the open.** A position with an entry price whose stop-loss level the open has reached
   (long: ``open <= SL``; short: ``open >= SL``) exits at the open, reason ``stop_loss``; otherwise, if the
   open has reached the take-profit level (long: ``open >= TP``; short: ``open <= TP``), it exits at the
   open, reason ``take_profit``.
2. **The signal's order at the open** (bar i > 0, from bar i-1's flags after direction, mirroring and
   conflicts), decided against the position held after step 1. Flat: a long entry buys, else a short entry
   sells short. Long: a short entry reverses (close and open short in ONE order), else a long exit closes;
   a long entry is ignored (no pyramiding). Short is the mirror image. A position stopped at the open is
   flat here: an exit does nothing and an opposite entry opens the new side.
3. **Stops inside the bar.** The position held after steps 1-2 (one entered at this very open included)
   is checked against the bar: long: ``low <= SL`` exits at ``min(SL, open)`` (``stop_loss``), elif
   ``high >= TP`` exits at ``TP`` (``take_profit``); short: ``high >= SL`` exits at ``max(SL, open)``, elif
   ``low <= TP`` exits at ``TP``. The stop loss is checked first (both inside one bar: stop loss, the
   pessimistic choice). At most one stop exit in this step; nothing re-enters after it in the same bar.

Stop exits are market orders at the exit price: slippage against the trade and the side's fee apply; they
close the whole position (buying back a short is capped by the cash like any buy, so a cover can be
partial).

Stop levels are fractions of the entry FILL price (slippage included), set when a position is opened or
reversed and kept while it is open (a partial cover keeps them): long ``SL = entry * (1 - stop_loss)``,
``TP = entry * (1 + take_profit)``; short ``SL = entry * (1 + stop_loss)``, ``TP = entry * (1 - take_profit)``.
With a ``tick``, each level is rounded to a multiple of the tick AWAY from the entry (a stop is never
tighter than asked): long SL and short TP down, long TP and short SL up, with the decimal reading below.

Sizes of the side being opened, rounded DOWN to a multiple of the lot ``granularity`` when one is set:

- ``"all"``: all available cash, ``cash / (fill * (1 + rate))`` units, ``rate`` being ``fees`` for a buy
  and ``sell_fees`` for a short sale;
- ``percent``: ``size`` percent of the available cash, same formula;
- ``amount``: ``size`` units;
- ``value``: ``size / open`` units. vectorbt converts a value into units with the valuation price
  (``execute_order_nb``: ``order_size /= val_price``, vectorbt/portfolio/nb.py:443), and the engine has
  always passed ``val_price=open``: a value order is priced at the bar's open *before* slippage.

"Available cash" is the cash balance, or on a reversal the cash the close leaves: long -> short
``cash + held * fill * (1 - sell_fees)``, short -> long ``cash - owed * fill * (1 + fees)``. A short "all"
sells short ``cash / (fill * (1 + sell_fees))`` units, a 1x short worth the account: vectorbt sizes a
short "all" order (size=-inf) as a sell for all *free* cash, ``execute_order_nb`` turning ``-inf`` into
``Percent`` 100% (nb.py:458) and ``sell_nb`` computing ``max_short_size = free_cash / (adj_price * (1 +
fees))`` (nb.py:254), with free cash = cash whenever a short is opened (flat or long).

Cash limits (vectorbt conventions, documented at ``Order.size`` in vectorbt/portfolio/enums.py:1536:
"Longs are limited by the current cash balance, while shorts are only limited if Order.lock_cash"):

- a buy (a long entry, a cover, a stop exit of a short, or the buy of a short -> long reversal) never
  spends more than the cash balance: if it cannot pay for the whole order it is filled partially, for
  ``cash / (fill * (1 + fees))`` units rounded down to the lot (``allow_partial=True``, the vectorbt
  default, ``buy_nb`` nb.py:152-177). On a short -> long reversal, the opening part is sized (and capped)
  from the cash the close leaves;
- a sell of a fixed ``amount``/``value`` short is not limited by cash (no margin model); "all"/percent
  shorts are limited by construction.

Minimums. Every order, once its final size is known (lot rounding and cash cap applied), is checked, in
this order: a size below ``MIN_SIZE`` (vectorbt's default ``portfolio.min_size=1e-8``,
vectorbt/_settings.py:392), a lot rounding to 0 included, is skipped with reason ``no_cash`` when it is a
buy limited by the cash (sized from the cash, "all"/percent, or cut by the cash cap), else ``min_amount``;
a size below ``min_amount`` is skipped ``min_amount``; a value ``size * fill`` below ``min_cost`` is skipped
``min_cost``. A skipped order changes nothing (a skipped close or stop exit leaves the position open) and is
listed in ``Result.skipped`` with the size it would have had. A reversal first sizes its opening part; if
that part alone would be skipped, a ``Skip`` is recorded for it and the order becomes a plain close (which
is itself checked); otherwise the reversal is one order of ``held + units``.

Lots and floats: "round down to a multiple of the lot" is read in decimal terms: 2.001 is a multiple of
0.001 and stays 2.001, although the float ``2.001 / 0.001`` is 2000.9999999999998. A size within float
noise (1e-9 relative) of a multiple counts as that multiple; the same holds for stop levels and the tick.
Closing orders are never rounded: a close sells or buys back exactly the position held (a partial cover is
rounded down to the lot).

Positions still open at the end are not closed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

MIN_SIZE = 1e-8
"""Smallest order in units; vectorbt's default ``portfolio.min_size`` (vectorbt/_settings.py)."""

_TIE = 1e-9
"""Relative distance to a lot or tick multiple below which a number counts as that multiple (float noise)."""


@dataclass(frozen=True)
class Fill:
    """One executed order."""

    bar: int
    side: str  # "buy" or "sell"
    size: float  # units, always positive
    price: float  # fill price, slippage included
    fee: float
    # open, close, reverse, stop_loss or take_profit, plus " partial" (cut to the cash) and " tie" (a size or a
    # stop level that float noise puts on a lot or tick multiple, see the module docstring); informative
    # only, not compared
    reason: str = field(default="", compare=False)


@dataclass(frozen=True)
class Skip:
    """An order that was not placed."""

    bar: int
    reason: str  # "min_amount", "min_cost" or "no_cash"
    size: float  # units the order would have had (after lot rounding and the cash cap)


@dataclass
class Result:
    """What the reference simulation produced."""

    fills: list[Fill] = field(default_factory=list)
    equity: list[float] = field(default_factory=list)  # cash + position * close, per bar
    cash: list[float] = field(default_factory=list)
    position: list[float] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)


def _flags(values, n: int) -> list[bool]:
    if values is None:
        return [False] * n
    return [bool(v) for v in values]


def _on_multiple(x: float, step: float | None) -> bool:
    """Whether ``x`` is, up to float noise, a multiple of ``step``."""
    if step is None or x <= 0:
        return False
    q = x / step
    return abs(q - round(q)) <= _TIE * max(1.0, abs(q))


def _round_down(x: float, step: float | None) -> float:
    """``x`` rounded down to a multiple of ``step`` (decimal reading, see module docstring)."""
    if step is None or x <= 0:
        return x
    if _on_multiple(x, step):
        return round(x / step) * step
    return math.floor(x / step) * step


def _round_up(x: float, step: float | None) -> float:
    """``x`` rounded up to a multiple of ``step`` (decimal reading, see module docstring)."""
    if step is None or x <= 0:
        return x
    if _on_multiple(x, step):
        return round(x / step) * step
    return math.ceil(x / step) * step


class _Account:
    """Cash, position, entry price and stop levels of the open position, with the two order primitives."""

    def __init__(self, cash: float, *, fees: float, sell_fees: float, slippage: float,
                 granularity: float | None, min_amount: float | None, min_cost: float | None,
                 tick: float | None, stop_loss: float | None, take_profit: float | None, result: Result):
        self.cash = float(cash)
        self.position = 0.0
        self.entry_price: float | None = None
        self.sl_level: float | None = None
        self.tp_level: float | None = None
        self.sl_tie = self.tp_tie = False  # the level was rounded onto a tick multiple through float noise
        self.fees = fees
        self.sell_fees = sell_fees
        self.slippage = slippage
        self.granularity = granularity
        self.min_amount = min_amount
        self.min_cost = min_cost
        self.tick = tick
        self.stop_loss = stop_loss
        self.take_profit = take_profit
        self.result = result

    # -- prices ---------------------------------------------------------------------------------------
    def buy_price(self, price: float) -> float:
        return price * (1 + self.slippage)

    def sell_price(self, price: float) -> float:
        return price * (1 - self.slippage)

    def affordable(self, fill: float, cash: float | None = None) -> float:
        """Units a buy at ``fill`` can pay for with ``cash`` (default: the balance), rounded down to the lot."""
        cash = self.cash if cash is None else cash
        if cash <= 0:
            return 0.0
        return _round_down(cash / (fill * (1 + self.fees)), self.granularity)

    # -- minimums -------------------------------------------------------------------------------------
    def refusal(self, units: float, fill: float, *, cash_limited: bool) -> str | None:
        """Why an order of ``units`` at ``fill`` is not placed, or None if it is."""
        if units < MIN_SIZE:
            return "no_cash" if cash_limited else "min_amount"
        if self.min_amount is not None and units < self.min_amount:
            return "min_amount"
        if self.min_cost is not None and units * fill < self.min_cost:
            return "min_cost"
        return None

    def skip(self, bar: int, reason: str, units: float) -> None:
        self.result.skipped.append(Skip(bar, reason, units))

    # -- orders ---------------------------------------------------------------------------------------
    def buy(self, bar: int, units: float, price: float, reason: str, *, from_cash: bool = False) -> bool:
        """Buy ``units`` at ``price`` (before slippage), partially if cash is short. Returns whether it filled.

        ``from_cash``: the size was computed from the cash ("all"/percent), so a zero size means no cash.
        """
        fill = self.buy_price(price)
        cash_limited = from_cash
        if units * fill * (1 + self.fees) > self.cash:
            affordable = self.affordable(fill)
            if affordable < units:
                units, reason, cash_limited = affordable, reason + " partial", True
                if self.cash > 0 and _on_multiple(self.cash / (fill * (1 + self.fees)), self.granularity):
                    reason += " tie"
        why = self.refusal(units, fill, cash_limited=cash_limited)
        if why is not None:
            self.skip(bar, why, units)
            return False
        fee = self.fees * units * fill
        cash = self.cash - (units * fill + fee)
        if abs(cash) <= _TIE * self.cash:  # spent all cash: drop the float noise
            cash = 0.0
        self.cash = cash
        self._move(units, fill)
        self.result.fills.append(Fill(bar, "buy", units, fill, fee, reason))
        return True

    def sell(self, bar: int, units: float, price: float, reason: str) -> bool:
        """Sell (or sell short) ``units`` at ``price`` (before slippage). Returns whether it filled."""
        fill = self.sell_price(price)
        why = self.refusal(units, fill, cash_limited=False)
        if why is not None:
            self.skip(bar, why, units)
            return False
        fee = self.sell_fees * units * fill
        self.cash += units * fill - fee
        self._move(-units, fill)
        self.result.fills.append(Fill(bar, "sell", units, fill, fee, reason))
        return True

    def close_position(self, bar: int, price: float, reason: str) -> bool:
        """Close the whole position at ``price`` (before slippage); a cover is capped by the cash."""
        if self.position > 0:
            return self.sell(bar, self.position, price, reason)
        return self.buy(bar, -self.position, price, reason)

    def _move(self, delta: float, fill: float) -> None:
        before = self.position
        after = before + delta
        if abs(after) <= _TIE * max(abs(before), abs(delta)):
            after = 0.0  # a full close: no float dust
        self.position = after
        if after == 0:
            self.entry_price = self.sl_level = self.tp_level = None
            self.sl_tie = self.tp_tie = False
        elif before == 0 or (before > 0) != (after > 0):
            self._set_levels(fill, long=after > 0)  # opened or reversed: stops measured from this fill

    def _set_levels(self, entry: float, *, long: bool) -> None:
        self.entry_price = entry
        self.sl_level = self.tp_level = None
        self.sl_tie = self.tp_tie = False
        tick = self.tick
        if self.stop_loss is not None:
            if long:  # below the entry: round down
                raw = entry * (1 - self.stop_loss)
                self.sl_level = _round_down(raw, tick)
            else:  # above the entry: round up
                raw = entry * (1 + self.stop_loss)
                self.sl_level = _round_up(raw, tick)
            self.sl_tie = _on_multiple(raw, tick)
        if self.take_profit is not None:
            if long:  # above the entry: round up
                raw = entry * (1 + self.take_profit)
                self.tp_level = _round_up(raw, tick)
            else:  # below the entry: round down
                raw = entry * (1 - self.take_profit)
                self.tp_level = _round_down(raw, tick)
            self.tp_tie = _on_multiple(raw, tick)

    # -- stops ----------------------------------------------------------------------------------------
    def stop_at_open(self, o: float) -> str | None:
        """Step 1: the reason (``stop_loss`` / ``take_profit``) if the open has reached a level, else None."""
        if self.position == 0 or self.entry_price is None:
            return None
        sl, tp = self.sl_level, self.tp_level
        sl_reason = "stop_loss" + (" tie" if self.sl_tie else "")
        tp_reason = "take_profit" + (" tie" if self.tp_tie else "")
        if self.position > 0:
            if sl is not None and o <= sl:
                return sl_reason
            if tp is not None and o >= tp:
                return tp_reason
        else:
            if sl is not None and o >= sl:
                return sl_reason
            if tp is not None and o <= tp:
                return tp_reason
        return None

    def stop_in_bar(self, o: float, h: float, lo: float) -> tuple[float, str] | None:
        """Step 3: (exit price before slippage, reason) if the bar reaches a level, else None."""
        if self.position == 0 or self.entry_price is None:
            return None
        sl, tp = self.sl_level, self.tp_level
        if self.position > 0:
            if sl is not None and lo <= sl:
                return min(sl, o), "stop_loss" + (" tie" if self.sl_tie else "")
            if tp is not None and h >= tp:
                return tp, "take_profit" + (" tie" if self.tp_tie else "")
        else:
            if sl is not None and h >= sl:
                return max(sl, o), "stop_loss" + (" tie" if self.sl_tie else "")
            if tp is not None and lo <= tp:
                return tp, "take_profit" + (" tie" if self.tp_tie else "")
        return None


def simulate_reference(
    open_: list[float],
    high: list[float],
    low: list[float],
    close: list[float],
    entries,
    exits=None,
    short_entries=None,
    short_exits=None,
    *,
    direction: str = "long",
    size: float | str = "all",
    size_type: str = "percent",
    granularity: float | None = None,
    fees: float = 0.0,
    sell_fees: float | None = None,
    slippage: float = 0.0,
    stop_loss: float | None = None,
    take_profit: float | None = None,
    min_amount: float | None = None,
    min_cost: float | None = None,
    tick: float | None = None,
    cash: float = 10_000.0,
) -> Result:
    """Simulate one symbol bar by bar under the rules in the module docstring."""
    n = len(close)
    assert len(open_) == len(high) == len(low) == n
    if sell_fees is None:
        sell_fees = fees
    long_entries = _flags(entries, n)
    long_exits = _flags(exits, n)
    if short_entries is None and short_exits is None:
        s_entries, s_exits = list(long_exits), list(long_entries)  # a long-only strategy is symmetric
    else:
        s_entries, s_exits = _flags(short_entries, n), _flags(short_exits, n)
    if direction == "long":
        s_entries, s_exits = [False] * n, [False] * n
    elif direction == "short":
        long_entries, long_exits = [False] * n, [False] * n
    elif direction != "both":
        raise ValueError(direction)

    result = Result()
    acct = _Account(cash, fees=fees, sell_fees=sell_fees, slippage=slippage, granularity=granularity,
                    min_amount=min_amount, min_cost=min_cost, tick=tick, stop_loss=stop_loss,
                    take_profit=take_profit, result=result)
    from_cash = size == "all" or size_type == "percent"  # sized from the cash balance

    def new_units(bar: int, fill: float, available_cash: float, rate: float) -> tuple[float, str]:
        """Size of the side being opened, rounded down to the lot, and " tie" if it was on a multiple."""
        if size == "all":
            raw = available_cash / (fill * (1 + rate))
        elif size_type == "percent":
            raw = size / 100.0 * available_cash / (fill * (1 + rate))
        elif size_type == "amount":
            raw = float(size)
        elif size_type == "value":
            raw = size / open_[bar]  # valued at the unslipped open (val_price=open)
        else:
            raise ValueError(size_type)
        raw = max(raw, 0.0)
        return _round_down(raw, granularity), " tie" if _on_multiple(raw, granularity) else ""

    for i in range(n):
        o, h, lo = open_[i], high[i], low[i]

        # 1. a gap through a stop: exit at the open
        reason = acct.stop_at_open(o)
        if reason is not None:
            acct.close_position(i, o, reason)

        # 2. the order of bar i-1's signals, against the position after step 1
        if i > 0:
            le, lx, se, sx = long_entries[i - 1], long_exits[i - 1], s_entries[i - 1], s_exits[i - 1]
            if le and lx:
                le = lx = False
            if se and sx:
                se = sx = False
            if le and se:
                le = se = False
            if acct.position > 0:
                if se:  # reverse: sell the long and the new short in one order
                    fill = acct.sell_price(o)
                    held = acct.position
                    cash_after_close = acct.cash + held * fill * (1 - sell_fees)
                    units, tie = new_units(i, fill, cash_after_close, sell_fees)
                    why = acct.refusal(units, fill, cash_limited=False)
                    if why is not None:  # the new side alone would not be placed: only close
                        acct.skip(i, why, units)
                        acct.close_position(i, o, "close")
                    else:
                        acct.sell(i, held + units, o, "reverse" + tie)
                elif lx:
                    acct.close_position(i, o, "close")
            elif acct.position < 0:
                if le:  # reverse: buy back the short and the new long in one order
                    fill = acct.buy_price(o)
                    owed = -acct.position
                    cash_after_close = acct.cash - owed * fill * (1 + fees)
                    units, tie = new_units(i, fill, max(cash_after_close, 0.0), fees)
                    cash_limited, partial = from_cash, ""
                    affordable = acct.affordable(fill, cash_after_close)
                    if units > affordable:  # the cash the close leaves pays for fewer units
                        units, cash_limited, partial = affordable, True, " partial"
                        tie = " tie" if cash_after_close > 0 and _on_multiple(
                            cash_after_close / (fill * (1 + fees)), granularity) else ""
                    why = acct.refusal(units, fill, cash_limited=cash_limited)
                    if why is not None:  # the new side alone would not be placed: only close
                        acct.skip(i, why, units)
                        acct.close_position(i, o, "close")
                    else:  # still capped by the cash as a whole (float noise only)
                        acct.buy(i, owed + units, o, "reverse" + partial + tie)
                elif sx:
                    acct.close_position(i, o, "close")
            else:
                if le:
                    units, tie = new_units(i, acct.buy_price(o), acct.cash, fees)
                    acct.buy(i, units, o, "open" + tie, from_cash=from_cash)
                elif se:
                    units, tie = new_units(i, acct.sell_price(o), acct.cash, sell_fees)
                    acct.sell(i, units, o, "open" + tie)

        # 3. stops inside the bar, for the position held now (one entered at this open included)
        stop = acct.stop_in_bar(o, h, lo)
        if stop is not None:
            acct.close_position(i, stop[0], stop[1])

        result.cash.append(acct.cash)
        result.position.append(acct.position)
        result.equity.append(acct.cash + acct.position * close[i])
    return result
