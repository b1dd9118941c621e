"""The inbox worker as operators run it: `python -m app.worker` processes, killed, doubled, on old schemas,
and the in-process retry / dead-letter paths.

Two checks need no help from the app and are stronger than counting:

* a *done log*: the tests add a trigger to the test database (not to the app's schema) that records every
  committed UPDATE of an ``inbox_event`` row to ``done``. Each row must appear in it exactly once: a row
  processed twice (by a restarted or a second worker) would appear twice, and a batch rolled back by a
  kill leaves nothing, because the trigger's insert is part of the batch's transaction.
* the local state (``snapshot``) is compared with a reference database that processed the same events
  with one worker and no interruption.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import NullPool
from sqlmodel import Session, select

from app.db import unit_of_work, utcnow
from app.ingest.replan import requeue_failed
from app.migrations import current_revision
from app.models import Connection, InboxEvent, PortalSettings, Registration
from app.sandbox.zoom_webhooks import WebinarScenario, big_webinar
from app.sync import inbox_processor
from app.sync.events import parse_event
from app.sync.inbox_processor import InboxProcessor, ProcessorConfig
from tests.fixtures.databases import Database, fresh_pg_database, fresh_sqlite_database
from tests.fixtures.inbox import inbox_row, insert_inbox
from tests.fixtures.scenarios import deliver, snapshot, wait_inbox_idle
from tests.fixtures.service import ACCOUNT_ID, ADMIN, PORTAL_ID, make_settings, running_app

pytestmark = pytest.mark.slow

PROJECT_ROOT = Path(__file__).resolve().parents[2]
EXCLUDED_DOMAIN = "example7.com"  # big_webinar spreads emails over example0..49.com: 1 in 50 excluded
PROCESS_TIMEOUT_S = 120.0


# --------------------------------------------------------------------------------------------------
# Data set-up
# --------------------------------------------------------------------------------------------------


def seed_connection(engine: Engine) -> None:
    """The env connection and settings with webinar sync on (and one excluded contact domain)."""
    with unit_of_work(engine) as session:
        session.add(
            Connection(portal_id=PORTAL_ID, zoom_account_id=ACCOUNT_ID, business_unit_id=0, is_primary=True)
        )
        session.add(
            PortalSettings(
                portal_id=PORTAL_ID, webinar_sync_enabled=True, contact_exclusion_domains=[EXCLUDED_DOMAIN]
            )
        )


def interleave(*streams: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Round robin over several webinars' events, as concurrent webinars arrive."""
    out: list[Mapping[str, Any]] = []
    for group in itertools.zip_longest(*streams):
        out.extend(e for e in group if e is not None)
    return out


# --------------------------------------------------------------------------------------------------
# Databases
# --------------------------------------------------------------------------------------------------


@contextmanager
def reference_database(like: Database, tmp_path: Path) -> Iterator[Database]:
    """A second, migrated, empty database of the same kind as `like`."""
    if like.kind == "sqlite":
        with fresh_sqlite_database(tmp_path / "reference.db") as db:
            yield db
    else:
        with fresh_pg_database(like.url) as db:
            yield db


def poll_engine(url: str) -> Engine:
    """An engine for watching a database while workers run. Plain deferred transactions on SQLite
    (the app's engine takes the write lock even to read, which would pace the worker)."""
    if url.startswith("sqlite"):
        return create_engine(url, poolclass=NullPool, connect_args={"timeout": 30})
    return create_engine(url, poolclass=NullPool)


