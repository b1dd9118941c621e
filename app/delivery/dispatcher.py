"""Delivers planned operations to HubSpot, as fast as the portal's rate limit allows.

Each round claims due operations (a lease, so several workers share them), reads the current
values from the local model, sends them in batches of at most 100 per portal and kind, and
records each operation's result. An operation is done for the version it was sent with: if it was
re-planned meanwhile it stays pending and goes again with the newer values.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, case, func, select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from app.db import unit_of_work, utcnow
from app.delivery.facts import FactsResolver, NamesAtHubSpot, NamesWritten, contact_ids, names_at_hubspot
from app.delivery.finality import attendance_clocks
from app.delivery.ops import (
    DONE,
    ClaimedOp,
    Result,
    Verdict,
    contacts_pending,
    event_id,
    excluded_emails,
    hubspot_failure,
)
from app.delivery.recordings import RecordingDelivery, TranscriptFetcher
from app.delivery.values import PersonWebinar, contact_properties, load_people
from app.ingest.replan import enqueue_replan
from app.integrations.hubspot import (
    AttendanceInput,
    AttendanceState,
    ContactUpsert,
    HubSpotClient,
    HubSpotError,
    MarketingEvent,
    TimelineEvent,
)
from app.integrations.hubspot.setup import TEMPLATE_ATTENDANCE, TEMPLATE_REGISTRATION, encode_tokens
from app.models import (
    AuditStatus,
    Connection,
    InboxEvent,
    InboxState,
    OutboxOp,
    OutboxState,
    Webinar,
    ZoomUser,
)
from app.sync.audit import AuditCode, add_audit_event, upsert_audit
from app.sync.finality import AttendanceClock, RegistrationClock, attendance_wait_s, registration_wait_s
from app.sync.inputs import connections_for, load_settings, portal_rules, webinar_skip_reason
from app.sync.local_model import WebinarKey, load_webinars
from app.sync.op_kind import OpKind
from app.sync.rules import HubSpotFacts, PortalRules, email_decision
from app.util import chunks

log = logging.getLogger(__name__)

# Contacts first (timeline events and marketing states need their ids), completion last.
KIND_ORDER = (
    OpKind.MARKETING_EVENT,
    OpKind.CONTACT_REFRESH,
    OpKind.REGISTRATION_EVENT,
    OpKind.ATTENDANCE_EVENT,
    OpKind.MARKETING_STATE,
    OpKind.MARKETING_COMPLETE,
    OpKind.RECORDING_CALL,
)
# A person's values, which every Zoom event of that person may change again, and what waits for their
# contact anyway (see DispatchConfig.hold_max_s).
HELD_KINDS = (
    OpKind.CONTACT_REFRESH.value,
    OpKind.MARKETING_STATE.value,
    OpKind.REGISTRATION_EVENT.value,
    OpKind.ATTENDANCE_EVENT.value,
)


@dataclass(frozen=True)
class DispatchConfig:
    batch_size: int = 100  # HubSpot's batch limit
    claim_limit: int = 2000
    # Claimed operations are leased; a heartbeat renews the lease every third of it while the round
    # runs, so a long round keeps them and a killed worker's operations are free again within this.
    lease_s: float = 15.0
    max_attempts: int = 5  # for errors HubSpot will answer the same way again (4xx)
    give_up_after_s: float = 24 * 3600.0  # for outages (429, 5xx, transport): keep trying this long
    retry_base_s: float = 2.0
    retry_max_s: float = 60.0  # after an outage, everything is sent again within a minute
    wait_s: float = 1.0
    setup_wait_s: float = 5.0
    # Quiet period before attendance (and a registration time Zoom did not state) counts as final;
    # `build_dispatcher` sets it from ATTENDANCE_SETTLE_S. See app.sync.finality.
    settle_s: float = 0.0
    # A person's operations (HELD_KINDS) are held back while Zoom's events still wait in the inbox
    # (a burst: each would be sent again after every change), but never longer than this.
    hold_max_s: float = 30.0


@dataclass
class DispatchOutcome:
    claimed: int = 0
    done: int = 0
    waiting: int = 0
    retried: int = 0
    failed: int = 0


ClientFor = Callable[[int], HubSpotClient | None]
SetupFor = Callable[[HubSpotClient, int], Awaitable[dict[str, str]]]


class Dispatcher:
    def __init__(
        self,
        engine: Engine,
        *,
        client_for: ClientFor,
        setup_for: SetupFor,
        facts: FactsResolver,
        config: DispatchConfig | None = None,
        now: Callable[[], datetime] = utcnow,
        transcripts: TranscriptFetcher | None = None,
    ) -> None:
        self.engine = engine
        self.recordings = RecordingDelivery(engine, transcripts=transcripts)
        self.client_for = client_for
        self.setup_for = setup_for
        self.facts = facts
        self.config = config or DispatchConfig()
        self.now = now
        self._skip_locked = engine.dialect.name == "postgresql"
        self._leased: list[ClaimedOp] = []  # the operations of the round in progress

    # ---- the round ------------------------------------------------------------------------------

    async def run_once(self) -> DispatchOutcome:
        ops = await asyncio.to_thread(self._claim)
        outcome = DispatchOutcome(claimed=len(ops))
        if not ops:
            return outcome
        by_portal: dict[int, list[ClaimedOp]] = defaultdict(list)
        for op in ops:
            by_portal[op.portal_id].append(op)
        results: dict[int, Result] = {}
        done_sending = asyncio.Event()
        heartbeat = asyncio.create_task(self._keep_leases(ops, done_sending), name="outbox-lease-heartbeat")
        try:
            for portal_id, portal_ops in sorted(by_portal.items()):
                results.update(await self._portal_round(portal_id, portal_ops))
        except Exception as exc:
            # A bug or a database failure mid-round: record what was learnt, count an attempt for
            # the rest (so a persistent problem ends visibly) and release them instead of leaving
            # them leased until the lease runs out.
            log.exception("dispatch round failed")
            error = f"{type(exc).__name__}: {exc}"[:500]
            for op in ops:
                results.setdefault(op.id, Result(Verdict.RETRY, error=error, retryable=False))
        finally:
            # Stop renewing before finishing: a renewal must never land after the release.
            done_sending.set()
            await heartbeat
        await asyncio.to_thread(self._finish, ops, results, outcome)
        self._leased = []
        return outcome

    def release_claims(self) -> int:
        """End the leases of the round in progress, after it was cancelled (the worker stops): another
        worker takes its operations at once instead of after the lease. Whatever the round sent is
        sent again then, which every HubSpot write here allows (upserts, stable event ids)."""
        ops, self._leased = self._leased, []
        if ops:
            table = OutboxOp.__table__  # type: ignore[attr-defined]
            with unit_of_work(self.engine) as session:
                session.execute(
                    update(table)
                    .where(table.c.id == bindparam("op_id"), table.c.locked_until.is_not(None))
                    .values(locked_until=None),
                    [{"op_id": op.id} for op in in_lock_order(ops)],
                )
        return len(ops)

    async def _keep_leases(self, ops: list[ClaimedOp], done: asyncio.Event) -> None:
        interval = self.config.lease_s / 3
        while True:
            try:
                await asyncio.wait_for(done.wait(), timeout=interval)
                return
            except TimeoutError:
                pass
            try:
                await asyncio.to_thread(self._renew, ops)
            except Exception:  # a missed renewal only shortens the lease; the round goes on
                log.warning("outbox lease renewal failed", exc_info=True)

    def _renew(self, ops: list[ClaimedOp]) -> None:
        lease = self.now() + timedelta(seconds=self.config.lease_s)
        table = OutboxOp.__table__  # type: ignore[attr-defined]
        ordered = in_lock_order(ops)
        with unit_of_work(self.engine) as session:
            session.execute(
                update(table)
                .where(table.c.id == bindparam("op_id"), table.c.locked_until.is_not(None))
                .values(locked_until=lease),
                [{"op_id": op.id} for op in ordered],
            )

    async def _portal_round(self, portal_id: int, ops: list[ClaimedOp]) -> dict[int, Result]:
        client = self.client_for(portal_id)
        if client is None:
            # No credentials for this portal (yet): keep the work, look again later.
            return {op.id: Result(Verdict.WAIT, delay_s=30.0) for op in ops}
        try:
            templates = await self.setup_for(client, portal_id)
        except HubSpotError as exc:
            # Nothing can be sent before the set-up is sure (HubSpot down, or a property that does
            # not fit). Wait without counting attempts, so delivery resumes within seconds of
            # HubSpot returning instead of after a long backoff; the reason stays visible.
            return {
                op.id: Result(Verdict.WAIT, error=str(exc)[:500], delay_s=self.config.setup_wait_s)
                for op in ops
            }
        by_kind: dict[str, list[ClaimedOp]] = defaultdict(list)
        for op in ops:
            by_kind[op.kind].append(op)
        results: dict[int, Result] = {}
        handlers: dict[str, Callable[[HubSpotClient, int, list[ClaimedOp]], Awaitable[dict[int, Result]]]] = {
            OpKind.MARKETING_EVENT: self._marketing_events,
            OpKind.CONTACT_REFRESH: self._contacts,
            OpKind.REGISTRATION_EVENT: lambda c, p, o: self._timeline(
                c, p, o, templates, TEMPLATE_REGISTRATION
            ),
            OpKind.ATTENDANCE_EVENT: lambda c, p, o: self._timeline(c, p, o, templates, TEMPLATE_ATTENDANCE),
            OpKind.MARKETING_STATE: self._marketing_states,
            OpKind.MARKETING_COMPLETE: self._completions,
            OpKind.RECORDING_CALL: lambda c, p, o: self.recordings.run(c, p, o, templates),
        }
        for kind in KIND_ORDER:
            kind_ops = by_kind.pop(kind, [])
            if kind_ops:
                results.update(await handlers[kind](client, portal_id, kind_ops))
        for leftover in by_kind.values():  # a kind this version does not know: keep it
            results.update({op.id: Result(Verdict.WAIT, delay_s=60.0) for op in leftover})
        return results

    # ---- claim and finish -------------------------------------------------------------------------

    def _claim(self) -> list[ClaimedOp]:
        now = self.now()
        with unit_of_work(self.engine) as session:
            stmt = (
                select(OutboxOp)
                .where(
                    col(OutboxOp.state) == OutboxState.PENDING.value,
                    col(OutboxOp.next_attempt_at) <= now,
                    (col(OutboxOp.locked_until).is_(None)) | (col(OutboxOp.locked_until) < now),
                )
                .order_by(col(OutboxOp.id))
                .limit(self.config.claim_limit)
            )
            if self.config.hold_max_s > 0 and _inbox_busy(session, now):
                # Late materialisation only coalesces what is planned before the send: while events
                # still pour in, values that every event may change again wait for them (bounded).
                since = func.coalesce(col(OutboxOp.pending_since), col(OutboxOp.created_at))
                stmt = stmt.where(
                    ~(
                        col(OutboxOp.kind).in_(HELD_KINDS)
                        & (since > now - timedelta(seconds=self.config.hold_max_s))
                    )
                )
            if self._skip_locked:
                stmt = stmt.with_for_update(skip_locked=True)
            rows = list(session.execute(stmt).scalars().all())
            lease = now + timedelta(seconds=self.config.lease_s)
            for row in rows:
                row.locked_until = lease
            self._leased = [
                ClaimedOp(
                    id=r.id or 0,
                    portal_id=r.portal_id,
                    kind=r.kind,
                    target_key=r.target_key,
                    zoom_account_id=r.zoom_account_id,
                    webinar_id=r.webinar_id,
                    email=r.email,
                    version=r.planned_version,
                    attempts=r.attempts,
                    created_at=r.created_at,
                )
                for r in rows
            ]
            return self._leased

    def _finish(self, ops: list[ClaimedOp], results: dict[int, Result], outcome: DispatchOutcome) -> None:
        now = self.now()
        table = OutboxOp.__table__  # type: ignore[attr-defined]
        delivered: set[tuple[int, WebinarKey]] = set()
        done: list[dict[str, Any]] = []
        with unit_of_work(self.engine) as session:
            for op in in_lock_order(ops):
                result = results.get(op.id, Result(Verdict.WAIT))
                if result.verdict is Verdict.DONE:
                    outcome.done += 1
                    done.append({"op_id": op.id, "sent_version": op.version})
                    if op.webinar_key is not None:
                        delivered.add((op.portal_id, op.webinar_key))
                elif result.verdict is Verdict.WAIT:
                    outcome.waiting += 1
                    session.execute(
                        update(table)
                        .where(table.c.id == op.id)
                        .values(
                            locked_until=None,
                            next_attempt_at=now + timedelta(seconds=result.delay_s),
                            **({"last_error": result.error} if result.error else {}),
                        )
                    )
                else:
                    self._record_hubspot_failure(session, op, result, now, outcome)
            if done:
                # One executemany for the whole round instead of one UPDATE per operation.
                sent: Any = bindparam("sent_version")
                session.execute(
                    update(table)
                    .where(table.c.id == bindparam("op_id"))
                    .values(
                        done_version=sent,
                        # Re-planned while in flight: stays pending and goes again.
                        state=case(
                            (table.c.planned_version == sent, OutboxState.DONE.value),
                            else_=OutboxState.PENDING.value,
                        ),
                        locked_until=None,
                        attempts=0,
                        last_error=None,
                        updated_at=now,
                        pending_since=case(
                            (table.c.planned_version == sent, table.c.pending_since), else_=now
                        ),
                    ),
                    done,
                )
            for portal_id, key in sorted(delivered):
                _audit_delivered(session, portal_id, key)

    def _record_hubspot_failure(
        self, session: Session, op: ClaimedOp, result: Result, now: datetime, outcome: DispatchOutcome
    ) -> None:
        table = OutboxOp.__table__  # type: ignore[attr-defined]
        attempts = op.attempts + 1
        too_old = now - op.created_at > timedelta(seconds=self.config.give_up_after_s)
        give_up = too_old if result.retryable else attempts >= self.config.max_attempts
        if give_up:
            outcome.failed += 1
            session.execute(
                update(table)
                .where(table.c.id == op.id, table.c.planned_version == op.version)
                .values(
                    state=OutboxState.FAILED.value,
                    attempts=attempts,
                    last_error=result.error,
                    locked_until=None,
                )
            )
            _audit_hubspot_failure(session, op, result)
            return
        outcome.retried += 1
        delay = min(self.config.retry_max_s, self.config.retry_base_s * 2 ** min(attempts - 1, 20))
        session.execute(
            update(table)
            .where(table.c.id == op.id)
            .values(
                attempts=attempts,
                last_error=result.error,
                locked_until=None,
                next_attempt_at=now + timedelta(seconds=max(delay, result.delay_s)),
            )
        )

    # ---- helpers shared by the kinds --------------------------------------------------------------

    # Every database read below runs in a worker thread (asyncio.to_thread): a blocking call on the
    # event loop would stall webhooks and, on SQLite, can deadlock with a request that holds the
    # write lock and needs the loop to finish.

    def _session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def _syncing(self, session: Session, portal_id: int, webinars: Sequence[Webinar]) -> set[WebinarKey]:
        settings = load_settings(session, portal_id)
        return {
            (w.zoom_account_id, w.webinar_id)
            for w in webinars
            if webinar_skip_reason(session, settings, w) is None
        }

    def _load_marketing(
        self, portal_id: int, keys: Sequence[WebinarKey]
    ) -> tuple[dict[WebinarKey, Webinar], set[WebinarKey], dict[WebinarKey, str]]:
        with self._session() as session:
            webinars = load_webinars(session, keys)
            syncing = self._syncing(session, portal_id, list(webinars.values()))
            return webinars, syncing, _host_emails(session, list(webinars.values()))

    def _load_completions(
        self, portal_id: int, keys: Sequence[WebinarKey]
    ) -> tuple[dict[WebinarKey, Webinar], set[WebinarKey], set[WebinarKey]]:
        with self._session() as session:
            webinars = load_webinars(session, keys)
            syncing = self._syncing(session, portal_id, list(webinars.values()))
            return webinars, syncing, _unfinished_states(session, portal_id, list(webinars))

    def _load_contacts(
        self, portal_id: int, emails: Sequence[str]
    ) -> tuple[PortalRules, dict[str, list[PersonWebinar]], set[WebinarKey], dict[str, NamesAtHubSpot]]:
        with self._session() as session:
            rules = portal_rules(load_settings(session, portal_id))
            accounts = [c.zoom_account_id for c in connections_for_portal(session, portal_id)]
            people = load_people(session, accounts, emails)
            all_webinars = [pw.webinar for pws in people.values() for pw in pws]
            syncing = self._syncing(session, portal_id, all_webinars)
            return rules, people, syncing, names_at_hubspot(session, portal_id, emails)

    def _attendance_clocks(self, keys: set[WebinarKey]) -> dict[WebinarKey, AttendanceClock]:
        with self._session() as session:
            return attendance_clocks(session, keys)

    def _attendance_wait(
        self, clocks: dict[WebinarKey, AttendanceClock], key: WebinarKey, now: datetime
    ) -> float | None:
        clock = clocks.get(key)
        if clock is None:
            return self.config.wait_s
        return attendance_wait_s(clock, now, self.config.settle_s)

    def _registration_wait(self, pw: PersonWebinar, now: datetime) -> float | None:
        return registration_wait_s(
            (RegistrationClock(r.registered_at_exact, r.updated_at) for r in pw.registrations),
            now,
            self.config.settle_s,
        )

    def _load_people(
        self, portal_id: int, emails: Sequence[str], keys: set[WebinarKey]
    ) -> tuple[dict[str, str], set[str], dict[str, list[PersonWebinar]], set[WebinarKey], set[str]]:
        with self._session() as session:
            accounts = [c.zoom_account_id for c in connections_for_portal(session, portal_id)]
            return (
                contact_ids(session, portal_id, emails),
                excluded_emails(session, portal_id, emails),
                load_people(session, accounts, emails),
                _marketing_events_done(session, portal_id, keys) if keys else set(),
                contacts_pending(session, portal_id, emails),
            )

    def _person_target(
        self,
        op: ClaimedOp,
        people: dict[str, list[PersonWebinar]],
        ids: dict[str, str],
        excluded: set[str],
        contact_pending: set[str],
    ) -> tuple[PersonWebinar, str, str] | Result:
        """(person's part in the webinar, email, contact id) for a per-person webinar operation, or
        the result when there is nothing to send (DONE) or not yet (the contact is not written)."""
        email, key = op.email, op.webinar_key
        pw = _person_webinar(people, email, key)
        if email is None or pw is None or email in excluded:
            return DONE
        contact_id = ids.get(email)
        if contact_id is None:
            return self._no_contact_yet(email, contact_pending)
        return pw, email, contact_id

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

    # ---- marketing events -------------------------------------------------------------------------

    async def _marketing_events(
        self, client: HubSpotClient, portal_id: int, ops: list[ClaimedOp]
    ) -> dict[int, Result]:
        keys = [k for op in ops if (k := op.webinar_key)]
        webinars, syncing, hosts = await asyncio.to_thread(self._load_marketing, portal_id, keys)
        results: dict[int, Result] = {}
        for op in ops:
            webinar = webinars.get(op.webinar_key) if op.webinar_key else None
            if webinar is None or op.webinar_key not in syncing:
                results[op.id] = DONE  # nothing (left) to sync for it
                continue
            try:
                await client.upsert_marketing_event(_marketing_event(webinar, hosts.get(op.webinar_key)))
                results[op.id] = DONE
            except HubSpotError as exc:
                results[op.id] = hubspot_failure(exc, "marketing_event_failed")
        return results

    async def _completions(
        self, client: HubSpotClient, portal_id: int, ops: list[ClaimedOp]
    ) -> dict[int, Result]:
        keys = [k for op in ops if (k := op.webinar_key)]
        webinars, syncing, unfinished = await asyncio.to_thread(self._load_completions, portal_id, keys)
        results: dict[int, Result] = {}
        for op in ops:
            webinar = webinars.get(op.webinar_key) if op.webinar_key else None
            if webinar is None or op.webinar_key not in syncing or webinar.actual_end_at is None:
                results[op.id] = DONE
                continue
            if op.webinar_key in unfinished:
                # HubSpot computes attendance durations at completion: every state must be in first.
                results[op.id] = Result(Verdict.WAIT, delay_s=self.config.wait_s)
                continue
            start = webinar.actual_start_at or webinar.scheduled_start_at or webinar.actual_end_at
            try:
                await client.complete_marketing_event(
                    webinar.webinar_id, webinar.zoom_account_id, start, webinar.actual_end_at
                )
                results[op.id] = DONE
            except HubSpotError as exc:
                results[op.id] = hubspot_failure(exc, "marketing_event_failed")
        return results

    # ---- contacts ---------------------------------------------------------------------------------

    async def _contacts(
        self, client: HubSpotClient, portal_id: int, ops: list[ClaimedOp]
    ) -> dict[int, Result]:
        emails = sorted({op.email for op in ops if op.email})
        try:
            facts = await self.facts.resolve(client, portal_id, emails)
        except HubSpotError as exc:
            return {op.id: hubspot_failure(exc, "contact_update_failed") for op in ops}
        now = self.now()
        rules, people, syncing, names_known = await asyncio.to_thread(self._load_contacts, portal_id, emails)
        replan: set[WebinarKey] = set()
        upserts: dict[str, ContactUpsert] = {}
        names_sent: dict[str, NamesWritten] = {}
        results: dict[int, Result] = {}
        for op in ops:
            email = op.email
            if email is None:
                results[op.id] = DONE
                continue
            mine = people.get(email, [])
            if email_decision(email, rules, facts.get(email) or HubSpotFacts()) is not None:
                # Excluded by what HubSpot told us (R2-R4): the planner records it everywhere.
                replan |= {pw.key for pw in mine}
                results[op.id] = DONE
                continue
            values = contact_properties(mine, syncing, now)
            exists = bool(facts.get(email) and facts[email].contact_exists)
            if not exists and not any(pw.key in syncing for pw in mine):
                results[op.id] = DONE  # nothing of this person syncs (any more): create nothing
                continue
            properties: dict[str, Any] = {"email": email, **values}
            first, last = _names(mine)
            # Never overwrite a name the CRM has; fill one that is empty there (a contact first met
            # through attendance, before its registration arrived, was created without one).
            known = names_known.get(email)
            if not exists or known is None:
                fill_first = fill_last = not exists
            else:
                fill_first, fill_last = known.firstname_empty, known.lastname_empty
            if fill_first and first:
                properties["firstname"] = first
            if fill_last and last:
                properties["lastname"] = last
            names_sent[email] = NamesWritten("firstname" in properties, "lastname" in properties)
            upserts[email] = ContactUpsert(email=email, properties=properties)
        written: dict[str, str] = {}
        failed: dict[str, Result] = {}
        for part in chunks(sorted(upserts), self.config.batch_size):
            try:
                batch = await client.batch_upsert_contacts([upserts[e] for e in part])
            except HubSpotError as exc:
                failed |= {e: hubspot_failure(exc, "contact_update_failed") for e in part}
                continue
            for contact in batch.results:
                address = (contact.email or "").lower()
                if address in upserts:
                    written[address] = contact.id
            for error in batch.errors:
                for item in error.ids or part:
                    key = item.lower()
                    if key not in written:
                        failed[key] = Result(
                            Verdict.RETRY,
                            error=f"{error.category}: {error.message}"[:500],
                            retryable=False,
                            reason="contact_update_failed",
                        )
        await asyncio.to_thread(self.facts.record_written, portal_id, written, names=names_sent)
        for op in ops:
            if op.id in results or op.email is None:
                continue
            if op.email in written:
                results[op.id] = DONE
            else:
                results[op.id] = failed.get(
                    op.email,
                    Result(
                        Verdict.RETRY,
                        error="HubSpot did not return the contact",
                        reason="contact_update_failed",
                    ),
                )
        if replan:
            await asyncio.to_thread(self._replan, replan)
        return results

    def _replan(self, keys: set[WebinarKey]) -> None:
        with unit_of_work(self.engine) as session:
            for account_id, webinar_id in sorted(keys):
                enqueue_replan(session, account_id, webinar_id)

    # ---- timeline events --------------------------------------------------------------------------

    async def _timeline(
        self,
        client: HubSpotClient,
        portal_id: int,
        ops: list[ClaimedOp],
        templates: dict[str, str],
        name: str,
    ) -> dict[int, Result]:
        template_id = templates.get(name)
        if template_id is None:
            error = "timeline event templates are not set up (HUBSPOT_APP_ID missing?)"
            return {
                op.id: Result(Verdict.RETRY, error=error, retryable=False, reason="timeline_event_failed")
                for op in ops
            }
        now = self.now()
        results: dict[int, Result] = {}
        if name == TEMPLATE_ATTENDANCE:
            # Immutable at HubSpot: only once the webinar's attendance is final. Decided per webinar
            # before anything is loaded per person, since these wait for minutes after an end.
            ops = await self._hold_until_attendance_final(ops, results, now)
        emails = sorted({op.email for op in ops if op.email})
        ids, excluded, people, _, contact_pending = await asyncio.to_thread(
            self._load_people, portal_id, emails, set()
        )
        events: dict[int, TimelineEvent] = {}
        for op in ops:
            target = self._person_target(op, people, ids, excluded, contact_pending)
            if isinstance(target, Result):
                results[op.id] = target
                continue
            pw, email, contact_id = target
            if name == TEMPLATE_REGISTRATION and (wait := self._registration_wait(pw, now)) is not None:
                results[op.id] = Result(Verdict.WAIT, delay_s=wait)  # its time may still move earlier
                continue
            event = _timeline_event(name, template_id, contact_id, pw, email, now)
            if event is None:
                results[op.id] = DONE  # e.g. attendance event for someone with no attendance after all
                continue
            events[op.id] = event
        by_event_id = {e.id: op_id for op_id, e in events.items()}
        for part in chunks(sorted(events), self.config.batch_size):
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
        clocks = await asyncio.to_thread(self._attendance_clocks, keys) if keys else {}
        ready: list[ClaimedOp] = []
        for op in ops:
            key = op.webinar_key
            wait = self._attendance_wait(clocks, key, now) if key is not None else None
            if wait is None:
                ready.append(op)
            else:
                results[op.id] = Result(Verdict.WAIT, delay_s=wait)
        return ready

    # ---- marketing event states -------------------------------------------------------------------

    async def _marketing_states(
        self, client: HubSpotClient, portal_id: int, ops: list[ClaimedOp]
    ) -> dict[int, Result]:
        emails = sorted({op.email for op in ops if op.email})
        keys = {k for op in ops if (k := op.webinar_key)}
        ids, excluded, people, events_ready, contact_pending = await asyncio.to_thread(
            self._load_people, portal_id, emails, keys
        )
        clocks = await asyncio.to_thread(self._attendance_clocks, keys) if keys else {}
        now = self.now()
        results: dict[int, Result] = {}
        groups: dict[tuple[WebinarKey, AttendanceState], list[tuple[int, AttendanceInput]]] = defaultdict(
            list
        )
        for op in ops:
            target = self._person_target(op, people, ids, excluded, contact_pending)
            if isinstance(target, Result):
                results[op.id] = target
                continue
            pw, _, contact_id = target
            if pw.key not in events_ready:
                results[op.id] = Result(Verdict.WAIT, delay_s=self.config.wait_s)
                continue
            # States are sent once their facts are final, so that no arrival order can leave an
            # earlier value in place: the registration time (HubSpot keeps the state with the latest
            # interaction time) and, after the end, the attendance (joinedAt/leftAt).
            wait = self._registration_wait(pw, now) if pw.registrations else None
            ended = pw.webinar.actual_end_at is not None
            if wait is None and ended and pw.attended:
                wait = self._attendance_wait(clocks, pw.key, now)
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
            for part in chunks(items, self.config.batch_size):
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


# ---- pure helpers ---------------------------------------------------------------------------------


def _names(webinars: Sequence[PersonWebinar]) -> tuple[str | None, str | None]:
    regs = sorted(
        (r for pw in webinars for r in pw.registrations),
        key=lambda r: (r.registered_at is None, r.registered_at),
        reverse=True,
    )
    for reg in regs:
        if reg.first_name or reg.last_name:
            return reg.first_name, reg.last_name
    return None, None


def _person_webinar(
    people: dict[str, list[PersonWebinar]], email: str | None, key: WebinarKey | None
) -> PersonWebinar | None:
    if email is None or key is None:
        return None
    return next((pw for pw in people.get(email, []) if pw.key == key), None)


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


# ---- database helpers -----------------------------------------------------------------------------


def connections_for_portal(session: Session, portal_id: int) -> list[Connection]:
    return list(session.execute(select(Connection).where(col(Connection.portal_id) == portal_id)).scalars())


def in_lock_order(ops: Sequence[ClaimedOp]) -> list[ClaimedOp]:
    """Operations in the order the planner's upserts lock their rows (portal, kind, target): every
    transaction that updates outbox rows takes them in this one order, so none can deadlock."""
    return sorted(ops, key=lambda o: (o.portal_id, o.kind, o.target_key))


def _inbox_busy(session: Session, now: datetime) -> bool:
    """Zoom events wait in the inbox, due now (the worker is still turning a burst into plans)."""
    found = session.execute(
        select(col(InboxEvent.id))
        .where(col(InboxEvent.state) == InboxState.PENDING.value, col(InboxEvent.next_attempt_at) <= now)
        .limit(1)
    ).first()
    return found is not None


def _host_emails(session: Session, webinars: Sequence[Webinar]) -> dict[WebinarKey, str]:
    out: dict[WebinarKey, str] = {}
    for w in webinars:
        if w.host_id:
            user = session.get(ZoomUser, (w.zoom_account_id, w.host_id))
            if user is not None and user.email:
                out[(w.zoom_account_id, w.webinar_id)] = user.email
    return out


def _marketing_events_done(session: Session, portal_id: int, keys: set[WebinarKey]) -> set[WebinarKey]:
    targets = {f"{a}:{w}": (a, w) for a, w in keys}
    done: set[WebinarKey] = set()
    for part in chunks(sorted(targets), 400):
        rows = session.execute(
            select(col(OutboxOp.target_key)).where(
                col(OutboxOp.portal_id) == portal_id,
                col(OutboxOp.kind) == OpKind.MARKETING_EVENT.value,
                col(OutboxOp.target_key).in_(part),
                col(OutboxOp.done_version) > 0,
            )
        ).scalars()
        done |= {targets[t] for t in rows}
    return done


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
                col(OutboxOp.state) == OutboxState.PENDING.value,
            )
            .limit(1)
        ).first()
        if pending is not None:
            out.add((account_id, webinar_id))
    return out


def _audit_delivered(session: Session, portal_id: int, key: WebinarKey) -> None:
    account_id, webinar_id = key
    rows = session.execute(
        select(col(OutboxOp.kind), col(OutboxOp.done_version)).where(
            col(OutboxOp.portal_id) == portal_id,
            col(OutboxOp.zoom_account_id) == account_id,
            col(OutboxOp.webinar_id) == webinar_id,
        )
    ).all()
    counts: dict[str, int] = defaultdict(int)
    for kind, done_version in rows:
        if done_version > 0:
            counts[kind] += 1
    conn = session.execute(
        select(Connection).where(
            col(Connection.portal_id) == portal_id, col(Connection.zoom_account_id) == account_id
        )
    ).scalar_one_or_none()
    if conn is None:
        return
    upsert_audit(
        session,
        conn,
        webinar_id,
        code="hubspot_synced",
        status=AuditStatus.SUCCESS,
        message=(
            f"HubSpot: {counts[OpKind.MARKETING_STATE]} contacts on the marketing event, "
            f"{counts[OpKind.REGISTRATION_EVENT]} registration and {counts[OpKind.ATTENDANCE_EVENT]} "
            "attendance timeline events"
        ),
        details={"counts": dict(sorted(counts.items()))},
    )


def _webinars_of_email(session: Session, portal_id: int, email: str) -> list[WebinarKey]:
    accounts = [c.zoom_account_id for c in connections_for_portal(session, portal_id)]
    people = load_people(session, accounts, [email])
    return sorted({pw.key for pw in people.get(email, [])})


def _audit_hubspot_failure(session: Session, op: ClaimedOp, result: Result) -> None:
    """An operation that failed for good goes into the audit log of every webinar it concerns.

    A contact refresh belongs to no single webinar: it is logged on each webinar of that email.
    """
    reason = result.reason or "contact_update_failed"
    if op.webinar_id is not None:
        keys: list[WebinarKey] = [(op.zoom_account_id, op.webinar_id)]
    elif op.email is not None:
        keys = _webinars_of_email(session, op.portal_id, op.email)
    else:
        keys = []
    for account_id, webinar_id in keys:
        for conn in connections_for(session, account_id):
            if conn.portal_id != op.portal_id:
                continue
            code = (
                AuditCode.WEBINAR_DATA_NOT_SYNCED
                if reason == "marketing_event_failed"
                else AuditCode.SYNC_ERROR
            )
            add_audit_event(
                session,
                conn,
                webinar_id,
                code=code,
                status=AuditStatus.ERROR,
                message=f"HubSpot {op.kind.replace('_', ' ')} failed for good: {result.error}",
                details={"reason": reason, "kind": op.kind, "target": op.target_key, "error": result.error},
            )
