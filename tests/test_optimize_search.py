"""Sampled searches (`optimize --search random|tpe`), log/continuous params and `Strategy.valid()` constraints."""

from __future__ import annotations

import json
import math
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, STRATEGIES

from systrade import Param, Signals, Strategy
from systrade.backtest.metrics import bar_returns
from systrade.backtest.request import BacktestOptions
from systrade.config import Settings
from systrade.optimize.overfitting import deflated_sharpe, pbo_from_returns, sharpe_moments
from systrade.optimize.run import SweepOptions, run_optimize
from systrade.optimize.search import build_space, run_search
from systrade.optimize.sweep import detail

CUT = ["--start", "2024-01-01", "--end", "2024-02-10"]

DEMO = '''
from systrade import Param, Signals, Strategy, crossed_above, crossed_below


class Demo(Strategy):
    fast = Param(5, low=2, high=20, step=1)
    slow = Param(20, low=10, high=40, step=2)
    band = Param(0.02, low=0.005, high=0.1, log=True)
    width = Param(1.0, low=0.5, high=2.0, step=0.25)
    column = Param("close", choices=["close", "open"])

    def signals(self, data):
        f = data[self.column].rolling(self.fast).mean()
        s = data[self.column].rolling(self.slow).mean()
        return Signals(entries=crossed_above(f, s * (1 - self.band)),
                       exits=crossed_below(f, s * (1 + self.band * self.width)))
'''

CONSTRAINED = '''
from systrade import Param, Signals, Strategy, crossed_above, crossed_below


class Ordered(Strategy):
    """sma_cross with the constraint fast < slow."""
    fast = Param(10, low=2, high=100, step=1)
    slow = Param(30, low=5, high=400, step=5)

    def valid(self):
        return self.fast < self.slow

    def signals(self, data):
        fast = data["close"].rolling(self.fast).mean()
        slow = data["close"].rolling(self.slow).mean()
        return Signals(entries=crossed_above(fast, slow), exits=crossed_below(fast, slow))
'''

SEEN: list[tuple[int, int]] = []


class Recording(Strategy):
    """Records every parameter set its signals() is called with; refuses fast >= slow."""

    fast = Param(10, low=2, high=100, step=1)
    slow = Param(30, low=5, high=400, step=5)

    def valid(self):
        return self.fast < self.slow

    def signals(self, data):
        SEEN.append((self.fast, self.slow))
        return Signals(entries=data["close"] > data["open"], exits=data["close"] < data["open"])


CONTINUOUS = '''
from systrade import Param, Signals, Strategy


class Rise(Strategy):
    lookback = Param(24, low=2, high=48, step=2)
    rise = Param(0.02, low=0.005, high=0.1)

    def signals(self, data):
        change = data["close"].pct_change(self.lookback)
        return Signals(entries=change > self.rise, exits=change < -self.rise)
'''


class Small(Strategy):
    n = Param(3, low=1, high=4, step=1)
    mode = Param("a", choices=["a", "b", "c"])

    def signals(self, data):  # pragma: no cover - never run
        return Signals(entries=data["close"] > 0)


def settings() -> Settings:
    return Settings.model_validate({"strategies": {"dir": str(STRATEGIES)}, "data": {"dir": str(REPO / "data")}})


def optimize_json(run_cli, workdir: Path, *args: str, name: str = "o.json") -> dict:
    result = run_cli("optimize", *args, *CUT, "--no-progress", "--top", "100000", "--json", name)
    assert result.returncode == 0, result.stderr
    return json.loads((workdir / name).read_text())


def trial_params(doc: dict) -> list[tuple]:
    return sorted(tuple(sorted(row["params"].items())) for row in doc["top"])


@pytest.mark.parametrize("search, trials", [("random", 40), ("tpe", 40)])
def test_same_seed_same_trials_and_results_with_1_and_2_workers(run_cli, workdir: Path, search: str,
                                                                trials: int) -> None:
    common = ["sma_cross", "--search", search, "--trials", str(trials), "--seed", "7"]
    one = optimize_json(run_cli, workdir, *common, "--workers", "1", name="one.json")
    two = optimize_json(run_cli, workdir, *common, "--workers", "2", name="two.json")
    assert one["search"] == search and one["seed"] == 7 and one["trials"] == one["combos"] == trials
    assert len(one["top"]) == trials and one["run"]["workers"] == 1 and two["run"]["workers"] == 2
    assert one["top"] == two["top"]  # the same trials with the same metrics, ranked alike
    assert one["best"] == two["best"] and one["pbo"] == two["pbo"]
    assert one["deflated_sharpe"] == two["deflated_sharpe"]
    other = optimize_json(run_cli, workdir, "sma_cross", "--search", search, "--trials", str(trials), "--seed", "8",
                          "--workers", "1", "--report", "other.html", name="other.json")
    report = (workdir / "other.html").read_text()
    assert '"type":"heatmap"' in report and f"{trials} trials ({search} search, seed 8)" in report
    assert trial_params(other) != trial_params(one)


