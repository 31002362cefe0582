"""Workers starting together on an empty PostgreSQL database make the first rows once: one
organization, one first admin, and one printed password."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.servers import BIN, free_port

pytestmark = pytest.mark.reliability
PG_URL = os.environ.get("AOSPMDM_TEST_DATABASE_URL")
WORKERS = 6


@pytest.mark.skipif(not PG_URL, reason="needs AOSPMDM_TEST_DATABASE_URL (CI sets it)")
def test_workers_starting_together_bootstrap_once(tmp_path: Path) -> None:
    assert PG_URL
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    name = f"aospmdm_concurrent_start_{os.getpid()}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    env = {**os.environ, "AOSPMDM_DATABASE_URL": url, "AOSPMDM_SECRET_KEY": "k" * 40}
    ports = [free_port() for _ in range(WORKERS)]
    procs = [
        subprocess.Popen(
            [str(BIN), "serve", "--data-dir", str(tmp_path / f"w{i}"), "--port", str(port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i, port in enumerate(ports)
    ]
    try:
        deadline = time.monotonic() + 60
        healthy: set[int] = set()
        while len(healthy) < WORKERS and time.monotonic() < deadline:
            for port, proc in zip(ports, procs, strict=True):
                assert proc.poll() is None, proc.communicate()[1]
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                        healthy.add(port)
                except httpx.HTTPError:
                    pass
            time.sleep(0.2)
        assert len(healthy) == WORKERS
    finally:
        for proc in procs:
            proc.terminate()
        outputs = [proc.communicate(timeout=20) for proc in procs]
    printed = sum("This password is shown once" in out for out, _ in outputs)
    assert printed == 1, "exactly one worker created and printed the first admin"
    assert not any("Traceback" in err for _, err in outputs)
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM organization")).scalar() == 1
        assert conn.execute(text("SELECT count(*) FROM admin")).scalar() == 1
        assert conn.execute(text("SELECT count(*) FROM scope_tag")).scalar() == 1
        assert conn.execute(text("SELECT count(*) FROM role_definition")).scalar() == 4
    engine.dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
