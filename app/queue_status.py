"""Counts behind GET /api/v1/status."""

from __future__ import annotations

from sqlalchemy import func
from sqlmodel import Session, col, select

from app.models import InboxEvent, InboxState


def inbox_counts(session: Session) -> dict[str, int]:
    rows = session.exec(select(InboxEvent.state, func.count()).group_by(col(InboxEvent.state))).all()
    counts = {state.value: 0 for state in InboxState}
    counts.update({state: int(n) for state, n in rows})
    return counts


def status_counts(session: Session) -> dict[str, object]:
    inbox = inbox_counts(session)
    outbox: dict[str, int] = {}
    pending = inbox[InboxState.PENDING] + outbox.get("pending", 0)
    return {
        "pending": pending,
        "failed": inbox[InboxState.FAILED] + outbox.get("failed", 0),
        "dead": inbox[InboxState.DEAD] + outbox.get("dead", 0),
        "inbox": inbox,
        "outbox": outbox,
    }
