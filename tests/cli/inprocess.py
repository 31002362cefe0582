"""The CLI run in-process on a fresh data directory (Typer's runner), with the checks and
database helpers the CLI tests share."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from click.testing import Result
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from aospmdm.cli import app
from aospmdm.cli.common import settings_for
from aospmdm.core import clock
from aospmdm.core.db import make_engine, make_sessionmaker, transaction
from aospmdm.devices.models import ManagedDevice

runner = CliRunner()


def run(data: Path, *args: str, answer: str | None = None) -> Result:
    return runner.invoke(app, [*args, "--data-dir", str(data)], input=answer)


def ok(result: Result) -> str:
    assert result.exit_code == 0, f"exit {result.exit_code}: {result.output}"
    assert "Traceback" not in result.output
    return result.stdout


def refused(result: Result) -> str:
    """A clean refusal: exit 2, `error: ...` on stderr, no traceback."""
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: "), result.output
    assert "Traceback" not in result.output
    return result.stderr


@contextmanager
def db(data: Path) -> Iterator[Session]:
    engine = make_engine(settings_for(data).resolved_database_url)
    try:
        with transaction(make_sessionmaker(engine)) as s:
            yield s
    finally:
        engine.dispose()


def add_device(data: Path, serial: str, name: str | None = None) -> str:
    """A device straight in the database (no enrollment needed for CLI tests)."""
    now = clock.now()
    device = ManagedDevice(
        device_name=name or f"RW-{serial}",
        enrollment_profile_name="Line 1 devices",
        enrolled_at=now,
        last_sync_at=now,
        serial_number=serial,
        manufacturer="RealWear",
        model="Navigator 500",
        os_version="11",
        security_patch_level="2024-05-05",
        agent_version="24.9.0",
        public_key="-",
    )
    with db(data) as s:
        s.add(device)
        s.flush()
        return device.id
