"""Admin API: webinars, their sync state, audit log and excluded emails (S5, A1, A3)."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict
from sqlalchemy import and_, func, or_
from sqlmodel import Session, col, select

from app.api.admin_settings import portal_account_ids, read_portal_settings
from app.api.deps import AdminAuth, AdminRoute, PortalId, ReadSessionDep, SessionDep, WebinarId
from app.api.schemas import check_storable
from app.ingest.replan import enqueue_replan
from app.models import (
    AttendanceMark,
    AuditEntry,
    ExcludedEmail,
    InboxEvent,
    InboxState,
    OutboxOp,
    OutboxState,
    PortalSettings,
    Recording,
    Registration,
    Webinar,
)
from app.pull.schedule import latest_job, sync_job_out
from app.sync.audit import exclusion_counts, webinar_people_counts
from app.sync.inputs import webinar_skip_reason
from app.sync.op_kind import OpKind
from app.sync.planner import WebinarKey

router = APIRouter(prefix="/api/v1", tags=["admin"], dependencies=[AdminAuth], route_class=AdminRoute)

# audit_entry.id is an INTEGER (32-bit on PostgreSQL): a larger `after_id` cannot even be bound there
# ("integer out of range"), so it is a 422 naming the parameter, not a 500.
MAX_AUDIT_ID = 2**31 - 1


class SyncState(StrEnum):
    """What a person wants to know about a webinar's sync, in the order the checks apply."""

    OFF = "off"  # not synced: the settings (or an unsupported webinar) rule it out
    ERROR = "error"  # something of it failed for good (until a replay or Sync now)
    SYNCING = "syncing"  # work of it is pending: events to process or operations to deliver
    WAITING = "waiting"  # syncs, but no registrations, attendance or recordings received yet
    SYNCED = "synced"  # data received, nothing pending, nothing failed


class SyncErrorReason(StrEnum):
    EVENT_FAILED = "event_failed"  # a Zoom event of the webinar failed or can never be processed
    DELIVERY_FAILED = "delivery_failed"  # an operation for HubSpot failed after its last attempt


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
    sync_state: SyncState
    # `off`: why it does not sync (the skip reason); `error`: what failed (see SyncErrorReason).
    sync_state_reason: str | None
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


# Outbox kinds that belong to one webinar. Contact refreshes belong to an email (webinar_id NULL).
_WEBINAR_OP_KINDS = sorted(k.value for k in OpKind if k is not OpKind.CONTACT_REFRESH)
_INBOX_FAILED = (InboxState.FAILED.value, InboxState.DEAD.value)


@dataclass
class _Work:
    """A page of webinars' unfinished work and whether they have data, from batched queries."""

    pending: set[WebinarKey]
    event_failed: set[WebinarKey]
    delivery_failed: set[WebinarKey]
    with_data: set[WebinarKey]


def _load_work(session: Session, portal_id: int, webinars: Sequence[Webinar]) -> _Work:
    """A few GROUP BY queries for the whole page (not a query per webinar)."""
    keys = {(w.zoom_account_id, w.webinar_id) for w in webinars}
    accounts = sorted({a for a, _ in keys})
    ids = sorted({w for _, w in keys})
    work = _Work(set(), set(), set(), set())
    if not keys:
        return work
    outbox = session.exec(
        select(OutboxOp.zoom_account_id, OutboxOp.webinar_id, OutboxOp.state)
        .where(
            col(OutboxOp.state).in_([OutboxState.PENDING.value, OutboxState.FAILED.value]),
            OutboxOp.portal_id == portal_id,
            col(OutboxOp.kind).in_(_WEBINAR_OP_KINDS),
            col(OutboxOp.zoom_account_id).in_(accounts),
            col(OutboxOp.webinar_id).in_(ids),
        )
        .group_by(col(OutboxOp.zoom_account_id), col(OutboxOp.webinar_id), col(OutboxOp.state))
    ).all()
    for account, webinar_id, state in outbox:
        key = (account, str(webinar_id))
        (work.pending if state == OutboxState.PENDING.value else work.delivery_failed).add(key)
    # Events stored without an account id (rare) belong to the webinar with their webinar id.
    inbox = session.exec(
        select(InboxEvent.zoom_account_id, InboxEvent.webinar_id, InboxEvent.state)
        .where(
            col(InboxEvent.webinar_id).in_(ids),
            col(InboxEvent.state).in_([InboxState.PENDING.value, *_INBOX_FAILED]),
            or_(col(InboxEvent.zoom_account_id).in_(accounts), col(InboxEvent.zoom_account_id).is_(None)),
        )
        .group_by(col(InboxEvent.zoom_account_id), col(InboxEvent.webinar_id), col(InboxEvent.state))
    ).all()
    for event_account, event_webinar, event_state in inbox:
        matched = {k for k in keys if k[1] == event_webinar and event_account in (None, k[0])}
        (work.pending if event_state == InboxState.PENDING.value else work.event_failed).update(matched)
    # Data received: registrations, attendance or recordings (what people-level operations come from).
    for model in (Registration, AttendanceMark, Recording):
        found = session.exec(
            select(model.zoom_account_id, model.webinar_id)
            .where(col(model.zoom_account_id).in_(accounts), col(model.webinar_id).in_(ids))
            .distinct()
        ).all()
        work.with_data |= {(a, w) for a, w in found} & keys
    return work


