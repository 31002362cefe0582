"""What every command shares: --data-dir, opening the database, reporting domain errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from sqlalchemy.orm import Session

from aospmdm.core.config import Settings
from aospmdm.core.db import make_engine, make_sessionmaker, migrate, transaction
from aospmdm.core.errors import DomainError
from aospmdm.tenant import service

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        envvar="AOSPMDM_DATA_DIR",
        help="Where the SQLite file and instance key live (default ./data).",
        show_default=False,
    ),
]


def settings_for(data_dir: Path | None) -> Settings:
    settings = Settings() if data_dir is None else Settings(data_dir=data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return settings


@contextmanager
def operator_session(data_dir: Path | None) -> Iterator[Session]:
    """One audited unit of work on an up-to-date database; domain errors exit with code 2."""
    settings = settings_for(data_dir)
    migrate(settings.resolved_database_url)
    engine = make_engine(settings.resolved_database_url)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            service.bootstrap(session)
            yield session
    except DomainError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from None
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "input"
        typer.echo(f"error: {field}: {first['msg']}", err=True)
        raise typer.Exit(2) from None
    finally:
        engine.dispose()
