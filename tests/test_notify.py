"""Notifications: Telegram and webhooks that tell a person what the daemon does, without ever getting in its way.

Real parts only: local fakes of Telegram's Bot API and of a webhook receiver (tests/fakes/telegram.py) on
127.0.0.1, httpx, SQLite ledgers, the `systrade` command as a subprocess against the fake Binance.
"""

from __future__ import annotations

import html
import os
import sqlite3
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from conftest import systrade_exe, tree
from fakes.binance import FakeBinance
from fakes.telegram import FakeTelegram, FakeWebhook
from paper_helpers import always_long, paper_config, sma_bot, stepped_candles

from systrade.live.commands import CommandListener
from systrade.live.ledger import Ledger
from systrade.live.notify import Notice, Notifier, TelegramTarget, WebhookTarget, split_text

TOKEN = "123456:ABC-fake-token-0123456789"


@pytest.fixture
def telegram():
    with FakeTelegram(token=TOKEN, chat_id="42", slow_seconds=0.2) as fake:
        yield fake


@pytest.fixture
def webhook():
    with FakeWebhook(slow_seconds=0.2) as fake:
        yield fake


def targets(telegram: FakeTelegram, webhook: FakeWebhook) -> list:
    return [TelegramTarget("42", telegram.url, TOKEN, timeout=2), WebhookTarget(f"{webhook.url}/hook",
                                                                                  {"X-Source": "systrade"}, timeout=2)]


def fill_notice(message: str = "bought 1 BTC/USDT @ 100, fee 0.1 USDT") -> Notice:
    return Notice("fill", message, "btc-bot", "BTC/USDT", "buy", 1.0, 100.0, 0.1, "USDT", -0.1, "USDT")


def test_a_message_is_escaped_and_split_as_telegram_takes_it(telegram: FakeTelegram) -> None:
    text = "<script>alert('x') & co</script>\n" + "\n".join(f"line {i}: price < 100 & fee > 0" for i in range(400))
    notifier = Notifier([TelegramTarget("42", telegram.url, TOKEN)], sleep=lambda s: None).start()
    notifier.publish(Notice("error", text, "bot-a"))
    assert notifier.flush(30)
    notifier.stop(1)
    pieces = [m.text for m in telegram.messages]
    assert len(pieces) > 1 and all(m.parse_mode == "HTML" for m in telegram.messages)  # the fake checked the HTML
    shown = html.unescape("\n".join(pieces))
    assert shown == f"<b>Error</b> · bot-a\n{text}"  # every character arrives, once, in order
    assert split_text("a" * 5000) == ["a" * 4096, "a" * 904]


def test_429_waits_retry_after_5xx_and_drops_are_retried_other_4xx_are_not(telegram, webhook, tmp_path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'paper.sqlite'}")
    pauses: list[float] = []
    telegram.fail("429", "/sendMessage", retry_after=7)
    telegram.fail("500", "/sendMessage")
    telegram.fail("drop", "/sendMessage")
    webhook.fail("400", "/hook")
    notifier = Notifier(targets(telegram, webhook), ledger=ledger, sleep=pauses.append).start()
    notifier.publish(fill_notice())
    assert notifier.flush(30)
    notifier.stop(1)
    assert len(telegram.messages) == 1  # delivered once, after three failures
    assert [r.fault for r in telegram.requests] == ["429", "500", "drop", None]
    assert pauses[0] == 7  # Telegram's retry_after, not our backoff
    assert [r.status for r in webhook.requests] == [400]  # a 400 is final: never retried
    rows = sqlite3.connect(tmp_path / "paper.sqlite").execute(
        "select target, sent is not null, error from notifications order by id").fetchall()
    assert rows[0] == ("telegram", 1, None)
    assert rows[1][0].startswith("webhook") and rows[1][1] == 1 and "400" in rows[1][2]  # given up, with why
    ledger.engine.dispose()


