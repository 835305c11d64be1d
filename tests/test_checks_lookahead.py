"""The lookahead check: planted biases are caught (and their causal twins are not), bundled strategies are clean."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import STRATEGIES, shared_file

from systrade import Signals, Strategy, crossed_above, crossed_below
from systrade.checks.lookahead import _bar_spacing, _inside_buckets, check_lookahead, cut_points
from systrade.data.readers import read_ohlcv
from systrade.data.sample import generate_sample
from systrade.data.validate import prepare
from systrade.strategy import build_strategy, load_strategy

BUNDLED = ["sma_cross", "rsi_reversion", "bollinger_breakout", "donchian_breakout", "macd_trend",
           "daily_filtered_trend"]


def check_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The real `systrade` entry point in a subprocess, with the `check` commands registered."""
    code = "import systrade.cli.check; from systrade.cli import main; main()"
    env = {k: v for k, v in os.environ.items() if k != "SYSTRADE_CONFIG"}
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env={**env, "COLUMNS": "200"},
                          capture_output=True, text=True, timeout=300)


# ---------------------------------------------------------------- planted biases and their causal twins


class ShiftAhead(Strategy):
    """Trades on tomorrow's close: shift(-1)."""

    def signals(self, data):
        ahead = data["close"].shift(-1)
        return Signals(entries=(ahead > data["close"]).fillna(False), exits=(ahead < data["close"]).fillna(False))


class ShiftBehind(Strategy):
    def signals(self, data):
        before = data["close"].shift(1)
        return Signals(entries=(before > data["close"]).fillna(False), exits=(before < data["close"]).fillna(False))


class Centred(Strategy):
    """A centred rolling window: its value at t averages 10 bars after t."""

    def signals(self, data):
        mean = data["close"].rolling(21, center=True).mean()
        return Signals(entries=crossed_above(data["close"], mean), exits=crossed_below(data["close"], mean))


class Trailing(Strategy):
    def signals(self, data):
        mean = data["close"].rolling(21).mean()
        return Signals(entries=crossed_above(data["close"], mean), exits=crossed_below(data["close"], mean))


class FullSampleMean(Strategy):
    """Normalises by the mean of the whole sample."""

    def signals(self, data):
        level = data["close"] / data["close"].mean()
        return Signals(entries=crossed_above(level, 1.0), exits=crossed_below(level, 1.0))


class ExpandingMean(Strategy):
    def signals(self, data):
        level = data["close"] / data["close"].expanding().mean()
        return Signals(entries=crossed_above(level, 1.0), exits=crossed_below(level, 1.0))


class FullSampleMax(Strategy):
    """Normalises by the maximum of the whole sample."""

    def signals(self, data):
        level = data["close"] / data["close"].max()
        return Signals(entries=crossed_above(level, 0.9), exits=crossed_below(level, 0.8))


class ExpandingMax(Strategy):
    def signals(self, data):
        level = data["close"] / data["close"].cummax()
        return Signals(entries=crossed_above(level, 0.9), exits=crossed_below(level, 0.8))


class HigherTimeframe(Strategy):
    """Resamples to a higher timeframe without shifting: each bar sees its whole bucket's high."""

    rule = "1D"
    shift = 0

    def signals(self, data):
        high = data["high"].resample(self.rule).max().shift(self.shift)
        bucket_high = high.reindex(data.index, method="ffill")
        return Signals(entries=(data["high"] >= bucket_high).fillna(False),
                       exits=(data["close"] < data["close"].rolling(5).min().shift(1)).fillna(False))


class HigherTimeframeShifted(HigherTimeframe):
    shift = 1  # the previous bucket's high: known when the bucket starts (rule labels are bucket starts)


class MonthlyHigh(HigherTimeframe):
    rule = "MS"


class MonthlyHighShifted(HigherTimeframe):
    rule, shift = "MS", 1


class BackFilled(Strategy):
    """bfill: the warmup gap of a moving average is filled with its first (future) value."""

    def signals(self, data):
        mean = data["close"].rolling(20).mean().bfill()
        return Signals(entries=data["close"] > mean, exits=data["close"] < mean)


class ForwardFilled(Strategy):
    def signals(self, data):
        mean = data["close"].rolling(20).mean().ffill()
        return Signals(entries=(data["close"] > mean).fillna(False), exits=(data["close"] < mean).fillna(False))


class BackFilledEvents(Strategy):
    """bfill inside the data: every bar learns the price of the next volume spike."""

    def signals(self, data):
        spike = data["close"].where(data["volume"] > data["volume"].rolling(50).quantile(0.9))
        nxt = spike.shift(-1).bfill()
        return Signals(entries=(nxt > data["close"]).fillna(False), exits=(nxt < data["close"]).fillna(False))


def _frame(path: Path) -> pd.DataFrame:
    return prepare(read_ohlcv(path), str(path))


