"""A portal's marketing events and their attendance in the fake HubSpot. One mixin of
:class:`~app.sandbox.hubspot_state.PortalState`.

Events belong to the app whose token made them, as at HubSpot (reference/hubspot-platform.md §5):

* the external-id routes (``events/{externalEventId}`` GET/PATCH/PUT, ``complete``,
  ``attendance/{externalEventId}/...``) see only the calling app's events: another app's is a 404,
  and another app's upsert makes a SECOND event with the same external ids;
* the objectId routes (``/{objectId}`` GET/PATCH, ``/{objectId}/attendance/{state}/create``) work for
  every app of the portal;
* ``/{externalEventId}/identifiers`` lists every app's events with that external id, each with its
  ``appInfo``, but only once they are ``search_lag_s`` old ("searchable a few minutes after
  creation").

UNVERIFIED choices: the objectId update ignores ``eventCompleted`` (HubSpot's update schema has no such
field); the identifiers answer has no paging (one entry per app that made one).
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

APP_NAMES_PREFIX = "Sandbox app "


def _with_app(event: MarketingEvent) -> JSON:
    """The objectId routes' answer: the event with the app that made it."""
    return {**event.to_json(), "appInfo": {"id": event.app_id, "name": APP_NAMES_PREFIX + event.app_id}}


class MarketingMixin(ContactsMixin):
    """Marketing events (by object id) and their attendance."""

    marketing_events: dict[str, MarketingEvent]

    # ---- lookups ------------------------------------------------------------------------------------

    def _own_event(self, app_id: str, account_id: str | None, event_id: str) -> MarketingEvent | None:
        """The event the app `app_id` made for these external ids (external-id routes see no other)."""
        wanted = (app_id, account_id, event_id)
        return next(
            (
                e
                for e in self.marketing_events.values()
                if (e.app_id, e.external_account_id, e.external_event_id) == wanted
            ),
            None,
        )

    def _marketing_event(self, app_id: str, account_id: str | None, event_id: str) -> MarketingEvent:
        if not account_id:
            raise validation_error("externalAccountId is required.")
        event = self._own_event(app_id, account_id, event_id)
        if event is None:
            raise not_found(f"Marketing event {event_id} of account {account_id} not found.")
        return event

    def _by_object_id(self, object_id: str) -> MarketingEvent:
        event = self.marketing_events.get(object_id)
        if event is None:
            raise not_found(f"Marketing event {object_id} not found.")
        return event

    # ---- external-id routes -------------------------------------------------------------------------

    def _new_marketing_event(
        self, app_id: str, account_id: str, event_id: str, body: MarketingEventBody
    ) -> MarketingEvent:
        moment = now_utc()
        event = MarketingEvent(
            self._new_id("marketing_event"),
            account_id,
            event_id,
            {},
            moment,
            moment,
            app_id=app_id,
            created_clock=self.clock(),
        )
        event.apply(body, moment)
        self.marketing_events[event.object_id] = event
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

    def create_marketing_event(self, body: MarketingEventBody, *, app_id: str) -> JSON:
        account_id, event_id = self._require_create_fields(body)
        if self._own_event(app_id, account_id, event_id) is not None:
            raise SandboxError(
                409, "CONFLICT", f"Marketing event {event_id} of account {account_id} already exists."
            )
        return self._new_marketing_event(app_id, account_id, event_id, body).to_json()

    def upsert_marketing_event(self, event_id: str, body: MarketingEventBody, *, app_id: str) -> JSON:
        if body.externalEventId is not None and body.externalEventId != event_id:
            raise validation_error("externalEventId in the body does not match the path.")
        body.externalEventId = event_id
        account_id, _ = self._require_create_fields(body)
        existing = self._own_event(app_id, account_id, event_id)
        if existing is None:  # another app's event with these ids is not seen: a second one is made
            return self._new_marketing_event(app_id, account_id, event_id, body).to_json()
        existing.apply(body, now_utc())
        return existing.to_json()

    def patch_marketing_event(
        self, event_id: str, account_id: str | None, body: MarketingEventBody, *, app_id: str
    ) -> JSON:
        event = self._marketing_event(app_id, account_id, event_id)
        event.apply(body, now_utc())
        return event.to_json()

    def get_marketing_event(self, event_id: str, account_id: str | None, *, app_id: str) -> JSON:
        return self._marketing_event(app_id, account_id, event_id).to_json()

    def complete_marketing_event(
        self, event_id: str, account_id: str | None, body: CompleteBody, *, app_id: str
    ) -> JSON:
        event = self._marketing_event(app_id, account_id, event_id)
        moment = now_utc()
        event.fields.update(
            startDateTime=body.startDateTime, endDateTime=body.endDateTime, eventCompleted=True
        )
        event.updated_at = moment
        event.completed_at = moment
        return event.to_json()

    def record_attendance(
        self,
        event_id: str,
        state: str,
        account_id: str | None,
        inputs: Sequence[AttendanceInput],
        *,
        app_id: str,
    ) -> BatchOutcome:
        if state not in SUBSCRIBER_STATES:
            raise validation_error(f"subscriberState must be one of {', '.join(SUBSCRIBER_STATES)}.")
        return self._record(self._marketing_event(app_id, account_id, event_id), state, inputs)

    # ---- objectId routes (any app of the portal) ----------------------------------------------------

    def get_marketing_event_by_object_id(self, object_id: str) -> JSON:
        return _with_app(self._by_object_id(object_id))

    def patch_marketing_event_by_object_id(self, object_id: str, body: MarketingEventBody) -> JSON:
        event = self._by_object_id(object_id)
        if body.customProperties is None:
            raise validation_error("Missing required fields: customProperties.", fields=["customProperties"])
        body.eventCompleted = None  # not a field of the objectId update
        event.apply(body, now_utc())
        return _with_app(event)

    def record_attendance_by_object_id(
        self, object_id: str, state: str, inputs: Sequence[AttendanceInput]
    ) -> BatchOutcome:
        if state not in SUBSCRIBER_STATES:
            raise validation_error(f"subscriberState must be one of {', '.join(SUBSCRIBER_STATES)}.")
        return self._record(self._by_object_id(object_id), state, inputs)

    def marketing_event_identifiers(self, event_id: str, *, lag_s: float = 0.0) -> JSON:
        """Every app's events with this externalEventId, as the search index saw them `lag_s` ago."""
        as_of = self.clock() - lag_s
        found = [
            {
                "objectId": e.object_id,
                "externalEventId": e.external_event_id,
                "externalAccountId": e.external_account_id,
                "marketingEventName": e.fields.get("eventName", ""),
                "appInfo": {"id": e.app_id, "name": APP_NAMES_PREFIX + e.app_id},
            }
            for e in self.marketing_events.values()
            if e.external_event_id == event_id and e.created_clock <= as_of
        ]
        return {"results": found, "total": len(found)}

    def delete_marketing_event_by_object_id(self, object_id: str) -> None:
        self._by_object_id(object_id)
        del self.marketing_events[object_id]

    # ---- attendance ---------------------------------------------------------------------------------

    def _record(self, event: MarketingEvent, state: str, inputs: Sequence[AttendanceInput]) -> BatchOutcome:
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
