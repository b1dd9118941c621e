"""A webinar's marketing event by the objectId HubSpot gave it: found once, kept, never made twice.

HubSpot's external-id routes see only the events of the app whose token calls them, and the upsert
by external id makes a SECOND event for any other app. A portal's token can change app (a re-created
private app, an OAuth app replacing a static token), so the event is kept by its `objectId`
(`hubspot_marketing_event`) and reached through the objectId routes, which work for every app.

Where the objectId comes from, in order (`MarketingEventIds.resolve`):
1. the stored row;
2. `GET /{externalEventId}/identifiers`, which lists every app's events: one of this Zoom account,
   the current app's first, else the oldest, is adopted and stored (an existing deployment, whose
   events were made before objectIds were kept, finds them so);
3. after a create whose answer was lost (the row holds only the attempt: `object_id` ""), the
   external-id GET, which sees the current app's own event at once. The identifiers search shows
   a new event only "a few minutes" later, so when neither finds it and the lost create may have
   been made by another app (a token change in between, or an app unknown), nothing is created
   until the attempt is `search_lag_s` old: the operation waits and looks again;
4. otherwise the event is created (the upsert by external id: sent again by the same app it updates
   the same event), with the attempt committed before the request and the objectId stored as soon
   as the answer names it.

A 404 from an objectId route means the event was deleted in HubSpot: `forget` clears the row (with
an audit entry and a log line), and the caller resolves once more, the deleted id excluded.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from app.db import unit_of_work
from app.delivery.recordings import after_lost_create
from app.ingest.replan import enqueue_replan
from app.integrations.hubspot import HubSpotClient, HubSpotError, HubSpotNotFound, MarketingEvent
from app.integrations.hubspot.client import may_have_reached_hubspot
from app.integrations.hubspot.models import MarketingEventIdentifier
from app.models import AuditStatus, HubSpotMarketingEvent, HubSpotPortal, Webinar
from app.sync.audit import AuditCode, add_audit_event
from app.sync.inputs import connections_for
from app.sync.local_model import WebinarKey

log = logging.getLogger(__name__)

# HubSpot: "Marketing Events become searchable by externalEventId a few minutes after creation". After
# a lost create answer that another app may have made, an empty search is trusted only once the
# attempt is this old: waiting costs only on that rare path, while a second event would stay.
SEARCH_LAG_S = 600.0
SEARCH_POLL_S = 5.0  # how often the event is looked up again meanwhile
PENDING = ""  # `object_id` of a row that records only an attempt to create (the answer was lost)


@dataclass(frozen=True)
class Resolved:
    object_id: str
    created: bool  # made just now with the current values (no update needed)


@dataclass(frozen=True)
class Waiting:
    """A lost create may have made the event; HubSpot's search may not show it yet."""

    delay_s: float


@dataclass(frozen=True)
class _Stored:
    object_id: str  # PENDING: an attempt
    app_id: str | None
    updated_at: datetime


def pick_event(
    matches: Sequence[MarketingEventIdentifier],
    account_id: str,
    current_app_id: str | None,
    *,
    exclude: str | None = None,
) -> MarketingEventIdentifier | None:
    """The event to adopt among an identifiers answer: one of this Zoom account (an entry naming no
    account is taken as a match: the field is optional), not `exclude` (an id HubSpot just called
    deleted); the current app's first (its external-id routes, e.g. `complete`, reach it too), else
    the oldest (smallest id), so that every process adopts the same one."""
    candidates = [
        m
        for m in matches
        if m.object_id
        and m.object_id != exclude
        and (m.external_account_id is None or m.external_account_id == account_id)
    ]
    if not candidates:
        return None

    def order(m: MarketingEventIdentifier) -> tuple[bool, int, str]:
        mine = current_app_id is not None and m.app_id == current_app_id
        return (not mine, len(m.object_id), m.object_id)

    return min(candidates, key=order)


def same_app(attempt_app: str | None, current_app: str | None) -> bool:
    """Whether the lost create surely came from the current app: its upsert then updates that event
    instead of making another, so it may be sent again without waiting for the search."""
    return attempt_app is not None and attempt_app == current_app


