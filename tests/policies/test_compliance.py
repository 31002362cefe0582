"""Compliance end to end: judged at check-in and when policies change, grace periods, the
validity period, secureByDefault, the scheduled actions (remote lock recorded, retire list,
mail through a real SMTP server on loopback), and the fleet summary."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Message as MessageHandler
from sqlalchemy import select

from aospmdm.core import clock
from aospmdm.policies import service
from aospmdm.policies.models import ComplianceAction, OutboxMail
from tests.conftest import Env
from tests.policies.fleet import (
    COMPLIANCE,
    COMPLIANCE_TYPE,
    LOCKED,
    add,
    assign,
    check_in,
    create,
    device,
    group,
    managed,
    ready,
    statuses,
)
from tests.servers import free_port

HOUR = 3600


def policy(
    env: Env, actions: list[dict[str, Any]] | None = None, **settings: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"@odata.type": COMPLIANCE_TYPE, "displayName": "Baseline", **settings}
    if actions is not None:
        body["scheduledActionsForRule"] = [
            {"ruleName": "PasswordRequired", "scheduledActionConfigurations": actions}
        ]
    return create(env, COMPLIANCE, body)


def state(env: Env, d: Any) -> str:
    return str(managed(env, d)["complianceState"])


def actions(env: Env, device_id: str) -> list[tuple[str, str]]:
    with env.db() as s:
        return [
            (a.action_type, a.state)
            for a in s.scalars(
                select(ComplianceAction)
                .where(ComplianceAction.device_id == device_id)
                .order_by(ComplianceAction.created_at, ComplianceAction.action_type)
            )
        ]


def test_unreported_facts_are_unknown_and_set_no_action_in_motion(env: Env) -> None:
    secret = ready(env)
    a = device(env, secret)  # enrolled, but never reported its screen lock
    g = group(env, "line", [a])
    p = policy(
        env,
        [{"actionType": "remoteLock", "gracePeriodHours": 0}],
        passwordRequired=True,
        storageRequireEncryption=True,
    )
    assign(env, COMPLIANCE, p["id"], [g])
    assert state(env, a) == "unknown"
    row = statuses(env, COMPLIANCE, p["id"])[a.device_id]
    assert row["status"] == "unknown"
    by = {s["setting"]: s["state"] for s in row["settingStates"]}
    assert by == {"passwordRequired": "unknown", "storageRequireEncryption": "compliant"}
    assert actions(env, a.device_id) == []
    check_in(a, facts={"passcode_type": "none", "passcode_length": 0})
    assert state(env, a) == "noncompliant"
    assert actions(env, a.device_id) == [("remoteLock", "pending")]


def test_judged_at_check_in_and_when_the_policy_changes(env: Env) -> None:
    secret = ready(env)
    a = device(env, secret)
    g = group(env, "line", [a])
    check_in(a, facts=LOCKED)
    assert state(env, a) == "compliant"
    p = policy(env, passwordRequired=True, passwordMinimumLength=6, osMinimumVersion="12")
    assign(env, COMPLIANCE, p["id"], [g])
    # Judged at once from the stored facts: Android 11 is below 12.
    assert state(env, a) == "noncompliant"
    row = statuses(env, COMPLIANCE, p["id"])[a.device_id]
    assert row["status"] == "nonCompliant"
    failed = {s["setting"]: s for s in row["settingStates"] if s["state"] == "nonCompliant"}
    assert set(failed) == {"osMinimumVersion"}
    assert "older than the minimum 12" in failed["osMinimumVersion"]["reason"]
    r = env.call("PATCH", f"{COMPLIANCE}/{p['id']}", json={"osMinimumVersion": "11"})
    assert r.status_code == 200
    assert state(env, a) == "compliant"
    # The device's facts change at a check-in: judged again.
    check_in(a, facts={"passcode_type": "none", "passcode_length": 0})
    assert state(env, a) == "noncompliant"
    tab = env.call(
        "GET", f"/beta/deviceManagement/managedDevices/{a.device_id}/deviceCompliancePolicyStates"
    ).json()["value"]
    assert [t["state"] for t in tab] == ["nonCompliant"]
    assert {s["setting"] for s in tab[0]["settingStates"] if s["state"] == "nonCompliant"} == {
        "passwordRequired",
        "passwordMinimumLength",
    }
    # Unassigned: the policy no longer applies, and the device is compliant by default.
    assign(env, COMPLIANCE, p["id"], [])
    assert state(env, a) == "compliant"
    assert statuses(env, COMPLIANCE, p["id"]) == {}


def test_grace_period_then_noncompliant_then_actions(env: Env) -> None:
    secret = ready(env)
    a = device(env, secret)
    g = group(env, "line", [a])
    p = policy(
        env,
        [
            {"actionType": "block", "gracePeriodHours": 24},
            {"actionType": "retire", "gracePeriodHours": 72},
            {"actionType": "remoteLock", "gracePeriodHours": 1},
        ],
        storageRequireEncryption=True,
    )
    assign(env, COMPLIANCE, p["id"], [g])
    check_in(a, facts={"is_encrypted": False})
    assert state(env, a) == "inGracePeriod"
    row = statuses(env, COMPLIANCE, p["id"])[a.device_id]
    assert row["status"] == "nonCompliant"
    assert row["complianceGracePeriodExpirationDateTime"] is not None
    assert actions(env, a.device_id) == []
    # The periodic job carries out what came due, without the device checking in.
    clock.advance(2 * HOUR)
    with env.db() as s:
        service.compliance_job(s)
    assert state(env, a) == "inGracePeriod"
    assert actions(env, a.device_id) == [("remoteLock", "pending")]
    with env.db() as s:
        assert [r.device_id for r in service.pending_locks(s)] == [a.device_id]
    clock.advance(23 * HOUR)
    with env.db() as s:
        service.compliance_job(s)
    assert state(env, a) == "noncompliant"
    clock.advance(48 * HOUR)
    check_in(a, facts={"is_encrypted": False})
    assert sorted(actions(env, a.device_id)) == [("remoteLock", "pending"), ("retire", "pending")]
    retire = env.call("GET", "/beta/deviceManagement/noncompliantDevicesToRetire").json()["value"]
    assert [r["deviceId"] for r in retire] == [a.device_id]
    # Each action runs once per noncompliance.
    check_in(a, facts={"is_encrypted": False})
    assert len(actions(env, a.device_id)) == 2
    # Compliant again: off the retire list, the lock no longer owed.
    check_in(a, facts={"is_encrypted": True})
    assert state(env, a) == "compliant"
    assert sorted(actions(env, a.device_id)) == [("remoteLock", "canceled"), ("retire", "canceled")]
    assert (
        env.call("GET", "/beta/deviceManagement/noncompliantDevicesToRetire").json()["value"] == []
    )
    audit = env.audit(**{"$filter": "actor/type eq 'system'"})
    assert {e["activity"] for e in audit} == {
        "Compliance action: remote lock",
        "Compliance action: add to retire list",
    }


def test_status_older_than_the_validity_period_is_noncompliant(env: Env) -> None:
    secret = ready(env)
    a, b = device(env, secret), device(env, secret)
    check_in(a)
    check_in(b)
    r = env.call(
        "PATCH",
        "/beta/deviceManagement",
        json={"settings": {"deviceComplianceCheckinThresholdDays": 10}},
    )
    assert (
        r.status_code == 200 and r.json()["settings"]["deviceComplianceCheckinThresholdDays"] == 10
    )
    clock.advance(9 * 24 * HOUR)
    check_in(b)
    clock.advance(2 * 24 * HOUR)
    with env.db() as s:
        service.compliance_job(s)
    assert state(env, a) == "noncompliant" and state(env, b) == "compliant"
    check_in(a)
    assert state(env, a) == "compliant"


def test_secure_by_default_marks_devices_without_a_policy_noncompliant(env: Env) -> None:
    secret = ready(env)
    a, b = device(env, secret), device(env, secret)
    g = group(env, "line", [a])
    check_in(a)
    check_in(b)
    p = policy(env, securityBlockJailbrokenDevices=True)
    assign(env, COMPLIANCE, p["id"], [g])
    got = env.call("GET", "/beta/deviceManagement").json()
    assert got["settings"] == {
        "deviceComplianceCheckinThresholdDays": 30,
        "isScheduledActionEnabled": True,
        "secureByDefault": False,
    }
    r = env.call("PATCH", "/beta/deviceManagement", json={"settings": {"secureByDefault": True}})
    assert r.status_code == 200
    assert state(env, a) == "compliant" and state(env, b) == "noncompliant"
    summary = env.call(
        "GET", "/beta/deviceManagement/deviceCompliancePolicyDeviceStateSummary"
    ).json()
    assert summary["compliantDeviceCount"] == 1 and summary["nonCompliantDeviceCount"] == 1
    assert env.audit(**{"$filter": "activity eq 'Update compliance policy settings'"})


@pytest.mark.parametrize(
    "body",
    [
        {"settings": {"deviceComplianceCheckinThresholdDays": 0}},
        {"settings": {"deviceComplianceCheckinThresholdDays": 121}},
        {"settings": {"secureByDefault": "yes"}},
        {"settings": {"unknownSetting": True}},
        {},
    ],
)
def test_tenant_settings_validation(env: Env, body: dict[str, Any]) -> None:
    r = env.call("PATCH", "/beta/deviceManagement", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["target"].startswith("settings")
    got = env.call("GET", "/beta/deviceManagement").json()["settings"]
    assert got["deviceComplianceCheckinThresholdDays"] == 30 and got["secureByDefault"] is False
    reader = env.admin("Read Only Operator")
    assert env.call("GET", "/beta/deviceManagement", token=reader).status_code == 200
    assert (
        env.call("PATCH", "/beta/deviceManagement", token=reader, json={"settings": {}}).status_code
        == 403
    )


@pytest.fixture
def smtp() -> Iterator[MessageCollector]:
    handler = MessageCollector()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        handler.port = controller.port
        yield handler
    finally:
        controller.stop()


class MessageCollector(MessageHandler):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[Any] = []
        self.port = 0

    def handle_message(self, message: Any) -> None:
        self.messages.append(message)


def test_notification_goes_through_the_outbox_by_smtp(env: Env, smtp: MessageCollector) -> None:
    secret = ready(env)
    a = device(env, secret)
    check_in(a, facts={"passcode_type": "none", "passcode_length": 0})
    g = group(env, "line", [a])
    p = policy(
        env,
        [
            {
                "actionType": "notification",
                "gracePeriodHours": 0,
                "notificationMessageCCList": ["ops@example.com", "lead@example.com"],
            }
        ],
        passwordRequired=True,
    )
    assign(env, COMPLIANCE, p["id"], [g])
    with env.db() as s:
        mails = list(s.scalars(select(OutboxMail)))
        assert len(mails) == 1 and mails[0].sent_at is None
    # Not configured: the mail waits.
    assert service.send_outbox(env.sessions, env.settings) == 0
    env.settings.smtp_host = "127.0.0.1"
    env.settings.smtp_port = smtp.port
    assert service.send_outbox(env.sessions, env.settings) == 1
    [msg] = smtp.messages
    assert msg["To"] == "ops@example.com, lead@example.com"
    assert "is not compliant with Baseline" in msg["Subject"]
    assert "passwordRequired" in msg.get_payload()
    assert service.send_outbox(env.sessions, env.settings) == 0, "sent once"
    with env.db() as s:
        assert all(m.sent_at is not None for m in s.scalars(select(OutboxMail)))


def test_an_unreachable_smtp_server_is_retried(env: Env) -> None:
    secret = ready(env)
    a = device(env, secret)
    check_in(a, facts={"passcode_type": "none", "passcode_length": 0})
    g = group(env, "line", [a])
    p = policy(
        env,
        [{"actionType": "notification", "notificationMessageCCList": ["ops@example.com"]}],
        passwordRequired=True,
    )
    assign(env, COMPLIANCE, p["id"], [g])
    env.settings.smtp_host = "127.0.0.1"
    env.settings.smtp_port = free_port()  # nothing listens
    assert service.send_outbox(env.sessions, env.settings) == 0
    with env.db() as s:
        [mail] = s.scalars(select(OutboxMail))
        assert mail.attempts == 1 and mail.sent_at is None and "connect" in (mail.last_error or "")
        assert mail.claimed_until is None, "free for the next run"
    assert service.send_outbox(env.sessions, env.settings) == 0
    with env.db() as s:
        assert s.scalars(select(OutboxMail)).one().attempts == 2


def test_group_changes_by_hand_are_judged_at_once(env: Env) -> None:
    secret = ready(env)
    a = device(env, secret)
    check_in(a, facts={"is_rooted": True})
    g = group(env, "line", [])
    p = policy(env, securityBlockJailbrokenDevices=True)
    assign(env, COMPLIANCE, p["id"], [g])
    assert state(env, a) == "compliant"
    add(env, g, a)
    assert state(env, a) == "noncompliant"
    r = env.call("DELETE", f"/beta/groups/{g}/members/{a.device_id}/$ref")
    assert r.status_code == 204
    assert state(env, a) == "compliant"
    add(env, g, a)
    assert state(env, a) == "noncompliant"
    assert env.call("DELETE", f"/beta/groups/{g}").status_code == 204
    assert state(env, a) == "compliant"
    assert statuses(env, COMPLIANCE, p["id"]) == {}
