"""The audit log's writers: one current entry per webinar and cause (with counts), so the log stays
readable and replays converge, plus one-off events (`add_audit_event`)."""

from __future__ import annotations

from collections import Counter
from enum import StrEnum
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from app.db import utcnow
from app.models import (
    AttendanceMark,
    AuditEntry,
    AuditStatus,
    Connection,
    ExcludedEmail,
    OutboxOp,
    Recording,
    Registration,
    RegistrationStatus,
    Webinar,
)
from app.sync.inputs import connections_for, load_settings, webinar_skip_reason
from app.sync.op_kind import OpKind
from app.sync.rules import EmailExclusion, RecordingSkipReason, WebinarSkipReason


class AuditCode(StrEnum):
    WEBINAR_SYNCED = "webinar_synced"
    SYNC_DISABLED = "sync_disabled"
    UNSUPPORTED_WEBINAR = "unsupported_webinar"
    PARTICIPANTS_NOT_SYNCED = "participants_not_synced"
    EMAILS_EXCLUDED = "emails_excluded"
    SYNC_ERROR = "sync_error"
    RECORDING_NOT_SYNCED = "recording_not_synced"
    WEBINAR_DATA_NOT_SYNCED = "webinar_data_not_synced"
    RECORDING_SYNCED = "recording_synced"


RECORDING_AUDIT_KEY = "recording"


TRANSCRIPT_AUDIT_KEY = "transcript"


def audit_recording_settings_off(session: Session, conn: Connection, webinar_id: str) -> None:
    upsert_audit(
        session,
        conn,
        webinar_id,
        key=RECORDING_AUDIT_KEY,
        code=AuditCode.RECORDING_NOT_SYNCED,
        status=AuditStatus.WARNING,
        message="recording and transcript not synced: the recording settings do not include this webinar",
        details={"reason": RecordingSkipReason.SETTINGS_OFF.value},
    )


def refresh_webinar_audit(session: Session, webinar: Webinar) -> None:
    """Bring the webinar's aggregated audit entries (one per cause, with counts) up to date.

    Kept out of the worker's batch transaction on purpose: these rows are shared by every batch of
    a webinar, and updating them inside the batch held their lock until commit, serialising workers.
    The worker refreshes them after its batches (throttled), inside the batch that empties the
    inbox, and once it is idle: whoever sees nothing pending reads current counts, and the
    audit-log endpoint only reads.
    """
    for conn in connections_for(session, webinar.zoom_account_id):
        settings = load_settings(session, conn.portal_id)
        skip = webinar_skip_reason(session, settings, webinar)
        if skip is not None:
            _audit_skipped(session, conn, webinar, skip)
        else:
            _audit_synced(session, conn, webinar)


def upsert_audit(
    session: Session,
    conn: Connection,
    webinar_id: str | None,
    *,
    code: str,
    status: AuditStatus,
    message: str,
    details: dict[str, Any],
    key: str | None = None,
) -> None:
    """Keep one current entry per webinar and `key` (default: the code). Entries sharing a key
    replace each other, so e.g. "recording" moves from `recording_not_synced` to synced."""
    key = key or code
    entry = session.exec(
        select(AuditEntry).where(
            AuditEntry.portal_id == conn.portal_id,
            AuditEntry.zoom_account_id == conn.zoom_account_id,
            AuditEntry.webinar_id == webinar_id,
            AuditEntry.aggregate_key == key,
        )
    ).first()
    if entry is None:
        session.add(
            AuditEntry(
                portal_id=conn.portal_id,
                zoom_account_id=conn.zoom_account_id,
                webinar_id=webinar_id,
                status=status,
                code=code,
                message=message,
                details=details,
                aggregate_key=key,
            )
        )
    elif entry.details != details or entry.message != message or entry.status != status or entry.code != code:
        entry.code = code
        entry.details = details
        entry.message = message
        entry.status = status
        entry.at = utcnow()


def add_audit_event(
    session: Session,
    conn: Connection,
    webinar_id: str | None,
    *,
    code: str,
    status: AuditStatus,
    message: str,
    details: dict[str, Any],
) -> None:
    session.add(
        AuditEntry(
            portal_id=conn.portal_id,
            zoom_account_id=conn.zoom_account_id,
            webinar_id=webinar_id,
            status=status,
            code=code,
            message=message,
            details=details,
        )
    )


def webinar_people_counts(session: Session, webinar: Webinar) -> dict[str, int]:
    account, wid = webinar.zoom_account_id, webinar.webinar_id
    statuses = Counter(
        dict(
            session.exec(
                select(Registration.status, func.count())
                .where(Registration.zoom_account_id == account, Registration.webinar_id == wid)
                .group_by(col(Registration.status))
            ).all()
        )
    )
    attendees = session.exec(
        select(func.count(func.distinct(AttendanceMark.person_key))).where(
            AttendanceMark.zoom_account_id == account,
            AttendanceMark.webinar_id == wid,
            AttendanceMark.kind == "join",
        )
    ).one()
    return {
        "registrants": sum(statuses.values()),
        "approved": statuses.get(RegistrationStatus.APPROVED, 0),
        "pending": statuses.get(RegistrationStatus.PENDING, 0),
        "cancelled": statuses.get(RegistrationStatus.CANCELLED, 0),
        "denied": statuses.get(RegistrationStatus.DENIED, 0),
        "attendees": int(attendees),
    }


