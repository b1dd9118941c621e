"""Engine and session factories, and the column types every table shares.

One place owns commit and rollback: the request dependency (`app.api.deps`) or the worker's
unit of work. Everything else only flushes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, MetaData, event
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect, Engine, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.pool import NullPool, QueuePool
from sqlalchemy.types import TypeDecorator
from sqlmodel import Session, SQLModel, create_engine

# Stable constraint names so Alembic migrations are identical on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
SQLModel.metadata.naming_convention = NAMING_CONVENTION
metadata: MetaData = SQLModel.metadata


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend.

    SQLite has no time zone type; storing naive UTC and re-attaching UTC on the way out keeps
    comparisons and arithmetic identical on both databases.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the API write the inbox while the worker reads; NORMAL is durable against a process
    # crash (the failure the contract cares about) without an fsync per commit.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
    # Take over transaction control from pysqlite (see the "begin" listener below).
    dbapi_connection.isolation_level = None


def _sqlite_query_only(dbapi_connection: Any, _record: Any) -> None:
    # A read-only engine's connections refuse writes ("attempt to write a readonly database"), so a
    # write slipped into a read path fails loudly instead of taking the write lock.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA query_only=ON")
    cursor.close()


def _begin_immediate_eagerly(conn: Any) -> None:
    """BEGIN IMMEDIATE, retried every 2 ms instead of in SQLite's busy handler.

    The busy handler sleeps in growing steps of up to 100 ms and serves waiters in no order, so
    under load one writer can lose for seconds. A writer whose latency matters (a workflow-action
    answer HubSpot waits for) retries in short steps and so takes the lock soon after it is free.
    """
    deadline = time.monotonic() + 30.0
    while True:
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            return
        except OperationalError as exc:
            if "locked" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            time.sleep(0.002)


def make_engine(
    database_url: str, *, pool_size: int = 10, read_only: bool = False, eager_writer: bool = False
) -> Engine:
    """`read_only`: only for code that never writes through this engine. Each transaction reads one
    snapshot and cannot write: on SQLite a deferred BEGIN (never waits for or holds the single
    write lock) on connections that refuse writes (`PRAGMA query_only`); on PostgreSQL a READ ONLY
    REPEATABLE READ transaction.
    `eager_writer` (SQLite): transactions retry BEGIN IMMEDIATE every 2 ms instead of waiting in
    SQLite's busy handler (for writes an answer waits on)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        memory = url.database in (None, "", ":memory:")
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            # Keep connections open: closing the last connection to a WAL database checkpoints and
            # fsyncs, which cost ~14 ms per inbox batch when every batch opened its own connection.
            poolclass=NullPool if memory else QueuePool,
            **({} if memory else {"pool_size": pool_size, "max_overflow": pool_size}),
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        if read_only:
            event.listen(engine, "connect", _sqlite_query_only)
        # BEGIN IMMEDIATE takes the write lock up front. With deferred transactions a reader that
        # later writes can fail with "database is locked" without waiting (busy_timeout does not
        # apply to lock upgrades), which would turn ingest/worker contention into errors.
        if eager_writer:
            event.listen(engine, "connect", lambda dbapi, _record: dbapi.execute("PRAGMA busy_timeout=0"))
            event.listen(engine, "begin", _begin_immediate_eagerly)
        elif read_only:
            # A deferred BEGIN takes no lock; in WAL mode its first read fixes one snapshot for the
            # whole transaction, so counts read by several statements agree with each other.
            event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN"))
        else:
            event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        return engine
    if read_only:
        # BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY: one snapshot for all of a transaction's
        # statements (never a serialization failure: nothing is written), and a write fails.
        return create_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
            isolation_level="REPEATABLE READ",
            execution_options={"postgresql_readonly": True},
        )
    return create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def dialect_insert(session: OrmSession, table: Any) -> Any:
    """INSERT with the dialect's ON CONFLICT support (only SQLite and PostgreSQL are supported)."""
    name = session.get_bind().dialect.name
    return pg_insert(table) if name == "postgresql" else sqlite_insert(table)


@contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    """A session for reads only (an engine made with `read_only=True`): it never commits, and
    whatever it did is rolled back when it closes."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
        finally:
            session.rollback()


@contextmanager
def unit_of_work(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on error: the one commit point."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