class MarketingEventIds:
    """The objectId store and its lookups (see the module's docstring)."""

    def __init__(
        self,
        engine: Engine,
        now: Callable[[], datetime],
        *,
        search_lag_s: float = SEARCH_LAG_S,
        search_poll_s: float = SEARCH_POLL_S,
    ) -> None:
        self.engine = engine
        self.now = now
        self.search_lag_s = search_lag_s
        self.search_poll_s = search_poll_s

    async def resolve(
        self,
        client: HubSpotClient,
        portal_id: int,
        event: MarketingEvent,
        *,
        exclude: str | None = None,
    ) -> Resolved | Waiting:
        """The event's objectId: stored, found, or created now (see the module's docstring).
        HubSpot's errors propagate (the caller turns them into a retry)."""
        key: WebinarKey = (event.external_account_id, event.external_event_id)
        stored, current_app = await asyncio.to_thread(self._load, portal_id, key)
        if stored is not None and stored.object_id not in (PENDING, exclude):
            return Resolved(stored.object_id, created=False)
        found = pick_event(
            await client.find_marketing_events(event.external_event_id),
            event.external_account_id,
            current_app,
            exclude=exclude,
        )
        if found is not None:
            await asyncio.to_thread(self._store, portal_id, key, found.object_id, found.app_id)
            log.info(
                "marketing event found by its external id",
                extra={"portal_id": portal_id, "webinar_id": key[1], "object_id": found.object_id},
            )
            return Resolved(found.object_id, created=False)
        if stored is not None and stored.object_id == PENDING:
            waiting = await self._after_lost_create(client, portal_id, key, stored, current_app, exclude)
            if waiting is not None:
                return waiting
        return await self._create(client, portal_id, key, event, current_app)

    async def _after_lost_create(
        self,
        client: HubSpotClient,
        portal_id: int,
        key: WebinarKey,
        stored: _Stored,
        current_app: str | None,
        exclude: str | None,
    ) -> Resolved | Waiting | None:
        """After a create whose answer never came: the event if the current app made it, a wait while
        another app's may still be hidden by the search lag, else None (create it)."""
        try:
            own = await client.get_marketing_event_by_external_id(key[1], key[0])
        except HubSpotNotFound:
            own = None
        object_id = own.hubspot_id if own is not None else None
        if object_id is not None and object_id != exclude:
            await asyncio.to_thread(self._store, portal_id, key, object_id, current_app)
            log.info(
                "marketing event found after a lost create answer",
                extra={"portal_id": portal_id, "webinar_id": key[1], "object_id": object_id},
            )
            return Resolved(object_id, created=False)
        if same_app(stored.app_id, current_app):
            return None
        step = after_lost_create(
            [], stored.updated_at, self.now(), lag_s=self.search_lag_s, poll_s=self.search_poll_s
        )
        return Waiting(step.wait_s) if step.wait_s > 0 else None

    async def _create(
        self,
        client: HubSpotClient,
        portal_id: int,
        key: WebinarKey,
        event: MarketingEvent,
        current_app: str | None,
    ) -> Resolved:
        await asyncio.to_thread(self._store, portal_id, key, PENDING, current_app)
        try:
            # Sent once: a lost answer goes through the lookups above, never a blind second upsert
            # (which, should the token have changed app meanwhile, would make a second event).
            created = await client.upsert_marketing_event(event, at_most_once=True)
        except HubSpotError as exc:
            if not may_have_reached_hubspot(exc):
                await asyncio.to_thread(self._forget_attempt, portal_id, key)  # refused: nothing made
            raise
        object_id = created.hubspot_id
        if object_id is None:
            # Made, but the answer names no id: the attempt stays, and the next try looks it up.
            raise HubSpotError(
                None,
                "UNEXPECTED_RESPONSE",
                "the marketing event upsert answered no objectId",
                method="PUT",
                path=f"/marketing/v3/marketing-events/events/{key[1]}",
            )
        # Stored at once: from here on every call goes by objectId, whichever app the token is of.
        await asyncio.to_thread(self._store, portal_id, key, object_id, current_app)
        return Resolved(object_id, created=True)

    # ---- after a 404 ------------------------------------------------------------------------------

    async def forget(self, portal_id: int, key: WebinarKey, object_id: str, route: str) -> None:
        """HubSpot answered 404 for the stored objectId (the event was deleted there): forget it, say so
        in the log and the webinar's audit log, and plan the webinar again so the event made next
        gets every contact's states."""
        log.warning(
            "marketing event gone from HubSpot (deleted?): it is made again",
            extra={"portal_id": portal_id, "webinar_id": key[1], "object_id": object_id, "route": route},
        )
        await asyncio.to_thread(self._forget, portal_id, key, object_id, route)

    # ---- the store --------------------------------------------------------------------------------

    def _load(self, portal_id: int, key: WebinarKey) -> tuple[_Stored | None, str | None]:
        """The stored row, and the app id of the portal's current token (when the install told it)."""
        with unit_of_work(self.engine) as session:
            row = session.get(HubSpotMarketingEvent, (portal_id, key[0], key[1]))
            portal = session.get(HubSpotPortal, portal_id)
            stored = _Stored(row.object_id, row.app_id, row.updated_at) if row is not None else None
            return stored, portal.app_id if portal is not None else None

    def _store(self, portal_id: int, key: WebinarKey, object_id: str, app_id: str | None) -> None:
        """Insert or overwrite the row; a concurrent insert of the same webinar (two workers) is
        overwritten on a second try."""
        for attempt in range(2):
            try:
                with unit_of_work(self.engine) as session:
                    row = session.get(HubSpotMarketingEvent, (portal_id, key[0], key[1]))
                    if row is None:
                        row = HubSpotMarketingEvent(
                            portal_id=portal_id,
                            zoom_account_id=key[0],
                            webinar_id=key[1],
                            external_event_id=key[1],
                            object_id=object_id,
                        )
                        session.add(row)
                    row.object_id, row.app_id, row.updated_at = object_id, app_id, self.now()
                return
            except IntegrityError:
                if attempt:
                    raise

    def _forget_attempt(self, portal_id: int, key: WebinarKey) -> None:
        with unit_of_work(self.engine) as session:
            row = session.get(HubSpotMarketingEvent, (portal_id, key[0], key[1]))
            if row is not None and row.object_id == PENDING:
                session.delete(row)

    def _forget(self, portal_id: int, key: WebinarKey, object_id: str, route: str) -> None:
        with unit_of_work(self.engine) as session:
            row = session.get(HubSpotMarketingEvent, (portal_id, key[0], key[1]))
            if row is None or row.object_id != object_id:
                return  # another worker got there first
            session.delete(row)
            for conn in connections_for(session, key[0]):
                if conn.portal_id != portal_id:
                    continue
                add_audit_event(
                    session,
                    conn,
                    key[1],
                    code=AuditCode.WEBINAR_DATA_NOT_SYNCED,
                    status=AuditStatus.WARNING,
                    message=(
                        f"the webinar's marketing event {object_id} is gone from HubSpot (deleted there?): "
                        "a new one is made and every contact's states are sent again"
                    ),
                    details={"reason": "marketing_event_deleted", "object_id": object_id, "route": route},
                )
            if session.get(Webinar, key) is not None:
                enqueue_replan(session, key[0], key[1])
