"""The console in headless Chromium, against a real ``aospmdm serve`` on a fresh SQLite data
directory: sign in with the first admin printed on first start, set the MDM authority, find it
in the audit log; a wrong password; sign out.

Needs Debian's chromium at /usr/bin/chromium (driven by Playwright, whose own browser download
is not used). Without it the tests skip, unless AOSPMDM_REQUIRE_BROWSER=1, when they fail.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers import cli, free_port

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-quic",
    "--no-first-run",
    "--disable-sync",
]
FIRST_ADMIN = "admin@aospmdm.local"
# Settings the developer's shell may hold that would point the server elsewhere.
ENV_VARS = [
    "AOSPMDM_DATA_DIR",
    "AOSPMDM_DATABASE_URL",
    "AOSPMDM_PUBLIC_URL",
    "AOSPMDM_SECRET_KEY",
    "AOSPMDM_ADMIN_PASSWORD",
]
TIMEOUT_MS = 15_000


def _no_browser(reason: str) -> None:
    if os.environ.get("AOSPMDM_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason}, and AOSPMDM_REQUIRE_BROWSER=1 requires the browser tests")
    pytest.skip(f"{reason}: browser tests skipped (install Debian's chromium to run them)")


def aospmdm_program() -> str:
    beside = Path(sys.executable).parent / "aospmdm"
    if beside.exists():
        return str(beside)
    found = shutil.which("aospmdm")
    if found is None:
        pytest.fail("the aospmdm program is not installed: run `pip install -e .`")
    return found


@dataclass
class Server:
    url: str
    email: str
    password: str
    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path

    def logs(self) -> str:
        return f"stdout:\n{self.stdout.read_text()}\nstderr:\n{self.stderr.read_text()}"


def operator(srv: Server, *args: str) -> str:
    """An operator command on the running server's data directory; its last line."""
    done = cli(srv.stdout.parent / "data", *args)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip().splitlines()[-1]


def _wait_healthy(srv: Server, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if srv.process.poll() is not None:
            pytest.fail(f"the server exited with {srv.process.returncode}\n{srv.logs()}")
        try:
            if httpx.get(f"{srv.url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"the server did not answer /healthz within {timeout}s\n{srv.logs()}")


def serve_console(
    tmp_path_factory: pytest.TempPathFactory, name: str, public_url: bool = False
) -> Iterator[Server]:
    """``aospmdm serve`` on a fresh data directory and a free port (with ``public_url``, the
    loopback address devices reach is its public URL); the first admin's credentials are
    read from what the first start prints. Every browser test module's server."""
    base = tmp_path_factory.mktemp(name)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    env["PYTHONUNBUFFERED"] = "1"
    if public_url:
        env["AOSPMDM_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
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


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from serve_console(tmp_path_factory, "console-server")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        _no_browser(f"no Chromium at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _no_browser("the playwright package is not installed")
    with sync_playwright() as pw:
        try:
            chromium = pw.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
        except Exception as exc:  # a Chromium that will not start is reported, not raised
            _no_browser(f"{CHROMIUM} did not start ({exc})")
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any, server: Server) -> Iterator[Any]:
    """A fresh browser context (no cookies) per test."""
    context = browser.new_context(base_url=server.url)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def _url(path_regex: str) -> re.Pattern[str]:
    return re.compile(r"^http://127\.0\.0\.1:\d+" + path_regex + "$")


def _sign_in_url(next_path: str) -> re.Pattern[str]:
    """The sign-in page, asked to return to ``next_path`` (its slashes may be escaped)."""
    escaped = re.escape(next_path).replace("/", "(?:/|%2F)")
    return _url(r"/console/login\?next=" + escaped)


def sign_in(page: Any, email: str, password: str) -> None:
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_sign_in_set_authority_and_find_it_in_the_audit_log(
    page: Any, server: Server, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    assert server.email == FIRST_ADMIN
    page.goto("/console")
    expect(page).to_have_url(_sign_in_url("/console"))
    expect(page.get_by_role("heading", name="Sign in to aospmdm")).to_be_visible()

    sign_in(page, server.email, server.password)
    expect(page).to_have_url(_url("/console"))
    expect(page.get_by_role("heading", name="Home")).to_be_visible()
    expect(page.locator("header")).to_contain_text(FIRST_ADMIN)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Tenant admin").click()
    expect(page).to_have_url(_url("/console/tenant"))
    page.get_by_role("link", name="MDM authority").click()
    expect(page).to_have_url(_url("/console/tenant/authority"))
    state = page.locator("#authority-state")
    expect(state).to_contain_text("not set")

    page.get_by_role("button", name="Set MDM authority").click()
    expect(page.get_by_role("status")).to_have_text("MDM authority set.")
    expect(state).to_contain_text("The MDM authority is intune")
    expect(page.get_by_role("button", name="Set MDM authority")).to_have_count(0)

    page.goto("/console/tenant/audit")
    expect(page.get_by_role("heading", name="Audit log")).to_be_visible()
    row = page.locator("#audit-events tbody tr").filter(
        has=page.locator("td:nth-child(4)", has_text=re.compile(r"^Set MDM authority$"))
    )
    expect(row).to_have_count(1)
    expect(row.locator("td").nth(1)).to_contain_text(FIRST_ADMIN)
    expect(row.locator("td").nth(5)).to_contain_text("success")

    shot = tmp_path / "audit.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 0


def test_wrong_password_shows_an_error_and_stays_on_sign_in(page: Any, server: Server) -> None:
    from playwright.sync_api import expect

    page.goto("/console/tenant/authority")
    expect(page).to_have_url(_sign_in_url("/console/tenant/authority"))

    sign_in(page, server.email, server.password + "-wrong")
    expect(page.get_by_role("alert")).to_have_text("The email or password is wrong.")
    expect(page).to_have_url(_url("/console/login"))
    expect(page.get_by_role("heading", name="Sign in to aospmdm")).to_be_visible()
    expect(page.get_by_label("Email")).to_have_value(server.email)
    expect(page.get_by_label("Password")).to_have_value("")
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)

    # Not signed in: the console still sends us to sign in.
    page.goto("/console")
    expect(page).to_have_url(_sign_in_url("/console"))

    # The right password on the re-shown form then works, and goes where we were headed.
    page.goto("/console/tenant/authority")
    sign_in(page, server.email, server.password + "-wrong")
    expect(page.get_by_role("alert")).to_be_visible()
    page.get_by_label("Password").fill(server.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(_url("/console/tenant/authority"))
    expect(page.get_by_role("heading", name="MDM authority")).to_be_visible()


def test_sign_out_returns_to_sign_in(page: Any, server: Server) -> None:
    from playwright.sync_api import expect

    page.goto("/console/login")
    sign_in(page, server.email, server.password)
    expect(page).to_have_url(_url("/console"))

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(_url("/console/login"))
    expect(page.get_by_role("heading", name="Sign in to aospmdm")).to_be_visible()

    page.goto("/console")
    expect(page).to_have_url(_sign_in_url("/console"))
    page.goto("/console/tenant/audit")
    expect(page).to_have_url(_sign_in_url("/console/tenant/audit"))


def test_server_stayed_healthy(server: Server) -> None:
    """After the browser tests: the server neither crashed nor logged an unhandled error."""
    assert server.process.poll() is None, server.logs()
    assert "Traceback" not in server.stderr.read_text(), server.logs()
