"""POST /webhooks/zoom: verify, store durably, answer. Nothing slow happens here."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from app.db import utcnow
from app.ingest.inbox_writer import StorageUnavailable
from app.ingest.zoom_events import (
    HANDLED_EVENTS,
    URL_VALIDATION,
    EnvelopeError,
    delivery_key,
    parse_envelope,
)
from app.metrics import WEBHOOK_DELIVERIES
from app.models import InboxState
from app.security import SignatureFailure, verify_zoom_signature, zoom_url_validation_token
from app.state import AppState

log = logging.getLogger(__name__)
router = APIRouter(tags=["zoom"])


_ANSWERS = {
    (status, handled): json.dumps({"status": status} | ({} if handled else {"ignored": True})).encode()
    for status in ("accepted", "duplicate")
    for handled in (True, False)
}


class _TooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _reject(status: int, detail: str, event: str = "unknown", outcome: str = "rejected") -> HTTPException:
    WEBHOOK_DELIVERIES.labels(event, outcome).inc()
    return HTTPException(status, detail=detail)


@router.post(
    "/webhooks/zoom",
    responses={400: {}, 401: {}, 413: {}, 415: {}, 503: {}},
    summary="Zoom event notifications",
)
async def zoom_webhook(request: Request) -> Any:
    # No dependencies on this route: FastAPI's dependency solving was 17% of its CPU per request.
    state: AppState = request.app.state.app_state
    settings = state.settings
    secrets = settings.zoom_webhook_secrets
    if not secrets:
        raise _reject(503, "Zoom webhooks disabled: set ZOOM_WEBHOOK_SECRET_TOKEN")
    content_type = request.headers.get("content-type", "")
    if content_type.split(";", 1)[0].strip().lower() != "application/json":
        raise _reject(415, f"content-type must be application/json, got {content_type or 'none'!r}")
    try:
        raw = await _read_body(request, settings.webhook_max_body_bytes)
    except _TooLarge:
        raise _reject(413, f"body larger than {settings.webhook_max_body_bytes} bytes") from None
    try:
        secret = verify_zoom_signature(
            secrets=secrets,
            signature=request.headers.get("x-zm-signature"),
            timestamp=request.headers.get("x-zm-request-timestamp"),
            body=raw,
            now=time.time(),
            tolerance_s=settings.webhook_timestamp_tolerance_s,
        )
    except SignatureFailure as failure:
        raise _reject(401, failure.reason, outcome="unauthorized") from None
    try:
        envelope = parse_envelope(raw)
    except EnvelopeError as exc:
        raise _reject(400, str(exc), outcome="bad_request") from None

    if envelope.event == URL_VALIDATION:
        plain = envelope.body["payload"].get("plainToken")
        if not isinstance(plain, str) or not plain:
            raise _reject(400, "payload.plainToken must be a non-empty string", URL_VALIDATION, "bad_request")
        WEBHOOK_DELIVERIES.labels(URL_VALIDATION, "validated").inc()
        return {"plainToken": plain, "encryptedToken": zoom_url_validation_token(secret, plain)}

    handled = envelope.event in HANDLED_EVENTS
    now = utcnow()
    row = {
        "delivery_key": delivery_key(envelope),
        "event": envelope.event[:100],
        "event_ts": envelope.event_ts,
        "zoom_account_id": (envelope.account_id or "")[:64] or None,
        "webinar_id": (envelope.webinar_id or "")[:32] or None,
        "raw_body": raw,
        "received_at": now,
        "state": InboxState.PENDING.value if handled else InboxState.IGNORED.value,
        "attempts": 0,
        "next_attempt_at": now if handled else None,
        "locked_until": None,
        "last_error": None,
        "processed_at": None if handled else now,
    }
    label = envelope.event if handled else "other"
    try:
        outcome = await state.inbox_writer.store(row)
    except StorageUnavailable as exc:
        # 503 makes Zoom retry later; nothing was stored, so nothing is lost.
        raise _reject(
            503, f"could not store the event, retry later ({exc})", label, "storage_error"
        ) from None
    WEBHOOK_DELIVERIES.labels(label, outcome.value if handled else "ignored").inc()
    wake = state.extras.get("wake_worker")
    if handled and wake is not None:
        wake()
    # Pre-encoded answers: this is the hot path and the bodies never vary.
    return Response(_ANSWERS[(outcome.value, handled)], media_type="application/json")
