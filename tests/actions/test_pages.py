"""Remote actions in the console through HTTP forms: the device page's buttons and their
confirmations (Wipe asks "Yes"), refusals shown in words, the Action status panel with Cancel
and the temporary passcode by role, bulk actions from the device list, the Device actions
report, and RBAC."""

from __future__ import annotations

import html
import re
from typing import Any

import httpx
import pytest

from tests.conftest import PASSWORD, Env
from tests.policies.fleet import CONFIGS, RESTRICTIONS_TYPE, assign, create, device, group, ready
from tests.sync.device import Device
from tests.web.test_sign_in import csrf, sign_in

BASE = "/console/devices"
REPORT = "/console/devices/actions"
DEVICES = "/beta/deviceManagement/managedDevices"
BUTTONS = ("wipe", "delete", "remoteLock", "resetPasscode", "rebootNow")


@pytest.fixture
def secret(env: Env) -> str:
    """A ready tenant (its enrollment secret), the full admin signed in to the console."""
    s = ready(env)
    assert sign_in(env.client, "root@example.com", PASSWORD).status_code == 303
    return s


def page(env: Env, d: Device) -> str:
    r = env.client.get(f"{BASE}/{d.device_id}")
    assert r.status_code == 200, r.text
    return r.text


def post(env: Env, path: str, **fields: Any) -> httpx.Response:
    response: httpx.Response = env.client.post(
        path, data={"csrf_token": csrf(env.client, BASE), **fields}, follow_redirects=False
    )
    return response


def act(env: Env, d: Device, name: str, **fields: Any) -> httpx.Response:
    return post(env, f"{BASE}/{d.device_id}/actions/{name}", **fields)


def history(env: Env, d: Device) -> list[dict[str, Any]]:
    r = env.call("GET", f"{DEVICES}/{d.device_id}/deviceActionResults")
    assert r.status_code == 200, r.text
    return list(r.json()["value"])


def passcode_policy(env: Env, *members: Device) -> None:
    g = group(env, "locked", list(members))
    p = create(
        env,
        CONFIGS,
        {
            "@odata.type": RESTRICTIONS_TYPE,
            "displayName": "PIN",
            "passwordRequiredType": "numeric",
            "passwordMinimumLength": 6,
        },
    )
    assign(env, CONFIGS, p["id"], [g])


def status_rows(text: str) -> list[tuple[str, str]]:
    table = text.split('id="action-status"')[1].split("</table>")[0]
    return re.findall(r'<tr data-action="([^"]+)" data-state="([^"]+)">', table)


def test_buttons_confirmation_and_restart(env: Env, secret: str) -> None:
    d = device(env, secret)
    text = page(env, d)
    for name in BUTTONS:
        assert f'id="action-{name}"' in text, name
    assert "No actions on this device yet." in text

    confirm = env.client.get(f"{BASE}/{d.device_id}/actions/rebootNow")
    assert confirm.status_code == 200
    assert "Restart" in confirm.text and 'name="csrf_token"' in confirm.text
    # No: nothing queued.
    r = act(env, d, "rebootNow", answer="no")
    assert r.status_code == 303 and r.headers["location"] == f"{BASE}/{d.device_id}"
    assert history(env, d) == []
    # Yes: queued, and the device page says so.
    r = act(env, d, "rebootNow", answer="yes")
    assert r.status_code == 303, r.text
    follow = env.client.get(r.headers["location"])
    assert "Restart requested for" in follow.text
    assert status_rows(follow.text) == [("rebootNow", "pending")]
    assert "root@example.com" in follow.text.split('id="action-status"')[1]
    # Without the CSRF token nothing happens.
    bad = env.client.post(
        f"{BASE}/{d.device_id}/actions/rebootNow", data={"answer": "yes"}, follow_redirects=False
    )
    assert bad.status_code == 403
    assert len(history(env, d)) == 1
    assert env.client.get(f"{BASE}/{d.device_id}/actions/format").status_code == 404


def test_wipe_needs_yes_typed(env: Env, secret: str) -> None:
    d = device(env, secret)
    confirm = env.client.get(f"{BASE}/{d.device_id}/actions/wipe")
    assert 'name="confirm_text"' in confirm.text
    r = act(env, d, "wipe", answer="yes", confirm_text="ok")
    assert r.status_code == 400
    assert 'id="confirm-error"' in r.text and "Type &#34;Yes&#34;" in r.text
    assert history(env, d) == []
    r = act(env, d, "wipe", answer="yes", confirm_text="Yes")
    assert r.status_code == 303, r.text
    assert [h["actionName"] for h in history(env, d)] == ["wipe"]
    text = page(env, d)
    assert "Wipe pending" in text and status_rows(text) == [("wipe", "pending")]


