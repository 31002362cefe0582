"""Troubleshooting + Support in headless Chromium against a real ``aospmdm serve``: a worker
made through ``/beta/users`` signs in on an enrolled device (signed by the device) and the
device uploads its logs; in the console, Troubleshooting + Support finds the user by part of
the name, the user's page lists the device, the device's troubleshooting view shows the
signed-in user and the incident, and the incident ID search box leads to the incident (and
says so when an ID matches nothing).

Same Chromium and skip rules as test_console.py, whose server and browser fixtures this reuses.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
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
from tests.support.test_pages import WORKER_PASSWORD, signs_in, uploads_logs
from tests.sync.device import Device, secret_of

pytestmark = pytest.mark.browser

PROFILES = "/beta/deviceManagement/androidDeviceOwnerEnrollmentProfiles"
DEVICE = "Packing line headset"
UPN = "jane.doe@contoso.com"


def _shared_device(srv: Server) -> tuple[str, str]:
    """A device enrolled and named through the API, a worker signed in on it, and its log
    upload: (device id, incident ID)."""
    operator(srv, "license", "set", "10")
    token = operator(srv, "admin", "token", srv.email, "--name", "support browser test")
    headers = {"Authorization": f"Bearer {token}"}
    expires = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    with httpx.Client(base_url=srv.url, headers=headers, timeout=10) as api:
        org = api.get("/beta/organization").json()["value"][0]["id"]
        r = api.post(f"/beta/organization/{org}/setMobileDeviceManagementAuthority")
        assert r.status_code in (200, 204), r.text
        r = api.post(
            PROFILES,
            json={
                "displayName": "Line 1",
                "wifiSsid": "staging",
                "tokenExpirationDateTime": expires,
            },
        )
        assert r.status_code == 201, r.text
        profile = r.json()
        r = api.post(
            "/beta/users",
            json={
                "userPrincipalName": UPN,
                "displayName": "Jane Doe",
                "accountEnabled": True,
                "passwordProfile": {"password": WORKER_PASSWORD},
            },
        )
        assert r.status_code == 201, r.text
        with httpx.Client(base_url=srv.url, timeout=10) as plain:
            dev = Device(plain, serial="NAV500-0077")
            assert dev.enroll(secret_of(profile)).status_code == 201
            r = api.patch(
                f"/beta/deviceManagement/managedDevices/{dev.device_id}",
                json={"deviceName": DEVICE},
            )
            assert r.status_code == 200, r.text
            r = signs_in(dev, UPN)
            assert r.status_code == 201, r.text
            incident = uploads_logs(dev, "camera failed to start\n")
        return str(dev.device_id), incident


def test_find_a_user_open_their_device_and_search_an_incident(
    page: Any,  # noqa: F811
    server: Server,  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    device_id, incident = _shared_device(server)
    page.goto("/console")
    sign_in(page, server.email, server.password)
    expect(page.get_by_role("heading", name="Home")).to_be_visible()

    # Troubleshooting + Support: find the user by part of the name.
    nav = page.get_by_role("navigation", name="Main")
    nav.get_by_role("link", name="Troubleshooting + Support").click()
    expect(page).to_have_url(_url("/console/support"))
    expect(page.get_by_role("heading", name="Troubleshooting + Support", level=1)).to_be_visible()
    page.get_by_label("User principal name or name").fill("jane")
    page.get_by_role("button", name="Find user").click()
    matches = page.locator("#users tbody tr")
    expect(matches).to_have_count(1)
    expect(matches.first).to_contain_text(UPN)
    matches.get_by_role("link", name="Jane Doe").click()

    # The user: the device she signed in on, her current session and her history.
    expect(page.get_by_role("heading", name="Jane Doe")).to_be_visible()
    expect(page.locator("#user-properties")).to_contain_text(UPN)
    devices = page.locator("#user-devices tbody tr")
    expect(devices).to_have_count(1)
    expect(devices.first.locator("td").nth(4)).to_have_text("Yes")
    expect(page.locator("#current-sessions tbody tr")).to_contain_text(DEVICE)
    expect(page.locator("#sign-ins tbody tr")).to_have_count(1)
    devices.get_by_role("link", name=DEVICE, exact=True).click()

    # The device's troubleshooting view: the signed-in user, versions and the incident.
    expect(page).to_have_url(_url(f"/console/support/devices/{device_id}"))
    expect(page.get_by_role("heading", name=DEVICE)).to_be_visible()
    expect(page.locator("#signed-in-user")).to_contain_text(UPN)
    expect(page.locator("#agent-version")).to_have_text("24.9.0")
    expect(page.locator("#logs tbody tr")).to_have_count(1)
    expect(page.locator("#logs tbody tr").first).to_contain_text(incident)
    expect(page.get_by_role("link", name=f"Download {incident}")).to_be_visible()

    # The incident ID search box: as typed on the phone (lower case, no dashes).
    nav.get_by_role("link", name="Troubleshooting + Support").click()
    page.get_by_label("Incident ID").fill("ZZZZ-ZZZZ-ZZZZ")
    page.get_by_role("button", name="Find incident").click()
    expect(page.get_by_role("alert")).to_have_text(
        "No incident with that ID, or you may not see it."
    )
    page.get_by_label("Incident ID").fill(incident.replace("-", "").lower())
    page.get_by_role("button", name="Find incident").click()
    expect(page).to_have_url(_url(f"/console/support/incidents/{incident}"))
    expect(page.get_by_role("heading", name=f"Incident {incident}")).to_be_visible()
    expect(page.locator("#incident")).to_contain_text(DEVICE)
    expect(page.locator("#incident")).to_contain_text("Completed")
    # Download: a short-lived URL for this admin, followed at once.
    with page.expect_download() as fetched:
        page.get_by_role("link", name="Download", exact=True).click()
    assert fetched.value.suggested_filename == "logs.zip"
    # Back to the device from the incident.
    page.locator("#incident").get_by_role("link", name=DEVICE, exact=True).click()
    expect(page).to_have_url(_url(f"/console/support/devices/{device_id}"))
