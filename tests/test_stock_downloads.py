"""`systrade data download` / `data update` from the stock brokers (alpaca, kis), end to end: the real `systrade`
command as a subprocess against the local fakes (tests/fakes/alpaca.py, tests/fakes/kis.py) on 127.0.0.1.

Dates are real sessions of the markets' calendars (XNYS for alpaca, XKRX for kis), so nothing is dropped as
off-session by accident; the pages are small so a few dozen bars go through several of them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from systrade.data import calendars
from systrade.data.store import SeriesKey, read_series
from tests.conftest import tree
from tests.fakes.alpaca import FakeAlpaca
from tests.fakes.kis import QUOTES, FakeKis

BARS = "/v2/stocks/bars"
CHART = QUOTES + "inquire-daily-itemchartprice"
TOKEN = "/oauth2/tokenP"
KRX = "005930"
UTC = "UTC"


def sessions(calendar: str, start: str, end: str) -> pd.DatetimeIndex:
    """The session dates (00:00 UTC) of ``calendar`` from ``start`` to ``end`` inclusive."""
    return calendars.bar_opens(calendar, "1d", pd.Timestamp(start, tz=UTC), pd.Timestamp(end, tz=UTC))


def ohlcv(index: pd.DatetimeIndex, seed: int, base: float = 100.0, step: float = 0.25) -> pd.DataFrame:
    """Candles on ``index`` whose prices are multiples of ``step`` (exact in JSON and after halving)."""
    rng = np.random.default_rng(seed)
    close = base + step * np.cumsum(rng.integers(-8, 9, len(index)))
    frame = pd.DataFrame({"open": close - step, "high": close + 4 * step, "low": close - 4 * step, "close": close,
                          "volume": rng.integers(1_000, 9_000, len(index)).astype(float)}, index=index, dtype=float)
    frame.index = pd.DatetimeIndex(frame.index, name="time").as_unit("ns")
    return frame


def after_close(fake: FakeAlpaca, day: pd.Timestamp) -> None:
    """The fake's clock after the close of session ``day`` (so its bar is closed), the market shut."""
    following = calendars.bar_opens("XNYS", "1d", day + pd.Timedelta(days=1), day + pd.Timedelta(days=10))[0]
    fake.set_clock(day + pd.Timedelta(hours=21, minutes=30), is_open=False,
                   next_open=following + pd.Timedelta(hours=14, minutes=30),
                   next_close=following + pd.Timedelta(hours=21))


class PagedFaultAlpaca(FakeAlpaca):
    """FakeAlpaca whose n-th bars request (counted from ``plan_faults``) fails with the kind planned for n, so
    each fault lands on its own page."""

    def plan_faults(self, plan: dict[int, str]) -> None:
        with self._lock:
            self._plan, self._seen = dict(plan), 0

    def _take_fault(self, method: str, path: str) -> str | None:
        if path == BARS and getattr(self, "_plan", None):
            with self._lock:
                self._seen += 1
                kind = self._plan.pop(self._seen, None)
            if kind:
                return kind
        return super()._take_fault(method, path)


def stored(workdir: Path, venue: str, symbol: str, timeframe: str) -> pd.DataFrame:
    return pd.read_parquet(workdir / "data" / venue / f"{symbol}-{timeframe}.parquet")


def adjustment_of(workdir: Path, venue: str, symbol: str, timeframe: str) -> str | None:
    return read_series(SeriesKey(venue, symbol, timeframe), workdir / "data").attrs.get("adjustment")


