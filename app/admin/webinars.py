"""A portal's webinars: find one, list them a page at a time, switch one's sync, read its audit log
and excluded emails (S5, A1, A3). What each shows about its sync comes from `webinar_summary`."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import and_, or_
from sqlmodel import Session, col, select

from app.admin.errors import InvalidCursor, UnknownAuditAnchor, UnknownWebinar
from app.admin.portals import portal_account_ids
from app.admin.storable import check_storable
from app.ingest.replan import enqueue_replan
from app.models import AuditEntry, ExcludedEmail, Webinar

# A cursor this service wrote is about 200 characters; a longer one is not ours (and its JSON could
# nest deep enough to exhaust the recursion limit).
MAX_CURSOR_LENGTH = 512


def find_webinar(session: Session, portal_id: int, webinar_id: str) -> Webinar:
    """One of the portal's webinars; UnknownPortal or UnknownWebinar when there is none."""
    accounts = portal_account_ids(session, portal_id)
    webinar = session.exec(
        select(Webinar).where(col(Webinar.zoom_account_id).in_(accounts), Webinar.webinar_id == webinar_id)
    ).first()
    if webinar is None:
        raise UnknownWebinar(portal_id, webinar_id)
    return webinar


@dataclass(frozen=True)
class WebinarListPage:
    webinars: list[Webinar]
    next_cursor: str | None


def encode_cursor(webinar: Webinar) -> str:
    raw = json.dumps([webinar.created_at.isoformat(), webinar.zoom_account_id, webinar.webinar_id])
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str, str]:
    """The keyset a `next_cursor` encodes, or InvalidCursor for anything this service did not
    write (the parts reach the database: NUL, a naive or overflowing time would fail there)."""
    try:
        created, account, webinar_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        if not all(isinstance(part, str) for part in (created, account, webinar_id)):
            raise TypeError("cursor parts are strings")
        if len(account) > 64 or len(webinar_id) > 32:
            raise ValueError("cursor ids too long")
        check_storable(account)
        check_storable(webinar_id)
        at = datetime.fromisoformat(created)
        if at.tzinfo is None:
            raise ValueError("cursor time without a time zone")
        return at.astimezone(UTC), account, webinar_id
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise InvalidCursor() from exc


def list_webinars(session: Session, portal_id: int, limit: int, cursor: str | None) -> WebinarListPage:
    """Newest first; keyset pagination on (created_at, account, id) descending: stable under inserts."""
    accounts = portal_account_ids(session, portal_id)
    query = select(Webinar).where(col(Webinar.zoom_account_id).in_(accounts))
    if cursor:
        created, account, webinar_id = decode_cursor(cursor)
        query = query.where(
            or_(
                col(Webinar.created_at) < created,
                and_(
                    col(Webinar.created_at) == created,
                    or_(
                        col(Webinar.zoom_account_id) < account,
                        and_(col(Webinar.zoom_account_id) == account, col(Webinar.webinar_id) < webinar_id),
                    ),
                ),
            )
        )
    rows = session.exec(
        query.order_by(
            col(Webinar.created_at).desc(),
            col(Webinar.zoom_account_id).desc(),
            col(Webinar.webinar_id).desc(),
        ).limit(limit + 1)
    ).all()
    page = list(rows[:limit])
    return WebinarListPage(page, encode_cursor(page[-1]) if len(rows) > limit else None)


def set_webinar_sync(session: Session, portal_id: int, webinar_id: str, sync_enabled: bool | None) -> Webinar:
    """The per-webinar switch (None: follow the host's default), then the webinar is planned again."""
    webinar = find_webinar(session, portal_id, webinar_id)
    webinar.sync_enabled = sync_enabled
    session.add(webinar)
    # What was skipped while sync was off fills in now (and exclusions/audit follow the new switch).
    enqueue_replan(session, webinar.zoom_account_id, webinar.webinar_id)
    session.flush()
    return webinar


def audit_entries(
    session: Session, portal_id: int, webinar_id: str, limit: int, after_id: int | None
) -> list[AuditEntry]:
    """Oldest first by `at`, then by id; `after_id`: the entries after that one (0 or None: all)."""
    webinar = find_webinar(session, portal_id, webinar_id)
    query = select(AuditEntry).where(
        AuditEntry.portal_id == portal_id,
        AuditEntry.zoom_account_id == webinar.zoom_account_id,
        AuditEntry.webinar_id == webinar.webinar_id,
    )
    if after_id:
        anchor = session.exec(query.where(AuditEntry.id == after_id)).first()
        if anchor is None:
            raise UnknownAuditAnchor(after_id)
        query = query.where(
            or_(
                col(AuditEntry.at) > anchor.at,
                and_(col(AuditEntry.at) == anchor.at, col(AuditEntry.id) > after_id),
            )
        )
    return list(session.exec(query.order_by(col(AuditEntry.at), col(AuditEntry.id)).limit(limit)).all())


def excluded_emails(session: Session, portal_id: int, webinar_id: str) -> list[ExcludedEmail]:
    webinar = find_webinar(session, portal_id, webinar_id)
    rows = session.exec(
        select(ExcludedEmail)
        .where(
            ExcludedEmail.portal_id == portal_id,
            ExcludedEmail.zoom_account_id == webinar.zoom_account_id,
            ExcludedEmail.webinar_id == webinar.webinar_id,
        )
        .order_by(col(ExcludedEmail.reason), col(ExcludedEmail.person_key))
    ).all()
    return list(rows)
