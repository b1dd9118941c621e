"""The fake HubSpot's routes for activities any account can receive: 2026-03 app events, notes and
the contact's note associations (behind the request gate), and their control switches under
``/_sandbox/activities`` (on the same router; the gate never sees ``/_sandbox/`` paths)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.sandbox.gate import bearer
from app.sandbox.hubspot_activities import (
    ActivitySettingsUpdate,
    AppEventBatch,
    AppEventInput,
    NoteCreate,
    NotesBatchRead,
)
from app.sandbox.hubspot_common import SandboxError, now_utc
from app.sandbox.hubspot_http import PortalDep, SandboxDep, batch_response
from app.sandbox.hubspot_state import HubSpotSandbox
from app.sandbox.sandbox_app import CONTROL_PREFIX

app_events = APIRouter(tags=["app events"])


def _static(sandbox: HubSpotSandbox, request: Request) -> bool:
    """A token from the static map that no test marked as an OAuth install's (app events refuse it);
    tokens the sandbox's OAuth server issues are not in that map."""
    token = bearer(request.headers.get("authorization")) or ""
    return token in sandbox.tokens and token not in sandbox.activities.oauth_tokens


@app_events.post("/integrators/timeline/2026-03/events/batch")
async def create_app_events(
    body: AppEventBatch, request: Request, sandbox: SandboxDep, portal: PortalDep
) -> JSONResponse:
    started = now_utc()
    async with sandbox.lock:
        outcome = portal.create_app_events(
            body.inputs, sandbox.activities, static_token=_static(sandbox, request)
        )
    return batch_response(outcome, started)


@app_events.post("/integrators/timeline/2026-03/events")
async def create_app_event(
    body: AppEventInput, request: Request, sandbox: SandboxDep, portal: PortalDep
) -> JSONResponse:
    async with sandbox.lock:
        outcome = portal.create_app_events([body], sandbox.activities, static_token=_static(sandbox, request))
    if outcome.errors:
        error = outcome.errors[0]
        raise SandboxError(404, str(error.get("category")), str(error.get("message")))
    return JSONResponse(outcome.results[0], status_code=200)


notes = APIRouter(tags=["notes"])


@notes.post("/crm/v3/objects/notes", status_code=201)
async def create_note(body: NoteCreate, sandbox: SandboxDep, portal: PortalDep) -> dict[str, Any]:
    async with sandbox.lock:
        return portal.create_note(body)


@notes.post("/crm/v3/objects/notes/batch/read")
async def read_notes(body: NotesBatchRead, sandbox: SandboxDep, portal: PortalDep) -> JSONResponse:
    started = now_utc()
    async with sandbox.lock:
        outcome = portal.read_notes(body)
    return batch_response(outcome, started)


@notes.get("/crm/v3/objects/notes/{note_id}")
async def get_note(note_id: str, sandbox: SandboxDep, portal: PortalDep) -> dict[str, Any]:
    async with sandbox.lock:
        return portal.get_note(note_id)


@notes.get("/crm/v4/objects/contacts/{contact_id}/associations/notes")
async def contact_notes(
    contact_id: str, sandbox: SandboxDep, portal: PortalDep, limit: int = 500, after: str | None = None
) -> dict[str, Any]:
    async with sandbox.lock:
        return portal.contact_note_associations(contact_id, limit=limit, after=after)


@app_events.get(f"{CONTROL_PREFIX}/activities", tags=["sandbox control"])
async def get_activity_settings(sandbox: SandboxDep) -> dict[str, Any]:
    return sandbox.activities.to_json()


@app_events.post(f"{CONTROL_PREFIX}/activities", tags=["sandbox control"])
async def set_activity_settings(body: ActivitySettingsUpdate, sandbox: SandboxDep) -> dict[str, Any]:
    """Approve app event types, mark tokens as OAuth installs', close classic templates to the app."""
    async with sandbox.lock:
        sandbox.activities.update(body)
        return sandbox.activities.to_json()