def error_line(stderr: str) -> str:
    """The one error line of a failed command (besides it only the progress bar of the symbol asked for)."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, stderr
    assert all(line in errors or line.rstrip().endswith("0/? candles") for line in lines), stderr
    return errors[0]


def assert_same(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    expected = expected.copy()
    expected.index = pd.DatetimeIndex(expected.index, name="time").as_unit("ns")
    got = got.copy()
    got.index = pd.DatetimeIndex(got.index).as_unit("ns")
    pd.testing.assert_frame_equal(got[list(expected.columns)], expected, check_freq=False)
    assert str(got.index.tz) == UTC


class Cli:
    """Runs `systrade` in the workdir against the fakes and keeps every output for the secrets check."""

    def __init__(self, run_cli, workdir: Path, alpaca: FakeAlpaca, kis: FakeKis, cache: Path) -> None:
        self.run_cli, self.workdir, self.alpaca, self.kis, self.cache = run_cli, workdir, alpaca, kis, cache
        self.outputs: list[str] = []
        self.env = {"SYSTRADE_ALPACA_API_KEY": alpaca.api_key, "SYSTRADE_ALPACA_SECRET": alpaca.secret,
                    "SYSTRADE_KIS_APP_KEY": kis.app_key, "SYSTRADE_KIS_APP_SECRET": kis.app_secret,
                    "SYSTRADE_KIS_ACCOUNT": kis.account, "XDG_CACHE_HOME": str(cache),
                    "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}

    def __call__(self, *args: str, code: int = 0, env: dict | None = None):
        proc = self.run_cli(*args, env={**self.env, **(env or {})})
        self.outputs += [proc.stdout, proc.stderr]
        assert proc.returncode == code, f"systrade {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return proc

    def secrets(self) -> list[str]:
        return [self.alpaca.api_key, self.alpaca.secret, self.kis.app_key, self.kis.app_secret, self.kis.account,
                self.kis.cano, *self.kis.tokens]

    def assert_no_secrets(self) -> None:
        """No key, secret, account number or token in any output or in any file under the workdir (the KIS token
        cache, XDG_CACHE_HOME, is where the token belongs: it is left out)."""
        secrets = self.secrets()
        for text in self.outputs:
            for secret in secrets:
                assert secret not in text, "a secret was printed"
        files = [p for p in self.workdir.rglob("*") if p.is_file() and self.cache not in p.parents]
        assert any(p.suffix == ".parquet" for p in files) or not (self.workdir / "data").exists()
        for path in files:
            data = path.read_bytes()
            for secret in secrets:
                assert secret.encode() not in data, f"a secret is in {path}"


@pytest.fixture
def alpaca_fake():
    with PagedFaultAlpaca(page_limit=25) as fake:
        fake.add_asset("AAPL")
        fake.add_asset("MSFT")
        yield fake


@pytest.fixture
def kis_fake():
    with FakeKis() as fake:
        yield fake


@pytest.fixture
def cli(run_cli, workdir, alpaca_fake, kis_fake, tmp_path):
    with (workdir / "systrade.toml").open("a") as config:
        config.write(f'[brokers.alpaca]\ntrading_url = "{alpaca_fake.url}"\ndata_url = "{alpaca_fake.url}"\n'
                     f'timeout = 5\n[brokers.kis]\nurl = "{kis_fake.url}"\nmin_interval_seconds = 0\ntimeout = 5\n'
                     "[network]\nretries = 3\nbackoff_seconds = 0\nrate_limit_backoff_seconds = 0\n")
    cache = tmp_path / "xdg-cache"
    cache.mkdir()
    return Cli(run_cli, workdir, alpaca_fake, kis_fake, cache)


# ------------------------------------------------------------------ alpaca


def test_alpaca_daily_pages_faults_incremental_and_readjusted_history(cli, workdir):
    fake = cli.alpaca
    days = sessions("XNYS", "2024-01-02", "2024-04-30")
    frame = ohlcv(days, seed=1)
    fake.set_bars("AAPL", "1d", frame)
    after_close(fake, days[59])  # 60 closed sessions: pages of 25, 25, 10
    fake.plan_faults({1: "500", 3: "429", 5: "drop"})  # one fault on each page

    cli("data", "download", "alpaca", "AAPL", "--timeframe", "1d", "--since", "2024-01-02")
    first = stored(workdir, "alpaca", "AAPL", "1d")
    assert_same(first, frame.iloc[:60])
    assert (first.index == first.index.normalize()).all()
    assert adjustment_of(workdir, "alpaca", "AAPL", "1d") == "all"
    bars = fake.requests_to(BARS)
    assert [r.params.get("page_token") for r in bars] == [None, None, "25", "25", "50", "50"]
    assert [r.fault for r in bars] == ["500", None, "429", None, "drop", None]
    assert all(r.params["feed"] == "iex" and r.params["adjustment"] == "all" for r in bars)
    assert all(r.params["timeframe"] == "1Day" and r.params["symbols"] == "AAPL" for r in bars)

    # incremental: five more sessions (across Good Friday); only they are added, from the last stored one on
    after_close(fake, days[64])
    seen = len(fake.requests_to(BARS))
    proc = cli("data", "download", "alpaca", "AAPL", "--timeframe", "1d", "--since", "2024-01-02")
    assert "+5 candles" in proc.stdout + proc.stderr
    second = stored(workdir, "alpaca", "AAPL", "1d")
    assert len(second) == 65
    assert_same(second.iloc[:60], first)  # the older sessions unchanged
    assert_same(second, frame.iloc[:65])
    again = fake.requests_to(BARS)[seen:]
    assert again and {r.params["start"] for r in again} == {"2024-03-27T00:00:00Z"}  # days[59]
    assert all(r.params["adjustment"] == "all" for r in again)

    # a 2:1 split re-adjusts every stored session, and one session more: the whole new history is stored
    split = frame.copy()
    split[["open", "high", "low", "close"]] /= 2
    split["volume"] *= 2
    fake.set_bars("AAPL", "1d", split)
    after_close(fake, days[65])
    seen = len(fake.requests_to(BARS))
    cli("data", "download", "alpaca", "AAPL", "--timeframe", "1d", "--since", "2024-01-02")
    third = stored(workdir, "alpaca", "AAPL", "1d")
    assert_same(third, split.iloc[:66])
    assert adjustment_of(workdir, "alpaca", "AAPL", "1d") == "all"
    assert "2024-01-02T00:00:00Z" in {r.params["start"] for r in fake.requests_to(BARS)[seen:]}  # refetched all
    cli.assert_no_secrets()


def test_alpaca_raw_adjustment_recorded_and_a_mismatch_refused(cli, workdir):
    fake = cli.alpaca
    days = sessions("XNYS", "2024-02-01", "2024-02-29")
    fake.set_bars("MSFT", "1d", ohlcv(days, seed=2, base=400.0))
    fake.set_bars("AAPL", "1d", ohlcv(days, seed=3))
    after_close(fake, days[-1])

    cli("data", "download", "alpaca", "MSFT", "--timeframe", "1d", "--since", "2024-02-01", "--adjustment", "raw")
    assert adjustment_of(workdir, "alpaca", "MSFT", "1d") == "raw"
    assert len(stored(workdir, "alpaca", "MSFT", "1d")) == len(days)
    bars = fake.requests_to(BARS)
    assert bars and all(r.params["adjustment"] == "raw" and r.params["symbols"] == "MSFT" for r in bars)

    cli("data", "download", "alpaca", "AAPL", "--timeframe", "1d", "--since", "2024-02-01")
    assert adjustment_of(workdir, "alpaca", "AAPL", "1d") == "all"
    data = workdir / "data"
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in data.rglob("*") if p.is_file()}
    seen = len(fake.requests_to(BARS))
    proc = cli("data", "download", "alpaca", "AAPL", "--timeframe", "1d", "--since", "2024-02-01",
               "--adjustment", "raw", code=2)
    line = error_line(proc.stderr)
    path = data / "alpaca" / "AAPL-1d.parquet"
    assert str(path) in line and "holds all prices" in line and "--adjustment raw" in line
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in data.rglob("*") if p.is_file()} == before
    assert len(fake.requests_to(BARS)) == seen  # refused before asking for bars
    cli.assert_no_secrets()


def test_alpaca_intraday_stores_only_session_bars(cli, workdir):
    fake = cli.alpaca
    days = sessions("XNYS", "2024-03-05", "2024-03-07")
    hours = pd.DatetimeIndex([
        (day.tz_localize(None) + pd.Timedelta(hours=h)).tz_localize("America/New_York").tz_convert(UTC)
        for day in days for h in range(8, 21)])  # 08:00 pre-market .. 20:00 after hours, New York
    frame = ohlcv(hours, seed=4)
    fake.set_bars("AAPL", "1h", frame)
    fake.set_clock("2024-03-08T03:00:00Z", is_open=False, next_open="2024-03-08T14:30:00Z",
                   next_close="2024-03-08T21:00:00Z")

    cli("data", "download", "alpaca", "AAPL", "--timeframe", "1h", "--since", "2024-03-05")
    got = stored(workdir, "alpaca", "AAPL", "1h")
    expected_index = calendars.bar_opens("XNYS", "1h", pd.Timestamp("2024-03-05", tz=UTC),
                                         pd.Timestamp("2024-03-08", tz=UTC))
    assert len(expected_index) == 3 * 7  # 09:00 .. 15:00 New York
    assert list(got.index) == list(expected_index)
    assert_same(got, frame.loc[expected_index])
    local = got.index.tz_convert("America/New_York")
    assert local.hour.min() == 9 and local.hour.max() == 15  # no 08:00, no 16:00 .. 20:00
    assert all(r.params["timeframe"] == "1Hour" for r in fake.requests_to(BARS))
    cli.assert_no_secrets()


def test_missing_alpaca_key_is_one_line_and_writes_nothing(cli, workdir, monkeypatch):
    monkeypatch.delenv("SYSTRADE_ALPACA_API_KEY", raising=False)
    cli.env.pop("SYSTRADE_ALPACA_API_KEY")
    proc = cli("data", "download", "alpaca", "AAPL", "--timeframe", "1d", "--since", "2024-02-01", code=2)
    line = error_line(proc.stderr)
    assert "SYSTRADE_ALPACA_API_KEY" in line and "SYSTRADE_ALPACA_SECRET" in line
    assert not (workdir / "data").exists() or not tree(workdir / "data")
    assert not cli.alpaca.requests_to(BARS)
    cli.assert_no_secrets()


# ------------------------------------------------------------------ kis


def krx_frames(days: pd.DatetimeIndex, split_at: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Raw KRX candles (whole won, even) and their adjusted history after a 2:1 split at ``split_at``."""
    raw = ohlcv(days, seed=5, base=70_000.0, step=200.0)
    adjusted = raw.copy()
    adjusted.iloc[:split_at, :4] /= 2
    adjusted.iloc[:split_at, 4] *= 2
    return raw, adjusted


