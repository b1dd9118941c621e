"""The webinar as a HubSpot marketing event (ME1): the event, each contact's states on it, its completion.

The event goes first (states need it), a contact's states once their facts are final and the contact
is written, and the completion last, once every state of the webinar is in (HubSpot computes the
attendance durations at completion).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from sqlalchemy import select
from sqlmodel import Session, col

from app.delivery.context import DeliveryContext, syncing
from app.delivery.ops import DONE, ClaimedOp, Result, Verdict, hubspot_failure
from app.delivery.values import PersonWebinar
from app.integrations.hubspot import (
    AttendanceInput,
    AttendanceState,
    HubSpotClient,
    HubSpotError,
    MarketingEvent,
)
from app.models import OutboxOp, OutboxState, Webinar, ZoomUser
from app.sync.local_model import WebinarKey, load_webinars
from app.sync.op_kind import OpKind
from app.util import chunks

T = TypeVar("T")


class MarketingDelivery:
    """Three handlers: `events` (marketing_event), `states` (marketing_state), `complete`
    (marketing_complete)."""

    def __init__(self, ctx: DeliveryContext) -> None:
        self.ctx = ctx

    async def events(
        self, client: HubSpotClient, portal_id: int, ops: list[ClaimedOp], setup: object
    ) -> dict[int, Result]:
        keys = [k for op in ops if (k := op.webinar_key)]
        webinars, sync, hosts = await asyncio.to_thread(
            self._load, portal_id, keys, lambda s, found: _host_emails(s, list(found.values()))
        )
        results: dict[int, Result] = {}
        for op in ops:
            webinar = webinars.get(op.webinar_key) if op.webinar_key else None
            if webinar is None or op.webinar_key not in sync:
                results[op.id] = DONE  # nothing (left) to sync for it
                continue
            results[op.id] = await _sent(
                client.upsert_marketing_event(_marketing_event(webinar, hosts.get(op.webinar_key)))
            )
        return results

    async def complete(
        self, client: HubSpotClient, portal_id: int, ops: list[ClaimedOp], setup: object
    ) -> dict[int, Result]:
        keys = [k for op in ops if (k := op.webinar_key)]
        webinars, sync, unfinished = await asyncio.to_thread(
            self._load, portal_id, keys, lambda s, found: _unfinished_states(s, portal_id, list(found))
        )
        results: dict[int, Result] = {}
        for op in ops:
            webinar = webinars.get(op.webinar_key) if op.webinar_key else None
            if webinar is None or op.webinar_key not in sync or webinar.actual_end_at is None:
                results[op.id] = DONE
                continue
            if op.webinar_key in unfinished:
                # HubSpot computes attendance durations at completion: every state must be in first.
                results[op.id] = Result(Verdict.WAIT, delay_s=self.ctx.config.wait_s)
                continue
            start = webinar.actual_start_at or webinar.scheduled_start_at or webinar.actual_end_at
            results[op.id] = await _sent(
                client.complete_marketing_event(
                    webinar.webinar_id, webinar.zoom_account_id, start, webinar.actual_end_at
                )
            )
        return results

    async def states(
        self, client: HubSpotClient, portal_id: int, ops: list[ClaimedOp], setup: object
    ) -> dict[int, Result]:
        emails = sorted({op.email for op in ops if op.email})
        keys = {k for op in ops if (k := op.webinar_key)}
        people = await asyncio.to_thread(self.ctx.people, portal_id, emails, keys)
        clocks = await asyncio.to_thread(self.ctx.attendance_clocks, keys) if keys else {}
        now = self.ctx.now()
        results: dict[int, Result] = {}
        groups: dict[tuple[WebinarKey, AttendanceState], list[tuple[int, AttendanceInput]]] = defaultdict(
            list
        )
        for op, pw, _, contact_id in self.ctx.targets(ops, people, results):
            if pw.key not in people.marketing_events_done:
                results[op.id] = Result(Verdict.WAIT, delay_s=self.ctx.config.wait_s)
                continue
            # States are sent once their facts are final, so that no arrival order can leave an
            # earlier value in place: the registration time (HubSpot keeps the state with the latest
            # interaction time) and, after the end, the attendance (joinedAt/leftAt).
            wait = self.ctx.registration_wait(pw, now) if pw.registrations else None
            ended = pw.webinar.actual_end_at is not None
            if wait is None and ended and pw.attended:
                wait = self.ctx.attendance_wait(clocks, pw.key, now)
            if wait is not None:
                results[op.id] = Result(Verdict.WAIT, delay_s=wait)
                continue
            # While the webinar runs only the registration goes: attendance is sent once, after the
            # end (the end plans every person again).
            for state, item in _attendance_inputs(pw, int(contact_id), with_attendance=ended):
                groups[(pw.key, state)].append((op.id, item))
        failed_ops: set[int] = set()
        # register before attend/cancel, so HubSpot sees the states in the order they happened
        order = {"register": 0, "attend": 1, "cancel": 1}
        for ((account_id, webinar_id), state), items in sorted(
            groups.items(), key=lambda g: (order[g[0][1]], g[0])
        ):
            for part in chunks(items, self.ctx.config.batch_size):
                try:
                    batch = await client.record_attendance(
                        webinar_id, account_id, state, [i for _, i in part]
                    )
                except HubSpotError as exc:
                    for op_id, _ in part:
                        results[op_id] = hubspot_failure(exc, "marketing_event_failed")
                        failed_ops.add(op_id)
                    continue
                failed_vids = {str(x) for error in batch.errors for x in error.context.get("vids", error.ids)}
                for op_id, item in part:
                    if str(item.vid) in failed_vids:
                        results[op_id] = Result(
                            Verdict.RETRY,
                            error="HubSpot refused the attendance state",
                            reason="marketing_event_failed",
                        )
                        failed_ops.add(op_id)
                    elif op_id not in failed_ops:  # one person's states: all must go through
                        results[op_id] = DONE
        # Nothing to send yet (an attendee without a registration while the webinar runs): done
        # for this version; the end plans the person again.
        return results | {op.id: DONE for op in ops if op.id not in results}

    def _load(
        self,
        portal_id: int,
        keys: Sequence[WebinarKey],
        also: Callable[[Session, dict[WebinarKey, Webinar]], T],
    ) -> tuple[dict[WebinarKey, Webinar], set[WebinarKey], T]:
        """The webinars, those the portal syncs, and what `also` reads about them (one session)."""
        with self.ctx.session() as session:
            webinars = load_webinars(session, keys)
            sync = syncing(session, portal_id, list(webinars.values()))
            return webinars, sync, also(session, webinars)


async def _sent(call: Awaitable[object]) -> Result:
    """The result of one call about the marketing event itself."""
    try:
        await call
    except HubSpotError as exc:
        return hubspot_failure(exc, "marketing_event_failed")
    return DONE


def _attendance_inputs(
    pw: PersonWebinar, vid: int, *, with_attendance: bool
) -> list[tuple[AttendanceState, AttendanceInput]]:
    """The person's history on the marketing event: registered, then attended or cancelled.

    HubSpot counts registrants from `register` states, so an attendee who registered gets both.
    Every state is set, never added: sending them again changes nothing. Attendance only once the
    webinar has ended (`with_attendance`): open sessions then close at its end, never at "now".
    """
    states: list[tuple[AttendanceState, AttendanceInput]] = []
    end = pw.webinar.actual_end_at
    if pw.registrations:
        when = pw.registered_at or pw.webinar.scheduled_start_at or pw.webinar.created_at
        states.append(("register", AttendanceInput(vid=vid, interaction_at=when)))
    attendance = pw.attendance(end) if pw.attended and with_attendance and end is not None else None
    if attendance is not None and attendance.first_join is not None:
        states.append(
            (
                "attend",
                AttendanceInput(
                    vid=vid,
                    interaction_at=attendance.first_join,
                    joined_at=attendance.first_join,
                    left_at=attendance.last_leave,
                ),
            )
        )
    elif pw.cancelled:
        # When Zoom says the registration was cancelled (its event time), not when we processed it.
        updated = max(
            (_event_time(r.status_event_ts) or r.updated_at for r in pw.registrations),
            default=pw.webinar.created_at,
        )
        states.append(("cancel", AttendanceInput(vid=vid, interaction_at=updated)))
    return states


def _event_time(event_ts: int) -> datetime | None:
    return datetime.fromtimestamp(event_ts / 1000, UTC) if event_ts > 0 else None


def _marketing_event(webinar: Webinar, host_email: str | None) -> MarketingEvent:
    start = webinar.actual_start_at or webinar.scheduled_start_at
    end = webinar.actual_end_at
    if end is None and start is not None and webinar.duration_minutes:
        end = start + timedelta(minutes=webinar.duration_minutes)
    return MarketingEvent(
        external_account_id=webinar.zoom_account_id,
        external_event_id=webinar.webinar_id,
        event_name=webinar.topic or f"Zoom webinar {webinar.webinar_id}",
        event_organizer=host_email or "Zoom",
        start_at=start,
        end_at=end,
        event_url=webinar.registration_url or webinar.join_url,
    )


def _host_emails(session: Session, webinars: Sequence[Webinar]) -> dict[WebinarKey, str]:
    out: dict[WebinarKey, str] = {}
    for w in webinars:
        if w.host_id:
            user = session.get(ZoomUser, (w.zoom_account_id, w.host_id))
            if user is not None and user.email:
                out[(w.zoom_account_id, w.webinar_id)] = user.email
    return out


def _unfinished_states(session: Session, portal_id: int, keys: list[WebinarKey]) -> set[WebinarKey]:
    out: set[WebinarKey] = set()
    for account_id, webinar_id in keys:
        pending = session.execute(
            select(col(OutboxOp.id))
            .where(
                col(OutboxOp.portal_id) == portal_id,
                col(OutboxOp.kind) == OpKind.MARKETING_STATE.value,
                col(OutboxOp.zoom_account_id) == account_id,
                col(OutboxOp.webinar_id) == webinar_id,
                col(OutboxOp.state) == OutboxState.PENDING,
            )
            .limit(1)
        ).first()
        if pending is not None:
            out.add((account_id, webinar_id))
    return out
