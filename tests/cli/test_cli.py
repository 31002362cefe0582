"""The real command line: each test on a fresh SQLite data directory.

Most commands run in-process through Typer's CliRunner (fast); the checks that are about the
installed program itself (no traceback on bad input, sharing the SQLite file with a running
server) run ``aospmdm`` as a subprocess.
"""

from __future__ import annotations

import getpass
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import Result
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from aospmdm.cli import app as cli_app
from aospmdm.core.config import Settings
from aospmdm.server import create_app
from tests.servers import free_port

PASSWORD = "correct horse battery staple"
HELP_DESK = "Help Desk Operator"
BUILT_IN_ROLES = [
    "Help Desk Operator",
    "Intune Administrator",
    "Policy and Profile Manager",
    "Read Only Operator",
]
TAGS = "/beta/deviceManagement/roleScopeTags"
ASSIGNMENTS = "/beta/deviceManagement/roleAssignments"
AUDIT = "/beta/deviceManagement/auditEvents"
# Settings the developer's shell may hold that would point a test elsewhere.
ENV_VARS = [
    "AOSPMDM_DATA_DIR",
    "AOSPMDM_DATABASE_URL",
    "AOSPMDM_PUBLIC_URL",
    "AOSPMDM_SECRET_KEY",
    "AOSPMDM_ADMIN_PASSWORD",
]

runner = CliRunner()


def aospmdm_program() -> str:
    """The installed console script of the venv running the tests."""
    beside = Path(sys.executable).parent / "aospmdm"
    if beside.exists():
        return str(beside)
    found = shutil.which("aospmdm")
    if found is None:
        pytest.fail("the aospmdm program is not installed: run `pip install -e .`")
    return found


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


@pytest.fixture(autouse=True)
def _no_stray_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def cli(data_dir: Path, command: str, *args: str, password: str = PASSWORD) -> Result:
    """Run ``aospmdm <command> --data-dir <data_dir> <args>`` in-process.

    Exceptions are not caught, so anything but a clean exit fails the test with its trace."""
    argv = [*command.split(), "--data-dir", str(data_dir), *args]
    return runner.invoke(
        cli_app, argv, env={"AOSPMDM_ADMIN_PASSWORD": password}, catch_exceptions=False
    )


def ok(result: Result) -> str:
    assert result.exit_code == 0, f"exit {result.exit_code}: {result.output}"
    return result.stdout


def refused(result: Result) -> str:
    """A clean refusal: non-zero exit, a message on stderr, no traceback anywhere."""
    assert result.exit_code != 0, result.output
    assert result.stderr.strip(), "a refusal must say why, on stderr"
    assert "Traceback" not in result.output
    return result.stderr


def new_token(data_dir: Path, email: str) -> str:
    lines = ok(cli(data_dir, "admin token", email)).splitlines()
    token = lines[-1]
    assert token and token == token.strip() and " " not in token, lines
    return token


@contextmanager
def api(data_dir: Path) -> Iterator[TestClient]:
    """The admin API over the same data directory (its own engine, as a server would have)."""
    server = create_app(Settings(data_dir=data_dir))
    try:
        with TestClient(server) as client:
            yield client
    finally:
        server.state.engine.dispose()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def root_token(data_dir: Path, email: str = "root@example.com") -> str:
    ok(cli(data_dir, "admin create", email, "--role", "Intune Administrator"))
    return new_token(data_dir, email)


# --- admins and tokens ------------------------------------------------------------------


def test_admin_create_and_token_work_against_the_api(tmp_path: Path) -> None:
    out = ok(cli(tmp_path, "admin create", "helpdesk@example.com", "--role", HELP_DESK))
    assert "helpdesk@example.com" in out and HELP_DESK in out

    token = new_token(tmp_path, "helpdesk@example.com")
    with api(tmp_path) as client:
        r = client.get("/beta/organization", headers=bearer(token))
        assert r.status_code == 200, r.text
        assert len(r.json()["value"]) == 1

        r = client.post(TAGS, json={"displayName": "Paris"}, headers=bearer(token))
        assert r.status_code == 403, r.text
        assert r.json()["error"]["code"] == "forbidden"

        r = client.get("/beta/organization", headers=bearer(token + "x"))
        assert r.status_code == 401, r.text


def test_each_token_call_prints_a_new_token(tmp_path: Path) -> None:
    ok(cli(tmp_path, "admin create", "a@example.com", "--role", HELP_DESK))
    first, second = new_token(tmp_path, "a@example.com"), new_token(tmp_path, "a@example.com")
    assert first != second
    with api(tmp_path) as client:
        for token in (first, second):
            assert client.get("/beta/organization", headers=bearer(token)).status_code == 200


