"""Replay and parity of a strategy trading several symbols together: the several-symbol bot's tick replayed over
the history trades exactly as the cash-sharing backtest (generated data)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from test_several_symbols_checks import cli, project  # noqa: F401  (the shared store of SPY, QQQ, TLT)

COSTS = ("--fees", "0.001", "--slippage", "0.0005", "--cash", "10000")


def backtest_trades(project: Path, *args: str) -> list[tuple]:  # noqa: F811
    result = cli(project, "backtest", "momentum_rotation", "--exchange", "alpaca", *args, "--json", "bt.json")
    assert result.returncode == 0, result.stderr
    doc = json.loads((project / "bt.json").read_text())
    return sorted((run["symbol"], t["direction"], pd.Timestamp(t["entry_time"]), t["entry_price"], t["size"],
                   t["exit_time"] and pd.Timestamp(t["exit_time"]), t["exit_price"]) for run in doc["runs"]
                  for t in run["trades"])


def test_check_parity_of_the_rotation_is_identical(project: Path) -> None:  # noqa: F811
    result = cli(project, "check", "parity", "momentum_rotation", "--exchange", "alpaca", "-p", "lookback=40",
                 *COSTS, "--json", "parity.json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((project / "parity.json").read_text())
    assert report["identical"] and report["replay_errors"] == [] and report["backtest_trades"] >= 6
    assert report["symbol"] == "SPY, QQQ, TLT" and report["history"] > report["warmup"] > 40
    assert {t["symbol"] for t in report["trades"]["replay"]} == {"SPY", "QQQ", "TLT"}


def test_paper_replay_gives_the_backtests_trades(project: Path) -> None:  # noqa: F811
    result = cli(project, "paper", "replay", "momentum_rotation", "--exchange", "alpaca", "-p", "lookback=30",
                 *COSTS, "--json", "replay.json")
    assert result.returncode == 0, result.stdout + result.stderr
    doc = json.loads((project / "replay.json").read_text())
    replayed = sorted((t["symbol"], t["direction"], pd.Timestamp(t["entry_time"]), t["entry_price"], t["size"],
                       t["exit_time"] and pd.Timestamp(t["exit_time"]), t["exit_price"]) for t in doc["trades"])
    expected = backtest_trades(project, "-p", "lookback=30", *COSTS)
    assert len(replayed) == len(expected) >= 6
    for got, want in zip(replayed, expected, strict=True):
        assert got[:3] == want[:3] and got[5] == want[5]
        for a, b in ((got[3], want[3]), (got[4], want[4]), (got[6], want[6])):
            assert (a is None and b is None) or abs(a - b) <= 1e-9 * max(abs(a), abs(b)), (got, want)
    assert set(doc["final_position"]) == {"SPY", "QQQ", "TLT"}
