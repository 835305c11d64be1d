"""An independent, deliberately plain bar-by-bar reading of the position rules, to check the engine against.

This module re-reads the rules written in ``systrade.positions`` (its module docstring) and
``/work/shared/DESIGN.md`` with a Python ``for`` loop over bars and plain floats. It does NOT import
``systrade`` or vectorbt: if the engine and this file agree on random inputs, two independent readings of
the rules agree.

Where the rules leave a detail open, the vectorbt convention the engine relies on is modelled and cited
(file:line in the vectorbt 1.2.0 Python/numba source; the Rust engine is a port of the same functions).

The rules, as implemented here:

* Direction. ``long`` trades only the long side, ``short`` only the short side, ``both`` both. If the
  strategy gave neither ``short_entries`` nor ``short_exits``, the short side mirrors the long side:
  short entries = exits, short exits = entries.
* Timing. A signal computed on bar t acts at bar t+1's open. A signal on the last bar never acts.
* Conflicts on one bar: long entry + long exit cancel, short entry + short exit cancel, long entry + short
  entry cancel. Then: flat -> a long entry buys, else a short entry sells short. Long -> a short entry
  reverses (close and open short in ONE order), else a long exit closes; a long entry is ignored. Short is
  the mirror image.
* Prices and fees. A buy fills at ``open * (1 + slippage)``, a sell at ``open * (1 - slippage)``;
  fee = ``fees * size * fill price``.
* Sizing of the side being opened, rounded DOWN to a multiple of ``granularity`` when one is set:

  - ``"all"``: all available cash, ``cash / (fill_price * (1 + fees))`` units;
  - ``percent``: ``size`` percent of the available cash, same formula;
  - ``amount``: ``size`` units;
  - ``value``: ``size / open`` units. vectorbt converts a value into units with the valuation price
    (``execute_order_nb``: ``order_size /= val_price``, vectorbt/portfolio/nb.py:443), and the engine passes
    ``val_price=open``: so a value order is priced at the bar's open *before* slippage.

  "Available cash" is the cash after closing the current position (on a reversal) and, when shorting
  from flat, the cash balance. vectorbt sizes a short "all" order (size=inf) as a sell for all *free*
  cash: ``execute_order_nb`` turns ``-inf`` into ``Percent`` 100% (nb.py:458) and ``sell_nb`` computes
  ``max_short_size = free_cash / (adj_price * (1 + fees))`` (nb.py:254); free cash equals cash whenever the position
  is flat or long, which is the only time a short is opened. So a short "all" sells short
  ``cash / (fill * (1 + fees))`` units: a short worth the whole account, 1x.
* Cash. A buy pays ``size * fill + fee``; a sell (also a short sale) receives ``size * fill - fee``, so
  the proceeds of a short sale are credited to cash and equity is ``cash + position * close`` with a
  negative position (vectorbt ``value = cash + assets * close``; ``debt`` and ``free_cash`` are only
  bookkeeping for the collateral check below).
* Cash limits (vectorbt conventions, documented at ``Order.size`` in vectorbt/portfolio/enums.py:1536:
  "Longs are limited by the current cash balance, while shorts are only limited if Order.lock_cash"):

  - a buy (a long entry, a cover, or the buy of a short -> long reversal) never spends more than the
    cash balance: if it cannot pay for the whole order it is filled partially, for
    ``cash / (fill * (1 + fees))`` units rounded down to the granularity (``allow_partial=True``, the
    vectorbt default, ``buy_nb`` nb.py:152-177). In the rare case that the account cannot afford to buy back a short
    that has run far against it, the cover is therefore partial and the rest of the short stays open;
  - a sell of a fixed ``amount``/``value`` short is not limited by cash (the engine does not set
    ``lock_cash``); "all"/percent shorts are limited by construction.
* Orders smaller than ``MIN_SIZE`` units are not placed (vectorbt's default ``portfolio.min_size=1e-8``,
  vectorbt/_settings.py:392, rejected as ``MinSizeNotReached`` in ``buy_nb``/``sell_nb``).
* Stops are fractions of the entry FILL price (the price including slippage, ``stop_entry_price=
  "fillprice"``, nb.py:2377), set when a position is opened or reversed and active from the bar AFTER that entry bar.
  Long: SL level ``entry * (1 - sl)``: if open <= level exit at open, elif low <= level exit at level;
  TP level ``entry * (1 + tp)``: if open >= level exit at open, elif high >= level exit at level. The SL
  is checked before the TP. Shorts are mirrored. The stop exit price gets slippage against the trade and
  is charged fees (``stop_exit_price="stopmarket"`` keeps the order's slippage, nb.py:1625; levels as in
  ``get_stop_price_nb``, nb.py:1861). A stop exit on bar i replaces whatever signal would have acted at bar i's open.
* Positions still open at the end are not closed.

Granularity and floats: "round down to a multiple of granularity" is read in decimal terms: 2.001 is a
multiple of 0.001 and stays 2.001, although the float ``2.001 / 0.001`` is 2000.9999999999998. A size
within float noise (1e-9 relative) of a multiple counts as that multiple. Closing orders are never
rounded: a close sells or buys back exactly the position held.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

MIN_SIZE = 1e-8
"""Smallest order in units; vectorbt's default ``portfolio.min_size`` (vectorbt/_settings.py)."""