def exclusion_counts(
    session: Session, portal_id: int, webinar: Webinar
) -> tuple[dict[str, int], dict[str, int]]:
    """(emails excluded by reason, participants not synced by reason) for one webinar."""
    rows = session.exec(
        select(ExcludedEmail.reason, ExcludedEmail.role, func.count())
        .where(
            ExcludedEmail.portal_id == portal_id,
            ExcludedEmail.zoom_account_id == webinar.zoom_account_id,
            ExcludedEmail.webinar_id == webinar.webinar_id,
        )
        .group_by(col(ExcludedEmail.reason), col(ExcludedEmail.role))
    ).all()
    emails: Counter[str] = Counter()
    participants: Counter[str] = Counter()
    for reason, role, n in rows:
        if role == "attendance" and reason == EmailExclusion.NO_EMAIL:
            participants[reason] += int(n)  # M4: guests whose email Zoom removed
        else:
            emails[reason] += int(n)
    return dict(sorted(emails.items())), dict(sorted(participants.items()))


def _audit_synced(session: Session, conn: Connection, webinar: Webinar) -> None:
    session.flush()
    people = webinar_people_counts(session, webinar)
    emails, participants = exclusion_counts(session, conn.portal_id, webinar)
    planned = session.exec(
        select(func.count()).where(
            OutboxOp.portal_id == conn.portal_id,
            OutboxOp.kind == OpKind.MARKETING_STATE.value,
            OutboxOp.webinar_id == webinar.webinar_id,
            OutboxOp.zoom_account_id == webinar.zoom_account_id,
        )
    ).one()
    upsert_audit(
        session,
        conn,
        webinar.webinar_id,
        code=AuditCode.WEBINAR_SYNCED,
        status=AuditStatus.SUCCESS,
        message=(
            f"{people['registrants']} registrations and {people['attendees']} attendees received; "
            f"{planned} contacts planned for HubSpot"
        ),
        details={**people, "contacts_planned": int(planned)},
    )
    if emails:
        upsert_audit(
            session,
            conn,
            webinar.webinar_id,
            code=AuditCode.EMAILS_EXCLUDED,
            status=AuditStatus.WARNING,
            message=f"{sum(emails.values())} emails excluded: "
            + ", ".join(f"{n} {reason.replace('_', ' ')}" for reason, n in emails.items()),
            details={"counts": emails},
        )
    if participants:
        upsert_audit(
            session,
            conn,
            webinar.webinar_id,
            code=AuditCode.PARTICIPANTS_NOT_SYNCED,
            status=AuditStatus.WARNING,
            message=f"{sum(participants.values())} participants not synced (no email from Zoom)",
            details={"counts": participants},
        )


_SKIP_MESSAGES = {
    WebinarSkipReason.GLOBAL_SYNC_OFF: "global sync is off for this HubSpot account",
    WebinarSkipReason.WEBINAR_SYNC_OFF: "the 'sync webinar data' setting is off",
    WebinarSkipReason.HOST_EXCLUDED_DOMAIN: "the host's email domain is in the exclusion domains",
    WebinarSkipReason.HOST_DEFAULT_OFF: "the host does not sync newly scheduled webinars by default",
    WebinarSkipReason.WEBINAR_OFF: "sync is turned off for this webinar",
}


def _audit_skipped(session: Session, conn: Connection, webinar: Webinar, skip: WebinarSkipReason) -> None:
    people = webinar_people_counts(session, webinar)
    has_recording = session.exec(
        select(Recording.instance_uuid).where(
            Recording.zoom_account_id == webinar.zoom_account_id, Recording.webinar_id == webinar.webinar_id
        )
    ).first()
    if has_recording is not None:
        audit_recording_settings_off(session, conn, webinar.webinar_id)
    if skip is WebinarSkipReason.UNSUPPORTED_WEBINAR:
        upsert_audit(
            session,
            conn,
            webinar.webinar_id,
            code=AuditCode.UNSUPPORTED_WEBINAR,
            status=AuditStatus.WARNING,
            message="Zoom Events / Zoom Sessions webinars are not supported; nothing is synced",
            details={"reason": webinar.unsupported_reason, **people},
        )
        return
    upsert_audit(
        session,
        conn,
        webinar.webinar_id,
        code=AuditCode.SYNC_DISABLED,
        status=AuditStatus.WARNING,
        message=f"not synced: {_SKIP_MESSAGES[skip]}; the data is kept and syncs once settings allow it",
        details={"reason": skip.value, **people},
    )
