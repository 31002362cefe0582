"""aospmdm app upload / list / assign / status on a fresh data directory, with real APKs
built by tests/apps/apkfactory.py."""

from __future__ import annotations

import getpass
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from aospmdm.apps.models import DeviceAppStatus, MobileApp
from aospmdm.core import clock
from aospmdm.tenant.models import AuditEvent
from tests.apps.apkfactory import build_apk
from tests.cli.inprocess import add_device, db, ok, refused, run

PACKAGE = "com.example.scanner"


def group_id(out: str) -> str:
    # "created assigned group NAME: ID (N members)"
    return out.split(": ")[1].split()[0]


def line_of(out: str, text: str) -> str:
    (found,) = [line for line in out.splitlines() if text in line]
    return found


@dataclass
class Site:
    data: Path
    apk: Path
    a1: str
    a2: str
    line: str
    spares: str


@pytest.fixture
def site(tmp_path: Path) -> Site:
    """Devices RW-A1 and RW-A2 in group "Line 1", RW-A2 also in "Spares"; an APK on disk."""
    data = tmp_path / "data"
    ok(run(data, "migrate"))
    a1, a2 = add_device(data, "A1"), add_device(data, "A2")
    line = group_id(ok(run(data, "group", "create", "Line 1")))
    spares = group_id(ok(run(data, "group", "create", "Spares")))
    for g, d in ((line, a1), (line, a2), (spares, a2)):
        ok(run(data, "group", "add", g, d))
    apk = tmp_path / "scanner-1.0.apk"
    apk.write_bytes(build_apk(PACKAGE, 10, "1.0", min_sdk=28, label="Scanner"))
    return Site(data, apk, a1, a2, line, spares)


def uploaded_id(out: str) -> str:
    return out.splitlines()[0].rsplit(": ", 1)[1]


def test_upload_prints_the_app_and_warns_when_unsigned(site: Site, tmp_path: Path) -> None:
    out = ok(run(site.data, "app", "upload", str(site.apk), "--publisher", "Example Corp"))
    app_id = uploaded_id(out)
    assert out.splitlines()[0] == f"uploaded Scanner: {app_id}"
    assert line_of(out, "package:").split() == ["package:", PACKAGE]
    assert line_of(out, "version:").split() == ["version:", "1.0", "(10)"]
    assert "signed by:   (not signed)" in out
    assert "warning: The APK is not signed." in out
    with db(site.data) as s:
        app = s.get(MobileApp, app_id)
        assert app is not None and app.publisher == "Example Corp"
        events = s.scalars(select(AuditEvent).where(AuditEvent.activity == "Upload app")).all()
        assert [e.actor for e in events] == [f"cli:{getpass.getuser()}"]

    newer = tmp_path / "scanner-1.1.apk"
    newer.write_bytes(build_apk(PACKAGE, 11, "1.1"))
    out = ok(run(site.data, "app", "upload", str(newer), "--name", "Ignored for a version"))
    assert out.splitlines()[0] == f"added a version to Scanner: {app_id}"
    assert line_of(out, "version:").split() == ["version:", "1.1", "(11)"]


def test_upload_refusals(site: Site, tmp_path: Path) -> None:
    assert "is not a file" in refused(run(site.data, "app", "upload", str(tmp_path / "no.apk")))
    junk = tmp_path / "junk.apk"
    junk.write_bytes(b"not a zip at all")
    err = refused(run(site.data, "app", "upload", str(junk)))
    assert err == "error: The file is not an APK: it is not a zip archive.\n"
    ok(run(site.data, "app", "upload", str(site.apk)))
    err = refused(run(site.data, "app", "upload", str(site.apk)))
    assert "already has versionCode 10" in err
    with db(site.data) as s:
        assert len(s.scalars(select(MobileApp)).all()) == 4


