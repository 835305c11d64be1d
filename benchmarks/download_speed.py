"""Candle download speed through ``Downloader`` against the local fake, and the store's load time.

(a) N 1m candles (default 200,000) of one symbol from FakeBinance (tests/fakes/binance.py) through
``systrade.data.download.Downloader`` with a client from ``create_exchange``, which is the path of
``systrade data download``: 1,000-candle pages, a checkpoint write every 5 pages, no faults. Run with
ccxt's rate limiter off (``enableRateLimit: False``, twice) and on (ccxt.binance's own ``rateLimit``
and endpoint costs, what a user gets by default).
(b) A year of 1m candles (525,600 rows) written with ``write_series`` and read back with
``read_series``: median of 5 reads, file size.

FakeBinance runs in a child process (forked before any thread starts) on 127.0.0.1, so its CPU
time is not this process's. Run from the repository root:

    python benchmarks/download_speed.py        # BENCH_CANDLES=50000 for a quicker run
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench_report import RESULTS, code_version, machine, update_results, uptime

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import ccxt  # noqa: E402  (imported before the fork, so the child does not import it again)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow  # noqa: E402
from fakes.binance import FakeBinance  # noqa: E402

import systrade.data.download as download_module  # noqa: E402
from systrade.config import Settings  # noqa: E402
from systrade.data.download import Downloader  # noqa: E402
from systrade.data.store import SeriesKey, read_series, write_series  # noqa: E402
from systrade.exchange import RetryPolicy, create_exchange  # noqa: E402

MINUTE = 60_000
START = pd.Timestamp("2023-01-01", tz="UTC")
CANDLES = int(os.environ.get("BENCH_CANDLES", "200000"))
YEAR_ROWS = 525_600
LOAD_RUNS = 5


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

    def cpu_seconds(self) -> float | None:
        """User + system CPU time the fake's process has used so far (None without psutil)."""
        try:
            import psutil
        except ImportError:
            return None
        times = psutil.Process(self.process.pid).cpu_times()
        return times.user + times.system

    def close(self) -> None:
        if self.process.is_alive():
            self.call("stop")
            self.process.join(timeout=10)


# ---------------------------------------------------------------- measuring

class Timings:
    """Exclusive wall time per bucket (time in a nested bucket is not counted in the one around it)."""

    NAMES = {
        "throttle": "ccxt rate limiter (`throttle`: waiting)",
        "http": "HTTP round trips (`requests.Session.request`; the fake's work included)",
        "ccxt_fetch": "ccxt `fetch` around them (headers, JSON decoding)",
        "ccxt_parse": "ccxt `fetch_ohlcv` around that (parsing rows, building the request)",
        "frames": "`candles_from_rows` + `merge_candles` (pandas)",
        "write": "`write_series` checkpoints and final write (parquet, atomic rename)",
    }

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(self.NAMES, 0.0)
        self.calls = dict.fromkeys(self.NAMES, 0)
        self.durations: dict[str, list[float]] = {name: [] for name in self.NAMES}
        self._stack: list[list] = []

    def wrap(self, obj, name: str, bucket: str):
        inner = getattr(obj, name)

        def timed(*args, **kwargs):
            now = time.perf_counter()
            if self._stack:
                self.seconds[self._stack[-1][0]] += now - self._stack[-1][1]
            self._stack.append([bucket, now])
            try:
                return inner(*args, **kwargs)
            finally:
                now = time.perf_counter()
                spent = now - self._stack.pop()[1]
                self.seconds[bucket] += spent
                self.calls[bucket] += 1
                self.durations[bucket].append(spent)
                if self._stack:
                    self._stack[-1][1] = now

        setattr(obj, name, timed)
        return inner


