"""Remote actions on the command queue: every state transition, duplicate, unknown and
foreign results, merging, expiry, the wipe and tombstone paths, permissions and bulk."""

from __future__ import annotations

from typing import Any

import pytest

from aospmdm.actions import service
from aospmdm.core import clock
from aospmdm.tenant.models import Organization
from tests.conftest import Env
from tests.policies.fleet import CONFIGS, RESTRICTIONS_TYPE, assign, create, device, group, ready
from tests.sync.device import Device, results

DEVICES = "/beta/deviceManagement/managedDevices"


def act(env: Env, d: Device, name: str, token: str | None = "full") -> Any:
    return env.call("POST", f"{DEVICES}/{d.device_id}/{name}", token=token)


def commands(d: Device) -> list[dict[str, Any]]:
    r = d.checkin()
    assert r.status_code == 200, r.text
    return list(r.json()["commands"])


def history(env: Env, d: Device) -> list[dict[str, Any]]:
    r = env.call("GET", f"{DEVICES}/{d.device_id}/deviceActionResults")
    assert r.status_code == 200, r.text
    return list(r.json()["value"])


def passcode_policy(env: Env, *members: Device, length: int = 8) -> None:
    g = group(env, "locked", list(members))
    p = create(
        env,
        CONFIGS,
        {
            "@odata.type": RESTRICTIONS_TYPE,
            "displayName": "PIN",
            "passwordRequiredType": "numericComplex",
            "passwordMinimumLength": length,
        },
    )
    assign(env, CONFIGS, p["id"], [g])


def licenses_used(env: Env) -> int:
    with env.db() as s:
        return int(s.query(Organization).one().licenses_consumed)


def test_restart_is_delivered_until_done_then_never_again(env: Env) -> None:
    d = device(env, ready(env))
    assert act(env, d, "rebootNow").status_code == 204
    [c] = commands(d)
    assert c["type"] == "rebootNow"
    assert [c["id"] for c in commands(d)] == [c["id"]], "at least once: sent until a result"
    assert history(env, d)[0]["actionState"] == "pending"
    assert results(d, (c["id"], "accepted")).json()["outcomes"] == ["recorded"]
    assert history(env, d)[0]["actionState"] == "active"
    assert [x["id"] for x in commands(d)] == [c["id"]], "active is still open"
    assert results(d, (c["id"], "done")).json()["outcomes"] == ["recorded"]
    assert commands(d) == []
    # Terminal states never change; a repeated result is a no-op.
    assert results(d, (c["id"], "failed")).json()["outcomes"] == ["duplicate"]
    [h] = history(env, d)
    assert h["actionName"] == "rebootNow" and h["actionState"] == "done"
    got = env.call("GET", f"{DEVICES}/{d.device_id}").json()
    assert got["deviceActionResults"][0]["actionState"] == "done"
    activities = {e["activity"] for e in env.audit(**{"$filter": "category eq 'DeviceAction'"})}
    assert {
        "rebootNow: queued",
        "rebootNow: active on the device",
        "rebootNow: done on the device",
    } <= activities


def test_not_now_keeps_it_pending_and_unknown_or_foreign_results_change_nothing(env: Env) -> None:
    secret = ready(env)
    a, b = device(env, secret), device(env, secret)
    act(env, a, "rebootNow")
    act(env, b, "rebootNow")
    [ca] = commands(a)
    [cb] = commands(b)
    assert results(a, (ca["id"], "notNow")).json()["outcomes"] == ["recorded"]
    assert [c["id"] for c in commands(a)] == [ca["id"]]
    # b answers for a's command, and for one that never existed: both ignored.
    assert results(b, (ca["id"], "done"), ("nope", "done")).json()["outcomes"] == [
        "unknown",
        "unknown",
    ]
    assert history(env, a)[0]["actionState"] == "pending"
    assert [c["id"] for c in commands(b)] == [cb["id"]], "b's own command is undisturbed"
    refused = env.audit(**{"$filter": "activity eq 'Result for an unknown action ignored'"})
    assert len(refused) == 2


