"""Liveness, readiness, metrics and queue status."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from app.api.deps import AdminAuth, AdminRoute, ReadSessionDep, StateDep
from app.api.schemas import StatusOut
from app.metrics import REGISTRY
from app.migrations import schema_problem
from app.queue_status import portals_status, status_counts

router = APIRouter(tags=["health"], route_class=AdminRoute)


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", responses={503: {}})
def readyz(state: StateDep) -> JSONResponse:
    try:
        with state.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        problem = schema_problem(state.engine)
    except Exception as exc:  # any database failure means "not ready", never a 500
        return JSONResponse(
            {"status": "unavailable", "detail": f"database unreachable: {type(exc).__name__}"}, 503
        )
    if problem is not None:
        return JSONResponse({"status": "unavailable", "detail": problem}, 503)
    return JSONResponse({"status": "ready"})


@router.get("/metrics")
def metrics() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


@router.get("/api/v1/status", dependencies=[AdminAuth], tags=["admin"])
def status(session: ReadSessionDep, state: StateDep) -> StatusOut:
    counts = status_counts(session)
    counts["portals"] = portals_status(session, state.settings.hubspot_portal_id)
    # Workflow-action answers already sent and still being recorded in this process.
    actions = state.action_service
    recording = actions.recording_now() if actions is not None else 0
    if recording:
        counts["pending"] = int(counts["pending"]) + recording  # type: ignore[call-overload]
        counts["actions"] = {**counts["actions"], "recording": recording}  # type: ignore[dict-item]
    return StatusOut.model_validate(counts)
