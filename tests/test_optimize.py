"""Sweeps: identical results whatever the chunking, workers or Dask cluster; equal to `systrade backtest`;
luck statistics equal to those computed from full return series; the command's outputs and errors."""

from __future__ import annotations

import json
import math
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, STRATEGIES, systrade_exe, tree

from systrade.backtest.metrics import bar_returns
from systrade.backtest.request import BacktestOptions, prepare_backtest
from systrade.config import Settings
from systrade.optimize.overfitting import deflated_sharpe, pbo_from_returns, sharpe_moments
from systrade.optimize.run import SweepOptions, SweepSession, run_optimize
from systrade.optimize.sweep import COLUMNS, METRICS, detail, luck, rank

CUT = ["--start", "2024-01-01", "--end", "2024-02-10"]
GRID = ["fast=5:12:1", "slow=20:40:5"]  # 8 x 5 = 40 combinations

# `systrade optimize` through the real entry point, also before the command is registered in cli/__init__.py
OPTIMIZE = [systrade_exe()]


def settings() -> Settings:
    return Settings.model_validate({"strategies": {"dir": str(STRATEGIES)}, "data": {"dir": str(REPO / "data")}})


def options(grid=GRID, workers=1, chunk_size=None, cluster=None, **backtest) -> SweepOptions:
    backtest = {"start": "2024-01-01", "end": "2024-02-10", "fees": 0.001, "slippage": 0.0005,
                "direction": "both", **backtest}
    return SweepOptions(BacktestOptions(strategy="sma_cross", **backtest), list(grid), "sharpe", "2GB", workers,
                        cluster, chunk_size, progress=False)


def sweep(**kw):
    with SweepSession(options(**kw), settings()) as session:
        return session.sweep(session.job.full_window())


def assert_same(a, b) -> None:
    np.testing.assert_array_equal(a.metrics, b.metrics)  # bit for bit, NaN where NaN
    np.testing.assert_array_equal(a.blocks, b.blocks)
    np.testing.assert_array_equal(a.order, b.order)


def test_results_identical_whatever_the_chunking_workers_or_cluster() -> None:
    from distributed import LocalCluster

    whole = sweep(chunk_size=40)
    assert whole.metrics.shape == (40, len(COLUMNS)) and whole.blocks.shape == (40, 16, 3)
    assert np.isfinite(whole.column("sharpe")).all() and len(set(whole.column("final_equity"))) > 30
    assert_same(sweep(chunk_size=7), whole)
    assert_same(sweep(workers=2, chunk_size=5), whole)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp",
                      dashboard_address=None) as cluster:
        with SweepSession(options(chunk_size=3, cluster=cluster.scheduler_address), settings()) as session:
            assert session.runner.kind == "dask cluster" and session.runner.workers == 2
            on_cluster = session.sweep(session.job.full_window())
    assert_same(on_cluster, whole)


def test_sweeps_with_stops_are_chunk_independent_and_equal_the_backtest() -> None:
    grid = ["fast=6,9", "slow=20:30:5"]
    whole = sweep(grid=grid, chunk_size=6, stop_loss=0.02)
    assert_same(sweep(grid=grid, chunk_size=4, workers=2, stop_loss=0.02), whole)
    for k in range(len(whole.job.grid)):
        params = whole.job.grid.combo(k)
        opts = options(grid=grid, stop_loss=0.02).backtest
        opts.params = [f"{name}={value}" for name, value in params.items()]
        metrics = prepare_backtest(opts, settings()).run().results[0].metrics
        for name in COLUMNS:
            got, want = float(whole.metrics[k, COLUMNS.index(name)]), float(metrics[name])
            assert (math.isnan(got) and math.isnan(want)) or math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9), name


def test_ranking_is_descending_with_nan_last_and_ties_in_grid_order() -> None:
    values = np.array([1.0, np.nan, 3.0, 3.0, -np.inf, np.inf, 2.0])
    assert rank(values).tolist() == [5, 2, 3, 6, 0, 4, 1]