def sync_state(skip: str | None, key: WebinarKey, work: _Work) -> tuple[SyncState, str | None]:
    """(state, reason): `off` names the skip reason, `error` what failed."""
    if skip is not None:
        return SyncState.OFF, skip
    if key in work.event_failed:
        return SyncState.ERROR, SyncErrorReason.EVENT_FAILED.value
    if key in work.delivery_failed:
        return SyncState.ERROR, SyncErrorReason.DELIVERY_FAILED.value
    if key in work.pending:
        return SyncState.SYNCING, None
    if key not in work.with_data:
        return SyncState.WAITING, None
    return SyncState.SYNCED, None


def _webinar_outs(session: Session, portal_id: int, webinars: Sequence[Webinar]) -> list[WebinarOut]:
    settings = read_portal_settings(session, portal_id)
    work = _load_work(session, portal_id, webinars)
    return [_webinar_out(session, portal_id, settings, work, w) for w in webinars]


def _webinar_out(
    session: Session, portal_id: int, settings: PortalSettings, work: _Work, webinar: Webinar
) -> WebinarOut:
    skip = webinar_skip_reason(session, settings, webinar)
    state, reason = sync_state(
        skip.value if skip is not None else None, (webinar.zoom_account_id, webinar.webinar_id), work
    )
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
        sync_state=state.value,
        sync_state_reason=reason,
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


# A cursor this service wrote is about 200 characters; a longer one is not ours (and its JSON could
# nest deep enough to exhaust the recursion limit).
MAX_CURSOR_LENGTH = 512


def _decode_cursor(cursor: str) -> tuple[datetime, str, str]:
    """The keyset a `next_cursor` encodes, or 422 naming `cursor` for anything this service did
    not write (the parts reach the database: NUL, a naive or overflowing time would fail there)."""
    try:
        created, account, webinar_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        if not all(isinstance(part, str) for part in (created, account, webinar_id)):
            raise TypeError("cursor parts are strings")
        if len(account) > 64 or len(webinar_id) > 32:
            raise ValueError("cursor ids too long")
        check_storable(account)
        check_storable(webinar_id)
        at = datetime.fromisoformat(created)
        if at.tzinfo is None:
            raise ValueError("cursor time without a time zone")
        return at.astimezone(UTC), account, webinar_id
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise HTTPException(422, detail=[{"loc": ["query", "cursor"], "msg": "invalid cursor"}]) from exc


@router.get("/portals/{portal_id}/webinars")
def list_webinars(
    portal_id: PortalId,
    session: ReadSessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[
        str | None, Query(max_length=MAX_CURSOR_LENGTH, description="`next_cursor` of the previous page")
    ] = None,
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
        items=_webinar_outs(session, portal_id, page),
        next_cursor=_encode_cursor(page[-1]) if len(rows) > limit else None,
    )


@router.get("/portals/{portal_id}/webinars/{webinar_id}", responses={404: {}})
def get_webinar(portal_id: PortalId, webinar_id: WebinarId, session: ReadSessionDep) -> WebinarOut:
    [out] = _webinar_outs(session, portal_id, [find_webinar(session, portal_id, webinar_id)])
    return out


@router.patch("/portals/{portal_id}/webinars/{webinar_id}", responses={404: {}, 422: {}})
def patch_webinar(
    portal_id: PortalId, webinar_id: WebinarId, patch: WebinarPatch, session: SessionDep
) -> WebinarOut:
    webinar = find_webinar(session, portal_id, webinar_id)
    webinar.sync_enabled = patch.sync_enabled
    session.add(webinar)
    # What was skipped while sync was off fills in now (and exclusions/audit follow the new switch).
    enqueue_replan(session, webinar.zoom_account_id, webinar.webinar_id)
    session.flush()
    [out] = _webinar_outs(session, portal_id, [webinar])
    return out


@router.get("/portals/{portal_id}/webinars/{webinar_id}/audit-log", responses={404: {}, 422: {}})
def audit_log(
    portal_id: PortalId,
    webinar_id: WebinarId,
    session: ReadSessionDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    after_id: Annotated[
        int | None,
        Query(
            ge=0,
            le=MAX_AUDIT_ID,
            description="the next page: the entries after this one (the last seen); 0: all",
        ),
    ] = None,
) -> list[AuditEntryOut]:
    """Oldest first by `at`, then by id. An aggregated entry (one per cause, with counts) has the
    time its content last changed as `at`; the worker keeps these current, this GET only reads."""
    webinar = find_webinar(session, portal_id, webinar_id)
    query = select(AuditEntry).where(
        AuditEntry.portal_id == portal_id,
        AuditEntry.zoom_account_id == webinar.zoom_account_id,
        AuditEntry.webinar_id == webinar.webinar_id,
    )
    if after_id:
        anchor = session.exec(query.where(AuditEntry.id == after_id)).first()
        if anchor is None:
            raise HTTPException(
                422,
                detail=[{"loc": ["query", "after_id"], "msg": f"no audit entry {after_id} in this log"}],
            )
        query = query.where(
            or_(
                col(AuditEntry.at) > anchor.at,
                and_(col(AuditEntry.at) == anchor.at, col(AuditEntry.id) > after_id),
            )
        )
    rows = session.exec(query.order_by(col(AuditEntry.at), col(AuditEntry.id)).limit(limit)).all()
    return [AuditEntryOut.model_validate(r, from_attributes=True) for r in rows]


@router.get("/portals/{portal_id}/webinars/{webinar_id}/excluded-emails", responses={404: {}})
def excluded_emails(
    portal_id: PortalId, webinar_id: WebinarId, session: ReadSessionDep
) -> list[ExcludedEmailOut]:
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
