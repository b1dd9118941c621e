"""The fake Zoom's HTTP plumbing shared by its route modules: Zoom-shaped error handlers, which paths
the request gate guards, the gate's ticket (auth and per-label rate limits for ``/v2``, faults only
for the token endpoint and downloads) and the FastAPI dependencies the routes use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope

from app.sandbox.gate import GateOutcome, bearer, scope_header
from app.sandbox.sandbox_app import CONTROL_PREFIX, ErrorHandler, sandbox_state
from app.sandbox.zoom_common import RateLabel, ZoomError
from app.sandbox.zoom_records import Account, GateDecision
from app.sandbox.zoom_state import ZoomSandbox

API_PREFIX = "/v2"

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


def zoom_sandbox_of(app: FastAPI) -> ZoomSandbox:
    """``app.state.sandbox`` with its type."""
    return sandbox_state(app, ZoomSandbox, "create_zoom_sandbox")


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


def guarded(path: str) -> bool:
    """The REST API, the token endpoint and downloads; never the control API."""
    return not path.startswith(CONTROL_PREFIX) and (_is_api(path) or path.startswith(("/oauth/", "/rec/")))


def _is_api(path: str) -> bool:
    return path == API_PREFIX or path.startswith(API_PREFIX + "/")


class ZoomTicket:
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


# In the order they are registered on the app.
ERROR_HANDLERS: dict[type[Exception], ErrorHandler] = {
    ZoomError: _zoom_error_handler,
    RequestValidationError: _validation_error_handler,
    StarletteHTTPException: _http_error_handler,
}
