"""aospmdm admin create / token."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from aospmdm.cli.common import DataDir, operator_session
from aospmdm.tenant import access, service

app = typer.Typer(no_args_is_help=True, help="Console administrators and their API tokens.")


@app.command("create")
def create(
    email: Annotated[str, typer.Argument(help="The admin's sign-in email.")],
    role: Annotated[str, typer.Option("--role", help='Role name, e.g. "Help Desk Operator".')],
    scope_tag: Annotated[
        list[str] | None,
        typer.Option("--scope-tag", help="Scope the admin to this tag (repeatable)."),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Create an admin. The password comes from AOSPMDM_ADMIN_PASSWORD, else a prompt."""
    password = os.environ.get("AOSPMDM_ADMIN_PASSWORD") or typer.prompt(
        "Password", hide_input=True, confirmation_prompt=True
    )
    with operator_session(data_dir) as session:
        admin = service.create_admin(
            session,
            access.cli_actor(),
            email,
            password,
            role_name=role,
            scope_tag_names=scope_tag or [],
        )
        scope = ", ".join(scope_tag) if scope_tag else "all scope tags"
        typer.echo(f"created admin {admin.email} with role {role} ({scope})")


@app.command("token")
def token(
    email: Annotated[str, typer.Argument(help="The admin the token acts as.")],
    name: Annotated[str, typer.Option(help="A label for the token.")] = "cli",
    data_dir: DataDir = None,
) -> None:
    """Print a new API token for an admin, alone on the last line. It is shown only once."""
    with operator_session(data_dir) as session:
        secret = service.create_api_token(session, access.cli_actor(), email, name)
    typer.echo(secret)
