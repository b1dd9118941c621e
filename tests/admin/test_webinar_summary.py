"""The webinar list's summaries are read for a whole page at once: the number of SQL statements a
page costs does not grow with its size, and each summary says what the per-webinar helpers (the
ones the worker uses) say about that webinar."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from app.admin.webinar_summary import summarize_webinars
from app.db import unit_of_work
from app.models import (
    AttendanceMark,
    AuditEntry,
    AuditStatus,
    ExcludedEmail,
    OutboxOp,
    OutboxState,
    PortalSettings,
    Registration,
    RegistrationStatus,
    SyncJob,
    Webinar,
    ZoomUser,
)
from app.pull.schedule import latest_job
from app.sync.audit import exclusion_counts, webinar_people_counts
from app.sync.inputs import webinar_skip_reason
from app.sync.op_kind import OpKind
from tests.fixtures.databases import Database
from tests.fixtures.service import ACCOUNT_ID, ADMIN, PORTAL_ID, make_settings, running_app

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 4, 14, 16, 0, tzinfo=UTC)
STATUSES = [
    RegistrationStatus.APPROVED,
    RegistrationStatus.PENDING,
    RegistrationStatus.CANCELLED,
    RegistrationStatus.DENIED,
]
OP_STATES = [OutboxState.PENDING, OutboxState.DONE, OutboxState.FAILED]


def webinar_id(i: int) -> str:
    return f"8500000{i:04d}"


def seed(engine: Engine, count: int) -> None:
    """`count` webinars whose hosts, switches, people, exclusions, operations, audit entries and
    pulls differ from one to the next (and some have none of them)."""
    with unit_of_work(engine) as s:
        s.add(
            PortalSettings(
                portal_id=PORTAL_ID,
                global_sync_enabled=True,
                webinar_sync_enabled=True,
                exclusion_domains=["excluded.com"],
            )
        )
        s.add(ZoomUser(zoom_account_id=ACCOUNT_ID, zoom_user_id="host0", email="host0@ok.com"))
        s.add(ZoomUser(zoom_account_id=ACCOUNT_ID, zoom_user_id="host1", email="host1@excluded.com"))
        s.add(ZoomUser(zoom_account_id=ACCOUNT_ID, zoom_user_id="host2", sync_new_webinars_by_default=False))
        # host3 has no zoom_user row; host-less webinars exist too.
        for i in range(count):
            wid = webinar_id(i)
            s.add(
                Webinar(
                    zoom_account_id=ACCOUNT_ID,
                    webinar_id=wid,
                    host_id=f"host{i % 4}" if i % 5 else None,
                    topic=f"Webinar {i}",
                    sync_enabled=[None, True, False][i % 3],
                    unsupported_reason="zoom_events" if i % 7 == 6 else None,
                    created_at=T0 + timedelta(minutes=i),
                )
            )
            for r in range(i % 4):
                s.add(
                    Registration(
                        zoom_account_id=ACCOUNT_ID,
                        webinar_id=wid,
                        registrant_id=f"r{r}",
                        email=f"p{r}@example.com",
                        status=STATUSES[(i + r) % 4],
                    )
                )
            for p in range(i % 3):
                for session_key in ("a", "b"):  # two devices of one person: one attendee
                    s.add(
                        AttendanceMark(
                            zoom_account_id=ACCOUNT_ID,
                            webinar_id=wid,
                            person_key=f"p{p}",
                            session_key=f"{p}{session_key}",
                            kind="join",
                            at=T0,
                        )
                    )
            for e in range(i % 3):
                role, reason = ("attendance", "no_email") if e == 1 else ("registration", "invalid_email")
                s.add(
                    ExcludedEmail(
                        portal_id=PORTAL_ID,
                        zoom_account_id=ACCOUNT_ID,
                        webinar_id=wid,
                        person_key=f"x{e}",
                        reason=reason,
                        role=role,
                    )
                )
            for o in range(i % 4):
                s.add(
                    OutboxOp(
                        portal_id=PORTAL_ID,
                        kind=OpKind.MARKETING_STATE.value,
                        target_key=f"{wid}:{o}",
                        zoom_account_id=ACCOUNT_ID,
                        webinar_id=wid,
                        state=OP_STATES[(i + o) % 3],
                    )
                )
            for a in range(i % 3):
                s.add(
                    AuditEntry(
                        portal_id=PORTAL_ID,
                        zoom_account_id=ACCOUNT_ID,
                        webinar_id=wid,
                        at=T0 + timedelta(minutes=i + a),
                        status=AuditStatus.SUCCESS,
                        code="test",
                        message="m",
                    )
                )
            for j in range(i % 3):
                s.add(
                    SyncJob(
                        id=f"job{i}x{j}",
                        kind="sync_now",
                        portal_id=PORTAL_ID,
                        zoom_account_id=ACCOUNT_ID,
                        webinar_id=wid,
                        created_at=T0 + timedelta(minutes=j),
                    )
                )


@contextmanager
def counting(engine: Engine) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


async def test_a_page_costs_the_same_statements_whatever_its_size(database: Database) -> None:
    seed(database.engine, 60)
    async with running_app(make_settings(database)) as client:
        read_engine: Engine = client.app.state.app_state.read_engine
        counts: dict[int, int] = {}
        for limit in (5, 50, 5):
            with counting(read_engine) as statements:
                r = await client.get(
                    f"/api/v1/portals/{PORTAL_ID}/webinars", headers=ADMIN, params={"limit": limit}
                )
            assert r.status_code == 200 and len(r.json()["items"]) == limit
            counts[limit] = len(statements)
        assert counts[5] == counts[50], counts
        print(f"statements per page: {counts}")  # shown with -s


async def test_a_summary_says_what_the_per_webinar_helpers_say(database: Database) -> None:
    seed(database.engine, 30)
    with Session(database.engine) as session:
        webinars = list(session.exec(select(Webinar).order_by(col(Webinar.webinar_id))).all())
        settings = session.get(PortalSettings, PORTAL_ID)
        assert settings is not None
        summaries = summarize_webinars(session, PORTAL_ID, webinars)
        assert [s.webinar.webinar_id for s in summaries] == [w.webinar_id for w in webinars]
        seen_skips, seen_jobs = set(), 0
        for webinar, summary in zip(webinars, summaries, strict=True):
            wid = webinar.webinar_id
            skip = webinar_skip_reason(session, settings, webinar)
            assert summary.skip == skip, wid
            seen_skips.add(skip)
            assert vars(summary.people) == webinar_people_counts(session, webinar), wid
            emails, participants = exclusion_counts(session, PORTAL_ID, webinar)
            assert (summary.excluded_emails, summary.participants_not_synced) == (emails, participants), wid
            job = latest_job(session, PORTAL_ID, ACCOUNT_ID, wid)
            assert (summary.last_job.id if summary.last_job else None) == (job.id if job else None), wid
            seen_jobs += job is not None
            ops = select(func.count()).where(
                OutboxOp.webinar_id == wid, OutboxOp.kind == OpKind.MARKETING_STATE.value
            )
            assert summary.planned == session.exec(ops).one(), wid
            assert summary.synced == session.exec(ops.where(OutboxOp.state == "done")).one(), wid
            last = session.exec(select(func.max(AuditEntry.at)).where(AuditEntry.webinar_id == wid)).one()
            assert summary.last_sync_at == last, wid
        # The seed reaches every branch this compares.
        assert len(seen_skips) >= 5 and seen_jobs > 0
