"""The enrollment console through HTTP forms: Devices > Enrollment > Android > AOSP >
Corporate-owned, userless devices, the Create profile wizard, Tokens (QR, plain-text token,
export), Replace and Revoke token, edit, delete, and RBAC on every page."""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from aospmdm.core import clock
from tests.conftest import PASSWORD, Env
from tests.qr import decode_qr
from tests.web.test_sign_in import csrf, sign_in

API = "/beta/deviceManagement/androidDeviceOwnerEnrollmentProfiles"
BASE = "/console/devices/enrollment/aosp-userless"
WIFI_NOTICE = "carries the profile's Wi-Fi credentials in plain text"


def day(days: int) -> str:
    """A UTC date ``days`` from now, as the date input sends it."""
    return (clock.now() + timedelta(days=days)).date().isoformat()


def basics(**fields: Any) -> dict[str, Any]:
    return {
        "display_name": "Plant 7 scanners",
        "description": "RealWear HMT-1 on line 7",
        "token_expiration": day(30),
        "configure_wifi": "on",
        "wifi_ssid": "staging-7",
        "wifi_security_type": "wpa",
        "wifi_password": "line7-staging!",
    } | fields


def wizard(client: Any, step: str, action: str = "next", **fields: Any) -> httpx.Response:
    data = {"csrf_token": csrf(client, BASE), "step": step, "action": action, **fields}
    response: httpx.Response = client.post(f"{BASE}/create", data=data)
    return response


def post(client: Any, path: str, **fields: Any) -> httpx.Response:
    response: httpx.Response = client.post(path, data={"csrf_token": csrf(client, BASE), **fields})
    return response


def decode_png(png: bytes) -> str:
    return str(decode_qr(png).text)


def profiles(env: Env) -> list[dict[str, Any]]:
    r = env.call("GET", API)
    assert r.status_code == 200, r.text
    return list(r.json()["value"])


@pytest.fixture
def ready(env: Env) -> Env:
    """MDM authority set, and the full admin signed in to the console."""
    r = env.call("POST", f"/beta/organization/{env.org_id()}/setMobileDeviceManagementAuthority")
    assert r.status_code == 204
    assert sign_in(env.client, "root@example.com", PASSWORD).status_code == 303
    return env


