"""A new user's first hour, reading results: durations with explicit units, verdicts in plain words next to DSR,
PBO and walk-forward efficiency, an exit reason on every trade, and daily stock data annualised with 252 days.

The user-facing behaviour is checked through the real `systrade` command (``run_cli``), against oracles computed
here from the candles (stop levels, SMA crosses, CAGR by hand).
"""

from __future__ import annotations

import csv
import json
import math
import re
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


# ---------------------------------------------------------------- 3. an exit reason on every trade


def check_exit_reasons(trades: list[dict], candles: pd.DataFrame, fast: int, slow: int) -> set[str]:
    """Each trade's exit_reason against the candles; returns the reasons seen."""
    fast_ma, slow_ma = candles["close"].rolling(fast).mean(), candles["close"].rolling(slow).mean()
    up = (fast_ma.shift(1) < slow_ma.shift(1)) & (fast_ma > slow_ma)
    down = (fast_ma.shift(1) > slow_ma.shift(1)) & (fast_ma < slow_ma)
    seen = set()
    for k, trade in enumerate(trades):
        reason = trade["exit_reason"]
        seen.add(reason)
        if trade["status"] == "open":
            assert reason == "open" and trade["exit_time"] is None and k == len(trades) - 1
            continue
        exit_time = pd.Timestamp(trade["exit_time"])
        bar = candles.loc[exit_time]
        previous = candles.index[candles.index.get_loc(exit_time) - 1]
        long = trade["direction"] == "long"
        entry = trade["entry_price"]
        if reason in ("stop_loss", "take_profit"):
            sign = 1 if (reason == "stop_loss") == long else -1  # the level is below the entry for a long's stop
            level = entry * (1 - sign * (SL if reason == "stop_loss" else TP))
            crossed = bar["low"] <= level if sign == 1 else bar["high"] >= level
            gapped = bar["open"] <= level if sign == 1 else bar["open"] >= level
            assert crossed, (k, trade)
            assert trade["exit_price"] == pytest.approx(bar["open"] if gapped else level, rel=1e-9), (k, trade)
        else:
            assert reason in ("signal", "reverse"), (k, trade)
            assert trade["exit_price"] == pytest.approx(bar["open"], rel=1e-9)  # a signal fills at the next open
            assert (down if long else up)[previous], (k, trade)  # the cross that asked for it, on the bar before
            following = trades[k + 1] if k + 1 < len(trades) else None
            reversed_here = following is not None and following["entry_time"] == trade["exit_time"] and \
                following["direction"] != trade["direction"]
            assert reversed_here == (reason == "reverse"), (k, trade)
    return seen


@pytest.mark.parametrize("direction, expected", [
    ("long", {"signal", "stop_loss", "take_profit"}), ("both", {"reverse", "stop_loss", "take_profit"})])