def test_luck_statistics_equal_those_from_full_return_series() -> None:
    result = sweep()
    job, window = result.job, result.window
    returns = np.column_stack([bar_returns(detail(job, k, window).equity.to_numpy()) for k in range(40)])
    stats = luck(result)
    assert stats["pbo"] == pbo_from_returns(returns, 16)
    ppy = 365 * 24
    per_bar = result.column("sharpe") / math.sqrt(ppy)
    np.testing.assert_allclose(per_bar, [sharpe_moments(returns[:, k])[0] for k in range(40)], rtol=1e-9)
    sr, skew, kurt, n_obs = sharpe_moments(returns[:, result.best])
    expected = deflated_sharpe(sr, 40, n_obs, skew, kurt, float(np.var(per_bar, ddof=1)))
    assert stats["deflated_sharpe"] == pytest.approx(expected, rel=1e-9)
    assert 0 <= stats["deflated_sharpe"] <= 1 and 0 <= stats["pbo"] <= 1


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SYSTRADE_CONFIG"}
    env["COLUMNS"] = "200"
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_best_params_equal_looping_systrade_backtest_over_the_grid(workdir: Path) -> None:
    combos = [(fast, slow) for fast in (6, 9) for slow in (24, 36)]
    costs = ["--fees", "0.001", "--slippage", "0.0005", "--direction", "both"]

    def backtest(combo: tuple[int, int]) -> dict:
        out = workdir / f"bt_{combo[0]}_{combo[1]}.json"
        result = run([systrade_exe(), "backtest", "sma_cross", "-p", f"fast={combo[0]}", "-p", f"slow={combo[1]}",
                      *CUT, *costs, "--json", str(out)], workdir)
        assert result.returncode == 0, result.stderr
        return json.loads(out.read_text())

    with ThreadPoolExecutor(max_workers=2) as pool:
        backtests = list(pool.map(backtest, combos))
    result = run([*OPTIMIZE, "optimize", "sma_cross", "--grid", "fast=6:9:3", "--grid", "slow=24,36", *CUT, *costs,
                  "--top", "4", "--workers", "2", "--json", "opt.json", "--report", "opt.html"], workdir)
    assert result.returncode == 0, result.stderr
    assert "deflated Sharpe ratio" in result.stdout and "probability of backtest overfitting" in result.stdout
    doc = json.loads((workdir / "opt.json").read_text())
    assert {"strategy", "metric", "combos", "best", "top", "deflated_sharpe", "pbo", "elapsed_s"} <= set(doc)
    assert doc["strategy"] == "sma_cross" and doc["metric"] == "sharpe" and doc["combos"] == 4
    sharpe = [b["sharpe"] for b in backtests]
    winner = combos[int(np.argmax(sharpe))]  # argmax: the first of equal values, as the sweep ranks ties
    assert doc["best"]["params"] == {"fast": winner[0], "slow": winner[1]}
    assert doc["top"][0]["params"] == doc["best"]["params"]
    assert doc["best"]["sharpe"] == pytest.approx(max(sharpe), rel=1e-9)
    by_params = {(row["params"]["fast"], row["params"]["slow"]): row for row in doc["top"]}
    for combo, bt in zip(combos, backtests, strict=True):  # every metric equals the backtest's
        row = by_params[combo]
        for name in COLUMNS:
            if bt[name] is None:
                assert row[name] is None, name
            else:
                assert row[name] == pytest.approx(bt[name], rel=1e-9, abs=1e-9), (combo, name)
    for name in COLUMNS + ("buy_and_hold_return_pct",):
        assert doc["best"][name] == pytest.approx(backtests[combos.index(winner)][name], rel=1e-9, abs=1e-9)
    ranked = [r["params"] for r in doc["top"]]
    expected = [combos[i] for i in rank(np.array([b["sharpe"] for b in backtests], dtype=float))]
    assert [(p["fast"], p["slow"]) for p in ranked] == expected
    report = (workdir / "opt.html").read_text()
    assert "Plotly.newPlot" in report and '"type":"heatmap"' in report and '<script src="http' not in report
    assert "SYNTHETIC DATA" in report and report.count("<tr>") >= 5  # header + the 4 combinations


def test_other_metrics_rank_by_that_metric() -> None:
    for metric in METRICS:
        opts = options(grid=["fast=5:9:2", "slow=20,30"])
        opts.metric = metric
        result = run_optimize(opts, settings())
        values = result.sweep.column(METRICS[metric])
        best = result.sweep.best
        assert values[best] == np.nanmax(values) or (np.isnan(values).all())
        assert result.best.params == result.sweep.job.grid.combo(best)


