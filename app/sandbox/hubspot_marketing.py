"""A portal's marketing events and their attendance in the fake HubSpot. One mixin of
:class:`~app.sandbox.hubspot_state.PortalState`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from app.sandbox.hubspot_bodies import (
    AttendanceInput,
    CompleteBody,
    MarketingEventBody,
)
from app.sandbox.hubspot_common import (
    JSON,
    SUBSCRIBER_STATES,
    BatchOutcome,
    SandboxError,
    epoch_ms,
    item_error,
    not_found,
    now_utc,
    validation_error,
)
from app.sandbox.hubspot_contacts import ContactsMixin
from app.sandbox.hubspot_records import (
    Attendance,
    MarketingEvent,
)


class MarketingMixin(ContactsMixin):
    """Marketing events and their attendance."""

    marketing_events: dict[tuple[str, str], MarketingEvent]

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
        account_id, event_id = body.externalAccountId, body.externalEventId
        missing = [
            name
            for name in ("externalAccountId", "externalEventId", "eventName", "eventOrganizer")
            if not getattr(body, name)
        ]
        # The ids are in `missing` when empty; testing them again narrows their type for the return.
        if missing or not account_id or not event_id:
            raise validation_error(f"Missing required fields: {', '.join(missing)}.", fields=missing)
        return account_id, event_id

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
            at_ms = epoch_ms(item.interactionDateTime)
            if at_ms is None:  # absent or unreadable: HubSpot takes the time of the call
                at_ms = now_ms
            record = event.attendance.get(contact.id)
            if record is None:
                record = event.attendance[contact.id] = Attendance(contact.id, state, at_ms)
            record.apply(state, at_ms, item.properties)
            vid: int | str = int(contact.id) if contact.id.isdigit() else contact.id
            outcome.results.append({"vid": vid, "email": contact.email})
        event.updated_at = now_utc()
        return outcome
