"""End to end with the reference agent: a profile's QR PNG, decoded by the agent, enrolls a
device that checks in and shows in the API with the right fields and its required apps."""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from aospmdm.agent import qr
from aospmdm.agent.client import AgentClient
from aospmdm.agent.device import Device
from aospmdm.agent.simulator import simulate
from aospmdm.core import clock
from aospmdm.tenant import access, service
from tests.conftest import Env
from tests.servers import BIN, cli, free_port, quiet_env, start

P = "/beta/deviceManagement/androidDeviceOwnerEnrollmentProfiles"
D = "/beta/deviceManagement/managedDevices"


@pytest.fixture
def qr_png(env: Env, tmp_path: Path) -> Path:
    env.call("POST", f"/beta/organization/{env.org_id()}/setMobileDeviceManagementAuthority")
    with env.db() as s:
        service.set_license_count(s, access.cli_actor(), 20)
    expires = (clock.now() + timedelta(days=7)).isoformat()
    p = env.call(
        "POST",
        P,
        json={
            "displayName": "Factory 1 devices",
            "wifiSsid": "Staging",
            "wifiSecurityType": "wpa",
            "wifiPassword": "staging-key-1",
            "deviceNameTemplate": "NAV-{{SERIAL}}",
            "tokenExpirationDateTime": expires,
        },
    ).json()
    path = tmp_path / "qr.png"
    path.write_bytes(env.call("GET", f"{P}/{p['id']}/qrCode.png").content)
    return path


def test_agent_enrolls_from_the_png_checks_in_and_shows_in_the_api(
    env: Env, qr_png: Path, tmp_path: Path
) -> None:
    extras = qr.read(qr_png)
    device = Device.open(tmp_path / "state", serial="RW0001")
    with AgentClient(http=env.client) as agent:
        answer = agent.enroll(device, extras)
        agent.checkin(device)
        agent.checkin(device)
    status = device.status()
    assert status["enrolled"] is True and status["deviceId"] == answer.device_id
    assert status["wifiSsid"] == "Staging", "the agent joined the QR's network"
    d = env.call("GET", f"{D}/{answer.device_id}").json()
    assert d["deviceName"] == "NAV-RW0001"
    assert d["enrollmentProfileName"] == "Factory 1 devices"
    assert d["serialNumber"] == "RW0001" and d["manufacturer"] == "RealWear"
    assert d["managementState"] == "managed"
    assert d["agentVersion"] == status["agentVersion"]
    apps = {
        a["packageName"]: a["version"]
        for a in env.call("GET", f"{D}/{answer.device_id}/detectedApps").json()["value"]
    }
    for required in answer.required_apps:
        assert apps[required.package_name] == required.version_name, "installed and reported"


def test_factory_reset_forgets_the_enrollment_but_not_the_counters(
    env: Env, qr_png: Path, tmp_path: Path
) -> None:
    device = Device.open(tmp_path / "state")
    with AgentClient(http=env.client) as agent:
        agent.enroll(device, qr.read(qr_png))
    device.factory_reset()
    status = device.status()
    assert status["enrolled"] is False and status["deviceId"] is None
    assert status["factoryResets"] == 1
    assert isinstance(status["installedApps"], list)


def test_the_simulator_runs_a_small_fleet(env: Env, qr_png: Path) -> None:
    import asyncio

    report = asyncio.run(
        simulate(
            qr.read(qr_png),
            devices=5,
            duration=1.0,
            concurrency=5,
            interval=0.05,
            progress=False,
            transport=httpx.ASGITransport(env.app),
        )
    )
    assert report.enrolled == 5 and report.checkins >= 5 and report.errors == {}
    assert report.p50_ms is not None and report.p99_ms is not None
    listed = env.call("GET", D, params={"$count": "true", "$top": "1"}).json()
    assert listed["@odata.count"] == 5


def test_agent_cli_against_a_real_server(tmp_path: Path) -> None:
    """The agent CLI, as an operator runs it, against `aospmdm serve` over loopback."""
    data, port = tmp_path / "data", free_port()
    env = quiet_env(AOSPMDM_PUBLIC_URL=f"http://127.0.0.1:{port}")
    proc = start(data, port, env)
    try:
        token = cli(data, "admin", "token", "admin@aospmdm.local", env=env).stdout.split()[-1]
        h = {"Authorization": f"Bearer {token}"}
        base = f"http://127.0.0.1:{port}"
        org = httpx.get(f"{base}/beta/organization", headers=h).json()["value"][0]["id"]
        httpx.post(f"{base}/beta/organization/{org}/setMobileDeviceManagementAuthority", headers=h)
        assert cli(data, "license", "set", "5", env=env).returncode == 0
        assert (
            cli(data, "profile", "create", "Glasses", "--ssid", "Staging", env=env).returncode == 0
        )
        png = tmp_path / "glasses.png"
        res = cli(data, "token", "qr", "Glasses", "--out", str(png), env=env)
        assert res.returncode == 0, res.stderr
        state = str(tmp_path / "device")

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [str(BIN), "agent", *args, "--state-dir", state],
                capture_output=True,
                text=True,
                timeout=60,
            )

        enrolled = run("enroll", "--qr", str(png), "--serial", "CLI-1")
        assert enrolled.returncode == 0, enrolled.stderr
        assert run("checkin").returncode == 0
        status = json.loads(run("status").stdout)
        assert status["enrolled"] is True and status["deviceId"]
        assert status["passcode"] is None and status["locked"] is False
        old = subprocess.run(
            [
                str(BIN),
                "agent",
                "enroll",
                "--qr",
                str(png),
                "--state-dir",
                str(tmp_path / "old"),
                "--agent-version",
                "24.6.0",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert old.returncode == 2 and "agentUpdateRequired" in old.stderr
        assert "Traceback" not in old.stderr
        devices = httpx.get(f"{base}{D}", headers=h).json()["value"]
        assert [d["serialNumber"] for d in devices] == ["CLI-1"]
    finally:
        proc.kill()
        proc.wait()
