"""The ledger as the dashboard reads it: opened read-only (SQLite ``mode=ro``), never created nor upgraded.

Only a halt or a resume writes, and it goes through ``live.control.set_halted`` exactly as ``systrade paper halt``
does (``halt``: written in the ledger, announced to the notify targets); everything else reads through a
connection SQLite refuses to write on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import func, select

from systrade.errors import UserError
from systrade.live.ledger import Event, Ledger, Tick, as_utc, describe_url, sqlite_file

HALT_REASON = "halted by user"  # the words `systrade paper halt` writes


def read_only_url(url: str) -> str:
    """``url`` opened read-only: a SQLite file as a ``mode=ro`` URI; other databases as given (give the dashboard
    a database user that may only read)."""
    path = sqlite_file(url)
    if path is None:
        return url
    # Quoted twice: SQLAlchemy unquotes the URL's path once, and SQLite reads the rest as a URI (%20, %23 for #).
    return f"sqlite:///file:{quote(quote(path.as_posix()))}?mode=ro&uri=true"


def missing_ledger(url: str) -> Path | None:
    """The SQLite ledger file ``url`` names when it does not exist (None when it exists or is not a file)."""
    path = sqlite_file(url)
    return path if path is not None and not path.is_file() else None


def open_read_only(url: str) -> Ledger:
    """The existing ledger at ``url`` for reading; a missing one is a ``UserError`` naming the path."""
    path = missing_ledger(url)
    if path is not None:
        raise UserError(f"no paper ledger at {path} yet ([paper] database); start `systrade paper run` first, "
                        "which creates it, then `systrade web`")
    try:
        return Ledger(read_only_url(url), create=False)
    except UserError:
        raise UserError(f"no paper ledger at {describe_url(url)} yet ([paper] database); start `systrade paper run` "
                        "first, which creates it") from None


def halt(settings, name: str, halted: bool) -> tuple[list[str], list[str]]:
    """Halt or resume one bot as ``systrade paper halt|resume`` does: the names changed, and warnings about
    notify targets that could not be told."""
    from systrade.live.control import set_halted
    from systrade.live.lock import check_writable

    url = settings.paper.database
    check_writable(url)
    ledger = Ledger(url, create=False)
    try:
        return set_halted(ledger, name, halted, HALT_REASON, settings=settings)
    finally:
        ledger.engine.dispose()


def _iso(value) -> str | None:
    value = as_utc(value)
    return value.isoformat() if value is not None else None


def events(ledger: Ledger, limit: int = 200, before: int | None = None, bot: str | None = None) -> list[dict]:
    """Events newest first: ``before`` is an event id (the next page starts below the last id seen)."""
    table = Event.__table__
    query = select(table).order_by(table.c.id.desc()).limit(limit)
    if before is not None:
        query = query.where(table.c.id < before)
    if bot:
        query = query.where(table.c.bot == bot)
    with ledger.engine.connect() as connection:
        rows = connection.execute(query).mappings().all()
    return [{"id": r["id"], "time": _iso(r["time"]), "bot": r["bot"], "kind": r["kind"], "message": r["message"]}
            for r in rows]


def last_ticks(ledger: Ledger) -> dict[str, dict[str, Any]]:
    """Each bot's most recent tick: when it ran, on which bar, and how it ended (order, hold, error, ...)."""
    ticks = Tick.__table__
    latest = select(func.max(ticks.c.id).label("id")).group_by(ticks.c.bot).subquery()
    query = select(ticks).join(latest, ticks.c.id == latest.c.id)
    with ledger.engine.connect() as connection:
        rows = connection.execute(query).mappings().all()
    return {r["bot"]: {"time": _iso(r["time"]), "bar_time": _iso(r["bar_time"]), "outcome": r["outcome"],
                       "message": r["message"]} for r in rows}
