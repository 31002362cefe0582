"""Device log upload (docs/protocol.md §15) and log collection in the admin API: incident
IDs, listing, short-lived download URLs, the refusals, scope tags and retention."""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import re
import zipfile
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from aospmdm import protocol
from aospmdm.agent.client import AgentClient
from aospmdm.cli import agent as cli_agent
from aospmdm.cli import app as cli_app
from aospmdm.core import clock
from aospmdm.server import create_app
from aospmdm.support import service as support
from aospmdm.support.models import LogUpload
from aospmdm.tenant import access
from tests.agent.fleet import make_fleet
from tests.conftest import PASSWORD, Env
from tests.matrix import Resource, check_resource
from tests.sync.device import Device, secret_of
from tests.sync.test_enroll import profile, set_licenses
from tests.web.test_sign_in import sign_in

D = "/beta/deviceManagement/managedDevices"
LOGS = "/device/v1/logs"
ID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$")
DAY = 24 * 3600


@pytest.fixture
def ready(env: Env) -> Env:
    env.call("POST", f"/beta/organization/{env.org_id()}/setMobileDeviceManagementAuthority")
    set_licenses(env, 10)
    return env


def a_zip(**files: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, text in (files or {"agent.log": "started\n"}).items():
            z.writestr(name, text)
    return buffer.getvalue()


def upload(
    d: Device,
    body: bytes,
    content_type: str = "application/zip",
    *,
    name: str | None = None,
    nonce: str | None = None,
    sign_body: bytes | None = None,
) -> Any:
    """A signed POST /device/v1/logs with a raw body."""
    ts = int(clock.now().timestamp() * 1000)
    nonce = nonce or protocol.b64url(os.urandom(16))
    text = protocol.signing_string(
        "POST", LOGS, ts, nonce, body if sign_body is None else sign_body
    )
    headers = {
        protocol.HEADER_DEVICE: d.device_id or "",
        protocol.HEADER_TIMESTAMP: str(ts),
        protocol.HEADER_NONCE: nonce,
        protocol.HEADER_SIGNATURE: protocol.b64url(d.key.sign(text, ec.ECDSA(hashes.SHA256()))),
        "content-type": content_type,
    }
    if name is not None:
        headers[protocol.HEADER_LOG_NAME] = name
    return d.client.post(LOGS, content=body, headers=headers)


def enrolled(env: Env, tags: list[str] | None = None) -> Device:
    d = Device(env.client)
    fields = {"roleScopeTagIds": tags} if tags else {}
    assert d.enroll(secret_of(profile(env, **fields))).status_code == 201
    return d


def incident(d: Device, body: bytes | None = None, content_type: str = "application/zip") -> str:
    r = upload(d, a_zip() if body is None else body, content_type)
    assert r.status_code == 201, r.text
    return str(r.json()["incidentId"])


def stored(env: Env) -> tuple[int, list[str]]:
    with env.db() as s:
        rows = s.scalar(select(func.count()).select_from(LogUpload)) or 0
    directory = support.logs_dir(env.settings)
    return rows, sorted(os.listdir(directory)) if directory.exists() else []


def download_url(env: Env, d: Device, incident_id: str, token: str | None = "full") -> Any:
    path = f"{D}/{d.device_id}/logCollectionRequests/{incident_id}/createDownloadUrl"
    return env.call("POST", path, token=token)


def fetch(env: Env, url: str, token: str | None = "full") -> Any:
    return env.call("GET", url.removeprefix("http://testserver"), token=token)


def test_upload_zip_and_text_list_find_and_download(ready: Env) -> None:
    d = enrolled(ready)
    body = a_zip(**{"agent.log": "boot\ncrash at 10:02\n"})
    r = upload(d, body, name="../../etc/bad name?.zip")
    assert r.status_code == 201, r.text
    answer = r.json()
    assert ID.match(answer["incidentId"]), answer
    assert answer["size"] == len(body)
    assert answer["sha256"] == hashlib.sha256(body).hexdigest()
    assert answer["expiresDateTime"].endswith("Z")
    text = "line one\nligne deux é\n".encode()
    second = incident(d, text, "text/plain; charset=utf-8")
    assert second != answer["incidentId"]

    listing = ready.call("GET", f"{D}/{d.device_id}/logCollectionRequests")
    assert listing.status_code == 200, listing.text
    items = listing.json()["value"]
    assert [i["id"] for i in items] == [second, answer["incidentId"]]  # newest first
    first = items[1]
    assert first["status"] == "completed"
    assert first["managedDeviceId"] == d.device_id
    assert first["size"] == len(body) and first["sizeInKB"] == round(len(body) / 1024, 3)
    assert first["fileName"] == "bad_name_.zip"
    assert first["contentType"] == "application/zip"
    assert first["requestedDateTimeUTC"] and first["expirationDateTimeUTC"]
    assert first["initiatedByUserPrincipalName"] is None and first["errorCode"] == 0

    # The help desk types the ID as read out on the phone: any case, dashes optional.
    typed = answer["incidentId"].replace("-", "").lower()
    found = ready.call("GET", f"/beta/deviceManagement/logCollectionRequests/{typed}")
    assert found.status_code == 200 and found.json() == first
    one = ready.call("GET", f"{D}/{d.device_id}/logCollectionRequests/{typed}")
    assert one.status_code == 200 and one.json()["id"] == answer["incidentId"]
    for bad in ("NOPE", "0000-0000-0000", "U" * 12):
        r = ready.call("GET", f"/beta/deviceManagement/logCollectionRequests/{bad}")
        assert r.status_code == 404

    r = download_url(ready, d, typed)
    assert r.status_code == 200, r.text
    url = r.json()["value"]
    assert url.startswith("http://testserver/beta/deviceManagement/logCollectionDownloads/")
    got = fetch(ready, url)
    assert got.status_code == 200, got.text
    assert got.content == body
    assert got.headers["content-type"] == "application/zip"
    assert "attachment" in got.headers["content-disposition"]
    url2 = download_url(ready, d, second).json()["value"]
    got2 = fetch(ready, url2)
    assert got2.content == text and got2.headers["content-type"].startswith("text/plain")

    uploads = ready.audit(**{"$filter": "activity eq 'Upload device logs'"})
    assert len(uploads) == 2 and uploads[0]["actor"]["type"] == "device"
    assert uploads[0]["category"] == "Device"
    downloads = ready.audit(**{"$filter": "activity eq 'Download device logs'"})
    assert len(downloads) == 2
    assert downloads[0]["actor"]["userPrincipalName"] == "root@example.com"


def test_download_urls_need_the_same_admin_and_expire(ready: Env) -> None:
    d = enrolled(ready)
    body = a_zip()
    incident_id = incident(d, body)
    url = download_url(ready, d, incident_id).json()["value"]
    # Without credentials: 401; another admin (even an Intune Administrator): 403.
    assert fetch(ready, url, token=None).status_code == 401
    other = ready.admin("Intune Administrator")
    r = fetch(ready, url, token=other)
    assert r.status_code == 403 and r.json()["error"]["code"] == "downloadUrlNotYours"
    # A forged or altered token: 404.
    token = url.rsplit("/", 1)[1]
    altered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    for forged in (altered, "x.y", "..."):
        r = fetch(ready, f"/beta/deviceManagement/logCollectionDownloads/{forged}")
        assert r.status_code == 404, forged
    # The admin's console session works as well as the bearer token.
    console = TestClient(ready.app)
    assert sign_in(console, "root@example.com", PASSWORD).status_code == 303
    assert console.get(url).content == body
    # After 10 minutes the URL is refused.
    clock.advance(11 * 60)
    r = fetch(ready, url)
    assert r.status_code == 403 and r.json()["error"]["code"] == "downloadUrlExpired"
    assert fetch(ready, download_url(ready, d, incident_id).json()["value"]).status_code == 200


def test_permissions_and_scope(ready: Env) -> None:
    a, b = ready.tag("A"), ready.tag("B")
    da, db = enrolled(ready, [a]), enrolled(ready, [b])
    ia, ib = incident(da), incident(db)
    scoped = ready.custom_admin(["devices.read", support.DOWNLOAD], tags=["A"])
    mine = ready.call("GET", f"{D}/{da.device_id}/logCollectionRequests", token=scoped)
    assert [i["id"] for i in mine.json()["value"]] == [ia]
    for path in (
        f"{D}/{db.device_id}/logCollectionRequests",
        f"{D}/{db.device_id}/logCollectionRequests/{ib}",
        f"/beta/deviceManagement/logCollectionRequests/{ib}",
        f"{D}/{da.device_id}/logCollectionRequests/{ib}",  # not this device's incident
    ):
        assert ready.call("GET", path, token=scoped).status_code == 404, path
    assert download_url(ready, db, ib, token=scoped).status_code == 404
    assert download_url(ready, da, ia, token=scoped).status_code == 200
    # Reading needs devices.read; downloading devices.logs.download (403 before 404).
    reader = ready.custom_admin(["devices.read"])
    r = ready.call("GET", f"/beta/deviceManagement/logCollectionRequests/{ia}", token=reader)
    assert r.status_code == 200
    r = download_url(ready, db, ib, token=reader)
    assert r.status_code == 403
    assert download_url(ready, db, "0000-0000-0000", token=reader).status_code == 403
    nobody = ready.custom_admin(["audit.read"])
    r = ready.call("GET", f"/beta/deviceManagement/logCollectionRequests/{ia}", token=nobody)
    assert r.status_code == 403
    # The built-in roles: Help Desk Operator downloads, Read Only Operator only reads.
    helpdesk = ready.admin("Help Desk Operator")
    assert download_url(ready, da, ia, token=helpdesk).status_code == 200
    readonly = ready.admin("Read Only Operator")
    r = ready.call("GET", f"{D}/{da.device_id}/logCollectionRequests", token=readonly)
    assert r.status_code == 200
    assert download_url(ready, da, ia, token=readonly).status_code == 403
    url = download_url(ready, da, ia, token=helpdesk).json()["value"]
    assert fetch(ready, url, token=helpdesk).status_code == 200
    # Unknown devices: 404 (an unscoped reader), not a list.
    assert ready.call("GET", f"{D}/nope/logCollectionRequests").status_code == 404


def test_refusals_leave_nothing(ready: Env) -> None:
    d = enrolled(ready)
    ready.settings.max_log_bytes = 2048
    cases = [
        (upload(d, os.urandom(4096), "application/zip"), 413, "payloadTooLarge"),
        (upload(d, b"{}", "application/json"), 415, "unsupportedMediaType"),
        (upload(d, b"hello", ""), 415, "unsupportedMediaType"),
        (upload(d, b"PK\x03\x04 not really", "application/zip"), 400, "badZip"),
        (upload(d, b"\xff\xfe\x00bad", "text/plain"), 400, "badText"),
        (upload(d, b"", "text/plain"), 400, "badRequest"),
        # Signed over other bytes (or by another key): forged.
        (upload(d, b"text", "text/plain", sign_body=b"other"), 401, "signatureInvalid"),
    ]
    for r, status, code in cases:
        assert r.status_code == status, r.text
        assert r.json()["error"]["code"] == code, r.text
    assert "body" in cases[3][0].json()["error"]["message"]
    unsigned = ready.client.post(LOGS, content=b"x", headers={"content-type": "text/plain"})
    assert unsigned.status_code == 401
    assert unsigned.json()["error"]["code"] == "signatureMissing"
    assert stored(ready) == (0, [])
    # A replayed request: refused, and only the first one kept.
    r = upload(d, b"once", "text/plain", nonce="n" * 22)
    assert r.status_code == 201
    r = upload(d, b"once", "text/plain", nonce="n" * 22)
    assert r.status_code == 401 and r.json()["error"]["code"] == "signatureReplayed"
    rows, files = stored(ready)
    assert rows == 1 and len(files) == 1


def test_body_limit_middleware_caps_the_route(env: Env) -> None:
    env.settings.max_log_bytes = 4096
    client = TestClient(create_app(env.settings, env.app.state.engine))
    r = client.post(LOGS, content=b"x" * 5000, headers={"content-type": "text/plain"})
    assert r.status_code == 413
    # Larger than the ordinary body cap, within the log cap: reaches the route (unsigned: 401).
    env.settings.max_log_bytes = 3 * 1024 * 1024
    client = TestClient(create_app(env.settings, env.app.state.engine))
    r = client.post(LOGS, content=b"x" * (2 * 1024 * 1024), headers={"content-type": "text/plain"})
    assert r.status_code == 401


def test_a_deleted_device_may_not_upload(ready: Env) -> None:
    d = enrolled(ready)
    kept = incident(d)
    assert ready.call("DELETE", f"{D}/{d.device_id}").status_code == 204
    r = upload(d, a_zip())
    assert r.status_code == 403 and r.json()["error"]["code"] == "deviceDeleted"
    assert stored(ready)[0] == 1
    # Its earlier logs: still there for unscoped admins; scoped ones see nothing.
    listing = ready.call("GET", f"{D}/{d.device_id}/logCollectionRequests").json()["value"]
    assert [i["id"] for i in listing] == [kept]
    ready.tag("A")
    scoped = ready.custom_admin(["devices.read"], tags=["A"])
    path = f"/beta/deviceManagement/logCollectionRequests/{kept}"
    assert ready.call("GET", path, token=scoped).status_code == 404


def test_retention_expires_then_forgets(ready: Env) -> None:
    d = enrolled(ready)
    incident_id = incident(d)
    url = download_url(ready, d, incident_id).json()["value"]
    path = support.file_path(ready.settings, incident_id)
    assert path.is_file()

    def prune() -> None:
        with ready.db() as s:
            support.prune(s, ready.settings)

    clock.advance(29 * DAY)
    prune()
    assert path.is_file()
    clock.advance(1 * DAY + 60)
    prune()
    assert not path.exists()
    [item] = ready.call("GET", f"{D}/{d.device_id}/logCollectionRequests").json()["value"]
    assert item["status"] == "expired"
    r = download_url(ready, d, incident_id)
    assert r.status_code == 404 and r.json()["error"]["code"] == "logsExpired"
    assert fetch(ready, url).status_code in (403, 404)
    # After another retention period the record goes too.
    clock.advance(30 * DAY)
    prune()
    assert ready.call("GET", f"{D}/{d.device_id}/logCollectionRequests").json()["value"] == []
    assert stored(ready) == (0, [])


def test_incident_ids() -> None:
    ids = {support.new_incident_id() for _ in range(2000)}
    assert len(ids) == 2000 and all(ID.match(i) for i in ids)
    one = next(iter(ids))
    assert support.normalize_incident_id(one.lower().replace("-", " ")) == one
    assert support.normalize_incident_id("oi1l-0000-abcd") == "0111-0000-ABCD"
    assert support.normalize_incident_id("U000-0000-0000") is None
    assert support.normalize_incident_id("0000-0000-000") is None


def test_agent_cli_uploads_its_logs_and_prints_the_incident_id(
    env: Env, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet = make_fleet(env, tmp_path, "Log devices", "Log devices")
    monkeypatch.setattr(cli_agent, "AgentClient", functools.partial(AgentClient, http=env.client))
    runner = CliRunner()
    state = tmp_path / "cli-device"
    r = runner.invoke(
        cli_app,
        ["agent", "enroll", "--qr", str(fleet.png), "--state-dir", str(state), "--serial", "RW-L"],
    )
    assert r.exit_code == 0, r.output
    (state / "agent.log").write_text("12:00 check-in failed: networkError\n")
    r = runner.invoke(cli_app, ["agent", "upload-logs", "--state-dir", str(state)])
    assert r.exit_code == 0, r.output
    incident_id = r.output.strip().splitlines()[-1]
    assert ID.match(incident_id), r.output
    found = env.call("GET", f"/beta/deviceManagement/logCollectionRequests/{incident_id}").json()
    device_id = json.loads((state / "state.json").read_text())["deviceId"]
    assert found["managedDeviceId"] == device_id
    url = env.call(
        "POST", f"{D}/{device_id}/logCollectionRequests/{incident_id}/createDownloadUrl"
    ).json()["value"]
    archive = zipfile.ZipFile(io.BytesIO(fetch(env, url).content))
    assert sorted(archive.namelist()) == ["agent.log", "status.json"]
    status = json.loads(archive.read("status.json"))
    assert status["deviceId"] == device_id and "passcode" not in status
    assert "passcodeSet" in status["screenLock"]
    # A file of the user's choosing, as text; a missing one is a clean refusal.
    note = tmp_path / "note.txt"
    note.write_text("the scanner froze\n")
    args = ["agent", "upload-logs", "--state-dir", str(state), "--file", str(note)]
    r = runner.invoke(cli_app, args)
    assert r.exit_code == 0, r.output
    text_id = r.output.strip().splitlines()[-1]
    item = env.call("GET", f"/beta/deviceManagement/logCollectionRequests/{text_id}").json()
    assert item["fileName"] == "note.txt" and item["contentType"] == "text/plain"
    args[-1] = str(tmp_path / "missing.txt")
    r = runner.invoke(cli_app, args)
    assert r.exit_code == 2 and "badFile" in r.output


def test_cli_actor_and_service_names(ready: Env) -> None:
    """The functions the console calls, with the names it calls them by."""
    d = enrolled(ready)
    incident_id = incident(d)
    with ready.db() as s:
        actor = access.cli_actor()
        [row] = support.logs_of_device(s, actor, d.device_id or "")
        assert row.id == incident_id
        assert support.find_incident(s, actor, incident_id.lower()).id == incident_id
        url = support.create_download_url(s, ready.settings, actor, incident_id)
    assert url.startswith("http://testserver/beta/deviceManagement/logCollectionDownloads/")


def test_the_admin_api_matrix(ready: Env) -> None:
    """401 (audited), 403 and the happy path for a device's log uploads; scope is covered by
    test_permissions_and_scope (the collection belongs to one device)."""
    d = enrolled(ready)
    check_resource(
        ready,
        Resource(
            collection=f"{D}/{d.device_id}/logCollectionRequests",
            read_permission="devices.read",
            write_permission=None,
            make=lambda _env, _tags: incident(d),
        ),
    )


def test_odd_device_ids_are_not_found(env: Env) -> None:
    for device_id in ("%00", "x" * 300):
        r = env.call(
            "GET", f"/beta/deviceManagement/managedDevices/{device_id}/logCollectionRequests"
        )
        assert r.status_code == 404, r.text
