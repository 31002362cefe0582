"""aospmdm policy list / show / assign: configuration policies (device restrictions, Wi-Fi
profiles) and compliance policies. POLICY is a policy's name or its id."""

from __future__ import annotations

import json
from collections.abc import Sequence
from enum import StrEnum
from typing import Annotated, Any

import typer
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from aospmdm.cli.common import DataDir, fail, operator_session
from aospmdm.core import clock
from aospmdm.core.errors import NotFound
from aospmdm.groups import service as groups
from aospmdm.groups.models import DeviceGroup
from aospmdm.policies import api, service
from aospmdm.policies.models import COMPLIANCE, CONFIGURATION_KINDS, RESTRICTIONS, WIFI, Policy
from aospmdm.policies.schemas import (
    COMPLIANCE_SETTINGS,
    RESTRICTION_SETTINGS,
    WIFI_SETTINGS,
    Assign,
    Setting,
)
from aospmdm.tenant import access

app = typer.Typer(
    no_args_is_help=True,
    help="Configuration policies (device restrictions, Wi-Fi profiles) and compliance policies.",
)

PolicyArg = Annotated[str, typer.Argument(help="The policy's name or id.", show_default=False)]
TYPE_LABELS = {RESTRICTIONS: "Device restrictions", WIFI: "Wi-Fi", COMPLIANCE: "Compliance"}
# Graph's complianceStatus values, in the order the counts are printed.
STATUSES = ("compliant", "nonCompliant", "error", "conflict", "notApplicable", "unknown")
ACTION_LABELS = {
    "block": "mark device noncompliant",
    "remoteLock": "remote lock",
    "retire": "add to retire list",
    "notification": "send notification",
}


class Kind(StrEnum):
    configuration = "configuration"
    compliance = "compliance"
    all = "all"


KINDS = {
    Kind.configuration: CONFIGURATION_KINDS,
    Kind.compliance: (COMPLIANCE,),
    Kind.all: (*CONFIGURATION_KINDS, COMPLIANCE),
}


def find(session: Session, name_or_id: str) -> Policy:
    """The policy with this id, or the one policy with this name."""
    actor = access.cli_actor()
    try:
        found = service.find_policy(session, actor, name_or_id)
    except NotFound:
        fail(f"no policy is named '{name_or_id}' or has that id (see aospmdm policy list).")
    if found.id != name_or_id:
        same_name = session.scalar(
            select(func.count()).select_from(Policy).where(Policy.display_name == name_or_id)
        )
        if same_name and same_name > 1:
            fail(f"{same_name} policies are named '{name_or_id}'; give the id instead.")
    return found


def find_group(session: Session, name_or_id: str) -> DeviceGroup:
    """The group with this id, or the one group with this name (group names need not be
    unique)."""
    try:
        found = groups.find_group(session, access.cli_actor(), name_or_id)
    except NotFound:
        fail(f"no group is named '{name_or_id}' or has that id (see the console or /beta/groups).")
    if found.id != name_or_id:
        same_name = session.scalar(
            select(func.count())
            .select_from(DeviceGroup)
            .where(DeviceGroup.display_name == name_or_id)
        )
        if same_name and same_name > 1:
            fail(f"{same_name} groups are named '{name_or_id}'; give the id instead.")
    return found


def counts_text(counts: dict[str, int]) -> str:
    """'2 compliant, 1 unknown'; '-' when the policy targets no device."""
    return ", ".join(f"{counts[s]} {s}" for s in STATUSES if counts.get(s)) or "-"


