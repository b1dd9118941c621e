"""HubSpot REST client: one instance per portal, on one shared `httpx.AsyncClient`.

Every method returns typed results (never raw responses) and raises `HubSpotError` subclasses.
Only 429, 5xx and transport errors are retried; every attempt first waits for the portal's rate
limiter, and a 429 tells the limiter to hold every sender of that portal back.

The bearer token lives only in the per-request headers: it never reaches a log line or an
exception (exceptions keep the method and path, never the request).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from app.integrations.calls import CallRunner
from app.integrations.hubspot.errors import (
    HubSpotError,
    HubSpotNotFound,
    HubSpotRateLimited,
    HubSpotUnavailable,
    error_from_response,
)
from app.integrations.hubspot.models import (
    AssociationResult,
    AttendanceInput,
    AttendanceResult,
    AttendanceState,
    BatchResult,
    CallbackCompletion,
    Contact,
    ContactUpsert,
    CrmObject,
    EventTemplate,
    HubSpotUser,
    MarketingEvent,
    MarketingEventResult,
    PropertyDefinition,
    PropertyGroup,
    PropertyValue,
    TimelineEvent,
    TimelineEventResult,
    TokenValue,
)
from app.integrations.hubspot.rate_limit import RateLimiter
from app.integrations.retry import backoff_s, parse_retry_after

logger = logging.getLogger(__name__)

BATCH_LIMIT = 100
USERS_PAGE_SIZE = 100
DEFAULT_RETRY_AFTER_S = 10.0
CALL_TO_CONTACT_ASSOCIATION_TYPE_ID = 194
ATTENDANCE_STATES: frozenset[str] = frozenset({"register", "attend", "cancel"})

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ModelT = TypeVar("_ModelT", bound=BaseModel)
JsonBody = dict[str, Any]


class CallObserver(Protocol):
    """Told how each call went, e.g. to keep the portal's health (app.delivery.health)."""

    async def observe(self, error: HubSpotError | None, began_at: datetime) -> None:
        """A call ended (`error` None: HubSpot answered it) or one attempt got a 429 (then the
        client waits and retries). `began_at`: when the call started. Must not raise."""
        ...


@dataclass
class HubSpotClientStats:
    """Counters for tests and benchmarks: every HTTP attempt, and what went wrong."""

    requests: int = 0
    rate_limited: int = 0
    server_errors: int = 0
    transport_errors: int = 0
    retries: int = 0


# --- wire-format helpers ------------------------------------------------------------------------


def _segment(value: str | int) -> str:
    """One URL path segment; ids come from outside (Zoom), so never let them add path parts."""
    return quote(str(value), safe="")


def _iso_utc(moment: datetime) -> str:
    """`2024-05-01T10:00:00.000Z`: the ISO-8601 form HubSpot's v3 APIs accept for date-times."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _epoch_ms(moment: datetime) -> int:
    return (moment.astimezone(UTC) - _EPOCH) // timedelta(milliseconds=1)


def attendance_time_value(moment: datetime) -> str:
    """The value sent for `joinedAt`/`leftAt` of the `attend` state.

    HubSpot does not document the format (ISO-8601 or epoch ms); this is the only place that
    decides it, so switching after a check against a real portal is a one-line change.
    """
    return _iso_utc(moment)


def _property_value(value: PropertyValue) -> str:
    # HubSpot keeps every property as a string; "" clears a value.
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _properties(values: Mapping[str, PropertyValue]) -> dict[str, str]:
    return {name: _property_value(value) for name, value in values.items()}


def _token_value(value: TokenValue) -> str:
    return value if isinstance(value, str) else str(value)


def _check_batch(items: Sequence[Any], what: str) -> None:
    if len(items) > BATCH_LIMIT:
        raise ValueError(f"{what}: {len(items)} inputs, HubSpot takes at most {BATCH_LIMIT} per request")


# Transport failures that happen before any byte of the request left: HubSpot cannot have acted.
_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def may_have_reached_hubspot(exc: HubSpotError) -> bool:
    """Whether HubSpot may have applied the request although it failed (its answer was lost).

    A 5xx, an answer that could not be read, a read timeout or a connection dropped after sending
    leave it open; a 4xx (429 included) is HubSpot refusing the request; a failed connect never sent it.
    """
    if exc.status is not None:
        return not 400 <= exc.status < 500
    return not isinstance(exc.__cause__, _NEVER_SENT)


def _parse_retry_after(response: httpx.Response) -> float:
    """Seconds to wait after a 429: `Retry-After` (seconds or a date), else HubSpot's window."""
    seconds = parse_retry_after(response.headers.get("Retry-After"), datetime.now(UTC))
    if seconds is not None:
        return seconds
    interval = response.headers.get("X-HubSpot-RateLimit-Interval-Milliseconds")
    if interval is not None:
        try:
            ms = float(interval)
        except ValueError:
            ms = math.nan
        if math.isfinite(ms) and ms > 0:
            return ms / 1000.0
    return DEFAULT_RETRY_AFTER_S


