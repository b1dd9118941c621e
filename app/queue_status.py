"""Counts behind GET /api/v1/status."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from app.models import InboxEvent, InboxState, OutboxOp, OutboxState


def _counts(session: Session, column: Any, states: type[InboxState] | type[OutboxState]) -> dict[str, int]:
    rows = session.exec(select(column, func.count()).group_by(column)).all()
    counts = {state.value: 0 for state in states}
    counts.update({state: int(n) for state, n in rows})
    return counts


def inbox_counts(session: Session) -> dict[str, int]:
    return _counts(session, col(InboxEvent.state), InboxState)


def outbox_counts(session: Session) -> dict[str, int]:
    return _counts(session, col(OutboxOp.state), OutboxState)


def status_counts(session: Session) -> dict[str, object]:
    """`pending` is everything received or planned and not finished: 0 means all work is done."""
    inbox = inbox_counts(session)
    outbox = outbox_counts(session)
    return {
        "pending": inbox[InboxState.PENDING] + outbox[OutboxState.PENDING],
        "failed": inbox[InboxState.FAILED] + outbox[OutboxState.FAILED],
        "dead": inbox[InboxState.DEAD],
        "inbox": inbox,
        "outbox": outbox,
    }
