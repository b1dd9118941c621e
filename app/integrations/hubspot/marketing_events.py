"""HubSpot marketing events: the event itself, contacts' attendance states, completion.

Two families of routes reach an event. The external-id routes (`events/{externalEventId}`, the
upsert, `attendance/{externalEventId}/...`, `complete`) see only events made by the app whose token
calls them: after a token of another app (a re-created private app, an OAuth app replacing a static
one) they answer 404, and the upsert makes a second event. The objectId routes (`/{objectId}`,
`/{objectId}/attendance/...`) work for any app of the portal, and `/{externalEventId}/identifiers`
finds the objectIds of every app's events (a few minutes after their creation). The service keeps
the objectId and uses the objectId routes (CONTRACT.md §4.2; reference/hubspot-platform.md §5).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from app.integrations.hubspot.models import (
    AttendanceInput,
    AttendanceResult,
    AttendanceState,
    BatchResult,
    MarketingEvent,
    MarketingEventIdentifier,
    MarketingEventResult,
)
from app.integrations.hubspot.transport import HubSpotTransport
from app.integrations.hubspot.wire import (
    JsonBody,
    attendance_time_value,
    check_batch,
    epoch_ms,
    iso_utc,
    segment,
)

log = logging.getLogger(__name__)

ATTENDANCE_STATES: frozenset[str] = frozenset({"register", "attend", "cancel"})
BASE = "/marketing/v3/marketing-events"


def _event_fields(event: MarketingEvent) -> JsonBody:
    """The event's own fields, as both the upsert and the objectId update take them."""
    body: JsonBody = {
        "eventName": event.event_name,
        "eventOrganizer": event.event_organizer,
        "eventType": event.event_type,
        "customProperties": [],  # required by the create and by the objectId update
    }
    if event.start_at is not None:
        body["startDateTime"] = iso_utc(event.start_at)
    if event.end_at is not None:
        body["endDateTime"] = iso_utc(event.end_at)
    if event.event_url is not None:
        body["eventUrl"] = event.event_url
    return body


def _attendance_rows(inputs: Sequence[AttendanceInput]) -> list[JsonBody]:
    rows: list[JsonBody] = []
    for item in inputs:
        properties: dict[str, str] = {}
        if item.joined_at is not None:
            properties["joinedAt"] = attendance_time_value(item.joined_at)
        if item.left_at is not None:
            properties["leftAt"] = attendance_time_value(item.left_at)
        rows.append(
            {"vid": item.vid, "interactionDateTime": epoch_ms(item.interaction_at), "properties": properties}
        )
    return rows


def parse_identifiers(data: Any) -> list[MarketingEventIdentifier]:
    """The matches of an identifiers answer, tolerant of its shape: HubSpot documents
    `{"results": [...], "total": n, "paging": ...}`, a bare list is taken too, and an entry without
    an `objectId` is skipped (logged) rather than failing the lookup."""
    items = data.get("results") if isinstance(data, dict) else data
    if not isinstance(items, list):
        return []
    found: list[MarketingEventIdentifier] = []
    for item in items:
        try:
            found.append(MarketingEventIdentifier.model_validate(item))
        except ValidationError:
            log.warning(
                "marketing event identifier without an objectId skipped", extra={"item": str(item)[:200]}
            )
    return found


