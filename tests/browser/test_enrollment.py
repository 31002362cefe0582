"""The enrollment console in headless Chromium against a real ``aospmdm serve``: sign in, set
the MDM authority, create a profile with the wizard, see and decode its QR code, export the
JSON, replace the token, revoke it.

Same Chromium and skip rules as test_console.py, whose server and browser fixtures this reuses.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.browser.test_console import (  # noqa: F401  (fixtures, found by name)
    Server,
    _url,
    browser,
    page,
    server,
    sign_in,
)
from tests.qr import decode_qr

pytestmark = pytest.mark.browser

BASE = "/console/devices/enrollment/aosp-userless"
NAME = "Plant 7 scanners"


def _utc_day(days: int) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).date().isoformat()


def _qr_text(tab: Any) -> str:
    """Decode the QR code from a screenshot of the <img> as the browser shows it."""
    tab.wait_for_function(
        "() => { const i = document.querySelector('img#qr'); return i && i.complete; }"
    )
    img = tab.locator("img#qr")
    assert img.evaluate("i => i.naturalWidth") > 0, "the QR image did not load"
    shot = img.screenshot()
    return str(decode_qr(shot).text)


def test_create_view_export_replace_revoke(
    page: Any,  # noqa: F811
    server: Server,  # noqa: F811
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect

    page.goto("/console")
    sign_in(page, server.email, server.password)
    expect(page.get_by_role("heading", name="Home")).to_be_visible()

    # Profiles need the MDM authority.
    page.goto("/console/tenant/authority")
    page.get_by_role("button", name="Set MDM authority").click()
    expect(page.get_by_role("status")).to_have_text("MDM authority set.")

    # Devices > Enrollment > Android > AOSP > Corporate-owned, userless devices.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Devices").click()
    expect(page).to_have_url(_url("/console/devices"))
    page.get_by_role("link", name=re.compile("Corporate-owned, userless devices")).click()
    expect(page).to_have_url(_url(BASE))
    expect(page.get_by_role("heading", name="Corporate-owned, userless devices")).to_be_visible()

    # The wizard, step 1: Basics. A WPA network without its key is refused beside the field.
    page.get_by_role("link", name="Create profile").click()
    expect(page.get_by_text("1. Basics")).to_have_attribute("aria-current", "step")
    page.get_by_label("Name", exact=True).fill(NAME)
    page.get_by_label("Description").fill("RealWear HMT-1 on line 7")
    page.get_by_label("Token expiration date").fill(_utc_day(30))
    page.get_by_label("SSID").fill("staging-7")
    page.get_by_label("Wi-Fi type").select_option("wpa")
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_role("alert")).to_have_text("A WPA network needs its pre-shared key.")
    expect(page.get_by_label("Pre-shared key")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Name", exact=True)).to_have_value(NAME)
    page.get_by_label("Pre-shared key").fill("line7-staging!")
    page.get_by_role("button", name="Next").click()

    # Step 2: Scope tags (none: Default). Step 3: Review + create.
    expect(page.get_by_text("2. Scope tags")).to_have_attribute("aria-current", "step")
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_text("3. Review + create")).to_have_attribute("aria-current", "step")
    review = page.locator("#review")
    for shown in (NAME, "RealWear HMT-1 on line 7", "staging-7", "WPA Pre-Shared Key"):
        expect(review).to_contain_text(shown)
    expect(page.locator("#review-scope-tags")).to_have_text("Default")
    page.get_by_role("button", name="Create").click()

    # The list, and the "…" menu's View enrollment token.
    expect(page).to_have_url(_url(re.escape(BASE) + r"\?notice=.*"))
    expect(page.get_by_role("status")).to_contain_text(f"Profile {NAME} created")
    row = page.locator("#profiles tbody tr").filter(has_text=NAME)
    expect(row).to_contain_text(f"{_utc_day(30)}T23:59:59Z")
    row.locator("summary").click()
    row.get_by_role("link", name="View enrollment token").click()
    expect(page.get_by_role("link", name="Tokens")).to_have_attribute("aria-current", "page")

    # Tokens: the QR (decoded from what the browser shows), the notice, the plain-text token.
    expect(page.locator("#qr-notice")).to_contain_text("Wi-Fi credentials in plain text")
    expect(page.locator("#qr-notice")).to_contain_text("staging network")
    first_token = page.locator("#token-value").inner_text()
    assert first_token.startswith("AOSP-")
    first_qr = _qr_text(page)
    extras = json.loads(first_qr)
    assert extras["android.app.extra.PROVISIONING_WIFI_SSID"] == "staging-7"
    assert extras["android.app.extra.PROVISIONING_WIFI_PASSWORD"] == "line7-staging!"

    # Export: a downloaded JSON file holding the same payload and the expiry.
    with page.expect_download() as info:
        page.get_by_role("link", name="Export").click()
    download = info.value
    assert download.suggested_filename == f"{NAME}.json"
    saved = tmp_path / "export.json"
    download.save_as(saved)
    exported = json.loads(saved.read_text())
    assert exported["qrCodeContent"] == extras
    assert exported["expirationDate"] == page.locator("#token-expiry").inner_text()

    # Replace token: asks for the date, then shows a new token and a new QR code.
    page.get_by_role("link", name="Replace token").click()
    expect(page.get_by_role("heading", name="Replace token")).to_be_visible()
    page.get_by_label("New token expiration date").fill(_utc_day(60))
    page.get_by_role("button", name="OK").click()
    expect(page.get_by_role("status")).to_contain_text("Token replaced.")
    expect(page.locator("#token-value")).not_to_have_text(first_token)
    expect(page.locator("#token-expiry")).to_contain_text(_utc_day(60))
    second_qr = _qr_text(page)
    assert second_qr != first_qr
    assert json.loads(second_qr)["android.app.extra.PROVISIONING_WIFI_SSID"] == "staging-7"

    # Revoke token: "No" changes nothing, "Yes" leaves no active token.
    page.get_by_role("link", name="Revoke token").click()
    expect(page.locator("#revoke-question")).to_contain_text(NAME)
    page.get_by_role("button", name="No").click()
    expect(page.locator("img#qr")).to_be_visible()
    page.get_by_role("link", name="Revoke token").click()
    page.get_by_role("button", name="Yes").click()
    expect(page.get_by_role("status")).to_contain_text("Token revoked.")
    expect(page.locator("#no-token")).to_contain_text("This profile has no active token")
    expect(page.locator("img#qr")).to_have_count(0)
    expect(page.get_by_role("link", name="Replace token")).to_be_visible()

    page.goto(BASE)
    row = page.locator("#profiles tbody tr").filter(has_text=NAME)
    expect(row).to_contain_text("Expired (revoked)")
    shot = tmp_path / "profiles.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 0


def test_server_stayed_healthy(server: Server) -> None:  # noqa: F811
    """After the browser test: the server neither crashed nor logged an unhandled error."""
    assert server.process.poll() is None, server.logs()
    assert "Traceback" not in server.stderr.read_text(), server.logs()
