"""Roles, role assignments and scope tags with Intune semantics (SPEC.md §2)."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aospmdm.core import permissions
from aospmdm.core.permissions import builtin_role_id, builtin_role_permissions
from tests.conftest import Env

DM = "/beta/deviceManagement"
_n = itertools.count()


def role_body(name: str, perms: list[str], tags: list[str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "displayName": name,
        "rolePermissions": [{"resourceActions": [{"allowedResourceActions": perms}]}],
    }
    if tags is not None:
        body["roleScopeTagIds"] = tags
    return body


def roles_by_name(env: Env, token: str = "full") -> dict[str, dict[str, Any]]:
    r = env.call("GET", f"{DM}/roleDefinitions", token=token)
    assert r.status_code == 200, r.text
    return {role["displayName"]: role for role in r.json()["value"]}


def allowed(role: dict[str, Any]) -> set[str]:
    return set(role["rolePermissions"][0]["resourceActions"][0]["allowedResourceActions"])


def test_built_in_roles_follow_the_permission_registry(env: Env) -> None:
    roles = roles_by_name(env)
    assert {
        "Intune Administrator",
        "Policy and Profile Manager",
        "Help Desk Operator",
        "Read Only Operator",
    } <= set(roles)
    every = {p.name for p in permissions.all_permissions()}
    assert allowed(roles["Intune Administrator"]) == every
    reads = {p for p in every if p.endswith(".read")}
    assert allowed(roles["Read Only Operator"]) == reads
    assert "roles.write" not in allowed(roles["Help Desk Operator"])
    for name, role in roles.items():
        assert role["isBuiltIn"] is True
        assert role["id"] == builtin_role_id(name), "built-in ids are the same everywhere"


def test_a_permission_registered_later_reaches_the_right_built_in_roles() -> None:
    perm = permissions.Permission(
        "widgets.reboot", "test only", roles=frozenset({permissions.HELP_DESK_OPERATOR})
    )
    permissions.register(perm)
    try:
        assert "widgets.reboot" in builtin_role_permissions(permissions.HELP_DESK_OPERATOR)
        assert "widgets.reboot" in builtin_role_permissions(permissions.INTUNE_ADMINISTRATOR)
        assert "widgets.reboot" not in builtin_role_permissions(permissions.READ_ONLY_OPERATOR)
    finally:
        permissions._registry.pop("widgets.reboot")


def test_custom_role_round_trip_accepts_what_graph_returned(env: Env) -> None:
    r = env.call("POST", f"{DM}/roleDefinitions", json=role_body("Auditors", ["audit.read"]))
    assert r.status_code == 201, r.text
    role = r.json()
    assert role["isBuiltIn"] is False
    assert role["roleScopeTagIds"] == ["0"], "an unscoped creator's object gets Default"
    # An object read from the API can be sent back: read-only properties and annotations pass.
    role["displayName"] = "Auditors (EU)"
    r = env.call("PATCH", f"{DM}/roleDefinitions/{role['id']}", json=role)
    assert r.status_code == 200, r.text
    assert r.json()["displayName"] == "Auditors (EU)"
    assert env.call("GET", f"{DM}/roleDefinitions/{role['id']}").json()["displayName"] == (
        "Auditors (EU)"
    )


def test_custom_role_refusals_name_the_problem(env: Env) -> None:
    r = env.call("POST", f"{DM}/roleDefinitions", json=role_body("Bad", ["devices.fly"]))
    assert r.status_code == 400
    assert r.json()["error"]["target"] == "rolePermissions"
    assert "devices.fly" in r.json()["error"]["message"]
    r = env.call("POST", f"{DM}/roleDefinitions", json=role_body("Empty", []))
    assert r.status_code == 400
    env.call("POST", f"{DM}/roleDefinitions", json=role_body("Twice", ["audit.read"]))
    r = env.call("POST", f"{DM}/roleDefinitions", json=role_body("twice", ["audit.read"]))
    assert r.status_code == 409
    body = role_body("Typed", ["audit.read"]) | {"@odata.type": "#microsoft.graph.user"}
    r = env.call("POST", f"{DM}/roleDefinitions", json=body)
    assert r.status_code == 400
    assert r.json()["error"]["target"] == "@odata.type"
    body = role_body("Typed", ["audit.read"]) | {
        "@odata.type": "#microsoft.graph.deviceAndAppManagementRoleDefinition"
    }
    assert env.call("POST", f"{DM}/roleDefinitions", json=body).status_code == 201
    r = env.call("POST", f"{DM}/roleDefinitions", json=role_body("X", ["audit.read"]) | {"x": 1})
    assert r.status_code == 400
    assert r.json()["error"]["target"] == "x"
    names = set(roles_by_name(env))
    assert "Bad" not in names and "Empty" not in names and "X" not in names


def test_built_in_roles_cannot_change(env: Env) -> None:
    rid = builtin_role_id("Help Desk Operator")
    r = env.call("PATCH", f"{DM}/roleDefinitions/{rid}", json={"displayName": "Mine"})
    assert r.status_code == 400
    assert env.call("DELETE", f"{DM}/roleDefinitions/{rid}").status_code == 400
    assert "Help Desk Operator" in roles_by_name(env)


def test_no_privilege_escalation(env: Env) -> None:
    manager = env.custom_admin(["roles.read", "roles.write"])
    r = env.call(
        "POST",
        f"{DM}/roleDefinitions",
        token=manager,
        json=role_body("Sneaky", ["roles.write", "audit.read"]),
    )
    assert r.status_code == 400
    assert "audit.read" in r.json()["error"]["message"]
    r = env.call(
        "POST",
        f"{DM}/roleAssignments",
        token=manager,
        json={
            "displayName": "me as admin",
            "roleDefinitionId": builtin_role_id("Intune Administrator"),
            "members": ["root@example.com"],
        },
    )
    assert r.status_code == 400


def test_role_assignment_grants_and_deleting_it_revokes(env: Env) -> None:
    token = env.custom_admin(["audit.read"])
    assert env.call("GET", "/beta/organization", token=token).status_code == 403
    email = env.call("GET", f"{DM}/roleAssignments").json()["value"][-1][
        "memberUserPrincipalNames"
    ][0]
    r = env.call(
        "POST",
        f"{DM}/roleAssignments",
        json={
            "displayName": "readers",
            "roleDefinitionId": builtin_role_id("Read Only Operator"),
            "members": [email],
        },
    )
    assert r.status_code == 201, r.text
    assert env.call("GET", "/beta/organization", token=token).status_code == 200
    assert env.call("DELETE", f"{DM}/roleAssignments/{r.json()['id']}").status_code == 204
    assert env.call("GET", "/beta/organization", token=token).status_code == 403


def test_last_intune_administrator_assignment_stays(env: Env) -> None:
    rows = env.call("GET", f"{DM}/roleAssignments").json()["value"]
    full = [r for r in rows if r["roleDefinitionId"] == builtin_role_id("Intune Administrator")]
    assert len(full) == 1
    r = env.call("DELETE", f"{DM}/roleAssignments/{full[0]['id']}")
    assert r.status_code == 409
    assert env.call("GET", "/beta/organization").status_code == 200


def test_assignment_refusals(env: Env) -> None:
    base = {"displayName": "x", "roleDefinitionId": builtin_role_id("Read Only Operator")}
    r = env.call("POST", f"{DM}/roleAssignments", json=base | {"members": ["nobody@x.io"]})
    assert r.status_code == 400 and r.json()["error"]["target"] == "members"
    r = env.call("POST", f"{DM}/roleAssignments", json=base | {"members": []})
    assert r.status_code == 400 and r.json()["error"]["target"] == "members"
    r = env.call(
        "POST",
        f"{DM}/roleAssignments",
        json=base | {"members": ["root@example.com"], "roleScopeTagIds": ["nope"]},
    )
    assert r.status_code == 400 and r.json()["error"]["target"] == "roleScopeTagIds"
    r = env.call(
        "POST",
        f"{DM}/roleAssignments",
        json=base | {"members": ["root@example.com"], "roleDefinitionId": "nope"},
    )
    assert r.status_code == 400 and r.json()["error"]["target"] == "roleDefinitionId"


# --- scope tags -------------------------------------------------------------------------


def test_default_tag_exists_and_is_protected(env: Env) -> None:
    tags = env.call("GET", f"{DM}/roleScopeTags").json()["value"]
    default = next(t for t in tags if t["id"] == "0")
    assert default["displayName"] == "Default" and default["isBuiltIn"] is True
    r = env.call("PATCH", f"{DM}/roleScopeTags/0", json={"displayName": "Other"})
    assert r.status_code == 400
    assert env.call("DELETE", f"{DM}/roleScopeTags/0").status_code == 400


def test_tag_in_use_cannot_be_deleted(env: Env) -> None:
    tag = env.tag("Plant 1")
    role = env.call("POST", f"{DM}/roleDefinitions", json=role_body("r", ["audit.read"], [tag]))
    assert role.status_code == 201
    assert env.call("DELETE", f"{DM}/roleScopeTags/{tag}").status_code == 409
    assert env.call("DELETE", f"{DM}/roleDefinitions/{role.json()['id']}").status_code == 204
    assert env.call("DELETE", f"{DM}/roleScopeTags/{tag}").status_code == 204
    assert env.call("GET", f"{DM}/roleScopeTags/{tag}").status_code == 404


def test_duplicate_tag_name_is_a_conflict(env: Env) -> None:
    env.tag("Plant 2")
    r = env.call("POST", f"{DM}/roleScopeTags", json={"displayName": "plant 2"})
    assert r.status_code == 409 and r.json()["error"]["target"] == "displayName"


def test_scoped_admin_sees_only_shared_tags_and_gets_its_tags_on_new_objects(env: Env) -> None:
    a, b = env.tag("A"), env.tag("B")
    perms = ["roles.read", "roles.write", "audit.read"]
    scoped = env.custom_admin(perms, tags=["A"])
    r = env.call(
        "POST", f"{DM}/roleDefinitions", token=scoped, json=role_body("mine", ["audit.read"])
    )
    assert r.status_code == 201, r.text
    mine = r.json()
    assert mine["roleScopeTagIds"] == [a], "a new object gets its creator's tags"
    theirs = env.call(
        "POST", f"{DM}/roleDefinitions", json=role_body("theirs", ["audit.read"], [b])
    ).json()
    visible = {r["displayName"] for r in roles_by_name(env, scoped).values()}
    assert "mine" in visible and "theirs" not in visible
    assert "Intune Administrator" in visible, "built-in roles are visible to every scope"
    assert env.call("GET", f"{DM}/roleDefinitions/{theirs['id']}", token=scoped).status_code == 404
    r = env.call(
        "PATCH", f"{DM}/roleDefinitions/{theirs['id']}", token=scoped, json={"description": "x"}
    )
    assert r.status_code == 404
    # Permission before scope: an admin without the permission gets 403, not 404.
    outsider = env.custom_admin(["audit.read"], tags=["A"])
    r = env.call("GET", f"{DM}/roleDefinitions/{theirs['id']}", token=outsider)
    assert r.status_code == 403


def test_scoped_admin_cannot_remove_the_last_tag_or_use_foreign_tags(env: Env) -> None:
    a, b = env.tag("A"), env.tag("B")
    scoped = env.custom_admin(["roles.read", "roles.write", "audit.read"], tags=["A"])
    role = env.call(
        "POST", f"{DM}/roleDefinitions", token=scoped, json=role_body("m", ["audit.read"])
    ).json()
    path = f"{DM}/roleDefinitions/{role['id']}"
    r = env.call("PATCH", path, token=scoped, json={"roleScopeTagIds": []})
    assert r.status_code == 400 and "last scope tag" in r.json()["error"]["message"]
    r = env.call("PATCH", path, token=scoped, json={"roleScopeTagIds": [b]})
    assert r.status_code == 400 and r.json()["error"]["target"] == "roleScopeTagIds"
    assert env.call("GET", path).json()["roleScopeTagIds"] == [a]
    # An unscoped admin clearing the tags leaves Default, never nothing.
    r = env.call("PATCH", path, json={"roleScopeTagIds": []})
    assert r.status_code == 200 and r.json()["roleScopeTagIds"] == ["0"]


def test_at_most_100_tags_per_object(env: Env) -> None:
    ids = []
    with env.db() as s:
        from aospmdm.tenant import access, service
        from aospmdm.tenant.schemas import ScopeTagCreate

        for i in range(101):
            data = ScopeTagCreate.model_validate({"displayName": f"t{i}"})
            ids.append(service.create_scope_tag(s, access.cli_actor(), data).id)
    r = env.call("POST", f"{DM}/roleDefinitions", json=role_body("many", ["audit.read"], ids))
    assert r.status_code == 400 and "100" in r.json()["error"]["message"]
    r = env.call("POST", f"{DM}/roleDefinitions", json=role_body("many", ["audit.read"], ids[:100]))
    assert r.status_code == 201
    assert len(r.json()["roleScopeTagIds"]) == 100


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    object_tags=st.sets(st.sampled_from(["A", "B", "C", "Default"]), min_size=1),
    admin_tags=st.sets(st.sampled_from(["A", "B", "C", "Default"])),
)
def test_visibility_is_exactly_sharing_a_tag(
    env: Env, object_tags: set[str], admin_tags: set[str]
) -> None:
    """The rule where scope tags meet objects: an admin with tags sees an object iff they
    share one; an admin without tags sees everything."""
    ids = {
        t["displayName"]: t["id"] for t in env.call("GET", f"{DM}/roleScopeTags").json()["value"]
    }
    for name in ("A", "B", "C"):
        if name not in ids:
            ids[name] = env.tag(name)
    role = env.call(
        "POST",
        f"{DM}/roleDefinitions",
        json=role_body(f"obj {next(_n)}", ["audit.read"], [ids[t] for t in object_tags]),
    ).json()
    token = env.custom_admin(["roles.read"], tags=sorted(admin_tags) or None)
    status = env.call("GET", f"{DM}/roleDefinitions/{role['id']}", token=token).status_code
    expect_visible = not admin_tags or bool(object_tags & admin_tags)
    assert status == (200 if expect_visible else 404)


def test_select_and_count_work_on_every_list(env: Env) -> None:
    for path in ("roleDefinitions", "roleAssignments", "roleScopeTags", "auditEvents"):
        r = env.call("GET", f"{DM}/{path}", params={"$select": "displayName", "$count": "true"})
        assert r.status_code == 200, (path, r.text)
        body = r.json()
        assert body["@odata.count"] >= 1
        assert all(set(item) <= {"id", "displayName"} for item in body["value"])


def test_scoped_admin_sees_and_deletes_only_assignments_inside_its_tags(env: Env) -> None:
    a = env.tag("A")
    env.tag("B")
    scoped = env.custom_admin(["roles.read", "roles.write", "audit.read"], tags=["A"])
    mine = env.call(
        "POST",
        f"{DM}/roleAssignments",
        token=scoped,
        json={
            "displayName": "auditors in A",
            "members": ["root@example.com"],
            "roleDefinitionId": env.call(
                "POST",
                f"{DM}/roleDefinitions",
                token=scoped,
                json=role_body("auditor", ["audit.read"]),
            ).json()["id"],
            "roleScopeTagIds": [a],
        },
    )
    assert mine.status_code == 201, mine.text
    listed = env.call("GET", f"{DM}/roleAssignments", token=scoped).json()["value"]
    assert [x["id"] for x in listed if x["displayName"] == "auditors in A"] == [mine.json()["id"]]
    assert all(x["roleScopeTagIds"] and set(x["roleScopeTagIds"]) <= {a} for x in listed)
    full = next(
        x
        for x in env.call("GET", f"{DM}/roleAssignments").json()["value"]
        if x["roleDefinitionId"] == builtin_role_id("Intune Administrator")
    )
    assert env.call("DELETE", f"{DM}/roleAssignments/{full['id']}", token=scoped).status_code == 404
    assert env.call("GET", f"{DM}/roleAssignments/{full['id']}").status_code == 200
    r = env.call("DELETE", f"{DM}/roleAssignments/{mine.json()['id']}", token=scoped)
    assert r.status_code == 204


def test_roles_outside_the_scope_cannot_be_assigned(env: Env) -> None:
    env.tag("A")
    hidden = env.call(
        "POST", f"{DM}/roleDefinitions", json=role_body("hidden", ["audit.read"])
    ).json()
    scoped = env.custom_admin(["roles.read", "roles.write", "audit.read"], tags=["A"])
    a = env.call("GET", f"{DM}/roleScopeTags").json()["value"]
    tag_a = next(t["id"] for t in a if t["displayName"] == "A")
    r = env.call(
        "POST",
        f"{DM}/roleAssignments",
        token=scoped,
        json={
            "displayName": "x",
            "roleDefinitionId": hidden["id"],
            "members": ["root@example.com"],
            "roleScopeTagIds": [tag_a],
        },
    )
    assert r.status_code == 400 and r.json()["error"]["target"] == "roleDefinitionId"


def test_a_permission_held_in_one_tag_cannot_be_granted_in_another(env: Env) -> None:
    a, b = env.tag("A"), env.tag("B")
    token = env.custom_admin(["roles.read", "roles.write", "audit.read"], tags=["A", "B"])
    # This admin holds audit.read through its A+B assignment; a second role gives it
    # organization.read only in A.
    email = env.call("GET", f"{DM}/roleAssignments").json()["value"]
    me = next(x for x in email if x["roleScopeTagIds"] == sorted([a, b]))[
        "memberUserPrincipalNames"
    ][0]
    org_reader = env.call(
        "POST", f"{DM}/roleDefinitions", json=role_body("org reader", ["organization.read"], [a, b])
    ).json()
    r = env.call(
        "POST",
        f"{DM}/roleAssignments",
        json={
            "displayName": "org in A",
            "roleDefinitionId": org_reader["id"],
            "members": [me],
            "roleScopeTagIds": [a],
        },
    )
    assert r.status_code == 201
    body = {"displayName": "x", "roleDefinitionId": org_reader["id"], "members": [me]}
    r = env.call("POST", f"{DM}/roleAssignments", token=token, json=body | {"roleScopeTagIds": [b]})
    assert r.status_code == 400, r.text
    assert "organization.read" in r.json()["error"]["message"]
    r = env.call("POST", f"{DM}/roleAssignments", token=token, json=body | {"roleScopeTagIds": [a]})
    assert r.status_code == 201, r.text


def test_disabled_admin_and_revoked_tokens_are_refused_and_audited(env: Env) -> None:
    from aospmdm.tenant import access, service

    token = env.admin("Read Only Operator", email="ro@example.com")
    assert env.call("GET", "/beta/organization", token=token).status_code == 200
    with env.db() as s:
        service.set_admin_enabled(s, access.cli_actor(), "ro@example.com", enabled=False)
    assert env.call("GET", "/beta/organization", token=token).status_code == 401
    with env.db() as s:
        service.set_admin_enabled(s, access.cli_actor(), "ro@example.com", enabled=True)
    assert env.call("GET", "/beta/organization", token=token).status_code == 200
    with env.db() as s:
        assert service.revoke_api_tokens(s, access.cli_actor(), "ro@example.com") == 1
    r = env.call("GET", "/beta/organization", token=token)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    activities = {e["activity"] for e in env.audit()}
    assert {"Disable administrator", "Enable administrator", "Revoke API tokens"} <= activities
    assert len(env.audit(**{"$filter": "activity eq 'GET /beta/organization'"})) == 2


def test_the_last_intune_administrator_cannot_be_disabled(env: Env) -> None:
    import pytest

    from aospmdm.core.errors import Conflict
    from aospmdm.tenant import access, service

    with pytest.raises(Conflict), env.db() as s:
        service.set_admin_enabled(s, access.cli_actor(), "root@example.com", enabled=False)
    assert env.call("GET", "/beta/organization").status_code == 200


def test_a_scoped_admin_cannot_strip_tags_it_cannot_see(env: Env) -> None:
    a, b = env.tag("A"), env.tag("B")
    role = env.call(
        "POST", f"{DM}/roleDefinitions", json=role_body("shared", ["audit.read"], [a, b])
    ).json()
    scoped_a = env.custom_admin(["roles.read", "roles.write", "audit.read"], tags=["A"])
    c = env.tag("C")
    scoped_ac = env.custom_admin(["roles.read", "roles.write", "audit.read"], tags=["A", "C"])
    r = env.call(
        "PATCH",
        f"{DM}/roleDefinitions/{role['id']}",
        token=scoped_ac,
        json={"roleScopeTagIds": [c]},
    )
    assert r.status_code == 200, r.text
    assert sorted(r.json()["roleScopeTagIds"]) == sorted([b, c]), "B stays: it was out of scope"
    scoped_b = env.custom_admin(["roles.read"], tags=["B"])
    assert env.call("GET", f"{DM}/roleDefinitions/{role['id']}", token=scoped_b).status_code == 200
    assert env.call("GET", f"{DM}/roleDefinitions/{role['id']}", token=scoped_a).status_code == 404
