"""`systrade web`: the JSON API and its guards, against a ledger written by real `systrade paper run --once` ticks on
the fake Binance, with `systrade web` running as a real subprocess on a loopback port."""

from __future__ import annotations

import csv
import hashlib
import io
import os
from pathlib import Path

import httpx
import pandas as pd
import pytest
from fakes.telegram import FakeWebhook
from web_helpers import TOKEN, PaperSite, free_port, paper_site


@pytest.fixture(scope="module")
def webhook():
    with FakeWebhook().start() as hook:
        yield hook


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, webhook: FakeWebhook):
    site = paper_site(tmp_path_factory.mktemp("web"), ticks=3,
                      extra_config=f'[[notify.webhooks]]\nurl = "{webhook.url}/hook"\n')
    yield site
    site.close()


@pytest.fixture(scope="module")
def url(site: PaperSite) -> str:
    return site.serve(TOKEN)


def ledger_state(site: PaperSite) -> tuple:
    """The ledger file's bytes, its modification time and its write-ahead log's bytes."""
    wal = site.ledger.with_name(site.ledger.name + "-wal")
    return (hashlib.sha256(site.ledger.read_bytes()).hexdigest(), os.stat(site.ledger).st_mtime_ns,
            hashlib.sha256(wal.read_bytes()).hexdigest() if wal.exists() else None)


def test_status_and_trades_are_what_paper_status_and_trades_print(site: PaperSite, url: str) -> None:
    assert httpx.get(url + "/api/status").json() == site.json_of("paper", "status")
    printed = site.json_of("paper", "trades")
    assert len(printed) == 4  # btc-flip bought, sold, bought; btc-long bought once
    assert httpx.get(url + "/api/trades").json() == printed[::-1]  # newest first


def test_trades_page_by_limit_and_time_cursor_and_filter(site: PaperSite, url: str) -> None:
    newest_first = site.json_of("paper", "trades")[::-1]
    first = httpx.get(url + "/api/trades", params={"limit": 2}).json()
    assert first == newest_first[:2]
    second = httpx.get(url + "/api/trades", params={"limit": 2, "before": first[-1]["time"]}).json()
    assert second == newest_first[2:4]
    assert httpx.get(url + "/api/trades", params={"before": second[-1]["time"]}).json() == []
    sells = httpx.get(url + "/api/trades", params={"bot": "btc-flip", "side": "sell"}).json()
    assert [(t["bot"], t["side"]) for t in sells] == [("btc-flip", "sell")]
    table = list(csv.DictReader(io.StringIO(httpx.get(url + "/api/trades.csv", params={"bot": "btc-flip"}).text)))
    assert [(r["side"], float(r["price"]), r["client_order_id"]) for r in table] == [
        (t["side"], t["price"], t["client_order_id"]) for t in newest_first if t["bot"] == "btc-flip"]
    for bad in ({"before": "yesterday"}, {"before": "2024-05-01T00:00:00"}, {"limit": 0}):
        refused = httpx.get(url + "/api/trades", params=bad)
        assert refused.status_code == 400 and refused.json()["error"]


def test_events_newest_first_by_id_cursor(url: str) -> None:
    every = httpx.get(url + "/api/events").json()
    assert every and [e["id"] for e in every] == sorted((e["id"] for e in every), reverse=True)
    assert httpx.get(url + "/api/events", params={"limit": 1, "before": every[0]["id"]}).json() == every[1:2]
    assert any(e["kind"] == "account" for e in every)


def test_a_bots_candles_fills_and_equity(site: PaperSite, url: str) -> None:
    document = httpx.get(url + "/api/bots/btc-flip/candles", params={"limit": 30}).json()
    stored = site.candles[site.candles.index <= pd.Timestamp(site.fake.now_ms - 60_000, unit="ms", tz="UTC")]
    assert len(document["candles"]) == 30 and document["candles"][-1]["time"] == stored.index[-1].isoformat()
    bar = document["candles"][10]
    known = stored.loc[pd.Timestamp(bar["time"])]
    assert [bar[k] for k in ("open", "high", "low", "close")] == [known[k] for k in ("open", "high", "low", "close")]
    assert [d["type"] for d in document["figure"]["data"]].count("candlestick") == 1
    assert document["signals"]["entries"] and document["signals"]["exits"]  # the strategy's signals on these bars
    assert all(pd.Timestamp(t).minute % 2 == 0 for t in document["signals"]["entries"])
    fills = [t for t in site.json_of("paper", "trades") if t["bot"] == "btc-flip"]
    assert [(f["side"], f["price"]) for f in document["fills"]] == [(t["side"], t["price"]) for t in fills]
    buy, sell = fills[0], fills[1]
    closed = document["trades"][0]
    assert closed["status"] == "closed" and closed["pnl"] == pytest.approx(
        (sell["price"] - buy["price"]) * buy["amount"] - buy["fee_quote"] - sell["fee_quote"])
    assert document["trades"][1]["status"] == "open" and document["trades"][1]["exit_time"] is None

    # The last stored bar (00:52) closed after the sell and before the second buy (at 00:53's open): flat again,
    # the bot holds its capital plus the closed trade's P&L; before its first fill it held its capital.
    equity = httpx.get(url + "/api/bots/btc-flip/equity", params={"limit": 60}).json()
    bot = next(b for b in site.json_of("paper", "status")["bots"] if b["name"] == "btc-flip")
    assert pd.Timestamp(equity["time"][-1]) == stored.index[-1] == pd.Timestamp(sell["bar_time"]) + pd.Timedelta("1min")
    assert equity["equity"][-1] == pytest.approx(bot["capital"] + closed["pnl"])
    at = equity["time"].index(buy["bar_time"])  # its signal's bar: filled at the next bar's open
    assert equity["equity"][at] == pytest.approx(bot["capital"])
    held = 1 + at  # the bar it was bought at: worth its close less the price paid and the fee
    assert equity["equity"][held] == pytest.approx(
        bot["capital"] + (stored.loc[pd.Timestamp(equity["time"][held]), "close"] - buy["price"]) - buy["fee_quote"])
    peak = max(equity["equity"][: at + 2])
    assert equity["drawdown"][at + 1] == pytest.approx(equity["equity"][at + 1] / peak - 1)


