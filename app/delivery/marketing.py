"""The webinar as a HubSpot marketing event (ME1): the event, each contact's states on it, its completion.

The event goes first (states need it), a contact's states once their facts are final and the contact
is written, and the completion last, once every state of the webinar is in (HubSpot computes the
attendance durations at completion).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TypeVar

from sqlalchemy import select
from sqlmodel import Session, col

from app.delivery.context import DeliveryContext, syncing
from app.delivery.marketing_ids import SEARCH_LAG_S, SEARCH_POLL_S, MarketingEventIds, Resolved, Waiting
from app.delivery.ops import DONE, ClaimedOp, Result, Verdict, hubspot_failure
from app.delivery.values import PersonWebinar
from app.integrations.hubspot import (
    AttendanceInput,
    AttendanceResult,
    AttendanceState,
    BatchResult,
    HubSpotClient,
    HubSpotError,
    HubSpotNotFound,
    MarketingEvent,
)
from app.models import OutboxOp, OutboxState, Webinar, ZoomUser
from app.sync.local_model import WebinarKey, load_webinars
from app.sync.op_kind import OpKind
from app.util import chunks

log = logging.getLogger(__name__)

T = TypeVar("T")


class MarketingDelivery:
    """Three handlers: `events` (marketing_event), `states` (marketing_state), `complete`
    (marketing_complete). Each reaches the event by its objectId (`marketing_ids`), so a token of
    another app (CONTRACT.md §4.2) still finds the one event instead of making a second."""

    def __init__(
        self,
        ctx: DeliveryContext,
        *,
        search_lag_s: float = SEARCH_LAG_S,
        search_poll_s: float = SEARCH_POLL_S,
    ) -> None:
        self.ctx = ctx
        self.ids = MarketingEventIds(
            ctx.engine, ctx.now, search_lag_s=search_lag_s, search_poll_s=search_poll_s
        )

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
            event = _marketing_event(webinar, hosts.get(op.webinar_key))
            update = partial(_update, client, event)
            results[op.id] = await self._sent(client, portal_id, event, update, "PATCH /{objectId}")
        return results

    async def complete(
        self, client: HubSpotClient, portal_id: int, ops: list[ClaimedOp], setup: object
    ) -> dict[int, Result]:
        keys = [k for op in ops if (k := op.webinar_key)]
        webinars, sync, (unfinished, hosts) = await asyncio.to_thread(
            self._load,
            portal_id,
            keys,
            lambda s, found: (
                _unfinished_states(s, portal_id, list(found)),
                _host_emails(s, list(found.values())),
            ),
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
            event = _marketing_event(webinar, hosts.get(op.webinar_key))
            finish = partial(_finish, client, event, start, webinar.actual_end_at)
            results[op.id] = await self._sent(client, portal_id, event, finish, "PATCH /{objectId}")
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
        webinars: dict[WebinarKey, Webinar] = {}
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
                webinars[pw.key] = pw.webinar
        hosts = await asyncio.to_thread(self._hosts, list(webinars.values())) if webinars else {}
        events = {key: _marketing_event(w, hosts.get(key)) for key, w in webinars.items()}
        failed_ops: set[int] = set()
        # register before attend/cancel, so HubSpot sees the states in the order they happened
        order = {"register": 0, "attend": 1, "cancel": 1}
        for (key, state), items in sorted(groups.items(), key=lambda g: (order[g[0][1]], g[0])):
            for part in chunks(items, self.ctx.config.batch_size):
                sent: list[BatchResult[AttendanceResult]] = []
                record = partial(_record, client, state, [i for _, i in part], sent)
                outcome = await self._sent(
                    client, portal_id, events[key], record, "POST /{objectId}/attendance/{state}/create"
                )
                if outcome.verdict is not Verdict.DONE or not sent:
                    for op_id, _ in part:
                        results[op_id] = outcome
                        failed_ops.add(op_id)
                    continue
                batch = sent[-1]
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

    async def _sent(
        self,
        client: HubSpotClient,
        portal_id: int,
        event: MarketingEvent,
        call: Callable[[Resolved], Awaitable[None]],
        route: str,
    ) -> Result:
        """`call` on the webinar's event, by its objectId (found or made first). A 404 says the event
        was deleted in HubSpot: its id is forgotten and the event made again, once per call."""
        try:
            found = await self.ids.resolve(client, portal_id, event)
            if isinstance(found, Waiting):
                return _waiting(found)
            try:
                await call(found)
            except HubSpotNotFound:
                key = (event.external_account_id, event.external_event_id)
                await self.ids.forget(portal_id, key, found.object_id, route)
                again = await self.ids.resolve(client, portal_id, event, exclude=found.object_id)
                if isinstance(again, Waiting):
                    return _waiting(again)
                await call(again)
        except HubSpotError as exc:
            return hubspot_failure(exc, "marketing_event_failed")
        return DONE

    def _hosts(self, webinars: list[Webinar]) -> dict[WebinarKey, str]:
        with self.ctx.session() as session:
            return _host_emails(session, webinars)

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


async def _update(client: HubSpotClient, event: MarketingEvent, found: Resolved) -> None:
    if not found.created:  # a new event was just made with these very values
        await client.update_marketing_event(found.object_id, event)


async def _finish(
    client: HubSpotClient, event: MarketingEvent, start: datetime, end: datetime, found: Resolved
) -> None:
    """Complete the event. HubSpot has `complete` by external id only (v3 and 2026-03 list no
    objectId route), and it answers 404 to any app but the one that made the event. So the actual
    times go through the objectId update, which every app may use, and `complete` follows for its
    "completed" flag where it works: its 404 right after the update found the event means the event
    is another app's, not that it is gone."""
    await client.set_marketing_event_times(found.object_id, start, end)
    try:
        await client.complete_marketing_event(event.external_event_id, event.external_account_id, start, end)
    except HubSpotNotFound:
        log.info(
            "marketing event of another app: its times are written, its `complete` is not this app's",
            extra={"portal_id": client.portal_id, "object_id": found.object_id},
        )


async def _record(
    client: HubSpotClient,
    state: AttendanceState,
    inputs: list[AttendanceInput],
    sent: list[BatchResult[AttendanceResult]],
    found: Resolved,
) -> None:
    sent.append(await client.record_attendance_by_object_id(found.object_id, state, inputs))


def _waiting(waiting: Waiting) -> Result:
    return Result(
        Verdict.WAIT,
        error="marketing event create unanswered: waiting for HubSpot's search to show it",
        delay_s=waiting.delay_s,
    )


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
