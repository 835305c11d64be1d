"""Shared set-up for paper-trading tests: flat candles, a fake exchange and a config file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from conftest import STRATEGIES


def flat_candles(n: int, start: pd.Timestamp, freq: str, seed: int = 1, period: float = 4.0) -> pd.DataFrame:
    """Candles whose open = high = low = close: a fill at any moment of a bar is at its open.

    The price wanders on a sine so SMA crosses come every few bars.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    price = np.round(100 + 5 * np.sin(t / period) + rng.normal(0, 0.3, n), 2)
    index = pd.date_range(start, periods=n, freq=freq, tz="UTC", unit="ns")
    return pd.DataFrame({"open": price, "high": price, "low": price, "close": price, "volume": 10.0}, index=index)


def toml_value(value) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f'"{k}" = {toml_value(v)}' for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))


def paper_config(path: Path, fake, bots: list[dict], balances: dict | None = None, timeout_ms: int = 2000,
                 retries: int = 4, extra: str = "") -> Path:
    """A systrade.toml for paper trading against ``fake`` with quick retries."""
    exchange = {**fake.ccxt_config(), "enableRateLimit": False, "timeout": timeout_ms}
    lines = [
        f"[strategies]\ndir = {json.dumps(str(STRATEGIES))}",
        f"[data]\ndir = {json.dumps(str(path.parent / 'data'))}",
        f"[network]\nretries = {retries}\nbackoff_seconds = 0.01\nrate_limit_backoff_seconds = 0.02\n"
        "max_backoff_seconds = 0.1",
        f"[exchanges]\nbinance = {toml_value(exchange)}",
        f"[paper]\ndatabase = {json.dumps('sqlite:///' + str(path.parent / 'paper.sqlite'))}\n"
        f"balances = {toml_value(balances or {'USDT': 10000.0})}\ntick_delay_seconds = 0\n{extra}",
    ]
    for bot in bots:
        lines.append("[[paper.bots]]\n" + "\n".join(f"{k} = {toml_value(v)}" for k, v in bot.items()))
    path.write_text("\n".join(lines) + "\n")
    return path


def sma_bot(**overrides) -> dict:
    bot = {"name": "btc-sma", "strategy": "sma_cross", "params": {"fast": 3, "slow": 8}, "exchange": "binance",
           "symbol": "BTC/USDT", "timeframe": "1m", "size": "all", "direction": "long", "candles": 60}
    bot.update(overrides)
    return bot


def fake_clock(fake):
    """The fake exchange's clock as a runner's ``clock``: ticks, fills and UTC days follow the test, not the wall."""
    from datetime import UTC, datetime

    return lambda: datetime.fromtimestamp(fake.now_ms / 1000, UTC)


def stepped_candles(prices: list[float], start: pd.Timestamp, freq: str = "1min") -> pd.DataFrame:
    """Candles at hand-chosen prices (open = high = low = close), so a fill at any moment of a bar is at that price."""
    index = pd.date_range(start, periods=len(prices), freq=freq, tz="UTC", unit="ns")
    price = np.asarray(prices, dtype=float)
    return pd.DataFrame({"open": price, "high": price, "low": price, "close": price, "volume": 10.0}, index=index)


ALWAYS_LONG = '''import pandas as pd

from systrade import Signals, Strategy


class AlwaysLong(Strategy):
    """Long on every candle: the position it should hold is never in doubt."""

    def signals(self, data):
        return Signals(entries=pd.Series(True, index=data.index), exits=pd.Series(False, index=data.index))
'''


def always_long(folder: Path) -> str:
    """Write the always-long strategy into ``folder``; its path, for a bot's ``strategy``."""
    path = folder / "always_long.py"
    path.write_text(ALWAYS_LONG)
    return str(path)
