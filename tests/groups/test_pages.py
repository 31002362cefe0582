"""The groups console through HTTP forms: All groups, New group (assigned, and dynamic with the
rule builder or the rule's text, bad rules shown in place with their position), a group's
Overview, Members (add and remove for assigned groups), Edit rule, pause and resume,
Validate rules (up to 20 devices), Delete, and RBAC on every page."""

from __future__ import annotations

import html
import re
from typing import Any

import httpx
import pytest

from aospmdm.groups import service as groups
from aospmdm.tenant import access
from aospmdm.tenant import service as tenant
from tests.conftest import PASSWORD, Env
from tests.devices.test_pages import enroll, profile
from tests.web.test_sign_in import csrf, sign_in

BASE = "/console/groups"
API = "/beta/groups"
ROWS = 5


@pytest.fixture
def ready(env: Env) -> Env:
    """MDM authority set, licenses to spare, and the full admin signed in to the console."""
    r = env.call("POST", f"/beta/organization/{env.org_id()}/setMobileDeviceManagementAuthority")
    assert r.status_code == 204
    with env.db() as s:
        tenant.set_license_count(s, access.cli_actor(), 200)
    assert sign_in(env.client, "root@example.com", PASSWORD).status_code == 303
    return env


def post(client: Any, path: str, **fields: Any) -> httpx.Response:
    response: httpx.Response = client.post(path, data={"csrf_token": csrf(client, BASE), **fields})
    return response


def builder(*rows: tuple[str, str, str], joins: list[str] | None = None) -> dict[str, Any]:
    """The builder's form fields: five rows, the unused ones empty."""
    padded = list(rows) + [("", "eq", "")] * (ROWS - len(rows))
    return {
        "row_property": [r[0] for r in padded],
        "row_operator": [r[1] for r in padded],
        "row_value": [r[2] for r in padded],
        "row_join": (joins or []) + ["and"] * (ROWS - 1 - len(joins or [])),
    }


def new_group(client: Any, action: str = "save", **fields: Any) -> httpx.Response:
    return post(client, f"{BASE}/new", action=action, **fields)


def rule_text(page: str) -> str:
    """The text editor's content, as the browser shows it."""
    m = re.search(r'<textarea id="rule" name="rule"[^>]*>(.*?)</textarea>', page, re.S)
    assert m, "no rule text editor"
    return html.unescape(m.group(1))


def api_groups(env: Env) -> list[dict[str, Any]]:
    r = env.call("GET", API)
    assert r.status_code == 200, r.text
    return list(r.json()["value"])


def group_id(env: Env, name: str) -> str:
    return str(next(g["id"] for g in api_groups(env) if g["displayName"] == name))


def member_names(page: str) -> list[str]:
    table = page.split('id="members"')[1].split("</table>")[0]
    return re.findall(r'<a href="/console/devices/[0-9a-f-]{36}">([^<]+)</a>', table)


