"""The apps console through HTTP forms: All apps with the required apps and install counts;
Upload of a real APK (a new app, then a new version), the unsigned warning, a bad file, a
versionCode that is not higher and a file over the cap shown on the form; an app's
properties and versions; Assignments (required, uninstall, excluded) and the Device install
status they lead to; Delete asks Yes or No, and a required app is refused; RBAC for a
read-only admin; a device's Discovered apps tab and the fleet's Discovered apps report."""

from __future__ import annotations

import html
import os
import re
from typing import Any

import httpx
import pytest

from aospmdm import protocol
from aospmdm.apps import service as apps
from aospmdm.devices import service as devices
from tests.apps.apkfactory import build_apk
from tests.conftest import PASSWORD, Env
from tests.policies.fleet import check_in, device, group, ready
from tests.sync.device import Device
from tests.web.test_sign_in import csrf, sign_in

BASE = "/console/apps"
API = "/beta/deviceAppManagement/mobileApps"
PACKAGE = "com.example.scanner"


@pytest.fixture
def secret(env: Env) -> str:
    """A ready tenant (authority, licenses, a profile), the full admin signed in; returns the
    enrollment secret."""
    s = ready(env)
    assert sign_in(env.client, "root@example.com", PASSWORD).status_code == 303
    return s


def table(page: str, table_id: str) -> list[list[str]]:
    """A table's body rows, each cell's text."""
    body = page.split(f'id="{table_id}"')[1].split("</table>")[0].split("<tbody>")[1]
    rows = []
    for row in body.split("<tr")[1:]:
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        rows.append([html.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in cells])
    return rows


def field_error(page: str, name: str) -> str:
    m = re.search(
        rf'<p class="field-error" id="{re.escape(name)}-error" role="alert">([^<]*)</p>', page
    )
    assert m, f"no error beside {name}"
    return html.unescape(m.group(1))


def notice(page: str) -> str:
    m = re.search(r'<p class="notice" role="status">([^<]*)</p>', page)
    assert m, "no notice"
    return html.unescape(m.group(1))


def error(page: str) -> str:
    m = re.search(r'<p class="error" role="alert">([^<]*)</p>', page)
    assert m, "no error"
    return html.unescape(m.group(1))


def upload(client: Any, data: bytes, name: str = "scanner.apk", **fields: str) -> httpx.Response:
    token = csrf(client, f"{BASE}/upload")
    response: httpx.Response = client.post(
        f"{BASE}/upload", data={"csrf_token": token, **fields}, files={"file": (name, data)}
    )
    return response


def app_id_of(r: httpx.Response) -> str:
    m = re.search(rf"{BASE}/([0-9a-f-]{{36}})", str(r.url))
    assert m, r.url
    return m.group(1)


def post(client: Any, path: str, **fields: Any) -> httpx.Response:
    response: httpx.Response = client.post(path, data={"csrf_token": csrf(client, BASE), **fields})
    return response


def catalog_row(page: str, name: str) -> list[str]:
    (row,) = [r for r in table(page, "apps") if r[0] == name]
    return row


def app_result(d: Device, work_id: str, status: str, code: int | None = None) -> None:
    body = protocol.ResultsRequest(
        results=[protocol.CommandResult(command_id=work_id, status=status, error_code=code)]  # type: ignore[arg-type]
    )
    r = d.signed("/device/v1/results", body.model_dump_json(by_alias=True).encode())
    assert r.status_code == 200, r.text


# --- All apps and Upload ----------------------------------------------------------------------


def test_all_apps_lists_the_required_apps_and_the_nav_links_here(env: Env, secret: str) -> None:
    home = env.client.get("/console").text
    assert f'<a href="{BASE}">Apps</a>' in home
    page = env.client.get(BASE)
    assert page.status_code == 200
    assert "<h1>All apps</h1>" in page.text
    sub = page.text.split('aria-label="Apps"')[1].split("</nav>")[0]
    assert f'<a href="{BASE}" aria-current="page">All apps</a>' in sub
    assert f'<a href="{BASE}/discovered">Discovered apps</a>' in sub
    assert f'<a class="button" href="{BASE}/upload">Upload</a>' in page.text
    s = env.settings
    rows = {r[2]: r for r in table(page.text, "apps")}
    assert set(rows) == {s.agent_package, s.authenticator_package, s.portal_package}
    agent = rows[s.agent_package]
    assert agent[1] == "Required app"
    assert agent[3:6] == [s.agent_version_name, str(s.agent_version_code), "Yes"]
    assert agent[6:] == ["0", "0", "0"]


