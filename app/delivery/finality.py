"""Reads what `app.sync.finality` decides on: whether a webinar's attendance can still change."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select
from sqlmodel import Session, col

from app.models import AttendanceMark, InboxEvent, InboxState, JobState, SyncJob
from app.sync.finality import AttendanceClock
from app.sync.local_model import WebinarKey, load_webinars


def attendance_clocks(session: Session, keys: Iterable[WebinarKey]) -> dict[WebinarKey, AttendanceClock]:
    """One clock per webinar: a handful of indexed queries each, for the few webinars of a round."""
    wanted = sorted(set(keys))
    webinars = load_webinars(session, wanted)
    clocks: dict[WebinarKey, AttendanceClock] = {}
    for key in wanted:
        account_id, webinar_id = key
        webinar = webinars.get(key)
        last_mark = session.execute(
            select(func.max(col(AttendanceMark.received_at))).where(
                col(AttendanceMark.zoom_account_id) == account_id,
                col(AttendanceMark.webinar_id) == webinar_id,
            )
        ).scalar()
        inbox = session.execute(
            select(col(InboxEvent.id))
            .where(
                col(InboxEvent.webinar_id) == webinar_id,
                col(InboxEvent.zoom_account_id) == account_id,
                col(InboxEvent.state) == InboxState.PENDING,
            )
            .limit(1)
        ).first()
        pull = session.execute(
            select(col(SyncJob.id))
            .where(
                col(SyncJob.webinar_id) == webinar_id,
                col(SyncJob.zoom_account_id) == account_id,
                col(SyncJob.state).in_([JobState.QUEUED, JobState.RUNNING]),
            )
            .limit(1)
        ).first()
        clocks[key] = AttendanceClock(
            ended=webinar is not None and webinar.actual_end_at is not None,
            ended_seen_at=webinar.ended_seen_at if webinar is not None else None,
            last_mark_at=last_mark,
            inbox_pending=inbox is not None,
            pull_pending=pull is not None,
        )
    return clocks
