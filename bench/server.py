"""A real aospmdm server in a subprocess, for benchmarks (loopback only)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from aospmdm import protocol

BIN = Path(sys.executable).parent / "aospmdm"


@dataclass
class Server:
    url: str
    data: Path
    pid: int
    env: dict[str, str]

    def cli(self, *args: str) -> str:
        env = {**self.env, "AOSPMDM_ADMIN_PASSWORD": "benchmark password 1"}
        out = subprocess.run(
            [str(BIN), *args, "--data-dir", str(self.data)],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        return out.stdout


@contextmanager
def running_server(
    keep_database_url: bool = False, extra_env: dict[str, str] | None = None, workers: int = 1
) -> Iterator[Server]:
    """A fresh server on SQLite in a temporary data directory, or, with
    ``keep_database_url``, on the database AOSPMDM_DATABASE_URL names (there with
    ``workers`` worker processes)."""
    with tempfile.TemporaryDirectory() as tmp, socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        data = Path(tmp) / "data"
        env = {
            k: v for k, v in os.environ.items() if keep_database_url or k != "AOSPMDM_DATABASE_URL"
        }
        env.update(extra_env or {})
        env["AOSPMDM_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
        proc = subprocess.Popen(
            [str(BIN), "serve", "--data-dir", str(data), "--port", str(port)]
            + (["--workers", str(workers)] if workers > 1 else []),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            yield Server(url=url, data=data, pid=proc.pid, env=env)
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def ready_to_enroll(server: Server, name: str) -> tuple[str, str]:
    """Set the MDM authority and make an enrollment profile ``name``: (an admin API token,
    the profile's enrollment token secret for devices)."""
    token = server.cli("admin", "token", "admin@aospmdm.local").strip().splitlines()[-1]
    auth = {"Authorization": f"Bearer {token}"}
    org = httpx.get(f"{server.url}/beta/organization", headers=auth).json()["value"][0]
    httpx.post(
        f"{server.url}/beta/organization/{org['id']}/setMobileDeviceManagementAuthority",
        headers=auth,
    ).raise_for_status()
    server.cli("profile", "create", name, "--ssid", "bench", "--days", "1")
    export = json.loads(server.cli("token", "export", name, "--out", "-"))
    return token, export["qrCodeContent"][protocol.ADMIN_EXTRAS_BUNDLE][protocol.ENROLLMENT_TOKEN]


def throughput(
    call: Callable[[httpx.Client], httpx.Response], seconds: float, workers: int = 8
) -> float:
    """Requests per second that ``workers`` concurrent clients complete in ``seconds``."""
    deadline = time.monotonic() + seconds

    def loop() -> int:
        n = 0
        with httpx.Client(timeout=10) as client:
            while time.monotonic() < deadline:
                r = call(client)
                if r.status_code >= 400:
                    raise RuntimeError(f"{r.status_code}: {r.text}")
                n += 1
        return n

    start = time.monotonic()
    with ThreadPoolExecutor(workers) as pool:
        total = sum(pool.map(lambda _: loop(), range(workers)))
    return total / (time.monotonic() - start)
