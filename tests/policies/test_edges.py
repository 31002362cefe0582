"""Edge cases a review found: races on PostgreSQL (lock order, actions firing once), stable
action identities, group changes picked up by the job, scope of device states, assignments
and the retire list, NUL in path ids, odd bodies, Wi-Fi keys and version formats."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from aospmdm import protocol
from aospmdm.core import clock
from aospmdm.devices import service as devices
from aospmdm.policies import service
from aospmdm.policies.models import ComplianceAction, OutboxMail
from aospmdm.policies.schemas import ComplianceInput
from aospmdm.tenant import access
from tests.conftest import Env
from tests.policies.fleet import (
    COMPLIANCE,
    COMPLIANCE_TYPE,
    CONFIGS,
    RESTRICTIONS_TYPE,
    WIFI_TYPE,
    apply,
    assign,
    check_in,
    create,
    device,
    group,
    managed,
    ready,
    statuses,
)
from tests.sync.device import secret_of


def tagged_secret(env, tag_id):
    ready(env)
    expires = (clock.now() + timedelta(days=1)).isoformat()
    p = env.call(
        "POST",
        "/beta/deviceManagement/androidDeviceOwnerEnrollmentProfiles",
        json={
            "displayName": "Tagged",
            "wifiSsid": "staging",
            "tokenExpirationDateTime": expires,
            "roleScopeTagIds": [tag_id],
        },
    )
    assert p.status_code == 201, p.text
    return secret_of(p.json())


def test_device_policy_states_show_only_policies_in_scope(env: Env) -> None:
    """Scoped admin (tag A) can see the device (tag A); a compliance policy tagged B only is
    invisible to it via GET, but shows up (name, settings) in deviceCompliancePolicyStates."""
    ta, tb = env.tag("A"), env.tag("B")
    secret = tagged_secret(env, ta)
    d = device(env, secret)
    # tag the device with A
    env.call(
        "PATCH",
        f"/beta/deviceManagement/managedDevices/{d.device_id}",
        json={"roleScopeTagIds": [ta]},
    )
    g = group(env, "g", [d])
    p = create(
        env,
        COMPLIANCE,
        {
            "@odata.type": COMPLIANCE_TYPE,
            "displayName": "Secret B policy",
            "passwordRequired": True,
            "roleScopeTagIds": [tb],
        },
    )
    c = create(
        env,
        CONFIGS,
        {
            "@odata.type": RESTRICTIONS_TYPE,
            "displayName": "Secret B config",
            "cameraBlocked": True,
            "roleScopeTagIds": [tb],
        },
    )
    assign(env, COMPLIANCE, p["id"], [g])
    assign(env, CONFIGS, c["id"], [g])
    apply(d)
    scoped = env.admin("Read Only Operator", tags=["A"])
    assert (
        env.call(
            "GET", f"/beta/deviceManagement/managedDevices/{d.device_id}", token=scoped
        ).status_code
        == 200
    )
    assert env.call("GET", f"{COMPLIANCE}/{p['id']}", token=scoped).status_code == 404
    r1 = env.call(
        "GET",
        f"/beta/deviceManagement/managedDevices/{d.device_id}/deviceCompliancePolicyStates",
        token=scoped,
    )
    r2 = env.call(
        "GET",
        f"/beta/deviceManagement/managedDevices/{d.device_id}/deviceConfigurationStates",
        token=scoped,
    )
    assert "Secret B" not in r1.text + r2.text


def test_a_scoped_assign_keeps_assignments_it_cannot_see(env: Env) -> None:
    ta, tb = env.tag("A"), env.tag("B")
    secret = tagged_secret(env, ta)
    device(env, secret)
    ga = env.call(
        "POST",
        "/beta/groups",
        json={
            "displayName": "ga",
            "mailEnabled": False,
            "securityEnabled": True,
            "roleScopeTagIds": [ta],
        },
    )
    gb = env.call(
        "POST",
        "/beta/groups",
        json={
            "displayName": "gb",
            "mailEnabled": False,
            "securityEnabled": True,
            "roleScopeTagIds": [tb],
        },
    )
    ga, gb = ga.json()["id"], gb.json()["id"]
    p = create(
        env,
        CONFIGS,
        {
            "@odata.type": RESTRICTIONS_TYPE,
            "displayName": "AB",
            "cameraBlocked": True,
            "roleScopeTagIds": [ta, tb],
        },
    )
    assign(env, CONFIGS, p["id"], [ga, gb])
    scoped = env.admin("Policy and Profile Manager", tags=["A"])
    # the scoped admin sees group ids outside its scope
    r = env.call("GET", f"{CONFIGS}/{p['id']}/assignments", token=scoped)
    r = env.call(
        "POST",
        f"{CONFIGS}/{p['id']}/assign",
        token=scoped,
        json={
            "assignments": [
                {"target": {"@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": ga}}
            ]
        },
    )
    r = env.call("GET", f"{CONFIGS}/{p['id']}/assignments")
    assert gb in r.text, "scoped admin A silently removed the assignment to group B it cannot see"


def test_the_retire_list_shows_only_policies_in_scope(env: Env) -> None:
    ta, tb = env.tag("A"), env.tag("B")
    secret = tagged_secret(env, ta)
    d = device(env, secret)
    env.call(
        "PATCH",
        f"/beta/deviceManagement/managedDevices/{d.device_id}",
        json={"roleScopeTagIds": [ta]},
    )
    g = group(env, "g", [d])
    p = create(
        env,
        COMPLIANCE,
        {
            "@odata.type": COMPLIANCE_TYPE,
            "displayName": "Secret B policy",
            "securityBlockJailbrokenDevices": True,
            "roleScopeTagIds": [tb],
            "scheduledActionsForRule": [
                {"scheduledActionConfigurations": [{"actionType": "retire", "gracePeriodHours": 0}]}
            ],
        },
    )
    assign(env, COMPLIANCE, p["id"], [g])
    check_in(d, facts={"is_rooted": True})
    scoped = env.admin("Read Only Operator", tags=["A"])
    r = env.call("GET", "/beta/deviceManagement/noncompliantDevicesToRetire", token=scoped)
    assert "Secret B" not in r.text


def _acts(env):
    with env.db() as s:
        return sorted((a.action_type, a.state) for a in s.scalars(select(ComplianceAction)))


def test_editing_actions_does_not_fire_done_ones_again(env: Env) -> None:
    secret = ready(env)
    d = device(env, secret)
    g = group(env, "g", [d])
    acts = [
        {
            "actionType": "notification",
            "gracePeriodHours": 0,
            "notificationMessageCCList": ["a@x.io"],
        },
        {"actionType": "retire", "gracePeriodHours": 0},
    ]
    p = create(
        env,
        COMPLIANCE,
        {
            "@odata.type": COMPLIANCE_TYPE,
            "displayName": "P",
            "securityBlockJailbrokenDevices": True,
            "scheduledActionsForRule": [{"scheduledActionConfigurations": acts}],
        },
    )
    assign(env, COMPLIANCE, p["id"], [g])
    check_in(d, facts={"is_rooted": True})
    first = _acts(env)
    # A remote lock (48 h) added at the front: nothing already done fires again.
    new = [{"actionType": "remoteLock", "gracePeriodHours": 48}, *acts]
    r = env.call(
        "PATCH",
        f"{COMPLIANCE}/{p['id']}",
        json={"scheduledActionsForRule": [{"scheduledActionConfigurations": new}]},
    )
    assert r.status_code == 200, r.text
    check_in(d, facts={"is_rooted": True})
    after = _acts(env)
    assert after == first
    with env.db() as s:
        assert s.scalar(select(func.count()).select_from(OutboxMail)) == 1


def test_a_kept_key_must_suit_a_new_security_type(env: Env) -> None:
    secret = ready(env)
    d = device(env, secret)
    g = group(env, "g", [d])
    p = create(
        env,
        CONFIGS,
        {
            "@odata.type": WIFI_TYPE,
            "displayName": "W",
            "ssid": "prod",
            "wiFiSecurityType": "wpaPersonal",
            "preSharedKey": "correct horse battery",
        },
    )
    r = env.call("PATCH", f"{CONFIGS}/{p['id']}", json={"wiFiSecurityType": "wep"})
    assert r.status_code == 400 and r.json()["error"]["target"] == "preSharedKey"
    assign(env, CONFIGS, p["id"], [g])
    assert check_in(d)["policy"]["wifiNetworks"][0]["securityType"] == "wpaPersonal"


@pytest.mark.parametrize(
    ("security", "key"),
    [("wep", "ééééé"), ("wpaPersonal", "é" * 63), ("wpaPersonal", "tab\there!")],
)
def test_wifi_keys_are_printable_ascii(env: Env, security: str, key: str) -> None:
    body = {
        "@odata.type": WIFI_TYPE,
        "displayName": "W",
        "ssid": "prod",
        "wiFiSecurityType": security,
        "preSharedKey": key,
    }
    r = env.call("POST", CONFIGS, json=body)
    assert r.status_code == 400 and r.json()["error"]["target"] == "preSharedKey"


def test_tenant_settings_need_an_unscoped_admin(env: Env) -> None:
    env.tag("A")
    scoped = env.admin("Policy and Profile Manager", tags=["A"])
    body = {"settings": {"secureByDefault": True}}
    r = env.call("PATCH", "/beta/deviceManagement", token=scoped, json=body)
    assert r.status_code == 403
    assert env.call("GET", "/beta/deviceManagement").json()["settings"]["secureByDefault"] is False
    manager = env.admin("Policy and Profile Manager")
    assert env.call("PATCH", "/beta/deviceManagement", token=manager, json=body).status_code == 200


def test_an_empty_os_version_is_unknown_not_noncompliant(env: Env) -> None:
    secret = ready(env)
    d = device(env, secret)
    g = group(env, "g", [d])
    p = create(
        env,
        COMPLIANCE,
        {"@odata.type": COMPLIANCE_TYPE, "displayName": "OS", "osMinimumVersion": "10"},
    )
    assign(env, COMPLIANCE, p["id"], [g])
    check_in(d, facts={"os_version": ""})
    assert managed(env, d)["complianceState"] == "unknown"
    check_in(d, facts={"os_version": "9"})
    assert managed(env, d)["complianceState"] == "noncompliant"


def test_os_versions_are_ascii_digits_only(env: Env) -> None:
    r = env.call(
        "POST",
        COMPLIANCE,
        json={"@odata.type": COMPLIANCE_TYPE, "displayName": "x", "osMinimumVersion": "13\n"},
    )
    assert r.status_code == 400
    arabic = {"@odata.type": COMPLIANCE_TYPE, "displayName": "x", "osMinimumVersion": "١٣"}
    assert env.call("POST", COMPLIANCE, json=arabic).status_code == 400


ODD = [
    None,
    [],
    {},
    "x",
    1,
    {"assignments": None},
    {"assignments": {}},
    {"assignments": [None]},
    {"assignments": [{}]},
    {"assignments": [{"target": None}]},
    {"assignments": [{"target": {}}]},
    {"assignments": [{"target": {"@odata.type": "#microsoft.graph.allDevicesAssignmentTarget"}}]},
    {
        "assignments": [
            {"target": {"@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": None}}
        ]
    },
    {
        "assignments": [
            {
                "target": {
                    "@odata.type": "#microsoft.graph.groupAssignmentTarget",
                    "groupId": "a\u0000",
                }
            }
        ]
    },
    {
        "assignments": [
            {
                "target": {
                    "@odata.type": "#microsoft.graph.groupAssignmentTarget",
                    "groupId": "\ud800",
                }
            }
        ]
    },
    {
        "assignments": [
            {"target": {"@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": "nope"}}
        ]
    },
    {
        "assignments": [
            {"target": {"@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": "x"}}
        ]
        * 201
    },
    {"assignments": [{"target": {"groupId": "x"}}]},
    {
        "assignments": [
            {
                "id": 5,
                "target": {
                    "@odata.type": "#microsoft.graph.groupAssignmentTarget",
                    "groupId": "x",
                    "deviceAndAppManagementAssignmentFilterId": None,
                },
            }
        ]
    },
    {"assignments": [], "extra": 1},
    {"assignments": []},
]
DM = [
    None,
    [],
    {},
    {"settings": None},
    {"settings": []},
    {"settings": {}},
    {"settings": {"secureByDefault": None}},
    {"settings": {"secureByDefault": "true"}},
    {"settings": {"deviceComplianceCheckinThresholdDays": 0}},
    {"settings": {"deviceComplianceCheckinThresholdDays": 10**20}},
    {"settings": {"deviceComplianceCheckinThresholdDays": 1.0}},
    {"settings": {"isScheduledActionEnabled": False}},
    {"settings": {"x": 1}},
    {"id": "deviceManagement", "settings": {"secureByDefault": True}},
    {"@odata.type": "#microsoft.graph.deviceManagement", "settings": {"secureByDefault": False}},
    {"settings": {"secureByDefault": True}, "intuneBrand": {"a": 1}},
]


def test_odd_assign_and_settings_bodies_never_5xx(env: Env) -> None:
    p = create(env, CONFIGS, {"@odata.type": RESTRICTIONS_TYPE, "displayName": "x"})
    for b in ODD:
        r = env.call(
            "POST",
            f"{CONFIGS}/{p['id']}/assign",
            content=json.dumps(b),
            headers={"content-type": "application/json"},
        )
        assert r.status_code < 500
    for b in DM:
        r = env.call(
            "PATCH",
            "/beta/deviceManagement",
            content=json.dumps(b),
            headers={"content-type": "application/json"},
        )
        assert r.status_code < 500


def test_the_job_rejudges_a_device_that_left_the_group(env: Env) -> None:
    secret = ready(env)
    d = device(env, secret)
    g = group(env, "g", [d])
    p = create(
        env,
        COMPLIANCE,
        {
            "@odata.type": COMPLIANCE_TYPE,
            "displayName": "P",
            "securityBlockJailbrokenDevices": True,
            "scheduledActionsForRule": [
                {"scheduledActionConfigurations": [{"actionType": "retire", "gracePeriodHours": 0}]}
            ],
        },
    )
    assign(env, COMPLIANCE, p["id"], [g])
    check_in(d, facts={"is_rooted": True})
    assert managed(env, d)["complianceState"] == "noncompliant"
    r = env.call("DELETE", f"/beta/groups/{g}/members/{d.device_id}/$ref")
    assert r.status_code == 204
    from aospmdm.policies import service

    with env.db() as s:
        service.compliance_job(s)
    assert managed(env, d)["complianceState"] != "noncompliant"


def test_a_report_for_a_version_never_received_is_ignored(env: Env) -> None:
    secret = ready(env)
    a, b = device(env, secret), device(env, secret)
    g = group(env, "g", [a, b])
    p = create(
        env, CONFIGS, {"@odata.type": RESTRICTIONS_TYPE, "displayName": "R", "cameraBlocked": True}
    )
    assign(env, CONFIGS, p["id"], [g])
    pol = check_in(a)["policy"]
    # b reports a's version without ever having received it, with a wrong report
    rep = protocol.PolicyReport(
        version=pol["version"],
        settings=[
            protocol.SettingReport(
                name=f"s{i}", state="failed", current_value="x" * 64, message="m" * 256
            )
            for i in range(99)
        ]
        + [protocol.SettingReport(name="cameraBlocked", state="failed")],
        wifi_networks=[protocol.WifiReport(ssid="z" * 64, state="failed") for _ in range(100)],
    )
    r = b.checkin(policy_report=rep)
    assert r.status_code == 200
    assert statuses(env, CONFIGS, p["id"])[b.device_id]["status"] == "unknown"


def _setup(env):
    secret = ready(env)
    d = device(env, secret)
    g = group(env, "g", [d])
    p = create(
        env,
        COMPLIANCE,
        {
            "@odata.type": COMPLIANCE_TYPE,
            "displayName": "P",
            "securityBlockJailbrokenDevices": True,
            "scheduledActionsForRule": [
                {
                    "scheduledActionConfigurations": [
                        {
                            "actionType": "notification",
                            "gracePeriodHours": 0,
                            "notificationMessageCCList": ["a@x.io"],
                        },
                        {"actionType": "retire", "gracePeriodHours": 0},
                    ]
                }
            ],
        },
    )
    assign(env, COMPLIANCE, p["id"], [g])
    check_in(d, facts={"is_rooted": False, "is_encrypted": False})
    return d, p


def _checkin_tx(env, d, facts, step):
    """A check-in as sync.check_in runs it, split after record_check_in."""
    with env.db() as s1:
        dev = devices.device_state(s1, d.device_id)
        f = d.facts(**facts)
        devices.record_check_in(
            s1,
            dev,
            facts=f,
            agent_version="24.9.0",
            apps_hash="0" * 64,
            apps=None,
            applied_policy_version=None,
            now=clock.now(),
        )
        step()
        service.for_check_in(s1, env.settings, dev, f, None, None, clock.now())


def test_a_check_in_and_a_policy_patch_do_not_deadlock(env: Env) -> None:
    if env.sessions.kw["bind"].dialect.name != "postgresql":
        pytest.skip("pg only")
    d, p = _setup(env)
    errors: list[BaseException] = []

    def patch():
        try:
            with env.db() as s2:
                data = ComplianceInput.model_validate({"storageRequireEncryption": True})
                service.update_policy(
                    s2, env.settings, access.cli_actor(), p["id"], service.COMPLIANCES, data
                )
        except BaseException as e:
            errors.append(e)

    t = threading.Thread(target=patch)

    def step():
        t.start()
        time.sleep(1.0)

    try:
        _checkin_tx(env, d, {"is_rooted": True, "is_encrypted": False}, step)
    except BaseException as e:
        errors.append(e)
    t.join()
    assert not errors, errors


def test_concurrent_judging_fires_each_action_once(env: Env) -> None:
    if env.sessions.kw["bind"].dialect.name != "postgresql":
        pytest.skip("pg only")
    d, _p = _setup(env)
    errors = []
    threading.Barrier(2)

    def one():
        try:
            _checkin_tx(env, d, {"is_rooted": True, "is_encrypted": False}, lambda: None)
        except BaseException as e:
            errors.append(e)

    def job():
        try:
            with env.db() as s:
                service.evaluate_compliance(s, [d.device_id])
        except BaseException as e:
            errors.append(e)

    # device-side: first mark rooted in DB facts so the job also sees it
    with env.db() as s:
        s.execute(devices.TABLE.update().values(is_rooted=True))
    ts = [threading.Thread(target=one), threading.Thread(target=job)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    with env.db() as s:
        acts = list(s.execute(select(ComplianceAction.action_type, ComplianceAction.state)))
        mails = s.scalar(select(func.count()).select_from(OutboxMail))
    assert mails == 1 and len(acts) == 2


def test_nul_in_a_path_id_is_404(env: Env) -> None:
    c = TestClient(env.app, raise_server_exceptions=False)
    h = {"Authorization": f"Bearer {env.full_token}"}
    for p in [
        f"{CONFIGS}/x%00",
        f"{COMPLIANCE}/x%00/assignments",
        "/beta/groups/x%00",
        "/beta/deviceManagement/managedDevices/x%00",
        "/beta/deviceManagement/managedDevices/x%00/deviceCompliancePolicyStates",
        "/beta/deviceManagement/androidDeviceOwnerEnrollmentProfiles/x%00",
    ]:
        assert c.get(p, headers=h).status_code == 404, p
    assert c.post(f"{CONFIGS}/x%00/assign", headers=h, json={"assignments": []}).status_code == 404
    assert c.patch(f"{CONFIGS}/x%00", headers=h, json={}).status_code == 404
    assert c.delete(f"{CONFIGS}/x%00", headers=h).status_code == 404
