"""Pulls from Zoom asked for through the admin API: Sync now (A2), a backfill, and a job's state."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from sqlmodel import Session

from app.admin.errors import InvalidRange, NoZoomApiAccess, UnknownSyncJob
from app.admin.portals import portal_account_ids
from app.admin.webinars import find_webinar
from app.config import Settings
from app.models import SyncJob
from app.pull.backfill import open_backfill_in, parse_range
from app.pull.schedule import request_sync_now
from app.sync.inputs import accounts_with_zoom_app

SYNC_NOW_NEEDS_ZOOM = (
    "Sync now needs Zoom API access: set ZOOM_ACCOUNT_ID, ZOOM_CLIENT_ID and ZOOM_CLIENT_SECRET"
    " (or the connection's zoom_client_id and zoom_client_secret)"
)
BACKFILL_NEEDS_ZOOM = "backfill needs Zoom API access for this portal's Zoom account"


def zoom_api_accounts(session: Session, settings: Settings, accounts: Sequence[str]) -> set[str]:
    """Those of `accounts` the service can call Zoom's REST API for: the env account with
    ZOOM_CLIENT_ID / ZOOM_CLIENT_SECRET, or one whose app is stored on a connection."""
    usable = accounts_with_zoom_app(session, accounts)
    env_account = settings.zoom_account_id
    if settings.has_zoom_api and env_account is not None and env_account in accounts:
        usable.add(env_account)
    return usable


def request_sync(
    session: Session, settings: Settings, portal_id: int, webinar_id: str
) -> tuple[SyncJob, bool]:
    """(the Sync now job, whether it is new): one already queued or running is shared."""
    webinar = find_webinar(session, portal_id, webinar_id)
    if not zoom_api_accounts(session, settings, [webinar.zoom_account_id]):
        raise NoZoomApiAccess(SYNC_NOW_NEEDS_ZOOM)
    return request_sync_now(session, portal_id, webinar.zoom_account_id, webinar.webinar_id)


def start_backfill(
    session: Session, settings: Settings, portal_id: int, start: date, end: date, users: Sequence[str]
) -> tuple[SyncJob, bool]:
    """(the backfill job, whether an unfinished one for the same range was resumed); queued for the
    job loop. `users`: Zoom user ids or emails, empty for all users."""
    accounts = portal_account_ids(session, portal_id)
    usable = zoom_api_accounts(session, settings, accounts)
    if not usable:
        raise NoZoomApiAccess(BACKFILL_NEEDS_ZOOM)
    # The env account first (as before several connections), else the first one with an app.
    account = next(a for a in [settings.zoom_account_id, *accounts] if a in usable)
    try:
        period = parse_range(start.isoformat(), end.isoformat())
    except ValueError as exc:
        raise InvalidRange(str(exc)) from None
    return open_backfill_in(session, portal_id, account, period, users=list(users) or None, queued=True)


def find_sync_job(session: Session, portal_id: int, job_id: str) -> SyncJob:
    portal_account_ids(session, portal_id)
    job = session.get(SyncJob, job_id)
    if job is None or job.portal_id != portal_id:
        raise UnknownSyncJob(portal_id, job_id)
    return job
