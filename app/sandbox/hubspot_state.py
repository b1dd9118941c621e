"""In-memory state and behaviour of the fake HubSpot served by :mod:`app.sandbox.hubspot`.

This module knows nothing about HTTP routing: it holds the data of every portal (contacts, property
definitions, timeline events, marketing events, calls, account users, completed workflow callbacks),
applies HubSpot's rules to it, and decides what the request gate (faults, auth, rate limit) does.
A portal is one :class:`PortalState` made of one mixin per resource (``hubspot_contacts``,
``hubspot_timeline``, ``hubspot_marketing``, ``hubspot_calls``); what they store is in
``hubspot_records``, the request bodies in ``hubspot_bodies``, shared helpers and HubSpot's error
shapes in ``hubspot_common``.
This module is a little over 500 lines because of the notes below on HubSpot behaviour the sandbox
had to choose; they belong with the state they describe.
Whole-request failures raise :class:`SandboxError`; per-input failures of batch calls come back as
HubSpot "StandardError" entries inside a :class:`BatchOutcome`.

Every mutating method is synchronous (no ``await`` inside), so one call is atomic within the event
loop; the HTTP layer still takes :attr:`HubSpotSandbox.lock` around them so that the order of
concurrent requests is explicit.

Choices where HubSpot's behaviour is not documented (see ``/work/shared/reference/hubspot.md``):

* Batch upsert by email of an address that belongs only to an **archived** contact yields a 207 error
  entry (category ``CONFLICT``, code ``CONTACT_ARCHIVED``) instead of creating a new contact or
  restoring the archived one. Real HubSpot behaviour here is UNVERIFIED; the sandbox picks the strict
  answer so that a service that writes to deleted contacts is caught.
* Batch upsert by email resolves secondary addresses (``hs_additional_emails``) like batch read does,
  and then updates the contact that owns the address (UNVERIFIED).
* Duplicate ids inside one upsert batch are a 400 for the whole request.
* With ``strict_properties`` (default), writing a contact property that is not defined yields a 207
  error entry ``PROPERTY_DOESNT_EXIST``, and non-numeric values of ``number`` properties one with
  ``INVALID_NUMBER``.
* Timeline events: only ``objectId`` identification of contacts is supported; tokens not defined on
  the template are an error entry; every 207 error entry names the offending input in ``context``.
* Marketing-event attendance answers 200 even when some inputs fail (per the reference) and has no
  batch limit (UNVERIFIED upstream); ``POST .../events`` for an event that exists is a 409.
* Workflow callback completions are recorded as received, duplicates included (tests can count them).
* Call search (``POST /crm/v3/objects/calls/search``) supports the operators ``EQ``, ``NEQ``, ``IN``,
  ``NOT_IN``, ``HAS_PROPERTY`` and ``NOT_HAS_PROPERTY`` with exact, case-sensitive string comparison
  (HubSpot's case handling is UNVERIFIED), no ``sorts`` and no ``query``, and returns results in id
  order. HubSpot's search index trails writes by "a few moments" (no documented figure); the fault
  ``search_lag_s`` (default 0) makes search see each call as it was that many seconds ago.
* The fault ``drop_answer_after_apply`` applies the next N successful requests to ``drop_answer_route``
  and then answers 504 with a gateway's HTML page, as when HubSpot's edge gives up waiting for a
  backend that did the work: the client cannot tell whether it happened.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.integrations.hubspot.wire import iso_utc, property_value
from app.sandbox import gate
from app.sandbox.gate import GateOutcome, injected_fault
from app.sandbox.hubspot_activities import ActivitiesMixin, ActivitySettings, AppEventRecord, Note
from app.sandbox.hubspot_bodies import (
    CallbackBody,
    CallbackInput,
    FaultsUpdate,
    SeedUser,
    TemplateCreate,
    TemplateToken,
)
from app.sandbox.hubspot_calls import CallsMixin
from app.sandbox.hubspot_common import (
    CREATE_CALL_ROUTE,
    DEFAULT_TOKENS,
    JSON,
    TEMPLATE_OBJECT_TYPES,
    TOKEN_NAME_RE,
    TOKEN_TYPES,
    USERS_PAGE_LIMIT,
    SandboxError,
    check_batch_size,
    not_found,
    now_utc,
    validation_error,
)
from app.sandbox.hubspot_marketing import MarketingMixin
from app.sandbox.hubspot_oauth import OAuthServer
from app.sandbox.hubspot_records import (
    Call,
    CallbackCompletion,
    Contact,
    EventTemplate,
    MarketingEvent,
    PropertyDefinition,
    PropertyGroup,
    TimelineEvent,
    User,
    id_order,
)
from app.sandbox.hubspot_timeline import TimelineMixin

__all__ = [
    "Faults",
    "GateDecision",
    "HubSpotSandbox",
    "PortalState",
    "RateWindow",
    "Stats",
]


@dataclass
class Stats(gate.RequestStats):
    """The gate's counters, plus 429s (the rate limit's and ``burst_429``'s) as one count."""

    throttled: int = 0

    def to_json(self) -> JSON:
        return {**super().to_json(), "throttled": self.throttled}


