"""Engine and session factories, and the column types every table shares.

One place owns commit and rollback: the request dependency (`app.api.deps`) or the worker's
unit of work. Everything else only flushes.
"""

from __future__ import annotations

import selectors
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, MetaData, String, event
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect, Engine, make_url
from sqlalchemy.exc import DBAPIError, InvalidatePoolError, OperationalError
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


class UnknownEnumValue(str):
    """A value read from a `StrEnumString` column that the running version's enum does not name
    (written by a newer version during a rolling deploy, or by hand). It is the stored text as it
    was: it equals that text and no member, and it may be written back unchanged."""

    __slots__ = ()


class StrEnumString(TypeDecorator[str]):
    """A `StrEnum` stored as its value in a plain VARCHAR column (the same column a `str` field
    with `max_length` makes: no database enum type, so adding a member needs no migration).

    Binding takes a member or its exact value (a member of another StrEnum with the same value
    is its value too); anything else raises `ValueError` naming the enum, so a typo in a writer
    or a query fails at the statement instead of storing a state nobody will ever read.

    Reading gives the member. A stored value this version does not know comes back as an
    `UnknownEnumValue` (the text, unchanged) instead of raising: during a rolling deploy a newer
    version may already write a state an older worker does not know, and before this type
    those rows read as a string that matched no known state (an operation of an unknown kind
    waits; counts by state leave it out). Raising would crash a loop or a status page on such a
    row; the unknown value keeps today's behaviour, and it binds back unchanged so a row read
    this way can be saved.
    """

    impl = String
    cache_ok = True

    def __init__(self, enum_class: type[StrEnum], length: int) -> None:
        super().__init__(length=length)
        self.enum_class = enum_class
        self.length = length
        self._by_value: dict[str, StrEnum] = {member.value: member for member in enum_class}

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if isinstance(value, UnknownEnumValue):
            return str(value)
        if isinstance(value, str) and value in self._by_value:
            return self._by_value[value].value
        known = ", ".join(self._by_value)
        raise ValueError(f"{value!r} is not a {self.enum_class.__name__} value (one of: {known})")

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        member = self._by_value.get(value)
        return member if member is not None else UnknownEnumValue(value)


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


# ---- PostgreSQL unreachable: bounded waits -----------------------------------------------------------
#
# Without these, a database that stops answering (host gone, network partition, server stalled)
# makes every call wait forever: a webhook would hang instead of answering 503, /readyz would hang
# instead of saying "not ready", and workers would sit in a call that never returns. Server-side
# timeouts (`statement_timeout`) cannot help when the server is not reached at all, so the bounds
# are on the client side:
#
# * `connect_timeout`: a new connection that gets no answer fails after this (libpq's minimum is 2).
# * A ping with a deadline on every checkout from the pool (instead of SQLAlchemy's pool_pre_ping,
#   whose `SELECT 1` has no timeout and hangs on a stalled server). A connection that does not
#   answer in time is dropped with the rest of the pool and a new one is tried, which
#   `connect_timeout` bounds. So each attempt to use the database fails within about 5 s.
# * TCP keepalives and `tcp_user_timeout`: a statement already sent when the peer vanishes (no RST,
#   packets dropped) fails once the kernel gives up on the peer (about 15-20 s) instead of after
#   the kernel's default of about two hours. A long-running query is not affected: its bytes are
#   acknowledged and keepalive probes answered while the server works on it.
#
# A statement already sent to a server that is alive at the TCP level but stalled still waits for
# it; callers that must answer quickly (the webhook) put their own deadline around the call.
PG_CONNECT_TIMEOUT_S = 3
PG_PING_TIMEOUT_S = 2.0
PG_CONNECT_ARGS: dict[str, Any] = {
    "connect_timeout": PG_CONNECT_TIMEOUT_S,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 3,
    "keepalives_count": 3,
    "tcp_user_timeout": 15_000,  # ms
}
# SQLSTATE classes and codes that mean "the server is not there (any more)".
_UNREACHABLE_SQLSTATES = ("08", "57P01", "57P02", "57P03")


def _mark_fresh(_dbapi_connection: Any, record: Any) -> None:
    record.info["zh_fresh"] = True


