"""Parity check: the vectorized backtest and the replay of the daemon's tick code trade alike, trade by trade.

Both run on the same candles with the same position rules (direction, sizing, granularity, fees,
slippage, stops) and starting cash. Trades are compared in order on direction, entry and exit time,
size, entry and exit price (sizes and prices to 1e-9 relative) and exit reason. Each difference comes with its reason,
found by looking at what the replay's ticks saw: a signal the tick computed differently from the full
history (too little history, float rounding at a near-tie, or lookahead), an order it could not place,
or a fill at another bar or price. A signal explanation is checked before it is given: the backtest is run
again on the signals the ticks computed, and only if it then trades as the replay did is the signal called
the cause; otherwise the fill that still differs is named as well. Both sides use the one fill model, so with the same
signals there is no allowed difference: a difference is a difference.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from systrade.backtest.engine import simulate
from systrade.backtest.request import PreparedBacktest
from systrade.checks.common import SIGNAL_COLUMNS, Together, raw_signals
from systrade.checks.warmup import warmup_for_ticks
from systrade.errors import UserError
from systrade.live.replay import ReplayMarket, ReplayResult, replay, replay_bot_settings, replay_together
from systrade.sim.rules import PositionRules, resolve_signals
from systrade.strategy import Strategy, StrategyRef

REL = 1e-9
FIELDS = ("direction", "entry_time", "exit_time", "size", "entry_price", "exit_price", "exit_reason")
MAX_LISTED = 50


@dataclass
class ParityReport:
    """Outcome of the parity check (``--json`` schema: these fields)."""

    strategy: str
    params: dict[str, Any]
    symbol: str
    timeframe: str
    bars: int
    rules: dict[str, Any]
    history: int  # candles each replayed tick saw
    warmup: int  # measured warmup the history was derived from
    identical: bool
    backtest_trades: int
    replay_trades: int
    differences: list[dict[str, Any]]  # the first MAX_LISTED, each with the trade number, fields and why
    differences_total: int
    replay_seconds: float
    replay_bars_per_second: float
    trades: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # backtest / replay trade lists
    replay_stop_exits: int = 0  # fills of the replay that were stop exits
    replay_rejections: list[str] = field(default_factory=list)
    replay_errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _iso(value: Any) -> str | None:
    return None if value is None or pd.isna(value) else pd.Timestamp(value).isoformat()


def _number(value: Any) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def trade_record(row: Any) -> dict[str, Any]:
    """One trade in the compared fields (times ISO, open trades with null exits)."""
    return {"direction": str(row["direction"]), "entry_time": _iso(row["entry_time"]),
            "entry_price": _number(row["entry_price"]), "exit_time": _iso(row["exit_time"]),
            "exit_price": _number(row["exit_price"]), "size": _number(row["size"]),
            "exit_reason": str(row["exit_reason"])}


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= REL * max(abs(a), abs(b))


def compare_trades(backtest: list[dict], replayed: list[dict]) -> list[tuple[int, list[str]]]:
    """(trade number, differing fields) for every position where the two lists differ."""
    out = []
    for i in range(max(len(backtest), len(replayed))):
        if i >= len(backtest) or i >= len(replayed):
            out.append((i, ["missing"]))
            continue
        a, b = backtest[i], replayed[i]
        fields = [f for f in FIELDS if not (_close(a[f], b[f]) if f in ("size", "entry_price", "exit_price")
                                              else a[f] == b[f])]
        if fields:
            out.append((i, fields))
    return out


class _Diagnosis:
    """Finds why trade ``i`` differs, from the candles, the full-history signals and what the replay saw."""

    def __init__(self, strategy: Strategy, frame: pd.DataFrame, rules: PositionRules, result: ReplayResult,
                 cash: float) -> None:
        self.strategy, self.frame, self.rules, self.result, self.cash = strategy, frame, rules, result, cash
        self.index = frame.index
        self.full = resolve_signals(raw_signals(strategy, frame, fill=False), rules.direction)

    def trades_on_tick_signals(self) -> list[dict]:
        """The backtest's trades when it is given the signals the ticks computed instead of the full history's."""
        signals = {column: self.result.signals[column] for column in SIGNAL_COLUMNS}
        step = self.index[1] - self.index[0] if len(self.index) > 1 else pd.Timedelta(0)
        simulation = simulate({"x": self.frame}, {"x": signals}, self.rules, self.cash, step)
        return [trade_record(row) for _, row in simulation.trades().iterrows()]

    def _bar(self, time: str | None) -> int | None:
        if time is None:
            return None
        return int(self.index.get_loc(pd.Timestamp(time)))

    def signal_mismatch(self, before: int) -> str | None:
        """The first bar (< ``before``) whose signals the tick computed differently from the full history."""
        ticks = len(self.index) - 1
        for column in SIGNAL_COLUMNS:
            differ = np.flatnonzero(self.result.signals[column][:ticks] != self.full[column][:ticks])
            differ = differ[differ < before]
            if differ.size:
                bar = int(differ[0])
                return self._explain_signal(bar, column)
        return None

    def _explain_signal(self, bar: int, column: str) -> str:
        history = self.result.history
        got, want = bool(self.result.signals[column][bar]), bool(self.full[column][bar])
        text = (f"at bar {self.index[bar]} the tick computed {column}={got} from its last {history} candles, "
                f"but the full history gives {want}")

        def agrees(start: int) -> bool:
            window = resolve_signals(raw_signals(self.strategy, self.frame.iloc[start:bar + 1], fill=False),
                                     self.rules.direction)
            return bool(window[column][-1]) == want

        if not agrees(0):
            return text + ("; even the whole history up to that bar gives a different signal: the strategy looks "
                           "ahead (`systrade check lookahead`)")
        longer = [agrees(bar + 1 - factor * history) for factor in (2, 4, 8) if bar + 1 - factor * history > 0]
        fixed_from = longer.index(True) if True in longer else None
        if fixed_from is not None and not all(longer[fixed_from:]):  # agreement comes and goes with the length
            return text + ("; some longer histories agree and some do not: the signal flips with float rounding at "
                           "a near-tie (e.g. two averages equal to the last digit), which no history length fixes")
        return text + ("; more history gives the full history's signal: the tick's history is too short for this "
                       "strategy (raise `candles`; `systrade check warmup` measures what it needs)")

    def why(self, number: int, fields: list[str], backtest: list[dict], replayed: list[dict]) -> str:
        a = backtest[number] if number < len(backtest) else None
        b = replayed[number] if number < len(replayed) else None
        times = [self._bar(t) for t in ((a or {}).get("entry_time"), (b or {}).get("entry_time"),
                                        (a or {}).get("exit_time"), (b or {}).get("exit_time")) if t]
        first_event = min(times) if times else len(self.index)
        mismatch = self.signal_mismatch(first_event)
        if mismatch:
            # Check the explanation: with the tick's signals, the backtest must trade as the replay did.
            tick = self.trades_on_tick_signals()
            still = compare_trades(tick[:number + 1], replayed[:number + 1])
            if not still:
                return mismatch + ("; confirmed: the backtest run on the signals the ticks computed trades exactly "
                                   "as the replay did")
            k, k_fields = still[0]
            return (mismatch + f"; but that does not explain all of it: the backtest run on the ticks' signals still "
                    f"differs at trade {k + 1}, so the fills differ too: "
                    + self._fills(k, k_fields, tick[k] if k < len(tick) else None,
                                  replayed[k] if k < len(replayed) else None))
        return self._fills(number, fields, a, b)

    def _fills(self, number: int, fields: list[str], a: dict | None, b: dict | None) -> str:
        """Why the fills differ when the signals do not explain it."""
        if self.result.errors:
            return f"a tick failed: {self.result.errors[0]}"
        for rejection in self.result.rejections:
            return f"the replay's order was rejected: {rejection}"
        if a is None:
            return f"the replay has trade {number + 1} but the backtest has no such trade"
        if b is None:
            return f"the backtest has trade {number + 1} but the replay does not"
        return self._describe(fields, a, b)

    def _describe(self, fields: list[str], a: dict, b: dict) -> str:
        parts = []
        for name in fields:
            if name.endswith("_time") and a[name] and b[name]:
                shift = self._bar(b[name]) - self._bar(a[name])
                when = f"{abs(shift)} bar{'s' if abs(shift) != 1 else ''} {'later' if shift > 0 else 'earlier'}"
                parts.append(f"the replay's {name.replace('_time', '')} filled {when} ({b[name]} instead of {a[name]})")
            elif name in ("entry_price", "exit_price"):
                parts.append(f"{name.replace('_', ' ')} {b[name]!r} instead of {a[name]!r}")
            elif name == "size":
                cause = ("sized at another price" if {"entry_time", "entry_price"} & set(fields)
                         else "the cash before the order or the rounding to the granularity differed")
                parts.append(f"size {b[name]!r} instead of {a[name]!r} ({cause})")
            else:
                parts.append(f"{name} {b[name]!r} instead of {a[name]!r}")
        return "; ".join(parts)


def check_parity(prepared: PreparedBacktest, ref: StrategyRef, history: int | None = None,
                 market_factory: Callable[..., ReplayMarket] | None = None,
                 on_bar: Callable[[int, int], None] | None = None) -> ParityReport:
    """Run the backtest and the replay of the daemon's ticks on the same candles and compare their trades.

    ``history`` is the candles per tick (default: the daemon's rule, measured warmup + 250).
    ``market_factory(frame, symbol, fee, granularity)`` replaces the replay's market (for tests).
    """
    if type(prepared.strategy).symbols:
        return _parity_together(prepared, ref, history, on_bar)
    if len(prepared.candles) != 1:
        raise UserError("check parity compares one symbol; give one --symbol or one --data file")
    candles = prepared.candles[0]
    strategy, rules = prepared.strategy, prepared.rules
    warmup = warmup_for_ticks(strategy, candles.frame)
    run = prepared.run()
    backtest = [trade_record(row) for _, row in run.results[0].trades.iterrows()]
    bot = replay_bot_settings(strategy.strategy_name(), candles.symbol, candles.timeframe, rules,
                              strategy.param_values, history=history)
    market = market_factory(candles.frame, candles.symbol, rules.fees, rules.granularity) if market_factory else None
    result = replay(ref, candles.frame, bot, rules, prepared.cash, warmup=warmup, market=market, on_bar=on_bar)
    replayed = [trade_record(row) for _, row in result.trades.iterrows()]
    found = compare_trades(backtest, replayed)
    differences = []
    if found:
        diagnosis = _Diagnosis(strategy, candles.frame, rules, result, prepared.cash)
        for number, fields in found[:MAX_LISTED]:
            differences.append({
                "trade": number + 1, "fields": fields,
                "backtest": backtest[number] if number < len(backtest) else None,
                "replay": replayed[number] if number < len(replayed) else None,
                "why": diagnosis.why(number, fields, backtest, replayed) if number == found[0][0]
                else "follows the first difference (positions and cash have diverged)",
            })
    return ParityReport(
        strategy=strategy.strategy_name(), params=strategy.param_values, symbol=candles.symbol,
        timeframe=candles.timeframe, bars=len(candles.frame), rules=rules.to_dict(), history=result.history,
        warmup=warmup, identical=not found, backtest_trades=len(backtest), replay_trades=len(replayed),
        differences=differences, differences_total=len(found), replay_seconds=result.seconds,
        replay_bars_per_second=result.bars_per_second, trades={"backtest": backtest, "replay": replayed},
        replay_stop_exits=int((result.fills["action"] == "stop").sum()) if len(result.fills) else 0,
        replay_rejections=result.rejections, replay_errors=result.errors)


def _parity_together(prepared: PreparedBacktest, ref: StrategyRef, history: int | None,
                     on_bar: Callable[[int, int], None] | None) -> ParityReport:
    """Parity of a strategy trading several symbols together: the cash-sharing backtest against the replay of
    the several-symbol bot's ticks, symbol by symbol (each difference names its symbol)."""
    strategy, rules = prepared.strategy, prepared.rules
    frames = {c.symbol: c.frame for c in prepared.candles}
    warmup = warmup_for_ticks(strategy, Together(frames))
    run = prepared.run()
    bot = replay_bot_settings(strategy.strategy_name(), list(frames), prepared.candles[0].timeframe, rules,
                              strategy.param_values, history=history)
    results = replay_together(ref, frames, bot, rules, prepared.cash, warmup=warmup, on_bar=on_bar)
    backtest, replayed, differences, total = {}, {}, [], 0
    for result in run.results:
        symbol = result.candles.symbol
        backtest[symbol] = [trade_record(row) for _, row in result.trades.iterrows()]
        replayed[symbol] = [trade_record(row) for _, row in results[symbol].trades.iterrows()]
        found = compare_trades(backtest[symbol], replayed[symbol])
        total += len(found)
        for number, fields in found[:MAX_LISTED - len(differences)]:
            a = backtest[symbol][number] if number < len(backtest[symbol]) else None
            b = replayed[symbol][number] if number < len(replayed[symbol]) else None
            why = "the backtest has this trade but the replay does not" if b is None else \
                "the replay has this trade but the backtest does not" if a is None else \
                "; ".join(f"{name} {b[name]!r} instead of {a[name]!r}" for name in fields)
            differences.append({"symbol": symbol, "trade": number + 1, "fields": fields, "backtest": a, "replay": b,
                                "why": why})
    first = next(iter(results.values()))
    return ParityReport(
        strategy=strategy.strategy_name(), params=strategy.param_values, symbol=", ".join(frames),
        timeframe=prepared.candles[0].timeframe, bars=first.bars, rules=rules.to_dict(), history=first.history,
        warmup=warmup, identical=total == 0, backtest_trades=sum(map(len, backtest.values())),
        replay_trades=sum(map(len, replayed.values())), differences=differences, differences_total=total,
        replay_seconds=first.seconds, replay_bars_per_second=first.bars_per_second,
        trades={"backtest": [{"symbol": s, **t} for s, ts in backtest.items() for t in ts],
                "replay": [{"symbol": s, **t} for s, ts in replayed.items() for t in ts]},
        replay_stop_exits=sum(int((r.fills["action"] == "stop").sum()) if len(r.fills) else 0
                              for r in results.values()),
        replay_rejections=first.rejections, replay_errors=first.errors)