def test_refusal_is_shown_in_words(env: Env, secret: str) -> None:
    d = device(env, secret)
    for name in ("remoteLock", "resetPasscode"):
        r = act(env, d, name, answer="yes")
        assert r.status_code == 409, name
        assert 'class="error"' in r.text and "needs a passcode policy" in r.text, name
    assert history(env, d) == []
    # A pending wipe blocks other actions, said on the page too.
    assert act(env, d, "wipe", answer="yes", confirm_text="Yes").status_code == 303
    r = act(env, d, "rebootNow", answer="yes")
    assert r.status_code == 409 and "A wipe is pending" in r.text


def test_lock_reset_passcode_and_passcode_visibility(env: Env, secret: str) -> None:
    d = device(env, secret)
    passcode_policy(env, d)
    assert act(env, d, "remoteLock", answer="yes").status_code == 303
    assert act(env, d, "resetPasscode", answer="yes").status_code == 303
    text = page(env, d)
    assert sorted(status_rows(text)) == [("remoteLock", "pending"), ("resetPasscode", "pending")]
    [code] = re.findall(r'<code class="passcode">(\d+)</code>', text)
    assert len(code) >= 6
    reset = next(h for h in history(env, d) if h["actionName"] == "resetPasscode")
    assert reset["passcode"] == code

    # Help Desk Operator may reset passcodes: sees it, and lock/reset/restart buttons only.
    env.admin("Help Desk Operator", email="helpdesk@example.com")
    env.client.cookies.clear()
    assert sign_in(env.client, "helpdesk@example.com", PASSWORD).status_code == 303
    text = page(env, d)
    assert code in text
    assert 'id="action-remoteLock"' in text and 'id="action-rebootNow"' in text
    assert 'id="action-wipe"' not in text and 'id="action-delete"' not in text
    assert env.client.get(f"{BASE}/{d.device_id}/actions/wipe").status_code == 403
    r = act(env, d, "wipe", answer="yes", confirm_text="Yes")
    assert r.status_code == 403 and "devices.wipe" in r.text

    # A reader sees the history but not the passcode.
    env.admin("Read Only Operator", email="reader@example.com")
    env.client.cookies.clear()
    assert sign_in(env.client, "reader@example.com", PASSWORD).status_code == 303
    text = page(env, d)
    assert len(status_rows(text)) == 2
    assert code not in text and 'class="passcode"' not in text


def test_cancel_a_pending_action(env: Env, secret: str) -> None:
    d = device(env, secret)
    assert act(env, d, "wipe", answer="yes", confirm_text="Yes").status_code == 303
    [h] = history(env, d)
    text = page(env, d)
    assert f"/actions/{h['id']}/cancel" in text
    r = post(env, f"{BASE}/{d.device_id}/actions/{h['id']}/cancel")
    assert r.status_code == 303
    follow = env.client.get(r.headers["location"])
    assert "Wipe canceled." in follow.text
    assert status_rows(follow.text) == [("wipe", "canceled")]
    assert "/cancel" not in follow.text.split('id="action-status"')[1]
    assert "Wipe pending" not in follow.text
    # Canceling again: said on the page, nothing changes.
    again = post(env, f"{BASE}/{d.device_id}/actions/{h['id']}/cancel")
    follow = env.client.get(again.headers["location"])
    assert "Not canceled: Only a pending action can be canceled" in html.unescape(follow.text)


def test_delete_leaves_the_list(env: Env, secret: str) -> None:
    d = device(env, secret)
    r = act(env, d, "delete", answer="yes")
    assert r.status_code == 303 and r.headers["location"].startswith(f"{BASE}?notice=")
    assert env.client.get(f"{BASE}/{d.device_id}").status_code == 404
    # The report still lists it, as removed.
    report = env.client.get(REPORT, params={"action": "delete"})
    assert report.status_code == 200
    assert "(removed)" in report.text and 'data-action="delete"' in report.text


