"""A stateful fake Zoom: an ASGI app for tests, the demo and benchmarks, also runnable on its own.

``create_zoom_sandbox()`` builds a FastAPI app that serves what this service uses of Zoom, at Zoom's
paths and with Zoom's JSON shapes: Server-to-Server OAuth at ``POST /oauth/token``, the REST API under
``/v2`` (users, webinars, registrant questions, add/list registrants, past and report participants,
cloud recordings) and recording downloads at ``GET /rec/download/{file_id}``. Configure the service
with ``ZOOM_OAUTH_BASE_URL=<sandbox>`` and ``ZOOM_API_BASE_URL=<sandbox>/v2``. The state lives in a
:class:`~app.sandbox.zoom_state.ZoomSandbox`, reachable as ``app.state.sandbox`` (typed access:
:func:`zoom_sandbox_of`); behaviour choices where Zoom's own is undocumented are listed in
:mod:`app.sandbox.zoom_state`.

Every ``/v2`` request passes a gate, in this order: ``slow_ms`` delay, ``down`` (503), random 5xx at
``error_rate`` (500/502/503), bearer-token auth (401 code 124), ``burst_429`` forced 429s, then the
per-account, per-label (LIGHT/MEDIUM/HEAVY) per-second rate limit: 429 with Zoom's body,
``X-RateLimit-Category``/``X-RateLimit-Type`` and a ``Retry-After`` in seconds, as a date, as an HTTP
date, or absent (configurable). The token endpoint and downloads see only the delay, ``down`` and
``error_rate``. Every request is counted per ``"METHOD /path/template"`` in ``stats.requests``;
429s per template in ``stats.throttled``. Errors are always ``{"code": int, "message": str}`` JSON
(OAuth errors ``{"reason", "error"}``, like Zoom).

The control API under ``/_sandbox/`` needs no token and bypasses the gate: ``GET /health``,
``GET /state``, ``POST /reset``, ``GET|POST /faults``, ``GET|POST /webhook``, ``GET /deliveries``,
``POST /deliveries/{index}/redeliver``, ``POST /settle``, ``POST /tokens/expire``, ``POST /users``,
``POST /webinars``, ``GET /webinars/{id}`` and the live actions ``POST /webinars/{id}/register``,
``approve``, ``deny``, ``cancel``, ``start``, ``join``, ``leave``, ``end``, ``recording``,
``transcript`` (each changes the state, then sends the matching signed webhook unless ``emit`` is
false, and returns ``{"result", "events", "deliveries"}``). OpenAPI docs at ``/_sandbox/docs``.

The routes live in ``zoom_routes_api`` (OAuth, ``/v2``, downloads) and ``zoom_routes_control``; the
gate's ticket, rate-limit labels, error handlers and dependencies in ``zoom_http``. This module
assembles the app and runs it.

Run it: ``python -m app.sandbox.zoom [PORT] [--host H] [--client-id ID --client-secret S --account-id A]
[--webhook-url URL --webhook-secret S]`` (port 8902).
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from app.sandbox.gate import Faults
from app.sandbox.sandbox_app import CONTROL_PREFIX, build_sandbox_app
from app.sandbox.zoom_common import (
    DEFAULT_ACCOUNT_ID,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_PUBLIC_URL,
    RateLabel,
    RetryAfter,
)
from app.sandbox.zoom_http import ERROR_HANDLERS, ZoomTicket, guarded, zoom_sandbox_of
from app.sandbox.zoom_routes_api import api, downloads, oauth
from app.sandbox.zoom_routes_control import control
from app.sandbox.zoom_state import ZoomSandbox

__all__ = ["CONTROL_PREFIX", "DEFAULT_PORT", "ZoomSandbox", "create_zoom_sandbox", "main", "zoom_sandbox_of"]

DEFAULT_PORT = 8902


def create_zoom_sandbox(
    *,
    accounts: Mapping[str, tuple[str, str]] | None = None,
    public_url: str = DEFAULT_PUBLIC_URL,
    token_ttl_s: int = 3600,
    rate_limits: Mapping[RateLabel | str, int] | None = None,
    rate_limit_enabled: bool = True,
    retry_after: RetryAfter | str = RetryAfter.SECONDS,
    error_rate: float = 0.0,
    slow_ms: int = 0,
    down: bool = False,
    burst_429: int = 0,
    fault_seed: int = 0,
    webhook_url: str | None = None,
    webhook_secret: str | None = None,
    webhook_transport: httpx.AsyncBaseTransport | None = None,
    background_api_webhooks: bool = True,
    redirect_downloads: bool = False,
    strict_questions: bool = True,
    registrations_per_day: int = 3,
    seed: int = 0,
    clock: Callable[[], float] | None = None,
) -> FastAPI:
    """The fake Zoom.

    ``accounts`` maps account ids to ``(client_id, client_secret)`` of their Server-to-Server OAuth app
    (default ``{"sandbox-account": ("sandbox-client-id", "sandbox-client-secret")}``); each account
    starts with one user, its default webinar host. Tokens live ``token_ttl_s`` seconds.
    ``public_url`` is the sandbox's own base URL, used in download links. ``rate_limits`` are requests
    per second per account for each label (default LIGHT 30, MEDIUM 20, HEAVY 10). The fault fields
    are the initial values, restored by ``POST /_sandbox/reset``.

    Webhooks go to ``webhook_url`` (via an ``httpx.AsyncClient``) or through ``webhook_transport``
    (e.g. ``httpx.ASGITransport(app=service)``; the URL then defaults to
    ``http://service.local/webhooks/zoom``), signed with ``webhook_secret``. Webhooks caused by REST
    calls go out in the background unless ``background_api_webhooks`` is false. ``seed`` makes ids
    deterministic; ``clock`` (epoch seconds, default ``time.time``) drives token expiry, rate limits
    and event times.
    """
    options: dict[str, Any] = {} if clock is None else {"clock": clock}
    sandbox = ZoomSandbox(
        accounts=accounts,
        public_url=public_url,
        token_ttl_s=token_ttl_s,
        rate_limits=rate_limits,
        rate_limit_enabled=rate_limit_enabled,
        retry_after=retry_after,
        faults=Faults(
            error_rate=error_rate, slow_ms=slow_ms, down=down, burst_429=burst_429, seed=fault_seed
        ),
        webhook_url=webhook_url,
        webhook_secret=webhook_secret,
        webhook_transport=webhook_transport,
        background_api_webhooks=background_api_webhooks,
        redirect_downloads=redirect_downloads,
        strict_questions=strict_questions,
        registrations_per_day=registrations_per_day,
        seed=seed,
        **options,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await sandbox.aclose()

    return build_sandbox_app(
        title="Zoom sandbox",
        sandbox=sandbox,
        api_routers=(oauth, api, downloads),
        control=control,
        error_handlers=ERROR_HANDLERS,
        guards=guarded,
        open_ticket=lambda scope, route: ZoomTicket(sandbox, scope, route),
        lifespan=lifespan,
    )


# --------------------------------------------------------------------------------------------------
# Running on its own
# --------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the sandbox with uvicorn: ``python -m app.sandbox.zoom [PORT]``."""
    parser = argparse.ArgumentParser(prog="python -m app.sandbox.zoom", description="Fake Zoom API.")
    parser.add_argument("port", nargs="?", type=int, default=DEFAULT_PORT)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
    parser.add_argument("--client-secret", default=DEFAULT_CLIENT_SECRET)
    parser.add_argument("--account-id", default=DEFAULT_ACCOUNT_ID)
    parser.add_argument("--webhook-url", default=None, help="where to POST signed webhooks")
    parser.add_argument("--webhook-secret", default=None, help="the webhook secret token")
    parser.add_argument("--public-url", default=None, help="this sandbox's base URL (default from host/port)")
    parser.add_argument("--token-ttl", type=int, default=3600, help="access token lifetime in seconds")
    parser.add_argument(
        "--retry-after", choices=[m.value for m in RetryAfter], default=RetryAfter.SECONDS.value
    )
    parser.add_argument("--no-rate-limit", action="store_true", help="disable the per-second rate limits")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    app = create_zoom_sandbox(
        accounts={args.account_id: (args.client_id, args.client_secret)},
        public_url=args.public_url or f"http://{args.host}:{args.port}",
        token_ttl_s=args.token_ttl,
        retry_after=args.retry_after,
        rate_limit_enabled=not args.no_rate_limit,
        webhook_url=args.webhook_url,
        webhook_secret=args.webhook_secret,
        seed=args.seed,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
