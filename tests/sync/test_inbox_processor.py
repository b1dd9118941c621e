"""The inbox worker: audit counts current once the inbox is empty, and an event the database always
refuses isolated so the rest drains."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlmodel import Session, select

from app.db import unit_of_work
from app.models import AuditEntry, Connection, InboxEvent, PortalSettings
from app.sandbox.zoom_webhooks import WebinarScenario
from app.sync import inbox_processor
from app.sync.events import RegistrationFact
from app.sync.inbox_processor import InboxProcessor, ProcessorConfig
from app.sync.local_model import Changes, apply_registrations
from tests.fixtures.databases import Database
from tests.fixtures.inbox import store_events
from tests.fixtures.service import ACCOUNT_ID, PORTAL_ID

T0 = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)


def store_registrations(database: Database, webinar_id: str, registrants: int) -> None:
    """A connected portal that syncs webinars, and one webinar's creation plus `registrants`
    registrations (p0@example.com, p1@…) waiting in the inbox."""
    with unit_of_work(database.engine) as session:
        session.add(Connection(portal_id=PORTAL_ID, zoom_account_id=ACCOUNT_ID))
        session.add(PortalSettings(portal_id=PORTAL_ID, webinar_sync_enabled=True))
    s = WebinarScenario(
        account_id=ACCOUNT_ID,
        webinar_id=webinar_id,
        host_id="h",
        host_email="h@hostco.com",
        topic="t",
        start=T0,
    )
    s.created(at=T0 - timedelta(days=2))
    for i in range(registrants):
        s.register(f"p{i}@example.com", "P", str(i), at=T0 - timedelta(days=1))
    store_events(database, s.envelopes)


def test_the_batch_that_empties_the_inbox_brings_the_aggregated_entries_up_to_date(
    database: Database,
) -> None:
    store_registrations(database, "87000000001", 4)  # 5 events
    processor = InboxProcessor(database.engine, ProcessorConfig(batch_size=3))
    assert processor.run_once().claimed == 3  # refreshes the entries (first time for this webinar)
    assert processor.run_once().claimed == 2  # the last events, within the refresh throttle
    # No idle round has run yet: the inbox is empty, so the entries must already count everyone.
    with Session(database.engine) as session:
        entry = session.exec(select(AuditEntry).where(AuditEntry.code == "webinar_synced")).one()
    assert entry.details["registrants"] == 4


def test_an_event_the_database_always_refuses_is_isolated_and_the_rest_drains(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One event whose write violates a constraint every time (deterministic, not a race): it must
    count its attempts and end failed with the database's reason, while every other event is done."""
    store_registrations(database, "87000000002", 5)

    def refuses_p2(session: Session, facts: Sequence[RegistrationFact], changes: Changes) -> None:
        apply_registrations(session, facts, changes)
        if any(f.raw_email == "p2@example.com" for f in facts):
            # What the database answers for a row it can never take (here: a NOT NULL violation).
            session.execute(text("INSERT INTO registration (zoom_account_id) VALUES ('x')"))

    monkeypatch.setattr(inbox_processor, "apply_registrations", refuses_p2)
    processor = InboxProcessor(
        database.engine, ProcessorConfig(batch_size=10, max_attempts=2, retry_base_s=0.01)
    )
    for _ in range(30):
        processor.run_once()
        time.sleep(0.02)
    with Session(database.engine) as session:
        rows = list(session.exec(select(InboxEvent)).all())
    states = [(r.event, r.state, r.attempts, r.last_error) for r in rows]
    failed = [r for r in rows if r.state == "failed"]
    assert len(failed) == 1 and b"p2@example.com" in failed[0].raw_body, states
    assert failed[0].attempts == 2
    assert failed[0].last_error and "INSERT" not in failed[0].last_error  # the reason, not the SQL
    assert "null" in failed[0].last_error.lower() or "NOT NULL" in failed[0].last_error
    assert sorted(r.state for r in rows if r is not failed[0]) == ["done"] * 5


def test_events_of_an_unconnected_account_say_why_they_reach_no_portal(database: Database) -> None:
    """A connected account's events are done with no note; another account's are kept in the local
    model (a later connection plans them) and their rows name the missing connection."""
    store_registrations(database, "87000000003", 1)
    stray = WebinarScenario(
        account_id="acct_unconnected",
        webinar_id="87000000004",
        host_id="h2",
        host_email="h2@x.com",
        topic="t",
        start=T0,
    )
    stray.created(at=T0 - timedelta(days=2))
    stray.register("stray@example.com", "S", "Tray", at=T0 - timedelta(days=1))
    store_events(database, stray.envelopes)
    InboxProcessor(database.engine, ProcessorConfig(batch_size=50)).run_once()
    with Session(database.engine) as session:
        rows = session.exec(select(InboxEvent)).all()
        webinars = session.execute(text("SELECT zoom_account_id FROM webinar ORDER BY zoom_account_id")).all()
    assert {r.state for r in rows} == {"done"}
    notes = {r.zoom_account_id: r.last_error for r in rows}
    assert notes[ACCOUNT_ID] is None
    assert notes["acct_unconnected"] == inbox_processor.NO_CONNECTION.format(account="acct_unconnected")
    assert [w[0] for w in webinars] == ["acct_test_01", "acct_unconnected"]
