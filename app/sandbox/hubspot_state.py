"""In-memory state and behaviour of the fake HubSpot served by :mod:`app.sandbox.hubspot`.

This module knows nothing about HTTP routing: it holds the data of every portal (contacts, property
definitions, timeline events, marketing events, calls, account users, completed workflow callbacks),
applies HubSpot's rules to it, and decides what the request gate (faults, auth, rate limit) does.
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
import re
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from app.sandbox import gate
from app.sandbox.gate import GateOutcome, injected_fault

__all__ = [
    "BATCH_LIMIT",
    "CALL_TO_CONTACT",
    "DEFAULT_TOKENS",
    "SUBSCRIBER_STATES",
    "Attendance",
    "BatchOutcome",
    "Call",
    "CallbackCompletion",
    "Contact",
    "EventTemplate",
    "Faults",
    "GateDecision",
    "HubSpotSandbox",
    "MarketingEvent",
    "PortalState",
    "PropertyDefinition",
    "PropertyGroup",
    "RateWindow",
    "SandboxError",
    "SearchBody",
    "Stats",
    "TimelineEvent",
    "User",
]

JSON = dict[str, Any]

BATCH_LIMIT = 100
USERS_PAGE_LIMIT = 100
CALL_TO_CONTACT = 194
SUBSCRIBER_STATES = ("register", "attend", "cancel")
DEFAULT_TOKENS: Mapping[str, int] = {"sandbox-token": 1}

PROPERTY_TYPES = frozenset({"bool", "date", "datetime", "enumeration", "number", "phone_number", "string"})
FIELD_TYPES = frozenset(
    {
        "booleancheckbox",
        "calculation_equation",
        "checkbox",
        "date",
        "file",
        "html",
        "number",
        "phonenumber",
        "radio",
        "select",
        "text",
        "textarea",
    }
)
TOKEN_TYPES = frozenset({"date", "enumeration", "number", "string"})
TEMPLATE_OBJECT_TYPES = frozenset({"contacts", "companies", "deals", "tickets"})
SEARCH_LIMIT = 200
SEARCH_MAX_GROUPS = 5
SEARCH_MAX_FILTERS_PER_GROUP = 10
SEARCH_MAX_FILTERS = 25
SEARCH_OPERATORS = frozenset({"EQ", "NEQ", "IN", "NOT_IN", "HAS_PROPERTY", "NOT_HAS_PROPERTY"})
CREATE_CALL_ROUTE = "POST /crm/v3/objects/calls"
# Always returned by reads, whatever ``properties`` asks for.
_ALWAYS_READ = ("createdate", "hs_object_id", "lastmodifieddate")
_DEFAULT_READ = ("email", "firstname", "lastname")
_EMAIL_RE = re.compile(r"^[^@\s;,]+@[^@\s;,]+\.[^@\s;,.]{2,}$")
_TOKEN_NAME_RE = re.compile(r"^[A-Za-z0-9._-]+$")


# --------------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------------


def now_utc() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """HubSpot's timestamp style: ``2024-06-20T16:00:00.123Z``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_uuid() -> str:
    return str(uuid.uuid4())


def epoch_ms(value: Any, *, default: int | None = None) -> int | None:
    """Epoch milliseconds from an int, a numeric string or an ISO-8601 string; ``default`` otherwise."""
    if value is None or isinstance(value, bool):
        return default
    if isinstance(value, int | float):
        return int(value)
    text = str(value).strip()
    if re.fullmatch(r"-?\d+(\.\d+)?", text):
        return int(float(text))
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return default
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def property_value(value: Any) -> str:
    """HubSpot stores and returns every property value as a string; ``None`` clears it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def valid_email(email: str) -> bool:
    return bool(_EMAIL_RE.fullmatch(email))


def split_emails(raw: str) -> list[str]:
    """``hs_additional_emails`` is semicolon-separated."""
    return [part.strip().lower() for part in raw.split(";") if part.strip()]


def _to_id(value: Any) -> Any:
    """Ids may arrive as JSON numbers; keep them as strings internally."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


Id = Annotated[str, BeforeValidator(_to_id)]


def error_body(
    category: str,
    message: str,
    *,
    sub_category: str | None = None,
    context: Mapping[str, list[str]] | None = None,
    errors: list[JSON] | None = None,
) -> JSON:
    """HubSpot's ``Error`` JSON for a failed request."""
    body: JSON = {"status": "error", "message": message, "correlationId": new_uuid(), "category": category}
    if sub_category:
        body["subCategory"] = sub_category
    if context:
        body["context"] = dict(context)
    if errors:
        body["errors"] = errors
    return body


def item_error(
    category: str,
    message: str,
    *,
    context: Mapping[str, list[str]],
    code: str | None = None,
    sub_category: str | None = None,
) -> JSON:
    """One ``StandardError`` entry of a 207 batch response."""
    entry: JSON = {
        "status": "error",
        "category": category,
        "message": message,
        "errors": [{"message": message, "code": code}] if code else [],
        "context": dict(context),
        "links": {},
    }
    if sub_category or code:
        entry["subCategory"] = sub_category or code
    return entry


