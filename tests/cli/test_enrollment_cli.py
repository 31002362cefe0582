"""The enrollment commands of the real command line (aospmdm profile / token), each test on a
fresh data directory, run in-process through Typer's CliRunner with exceptions uncaught (so
anything but a clean exit fails with its trace)."""

from __future__ import annotations

import base64
import getpass
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner, Result

from aospmdm.cli import app as cli_app
from aospmdm.core import clock
from aospmdm.core.config import Settings
from aospmdm.core.db import make_engine, make_sessionmaker, migrate, transaction
from aospmdm.enrollment import provisioning
from aospmdm.server import create_app
from aospmdm.tenant import access
from aospmdm.tenant import service as tenant
from tests.qr import decode_qr

PUBLIC_URL = "https://mdm.example.com"
PASSWORD = "correct horse battery staple"
PROFILES = "/beta/deviceManagement/androidDeviceOwnerEnrollmentProfiles"
EXTRA = "android.app.extra."
# Settings the developer's shell may hold that would point a test elsewhere.
ENV_VARS = [
    "AOSPMDM_DATA_DIR",
    "AOSPMDM_DATABASE_URL",
    "AOSPMDM_PUBLIC_URL",
    "AOSPMDM_SECRET_KEY",
    "AOSPMDM_ADMIN_PASSWORD",
    "AOSPMDM_WIFI_PASSWORD",
    "AOSPMDM_AGENT_APK_URL",
    "AOSPMDM_AGENT_COMPONENT",
    "AOSPMDM_AGENT_SIGNING_CERT_SHA256",
    "AOSPMDM_AGENT_CHECKSUM_PADDING",
]

runner = CliRunner()


@pytest.fixture(autouse=True)
def _settings_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AOSPMDM_PUBLIC_URL", PUBLIC_URL)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A fresh data directory whose MDM authority is set (the CLI has no command for it)."""
    path = tmp_path / "data"
    path.mkdir()
    settings = Settings(data_dir=path)
    migrate(settings.resolved_database_url)
    engine = make_engine(settings.resolved_database_url)
    try:
        factory = make_sessionmaker(engine)
        tenant.ensure_bootstrapped(factory)
        with transaction(factory) as session:
            org = tenant.organization(session)
            tenant.set_mdm_authority(session, access.cli_actor(), org.id)
    finally:
        engine.dispose()
    return path


def cli(data_dir: Path, command: str, *args: str, **env: str) -> Result:
    argv = [*command.split(), "--data-dir", str(data_dir), *args]
    return runner.invoke(cli_app, argv, env=env or None, catch_exceptions=False)


def ok(result: Result) -> str:
    assert result.exit_code == 0, f"exit {result.exit_code}: {result.output}"
    return result.stdout


def refused(result: Result) -> str:
    """A clean refusal: exit 2, `error: ...` on stderr, no traceback anywhere."""
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return result.stderr


def create(data_dir: Path, name: str, *args: str) -> str:
    """Create a profile with a WPA staging network; return its id."""
    wifi = ("--ssid", "Staging", "--wifi-type", "wpa", "--wifi-password", "staging-key-1")
    out = ok(cli(data_dir, "profile create", name, *(args or wifi)))
    match = re.search(rf"^created profile {re.escape(name)}: (\S+)$", out, re.M)
    assert match, out
    return match.group(1)


