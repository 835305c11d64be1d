"""Strategies that read other symbols: ``inputs = ["LEAD/BTC"]`` makes ``self.inputs["LEAD/BTC"]`` the candles of
that symbol on the traded series' own bars, NaN where it has none, never filled from a later candle; in the
backtest (from the store), the checks, the replay and the daemon (from the exchange) alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import STRATEGIES, shared_file
from fakes.binance import FakeBinance
from paper_helpers import paper_config, sma_bot, stepped_candles
from test_checks_lookahead import check_cli

from systrade.backtest.request import BacktestOptions, prepare_backtest
from systrade.checks.parity import check_parity
from systrade.config import Settings, load_settings
from systrade.errors import UserError
from systrade.live.daemon import build_runners, run_once
from systrade.strategy import StrategyRef, call_signals

STRATEGY = '''
from systrade import Signals, Strategy


class FollowTheLeader(Strategy):
    """Long ETH/BTC while LEAD/BTC closes above its 12-bar mean."""

    inputs = ["LEAD/BTC"]

    def signals(self, data):
        lead = self.inputs["LEAD/BTC"]["close"]
        self.seen = lead
        above = lead > lead.rolling(12, min_periods=1).mean()
        return Signals(entries=above, exits=~above)


class PeekAtTheLeader(Strategy):
    """The same, reading the leader's NEXT close."""

    inputs = ["LEAD/BTC"]

    def signals(self, data):
        lead = self.inputs["LEAD/BTC"]["close"].shift(-1)
        above = lead > lead.rolling(12, min_periods=1).mean()
        return Signals(entries=above, exits=~above)