def test_backtest_trades_carry_their_exit_reason(run_cli, workdir: Path, direction: str, expected: set) -> None:
    data = daily_csv(workdir / "prices.csv", 700, "D")
    candles = candles_of(data)
    result = run_cli("backtest", "sma_cross", "--data", "prices.csv", "-p", "fast=3", "-p", "slow=10",
                     "--direction", direction, "--stop-loss", str(SL), "--take-profit", str(TP), "--fees", "0.001",
                     "--json", "out.json", "--trades", "trades.csv", "--report", "report.html")
    assert result.returncode == 0, result.stderr
    trades = json.loads((workdir / "out.json").read_text())["trades"]
    seen = check_exit_reasons(trades, candles, 3, 10)
    assert expected <= seen, seen
    with open(workdir / "trades.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["exit_reason"] for r in rows] == [t["exit_reason"] for t in trades]
    page = (workdir / "report.html").read_text()
    assert "<th>exit reason</th>" in page  # the report's trade table has the column, each trade's reason in it
    cells = re.findall(r"<td>(signal|reverse|stop_loss|take_profit|end)</td>", page)
    assert cells == [t["exit_reason"] for t in trades if t["exit_reason"] is not None]


def test_replay_and_parity_agree_on_exit_reasons(run_cli, workdir: Path) -> None:
    data = daily_csv(workdir / "prices.csv", 400, "D")
    candles = candles_of(data)
    args = ["--data", "prices.csv", "-p", "fast=3", "-p", "slow=10", "--direction", "both", "--stop-loss", str(SL),
            "--take-profit", str(TP), "--fees", "0.001"]
    assert run_cli("backtest", "sma_cross", *args, "--json", "bt.json").returncode == 0
    replayed = run_cli("paper", "replay", "sma_cross", *args, "--json", "replay.json")
    assert replayed.returncode == 0, replayed.stderr
    backtest = json.loads((workdir / "bt.json").read_text())["trades"]
    trades = json.loads((workdir / "replay.json").read_text())["trades"]
    assert [t["exit_reason"] for t in trades] == [t["exit_reason"] for t in backtest]
    check_exit_reasons(trades, candles, 3, 10)
    assert {"reverse", "stop_loss", "take_profit"} <= {t["exit_reason"] for t in trades}
    parity = run_cli("check", "parity", "sma_cross", *args, "--json", "parity.json")
    assert parity.returncode == 0, parity.stdout + parity.stderr
    report = json.loads((workdir / "parity.json").read_text())
    assert report["identical"] is True
    assert [t["exit_reason"] for t in report["trades"]["replay"]] == [t["exit_reason"] for t in backtest]


def test_paper_trades_name_the_exit_reason_of_each_fill(run_cli, workdir: Path, monkeypatch) -> None:
    import systrade.live.replay as replay_module
    from systrade.live.ledger import Ledger
    from systrade.live.replay import replay, replay_bot_settings
    from systrade.sim.rules import PositionRules
    from systrade.strategy import build_strategy, load_strategy

    data = daily_csv(workdir / "prices.csv", 300, "D")
    candles = candles_of(data)
    database = workdir / "paper.sqlite"
    monkeypatch.setattr(replay_module, "Ledger", lambda url: Ledger(f"sqlite:///{database}"))
    ref = load_strategy("sma_cross", [str(Path(__file__).parents[1] / "strategies")])
    strategy = build_strategy(ref, {"fast": 3, "slow": 10})
    rules = PositionRules(direction="both", fees=0.001, stop_loss=SL, take_profit=TP)
    bot = replay_bot_settings("sma_cross", "PRICES/USD", "1d", rules, strategy.param_values)
    result = replay(ref, candles[["open", "high", "low", "close", "volume"]], bot, rules, 10_000.0)
    with open(workdir / "systrade.toml", "a") as fh:
        fh.write(f'[paper]\ndatabase = "sqlite:///{database.as_posix()}"\n')
    listed = run_cli("paper", "trades", "--json")
    assert listed.returncode == 0, listed.stderr
    fills = json.loads(listed.stdout)
    assert len(fills) == len(result.fills)
    exits = [f["exit_reason"] for f in fills if f["exit_reason"] is not None]
    closed = [t for t in result.trades.to_dict("records") if t["status"] == "closed"]
    assert exits == [t["exit_reason"] for t in closed]  # one exit fill per closed trade, in order
    assert {"reverse", "stop_loss", "take_profit"} <= set(exits)
    position = 0.0
    for fill in fills:  # an exit reason exactly on the fills that reduce or flip the position
        signed = fill["amount"] * (1 if fill["side"] == "buy" else -1)
        assert (fill["exit_reason"] is not None) == (position != 0 and np.sign(signed) != np.sign(position))
        position += signed
    table = run_cli("paper", "trades")
    assert table.returncode == 0 and "exit" in table.stdout and "stop_loss" in table.stdout


# ---------------------------------------------------------------- 4. 252 days a year for daily stock data


def cagr_by_hand(equity_start: float, equity_end: float, bars: int, year_days: float) -> float:
    return ((equity_end / equity_start) ** (year_days / bars) - 1) * 100


def test_daily_stock_data_is_annualised_with_252_days(run_cli, workdir: Path) -> None:
    daily_csv(workdir / "stock.csv", 600, "B")
    result = run_cli("backtest", "sma_cross", "--data", "stock.csv", "-p", "fast=5", "-p", "slow=20", "--json",
                     "out.json")
    assert result.returncode == 0, result.stderr
    doc = json.loads((workdir / "out.json").read_text())
    assert doc["year_days"] == 252 and doc["year_days_source"] == "weekday_daily"
    note = " ".join(result.stdout.split())
    assert re.search(r"note: .*252 days a year.*no weekend candles.*--year-days 365 or set \[backtest\] year_days",
                     note), result.stdout
    # CAGR by hand: the equity of the first bar is the initial cash (nothing fills at the first open)
    assert doc["cagr_pct"] == pytest.approx(cagr_by_hand(doc["initial_cash"], doc["final_equity"], 600, 252),
                                            rel=1e-9)
    given = run_cli("backtest", "sma_cross", "--data", "stock.csv", "-p", "fast=5", "-p", "slow=20",
                    "--year-days", "365", "--json", "given.json")
    assert given.returncode == 0 and "252 days a year" not in given.stdout
    doc365 = json.loads((workdir / "given.json").read_text())
    assert doc365["year_days"] == 365 and doc365["year_days_source"] == "option"
    assert doc365["cagr_pct"] == pytest.approx(cagr_by_hand(doc["initial_cash"], doc["final_equity"], 600, 365))
    with open(workdir / "systrade.toml", "a") as fh:
        fh.write("[backtest]\nyear_days = 360\n")
    configured = run_cli("backtest", "sma_cross", "--data", "stock.csv", "--json", "config.json")
    assert configured.returncode == 0 and "252 days a year" not in configured.stdout
    assert json.loads((workdir / "config.json").read_text())["year_days"] == 360


def test_crypto_daily_data_keeps_365_days(run_cli, workdir: Path) -> None:
    daily_csv(workdir / "coin.csv", 600, "D")
    result = run_cli("backtest", "sma_cross", "--data", "coin.csv", "-p", "fast=5", "-p", "slow=20", "--json",
                     "out.json")
    assert result.returncode == 0, result.stderr
    doc = json.loads((workdir / "out.json").read_text())
    assert doc["year_days"] == 365 and doc["year_days_source"] == "default"
    assert "252 days a year" not in result.stdout
    assert doc["cagr_pct"] == pytest.approx(cagr_by_hand(doc["initial_cash"], doc["final_equity"], 600, 365),
                                            rel=1e-9)


def test_optimize_and_walkforward_annualise_stock_data_with_252_days(run_cli, workdir: Path) -> None:
    daily_csv(workdir / "stock.csv", 900, "B")
    swept = run_cli("optimize", "sma_cross", "--data", "stock.csv", *GRID, "--workers", "1", "--no-progress",
                    "--json", "sweep.json")
    assert swept.returncode == 0, swept.stderr
    assert "252 days a year" in " ".join(swept.stdout.split())
    doc = json.loads((workdir / "sweep.json").read_text())
    assert doc["year_days"] == 252 and doc["year_days_source"] == "weekday_daily"
    best = doc["best"]
    assert best["cagr_pct"] == pytest.approx(cagr_by_hand(doc["initial_cash"], best["final_equity"], 900, 252),
                                             rel=1e-9)
    walked = run_cli("walkforward", "sma_cross", "--data", "stock.csv", "--train", "1y", "--test", "6mo", *GRID,
                     "--workers", "1", "--no-progress", "--json", "wf.json")
    assert walked.returncode == 0, walked.stderr
    assert "252 days a year" in " ".join(walked.stdout.split())
    wf = json.loads((workdir / "wf.json").read_text())
    assert wf["year_days"] == 252
    equity = wf["oos_equity"]["equity"]
    assert wf["out_of_sample"]["cagr_pct"] == pytest.approx(cagr_by_hand(equity[0], equity[-1], len(equity), 252),
                                                            rel=1e-9)
