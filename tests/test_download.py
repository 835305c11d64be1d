"""`systrade data download/update` against the local fake Binance, through the real ccxt client."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import time
from pathlib import Path

import ccxt
import numpy as np
import pandas as pd
import pytest
from conftest import STRATEGIES, shared_file, systrade_exe
from fakes.binance import FAULT_KINDS, FakeBinance, FaultPlan
from paper_helpers import toml_value

from systrade.config import Settings
from systrade.data.download import Downloader, candles_from_rows, missing_ranges
from systrade.data.readers import read_ohlcv
from systrade.exchange import RetryPolicy, call_with_retry, create_exchange

MINUTE = 60_000
START = pd.Timestamp("2024-03-01", tz="UTC")
CANDLES = 21_000

# A 418 bans the exchange for 60 s (systrade.exchange.BAN_SECONDS, tested in test_korean_exchanges.py):
# the random faults here are the ones retried at once.
NO_BAN = tuple(k for k in FAULT_KINDS if k != "418")


def minute_candles(n: int, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    opens = np.concatenate([[100.0], close[:-1]])
    index = pd.date_range(START, periods=n, freq="1min", tz="UTC", unit="ns")
    return pd.DataFrame({"open": opens.round(2), "high": (np.maximum(opens, close) * 1.001).round(2),
                         "low": (np.minimum(opens, close) * 0.999).round(2), "close": close.round(2),
                         "volume": rng.uniform(1, 10, n).round(5)}, index=index)


def write_config(path: Path, fake: FakeBinance, data_dir: Path, timeout_ms: int = 1000) -> Path:
    exchange = {**fake.ccxt_config(), "enableRateLimit": False, "timeout": timeout_ms}
    path.write_text(
        f"[data]\ndir = {json.dumps(str(data_dir))}\n"
        "[network]\nretries = 12\nbackoff_seconds = 0.01\nrate_limit_backoff_seconds = 0.02\n"
        "max_backoff_seconds = 0.2\n"
        "[exchanges]\nbinance = " + toml_value(exchange) + "\n"
    )
    return path


@pytest.fixture
def source() -> pd.DataFrame:
    return minute_candles(CANDLES + 1)  # the last one is still forming at the fake's clock


@pytest.fixture
def fake(source: pd.DataFrame):
    now = int(source.index[-1].value // 1_000_000) + 30_000  # half-way through the last candle
    with FakeBinance(clock_ms=now) as server:
        server.add_market("BTC/USDT", source)
        yield server


def run(config: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, "SYSTRADE_CONFIG": str(config), "COLUMNS": "200", **(env or {})}
    return subprocess.run([systrade_exe(), *args], env=environment, capture_output=True, text=True, timeout=300,
                          cwd=config.parent)


def stored(data_dir: Path) -> pd.DataFrame:
    return read_ohlcv(data_dir / "binance" / "BTC_USDT-1m.parquet")


def test_download_with_30_percent_faults_stores_exactly_the_closed_candles(fake, source, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    config = write_config(tmp_path / "systrade.toml", fake, data_dir, timeout_ms=500)
    fake.faults = FaultPlan(rate=0.3, seed=1, paths=("/api/v3/klines",), slow_seconds=0.8, kinds=NO_BAN)
    result = run(config, "data", "download", "binance", "BTC/USDT", "--timeframe", "1m", "--since", "2024-03-01")
    assert result.returncode == 0, result.stderr
    got = stored(data_dir)
    expected = source.iloc[:-1]  # the forming candle is never stored
    assert len(got) == CANDLES
    pd.testing.assert_frame_equal(got, expected.rename_axis("time"), check_freq=False)
    klines = [r for r in fake.requests if r.path == "/api/v3/klines"]
    faults = [r for r in klines if r.fault]
    assert len(klines) - len(faults) >= 21 and len(faults) >= 0.2 * len(klines)
    assert {r.fault for r in faults} >= {"429", "500html", "badjson", "drop", "slow"}
    assert "retry" in result.stderr


def test_second_run_fetches_only_new_candles(fake, source, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    config = write_config(tmp_path / "systrade.toml", fake, data_dir)
    first = run(config, "data", "download", "binance", "BTC/USDT", "--timeframe", "1m", "--since", "2024-03-01",
                "--until", "2024-03-10")
    assert first.returncode == 0, first.stderr
    assert stored(data_dir).index[-1] == pd.Timestamp("2024-03-09 23:59", tz="UTC")
    fake.clear_requests()
    again = run(config, "data", "download", "binance", "BTC/USDT", "--timeframe", "1m", "--since", "2024-03-01",
                "--until", "2024-03-10")
    assert again.returncode == 0 and fake.count("/api/v3/klines") == 0  # nothing missing, nothing fetched
    update = run(config, "data", "update")
    assert update.returncode == 0, update.stderr
    klines = [r for r in fake.requests if r.path == "/api/v3/klines"]
    new_candles = CANDLES - 9 * 24 * 60
    assert len(klines) == math.ceil(new_candles / 1000)
    assert int(klines[0].params["startTime"]) == int(pd.Timestamp("2024-03-10", tz="UTC").value // 1_000_000)
    pd.testing.assert_frame_equal(stored(data_dir), source.iloc[:-1].rename_axis("time"), check_freq=False)


def test_gaps_inside_the_store_are_filled(fake, source, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    config = write_config(tmp_path / "systrade.toml", fake, data_dir)
    assert run(config, "data", "download", "binance", "BTC/USDT", "--timeframe", "1m", "--since",
               "2024-03-01").returncode == 0
    path = data_dir / "binance" / "BTC_USDT-1m.parquet"
    holed = pd.read_parquet(path).drop(index=source.index[5000:5100])
    holed.to_parquet(path)
    fake.clear_requests()
    assert run(config, "data", "download", "binance", "BTC/USDT", "--timeframe", "1m", "--since",
               "2024-03-01").returncode == 0
    klines = [r for r in fake.requests if r.path == "/api/v3/klines"]
    assert len(klines) == 1 and int(klines[0].params["startTime"]) == int(source.index[5000].value // 1_000_000)
    assert len(stored(data_dir)) == CANDLES


def test_killed_download_leaves_a_readable_store_and_resumes(fake, source, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    config = write_config(tmp_path / "systrade.toml", fake, data_dir, timeout_ms=2000)
    fake.faults = FaultPlan(rate=1.0, kinds=("slow",), paths=("/api/v3/klines",), slow_seconds=0.25)
    path = data_dir / "binance" / "BTC_USDT-1m.parquet"
    environment = {**os.environ, "SYSTRADE_CONFIG": str(config)}
    process = subprocess.Popen([systrade_exe(), "data", "download", "binance", "BTC/USDT", "--timeframe", "1m",
                                "--since", "2024-03-01"], env=environment, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, cwd=tmp_path)
    deadline = time.monotonic() + 60
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)
    process.send_signal(signal.SIGKILL)
    process.wait()
    partial = stored(data_dir)
    assert 0 < len(partial) < CANDLES
    pd.testing.assert_frame_equal(partial, source.loc[partial.index].rename_axis("time"), check_freq=False)
    fake.faults = None
    fake.clear_requests()
    resumed = run(config, "data", "download", "binance", "BTC/USDT", "--timeframe", "1m", "--since", "2024-03-01")
    assert resumed.returncode == 0, resumed.stderr
    assert int(fake.requests[-1].params.get("startTime", 0)) > int(source.index[len(partial) - 1].value // 1e6)
    pd.testing.assert_frame_equal(stored(data_dir), source.iloc[:-1].rename_axis("time"), check_freq=False)
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_secrets_never_leak(fake, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    config = write_config(tmp_path / "systrade.toml", fake, data_dir, timeout_ms=500)
    secrets = {"SYSTRADE_BINANCE_API_KEY": "KEYabc123leakcheck", "SYSTRADE_BINANCE_SECRET": "SECRETxyz789leakcheck"}
    fake.faults = FaultPlan(rate=0.3, seed=5, slow_seconds=0.8, kinds=NO_BAN)
    outputs = [run(config, "data", "download", "binance", "BTC/USDT", "--timeframe", "1m", "--since", "2024-03-14",
                   env=secrets),
               run(config, "data", "download", "binance", "NOPE/USDT", "--timeframe", "1m", "--since", "2024-03-14",
                   env=secrets),
               run(config, "--debug", "data", "download", "binance", "BTC/USDT", "--timeframe", "7m", "--since",
                   "2024-03-14", env=secrets)]
    assert outputs[0].returncode == 0 and outputs[1].returncode == 2 and outputs[2].returncode == 2
    texts = [o.stdout + o.stderr for o in outputs]
    texts += [p.read_bytes().decode("latin-1") for p in tmp_path.rglob("*") if p.is_file()]
    texts += [json.dumps(r.params) + r.path for r in fake.requests]
    for secret in secrets.values():
        assert not any(secret in text for text in texts)


@pytest.mark.parametrize("args, message", [
    (["binanse", "BTC/USDT", "--timeframe", "1h"], "unknown exchange 'binanse'; did you mean binance"),
    (["binance", "BTC/USDTT", "--timeframe", "1h"], "has no market 'BTC/USDTT'; did you mean BTC/USDT"),
    (["binance", "BTC/USDT", "--timeframe", "7m"], "has no timeframe '7m'"),
])
def test_unknown_names_get_the_closest_valid_ones(fake, tmp_path: Path, args, message) -> None:
    config = write_config(tmp_path / "systrade.toml", fake, tmp_path / "data")
    result = run(config, "data", "download", *args, "--since", "2024-03-14")
    assert result.returncode == 2 and message in " ".join(result.stderr.split()), result.stderr
    assert not (tmp_path / "data").exists()


def test_error_policy_retries_network_errors_and_never_bad_requests(fake, tmp_path: Path) -> None:
    settings = Settings.model_validate({"exchanges": {"binance": {**fake.ccxt_config(), "enableRateLimit": False,
                                                                  "timeout": 1000}}})
    client = create_exchange("binance", settings)
    client.load_markets()
    waits: list[float] = []
    policy = RetryPolicy(retries=3, backoff_seconds=0.01, rate_limit_backoff_seconds=1.0)
    fake.faults = FaultPlan(rate=1.0, kinds=("429",), max_faults=2)
    rows = call_with_retry(lambda: client.fetch_ohlcv("BTC/USDT", "1m", limit=5), policy, "test",
                           sleep=waits.append)
    assert len(rows) == 5 and waits == [1.0, 2.0]  # rate limits back off longer, doubling each time
    fake.faults = FaultPlan(rate=1.0, kinds=("500html",), max_faults=1)
    waits.clear()
    call_with_retry(lambda: client.fetch_ticker("BTC/USDT"), policy, "test", sleep=waits.append)
    assert waits == [0.01]
    fake.faults = None
    fake.clear_requests()
    with pytest.raises(ccxt.BadRequest):
        call_with_retry(lambda: client.fetch_ohlcv("BTC/USDT", "7m", limit=5), policy, "test", sleep=waits.append)
    assert fake.count("/api/v3/klines") == 1


def test_missing_ranges() -> None:
    index = pd.to_datetime([0, 60_000, 240_000, 300_000], unit="ms", utc=True)
    assert missing_ranges(index, -120_000, 420_000, 60_000) == [(-120_000, -60_000), (120_000, 180_000),
                                                                  (360_000, 420_000)]
    assert missing_ranges(None, 0, 120_000, 60_000) == [(0, 120_000)]
    assert missing_ranges(index, 0, 300_000, 60_000) == [(120_000, 180_000)]


def test_recorded_binance_responses_parse_to_the_recorded_candles(tmp_path: Path) -> None:
    cases = json.loads(shared_file("ccxt_binance_fetchOHLCV.json").read_text())["fetchOHLCV"]
    spot = cases[0]
    symbol, timeframe, since, limit = spot["input"][:4]
    raw = pd.DataFrame([[float(v) for v in row[1:6]] for row in spot["httpResponse"]],
                       index=pd.to_datetime([row[0] for row in spot["httpResponse"]], unit="ms", utc=True),
                       columns=["open", "high", "low", "close", "volume"])
    now = spot["httpResponse"][-1][0] + 2 * 3_600_000
    with FakeBinance(clock_ms=now) as server:
        server.add_market(symbol, raw)
        settings = Settings.model_validate({"exchanges": {"binance": {**server.ccxt_config(),
                                                                      "enableRateLimit": False}}})
        downloader = Downloader(create_exchange("binance", settings), "binance", tmp_path, RetryPolicy(retries=0))
        result = downloader.download(symbol, timeframe, since)
        klines = [r for r in server.requests if r.path == "/api/v3/klines"]
    got = read_ohlcv(result.path)
    expected = candles_from_rows(spot["parsedResponse"])
    pd.testing.assert_frame_equal(got, expected, check_freq=False)
    assert got.index[0].value // 1_000_000 > since  # the exchange rounds `since` up to the next candle
    assert int(klines[0].params["startTime"]) == got.index[0].value // 1_000_000  # `since` rounded up as Binance does
    client = ccxt.binance()
    for case in cases[1:]:
        parsed = client.parse_ohlcvs(case["httpResponse"], None, case["input"][1])
        pd.testing.assert_frame_equal(candles_from_rows(parsed), candles_from_rows(case["parsedResponse"]))


def test_download_saves_the_market_rules_that_backtests_of_the_series_apply(source, tmp_path: Path) -> None:
    """The exchange's lot, tick and minimums travel with the candles: a backtest of the stored series sizes
    orders as the exchange would accept them, and a command-line option still wins."""
    now = int(source.index[-1].value // 1_000_000) + 30_000
    with FakeBinance(clock_ms=now) as exchange:
        exchange.add_market("BTC/USDT", source, step_size=0.5, tick_size=0.05, min_qty=1.0, min_notional=2000.0)
        data_dir = tmp_path / "data"
        config = write_config(tmp_path / "systrade.toml", exchange, data_dir)
        config.write_text(config.read_text() + f"[strategies]\ndir = {json.dumps(str(STRATEGIES))}\n")
        got = run(config, "data", "download", "binance", "BTC/USDT", "--timeframe", "1m", "--since", "2024-03-01",
                  "--until", "2024-03-04")
        assert got.returncode == 0, got.stderr
    market = json.loads((data_dir / "binance" / "BTC_USDT.market.json").read_text())
    assert {k: market[k] for k in ("base", "quote", "lot", "tick", "min_amount", "min_cost")} == \
        {"base": "BTC", "quote": "USDT", "lot": 0.5, "tick": 0.05, "min_amount": 1.0, "min_cost": 2000.0}
    stored_args = ("backtest", "sma_cross", "--exchange", "binance", "--symbol", "BTC/USDT", "--json")
    full = run(config, *stored_args, "all.json")
    small = run(config, *stored_args, "small.json", "--size", "15")  # 15% of 10,000 is below the 2,000 minimum
    finer = run(config, *stored_args, "finer.json", "--lot", "0.1")
    assert full.returncode == small.returncode == finer.returncode == 0, full.stderr + small.stderr + finer.stderr
    doc, skipped, fine = (json.loads((tmp_path / name).read_text()) for name in ("all.json", "small.json",
                                                                                 "finer.json"))
    assert {k: doc["rules"][k] for k in ("granularity", "tick", "min_amount", "min_cost")} == \
        {"granularity": 0.5, "tick": 0.05, "min_amount": 1.0, "min_cost": 2000.0}
    assert doc["rules"]["fees"] == market["taker_fee"] == ccxt.binance().fees["trading"]["taker"]
    assert len(doc["trades"]) > 5
    assert all(abs(t["size"] / 0.5 - round(t["size"] / 0.5)) < 1e-9 for t in doc["trades"])
    close = stored(data_dir)["close"]
    fast, slow = close.rolling(10).mean(), close.rolling(30).mean()
    entries = int(((fast.shift(1) < slow.shift(1)) & (fast > slow)).iloc[:-1].sum())  # each one skipped when flat
    assert skipped["total_trades"] == 0 and skipped["skipped_orders"]["by_reason"] == {"min_cost": entries}
    assert fine["rules"]["granularity"] == 0.1
    assert any(abs(t["size"] / 0.5 - round(t["size"] / 0.5)) > 1e-6 for t in fine["trades"])
