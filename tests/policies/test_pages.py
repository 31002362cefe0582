"""The policies console through HTTP forms: Configuration and Compliance lists with their
device status counts; the create wizards of device restrictions, Wi-Fi profiles and
compliance policies, stepped through as a browser does (each step's hidden fields carried),
through to creation and assignment; bad values shown in place naming the field; a policy's
properties, Edit, Assignments, Delete and Device status (per device and per setting); a
device's Compliance tab; the compliance dashboard and settings; and RBAC on every page."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest

from aospmdm.core import clock
from aospmdm.policies import service as policies
from tests.conftest import PASSWORD, Env
from tests.policies.fleet import (
    COMPLIANCE,
    COMPLIANCE_TYPE,
    CONFIGS,
    LOCKED,
    RESTRICTIONS_TYPE,
    WIFI_TYPE,
    apply,
    assign,
    check_in,
    create,
    device,
    group,
    managed,
    ready,
)
from tests.sync.device import Device
from tests.web.test_sign_in import csrf, sign_in

BASE = "/console/policies"
HOUR = 3600


# --- helpers -------------------------------------------------------------------------------------


@pytest.fixture
def secret(env: Env) -> str:
    """A ready tenant (authority, licenses, a profile), the full admin signed in; returns the
    enrollment secret."""
    s = ready(env)
    assert sign_in(env.client, "root@example.com", PASSWORD).status_code == 303
    return s


class FormReader(HTMLParser):
    """The fields a browser would submit from one form: (name, value) pairs, checkboxes only
    when ticked, each select's selected options; and the checkboxes' own values."""

    def __init__(self, form_id: str):
        super().__init__(convert_charrefs=True)
        self.form_id = form_id
        self.inside = False
        self.pairs: list[tuple[str, str]] = []
        self.boxes: dict[str, str] = {}
        self._select: str | None = None
        self._options: list[tuple[str, bool]] = []
        self._multiple = False
        self._textarea: str | None = None
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and a.get("id") == self.form_id:
            self.inside = True
        if not self.inside or "disabled" in a:
            return
        name = a.get("name", "")
        if tag == "input" and name and a.get("type") not in ("submit", "button"):
            if a.get("type") == "checkbox":
                self.boxes[name] = a.get("value", "on")
                if "checked" in a:
                    self.pairs.append((name, a.get("value", "on")))
            else:
                self.pairs.append((name, a.get("value", "")))
        elif tag == "select" and name:
            self._select, self._options, self._multiple = name, [], "multiple" in a
        elif tag == "option" and self._select is not None:
            self._options.append((a.get("value", ""), "selected" in a))
        elif tag == "textarea" and name:
            self._textarea, self._text = name, ""

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form" and self.inside:
            self.inside = False
        elif tag == "select" and self._select is not None:
            chosen = [v for v, sel in self._options if sel]
            if not chosen and not self._multiple and self._options:
                chosen = [self._options[0][0]]
            self.pairs += [(self._select, v) for v in chosen]
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            self.pairs.append((self._textarea, self._text.removeprefix("\n")))
            self._textarea = None


def fields_of(page: str, form_id: str = "wizard") -> FormReader:
    reader = FormReader(form_id)
    reader.feed(page)
    assert reader.pairs, f"no form #{form_id} on the page"
    return reader


def submit(
    client: Any,
    page: str,
    path: str,
    answers: dict[str, Any],
    form_id: str = "wizard",
    **extra: str,
) -> httpx.Response:
    """Fill in a form of ``page`` as a person would and post it: an answer replaces the field's
    value (True/False ticks a checkbox, a list gives a multiple choice)."""
    form = fields_of(page, form_id)
    pairs = [(k, v) for k, v in form.pairs if k not in answers]
    for name, value in answers.items():
        if value is True:
            pairs.append((name, form.boxes.get(name, "on")))
        elif isinstance(value, list):
            pairs += [(name, v) for v in value]
        elif value is not False:
            pairs.append((name, str(value)))
    pairs += list(extra.items())
    response: httpx.Response = client.post(path, data=_multi(pairs))
    return response


def _multi(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            out[k] = [*out[k], v] if isinstance(out[k], list) else [out[k], v]
        else:
            out[k] = v
    return out


def current_step(page: str) -> str:
    m = re.search(r'<li aria-current="step">\d+\. ([^<]+)</li>', page)
    assert m, "no current step"
    return html.unescape(m.group(1))


def step(
    client: Any, kind: str, page: str, answers: dict[str, Any], action: str = "next"
) -> httpx.Response:
    return submit(client, page, f"{BASE}/create/{kind}", answers, action=action)


def wizard(client: Any, kind: str, *answers: dict[str, Any]) -> httpx.Response:
    """Walk the wizard: each step's answers, then Next; the last response is the review."""
    page = client.get(f"{BASE}/create/{kind}")
    assert page.status_code == 200, page.text
    for given in answers:
        page = step(client, kind, page.text, given)
        assert page.status_code == 200, page.text
    return page


def field_error(page: str, name: str) -> str:
    m = re.search(
        rf'<p class="field-error" id="{re.escape(name)}-error" role="alert">([^<]*)</p>', page
    )
    assert m, f"no error beside {name}"
    return html.unescape(m.group(1))


def api_list(env: Env, collection: str) -> list[dict[str, Any]]:
    r = env.call("GET", collection)
    assert r.status_code == 200, r.text
    return list(r.json()["value"])


def table(page: str, table_id: str) -> list[list[str]]:
    """A table's body rows, each cell's text."""
    body = page.split(f'id="{table_id}"')[1].split("</table>")[0].split("<tbody>")[1]
    rows = []
    for row in body.split("<tr")[1:]:
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        rows.append([html.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in cells])
    return rows