def api_profile(env: Env, **fields: Any) -> dict[str, Any]:
    body = {
        "displayName": "Plant 7 scanners",
        "wifiSsid": "staging-7",
        "wifiSecurityType": "wpa",
        "wifiPassword": "line7-staging!",
        "tokenExpirationDateTime": clock.iso(clock.now() + timedelta(days=30)),
    } | fields
    r = env.call("POST", API, json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_devices_overview_leads_to_the_profile_list(ready: Env) -> None:
    home = ready.client.get("/console").text
    assert 'href="/console/devices"' in home
    page = ready.client.get("/console/devices")
    assert page.status_code == 200
    assert f'href="{BASE}"' in page.text
    assert "Enrollment &gt; Android &gt; AOSP &gt; Corporate-owned, userless devices" in page.text
    listing = ready.client.get(BASE)
    assert listing.status_code == 200
    assert "No enrollment profiles yet." in listing.text
    assert f'href="{BASE}/create"' in listing.text and "Create profile" in listing.text


def test_wizard_creates_a_profile_with_its_token(ready: Env) -> None:
    client = ready.client
    tag = ready.tag("Plant 7")
    start = client.get(f"{BASE}/create")
    assert start.status_code == 200
    assert 'type="date"' in start.text and 'name="token_expiration"' in start.text

    # Step 1 is checked at once, by the service's own rules, and nothing is created.
    r = wizard(client, "basics", **basics(wifi_password=""))
    assert r.status_code == 400
    assert "A WPA network needs its pre-shared key." in r.text
    assert 'id="wifi_password-error"' in r.text
    assert 'value="Plant 7 scanners"' in r.text, "the admin's answers are kept"
    assert profiles(ready) == []

    r = wizard(client, "basics", **basics())
    assert r.status_code == 200
    assert 'name="step" value="scope"' in r.text
    assert f'<option value="{tag}">Plant 7</option>' in r.text
    assert 'name="display_name" value="Plant 7 scanners"' in r.text  # carried in hidden fields

    # Previous goes back to Basics with the answers.
    back = wizard(client, "scope", action="back", **basics())
    assert 'name="step" value="basics"' in back.text and 'value="staging-7"' in back.text

    r = wizard(client, "scope", **basics(), scope_tags=[tag])
    assert r.status_code == 200
    assert 'name="step" value="review"' in r.text
    review = r.text
    for shown in (
        "Plant 7 scanners",
        "RealWear HMT-1 on line 7",
        f"{day(30)}T23:59:59Z",
        "staging-7",
        "WPA Pre-Shared Key",
        "Plant 7",
    ):
        assert shown in review, shown
    assert "line7-staging!" not in review.split('<form method="post"')[0], "the key is not shown"
    assert profiles(ready) == [], "no step before Create creates anything"

    r = client.post(
        f"{BASE}/create",
        data={
            "csrf_token": csrf(client, BASE),
            "step": "review",
            "action": "create",
            **basics(),
            "scope_tags": [tag],
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert r.headers["location"].startswith(f"{BASE}?notice=")
    [p] = profiles(ready)
    assert p["displayName"] == "Plant 7 scanners"
    assert p["tokenIsActive"] is True
    assert p["tokenExpirationDateTime"] == f"{day(30)}T23:59:59Z"
    assert p["roleScopeTagIds"] == [tag]
    assert p["wifiSecurityType"] == "wpa" and p["wifiPasswordIsSet"] is True

    listing = client.get(r.headers["location"])
    assert "Profile Plant 7 scanners created" in listing.text
    row = listing.text.split("<tbody>")[1]
    assert "Plant 7 scanners" in row and "RealWear HMT-1 on line 7" in row
    assert p["tokenExpirationDateTime"] in row
    assert f'href="{BASE}/{p["id"]}/token">View enrollment token' in row
    assert "<details" in row

    props = client.get(f"{BASE}/{p['id']}").text
    for shown in ("staging-7", "WPA Pre-Shared Key", "Plant 7", "No limit"):
        assert shown in props


def test_wizard_validation_shows_each_error_beside_its_field(ready: Env) -> None:
    api_profile(ready, displayName="Taken")
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"display_name": "  "}, "display_name", "A profile needs a name."),
        ({"display_name": "taken"}, "display_name", "already exists"),
        ({"wifi_ssid": ""}, "wifi_ssid", "An SSID is needed"),
        ({"wifi_password": "short"}, "wifi_password", "A WPA key is 8 to 63"),
        ({"wifi_security_type": "wep", "wifi_password": "abcdef"}, "wifi_password", "WEP key"),
        ({"token_expiration": ""}, "token_expiration", "Choose the token expiration date."),
        ({"token_expiration": day(-1)}, "token_expiration", "today or later"),
        ({"token_expiration": day(91)}, "token_expiration", "at most 90 days"),
        ({"token_expiration": "next week"}, "token_expiration", "is not a date"),
        ({"device_name_template": "RW_{{SERIAL}}"}, "device_name_template", "not allowed"),
        ({"device_name_template": "{{IMEI}}"}, "device_name_template", "not a device name"),
        ({"token_usage_limit": "0"}, "token_usage_limit", "Token usage limit:"),
        ({"token_usage_limit": "many"}, "token_usage_limit", "not a whole number"),
    ]
    for fields, name, message in cases:
        r = wizard(ready.client, "basics", **basics(**fields))
        assert r.status_code == 400, (fields, r.text)
        m = re.search(rf'id="{name}-error" role="alert">([^<]*)<', r.text)
        assert m, (fields, name)
        assert message in m.group(1).replace("&#39;", "'"), (fields, m.group(1))
        assert 'name="step" value="basics"' in r.text
    assert [p["displayName"] for p in profiles(ready)] == ["Taken"]

    # Not configuring Wi-Fi needs no SSID; the last day allowed is exactly 90 days ahead.
    r = wizard(
        ready.client,
        "basics",
        **basics(configure_wifi="", wifi_ssid="", token_expiration=day(90)),
    )
    assert r.status_code == 200 and 'name="step" value="scope"' in r.text


