"""What every command shares: --data-dir, opening the database, reporting domain errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError, IntegrityError
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


def fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def settings_for(data_dir: Path | None) -> Settings:
    try:
        settings = Settings() if data_dir is None else Settings(data_dir=data_dir)
    except ValidationError as exc:
        first = exc.errors()[0]
        fail(f"setting AOSPMDM_{str(first['loc'][0]).upper()}: {first['msg']}")
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fail(f"the data directory {settings.data_dir} cannot be used: {exc.strerror}")
    return settings


def migrate_or_fail(settings: Settings) -> None:
    try:
        migrate(settings.resolved_database_url)
    except DBAPIError as exc:
        fail(f"cannot open the database {settings.resolved_database_url}: {exc.orig}")


@contextmanager
def operator_session(data_dir: Path | None) -> Iterator[Session]:
    """One audited unit of work on an up-to-date database; domain errors exit with code 2."""
    settings = settings_for(data_dir)
    migrate_or_fail(settings)
    engine = make_engine(settings.resolved_database_url)
    factory = make_sessionmaker(engine)
    try:
        service.ensure_bootstrapped(factory)
        with transaction(factory) as session:
            yield session
    except DomainError as exc:
        fail(exc.message)
    except ValidationError as exc:
        first = exc.errors()[0]
        fail(f"{'.'.join(str(p) for p in first['loc']) or 'input'}: {first['msg']}")
    except IntegrityError:
        fail("the change conflicts with one made at the same moment; run the command again")
    finally:
        engine.dispose()
