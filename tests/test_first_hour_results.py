"""A new user's first hour, reading results: durations with explicit units, verdicts in plain words next to DSR,
PBO and walk-forward efficiency, an exit reason on every trade, and daily stock data annualised with 252 days.

The user-facing behaviour is checked through the real `systrade` command (``run_cli``), against oracles computed
here from the candles (stop levels, SMA crosses, CAGR by hand).
"""

from __future__ import annotations

import json
import math
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


# ---------------------------------------------------------------- 2. verdicts in plain words


def dsr_band(value: float | None) -> str:
    if value is None:
        return "undefined"
    return "likely_real" if value >= 0.95 else "weak_evidence" if value >= 0.5 else "luck"


def pbo_band(value: float | None) -> str:
    if value is None:
        return "undefined"
    return "high" if value >= 0.5 else "moderate" if value >= 0.2 else "low"


def test_verdict_texts() -> None:
    from systrade.optimize.verdicts import dsr_verdict, efficiency_verdict, pbo_verdict

    luck = dsr_verdict(0.02, 546)
    assert luck.label == "luck"
    assert luck.text == ("deflated Sharpe ratio 0.02: the best Sharpe is what luck alone would give with 546 trials; "
                         "do not trust it")
    assert dsr_verdict(0.7, 546).label == "weak_evidence" and dsr_verdict(0.97, 546).label == "likely_real"
    assert dsr_verdict(math.nan, 546).label == "undefined"
    pbo = pbo_verdict(0.27)
    assert pbo.label == "moderate"
    assert pbo.text.startswith("probability of backtest overfitting 0.27: the in-sample winner lands at or below the "
                               "median out of sample in 27% of splits (0.5 would be chance)")
    assert pbo_verdict(0.6).label == "high" and pbo_verdict(0.05).label == "low"
    lost = efficiency_verdict(-0.23, oos_cagr=-1.2, is_cagr=5.2)
    assert lost.label == "lost" and "-0.23" in lost.text and "lost money" in lost.text
    assert efficiency_verdict(0.3, 1.5, 5.0).label == "weak" and efficiency_verdict(0.8, 4.0, 5.0).label == "robust"
    assert efficiency_verdict(math.nan, 1.0, 0.0).label == "undefined"
    assert efficiency_verdict(0.5, -1.0, -2.0).label == "in_sample_lost"
    for verdict in (luck, pbo, lost):
        assert verdict.to_dict()["thresholds"] and verdict.to_dict()["text"] == verdict.text


def test_optimize_says_what_dsr_and_pbo_mean_in_terminal_json_and_report(run_cli, workdir: Path) -> None:
    result = run_cli("optimize", "sma_cross", "--grid", "fast=5:20:5", "--grid", "slow=20:60:20", "--workers", "1",
                     "--no-progress", "--json", "sweep.json", "--report", "sweep.html")
    assert result.returncode == 0, result.stderr
    doc = json.loads((workdir / "sweep.json").read_text())
    verdicts = doc["verdicts"]
    dsr, pbo = verdicts["deflated_sharpe"], verdicts["pbo"]
    assert dsr["value"] == doc["deflated_sharpe"] and pbo["value"] == doc["pbo"]
    assert dsr["verdict"] == dsr_band(doc["deflated_sharpe"])
    assert dsr["thresholds"] == {"likely_real": 0.95, "weak_evidence": 0.5}
    assert pbo["verdict"] == pbo_band(doc["pbo"]) and pbo["thresholds"] == {"moderate": 0.2, "chance": 0.5}
    assert f"with {doc['combos']} trials" in dsr["text"]
    assert f"in {round(doc['pbo'] * 100)}% of splits (0.5 would be chance)" in pbo["text"]
    terminal = " ".join(result.stdout.split())
    report = (workdir / "sweep.html").read_text()
    for verdict in (dsr, pbo):
        assert verdict["text"] in terminal
        assert verdict["text"] in report.replace("&#x27;", "'")


def test_walkforward_explains_dsr_pbo_and_efficiency(run_cli, workdir: Path) -> None:
    result = run_cli("walkforward", "sma_cross", "--train", "120d", "--test", "60d", *GRID, "--workers", "1",
                     "--no-progress", "--json", "wf.json", "--report", "wf.html")
    assert result.returncode == 0, result.stderr
    doc = json.loads((workdir / "wf.json").read_text())
    verdicts = doc["verdicts"]
    assert set(verdicts) == {"deflated_sharpe", "pbo", "efficiency"}
    assert verdicts["deflated_sharpe"]["verdict"] == dsr_band(doc["deflated_sharpe"])
    assert verdicts["pbo"]["verdict"] == pbo_band(doc["pbo"])
    efficiency = verdicts["efficiency"]
    oos, is_mean = doc["out_of_sample"]["cagr_pct"], doc["in_sample_mean"]["cagr_pct"]
    assert doc["efficiency"] == pytest.approx(oos / is_mean)
    expected = ("in_sample_lost" if is_mean < 0 else "lost" if oos < 0 else "weak" if oos / is_mean < 0.5
                else "robust")
    assert efficiency["verdict"] == expected and efficiency["thresholds"] == {"robust": 0.5}
    assert efficiency["value"] == doc["efficiency"] and efficiency["text"].startswith("walk-forward efficiency ")
    for window in doc["windows"]:
        assert window["verdicts"]["deflated_sharpe"]["verdict"] == dsr_band(window["deflated_sharpe"])
        assert window["verdicts"]["pbo"]["verdict"] == pbo_band(window["pbo"])
    terminal = " ".join(result.stdout.split())
    report = (workdir / "wf.html").read_text().replace("&#x27;", "'")
    for verdict in verdicts.values():
        assert verdict["text"] in terminal and verdict["text"] in report
