"""Turn a command's options plus config defaults into a ready backtest (shared by commands)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from systrade.backtest.options import BacktestOptions
from systrade.backtest.run import BacktestRun, run_backtest
from systrade.config import Settings
from systrade.data.load import Candles, load_candles
from systrade.errors import UserError
from systrade.sim.rules import PositionRules
from systrade.strategy import Strategy, build_strategy, load_strategy, parse_param_overrides


@dataclass
class PreparedBacktest:
    """A validated backtest. ``rules`` are the first symbol's (the only one for sweeps and checks);
    ``rules_by_symbol`` each symbol's, completed by its stored market's rules."""

    strategy: Strategy
    candles: list[Candles]
    rules: PositionRules
    cash: float
    cash_sharing: bool
    year_days: float
    rules_by_symbol: dict[str, PositionRules] = field(default_factory=dict)

    def run(self) -> BacktestRun:
        rules = self.rules_by_symbol if len(self.rules_by_symbol) > 1 else self.rules
        return run_backtest(self.strategy, self.candles, rules, self.cash, self.cash_sharing, self.year_days)


def parse_size(text: str) -> float | str:
    """``all`` or a positive number."""
    if text.strip().lower() == "all":
        return "all"
    try:
        return float(text)
    except ValueError:
        raise UserError(f"--size {text!r} is not valid; use `all` or a number such as 0.5 or 1000") from None


def prepare_backtest(options: BacktestOptions, settings: Settings) -> PreparedBacktest:
    """Load strategy and data and validate every option, before anything runs or is written."""
    ref = load_strategy(options.strategy, settings.strategies.folders)
    strategy = build_strategy(ref, parse_param_overrides(options.params))
    if options.data_file and len(options.symbols) > 1:
        raise UserError("--data reads one file; give one --symbol with it, or use the store for several")
    cls = ref.cls
    rules = PositionRules(
        direction=options.direction or cls.direction,
        size=parse_size(options.size),
        size_type=options.size_type,
        granularity=options.granularity,
        fees=settings.backtest.fees if options.fees is None else options.fees,
        slippage=settings.backtest.slippage if options.slippage is None else options.slippage,
        stop_loss=cls.stop_loss if options.stop_loss is None else options.stop_loss,
        take_profit=cls.take_profit if options.take_profit is None else options.take_profit,
        sell_fees=options.sell_fees,
        min_amount=options.min_amount,
        min_cost=options.min_cost,
        tick=options.tick,
    )
    cash = settings.backtest.cash if options.cash is None else options.cash
    if not (cash > 0 and math.isfinite(cash)):
        raise UserError(f"--cash {cash} is not valid; give a positive finite amount")
    year_days = settings.backtest.year_days if options.year_days is None else options.year_days
    if not 0 < year_days <= 366:
        raise UserError(f"--year-days {year_days} is not valid; use 365 (crypto) or 252 (stocks)")
    candles = load_candles(settings.data.dir, options.data_file, options.exchange, options.symbols,
                           options.timeframe, options.start, options.end, date_format=options.date_format,
                           max_file_mb=settings.data.max_file_mb)
    fees_given = options.fees is not None or "fees" in settings.backtest.model_fields_set
    by_symbol = {c.symbol: with_market_rules(rules, c.market, options, fees_given) for c in candles}
    return PreparedBacktest(strategy, candles, by_symbol[candles[0].symbol], cash, options.cash_sharing, year_days,
                            by_symbol)


def with_market_rules(rules: PositionRules, market: dict | None, options: BacktestOptions,
                      fees_given: bool) -> PositionRules:
    """Complete ``rules`` with a stored market's lot, tick and minimums (an option given on the command line
    wins), and its taker fee unless fees were given by option or config."""
    if not market:
        return rules
    changes = {name: market[key] for name, key in (("granularity", "lot"), ("tick", "tick"),
                                                    ("min_amount", "min_amount"), ("min_cost", "min_cost"))
               if getattr(options, name) is None and market.get(key)}
    if not fees_given and market.get("taker_fee") is not None:
        changes["fees"] = market["taker_fee"]
    return replace(rules, **changes)
