"""The reference agent carries out app work (docs/protocol.md): real APKs uploaded to the
catalog and assigned to a group are downloaded (signed, SHA-256 checked), installed on the
simulated device under Android's rules (no downgrade, same signer, minSdk), updated and
removed; failures come back with Intune's error codes and are retried by the server; the
agent updates itself by closing and starting again; and the inventory travels as changes."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from aospmdm import protocol as p
from aospmdm.agent import apps, qr
from aospmdm.agent.client import AgentClient, Checkin
from aospmdm.agent.device import Device, Hardware, sdk_level
from aospmdm.agent.simulator import simulate
from aospmdm.cli import agent as cli_agent
from aospmdm.cli import app as cli_app
from tests.agent.fleet import Fleet, make_fleet
from tests.apps import apkfactory
from tests.conftest import Env

runner = CliRunner()
A = "/beta/deviceAppManagement/mobileApps"
D = "/beta/deviceManagement/managedDevices"
AGENT = "org.aospmdm.agent"


PROFILE_NAME = "Apps devices"


@pytest.fixture
def fleet(env: Env, tmp_path: Path) -> Fleet:
    return make_fleet(env, tmp_path, PROFILE_NAME, "Apps devices")


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keystores")


def apk(
    keys: Path, package: str, code: int, name: str = "1.0", alias: str = "test", **kw: Any
) -> bytes:
    return apkfactory.sign_apk(apkfactory.build_apk(package, code, name, **kw), keys, alias)


def upload(fleet: Fleet, data: bytes, name: str = "app.apk") -> dict[str, Any]:
    r = fleet.env.call(
        "POST", A, files={"file": (name, data, "application/vnd.android.package-archive")}
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


def assign(fleet: Fleet, app_id: str, intent: str = "required") -> None:
    body = {
        "mobileAppAssignments": [
            {
                "@odata.type": "#microsoft.graph.mobileAppAssignment",
                "intent": intent,
                "target": {
                    "@odata.type": "#microsoft.graph.groupAssignmentTarget",
                    "groupId": fleet.group_id,
                },
            }
        ]
    }
    r = fleet.env.call("POST", f"{A}/{app_id}/assign", json=body)
    assert r.status_code == 200, r.text


def statuses(fleet: Fleet, app_id: str) -> dict[str, dict[str, Any]]:
    r = fleet.env.call("GET", f"{A}/{app_id}/deviceStatuses")
    assert r.status_code == 200, r.text
    return {s["deviceId"]: s for s in r.json()["value"]}


def installed(d: Device) -> dict[str, tuple[str, int]]:
    return {a.package_name: (a.version_name, a.version_code) for a in d.state.installed_apps}


def app_results(fleet: Fleet) -> list[tuple[str, str, int | None]]:
    return [(r.command_id, r.status, r.error_code) for r in fleet.agent.app_results]


# --- end to end against the real server ------------------------------------------------------


def test_install_update_and_uninstall(fleet: Fleet, keys: Path) -> None:
    d = fleet.device("RW-APP-1")
    fleet.agent.checkin(d)
    app = upload(fleet, apk(keys, "com.example.scanner", 10, "1.0", label="Scanner"))
    assign(fleet, app["id"])
    fleet.agent.checkin(d)
    assert installed(d)["com.example.scanner"] == ("1.0", 10)
    assert app_results(fleet) == [(p.app_work_id("install", app["id"], 10), "done", None)]
    scanner = next(a for a in d.state.installed_apps if a.package_name == "com.example.scanner")
    assert scanner.display_name == "Scanner" and scanner.size_in_bytes == app["size"]
    assert d.state.app_signers["com.example.scanner"] == apkfactory.cert_sha256(keys).lower()
    # The APK was kept only until it was installed.
    assert list((d.state_dir or Path()).glob("downloads/*")) == []
    fleet.agent.checkin(d)  # the inventory shows it
    assert statuses(fleet, app["id"])[d.state.device_id or ""]["installState"] == "installed"
    assert fleet.agent.app_results == [], "done work does not come again"

    # A higher version updates it.
    upload(fleet, apk(keys, "com.example.scanner", 11, "1.1"))
    fleet.agent.checkin(d)
    assert installed(d)["com.example.scanner"] == ("1.1", 11)
    fleet.agent.checkin(d)
    status = statuses(fleet, app["id"])[d.state.device_id or ""]
    assert (status["installState"], status["installedVersion"]) == ("installed", "1.1")

    # `agent status` shows the versions.
    shown = {a["packageName"]: a for a in d.status()["installedApps"]}
    assert shown["com.example.scanner"]["versionName"] == "1.1"
    assert shown["com.example.scanner"]["versionCode"] == 11

    # The uninstall intent removes it.
    assign(fleet, app["id"], "uninstall")
    fleet.agent.checkin(d)
    assert "com.example.scanner" not in installed(d)
    assert "com.example.scanner" not in d.state.app_signers
    assert app_results(fleet) == [(p.app_work_id("uninstall", app["id"], 11), "done", None)]
    fleet.agent.checkin(d)
    assert statuses(fleet, app["id"])[d.state.device_id or ""]["installState"] == "notInstalled"


def test_a_hash_mismatch_fails_and_the_retry_installs(fleet: Fleet, keys: Path) -> None:
    fleet.env.settings.app_retry_seconds = 0
    d = fleet.device("RW-APP-2")
    data = apk(keys, "com.example.notes", 3, "3.0")
    app = upload(fleet, data)
    stored = fleet.env.settings.data_dir / "apps" / f"{app['sha256']}.apk"
    assert stored.read_bytes() == data
    tampered = bytearray(data)
    tampered[len(tampered) // 2] ^= 0xFF
    stored.write_bytes(bytes(tampered))
    assign(fleet, app["id"])
    fleet.agent.checkin(d)
    work_id = p.app_work_id("install", app["id"], 3)
    assert app_results(fleet) == [(work_id, "failed", p.APP_HASH_MISMATCH)]
    assert "com.example.notes" not in installed(d)
    assert list((d.state_dir or Path()).glob("downloads/*")) == [], "a bad file is thrown away"
    status = statuses(fleet, app["id"])[d.state.device_id or ""]
    assert (status["installState"], status["errorCodeHex"]) == ("failed", "0x87D30067")

    # Restored, the server's retry installs it.
    stored.write_bytes(data)
    fleet.agent.checkin(d)
    assert app_results(fleet) == [(work_id, "done", None)]
    assert installed(d)["com.example.notes"] == ("3.0", 3)
    fleet.agent.checkin(d)
    assert statuses(fleet, app["id"])[d.state.device_id or ""]["installState"] == "installed"


def test_a_failed_download_is_reported_and_not_retried_by_the_agent(
    fleet: Fleet, keys: Path
) -> None:
    d = fleet.device("RW-APP-3")
    app = upload(fleet, apk(keys, "com.example.gone", 1))
    (fleet.env.settings.data_dir / "apps" / f"{app['sha256']}.apk").unlink()
    assign(fleet, app["id"])
    fleet.agent.checkin(d)
    assert app_results(fleet) == [
        (p.app_work_id("install", app["id"], 1), "failed", p.APP_DOWNLOAD_FAILED)
    ]
    # The server backs off (300 s by default): the next check-in brings no work.
    fleet.agent.checkin(d)
    assert fleet.agent.app_results == []
    status = statuses(fleet, app["id"])[d.state.device_id or ""]
    assert status["errorCodeHex"] == f"0x{p.APP_DOWNLOAD_FAILED:08X}"


def test_signature_mismatch_and_downgrade_are_refused(fleet: Fleet, keys: Path) -> None:
    fleet.env.settings.app_retry_seconds = 0
    d = fleet.device("RW-APP-4")
    app = upload(fleet, apk(keys, "com.example.maps", 5, "5.0"))
    assign(fleet, app["id"])
    fleet.agent.checkin(d)
    assert installed(d)["com.example.maps"] == ("5.0", 5)

    # An update signed with another key: Android refuses it.
    upload(fleet, apk(keys, "com.example.maps", 6, "6.0", alias="other"))
    fleet.agent.checkin(d)
    assert app_results(fleet) == [
        (p.app_work_id("install", app["id"], 6), "failed", p.APP_SIGNATURE_MISMATCH)
    ]
    assert installed(d)["com.example.maps"] == ("5.0", 5)
    status = statuses(fleet, app["id"])[d.state.device_id or ""]
    assert status["errorCodeHex"] == f"0x{p.APP_SIGNATURE_MISMATCH:08X}"

    # A newer version than the catalog's on the device: no downgrade.
    other = upload(fleet, apk(keys, "com.example.radio", 2, "2.0"))
    d.install([p.InstalledApp(package_name="com.example.radio", version_name="9", version_code=9)])
    assign(fleet, other["id"])
    fleet.agent.checkin(d)
    # The inventory already shows a version as new or newer: the server counts it installed.
    assert installed(d)["com.example.radio"] == ("9", 9)
    work = p.AppWork(
        id=p.app_work_id("install", other["id"], 2),
        type="install",
        app_id=other["id"],
        package_name="com.example.radio",
        version_code=2,
        signing_cert_sha256="ab" * 32,
    )
    with pytest.raises(apps.AppFailure) as caught:
        apps.check(d, work)
    assert caught.value.code == p.APP_DOWNGRADE


def test_min_sdk_above_the_device_is_refused(fleet: Fleet, keys: Path) -> None:
    d = fleet.device("RW-APP-5", os_version="11")
    assert sdk_level(d.hardware) == 30
    app = upload(fleet, apk(keys, "com.example.new", 1, min_sdk=33))
    assign(fleet, app["id"])
    fleet.agent.checkin(d)
    assert app_results(fleet) == [
        (p.app_work_id("install", app["id"], 1), "failed", p.APP_SDK_TOO_LOW)
    ]
    assert "com.example.new" not in installed(d)


def test_the_agent_updates_itself(fleet: Fleet, keys: Path) -> None:
    d = fleet.device("RW-APP-6")
    assert d.state.agent_package == AGENT and d.state.agent_version == "24.9.0"
    fleet.agent.checkin(d)
    app = upload(fleet, apk(keys, AGENT, 250100, "25.1.0", label="aospmdm agent"))
    assert app["role"] == "agent"
    fleet.agent.checkin(d)
    # Downloaded and verified, kept as pending: the agent closes before installing it.
    pending = d.state.pending_self_update
    assert pending is not None and pending.work.version_code == 250100
    assert d.status()["pendingSelfUpdate"]["versionName"] == "25.1.0"
    assert installed(d)[AGENT] == ("24.9.0", 240900)
    assert fleet.agent.app_results == []
    # Crash-safe: the marker is on disk.
    assert Device.load(d.state_dir or Path()).state.pending_self_update is not None
    # It starts again: the update is installed, and reported with the next check-in.
    fleet.agent.checkin(d)
    assert d.state.pending_self_update is None and d.hardware.agent_restarts == 1
    assert installed(d)[AGENT] == ("25.1.0", 250100)
    assert d.state.agent_version == "25.1.0"
    assert app_results(fleet) == [(p.app_work_id("install", app["id"], 250100), "done", None)]
    assert d.state.owed_app_results == []
    shown = fleet.env.call("GET", f"{D}/{d.state.device_id}").json()
    assert shown["agentVersion"] == "25.1.0"
    assert statuses(fleet, app["id"])[d.state.device_id or ""]["installState"] == "installed"


def test_the_inventory_travels_as_changes(fleet: Fleet, keys: Path) -> None:
    d = fleet.device("RW-APP-7")
    first = Checkin(d)
    assert first.request.installed_apps is not None  # the first check-in: the whole list
    fleet.agent.checkin(d)
    assert d.state.acked_apps is not None
    assert Checkin(d).request.installed_apps_changes is None  # nothing changed

    app = upload(fleet, apk(keys, "com.example.inv", 1, "1.0"))
    assign(fleet, app["id"])
    fleet.agent.checkin(d)  # installs it
    exchange = Checkin(d)
    request = exchange.request
    assert request.installed_apps is None
    changes = request.installed_apps_changes
    assert changes is not None and changes.removed == []
    assert [a.package_name for a in changes.upserted] == ["com.example.inv"]
    fleet.agent.checkin(d)
    # The server applied the changes: it holds the device's list and asks for nothing.
    assert d.state.send_installed_apps is False
    assert d.state.acked_apps_hash == p.installed_apps_hash(d.state.installed_apps)
    r = fleet.env.call("GET", f"{D}/{d.state.device_id}/detectedApps")
    if r.status_code == 200:
        names = {a["displayName"] for a in r.json()["value"]}
        assert "Test app" in names or "com.example.inv" in str(r.json())

    # A removal travels as a change, too.
    d.state.installed_apps = [
        a for a in d.state.installed_apps if a.package_name != "com.example.inv"
    ]
    changes = Checkin(d).request.installed_apps_changes
    assert changes is not None and changes.removed == ["com.example.inv"]

    # Changes to a list the server does not hold: it asks for the whole list, and gets it.
    d.state.acked_apps = []
    d.state.acked_apps_hash = p.installed_apps_hash([])
    fleet.agent.checkin(d)
    assert d.state.send_installed_apps is True
    assert Checkin(d).request.installed_apps is not None
    fleet.agent.checkin(d)
    assert d.state.send_installed_apps is False
    assert d.state.acked_apps is not None
    assert d.state.acked_apps_hash == p.installed_apps_hash(d.state.acked_apps)


# --- the rules, on hand-made work --------------------------------------------------------------


def work(package: str, code: int, **over: Any) -> p.AppWork:
    return p.AppWork.model_validate(
        {
            "id": f"app:i:{package}:{code}",
            "type": "install",
            "appId": package,
            "packageName": package,
            "versionName": str(code),
            "versionCode": code,
            "signingCertSha256": "AB:" * 31 + "AB",
            **over,
        }
    )


def test_the_installer_rules() -> None:
    d = Device(Hardware(serial="RW-1", sdk=29))
    assert sdk_level(d.hardware) == 29
    assert sdk_level(Hardware(serial="x", os_version="13")) == 33
    assert sdk_level(Hardware(serial="x", os_version="Tiramisu")) == 34
    unsigned = work("com.a", 1, signingCertSha256=None)
    with pytest.raises(apps.AppFailure) as caught:
        apps.check(d, unsigned)
    assert caught.value.code == p.APP_INSTALL_FAILED
    with pytest.raises(apps.AppFailure) as caught:
        apps.check(d, work("com.a", 1, minSdk=30))
    assert caught.value.code == p.APP_SDK_TOO_LOW
    assert apps.check(d, work("com.a", 1)) is False
    d.state.app_signers["com.a"] = "ab" * 32
    d.install([p.InstalledApp(package_name="com.a", version_code=1)])
    assert apps.check(d, work("com.a", 1)) is True  # already installed: nothing to do
    assert apps.check(d, work("com.a", 2)) is False  # same signer, written differently
    with pytest.raises(apps.AppFailure) as caught:
        apps.check(d, work("com.a", 2, signingCertSha256="cd" * 32))
    assert caught.value.code == p.APP_SIGNATURE_MISMATCH
    d.install([p.InstalledApp(package_name="com.a", version_code=5)])
    with pytest.raises(apps.AppFailure) as caught:
        apps.check(d, work("com.a", 4))
    assert caught.value.code == p.APP_DOWNGRADE
    # Work the device cannot do, and uninstalls it refuses.
    results, downloads = apps.handle(
        d,
        [
            work("com.android.settings", 1, type="uninstall", id="app:u:s:1"),
            work("org.aospmdm.agent", 1, type="uninstall", id="app:u:a:1"),
            work("com.absent", 1, type="uninstall", id="app:u:x:1"),
            work("com.a", 6, type="sideways", id="app:s:a:6"),
            work("com.b", 1),
            work("com.b", 1),
        ],
    )
    got = [(r.command_id, r.status, r.error_code) for r in results]
    assert got == [
        ("app:u:s:1", "failed", p.APP_UNINSTALL_FAILED),
        ("app:u:a:1", "done", None),  # not installed on this bare device
        ("app:u:x:1", "done", None),
        ("app:s:a:6", "notSupported", None),
    ]
    assert [w.id for w in downloads] == ["app:i:com.b:1"]


def test_a_download_cut_short_resumes_with_range(tmp_path: Path) -> None:
    """A download the network cut short is kept and resumed with Range; a file larger than
    the catalog's is refused as a hash mismatch."""
    data = bytes(range(256)) * 40
    sha = hashlib.sha256(data).hexdigest()
    d = Device(Hardware(serial="RW-1"), state_dir=tmp_path)
    w = work("com.r", 1, downloadUrl="https://elsewhere.example/r.apk", sha256=sha, size=len(data))
    seen: list[str | None] = []

    def server(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Range"))
        assert p.HEADER_SIGNATURE not in request.headers  # another host: not signed
        if len(seen) == 1:
            raise httpx.ReadError("cut", request=request)
        start = int(request.headers["Range"].removeprefix("bytes=").rstrip("-"))
        return httpx.Response(206, content=data[start:])

    sink = apps.Sink(d, w)
    sink.start(200)
    sink.write(data[:1000])
    sink.abort()
    client = AgentClient(transport=httpx.MockTransport(server))
    assert isinstance(client.download(d, w), apps.AppFailure)  # the network failed
    got = client.download(d, w)
    assert isinstance(got, apps.Download) and got.sha256 == sha and got.size == len(data)
    assert seen == ["bytes=1000-", "bytes=1000-"]
    big = AgentClient(
        transport=httpx.MockTransport(lambda r: httpx.Response(200, content=data * 2))
    )
    failure = big.download(d, work("com.r", 2, downloadUrl=w.download_url, sha256=sha, size=10))
    assert isinstance(failure, apps.AppFailure) and failure.code == p.APP_HASH_MISMATCH


# --- the command line ------------------------------------------------------------------------


def cli(*args: str, code: int = 0) -> str:
    result = runner.invoke(cli_app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def test_cli_run_updates_the_agent_and_status_lists_the_apps(
    fleet: Fleet, keys: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        cli_agent, "AgentClient", functools.partial(AgentClient, http=fleet.env.client)
    )
    state = fleet.tmp_path / "cli-device"
    cli("agent", "enroll", "--qr", str(fleet.png), "--state-dir", str(state), "--serial", "RW-CLI")
    tool = upload(fleet, apk(keys, "com.example.tool", 7, "7.0"))
    assign(fleet, tool["id"])
    agent = upload(fleet, apk(keys, AGENT, 250200, "25.2.0"))
    out = cli("agent", "run", "--state-dir", str(state), "--max-checkins", "2")
    assert f"app {p.app_work_id('install', tool['id'], 7)}: done" in out
    assert "downloaded and verified agent 25.2.0: closing" in out
    assert "restarted as agent 25.2.0" in out
    assert f"app {p.app_work_id('install', agent['id'], 250200)}: done" in out
    status = json.loads(cli("agent", "status", "--state-dir", str(state)))
    versions = {
        a["packageName"]: (a["versionName"], a["versionCode"]) for a in status["installedApps"]
    }
    assert versions["com.example.tool"] == ("7.0", 7)
    assert versions[AGENT] == ("25.2.0", 250200)
    assert status["agentVersion"] == "25.2.0" and status["agentRestarts"] == 1
    assert status["pendingSelfUpdate"] is None
    devices = fleet.env.call("GET", D).json()["value"]
    assert [x["agentVersion"] for x in devices if x["serialNumber"] == "RW-CLI"] == ["25.2.0"]


def test_cli_checkin_applies_the_update_after_closing(
    fleet: Fleet, keys: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        cli_agent, "AgentClient", functools.partial(AgentClient, http=fleet.env.client)
    )
    state = fleet.tmp_path / "cli-once"
    cli("agent", "enroll", "--qr", str(fleet.png), "--state-dir", str(state), "--serial", "RW-ONE")
    agent = upload(fleet, apk(keys, AGENT, 250300, "25.3.0"))
    out = cli("agent", "checkin", "--state-dir", str(state))
    assert "closing" in out and "restarted as agent 25.3.0" in out
    status = json.loads(cli("agent", "status", "--state-dir", str(state)))
    assert status["agentVersion"] == "25.3.0" and status["pendingSelfUpdate"] is None
    out = cli("agent", "checkin", "--state-dir", str(state))
    assert f"app {p.app_work_id('install', agent['id'], 250300)}: done" in out
    status = statuses(fleet, agent["id"])
    assert {s["installState"] for s in status.values()} == {"installed"}


def test_the_simulator_installs_apps_and_updates_its_agents(fleet: Fleet, keys: Path) -> None:
    tool = upload(fleet, apk(keys, "com.example.sim", 4, "4.0"))
    assign(fleet, tool["id"])
    agent = upload(fleet, apk(keys, AGENT, 250400, "25.4.0"))
    report = asyncio.run(
        simulate(
            qr.read(fleet.png),
            devices=2,
            duration=1.5,
            concurrency=2,
            interval=0.1,
            progress=False,
            transport=httpx.ASGITransport(app=fleet.env.app),
        )
    )
    assert report.errors == {} and report.enrolled == 2
    for app_id in (tool["id"], agent["id"]):
        assert [s["installState"] for s in statuses(fleet, app_id).values()] == ["installed"] * 2
    devices = fleet.env.call("GET", D).json()["value"]
    assert sorted(x["agentVersion"] for x in devices) == ["25.4.0", "25.4.0"]
