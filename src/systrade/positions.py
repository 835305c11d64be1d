"""Position rules: the single home of what signals mean as orders, for backtest and live alike.

The rules (see docs/semantics.md):

* A signal on bar t is acted on at bar t+1's open (``to_fill_bars``). Nothing fills at a close.
* ``direction`` long trades only the long side, short only the short side, both trades both and
  an opposite entry reverses the position in one order. A strategy that gives only entries/exits
  is symmetric: its exits are short entries and its entries short exits.
* An entry while already in that direction is ignored (no pyramiding). An entry and an exit of
  the same side on one bar cancel out, and so do a long and a short entry.
* Sizing: ``all`` uses all available cash; otherwise ``size`` in ``amount`` (units), ``value``
  (quote currency) or ``percent`` (of available cash, 0-100], rounded down to ``granularity``.
* Fees are a fraction of traded value per fill; slippage moves every fill price against the trade.
* Stops are fractions of the entry fill price, checked from the bar after the entry against each
  bar's high/low; a bar that opens beyond the stop exits at its open. A stop exit wins over a
  signal acted on at the same bar's open.

The backtest maps these rules onto vectorbt (``vectorbt_order_args``); the live path applies
``decide`` to the last closed bar. Both read them from here.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

from systrade.errors import UserError

SIZE_TYPES = ("percent", "amount", "value")
DIRECTIONS = ("long", "short", "both")


@dataclass(frozen=True)
class PositionRules:
    """How signals become orders: direction, sizing, costs and stops."""

    direction: str = "long"
    size: float | Literal["all"] = "all"
    size_type: str = "percent"
    granularity: float | None = None
    fees: float = 0.0
    slippage: float = 0.0
    stop_loss: float | None = None
    take_profit: float | None = None

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise UserError(f"direction {self.direction!r} is not valid; use long, short or both")
        if self.size_type not in SIZE_TYPES:
            raise UserError(f"size type {self.size_type!r} is not valid; use percent, amount or value")
        if self.size != "all":
            if not isinstance(self.size, (int, float)) or not math.isfinite(self.size) or self.size <= 0:
                raise UserError(f"size {self.size!r} is not valid; use `all` or a positive number")
            if self.size_type == "percent" and self.size > 100:
                raise UserError(f"size {self.size}% is more than 100%; use a percent in (0, 100]")
            if self.size_type == "percent" and self.direction == "both":
                raise UserError("percent sizing cannot reverse a position in one order; with "
                                "--direction both use --size all or --size-type amount/value")
        for name in ("fees", "slippage"):
            value = getattr(self, name)
            if not 0 <= value < 1:
                raise UserError(f"{name} {value} is not a fraction in [0, 1); e.g. 0.001 means 0.1%")
        for name in ("stop_loss", "take_profit"):
            value = getattr(self, name)
            if value is not None and not 0 < value < (1 if name == "stop_loss" else math.inf):
                raise UserError(f"{name.replace('_', '-')} {value} is not valid; give a positive "
                                "fraction of the entry price, e.g. 0.05 for 5%")
        if self.granularity is not None and not self.granularity > 0:
            raise UserError(f"granularity {self.granularity} is not valid; give a positive number, "
                            "e.g. 1 for whole shares")

    def to_dict(self) -> dict:
        return asdict(self)


def resolve_signals(arrays: dict[str, np.ndarray | None], direction: str) -> dict[str, np.ndarray]:
    """Apply the direction rule: which signal columns trade, and mirroring of long-only strategies.

    ``arrays`` holds the strategy's columns, None for a column it did not give.
    """
    long_entries = arrays["entries"]
    none = np.zeros_like(long_entries, dtype=bool)
    long_exits = arrays["exits"] if arrays.get("exits") is not None else none
    if arrays.get("short_entries") is None and arrays.get("short_exits") is None:
        short_entries, short_exits = long_exits, long_entries
    else:
        short_entries = arrays["short_entries"] if arrays.get("short_entries") is not None else none
        short_exits = arrays["short_exits"] if arrays.get("short_exits") is not None else none
    if direction == "long":
        short_entries, short_exits = none, none
    elif direction == "short":
        long_entries, long_exits = none, none
    return {"entries": long_entries, "exits": long_exits,
            "short_entries": short_entries, "short_exits": short_exits}


def to_fill_bars(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Move each signal from bar t (where it was computed) to bar t+1 (where it fills, at the open)."""
    shifted = {}
    for name, values in arrays.items():
        out = np.zeros_like(values, dtype=bool)
        out[1:] = values[:-1]
        shifted[name] = out
    return shifted


