"""HubSpot's OAuth install (CONTRACT.md §7): `GET /oauth/hubspot/install` and its callback.

The install link carries a signed, expiring, single-use `state`; the callback refuses any other
(400, nothing stored), trades the code for tokens, learns the portal, stores the tokens encrypted,
makes sure the portal can sync (settings row, the env Zoom account's connection), runs HubSpot's
set-up best-effort and wakes the worker so work parked while the portal waited for a re-install goes
at once. No token ever appears in a page, a log line or an error.
"""

from __future__ import annotations

import html
import logging
from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from app.api.deps import StateDep
from app.api.oauth_state import new_nonce, sign_state, verify_state
from app.config import Settings
from app.db import utcnow
from app.delivery.hubspot_gateway import HubSpotGateway
from app.delivery.hubspot_install import (
    InstallRefused,
    complete_install,
    consume_state_nonce,
    install_url,
    issue_state_nonce,
)
from app.state import AppState

log = logging.getLogger(__name__)

router = APIRouter(tags=["hubspot oauth"])

CALLBACK_PATH = "/oauth/hubspot/callback"
# How long the customer has between opening the install link and HubSpot calling back.
STATE_TTL = timedelta(minutes=15)


def redirect_uri(settings: Settings) -> str:
    return settings.public_base_url + CALLBACK_PATH


def _missing_config(settings: Settings) -> list[str]:
    secret = settings.hubspot_client_secret
    key = settings.app_secret_key
    missing = []
    if not settings.hubspot_client_id:
        missing.append("HUBSPOT_CLIENT_ID")
    if secret is None or not secret.get_secret_value():
        missing.append("HUBSPOT_CLIENT_SECRET")
    if key is None or not key.get_secret_value():
        missing.append("APP_SECRET_KEY")
    return missing


def _disabled(missing: list[str]) -> JSONResponse:
    return JSONResponse(
        {"detail": f"HubSpot OAuth install is disabled: {', '.join(missing)} not set"}, status_code=503
    )


def _page(title: str, lines: list[str], status_code: int = 200) -> HTMLResponse:
    """A small page; everything shown is escaped (HubSpot's error text comes from the query)."""
    body = "".join(f"<p>{html.escape(line)}</p>" for line in lines)
    document = (
        '<!doctype html><html><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head><body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(document, status_code=status_code, headers={"Cache-Control": "no-store"})


def _gateway(request: Request) -> HubSpotGateway | None:
    gateway = getattr(request.app.state, "hubspot_gateway", None)
    return gateway if isinstance(gateway, HubSpotGateway) else None


def _secret_key(state: AppState) -> str:
    key = state.settings.app_secret_key
    return key.get_secret_value() if key is not None else ""


@router.get("/oauth/hubspot/install", status_code=302, responses={503: {}})
async def install(state: StateDep) -> Response:
    settings = state.settings
    missing = _missing_config(settings)
    if missing:
        return _disabled(missing)
    now = utcnow()
    nonce = new_nonce()
    expires_at = now + STATE_TTL
    await run_in_threadpool(issue_state_nonce, state.engine, nonce, now, expires_at)
    signed = sign_state(_secret_key(state), nonce, expires_at)
    url = install_url(settings, redirect_uri=redirect_uri(settings), state=signed)
    return RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})


@router.get(CALLBACK_PATH, response_class=HTMLResponse, responses={400: {}, 502: {}, 503: {}})
async def callback(
    request: Request,
    state: StateDep,
    code: str | None = None,
    error: str | None = None,
    error_description: str | None = None,
) -> Response:
    settings = state.settings
    if error is not None:
        shown = error[:200] + (f": {error_description[:500]}" if error_description else "")
        return _page("HubSpot did not install the app", [shown], 400)
    missing = _missing_config(settings)
    if missing:
        return _disabled(missing)
    signed = request.query_params.get("state")
    if not code or not signed:
        return _page("Install failed", ["The callback needs both code and state."], 400)
    now = utcnow()
    nonce = verify_state(_secret_key(state), signed, now)
    if nonce is None:
        return _page("Install failed", ["The state is invalid or expired: start the install again."], 400)
    if not await run_in_threadpool(consume_state_nonce, state.engine, nonce, now):
        return _page(
            "Install failed", ["The state is unknown or was already used: start the install again."], 400
        )
    gateway = _gateway(request)
    if gateway is None:
        return _disabled(["HubSpot gateway"])
    try:
        outcome = await complete_install(
            gateway, state.engine, settings, code=code, redirect_uri=redirect_uri(settings), now=now
        )
    except InstallRefused as exc:
        status_code = 502 if exc.retryable else 400
        return _page("Install failed", [f"HubSpot did not accept the install: {exc.message}"], status_code)
    record = outcome.record
    lines = [f"Connected HubSpot portal {record.portal_id}."]
    if record.connection_created:
        lines.append(f"Zoom account {settings.zoom_account_id} syncs into it.")
    if record.resumed_ops:
        lines.append(f"{record.resumed_ops} waiting operation(s) resume now.")
    if outcome.setup_problem is None:
        lines.append("HubSpot set-up: done.")
    else:
        lines.append(
            f"HubSpot set-up did not finish ({outcome.setup_problem}); the sync retries it before sending."
        )
    if state.wake_worker is not None:
        state.wake_worker()
    return _page(f"Connected HubSpot portal {record.portal_id}", lines)
