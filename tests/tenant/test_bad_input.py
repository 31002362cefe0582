"""Bad input gets a clear 4xx that names the field and changes nothing; never a 5xx."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Env

DM = "/beta/deviceManagement"


def state(env: Env) -> Any:
    return (
        env.call("GET", f"{DM}/roleScopeTags", params={"$top": "999"}).json()["value"],
        env.call("GET", f"{DM}/roleDefinitions", params={"$top": "999"}).json()["value"],
        env.call("GET", f"{DM}/roleAssignments", params={"$top": "999"}).json()["value"],
        env.call("GET", "/beta/organization").json()["value"],
    )


def test_malformed_json(env: Env) -> None:
    before = state(env)
    r = env.call(
        "POST",
        f"{DM}/roleScopeTags",
        content=b'{"displayName": ',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400
    assert "JSON" in r.json()["error"]["message"]
    r = env.call(
        "POST",
        f"{DM}/roleScopeTags",
        content=b"[1, 2]",
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400
    r = env.call("POST", f"{DM}/roleScopeTags")
    assert r.status_code == 400
    assert state(env) == before


def test_wrong_types_name_the_field(env: Env) -> None:
    r = env.call("POST", f"{DM}/roleScopeTags", json={"displayName": 5})
    assert r.status_code == 400 and r.json()["error"]["target"] == "displayName"
    r = env.call(
        "POST",
        f"{DM}/roleDefinitions",
        json={"displayName": "x", "rolePermissions": [{"resourceActions": "audit.read"}]},
    )
    assert r.status_code == 400
    assert r.json()["error"]["target"] == "rolePermissions.0.resourceActions"
    r = env.call("PATCH", f"/beta/organization/{env.org_id()}", json={"displayName": True})
    assert r.status_code == 400 and r.json()["error"]["target"] == "displayName"


def test_oversized_bodies_are_refused_before_reading(env: Env) -> None:
    big = json.dumps({"displayName": "x", "description": "y" * (2 * 1024 * 1024)})
    before = state(env)
    r = env.call(
        "POST", f"{DM}/roleScopeTags", content=big, headers={"content-type": "application/json"}
    )
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "payloadTooLarge"

    def chunks() -> Any:
        for _ in range(40):
            yield b"y" * 65536

    r = env.call(
        "POST",
        f"{DM}/roleScopeTags",
        content=chunks(),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 413
    assert state(env) == before


def test_unknown_ids_and_routes_are_404(env: Env) -> None:
    for path in (
        f"{DM}/roleScopeTags/does-not-exist",
        f"{DM}/roleDefinitions/00000000-0000-0000-0000-000000000000",
        f"{DM}/roleAssignments/x",
        f"{DM}/auditEvents/x",
        "/beta/organization/x",
        "/beta/nothingHere",
    ):
        r = env.call("GET", path)
        assert r.status_code == 404, path
        assert r.json()["error"]["code"] == "notFound"
    assert env.call("DELETE", f"{DM}/roleScopeTags/nope").status_code == 404


def test_query_options_are_checked(env: Env) -> None:
    for params, target in [
        ({"$top": "0"}, "$top"),
        ({"$top": "1000"}, "$top"),
        ({"$top": "ten"}, "$top"),
        ({"$skip": "-1"}, "$skip"),
        ({"$expand": "x"}, "$expand"),
        ({"$count": "maybe"}, "$count"),
        ({"$orderby": "displayName"}, "$orderby"),
    ]:
        r = env.call("GET", f"{DM}/roleScopeTags", params=params)
        assert r.status_code == 400, params
        assert r.json()["error"]["target"] == target
    r = env.call("GET", f"{DM}/roleScopeTags", params={"$filter": "displayName eq 'x'"})
    assert r.status_code == 400, "resources without filter fields say so"
    r = env.call("GET", f"{DM}/roleScopeTags", params={"$select": "displayName", "$count": "true"})
    assert r.status_code == 200
    body = r.json()
    assert body["@odata.count"] == 1
    assert body["value"] == [{"id": "0", "displayName": "Default"}]


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=3)
    ),
    max_leaves=8,
)
fields = st.sampled_from(
    [
        "displayName",
        "description",
        "rolePermissions",
        "roleScopeTagIds",
        "members",
        "roleDefinitionId",
        "@odata.type",
        "id",
        "isBuiltIn",
        "whatever",
    ]
)
bodies = st.dictionaries(fields, json_values, max_size=5) | json_values


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    target=st.sampled_from(
        [
            ("POST", f"{DM}/roleScopeTags"),
            ("PATCH", f"{DM}/roleScopeTags/0"),
            ("POST", f"{DM}/roleDefinitions"),
            ("POST", f"{DM}/roleAssignments"),
            ("PATCH", "/beta/organization/{org}"),
        ]
    ),
    body=bodies,
)
def test_random_bodies_never_5xx(env: Env, target: tuple[str, str], body: Any) -> None:
    method, path = target
    r = env.call(method, path.format(org=env.org_id()), json=body)
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        err = r.json()["error"]
        assert err["code"] and err["message"]