def test_token_for_unknown_admin_is_refused(tmp_path: Path) -> None:
    err = refused(cli(tmp_path, "admin token", "nobody@example.com"))
    assert "nobody@example.com" in err


def test_missing_scope_tag_is_named_then_scopes_the_admin_once_created(tmp_path: Path) -> None:
    email = "paris@example.com"
    err = refused(cli(tmp_path, "admin create", email, "--role", HELP_DESK, "--scope-tag", "Paris"))
    assert "'Paris'" in err
    assert "scope-tag create" in err  # says how to create it

    # Nothing was created by the refused command.
    refused(cli(tmp_path, "admin token", email))

    out = ok(cli(tmp_path, "scope-tag create", "Paris"))
    match = re.search(r"created scope tag Paris: (\S+)", out)
    assert match, out
    tag_id = match.group(1)

    ok(cli(tmp_path, "admin create", email, "--role", HELP_DESK, "--scope-tag", "Paris"))
    root = root_token(tmp_path)
    scoped = new_token(tmp_path, email)
    with api(tmp_path) as client:
        r = client.get(ASSIGNMENTS, headers=bearer(root))
        assert r.status_code == 200, r.text
        mine = [a for a in r.json()["value"] if email in a["memberUserPrincipalNames"]]
        assert len(mine) == 1, mine
        assert mine[0]["roleScopeTagIds"] == [tag_id]

        # The scoped admin's token works too.
        r = client.get("/beta/organization", headers=bearer(scoped))
        assert r.status_code == 200, r.text


def test_unknown_role_is_refused_with_the_list_of_roles(tmp_path: Path) -> None:
    err = refused(cli(tmp_path, "admin create", "a@example.com", "--role", "Superuser"))
    assert "'Superuser'" in err
    for role in BUILT_IN_ROLES:
        assert role in err


def test_short_password_is_refused(tmp_path: Path) -> None:
    err = refused(
        cli(tmp_path, "admin create", "a@example.com", "--role", HELP_DESK, password="x" * 11)
    )
    assert "12" in err
    refused(cli(tmp_path, "admin token", "a@example.com"))  # not created
    ok(cli(tmp_path, "admin create", "a@example.com", "--role", HELP_DESK, password="x" * 12))


def test_duplicate_email_is_refused(tmp_path: Path) -> None:
    ok(cli(tmp_path, "admin create", "dup@example.com", "--role", HELP_DESK))
    for email in ("dup@example.com", " DUP@Example.com "):
        err = refused(cli(tmp_path, "admin create", email, "--role", "Intune Administrator"))
        assert "dup@example.com" in err and "already exists" in err

    root = root_token(tmp_path)
    with api(tmp_path) as client:
        r = client.get(ASSIGNMENTS, headers=bearer(root))
        dup = [a for a in r.json()["value"] if "dup@example.com" in a["memberUserPrincipalNames"]]
        assert [a["displayName"] for a in dup] == [f"{HELP_DESK}: dup@example.com"]


def test_invalid_email_is_refused(tmp_path: Path) -> None:
    err = refused(cli(tmp_path, "admin create", "not-an-email", "--role", HELP_DESK))
    assert "not-an-email" in err


def test_scope_tag_names_are_unique_whatever_the_case(tmp_path: Path) -> None:
    ok(cli(tmp_path, "scope-tag create", "Paris"))
    err = refused(cli(tmp_path, "scope-tag create", "PARIS"))
    assert "'PARIS'" in err and "already exists" in err
    refused(cli(tmp_path, "scope-tag create", ""))
    refused(cli(tmp_path, "scope-tag create", "x" * 300))


def test_data_dir_that_is_a_file_is_refused_cleanly(tmp_path: Path) -> None:
    """An operator's typo in --data-dir gets a message naming the path, not a traceback."""
    not_a_dir = tmp_path / "aospmdm.db"
    not_a_dir.write_text("")
    result = runner.invoke(
        cli_app, ["license", "set", "--data-dir", str(not_a_dir), "5"], catch_exceptions=True
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"unhandled {result.exception!r}"
    )
    assert result.exit_code != 0
    assert str(not_a_dir) in result.stderr


# --- licenses ---------------------------------------------------------------------------


def _licenses(client: TestClient, token: str) -> int:
    r = client.get("/beta/subscribedSkus", headers=bearer(token))
    assert r.status_code == 200, r.text
    return int(r.json()["value"][0]["prepaidUnits"]["enabled"])


def test_license_set_shows_in_subscribed_skus(tmp_path: Path) -> None:
    assert "25" in ok(cli(tmp_path, "license set", "25"))
    token = root_token(tmp_path)
    with api(tmp_path) as client:
        assert _licenses(client, token) == 25