class SandboxError(Exception):
    """A whole-request failure; the HTTP layer renders it with HubSpot's error JSON."""

    def __init__(
        self,
        status_code: int,
        category: str,
        message: str,
        *,
        sub_category: str | None = None,
        context: Mapping[str, list[str]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.category = category
        self.message = message
        self.sub_category = sub_category
        self.context = dict(context or {})
        self.headers = dict(headers or {})

    def body(self) -> JSON:
        return error_body(self.category, self.message, sub_category=self.sub_category, context=self.context)


def validation_error(message: str, **context: list[str]) -> SandboxError:
    return SandboxError(400, "VALIDATION_ERROR", message, context=context)


def not_found(message: str) -> SandboxError:
    return SandboxError(404, "OBJECT_NOT_FOUND", message)


def check_batch_size(inputs: Sequence[object], limit: int = BATCH_LIMIT) -> None:
    if len(inputs) > limit:
        raise validation_error(f"Batch input length {len(inputs)} exceeds the limit of {limit} inputs.")


@dataclass
class BatchOutcome:
    """Results and per-input errors of one batch call."""

    results: list[JSON] = field(default_factory=list)
    errors: list[JSON] = field(default_factory=list)

    def status_code(self, ok: int = 200) -> int:
        return 207 if self.errors else ok

    def body(self, started_at: datetime) -> JSON:
        body: JSON = {
            "status": "COMPLETE",
            "results": self.results,
            "startedAt": iso(started_at),
            "completedAt": iso(now_utc()),
        }
        if self.errors:
            body["numErrors"] = len(self.errors)
            body["errors"] = self.errors
        return body


# --------------------------------------------------------------------------------------------------
# Request bodies (HubSpot's JSON shapes; unknown fields are kept and ignored)
# --------------------------------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


InputT = TypeVar("InputT", bound=BaseModel)


class Batch(_Body, Generic[InputT]):
    inputs: list[InputT]


class ContactUpsertInput(_Body):
    id: Id
    idProperty: str | None = None
    properties: dict[str, Any] = Field(default_factory=dict)


class ObjectRef(_Body):
    id: Id


class GdprDelete(_Body):
    objectId: Id
    idProperty: str | None = None


class ContactBatchRead(_Body):
    inputs: list[ObjectRef]
    idProperty: str | None = None
    properties: list[str] | None = None
    propertiesWithHistory: list[str] | None = None


class PropertyGroupCreate(_Body):
    name: str
    label: str
    displayOrder: int = -1


class PropertyOption(_Body):
    label: str
    value: str
    description: str | None = None
    displayOrder: int | None = None
    hidden: bool = False


class PropertyCreate(_Body):
    name: str
    label: str
    type: str
    fieldType: str
    groupName: str
    description: str = ""
    options: list[PropertyOption] = Field(default_factory=list)
    displayOrder: int = -1
    hidden: bool = False
    formField: bool = False
    hasUniqueValue: bool = False
    numberDisplayHint: str | None = None
    textDisplayHint: str | None = None


class TemplateToken(_Body):
    name: str
    label: str
    type: str
    options: list[dict[str, Any]] | None = None
    objectPropertyName: str | None = None


class TemplateCreate(_Body):
    name: str
    objectType: str
    tokens: list[TemplateToken]
    headerTemplate: str | None = None
    detailTemplate: str | None = None


class TimelineEventInput(_Body):
    eventTemplateId: Id
    tokens: dict[str, Any]
    id: Id | None = None
    objectId: Id | None = None
    email: str | None = None
    utk: str | None = None
    domain: str | None = None
    timestamp: str | int | None = None
    extraData: Any = None
    timelineIFrame: dict[str, Any] | None = None


class MarketingEventBody(_Body):
    externalAccountId: Id | None = None
    externalEventId: Id | None = None
    eventName: str | None = None
    eventOrganizer: str | None = None
    eventType: str | None = None
    startDateTime: str | None = None
    endDateTime: str | None = None
    eventUrl: str | None = None
    eventDescription: str | None = None
    eventCancelled: bool | None = None
    eventCompleted: bool | None = None
    customProperties: list[dict[str, Any]] | None = None


class AttendanceInput(_Body):
    vid: Id
    interactionDateTime: int | str | None = None
    properties: dict[str, Any] = Field(default_factory=dict)


class CompleteBody(_Body):
    startDateTime: str
    endDateTime: str


class AssociationType(_Body):
    associationCategory: str = "HUBSPOT_DEFINED"
    associationTypeId: int | str


class CallAssociation(_Body):
    to: ObjectRef
    types: list[AssociationType]


class CallCreate(_Body):
    properties: dict[str, Any] = Field(default_factory=dict)
    associations: list[CallAssociation] = Field(default_factory=list)


class PropertiesBody(_Body):
    properties: dict[str, Any] = Field(default_factory=dict)


class CallUpdateInput(_Body):
    id: Id
    properties: dict[str, Any] = Field(default_factory=dict)


class AssociationPair(_Body):
    from_: ObjectRef = Field(alias="from")
    to: ObjectRef


class SearchFilter(_Body):
    propertyName: str
    operator: str
    value: Any = None
    values: list[Any] | None = None


class SearchGroup(_Body):
    filters: list[SearchFilter] = Field(default_factory=list)


class SearchBody(_Body):
    filterGroups: list[SearchGroup] = Field(default_factory=list)
    properties: list[str] | None = None
    sorts: list[Any] = Field(default_factory=list)
    query: str | None = None
    limit: int = Field(default=10, ge=1, le=SEARCH_LIMIT)
    after: str | None = None


class CallbackBody(_Body):
    outputFields: dict[str, Any] = Field(default_factory=dict)
    typedOutputs: dict[str, Any] | None = None
    failureReasonType: str | None = None
    requestContext: dict[str, Any] | None = None


class CallbackInput(CallbackBody):
    callbackId: str = Field(min_length=1)


class SeedUser(_Body):
    email: str
    firstName: str | None = None
    lastName: str | None = None
    id: Id | None = None
    roleIds: list[str] = Field(default_factory=list)
    primaryTeamId: str | None = None
    superAdmin: bool = False


class SeedUsers(_Body):
    portal: int | None = None
    users: list[SeedUser]


class SeedContact(_Body):
    email: str | None = None
    properties: dict[str, Any] = Field(default_factory=dict)
    archived: bool = False
    id: Id | None = None


class SeedContacts(_Body):
    portal: int | None = None
    contacts: list[SeedContact]


class FaultsUpdate(gate.FaultsUpdate):
    rate_limit: int | None = Field(default=None, ge=1)
    window_s: float | None = Field(default=None, gt=0)
    # Apply the next N successful requests to `drop_answer_route`, then lose their answer (504).
    drop_answer_after_apply: int | None = Field(default=None, ge=0)
    # "METHOD /path/template" as in the request statistics; a trailing "*" matches a prefix.
    drop_answer_route: str | None = Field(default=None, min_length=1)
    search_lag_s: float | None = Field(default=None, ge=0)


# --------------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------------


@dataclass
class Contact:
    id: str
    properties: dict[str, str]
    created_at: datetime
    updated_at: datetime
    archived: bool = False
    archived_at: datetime | None = None
    writes: int = 0

    @property
    def email(self) -> str:
        return self.properties.get("email", "").lower()

    @property
    def secondary_emails(self) -> list[str]:
        return split_emails(self.properties.get("hs_additional_emails", ""))

    def to_json(self, properties: Iterable[str] | None = None, *, new: bool | None = None) -> JSON:
        props: dict[str, str | None]
        if properties is None:
            props = dict(self.properties)
        else:
            props = {name: self.properties.get(name) for name in (*properties, *_ALWAYS_READ)}
        body: JSON = {
            "id": self.id,
            "properties": props,
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
            "archived": self.archived,
        }
        if self.archived_at is not None:
            body["archivedAt"] = iso(self.archived_at)
        if new is not None:
            body["new"] = new
        return body


@dataclass
class PropertyGroup:
    name: str
    label: str
    display_order: int = -1

    def to_json(self) -> JSON:
        return {"name": self.name, "label": self.label, "displayOrder": self.display_order, "archived": False}


@dataclass
class PropertyDefinition:
    name: str
    type: str
    group_name: str
    spec: JSON
    created_at: datetime
    hubspot_defined: bool = False

    def to_json(self) -> JSON:
        body = dict(self.spec)
        body.update(
            {
                "name": self.name,
                "type": self.type,
                "groupName": self.group_name,
                "calculated": False,
                "externalOptions": False,
                "archived": False,
                "hubspotDefined": self.hubspot_defined,
                "createdAt": iso(self.created_at),
                "updatedAt": iso(self.created_at),
            }
        )
        return body


@dataclass
class EventTemplate:
    id: str
    app_id: str
    name: str
    object_type: str
    tokens: list[JSON]
    header_template: str | None
    detail_template: str | None
    created_at: datetime

    def token(self, name: str) -> JSON | None:
        return next((t for t in self.tokens if t["name"] == name), None)

    def to_json(self) -> JSON:
        return {
            "id": self.id,
            "name": self.name,
            "objectType": self.object_type,
            "tokens": self.tokens,
            "headerTemplate": self.header_template,
            "detailTemplate": self.detail_template,
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.created_at),
        }


@dataclass
class TimelineEvent:
    id: str
    template_id: str
    object_id: str
    object_type: str
    tokens: dict[str, str]
    timestamp: str
    created_at: datetime
    extra_data: Any = None
    timeline_iframe: JSON | None = None
    domain: str | None = None

    def to_json(self) -> JSON:
        return {
            "id": self.id,
            "eventTemplateId": self.template_id,
            "objectId": self.object_id,
            "objectType": self.object_type,
            "tokens": dict(self.tokens),
            "timestamp": self.timestamp,
            "extraData": self.extra_data,
            "timelineIFrame": self.timeline_iframe,
            "domain": self.domain,
            "createdAt": iso(self.created_at),
        }


@dataclass
class Attendance:
    """One contact's state in one marketing event: the latest input by ``interactionDateTime`` wins."""

    contact_id: str
    state: str
    interaction_ms: int
    attend: JSON | None = None
    history: list[JSON] = field(default_factory=list)

    def apply(self, state: str, interaction_ms: int, properties: Mapping[str, Any]) -> None:
        self.history.append(
            {"state": state, "interactionDateTime": interaction_ms, "properties": dict(properties)}
        )
        if state == "attend" and (
            self.attend is None or interaction_ms >= self.attend["interactionDateTime"]
        ):
            self.attend = {
                "interactionDateTime": interaction_ms,
                "joinedAt": properties.get("joinedAt"),
                "leftAt": properties.get("leftAt"),
            }
        if interaction_ms >= self.interaction_ms:
            self.state = state
            self.interaction_ms = interaction_ms

    @property
    def registered(self) -> bool:
        return any(h["state"] == "register" for h in self.history)

    def to_json(self) -> JSON:
        attend = self.attend or {}
        return {
            "state": self.state,
            "interactionDateTime": self.interaction_ms,
            "attended": self.attend is not None,
            "joinedAt": attend.get("joinedAt"),
            "leftAt": attend.get("leftAt"),
            "history": list(self.history),
        }


_MARKETING_FIELDS = (
    "eventName",
    "eventOrganizer",
    "eventType",
    "startDateTime",
    "endDateTime",
    "eventUrl",
    "eventDescription",
    "eventCancelled",
    "eventCompleted",
    "customProperties",
)


@dataclass
class MarketingEvent:
    object_id: str
    external_account_id: str
    external_event_id: str
    fields: JSON
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None = None
    attendance: dict[str, Attendance] = field(default_factory=dict)

    def apply(self, body: MarketingEventBody, moment: datetime) -> None:
        for name, value in body.model_dump(include=set(_MARKETING_FIELDS), exclude_none=True).items():
            self.fields[name] = value
        self.updated_at = moment

    def counts(self) -> JSON:
        states = [a.state for a in self.attendance.values()]
        completed = bool(self.fields.get("eventCompleted"))
        no_shows = sum(
            1 for a in self.attendance.values() if completed and a.attend is None and a.state == "register"
        )
        return {
            "registrants": sum(1 for a in self.attendance.values() if a.registered),
            "attendees": sum(1 for a in self.attendance.values() if a.attend is not None),
            "cancellations": states.count("cancel"),
            "noShows": no_shows,
        }

    def to_json(self) -> JSON:
        body: JSON = {
            "objectId": self.object_id,
            "externalAccountId": self.external_account_id,
            "externalEventId": self.external_event_id,
            "eventCancelled": False,
            "eventCompleted": False,
            "customProperties": [],
        }
        body.update(self.fields)
        body.update(self.counts())
        body["createdAt"] = iso(self.created_at)
        body["updatedAt"] = iso(self.updated_at)
        return body

    def snapshot(self) -> JSON:
        body = self.to_json()
        body["completedAt"] = iso(self.completed_at) if self.completed_at else None
        body["attendance"] = {cid: a.to_json() for cid, a in self.attendance.items()}
        return body


@dataclass
class Call:
    id: str
    properties: dict[str, str]
    created_at: datetime
    updated_at: datetime
    contact_ids: list[str] = field(default_factory=list)
    # (clock time, properties) after each write: what search sees once the index caught up.
    versions: list[tuple[float, dict[str, str]]] = field(default_factory=list)

    def written(self, at: float) -> None:
        self.versions.append((at, dict(self.properties)))

    def indexed(self, as_of: float) -> dict[str, str] | None:
        """The properties search sees at clock time `as_of`: None while the call is not indexed yet."""
        seen = [props for at, props in self.versions if at <= as_of]
        return seen[-1] if seen else None

    def associate(self, contact_id: str) -> None:
        if contact_id not in self.contact_ids:
            self.contact_ids.append(contact_id)

    def to_json(self, *, with_associations: bool = False) -> JSON:
        body: JSON = {
            "id": self.id,
            "properties": dict(self.properties),
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
            "archived": False,
        }
        if with_associations:
            body["associations"] = {
                "contacts": {"results": [{"id": cid, "type": "call_to_contact"} for cid in self.contact_ids]}
            }
        return body


@dataclass
class User:
    id: str
    email: str
    first_name: str | None = None
    last_name: str | None = None
    role_ids: list[str] = field(default_factory=list)
    primary_team_id: str | None = None
    super_admin: bool = False

    def to_json(self) -> JSON:
        body: JSON = {
            "id": self.id,
            "email": self.email,
            "firstName": self.first_name,
            "lastName": self.last_name,
            "roleIds": list(self.role_ids),
            "secondaryTeamIds": [],
            "superAdmin": self.super_admin,
        }
        if self.primary_team_id is not None:
            body["primaryTeamId"] = self.primary_team_id
        return body


@dataclass
class CallbackCompletion:
    callback_id: str
    output_fields: JSON
    received_at: datetime
    typed_outputs: JSON | None = None
    failure_reason_type: str | None = None
    request_context: JSON | None = None

    def to_json(self) -> JSON:
        return {
            "callbackId": self.callback_id,
            "outputFields": dict(self.output_fields),
            "typedOutputs": self.typed_outputs,
            "failureReasonType": self.failure_reason_type,
            "requestContext": self.request_context,
            "receivedAt": iso(self.received_at),
        }


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

    def to_json(self) -> JSON:
        return {
            **super().to_json(),
            "drop_answer_after_apply": self.drop_answer_after_apply,
            "drop_answer_route": self.drop_answer_route,
            "search_lag_s": self.search_lag_s,
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


class PortalState:
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
        self.users: list[User] = []
        self.callbacks: list[CallbackCompletion] = []
        self.stats = Stats()
        self.rate_window = RateWindow()
        self._next_id: Counter[str] = Counter(contact=100, call=50000, marketing_event=70000, user=9000)
        self._seed_properties()

    def _new_id(self, kind: str) -> str:
        self._next_id[kind] += 1
        return str(self._next_id[kind])

    def _seed_properties(self) -> None:
        moment = now_utc()
        for name, label in _SEED_GROUPS:
            self.property_groups[name] = PropertyGroup(name, label)
        for name, label, type_, field_type in _SEED_PROPERTIES:
            spec: JSON = {"label": label, "fieldType": field_type, "description": "", "options": []}
            self.properties[name] = PropertyDefinition(
                name, type_, "contactinformation", spec, moment, hubspot_defined=True
            )

    # ---- contacts: indexes -------------------------------------------------------------------------

    def _index(self, contact: Contact, *, add: bool) -> None:
        keys = [(self._primary, contact.email)] + [(self._secondary, e) for e in contact.secondary_emails]
        for index, email in keys:
            if not email:
                continue
            ids = index.setdefault(email, [])
            if add and contact.id not in ids:
                ids.append(contact.id)
            elif not add and contact.id in ids:
                ids.remove(contact.id)

    def find_by_email(self, email: str, *, archived: bool) -> Contact | None:
        """The contact whose primary (first) or secondary address is ``email``."""
        email = email.strip().lower()
        for index in (self._primary, self._secondary):
            for cid in index.get(email, ()):
                contact = self.contacts[cid]
                if contact.archived == archived:
                    return contact
        return None

    def live_contact(self, contact_id: str) -> Contact | None:
        contact = self.contacts.get(contact_id)
        return contact if contact is not None and not contact.archived else None

    def _set_properties(self, contact: Contact, values: Mapping[str, str], moment: datetime) -> None:
        changed = any(contact.properties.get(k) != v for k, v in values.items())
        self._index(contact, add=False)
        contact.properties.update(values)
        contact.writes += 1
        if changed:
            contact.updated_at = moment
        contact.properties["hs_object_id"] = contact.id
        contact.properties["createdate"] = iso(contact.created_at)
        contact.properties["lastmodifieddate"] = iso(contact.updated_at)
        self._index(contact, add=True)

    def _create_contact(self, values: Mapping[str, str], moment: datetime, contact_id: str | None) -> Contact:
        if contact_id is None:
            contact_id = self._new_id("contact")
        else:
            if contact_id in self.contacts:
                raise SandboxError(409, "CONFLICT", f"Contact {contact_id} already exists.")
            if contact_id.isdigit():
                self._next_id["contact"] = max(self._next_id["contact"], int(contact_id))
        contact = Contact(contact_id, {}, moment, moment)
        self.contacts[contact_id] = contact
        self._set_properties(contact, values, moment)
        contact.writes = 0
        return contact

    def _property_errors(self, values: Mapping[str, str], strict: bool, ident: str) -> JSON | None:
        """A 207 entry for the first undefined property or invalid number, if any."""
        if not strict:
            return None
        for name, value in values.items():
            definition = self.properties.get(name)
            if definition is None:
                return item_error(
                    "VALIDATION_ERROR",
                    f'Property "{name}" does not exist',
                    context={"id": [ident], "propertyName": [name]},
                    code="PROPERTY_DOESNT_EXIST",
                )
            if definition.type == "number" and value != "" and not _is_number(value):
                return item_error(
                    "VALIDATION_ERROR",
                    f'Property "{name}" value "{value}" is not a valid number',
                    context={"id": [ident], "propertyName": [name]},
                    code="INVALID_NUMBER",
                )
        return None

    # ---- contacts: API ------------------------------------------------------------------------------

    def upsert_contacts(self, inputs: Sequence[ContactUpsertInput], *, strict: bool) -> BatchOutcome:
        check_batch_size(inputs)
        seen = Counter(item.id.strip().lower() for item in inputs)
        duplicates = sorted(k for k, n in seen.items() if n > 1)
        if duplicates:
            raise validation_error(f"Duplicate IDs found in batch input: {duplicates}", ids=duplicates)
        outcome = BatchOutcome()
        moment = now_utc()
        for item in inputs:
            self._upsert_one(item, strict, moment, outcome)
        return outcome

    def _upsert_one(
        self, item: ContactUpsertInput, strict: bool, moment: datetime, outcome: BatchOutcome
    ) -> None:
        ident = item.id
        if item.idProperty != "email":
            outcome.errors.append(
                item_error(
                    "VALIDATION_ERROR",
                    f"Unsupported idProperty {item.idProperty!r}: the sandbox upserts by email only.",
                    context={"id": [ident]},
                    code="INVALID_ID_PROPERTY",
                )
            )
            return
        email = ident.strip().lower()
        if not valid_email(email):
            message = (
                'Property values were not valid: [{"isValid":false,"message":"Email address '
                f'{ident} is invalid","error":"INVALID_EMAIL","name":"email"}}]'
            )
            outcome.errors.append(
                item_error("VALIDATION_ERROR", message, context={"id": [ident]}, code="INVALID_EMAIL")
            )
            return
        values = {k: property_value(v) for k, v in item.properties.items() if k != "email"}
        problem = self._property_errors(values, strict, ident)
        if problem is not None:
            outcome.errors.append(problem)
            return
        contact = self.find_by_email(email, archived=False)
        if contact is not None:
            self._set_properties(contact, values, moment)
            outcome.results.append(contact.to_json(new=False))
            return
        archived = self.find_by_email(email, archived=True)
        if archived is not None:
            outcome.errors.append(
                item_error(
                    "CONFLICT",
                    f"Contact {archived.id} with email {email} is archived; the sandbox does not restore "
                    "archived contacts through upsert.",
                    context={"id": [ident], "objectId": [archived.id]},
                    code="CONTACT_ARCHIVED",
                )
            )
            return
        contact = self._create_contact({**values, "email": email}, moment, None)
        outcome.results.append(contact.to_json(new=True))

    def read_contacts(self, body: ContactBatchRead, *, archived: bool) -> BatchOutcome:
        check_batch_size(body.inputs)
        id_property = body.idProperty or "hs_object_id"
        if id_property not in ("email", "hs_object_id", "id"):
            raise validation_error(f"Unsupported idProperty {id_property!r}.")
        properties = body.properties if body.properties is not None else list(_DEFAULT_READ)
        outcome = BatchOutcome()
        missing: list[str] = []
        returned: set[str] = set()
        for ref in body.inputs:
            contact = self._lookup(ref.id, id_property, archived=archived)
            if contact is None:
                missing.append(ref.id)
            elif contact.id not in returned:
                returned.add(contact.id)
                outcome.results.append(contact.to_json(properties))
        if missing:
            outcome.errors.append(
                item_error(
                    "OBJECT_NOT_FOUND",
                    "Could not get some CONTACT objects, they may be deleted or not exist. "
                    "Check that ids are valid.",
                    context={"ids": missing},
                )
            )
        return outcome

    def _lookup(self, ident: str, id_property: str, *, archived: bool) -> Contact | None:
        if id_property == "email":
            return self.find_by_email(ident, archived=archived)
        contact = self.contacts.get(ident)
        return contact if contact is not None and contact.archived == archived else None

    def get_contact(
        self, ident: str, *, archived: bool, id_property: str | None, properties: Sequence[str] | None
    ) -> JSON:
        contact = self._lookup(ident, id_property or "hs_object_id", archived=archived)
        if contact is None:
            raise not_found(f"Contact {ident} not found.")
        return contact.to_json(properties if properties else _DEFAULT_READ)

    def archive_contact(self, contact_id: str) -> None:
        contact = self.contacts.get(contact_id)
        if contact is not None and not contact.archived:
            contact.archived = True
            contact.archived_at = now_utc()

    def purge_contact(self, ident: str, id_property: str | None) -> None:
        """GDPR delete: the contact is gone for good (no archived copy either)."""
        if (id_property or "hs_object_id") == "email":
            contact = self.find_by_email(ident, archived=False) or self.find_by_email(ident, archived=True)
        else:
            contact = self.contacts.get(ident)
        if contact is not None:
            self._index(contact, add=False)
            del self.contacts[contact.id]

    def list_contacts(
        self, *, limit: int, after: str | None, archived: bool, properties: Sequence[str] | None
    ) -> JSON:
        if not 1 <= limit <= 100:
            raise validation_error("limit must be between 1 and 100.")
        start = _order_key(after) if after else (-1, "")
        ordered = sorted(
            (c for c in self.contacts.values() if c.archived == archived and _id_order(c) > start),
            key=_id_order,
        )
        page = ordered[:limit]
        body: JSON = {"results": [c.to_json(properties if properties else _DEFAULT_READ) for c in page]}
        if len(ordered) > limit:
            body["paging"] = {"next": {"after": page[-1].id}}
        return body

    def seed_contact(self, seed: SeedContact) -> Contact:
        email = (seed.email or str(seed.properties.get("email", ""))).strip().lower()
        values = {k: property_value(v) for k, v in seed.properties.items()}
        if email:
            values["email"] = email
        moment = now_utc()
        contact = self._create_contact(values, moment, seed.id)
        if seed.archived:
            contact.archived = True
            contact.archived_at = moment
        return contact

    # ---- properties ---------------------------------------------------------------------------------

    def create_group(self, body: PropertyGroupCreate) -> JSON:
        if body.name in self.property_groups:
            raise SandboxError(
                409, "OBJECT_ALREADY_EXISTS", f"A property group named '{body.name}' already exists."
            )
        group = PropertyGroup(body.name, body.label, body.displayOrder)
        self.property_groups[body.name] = group
        return group.to_json()

    def get_group(self, name: str) -> JSON:
        group = self.property_groups.get(name)
        if group is None:
            raise not_found(f"Property group {name} does not exist.")
        return group.to_json()

    def create_property(self, body: PropertyCreate) -> JSON:
        if body.name in self.properties:
            raise SandboxError(
                409,
                "OBJECT_ALREADY_EXISTS",
                f"Property named '{body.name}' already exists.",
                sub_category="PropertyValidationError.PROPERTY_EXISTS",
            )
        if body.groupName not in self.property_groups:
            raise validation_error(f"Property group {body.groupName} does not exist.")
        if body.type not in PROPERTY_TYPES:
            raise validation_error(f"Invalid property type {body.type!r}.")
        if body.fieldType not in FIELD_TYPES:
            raise validation_error(f"Invalid fieldType {body.fieldType!r}.")
        if body.type == "enumeration" and not body.options:
            raise validation_error("Enumeration properties need options.")
        spec = body.model_dump(exclude={"name", "type", "groupName"}, exclude_none=True)
        definition = PropertyDefinition(body.name, body.type, body.groupName, spec, now_utc())
        self.properties[body.name] = definition
        return definition.to_json()

    def get_property(self, name: str) -> JSON:
        definition = self.properties.get(name)
        if definition is None:
            raise not_found(f"Property {name} does not exist.")
        return definition.to_json()

    # ---- timeline -----------------------------------------------------------------------------------

    def create_timeline_events(
        self, inputs: Sequence[TimelineEventInput], templates: Mapping[str, EventTemplate]
    ) -> BatchOutcome:
        check_batch_size(inputs)
        outcome = BatchOutcome()
        moment = now_utc()
        for item in inputs:
            problem, event = self._timeline_event(item, templates, moment)
            if problem is not None:
                outcome.errors.append(problem)
            elif event is not None:
                outcome.results.append(event.to_json())
        return outcome

    def _timeline_event(
        self, item: TimelineEventInput, templates: Mapping[str, EventTemplate], moment: datetime
    ) -> tuple[JSON | None, TimelineEvent | None]:
        event_id = (item.id or new_uuid()).replace("{{uuid}}", new_uuid())
        context = {"eventTemplateId": [item.eventTemplateId], "eventId": [event_id]}
        template = templates.get(item.eventTemplateId)
        if template is None:
            message = f"Event template {item.eventTemplateId} not found."
            return item_error("OBJECT_NOT_FOUND", message, context=context), None
        if template.object_type != "contacts":
            message = "The sandbox supports timeline events on contacts only."
            return item_error("VALIDATION_ERROR", message, context=context), None
        if item.objectId is None:
            message = "objectId is required (the sandbox does not identify contacts by email or utk)."
            return item_error("VALIDATION_ERROR", message, context=context, code="MISSING_OBJECT_ID"), None
        contact = self.live_contact(item.objectId)
        if contact is None:
            context["objectId"] = [item.objectId]
            message = f"Contact {item.objectId} does not exist."
            return item_error("OBJECT_NOT_FOUND", message, context=context), None
        key = (template.id, event_id)
        if key in self.timeline_events:
            message = f"An event with id {event_id} already exists for template {template.id}."
            return item_error("CONFLICT", message, context=context, code="DUPLICATE_EVENT_ID"), None
        tokens = {name: property_value(value) for name, value in item.tokens.items()}
        problem = _token_problem(template, tokens)
        if problem is not None:
            return item_error("VALIDATION_ERROR", problem, context=context, code="INVALID_TOKEN"), None
        timestamp = item.timestamp if item.timestamp is not None else iso(moment)
        event = TimelineEvent(
            id=event_id,
            template_id=template.id,
            object_id=contact.id,
            object_type="contacts",
            tokens=tokens,
            timestamp=str(timestamp),
            created_at=moment,
            extra_data=item.extraData,
            timeline_iframe=item.timelineIFrame,
            domain=item.domain,
        )
        self.timeline_events[key] = event
        self._copy_tokens_to_contact(template, tokens, contact, moment)
        return None, event

    def _copy_tokens_to_contact(
        self, template: EventTemplate, tokens: Mapping[str, str], contact: Contact, moment: datetime
    ) -> None:
        copied = {
            str(token["objectPropertyName"]): tokens[token["name"]]
            for token in template.tokens
            if token.get("objectPropertyName") and token["name"] in tokens
        }
        if copied:
            self._set_properties(contact, copied, moment)

    def get_timeline_event(self, template_id: str, event_id: str) -> JSON:
        event = self.timeline_events.get((template_id, event_id))
        if event is None:
            raise not_found(f"Event {event_id} of template {template_id} not found.")
        return event.to_json()

    # ---- marketing events ---------------------------------------------------------------------------

    def _marketing_event(self, account_id: str | None, event_id: str) -> MarketingEvent:
        if not account_id:
            raise validation_error("externalAccountId is required.")
        event = self.marketing_events.get((account_id, event_id))
        if event is None:
            raise not_found(f"Marketing event {event_id} of account {account_id} not found.")
        return event

    def _new_marketing_event(
        self, account_id: str, event_id: str, body: MarketingEventBody
    ) -> MarketingEvent:
        moment = now_utc()
        event = MarketingEvent(self._new_id("marketing_event"), account_id, event_id, {}, moment, moment)
        event.apply(body, moment)
        self.marketing_events[(account_id, event_id)] = event
        return event

    @staticmethod
    def _require_create_fields(body: MarketingEventBody) -> tuple[str, str]:
        missing = [
            name
            for name in ("externalAccountId", "externalEventId", "eventName", "eventOrganizer")
            if not getattr(body, name)
        ]
        if missing:
            raise validation_error(f"Missing required fields: {', '.join(missing)}.", fields=missing)
        assert body.externalAccountId is not None and body.externalEventId is not None
        return body.externalAccountId, body.externalEventId

    def create_marketing_event(self, body: MarketingEventBody) -> JSON:
        account_id, event_id = self._require_create_fields(body)
        if (account_id, event_id) in self.marketing_events:
            raise SandboxError(
                409, "CONFLICT", f"Marketing event {event_id} of account {account_id} already exists."
            )
        return self._new_marketing_event(account_id, event_id, body).to_json()

    def upsert_marketing_event(self, event_id: str, body: MarketingEventBody) -> JSON:
        if body.externalEventId is not None and body.externalEventId != event_id:
            raise validation_error("externalEventId in the body does not match the path.")
        body.externalEventId = event_id
        account_id, _ = self._require_create_fields(body)
        existing = self.marketing_events.get((account_id, event_id))
        if existing is None:
            return self._new_marketing_event(account_id, event_id, body).to_json()
        existing.apply(body, now_utc())
        return existing.to_json()

    def patch_marketing_event(self, event_id: str, account_id: str | None, body: MarketingEventBody) -> JSON:
        event = self._marketing_event(account_id, event_id)
        event.apply(body, now_utc())
        return event.to_json()

    def get_marketing_event(self, event_id: str, account_id: str | None) -> JSON:
        return self._marketing_event(account_id, event_id).to_json()

    def complete_marketing_event(self, event_id: str, account_id: str | None, body: CompleteBody) -> JSON:
        event = self._marketing_event(account_id, event_id)
        moment = now_utc()
        event.fields.update(
            startDateTime=body.startDateTime, endDateTime=body.endDateTime, eventCompleted=True
        )
        event.updated_at = moment
        event.completed_at = moment
        return event.to_json()

    def record_attendance(
        self, event_id: str, state: str, account_id: str | None, inputs: Sequence[AttendanceInput]
    ) -> BatchOutcome:
        if state not in SUBSCRIBER_STATES:
            raise validation_error(f"subscriberState must be one of {', '.join(SUBSCRIBER_STATES)}.")
        event = self._marketing_event(account_id, event_id)
        outcome = BatchOutcome()
        now_ms = int(time.time() * 1000)
        for item in inputs:
            contact = self.live_contact(item.vid)
            if contact is None:
                outcome.errors.append(
                    item_error(
                        "OBJECT_NOT_FOUND", f"Contact {item.vid} does not exist.", context={"vid": [item.vid]}
                    )
                )
                continue
            at_ms = epoch_ms(item.interactionDateTime, default=now_ms)
            assert at_ms is not None
            record = event.attendance.get(contact.id)
            if record is None:
                record = event.attendance[contact.id] = Attendance(contact.id, state, at_ms)
            record.apply(state, at_ms, item.properties)
            vid: int | str = int(contact.id) if contact.id.isdigit() else contact.id
            outcome.results.append({"vid": vid, "email": contact.email})
        event.updated_at = now_utc()
        return outcome

    # ---- calls --------------------------------------------------------------------------------------

    def _call(self, call_id: str) -> Call:
        call = self.calls.get(call_id)
        if call is None:
            raise not_found(f"Call {call_id} not found.")
        return call

    def _contact_for_association(self, contact_id: str) -> Contact:
        contact = self.live_contact(contact_id)
        if contact is None:
            raise not_found(f"Contact {contact_id} does not exist.")
        return contact

    def create_call(self, body: CallCreate) -> JSON:
        values = _call_properties(body.properties)
        if not values.get("hs_timestamp"):
            raise validation_error("hs_timestamp is required.", propertyName=["hs_timestamp"])
        for association in body.associations:
            _check_call_association(association)
            self._contact_for_association(association.to.id)
        moment = now_utc()
        call = Call(self._new_id("call"), values, moment, moment)
        call.properties["hs_object_id"] = call.id
        call.written(self.clock())
        for association in body.associations:
            call.associate(association.to.id)
        self.calls[call.id] = call
        return call.to_json(with_associations=bool(call.contact_ids))

    def update_call(self, call_id: str, properties: Mapping[str, Any]) -> JSON:
        call = self._call(call_id)
        call.properties.update(_call_properties(properties))
        call.updated_at = now_utc()
        call.written(self.clock())
        return call.to_json()

    def search_calls(self, body: SearchBody, *, lag_s: float = 0.0) -> JSON:
        """CRM search over calls as the index saw them `lag_s` seconds ago (filter groups are ORed,
        the filters of a group ANDed)."""
        _check_search(body)
        as_of = self.clock() - lag_s
        matches: list[tuple[Call, dict[str, str]]] = []
        for call in sorted(self.calls.values(), key=lambda c: _order_key(c.id)):
            seen = call.indexed(as_of)
            if seen is None:
                continue
            if not body.filterGroups or any(
                all(_matches(f, seen) for f in group.filters) for group in body.filterGroups
            ):
                matches.append((call, seen))
        start = int(body.after) if body.after and body.after.isdigit() else 0
        page = matches[start : start + body.limit]
        wanted = ["hs_object_id", *(body.properties or [])]
        results = [
            {
                "id": call.id,
                "properties": {name: seen.get(name) for name in dict.fromkeys(wanted)},
                "createdAt": iso(call.created_at),
                "updatedAt": iso(call.updated_at),
                "archived": False,
            }
            for call, seen in page
        ]
        out: JSON = {"total": len(matches), "results": results}
        if start + body.limit < len(matches):
            out["paging"] = {"next": {"after": str(start + body.limit)}}
        return out

    def get_call(self, call_id: str, *, with_associations: bool) -> JSON:
        return self._call(call_id).to_json(with_associations=with_associations)

    def batch_update_calls(self, inputs: Sequence[CallUpdateInput]) -> BatchOutcome:
        check_batch_size(inputs)
        outcome = BatchOutcome()
        for item in inputs:
            try:
                outcome.results.append(self.update_call(item.id, item.properties))
            except SandboxError as exc:
                outcome.errors.append(item_error(exc.category, exc.message, context={"id": [item.id]}))
        return outcome

    def associate_call(self, call_id: str, contact_id: str) -> JSON:
        call = self._call(call_id)
        self._contact_for_association(contact_id)
        call.associate(contact_id)
        return {
            "from": {"id": call_id},
            "to": {"id": contact_id},
            "associationSpec": {
                "associationCategory": "HUBSPOT_DEFINED",
                "associationTypeId": CALL_TO_CONTACT,
            },
        }

    def batch_associate_calls(self, inputs: Sequence[AssociationPair]) -> BatchOutcome:
        check_batch_size(inputs)
        outcome = BatchOutcome()
        for pair in inputs:
            try:
                outcome.results.append(self.associate_call(pair.from_.id, pair.to.id))
            except SandboxError as exc:
                context = {"fromId": [pair.from_.id], "toId": [pair.to.id]}
                outcome.errors.append(item_error(exc.category, exc.message, context=context))
        return outcome

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
                {**c.to_json(), "writes": c.writes} for c in sorted(self.contacts.values(), key=_id_order)
            ],
            "property_groups": [g.to_json() for g in self.property_groups.values()],
            "properties": [p.to_json() for p in self.properties.values() if not p.hubspot_defined],
            "timeline_events": [e.to_json() for e in self.timeline_events.values()],
            "marketing_events": [m.snapshot() for m in self.marketing_events.values()],
            "calls": [c.to_json(with_associations=True) for c in self.calls.values()],
            "users": [u.to_json() for u in self.users],
            "callbacks": [c.to_json() for c in self.callbacks],
            "stats": self.stats.to_json(),
        }


