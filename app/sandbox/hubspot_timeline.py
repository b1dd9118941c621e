"""Timeline events on a portal's contacts in the fake HubSpot (the templates belong to the app and
live in :class:`~app.sandbox.hubspot_state.HubSpotSandbox`). One mixin of
:class:`~app.sandbox.hubspot_state.PortalState`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from app.integrations.hubspot.wire import iso_utc, property_value
from app.sandbox.hubspot_bodies import TimelineEventInput
from app.sandbox.hubspot_common import (
    JSON,
    BatchOutcome,
    check_batch_size,
    is_number,
    item_error,
    new_uuid,
    not_found,
    now_utc,
)
from app.sandbox.hubspot_contacts import ContactsMixin
from app.sandbox.hubspot_records import (
    Contact,
    EventTemplate,
    TimelineEvent,
)


class TimelineMixin(ContactsMixin):
    """Timeline events of a portal's contacts."""

    timeline_events: dict[tuple[str, str], TimelineEvent]

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
        timestamp = item.timestamp if item.timestamp is not None else iso_utc(moment)
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


def _token_problem(template: EventTemplate, tokens: Mapping[str, str]) -> str | None:
    for name, value in tokens.items():
        token = template.token(name)
        if token is None:
            return f"Token {name!r} is not defined on event template {template.id}."
        if token["type"] == "number" and value != "" and not is_number(value):
            return f"Token {name!r} must be a number, got {value!r}."
        options = token.get("options") or []
        if token["type"] == "enumeration" and value not in {str(o.get("value")) for o in options}:
            return f"Token {name!r} value {value!r} is not one of its options."
    return None