def test_bulk_actions_from_the_device_list(env: Env, secret: str) -> None:
    locked, plain = device(env, secret), device(env, secret)
    passcode_policy(env, locked)
    listing = env.client.get(BASE)
    assert 'id="bulk-actions"' in listing.text
    assert listing.text.count('form="bulk-actions"') == 2
    ids = [locked.device_id, plain.device_id]
    # The first post asks; nothing is queued yet.
    r = post(env, f"{BASE}/actions/bulk", action="remoteLock", device_id=ids)
    assert r.status_code == 200 and 'id="action-question"' in r.text
    assert "these 2 device(s)" in r.text
    assert history(env, locked) == [] and history(env, plain) == []
    r = post(env, f"{BASE}/actions/bulk", action="remoteLock", device_id=ids, answer="yes")
    assert r.status_code == 200
    outcomes = re.findall(r'<tr data-ok="(yes|no)">', r.text)
    assert outcomes == ["yes", "no"]
    assert "needs a passcode policy" in r.text
    assert [h["actionName"] for h in history(env, locked)] == ["remoteLock"]
    assert history(env, plain) == []
    # Wipe in bulk asks "Yes" too.
    r = post(env, f"{BASE}/actions/bulk", action="wipe", device_id=ids, answer="yes")
    assert r.status_code == 400 and 'id="confirm-error"' in r.text
    r = post(
        env, f"{BASE}/actions/bulk", action="wipe", device_id=ids, answer="yes", confirm_text="Yes"
    )
    assert re.findall(r'<tr data-ok="(yes|no)">', r.text) == ["yes", "yes"]
    # No devices chosen, or no action: said in words.
    r = post(env, f"{BASE}/actions/bulk", action="rebootNow")
    assert r.status_code == 400 and "Select one or more devices" in r.text
    r = post(env, f"{BASE}/actions/bulk", action="", device_id=ids)
    assert r.status_code == 400 and "Choose an action." in r.text


def test_report_lists_newest_first_and_filters(env: Env, secret: str) -> None:
    a, b = device(env, secret), device(env, secret)
    assert act(env, a, "rebootNow", answer="yes").status_code == 303
    assert act(env, b, "wipe", answer="yes", confirm_text="Yes").status_code == 303
    [h] = history(env, b)
    assert post(env, f"{BASE}/{b.device_id}/actions/{h['id']}/cancel").status_code == 303
    r = env.client.get(REPORT)
    assert r.status_code == 200
    rows = re.findall(r'<tr data-action="([^"]+)" data-state="([^"]+)">', r.text)
    assert rows == [("wipe", "canceled"), ("rebootNow", "pending")]
    r = env.client.get(REPORT, params={"state": "pending"})
    assert re.findall(r'<tr data-action="([^"]+)"', r.text) == ["rebootNow"]
    r = env.client.get(REPORT, params={"action": "wipe", "state": "pending"})
    assert "No device actions match these filters." in r.text
    assert 'href="/console/devices/actions"' in env.client.get(BASE).text


def test_read_only_admin_sees_no_buttons_and_cannot_post(env: Env, secret: str) -> None:
    d = device(env, secret)
    assert act(env, d, "rebootNow", answer="yes").status_code == 303
    [h] = history(env, d)
    env.admin("Read Only Operator", email="reader@example.com")
    env.client.cookies.clear()
    assert sign_in(env.client, "reader@example.com", PASSWORD).status_code == 303

    text = page(env, d)
    assert 'id="action-buttons"' not in text
    assert 'method="post"' not in text.split("</header>")[1]
    assert status_rows(text) == [("rebootNow", "pending")]
    listing = env.client.get(BASE)
    assert 'id="bulk-actions"' not in listing.text and 'type="checkbox"' not in listing.text
    assert env.client.get(REPORT).status_code == 200
    for name in BUTTONS:
        assert env.client.get(f"{BASE}/{d.device_id}/actions/{name}").status_code == 403, name
        r = act(env, d, name, answer="yes", confirm_text="Yes")
        assert r.status_code == 403, name
    r = post(env, f"{BASE}/{d.device_id}/actions/{h['id']}/cancel")
    assert r.status_code == 403
    r = post(env, f"{BASE}/actions/bulk", action="rebootNow", device_id=[d.device_id], answer="yes")
    assert r.status_code == 403
    assert [(x["actionName"], x["actionState"]) for x in history(env, d)] == [
        ("rebootNow", "pending")
    ]
