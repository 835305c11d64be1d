"""The bundled synthetic sample: ``SAMPLE/USDT`` hourly candles from a seeded generator.

Made up, never real: fat tails (Student-t shocks), volatility clustering (GARCH(1,1)) and
regimes that switch between trending up, trending down and ranging (mean-reverting). It exists
so every command works out of the box, and every output that uses it says it is synthetic.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from systrade.bundled import SAMPLE_FILE
from systrade.data.readers import read_ohlcv
from systrade.data.store import SeriesKey, read_series, write_series

SAMPLE_KEY = SeriesKey("sample", "SAMPLE/USDT", "1h")
SAMPLE_SEED = 7
SAMPLE_BARS = 2 * 365 * 24
SAMPLE_START = "2023-01-01"
SYNTHETIC_NOTE = "synthetic sample data (made up by systrade's generator, not a real market)"


def generate_sample(bars: int = SAMPLE_BARS, seed: int = SAMPLE_SEED, start: str = SAMPLE_START,
                    freq: str = "1h", start_price: float = 100.0) -> pd.DataFrame:
    """Generate synthetic OHLCV candles; the same seed always gives the same candles."""
    rng = np.random.default_rng(seed)
    # Regimes: 0 ranging, 1 trending up, 2 trending down; sticky Markov chain (mean stay ~ 2 weeks).
    stay = 1 - 1 / (14 * 24)
    drift = np.array([0.0, 0.0004, -0.0004])
    regimes = np.empty(bars, dtype=np.int64)
    regime = 0
    for i in range(bars):
        if rng.random() > stay:
            regime = int(rng.choice([r for r in range(3) if r != regime]))
        regimes[i] = regime
    # GARCH(1,1) variance with Student-t (df=4) shocks scaled to unit variance.
    omega, alpha, beta = 2e-7, 0.08, 0.90
    shocks = rng.standard_t(4, size=bars) / np.sqrt(2.0)
    log_price = np.empty(bars)
    variance = omega / (1 - alpha - beta)
    level = np.log(start_price)
    anchor = level
    returns = np.empty(bars)
    for i in range(bars):
        sigma = np.sqrt(variance)
        reversion = -0.02 * (level - anchor) if regimes[i] == 0 else 0.0
        r = drift[regimes[i]] + reversion + sigma * shocks[i]
        returns[i] = r
        level += r
        if regimes[i] != 0:
            anchor = level  # ranging regimes revert to where the last trend left the price
        log_price[i] = level
        variance = omega + alpha * r * r + beta * variance
    close = np.exp(log_price)
    opens = np.concatenate([[start_price], close[:-1]]) * np.exp(rng.normal(0, 1e-4, bars))
    vol = np.sqrt(np.maximum(returns**2, 1e-8))
    wick_up = np.abs(rng.standard_t(4, size=bars)) * vol * 0.5
    wick_down = np.abs(rng.standard_t(4, size=bars)) * vol * 0.5
    high = np.maximum(opens, close) * np.exp(wick_up)
    low = np.minimum(opens, close) * np.exp(-wick_down)
    volume = 1000 * np.exp(rng.normal(0, 0.3, bars)) * (1 + 50 * np.abs(returns))
    index = pd.date_range(start, periods=bars, freq=freq, tz="UTC", name="time")
    frame = pd.DataFrame({"open": opens, "high": high, "low": low, "close": close, "volume": volume},
                         index=index)
    frame.attrs = {"exchange": SAMPLE_KEY.exchange, "symbol": SAMPLE_KEY.symbol,
                   "timeframe": SAMPLE_KEY.timeframe, "synthetic": True}
    return frame


def write_sample(data_dir: str | Path, seed: int = SAMPLE_SEED) -> Path:
    """Generate the sample and write it to ``<data_dir>/sample/SAMPLE_USDT-1h.parquet``."""
    return write_series(generate_sample(seed=seed), SAMPLE_KEY, data_dir, synthetic=True)


def load_sample(data_dir: str | Path) -> pd.DataFrame:
    """The sample from the store (``systrade data sample`` wrote it there), else the one shipped inside the package,
    else freshly generated (same seed). Nothing is written: reading the sample never creates files."""
    if SAMPLE_KEY.path(data_dir).is_file():
        return read_series(SAMPLE_KEY, data_dir)
    if SAMPLE_FILE.is_file():
        return read_ohlcv(SAMPLE_FILE, max_file_mb=None)
    return generate_sample()