def test_what_a_stop_leaves_unsent_is_sent_at_the_next_start(webhook: FakeWebhook, tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'paper.sqlite'}")
    dead = WebhookTarget(f"http://127.0.0.1:{free_port()}/hook", {}, timeout=1)  # nobody listens: it retries
    dead.name = "webhook hook"
    notifier = Notifier([dead], ledger=ledger, sleep=lambda s: None, backoff=0.0).start()
    notifier.publish(fill_notice("bought 1 BTC/USDT"))
    notifier.stop(0.2)  # the daemon stops before the receiver is back
    alive = WebhookTarget(f"{webhook.url}/hook", {}, timeout=2)
    alive.name = "webhook hook"  # the same target, configured again at the next start
    again = Notifier([alive], ledger=ledger, sleep=lambda s: None).start()
    assert again.flush(30)
    again.stop(1)
    assert [d.body["message"] for d in webhook.received] == ["bought 1 BTC/USDT"]
    assert sqlite3.connect(tmp_path / "paper.sqlite").execute(
        "select count(*) from notifications where sent is null").fetchone() == (0,)
    ledger.engine.dispose()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_telegram_commands_obey_the_configured_chat_only(telegram: FakeTelegram, tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'paper.sqlite'}")
    ledger.ensure_account({"USDT": 1000.0})
    ledger.ensure_bot("btc-bot", "sma_cross", "binance", "BTC/USDT", "1h", 1000.0)
    target = TelegramTarget("42", telegram.url, TOKEN)
    notifier = Notifier([target], events=[], sleep=lambda s: None).start()  # no event is configured: replies still go
    listener = CommandListener(target, notifier, ledger)
    telegram.send_command("/halt btc-bot", chat_id="999")  # another chat: ignored
    telegram.send_command("/halt btc-bot")
    telegram.send_command("/status")
    assert listener.poll_once(timeout=0) == 2
    assert notifier.flush(30)
    notifier.stop(1)
    assert ledger.bot("btc-bot").halted and ledger.bot("btc-bot").halted_reason == "halted from Telegram"
    replies = [m.text for m in telegram.messages]
    assert "halted: btc-bot" in replies[0]
    assert "btc-bot: BTC/USDT position 0, equity 1,000.00 USDT, P&amp;L +0.00 (halted)" in replies[1]
    assert listener.poll_once(timeout=0) == 0  # confirmed: not answered twice
    ledger.engine.dispose()


# ---------------------------------------------------------------- the command line and the daemon


def notify_config(tmp_path: Path, exchange: FakeBinance, telegram: FakeTelegram, webhook: FakeWebhook) -> Path:
    folder = tmp_path / "strategies"
    folder.mkdir(exist_ok=True)
    bot = sma_bot(strategy=always_long(folder), params={}, size=1.0, size_type="amount")
    config = paper_config(tmp_path / "systrade.toml", exchange, [bot])
    with open(config, "a") as fh:
        fh.write(f'[notify.telegram]\nchat_id = "42"\napi_url = "{telegram.url}"\n'
                 f'[[notify.webhooks]]\nurl = "{webhook.url}/hook"\nheaders = {{ "X-Source" = "systrade" }}\n')
    return config


def cli(config: Path, *args: str, token: str | None = TOKEN) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SYSTRADE_TELEGRAM_TOKEN"}
    env.update({"SYSTRADE_CONFIG": str(config), "NO_PROXY": "127.0.0.1", "COLUMNS": "250"})
    if token:
        env["SYSTRADE_TELEGRAM_TOKEN"] = token
    return subprocess.run([systrade_exe(), *args], env=env, cwd=config.parent, capture_output=True, text=True,
                          timeout=180)


