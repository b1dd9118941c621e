"""Finishing a round: each claimed operation's result becomes done, wait, retry later or failed.

An operation is done for the version it was sent with: re-planned while in flight, it stays pending and
goes again with the newer values. A webinar whose operations were delivered gets its `hubspot_synced`
audit entry; an operation that failed for good is audited on every webinar it concerns.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, case, select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from app.db import unit_of_work
from app.delivery.claim import in_lock_order
from app.delivery.context import connections_for_portal
from app.delivery.ops import ClaimedOp, DispatchConfig, Result, Verdict
from app.delivery.values import load_people
from app.models import AuditStatus, Connection, OutboxOp, OutboxState
from app.sync.audit import AuditCode, add_audit_event, upsert_audit
from app.sync.inputs import connections_for
from app.sync.local_model import WebinarKey
from app.sync.op_kind import OpKind


@dataclass
class DispatchOutcome:
    claimed: int = 0
    done: int = 0
    waiting: int = 0
    retried: int = 0
    failed: int = 0


class Finisher:
    def __init__(self, engine: Engine, config: DispatchConfig, now: Callable[[], datetime]) -> None:
        self.engine = engine
        self.config = config
        self.now = now

    def finish(self, ops: list[ClaimedOp], results: dict[int, Result], outcome: DispatchOutcome) -> None:
        """Records every operation's result (one with none waits) and counts them in `outcome`."""
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
                            (table.c.planned_version == sent, OutboxState.DONE),
                            else_=OutboxState.PENDING,
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
                    state=OutboxState.FAILED,
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
