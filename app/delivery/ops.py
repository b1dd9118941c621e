"""What the dispatcher and its per-kind handlers share: the config, claimed operations, results, lookups."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ColumnElement, select
from sqlmodel import Session, col

from app.integrations.hubspot import HubSpotError
from app.models import HubSpotContact, OutboxOp, OutboxState
from app.sync.local_model import WebinarKey
from app.sync.op_kind import OpKind
from app.util import chunks


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
    # A person's operations (claim.HELD_KINDS) are held back while Zoom's events still wait in the
    # inbox (a burst: each would be sent again after every change), but never longer than this.
    hold_max_s: float = 30.0


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
    """The emails whose contact refresh is still pending (their contact is written in a coming round)."""
    return _targets(
        session, portal_id, OpKind.CONTACT_REFRESH, emails, col(OutboxOp.state) == OutboxState.PENDING
    )


def marketing_events_done(session: Session, portal_id: int, keys: set[WebinarKey]) -> set[WebinarKey]:
    """The webinars whose marketing event HubSpot has (sent once at least): states can go on it."""
    targets = {f"{a}:{w}": (a, w) for a, w in keys}
    done = _targets(
        session, portal_id, OpKind.MARKETING_EVENT, sorted(targets), col(OutboxOp.done_version) > 0
    )
    return {targets[t] for t in done}


def _targets(
    session: Session,
    portal_id: int,
    kind: OpKind,
    targets: Sequence[str],
    condition: ColumnElement[bool],
) -> set[str]:
    """Which of `targets` have an operation of `kind` on the portal that meets `condition`."""
    out: set[str] = set()
    for part in chunks(list(targets), 400):
        rows = session.execute(
            select(col(OutboxOp.target_key)).where(
                col(OutboxOp.portal_id) == portal_id,
                col(OutboxOp.kind) == kind.value,
                col(OutboxOp.target_key).in_(part),
                condition,
            )
        ).scalars()
        out |= set(rows)
    return out
