"""aospmdm device wipe / delete / lock / reset-passcode / restart / actions, on a fresh data
directory. Devices are added straight to the database; the passcode policy is created through
the policies service and assigned with the CLI."""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from aospmdm.actions import service as actions
from aospmdm.actions.models import DeviceCommand
from aospmdm.cli.common import settings_for
from aospmdm.devices.models import ManagedDevice
from aospmdm.policies import service as policies
from aospmdm.policies.models import RESTRICTIONS
from aospmdm.policies.schemas import RestrictionsInput
from aospmdm.tenant import access
from aospmdm.tenant.models import AuditEvent
from tests.cli.inprocess import add_device, db, ok, refused, run


def commands(data: Path) -> list[tuple[str, str, str]]:
    """(device id, action name, state) of every queued command."""
    with db(data) as s:
        return sorted(
            (c.device_id, c.action_name, c.state) for c in s.scalars(select(DeviceCommand))
        )


def device_ids(data: Path) -> set[str]:
    with db(data) as s:
        return set(s.scalars(select(ManagedDevice.id)))


def line_of(out: str, text: str) -> str:
    (found,) = [line for line in out.splitlines() if text in line]
    return found


@dataclass
class Site:
    data: Path
    a1: str
    a2: str


@pytest.fixture
def site(tmp_path: Path) -> Site:
    """Devices RW-A1 (serial A1) and RW-A2 (serial A2), no policy."""
    data = tmp_path / "data"
    ok(run(data, "migrate"))
    return Site(data, add_device(data, "A1"), add_device(data, "A2"))


def assign_passcode_policy(site: Site, *device: str) -> None:
    ok(run(site.data, "group", "create", "Locked"))  # also bootstraps the tenant
    with db(site.data) as s:
        policies.create_policy(
            s,
            settings_for(site.data),
            access.cli_actor(),
            RESTRICTIONS,
            RestrictionsInput.model_validate(
                {
                    "@odata.type": "#microsoft.graph.aospDeviceOwnerDeviceConfiguration",
                    "displayName": "Passcode",
                    "passwordRequiredType": "numeric",
                    "passwordMinimumLength": 8,
                }
            ),
        )
    for d in device:
        ok(run(site.data, "group", "add", "Locked", d))
    ok(run(site.data, "policy", "assign", "Passcode", "--group", "Locked"))


def test_restart_by_id_name_and_serial(site: Site) -> None:
    out = ok(run(site.data, "device", "restart", site.a1, "RW-A2"))
    assert "restart queued" in line_of(out, site.a1)
    assert "restart queued" in line_of(out, site.a2)
    # The serial number names the same device; restart is not merged, so it stacks.
    ok(run(site.data, "device", "restart", "A1"))
    assert commands(site.data) == sorted(
        [(site.a1, "rebootNow", "pending")] * 2 + [(site.a2, "rebootNow", "pending")]
    )


def test_wipe_with_yes_queues_and_merges(site: Site) -> None:
    out = ok(run(site.data, "device", "wipe", "RW-A1", "--yes"))
    assert "wipe queued" in line_of(out, site.a1)
    out = ok(run(site.data, "device", "wipe", "A1", "--yes"))
    assert "wipe already queued" in line_of(out, site.a1)
    assert commands(site.data) == [(site.a1, "wipe", "pending")]
    with db(site.data) as s:
        device = s.get(ManagedDevice, site.a1)
        assert device is not None and device.management_state == "wipePending"
    # A pending wipe refuses every other action.
    out = run(site.data, "device", "restart", site.a1)
    assert out.exit_code == 2
    assert "refused: A wipe is pending" in line_of(out.stdout, site.a1)


