"""Device groups through the Graph-shaped API: assigned and dynamic, live membership."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import pytest

from aospmdm.core import clock
from aospmdm.tenant import access, service
from tests.conftest import Env
from tests.matrix import Resource, check_resource
from tests.sync.device import Device, secret_of

G = "/beta/groups"
P = "/beta/deviceManagement/androidDeviceOwnerEnrollmentProfiles"
D = "/beta/deviceManagement/managedDevices"
_n = itertools.count()


@pytest.fixture
def ready(env: Env) -> Env:
    env.call("POST", f"/beta/organization/{env.org_id()}/setMobileDeviceManagementAuthority")
    with env.db() as s:
        service.set_license_count(s, access.cli_actor(), 50)
    return env


def profile(env: Env, name: str, **fields: Any) -> dict[str, Any]:
    expires = (clock.now() + timedelta(days=30)).isoformat()
    body = {"displayName": name, "wifiSsid": "s", "tokenExpirationDateTime": expires} | fields
    r = env.call("POST", P, json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def group(env: Env, rule: str | None = None, token: str = "full", **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "displayName": f"group {next(_n)}",
        "mailEnabled": False,
        "securityEnabled": True,
        "mailNickname": f"g{next(_n)}",
        "groupTypes": ["DynamicMembership"] if rule else [],
    }
    if rule:
        body["membershipRule"] = rule
        body["membershipRuleProcessingState"] = "On"
    r = env.call("POST", G, token=token, json=body | fields)
    assert r.status_code == 201, r.text
    return dict(r.json())


def members(env: Env, gid: str) -> list[str]:
    r = env.call("GET", f"{G}/{gid}/members")
    assert r.status_code == 200, r.text
    return sorted(d["serialNumber"] for d in r.json()["value"])


def test_group_matrix(ready: Env) -> None:
    check_resource(
        ready,
        Resource(
            collection=G,
            read_permission="groups.read",
            write_permission="groups.write",
            make=lambda e, tags: group(e, roleScopeTagIds=tags)["id"],
            create_body=lambda: {
                "displayName": f"m {next(_n)}",
                "mailEnabled": False,
                "securityEnabled": True,
                "mailNickname": f"m{next(_n)}",
                "groupTypes": [],
            },
            scope_tagged=True,
        ),
    )


def test_dynamic_group_gains_a_device_the_moment_it_enrolls_and_loses_it_on_rule_change(
    ready: Env,
) -> None:
    p = profile(ready, "Factory 1 devices")
    g = group(ready, '(device.enrollmentProfileName -eq "Factory 1 devices")')
    assert members(ready, g["id"]) == []
    dev = Device(ready.client, serial="F1-001")
    assert dev.enroll(secret_of(p)).status_code == 201
    assert members(ready, g["id"]) == ["F1-001"]
    r = ready.call(
        "PATCH",
        f"{G}/{g['id']}",
        json={"membershipRule": 'device.enrollmentProfileName -eq "Factory 2 devices"'},
    )
    assert r.status_code == 200, r.text
    assert members(ready, g["id"]) == []
    ready.call("PATCH", f"{P}/{p['id']}", json={"displayName": "Factory 2 devices"})
    assert members(ready, g["id"]) == ["F1-001"], "a profile rename moves its devices"


def test_check_in_facts_and_admin_edits_move_memberships(ready: Env) -> None:
    p = profile(ready, "Plant")
    dev = Device(ready.client, serial="P-1")
    dev.enroll(secret_of(p))
    os12 = group(ready, 'device.deviceOSVersion -startsWith "12"')
    cat = group(
        ready, 'device.deviceCategory -eq "Scanners" -and device.extensionAttribute3 -eq "line 4"'
    )
    assert members(ready, os12["id"]) == []
    assert dev.signed("/device/v1/checkin", dev.checkin_body(os_version="12.1")).status_code == 200
    assert members(ready, os12["id"]) == ["P-1"]
    r = ready.call(
        "PATCH",
        f"{D}/{dev.device_id}",
        json={"deviceCategory": "Scanners", "extensionAttribute3": "line 4"},
    )
    assert r.status_code == 200, r.text
    assert members(ready, cat["id"]) == ["P-1"]
    ready.call("PATCH", f"{D}/{dev.device_id}", json={"extensionAttribute3": None})
    assert members(ready, cat["id"]) == []


def test_paused_groups_do_not_move_until_unpaused(ready: Env) -> None:
    p = profile(ready, "Paused plant")
    g = group(
        ready,
        'device.enrollmentProfileName -eq "Paused plant"',
        membershipRuleProcessingState="Paused",
    )
    Device(ready.client, serial="Z-1").enroll(secret_of(p))
    assert members(ready, g["id"]) == []
    ready.call("PATCH", f"{G}/{g['id']}", json={"membershipRuleProcessingState": "On"})
    assert members(ready, g["id"]) == ["Z-1"]


def test_assigned_groups_take_and_drop_members(ready: Env) -> None:
    p = profile(ready, "Manual")
    dev = Device(ready.client, serial="M-1")
    dev.enroll(secret_of(p))
    g = group(ready)
    ref = {"@odata.id": f"https://mdm.example/beta/deviceManagement/managedDevices/{dev.device_id}"}
    assert ready.call("POST", f"{G}/{g['id']}/members/$ref", json=ref).status_code == 204
    assert members(ready, g["id"]) == ["M-1"]
    r = ready.call("POST", f"{G}/{g['id']}/members/$ref", json=ref)
    assert r.status_code == 400, "adding a member twice is a 400, as in Graph"
    r = ready.call("DELETE", f"{G}/{g['id']}/members/{dev.device_id}/$ref")
    assert r.status_code == 204 and members(ready, g["id"]) == []
    bad = ready.call("POST", f"{G}/{g['id']}/members/$ref", json={"@odata.id": "nonsense"})
    assert bad.status_code == 400 and bad.json()["error"]["target"] == "@odata.id"
    missing = {"@odata.id": f"{D}/00000000-0000-0000-0000-000000000000"}
    assert ready.call("POST", f"{G}/{g['id']}/members/$ref", json=missing).status_code == 404
    dyn = group(ready, 'device.deviceModel -eq "x"')
    r = ready.call("POST", f"{G}/{dyn['id']}/members/$ref", json=ref)
    assert r.status_code == 400 and r.json()["error"]["code"] == "dynamicGroupMembersReadOnly"


def test_bad_rules_are_400_with_message_and_position(ready: Env) -> None:
    for rule in (
        'device.nosuch -eq "x"',
        "(device.deviceModel -eq",
        "device.isRooted -contains true",
    ):
        r = ready.call(
            "POST",
            G,
            json={
                "displayName": "bad",
                "mailEnabled": False,
                "securityEnabled": True,
                "mailNickname": "bad",
                "groupTypes": ["DynamicMembership"],
                "membershipRule": rule,
            },
        )
        assert r.status_code == 400, rule
        err = r.json()["error"]
        assert err["target"] == "membershipRule" and "position" in err["message"]
    assert ready.call("GET", G).json()["value"] == []
    r = ready.call(
        "POST",
        G,
        json={
            "displayName": "x",
            "mailEnabled": True,
            "securityEnabled": True,
            "mailNickname": "x",
        },
    )
    assert r.status_code == 400 and r.json()["error"]["target"] == "mailEnabled"
    r = ready.call(
        "POST",
        G,
        json={
            "displayName": "x",
            "mailNickname": "x",
            "groupTypes": [],
            "membershipRule": 'device.deviceModel -eq "x"',
        },
    )
    assert r.status_code == 400 and r.json()["error"]["target"] == "membershipRule"


def test_evaluate_dynamic_membership(ready: Env) -> None:
    p = profile(ready, "Eval plant")
    dev = Device(ready.client, serial="E-1")
    dev.enroll(secret_of(p))
    rule = 'device.deviceModel -eq "Navigator 500" -and device.isRooted -eq true'
    r = ready.call(
        "POST",
        f"{G}/evaluateDynamicMembership",
        json={"memberId": dev.device_id, "membershipRule": rule},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["membershipRuleEvaluationResult"] is False
    assert body["membershipRuleEvaluationDetails"]["expressionResult"] is False
    g = group(ready, 'device.deviceModel -eq "Navigator 500"')
    r = ready.call(
        "POST", f"{G}/{g['id']}/evaluateDynamicMembership", json={"memberId": dev.device_id}
    )
    assert r.json()["membershipRuleEvaluationResult"] is True
    r = ready.call(
        "POST",
        f"{G}/evaluateDynamicMembership",
        json={"memberId": dev.device_id, "membershipRule": "device.x -eq 1"},
    )
    assert r.status_code == 400


def test_scoped_admins_see_only_their_groups_and_members(ready: Env) -> None:
    a = ready.tag("A")
    ready.tag("B")
    p = profile(ready, "Scoped", roleScopeTagIds=[a])
    Device(ready.client, serial="S-1").enroll(secret_of(p))
    scoped = ready.custom_admin(["groups.read", "groups.write", "devices.read"], tags=["A"])
    mine = group(ready, 'device.enrollmentProfileName -eq "Scoped"', token=scoped)
    assert mine["roleScopeTagIds"] == [a]
    other = group(ready, roleScopeTagIds=[ready.tag("C")])
    assert ready.call("GET", f"{G}/{other['id']}", token=scoped).status_code == 404
    assert [
        d["serialNumber"]
        for d in ready.call("GET", f"{G}/{mine['id']}/members", token=scoped).json()["value"]
    ] == ["S-1"]


def test_objects_read_from_the_api_can_be_sent_back(ready: Env) -> None:
    g = group(ready)
    r = ready.call("PATCH", f"{G}/{g['id']}", json=g | {"description": "round trip"})
    assert r.status_code == 200, r.text
    p = profile(ready, "Round trip")
    dev = Device(ready.client, serial="RT-1")
    dev.enroll(secret_of(p))
    d = ready.call("GET", f"{D}/{dev.device_id}").json()
    r = ready.call("PATCH", f"{D}/{dev.device_id}", json=d | {"deviceName": "  RT renamed  "})
    assert r.status_code == 200, r.text
    assert r.json()["deviceName"] == "RT renamed"
    edit = ready.audit(**{"$filter": "activity eq 'Update device'"})[0]
    assert edit["details"]["deviceName"]["new"] == "RT renamed"
    r = ready.call(
        "POST",
        G,
        json={
            "displayName": "b",
            "mailNickname": "b",
            "groupTypes": ["DynamicMembership"],
            "membershipRule": "device.deviceModel -like 'x'",
        },
    )
    message = r.json()["error"]["message"]
    assert message.count("position") == 1, message
