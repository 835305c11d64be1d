"""Halting and resuming bots: written through the ledger, then announced to the notify targets.

One function serves every way in (``systrade paper halt|resume``, Telegram's ``/halt`` and ``/resume``, the web
dashboard's buttons), so a halt is recorded and announced the same whichever way it came. Outside the daemon the
announcement is sent by a notifier of this process for at most ``ANNOUNCE_SECONDS``; what it could not send (a
target down, the Telegram token missing from this shell) stays in the ledger and the daemon's next start sends it.
"""

from __future__ import annotations

import json
import logging

from systrade.errors import UserError
from systrade.live.notify import Notice, Notifier, targets_from

log = logging.getLogger("systrade.control")
ANNOUNCE_SECONDS = 15.0


def announcement(name: str, halted: bool, reason: str) -> Notice:
    if halted:
        return Notice("halt", f"{name} halted. Reason: {reason}. It opens nothing until resumed; its stops and "
                              "exits still run.", bot=name)
    return Notice("resume", f"{name} resumed: it trades again from its next tick.", bot=name)


def set_halted(ledger, name: str | None, halted: bool, reason: str, notifier: Notifier | None = None,
               settings=None) -> tuple[list[str], list[str]]:
    """Halt or resume bot ``name`` (every bot when None) and announce it.

    ``notifier``: the daemon's own (its worker sends); else one is made from ``settings`` for this call. Returns
    the names changed and warnings for the person (a target that could not be told, and why).
    """
    names = ledger.set_halted(name, halted, reason if halted else "")
    notices = [announcement(n, halted, reason) for n in names]
    if notifier is not None:
        for notice in notices:
            notifier.publish(notice)
        return names, []
    return names, _announce(ledger, notices, settings) if settings is not None else []


def _announce(ledger, notices: list[Notice], settings) -> list[str]:
    warnings: list[str] = []
    events = settings.notify.events
    try:
        targets = targets_from(settings)
    except UserError as error:  # the Telegram token is not in this shell: keep its messages for the daemon
        warnings.append(f"Telegram not told: {error}; the daemon's next start sends it")
        targets = targets_from(settings.model_copy(update={"notify": settings.notify.model_copy(
            update={"telegram": None})}))
        for notice in notices:
            if notice.event in events:
                ledger.add_notification("telegram", notice.event, json.dumps(notice.to_dict()))
    if not targets:
        return warnings
    notifier = Notifier(targets, events, ledger=ledger).start(backlog=False)
    for notice in notices:
        notifier.publish(notice)
    if not notifier.flush(ANNOUNCE_SECONDS):
        warnings.append(f"not every notification was sent within {ANNOUNCE_SECONDS:g} s; the daemon's next start "
                        "sends the rest")
    notifier.stop(0)
    return warnings
