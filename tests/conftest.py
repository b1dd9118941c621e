"""Shared fixtures: every database test runs on SQLite and, when reachable, on PostgreSQL.

Set REQUIRE_POSTGRES=1 (CI does) to turn an unreachable PostgreSQL into a failure instead of
running the SQLite half only. TEST_POSTGRES_URL points at a server where this user may create
databases; each test process creates its own database and drops it at the end. The helpers these
fixtures use live in `tests/fixtures/` (databases, the service's settings, harnesses).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.config import Settings
from app.db import make_engine
from app.migrations import upgrade_to_head
from tests.fixtures.databases import (
    PG_URL,
    REQUIRE_PG,
    Database,
    copy_sqlite,
    pg_reachable,
    truncate_all,
)
from tests.fixtures.service import make_settings, running_app

logging.getLogger("httpx").setLevel(logging.WARNING)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest tests start first: pytest-xdist hands tests out in collection order, so a
    minute-long test collected last would run alone at the end while the other processes sit idle
    (chaos first, then the rest marked `slow`; the order is otherwise unchanged)."""
    items.sort(
        key=lambda item: (item.get_closest_marker("chaos") is None, item.get_closest_marker("slow") is None)
    )


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test process (dropped afterwards)."""
    problem = pg_reachable()
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


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated, empty database of each kind."""
    if request.param == "sqlite":
        path = tmp_path / "test.db"
        copy_sqlite(request.getfixturevalue("sqlite_template"), path)
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
    truncate_all(engine)
    yield Database(url, engine, "postgresql")
    engine.dispose()


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
