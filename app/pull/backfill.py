"""Backfill: every webinar of the connected Zoom account in a date range, pulled like a Sync now.

A backfill is a `backfill` job holding the list of webinars it found; each webinar is a
`backfill_item` child job (unique per backfill and webinar). Finished items are never pulled
again, so a backfill interrupted half-way resumes where it stopped: run the same range again
(CLI) or leave the items to the workers (API). What was pulled goes through the normal pipeline,
so the settings decide what reaches HubSpot.

Zoom lists a user's webinars with `GET /users/{userId}/webinars`; which past webinars it still
lists is not documented (UNVERIFIED), so the range filter runs here on each webinar's start time.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from app.db import unit_of_work, utcnow
from app.integrations.zoom.models import WebinarSummary, ZoomUser
from app.models import JobState, SyncJob
from app.pull.schedule import JobKind, _insert, new_job_id


class ZoomListApi(Protocol):
    async def list_users(self) -> list[ZoomUser]: ...

    async def list_webinars(self, user_id: str) -> list[WebinarSummary]: ...


@dataclass(frozen=True)
class Range:
    start: date
    end: date  # inclusive

    def contains(self, moment: datetime | None) -> bool:
        if moment is None:
            return False
        day = moment.astimezone(UTC).date()
        return self.start <= day <= self.end

    @property
    def key(self) -> str:
        return f"{self.start.isoformat()}..{self.end.isoformat()}"


def parse_range(start: str, end: str) -> Range:
    """ISO dates; the end is inclusive. Raises ValueError with a clear message."""
    try:
        first, last = date.fromisoformat(start), date.fromisoformat(end)
    except ValueError as exc:
        raise ValueError(f"dates must be YYYY-MM-DD: {exc}") from None
    if last < first:
        raise ValueError(f"the range ends ({last}) before it starts ({first})")
    if (last - first).days > 3660:
        raise ValueError("the range is longer than ten years")
    return Range(first, last)


async def find_webinars(
    zoom: ZoomListApi, period: Range, users: list[str] | None = None
) -> list[dict[str, Any]]:
    """The account's webinars starting in the range, oldest first, each once."""
    user_ids = users or [u.id for u in await zoom.list_users()]
    found: dict[str, dict[str, Any]] = {}
    for user_id in user_ids:
        for webinar in await zoom.list_webinars(user_id):
            if period.contains(webinar.start_time):
                found[webinar.id] = {
                    "webinar_id": webinar.id,
                    "topic": webinar.topic,
                    "start_time": webinar.start_time.isoformat() if webinar.start_time else None,
                }
    return sorted(found.values(), key=lambda w: (w["start_time"] or "", w["webinar_id"]))


def open_backfill(
    engine: Engine, portal_id: int, account_id: str, period: Range, *, users: list[str] | None = None
) -> tuple[SyncJob, bool]:
    """The unfinished backfill of this range (resumed), or a new one. Returns (job, resumed)."""
    with unit_of_work(engine) as session:
        return open_backfill_in(session, portal_id, account_id, period, users=users)


def open_backfill_in(
    session: Session,
    portal_id: int,
    account_id: str,
    period: Range,
    *,
    users: list[str] | None = None,
    queued: bool = False,
) -> tuple[SyncJob, bool]:
    """As `open_backfill`, in the caller's transaction; `queued`: for the workers to run."""
    key = f"backfill:{portal_id}:{account_id}:{period.key}"
    existing = session.execute(select(SyncJob).where(col(SyncJob.active_key) == key)).scalar_one_or_none()
    if existing is not None:
        return existing, True
    now = utcnow()
    job = SyncJob(
        id=new_job_id(),
        kind=JobKind.BACKFILL,
        portal_id=portal_id,
        zoom_account_id=account_id,
        state=JobState.QUEUED if queued else JobState.RUNNING,
        active_key=key,
        params={"from": period.start.isoformat(), "to": period.end.isoformat(), "users": users or []},
        started_at=None if queued else now,
    )
    session.add(job)
    session.flush()
    return job, False


def record_webinars(engine: Engine, job: SyncJob, webinars: list[dict[str, Any]]) -> list[SyncJob]:
    """Store the list and one item per webinar (existing items are kept: that is the resumption)."""
    with unit_of_work(engine) as session:
        row = session.get(SyncJob, job.id)
        if row is None:
            raise LookupError(f"backfill job {job.id} is gone")
        row.params = {**row.params, "webinars": webinars}
        for w in webinars:
            values = {
                "id": new_job_id(),
                "kind": JobKind.BACKFILL_ITEM,
                "portal_id": job.portal_id,
                "zoom_account_id": job.zoom_account_id,
                "webinar_id": w["webinar_id"],
                "parent_id": job.id,
                "state": JobState.QUEUED,
                "dedupe_key": f"backfill:{job.id}:{w['webinar_id']}",
                "params": {},
                "counts": {},
                "attempts": 0,
                # Far in the future: the CLI runs its items itself; the API path releases them.
                "run_after": utcnow() + timedelta(days=3650),
                "created_at": utcnow(),
            }
            session.execute(_insert(session).values(**values).on_conflict_do_nothing())
        session.flush()
        items = (
            session.execute(
                select(SyncJob).where(col(SyncJob.parent_id) == job.id).order_by(col(SyncJob.created_at))
            )
            .scalars()
            .all()
        )
        order = {w["webinar_id"]: i for i, w in enumerate(webinars)}
        return sorted(items, key=lambda j: order.get(j.webinar_id or "", 0))


def release_items(engine: Engine, job: SyncJob) -> None:
    """Let the workers run the items (the API path): due now."""
    with unit_of_work(engine) as session:
        for item in session.execute(
            select(SyncJob).where(col(SyncJob.parent_id) == job.id, col(SyncJob.state) == JobState.QUEUED)
        ).scalars():
            item.run_after = utcnow()


def progress(session: Session, job: SyncJob) -> dict[str, Any]:
    states = Counter(
        session.execute(select(col(SyncJob.state)).where(col(SyncJob.parent_id) == job.id)).scalars().all()
    )
    total = len(job.params.get("webinars", []))
    return {
        "webinars": total,
        "done": states.get(JobState.DONE, 0),
        "failed": states.get(JobState.FAILED, 0),
        "remaining": states.get(JobState.QUEUED, 0) + states.get(JobState.RUNNING, 0),
    }


def finish_if_complete(engine: Engine, job_id: str) -> bool:
    """Close the backfill once no item is left to run; True when it is finished."""
    with unit_of_work(engine) as session:
        row = session.get(SyncJob, job_id)
        if row is None:
            return True
        counts = progress(session, row)
        row.counts = counts
        if counts["remaining"] or "webinars" not in row.params:
            return False
        row.state = JobState.DONE if not counts["failed"] else JobState.FAILED
        row.error = f"{counts['failed']} webinars could not be pulled" if counts["failed"] else None
        row.active_key = None
        row.finished_at = utcnow()
        return True