def _order_key(ident: str) -> tuple[int, str]:
    """Numeric ids in numeric order, then any other (seeded) ids alphabetically."""
    return (int(ident), "") if ident.isdigit() else (1 << 62, ident)


def _id_order(contact: Contact) -> tuple[int, str]:
    return _order_key(contact.id)


def _is_number(value: str) -> bool:
    try:
        return math.isfinite(float(value))
    except ValueError:
        return False


def _token_problem(template: EventTemplate, tokens: Mapping[str, str]) -> str | None:
    for name, value in tokens.items():
        token = template.token(name)
        if token is None:
            return f"Token {name!r} is not defined on event template {template.id}."
        if token["type"] == "number" and value != "" and not _is_number(value):
            return f"Token {name!r} must be a number, got {value!r}."
        options = token.get("options") or []
        if token["type"] == "enumeration" and value not in {str(o.get("value")) for o in options}:
            return f"Token {name!r} value {value!r} is not one of its options."
    return None


def _call_properties(properties: Mapping[str, Any]) -> dict[str, str]:
    values = {k: property_value(v) for k, v in properties.items()}
    url = values.get("hs_call_recording_url")
    if url:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.netloc:
            raise validation_error(
                "hs_call_recording_url must be a secure (https) URL.", propertyName=["hs_call_recording_url"]
            )
    return values


