"""aospmdm license set."""

from __future__ import annotations

from typing import Annotated

import typer

from aospmdm.cli.common import DataDir, operator_session
from aospmdm.tenant import access, service

app = typer.Typer(no_args_is_help=True, help="Device licenses.")


@app.command("set")
def set_count(
    count: Annotated[int, typer.Argument(help="How many devices may be enrolled.")],
    data_dir: DataDir = None,
) -> None:
    """Set the number of device licenses."""
    with operator_session(data_dir) as session:
        service.set_license_count(session, access.cli_actor(), count)
    typer.echo(f"device licenses: {count}")
