"""aospmdm group create / members / add, on a fresh data directory."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from aospmdm.cli import app
from aospmdm.cli.common import settings_for
from aospmdm.core import clock
from aospmdm.core.db import make_engine, make_sessionmaker, transaction
from aospmdm.devices.models import ManagedDevice

runner = CliRunner()


def run(data: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, [*args, "--data-dir", str(data)])
    return result.exit_code, result.output


def add_device(data: Path, serial: str, profile: str) -> str:
    engine = make_engine(settings_for(data).resolved_database_url)
    now = clock.now()
    device = ManagedDevice(
        device_name=f"RW-{serial}",
        enrollment_profile_name=profile,
        enrolled_at=now,
        last_sync_at=now,
        serial_number=serial,
        manufacturer="RealWear",
        model="Navigator 500",
        os_version="11",
        security_patch_level="",
        agent_version="24.9.0",
        public_key="-",
    )
    with transaction(make_sessionmaker(engine)) as s:
        s.add(device)
        s.flush()
        device_id = device.id
    engine.dispose()
    return device_id


def test_group_commands(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert run(data, "migrate")[0] == 0
    a = add_device(data, "A1", "Factory 1 devices")
    add_device(data, "B1", "Factory 2 devices")
    code, out = run(
        data,
        "group",
        "create",
        "F1",
        "--rule",
        'device.enrollmentProfileName -eq "Factory 1 devices"',
    )
    assert code == 0 and "dynamic" in out and "(1 members)" in out
    code, out = run(data, "group", "members", "F1")
    assert code == 0 and a in out and "A1" in out and "B1" not in out
    code, out = run(data, "group", "create", "Hand picked")
    assert code == 0 and "assigned" in out
    assert run(data, "group", "add", "Hand picked", a)[0] == 0
    code, out = run(data, "group", "add", "Hand picked", a)
    assert code == 2 and "already" in out
    code, out = run(data, "group", "add", "F1", a)
    assert code == 2 and "dynamic" in out
    code, out = run(data, "group", "create", "Bad", "--rule", "device.nosuch -eq 1")
    assert code == 2 and "position" in out and "Traceback" not in out
    code, out = run(data, "group", "members", "Nobody")
    assert code == 2
