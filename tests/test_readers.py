"""Reading candles from CSV and Parquet in the shapes people actually have."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import shared_file

from systrade.data.readers import read_ohlcv
from systrade.data.timeframes import infer_timeframe
from systrade.errors import UserError

ROWS = "1,2,0.5,1.5,10\n1.5,2.5,1,2,20\n2,3,1.5,2.5,30\n"


def write(path: Path, header: str, stamps: list[str]) -> Path:
    values = ROWS.strip().splitlines()
    path.write_text(header + "\n" + "\n".join(f"{s},{v}" for s, v in zip(stamps, values, strict=True)) + "\n")
    return path


@pytest.mark.parametrize("header, stamps, first", [
    ("date,open,high,low,close,volume", ["2024-01-01", "2024-01-02", "2024-01-03"], "2024-01-01 00:00:00+00:00"),
    ("Date,Open,High,Low,Close,Volume", ["2024-01-01", "2024-01-02", "2024-01-03"], "2024-01-01 00:00:00+00:00"),
    ("datetime,OPEN,HIGH,LOW,CLOSE,VOLUME", ["2024-01-01T10:00:00Z", "2024-01-01T11:00:00Z", "2024-01-01T12:00:00Z"],
     "2024-01-01 10:00:00+00:00"),
    ("timestamp,open,high,low,close,volume", ["1704067200", "1704070800", "1704074400"], "2024-01-01 00:00:00+00:00"),
    ("time,open,high,low,close,volume", ["1704067200000", "1704070800000", "1704074400000"],
     "2024-01-01 00:00:00+00:00"),
    (",open,high,low,close,volume", ["2024-01-01 00:00", "2024-01-01 01:00", "2024-01-01 02:00"],
     "2024-01-01 00:00:00+00:00"),
    ("time,open,high,low,close,volume", ["2024-01-01T01:00:00+01:00", "2024-01-01T02:00:00+01:00",
                                         "2024-01-01T03:00:00+01:00"], "2024-01-01 00:00:00+00:00"),
])
def test_timestamp_columns_and_formats(tmp_path: Path, header: str, stamps: list[str], first: str) -> None:
    data = read_ohlcv(write(tmp_path / "x.csv", header, stamps))
    assert str(data.index[0]) == first
    assert list(data.columns) == ["open", "high", "low", "close", "volume"]
    assert data["close"].tolist() == [1.5, 2.0, 2.5]
    assert str(data.index.tz) == "UTC"


def test_parquet_with_datetime_index_round_trips(tmp_path: Path) -> None:
    index = pd.date_range("2024-01-01", periods=3, freq="1h", tz="UTC")
    source = pd.DataFrame({"Open": [1.0, 2, 3], "High": [2.0, 3, 4], "Low": [0.5, 1, 2], "Close": [1.5, 2, 3],
                           "Volume": [1.0, 1, 1], "OpenInterest": [0, 0, 0]}, index=index)
    source.to_parquet(tmp_path / "x.parquet")
    data = read_ohlcv(tmp_path / "x.parquet")
    assert data.index.equals(index.rename("time")) and data["open"].tolist() == [1.0, 2.0, 3.0]
    assert infer_timeframe(data.index) == "1h"


def test_missing_volume_becomes_zero(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("date,open,high,low,close\n2024-01-01,1,2,0.5,1.5\n")
    assert read_ohlcv(tmp_path / "x.csv")["volume"].tolist() == [0.0]


def test_errors_name_the_file_and_the_fix(tmp_path: Path) -> None:
    (tmp_path / "nots.csv").write_text("a,open,high,low,close\n1,1,1,1,1\n")
    with pytest.raises(UserError, match="nots.csv has no timestamp column; name one date"):
        read_ohlcv(tmp_path / "nots.csv")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(UserError, match="unknown extension '.json'"):
        read_ohlcv(tmp_path / "x.json")


def test_real_files_from_other_tools() -> None:
    orcl = read_ohlcv(shared_file("orcl-1995-2014.txt"))  # Yahoo style with Adj Close
    assert len(orcl) == 5036 and str(orcl.index[0]) == "1995-01-03 00:00:00+00:00"
    assert infer_timeframe(orcl.index) == "1d"
    eth = read_ohlcv(shared_file("ETH_BTC-5m.csv"))  # ISO with Z
    assert len(eth) == 5760 and infer_timeframe(eth.index) == "5m"
    index_2006 = read_ohlcv(shared_file("2006-day-001.txt"))  # OpenInterest column, zero volume
    assert len(index_2006) == 255 and (index_2006["volume"] == 0).all()


@pytest.mark.parametrize("text, expected", [("2024-01-31", "2024-01-31 00:00:00+00:00"),
                                            ("2024-01-31T13:00Z", "2024-01-31 13:00:00+00:00"),
                                            ("2024-01-31T14:00+01:00", "2024-01-31 13:00:00+00:00")])
def test_user_dates_are_utc(text: str, expected: str) -> None:
    from systrade.data.timeframes import utc_timestamp

    assert str(utc_timestamp(text, "--start")) == expected
    with pytest.raises(UserError, match="--start 'soon' is not a date"):
        utc_timestamp("soon", "--start")
