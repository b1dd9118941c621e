"""HubSpot timeline: the app's classic (v3) event templates and the events written with them, and
the 2026-03 app events (`eventTypeName` instead of a template id, `properties` instead of tokens)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic import AwareDatetime, BaseModel, Field

from app.integrations.hubspot.models import (
    BatchResult,
    EventTemplate,
    HubSpotModel,
    TimelineEvent,
    TimelineEventResult,
)
from app.integrations.hubspot.transport import HubSpotTransport
from app.integrations.hubspot.wire import JsonBody, check_batch, iso_utc, segment, token_value


class TimelineApi(HubSpotTransport):
    """Event templates (they belong to the public app) and timeline events on contacts."""

    async def list_event_templates(self, app_id: int | str) -> list[EventTemplate]:
        path = f"/integrators/timeline/v3/{segment(app_id)}/event-templates"
        page = await self._call(_EventTemplatePage, "GET", path)
        return page.results

    async def create_event_template(self, app_id: int | str, template: EventTemplate) -> EventTemplate:
        path = f"/integrators/timeline/v3/{segment(app_id)}/event-templates"
        body = template.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"id"})
        return await self._call(EventTemplate, "POST", path, body=body)

    async def create_timeline_events(
        self, inputs: Sequence[TimelineEvent]
    ) -> BatchResult[TimelineEventResult]:
        check_batch(inputs, "create_timeline_events")
        if not inputs:
            return BatchResult[TimelineEventResult]()
        events: list[JsonBody] = []
        for item in inputs:
            event: JsonBody = {
                "eventTemplateId": item.event_template_id,
                "id": item.id,
                "objectId": item.object_id,
                "tokens": {name: token_value(value) for name, value in item.tokens.items()},
            }
            if item.timestamp is not None:
                event["timestamp"] = iso_utc(item.timestamp)
            events.append(event)
        return await self._call(
            BatchResult[TimelineEventResult],
            "POST",
            "/integrators/timeline/v3/events/batch/create",
            body={"inputs": events},
        )

    async def create_app_events(self, inputs: Sequence[AppEvent]) -> BatchResult[AppEventResult]:
        """Up to 100 app events (`POST /integrators/timeline/2026-03/events/batch`). Per-input errors
        come back in `errors`; an id used before is refused (409: events are immutable), which the
        caller reads as "already written"."""
        check_batch(inputs, "create_app_events")
        if not inputs:
            return BatchResult[AppEventResult]()
        body = {"inputs": [_app_event_json(item) for item in inputs]}
        data = await self._lenient_json("POST", "/integrators/timeline/2026-03/events/batch", body)
        return self._parse(
            BatchResult[AppEventResult],
            data,
            method="POST",
            path="/integrators/timeline/2026-03/events/batch",
        )

    async def create_app_event(self, event: AppEvent) -> None:
        """One app event (`POST /integrators/timeline/2026-03/events`); a reused id raises a 409."""
        await self._lenient_json("POST", "/integrators/timeline/2026-03/events", _app_event_json(event))

    async def _lenient_json(self, method: str, path: str, body: JsonBody) -> Any:
        # The 2026-03 spec does not promise a body on success: an empty answer is an empty result.
        response = await self._request(method, path, body=body)
        if not response.content:
            return {}
        try:
            return json.loads(response.content)
        except ValueError:
            return {}


class AppEvent(HubSpotModel):
    """One 2026-03 app event on a contact (by object id, never by email)."""

    event_type_name: str
    id: str  # deterministic, so a replay cannot create a duplicate
    object_id: str
    properties: dict[str, str] = Field(default_factory=dict)
    timestamp: AwareDatetime | None = None


class AppEventResult(HubSpotModel):
    id: str | None = None
    event_type_name: str | None = None
    object_id: str | None = None


def _app_event_json(item: AppEvent) -> JsonBody:
    event: JsonBody = {
        "eventTypeName": item.event_type_name,
        "id": item.id,
        "objectId": item.object_id,
        "properties": dict(item.properties),
    }
    if item.timestamp is not None:
        event["timestamp"] = iso_utc(item.timestamp)
    return event


class _EventTemplatePage(BaseModel):
    results: list[EventTemplate] = []
