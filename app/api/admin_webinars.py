"""Admin API: webinars, their sync state, audit log and excluded emails (S5, A1, A3)."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict
from sqlalchemy import and_, func, or_
from sqlmodel import Session, col, select

from app.api.admin_settings import load_portal_settings, portal_account_ids
from app.api.deps import AdminAuth, SessionDep
from app.models import AuditEntry, ExcludedEmail, OutboxOp, OutboxState, Webinar
from app.pull.schedule import latest_job, sync_job_out
from app.sync.planner import (
    OpKind,
    exclusion_counts,
    refresh_webinar_audit,
    webinar_people_counts,
    webinar_skip_reason,
)
from app.worker.inbox_processor import enqueue_replan

router = APIRouter(prefix="/api/v1", tags=["admin"], dependencies=[AdminAuth])


class WebinarCounts(BaseModel):
    registrants: int
    approved: int
    pending: int
    cancelled: int
    denied: int
    attendees: int
    synced: int
    planned: int
    excluded: int
    participants_not_synced: int
    excluded_by_reason: dict[str, int]


class WebinarOut(BaseModel):
    webinar_id: str
    zoom_account_id: str
    topic: str | None
    host_id: str | None
    webinar_type: int | None
    scheduled_start_at: datetime | None
    actual_start_at: datetime | None
    actual_end_at: datetime | None
    registration_url: str | None
    join_url: str | None
    deleted: bool
    sync_enabled: bool | None
    sync_state: str  # "syncing" | "skipped"
    skip_reason: str | None
    unsupported_reason: str | None
    counts: WebinarCounts
    last_sync_at: datetime | None
    # The latest pull from Zoom (Sync now, reconciliation, backfill): state and counts.
    last_sync_job: dict[str, Any] | None = None


class WebinarPage(BaseModel):
    items: list[WebinarOut]
    next_cursor: str | None


class WebinarPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sync_enabled: bool | None


class AuditEntryOut(BaseModel):
    id: int
    at: datetime
    status: str
    code: str
    message: str
    details: dict[str, Any]


class ExcludedEmailOut(BaseModel):
    email: str | None
    reason: str
    at: datetime
    role: str


def find_webinar(session: Session, portal_id: int, webinar_id: str) -> Webinar:
    accounts = portal_account_ids(session, portal_id)
    webinar = session.exec(
        select(Webinar).where(col(Webinar.zoom_account_id).in_(accounts), Webinar.webinar_id == webinar_id)
    ).first()
    if webinar is None:
        raise HTTPException(404, detail=f"unknown webinar {webinar_id} for portal {portal_id}")
    return webinar


def _webinar_out(session: Session, portal_id: int, webinar: Webinar) -> WebinarOut:
    settings = load_portal_settings(session, portal_id)
    skip = webinar_skip_reason(session, settings, webinar)
    people = webinar_people_counts(session, webinar)
    emails, participants = exclusion_counts(session, portal_id, webinar)
    state_ops = select(func.count()).where(
        OutboxOp.portal_id == portal_id,
        OutboxOp.zoom_account_id == webinar.zoom_account_id,
        OutboxOp.webinar_id == webinar.webinar_id,
        OutboxOp.kind == OpKind.MARKETING_STATE.value,
    )
    planned = int(session.exec(state_ops).one())
    synced = int(session.exec(state_ops.where(OutboxOp.state == OutboxState.DONE.value)).one())
    last_sync = session.exec(
        select(func.max(AuditEntry.at)).where(
            AuditEntry.portal_id == portal_id,
            AuditEntry.zoom_account_id == webinar.zoom_account_id,
            AuditEntry.webinar_id == webinar.webinar_id,
        )
    ).one()
    job = latest_job(session, portal_id, webinar.zoom_account_id, webinar.webinar_id)
    return WebinarOut(
        last_sync_job=sync_job_out(job) if job is not None else None,
        webinar_id=webinar.webinar_id,
        zoom_account_id=webinar.zoom_account_id,
        topic=webinar.topic,
        host_id=webinar.host_id,
        webinar_type=webinar.webinar_type,
        scheduled_start_at=webinar.scheduled_start_at,
        actual_start_at=webinar.actual_start_at,
        actual_end_at=webinar.actual_end_at,
        registration_url=webinar.registration_url,
        join_url=webinar.join_url,
        deleted=webinar.deleted_at is not None,
        sync_enabled=webinar.sync_enabled,
        sync_state="skipped" if skip is not None else "syncing",
        skip_reason=skip.value if skip is not None else None,
        unsupported_reason=webinar.unsupported_reason,
        counts=WebinarCounts(
            **people,
            synced=synced,
            planned=planned,
            excluded=sum(emails.values()),
            participants_not_synced=sum(participants.values()),
            excluded_by_reason={**emails, **{f"participant_{k}": v for k, v in participants.items()}},
        ),
        last_sync_at=last_sync,
    )


def _encode_cursor(webinar: Webinar) -> str:
    raw = json.dumps([webinar.created_at.isoformat(), webinar.zoom_account_id, webinar.webinar_id])
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, str, str]:
    try:
        created, account, webinar_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return datetime.fromisoformat(created), str(account), str(webinar_id)
    except (ValueError, TypeError) as exc:
        raise HTTPException(422, detail=[{"loc": ["query", "cursor"], "msg": "invalid cursor"}]) from exc


@router.get("/portals/{portal_id}/webinars")
def list_webinars(
    portal_id: int,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: str | None = None,
) -> WebinarPage:
    accounts = portal_account_ids(session, portal_id)
    query = select(Webinar).where(col(Webinar.zoom_account_id).in_(accounts))
    if cursor:
        created, account, webinar_id = _decode_cursor(cursor)
        # Keyset pagination on (created_at, account, id) descending: stable under inserts.
        query = query.where(
            or_(
                col(Webinar.created_at) < created,
                and_(
                    col(Webinar.created_at) == created,
                    or_(
                        col(Webinar.zoom_account_id) < account,
                        and_(col(Webinar.zoom_account_id) == account, col(Webinar.webinar_id) < webinar_id),
                    ),
                ),
            )
        )
    rows = session.exec(
        query.order_by(
            col(Webinar.created_at).desc(),
            col(Webinar.zoom_account_id).desc(),
            col(Webinar.webinar_id).desc(),
        ).limit(limit + 1)
    ).all()
    page = list(rows[:limit])
    return WebinarPage(
        items=[_webinar_out(session, portal_id, w) for w in page],
        next_cursor=_encode_cursor(page[-1]) if len(rows) > limit else None,
    )


@router.get("/portals/{portal_id}/webinars/{webinar_id}", responses={404: {}})
def get_webinar(portal_id: int, webinar_id: str, session: SessionDep) -> WebinarOut:
    return _webinar_out(session, portal_id, find_webinar(session, portal_id, webinar_id))


@router.patch("/portals/{portal_id}/webinars/{webinar_id}", responses={404: {}, 422: {}})
def patch_webinar(portal_id: int, webinar_id: str, patch: WebinarPatch, session: SessionDep) -> WebinarOut:
    webinar = find_webinar(session, portal_id, webinar_id)
    webinar.sync_enabled = patch.sync_enabled
    session.add(webinar)
    # What was skipped while sync was off fills in now (and exclusions/audit follow the new switch).
    enqueue_replan(session, webinar.zoom_account_id, webinar.webinar_id)
    session.flush()
    return _webinar_out(session, portal_id, webinar)


@router.get("/portals/{portal_id}/webinars/{webinar_id}/audit-log", responses={404: {}})
def audit_log(
    portal_id: int,
    webinar_id: str,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    after_id: Annotated[int | None, Query(ge=0)] = None,
) -> list[AuditEntryOut]:
    webinar = find_webinar(session, portal_id, webinar_id)
    refresh_webinar_audit(session, webinar)  # the worker refreshes these lazily; never show stale counts
    session.flush()
    query = select(AuditEntry).where(
        AuditEntry.portal_id == portal_id,
        AuditEntry.zoom_account_id == webinar.zoom_account_id,
        AuditEntry.webinar_id == webinar.webinar_id,
    )
    if after_id is not None:
        query = query.where(col(AuditEntry.id) > after_id)
    rows = session.exec(query.order_by(col(AuditEntry.id)).limit(limit)).all()
    return [AuditEntryOut.model_validate(r, from_attributes=True) for r in rows]


@router.get("/portals/{portal_id}/webinars/{webinar_id}/excluded-emails", responses={404: {}})
def excluded_emails(portal_id: int, webinar_id: str, session: SessionDep) -> list[ExcludedEmailOut]:
    webinar = find_webinar(session, portal_id, webinar_id)
    rows = session.exec(
        select(ExcludedEmail)
        .where(
            ExcludedEmail.portal_id == portal_id,
            ExcludedEmail.zoom_account_id == webinar.zoom_account_id,
            ExcludedEmail.webinar_id == webinar.webinar_id,
        )
        .order_by(col(ExcludedEmail.reason), col(ExcludedEmail.person_key))
    ).all()
    return [ExcludedEmailOut.model_validate(r, from_attributes=True) for r in rows]
