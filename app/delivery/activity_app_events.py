"""The `app_events` activity writer: 2026-03 app events (CONTRACT §4.2), for OAuth portals of an app
with approved event types (HUBSPOT_APP_EVENT_TYPES names them per activity).

The properties are the classic templates' tokens, encoded the same way (`encode_tokens`) and sent as
strings. Events are immutable and their ids stable: an id HubSpot already has (409 / "already
exists") is a success, so a replay or a lost answer never duplicates one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from app.delivery.activity_classic import refused
from app.delivery.activity_writer import FAILED_REASON, Activity
from app.delivery.ops import DONE, Result, hubspot_failure
from app.integrations.hubspot import BatchError, HubSpotClient, HubSpotError
from app.integrations.hubspot.setup import encode_tokens
from app.integrations.hubspot.timeline import AppEvent
from app.util import chunks


def _duplicate(category: str | None, message: str) -> bool:
    return category == "CONFLICT" or "already exists" in message.lower()


def _named(problem: BatchError) -> list[str]:
    """The event ids an error entry is about (the 2026-03 spec does not fix the context's key)."""
    named: list[str] = []
    for field in ("id", "eventId", "ids"):
        raw = problem.context.get(field)
        if isinstance(raw, list):
            named.extend(str(item) for item in raw)
        elif raw is not None:
            named.append(str(raw))
    return named


class AppEventsWriter:
    def __init__(self, event_types: Mapping[str, str], *, batch_size: int) -> None:
        self.event_types = event_types
        self.batch_size = batch_size

    async def write(self, client: HubSpotClient, activities: Sequence[Activity]) -> dict[str, Result]:
        results: dict[str, Result] = {}
        events: dict[str, AppEvent] = {}
        for activity in activities:
            name = self.event_types.get(activity.kind.value)
            if not name:
                why = f"HUBSPOT_APP_EVENT_TYPES names no event type for {activity.kind.value!r}"
                results[activity.key] = refused(why)
                continue
            tokens = encode_tokens(activity.kind.template, activity.values)
            events[activity.key] = AppEvent(
                event_type_name=name,
                id=activity.key,
                object_id=activity.contact_id,
                properties={token: str(value) for token, value in tokens.items()},
                timestamp=activity.timestamp,
            )
        for part in chunks(sorted(events), self.batch_size):
            results |= await self._batch(client, [events[key] for key in part])
        return results

    async def _batch(self, client: HubSpotClient, events: list[AppEvent]) -> dict[str, Result]:
        keys = [event.id for event in events]
        try:
            batch = await client.create_app_events(events)
        except HubSpotError as exc:
            if exc.status == 409:
                # The whole batch refused for a reused id: which ones are new is not said, so each
                # goes alone, where a 409 means that one exists.
                return {event.id: await self._one(client, event) for event in events}
            return {key: hubspot_failure(exc, FAILED_REASON) for key in keys}
        results = {key: DONE for key in keys}
        for problem in batch.errors:
            if _duplicate(problem.category, problem.message):
                continue
            named = [key for key in _named(problem) if key in results]
            for key in named or keys:  # naming none: all go again (stable ids make that safe)
                results[key] = refused(f"{problem.category}: {problem.message}")
        return results

    async def _one(self, client: HubSpotClient, event: AppEvent) -> Result:
        try:
            await client.create_app_event(event)
        except HubSpotError as exc:
            if exc.status == 409 or _duplicate(exc.category, exc.message):
                return DONE
            return hubspot_failure(exc, FAILED_REASON)
        return DONE
