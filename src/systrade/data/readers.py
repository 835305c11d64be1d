"""Read OHLCV candles from CSV or Parquet files into the one frame shape systrade uses.

The result has a tz-aware UTC DatetimeIndex named ``time`` (candle open times) and float columns
``open high low close volume``. Extra columns are ignored; the frame is not sorted or de-duplicated
here, so ``validate`` can still see what the file really holds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from systrade.errors import UserError

OHLCV = ["open", "high", "low", "close", "volume"]
TIME_COLUMNS = ("date", "datetime", "timestamp", "time", "open_time", "opentime")


def read_ohlcv(path: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet file of candles; raise UserError naming the file and the fix."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"data file {path} does not exist; check the path")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            raw = pd.read_parquet(path)
        elif suffix in (".csv", ".txt", ".tsv"):
            raw = pd.read_csv(path, sep=None, engine="python") if suffix == ".tsv" else pd.read_csv(path)
        else:
            raise UserError(f"data file {path} has unknown extension {suffix!r}; use .csv, .txt or .parquet")
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"data file {path} cannot be read ({type(exc).__name__}: {exc}); "
                        "give a CSV or Parquet file of candles") from exc
    return to_ohlcv_frame(raw, str(path))


def to_ohlcv_frame(raw: pd.DataFrame, source: str) -> pd.DataFrame:
    """Normalise a raw frame (any column case, timestamp column or index) to the OHLCV shape."""
    if raw.empty:
        raise UserError(f"{source} holds no rows; give a file with candles")
    times = _find_times(raw, source)
    by_lower = {str(c).strip().lower(): c for c in raw.columns}
    missing = [c for c in ["open", "high", "low", "close"] if c not in by_lower]
    if missing:
        raise UserError(f"{source} has no {', '.join(missing)} column(s) (found: "
                        f"{', '.join(map(str, raw.columns))}); name them open, high, low, close[, volume]")
    frame = pd.DataFrame(index=times)
    for column in OHLCV:
        if column in by_lower:
            values = pd.to_numeric(raw[by_lower[column]], errors="coerce").to_numpy(dtype=float)
        else:
            values = np.zeros(len(raw))
        frame[column] = values
    frame.attrs = dict(raw.attrs)  # parquet files from the store describe themselves here
    return frame


def _find_times(raw: pd.DataFrame, source: str) -> pd.DatetimeIndex:
    if isinstance(raw.index, pd.DatetimeIndex):
        return _as_utc_index(raw.index, source, "index")
    by_lower = {str(c).strip().lower(): c for c in raw.columns}
    column = next((by_lower[name] for name in TIME_COLUMNS if name in by_lower), None)
    if column is None:
        first = raw.columns[0]
        if str(first).startswith("Unnamed") or str(first).strip() == "":
            column = first
    if column is None:
        raise UserError(f"{source} has no timestamp column; name one date, datetime, timestamp or time "
                        "(or make it the unnamed first column)")
    return _as_utc_index(raw[column], source, str(column))


def _as_utc_index(values: pd.Series | pd.Index, source: str, column: str) -> pd.DatetimeIndex:
    """Parse ISO strings, dates or epoch seconds/milliseconds into a UTC DatetimeIndex."""
    try:
        if isinstance(values, pd.DatetimeIndex):
            parsed = values
        elif pd.api.types.is_numeric_dtype(values):
            numbers = pd.to_numeric(values)
            unit = "ms" if float(np.nanmax(np.abs(numbers))) > 1e11 else "s"
            parsed = pd.to_datetime(numbers, unit=unit, utc=True)
        else:
            parsed = pd.to_datetime(values, utc=True, format="mixed")
    except (ValueError, TypeError, OverflowError) as exc:
        raise UserError(f"{source}: column {column!r} has unparsable dates ({exc}); use ISO 8601 "
                        "(2024-01-31 or 2024-01-31T13:00:00Z) or epoch seconds/milliseconds") from exc
    index = pd.DatetimeIndex(parsed)
    if index.tz is None:
        index = index.tz_localize("UTC")
    else:
        index = index.tz_convert("UTC")
    if index.isna().any():
        row = int(np.argmax(index.isna()))
        raise UserError(f"{source}: column {column!r} has an empty or unparsable date at row {row}; "
                        "fix or remove that row")
    return index.as_unit("ns").rename("time")
