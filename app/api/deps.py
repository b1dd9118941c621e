"""Request dependencies, defined once as Annotated aliases."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterator
from typing import Annotated, Any

from fastapi import Depends, Header, HTTPException, Path, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from sqlmodel import Session

from app.config import Settings
from app.db import read_session, unit_of_work
from app.security import admin_auth_failure
from app.state import AppState


async def get_state(request: Request) -> AppState:
    # async on purpose: a plain `def` dependency costs a threadpool hop on every webhook request.
    state: AppState = request.app.state.app_state
    return state


StateDep = Annotated[AppState, Depends(get_state)]


async def get_settings_dep(state: StateDep) -> Settings:
    return state.settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


def get_read_session(state: StateDep) -> Iterator[Session]:
    """For handlers that only read (every admin GET): a read-only session that never commits.

    On SQLite it never waits for the write lock the worker and the webhook writer take, so a GET
    answers while a batch is being written; on both databases a write through it fails loudly.
    """
    with read_session(state.read_engine) as session:
        yield session


ReadSessionDep = Annotated[Session, Depends(get_read_session)]


def get_session(state: StateDep) -> Iterator[Session]:
    # The request is the unit of work: commit once at the end, roll back on any error. Handlers
    # that only read take ReadSessionDep instead.
    with unit_of_work(state.engine) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def require_admin(settings: SettingsDep, authorization: Annotated[str | None, Header()] = None) -> None:
    # RequestGuard refuses these before the body is read; checked here too, so that a route is never
    # open because of how the app was assembled.
    expected = settings.admin_api_token.get_secret_value() if settings.admin_api_token else ""
    failure = admin_auth_failure(expected, authorization)
    if failure is not None:
        status, reason = failure
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        raise HTTPException(status, detail=reason, headers=headers)


AdminAuth = Depends(require_admin)


# --- Path parameters, constrained once -----------------------------------------------------------
# Out-of-range or malformed ids answer 422 naming the parameter (never reaching the database, where
# they raised "bigint out of range" or a NUL error: a 500); a well-formed id that is not there, 404.

MAX_PORTAL_ID = 2**63 - 1  # portal ids are stored as BIGINT
WEBINAR_ID_PATTERN = r"^[0-9]{1,20}$"
# A Zoom user id (or what a webhook stored as one): up to 64 characters, no control characters.
ZOOM_USER_ID_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]{1,64}$"
# Job ids are uuid4 hex (app.pull.schedule.new_job_id); any short token is looked up (unknown: 404).
JOB_ID_PATTERN = r"^[A-Za-z0-9_-]{1,32}$"

PortalId = Annotated[
    int,
    Path(
        ge=1,
        le=MAX_PORTAL_ID,
        description="HubSpot portal (hub) id, 1 to 2^63-1; outside that range: 422. An unknown portal: 404.",
    ),
]
WebinarId = Annotated[
    str,
    Path(
        pattern=WEBINAR_ID_PATTERN,
        description="Zoom webinar id: 1 to 20 digits; anything else: 422. An unknown webinar: 404.",
    ),
]
ZoomUserId = Annotated[
    str,
    Path(
        pattern=ZOOM_USER_ID_PATTERN,
        description="Zoom user id: 1 to 64 characters, no control characters; else 422. Unknown: 404.",
    ),
]
JobId = Annotated[
    str,
    Path(
        pattern=JOB_ID_PATTERN,
        description="Sync job id: 1 to 32 letters, digits, '-' or '_'; else 422. Unknown: 404.",
    ),
]


# --- 422 answers that can always be written ------------------------------------------------------


def _printable(value: Any) -> Any:
    """`value` with lone surrogates escaped, in every string of it (keys and nested values)."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_printable(k): _printable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_printable(v) for v in value)
    return value


class AdminRoute(APIRoute):
    """Routes whose 422 can always be encoded.

    A JSON body may carry a lone surrogate (`"\\ud800"`): Python's JSON parser accepts it, and the
    validation error echoes it back (`input`, `loc`), which then fails to encode as UTF-8, a 500
    with a traceback instead of the 422. Escaping the surrogates keeps the 422 and names the field.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                raise RequestValidationError(
                    _printable(list(exc.errors())), body=None, endpoint_ctx=exc.endpoint_ctx
                ) from None

        return handle