def test_list_shows_the_required_apps_and_uploads(site: Site) -> None:
    out = ok(run(site.data, "app", "list"))
    assert out.splitlines()[0].split()[:4] == ["NAME", "TYPE", "PACKAGE", "VERSION"]
    agent = line_of(out, "required (agent)")
    assert "all devices" in agent
    app_id = uploaded_id(ok(run(site.data, "app", "upload", str(site.apk))))
    out = ok(run(site.data, "app", "list"))
    row = line_of(out, PACKAGE)
    assert row.split()[:6] == ["Scanner", "uploaded", PACKAGE, "1.0", "(10)", app_id]
    assert row.split()[6:] == ["0", "-"]


def test_assign_by_name_package_and_id_and_status(site: Site) -> None:
    app_id = uploaded_id(ok(run(site.data, "app", "upload", str(site.apk))))
    out = ok(run(site.data, "app", "assign", "Scanner", "Line 1", "--intent", "required"))
    assert out.splitlines()[0] == "assigned Scanner:"
    assert line_of(out, site.line).split() == ["required", "Line", "1", f"({site.line})"]
    assert line_of(out, "install status:") == "install status: 2 pending"
    # Another group is added; the first stays.
    out = ok(run(site.data, "app", "assign", PACKAGE, "--exclude", "Spares"))
    assert line_of(out, site.spares).split()[0] == "exclude"
    assert line_of(out, site.line).split()[0] == "required"
    assert line_of(out, "install status:") == "install status: 1 pending"

    # A failed install on RW-A1, as a device would report it.
    with db(site.data) as s:
        s.add(
            DeviceAppStatus(
                device_id=site.a1,
                app_id=app_id,
                install_state="failed",
                work="install",
                version_code=10,
                error_code=0x87D30067,
                message="The downloaded file's hash does not match.",
                last_updated_at=clock.now(),
                details={},
            )
        )
    out = ok(run(site.data, "app", "status", app_id))
    assert out.splitlines()[0] == f"Scanner ({PACKAGE}), version 1.0 (10)"
    assert line_of(out, "install status:") == "install status: 1 failed"
    row = line_of(out, site.a1).split()
    assert row[:5] == ["RW-A1", site.a1, "failed", "0x87D30067", "-"]
    body = json.loads(ok(run(site.data, "app", "status", "Scanner", "--json")))
    assert body["counts"]["failed"] == 1 and body["app"]["packageId"] == PACKAGE
    (status,) = body["value"]
    assert status["deviceId"] == site.a1 and status["errorCodeHex"] == "0x87D30067"

    out = ok(run(site.data, "app", "assign", app_id, "--clear"))
    assert out.splitlines()[0] == "Scanner is not assigned to any group"
    out = ok(run(site.data, "app", "assign", app_id, "Spares", "--intent", "uninstall", "--clear"))
    assert [line.split()[0] for line in out.splitlines()[1:-1]] == ["uninstall"]


def test_assign_and_status_refusals(site: Site) -> None:
    ok(run(site.data, "app", "upload", str(site.apk)))
    assert "--clear" in refused(run(site.data, "app", "assign", "Scanner"))
    err = refused(run(site.data, "app", "assign", "Nope", "Line 1"))
    assert "no app has the id, package name or name 'Nope'" in err
    err = refused(run(site.data, "app", "assign", "Scanner", "Nope"))
    assert "no group is named 'Nope'" in err
    ok(run(site.data, "group", "create", "Line 1"))
    err = refused(run(site.data, "app", "assign", "Scanner", "Line 1"))
    assert "2 groups are named 'Line 1'; give the id instead." in err
    err = refused(run(site.data, "app", "assign", "org.aospmdm.agent", site.line))
    assert "is a required app" in err
    bad = run(site.data, "app", "assign", "Scanner", site.line, "--intent", "available")
    assert bad.exit_code == 2 and "Traceback" not in bad.output
    assert "no app has" in refused(run(site.data, "app", "status", "Nope"))