def test_sampled_trials_are_distinct_and_respect_steps_bounds_choices_and_log(run_cli, workdir: Path) -> None:
    (workdir / "demo.py").write_text(DEMO)
    for search in ("random", "tpe"):
        doc = optimize_json(run_cli, workdir, "demo.py", "--search", search, "--trials", "60", "--workers", "2",
                            name=f"{search}.json")
        params = [row["params"] for row in doc["top"]]
        assert doc["trials"] == len(params) == 60
        assert len({tuple(sorted(p.items())) for p in params}) == 60  # never repeated
        for p in params:
            assert isinstance(p["fast"], int) and 2 <= p["fast"] <= 20
            assert isinstance(p["slow"], int) and p["slow"] in range(10, 41, 2)
            assert p["width"] in (0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)
            assert p["column"] in ("close", "open")
            assert 0.005 <= p["band"] <= 0.1
        assert len({p["band"] for p in params}) > 50  # continuous: sampled, not gridded
        if search == "random":  # log-uniform: about as many draws below the geometric mid-point as above it
            below = sum(p["band"] < math.sqrt(0.005 * 0.1) for p in params)
            assert 15 <= below <= 45  # uniform on the linear scale would put only ~15% (9 of 60) below it


def test_repeated_proposals_count_once_and_a_small_space_is_exhausted() -> None:
    space = build_space(Small, None)
    for kind in ("random", "tpe"):
        seen: list[dict] = []

        def evaluate(batch: list[dict], seen: list[dict] = seen) -> list[float]:
            seen.extend(batch)
            return [float(p["n"]) for p in batch]

        trials = run_search(space, kind, 50, 3, evaluate)
        keys = [(p["n"], p["mode"]) for p in trials.combos]
        assert len(trials) == 12 and len(set(keys)) == 12  # 4 x 3 distinct sets, each evaluated once
        assert set(keys) == {(n, m) for n in (1, 2, 3, 4) for m in "abc"}
        assert len(seen) == 12 and "12" in trials.stopped


def test_tpe_finds_a_better_than_median_combination(run_cli, workdir: Path) -> None:
    grid = optimize_json(run_cli, workdir, "sma_cross", "--grid", "fast=2:30:1", "--grid", "slow=10:100:5",
                         "--workers", "2", name="grid.json")
    sharpes = [row["sharpe"] for row in grid["top"] if row["sharpe"] is not None]
    # sma_cross refuses fast >= slow: by hand, slow=10 loses fast 10..30 (21), 15 loses 16, 20: 11, 25: 6, 30: 1
    assert grid["combos"] == 29 * 19 - 55 and grid["skipped_invalid"] == 55
    assert grid["search"] == "grid" and grid["seed"] is None
    tpe = optimize_json(run_cli, workdir, "sma_cross", "--grid", "fast=2:30:1", "--grid", "slow=10:100:5",
                        "--search", "tpe", "--trials", "48", "--workers", "2", name="tpe.json")
    assert tpe["trials"] == 48
    assert tpe["best"]["sharpe"] > float(np.median(sharpes))
    by_params = {tuple(sorted(row["params"].items())): row["sharpe"] for row in grid["top"]}
    for row in tpe["top"]:  # a trial's metrics are the grid's (the same evaluation)
        assert row["sharpe"] == pytest.approx(by_params[tuple(sorted(row["params"].items()))], rel=1e-12)


def test_luck_statistics_count_every_trial() -> None:
    opts = SweepOptions(BacktestOptions(strategy="sma_cross", start="2024-01-01", end="2024-02-10"),
                        ["fast=2:30:1", "slow=10:100:5"], "sharpe", "2GB", 1, progress=False, search="random",
                        trials=25, seed=1)
    result = run_optimize(opts, settings())
    sweep = result.sweep
    assert sweep.n_combos == 25 and result.luck["n_trials"] == 25 and sweep.blocks.shape[0] == 25
    returns = np.column_stack([bar_returns(detail(sweep.job, k, sweep.window).equity.to_numpy()) for k in range(25)])
    assert result.luck["pbo"] == pbo_from_returns(returns, 16)
    per_bar = np.array([sharpe_moments(returns[:, k])[0] for k in range(25)])
    sr, skew, kurt, n_obs = sharpe_moments(returns[:, sweep.best])
    expected = deflated_sharpe(sr, 25, n_obs, skew, kurt, float(np.var(per_bar[np.isfinite(per_bar)], ddof=1)))
    assert result.luck["deflated_sharpe"] == pytest.approx(expected, rel=1e-9)


