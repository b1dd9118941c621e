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

Run it: ``python -m app.sandbox.zoom [PORT] [--host H] [--client-id ID --client-secret S --account-id A]
[--webhook-url URL --webhook-secret S]`` (port 8902).
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any
from urllib.parse import parse_qsl

import httpx
import uvicorn
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope

from app.sandbox.gate import Faults, GateOutcome, RequestGate, bearer, scope_header
from app.sandbox.zoom_bodies import (
    ActionBody,
    FaultsUpdate,
    JoinAction,
    LeaveAction,
    RecordingAction,
    RegisterAction,
    RegistrantAction,
    RegistrantCreate,
    SeedUsers,
    TranscriptAction,
    WebhookTargetUpdate,
    WebinarCreate,
)
from app.sandbox.zoom_common import (
    DEFAULT_ACCOUNT_ID,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_PUBLIC_URL,
    RateLabel,
    RetryAfter,
    ZoomError,
)
from app.sandbox.zoom_records import Account, ActionResult, GateDecision, RecordingFile
from app.sandbox.zoom_state import ZoomSandbox

__all__ = ["CONTROL_PREFIX", "DEFAULT_PORT", "ZoomSandbox", "create_zoom_sandbox", "main", "zoom_sandbox_of"]

CONTROL_PREFIX = "/_sandbox"
API_PREFIX = "/v2"
DEFAULT_PORT = 8902

# Zoom's rate-limit label of each endpoint ("METHOD template").
RATE_LABELS: Mapping[str, RateLabel] = {
    "GET /v2/users": RateLabel.MEDIUM,
    "GET /v2/users/{user_id}": RateLabel.LIGHT,
    "GET /v2/users/{user_id}/webinars": RateLabel.MEDIUM,
    "GET /v2/webinars/{webinar_id}": RateLabel.LIGHT,
    "GET /v2/webinars/{webinar_id}/registrants/questions": RateLabel.LIGHT,
    "POST /v2/webinars/{webinar_id}/registrants": RateLabel.LIGHT,
    "GET /v2/webinars/{webinar_id}/registrants": RateLabel.MEDIUM,
    "GET /v2/past_webinars/{webinar_id}/participants": RateLabel.MEDIUM,
    "GET /v2/report/webinars/{webinar_id}/participants": RateLabel.HEAVY,
    "GET /v2/meetings/{meeting_id}/recordings": RateLabel.LIGHT,
}


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

    app = FastAPI(
        title="Zoom sandbox",
        docs_url=f"{CONTROL_PREFIX}/docs",
        redoc_url=None,
        openapi_url=f"{CONTROL_PREFIX}/openapi.json",
        lifespan=lifespan,
    )
    app.state.sandbox = sandbox
    app.add_exception_handler(ZoomError, _zoom_error_handler)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error_handler)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)  # type: ignore[arg-type]
    public_routers = (oauth, api, downloads)
    for router in (*public_routers, control):
        app.include_router(router)
    routes = [route for router in public_routers for route in router.routes]
    app.add_middleware(
        RequestGate,
        sandbox=sandbox,
        routes=routes,
        guards=_guarded,
        open_ticket=lambda scope, route: _ZoomTicket(sandbox, scope, route),
    )
    return app


def zoom_sandbox_of(app: FastAPI) -> ZoomSandbox:
    """``app.state.sandbox`` with its type."""
    sandbox = getattr(app.state, "sandbox", None)
    if not isinstance(sandbox, ZoomSandbox):
        raise TypeError("this app was not built by create_zoom_sandbox()")
    return sandbox


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------


async def _zoom_error_handler(_: Request, exc: ZoomError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.headers or None)


