"""aospmdm app upload / list / assign / status: the app catalog (the required apps and
uploaded APKs), its assignments to groups and each app's install status on the devices.
APP is an app's id, package name or name; GROUP a group's name or id."""

from __future__ import annotations

import json
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy.orm import Session

from aospmdm.apps import api, service
from aospmdm.apps.models import MobileApp, MobileAppVersion
from aospmdm.cli.common import DataDir, fail, operator_session, settings_for
from aospmdm.cli.policy import find_group, group_names, table
from aospmdm.core.config import Settings
from aospmdm.core.errors import NotFound
from aospmdm.tenant import access

app = typer.Typer(
    no_args_is_help=True,
    help="The app catalog: upload APKs, assign them to groups, see their install status.",
)

AppArg = Annotated[
    str, typer.Argument(help="The app's id, package name or name.", show_default=False)
]
# Install states in the order the counts are printed.
STATES = ("installed", "failed", "pending", "notInstalled", "uninstallFailed")
CHUNK = 1 << 20


class Intent(StrEnum):
    required = "required"
    uninstall = "uninstall"


def _prepared(session: Session, settings: Settings) -> None:
    """The required apps in the catalog, as the server puts them there at start-up."""
    service.ensure_required_apps(session, settings)


def find(session: Session, name: str) -> MobileApp:
    """The app with this id or package name, or the one app with this name."""
    try:
        return service.find_app(session, access.cli_actor(), name)
    except NotFound:
        fail(f"no app has the id, package name or name '{name}' (see aospmdm app list).")


def counts_text(counts: dict[str, int]) -> str:
    """'2 installed, 1 failed'; '-' when the app applies to no device."""
    return ", ".join(f"{counts[s]} {s}" for s in STATES if counts.get(s)) or "-"


def version_text(version: MobileAppVersion | None) -> str:
    if version is None:
        return "-"
    return f"{version.version_name or '-'} ({version.version_code})"


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        yield from iter(lambda: f.read(CHUNK), b"")


@app.command("upload")
def upload(
    file: Annotated[Path, typer.Argument(help="The APK file.", show_default=False, dir_okay=False)],
    name: Annotated[
        str | None, typer.Option("--name", help="A new app's name (default: the APK's label).")
    ] = None,
    description: Annotated[str | None, typer.Option("--description")] = None,
    publisher: Annotated[str | None, typer.Option("--publisher")] = None,
    data_dir: DataDir = None,
) -> None:
    """Add an APK to the catalog: a new app, or a new version of the app with its package
    (whose versionCode must be higher than every version it has)."""
    if not file.is_file():
        fail(f"{file} is not a file.")
    settings = settings_for(data_dir)
    with operator_session(data_dir) as session:
        _prepared(session, settings)
        try:
            source = service.spool(settings, _chunks(file))
        except OSError as exc:
            fail(f"{file} cannot be read: {exc.strerror}")
        result = service.upload(
            session,
            settings,
            access.cli_actor(),
            source,
            file.name,
            display_name=name,
            description=description,
            publisher=publisher,
        )
        a, v = result.app, result.version
        lines = [
            f"{'uploaded' if result.created else 'added a version to'} {a.display_name}: {a.id}",
            f"package:     {a.package_name}",
            f"version:     {version_text(v)}",
            f"sha256:      {v.sha256}",
            f"signed by:   {v.signing_cert_sha256 or '(not signed)'}",
        ]
        warnings = list(v.warnings)
    for line in lines:
        typer.echo(line)
    for warning in warnings:
        typer.echo(f"warning: {warning}")


@app.command("list")
def list_apps(data_dir: DataDir = None) -> None:
    """The catalog: name, type, package, current version, id, assignments and install
    counts."""
    settings = settings_for(data_dir)
    with operator_session(data_dir) as session:
        _prepared(session, settings)
        actor = access.cli_actor()
        found = list(session.scalars(service.app_statement(actor)))
        ids = [a.id for a in found]
        versions = service.versions_of(session, ids)
        assignments = service.assignments_of(session, ids)
        rows = [("NAME", "TYPE", "PACKAGE", "VERSION", "ID", "ASSIGNED", "INSTALL STATUS")]
        for a in found:
            mine = assignments[a.id]
            included = sum(1 for x in mine if not x.exclude)
            excluded = len(mine) - included
            if a.role is not None:
                assigned = "all devices"
            else:
                assigned = str(included) + (f" (+{excluded} excluded)" if excluded else "")
            counts = service.status_counts(service.device_statuses(session, actor, a))
            rows.append(
                (
                    a.display_name,
                    f"required ({a.role})" if a.role else "uploaded",
                    a.package_name,
                    version_text(versions[a.id][0] if versions[a.id] else None),
                    a.id,
                    assigned,
                    counts_text(counts),
                )
            )
    table(rows)