def _ping_on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    if record.info.pop("zh_fresh", False):
        return  # just connected: it answered a moment ago
    try:
        answered = _answers_within(dbapi_connection.pgconn, PG_PING_TIMEOUT_S)
    except Exception as exc:  # reset, closed, anything: the connection is not usable
        raise InvalidatePoolError(f"connection check failed: {type(exc).__name__}") from exc
    if not answered:
        # The others in the pool are most likely as dead: drop them all (InvalidatePoolError), so
        # each later checkout does not wait out its own ping first.
        raise InvalidatePoolError(f"database did not answer within {PG_PING_TIMEOUT_S:g} s")


def _answers_within(pgconn: Any, timeout_s: float) -> bool:
    """`SELECT 1` through libpq's asynchronous interface (psycopg's documented `pq` layer), waiting
    at most `timeout_s` for the answer; False when it did not come or was not a result."""
    from psycopg import pq  # only reached on PostgreSQL engines

    if pgconn.status != pq.ConnStatus.OK or pgconn.transaction_status != pq.TransactionStatus.IDLE:
        return False
    deadline = time.monotonic() + timeout_s
    with selectors.DefaultSelector() as selector:
        pgconn.send_query(b"SELECT 1")
        selector.register(pgconn.socket, selectors.EVENT_WRITE)
        while pgconn.flush() != 0:  # a non-blocking connection may not have sent everything yet
            if not selector.select(max(0.0, deadline - time.monotonic())):
                return False
        selector.modify(pgconn.socket, selectors.EVENT_READ)
        pgconn.consume_input()
        while pgconn.is_busy():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                return False  # the caller drops the connection: it is mid-query now
            pgconn.consume_input()
    ok = True
    while (result := pgconn.get_result()) is not None:
        ok = ok and result.status == pq.ExecStatus.TUPLES_OK
    return ok


def database_unreachable(exc: BaseException) -> bool:
    """Whether `exc` says the database could not be reached or went away (refused, reset, timed
    out, shutting down), as opposed to refusing what was asked (a conflict, a constraint, a bug).
    PostgreSQL only: a SQLite file does not go away, and its "database is locked" is contention."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        orig = current.orig if isinstance(current, DBAPIError) else current
        if type(orig).__module__.startswith("psycopg") and type(orig).__name__ in (
            "OperationalError",
            "ConnectionTimeout",
            "AdminShutdown",
            "CrashShutdown",
            "CannotConnectNow",
        ):
            sqlstate = getattr(orig, "sqlstate", None)
            if sqlstate is None or str(sqlstate).startswith(_UNREACHABLE_SQLSTATES):
                return True
        current = current.__cause__ or current.__context__
    return False


def database_error_text(exc: BaseException) -> str:
    """One line saying what went wrong, without the SQL statement and its parameters."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        lines = str(exc.orig).strip().splitlines() or [""]
        return f"{type(exc.orig).__name__}: {lines[0]}"
    return f"{type(exc).__name__}: {exc}"


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
    options: dict[str, Any] = {"pool_size": pool_size, "max_overflow": pool_size}
    if read_only:
        # BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY: one snapshot for all of a transaction's
        # statements (never a serialization failure: nothing is written), and a write fails.
        options |= {"isolation_level": "REPEATABLE READ", "execution_options": {"postgresql_readonly": True}}
    if url.get_driver_name() != "psycopg":  # not a driver this project uses: SQLAlchemy's own pre-ping
        return create_engine(url, pool_pre_ping=True, **options)
    # URL query parameters win: a deployment may tune these in DATABASE_URL.
    connect_args = {k: v for k, v in PG_CONNECT_ARGS.items() if k not in url.query}
    engine = create_engine(url, connect_args=connect_args, **options)
    # Instead of pool_pre_ping (see PG_PING_TIMEOUT_S above).
    event.listen(engine, "connect", _mark_fresh)
    event.listen(engine, "checkout", _ping_on_checkout)
    return engine


def dialect_insert(bind: OrmSession | Engine, table: Any) -> Any:
    """INSERT with the dialect's ON CONFLICT support (only SQLite and PostgreSQL are supported),
    for the database of a session or an engine."""
    name = (bind if isinstance(bind, Engine) else bind.get_bind()).dialect.name
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
