"""Turn a command's options plus config defaults into a ready backtest (shared by commands)."""

from __future__ import annotations

from dataclasses import dataclass, field

from systrade.backtest.run import BacktestRun, run_backtest
from systrade.config import Settings
from systrade.data.load import Candles, load_candles
from systrade.errors import UserError
from systrade.sim.rules import PositionRules
from systrade.strategy import Strategy, build_strategy, load_strategy, parse_param_overrides


@dataclass
class BacktestOptions:
    """Everything a user can set for one backtest; None means "config or strategy default"."""

    strategy: str
    params: list[str] = field(default_factory=list)
    data_file: str | None = None
    exchange: str | None = None
    symbols: list[str] = field(default_factory=list)
    timeframe: str | None = None
    start: str | None = None
    end: str | None = None
    cash: float | None = None
    fees: float | None = None
    slippage: float | None = None
    size: str = "all"
    size_type: str = "percent"
    granularity: float | None = None
    direction: str | None = None
    stop_loss: float | None = None
    take_profit: float | None = None
    cash_sharing: bool = False
    year_days: float | None = None
    sell_fees: float | None = None
    min_amount: float | None = None
    min_cost: float | None = None
    tick: float | None = None


@dataclass
class PreparedBacktest:
    strategy: Strategy
    candles: list[Candles]
    rules: PositionRules
    cash: float
    cash_sharing: bool
    year_days: float

    def run(self) -> BacktestRun:
        return run_backtest(self.strategy, self.candles, self.rules, self.cash, self.cash_sharing, self.year_days)


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
    ref = load_strategy(options.strategy, settings.strategies.dir)
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
    if not cash > 0:
        raise UserError(f"--cash {cash} is not valid; give a positive amount")
    year_days = settings.backtest.year_days if options.year_days is None else options.year_days
    if not 0 < year_days <= 366:
        raise UserError(f"--year-days {year_days} is not valid; use 365 (crypto) or 252 (stocks)")
    candles = load_candles(settings.data.dir, options.data_file, options.exchange, options.symbols,
                           options.timeframe, options.start, options.end)
    return PreparedBacktest(strategy, candles, rules, cash, options.cash_sharing, year_days)
