"""Shared fixtures: every database test runs on SQLite and, when reachable, on PostgreSQL.

Set REQUIRE_POSTGRES=1 (CI does) to turn an unreachable PostgreSQL into a failure instead of
running the SQLite half only. TEST_POSTGRES_URL points at a server where this user may create
databases; each test session creates its own database and drops it at the end.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

from app.config import Settings
from app.db import make_engine, metadata
from app.main import create_app
from app.migrations import upgrade_to_head

PG_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REQUIRE_PG = os.environ.get("REQUIRE_POSTGRES", "") not in ("", "0", "false")

logging.getLogger("httpx").setLevel(logging.WARNING)

ADMIN_TOKEN = "test-admin-token"
ZOOM_SECRET = "test-zoom-secret"
ACCOUNT_ID = "acct_test_01"
PORTAL_ID = 4242


def _pg_reachable() -> str | None:
    try:
        engine = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session (dropped afterwards)."""
    problem = _pg_reachable()
    if problem is not None:
        if REQUIRE_PG:
            pytest.fail(
                f"PostgreSQL is required (REQUIRE_POSTGRES=1) but not reachable at {PG_URL}: {problem}"
            )
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}; set REQUIRE_POSTGRES=1 to make this a failure")
    name = f"zh_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@dataclass
class Database:
    url: str
    engine: Engine
    kind: str


def _truncate_all(engine: Engine) -> None:
    tables = [t.name for t in metadata.sorted_tables]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(
                text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE")
            )
        else:
            for t in reversed(tables):
                conn.execute(text(f'DELETE FROM "{t}"'))


_pg_migrated: set[str] = set()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once per test process: each test copies it (a copy takes
    milliseconds, running the migrations about 0.7 s)."""
    path = tmp_path_factory.mktemp("sqlite_template") / "template.db"
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    upgrade_to_head(engine, url)
    engine.dispose()
    return path


def _copy_sqlite(source: Path, target: Path) -> None:
    """SQLite's online backup: a consistent copy whatever is still in the source's WAL file."""
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated, empty database of each kind."""
    if request.param == "sqlite":
        path = tmp_path / "test.db"
        _copy_sqlite(request.getfixturevalue("sqlite_template"), path)
        url = f"sqlite:///{path}"
        engine = make_engine(url)
        yield Database(url, engine, "sqlite")
        engine.dispose()
        return
    url = request.getfixturevalue("pg_server_url")
    engine = make_engine(url, pool_size=5)
    if url not in _pg_migrated:
        upgrade_to_head(engine, url)
        _pg_migrated.add(url)
    _truncate_all(engine)
    yield Database(url, engine, "postgresql")
    engine.dispose()


def make_settings(db: Database, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": db.url,
        "admin_api_token": ADMIN_TOKEN,
        "zoom_webhook_secret_token": ZOOM_SECRET,
        "zoom_account_id": ACCOUNT_ID,
        "hubspot_portal_id": PORTAL_ID,
        "run_worker": False,
        "auto_migrate": False,
        "log_format": "json",
        # Attendance counts as final a short quiet period after the end (production: 600 s); tests
        # deliver a webinar in one go.
        "attendance_settle_s": 0.3,
        # The workflow action's answer must not turn into BLOCK because a loaded test machine is slower
        # than production's 0.6 s budget; the tests of BLOCK set the production budget themselves.
        "action_sync_budget_s": 10.0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@asynccontextmanager
async def running_app(settings: Settings, **create_kwargs: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The real app with its lifespan, reached through an in-process ASGI client."""
    app = create_app(settings, **create_kwargs)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def settings(database: Database) -> Settings:
    return make_settings(database)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(settings) as c:
        yield c


ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