def test_lock_needs_a_passcode_policy_and_repeated_locks_merge(env: Env) -> None:
    secret = ready(env)
    d = device(env, secret)
    r = act(env, d, "remoteLock")
    assert r.status_code == 409 and r.json()["error"]["code"] == "passcodePolicyRequired"
    assert act(env, d, "resetPasscode").status_code == 409
    assert history(env, d) == []
    passcode_policy(env, d)
    assert act(env, d, "remoteLock").status_code == 204
    assert act(env, d, "remoteLock").status_code == 204
    assert [c["type"] for c in commands(d)] == ["remoteLock"], "merged, not stacked"
    assert len(history(env, d)) == 1


def test_reset_passcode_meets_the_policy_and_is_shown_for_seven_days(env: Env) -> None:
    secret = ready(env)
    d = device(env, secret)
    passcode_policy(env, d, length=9)
    assert act(env, d, "resetPasscode").status_code == 204
    [c] = commands(d)
    code = c["payload"]["passcode"]
    assert code.isdigit() and len(code) == 9
    assert not service._complex("1234") and not service._complex("7777")
    assert service._complex(code)
    assert history(env, d)[0]["passcode"] == code
    reader = env.admin("Read Only Operator")
    seen = env.call("GET", f"{DEVICES}/{d.device_id}/deviceActionResults", token=reader)
    assert seen.status_code == 200 and seen.json()["value"][0]["passcode"] is None
    assert code not in env.call("GET", f"{DEVICES}/{d.device_id}").text
    clock.advance(8 * 24 * 3600)
    with env.db() as s:
        service.prune(s)
    assert history(env, d)[0]["passcode"] is None


def test_wipe_is_pending_until_confirmed_then_the_device_and_license_are_gone(env: Env) -> None:
    secret = ready(env)
    d = device(env, secret)
    used = licenses_used(env)
    assert act(env, d, "wipe").status_code == 204
    assert env.call("GET", f"{DEVICES}/{d.device_id}").json()["managementState"] == "wipePending"
    assert act(env, d, "wipe").status_code == 204, "merged"
    assert act(env, d, "rebootNow").json()["error"]["code"] == "wipePending"
    [c] = commands(d)
    assert c["type"] == "wipe"
    assert results(d, (c["id"], "accepted")).status_code == 200
    assert env.call("GET", f"{DEVICES}/{d.device_id}").status_code == 200
    assert results(d, (c["id"], "done")).json()["outcomes"] == ["recorded"]
    assert env.call("GET", f"{DEVICES}/{d.device_id}").status_code == 404
    assert licenses_used(env) == used - 1
    r = d.checkin()
    assert r.status_code == 401 and r.json()["error"]["code"] == "deviceUnknown"
    with env.db() as s:
        from aospmdm.actions.models import DeviceCommand

        assert s.get(DeviceCommand, c["id"]).state == "done", "history is kept"


def test_delete_is_at_once_and_the_tombstone_tells_the_device_to_reset(env: Env) -> None:
    secret = ready(env)
    d = device(env, secret)
    used = licenses_used(env)
    act(env, d, "rebootNow")
    assert env.call("DELETE", f"{DEVICES}/{d.device_id}").status_code == 204
    assert env.call("GET", f"{DEVICES}/{d.device_id}").status_code == 404
    assert d.device_id not in env.call("GET", DEVICES).text
    assert licenses_used(env) == used - 1
    [c] = commands(d)  # a 200, with only the factory reset (the restart was canceled)
    assert c["type"] == "factoryReset"
    assert results(d, (c["id"], "done")).json()["outcomes"] == ["recorded"]
    r = d.checkin()
    assert r.status_code == 401 and r.json()["error"]["code"] == "deviceUnknown"


