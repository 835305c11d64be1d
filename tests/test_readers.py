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


def candles_csv(path: Path, stamps: list[str], header: str = "date") -> Path:
    """One candle per stamp, all at the same prices (only the dates matter here)."""
    path.write_text(f"{header},open,high,low,close,volume\n" + "".join(f"{s},1,2,0.5,1.5,10\n" for s in stamps))
    return path


def utc(*stamps: str) -> list[pd.Timestamp]:
    return [pd.Timestamp(s, tz="UTC") for s in stamps]


JAN_10_TO_13 = utc("2018-01-10", "2018-01-11", "2018-01-12", "2018-01-13")


@pytest.mark.parametrize("stamps", [
    ["10/01/2018", "11/01/2018", "12/01/2018", "13/01/2018"],  # day first: 13 is no month
    ["10.01.2018", "11.01.2018", "12.01.2018", "13.01.2018"],
    ["10-01-18", "11-01-18", "12-01-18", "13-01-18"],
    ["01/10/2018", "01/11/2018", "01/12/2018", "01/13/2018"],  # month first: 13 is no month
])
def test_day_and_month_order_is_decided_once_for_the_whole_file(tmp_path: Path, stamps: list[str]) -> None:
    assert list(read_ohlcv(candles_csv(tmp_path / "x.csv", stamps)).index) == JAN_10_TO_13


def test_day_first_times_and_am_pm(tmp_path: Path) -> None:
    stamps = ["12/01/2018 01:00 PM", "12/01/2018 02:00 PM", "13/01/2018 09:30 AM"]
    assert list(read_ohlcv(candles_csv(tmp_path / "x.csv", stamps)).index) == \
        utc("2018-01-12 13:00", "2018-01-12 14:00", "2018-01-13 09:30")


def test_ambiguous_day_and_month_are_refused_unless_the_format_is_given(tmp_path: Path) -> None:
    path = candles_csv(tmp_path / "x.csv", ["01/02/2018", "02/02/2018", "03/02/2018"])
    with pytest.raises(UserError, match=r"x.csv: .*cannot be told apart.*--date-format %d/%m/%Y") as caught:
        read_ohlcv(path)
    assert "\n" not in str(caught.value)
    assert list(read_ohlcv(path, date_format="%d/%m/%Y").index) == utc("2018-02-01", "2018-02-02", "2018-02-03")
    assert list(read_ohlcv(path, date_format="%m/%d/%Y").index) == utc("2018-01-02", "2018-02-02", "2018-03-02")
    with pytest.raises(UserError, match=r"\('01/02/2018'\) does not match --date-format %Y-%m-%d"):
        read_ohlcv(path, date_format="%Y-%m-%d")


def test_day_first_and_month_first_mixed_in_one_file_are_refused(tmp_path: Path) -> None:
    path = candles_csv(tmp_path / "x.csv", ["13/01/2018", "01/14/2018"])
    with pytest.raises(UserError, match=r"row 1 \('01/14/2018'\).*--date-format"):
        read_ohlcv(path)


@pytest.mark.parametrize("scale", [1, 1000, 1_000_000, 1_000_000_000], ids=["s", "ms", "us", "ns"])
def test_epoch_unit_follows_the_magnitude(tmp_path: Path, scale: int) -> None:
    seconds = [1515542400, 1515546000, 1515549600]  # 2018-01-10 00:00, 01:00, 02:00 UTC
    path = candles_csv(tmp_path / "x.csv", [str(s * scale) for s in seconds], header="timestamp")
    assert list(read_ohlcv(path).index) == utc("2018-01-10 00:00", "2018-01-10 01:00", "2018-01-10 02:00")


def test_eight_digit_numbers_are_dates_not_seconds_of_1970(tmp_path: Path) -> None:
    path = candles_csv(tmp_path / "x.csv", ["20180110", "20180111", "20180112", "20180113"])
    assert list(read_ohlcv(path).index) == JAN_10_TO_13


@pytest.mark.parametrize("value, when", [("-86400", "before 1970"), ("9999999999", "after 2200"),
                                         ("99999999999999", "after 2200")])
def test_epoch_values_outside_a_sane_range_are_refused(tmp_path: Path, value: str, when: str) -> None:
    path = candles_csv(tmp_path / "x.csv", ["1515542400", value], header="timestamp")
    if len(value) > 11:  # a millisecond-sized value makes every value milliseconds
        path = candles_csv(tmp_path / "x.csv", ["1515542400000", value], header="timestamp")
    with pytest.raises(UserError, match=rf"x.csv: column 'timestamp' has {value} at row 1.*{when}"):
        read_ohlcv(path)


def test_a_file_above_the_size_limit_is_refused_before_reading(tmp_path: Path) -> None:
    path = candles_csv(tmp_path / "x.csv", [f"2024-01-01T{h:02d}:00Z" for h in range(24)] * 5)  # ~4 KB
    with pytest.raises(UserError, match=r"x.csv is 4 KB, above the 2 KB limit.*raise data.max_file_mb in"):
        read_ohlcv(path, max_file_mb=2 / 1024)
    assert len(read_ohlcv(path, max_file_mb=8 / 1024)) == 120


def test_a_first_megabyte_of_nul_bytes_holds_no_rows(tmp_path: Path) -> None:
    """Whatever follows, a file that starts with a megabyte of NUL bytes is refused from that megabyte alone."""
    path = tmp_path / "x.csv"
    rows = b"".join(f"2024-01-0{d},1,2,0.5,1.5,10\n".encode() for d in range(1, 4))
    path.write_bytes(b"date,open,high,low,close,volume\n" + b"\0" * (1 << 20) + b"\n" + rows)
    with pytest.raises(UserError, match=r"x.csv holds no rows in its first MB") as caught:
        read_ohlcv(path)
    assert len(str(caught.value)) < 300
    (tmp_path / "y.csv").write_bytes(b"\0" * (3 << 20))
    with pytest.raises(UserError, match=r"y.csv holds no rows"):
        read_ohlcv(tmp_path / "y.csv")


def test_only_the_time_and_ohlcv_columns_are_read(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("Date,Open,High,Low,Close,Note,Volume\n2024-01-01,1,2,0.5,1.5,\"a, b\",7\n"
                                    "2024-01-02,1,2,0.5,n/a,text,8\n")
    data = read_ohlcv(tmp_path / "x.csv")
    assert list(data.columns) == ["open", "high", "low", "close", "volume"]
    assert data["volume"].tolist() == [7.0, 8.0] and data["close"].isna().tolist() == [False, True]
