"""Wall and CPU time of the README's main command, in fresh processes (what a user feels).

Each variant runs several times; the medians of wall and CPU seconds (user + system, less sensitive to
other work on a shared machine) are reported and recorded in BENCHMARKS.md with the load average, plus
the slowest imports that remain (``python -X importtime``). ``--with-plain-vectorbt`` adds a plain
vectorbt script doing the same backtest (minutes: its numba cache is also measured cold); ``--rev REV`` adds
the same command at another revision (checked out with ``git worktree`` into a temporary folder, its numba
cache warmed by one run first) under the same load.
Run from the repository root: python benchmarks/backtest_startup.py [--with-plain-vectorbt] [--rev REV]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from bench_report import code_version, update_results, uptime

REPO = Path(__file__).resolve().parents[1]
RUNS = int(os.environ.get("BENCH_RUNS", "3"))

PLAIN_SCRIPT = """
import sys
import pandas as pd
import vectorbt as vbt
data = pd.read_parquet(sys.argv[1])
fast = data["close"].rolling(10).mean()
slow = data["close"].rolling(30).mean()
entries = (fast.shift(1) < slow.shift(1)) & (fast > slow)
exits = (fast.shift(1) > slow.shift(1)) & (fast < slow)
pf = vbt.Portfolio.from_signals(data["close"], entries.shift(1, fill_value=False),
                                exits.shift(1, fill_value=False), price=data["open"], init_cash=10000,
                                freq="1h", engine=sys.argv[2])
print(pf.total_return(), pf.sharpe_ratio(), pf.max_drawdown(), pf.trades.count())
"""


def timed(cmd: list[str], env: dict | None = None) -> tuple[float, float]:
    """Wall and CPU seconds (user + system of the child) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, env={**os.environ, **(env or {})})
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def summary(runs: list[tuple[float, float]]) -> tuple[float, float, float]:
    """Median wall, max wall, median CPU seconds."""
    walls = [w for w, _ in runs]
    return statistics.median(walls), max(walls), statistics.median(c for _, c in runs)


HEAVY = ("pandas", "numpy", "numba", "numba.np.arraymath", "scipy.linalg", "pyarrow", "typer", "rich", "pydantic",
         "vectorbt")


def slowest_imports(script: list[str], env: dict) -> list[tuple[str, float]]:
    """Seconds one run of ``script`` (a Python script and its arguments) spends importing each heavy package
    (``python -X importtime``: the package's own import, all its submodules included), slowest first."""
    result = subprocess.run([sys.executable, "-X", "importtime", *script], cwd=REPO, check=True,
                            capture_output=True, text=True, env={**os.environ, **env})
    seconds: dict[str, float] = {}
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or line.count("|") != 2:
            continue
        _, cumulative, name = line.split("|")
        if name.strip() in HEAVY and cumulative.strip().isdigit():
            seconds[name.strip()] = max(seconds.get(name.strip(), 0.0), int(cumulative) / 1e6)
    return sorted(seconds.items(), key=lambda r: -r[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--with-plain-vectorbt", action="store_true", help="also time a plain vectorbt script")
    parser.add_argument("--rev", help="also time the command at this git revision, e.g. main")
    args = parser.parse_args()
    sample = REPO / "src" / "systrade" / "bundled" / "sample" / "SAMPLE_USDT-1h.parquet"
    exe = str(Path(sys.executable).with_name("systrade"))
    ours = [exe, "backtest", "sma_cross"]
    here = {"PYTHONPATH": str(REPO / "src")}
    load_before = uptime()
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "plain_vectorbt.py"
        script.write_text(PLAIN_SCRIPT)
        numba_cache = Path(tmp) / "numba-cache"
        variants = {"python -c 'import vectorbt' (import only)": ([sys.executable, "-c", "import vectorbt"], None)}
        if args.with_plain_vectorbt:
            variants.update({
                "plain vectorbt script, numba engine, cold numba cache":
                    ([sys.executable, str(script), str(sample), "numba"], {"NUMBA_CACHE_DIR": str(numba_cache)}),
                "plain vectorbt script, numba engine, warm numba cache":
                    ([sys.executable, str(script), str(sample), "numba"], {"NUMBA_CACHE_DIR": str(numba_cache)}),
                "plain vectorbt script, rust engine": ([sys.executable, str(script), str(sample), "rust"], None),
            })
        if args.rev:
            other = Path(tmp) / "tree"
            subprocess.run(["git", "worktree", "add", "--detach", str(other), args.rev], cwd=REPO, check=True,
                           capture_output=True)
            there = {"PYTHONPATH": str(other / "src")}
            timed(ours, there)  # compiles that tree's numba cache
            commit = subprocess.run(["git", "rev-parse", "--short", args.rev], cwd=REPO, capture_output=True,
                                    text=True).stdout.strip()
            variants[f"systrade backtest sma_cross at `{args.rev}` ({commit})"] = (ours, there)
        variants.update({
            "python -c 'import pandas, numba, pyarrow.parquet' (the floor: what any backtest imports)":
                ([sys.executable, "-c", "import pandas, numba, pyarrow.parquet"], None),
            f"systrade backtest sma_cross, this tree ({code_version()})": (ours, here),
            "systrade strategies list, this tree": ([exe, "strategies", "list"], here),
        })
        timed(ours, here)  # this tree's numba cache is warm
        rows = []
        try:
            for name, (cmd, env) in variants.items():
                runs = []
                for _ in range(RUNS):
                    if "cold" in name:
                        subprocess.run(["rm", "-rf", str(numba_cache)], check=True)
                    runs.append(timed(cmd, env))
                med, worst, cpu = summary(runs)
                rows.append((name, med, worst, cpu))
                print(f"{name:60s} median {med:6.2f} s  max {worst:6.2f} s  CPU {cpu:6.2f} s", flush=True)
        finally:
            if args.rev:
                subprocess.run(["git", "worktree", "remove", "--force", str(other)], cwd=REPO, capture_output=True)
    imports = slowest_imports([exe, "backtest", "sma_cross"], here)
    for name, seconds in imports:
        print(f"  import {name:10s} {seconds:6.2f} s")
    record(rows, imports, load_before, uptime())


def record(rows: list[tuple[str, float, float, float]], imports: list[tuple[str, float]], load_before: str,
           load_after: str) -> None:
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    lines = [f"### Main command start-up ({date.today()}, {machine}, median of {RUNS} fresh processes)", "",
             "Command: `python benchmarks/backtest_startup.py` (sample: 17,520 hourly candles). The backtest no "
             "longer imports vectorbt: its books are kept from the fill model's fills (`backtest/ledger.py`).", "",
             "| variant | median wall s | max wall s | median CPU s |", "|---|---|---|---|"]
    lines += [f"| {n} | {m:.2f} | {w:.2f} | {c:.2f} |" for n, m, w, c in rows]
    lines += ["", "Imports left in `systrade backtest sma_cross` (`python -X importtime`, seconds per package "
              "with its submodules, one run; numba.np.arraymath is numba's start-up at the first call, "
              "scipy.linalg its check for BLAS): "
              + ", ".join(f"{n} {s:.2f}" for n, s in imports), "",
              f"Load before (`uptime`): `{load_before}`", "", f"Load after: `{load_after}`", "",
              "CPU seconds are what the command costs on an idle core; wall seconds grow with the load "
              "(the machine is shared)."]
    update_results("backtest_startup", "\n".join(lines))


if __name__ == "__main__":
    main()