def post(client: Any, path: str, **fields: Any) -> httpx.Response:
    response: httpx.Response = client.post(
        path, data={"csrf_token": csrf(client, f"{BASE}/configuration"), **fields}
    )
    return response


def restrictions(env: Env, name: str = "Baseline", **settings: Any) -> dict[str, Any]:
    return create(env, CONFIGS, {"@odata.type": RESTRICTIONS_TYPE, "displayName": name, **settings})


def compliance_policy(
    env: Env,
    name: str = "Compliance baseline",
    actions: list[dict[str, Any]] | None = None,
    **settings: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {"@odata.type": COMPLIANCE_TYPE, "displayName": name, **settings}
    if actions is not None:
        body["scheduledActionsForRule"] = [
            {"ruleName": "PasswordRequired", "scheduledActionConfigurations": actions}
        ]
    return create(env, COMPLIANCE, body)


def device_name(env: Env, d: Device) -> str:
    return str(managed(env, d)["deviceName"])


def device_statuses(page: str) -> dict[str, str]:
    """Device status: each device's id (from its row's link) and its status."""
    rows = page.split('id="device-status"')[1].split("</table>")[0].split("<tr")[2:]
    out = {}
    for row in rows:
        m = re.search(r'/status/([0-9a-f-]{36})"', row)
        status = re.search(r'<td class="status">([^<]*)</td>', row)
        assert m and status, row
        out[m.group(1)] = html.unescape(status.group(1))
    return out


# --- the lists ---------------------------------------------------------------------------------


def test_nav_and_the_empty_lists(env: Env, secret: str) -> None:
    home = env.client.get("/console").text
    assert f'<a href="{BASE}">Policies</a>' in home
    r = env.client.get(BASE, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"{BASE}/configuration"
    page = env.client.get(f"{BASE}/configuration")
    assert page.status_code == 200
    assert "<h1>Configuration</h1>" in page.text
    assert f'<a href="{BASE}">Policies</a>' in page.text.split("</header>")[0].replace(
        ' aria-current="page"', ""
    )
    sub = page.text.split('aria-label="Policies"')[1].split("</nav>")[0]
    assert f'<a href="{BASE}/configuration" aria-current="page">Configuration</a>' in sub
    assert f'<a href="{BASE}/compliance">Compliance</a>' in sub
    assert "No configuration profiles yet." in page.text
    assert f'<a class="button" href="{BASE}/configuration/create">Create profile</a>' in page.text
    for column in (
        "Policy type",
        "Assigned",
        "Version",
        "Succeeded",
        "Error",
        "Conflict",
        "Not applicable",
        "Pending",
    ):
        assert f"<th>{column}</th>" in page.text, column
    chooser = env.client.get(f"{BASE}/configuration/create").text
    assert '<option value="restrictions">Device restrictions</option>' in chooser
    assert '<option value="wifi">Wi-Fi</option>' in chooser
    r = env.client.get(f"{BASE}/create", params={"kind": "wifi"}, follow_redirects=False)
    assert r.headers["location"] == f"{BASE}/create/wifi"

    page = env.client.get(f"{BASE}/compliance")
    assert page.status_code == 200 and "No compliance policies yet." in page.text
    assert f'<a class="button" href="{BASE}/create/compliance">Create policy</a>' in page.text
    for column in ("Compliant", "In grace period", "Not compliant", "Pending"):
        assert f"<th>{column}</th>" in page.text, column
    assert env.client.get(f"{BASE}/create/unknown").status_code == 404


# --- the wizards -------------------------------------------------------------------------------


def test_restrictions_wizard_creates_and_assigns_in_one_go(env: Env, secret: str) -> None:
    a = device(env, secret)
    gid = group(env, "Line 1 headsets", [a])
    group(env, "Office", [])
    page = env.client.get(f"{BASE}/create/restrictions")
    assert current_step(page.text) == "Basics"
    assert page.headers["cache-control"] == "no-store"
    steps = re.findall(r"<li[^>]*>\d+\. ([^<]+)</li>", page.text)
    assert steps == [
        "Basics",
        "Configuration settings",
        "Scope tags",
        "Assignments",
        "Review + create",
    ]

    page = step(
        env.client,
        "restrictions",
        page.text,
        {"display_name": "Line 1 lockdown", "description": "Headsets"},
    )
    assert current_step(page.text) == "Configuration settings"
    # Grouped as in the Intune docs, each yes/no setting Not configured by default.
    legends = re.findall(r"<legend>([^<]+)</legend>", page.text)
    assert legends == ["General", "Password", "Connectivity"]
    assert '<label for="cameraBlocked">Block camera</label>' in page.text
    camera = page.text.split('id="cameraBlocked"')[1].split("</select>")[0]
    assert '<option value="" selected>Not configured</option>' in camera
    assert '<option value="true">Block</option>' in camera
    kinds = page.text.split('id="passwordRequiredType"')[1].split("</select>")[0]
    assert re.findall(r'<option value="(\w*)"', kinds) == [
        "",
        "deviceDefault",
        "numeric",
        "numericComplex",
    ]
    assert (
        'id="passwordMinimumLength" name="passwordMinimumLength" type="number" min="4" max="16"'
        in page.text
    )
    assert "4 to 16 characters." in page.text

    page = step(
        env.client,
        "restrictions",
        page.text,
        {"cameraBlocked": "true", "passwordRequiredType": "numeric", "passwordMinimumLength": "6"},
    )
    assert current_step(page.text) == "Scope tags"
    page = step(env.client, "restrictions", page.text, {})
    assert current_step(page.text) == "Assignments"
    assert table(page.text, "assignment-groups") == [
        ["Line 1 headsets", "", ""],
        ["Office", "", ""],
    ]
    page = step(env.client, "restrictions", page.text, {"include": [gid]})
    assert current_step(page.text) == "Review + create"
    review = page.text.split('id="review"')[1].split("<form")[0]
    for shown in (
        "Line 1 lockdown",
        "Headsets",
        "Device restrictions",
        "<dt>Block camera</dt><dd>Block</dd>",
        "<dt>Required password type</dt><dd>Numeric</dd>",
        "<dt>Minimum password length</dt><dd>6 characters</dd>",
        "<dt>Included groups</dt><dd>Line 1 headsets</dd>",
        "Default",
    ):
        assert shown in review, shown
    assert '<dt>Block screen capture</dt><dd class="muted">Not configured</dd>' in review
    assert api_list(env, CONFIGS) == [], "the dry runs of each step saved nothing"

    # Previous keeps the answers.
    back = step(env.client, "restrictions", page.text, {}, action="back")
    assert current_step(back.text) == "Assignments"
    assert f'name="include" value="{gid}" aria-label="Include Line 1 headsets" checked' in back.text

    done = step(env.client, "restrictions", page.text, {}, action="create")
    assert done.status_code == 200, done.text
    assert "Policy Line 1 lockdown created and assigned to 1 group(s)." in done.text
    [created] = api_list(env, CONFIGS)
    assert str(done.url).startswith(f"http://testserver{BASE}/{created['id']}?notice=")
    assert created["cameraBlocked"] is True and created["screenCaptureBlocked"] is None
    assert created["passwordRequiredType"] == "numeric" and created["passwordMinimumLength"] == 6
    assert created["description"] == "Headsets" and created["roleScopeTagIds"] == ["0"]
    r = env.call("GET", f"{CONFIGS}/{created['id']}/assignments").json()["value"]
    assert [x["target"]["groupId"] for x in r] == [gid]
    activities = [
        e["activity"] for e in env.audit(**{"$filter": "category eq 'DeviceConfiguration'"})
    ]
    assert sorted(activities) == ["Assign policy", "Create policy"]
    # The properties: settings with Not configured for the unset ones.
    settings = done.text.split('id="settings"')[1]
    assert "<dt>Block camera</dt><dd>Block</dd>" in settings
    assert '<dt>Block factory reset</dt><dd class="muted">Not configured</dd>' in settings
    assert "<dt>Included groups</dt><dd>Line 1 headsets</dd>" in done.text
    # The device gets it at its next check-in.
    got = apply(a)
    assert got is not None and got["restrictions"]["cameraBlocked"] is True
    listing = env.client.get(f"{BASE}/configuration").text
    [row] = table(listing, "policies")
    assert row[:4] == ["Line 1 lockdown", "Android (AOSP)", "Device restrictions", "Yes"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", row[4]) and row[5] == "1"
    # Succeeded, Error, Conflict, Not applicable, Pending.
    assert row[6:] == ["1", "0", "0", "0", "0"]


def test_bad_values_are_shown_in_place_naming_the_field(env: Env, secret: str) -> None:
    basics = wizard(env.client, "restrictions")
    r = step(env.client, "restrictions", basics.text, {"display_name": "  "})
    assert r.status_code == 400 and current_step(r.text) == "Basics"
    assert "Name" in field_error(r.text, "display_name")
    settings = step(env.client, "restrictions", basics.text, {"display_name": "Strict"})

    r = step(env.client, "restrictions", settings.text, {"passwordMinimumLength": "3"})
    assert r.status_code == 400 and current_step(r.text) == "Configuration settings"
    assert field_error(r.text, "passwordMinimumLength") == (
        "Minimum password length: Input should be greater than or equal to 4."
    )
    assert 'name="passwordMinimumLength" type="number" min="4" max="16" value="3"' in r.text
    assert 'aria-invalid="true" aria-describedby="passwordMinimumLength-error"' in r.text
    r = step(env.client, "restrictions", settings.text, {"passwordMinimumLength": "six"})
    assert r.status_code == 400
    assert "'six' is not a whole number" in field_error(r.text, "passwordMinimumLength")
    # A Graph password type AOSP cannot enforce: the known limitation, beside the field.
    r = step(env.client, "restrictions", settings.text, {"passwordRequiredType": "alphanumeric"})
    assert r.status_code == 400
    message = field_error(r.text, "passwordRequiredType")
    assert message.startswith("Required password type: Android (AOSP) devices support only")
    assert "'alphanumeric' is a known limitation" in message
    r = step(
        env.client,
        "restrictions",
        settings.text,
        {"passwordSignInFailureCountBeforeFactoryReset": "12"},
    )
    assert "Number of sign-in failures before wiping device" in field_error(
        r.text, "passwordSignInFailureCountBeforeFactoryReset"
    )

    # Wi-Fi: the SSID and a WPA key are needed, a manual proxy needs its address.
    page = wizard(env.client, "wifi", {"display_name": "Production"})
    assert current_step(page.text) == "Configuration settings"
    r = step(env.client, "wifi", page.text, {})
    assert r.status_code == 400 and "SSID" in field_error(r.text, "ssid")
    r = step(env.client, "wifi", page.text, {"ssid": "prod", "wiFiSecurityType": "wpaPersonal"})
    assert "needs its pre-shared key" in field_error(r.text, "preSharedKey")
    r = step(
        env.client,
        "wifi",
        page.text,
        {"ssid": "prod", "wiFiSecurityType": "wpaPersonal", "preSharedKey": "short"},
    )
    assert "8 to 63 characters" in field_error(r.text, "preSharedKey")
    r = step(env.client, "wifi", page.text, {"ssid": "prod", "proxySettings": "manual"})
    assert "proxyManualPort" in field_error(r.text, "proxyManualAddress")
    r = step(
        env.client,
        "wifi",
        page.text,
        {
            "ssid": "prod",
            "proxySettings": "manual",
            "proxyManualAddress": "proxy",
            "proxyManualPort": "70000",
        },
    )
    assert (
        field_error(r.text, "proxyManualPort")
        == "Port number: Input should be less than or equal to 65535."
    )

    # Compliance: version and patch formats, and a notification needs its addresses.
    page = wizard(env.client, "compliance", {"display_name": "Baseline"})
    r = step(env.client, "compliance", page.text, {"osMinimumVersion": "eleven"})
    assert "Minimum OS version" in field_error(r.text, "osMinimumVersion")
    r = step(env.client, "compliance", page.text, {"minAndroidSecurityPatchLevel": "2024-13-01"})
    assert "2024-01-01" in field_error(r.text, "minAndroidSecurityPatchLevel")
    r = step(
        env.client, "compliance", page.text, {"osMinimumVersion": "14", "osMaximumVersion": "12"}
    )
    assert "above osMaximumVersion" in field_error(r.text, "osMinimumVersion")
    actions = step(env.client, "compliance", page.text, {"passwordRequired": "true"})
    assert current_step(actions.text) == "Actions for noncompliance"
    r = step(env.client, "compliance", actions.text, {"notify": True})
    assert r.status_code == 400 and "mail addresses" in field_error(r.text, "notify_emails")
    r = step(
        env.client, "compliance", actions.text, {"notify": True, "notify_emails": "not-an-address"}
    )
    assert "Send email: mail addresses" in field_error(r.text, "notify_emails")
    r = step(env.client, "compliance", actions.text, {"lock": True, "lock_hours": "soon"})
    assert "not a whole number of hours" in field_error(r.text, "lock_hours")
    r = step(env.client, "compliance", actions.text, {"block_hours": "9000"})
    assert "less than or equal to 8760" in field_error(r.text, "block_hours")
    assert api_list(env, CONFIGS) == [] and api_list(env, COMPLIANCE) == []


def test_wifi_wizard_keeps_the_key_write_only(env: Env, secret: str) -> None:
    a = device(env, secret)
    gid = group(env, "Staged", [a])
    key = "production-key-42"
    review = wizard(
        env.client,
        "wifi",
        {"display_name": "Production Wi-Fi"},
        {
            "networkName": "Production",
            "ssid": "prod-net",
            "connectAutomatically": True,
            "wiFiSecurityType": "wpaPersonal",
            "preSharedKey": key,
            "proxySettings": "manual",
            "proxyManualAddress": "proxy.example.com",
            "proxyManualPort": "3128",
            "proxyExclusionList": "intranet.example.com; *.local",
        },
        {},
        {"include": [gid]},
    )
    assert current_step(review.text) == "Review + create"
    assert review.headers["cache-control"] == "no-store"
    shown = review.text.split('id="review"')[1].split("<form")[0]
    assert f"Set ({len(key)} characters, not shown)" in shown and key not in shown
    assert "<dt>Wi-Fi type</dt><dd>WPA-Pre-shared key</dd>" in shown
    assert "<dt>Connect automatically</dt><dd>Yes</dd>" in shown
    assert "<dt>Hidden network</dt><dd>No</dd>" in shown
    assert "<dt>Port number</dt><dd>3128</dd>" in shown
    assert "Proxy server URL" not in shown, "only the chosen proxy's fields"
    done = step(env.client, "wifi", review.text, {}, action="create")
    assert "Policy Production Wi-Fi created and assigned to 1 group(s)." in done.text
    [created] = api_list(env, CONFIGS)
    assert created["@odata.type"] == WIFI_TYPE
    assert created["ssid"] == "prod-net" and created["networkName"] == "Production"
    assert created["preSharedKeyIsSet"] is True and created["connectAutomatically"] is True
    assert created["connectWhenNetworkNameIsHidden"] is False
    assert created["proxyExclusionList"] == ["intranet.example.com", "*.local"]
    assert created["proxyManualPort"] == 3128
    assert key not in done.text
    assert '<span id="key-state">A key is set (not shown)</span>' in done.text
    edit = env.client.get(f"{BASE}/{created['id']}/edit")
    assert key not in edit.text
    assert (
        'id="preSharedKey" name="preSharedKey" type="password" autocomplete="new-password" '
        'maxlength="64" value=""' in edit.text
    )
    assert "A key is set: leave this empty to keep it." in edit.text
    # Saving with the key left empty keeps it; the device gets the network with its key.
    r = submit(
        env.client,
        edit.text,
        f"{BASE}/{created['id']}/edit",
        {"connectWhenNetworkNameIsHidden": True},
        form_id="edit-policy",
    )
    assert "Policy saved as version 2" in r.text
    got = apply(a)
    assert got is not None
    [network] = got["wifiNetworks"]
    assert (
        network["ssid"] == "prod-net"
        and network["preSharedKey"] == key
        and network["hidden"] is True
    )


def test_compliance_wizard_with_actions_and_its_device_status(env: Env, secret: str) -> None:
    a, b = device(env, secret), device(env, secret)
    check_in(a, facts=LOCKED)
    check_in(b, facts=LOCKED | {"os_version": "13"})
    gid = group(env, "Line 1", [a, b])
    page = wizard(env.client, "compliance", {"display_name": "Android 12 or later"})
    legends = re.findall(r"<legend>([^<]+)</legend>", page.text)
    assert legends == ["Device Health", "Device Properties", "System Security"]
    rooted = page.text.split('id="securityBlockJailbrokenDevices"')[1].split("</select>")[0]
    assert re.findall(r'<option value="(\w*)"[^>]*>([^<]+)<', rooted) == [
        ("", "Not configured"),
        ("true", "Block"),
    ]
    page = step(
        env.client, "compliance", page.text, {"osMinimumVersion": "12", "passwordRequired": "true"}
    )
    assert current_step(page.text) == "Actions for noncompliance"
    assert (
        'id="block_hours" name="block_hours" aria-label="Mark device noncompliant: hours" value="0"'
        in page.text
    )
    page = step(
        env.client,
        "compliance",
        page.text,
        {
            "block_hours": "0",
            "retire": True,
            "retire_hours": "0",
            "notify": True,
            "notify_hours": "0",
            "notify_emails": "it@example.com; lead@example.com",
        },
    )
    page = step(env.client, "compliance", page.text, {})
    page = step(env.client, "compliance", page.text, {"include": [gid]})
    actions = page.text.split('id="review-actions"')[1].split("</ul>")[0]
    assert "Mark device noncompliant after 0 hour(s)" in actions
    assert "Send email to it@example.com; lead@example.com after 0 hour(s)" in actions
    assert "Add device to retire list after 0 hour(s)" in actions
    done = step(env.client, "compliance", page.text, {}, action="create")
    assert "Policy Android 12 or later created and assigned to 1 group(s)." in done.text
    [created] = api_list(env, COMPLIANCE)
    assert created["osMinimumVersion"] == "12" and created["passwordRequired"] is True
    configs = created["scheduledActionsForRule"][0]["scheduledActionConfigurations"]
    assert [(c["actionType"], c["gracePeriodHours"]) for c in configs] == [
        ("block", 0),
        ("notification", 0),
        ("retire", 0),
    ]
    assert configs[1]["notificationMessageCCList"] == ["it@example.com", "lead@example.com"]
    assert table(done.text, "actions") == [
        ["Mark device noncompliant", "Immediately", "—"],
        ["Send email to the addresses below", "Immediately", "it@example.com, lead@example.com"],
        ["Add device to retire list", "Immediately", "—"],
    ]
    # Judged at once: Android 11 fails, Android 13 passes.
    pid = created["id"]
    rows = device_statuses(env.client.get(f"{BASE}/{pid}/status").text)
    assert rows == {a.device_id: "Not compliant", b.device_id: "Compliant"}
    listing = env.client.get(f"{BASE}/compliance").text
    assert table(listing, "policies")[0][5:] == ["1", "0", "1", "0", "0"]
    detail = env.client.get(f"{BASE}/{pid}/status/{a.device_id}").text
    assert '<dd id="device-policy-status">Not compliant</dd>' in detail
    states = table(detail, "setting-states")
    assert states[0][:2] == ["Minimum OS version", "Not compliant"]
    assert states[0][2] == "11" and "older than the minimum 12" in states[0][3]
    assert states[1][:2] == ["Require a password to unlock devices", "Compliant"]
    assert (
        env.client.get(f"{BASE}/{pid}/status/00000000-0000-0000-0000-000000000000").status_code
        == 404
    )


def test_in_grace_period_until_the_block_action_falls_due(env: Env, secret: str) -> None:
    a = device(env, secret)
    gid = group(env, "Line 1", [a])
    p = compliance_policy(
        env,
        actions=[{"actionType": "block", "gracePeriodHours": 24}],
        storageRequireEncryption=True,
    )
    assign(env, COMPLIANCE, p["id"], [gid])
    check_in(a, facts={"is_encrypted": False})
    page = env.client.get(f"{BASE}/{p['id']}/status").text
    [row] = table(page, "device-status")
    assert row[2] == "In grace period" and row[4] != "—"
    assert "<strong>1</strong>" in page.split("In grace period</span>")[1][:40]
    tab = env.client.get(f"/console/devices/{a.device_id}/compliance").text
    assert '<strong id="compliance-state">In grace period</strong>' in tab
    clock.advance(25 * HOUR)
    with env.db() as s:
        policies.compliance_job(s)
    # A day later the console session has timed out: sign in again.
    assert sign_in(env.client, "root@example.com", PASSWORD).status_code == 303
    [row] = table(env.client.get(f"{BASE}/{p['id']}/status").text, "device-status")
    assert row[2] == "Not compliant"


def test_configuration_device_status_succeeded_pending_and_the_winning_policy(
    env: Env, secret: str
) -> None:
    a, b = device(env, secret), device(env, secret)
    gid = group(env, "Line 1", [a, b])
    weak = restrictions(env, "Weak", passwordMinimumLength=6, cameraBlocked=True)
    strict = restrictions(env, "Strict", passwordMinimumLength=8)
    assign(env, CONFIGS, weak["id"], [gid])
    assign(env, CONFIGS, strict["id"], [gid])
    apply(a)
    page = env.client.get(f"{BASE}/{weak['id']}/status").text
    assert device_statuses(page) == {a.device_id: "Succeeded", b.device_id: "Pending"}
    counts = page.split('id="status-counts"')[1].split("</ul>")[0]
    assert '<span class="count-label">Succeeded</span> <strong>1</strong>' in counts
    assert '<span class="count-label">Pending</span> <strong>1</strong>' in counts
    listing = table(env.client.get(f"{BASE}/configuration").text, "policies")
    assert [r[0] for r in listing] == ["Strict", "Weak"]
    assert listing[1][6:] == ["1", "0", "0", "0", "1"]
    # The device's per-setting states: passwordMinimumLength comes from Strict (8 > 6).
    assert f'href="{BASE}/{weak["id"]}/status/{a.device_id}"' in page
    detail = env.client.get(f"{BASE}/{weak['id']}/status/{a.device_id}").text
    assert '<dd id="device-policy-status">Succeeded</dd>' in detail
    states = {r[0]: r for r in table(detail, "setting-states")}
    assert states["Minimum password length"][1:3] == ["Succeeded", "8"]
    assert states["Minimum password length"][4] == "Strict"
    assert f'<a href="{BASE}/{strict["id"]}">Strict</a>' in detail
    assert states["Block camera"][4] == "Weak"


def test_edit_settings_assignments_and_nothing_changed(env: Env, secret: str) -> None:
    a = device(env, secret)
    g1 = group(env, "Line 1", [a])
    g2 = group(env, "Line 2", [])
    p = restrictions(env, "Baseline", passwordMinimumLength=6, cameraBlocked=True)
    page = env.client.get(f"{BASE}/{p['id']}")
    assert f'<a class="button" href="{BASE}/{p["id"]}/edit">Edit settings</a>' in page.text
    edit = env.client.get(f"{BASE}/{p['id']}/edit").text
    assert 'name="passwordMinimumLength" type="number" min="4" max="16" value="6"' in edit
    assert (
        '<option value="true" selected>Block</option>'
        in edit.split('id="cameraBlocked"')[1].split("</select>")[0]
    )
    path = f"{BASE}/{p['id']}/edit"
    r = submit(env.client, edit, path, {}, form_id="edit-policy")
    assert r.status_code == 200 and "Nothing changed." in r.text
    r = submit(env.client, edit, path, {"passwordMinimumLength": "20"}, form_id="edit-policy")
    assert r.status_code == 400
    assert "less than or equal to 16" in field_error(r.text, "passwordMinimumLength")
    r = submit(
        env.client,
        edit,
        path,
        {"passwordMinimumLength": "8", "cameraBlocked": "", "display_name": "Baseline v2"},
        form_id="edit-policy",
    )
    assert r.status_code == 200 and "Policy saved as version 2" in r.text
    got = env.call("GET", f"{CONFIGS}/{p['id']}").json()
    assert got["passwordMinimumLength"] == 8 and got["cameraBlocked"] is None
    assert got["displayName"] == "Baseline v2" and got["version"] == 2
    assert '<dt>Block camera</dt><dd class="muted">Not configured</dd>' in r.text

    # Assignments: include one group, exclude another; the same group both ways is refused.
    tab = env.client.get(f"{BASE}/{p['id']}/assignments").text
    assert table(tab, "assignment-groups") == [["Line 1", "", ""], ["Line 2", "", ""]]
    r = submit(
        env.client,
        tab,
        f"{BASE}/{p['id']}/assignments",
        {"include": [g1], "exclude": [g1]},
        form_id="assignments",
    )
    assert r.status_code == 400 and "both included and excluded" in r.text
    assert 'id="include-error"' in r.text or 'id="exclude-error"' in r.text
    r = submit(
        env.client,
        tab,
        f"{BASE}/{p['id']}/assignments",
        {"include": [g1], "exclude": [g2]},
        form_id="assignments",
    )
    assert r.status_code == 200 and "Assignments saved: 1 included, 1 excluded group(s)." in r.text
    assert f'value="{g1}" aria-label="Include Line 1" checked' in r.text
    assert f'value="{g2}" aria-label="Exclude Line 2" checked' in r.text
    summary = env.client.get(f"{BASE}/{p['id']}").text
    assert "<dt>Included groups</dt><dd>Line 1</dd>" in summary
    assert "<dt>Excluded groups</dt><dd>Line 2</dd>" in summary
    assert apply(a) is not None


def test_compliance_edit_changes_actions(env: Env, secret: str) -> None:
    p = compliance_policy(env, passwordRequired=True)
    edit = env.client.get(f"{BASE}/{p['id']}/edit").text
    assert 'id="lock" name="lock" value="on">' in edit
    path = f"{BASE}/{p['id']}/edit"
    r = submit(
        env.client,
        edit,
        path,
        {"lock": True, "lock_hours": "4", "block_hours": "12"},
        form_id="edit-policy",
    )
    assert "Policy saved as version 2" in r.text
    got = env.call("GET", f"{COMPLIANCE}/{p['id']}").json()
    configs = got["scheduledActionsForRule"][0]["scheduledActionConfigurations"]
    assert [(c["actionType"], c["gracePeriodHours"]) for c in configs] == [
        ("block", 12),
        ("remoteLock", 4),
    ]
    edit = env.client.get(path).text
    assert 'id="lock" name="lock" value="on" checked>' in edit
    assert 'name="lock_hours" aria-label="Remotely lock: hours" value="4"' in edit


def test_delete_asks_yes_or_no(env: Env, secret: str) -> None:
    p = restrictions(env, "Old")
    c = compliance_policy(env, "Old compliance")
    ask = env.client.get(f"{BASE}/{p['id']}/delete")
    assert ask.status_code == 200 and "Delete <strong>Old</strong>?" in ask.text
    r = post(env.client, f"{BASE}/{p['id']}/delete", answer="no")
    assert r.status_code == 200 and str(r.url) == f"http://testserver{BASE}/{p['id']}"
    assert len(api_list(env, CONFIGS)) == 1
    r = post(env.client, f"{BASE}/{p['id']}/delete", answer="yes")
    assert r.status_code == 200 and "Policy Old deleted." in r.text
    assert str(r.url).startswith(f"http://testserver{BASE}/configuration")
    assert api_list(env, CONFIGS) == []
    r = post(env.client, f"{BASE}/{c['id']}/delete", answer="yes")
    assert str(r.url).startswith(f"http://testserver{BASE}/compliance")
    assert env.client.get(f"{BASE}/{p['id']}").status_code == 404


def test_a_devices_compliance_tab_lists_what_failed_and_why(env: Env, secret: str) -> None:
    a = device(env, secret)
    gid = group(env, "Line 1", [a])
    check_in(a, facts={"passcode_type": "none", "passcode_length": 0})
    c = compliance_policy(env, "Passcode", passwordRequired=True, osMinimumVersion="10")
    r = restrictions(env, "Camera", cameraBlocked=True)
    assign(env, COMPLIANCE, c["id"], [gid])
    assign(env, CONFIGS, r["id"], [gid])
    overview = env.client.get(f"/console/devices/{a.device_id}").text
    assert f'<a href="/console/devices/{a.device_id}/compliance">Compliance</a>' in overview
    tab = env.client.get(f"/console/devices/{a.device_id}/compliance")
    assert tab.status_code == 200
    assert '<strong id="compliance-state">Not compliant</strong>' in tab.text
    assert table(tab.text, "compliance-policies") == [
        ["Default Device Compliance Policy", "Compliant", "—"],
        ["Passcode", "Not compliant", table(tab.text, "compliance-policies")[1][2]],
    ]
    section = tab.text.split(f'id="policy-{c["id"]}"')[1].split("</section>")[0]
    assert '<p class="failed-summary">Failed: Require a password to unlock devices</p>' in section
    assert "No passcode is set." in section
    assert "Minimum OS version" in section and "Compliant" in section
    default = tab.text.split('id="default-policy"')[1].split("</section>")[0]
    assert "Is active" in default
    [config] = table(tab.text, "configuration-policies")
    assert config[:3] == ["Camera", "Device restrictions", "Pending"]
    apply(a, facts={"passcode_type": "none", "passcode_length": 0})
    [config] = table(
        env.client.get(f"/console/devices/{a.device_id}/compliance").text, "configuration-policies"
    )
    assert config[2] == "Succeeded"
    # secureByDefault names the device with no policy in the Default policy.
    b = device(env, secret)
    r2 = post(
        env.client, f"{BASE}/compliance/settings", secure_by_default="true", validity_days="30"
    )
    assert r2.status_code == 200
    tab = env.client.get(f"/console/devices/{b.device_id}/compliance").text
    assert '<strong id="compliance-state">Not compliant</strong>' in tab
    assert '<p class="muted" id="no-compliance-policy">' in tab
    default = tab.split('id="default-policy"')[1].split("</section>")[0]
    assert (
        "Has a compliance policy assigned" in default
        and "No compliance policy is assigned" in default
    )


def test_dashboard_counts_worst_policies_failing_settings_and_retire_list(
    env: Env, secret: str
) -> None:
    a, b, c = device(env, secret), device(env, secret), device(env, secret)
    check_in(a, facts=LOCKED)
    check_in(b, facts={"passcode_type": "none", "passcode_length": 0})
    gid = group(env, "All", [a, b, c])
    os_policy = compliance_policy(
        env,
        "Android 12",
        actions=[{"actionType": "retire", "gracePeriodHours": 0}],
        osMinimumVersion="12",
    )
    pass_policy = compliance_policy(env, "Passcode", passwordRequired=True)
    assign(env, COMPLIANCE, os_policy["id"], [gid])
    assign(env, COMPLIANCE, pass_policy["id"], [gid])
    page = env.client.get(f"{BASE}/compliance/dashboard")
    assert page.status_code == 200
    summary = page.text.split('id="state-summary"')[1].split("</ul>")[0]
    assert '<span class="count-label">Not compliant</span> <strong>3</strong>' in summary
    assert '<span class="count-label">Compliant</span> <strong>0</strong>' in summary
    # c never reported its passcode: Pending for Passcode, not a failure.
    assert table(page.text, "worst-policies") == [["Android 12", "3", "0"], ["Passcode", "1", "0"]]
    assert table(page.text, "failing-settings") == [
        ["Minimum OS version", "3"],
        ["Require a password to unlock devices", "1"],
    ]
    listing = {r[0]: r[5:] for r in table(env.client.get(f"{BASE}/compliance").text, "policies")}
    assert listing == {
        "Android 12": ["0", "0", "3", "0", "0"],
        "Passcode": ["1", "0", "1", "0", "1"],
    }
    retire = page.text.split('id="retire-list"')[1].split("</table>")[0]
    listed = re.findall(r'href="/console/devices/([0-9a-f-]{36})/compliance"', retire)
    assert sorted(listed) == sorted(str(d.device_id) for d in (a, b, c))
    assert {r[1] for r in table(page.text, "retire-list")} == {"Android 12"}
    assert "Devices with no compliance policy count as Compliant" in page.text


def test_compliance_policy_settings_form(env: Env, secret: str) -> None:
    page = env.client.get(f"{BASE}/compliance/settings")
    assert page.status_code == 200
    assert '<option value="false" selected>Compliant</option>' in page.text
    assert 'name="validity_days" type="number" min="1" max="120" required value="30"' in page.text
    r = post(env.client, f"{BASE}/compliance/settings", secure_by_default="true", validity_days="0")
    assert r.status_code == 400
    assert "greater than or equal to 1" in field_error(r.text, "validity_days")
    r = post(
        env.client, f"{BASE}/compliance/settings", secure_by_default="true", validity_days="a month"
    )
    assert r.status_code == 400 and "'a month' is not a whole number" in field_error(
        r.text, "validity_days"
    )
    assert 'value="a month"' in r.text
    assert env.call("GET", "/beta/deviceManagement").json()["settings"]["secureByDefault"] is False
    r = post(env.client, f"{BASE}/compliance/settings", secure_by_default="true", validity_days="7")
    assert r.status_code == 200 and "Compliance policy settings saved." in r.text
    settings = env.call("GET", "/beta/deviceManagement").json()["settings"]
    assert (
        settings["secureByDefault"] is True
        and settings["deviceComplianceCheckinThresholdDays"] == 7
    )
    assert '<option value="true" selected>Not compliant</option>' in r.text


def test_read_only_admin_sees_no_write_buttons_and_is_refused(env: Env, secret: str) -> None:
    a = device(env, secret)
    gid = group(env, "Line 1", [a])
    p = restrictions(env, "Baseline", cameraBlocked=True)
    c = compliance_policy(env, "Compliance", passwordRequired=True)
    assign(env, CONFIGS, p["id"], [gid])
    env.admin("Read Only Operator", email="reader@example.com")
    env.client.cookies.clear()
    assert sign_in(env.client, "reader@example.com", PASSWORD).status_code == 303

    for path in (
        f"{BASE}/configuration",
        f"{BASE}/compliance",
        f"{BASE}/compliance/dashboard",
        f"{BASE}/compliance/settings",
        f"{BASE}/{p['id']}",
        f"{BASE}/{p['id']}/assignments",
        f"{BASE}/{p['id']}/status",
        f"{BASE}/{p['id']}/delete",
        f"{BASE}/{c['id']}",
        f"/console/devices/{a.device_id}/compliance",
    ):
        r = env.client.get(path)
        assert r.status_code == 200, path
        body = r.text.split("</header>")[1]
        assert 'method="post"' not in body, path
        for button in (
            "Create profile",
            "Create policy",
            "Edit settings",
            "Edit assignments",
            ">Delete<",
        ):
            assert button not in body, (path, button)
    assert (
        "<dt>Included groups</dt><dd>Line 1</dd>"
        in env.client.get(f"{BASE}/{p['id']}/assignments").text
    )
    for path in (
        f"{BASE}/create/restrictions",
        f"{BASE}/configuration/create",
        f"{BASE}/{p['id']}/edit",
    ):
        assert env.client.get(path).status_code == 403, path

    token = csrf(env.client, f"{BASE}/configuration")
    posts: list[tuple[str, dict[str, str]]] = [
        (
            f"{BASE}/create/restrictions",
            {"step": "review", "action": "create", "display_name": "X"},
        ),
        (f"{BASE}/{p['id']}/edit", {"display_name": "X"}),
        (f"{BASE}/{p['id']}/assignments", {"include": gid}),
        (f"{BASE}/{p['id']}/delete", {"answer": "yes"}),
        (f"{BASE}/compliance/settings", {"secure_by_default": "true", "validity_days": "5"}),
    ]
    for path, data in posts:
        r = env.client.post(path, data={"csrf_token": token, **data})
        assert r.status_code == 403, path
        assert policies.WRITE in r.text, path
    assert [x["displayName"] for x in api_list(env, CONFIGS)] == ["Baseline"]
    assert env.call("GET", "/beta/deviceManagement").json()["settings"]["secureByDefault"] is False
    # Without the CSRF token a post is refused too.
    assert env.client.post(f"{BASE}/{p['id']}/delete", data={"answer": "yes"}).status_code == 403


def test_scoped_admin_sees_only_policies_of_their_tags(env: Env, secret: str) -> None:
    plant_a = env.tag("Plant A")
    plant_b = env.tag("Plant B")
    mine = restrictions(env, "Plant A lockdown", roleScopeTagIds=[plant_a])
    other = restrictions(env, "Plant B lockdown", roleScopeTagIds=[plant_b])
    env.admin("Policy and Profile Manager", tags=["Plant A"], email="a-mgr@example.com")
    env.client.cookies.clear()
    assert sign_in(env.client, "a-mgr@example.com", PASSWORD).status_code == 303
    listing = env.client.get(f"{BASE}/configuration").text
    assert "Plant A lockdown" in listing and "Plant B lockdown" not in listing
    assert env.client.get(f"{BASE}/{mine['id']}").status_code == 200
    for path in ("", "/status", "/assignments", "/delete"):
        r = env.client.get(f"{BASE}/{other['id']}{path}")
        assert r.status_code == 404, path
        assert "Plant B lockdown" not in r.text
    # The wizard offers only the admin's tag, and a new policy gets it.
    scope = wizard(
        env.client, "restrictions", {"display_name": "Plant A camera"}, {"cameraBlocked": "true"}
    )
    assert current_step(scope.text) == "Scope tags"
    assert (
        f'<option value="{plant_a}">Plant A</option>' in scope.text and "Plant B" not in scope.text
    )
    review = step(
        env.client, "restrictions", step(env.client, "restrictions", scope.text, {}).text, {}
    )
    assert "Your scope tags: Plant A" in review.text
    done = step(env.client, "restrictions", review.text, {}, action="create")
    assert "Policy Plant A camera created." in done.text
    assert "<dt>Scope tags</dt><dd>Plant A</dd>" in done.text


def test_unknown_policy_is_not_found_and_the_console_needs_sign_in(env: Env, secret: str) -> None:
    missing = "00000000-0000-0000-0000-000000000000"
    for path in ("", "/status", "/edit", "/assignments"):
        assert env.client.get(f"{BASE}/{missing}{path}").status_code == 404, path
    assert env.client.get(f"/console/devices/{missing}/compliance").status_code == 404
    env.client.cookies.clear()
    r = env.client.get(f"{BASE}/configuration", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/console/login")
