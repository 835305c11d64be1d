"""Position rules: what a user sets about how signals become orders, and the market's rules.

``PositionRules`` holds direction, sizing, costs per side, stops and the market rules (lot, tick,
minimum amount and cost). ``params_vector`` turns it into the float vector the compiled fill model
(``systrade.sim.kernel``) reads; ``resolve_signals`` applies the direction rule to a strategy's columns.
docs/semantics.md is the full statement of the rules.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

from systrade.errors import UserError
from systrade.sim import kernel

SIZE_TYPES = kernel.SIZE_TYPES
DIRECTIONS = ("long", "short", "both")
SIGNAL_COLUMNS = ("entries", "exits", "short_entries", "short_exits")
"""A strategy's signal columns, in the order ``kernel.decide`` takes them."""


@dataclass(frozen=True)
class PositionRules:
    """How signals become orders: direction, sizing, costs per side, stops and the market's rules.

    ``granularity`` is the lot (amount step); ``sell_fees`` None means the same rate as ``fees``.
    """

    direction: str = "long"
    size: float | Literal["all"] = "all"
    size_type: str = "percent"
    granularity: float | None = None
    fees: float = 0.0
    slippage: float = 0.0
    stop_loss: float | None = None
    take_profit: float | None = None
    sell_fees: float | None = None
    min_amount: float | None = None
    min_cost: float | None = None
    tick: float | None = None
    cost_step: float | None = None  # market buys by cost, rounded down to this (Upbit KRW markets: 1 KRW)

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
        for name in ("fees", "slippage", "sell_fees"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < 1:
                raise UserError(f"{name.replace('_', '-')} {value} is not a fraction in [0, 1); "
                                "e.g. 0.001 means 0.1%")
        for name in ("stop_loss", "take_profit"):
            value = getattr(self, name)
            if value is not None and not 0 < value < (1 if name == "stop_loss" else math.inf):
                raise UserError(f"{name.replace('_', '-')} {value} is not valid; give a positive "
                                "fraction of the entry price, e.g. 0.05 for 5%")
        for name, example in (("granularity", "1 for whole shares"), ("tick", "0.01 for cents")):
            value = getattr(self, name)
            if value is not None and not (value > 0 and math.isfinite(value)):
                option = "lot" if name == "granularity" else name
                raise UserError(f"--{option} {value} is not valid; give a positive number, e.g. {example}")
        for name in ("min_amount", "min_cost"):
            value = getattr(self, name)
            if value is not None and not (value >= 0 and math.isfinite(value)):
                raise UserError(f"--{name.replace('_', '-')} {value} is not valid; give 0 or a positive number")

    @property
    def sell_fee_rate(self) -> float:
        return self.fees if self.sell_fees is None else self.sell_fees

    def to_dict(self) -> dict:
        return asdict(self)


def params_vector(rules: PositionRules) -> np.ndarray:
    """The float vector (``kernel.P_*``) the compiled fill model reads for one column."""
    p = np.zeros(kernel.N_PARAMS)
    p[kernel.P_SIZE] = math.inf if rules.size == "all" else float(rules.size)
    p[kernel.P_SIZE_TYPE] = SIZE_TYPES.index(rules.size_type)
    p[kernel.P_LOT] = rules.granularity or 0.0
    p[kernel.P_TICK] = rules.tick or 0.0
    p[kernel.P_MIN_AMOUNT] = rules.min_amount or 0.0
    p[kernel.P_MIN_COST] = rules.min_cost or 0.0
    p[kernel.P_BUY_FEE] = rules.fees
    p[kernel.P_SELL_FEE] = rules.sell_fee_rate
    p[kernel.P_SLIPPAGE] = rules.slippage
    p[kernel.P_STOP_LOSS] = math.nan if rules.stop_loss is None else rules.stop_loss
    p[kernel.P_TAKE_PROFIT] = math.nan if rules.take_profit is None else rules.take_profit
    p[kernel.P_COST_STEP] = rules.cost_step or 0.0
    return p


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
