"""Paper-trading tick cost: 20 bots per tick without exchange round trips, and memory over 10,000 ticks.

(a) 20 ``sma_cross`` bots (default params 10/30, 1m candles, the default 250 candles of history,
5 % of the shared cash per entry) on 20 different symbols, all against one local FakeBinance. Each
``run_once`` ticks all 20 once; the fake's clock then moves on one candle, so every tick of every bot
sees a new closed bar. The time spent inside HTTP round trips (``requests.Session.request`` of the
ccxt client: send, wait, read the body) is measured and subtracted to give the tick's own cost.
(b) One such bot (fetching 60 candles per tick, see HISTORY_B), 10,000 ticks, one new candle per
tick; resident memory (after ``gc.collect()``) at ticks 100, 1,000, 5,000 and 10,000 (and a few
more), with SQLite's own heap (``sqlite3_memory_used``) and the number of gc-tracked objects beside it.

FakeBinance runs in a child process (forked before any thread starts), so its CPU time and its
memory (it keeps a request log) are not the bot process's; it listens on 127.0.0.1 only. The ledger
is SQLite in a temporary directory. Logging is left unconfigured (the daemon would write one INFO
line per tick). Run from the repository root:

    python benchmarks/paper_ticks.py            # BENCH_TICKS_A / BENCH_TICKS_B override the counts
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from bench_report import RESULTS, code_version, machine, update_results, uptime

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import ccxt  # noqa: E402  (imported before the fork, so the child does not import it again)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from fakes.binance import FakeBinance  # noqa: E402
from paper_helpers import paper_config, sma_bot  # noqa: E402

from systrade.config import load_settings  # noqa: E402
from systrade.live.daemon import build_runners, run_once  # noqa: E402

MINUTE = 60_000
START = pd.Timestamp("2024-01-01", tz="UTC")
HISTORY = 250  # sma_cross has no warmup: the runner fetches warmup + 250 candles by default
TICKS_A = int(os.environ.get("BENCH_TICKS_A", "30"))  # measured run_once calls with 20 bots
TICKS_B = int(os.environ.get("BENCH_TICKS_B", "10000"))
# (b) fetches 60 candles per tick (as tests/paper_helpers.sma_bot does) instead of 250: the fake formats every
# candle of every answer in Python, and with 250 the 10,000 ticks take ~5 minutes on a loaded 2-core machine.
HISTORY_B = int(os.environ.get("BENCH_HISTORY_B", "60"))
RSS_AT = (1, 100, 500, 1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000, 10000)
SYMBOLS = ("BTC", "ETH", "BNB", "SOL", "XRP", "ADA", "DOGE", "TRX", "AVAX", "LINK",
           "DOT", "POL", "LTC", "BCH", "ATOM", "UNI", "XLM", "ETC", "FIL", "NEAR")


# ---------------------------------------------------------------- the fake, in its own process

def _serve_fake(conn, clock_ms: int, options: dict) -> None:
    fake = FakeBinance(clock_ms=clock_ms, **options).start()
    while True:
        name, args, kwargs = conn.recv()
        if name == "stop":
            fake.stop()
            conn.send((True, None))
            return
        try:
            attr = getattr(fake, name)
            conn.send((True, attr(*args, **kwargs) if callable(attr) else attr))
        except Exception as error:  # handed back to the parent
            conn.send((False, repr(error)))


class FakeProcess:
    """FakeBinance in a child process; ``call`` runs one of its methods (or reads an attribute) there."""

    def __init__(self, clock_ms: int, **options) -> None:
        context = multiprocessing.get_context("fork")
        self._conn, child = context.Pipe()
        self.process = context.Process(target=_serve_fake, args=(child, clock_ms, options), daemon=True)
        self.process.start()
        child.close()

    def call(self, name: str, *args, **kwargs):
        self._conn.send((name, args, kwargs))
        ok, value = self._conn.recv()
        if not ok:
            raise RuntimeError(f"FakeBinance.{name} failed: {value}")
        return value

    def ccxt_config(self) -> dict:
        return self.call("ccxt_config")

    def close(self) -> None:
        if self.process.is_alive():
            self.call("stop")
            self.process.join(timeout=10)


# ---------------------------------------------------------------- measuring

class Timings:
    """Exclusive wall time per bucket: time in a nested bucket is not also counted in the one around it.

    Buckets: ``http`` (the ccxt client's ``requests.Session.request``: send, wait for the fake, read the
    body), ``ccxt`` (the rest of ccxt's ``fetch``: headers, JSON decoding), ``market`` (MarketData calls
    around them: ccxt's candle parsing, building the DataFrame), ``strategy`` (``signals()``), ``ledger``
    (every Ledger call and transaction: SQLAlchemy + SQLite with fsync).
    """

    BUCKETS = ("http", "ccxt", "market", "strategy", "ledger")  # every public method of MarketData and Ledger

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(self.BUCKETS, 0.0)
        self.requests = 0
        self._stack: list[list] = []

    def _enter(self, bucket: str) -> None:
        now = time.perf_counter()
        if self._stack:
            top = self._stack[-1]
            self.seconds[top[0]] += now - top[1]
        self._stack.append([bucket, now])

    def _exit(self) -> None:
        now = time.perf_counter()
        bucket, start = self._stack.pop()
        self.seconds[bucket] += now - start
        if self._stack:
            self._stack[-1][1] = now
        if bucket == "http":
            self.requests += 1

    def wrap(self, obj, name: str, bucket: str) -> None:
        inner = getattr(obj, name)

        def timed(*args, **kwargs):
            self._enter(bucket)
            try:
                return inner(*args, **kwargs)
            finally:
                self._exit()

        setattr(obj, name, timed)

    def wrap_context(self, obj, name: str, bucket: str) -> None:
        """Like ``wrap`` for a method returning a context manager (the time is spent in its body and exit)."""
        inner = getattr(obj, name)

        @contextlib.contextmanager
        def timed(*args, **kwargs):
            self._enter(bucket)
            try:
                with inner(*args, **kwargs) as value:
                    yield value
            finally:
                self._exit()

        setattr(obj, name, timed)

    def wrap_public(self, obj, bucket: str) -> None:
        """Wrap every public method of ``obj`` (whatever the current code calls), context managers included."""
        for name in dir(type(obj)):
            function = getattr(type(obj), name)
            if name.startswith("_") or not inspect.isfunction(function):
                continue
            wrapped = getattr(function, "__wrapped__", None)
            if wrapped is not None and inspect.isgeneratorfunction(wrapped):  # a @contextmanager
                self.wrap_context(obj, name, bucket)
            else:
                self.wrap(obj, name, bucket)

    def attach(self, runners) -> None:
        for client in {id(r.market.client): r.market.client for r in runners}.values():
            self.wrap(client.session, "request", "http")
            self.wrap(client, "fetch", "ccxt")
        for market in {id(r.market): r.market for r in runners}.values():
            self.wrap_public(market, "market")
        self.wrap_public(runners[0].ledger, "ledger")
        for runner in runners:
            self.wrap(runner.strategy, "signals", "strategy")

    def snapshot(self) -> tuple[dict, int]:
        return dict(self.seconds), self.requests


def time_ticks(runner, timings: Timings, samples: list) -> None:
    """Record (bot, outcome, wall, {bucket: seconds}, requests, CPU) of every ``runner.tick()``."""
    inner = runner.tick

    def tick():
        before, requests = timings.snapshot()
        cpu = time.process_time()
        start = time.perf_counter()
        outcome = "raised"
        try:
            result = inner()
            outcome = result.outcome
            return result
        finally:
            wall = time.perf_counter() - start
            cpu = time.process_time() - cpu
            after, requests_after = timings.snapshot()
            samples.append((runner.name, outcome, wall, {k: after[k] - before[k] for k in after},
                            requests_after - requests, cpu))

    runner.tick = tick


def rss_mb() -> float:
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("cannot read the resident set size")


def memory_detail() -> tuple[float, float | None]:
    """Anonymous resident memory (heap; MB) and SQLite's own heap (``sqlite3_memory_used``; MB, None if unknown)."""
    anon = next((int(line.split()[1]) / 1024 for line in Path("/proc/self/status").read_text().splitlines()
                 if line.startswith("RssAnon:")), float("nan"))
    try:
        import ctypes
        import ctypes.util

        library = ctypes.CDLL(ctypes.util.find_library("sqlite3") or "libsqlite3.so.0")  # the one _sqlite3 uses
        library.sqlite3_memory_used.restype = ctypes.c_int64
        return anon, library.sqlite3_memory_used() / 2**20
    except (OSError, AttributeError):
        return anon, None


def pct(values, q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q))


