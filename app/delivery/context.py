"""What the per-kind handlers share: their one signature, and the lookups several kinds make.

A handler (`Handler`) gets a portal's HubSpot client, the portal, its operations of one kind and the
portal's set-up (`PortalSetup`: its timeline writer and template ids), and answers a `Result` for
each operation it decides; the dispatcher finds it by kind in its table. Every database read here
runs in a worker thread (asyncio.to_thread): a blocking call on the event loop would stall webhooks
and, on SQLite, can deadlock with a request that holds the write lock and needs the loop to finish.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from app.delivery.facts import contact_ids
from app.delivery.finality import attendance_clocks
from app.delivery.ops import (
    DONE,
    ClaimedOp,
    DispatchConfig,
    Result,
    Verdict,
    contacts_pending,
    excluded_emails,
    marketing_events_done,
)
from app.delivery.values import PersonWebinar, load_people
from app.integrations.hubspot import HubSpotClient
from app.integrations.hubspot.setup import PortalSetup
from app.models import Connection, Webinar
from app.sync.finality import AttendanceClock, RegistrationClock, attendance_wait_s, registration_wait_s
from app.sync.inputs import load_settings, webinar_skip_reason
from app.sync.local_model import WebinarKey

# (client, portal id, the portal's operations of one kind, the portal's set-up) -> a result per
# operation decided; one left out waits.
Handler = Callable[[HubSpotClient, int, list[ClaimedOp], PortalSetup], Awaitable[dict[int, Result]]]


@dataclass(frozen=True)
class People:
    """What a per-person webinar operation needs to know about its person (`DeliveryContext.people`)."""

    contact_ids: dict[str, str]
    excluded: set[str]
    webinars: dict[str, list[PersonWebinar]]
    marketing_events_done: set[WebinarKey]
    contacts_pending: set[str]


class Target(NamedTuple):
    """A per-person webinar operation with its person's part in the webinar and their contact id."""

    op: ClaimedOp
    pw: PersonWebinar
    email: str
    contact_id: str


@dataclass(frozen=True)
class DeliveryContext:
    engine: Engine
    config: DispatchConfig
    now: Callable[[], datetime]

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def people(self, portal_id: int, emails: Sequence[str], keys: set[WebinarKey]) -> People:
        """The people behind `emails` (and which of the webinars `keys` have their marketing event)."""
        with self.session() as session:
            accounts = [c.zoom_account_id for c in connections_for_portal(session, portal_id)]
            return People(
                contact_ids(session, portal_id, emails),
                excluded_emails(session, portal_id, emails),
                load_people(session, accounts, emails),
                marketing_events_done(session, portal_id, keys) if keys else set(),
                contacts_pending(session, portal_id, emails),
            )

    def targets(self, ops: list[ClaimedOp], people: People, results: dict[int, Result]) -> Iterator[Target]:
        """The per-person webinar operations that have something to send to a written contact; the
        others get their result in `results`: nothing to send (DONE) or not yet (no contact yet)."""
        for op in ops:
            email = op.email
            pw = _person_webinar(people.webinars, email, op.webinar_key)
            if email is None or pw is None or email in people.excluded:
                results[op.id] = DONE
                continue
            contact_id = people.contact_ids.get(email)
            if contact_id is None:
                results[op.id] = self._no_contact_yet(email, people.contacts_pending)
                continue
            yield Target(op, pw, email, contact_id)

    def _no_contact_yet(self, email: str, contact_pending: set[str]) -> Result:
        if email in contact_pending:
            return Result(Verdict.WAIT, delay_s=self.config.wait_s)  # written in a coming round
        # The contact write failed or was never planned: count attempts so this ends visibly.
        return Result(
            Verdict.RETRY,
            error="the contact was not written to HubSpot",
            retryable=False,
            reason="contact_update_failed",
        )

    def attendance_clocks(self, keys: set[WebinarKey]) -> dict[WebinarKey, AttendanceClock]:
        with self.session() as session:
            return attendance_clocks(session, keys)

    def attendance_wait(
        self, clocks: dict[WebinarKey, AttendanceClock], key: WebinarKey, now: datetime
    ) -> float | None:
        clock = clocks.get(key)
        if clock is None:
            return self.config.wait_s
        return attendance_wait_s(clock, now, self.config.settle_s)

    def registration_wait(self, pw: PersonWebinar, now: datetime) -> float | None:
        return registration_wait_s(
            (RegistrationClock(r.registered_at_exact, r.updated_at) for r in pw.registrations),
            now,
            self.config.settle_s,
        )


def syncing(session: Session, portal_id: int, webinars: Sequence[Webinar]) -> set[WebinarKey]:
    """The webinars the portal's settings sync (the others have nothing (left) to send)."""
    settings = load_settings(session, portal_id)
    return {
        (w.zoom_account_id, w.webinar_id)
        for w in webinars
        if webinar_skip_reason(session, settings, w) is None
    }


def connections_for_portal(session: Session, portal_id: int) -> list[Connection]:
    return list(session.execute(select(Connection).where(col(Connection.portal_id) == portal_id)).scalars())


def _person_webinar(
    people: dict[str, list[PersonWebinar]], email: str | None, key: WebinarKey | None
) -> PersonWebinar | None:
    if email is None or key is None:
        return None
    return next((pw for pw in people.get(email, []) if pw.key == key), None)