def table(rows: Sequence[Sequence[str]]) -> None:
    """Columns padded to their widest cell; the last column is not padded."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        typer.echo("  ".join([*cells, row[-1]]).rstrip())


def group_names(session: Session, ids: Sequence[str]) -> dict[str, str]:
    if not ids:
        return {}
    rows = session.execute(
        select(DeviceGroup.id, DeviceGroup.display_name).where(DeviceGroup.id.in_(list(ids)))
    )
    return {gid: name for gid, name in rows}


def value_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "(empty)"
    return str(value)


def setting_lines(policy: Policy) -> list[tuple[str, str]]:
    """The configured settings as (label, value); settings not configured are left out."""
    s = policy.settings
    if policy.kind == WIFI:
        lines = [(name, value_text(s[name])) for name in WIFI_SETTINGS if s.get(name) is not None]
        if (s.get("wiFiSecurityType") or "open") != "open":
            key = "set" if policy.secret_encrypted is not None else "not set"
            lines.append(("preSharedKey", f"({key}; never shown)"))
        return lines
    catalog: tuple[Setting, ...] = (
        RESTRICTION_SETTINGS if policy.kind == RESTRICTIONS else COMPLIANCE_SETTINGS
    )
    out = []
    for setting in catalog:
        if s.get(setting.name) is None:
            continue
        value = value_text(s[setting.name])
        if setting.unit:
            value = f"{value} {setting.unit}"
        out.append((f"{setting.label} ({setting.name})", value))
    return out


def action_text(action: dict[str, Any]) -> str:
    kind = str(action["actionType"])
    hours = int(action.get("gracePeriodHours") or 0)
    text = f"{ACTION_LABELS.get(kind, kind)} ({kind}) after {hours} h"
    if kind == "notification":
        text += " to " + ", ".join(action.get("notificationMessageCCList") or [])
    return text


@app.command("list")
def list_policies(
    kind: Annotated[
        Kind, typer.Option("--kind", help="Which policies: configuration, compliance or all.")
    ] = Kind.all,
    data_dir: DataDir = None,
) -> None:
    """The policies: name, type, id, version, assigned groups and device status counts."""
    with operator_session(data_dir) as session:
        actor = access.cli_actor()
        policies = list(session.scalars(service.policy_statement(actor, KINDS[kind])))
        if not policies:
            typer.echo("no policies")
            return
        assignments = service.assignments_of(session, [p.id for p in policies])
        rows = [("NAME", "TYPE", "ID", "VERSION", "GROUPS", "DEVICE STATUS")]
        for p in policies:
            counts = service.policy_status_counts(session, actor, p)
            mine = assignments[p.id]
            included = sum(1 for a in mine if not a.exclude)
            excluded = len(mine) - included
            assigned = str(included) + (f" (+{excluded} excluded)" if excluded else "")
            rows.append(
                (
                    p.display_name,
                    TYPE_LABELS[p.kind],
                    p.id,
                    str(p.version),
                    assigned,
                    counts_text(counts),
                )
            )
    table(rows)


@app.command("show")
def show(
    policy: PolicyArg,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json", help="Print the policy as the admin API returns it, with assignments."
        ),
    ] = False,
    data_dir: DataDir = None,
) -> None:
    """A policy's configured settings, assignments and per-device status (never a Wi-Fi key)."""
    with operator_session(data_dir) as session:
        actor = access.cli_actor()
        p = find(session, policy)
        assignments = service.assignments_of(session, [p.id])[p.id]
        if as_json:
            body = api.policies_json(session, [p])[0]
            body["assignments"] = [api.assignment_json(a) for a in assignments]
            typer.echo(json.dumps(body, indent=2))
            return
        names = group_names(session, [a.group_id for a in assignments])
        statuses = service.device_statuses(session, actor, p)
        header: list[tuple[str, Any]] = [
            ("name", p.display_name),
            ("id", p.id),
            ("type", f"{TYPE_LABELS[p.kind]} (#{api.TYPES[p.kind]})"),
            ("description", p.description),
            ("version", p.version),
            ("created", clock.iso(p.created_at)),
            ("modified", clock.iso(p.last_modified_at)),
        ]
        settings = setting_lines(p)
        counts = service.policy_status_counts(session, actor, p)
    width = max(len(label) for label, _ in header) + 1
    for label, value in header:
        typer.echo(f"{label + ':':<{width}} {value}")
    typer.echo("\nsettings:")
    if settings:
        label_width = max(len(label) for label, _ in settings) + 1
        for label, value in settings:
            typer.echo(f"  {label + ':':<{label_width}} {value}")
    else:
        typer.echo("  (none configured)")
    if p.kind == COMPLIANCE:
        typer.echo("\nactions for noncompliance:")
        for action in p.scheduled_actions:
            typer.echo(f"  {action_text(action)}")
    typer.echo("\nassignments:")
    if not assignments:
        typer.echo("  (not assigned)")
    for a in assignments:
        mode = "exclude" if a.exclude else "include"
        typer.echo(f"  {mode}  {names.get(a.group_id, '?')} ({a.group_id})")
    typer.echo(f"\ndevice status: {counts_text(counts)}")
    if statuses:
        rows = [("  DEVICE", "ID", "STATUS", "LAST REPORTED")]
        for row in statuses:
            rows.append(
                (
                    "  " + row["device"].device_name,
                    row["device"].id,
                    row["status"],
                    clock.iso(row["reported_at"]) or "-",
                )
            )
        table(rows)
        for row in statuses:
            failed = [s for s in row["setting_states"] if s.get("state") != "compliant"]
            for s in failed:
                reason = s.get("reason") or s.get("state")
                typer.echo(f"  {row['device'].device_name}: {s.get('setting')}: {reason}")


@app.command("assign")
def assign(
    policy: PolicyArg,
    group: Annotated[
        list[str] | None,
        typer.Option("--group", help="Assign to this group, by name or id (repeatable)."),
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option(
            "--exclude",
            help="Exclude this group's devices, by name or id (repeatable); exclusion wins.",
        ),
    ] = None,
    clear: Annotated[
        bool, typer.Option("--clear", help="Remove every assignment of the policy.")
    ] = False,
    data_dir: DataDir = None,
) -> None:
    """Replace the policy's assignments with these groups (as Graph's assign action does)."""
    include, excluded = group or [], exclude or []
    if clear and (include or excluded):
        fail("--clear cannot be combined with --group or --exclude.")
    if not (clear or include or excluded):
        fail(
            "give the groups with --group (and --exclude); the assignments are replaced. "
            "To remove every assignment, use --clear."
        )
    with operator_session(data_dir) as session:
        actor = access.cli_actor()
        p = find(session, policy)
        targets = [(find_group(session, g), False) for g in include]
        targets += [(find_group(session, g), True) for g in excluded]
        data = Assign.model_validate(
            {
                "assignments": [
                    {
                        "target": {
                            "@odata.type": "#microsoft.graph."
                            + ("exclusionGroupAssignmentTarget" if x else "groupAssignmentTarget"),
                            "groupId": g.id,
                        }
                    }
                    for g, x in targets
                ]
            }
        )
        kinds = (*CONFIGURATION_KINDS, COMPLIANCE)
        rows = service.assign(session, actor, p.id, kinds, data)
        names = {g.id: g.display_name for g, _ in targets}
        counts = service.policy_status_counts(session, actor, p)
        name = p.display_name
    typer.echo(f"assigned {name}:" if rows else f"{name} is not assigned to any group")
    for a in rows:
        mode = "exclude" if a.exclude else "include"
        typer.echo(f"  {mode}  {names.get(a.group_id, '?')} ({a.group_id})")
    typer.echo(f"device status: {counts_text(counts)}")
