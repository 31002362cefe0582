"""SQLite's in-process write turn: queued by threads, taken only-if-free on the event loop."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import text

from aospmdm.core.db import make_engine, turn_if_free


def test_turn_if_free_never_waits_and_hands_the_turn_to_the_next_transaction(
    tmp_path: Path,
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 't.db'}")
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with engine.begin() as conn:
            conn.execute(text("SELECT 1"))
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(10)
    with turn_if_free(engine) as free:
        assert free is False, "busy: the caller must go elsewhere, not wait"
    release.set()
    holder.join(10)
    with turn_if_free(engine) as free:
        assert free is True
        with engine.begin() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
    with turn_if_free(engine) as free:
        assert free is True, "the transaction gave the turn back"
    with turn_if_free(engine) as free:
        assert free is True, "unused, the turn is given back too"
    engine.dispose()


def test_postgresql_has_no_turn() -> None:
    engine = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    with turn_if_free(engine) as free:
        assert free is False
    engine.dispose()