@pytest.fixture(scope="module")
def eth() -> pd.DataFrame:
    return _frame(shared_file("ETH_BTC-5m.csv"))


@pytest.fixture(scope="module")
def orcl() -> pd.DataFrame:
    return _frame(shared_file("orcl-1995-2014.txt"))


@pytest.fixture(scope="module")
def sample() -> pd.DataFrame:
    return generate_sample()


PLANTED = [ShiftAhead, Centred, FullSampleMean, FullSampleMax, BackFilled, BackFilledEvents]
TWINS = [ShiftBehind, Trailing, ExpandingMean, ExpandingMax, ForwardFilled]


@pytest.mark.parametrize("data", ["eth", "orcl", "sample"])
@pytest.mark.parametrize("cls", PLANTED, ids=lambda c: c.__name__)
def test_planted_bias_is_caught(cls, data: str, request) -> None:
    frame = request.getfixturevalue(data)
    report = check_lookahead(cls(), frame)
    assert report.biased, report.message()
    assert report.first_bar < report.cut <= len(frame) - 1
    assert report.truncated_value != report.full_value
    assert report.first_time == frame.index[report.first_bar].isoformat()


@pytest.mark.parametrize("data", ["eth", "orcl", "sample"])
@pytest.mark.parametrize("cls", TWINS, ids=lambda c: c.__name__)
def test_causal_twins_are_clean(cls, data: str, request) -> None:
    report = check_lookahead(cls(), request.getfixturevalue(data))
    assert not report.biased, report.message()
    assert report.skipped_cuts == []


def test_shift_minus_one_is_found_at_the_last_bar_before_a_cut(sample: pd.DataFrame) -> None:
    report = check_lookahead(ShiftAhead(), sample)
    assert report.first_bar == report.cut - 1  # only the last bar before a cut sees the missing next close
    assert report.biased_cuts >= report.cuts - 2  # and every cut shows it (ties aside)


def test_leading_bfill_is_found_inside_the_warmup_gap(sample: pd.DataFrame) -> None:
    report = check_lookahead(BackFilled(), sample)
    assert report.first_bar < 19  # the bars before the first full 20-bar mean


@pytest.mark.parametrize("cls, data, bucket", [(HigherTimeframe, "eth", "1D"), (HigherTimeframe, "sample", "1D"),
                                                (MonthlyHigh, "orcl", "MS")],
                         ids=["eth-day", "sample-day", "orcl-month"])
def test_unshifted_higher_timeframe_is_caught_inside_a_bucket(cls, data: str, bucket: str, request) -> None:
    frame = request.getfixturevalue(data)
    report = check_lookahead(cls(), frame)
    assert report.biased, report.message()
    first, last_kept = frame.index[report.first_bar], frame.index[report.cut - 1]
    # the biased bar and the cut's last bar share a bucket that the cut left incomplete
    same = (first.year, first.month) == (last_kept.year, last_kept.month)
    assert same if bucket == "MS" else first.floor("1D") == last_kept.floor("1D")
    assert cls is not HigherTimeframe or report.biased_cuts >= 10


@pytest.mark.parametrize("cls, data", [(HigherTimeframeShifted, "eth"), (HigherTimeframeShifted, "sample"),
                                       (MonthlyHighShifted, "orcl")], ids=["eth-day", "sample-day", "orcl-month"])
def test_shifted_higher_timeframe_is_clean(cls, data: str, request) -> None:
    report = check_lookahead(cls(), request.getfixturevalue(data))
    assert not report.biased, report.message()


def test_cuts_fall_inside_buckets_and_reach_the_start_and_the_end() -> None:
    for freq, n in (("5min", 20_000), ("1h", 10_000), ("1D", 3_000)):
        index = pd.date_range("2020-01-01", periods=n, freq=freq, tz="UTC")
        cuts = cut_points(index, warmup=50)
        spacing = _bar_spacing(index)
        spread = [c for c in cuts if c > 400 and c != n - 1]
        assert len(spread) >= 40
        inside = sum(_inside_buckets(index[c - 1], index[c], spacing) for c in spread)
        assert inside == len(spread), freq
        assert {2, 3, 5, 51, 52} <= set(cuts) and n - 1 in cuts
        assert len(cuts) <= 80  # a few dozen strategy calls, not one per bar


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_strategies_are_clean(name: str, eth: pd.DataFrame, orcl: pd.DataFrame, sample: pd.DataFrame) -> None:
    strategy = build_strategy(load_strategy(name, STRATEGIES))
    for frame in (eth, orcl, sample):
        report = check_lookahead(strategy, frame)
        assert not report.biased, report.message()
        assert report.skipped_cuts == []