def test_wizard_needs_the_mdm_authority(env: Env) -> None:
    sign_in(env.client, "root@example.com", PASSWORD)
    assert "The MDM authority is not set" in env.client.get(BASE).text
    r = wizard(env.client, "basics", **basics())
    assert r.status_code == 409
    assert "Set the MDM authority first" in r.text


def test_tokens_view_qr_and_export(ready: Env) -> None:
    p = api_profile(ready, displayName='Plant 7 "scanners" ü')
    page = ready.client.get(f"{BASE}/{p['id']}/token")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    assert p["tokenValue"] in page.text
    assert p["tokenExpirationDateTime"] in page.text
    assert WIFI_NOTICE in page.text and "staging network" in page.text
    assert f'src="{BASE}/{p["id"]}/token/qr.png' in page.text
    for action in ("Export", "Replace token", "Revoke token"):
        assert action in page.text

    payload = base64.b64decode(p["qrCodeContent"]).decode()
    qr = ready.client.get(f"{BASE}/{p['id']}/token/qr.png")
    assert qr.status_code == 200
    assert qr.headers["content-type"] == "image/png"
    assert qr.headers["cache-control"] == "no-store"
    assert decode_png(qr.content) == payload
    extras = json.loads(payload)
    assert extras["android.app.extra.PROVISIONING_WIFI_PASSWORD"] == "line7-staging!"

    export = ready.client.get(f"{BASE}/{p['id']}/token/export")
    assert export.status_code == 200
    assert export.headers["content-type"].startswith("application/json")
    disposition = export.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="Plant 7 _scanners_ _.json"')
    assert "filename*=UTF-8''Plant%207%20%22scanners%22%20%C3%BC.json" in disposition
    body = json.loads(export.content)
    assert body == {"qrCodeContent": extras, "expirationDate": p["tokenExpirationDateTime"]}


def test_export_file_is_named_after_the_profile(ready: Env) -> None:
    p = api_profile(ready)
    export = ready.client.get(f"{BASE}/{p['id']}/token/export")
    assert export.headers["content-disposition"] == 'attachment; filename="Plant 7 scanners.json"'


def test_replace_token(ready: Env) -> None:
    p = api_profile(ready)
    url = f"{BASE}/{p['id']}/token/replace"
    form = ready.client.get(url)
    assert form.status_code == 200 and 'name="token_expiration"' in form.text
    for bad, message in ((day(-1), "today or later"), (day(91), "at most 90 days")):
        r = post(ready.client, url, token_expiration=bad)
        assert r.status_code == 400 and message in r.text
        assert 'id="token_expiration-error"' in r.text
    assert profiles(ready)[0]["tokenValue"] == p["tokenValue"], "errors change nothing"

    r = post(ready.client, url, token_expiration=day(60))
    assert r.status_code == 200 and "Token replaced." in r.text
    [after] = profiles(ready)
    assert after["tokenValue"] != p["tokenValue"]
    # The expiry is the end of the chosen day (UTC), to the second.
    expires = datetime.fromisoformat(after["tokenExpirationDateTime"])
    end_of_day = datetime.fromisoformat(f"{day(60)}T23:59:59+00:00")
    assert expires == end_of_day, "exactly the end of the chosen day"
    assert after["tokenValue"] in r.text
    old_payload = base64.b64decode(p["qrCodeContent"]).decode()
    qr = ready.client.get(f"{BASE}/{p['id']}/token/qr.png")
    assert decode_png(qr.content) == base64.b64decode(after["qrCodeContent"]).decode()
    assert decode_png(qr.content) != old_payload