def test_negative_license_count_is_refused_cleanly(tmp_path: Path) -> None:
    ok(cli(tmp_path, "license set", "25"))

    # Past "--", -1 reaches the service's range check.
    err = refused(cli(tmp_path, "license set", "--", "-1"))
    assert "between 0 and" in err
    # Without it, the parser takes -1 for an option; still a clean refusal.
    refused(cli(tmp_path, "license set", "-1"))
    refused(cli(tmp_path, "license set", "many"))
    refused(cli(tmp_path, "license set", "10000001"))

    token = root_token(tmp_path)
    with api(tmp_path) as client:
        assert _licenses(client, token) == 25


# --- audit --------------------------------------------------------------------------------


def test_cli_changes_are_audited_as_the_os_user(tmp_path: Path) -> None:
    ok(cli(tmp_path, "scope-tag create", "Berlin"))
    ok(cli(tmp_path, "license set", "7"))
    token = root_token(tmp_path)

    with api(tmp_path) as client:
        r = client.get(AUDIT, params={"$top": "999"}, headers=bearer(token))
        assert r.status_code == 200, r.text
        events = r.json()["value"]

    by_activity: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        by_activity.setdefault(e["activity"], []).append(e)
    expected = [
        "Create scope tag",
        "Set device licenses",
        "Create administrator",
        "Create role assignment",
        "Create API token",
    ]
    for activity in expected:
        assert activity in by_activity, sorted(by_activity)
        for e in by_activity[activity]:
            actor = e["actor"]
            assert actor["userPrincipalName"].startswith("cli:"), e
            assert actor["userPrincipalName"] == f"cli:{getpass.getuser()}", e
            assert actor["type"] == "cli", e
            assert e["activityResult"] == "success", e
    (tag_event,) = by_activity["Create scope tag"]
    assert tag_event["resources"][0]["displayName"] == "Berlin"
    (licenses,) = by_activity["Set device licenses"]
    assert licenses["details"]["licenses"]["new"] == 7


# --- the installed program ------------------------------------------------------------


