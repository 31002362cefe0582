"""Periodic work in the server process (DESIGN.md, Jobs): each run holds a database lock, so
with N workers on one PostgreSQL exactly one of them does it; no scheduler is needed."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from aospmdm.core.db import transaction

log = logging.getLogger("aospmdm.jobs")


@dataclass(frozen=True)
class Job:
    name: str
    every_seconds: float
    # Given a session inside the job's transaction; or, with own_transactions, the session
    # factory, for a job that must not hold a transaction open while it waits on the network
    # (it then keeps N workers from doing the same work itself, by claiming rows).
    run: Callable[[Any], object]
    own_transactions: bool = False


def _lock_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def run_once(sessions: sessionmaker[Session], job: Job) -> bool:
    """Run the job if no other worker is running it now; False when another one is."""
    if job.own_transactions:
        job.run(sessions)
        return True
    with transaction(sessions) as session:
        if session.get_bind().dialect.name == "postgresql":
            got = session.execute(
                text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _lock_key(job.name)}
            ).scalar()
            if not got:
                return False
        # SQLite: the transaction's BEGIN IMMEDIATE already makes runs take turns.
        job.run(session)
        return True


async def run_forever(sessions: sessionmaker[Session], jobs: Sequence[Job]) -> None:
    """Run each job every ``every_seconds`` until cancelled; a failing run is logged and
    tried again next time."""
    next_at = {job.name: 0.0 for job in jobs}
    loop = asyncio.get_running_loop()
    while True:
        now = loop.time()
        for job in jobs:
            if now >= next_at[job.name]:
                next_at[job.name] = now + job.every_seconds
                try:
                    await run_in_threadpool(run_once, sessions, job)
                except Exception:
                    log.exception("job %s failed", job.name)
        await asyncio.sleep(max(0.5, min(next_at.values()) - loop.time()))
