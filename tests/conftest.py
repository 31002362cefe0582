"""Fixtures: every storage test runs on SQLite and, when AOSPMDM_TEST_DATABASE_URL is set
(CI sets it), on PostgreSQL too; each test starts from a freshly migrated, bootstrapped
database."""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from aospmdm.core import clock
from aospmdm.core.config import Settings
from aospmdm.core.db import Base, make_engine, make_sessionmaker, migrate, transaction
from aospmdm.server import create_app
from aospmdm.tenant import access, service
from aospmdm.tenant.schemas import RoleDefinitionCreate

PG_URL = os.environ.get("AOSPMDM_TEST_DATABASE_URL")
BACKENDS = ["sqlite", "postgresql"]
PASSWORD = "correct horse battery staple"


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "aospmdm.db"
    url = f"sqlite:///{path}"
    migrate(url)
    engine = make_engine(url)
    with transaction(make_sessionmaker(engine)) as session:
        service.bootstrap(session)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    if not PG_URL:
        pytest.skip("PostgreSQL half: set AOSPMDM_TEST_DATABASE_URL (CI does)")
    # The pid keeps two test runs on one PostgreSQL server (a developer and CI) apart.
    name = f"aospmdm_test_{_worker()}_{os.getpid()}"
    admin_engine = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin_engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    migrate(url)
    yield url
    with admin_engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin_engine.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "aospmdm.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("pg_database")
    engine = create_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return url


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        secret_key="test-instance-key-" + "x" * 32,
        public_url="http://testserver",
    )


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings.resolved_database_url)
    yield engine
    engine.dispose()


@pytest.fixture(autouse=True)
def _clock() -> Iterator[None]:
    clock.reset()
    yield
    clock.reset()


class Env:
    """A running app on a fresh database, and helpers to make admins and call the API."""

    _ids = itertools.count()

    def __init__(self, settings: Settings, engine: Engine):
        self.settings = settings
        self.app = create_app(settings, engine)
        self.sessions: sessionmaker[Session] = make_sessionmaker(engine)
        self.client = TestClient(self.app)
        self.full_token = self.admin("Intune Administrator", email="root@example.com")

    def db(self) -> Any:
        return transaction(self.sessions)

    def admin(
        self,
        role: str = "Intune Administrator",
        tags: list[str] | None = None,
        email: str | None = None,
    ) -> str:
        """Create an admin with a role (scoped to tag names) and return an API token."""
        email = email or f"admin{next(self._ids)}@example.com"
        with self.db() as s:
            service.create_admin(
                s, access.cli_actor(), email, PASSWORD, role_name=role, scope_tag_names=tags
            )
            return service.create_api_token(s, access.cli_actor(), email, "test")

    def custom_admin(self, perms: list[str], tags: list[str] | None = None) -> str:
        """An admin holding exactly these permissions, through a custom role."""
        name = f"custom role {next(self._ids)}"
        with self.db() as s:
            data = RoleDefinitionCreate.model_validate(
                {
                    "displayName": name,
                    "rolePermissions": [{"resourceActions": [{"allowedResourceActions": perms}]}],
                }
            )
            service.create_role(s, access.cli_actor(), data)
        return self.admin(name, tags)

    def tag(self, name: str) -> str:
        r = self.call("POST", "/beta/deviceManagement/roleScopeTags", json={"displayName": name})
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    def call(self, method: str, path: str, token: str | None = "full", **kw: Any) -> httpx.Response:
        headers = dict(kw.pop("headers", {}) or {})
        if token == "full":
            token = self.full_token
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return self.client.request(method, path, headers=headers, **kw)

    def org_id(self) -> str:
        return str(self.call("GET", "/beta/organization").json()["value"][0]["id"])

    def audit(self, **filters: str) -> list[dict[str, Any]]:
        params = {"$top": "999", **filters}
        r = self.call("GET", "/beta/deviceManagement/auditEvents", params=params)
        assert r.status_code == 200, r.text
        return list(r.json()["value"])


@pytest.fixture
def env(settings: Settings, engine: Engine) -> Iterator[Env]:
    e = Env(settings, engine)
    with e.client:
        yield e
