"""Stores per-portal health of the calls to HubSpot and Zoom, and writes the outage audit entries.

The clients report every call's outcome here (`HubSpotCallObserver`, `ZoomCallObserver`). Each
process keeps the last state it read or wrote per portal and asks `health_rules.decide` whether the
outcome is worth a write; almost every successful call is not, so it costs no database access. When
one is, the row is read again under a lock and decided once more, so processes that share the
database never write the same transition (or the same audit warning) twice.

Audit entries: the audit log is per webinar (A1, `/webinars/{id}/audit-log`), and an operator looks
for the reason work is stuck on the webinar it is stuck for. So the outage warning goes on each
webinar that has work waiting for that service (HubSpot: pending outbox operations; Zoom: queued or
running pulls); when none has, it is kept as a portal-level entry (webinar id null) per connection.
The recovery entry goes wherever the warning went. Both carry a key per outage, so each webinar
gets each entry once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from app.db import dialect_insert, unit_of_work, utcnow
from app.delivery.health_rules import (
    REFRESH_S,
    Change,
    Health,
    HealthView,
    Outcome,
    OutcomeKind,
    Service,
    decide,
    hubspot_outcome,
    view,
    zoom_outcome,
)
from app.integrations.hubspot.errors import HubSpotError
from app.integrations.zoom.errors import ZoomError
from app.models import (
    AuditEntry,
    AuditStatus,
    Connection,
    HubSpotPortal,
    IntegrationHealth,
    JobState,
    OutboxOp,
    OutboxState,
    SyncJob,
)

log = logging.getLogger(__name__)

NAMES = {Service.HUBSPOT: "HubSpot", Service.ZOOM: "Zoom"}
FAILING_CODES = {Service.HUBSPOT: "hubspot_delivery_failing", Service.ZOOM: "zoom_api_failing"}
RECOVERED_CODES = {Service.HUBSPOT: "hubspot_delivery_recovered", Service.ZOOM: "zoom_api_recovered"}
ACCOUNT_PORTALS_TTL_S = 60.0


def _health(row: IntegrationHealth | None) -> Health:
    if row is None:
        return Health()
    return Health(
        last_ok_at=row.last_ok_at,
        failing_since=row.failing_since,
        last_error=row.last_error,
        last_error_at=row.last_error_at,
        rate_limited_until=row.rate_limited_until,
        warned_at=row.warned_at,
    )


class HealthRecorder:
    """Outcomes of one service's calls, per portal, into `integration_health`."""

    def __init__(
        self,
        engine: Engine,
        service: Service,
        *,
        warn_after_s: float,
        refresh_s: float = REFRESH_S,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.engine = engine
        self.service = service
        self.warn_after_s = warn_after_s
        self.refresh_s = refresh_s
        self.now = now
        self._known: dict[int, Health] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._lock_rows = engine.dialect.name == "postgresql"

    def _needs_write(self, portal_id: int, outcome: Outcome) -> bool:
        known = self._known.get(portal_id)
        if known is None:
            return outcome.kind is not OutcomeKind.NEUTRAL  # not read yet in this process
        decided = decide(known, outcome, self.now(), warn_after_s=self.warn_after_s, refresh_s=self.refresh_s)
        return decided is not None

    async def record(self, portal_id: int, outcome: Outcome) -> None:
        """Never raises: health is worth less than the call it describes."""
        if not self._needs_write(portal_id, outcome):
            return
        lock = self._locks.setdefault(portal_id, asyncio.Lock())
        try:
            async with lock:
                # Several calls of this process may have failed together: one writes.
                if self._needs_write(portal_id, outcome):
                    self._known[portal_id] = await asyncio.to_thread(self.write, portal_id, outcome)
        except Exception:
            log.warning("recording %s health failed", self.service.value, exc_info=True)

    def write(self, portal_id: int, outcome: Outcome) -> Health:
        """Apply `outcome` to the stored row (under its lock) and return what is stored now."""
        table = IntegrationHealth.__table__  # type: ignore[attr-defined]
        with unit_of_work(self.engine) as session:
            now = self.now()
            # Make sure the row exists first, so the read below can lock it (PostgreSQL) and two
            # processes never both insert it. SQLite holds the database's write lock already.
            session.execute(
                dialect_insert(session, table)
                .values(portal_id=portal_id, service=self.service.value, updated_at=now)
                .on_conflict_do_nothing(index_elements=["portal_id", "service"])
            )
            row = session.get(
                IntegrationHealth,
                (portal_id, self.service.value),
                with_for_update=self._lock_rows,
                populate_existing=True,
            )
            if row is None:  # inserted just above (or already there) in this transaction
                raise LookupError(f"integration_health row ({portal_id}, {self.service.value}) is missing")
            stored = _health(row)
            change = decide(stored, outcome, now, warn_after_s=self.warn_after_s, refresh_s=self.refresh_s)
            if change is None:
                return stored
            new = change.health
            row.last_ok_at = new.last_ok_at
            row.failing_since = new.failing_since
            row.last_error = new.last_error
            row.last_error_at = new.last_error_at
            row.rate_limited_until = new.rate_limited_until
            row.warned_at = new.warned_at
            row.updated_at = now
            self._audit(session, portal_id, stored, change, now)
            return new

    # ---- audit entries ------------------------------------------------------------------------------

    def _audit(self, session: Session, portal_id: int, stored: Health, change: Change, now: datetime) -> None:
        name = NAMES[self.service]
        if change.warn:
            since = change.health.failing_since or now
            minutes = max(1, round((now - since).total_seconds() / 60))
            _add_once(
                session,
                self._warning_targets(session, portal_id),
                key=_outage_key(FAILING_CODES[self.service], since),
                status=AuditStatus.WARNING,
                code=FAILING_CODES[self.service],
                message=(
                    f"{name} calls for portal {portal_id} have been failing since "
                    f"{since:%Y-%m-%d %H:%M:%S} UTC ({minutes} min); work waits and is retried. "
                    f"Last error: {change.health.last_error}"
                ),
                details={
                    "service": self.service.value,
                    "failing_since": since.isoformat(),
                    "last_error": change.health.last_error,
                },
                at=now,
            )
        if change.recovered and stored.failing_since is not None:
            since = stored.failing_since
            warned = session.execute(
                select(col(AuditEntry.zoom_account_id), col(AuditEntry.webinar_id)).where(
                    col(AuditEntry.portal_id) == portal_id,
                    col(AuditEntry.aggregate_key) == _outage_key(FAILING_CODES[self.service], since),
                )
            ).all()
            _add_once(
                session,
                [(portal_id, account, webinar) for account, webinar in warned],
                key=_outage_key(RECOVERED_CODES[self.service], since),
                status=AuditStatus.SUCCESS,
                code=RECOVERED_CODES[self.service],
                message=(
                    f"{name} calls for portal {portal_id} work again (failing from "
                    f"{since:%Y-%m-%d %H:%M:%S} to {now:%Y-%m-%d %H:%M:%S} UTC)"
                ),
                details={
                    "service": self.service.value,
                    "failing_since": since.isoformat(),
                    "recovered_at": now.isoformat(),
                    "last_error": stored.last_error,
                },
                at=now,
            )

    def _warning_targets(self, session: Session, portal_id: int) -> list[tuple[int, str, str | None]]:
        """(portal, Zoom account, webinar) of the webinars with work waiting for this service; the
        portal's connections (webinar None) when there is none."""
        if self.service is Service.HUBSPOT:
            query = (
                select(col(OutboxOp.zoom_account_id), col(OutboxOp.webinar_id))
                .where(
                    col(OutboxOp.portal_id) == portal_id,
                    col(OutboxOp.state) == OutboxState.PENDING,
                    col(OutboxOp.webinar_id).is_not(None),
                )
                .distinct()
            )
        else:
            query = (
                select(col(SyncJob.zoom_account_id), col(SyncJob.webinar_id))
                .where(
                    col(SyncJob.portal_id) == portal_id,
                    col(SyncJob.state).in_([JobState.QUEUED, JobState.RUNNING]),
                    col(SyncJob.webinar_id).is_not(None),
                )
                .distinct()
            )
        webinars = sorted((str(a), w) for a, w in session.execute(query).all())
        if webinars:
            return [(portal_id, account, webinar) for account, webinar in webinars]
        accounts = session.execute(
            select(col(Connection.zoom_account_id)).where(col(Connection.portal_id) == portal_id)
        ).scalars()
        return [(portal_id, account, None) for account in sorted(set(accounts))]


def _outage_key(code: str, since: datetime) -> str:
    # Whole seconds: the same outage gives the same key whatever precision the database keeps.
    return f"{code}:{int(since.timestamp())}"


def _add_once(
    session: Session,
    targets: Iterable[tuple[int, str, str | None]],
    *,
    key: str,
    status: AuditStatus,
    code: str,
    message: str,
    details: dict[str, object],
    at: datetime,
) -> None:
    for portal_id, account_id, webinar_id in targets:
        exists = session.execute(
            select(col(AuditEntry.id)).where(
                col(AuditEntry.portal_id) == portal_id,
                col(AuditEntry.zoom_account_id) == account_id,
                col(AuditEntry.webinar_id).is_(None)
                if webinar_id is None
                else col(AuditEntry.webinar_id) == webinar_id,
                col(AuditEntry.aggregate_key) == key,
            )
        ).first()
        if exists is None:
            session.add(
                AuditEntry(
                    portal_id=portal_id,
                    zoom_account_id=account_id,
                    webinar_id=webinar_id,
                    at=at,
                    status=status,
                    code=code,
                    message=message,
                    details=dict(details),
                    aggregate_key=key,
                )
            )


# ---- the clients' observers -------------------------------------------------------------------------


class HubSpotCallObserver:
    """Bound to one portal's HubSpotClient: every call's outcome goes to the recorder."""

    def __init__(self, recorder: HealthRecorder, portal_id: int) -> None:
        self.recorder = recorder
        self.portal_id = portal_id

    async def observe(self, error: HubSpotError | None, began_at: datetime) -> None:
        await self.recorder.record(self.portal_id, hubspot_outcome(error, began_at, self.recorder.now()))


class ZoomCallObserver:
    """Bound to one Zoom account's client: an outcome counts for every portal the account is
    connected to (looked up when a write is due, then kept for a minute)."""

    def __init__(self, recorder: HealthRecorder, account_id: str) -> None:
        self.recorder = recorder
        self.account_id = account_id
        self._portals: tuple[float, list[int]] | None = None

    def _load_portals(self) -> list[int]:
        with Session(self.recorder.engine) as session:
            rows = session.execute(
                select(col(Connection.portal_id)).where(col(Connection.zoom_account_id) == self.account_id)
            ).scalars()
            return sorted(set(rows))

    async def observe(self, error: ZoomError | None, began_at: datetime) -> None:
        outcome = zoom_outcome(error, began_at, self.recorder.now())
        if outcome.kind is OutcomeKind.NEUTRAL:
            return
        cached = self._portals
        try:
            if cached is None or time.monotonic() - cached[0] > ACCOUNT_PORTALS_TTL_S:
                cached = (time.monotonic(), await asyncio.to_thread(self._load_portals))
                self._portals = cached
        except Exception:
            log.warning("looking up the portals of a Zoom account failed", exc_info=True)
            return
        for portal_id in cached[1]:
            await self.recorder.record(portal_id, outcome)


# ---- reading, for /api/v1/status ---------------------------------------------------------------------


def portal_health(
    session: Session, portal_ids: Iterable[int], now: datetime | None = None
) -> dict[int, dict[str, HealthView]]:
    """Per portal, the view of each service (`unknown` where nothing was recorded yet)."""
    wanted = sorted(set(portal_ids))
    moment = now or datetime.now(UTC)
    stored: dict[tuple[int, str], IntegrationHealth] = {}
    if wanted:
        rows = session.execute(
            select(IntegrationHealth).where(col(IntegrationHealth.portal_id).in_(wanted))
        ).scalars()
        stored = {(r.portal_id, r.service): r for r in rows}
    return {
        portal_id: {
            service.value: view(_health(stored.get((portal_id, service.value))), moment)
            for service in Service
        }
        for portal_id in wanted
    }


def configured_portals(session: Session, env_portal_id: int | None) -> list[int]:
    """The env-configured portal, every portal with a stored connection and every portal known
    from `hubspot_portal` (installed through OAuth or given a token, maybe without a connection)."""
    stored = set(session.execute(select(col(Connection.portal_id)).distinct()).scalars())
    stored.update(session.execute(select(col(HubSpotPortal.portal_id))).scalars())
    if env_portal_id is not None:
        stored.add(env_portal_id)
    return sorted(stored)