@app.command("assign")
def assign(
    app_ref: AppArg,
    groups: Annotated[
        list[str] | None,
        typer.Argument(help="Groups to assign with --intent, by name or id.", show_default=False),
    ] = None,
    intent: Annotated[
        Intent, typer.Option("--intent", help="required: install and keep updated; uninstall.")
    ] = Intent.required,
    exclude: Annotated[
        list[str] | None,
        typer.Option(
            "--exclude", help="Leave this group's devices out, by name or id (repeatable)."
        ),
    ] = None,
    clear: Annotated[
        bool,
        typer.Option(
            "--clear",
            help="Remove the app's other assignments first (alone: remove every assignment).",
        ),
    ] = False,
    data_dir: DataDir = None,
) -> None:
    """Assign the app to groups (required or uninstall) or exclude groups. The app's other
    assignments stay unless --clear is given."""
    included, excluded = groups or [], exclude or []
    if not (clear or included or excluded):
        fail(
            "give the groups to assign (and --exclude groups). To remove every assignment, "
            "use --clear."
        )
    settings = settings_for(data_dir)
    with operator_session(data_dir) as session:
        _prepared(session, settings)
        actor = access.cli_actor()
        a = find(session, app_ref)
        chosen: dict[str, service.AssignmentInput] = {}
        if not clear:
            for x in service.assignments_of(session, [a.id])[a.id]:
                chosen[x.group_id] = service.AssignmentInput(x.group_id, x.intent, x.exclude)
        for g in included:
            gid = find_group(session, g).id
            chosen[gid] = service.AssignmentInput(gid, intent.value, False)
        for g in excluded:
            gid = find_group(session, g).id
            chosen[gid] = service.AssignmentInput(gid, intent.value, True)
        rows = service.assign(session, actor, a.id, list(chosen.values()))
        names = group_names(session, [r.group_id for r in rows])
        counts = service.status_counts(service.device_statuses(session, actor, a))
        name = a.display_name
        lines = [
            f"  {'exclude' if r.exclude else r.intent:<9}  {names.get(r.group_id, '?')} "
            f"({r.group_id})"
            for r in rows
        ]
    typer.echo(f"assigned {name}:" if lines else f"{name} is not assigned to any group")
    for line in lines:
        typer.echo(line)
    typer.echo(f"install status: {counts_text(counts)}")


@app.command("status")
def status(
    app_ref: AppArg,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the statuses as the admin API returns them.")
    ] = False,
    data_dir: DataDir = None,
) -> None:
    """The app's install state on each device it applies to, with the counts."""
    settings = settings_for(data_dir)
    with operator_session(data_dir) as session:
        _prepared(session, settings)
        a = find(session, app_ref)
        statuses = service.device_statuses(session, access.cli_actor(), a)
        counts = service.status_counts(statuses)
        versions = service.versions_of(session, [a.id])[a.id]
        body: dict[str, Any] = api.apps_json(session, [a])[0] if as_json else {}
        name, package = a.display_name, a.package_name
    if as_json:
        body = {"app": body, "counts": counts, "value": statuses}
        typer.echo(json.dumps(body, indent=2))
        return
    typer.echo(f"{name} ({package}), version {version_text(versions[0] if versions else None)}")
    typer.echo(f"install status: {counts_text(counts)}")
    if not statuses:
        typer.echo("no device is targeted")
        return
    rows = [("DEVICE", "ID", "STATE", "ERROR", "INSTALLED", "CONFLICT", "DETAILS")]
    for s in statuses:
        rows.append(
            (
                s["deviceName"],
                s["deviceId"],
                s["installState"],
                s["errorCodeHex"] or "-",
                s["installedVersion"] or "-",
                "yes" if s["conflict"] else "no",
                s["installStateDetail"] or "-",
            )
        )
    table(rows)
