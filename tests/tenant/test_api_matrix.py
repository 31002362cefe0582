"""Every tenant resource gets the 401/403/404/happy-path matrix."""

from __future__ import annotations

import itertools

from aospmdm.core import permissions
from tests.conftest import Env
from tests.matrix import Resource, check_resource

DM = "/beta/deviceManagement"
_n = itertools.count()


def _role_body(tags: list[str] | None = None) -> dict[str, object]:
    body: dict[str, object] = {
        "displayName": f"Auditors {next(_n)}",
        "rolePermissions": [{"resourceActions": [{"allowedResourceActions": ["audit.read"]}]}],
    }
    if tags is not None:
        body["roleScopeTagIds"] = tags
    return body


def _make_role(env: Env, tags: list[str]) -> str:
    r = env.call("POST", f"{DM}/roleDefinitions", json=_role_body(tags))
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def test_role_definitions_matrix(env: Env) -> None:
    check_resource(
        env,
        Resource(
            collection=f"{DM}/roleDefinitions",
            read_permission="roles.read",
            write_permission="roles.write",
            make=_make_role,
            create_body=lambda: _role_body(),
            scope_tagged=True,
            extra_permissions=["audit.read"],  # a writer may only grant what it holds
        ),
    )


def test_scope_tags_matrix(env: Env) -> None:
    check_resource(
        env,
        Resource(
            collection=f"{DM}/roleScopeTags",
            read_permission="roles.read",
            write_permission="roles.write",
            make=lambda e, _tags: e.tag(f"tag {next(_n)}"),
            create_body=lambda: {"displayName": f"tag {next(_n)}"},
        ),
    )


def test_role_assignments_matrix(env: Env) -> None:
    def body() -> dict[str, object]:
        roles = env.call("GET", f"{DM}/roleDefinitions").json()["value"]
        read_only = next(r for r in roles if r["displayName"] == "Read Only Operator")
        return {
            "displayName": f"assignment {next(_n)}",
            "roleDefinitionId": read_only["id"],
            "members": ["root@example.com"],
        }

    def make(e: Env, _tags: list[str]) -> str:
        r = e.call("POST", f"{DM}/roleAssignments", json=body())
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    check_resource(
        env,
        Resource(
            collection=f"{DM}/roleAssignments",
            read_permission="roles.read",
            write_permission="roles.write",
            make=make,
            create_body=body,
            # granting Read Only Operator needs every read permission it carries
            extra_permissions=[
                p.name
                for p in permissions.all_permissions()
                if p.is_read and p.name != "roles.read"
            ],
        ),
    )


def test_audit_events_matrix(env: Env) -> None:
    env.tag("something to audit")
    first = env.audit()[0]["id"]
    check_resource(
        env,
        Resource(
            collection=f"{DM}/auditEvents",
            read_permission="audit.read",
            write_permission=None,
            make=lambda e, _tags: first,
        ),
    )


def test_organization_matrix(env: Env) -> None:
    check_resource(
        env,
        Resource(
            collection="/beta/organization",
            read_permission="organization.read",
            write_permission=None,
            make=lambda e, _tags: e.org_id(),
        ),
    )
