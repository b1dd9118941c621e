"""The fake HubSpot's OAuth routes (state in :mod:`app.sandbox.hubspot_oauth`) and their control API.

``GET /oauth/authorize`` consents at once and redirects back with a code (for ``?portal=`` or the
control API's ``install_portal``, else the default portal); ``POST /oauth/2026-03/token`` and
``/oauth/v1/token`` take form bodies (``authorization_code`` and ``refresh_token`` grants);
``GET /oauth/v1/access-tokens/{token}`` tells a token's portal. These routes take no bearer token and
are not behind the API gate. Control: ``GET /_sandbox/oauth``, ``POST /_sandbox/oauth/settings``,
``POST /_sandbox/oauth/uninstall``, ``POST /_sandbox/oauth/advance``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from app.sandbox.hubspot_common import error_body
from app.sandbox.hubspot_http import SandboxDep
from app.sandbox.hubspot_oauth import OAuthRefusal
from app.sandbox.hubspot_state import HubSpotSandbox
from app.sandbox.sandbox_app import CONTROL_PREFIX

OAUTH_PREFIX = "/oauth/"

oauth = APIRouter(tags=["oauth"])
oauth_control = APIRouter(prefix=f"{CONTROL_PREFIX}/oauth", tags=["sandbox control"])


def _refusal(refusal: OAuthRefusal) -> JSONResponse:
    return JSONResponse(refusal.body(), status_code=refusal.status_code)


@oauth.get("/oauth/authorize", status_code=302)
async def authorize(
    sandbox: SandboxDep,
    client_id: str,
    redirect_uri: str,
    scope: str,
    state: str | None = None,
    optional_scope: str | None = None,
    portal: int | None = None,
) -> Response:
    async with sandbox.lock:
        portal_id = portal or sandbox.oauth.settings.install_portal or sandbox.default_portal_id
        try:
            code = sandbox.oauth.authorize(client_id, redirect_uri, scope, portal_id)
        except OAuthRefusal as refusal:
            return _refusal(refusal)
        sandbox.ensure_portal(portal_id)
    query = {"code": code, **({"state": state} if state is not None else {})}
    separator = "&" if "?" in redirect_uri else "?"
    return RedirectResponse(f"{redirect_uri}{separator}{urlencode(query)}", status_code=302)


async def _token(request: Request, sandbox: HubSpotSandbox, route: str) -> Response:
    # Parsed here rather than with request.form(): that needs python-multipart, not a dependency.
    form = {
        key: values[0] for key, values in parse_qs((await request.body()).decode("utf-8", "replace")).items()
    }
    async with sandbox.lock:
        if sandbox.oauth.settings.token_route_down:
            return JSONResponse(error_body("SERVICE_UNAVAILABLE", "The sandbox is down."), status_code=503)
        try:
            return JSONResponse(sandbox.oauth.token(form, route))
        except OAuthRefusal as refusal:
            return _refusal(refusal)


@oauth.post("/oauth/2026-03/token")
async def dated_token(request: Request, sandbox: SandboxDep) -> Response:
    if sandbox.oauth.settings.dated_token_route_gone:
        return JSONResponse(error_body("OBJECT_NOT_FOUND", "Not found."), status_code=404)
    return await _token(request, sandbox, "/oauth/2026-03/token")


@oauth.post("/oauth/v1/token")
async def legacy_token(request: Request, sandbox: SandboxDep) -> Response:
    return await _token(request, sandbox, "/oauth/v1/token")


@oauth.get("/oauth/v1/access-tokens/{token}")
async def access_token_info(token: str, sandbox: SandboxDep) -> Response:
    async with sandbox.lock:
        info = sandbox.oauth.info(token)
    if info is None:
        return JSONResponse(error_body("NOT_FOUND", "The token is unknown or expired."), status_code=404)
    return JSONResponse(info)


# --- control ---------------------------------------------------------------------------------------


class OAuthSettingsUpdate(BaseModel):
    install_portal: int | None = Field(default=None, ge=1)
    access_ttl_s: float | None = Field(default=None, gt=0)
    dated_token_route_gone: bool | None = None
    token_route_down: bool | None = None
    omit_hub_id: bool | None = None


class Uninstall(BaseModel):
    portal: int = Field(ge=1)


class Advance(BaseModel):
    seconds: float = Field(gt=0)


@oauth_control.get("")
async def oauth_state(sandbox: SandboxDep) -> dict[str, Any]:
    async with sandbox.lock:
        return sandbox.oauth.snapshot()


@oauth_control.post("/settings")
async def oauth_settings(body: OAuthSettingsUpdate, sandbox: SandboxDep) -> dict[str, Any]:
    async with sandbox.lock:
        return sandbox.oauth.update(body.model_dump(exclude_none=True))


@oauth_control.post("/uninstall")
async def uninstall(body: Uninstall, sandbox: SandboxDep) -> dict[str, Any]:
    async with sandbox.lock:
        return sandbox.oauth.uninstall(body.portal)


@oauth_control.post("/advance")
async def advance(body: Advance, sandbox: SandboxDep) -> dict[str, Any]:
    async with sandbox.lock:
        sandbox.oauth.advance(body.seconds)
        return sandbox.oauth.snapshot()