def test_a_constraint_removes_exactly_the_combinations_it_should(run_cli, workdir: Path) -> None:
    (workdir / "ordered.py").write_text(CONSTRAINED)
    grid = ["--grid", "fast=5:12:1", "--grid", "slow=8:14:2"]
    doc = optimize_json(run_cli, workdir, "ordered.py", *grid, name="ordered.json")
    # by hand: slow=8 keeps fast 5..7 (3), slow=10 keeps 5..9 (5), slow=12 keeps 5..11 (7), slow=14 keeps 5..12 (8)
    assert doc["combos"] == 3 + 5 + 7 + 8 == 23 and doc["skipped_invalid"] == 32 - 23
    assert all(row["params"]["fast"] < row["params"]["slow"] for row in doc["top"])
    (workdir / "unordered.py").write_text(CONSTRAINED.replace("def valid(self):", "def unused(self):"))
    plain = optimize_json(run_cli, workdir, "unordered.py", *grid, name="plain.json")
    assert plain["combos"] == 32 and plain["skipped_invalid"] == 0
    same = {tuple(sorted(r["params"].items())): r for r in plain["top"]}
    for row in doc["top"]:  # valid combinations give the same results as without the constraint
        expected = same[tuple(sorted(row["params"].items()))]
        assert {k: v for k, v in row.items() if k != "rank"} == {k: v for k, v in expected.items() if k != "rank"}
    result = run_cli("optimize", "ordered.py", *grid, *CUT, "--no-progress")
    assert "9 combinations skipped" in " ".join(result.stdout.split())
    sampled = optimize_json(run_cli, workdir, "ordered.py", *grid, "--search", "random", "--trials", "23",
                            name="sampled.json")
    assert sampled["trials"] == 23 and all(r["params"]["fast"] < r["params"]["slow"] for r in sampled["top"])
    assert trial_params(sampled) == trial_params(doc)  # exactly the valid set, each once
    for search in ("random", "tpe"):  # asked for more than there are: stops at the 23 valid sets, and says so
        more = run_cli("optimize", "ordered.py", *grid, *CUT, "--no-progress", "--search", search, "--trials", "40",
                       "--top", "100", "--json", f"more_{search}.json")
        assert more.returncode == 0, more.stderr
        assert json.loads((workdir / f"more_{search}.json").read_text())["trials"] == 23
        assert "only 23 distinct valid parameter sets" in " ".join(more.stdout.split())


def test_a_grid_over_a_stepless_continuous_param_is_refused(run_cli, workdir: Path) -> None:
    (workdir / "rise.py").write_text(CONTINUOUS)
    result = run_cli("optimize", "rise.py", *CUT, "--no-progress", "--json", "r.json")
    assert result.returncode == 2 and not (workdir / "r.json").exists()
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "rise" in result.stderr and "step" in result.stderr and "--search" in result.stderr
    doc = optimize_json(run_cli, workdir, "rise.py", "--search", "random", "--trials", "20", name="r.json")
    rises = [row["params"]["rise"] for row in doc["top"]]
    assert len(set(rises)) == 20 and all(0.005 <= r <= 0.1 for r in rises)
    lookbacks = {row["params"]["lookback"] for row in doc["top"]}
    assert lookbacks <= set(range(2, 49, 2))
    assert not any(Decimal(str(r)) % Decimal("0.005") == 0 for r in rises)  # not on any coarse grid


@pytest.mark.parametrize("args, words", [
    (["--trials", "10"], "--trials applies to a sampled search"),
    (["--search", "annealing"], "--search 'annealing' is not known"),
    (["--search", "random", "--trials", "0"], "--trials 0 is not valid"),
    (["--search", "tpe", "--search-timeout", "0"], "--search-timeout 0"),
])
def test_search_option_errors_exit_2(run_cli, workdir: Path, args: list[str], words: str) -> None:
    result = run_cli("optimize", "sma_cross", *CUT, "--no-progress", *args)
    assert result.returncode == 2 and words in " ".join(result.stderr.split()), result.stderr


class Big(Strategy):
    n = Param(1, low=1, high=10_000, step=1)

    def signals(self, data):  # pragma: no cover - never run
        return Signals(entries=data["close"] > 0)


def test_search_timeout_stops_proposing_between_batches() -> None:
    ticks = iter(range(100))  # a clock that advances one second per look
    trials = run_search(build_space(Big, None), "tpe", 100, 0, lambda batch: [0.0] * len(batch), timeout=2.5,
                        clock=lambda: next(ticks))
    assert len(trials) == 2 * 16 and "--search-timeout 2.5 s reached" in trials.stopped  # looks at 1 and 2 s pass


