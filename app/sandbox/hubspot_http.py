"""The fake HubSpot's HTTP plumbing shared by its route modules: HubSpot-shaped error handlers, the
request gate's ticket (portal from the token, faults, rate limit, lost answers) and the FastAPI
dependencies and response helpers the routes use.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope

from app.sandbox.gate import GateOutcome, bearer, scope_header
from app.sandbox.hubspot_common import BatchOutcome, SandboxError, error_body, new_uuid
from app.sandbox.hubspot_state import GateDecision, HubSpotSandbox, PortalState
from app.sandbox.sandbox_app import ErrorHandler, sandbox_state

RATE_LIMIT_MESSAGE = "You have reached your secondly limit."


def sandbox_of(app: FastAPI) -> HubSpotSandbox:
    """``app.state.sandbox`` with its type."""
    return sandbox_state(app, HubSpotSandbox, "create_hubspot_sandbox")


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------


async def _sandbox_error_handler(_: Request, exc: SandboxError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.headers or None)


async def _validation_error_handler(_: Request, exc: RequestValidationError) -> JSONResponse:
    details = [
        {"message": str(err.get("msg", "")), "in": ".".join(str(p) for p in err.get("loc", ()))}
        for err in exc.errors()
    ]
    summary = "; ".join(f"{d['in']}: {d['message']}" for d in details) or "Invalid input JSON."
    body = error_body("VALIDATION_ERROR", f"Invalid input: {summary}", errors=details)
    return JSONResponse(body, status_code=400)


async def _http_error_handler(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    """Unknown paths and methods, in HubSpot's error shape too."""
    category = "OBJECT_NOT_FOUND" if exc.status_code == 404 else "VALIDATION_ERROR"
    return JSONResponse(
        error_body(category, str(exc.detail)), status_code=exc.status_code, headers=exc.headers
    )


def _unauthorized(token: str | None) -> SandboxError:
    message = (
        "Authentication credentials not found."
        if not token
        else "The access token is not valid for any portal of this sandbox."
    )
    return SandboxError(401, "INVALID_AUTHENTICATION", message)


# --------------------------------------------------------------------------------------------------
# The request gate: faults, auth, rate limit, statistics
# --------------------------------------------------------------------------------------------------


def _rate_headers(decision: GateDecision) -> list[tuple[str, str]]:
    return [
        ("X-HubSpot-RateLimit-Max", str(decision.limit)),
        ("X-HubSpot-RateLimit-Remaining", str(decision.remaining)),
        ("X-HubSpot-RateLimit-Interval-Milliseconds", str(decision.interval_ms)),
    ]


def _lost_answer() -> Response:
    """What the client gets when HubSpot applied the request but its answer never came back."""
    page = "<html><head><title>504 Gateway Time-out</title></head><body>504 Gateway Time-out</body></html>"
    return HTMLResponse(page, status_code=504, headers={"X-HubSpot-Correlation-Id": new_uuid()})


def _gate_response(decision: GateDecision, token: str | None) -> Response:
    correlation = new_uuid()
    headers = {"X-HubSpot-Correlation-Id": correlation}
    if decision.outcome in (GateOutcome.BURST, GateOutcome.THROTTLED):
        headers.update(_rate_headers(decision))
        headers["Retry-After"] = str(max(1, decision.retry_after))
        body = {
            "status": "error",
            "message": RATE_LIMIT_MESSAGE,
            "errorType": "RATE_LIMIT",
            "correlationId": correlation,
            "policyName": "TEN_SECONDLY_ROLLING",
            "requestId": new_uuid(),
        }
        return JSONResponse(body, status_code=429, headers=headers)
    if decision.outcome is GateOutcome.UNAUTHORIZED:
        error = _unauthorized(token)
        return JSONResponse(error.body(), status_code=401, headers=headers)
    if decision.status_code == 502:
        page = "<html><head><title>502 Bad Gateway</title></head><body>502 Bad Gateway</body></html>"
        return HTMLResponse(page, status_code=502, headers=headers)
    reason = "The sandbox is down." if decision.outcome is GateOutcome.DOWN else "Injected sandbox fault."
    category = "SERVICE_UNAVAILABLE" if decision.status_code == 503 else "INTERNAL_ERROR"
    return JSONResponse(error_body(category, reason), status_code=decision.status_code, headers=headers)


class HubSpotTicket:
    """One API request at the gate: its portal (from the token), HubSpot's faults, limits and shapes."""

    def __init__(self, sandbox: HubSpotSandbox, scope: Scope, route: str) -> None:
        self.sandbox = sandbox
        self.route = route
        self.token = bearer(scope_header(scope, b"authorization"))
        self.portal = sandbox.portal_for_token(self.token)
        self.decision = GateDecision(GateOutcome.OK)
        sandbox.record_request(self.portal, route)

    def admit(self) -> Response | None:
        self.decision = self.sandbox.gate(self.portal)
        if self.decision.outcome is GateOutcome.OK:
            return None
        return _gate_response(self.decision, self.token)

    def headers(self) -> Sequence[tuple[str, str]]:
        return _rate_headers(self.decision)

    def record_status(self, status_code: int) -> None:
        self.sandbox.record_status(self.portal, status_code)

    def lose_answer(self, status_code: int) -> Response | None:
        # The handler has applied the request; its answer may still be lost on the way back.
        return _lost_answer() if self.sandbox.drop_answer(self.portal, self.route, status_code) else None


# --------------------------------------------------------------------------------------------------
# Dependencies and response helpers
# --------------------------------------------------------------------------------------------------


async def _sandbox_dep(request: Request) -> HubSpotSandbox:
    return sandbox_of(request.app)


SandboxDep = Annotated[HubSpotSandbox, Depends(_sandbox_dep)]


async def _portal_dep(request: Request, sandbox: SandboxDep) -> PortalState:
    # The gate already refused unknown tokens; checking again keeps handlers safe on their own.
    token = bearer(request.headers.get("authorization"))
    portal = sandbox.portal_for_token(token)
    if portal is None:
        raise _unauthorized(token)
    return portal


PortalDep = Annotated[PortalState, Depends(_portal_dep)]
ListParam = Annotated[list[str] | None, Query()]


def names(values: list[str] | None) -> list[str] | None:
    """Query lists may be repeated (``?p=a&p=b``) or comma-separated (``?p=a,b``)."""
    if not values:
        return None
    return [name for value in values for name in value.split(",") if name]


def batch_response(outcome: BatchOutcome, started: Any, ok: int = 200) -> JSONResponse:
    return JSONResponse(outcome.body(started), status_code=outcome.status_code(ok))


# In the order they are registered on the app.
ERROR_HANDLERS: dict[type[Exception], ErrorHandler] = {
    SandboxError: _sandbox_error_handler,
    RequestValidationError: _validation_error_handler,
    StarletteHTTPException: _http_error_handler,
}
