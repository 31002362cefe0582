"""Real `aospmdm serve` processes and CLI runs for tests that need the whole program
(loopback only)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent / "aospmdm"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def quiet_env(**extra: str) -> dict[str, str]:
    """The environment without a database URL (so SQLite in the data dir) plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k != "AOSPMDM_DATABASE_URL"}
    return env | extra


def start(data: Path, port: int, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start a server on ``port`` with ``data`` as its data directory; wait until it serves."""
    proc = subprocess.Popen(
        [str(BIN), "serve", "--data-dir", str(data), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env if env is not None else quiet_env(),
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("server did not start")


def cli(
    data: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run an `aospmdm` command on the data directory ``data``."""
    return subprocess.run(
        [str(BIN), *args, "--data-dir", str(data)],
        capture_output=True,
        text=True,
        env=(env if env is not None else quiet_env())
        | {"AOSPMDM_ADMIN_PASSWORD": "test password 1"},
        timeout=60,
    )
