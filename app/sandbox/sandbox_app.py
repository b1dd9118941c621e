"""How both sandboxes assemble their FastAPI app, once: OpenAPI docs under the control prefix, the
vendor's error handlers, the API routers behind the request gate and the control router beside it
(the gate never sees ``/_sandbox/``), and typed access to the sandbox state the app carries.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from fastapi import APIRouter, FastAPI, Request
from starlette.responses import Response
from starlette.types import Lifespan, Scope

from app.sandbox.gate import Gated, RequestGate, Ticket

CONTROL_PREFIX = "/_sandbox"

ErrorHandler = Callable[[Request, Any], Awaitable[Response]]
SandboxT = TypeVar("SandboxT")


def build_sandbox_app(
    *,
    title: str,
    sandbox: Gated,
    api_routers: Sequence[APIRouter],
    control: APIRouter,
    error_handlers: Mapping[type[Exception], ErrorHandler],
    guards: Callable[[str], bool],
    open_ticket: Callable[[Scope, str], Ticket],
    lifespan: Lifespan[FastAPI] | None = None,
) -> FastAPI:
    """The app serving `sandbox`; `api_routers` are gated, `control` is not (see `RequestGate`)."""
    app = FastAPI(
        title=title,
        docs_url=f"{CONTROL_PREFIX}/docs",
        redoc_url=None,
        openapi_url=f"{CONTROL_PREFIX}/openapi.json",
        lifespan=lifespan,
    )
    app.state.sandbox = sandbox
    for exc_type, handler in error_handlers.items():
        app.add_exception_handler(exc_type, handler)
    for router in (*api_routers, control):
        app.include_router(router)
    app.add_middleware(
        RequestGate,
        sandbox=sandbox,
        routes=[route for router in api_routers for route in router.routes],
        guards=guards,
        open_ticket=open_ticket,
    )
    return app


def sandbox_state(app: FastAPI, kind: type[SandboxT], factory: str) -> SandboxT:
    """``app.state.sandbox`` as a `kind`; a TypeError names `factory` when the app has none."""
    sandbox = getattr(app.state, "sandbox", None)
    if not isinstance(sandbox, kind):
        raise TypeError(f"this app was not built by {factory}()")
    return sandbox
