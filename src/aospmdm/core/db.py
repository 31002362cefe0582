"""Storage: the declarative base, engines for SQLite and PostgreSQL, sessions, migrations."""

from __future__ import annotations

import threading
import uuid
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    DateTime,
    Engine,
    MetaData,
    TypeDecorator,
    create_engine,
    event,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

MIGRATIONS_DIR = Path(__file__).resolve().parents[3] / "migrations"


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on both databases (SQLite has no time zones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: use aospmdm.core.clock.now()")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime()}


# The check-in path runs Core statements on a plain Connection (no ORM unit of work); the
# functions it shares with ORM code accept either.
Executor = Session | Connection


def dialect_name(db: Executor) -> str:
    return db.dialect.name if isinstance(db, Connection) else db.get_bind().dialect.name


def new_id() -> str:
    return str(uuid.uuid4())


def make_engine(url: str) -> Engine:
    """An engine with the pragmas that let the CLI and the server share one SQLite file."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30, "isolation_level": None},
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        # SQLite has one writer. Threads of this process queue on a lock for their turn,
        # instead of SQLite's busy handler, which polls with sleeps of up to 100 ms and so
        # turns contention into long tails. Other processes (the CLI) still meet the busy
        # timeout. The lock is held from BEGIN until the connection returns to the pool,
        # which is after COMMIT or ROLLBACK.
        turn = threading.Lock()
        _turns[engine] = turn

        # Take the write lock when the transaction starts: a deferred transaction that later
        # writes can fail with SQLITE_BUSY without waiting, while BEGIN IMMEDIATE waits its turn.
        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            record = conn.connection._connection_record
            if record is not None and not record.info.get("turn"):
                if _taken.turn is turn:
                    _taken.turn = None  # taken ahead by try_turn on this thread
                elif not turn.acquire(timeout=60):
                    raise TimeoutError("waited 60 s for the database")
                record.info["turn"] = True
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        @event.listens_for(engine.pool, "checkin")
        def _checkin(_dbapi_conn: Any, record: Any) -> None:
            if record is not None and record.info.pop("turn", False):
                turn.release()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


_turns: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()


class _Taken(threading.local):
    turn: threading.Lock | None = None


_taken = _Taken()


@contextmanager
def turn_if_free(engine: Engine) -> Iterator[bool]:
    """On SQLite, take this process's write turn only if nobody holds it, for work that must
    not wait (on the event loop); the next transaction this thread begins uses it. Yields
    False when the turn is busy, or on PostgreSQL, where there is no such turn."""
    turn = _turns.get(engine)
    if turn is None or not turn.acquire(blocking=False):
        yield False
        return
    _taken.turn = turn
    try:
        yield True
    finally:
        if _taken.turn is turn:  # no transaction began to take it over
            _taken.turn = None
            turn.release()


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with factory() as session, session.begin():
        yield session


def serialize_setup(session: Session) -> None:
    """Hold the one-time-setup lock until the transaction ends, so that processes starting
    together on an empty database make its first rows once. SQLite's BEGIN IMMEDIATE already
    serializes writers; PostgreSQL takes a transaction-scoped advisory lock."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(7424002)"))


def migrate(url: str) -> None:
    """Bring the schema to the newest migration (Alembic), under a lock on PostgreSQL."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                # N workers may start together: one migrates, the others wait and find it done.
                conn.exec_driver_sql("SELECT pg_advisory_lock(7424001)")
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("SELECT pg_advisory_unlock(7424001)")
            conn.commit()
    finally:
        engine.dispose()
