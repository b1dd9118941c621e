"""The workflow action's engines and threads, built by the entry points (app/actions/resources.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import QueuePool

from app.actions.resources import build_action_resources
from tests.fixtures.databases import Database


def test_action_resources_follow_the_database(database: Database) -> None:
    resources = build_action_resources(database.engine)
    with database.engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    pool = database.engine.pool
    assert isinstance(pool, QueuePool)
    pooled = pool.checkedin()
    try:
        if database.kind == "sqlite":
            # SQLite's single write lock: the action writes through an engine of its own and
            # reads through one that never takes the lock.
            assert resources.engine is not database.engine
            assert resources.read_engine is not resources.engine
            assert str(resources.engine.url) == str(database.engine.url)
            with resources.engine.connect() as conn:
                # eager_writer: retries BEGIN IMMEDIATE itself instead of waiting in the busy handler
                assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 0
            with resources.read_engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA query_only").scalar() == 1
                with pytest.raises(OperationalError):
                    conn.execute(text("DELETE FROM action_executions"))
        else:
            assert resources.engine is database.engine
            assert resources.read_engine is database.engine
    finally:
        resources.close()
    # The app's engine is the lifespan's to dispose: its pooled connections survive the close.
    assert pooled >= 1
    assert pool.checkedin() == pooled
    with pytest.raises(RuntimeError):
        resources.executor.submit(lambda: None)