def api_group(env: Env, rule: str | None = None, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "displayName": fields.pop("displayName", "API group"),
        "mailEnabled": False,
        "securityEnabled": True,
        "groupTypes": ["DynamicMembership"] if rule else [],
    } | fields
    if rule:
        body["membershipRule"] = rule
    r = env.call("POST", API, json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_nav_and_the_empty_list(ready: Env) -> None:
    home = ready.client.get("/console").text
    assert f'<a href="{BASE}">Groups</a>' in home
    r = ready.client.get(BASE)
    assert r.status_code == 200
    assert "<h1>All groups</h1>" in r.text and "No groups yet." in r.text
    assert f'<a class="button" href="{BASE}/new">New group</a>' in r.text
    new = ready.client.get(f"{BASE}/new")
    assert new.status_code == 200
    for shown in ("Group type", "Security", "Group name", "Group description", "Membership type"):
        assert shown in new.text, shown
    assert '<option value="assigned" selected>Assigned</option>' in new.text
    assert '<option value="dynamic">Dynamic device</option>' in new.text
    assert "<summary>Add dynamic query</summary>" in new.text
    assert new.text.count('name="row_property"') == ROWS
    assert '<option value="enrollmentProfileName">enrollmentProfileName</option>' in new.text
    for op in (
        "eq",
        "ne",
        "startsWith",
        "notStartsWith",
        "endsWith",
        "notEndsWith",
        "contains",
        "notContains",
        "match",
        "notMatch",
        "in",
        "notIn",
    ):
        assert f'<option value="{op}"' in new.text, op


def test_create_an_assigned_group_and_add_and_remove_members(ready: Env) -> None:
    p = profile(ready, "Line 1 headsets")
    a = enroll(ready, p, "NAV-A")
    b = enroll(ready, p, "NAV-B")
    r = new_group(
        ready.client,
        display_name="Line 1 pilots",
        description="Trial devices",
        membership_type="assigned",
    )
    assert r.status_code == 200, r.text
    assert "Group Line 1 pilots created." in r.text
    gid = group_id(ready, "Line 1 pilots")
    assert str(r.url).startswith(f"http://testserver{BASE}/{gid}")
    created = next(g for g in api_groups(ready) if g["id"] == gid)
    assert created["groupTypes"] == [] and created["membershipRule"] is None
    assert created["description"] == "Trial devices"
    for label, value in (("Group type", "Security"), ("Membership type", "Assigned")):
        assert f"<dt>{label}</dt><dd>{value}</dd>" in r.text
    assert "Validate rules" not in r.text and "Edit rule" not in r.text

    page = ready.client.get(f"{BASE}/{gid}/members").text
    assert member_names(page) == []
    assert 'id="add-members"' in page
    assert f'<option value="{a.device_id}">RW-NAV-A (NAV-A)</option>' in page

    # Add one from the list, the other by id; adding it twice is refused in place.
    r = post(ready.client, f"{BASE}/{gid}/members/add", device_id=a.device_id)
    assert r.status_code == 200 and "RW-NAV-A added to Line 1 pilots." in r.text
    r = post(ready.client, f"{BASE}/{gid}/members/add", device_ref=str(b.device_id))
    assert member_names(r.text) == ["RW-NAV-A", "RW-NAV-B"]
    again = post(ready.client, f"{BASE}/{gid}/members/add", device_id=a.device_id)
    assert again.status_code == 400
    assert "already exist" in again.text and 'id="device-error"' in again.text
    missing = post(ready.client, f"{BASE}/{gid}/members/add")
    assert missing.status_code == 400 and "Choose a device, or enter its id." in missing.text

    # Members: name (a link to the device), model, OS, last check-in; Remove.
    row = r.text.split(">RW-NAV-A</a>")[1].split("</tr>")[0]
    assert "<td>Navigator 500</td>" in row and "<td>Android (AOSP)</td>" in row
    assert f'href="/console/devices/{a.device_id}"' in r.text
    r = post(ready.client, f"{BASE}/{gid}/members/{a.device_id}/remove")
    assert r.status_code == 200 and "RW-NAV-A removed from Line 1 pilots." in r.text
    assert member_names(r.text) == ["RW-NAV-B"]

    listing = ready.client.get(BASE).text
    row = listing.split(">Line 1 pilots</a>")[1].split("</tr>")[0]
    assert "<td>Assigned</td>" in row and "<td>1</td>" in row and "<td>—</td>" in row


def test_the_builder_writes_the_rule_text(ready: Env) -> None:
    r = new_group(
        ready.client,
        action="build",
        display_name="Factory",
        membership_type="assigned",
        **builder(("enrollmentProfileName", "eq", "Factory 1 devices")),
    )
    assert r.status_code == 200, r.text
    assert rule_text(r.text) == '(device.enrollmentProfileName -eq "Factory 1 devices")'
    assert "Rule built from the rows." in r.text
    # Build rule chooses Dynamic device, keeps the rows and the name.
    assert '<option value="dynamic" selected>Dynamic device</option>' in r.text
    assert 'value="Factory 1 devices"' in r.text and 'value="Factory"' in r.text
    assert api_groups(ready) == [], "building saves nothing"

    r = new_group(
        ready.client,
        action="build",
        display_name="Mixed",
        **builder(
            ("deviceModel", "startsWith", 'HMT "1"'),
            ("isRooted", "eq", "False"),
            ("deviceModel", "in", "Navigator 500, HMT-1"),
            ("extensionAttribute3", "ne", "null"),
            joins=["and", "or", "and"],
        ),
    )
    assert r.status_code == 200, r.text
    assert rule_text(r.text) == (
        '(device.deviceModel -startsWith "HMT `"1`"") and (device.isRooted -eq false) or '
        '(device.deviceModel -in ["Navigator 500", "HMT-1"]) and '
        "(device.extensionAttribute3 -ne null)"
    )
    assert '<option value="or" selected>Or</option>' in r.text

    # A row without a value, or no row at all, is pointed out in place.
    r = new_group(ready.client, action="build", **builder(("deviceModel", "eq", "")))
    assert r.status_code == 400 and "Row 1: enter a value." in r.text
    r = new_group(
        ready.client,
        action="build",
        **builder(("deviceModel", "eq", "x"), ("", "eq", "y")),
    )
    assert r.status_code == 400 and "Row 2: choose a property." in r.text
    r = new_group(ready.client, action="build", **builder())
    assert r.status_code == 400 and "Fill in at least one row" in r.text
    # An operator the property's type does not allow: the parser's message, in place.
    r = new_group(ready.client, action="build", **builder(("isRooted", "contains", "x")))
    assert r.status_code == 400 and 'id="rule-error"' in r.text
    assert rule_text(r.text) == '(device.isRooted -contains "x")'


def test_create_a_dynamic_group_with_the_builder_and_see_its_members(ready: Env) -> None:
    factory = profile(ready, "Factory 1 devices")
    other = profile(ready, "Office")
    before = enroll(ready, factory, "F-1")
    enroll(ready, other, "O-1")
    fields = builder(("enrollmentProfileName", "eq", "Factory 1 devices"))
    built = rule_text(new_group(ready.client, action="build", **fields).text)
    r = new_group(
        ready.client,
        display_name="Factory 1",
        membership_type="dynamic",
        rule=built,
        **fields,
    )
    assert r.status_code == 200 and "Group Factory 1 created." in r.text
    gid = group_id(ready, "Factory 1")
    created = next(g for g in api_groups(ready) if g["id"] == gid)
    assert created["groupTypes"] == ["DynamicMembership"]
    assert created["membershipRule"] == '(device.enrollmentProfileName -eq "Factory 1 devices")'
    assert "<dt>Membership type</dt><dd>Dynamic device</dd>" in r.text
    assert '<dd id="processing-state">On</dd>' in r.text
    assert "Factory 1 devices" in r.text.split('id="membership-rule"')[1].split("</pre>")[0]

    page = ready.client.get(f"{BASE}/{gid}/members").text
    assert member_names(page) == ["RW-F-1"]
    assert 'id="add-members"' not in page and "Remove" not in page.split('id="members"')[1]
    # A device that enrolls later is a member at once.
    later = enroll(ready, factory, "F-2")
    assert member_names(ready.client.get(f"{BASE}/{gid}/members").text) == ["RW-F-1", "RW-F-2"]
    assert later.device_id and before.device_id
    listing = ready.client.get(BASE).text
    row = listing.split(">Factory 1</a>")[1].split("</tr>")[0]
    assert "<td>Dynamic device</td>" in row and "<td>2</td>" in row and "<td>On</td>" in row

    # Save with an empty text but filled rows builds the rule itself.
    r = new_group(
        ready.client,
        display_name="Office",
        membership_type="dynamic",
        **builder(("enrollmentProfileName", "eq", "Office")),
    )
    assert r.status_code == 200 and "Group Office created." in r.text
    assert member_names(ready.client.get(f"{BASE}/{group_id(ready, 'Office')}/members").text) == [
        "RW-O-1"
    ]


def test_a_bad_rule_is_shown_in_place_with_its_position(ready: Env) -> None:
    bad = '(device.enrollmentProfileName -eq "x") (device.deviceModel -eq "y")'
    r = new_group(ready.client, display_name="Broken", membership_type="dynamic", rule=bad)
    assert r.status_code == 400
    error = re.search(r'<p class="field-error" id="rule-error" role="alert">([^<]*)</p>', r.text)
    assert error, r.text
    message = html.unescape(error.group(1))
    position = bad.index("(device.deviceModel")
    assert f"(at position {position})." in message
    assert (
        'id="rule" name="rule" rows="5" maxlength="3100" spellcheck="false" aria-invalid="true"'
        in r.text
    )
    marked = r.text.split('id="rule-error-at"')[1].split("</pre>")[0]
    assert f'<mark title="position {position}">(</mark>' in marked
    assert rule_text(r.text) == bad, "the text is kept"
    assert 'value="Broken"' in r.text
    assert '<details id="dynamic-query" open>' in r.text
    assert api_groups(ready) == []

    # Validate: the same check without saving.
    r = new_group(ready.client, action="validate", rule=bad)
    assert r.status_code == 400 and f"(at position {position})." in html.unescape(r.text)
    r = new_group(ready.client, action="validate", rule='device.deviceModel -eq "HMT-1"')
    assert r.status_code == 200 and "The rule is valid." in r.text
    unknown = new_group(ready.client, action="validate", rule='device.shoeSize -eq "9"')
    assert unknown.status_code == 400 and "(at position 0)." in html.unescape(unknown.text)
    # A dynamic group needs a rule; a name is needed too.
    r = new_group(ready.client, display_name="Empty", membership_type="dynamic")
    assert r.status_code == 400 and "A dynamic group needs a membership rule." in r.text
    r = new_group(ready.client, display_name="  ", membership_type="assigned")
    assert r.status_code == 400 and 'id="display_name-error"' in r.text
    assert api_groups(ready) == []


def test_validate_rules_shows_each_devices_result_and_refuses_21(ready: Env) -> None:
    factory = profile(ready, "Factory 1 devices")
    office = profile(ready, "Office")
    yes = enroll(ready, factory, "F-1")
    no = enroll(ready, office, "O-1")
    g = api_group(
        ready, '(device.enrollmentProfileName -eq "Factory 1 devices")', displayName="Factory 1"
    )
    page = ready.client.get(f"{BASE}/{g['id']}")
    assert f'href="{BASE}/{g["id"]}/validate">Validate rules</a>' in page.text
    tab = ready.client.get(f"{BASE}/{g['id']}/validate")
    assert tab.status_code == 200
    assert f'name="device" value="{yes.device_id}"' in tab.text
    assert f'name="device" value="{no.device_id}"' in tab.text
    assert 'id="validation"' not in tab.text

    r = ready.client.get(
        f"{BASE}/{g['id']}/validate",
        params={"run": "1", "device": [yes.device_id, no.device_id]},
    )
    assert r.status_code == 200, r.text
    results = r.text.split('id="validation"')[1].split("</table>")[0]
    rows = results.split("<tr>")[2:]
    assert ">RW-F-1</a>" in rows[0] and "Matches" in rows[0] and "Does not match" not in rows[0]
    assert ">RW-O-1</a>" in rows[1] and "Does not match" in rows[1]
    # The expression tree, with the property's value.
    assert 'enrollmentProfileName = "Office"</span>' in rows[1]
    assert '<span class="result false">False</span>' in rows[1]
    assert '<span class="result true">True</span>' in rows[0]

    # A draft rule, and ids typed in; an unknown id is reported in its row.
    r = ready.client.get(
        f"{BASE}/{g['id']}/validate",
        params={
            "run": "1",
            "rule": 'device.enrollmentProfileName -eq "Office"',
            "ids": f"{no.device_id}, 00000000-0000-0000-0000-000000000000",
        },
    )
    assert r.status_code == 200, r.text
    results = r.text.split('id="validation"')[1].split("</table>")[0]
    assert ">RW-O-1</a>" in results and "Matches" in results
    assert "Not evaluated" in results
    assert (
        g["membershipRule"]
        == next(x for x in api_groups(ready) if x["id"] == g["id"])["membershipRule"]
    ), "a draft is not saved"

    many = [f"id-{i}" for i in range(21)]
    r = ready.client.get(f"{BASE}/{g['id']}/validate", params={"run": "1", "device": many})
    assert r.status_code == 400
    assert "Choose at most 20 devices: 21 were chosen." in r.text
    assert 'id="validation"' not in r.text
    r = ready.client.get(f"{BASE}/{g['id']}/validate", params={"run": "1"})
    assert r.status_code == 400 and "Choose at least one device" in r.text
    r = ready.client.get(
        f"{BASE}/{g['id']}/validate", params={"run": "1", "device": yes.device_id, "rule": "("}
    )
    assert r.status_code == 400 and "(at position" in r.text

    # Assigned groups have no rule to validate.
    assigned = api_group(ready, displayName="Pilots")
    assert "Validate rules" not in ready.client.get(f"{BASE}/{assigned['id']}").text
    assert ready.client.get(f"{BASE}/{assigned['id']}/validate").status_code == 400


def test_edit_rule_pause_resume_and_delete(ready: Env) -> None:
    p1 = profile(ready, "Line 1")
    p2 = profile(ready, "Line 2")
    enroll(ready, p1, "L1")
    enroll(ready, p2, "L2")
    g = api_group(ready, 'device.enrollmentProfileName -eq "Line 1"', displayName="Lines")
    gid = g["id"]
    form = ready.client.get(f"{BASE}/{gid}/rule")
    assert form.status_code == 200
    assert rule_text(form.text) == 'device.enrollmentProfileName -eq "Line 1"'

    bad = post(ready.client, f"{BASE}/{gid}/rule", rule="device.deviceModel -eq", action="save")
    assert bad.status_code == 400 and 'id="rule-error"' in bad.text
    r = post(
        ready.client,
        f"{BASE}/{gid}/rule",
        action="build",
        **builder(("enrollmentProfileName", "eq", "Line 2")),
    )
    assert r.status_code == 200
    assert rule_text(r.text) == '(device.enrollmentProfileName -eq "Line 2")'
    r = post(ready.client, f"{BASE}/{gid}/rule", rule=rule_text(r.text), action="save")
    assert r.status_code == 200 and "Rule saved; the members were recomputed." in r.text
    assert member_names(ready.client.get(f"{BASE}/{gid}/members").text) == ["RW-L2"]

    # Pause: a device enrolling meanwhile is not added; Resume recomputes.
    r = post(ready.client, f"{BASE}/{gid}/processing", state="Paused")
    assert r.status_code == 200 and '<dd id="processing-state">Paused</dd>' in r.text
    assert "Resume processing" in r.text
    enroll(ready, p2, "L2-B")
    assert member_names(ready.client.get(f"{BASE}/{gid}/members").text) == ["RW-L2"]
    r = post(ready.client, f"{BASE}/{gid}/processing", state="On")
    assert '<dd id="processing-state">On</dd>' in r.text
    assert member_names(ready.client.get(f"{BASE}/{gid}/members").text) == ["RW-L2", "RW-L2-B"]
    assert post(ready.client, f"{BASE}/{gid}/processing", state="Off").status_code == 400

    # Delete asks first; No changes nothing.
    ask = ready.client.get(f"{BASE}/{gid}/delete")
    assert ask.status_code == 200 and "Delete <strong>Lines</strong>?" in ask.text
    r = post(ready.client, f"{BASE}/{gid}/delete", answer="no")
    assert r.status_code == 200 and str(r.url).endswith(f"{BASE}/{gid}")
    assert len(api_groups(ready)) == 1
    r = post(ready.client, f"{BASE}/{gid}/delete", answer="yes")
    assert r.status_code == 200 and "Group Lines deleted." in r.text
    assert api_groups(ready) == []
    assert ready.client.get(f"{BASE}/{gid}").status_code == 404
    activities = [e["activity"] for e in ready.audit(**{"$filter": "category eq 'Group'"})]
    assert {"Create group", "Update group", "Delete group"} <= set(activities)


def test_read_only_admin_sees_no_forms_and_cannot_post(ready: Env) -> None:
    dev = enroll(ready, profile(ready, "Line 1"), "L1")
    dynamic = api_group(ready, 'device.enrollmentProfileName -eq "Line 1"', displayName="Dyn")
    assigned = api_group(ready, displayName="Assigned")
    ready.admin("Read Only Operator", email="reader@example.com")
    ready.client.cookies.clear()
    assert sign_in(ready.client, "reader@example.com", PASSWORD).status_code == 303

    listing = ready.client.get(BASE)
    assert listing.status_code == 200 and ">Dyn</a>" in listing.text
    assert "New group" not in listing.text
    assert ready.client.get(f"{BASE}/new").status_code == 403
    for gid in (dynamic["id"], assigned["id"]):
        for path in ("", "/members", "/delete"):
            r = ready.client.get(f"{BASE}/{gid}{path}")
            assert r.status_code == 200, path
            assert 'method="post"' not in r.text.split("</header>")[1], path
    assert ready.client.get(f"{BASE}/{dynamic['id']}/rule").status_code == 403
    # Validate rules reads only: a GET form, open to readers.
    r = ready.client.get(
        f"{BASE}/{dynamic['id']}/validate", params={"run": "1", "device": dev.device_id}
    )
    assert r.status_code == 200 and "Matches" in r.text

    token = csrf(ready.client, BASE)
    posts: list[tuple[str, dict[str, str]]] = [
        (f"{BASE}/new", {"display_name": "X", "membership_type": "assigned"}),
        (f"{BASE}/{dynamic['id']}/rule", {"rule": 'device.deviceModel -eq "x"'}),
        (f"{BASE}/{dynamic['id']}/processing", {"state": "Paused"}),
        (f"{BASE}/{assigned['id']}/members/add", {"device_id": str(dev.device_id)}),
        (f"{BASE}/{assigned['id']}/members/{dev.device_id}/remove", {}),
        (f"{BASE}/{assigned['id']}/delete", {"answer": "yes"}),
    ]
    for path, data in posts:
        r = ready.client.post(path, data={"csrf_token": token, **data})
        assert r.status_code == 403, path
        assert groups.WRITE in r.text, path
    assert len(api_groups(ready)) == 2
    # Without the CSRF token a post is refused too, whoever sends it.
    assert ready.client.post(f"{BASE}/new", data={"display_name": "X"}).status_code == 403


def test_scoped_admin_sees_only_groups_of_their_tags(ready: Env) -> None:
    a = ready.tag("Plant A")
    b = ready.tag("Plant B")
    mine = api_group(ready, displayName="Plant A pilots", roleScopeTagIds=[a])
    other = api_group(ready, displayName="Plant B pilots", roleScopeTagIds=[b])
    ready.admin("Policy and Profile Manager", tags=["Plant A"], email="a-mgr@example.com")
    ready.client.cookies.clear()
    assert sign_in(ready.client, "a-mgr@example.com", PASSWORD).status_code == 303

    listing = ready.client.get(BASE).text
    assert ">Plant A pilots</a>" in listing and "Plant B pilots" not in listing
    assert ready.client.get(f"{BASE}/{mine['id']}").status_code == 200
    for path in ("", "/members", "/delete"):
        r = ready.client.get(f"{BASE}/{other['id']}{path}")
        assert r.status_code == 404, path
        assert "Plant B pilots" not in r.text
    r = post(ready.client, f"{BASE}/{other['id']}/delete", answer="yes")
    assert r.status_code == 404
    # A new group gets the admin's own tag.
    new = ready.client.get(f"{BASE}/new").text
    assert f'<option value="{a}">Plant A</option>' in new and "Plant B" not in new
    r = new_group(ready.client, display_name="Plant A scanners", membership_type="assigned")
    assert r.status_code == 200 and "Group Plant A scanners created." in r.text
    assert "<dt>Scope tags</dt><dd>Plant A</dd>" in r.text


def test_unknown_group_is_not_found_and_the_console_needs_sign_in(ready: Env) -> None:
    assert ready.client.get(f"{BASE}/00000000-0000-0000-0000-000000000000").status_code == 404
    ready.client.cookies.clear()
    r = ready.client.get(BASE, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/console/login")