def run_program(data_dir: Path, argv: list[str], password: str = PASSWORD) -> tuple[int, str, str]:
    proc = subprocess.run(
        [aospmdm_program(), *argv],
        env=clean_env(AOSPMDM_ADMIN_PASSWORD=password),
        cwd=data_dir,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return proc.returncode, proc.stdout, proc.stderr


def test_bad_input_never_prints_a_traceback(tmp_path: Path) -> None:
    """The installed program on one bad input of each kind: a domain error, a validation
    error and a command-line parse error. (The in-process tests above cover the rest with
    exceptions uncaught.) They run at once, sharing the data directory."""
    d = str(tmp_path)
    ok(cli(tmp_path, "migrate"))
    cases: list[tuple[list[str], str]] = [
        (["admin", "create", "a@example.com", "--data-dir", d, "--role", "Nope"], "Nope"),
        (["scope-tag", "create", "--data-dir", d, ""], "displayName"),
        (["license", "set", "--data-dir", d, "-1"], "-1"),
    ]
    with ThreadPoolExecutor(max_workers=len(cases)) as pool:
        results = list(pool.map(lambda c: run_program(tmp_path, c[0]), cases))
    for (argv, needle), (code, out, err) in zip(cases, results, strict=True):
        shown = f"{argv}: exit {code}\nstdout: {out}\nstderr: {err}"
        assert code != 0, shown
        assert "Traceback" not in out + err, shown
        assert needle in err, shown


# --- the CLI and a running server share the SQLite file -----------------------------------


@dataclass
class Server:
    url: str
    data_dir: Path
    email: str
    password: str
    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path

    def logs(self) -> str:
        return f"stdout:\n{self.stdout.read_text()}\nstderr:\n{self.stderr.read_text()}"


def wait_healthy(url: str, process: subprocess.Popen[bytes], logs: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode}\n{logs()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"the server did not answer /healthz within {timeout}s\n{logs()}")


@contextmanager
def running_server(data_dir: Path, log_dir: Path) -> Iterator[Server]:
    """``aospmdm serve`` on a free port; stopped (by its pid) however the test ends."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    out_path, err_path = log_dir / "server.out", log_dir / "server.err"
    with open(out_path, "w") as out, open(err_path, "w") as err:
        process = subprocess.Popen(
            [aospmdm_program(), "serve", "--data-dir", str(data_dir), "--port", str(port)],
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
    try:

        def logs() -> str:
            return f"stdout:\n{out_path.read_text()}\nstderr:\n{err_path.read_text()}"

        wait_healthy(url, process, logs, timeout=30)
        printed = out_path.read_text()
        email = re.search(r"^\s*email:\s+(\S+)\s*$", printed, re.M)
        password = re.search(r"^\s*password:\s+(\S+)\s*$", printed, re.M)
        if not (email and password):
            pytest.fail(f"the first start did not print the first admin\n{logs()}")
        yield Server(url, data_dir, email.group(1), password.group(1), process, out_path, err_path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("cli-server")
    data_dir = base / "data"
    with running_server(data_dir, base) as srv:
        yield srv


def test_server_first_start_prints_the_first_admin(server: Server) -> None:
    assert server.email == "admin@aospmdm.local"
    assert len(server.password) >= 12
    assert f"sign in at {server.url}/console" in server.stdout.read_text()


def test_cli_and_running_server_share_the_database(server: Server) -> None:
    # A token the CLI prints works at once against the server that was already running.
    root = bearer(new_token(server.data_dir, server.email))
    with httpx.Client(base_url=server.url, headers=root, timeout=30) as http:
        assert http.get("/beta/organization").status_code == 200

        d = str(server.data_dir)
        commands = [["scope-tag", "create", "--data-dir", d, f"cli-tag-{i}"] for i in range(2)]
        commands += [
            ["admin", "create", f"cli-admin-{i}@example.com", "--data-dir", d, "--role", HELP_DESK]
            for i in range(2)
        ]
        commands.append(["license", "set", "--data-dir", d, "42"])
        failures, calls_meanwhile = _with_api_traffic(
            server, root, lambda: _run_all(server.data_dir, commands)
        )
        assert not failures, failures
        assert calls_meanwhile >= 4, "the API calls did not overlap the CLI commands"

        # The server sees every CLI change immediately.
        tags = http.get(TAGS, params={"$top": "999"}).json()["value"]
        names = {t["displayName"] for t in tags}
        assert {"cli-tag-0", "cli-tag-1", "api-tag-0-0", "api-tag-1-0"} <= names

        assignments = http.get(ASSIGNMENTS, params={"$top": "999"}).json()["value"]
        members = {e for a in assignments for e in a["memberUserPrincipalNames"]}
        assert {"cli-admin-0@example.com", "cli-admin-1@example.com"} <= members

        skus = http.get("/beta/subscribedSkus").json()["value"]
        assert skus[0]["prepaidUnits"]["enabled"] == 42

        helpdesk = bearer(new_token(server.data_dir, "cli-admin-0@example.com"))
        assert http.get("/beta/organization", headers=helpdesk).status_code == 200
        r = http.post(TAGS, json={"displayName": "denied"}, headers=helpdesk)
        assert r.status_code == 403, r.text

    assert server.process.poll() is None, server.logs()
    assert "Traceback" not in server.stderr.read_text(), server.logs()


def _run_all(data_dir: Path, commands: list[list[str]]) -> None:
    """Run the real program once per command, all at the same time; each must succeed."""
    with ThreadPoolExecutor(max_workers=len(commands)) as pool:
        results = list(pool.map(lambda argv: run_program(data_dir, argv), commands))
    for argv, (code, out, err) in zip(commands, results, strict=True):
        assert code == 0, f"{argv}: exit {code}\nstdout: {out}\nstderr: {err}"
        assert "Traceback" not in err


def _with_api_traffic(
    server: Server, headers: dict[str, str], work: Any, workers: int = 2
) -> tuple[list[str], int]:
    """Make API reads and writes from ``workers`` threads for as long as ``work()`` runs (and
    at least two rounds each); return the unexpected answers and how many calls were answered
    while ``work()`` ran."""
    failures: list[str] = []
    calls = 0
    done = threading.Event()
    lock = threading.Lock()

    def traffic(worker: int) -> None:
        nonlocal calls
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
            i = 0
            while not done.is_set() or i < 2:
                for method, path, body, want in [
                    ("GET", "/beta/organization", None, 200),
                    ("GET", TAGS, None, 200),
                    ("POST", TAGS, {"displayName": f"api-tag-{worker}-{i}"}, 201),
                    ("GET", AUDIT + "?$top=5", None, 200),
                ]:
                    r = client.request(method, path, json=body)
                    with lock:
                        calls += 1
                        if r.status_code != want:
                            failures.append(f"{method} {path}: {r.status_code} {r.text}")
                i += 1

    threads = [threading.Thread(target=traffic, args=(w,)) for w in range(workers)]
    for t in threads:
        t.start()
    try:
        work()
    finally:
        with lock:
            meanwhile = calls
        done.set()
        for t in threads:
            t.join(timeout=60)
    return failures, meanwhile
