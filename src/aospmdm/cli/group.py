"""aospmdm group create / members / add."""

from __future__ import annotations

from typing import Annotated

import typer

from aospmdm.cli.common import DataDir, operator_session
from aospmdm.groups import service
from aospmdm.groups.schemas import GroupCreate
from aospmdm.tenant import access

app = typer.Typer(no_args_is_help=True, help="Device groups (assigned, or dynamic with a rule).")


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="The group's name.")],
    rule: Annotated[
        str | None,
        typer.Option("--rule", help='A dynamic membership rule, e.g. device.deviceModel -eq "X".'),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Create a group: dynamic with --rule, else assigned. Prints its id and member count."""
    with operator_session(data_dir) as session:
        data = GroupCreate.model_validate(
            {
                "displayName": name,
                "groupTypes": ["DynamicMembership"] if rule else [],
                "membershipRule": rule,
            }
        )
        group = service.create_group(session, access.cli_actor(), data)
        count = len(
            session.scalars(service.members_statement(session, access.cli_actor(), group.id)).all()
        )
        kind = "dynamic" if rule else "assigned"
        typer.echo(f"created {kind} group {group.display_name}: {group.id} ({count} members)")


@app.command("members")
def members(
    group: Annotated[str, typer.Argument(help="The group's name or id.")],
    data_dir: DataDir = None,
) -> None:
    """List a group's devices: id, name, serial number."""
    with operator_session(data_dir) as session:
        actor = access.cli_actor()
        found = service.find_group(session, actor, group)
        for device in session.scalars(service.members_statement(session, actor, found.id)):
            typer.echo(f"{device.id}  {device.device_name}  {device.serial_number}")


@app.command("add")
def add(
    group: Annotated[str, typer.Argument(help="The assigned group's name or id.")],
    device: Annotated[str, typer.Argument(help="The device's id.")],
    data_dir: DataDir = None,
) -> None:
    """Add a device to an assigned group."""
    with operator_session(data_dir) as session:
        actor = access.cli_actor()
        found = service.find_group(session, actor, group)
        service.add_member(session, actor, found.id, device)
        typer.echo(f"added {device} to {found.display_name}")