def test_upload_a_real_apk_then_a_new_version(env: Env, secret: str) -> None:
    form = env.client.get(f"{BASE}/upload")
    assert form.status_code == 200
    assert 'enctype="multipart/form-data"' in form.text and 'type="file"' in form.text
    r = upload(
        env.client,
        build_apk(PACKAGE, 10, "1.0", min_sdk=28, label="Scanner"),
        display_name="Barcode scanner",
        description="Reads barcodes.",
        publisher="Example Corp",
    )
    assert r.status_code == 200, r.text
    app_id = app_id_of(r)
    shown = notice(r.text)
    assert shown.startswith("Uploaded Barcode scanner 1.0 (10). Warning: The APK is not signed.")
    assert "<h1>Barcode scanner</h1>" in r.text
    props = r.text.split('id="properties"')[1].split("</dl>")[0]
    assert f"<code>{PACKAGE}</code>" in props
    assert "<dt>Publisher</dt><dd>Example Corp</dd>" in props
    assert "<dt>Minimum SDK</dt><dd>28</dd>" in props
    assert "<dt>Signer certificate (SHA-256)</dt><dd>Not signed</dd>" in props
    sha = env.call("GET", f"{API}/{app_id}").json()["sha256"]
    assert f"<dt>SHA-256</dt><dd><code>{sha}</code></dd>" in props

    # The same package again with a higher versionCode adds a version.
    r = upload(env.client, build_apk(PACKAGE, 11, "1.1", min_sdk=28), name="scanner-1.1.apk")
    assert r.status_code == 200, r.text
    assert app_id_of(r) == app_id
    assert notice(r.text).startswith("Added version 1.1 (11) to Barcode scanner.")
    versions = table(r.text, "versions")
    assert [v[:2] for v in versions] == [["1.1", "11"], ["1.0", "10"]]
    assert versions[1][4] == sha and re.fullmatch(r"[0-9a-f]{64}", versions[0][4])
    assert versions[0][6] == "root@example.com"
    row = catalog_row(env.client.get(BASE).text, "Barcode scanner")
    assert row[1:6] == ["Android line-of-business app", PACKAGE, "1.1", "11", "No"]


def test_upload_refusals_are_shown_on_the_form(env: Env, secret: str) -> None:
    r = upload(env.client, b"this is not a zip file", name="notes.apk", display_name="Kept")
    assert r.status_code == 400
    assert field_error(r.text, "file") == "The file is not an APK: it is not a zip archive."
    assert 'name="display_name" type="text" maxlength="256" value="Kept"' in r.text
    # No file chosen: the browser sends an empty file part.
    r = upload(env.client, b"", name="")
    assert r.status_code == 400 and field_error(r.text, "file") == "Choose the APK file to upload."

    assert upload(env.client, build_apk(PACKAGE, 5)).status_code == 200
    r = upload(env.client, build_apk(PACKAGE, 5, "1.0-again"))
    assert r.status_code == 409
    assert "already has versionCode 5" in field_error(r.text, "file")
    assert len(env.call("GET", f"{API}").json()["value"]) == 4

    env.settings.max_apk_bytes = 2048
    r = upload(env.client, build_apk("com.example.big", 1, extra_files={"x": os.urandom(4096)}))
    assert r.status_code == 413
    assert "larger than 2048 bytes" in field_error(r.text, "file")


# --- one app: assignments, status, delete -------------------------------------------------------