@dataclass
class Faults(gate.Faults):
    """The gate's faults, plus HubSpot-only ones: lost answers and a lagging call search."""

    drop_answer_after_apply: int = 0
    drop_answer_route: str = CREATE_CALL_ROUTE
    search_lag_s: float = 0.0
    # The legacy v4 callback routes answer 404 (as for an app HubSpot serves only the 2026-03 ones).
    legacy_callbacks_gone: bool = False

    def to_json(self) -> JSON:
        return {
            **super().to_json(),
            "drop_answer_after_apply": self.drop_answer_after_apply,
            "drop_answer_route": self.drop_answer_route,
            "search_lag_s": self.search_lag_s,
            "legacy_callbacks_gone": self.legacy_callbacks_gone,
        }

    def drops_answer(self, route: str) -> bool:
        """Whether a successful request to `route` is the next whose answer is lost (uses one up)."""
        if self.drop_answer_after_apply <= 0:
            return False
        wanted = self.drop_answer_route
        if not (route == wanted or (wanted.endswith("*") and route.startswith(wanted[:-1]))):
            return False
        self.drop_answer_after_apply -= 1
        return True


@dataclass
class RateWindow:
    """A rolling-window log of admitted requests. Refused (429) requests do not use up budget."""

    hits: deque[float] = field(default_factory=deque)

    def _prune(self, now: float, window_s: float) -> None:
        cutoff = now - window_s
        while self.hits and self.hits[0] <= cutoff:
            self.hits.popleft()

    def remaining(self, now: float, limit: int, window_s: float) -> int:
        self._prune(now, window_s)
        return max(0, limit - len(self.hits))

    def admit(self, now: float, limit: int, window_s: float) -> tuple[bool, int, int]:
        """``(admitted, remaining, retry_after_seconds)``."""
        self._prune(now, window_s)
        if len(self.hits) >= limit:
            wait = self.hits[-limit] + window_s - now if limit > 0 else window_s
            return False, 0, max(1, math.ceil(wait))
        self.hits.append(now)
        return True, limit - len(self.hits), 0


@dataclass(frozen=True)
class GateDecision:
    outcome: GateOutcome
    status_code: int = 200
    limit: int = 0
    remaining: int = 0
    interval_ms: int = 0
    retry_after: int = 0


# --------------------------------------------------------------------------------------------------
# One portal
# --------------------------------------------------------------------------------------------------

