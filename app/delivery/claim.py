"""Claiming outbox rows: leases, so several workers share the due operations without sending one twice.

A claim leases the due operations for `DispatchConfig.lease_s`; a heartbeat renews the lease while the
round runs, and a worker that stops releases what it holds at once. Every statement that updates outbox
rows takes them in one order (`in_lock_order`), so none can deadlock with another or with the planner.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from app.db import unit_of_work
from app.delivery.ops import ClaimedOp, DispatchConfig
from app.models import InboxEvent, InboxState, OutboxOp, OutboxState
from app.sync.op_kind import OpKind

log = logging.getLogger(__name__)

# A person's values, which every Zoom event of that person may change again, and what waits for their
# contact anyway (see DispatchConfig.hold_max_s).
HELD_KINDS = (
    OpKind.CONTACT_REFRESH.value,
    OpKind.MARKETING_STATE.value,
    OpKind.REGISTRATION_EVENT.value,
    OpKind.ATTENDANCE_EVENT.value,
)


class Leases:
    def __init__(self, engine: Engine, config: DispatchConfig, now: Callable[[], datetime]) -> None:
        self.engine = engine
        self.config = config
        self.now = now
        self._skip_locked = engine.dialect.name == "postgresql"

    def claim(self) -> list[ClaimedOp]:
        """Leases the due operations (oldest first, at most `claim_limit`)."""
        now = self.now()
        with unit_of_work(self.engine) as session:
            stmt = (
                select(OutboxOp)
                .where(
                    col(OutboxOp.state) == OutboxState.PENDING,
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
            return [
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

    async def keep(self, ops: list[ClaimedOp], done: asyncio.Event) -> None:
        """Renews the leases every third of `lease_s` until `done` is set."""
        interval = self.config.lease_s / 3
        while True:
            try:
                await asyncio.wait_for(done.wait(), timeout=interval)
                return
            except TimeoutError:
                pass
            try:
                await asyncio.to_thread(self.renew, ops)
            except Exception:  # a missed renewal only shortens the lease; the round goes on
                log.warning("outbox lease renewal failed", exc_info=True)

    def renew(self, ops: list[ClaimedOp]) -> None:
        self._set_lease(ops, self.now() + timedelta(seconds=self.config.lease_s))

    def release(self, ops: list[ClaimedOp]) -> None:
        self._set_lease(ops, None)

    def _set_lease(self, ops: list[ClaimedOp], until: datetime | None) -> None:
        # Only rows still leased: one finished meanwhile (locked_until cleared) stays as it is.
        table = OutboxOp.__table__  # type: ignore[attr-defined]
        with unit_of_work(self.engine) as session:
            session.execute(
                update(table)
                .where(table.c.id == bindparam("op_id"), table.c.locked_until.is_not(None))
                .values(locked_until=until),
                [{"op_id": op.id} for op in in_lock_order(ops)],
            )


def in_lock_order(ops: Sequence[ClaimedOp]) -> list[ClaimedOp]:
    """Operations in the order the planner's upserts lock their rows (portal, kind, target): every
    transaction that updates outbox rows takes them in this one order, so none can deadlock."""
    return sorted(ops, key=lambda o: (o.portal_id, o.kind, o.target_key))


def _inbox_busy(session: Session, now: datetime) -> bool:
    """Zoom events wait in the inbox, due now (the worker is still turning a burst into plans)."""
    found = session.execute(
        select(col(InboxEvent.id))
        .where(col(InboxEvent.state) == InboxState.PENDING, col(InboxEvent.next_attempt_at) <= now)
        .limit(1)
    ).first()
    return found is not None