def ms(stamp: pd.Timestamp) -> int:
    return int(stamp.value // 1_000_000)


def walk_candles(n: int, seed: int) -> pd.DataFrame:
    """A random walk of 1m candles (prices on a 0.01 grid); each symbol its own seed and level."""
    rng = np.random.default_rng(seed)
    level = 20.0 * (1 + seed % 7)
    close = level * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    opens = np.concatenate([[level], close[:-1]])
    high = np.maximum(opens, close) * (1 + rng.uniform(0, 0.001, n))
    low = np.minimum(opens, close) * (1 - rng.uniform(0, 0.001, n))
    index = pd.date_range(START, periods=n, freq="1min", tz="UTC", unit="ns")
    frame = pd.DataFrame({"open": opens, "high": high, "low": low, "close": close}, index=index).round(2)
    frame["volume"] = rng.uniform(1, 50, n).round(3)
    return frame


def bot_config(name: str, symbol: str, candles: int | None = None) -> dict:
    bot = sma_bot(name=name, symbol=symbol, params={}, size=5.0, size_type="percent")
    bot.pop("candles")  # None: the runner's default history (warmup + 250), what a user gets
    if candles is not None:
        bot["candles"] = candles
    return bot


# ---------------------------------------------------------------- (a) 20 bots

def bench_twenty_bots(fake: FakeProcess, tmp: Path) -> dict:
    n = HISTORY + TICKS_A + 20
    for i, base in enumerate(SYMBOLS):
        fake.call("add_market", f"{base}/USDT", walk_candles(n, seed=i + 1))
    fake.call("__setattr__", "now_ms", ms(START) + (HISTORY + 2) * MINUTE + 30_000)
    bots = [bot_config(f"sma-{base.lower()}", f"{base}/USDT") for base in SYMBOLS]
    (tmp / "a").mkdir()
    config = paper_config(tmp / "a" / "systrade.toml", fake, bots, balances={"USDT": 100_000.0})
    ledger, runners = build_runners(load_settings(str(config)))
    timings, samples = Timings(), []
    timings.attach(runners)
    for runner in runners:
        time_ticks(runner, timings, samples)
    first_start = time.perf_counter()
    run_once(runners)  # loads markets: not a steady-state tick
    first = time.perf_counter() - first_start
    samples.clear()
    fake.call("advance", MINUTE)
    ticks = []
    for _ in range(TICKS_A):
        before, _requests = timings.snapshot()
        cpu = time.process_time()
        start = time.perf_counter()
        run_once(runners)
        wall = time.perf_counter() - start
        cpu = time.process_time() - cpu
        after, _requests = timings.snapshot()
        ticks.append((wall, after["http"] - before["http"], cpu))
        fake.call("advance", MINUTE)
    outcomes = Counter(s[1] for s in samples)
    walls = [s[2] for s in samples]
    own = [s[2] - s[3]["http"] for s in samples]
    by_outcome = {}
    for outcome in sorted(outcomes):
        chosen = [s for s in samples if s[1] == outcome]
        by_outcome[outcome] = (len(chosen), statistics.median(s[2] - s[3]["http"] for s in chosen),
                               pct([s[2] - s[3]["http"] for s in chosen], 95), statistics.median(s[4] for s in chosen))
    mean_wall = statistics.fmean(walls)
    breakdown = {k: statistics.fmean(s[3][k] for s in samples) for k in Timings.BUCKETS}
    breakdown["other (runner logic, pandas, positions)"] = mean_wall - sum(breakdown.values())
    return {
        "bots": len(runners), "ticks": TICKS_A, "bot_ticks": len(samples), "outcomes": dict(outcomes),
        "first_run_once": first, "fills": len(ledger.fills()),
        "run_once_median": statistics.median(t[0] for t in ticks), "run_once_p95": pct([t[0] for t in ticks], 95),
        "run_once_own_median": statistics.median(t[0] - t[1] for t in ticks),
        "run_once_own_p95": pct([t[0] - t[1] for t in ticks], 95),
        "run_once_http_median": statistics.median(t[1] for t in ticks),
        "bot_wall_median": statistics.median(walls), "bot_wall_p95": pct(walls, 95),
        "bot_own_median": statistics.median(own), "bot_own_p95": pct(own, 95),
        "requests_per_bot_tick": sum(s[4] for s in samples) / len(samples),
        "bot_cpu_median": statistics.median(s[5] for s in samples), "bot_cpu_p95": pct([s[5] for s in samples], 95),
        "run_once_cpu_median": statistics.median(t[2] for t in ticks),
        "run_once_cpu_p95": pct([t[2] for t in ticks], 95),
        "round_trip_median": statistics.median(s[3]["http"] / s[4] for s in samples if s[4]),
        "by_outcome": by_outcome, "mean_wall": mean_wall, "breakdown": breakdown,
    }


# ---------------------------------------------------------------- (b) memory over 10,000 ticks

def bench_memory(fake: FakeProcess, tmp: Path) -> dict:
    n = HISTORY + TICKS_B + 20
    fake.call("add_market", "MEM/USDT", walk_candles(n, seed=99))
    fake.call("__setattr__", "now_ms", ms(START) + (HISTORY + 2) * MINUTE + 30_000)
    (tmp / "b").mkdir()
    config = paper_config(tmp / "b" / "systrade.toml", fake, [bot_config("mem-sma", "MEM/USDT", HISTORY_B)],
                          balances={"USDT": 100_000.0})
    ledger, runners = build_runners(load_settings(str(config)))
    database = tmp / "b" / "paper.sqlite"
    timings = Timings()
    timings.attach(runners)
    gc.collect()
    points = [(0, rss_mb(), *memory_detail(), len(gc.get_objects()), 0.0)]
    outcomes: Counter = Counter()
    in_ticks = cpu_in_ticks = 0.0  # time inside run_once only (not the clock advance, not the RSS readings)
    start = time.perf_counter()
    for tick in range(1, TICKS_B + 1):
        tick_start, cpu_start = time.perf_counter(), time.process_time()
        results = run_once(runners)
        in_ticks += time.perf_counter() - tick_start
        cpu_in_ticks += time.process_time() - cpu_start
        outcomes.update(r.outcome for r in results)
        fake.call("advance", MINUTE)
        if tick % 1000 == 0:
            fake.call("clear_requests")  # the child's request log; not our memory, but keep it small
        if tick in RSS_AT or tick == TICKS_B:
            elapsed = time.perf_counter() - start
            gc.collect()
            points.append((tick, rss_mb(), *memory_detail(), len(gc.get_objects()), elapsed))
            sqlite = "?" if points[-1][3] is None else f"{points[-1][3]:.2f}"
            print(f"  tick {tick:6d}: RSS {points[-1][1]:7.1f} MB (anonymous {points[-1][2]:.1f} MB, SQLite heap "
                  f"{sqlite} MB), {points[-1][4]:8d} gc objects, {elapsed:6.1f} s", flush=True)
    seconds = time.perf_counter() - start
    breakdown = {k: v / TICKS_B for k, v in timings.seconds.items()}
    breakdown["other (runner logic, pandas, positions)"] = in_ticks / TICKS_B - sum(breakdown.values())
    return {"ticks": TICKS_B, "seconds": seconds, "rate": TICKS_B / seconds, "points": points,
            "in_ticks": in_ticks, "own_per_tick": (in_ticks - timings.seconds["http"]) / TICKS_B,
            "cpu_per_tick": cpu_in_ticks / TICKS_B,
            "breakdown": breakdown, "requests": timings.requests,
            "outcomes": dict(outcomes), "fills": len(ledger.fills()),
            "db_mb": sum(p.stat().st_size for p in database.parent.glob("paper.sqlite*")) / 2**20}


# ---------------------------------------------------------------- report

def libraries() -> str:
    return f"ccxt {ccxt.__version__}, pandas {pd.__version__}"



def breakdown_table(breakdown: dict, mean: float) -> list[str]:
    names = {"http": "HTTP round trips (fake included)", "ccxt": "ccxt fetch around them (headers, JSON decode)",
             "market": "MarketData: ccxt candle parsing, DataFrame building", "strategy": "strategy `signals()`",
             "ledger": "ledger: SQLAlchemy + SQLite commits (fsync)"}
    rows = ["| part | ms | share |", "|---|---:|---:|"]
    for key, seconds in breakdown.items():
        rows.append(f"| {names.get(key, key)} | {seconds * 1000:.2f} | {100 * seconds / mean:.0f} % |")
    rows.append(f"| total | {mean * 1000:.2f} | 100 % |")
    return rows


def report(a: dict, b: dict, load_before: str, load_after: str, total: float,
           code: str) -> str:
    f = 1000.0  # seconds -> ms
    lines = [
        "## Paper trading: tick latency and memory (`benchmarks/paper_ticks.py`)",
        "",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; machine: {machine(libraries())}",
        f"- Command: `python benchmarks/paper_ticks.py` (total {total:.0f} s)",
        f"- Code: {code} (when the run started)",
        f"- Load (`uptime`) before: `{load_before}`",
        f"- Load (`uptime`) after: `{load_after}`",
        "- The machine is shared with other work: absolute times are noisy, compare within a run.",
        "- FakeBinance (tests/fakes/binance.py) ran in a child process on 127.0.0.1; the bots used the real "
        "ccxt.binance client (rate limiter off), the real runner/ledger (SQLite in a temp dir, WAL, "
        "synchronous=FULL), paper mode. Candles: synthetic 1m random walks.",
        "",
        f"### (a) {a['bots']} bots, one `run_once` each",
        "",
        f"{a['bots']} `sma_cross` bots (default fast=10/slow=30, 1m, default history {HISTORY} candles, long, "
        "5 % of available cash per entry) on 20 different symbols on one exchange (one shared ccxt client), "
        "which is how a real config with 20 bots would look. Each `run_once` sees a new closed bar for every "
        f"bot; {a['ticks']} measured `run_once` calls = {a['bot_ticks']} bot ticks after one warm-up call "
        f"(which loads markets: {a['first_run_once']:.2f} s). Outcomes: {a['outcomes']}; {a['fills']} fills in the "
        "ledger (warm-up call included).",
        "",
        "\"Own\" time = wall time minus the time inside HTTP round trips (the ccxt client's "
        "`requests.Session.request`: send, wait for the fake, read the body), i.e. what the tick would cost with a "
        "zero-latency exchange. Everything else (ccxt's JSON decoding and parsing, pandas, the strategy, SQLite) "
        "stays in. CPU = this process's CPU time (`time.process_time()`) during the tick: the fake runs in another "
        "process, so this too excludes the exchange, and it is much less sensitive to other load on the machine "
        "than wall time. CPU time can exceed the wall time excluding HTTP because the round-trip bucket also holds "
        "requests/urllib3's own Python work (building the request, parsing the response headers).",
        "",
        "| measure | median | p95 |",
        "|---|---:|---:|",
        f"| `run_once` over {a['bots']} bots, wall | {a['run_once_median'] * f:.0f} ms | "
        f"{a['run_once_p95'] * f:.0f} ms |",
        f"| `run_once` over {a['bots']} bots, excl. HTTP round trips | {a['run_once_own_median'] * f:.0f} ms | "
        f"{a['run_once_own_p95'] * f:.0f} ms |",
        f"| per bot tick, wall | {a['bot_wall_median'] * f:.1f} ms | {a['bot_wall_p95'] * f:.1f} ms |",
        f"| **per bot tick, excl. HTTP round trips** | **{a['bot_own_median'] * f:.1f} ms** | "
        f"**{a['bot_own_p95'] * f:.1f} ms** |",
        f"| per bot tick, CPU time of the bot process | {a['bot_cpu_median'] * f:.1f} ms | "
        f"{a['bot_cpu_p95'] * f:.1f} ms |",
        f"| `run_once` over {a['bots']} bots, CPU time | {a['run_once_cpu_median'] * f:.0f} ms | "
        f"{a['run_once_cpu_p95'] * f:.0f} ms |",
        "",
        f"HTTP round trips per `run_once`: median {a['run_once_http_median'] * f:.0f} ms; "
        f"{a['requests_per_bot_tick']:.2f} requests per bot tick, median round trip "
        f"{a['round_trip_median'] * f:.1f} ms (a local fake in another process: mostly the fake's own Python work).",
        "",
        "| outcome | bot ticks | own time, median | own time, p95 | requests per tick (median) |",
        "|---|---:|---:|---:|---:|",
        *(f"| {k} | {n} | {own * f:.1f} ms | {own95 * f:.1f} ms | {req:.0f} |"
          for k, (n, own, own95, req) in a["by_outcome"].items()),
        "",
        "Where a bot tick's time goes (mean per bot tick, exclusive times; see `Timings` in the script):",
        "",
        *breakdown_table(a["breakdown"], a["mean_wall"]),
        "",
        f"### (b) Resident memory over {b['ticks']:,} ticks (one bot)",
        "",
        f"One bot as above on one symbol but with `candles = {HISTORY_B}` (history per tick; with 250 the fake's "
        "candle formatting slows every tick and the 10,000 ticks took ~5 minutes here), the fake's clock advanced "
        f"one 1m candle per tick, {b['ticks']:,} ticks in "
        f"{b['seconds']:.0f} s ({b['rate']:.0f} ticks/s overall; {1000 * b['in_ticks'] / b['ticks']:.1f} ms per "
        f"`run_once`, of which {1000 * b['own_per_tick']:.1f} ms outside HTTP round trips and "
        f"{1000 * b['cpu_per_tick']:.1f} ms CPU time of the bot process; {b['requests']:,} "
        "requests). Outcomes: "
        f"{b['outcomes']}; {b['fills']} fills (first tick included); ledger on disk afterwards {b['db_mb']:.1f} MB. "
        "RSS of the bot process "
        "after `gc.collect()` (psutil):",
        "",
        "| after tick | RSS | change vs tick 100 | of which anonymous (RssAnon) | SQLite heap "
        "(`sqlite3_memory_used`) | Python objects tracked by gc | elapsed |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    base = next(p[1] for p in b["points"] if p[0] == 100)
    for tick, rss, anon, sqlite, objects, elapsed in b["points"]:
        label = "before the first tick" if tick == 0 else f"{tick:,}"
        sqlite_text = "n/a" if sqlite is None else f"{sqlite:.2f} MB"
        lines.append(f"| {label} | {rss:.1f} MB | {rss - base:+.1f} MB | {anon:.1f} MB | {sqlite_text} | {objects:,} | "
                     f"{elapsed:.0f} s |")
    lines += ["", "Where a tick's time went in (b) (mean per tick):", "",
              *breakdown_table(b["breakdown"], b["in_ticks"] / b["ticks"])]
    return "\n".join(lines) + "\n"


def main() -> None:
    load_before, code = uptime(), code_version()
    total_start = time.perf_counter()
    fake = FakeProcess(ms(START) + (HISTORY + 2) * MINUTE + 30_000, book_qty=1000.0)  # before any thread
    try:
        with tempfile.TemporaryDirectory(prefix="paper-bench-") as tmpdir:
            tmp = Path(tmpdir)
            print(f"(a) {len(SYMBOLS)} bots, {TICKS_A} ticks ...", flush=True)
            a = bench_twenty_bots(fake, tmp)
            print(f"  run_once: median {a['run_once_median'] * 1000:.0f} ms, p95 {a['run_once_p95'] * 1000:.0f} ms; "
                  f"excl. HTTP median {a['run_once_own_median'] * 1000:.0f} ms, p95 "
                  f"{a['run_once_own_p95'] * 1000:.0f} ms")
            print(f"  per bot tick: wall median {a['bot_wall_median'] * 1000:.1f} ms, p95 "
                  f"{a['bot_wall_p95'] * 1000:.1f} ms; excl. HTTP median {a['bot_own_median'] * 1000:.1f} ms, p95 "
                  f"{a['bot_own_p95'] * 1000:.1f} ms; CPU median {a['bot_cpu_median'] * 1000:.1f} ms, p95 "
                  f"{a['bot_cpu_p95'] * 1000:.1f} ms; outcomes {a['outcomes']}", flush=True)
            print(f"(b) one bot, {TICKS_B} ticks ...", flush=True)
            b = bench_memory(fake, tmp)
            print(f"  {b['ticks']} ticks in {b['seconds']:.1f} s ({b['rate']:.0f}/s; CPU "
                  f"{b['cpu_per_tick'] * 1000:.1f} ms per tick); outcomes {b['outcomes']}")
    finally:
        fake.close()
    total = time.perf_counter() - total_start
    update_results("paper_ticks", report(a, b, load_before, uptime(), total, code))
    print(f"total {total:.0f} s; written to {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
