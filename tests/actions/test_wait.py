"""GET /device/v1/wait: a signed long poll that returns as soon as the device has work, or
when the wait runs out; across workers on PostgreSQL through LISTEN/NOTIFY."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from aospmdm import protocol
from aospmdm.core import clock
from tests.conftest import Env
from tests.policies.fleet import device, ready
from tests.servers import cli, free_port, quiet_env, start
from tests.sync.device import Device

DEVICES = "/beta/deviceManagement/managedDevices"


def wait(d: Device, client: httpx.Client | None = None) -> httpx.Response:
    """A signed GET /device/v1/wait (an empty body is signed)."""
    path = "/device/v1/wait"
    ts = int(clock.now().timestamp() * 1000)
    nonce = protocol.b64url(os.urandom(16))
    sig = d.key.sign(
        protocol.signing_string("GET", path, ts, nonce, b""), ec.ECDSA(hashes.SHA256())
    )
    headers = {
        protocol.HEADER_DEVICE: d.device_id or "",
        protocol.HEADER_TIMESTAMP: str(ts),
        protocol.HEADER_NONCE: nonce,
        protocol.HEADER_SIGNATURE: protocol.b64url(sig),
    }
    return (client or d.client).get(path, headers=headers)


def test_the_wait_runs_out_without_work_and_answers_at_once_with_work(env: Env) -> None:
    env.settings.wait_seconds = 0.3
    d = device(env, ready(env))
    t0 = time.monotonic()
    r = wait(d)
    assert r.status_code == 200 and r.json() == {"work": False}
    assert time.monotonic() - t0 >= 0.3
    env.settings.wait_seconds = 30
    assert env.call("POST", f"{DEVICES}/{d.device_id}/rebootNow").status_code == 204
    t0 = time.monotonic()
    assert wait(d).json() == {"work": True}
    assert time.monotonic() - t0 < 5


def test_the_wait_returns_early_when_an_action_is_queued(env: Env) -> None:
    env.settings.wait_seconds = 20
    d = device(env, ready(env))
    answers: list[tuple[float, httpx.Response]] = []

    def waiting() -> None:
        t0 = time.monotonic()
        r = wait(d)
        answers.append((time.monotonic() - t0, r))

    waiter = threading.Thread(target=waiting)
    waiter.start()
    deadline = time.monotonic() + 5
    while env.app.state.notifier.count() == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert env.app.state.notifier.count() == 1, "the device is waiting"
    assert env.call("POST", f"{DEVICES}/{d.device_id}/rebootNow").status_code == 204
    waiter.join(10)
    [(took, r)] = answers
    assert r.status_code == 200 and r.json() == {"work": True}
    assert took < 5, took
    assert env.app.state.notifier.count() == 0


def test_an_unsigned_or_forged_wait_is_refused(env: Env) -> None:
    d = device(env, ready(env))
    r = env.client.get("/device/v1/wait")
    assert r.status_code == 401 and r.json()["error"]["code"] == "signatureMissing"
    other = Device(env.client, device_id=d.device_id)  # another key, same id
    r = wait(other)
    assert r.status_code == 401 and r.json()["error"]["code"] == "signatureInvalid"
    assert env.app.state.notifier.count() == 0


def test_serve_refuses_several_workers_on_sqlite(tmp_path: Path) -> None:
    r = cli(tmp_path / "data", "serve", "--workers", "2")
    assert r.returncode == 2
    assert "needs PostgreSQL" in r.stderr


def test_a_wake_up_crosses_workers_on_postgresql(tmp_path: Path, database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL half")
    env = quiet_env(
        AOSPMDM_DATABASE_URL=database_url,
        AOSPMDM_SECRET_KEY="wake-test-instance-key-" + "y" * 32,
        AOSPMDM_WAIT_SECONDS="20",
    )
    data = tmp_path / "data"
    assert cli(data, "migrate", env=env).returncode == 0
    ports = [free_port(), free_port()]
    servers = [start(data, p, env) for p in ports]
    try:
        a, b = (f"http://127.0.0.1:{p}" for p in ports)
        made = cli(data, "admin", "token", "admin@aospmdm.local", env=env)
        assert made.returncode == 0, made.stderr
        auth = {"Authorization": f"Bearer {made.stdout.strip().splitlines()[-1]}"}
        cli(data, "license", "set", "5", env=env)
        org = httpx.get(f"{b}/beta/organization", headers=auth).json()["value"][0]["id"]
        httpx.post(f"{b}/beta/organization/{org}/setMobileDeviceManagementAuthority", headers=auth)
        cli(data, "profile", "create", "Wake", "--ssid", "s", "--days", "1", env=env)
        import json

        export = json.loads(cli(data, "token", "export", "Wake", "--out", "-", env=env).stdout)
        secret = export["qrCodeContent"][protocol.ADMIN_EXTRAS_BUNDLE][protocol.ENROLLMENT_TOKEN]
        with httpx.Client(base_url=a, timeout=30) as on_a:
            d = Device(on_a)
            assert d.enroll(secret).status_code == 201
            answers: list[tuple[float, httpx.Response]] = []

            def waiting() -> None:
                t0 = time.monotonic()
                answers.append((0.0, wait(d)))
                answers[-1] = (time.monotonic() - t0, answers[-1][1])

            waiter = threading.Thread(target=waiting)
            waiter.start()
            time.sleep(1.0)  # the device is waiting on worker A
            r = httpx.post(f"{b}{DEVICES}/{d.device_id}/rebootNow", headers=auth)
            assert r.status_code == 204, r.text
            waiter.join(25)
            [(took, answer)] = answers
            assert answer.json() == {"work": True}
            assert took < 5, took
    finally:
        for s in servers:
            s.terminate()
            s.wait(10)
