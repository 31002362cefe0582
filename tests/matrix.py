"""The test matrix every admin-API resource gets (zentral's habit): 401 without a token,
403 without the permission, 404 outside the admin's scope tags, and the happy path.

A later feature describes its resource with ``Resource`` and calls ``check_resource``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.conftest import Env


@dataclass
class Resource:
    collection: str  # e.g. /beta/deviceManagement/roleDefinitions
    read_permission: str
    write_permission: str | None
    # Makes one object as the full admin, carrying these scope tag ids; returns its id.
    make: Callable[[Env, list[str]], str] | None = None
    # A valid create body (for the write checks).
    create_body: Callable[[], dict[str, Any]] | None = None
    scope_tagged: bool = False
    # Permissions an admin also needs to get this far (e.g. to read what it creates).
    extra_permissions: list[str] = field(default_factory=list)


def check_resource(env: Env, res: Resource) -> None:
    obj_id = res.make(env, ["0"]) if res.make else None
    item = f"{res.collection}/{obj_id}" if obj_id else None

    # 401: no token, and a forged one; both refusals are audited.
    for token in (None, "amdm_forged-token-that-was-never-issued"):
        r = env.call("GET", res.collection, token=token)
        assert r.status_code == 401, r.text
        assert r.json()["error"]["code"] == "InvalidAuthenticationToken"
        if item:
            assert env.call("GET", item, token=token).status_code == 401
        if res.create_body:
            assert (
                env.call("POST", res.collection, token=token, json=res.create_body()).status_code
                == 401
            )
    refused = env.audit(**{"$filter": "activityResult eq 'failure' and actor/type eq 'anonymous'"})
    assert any(res.collection in e["activity"] for e in refused)

    # 403: an admin holding some other permission only.
    other = env.custom_admin(
        ["audit.read"] if res.read_permission != "audit.read" else ["roles.read"]
    )
    r = env.call("GET", res.collection, token=other)
    assert r.status_code == 403, r.text
    assert res.read_permission in r.json()["error"]["message"]
    if item:
        assert env.call("GET", item, token=other).status_code == 403
    if res.create_body and res.write_permission:
        reader = env.custom_admin([res.read_permission, *res.extra_permissions])
        before = env.call("GET", res.collection, params={"$top": "999"}).json()["value"]
        r = env.call("POST", res.collection, token=reader, json=res.create_body())
        assert r.status_code == 403, r.text
        assert res.write_permission in r.json()["error"]["message"]
        after = env.call("GET", res.collection, params={"$top": "999"}).json()["value"]
        assert len(after) == len(before), "a refused create changed something"

    # 404 outside the admin's scope tags; visible inside them.
    if res.scope_tagged and res.make:
        a, b = env.tag(f"Scope A {res.collection}"), env.tag(f"Scope B {res.collection}")
        in_a = res.make(env, [a])
        perms = [res.read_permission, *res.extra_permissions]
        if res.write_permission:
            perms.append(res.write_permission)
        name_a = env.call("GET", f"/beta/deviceManagement/roleScopeTags/{a}").json()["displayName"]
        name_b = env.call("GET", f"/beta/deviceManagement/roleScopeTags/{b}").json()["displayName"]
        scoped_b = env.custom_admin(perms, tags=[name_b])
        scoped_a = env.custom_admin(perms, tags=[name_a])
        r = env.call("GET", f"{res.collection}/{in_a}", token=scoped_b)
        assert r.status_code == 404, r.text
        listed = [
            o["id"]
            for o in env.call("GET", res.collection, token=scoped_b, params={"$top": "999"}).json()[
                "value"
            ]
        ]
        assert in_a not in listed
        assert env.call("GET", f"{res.collection}/{in_a}", token=scoped_a).status_code == 200
        listed = [
            o["id"]
            for o in env.call("GET", res.collection, token=scoped_a, params={"$top": "999"}).json()[
                "value"
            ]
        ]
        assert in_a in listed
        if res.write_permission:
            r = env.call("DELETE", f"{res.collection}/{in_a}", token=scoped_b)
            assert r.status_code == 404, r.text
            assert env.call("GET", f"{res.collection}/{in_a}").status_code == 200

    # Happy path, as an unscoped admin with just the read permission.
    reader = env.custom_admin([res.read_permission, *res.extra_permissions])
    r = env.call("GET", res.collection, token=reader)
    assert r.status_code == 200, r.text
    assert isinstance(r.json()["value"], list)
    if item:
        r = env.call("GET", item, token=reader)
        assert r.status_code == 200, r.text
        assert r.json()["id"] == obj_id
    if res.create_body and res.write_permission:
        writer = env.custom_admin(
            [res.read_permission, res.write_permission, *res.extra_permissions]
        )
        r = env.call("POST", res.collection, token=writer, json=res.create_body())
        assert r.status_code == 201, r.text
