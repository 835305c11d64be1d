"""Wall time of the README's main command vs a plain vectorbt script doing the same backtest.

Each variant runs in a fresh process (what a user feels), several times; the median is reported
and recorded in BENCHMARKS.md. Run from the repository root: python benchmarks/backtest_startup.py
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from bench_report import update_results, uptime

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


def timed(cmd: list[str], env: dict | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, env={**os.environ, **(env or {})})
    return time.perf_counter() - start


def median_of(cmd: list[str], env: dict | None = None) -> tuple[float, float]:
    times = [timed(cmd, env) for _ in range(RUNS)]
    return statistics.median(times), max(times)


def main() -> None:
    sample = REPO / "src" / "systrade" / "bundled" / "sample" / "SAMPLE_USDT-1h.parquet"
    exe = str(Path(sys.executable).with_name("systrade"))
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "plain_vectorbt.py"
        script.write_text(PLAIN_SCRIPT)
        numba_cache = Path(tmp) / "numba-cache"
        variants = {
            "python -c 'import vectorbt' (import only)": ([sys.executable, "-c", "import vectorbt"], None),
            "plain vectorbt script, numba engine, cold numba cache":
                ([sys.executable, str(script), str(sample), "numba"], {"NUMBA_CACHE_DIR": str(numba_cache)}),
            "plain vectorbt script, numba engine, warm numba cache":
                ([sys.executable, str(script), str(sample), "numba"], {"NUMBA_CACHE_DIR": str(numba_cache)}),
            "plain vectorbt script, rust engine": ([sys.executable, str(script), str(sample), "rust"], None),
            "systrade backtest sma_cross (rust engine, lazy imports)": ([exe, "backtest", "sma_cross"], None),
            "systrade strategies list (no vectorbt import)": ([exe, "strategies", "list"], None),
        }
        rows = []
        for name, (cmd, env) in variants.items():
            if "cold" in name:
                runs = []
                for _ in range(RUNS):
                    subprocess.run(["rm", "-rf", str(numba_cache)], check=True)
                    runs.append(timed(cmd, env))
                med, worst = statistics.median(runs), max(runs)
            else:
                med, worst = median_of(cmd, env)
            rows.append((name, med, worst))
            print(f"{name:65s} median {med:6.2f} s  max {worst:6.2f} s", flush=True)
    reference = next(m for n, m, _ in rows if "warm numba" in n)
    ours = next(m for n, m, _ in rows if n.startswith("systrade backtest"))
    print(f"systrade / plain vectorbt (warm numba cache): {ours / reference:.2f}")
    record(rows, ours / reference)


def record(rows: list[tuple[str, float, float]], ratio: float) -> None:
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    lines = [f"### Main command start-up ({date.today()}, {machine}, median of {RUNS} fresh processes)", "",
             "Command: `python benchmarks/backtest_startup.py` (sample: 17,520 hourly candles).", "",
             "| variant | median s | max s |", "|---|---|---|"]
    lines += [f"| {n} | {m:.2f} | {w:.2f} |" for n, m, w in rows]
    lines += ["", f"Ratio systrade / plain vectorbt script (warm numba cache): **{ratio:.2f}**", ""]
    lines.append(f"Load while measuring (`uptime`): {uptime()}")
    update_results("backtest_startup", "\n".join(lines))


if __name__ == "__main__":
    main()
