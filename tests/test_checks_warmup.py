"""The warmup check: exact for rolling windows, more than the window for recursive indicators, and used."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd
import pytest
from conftest import STRATEGIES, shared_file
from test_checks_lookahead import check_cli

from systrade.checks.common import raw_signals
from systrade.checks.preflight import preflight
from systrade.checks.warmup import measure_warmup
from systrade.config import BotSettings, load_settings
from systrade.data.readers import read_ohlcv
from systrade.data.sample import generate_sample
from systrade.data.validate import prepare
from systrade.live.broker import PaperBroker
from systrade.live.ledger import Ledger
from systrade.live.replay import ReplayMarket
from systrade.live.runner import DEFAULT_HISTORY, BotRunner
from systrade.strategy import build_strategy, load_strategy


@pytest.fixture(scope="module")
def sample() -> pd.DataFrame:
    return generate_sample()


def strategy(name: str, **params):
    return build_strategy(load_strategy(name, STRATEGIES), params)


@pytest.mark.parametrize("name, params, expected", [
    ("sma_cross", {}, 31),  # slow SMA of 30 bars, and the cross looks at the bar before: 31
    ("sma_cross", {"fast": 5, "slow": 60}, 61),
    ("donchian_breakout", {}, 21),  # a 20-bar channel shifted by one bar
    ("bollinger_breakout", {"window": 40}, 41),
])
def test_rolling_windows_need_exactly_their_length(name: str, params: dict, expected: int,
                                                   sample: pd.DataFrame) -> None:
    report = measure_warmup(strategy(name, **params), sample)
    assert report.warmup == expected and report.bounded


@pytest.mark.parametrize("name, window", [("rsi_reversion", 14), ("macd_trend", 200)])
def test_recursive_indicators_need_more_than_their_window(name: str, window: int, sample: pd.DataFrame) -> None:
    report = measure_warmup(strategy(name), sample)
    assert report.warmup > window + 1 and report.bounded


def _last_signal(s, frame: pd.DataFrame, start: int, end: int, column: str) -> bool:
    return bool(raw_signals(s, frame.iloc[start:end + 1])[column][-1])


@pytest.mark.parametrize("name", ["rsi_reversion", "macd_trend", "sma_cross"])
def test_the_measured_warmup_is_minimal_and_sufficient(name: str, sample: pd.DataFrame) -> None:
    """Checked independently of how the check searches: one history shorter fails at the bar it names, and
    histories of the measured length match the full history at random ends."""
    s = strategy(name)
    report = measure_warmup(s, sample)
    full = raw_signals(s, sample)
    worst = sample.index.get_loc(pd.Timestamp(report.worst_time))
    start = worst - (report.warmup - 1) + 1  # a history of warmup - 1 candles ending at the worst bar
    assert sample.index[start] == pd.Timestamp(report.worst_start)
    assert _last_signal(s, sample, start, worst, report.worst_column) != bool(full[report.worst_column][worst])
    rounding = {pd.Timestamp(r.split()[0]) for r in report.rounding_bars}
    rng = random.Random(5)
    for end in rng.sample(range(report.warmup, len(sample)), 80):
        if sample.index[end] in rounding:
            continue
        window = raw_signals(s, sample.iloc[end - report.warmup + 1:end + 1])
        assert all(bool(window[c][-1]) == bool(full[c][end]) for c in full), sample.index[end]


@pytest.mark.parametrize("name", ["sma_cross", "rsi_reversion", "bollinger_breakout", "donchian_breakout",
                                  "macd_trend"])
def test_bundled_warmups_on_real_data(name: str) -> None:
    for file in ("ETH_BTC-5m.csv", "orcl-1995-2014.txt"):
        path = shared_file(file)
        report = measure_warmup(strategy(name), prepare(read_ohlcv(path), str(path)))
        assert report.bounded and report.warmup >= 21, (file, report.message())


def test_the_daemon_fetches_the_measured_warmup_plus_a_margin(tmp_path: Path, sample: pd.DataFrame) -> None:
    ref = load_strategy("rsi_reversion", STRATEGIES)
    bot = BotSettings(name="b", strategy="rsi_reversion", exchange="x", symbol="A/B", timeframe="1h")
    market = ReplayMarket(sample, "A/B", 0.0)

    def runner(**kwargs) -> BotRunner:
        return BotRunner(bot, ref, Ledger("sqlite://"), market, PaperBroker(market), **kwargs)

    assert runner().history == DEFAULT_HISTORY  # the strategy declares no warmup
    assert runner(warmup=128).history == 128 + DEFAULT_HISTORY
    configured = bot.model_copy(update={"candles": 500})
    assert BotRunner(configured, ref, Ledger("sqlite://"), market, PaperBroker(market), warmup=128).history == 500


def test_preflight_measures_every_bot_on_the_sample(tmp_path: Path) -> None:
    config = tmp_path / "systrade.toml"
    config.write_text(f'[strategies]\ndir = "{STRATEGIES.as_posix()}"\n'
                      f'[data]\ndir = "{(tmp_path / "data").as_posix()}"\n'
                      '[[paper.bots]]\nname = "a"\nstrategy = "macd_trend"\nexchange = "binance"\n'
                      'symbol = "BTC/USDT"\ntimeframe = "1h"\n'
                      '[[paper.bots]]\nname = "b"\nstrategy = "sma_cross"\nexchange = "binance"\n'
                      'symbol = "ETH/USDT"\ntimeframe = "1h"\n')
    checks = {c.bot: c for c in preflight(load_settings(str(config)))}
    assert checks["b"].warmup == 31 and checks["a"].warmup > 201
    assert not checks["a"].lookahead.biased and "synthetic" in checks["a"].source
    assert not (tmp_path / "data").exists()  # checking writes nothing


def test_cli_and_strategies_show(workdir: Path, run_cli) -> None:
    result = check_cli("check", "warmup", "sma_cross", "-p", "slow=50", "--json", "w.json", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "warmup: 51 candles" in result.stdout
    document = json.loads((workdir / "w.json").read_text())
    assert document["warmup"] == 51 and document["declared"] == 0 and document["synthetic"] is True
    shown = run_cli("strategies", "show", "donchian_breakout")
    assert shown.returncode == 0, shown.stderr
    assert "measured warmup: 21 candles" in shown.stdout
