"""The paper-trading ledger (SQLAlchemy): bots, ticks, orders, fills, balances, positions, events.

Every state change of a tick is one transaction, so a crash never leaves a fill without its
balance change. Orders carry a client order id derived from bot and bar time, unique in the
table: a restart, a repeated tick or a retried request can never create a second order for a bar.
SQLite runs in WAL mode so status commands can read while the daemon writes.

A SQLite ledger's file is checked before every commit (``Ledger.check``): deleted, replaced by another
file or made read-only, it raises ``LedgerFailure`` instead of committing into a file nobody will read.
Commands that only read (or halt and resume) open an existing ledger and never create one.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
    bindparam,
    create_engine,
    event,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from systrade.errors import UserError


class Base(DeclarativeBase):
    pass


class Bot(Base):
    __tablename__ = "bots"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    strategy: Mapped[str] = mapped_column(String(200))
    exchange: Mapped[str] = mapped_column(String(50))
    symbol: Mapped[str] = mapped_column(String(50))
    timeframe: Mapped[str] = mapped_column(String(10))
    position: Mapped[float] = mapped_column(Float, default=0.0)
    last_bar: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    halted: Mapped[bool] = mapped_column(Boolean, default=False)
    halted_reason: Mapped[str | None] = mapped_column(String(300), nullable=True)
    day: Mapped[str | None] = mapped_column(String(10), nullable=True)
    day_start_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    day_cash_flow: Mapped[float] = mapped_column(Float, default=0.0)
    # The open position's entry: its fill price (stops are fractions of it) and the bar whose signal opened it
    # (the entry filled at the next bar's open; stops are checked from the bar after that one).
    entry_price: Mapped[float | None] = mapped_column(Float, nullable=True)
    entry_bar: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # The bot's own money in its quote currency: what it was given and what it holds now (bots sharing a
    # currency size from their own cash, never from one another's). None only in a ledger not yet upgraded.
    capital: Mapped[float | None] = mapped_column(Float, nullable=True)
    cash: Mapped[float | None] = mapped_column(Float, nullable=True)


class Tick(Base):
    __tablename__ = "ticks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bot: Mapped[str] = mapped_column(ForeignKey("bots.name"))
    bar_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str] = mapped_column(String(20))  # order, hold, skipped, error, halted, no-new-bar
    message: Mapped[str] = mapped_column(String(500), default="")


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_order_id: Mapped[str] = mapped_column(String(36), unique=True)
    bot: Mapped[str] = mapped_column(ForeignKey("bots.name"))
    symbol: Mapped[str] = mapped_column(String(50))
    side: Mapped[str] = mapped_column(String(4))
    amount: Mapped[float] = mapped_column(Float)
    bar_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    action: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(10))  # intent, submitted, partial, filled, cancelled, rejected
    filled: Mapped[float | None] = mapped_column(Float, nullable=True)  # shares filled so far (a broker's order)
    reason: Mapped[str] = mapped_column(String(300), default="")
    exchange_order_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Fill(Base):
    __tablename__ = "fills"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    client_order_id: Mapped[str] = mapped_column(String(36))
    bot: Mapped[str] = mapped_column(String(64))
    symbol: Mapped[str] = mapped_column(String(50))
    side: Mapped[str] = mapped_column(String(4))
    amount: Mapped[float] = mapped_column(Float)
    price: Mapped[float] = mapped_column(Float)
    fee: Mapped[float] = mapped_column(Float)
    fee_currency: Mapped[str] = mapped_column(String(20))
    fee_quote: Mapped[float | None] = mapped_column(Float, nullable=True)  # the fee's value in quote at fill time
    bar_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    __table_args__ = (UniqueConstraint("order_id"),)


class Balance(Base):
    __tablename__ = "balances"
    asset: Mapped[str] = mapped_column(String(20), primary_key=True)
    amount: Mapped[float] = mapped_column(Float)
    initial: Mapped[float] = mapped_column(Float, default=0.0)


class Notification(Base):
    """A message for one target (``live.notify``), kept until it is sent: a stop or a crash loses none."""

    __tablename__ = "notifications"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    target: Mapped[str] = mapped_column(String(300))
    event: Mapped[str] = mapped_column(String(30))
    payload: Mapped[str] = mapped_column(String(20000))  # the notice as JSON (never a token)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sent: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    error: Mapped[str | None] = mapped_column(String(300), nullable=True)  # why it was given up


class Lease(Base):
    """Which process may run the daemon on a server database (see ``systrade.live.lock.LeaseLock``)."""

    __tablename__ = "leases"
    name: Mapped[str] = mapped_column(String(30), primary_key=True)
    holder: Mapped[str] = mapped_column(String(100))  # unique per process: host, pid and a random token
    pid: Mapped[int] = mapped_column(Integer)
    host: Mapped[str] = mapped_column(String(255))
    beat: Mapped[float] = mapped_column(Float)  # the holder's last heartbeat, seconds since the epoch


class Event(Base):
    __tablename__ = "events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    bot: Mapped[str | None] = mapped_column(String(64), nullable=True)
    kind: Mapped[str] = mapped_column(String(30))
    message: Mapped[str] = mapped_column(String(1000))


# Statements a tick runs every bar, built once (building them costs more than running them on SQLite).
_BOTS = Bot.__table__
_READ_BOT = select(_BOTS).where(_BOTS.c.name == bindparam("b_name"))
_MARK_BAR = update(_BOTS).where(_BOTS.c.name == bindparam("b_name")).values(last_bar=bindparam("b_bar"))
_ADD_TICK = insert(Tick.__table__)


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes: they are UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


LEG_SEPARATOR = ":"  # never in a configured bot's name, so a leg's row cannot be mistaken for a bot


def leg_name(bot: str, symbol: str) -> str:
    """The ledger name of one symbol of a bot trading several (``live.group``): its position, entry and orders."""
    return f"{bot}{LEG_SEPARATOR}{symbol}"


def group_of(name: str) -> str | None:
    """The bot a leg row belongs to, or None for a bot's own row."""
    return name.split(LEG_SEPARATOR, 1)[0] if LEG_SEPARATOR in name else None