@pytest.fixture
def exchange():
    start = pd.Timestamp("2024-05-01", tz="UTC")
    candles = stepped_candles([100.0] * 40, start)
    fake = FakeBinance(clock_ms=int(candles.index[20].value // 1_000_000) + 30_000, spread_bps=0,
                       book_qty=1e6).start()
    fake.add_market("BTC/USDT", candles, tick_size=0.01, step_size=0.00001, min_qty=0.00001)
    fake.set_balances({"USDT": 10_000.0, "BTC": 0.0})
    with fake:
        yield fake


def test_notify_test_reports_each_target(tmp_path, exchange, telegram, webhook) -> None:
    config = notify_config(tmp_path, exchange, telegram, webhook)
    ok = cli(config, "notify", "test")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "telegram: sent" in ok.stdout and f"webhook {webhook.url}/hook: sent" in ok.stdout
    assert len(telegram.messages) == 1 and webhook.received[0].body["event"] == "test"
    assert webhook.received[0].headers["x-source"] == "systrade"
    webhook.fail("400", "/hook")
    failed = cli(config, "notify", "test")
    assert failed.returncode == 1 and f"webhook {webhook.url}/hook: FAILED" in failed.stdout
    assert "1 of 2 targets failed" in failed.stdout
    assert TOKEN not in ok.stdout + ok.stderr + failed.stdout + failed.stderr


def test_a_daemon_fill_sends_exactly_one_message_per_target(tmp_path, exchange, telegram, webhook) -> None:
    config = notify_config(tmp_path, exchange, telegram, webhook)
    run = cli(config, "paper", "run", "--once")
    assert run.returncode == 0, run.stderr
    assert len(telegram.messages) == 1 and len(webhook.received) == 1  # the fill; --once sends no start or stop
    body = webhook.received[0].body
    [(side, amount, price, fee, currency)] = sqlite3.connect(tmp_path / "paper.sqlite").execute(
        "select side, amount, price, fee, fee_currency from fills").fetchall()
    assert (body["event"], body["bot"], body["symbol"]) == ("fill", "btc-sma", "BTC/USDT")
    assert (body["side"], body["amount"], body["price"], body["fee"], body["fee_currency"]) == (
        side, amount, price, fee, currency)
    assert body["pnl"] == pytest.approx(-fee)  # bought at the price it is valued at: the fee is the loss
    assert "bought 1 BTC/USDT" in html.unescape(telegram.messages[0].text)
    again = cli(config, "paper", "run", "--once")  # the same candle: nothing new, nothing sent
    assert again.returncode == 0 and len(telegram.messages) == 1
    texts = [run.stdout, run.stderr, again.stderr] + [(tmp_path / name).read_bytes().decode("utf-8", "replace")
                                                      for name in tree(tmp_path)]
    assert not any(TOKEN in text for text in texts)  # not in the ledger, the queue, the logs


def test_telegram_without_its_token_is_refused_before_anything_is_written(tmp_path, exchange, telegram,
                                                                          webhook) -> None:
    config = notify_config(tmp_path, exchange, telegram, webhook)
    before = tree(tmp_path)
    run = cli(config, "paper", "run", "--once", token=None)
    assert run.returncode == 2 and "SYSTRADE_TELEGRAM_TOKEN" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and tree(tmp_path) == before


def test_paper_halt_and_resume_from_the_command_line_are_announced_once_per_target(tmp_path, exchange, telegram,
                                                                                   webhook) -> None:
    config = notify_config(tmp_path, exchange, telegram, webhook)
    assert cli(config, "paper", "run", "--once").returncode == 0  # the ledger, with the bot and one fill message
    halted = cli(config, "paper", "halt", "btc-sma")
    assert halted.returncode == 0, halted.stdout + halted.stderr
    resumed = cli(config, "paper", "resume", "btc-sma")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    events = [(r.body["event"], r.body["bot"]) for r in webhook.received]
    assert events == [("fill", "btc-sma"), ("halt", "btc-sma"), ("resume", "btc-sma")]
    texts = [html.unescape(m.text) for m in telegram.messages]
    assert len(texts) == 3 and "halted" in texts[1] and "btc-sma" in texts[1] and "resumed" in texts[2]
    unsent = sqlite3.connect(tmp_path / "paper.sqlite").execute(
        "select count(*) from notifications where sent is null").fetchone()[0]
    assert unsent == 0


def test_a_halt_without_the_telegram_token_still_halts_and_leaves_the_message_for_the_daemon(
        tmp_path, exchange, telegram, webhook) -> None:
    config = notify_config(tmp_path, exchange, telegram, webhook)
    assert cli(config, "paper", "run", "--once").returncode == 0
    halted = cli(config, "paper", "halt", "btc-sma", token=None)
    assert halted.returncode == 0, halted.stdout + halted.stderr
    assert "SYSTRADE_TELEGRAM_TOKEN" in halted.stdout + halted.stderr  # says why Telegram was not told
    assert [r.body["event"] for r in webhook.received] == ["fill", "halt"]  # the webhook needs no token
    assert len(telegram.messages) == 1
    rows = sqlite3.connect(tmp_path / "paper.sqlite").execute(
        "select target, event from notifications where sent is null").fetchall()
    assert rows == [("telegram", "halt")]  # the next daemon start sends it
    assert cli(config, "paper", "run", "--once").returncode == 0
    assert len(telegram.messages) == 2 and "btc-sma halted" in html.unescape(telegram.messages[1].text)


def until(probe, timeout: float = 30.0):
    """``probe()``'s first truthy answer, polled (a deadline, not a timing assertion)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = probe()
        if answer:
            return answer
        time.sleep(0.01)
    raise AssertionError("condition not reached in time")


def test_a_slow_target_never_holds_up_the_publisher(telegram: FakeTelegram, tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.sqlite'}")
    notifier = Notifier([TelegramTarget("42", telegram.url, TOKEN, timeout=1)], ledger=ledger, backoff=0.1).start()
    telegram.fail("slow", "/bot", slow_seconds=4)
    notifier.publish(fill_notice())  # returns at once: the request is sent by the worker
    first = until(lambda: telegram.requests[0] if telegram.requests else None)
    assert first.fault == "slow" and first.status is None  # still unanswered while the publisher has moved on
    assert notifier.flush(30)
    sent = [r for r in telegram.requests if r.path.endswith("/sendMessage")]
    assert [r.fault for r in sent[:2]] == ["slow", None] and sent[1].status == 200  # timed out, retried, delivered
    assert ledger.unsent_notifications() == []
    notifier.stop()
