"""Request dependencies, defined once as Annotated aliases."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterator
from typing import Annotated, Any

from fastapi import Depends, Header, HTTPException, Path, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from app.admin.errors import AdminError
from app.config import Settings
from app.db import read_session
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


# The scope key under which a request's UnitOfWork waits for AdminRoute to commit it.
_UNIT_OF_WORK = "app.unit_of_work"


class UnitOfWork:
    """A request that writes: one session, committed once by `AdminRoute` after the endpoint
    returned and before the answer is sent, or rolled back (an error, a refusal).

    Why the route commits and not the dependency: FastAPI runs a yield dependency's exit after the
    response is sent (0.118 and later), so a commit there could fail after a 2xx went out, and a
    wake-up fired there could not know whether the commit worked. `after_commit` callbacks run only
    once the commit succeeded, on the event loop (a wake-up is an `asyncio.Event.set`, which must
    not be called from the threadpool a sync endpoint runs in).
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self._after_commit: list[Callable[[], None]] = []

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call `callback` once this request's writes are committed; never after a rollback."""
        self._after_commit.append(callback)

    def commit(self) -> list[Callable[[], None]]:
        """Commit, then hand back the callbacks now due (the caller runs them)."""
        self.session.commit()
        due, self._after_commit = self._after_commit, []
        return due


def get_unit_of_work(request: Request, state: StateDep) -> Iterator[UnitOfWork]:
    if _UNIT_OF_WORK not in request.scope:
        # Only AdminRoute commits: anywhere else the writes would be dropped without a word.
        raise RuntimeError("UnitOfWorkDep needs a route with route_class=AdminRoute, which commits it")
    with Session(state.engine, expire_on_commit=False) as session:
        uow = UnitOfWork(session)
        request.scope[_UNIT_OF_WORK] = uow
        try:
            yield uow
        finally:
            # A no-op after AdminRoute's commit; otherwise (an error, a refusal) nothing is kept.
            session.rollback()


UnitOfWorkDep = Annotated[UnitOfWork, Depends(get_unit_of_work)]


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
    """The admin routes: a service's refusal becomes its answer, a request's writes are committed
    before the answer is sent, and a 422 can always be encoded.

    - `AdminError` (app/admin/errors.py), raised by a dependency or the endpoint, answers
      `{"detail": err.detail}` with its status code and headers: the one mapping of refusals.
    - A `UnitOfWorkDep` of the request is committed once the endpoint returned, and its
      `after_commit` callbacks run after that commit succeeded (see `UnitOfWork`).
    - A JSON body may carry a lone surrogate (`"\\ud800"`): Python's JSON parser accepts it, and the
      validation error echoes it back (`input`, `loc`), which then fails to encode as UTF-8, a 500
      with a traceback instead of the 422. Escaping the surrogates keeps the 422 and names the field.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            request.scope[_UNIT_OF_WORK] = None  # this route commits (get_unit_of_work checks)
            try:
                response = await handler(request)
            except RequestValidationError as exc:
                raise RequestValidationError(
                    _printable(list(exc.errors())), body=None, endpoint_ctx=exc.endpoint_ctx
                ) from None
            except AdminError as err:
                # Not committed: the unit of work's dependency rolls back when it closes.
                return JSONResponse(
                    status_code=err.status_code, content={"detail": err.detail}, headers=err.headers
                )
            uow = request.scope.get(_UNIT_OF_WORK)
            if isinstance(uow, UnitOfWork):
                for callback in await run_in_threadpool(uow.commit):
                    callback()
            return response

        return handle
