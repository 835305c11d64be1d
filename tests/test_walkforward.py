"""Walk-forward: window layout, in-sample equals optimize on the training slice, out-of-sample stitching,
and the command's JSON."""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO, STRATEGIES, systrade_exe

from systrade.backtest.request import BacktestOptions
from systrade.config import Settings
from systrade.errors import UserError
from systrade.optimize.run import SweepOptions, run_optimize
from systrade.optimize.sweep import Window, detail
from systrade.optimize.walkforward import make_splits, parse_span, run_walkforward

GRID = ["fast=5:15:5", "slow=20:40:10"]
OPTIMIZE = [systrade_exe()]


def settings() -> Settings:
    return Settings.model_validate({"strategies": {"dir": str(STRATEGIES)}, "data": {"dir": str(REPO / "data")}})


def options(start="2023-01-01", end="2023-04-30", **backtest) -> SweepOptions:
    backtest = {"start": start, "end": end, "fees": 0.001, "slippage": 0.0005, **backtest}
    return SweepOptions(BacktestOptions(strategy="sma_cross", **backtest), list(GRID), "sharpe", "2GB", 1, None, None,
                        progress=False)


def test_windows_roll_by_the_test_length_and_anchored_ones_start_at_the_data_start() -> None:
    index = pd.date_range("2024-01-01", periods=100, freq="1D", tz="UTC")
    rolling = make_splits(index, pd.Timedelta(days=30), pd.Timedelta(days=20), anchored=False)
    assert [(s.train_start, s.test_start, s.stop) for s in rolling] == [(0, 30, 50), (20, 50, 70), (40, 70, 90),
                                                                       (60, 90, 100)]  # the last test is shorter
    anchored = make_splits(index, pd.Timedelta(days=30), pd.Timedelta(days=20), anchored=True)
    assert [(s.train_start, s.test_start, s.stop) for s in anchored] == [(0, 30, 50), (0, 50, 70), (0, 70, 90),
                                                                        (0, 90, 100)]
    with pytest.raises(UserError, match="too short"):
        make_splits(index, pd.Timedelta(days=120), pd.Timedelta(days=20), anchored=False)
    assert parse_span("180d", "--train") == pd.Timedelta(days=180)
    assert parse_span("36h", "--test") == pd.Timedelta(hours=36)
    with pytest.raises(UserError, match="--train"):
        parse_span("180", "--train")


def test_in_sample_is_optimize_on_the_training_slice_and_out_of_sample_is_stitched() -> None:
    result = run_walkforward(options(), settings(), pd.Timedelta(days=45), pd.Timedelta(days=15), anchored=False)
    index = result.candles.frame.index
    assert len(result.windows) == 5
    for w in result.windows[:2]:
        cut = options(start=str(index[w.split.train_start]), end=str(index[w.split.test_start - 1]))
        alone = run_optimize(cut, settings())
        assert alone.best.params == w.params
        for name, value in alone.best.metrics.items():
            assert value == pytest.approx(w.in_sample[name], rel=1e-12, nan_ok=True), name
    cash = result.session.prepared.cash
    growth = 1.0
    for w in result.windows:
        equity = w.oos.equity
        assert equity.iloc[0] == pytest.approx(cash, rel=1e-12)  # starts flat with the last window's end equity
        assert equity.index[0] == index[w.split.test_start] and equity.index[-1] == index[w.split.stop - 1]
        growth *= equity.iloc[-1] / equity.iloc[0]
        cash = equity.iloc[-1]
    stitched = result.oos_equity
    assert stitched.index.is_monotonic_increasing and stitched.index.is_unique
    assert len(stitched) == sum(w.split.stop - w.split.test_start for w in result.windows)
    assert result.oos_metrics["total_return_pct"] == pytest.approx((growth - 1) * 100, rel=1e-9)
    assert result.oos_metrics["total_trades"] == sum(w.out_of_sample["total_trades"] for w in result.windows)
    stability = result.stability["params"]
    assert stability["fast"]["values"] == [w.params["fast"] for w in result.windows]
    assert 1 <= stability["slow"]["distinct"] <= 3 and 0 < stability["slow"]["mode_share"] <= 1
    for w in result.windows:
        dsr = w.luck["deflated_sharpe"]
        assert 0 <= w.luck["pbo"] <= 1 and (math.isnan(dsr) or 0 <= dsr <= 1)


def test_each_seam_closes_the_position_and_charges_the_exit() -> None:
    """A test window hands on cash, not a position: whatever is open is sold at the open of its last bar with
    fees, so no window ends with an open trade and the next one starts flat with that cash."""
    result = run_walkforward(options(direction="long"), settings(), pd.Timedelta(days=30), pd.Timedelta(days=10),
                             anchored=False)
    job = result.session.job
    assert result.oos_metrics["open_trades"] == 0
    assert result.oos_metrics["closed_trades"] == result.oos_metrics["total_trades"] > 0
    seams = 0
    for w in result.windows:
        assert w.oos.open_trades == 0
        k = next(k for k in range(len(job.grid)) if job.grid.combo(k) == w.params)
        held = detail(job, k, Window(w.split.train_start, w.split.test_start, w.split.stop), cash=w.oos.equity.iloc[0])
        if held.open_trades:  # this window's winner still held a position at its end: the seam sold it
            seams += 1
            assert len(w.oos.closed_pnls) == len(held.closed_pnls) + 1
            assert w.oos.fees > held.fees  # the exit's fee was paid
    assert seams >= 1


def test_walkforward_command_writes_json_and_report(workdir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SYSTRADE_CONFIG"}
    result = subprocess.run([*OPTIMIZE, "walkforward", "sma_cross", "--train", "45d", "--test", "15d", "--anchored",
                             "--grid", GRID[0], "--grid", GRID[1], "--start", "2023-01-01", "--end", "2023-04-30",
                             "--metric", "total_return", "--json", "wf.json", "--report", "wf.html"],
                            cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "deflated Sharpe ratio" in result.stdout and "param fast" in result.stdout
    doc = json.loads((workdir / "wf.json").read_text())
    assert doc["anchored"] is True and doc["train"] == "45d" and doc["metric"] == "total_return"
    assert len(doc["windows"]) == 5 and all(w["train_start"] == "2023-01-01T00:00:00+00:00" for w in doc["windows"])
    assert {"params", "in_sample", "out_of_sample", "deflated_sharpe", "pbo"} <= set(doc["windows"][0])
    assert set(doc["param_stability"]) == {"fast", "slow"}
    assert len(doc["oos_equity"]["time"]) == len(doc["oos_equity"]["equity"]) > 100
    assert doc["out_of_sample"]["final_equity"] == pytest.approx(doc["oos_equity"]["equity"][-1])
    report = (workdir / "wf.html").read_text()
    assert "Plotly.newPlot" in report and "out-of-sample equity" in report and '<script src="http' not in report