def minute_candles(n: int, seed: int = 3) -> pd.DataFrame:
    """A random walk of 1m candles on a 0.01 price grid (like tests/test_download.py's)."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    opens = np.concatenate([[100.0], close[:-1]])
    index = pd.date_range(START, periods=n, freq="1min", tz="UTC", unit="ns")
    return pd.DataFrame({"open": opens.round(2), "high": (np.maximum(opens, close) * 1.001).round(2),
                         "low": (np.minimum(opens, close) * 0.999).round(2), "close": close.round(2),
                         "volume": rng.uniform(1, 10, n).round(5)}, index=index)


def ms(stamp: pd.Timestamp) -> int:
    return int(stamp.value // 1_000_000)


# ---------------------------------------------------------------- (a) download

def download_once(fake: FakeProcess, config: dict, rate_limit: bool, data_dir: Path) -> dict:
    settings = Settings(exchanges={"binance": {**config, "enableRateLimit": rate_limit, "timeout": 10_000}})
    client = create_exchange("binance", settings, with_secrets=False)  # exactly what `systrade data download` does
    policy = RetryPolicy(**settings.network.model_dump())
    retries = []
    timings = Timings()
    timings.wrap(client, "throttle", "throttle")
    timings.wrap(client.session, "request", "http")
    timings.wrap(client, "fetch", "ccxt_fetch")
    timings.wrap(client, "fetch_ohlcv", "ccxt_parse")
    originals = {name: timings.wrap(download_module, name, bucket) for name, bucket in
                 (("write_series", "write"), ("candles_from_rows", "frames"), ("merge_candles", "frames"))}
    fake.call("clear_requests")
    try:
        downloader = Downloader(client, "binance", data_dir, policy, lambda *args: retries.append(args))
        fake_cpu = fake.cpu_seconds()
        cpu = time.process_time()
        start = time.perf_counter()
        result = downloader.download("BTC/USDT", "1m", ms(START))
        seconds = time.perf_counter() - start
        cpu = time.process_time() - cpu
        fake_cpu = fake.cpu_seconds() - fake_cpu if fake_cpu is not None else None
    finally:
        for name, original in originals.items():
            setattr(download_module, name, original)
    requests = fake.call("requests")
    klines = [r for r in requests if r.path == "/api/v3/klines"]
    if result.added != CANDLES or result.rows != CANDLES or retries or any(r.fault for r in requests):
        raise RuntimeError(f"unexpected download: added {result.added}, rows {result.rows}, retries {len(retries)}")
    other = seconds - sum(timings.seconds.values())
    return {"rate_limit": rate_limit, "rate_limit_ms": client.rateLimit, "seconds": seconds, "pages": len(klines),
            "requests": len(requests), "paths": sorted({r.path for r in requests}), "candles": result.added,
            "rate": result.added / seconds, "timings": dict(timings.seconds), "calls": dict(timings.calls),
            "writes": timings.durations["write"], "cpu": cpu, "fake_cpu": fake_cpu,
            "other": other, "file_mb": result.path.stat().st_size / 2**20,
            "klines_cost": client.describe()["api"]["public"]["get"]["klines"]["cost"]}


def bench_download(tmp: Path) -> list[dict]:
    source = minute_candles(CANDLES + 1)  # the last one is still forming at the fake's clock
    fake = FakeProcess(ms(source.index[-1]) + 30_000)
    try:
        fake.call("add_market", "BTC/USDT", source)
        config = fake.call("ccxt_config")
        runs = []
        for i, rate_limit in enumerate((False, False, True)):
            run = download_once(fake, config, rate_limit, tmp / f"data{i}")
            runs.append(run)
            print(f"  rate limiter {'ON ' if rate_limit else 'OFF'}: {run['candles']:,} candles, {run['pages']} pages, "
                  f"{run['requests']} requests, {run['seconds']:.2f} s, {run['rate']:,.0f} candles/s; CPU "
                  f"{run['cpu']:.2f} s here + {run['fake_cpu'] or 0:.2f} s in the fake", flush=True)
    finally:
        fake.close()
    return runs


# ---------------------------------------------------------------- (b) load a year from the store

def bench_load(tmp: Path) -> dict:
    frame = minute_candles(YEAR_ROWS, seed=5)
    key = SeriesKey("binance", "BTC/USDT", "1m")
    start = time.perf_counter()
    path = write_series(frame, key, tmp / "store")
    write = time.perf_counter() - start
    reads, raw_reads = [], []
    for _ in range(LOAD_RUNS):
        start = time.perf_counter()
        loaded = read_series(key, tmp / "store")
        reads.append(time.perf_counter() - start)
        start = time.perf_counter()
        pd.read_parquet(path)
        raw_reads.append(time.perf_counter() - start)
    if len(loaded) != YEAR_ROWS or not loaded.index.is_monotonic_increasing:
        raise RuntimeError("the store did not give the year back")
    return {"rows": len(loaded), "mb": path.stat().st_size / 2**20, "write": write, "reads": reads,
            "median": statistics.median(reads), "raw_median": statistics.median(raw_reads),
            "memory_mb": loaded.memory_usage(deep=True).sum() / 2**20}


# ---------------------------------------------------------------- report

def libraries() -> str:
    return f"ccxt {ccxt.__version__}, pandas {pd.__version__}, pyarrow {pyarrow.__version__}"



def report(runs: list[dict], load: dict, load_before: str, load_after: str, total: float,
           code: str) -> str:
    off = [r for r in runs if not r["rate_limit"]]
    on = next(r for r in runs if r["rate_limit"])
    floor = on["pages"] * on["klines_cost"] * on["rate_limit_ms"] / 1000
    median_off = statistics.median(r["seconds"] for r in off)
    lines = [
        "## Data: download speed and store load time (`benchmarks/download_speed.py`)",
        "",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; machine: {machine(libraries())}",
        f"- Command: `python benchmarks/download_speed.py` (total {total:.0f} s)",
        f"- Code: {code} (when the run started)",
        f"- Load (`uptime`) before: `{load_before}`",
        f"- Load (`uptime`) after: `{load_after}`",
        "- The machine is shared with other work: absolute times are noisy.",
        "",
        f"### (a) Downloading {CANDLES:,} 1m candles of one symbol from the local fake",
        "",
        "`Downloader.download` (the code behind `systrade data download`) with a client made by `create_exchange`, "
        "against FakeBinance in a child process on 127.0.0.1, no faults, empty store. 1,000 candles per page, a "
        "checkpoint write every 5 pages. Seconds include `load_markets`, the server-time call and every write. "
        "CPU seconds (`process_time`, psutil for the fake) are less sensitive to other load than wall time: "
        "candles/s with both processes on an otherwise idle core would be about candles / (CPU systrade + CPU fake).",
        "",
        "| ccxt rate limiter | candles | pages | requests | seconds | candles/s | CPU s, systrade process | "
        "CPU s, fake process |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        label = (f"ON (rateLimit {run['rate_limit_ms']} ms, klines cost {run['klines_cost']})" if run["rate_limit"]
                 else "OFF (`enableRateLimit: False`)")
        fake_cpu = "n/a" if run["fake_cpu"] is None else f"{run['fake_cpu']:.2f}"
        lines.append(f"| {label} | {run['candles']:,} | {run['pages']} | {run['requests']} | {run['seconds']:.2f} | "
                     f"{run['rate']:,.0f} | {run['cpu']:.2f} | {fake_cpu} |")
    lines += [
        "",
        f"Requests: {', '.join(off[0]['paths'])} (pages = klines requests). Stored file: {off[0]['file_mb']:.1f} MB.",
        "",
        f"With the limiter on, ccxt spaces the starts of klines calls by cost x rateLimit = {on['klines_cost']} x "
        f"{on['rate_limit_ms']} ms = {on['klines_cost'] * on['rate_limit_ms']:.0f} ms (at most 50 pages/s, i.e. "
        "Binance's 6,000 request weight/min at weight 2 per 1,000-candle klines call): a floor of "
        f"{floor:.1f} s for {on['pages']} pages. It waited {on['timings']['throttle']:.2f} s in total "
        f"({on['calls']['throttle']} calls); the run took {on['seconds']:.1f} s against a median of "
        f"{median_off:.1f} s unthrottled. "
        + ("Against this fake a page takes longer than the limiter's spacing, so the limiter hardly ever waits and "
           "the two runs differ only by noise; against the real Binance the network round trip adds to each page."
           if on["timings"]["throttle"] < 0.1 * on["seconds"] else
           "The limiter's spacing is the bottleneck here."),
        "",
        "Where the time goes (first unthrottled run, exclusive times):",
        "",
        "| part | calls | seconds | share |",
        "|---|---:|---:|---:|",
    ]
    first = off[0]
    early_write = statistics.median(first["writes"][1:6] or first["writes"])  # the first includes warm-up
    late_write = statistics.median(first["writes"][-6:-1] or first["writes"])  # the final write excluded
    for key, name in Timings.NAMES.items():
        lines.append(f"| {name} | {first['calls'][key]} | {first['timings'][key]:.2f} | "
                     f"{100 * first['timings'][key] / first['seconds']:.0f} % |")
    lines += [
        f"| other (Downloader loop, load_markets, checks) | | {first['other']:.2f} | "
        f"{100 * first['other'] / first['seconds']:.0f} % |",
        f"| total | | {first['seconds']:.2f} | 100 % |",
        "",
        f"Each checkpoint rewrites the whole series so far (`merge_candles` + `write_series` every "
        f"{download_module.CHECKPOINT_PAGES} pages): checkpoints 2-6 took ~{early_write * 1000:.0f} ms each, the "
        f"last five ~{late_write * 1000:.0f} ms each"
        + (", so the total write time grows with the square of the candle count." if late_write > 2 * early_write
           else "."),
        "",
        f"### (b) Loading a year of 1m candles ({load['rows']:,} rows) from the store",
        "",
        f"Written once with `write_series` ({load['write']:.2f} s); file size **{load['mb']:.1f} MB** "
        "(parquet via pyarrow, default compression; random-walk prices on a 0.01 grid, volume with 5 decimals). "
        f"`read_series` x {LOAD_RUNS} (warm page cache): "
        f"**median {load['median'] * 1000:.0f} ms** (runs: {', '.join(f'{t * 1000:.0f}' for t in load['reads'])} ms); "
        f"plain `pd.read_parquet` of the same file: median {load['raw_median'] * 1000:.0f} ms. "
        f"The loaded frame takes {load['memory_mb']:.0f} MB in memory.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    load_before, code = uptime(), code_version()
    total_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="download-bench-") as tmpdir:
        tmp = Path(tmpdir)
        print(f"(a) downloading {CANDLES:,} 1m candles from the local fake ...", flush=True)
        runs = bench_download(tmp)
        print(f"(b) loading {YEAR_ROWS:,} rows from the store ...", flush=True)
        with contextlib.suppress(FileNotFoundError):
            (tmp / "store").mkdir()
        load = bench_load(tmp)
        print(f"  file {load['mb']:.1f} MB; read_series median of {LOAD_RUNS}: {load['median'] * 1000:.0f} ms "
              f"(pd.read_parquet {load['raw_median'] * 1000:.0f} ms); write_series {load['write']:.2f} s")
    total = time.perf_counter() - total_start
    update_results("download_speed", report(runs, load, load_before, uptime(), total, code))
    print(f"total {total:.0f} s; written to {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
