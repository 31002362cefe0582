"""Enrollment profiles, tokens and QR codes through the Graph-shaped API (SPEC.md §3, §4)."""

from __future__ import annotations

import base64
import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aospmdm.core import clock
from aospmdm.enrollment import provisioning
from tests.conftest import Env
from tests.matrix import Resource, check_resource
from tests.qr import decode_qr

P = "/beta/deviceManagement/androidDeviceOwnerEnrollmentProfiles"
X = "android.app.extra."
_n = itertools.count()


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def in_days(days: float) -> str:
    return iso(clock.now() + timedelta(days=days))


@pytest.fixture
def ready(env: Env) -> Env:
    r = env.call("POST", f"/beta/organization/{env.org_id()}/setMobileDeviceManagementAuthority")
    assert r.status_code == 204
    return env


def create(env: Env, token: str = "full", **fields: Any) -> dict[str, Any]:
    body = {"displayName": f"Factory {next(_n)}", "wifiSsid": "staging"} | fields
    r = env.call("POST", P, token=token, json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def decode_png(png: bytes) -> str:
    return str(decode_qr(png).text)


def test_profiles_need_the_mdm_authority(env: Env) -> None:
    r = env.call("POST", P, json={"displayName": "Factory 1", "wifiSsid": "s"})
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "mdmAuthorityNotSet"
    assert "MDM authority" in r.json()["error"]["message"]
    assert env.call("GET", P).json()["value"] == []


def test_profile_matrix(ready: Env) -> None:
    check_resource(
        ready,
        Resource(
            collection=P,
            read_permission="enrollmentProfiles.read",
            write_permission="enrollmentProfiles.write",
            make=lambda e, tags: create(e, roleScopeTagIds=tags)["id"],
            create_body=lambda: {"displayName": f"m {next(_n)}", "configureWifi": False},
            scope_tagged=True,
        ),
    )


def test_create_without_expiry_has_no_token_as_in_graph(ready: Env) -> None:
    p = create(ready)
    assert p["tokenValue"] is None and p["tokenExpirationDateTime"] is None
    assert p["qrCodeContent"] is None and p["qrCodeImage"] is None
    assert p["enrollmentMode"] == "corporateOwnedAOSPUserlessDevice"
    assert p["configureWifi"] is True and p["wifiHidden"] is False
    r = ready.call("GET", f"{P}/{p['id']}/qrCode.png")
    assert r.status_code == 409 and r.json()["error"]["code"] == "noActiveToken"


def test_qr_png_and_svg_encode_the_json_that_qr_code_content_holds(ready: Env) -> None:
    p = create(
        ready,
        displayName="Plant 1",
        wifiSsid="Staging Net",
        wifiSecurityType="wpa",
        wifiPassword="s3cret-staging",
        wifiHidden=True,
        tokenExpirationDateTime=in_days(30),
    )
    text = base64.b64decode(p["qrCodeContent"]).decode()
    extras = json.loads(text)
    assert extras[X + "PROVISIONING_WIFI_SSID"] == "Staging Net"
    assert extras[X + "PROVISIONING_WIFI_HIDDEN"] is True
    assert extras[X + "PROVISIONING_WIFI_SECURITY_TYPE"] == "WPA"
    assert extras[X + "PROVISIONING_WIFI_PASSWORD"] == "s3cret-staging"
    assert (
        extras[X + "PROVISIONING_DEVICE_ADMIN_COMPONENT_NAME"] == "org.aospmdm.agent/.AdminReceiver"
    )
    assert extras[X + "PROVISIONING_DEVICE_ADMIN_PACKAGE_DOWNLOAD_LOCATION"] == (
        "http://testserver/device/v1/agent.apk"
    )
    checksum = extras[X + "PROVISIONING_DEVICE_ADMIN_SIGNATURE_CHECKSUM"]
    assert "=" not in checksum and "+" not in checksum and "/" not in checksum
    bundle = extras[X + "PROVISIONING_ADMIN_EXTRAS_BUNDLE"]
    assert bundle["aospmdm.serverUrl"] == "http://testserver"
    assert bundle["aospmdm.profileId"] == p["id"]
    secret = bundle["aospmdm.enrollmentToken"]
    assert isinstance(secret, str) and len(base64.urlsafe_b64decode(secret + "=")) >= 16
    assert secret != p["tokenValue"], "the plain-text token is a reference, not the secret"
    assert all(isinstance(v, str) for v in bundle.values())
    # The PNG in the object and the one served directly both decode to that very text.
    assert p["qrCodeImage"]["type"] == "image/png"
    assert decode_png(base64.b64decode(p["qrCodeImage"]["value"])) == text
    r = ready.call("GET", f"{P}/{p['id']}/qrCode.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.headers["cache-control"] == "no-store"
    assert decode_png(r.content) == text
    svg = ready.call("GET", f"{P}/{p['id']}/qrCode.svg")
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert svg.content == provisioning.qr_svg(text), "same matrix as the PNG"
    export = ready.call("GET", f"{P}/{p['id']}/export").json()
    assert export == {"qrCodeContent": extras, "expirationDate": p["tokenExpirationDateTime"]}
    # Lists carry the content but not the image (a PNG per row would be slow).
    listed = ready.call("GET", P).json()["value"][0]
    assert listed["qrCodeContent"] == p["qrCodeContent"] and listed["qrCodeImage"] is None


def test_open_network_and_no_wifi_payloads(ready: Env) -> None:
    open_net = create(ready, wifiSsid="Open", tokenExpirationDateTime=in_days(1))
    extras = json.loads(base64.b64decode(open_net["qrCodeContent"]))
    assert extras[X + "PROVISIONING_WIFI_SECURITY_TYPE"] == "NONE"
    assert X + "PROVISIONING_WIFI_PASSWORD" not in extras
    wired = create(ready, configureWifi=False, wifiSsid=None, tokenExpirationDateTime=in_days(1))
    extras = json.loads(base64.b64decode(wired["qrCodeContent"]))
    assert not any("WIFI" in k for k in extras)


def test_checksum_padding_is_an_operator_setting(ready: Env) -> None:
    from aospmdm.enrollment.provisioning import signature_checksum

    padded = ready.settings.model_copy(update={"agent_checksum_padding": True})
    assert signature_checksum(padded).endswith("=")
    assert signature_checksum(ready.settings) == signature_checksum(padded).rstrip("=")
    raw = base64.urlsafe_b64decode(signature_checksum(padded))
    assert raw.hex() == ready.settings.agent_signing_cert_sha256.lower()


def test_replace_makes_a_new_token_and_revoke_expires_it_now(ready: Env) -> None:
    p = create(ready, tokenExpirationDateTime=in_days(10))
    old_secret = json.loads(base64.b64decode(p["qrCodeContent"]))[
        X + "PROVISIONING_ADMIN_EXTRAS_BUNDLE"
    ]
    r = ready.call("POST", f"{P}/{p['id']}/createToken", json={"tokenValidityInSeconds": 3600})
    assert r.status_code == 204 and r.content == b""
    q = ready.call("GET", f"{P}/{p['id']}").json()
    assert q["tokenValue"] != p["tokenValue"]
    new_secret = json.loads(base64.b64decode(q["qrCodeContent"]))[
        X + "PROVISIONING_ADMIN_EXTRAS_BUNDLE"
    ]
    assert new_secret["aospmdm.enrollmentToken"] != old_secret["aospmdm.enrollmentToken"]
    expires = datetime.fromisoformat(q["tokenExpirationDateTime"].replace("Z", "+00:00"))
    assert abs((expires - clock.now()).total_seconds() - 3600) < 60
    assert q["enrollmentTokenUsageCount"] == 0
    r = ready.call("POST", f"{P}/{p['id']}/revokeToken")
    assert r.status_code == 204
    gone = ready.call("GET", f"{P}/{p['id']}").json()
    revoked_at = datetime.fromisoformat(gone["tokenExpirationDateTime"].replace("Z", "+00:00"))
    assert revoked_at <= clock.now()
    assert gone["tokenIsActive"] is False and gone["qrCodeContent"] is None
    assert gone["tokenValue"] == q["tokenValue"], "the reference stays visible"
    for kind in ("qrCode.png", "qrCode.svg", "export"):
        r = ready.call("GET", f"{P}/{p['id']}/{kind}")
        assert r.status_code == 409 and "Replace token" in r.json()["error"]["message"]
    activities = [e["activity"] for e in ready.audit(**{"$filter": "category eq 'Enrollment'"})]
    assert activities.count("Create enrollment token") == 2
    assert "Revoke enrollment token" in activities


def test_expiry_is_enforced_on_the_server_clock(ready: Env) -> None:
    start = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False) as traveller:
        p = create(ready, tokenExpirationDateTime=iso(start + timedelta(days=90)))
        assert p["tokenIsActive"] is True
        traveller.move_to(start + timedelta(days=90) - timedelta(seconds=1))
        assert ready.call("GET", f"{P}/{p['id']}").json()["tokenIsActive"] is True
        traveller.move_to(start + timedelta(days=90, seconds=1))
        q = ready.call("GET", f"{P}/{p['id']}").json()
        assert q["tokenIsActive"] is False and q["qrCodeImage"] is None
        assert ready.call("GET", f"{P}/{p['id']}/export").status_code == 409


@pytest.mark.parametrize(
    ("field", "body", "needle"),
    [
        ("displayName", {"displayName": ""}, "name"),
        ("displayName", {"displayName": "   "}, "name"),
        ("wifiSsid", {"wifiSsid": None}, "SSID"),
        ("wifiSsid", {"wifiSsid": "x" * 33}, "32"),
        ("wifiPassword", {"wifiSecurityType": "wpa"}, "pre-shared key"),
        ("wifiPassword", {"wifiSecurityType": "wep"}, "pre-shared key"),
        ("wifiPassword", {"wifiSecurityType": "wpa", "wifiPassword": "short"}, "8 to 63"),
        ("wifiPassword", {"wifiSecurityType": "wpa", "wifiPassword": "x" * 64}, "64 hexadecimal"),
        (
            "wifiPassword",
            {"wifiSecurityType": "wpa", "wifiPassword": "caf\u00e9-caf\u00e9"},
            "printable",
        ),
        ("wifiPassword", {"wifiSecurityType": "wep", "wifiPassword": "abcdef"}, "5 or 13"),
        ("wifiPassword", {"wifiSecurityType": "wep", "wifiPassword": "abcdefghijk"}, "10 or 26"),
        ("wifiSecurityType", {"wifiSecurityType": "wpa2"}, ""),
        ("deviceNameTemplate", {"deviceNameTemplate": "a" * 64}, "63"),
        ("deviceNameTemplate", {"deviceNameTemplate": "Glass {{SERIAL}}"}, "' '"),
        ("deviceNameTemplate", {"deviceNameTemplate": "Glass_{{SERIAL}}"}, "'_'"),
        ("deviceNameTemplate", {"deviceNameTemplate": "RW-{{IMEI}}"}, "{{IMEI}}"),
        ("deviceNameTemplate", {"deviceNameTemplate": "RW-{{RAND:0}}"}, "RAND"),
        ("deviceNameTemplate", {"deviceNameTemplate": "RW-{{serial}}"}, "serial"),
        ("tokenExpirationDateTime", {"tokenExpirationDateTime": "2020-01-01T00:00:00Z"}, "future"),
        ("tokenExpirationDateTime", {"tokenExpirationDateTime": "EXPIRY"}, ""),
        ("tokenUsageLimit", {"tokenUsageLimit": 0}, ""),
        ("tokenUsageLimit", {"tokenUsageLimit": 20001}, ""),
        (
            "enrollmentMode",
            {"enrollmentMode": "corporateOwnedAOSPUserAssociatedDevice"},
            "userless",
        ),
        ("@odata.type", {"@odata.type": "#microsoft.graph.androidForWorkEnrollmentProfile"}, ""),
        ("unknownThing", {"unknownThing": 1}, "not known"),
    ],
)
def test_validation_matrix(ready: Env, field: str, body: dict[str, Any], needle: str) -> None:
    base = {"displayName": f"valid {next(_n)}", "wifiSsid": "staging"}
    r = ready.call("POST", P, json=base | body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["target"] == field
    assert needle.lower() in err["message"].lower()
    assert ready.call("GET", P).json()["value"] == [], "a refused create leaves nothing"
    assert not ready.audit(**{"$filter": "category eq 'Enrollment'"})


def test_expiry_beyond_90_days_is_refused_both_ways(ready: Env) -> None:
    r = ready.call(
        "POST",
        P,
        json={"displayName": "x", "wifiSsid": "s", "tokenExpirationDateTime": in_days(90.01)},
    )
    assert r.status_code == 400 and "90 days" in r.json()["error"]["message"]
    p = create(ready)
    for seconds in (7_776_001, 0, -5):
        r = ready.call(
            "POST", f"{P}/{p['id']}/createToken", json={"tokenValidityInSeconds": seconds}
        )
        assert r.status_code == 400, seconds
        assert r.json()["error"]["target"] == "tokenValidityInSeconds"
    r = ready.call("POST", f"{P}/{p['id']}/createToken", json={"tokenValidityInSeconds": 7_776_000})
    assert r.status_code == 204
    assert ready.call("POST", f"{P}/{p['id']}/createToken", json={}).status_code == 400


def test_valid_keys_and_templates_are_accepted(ready: Env) -> None:
    for security, key in [
        ("wpa", "12345678"),
        ("wpa", "x" * 63),
        ("wpa", "ab" * 32),
        ("wep", "abcde"),
        ("wep", "abcdefghijklm"),
        ("wep", "0a" * 5),
        ("wep", "0A" * 13),
    ]:
        create(ready, wifiSecurityType=security, wifiPassword=key)
    for template in (
        "RW-{{SERIAL}}",
        "{{DEVICETYPE}}-{{SERIALLAST4DIGITS}}",
        "Glass-{{ENROLLMENTDATETIME}}-{{RAND:9}}",
        "{{RAND:1}}",
        "a" * 63,
    ):
        assert create(ready, deviceNameTemplate=template)["deviceNameTemplate"] == template


def test_duplicate_names_are_refused_whatever_the_case(ready: Env) -> None:
    create(ready, displayName="Factory One")
    r = ready.call("POST", P, json={"displayName": "factory one", "wifiSsid": "s"})
    assert r.status_code == 400 and r.json()["error"]["target"] == "displayName"
    other = create(ready, displayName="Factory Two")
    r = ready.call("PATCH", f"{P}/{other['id']}", json={"displayName": "FACTORY ONE"})
    assert r.status_code == 400 and r.json()["error"]["target"] == "displayName"


def test_patch_round_trip_and_write_only_key(ready: Env) -> None:
    p = create(
        ready,
        wifiSecurityType="wpa",
        wifiPassword="first-key-1",
        tokenExpirationDateTime=in_days(5),
    )
    assert p["wifiPassword"] is None and p["wifiPasswordIsSet"] is True
    p["displayName"] = "Renamed plant"
    r = ready.call("PATCH", f"{P}/{p['id']}", json=p)
    assert r.status_code == 200, r.text
    q = r.json()
    assert q["displayName"] == "Renamed plant"
    assert q["tokenValue"] == p["tokenValue"], "editing never touches the token"
    extras = json.loads(base64.b64decode(q["qrCodeContent"]))
    assert extras[X + "PROVISIONING_WIFI_PASSWORD"] == "first-key-1", "null kept the key"
    r = ready.call("PATCH", f"{P}/{p['id']}", json={"wifiPassword": "second-key-2"})
    extras = json.loads(base64.b64decode(r.json()["qrCodeContent"]))
    assert extras[X + "PROVISIONING_WIFI_PASSWORD"] == "second-key-2"
    r = ready.call("PATCH", f"{P}/{p['id']}", json={"wifiPassword": ""})
    assert r.status_code == 400 and r.json()["error"]["target"] == "wifiPassword"
    r = ready.call("PATCH", f"{P}/{p['id']}", json={"wifiSecurityType": "none", "wifiPassword": ""})
    assert r.status_code == 200 and r.json()["wifiPasswordIsSet"] is False
    r = ready.call("PATCH", f"{P}/{p['id']}", json={"configureWifi": True, "wifiSsid": None})
    assert r.status_code == 400 and r.json()["error"]["target"] == "wifiSsid"
    r = ready.call("PATCH", f"{P}/{p['id']}", json={"tokenUsageLimit": 5})
    assert r.json()["tokenUsageLimit"] == 5
    r = ready.call("PATCH", f"{P}/{p['id']}", json={"tokenUsageLimit": None})
    assert r.json()["tokenUsageLimit"] is None
    changes = ready.audit(**{"$filter": "activity eq 'Update enrollment profile'"})
    assert changes and all("second-key-2" not in json.dumps(e) for e in changes)


def test_delete_revokes_the_token(ready: Env) -> None:
    p = create(ready, tokenExpirationDateTime=in_days(5))
    assert ready.call("DELETE", f"{P}/{p['id']}").status_code == 204
    assert ready.call("GET", f"{P}/{p['id']}").status_code == 404
    assert ready.call("DELETE", f"{P}/{p['id']}").status_code == 404
    from sqlalchemy import select

    from aospmdm.enrollment.models import EnrollmentToken

    with ready.db() as s:
        token = s.scalars(
            select(EnrollmentToken).where(EnrollmentToken.value == p["tokenValue"])
        ).one()
        assert token.revoked_at is not None and token.profile_id is None
    # The name is free again.
    create(ready, displayName=p["displayName"])


def test_scoped_admin_profiles_get_its_tags(ready: Env) -> None:
    a = ready.tag("Plant A")
    ready.tag("Plant B")
    scoped = ready.custom_admin(
        ["enrollmentProfiles.read", "enrollmentProfiles.write"], tags=["Plant A"]
    )
    p = create(ready, token=scoped)
    assert p["roleScopeTagIds"] == [a]
    other = create(ready, roleScopeTagIds=[ready.tag("Plant C")])
    for path in ("", "/qrCode.png", "/export"):
        assert ready.call("GET", f"{P}/{other['id']}{path}", token=scoped).status_code == 404
    assert ready.call("POST", f"{P}/{other['id']}/revokeToken", token=scoped).status_code == 404
    r = ready.call("PATCH", f"{P}/{p['id']}", token=scoped, json={"roleScopeTagIds": []})
    assert r.status_code == 400


def test_policy_and_profile_manager_may_manage_profiles_help_desk_may_not(ready: Env) -> None:
    ppm = ready.admin("Policy and Profile Manager")
    helpdesk = ready.admin("Help Desk Operator")
    p = create(ready, token=ppm)
    r = ready.call(
        "POST", f"{P}/{p['id']}/createToken", token=helpdesk, json={"tokenValidityInSeconds": 60}
    )
    assert r.status_code == 403
    assert ready.call("GET", f"{P}/{p['id']}", token=helpdesk).status_code == 200


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.text(alphabet=st.sampled_from("Aa1-_ {}:RANDSERIL4T9é"), max_size=70))
def test_any_template_is_accepted_or_refused_with_a_400(ready: Env, template: str) -> None:
    from aospmdm.core.errors import BadRequest
    from aospmdm.enrollment import device_names

    try:
        device_names.validate(template)
    except BadRequest as exc:
        assert exc.target == "deviceNameTemplate"
        return
    assert len(template) <= 63
    literal = template
    for token in (
        "{{SERIAL}}",
        "{{SERIALLAST4DIGITS}}",
        "{{DEVICETYPE}}",
        "{{ENROLLMENTDATETIME}}",
    ):
        literal = literal.replace(token, "")
    for x in range(1, 10):
        literal = literal.replace(f"{{{{RAND:{x}}}}}", "")
    assert all(c.isascii() and (c.isalnum() or c == "-") for c in literal)


@pytest.mark.parametrize("ssid", ["Fabrik-Süd", "東京工場"])
def test_non_ascii_ssid_is_utf8_in_the_qr(ready: Env, ssid: str) -> None:
    """Latin-1 and Shift_JIS would also fit these; the setup wizard reads UTF-8."""
    p = create(ready, wifiSsid=ssid, tokenExpirationDateTime=in_days(1))
    text = base64.b64decode(p["qrCodeContent"]).decode()
    assert ssid in text
    png = ready.call("GET", f"{P}/{p['id']}/qrCode.png").content
    assert decode_qr(png).bytes == text.encode("utf-8")
