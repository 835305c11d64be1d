"""Telling a person what the daemon does: Telegram messages and webhooks, never in the way of a tick.

``Notifier.publish`` only writes the message to the ledger (so a stop or a crash loses nothing) and puts it on a
queue; a worker thread sends it to every target with retries: Telegram's 429 waits its ``retry_after``, 5xx,
timeouts and dropped connections back off and try again, any other 4xx is final (logged, never retried). The next
start sends what is still unsent. The bot token comes from ``SYSTRADE_TELEGRAM_TOKEN`` only and is never written
to the ledger, the queue, a message or a log line (the Bot API's URLs contain it: every error text is redacted).
"""

from __future__ import annotations

import html
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from systrade.errors import UserError
from systrade.exchange import redact

log = logging.getLogger("systrade.notify")
EVENTS = ("fill", "rejected", "halt", "resume", "error", "start", "stop", "daily_summary")
TOKEN_ENV = "SYSTRADE_TELEGRAM_TOKEN"
TELEGRAM_LIMIT = 4096
ATTEMPTS = 6  # tries per message and target before it is left for the next start
MAX_BACKOFF = 60.0
TITLES = {"fill": "Fill", "rejected": "Order rejected", "halt": "Bot halted", "resume": "Bot resumed",
          "error": "Error", "start": "Daemon started", "stop": "Daemon stopped", "daily_summary": "Daily summary",
          "test": "Test message", "reply": "systrade"}
ALWAYS = ("test", "reply")  # sent whatever [notify] events says


@dataclass
class Notice:
    """One thing that happened, as a message says it (fields a webhook receives as JSON)."""

    event: str
    message: str
    bot: str | None = None
    symbol: str | None = None
    side: str | None = None
    amount: float | None = None
    price: float | None = None
    fee: float | None = None
    fee_currency: str | None = None
    pnl: float | None = None
    quote: str | None = None
    time: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class RetryLater(Exception):
    """The target may accept the message later (429, 5xx, a timeout, a dropped connection)."""

    def __init__(self, message: str, after: float | None = None) -> None:
        super().__init__(message)
        self.after = after


class Refused(Exception):
    """The target refused the message for good (another 4xx)."""


def telegram_text(notice: Notice) -> str:
    """The message a person reads on a phone (Telegram HTML, escaped)."""
    title = TITLES.get(notice.event, notice.event)
    head = f"<b>{html.escape(title)}</b>" + (f" · {html.escape(notice.bot)}" if notice.bot else "")
    return f"{head}\n{html.escape(notice.message)}"


def split_text(text: str, limit: int = TELEGRAM_LIMIT) -> list[str]:
    """``text`` in pieces of at most ``limit`` characters, cut at line ends where possible and never inside an
    HTML entity or tag."""
    pieces = []
    while len(text) > limit:
        cut = text.rfind("\n", 0, limit)
        if cut <= 0:
            cut = limit
            for opener in ("&", "<"):  # do not cut `&amp;` or `<b>` in two
                start = text.rfind(opener, 0, cut)
                closer = ";" if opener == "&" else ">"
                if start > 0 and text.find(closer, start) >= cut:
                    cut = start
        pieces.append(text[:cut])
        text = text[cut:].lstrip("\n")
    return pieces + ([text] if text else [])


def _classify(status: int, body: str, what: str) -> Exception | None:
    """None for success; ``RetryLater`` or ``Refused`` for a failed answer."""
    if 200 <= status < 300:
        return None
    if status == 429:
        after = None
        try:
            after = float(json.loads(body).get("parameters", {}).get("retry_after"))
        except (ValueError, TypeError, AttributeError):
            after = None
        return RetryLater(f"{what}: 429 too many requests", after)
    if status >= 500:
        return RetryLater(f"{what}: HTTP {status}")
    return Refused(f"{what}: HTTP {status} {body[:200]}")


class TelegramTarget:
    """Messages to one chat through the Bot API (``api_url`` reaches a local fake in tests)."""

    def __init__(self, chat_id: str, api_url: str, token: str, timeout: float = 10.0) -> None:
        import httpx

        self.name = "telegram"
        self.chat_id = chat_id
        self._url = f"{api_url.rstrip('/')}/bot{token}"
        self._client = httpx.Client(timeout=timeout)

    def send(self, notice: Notice) -> None:
        for piece in split_text(telegram_text(notice)):
            self._post("sendMessage", {"chat_id": self.chat_id, "text": piece, "parse_mode": "HTML",
                                       "disable_web_page_preview": True})

    def _post(self, method: str, body: dict) -> dict:
        import httpx

        try:
            answer = self._client.post(f"{self._url}/{method}", json=body)
        except httpx.HTTPError as error:  # timeouts, refused and dropped connections
            raise RetryLater(redact(f"telegram {method}: {type(error).__name__}: {error}")) from None
        failure = _classify(answer.status_code, answer.text, f"telegram {method}")
        if failure is not None:
            raise failure
        return answer.json()

    def updates(self, offset: int | None, timeout: int) -> list[dict]:
        """Commands sent to the bot (long polling)."""
        body = {"timeout": timeout, **({"offset": offset} if offset is not None else {})}
        return self._post("getUpdates", body).get("result", [])