def decide(position: float, long_entry: bool, long_exit: bool, short_entry: bool, short_exit: bool) -> str:
    """What the signals of one bar do to a position: ``buy``, ``sell``, ``close``, ``reverse`` or ``hold``.

    ``buy``/``sell`` open a long/short from flat; ``close`` flattens; ``reverse`` flattens and opens
    the opposite side in one order. Mirrors the conflict rules the backtest engine applies.
    """
    if long_entry and long_exit:
        long_entry = long_exit = False
    if short_entry and short_exit:
        short_entry = short_exit = False
    if long_entry and short_entry:
        long_entry = short_entry = False
    if position > 0:
        if short_entry:
            return "reverse"
        return "close" if long_exit else "hold"
    if position < 0:
        if long_entry:
            return "reverse"
        return "close" if short_exit else "hold"
    if long_entry:
        return "buy"
    if short_entry:
        return "sell"
    return "hold"


def vectorbt_order_args(rules: PositionRules) -> dict:
    """The ``Portfolio.from_signals`` arguments that implement ``rules`` (prices are added by the engine)."""
    if rules.size == "all":
        size, size_type = np.inf, "amount"
    elif rules.size_type == "percent":
        size, size_type = float(rules.size) / 100.0, "percent"
    else:
        size, size_type = float(rules.size), rules.size_type
    args = dict(
        size=size,
        size_type=size_type,
        fees=rules.fees,
        slippage=rules.slippage,
        size_granularity=rules.granularity,
        upon_long_conflict="ignore",
        upon_short_conflict="ignore",
        upon_dir_conflict="ignore",
        upon_opposite_entry="reverse",
        accumulate=False,
    )
    if rules.stop_loss is not None or rules.take_profit is not None:
        args.update(
            sl_stop=rules.stop_loss if rules.stop_loss is not None else np.nan,
            tp_stop=rules.take_profit if rules.take_profit is not None else np.nan,
            stop_entry_price="fillprice",
            stop_exit_price="stopmarket",
        )
    return args


def order_amount(action: str, position: float, cash: float, price: float, rules: PositionRules,
                 fee_rate: float) -> float:
    """Signed base amount (positive buys) that ``action`` trades at reference ``price``, as the backtest sizes it.

    ``price`` is the expected fill price before slippage. ``all`` and ``percent`` spend cash at the
    slipped price with fees included; ``value`` converts at ``price``; a buy never asks for more than
    the cash pays for (the backtest fills such an order partly). ``reverse`` closes and opens the
    other side with the cash the close leaves.
    """
    buy_price = price * (1 + rules.slippage)
    sell_price = price * (1 - rules.slippage)

    def opening_units(available: float, fill_price: float, buying: bool) -> float:
        if available <= 0:
            return 0.0
        affordable = available / (fill_price * (1 + fee_rate))
        if rules.size == "all":
            return affordable
        if rules.size_type == "percent":
            return affordable * float(rules.size) / 100.0
        wanted = float(rules.size) if rules.size_type == "amount" else float(rules.size) / price
        return min(wanted, affordable) if buying else wanted  # shorts are not capped by cash (no margin model)

    if action == "buy":
        return opening_units(cash, buy_price, True)
    if action == "sell":
        return -opening_units(cash, sell_price, False)
    if action == "close":
        return -position
    if action == "reverse":
        if position > 0:
            cash_after = cash + position * sell_price * (1 - fee_rate)
            return -position - opening_units(cash_after, sell_price, False)
        cash_after = cash + position * buy_price * (1 + fee_rate)
        return -position + opening_units(cash_after, buy_price, True)
    return 0.0


