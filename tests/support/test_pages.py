"""The Troubleshooting + Support console through HTTP: find a user by user principal name
or by name; a user's devices, current sessions and sign-in history; a device's
troubleshooting view (last check-in, agent and authenticator versions, the signed-in user,
pending actions, recent errors, compliance reasons and uploaded logs with their download);
the incident ID search (found, not found, bad input: never a 500); and the refusals (no
users.read, no download permission, scope tags).

The data comes in the way it does in production: users through ``/beta/users``, sign-ins
and log uploads signed by enrolled devices, actions through the admin API."""

from __future__ import annotations

import html
import io
import os
import re
import zipfile
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from aospmdm import protocol
from aospmdm.core import clock
from aospmdm.support import service as support
from aospmdm.tenant import access
from aospmdm.tenant import service as tenant
from aospmdm.tenant.schemas import RoleDefinitionCreate
from aospmdm.users import service as users
from tests.apps.apkfactory import build_apk
from tests.apps.test_pages import app_id_of, app_result, post, table, upload
from tests.conftest import PASSWORD, Env
from tests.policies.fleet import check_in, group, ready
from tests.sync.device import APPS, Device, results
from tests.web.test_sign_in import sign_in

BASE = "/console/support"
USERS = "/beta/users"
DEVICES = "/beta/deviceManagement/managedDevices"
WORKER_PASSWORD = "shift-password-1"
NO_INCIDENT = "No incident with that ID, or you may not see it."


@pytest.fixture
def secret(env: Env) -> str:
    """A ready tenant, the full admin signed in; returns the enrollment secret."""
    s = ready(env)
    assert sign_in(env.client, "root@example.com", PASSWORD).status_code == 303
    return s


# --- helpers ----------------------------------------------------------------------------------


