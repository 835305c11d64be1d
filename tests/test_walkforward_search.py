"""Walk-forward with a sampled in-sample search (``walkforward --search random|tpe --trials N --seed S``).

Each window's search is seeded from ``--seed`` and the window's number, so: the same seed chooses the same
params in every window whatever the worker count; a window's choice is what ``optimize`` with that window's
seed finds on the training slice alone; windows draw different trials; the trials are counted per window;
and option combinations that do not fit are refused before any work.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO, STRATEGIES, systrade_exe

from systrade.backtest.request import BacktestOptions
from systrade.config import Settings
from systrade.optimize.run import SweepOptions, run_optimize
from systrade.optimize.walkforward import run_walkforward, window_seed

TRAIN, TEST = pd.Timedelta(days=30), pd.Timedelta(days=15)
SPAN = {"start": "2023-01-01", "end": "2023-03-15"}


def settings() -> Settings:
    return Settings.model_validate({"strategies": {"dir": str(STRATEGIES)}, "data": {"dir": str(REPO / "data")}})


def options(search: str = "random", seed: int = 7, workers: int = 1, trials: int = 10, **span) -> SweepOptions:
    backtest = BacktestOptions(strategy="sma_cross", fees=0.001, **{**SPAN, **span})
    # a budget two forked workers always fit in: the plan charges each the whole test process's resident size,
    # which grows as the suite runs, and would fall back to one worker under 2GB
    return SweepOptions(backtest, [], "sharpe", "16GB", workers, None, None, progress=False, search=search,
                        trials=trials, seed=seed)


def chosen(result) -> list[tuple]:
    return [(w.params, w.combos, w.in_sample["sharpe"]) for w in result.windows]


@pytest.fixture(scope="module")
def random_one_worker():
    return run_walkforward(options(), settings(), TRAIN, TEST, anchored=False)


@pytest.mark.parametrize("search", ["random", "tpe"])
def test_the_same_seed_chooses_the_same_params_per_window_with_one_or_two_workers(search, random_one_worker):
    trials = 10 if search == "random" else 20  # tpe: two rounds of proposals, the second told the first's results
    one = random_one_worker if search == "random" else run_walkforward(
        options(search, trials=trials), settings(), TRAIN, TEST, anchored=False)
    two = run_walkforward(options(search, workers=2, trials=trials), settings(), TRAIN, TEST, anchored=False)
    assert two.session.runner.workers == 2
    assert len(one.windows) >= 3
    assert chosen(one) == chosen(two)
    assert [w.seed for w in one.windows] == [w.seed for w in two.windows]


def test_each_window_is_optimize_with_its_own_seed_on_the_training_slice(random_one_worker):
    result = random_one_worker
    index = result.candles.frame.index
    seeds = [w.seed for w in result.windows]
    assert len(set(seeds)) == len(seeds)  # windows do not all draw the same trials
    for number, w in enumerate(result.windows[:2], 1):
        alone = run_optimize(options(seed=window_seed(7, number), start=str(index[w.split.train_start]),
                                     end=str(index[w.split.test_start - 1])), settings())
        assert w.seed == window_seed(7, number)
        assert alone.best.params == w.params
        assert alone.sweep.n_combos == w.combos == 10
        assert alone.best.metrics["sharpe"] == pytest.approx(w.in_sample["sharpe"], rel=1e-12)


def test_another_seed_draws_other_trials(random_one_worker):
    others = [run_walkforward(options(seed=seed), settings(), TRAIN, TEST, anchored=False) for seed in (8, 9)]
    assert any(chosen(other) != chosen(random_one_worker) for other in others)
    assert all([w.seed for w in o.windows] != [w.seed for w in random_one_worker.windows] for o in others)


def run(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SYSTRADE_CONFIG"}
    return subprocess.run([systrade_exe(), "walkforward", "sma_cross", "--train", "30d", "--test", "15d",
                           "--start", SPAN["start"], "--end", SPAN["end"], "--no-progress", *args],
                          cwd=workdir, env={**env, "COLUMNS": "200"}, capture_output=True, text=True, timeout=300)


def test_the_table_and_json_say_which_search_ran_and_count_each_windows_trials(workdir: Path) -> None:
    done = run(workdir, "--search", "random", "--trials", "6", "--seed", "3", "--grid", "fast=5:9:2",
               "--grid", "slow=20:30:10", "--json", "wf.json", "--report", "wf.html")
    assert done.returncode == 0, done.stderr
    assert "random search, 6 trials per window, seed 3" in done.stdout
    assert "out-of-sample equity" in (workdir / "wf.html").read_text()
    doc = json.loads((workdir / "wf.json").read_text())
    assert (doc["search"], doc["trials"], doc["seed"], doc["combos"]) == ("random", 6, 3, None)
    assert [w["seed"] for w in doc["windows"]] == [window_seed(3, n) for n in range(1, len(doc["windows"]) + 1)]
    # the space holds 3 x 2 = 6 parameter sets: every window tries each once
    assert all(w["trials"] == w["combos"] == 6 and w["stopped"] is None for w in doc["windows"])
    small = run(workdir, "--search", "random", "--trials", "9", "--grid", "fast=5:9:2", "--grid", "slow=20:30:10",
                "--json", "small.json")
    assert small.returncode == 0, small.stderr
    windows = json.loads((workdir / "small.json").read_text())["windows"]
    assert all(w["trials"] == 6 and "only 6 distinct" in w["stopped"] for w in windows)
    assert "window 1: the search stopped at 6 trials" in small.stdout
    grid = run(workdir, "--grid", "fast=5:9:2", "--grid", "slow=20:30:10", "--json", "grid.json")
    assert grid.returncode == 0, grid.stderr
    doc = json.loads((workdir / "grid.json").read_text())
    assert (doc["search"], doc["combos"]) == ("grid", 6) and "trials" not in doc["windows"][0]


@pytest.mark.parametrize(("args", "message"), [
    (["--trials", "20"], "--trials applies to a sampled search; add --search random or --search tpe"),
    (["--search-timeout", "5"], "--search-timeout applies to a sampled search"),
    (["--search", "bayes"], "--search 'bayes' is not known; use one of grid, random, tpe"),
    (["--search", "random", "--trials", "0"], "--trials 0 is not valid; give 1 or more"),
    (["--search", "tpe", "--seed", "-1"], "--seed -1 is not valid; give 0 or a positive whole number"),
    (["--search", "random", "--search-timeout", "0"], "--search-timeout 0.0 is not valid"),
])
def test_options_that_do_not_fit_exit_2_with_one_clear_message(workdir: Path, args, message) -> None:
    done = run(workdir, *args, "--json", "out.json")
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not (workdir / "out.json").exists()
