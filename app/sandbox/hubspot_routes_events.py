"""The fake HubSpot's event routes: timeline events v3 with their templates, and marketing events v3
with attendance (behind the request gate)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from app.sandbox.gate import bearer
from app.sandbox.hubspot_bodies import (
    AttendanceInput,
    Batch,
    CompleteBody,
    MarketingEventBody,
    TemplateCreate,
    TimelineEventInput,
)
from app.sandbox.hubspot_common import now_utc
from app.sandbox.hubspot_http import PortalDep, SandboxDep, batch_response

# --------------------------------------------------------------------------------------------------
# Timeline events v3
# --------------------------------------------------------------------------------------------------

timeline = APIRouter(tags=["timeline"])


@timeline.post("/integrators/timeline/v3/events/batch/create")
async def create_timeline_events(
    body: Batch[TimelineEventInput], sandbox: SandboxDep, portal: PortalDep
) -> JSONResponse:
    started = now_utc()
    async with sandbox.lock:
        outcome = portal.create_timeline_events(body.inputs, sandbox.templates)
    return batch_response(outcome, started, ok=201)


@timeline.get("/integrators/timeline/v3/events/{template_id}/{event_id}")
async def get_timeline_event(
    template_id: str, event_id: str, sandbox: SandboxDep, portal: PortalDep
) -> dict[str, Any]:
    async with sandbox.lock:
        return portal.get_timeline_event(template_id, event_id)


@timeline.get("/integrators/timeline/v3/{app_id}/event-templates")
async def list_templates(app_id: str, sandbox: SandboxDep, _: PortalDep) -> dict[str, Any]:
    async with sandbox.lock:
        return sandbox.list_templates(app_id)


@timeline.post("/integrators/timeline/v3/{app_id}/event-templates", status_code=201)
async def create_template(
    app_id: str, body: TemplateCreate, sandbox: SandboxDep, _: PortalDep
) -> dict[str, Any]:
    async with sandbox.lock:
        return sandbox.create_template(app_id, body)


@timeline.get("/integrators/timeline/v3/{app_id}/event-templates/{template_id}")
async def get_template(app_id: str, template_id: str, sandbox: SandboxDep, _: PortalDep) -> dict[str, Any]:
    async with sandbox.lock:
        return sandbox.get_template(app_id, template_id)


# --------------------------------------------------------------------------------------------------
# Marketing events v3
# --------------------------------------------------------------------------------------------------

marketing = APIRouter(prefix="/marketing/v3/marketing-events", tags=["marketing events"])
AccountParam = Annotated[str | None, Query(alias="externalAccountId")]


async def _app_dep(request: Request, sandbox: SandboxDep) -> str:
    """The app of the request's token: external-id routes see only that app's events."""
    return sandbox.app_for_token(bearer(request.headers.get("authorization")))


AppDep = Annotated[str, Depends(_app_dep)]


@marketing.post("/events")
async def create_marketing_event(
    body: MarketingEventBody, sandbox: SandboxDep, portal: PortalDep, app_id: AppDep
) -> dict[str, Any]:
    async with sandbox.lock:
        return portal.create_marketing_event(body, app_id=app_id)


@marketing.put("/events/{external_event_id}")
async def upsert_marketing_event(
    external_event_id: str, body: MarketingEventBody, sandbox: SandboxDep, portal: PortalDep, app_id: AppDep
) -> dict[str, Any]:
    async with sandbox.lock:
        return portal.upsert_marketing_event(external_event_id, body, app_id=app_id)


@marketing.patch("/events/{external_event_id}")
async def patch_marketing_event(
    external_event_id: str,
    body: MarketingEventBody,
    sandbox: SandboxDep,
    portal: PortalDep,
    app_id: AppDep,
    account_id: AccountParam = None,
) -> dict[str, Any]:
    async with sandbox.lock:
        return portal.patch_marketing_event(external_event_id, account_id, body, app_id=app_id)


@marketing.get("/events/{external_event_id}")
async def get_marketing_event(
    external_event_id: str,
    sandbox: SandboxDep,
    portal: PortalDep,
    app_id: AppDep,
    account_id: AccountParam = None,
) -> dict[str, Any]:
    async with sandbox.lock:
        return portal.get_marketing_event(external_event_id, account_id, app_id=app_id)


@marketing.post("/events/{external_event_id}/complete")
async def complete_marketing_event(
    external_event_id: str,
    body: CompleteBody,
    sandbox: SandboxDep,
    portal: PortalDep,
    app_id: AppDep,
    account_id: AccountParam = None,
) -> dict[str, Any]:
    async with sandbox.lock:
        return portal.complete_marketing_event(external_event_id, account_id, body, app_id=app_id)


@marketing.post("/attendance/{external_event_id}/{state}/create")
async def record_attendance(
    external_event_id: str,
    state: str,
    body: Batch[AttendanceInput],
    sandbox: SandboxDep,
    portal: PortalDep,
    app_id: AppDep,
    account_id: AccountParam = None,
) -> dict[str, Any]:
    started = now_utc()
    async with sandbox.lock:
        outcome = portal.record_attendance(external_event_id, state, account_id, body.inputs, app_id=app_id)
    return outcome.body(started)  # 200 even with per-input errors, like HubSpot


# ---- by objectId (every app of the portal) and the identifiers search (every app's events) --------


@marketing.get("/{external_event_id}/identifiers")
async def marketing_event_identifiers(
    external_event_id: str, sandbox: SandboxDep, portal: PortalDep
) -> dict[str, Any]:
    async with sandbox.lock:
        return portal.marketing_event_identifiers(external_event_id, lag_s=sandbox.faults.search_lag_s)


@marketing.get("/{object_id}")
async def get_marketing_event_by_object_id(
    object_id: str, sandbox: SandboxDep, portal: PortalDep
) -> dict[str, Any]:
    async with sandbox.lock:
        return portal.get_marketing_event_by_object_id(object_id)


@marketing.patch("/{object_id}")
async def patch_marketing_event_by_object_id(
    object_id: str, body: MarketingEventBody, sandbox: SandboxDep, portal: PortalDep
) -> dict[str, Any]:
    async with sandbox.lock:
        return portal.patch_marketing_event_by_object_id(object_id, body)


@marketing.delete("/{object_id}", status_code=204)
async def delete_marketing_event_by_object_id(object_id: str, sandbox: SandboxDep, portal: PortalDep) -> None:
    async with sandbox.lock:
        portal.delete_marketing_event_by_object_id(object_id)


@marketing.post("/{object_id}/attendance/{state}/create")
async def record_attendance_by_object_id(
    object_id: str,
    state: str,
    body: Batch[AttendanceInput],
    sandbox: SandboxDep,
    portal: PortalDep,
) -> dict[str, Any]:
    started = now_utc()
    async with sandbox.lock:
        outcome = portal.record_attendance_by_object_id(object_id, state, body.inputs)
    return outcome.body(started)
