"""Reading candle files with bounded memory: time and peak RSS of `read_ohlcv` on a large day-first CSV, and how
fast an oversized or all-NUL file is refused.

Each measurement runs in its own process (peak RSS is that process's ``ru_maxrss``). The CSV is written by this
script (synthetic prices, day-first dates, two extra columns the reader must skip) into a temporary folder.
Run from the repository root: ``python benchmarks/read_speed.py [--rows 1000000]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
from bench_report import code_version, machine, update_results, uptime

MEASURE = """
import json, resource, sys, time
from systrade.data.readers import read_ohlcv
from systrade.errors import UserError
start = time.perf_counter()
try:
    rows, outcome = len(read_ohlcv(sys.argv[1], max_file_mb=float(sys.argv[2]) or None)), "read"
except UserError as error:
    rows, outcome = 0, "refused (exit 2): " + str(error).split("; ")[0].split(" is ", 1)[-1].split(" holds ", 1)[-1]
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "rows": rows, "outcome": outcome,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def write_csv(path: Path, rows: int) -> None:
    rng = np.random.default_rng(1)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, rows)))
    times = pd.date_range("2015-01-01", periods=rows, freq="1min")
    frame = pd.DataFrame({"Date": times.strftime("%d/%m/%Y %H:%M"), "Open": close, "High": close * 1.001,
                          "Low": close * 0.999, "Close": close, "Volume": rng.uniform(1, 10, rows),
                          "Note": "x", "Trades": rng.integers(1, 100, rows)})
    frame.to_csv(path, index=False, float_format="%.6f")


def measure(path: Path, limit_mb: float) -> dict:
    out = subprocess.run([sys.executable, "-c", MEASURE, str(path), str(limit_mb)], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        csv = Path(folder) / "day_first.csv"
        write_csv(csv, args.rows)
        size_mb = csv.stat().st_size / 1e6
        nul = Path(folder) / "nul.csv"
        with open(nul, "wb") as fh:  # sparse: 2 GB of NUL bytes without writing them
            fh.truncate(2 * 10**9)
        cases = [(f"day-first CSV, {size_mb:,.0f} MB, {args.rows:,} rows", csv, 0.0),
                 ("the same file, limit 10 MB", csv, 10.0),
                 ("2 GB of NUL bytes, no limit", nul, 0.0)]
        lines = ["| file | outcome | seconds | peak RSS MB |", "|---|---|---:|---:|"]
        for label, path, limit in cases:
            result = measure(path, limit)
            lines.append(f"| {label} | {result['outcome']} | {result['seconds']:.2f} | {result['peak_mb']:,.0f} |")
            print(lines[-1])
    body = "\n".join([
        "## Reading candle files (`benchmarks/read_speed.py`)", "",
        f"{date.today()}, {machine()}; {code_version()}; load: {uptime()}.",
        "`read_ohlcv` in a fresh process per file (seconds: the read call alone, imports excluded; peak RSS of the "
        "whole process, about 260 MB of it pandas and the other imports).", "", *lines])
    update_results("read_speed", body)


if __name__ == "__main__":
    main()
