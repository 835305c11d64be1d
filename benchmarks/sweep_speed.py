"""Sweep speed before and after a change: the same `systrade optimize` run on this tree and on a git revision.

Each side runs as whole fresh processes (start-up included) from its own tree, on the bundled synthetic sample
(SAMPLE/USDT 1h, about 17,500 bars) with one worker, so the figures compare the sweep code, not the machine's
two cores. The grid is sma_cross `fast=5:40:1 slow=10:55:1` (1,656 combinations), costs stated (`--fees 0.001
--slippage 0.0005`). The other revision is checked out with `git worktree` into a temporary folder (removed
afterwards) and imported through PYTHONPATH; both sides use the same installed libraries. The numba cache of
each tree is warmed by one untimed run first.

Run from the repository root: ``python benchmarks/sweep_speed.py --rev 98ff904 [--runs 3]``.
Figures go to this script's section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from bench_report import REPO, code_version, machine, update_results, uptime

GRID = ["--grid", "fast=5:40:1", "--grid", "slow=10:55:1"]
COSTS = ["--fees", "0.001", "--slippage", "0.0005"]
COMBOS = 36 * 46


def run_once(tree: Path, json_path: Path) -> float:
    """Wall seconds of one `systrade optimize` process importing systrade from ``tree``."""
    env = {**os.environ, "PYTHONPATH": str(tree / "src"), "COLUMNS": "200"}
    env.pop("SYSTRADE_CONFIG", None)
    command = [sys.executable, "-c", "from systrade.cli import main; main()", "optimize", "sma_cross", *GRID, *COSTS,
               "--workers", "1", "--json", str(json_path)]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True, timeout=1800)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"optimize failed in {tree}:\n{result.stdout}\n{result.stderr}")
    return seconds


def measure(tree: Path, runs: int) -> list[float]:
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "o.json"
        run_once(tree, out)  # warm the numba disk cache of this tree
        return [run_once(tree, out) for _ in range(runs)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", required=True, help="git revision to compare with, e.g. 98ff904")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        other = Path(scratch) / "tree"
        subprocess.run(["git", "worktree", "add", "--detach", str(other), args.rev], cwd=REPO, check=True,
                       capture_output=True)
        try:
            before = measure(other, args.runs)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(other)], cwd=REPO, capture_output=True)
    after = measure(REPO, args.runs)
    rows = []
    for label, times in ((f"`{args.rev}`", before), (code_version(), after)):
        median = statistics.median(times)
        rows.append(f"| {label} | {median:.2f} | {COMBOS / median:.0f} | {', '.join(f'{t:.2f}' for t in times)} |")
    body = "\n".join([
        "## Sweep speed before/after (`benchmarks/sweep_speed.py`)",
        "",
        f"{date.today().isoformat()}, {machine()}; load: {uptime()}.",
        f"`systrade optimize sma_cross {' '.join(GRID)} {' '.join(COSTS)} --workers 1` on the synthetic sample "
        f"(SAMPLE/USDT 1h), {COMBOS:,} combinations, whole processes, median of {args.runs} after one warm-up run.",
        "",
        "| code | wall s (median) | combos/s | runs |",
        "|---|---:|---:|---|",
        *rows,
    ])
    print(body)
    update_results("sweep_speed", body)


if __name__ == "__main__":
    main()
