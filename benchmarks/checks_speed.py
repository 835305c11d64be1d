"""Speed of the trust checks: lookahead and warmup on 100k bars, replay bars/s and full-data parity.

    python benchmarks/checks_speed.py           # everything (several minutes: 20 full-data parity runs)
    python benchmarks/checks_speed.py --quick   # lookahead/warmup on 100k bars and ETH/BTC replays without stops

Figures go to BENCHMARKS.md (this script's section is replaced). The machine is shared: the
load before and after is recorded; compare figures within one run.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

import pandas as pd  # noqa: E402

from systrade.backtest.request import BacktestOptions, prepare_backtest  # noqa: E402
from systrade.checks.lookahead import check_lookahead  # noqa: E402
from systrade.checks.parity import check_parity  # noqa: E402
from systrade.checks.warmup import measure_warmup  # noqa: E402
from systrade.config import Settings, StrategySettings  # noqa: E402
from systrade.data.sample import generate_sample  # noqa: E402
from systrade.strategy import build_strategy, load_strategy  # noqa: E402

RESULTS = REPO / "BENCHMARKS.md"
STRATEGIES = REPO / "strategies"
SHARED = REPO.parent / "shared" / "data"
BUNDLED = ["sma_cross", "rsi_reversion", "bollinger_breakout", "donchian_breakout", "macd_trend"]
DATASETS = {"ETH/BTC 5m": ("ETH_BTC-5m.csv", {"fees": 0.001, "slippage": 0.0005},
                           {"direction": "both", "stop_loss": 0.01, "take_profit": 0.02}),
            "ORCL 1d": ("orcl-1995-2014.txt", {"fees": 0.0005, "slippage": 0.001, "granularity": 1.0},
                        {"direction": "long", "stop_loss": 0.05, "take_profit": 0.1})}


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "unknown CPU")
    return (f"{platform.platform()}, {model}, {os.cpu_count()} logical cores, Python {platform.python_version()}, "
            f"pandas {pd.__version__}")


def bench_checks(bars: int, repeats: int) -> list[str]:
    frame = generate_sample(bars=bars)
    lines = [f"### Lookahead and warmup checks on {bars:,} bars", "",
             f"Synthetic hourly candles (`generate_sample(bars={bars})`), default parameters; median of {repeats} runs "
             "(wall time, one process).", "",
             "| strategy | lookahead check | cuts (strategy calls) | biased | warmup check | warmup (candles) |",
             "|---|---:|---:|---|---:|---:|"]
    for name in BUNDLED:
        strategy = build_strategy(load_strategy(name, STRATEGIES))
        look, warm = [], []
        for _ in range(repeats):
            started = time.perf_counter()
            report = check_lookahead(strategy, frame)
            look.append(time.perf_counter() - started)
            started = time.perf_counter()
            warmup = measure_warmup(strategy, frame)
            warm.append(time.perf_counter() - started)
        lines.append(f"| {name} | {statistics.median(look):.2f} s | {report.cuts} ({report.cuts + 1}) | "
                     f"{report.biased} | {statistics.median(warm):.2f} s | {warmup.warmup} |")
        print(lines[-1], flush=True)
    return lines


def bench_parity(quick: bool) -> list[str]:
    settings = Settings(strategies=StrategySettings(dir=str(STRATEGIES)))
    lines = ["### Replay speed and parity on the full real data", "",
             "`check parity` per bundled strategy (default parameters) on the whole file: the vectorized backtest and "
             "the replay of the daemon's `BotRunner.tick` (in-memory SQLite ledger, history = measured warmup + 250). "
             "Replay bars/s is the tick loop only.", "",
             "| data | strategy | rules | bars | history | replay bars/s | trades (backtest / replay) | stop exits | "
             "parity |", "|---|---|---|---:|---:|---:|---:|---:|---|"]
    for label, (file, costs, stops) in DATASETS.items():
        path = SHARED / file
        if not path.is_file():
            lines.append(f"| {label} | - | - | - | - | - | - | - | skipped: {path} is absent |")
            continue
        for name in BUNDLED:
            for extra in ({}, stops) if not quick else ({},):
                if quick and label != "ETH/BTC 5m":
                    continue
                options = BacktestOptions(strategy=name, data_file=str(path), **costs, **extra)
                prepared = prepare_backtest(options, settings)
                report = check_parity(prepared, load_strategy(name, STRATEGIES))
                rules = ", ".join(f"{k} {v}" for k, v in {**costs, **extra}.items())
                if report.identical:
                    verdict = "identical"
                else:
                    first = report.differences[0]
                    verdict = (f"{report.differences_total} differ from trade {first['trade']}: "
                               f"{first['why'].split(';')[0].split('. ')[0]}")
                trades = f"{report.backtest_trades} / {report.replay_trades}"
                speed = f"{report.replay_bars_per_second:,.0f}"
                lines.append(f"| {label} | {name} | {rules} | {report.bars} | {report.history} | {speed} | {trades} | "
                             f"{report.replay_stop_exits} | {verdict} |")
                print(lines[-1], flush=True)
    return lines


def update_results(body: str) -> None:
    start, end = "<!-- checks_speed:start -->", "<!-- checks_speed:end -->"
    text = RESULTS.read_text() if RESULTS.exists() else (
        "# Benchmarks: trust checks\n\nWritten by `benchmarks/checks_speed.py`, which replaces its own section.\n")
    block = f"{start}\n{body.rstrip()}\n{end}"
    if start in text and end in text:
        text = text.split(start)[0] + block + text.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="checks on 100k bars and ETH/BTC replays only")
    parser.add_argument("--bars", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    load_before, started = uptime(), time.perf_counter()
    checks = bench_checks(args.bars, args.repeats)
    parity = bench_parity(args.quick)
    total, load_after = time.perf_counter() - started, uptime()
    body = "\n".join([
        "## Trust checks (`benchmarks/checks_speed.py`)", "",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; machine: {machine()}",
        f"- Command: `python benchmarks/checks_speed.py{' --quick' if args.quick else ''}` (total {total:.0f} s)",
        f"- Load (`uptime`) before: `{load_before}`", f"- Load (`uptime`) after: `{load_after}`",
        "- The machine is shared with other work: absolute times are noisy, compare within a run.", "",
        *checks, "", *parity, ""])
    update_results(body)
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
