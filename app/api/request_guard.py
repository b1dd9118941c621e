"""Checks every request must pass before anything reads its body (a plain ASGI layer).

FastAPI reads and parses a body before it runs a route's dependencies, so a request without a token
was buffered in full (a 128 MiB PATCH answered 422 before 401) and the workflow-action route read
256 MiB before its size check. This layer runs first:

- oversized headers → 431; a declared `Content-Length` over the route's limit → 413 at once; a
  chunked body is counted while it streams and cut off with 413 at the limit;
- a body that stalls for `BODY_READ_TIMEOUT_S` between chunks → 408 (slow clients hold no worker);
- `/api/v1/*` without the admin token → 401 (503 while no token is configured) before any byte of
  the body is read.

`POST /webhooks/zoom` has its own fast path with the same limits and never reaches this layer.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from starlette.datastructures import Headers

from app.security import admin_auth_failure, is_ascii_digits

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ADMIN_PREFIX = "/api/v1"
ADMIN_MAX_BODY_BYTES = 256 * 1024  # settings and mappings are small JSON documents
MAX_HEADER_BYTES = 16 * 1024
BODY_READ_TIMEOUT_S = 30.0


class _Stop(Exception):
    """The body broke a rule while streaming: answer `status` unless a response has started."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


async def _answer(send: Send, status: int, detail: str, headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RequestGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_headers: list[tuple[bytes, bytes]] = scope.get("headers") or []
        if sum(len(k) + len(v) for k, v in raw_headers) > MAX_HEADER_BYTES:
            await _answer(send, 431, f"request headers larger than {MAX_HEADER_BYTES} bytes")
            return
        headers = Headers(scope=scope)
        path: str = scope.get("path", "")
        settings = self._settings(scope)
        if path.startswith(ADMIN_PREFIX):
            secret = settings.admin_api_token if settings is not None else None
            failure = admin_auth_failure(
                secret.get_secret_value() if secret else "", headers.get("authorization")
            )
            if failure is not None:
                status, reason = failure
                extra = [(b"www-authenticate", b"Bearer")] if status == 401 else []
                await _answer(send, status, reason, extra)
                return
            limit = ADMIN_MAX_BODY_BYTES
        else:
            limit = settings.webhook_max_body_bytes if settings else 1024 * 1024
        declared = headers.get("content-length")
        if declared is not None:
            if not is_ascii_digits(declared.strip(), 20):
                await _answer(send, 400, "Content-Length must be a whole number of bytes")
                return
            if int(declared) > limit:
                await _answer(send, 413, f"body larger than {limit} bytes")
                return
        started = False
        # Why the body was cut off, as plain values: holding the raised exception here would make a
        # reference cycle (closure cell -> exception -> traceback -> frames holding body chunks) that
        # only the cycle collector frees, so a flood of oversized bodies would pile up memory.
        stopped: tuple[int, str] | None = None
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen, stopped
            try:
                message = await asyncio.wait_for(receive(), timeout=BODY_READ_TIMEOUT_S)
            except TimeoutError as exc:
                stopped = (408, f"no body data for {BODY_READ_TIMEOUT_S:g} s")
                raise _Stop(*stopped) from exc
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    stopped = (413, f"body larger than {limit} bytes")
                    raise _Stop(*stopped)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if stopped is not None:
                # The app turned the cut-off body into an answer of its own (FastAPI: 400 "error
                # parsing the body"): the reason is ours to give.
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await _answer(send, *stopped)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _Stop as stop:
            if not started:
                await _answer(send, stop.status, stop.detail)

    @staticmethod
    def _settings(scope: Scope) -> Any:
        app = scope.get("app")
        state = getattr(getattr(app, "state", None), "app_state", None)
        return getattr(state, "settings", None)