def test_assignments_and_the_device_install_status(env: Env, secret: str) -> None:
    a, b = device(env, secret), device(env, secret)
    line = group(env, "Line 1", [a, b])
    spares = group(env, "Spares", [b])
    r = upload(env.client, build_apk(PACKAGE, 10, "1.0"), display_name="Scanner")
    app_id = app_id_of(r)
    page = env.client.get(f"{BASE}/{app_id}/assignments")
    assert page.status_code == 200
    assert table(page.text, "assignment-groups") == [["Line 1", "", "", ""], ["Spares", "", "", ""]]
    # A group chosen twice is refused in place.
    r = post(env.client, f"{BASE}/{app_id}/assignments", required=line, uninstall=line)
    assert r.status_code == 400 and "assigned twice" in error(r.text)
    assert f'name="required" value="{line}" aria-label="Required for Line 1" checked' in r.text

    r = post(env.client, f"{BASE}/{app_id}/assignments", required=line, exclude=spares)
    assert r.status_code == 200
    assert notice(r.text).startswith("Assignments saved: 1 required, 0 uninstall, 1 excluded")
    assert f'value="{spares}" aria-label="Exclude Spares" checked' in r.text
    overview = env.client.get(f"{BASE}/{app_id}").text
    assert table(overview, "assignments-summary") == [
        ["Line 1", "Required"],
        ["Spares", "Excluded"],
    ]
    assert catalog_row(env.client.get(BASE).text, "Scanner")[5:] == ["Yes", "0", "0", "1"]

    # Device a gets the install; it fails with a hash mismatch.
    (work,) = [w for w in check_in(a)["apps"] if w["appId"] == app_id]
    app_result(a, work["id"], "failed", protocol.APP_HASH_MISMATCH)
    status = env.client.get(f"{BASE}/{app_id}/status")
    assert status.status_code == 200
    (row,) = table(status.text, "device-status")
    assert row[1:4] == ["Failed", f"0x{protocol.APP_HASH_MISMATCH:08X}", row[3]]
    assert row[3] and row[6] == "No"
    counts = status.text.split('id="status-counts"')[1].split("</ul>")[0]
    assert '<span class="count-label">Failed</span> <strong>1</strong>' in counts
    assert catalog_row(env.client.get(BASE).text, "Scanner")[6:] == ["0", "1", "0"]

    r = post(env.client, f"{BASE}/{app_id}/assignments")
    assert notice(r.text).startswith("Assignments saved: 0 required, 0 uninstall, 0 excluded")
    assert env.call("GET", f"{API}/{app_id}/assignments").json()["value"] == []


def test_delete_asks_yes_or_no_and_required_apps_are_refused(env: Env, secret: str) -> None:
    app_id = app_id_of(upload(env.client, build_apk(PACKAGE, 10), display_name="Old"))
    ask = env.client.get(f"{BASE}/{app_id}/delete")
    assert ask.status_code == 200 and "Delete <strong>Old</strong>" in ask.text
    r = post(env.client, f"{BASE}/{app_id}/delete", answer="no")
    assert r.status_code == 200 and str(r.url) == f"http://testserver{BASE}/{app_id}"
    r = post(env.client, f"{BASE}/{app_id}/delete", answer="yes")
    assert r.status_code == 200 and notice(r.text).startswith("App Old deleted.")
    assert env.client.get(f"{BASE}/{app_id}").status_code == 404

    agent = next(a for a in env.call("GET", API).json()["value"] if a["role"] == "agent")
    page = env.client.get(f"{BASE}/{agent['id']}").text
    assert ">Delete<" not in page.split("</header>")[1]
    r = post(env.client, f"{BASE}/{agent['id']}/delete", answer="yes")
    assert r.status_code == 409
    assert "is a required app" in error(r.text) and "cannot be deleted" in error(r.text)
    assert env.client.get(f"{BASE}/{agent['id']}").status_code == 200
    r = post(env.client, f"{BASE}/{agent['id']}/assignments", required="x")
    assert r.status_code == 400 and "takes no assignments" in error(r.text)


