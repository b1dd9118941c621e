"""Counts behind GET /api/v1/status."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from app.db import utcnow
from app.delivery.health import configured_portals, portal_health
from app.models import (
    ActionExecution,
    ActionState,
    AuthMode,
    CallbackState,
    HubSpotPortal,
    InboxEvent,
    InboxState,
    JobState,
    OutboxOp,
    OutboxState,
    SyncJob,
    TimelineBackend,
)


def _counts(session: Session, column: Any, states: type[InboxState] | type[OutboxState]) -> dict[str, int]:
    rows = session.exec(select(column, func.count()).group_by(column)).all()
    counts = {state.value: 0 for state in states}
    counts.update({state: int(n) for state, n in rows})
    return counts


def inbox_counts(session: Session) -> dict[str, int]:
    return _counts(session, col(InboxEvent.state), InboxState)


def outbox_counts(session: Session) -> dict[str, int]:
    return _counts(session, col(OutboxOp.state), OutboxState)


def action_counts(session: Session) -> dict[str, int]:
    """Workflow actions waiting: `blocked` for Zoom, `callbacks` to send to HubSpot, `callbacks_failed`."""
    waiting = session.exec(select(func.count()).where(col(ActionExecution.state) != ActionState.DONE)).one()
    rows = session.exec(
        select(col(ActionExecution.callback_state), func.count())
        .where(col(ActionExecution.state) == ActionState.DONE)
        .group_by(col(ActionExecution.callback_state))
    ).all()
    by_state = {state: int(n) for state, n in rows}
    return {
        "blocked": int(waiting),
        "callbacks": by_state.get(CallbackState.PENDING, 0),
        "callbacks_failed": by_state.get(CallbackState.FAILED, 0),
    }


def job_counts(session: Session) -> dict[str, int]:
    """Pulls from Zoom: `due` (queued, runnable now), `running`, `scheduled` (later, e.g. the
    reconciliation minutes after a webinar ended), `failed`."""
    now = utcnow()
    active = [JobState.QUEUED, JobState.RUNNING]
    by_state = dict(
        session.exec(
            select(col(SyncJob.state), func.count())
            .where(col(SyncJob.state).in_([*active, JobState.FAILED]))
            .group_by(col(SyncJob.state))
        ).all()
    )
    due = session.exec(
        select(func.count()).where(col(SyncJob.state) == JobState.QUEUED, col(SyncJob.run_after) <= now)
    ).one()
    queued = int(by_state.get(JobState.QUEUED, 0))
    counts = {
        "due": int(due),
        "running": int(by_state.get(JobState.RUNNING, 0)),
        "scheduled": queued - int(due),
        "failed": int(by_state.get(JobState.FAILED, 0)),
    }
    return counts


def portal_auth_status(row: HubSpotPortal | None) -> dict[str, object]:
    """How a portal authenticates and whether it waits for a re-install (never a token). A portal
    without a row is the env portal on HUBSPOT_ACCESS_TOKEN: static."""
    if row is None:
        return {
            "auth_mode": AuthMode.STATIC.value,
            "needs_reinstall": False,
            "reinstall_reason": None,
            "timeline_backend": None,
        }
    return {
        "auth_mode": AuthMode(row.auth_mode).value,
        "needs_reinstall": row.needs_reinstall,
        "reinstall_reason": row.reinstall_reason,
        "timeline_backend": TimelineBackend(row.timeline_backend).value if row.timeline_backend else None,
    }


def portals_status(session: Session, env_portal_id: int | None) -> dict[str, dict[str, object]]:
    """Per configured portal, the health of its HubSpot and Zoom calls and how it authenticates
    (keyed by the id as text)."""
    portals = configured_portals(session, env_portal_id)
    rows = {
        row.portal_id: row
        for row in session.exec(select(HubSpotPortal).where(col(HubSpotPortal.portal_id).in_(portals))).all()
    }
    return {
        str(portal_id): {
            **{service: asdict(v) for service, v in views.items()},
            **portal_auth_status(rows.get(portal_id)),
        }
        for portal_id, views in portal_health(session, portals, utcnow()).items()
    }


def status_counts(session: Session) -> dict[str, object]:
    """`pending` is everything received or planned and not finished: 0 means all work is done."""
    inbox = inbox_counts(session)
    outbox = outbox_counts(session)
    actions = action_counts(session)
    jobs = job_counts(session)
    return {
        "pending": inbox[InboxState.PENDING]
        + outbox[OutboxState.PENDING]
        + actions["blocked"]
        + actions["callbacks"]
        + jobs["due"]
        + jobs["running"],
        "failed": inbox[InboxState.FAILED] + outbox[OutboxState.FAILED] + actions["callbacks_failed"],
        "dead": inbox[InboxState.DEAD],
        "inbox": inbox,
        "outbox": outbox,
        "actions": actions,
        "sync_jobs": jobs,
    }
