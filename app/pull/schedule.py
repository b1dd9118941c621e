"""Creating sync jobs (no Zoom calls, no worker imports: used by the API and the inbox worker)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from app.db import dialect_insert, utcnow
from app.models import Connection, JobState, SyncJob


class JobKind:
    SYNC_NOW = "sync_now"
    RECONCILE = "reconcile"
    BACKFILL = "backfill"
    BACKFILL_ITEM = "backfill_item"
    DETAILS = "details"  # GET /webinars/{id} once for a new webinar: registration URL (P2), host email


def new_job_id() -> str:
    return uuid.uuid4().hex


def _insert(session: Session) -> Any:
    return dialect_insert(session, SyncJob.__table__)  # type: ignore[attr-defined]


def _job_row(
    kind: str, portal_id: int, account_id: str, webinar_id: str | None, **extra: Any
) -> dict[str, Any]:
    now = utcnow()
    row: dict[str, Any] = {
        "id": new_job_id(),
        "kind": kind,
        "portal_id": portal_id,
        "zoom_account_id": account_id,
        "webinar_id": webinar_id,
        "parent_id": None,
        "state": JobState.QUEUED,
        "active_key": None,
        "dedupe_key": None,
        "params": {},
        "counts": {},
        "attempts": 0,
        "run_after": now,
        "created_at": now,
    }
    row.update(extra)
    return row


def request_sync_now(
    session: Session, portal_id: int, account_id: str, webinar_id: str
) -> tuple[SyncJob, bool]:
    """(the job, whether it is new). A Sync now already queued or running is shared."""
    row = _job_row(
        JobKind.SYNC_NOW, portal_id, account_id, webinar_id, active_key=f"{account_id}:{webinar_id}"
    )
    stmt = _insert(session).values(**row).on_conflict_do_nothing().returning(col(SyncJob.id))
    inserted = session.execute(stmt).scalar_one_or_none()
    job = session.execute(
        select(SyncJob).where(col(SyncJob.active_key) == row["active_key"])
        if inserted is None
        else select(SyncJob).where(col(SyncJob.id) == inserted)
    ).scalar_one()
    return job, inserted is not None


def schedule_details(session: Session, account_id: str, webinar_id: str) -> None:
    """Read a newly seen webinar from Zoom once: webhooks never carry its registration URL (P2)."""
    for conn in session.execute(
        select(Connection).where(col(Connection.zoom_account_id) == account_id)
    ).scalars():
        row = _job_row(
            JobKind.DETAILS,
            conn.portal_id,
            account_id,
            webinar_id,
            dedupe_key=f"details:{conn.portal_id}:{account_id}:{webinar_id}",
        )
        session.execute(_insert(session).values(**row).on_conflict_do_nothing())


def schedule_reconcile(session: Session, account_id: str, webinar_id: str, run_after: datetime) -> None:
    """One automatic pull per webinar and portal, after Zoom's reports have caught up."""
    for conn in session.execute(
        select(Connection).where(col(Connection.zoom_account_id) == account_id)
    ).scalars():
        row = _job_row(
            JobKind.RECONCILE,
            conn.portal_id,
            account_id,
            webinar_id,
            dedupe_key=f"reconcile:{conn.portal_id}:{account_id}:{webinar_id}",
            run_after=run_after,
        )
        session.execute(_insert(session).values(**row).on_conflict_do_nothing())


def sync_job_out(job: SyncJob) -> dict[str, Any]:
    return {
        "job_id": job.id,
        "kind": job.kind,
        "state": job.state,
        "webinar_id": job.webinar_id,
        "counts": job.counts or {},
        "error": job.error,
        "attempts": job.attempts,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "run_after": job.run_after,
    }


def latest_job(session: Session, portal_id: int, account_id: str, webinar_id: str) -> SyncJob | None:
    found: SyncJob | None = (
        session.execute(
            select(SyncJob)
            .where(
                col(SyncJob.portal_id) == portal_id,
                col(SyncJob.zoom_account_id) == account_id,
                col(SyncJob.webinar_id) == webinar_id,
            )
            .order_by(col(SyncJob.created_at).desc())
            .limit(1)
        )
        .scalars()
        .first()
    )
    return found
