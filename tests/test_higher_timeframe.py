"""Higher timeframes inside signals(): ``self.higher(data, "1d")`` sees only the days that had closed by each
bar's close. The expected values are worked out here with plain pandas from the hourly candles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import STRATEGIES
from test_checks_lookahead import check_cli
from test_checks_parity import ETH, parity

from systrade import Signals, Strategy, crossed_above
from systrade.backtest.request import BacktestOptions, prepare_backtest
from systrade.checks.parity import check_parity
from systrade.config import Settings, StrategySettings
from systrade.data.align import higher_timeframe
from systrade.errors import UserError
from systrade.strategy import load_strategy


def hourly(start: str, hours: int, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 + rng.normal(0, 1, hours).cumsum()
    index = pd.date_range(start, periods=hours, freq="1h", tz="UTC", name="time")
    return pd.DataFrame({"open": close + 0.3, "high": close + 1.0, "low": close - 1.0, "close": close,
                         "volume": rng.integers(1, 100, hours).astype(float)}, index=index)


def day_by_hand(data: pd.DataFrame, day: str) -> list[float]:
    rows = data.loc[day]
    return [rows["open"].iloc[0], rows["high"].max(), rows["low"].min(), rows["close"].iloc[-1],
            rows["volume"].sum()]


def test_a_bar_sees_the_days_closed_by_its_close_never_todays() -> None:
    data = hourly("2024-03-04", 72)  # Monday to Wednesday, from midnight
    daily = higher_timeframe(data, "1d")
    assert daily.loc["2024-03-04 00:00":"2024-03-04 22:00"].isna().all().all()  # no day has closed yet
    assert daily.loc["2024-03-04 23:00"].tolist() == day_by_hand(data, "2024-03-04")  # closes at midnight with it
    for hour in ("2024-03-05 00:00", "2024-03-05 13:00", "2024-03-05 22:00"):
        assert daily.loc[hour].tolist() == day_by_hand(data, "2024-03-04")  # yesterday's, never today's forming one
    assert daily.loc["2024-03-06 13:00"].tolist() == day_by_hand(data, "2024-03-05")


def test_a_day_the_data_starts_inside_is_never_passed_off_as_a_whole_candle() -> None:
    data = hourly("2024-03-04 05:00", 60)
    daily = higher_timeframe(data, "1d")
    assert daily.loc[:"2024-03-05 22:00"].isna().all().all()  # 4 March is partial: NaN
    assert daily.loc["2024-03-05 23:00"].tolist() == day_by_hand(data, "2024-03-05")


def test_no_value_depends_on_a_later_bar() -> None:
    """Cut the history anywhere: every row up to the cut is the same (what the lookahead check asks)."""
    data = hourly("2024-03-01 07:00", 24 * 20)
    full = higher_timeframe(data, "1d", apply=lambda days: days["close"].rolling(3).mean())
    whole = higher_timeframe(data, "4h")
    for cut in (30, 97, 200, 333, 479):
        part = data.iloc[:cut]
        pd.testing.assert_series_equal(higher_timeframe(part, "1d", apply=lambda d: d["close"].rolling(3).mean()),
                                       full.iloc[:cut])
        pd.testing.assert_frame_equal(higher_timeframe(part, "4h"), whole.iloc[:cut])


def test_weeks_start_on_monday_and_the_timeframe_must_divide() -> None:
    data = hourly("2024-03-04", 24 * 15)  # from Monday 4 March
    weekly = higher_timeframe(data, "1w")
    week = data.loc["2024-03-04":"2024-03-10"]
    assert weekly.loc["2024-03-11 12:00"].tolist() == [week["open"].iloc[0], week["high"].max(), week["low"].min(),
                                                        week["close"].iloc[-1], week["volume"].sum()]
    assert weekly.loc["2024-03-10 22:00"].isna().all()  # the first week has not closed yet
    with pytest.raises(UserError, match="90m is not a whole multiple of the data's 1h bars"):
        higher_timeframe(data, "90m")


class LeakyDaily(Strategy):
    """Merges the daily close without the shift: each bar sees today's close (freqtrade's classic mistake)."""

    def signals(self, data):
        daily_close = data["close"].resample("1D").last().reindex(data.index, method="ffill")
        return Signals(entries=crossed_above(data["close"], daily_close), exits=data["close"] < daily_close)


class CausalDaily(Strategy):
    """The same idea through self.higher."""

    def signals(self, data):
        daily_close = self.higher(data, "1d")["close"]
        return Signals(entries=crossed_above(data["close"], daily_close), exits=data["close"] < daily_close)


def test_check_lookahead_catches_the_unshifted_merge_and_passes_self_higher(tmp_path: Path) -> None:
    source = Path(__file__).read_text()
    strategies = source[source.index("class LeakyDaily"):source.index("def test_check_lookahead_catches")]
    (tmp_path / "daily.py").write_text("from systrade import Signals, Strategy, crossed_above\n\n\n" + strategies)
    leaky = check_cli("check", "lookahead", "daily.py:LeakyDaily", cwd=tmp_path)
    assert leaky.returncode == 1, leaky.stdout + leaky.stderr
    causal = check_cli("check", "lookahead", "daily.py:CausalDaily", cwd=tmp_path)
    assert causal.returncode == 0, causal.stdout + causal.stderr


def test_the_bundled_daily_filter_trades_alike_in_backtest_and_replay() -> None:
    options = BacktestOptions(strategy="daily_filtered_trend", start="2023-03-01", end="2023-04-01", fees=0.001,
                              direction="long", params=["days=3"])
    prepared = prepare_backtest(options, Settings(strategies=StrategySettings(dir=str(STRATEGIES))))
    report = check_parity(prepared, load_strategy("daily_filtered_trend", STRATEGIES))
    assert report.warmup >= 3 * 24 + 23  # three whole days, and the hours of the partial one before them
    assert report.replay_errors == [] and report.identical and report.backtest_trades > 0, report.differences[:1]


def test_parity_says_a_history_too_short_for_the_days_is_too_short() -> None:
    """On 5 days of 5m bars the measured warmup is too short for 3 daily candles: parity says so, not near-tie."""
    report = parity("daily_filtered_trend", {**ETH, "end": "2018-01-22"}, {"direction": "long",
                                                                          "params": ["days=3", "fast=6", "slow=24"]})
    assert not report.identical
    assert "the tick's history is too short" in report.differences[0]["why"]
