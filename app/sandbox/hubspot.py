"""A stateful fake HubSpot: an ASGI app for tests, the demo and benchmarks, also runnable on its own.

``create_hubspot_sandbox()`` builds a FastAPI app that serves the HubSpot endpoints this service uses,
at HubSpot's own paths and with HubSpot's JSON shapes (contacts, contact properties, timeline v3,
marketing events, calls and their associations, settings users, workflow-action callbacks). Its state
lives in memory in a :class:`~app.sandbox.hubspot_state.HubSpotSandbox`, reachable as
``app.state.sandbox`` (typed access: :func:`sandbox_of`). Behaviour choices where HubSpot's own is
undocumented are listed in :mod:`app.sandbox.hubspot_state`.

Every API request passes a gate, in this order: ``slow_ms`` delay, ``down`` (503), random 5xx at
``error_rate`` (500/502/503; a 502 has an HTML body like a proxy error page), bearer-token auth (401;
the token picks the portal), ``burst_429`` forced 429s, then the per-portal rolling-window rate limit
(429 with HubSpot's body and headers). Admitted responses carry the ``X-HubSpot-RateLimit-*`` headers.
After the request was applied, ``drop_answer_after_apply`` may replace a success with a 504 (the
answer is lost, the change stays); ``search_lag_s`` delays what call search sees.
Every request is counted per ``"METHOD /path/template"`` in ``stats.requests``, globally and per portal.

The control API under ``/_sandbox/`` needs no token and bypasses the gate:
``GET /_sandbox/state?portal=``, ``POST /_sandbox/users``, ``POST /_sandbox/contacts``,
``GET|POST /_sandbox/faults``, ``POST /_sandbox/reset``, ``GET /_sandbox/health``; OpenAPI docs at
``/_sandbox/docs``.

Run it: ``python -m app.sandbox.hubspot [PORT] [--host H] [--token TOKEN=PORTAL ...]`` (port 8901).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import uvicorn
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope

from app.sandbox.gate import GateOutcome, RequestGate, bearer, scope_header
from app.sandbox.hubspot_bodies import (
    AssociationPair,
    AttendanceInput,
    Batch,
    CallbackBody,
    CallbackInput,
    CallCreate,
    CallUpdateInput,
    CompleteBody,
    ContactBatchRead,
    ContactUpsertInput,
    FaultsUpdate,
    GdprDelete,
    MarketingEventBody,
    PropertiesBody,
    PropertyCreate,
    PropertyGroupCreate,
    SearchBody,
    SeedContacts,
    SeedUsers,
    TemplateCreate,
    TimelineEventInput,
)
from app.sandbox.hubspot_common import (
    CALL_TO_CONTACT,
    CREATE_CALL_ROUTE,
    BatchOutcome,
    SandboxError,
    error_body,
    new_uuid,
    now_utc,
    validation_error,
)
from app.sandbox.hubspot_state import Faults, GateDecision, HubSpotSandbox, PortalState

__all__ = ["CONTROL_PREFIX", "DEFAULT_PORT", "HubSpotSandbox", "create_hubspot_sandbox", "main", "sandbox_of"]

CONTROL_PREFIX = "/_sandbox"
DEFAULT_PORT = 8901
RATE_LIMIT_MESSAGE = "You have reached your secondly limit."


def create_hubspot_sandbox(
    *,
    tokens: Mapping[str, int] | None = None,
    rate_limit: int = 100,
    window_s: float = 10.0,
    app_id: str = "1001",
    error_rate: float = 0.0,
    slow_ms: int = 0,
    down: bool = False,
    burst_429: int = 0,
    seed: int = 0,
    strict_properties: bool = True,
    drop_answer_after_apply: int = 0,
    drop_answer_route: str = CREATE_CALL_ROUTE,
    search_lag_s: float = 0.0,
) -> FastAPI:
    """The fake HubSpot. ``tokens`` maps bearer tokens to portal ids (default ``{"sandbox-token": 1}``).

    ``rate_limit`` requests per rolling ``window_s`` seconds are admitted per portal; the fault fields
    (``error_rate``, ``slow_ms``, ``down``, ``burst_429``, ``seed`` for the fault RNG) are the initial
    values, restored by ``POST /_sandbox/reset``. With ``strict_properties`` writes of undefined contact
    properties fail like in HubSpot. ``drop_answer_after_apply`` successful requests to
    ``drop_answer_route`` are applied and answered 504; call search trails writes by ``search_lag_s``.
    """
    faults = Faults(
        error_rate=error_rate,
        slow_ms=slow_ms,
        down=down,
        burst_429=burst_429,
        seed=seed,
        drop_answer_after_apply=drop_answer_after_apply,
        drop_answer_route=drop_answer_route,
        search_lag_s=search_lag_s,
    )
    sandbox = HubSpotSandbox(
        tokens=tokens,
        rate_limit=rate_limit,
        window_s=window_s,
        app_id=app_id,
        faults=faults,
        strict_properties=strict_properties,
    )
    app = FastAPI(
        title="HubSpot sandbox",
        docs_url=f"{CONTROL_PREFIX}/docs",
        redoc_url=None,
        openapi_url=f"{CONTROL_PREFIX}/openapi.json",
    )
    app.state.sandbox = sandbox
    app.add_exception_handler(SandboxError, _sandbox_error_handler)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error_handler)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)  # type: ignore[arg-type]
    api_routers = (contacts, properties, timeline, marketing, calls, users, automation)
    for router in (*api_routers, control):
        app.include_router(router)
    app.add_middleware(
        RequestGate,
        sandbox=sandbox,
        routes=[r for router in api_routers for r in router.routes],
        guards=lambda path: not path.startswith(CONTROL_PREFIX),
        open_ticket=lambda scope, route: _HubSpotTicket(sandbox, scope, route),
    )
    return app


def sandbox_of(app: FastAPI) -> HubSpotSandbox:
    """``app.state.sandbox`` with its type."""
    sandbox = getattr(app.state, "sandbox", None)
    if not isinstance(sandbox, HubSpotSandbox):
        raise TypeError("this app was not built by create_hubspot_sandbox()")
    return sandbox


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


class _HubSpotTicket:
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


def _names(values: list[str] | None) -> list[str] | None:
    """Query lists may be repeated (``?p=a&p=b``) or comma-separated (``?p=a,b``)."""
    if not values:
        return None
    return [name for value in values for name in value.split(",") if name]


def _batch(outcome: BatchOutcome, started: Any, ok: int = 200) -> JSONResponse:
    return JSONResponse(outcome.body(started), status_code=outcome.status_code(ok))


# --------------------------------------------------------------------------------------------------
# Contacts
# --------------------------------------------------------------------------------------------------

contacts = APIRouter(tags=["contacts"])


@contacts.post("/crm/v3/objects/contacts/batch/upsert")
async def upsert_contacts(
    body: Batch[ContactUpsertInput], sandbox: SandboxDep, portal: PortalDep
) -> JSONResponse:
    started = now_utc()
    async with sandbox.lock:
        outcome = portal.upsert_contacts(body.inputs, strict=sandbox.strict_properties)
    return _batch(outcome, started)


@contacts.post("/crm/v3/objects/contacts/batch/read")
async def read_contacts(
    body: ContactBatchRead, sandbox: SandboxDep, portal: PortalDep, archived: bool = False
) -> JSONResponse:
    started = now_utc()
    async with sandbox.lock:
        outcome = portal.read_contacts(body, archived=archived)
    return _batch(outcome, started)


@contacts.post("/crm/v3/objects/contacts/gdpr-delete", status_code=204)
async def gdpr_delete_contact(body: GdprDelete, sandbox: SandboxDep, portal: PortalDep) -> Response:
    async with sandbox.lock:
        portal.purge_contact(body.objectId, body.idProperty)
    return Response(status_code=204)


@contacts.get("/crm/v3/objects/contacts")
async def list_contacts(
    sandbox: SandboxDep,
    portal: PortalDep,
    limit: int = 10,
    after: str | None = None,
    archived: bool = False,
    properties: ListParam = None,
) -> dict[str, Any]:
    async with sandbox.lock:
        return portal.list_contacts(
            limit=limit, after=after, archived=archived, properties=_names(properties)
        )


@contacts.get("/crm/v3/objects/contacts/{contact_id}")
async def get_contact(
    contact_id: str,
    sandbox: SandboxDep,
    portal: PortalDep,
    archived: bool = False,
    idProperty: str | None = None,  # HubSpot's parameter name
    properties: ListParam = None,
) -> dict[str, Any]:
    async with sandbox.lock:
        return portal.get_contact(
            contact_id, archived=archived, id_property=idProperty, properties=_names(properties)
        )


@contacts.delete("/crm/v3/objects/contacts/{contact_id}", status_code=204)
async def archive_contact(contact_id: str, sandbox: SandboxDep, portal: PortalDep) -> Response:
    async with sandbox.lock:
        portal.archive_contact(contact_id)
    return Response(status_code=204)


# --------------------------------------------------------------------------------------------------
# Contact properties and groups
# --------------------------------------------------------------------------------------------------

properties = APIRouter(tags=["properties"])


@properties.get("/crm/v3/properties/contacts/groups")
async def list_groups(sandbox: SandboxDep, portal: PortalDep) -> dict[str, Any]:
    async with sandbox.lock:
        return {"results": [g.to_json() for g in portal.property_groups.values()]}


@properties.post("/crm/v3/properties/contacts/groups", status_code=201)
async def create_group(body: PropertyGroupCreate, sandbox: SandboxDep, portal: PortalDep) -> dict[str, Any]:
    async with sandbox.lock:
        return portal.create_group(body)


@properties.get("/crm/v3/properties/contacts/groups/{name}")
async def get_group(name: str, sandbox: SandboxDep, portal: PortalDep) -> dict[str, Any]:
    async with sandbox.lock:
        return portal.get_group(name)


@properties.get("/crm/v3/properties/contacts")
async def list_properties(sandbox: SandboxDep, portal: PortalDep) -> dict[str, Any]:
    async with sandbox.lock:
        return {"results": [p.to_json() for p in portal.properties.values()]}


@properties.post("/crm/v3/properties/contacts", status_code=201)
async def create_property(body: PropertyCreate, sandbox: SandboxDep, portal: PortalDep) -> dict[str, Any]:
    async with sandbox.lock:
        return portal.create_property(body)


@properties.get("/crm/v3/properties/contacts/{name}")
async def get_property(name: str, sandbox: SandboxDep, portal: PortalDep) -> dict[str, Any]:
    async with sandbox.lock:
        return portal.get_property(name)


# --------------------------------------------------------------------------------------------------
# Timeline events v3
# --------------------------------------------------------------------------------------------------

timeline = APIRouter(tags=["timeline"])


@timeline.post("/integrators/timeline/v3/events/batch/create")
async def create_timeline_events(
    body: Batch[TimelineEventInput], sandbox: SandboxDep, portal: PortalDep
) -> JSONResponse:
    started = now_utc()
    async with sandbox.lock:
        outcome = portal.create_timeline_events(body.inputs, sandbox.templates)
    return _batch(outcome, started, ok=201)


@timeline.get("/integrators/timeline/v3/events/{template_id}/{event_id}")
async def get_timeline_event(
    template_id: str, event_id: str, sandbox: SandboxDep, portal: PortalDep
) -> dict[str, Any]:
    async with sandbox.lock:
        return portal.get_timeline_event(template_id, event_id)


@timeline.get("/integrators/timeline/v3/{app_id}/event-templates")
async def list_templates(app_id: str, sandbox: SandboxDep, _: PortalDep) -> dict[str, Any]:
    async with sandbox.lock:
        return sandbox.list_templates(app_id)


@timeline.post("/integrators/timeline/v3/{app_id}/event-templates", status_code=201)
async def create_template(
    app_id: str, body: TemplateCreate, sandbox: SandboxDep, _: PortalDep
) -> dict[str, Any]:
    async with sandbox.lock:
        return sandbox.create_template(app_id, body)


@timeline.get("/integrators/timeline/v3/{app_id}/event-templates/{template_id}")
async def get_template(app_id: str, template_id: str, sandbox: SandboxDep, _: PortalDep) -> dict[str, Any]:
    async with sandbox.lock:
        return sandbox.get_template(app_id, template_id)


# --------------------------------------------------------------------------------------------------
# Marketing events v3
# --------------------------------------------------------------------------------------------------

marketing = APIRouter(prefix="/marketing/v3/marketing-events", tags=["marketing events"])
AccountParam = Annotated[str | None, Query(alias="externalAccountId")]


@marketing.post("/events")
async def create_marketing_event(
    body: MarketingEventBody, sandbox: SandboxDep, portal: PortalDep
) -> dict[str, Any]:
    async with sandbox.lock:
        return portal.create_marketing_event(body)


@marketing.put("/events/{external_event_id}")
async def upsert_marketing_event(
    external_event_id: str, body: MarketingEventBody, sandbox: SandboxDep, portal: PortalDep
) -> dict[str, Any]:
    async with sandbox.lock:
        return portal.upsert_marketing_event(external_event_id, body)


@marketing.patch("/events/{external_event_id}")
async def patch_marketing_event(
    external_event_id: str,
    body: MarketingEventBody,
    sandbox: SandboxDep,
    portal: PortalDep,
    account_id: AccountParam = None,
) -> dict[str, Any]:
    async with sandbox.lock:
        return portal.patch_marketing_event(external_event_id, account_id, body)


@marketing.get("/events/{external_event_id}")
async def get_marketing_event(
    external_event_id: str, sandbox: SandboxDep, portal: PortalDep, account_id: AccountParam = None
) -> dict[str, Any]:
    async with sandbox.lock:
        return portal.get_marketing_event(external_event_id, account_id)


@marketing.post("/events/{external_event_id}/complete")
async def complete_marketing_event(
    external_event_id: str,
    body: CompleteBody,
    sandbox: SandboxDep,
    portal: PortalDep,
    account_id: AccountParam = None,
) -> dict[str, Any]:
    async with sandbox.lock:
        return portal.complete_marketing_event(external_event_id, account_id, body)


@marketing.post("/attendance/{external_event_id}/{state}/create")
async def record_attendance(
    external_event_id: str,
    state: str,
    body: Batch[AttendanceInput],
    sandbox: SandboxDep,
    portal: PortalDep,
    account_id: AccountParam = None,
) -> dict[str, Any]:
    started = now_utc()
    async with sandbox.lock:
        outcome = portal.record_attendance(external_event_id, state, account_id, body.inputs)
    return outcome.body(started)  # 200 even with per-input errors, like HubSpot


# --------------------------------------------------------------------------------------------------
# Calls and their associations
# --------------------------------------------------------------------------------------------------

calls = APIRouter(tags=["calls"])


@calls.post("/crm/v3/objects/calls", status_code=201)
async def create_call(body: CallCreate, sandbox: SandboxDep, portal: PortalDep) -> dict[str, Any]:
    async with sandbox.lock:
        return portal.create_call(body)


@calls.post("/crm/v3/objects/calls/search")
async def search_calls(body: SearchBody, sandbox: SandboxDep, portal: PortalDep) -> dict[str, Any]:
    async with sandbox.lock:
        return portal.search_calls(body, lag_s=sandbox.faults.search_lag_s)


@calls.post("/crm/v3/objects/calls/batch/update")
async def batch_update_calls(
    body: Batch[CallUpdateInput], sandbox: SandboxDep, portal: PortalDep
) -> JSONResponse:
    started = now_utc()
    async with sandbox.lock:
        outcome = portal.batch_update_calls(body.inputs)
    return _batch(outcome, started)


@calls.get("/crm/v3/objects/calls/{call_id}")
async def get_call(
    call_id: str, sandbox: SandboxDep, portal: PortalDep, associations: ListParam = None
) -> dict[str, Any]:
    wanted = {name.lower() for name in _names(associations) or ()}
    async with sandbox.lock:
        return portal.get_call(call_id, with_associations=bool(wanted & {"contact", "contacts", "0-1"}))


@calls.patch("/crm/v3/objects/calls/{call_id}")
async def update_call(
    call_id: str, body: PropertiesBody, sandbox: SandboxDep, portal: PortalDep
) -> dict[str, Any]:
    async with sandbox.lock:
        return portal.update_call(call_id, body.properties)


@calls.put("/crm/v3/objects/calls/{call_id}/associations/{to_object_type}/{to_object_id}/{association_type}")
async def associate_call_v3(
    call_id: str,
    to_object_type: str,
    to_object_id: str,
    association_type: str,
    sandbox: SandboxDep,
    portal: PortalDep,
) -> dict[str, Any]:
    if to_object_type.lower() not in ("contact", "contacts", "0-1") or association_type not in (
        str(CALL_TO_CONTACT),
        "call_to_contact",
    ):
        raise validation_error("The sandbox supports only the call-to-contact association (194).")
    async with sandbox.lock:
        portal.associate_call(call_id, to_object_id)
        return portal.get_call(call_id, with_associations=True)


@calls.put("/crm/v4/objects/calls/{call_id}/associations/default/contacts/{contact_id}")
async def associate_call_default(
    call_id: str, contact_id: str, sandbox: SandboxDep, portal: PortalDep
) -> dict[str, Any]:
    started = now_utc()
    async with sandbox.lock:
        result = portal.associate_call(call_id, contact_id)
    return BatchOutcome(results=[result]).body(started)


@calls.post("/crm/v4/associations/calls/contacts/batch/associate/default")
async def batch_associate_calls(
    body: Batch[AssociationPair], sandbox: SandboxDep, portal: PortalDep
) -> JSONResponse:
    started = now_utc()
    async with sandbox.lock:
        outcome = portal.batch_associate_calls(body.inputs)
    return _batch(outcome, started)


# --------------------------------------------------------------------------------------------------
# Settings users and workflow-action callbacks
# --------------------------------------------------------------------------------------------------

users = APIRouter(tags=["users"])


@users.get("/settings/v3/users/")
@users.get("/settings/v3/users", include_in_schema=False)
async def list_users(
    sandbox: SandboxDep, portal: PortalDep, limit: int = 100, after: str | None = None
) -> dict[str, Any]:
    async with sandbox.lock:
        return portal.list_users(limit=limit, after=after)


automation = APIRouter(prefix="/automation/v4/actions", tags=["automation"])


@automation.post("/callbacks/complete", status_code=204)
async def complete_callbacks(body: Batch[CallbackInput], sandbox: SandboxDep, portal: PortalDep) -> Response:
    async with sandbox.lock:
        portal.complete_callbacks(body.inputs)
    return Response(status_code=204)


@automation.post("/callbacks/{callback_id}/complete", status_code=204)
async def complete_callback(
    callback_id: str, body: CallbackBody, sandbox: SandboxDep, portal: PortalDep
) -> Response:
    async with sandbox.lock:
        portal.complete_callback(callback_id, body)
    return Response(status_code=204)


@automation.get("/{app_id}")
async def list_action_definitions(app_id: str, sandbox: SandboxDep, _: PortalDep) -> dict[str, Any]:
    async with sandbox.lock:
        return sandbox.list_action_definitions(app_id)


@automation.post("/{app_id}", status_code=201)
async def create_action_definition(
    app_id: str, body: dict[str, Any], sandbox: SandboxDep, _: PortalDep
) -> dict[str, Any]:
    async with sandbox.lock:
        return sandbox.create_action_definition(app_id, body)


@automation.patch("/{app_id}/{definition_id}")
async def update_action_definition(
    app_id: str, definition_id: str, body: dict[str, Any], sandbox: SandboxDep, _: PortalDep
) -> dict[str, Any]:
    async with sandbox.lock:
        return sandbox.update_action_definition(app_id, definition_id, body)


# --------------------------------------------------------------------------------------------------
# Control and inspection API (no auth, no gate)
# --------------------------------------------------------------------------------------------------

control = APIRouter(prefix=CONTROL_PREFIX, tags=["sandbox control"])


@control.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@control.get("/state")
async def state(sandbox: SandboxDep, portal: int | None = None) -> dict[str, Any]:
    async with sandbox.lock:
        return sandbox.snapshot(portal)


@control.post("/users", status_code=201)
async def seed_users(body: SeedUsers, sandbox: SandboxDep) -> dict[str, Any]:
    async with sandbox.lock:
        target = sandbox.portal(body.portal)
        created = [target.add_user(user).to_json() for user in body.users]
    return {"portal": target.portal_id, "users": created}


@control.post("/contacts", status_code=201)
async def seed_contacts(body: SeedContacts, sandbox: SandboxDep) -> dict[str, Any]:
    async with sandbox.lock:
        target = sandbox.portal(body.portal)
        created = [target.seed_contact(contact).to_json() for contact in body.contacts]
    return {"portal": target.portal_id, "contacts": created}


@control.get("/faults")
async def get_faults(sandbox: SandboxDep) -> dict[str, Any]:
    return sandbox.settings()


@control.post("/faults")
async def set_faults(body: FaultsUpdate, sandbox: SandboxDep) -> dict[str, Any]:
    async with sandbox.lock:
        return sandbox.set_faults(body)


@control.post("/reset")
async def reset(sandbox: SandboxDep) -> dict[str, str]:
    async with sandbox.lock:
        sandbox.reset()
    return {"status": "reset"}


# --------------------------------------------------------------------------------------------------
# Running on its own
# --------------------------------------------------------------------------------------------------


def _token_pair(text: str) -> tuple[str, int]:
    token, sep, portal = text.partition("=")
    if not sep or not token or not portal.isdigit():
        raise argparse.ArgumentTypeError("expected TOKEN=PORTAL_ID, e.g. sandbox-token=1")
    return token, int(portal)


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the sandbox with uvicorn: ``python -m app.sandbox.hubspot [PORT]``."""
    parser = argparse.ArgumentParser(prog="python -m app.sandbox.hubspot", description="Fake HubSpot API.")
    parser.add_argument("port", nargs="?", type=int, default=DEFAULT_PORT)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--token", action="append", type=_token_pair, metavar="TOKEN=PORTAL")
    parser.add_argument("--rate-limit", type=int, default=100, help="requests per window per portal")
    parser.add_argument("--window", type=float, default=10.0, help="rate-limit window in seconds")
    parser.add_argument("--app-id", default="1001")
    args = parser.parse_args(argv)
    app = create_hubspot_sandbox(
        tokens=dict(args.token) if args.token else None,
        rate_limit=args.rate_limit,
        window_s=args.window,
        app_id=args.app_id,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
