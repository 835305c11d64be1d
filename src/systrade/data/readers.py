"""Read OHLCV candles from CSV or Parquet files into the one frame shape systrade uses.

The result has a tz-aware UTC DatetimeIndex named ``time`` (candle open times) and float columns
``open high low close volume``. Extra columns are ignored; the frame is not sorted or de-duplicated
here, so ``validate`` can still see what the file really holds.

Dates are read one way for the whole file, never row by row: ISO 8601, else one format (day first or
month first is decided from all rows, and refused when the rows cannot tell), or the format the user
gives. Epoch numbers are seconds, milliseconds, microseconds or nanoseconds by their magnitude.
Memory stays bounded: a file above a size limit is refused before it is read, a CSV whose first
megabyte holds no row is refused from that megabyte, and only the time and OHLCV columns are parsed.
"""

from __future__ import annotations

import io
import re
import shlex
from pathlib import Path

import numpy as np
import pandas as pd

from systrade.errors import UserError

OHLCV = ["open", "high", "low", "close", "volume"]
TIME_COLUMNS = ("date", "datetime", "timestamp", "time", "open_time", "opentime")
DEFAULT_MAX_FILE_MB = 1024.0  # the default of ``[data] max_file_mb`` in systrade.toml
HEAD_BYTES = 1 << 20  # a CSV whose first megabyte holds no row is refused without reading on
EPOCH_UNITS = (("s", 1, 1e11), ("ms", 1e3, 1e14), ("us", 1e6, 1e17), ("ns", 1e9, float("inf")))
EPOCH_NAMES = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}
LATEST_SECONDS = 7_258_118_400  # 2200-01-01T00:00:00Z: later epoch dates are a wrong unit, not data
# 31/01/2024, 1.2.24, 01-31-2024 13:05:09.5 PM: the slash, dot and dash forms where day and month can swap
DAY_MONTH = re.compile(r"\d{1,2}(?P<sep>[/.\-])\d{1,2}(?P=sep)(?P<year>\d{4}|\d{2})"
                       r"(?:(?P<t>[ T])\d{1,2}:\d{2}(?P<sec>:\d{2}(?P<frac>\.\d{1,9})?)?(?P<ampm>\s*[AaPp][Mm])?)?")
DATE_HELP = ("use ISO 8601 (2024-01-31 or 2024-01-31T13:00:00Z), epoch seconds/milliseconds/microseconds/"
             "nanoseconds, or give the format with --date-format (e.g. --date-format %d/%m/%Y)")