def test_kis_daily_backward_pages_with_faults_timeframe_and_token_reuse(cli, workdir):
    fake = cli.kis
    days = sessions("XKRX", "2024-01-02", "2024-12-30")
    assert len(days) == 244  # three backward pages: 100, 100, 44
    raw, adjusted = krx_frames(days, split_at=120)
    fake.add_stock(KRX, raw, adjusted)
    fake.fail(CHART, "500")  # page 1
    fake.fail(CHART, "429", skip=1)  # page 2
    fake.fail(CHART, "drop", skip=1)  # page 3

    cli("data", "download", "kis", KRX, "--timeframe", "1d", "--since", "2024-01-02")
    assert_same(stored(workdir, "kis", KRX, "1d"), adjusted)
    assert adjustment_of(workdir, "kis", KRX, "1d") == "all"
    chart = [r for r in fake.requests if r.path == CHART]
    assert [r.fault for r in chart] == ["500", None, "429", None, "drop", None]
    served = [r.params["FID_INPUT_DATE_2"] for r in chart if r.fault is None]
    assert served[1:] == [(days[-100] - pd.Timedelta(days=1)).strftime("%Y%m%d"),
                          (days[-200] - pd.Timedelta(days=1)).strftime("%Y%m%d")]
    assert all(r.params["FID_ORG_ADJ_PRC"] == "0" and r.params["FID_INPUT_DATE_1"] == "20240102" for r in chart)

    proc = cli("data", "download", "kis", KRX, "--timeframe", "1h", "--since", "2024-01-02", code=2)
    assert "kis serves daily history only" in error_line(proc.stderr)

    proc = cli("data", "download", "kis", KRX, "--timeframe", "1d", "--since", "2024-01-02")  # nothing new
    assert "+0 candles" in proc.stdout + proc.stderr
    assert_same(stored(workdir, "kis", KRX, "1d"), adjusted)
    assert fake.token_issues == 1 and fake.token_refusals == 0 and fake.count(TOKEN) == 1  # cached on disk
    assert list((cli.cache / "systrade").glob("kis-token-*.json"))
    cli.assert_no_secrets()


