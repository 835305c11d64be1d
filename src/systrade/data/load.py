"""Pick the candles a command runs on: a file, stored series, or the bundled synthetic sample."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from systrade.data.calendars import calendar_name
from systrade.data.markets import load_market
from systrade.data.readers import DEFAULT_MAX_FILE_MB, read_ohlcv
from systrade.data.sample import SAMPLE_KEY, SYNTHETIC_NOTE, load_sample
from systrade.data.store import SeriesKey, is_synthetic, list_series, read_series
from systrade.data.timeframes import infer_timeframe, timeframe_seconds, utc_timestamp
from systrade.data.validate import prepare
from systrade.errors import UserError


@dataclass
class Candles:
    """One symbol's candles and where they came from."""

    symbol: str
    timeframe: str
    frame: pd.DataFrame
    source: str
    synthetic: bool
    market: dict[str, Any] | None = None  # the exchange's rules saved at download (``data.markets``)
    calendar: str | None = None  # the market calendar of a stock broker's series (``data.calendars``)
    exchange: str | None = None  # the store folder it came from (where a strategy's inputs are looked up)

    @property
    def note(self) -> str:
        """What to print next to results so nobody mistakes made-up data for a market."""
        return SYNTHETIC_NOTE if self.synthetic else self.source


def load_candles(
    data_dir: str | Path,
    data_file: str | None = None,
    exchange: str | None = None,
    symbols: list[str] | None = None,
    timeframe: str | None = None,
    start: str | None = None,
    end: str | None = None,
    *,
    date_format: str | None = None,
    max_file_mb: float | None = DEFAULT_MAX_FILE_MB,
) -> list[Candles]:
    """Candles for a command: ``--data FILE``, else ``--exchange/--symbol`` from the store, else the sample.

    ``date_format`` and ``max_file_mb`` apply to ``--data FILE`` (see ``read_ohlcv``)."""
    symbols = list(symbols or [])
    loaded: list[Candles] = []
    if data_file:
        frame = read_ohlcv(data_file, date_format=date_format, max_file_mb=max_file_mb)
        symbol = symbols[0] if symbols else frame.attrs.get("symbol") or Path(data_file).stem
        loaded.append(_candles(frame, symbol, timeframe, data_file))
        loaded[-1].calendar = calendar_name(frame.attrs.get("exchange"))  # a store file given by path
        loaded[-1].exchange = frame.attrs.get("exchange") or exchange
    elif symbols:
        for symbol in symbols:
            key = _find_key(data_dir, exchange, symbol, timeframe)
            candles = _candles(read_series(key, data_dir), key.symbol, key.timeframe, str(key.path(data_dir)))
            candles.market = load_market(data_dir, key.exchange, key.symbol)
            candles.calendar = calendar_name(key.exchange)
            candles.exchange = key.exchange
            loaded.append(candles)
    else:
        frame = load_sample(data_dir)
        loaded.append(_candles(frame, SAMPLE_KEY.symbol, timeframe, "the bundled sample", synthetic=True))
    return [_slice(c, start, end) for c in loaded]


def _candles(frame: pd.DataFrame, symbol: str, timeframe: str | None, source: str,
             synthetic: bool = False) -> Candles:
    frame = prepare(frame, source)
    refuse_non_positive_prices(frame, source)
    tf = frame.attrs.get("timeframe") or infer_timeframe(frame.index)
    if timeframe is not None and timeframe_seconds(timeframe) != timeframe_seconds(tf):
        raise UserError(f"--timeframe {timeframe} does not match {source}, whose candles are {tf} apart; drop "
                        f"--timeframe or give {tf} (annualising and stops depend on it)")
    return Candles(symbol, timeframe or tf, frame, source, synthetic or is_synthetic(frame))


