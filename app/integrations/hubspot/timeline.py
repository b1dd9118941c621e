"""HubSpot timeline: the app's event templates and the events written with them."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel

from app.integrations.hubspot.models import BatchResult, EventTemplate, TimelineEvent, TimelineEventResult
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


class _EventTemplatePage(BaseModel):
    results: list[EventTemplate] = []
