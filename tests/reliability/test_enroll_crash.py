"""A server killed with SIGKILL while devices enroll must not leave half an enrollment: the
licenses used, the token's usage count, the profile's enrolled count and the audit log all
agree with the devices that exist."""

from __future__ import annotations

import json
import signal
import sqlite3
import threading
import time
from pathlib import Path

import httpx
import pytest

from aospmdm import protocol
from tests.servers import cli, free_port, quiet_env, start
from tests.sync.device import Device

pytestmark = pytest.mark.reliability
ROUNDS = 3


def test_sigkill_during_enrollments_leaves_consistent_counts(tmp_path: Path) -> None:
    data, port = tmp_path / "data", free_port()
    env = quiet_env(AOSPMDM_PUBLIC_URL=f"http://127.0.0.1:{port}")
    proc = start(data, port, env)
    base = f"http://127.0.0.1:{port}"
    try:
        token = cli(data, "admin", "token", "admin@aospmdm.local", env=env).stdout.split()[-1]
        h = {"Authorization": f"Bearer {token}"}
        org = httpx.get(f"{base}/beta/organization", headers=h).json()["value"][0]["id"]
        httpx.post(f"{base}/beta/organization/{org}/setMobileDeviceManagementAuthority", headers=h)
        assert cli(data, "license", "set", "100000", env=env).returncode == 0
        assert cli(data, "profile", "create", "Crash", "--ssid", "s", env=env).returncode == 0
        export = json.loads(cli(data, "token", "export", "Crash", "--out", "-", env=env).stdout)
        secret = export["qrCodeContent"][protocol.ADMIN_EXTRAS_BUNDLE][protocol.ENROLLMENT_TOKEN]
        enrolled: list[str] = []
        for round_ in range(ROUNDS):
            stop = threading.Event()

            def enroll_loop(stop: threading.Event, enrolled: list[str]) -> None:
                with httpx.Client(base_url=base, timeout=5) as client:
                    while not stop.is_set():
                        try:
                            r = Device(client).enroll(secret)
                        except httpx.HTTPError:
                            return
                        assert r.status_code < 500, r.text
                        if r.status_code == 201:
                            enrolled.append(r.json()["deviceId"])

            threads = [
                threading.Thread(target=enroll_loop, args=(stop, enrolled)) for _ in range(3)
            ]
            for t in threads:
                t.start()
            time.sleep(0.7 + 0.3 * round_)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            stop.set()
            for t in threads:
                t.join()
            proc = start(data, port, env)
    finally:
        proc.kill()
        proc.wait()
    db = sqlite3.connect(data / "aospmdm.db")
    devices = {r[0] for r in db.execute("SELECT id FROM managed_device")}
    assert set(enrolled) <= devices, "every acknowledged enrollment survived"
    assert len(devices) >= ROUNDS
    assert db.execute("SELECT licenses_consumed FROM organization").fetchone()[0] == len(devices)
    assert db.execute("SELECT sum(usage_count) FROM enrollment_token").fetchone()[0] == len(devices)
    assert db.execute("SELECT enrolled_device_count FROM enrollment_profile").fetchone()[0] == len(
        devices
    )
    audited = {
        r[0]
        for r in db.execute("SELECT target_id FROM audit_event WHERE activity = 'Enroll device'")
    }
    assert audited == devices
    apps = {r[0] for r in db.execute("SELECT DISTINCT device_id FROM device_app")}
    assert apps == devices
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
