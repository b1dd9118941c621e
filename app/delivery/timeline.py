"""Timeline events on the contact (E2 attendance, E3 registration), with deterministic event ids.

A registration event goes once its time is final, an attendance event once the webinar's attendance is
final (HubSpot's events are immutable). A person's event waits for their contact to be written; one
HubSpot already has (a replay) counts as sent.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from app.delivery.context import DeliveryContext
from app.delivery.ops import DONE, ClaimedOp, Result, Verdict, event_id, hubspot_failure
from app.delivery.values import PersonWebinar
from app.integrations.hubspot import HubSpotClient, HubSpotError, TimelineEvent
from app.integrations.hubspot.setup import TEMPLATE_ATTENDANCE, TEMPLATE_REGISTRATION, encode_tokens
from app.util import chunks


class TimelineDelivery:
    """The handler of one template's events (`name`: TEMPLATE_REGISTRATION or TEMPLATE_ATTENDANCE)."""

    def __init__(self, ctx: DeliveryContext, name: str) -> None:
        self.ctx = ctx
        self.name = name

    async def run(
        self, client: HubSpotClient, portal_id: int, ops: list[ClaimedOp], templates: dict[str, str]
    ) -> dict[int, Result]:
        name = self.name
        template_id = templates.get(name)
        if template_id is None:
            error = "timeline event templates are not set up (HUBSPOT_APP_ID missing?)"
            return {
                op.id: Result(Verdict.RETRY, error=error, retryable=False, reason="timeline_event_failed")
                for op in ops
            }
        now = self.ctx.now()
        results: dict[int, Result] = {}
        if name == TEMPLATE_ATTENDANCE:
            # Immutable at HubSpot: only once the webinar's attendance is final. Decided per webinar
            # before anything is loaded per person, since these wait for minutes after an end.
            ops = await self._hold_until_attendance_final(ops, results, now)
        emails = sorted({op.email for op in ops if op.email})
        people = await asyncio.to_thread(self.ctx.people, portal_id, emails, set())
        events: dict[int, TimelineEvent] = {}
        for op, pw, email, contact_id in self.ctx.targets(ops, people, results):
            if name == TEMPLATE_REGISTRATION and (wait := self.ctx.registration_wait(pw, now)) is not None:
                results[op.id] = Result(Verdict.WAIT, delay_s=wait)  # its time may still move earlier
                continue
            event = _timeline_event(name, template_id, contact_id, pw, email, now)
            if event is None:
                results[op.id] = DONE  # e.g. attendance event for someone with no attendance after all
                continue
            events[op.id] = event
        by_event_id = {e.id: op_id for op_id, e in events.items()}
        for part in chunks(sorted(events), self.ctx.config.batch_size):
            try:
                batch = await client.create_timeline_events([events[i] for i in part])
            except HubSpotError as exc:
                results |= {i: hubspot_failure(exc, "timeline_event_failed") for i in part}
                continue
            for i in part:
                results[i] = DONE
            for problem in batch.errors:
                ids_in_error = [str(x) for x in problem.context.get("eventId", [])]
                duplicate = problem.category == "CONFLICT" or "already exists" in problem.message
                for event_key in ids_in_error:
                    op_id = by_event_id.get(event_key)
                    if op_id is not None and not duplicate:  # an existing event is a success (idempotent)
                        results[op_id] = Result(
                            Verdict.RETRY,
                            error=f"{problem.category}: {problem.message}"[:500],
                            retryable=False,
                            reason="timeline_event_failed",
                        )
        return results

    async def _hold_until_attendance_final(
        self, ops: list[ClaimedOp], results: dict[int, Result], now: datetime
    ) -> list[ClaimedOp]:
        """The operations whose webinar's attendance is final; the others wait (results filled in)."""
        keys = {k for op in ops if (k := op.webinar_key)}
        clocks = await asyncio.to_thread(self.ctx.attendance_clocks, keys) if keys else {}
        ready: list[ClaimedOp] = []
        for op in ops:
            key = op.webinar_key
            wait = self.ctx.attendance_wait(clocks, key, now) if key is not None else None
            if wait is None:
                ready.append(op)
            else:
                results[op.id] = Result(Verdict.WAIT, delay_s=wait)
        return ready


def _timeline_event(
    name: str, template_id: str, contact_id: str, pw: PersonWebinar, email: str, now: datetime
) -> TimelineEvent | None:
    webinar = pw.webinar
    topic = webinar.topic or f"Zoom webinar {webinar.webinar_id}"
    if name == TEMPLATE_REGISTRATION:
        if not pw.registrations:
            return None
        return TimelineEvent(
            event_template_id=template_id,
            id=event_id("zoom-reg", webinar.webinar_id, email),
            object_id=contact_id,
            tokens=encode_tokens(name, {"webinar_id": webinar.webinar_id, "webinar_name": topic}),
            timestamp=pw.registered_at or now,
        )
    attendance = pw.attendance(now)
    if attendance is None or attendance.first_join is None:
        return None
    return TimelineEvent(
        event_template_id=template_id,
        id=event_id("zoom-att", webinar.webinar_id, email),
        object_id=contact_id,
        tokens=encode_tokens(
            name,
            {
                "webinar_id": webinar.webinar_id,
                "webinar_name": topic,
                "webinar_date": webinar.actual_start_at or webinar.scheduled_start_at,
                "join_time": attendance.first_join,
                "leave_time": attendance.last_leave,
                "attendance_duration_seconds": attendance.attended_seconds,
                "attendance_percent": attendance.percent,
            },
        ),
        timestamp=attendance.first_join,
    )
