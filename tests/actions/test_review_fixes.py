"""Remote actions after review: the temporary passcode within the reset scope and for 7 days
only, conditional cancel and results (no lost update between racing writers), identical
requests merged under a device lock, NUL in ids, wake-ups only for unsent work, audited
expiry, a confirmed wipe ending the device's other actions, the tombstone ended by any final
result, and the bulk permission check."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from aospmdm import protocol
from aospmdm.actions import service
from aospmdm.actions.models import DeviceCommand, DeviceTombstone
from aospmdm.core import clock
from aospmdm.core.db import new_id
from aospmdm.core.errors import Conflict
from aospmdm.tenant import access
from aospmdm.tenant import service as tenant
from aospmdm.tenant.schemas import RoleDefinitionCreate
from tests.actions.test_actions import DEVICES, act, commands, history, passcode_policy
from tests.actions.test_wait import wait
from tests.conftest import PASSWORD, Env
from tests.policies.fleet import device, ready
from tests.sync.device import Device, results
from tests.web.test_sign_in import csrf, sign_in

DM = "/beta/deviceManagement"
CONSOLE = "/console/devices"


def _pg(env: Env) -> None:
    if env.app.state.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only: SQLite's write lock serializes these writers")


def _activities(env: Env) -> list[str]:
    return [e["activity"] for e in env.audit(**{"$filter": "category eq 'DeviceAction'"})]


def _states(env: Env) -> dict[str, str]:
    with env.db() as s:
        return {c.action_name: c.state for c in s.scalars(select(DeviceCommand))}


def _device_actor() -> access.Actor:
    return access.Actor(name="dev", type="device")


# --- 1, 13: the temporary passcode ------------------------------------------------------------


def _scoped_resetter(env: Env, email: str, tag: str) -> str:
    """An admin who may reset passcodes only within ``tag``, but reads every device."""
    with env.db() as s:
        data = RoleDefinitionCreate.model_validate(
            {
                "displayName": "Tag T resets",
                "rolePermissions": [
                    {
                        "resourceActions": [
                            {"allowedResourceActions": ["devices.read", "devices.resetPasscode"]}
                        ]
                    }
                ],
            }
        )
        tenant.create_role(s, access.cli_actor(), data)
    token = env.admin("Tag T resets", tags=[tag], email=email)
    roles = env.call("GET", f"{DM}/roleDefinitions", params={"$top": "999"}).json()["value"]
    reader = next(r["id"] for r in roles if r["displayName"] == "Read Only Operator")
    r = env.call(
        "POST",
        f"{DM}/roleAssignments",
        json={"displayName": "readers", "roleDefinitionId": reader, "members": [email]},
    )
    assert r.status_code == 201, r.text
    return token


def test_the_passcode_is_shown_only_within_the_reset_scope(env: Env) -> None:
    env.tag("T")
    d = device(env, ready(env))  # tagged Default, outside T
    passcode_policy(env, d)
    assert act(env, d, "resetPasscode").status_code == 204
    [c] = commands(d)
    code = c["payload"]["passcode"]
    token = _scoped_resetter(env, "scoped@example.com", "T")
    assert act(env, d, "resetPasscode", token=token).status_code == 404, "out of its scope"
    seen = env.call("GET", f"{DEVICES}/{d.device_id}/deviceActionResults", token=token)
    assert seen.status_code == 200, "it may read the device"
    assert seen.json()["value"][0]["passcode"] is None
    assert code not in seen.text
    # The console says the same.
    assert sign_in(env.client, "scoped@example.com", PASSWORD).status_code == 303
    page = env.client.get(f"{CONSOLE}/{d.device_id}")
    assert page.status_code == 200, page.text
    assert code not in page.text and 'class="passcode"' not in page.text
    # Unscoped, the same admin sees it.
    env.client.cookies.clear()
    assert sign_in(env.client, "root@example.com", PASSWORD).status_code == 303
    assert code in env.client.get(f"{CONSOLE}/{d.device_id}").text
    assert history(env, d)[0]["passcode"] == code


def test_the_passcode_is_hidden_after_seven_days_without_the_prune_job(env: Env) -> None:
    d = device(env, ready(env))
    passcode_policy(env, d)
    assert act(env, d, "resetPasscode").status_code == 204
    [c] = commands(d)
    clock.advance(6 * 24 * 3600)
    assert history(env, d)[0]["passcode"] == c["payload"]["passcode"]
    clock.advance(24 * 3600 + 1)  # 7 days: the hourly job has not run yet
    assert history(env, d)[0]["passcode"] is None
    assert c["payload"]["passcode"] not in env.client.get(f"{DEVICES}/{d.device_id}").text


# --- 2: cancel is one conditional UPDATE --------------------------------------------------------


def test_cancel_loses_to_a_device_that_accepted_meanwhile_pg(env: Env) -> None:
    _pg(env)
    d = device(env, ready(env))
    act(env, d, "wipe")
    [c] = commands(d)
    s = env.sessions()
    try:
        held = s.get(DeviceCommand, c["id"])  # the admin's request has read it: pending
        assert held is not None and held.state == "pending"
        # Meanwhile the device accepts the wipe (another worker, committed).
        assert results(d, (c["id"], "accepted")).json()["outcomes"] == ["recorded"]
        with pytest.raises(Conflict) as refused:
            service.cancel(s, access.cli_actor(), d.device_id, c["id"])
        assert refused.value.code == "actionNotPending"
        s.rollback()
    finally:
        s.close()
    assert history(env, d)[0]["actionState"] == "active"
    got = env.call("GET", f"{DEVICES}/{d.device_id}")
    assert got.json()["managementState"] == "wipePending", "not reset to managed"
    assert results(d, (c["id"], "done")).json()["outcomes"] == ["recorded"]
    assert env.call("GET", f"{DEVICES}/{d.device_id}").status_code == 404


def test_cancel_of_an_accepted_action_is_refused_and_changes_nothing(env: Env) -> None:
    d = device(env, ready(env))
    act(env, d, "wipe")
    [c] = commands(d)
    results(d, (c["id"], "accepted"))
    r = env.call("POST", f"{DEVICES}/{d.device_id}/deviceActionResults/{c['id']}/cancel")
    assert r.status_code == 409 and r.json()["error"]["code"] == "actionNotPending"
    assert env.call("GET", f"{DEVICES}/{d.device_id}").json()["managementState"] == "wipePending"
    assert "wipe: canceled" not in _activities(env)


# --- 3: results conditioned on the states they move from ---------------------------------------


def test_a_racing_accepted_does_not_lose_done_pg(env: Env) -> None:
    _pg(env)
    d = device(env, ready(env))
    act(env, d, "rebootNow")
    [c] = commands(d)
    engine = env.app.state.engine
    conn1 = engine.connect()
    tx = conn1.begin()
    accepted = protocol.CommandResult(command_id=c["id"], status="accepted")
    assert service.record_results(conn1, d.device_id, [accepted], _device_actor()) == ["recorded"]
    out: list[list[str]] = []

    def other() -> None:
        done = protocol.CommandResult(command_id=c["id"], status="done")
        with engine.begin() as conn2:
            conn2.execute(text("SET LOCAL lock_timeout = '10s'"))
            out.append(service.record_results(conn2, d.device_id, [done], _device_actor()))

    t = threading.Thread(target=other)
    t.start()
    time.sleep(0.5)  # the done waits on the accepted's row lock
    tx.commit()
    conn1.close()
    t.join(15)
    assert out == [["recorded"]], out
    assert history(env, d)[0]["actionState"] == "done"
    assert commands(d) == []


def test_accepted_after_done_is_a_duplicate_and_done_after_accepted_lands(env: Env) -> None:
    d = device(env, ready(env))
    act(env, d, "rebootNow")
    act(env, d, "rebootNow")
    first, second = commands(d)
    assert results(d, (first["id"], "done")).json()["outcomes"] == ["recorded"]
    assert results(d, (first["id"], "accepted")).json()["outcomes"] == ["duplicate"]
    assert results(d, (first["id"], "notNow")).json()["outcomes"] == ["duplicate"]
    assert results(d, (second["id"], "accepted")).json()["outcomes"] == ["recorded"]
    assert results(d, (second["id"], "accepted")).json()["outcomes"] == ["duplicate"]
    assert results(d, (second["id"], "failed")).json()["outcomes"] == ["recorded"]
    assert [h["actionState"] for h in history(env, d)] in (
        ["done", "failed"],
        ["failed", "done"],
    )


# --- 4: identical requests merge under the device lock ------------------------------------------


def test_concurrent_identical_locks_make_one_command_pg(env: Env) -> None:
    _pg(env)
    d = device(env, ready(env))
    passcode_policy(env, d)
    s1, s2 = env.sessions(), env.sessions()
    errors: list[BaseException] = []

    def second() -> None:
        try:
            s2.execute(text("SET LOCAL lock_timeout = '10s'"))
            service.request(s2, env.settings, access.cli_actor(), d.device_id, "remoteLock")
            s2.commit()
        except BaseException as exc:  # reported below
            errors.append(exc)

    try:
        service.request(s1, env.settings, access.cli_actor(), d.device_id, "remoteLock")
        t = threading.Thread(target=second)
        t.start()
        time.sleep(0.5)  # the second request waits on the device row
        s1.commit()
        t.join(15)
    finally:
        s1.close()
        s2.close()
    assert errors == []
    assert [c["type"] for c in commands(d)] == ["remoteLock"], "merged, not stacked"
    assert "remoteLock: merged with the open request" in _activities(env)


# --- 5: NUL in ids -----------------------------------------------------------------------------


def test_nul_in_ids_and_filters_is_not_found_or_ignored(env: Env) -> None:
    d = device(env, ready(env))
    env.client = TestClient(env.app, raise_server_exceptions=False)
    r = env.call("POST", f"{DEVICES}/{d.device_id}/deviceActionResults/a%00b/cancel")
    assert r.status_code == 404, r.text
    r = env.call("POST", f"{DEVICES}/{d.device_id}%00/deviceActionResults/a/cancel")
    assert r.status_code == 404, r.text
    assert sign_in(env.client, "root@example.com", PASSWORD).status_code == 303
    token = csrf(env.client, CONSOLE)
    r = env.client.post(
        f"{CONSOLE}/{d.device_id}/actions/a%00b/cancel",
        data={"csrf_token": token},
        follow_redirects=False,
    )
    assert r.status_code == 404, r.text
    act(env, d, "rebootNow")
    for params in ({"action": "a\x00"}, {"state": "p\x00"}, {"action": "x", "state": "y"}):
        r = env.client.get(f"{CONSOLE}/actions", params=params)
        assert r.status_code == 200, (params, r.text)
        assert 'data-action="rebootNow"' in r.text, "an unknown filter value is ignored"


# --- 6: wake-ups only for work the device was not sent yet ---------------------------------------


def test_not_now_does_not_make_the_wait_return_at_once(env: Env) -> None:
    env.settings.wait_seconds = 0.5
    d = device(env, ready(env))
    act(env, d, "rebootNow")
    assert wait(d).json() == {"work": True}, "not sent yet: wakes the device"
    [c] = commands(d)
    assert results(d, (c["id"], "notNow")).json()["outcomes"] == ["recorded"]
    t0 = time.monotonic()
    assert wait(d).json() == {"work": False}
    assert time.monotonic() - t0 >= 0.5, "the wait ran its course"
    assert [x["id"] for x in commands(d)] == [c["id"]], "still sent at every check-in"


# --- 7: expiry is audited -----------------------------------------------------------------------


def test_expiry_is_audited_at_check_in_and_by_the_prune_job(env: Env) -> None:
    secret = ready(env)
    a, b = device(env, secret), device(env, secret)
    act(env, a, "rebootNow")
    act(env, b, "rebootNow")
    clock.advance(2 * 24 * 3600)
    assert commands(a) == []  # expires at check-in
    with env.db() as s:
        service.prune(s)  # expires b's
        service.prune(s)  # once only
    assert history(env, a)[0]["actionState"] == "failed"
    assert history(env, b)[0]["actionState"] == "failed"
    expired = [
        e
        for e in env.audit(**{"$filter": "category eq 'DeviceAction'"})
        if e["activity"] == "rebootNow: failed (expired)"
    ]
    assert len(expired) == 2


# --- 8: a confirmed wipe ends the device's other actions ----------------------------------------


def test_a_confirmed_wipe_cancels_the_other_open_actions(env: Env) -> None:
    d = device(env, ready(env))
    act(env, d, "rebootNow")
    act(env, d, "wipe")
    wipe = next(c for c in commands(d) if c["type"] == "wipe")
    assert results(d, (wipe["id"], "done")).json()["outcomes"] == ["recorded"]
    assert _states(env) == {"rebootNow": "canceled", "wipe": "done"}
    assert "rebootNow: canceled (the device was wiped)" in _activities(env)


# --- 10, 11: the tombstone -----------------------------------------------------------------------


def _deleted(env: Env) -> tuple[Device, dict[str, Any]]:
    d = device(env, ready(env))
    assert env.call("DELETE", f"{DEVICES}/{d.device_id}").status_code == 204
    [c] = commands(d)
    assert c["type"] == "factoryReset"
    return d, c


@pytest.mark.parametrize("status", ["done", "failed", "notSupported"])
def test_any_final_result_of_the_factory_reset_ends_the_credential(env: Env, status: str) -> None:
    d, c = _deleted(env)
    assert results(d, (c["id"], "accepted")).json()["outcomes"] == ["recorded"]
    assert d.checkin().status_code == 200, "accepted is not final"
    assert results(d, (c["id"], status)).json()["outcomes"] == ["recorded"]
    r = d.checkin()
    assert r.status_code == 401 and r.json()["error"]["code"] == "deviceUnknown"


@pytest.mark.parametrize("where", ["check-in", "prune"])
def test_an_expired_factory_reset_ends_the_credential(env: Env, where: str) -> None:
    d, _ = _deleted(env)
    clock.advance(366 * 24 * 3600)
    if where == "prune":
        with env.db() as s:
            service.prune(s)
    else:
        r = d.checkin()
        assert r.status_code == 200 and r.json()["commands"] == []
    r = d.checkin()
    assert r.status_code == 401 and r.json()["error"]["code"] == "deviceUnknown"
    assert "delete: failed (expired)" in _activities(env)
    with env.db() as s:
        tomb = s.get(DeviceTombstone, d.device_id)
        assert tomb is not None and tomb.confirmed_at is not None


def test_a_deleted_device_gets_only_its_factory_reset(env: Env) -> None:
    d, _ = _deleted(env)
    now = clock.now()
    with env.db() as s:  # e.g. queued by a job that raced the delete
        s.add(
            DeviceCommand(
                id=new_id(),
                device_id=d.device_id,
                device_name="x",
                action_name="rebootNow",
                state="pending",
                requested_by="aospmdm",
                started_at=now,
                last_updated_at=now,
                expires_at=now + service.ACTIONS["rebootNow"].expires_after,
                deliveries=0,
                details={},
            )
        )
    assert [x["type"] for x in commands(d)] == ["factoryReset"]


# --- 12: bulk needs the action's permission -------------------------------------------------------


def test_bulk_without_the_actions_permission_is_forbidden(env: Env) -> None:
    d = device(env, ready(env))
    reader = env.admin("Read Only Operator")
    body = {"actionName": "rebootNow", "deviceIds": [d.device_id]}
    r = env.call("POST", f"{DEVICES}/executeAction", json=body, token=reader)
    assert r.status_code == 403, r.text
    assert "devices.rebootNow" in r.json()["error"]["message"]
    assert commands(d) == []
    # Unknown action names stay a 400.
    bad = {"actionName": "explode", "deviceIds": [d.device_id]}
    assert env.call("POST", f"{DEVICES}/executeAction", json=bad, token=reader).status_code == 400