def test_read_only_admin_sees_no_write_controls_and_is_refused(env: Env, secret: str) -> None:
    a = device(env, secret)
    gid = group(env, "Line 1", [a])
    app_id = app_id_of(upload(env.client, build_apk(PACKAGE, 10), display_name="Scanner"))
    post(env.client, f"{BASE}/{app_id}/assignments", required=gid)
    env.admin("Read Only Operator", email="reader@example.com")
    env.client.cookies.clear()
    assert sign_in(env.client, "reader@example.com", PASSWORD).status_code == 303
    for path in (
        BASE,
        f"{BASE}/{app_id}",
        f"{BASE}/{app_id}/assignments",
        f"{BASE}/{app_id}/status",
        f"{BASE}/{app_id}/delete",
        f"{BASE}/discovered",
    ):
        r = env.client.get(path)
        assert r.status_code == 200, path
        body = r.text.split("</header>")[1]
        assert 'method="post"' not in body, path
        for control in (">Upload<", ">Upload a new version<", "Edit assignments", ">Delete<"):
            assert control not in body, (path, control)
    assert table(env.client.get(f"{BASE}/{app_id}/assignments").text, "assignments-summary") == [
        ["Line 1", "Required"]
    ]
    assert env.client.get(f"{BASE}/upload").status_code == 403
    token = csrf(env.client, BASE)
    r = env.client.post(
        f"{BASE}/upload",
        data={"csrf_token": token},
        files={"file": ("x.apk", build_apk("com.example.other", 1))},
    )
    assert r.status_code == 403 and apps.WRITE in r.text
    for path, data in (
        (f"{BASE}/{app_id}/assignments", {}),
        (f"{BASE}/{app_id}/delete", {"answer": "yes"}),
    ):
        r = env.client.post(path, data={"csrf_token": token, **data})
        assert r.status_code == 403 and apps.WRITE in r.text, path
    assert len(env.call("GET", f"{API}/{app_id}/assignments").json()["value"]) == 1
    # Without the CSRF token a post is refused too.
    assert env.client.post(f"{BASE}/{app_id}/delete", data={"answer": "yes"}).status_code == 403
    assert env.client.get(f"{BASE}/00000000-0000-0000-0000-000000000000").status_code == 404


# --- discovered apps -------------------------------------------------------------------------


def test_discovered_apps_tab_and_the_fleet_report(env: Env, secret: str) -> None:
    a, b = device(env, secret), device(env, secret)
    a.apps = [
        *a.apps,
        protocol.InstalledApp(
            package_name=PACKAGE,
            version_name="3.2",
            version_code=32,
            display_name="Scanner",
            size_in_bytes=5 * 1024 * 1024,
        ),
    ]
    check_in(a, send_apps=True)
    tab = env.client.get(f"/console/devices/{a.device_id}/apps")
    assert tab.status_code == 200
    assert "<th>Application Version</th>" in tab.text and "<th>Size</th>" in tab.text
    assert ["Scanner", PACKAGE, "3.2", "32", "5.0 MB"] in table(tab.text, "apps")

    report = env.client.get(f"{BASE}/discovered")
    assert report.status_code == 200
    rows = {(r[1], r[2]): r for r in table(report.text, "discovered")}
    assert rows[(PACKAGE, "3.2")] == ["Scanner", PACKAGE, "3.2", "32", "5.0 MB", "1"]
    assert rows[("com.realwear.launcher", "2.1.0")][5] == "2"
    detected = devices.detected_app_id(PACKAGE, "3.2")
    assert f'href="{BASE}/discovered/{detected}">Scanner</a>' in report.text
    page = env.client.get(f"{BASE}/discovered/{detected}")
    assert page.status_code == 200 and "<h1>Scanner 3.2</h1>" in page.text
    (row,) = table(page.text, "devices")
    name = env.call("GET", f"/beta/deviceManagement/managedDevices/{a.device_id}").json()
    assert row[0] == name["deviceName"]
    assert f'href="/console/devices/{a.device_id}/apps"' in page.text
    assert b.device_id not in page.text
    assert env.client.get(f"{BASE}/discovered/{'0' * 32}").status_code == 404
