"""Secrets live in the environment only: refused in the config, never handed to public work, never shown in
any form (stripped, escaped, URL-encoded, in a URL's password, in a --debug traceback)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import STRATEGIES, systrade_exe
from fakes.binance import FakeBinance
from paper_helpers import toml_value
from test_download import minute_candles

KEY, SECRET = "KEYq7w8e9r0leak", "SECRETz1x2c3v4leak"


def run(cwd: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "SYSTRADE_CONFIG"}
    environment.update({"COLUMNS": "200", **(env or {})})
    return subprocess.run([systrade_exe(), *args], cwd=cwd, env=environment, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("table", ['apiKey = "abc"', 'secret = "abc"', 'options = { password = "abc" }',
                                   'privateKey = "abc"', 'uid = "abc"'])
def test_credentials_written_in_the_config_are_refused(tmp_path: Path, table: str) -> None:
    (tmp_path / "systrade.toml").write_text(f"[exchanges.binance]\ntimeout = 1000\n{table}\n")
    for command in (["backtest", "sma_cross"], ["paper", "status"], ["data", "list"]):
        result = run(tmp_path, *command)
        assert result.returncode == 2, result.stderr
        message = " ".join(result.stderr.split())
        assert "must not be written in the config" in message and "SYSTRADE_BINANCE_API_KEY" in message
        assert "abc" not in result.stderr + result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["systrade.toml"]  # nothing written


def test_a_public_download_never_hands_the_keys_to_the_client(tmp_path: Path) -> None:
    """A wrong key in the environment cannot break a candle download: the client never has it."""
    source = minute_candles(3000)
    with FakeBinance(clock_ms=int(source.index[-1].value // 1_000_000) + 30_000) as fake:
        fake.add_market("BTC/USDT", source)
        exchange = {**fake.ccxt_config(), "enableRateLimit": False, "timeout": 2000}
        exchange["options"]["fetchCurrencies"] = True  # ccxt's default: with keys, load_markets calls /sapi
        (tmp_path / "systrade.toml").write_text(f"[data]\ndir = {json.dumps(str(tmp_path / 'data'))}\n"
                                                f"[exchanges]\nbinance = {toml_value(exchange)}\n")
        result = run(tmp_path, "data", "download", "binance", "BTC/USDT", "--timeframe", "1m", "--since",
                     str(source.index[0].date()), env={"SYSTRADE_BINANCE_API_KEY": "wrong",
                                                       "SYSTRADE_BINANCE_SECRET": "wrong"})
        assert result.returncode == 0, result.stderr
        assert fake.private_requests() == []
        assert fake.count("/api/v3/klines") >= 1


LEAKY = '''
import os
from systrade import Signals, Strategy


class Leaky(Strategy):
    """Puts the key into its error, in several written forms."""

    def signals(self, data):
        key = os.environ["SYSTRADE_BINANCE_API_KEY"]
        raise RuntimeError(f"auth failed for {key!r} {key.strip()} {{'key': {key!r}}} "
                           f"https://user:{os.environ['SYSTRADE_DB_PASSWORD']}@db.example/x")
'''


def test_debug_tracebacks_and_errors_never_show_a_secret(tmp_path: Path) -> None:
    (tmp_path / "leaky.py").write_text(LEAKY)
    (tmp_path / "systrade.toml").write_text(f'[strategies]\ndir = "{STRATEGIES.as_posix()}"\n')
    env = {"SYSTRADE_BINANCE_API_KEY": KEY + "\n", "SYSTRADE_DB_PASSWORD": SECRET}
    for args in (["backtest", "leaky.py"], ["--debug", "backtest", "leaky.py"]):
        result = run(tmp_path, *args, env=env)
        assert result.returncode == 2, result.stderr
        shown = result.stdout + result.stderr
        assert "***" in shown
        for form in (KEY, SECRET, json.dumps(KEY + "\n")[1:-1], repr(KEY + "\n")):
            assert form not in shown, form
    assert "Traceback" in result.stderr  # --debug still shows where it happened


def test_a_database_password_is_not_echoed(tmp_path: Path) -> None:
    (tmp_path / "systrade.toml").write_text('[paper]\ndatabase = "nosuchdialect://trader:hunter2secret@127.0.0.1/x"\n')
    result = run(tmp_path, "paper", "status")
    assert result.returncode == 2, result.stderr
    assert "hunter2secret" not in result.stdout + result.stderr and "trader:***@" in result.stderr