def test_a_strategy_failing_on_short_data_skips_those_cuts(sample: pd.DataFrame) -> None:
    class NeedsHistory(Strategy):
        def signals(self, data):
            if len(data) < 100:
                raise ValueError("too short")
            return Trailing().signals(data)

    report = check_lookahead(NeedsHistory(), sample)
    assert not report.biased
    assert report.skipped_cuts and all("too short" in s for s in report.skipped_cuts)


def test_signal_columns_other_than_entries_are_compared(sample: pd.DataFrame) -> None:
    class LateExit(Strategy):
        def signals(self, data):
            mean = data["close"].rolling(10).mean()
            never = pd.Series(False, index=data.index)
            return Signals(entries=never, exits=never, short_entries=crossed_above(data["close"], mean),
                           short_exits=(data["close"].shift(-2) > data["close"]).fillna(False))

    report = check_lookahead(LateExit(), sample)
    assert report.biased and report.column == "short_exits"


PLANTED_FILE = '''
from systrade import Signals, Strategy

class Peeks(Strategy):
    def signals(self, data):
        ahead = data["close"].shift(-1)
        return Signals(entries=(ahead > data["close"]).fillna(False), exits=(ahead < data["close"]).fillna(False))
'''


def test_cli_exit_codes_and_json(workdir: Path) -> None:
    (workdir / "peeks.py").write_text(PLANTED_FILE)
    biased = check_cli("check", "lookahead", "peeks.py", "--json", "biased.json", cwd=workdir)
    assert biased.returncode == 1, biased.stderr
    assert "lookahead: entries" in biased.stdout or "lookahead: exits" in biased.stdout
    document = json.loads((workdir / "biased.json").read_text())
    assert document["biased"] is True and document["column"] in ("entries", "exits")
    assert document["first_bar"] == document["cut"] - 1 and document["synthetic"] is True
    clean = check_cli("check", "lookahead", "sma_cross", "-p", "fast=5", "--json", "clean.json", cwd=workdir)
    assert clean.returncode == 0, clean.stderr
    assert json.loads((workdir / "clean.json").read_text())["biased"] is False
    bad = check_cli("check", "lookahead", "nosuch", cwd=workdir)
    assert bad.returncode == 2 and "unknown strategy" in bad.stderr


def test_real_data_through_the_cli(workdir: Path) -> None:
    path = shared_file("orcl-1995-2014.txt")
    result = check_cli("check", "lookahead", "donchian_breakout", "--data", str(path), cwd=workdir)
    assert result.returncode == 0 and "no lookahead" in result.stdout


def test_check_is_quick_on_100k_bars() -> None:
    """Not a timing assertion (see benchmarks/checks_speed.py): the check calls the strategy a few dozen times."""
    frame = generate_sample(bars=100_000)
    calls = []

    class Counting(Trailing):
        def signals(self, data):
            calls.append(len(data))
            return super().signals(data)

    report = check_lookahead(Counting(), frame)
    assert not report.biased and len(calls) == report.cuts + 1 <= 81
    assert np.mean(calls) < 0.6 * len(frame)


def test_paper_run_refuses_a_biased_strategy_unless_allowed(tmp_path: Path) -> None:
    from conftest import systrade_exe
    from fakes.binance import FakeBinance
    from paper_helpers import flat_candles, paper_config, sma_bot

    (tmp_path / "peeks.py").write_text(PLANTED_FILE)
    bars = flat_candles(120, pd.Timestamp("2024-05-01", tz="UTC"), "1min")
    with FakeBinance(clock_ms=int(bars.index[60].value // 1_000_000) + 30_000, spread_bps=0, book_qty=1e6) as fake:
        fake.add_market("BTC/USDT", bars, tick_size=1e-8, step_size=1e-8, min_qty=1e-8)
        config = paper_config(tmp_path / "systrade.toml", fake, [
            sma_bot(), sma_bot(name="peeker", strategy=str(tmp_path / "peeks.py"), params={})])
        env = {**{k: v for k, v in os.environ.items() if k != "SYSTRADE_CONFIG"}, "SYSTRADE_CONFIG": str(config),
               "COLUMNS": "200"}

        def paper_run(*extra: str) -> subprocess.CompletedProcess:
            return subprocess.run([systrade_exe(), "paper", "run", "--once", *extra], cwd=tmp_path, env=env,
                                  capture_output=True, text=True, timeout=300)

        refused = paper_run()
        assert refused.returncode == 1, refused.stderr
        assert "bot peeker: strategy peeks looks ahead" in refused.stdout and "--allow-lookahead" in refused.stdout
        assert "btc-sma" not in refused.stdout  # the clean bot is not reported
        assert not (tmp_path / "paper.sqlite").exists()  # nothing was started or written
        allowed = paper_run("--allow-lookahead")
        assert allowed.returncode == 0, allowed.stderr
        assert "looks ahead" in allowed.stdout and (tmp_path / "paper.sqlite").exists()
