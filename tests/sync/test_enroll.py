"""Enrollment and check-in through the device protocol (SPEC.md §5)."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from sqlalchemy import func, select

from aospmdm import protocol
from aospmdm.core import clock
from aospmdm.devices.models import DeviceApp, ManagedDevice
from aospmdm.enrollment.models import EnrollmentToken
from aospmdm.sync.service import next_check_in_seconds
from aospmdm.tenant import access, service
from aospmdm.tenant.models import Organization
from tests.conftest import Env
from tests.sync.device import Device, secret_of

P = "/beta/deviceManagement/androidDeviceOwnerEnrollmentProfiles"
D = "/beta/deviceManagement/managedDevices"
_n = itertools.count()


def set_licenses(env: Env, n: int) -> None:
    with env.db() as s:
        service.set_license_count(s, access.cli_actor(), n)


@pytest.fixture
def ready(env: Env) -> Env:
    env.call("POST", f"/beta/organization/{env.org_id()}/setMobileDeviceManagementAuthority")
    set_licenses(env, 10)
    return env


def profile(env: Env, **fields: Any) -> dict[str, Any]:
    expires = (clock.now() + timedelta(days=30)).isoformat()
    body = {
        "displayName": f"Factory {next(_n)}",
        "wifiSsid": "staging",
        "tokenExpirationDateTime": expires,
    } | fields
    r = env.call("POST", P, json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def state(env: Env) -> tuple[int, int, list[int]]:
    with env.db() as s:
        devices = s.scalar(select(func.count()).select_from(ManagedDevice)) or 0
        used = s.scalars(select(Organization.licenses_consumed)).one()
        counts = list(s.scalars(select(EnrollmentToken.usage_count).order_by(EnrollmentToken.id)))
    return devices, used, counts


def test_enroll_then_check_in_and_see_the_device(ready: Env) -> None:
    a = ready.tag("Plant A")
    p = profile(
        ready,
        displayName="Factory 1 devices",
        deviceNameTemplate="RW-{{SERIALLAST4DIGITS}}",
        roleScopeTagIds=[a],
    )
    dev = Device(ready.client, serial="NAV500-0042")
    r = dev.enroll(secret_of(p))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["deviceName"] == "RW-0042"
    assert 3 * 60 * 0.9 <= body["nextCheckInSeconds"] <= 3 * 60 * 1.1
    roles = {app["role"] for app in body["requiredApps"]}
    assert roles == {"agent", "authenticator", "companyPortal"}
    r = dev.checkin()
    assert r.status_code == 200, r.text
    assert r.json()["commands"] == [] and r.json()["sendInstalledApps"] is False
    d = ready.call("GET", f"{D}/{dev.device_id}").json()
    assert d["deviceName"] == "RW-0042"
    assert d["enrollmentProfileName"] == "Factory 1 devices"
    assert d["managementState"] == "managed" and d["ownerType"] == "company"
    assert d["deviceEnrollmentType"] == "androidAOSPUserlessDeviceEnrollment"
    assert d["serialNumber"] == "NAV500-0042" and d["manufacturer"] == "RealWear"
    assert d["model"] == "Navigator 500" and d["osVersion"] == "11"
    assert d["androidSecurityPatchLevel"] == "2024-05-05"
    assert d["isEncrypted"] is True and d["jailBroken"] == "False"
    # Judged at the check-in: no compliance policy applies, and secureByDefault is off.
    assert d["complianceState"] == "compliant" and d["userPrincipalName"] is None
    assert d["roleScopeTagIds"] == [a], "devices inherit the profile's tags"
    apps = ready.call("GET", f"{D}/{dev.device_id}/detectedApps").json()["value"]
    assert [(x["displayName"], x["version"]) for x in apps] == [("Launcher", "2.1.0")]
    listed = ready.call(
        "GET", D, params={"$filter": "enrollmentProfileName eq 'Factory 1 devices'"}
    )
    assert [x["id"] for x in listed.json()["value"]] == [dev.device_id]
    p2 = ready.call("GET", f"{P}/{p['id']}").json()
    assert p2["enrolledDeviceCount"] == 1 and p2["enrollmentTokenUsageCount"] == 1
    sku = ready.call("GET", "/beta/subscribedSkus").json()["value"][0]
    assert sku["consumedUnits"] == 1
    enrolled = ready.audit(**{"$filter": "activity eq 'Enroll device'"})
    assert enrolled[0]["actor"]["type"] == "device"


def test_default_name_is_intunes_form(ready: Env) -> None:
    p = profile(ready)
    with time_machine.travel(datetime(2027, 1, 12, 14, 5, tzinfo=UTC), tick=False):
        p = profile(ready)
        r = Device(ready.client).enroll(secret_of(p))
    assert r.json()["deviceName"] == "AndroidAOSP_1/12/2027_2:05 PM"


def test_installed_apps_travel_only_when_their_hash_changed(ready: Env) -> None:
    dev = Device(ready.client)
    dev.enroll(secret_of(profile(ready)))
    dev.apps.append(
        protocol.InstalledApp(
            package_name="com.example.scanner",
            version_name="1.2",
            version_code=12,
            display_name="Scanner",
        )
    )
    r = dev.checkin(send_apps=False)
    assert r.status_code == 200 and r.json()["sendInstalledApps"] is True
    r = dev.checkin(send_apps=True)
    assert r.json()["sendInstalledApps"] is False
    apps = ready.call("GET", f"{D}/{dev.device_id}/detectedApps").json()["value"]
    assert {x["displayName"] for x in apps} == {"Launcher", "Scanner"}
    assert dev.checkin().json()["sendInstalledApps"] is False


def test_facts_update_on_check_in(ready: Env) -> None:
    dev = Device(ready.client)
    dev.enroll(secret_of(profile(ready)))
    body = dev.checkin_body(os_version="12", security_patch_level="2024-09-01", is_rooted=True)
    assert dev.signed("/device/v1/checkin", body).status_code == 200
    d = ready.call("GET", f"{D}/{dev.device_id}").json()
    assert (d["osVersion"], d["androidSecurityPatchLevel"], d["jailBroken"]) == (
        "12",
        "2024-09-01",
        "True",
    )


@pytest.mark.parametrize(
    "case",
    [
        "unknown",
        "plain",
        "revoked",
        "replaced",
        "expired",
        "limit",
        "license",
        "authority",
        "old_agent",
        "deleted_profile",
    ],
)
def test_every_refusal_is_clear_audited_and_leaves_nothing(env: Env, case: str) -> None:
    if case != "authority":
        env.call("POST", f"/beta/organization/{env.org_id()}/setMobileDeviceManagementAuthority")
    set_licenses(env, 0 if case == "license" else 5)
    if case == "authority":
        with env.db() as s:  # a profile exists, but the authority is not set
            s.execute(Organization.__table__.update().values(mdm_authority="intune"))
        p = profile(env)
        with env.db() as s:
            s.execute(Organization.__table__.update().values(mdm_authority="unknown"))
    else:
        p = profile(env, tokenUsageLimit=1) if case == "limit" else profile(env)
    secret = secret_of(p)
    if case == "limit":
        assert Device(env.client).enroll(secret).status_code == 201
    before = state(env)
    dev = Device(env.client)
    expect: dict[str, tuple[int, str]] = {
        "unknown": (403, "tokenUnknown"),
        "plain": (400, "tokenIsPlainText"),
        "revoked": (403, "tokenRevoked"),
        "replaced": (403, "tokenRevoked"),
        "expired": (403, "tokenExpired"),
        "limit": (403, "tokenUsageLimitReached"),
        "license": (409, "noDeviceLicense"),
        "authority": (409, "mdmAuthorityNotSet"),
        "old_agent": (426, "agentUpdateRequired"),
        "deleted_profile": (403, "tokenRevoked"),
    }
    if case == "unknown":
        r = dev.enroll("not-a-token-anyone-issued")
    elif case == "plain":
        r = dev.enroll(p["tokenValue"])
    elif case == "revoked":
        env.call("POST", f"{P}/{p['id']}/revokeToken")
        before = state(env)
        r = dev.enroll(secret)
    elif case == "replaced":
        env.call("POST", f"{P}/{p['id']}/createToken", json={"tokenValidityInSeconds": 600})
        before = state(env)
        r = dev.enroll(secret)
    elif case == "expired":
        clock.advance(31 * 86400)
        r = dev.enroll(secret)
    elif case == "deleted_profile":
        env.call("DELETE", f"{P}/{p['id']}")
        before = state(env)
        r = dev.enroll(secret)
    elif case == "old_agent":
        r = dev.enroll(secret, agentVersion="24.6.9")
    else:
        r = dev.enroll(secret)
    status, code = expect[case]
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code and len(err["message"]) > 20
    if case == "plain":
        assert "QR code" in err["message"]
    if case == "old_agent":
        assert err["minimumVersion"] == "24.7.0" and err["downloadUrl"].endswith(".apk")
    assert state(env) == before, "a refusal leaves no device, no license, no usage count"
    refused = env.audit(**{"$filter": "activity eq 'POST /device/v1/enroll'"})
    assert refused and code in refused[0]["message"]


def test_bad_enroll_bodies_are_400(ready: Env) -> None:
    secret = secret_of(profile(ready))
    dev = Device(ready.client)
    r = dev.enroll(secret, publicKey="bm90IGEga2V5")
    assert r.status_code == 400 and r.json()["error"]["target"] == "publicKey"
    r = ready.client.post("/device/v1/enroll", content=b"{nope")
    assert r.status_code == 400
    r = ready.client.post("/device/v1/enroll", json={"enrollmentToken": secret})
    assert r.status_code == 400
    rsa_like = dev.public_key()[:-4] + "AAAA"
    assert dev.enroll(secret, publicKey=rsa_like).status_code == 400
    assert state(ready)[0] == 0


def test_signatures_forged_stale_replayed_and_unknown_are_refused(ready: Env) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    dev = Device(ready.client)
    dev.enroll(secret_of(profile(ready)))
    body = dev.checkin_body()
    ok = dev.signed("/device/v1/checkin", body, nonce="fixed-nonce-0123456789")
    assert ok.status_code == 200
    cases = {
        "signatureReplayed": dev.signed("/device/v1/checkin", body, nonce="fixed-nonce-0123456789"),
        "signatureInvalid": dev.signed(
            "/device/v1/checkin", body, key=ec.generate_private_key(ec.SECP256R1())
        ),
        "signatureStale": dev.signed(
            "/device/v1/checkin",
            body,
            ts=int((clock.now() - timedelta(minutes=6)).timestamp() * 1000),
        ),
        "deviceUnknown": dev.signed("/device/v1/checkin", body, device_id="no-such-device"),
    }
    tampered = dev.signed("/device/v1/checkin", body, sign_body=body + b" ")
    cases["signatureInvalid "] = tampered
    for code, r in cases.items():
        assert r.status_code == 401, (code, r.text)
        assert r.json()["error"]["code"] == code.strip()
    unsigned = ready.client.post("/device/v1/checkin", content=body)
    assert unsigned.status_code == 401 and unsigned.json()["error"]["code"] == "signatureMissing"
    refused = ready.audit(**{"$filter": "activity eq 'POST /device/v1/checkin'"})
    assert len(refused) == 6
    last_sync = ready.call("GET", f"{D}/{dev.device_id}").json()["lastSyncDateTime"]
    assert last_sync == ok.json()["serverTime"], "refused requests change nothing"


def test_old_agent_cannot_check_in(ready: Env) -> None:
    dev = Device(ready.client)
    dev.enroll(secret_of(profile(ready)))
    dev.agent_version = "24.6.0"
    r = dev.checkin()
    assert r.status_code == 426
    assert r.json()["error"]["code"] == "agentUpdateRequired"
    assert "24.7.0" in r.json()["error"]["message"]


def test_revoking_or_replacing_the_token_does_not_stop_enrolled_devices(ready: Env) -> None:
    p = profile(ready)
    dev = Device(ready.client)
    dev.enroll(secret_of(p))
    ready.call("POST", f"{P}/{p['id']}/createToken", json={"tokenValidityInSeconds": 60})
    assert dev.checkin().status_code == 200
    ready.call("POST", f"{P}/{p['id']}/revokeToken")
    assert dev.checkin().status_code == 200
    ready.call("DELETE", f"{P}/{p['id']}")
    assert dev.checkin().status_code == 200
    assert (
        ready.call("GET", f"{D}/{dev.device_id}").json()["enrollmentProfileName"]
        == p["displayName"]
    )


def test_renaming_a_profile_renames_its_devices_profile_name(ready: Env) -> None:
    p = profile(ready, displayName="Old name")
    dev = Device(ready.client)
    dev.enroll(secret_of(p))
    ready.call("PATCH", f"{P}/{p['id']}", json={"displayName": "New name"})
    assert ready.call("GET", f"{D}/{dev.device_id}").json()["enrollmentProfileName"] == "New name"


def test_the_last_license_goes_to_exactly_one_device(ready: Env) -> None:
    set_licenses(ready, 1)
    secret = secret_of(profile(ready))
    results = [Device(ready.client).enroll(secret).status_code for _ in range(3)]
    assert sorted(results) == [201, 409, 409]
    with ready.db() as s:
        assert s.scalars(select(Organization.licenses_consumed)).one() == 1
        assert s.scalar(select(func.count()).select_from(DeviceApp)) == 1


def test_schedule_arithmetic() -> None:
    t0 = datetime(2027, 1, 1, tzinfo=UTC)
    rng = random.Random(7)
    for minutes, base in [
        (0, 180),
        (14.9, 180),
        (15, 900),
        (134.9, 900),
        (135, 28800),
        (10_000, 28800),
    ]:
        for _ in range(50):
            s = next_check_in_seconds(t0, t0 + timedelta(minutes=minutes), rng)
            assert base * 0.9 <= s <= base * 1.1, (minutes, s)
    spread = {next_check_in_seconds(t0, t0 + timedelta(hours=5), rng) for _ in range(50)}
    assert len(spread) > 10, "jitter spreads a fleet out"


def test_device_list_is_scope_filtered_and_needs_devices_read(ready: Env) -> None:
    a, b = ready.tag("A"), ready.tag("B")
    da, db = Device(ready.client), Device(ready.client)
    da.enroll(secret_of(profile(ready, roleScopeTagIds=[a])))
    db.enroll(secret_of(profile(ready, roleScopeTagIds=[b])))
    scoped = ready.custom_admin(["devices.read"], tags=["A"])
    ids = [d["id"] for d in ready.call("GET", D, token=scoped).json()["value"]]
    assert ids == [da.device_id]
    assert ready.call("GET", f"{D}/{db.device_id}", token=scoped).status_code == 404
    assert ready.call("GET", f"{D}/{db.device_id}/detectedApps", token=scoped).status_code == 404
    nobody = ready.custom_admin(["audit.read"])
    assert ready.call("GET", D, token=nobody).status_code == 403


def test_absurd_timestamps_and_mismatched_profile_ids_are_clean_refusals(ready: Env) -> None:
    p = profile(ready)
    dev = Device(ready.client)
    r = dev.enroll(secret_of(p), profileId="00000000-0000-0000-0000-000000000000")
    assert r.status_code == 400 and r.json()["error"]["target"] == "profileId"
    assert dev.enroll(secret_of(p), profileId=p["id"]).status_code == 201
    body = dev.checkin_body()
    for ts in (10**19, 99999999999999999999, 0):
        r = dev.signed("/device/v1/checkin", body, ts=ts)
        assert r.status_code == 401, (ts, r.text)
        assert "www-authenticate" not in r.headers


def test_responses_tolerate_fields_a_later_server_adds() -> None:
    later = {
        "serverTime": "2027-01-01T00:00:00Z",
        "nextCheckInSeconds": 60,
        "commands": [],
        "somethingNew": {"x": 1},
    }
    assert protocol.CheckinResponse.model_validate(later).next_check_in_seconds == 60


def test_non_ascii_digits_and_nul_characters_are_clean_refusals(ready: Env) -> None:
    p = profile(ready)
    dev = Device(ready.client)
    dev.enroll(secret_of(p))
    body = dev.checkin_body()
    headers = {
        protocol.HEADER_DEVICE: dev.device_id or "",
        protocol.HEADER_TIMESTAMP: "\u00b2",
        protocol.HEADER_NONCE: "n" * 20,
        protocol.HEADER_SIGNATURE: "x",
    }
    r = ready.client.post(
        "/device/v1/checkin",
        content=body,
        headers={k: v.encode("latin-1") for k, v in headers.items()},
    )  # type: ignore[misc]
    assert r.status_code == 401, r.text
    nul = Device(ready.client)
    facts = nul.facts().model_dump(by_alias=True) | {"serialNumber": "NUL\x00SERIAL"}
    r = nul.enroll(secret_of(p), facts=facts)
    assert r.status_code == 400, r.text
    r = ready.call("POST", "/beta/deviceManagement/roleScopeTags", json={"displayName": "a\x00b"})
    assert r.status_code == 400 and r.json()["error"]["target"] == "displayName"
