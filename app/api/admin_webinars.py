"""Admin API: webinars, their sync state, audit log and excluded emails (S5, A1, A3)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.admin import webinars
from app.admin.webinar_summary import WebinarSummary, summarize_webinars
from app.api.deps import AdminAuth, AdminRoute, PortalId, ReadSessionDep, UnitOfWorkDep, WebinarId
from app.api.schemas import (
    AuditEntryOut,
    ExcludedEmailOut,
    WebinarCounts,
    WebinarOut,
    WebinarPage,
    WebinarPatch,
)
from app.pull.schedule import sync_job_out

router = APIRouter(prefix="/api/v1", tags=["admin"], dependencies=[AdminAuth], route_class=AdminRoute)

# audit_entry.id is an INTEGER (32-bit on PostgreSQL): a larger `after_id` cannot even be bound there
# ("integer out of range"), so it is a 422 naming the parameter, not a 500.
MAX_AUDIT_ID = 2**31 - 1


def webinar_out(summary: WebinarSummary) -> WebinarOut:
    webinar, people = summary.webinar, summary.people
    emails, participants = summary.excluded_emails, summary.participants_not_synced
    skip = summary.skip.value if summary.skip is not None else None
    return WebinarOut(
        last_sync_job=sync_job_out(summary.last_job) if summary.last_job is not None else None,
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
        sync_state=summary.state,
        sync_state_reason=summary.state_reason,
        skip_reason=skip,
        unsupported_reason=webinar.unsupported_reason,
        counts=WebinarCounts(
            registrants=people.registrants,
            approved=people.approved,
            pending=people.pending,
            cancelled=people.cancelled,
            denied=people.denied,
            attendees=people.attendees,
            synced=summary.synced,
            planned=summary.planned,
            excluded=sum(emails.values()),
            participants_not_synced=sum(participants.values()),
            excluded_by_reason={**emails, **{f"participant_{k}": v for k, v in participants.items()}},
        ),
        last_sync_at=summary.last_sync_at,
    )


@router.get("/portals/{portal_id}/webinars")
def list_webinars(
    portal_id: PortalId,
    session: ReadSessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[
        str | None,
        Query(max_length=webinars.MAX_CURSOR_LENGTH, description="`next_cursor` of the previous page"),
    ] = None,
) -> WebinarPage:
    page = webinars.list_webinars(session, portal_id, limit, cursor)
    summaries = summarize_webinars(session, portal_id, page.webinars)
    return WebinarPage(items=[webinar_out(s) for s in summaries], next_cursor=page.next_cursor)


@router.get("/portals/{portal_id}/webinars/{webinar_id}", responses={404: {}})
def get_webinar(portal_id: PortalId, webinar_id: WebinarId, session: ReadSessionDep) -> WebinarOut:
    webinar = webinars.find_webinar(session, portal_id, webinar_id)
    [summary] = summarize_webinars(session, portal_id, [webinar])
    return webinar_out(summary)


@router.patch("/portals/{portal_id}/webinars/{webinar_id}", responses={404: {}, 422: {}})
def patch_webinar(
    portal_id: PortalId, webinar_id: WebinarId, patch: WebinarPatch, uow: UnitOfWorkDep
) -> WebinarOut:
    webinar = webinars.set_webinar_sync(uow.session, portal_id, webinar_id, patch.sync_enabled)
    [summary] = summarize_webinars(uow.session, portal_id, [webinar])
    return webinar_out(summary)


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
    entries = webinars.audit_entries(session, portal_id, webinar_id, limit, after_id)
    return [AuditEntryOut.model_validate(r, from_attributes=True) for r in entries]


@router.get("/portals/{portal_id}/webinars/{webinar_id}/excluded-emails", responses={404: {}})
def excluded_emails(
    portal_id: PortalId, webinar_id: WebinarId, session: ReadSessionDep
) -> list[ExcludedEmailOut]:
    rows = webinars.excluded_emails(session, portal_id, webinar_id)
    return [ExcludedEmailOut.model_validate(r, from_attributes=True) for r in rows]
