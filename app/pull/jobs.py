"""Sync jobs: queued in the database, run by workers, readable by admins.

* `request_sync_now()` (API): one job per webinar at a time; a second call while one is queued or
  running gets the same job (unique `active_key`).
* `schedule_reconcile()` (worker, on `webinar.ended`): one automatic pull per webinar, some
  minutes after its end, because Zoom's participant reports lag behind.
* `JobRunner.run_once()` (worker): claims a due job (a lease, so a crashed worker's job is taken
  over), pulls from Zoom, stores the events and a re-plan in one transaction, and records counts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from sqlalchemy import or_, select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from app.db import unit_of_work, utcnow
from app.ingest.replan import enqueue_replan
from app.ingest.synthetic import store_envelopes
from app.integrations.zoom.errors import ZoomError
from app.models import AuditStatus, Connection, InboxEvent, InboxState, JobState, SyncJob, Webinar
from app.pull.backfill import (
    ZoomListApi,
    find_webinars,
    finish_if_complete,
    parse_range,
    record_webinars,
    release_items,
)
from app.pull.schedule import JobKind
from app.pull.zoom_pull import Pulled, WebinarGone, ZoomPullApi, pull_webinar
from app.sync.audit import AuditCode, add_audit_event

log = logging.getLogger(__name__)


class ZoomJobApi(ZoomPullApi, ZoomListApi, Protocol):
    """What jobs need of Zoom (the ZoomClient has it all)."""


ZoomFor = Callable[[str], ZoomJobApi | None]


PULL_KINDS = (JobKind.SYNC_NOW, JobKind.RECONCILE, JobKind.BACKFILL_ITEM, JobKind.DETAILS)
RUNNABLE_KINDS = (*PULL_KINDS, JobKind.BACKFILL)


@dataclass(frozen=True)
class JobConfig:
    lease_s: float = 300.0
    max_attempts: int = 5
    retry_base_s: float = 10.0


@dataclass
class RunOutcome:
    ran: int = 0
    done: int = 0
    failed: int = 0


class JobRunner:
    def __init__(self, engine: Engine, zoom_for: ZoomFor, config: JobConfig | None = None) -> None:
        self.engine = engine
        self.zoom_for = zoom_for
        self.config = config or JobConfig()

    async def run_once(self) -> RunOutcome:
        outcome = RunOutcome()
        job = await asyncio.to_thread(self._claim)
        if job is None:
            return outcome
        outcome.ran = 1
        ok = await self.run_job(job)
        outcome.done, outcome.failed = (1, 0) if ok else (0, 1)
        return outcome

    def _claim(self) -> SyncJob | None:
        now = utcnow()
        with unit_of_work(self.engine) as session:
            stmt = (
                select(SyncJob)
                .where(
                    col(SyncJob.kind).in_(RUNNABLE_KINDS),
                    col(SyncJob.state).in_([JobState.QUEUED, JobState.RUNNING]),
                    col(SyncJob.run_after) <= now,
                    or_(col(SyncJob.locked_until).is_(None), col(SyncJob.locked_until) < now),
                )
                .order_by(col(SyncJob.run_after))
                .limit(1)
            )
            if session.get_bind().dialect.name == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True)
            job: SyncJob | None = session.execute(stmt).scalar_one_or_none()
            if job is None:
                return None
            job.state = JobState.RUNNING
            job.locked_until = now + timedelta(seconds=self.config.lease_s)
            job.attempts += 1
            job.started_at = job.started_at or now
            return job

    async def run_job(self, job: SyncJob) -> bool:
        """Pull and store; False when the job failed (for good or for now)."""
        if job.kind == JobKind.BACKFILL:
            return await self._expand_backfill(job)
        ok = await self._pull(job)
        if job.parent_id is not None:
            await asyncio.to_thread(finish_if_complete, self.engine, job.parent_id)
        return ok

    async def _expand_backfill(self, job: SyncJob) -> bool:
        """A backfill asked through the API: find its webinars, then the workers pull them one by one."""
        zoom = self.zoom_for(job.zoom_account_id)
        if zoom is None:
            await asyncio.to_thread(self._fail, job, "no Zoom API credentials for this account", final=True)
            return False
        period = parse_range(job.params["from"], job.params["to"])
        try:
            webinars = await find_webinars(zoom, period, job.params.get("users") or None)
        except ZoomError as exc:
            final = not exc.retryable or job.attempts >= self.config.max_attempts
            await asyncio.to_thread(self._fail, job, f"Zoom: {exc}", final=final)
            return False
        await asyncio.to_thread(record_webinars, self.engine, job, webinars)
        await asyncio.to_thread(release_items, self.engine, job)
        await asyncio.to_thread(self._hold, job)
        await asyncio.to_thread(finish_if_complete, self.engine, job.id)
        return True

    def _hold(self, job: SyncJob) -> None:
        """The backfill itself waits (running, not claimable) until its items are done."""
        with unit_of_work(self.engine) as session:
            row = session.get(SyncJob, job.id)
            if row is not None:
                row.state = JobState.RUNNING
                row.locked_until = utcnow() + timedelta(days=3650)

    async def _pull(self, job: SyncJob) -> bool:
        if job.webinar_id is None:
            raise ValueError(f"sync job {job.id} ({job.kind}) names no webinar")
        zoom = self.zoom_for(job.zoom_account_id)
        if zoom is None:
            await asyncio.to_thread(self._fail, job, "no Zoom API credentials for this account", final=True)
            return False
        has_end = await asyncio.to_thread(self._has_actual_end, job.zoom_account_id, job.webinar_id)
        try:
            pulled = await pull_webinar(
                zoom,
                job.zoom_account_id,
                job.webinar_id,
                has_actual_end=has_end,
                source=job.kind,
                details_only=job.kind == JobKind.DETAILS,
            )
        except WebinarGone as exc:
            await asyncio.to_thread(
                self._fail, job, f"Zoom does not know webinar {job.webinar_id}: {exc}", final=True
            )
            return False
        except ZoomError as exc:
            final = not exc.retryable or job.attempts >= self.config.max_attempts
            await asyncio.to_thread(self._fail, job, f"Zoom: {exc}", final=final)
            return False
        await asyncio.to_thread(self._store, job, pulled)
        log.info("sync job done", extra={"job_id": job.id, "kind": job.kind, **pulled.counts})
        return True

    def _has_actual_end(self, account_id: str, webinar_id: str) -> bool:
        with Session(self.engine) as session:
            webinar = session.get(Webinar, (account_id, webinar_id))
            return webinar is not None and webinar.actual_end_at is not None

    def _store(self, job: SyncJob, pulled: Pulled) -> None:
        if job.webinar_id is None:
            raise ValueError(f"sync job {job.id} ({job.kind}) names no webinar")
        with unit_of_work(self.engine) as session:
            stored = store_envelopes(session, pulled.envelopes)
            # Everything of the webinar is planned again (a missing transcript is fetched again), and
            # events that had failed get another chance.
            enqueue_replan(session, job.zoom_account_id, job.webinar_id)
            session.execute(
                update(InboxEvent)
                .where(
                    col(InboxEvent.webinar_id) == job.webinar_id,
                    col(InboxEvent.state) == InboxState.FAILED,
                )
                .values(state=InboxState.PENDING, attempts=0, next_attempt_at=utcnow(), processed_at=None)
            )
            row = session.get(SyncJob, job.id, with_for_update=True)
            if row is None:
                return
            row.state = JobState.DONE
            row.counts = {**pulled.counts, "stored": stored}
            row.finished_at = utcnow()
            row.locked_until = None
            row.active_key = None
            row.error = None
            conn = _connection(session, job)
            if conn is not None:
                if job.kind == JobKind.DETAILS:
                    return  # routine: the webinar's own details, not worth an audit line
                what = {
                    "sync_now": "Sync now",
                    "reconcile": "Reconciliation after the webinar",
                    "backfill_item": "Backfill",
                }
                c = pulled.counts
                add_audit_event(
                    session,
                    conn,
                    job.webinar_id,
                    code="zoom_pulled",
                    status=AuditStatus.SUCCESS,
                    message=(
                        f"{what.get(job.kind, job.kind)}: {c['registrants']} registrants, "
                        f"{c['participant_sessions']} participant sessions and {c['recordings']} recordings "
                        f"read from Zoom; {stored} new events"
                    ),
                    details={"job_id": job.id, "kind": job.kind, **row.counts},
                )

    def _fail(self, job: SyncJob, error: str, *, final: bool) -> None:
        with unit_of_work(self.engine) as session:
            row = session.get(SyncJob, job.id, with_for_update=True)
            if row is None:
                return
            row.error = error[:2000]
            row.locked_until = None
            if final:
                row.state = JobState.FAILED
                row.finished_at = utcnow()
                row.active_key = None
            else:
                row.state = JobState.QUEUED
                row.run_after = utcnow() + timedelta(
                    seconds=self.config.retry_base_s * 2 ** (row.attempts - 1)
                )
            conn = _connection(session, job)
            if final and conn is not None and job.kind != JobKind.DETAILS:
                add_audit_event(
                    session,
                    conn,
                    job.webinar_id,
                    code=AuditCode.SYNC_ERROR,
                    status=AuditStatus.ERROR,
                    message=f"pulling the webinar from Zoom failed: {error}"[:1000],
                    details={"reason": "zoom_data_not_found", "job_id": job.id, "kind": job.kind},
                )


def _connection(session: Session, job: SyncJob) -> Connection | None:
    """The connection the job pulls for (its portal and Zoom account), for the audit entry."""
    found: Connection | None = session.execute(
        select(Connection).where(
            col(Connection.portal_id) == job.portal_id,
            col(Connection.zoom_account_id) == job.zoom_account_id,
        )
    ).scalar_one_or_none()
    return found
