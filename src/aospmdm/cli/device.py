"""aospmdm device wipe / delete / lock / reset-passcode / restart / actions: remote actions
on managed devices. DEVICE is a device's id, name or serial number."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import typer
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from aospmdm.actions import service
from aospmdm.actions.models import OPEN, DeviceCommand
from aospmdm.cli.common import DataDir, fail, operator_session, settings_for
from aospmdm.cli.policy import table
from aospmdm.core.errors import DomainError
from aospmdm.devices.models import ManagedDevice
from aospmdm.tenant import access

app = typer.Typer(
    no_args_is_help=True,
    help="Remote actions on managed devices: wipe, delete, lock, reset passcode, restart.",
)

DevicesArg = Annotated[
    list[str],
    typer.Argument(help="Devices, each by id, name or serial number.", show_default=False),
]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


def find(session: Session, text: str) -> ManagedDevice:
    """The device with this id, or the one device with this name or serial number."""
    by_id = session.get(ManagedDevice, text)
    if by_id is not None:
        return by_id
    matches = list(
        session.scalars(
            select(ManagedDevice)
            .where(or_(ManagedDevice.device_name == text, ManagedDevice.serial_number == text))
            .order_by(ManagedDevice.device_name, ManagedDevice.id)
        )
    )
    if not matches:
        fail(f"no device has the id, name or serial number '{text}'.")
    if len(matches) > 1:
        fail(f"{len(matches)} devices are named '{text}' or have it as serial number; give the id.")
    return matches[0]


def resolve(session: Session, texts: Sequence[str]) -> list[tuple[str, str]]:
    """(id, name) of each device, each once, in the order given."""
    out: dict[str, str] = {}
    for text in texts:
        device = find(session, text)
        out.setdefault(device.id, device.device_name)
    return list(out.items())


def act(
    data_dir: DataDir, texts: Sequence[str], name: str, label: str, confirm: str | None
) -> None:
    """Queue the action on each device; one line per device; exit 2 if any was refused."""
    settings = settings_for(data_dir)
    with operator_session(data_dir) as session:
        targets = resolve(session, texts)
    if confirm is not None:
        listed = ", ".join(f"{n} ({i})" for i, n in targets)
        typer.confirm(f"{label.capitalize()} {listed}? {confirm}", abort=True)
    refused = 0
    lines: list[str] = []
    with operator_session(data_dir) as session:
        actor = access.cli_actor()
        for device_id, device_name in targets:
            open_before = set(
                session.scalars(
                    select(DeviceCommand.id).where(
                        DeviceCommand.device_id == device_id,
                        DeviceCommand.action_name == name,
                        DeviceCommand.state.in_(OPEN),
                    )
                )
            )
            try:
                with session.begin_nested():
                    command = service.request(session, settings, actor, device_id, name)
            except DomainError as exc:
                refused += 1
                lines.append(f"{device_name} ({device_id}): refused: {exc.message}")
                continue
            state = "already queued" if command.id in open_before else "queued"
            lines.append(f"{device_name} ({device_id}): {label} {state} (action {command.id})")
    for line in lines:
        typer.echo(line)
    if refused:
        raise typer.Exit(2)


@app.command("wipe")
def wipe(devices: DevicesArg, yes: YesOpt = False, data_dir: DataDir = None) -> None:
    """Factory-reset devices; each is removed once it confirms (wipePending until then)."""
    confirm = None if yes else "Each device is factory reset, then removed."
    act(data_dir, devices, "wipe", "wipe", confirm)


@app.command("delete")
def delete(devices: DevicesArg, yes: YesOpt = False, data_dir: DataDir = None) -> None:
    """Delete devices at once (their licenses are freed); each is told to factory reset."""
    confirm = (
        None
        if yes
        else "Each device leaves the list at once and is told to factory reset at its next "
        "check-in."
    )
    act(data_dir, devices, "delete", "delete", confirm)


@app.command("lock")
def lock(devices: DevicesArg, data_dir: DataDir = None) -> None:
    """Lock devices remotely (needs a passcode policy assigned to each device)."""
    act(data_dir, devices, "remoteLock", "remote lock", None)


@app.command("reset-passcode")
def reset_passcode(devices: DevicesArg, data_dir: DataDir = None) -> None:
    """Set a new temporary passcode on devices (needs a passcode policy); see it with
    aospmdm device actions."""
    act(data_dir, devices, "resetPasscode", "reset passcode", None)


@app.command("restart")
def restart(devices: DevicesArg, data_dir: DataDir = None) -> None:
    """Restart devices."""
    act(data_dir, devices, "rebootNow", "restart", None)


@app.command("actions")
def actions(
    device: Annotated[
        str,
        typer.Argument(
            help="The device's id, name or serial number (a deleted device: its id).",
            show_default=False,
        ),
    ],
    data_dir: DataDir = None,
) -> None:
    """A device's action history, newest first, with the temporary passcode of a reset
    (shown for 7 days)."""
    settings = settings_for(data_dir)
    with operator_session(data_dir) as session:
        known = session.get(ManagedDevice, device) is not None or session.scalar(
            select(DeviceCommand.id).where(DeviceCommand.device_id == device).limit(1)
        )
        device_id = device if known else find(session, device).id
        results = service.action_results(session, settings, access.cli_actor(), [device_id])
    history = results[device_id]
    if not history:
        typer.echo("no actions")
        return
    rows = [("STARTED", "ACTION", "STATE", "LAST UPDATED", "REQUESTED BY", "DETAIL")]
    for r in history:
        detail = r.get("message") or ""
        if r.get("passcode"):
            detail = f"passcode {r['passcode']}"
        rows.append(
            (
                r["startDateTime"] or "-",
                r["actionName"],
                r["actionState"],
                r["lastUpdatedDateTime"] or "-",
                r["requestedBy"] or "-",
                detail,
            )
        )
    table(rows)