def refuse_non_positive_prices(frame: pd.DataFrame, source: str) -> None:
    """A price of zero or less cannot be traded at (sizes divide by it): refuse the data, naming the candle."""
    prices = frame[["open", "high", "low", "close"]].to_numpy()
    bad = (prices <= 0).any(axis=1)
    if bad.any():
        first = int(bad.argmax())
        row = frame.iloc[first]
        raise UserError(f"{source}: the candle at {frame.index[first]} has a price of zero or less "
                        f"(open {row['open']:g}, high {row['high']:g}, low {row['low']:g}, close {row['close']:g}); "
                        "fix or remove it "
                        f"(`systrade data validate` lists every bad candle)")


def zero_volume_bars(candles: Candles) -> int:
    """How many candles traded nothing (a fill there is a price nobody could have had)."""
    return int((candles.frame["volume"] <= 0).sum()) if "volume" in candles.frame else 0


def data_notes(candles: Candles) -> list[str]:
    """What every command says about its data before its results: made-up data, candles that traded nothing."""
    notes = []
    if candles.synthetic:
        notes.append(f"{candles.symbol} is {candles.note}")
    empty = zero_volume_bars(candles)
    if empty:
        notes.append(f"{candles.symbol} has {empty} candles with zero volume; fills at their prices may not have "
                     "been possible")
    return notes


def _find_key(data_dir: str | Path, exchange: str | None, symbol: str, timeframe: str | None) -> SeriesKey:
    matches = [key for key, _ in list_series(data_dir)
               if key.symbol.upper() == symbol.upper()
               and (exchange is None or key.exchange == exchange)
               and (timeframe is None or key.timeframe == timeframe)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise UserError(f"no stored candles for {symbol}"
                        + (f" on {exchange}" if exchange else "") + (f" at {timeframe}" if timeframe else "")
                        + f" in {data_dir}; import or download them first (`systrade data list` shows the store)")
    options = ", ".join(f"{k.exchange} {k.timeframe}" for k in matches)
    raise UserError(f"several stored series match {symbol} ({options}); pick one with --exchange and --timeframe")


def _slice(candles: Candles, start: str | None, end: str | None) -> Candles:
    frame = candles.frame
    lo = utc_timestamp(start, "--start") if start else None
    hi = utc_timestamp(end, "--end") if end else None
    if lo is not None:
        frame = frame[frame.index >= lo]
    if hi is not None:
        frame = frame[frame.index <= hi]
    if len(frame) < 2:
        first, last = candles.frame.index[0], candles.frame.index[-1]
        raise UserError(f"the date range {start or '...'} to {end or '...'} leaves {len(frame)} candles of "
                        f"{candles.symbol}; its data covers {first} to {last}")
    frame.attrs = dict(candles.frame.attrs)
    return Candles(candles.symbol, candles.timeframe, frame, candles.source, candles.synthetic, candles.market,
                   candles.calendar, candles.exchange)


class InputFrames(dict):
    """The candles of a strategy's ``inputs``, carried in ``data.attrs["inputs"]`` through every slice of the
    data (pandas passes attrs along; a deep copy keeps this very object, so slicing copies no input)."""

    def __deepcopy__(self, memo: dict) -> InputFrames:
        return self


def attach_inputs(frame: pd.DataFrame, inputs: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """``frame`` carrying ``inputs`` (symbol -> candles) for strategies that declare them."""
    frame.attrs["inputs"] = InputFrames({symbol: other.set_axis(other.index.as_unit("ns"))
                                         for symbol, other in inputs.items()})
    return frame


def load_inputs(series: Candles, symbols: list[str], data_dir: str | Path, name: str) -> None:
    """Attach the stored candles of a strategy's ``inputs`` (same store folder and timeframe) to ``series``."""
    if series.exchange is None:
        raise UserError(f"strategy {name} reads inputs {', '.join(symbols)}; say which store folder holds them with "
                        "--exchange (they must be stored at the same timeframe)")
    loaded = load_candles(data_dir, None, series.exchange, symbols, series.timeframe)
    attach_inputs(series.frame, {symbol: other.frame for symbol, other in zip(symbols, loaded, strict=True)})
