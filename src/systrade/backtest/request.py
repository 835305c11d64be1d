"""Turn a command's options plus config defaults into a ready backtest (shared by commands)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from systrade.backtest.options import BacktestOptions
from systrade.backtest.run import BacktestRun, run_backtest
from systrade.config import Settings
from systrade.data import calendars
from systrade.data.load import Candles, load_candles, load_inputs
from systrade.data.timeframes import weekdays_only
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
    year_days_source: str = "option"  # option, config, calendar, weekday_daily (252 from the data) or default (365)

    @property
    def notes(self) -> list[str]:
        """What to say about the run's set-up before its results (the annualisation chosen from the data)."""
        symbols = ", ".join(c.symbol for c in self.candles)
        if self.year_days_source == "calendar":
            calendar, timeframe = self.candles[0].calendar, self.candles[0].timeframe
            return [f"annualising with the {calendar} calendar: {year_bars(calendar, timeframe)} {timeframe} bars a "
                    f"year ({symbols}); give --year-days or set [backtest] year_days to change it"]
        if self.year_days_source != "weekday_daily":
            return []
        return [f"annualising with 252 days a year: the daily candles of {symbols} have no weekend candles (a stock "
                "market's); give --year-days 365 or set [backtest] year_days to change it"]

    def run(self) -> BacktestRun:
        rules = self.rules_by_symbol if len(self.rules_by_symbol) > 1 else self.rules
        run = run_backtest(self.strategy, self.candles, rules, self.cash, self.cash_sharing, self.year_days)
        run.year_days_source, run.notes = self.year_days_source, self.notes
        return run


def year_bars(calendar: str, timeframe: str) -> str:
    """A calendar's bars per year as a person reads it (252 sessions, 1,761 hourly bars)."""
    return f"{calendars.bars_per_year(calendar, timeframe):,.0f}"


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
    if options.year_days is not None and not 0 < options.year_days <= 366:
        raise UserError(f"--year-days {options.year_days} is not valid; use 365 (crypto) or 252 (stocks)")
    symbols, cash_sharing = list(options.symbols), options.cash_sharing
    if cls.symbols:  # a strategy that trades several symbols together: all of them, one portfolio
        if options.data_file:
            raise UserError(f"strategy {cls.strategy_name()} trades {', '.join(cls.symbols)} together; it reads them "
                            "from the store (--exchange), not from one --data file")
        if symbols and {s.upper() for s in symbols} != {s.upper() for s in cls.symbols}:
            raise UserError(f"strategy {cls.strategy_name()} trades {', '.join(cls.symbols)} together; drop --symbol "
                            "or give exactly those")
        symbols, cash_sharing = list(cls.symbols), True
    candles = load_candles(settings.data.dir, options.data_file, options.exchange, symbols,
                           options.timeframe, options.start, options.end, date_format=options.date_format,
                           max_file_mb=settings.data.max_file_mb)
    if cls.inputs:
        for series in candles:
            load_inputs(series, list(cls.inputs), settings.data.dir, cls.strategy_name())
    year_days, year_days_source = annualisation(options.year_days, settings.backtest.year_days, candles)
    fees_given = options.fees is not None or "fees" in settings.backtest.model_fields_set
    by_symbol = {c.symbol: with_market_rules(rules, c.market, options, fees_given) for c in candles}
    return PreparedBacktest(strategy, candles, by_symbol[candles[0].symbol], cash, cash_sharing, year_days,
                            by_symbol, year_days_source)


def annualisation(option: float | None, configured: float | None, candles: list[Candles]) -> tuple[float, str]:
    """Days per year for annualising, and where the number came from: ``--year-days``, else ``[backtest]
    year_days``, else the market calendar's bars per year when every series comes from one stock broker's store
    (Alpaca: XNYS, KIS: XKRX), else 252 when every series is daily without weekend candles (stocks), else 365
    (crypto trades every day)."""
    if option is not None:
        return float(option), "option"
    if configured is not None:
        return float(configured), "config"
    named = {c.calendar for c in candles}
    if len(named) == 1 and None not in named and len({c.timeframe for c in candles}) == 1:
        return calendars.year_days(named.pop(), candles[0].timeframe), "calendar"
    if all(weekdays_only(c.frame.index, c.timeframe) for c in candles):
        return 252.0, "weekday_daily"
    return 365.0, "default"


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
    if market.get("cost_step"):
        changes["cost_step"] = market["cost_step"]
    return replace(rules, **changes)
