"""One daemon per ledger: a lock the daemon (and ``paper run --once``) holds for its whole life.

Two daemons on one ledger would each complete the other's intents and size from the same cash: every
order twice. A SQLite ledger is guarded by an advisory lock (``flock``) on a file beside it
(``paper.sqlite.lock``) holding the holder's pid and host; the kernel releases it when the process ends,
however it ends (SIGKILL included), so a lock file left behind never blocks the next start. ``flock`` is
reliable on local filesystems, not on network ones (NFS, SMB). A server database (PostgreSQL, ...) gets a
lease row in the ledger renewed by a heartbeat: a lease not renewed for ``ttl_seconds`` has lapsed and the
next daemon may take it over; a daemon whose lease was taken over stops at its next commit.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from systrade.errors import UserError
from systrade.live.ledger import Lease, Ledger, sqlite_file, writable

LEASE = "daemon"
LEASE_TTL_SECONDS = 60.0


class LedgerBusy(UserError):
    """Another process holds the ledger's lock."""


def _busy(where: str, holder: str) -> LedgerBusy:
    return LedgerBusy(f"the ledger {where} is in use by another systrade daemon ({holder or 'pid and host unknown'});"
                      " stop it first, or give this one its own [paper] database")


def _holder_text() -> str:
    started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"pid {os.getpid()} on {socket.gethostname()} since {started}"


class FileLock:
    """An exclusive ``flock`` on ``path`` (created if absent), naming its holder inside the file."""

    def __init__(self, path: Path, ledger_path: Path) -> None:
        self.path = path
        self.ledger_path = ledger_path
        self._fd: int | None = None
        self._identity: tuple[int, int] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 500, 0).decode("utf-8", "replace").strip()
                os.close(fd)
                raise _busy(str(self.ledger_path), holder) from None
            # A holder releasing meanwhile unlinks the file it locked: hold the lock only on the file at the path.
            stat = os.fstat(fd)
            try:
                current = os.stat(self.path)
            except FileNotFoundError:
                current = None
            if current is not None and (current.st_dev, current.st_ino) == (stat.st_dev, stat.st_ino):
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, (_holder_text() + "\n").encode(), 0)
        os.fsync(fd)
        self._fd, self._identity = fd, (stat.st_dev, stat.st_ino)

    def check(self) -> str | None:
        """A problem when the lock file was removed or replaced (another daemon could start), else None."""
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            stat = None
        if stat is None or (stat.st_dev, stat.st_ino) != self._identity:
            return (f"the lock file {self.path} was removed while the daemon ran, so another daemon could start on "
                    "the same ledger; start this one again")
        return None

    def release(self) -> None:
        if self._fd is None:
            return
        if self.check() is None:
            self.path.unlink(missing_ok=True)  # still holding it: nobody can lock this file meanwhile
        os.close(self._fd)
        self._fd = None


class LeaseLock:
    """A lease row in the ledger, renewed every ``ttl_seconds / 3`` by a heartbeat thread (``start``)."""

    def __init__(self, ledger: Ledger, holder: str | None = None, ttl_seconds: float = LEASE_TTL_SECONDS,
                 now: Callable[[], float] = time.time) -> None:
        self.ledger = ledger
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(6)}"
        self.ttl = ttl_seconds
        self.now = now
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lost: str | None = None

    def acquire(self) -> None:
        now = self.now()
        mine = {"holder": self.holder, "pid": os.getpid(), "host": socket.gethostname(), "beat": now}
        try:
            with self.ledger.transaction() as s:
                row = s.get(Lease, LEASE)
                if row is None:
                    s.add(Lease(name=LEASE, **mine))
                elif row.holder != self.holder and now - row.beat <= self.ttl:
                    raise _busy(self.ledger.where, f"pid {row.pid} on {row.host}, last heartbeat "
                                                   f"{now - row.beat:.0f} s ago; its lease lapses {self.ttl:.0f} s "
                                                   "after its last heartbeat")
                else:  # a lapsed lease: take it over unless another daemon took it first
                    taken = s.execute(update(Lease).where(Lease.name == LEASE, Lease.holder == row.holder,
                                                          Lease.beat == row.beat).values(**mine))
                    if taken.rowcount != 1:
                        raise _busy(self.ledger.where, "it took over the lapsed lease a moment ago")
        except IntegrityError:  # another daemon inserted the lease first
            with self.ledger.transaction() as s:
                row = s.get(Lease, LEASE)
            raise _busy(self.ledger.where, f"pid {row.pid} on {row.host}" if row else "") from None

    def lost(self) -> str | None:
        """A problem when the lease is no longer this process's (it lapsed and was taken over), else None."""
        if self._lost:
            return self._lost
        with self.ledger.engine.connect() as connection:
            row = connection.execute(select(Lease.holder, Lease.pid, Lease.host)
                                     .where(Lease.name == LEASE)).first()
        if row is None or row.holder != self.holder:
            who = f"pid {row.pid} on {row.host}" if row is not None else "nobody"
            return (f"the daemon's lease on the ledger {self.ledger.where} lapsed and is now held by {who}; "
                    "two daemons must not share a ledger")
        return None

    def problem(self) -> str | None:
        """What the heartbeat found (the lease taken over), without asking the database: checked before commits."""
        return self._lost

    def beat(self) -> None:
        with self.ledger.engine.begin() as connection:
            renewed = connection.execute(update(Lease).where(Lease.name == LEASE, Lease.holder == self.holder)
                                         .values(beat=self.now()))
        if renewed.rowcount != 1:
            self._lost = self.lost() or "the daemon's lease on the ledger was taken over"

    def start(self) -> None:
        """Renew the lease every third of its lifetime until ``release``."""
        def run() -> None:
            while not self._stop.wait(self.ttl / 3):
                try:
                    self.beat()
                except Exception:  # the database is away: the lease may lapse; checked before the next commit
                    pass
        self._thread = threading.Thread(target=run, name="ledger-lease", daemon=True)
        self._thread.start()

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self.ledger.engine.begin() as connection:
            connection.execute(delete(Lease).where(Lease.name == LEASE, Lease.holder == self.holder))


def check_writable(url: str) -> None:
    """Refuse (``UserError``) to start on a SQLite ledger file that cannot be written."""
    path = sqlite_file(url)
    if path is not None and path.exists() and not writable(path):
        raise UserError(f"the ledger file {path} is read-only; make it writable (chmod u+w {path}) or point "
                        "[paper] database at another file")


@contextmanager
def locked_ledger(url: str) -> Iterator[Ledger]:
    """The ledger at ``url`` (created if new), for the one daemon allowed on it while the block runs.

    Raises ``LedgerBusy`` (a ``UserError``) naming the holder's pid and host when another process has it.
    """
    check_writable(url)
    path = sqlite_file(url)
    if path is not None:
        lock = FileLock(path.with_name(path.name + ".lock"), path)
        lock.acquire()
        try:
            ledger = Ledger(url)
            ledger.guards.append(lock.check)
            try:
                yield ledger
            finally:
                ledger.engine.dispose()  # close the connections (SQLite folds its WAL in) before letting go
        finally:
            lock.release()
        return
    ledger = Ledger(url)
    if ledger.engine.dialect.name == "sqlite":  # in memory: private to this process
        yield ledger
        return
    lease = LeaseLock(ledger)
    lease.acquire()
    lease.start()
    ledger.guards.append(lease.problem)
    try:
        yield ledger
    finally:
        lease.release()
        ledger.engine.dispose()
