"""Size of `systrade backtest --report` for a year of hourly bars (8,760), and what it is made of.

Runs the real command on the bundled synthetic sample (2023, hourly, sma_cross) in a fresh process and
prints the file size, the embedded plotly.js and the figures' JSON; `--baseline SRC` runs the same command with
another source tree first on PYTHONPATH (e.g. a worktree of an older commit: `git worktree add /tmp/base
<commit>` then `--baseline /tmp/base/src`) for comparison. Records the figures in BENCHMARKS.md.

    python benchmarks/report_size.py [--baseline /tmp/base/src]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from bench_report import code_version, machine, update_results, uptime

REPO = Path(__file__).resolve().parents[1]
COMMAND = ["backtest", "sma_cross", "--start", "2023-01-01", "--end", "2023-12-31T23:00:00", "--fees", "0.001"]


def run_report(src: Path, folder: Path, name: str) -> tuple[Path, float]:
    """Write the report with ``src`` first on PYTHONPATH; (path, wall seconds of the whole command)."""
    exe = Path(sys.executable).with_name("systrade")
    env = {**os.environ, "PYTHONPATH": str(src)}
    path = folder / name
    started = time.perf_counter()
    subprocess.run([str(exe) if exe.exists() else "systrade", *COMMAND, "--report", str(path)], cwd=folder, env=env,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return path, time.perf_counter() - started


def parts(path: Path) -> dict[str, int]:
    """Bytes of the whole file, of its scripts holding plotly.js, and of everything else (figures, tables)."""
    text = path.read_text(encoding="utf-8")
    scripts = re.findall(r"<script[^>]*>(.*?)</script>", text, re.S)
    library = sum(len(s) for s in scripts if "plotly.js" in s[:200] or re.fullmatch(r"[A-Za-z0-9+/=\s]{100000,}", s))
    return {"total": len(text.encode("utf-8")), "plotly.js": library, "rest": len(text) - library}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="another source tree to compare with (its src/ folder)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        trees = [("this tree", REPO / "src")]
        if args.baseline:
            commit = subprocess.run(["git", "--no-optional-locks", "rev-parse", "--short", "HEAD"], cwd=args.baseline,
                                    capture_output=True, text=True).stdout.strip() or "unknown"
            trees.append((f"baseline (commit {commit})", args.baseline))
        for label, src in trees:
            path, seconds = run_report(src, folder, f"report{len(rows)}.html")
            sizes = parts(path)
            rows.append((label, sizes, seconds))
            print(f"{label}: {sizes['total']:,} bytes (plotly.js {sizes['plotly.js']:,}, figures and tables "
                  f"{sizes['rest']:,}); whole command {seconds:.1f} s")
    lines = [f"## HTML report size (`benchmarks/report_size.py`, {date.today()})", "",
             f"`systrade {' '.join(COMMAND)} --report r.html`: 8,760 hourly bars of the synthetic sample, "
             "one symbol, candles + 2 indicator lines + trades + equity/buy-and-hold/drawdown + monthly table.", "",
             f"Machine: {machine()}; {code_version()}; load: {uptime()}", "",
             "| code | file size | plotly.js inside | figures, tables, text | whole command (wall) |",
             "|---|---:|---:|---:|---:|"]
    lines += [f"| {label} | {s['total']:,} B | {s['plotly.js']:,} B | {s['rest']:,} B | {t:.1f} s |"
              for label, s, t in rows]
    lines += ["", "plotly.js is embedded once, gzip-compressed and base64-encoded, and unpacked by the browser "
              "(DecompressionStream); times travel as typed arrays of epoch milliseconds (lines on evenly spaced "
              "bars as x0/dx), values as float32 where that shows the same 2 decimals. Nothing is decimated."]
    update_results("report-size", "\n".join(lines))


if __name__ == "__main__":
    main()