# --- the client ---------------------------------------------------------------------------------


class HubSpotClient:
    """Typed access to the HubSpot APIs this service uses, for one portal.

    `http` is shared with the rest of the process and owned by the caller (built in the app's
    lifespan); this class never closes it.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str,
        access_token: str,
        portal_id: int,
        rate_limiter: RateLimiter,
        max_attempts: int = 5,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        max_retry_after_s: float = 60.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        observer: CallObserver | None = None,
    ) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._headers = {
            "Authorization": f"Bearer {access_token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        # Kept only to scrub it from error text HubSpot might echo back.
        self._token = access_token
        self.portal_id = portal_id
        self._limiter = rate_limiter
        self._max_attempts = max_attempts
        # A 429 asking for a longer wait (e.g. the DAILY policy) is not waited out in-process:
        # the error goes back to the caller, whose work queue retries later.
        self._max_retry_after_s = max_retry_after_s
        self._backoff_base_s = backoff_base_s
        self._backoff_max_s = backoff_max_s
        self.stats = HubSpotClientStats()
        self._calls = CallRunner(
            error_type=HubSpotError,
            max_attempts=max_attempts,
            should_retry=self._should_retry,
            wait_s=self._wait_s,
            on_retry=self._on_retry,
            sleep=sleep,
            now=lambda: datetime.now(UTC),
            observer=observer,
        )

    def __repr__(self) -> str:
        return f"HubSpotClient(base_url={self._base_url!r}, portal_id={self.portal_id!r})"

    # --- transport, retries and error mapping ---------------------------------------------------

    def _scrub(self, text: str) -> str:
        return text.replace(self._token, "[redacted]") if self._token else text

    def _scrub_bytes(self, body: bytes) -> bytes:
        return body.replace(self._token.encode(), b"[redacted]") if self._token else body

    def _should_retry(self, exc: HubSpotError) -> bool:
        if isinstance(exc, HubSpotRateLimited):
            return exc.retry_after_s <= self._max_retry_after_s
        return exc.retryable

    def _wait_s(self, exc: HubSpotError, attempt: int) -> float:
        if isinstance(exc, HubSpotRateLimited):
            return exc.retry_after_s
        return backoff_s(attempt, base_s=self._backoff_base_s, max_s=self._backoff_max_s)

    def _on_retry(self, exc: HubSpotError, attempt: int, wait: float) -> None:
        self.stats.retries += 1
        logger.warning(
            "HubSpot %s %s failed (status %s, %s); retry %d/%d in %.2fs",
            exc.method,
            exc.path,
            exc.status,
            exc.category,
            attempt,
            self._max_attempts - 1,
            wait,
            extra={"portal_id": self.portal_id},
        )

    async def _attempt(
        self, method: str, path: str, params: Mapping[str, str] | None, body: Any
    ) -> httpx.Response:
        await self._limiter.acquire(self.portal_id)
        self.stats.requests += 1
        try:
            response = await self._http.request(
                method,
                self._base_url + path,
                params=params,
                json=body,
                headers=self._headers,
            )
        except httpx.TransportError as exc:
            self.stats.transport_errors += 1
            # httpx's message names the failure, never the request headers; scrub anyway.
            raise HubSpotUnavailable(
                None,
                "TRANSPORT_ERROR",
                self._scrub(f"{type(exc).__name__}: {exc}"),
                method=method,
                path=path,
            ) from exc
        if response.is_success:
            return response

        retry_after_s = 0.0
        if response.status_code == 429:
            self.stats.rate_limited += 1
            retry_after_s = _parse_retry_after(response)
            self._limiter.penalise(self.portal_id, retry_after_s)
        elif response.status_code >= 500:
            self.stats.server_errors += 1
        error = error_from_response(
            response.status_code,
            self._scrub_bytes(response.content),
            retry_after_s=retry_after_s,
            method=method,
            path=path,
        )
        if isinstance(error, HubSpotRateLimited):
            await self._calls.rate_limited(error)
        raise error

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        at_most_once: bool = False,
    ) -> httpx.Response:
        # A create that is not idempotent is sent again only when HubSpot surely did not apply it;
        # otherwise the caller decides (it can look the record up first).
        def surely_not_applied(exc: HubSpotError) -> bool:
            return not may_have_reached_hubspot(exc)

        response: httpx.Response = await self._calls.call(
            lambda: self._attempt(method, path, params, body),
            retry_if=surely_not_applied if at_most_once else None,
        )
        return response

    async def _request_json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        at_most_once: bool = False,
    ) -> Any:
        response = await self._request(method, path, params=params, body=body, at_most_once=at_most_once)
        try:
            return response.json()
        except ValueError:
            raise HubSpotError(
                response.status_code,
                "UNEXPECTED_RESPONSE",
                "response body is not JSON",
                method=method,
                path=path,
            ) from None

    def _parse(self, model: type[_ModelT], data: Any, *, method: str, path: str) -> _ModelT:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise HubSpotError(
                None,
                "UNEXPECTED_RESPONSE",
                f"response does not match {model.__name__}: {exc.error_count()} problem(s)",
                method=method,
                path=path,
            ) from None

    async def _call(
        self,
        model: type[_ModelT],
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        at_most_once: bool = False,
    ) -> _ModelT:
        data = await self._request_json(method, path, params=params, body=body, at_most_once=at_most_once)
        return self._parse(model, data, method=method, path=path)

    # --- contacts -------------------------------------------------------------------------------

    async def batch_upsert_contacts(self, inputs: Sequence[ContactUpsert]) -> BatchResult[Contact]:
        """Create or update contacts by email. Partial upserts are not supported by email, so each
        input's properties are written as given."""
        _check_batch(inputs, "batch_upsert_contacts")
        if not inputs:
            return BatchResult[Contact]()
        body = {
            "inputs": [
                {"id": item.email, "idProperty": "email", "properties": _properties(item.properties)}
                for item in inputs
            ]
        }
        return await self._call(
            BatchResult[Contact], "POST", "/crm/v3/objects/contacts/batch/upsert", body=body
        )

    async def batch_read_contacts(
        self,
        ids: Sequence[str],
        *,
        id_property: str | None = "email",
        properties: Sequence[str],
        archived: bool = False,
    ) -> BatchResult[Contact]:
        """Read contacts by `id_property` (None: by HubSpot object id). Ids HubSpot does not know
        come back in `errors` (their `ids`), not as an exception.

        A read by email also matches secondary addresses without saying which input matched:
        request `hs_additional_emails` to map results back.
        """
        _check_batch(ids, "batch_read_contacts")
        if not ids:
            return BatchResult[Contact]()
        body: JsonBody = {
            "inputs": [{"id": str(item)} for item in ids],
            "properties": list(properties),
            "propertiesWithHistory": [],
        }
        if id_property is not None:
            body["idProperty"] = id_property
        return await self._call(
            BatchResult[Contact],
            "POST",
            "/crm/v3/objects/contacts/batch/read",
            params={"archived": "true" if archived else "false"},
            body=body,
        )

    # --- users ----------------------------------------------------------------------------------

    async def list_users(self) -> list[HubSpotUser]:
        """Every user of the account, all pages."""
        path = "/settings/v3/users/"
        users: list[HubSpotUser] = []
        after: str | None = None
        seen: set[str] = set()
        while True:
            params = {"limit": str(USERS_PAGE_SIZE)}
            if after is not None:
                params["after"] = after
            data = await self._request_json("GET", path, params=params)
            page = self._parse(_UsersPage, data, method="GET", path=path)
            users.extend(page.results)
            after = page.next_after
            if after is None:
                return users
            if after in seen:  # a cursor that does not move would loop forever
                raise HubSpotError(
                    None, "UNEXPECTED_RESPONSE", "paging cursor repeated", method="GET", path=path
                )
            seen.add(after)

    # --- contact properties ---------------------------------------------------------------------

    async def get_property_group(self, name: str) -> PropertyGroup | None:
        try:
            return await self._call(
                PropertyGroup, "GET", f"/crm/v3/properties/contacts/groups/{_segment(name)}"
            )
        except HubSpotNotFound:
            return None

    async def create_property_group(self, group: PropertyGroup) -> PropertyGroup:
        body = group.model_dump(mode="json", by_alias=True, exclude_none=True)
        return await self._call(PropertyGroup, "POST", "/crm/v3/properties/contacts/groups", body=body)

    async def get_contact_property(self, name: str) -> PropertyDefinition | None:
        try:
            return await self._call(
                PropertyDefinition, "GET", f"/crm/v3/properties/contacts/{_segment(name)}"
            )
        except HubSpotNotFound:
            return None

    async def create_contact_property(self, definition: PropertyDefinition) -> PropertyDefinition:
        body = definition.model_dump(mode="json", by_alias=True, exclude_none=True)
        return await self._call(PropertyDefinition, "POST", "/crm/v3/properties/contacts", body=body)

    # --- timeline -------------------------------------------------------------------------------

    async def list_event_templates(self, app_id: int | str) -> list[EventTemplate]:
        path = f"/integrators/timeline/v3/{_segment(app_id)}/event-templates"
        page = await self._call(_EventTemplatePage, "GET", path)
        return page.results

    async def create_event_template(self, app_id: int | str, template: EventTemplate) -> EventTemplate:
        path = f"/integrators/timeline/v3/{_segment(app_id)}/event-templates"
        body = template.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"id"})
        return await self._call(EventTemplate, "POST", path, body=body)

    async def create_timeline_events(
        self, inputs: Sequence[TimelineEvent]
    ) -> BatchResult[TimelineEventResult]:
        _check_batch(inputs, "create_timeline_events")
        if not inputs:
            return BatchResult[TimelineEventResult]()
        events: list[JsonBody] = []
        for item in inputs:
            event: JsonBody = {
                "eventTemplateId": item.event_template_id,
                "id": item.id,
                "objectId": item.object_id,
                "tokens": {name: _token_value(value) for name, value in item.tokens.items()},
            }
            if item.timestamp is not None:
                event["timestamp"] = _iso_utc(item.timestamp)
            events.append(event)
        return await self._call(
            BatchResult[TimelineEventResult],
            "POST",
            "/integrators/timeline/v3/events/batch/create",
            body={"inputs": events},
        )

    # --- marketing events -----------------------------------------------------------------------

    async def upsert_marketing_event(self, event: MarketingEvent) -> MarketingEventResult:
        body: JsonBody = {
            "externalAccountId": event.external_account_id,
            "externalEventId": event.external_event_id,
            "eventName": event.event_name,
            "eventOrganizer": event.event_organizer,
            "eventType": event.event_type,
            "customProperties": [],
        }
        if event.start_at is not None:
            body["startDateTime"] = _iso_utc(event.start_at)
        if event.end_at is not None:
            body["endDateTime"] = _iso_utc(event.end_at)
        if event.event_url is not None:
            body["eventUrl"] = event.event_url
        path = f"/marketing/v3/marketing-events/events/{_segment(event.external_event_id)}"
        return await self._call(MarketingEventResult, "PUT", path, body=body)

    async def record_attendance(
        self,
        external_event_id: str,
        external_account_id: str,
        state: AttendanceState,
        inputs: Sequence[AttendanceInput],
    ) -> BatchResult[AttendanceResult]:
        """Set contacts' state (by contact id) in a marketing event. HubSpot answers 200 even when
        some inputs fail; those are in `errors`."""
        if state not in ATTENDANCE_STATES:
            raise ValueError(f"unknown attendance state {state!r}")
        _check_batch(inputs, "record_attendance")
        if not inputs:
            return BatchResult[AttendanceResult]()
        rows: list[JsonBody] = []
        for item in inputs:
            properties: dict[str, str] = {}
            if item.joined_at is not None:
                properties["joinedAt"] = attendance_time_value(item.joined_at)
            if item.left_at is not None:
                properties["leftAt"] = attendance_time_value(item.left_at)
            rows.append(
                {
                    "vid": item.vid,
                    "interactionDateTime": _epoch_ms(item.interaction_at),
                    "properties": properties,
                }
            )
        path = f"/marketing/v3/marketing-events/attendance/{_segment(external_event_id)}/{state}/create"
        return await self._call(
            BatchResult[AttendanceResult],
            "POST",
            path,
            params={"externalAccountId": external_account_id},
            body={"inputs": rows},
        )

    async def complete_marketing_event(
        self,
        external_event_id: str,
        external_account_id: str,
        start: datetime,
        end: datetime,
    ) -> MarketingEventResult:
        """Mark the event over; HubSpot then computes attendance durations. Call it after all
        attendance has been recorded."""
        path = f"/marketing/v3/marketing-events/events/{_segment(external_event_id)}/complete"
        return await self._call(
            MarketingEventResult,
            "POST",
            path,
            params={"externalAccountId": external_account_id},
            body={"startDateTime": _iso_utc(start), "endDateTime": _iso_utc(end)},
        )

    # --- calls ----------------------------------------------------------------------------------

    async def create_call(
        self,
        properties: Mapping[str, PropertyValue],
        contact_ids: Sequence[str | int],
        *,
        at_most_once: bool = False,
    ) -> CrmObject:
        """Create a call associated with up to 100 contacts (more: `associate_calls_to_contacts`).

        With `at_most_once`, a failure after which HubSpot may have made the call (5xx, answer lost)
        is raised instead of retried, so the caller can look for it before creating another.
        """
        _check_batch(contact_ids, "create_call contact_ids")
        body = {
            "properties": _properties(properties),
            "associations": [
                {
                    "to": {"id": str(contact_id)},
                    "types": [
                        {
                            "associationCategory": "HUBSPOT_DEFINED",
                            "associationTypeId": CALL_TO_CONTACT_ASSOCIATION_TYPE_ID,
                        }
                    ],
                }
                for contact_id in contact_ids
            ],
        }
        path = "/crm/v3/objects/calls"
        return await self._call(CrmObject, "POST", path, body=body, at_most_once=at_most_once)

    async def find_calls(
        self, property_name: str, value: str, properties: Sequence[str] = (), *, limit: int = 10
    ) -> list[CrmObject]:
        """Calls whose `property_name` equals `value` (CRM search: new records appear with a lag)."""
        equal = {"propertyName": property_name, "operator": "EQ", "value": value}
        body = {
            "filterGroups": [{"filters": [equal]}],
            "properties": [property_name, *properties],
            "limit": limit,
        }
        page = await self._call(_SearchPage, "POST", "/crm/v3/objects/calls/search", body=body)
        return list(page.results)

    async def update_call(self, call_id: str | int, properties: Mapping[str, PropertyValue]) -> CrmObject:
        path = f"/crm/v3/objects/calls/{_segment(call_id)}"
        return await self._call(CrmObject, "PATCH", path, body={"properties": _properties(properties)})

    async def associate_calls_to_contacts(
        self, pairs: Sequence[tuple[str | int, str | int]]
    ) -> BatchResult[AssociationResult]:
        """Default (type 194) associations, one per `(call_id, contact_id)` pair."""
        _check_batch(pairs, "associate_calls_to_contacts")
        if not pairs:
            return BatchResult[AssociationResult]()
        body = {
            "inputs": [
                {"from": {"id": str(call_id)}, "to": {"id": str(contact_id)}} for call_id, contact_id in pairs
            ]
        }
        return await self._call(
            BatchResult[AssociationResult],
            "POST",
            "/crm/v4/associations/calls/contacts/batch/associate/default",
            body=body,
        )

    # --- workflow action callbacks --------------------------------------------------------------

    async def complete_callbacks(self, inputs: Sequence[CallbackCompletion]) -> None:
        """Finish blocked workflow-action executions (HubSpot answers 204)."""
        _check_batch(inputs, "complete_callbacks")
        if not inputs:
            return
        body = {
            "inputs": [
                {"callbackId": item.callback_id, "outputFields": dict(item.output_fields), "typedOutputs": {}}
                for item in inputs
            ]
        }
        await self._request("POST", "/automation/v4/actions/callbacks/complete", body=body)

    # --- workflow action definitions -------------------------------------------------------------
    # HubSpot documents the developer API key (`hapikey`) for these calls; apps set up for OAuth or
    # static tokens use the bearer token alone (reference/hubspot.md §1.1).

    async def list_action_definitions(
        self, app_id: int | str, *, hapikey: str | None = None
    ) -> list[dict[str, Any]]:
        path = f"/automation/v4/actions/{_segment(app_id)}"
        found: list[dict[str, Any]] = []
        after: str | None = None
        for _ in range(100):  # pages of 50; an app never has thousands of actions
            params = (
                {"limit": "50"}
                | ({"after": after} if after else {})
                | ({"hapikey": hapikey} if hapikey else {})
            )
            data = await self._request_json("GET", path, params=params)
            found.extend(r for r in data.get("results", []) if isinstance(r, dict))
            after = ((data.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                break
        return found

    async def create_action_definition(
        self, app_id: int | str, definition: Mapping[str, Any], *, hapikey: str | None = None
    ) -> dict[str, Any]:
        path = f"/automation/v4/actions/{_segment(app_id)}"
        params = {"hapikey": hapikey} if hapikey else None
        data: dict[str, Any] = await self._request_json("POST", path, params=params, body=dict(definition))
        return data

    async def update_action_definition(
        self,
        app_id: int | str,
        definition_id: str,
        definition: Mapping[str, Any],
        *,
        hapikey: str | None = None,
    ) -> dict[str, Any]:
        path = f"/automation/v4/actions/{_segment(app_id)}/{_segment(definition_id)}"
        params = {"hapikey": hapikey} if hapikey else None
        data: dict[str, Any] = await self._request_json("PATCH", path, params=params, body=dict(definition))
        return data


# --- response envelopes that never leave this module --------------------------------------------


class _NextPage(BaseModel):
    after: str | None = None


class _Paging(BaseModel):
    next: _NextPage | None = None


class _UsersPage(BaseModel):
    results: list[HubSpotUser] = []
    paging: _Paging | None = None

    @property
    def next_after(self) -> str | None:
        if self.paging is None or self.paging.next is None:
            return None
        return self.paging.next.after or None


class _SearchPage(BaseModel):
    total: int = 0
    results: list[CrmObject] = []


class _EventTemplatePage(BaseModel):
    results: list[EventTemplate] = []