def _check_search(body: SearchBody) -> None:
    groups = body.filterGroups
    filters = [f for group in groups for f in group.filters]
    if (
        len(groups) > SEARCH_MAX_GROUPS
        or any(len(g.filters) > SEARCH_MAX_FILTERS_PER_GROUP for g in groups)
        or len(filters) > SEARCH_MAX_FILTERS
    ):
        raise validation_error(
            f"Too many filters: at most {SEARCH_MAX_GROUPS} filterGroups, "
            f"{SEARCH_MAX_FILTERS_PER_GROUP} filters per group and {SEARCH_MAX_FILTERS} in all."
        )
    for f in filters:
        if f.operator not in SEARCH_OPERATORS:
            raise validation_error(
                f"The sandbox's search supports only {', '.join(sorted(SEARCH_OPERATORS))}; "
                f"got {f.operator!r}."
            )
        if f.operator in ("IN", "NOT_IN") and not f.values:
            raise validation_error(f"{f.operator} needs 'values'.")
        if f.operator in ("EQ", "NEQ") and f.value is None:
            raise validation_error(f"{f.operator} needs 'value'.")
    if body.sorts or body.query:
        raise validation_error("The sandbox's search supports neither 'sorts' nor 'query'.")


def _matches(f: SearchFilter, properties: Mapping[str, str]) -> bool:
    value = properties.get(f.propertyName)
    has = value not in (None, "")
    if f.operator == "HAS_PROPERTY":
        return has
    if f.operator == "NOT_HAS_PROPERTY":
        return not has
    if f.operator in ("IN", "NOT_IN"):
        inside = has and value in {property_value(v) for v in f.values or []}
        return inside if f.operator == "IN" else not inside
    equal = has and value == property_value(f.value)
    return equal if f.operator == "EQ" else not equal


def _check_call_association(association: CallAssociation) -> None:
    for spec in association.types:
        if (
            str(spec.associationTypeId) != str(CALL_TO_CONTACT)
            or spec.associationCategory != "HUBSPOT_DEFINED"
        ):
            raise validation_error(
                "The sandbox supports only the call-to-contact association (HUBSPOT_DEFINED, 194)."
            )


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
    if not _TOKEN_NAME_RE.fullmatch(token.name):
        raise validation_error(f"Invalid token name {token.name!r}: use letters, digits, '.', '-' and '_'.")
    if token.type not in TOKEN_TYPES:
        raise validation_error(f"Token type must be one of {', '.join(sorted(TOKEN_TYPES))}.")
    if token.type == "enumeration" and not token.options:
        raise validation_error(f"Enumeration token {token.name!r} needs options.")
    body = token.model_dump(exclude_none=True)
    body.update(createdAt=iso(moment), updatedAt=iso(moment))
    return body
