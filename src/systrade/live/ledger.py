"""The paper-trading ledger (SQLAlchemy): bots, ticks, orders, fills, balances, positions, events.

Every state change of a tick is one transaction, so a crash never leaves a fill without its
balance change. Orders carry a client order id derived from bot and bar time, unique in the
table: a restart, a repeated tick or a retried request can never create a second order for a bar.
SQLite runs in WAL mode so status commands can read while the daemon writes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
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
    status: Mapped[str] = mapped_column(String(10))  # intent, filled, rejected
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


def client_order_id(bot: str, bar_time: datetime, kind: str = "") -> str:
    """Deterministic id for the one order a bot may place for a bar (<= 36 chars, exchange-safe).

    ``kind`` ``"s"`` names the stop exit filled inside that bar, which is a different order from the one
    the bar's signal sends for the next bar's open.
    """
    digest = hashlib.sha1(bot.encode()).hexdigest()[:10]
    return f"st{digest}-{int(as_utc(bar_time).timestamp() * 1000)}{kind}"


class Ledger:
    """Access to the ledger database; one short transaction per state change."""

    def __init__(self, url: str) -> None:
        if url.startswith("sqlite:///"):
            path = Path(url.removeprefix("sqlite:///"))
            path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.engine: Engine = create_engine(url)
        except Exception as exc:
            raise UserError(f"paper database URL {url!r} is not usable ({exc}); use e.g. sqlite:///data/paper.sqlite")\
                from exc
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        Base.metadata.create_all(self.engine)
        _add_missing_columns(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose changes commit together or not at all."""
        with self._sessions() as session, session.begin():
            yield session

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
            if (bot.exchange, bot.symbol) != (exchange, symbol) and bot.position != 0:
                raise UserError(f"bot {name} holds {bot.position} {bot.symbol} on {bot.exchange} but is now configured "
                                f"for {symbol} on {exchange}; close the position or use a new bot name")
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

    def bots(self) -> list[Bot]:
        with self._sessions() as s:
            return list(s.scalars(select(Bot).order_by(Bot.name)))

    def fills(self) -> list[Fill]:
        with self._sessions() as s:
            return list(s.scalars(select(Fill).order_by(Fill.id)))

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
