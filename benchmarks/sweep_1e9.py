"""A billion bar-combinations: `systrade optimize` at the machine's limit, and identical to a reference revision.

Case 1 (speed): `systrade optimize sma_cross --grid fast=2:100:1 --grid slow=105:400:3` (9,801 combinations) on
100,000 hourly candles from the project's own generator (`generate_sample(bars=100_000)`), `--memory 2GB --fees 0
--slippage 0`: about 0.98e9 bar-combinations. Goal: at most 10 s as a whole process on 2 cores, the largest process
under 2e9 bytes resident, and results identical to those of revision `--rev` (default 98ff904).

Case 2 (memory): 10,000 combinations x 100,000 bars under `--memory 2GB` (the `@indicator` twin of sma_cross in
benchmarks/strategies, `fast=2:101:1 slow=10:505:5`, fees 0.001).

Every run is a fresh `systrade optimize` process. Reported per run: wall seconds, CPU seconds (user + sys of the
process and its workers, from `wait4`: much less sensitive than wall time to other work on a shared machine), the
peak resident size of the largest process (`ru_maxrss`) and of all processes together (psutil, polled every 50 ms).

Identical means: the reference revision, checked out with `git worktree` into a temporary folder and run from it
(PYTHONPATH), and this tree give the same `best` (parameters and every metric), the same DSR, PBO and luck inputs,
and the same metrics for every combination both evaluated (one untimed run of each side with `--top 100000` puts
every combination in the JSON), compared field by field with `==` (bit for bit). The timed runs' top tables must
equal the reference's first rows too.

Run from the repository root: ``python benchmarks/sweep_1e9.py [--runs 3] [--rev 98ff904] [--skip-memory]
[--reference ref.json]``.
Figures go to this script's section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil
from bench_report import REPO, code_version, machine, update_results, uptime

SPEED_GRID = ["--grid", "fast=2:100:1", "--grid", "slow=105:400:3"]
SPEED_ARGS = ["--memory", "2GB", "--fees", "0", "--slippage", "0"]
MEMORY_STRATEGY = REPO / "benchmarks" / "strategies" / "sma_cross_reuse.py"
MEMORY_GRID = ["--grid", "fast=2:101:1", "--grid", "slow=10:505:5"]
MEMORY_ARGS = ["--memory", "2GB", "--fees", "0.001"]
BARS = 100_000
# JSON fields that describe results (not how long the run took or how it was planned)
COMPARED = ("strategy", "symbol", "timeframe", "start", "end", "bars", "metric", "grid", "fixed", "initial_cash",
            "best", "deflated_sharpe", "pbo", "luck")


def make_data(folder: Path) -> Path:
    """100,000 hourly candles from the project's generator, as a Parquet file `--data` reads."""
    from systrade.data.sample import generate_sample

    frame = generate_sample(bars=BARS)
    frame.attrs = {}
    path = folder / "sample_100k_1h.parquet"
    frame.to_parquet(path)
    return path


def run(tree: Path, args: list[str], cwd: Path) -> dict:
    """One `systrade optimize` process importing systrade from ``tree``: wall, CPU and memory figures."""
    env = {**os.environ, "PYTHONPATH": str(tree / "src"), "COLUMNS": "200"}
    env.pop("SYSTRADE_CONFIG", None)
    command = [sys.executable, "-c", "from systrade.cli import main; main()", "optimize", *args, "--no-progress"]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=err, text=True)
        root = psutil.Process(proc.pid)
        total_peak = 0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            try:
                total_peak = max(total_peak, sum(p.memory_info().rss for p in [root, *root.children(recursive=True)]))
            except psutil.Error:
                pass
            time.sleep(0.05)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        out.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"optimize failed in {tree}:\n{out.read()[-3000:]}\n{err.read()[-3000:]}")
        stdout = out.read()
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "user": usage.ru_utime, "sys": usage.ru_stime,
            "largest_rss": usage.ru_maxrss * 1024, "total_rss": total_peak, "stdout": stdout}


def differences(reference: dict, ours: dict) -> list[str]:
    """Every compared field that differs, and every combination both evaluated whose row differs."""
    found = [f"{key}: {reference.get(key)!r} != {ours.get(key)!r}" for key in COMPARED
             if reference.get(key) != ours.get(key)]
    if reference["combos"] != ours["combos"] + ours.get("skipped_invalid", 0):
        found.append(f"combos: {reference['combos']} != {ours['combos']} + {ours.get('skipped_invalid', 0)} skipped")
    mine = {tuple(sorted(row["params"].items())): row for row in ours["top"]}
    for row in reference["top"]:
        other = mine.get(tuple(sorted(row["params"].items())))
        if other is None:
            if len(ours["top"]) >= ours["combos"]:  # ours holds every combination: this one was skipped as invalid
                continue
            found.append(f"combination {row['params']} is missing")
        elif {k: v for k, v in row.items() if k != "rank"} != {k: v for k, v in other.items() if k != "rank"}:
            found.append(f"combination {row['params']}: {row} != {other}")
    return found


def same_top(reference: dict, ours: dict) -> bool:
    """The timed run's top table equals the reference's first rows (params, metrics and rank)."""
    return ours["top"] == reference["top"][:len(ours["top"])]


