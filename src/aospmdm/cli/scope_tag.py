"""aospmdm scope-tag create."""

from __future__ import annotations

from typing import Annotated

import typer

from aospmdm.cli.common import DataDir, operator_session
from aospmdm.tenant import access, service
from aospmdm.tenant.schemas import ScopeTagCreate

app = typer.Typer(no_args_is_help=True, help="Scope tags.")


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="The tag's display name.")],
    description: Annotated[str, typer.Option(help="What the tag is for.")] = "",
    data_dir: DataDir = None,
) -> None:
    """Create a scope tag and print its id."""
    with operator_session(data_dir) as session:
        data = ScopeTagCreate.model_validate({"displayName": name, "description": description})
        tag = service.create_scope_tag(session, access.cli_actor(), data)
        typer.echo(f"created scope tag {tag.display_name}: {tag.id}")