async def _validation_error_handler(_: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [
        {
            "field": ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")),
            "message": str(err.get("msg", "Invalid field.")),
        }
        for err in exc.errors()
    ]
    return JSONResponse({"code": 300, "message": "Validation Failed.", "errors": errors}, status_code=400)


async def _http_error_handler(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    """Unknown paths and methods, in Zoom's error shape too."""
    if exc.status_code == 404:
        body = {"code": 2300, "message": "This API endpoint is not recognized."}
    else:
        body = {"code": exc.status_code, "message": str(exc.detail)}
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


# --------------------------------------------------------------------------------------------------
# The request gate: faults, auth, rate limits, statistics
# --------------------------------------------------------------------------------------------------


def _guarded(path: str) -> bool:
    """The REST API, the token endpoint and downloads; never the control API."""
    return not path.startswith(CONTROL_PREFIX) and (_is_api(path) or path.startswith(("/oauth/", "/rec/")))


def _is_api(path: str) -> bool:
    return path == API_PREFIX or path.startswith(API_PREFIX + "/")


class _ZoomTicket:
    """One request at the gate: REST calls see auth and rate limits, the others only the faults."""

    def __init__(self, sandbox: ZoomSandbox, scope: Scope, route: str) -> None:
        self.sandbox = sandbox
        self.route = route
        self.scope = scope
        self.decision = GateDecision(GateOutcome.OK)
        sandbox.record_request(route)

    def admit(self) -> Response | None:
        if _is_api(str(self.scope["path"])):
            token = bearer(scope_header(self.scope, b"authorization"))
            self.decision = self.sandbox.gate(token, RATE_LABELS.get(self.route), self.route)
        else:
            self.decision = self.sandbox.fault_gate()
        if self.decision.outcome is GateOutcome.OK:
            return None
        return JSONResponse(
            self.decision.body(), status_code=self.decision.status_code, headers=dict(self.decision.headers)
        )

    def headers(self) -> Sequence[tuple[str, str]]:
        return list(self.decision.headers.items())

    def record_status(self, status_code: int) -> None:
        self.sandbox.record_status(status_code)

    def lose_answer(self, status_code: int) -> Response | None:
        return None  # only the fake HubSpot loses answers


# --------------------------------------------------------------------------------------------------
# Dependencies
# --------------------------------------------------------------------------------------------------


async def _sandbox_dep(request: Request) -> ZoomSandbox:
    return zoom_sandbox_of(request.app)


SandboxDep = Annotated[ZoomSandbox, Depends(_sandbox_dep)]


async def _account_dep(request: Request, sandbox: SandboxDep) -> Account:
    # The gate already refused bad tokens; checking again keeps handlers safe on their own.
    account = sandbox.account_for_token(bearer(request.headers.get("authorization")))
    if account is None:
        raise ZoomError(401, 124, "Invalid access token.")
    return account


AccountDep = Annotated[Account, Depends(_account_dep)]
PageSize = Annotated[int | None, Query()]
PageToken = Annotated[str | None, Query()]


# --------------------------------------------------------------------------------------------------
# OAuth
# --------------------------------------------------------------------------------------------------

oauth = APIRouter(tags=["oauth"])


@oauth.post("/oauth/token")
async def issue_token(request: Request, sandbox: SandboxDep) -> dict[str, Any]:
    """Server-to-Server OAuth: ``grant_type=account_credentials&account_id=...`` in the query string
    (or a form body), client credentials as HTTP Basic auth."""
    params = dict(request.query_params)
    if "application/x-www-form-urlencoded" in request.headers.get("content-type", ""):
        form = parse_qsl((await request.body()).decode("utf-8", "replace"))
        params = {**dict(form), **params}
    async with sandbox.lock:
        return sandbox.issue_token(
            request.headers.get("authorization"), params.get("grant_type"), params.get("account_id")
        )


# --------------------------------------------------------------------------------------------------
# REST API (/v2)
# --------------------------------------------------------------------------------------------------

api = APIRouter(prefix=API_PREFIX, tags=["zoom api"])


@api.get("/users")
async def list_users(
    sandbox: SandboxDep, account: AccountDep, page_size: PageSize = None, next_page_token: PageToken = None
) -> dict[str, Any]:
    async with sandbox.lock:
        return sandbox.list_users(account.id, page_size=page_size, next_page_token=next_page_token)


@api.get("/users/{user_id}")
async def get_user(user_id: str, sandbox: SandboxDep, account: AccountDep) -> dict[str, Any]:
    async with sandbox.lock:
        return sandbox.get_user(account.id, user_id)


@api.get("/users/{user_id}/webinars")
async def list_user_webinars(
    user_id: str,
    sandbox: SandboxDep,
    account: AccountDep,
    page_size: PageSize = None,
    next_page_token: PageToken = None,
) -> dict[str, Any]:
    async with sandbox.lock:
        return sandbox.list_user_webinars(
            account.id, user_id, page_size=page_size, next_page_token=next_page_token
        )


@api.get("/webinars/{webinar_id}")
async def get_webinar(webinar_id: str, sandbox: SandboxDep, account: AccountDep) -> dict[str, Any]:
    async with sandbox.lock:
        return sandbox.get_webinar(account.id, webinar_id)


@api.get("/webinars/{webinar_id}/registrants/questions")
async def registrant_questions(webinar_id: str, sandbox: SandboxDep, account: AccountDep) -> dict[str, Any]:
    async with sandbox.lock:
        return sandbox.registrant_questions(account.id, webinar_id)


@api.post("/webinars/{webinar_id}/registrants", status_code=201)
async def add_registrant(
    webinar_id: str, body: RegistrantCreate, sandbox: SandboxDep, account: AccountDep
) -> dict[str, Any]:
    return await sandbox.add_registrant(account.id, webinar_id, body)


@api.get("/webinars/{webinar_id}/registrants")
async def list_registrants(
    webinar_id: str,
    sandbox: SandboxDep,
    account: AccountDep,
    status: str | None = None,
    page_size: PageSize = None,
    next_page_token: PageToken = None,
) -> dict[str, Any]:
    async with sandbox.lock:
        return sandbox.list_registrants(
            account.id, webinar_id, status=status, page_size=page_size, next_page_token=next_page_token
        )


@api.get("/past_webinars/{webinar_id}/participants")
async def past_participants(
    webinar_id: str,
    sandbox: SandboxDep,
    account: AccountDep,
    page_size: PageSize = None,
    next_page_token: PageToken = None,
    include_fields: str | None = None,
) -> dict[str, Any]:
    async with sandbox.lock:
        return sandbox.past_participants(
            account.id,
            webinar_id,
            page_size=page_size,
            next_page_token=next_page_token,
            include_fields=include_fields,
        )


@api.get("/report/webinars/{webinar_id}/participants")
async def report_participants(
    webinar_id: str,
    sandbox: SandboxDep,
    account: AccountDep,
    page_size: PageSize = None,
    next_page_token: PageToken = None,
    include_fields: str | None = None,
) -> dict[str, Any]:
    async with sandbox.lock:
        return sandbox.report_participants(
            account.id,
            webinar_id,
            page_size=page_size,
            next_page_token=next_page_token,
            include_fields=include_fields,
        )


@api.get("/meetings/{meeting_id}/recordings")
async def get_recordings(
    meeting_id: str, sandbox: SandboxDep, account: AccountDep, include_fields: str | None = None
) -> dict[str, Any]:
    async with sandbox.lock:
        return sandbox.get_recordings(account.id, meeting_id, include_fields=include_fields)


# --------------------------------------------------------------------------------------------------
# Recording downloads
# --------------------------------------------------------------------------------------------------

downloads = APIRouter(tags=["downloads"])


def _file_response(rec_file: RecordingFile) -> Response:
    name = f"{rec_file.recording_type}.{rec_file.extension.lower()}"
    return Response(
        rec_file.content,
        media_type=rec_file.media_type,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@downloads.get("/rec/download/{file_id}")
async def download_file(file_id: str, request: Request, sandbox: SandboxDep) -> Response:
    """Needs ``Authorization: Bearer`` with an OAuth token or the recording's ``download_token``."""
    async with sandbox.lock:
        rec_file = sandbox.download(file_id, request.headers.get("authorization"))
    if sandbox.redirect_downloads:
        return RedirectResponse(sandbox.cdn_url(rec_file), status_code=302)
    return _file_response(rec_file)


@downloads.get("/rec/cdn/{file_id}")
async def cdn_file(file_id: str, sandbox: SandboxDep, signature: str | None = None) -> Response:
    async with sandbox.lock:
        rec_file = sandbox.cdn_file(file_id, signature)
    return _file_response(rec_file)


# --------------------------------------------------------------------------------------------------
# Control and inspection API (no auth, no gate)
# --------------------------------------------------------------------------------------------------

control = APIRouter(prefix=CONTROL_PREFIX, tags=["sandbox control"])


def _action(result: ActionResult) -> dict[str, Any]:
    return result.to_json()


@control.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@control.get("/state")
async def state(sandbox: SandboxDep) -> dict[str, Any]:
    async with sandbox.lock:
        return sandbox.snapshot()


@control.post("/reset")
async def reset(sandbox: SandboxDep) -> dict[str, str]:
    await sandbox.settle()
    async with sandbox.lock:
        sandbox.reset()
    return {"status": "reset"}


@control.get("/faults")
async def get_faults(sandbox: SandboxDep) -> dict[str, Any]:
    return sandbox.settings()


@control.post("/faults")
async def set_faults(body: FaultsUpdate, sandbox: SandboxDep) -> dict[str, Any]:
    async with sandbox.lock:
        return sandbox.set_faults(body)


@control.get("/webhook")
async def get_webhook(sandbox: SandboxDep) -> dict[str, Any]:
    return {"target": sandbox.webhook.to_json() if sandbox.webhook else None}


@control.post("/webhook")
async def set_webhook(body: WebhookTargetUpdate, sandbox: SandboxDep) -> dict[str, Any]:
    target = sandbox.set_webhook_target(body.url, secret=body.secret)
    return {"target": target.to_json() if target else None}


@control.get("/deliveries")
async def list_deliveries(sandbox: SandboxDep, event: str | None = None) -> dict[str, Any]:
    found = [d.to_json() for d in sandbox.deliveries if event is None or d.event == event]
    return {"deliveries": found}


@control.post("/deliveries/{index}/redeliver")
async def redeliver(index: int, sandbox: SandboxDep) -> dict[str, Any]:
    return (await sandbox.redeliver(index)).to_json()


@control.post("/settle")
async def settle(sandbox: SandboxDep) -> dict[str, Any]:
    """Wait until background webhooks (caused by REST calls) have been delivered."""
    await sandbox.settle()
    return {"deliveries": len(sandbox.deliveries)}


@control.post("/tokens/expire")
async def expire_tokens(sandbox: SandboxDep) -> dict[str, int]:
    async with sandbox.lock:
        return {"expired": sandbox.expire_tokens()}


@control.post("/users", status_code=201)
async def seed_users(body: SeedUsers, sandbox: SandboxDep) -> dict[str, Any]:
    async with sandbox.lock:
        created = [
            sandbox.add_user(
                u.email, u.first_name, u.last_name, user_id=u.id, account_id=body.account_id, type=u.type
            )
            for u in body.users
        ]
    return {"users": [{**u.to_json(full=True)} for u in created]}


@control.post("/webinars", status_code=201)
async def create_webinar(body: WebinarCreate, sandbox: SandboxDep) -> dict[str, Any]:
    return _action(await sandbox.create_webinar(body))


@control.get("/webinars/{webinar_id}")
async def get_webinar_state(webinar_id: str, sandbox: SandboxDep) -> dict[str, Any]:
    async with sandbox.lock:
        return sandbox.webinar_snapshot(sandbox.webinar(webinar_id))


@control.post("/webinars/{webinar_id}/register")
async def register(webinar_id: str, body: RegisterAction, sandbox: SandboxDep) -> dict[str, Any]:
    """A registration at Zoom itself (e.g. Zoom's own registration form)."""
    return _action(await sandbox.register_body(webinar_id, body))


@control.post("/webinars/{webinar_id}/approve")
async def approve(webinar_id: str, body: RegistrantAction, sandbox: SandboxDep) -> dict[str, Any]:
    return _action(await sandbox.approve(webinar_id, body.registrant_id, at=body.at, emit=body.emit))


@control.post("/webinars/{webinar_id}/deny")
async def deny(webinar_id: str, body: RegistrantAction, sandbox: SandboxDep) -> dict[str, Any]:
    return _action(await sandbox.deny(webinar_id, body.registrant_id, at=body.at, emit=body.emit))


@control.post("/webinars/{webinar_id}/cancel")
async def cancel(webinar_id: str, body: RegistrantAction, sandbox: SandboxDep) -> dict[str, Any]:
    return _action(
        await sandbox.cancel(webinar_id, body.registrant_id, by_host=body.by_host, at=body.at, emit=body.emit)
    )


@control.post("/webinars/{webinar_id}/start")
async def start(webinar_id: str, sandbox: SandboxDep, body: ActionBody | None = None) -> dict[str, Any]:
    spec = body or ActionBody()
    return _action(await sandbox.start(webinar_id, at=spec.at, emit=spec.emit))


@control.post("/webinars/{webinar_id}/join")
async def join(webinar_id: str, body: JoinAction, sandbox: SandboxDep) -> dict[str, Any]:
    return _action(
        await sandbox.join(
            webinar_id,
            registrant_id=body.registrant_id,
            name=body.name,
            email=body.email,
            guest=body.guest,
            user_id=body.user_id,
            at=body.at,
            emit=body.emit,
        )
    )


@control.post("/webinars/{webinar_id}/leave")
async def leave(webinar_id: str, body: LeaveAction, sandbox: SandboxDep) -> dict[str, Any]:
    return _action(
        await sandbox.leave(
            webinar_id, user_id=body.user_id, registrant_id=body.registrant_id, at=body.at, emit=body.emit
        )
    )


@control.post("/webinars/{webinar_id}/end")
async def end(webinar_id: str, sandbox: SandboxDep, body: ActionBody | None = None) -> dict[str, Any]:
    spec = body or ActionBody()
    return _action(await sandbox.end(webinar_id, at=spec.at, emit=spec.emit))


@control.post("/webinars/{webinar_id}/recording")
async def recording(
    webinar_id: str, sandbox: SandboxDep, body: RecordingAction | None = None
) -> dict[str, Any]:
    spec = body or RecordingAction()
    return _action(
        await sandbox.add_recording(
            webinar_id,
            status=spec.status,
            with_transcript=spec.with_transcript,
            transcript_available=spec.transcript_available,
            vtt=spec.vtt,
            at=spec.at,
            emit=spec.emit,
        )
    )


@control.post("/webinars/{webinar_id}/transcript")
async def transcript(
    webinar_id: str, sandbox: SandboxDep, body: TranscriptAction | None = None
) -> dict[str, Any]:
    spec = body or TranscriptAction()
    return _action(
        await sandbox.set_transcript(
            webinar_id, available=spec.available, vtt=spec.vtt, at=spec.at, emit=spec.emit
        )
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