def read_ohlcv(path: str | Path, *, date_format: str | None = None,
               max_file_mb: float | None = DEFAULT_MAX_FILE_MB) -> pd.DataFrame:
    """Read a CSV or Parquet file of candles; raise UserError naming the file and the fix.

    ``date_format`` (strptime codes, e.g. ``%d/%m/%Y``) is how the timestamp column is written when it is not
    ISO 8601 and cannot be told from the file; ``max_file_mb`` refuses bigger files (None: no limit).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"data file {path} does not exist; check the path")
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".pq", ".csv", ".txt", ".tsv"):
        raise UserError(f"data file {path} has unknown extension {suffix!r}; use .csv, .txt or .parquet")
    _refuse_too_big(path, max_file_mb)
    try:
        raw = _read_parquet(path) if suffix in (".parquet", ".pq") else _read_csv(path, suffix)
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"data file {path} cannot be read ({type(exc).__name__}: {_short(exc)}); "
                        "give a CSV or Parquet file of candles") from exc
    return to_ohlcv_frame(raw, str(path), date_format=date_format)


def to_ohlcv_frame(raw: pd.DataFrame, source: str, *, date_format: str | None = None) -> pd.DataFrame:
    """Normalise a raw frame (any column case, timestamp column or index) to the OHLCV shape."""
    if raw.empty:
        raise UserError(f"{source} holds no rows; give a file with candles")
    times = _find_times(raw, source, date_format)
    by_lower = _ohlcv_columns(raw.columns, source)
    frame = pd.DataFrame(index=times)
    for column in OHLCV:
        if column in by_lower:
            values = pd.to_numeric(raw[by_lower[column]], errors="coerce").to_numpy(dtype=float)
        else:
            values = np.zeros(len(raw))
        frame[column] = values
    frame.attrs = dict(raw.attrs)  # parquet files from the store describe themselves here
    return frame


def _size_text(size: float) -> str:
    return f"{size / 2**20:,.0f} MB" if size >= 2**20 else f"{size / 1024:,.0f} KB"


def _refuse_too_big(path: Path, max_file_mb: float | None) -> None:
    size = path.stat().st_size
    if max_file_mb is not None and size > max_file_mb * 2**20:
        limit = _size_text(max_file_mb * 2**20)
        raise UserError(f"data file {path} is {_size_text(size)}, above the {limit} limit; give only the dates you "
                        f"need, or raise data.max_file_mb in systrade.toml (now {max_file_mb:g})")


def _short(value: object, limit: int = 60) -> str:
    """A value as it may appear in a one-line message (a file's junk can be megabytes long)."""
    text = str(value).replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "..."


def _ohlcv_columns(columns: pd.Index, source: str) -> dict[str, object]:
    """Lower-case name -> column, raising when open/high/low/close are not all there."""
    by_lower = {str(c).strip().lower(): c for c in columns}
    missing = [c for c in ["open", "high", "low", "close"] if c not in by_lower]
    if missing:
        raise UserError(f"{source} has no {', '.join(missing)} column(s) (found: "
                        f"{_short(', '.join(map(str, columns)), 200)}); name them open, high, low, close[, volume]")
    return by_lower


def _time_column(columns: pd.Index) -> object | None:
    by_lower = {str(c).strip().lower(): c for c in columns}
    column = next((by_lower[name] for name in TIME_COLUMNS if name in by_lower), None)
    if column is None and len(columns):
        first = columns[0]
        if str(first).startswith("Unnamed") or str(first).strip() == "":
            column = first
    return column


def _no_time_column(source: str) -> UserError:
    return UserError(f"{source} has no timestamp column; name one date, datetime, timestamp or time "
                     "(or make it the unnamed first column)")


def _read_parquet(path: Path) -> pd.DataFrame:
    """Only the time and OHLCV columns (a stored index comes back by itself)."""
    import pyarrow.parquet as pq

    names = pq.read_schema(path).names
    wanted = [n for n in names if n.strip().lower() in OHLCV or n.strip().lower() in TIME_COLUMNS]
    return pd.read_parquet(path, columns=wanted if wanted else None)


def _read_csv(path: Path, suffix: str) -> pd.DataFrame:
    """Check the header and the first rows from the first megabyte, then parse only the needed columns."""
    with open(path, "rb") as fh:
        head = fh.read(HEAD_BYTES)
        whole = not fh.read(1)
    first_line = head.split(b"\n", 1)[0]
    sep = ","
    if suffix == ".tsv":
        sep = max("\t,;", key=lambda s: first_line.count(s.encode()))
    body = head.split(b"\n", 1)[1] if b"\n" in head else b""
    if not whole:
        body = body.rsplit(b"\n", 1)[0] if b"\n" in body else b""  # whole lines only
    where = "" if whole else " in its first MB"
    if not body.strip(b"\0 \t\r\n") or not first_line.strip(b"\0 \t\r"):
        raise UserError(f"{path} holds no rows{where}; give a file with candles")
    sample = pd.read_csv(io.BytesIO(first_line + b"\n" + body), sep=sep)
    if sample.empty:
        raise UserError(f"{path} holds no rows{where}; give a file with candles")
    time_column = _time_column(sample.columns)
    if time_column is None:
        raise _no_time_column(str(path))
    by_lower = _ohlcv_columns(sample.columns, str(path))
    keep = [time_column, *(by_lower[c] for c in OHLCV if c in by_lower)]
    positions = sorted(list(sample.columns).index(c) for c in keep)
    floats = {by_lower[c]: "float64" for c in OHLCV if c in by_lower}
    try:
        return pd.read_csv(path, sep=sep, usecols=positions, dtype=floats)
    except ValueError:  # a price that is no number: read it as text, to_ohlcv_frame makes it NaN
        return pd.read_csv(path, sep=sep, usecols=positions)


def _find_times(raw: pd.DataFrame, source: str, date_format: str | None) -> pd.DatetimeIndex:
    if isinstance(raw.index, pd.DatetimeIndex):
        return _as_utc_index(raw.index, source, "index")
    column = _time_column(raw.columns)
    if column is None:
        raise _no_time_column(source)
    return _as_utc_index(raw[column], source, str(column), date_format)


def _as_utc_index(values: pd.Series | pd.Index, source: str, column: str,
                  date_format: str | None = None) -> pd.DatetimeIndex:
    """Parse the whole column one way (see the module docstring) into a UTC DatetimeIndex."""
    try:
        if isinstance(values, pd.DatetimeIndex) or pd.api.types.is_datetime64_any_dtype(values):
            parsed = values
        elif date_format is not None:
            parsed = _with_format(values, source, column, date_format)
        elif pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            parsed = _from_epoch(values, source, column)
        else:
            parsed = _from_text(pd.Series(values), source, column)
    except (ValueError, TypeError, OverflowError) as exc:
        raise UserError(f"{source}: column {column!r} has unparsable dates ({_short(exc)}); {DATE_HELP}") from exc
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


def _from_epoch(values: pd.Series | pd.Index, source: str, column: str) -> pd.Series:
    """Unix time in the unit its magnitude says; a date before 1970 or after 2200 means a wrong column or unit.

    Eight-digit numbers that are all dates (20240131) are dates: as epoch seconds they would all fall in 1970."""
    numbers = pd.Series(pd.to_numeric(values))
    present = numbers.dropna()
    if present.empty:
        return pd.to_datetime(numbers, unit="s", utc=True)
    if present.between(19000101, 22001231).all() and (present % 1 == 0).all():  # 20240131: a date, not 1970-08
        as_dates = pd.to_datetime(numbers.astype("Int64").astype("string"), format="%Y%m%d", utc=True, errors="coerce")
        if as_dates.notna().sum() == len(present):
            return as_dates
    biggest = float(present.abs().max())
    unit, per_second = next((u, f) for u, f, below in EPOCH_UNITS if biggest < below)
    seconds = numbers.astype(float) / per_second
    outside = (seconds < 0) | (seconds >= LATEST_SECONDS)
    if outside.any():
        row = int(np.argmax(outside.to_numpy()))
        value = numbers.iloc[row]
        when = "before 1970" if seconds.iloc[row] < 0 else "after 2200"
        raise UserError(f"{source}: column {column!r} has {value:.0f} at row {row}, which as epoch "
                        f"{EPOCH_NAMES[unit]} (the unit the column's largest value implies) is {when}; fix that row, "
                        "or give Unix times in one unit (seconds, milliseconds, microseconds or nanoseconds)")
    return pd.to_datetime(numbers, unit=unit, utc=True)


def _present(text: pd.Series) -> np.ndarray:
    return (text.notna() & (text.astype(str).str.strip() != "")).to_numpy()


def _with_format(values: pd.Series | pd.Index, source: str, column: str, date_format: str) -> pd.Series:
    """The user's format for every row; a row it does not fit is named."""
    text = pd.Series(values)
    if pd.api.types.is_numeric_dtype(text):  # 20240131 read as a number
        text = text.astype("Int64").astype("string")
    try:
        parsed = pd.to_datetime(text, format=date_format, utc=True, errors="coerce")
    except ValueError as exc:
        raise UserError(f"--date-format {date_format!r} is not a valid format ({_short(exc)}); use strptime "
                        "codes, e.g. %d/%m/%Y or %m/%d/%Y %H:%M") from exc
    bad = parsed.isna().to_numpy() & _present(text)
    if bad.any():
        row = int(np.argmax(bad))
        raise UserError(f"{source}: column {column!r} row {row} ({_short(text.iloc[row])!r}) does not match "
                        f"--date-format {date_format}; fix the row or give the format the file uses")
    return parsed


def _swap_day_month(fmt: str) -> str | None:
    """``%d/%m/...`` <-> ``%m/%d/...`` for a format that starts with day and month, else None."""
    head = fmt[:5]
    if len(head) == 5 and head[2] in "/.-" and {head[:2], head[3:]} == {"%d", "%m"}:
        return head[3:] + head[2] + head[:2] + fmt[5:]
    return None


def _format_of(first: str) -> str | None:
    """One strptime format for a non-ISO date like ``first`` (day-month forms are built month first)."""
    match = DAY_MONTH.fullmatch(first)
    if match is None:
        from pandas.tseries.api import guess_datetime_format

        return guess_datetime_format(first)
    sep, year = match["sep"], "%Y" if len(match["year"]) == 4 else "%y"
    fmt = f"%m{sep}%d{sep}{year}"
    if match["t"]:
        fmt += match["t"] + ("%I" if match["ampm"] else "%H") + ":%M"
        fmt += (":%S" if match["sec"] else "") + (".%f" if match["frac"] else "")
        if match["ampm"]:
            fmt += match["ampm"][:-2] + "%p"
    return fmt


def _from_text(text: pd.Series, source: str, column: str) -> pd.Series:
    """ISO 8601 when every row is; else one format for every row, day first or month first as all rows allow."""
    try:
        return pd.to_datetime(text, utc=True, format="ISO8601")
    except (ValueError, TypeError, OverflowError):
        pass
    present = _present(text)
    if not present.any():
        return pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
    first_row = int(np.argmax(present))
    first = str(text.iloc[first_row]).strip()
    fmt = _format_of(first)
    if fmt is None:
        raise UserError(f"{source}: column {column!r} has unparsable dates (row {first_row}: {_short(first)!r}); "
                        f"{DATE_HELP}")
    swapped = _swap_day_month(fmt)
    candidates = [f for f in (fmt, swapped) if f is not None]
    stripped = text.astype("string").str.strip()
    results = {f: pd.to_datetime(stripped, format=f, utc=True, errors="coerce") for f in candidates}
    fits = [f for f in candidates if not (results[f].isna().to_numpy() & present).any()]
    if len(fits) == 1:
        return results[fits[0]]
    if len(fits) == 2:
        day_first, month_first = (shlex.quote(f) for f in sorted(fits, key=lambda f: f.index("%d")))
        raise UserError(f"{source}: column {column!r} has dates like {_short(first)!r} whose day and month cannot "
                        f"be told apart (no day above 12); give the order with --date-format {day_first} (day first) "
                        f"or --date-format {month_first} (month first)")
    best = max(candidates, key=lambda f: (pd.notna(results[f].iloc[first_row]), int(results[f].notna().sum())))
    row = int(np.argmax(results[best].isna().to_numpy() & present))
    raise UserError(f"{source}: column {column!r} has dates in more than one format or unparsable ones (row {row} "
                    f"({_short(text.iloc[row])!r}) does not match {best}, the format of row {first_row}); "
                    "give every row one format, e.g. with --date-format %d/%m/%Y")