def worker(env: Env, upn: str, name: str) -> str:
    r = env.call(
        "POST",
        USERS,
        json={
            "userPrincipalName": upn,
            "displayName": name,
            "accountEnabled": True,
            "passwordProfile": {"password": WORKER_PASSWORD},
        },
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def enrolled(env: Env, secret: str, name: str, authenticator: str | None = "3.2.1") -> Device:
    """An enrolled device with its own name, reporting the authenticator at this version."""
    d = Device(env.client)
    if authenticator:
        d.apps = [
            *APPS,
            protocol.InstalledApp(
                package_name=env.settings.authenticator_package,
                version_name=authenticator,
                version_code=321,
                display_name="Authenticator",
            ),
        ]
    assert d.enroll(secret).status_code == 201
    r = env.call("PATCH", f"{DEVICES}/{d.device_id}", json={"deviceName": name})
    assert r.status_code == 200, r.text
    return d


def signs_in(d: Device, upn: str, password: str = WORKER_PASSWORD) -> httpx.Response:
    body = protocol.SignInRequest(user_principal_name=upn, password=password)
    return d.signed(protocol.SESSIONS_PATH, body.model_dump_json(by_alias=True).encode())


def uploads_logs(d: Device, text: str = "agent started\n") -> str:
    """A signed POST /device/v1/logs of a zip; returns the incident ID."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("agent.log", text)
    raw = buffer.getvalue()
    path = "/device/v1/logs"
    ts = int(clock.now().timestamp() * 1000)
    nonce = protocol.b64url(os.urandom(16))
    sig = d.key.sign(
        protocol.signing_string("POST", path, ts, nonce, raw), ec.ECDSA(hashes.SHA256())
    )
    headers = {
        protocol.HEADER_DEVICE: d.device_id or "",
        protocol.HEADER_TIMESTAMP: str(ts),
        protocol.HEADER_NONCE: nonce,
        protocol.HEADER_SIGNATURE: protocol.b64url(sig),
        protocol.HEADER_LOG_NAME: "logs.zip",
        "content-type": "application/zip",
    }
    r = d.client.post(path, content=raw, headers=headers)
    assert r.status_code == 201, r.text
    return str(r.json()["incidentId"])


def props(page: str, dl_id: str) -> dict[str, str]:
    """A <dl>'s terms and their text."""
    body = page.split(f'id="{dl_id}"')[1].split("</dl>")[0]
    pairs = re.findall(r"<dt>(.*?)</dt>\s*<dd[^>]*>(.*?)</dd>", body, re.S)
    return {_text(k): _text(v) for k, v in pairs}


def _text(fragment: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", fragment)).split())


def field_error(page: str) -> str:
    m = re.search(r'<p class="field-error" id="incident-error" role="alert">([^<]*)</p>', page)
    assert m, "no incident error"
    return m.group(1)


def get(client: Any, path: str, **params: str) -> httpx.Response:
    response: httpx.Response = client.get(path, params=params, follow_redirects=False)
    return response


# --- the search page --------------------------------------------------------------------------


def test_the_nav_links_here_and_find_a_user(env: Env, secret: str) -> None:
    home = env.client.get("/console").text
    assert f'<a href="{BASE}">Troubleshooting + Support</a>' in home
    page = env.client.get(BASE)
    assert page.status_code == 200
    assert "<h1>Troubleshooting + Support</h1>" in page.text
    assert f'<a href="{BASE}" aria-current="page">Troubleshooting + Support</a>' in page.text
    assert 'id="user"' in page.text and 'id="incident"' in page.text

    jane = worker(env, "jane.doe@contoso.com", "Jane Doe")
    worker(env, "jana.dover@contoso.com", "Jana Dover")
    worker(env, "john.smith@contoso.com", "John Smith")

    # An exact user principal name (any case) or id goes straight to the user.
    for text in ("Jane.Doe@Contoso.com", f" {jane} "):
        r = get(env.client, BASE, user=text)
        assert r.status_code == 303, text
        assert r.headers["location"] == f"{BASE}/users/{jane}"
    # Otherwise the users whose name or UPN contains the text.
    r = get(env.client, BASE, user="JAN")
    assert r.status_code == 200
    assert [row[1] for row in table(r.text, "users")] == [
        "jana.dover@contoso.com",
        "jane.doe@contoso.com",
    ]
    assert table(r.text, "users")[1] == ["Jane Doe", "jane.doe@contoso.com", "Enabled"]
    assert [row[0] for row in table(get(env.client, BASE, user="smith").text, "users")] == [
        "John Smith"
    ]
    # LIKE's wildcards are only text; bad input is an empty result, never an error.
    for text in ("%", "_", "nobody", "jane\x00", "x" * 5000, "'; drop table users; --"):
        r = get(env.client, BASE, user=text)
        assert r.status_code == 200, text
        assert 'id="no-users"' in r.text, text


# --- a user -----------------------------------------------------------------------------------


def test_user_page_shows_devices_current_sessions_and_history(env: Env, secret: str) -> None:
    jane = worker(env, "jane.doe@contoso.com", "Jane Doe")
    worker(env, "john.smith@contoso.com", "John Smith")
    a, b = enrolled(env, secret, "Headset A"), enrolled(env, secret, "Headset B")
    assert signs_in(a, "jane.doe@contoso.com").status_code == 201
    # John signing in on a ends Jane's session there; Jane signs in on b.
    assert signs_in(a, "john.smith@contoso.com").status_code == 201
    assert signs_in(b, "jane.doe@contoso.com").status_code == 201

    r = env.client.get(f"{BASE}/users/{jane}")
    assert r.status_code == 200
    assert "<h1>Jane Doe</h1>" in r.text
    user = props(r.text, "user-properties")
    assert user["User principal name"] == "jane.doe@contoso.com"
    assert user["Account"] == "Enabled"
    # Her devices, each linking to its troubleshooting view and its device page.
    assert [(row[0], row[4]) for row in table(r.text, "user-devices")] == [
        ("Headset A", "No"),
        ("Headset B", "Yes"),
    ]
    for d in (a, b):
        assert f'href="{BASE}/devices/{d.device_id}"' in r.text
        assert f'href="/console/devices/{d.device_id}"' in r.text
    assert [(c[0], c[3]) for c in table(r.text, "current-sessions")] == [("Headset B", "Signed in")]
    assert [(h[0], h[3]) for h in table(r.text, "sign-ins")] == [
        ("Headset B", "Signed in"),
        ("Headset A", "Another user signed in"),
    ]
    # By UPN too; a user who does not exist is the not-found page.
    assert env.client.get(f"{BASE}/users/jane.doe@contoso.com").status_code == 200
    for missing in ("nobody@contoso.com", "%00", "x" * 3000):
        assert env.client.get(f"{BASE}/users/{missing}").status_code == 404, missing


# --- a device's troubleshooting view -------------------------------------------------------


def test_device_view_shows_versions_session_actions_errors_and_logs(env: Env, secret: str) -> None:
    worker(env, "jane.doe@contoso.com", "Jane Doe")
    d = enrolled(env, secret, "Headset 7")
    # A failed restart, then a pending one.
    assert env.call("POST", f"{DEVICES}/{d.device_id}/rebootNow").status_code == 204
    (command,) = check_in(d)["commands"]
    assert results(d, (command["id"], "failed")).status_code == 200
    assert env.call("POST", f"{DEVICES}/{d.device_id}/rebootNow").status_code == 204
    # An app that fails to install.
    gid = group(env, "Line 1", [d])
    app_id = app_id_of(
        upload(env.client, build_apk("com.example.scanner", 10), display_name="Scanner")
    )
    post(env.client, f"/console/apps/{app_id}/assignments", required=gid)
    (work,) = [w for w in check_in(d)["apps"] if w["appId"] == app_id]
    app_result(d, work["id"], "failed", protocol.APP_HASH_MISMATCH)
    # A wrong password, then Jane signs in; the device uploads its logs.
    assert signs_in(d, "jane.doe@contoso.com", "wrong-password").status_code == 401
    assert signs_in(d, "jane.doe@contoso.com").status_code == 201
    incident = uploads_logs(d)

    r = env.client.get(f"{BASE}/devices/{d.device_id}")
    assert r.status_code == 200, r.text
    assert "<h1>Headset 7</h1>" in r.text
    view = props(r.text, "troubleshooting")
    assert view["Agent version"] == d.agent_version
    assert view["Authenticator version"] == "3.2.1 (321)"
    assert view["Last check-in (UTC)"].endswith("Z")
    assert view["Signed-in user"].startswith("jane.doe@contoso.com since ")
    assert [(s[0], s[3]) for s in table(r.text, "device-sessions")] == [
        ("jane.doe@contoso.com", "Signed in")
    ]
    (pending,) = table(r.text, "pending-actions")
    assert pending[:2] == ["Restart", "Pending"]
    errors = {row[0]: row for row in table(r.text, "errors")}
    assert errors["Action: Restart"][1] == "Failed"
    assert errors["App: Scanner"][1].startswith("Failed 0x")
    assert errors["Sign in: jane.doe@contoso.com"][1] == "Invalid credentials"
    assert table(r.text, "compliance-reasons")  # a row, or "No failed compliance setting."
    (log,) = table(r.text, "logs")
    assert log[0] == incident and log[4] == "Completed" and log[-1] == "Download"
    # Download: a short-lived URL for this admin, followed at once to the file.
    r = env.client.get(f"{BASE}/incidents/{incident}/download", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"].startswith(support.DOWNLOAD_PATH + "/")
    got = env.client.get(r.headers["location"])
    assert got.status_code == 200
    with zipfile.ZipFile(io.BytesIO(got.content)) as z:
        assert z.read("agent.log") == b"agent started\n"
    # The device page links here.
    assert (
        f'href="{BASE}/devices/{d.device_id}"'
        in env.client.get(f"/console/devices/{d.device_id}").text
    )
    for missing in ("00000000-0000-0000-0000-000000000000", "%00"):
        assert env.client.get(f"{BASE}/devices/{missing}").status_code == 404


def test_device_view_of_a_quiet_device(env: Env, secret: str) -> None:
    d = enrolled(env, secret, "Spare headset", authenticator=None)
    r = env.client.get(f"{BASE}/devices/{d.device_id}")
    assert r.status_code == 200
    view = props(r.text, "troubleshooting")
    assert view["Authenticator version"].startswith("Not reported by the device")
    assert view["Signed-in user"] == "No one"
    assert table(r.text, "pending-actions") == [["No action is waiting for the device."]]
    assert table(r.text, "errors") == [["No recent errors."]]
    assert table(r.text, "logs")[0][0].startswith("The device has not uploaded logs.")


# --- incidents --------------------------------------------------------------------------------


def test_incident_search_found_not_found_and_bad_input(env: Env, secret: str) -> None:
    d = enrolled(env, secret, "Headset 7")
    incident = uploads_logs(d, "x" * 2000)
    typed = incident.replace("-", "").lower()
    r = get(env.client, BASE, incident=f"  {typed} ")
    assert r.status_code == 303
    assert r.headers["location"] == f"{BASE}/incidents/{incident}"
    page = env.client.get(r.headers["location"])
    assert page.status_code == 200
    found = props(page.text, "incident")
    assert found["Incident ID"] == incident
    assert found["Device"] == "Headset 7"
    assert found["Status"] == "Completed"
    assert re.fullmatch(r"2\.\d KB \(\d+ bytes\)", found["Size"])
    assert found["Kept until (UTC)"].endswith("Z")
    assert 'id="download"' in page.text
    # Not found, or not an ID at all: said on the search page, never a 500.
    for text in ("AAAA-BBBB-CCCC", "nope", "\x00", "ABCD\x00EFGH1234", "9" * 10000, "%", "-"):
        r = get(env.client, BASE, incident=text)
        assert r.status_code == 200, text
        assert field_error(r.text) == NO_INCIDENT, text
    for path in ("AAAA-BBBB-CCCC", "%00", "x" * 3000):
        assert env.client.get(f"{BASE}/incidents/{path}").status_code == 404, path
        r = env.client.get(f"{BASE}/incidents/{path}/download", follow_redirects=False)
        assert r.status_code == 404, path


# --- refusals ---------------------------------------------------------------------------------


def test_permissions_and_scope(env: Env, secret: str) -> None:
    jane = worker(env, "jane.doe@contoso.com", "Jane Doe")
    d = enrolled(env, secret, "Headset 7")
    assert signs_in(d, "jane.doe@contoso.com").status_code == 201
    incident = uploads_logs(d)

    # Devices only: the incident box, no user search; the user pages are refused.
    custom_admin(env, ["devices.read"], "devices@example.com")
    page = env.client.get(BASE)
    assert page.status_code == 200
    assert 'id="incident"' in page.text and 'id="user"' not in page.text
    assert get(env.client, BASE, user="jane").status_code == 403
    r = env.client.get(f"{BASE}/users/{jane}")
    assert r.status_code == 403 and users.READ in r.text
    view = env.client.get(f"{BASE}/devices/{d.device_id}")
    assert view.status_code == 200
    assert "jane.doe@contoso.com" not in view.text.split("</header>")[1]
    assert "cannot see who signed in" in view.text
    # No download permission: no Download link, and the route is refused.
    assert ">Download<" not in view.text
    assert ">Download<" not in env.client.get(f"{BASE}/incidents/{incident}").text
    r = env.client.get(f"{BASE}/incidents/{incident}/download", follow_redirects=False)
    assert r.status_code == 403 and support.DOWNLOAD in r.text

    # Neither users.read nor devices.read: the page is refused.
    custom_admin(env, ["apps.read"], "apps@example.com")
    assert env.client.get(BASE).status_code == 403
    assert env.client.get(f"{BASE}/devices/{d.device_id}").status_code == 403
    assert get(env.client, BASE, incident=incident).status_code == 403

    # Scoped to a tag the device does not have: out of scope is not found.
    env.tag("Berlin")
    env.admin("Help Desk Operator", tags=["Berlin"], email="berlin@example.com")
    env.client.cookies.clear()
    assert sign_in(env.client, "berlin@example.com", PASSWORD).status_code == 303
    r = get(env.client, BASE, incident=incident)
    assert r.status_code == 200 and field_error(r.text) == NO_INCIDENT
    assert env.client.get(f"{BASE}/incidents/{incident}").status_code == 404
    assert env.client.get(f"{BASE}/devices/{d.device_id}").status_code == 404
    r = env.client.get(f"{BASE}/users/{jane}")
    assert r.status_code == 200
    assert table(r.text, "user-devices") == [
        ["The user has not signed in on a device you may see."]
    ]
    assert table(r.text, "sign-ins") == [["No sign-ins yet."]]

    # Read Only Operator reads everything, downloads nothing.
    env.admin("Read Only Operator", email="reader@example.com")
    env.client.cookies.clear()
    assert sign_in(env.client, "reader@example.com", PASSWORD).status_code == 303
    view = env.client.get(f"{BASE}/devices/{d.device_id}")
    assert view.status_code == 200 and incident in view.text and ">Download<" not in view.text
    r = env.client.get(f"{BASE}/incidents/{incident}/download", follow_redirects=False)
    assert r.status_code == 403 and support.DOWNLOAD in r.text


def custom_admin(env: Env, perms: list[str], email: str) -> None:
    """An admin holding exactly these permissions (a custom role), signed in."""
    role = f"Support test {email}"
    with env.db() as s:
        data = RoleDefinitionCreate.model_validate(
            {
                "displayName": role,
                "rolePermissions": [{"resourceActions": [{"allowedResourceActions": perms}]}],
            }
        )
        tenant.create_role(s, access.cli_actor(), data)
    env.admin(role, email=email)
    env.client.cookies.clear()
    assert sign_in(env.client, email, PASSWORD).status_code == 303
