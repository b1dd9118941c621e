"""The fake HubSpot's account-level routes: settings users and workflow actions (definitions and
callback completions), behind the request gate."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from app.sandbox.hubspot_bodies import Batch, CallbackBody, CallbackInput
from app.sandbox.hubspot_common import SandboxError
from app.sandbox.hubspot_http import PortalDep, SandboxDep
from app.sandbox.hubspot_state import HubSpotSandbox

# --------------------------------------------------------------------------------------------------
# Settings users and workflow-action callbacks
# --------------------------------------------------------------------------------------------------

users = APIRouter(tags=["users"])


@users.get("/settings/v3/users/")
@users.get("/settings/v3/users", include_in_schema=False)
async def list_users(
    sandbox: SandboxDep, portal: PortalDep, limit: int = 100, after: str | None = None
) -> dict[str, Any]:
    async with sandbox.lock:
        return portal.list_users(limit=limit, after=after)


automation = APIRouter(prefix="/automation/v4/actions", tags=["automation"])
# The 2026-03 callback routes take the same bodies as the legacy v4 ones.
dated_callbacks = APIRouter(prefix="/automation/actions/callbacks/2026-03", tags=["automation"])


@automation.post("/callbacks/complete", status_code=204)
async def complete_callbacks(body: Batch[CallbackInput], sandbox: SandboxDep, portal: PortalDep) -> Response:
    async with sandbox.lock:
        _legacy_callbacks_route(sandbox)
        portal.complete_callbacks(body.inputs)
    return Response(status_code=204)


@automation.post("/callbacks/{callback_id}/complete", status_code=204)
async def complete_callback(
    callback_id: str, body: CallbackBody, sandbox: SandboxDep, portal: PortalDep
) -> Response:
    async with sandbox.lock:
        _legacy_callbacks_route(sandbox)
        portal.complete_callback(callback_id, body)
    return Response(status_code=204)


@dated_callbacks.post("/complete", status_code=204)
async def complete_callbacks_dated(
    body: Batch[CallbackInput], sandbox: SandboxDep, portal: PortalDep
) -> Response:
    async with sandbox.lock:
        portal.complete_callbacks(body.inputs)
    return Response(status_code=204)


@dated_callbacks.post("/{callback_id}/complete", status_code=204)
async def complete_callback_dated(
    callback_id: str, body: CallbackBody, sandbox: SandboxDep, portal: PortalDep
) -> Response:
    async with sandbox.lock:
        portal.complete_callback(callback_id, body)
    return Response(status_code=204)


def _legacy_callbacks_route(sandbox: HubSpotSandbox) -> None:
    if sandbox.faults.legacy_callbacks_gone:
        raise SandboxError(404, "NOT_FOUND", "this route is not served for this app")


@automation.get("/{app_id}")
async def list_action_definitions(app_id: str, sandbox: SandboxDep, _: PortalDep) -> dict[str, Any]:
    async with sandbox.lock:
        return sandbox.list_action_definitions(app_id)


@automation.post("/{app_id}", status_code=201)
async def create_action_definition(
    app_id: str, body: dict[str, Any], sandbox: SandboxDep, _: PortalDep
) -> dict[str, Any]:
    async with sandbox.lock:
        return sandbox.create_action_definition(app_id, body)


@automation.patch("/{app_id}/{definition_id}")
async def update_action_definition(
    app_id: str, definition_id: str, body: dict[str, Any], sandbox: SandboxDep, _: PortalDep
) -> dict[str, Any]:
    async with sandbox.lock:
        return sandbox.update_action_definition(app_id, definition_id, body)
