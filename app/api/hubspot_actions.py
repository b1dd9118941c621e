"""POST /hubspot/actions/add-to-webinar: the custom workflow action HubSpot calls (CONTRACT.md §2).

Verify the signature on the raw bytes (v3, else v2), parse, then hand over to the ActionService,
which answers SUCCESS / FAIL_CONTINUE or BLOCK. Expected conditions are never a 500: HubSpot would
retry a 5xx for days.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from app.actions.rules import BadActionRequest, parse_action_request
from app.api.deps import StateDep
from app.security import SignatureFailure, verify_hubspot_signature

log = logging.getLogger(__name__)
router = APIRouter(tags=["hubspot"])

PATH = "/hubspot/actions/add-to-webinar"
MAX_BODY_BYTES = 1024 * 1024


class ActionAnswer(BaseModel):
    outputFields: dict[str, str]


def signed_uri(public_base_url: str, request: Request) -> str:
    """The URL HubSpot called, as it signed it: the public base plus path and query."""
    uri = public_base_url + request.url.path
    query = request.scope.get("query_string", b"")
    return uri + ("?" + query.decode("latin-1") if query else "")


@router.post(
    PATH,
    response_model=ActionAnswer,
    responses={400: {"description": "malformed body"}, 401: {"description": "bad signature"}},
    summary="Workflow action: add the contact to a Zoom webinar",
)
async def add_to_webinar(request: Request, state: StateDep) -> Any:
    settings = state.settings
    secret = settings.hubspot_client_secret.get_secret_value() if settings.hubspot_client_secret else ""
    if not secret:
        raise HTTPException(503, detail="workflow action disabled: set HUBSPOT_CLIENT_SECRET")
    # RequestGuard has refused a declared or streamed body over the limit before this reads it.
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise HTTPException(413, detail=f"body larger than {MAX_BODY_BYTES} bytes")
    try:
        verify_hubspot_signature(
            secret=secret,
            method=request.method,
            uri=signed_uri(settings.public_base_url, request),
            body=body,
            headers=request.headers,
            now_ms=int(time.time() * 1000),
        )
    except SignatureFailure as exc:
        log.warning("workflow action request refused", extra={"reason": exc.reason})
        raise HTTPException(401, detail=exc.reason) from None
    try:
        action = parse_action_request(body)
    except BadActionRequest as exc:
        raise HTTPException(400, detail=str(exc)) from None
    service = state.action_service
    if service is None:  # pragma: no cover - built in every lifespan
        raise HTTPException(503, detail="workflow action not ready")
    output = await service.handle(action)
    return JSONResponse({"outputFields": output})
