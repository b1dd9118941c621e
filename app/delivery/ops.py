"""What the dispatcher and its per-kind handlers share: claimed operations, results, lookups."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select
from sqlmodel import Session, col

from app.integrations.hubspot import HubSpotError
from app.models import HubSpotContact, OutboxOp, OutboxState
from app.sync.local_model import WebinarKey
from app.sync.op_kind import OpKind
from app.util import chunks


class Verdict(StrEnum):
    DONE = "done"  # sent (or nothing to send any more)
    WAIT = "wait"  # depends on something not sent yet: try again soon, no attempt counted
    RETRY = "retry"  # failed: try again with backoff (an attempt counted)


@dataclass(frozen=True)
class Result:
    verdict: Verdict
    error: str | None = None
    retryable: bool = True
    delay_s: float = 1.0
    reason: str | None = None  # audit reason when it ends as failed


DONE = Result(Verdict.DONE)


@dataclass(frozen=True)
class ClaimedOp:
    id: int
    portal_id: int
    kind: str
    target_key: str
    zoom_account_id: str
    webinar_id: str | None
    email: str | None
    version: int
    attempts: int
    created_at: datetime

    @property
    def webinar_key(self) -> WebinarKey | None:
        return (self.zoom_account_id, self.webinar_id) if self.webinar_id else None


def event_id(prefix: str, webinar_id: str, email: str) -> str:
    """Deterministic timeline event id: a replay re-sends the same id, which HubSpot refuses."""
    digest = hashlib.sha256(email.encode()).hexdigest()[:24]
    return f"{prefix}-{webinar_id}-{digest}"


def hubspot_failure(exc: HubSpotError, reason: str) -> Result:
    delay = getattr(exc, "retry_after_s", None) or 1.0
    return Result(
        Verdict.RETRY, error=str(exc)[:500], retryable=exc.retryable, delay_s=float(delay), reason=reason
    )


def excluded_emails(session: Session, portal_id: int, emails: Sequence[str]) -> set[str]:
    """Emails HubSpot facts exclude everywhere (R2-R4): their webinar operations are moot."""
    out: set[str] = set()
    for part in chunks(list(emails), 400):
        rows = session.execute(
            select(HubSpotContact).where(
                col(HubSpotContact.portal_id) == portal_id, col(HubSpotContact.email).in_(part)
            )
        ).scalars()
        for row in rows:
            if row.is_account_user or row.secondary_of is not None or row.archived:
                out.add(row.email)
    return out


def contacts_pending(session: Session, portal_id: int, emails: Sequence[str]) -> set[str]:
    out: set[str] = set()
    for part in chunks(list(emails), 400):
        rows = session.execute(
            select(col(OutboxOp.target_key)).where(
                col(OutboxOp.portal_id) == portal_id,
                col(OutboxOp.kind) == OpKind.CONTACT_REFRESH.value,
                col(OutboxOp.target_key).in_(part),
                col(OutboxOp.state) == OutboxState.PENDING.value,
            )
        ).scalars()
        out |= set(rows)
    return out
