"""Admin API: Sync now (A2) and the jobs that pull from Zoom (Sync now, reconciliation, backfill)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.api.admin_settings import portal_account_ids
from app.api.admin_webinars import find_webinar
from app.api.deps import (
    AdminAuth,
    AdminRoute,
    JobId,
    PortalId,
    ReadSessionDep,
    StateDep,
    UnitOfWorkDep,
    WebinarId,
)
from app.api.schemas import zoom_user_refs
from app.models import SyncJob
from app.pull.backfill import open_backfill_in, parse_range
from app.pull.schedule import request_sync_now, sync_job_out

router = APIRouter(prefix="/api/v1", tags=["admin"], dependencies=[AdminAuth], route_class=AdminRoute)


class SyncJobOut(BaseModel):
    job_id: str
    kind: str
    state: str  # queued | running | done | failed
    webinar_id: str | None
    counts: dict[str, Any]
    error: str | None
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    run_after: datetime


class SyncStarted(SyncJobOut):
    created: bool  # false: a Sync now of this webinar was already queued or running; this is it


@router.post(
    "/portals/{portal_id}/webinars/{webinar_id}/sync",
    status_code=202,
    response_model=SyncStarted,
    responses={404: {"description": "unknown portal or webinar"}, 409: {"description": "no Zoom API access"}},
    summary="Sync now: pull the webinar from Zoom and fill in what is missing",
)
def sync_now(portal_id: PortalId, webinar_id: WebinarId, uow: UnitOfWorkDep, state: StateDep) -> Any:
    session = uow.session
    webinar = find_webinar(session, portal_id, webinar_id)
    if not state.settings.has_zoom_api or state.settings.zoom_account_id != webinar.zoom_account_id:
        raise HTTPException(
            409,
            detail=(
                "Sync now needs Zoom API access: set ZOOM_ACCOUNT_ID, ZOOM_CLIENT_ID and ZOOM_CLIENT_SECRET"
            ),
        )
    job, created = request_sync_now(session, portal_id, webinar.zoom_account_id, webinar.webinar_id)
    # Woken once the job is committed (AdminRoute commits before the answer is sent).
    if state.wake_jobs is not None:
        uow.after_commit(state.wake_jobs)
    return JSONResponse(
        status_code=202,
        content=SyncStarted(**sync_job_out(job), created=created).model_dump(mode="json"),
    )


class BackfillIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    start: date = Field(alias="from", description="first day (webinars starting that day or later)")
    end: date = Field(alias="to", description="last day, inclusive")
    users: list[str] = Field(default_factory=list, description="Zoom user ids or emails; empty: all users")

    @field_validator("users")
    @classmethod
    def _check_users(cls, value: list[str]) -> list[str]:
        return zoom_user_refs(value)


@router.post(
    "/portals/{portal_id}/backfill",
    status_code=202,
    response_model=SyncStarted,
    responses={404: {}, 409: {"description": "no Zoom API access"}, 422: {}},
    summary="Backfill: pull every webinar of the connected Zoom account in a date range",
)
def start_backfill(portal_id: PortalId, body: BackfillIn, uow: UnitOfWorkDep, state: StateDep) -> Any:
    session = uow.session
    accounts = portal_account_ids(session, portal_id)
    account = state.settings.zoom_account_id
    if account is None or not state.settings.has_zoom_api or account not in accounts:
        raise HTTPException(409, detail="backfill needs Zoom API access for this portal's Zoom account")
    try:
        period = parse_range(body.start.isoformat(), body.end.isoformat())
    except ValueError as exc:
        raise HTTPException(
            422, detail=[{"loc": ["body", "to"], "msg": str(exc), "type": "value_error"}]
        ) from None
    job, resumed = open_backfill_in(
        session, portal_id, account, period, users=body.users or None, queued=True
    )
    # Woken once the job is committed (AdminRoute commits before the answer is sent).
    if state.wake_jobs is not None:
        uow.after_commit(state.wake_jobs)
    return JSONResponse(
        status_code=202,
        content=SyncStarted(**sync_job_out(job), created=not resumed).model_dump(mode="json"),
    )


@router.get("/portals/{portal_id}/sync-jobs/{job_id}", response_model=SyncJobOut, responses={404: {}})
def get_sync_job(portal_id: PortalId, job_id: JobId, session: ReadSessionDep) -> Any:
    portal_account_ids(session, portal_id)
    job = session.get(SyncJob, job_id)
    if job is None or job.portal_id != portal_id:
        raise HTTPException(404, detail=f"unknown sync job {job_id} for portal {portal_id}")
    return sync_job_out(job)
