"""Alembic environment: runs on the connection aospmdm.core.db.migrate hands it."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

# Importing the models registers their tables on Base.metadata.
import aospmdm.actions.models
import aospmdm.apps.models
import aospmdm.devices.models
import aospmdm.enrollment.models
import aospmdm.groups.models
import aospmdm.policies.models
import aospmdm.support.models
import aospmdm.sync.models
import aospmdm.tenant.models
import aospmdm.users.models  # noqa: F401
from aospmdm.core.db import Base

config = context.config
target_metadata = Base.metadata


def run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is None:
    from aospmdm.core.db import make_engine

    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as conn:
        run(conn)
else:
    run(connection)