_TIE = 1e-9
"""Relative distance to a granularity multiple below which a size counts as that multiple (float noise)."""


@dataclass(frozen=True)
class Fill:
    """One executed order."""

    bar: int
    side: str  # "buy" or "sell"
    size: float  # units, always positive
    price: float  # fill price, slippage included
    fee: float
    # open, close, reverse or stop, plus " partial" (cut to the cash) and " tie" (a size that float noise puts
    # on a granularity multiple, see the module docstring); informative only, not compared
    reason: str = field(default="", compare=False)


@dataclass
class Result:
    """What the reference simulation produced."""

    fills: list[Fill] = field(default_factory=list)
    equity: list[float] = field(default_factory=list)  # cash + position * close, per bar
    cash: list[float] = field(default_factory=list)
    position: list[float] = field(default_factory=list)


def _flags(values, n: int) -> list[bool]:
    if values is None:
        return [False] * n
    return [bool(v) for v in values]


class _Account:
    """Cash, position and the entry fill price of the open position, with the two order primitives."""

    def __init__(self, cash: float, fees: float, slippage: float, granularity: float | None, result: Result):
        self.cash = float(cash)
        self.position = 0.0
        self.entry_price: float | None = None
        self.fees = fees
        self.slippage = slippage
        self.granularity = granularity
        self.result = result

    # -- rounding -------------------------------------------------------------------------------------
    def on_multiple(self, units: float) -> bool:
        """Whether ``units`` is, up to float noise, a multiple of the granularity."""
        g = self.granularity
        if g is None or units <= 0:
            return False
        q = units / g
        return abs(q - round(q)) <= _TIE * max(1.0, abs(q))

    def round_down(self, units: float) -> float:
        """Round ``units`` down to a multiple of the granularity (decimal reading, see module docstring)."""
        g = self.granularity
        if g is None or units <= 0:
            return units
        if self.on_multiple(units):
            return round(units / g) * g
        return math.floor(units / g) * g

    # -- prices ---------------------------------------------------------------------------------------
    def buy_price(self, price: float) -> float:
        return price * (1 + self.slippage)

    def sell_price(self, price: float) -> float:
        return price * (1 - self.slippage)

    def affordable(self, fill: float) -> float:
        """Units a buy at ``fill`` can pay for with the whole cash balance (rounded down)."""
        if self.cash <= 0:
            return 0.0
        return self.round_down(self.cash / (fill * (1 + self.fees)))

    # -- orders ---------------------------------------------------------------------------------------
    def buy(self, bar: int, units: float, price: float, reason: str) -> float:
        """Buy ``units`` at ``price`` (before slippage), partially if cash is short. Returns units bought."""
        fill = self.buy_price(price)
        if units * fill * (1 + self.fees) > self.cash:
            affordable = self.affordable(fill)
            if affordable < units:
                units, reason = affordable, reason + " partial"
                if self.on_multiple(self.cash / (fill * (1 + self.fees))):
                    reason += " tie"
        if units < MIN_SIZE:
            return 0.0
        fee = self.fees * units * fill
        cash = self.cash - (units * fill + fee)
        if abs(cash) <= _TIE * self.cash:  # spent all cash: drop the float noise (vectorbt's add_nb does too)
            cash = 0.0
        self.cash = cash
        self._move(units, fill)
        self.result.fills.append(Fill(bar, "buy", units, fill, fee, reason))
        return units

    def sell(self, bar: int, units: float, price: float, reason: str) -> float:
        """Sell (or sell short) ``units`` at ``price`` (before slippage). Returns units sold."""
        if units < MIN_SIZE:
            return 0.0
        fill = self.sell_price(price)
        fee = self.fees * units * fill
        self.cash += units * fill - fee
        self._move(-units, fill)
        self.result.fills.append(Fill(bar, "sell", units, fill, fee, reason))
        return units

    def _move(self, delta: float, fill: float) -> None:
        before = self.position
        after = before + delta
        if abs(after) <= _TIE * max(abs(before), abs(delta)):
            after = 0.0  # a full close: no float dust
        self.position = after
        if after == 0:
            self.entry_price = None
        elif before == 0 or (before > 0) != (after > 0):
            self.entry_price = fill  # opened or reversed: stops measured from this fill price


