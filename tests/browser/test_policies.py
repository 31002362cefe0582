"""The policies console in headless Chromium against a real ``aospmdm serve``, with the real
reference agent: a device enrolled by ``aospmdm agent enroll`` from the profile's QR code sits
in a group; Policies > Configuration > Create profile > Device restrictions walks the wizard
(block the camera, a numeric passcode of at least 6 digits, assigned to the group); after
``aospmdm agent checkin`` applies and reports it, the policy's Device status shows the device
as Succeeded, setting by setting.

Same Chromium and skip rules as test_console.py, whose browser fixtures this reuses; the
server is started here with its public URL set, since the agent reaches it through the URL in
the QR code.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser.test_console import (  # noqa: F401  (fixtures, found by name)
    ENV_VARS,
    Server,
    _url,
    _wait_healthy,
    aospmdm_program,
    browser,
    operator,
    page,
    serve_console,
    sign_in,
)

pytestmark = pytest.mark.browser

PROFILES = "/beta/deviceManagement/androidDeviceOwnerEnrollmentProfiles"
PROFILE = "Factory 1 devices"
GROUP = "Factory 1 headsets"
POLICY = "Factory 1 lockdown"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The server, its public URL the loopback address the agent can reach."""
    yield from serve_console(tmp_path_factory, "policies-server", public_url=True)


def _agent(state: Path, *args: str) -> str:
    """The reference agent's command line, as an operator runs it; its output."""
    done = subprocess.run(
        [aospmdm_program(), "agent", *args, "--state-dir", str(state)],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k not in ENV_VARS},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout


def _device_in_a_group(srv: Server, state: Path, tmp_path: Path) -> str:
    """A profile and a group through the API; the agent enrolls from the profile's QR code
    and the device joins the group. Returns the device's id."""
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
        png = tmp_path / "qr.png"
        png.write_bytes(api.get(f"{PROFILES}/{r.json()['id']}/qrCode.png").content)
        enrolled = _agent(state, "enroll", "--qr", str(png), "--serial", "NAV500-0042")
        m = re.search(r"\(device id ([0-9a-f-]{36})\)", enrolled)
        assert m, enrolled
        device_id = m.group(1)
        r = api.post(
            "/beta/groups",
            json={"displayName": GROUP, "mailEnabled": False, "securityEnabled": True},
        )
        assert r.status_code == 201, r.text
        r = api.post(
            f"/beta/groups/{r.json()['id']}/members/$ref",
            json={"@odata.id": f"{srv.url}/beta/deviceManagement/managedDevices/{device_id}"},
        )
        assert r.status_code == 204, r.text
    return device_id


