"""Timeline activities on the contact (E2 attendance, E3 registration), with deterministic ids,
written through the portal's timeline writer (`activity_writer`: classic events, app events, notes
or none, chosen at set-up).

A registration activity goes once its time is final, an attendance activity once the webinar's
attendance is final (HubSpot's events are immutable, and notes are written once). A person's
activity waits for their contact to be written; one HubSpot already has (a replay) counts as sent.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from app.delivery.activity_writer import Activity, ActivityKind, writer_for
from app.delivery.context import DeliveryContext
from app.delivery.ops import DONE, ClaimedOp, Result, Verdict, event_id
from app.delivery.values import PersonWebinar
from app.integrations.hubspot import HubSpotClient
from app.integrations.hubspot.setup import PortalSetup
from app.models import TimelineBackend


class TimelineDelivery:
    """The handler of one activity kind's operations (registration or attendance)."""

    def __init__(self, ctx: DeliveryContext, kind: ActivityKind) -> None:
        self.ctx = ctx
        self.kind = kind

    async def run(
        self, client: HubSpotClient, portal_id: int, ops: list[ClaimedOp], setup: PortalSetup
    ) -> dict[int, Result]:
        if setup.timeline_backend is TimelineBackend.OFF:
            return {op.id: DONE for op in ops}  # `off`: no activity is written, the work is done
        kind = self.kind
        now = self.ctx.now()
        results: dict[int, Result] = {}
        if kind is ActivityKind.ATTENDANCE:
            # Immutable at HubSpot: only once the webinar's attendance is final. Decided per webinar
            # before anything is loaded per person, since these wait for minutes after an end.
            ops = await self._hold_until_attendance_final(ops, results, now)
        emails = sorted({op.email for op in ops if op.email})
        people = await asyncio.to_thread(self.ctx.people, portal_id, emails, set())
        activities: dict[int, Activity] = {}
        for op, pw, email, contact_id in self.ctx.targets(ops, people, results):
            if (
                kind is ActivityKind.REGISTRATION
                and (wait := self.ctx.registration_wait(pw, now)) is not None
            ):
                results[op.id] = Result(Verdict.WAIT, delay_s=wait)  # its time may still move earlier
                continue
            activity = person_activity(kind, contact_id, pw, email, now)
            if activity is None:
                results[op.id] = DONE  # e.g. attendance event for someone with no attendance after all
                continue
            activities[op.id] = activity
        if activities:
            writer = writer_for(setup, self.ctx.engine, portal_id, batch_size=self.ctx.config.batch_size)
            unique = {activity.key: activity for activity in activities.values()}
            written = await writer.write(client, list(unique.values()))
            results |= {op_id: written.get(activity.key, DONE) for op_id, activity in activities.items()}
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


def person_activity(
    kind: ActivityKind, contact_id: str, pw: PersonWebinar, email: str, now: datetime
) -> Activity | None:
    """The person's registration or attendance activity in the webinar, or None when there is none."""
    webinar = pw.webinar
    topic = webinar.topic or f"Zoom webinar {webinar.webinar_id}"
    if kind is ActivityKind.REGISTRATION:
        if not pw.registrations:
            return None
        return Activity(
            kind,
            event_id("zoom-reg", webinar.webinar_id, email),
            contact_id,
            pw.registered_at or now,
            {"webinar_id": webinar.webinar_id, "webinar_name": topic},
        )
    attendance = pw.attendance(now)
    if attendance is None or attendance.first_join is None:
        return None
    return Activity(
        kind,
        event_id("zoom-att", webinar.webinar_id, email),
        contact_id,
        attendance.first_join,
        {
            "webinar_id": webinar.webinar_id,
            "webinar_name": topic,
            "webinar_date": webinar.actual_start_at or webinar.scheduled_start_at,
            "join_time": attendance.first_join,
            "leave_time": attendance.last_leave,
            "attendance_duration_seconds": attendance.attended_seconds,
            "attendance_percent": attendance.percent,
        },
    )
