"""Market calendars: sessions and bars of XNYS and XKRX, gaps that are gaps (a holiday is none), and stock
series annualised with their calendar's sessions.

The calendar facts asserted here come from the markets' published holidays (Independence Day and its early
close on the 3rd, Chuseok), and from 20 years of real ORCL candles recorded by others.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import shared_file

from systrade.data import calendars


def test_the_sessions_per_year_table_is_the_calendars_own_count() -> None:
    for name, table_value in calendars.SESSIONS_PER_YEAR.items():
        sessions = calendars.schedule(name, pd.Timestamp("2015-01-01"), pd.Timestamp("2024-12-31"))
        assert table_value == pytest.approx(len(sessions) / 10, abs=0.05)


def test_the_regular_session_table_is_the_calendars_most_common_session() -> None:
    for name, (opening, length) in calendars.REGULAR_SESSION.items():
        table = calendars.schedule(name, pd.Timestamp("2023-01-01"), pd.Timestamp("2024-12-31"))
        zone = calendars.calendar(name).tz
        local_open = table["open"].dt.tz_convert(zone)
        seconds = (local_open - local_open.dt.normalize()).dt.total_seconds()
        assert seconds.mode()[0] == opening
        assert (table["close"] - table["open"]).dt.total_seconds().mode()[0] == length


def test_xnys_bars_around_independence_day() -> None:
    hours = calendars.bar_opens("XNYS", "1h", pd.Timestamp("2024-07-03"), pd.Timestamp("2024-07-06"))
    by_day = pd.Series(1, index=hours).groupby(hours.date).sum()
    # 3 July closes at 13:00 New York (17:00 UTC): 09:00 (from 09:30), 10:00, 11:00, 12:00; 4 July is a holiday;
    # 5 July is a full session: 09:00 .. 15:00 New York
    assert by_day.to_dict() == {pd.Timestamp("2024-07-03").date(): 4, pd.Timestamp("2024-07-05").date(): 7}
    assert hours[0] == pd.Timestamp("2024-07-03 13:00", tz="UTC") and hours[-1] == pd.Timestamp("2024-07-05 19:00",
                                                                                                 tz="UTC")
    days = calendars.bar_opens("XNYS", "1d", pd.Timestamp("2024-07-01"), pd.Timestamp("2024-07-07"))
    assert list(days.strftime("%Y-%m-%d")) == ["2024-07-01", "2024-07-02", "2024-07-03", "2024-07-05"]
    assert str(days.tz) == "UTC" and (days == days.normalize()).all()  # session dates at 00:00 UTC


def test_xkrx_has_no_sessions_over_chuseok_2024() -> None:
    days = calendars.bar_opens("XKRX", "1d", pd.Timestamp("2024-09-12"), pd.Timestamp("2024-09-20"))
    assert list(days.strftime("%m-%d")) == ["09-12", "09-13", "09-19", "09-20"]
    half_hours = calendars.bar_opens("XKRX", "30m", pd.Timestamp("2024-09-13"), pd.Timestamp("2024-09-13 23:00"))
    # 09:00 .. 15:30 Seoul is 00:00 .. 06:30 UTC: 13 half-hour bars
    assert len(half_hours) == 13 and half_hours[0] == pd.Timestamp("2024-09-13 00:00", tz="UTC")


def test_bars_per_year_counts_a_session_of_bars() -> None:
    assert calendars.bars_per_year("XNYS", "1d") == pytest.approx(251.6)
    assert calendars.bars_per_year("XNYS", "1h") == pytest.approx(251.6 * 7)  # 09:00 (half) .. 15:00
    assert calendars.bars_per_year("XNYS", "30m") == pytest.approx(251.6 * 13)
    assert calendars.bars_per_year("XKRX", "1h") == pytest.approx(245.8 * 7)  # 09:00 .. 15:00 (half)
    assert calendars.year_days("XNYS", "1h") == pytest.approx(251.6 * 7 / 24)


def test_twenty_years_of_real_orcl_candles_have_no_gap_on_the_xnys_calendar(run_cli, workdir: Path) -> None:
    source = shared_file("orcl-1995-2014.txt")
    stored = run_cli("data", "import", str(source), "--exchange", "alpaca", "--symbol", "ORCL")
    assert stored.returncode == 0, stored.stderr
    valid = run_cli("data", "validate", "--json", "found.json")
    assert valid.returncode == 0, valid.stdout
    listing = run_cli("data", "list", "--json", "list.json")
    rows = json.loads((workdir / "list.json").read_text())
    assert listing.returncode == 0 and rows[0]["gaps"] == 0 and rows[0]["calendar"] == "XNYS"

    frame = pd.read_csv(source, parse_dates=["Date"])
    dropped = frame["Date"].iloc[[100, 2000, 2001]]  # one session, and a run of two
    holiday = frame.iloc[[-1]].assign(Date=pd.Timestamp("2014-12-25"))  # Christmas: no session
    edited = pd.concat([frame.drop(index=[100, 2000, 2001]), holiday]).sort_values("Date")
    edited.to_csv(workdir / "orcl-edited.csv", index=False)
    assert run_cli("data", "import", "orcl-edited.csv", "--exchange", "alpaca", "--symbol", "ORCL").returncode == 0
    found = run_cli("data", "validate", "--json", "found.json")
    assert found.returncode == 1
    found_problems = json.loads((workdir / "found.json").read_text())[0]["problems"]
    problems = {p["kind"].split(" (")[0]: p for p in found_problems}
    assert problems["gap"]["count"] == 2  # two runs of missing sessions
    assert "3 missing" in next(p["kind"] for p in found_problems if p["kind"].startswith("gap"))
    assert pd.Timestamp(problems["gap"]["first"]) == pd.Timestamp(dropped.iloc[0], tz="UTC")
    assert problems["candle outside the XNYS sessions"]["count"] == 1
    assert pd.Timestamp(problems["candle outside the XNYS sessions"]["first"]) == pd.Timestamp("2014-12-25", tz="UTC")


def test_the_same_candles_outside_a_broker_folder_keep_the_weekday_rule(run_cli, workdir: Path) -> None:
    source = shared_file("orcl-1995-2014.txt")
    assert run_cli("data", "import", str(source), "--exchange", "local", "--symbol", "ORCL").returncode == 0
    listing = run_cli("data", "list", "--json", "list.json")
    row = json.loads((workdir / "list.json").read_text())[0]
    assert listing.returncode == 0 and row["calendar"] is None


def cagr_by_hand(equity_start: float, equity_end: float, bars: int, bars_per_year: float) -> float:
    return ((equity_end / equity_start) ** (bars_per_year / bars) - 1) * 100


def hourly_session_candles(days: pd.DatetimeIndex) -> pd.DataFrame:
    """Hourly XNYS bars of ``days`` (09:00 .. 15:00 New York), a deterministic walk."""
    stamps = []
    for day in days:
        opening = pd.Timestamp(day.date()).tz_localize("America/New_York") + pd.Timedelta(hours=9)
        stamps += [(opening + pd.Timedelta(hours=h)).tz_convert("UTC") for h in range(7)]
    close = 100 * np.exp(np.cumsum(np.sin(np.arange(len(stamps)) / 9) * 0.004))
    return pd.DataFrame({"open": close, "high": close * 1.002, "low": close * 0.998, "close": close,
                         "volume": 1000.0}, index=pd.DatetimeIndex(stamps, name="time"))


@pytest.mark.parametrize("timeframe", ["1d", "1h"])
def test_a_stored_stock_series_is_annualised_with_its_calendars_bars(run_cli, workdir: Path, timeframe: str) -> None:
    if timeframe == "1d":
        source = shared_file("orcl-1995-2014.txt")
    else:
        days = calendars.bar_opens("XNYS", "1d", pd.Timestamp("2024-01-02"), pd.Timestamp("2024-06-28"))
        hourly_session_candles(days).to_csv(workdir / "hourly.csv")
        source = workdir / "hourly.csv"
    assert run_cli("data", "import", str(source), "--exchange", "alpaca", "--symbol", "ORCL").returncode == 0
    result = run_cli("backtest", "sma_cross", "--exchange", "alpaca", "--symbol", "ORCL", "-p", "fast=5",
                     "-p", "slow=20", "--json", "out.json")
    assert result.returncode == 0, result.stderr
    doc = json.loads((workdir / "out.json").read_text())
    per_year = 251.6 if timeframe == "1d" else 251.6 * 7
    assert doc["year_days_source"] == "calendar"
    assert doc["year_days"] == pytest.approx(per_year * (1 if timeframe == "1d" else 1 / 24))
    bars = len(pd.read_csv(source))
    assert doc["cagr_pct"] == pytest.approx(cagr_by_hand(doc["initial_cash"], doc["final_equity"], bars, per_year),
                                            rel=1e-9)
    note = " ".join(result.stdout.split())
    assert f"annualising with the XNYS calendar: {per_year:,.0f} {timeframe} bars a year" in note, result.stdout


def test_live_candles_keep_the_sessions_bars_only() -> None:
    """What a stock bot's strategy sees: extended-hours bars dropped (the store keeps none), daily bars kept."""
    hours = pd.date_range("2024-03-27 12:00", "2024-03-28 23:00", freq="1h", tz="UTC")  # 08:00 .. 19:00 New York
    frame = pd.DataFrame({"open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0}, index=hours)
    kept = calendars.session_candles(frame, "XNYS", "1h")
    assert list(kept.index.hour) == [13, 14, 15, 16, 17, 18, 19] * 2  # 09:00 (from 09:30) .. 15:00 New York
    days = pd.DataFrame({"open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0},
                        index=pd.date_range("2024-03-25", periods=4, freq="D", tz="UTC"))
    assert calendars.session_candles(days, "XNYS", "1d").equals(days)