def _stop_exit_price(position: float, entry: float, o: float, h: float, lo: float,
                     stop_loss: float | None, take_profit: float | None) -> float | None:
    """The price (before slippage) at which a stop closes the position on this bar, or None."""
    if position > 0:
        if stop_loss is not None:
            level = entry * (1 - stop_loss)
            if o <= level:
                return o
            if lo <= level:
                return level
        if take_profit is not None:
            level = entry * (1 + take_profit)
            if o >= level:
                return o
            if h >= level:
                return level
    elif position < 0:
        if stop_loss is not None:
            level = entry * (1 + stop_loss)
            if o >= level:
                return o
            if h >= level:
                return level
        if take_profit is not None:
            level = entry * (1 - take_profit)
            if o <= level:
                return o
            if lo <= level:
                return level
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
    slippage: float = 0.0,
    stop_loss: float | None = None,
    take_profit: float | None = None,
    cash: float = 10_000.0,
) -> Result:
    """Simulate one symbol bar by bar under the rules in the module docstring."""
    n = len(close)
    assert len(open_) == len(high) == len(low) == n
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
    acct = _Account(cash, fees, slippage, granularity, result)

    def new_units(bar: int, fill: float, available_cash: float) -> tuple[float, str]:
        """Size of the side being opened, rounded down to the granularity, and " tie" if it was on a multiple."""
        if size == "all":
            raw = available_cash / (fill * (1 + fees))
        elif size_type == "percent":
            raw = size / 100.0 * available_cash / (fill * (1 + fees))
        elif size_type == "amount":
            raw = float(size)
        elif size_type == "value":
            raw = size / open_[bar]  # valued at the unslipped open (val_price=open)
        else:
            raise ValueError(size_type)
        raw = max(raw, 0.0)
        return acct.round_down(raw), " tie" if acct.on_multiple(raw) else ""

    def close_position(bar: int, price: float, reason: str) -> None:
        if acct.position > 0:
            acct.sell(bar, acct.position, price, reason)
        else:
            acct.buy(bar, -acct.position, price, reason)

    for i in range(n):
        o, h, lo = open_[i], high[i], low[i]
        stop_price = None
        if acct.position != 0 and acct.entry_price is not None:
            stop_price = _stop_exit_price(acct.position, acct.entry_price, o, h, lo, stop_loss, take_profit)
        if stop_price is not None:
            close_position(i, stop_price, "stop")  # a stop replaces any signal acting at this bar's open
        elif i > 0:
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
                    cash_after_close = acct.cash + held * fill * (1 - fees)
                    units, tie = new_units(i, fill, cash_after_close)
                    acct.sell(i, held + units, o, "reverse" + tie)
                elif lx:
                    close_position(i, o, "close")
            elif acct.position < 0:
                if le:  # reverse: buy back the short and the new long in one order
                    fill = acct.buy_price(o)
                    owed = -acct.position
                    cash_after_close = acct.cash - owed * fill * (1 + fees)
                    units, tie = new_units(i, fill, max(cash_after_close, 0.0))
                    acct.buy(i, owed + units, o, "reverse" + tie)  # capped by cash: may only partly cover
                elif sx:
                    close_position(i, o, "close")
            else:
                if le:
                    units, tie = new_units(i, acct.buy_price(o), acct.cash)
                    acct.buy(i, units, o, "open" + tie)
                elif se:
                    units, tie = new_units(i, acct.sell_price(o), acct.cash)
                    acct.sell(i, units, o, "open" + tie)
        result.cash.append(acct.cash)
        result.position.append(acct.position)
        result.equity.append(acct.cash + acct.position * close[i])
    return result
