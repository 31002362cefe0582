"""The groups console in headless Chromium against a real ``aospmdm serve``: sign in, set the
MDM authority, create an enrollment profile (API) and enroll a device through the protocol,
then Groups > New group: Dynamic device with the rule builder (enrollmentProfileName -eq the
profile's name), Build rule, Create; the group lists the device as a member, and Validate
rules shows it matching.

Same Chromium and skip rules as test_console.py, whose server and browser fixtures this reuses.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser.test_console import (  # noqa: F401  (fixtures, found by name)
    Server,
    _url,
    browser,
    operator,
    page,
    server,
    sign_in,
)
from tests.sync.device import Device, secret_of

pytestmark = pytest.mark.browser

PROFILES = "/beta/deviceManagement/androidDeviceOwnerEnrollmentProfiles"
PROFILE = "Factory 1 devices"
GROUP = "Factory 1 headsets"


def _enrolled_device(srv: Server) -> tuple[str, str]:
    """A profile made through the API and a device enrolled with its token: (id, name)."""
    operator(srv, "license", "set", "10")
    token = operator(srv, "admin", "token", srv.email, "--name", "browser test")
    expires = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=srv.url, headers=headers, timeout=10) as api:
        r = api.post(
            PROFILES,
            json={
                "displayName": PROFILE,
                "wifiSsid": "staging",
                "tokenExpirationDateTime": expires,
            },
        )
        assert r.status_code == 201, r.text
        profile = r.json()
        with httpx.Client(base_url=srv.url, timeout=10) as plain:
            dev = Device(plain, serial="NAV500-0042")
            r = dev.enroll(secret_of(profile))
            assert r.status_code == 201, r.text
        r = api.get(f"/beta/deviceManagement/managedDevices/{dev.device_id}")
        assert r.status_code == 200, r.text
        return str(dev.device_id), str(r.json()["deviceName"])


def test_new_dynamic_group_with_the_rule_builder(
    page: Any,  # noqa: F811
    server: Server,  # noqa: F811
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect

    page.goto("/console")
    sign_in(page, server.email, server.password)
    expect(page.get_by_role("heading", name="Home")).to_be_visible()
    page.goto("/console/tenant/authority")
    page.get_by_role("button", name="Set MDM authority").click()
    expect(page.get_by_role("status")).to_have_text("MDM authority set.")
    device_id, device_name = _enrolled_device(server)

    # Groups > All groups > New group.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Groups").click()
    expect(page).to_have_url(_url("/console/groups"))
    expect(page.get_by_role("heading", name="All groups")).to_be_visible()
    page.get_by_role("link", name="New group").click()
    expect(page.get_by_role("heading", name="New group")).to_be_visible()
    expect(page.get_by_label("Group type")).to_have_value("Security")
    page.get_by_label("Group name").fill(GROUP)
    page.get_by_label("Group description").fill("Every headset of factory 1")
    page.get_by_label("Membership type").select_option("dynamic")

    # Add dynamic query: the builder's first row, then Build rule writes the text.
    page.get_by_text("Add dynamic query").click()
    page.get_by_label("Property 1").select_option("enrollmentProfileName")
    page.get_by_label("Operator 1").select_option("eq")
    page.get_by_label("Value 1").fill(PROFILE)
    page.get_by_role("button", name="Build rule").click()
    expect(page.get_by_role("status")).to_contain_text("Rule built from the rows.")
    rule = f'(device.enrollmentProfileName -eq "{PROFILE}")'
    expect(page.get_by_label("Rule syntax")).to_have_value(rule)
    expect(page.get_by_label("Group name")).to_have_value(GROUP)
    expect(page.get_by_label("Membership type")).to_have_value("dynamic")

    # A broken edit is shown in place with its position; the fixed rule saves.
    page.get_by_label("Rule syntax").fill(rule + ' (device.deviceModel -eq "x")')
    page.get_by_role("button", name="Validate").click()
    expect(page.locator("#rule-error")).to_contain_text(f"(at position {len(rule) + 1}).")
    expect(page.get_by_label("Rule syntax")).to_have_attribute("aria-invalid", "true")
    page.get_by_label("Rule syntax").fill(rule)
    page.get_by_role("button", name="Create").click()

    # The group page: its rule; Members lists the enrolled device.
    expect(page.get_by_role("status")).to_have_text(f"Group {GROUP} created.")
    expect(page.get_by_role("heading", name=GROUP)).to_be_visible()
    expect(page.locator("#membership-rule")).to_have_text(rule)
    page.get_by_role("link", name="Members", exact=True).click()
    members = page.locator("#members tbody tr")
    expect(members).to_have_count(1)
    expect(members.first).to_contain_text(device_name)
    expect(members.first).to_contain_text("Navigator 500")
    expect(members.get_by_role("link", name=device_name)).to_have_attribute(
        "href", f"/console/devices/{device_id}"
    )

    # Validate rules: the device matches, expression by expression.
    page.get_by_role("link", name="Validate rules").click()
    page.get_by_label(re.compile(re.escape(device_name))).check()
    page.get_by_role("button", name="Validate").click()
    result = page.locator("#validation tbody tr").filter(has_text=device_name)
    expect(result.locator("td").nth(1)).to_have_text("Matches")
    expect(result.locator(".tree")).to_contain_text(f'enrollmentProfileName = "{PROFILE}"')

    page.goto("/console/groups")
    row = page.locator("#groups tbody tr").filter(has_text=GROUP)
    expect(row).to_contain_text("Dynamic device")
    expect(row.locator("td").nth(3)).to_have_text("1")
    shot = tmp_path / "groups.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 0


def test_server_stayed_healthy(server: Server) -> None:  # noqa: F811
    """After the browser test: the server neither crashed nor logged an unhandled error."""
    assert server.process.poll() is None, server.logs()
    assert "Traceback" not in server.stderr.read_text(), server.logs()