def test_heatmap_cells_of_a_constrained_grid_and_of_sampled_trials(workdir: Path) -> None:
    from systrade.optimize.report import heatmap_matrix

    (workdir / "ordered.py").write_text(CONSTRAINED)
    for search, trials in (("grid", None), ("random", 15)):
        opts = SweepOptions(BacktestOptions(strategy=str(workdir / "ordered.py"), start="2024-01-01",
                                            end="2024-02-10"), ["fast=5:12:1", "slow=8:14:2"], "sharpe", "2GB", 1,
                            progress=False, search=search, trials=trials)
        sweep = run_optimize(opts, settings()).sweep
        xs, ys, matrix = heatmap_matrix(sweep, "fast", "slow")
        by_cell = {(sweep.row(k)["params"]["slow"], sweep.row(k)["params"]["fast"]): sweep.row(k)["sharpe"]
                   for k in range(sweep.n_combos)}
        assert sorted(xs) == xs and sorted(ys) == ys and matrix.shape == (len(ys), len(xs))
        filled = 0
        for i, slow in enumerate(ys):
            for j, fast in enumerate(xs):
                if (slow, fast) in by_cell:
                    filled += 1
                    assert matrix[i, j] == by_cell[(slow, fast)]
                else:  # refused by valid() or never tried
                    assert math.isnan(matrix[i, j])
                    assert fast >= slow or search == "random"
        assert filled == sweep.n_combos == (23 if search == "grid" else 15)


def test_search_timeout_and_the_global_timeout_are_separate_options(run_cli, workdir: Path) -> None:
    doc = optimize_json(run_cli, workdir, "sma_cross", "--timeout", "120", "--search", "random", "--trials", "5",
                        "--search-timeout", "300", name="t.json")
    assert doc["trials"] == 5
    result = run_cli("optimize", "sma_cross", *CUT, "--no-progress", "--timeout", "-1", "--search", "random")
    assert result.returncode == 2 and "--timeout '-1' is not valid" in result.stderr


def test_log_params_need_positive_bounds_and_say_so() -> None:
    assert "log" in Param(0.02, low=0.005, high=0.1, log=True).describe_range()
    for low, high in ((0.0, 0.1), (None, 0.1), (-1.0, 1.0)):
        with pytest.raises(ValueError, match="positive low and high"):
            Param(0.02, low=low, high=high, log=True)
    space = build_space(Big, None)
    assert space.dims[0].values is not None and len(space.dims[0].values) == 10_000  # int with step: discrete


def test_a_tpe_search_on_a_dask_cluster_gives_the_same_trials_as_one_worker() -> None:
    from distributed import LocalCluster

    def search(workers: int, cluster: str | None = None, chunk_size: int | None = None):
        opts = SweepOptions(BacktestOptions(strategy="sma_cross", start="2024-01-01", end="2024-02-10"),
                            ["fast=2:30:1", "slow=10:100:5"], "sharpe", "2GB", workers, cluster, chunk_size,
                            progress=False, search="tpe", trials=24, seed=3)
        return run_optimize(opts, settings())

    alone = search(1)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp",
                      dashboard_address=None) as cluster:
        spread = search(1, cluster.scheduler_address, chunk_size=2)
    assert spread.session.runner.kind == "dask cluster"
    assert spread.sweep.job.grid.combos == alone.sweep.job.grid.combos
    np.testing.assert_array_equal(spread.sweep.metrics, alone.sweep.metrics)
    np.testing.assert_array_equal(spread.sweep.blocks, alone.sweep.blocks)


def test_a_grid_sweep_never_calls_signals_for_an_invalid_combination() -> None:
    from systrade.data.load import load_candles
    from systrade.optimize.grid import build_grid
    from systrade.optimize.sweep import SweepJob, evaluate
    from systrade.sim.rules import PositionRules

    grid = build_grid(Recording, ["fast=5:12:1", "slow=8:14:2"])
    assert len(grid) == 23 and grid.skipped == 9  # by hand, as in the test above
    candles = load_candles(REPO / "data", start="2024-01-01", end="2024-01-10")[0]
    job = SweepJob(Recording, grid, candles, PositionRules(), 10_000.0, 365.0)
    SEEN.clear()
    for k0 in range(0, len(grid), 5):
        evaluate(job, k0, min(k0 + 5, len(grid)), job.full_window())
    assert len(SEEN) == 23 and len(set(SEEN)) == 23
    assert all(fast < slow for fast, slow in SEEN)


def test_the_bundled_sma_cross_declares_fast_below_slow() -> None:
    from systrade.bundled.strategies.sma_cross import SmaCross
    from systrade.optimize.grid import build_grid

    assert SmaCross(fast=10, slow=30).valid() and not SmaCross(fast=30, slow=30).valid()
    assert not SmaCross(fast=40, slow=30).valid()
    assert len(build_grid(SmaCross, ["fast=5:12:1", "slow=8:14:2"])) == 23
