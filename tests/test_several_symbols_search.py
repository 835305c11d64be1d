"""Parameter search of a strategy trading several symbols together: every combination is the cash-sharing
portfolio `systrade backtest` runs, so the best combination and its metrics equal that backtest's (the oracle)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from test_several_symbols_checks import cli, project  # noqa: F401  (the shared store of SPY, QQQ, TLT)

COMPARED = ("final_equity", "total_return_pct", "cagr_pct", "max_drawdown_pct", "sharpe", "sortino", "calmar",
            "win_rate_pct", "profit_factor", "expectancy", "exposure_pct", "fees_paid")
COSTS = ("--fees", "0.001", "--slippage", "0.0005", "--cash", "10000")


def backtest_portfolio(project: Path, lookback: int) -> dict:  # noqa: F811
    out = f"bt{lookback}.json"
    result = cli(project, "backtest", "momentum_rotation", "--exchange", "alpaca", "-p", f"lookback={lookback}",
                 *COSTS, "--json", out)
    assert result.returncode == 0, result.stderr
    doc = json.loads((project / out).read_text())
    trades = [t for run in doc["runs"] for t in run["trades"]]
    closed = sum(t["status"] == "closed" for t in trades)
    return {**doc["portfolio"], "total_trades": len(trades), "closed_trades": closed,
            "open_trades": len(trades) - closed}


def same(a, b) -> bool:
    if a is None or b is None or (isinstance(a, float) and math.isnan(a)):
        return (a is None or math.isnan(a)) and (b is None or math.isnan(b))
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def test_optimize_ranks_the_portfolios_the_backtest_runs(project: Path) -> None:  # noqa: F811
    result = cli(project, "optimize", "momentum_rotation", "--exchange", "alpaca", "--grid", "lookback=20,40,63",
                 *COSTS, "--metric", "total_return", "--json", "opt.json", "--no-progress")
    assert result.returncode == 0, result.stdout + result.stderr
    doc = json.loads((project / "opt.json").read_text())
    assert doc["combos"] == 3 and doc["symbol"] == "SPY, QQQ, TLT"
    oracle = {row["params"]["lookback"]: backtest_portfolio(project, row["params"]["lookback"]) for row in doc["top"]}
    assert set(oracle) == {20, 40, 63}
    for row in doc["top"]:
        expected = oracle[row["params"]["lookback"]]
        for name in (*COMPARED, "total_trades", "closed_trades", "open_trades"):
            assert same(row[name], expected[name]), (row["params"], name, row[name], expected[name])
    winner = max(oracle, key=lambda lookback: oracle[lookback]["total_return_pct"])
    assert doc["best"]["params"] == {"lookback": winner}
    for name in COMPARED:
        assert same(doc["best"][name], oracle[winner][name]), name
    assert doc["top"][0]["params"] == {"lookback": winner}


def test_walkforward_runs_the_portfolio_window_by_window(project: Path) -> None:  # noqa: F811
    result = cli(project, "walkforward", "momentum_rotation", "--exchange", "alpaca", "--grid", "lookback=20,40",
                 "--train", "365d", "--test", "180d", *COSTS, "--json", "wf.json", "--no-progress")
    assert result.returncode == 0, result.stdout + result.stderr
    doc = json.loads((project / "wf.json").read_text())
    assert len(doc["windows"]) >= 3
    assert all(w["params"]["lookback"] in (20, 40) for w in doc["windows"])


@pytest.mark.parametrize("search", ["random"])
def test_a_sampled_search_runs_too(project: Path, search: str) -> None:  # noqa: F811
    result = cli(project, "optimize", "momentum_rotation", "--exchange", "alpaca", "--grid", "lookback=20:80:10",
                 "--search", search, "--trials", "3", "--json", "s.json", "--no-progress")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads((project / "s.json").read_text())["trials"] == 3
