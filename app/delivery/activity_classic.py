"""The `classic` activity writer: v3 timeline events with the app's templates (CONTRACT §4)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from app.delivery.activity_writer import FAILED_REASON, Activity
from app.delivery.ops import DONE, Result, Verdict, hubspot_failure
from app.integrations.hubspot import HubSpotClient, HubSpotError, TimelineEvent
from app.integrations.hubspot.setup import encode_tokens
from app.util import chunks

NO_TEMPLATES = "timeline event templates are not set up (HUBSPOT_APP_ID missing?)"


def refused(error: str) -> Result:
    """A failure that sending the same again cannot fix; attempts are counted so it ends visibly."""
    return Result(Verdict.RETRY, error=error[:500], retryable=False, reason=FAILED_REASON)


class ClassicWriter:
    def __init__(self, templates: Mapping[str, str], *, batch_size: int) -> None:
        self.templates = templates
        self.batch_size = batch_size

    async def write(self, client: HubSpotClient, activities: Sequence[Activity]) -> dict[str, Result]:
        results: dict[str, Result] = {}
        events: dict[str, TimelineEvent] = {}
        for activity in activities:
            template = activity.kind.template
            template_id = self.templates.get(template)
            if template_id is None:
                results[activity.key] = refused(NO_TEMPLATES)
                continue
            events[activity.key] = TimelineEvent(
                event_template_id=template_id,
                id=activity.key,
                object_id=activity.contact_id,
                tokens=encode_tokens(template, activity.values),
                timestamp=activity.timestamp,
            )
        for part in chunks(sorted(events), self.batch_size):
            try:
                batch = await client.create_timeline_events([events[key] for key in part])
            except HubSpotError as exc:
                results |= {key: hubspot_failure(exc, FAILED_REASON) for key in part}
                continue
            results |= {key: DONE for key in part}
            for problem in batch.errors:
                if problem.category == "CONFLICT" or "already exists" in problem.message:
                    continue  # deterministic ids: an existing event is a success (idempotent)
                named = [key for key in (str(x) for x in problem.context.get("eventId", [])) if key in part]
                # An error naming no event of this part: every event of it goes again (ids are
                # stable, so the ones HubSpot took count as sent next time).
                for key in named or part:
                    results[key] = refused(f"{problem.category}: {problem.message}")
        return results