def export(data_dir: Path, profile: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(ok(cli(data_dir, "token export", profile, "--out", "-")))
    return body


def shown(data_dir: Path, profile: str) -> dict[str, str]:
    """`profile show` as a dict of its `label: value` lines."""
    out = ok(cli(data_dir, "profile show", profile))
    return dict(
        (m.group(1), m.group(2).strip()) for m in re.finditer(r"^([a-z -]+):\s(.*)$", out, re.M)
    )


def listed(data_dir: Path) -> dict[str, list[str]]:
    """`profile list` rows by profile name: [id, token state, enrolled]."""
    lines = ok(cli(data_dir, "profile list")).splitlines()
    if lines == ["no enrollment profiles"]:
        return {}
    assert lines[0].split() == ["NAME", "ID", "TOKEN", "ENROLLED"], lines
    rows = {}
    for line in lines[1:]:
        name, rest = re.split(r"\s{2,}", line, maxsplit=1)
        pid, state, enrolled = re.split(r"\s{2,}", rest)
        rows[name] = [pid, state, enrolled]
    return rows


def decode_png(path: Path) -> str:
    return str(decode_qr(path).text)


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def compact(extras: dict[str, Any]) -> str:
    return json.dumps(extras, separators=(",", ":"), ensure_ascii=False)


@contextmanager
def api(data_dir: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """The admin API over the same data directory, and an Intune Administrator's header."""
    env = {"AOSPMDM_ADMIN_PASSWORD": PASSWORD}
    email = "root@example.com"
    ok(cli(data_dir, "admin create", email, "--role", "Intune Administrator", **env))
    token = ok(cli(data_dir, "admin token", email)).splitlines()[-1]
    server = create_app(Settings(data_dir=data_dir))
    try:
        with TestClient(server) as client:
            yield client, {"Authorization": f"Bearer {token}"}
    finally:
        server.state.engine.dispose()


# --- create, list, show -------------------------------------------------------------------


def test_create_with_wpa_wifi_and_days_then_list_and_show(data_dir: Path) -> None:
    before = clock.now()
    out = ok(
        cli(
            data_dir,
            "profile create",
            "Plant 3",
            "--description",
            "Assembly line headsets",
            "--ssid",
            "Staging",
            "--hidden",
            "--wifi-type",
            "wpa",
            "--wifi-password",
            "staging-key-1",
            "--name-template",
            "P3-{{SERIALLAST4DIGITS}}",
            "--usage-limit",
            "25",
            "--days",
            "30",
        )
    )
    pid = re.search(r"^created profile Plant 3: (\S+)$", out, re.M)
    assert pid, out
    expiry = re.search(r"^token AOSP-[A-Z2-7-]+ expires (\S+)$", out, re.M)
    assert expiry, out
    expires = expiry.group(1)
    valid_for = (parse_time(expires) - before).total_seconds()
    assert 30 * 86400 <= valid_for <= 30 * 86400 + 60

    rows = listed(data_dir)
    assert rows == {"Plant 3": [pid.group(1), f"expires {expires}", "0"]}

    props = shown(data_dir, "Plant 3")
    assert props["id"] == pid.group(1)
    assert props["description"] == "Assembly line headsets"
    assert props["wi-fi"] == '"Staging", WPA, hidden, key set'
    assert props["device name template"] == "P3-{{SERIALLAST4DIGITS}}"
    assert props["token usage limit"] == "25 devices"
    assert props["scope tags"] == "Default (0)"
    assert props["token expires"] == expires
    assert props["token state"] == f"expires {expires}"
    assert re.fullmatch(r"AOSP-[A-Z2-7]{4}(-[A-Z2-7]{4}){3}", props["token"])
    full = ok(cli(data_dir, "profile show", pid.group(1)))
    assert "staging-key-1" not in full  # never the Wi-Fi key
    assert "cannot enroll" in full

    # The payload carries what was asked for.
    extras = export(data_dir, "Plant 3")["qrCodeContent"]
    assert extras[EXTRA + "PROVISIONING_WIFI_SSID"] == "Staging"
    assert extras[EXTRA + "PROVISIONING_WIFI_HIDDEN"] is True
    assert extras[EXTRA + "PROVISIONING_WIFI_SECURITY_TYPE"] == "WPA"
    assert extras[EXTRA + "PROVISIONING_WIFI_PASSWORD"] == "staging-key-1"
    bundle = extras[EXTRA + "PROVISIONING_ADMIN_EXTRAS_BUNDLE"]
    assert bundle["aospmdm.serverUrl"] == PUBLIC_URL
    assert bundle["aospmdm.profileId"] == pid.group(1)
    assert len(bundle["aospmdm.enrollmentToken"]) >= 43  # 256 bits, URL-safe base64
    assert bundle["aospmdm.enrollmentToken"] != props["token"]
    assert extras[EXTRA + "PROVISIONING_DEVICE_ADMIN_PACKAGE_DOWNLOAD_LOCATION"] == (
        f"{PUBLIC_URL}/device/v1/agent.apk"
    )


def test_wifi_password_from_the_environment(data_dir: Path) -> None:
    args = ("--ssid", "Staging", "--wifi-type", "wep")
    ok(cli(data_dir, "profile create", "WEP", *args, AOSPMDM_WIFI_PASSWORD="0123456789"))
    extras = export(data_dir, "WEP")["qrCodeContent"]
    assert extras[EXTRA + "PROVISIONING_WIFI_SECURITY_TYPE"] == "WEP"
    assert extras[EXTRA + "PROVISIONING_WIFI_PASSWORD"] == "0123456789"


def test_no_wifi_no_token_then_replace_issues_the_first(data_dir: Path) -> None:
    out = ok(cli(data_dir, "profile create", "Wired", "--no-wifi", "--no-token"))
    assert "no token yet" in out and "aospmdm token replace" in out
    assert listed(data_dir)["Wired"][1] == "no token"
    assert shown(data_dir, "Wired")["wi-fi"] == "not configured"

    err = refused(cli(data_dir, "token export", "Wired", "--out", "-"))
    assert "no active token" in err and "has not been created" in err
    assert "aospmdm token replace" in err

    ok(cli(data_dir, "token replace", "Wired", "--days", "7"))
    extras = export(data_dir, "Wired")["qrCodeContent"]
    assert not any("WIFI" in key for key in extras)


def test_scope_tags_by_name(data_dir: Path) -> None:
    out = ok(cli(data_dir, "scope-tag create", "Paris"))
    tag_id = out.strip().rsplit(" ", 1)[-1]
    pid = create(data_dir, "Paris", "--no-wifi", "--scope-tag", "paris")
    assert shown(data_dir, pid)["scope tags"] == f"Paris ({tag_id})"

    err = refused(cli(data_dir, "profile create", "Lyon", "--no-wifi", "--scope-tag", "Lyon"))
    assert "'Lyon'" in err
    assert "Lyon" not in listed(data_dir)


def test_list_when_empty(data_dir: Path) -> None:
    assert ok(cli(data_dir, "profile list")).strip() == "no enrollment profiles"


# --- QR codes and export ------------------------------------------------------------------


def test_qr_png_and_svg_carry_the_exported_json(data_dir: Path, tmp_path: Path) -> None:
    pid = create(data_dir, "Plant 3")
    png, svg = tmp_path / "qr.png", tmp_path / "qr.SVG"
    svg.write_text("old")
    svg.chmod(0o644)
    out = ok(cli(data_dir, "token qr", "Plant 3", "--out", str(png)))
    assert "plain text" in out
    ok(cli(data_dir, "token qr", pid, "--out", str(svg)))

    body = export(data_dir, pid)
    extras = body["qrCodeContent"]
    text = decode_png(png)
    assert json.loads(text) == extras
    assert text == compact(extras)  # the QR holds the compact JSON text itself

    svg_bytes = svg.read_bytes()
    assert b"<svg" in svg_bytes
    assert svg_bytes == provisioning.qr_svg(text)  # the same matrix as the PNG's
    assert png.read_bytes() == provisioning.qr_png(text)
    # Only the owner can read them: they carry a live secret and the Wi-Fi key.
    assert png.stat().st_mode & 0o077 == 0 and svg.stat().st_mode & 0o077 == 0

    # The export file is the same body as the API's export.
    json_file = tmp_path / "plant3.json"
    ok(cli(data_dir, "token export", "plant 3", "--out", str(json_file)))
    assert json.loads(json_file.read_text()) == body
    assert json_file.stat().st_mode & 0o077 == 0

    with api(data_dir) as (client, headers):
        r = client.get(f"{PROFILES}/{pid}", headers=headers)
        assert r.status_code == 200, r.text
        profile = r.json()
        assert base64.b64decode(profile["qrCodeContent"]).decode() == text
        assert profile["tokenExpirationDateTime"] == body["expirationDate"]
        assert profile["wifiPassword"] is None and profile["wifiPasswordIsSet"] is True
        r = client.get(f"{PROFILES}/{pid}/export", headers=headers)
        assert r.json() == body


def test_qr_refuses_other_image_formats(data_dir: Path, tmp_path: Path) -> None:
    create(data_dir, "Plant 3")
    for name in ("qr.jpg", "qr", "qr.png.txt"):
        err = refused(cli(data_dir, "token qr", "Plant 3", "--out", str(tmp_path / name)))
        assert ".png or .svg" in err
        assert not (tmp_path / name).exists()


def test_qr_into_a_missing_directory_is_a_clean_error(data_dir: Path, tmp_path: Path) -> None:
    create(data_dir, "Plant 3")
    out = tmp_path / "missing" / "qr.png"
    err = refused(cli(data_dir, "token qr", "Plant 3", "--out", str(out)))
    assert str(out) in err


def test_qr_without_public_url_warns(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    create(data_dir, "Plant 3")
    monkeypatch.delenv("AOSPMDM_PUBLIC_URL")
    result = cli(data_dir, "token qr", "Plant 3", "--out", str(tmp_path / "qr.png"))
    ok(result)
    assert "AOSPMDM_PUBLIC_URL is not set" in result.stderr


# --- replace, revoke, expiry --------------------------------------------------------------


def test_replace_changes_the_token_and_the_qr(data_dir: Path) -> None:
    create(data_dir, "Plant 3")
    before = shown(data_dir, "Plant 3")["token"]
    old = export(data_dir, "Plant 3")

    out = ok(cli(data_dir, "token replace", "Plant 3", "--days", "10"))
    after = shown(data_dir, "Plant 3")["token"]
    assert after != before and after in out
    new = export(data_dir, "Plant 3")
    bundle = EXTRA + "PROVISIONING_ADMIN_EXTRAS_BUNDLE"
    assert (
        new["qrCodeContent"][bundle]["aospmdm.enrollmentToken"]
        != old["qrCodeContent"][bundle]["aospmdm.enrollmentToken"]
    )
    assert new["expirationDate"] < old["expirationDate"]  # 10 days instead of 90


@pytest.mark.parametrize("days", ["0", "91", "-1"])
def test_replace_refuses_days_out_of_range(data_dir: Path, days: str) -> None:
    create(data_dir, "Plant 3")
    before = shown(data_dir, "Plant 3")["token"]
    err = refused(cli(data_dir, "token replace", "Plant 3", "--days", days))
    assert "between 1 and 90" in err
    assert shown(data_dir, "Plant 3")["token"] == before


def test_revoke_then_qr_and_export_fail_cleanly(data_dir: Path, tmp_path: Path) -> None:
    pid = create(data_dir, "Plant 3")
    out = ok(cli(data_dir, "token revoke", "Plant 3"))
    assert "revoked" in out
    props = shown(data_dir, pid)
    assert props["token state"].startswith("revoked ")
    assert parse_time(props["token expires"]) <= clock.now()
    assert listed(data_dir)["Plant 3"][1].startswith("revoked ")

    png = tmp_path / "qr.png"
    err = refused(cli(data_dir, "token qr", "Plant 3", "--out", str(png)))
    assert "no active token" in err and "revoked" in err
    assert not png.exists()
    err = refused(cli(data_dir, "token export", pid, "--out", str(tmp_path / "x.json")))
    assert "no active token" in err

    # Revoking again says there is nothing to revoke; replacing brings the QR back.
    assert "nothing to revoke" in ok(cli(data_dir, "token revoke", pid))
    ok(cli(data_dir, "token replace", pid, "--days", "1"))
    ok(cli(data_dir, "token qr", pid, "--out", str(png)))


def test_an_expired_token_is_shown_as_expired(data_dir: Path, tmp_path: Path) -> None:
    create(data_dir, "Plant 3", "--no-wifi", "--days", "1")
    clock.advance(86400 + 1)
    assert listed(data_dir)["Plant 3"][1].startswith("expired ")
    err = refused(cli(data_dir, "token qr", "Plant 3", "--out", str(tmp_path / "qr.svg")))
    assert "no active token" in err and "expired" in err


# --- delete -------------------------------------------------------------------------------


def test_delete_asks_unless_yes(data_dir: Path) -> None:
    pid = create(data_dir, "Plant 3")
    result = runner.invoke(
        cli_app, ["profile", "delete", "Plant 3", "--data-dir", str(data_dir)], input="n\n"
    )
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "Delete profile 'Plant 3'" in result.output
    assert "Plant 3" in listed(data_dir)

    result = runner.invoke(
        cli_app, ["profile", "delete", pid, "--data-dir", str(data_dir)], input="y\n"
    )
    assert result.exit_code == 0, result.output
    assert listed(data_dir) == {}


def test_delete_with_yes(data_dir: Path) -> None:
    create(data_dir, "Plant 3")
    create(data_dir, "Plant 4")
    out = ok(cli(data_dir, "profile delete", "plant 3", "--yes"))
    assert "deleted profile Plant 3" in out
    assert list(listed(data_dir)) == ["Plant 4"]
    refused(cli(data_dir, "profile show", "Plant 3"))
    # The name is free again.
    create(data_dir, "Plant 3")


# --- refusals -----------------------------------------------------------------------------


def test_without_mdm_authority_create_is_refused(tmp_path: Path) -> None:
    err = refused(cli(tmp_path, "profile create", "Plant 3", "--no-wifi"))
    assert "MDM authority" in err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--ssid", "S", "--wifi-type", "wpa", "--wifi-password", "short"], "WPA key"),
        (["--ssid", "S", "--wifi-type", "wpa"], "pre-shared key"),
        (["--ssid", "S", "--wifi-type", "wep", "--wifi-password", "123456"], "WEP key"),
        (["--ssid", "S", "--wifi-password", "staging-key-1"], "--wifi-type"),
        (["--ssid", "x" * 33], "32 bytes"),
        ([], "--ssid"),
        (["--no-wifi", "--ssid", "S"], "--no-wifi"),
        (["--no-wifi", "--days", "91"], "between 1 and 90"),
        (["--no-wifi", "--days", "0"], "between 1 and 90"),
        (["--no-wifi", "--usage-limit", "0"], "--usage-limit"),
        (["--no-wifi", "--usage-limit", "20001"], "--usage-limit"),
        (["--no-wifi", "--name-template", "bad_name"], "device name template"),
        (["--no-wifi", "--name-template", "{{NOPE}}"], "{{NOPE}}"),
        (["--no-wifi", "--name-template", "x" * 64], "63"),
        (["--no-wifi", "--description", "x" * 1501], "--description"),
    ],
)
def test_create_refusals_are_clean_and_change_nothing(
    data_dir: Path, args: list[str], needle: str
) -> None:
    err = refused(cli(data_dir, "profile create", "Plant 3", *args))
    assert needle in err
    assert listed(data_dir) == {}


def test_empty_and_duplicate_names_are_refused(data_dir: Path) -> None:
    err = refused(cli(data_dir, "profile create", "  ", "--no-wifi"))
    assert "name" in err
    create(data_dir, "Plant 3")
    err = refused(cli(data_dir, "profile create", "PLANT 3", "--no-wifi"))
    assert "already exists" in err
    assert list(listed(data_dir)) == ["Plant 3"]


@pytest.mark.parametrize(
    "command",
    [
        ["profile show"],
        ["profile delete", "--yes"],
        ["token replace", "--days", "5"],
        ["token revoke"],
        ["token qr", "--out", "qr.png"],
        ["token export", "--out", "-"],
    ],
)
def test_unknown_profile_is_a_clean_error(data_dir: Path, command: list[str]) -> None:
    create(data_dir, "Plant 3")
    err = refused(cli(data_dir, command[0], "Plant 4", *command[1:]))
    assert "no enrollment profile is named 'Plant 4'" in err


# --- audit --------------------------------------------------------------------------------


def test_cli_changes_are_audited_as_the_os_user(data_dir: Path) -> None:
    pid = create(data_dir, "Plant 3")
    ok(cli(data_dir, "token replace", "Plant 3", "--days", "5"))
    ok(cli(data_dir, "token revoke", "Plant 3"))
    ok(cli(data_dir, "profile delete", "Plant 3", "--yes"))

    with api(data_dir) as (client, headers):
        r = client.get(
            "/beta/deviceManagement/auditEvents",
            params={"$filter": "category eq 'Enrollment'", "$top": "999"},
            headers=headers,
        )
        assert r.status_code == 200, r.text
        events = r.json()["value"]
    activities = sorted(e["activity"] for e in events)
    assert activities == [
        "Create enrollment profile",
        "Create enrollment token",
        "Create enrollment token",
        "Delete enrollment profile",
        "Revoke enrollment token",
    ]
    for e in events:
        assert e["actor"]["userPrincipalName"] == f"cli:{getpass.getuser()}", e
        assert e["actor"]["type"] == "cli", e
        assert e["resources"][0]["resourceId"] == pid, e
        assert "staging-key-1" not in json.dumps(e)  # the Wi-Fi key is never audited
