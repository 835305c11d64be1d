"""Checks before the daemon starts: each bot's strategy is checked for lookahead and its warmup measured.

It lives above ``live`` (the daemon takes the measured warmups as plain numbers), so ``live`` never imports
``checks`` and ``checks.parity`` may import ``live.replay`` without a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from systrade.checks.common import Together
from systrade.checks.lookahead import LookaheadReport, check_lookahead
from systrade.checks.warmup import DataTooShort, measure_warmup
from systrade.config import Settings, check_bot_symbols
from systrade.data.load import Candles
from systrade.errors import UserError
from systrade.strategy import build_strategy, load_strategy


@dataclass
class BotCheck:
    """What the checks before start found for one bot's strategy."""

    bot: str
    source: str  # the candles checked: the bot's stored series, else the bundled sample
    lookahead: LookaheadReport
    warmup: int | None  # measured candles of history the tick needs (None: the bot sets `candles`)


_CHECKED: dict[tuple, tuple] = {}  # (strategy, params, data file and its mtime) -> (lookahead, warmup)


def preflight(settings: Settings) -> list[BotCheck]:
    """Check every bot's strategy for lookahead and measure its warmup before anything is scheduled.

    The warmup is measured only for bots that do not set ``candles`` (the history they fetch).

    The candles are the bot's own series in the store when there is one, else the bundled sample. Results are
    remembered for the process (a restart in the same process does not check again).
    """
    if not settings.paper.bots:
        raise UserError("no bots configured; add [[paper.bots]] tables to systrade.toml (see the README)")
    checks = []
    for bot in settings.paper.bots:
        ref = load_strategy(bot.strategy, settings.strategies.folders)
        check_bot_symbols(bot, ref.cls)
        strategy = build_strategy(ref, bot.params)
        traded = [_check_candles(settings, bot, symbol, i) for i, symbol in enumerate(bot.traded)]
        candles = traded[0]
        data = Together({c.symbol: c.frame for c in traded}) if bot.symbols else candles.frame
        stamps = [Path(c.source).stat().st_mtime_ns if Path(c.source).is_file() else None for c in traded]
        key = (ref.source, ref.cls.__qualname__, repr(sorted(strategy.param_values.items())),
               tuple(c.source for c in traded), tuple(stamps))
        if key not in _CHECKED:
            _CHECKED[key] = (check_lookahead(strategy, data), None)
        lookahead, warmup = _CHECKED[key]
        if warmup is None and bot.candles is None:  # a bot that sets `candles` does not need it
            try:
                warmup = measure_warmup(strategy, data).warmup
            except DataTooShort as short:
                # A strategy that looks ahead changes its signals with later candles, so no history is ever enough:
                # the lookahead finding is what the start-up reports, and the bot keeps its default history.
                if not lookahead.biased:
                    raise UserError(f"bot {bot.name}: {short}; store more candles of {candles.symbol} or set the "
                                    "bot's `candles` (the history each tick fetches)") from None
            _CHECKED[key] = (lookahead, warmup)
        source = candles.note if candles.synthetic else candles.source
        symbols = ", ".join(c.symbol for c in traded)
        checks.append(BotCheck(bot.name, f"{symbols} {candles.timeframe}, {source}", lookahead, warmup))
    return checks


PREFLIGHT_SAMPLE_BARS = 5000


def _check_candles(settings: Settings, bot, symbol: str | None = None, number: int = 0) -> Candles:
    """The bot's stored series of ``symbol`` (its own by default), else the bundled sample (generated shorter when
    its file is absent: start-up stays quick, and 5,000 synthetic candles are plenty to catch lookahead and bound
    a warmup). Each symbol of a bot trading several gets its own synthetic series, named by that symbol."""
    from systrade.data.load import load_candles
    from systrade.data.sample import SAMPLE_KEY, SAMPLE_SEED, generate_sample

    symbol = symbol or bot.symbol
    try:
        return load_candles(settings.data.dir, None, bot.exchange, [symbol], bot.timeframe)[0]
    except UserError:
        pass
    if bot.symbols:
        frame = generate_sample(bars=PREFLIGHT_SAMPLE_BARS, seed=SAMPLE_SEED + number)
        return Candles(symbol, SAMPLE_KEY.timeframe, frame, "bundled sample generator", True)
    if SAMPLE_KEY.path(settings.data.dir).is_file():
        return load_candles(settings.data.dir)[0]
    frame = generate_sample(bars=PREFLIGHT_SAMPLE_BARS)
    return Candles(SAMPLE_KEY.symbol, SAMPLE_KEY.timeframe, frame, "bundled sample generator", True)
