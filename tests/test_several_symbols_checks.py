"""Checks of strategies trading several symbols together (``symbols = [...]``): lookahead and warmup cover every
traded symbol and every input, and name the symbol; a warmup the data is too short to measure is said to be."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from conftest import STRATEGIES, systrade_exe
from test_several_symbols import ETFS, etf_candles

from systrade.backtest.options import BacktestOptions
from systrade.backtest.request import prepare_backtest
from systrade.checks.parity import check_parity
from systrade.checks.warmup import DataTooShort, measure_warmup
from systrade.config import Settings, StrategySettings
from systrade.data import calendars
from systrade.data.sample import generate_sample
from systrade.strategy import build_strategy, load_strategy

STRATEGY_FILE = '''
from systrade import Signals, Strategy, crossed_above, crossed_below


class Honest(Strategy):
    """SPY on a 10-session average, QQQ on a 30-session one."""

    symbols = ["SPY", "QQQ"]

    def signals(self, data):
        out = {}
        for symbol, window in (("SPY", 10), ("QQQ", 30)):
            close = data[symbol]["close"]
            mean = close.rolling(window).mean()
            out[symbol] = Signals(entries=crossed_above(close, mean), exits=crossed_below(close, mean))
        return out


class PeekNextSpy(Strategy):
    """QQQ's entries read SPY's next close: a lookahead in QQQ's signals only."""

    symbols = ["SPY", "QQQ"]

    def signals(self, data):
        spy, qqq = data["SPY"]["close"], data["QQQ"]["close"]
        return {"SPY": Signals(entries=spy > spy.shift(1)),
                "QQQ": Signals(entries=(spy.shift(-1) > spy).reindex(qqq.index, fill_value=False))}


class PeekInput(Strategy):
    """SPY's entries read the TLT input's next close."""

    symbols = ["SPY", "QQQ"]
    inputs = ["TLT"]

    def signals(self, data):
        tlt = self.inputs["TLT"]["close"]
        spy, qqq = data["SPY"]["close"], data["QQQ"]["close"]
        return {"SPY": Signals(entries=(tlt.shift(-1) > tlt).reindex(spy.index, fill_value=False)),
                "QQQ": Signals(entries=qqq > qqq.shift(1))}


class HonestInput(Strategy):
    """SPY's entries follow the TLT input's own close (causal)."""

    symbols = ["SPY", "QQQ"]
    inputs = ["TLT"]

    def signals(self, data):
        tlt = self.inputs["TLT"]["close"]
        spy, qqq = data["SPY"]["close"], data["QQQ"]["close"]
        return {"SPY": Signals(entries=(tlt > tlt.shift(1)).reindex(spy.index, fill_value=False)),
                "QQQ": Signals(entries=qqq > qqq.shift(1))}
'''


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A project whose store holds SPY, QQQ and TLT daily candles (2019-2022) and a file of test strategies."""
    root = tmp_path_factory.mktemp("several")
    (root / "systrade.toml").write_text(
        f'[strategies]\ndir = "{STRATEGIES.as_posix()}"\n[data]\ndir = "{(root / "data").as_posix()}"\n')
    days = calendars.bar_opens("XNYS", "1d", pd.Timestamp("2019-01-02"), pd.Timestamp("2022-12-30"))
    for i, (symbol, drift) in enumerate(zip(ETFS, (0.0003, 0.0004, 0.0001), strict=True)):
        etf_candles(i, drift, days).to_csv(root / f"{symbol}.csv")
        stored = cli(root, "data", "import", f"{symbol}.csv", "--exchange", "alpaca", "--symbol", symbol)
        assert stored.returncode == 0, stored.stderr
    (root / "several.py").write_text(STRATEGY_FILE)
    return root


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([systrade_exe(), *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "COLUMNS": "200"})


def test_the_rotation_has_no_lookahead(project: Path) -> None:
    result = cli(project, "check", "lookahead", "momentum_rotation", "--exchange", "alpaca", "--json", "la.json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((project / "la.json").read_text())
    assert report["biased"] is False and report["symbols"] == ETFS


def test_a_lookahead_in_one_symbols_signals_is_caught_and_that_symbol_named(project: Path) -> None:
    result = cli(project, "check", "lookahead", "several.py:PeekNextSpy", "--exchange", "alpaca", "--json", "p.json")
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads((project / "p.json").read_text())
    assert report["biased"] and report["symbol"] == "QQQ" and report["column"] == "entries"
    assert "QQQ" in result.stdout


def test_a_lookahead_through_an_input_is_caught(project: Path) -> None:
    peek = cli(project, "check", "lookahead", "several.py:PeekInput", "--exchange", "alpaca", "--json", "i.json")
    assert peek.returncode == 1, peek.stdout + peek.stderr
    assert json.loads((project / "i.json").read_text())["symbol"] == "SPY"
    honest = cli(project, "check", "lookahead", "several.py:HonestInput", "--exchange", "alpaca")
    assert honest.returncode == 0, honest.stdout + honest.stderr


def test_the_warmup_is_the_longest_symbols_and_names_it(project: Path) -> None:
    """A 30-session average and the cross's look at the bar before: 31 candles (worked out as for sma_cross)."""
    result = cli(project, "check", "warmup", "several.py:Honest", "--exchange", "alpaca", "--json", "w.json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((project / "w.json").read_text())
    assert report["warmup"] == 31 and report["worst_symbol"] == "QQQ"


def test_a_symbol_list_other_than_the_strategys_is_refused(project: Path) -> None:
    result = cli(project, "check", "lookahead", "momentum_rotation", "--exchange", "alpaca", "--symbol", "SPY")
    assert result.returncode == 2 and "SPY, QQQ, TLT" in result.stderr, result.stderr


# ---------------------------------------------------------------- data too short for the warmup


def sma(**params):
    return build_strategy(load_strategy("sma_cross", STRATEGIES), params)


@pytest.mark.parametrize("bars, slow", [(150, 200), (250, 200), (400, 300)])
def test_data_too_short_for_the_strategy_is_said_never_a_small_warmup(bars: int, slow: int) -> None:
    with pytest.raises(DataTooShort, match="too short") as raised:
        measure_warmup(sma(fast=5, slow=slow), generate_sample().iloc[:bars])
    assert raised.value.needs_more_than >= bars // 2


def test_check_warmup_on_too_short_data_exits_2(workdir: Path, run_cli) -> None:
    generate_sample().iloc[:150].to_csv(workdir / "short.csv")
    result = run_cli("check", "warmup", "sma_cross", "-p", "slow=200", "--data", "short.csv")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "too short" in result.stderr and "Traceback" not in result.stderr


def test_parity_on_too_short_data_gives_each_tick_the_whole_history() -> None:
    sample = generate_sample()
    options = BacktestOptions(strategy="sma_cross", params=["fast=5", "slow=300"], end=str(sample.index[399]))
    prepared = prepare_backtest(options, Settings(strategies=StrategySettings(dir=str(STRATEGIES))))
    report = check_parity(prepared, load_strategy("sma_cross", STRATEGIES))
    assert report.history >= report.bars == 400 and report.identical