def test_account_equity_is_its_bots_and_its_unallocated_cash(site: PaperSite, url: str) -> None:
    document = httpx.get(url + "/api/equity").json()
    trades = site.json_of("paper", "trades")
    stored = site.candles[site.candles.index <= pd.Timestamp(site.fake.now_ms - 60_000, unit="ms", tz="UTC")]
    flip_buy, flip_sell, long_buy = trades[0], trades[2], trades[1]
    assert (flip_buy["bot"], flip_sell["bot"], long_buy["bot"]) == ("btc-flip", "btc-flip", "btc-long")
    last_close = stored["close"].iloc[-1]  # the 00:52 bar: btc-flip flat, btc-long holding what it bought at 00:51
    flip = (flip_sell["price"] - flip_buy["price"]) * flip_buy["amount"] - flip_buy["fee_quote"]
    flip -= flip_sell["fee_quote"]
    held = (last_close - long_buy["price"]) * long_buy["amount"] - long_buy["fee_quote"]
    expected = 10_000.0 + flip + held
    assert document["time"][-1] == stored.index[-1].isoformat()
    assert document["equity"][-1] == pytest.approx(expected)
    assert set(document["bots"]) == {"btc-flip", "btc-long"}


def test_without_stored_candles_the_page_says_how_to_store_them(site: PaperSite, url: str) -> None:
    stored = site.folder / "data" / "binance" / "BTC_USDT-1m.parquet"
    aside = stored.with_name("aside.parquet")
    stored.rename(aside)
    try:
        document = httpx.get(url + "/api/bots/btc-long/candles").json()
    finally:
        aside.rename(stored)
    assert document["candles"] == [] and document["figure"] is None
    assert "systrade data download binance BTC/USDT --timeframe 1m --since" in document["note"]
    assert [f["price"] for f in document["fills"]] == [
        t["price"] for t in site.json_of("paper", "trades") if t["bot"] == "btc-long"]


def test_unknown_bot_is_a_404_naming_it(url: str) -> None:
    for answer in (httpx.get(url + "/api/bots/ghost/candles"), httpx.get(url + "/api/bots/ghost/equity"),
                   httpx.post(url + "/api/bots/ghost/halt", headers={"Authorization": f"Bearer {TOKEN}"})):
        assert answer.status_code == 404
        assert "unknown bot 'ghost'" in answer.json()["error"] and "btc-flip" in answer.json()["error"]
    assert httpx.get(url + "/bots/ghost").status_code == 404


def test_reading_never_writes_the_ledger(site: PaperSite, url: str) -> None:
    before = ledger_state(site)
    for path in ("/", "/trades", "/events", "/bots/btc-flip", "/api/status", "/api/trades", "/api/trades.csv",
                 "/api/events", "/api/ticks", "/api/equity", "/api/bots/btc-flip/candles", "/api/bots/btc-long/equity"):
        assert httpx.get(url + path).status_code == 200, path
    assert ledger_state(site) == before


