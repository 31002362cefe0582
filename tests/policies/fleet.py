"""Helpers for policy tests: a ready tenant, enrolled devices, groups and policies."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aospmdm import protocol
from aospmdm.core import clock
from aospmdm.tenant import access, service
from tests.conftest import Env
from tests.sync.device import Device, secret_of

CONFIGS = "/beta/deviceManagement/deviceConfigurations"
COMPLIANCE = "/beta/deviceManagement/deviceCompliancePolicies"
RESTRICTIONS_TYPE = "#microsoft.graph.aospDeviceOwnerDeviceConfiguration"
WIFI_TYPE = "#microsoft.graph.aospDeviceOwnerWiFiConfiguration"
COMPLIANCE_TYPE = "#microsoft.graph.aospDeviceOwnerCompliancePolicy"
# A device with a 6-digit numeric passcode that locks after 5 minutes.
LOCKED = {"passcode_type": "numeric", "passcode_length": 6, "lock_after_inactivity_minutes": 5}


def ready(env: Env, licenses: int = 50) -> str:
    """Authority set, licenses, a profile with a token; returns the enrollment secret."""
    env.call("POST", f"/beta/organization/{env.org_id()}/setMobileDeviceManagementAuthority")
    with env.db() as s:
        service.set_license_count(s, access.cli_actor(), licenses)
    expires = (clock.now() + timedelta(days=1)).isoformat()
    p = env.call(
        "POST",
        "/beta/deviceManagement/androidDeviceOwnerEnrollmentProfiles",
        json={"displayName": "Line 1", "wifiSsid": "staging", "tokenExpirationDateTime": expires},
    )
    assert p.status_code == 201, p.text
    return secret_of(p.json())


def device(env: Env, secret: str) -> Device:
    d = Device(env.client)
    assert d.enroll(secret).status_code == 201
    return d


def check_in(d: Device, **kw: Any) -> dict[str, Any]:
    r = d.checkin(**kw)
    assert r.status_code == 200, r.text
    return dict(r.json())


def group(env: Env, name: str, members: list[Device]) -> str:
    r = env.call(
        "POST",
        "/beta/groups",
        json={"displayName": name, "mailEnabled": False, "securityEnabled": True},
    )
    assert r.status_code == 201, r.text
    gid = str(r.json()["id"])
    for d in members:
        add(env, gid, d)
    return gid


def add(env: Env, gid: str, d: Device) -> None:
    r = env.call(
        "POST",
        f"/beta/groups/{gid}/members/$ref",
        json={"@odata.id": f"https://x/beta/deviceManagement/managedDevices/{d.device_id}"},
    )
    assert r.status_code == 204, r.text


def create(env: Env, collection: str, body: dict[str, Any]) -> dict[str, Any]:
    r = env.call("POST", collection, json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def assign(
    env: Env,
    collection: str,
    policy_id: str,
    include: list[str],
    exclude: list[str] = (),  # type: ignore[assignment]
) -> None:
    targets = [
        {"target": {"@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": g}}
        for g in include
    ] + [
        {
            "target": {
                "@odata.type": "#microsoft.graph.exclusionGroupAssignmentTarget",
                "groupId": g,
            }
        }
        for g in exclude
    ]
    r = env.call("POST", f"{collection}/{policy_id}/assign", json={"assignments": targets})
    assert r.status_code == 200, r.text


def report_all(policy: dict[str, Any], state: str = "applied") -> protocol.PolicyReport:
    """What a well-behaved device reports after applying everything in ``policy``."""
    return protocol.PolicyReport(
        version=policy["version"],
        settings=[
            protocol.SettingReport(name=k, state=state, current_value=v)  # type: ignore[arg-type]
            for k, v in policy["restrictions"].items()
        ],
        wifi_networks=[
            protocol.WifiReport(ssid=n["ssid"], state=state)  # type: ignore[arg-type]
            for n in policy["wifiNetworks"]
        ],
    )


def apply(d: Device, facts: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Check in; when a policy arrives, apply it and report (as the agent does). Returns the
    policy that was applied, if any."""
    body = check_in(d, facts=facts or {})
    policy = body.get("policy")
    if policy is not None:
        d.applied = policy["version"]
        again = check_in(d, facts=facts or {}, policy_report=report_all(policy))
        assert again.get("policy") is None, again
    return policy


def statuses(env: Env, collection: str, policy_id: str) -> dict[str, dict[str, Any]]:
    r = env.call("GET", f"{collection}/{policy_id}/deviceStatuses")
    assert r.status_code == 200, r.text
    return {s["deviceId"]: s for s in r.json()["value"]}


def managed(env: Env, d: Device) -> dict[str, Any]:
    r = env.call("GET", f"/beta/deviceManagement/managedDevices/{d.device_id}")
    assert r.status_code == 200, r.text
    return dict(r.json())
