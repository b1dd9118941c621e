"""Turns stored inbox events into the local model, plans and audit entries.

A batch is claimed and processed in ONE transaction together with its effects, and marked done
in that same transaction: a crash (even kill -9) at any point rolls everything back and the rows
are simply processed again, so nothing is lost and no effect is applied twice. On PostgreSQL,
`FOR UPDATE SKIP LOCKED` lets several workers take disjoint batches.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlmodel import Session, col

from app.db import database_unreachable, unit_of_work, utcnow
from app.ingest.replan import REPLAN_EVENT, replan_key
from app.metrics import INBOX_PROCESSED
from app.models import AuditStatus, Connection, InboxEvent, InboxState
from app.pull.schedule import schedule_details, schedule_reconcile
from app.sync.audit import AuditCode, add_audit_event, refresh_webinar_audit
from app.sync.events import BadEventError, ParsedEvent, parse_event
from app.sync.inputs import accounts_with_zoom_app, connections_for
from app.sync.local_model import (
    Changes,
    WebinarKey,
    apply_marks,
    apply_recordings,
    apply_registrations,
    apply_webinar_metas,
    load_webinars,
)
from app.sync.planner import HubSpotFactsSource, PlanScope, no_hubspot_facts, plan_webinar
from app.util import chunks

log = logging.getLogger(__name__)

CONFLICTS_BEFORE_ISOLATING = 3
AUDIT_REFRESH_S = 2.0


@dataclass
class BatchOutcome:
    claimed: int = 0
    done: int = 0
    retried: int = 0
    failed: int = 0
    dead: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ProcessorConfig:
    batch_size: int = 200
    max_attempts: int = 8
    retry_base_s: float = 2.0
    # Zoom's REST API can be called: new webinars are read once (registration URL), and each ended
    # webinar is pulled again `reconcile_delay_s` after its end (0: no reconciliation).
    zoom_api: bool = False
    reconcile_delay_s: float = 600.0


class InboxProcessor:
    def __init__(
        self,
        engine: Engine,
        config: ProcessorConfig | None = None,
        hubspot_facts: HubSpotFactsSource = no_hubspot_facts,
    ) -> None:
        self.engine = engine
        self.config = config or ProcessorConfig()
        self.hubspot_facts = hubspot_facts
        self._skip_locked = engine.dialect.name == "postgresql"
        self._dirty_audits: set[WebinarKey] = set()
        self._audit_refreshed_at: dict[WebinarKey, float] = {}
        self._conflicts = 0  # database conflicts in a row (see run_once)

    def refresh_audits(self, *, force: bool) -> None:
        """Refresh the aggregated audit entries of webinars this worker changed.

        After a batch only those not refreshed within AUDIT_REFRESH_S (the counts of a webinar
        receiving thousands of events need not be rewritten every batch); all of them once idle.
        """
        now = time.monotonic()
        due = [
            k
            for k in sorted(self._dirty_audits)
            if force or now - self._audit_refreshed_at.get(k, 0.0) >= AUDIT_REFRESH_S
        ]
        if not due:
            return
        try:
            with unit_of_work(self.engine) as session:
                self._refresh(session, due)
        except (IntegrityError, OperationalError):
            return  # another worker refreshed the same entries at the same moment; try next round
        self._refreshed(due, now)

    def _refresh(self, session: Session, keys: list[WebinarKey]) -> None:
        for _key, webinar in sorted(load_webinars(session, keys).items()):
            refresh_webinar_audit(session, webinar)

    def _refreshed(self, keys: list[WebinarKey], at: float) -> None:
        for key in keys:
            self._dirty_audits.discard(key)
            self._audit_refreshed_at[key] = at

    def run_once(self) -> BatchOutcome:
        """Process one batch. Returns what happened (claimed == 0 means the inbox is idle)."""
        drained = False
        refreshed: list[WebinarKey] = []
        try:
            with unit_of_work(self.engine) as session:
                rows = self._claim(session)
                if not rows:
                    idle = True
                else:
                    idle = False
                    outcome = self._process(session, rows)
                    drained = len(rows) < self.config.batch_size
                    if drained:
                        # The inbox is empty once this commits: the aggregated entries are brought
                        # up to date in the same transaction, so nobody who sees "nothing pending"
                        # reads stale counts (a conflict rolls the batch back; it is simply retried).
                        refreshed = sorted(self._dirty_audits)
                        self._refresh(session, refreshed)
            if not idle and drained:
                self._refreshed(refreshed, time.monotonic())
            if idle:
                self.refresh_audits(force=True)
                return BatchOutcome()
            INBOX_PROCESSED.labels("done").inc(outcome.done)
            INBOX_PROCESSED.labels("dead").inc(outcome.dead)
            self._conflicts = 0
            self.refresh_audits(force=False)
            return outcome
        except (IntegrityError, OperationalError) as exc:
            if database_unreachable(exc):
                raise  # not a conflict: the worker loop waits for the database (app.worker.runner)
            # Usually a race lost to another worker (same aggregate row, deadlock): nothing was
            # committed, the rows stay pending and the next round takes them again. The same error
            # several rounds in a row is more likely one event that can never be written: then each
            # event goes alone, so that one counts its attempts (and ends failed) and the rest drains.
            self._conflicts += 1
            if self._conflicts >= CONFLICTS_BEFORE_ISOLATING:
                self._conflicts = 0
                log.warning(
                    "batch hit database errors %d times in a row; isolating its events",
                    CONFLICTS_BEFORE_ISOLATING,
                    extra={"error": type(exc).__name__},
                )
                return self._process_one_by_one()
            log.warning(
                "batch rolled back after a database conflict; retrying",
                extra={"error": type(exc).__name__, "detail": error_text(exc)[:300]},
            )
            return BatchOutcome(errors=[f"conflict: {type(exc).__name__}"])
        except Exception:
            log.exception("batch failed; isolating the failing events")
            return self._process_one_by_one()

    def _claim(self, session: Session, ids: list[int] | None = None) -> list[ClaimedEvent]:
        now = utcnow()
        # Plain rows, not ORM objects: thousands of events per second make the ORM's bookkeeping
        # (identity map, change tracking, one UPDATE per object) the largest cost.
        stmt = (
            select(col(InboxEvent.id), col(InboxEvent.event), col(InboxEvent.raw_body))
            .where(col(InboxEvent.state) == InboxState.PENDING)
            .order_by(col(InboxEvent.id))
        )
        if ids is not None:
            stmt = stmt.where(InboxEvent.id.in_(ids))  # type: ignore[union-attr]
        else:
            due = col(InboxEvent.next_attempt_at) <= now
            stmt = stmt.where(due).limit(self.config.batch_size)
        if self._skip_locked:
            stmt = stmt.with_for_update(skip_locked=True)
        return [ClaimedEvent(id, event, bytes(raw)) for id, event, raw in session.execute(stmt).all()]

    def _process(self, session: Session, rows: list[ClaimedEvent]) -> BatchOutcome:
        outcome = BatchOutcome(claimed=len(rows))
        parsed: list[ParsedEvent] = []
        done: list[int] = []
        replans: dict[WebinarKey, PlanScope] = {}
        now = utcnow()
        for row in rows:
            if row.event == REPLAN_EVENT:
                key = replan_key(row.raw_body)
                if key is not None:
                    replans[key] = PlanScope(everyone=True, webinar_changed=True)
                done.append(row.id)
                continue
            try:
                parsed.append(parse_event(row.raw_body))
                done.append(row.id)
            except (BadEventError, ValueError, KeyError, TypeError) as exc:
                # Malformed for its event type: retrying cannot help. Kept for inspection/replay.
                _finish(session, [row.id], InboxState.DEAD, now, error=f"{type(exc).__name__}: {exc}"[:2000])
                outcome.dead += 1
        self._apply_and_plan(session, parsed, replans)
        for part in chunks(done, 500):
            _finish(session, list(part), InboxState.DONE, now)
        _note_unconnected(session, done, _accounts_of(parsed))
        outcome.done += len(done)
        return outcome

    def _apply_and_plan(
        self, session: Session, events: list[ParsedEvent], replans: dict[WebinarKey, PlanScope]
    ) -> None:
        changes = Changes()
        metas = [e.meta for e in events if e.meta is not None]
        webinars = apply_webinar_metas(session, metas, changes)
        apply_registrations(session, [e.registration for e in events if e.registration is not None], changes)
        apply_marks(session, [e.mark for e in events if e.mark is not None], changes)
        apply_recordings(session, [e.recording for e in events if e.recording is not None], changes)
        session.flush()

        scopes: dict[WebinarKey, PlanScope] = defaultdict(PlanScope)
        for key, ids in changes.registrants.items():
            scopes[key].registrant_ids |= ids
        for key, persons in changes.attendees.items():
            scopes[key].attendee_keys |= persons
        for key in changes.recordings:
            scopes[key].recordings = True
        # Pulls only for accounts the service can call Zoom for: the env account's app (settings)
        # or one stored on a connection (admin API).
        pulled = changes.webinars_created | changes.webinars_ended
        with_app = accounts_with_zoom_app(session, {k[0] for k in pulled}) if pulled else set()

        def zoom_api(key: WebinarKey) -> bool:
            return self.config.zoom_api or key[0] in with_app

        for key in changes.webinars_created:
            if zoom_api(key):
                schedule_details(session, *key)
        for key in changes.webinar_meta_changed | changes.webinars_created:
            scopes[key].webinar_changed = True
        for key in changes.webinars_people_changed:
            scopes[key].everyone = True  # e.g. the URL of P2 became known after contacts were written
        for key in changes.webinars_ended:
            scopes[key].everyone = True  # attendance is final: plan E2 and P1/P4 for everyone
            if zoom_api(key) and self.config.reconcile_delay_s > 0:
                ended = webinars.get(key)
                end_at = ended.actual_end_at if ended is not None and ended.actual_end_at else utcnow()
                # Zoom's reports lag behind: attendance webhooks lost are filled in by one pull later.
                schedule_reconcile(session, *key, end_at + timedelta(seconds=self.config.reconcile_delay_s))
        for key, scope in replans.items():
            scopes[key].everyone = True
            scopes[key].webinar_changed = scopes[key].webinar_changed or scope.webinar_changed
        self._dirty_audits |= set(scopes)
        missing = [k for k in scopes if k not in webinars]
        webinars.update(load_webinars(session, missing))
        for key in sorted(scopes):
            webinar = webinars.get(key)
            if webinar is None:
                continue  # a replan for a webinar never seen: nothing to plan
            plan_webinar(session, webinar, scopes[key], self.hubspot_facts)

    def _process_one_by_one(self) -> BatchOutcome:
        """After a batch failed: each event in its own transaction, so one bad event cannot block others."""
        total = BatchOutcome()
        with unit_of_work(self.engine) as session:
            ids = [r.id for r in self._claim(session)]
        for event_id in ids:
            try:
                with unit_of_work(self.engine) as session:
                    rows = self._claim(session, [event_id])
                    if rows:
                        one = self._process(session, rows)
                        total.claimed += one.claimed
                        total.done += one.done
                        total.dead += one.dead
            except DBAPIError as exc:
                # The database refused what the event would write: its answer is the reason; the
                # statement and its parameters (personal data) stay out of logs and last_error.
                log.warning("inbox event failed", extra={"inbox_id": event_id, "error": error_text(exc)})
                total.claimed += 1
                self._record_failure(event_id, exc, total)
            except Exception as exc:
                log.exception("inbox event failed", extra={"inbox_id": event_id})
                total.claimed += 1
                self._record_failure(event_id, exc, total)
        return total

    def _record_failure(self, event_id: int, exc: Exception, total: BatchOutcome) -> None:
        message = error_text(exc)[:2000]
        with unit_of_work(self.engine) as session:
            row = session.get(InboxEvent, event_id)
            if row is None:
                return
            row.attempts += 1
            row.last_error = message
            if row.attempts >= self.config.max_attempts:
                row.state = InboxState.FAILED
                row.processed_at = utcnow()
                total.failed += 1
                INBOX_PROCESSED.labels("failed").inc()
                self._audit_failure(session, row, message)
            else:
                delay = self.config.retry_base_s * (2 ** (row.attempts - 1))
                row.next_attempt_at = utcnow() + timedelta(seconds=min(delay, 3600))
                total.retried += 1
            total.errors.append(message)

    def _audit_failure(self, session: Session, row: InboxEvent, message: str) -> None:
        if not row.zoom_account_id:
            return
        for conn in connections_for(session, row.zoom_account_id):
            add_audit_event(
                session,
                conn,
                row.webinar_id,
                code=AuditCode.SYNC_ERROR,
                status=AuditStatus.ERROR,
                message=f"a Zoom event ({row.event}) could not be processed after {row.attempts} attempts",
                details={"reason": "event_processing_failed", "inbox_id": row.id, "error": message},
            )


def error_text(exc: BaseException) -> str:
    """What went wrong, in one line: for a database error the database's own message, without the
    SQL statement and its parameters."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        lines = str(exc.orig).strip().splitlines() or [""]
        return f"{type(exc.orig).__name__}: {lines[0]}"
    return f"{type(exc).__name__}: {exc}"