def test_pending_actions_expire_and_can_be_canceled(env: Env) -> None:
    secret = ready(env)
    d = device(env, secret)
    act(env, d, "rebootNow")
    clock.advance(2 * 24 * 3600)
    assert commands(d) == []
    assert history(env, d)[0]["actionState"] == "failed"
    act(env, d, "rebootNow")
    pending = history(env, d)[0]
    url = f"{DEVICES}/{d.device_id}/deviceActionResults/{pending['id']}/cancel"
    assert env.call("POST", url).status_code == 204
    assert history(env, d)[0]["actionState"] == "canceled"
    assert commands(d) == []
    again = env.call("POST", url)
    assert again.status_code == 409 and again.json()["error"]["code"] == "actionNotPending"


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        ("Help Desk Operator", {"remoteLock", "resetPasscode", "rebootNow"}),
        ("Read Only Operator", set()),
        ("Intune Administrator", {"remoteLock", "resetPasscode", "rebootNow", "wipe"}),
    ],
)
def test_each_action_needs_its_permission(env: Env, role: str, allowed: set[str]) -> None:
    secret = ready(env)
    d = device(env, secret)
    passcode_policy(env, d)
    token = env.admin(role)
    for name in ("remoteLock", "resetPasscode", "rebootNow", "wipe"):
        r = act(env, d, name, token=token)
        assert (r.status_code == 204) == (name in allowed), (name, r.text)
        if r.status_code == 403:
            assert f"devices.{name}" in r.json()["error"]["message"]
    r = env.call("DELETE", f"{DEVICES}/{d.device_id}", token=token)
    assert r.status_code == (204 if role == "Intune Administrator" else 403)


def test_bulk_actions_report_per_device(env: Env) -> None:
    secret = ready(env)
    a, b = device(env, secret), device(env, secret)
    passcode_policy(env, a)
    body = {"actionName": "remoteLock", "deviceIds": [a.device_id, b.device_id, "missing"]}
    r = env.call("POST", f"{DEVICES}/executeAction", json=body)
    assert r.status_code == 200, r.text
    got = {x["deviceId"]: x for x in r.json()["value"]}
    assert got[a.device_id]["status"] == "accepted"
    assert got[b.device_id]["error"]["code"] == "passcodePolicyRequired"
    assert got["missing"]["error"]["code"] == "notFound"
    assert [c["type"] for c in commands(a)] == ["remoteLock"]
    assert commands(b) == []
    bad = env.call(
        "POST", f"{DEVICES}/executeAction", json={"actionName": "explode", "deviceIds": ["x"]}
    )
    assert bad.status_code == 400 and bad.json()["error"]["target"] == "actionName"


def test_compliance_remote_locks_are_carried_out_through_the_queue(env: Env) -> None:
    from tests.policies.fleet import COMPLIANCE, COMPLIANCE_TYPE, check_in

    secret = ready(env)
    a, b = device(env, secret), device(env, secret)
    passcode_policy(env, a)
    g = group(env, "rooted watch", [a, b])
    p = create(
        env,
        COMPLIANCE,
        {
            "@odata.type": COMPLIANCE_TYPE,
            "displayName": "No root",
            "securityBlockJailbrokenDevices": True,
            "scheduledActionsForRule": [
                {"scheduledActionConfigurations": [{"actionType": "remoteLock"}]}
            ],
        },
    )
    assign(env, COMPLIANCE, p["id"], [g])
    check_in(a, facts={"is_rooted": True})
    check_in(b, facts={"is_rooted": True})
    with env.db() as s:
        assert service.carry_out_compliance_locks(s) == 1
    [c] = commands(a)
    assert c["type"] == "remoteLock"
    assert history(env, a)[0]["requestedBy"] == "aospmdm"
    assert commands(b) == [], "no passcode policy: the lock cannot happen"
    with env.db() as s:
        assert service.carry_out_compliance_locks(s) == 0, "each recorded lock once"
    assert env.audit(
        **{"$filter": "activity eq 'remoteLock: not possible without a passcode policy'"}
    )
