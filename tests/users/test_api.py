"""The worker directory at /beta/users: CRUD, validation, permissions and audit."""

from __future__ import annotations

from typing import Any

import pytest

from aospmdm.core import permissions
from tests.conftest import Env
from tests.matrix import Resource, check_resource

U = "/beta/users"


def body(upn: str = "jane.doe@contoso.com", **extra: Any) -> dict[str, Any]:
    return {
        "accountEnabled": True,
        "displayName": "Jane Doe",
        "mailNickname": "jane",
        "userPrincipalName": upn,
        "passwordProfile": {"forceChangePasswordNextSignIn": False, "password": "worker-pass-1"},
        **extra,
    }


def create(env: Env, upn: str = "jane.doe@contoso.com", **extra: Any) -> dict[str, Any]:
    r = env.call("POST", U, json=body(upn, **extra))
    assert r.status_code == 201, r.text
    return dict(r.json())


_n = iter(range(10**6))


def test_matrix(env: Env) -> None:
    check_resource(
        env,
        Resource(
            collection=U,
            read_permission="users.read",
            write_permission="users.write",
            make=lambda e, _tags: create(e, f"m{next(_n)}@contoso.com")["id"],
            create_body=lambda: body(f"w{next(_n)}@contoso.com"),
        ),
    )


def test_crud_by_id_and_upn(env: Env) -> None:
    u = create(env, "Jane.Doe@Contoso.com")
    assert u["userPrincipalName"] == "jane.doe@contoso.com"
    assert u["displayName"] == "Jane Doe" and u["accountEnabled"] is True
    assert u["createdDateTime"].endswith("Z")
    assert u["passwordProfile"] is None and "password" not in str(u).lower().replace(
        "passwordprofile", ""
    )
    for key in (u["id"], "jane.doe@contoso.com", "JANE.DOE@contoso.com"):
        r = env.call("GET", f"{U}/{key}")
        assert r.status_code == 200, r.text
        assert r.json()["id"] == u["id"]
    # Posting back what was read is accepted.
    r = env.call("PATCH", f"{U}/{u['id']}", json={**r.json(), "displayName": "Jane D."})
    assert r.status_code == 200, r.text
    assert r.json()["displayName"] == "Jane D."
    r = env.call("PATCH", f"{U}/jane.doe@contoso.com", json={"accountEnabled": False})
    assert r.json()["accountEnabled"] is False
    r = env.call("PATCH", f"{U}/{u['id']}", json={"passwordProfile": {"password": "new-pass-22"}})
    assert r.status_code == 200, r.text
    listed = env.call("GET", U, params={"$top": "1"}).json()
    assert [x["id"] for x in listed["value"]] == [u["id"]]
    create(env, "ann@contoso.com")
    page1 = env.call("GET", U, params={"$top": "1"}).json()
    assert page1["value"][0]["userPrincipalName"] == "ann@contoso.com"
    assert "%24skip=1" in page1["@odata.nextLink"]
    page2 = env.call("GET", U, params={"$top": "1", "$skip": "1"}).json()
    assert page2["value"][0]["id"] == u["id"]
    r = env.call("GET", U, params={"$filter": "accountEnabled eq false"})
    assert [x["id"] for x in r.json()["value"]] == [u["id"]]
    assert env.call("DELETE", f"{U}/{u['id']}").status_code == 204
    assert env.call("GET", f"{U}/{u['id']}").status_code == 404
    assert env.call("DELETE", f"{U}/{u['id']}").status_code == 404

    activities = [
        (e["activity"], e["resources"][0]["resourceId"])
        for e in env.audit(**{"$filter": "category eq 'User'"})
    ]
    assert ("Create user", u["id"]) in activities
    assert ("Update user", u["id"]) in activities
    assert ("Delete user", u["id"]) in activities
    details = [e["details"] for e in env.audit(**{"$filter": "category eq 'User'"})]
    assert all("new-pass-22" not in str(d) and "worker-pass-1" not in str(d) for d in details)


@pytest.mark.parametrize(
    ("change", "target"),
    [
        ({"userPrincipalName": "no-at-sign"}, "userPrincipalName"),
        ({"userPrincipalName": "two@@contoso.com"}, "userPrincipalName"),
        ({"userPrincipalName": "sp ace@contoso.com"}, "userPrincipalName"),
        ({"userPrincipalName": "name@"}, "userPrincipalName"),
        ({"userPrincipalName": 7}, "userPrincipalName"),
        ({"displayName": "   "}, "displayName"),
        ({"displayName": "x" * 257}, "displayName"),
        ({"passwordProfile": {"password": "short"}}, "passwordProfile.password"),
        ({"passwordProfile": {}}, "passwordProfile.password"),
        ({"passwordProfile": None}, "passwordProfile"),
        ({"accountEnabled": "yes"}, "accountEnabled"),
        ({"favouriteColour": "blue"}, "favouriteColour"),
        ({"@odata.type": "#microsoft.graph.group"}, "@odata.type"),
    ],
)
def test_bad_input_names_the_field(env: Env, change: dict[str, Any], target: str) -> None:
    r = env.call("POST", U, json={**body(), **change})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["target"] == target, r.json()
    assert env.call("GET", U).json()["value"] == []


def test_missing_password_and_bad_patch(env: Env) -> None:
    b = body()
    del b["passwordProfile"]
    r = env.call("POST", U, json=b)
    assert r.status_code == 400 and r.json()["error"]["target"] == "passwordProfile"
    u = create(env)
    r = env.call("PATCH", f"{U}/{u['id']}", json={"passwordProfile": {"password": "1234567"}})
    assert r.status_code == 400 and r.json()["error"]["target"] == "passwordProfile.password"
    r = env.call("PATCH", f"{U}/{u['id']}", json={"userPrincipalName": "bad"})
    assert r.status_code == 400 and r.json()["error"]["target"] == "userPrincipalName"


def test_duplicate_upn_is_409_case_insensitively(env: Env) -> None:
    create(env, "jane@contoso.com")
    r = env.call("POST", U, json=body("JANE@CONTOSO.COM"))
    assert r.status_code == 409, r.text
    assert r.json()["error"]["target"] == "userPrincipalName"
    other = create(env, "john@contoso.com")
    r = env.call("PATCH", f"{U}/{other['id']}", json={"userPrincipalName": "Jane@contoso.com"})
    assert r.status_code == 409, r.text
    r = env.call("PATCH", f"{U}/{other['id']}", json={"userPrincipalName": "johnny@contoso.com"})
    assert r.status_code == 200 and r.json()["userPrincipalName"] == "johnny@contoso.com"


def test_roles(env: Env) -> None:
    import aospmdm.server  # noqa: F401

    assert "users.read" in permissions.builtin_role_permissions("Read Only Operator")
    assert "users.write" not in permissions.builtin_role_permissions("Help Desk Operator")
    assert "devices.endSession" in permissions.builtin_role_permissions("Help Desk Operator")
    help_desk = env.admin("Help Desk Operator")
    assert env.call("GET", U, token=help_desk).status_code == 200
    assert env.call("POST", U, token=help_desk, json=body()).status_code == 403
    create(env)
    r = env.call("PATCH", f"{U}/jane.doe@contoso.com", token=help_desk, json={"displayName": "x"})
    assert r.status_code == 403
    assert env.call("DELETE", f"{U}/jane.doe@contoso.com", token=help_desk).status_code == 403
    assert env.call("GET", f"{U}/nobody@contoso.com").status_code == 404
