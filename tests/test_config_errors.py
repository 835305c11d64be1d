"""A config file the user got wrong is one clear line and exit 2, whatever the command."""

from __future__ import annotations

from pathlib import Path

from fakes.binance import FakeBinance
from paper_helpers import toml_value
from test_secrets import run


def test_a_config_that_is_not_utf8_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "systrade.toml").write_bytes("[backtest]\ncash = 100\n# café\n".encode("latin-1"))
    for command in (["backtest", "sma_cross"], ["paper", "status"]):
        result = run(tmp_path, *command)
        assert result.returncode == 2, result.stderr
        message = " ".join(result.stderr.split())
        assert "is not UTF-8 text (byte 0xe9 on line 3)" in message and "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["systrade.toml"]


def test_a_timeframe_that_contradicts_the_data_is_refused(run_cli, workdir: Path) -> None:
    """On the sample (1h) and on a file, a --timeframe the candles do not have would change annualising: refused."""
    sample = run_cli("backtest", "sma_cross", "--timeframe", "4h")
    assert sample.returncode == 2 and "--timeframe 4h does not match the bundled sample" in sample.stderr
    (workdir / "five.csv").write_text("time,open,high,low,close,volume\n" + "".join(
        f"2024-01-01T00:{m:02d}:00Z,{100 + m % 7},{101 + m % 7},{99 + m % 7},{100 + m % 5},1\n"
        for m in range(0, 60, 5)))
    wrong = run_cli("check", "warmup", "sma_cross", "--data", "five.csv", "--timeframe", "7m")
    assert wrong.returncode == 2 and "whose candles are 5m apart" in " ".join(wrong.stderr.split())
    assert run_cli("backtest", "sma_cross", "--timeframe", "1h").returncode == 0


def test_until_before_since_is_refused(run_cli, workdir: Path) -> None:
    with FakeBinance() as fake:  # the exchange is local even if the refusal failed
        exchange = {**fake.ccxt_config(), "enableRateLimit": False, "timeout": 1000}
        (workdir / "systrade.toml").write_text(f"[exchanges]\nbinance = {toml_value(exchange)}\n")
        result = run_cli("data", "download", "binance", "BTC/USDT", "--timeframe", "1h", "--since", "2024-02-01",
                         "--until", "2024-01-01")
        assert fake.requests == []  # refused before any request
    assert result.returncode == 2 and "--until 2024-01-01 is not after --since 2024-02-01" in result.stderr


def test_paper_replay_errors_are_one_line(run_cli) -> None:
    """The replay's progress bar appears only once its data has loaded: a bad file is one line, as elsewhere."""
    result = run_cli("paper", "replay", "sma_cross", "--data", "nope.csv")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [line for line in result.stderr.strip().splitlines()
                                                  if line.startswith("error:")] != []


def test_error_text_in_square_brackets_is_printed_literally(run_cli) -> None:
    """Messages name config tables like [[paper.bots]]; rich markup used to swallow them."""
    result = run_cli("paper", "run", "--once")
    assert result.returncode == 2
    assert "[[paper.bots]]" in result.stderr, result.stderr
