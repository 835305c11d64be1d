"""A new user's first hour, reading results: durations with explicit units, verdicts in plain words next to DSR,
PBO and walk-forward efficiency, an exit reason on every trade, and daily stock data annualised with 252 days.

The user-facing behaviour is checked through the real `systrade` command (``run_cli``), against oracles computed
here from the candles (stop levels, SMA crosses, CAGR by hand).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from systrade.durations import parse_duration
from systrade.errors import UserError

GRID = ["--grid", "fast=5,10", "--grid", "slow=20,40"]
SL, TP = 0.03, 0.05


def daily_csv(path: Path, n: int, freq: str, seed: int = 3, drift: float = 0.0003, vol: float = 0.02) -> Path:
    """Made-up daily candles (``freq`` "B": weekdays only, as stocks; "D": every day, as crypto)."""
    rng = np.random.default_rng(seed)
    close = 50 * np.exp(np.cumsum(rng.normal(drift, vol, n)))
    opens = np.concatenate([[50.0], close[:-1] * np.exp(rng.normal(0, 0.01, n - 1))])
    frame = pd.DataFrame({
        "Date": pd.date_range("2015-01-05", periods=n, freq=freq).strftime("%Y-%m-%d"),
        "Open": opens, "High": np.maximum(opens, close) * (1 + rng.uniform(0, 0.02, n)),
        "Low": np.minimum(opens, close) * (1 - rng.uniform(0, 0.02, n)), "Close": close,
        "Volume": rng.integers(100, 1000, n),
    })
    frame.to_csv(path, index=False)
    return path


def candles_of(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, parse_dates=["Date"]).set_index("Date")
    frame.index = frame.index.tz_localize("UTC")
    return frame.rename(columns=str.lower)


def one_line_error(result) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


# ---------------------------------------------------------------- 1. durations with explicit units


@pytest.mark.parametrize("text, days", [
    ("90d", 90), ("12w", 84), ("6mo", 6 * 30.4375), ("2y", 2 * 365.25), ("36h", 1.5), ("30min", 30 / 1440),
    ("6 mo", 6 * 30.4375), (" 1.5 y ", 1.5 * 365.25), ("2 weeks", 14), ("3months", 3 * 30.4375), ("48 H", 2),
])
def test_durations_take_explicit_units(text: str, days: float) -> None:
    from systrade.optimize.walkforward import parse_span

    assert parse_span(text, "--train") == parse_duration(text, "--train") == pd.Timedelta(days=days)


@pytest.mark.parametrize("text", ["6", "0d", "-3d", "d", "6q", "", "6 m s"])
def test_durations_without_a_known_unit_are_refused(text: str) -> None:
    with pytest.raises(UserError, match="--test"):
        parse_duration(text, "--test")


def test_a_bare_m_is_refused_naming_min_and_mo(run_cli, workdir: Path) -> None:
    result = run_cli("walkforward", "sma_cross", "--train", "6m", "--test", "1m", *GRID, "--workers", "1",
                     "--no-progress", "--json", "wf.json")
    line = one_line_error(result)
    assert "--train" in line and "6min" in line and "6mo" in line, line
    assert not (workdir / "wf.json").exists()


def test_walkforward_windows_in_months(run_cli, workdir: Path) -> None:
    result = run_cli("walkforward", "sma_cross", "--train", "6mo", "--test", "3mo", *GRID, "--workers", "1",
                     "--no-progress", "--json", "wf.json")
    assert result.returncode == 0, result.stderr
    doc = json.loads((workdir / "wf.json").read_text())
    assert doc["train"] == "6mo" and doc["test"] == "3mo"
    index = pd.DatetimeIndex(pd.read_parquet(Path(__file__).parents[1] / "src/systrade/bundled/sample/"
                                             "SAMPLE_USDT-1h.parquet").index)
    month = pd.Timedelta(days=365.25 / 12)
    for k, window in enumerate(doc["windows"]):  # test k starts at the first bar at or after start + 6 + 3k months
        boundary = index[0] + 6 * month + 3 * k * month
        assert pd.Timestamp(window["test_start"]) == index[index.searchsorted(boundary)]
