"""The candle store: ``<dir>/<exchange>/<BASE>_<QUOTE>-<timeframe>.parquet``, written atomically.

Each file carries its own description (exchange, symbol, timeframe, synthetic) in the parquet
metadata, so a file moved elsewhere still says what it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from systrade.data.readers import OHLCV, read_ohlcv
from systrade.errors import UserError
from systrade.fsutil import atomic_write


@dataclass(frozen=True)
class SeriesKey:
    """One stored series."""

    exchange: str
    symbol: str
    timeframe: str

    def path(self, data_dir: str | Path) -> Path:
        return Path(data_dir) / self.exchange / f"{symbol_to_stem(self.symbol)}-{self.timeframe}.parquet"


def symbol_to_stem(symbol: str) -> str:
    """``BTC/USDT`` -> ``BTC_USDT``; a stock symbol stays as it is."""
    return symbol.replace("/", "_").replace(":", "_")


def stem_to_symbol(stem: str) -> str:
    """``BTC_USDT`` -> ``BTC/USDT``; ``GOOG`` -> ``GOOG``."""
    return stem.replace("_", "/", 1)


def key_from_path(path: Path) -> SeriesKey | None:
    """Parse a store path back into its key, or None if the name does not follow the layout."""
    stem, sep, timeframe = path.stem.rpartition("-")
    if not sep or not stem:
        return None
    return SeriesKey(path.parent.name, stem_to_symbol(stem), timeframe)


def write_series(frame: pd.DataFrame, key: SeriesKey, data_dir: str | Path, synthetic: bool = False,
                 adjustment: str | None = None) -> Path:
    """Write candles for ``key`` atomically (temp file + rename); ``adjustment`` records what a stock broker's
    prices are ("all": split- and dividend-adjusted, "raw")."""
    out = frame[OHLCV].copy()
    out.index = out.index.rename("time")
    out.attrs = {"exchange": key.exchange, "symbol": key.symbol, "timeframe": key.timeframe,
                 "synthetic": bool(synthetic)}
    if adjustment is not None:
        out.attrs["adjustment"] = adjustment
    return atomic_write(key.path(data_dir), lambda tmp: out.to_parquet(tmp, engine="pyarrow"))


def read_series(key: SeriesKey, data_dir: str | Path) -> pd.DataFrame:
    """Read a stored series; raise UserError when it is not in the store."""
    path = key.path(data_dir)
    if not path.is_file():
        raise UserError(f"no stored candles for {key.symbol} {key.timeframe} on {key.exchange} ({path}); "
                        "import them with `systrade data import` or list the store with `systrade data list`")
    return read_ohlcv(path, max_file_mb=None)  # systrade wrote it; only its OHLCV columns are read


def is_synthetic(frame: pd.DataFrame) -> bool:
    """True for candles made by systrade's own generator."""
    return bool(frame.attrs.get("synthetic", False))


def list_series(data_dir: str | Path) -> list[tuple[SeriesKey, Path]]:
    """Every stored series under ``data_dir``, sorted by exchange, symbol, timeframe."""
    root = Path(data_dir)
    found = []
    for path in sorted(root.glob("*/*.parquet")) if root.is_dir() else []:
        key = key_from_path(path)
        if key is not None:
            found.append((key, path))
    return found
