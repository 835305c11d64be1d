"""End-to-end tests through the real `systrade` entry point, in a subprocess each."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import tree

TRADE_KEYS = {"direction", "entry_time", "entry_price", "exit_time", "exit_price", "size", "pnl", "return_pct",
              "fees", "status", "exit_reason"}
RUN_KEYS = {"strategy", "params", "symbol", "timeframe", "start", "end", "initial_cash", "final_equity",
            "total_return_pct", "cagr_pct", "max_drawdown_pct", "sharpe", "sortino", "calmar", "win_rate_pct",
            "profit_factor", "expectancy", "exposure_pct", "fees_paid", "total_trades", "closed_trades",
            "open_trades", "buy_and_hold_return_pct", "trades"}


def random_walk_csv(path: Path, n: int = 400, seed: int = 0, freq: str = "1D") -> Path:
    """A small made-up daily series written as CSV with a `Date` column."""
    rng = np.random.default_rng(seed)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    opens = np.concatenate([[50.0], close[:-1]])
    frame = pd.DataFrame({
        "Date": pd.date_range("2020-01-01", periods=n, freq=freq).strftime("%Y-%m-%d"),
        "Open": opens, "High": np.maximum(opens, close) * 1.01, "Low": np.minimum(opens, close) * 0.99,
        "Close": close, "Volume": rng.integers(100, 1000, n),
    })
    frame.to_csv(path, index=False)
    return path


def test_main_command_on_the_sample_writes_every_output(run_cli, workdir: Path) -> None:
    result = run_cli("backtest", "sma_cross", "--fees", "0.001", "--json", "out.json", "--trades", "trades.csv",
                     "--report", "report.html")
    assert result.returncode == 0, result.stderr
    assert "synthetic" in result.stdout
    doc = json.loads((workdir / "out.json").read_text())
    assert RUN_KEYS <= set(doc)
    assert doc["synthetic"] is True and doc["symbol"] == "SAMPLE/USDT" and doc["timeframe"] == "1h"
    assert doc["params"] == {"fast": 10, "slow": 30}
    assert doc["total_trades"] == len(doc["trades"]) == doc["closed_trades"] + doc["open_trades"] > 10
    assert doc["max_drawdown_pct"] > 0
    for trade in doc["trades"]:
        assert set(trade) == TRADE_KEYS
        assert (trade["status"] == "open") == (trade["exit_time"] is None) == (trade["exit_price"] is None)
    assert doc["fees_paid"] == pytest.approx(sum(t["fees"] for t in doc["trades"]), rel=1e-9)
    closed_pnl = sum(t["pnl"] for t in doc["trades"] if t["status"] == "closed")
    open_pnl = sum(t["pnl"] for t in doc["trades"] if t["status"] == "open")
    assert doc["final_equity"] == pytest.approx(doc["initial_cash"] + closed_pnl + open_pnl, rel=1e-9)
    with open(workdir / "trades.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == doc["total_trades"] and rows[0]["symbol"] == "SAMPLE/USDT"
    report = (workdir / "report.html").read_text()
    assert "SYNTHETIC DATA" in report and "Plotly.newPlot" in report
    assert '<script src="http' not in report  # plotly.js is embedded: the report opens offline


def test_several_symbols_and_cash_sharing(run_cli, workdir: Path) -> None:
    for name, seed in (("AAA", 1), ("BBB", 2)):
        random_walk_csv(workdir / f"{name}.csv", seed=seed)
        assert run_cli("data", "import", f"{name}.csv", "--exchange", "local", "--symbol", name).returncode == 0
    result = run_cli("backtest", "sma_cross", "--exchange", "local", "--symbol", "AAA", "--symbol", "BBB",
                     "--json", "multi.json")
    assert result.returncode == 0, result.stderr
    runs = json.loads((workdir / "multi.json").read_text())["runs"]
    assert [r["symbol"] for r in runs] == ["AAA", "BBB"]
    assert all(r["timeframe"] == "1d" and r["synthetic"] is False for r in runs)
    assert runs[0]["trades"] != runs[1]["trades"]
    shared = run_cli("backtest", "sma_cross", "--symbol", "AAA", "--symbol", "BBB", "--cash-sharing",
                     "--json", "shared.json")
    assert shared.returncode == 0, shared.stderr
    doc = json.loads((workdir / "shared.json").read_text())
    assert len(doc["runs"]) == 2 and doc["portfolio"]["final_equity"] > 0
    assert doc["runs"][0]["final_equity"] is None  # one cash balance: equity exists only for the portfolio


def test_data_import_list_validate(run_cli, workdir: Path) -> None:
    random_walk_csv(workdir / "clean.csv", n=50)
    imported = run_cli("data", "import", "clean.csv", "--exchange", "local", "--symbol", "GOOG")
    assert imported.returncode == 0, imported.stderr
    stored = workdir / "data" / "local" / "GOOG-1d.parquet"
    assert stored.is_file()
    listing = run_cli("data", "list", "--json", "list.json")
    assert listing.returncode == 0 and "GOOG" in listing.stdout
    rows = json.loads((workdir / "list.json").read_text())
    assert rows[0]["rows"] == 50 and rows[0]["timeframe"] == "1d" and rows[0]["gaps"] == 0
    assert run_cli("data", "validate").returncode == 0
    bad = pd.read_csv(workdir / "clean.csv")
    bad.loc[3, "High"] = bad.loc[3, "Low"] / 2
    bad.loc[7, "Close"] = -1.0
    bad = pd.concat([bad, bad.iloc[[10]]]).drop(index=[20, 21])
    bad.to_csv(workdir / "bad.csv", index=False)
    checked = run_cli("data", "validate", "bad.csv", "--json", "problems.json")
    assert checked.returncode == 1
    kinds = {p["kind"] for p in json.loads((workdir / "problems.json").read_text())[0]["problems"]}
    assert {"duplicate timestamp", "unsorted (timestamp earlier than the previous one)", "high < low",
            "non-positive price", "gap (missing candles)"} <= kinds


def test_strategies_list_and_show(run_cli) -> None:
    listing = run_cli("strategies", "list")
    assert listing.returncode == 0
    for name in ("sma_cross", "rsi_reversion", "bollinger_breakout", "donchian_breakout", "macd_trend"):
        assert name in listing.stdout
    shown = run_cli("strategies", "show", "rsi_reversion")
    assert shown.returncode == 0
    assert "oversold" in shown.stdout and "5.0..45.0" in shown.stdout and "rsi_reversion.py" in shown.stdout


def _bad_inputs(workdir: Path) -> dict[str, tuple[list[str], str]]:
    (workdir / "syntax.py").write_text("from systrade import Strategy\nclass X(Strategy)\n    pass\n")
    (workdir / "empty.py").write_text("x = 1\n")
    (workdir / "no_ohlc.csv").write_text("date,price\n2024-01-01,1\n2024-01-02,2\n")
    (workdir / "bad_dates.csv").write_text("date,open,high,low,close\nyesterday,1,2,0.5,1\nsoon,1,2,0.5,1\n")
    random_walk_csv(workdir / "ok.csv", n=60)
    (workdir / "bad.toml").write_text("[backtest]\ncash = 100\ncolour = 'red'\n")
    rows = (workdir / "ok.csv").read_text().splitlines()
    cells = rows[31].split(",")
    cells[3] = "0"  # the low of the 31st candle
    (workdir / "zero_price.csv").write_text("\n".join([*rows[:31], ",".join(cells), *rows[32:]]) + "\n")
    return {
        "syntax error": (["syntax.py"], "syntax.py: syntax error on line 2"),
        "no strategy class": (["empty.py"], "empty.py defines no Strategy subclass"),
        "unknown name": (["sma_crss"], "did you mean sma_cross"),
        "out of range param": (["sma_cross", "-p", "fast=1000"], "fast=1000 is above its high bound 100"),
        "unknown param": (["sma_cross", "-p", "speed=3"], "has no parameter 'speed'"),
        "no ohlc columns": (["sma_cross", "--data", "no_ohlc.csv"], "no_ohlc.csv has no open, high, low"),
        "unparsable dates": (["sma_cross", "--data", "bad_dates.csv"], "bad_dates.csv: column 'date' has unparsable"),
        "missing file": (["sma_cross", "--data", "nope.csv"], "data file nope.csv does not exist"),
        "empty range": (["sma_cross", "--data", "ok.csv", "--start", "2030-01-01"], "leaves 0 candles"),
        "bad size": (["sma_cross", "--size", "lots"], "--size 'lots' is not valid"),
        "bad config key": (["sma_cross", "--config", "bad.toml"], "backtest.colour: unknown key"),
        "percent reversal": (["sma_cross", "--direction", "both", "--size", "50"], "percent sizing cannot reverse"),
        "zero price": (["sma_cross", "--data", "zero_price.csv"], "has a price of zero or less"),
        "infinite cash": (["sma_cross", "--cash", "inf"], "--cash inf is not valid"),
    }


@pytest.mark.parametrize("case", ["syntax error", "no strategy class", "unknown name", "out of range param",
                                  "unknown param", "no ohlc columns", "unparsable dates", "missing file",
                                  "empty range", "bad size", "bad config key", "percent reversal", "zero price",
                                  "infinite cash"])
def test_bad_input_gets_one_clear_line_exit_2_and_writes_nothing(run_cli, workdir: Path, case: str) -> None:
    args, expected = _bad_inputs(workdir)[case]
    before = tree(workdir)
    result = run_cli("backtest", *args, "--json", "out.json", "--report", "out.html", "--trades", "out.csv")
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert expected in " ".join(result.stderr.split()), result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert tree(workdir) == before


def test_debug_shows_the_traceback(run_cli) -> None:
    result = run_cli("backtest", "sma_crss", "--debug")
    assert result.returncode == 2
    assert "Traceback" in result.stderr and "did you mean sma_cross" in result.stderr


def _strict_crosses_up(close: pd.Series, fast: int, slow: int) -> int:
    """Entries sma_cross acts on (every bar but the last has a next open), counted here with plain pandas."""
    f, s = close.rolling(fast).mean(), close.rolling(slow).mean()
    up = (f.shift(1) < s.shift(1)) & (f > s)
    return int(up.iloc[:-1].sum())


def test_orders_below_the_lot_are_skipped_and_counted(run_cli, workdir: Path) -> None:
    """Half a unit with whole-unit lots can never be placed: no trade, and every entry is reported as skipped."""
    assert run_cli("data", "sample").returncode == 0  # the sample the backtest reads, as a file to count on
    result = run_cli("backtest", "sma_cross", "--size", "0.5", "--size-type", "amount", "--granularity", "1",
                     "--json", "out.json")
    assert result.returncode == 0, result.stderr
    doc = json.loads((workdir / "out.json").read_text())
    sample = pd.read_parquet(workdir / "data" / "sample" / "SAMPLE_USDT-1h.parquet")
    expected = _strict_crosses_up(sample["close"], 10, 30)
    assert doc["total_trades"] == 0 and expected > 10
    assert doc["skipped_orders"] == {"total": expected, "by_reason": {"min_amount": expected}}
    assert f"{expected} min_amount" in result.stdout


def test_default_costs_are_charged_and_stated(run_cli, workdir: Path) -> None:
    charged = run_cli("backtest", "sma_cross", "--json", "default.json")
    free = run_cli("backtest", "sma_cross", "--fees", "0", "--json", "free.json")
    assert charged.returncode == free.returncode == 0, charged.stderr + free.stderr
    assert "costs: fees 0.1% per fill, slippage 0%" in charged.stdout
    assert "costs: fees 0% per fill, slippage 0%" in free.stdout
    default, nothing = (json.loads((workdir / name).read_text()) for name in ("default.json", "free.json"))
    assert default["rules"]["fees"] == 0.001 and nothing["fees_paid"] == 0
    traded = sum(t["size"] * t["entry_price"] + (t["size"] * t["exit_price"] if t["exit_price"] else 0)
                 for t in default["trades"])
    assert default["fees_paid"] == pytest.approx(0.001 * traded, rel=1e-9)


@pytest.mark.parametrize("command, extra", [(["backtest"], []), (["optimize"], ["--grid", "fast=5,10"]),
                                            (["walkforward"], ["--train", "60d", "--test", "30d", "--grid",
                                                               "fast=5,10"]),
                                            (["check", "lookahead"], []), (["check", "warmup"], []),
                                            (["check", "parity"], []), (["paper", "replay"], [])])
def test_zero_volume_candles_are_noted(run_cli, workdir: Path, command: list[str], extra: list[str]) -> None:
    random_walk_csv(workdir / "quiet.csv", n=120)
    frame = pd.read_csv(workdir / "quiet.csv")
    frame.loc[[5, 6, 40], "Volume"] = 0
    frame.to_csv(workdir / "quiet.csv", index=False)
    result = run_cli(*command, "sma_cross", *extra, "--data", "quiet.csv")
    assert result.returncode == 0, result.stderr
    assert "has 3 candles with zero volume" in " ".join(result.stdout.split())


MARKET_FLAGS = ["--lot", "0.01", "--tick", "0.05", "--min-cost", "2000", "--sell-fees", "0.003"]


def test_market_rule_flags_shape_the_backtest(run_cli, workdir: Path) -> None:
    """--lot rounds every size down to its step, --min-cost skips small orders, --sell-fees charges exits."""
    result = run_cli("backtest", "sma_cross", "--fees", "0.001", "--size", "25", *MARKET_FLAGS, "--json", "out.json")
    assert result.returncode == 0, result.stderr
    doc = json.loads((workdir / "out.json").read_text())
    assert {k: doc["rules"][k] for k in ("granularity", "tick", "min_cost", "sell_fees")} == \
        {"granularity": 0.01, "tick": 0.05, "min_cost": 2000, "sell_fees": 0.003}
    closed = [t for t in doc["trades"] if t["status"] == "closed"]
    assert len(closed) > 5
    for trade in doc["trades"]:
        assert abs(trade["size"] / 0.01 - round(trade["size"] / 0.01)) < 1e-6  # whole lots
        assert trade["size"] * trade["entry_price"] >= 2000  # 25% of 10,000 at most: some entries are skipped
    for trade in closed:  # 0.1% on the entry, 0.3% on the exit
        want = 0.001 * trade["size"] * trade["entry_price"] + 0.003 * trade["size"] * trade["exit_price"]
        assert trade["fees"] == pytest.approx(want, rel=1e-9)
    assert doc["skipped_orders"]["by_reason"].get("min_cost", 0) > 0
    assert "lot 0.01, tick 0.05, min cost 2000" in " ".join(result.stdout.split())


@pytest.mark.parametrize("command", [["optimize", "sma_cross", "--grid", "fast=5,10", "--grid", "slow=30"],
                                     ["walkforward", "sma_cross", "--train", "60d", "--test", "30d", "--grid",
                                      "fast=5,10", "--grid", "slow=30"],
                                     ["check", "parity", "sma_cross", "--stop-loss", "0.02"],
                                     ["paper", "replay", "sma_cross", "--end", "2024-01-20"]])
def test_every_command_takes_the_same_market_rule_flags(run_cli, workdir: Path, command: list[str]) -> None:
    result = run_cli(*command, "--fees", "0.001", *MARKET_FLAGS, "--json", "out.json")
    assert result.returncode == 0, result.stdout + result.stderr
    rules = json.loads((workdir / "out.json").read_text())["rules"]
    assert {k: rules[k] for k in ("granularity", "tick", "min_cost", "sell_fees")} == \
        {"granularity": 0.01, "tick": 0.05, "min_cost": 2000, "sell_fees": 0.003}


def dated_csv(path: Path, times: pd.DatetimeIndex, date_format: str, stamp_column: str = "Date") -> Path:
    """random_walk_csv's prices at ``times``, the stamps written with ``date_format`` (or as given numbers)."""
    frame = pd.read_csv(random_walk_csv(path, n=len(times)))
    frame[stamp_column] = times.strftime(date_format) if date_format else times
    frame.to_csv(path, index=False)
    return path