ERRORS = [
    (["--grid", "fast=1:5:1"], "below its low bound"),
    (["--grid", "nope=1,2"], "no parameter 'nope'"),
    (["--metric", "luck"], "--metric 'luck' is not known"),
    (["--memory", "1MB"], "--memory 0.00GB is too small"),
    (["--memory", "lots"], "--memory 'lots' is not a size"),
    (["--heatmap", "fast,slow"], "--heatmap chooses the report's axes"),
    (["--report", "r.html", "--heatmap", "fast,nope"], "not a swept parameter"),
    (["--grid", "fast=5,6", "--param", "fast=7"], "both --grid and --param"),
    (["--chunk-size", "0"], "--chunk-size must be at least 1"),
    (["--workers", "0"], "--workers 0 is not valid"),
    (["--top", "0"], "--top 0 is not valid"),
]


@pytest.mark.parametrize("args, words", ERRORS)
def test_user_errors_exit_2_and_write_nothing(workdir: Path, args: list[str], words: str, capsys, monkeypatch) -> None:
    import systrade.cli.optimize  # noqa: F401
    from systrade.cli import GLOBAL, main

    monkeypatch.chdir(workdir)
    monkeypatch.delenv("SYSTRADE_CONFIG", raising=False)
    monkeypatch.setitem(GLOBAL, "config", None)
    before = tree(workdir)
    with pytest.raises(SystemExit) as exit_info:
        main(["optimize", "sma_cross", *CUT, "--json", "o.json", *args])
    assert exit_info.value.code == 2
    assert words in " ".join(capsys.readouterr().err.split())
    assert tree(workdir) == before


def test_a_user_error_through_the_real_entry_point(workdir: Path) -> None:
    before = tree(workdir)
    result = run([*OPTIMIZE, "optimize", "sma_cross", *CUT, "--grid", "fast=5:x:1", "--json", "o.json"], workdir)
    assert result.returncode == 2 and "not a number" in result.stderr and "Traceback" not in result.stderr
    assert tree(workdir) == before


def test_peak_memory_of_a_sweep_that_would_not_fit_unchunked_stays_within_the_budget(tmp_path: Path) -> None:
    """All processes of the run together (polled resident sizes) stay under --memory."""
    import pandas as pd
    import psutil

    bars, budget = 200_000, 1_500_000_000
    rng = np.random.default_rng(3)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, bars)))
    opens = np.concatenate([[100.0], close[:-1]])
    pd.DataFrame({"date": pd.date_range("2020-01-01", periods=bars, freq="1min", tz="UTC"), "open": opens,
                  "high": np.maximum(opens, close) * 1.0005, "low": np.minimum(opens, close) * 0.9995, "close": close,
                  "volume": 1.0}).to_parquet(tmp_path / "big.parquet")
    grid = ["fast=5:14:1", "slow=40:400:40"]  # 100 combinations
    combos = 100
    assert 100 * bars * combos > budget  # vectorbt keeps ~100 bytes per bar and combination: unchunked cannot fit
    (tmp_path / "systrade.toml").write_text(f'[strategies]\ndir = "{STRATEGIES.as_posix()}"\n')
    cmd = [*OPTIMIZE, "optimize", "sma_cross", "--data", "big.parquet", *[x for g in grid for x in ("--grid", g)],
           "--memory", str(budget), "--workers", "2", "--json", "o.json", "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    root = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            members = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in members if p.is_running()))
        except psutil.Error:
            pass
        try:
            proc.wait(timeout=0.02)
        except subprocess.TimeoutExpired:
            pass
    stdout, stderr = proc.communicate()
    assert proc.returncode == 0, stderr
    doc = json.loads((tmp_path / "o.json").read_text())
    assert doc["combos"] == combos and doc["run"]["workers"] == 2 and doc["bars"] == bars
    assert doc["run"]["estimated_peak_bytes"] <= budget
    assert 0 < peak <= budget, f"peak resident memory of the run {peak / 1e6:.0f} MB > budget {budget / 1e6:.0f} MB"
