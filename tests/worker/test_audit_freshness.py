"""Nobody who sees an empty inbox reads stale audit counts (the admin GETs only read)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import Session, select

from app.db import unit_of_work
from app.models import AuditEntry, Connection, PortalSettings
from app.sandbox.zoom_webhooks import WebinarScenario
from app.worker.inbox_processor import InboxProcessor, ProcessorConfig
from tests.conftest import ACCOUNT_ID, PORTAL_ID, Database
from tests.delivery.test_dispatcher import store_events

T0 = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)


def test_the_batch_that_empties_the_inbox_brings_the_aggregated_entries_up_to_date(
    database: Database,
) -> None:
    with unit_of_work(database.engine) as session:
        session.add(Connection(portal_id=PORTAL_ID, zoom_account_id=ACCOUNT_ID))
        session.add(PortalSettings(portal_id=PORTAL_ID, webinar_sync_enabled=True))
    s = WebinarScenario(
        account_id=ACCOUNT_ID,
        webinar_id="87000000001",
        host_id="h",
        host_email="h@hostco.com",
        topic="t",
        start=T0,
    )
    s.created(at=T0 - timedelta(days=2))
    for i in range(4):
        s.register(f"p{i}@example.com", "P", str(i), at=T0 - timedelta(days=1))
    store_events(database, s.envelopes)  # 5 events
    processor = InboxProcessor(database.engine, ProcessorConfig(batch_size=3))
    assert processor.run_once().claimed == 3  # refreshes the entries (first time for this webinar)
    assert processor.run_once().claimed == 2  # the last events, within the refresh throttle
    # No idle round has run yet: the inbox is empty, so the entries must already count everyone.
    with Session(database.engine) as session:
        entry = session.exec(select(AuditEntry).where(AuditEntry.code == "webinar_synced")).one()
    assert entry.details["registrants"] == 4
