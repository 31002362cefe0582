"""Crash checks (make reliability): a real server on SQLite, killed with SIGKILL while the
API and the CLI write to the same file, must come back with an intact database in which no
change exists without its audit record and no audit record without its change."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.servers import cli, free_port, start

pytestmark = pytest.mark.reliability
ROUNDS = int(os.environ.get("AOSPMDM_CRASH_ROUNDS", "4"))


def test_sigkill_mid_write_leaves_a_consistent_database(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port = free_port()
    proc = start(data, port)
    token = cli(data, "admin", "token", "admin@aospmdm.local").stdout.strip().splitlines()[-1]
    headers = {"Authorization": f"Bearer {token}"}
    base = f"http://127.0.0.1:{port}/beta/deviceManagement/roleScopeTags"
    try:
        for round_ in range(ROUNDS):
            stop = threading.Event()
            created: list[str] = []

            def writer(prefix: str, stop: threading.Event, created: list[str]) -> None:
                i = 0
                with httpx.Client(headers=headers, timeout=5) as client:
                    while not stop.is_set():
                        try:
                            r = client.post(base, json={"displayName": f"{prefix}-{i}"})
                            if r.status_code == 201:
                                created.append(r.json()["id"])
                            else:
                                assert r.status_code < 500, r.text
                        except httpx.HTTPError:
                            return  # the server died under us: that is the point
                        i += 1

            threads = [
                threading.Thread(target=writer, args=(f"r{round_}w{n}", stop, created))
                for n in range(3)
            ]
            for t in threads:
                t.start()
            # The CLI writes to the same file at the same time.
            res = cli(data, "scope-tag", "create", f"cli-{round_}")
            assert res.returncode == 0, res.stderr
            time.sleep(0.5 + 0.25 * round_)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            stop.set()
            for t in threads:
                t.join()
            proc = start(data, port)
            names: set[str] = set()
            url: str | None = f"{base}?$top=999"
            while url:
                r = httpx.get(url, headers=headers)
                assert r.status_code == 200
                names |= {t["id"] for t in r.json()["value"]}
                url = r.json().get("@odata.nextLink")
            # Every acknowledged create survived the crash.
            assert set(created) <= names
    finally:
        proc.kill()
        proc.wait()

    db = sqlite3.connect(data / "aospmdm.db")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    tags = {r[0] for r in db.execute("SELECT id FROM scope_tag WHERE id != '0'")}
    audited = {
        r[0]
        for r in db.execute("SELECT target_id FROM audit_event WHERE activity = 'Create scope tag'")
    }
    assert tags == audited, "every change has its audit record, and only real changes do"
    assert json.dumps(sorted(tags))  # non-empty run
    assert len(tags) >= ROUNDS
