"""Queue-side requests to the inbox: re-plan a whole webinar, put failed events back.

A re-plan is an inbox row of its own (`REPLAN_EVENT`), so it is processed in order with the Zoom
events and in the same transaction as their effects (app.sync.inbox_processor).
"""

from __future__ import annotations

import json
import uuid

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from app.db import unit_of_work, utcnow
from app.models import InboxEvent, InboxState

REPLAN_EVENT = "internal.replan"


def enqueue_replan(session: Session, account_id: str, webinar_id: str) -> None:
    """Ask the worker to plan a whole webinar again (after a settings change, Sync now, replay)."""
    now = utcnow()
    session.add(
        InboxEvent(
            delivery_key=f"replan:{uuid.uuid4().hex}",
            event=REPLAN_EVENT,
            zoom_account_id=account_id,
            webinar_id=webinar_id,
            raw_body=json.dumps({"account_id": account_id, "webinar_id": webinar_id}).encode(),
            received_at=now,
            next_attempt_at=now,
        )
    )


def replan_key(raw: bytes) -> tuple[str, str] | None:
    """(account id, webinar id) of a stored re-plan request; None if its body is unreadable."""
    try:
        body = json.loads(raw)
        return (str(body["account_id"]), str(body["webinar_id"]))
    except (ValueError, KeyError, TypeError):
        return None


def requeue_failed(engine: Engine, webinar_id: str | None = None) -> int:
    """Put failed events back in the queue (after a fix, or from Sync now)."""
    with unit_of_work(engine) as session:
        stmt = update(InboxEvent).where(col(InboxEvent.state) == InboxState.FAILED)
        if webinar_id is not None:
            stmt = stmt.where(col(InboxEvent.webinar_id) == webinar_id)
        result = session.execute(
            stmt.values(state=InboxState.PENDING, attempts=0, next_attempt_at=utcnow(), processed_at=None)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
