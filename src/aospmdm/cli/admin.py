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


@app.command("disable")
def disable(
    email: Annotated[str, typer.Argument(help="The admin to disable.")],
    data_dir: DataDir = None,
) -> None:
    """Disable an admin: their API tokens and console sessions stop working at once."""
    with operator_session(data_dir) as session:
        service.set_admin_enabled(session, access.cli_actor(), email, enabled=False)
    typer.echo(f"disabled admin {email}")


@app.command("enable")
def enable(
    email: Annotated[str, typer.Argument(help="The admin to enable again.")],
    data_dir: DataDir = None,
) -> None:
    """Enable a disabled admin."""
    with operator_session(data_dir) as session:
        service.set_admin_enabled(session, access.cli_actor(), email, enabled=True)
    typer.echo(f"enabled admin {email}")


@app.command("revoke-tokens")
def revoke_tokens(
    email: Annotated[str, typer.Argument(help="The admin whose API tokens to revoke.")],
    data_dir: DataDir = None,
) -> None:
    """Revoke every API token of an admin."""
    with operator_session(data_dir) as session:
        count = service.revoke_api_tokens(session, access.cli_actor(), email)
    typer.echo(f"revoked {count} API token(s) of {email}")
