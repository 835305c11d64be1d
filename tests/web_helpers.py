"""Shared set-up for the dashboard's tests: a ledger written by real `systrade paper run --once` ticks against
the fake Binance, the same candles in the candle store, and `systrade web` running as a real subprocess."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pandas as pd
from conftest import systrade_exe
from fakes.binance import FakeBinance
from paper_helpers import flat_candles, paper_config, sma_bot

from systrade.data.store import SeriesKey, write_series

TOKEN = "web-token-for-tests-0123456789abcdef"

ALTERNATE = '''import pandas as pd

from systrade import Signals, Strategy


class Alternate(Strategy):
    """Long after an even minute's bar, flat after an odd one's: every new bar trades, so each tick fills."""

    def signals(self, data):
        even = pd.Series(data.index.minute % 2 == 0, index=data.index)
        return Signals(entries=even, exits=~even)
'''

ALWAYS_LONG = '''import pandas as pd

from systrade import Signals, Strategy


class AlwaysLong(Strategy):
    """Long on every candle."""

    def signals(self, data):
        return Signals(entries=pd.Series(True, index=data.index), exits=pd.Series(False, index=data.index))
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PaperSite:
    """A ledger made by real paper ticks, the config that names it and the fake exchange they traded on."""

    folder: Path
    config: Path
    fake: FakeBinance
    candles: pd.DataFrame
    servers: list[subprocess.Popen] = field(default_factory=list)

    @property
    def ledger(self) -> Path:
        return self.folder / "paper.sqlite"

    def env(self, token: str | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("SYSTRADE_CONFIG", "SYSTRADE_WEB_TOKEN")}
        env.update({"SYSTRADE_CONFIG": str(self.config), "NO_PROXY": "127.0.0.1", "COLUMNS": "250"})
        if token:
            env["SYSTRADE_WEB_TOKEN"] = token
        return env

    def cli(self, *args: str, token: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([systrade_exe(), *args], env=self.env(token), cwd=self.folder, capture_output=True,
                              text=True, timeout=180)

    def json_of(self, *args: str) -> object:
        done = self.cli(*args, "--json", "-")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def tick(self) -> None:
        """One more closed minute on the fake exchange, and one `paper run --once` over it."""
        self.fake.advance(60_000)
        done = self.cli("paper", "run", "--once")
        assert done.returncode == 0, done.stdout + done.stderr
        self.store_candles()

    def store_candles(self) -> None:
        """The candles closed by the fake's clock into the candle store, as `systrade data update` would."""
        closed = self.candles[self.candles.index <= pd.Timestamp(self.fake.now_ms - 60_000, unit="ms", tz="UTC")]
        write_series(closed, SeriesKey("binance", "BTC/USDT", "1m"), self.folder / "data")

    def serve(self, token: str | None = TOKEN) -> str:
        """Start `systrade web` on a free loopback port; its base URL once it answers."""
        port = free_port()
        process = subprocess.Popen([systrade_exe(), "web", "--port", str(port)], env=self.env(token), cwd=self.folder,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.servers.append(process)
        url = f"http://127.0.0.1:{port}"
        for _ in range(600):  # readiness, not timing: it answers once uvicorn listens
            if process.poll() is not None:
                raise AssertionError(f"systrade web exited {process.returncode}: {process.stderr.read()}")
            try:
                if httpx.get(url + "/api/status", timeout=5).status_code == 200:
                    return url
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError("systrade web did not answer")

    def close(self) -> None:
        for process in self.servers:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.fake.stop()


def paper_site(folder: Path, ticks: int = 3, bots: list[dict] | None = None, candles: pd.DataFrame | None = None,
               history: int = 50, extra_config: str = "") -> PaperSite:
    """Two bots on BTC/USDT ticked ``ticks`` times by `systrade paper run --once`: ``btc-flip`` trades every bar,
    ``btc-long`` buys once and holds (or ``bots``); the fake's closed candles are also in the candle store."""
    if candles is None:
        candles = flat_candles(80, pd.Timestamp("2024-05-01", tz="UTC"), "1min", period=6.0)
    fake = FakeBinance(clock_ms=int(candles.index[history].value // 1_000_000) + 30_000, spread_bps=0,
                       book_qty=1e6).start()
    fake.add_market("BTC/USDT", candles, tick_size=0.01, step_size=0.00001, min_qty=0.00001)
    fake.set_balances({"USDT": 10_000.0, "BTC": 0.0})
    strategies = folder / "strategies"
    strategies.mkdir(parents=True, exist_ok=True)
    (strategies / "alternate.py").write_text(ALTERNATE)
    (strategies / "always_long.py").write_text(ALWAYS_LONG)
    bots = bots or [sma_bot(name="btc-flip", strategy=str(strategies / "alternate.py"), params={}, size=1.0,
                            size_type="amount", capital_fraction=0.5, candles=30),
                    sma_bot(name="btc-long", strategy=str(strategies / "always_long.py"), params={}, size=0.5,
                            size_type="amount", capital_fraction=0.5, candles=30)]
    config = paper_config(folder / "systrade.toml", fake, bots)
    with open(config, "a") as fh:
        fh.write(extra_config)
    site = PaperSite(folder, config, fake, candles)
    for _ in range(ticks):
        site.tick()
    return site
