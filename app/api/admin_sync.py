"""Admin API: Sync now (A2) and the jobs that pull from Zoom (Sync now, reconciliation, backfill)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.admin import sync_jobs
from app.api.deps import (
    AdminAuth,
    AdminRoute,
    JobId,
    PortalId,
    ReadSessionDep,
    StateDep,
    UnitOfWork,
    UnitOfWorkDep,
    WebinarId,
)
from app.api.schemas import BackfillIn, SyncJobOut, SyncStarted
from app.models import SyncJob
from app.pull.schedule import sync_job_out
from app.state import AppState

router = APIRouter(prefix="/api/v1", tags=["admin"], dependencies=[AdminAuth], route_class=AdminRoute)


def _started(job: SyncJob, created: bool, uow: UnitOfWork, state: AppState) -> JSONResponse:
    """202 with the job; the job loop is woken once the job is committed (it polls otherwise)."""
    if state.wake_jobs is not None:
        uow.after_commit(state.wake_jobs)
    return JSONResponse(
        status_code=202,
        content=SyncStarted(**sync_job_out(job), created=created).model_dump(mode="json"),
    )


@router.post(
    "/portals/{portal_id}/webinars/{webinar_id}/sync",
    status_code=202,
    response_model=SyncStarted,
    responses={404: {"description": "unknown portal or webinar"}, 409: {"description": "no Zoom API access"}},
    summary="Sync now: pull the webinar from Zoom and fill in what is missing",
)
def sync_now(portal_id: PortalId, webinar_id: WebinarId, uow: UnitOfWorkDep, state: StateDep) -> Any:
    job, created = sync_jobs.request_sync(uow.session, state.settings, portal_id, webinar_id)
    return _started(job, created, uow, state)


@router.post(
    "/portals/{portal_id}/backfill",
    status_code=202,
    response_model=SyncStarted,
    responses={404: {}, 409: {"description": "no Zoom API access"}, 422: {}},
    summary="Backfill: pull every webinar of the connected Zoom account in a date range",
)
def start_backfill(portal_id: PortalId, body: BackfillIn, uow: UnitOfWorkDep, state: StateDep) -> Any:
    job, resumed = sync_jobs.start_backfill(
        uow.session, state.settings, portal_id, body.start, body.end, body.users
    )
    return _started(job, not resumed, uow, state)


@router.get("/portals/{portal_id}/sync-jobs/{job_id}", response_model=SyncJobOut, responses={404: {}})
def get_sync_job(portal_id: PortalId, job_id: JobId, session: ReadSessionDep) -> Any:
    return sync_job_out(sync_jobs.find_sync_job(session, portal_id, job_id))
