"""Console sessions: sign in and out, CSRF, idle timeout, throttling (through HTTP forms)."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from aospmdm.core import clock
from tests.conftest import PASSWORD, Env


def login_form(client: TestClient) -> str:
    r = client.get("/console/login")
    assert r.status_code == 200
    m = re.search(r'name="login_csrf" value="([^"]+)"', r.text)
    assert m
    return m.group(1)


def sign_in(client: TestClient, email: str, password: str) -> TestClient:
    token = login_form(client)
    return client.post(  # type: ignore[return-value]
        "/console/login",
        data={"email": email, "password": password, "login_csrf": token, "next": "/console"},
        follow_redirects=False,
    )


def csrf(client: TestClient, path: str = "/console/tenant/authority") -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text)
    assert m
    return m.group(1)


def test_console_needs_sign_in(env: Env) -> None:
    r = env.client.get("/console/tenant/audit", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/console/login?next=/console/tenant/audit"


def test_sign_in_set_authority_and_sign_out(env: Env) -> None:
    r = sign_in(env.client, "root@example.com", PASSWORD)
    assert r.status_code == 303 and r.headers["location"] == "/console"
    cookie = env.client.cookies.get("aospmdm_session")
    assert cookie
    home = env.client.get("/console")
    assert "root@example.com" in home.text
    for label in ("Home", "Devices", "Groups", "Apps", "Policies", "Tenant admin"):
        assert label in home.text
    r = env.client.post("/console/tenant/authority", data={"csrf_token": csrf(env.client)})
    assert r.status_code == 200 and "MDM authority set." in r.text
    assert "intune" in env.client.get("/console/tenant/authority").text
    audit_page = env.client.get("/console/tenant/audit").text
    assert "Set MDM authority" in audit_page
    r = env.client.post(
        "/console/logout", data={"csrf_token": csrf(env.client)}, follow_redirects=False
    )
    assert r.status_code == 303
    # The old cookie is dead on the server, not merely forgotten by the browser.
    env.client.cookies.set("aospmdm_session", cookie)
    assert env.client.get("/console", follow_redirects=False).status_code == 303


def test_forms_need_the_csrf_token(env: Env) -> None:
    sign_in(env.client, "root@example.com", PASSWORD)
    r = env.client.post("/console/tenant/authority", data={})
    assert r.status_code == 403
    r = env.client.post("/console/tenant/authority", data={"csrf_token": "forged"})
    assert r.status_code == 403
    assert (
        env.call("GET", "/beta/organization").json()["value"][0]["mobileDeviceManagementAuthority"]
        == "unknown"
    )
    refused = env.audit(**{"$filter": "activityOperationType eq 'Refused'"})
    assert any(e["activity"] == "POST /console/tenant/authority" for e in refused)


def test_sign_in_form_needs_its_csrf_cookie(env: Env) -> None:
    r = env.client.post(
        "/console/login",
        data={"email": "root@example.com", "password": PASSWORD, "login_csrf": "x"},
        follow_redirects=False,
    )
    assert r.status_code == 403
    assert "aospmdm_session" not in env.client.cookies


def test_wrong_password_is_refused_and_audited(env: Env) -> None:
    r = sign_in(env.client, "root@example.com", "wrong password!")
    assert r.status_code == 401
    assert "The email or password is wrong." in r.text
    r = sign_in(env.client, "nobody@example.com", PASSWORD)
    assert r.status_code == 401
    failures = env.audit(
        **{"$filter": "category eq 'Authentication' and activityResult eq 'failure'"}
    )
    assert {e["actor"]["userPrincipalName"] for e in failures} == {
        "root@example.com",
        "nobody@example.com",
    }


def test_failed_sign_ins_are_throttled_per_account(env: Env) -> None:
    for _ in range(env.settings.signin_max_failures_per_account):
        assert sign_in(env.client, "root@example.com", "nope nope nope").status_code == 401
    r = sign_in(env.client, "root@example.com", PASSWORD)
    assert r.status_code == 429, "even the right password waits out the window"
    assert "Too many failed sign-ins" in r.text
    clock.advance(env.settings.signin_window_minutes * 60 + 1)
    assert sign_in(env.client, "root@example.com", PASSWORD).status_code == 303


def test_failed_sign_ins_are_throttled_per_address(env: Env) -> None:
    for i in range(env.settings.signin_max_failures_per_address):
        assert sign_in(env.client, f"guess{i}@example.com", "nope nope nope").status_code == 401
    assert sign_in(env.client, "root@example.com", PASSWORD).status_code == 429


def test_idle_sessions_end(env: Env) -> None:
    sign_in(env.client, "root@example.com", PASSWORD)
    clock.advance(env.settings.session_idle_minutes * 60 - 60)
    assert env.client.get("/console", follow_redirects=False).status_code == 200
    clock.advance(env.settings.session_idle_minutes * 60 - 60)
    assert env.client.get("/console", follow_redirects=False).status_code == 200, (
        "activity keeps the session alive"
    )
    clock.advance(env.settings.session_idle_minutes * 60 + 1)
    assert env.client.get("/console", follow_redirects=False).status_code == 303


def test_tampered_cookie_is_refused(env: Env) -> None:
    sign_in(env.client, "root@example.com", PASSWORD)
    cookie = env.client.cookies.get("aospmdm_session")
    assert cookie
    env.client.cookies.set("aospmdm_session", cookie[:-2] + "xx")
    assert env.client.get("/console", follow_redirects=False).status_code == 303


def test_next_only_redirects_inside_the_console(env: Env) -> None:
    token = login_form(env.client)
    r = env.client.post(
        "/console/login",
        data={
            "email": "root@example.com",
            "password": PASSWORD,
            "login_csrf": token,
            "next": "https://evil.example/",
        },
        follow_redirects=False,
    )
    assert r.headers["location"] == "/console"


def test_read_only_admin_sees_pages_but_no_forms(env: Env) -> None:
    env.admin("Read Only Operator", email="reader@example.com")
    sign_in(env.client, "reader@example.com", PASSWORD)
    page = env.client.get("/console/tenant/authority").text
    assert "Your role cannot set it." in page
    for path in (
        "/console/tenant/admins",
        "/console/tenant/roles",
        "/console/tenant/scope-tags",
        "/console/tenant/licenses",
        "/console/tenant/audit",
    ):
        r = env.client.get(path)
        assert r.status_code == 200, path
        assert '<form class="stack card"' not in r.text
    m = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert m
    r = env.client.post(
        "/console/tenant/scope-tags", data={"csrf_token": m.group(1), "display_name": "x"}
    )
    assert r.status_code == 403


def test_admins_and_scope_tags_pages_create(env: Env) -> None:
    sign_in(env.client, "root@example.com", PASSWORD)
    r = env.client.post(
        "/console/tenant/scope-tags",
        data={"csrf_token": csrf(env.client), "display_name": "Plant 7"},
    )
    assert r.status_code == 200 and "Scope tag Plant 7 created." in r.text
    r = env.client.post(
        "/console/tenant/scope-tags",
        data={"csrf_token": csrf(env.client), "display_name": "plant 7"},
    )
    assert r.status_code == 409 and "already exists" in r.text
    r = env.client.post(
        "/console/tenant/admins",
        data={
            "csrf_token": csrf(env.client),
            "email": "ops@example.com",
            "password": "short",
            "role": "Help Desk Operator",
        },
    )
    assert r.status_code == 400 and "12 characters" in r.text
    r = env.client.post(
        "/console/tenant/admins",
        data={
            "csrf_token": csrf(env.client),
            "email": "ops@example.com",
            "password": PASSWORD,
            "role": "Help Desk Operator",
            "scope_tags": ["Plant 7"],
        },
    )
    assert r.status_code == 200 and "ops@example.com" in r.text
    assert "Help Desk Operator (" in r.text