def test_wipe_and_delete_ask_first(site: Site) -> None:
    result = run(site.data, "device", "wipe", "RW-A1", answer="n\n")
    assert result.exit_code != 0 and "Wipe RW-A1" in result.output
    result = run(site.data, "device", "delete", "RW-A1", "RW-A2", answer="\n")
    assert result.exit_code != 0 and "Delete RW-A1" in result.output
    assert commands(site.data) == []
    assert device_ids(site.data) == {site.a1, site.a2}
    with db(site.data) as s:
        device = s.get(ManagedDevice, site.a1)
        assert device is not None and device.management_state == "managed"

    out = ok(run(site.data, "device", "wipe", "RW-A1", answer="y\n"))
    assert "wipe queued" in out
    assert commands(site.data) == [(site.a1, "wipe", "pending")]


def test_delete_removes_the_device_at_once(site: Site) -> None:
    out = ok(run(site.data, "device", "delete", "A2", "--yes"))
    assert "delete queued" in line_of(out, site.a2)
    assert device_ids(site.data) == {site.a1}
    assert commands(site.data) == [(site.a2, "delete", "pending")]
    # The deleted device's history is still there by its id.
    history = ok(run(site.data, "device", "actions", site.a2))
    assert "delete" in line_of(history, "pending")
    refused(run(site.data, "device", "restart", "A2"))


def test_lock_needs_a_passcode_policy(site: Site) -> None:
    result = run(site.data, "device", "lock", "RW-A1", "RW-A2")
    assert result.exit_code == 2 and "Traceback" not in result.output
    for d in (site.a1, site.a2):
        assert "needs a passcode policy" in line_of(result.stdout, d)
    assert commands(site.data) == []

    assign_passcode_policy(site, site.a1)
    result = run(site.data, "device", "lock", "RW-A1", "RW-A2")
    assert result.exit_code == 2  # one was refused
    assert "remote lock queued" in line_of(result.stdout, site.a1)
    assert "refused: remoteLock needs a passcode policy" in line_of(result.stdout, site.a2)
    assert commands(site.data) == [(site.a1, "remoteLock", "pending")]


def test_reset_passcode_shows_the_passcode_in_the_history(site: Site) -> None:
    assign_passcode_policy(site, site.a1)
    assert ok(run(site.data, "device", "actions", "RW-A1")).strip() == "no actions"
    ok(run(site.data, "device", "reset-passcode", "RW-A1"))
    history = ok(run(site.data, "device", "actions", "RW-A1"))
    assert history.splitlines()[0].split()[:3] == ["STARTED", "ACTION", "STATE"]
    row = line_of(history, "resetPasscode")
    passcode = row.split()[-1]
    assert "pending" in row and f"cli:{getpass.getuser()}" in row
    assert passcode.isdigit() and len(passcode) == 8
    with db(site.data) as s:
        (result,) = actions.action_results(
            s, settings_for(site.data), access.cli_actor(), [site.a1]
        )[site.a1]
        assert result["passcode"] == passcode


def test_unknown_and_ambiguous_devices_change_nothing(site: Site) -> None:
    err = refused(run(site.data, "device", "restart", "RW-A1", "nothing-here"))
    assert "no device has the id, name or serial number 'nothing-here'" in err
    twin = add_device(site.data, "B7", name="RW-A1")
    err = refused(run(site.data, "device", "wipe", "RW-A1", "--yes"))
    assert "2 devices are named 'RW-A1'" in err and "give the id" in err
    refused(run(site.data, "device", "actions", "RW-A1"))
    assert commands(site.data) == []
    ok(run(site.data, "device", "restart", twin))
    assert commands(site.data) == [(twin, "rebootNow", "pending")]


def test_actions_are_audited_as_the_os_user(site: Site) -> None:
    ok(run(site.data, "device", "restart", "RW-A1"))
    with db(site.data) as s:
        (event,) = s.scalars(select(AuditEvent).where(AuditEvent.category == "DeviceAction"))
        assert event.actor == f"cli:{getpass.getuser()}" and event.actor_type == "cli"
        assert event.target_id == site.a1 and event.activity == "rebootNow: queued"