@dataclass(frozen=True, slots=True)
class ClaimedEvent:
    id: int
    event: str
    raw_body: bytes


NO_CONNECTION = (
    "no connection for Zoom account {account}: kept in the local model, synced to a portal once one "
    "is connected (POST /api/v1/connections)"
)


# One warning per unconnected account and minute: a busy account must not flood the log.
NO_CONNECTION_WARN_S = 60.0
_warned_at: dict[str, float] = {}


def _accounts_of(events: list[ParsedEvent]) -> set[str]:
    accounts: set[str] = set()
    for e in events:
        for fact in (e.meta, e.registration, e.mark, e.recording):
            if fact is not None:
                accounts.add(fact.account_id)
    return accounts


def _note_unconnected(session: Session, ids: list[int], accounts: set[str]) -> None:
    """Events of a Zoom account with no connection reach no portal: their rows say why (and a warning
    is logged), instead of looking like events that were synced."""
    if not accounts or not ids:
        return
    connected = set(
        session.execute(
            select(col(Connection.zoom_account_id)).where(
                col(Connection.zoom_account_id).in_(sorted(accounts))
            )
        ).scalars()
    )
    for account in sorted(accounts - connected):
        note = NO_CONNECTION.format(account=account)
        for part in chunks(ids, 500):
            session.execute(
                update(InboxEvent)
                .where(col(InboxEvent.id).in_(list(part)), col(InboxEvent.zoom_account_id) == account)
                .values(last_error=note)
            )
        last = _warned_at.get(account)
        if last is None or time.monotonic() - last >= NO_CONNECTION_WARN_S:
            _warned_at[account] = time.monotonic()
            log.warning("events of a Zoom account with no connection", extra={"zoom_account_id": account})


def _finish(
    session: Session, ids: list[int], state: InboxState, now: datetime, error: str | None = None
) -> None:
    session.execute(
        update(InboxEvent)
        .where(col(InboxEvent.id).in_(ids))
        .values(state=state, processed_at=now, last_error=error)
    )
