"""The running agent keeps a long poll open: an admin's action reaches an online device in
seconds, not at its next scheduled check-in (a real server and a real `agent run`)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import httpx

from tests.servers import BIN, cli, free_port, quiet_env, start


def test_an_online_agent_acts_within_seconds(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = quiet_env(AOSPMDM_WAIT_SECONDS="20", AOSPMDM_PUBLIC_URL=url)
    server = start(data, port, env)
    agent: subprocess.Popen[bytes] | None = None
    try:
        token = cli(data, "admin", "token", "admin@aospmdm.local", env=env)
        auth = {"Authorization": f"Bearer {token.stdout.strip().splitlines()[-1]}"}
        assert cli(data, "license", "set", "5", env=env).returncode == 0
        org = httpx.get(f"{url}/beta/organization", headers=auth).json()["value"][0]["id"]
        httpx.post(
            f"{url}/beta/organization/{org}/setMobileDeviceManagementAuthority", headers=auth
        )
        assert (
            cli(data, "profile", "create", "Line", "--ssid", "s", "--days", "1", env=env).returncode
            == 0
        )
        export = tmp_path / "qr.json"
        assert cli(data, "token", "export", "Line", "--out", str(export), env=env).returncode == 0
        state = tmp_path / "device"
        enrolled = subprocess.run(
            [str(BIN), "agent", "enroll", "--qr", str(export), "--state-dir", str(state)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert enrolled.returncode == 0, enrolled.stderr
        device_id = json.loads((state / "state.json").read_text())["deviceId"]
        agent = subprocess.Popen(
            [str(BIN), "agent", "run", "--state-dir", str(state)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        time.sleep(2.0)  # checked in; now waiting (its next check-in is minutes away)
        t0 = time.monotonic()
        r = httpx.post(
            f"{url}/beta/deviceManagement/managedDevices/{device_id}/rebootNow", headers=auth
        )
        assert r.status_code == 204, r.text
        state_of = ""
        while time.monotonic() - t0 < 10:
            results = httpx.get(
                f"{url}/beta/deviceManagement/managedDevices/{device_id}/deviceActionResults",
                headers=auth,
            ).json()["value"]
            state_of = results[0]["actionState"]
            if state_of == "done":
                break
            time.sleep(0.1)
        took = time.monotonic() - t0
        assert state_of == "done", "the restart was carried out"
        assert took < 5, f"it took {took:.1f} s"
    finally:
        if agent is not None:
            agent.terminate()
            agent.wait(10)
        server.terminate()
        server.wait(10)
