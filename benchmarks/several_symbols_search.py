"""Speed and memory of a parameter search over a strategy trading several symbols together.

    python benchmarks/several_symbols_search.py            # 3 symbols x 2,000 daily bars, 12 combinations

Each combination is the backtest's cash-sharing portfolio (one at a time, in one process), so the figure to
watch is combinations per second and the peak resident memory, which should not grow with the grid. Prints the
figures; the machine is shared, so the load average is printed with them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

REPO = Path(__file__).resolve().parents[1]
SYMBOLS = ["SPY", "QQQ", "TLT"]


def candles(seed: int, days: pd.DatetimeIndex) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(0.0003 + rng.normal(0, 0.01, len(days))))
    opens = close * (1 + rng.normal(0, 0.002, len(days)))
    return pd.DataFrame({"open": opens, "high": np.maximum(opens, close) * 1.004,
                         "low": np.minimum(opens, close) * 0.996, "close": close, "volume": 1e6},
                        index=days.rename("time"))


def run(cwd: Path, *args: str) -> tuple[subprocess.CompletedProcess, int]:
    """A real `systrade` subprocess and its peak resident memory (sampled every 50 ms)."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    exe = Path(sys.executable).with_name("systrade")
    proc = subprocess.Popen([str(exe), *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    peak = 0
    watched = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            peak = max(peak, watched.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    out, err = proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), peak


def main() -> None:
    days = pd.bdate_range("2015-01-01", periods=2000, tz="UTC")
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "systrade.toml").write_text(f'[data]\ndir = "{(root / "data").as_posix()}"\n')
        for i, symbol in enumerate(SYMBOLS):
            candles(i, days).to_csv(root / f"{symbol}.csv")
            done, _ = run(root, "data", "import", f"{symbol}.csv", "--exchange", "alpaca", "--symbol", symbol)
            assert done.returncode == 0, done.stderr
        for grid in ("lookback=20:130:10", "lookback=20:240:10"):
            done, peak = run(root, "optimize", "momentum_rotation", "--exchange", "alpaca", "--grid", grid,
                             "--json", "o.json", "--no-progress")
            assert done.returncode == 0, done.stderr
            doc = json.loads((root / "o.json").read_text())
            print(f"{len(SYMBOLS)} symbols x {len(days):,} bars, {doc['combos']} combinations: "
                  f"{doc['combos_per_s']:.2f} combinations/s, {doc['elapsed_s']:.1f} s in all, peak resident "
                  f"{peak / 1e6:,.0f} MB (load average {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