def client_order_id(bot: str, bar_time: datetime, kind: str = "") -> str:
    """Deterministic id for the one order a bot may place for a bar (<= 36 chars, exchange-safe).

    ``kind`` ``"s"`` names the stop exit filled inside that bar, which is a different order from the one
    the bar's signal sends for the next bar's open.
    """
    digest = hashlib.sha1(bot.encode()).hexdigest()[:10]
    return f"st{digest}-{int(as_utc(bar_time).timestamp() * 1000)}{kind}"


class LedgerFailure(Exception):
    """The ledger cannot be written any more (its file deleted, replaced or read-only, the disk full, an I/O
    error, another daemon took it over): the daemon must stop rather than carry on without its books."""


def sqlite_file(url: str) -> Path | None:
    """The absolute path of a SQLite ledger's file; None for other databases and in-memory SQLite."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:" \
            or parsed.database.startswith("file:"):
        return None
    return Path(os.path.abspath(parsed.database))


def describe_url(url: str) -> str:
    """Where a ledger lives, for messages: its file, else its URL without the password."""
    from sqlalchemy.engine import make_url

    path = sqlite_file(url)
    if path is not None:
        return str(path)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "the configured database"


class Ledger:
    """Access to the ledger database; one short transaction per state change.

    ``create=False`` opens an existing ledger only (read-only commands, halt and resume): a missing one is a
    ``UserError`` naming where it was looked for, and nothing is created.
    """

    def __init__(self, url: str, create: bool = True) -> None:
        self.url = url
        self.path = sqlite_file(url)
        self.where = describe_url(url)
        self.guards: list[Callable[[], str | None]] = []  # more checks before each commit (the daemon's lock)
        if self.path is not None:
            if not create and not self.path.is_file():
                raise _no_ledger(self.where)
            if create:
                self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.engine: Engine = create_engine(url)
        except Exception as exc:
            raise UserError(f"paper database URL {url!r} is not usable ({exc}); use e.g. sqlite:///data/paper.sqlite")\
                from exc
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            if create:
                Base.metadata.create_all(self.engine)
            else:
                from sqlalchemy import inspect

                if not inspect(self.engine).has_table(Bot.__tablename__):
                    self.engine.dispose()
                    raise _no_ledger(self.where)
            _add_missing_columns(self.engine)
        except Exception as error:
            failure = self.storage_failure(error)
            if failure is None:
                raise
            self.engine.dispose()
            raise failure from error
        self._identity = _file_identity(self.path) if self.path is not None else None
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def check(self) -> None:
        """Raise ``LedgerFailure`` when the ledger can no longer be written: its file deleted, replaced by another
        file or made read-only since it was opened (or a guard, such as the daemon's lock, failing)."""
        if self.path is not None:
            try:
                identity = _file_identity(self.path)
            except FileNotFoundError:
                raise LedgerFailure(f"the ledger file {self.path} was deleted while the daemon ran (nothing more "
                                    "is written into the deleted file); restore it from a backup, or move the "
                                    "ledger aside and start afresh") from None
            if identity != self._identity:
                raise LedgerFailure(f"the ledger file {self.path} was replaced by another file while the daemon "
                                    "ran (the daemon's books are in the file it opened); put the ledger back and "
                                    "start the daemon again")
            if not writable(self.path):
                raise LedgerFailure(f"the ledger file {self.path} became read-only while the daemon ran; make it "
                                    f"writable (chmod u+w {self.path}) and start the daemon again")
        for guard in self.guards:
            problem = guard()
            if problem:
                raise LedgerFailure(problem)

    def storage_failure(self, error: BaseException) -> LedgerFailure | None:
        """``error`` as a ``LedgerFailure`` when it means the ledger cannot be written (disk full, I/O error,
        read-only or corrupt database); None for anything a later tick can get past (a busy database, a dropped
        server connection, a constraint, any error not from the database)."""
        from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

        if isinstance(error, LedgerFailure):
            return error
        if not isinstance(error, DBAPIError) or isinstance(error, (IntegrityError, DataError)):
            return None
        text = " ".join(str(error.orig).split())
        if error.connection_invalidated or "locked" in text or "busy" in text.lower():
            return None
        return LedgerFailure(f"the ledger {self.where} cannot be written: {text}")

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose changes commit together or not at all (never into a deleted or replaced file)."""
        with self._sessions() as session, session.begin():
            yield session
            self.check()

    def ensure_account(self, balances: dict[str, float]) -> None:
        """Create the starting balances once; later runs keep what the ledger holds."""
        with self.transaction() as s:
            if s.scalar(select(Balance).limit(1)) is None:
                for asset, amount in balances.items():
                    s.add(Balance(asset=asset, amount=float(amount), initial=float(amount)))
                s.add(Event(time=utcnow(), bot=None, kind="account", message=f"paper account opened with {balances}"))

    def ensure_bot(self, name: str, strategy: str, exchange: str, symbol: str, timeframe: str,
                   capital: float = 0.0) -> None:
        """Create or update the bot's row; give it ``capital`` (a new bot, or one from an older ledger) or move
        its cash by the change when its configured capital changed."""
        with self.transaction() as s:
            bot = s.get(Bot, name)
            if bot is None:
                s.add(Bot(name=name, strategy=strategy, exchange=exchange, symbol=symbol, timeframe=timeframe,
                          position=0.0, halted=False, day_cash_flow=0.0, capital=capital, cash=capital))
                return
            _check_market_kept(bot, exchange, symbol)
            bot.strategy, bot.exchange, bot.symbol, bot.timeframe = strategy, exchange, symbol, timeframe
            if bot.capital is None:
                bot.capital, bot.cash = capital, capital + _cash_flow_of_fills(s, name)
                s.add(Event(time=utcnow(), bot=name, kind="capital",
                            message=f"capital {capital:,.8g} assigned (a ledger from before per-bot capital); cash "
                                    f"{bot.cash:,.8g} after the bot's fills"))
            elif abs(bot.capital - capital) > 1e-9 * max(abs(capital), 1.0):
                s.add(Event(time=utcnow(), bot=name, kind="capital",
                            message=f"capital changed from {bot.capital:,.8g} to {capital:,.8g}; cash moves by "
                                    f"{capital - bot.capital:,.8g}"))
                bot.cash = (bot.cash or 0.0) + capital - bot.capital
                bot.capital = capital

    def check_markets_kept(self, bots: list[tuple[str, str, str]]) -> None:
        """Refuse (``UserError``) a bot ``(name, exchange, symbol)`` whose ledger row holds a position in another
        market: checked for every bot before any is written."""
        for name, exchange, symbol in bots:
            bot = self.bot(name)
            if bot is not None:
                _check_market_kept(bot, exchange, symbol)

    def balances(self) -> dict[str, float]:
        with self._sessions() as s:
            return {b.asset: b.amount for b in s.scalars(select(Balance).order_by(Balance.asset))}

    def initial_balances(self) -> dict[str, float]:
        with self._sessions() as s:
            return {b.asset: b.initial for b in s.scalars(select(Balance).order_by(Balance.asset))}

    def bot(self, name: str) -> Bot | None:
        with self._sessions() as s:
            return s.get(Bot, name)

    def bot_state(self, name: str):
        """One bot's row, read without the ORM (a tick reads it every bar): attributes as on ``Bot``, or None."""
        with self.engine.connect() as connection:
            return connection.execute(_READ_BOT, {"b_name": name}).first()

    def mark_bar(self, name: str, bar: datetime, outcome: str, message: str = "") -> None:
        """Record that the bot processed ``bar`` (its last bar and a tick row), in one transaction."""
        with self.engine.begin() as connection:
            connection.execute(_MARK_BAR, {"b_name": name, "b_bar": bar})
            connection.execute(_ADD_TICK, {"bot": name, "bar_time": bar, "time": utcnow(), "outcome": outcome,
                                           "message": message[:500]})
            self.check()

    def bots(self) -> list[Bot]:
        with self._sessions() as s:
            return list(s.scalars(select(Bot).order_by(Bot.name)))

    def fills(self) -> list[Fill]:
        with self._sessions() as s:
            return list(s.scalars(select(Fill).order_by(Fill.id)))

    def add_notification(self, target: str, event: str, payload: str) -> int:
        """Store a message to send; its id."""
        with self.transaction() as s:
            row = Notification(target=target, event=event, payload=payload, created=utcnow())
            s.add(row)
            s.flush()
            return row.id

    def unsent_notifications(self) -> list[Notification]:
        with self._sessions() as s:
            return list(s.scalars(select(Notification).where(Notification.sent.is_(None)).order_by(Notification.id)))

    def mark_notification(self, row_id: int, error: str | None = None) -> None:
        """A message sent (or given up for good, with ``error``)."""
        with self.transaction() as s:
            row = s.get(Notification, row_id)
            if row is not None:
                row.sent, row.error = utcnow(), error

    def set_order_amount(self, client_order_id: str, amount: float) -> None:
        """Size a pending order again (it waited for the market's open)."""
        with self.transaction() as s:
            s.scalar(select(Order).where(Order.client_order_id == client_order_id)).amount = amount

    def orders(self, status: str | None = None) -> list[Order]:
        with self._sessions() as s:
            query = select(Order).order_by(Order.id)
            if status:
                query = query.where(Order.status == status)
            return list(s.scalars(query))

    def record(self, kind: str, message: str, bot: str | None = None, session: Session | None = None) -> None:
        """Append an event (inside ``session`` when given, else on its own)."""
        if session is not None:
            session.add(Event(time=utcnow(), bot=bot, kind=kind, message=message[:1000]))
            return
        with self.transaction() as s:
            s.add(Event(time=utcnow(), bot=bot, kind=kind, message=message[:1000]))

    def record_tick(self, bot: str, bar_time: datetime | None, outcome: str, message: str = "") -> None:
        with self.transaction() as s:
            s.add(Tick(bot=bot, bar_time=bar_time, time=utcnow(), outcome=outcome, message=message[:500]))

    def set_halted(self, name: str | None, halted: bool, reason: str = "") -> list[str]:
        """Halt or resume one bot (or all when ``name`` is None); returns the names changed."""
        with self.transaction() as s:
            bots = [s.get(Bot, name)] if name else list(s.scalars(select(Bot)))
            if name and bots[0] is None:
                known = ", ".join(b.name for b in s.scalars(select(Bot))) or "none yet"
                raise UserError(f"unknown bot {name!r}; bots in the ledger: {known}")
            for bot in bots:
                bot.halted, bot.halted_reason = halted, (reason or None) if halted else None
                s.add(Event(time=utcnow(), bot=bot.name, kind="halt" if halted else "resume",
                            message=reason or ("halted by user" if halted else "resumed by user")))
            return [b.name for b in bots]


def _check_market_kept(bot: Bot, exchange: str, symbol: str) -> None:
    if (bot.exchange, bot.symbol) != (exchange, symbol) and bot.position != 0:
        raise UserError(f"bot {bot.name} holds {bot.position} {bot.symbol} on {bot.exchange} but is now configured "
                        f"for {symbol} on {exchange}; close the position or use a new bot name")


def _no_ledger(where: str) -> UserError:
    return UserError(f"no paper ledger at {where} yet ([paper] database); `systrade paper run` creates it")


def _file_identity(path: Path) -> tuple[int, int]:
    stat = os.stat(path)
    return stat.st_dev, stat.st_ino


def writable(path: Path) -> bool:
    """False for a file this process may not write, or one without any write permission (``chmod a-w``: a
    refusal meant for everyone, honoured even by root)."""
    return os.access(path, os.W_OK) and bool(os.stat(path).st_mode & 0o222)


def _cash_flow_of_fills(s: Session, bot: str) -> float:
    """What the bot's fills did to its quote cash: sales in, purchases out, fees paid in quote (or valued in it)."""
    flow = 0.0
    for fill in s.scalars(select(Fill).where(Fill.bot == bot)):
        base, _, rest = fill.symbol.partition("/")
        quote = rest.split(":", 1)[0]
        flow += (-1.0 if fill.side == "buy" else 1.0) * fill.amount * fill.price
        if fill.fee_currency == quote:
            flow -= fill.fee
        elif fill.fee_currency != base:
            flow -= fill.fee_quote or 0.0
    return flow


def _add_missing_columns(engine: Engine) -> None:
    """Bring a ledger written by an older systrade up to the current columns (nullable ones only)."""
    from sqlalchemy import inspect, text

    for table in Base.metadata.sorted_tables:
        present = {c["name"] for c in inspect(engine).get_columns(table.name)}
        for column in table.columns:
            if column.name not in present and column.nullable:
                kind = column.type.compile(dialect=engine.dialect)
                with engine.begin() as connection:
                    connection.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}"))


def _sqlite_pragmas(connection, _record) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()
