"""The apps admin API and app delivery at check-in: the catalog with its required apps, APK
uploads (read with a real parser, versions that must rise, bad files), assignments and their
conflict rules, app work and results, retries with backoff, downloads with Range, the agent
update pointer, fleet-wide discovered apps, inventory changes, and the 401/403/404 matrix."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from aospmdm import protocol
from aospmdm.core import clock
from tests.apps.apkfactory import build_apk, cert_sha256, sign_apk
from tests.conftest import Env
from tests.policies.fleet import check_in, device, group, ready
from tests.sync.device import Device, results

APPS = "/beta/deviceAppManagement/mobileApps"
AGENT = "org.aospmdm.agent"


def upload(
    env: Env, data: bytes, name: str = "app.apk", token: str | None = "full", **fields: str
) -> httpx.Response:
    return env.call("POST", APPS, token=token, files={"file": (name, data)}, data=fields)


def uploaded(env: Env, data: bytes, **fields: str) -> dict[str, Any]:
    r = upload(env, data, **fields)
    assert r.status_code == 201, r.text
    return dict(r.json())


def assign(env: Env, app_id: str, *targets: tuple[str, str], token: str = "full") -> Any:
    """Assign the app: (group id, intent) pairs."""
    body = {
        "mobileAppAssignments": [
            {"intent": intent, "target": _target(gid)} for gid, intent in targets
        ]
    }
    return env.call("POST", f"{APPS}/{app_id}/assign", token=token, json=body)


def statuses(env: Env, app_id: str) -> dict[str, dict[str, Any]]:
    r = env.call("GET", f"{APPS}/{app_id}/deviceStatuses")
    assert r.status_code == 200, r.text
    return {s["deviceId"]: s for s in r.json()["value"]}


def work(d: Device, **kw: Any) -> list[dict[str, Any]]:
    return list(check_in(d, **kw)["apps"])


def app_result(d: Device, work_id: str, status: str, code: int | None = None) -> list[str]:
    body = protocol.ResultsRequest(
        results=[protocol.CommandResult(command_id=work_id, status=status, error_code=code)]  # type: ignore[arg-type]
    )
    r = d.signed("/device/v1/results", body.model_dump_json(by_alias=True).encode())
    assert r.status_code == 200, r.text
    return list(r.json()["outcomes"])


def installs(d: Device, package: str, code: int, name: str = "1.0") -> None:
    """The device now reports the app installed (its next check-in sends the list)."""
    d.apps = [a for a in d.apps if a.package_name != package] + [
        protocol.InstalledApp(package_name=package, version_name=name, version_code=code)
    ]


# --- the catalog ------------------------------------------------------------------------------


def test_required_apps_are_always_in_the_catalog(env: Env) -> None:
    r = env.call("GET", APPS)
    assert r.status_code == 200, r.text
    apps = {a["packageId"]: a for a in r.json()["value"]}
    s = env.settings
    assert apps[AGENT]["versionName"] == s.agent_version_name
    assert apps[AGENT]["versionCode"] == str(s.agent_version_code)
    assert {a["role"] for a in apps.values() if a["isRequiredApp"]} == {
        "agent",
        "authenticator",
        "companyPortal",
    }
    agent = apps[AGENT]
    r = env.call("DELETE", f"{APPS}/{agent['id']}")
    assert r.status_code == 409 and r.json()["error"]["code"] == "requiredApp"
    gid = group(env, "All", [])
    r = assign(env, agent["id"], (gid, "uninstall"))
    assert r.status_code == 400, r.text
    assert r.json()["error"]["target"] == "mobileAppAssignments"
    r = env.call("PATCH", f"{APPS}/{agent['id']}", json={"displayName": "Agent"})
    assert r.status_code == 200 and r.json()["displayName"] == "Agent"


def test_upload_reads_the_apk_and_stores_it_by_sha256(env: Env) -> None:
    data = build_apk("com.example.scan", 42, "1.2.3", min_sdk=28, label="Scanner")
    app = uploaded(env, data, publisher="Contoso")
    assert app["@odata.type"] == "#microsoft.graph.androidLobApp"
    assert (app["packageId"], app["versionName"], app["versionCode"]) == (
        "com.example.scan",
        "1.2.3",
        "42",
    )
    assert app["displayName"] == "Scanner" and app["publisher"] == "Contoso"
    assert app["minSdkVersion"] == 28
    assert app["minimumSupportedOperatingSystem"]["v9_0"] is True
    sha = hashlib.sha256(data).hexdigest()
    assert app["sha256"] == sha and app["size"] == len(data)
    assert app["signingCertificateSha256"] is None
    assert any("not signed" in w for w in app["warnings"]), app["warnings"]
    stored = Path(env.settings.data_dir) / "apps" / f"{sha}.apk"
    assert stored.read_bytes() == data
    assert [e["activity"] for e in env.audit()].count("Upload app") == 1


def test_a_signed_apk_records_its_certificate(env: Env, tmp_path: Path) -> None:
    signed = sign_apk(build_apk("com.example.signed", 1), tmp_path)
    app = uploaded(env, signed)
    assert app["signingCertificateSha256"] == cert_sha256(tmp_path)
    assert app["warnings"] == []


def test_new_versions_must_have_a_higher_version_code(env: Env) -> None:
    first = uploaded(env, build_apk("com.example.v", 10, "1.0"))
    second = uploaded(env, build_apk("com.example.v", 11, "1.1"))
    assert second["id"] == first["id"]
    assert [v["versionCode"] for v in second["versions"]] == [11, 10]
    assert second["versionName"] == "1.1"
    for code in (11, 9):
        r = upload(env, build_apk("com.example.v", code, "old"))
        assert r.status_code == 409, r.text
        assert r.json()["error"]["code"] == "versionCodeNotHigher"
    got = env.call("GET", f"{APPS}/{first['id']}").json()
    assert len(got["versions"]) == 2
    files = list((Path(env.settings.data_dir) / "apps").iterdir())
    assert len([f for f in files if f.suffix == ".apk" and not f.name.startswith(".")]) == 2
    assert not [f for f in files if f.name.startswith(".upload")], "no spooled leftovers"


@pytest.mark.parametrize(
    ("files", "data", "status", "code"),
    [
        ({"file": ("a.apk", b"not a zip at all")}, {}, 400, "notZip"),
        ({"file": ("a.apk", b"PK\x05\x06" + b"\0" * 18)}, {}, 400, "noManifest"),
        ({"other": ("a.apk", b"x")}, {}, 400, "badRequest"),
        (None, {"displayName": "x"}, 400, "unsupportedMediaType"),
        ({"file": ("a.apk", b"x")}, {"color": "blue"}, 400, "badRequest"),
    ],
)
def test_bad_uploads_are_refused_and_change_nothing(
    env: Env, files: Any, data: Any, status: int, code: str
) -> None:
    before = len(env.call("GET", APPS).json()["value"])
    if files is None:
        r = env.call("POST", APPS, json=data)
    else:
        r = env.call("POST", APPS, files=files, data=data)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    assert len(env.call("GET", APPS).json()["value"]) == before
    directory = Path(env.settings.data_dir) / "apps"
    assert not directory.exists() or not [f for f in directory.iterdir() if f.is_file()]


def test_an_apk_over_the_size_cap_gets_413(env: Env) -> None:
    env.settings.max_apk_bytes = 2048
    r = upload(env, build_apk("com.example.big", 1, extra_files={"x.bin": os.urandom(8000)}))
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == "payloadTooLarge"
    assert len(env.call("GET", APPS).json()["value"]) == 3


# --- delivery -------------------------------------------------------------------------------------


def test_required_app_is_installed_on_targeted_devices_only(env: Env) -> None:
    secret = ready(env)
    a, b = device(env, secret), device(env, secret)
    data = build_apk("com.example.scan", 42, "1.2.3")
    app = uploaded(env, data)
    gid = group(env, "Line", [a])
    r = assign(env, app["id"], (gid, "required"))
    assert r.status_code == 200, r.text
    assert [x["intent"] for x in r.json()["value"]] == ["required"]
    assert work(b) == []
    (job,) = work(a)
    assert job["type"] == "install" and job["packageName"] == "com.example.scan"
    assert job["versionCode"] == 42 and job["sha256"] == hashlib.sha256(data).hexdigest()
    assert job["id"] == protocol.app_work_id("install", app["id"], 42)
    assert statuses(env, app["id"])[a.device_id or ""]["installState"] == "pending"
    # The download: signed, whole or in ranges.
    path = httpx.URL(job["downloadUrl"]).path
    got = a.signed_get(path)
    assert got.status_code == 200 and got.content == data
    part = a.signed_get(path, headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == data[10:20]
    assert env.client.get(path).status_code == 401
    # Work comes again until the device reports; done → installed; then nothing more.
    assert [j["id"] for j in work(a)] == [job["id"]]
    assert app_result(a, job["id"], "done") == ["recorded"]
    assert app_result(a, job["id"], "done") == ["duplicate"]
    installs(a, "com.example.scan", 42, "1.2.3")
    assert work(a, send_apps=True) == []
    st = statuses(env, app["id"])
    assert st[a.device_id or ""]["installState"] == "installed"
    assert st[a.device_id or ""]["installedVersion"] == "1.2.3"
    assert (b.device_id or "") not in st
    summary = env.call("GET", f"{APPS}/{app['id']}/installSummary").json()
    assert summary["installedDeviceCount"] == 1


def test_a_newer_version_updates_every_device_and_a_higher_installed_one_counts(env: Env) -> None:
    secret = ready(env)
    a = device(env, secret)
    app = uploaded(env, build_apk("com.example.scan", 1, "1.0"))
    assign(env, app["id"], (group(env, "Line", [a]), "required"))
    installs(a, "com.example.scan", 1)
    assert work(a, send_apps=True) == []
    uploaded(env, build_apk("com.example.scan", 2, "2.0"))
    (job,) = work(a)
    assert (job["versionCode"], job["versionName"]) == (2, "2.0")
    installs(a, "com.example.scan", 5, "5.0")  # newer than the catalog: no downgrade asked
    assert work(a, send_apps=True) == []
    assert statuses(env, app["id"])[a.device_id or ""]["installState"] == "installed"


def test_install_wins_over_uninstall_and_the_conflict_is_reported(env: Env) -> None:
    secret = ready(env)
    both, only_uninstall, excluded = device(env, secret), device(env, secret), device(env, secret)
    app = uploaded(env, build_apk("com.example.scan", 3))
    g_req = group(env, "Required", [both, excluded])
    g_un = group(env, "Uninstall", [both, only_uninstall])
    g_ex = group(env, "Excluded", [excluded])
    body = {
        "mobileAppAssignments": [
            {"intent": "required", "target": _target(g_req)},
            {"intent": "uninstall", "target": _target(g_un)},
            {"intent": "required", "target": _target(g_ex, exclude=True)},
        ]
    }
    r = env.call("POST", f"{APPS}/{app['id']}/assign", json=body)
    assert r.status_code == 200, r.text
    assert [j["type"] for j in work(both)] == ["install"]
    assert work(excluded) == []
    # Not installed: uninstall is already done.
    assert work(only_uninstall) == []
    st = statuses(env, app["id"])
    assert st[both.device_id or ""]["conflict"] is True
    assert st[only_uninstall.device_id or ""]["installState"] == "notInstalled"
    # Installed: the device is told to remove it; it fails, then succeeds.
    installs(only_uninstall, "com.example.scan", 3)
    (job,) = work(only_uninstall, send_apps=True)
    assert job["type"] == "uninstall" and job["downloadUrl"] is None
    assert app_result(only_uninstall, job["id"], "failed") == ["recorded"]
    st = statuses(env, app["id"])[only_uninstall.device_id or ""]
    assert st["installState"] == "uninstallFailed"
    assert st["errorCodeHex"] == f"0x{protocol.APP_UNINSTALL_FAILED:08X}"


def _target(gid: str, exclude: bool = False) -> dict[str, str]:
    kind = "exclusionGroupAssignmentTarget" if exclude else "groupAssignmentTarget"
    return {"@odata.type": f"#microsoft.graph.{kind}", "groupId": gid}


def test_a_failure_is_retried_with_backoff(env: Env) -> None:
    env.settings.app_retry_seconds = 60
    secret = ready(env)
    a = device(env, secret)
    app = uploaded(env, build_apk("com.example.scan", 7))
    assign(env, app["id"], (group(env, "Line", [a]), "required"))
    (job,) = work(a)
    assert app_result(a, job["id"], "failed", protocol.APP_HASH_MISMATCH) == ["recorded"]
    st = statuses(env, app["id"])[a.device_id or ""]
    assert st["installState"] == "failed"
    assert st["errorCodeHex"] == "0x87D30067"
    assert st["errorCode"] == protocol.APP_HASH_MISMATCH - 2**32
    assert work(a) == [], "not again before the backoff ends"
    clock.advance(61)
    (again,) = work(a)
    assert again["id"] == job["id"]
    assert app_result(a, job["id"], "failed", protocol.APP_DOWNLOAD_FAILED) == ["recorded"]
    clock.advance(61)
    assert work(a) == [], "the second failure waits twice as long"
    clock.advance(60)
    assert len(work(a)) == 1
    assert app_result(a, job["id"], "done") == ["recorded"]
    assert statuses(env, app["id"])[a.device_id or ""]["installState"] == "installed"


def test_unknown_and_stale_app_results_change_nothing(env: Env) -> None:
    secret = ready(env)
    a, b = device(env, secret), device(env, secret)
    app = uploaded(env, build_apk("com.example.scan", 1))
    assign(env, app["id"], (group(env, "Line", [a, b]), "required"))
    (job,) = work(a)
    work(b)
    stale = protocol.app_work_id("install", app["id"], 0)
    assert app_result(a, stale, "done") == ["unknown"]
    assert app_result(a, "app:x:nonsense", "done") == ["unknown"]
    # A result mixed with a command result: each gets its outcome, in order.
    r = results(a, ("no-such-command", "done"), (job["id"], "done"))
    assert r.json()["outcomes"] == ["unknown", "recorded"]
    st = statuses(env, app["id"])
    assert st[b.device_id or ""]["installState"] == "pending", "another device is untouched"


# --- the required apps update the fleet -------------------------------------------------------


def test_a_new_agent_version_reaches_every_device_and_becomes_the_minimum_pointer(
    env: Env,
) -> None:
    secret = ready(env)
    a, b = device(env, secret), device(env, secret)
    code = env.settings.agent_version_code + 1
    data = build_apk(AGENT, code, "25.1.0")
    agent = uploaded(env, data)
    assert agent["isRequiredApp"] and agent["versionName"] == "25.1.0"
    for d in (a, b):
        (job,) = work(d)
        assert (job["packageName"], job["versionCode"]) == (AGENT, code)
    # Enrollment now names the new agent, and an agent below the minimum is sent to it.
    c = Device(env.client)
    answer = c.enroll(secret).json()
    (listed,) = [x for x in answer["requiredApps"] if x["role"] == "agent"]
    assert listed["versionName"] == "25.1.0"
    assert listed["downloadUrl"].endswith(f"/device/v1/apps/{agent['versions'][0]['id']}")
    old = Device(env.client, agent_version="1.0.0")
    r = old.enroll(secret)
    assert r.status_code == 426, r.text
    assert r.json()["error"]["downloadUrl"] == listed["downloadUrl"]
    assert "25.1.0" in r.json()["error"]["message"]


# --- discovered apps and inventory changes ----------------------------------------------


def test_fleet_discovered_apps_count_devices_per_version(env: Env) -> None:
    secret = ready(env)
    a, b, c = device(env, secret), device(env, secret), device(env, secret)
    for d, version in ((a, "1.0"), (b, "1.0"), (c, "2.0")):
        d.apps = [
            *d.apps,
            protocol.InstalledApp(
                package_name="com.example.notes",
                version_name=version,
                version_code=int(float(version)),
                display_name="Notes",
                size_in_bytes=1234,
            ),
        ]
        check_in(d, send_apps=True)
    r = env.call("GET", "/beta/deviceManagement/detectedApps", params={"$top": "999"})
    assert r.status_code == 200, r.text
    notes = {x["version"]: x for x in r.json()["value"] if x["displayName"] == "Notes"}
    assert {v: x["deviceCount"] for v, x in notes.items()} == {"1.0": 2, "2.0": 1}
    assert notes["1.0"]["platform"] == "androidOSP" and notes["1.0"]["sizeInByte"] == 1234
    one = env.call("GET", f"/beta/deviceManagement/detectedApps/{notes['1.0']['id']}").json()
    assert one["deviceCount"] == 2
    having = env.call(
        "GET", f"/beta/deviceManagement/detectedApps/{notes['1.0']['id']}/managedDevices"
    ).json()["value"]
    assert {d["id"] for d in having} == {a.device_id, b.device_id}
    per_device = env.call(
        "GET", f"/beta/deviceManagement/managedDevices/{c.device_id}/detectedApps"
    ).json()["value"]
    assert {x["version"] for x in per_device if x["displayName"] == "Notes"} == {"2.0"}
    assert env.call("GET", "/beta/deviceManagement/detectedApps/nope").status_code == 404
    # A scoped admin counts only the devices it may see.
    token = env.admin("Read Only Operator", tags=[])
    assert env.call("GET", "/beta/deviceManagement/detectedApps", token=token).status_code == 200


def test_inventory_changes_are_applied_to_the_list_the_server_has(env: Env) -> None:
    secret = ready(env)
    a = device(env, secret)
    check_in(a, send_apps=True)
    base = protocol.installed_apps_hash(a.apps)
    new = protocol.InstalledApp(package_name="com.example.new", version_name="1", version_code=1)
    removed = a.apps[0].package_name
    after = protocol.apply_app_changes(
        a.apps, protocol.AppChanges(base_hash=base, upserted=[new], removed=[removed])
    )

    def send(base_hash: str) -> dict[str, Any]:
        body = protocol.CheckinRequest(
            agent_version=a.agent_version,
            facts=a.facts(),
            installed_apps_hash=protocol.installed_apps_hash(after),
            installed_apps_changes=protocol.AppChanges(
                base_hash=base_hash, upserted=[new], removed=[removed]
            ),
        )
        r = a.signed("/device/v1/checkin", body.model_dump_json(by_alias=True).encode())
        assert r.status_code == 200, r.text
        return dict(r.json())

    assert send("0" * 64)["sendInstalledApps"] is True, "changes to a list the server lacks"
    assert send(base)["sendInstalledApps"] is False
    listed = env.call(
        "GET", f"/beta/deviceManagement/managedDevices/{a.device_id}/detectedApps"
    ).json()["value"]
    assert {x["packageName"] for x in listed} == {x.package_name for x in after}


# --- permissions and scope ----------------------------------------------------------------


def test_permission_and_scope_matrix(env: Env) -> None:
    data = build_apk("com.example.scoped", 1)
    assert env.call("GET", APPS, token=None).status_code == 401
    reader = env.admin("Read Only Operator")
    assert env.call("GET", APPS, token=reader).status_code == 200
    r = upload(env, data, token=reader)
    assert r.status_code == 403, r.text
    nobody = env.custom_admin(["devices.read"])
    assert env.call("GET", APPS, token=nobody).status_code == 403
    tag = env.tag("Plant B")
    app = uploaded(env, data, roleScopeTagIds=tag)
    assert app["roleScopeTagIds"] == [tag]
    scoped = env.admin("Policy and Profile Manager", tags=["Default"])
    listed = {a["packageId"] for a in env.call("GET", APPS, token=scoped).json()["value"]}
    assert "com.example.scoped" not in listed and AGENT in listed
    assert env.call("GET", f"{APPS}/{app['id']}", token=scoped).status_code == 404
    r = upload(env, build_apk("com.example.scoped", 2), token=scoped)
    assert r.status_code == 404, "a version of an app out of scope"
    manager = env.admin("Policy and Profile Manager")
    assert (
        env.call("PATCH", f"{APPS}/{app['id']}", token=manager, json={"publisher": "X"}).status_code
        == 200
    )
    assert env.call("DELETE", f"{APPS}/{app['id']}", token=manager).status_code == 204
    assert env.call("GET", f"{APPS}/{app['id']}").status_code == 404
    r = env.call("PATCH", f"{APPS}/{app['id']}", json={"color": "x"})
    assert r.status_code in (400, 404)