class MarketingEventsApi(HubSpotTransport):
    """One marketing event per webinar, with its contacts' register/attend/cancel states."""

    # ---- the event ----------------------------------------------------------------------------------

    async def upsert_marketing_event(
        self, event: MarketingEvent, *, at_most_once: bool = False
    ) -> MarketingEventResult:
        """Create the event, or update the one this same app made (`PUT events/{externalEventId}`).
        Its answer carries the event's objectId (`hubspot_id`). Sent again by the same app, it
        updates the same event; by another app it makes a second event. With `at_most_once` an
        answer that may have been lost is not sent again: the caller looks the event up instead."""
        body: JsonBody = {
            "externalAccountId": event.external_account_id,
            "externalEventId": event.external_event_id,
            **_event_fields(event),
        }
        path = f"{BASE}/events/{segment(event.external_event_id)}"
        return await self._call(MarketingEventResult, "PUT", path, body=body, at_most_once=at_most_once)

    async def get_marketing_event_by_external_id(
        self, external_event_id: str, external_account_id: str
    ) -> MarketingEventResult:
        """The event this app made for these external ids; 404 (`HubSpotNotFound`) when it has none,
        including when another app made it. No search lag: it sees a new event at once."""
        path = f"{BASE}/events/{segment(external_event_id)}"
        return await self._call(
            MarketingEventResult, "GET", path, params={"externalAccountId": external_account_id}
        )

    async def get_marketing_event(self, object_id: str) -> MarketingEventResult:
        """The event by its objectId, whichever app made it (404 when deleted)."""
        return await self._call(MarketingEventResult, "GET", f"{BASE}/{segment(object_id)}")

    async def update_marketing_event(self, object_id: str, event: MarketingEvent) -> MarketingEventResult:
        """Write the event's fields by objectId (`PATCH /{objectId}`), whichever app made it. The
        external ids are not part of this route: they never change."""
        return await self._call(
            MarketingEventResult, "PATCH", f"{BASE}/{segment(object_id)}", body=_event_fields(event)
        )

    async def set_marketing_event_times(
        self, object_id: str, start: datetime, end: datetime
    ) -> MarketingEventResult:
        """Write the event's actual start and end by objectId: the any-app part of completing it
        (see `complete_marketing_event`)."""
        body: JsonBody = {
            "startDateTime": iso_utc(start),
            "endDateTime": iso_utc(end),
            "customProperties": [],
        }
        return await self._call(MarketingEventResult, "PATCH", f"{BASE}/{segment(object_id)}", body=body)

    async def find_marketing_events(self, external_event_id: str) -> list[MarketingEventIdentifier]:
        """Every app's events with this externalEventId in the portal
        (`GET /{externalEventId}/identifiers`), with their objectId and, when given, their app and
        externalAccountId (the route takes no account filter: the caller matches it). HubSpot
        indexes a new event only "a few minutes after creation": an empty answer soon after a
        create proves nothing. Only the first page is read: one entry per app that made one."""
        path = f"{BASE}/{segment(external_event_id)}/identifiers"
        return parse_identifiers(await self._request_json("GET", path))

    async def complete_marketing_event(
        self,
        external_event_id: str,
        external_account_id: str,
        start: datetime,
        end: datetime,
    ) -> MarketingEventResult:
        """Mark the event over; HubSpot then computes attendance durations. Call it after all
        attendance has been recorded.

        HubSpot has this route by external id only (v3 and 2026-03 list no objectId `complete`), so
        it works for the app that made the event and answers 404 to any other: callers write the
        times through `set_marketing_event_times` first, which works for every app."""
        path = f"{BASE}/events/{segment(external_event_id)}/complete"
        return await self._call(
            MarketingEventResult,
            "POST",
            path,
            params={"externalAccountId": external_account_id},
            body={"startDateTime": iso_utc(start), "endDateTime": iso_utc(end)},
        )

    # ---- contacts' states ---------------------------------------------------------------------------

    async def record_attendance(
        self,
        external_event_id: str,
        external_account_id: str,
        state: AttendanceState,
        inputs: Sequence[AttendanceInput],
    ) -> BatchResult[AttendanceResult]:
        """Set contacts' state (by contact id) in a marketing event, by its external ids (the app that
        made it only). HubSpot answers 200 even when some inputs fail; those are in `errors`."""
        path = f"{BASE}/attendance/{segment(external_event_id)}/{state}/create"
        return await self._attendance(path, state, inputs, {"externalAccountId": external_account_id})

    async def record_attendance_by_object_id(
        self, object_id: str, state: AttendanceState, inputs: Sequence[AttendanceInput]
    ) -> BatchResult[AttendanceResult]:
        """Set contacts' state (by contact id) in the event with this objectId, whichever app made it
        (`POST /{objectId}/attendance/{state}/create`, the same `inputs` as by external id)."""
        return await self._attendance(f"{BASE}/{segment(object_id)}/attendance/{state}/create", state, inputs)

    async def _attendance(
        self,
        path: str,
        state: AttendanceState,
        inputs: Sequence[AttendanceInput],
        params: dict[str, str] | None = None,
    ) -> BatchResult[AttendanceResult]:
        if state not in ATTENDANCE_STATES:
            raise ValueError(f"unknown attendance state {state!r}")
        check_batch(inputs, "record_attendance")
        if not inputs:
            return BatchResult[AttendanceResult]()
        body = {"inputs": _attendance_rows(inputs)}
        return await self._call(BatchResult[AttendanceResult], "POST", path, params=params, body=body)
