"""The apps console in headless Chromium against a real ``aospmdm serve``: Apps > All apps
lists the required apps; Upload sends a real APK (built with pyaxml) through the multipart
form and lands on its page with the unsigned warning; a file that is not an APK is refused on
the form; Assignments makes it required for a group, which the app page then shows.

Same Chromium and skip rules as test_console.py, whose browser fixtures this reuses.
"""

from __future__ import annotations

import os
import re
import subprocess
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
    sign_in,
)
from tests.servers import cli, free_port

pytestmark = pytest.mark.browser

GROUP = "Factory 1 headsets"
PACKAGE = "com.example.scanner"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``aospmdm serve`` on a fresh data directory and a free port; the first admin read
    from what it prints."""
    base = tmp_path_factory.mktemp("apps-server")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    env |= {"PYTHONUNBUFFERED": "1", "AOSPMDM_PUBLIC_URL": f"http://127.0.0.1:{port}"}
    out_path, err_path = base / "server.out", base / "server.err"
    argv = [aospmdm_program(), "serve", "--data-dir", str(base / "data"), "--port", str(port)]
    with open(out_path, "w") as out, open(err_path, "w") as err:
        process = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
    srv = Server(f"http://127.0.0.1:{port}", "", "", process, out_path, err_path)
    try:
        _wait_healthy(srv)
        printed = out_path.read_text()
        email = re.search(r"^\s*email:\s+(\S+)\s*$", printed, re.M)
        password = re.search(r"^\s*password:\s+(\S+)\s*$", printed, re.M)
        if not (email and password):
            pytest.fail(f"the first start did not print the first admin\n{srv.logs()}")
        srv.email, srv.password = email.group(1), password.group(1)
        yield srv
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


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