def test_halt_and_resume_need_the_token_and_write_as_paper_halt(site: PaperSite, url: str,
                                                               webhook: FakeWebhook) -> None:
    before = ledger_state(site)
    for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": TOKEN},
                    {"Authorization": f"Basic {TOKEN}"}):
        refused = httpx.post(url + "/api/bots/btc-flip/halt", headers=headers)
        assert refused.status_code == 401 and "SYSTRADE_WEB_TOKEN" in refused.json()["error"]
    assert ledger_state(site) == before  # a refused action writes nothing
    done = httpx.post(url + "/api/bots/btc-flip/halt", headers={"Authorization": f"Bearer {TOKEN}"})
    assert done.status_code == 200 and done.json() == {"halted": ["btc-flip"], "warnings": []}
    bots = {b["name"]: b for b in site.json_of("paper", "status")["bots"]}
    assert bots["btc-flip"]["halted"] and not bots["btc-long"]["halted"]
    announced = [d.body for d in webhook.received if d.body.get("event") == "halt"]
    assert [(a["bot"], a["event"]) for a in announced] == [("btc-flip", "halt")]  # told, as `paper halt` tells
    via_web = bots["btc-flip"]["halted_reason"]
    assert site.cli("paper", "halt", "btc-long").returncode == 0  # the command line's halt writes the same
    assert {b["name"]: b["halted_reason"] for b in site.json_of("paper", "status")["bots"]} == {
        "btc-flip": via_web, "btc-long": via_web}
    kinds = [(e["bot"], e["kind"], e["message"]) for e in httpx.get(url + "/api/events", params={"limit": 2}).json()]
    assert kinds == [("btc-long", "halt", via_web), ("btc-flip", "halt", via_web)]
    announced = [d.body for d in webhook.received if d.body.get("event") == "halt"]
    assert announced[1]["message"].replace("btc-long", "btc-flip") == announced[0]["message"]
    assert httpx.post(url + "/api/bots/btc-flip/resume", headers={"Authorization": f"Bearer {TOKEN}"}).json() == {
        "resumed": ["btc-flip"], "warnings": []}
    assert site.cli("paper", "resume", "btc-long").returncode == 0
    assert not any(b["halted"] for b in site.json_of("paper", "status")["bots"])


def test_without_the_token_the_dashboard_is_read_only(site: PaperSite) -> None:
    url = site.serve(token=None)
    refused = httpx.post(url + "/api/bots/btc-flip/halt", headers={"Authorization": f"Bearer {TOKEN}"})
    assert refused.status_code == 401 and "SYSTRADE_WEB_TOKEN" in refused.json()["error"]
    assert not any(b["halted"] for b in site.json_of("paper", "status")["bots"])
    assert httpx.get(url + "/api/status").status_code == 200


def test_pages_load_nothing_from_the_internet(url: str) -> None:
    from plotly.offline import get_plotlyjs

    for path in ("/", "/trades", "/events", "/bots/btc-flip"):
        text = httpx.get(url + path).text
        assert "http://" not in text and "https://" not in text, path
    assert httpx.get(url + "/plotly.js").text == get_plotlyjs()
    assert httpx.get(url + "/", headers={"Host": "attacker.example"}).status_code == 400  # DNS rebinding


def test_a_new_tick_is_served_without_a_restart(site: PaperSite, url: str) -> None:
    count = len(httpx.get(url + "/api/trades").json())
    site.tick()
    trades = httpx.get(url + "/api/trades").json()
    assert len(trades) == count + 1 and trades == site.json_of("paper", "trades")[::-1]
    ticks = httpx.get(url + "/api/ticks").json()
    assert ticks["btc-flip"]["bar_time"] == pd.Timestamp(site.fake.now_ms - 60_000, unit="ms",
                                                         tz="UTC").floor("min").isoformat()


def test_a_host_beyond_this_machine_needs_the_token(site: PaperSite) -> None:
    refused = site.cli("web", "--host", "0.0.0.0", "--port", str(free_port()))
    assert refused.returncode == 2
    assert "SYSTRADE_WEB_TOKEN" in refused.stderr and "Traceback" not in refused.stderr


def test_the_ledger_is_opened_read_only_wherever_it_lives(tmp_path: Path) -> None:
    from systrade.live.ledger import Ledger
    from systrade.web.ledger_view import open_read_only

    url = f"sqlite:///{tmp_path / 'my ledgers #1 100%' / 'paper.sqlite'}"
    writer = Ledger(url)
    writer.ensure_account({"USDT": 100.0})
    writer.ensure_bot("bot", "sma_cross", "binance", "BTC/USDT", "1h", 100.0)
    writer.engine.dispose()
    reader = open_read_only(url)
    assert [b.name for b in reader.bots()] == ["bot"]
    with pytest.raises(Exception, match="readonly|read-only"):
        reader.set_halted("bot", True)
    reader.engine.dispose()
    assert not Ledger(url, create=False).bot("bot").halted
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my ledgers #1 100%"]  # no stray file elsewhere


def test_a_port_in_use_is_refused_in_one_line(site: PaperSite) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        done = site.cli("web", "--port", str(taken.getsockname()[1]))
    assert done.returncode == 2 and "--port" in done.stderr and "Traceback" not in done.stderr


def test_a_missing_ledger_is_named(tmp_path: Path, site: PaperSite) -> None:
    config = tmp_path / "systrade.toml"
    missing = tmp_path / "nowhere" / "paper.sqlite"
    config.write_text(f'[paper]\ndatabase = "sqlite:///{missing}"\n')
    done = PaperSite(tmp_path, config, site.fake, site.candles).cli("web", "--port", str(free_port()))
    assert done.returncode == 2
    text = " ".join(done.stderr.split())
    assert str(missing) in text and "systrade paper run" in text
    assert not missing.parent.exists()