'''


def leader(eth: pd.DataFrame) -> pd.DataFrame:
    """A second market built from the real one (a lagged, rescaled copy) with candles missing here and there."""
    rng = np.random.default_rng(11)
    frame = eth.copy()
    frame[["open", "high", "low", "close"]] = frame[["open", "high", "low", "close"]].shift(3).bfill() * 0.5
    keep = rng.random(len(frame)) > 0.05  # about one candle in twenty missing
    return frame[keep]


@pytest.fixture
def store(run_cli, workdir: Path) -> Path:
    eth = pd.read_csv(shared_file("ETH_BTC-5m.csv"), index_col="date", parse_dates=True)
    eth.iloc[:1500].to_csv(workdir / "eth.csv")
    leader(eth.iloc[:1500]).iloc[5:].to_csv(workdir / "lead.csv")  # it also starts a little later
    (workdir / "follow.py").write_text(STRATEGY)
    for file, symbol in (("eth.csv", "ETH/BTC"), ("lead.csv", "LEAD/BTC")):
        stored = run_cli("data", "import", file, "--exchange", "local", "--symbol", symbol, "--timeframe", "5m")
        assert stored.returncode == 0, stored.stderr
    return workdir


def prepared(workdir: Path, strategy: str = "FollowTheLeader"):
    options = BacktestOptions(strategy=f"{workdir / 'follow.py'}:{strategy}", exchange="local", symbols=["ETH/BTC"],
                              fees=0.001)
    settings = Settings.model_validate({"data": {"dir": str(workdir / "data")},
                                        "strategies": {"dir": str(STRATEGIES)}})
    return prepare_backtest(options, settings)


def test_an_input_is_seen_on_the_traded_bars_with_holes_kept(store: Path) -> None:
    run = prepared(store)
    frame = run.candles[0].frame
    call_signals(run.strategy, frame)
    lead = pd.read_csv(store / "lead.csv", index_col="date")["close"]
    lead.index = pd.to_datetime(lead.index, utc=True)
    expected = lead.reindex(frame.index).to_numpy()  # by hand: the leader's candle at each bar's time, no filling
    np.testing.assert_array_equal(run.strategy.seen.to_numpy(), expected)
    assert np.isnan(run.strategy.seen.to_numpy()[:5]).all()  # before the leader's first candle
    assert run.strategy.seen.isna().sum() > 50  # its missing candles stay missing


def test_backtest_lookahead_and_parity_with_an_input(store: Path, run_cli) -> None:
    result = run_cli("backtest", "follow.py:FollowTheLeader", "--exchange", "local", "--symbol", "ETH/BTC",
                     "--json", "out.json")
    assert result.returncode == 0, result.stderr
    clean = check_cli("check", "lookahead", "follow.py:FollowTheLeader", "--exchange", "local", "--symbol",
                      "ETH/BTC", cwd=store)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    peek = check_cli("check", "lookahead", "follow.py:PeekAtTheLeader", "--exchange", "local", "--symbol",
                     "ETH/BTC", cwd=store)
    assert peek.returncode == 1, peek.stdout + peek.stderr  # reading the input's next bar is caught
    run = prepared(store)
    ref = StrategyRef(type(run.strategy), str(store / "follow.py"))
    report = check_parity(run, ref, history=200)
    assert report.replay_errors == [] and report.identical and report.backtest_trades > 5, report.differences[:1]


def test_an_input_missing_from_the_store_is_one_clear_error(run_cli, workdir: Path) -> None:
    eth = pd.read_csv(shared_file("ETH_BTC-5m.csv"), index_col="date", parse_dates=True)
    eth.iloc[:300].to_csv(workdir / "eth.csv")
    (workdir / "follow.py").write_text(STRATEGY)
    assert run_cli("data", "import", "eth.csv", "--exchange", "local", "--symbol", "ETH/BTC").returncode == 0
    result = run_cli("backtest", "follow.py:FollowTheLeader", "--exchange", "local", "--symbol", "ETH/BTC")
    assert result.returncode == 2 and "LEAD/BTC" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_paper_bot_fetches_its_inputs_from_the_exchange(tmp_path: Path) -> None:
    start = pd.Timestamp("2024-05-01", tz="UTC")
    rising = stepped_candles([0.05 + 0.001 * i for i in range(40)], start)  # the leader rises: be long
    with FakeBinance(clock_ms=int(rising.index[20].value // 1_000_000) + 30_000, spread_bps=0, book_qty=1e6) as fake:
        fake.add_market("BTC/USDT", stepped_candles([100.0] * 40, start), tick_size=0.01, step_size=0.00001,
                        min_qty=0.00001)
        fake.add_market("ETH/BTC", rising, tick_size=0.00001, step_size=0.0001, min_qty=0.0001, min_notional=0.0001)
        fake.set_balances({"USDT": 10_000.0})
        (tmp_path / "follow.py").write_text(STRATEGY.replace("LEAD/BTC", "ETH/BTC"))
        bot = sma_bot(strategy=f"{tmp_path / 'follow.py'}:FollowTheLeader", params={}, size=1.0, size_type="amount",
                      candles=30)
        settings = load_settings(str(paper_config(tmp_path / "systrade.toml", fake, [bot])))
        ledger, [runner] = build_runners(settings)
        [result] = run_once([runner])
        assert result.outcome == "filled", result
        assert any(r.path == "/api/v3/klines" and r.params.get("symbol") == "ETHBTC" for r in fake.requests)
        assert ledger.bot("btc-sma").position == 1.0
        ledger.engine.dispose()


def test_a_bot_whose_input_the_exchange_does_not_list_is_refused(tmp_path: Path) -> None:
    start = pd.Timestamp("2024-05-01", tz="UTC")
    with FakeBinance(clock_ms=int(start.value // 1_000_000) + 21 * 60_000) as fake:
        fake.add_market("BTC/USDT", stepped_candles([100.0] * 40, start))
        (tmp_path / "follow.py").write_text(STRATEGY.replace("LEAD/BTC", "DOGE/BTC"))
        bot = sma_bot(strategy=f"{tmp_path / 'follow.py'}:FollowTheLeader", params={})
        settings = load_settings(str(paper_config(tmp_path / "systrade.toml", fake, [bot])))
        with pytest.raises(UserError, match="bot btc-sma: binance has no market 'DOGE/BTC'"):
            build_runners(settings)
