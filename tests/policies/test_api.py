"""The policies admin API: the validation matrix, create/get/patch/delete, assignment with
exclusions, delivery at check-in, merging, Wi-Fi conflicts, and the 401/403/404 matrix."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Env
from tests.matrix import Resource, check_resource
from tests.policies.fleet import (
    COMPLIANCE,
    COMPLIANCE_TYPE,
    CONFIGS,
    RESTRICTIONS_TYPE,
    WIFI_TYPE,
    add,
    apply,
    assign,
    check_in,
    create,
    device,
    group,
    ready,
    report_all,
    statuses,
)


def restrictions(**settings: Any) -> dict[str, Any]:
    return {"@odata.type": RESTRICTIONS_TYPE, "displayName": "Restrictions", **settings}


def wifi(**settings: Any) -> dict[str, Any]:
    return {
        "@odata.type": WIFI_TYPE,
        "displayName": "Production Wi-Fi",
        "ssid": "prod",
        "wiFiSecurityType": "wpaPersonal",
        "preSharedKey": "correct horse battery",
        **settings,
    }


def compliance(**settings: Any) -> dict[str, Any]:
    return {"@odata.type": COMPLIANCE_TYPE, "displayName": "Baseline", **settings}


# --- the validation matrix -----------------------------------------------------------------

BAD = [
    (CONFIGS, restrictions(passwordMinimumLength=3), "passwordMinimumLength"),
    (CONFIGS, restrictions(passwordMinimumLength=17), "passwordMinimumLength"),
    (
        CONFIGS,
        restrictions(passwordSignInFailureCountBeforeFactoryReset=3),
        "passwordSignInFailureCountBeforeFactoryReset",
    ),
    (
        CONFIGS,
        restrictions(passwordSignInFailureCountBeforeFactoryReset=12),
        "passwordSignInFailureCountBeforeFactoryReset",
    ),
    (
        CONFIGS,
        restrictions(passwordMinutesOfInactivityBeforeScreenTimeout=0),
        "passwordMinutesOfInactivityBeforeScreenTimeout",
    ),
    (
        CONFIGS,
        restrictions(passwordMinutesOfInactivityBeforeScreenTimeout=61),
        "passwordMinutesOfInactivityBeforeScreenTimeout",
    ),
    (CONFIGS, restrictions(cameraBlocked="yes"), "cameraBlocked"),
    (CONFIGS, restrictions(passwordMinimumLength=6.5), "passwordMinimumLength"),
    (CONFIGS, restrictions(passwordRequiredType="simple"), "passwordRequiredType"),
    (CONFIGS, restrictions(kioskMode=True), "kioskMode"),
    (CONFIGS, restrictions(displayName=""), "displayName"),
    (CONFIGS, {"displayName": "no type", "cameraBlocked": True}, "@odata.type"),
    (CONFIGS, compliance(), "@odata.type"),
    (CONFIGS, wifi(ssid=None), "ssid"),
    (CONFIGS, wifi(ssid="x" * 33), "ssid"),
    (CONFIGS, wifi(wiFiSecurityType="wpaEnterprise"), "wiFiSecurityType"),
    (CONFIGS, wifi(preSharedKey=None), "preSharedKey"),
    (CONFIGS, wifi(preSharedKey="short"), "preSharedKey"),
    (CONFIGS, wifi(wiFiSecurityType="wep", preSharedKey="123456"), "preSharedKey"),
    (CONFIGS, wifi(wiFiSecurityType="open"), "preSharedKey"),
    (CONFIGS, wifi(proxySettings="manual"), "proxyManualAddress"),
    (
        CONFIGS,
        wifi(proxySettings="manual", proxyManualAddress="p", proxyManualPort=70000),
        "proxyManualPort",
    ),
    (
        CONFIGS,
        wifi(proxySettings="automatic", proxyAutomaticConfigurationUrl="ftp://x/p.pac"),
        "proxyAutomaticConfigurationUrl",
    ),
    (COMPLIANCE, restrictions(), "@odata.type"),
    (
        COMPLIANCE,
        compliance(passwordMinutesOfInactivityBeforeLock=481),
        "passwordMinutesOfInactivityBeforeLock",
    ),
    (
        COMPLIANCE,
        compliance(passwordMinutesOfInactivityBeforeLock=0),
        "passwordMinutesOfInactivityBeforeLock",
    ),
    (COMPLIANCE, compliance(passwordMinimumLength=20), "passwordMinimumLength"),
    (COMPLIANCE, compliance(osMinimumVersion="thirteen"), "osMinimumVersion"),
    (COMPLIANCE, compliance(osMinimumVersion="14", osMaximumVersion="13"), "osMinimumVersion"),
    (
        COMPLIANCE,
        compliance(minAndroidSecurityPatchLevel="2024-13-01"),
        "minAndroidSecurityPatchLevel",
    ),
    (
        COMPLIANCE,
        compliance(minAndroidSecurityPatchLevel="01/01/2024"),
        "minAndroidSecurityPatchLevel",
    ),
    (
        COMPLIANCE,
        compliance(
            scheduledActionsForRule=[
                {
                    "ruleName": "PasswordRequired",
                    "scheduledActionConfigurations": [{"actionType": "wipe"}],
                }
            ]
        ),
        "scheduledActionsForRule.0.scheduledActionConfigurations.0.actionType",
    ),
    (
        COMPLIANCE,
        compliance(
            scheduledActionsForRule=[
                {"scheduledActionConfigurations": [{"actionType": "block", "gracePeriodHours": -1}]}
            ]
        ),
        "scheduledActionsForRule.0.scheduledActionConfigurations.0.gracePeriodHours",
    ),
    (
        COMPLIANCE,
        compliance(
            scheduledActionsForRule=[
                {"scheduledActionConfigurations": [{"actionType": "notification"}]}
            ]
        ),
        "scheduledActionsForRule.0.scheduledActionConfigurations.0.notificationMessageCCList",
    ),
    (
        COMPLIANCE,
        compliance(
            scheduledActionsForRule=[
                {
                    "scheduledActionConfigurations": [
                        {
                            "actionType": "notification",
                            "notificationMessageCCList": ["not-an-address"],
                        }
                    ]
                }
            ]
        ),
        "scheduledActionsForRule.0.scheduledActionConfigurations.0.notificationMessageCCList.0",
    ),
    (
        COMPLIANCE,
        compliance(
            scheduledActionsForRule=[
                {
                    "scheduledActionConfigurations": [
                        {"actionType": "block"},
                        {"actionType": "block", "gracePeriodHours": 4},
                    ]
                }
            ]
        ),
        "scheduledActionsForRule",
    ),
]


@pytest.mark.parametrize(("collection", "body", "field"), BAD)
def test_bad_input_is_refused_with_the_field_named_and_changes_nothing(
    env: Env, collection: str, body: dict[str, Any], field: str
) -> None:
    r = env.call("POST", collection, json=body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["target"] == field, r.json()
    assert env.call("GET", collection).json()["value"] == []


@pytest.mark.parametrize(
    "kind",
    [
        "alphanumeric",
        "alphabetic",
        "alphanumericWithSymbols",
        "customPassword",
        "required",
        "lowSecurityBiometric",
    ],
)
@pytest.mark.parametrize("collection", [CONFIGS, COMPLIANCE])
def test_unsupported_password_types_are_refused_naming_the_aosp_limitation(
    env: Env, collection: str, kind: str
) -> None:
    body = (restrictions if collection == CONFIGS else compliance)(passwordRequiredType=kind)
    r = env.call("POST", collection, json=body)
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["target"] == "passwordRequiredType"
    assert "AOSP" in error["message"] and "known limitation" in error["message"]
    assert "deviceDefault, numeric and numericComplex" in error["message"]


def test_every_setting_round_trips_and_unset_means_not_configured(env: Env) -> None:
    full = restrictions(
        passwordRequiredType="numericComplex",
        passwordMinimumLength=16,
        passwordSignInFailureCountBeforeFactoryReset=4,
        passwordMinutesOfInactivityBeforeScreenTimeout=60,
        cameraBlocked=True,
        screenCaptureBlocked=True,
        factoryResetBlocked=True,
        storageBlockExternalMedia=True,
        storageBlockUsbFileTransfer=True,
        wifiBlockEditConfigurations=True,
        bluetoothBlocked=True,
        bluetoothBlockConfiguration=True,
        securityAllowDebuggingFeatures=False,
        appsBlockInstallFromUnknownSources=True,
    )
    p = create(env, CONFIGS, full)
    got = env.call("GET", f"{CONFIGS}/{p['id']}").json()
    for key, value in full.items():
        if key != "@odata.type":
            assert got[key] == value, key
    assert got["@odata.type"] == RESTRICTIONS_TYPE and got["version"] == 1
    # Sent back as read (with read-only properties), it is accepted.
    assert env.call("PATCH", f"{CONFIGS}/{p['id']}", json=got).status_code == 200
    empty = create(env, CONFIGS, restrictions())
    assert empty["cameraBlocked"] is None and empty["passwordMinimumLength"] is None


def test_patch_null_unconfigures_a_setting_and_bumps_the_version(env: Env) -> None:
    p = create(env, CONFIGS, restrictions(cameraBlocked=True, passwordMinimumLength=8))
    r = env.call(
        "PATCH",
        f"{CONFIGS}/{p['id']}",
        json={"@odata.type": RESTRICTIONS_TYPE, "cameraBlocked": None},
    )
    assert r.status_code == 200, r.text
    assert r.json()["cameraBlocked"] is None and r.json()["passwordMinimumLength"] == 8
    assert r.json()["version"] == 2
    bad = env.call("PATCH", f"{CONFIGS}/{p['id']}", json={"passwordMinimumLength": 99})
    assert bad.status_code == 400 and bad.json()["error"]["target"] == "passwordMinimumLength"
    assert env.call("GET", f"{CONFIGS}/{p['id']}").json()["passwordMinimumLength"] == 8
    # A Wi-Fi body cannot turn a restrictions policy into a Wi-Fi profile.
    wrong = env.call("PATCH", f"{CONFIGS}/{p['id']}", json={"@odata.type": WIFI_TYPE})
    assert wrong.status_code == 400 and wrong.json()["error"]["target"] == "@odata.type"


def test_the_wifi_key_is_write_only(env: Env) -> None:
    p = create(env, CONFIGS, wifi())
    assert p["preSharedKey"] is None and p["preSharedKeyIsSet"] is True
    r = env.call("GET", f"{CONFIGS}/{p['id']}")
    assert "correct horse" not in r.text
    # null keeps the key; open clears it.
    kept = env.call("PATCH", f"{CONFIGS}/{p['id']}", json={"networkName": "Production"})
    assert kept.json()["preSharedKeyIsSet"] is True
    cleared = env.call("PATCH", f"{CONFIGS}/{p['id']}", json={"wiFiSecurityType": "open"})
    assert cleared.json()["preSharedKeyIsSet"] is False
    needs = env.call("PATCH", f"{CONFIGS}/{p['id']}", json={"wiFiSecurityType": "wpaPersonal"})
    assert needs.status_code == 400 and needs.json()["error"]["target"] == "preSharedKey"
    assert "correct horse" not in str(env.audit())


def test_compliance_always_marks_noncompliant_and_keeps_its_actions(env: Env) -> None:
    p = create(env, COMPLIANCE, compliance(passwordRequired=True))
    [rule] = p["scheduledActionsForRule"]
    assert [a["actionType"] for a in rule["scheduledActionConfigurations"]] == ["block"]
    actions = [
        {"actionType": "remoteLock", "gracePeriodHours": 2},
        {
            "actionType": "notification",
            "gracePeriodHours": 0,
            "notificationMessageCCList": ["ops@example.com"],
        },
    ]
    q = create(
        env,
        COMPLIANCE,
        compliance(
            scheduledActionsForRule=[
                {"ruleName": "PasswordRequired", "scheduledActionConfigurations": actions}
            ]
        ),
    )
    got = [
        (a["actionType"], a["gracePeriodHours"])
        for a in q["scheduledActionsForRule"][0]["scheduledActionConfigurations"]
    ]
    assert got == [("block", 0), ("remoteLock", 2), ("notification", 0)]


def test_delete_and_collections_keep_their_kinds(env: Env) -> None:
    c = create(env, CONFIGS, restrictions())
    k = create(env, COMPLIANCE, compliance())
    assert env.call("GET", f"{COMPLIANCE}/{c['id']}").status_code == 404
    assert env.call("GET", f"{CONFIGS}/{k['id']}").status_code == 404
    assert env.call("DELETE", f"{COMPLIANCE}/{c['id']}").status_code == 404
    assert env.call("DELETE", f"{CONFIGS}/{c['id']}").status_code == 204
    assert env.call("GET", f"{CONFIGS}/{c['id']}").status_code == 404
    assert [
        e["activity"] for e in env.audit(**{"$filter": "category eq 'DeviceConfiguration'"})
    ].count("Delete policy") == 1


def test_assign_checks_groups_and_replaces_assignments(env: Env) -> None:
    p = create(env, CONFIGS, restrictions(cameraBlocked=True))
    g1 = group(env, "g1", [])
    g2 = group(env, "g2", [])
    url = f"{CONFIGS}/{p['id']}/assign"
    missing = {
        "assignments": [
            {"target": {"@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": "nope"}}
        ]
    }
    r = env.call("POST", url, json=missing)
    assert r.status_code == 400 and r.json()["error"]["target"] == "assignments.0.target.groupId"
    both = {
        "assignments": [
            {"target": {"@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": g1}},
            {
                "target": {
                    "@odata.type": "#microsoft.graph.exclusionGroupAssignmentTarget",
                    "groupId": g1,
                }
            },
        ]
    }
    assert env.call("POST", url, json=both).status_code == 400
    odd = {
        "assignments": [
            {
                "target": {
                    "@odata.type": "#microsoft.graph.allLicensedUsersAssignmentTarget",
                    "groupId": g1,
                }
            }
        ]
    }
    assert env.call("POST", url, json=odd).status_code == 400
    assert env.call("GET", f"{CONFIGS}/{p['id']}/assignments").json()["value"] == []
    assign(env, CONFIGS, p["id"], [g1], [g2])
    got = env.call("GET", f"{CONFIGS}/{p['id']}/assignments").json()["value"]
    assert {(a["target"]["groupId"], a["target"]["@odata.type"]) for a in got} == {
        (g1, "#microsoft.graph.groupAssignmentTarget"),
        (g2, "#microsoft.graph.exclusionGroupAssignmentTarget"),
    }
    assign(env, CONFIGS, p["id"], [g2])
    got = env.call("GET", f"{CONFIGS}/{p['id']}/assignments").json()["value"]
    assert [a["target"]["groupId"] for a in got] == [g2]


# --- delivery ------------------------------------------------------------------------------


def test_delivery_only_when_the_version_differs_and_exclusion_wins(env: Env) -> None:
    secret = ready(env)
    a, b = device(env, secret), device(env, secret)
    line = group(env, "line", [a, b])
    spare = group(env, "spares", [b])
    p = create(env, CONFIGS, restrictions(cameraBlocked=True, passwordRequiredType="numeric"))
    assign(env, CONFIGS, p["id"], [line], [spare])
    policy = apply(a)
    assert policy is not None
    assert policy["restrictions"] == {"cameraBlocked": True, "passwordRequiredType": "numeric"}
    assert check_in(a).get("policy") is None, "sent only when the version differs"
    assert apply(b) is None, "excluded"
    got = statuses(env, CONFIGS, p["id"])
    assert set(got) == {a.device_id}
    assert got[a.device_id]["status"] == "compliant"
    # A changed policy is a new version: pending until the device reports it.
    env.call("PATCH", f"{CONFIGS}/{p['id']}", json={"screenCaptureBlocked": True})
    assert statuses(env, CONFIGS, p["id"])[a.device_id]["status"] == "unknown"
    again = apply(a)
    assert again is not None and again["restrictions"]["screenCaptureBlocked"] is True
    assert statuses(env, CONFIGS, p["id"])[a.device_id]["status"] == "compliant"


def test_a_device_that_leaves_the_group_loses_the_policy(env: Env) -> None:
    secret = ready(env)
    a = device(env, secret)
    g = group(env, "line", [a])
    p = create(env, CONFIGS, restrictions(cameraBlocked=True))
    assign(env, CONFIGS, p["id"], [g])
    assert apply(a) is not None
    r = env.call("DELETE", f"/beta/groups/{g}/members/{a.device_id}/$ref")
    assert r.status_code == 204
    empty = apply(a)
    assert empty is not None and empty["restrictions"] == {} and empty["version"] == "0"
    assert statuses(env, CONFIGS, p["id"]) == {}
    states = env.call(
        "GET", f"/beta/deviceManagement/managedDevices/{a.device_id}/deviceConfigurationStates"
    )
    assert states.json()["value"] == []


def test_reports_per_setting_with_failures_and_unsupported(env: Env) -> None:
    from aospmdm import protocol

    secret = ready(env)
    a = device(env, secret)
    g = group(env, "line", [a])
    p = create(
        env,
        CONFIGS,
        restrictions(cameraBlocked=True, bluetoothBlocked=True, factoryResetBlocked=True),
    )
    assign(env, CONFIGS, p["id"], [g])
    policy = check_in(a)["policy"]
    report = protocol.PolicyReport(
        version=policy["version"],
        settings=[
            protocol.SettingReport(name="cameraBlocked", state="applied", current_value=True),
            protocol.SettingReport(
                name="bluetoothBlocked", state="notSupported", message="no radio"
            ),
        ],
    )
    a.applied = policy["version"]
    check_in(a, policy_report=report)
    row = statuses(env, CONFIGS, p["id"])[a.device_id]
    by = {s["setting"]: s for s in row["settingStates"]}
    assert (
        by["cameraBlocked"]["state"] == "compliant"
        and by["cameraBlocked"]["currentValue"] == "true"
    )
    assert (
        by["bluetoothBlocked"]["state"] == "notApplicable"
        and by["bluetoothBlocked"]["reason"] == "no radio"
    )
    assert by["factoryResetBlocked"]["state"] == "unknown"
    assert row["status"] == "unknown"
    failed = protocol.PolicyReport(
        version=policy["version"],
        settings=[protocol.SettingReport(name="cameraBlocked", state="failed", message="denied")],
    )
    check_in(a, policy_report=failed)
    assert statuses(env, CONFIGS, p["id"])[a.device_id]["status"] == "error"
    # A report for another version is ignored.
    stale = protocol.PolicyReport(version="abc", settings=report.settings)
    check_in(a, policy_report=stale)
    assert statuses(env, CONFIGS, p["id"])[a.device_id]["status"] == "error"


def test_overlapping_policies_merge_to_the_most_restrictive_and_name_the_winner(env: Env) -> None:
    secret = ready(env)
    a = device(env, secret)
    g = group(env, "line", [a])
    loose = create(
        env,
        CONFIGS,
        restrictions(
            displayName="Loose",
            passwordMinimumLength=4,
            passwordRequiredType="numericComplex",
            passwordMinutesOfInactivityBeforeScreenTimeout=30,
            securityAllowDebuggingFeatures=True,
            cameraBlocked=False,
        ),
    )
    strict = create(
        env,
        CONFIGS,
        restrictions(
            displayName="Strict",
            passwordMinimumLength=8,
            passwordRequiredType="numeric",
            passwordMinutesOfInactivityBeforeScreenTimeout=5,
            securityAllowDebuggingFeatures=False,
            cameraBlocked=True,
        ),
    )
    assign(env, CONFIGS, loose["id"], [g])
    assign(env, CONFIGS, strict["id"], [g])
    policy = apply(a)
    assert policy is not None
    assert policy["restrictions"] == {
        "passwordMinimumLength": 8,
        "passwordRequiredType": "numericComplex",
        "passwordMinutesOfInactivityBeforeScreenTimeout": 5,
        "securityAllowDebuggingFeatures": False,
        "cameraBlocked": True,
    }
    row = statuses(env, CONFIGS, loose["id"])[a.device_id]
    winners = {s["setting"]: s["sources"][0]["displayName"] for s in row["settingStates"]}
    assert winners == {
        "passwordMinimumLength": "Strict",
        "passwordRequiredType": "Loose",
        "passwordMinutesOfInactivityBeforeScreenTimeout": "Strict",
        "securityAllowDebuggingFeatures": "Strict",
        "cameraBlocked": "Strict",
    }
    assert row["status"] == "compliant"


def test_wifi_profiles_for_one_ssid_that_disagree_are_a_conflict_and_neither_is_applied(
    env: Env,
) -> None:
    secret = ready(env)
    a = device(env, secret)
    g = group(env, "line", [a])
    one = create(env, CONFIGS, wifi(displayName="Prod A"))
    two = create(env, CONFIGS, wifi(displayName="Prod B", preSharedKey="another secret key"))
    same = create(
        env,
        CONFIGS,
        wifi(
            displayName="Guest",
            ssid="guest",
            wiFiSecurityType="open",
            preSharedKey=None,
            proxySettings="manual",
            proxyManualAddress="proxy.local",
            proxyManualPort=3128,
            proxyExclusionList=["*.local"],
        ),
    )
    for p in (one, two, same):
        assign(env, CONFIGS, p["id"], [g])
    policy = apply(a)
    assert policy is not None
    assert [n["ssid"] for n in policy["wifiNetworks"]] == ["guest"]
    assert policy["wifiNetworks"][0]["proxy"] == {
        "type": "manual",
        "host": "proxy.local",
        "port": 3128,
        "exclusionList": ["*.local"],
        "pacUrl": None,
    }
    assert statuses(env, CONFIGS, one["id"])[a.device_id]["status"] == "conflict"
    assert statuses(env, CONFIGS, two["id"])[a.device_id]["status"] == "conflict"
    assert statuses(env, CONFIGS, same["id"])[a.device_id]["status"] == "compliant"
    # The same key in both: no conflict, and the device gets the key.
    env.call("PATCH", f"{CONFIGS}/{two['id']}", json={"preSharedKey": "correct horse battery"})
    policy = apply(a)
    assert policy is not None
    prod = [n for n in policy["wifiNetworks"] if n["ssid"] == "prod"]
    assert prod and prod[0]["preSharedKey"] == "correct horse battery"
    assert prod[0]["securityType"] == "wpaPersonal"
    assert statuses(env, CONFIGS, one["id"])[a.device_id]["status"] == "compliant"


def test_a_new_key_is_a_new_version(env: Env) -> None:
    secret = ready(env)
    a = device(env, secret)
    g = group(env, "line", [a])
    p = create(env, CONFIGS, wifi())
    assign(env, CONFIGS, p["id"], [g])
    first = apply(a)
    env.call("PATCH", f"{CONFIGS}/{p['id']}", json={"preSharedKey": "a brand new key"})
    second = apply(a)
    assert first and second and first["version"] != second["version"]
    assert second["wifiNetworks"][0]["preSharedKey"] == "a brand new key"
    assert "a brand new key" not in first["version"] + second["version"]


def test_a_device_in_two_groups_gets_the_policy_once(env: Env) -> None:
    secret = ready(env)
    a = device(env, secret)
    g1, g2 = group(env, "g1", [a]), group(env, "g2", [])
    add(env, g2, a)
    p = create(env, CONFIGS, restrictions(cameraBlocked=True))
    assign(env, CONFIGS, p["id"], [g1, g2])
    policy = check_in(a)["policy"]
    a.applied = policy["version"]
    check_in(a, policy_report=report_all(policy))
    assert len(statuses(env, CONFIGS, p["id"])) == 1


# --- permissions and scope -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("collection", "body"),
    [
        (CONFIGS, lambda: restrictions(cameraBlocked=True)),
        (COMPLIANCE, lambda: compliance(passwordRequired=True)),
    ],
)
def test_the_401_403_404_matrix(env: Env, collection: str, body: Any) -> None:
    def make(e: Env, tags: list[str]) -> str:
        return str(create(e, collection, {**body(), "roleScopeTagIds": tags})["id"])

    check_resource(
        env,
        Resource(
            collection=collection,
            read_permission="policies.read",
            write_permission="policies.write",
            make=make,
            create_body=body,
            scope_tagged=True,
        ),
    )


def test_help_desk_reads_but_cannot_change_policies(env: Env) -> None:
    p = create(env, CONFIGS, restrictions())
    helpdesk = env.admin("Help Desk Operator")
    assert env.call("GET", f"{CONFIGS}/{p['id']}", token=helpdesk).status_code == 200
    r = env.call("PATCH", f"{CONFIGS}/{p['id']}", token=helpdesk, json={"cameraBlocked": True})
    assert r.status_code == 403 and "policies.write" in r.json()["error"]["message"]
    manager = env.admin("Policy and Profile Manager")
    assert (
        env.call(
            "PATCH", f"{CONFIGS}/{p['id']}", token=manager, json={"cameraBlocked": True}
        ).status_code
        == 200
    )


def test_a_passcode_policy_is_a_numeric_restrictions_policy_assigned_to_the_device(
    env: Env,
) -> None:
    from aospmdm.policies import service

    secret = ready(env)
    a, b = device(env, secret), device(env, secret)
    g = group(env, "line", [a, b])
    spare = group(env, "spares", [b])

    def has(d: Any) -> bool:
        with env.db() as s:
            return service.is_passcode_policy_assigned(s, d.device_id)

    p = create(
        env, CONFIGS, restrictions(passwordRequiredType="deviceDefault", passwordMinimumLength=6)
    )
    assign(env, CONFIGS, p["id"], [g], [spare])
    assert not has(a), "deviceDefault is not a passcode policy"
    env.call("PATCH", f"{CONFIGS}/{p['id']}", json={"passwordRequiredType": "numericComplex"})
    assert has(a) and not has(b), "b is excluded"
    # A compliance policy requiring a passcode does not count: it sets nothing on the device.
    c = create(env, COMPLIANCE, compliance(passwordRequired=True, passwordRequiredType="numeric"))
    assign(env, COMPLIANCE, c["id"], [spare])
    assert not has(b)


def test_the_check_in_costs_the_same_statements_with_many_policies(env: Env) -> None:
    from tests.sync.test_hot_path import NO_CHANGE_CHECK_IN_STATEMENTS, counted

    secret = ready(env)
    a = device(env, secret)
    groups = [group(env, f"g{n}", [a]) for n in range(3)]
    for n in range(4):
        p = create(env, CONFIGS, restrictions(displayName=f"r{n}", passwordMinimumLength=4 + n))
        assign(env, CONFIGS, p["id"], groups[: 1 + n % 3])
    w = create(env, CONFIGS, wifi())
    assign(env, CONFIGS, w["id"], groups)
    c = create(env, COMPLIANCE, compliance(passwordRequired=True))
    assign(env, COMPLIANCE, c["id"], groups)
    apply(a, {"passcode_type": "numeric", "passcode_length": 8})
    check_in(a, facts={"passcode_type": "numeric", "passcode_length": 8})
    with counted(env) as statements:
        body = check_in(a, facts={"passcode_type": "numeric", "passcode_length": 8})
    assert body.get("policy") is None
    others = [s for s in statements if not s.startswith("BEGIN")]
    assert len(others) == NO_CHANGE_CHECK_IN_STATEMENTS - 1, statements


def test_statuses_survive_a_rename_and_a_redundant_policy_gets_reported(env: Env) -> None:
    secret = ready(env)
    a = device(env, secret)
    g = group(env, "line", [a])
    p = create(env, CONFIGS, restrictions(cameraBlocked=True))
    assign(env, CONFIGS, p["id"], [g])
    assert apply(a) is not None
    got = env.call("GET", f"{CONFIGS}/{p['id']}").json()
    # Sent back as read, renamed, re-tagged with the same tags: nothing devices enforce changed.
    r = env.call("PATCH", f"{CONFIGS}/{p['id']}", json={**got, "displayName": "Camera off"})
    assert r.status_code == 200 and r.json()["version"] == 1
    assert check_in(a).get("policy") is None
    assert statuses(env, CONFIGS, p["id"])[a.device_id]["status"] == "compliant"
    # A second policy whose value is already in force still reaches the device, which
    # reports on it.
    q = create(env, CONFIGS, restrictions(displayName="Also camera", cameraBlocked=True))
    assign(env, CONFIGS, q["id"], [g])
    again = apply(a)
    assert again is not None and again["restrictions"] == {"cameraBlocked": True}
    assert statuses(env, CONFIGS, q["id"])[a.device_id]["status"] == "compliant"
    assert statuses(env, CONFIGS, p["id"])[a.device_id]["status"] == "compliant"


def test_a_conflict_alone_is_still_delivered_and_reported(env: Env) -> None:
    secret = ready(env)
    a = device(env, secret)
    g = group(env, "line", [a])
    one = create(env, CONFIGS, wifi(displayName="A"))
    two = create(env, CONFIGS, wifi(displayName="B", preSharedKey="a different key"))
    assign(env, CONFIGS, one["id"], [g])
    assign(env, CONFIGS, two["id"], [g])
    policy = apply(a)
    assert policy is not None and policy["version"] != "0" and policy["wifiNetworks"] == []
    assert statuses(env, CONFIGS, one["id"])[a.device_id]["status"] == "conflict"
    reason = statuses(env, CONFIGS, two["id"])[a.device_id]["settingStates"][0]["reason"]
    assert "A" in reason and "none is applied" in reason


def test_device_management_settings_round_trip(env: Env) -> None:
    got = env.call("GET", "/beta/deviceManagement").json()
    r = env.call("PATCH", "/beta/deviceManagement", json=got)
    assert r.status_code == 200, r.text
    assert r.json() == got
    assert not env.audit(**{"$filter": "activity eq 'Update compliance policy settings'"})


def test_ssids_are_counted_in_bytes_and_messages_read_cleanly(env: Env) -> None:
    r = env.call("POST", CONFIGS, json=wifi(ssid="é" * 17))
    assert r.status_code == 400 and r.json()["error"]["target"] == "ssid"
    assert "32 bytes" in r.json()["error"]["message"]
    assert env.call("POST", CONFIGS, json=wifi(ssid="é" * 16)).status_code == 201
    m = env.call("POST", CONFIGS, json=restrictions(passwordRequiredType="alphanumeric"))
    message = m.json()["error"]["message"]
    assert "Value error" not in message and ".." not in message
