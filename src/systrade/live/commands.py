"""Telegram commands for the configured chat: ``/status``, ``/trades``, ``/halt [bot]``, ``/resume [bot]``.

A thread long-polls the Bot API's ``getUpdates`` while the daemon runs. Only the chat in ``[notify.telegram]``
is obeyed; a message from any other chat is ignored and logged (without its text). A halt or resume is written
through the ledger exactly as ``systrade paper halt`` writes it (``live.control``), announced to every target
and answered in the chat.
"""

from __future__ import annotations

import logging
import threading

from systrade.errors import UserError
from systrade.exchange import redact
from systrade.live.control import set_halted
from systrade.live.notify import Notice, Notifier, Refused, RetryLater, TelegramTarget

log = logging.getLogger("systrade.notify")
POLL_SECONDS = 25
HELP = "commands: /status, /trades, /halt [bot], /resume [bot]"


def answer(ledger, text: str, notifier: Notifier | None = None) -> str:
    """The reply to one command (plain text; the sender escapes it)."""
    from systrade.live.status import last_prices, status, trades

    words = text.strip().split()
    command = words[0].split("@", 1)[0].lower() if words else ""
    argument = words[1] if len(words) > 1 else None
    if command == "/status":
        report = status(ledger, "", last_prices(ledger))
        lines = [f"{b['name']}: " + ", ".join(f"{p['symbol']} position {p['position']:.8g}" for p in b["positions"])
                 + (f", equity {b['equity']:,.2f} {b['quote'] or ''}" if b["equity"] is not None else "")
                 + (f", P&L {b['pnl']:+,.2f}" if b["pnl"] is not None else "")
                 + (" (halted)" if b["halted"] else "") for b in report["bots"]]
        return "\n".join(lines) or "no bots in the ledger yet"
    if command == "/trades":
        fills = trades(ledger)[-10:]
        return "\n".join(f"{f['time']}: {f['bot']} {f['side']} {f['amount']:.8g} {f['symbol']} @ {f['price']:.8g}"
                         for f in fills) or "no trades yet"
    if command in ("/halt", "/resume"):
        halting = command == "/halt"
        try:
            names, _ = set_halted(ledger, argument, halting, "halted from Telegram", notifier=notifier)
        except UserError as error:
            return str(error)
        return f"{'halted' if halting else 'resumed'}: {', '.join(names) or 'no bots'}"
    return HELP


class CommandListener:
    """Long-polls Telegram for commands and answers them through the notifier's queue."""

    def __init__(self, target: TelegramTarget, notifier: Notifier, ledger) -> None:
        self.target = target
        self.notifier = notifier
        self.ledger = ledger
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._offset: int | None = None

    def start(self) -> CommandListener:
        self._thread = threading.Thread(target=self._run, name="telegram-commands", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def poll_once(self, timeout: int = POLL_SECONDS) -> int:
        """Fetch and answer the pending commands; how many were answered."""
        answered = 0
        for update in self.target.updates(self._offset, timeout):
            self._offset = int(update["update_id"]) + 1
            message = update.get("message") or {}
            chat = str((message.get("chat") or {}).get("id", ""))
            if chat != str(self.target.chat_id):
                log.warning("ignored a Telegram message from chat %s (only chat %s is obeyed)", chat,
                            self.target.chat_id)
                continue
            reply = answer(self.ledger, message.get("text") or "", self.notifier)
            self.notifier.publish(Notice("reply", reply))
            answered += 1
        return answered

    def _run(self) -> None:
        wait = 1.0
        while not self._stop.is_set():
            try:
                self.poll_once()
                wait = 1.0
            except (RetryLater, Refused) as error:
                log.warning("telegram commands: %s", redact(str(error)))
                self._stop.wait(wait)
                wait = min(wait * 2, 60.0)
            except Exception:
                log.exception("telegram commands failed")
                self._stop.wait(wait)
                wait = min(wait * 2, 60.0)
