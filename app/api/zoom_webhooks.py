"""POST /webhooks/zoom: verify, store durably, answer. Nothing slow happens here.

The handling is one framework-free coroutine (`handle_zoom_webhook`). It is served by a FastAPI
route (so it is documented at /docs) and, on the hot path, by `ZoomWebhookFastPath`, a plain ASGI
layer in front of FastAPI: routing, request objects and the middleware stack cost more CPU per
request than the work itself (measured with bench/ingest.py).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.db import utcnow
from app.ingest.inbox_writer import StorageUnavailable
from app.ingest.zoom_events import (
    HANDLED_EVENTS,
    URL_VALIDATION,
    EnvelopeError,
    inbox_row,
    parse_envelope,
    unstorable_text,
)
from app.metrics import REQUEST_LATENCY, WEBHOOK_DELIVERIES
from app.security import (
    SignatureFailure,
    is_ascii_digits,
    verify_zoom_signature,
    zoom_url_validation_token,
)
from app.state import AppState

log = logging.getLogger(__name__)
router = APIRouter(tags=["zoom"])

PATH = "/webhooks/zoom"
_ANSWERS = {
    (status, handled): json.dumps({"status": status} | ({} if handled else {"ignored": True})).encode()
    for status in ("accepted", "duplicate")
    for handled in (True, False)
}
# When the inbox cannot be written (database away): Zoom retries on its own schedule (5, 20, 60 min)
# whatever this says; other senders learn when trying again makes sense.
RETRY_AFTER_S = 30


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


class _TooLarge(Exception):
    pass


def _reject(
    status: int,
    detail: str,
    event: str = "unknown",
    outcome: str = "rejected",
    headers: tuple[tuple[str, str], ...] = (),
) -> Answer:
    WEBHOOK_DELIVERIES.labels(event, outcome).inc()
    return Answer(status, json.dumps({"detail": detail}).encode(), headers)


async def _read_limited(chunks: AsyncIterator[bytes], declared: str | None, limit: int) -> bytes:
    # A malformed Content-Length is left to the streaming count below (isdigit() alone would pass
    # "¹²³", which int() refuses).
    if declared is not None and is_ascii_digits(declared.strip(), 20) and int(declared) > limit:
        raise _TooLarge
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        parts.append(chunk)
    return b"".join(parts)


async def handle_zoom_webhook(
    state: AppState, headers: Mapping[str, str], body: AsyncIterator[bytes]
) -> Answer:
    """Everything the endpoint does. `headers` has lower-case names."""
    settings = state.settings
    secrets = settings.zoom_webhook_secrets
    if not secrets:
        return _reject(503, "Zoom webhooks disabled: set ZOOM_WEBHOOK_SECRET_TOKEN")
    content_type = headers.get("content-type", "")
    if content_type.split(";", 1)[0].strip().lower() != "application/json":
        return _reject(415, f"content-type must be application/json, got {content_type or 'none'!r}")
    try:
        raw = await _read_limited(body, headers.get("content-length"), settings.webhook_max_body_bytes)
    except _TooLarge:
        return _reject(413, f"body larger than {settings.webhook_max_body_bytes} bytes")
    try:
        secret = verify_zoom_signature(
            secrets=secrets,
            signature=headers.get("x-zm-signature"),
            timestamp=headers.get("x-zm-request-timestamp"),
            body=raw,
            now=time.time(),
            tolerance_s=settings.webhook_timestamp_tolerance_s,
        )
    except SignatureFailure as failure:
        return _reject(401, failure.reason, outcome="unauthorized")
    try:
        envelope = parse_envelope(raw)
    except EnvelopeError as exc:
        return _reject(400, str(exc), outcome="bad_request")

    if envelope.event == URL_VALIDATION:
        plain = envelope.body["payload"].get("plainToken")
        if not isinstance(plain, str) or not plain or unstorable_text(plain) is not None:
            reason = "payload.plainToken must be a non-empty string of plain text"
            return _reject(400, reason, URL_VALIDATION, "bad_request")
        WEBHOOK_DELIVERIES.labels(URL_VALIDATION, "validated").inc()
        answer = {"plainToken": plain, "encryptedToken": zoom_url_validation_token(secret, plain)}
        return Answer(200, json.dumps(answer).encode())

    handled = envelope.event in HANDLED_EVENTS
    row = inbox_row(envelope, raw, utcnow())
    label = envelope.event if handled else "other"
    try:
        outcome = await state.inbox_writer.store(row)
    except StorageUnavailable as exc:
        # 503 makes Zoom retry later; the event is not (known to be) stored, so nothing is lost (a
        # row written after all makes the retry a "duplicate").
        return _reject(
            503,
            f"could not store the event, retry later ({exc})",
            label,
            "storage_error",
            (("retry-after", str(RETRY_AFTER_S)),),
        )
    WEBHOOK_DELIVERIES.labels(label, outcome.value if handled else "ignored").inc()
    wake = state.wake_worker
    if handled and wake is not None:
        wake()
    return Answer(200, _ANSWERS[(outcome.value, handled)])  # pre-encoded: the bodies never vary


@router.post(
    PATH, responses={400: {}, 401: {}, 413: {}, 415: {}, 503: {}}, summary="Zoom event notifications"
)
async def zoom_webhook(request: Request) -> Response:
    """Signed Zoom event notifications (normally answered by `ZoomWebhookFastPath` before routing)."""
    state: AppState = request.app.state.app_state
    headers = {k.lower(): v for k, v in request.headers.items()}
    answer = await handle_zoom_webhook(state, headers, request.stream())
    return Response(
        answer.body, status_code=answer.status, media_type="application/json", headers=dict(answer.headers)
    )


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
_JSON_HEADERS = [(b"content-type", b"application/json")]


class ZoomWebhookFastPath:
    """Answers POST /webhooks/zoom directly; everything else goes to the wrapped app."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        state: AppState | None = getattr(scope["app"].state, "app_state", None)
        if state is None:  # not started yet
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}

        async def body() -> AsyncIterator[bytes]:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                yield message.get("body", b"")
                if not message.get("more_body", False):
                    return

        answer = await handle_zoom_webhook(state, headers, body())
        await send(
            {
                "type": "http.response.start",
                "status": answer.status,
                "headers": [
                    *_JSON_HEADERS,
                    (b"content-length", str(len(answer.body)).encode()),
                    *((k.encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers),
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer.body})
        REQUEST_LATENCY.labels("POST", PATH, str(answer.status)).observe(time.perf_counter() - started)
