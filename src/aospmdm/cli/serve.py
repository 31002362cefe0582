"""aospmdm serve / migrate."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from aospmdm.cli.common import DataDir, fail, migrate_or_fail, settings_for
from aospmdm.core.db import transaction
from aospmdm.tenant import service


def migrate(data_dir: DataDir = None) -> None:
    """Bring the database schema up to date."""
    migrate_or_fail(settings_for(data_dir))
    typer.echo("database is up to date")


def serve(
    data_dir: DataDir = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[
        int,
        typer.Option(min=1, help="Worker processes (PostgreSQL only: SQLite has one writer)."),
    ] = 1,
) -> None:
    """Migrate, create the first admin on first start, and serve the API and console."""
    settings = settings_for(data_dir)
    if workers > 1 and settings.resolved_database_url.startswith("sqlite"):
        fail(
            f"--workers {workers} needs PostgreSQL (set AOSPMDM_DATABASE_URL): SQLite has a "
            "single writer, so one worker process serves it best."
        )
    if "AOSPMDM_PUBLIC_URL" not in os.environ:
        settings = settings.model_copy(update={"public_url": f"http://{host}:{port}"})
    # Imported here: the other commands need neither the web server nor the app.
    import uvicorn

    from aospmdm.server import create_app

    migrate_or_fail(settings)
    app = create_app(settings)  # one engine, bootstrapped once
    with transaction(app.state.sessions) as session:
        first = service.ensure_first_admin(session)
    if first is not None:
        email, password = first
        typer.echo(
            "\nFirst admin created (an Intune Administrator). This password is shown once:\n"
            f"  sign in at {settings.public_url}/console\n"
            f"  email:     {email}\n"
            f"  password:  {password}\n"
            f"  API token: aospmdm admin token {email}\n"
        )
    if workers == 1:
        # Devices wait in long polls: shutting down does not wait for them to end.
        uvicorn.run(app, host=host, port=port, log_level="info", timeout_graceful_shutdown=3)
        return
    # Each worker builds its own app from the environment; wake-ups cross workers through
    # PostgreSQL LISTEN/NOTIFY.
    app.state.engine.dispose()
    os.environ["AOSPMDM_PUBLIC_URL"] = settings.public_url
    os.environ["AOSPMDM_DATA_DIR"] = str(settings.data_dir)
    uvicorn.run(
        "aospmdm.server:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        timeout_graceful_shutdown=3,
    )
