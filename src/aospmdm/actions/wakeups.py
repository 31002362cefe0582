"""Wake-ups: a device waiting in GET /device/v1/wait returns as soon as it has work.

Who has work is always read from the database (the command queue); the wake-up only says
"look now". In one process an in-process notifier does it: a committed transaction that
queued a command wakes the device's waiters. With several workers on PostgreSQL the same
transaction also sends NOTIFY, delivered at commit to every worker's LISTEN connection. A
lost wake-up costs at most one wait period: the device asks again, and checks in on its
schedule anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from aospmdm.core.db import Executor, dialect_name

log = logging.getLogger("aospmdm.wakeups")
CHANNEL = "aospmdm_wake"
_KEY = "aospmdm.wake"


class Notifier:
    """Waiting devices of this process, and a thread-safe way to wake them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}

    @contextlib.contextmanager
    def waiting(self, device_id: str) -> Iterator[asyncio.Event]:
        """Register before looking at the queue, so a command queued in between still
        wakes the waiter."""
        entry = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._waiters.setdefault(device_id, set()).add(entry)
        try:
            yield entry[1]
        finally:
            with self._lock:
                found = self._waiters.get(device_id)
                if found is not None:
                    found.discard(entry)
                    if not found:
                        del self._waiters[device_id]

    def wake(self, device_ids: set[str] | list[str]) -> None:
        with self._lock:
            entries = [e for d in device_ids for e in self._waiters.get(d, ())]
        for loop, ev in entries:
            with contextlib.suppress(RuntimeError):  # a loop that closed meanwhile
                loop.call_soon_threadsafe(ev.set)

    def count(self) -> int:
        with self._lock:
            return sum(len(v) for v in self._waiters.values())


def announce(db: Executor, device_id: str) -> None:
    """Called in the transaction that queued work for a device: its waiters wake once the
    transaction commits (never before: they would find nothing)."""
    if isinstance(db, Session):
        db.info.setdefault(_KEY, set()).add(device_id)
    if dialect_name(db) == "postgresql":
        db.execute(text("SELECT pg_notify(:channel, :id)"), {"channel": CHANNEL, "id": device_id})


def install(sessions: sessionmaker[Session], notifier: Notifier) -> None:
    """Wake this process's waiters after a session that announced work commits."""

    @event.listens_for(sessions, "after_commit")
    def _committed(session: Session) -> None:
        ids = session.info.pop(_KEY, None)
        if ids:
            notifier.wake(ids)

    @event.listens_for(sessions, "after_rollback")
    def _rolled_back(session: Session) -> None:
        session.info.pop(_KEY, None)


async def listen(database_url: str, notifier: Notifier) -> None:
    """PostgreSQL only: wake this worker's waiters on every NOTIFY from any worker. Runs
    until cancelled; reconnects after a lost connection."""
    import psycopg

    url = make_url(database_url).set(drivername="postgresql")
    dsn = url.render_as_string(hide_password=False)
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                await conn.execute(f"LISTEN {CHANNEL}")
                async for note in _notifies(conn):
                    notifier.wake([note])
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("wake-up listener lost its connection; reconnecting")
            await asyncio.sleep(1)


async def _notifies(conn: Any) -> AsyncIterator[str]:
    async for note in conn.notifies():
        yield str(note.payload)
