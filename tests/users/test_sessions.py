"""Shared-device sign-in end to end with the reference agent: sign-in, switch of user,
global sign-out, the SSO token's introspection, refusals, throttling, the admin's remote
sign-out, usersLoggedOn and the user-to-devices view, and their audit records."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from aospmdm import protocol as p
from aospmdm.agent import AgentError
from aospmdm.agent.device import Device
from aospmdm.core import clock
from aospmdm.devices.models import ManagedDevice
from aospmdm.tenant import access
from aospmdm.tenant.models import Admin
from aospmdm.users import service
from aospmdm.users.models import DeviceSession, DeviceSignInFailure
from tests.agent.fleet import Fleet, make_fleet
from tests.conftest import Env

U = "/beta/users"
D = "/beta/deviceManagement/managedDevices"


@pytest.fixture
def fleet(env: Env, tmp_path: Path) -> Fleet:
    f = make_fleet(env, tmp_path, "Shared scanners", "Scanners")
    for upn, name in (("ann@contoso.com", "Ann"), ("bob@contoso.com", "Bob")):
        r = env.call(
            "POST",
            U,
            json={
                "userPrincipalName": upn,
                "displayName": name,
                "passwordProfile": {"password": f"{name.lower()}-password"},
            },
        )
        assert r.status_code == 201, r.text
    return f


def past(env: Env, column: Any, seconds: float) -> None:
    """Move a time column back (the device signs with its own clock: the server's clock
    cannot be moved far)."""
    with env.db() as s:
        for row in s.scalars(select(column.class_)):
            setattr(row, column.key, getattr(row, column.key) - timedelta(seconds=seconds))


def token(d: Device) -> str:
    assert d.state.signed_in_user is not None
    return d.state.signed_in_user.session_token


def active(f: Fleet, d: Device, tok: str) -> bool:
    return f.agent.introspect(d, tok).active


def refusal(f: Fleet, d: Device, upn: str, password: str) -> AgentError:
    with pytest.raises(AgentError) as caught:
        f.agent.sign_in(d, upn, password)
    return caught.value


def session_audit(env: Env) -> list[dict[str, Any]]:
    return env.audit(**{"$filter": "category eq 'UserSession'"})


def test_sign_in_switch_and_sign_out(env: Env, fleet: Fleet) -> None:
    d = fleet.device("SHARED1")
    answer = fleet.agent.sign_in(d, "Ann@Contoso.com", "ann-password")
    d.save()
    assert answer.user_principal_name == "ann@contoso.com" and answer.display_name == "Ann"
    assert answer.expires_date_time.endswith("Z")
    ann_token = token(d)
    assert len(ann_token) >= 40
    status = Device.load(d.state_dir or Path()).status()
    assert status["signedInUser"]["userPrincipalName"] == "ann@contoso.com"
    assert ann_token not in str(status)

    info = fleet.agent.introspect(d, ann_token)
    assert (
        info.active and info.username == "ann@contoso.com" and info.device_id == d.state.device_id
    )
    assert info.sub == answer.user_id
    assert info.exp is not None and info.iat is not None
    assert info.exp - info.iat == env.settings.session_hours * 3600
    assert not active(fleet, d, "not-a-token")

    # Another device cannot use the token (nor learn anything about it).
    other = fleet.device("SHARED2")
    assert fleet.agent.introspect(other, ann_token).model_dump(exclude_none=True) == {
        "active": False
    }

    # Bob signs in: Ann's session ends (replaced).
    fleet.agent.sign_in(d, "bob@contoso.com", "bob-password")
    bob_token = token(d)
    assert not active(fleet, d, ann_token)
    assert active(fleet, d, bob_token)
    with env.db() as s:
        [bob, ann] = service.sessions_of_device(s, d.state.device_id or "")
        assert (ann.ended_reason, bob.ended_reason) == ("replaced", None)
        current = service.current_session(s, d.state.device_id or "")
        assert current is not None and current.user_principal_name == "bob@contoso.com"

    # Global sign-out: the token is inactive for every app at once.
    user = fleet.agent.sign_out(d)
    assert user is not None and user.user_principal_name == "bob@contoso.com"
    assert d.state.signed_in_user is None
    assert not active(fleet, d, bob_token)
    assert fleet.agent.sign_out(d) is None  # idempotent
    with env.db() as s:
        assert service.current_session(s, d.state.device_id or "") is None

    events = session_audit(env)
    kinds = [(e["activity"], e["activityResult"], e["actor"]["userPrincipalName"]) for e in events]
    device_actor = f"device:{d.state.device_id}"
    assert kinds.count(("Sign in", "success", device_actor)) == 2
    assert kinds.count(("Sign out", "success", device_actor)) >= 3  # replaced, signOut, empty

    # Form-encoded (RFC 7662) and JSON bodies; unsigned requests are refused.
    r = env.client.post("/sso/v1/introspect", data={"token": bob_token})
    assert r.status_code == 401
    fleet.agent.sign_in(d, "ann@contoso.com", "ann-password")
    raw = json.dumps({"token": token(d)}).encode()
    headers = {
        "Content-Type": "application/json",
        **d.signed_headers("POST", p.INTROSPECT_PATH, raw),
    }
    r = env.client.post(p.INTROSPECT_PATH, content=raw, headers=headers)
    assert r.status_code == 200 and r.json()["active"] is True, r.text
    assert r.headers["cache-control"] == "no-store"
    raw = b"{}"
    headers = {
        "Content-Type": "application/json",
        **d.signed_headers("POST", p.INTROSPECT_PATH, raw),
    }
    r = env.client.post(p.INTROSPECT_PATH, content=raw, headers=headers)
    assert r.status_code == 400 and r.json()["error"]["target"] == "token"


def test_refusals_and_throttling(env: Env, fleet: Fleet) -> None:
    d = fleet.device("SHARED3")
    wrong = refusal(fleet, d, "ann@contoso.com", "wrong-password")
    unknown = refusal(fleet, d, "nobody@contoso.com", "whatever-pass")
    assert (wrong.code, wrong.status) == ("invalidCredentials", 401)
    assert (unknown.code, unknown.status, unknown.message) == (
        "invalidCredentials",
        401,
        wrong.message,
    )
    env.call("PATCH", f"{U}/bob@contoso.com", json={"accountEnabled": False})
    disabled = refusal(fleet, d, "bob@contoso.com", "bob-password")
    assert (disabled.code, disabled.status) == ("userDisabled", 403)
    assert d.state.signed_in_user is None

    # Throttled per user principal name: after 5 failures even the right password waits.
    for _ in range(env.settings.signin_max_failures_per_account - 1):
        refusal(fleet, d, "ann@contoso.com", "wrong-password")
    throttled = refusal(fleet, d, "ann@contoso.com", "ann-password")
    assert (throttled.code, throttled.status) == ("tooManySignInFailures", 429)
    # Another user on another device is not affected; after the window it works again.
    d2 = fleet.device("SHARED4")
    env.call("PATCH", f"{U}/bob@contoso.com", json={"accountEnabled": True})
    fleet.agent.sign_in(d2, "bob@contoso.com", "bob-password")
    past(env, DeviceSignInFailure.at, env.settings.signin_window_minutes * 60 + 1)
    fleet.agent.sign_in(d, "ann@contoso.com", "ann-password")

    failures = [e for e in session_audit(env) if e["activityResult"] == "failure"]
    messages = [e["message"] for e in failures]
    assert messages.count("invalidCredentials") == 6
    assert "userDisabled" in messages and "throttled" in messages
    assert all(
        "password" not in str(e["details"]).replace("userPrincipalName", "") for e in failures
    )


def test_throttled_per_device(env: Env, fleet: Fleet) -> None:
    d = fleet.device("SHARED5")
    for n in range(env.settings.signin_max_failures_per_address):
        refusal(fleet, d, f"guess{n}@contoso.com", "wrong-password")
    assert refusal(fleet, d, "ann@contoso.com", "ann-password").code == "tooManySignInFailures"


def test_deleted_device_cannot_sign_in(env: Env, fleet: Fleet) -> None:
    d = fleet.device("SHARED6")
    fleet.agent.sign_in(d, "ann@contoso.com", "ann-password")
    tok = token(d)
    assert env.call("DELETE", f"{D}/{d.state.device_id}").status_code == 204
    err = refusal(fleet, d, "ann@contoso.com", "ann-password")
    assert (err.code, err.status) == ("deviceDeleted", 403)
    assert not active(fleet, d, tok)


def test_admin_remote_sign_out(env: Env, fleet: Fleet) -> None:
    d = fleet.device("SHARED7")
    fleet.agent.sign_in(d, "ann@contoso.com", "ann-password")
    tok = token(d)
    help_desk = env.admin("Help Desk Operator")
    reader = env.admin("Read Only Operator")
    path = f"{D}/{d.state.device_id}/signOutUser"
    assert env.call("POST", path, token=reader).status_code == 403
    assert active(fleet, d, tok)
    assert env.call("POST", f"{D}/no-such-device/signOutUser", token=help_desk).status_code == 404
    assert env.call("POST", path, token=help_desk).status_code == 204
    # Inactive at once, before the device checks in.
    assert not active(fleet, d, tok)
    assert d.state.signed_in_user is not None
    fleet.agent.checkin(d)
    [(command, result)] = fleet.agent.results
    assert (command.type, result.status) == (p.SIGN_OUT_COMMAND, "done")
    assert d.state.signed_in_user is None
    [action] = env.call("GET", f"{D}/{d.state.device_id}/deviceActionResults").json()["value"]
    assert (action["actionName"], action["actionState"]) == ("signOutUser", "done")
    with env.db() as s:
        [ended] = service.sessions_of_device(s, d.state.device_id or "")
        assert ended.ended_reason == "admin"
    ends = [e for e in session_audit(env) if e["activity"] == "Sign out"]
    assert any(
        e["details"].get("reason") == "admin" and e["actor"]["type"] == "admin" for e in ends
    )


def test_disable_and_delete_end_sessions(env: Env, fleet: Fleet) -> None:
    d1, d2 = fleet.device("SHARED8"), fleet.device("SHARED9")
    fleet.agent.sign_in(d1, "ann@contoso.com", "ann-password")
    t1 = token(d1)
    env.call("PATCH", f"{U}/ann@contoso.com", json={"accountEnabled": False})
    assert not active(fleet, d1, t1)
    env.call("PATCH", f"{U}/ann@contoso.com", json={"accountEnabled": True})
    assert not active(fleet, d1, t1), "enabling again does not revive an ended session"
    fleet.agent.sign_in(d2, "bob@contoso.com", "bob-password")
    t2 = token(d2)
    assert env.call("DELETE", f"{U}/bob@contoso.com").status_code == 204
    assert not active(fleet, d2, t2)
    assert refusal(fleet, d2, "bob@contoso.com", "bob-password").code == "invalidCredentials"


def test_expired_session_is_inactive(env: Env, fleet: Fleet) -> None:
    d = fleet.device("SHARED10")
    fleet.agent.sign_in(d, "ann@contoso.com", "ann-password")
    tok = token(d)
    past(env, DeviceSession.expires_at, env.settings.session_hours * 3600 + 1)
    assert not active(fleet, d, tok)
    with env.db() as s:
        assert service.end_expired_sessions(s) == 1
        [row] = service.sessions_of_device(s, d.state.device_id or "")
        assert row.ended_reason == "expired"


def test_users_logged_on_and_devices_of_user(env: Env, fleet: Fleet) -> None:
    d1, d2, d3 = fleet.device("SHARED11"), fleet.device("SHARED12"), fleet.device("SHARED13")
    fleet.agent.sign_in(d1, "ann@contoso.com", "ann-password")
    clock.advance(60)
    fleet.agent.sign_in(d1, "bob@contoso.com", "bob-password")
    fleet.agent.sign_in(d2, "ann@contoso.com", "ann-password")
    ann = env.call("GET", f"{U}/ann@contoso.com").json()["id"]
    bob = env.call("GET", f"{U}/bob@contoso.com").json()["id"]

    got = env.call("GET", f"{D}/{d1.state.device_id}").json()["usersLoggedOn"]
    assert [u["userId"] for u in got] == [bob, ann]
    assert all(u["lastLogOnDateTime"].endswith("Z") for u in got)
    assert env.call("GET", f"{D}/{d3.state.device_id}").json()["usersLoggedOn"] == []
    listed = {x["id"]: x for x in env.call("GET", D).json()["value"]}
    assert [u["userId"] for u in listed[d2.state.device_id or ""]["usersLoggedOn"]] == [ann]

    for key in (ann, "ann@contoso.com", "ANN@contoso.com"):
        r = env.call("GET", f"{U}/{key}/managedDevices")
        assert r.status_code == 200, r.text
        assert {x["id"] for x in r.json()["value"]} == {d1.state.device_id, d2.state.device_id}
    assert env.call("GET", f"{U}/nobody@contoso.com/managedDevices").status_code == 404

    # A scoped admin sees only the devices in its scope.
    tag = env.tag("Hall B")
    with env.db() as s:
        # A device takes its profile's tags; here one device is moved to another scope.
        access.set_tags(
            s, ManagedDevice, d2.state.device_id or "", access.cli_actor(), "devices.read", [tag]
        )
    scoped = env.admin("Help Desk Operator", tags=["Hall B"], email="hallb@example.com")
    r = env.call("GET", f"{U}/ann@contoso.com/managedDevices", token=scoped)
    assert [x["id"] for x in r.json()["value"]] == [d2.state.device_id]
    with env.db() as s:
        admin = s.scalars(select(Admin).where(Admin.email == "hallb@example.com")).one()
        actor = access.actor_for_admin(s, admin, None)
        history = service.sessions_of_user(s, actor, ann)
        assert [h.device_id for h in history] == [d2.state.device_id]
        full = service.sessions_of_user(s, access.cli_actor(), ann)
        assert [h.device_id for h in full] == [d2.state.device_id, d1.state.device_id]
        assert s.scalars(service.devices_of_user(access.cli_actor(), bob)).all()[0].id == (
            d1.state.device_id
        )


def test_agent_cli_sign_in_status_sign_out(
    env: Env, fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from aospmdm.agent.client import AgentClient
    from aospmdm.cli import agent as agent_cli
    from aospmdm.cli import app

    d = fleet.device("SHARED20")
    state_dir = str(d.state_dir)
    monkeypatch.setattr(agent_cli, "AgentClient", lambda: AgentClient(http=env.client))
    runner = CliRunner()
    args = ["agent", "sign-in", "--state-dir", state_dir, "--user", "ann@contoso.com"]
    r = runner.invoke(app, [*args, "--password", "ann-password"])
    assert r.exit_code == 0, r.output
    assert "signed in Ann (ann@contoso.com" in r.stdout and " until 20" in r.stdout
    r = runner.invoke(app, ["agent", "status", "--state-dir", state_dir])
    status = json.loads(r.stdout)
    assert status["signedInUser"]["userPrincipalName"] == "ann@contoso.com"
    tok = token(Device.load(Path(state_dir)))
    assert tok not in r.stdout
    assert active(fleet, Device.load(Path(state_dir)), tok)
    r = runner.invoke(app, [*args, "--password", "wrong-password"])
    assert r.exit_code == 2 and "invalidCredentials" in r.stderr
    r = runner.invoke(app, ["agent", "sign-out", "--state-dir", state_dir])
    assert r.exit_code == 0 and "signed out Ann (ann@contoso.com)" in r.stdout
    assert (
        json.loads(runner.invoke(app, ["agent", "status", "--state-dir", state_dir]).stdout)[
            "signedInUser"
        ]
        is None
    )
    assert not active(fleet, Device.load(Path(state_dir)), tok)


def test_a_sign_out_still_on_its_way_does_not_sign_out_the_next_worker(
    env: Env, fleet: Fleet
) -> None:
    d = fleet.device("SHARED9")
    fleet.agent.sign_in(d, "ann@contoso.com", "ann-password")
    help_desk = env.admin("Help Desk Operator")
    r = env.call("POST", f"{D}/{d.state.device_id}/signOutUser", token=help_desk)
    assert r.status_code == 204
    # Bob signs in before the device's next check-in: Ann's sign-out is moot.
    fleet.agent.sign_in(d, "bob@contoso.com", "bob-password")
    tok = token(d)
    fleet.agent.checkin(d)
    assert d.state.signed_in_user is not None, "Bob stays signed in on the device"
    assert active(fleet, d, tok), "and for the apps"
    results = env.call("GET", f"{D}/{d.state.device_id}/deviceActionResults").json()["value"]
    assert [(a["actionName"], a["actionState"]) for a in results] == [("signOutUser", "canceled")]