# ------------------------------------------------------------------ update, validate, list


def test_update_brings_both_brokers_up_to_date_then_validate_and_list(cli, workdir):
    us = sessions("XNYS", "2024-02-01", "2024-03-28")
    us_frame = ohlcv(us, seed=6)
    cli.alpaca.set_bars("AAPL", "1d", us_frame)
    after_close(cli.alpaca, us[-4])
    kr = sessions("XKRX", "2024-10-01", "2024-12-30")
    raw, adjusted = krx_frames(kr, split_at=10)
    cli.kis.add_stock(KRX, raw.iloc[:-3], adjusted.iloc[:-3])

    cli("data", "download", "alpaca", "AAPL", "--timeframe", "1d", "--since", "2024-02-01")
    cli("data", "download", "kis", KRX, "--timeframe", "1d", "--since", "2024-10-01", "--adjustment", "raw")
    assert_same(stored(workdir, "alpaca", "AAPL", "1d"), us_frame.iloc[:-3])
    assert_same(stored(workdir, "kis", KRX, "1d"), raw.iloc[:-3])

    after_close(cli.alpaca, us[-1])  # three sessions more on each market
    cli.kis.add_stock(KRX, raw, adjusted)
    bars_seen, chart_seen = len(cli.alpaca.requests_to(BARS)), cli.kis.count(CHART)
    cli("data", "update")
    assert_same(stored(workdir, "alpaca", "AAPL", "1d"), us_frame)
    assert_same(stored(workdir, "kis", KRX, "1d"), raw)
    assert adjustment_of(workdir, "alpaca", "AAPL", "1d") == "all"
    assert adjustment_of(workdir, "kis", KRX, "1d") == "raw"
    bars = cli.alpaca.requests_to(BARS)[bars_seen:]
    assert bars and all(r.params["adjustment"] == "all" for r in bars)
    chart = [r for r in cli.kis.requests if r.path == CHART][chart_seen:]
    assert chart and all(r.params["FID_ORG_ADJ_PRC"] == "1" for r in chart)

    cli("data", "validate")
    cli("data", "list", "--json", "out.json")
    rows = {(row["exchange"], row["symbol"]): row for row in json.loads((workdir / "out.json").read_text())}
    assert rows[("alpaca", "AAPL")]["calendar"] == "XNYS" and rows[("alpaca", "AAPL")]["gaps"] == 0
    assert rows[("kis", KRX)]["calendar"] == "XKRX" and rows[("kis", KRX)]["gaps"] == 0
    assert rows[("alpaca", "AAPL")]["rows"] == len(us) and rows[("kis", KRX)]["rows"] == len(kr)
    markets = {p.name for p in (workdir / "data").rglob("*.market.json")}
    assert markets == {"AAPL.market.json", f"{KRX}.market.json"}
    cli.assert_no_secrets()