MIN_ORDER_SIZE = 1e-8
"""Orders smaller than this many units are not placed (vectorbt's default ``min_size``, which the engine keeps)."""

_MULTIPLE_TOLERANCE = 1e-9
"""Relative distance to a granularity multiple below which a size counts as that multiple (float noise)."""


def granular_amount(units: float, granularity: float | None) -> float:
    """``units`` (>= 0) rounded down to a multiple of ``granularity``, read in decimal terms.

    2.001 is a multiple of 0.001 and stays exactly 2.001 (although the float ``2.001 / 0.001`` is
    2000.9999999999998), so closing a position of whole lots sells exactly the position. Sizes
    below ``MIN_ORDER_SIZE`` become 0. This is the backtest's rounding restated per order (the engine
    trades whole lots of ``granularity``).

    >>> granular_amount(2.0019, 0.001), granular_amount(2.001, 0.001), granular_amount(7.9, 1)
    (2.001, 2.001, 7.0)
    """
    if not units > 0:
        return 0.0
    if granularity is not None:
        lots = units / granularity
        nearest = round(lots)
        if abs(lots - nearest) > _MULTIPLE_TOLERANCE * max(1.0, abs(lots)):
            units = float(math.floor(lots) * granularity)  # not on a multiple: round down
    return float(units) if units >= MIN_ORDER_SIZE else 0.0


def stop_levels(position: float, entry_price: float, stop_loss: float | None,
                take_profit: float | None) -> tuple[float | None, float | None]:
    """Stop-loss and take-profit price levels of an open position (None where that stop is not set).

    Levels are fractions of the entry fill price: a long's stop loss is ``entry * (1 - stop_loss)`` and its
    take profit ``entry * (1 + take_profit)``; a short's are mirrored.
    """
    sign = 1.0 if position > 0 else -1.0
    sl = entry_price * (1 - sign * stop_loss) if stop_loss is not None else None
    tp = entry_price * (1 + sign * take_profit) if take_profit is not None else None
    return sl, tp


def stop_exit(position: float, entry_price: float | None, open_: float, high: float, low: float,
              stop_loss: float | None, take_profit: float | None) -> tuple[str, float] | None:
    """Whether a stop closes ``position`` during one bar, and at what price (before slippage).

    Returns ``("stop_loss" | "take_profit", price)`` or None. The rules (docs/semantics.md): a bar that
    opens beyond a level exits at its open, otherwise a bar whose low/high reaches the level exits at
    the level; the stop loss is checked first, so a bar touching both levels exits at the stop loss. The
    caller checks only bars after the entry bar. With ``open_ = high = low = price`` this answers
    whether a trade at ``price`` is beyond a stop (a gap at the open).
    """
    if position == 0 or entry_price is None or (stop_loss is None and take_profit is None):
        return None
    sl, tp = stop_levels(position, entry_price, stop_loss, take_profit)
    if position > 0:
        if sl is not None:
            if open_ <= sl:
                return "stop_loss", open_
            if low <= sl:
                return "stop_loss", sl
        if tp is not None:
            if open_ >= tp:
                return "take_profit", open_
            if high >= tp:
                return "take_profit", tp
    else:
        if sl is not None:
            if open_ >= sl:
                return "stop_loss", open_
            if high >= sl:
                return "stop_loss", sl
        if tp is not None:
            if open_ <= tp:
                return "take_profit", open_
            if low <= tp:
                return "take_profit", tp
    return None
