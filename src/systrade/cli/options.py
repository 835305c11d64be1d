"""The options that `backtest`, `optimize`, `walkforward`, `check` and `paper replay` share, declared once.

The search options (``SEARCH`` ... ``SEARCH_TIMEOUT``) are declared here once for `optimize` and `walkforward`.

``@backtest_options(...)`` adds them to a command and hands the command one ``options: BacktestOptions``
built by keyword, so a new market rule is one line here and every command has it with the same name and help.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import typer

from systrade.backtest.options import BacktestOptions

# name -> (type, typer option, BacktestOptions field); the order is the order of --help.
SELECTION: dict[str, tuple[Any, Any, str]] = {
    "param": (list[str], typer.Option([], "--param", "-p", metavar="<name=value>",
                                        help="Set a parameter: name=value (repeatable)."),
              "params"),
    "data": (str | None, typer.Option(None, "--data", help="CSV or Parquet file of candles (default: the "
                                      "bundled sample)."), "data_file"),
    "date_format": (str | None, typer.Option(None, "--date-format", help="How the --data file writes its dates, "
                                             "e.g. %d/%m/%Y, when they are not ISO 8601 and day and month cannot be "
                                             "told apart."), "date_format"),
    "exchange": (str | None, typer.Option(None, "--exchange", help="Store exchange folder (with --symbol)."),
                 "exchange"),
    "symbol": (str | None, typer.Option(None, "--symbol", help="Stored symbol."), "symbols"),
    "timeframe": (str | None, typer.Option(None, "--timeframe", help="Timeframe, e.g. 1h (inferred if omitted)."),
                  "timeframe"),
    "start": (str | None, typer.Option(None, "--start", help="First candle to use (ISO date)."), "start"),
    "end": (str | None, typer.Option(None, "--end", help="Last candle to use (ISO date)."), "end"),
}
SYMBOLS = (list[str], typer.Option([], "--symbol", metavar="<str>", help="Stored symbol, repeatable: one column "
                                   "each."), "symbols")

RULES: dict[str, tuple[Any, Any, str]] = {
    "cash": (float | None, typer.Option(None, "--cash", help="Starting cash (default from config: 10000)."), "cash"),
    "fees": (float | None, typer.Option(None, "--fees", help="Fee per fill as a fraction of value (0.001 = 0.1%; "
                                        "default: the stored market's taker fee, else config: 0.001)."), "fees"),
    "sell_fees": (float | None, typer.Option(None, "--sell-fees", help="Fee on sells when it differs from --fees "
                                             "(stock markets tax sells)."), "sell_fees"),
    "slippage": (float | None, typer.Option(None, "--slippage", help="Adverse price move per fill, a fraction "
                                            "(default from config: 0)."),
                 "slippage"),
    "size": (str, typer.Option("all", "--size", help="`all` (all available cash) or a number (see --size-type)."),
             "size"),
    "size_type": (str, typer.Option("percent", "--size-type", help="percent | amount | value (ignored for all)."),
                  "size_type"),
    "lot": (float | None, typer.Option(None, "--lot", "--granularity", help="Amount step: sizes are rounded down "
                                       "to it (1 = whole shares; default: the stored market's)."), "granularity"),
    "tick": (float | None, typer.Option(None, "--tick", help="Price step of stop levels (default: the stored "
                                        "market's)."), "tick"),
    "min_amount": (float | None, typer.Option(None, "--min-amount", help="Smallest order amount; smaller orders are "
                                              "skipped (default: the stored market's)."), "min_amount"),
    "min_cost": (float | None, typer.Option(None, "--min-cost", help="Smallest order value in quote currency "
                                            "(default: the stored market's)."), "min_cost"),
    "direction": (str | None, typer.Option(None, "--direction", help="long | short | both (default: strategy's)."),
                  "direction"),
    "stop_loss": (float | None, typer.Option(None, "--stop-loss", help="Stop loss, fraction of entry price."),
                  "stop_loss"),
    "take_profit": (float | None, typer.Option(None, "--take-profit", help="Take profit, fraction of entry price."),
                    "take_profit"),
}
YEAR_DAYS = (float | None, typer.Option(None, "--year-days", help="Days per year for annualising (252 for stocks)."),
             "year_days")
SEARCH = typer.Option("grid", "--search", help="grid (every combination) | random | tpe (optuna's TPE sampler).")
TRIALS = typer.Option(None, "--trials", help="Distinct combinations a random or tpe search evaluates (default 100; "
                      "in walkforward, per training window).")
SEED = typer.Option(0, "--seed", help="Seed of a random or tpe search: the same seed gives the same trials "
                    "(walkforward derives one per window from it).")
SEARCH_TIMEOUT = typer.Option(None, "--search-timeout", help="Seconds after which a random or tpe search stops "
                              "proposing trials (in walkforward, per training window; not --timeout, which limits "
                              "each strategy call).")
CASH_SHARING = (bool, typer.Option(False, "--cash-sharing", help="Several symbols share one cash balance."),
                "cash_sharing")


def backtest_options(*, rules: bool = True, many_symbols: bool = False, year_days: bool = False,
                     cash_sharing: bool = False) -> Callable[[Callable], Callable]:
    """Add the shared options to a command whose last parameter is ``options: BacktestOptions``.

    The command keeps its own parameters (the strategy argument first); the shared ones follow in --help.
    """
    shared = dict(SELECTION)
    if many_symbols:
        shared["symbol"] = SYMBOLS
    if rules:
        shared.update(RULES)
    if year_days:
        shared["year_days"] = YEAR_DAYS
    if cash_sharing:
        shared["cash_sharing"] = CASH_SHARING

    def decorate(command: Callable) -> Callable:
        own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.name != "options"]
        added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind)
                 for name, (kind, option, _) in shared.items()]

        @functools.wraps(command)
        def wrapper(**kwargs: Any) -> Any:
            fields = {shared[name][2]: kwargs.pop(name) for name in shared}
            symbols = fields.get("symbols")
            fields["symbols"] = list(symbols) if isinstance(symbols, list) else ([symbols] if symbols else [])
            return command(**kwargs, options=BacktestOptions(strategy=kwargs["strategy"], **fields))

        wrapper.__signature__ = inspect.Signature([*own, *added])  # what typer reads
        wrapper.__annotations__ = {p.name: p.annotation for p in [*own, *added]}
        return wrapper

    return decorate
