"""Alembic migrations match the models, run both ways, and the app refuses a schema that is behind."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text, update
from sqlalchemy.engine import make_url
from sqlmodel import Session, select

import app.models  # noqa: F401  (registers every table on the metadata)
from app.db import make_engine, metadata
from app.migrations import (
    SchemaBehindError,
    alembic_config,
    current_revision,
    head_revision,
    schema_problem,
    upgrade_to_head,
)
from app.models import Connection, PortalSettings
from tests.fixtures.databases import Database
from tests.fixtures.service import ACCOUNT_ID, PORTAL_ID, make_settings, running_app

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A database with no tables at all (not even alembic_version), of each kind, private to one test."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'empty.db'}"
        engine = make_engine(url)
        yield Database(url, engine, "sqlite")
        engine.dispose()
        return
    server_url = request.getfixturevalue("pg_server_url")
    name = f"zh_mig_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url, pool_size=2)
    try:
        yield Database(url, engine, "postgresql")
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _describe(op: Any) -> str:
    """A short line per autogenerate difference (the raw tuples repr whole tables)."""
    if isinstance(op, list):  # column modifications come grouped
        return "; ".join(_describe(o) for o in op)
    kind, *rest = op
    names = []
    for item in rest:
        name = getattr(item, "name", None)
        table = getattr(getattr(item, "table", None), "name", None)
        if name is not None:
            names.append(f"{table}.{name}" if table and table != name else str(name))
        elif isinstance(item, str):
            names.append(item)
    return f"{kind}({', '.join(names)})"


def _schema_diff(db: Database) -> list[str]:
    with db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return [_describe(op) for op in compare_metadata(ctx, metadata)]


def _alembic(db: Database, name: str, revision: str) -> None:
    cfg = alembic_config(db.url)
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        getattr(command, name)(cfg, revision)


def _tables(db: Database) -> set[str]:
    return set(inspect(db.engine).get_table_names())


def _connections(db: Database) -> list[Connection]:
    with Session(db.engine) as session:
        return list(session.exec(select(Connection)).all())


class TestModelsMatchMigrations:
    def test_no_autogenerate_difference(self, database: Database) -> None:
        diff = _schema_diff(database)
        assert diff == [], (
            "models and migrations differ; run `alembic revision --autogenerate`:\n" + "\n".join(diff)
        )

    def test_every_model_table_is_created(self, empty_db: Database) -> None:
        upgrade_to_head(empty_db.engine, empty_db.url)
        assert {t.name for t in metadata.sorted_tables} <= _tables(empty_db)

    def test_single_head(self) -> None:
        from alembic.script import ScriptDirectory

        heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
        assert len(heads) == 1, heads


class TestUpgradeDowngrade:
    def test_upgrade_is_idempotent(self, empty_db: Database) -> None:
        upgrade_to_head(empty_db.engine, empty_db.url)
        upgrade_to_head(empty_db.engine, empty_db.url)
        assert current_revision(empty_db.engine) == head_revision()
        assert schema_problem(empty_db.engine) is None
        assert _schema_diff(empty_db) == []

    def test_downgrade_to_base_then_upgrade(self, empty_db: Database) -> None:
        upgrade_to_head(empty_db.engine, empty_db.url)
        _alembic(empty_db, "downgrade", "base")
        assert current_revision(empty_db.engine) is None
        # Only Alembic's own bookkeeping table may survive a full downgrade.
        assert _tables(empty_db) - {"alembic_version"} == set()
        assert schema_problem(empty_db.engine) is not None
        upgrade_to_head(empty_db.engine, empty_db.url)
        assert current_revision(empty_db.engine) == head_revision()
        assert _schema_diff(empty_db) == []

    def test_empty_database_is_behind(self, empty_db: Database) -> None:
        problem = schema_problem(empty_db.engine)
        assert problem is not None
        assert "alembic upgrade head" in problem


class TestReadyz:
    @pytest.mark.parametrize("how", ["downgrade", "stamp"])
    async def test_503_when_schema_falls_behind(self, empty_db: Database, how: str) -> None:
        async with running_app(make_settings(empty_db, auto_migrate=True)) as client:
            r = await client.get("/readyz")
            assert r.status_code == 200, r.text
            _alembic(empty_db, how, "base")
            r = await client.get("/readyz")
            assert r.status_code == 503, r.text
            body = r.json()
            assert body["status"] != "ready"
            assert "alembic upgrade head" in body["detail"]
            # Liveness is not readiness: the process itself is fine.
            assert (await client.get("/healthz")).status_code == 200

    async def test_503_when_revision_is_unknown(self, empty_db: Database) -> None:
        async with running_app(make_settings(empty_db, auto_migrate=True)) as client:
            with empty_db.engine.begin() as conn:
                conn.execute(text("UPDATE alembic_version SET version_num = '0000_older'"))
            r = await client.get("/readyz")
            assert r.status_code == 503, r.text
            assert "alembic upgrade head" in r.json()["detail"]

    async def test_ready_again_after_upgrade(self, empty_db: Database) -> None:
        async with running_app(make_settings(empty_db, auto_migrate=True)) as client:
            _alembic(empty_db, "stamp", "base")
            assert (await client.get("/readyz")).status_code == 503
            _alembic(empty_db, "stamp", "head")
            r = await client.get("/readyz")
            assert r.status_code == 200, r.text
            assert r.json()["status"] == "ready"


class TestStartup:
    async def test_refuses_schema_behind_without_auto_migrate(self, empty_db: Database) -> None:
        with pytest.raises(SchemaBehindError, match="alembic upgrade head"):
            async with running_app(make_settings(empty_db, auto_migrate=False)):
                pytest.fail("the app started on an empty database")
        # Refusing means touching nothing: no table was created.
        assert _tables(empty_db) - {"alembic_version"} == set()

    async def test_refuses_downgraded_schema(self, empty_db: Database) -> None:
        upgrade_to_head(empty_db.engine, empty_db.url)
        _alembic(empty_db, "stamp", "base")
        with pytest.raises(SchemaBehindError) as info:
            async with running_app(make_settings(empty_db, auto_migrate=False)):
                pytest.fail("the app started on a schema that is behind")
        assert "alembic upgrade head" in str(info.value)

    async def test_starts_with_auto_migrate(self, empty_db: Database) -> None:
        async with running_app(make_settings(empty_db, auto_migrate=True)) as client:
            r = await client.get("/readyz")
            assert r.status_code == 200, r.text
        assert current_revision(empty_db.engine) == head_revision()
        assert len(_connections(empty_db)) == 1

    async def test_default_migrates_sqlite_only(self, empty_db: Database) -> None:
        # AUTO_MIGRATE unset: the embedded SQLite default migrates itself, PostgreSQL waits for the operator.
        settings = make_settings(empty_db, auto_migrate=None)
        if empty_db.kind == "sqlite":
            async with running_app(settings) as client:
                assert (await client.get("/readyz")).status_code == 200
        else:
            with pytest.raises(SchemaBehindError, match="alembic upgrade head"):
                async with running_app(settings):
                    pytest.fail("PostgreSQL was migrated without AUTO_MIGRATE")


class TestEnvConnection:
    async def test_created_once(self, database: Database) -> None:
        for _ in range(2):
            async with running_app(make_settings(database)) as client:
                assert (await client.get("/readyz")).status_code == 200
        rows = _connections(database)
        assert len(rows) == 1
        conn = rows[0]
        assert (conn.portal_id, conn.zoom_account_id) == (PORTAL_ID, ACCOUNT_ID)
        assert conn.is_primary is True
        assert conn.business_unit_id == 0
        with Session(database.engine) as session:
            assert session.get(PortalSettings, PORTAL_ID) is not None

    async def test_restart_keeps_settings(self, database: Database) -> None:
        async with running_app(make_settings(database)):
            pass
        with database.engine.begin() as conn:
            conn.execute(
                # SQLModel's types declare no __table__ on table models (it exists at runtime).
                update(PortalSettings.__table__)  # type: ignore[attr-defined]
                .where(PortalSettings.__table__.c.portal_id == PORTAL_ID)  # type: ignore[attr-defined]
                .values(global_sync_enabled=False)
            )
        async with running_app(make_settings(database)):
            pass
        with Session(database.engine) as session:
            settings = session.get(PortalSettings, PORTAL_ID)
            assert settings is not None and settings.global_sync_enabled is False

    @pytest.mark.parametrize("missing", ["zoom_account_id", "hubspot_portal_id"])
    async def test_not_created_without_both_ids(self, database: Database, missing: str) -> None:
        async with running_app(make_settings(database, **{missing: None})) as client:
            assert (await client.get("/readyz")).status_code == 200
        assert _connections(database) == []

    async def test_second_account_for_the_same_portal(self, database: Database) -> None:
        async with running_app(make_settings(database)):
            pass
        async with running_app(make_settings(database, zoom_account_id="acct_test_02")):
            pass
        rows = sorted((c.portal_id, c.zoom_account_id) for c in _connections(database))
        assert rows == [(PORTAL_ID, ACCOUNT_ID), (PORTAL_ID, "acct_test_02")]

    def test_concurrent_start_ups_share_one_connection(self, database: Database) -> None:
        # Scale-out (CONTRACT §1): API replicas and workers start together against one database.
        # Every one of them must come up, and they must end with a single connection row.
        settings = make_settings(database)
        starters = 4
        barrier = threading.Barrier(starters)
        errors: list[BaseException] = []

        async def start_once() -> None:
            async with running_app(settings) as client:
                assert (await client.get("/readyz")).status_code == 200

        def run() -> None:
            barrier.wait()
            try:
                asyncio.run(start_once())
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=run) for _ in range(starters)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == [], f"{len(errors)} of {starters} start-ups failed: {errors[0]!r}"
        assert len(_connections(database)) == 1