_SEED_GROUPS = (("contactinformation", "Contact information"),)
_SEED_PROPERTIES: tuple[tuple[str, str, str, str], ...] = (
    ("email", "Email", "string", "text"),
    ("firstname", "First Name", "string", "text"),
    ("lastname", "Last Name", "string", "text"),
    ("phone", "Phone Number", "string", "phonenumber"),
    ("company", "Company Name", "string", "text"),
    ("jobtitle", "Job Title", "string", "text"),
    ("hs_additional_emails", "Additional email addresses", "enumeration", "checkbox"),
    ("hs_all_assigned_business_unit_ids", "Brands", "enumeration", "checkbox"),
    ("lifecyclestage", "Lifecycle Stage", "enumeration", "radio"),
    ("hs_object_id", "Record ID", "number", "number"),
    ("createdate", "Create Date", "datetime", "date"),
    ("lastmodifieddate", "Last Modified Date", "datetime", "date"),
)


class PortalState(TimelineMixin, MarketingMixin, CallsMixin, ActivitiesMixin):
    """Everything one HubSpot account holds. Ids are per portal, as in separate HubSpot accounts."""

    def __init__(self, portal_id: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.portal_id = portal_id
        self.clock = clock
        self.contacts: dict[str, Contact] = {}
        self._primary: dict[str, list[str]] = {}
        self._secondary: dict[str, list[str]] = {}
        self.property_groups: dict[str, PropertyGroup] = {}
        self.properties: dict[str, PropertyDefinition] = {}
        self.timeline_events: dict[tuple[str, str], TimelineEvent] = {}
        self.marketing_events: dict[tuple[str, str], MarketingEvent] = {}
        self.calls: dict[str, Call] = {}
        self.app_events: dict[tuple[str, str], AppEventRecord] = {}
        self.notes: dict[str, Note] = {}
        self.users: list[User] = []
        self.callbacks: list[CallbackCompletion] = []
        self.stats = Stats()
        self.rate_window = RateWindow()
        self._next_id: Counter[str] = Counter(contact=100, call=50000, marketing_event=70000, user=9000)
        self._seed_properties()

    def _seed_properties(self) -> None:
        moment = now_utc()
        for name, label in _SEED_GROUPS:
            self.property_groups[name] = PropertyGroup(name, label)
        for name, label, type_, field_type in _SEED_PROPERTIES:
            spec: JSON = {"label": label, "fieldType": field_type, "description": "", "options": []}
            self.properties[name] = PropertyDefinition(
                name, type_, "contactinformation", spec, moment, hubspot_defined=True
            )

    # ---- users and callbacks ------------------------------------------------------------------------

    def add_user(self, seed: SeedUser) -> User:
        user = User(
            id=seed.id or self._new_id("user"),
            email=seed.email.strip().lower(),
            first_name=seed.firstName,
            last_name=seed.lastName,
            role_ids=list(seed.roleIds),
            primary_team_id=seed.primaryTeamId,
            super_admin=seed.superAdmin,
        )
        self.users.append(user)
        return user

    def list_users(self, *, limit: int, after: str | None) -> JSON:
        if not 1 <= limit <= USERS_PAGE_LIMIT:
            raise validation_error(f"limit must be between 1 and {USERS_PAGE_LIMIT}.")
        start = int(after) if after and after.isdigit() else 0
        page = self.users[start : start + limit]
        body: JSON = {"results": [u.to_json() for u in page]}
        if start + limit < len(self.users):
            body["paging"] = {"next": {"after": str(start + limit)}}
        return body

    def complete_callbacks(self, inputs: Sequence[CallbackInput]) -> None:
        check_batch_size(inputs)
        moment = now_utc()
        for item in inputs:
            self.complete_callback(item.callbackId, item, moment)

    def complete_callback(self, callback_id: str, body: CallbackBody, moment: datetime | None = None) -> None:
        self.callbacks.append(
            CallbackCompletion(
                callback_id=callback_id,
                output_fields={k: property_value(v) for k, v in body.outputFields.items()},
                received_at=moment or now_utc(),
                typed_outputs=body.typedOutputs,
                failure_reason_type=body.failureReasonType,
                request_context=body.requestContext,
            )
        )

    # ---- inspection ---------------------------------------------------------------------------------

    def snapshot(self) -> JSON:
        return {
            "portal_id": self.portal_id,
            "contacts": [
                {**c.to_json(), "writes": c.writes} for c in sorted(self.contacts.values(), key=id_order)
            ],
            "property_groups": [g.to_json() for g in self.property_groups.values()],
            "properties": [p.to_json() for p in self.properties.values() if not p.hubspot_defined],
            "timeline_events": [e.to_json() for e in self.timeline_events.values()],
            "marketing_events": [m.snapshot() for m in self.marketing_events.values()],
            "calls": [c.to_json(with_associations=True) for c in self.calls.values()],
            **self.activities_snapshot(),
            "users": [u.to_json() for u in self.users],
            "callbacks": [c.to_json() for c in self.callbacks],
            "stats": self.stats.to_json(),
        }


# --------------------------------------------------------------------------------------------------
# The whole sandbox
# --------------------------------------------------------------------------------------------------


class HubSpotSandbox:
    """All portals, the app's timeline event templates, faults, rate limits and request statistics."""

    def __init__(
        self,
        *,
        tokens: Mapping[str, int] | None = None,
        rate_limit: int = 100,
        window_s: float = 10.0,
        app_id: str = "1001",
        faults: Faults | None = None,
        strict_properties: bool = True,
        clock: Callable[[], float] = time.monotonic,
        oauth: OAuthServer | None = None,
    ) -> None:
        self.tokens: dict[str, int] = dict(DEFAULT_TOKENS if tokens is None else tokens)
        if not self.tokens:
            raise ValueError("the sandbox needs at least one token")
        self.app_id = str(app_id)
        self.rate_limit = rate_limit
        self.window_s = window_s
        self.strict_properties = strict_properties
        self.clock = clock
        self.lock = asyncio.Lock()
        self._initial = (rate_limit, window_s, faults or Faults())
        self.faults = Faults()
        self.rng = random.Random()
        self.portals: dict[int, PortalState] = {}
        self.templates: dict[str, EventTemplate] = {}
        self.action_definitions: dict[str, JSON] = {}
        self.stats = Stats()
        self._next_template_id = 1_000_000
        # The app's OAuth server (app.sandbox.hubspot_oauth): its access tokens open the API too.
        self.oauth = oauth or OAuthServer(app_id=self.app_id)
        self.activities = ActivitySettings()
        self.reset()

    @property
    def default_portal_id(self) -> int:
        return next(iter(self.tokens.values()))

    def reset(self) -> None:
        """Forget everything: back to the state the constructor made."""
        rate_limit, window_s, faults = self._initial
        self.rate_limit, self.window_s = rate_limit, window_s
        self.faults = Faults(**faults.to_json())
        self.rng = random.Random(self.faults.seed)
        # Through a lambda: a test may swap `clock` later, and the portals follow.
        self.portals = {
            pid: PortalState(pid, lambda: self.clock()) for pid in dict.fromkeys(self.tokens.values())
        }
        self.templates = {}
        self.action_definitions = {}
        self.stats = Stats()
        self._next_template_id = 1_000_000
        self.activities = ActivitySettings()
        self.oauth.reset()

    def ensure_portal(self, portal_id: int) -> PortalState:
        """The portal, made empty when an OAuth install names one the sandbox did not serve yet."""
        found = self.portals.get(portal_id)
        if found is None:
            found = self.portals[portal_id] = PortalState(portal_id, lambda: self.clock())
        return found

    # ---- workflow action definitions (app-level, like templates) --------------------------------------

    def list_action_definitions(self, app_id: str) -> JSON:
        self._check_app(app_id)
        return {"results": [dict(d) for d in self.action_definitions.values()]}

    def create_action_definition(self, app_id: str, body: Mapping[str, Any]) -> JSON:
        self._check_app(app_id)
        missing = [k for k in ("actionUrl", "objectTypes", "inputFields", "labels") if k not in body]
        if missing or "en" not in (body.get("labels") or {}):
            raise validation_error(f"Missing required fields: {', '.join(missing) or 'labels.en'}")
        definition_id = str(len(self.action_definitions) + 10_000_001)
        definition = {**body, "id": definition_id, "revisionId": "1"}
        self.action_definitions[definition_id] = definition
        return dict(definition)

    def update_action_definition(self, app_id: str, definition_id: str, body: Mapping[str, Any]) -> JSON:
        self._check_app(app_id)
        current = self.action_definitions.get(definition_id)
        if current is None:
            raise not_found(f"Action definition {definition_id} does not exist.")
        revision = str(int(current.get("revisionId", "1")) + 1)
        updated = {**current, **body, "id": definition_id, "revisionId": revision}
        self.action_definitions[definition_id] = updated
        return dict(updated)

    def portal(self, portal_id: int | None = None) -> PortalState:
        found = self.portals.get(self.default_portal_id if portal_id is None else portal_id)
        if found is None:
            raise not_found(f"Portal {portal_id} is not served by this sandbox.")
        return found

    def portal_for_token(self, token: str | None) -> PortalState | None:
        portal_id = self.tokens.get(token) if token else None
        if portal_id is None and token:
            portal_id = self.oauth.portal_for(token)  # None once expired or revoked: a 401
        return self.portals.get(portal_id) if portal_id is not None else None

    def set_faults(self, update: FaultsUpdate) -> JSON:
        if gate.apply_faults_update(self.faults, update):
            self.rng = random.Random(self.faults.seed)
        if update.rate_limit is not None:
            self.rate_limit = update.rate_limit
        if update.window_s is not None:
            self.window_s = update.window_s
        if update.drop_answer_after_apply is not None:
            self.faults.drop_answer_after_apply = update.drop_answer_after_apply
        if update.drop_answer_route is not None:
            self.faults.drop_answer_route = update.drop_answer_route
        if update.search_lag_s is not None:
            self.faults.search_lag_s = update.search_lag_s
        if update.legacy_callbacks_gone is not None:
            self.faults.legacy_callbacks_gone = update.legacy_callbacks_gone
        return self.settings()

    def settings(self) -> JSON:
        return {**self.faults.to_json(), "rate_limit": self.rate_limit, "window_s": self.window_s}

    # ---- request gate -------------------------------------------------------------------------------

    def record_request(self, portal: PortalState | None, key: str) -> None:
        self.stats.requests[key] += 1
        if portal is not None:
            portal.stats.requests[key] += 1

    def record_status(self, portal: PortalState | None, status_code: int) -> None:
        self.stats.statuses[str(status_code)] += 1
        if portal is not None:
            portal.stats.statuses[str(status_code)] += 1

    def gate(self, portal: PortalState | None) -> GateDecision:
        """What happens to one API request, in order: down, random 5xx, auth, burst 429s, rate limit."""
        fault = injected_fault(self.faults, self.rng)
        if fault is not None:
            return self._fault(portal, *fault)
        if portal is None:
            self.stats.unauthorized += 1
            return GateDecision(GateOutcome.UNAUTHORIZED, 401)
        now = self.clock()
        interval_ms = round(self.window_s * 1000)
        if self.faults.burst_429 > 0:
            self.faults.burst_429 -= 1
            self._throttled(portal)
            remaining = portal.rate_window.remaining(now, self.rate_limit, self.window_s)
            return GateDecision(GateOutcome.BURST, 429, self.rate_limit, remaining, interval_ms, 1)
        admitted, remaining, retry_after = portal.rate_window.admit(now, self.rate_limit, self.window_s)
        if not admitted:
            self._throttled(portal)
            return GateDecision(GateOutcome.THROTTLED, 429, self.rate_limit, 0, interval_ms, retry_after)
        return GateDecision(GateOutcome.OK, 200, self.rate_limit, remaining, interval_ms)

    def drop_answer(self, portal: PortalState | None, route: str, status_code: int) -> bool:
        """After the request to `route` was applied with `status_code`: is its answer to be lost?"""
        if not 200 <= status_code < 300 or not self.faults.drops_answer(route):
            return False
        self._fault(portal, GateOutcome.ERROR, 504)
        return True

    def _fault(self, portal: PortalState | None, outcome: GateOutcome, status_code: int) -> GateDecision:
        self.stats.faults += 1
        if portal is not None:
            portal.stats.faults += 1
        return GateDecision(outcome, status_code)

    def _throttled(self, portal: PortalState) -> None:
        self.stats.throttled += 1
        portal.stats.throttled += 1

    # ---- timeline event templates (they belong to the app, not to a portal) ------------------------

    def _check_app(self, app_id: str) -> None:
        if str(app_id) != self.app_id:
            raise not_found(f"App {app_id} not found.")

    def create_template(self, app_id: str, body: TemplateCreate) -> JSON:
        self._check_app(app_id)
        if self.activities.classic_closed and not self.templates:
            # An app made after the v3 templates were closed (hubspot_activities).
            raise SandboxError(403, "FORBIDDEN", "This app cannot create timeline event templates.")
        if body.objectType not in TEMPLATE_OBJECT_TYPES:
            raise validation_error(f"objectType must be one of {', '.join(sorted(TEMPLATE_OBJECT_TYPES))}.")
        if any(t.name == body.name for t in self.templates.values()):
            raise SandboxError(409, "CONFLICT", f"An event template named {body.name!r} already exists.")
        moment = now_utc()
        tokens = [_template_token(token, moment) for token in body.tokens]
        names = [t["name"] for t in tokens]
        if len(set(names)) != len(names):
            raise validation_error("Token names must be unique within a template.")
        self._next_template_id += 1
        template = EventTemplate(
            id=str(self._next_template_id),
            app_id=self.app_id,
            name=body.name,
            object_type=body.objectType,
            tokens=tokens,
            header_template=body.headerTemplate,
            detail_template=body.detailTemplate,
            created_at=moment,
        )
        self.templates[template.id] = template
        return template.to_json()

    def list_templates(self, app_id: str) -> JSON:
        self._check_app(app_id)
        return {"results": [t.to_json() for t in self.templates.values()]}

    def get_template(self, app_id: str, template_id: str) -> JSON:
        self._check_app(app_id)
        template = self.templates.get(template_id)
        if template is None:
            raise not_found(f"Event template {template_id} not found.")
        return template.to_json()

    # ---- inspection ---------------------------------------------------------------------------------

    def snapshot(self, portal_id: int | None = None) -> JSON:
        portal = self.portal(portal_id)
        body = portal.snapshot()
        body.update(
            app_id=self.app_id,
            event_templates=[t.to_json() for t in self.templates.values()],
            faults=self.settings(),
            global_stats=self.stats.to_json(),
        )
        return body


def _template_token(token: TemplateToken, moment: datetime) -> JSON:
    if not TOKEN_NAME_RE.fullmatch(token.name):
        raise validation_error(f"Invalid token name {token.name!r}: use letters, digits, '.', '-' and '_'.")
    if token.type not in TOKEN_TYPES:
        raise validation_error(f"Token type must be one of {', '.join(sorted(TOKEN_TYPES))}.")
    if token.type == "enumeration" and not token.options:
        raise validation_error(f"Enumeration token {token.name!r} needs options.")
    body = token.model_dump(exclude_none=True)
    body.update(createdAt=iso_utc(moment), updatedAt=iso_utc(moment))
    return body
