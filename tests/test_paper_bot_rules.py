"""A paper bot takes the backtest's position rules (stop_loss, take_profit, direction), and `paper replay BOT`
replays it with its own capital, fees and rules."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from conftest import STRATEGIES, shared_file

from systrade.config import load_settings
from systrade.live.broker import PaperBroker
from systrade.live.ledger import Ledger
from systrade.live.replay import ReplayMarket
from systrade.live.runner import BotRunner
from systrade.strategy import load_strategy

BOT = """
[strategies]
dir = "{strategies}"
[paper]
database = "sqlite:///{db}"
balances = {{ BTC = 1.0 }}
[[paper.bots]]
name = "eth"
strategy = "sma_cross"
params = {{ fast = 5, slow = 20 }}
exchange = "binance"
symbol = "ETH/BTC"
timeframe = "5m"
direction = "long"
fees = 0.002
stop_loss = 0.004
take_profit = 0.01
"""


def config(workdir: Path) -> Path:
    path = workdir / "systrade.toml"
    path.write_text(BOT.format(strategies=STRATEGIES.as_posix(), db=(workdir / "paper.sqlite").as_posix()))
    return path


def test_a_bot_sets_its_own_stops(workdir: Path) -> None:
    settings = load_settings(str(config(workdir)))
    bot = settings.paper.bots[0]
    frame = pd.DataFrame({c: [0.05, 0.05] for c in ("open", "high", "low", "close", "volume")},
                         index=pd.date_range("2024-01-01", periods=2, freq="5min", tz="UTC"))
    market = ReplayMarket(frame, bot.symbol, 0.002)
    runner = BotRunner(bot, load_strategy("sma_cross", STRATEGIES), Ledger("sqlite://"), market, PaperBroker(market))
    assert (runner.rules.direction, runner.rules.stop_loss, runner.rules.take_profit) == ("long", 0.004, 0.01)


def test_replaying_a_bot_uses_its_capital_fees_and_rules(run_cli, workdir: Path) -> None:
    config(workdir)
    data = shared_file("ETH_BTC-5m.csv")
    result = run_cli("paper", "replay", "eth", "--data", str(data), "--start", "2018-01-17",
                     "--end", "2018-01-18T12:00", "--json", "r.json")
    assert result.returncode == 0, result.stderr
    replayed = json.loads((workdir / "r.json").read_text())
    assert replayed["initial_cash"] == 1.0  # the bot's BTC, not the backtest's 10,000
    assert {k: replayed["rules"][k] for k in ("fees", "stop_loss", "take_profit", "direction")} == \
        {"fees": 0.002, "stop_loss": 0.004, "take_profit": 0.01, "direction": "long"}
    trades = replayed["trades"]
    assert trades and all(t["size"] * t["entry_price"] <= 1.0 for t in trades)
    assert {"stop_loss", "take_profit"} & {t["exit_reason"] for t in trades}
    assert not (workdir / "paper.sqlite").exists()  # a replay never touches the bot's ledger
