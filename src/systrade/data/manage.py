"""Store housekeeping behind `systrade data`: import a file, describe the store, validate files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from systrade.data.calendars import calendar_name
from systrade.data.readers import DEFAULT_MAX_FILE_MB, read_ohlcv
from systrade.data.store import SeriesKey, is_synthetic, list_series, write_series
from systrade.data.timeframes import infer_timeframe, timeframe_seconds
from systrade.data.validate import Problem, find_problems, gap_count, prepare
from systrade.errors import UserError


def import_file(
    file: str, exchange: str, symbol: str, timeframe: str | None, data_dir: str | Path, *,
    date_format: str | None = None, max_file_mb: float | None = DEFAULT_MAX_FILE_MB,
) -> tuple[Path, int, str]:
    """Read a CSV/Parquet file and store it as ``<exchange>/<symbol>-<tf>.parquet``; return path, rows, tf."""
    if not exchange.strip() or "/" in exchange or exchange.startswith("."):
        raise UserError(f"--exchange {exchange!r} is not a valid folder name; use e.g. local or binance")
    frame = prepare(read_ohlcv(file, date_format=date_format, max_file_mb=max_file_mb), file)
    tf = timeframe or infer_timeframe(frame.index)
    timeframe_seconds(tf)
    key = SeriesKey(exchange, symbol, tf)
    return write_series(frame, key, data_dir, synthetic=is_synthetic(frame)), len(frame), tf


def describe_store(data_dir: str | Path) -> list[dict[str, Any]]:
    """One row per stored series: exchange, symbol, timeframe, first/last candle, rows, gaps."""
    rows = []
    for key, path in list_series(data_dir):
        frame = read_ohlcv(path, max_file_mb=None)  # the store's own files
        rows.append({
            "exchange": key.exchange, "symbol": key.symbol, "timeframe": key.timeframe,
            "first": frame.index.min().isoformat() if len(frame) else None,
            "last": frame.index.max().isoformat() if len(frame) else None,
            "rows": len(frame), "gaps": gap_count(frame, key.timeframe, calendar_name(key.exchange)),
            "calendar": calendar_name(key.exchange), "synthetic": is_synthetic(frame),
            "path": str(path),
        })
    return rows


def validate_target(target: str | None, data_dir: str | Path, *, date_format: str | None = None,
                    max_file_mb: float | None = DEFAULT_MAX_FILE_MB) -> list[tuple[str, list[Problem]]]:
    """Problems per file: one file, every parquet file under a folder, or the whole store."""
    if target is None:
        paths = [(p, k.timeframe) for k, p in list_series(data_dir)]
        calendars = {str(p): calendar_name(k.exchange) for k, p in list_series(data_dir)}
    else:
        path = Path(target)
        calendars = {}
        if path.is_dir():
            paths = [(p, None) for p in sorted(path.rglob("*.parquet"))]
        elif path.is_file():
            paths = [(path, None)]
        else:
            raise UserError(f"{target} does not exist; give a data file, a folder, or nothing for the whole store")
    results = []
    for path, timeframe in paths:
        frame = read_ohlcv(path, date_format=date_format, max_file_mb=max_file_mb)
        calendar = calendars.get(str(path)) or calendar_name(frame.attrs.get("exchange"))
        results.append((str(path), find_problems(frame, timeframe or frame.attrs.get("timeframe"), calendar)))
    return results