def test_revoke_token_asks_yes(ready: Env) -> None:
    p = api_profile(ready)
    url = f"{BASE}/{p['id']}/token/revoke"
    question = ready.client.get(url)
    assert question.status_code == 200
    assert 'value="yes">Yes</button>' in question.text and 'value="no">No</button>' in question.text

    r = post(ready.client, url, answer="no")
    assert r.status_code == 200 and r.url.path == f"{BASE}/{p['id']}/token"
    assert profiles(ready)[0]["tokenIsActive"] is True

    r = post(ready.client, url, answer="yes")
    assert r.status_code == 200 and "Token revoked." in r.text
    assert "This profile has no active token" in r.text and "Replace token" in r.text
    assert WIFI_NOTICE not in r.text and "qr.png" not in r.text
    [after] = profiles(ready)
    assert after["tokenIsActive"] is False
    assert after["tokenExpirationDateTime"] <= clock.iso(clock.now())  # type: ignore[operator]
    assert ready.client.get(f"{BASE}/{p['id']}/token/qr.png").status_code == 409
    assert ready.client.get(f"{BASE}/{p['id']}/token/export").status_code == 409
    assert "Expired (revoked)" in ready.client.get(BASE).text
    r = post(ready.client, url, answer="yes")
    assert "There was no active token to revoke." in r.text


def test_no_token_yet_offers_replace(ready: Env) -> None:
    r = ready.call("POST", API, json={"displayName": "No token yet", "configureWifi": False})
    assert r.status_code == 201
    pid = r.json()["id"]
    assert "No token" in ready.client.get(BASE).text
    page = ready.client.get(f"{BASE}/{pid}/token").text
    assert "none has been created" in page and f"{BASE}/{pid}/token/replace" in page
    post(ready.client, f"{BASE}/{pid}/token/replace", token_expiration=day(7))
    assert profiles(ready)[0]["tokenIsActive"] is True


def test_edit_warns_before_a_rename(ready: Env) -> None:
    p = api_profile(ready)
    url = f"{BASE}/{p['id']}/edit"
    form = ready.client.get(url)
    assert form.status_code == 200
    assert 'id="rename-warning"' in form.text and "dynamic groups" in form.text
    assert 'value="Plant 7 scanners"' in form.text

    fields = {
        "display_name": "Plant 7 scanners",
        "description": "now with a description",
        "configure_wifi": "on",
        "wifi_ssid": "staging-7",
        "wifi_security_type": "wpa",
        "wifi_password": "",  # empty keeps the stored key
    }
    r = post(ready.client, url, **fields)
    assert r.status_code == 200 and "Profile saved." in r.text
    [after] = profiles(ready)
    assert after["description"] == "now with a description"
    assert after["wifiPasswordIsSet"] is True
    assert after["qrCodeContent"] == p["qrCodeContent"], "the key and token are unchanged"

    r = post(ready.client, url, **(fields | {"display_name": "Line 7 headsets"}))
    assert r.status_code == 400
    assert "enrollmentProfileName" in r.text and 'id="display_name-error"' in r.text
    assert profiles(ready)[0]["displayName"] == "Plant 7 scanners"

    r = post(
        ready.client, url, **(fields | {"display_name": "Line 7 headsets"}), confirm_rename="yes"
    )
    assert r.status_code == 200 and "Profile saved." in r.text
    assert profiles(ready)[0]["displayName"] == "Line 7 headsets"

    r = post(ready.client, url, **(fields | {"display_name": "Line 7 headsets", "wifi_ssid": ""}))
    assert r.status_code == 400 and 'id="wifi_ssid-error"' in r.text

    r = post(ready.client, url, **(fields | {"display_name": "Line 7 headsets"}))
    assert "Nothing changed." in r.text
    updates = ready.audit(**{"$filter": "activity eq 'Update enrollment profile'"})
    assert len(updates) == 2


def test_delete_asks_yes(ready: Env) -> None:
    p = api_profile(ready)
    url = f"{BASE}/{p['id']}/delete"
    assert "stay enrolled" in ready.client.get(url).text
    r = post(ready.client, url, answer="no")
    assert r.url.path == f"{BASE}/{p['id']}"
    assert len(profiles(ready)) == 1
    r = post(ready.client, url, answer="yes")
    assert r.status_code == 200 and r.url.path == BASE
    assert "Profile Plant 7 scanners deleted" in r.text
    assert profiles(ready) == []
    assert ready.client.get(f"{BASE}/{p['id']}").status_code == 404


