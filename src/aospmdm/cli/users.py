"""aospmdm user import / list: the worker directory (the people who sign in on shared
devices)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aospmdm.cli.common import DataDir, fail, operator_session
from aospmdm.core import clock
from aospmdm.tenant import access
from aospmdm.users import service

app = typer.Typer(
    no_args_is_help=True, help="The worker directory: who signs in on shared devices."
)


@app.command("import")
def import_users(
    file: Annotated[
        Path,
        typer.Argument(
            help="A CSV file with the header userPrincipalName,displayName,password.",
            show_default=False,
        ),
    ],
    update: Annotated[
        bool,
        typer.Option(
            "--update", help="Update users that exist (display name, password) instead of refusing."
        ),
    ] = False,
    data_dir: DataDir = None,
) -> None:
    """Import users from a CSV file: all of them, or none when any line is refused."""
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {file}: {exc}")
    with operator_session(data_dir) as session:
        rows = service.parse_csv(text)
        counts = service.import_users(session, access.cli_actor(), rows, update_existing=update)
    typer.echo(f"imported {len(rows)} users: {counts.created} created, {counts.updated} updated")


@app.command("list")
def list_users(data_dir: DataDir = None) -> None:
    """The directory: user principal name, display name, enabled, created, id."""
    with operator_session(data_dir) as session:
        users = list(session.scalars(service.user_statement(access.cli_actor())))
        rows = [
            [
                u.user_principal_name,
                u.display_name,
                "enabled" if u.account_enabled else "disabled",
                (clock.iso(u.created_at) or "")[:10],
                u.id,
            ]
            for u in users
        ]
    if not rows:
        typer.echo("no users (add some with aospmdm user import FILE.csv)")
        return
    header = ["USER PRINCIPAL NAME", "DISPLAY NAME", "STATE", "CREATED", "ID"]
    table = [header, *rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(header) - 1)]
    for row in table:
        cells = [c.ljust(w) for c, w in zip(row, widths, strict=False)]
        typer.echo("  ".join([*cells, row[-1]]).rstrip())
