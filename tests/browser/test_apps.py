"""The apps console in headless Chromium against a real ``aospmdm serve``: Apps > All apps
lists the required apps; Upload sends a real APK (built with pyaxml) through the multipart
form and lands on its page with the unsigned warning; a file that is not an APK is refused on
the form; Assignments makes it required for a group, which the app page then shows.

Same Chromium and skip rules as test_console.py, whose browser fixtures this reuses.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.apps.apkfactory import build_apk
from tests.browser.test_console import (  # noqa: F401  (fixtures, found by name)
    ENV_VARS,
    Server,
    _url,
    _wait_healthy,
    aospmdm_program,
    browser,
    page,
    serve_console,
    sign_in,
)
from tests.servers import cli

pytestmark = pytest.mark.browser

GROUP = "Factory 1 headsets"
PACKAGE = "com.example.scanner"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The server, its public URL the loopback address the agent can reach."""
    yield from serve_console(tmp_path_factory, "apps-server", public_url=True)


def _group(srv: Server) -> None:
    """A group through the API, with a token the operator makes."""
    done = cli(srv.stdout.parent / "data", "admin", "token", srv.email, "--name", "browser test")
    assert done.returncode == 0, done.stdout + done.stderr
    token = done.stdout.strip().splitlines()[-1]
    r = httpx.post(
        f"{srv.url}/beta/groups",
        headers={"Authorization": f"Bearer {token}"},
        json={"displayName": GROUP, "mailEnabled": False, "securityEnabled": True},
        timeout=10,
    )
    assert r.status_code == 201, r.text


def test_upload_an_apk_and_assign_it_to_a_group(
    page: Any,  # noqa: F811
    server: Server,
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect

    _group(server)
    junk = tmp_path / "notes.apk"
    junk.write_bytes(b"not an APK")
    apk = tmp_path / "scanner.apk"
    apk.write_bytes(build_apk(PACKAGE, 10, "1.0", label="Scanner"))

    page.goto("/console")
    sign_in(page, server.email, server.password)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Apps").click()
    expect(page).to_have_url(_url("/console/apps"))
    expect(page.get_by_role("heading", name="All apps")).to_be_visible()
    expect(page.locator("#apps")).to_contain_text("Required app")

    # A file that is not an APK comes back on the form with the reason.
    page.get_by_role("link", name="Upload", exact=True).click()
    page.get_by_label("APK file").set_input_files(str(junk))
    page.get_by_label("Publisher (optional)").fill("Example Corp")
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#file-error")).to_have_text(
        "The file is not an APK: it is not a zip archive."
    )
    expect(page.get_by_label("Publisher (optional)")).to_have_value("Example Corp")

    page.get_by_label("APK file").set_input_files(str(apk))
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_role("status")).to_contain_text("Uploaded Scanner 1.0 (10).")
    expect(page.get_by_role("status")).to_contain_text("The APK is not signed.")
    expect(page.get_by_role("heading", name="Scanner")).to_be_visible()
    expect(page.locator("#properties")).to_contain_text(PACKAGE)
    expect(page.locator("#properties")).to_contain_text("Example Corp")
    expect(page.locator("#versions tbody tr")).to_have_count(1)

    page.get_by_role("link", name="Edit assignments").click()
    page.get_by_label(f"Required for {GROUP}").check()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("Assignments saved: 1 required")

    page.get_by_role("navigation", name="App").get_by_role("link", name="Properties").click()
    summary = page.locator("#assignments-summary tbody tr")
    expect(summary).to_have_count(1)
    expect(summary).to_contain_text(GROUP)
    expect(summary).to_contain_text("Required")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Apps").click()
    row = page.locator("#apps tbody tr", has_text=PACKAGE)
    expect(row.locator("td").nth(5)).to_have_text("Yes")