def speed_case(runs: int, rev: str, work: Path, data: Path,
               saved: Path | None) -> tuple[list[dict], list[str], bool, dict | None]:
    args = ["sma_cross", "--data", str(data), *SPEED_GRID, *SPEED_ARGS]
    everything = ["--top", "100000"]
    ref_run = None
    if saved is not None and saved.exists():  # the reference's output from an earlier run of this script
        reference = json.loads(saved.read_text())
    else:
        with tempfile.TemporaryDirectory() as scratch:
            other = Path(scratch) / "tree"
            subprocess.run(["git", "worktree", "add", "--detach", str(other), rev], cwd=REPO, check=True,
                           capture_output=True)
            try:
                ref_run = run(other, [*args, *everything, "--json", str(work / "reference.json")], other)
            finally:
                subprocess.run(["git", "worktree", "remove", "--force", str(other)], cwd=REPO, capture_output=True)
        reference = json.loads((work / "reference.json").read_text())
        if saved is not None:
            saved.write_text(json.dumps(reference))
    run(REPO, [*args, *everything, "--json", str(work / "all.json")], work)  # also warms numba's disk cache
    found = differences(reference, json.loads((work / "all.json").read_text()))
    timed = []
    top_equal = True
    for _ in range(runs):
        figures = run(REPO, [*args, "--json", str(work / "timed.json")], work)
        doc = json.loads((work / "timed.json").read_text())
        found += [f"timed run: {d}" for d in differences(reference, doc) if not d.startswith("combination")]
        top_equal &= same_top(reference, doc)
        timed.append(figures)
    if ref_run is not None:
        print(f"reference {rev}: {ref_run['wall']:.1f} s wall, {ref_run['cpu']:.1f} s CPU", flush=True)
    return timed, found, top_equal, ref_run


def memory_case(work: Path, data: Path) -> dict:
    args = [str(MEMORY_STRATEGY), "--data", str(data), *MEMORY_GRID, *MEMORY_ARGS, "--json", str(work / "mem.json")]
    figures = run(REPO, args, work)
    doc = json.loads((work / "mem.json").read_text())
    figures.update(combos=doc["combos"], bars=doc["bars"], plan=doc["run"])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rev", default="98ff904", help="reference revision whose results must be identical")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--reference", type=Path, help="JSON file keeping the reference's output: written after "
                        "running the reference revision, read instead of running it when it exists (same data, "
                        "same grid: the generator is seeded)")
    args = parser.parse_args()
    load_before = uptime()
    version = code_version()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        data = make_data(work)
        timed, found, top_equal, ref_run = speed_case(args.runs, args.rev, work, data, args.reference)
        memory = None if args.skip_memory else memory_case(work, data)
    identical = not found and top_equal
    for problem in found[:20]:
        print("DIFFERENT:", problem)
    rows = [f"| {i + 1} | {r['wall']:.2f} | {r['cpu']:.2f} ({r['user']:.2f} + {r['sys']:.2f}) | "
            f"{r['largest_rss'] / 1e6:,.0f} | {r['total_rss'] / 1e6:,.0f} |" for i, r in enumerate(timed)]
    wall = statistics.median(r["wall"] for r in timed)
    cpu = statistics.median(r["cpu"] for r in timed)
    lines = [
        "## A billion bar-combinations (`benchmarks/sweep_1e9.py`)",
        "",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; machine: {machine()}",
        f"- Command: `python benchmarks/sweep_1e9.py --runs {args.runs} --rev {args.rev}` "
        f"(total {time.perf_counter() - started:.0f} s); code: {version}",
        f"- Load (`uptime`) before: `{load_before}`",
        f"- Load (`uptime`) after: `{uptime()}`",
        "- The machine is shared with other work: wall times are inflated by it, CPU seconds much less.",
        "",
        f"### 9,801 combinations x {BARS:,} bars (0.98e9 bar-combinations)",
        "",
        f"`systrade optimize sma_cross --data <{BARS:,} hourly candles of generate_sample> {' '.join(SPEED_GRID)} "
        f"{' '.join(SPEED_ARGS)}`, whole fresh processes (start-up, sweep, DSR, PBO, JSON), 2 workers.",
        "",
        "| run | wall s | CPU s (user + sys), all processes | peak RSS of the largest process (MB) | "
        "peak RSS, all processes (MB) |",
        "|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"Median: **{wall:.2f} s wall, {cpu:.2f} CPU s** (goal: at most 10 s wall on 2 cores; with two free cores "
        f"the wall time is about CPU / 2 plus the serial start-up). "
        + (f"Revision `{args.rev}` on the same data: {ref_run['wall']:.1f} s wall, {ref_run['cpu']:.1f} CPU s "
           "(run once, with `--top 100000`)." if ref_run else
           f"The reference output of `{args.rev}` was read from `{args.reference}` (an earlier run of it)."),
        "",
        f"Results identical to `{args.rev}` (best parameters and metrics, DSR, PBO, luck inputs, every combination's "
        f"metrics, the top table): **{'yes' if identical else 'NO'}**"
        + ("" if identical else f" ({len(found)} differences, first: {found[0] if found else 'top table'})"),
    ]
    if memory is not None:
        lines += [
            "",
            f"### {memory['combos']:,} combinations x {memory['bars']:,} bars under `--memory 2GB`",
            "",
            f"`systrade optimize benchmarks/strategies/sma_cross_reuse.py --data <same candles> "
            f"{' '.join(MEMORY_GRID)} {' '.join(MEMORY_ARGS)}`: {memory['wall']:.2f} s wall, {memory['cpu']:.2f} "
            f"CPU s, peak RSS of the largest process {memory['largest_rss'] / 1e6:,.0f} MB, of all processes "
            f"{memory['total_rss'] / 1e6:,.0f} MB (goal: under 2,000 MB); plan: {memory['plan']}.",
        ]
    body = "\n".join(lines)
    print(body)
    update_results("sweep_1e9", body)


if __name__ == "__main__":
    main()
