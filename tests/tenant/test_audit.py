"""The audit log: every change, in the change's transaction; refusals too; append-only."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from aospmdm.core import clock
from tests.conftest import Env

DM = "/beta/deviceManagement"


def test_changes_are_recorded_with_actor_target_time_and_result(env: Env) -> None:
    tag = env.tag("Warehouse")
    event = env.audit(**{"$filter": "activity eq 'Create scope tag'"})[0]
    assert event["actor"]["userPrincipalName"] == "root@example.com"
    assert event["actor"]["type"] == "admin"
    assert event["resources"] == [
        {"displayName": "Warehouse", "type": "roleScopeTag", "resourceId": tag}
    ]
    assert event["activityResult"] == "success"
    assert event["activityDateTime"].endswith("Z")
    assert env.call("GET", f"{DM}/auditEvents/{event['id']}").json() == event


def test_a_failed_change_leaves_no_audit_record(env: Env) -> None:
    env.tag("Twice")
    before = len(env.audit())
    r = env.call("POST", f"{DM}/roleScopeTags", json={"displayName": "Twice"})
    assert r.status_code == 409
    assert len(env.audit()) == before, "no change, so no record of a change"


def test_refused_requests_are_audited(env: Env) -> None:
    readonly = env.admin("Read Only Operator")
    assert (
        env.call(
            "POST", f"{DM}/roleScopeTags", token=readonly, json={"displayName": "x"}
        ).status_code
        == 403
    )
    assert env.call("GET", f"{DM}/roleScopeTags", token="amdm_stolen").status_code == 401
    refused = env.audit(**{"$filter": "activityOperationType eq 'Refused'"})
    by_actor = {(e["actor"]["type"], e["activity"]) for e in refused}
    assert ("admin", f"POST {DM}/roleScopeTags") in by_actor
    assert ("anonymous", f"GET {DM}/roleScopeTags") in by_actor
    assert all(e["activityResult"] == "failure" for e in refused)


def test_filter_by_time_actor_and_category_and_top(env: Env) -> None:
    env.tag("early")
    clock.advance(3600)
    mark = clock.iso(clock.now())
    clock.advance(60)
    env.tag("late")
    env.call("POST", f"/beta/organization/{env.org_id()}/setMobileDeviceManagementAuthority")
    late = env.audit(**{"$filter": f"activityDateTime ge {mark}"})
    assert {e["activity"] for e in late} == {"Create scope tag", "Set MDM authority"}
    early = env.audit(**{"$filter": f"activityDateTime lt {mark} and category eq 'Role'"})
    assert "early" in {e["resources"][0]["displayName"] for e in early if e["resources"]}
    assert all(e["category"] == "Role" for e in early)
    mine = env.audit(**{"$filter": "actor/userPrincipalName eq 'root@example.com'"})
    assert mine and all(e["actor"]["userPrincipalName"] == "root@example.com" for e in mine)
    cli = env.audit(**{"$filter": "startswith(actor/userPrincipalName, 'cli:')"})
    assert cli and all(e["actor"]["type"] == "cli" for e in cli)
    r = env.call("GET", f"{DM}/auditEvents", params={"$top": "1"})
    page = r.json()
    assert len(page["value"]) == 1 and "@odata.nextLink" in page
    assert page["value"][0]["activity"] == "Set MDM authority", "newest first"
    nxt = env.call("GET", page["@odata.nextLink"]).json()
    assert nxt["value"][0]["id"] != page["value"][0]["id"]


def test_bad_filters_are_400_naming_the_problem(env: Env) -> None:
    for bad, needle in [
        ("nosuch eq 'x'", "nosuch"),
        ("category eq", "ends too early"),
        ("activityDateTime ge 'yesterday'", "date"),
        ("category eq 'x' or", "ends too early"),
        ("category xx 'x'", "operator"),
        ("category eq 'x')", "unexpected"),
        ("(category eq 'x'", "expected ')'"),
        ("category eq 5", "quoted string"),
    ]:
        r = env.call("GET", f"{DM}/auditEvents", params={"$filter": bad})
        assert r.status_code == 400, (bad, r.text)
        err = r.json()["error"]
        assert err["target"] == "$filter"
        assert needle in err["message"], (bad, err["message"])


def test_no_api_edits_or_deletes_events(env: Env) -> None:
    event = env.audit()[0]
    for method in ("PATCH", "PUT", "DELETE"):
        r = env.call(method, f"{DM}/auditEvents/{event['id']}", json={})
        assert r.status_code == 405, method
    assert env.call("GET", f"{DM}/auditEvents/{event['id']}").status_code == 200


def test_the_database_itself_refuses_to_change_the_log(env: Env) -> None:
    event = env.audit()[0]
    for sql in ("UPDATE audit_event SET actor = 'mallory'", "DELETE FROM audit_event"):
        with pytest.raises(DBAPIError, match="append-only"), env.db() as s:
            s.execute(text(sql))
    assert env.call("GET", f"{DM}/auditEvents/{event['id']}").json() == event