def test_create_assign_and_see_the_device_status_after_a_check_in(
    page: Any,  # noqa: F811
    server: Server,
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect

    page.goto("/console")
    sign_in(page, server.email, server.password)
    expect(page.get_by_role("heading", name="Home")).to_be_visible()
    page.goto("/console/tenant/authority")
    page.get_by_role("button", name="Set MDM authority").click()
    expect(page.get_by_role("status")).to_have_text("MDM authority set.")
    state = tmp_path / "device"
    device_id = _device_in_a_group(server, state, tmp_path)

    # Policies > Configuration > Create profile: Android (AOSP), Device restrictions.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Policies").click()
    expect(page).to_have_url(_url("/console/policies/configuration"))
    expect(page.get_by_role("heading", name="Configuration")).to_be_visible()
    page.get_by_role("link", name="Create profile").click()
    expect(page.get_by_label("Platform")).to_have_value("Android (AOSP)")
    page.get_by_label("Profile type").select_option("restrictions")
    page.get_by_role("button", name="Create").click()

    # Basics.
    expect(page.get_by_text("1. Basics")).to_have_attribute("aria-current", "step")
    page.get_by_label("Name", exact=True).fill(POLICY)
    page.get_by_label("Description").fill("Headsets on line 1")
    page.get_by_role("button", name="Next").click()

    # Configuration settings, grouped as in the Intune docs. A length below 4 is refused in
    # place, naming the field.
    expect(page.get_by_text("2. Configuration settings")).to_have_attribute("aria-current", "step")
    for legend in ("General", "Password", "Connectivity"):
        expect(page.locator("legend", has_text=legend)).to_be_visible()
    expect(page.get_by_label("Block camera")).to_have_value("")
    page.get_by_label("Block camera").select_option(label="Block")
    page.get_by_label("Required password type").select_option(label="Numeric")
    page.get_by_label("Minimum password length").fill("3")
    # The browser's own range check would stop the form: let the server's speak.
    page.locator("#wizard").evaluate("f => f.noValidate = true")
    page.get_by_role("button", name="Next").click()
    expect(page.locator("#passwordMinimumLength-error")).to_have_text(
        "Minimum password length: Input should be greater than or equal to 4."
    )
    expect(page.get_by_label("Minimum password length")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Block camera")).to_have_value("true")
    page.get_by_label("Minimum password length").fill("6")
    page.get_by_role("button", name="Next").click()

    # Scope tags: none, so Default. Assignments: include the group.
    expect(page.get_by_text("3. Scope tags")).to_have_attribute("aria-current", "step")
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_text("4. Assignments")).to_have_attribute("aria-current", "step")
    page.get_by_label(f"Include {GROUP}").check()
    page.get_by_role("button", name="Next").click()

    # Review + create.
    expect(page.get_by_text("5. Review + create")).to_have_attribute("aria-current", "step")
    review = page.locator("#review")
    expect(review).to_contain_text(POLICY)
    for label, shown in (
        ("Block camera", "Block"),
        ("Required password type", "Numeric"),
        ("Minimum password length", "6 characters"),
        ("Block screen capture", "Not configured"),
    ):
        value = review.locator("dt", has_text=re.compile(f"^{label}$")).locator(
            "xpath=following-sibling::dd[1]"
        )
        expect(value).to_have_text(shown)
    expect(page.locator("#review-assignments")).to_contain_text(GROUP)
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_role("status")).to_have_text(
        f"Policy {POLICY} created and assigned to 1 group(s)."
    )
    expect(page.get_by_role("heading", name=POLICY)).to_be_visible()
    m = re.search(r"/console/policies/([0-9a-f-]{36})\?", page.url)
    assert m, page.url
    policy_id = m.group(1)

    # Before the device checks in, its status is Pending.
    page.get_by_role("link", name="Device status").click()
    row = page.locator("#device-status tbody tr")
    expect(row).to_have_count(1)
    expect(row.locator("td.status")).to_have_text("Pending")

    # The real agent checks in: it receives the policy, applies it and reports.
    out = _agent(state, "checkin")
    assert re.search(
        r"applied policy \S+ \(3 applied; 0 of 0 Wi-Fi networks saved\); reported", out
    ), out
    status = json.loads(_agent(state, "status"))
    assert status["policy"]["restrictions"]["cameraBlocked"] is True
    assert status["screenLock"]["passcodeType"] in ("numeric", "numericComplex")
    assert status["screenLock"]["passcodeLength"] >= 6

    # Device status: Succeeded; the device's settings, each Succeeded.
    page.reload()
    expect(row.locator("td.status")).to_have_text("Succeeded")
    expect(page.locator("#status-counts li", has_text="Succeeded").locator("strong")).to_have_text(
        "1"
    )
    row.get_by_role("link").click()
    expect(page).to_have_url(_url(f"/console/policies/{policy_id}/status/{device_id}"))
    expect(page.locator("#device-policy-status")).to_have_text("Succeeded")
    states = page.locator("#setting-states tbody tr")
    expect(states).to_have_count(3)
    camera = states.filter(has_text="Block camera")
    expect(camera.locator("td").nth(1)).to_have_text("Succeeded")
    expect(camera.locator("td").nth(2)).to_have_text("true")
    expect(camera.get_by_role("link", name=POLICY)).to_be_visible()
    length = states.filter(has_text="Minimum password length")
    expect(length.locator("td").nth(1)).to_have_text("Succeeded")
    expect(length.locator("td").nth(2)).to_have_text("6")

    # The list counts it; the device's Compliance tab lists the policy as Succeeded.
    page.get_by_role("navigation", name="Policies").get_by_role(
        "link", name="Configuration"
    ).click()
    listed = page.locator("#policies tbody tr").filter(has_text=POLICY)
    expect(listed.locator("td").nth(3)).to_have_text("Yes")
    expect(listed.locator("td").nth(6)).to_have_text("1")
    page.goto(f"/console/devices/{device_id}")
    page.get_by_role("link", name="Compliance", exact=True).click()
    config = page.locator("#configuration-policies tbody tr").filter(has_text=POLICY)
    expect(config.locator("td").nth(2)).to_have_text("Succeeded")
    shot = tmp_path / "policies.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 0


def test_server_stayed_healthy(server: Server) -> None:
    """After the browser test: the server neither crashed nor logged an unhandled error."""
    assert server.process.poll() is None, server.logs()
    assert "Traceback" not in server.stderr.read_text(), server.logs()