def stored_times(workdir: Path, name: str) -> list[pd.Timestamp]:
    return list(pd.read_parquet(workdir / "data" / "local" / name).index)


def assert_refused(result, expected: str, workdir: Path, before: set[str]) -> None:
    """Exit 2, one line naming the problem, no traceback, nothing written (paper replay draws its progress bar
    before it loads the data: that line is not counted)."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert expected in " ".join(result.stderr.split()), result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if not line.startswith("replay ━")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert tree(workdir) == before


def test_day_first_dates_are_imported_in_date_order(run_cli, workdir: Path) -> None:
    days = pd.date_range("2018-01-01", periods=20, freq="1D", tz="UTC")  # days 13..20 show the order
    dated_csv(workdir / "eu.csv", days, "%d/%m/%Y")
    result = run_cli("data", "import", "eu.csv", "--exchange", "local", "--symbol", "EU")
    assert result.returncode == 0, result.stderr
    assert stored_times(workdir, "EU-1d.parquet") == list(days)


HOURS_1_TO_12 = pd.date_range("2018-01-01", periods=12 * 24, freq="1h", tz="UTC")  # no day above 12: ambiguous


def test_ambiguous_dates_are_refused_until_the_format_is_given(run_cli, workdir: Path) -> None:
    dated_csv(workdir / "amb.csv", HOURS_1_TO_12, "%d/%m/%Y %H:%M")
    before = tree(workdir)
    refused = run_cli("data", "import", "amb.csv", "--exchange", "local", "--symbol", "AMB")
    assert_refused(refused, "--date-format '%d/%m/%Y %H:%M' (day first)", workdir, before)
    imported = run_cli("data", "import", "amb.csv", "--exchange", "local", "--symbol", "AMB",
                       "--date-format", "%d/%m/%Y %H:%M")
    assert imported.returncode == 0, imported.stderr
    assert stored_times(workdir, "AMB-1h.parquet") == list(HOURS_1_TO_12)
    assert run_cli("data", "validate", "amb.csv", "--date-format", "%d/%m/%Y %H:%M").returncode == 0


@pytest.mark.parametrize("command, extra", [(["backtest"], []), (["optimize"], ["--grid", "fast=5,10"]),
                                            (["walkforward"], ["--train", "5d", "--test", "2d", "--grid",
                                                               "fast=5,10"]),
                                            (["check", "lookahead"], []), (["check", "warmup"], []),
                                            (["check", "parity"], []), (["paper", "replay"], [])])
def test_every_command_with_data_takes_the_date_format(run_cli, workdir: Path, command: list[str],
                                                       extra: list[str]) -> None:
    dated_csv(workdir / "amb.csv", HOURS_1_TO_12, "%m/%d/%Y %H:%M")
    before = tree(workdir)
    refused = run_cli(*command, "sma_cross", *extra, "--data", "amb.csv")
    assert_refused(refused, "cannot be told apart", workdir, before)
    result = run_cli(*command, "sma_cross", *extra, "--data", "amb.csv", "--date-format", "%m/%d/%Y %H:%M")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("scale", [1_000_000, 1_000_000_000], ids=["us", "ns"])
def test_epoch_micro_and_nanoseconds_are_imported(run_cli, workdir: Path, scale: int) -> None:
    hours = pd.date_range("2024-03-01", periods=48, freq="1h", tz="UTC")
    dated_csv(workdir / "epoch.csv", hours, "", stamp_column="Date")
    frame = pd.read_csv(workdir / "epoch.csv")
    frame["Date"] = [int(t.timestamp()) * scale for t in hours]  # seconds from the oracle, times the unit
    frame.rename(columns={"Date": "timestamp"}).to_csv(workdir / "epoch.csv", index=False)
    result = run_cli("data", "import", "epoch.csv", "--exchange", "local", "--symbol", "EP")
    assert result.returncode == 0, result.stderr
    assert stored_times(workdir, "EP-1h.parquet") == list(hours)


def test_epoch_dates_outside_1970_to_2200_are_refused(run_cli, workdir: Path) -> None:
    (workdir / "far.csv").write_text("timestamp,open,high,low,close\n1704067200,1,2,0.5,1\n9999999999,1,2,0.5,1\n")
    before = tree(workdir)
    result = run_cli("data", "import", "far.csv", "--exchange", "local", "--symbol", "FAR")
    assert_refused(result, "column 'timestamp' has 9999999999 at row 1, which as epoch seconds", workdir, before)


def test_files_above_the_configured_size_limit_are_refused(run_cli, workdir: Path) -> None:
    with open(workdir / "systrade.toml", "a") as fh:  # [data] is the last table of the fixture's config
        fh.write("max_file_mb = 0.01\n")
    random_walk_csv(workdir / "big.csv", n=400)  # about 30 KB
    random_walk_csv(workdir / "small.csv", n=60)  # about 5 KB
    before = tree(workdir)
    expected = f"big.csv is {(workdir / 'big.csv').stat().st_size / 1024:.0f} KB, above the 10 KB limit"
    for command in (["data", "import", "big.csv", "--exchange", "local", "--symbol", "BIG"],
                    ["backtest", "sma_cross", "--data", "big.csv", "--json", "out.json"],
                    ["check", "lookahead", "sma_cross", "--data", "big.csv"]):
        result = run_cli(*command)
        assert_refused(result, expected, workdir, before)
        assert "raise data.max_file_mb in systrade.toml (now 0.01)" in result.stderr
    assert run_cli("data", "import", "small.csv", "--exchange", "local", "--symbol", "SMALL").returncode == 0


@pytest.mark.parametrize("command", [["backtest", "sma_cross"], ["optimize", "sma_cross", "--grid", "fast=5,10"],
                                     ["check", "lookahead", "sma_cross"], ["check", "parity", "sma_cross"],
                                     ["paper", "replay", "sma_cross"]])
def test_an_unwritable_output_is_refused_before_any_work(run_cli, workdir: Path, command: list[str]) -> None:
    (workdir / "notes.txt").write_text("a file, not a folder\n")
    (workdir / "reports").mkdir()
    before = tree(workdir)
    for path, expected in (("reports", "is a folder"), ("notes.txt/out.json", "is a file, not a folder")):
        result = run_cli(*command, "--json", path)
        assert result.returncode == 2, result.stdout + result.stderr
        assert expected in " ".join(result.stderr.split()) and "Traceback" not in result.stderr
        assert result.stdout == ""  # refused before running: nothing computed, nothing printed
    assert tree(workdir) == before
