"""The apps review's findings, each a test that failed before its fix: a failure no longer
blocks newer work, statuses and results follow the assignments, a refused upload leaves no
file, NUL and over-long manifest text are 400s, only an unscoped admin changes a required
app, and downloads go only to devices the app applies to."""

from __future__ import annotations

from pathlib import Path

import httpx

from aospmdm import protocol
from tests.apps.apkfactory import build_apk
from tests.apps.test_api import (
    AGENT,
    APPS,
    app_result,
    assign,
    installs,
    statuses,
    upload,
    uploaded,
    work,
)
from tests.conftest import Env
from tests.policies.fleet import device, group, ready


def _store_files(env: Env) -> list[str]:
    d = Path(env.settings.data_dir) / "apps"
    return sorted(f.name for f in d.iterdir()) if d.exists() else []


def test_a_failure_does_not_block_the_results_of_a_newer_version(env: Env) -> None:
    env.settings.app_retry_seconds = 60
    secret = ready(env)
    a = device(env, secret)
    app = uploaded(env, build_apk("com.example.fb", 1, "1.0"))
    assign(env, app["id"], (group(env, "G", [a]), "required"))
    (job,) = work(a)
    assert app_result(a, job["id"], "failed", protocol.APP_INSTALL_FAILED) == ["recorded"]
    uploaded(env, build_apk("com.example.fb", 2, "2.0"))
    (job2,) = work(a)
    assert job2["versionCode"] == 2
    st = statuses(env, app["id"])[a.device_id]
    # The new version is new work: pending, not the old failure.
    assert (st["installState"], st["targetVersionCode"]) == ("pending", 2)
    out = app_result(a, job2["id"], "failed", protocol.APP_DOWNLOAD_FAILED)
    assert out == ["recorded"], out


def test_a_failed_install_then_uninstall_intent_records_its_results(env: Env) -> None:
    secret = ready(env)
    a = device(env, secret)
    app = uploaded(env, build_apk("com.example.sw", 1, "1.0"))
    gid = group(env, "G", [a])
    assign(env, app["id"], (gid, "required"))
    (job,) = work(a)
    app_result(a, job["id"], "failed", protocol.APP_INSTALL_FAILED)
    # the app got installed some other way; admin now wants it removed
    installs(a, "com.example.sw", 1)
    assign(env, app["id"], (gid, "uninstall"))
    (job2,) = work(a, send_apps=True)
    assert job2["type"] == "uninstall"
    out = app_result(a, job2["id"], "failed")
    assert out == ["recorded"], out


def test_a_device_no_longer_targeted_is_not_pending_for_ever(env: Env) -> None:
    secret = ready(env)
    a = device(env, secret)
    app = uploaded(env, build_apk("com.example.pe", 1, "1.0"))
    gid = group(env, "G", [a])
    assign(env, app["id"], (gid, "required"))
    assert len(work(a)) == 1
    assert statuses(env, app["id"])[a.device_id]["installState"] == "pending"
    r = env.call("POST", f"{APPS}/{app['id']}/assign", json={"mobileAppAssignments": []})
    assert r.status_code == 200, r.text
    assert work(a) == []
    assert a.device_id not in statuses(env, app["id"])
    summary = env.call("GET", f"{APPS}/{app['id']}/installSummary").json()
    assert summary["pendingInstallDeviceCount"] == 0


def test_a_result_for_work_the_device_no_longer_has_is_unknown(env: Env) -> None:
    secret = ready(env)
    a = device(env, secret)
    app = uploaded(env, build_apk("com.example.ut", 1, "1.0"))
    gid = group(env, "G", [a])
    assign(env, app["id"], (gid, "required"))
    (job,) = work(a)
    env.call("POST", f"{APPS}/{app['id']}/assign", json={"mobileAppAssignments": []})
    work(a)
    assert app_result(a, job["id"], "failed") == ["unknown"]


def test_a_refused_upload_leaves_no_file_in_the_store(env: Env) -> None:
    r = upload(env, build_apk("com.example.tag", 1), roleScopeTagIds="no-such-tag")
    assert 400 <= r.status_code < 500, r.text
    assert len(env.call("GET", APPS).json()["value"]) == 3
    assert _store_files(env) == [], _store_files(env)


def test_a_version_code_too_large_is_refused(env: Env) -> None:
    r = upload(env, build_apk("com.example.huge", "99999999999999999999"))  # type: ignore[arg-type]
    assert 400 <= r.status_code < 500, r.text


def test_an_over_long_version_name_is_a_bad_manifest(env: Env) -> None:
    r = upload(env, build_apk("com.example.longname", 1, "v" * 300))
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "badManifest"


def test_a_huge_min_sdk_is_no_server_error(env: Env) -> None:
    r = upload(env, build_apk("com.example.sdk", 1, min_sdk="99999999999"))  # type: ignore[arg-type]
    assert r.status_code in (201, 400), r.text


def test_nul_in_the_file_name_is_dropped(env: Env) -> None:
    data = build_apk("com.example.nulname", 1)
    boundary = "XyZ"
    body = (
        (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="file"; filename="a\x00b.apk"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    r = env.call(
        "POST",
        APPS,
        content=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["fileName"] == "ab.apk", "control characters are dropped from the name"


def test_multipart_without_a_boundary_is_refused(env: Env) -> None:
    r = env.call("POST", APPS, content=b"garbage", headers={"Content-Type": "multipart/form-data"})
    assert 400 <= r.status_code < 500, r.text
    assert "error" in r.json(), r.text


def test_two_files_in_one_upload_are_refused(env: Env) -> None:
    data = build_apk("com.example.two", 1)
    r = env.call("POST", APPS, files=[("file", ("a.apk", data)), ("file", ("b.apk", data))])
    assert 400 <= r.status_code < 500, r.text
    assert "error" in r.json(), r.text


DEVICES = "/beta/deviceManagement/managedDevices"


def test_a_scoped_admin_cannot_push_a_new_agent_to_the_fleet(env: Env) -> None:
    secret = ready(env)
    a = device(env, secret)  # tagged Default (from its profile)
    env.tag("Plant B")
    scoped = env.admin("Policy and Profile Manager", tags=["Plant B"])
    assert env.call("GET", f"{DEVICES}/{a.device_id}", token=scoped).status_code in (403, 404)
    code = env.settings.agent_version_code + 1
    r = upload(env, build_apk(AGENT, code, "99.0.0"), token=scoped)
    # A scoped admin should not be able to replace the agent on the whole fleet.
    jobs = work(a)
    assert r.status_code in (403, 404) and not jobs, (r.status_code, jobs)


def test_downloads_go_only_to_targeted_devices_never_to_deleted_ones(env: Env) -> None:
    secret = ready(env)
    a, b = device(env, secret), device(env, secret)
    app = uploaded(env, build_apk("com.example.secret", 1))
    assign(env, app["id"], (group(env, "G", [b]), "required"))
    (job,) = work(b)
    path = httpx.URL(job["downloadUrl"]).path
    # a is not targeted at all
    assert a.signed_get(path).status_code == 404, "only to devices the app applies to"
    assert b.signed_get(path).status_code == 200
    assert env.call("DELETE", f"{DEVICES}/{a.device_id}").status_code == 204
    r = a.signed_get(path)
    assert r.status_code != 200, r.status_code
