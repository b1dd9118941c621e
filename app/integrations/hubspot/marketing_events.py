"""HubSpot marketing events: the event itself, contacts' attendance states, completion."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from app.integrations.hubspot.models import (
    AttendanceInput,
    AttendanceResult,
    AttendanceState,
    BatchResult,
    MarketingEvent,
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

ATTENDANCE_STATES: frozenset[str] = frozenset({"register", "attend", "cancel"})


class MarketingEventsApi(HubSpotTransport):
    """One marketing event per webinar, with its contacts' register/attend/cancel states."""

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
            body["startDateTime"] = iso_utc(event.start_at)
        if event.end_at is not None:
            body["endDateTime"] = iso_utc(event.end_at)
        if event.event_url is not None:
            body["eventUrl"] = event.event_url
        path = f"/marketing/v3/marketing-events/events/{segment(event.external_event_id)}"
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
        check_batch(inputs, "record_attendance")
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
                    "interactionDateTime": epoch_ms(item.interaction_at),
                    "properties": properties,
                }
            )
        path = f"/marketing/v3/marketing-events/attendance/{segment(external_event_id)}/{state}/create"
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
        path = f"/marketing/v3/marketing-events/events/{segment(external_event_id)}/complete"
        return await self._call(
            MarketingEventResult,
            "POST",
            path,
            params={"externalAccountId": external_account_id},
            body={"startDateTime": iso_utc(start), "endDateTime": iso_utc(end)},
        )