def inbox_states(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT state, count(*) FROM inbox_event GROUP BY state")).all()
    return {str(state): int(n) for state, n in rows}


def outbox_rows_and_distinct_targets(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        total = conn.execute(text("SELECT count(*) FROM outbox_op")).scalar_one()
        distinct = conn.execute(
            text("SELECT count(*) FROM (SELECT DISTINCT portal_id, kind, target_key FROM outbox_op) AS d")
        ).scalar_one()
    return int(total), int(distinct)


_DONE_LOG_SQLITE = (
    "CREATE TABLE test_done_log (inbox_id INTEGER NOT NULL, app TEXT)",
    "CREATE TRIGGER test_log_done AFTER UPDATE ON inbox_event FOR EACH ROW WHEN NEW.state = 'done' "
    "BEGIN INSERT INTO test_done_log (inbox_id) VALUES (NEW.id); END",
)
_DONE_LOG_PG = (
    "CREATE TABLE test_done_log (inbox_id bigint NOT NULL, app text, xid bigint)",
    "CREATE FUNCTION test_log_done() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "INSERT INTO test_done_log (inbox_id, app, xid) "
    "VALUES (NEW.id, current_setting('application_name'), txid_current()); RETURN NEW; END $$",
    "CREATE TRIGGER test_log_done AFTER UPDATE ON inbox_event FOR EACH ROW WHEN (NEW.state = 'done') "
    "EXECUTE FUNCTION test_log_done()",
)
_DONE_LOG_DROP_PG = (
    "DROP TRIGGER IF EXISTS test_log_done ON inbox_event",
    "DROP FUNCTION IF EXISTS test_log_done()",
    "DROP TABLE IF EXISTS test_done_log",
)


@contextmanager
def done_log(engine: Engine) -> Iterator[None]:
    """Record every committed `-> done` update of an inbox row (test-only trigger, removed afterwards)."""
    pg = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        for ddl in _DONE_LOG_PG if pg else _DONE_LOG_SQLITE:
            conn.execute(text(ddl))
    try:
        yield
    finally:
        with engine.begin() as conn:
            for ddl in (
                _DONE_LOG_DROP_PG
                if pg
                else ("DROP TRIGGER IF EXISTS test_log_done", "DROP TABLE IF EXISTS test_done_log")
            ):
                conn.execute(text(ddl))


@dataclass
class DoneLog:
    entries: int
    distinct_rows: int
    processed_twice: list[tuple[int, int]]
    apps: dict[str, int] = field(default_factory=dict)  # PostgreSQL only: rows done per worker

    @classmethod
    def read(cls, engine: Engine) -> DoneLog:
        with engine.connect() as conn:
            entries = conn.execute(text("SELECT count(*) FROM test_done_log")).scalar_one()
            distinct = conn.execute(text("SELECT count(DISTINCT inbox_id) FROM test_done_log")).scalar_one()
            twice = conn.execute(
                text("SELECT inbox_id, count(*) FROM test_done_log GROUP BY inbox_id HAVING count(*) > 1")
            ).all()
            apps = conn.execute(
                text("SELECT app, count(*) FROM test_done_log WHERE app IS NOT NULL GROUP BY app")
            ).all()
        return cls(
            int(entries),
            int(distinct),
            [(int(i), int(n)) for i, n in twice[:20]],
            {str(a): int(n) for a, n in apps},
        )


# --------------------------------------------------------------------------------------------------
# Worker processes
# --------------------------------------------------------------------------------------------------


@dataclass
class WorkerProcess:
    name: str
    proc: subprocess.Popen[bytes]
    stderr_path: Path

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait(self, timeout: float = PROCESS_TIMEOUT_S) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(
                f"worker {self.name} still running after {timeout}s; stderr:\n{self.stderr()}"
            )


class Workers:
    """Starts `python -m app.worker` processes; whatever is still alive is killed at teardown."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.started: list[WorkerProcess] = []

    def start(self, database_url: str, *args: str, name: str, batch_size: int = 200) -> WorkerProcess:
        env = dict(os.environ)
        env.update(
            {
                "DATABASE_URL": database_url,
                "WORKER_BATCH_SIZE": str(batch_size),
                "WORKER_POLL_INTERVAL_S": "0.05",
                "LOG_LEVEL": "WARNING",
                # libpq's application name: lets the test find this worker's server sessions.
                "PGAPPNAME": name,
            }
        )
        stdout_path = self.directory / f"{name}.stdout"
        stderr_path = self.directory / f"{name}.stderr"
        with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "app.worker", *args], cwd=PROJECT_ROOT, env=env, stdout=out, stderr=err
            )
        worker = WorkerProcess(name, proc, stderr_path)
        self.started.append(worker)
        return worker

    def run_until_idle(self, database_url: str, *, name: str, batch_size: int = 200) -> WorkerProcess:
        started = time.monotonic()
        worker = self.start(database_url, "--until-idle", name=name, batch_size=batch_size)
        code = worker.wait()
        print(f"{name}: exit {code} after {time.monotonic() - started:.1f}s")
        assert code == 0, f"worker {name} exited with {code}; stderr:\n{worker.stderr()}"
        return worker

    def stop_all(self) -> None:
        for worker in self.started:
            if worker.proc.poll() is None:
                worker.proc.kill()
                worker.proc.wait(10)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    procs = Workers(tmp_path)
    try:
        yield procs
    finally:
        procs.stop_all()


def wait_until(
    condition: Callable[[], bool], what: str, timeout: float = 60.0, interval: float = 0.01
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def worker_in_transaction(db: Database, watch: Engine, app_name: str) -> bool:
    """Whether the worker is inside a transaction (a batch) right now."""
    if db.kind == "sqlite":
        # The app's SQLite engine opens every transaction with BEGIN IMMEDIATE: the write lock is held
        # exactly while a transaction is open.
        probe = sqlite3.connect(str(make_url(db.url).database), timeout=0, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc):
                return True
            raise
        else:
            probe.execute("ROLLBACK")
            return False
        finally:
            probe.close()
    with watch.connect() as conn:
        n = conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = :app "
                "AND xact_start IS NOT NULL AND state IN ('active', 'idle in transaction')"
            ),
            {"app": app_name},
        ).scalar_one()
    return int(n) > 0


def no_pg_sessions(watch: Engine, app_name: str) -> bool:
    with watch.connect() as conn:
        n = conn.execute(
            text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :app"), {"app": app_name}
        ).scalar_one()
    return int(n) == 0


def assert_same_state(actual: Mapping[str, list[Any]], expected: Mapping[str, list[Any]]) -> None:
    assert set(actual) == set(expected)
    for table in expected:
        missing = sorted(set(expected[table]) - set(actual[table]))[:5]
        extra = sorted(set(actual[table]) - set(expected[table]))[:5]
        assert actual[table] == expected[table], (
            f"{table}: {len(actual[table])} rows vs {len(expected[table])} in the reference; "
            f"missing e.g. {missing}; unexpected e.g. {extra}"
        )


# --------------------------------------------------------------------------------------------------
# 1. kill -9 mid-batch
# --------------------------------------------------------------------------------------------------

CRASH_BATCH = 100
CRASH_KILLS = 3


def crash_workload() -> list[dict[str, Any]]:
    # 900 + 2 * 360 + 2 * 90 + 3 = 1803 events: 19 batches, enough for three kills mid-batch with
    # work left after each (3003 events made this the suite's longest test for no more coverage).
    return big_webinar(ACCOUNT_ID, "86000000001", registrants=900, attendees=360, seed=11).envelopes


def test_kill_9_mid_batch_loses_nothing_and_applies_nothing_twice(
    database: Database, tmp_path: Path, workers: Workers
) -> None:
    envelopes = crash_workload()
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    print(f"kill timing seed: {seed}")

    with reference_database(database, tmp_path) as reference:
        seed_connection(reference.engine)
        total = insert_inbox(reference.engine, envelopes)
        workers.run_until_idle(reference.url, name="zh-crash-reference", batch_size=CRASH_BATCH)
        assert inbox_states(reference.engine) == {"done": total}
        expected = snapshot(reference.engine)
        expected_outbox = outbox_rows_and_distinct_targets(reference.engine)

    # The workload really exercises every table the snapshot compares.
    assert len(expected["registrations"]) == 900
    assert len(expected["marks"]) == 2 * (360 + 90)
    assert len(expected["excluded"]) == 18  # user{i}@example7.com
    assert expected["outbox"] and expected["audit"] and expected["webinars"]

    seed_connection(database.engine)
    insert_inbox(database.engine, envelopes)
    watch = poll_engine(database.url)
    try:
        with done_log(database.engine):
            done_so_far = 0
            for kill in range(CRASH_KILLS):
                name = f"zh-crash-kill-{kill}"
                worker = workers.start(database.url, name=name, batch_size=CRASH_BATCH)

                def progressed(worker: WorkerProcess = worker, before: int = done_so_far) -> bool:
                    assert worker.proc.poll() is None, f"worker exited early:\n{worker.stderr()}"
                    return inbox_states(watch).get("done", 0) > before

                wait_until(progressed, f"{name} to commit a batch")
                time.sleep(rng.uniform(0.0, 0.15))
                wait_until(partial(worker_in_transaction, database, watch, name), f"{name} mid-batch")
                worker.proc.send_signal(signal.SIGKILL)
                assert worker.wait(10) == -signal.SIGKILL
                if database.kind == "postgresql":
                    # The server ends the dead worker's session (rolling its batch back) on its own.
                    wait_until(partial(no_pg_sessions, watch, name), f"{name}'s server session to end")

                states = inbox_states(watch)
                done = states.get("done", 0)
                assert states.get("pending", 0) > 0, f"kill {kill} came after the work was finished: {states}"
                assert set(states) <= {"done", "pending"}, states
                # A batch commits all of its rows or none: never a part of the batch that was killed.
                assert done % CRASH_BATCH == 0, (
                    f"kill {kill} left {done} rows done: a partial batch committed"
                )
                assert done > done_so_far
                log = DoneLog.read(database.engine)
                assert log.processed_twice == [] and log.entries == done, log
                done_so_far = done

            final = workers.run_until_idle(database.url, name="zh-crash-final", batch_size=CRASH_BATCH)
            assert inbox_states(watch) == {"done": total}, final.stderr()
            log = DoneLog.read(database.engine)
            assert log.processed_twice == [], (
                f"rows processed (committed) more than once: {log.processed_twice}"
            )
            assert log.entries == log.distinct_rows == total
    finally:
        workers.stop_all()
        watch.dispose()

    assert_same_state(snapshot(database.engine), expected)
    rows, distinct_targets = outbox_rows_and_distinct_targets(database.engine)
    assert rows == distinct_targets == expected_outbox[0]


# --------------------------------------------------------------------------------------------------
# 2. two workers on PostgreSQL
# --------------------------------------------------------------------------------------------------

PAIR_BATCH = 100


@pytest.fixture
def pg_pair(pg_server_url: str) -> Iterator[tuple[Database, Database]]:
    """Two fresh migrated PostgreSQL databases: the one two workers share, and a reference."""
    with fresh_pg_database(pg_server_url) as shared, fresh_pg_database(pg_server_url) as reference:
        yield shared, reference


def pair_workload() -> list[Mapping[str, Any]]:
    # Two webinars whose attendees share emails (the same contacts), arriving interleaved:
    # 2453 + 1653 = 4106 events, every batch touching both webinars and shared contacts.
    a = big_webinar(ACCOUNT_ID, "86000000011", registrants=1200, attendees=500, seed=21, host_id="hostA")
    b = big_webinar(ACCOUNT_ID, "86000000012", registrants=900, attendees=300, seed=22, host_id="hostB")
    return interleave(a.envelopes, b.envelopes)


def test_two_workers_on_postgresql_never_process_a_row_twice(
    pg_pair: tuple[Database, Database], workers: Workers
) -> None:
    shared, reference = pg_pair
    envelopes = pair_workload()

    seed_connection(reference.engine)
    total = insert_inbox(reference.engine, envelopes)
    assert total > 4000
    workers.run_until_idle(reference.url, name="zh-pair-reference", batch_size=PAIR_BATCH)
    assert inbox_states(reference.engine) == {"done": total}
    expected = snapshot(reference.engine)

    seed_connection(shared.engine)
    insert_inbox(shared.engine, envelopes)
    try:
        with done_log(shared.engine):
            pair = [
                workers.start(shared.url, "--until-idle", name=f"zh-pair-{n}", batch_size=PAIR_BATCH)
                for n in ("a", "b")
            ]
            codes = [w.wait() for w in pair]
            stderr = {w.name: w.stderr() for w in pair}
            assert codes == [0, 0], stderr
            conflicts = sum(s.count("rolled back after a database conflict") for s in stderr.values())
            print(f"batches rolled back on a conflict between the two workers: {conflicts}")

            assert inbox_states(shared.engine) == {"done": total}, stderr
            log = DoneLog.read(shared.engine)
            assert log.processed_twice == [], (
                f"rows processed (committed) more than once: {log.processed_twice}"
            )
            assert log.entries == log.distinct_rows == total
            # Both workers did part of the work (otherwise this test proved nothing about concurrency),
            # and together exactly all of it.
            assert set(log.apps) == {"zh-pair-a", "zh-pair-b"}, log.apps
            assert sum(log.apps.values()) == total
            print(f"rows done per worker: {log.apps}")
    finally:
        workers.stop_all()

    assert_same_state(snapshot(shared.engine), expected)
    rows, distinct_targets = outbox_rows_and_distinct_targets(shared.engine)
    assert rows == distinct_targets == outbox_rows_and_distinct_targets(reference.engine)[0]


# --------------------------------------------------------------------------------------------------
# 3. schema behind head
# --------------------------------------------------------------------------------------------------


@pytest.fixture(
    params=[("sqlite", None), ("sqlite", "0001"), ("postgresql", None), ("postgresql", "0001")],
    ids=["sqlite-empty", "sqlite-at-0001", "postgresql-empty", "postgresql-at-0001"],
)
def behind_head(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Database, str | None]]:
    kind, revision = request.param
    if kind == "sqlite":
        with fresh_sqlite_database(tmp_path / "behind.db", revision) as db:
            db.engine.dispose()
            if revision is None:
                (tmp_path / "behind.db").unlink(missing_ok=True)  # a database file that does not exist yet
            yield db, revision
    else:
        with fresh_pg_database(request.getfixturevalue("pg_server_url"), revision) as db:
            yield db, revision


def test_worker_refuses_to_start_on_a_schema_behind_head(
    behind_head: tuple[Database, str | None], workers: Workers
) -> None:
    db, revision = behind_head
    worker = workers.start(db.url, "--until-idle", name="zh-behind-head")
    code = worker.wait(60)
    stderr = worker.stderr()
    assert code == 2, stderr
    assert "alembic upgrade head" in stderr
    assert "refuses to start" in stderr
    # It refused; it did not migrate (or half-migrate) the database by itself.
    assert current_revision(db.engine) == revision


# --------------------------------------------------------------------------------------------------
# 4. retries with backoff, then failed, visible to admins; requeue after the fix
# --------------------------------------------------------------------------------------------------

T0 = datetime(2026, 4, 14, 17, 0, tzinfo=UTC)
RETRY_WEBINAR = "86000000021"
RETRY_BASE_S = 0.01


def _inbox_row(engine: Engine, key: str) -> InboxEvent:
    with Session(engine) as session:
        row = session.exec(select(InboxEvent).where(InboxEvent.delivery_key == key)).one()
        session.expunge(row)
        return row


def _states_except(engine: Engine, key: str) -> set[str]:
    with Session(engine) as session:
        rows = session.exec(select(InboxEvent.state).where(InboxEvent.delivery_key != key)).all()
    return set(rows)


def _drain(processor: InboxProcessor) -> None:
    for _ in range(100):
        if processor.run_once().claimed == 0:
            return
    raise AssertionError("the inbox never became idle")


@pytest.mark.anyio
async def test_failing_event_is_retried_with_backoff_then_failed_and_reported(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_connection(database.engine)
    scenario = WebinarScenario(
        account_id=ACCOUNT_ID,
        webinar_id=RETRY_WEBINAR,
        host_id="hostR",
        host_email="host@hostco.com",
        topic="Retry webinar",
        start=T0,
        seed=31,
    )
    scenario.created(at=T0 - timedelta(days=10))
    ids = [
        scenario.register(
            f"retry{i}@example.com", f"Retry{i}", "Person", at=T0 - timedelta(days=9, minutes=-i)
        )
        for i in range(30)
    ]
    bad_id = ids[17]
    (bad_envelope,) = [
        e for e in scenario.envelopes if e["payload"]["object"].get("registrant", {}).get("id") == bad_id
    ]
    bad_key = inbox_row(bad_envelope, utcnow())["delivery_key"]
    total = insert_inbox(database.engine, scenario.envelopes)

    def parse_event_failing_for_one(raw_body: bytes) -> Any:
        if bad_id.encode() in bytes(raw_body):
            raise RuntimeError(f"simulated outage while handling registrant {bad_id}")
        return parse_event(raw_body)

    monkeypatch.setattr(inbox_processor, "parse_event", parse_event_failing_for_one)
    processor = InboxProcessor(
        database.engine, ProcessorConfig(batch_size=50, max_attempts=3, retry_base_s=RETRY_BASE_S)
    )

    # Attempt 1: the batch fails as a whole, then each event runs alone: only the bad one is held back.
    before = utcnow()
    outcome = processor.run_once()
    after = utcnow()
    assert (outcome.claimed, outcome.done, outcome.retried, outcome.failed) == (total, total - 1, 1, 0), (
        outcome
    )
    assert _states_except(database.engine, bad_key) == {"done"}
    with Session(database.engine) as session:
        assert len(session.exec(select(Registration)).all()) == 29
    row = _inbox_row(database.engine, bad_key)
    assert (row.state, row.attempts) == ("pending", 1)
    assert row.last_error is not None and row.last_error.startswith("RuntimeError: simulated outage")

    # Backoff doubles: the next attempt is due retry_base * 2^(attempts - 1) after the failure.
    for attempt in (1, 2, 3):
        if attempt > 1:
            due = row.next_attempt_at
            assert due is not None
            await asyncio.sleep(max(0.0, (due - utcnow()).total_seconds()) + 0.005)
            before = utcnow()
            outcome = processor.run_once()
            after = utcnow()
            assert outcome.claimed == 1, (attempt, outcome)
            row = _inbox_row(database.engine, bad_key)
            assert row.attempts == attempt
        if attempt < 3:
            assert row.state == "pending" and outcome.retried == 1
            delay = timedelta(seconds=RETRY_BASE_S * 2 ** (attempt - 1))
            assert row.next_attempt_at is not None
            assert before + delay <= row.next_attempt_at <= after + delay, (attempt, before, after, row)
    assert outcome.failed == 1, outcome
    assert row.state == "failed" and row.attempts == 3 and row.processed_at is not None
    assert row.last_error is not None and "simulated outage" in row.last_error
    assert processor.run_once().claimed == 0  # failed is final until requeued
    assert _states_except(database.engine, bad_key) == {"done"}

    base = f"/api/v1/portals/{PORTAL_ID}/webinars/{RETRY_WEBINAR}"
    async with running_app(make_settings(database)) as client:
        status = (await client.get("/api/v1/status", headers=ADMIN)).json()
        assert status["failed"] == 1 and status["inbox"]["failed"] == 1, status
        assert status["dead"] == 0 and status["inbox"]["pending"] == 0, status
        audit = (await client.get(f"{base}/audit-log", headers=ADMIN)).json()
        errors = [a for a in audit if a["code"] == "sync_error"]
        assert len(errors) == 1, audit
        assert errors[0]["status"] == "error"
        assert "webinar.registration_created" in errors[0]["message"]
        assert "simulated outage" in str(errors[0]["details"])

    # After the fix, a requeue processes it like any other event.
    monkeypatch.undo()
    assert requeue_failed(database.engine) == 1
    _drain(processor)
    row = _inbox_row(database.engine, bad_key)
    assert row.state == "done" and row.last_error is None
    with Session(database.engine) as session:
        registration = session.exec(select(Registration).where(Registration.registrant_id == bad_id)).one()
        assert registration.email == "retry17@example.com"
    async with running_app(make_settings(database)) as client:
        status = (await client.get("/api/v1/status", headers=ADMIN)).json()
        assert status["failed"] == 0 and status["inbox"] == {**status["inbox"], "pending": 0, "done": total}


# --------------------------------------------------------------------------------------------------
# 5. malformed events become dead, not retried
# --------------------------------------------------------------------------------------------------

DEAD_WEBINAR = "86000000031"
_TS = 1_776_186_000_000


def _registration_object(**changes: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "uuid": "dGVzdC11dWlkLWRlYWQ=",
        "id": int(DEAD_WEBINAR),
        "host_id": "hostD",
        "topic": "Dead letters",
        "type": 5,
        "start_time": "2026-04-14T17:00:00Z",
        "duration": 60,
        "registrant": {"id": "deadRegistrant01", "email": "dead@example.com", "first_name": "Dee"},
    }
    obj.update(changes)
    return {k: v for k, v in obj.items() if v is not None}


def _envelope(event: str, payload: dict[str, Any], *, event_ts: int | None = _TS) -> dict[str, Any]:
    env: dict[str, Any] = {"event": event}
    if event_ts is not None:
        env["event_ts"] = event_ts
    env["payload"] = payload
    return env


MALFORMED = {
    "registration-without-webinar-id": (
        _envelope(
            "webinar.registration_created",
            {"account_id": ACCOUNT_ID, "object": _registration_object(id=None)},
        ),
        "object.id is not a webinar id",
    ),
    "registration-with-non-numeric-webinar-id": (
        _envelope(
            "webinar.registration_created",
            {"account_id": ACCOUNT_ID, "object": _registration_object(id="abc")},
        ),
        "object.id is not a webinar id",
    ),
    "registration-without-registrant": (
        _envelope(
            "webinar.registration_created",
            {"account_id": ACCOUNT_ID, "object": _registration_object(registrant=None)},
        ),
        "object.registrant is missing",
    ),
    "registrant-without-id": (
        _envelope(
            "webinar.registration_approved",
            {"account_id": ACCOUNT_ID, "object": _registration_object(registrant={"email": "x@example.com"})},
        ),
        "registrant.id is missing",
    ),
    "join-without-any-time": (
        _envelope(
            "webinar.participant_joined",
            {
                "account_id": ACCOUNT_ID,
                "object": {
                    "id": DEAD_WEBINAR,
                    "uuid": "aW5zdGFuY2U=",
                    "participant": {"user_name": "No Time", "user_id": "16778241"},
                },
            },
            event_ts=None,
        ),
        "participant has no join time",
    ),
    "without-account-id": (
        _envelope("webinar.registration_created", {"object": _registration_object()}),
        "payload.account_id is missing",
    ),
    "without-object": (
        _envelope("webinar.ended", {"account_id": ACCOUNT_ID}),
        "payload.object is missing",
    ),
}


@pytest.mark.anyio
@pytest.mark.parametrize("case", list(MALFORMED))
async def test_malformed_event_becomes_dead_without_retries(database: Database, case: str) -> None:
    malformed, problem = MALFORMED[case]
    valid = WebinarScenario(
        account_id=ACCOUNT_ID,
        webinar_id=DEAD_WEBINAR,
        host_id="hostD",
        host_email="host@hostco.com",
        topic="Dead letters",
        start=T0,
        seed=41,
    ).created(at=T0 - timedelta(days=3))
    unknown = _envelope("meeting.created", {"account_id": ACCOUNT_ID, "object": {"id": 123}})
    bad_key = inbox_row(malformed, utcnow())["delivery_key"]

    settings = make_settings(database, run_worker=True, worker_poll_interval_s=0.05)
    async with running_app(settings) as client:
        await deliver(client, [malformed, valid, unknown])
        body = await wait_inbox_idle(client, timeout_s=30)
        assert body["dead"] == 1 and body["failed"] == 0, body
        assert body["inbox"]["dead"] == 1 and body["inbox"]["done"] == 1 and body["inbox"]["ignored"] == 1, (
            body
        )

    row = _inbox_row(database.engine, bad_key)
    assert row.state == "dead"
    assert row.attempts == 0, "a malformed event must not be retried"
    assert row.processed_at is not None
    assert (
        row.last_error is not None
        and row.last_error.startswith("BadEventError")
        and problem in row.last_error
    )
    # Dead is final: the worker never picks it up again.
    assert InboxProcessor(database.engine).run_once().claimed == 0
    assert _inbox_row(database.engine, bad_key).state == "dead"