def test_read_only_admin_sees_pages_but_no_forms(ready: Env) -> None:
    p = api_profile(ready)
    ready.admin("Read Only Operator", email="reader@example.com")
    ready.client.cookies.clear()
    assert sign_in(ready.client, "reader@example.com", PASSWORD).status_code == 303
    pid = p["id"]
    for path in (
        BASE,
        f"{BASE}/create",
        f"{BASE}/{pid}",
        f"{BASE}/{pid}/token",
        f"{BASE}/{pid}/token/replace",
        f"{BASE}/{pid}/token/revoke",
        f"{BASE}/{pid}/edit",
        f"{BASE}/{pid}/delete",
    ):
        r = ready.client.get(path)
        assert r.status_code == 200, path
        assert r.text.count("<form") == 1, f"only the sign-out form on {path}"
    listing = ready.client.get(BASE).text
    assert "Plant 7 scanners" in listing and "Create profile" not in listing
    token_page = ready.client.get(f"{BASE}/{pid}/token").text
    assert p["tokenValue"] in token_page and "Revoke token" not in token_page
    assert ready.client.get(f"{BASE}/{pid}/token/qr.png").status_code == 200

    for path, fields in (
        (f"{BASE}/create", {"step": "basics", **basics(display_name="Sneaky")}),
        (f"{BASE}/create", {"step": "review", "action": "create", **basics(display_name="x")}),
        (f"{BASE}/{pid}/token/replace", {"token_expiration": day(10)}),
        (f"{BASE}/{pid}/token/revoke", {"answer": "yes"}),
        (f"{BASE}/{pid}/edit", {"display_name": "Renamed", "confirm_rename": "yes"}),
        (f"{BASE}/{pid}/delete", {"answer": "yes"}),
    ):
        r = post(ready.client, path, **fields)
        assert r.status_code == 403, path
    [after] = profiles(ready)
    assert after["displayName"] == "Plant 7 scanners"
    assert after["tokenValue"] == p["tokenValue"] and after["tokenIsActive"] is True


def test_forms_need_the_csrf_token(ready: Env) -> None:
    p = api_profile(ready)
    r = ready.client.post(f"{BASE}/{p['id']}/token/revoke", data={"answer": "yes"})
    assert r.status_code == 403
    r = ready.client.post(f"{BASE}/create", data={"step": "review", "action": "create", **basics()})
    assert r.status_code == 403
    assert profiles(ready)[0]["tokenIsActive"] is True


def test_scoped_manager_sees_and_tags_within_their_scope(ready: Env) -> None:
    plant = ready.tag("Plant 7")
    ready.tag("Plant 9")
    mine = api_profile(ready, displayName="Mine", roleScopeTagIds=[plant])
    other = api_profile(ready, displayName="Other")
    ready.admin("Policy and Profile Manager", tags=["Plant 7"], email="p7@example.com")
    ready.client.cookies.clear()
    sign_in(ready.client, "p7@example.com", PASSWORD)
    listing = ready.client.get(BASE).text
    assert "Mine" in listing and "Other" not in listing
    assert ready.client.get(f"{BASE}/{other['id']}/token").status_code == 404
    assert ready.client.get(f"{BASE}/{mine['id']}/token").status_code == 200

    r = wizard(ready.client, "basics", **basics(display_name="Plant 7 new"))
    assert r.status_code == 200
    assert ">Plant 7</option>" in r.text and "Plant 9" not in r.text
    r = wizard(ready.client, "scope", **basics(display_name="Plant 7 new"))
    assert "Your scope tags: Plant 7" in r.text
    r = wizard(ready.client, "review", action="create", **basics(display_name="Plant 7 new"))
    assert r.status_code == 200 and "Profile Plant 7 new created" in r.text
    created = [p for p in profiles(ready) if p["displayName"] == "Plant 7 new"]
    assert created[0]["roleScopeTagIds"] == [plant]