class WebhookTarget:
    """A JSON POST of every notice to a URL (schema in docs/notify.md)."""

    def __init__(self, url: str, headers: dict[str, str], timeout: float = 10.0) -> None:
        import httpx

        self.name = f"webhook {url}"
        self.url = url
        self.headers = headers
        self._client = httpx.Client(timeout=timeout)

    def send(self, notice: Notice) -> None:
        import httpx

        try:
            answer = self._client.post(self.url, json=notice.to_dict(), headers=self.headers)
        except httpx.HTTPError as error:
            raise RetryLater(redact(f"{self.name}: {type(error).__name__}: {error}")) from None
        failure = _classify(answer.status_code, answer.text, self.name)
        if failure is not None:
            raise failure


def targets_from(settings) -> list:
    """The configured targets (``[notify.telegram]``, ``[[notify.webhooks]]``); the token from the environment."""
    notify = settings.notify
    targets: list = []
    if notify.telegram is not None:
        token = os.environ.get(TOKEN_ENV, "").strip()
        if not token:
            raise UserError(f"[notify.telegram] is configured but {TOKEN_ENV} is not set; export the bot token "
                            "BotFather gave you (it never goes in the config)")
        targets.append(TelegramTarget(notify.telegram.chat_id, notify.telegram.api_url, token))
    targets += [WebhookTarget(hook.url, dict(hook.headers)) for hook in notify.webhooks]
    return targets


class Notifier:
    """A queue of notices and the worker that sends them; ``publish`` never blocks and never raises."""

    def __init__(self, targets: list, events: tuple[str, ...] | list[str] = EVENTS, ledger=None,
                 sleep: Callable[[float], None] = time.sleep, backoff: float = 1.0) -> None:
        self.targets = {t.name: t for t in targets}
        self.events = set(events)
        self.ledger = ledger
        self.sleep = sleep
        self.backoff = backoff
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._idle = threading.Condition()
        self._busy = 0

    def publish(self, notice: Notice) -> None:
        """Queue ``notice`` for every target (written to the ledger first, so a stop loses nothing)."""
        if notice.event not in self.events and notice.event not in ALWAYS:
            return
        for name in self.targets:
            if notice.event == "reply" and name != "telegram":  # an answer to a Telegram command
                continue
            try:
                row = self.ledger.add_notification(name, notice.event, json.dumps(notice.to_dict())) \
                    if self.ledger is not None else None
            except Exception:  # the ledger's own failure is the daemon's business, not the notifier's
                log.exception("could not store a %s notification", notice.event)
                row = None
            self._put((row, name, notice))

    def _put(self, item) -> None:
        with self._idle:
            self._busy += 1
        self._queue.put(item)

    def start(self, backlog: bool = True) -> Notifier:
        """Send what an earlier run left unsent (``backlog``; only the daemon does, so that a command-line
        process never sends twice what the daemon's queue holds), then whatever is published, in a worker
        thread."""
        if backlog and self.ledger is not None:
            for row in self.ledger.unsent_notifications():
                if row.target in self.targets:
                    self._put((row.id, row.target, Notice(**json.loads(row.payload))))
        self._thread = threading.Thread(target=self._work, name="notify", daemon=True)
        self._thread.start()
        return self

    def flush(self, timeout: float) -> bool:
        """Wait until every queued notice is sent or given up (at most ``timeout`` seconds); True when done."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def stop(self, timeout: float = 30.0) -> None:
        """Flush (up to ``timeout``), then stop the worker; what is left stays in the ledger for the next start."""
        self.flush(timeout)
        self._stopping.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(5)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None or self._stopping.is_set():
                return
            row, name, notice = item
            try:
                self._deliver(row, self.targets[name], notice)
            finally:
                with self._idle:
                    self._busy -= 1
                    self._idle.notify_all()

    def _deliver(self, row, target, notice: Notice) -> bool:
        wait = self.backoff
        for attempt in range(1, ATTEMPTS + 1):
            if self._stopping.is_set():
                return False
            try:
                target.send(notice)
            except RetryLater as error:
                if attempt == ATTEMPTS:
                    log.warning("%s: %s; left for the next start", target.name, error)
                    return False
                pause = error.after if error.after is not None else wait
                self.sleep(min(pause, MAX_BACKOFF))
                wait = min(wait * 2, MAX_BACKOFF)
                continue
            except Refused as error:
                log.error("%s refused a %s message: %s", target.name, notice.event, redact(str(error)))
                self._mark(row, str(error))
                return False
            except Exception as error:  # a bug must not kill the worker
                log.exception("%s: sending failed: %s", target.name, redact(str(error)))
                self._mark(row, str(error))
                return False
            self._mark(row)
            return True
        return False

    def _mark(self, row, error: str | None = None) -> None:
        if row is not None and self.ledger is not None:
            try:
                self.ledger.mark_notification(row, redact(error)[:300] if error else None)
            except Exception:
                log.exception("could not mark a notification as sent")

    def send_now(self, notice: Notice) -> dict[str, str | None]:
        """Send ``notice`` to every target at once (``notify test``): target name -> None when delivered, else why
        not."""
        results = {}
        for name, target in self.targets.items():
            try:
                target.send(notice)
                results[name] = None
            except (RetryLater, Refused) as error:
                results[name] = redact(str(error))
        return results
