"""From the local model to decisions: planned HubSpot operations, exclusions and audit entries.

The rules are pure (`app.sync.rules`); this module gathers their inputs from the database and
writes their outputs. It plans what to do, never the values: the dispatcher reads current values
when it sends (late materialisation), so many changes to one contact make one operation.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from sqlalchemy import bindparam, case, delete, func
from sqlmodel import Session, col, select

from app.db import dialect_insert, utcnow
from app.models import (
    AttendanceMark,
    AuditEntry,
    AuditStatus,
    Connection,
    ExcludedEmail,
    OutboxOp,
    OutboxState,
    PortalSettings,
    Recording,
    Registration,
    Webinar,
    ZoomUser,
)
from app.sync.rules import (
    EmailExclusion,
    HostFacts,
    HubSpotFacts,
    PortalRules,
    RecordingSkipReason,
    WebinarFacts,
    WebinarSkipReason,
    email_decision,
    recording_decision,
    webinar_decision,
)
from app.util import chunks

WebinarKey = tuple[str, str]
HubSpotFactsSource = Callable[[Session, int, Iterable[str]], Mapping[str, HubSpotFacts]]


class OpKind(StrEnum):
    CONTACT_REFRESH = "contact_refresh"  # upsert contact + P1-P4, values read when sent
    REGISTRATION_EVENT = "registration_event"  # E3 timeline event
    ATTENDANCE_EVENT = "attendance_event"  # E2 timeline event, once the webinar ended
    MARKETING_EVENT = "marketing_event"  # ME1: the event itself (create/update)
    MARKETING_STATE = "marketing_state"  # ME1: a contact's register/attend/cancel state
    MARKETING_COMPLETE = "marketing_complete"  # ME1: mark the event complete after it ended
    RECORDING_CALL = "recording_call"  # RC1/E1: call record + associations + recordable events


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


def no_hubspot_facts(session: Session, portal_id: int, emails: Iterable[str]) -> Mapping[str, HubSpotFacts]:
    """Until HubSpot has been consulted nothing is known; the dispatcher re-checks before sending."""
    return {}


@dataclass
class Person:
    """Someone who registered for or attended one webinar."""

    key: str  # the email, or (no email) a participant key such as "n:guest name"
    email: str | None
    raw_email: str | None
    registration_status: str | None = None
    attended: bool = False

    @property
    def role(self) -> str:
        return "registration" if self.registration_status is not None else "attendance"


@dataclass
class PlanScope:
    """What to (re)plan for one webinar."""

    registrant_ids: set[str] = field(default_factory=set)
    attendee_keys: set[str] = field(default_factory=set)
    everyone: bool = False
    webinar_changed: bool = False
    recordings: bool = False  # a recording or transcript arrived


@dataclass
class PlanResult:
    ops: int = 0
    excluded: int = 0


def portal_rules(settings: PortalSettings) -> PortalRules:
    return PortalRules(
        global_sync_enabled=settings.global_sync_enabled,
        webinar_sync_enabled=settings.webinar_sync_enabled,
        exclusion_domains=frozenset(settings.exclusion_domains or ()),
        contact_exclusion_domains=frozenset(settings.contact_exclusion_domains or ()),
        recording_sync=settings.recording_sync,
        recording_sync_users=frozenset(settings.recording_sync_users or ()),
        recording_exclusion_domains=frozenset(settings.recording_exclusion_domains or ()),
    )


def host_facts(session: Session, webinar: Webinar, host_id: str | None = None) -> HostFacts:
    host_id = host_id or webinar.host_id
    user = session.get(ZoomUser, (webinar.zoom_account_id, host_id)) if host_id else None
    if user is None:
        return HostFacts(
            zoom_user_id=host_id or "",
            email=None,
            sync_new_webinars_by_default=True,
            sync_recordings=False,
        )
    return HostFacts(
        zoom_user_id=user.zoom_user_id,
        email=user.email,
        sync_new_webinars_by_default=user.sync_new_webinars_by_default,
        sync_recordings=user.sync_recordings,
    )


def webinar_skip_reason(
    session: Session, settings: PortalSettings, webinar: Webinar
) -> WebinarSkipReason | None:
    return webinar_decision(
        portal_rules(settings),
        host_facts(session, webinar),
        WebinarFacts(
            sync_enabled=webinar.sync_enabled,
            unsupported_reason=webinar.unsupported_reason,
            host_default_sync=webinar.host_default_sync,
        ),
    )


def connections_for(session: Session, account_id: str) -> list[Connection]:
    return list(session.exec(select(Connection).where(Connection.zoom_account_id == account_id)).all())


def load_settings(session: Session, portal_id: int) -> PortalSettings:
    """The portal's settings row, created with the defaults when missing (for writers)."""
    settings = session.get(PortalSettings, portal_id)
    if settings is None:
        settings = PortalSettings(portal_id=portal_id)
        session.add(settings)
        session.flush()
    return settings


def gather_people(session: Session, webinar: Webinar, scope: PlanScope) -> list[Person]:
    account, wid = webinar.zoom_account_id, webinar.webinar_id
    reg_query = select(Registration).where(
        Registration.zoom_account_id == account, Registration.webinar_id == wid
    )
    mark_query = (
        select(AttendanceMark.person_key, AttendanceMark.email, AttendanceMark.registrant_id)
        .where(
            AttendanceMark.zoom_account_id == account,
            AttendanceMark.webinar_id == wid,
            AttendanceMark.kind == "join",
        )
        .distinct()
    )
    registrations: dict[str, Registration] = {}
    marks: list[tuple[str, str | None, str | None]] = []
    if scope.everyone:
        registrations = {r.registrant_id: r for r in session.exec(reg_query).all()}
        marks = [(m[0], m[1], m[2]) for m in session.exec(mark_query).all()]
    else:
        for chunk in chunks(sorted(scope.attendee_keys), 400):
            found = session.exec(mark_query.where(col(AttendanceMark.person_key).in_(chunk))).all()
            marks.extend((m[0], m[1], m[2]) for m in found)
        wanted = set(scope.registrant_ids) | {rid for _, _, rid in marks if rid}
        for chunk in chunks(sorted(wanted), 400):
            for r in session.exec(reg_query.where(col(Registration.registrant_id).in_(chunk))).all():
                registrations[r.registrant_id] = r
    people: dict[str, Person] = {}
    for reg in registrations.values():
        key = reg.email or f"r:{reg.registrant_id}"
        person = people.setdefault(key, Person(key=key, email=reg.email, raw_email=reg.raw_email))
        # Several registrations with one email (rare): the most engaged state represents them.
        if person.registration_status is None or _status_weight(reg.status) > _status_weight(
            person.registration_status
        ):
            person.registration_status = reg.status
    for person_key, email, registrant_id in marks:
        linked = registrations.get(registrant_id) if registrant_id else None
        resolved = (linked.email if linked else None) or email
        key = resolved or person_key
        person = people.setdefault(key, Person(key=key, email=resolved, raw_email=resolved))
        person.attended = True
    return list(people.values())


def _status_weight(status: str) -> int:
    return {"approved": 3, "pending": 2, "cancelled": 1, "denied": 0}.get(status, 0)


def plan_webinar(
    session: Session,
    webinar: Webinar,
    scope: PlanScope,
    hubspot_facts: HubSpotFactsSource = no_hubspot_facts,
) -> PlanResult:
    result = PlanResult()
    for conn in connections_for(session, webinar.zoom_account_id):
        settings = load_settings(session, conn.portal_id)
        skip = webinar_skip_reason(session, settings, webinar)
        if skip is not None:
            continue  # nothing planned; refresh_webinar_audit says why
        people = gather_people(session, webinar, scope)
        rules = portal_rules(settings)
        facts = hubspot_facts(session, conn.portal_id, [p.email for p in people if p.email])
        ops: set[tuple[str, str, str | None]] = set()  # (kind, target, email)
        excluded: list[tuple[Person, EmailExclusion]] = []
        allowed_keys: list[str] = []
        ended = webinar.actual_end_at is not None
        prefix = f"{webinar.zoom_account_id}:{webinar.webinar_id}"
        for person in people:
            reason = email_decision(person.raw_email, rules, facts.get(person.email or "", HubSpotFacts()))
            if reason is not None:
                excluded.append((person, reason))
                continue
            assert person.email is not None
            allowed_keys.append(person.key)
            target = f"{prefix}:{person.email}"
            ops.add((OpKind.CONTACT_REFRESH, person.email, person.email))
            ops.add((OpKind.MARKETING_STATE, target, person.email))
            if person.registration_status is not None:
                # A registration Zoom created is history: it gets its event whatever its status
                # became later (approved, cancelled, denied), so the event cannot depend on whether
                # the status change arrived before or after it was sent.
                ops.add((OpKind.REGISTRATION_EVENT, target, person.email))
            if person.attended and ended:
                ops.add((OpKind.ATTENDANCE_EVENT, target, person.email))
        # The marketing event itself only changes with the webinar: re-planning it for every batch of
        # people would re-send the same event to HubSpot again and again.
        if scope.webinar_changed or (
            ops and not _op_exists(session, conn.portal_id, OpKind.MARKETING_EVENT, prefix)
        ):
            ops.add((OpKind.MARKETING_EVENT, prefix, None))
        # Completion makes HubSpot compute attendance durations: again only when attendance changed.
        if ended and (scope.webinar_changed or scope.everyone or scope.attendee_keys):
            ops.add((OpKind.MARKETING_COMPLETE, prefix, None))
        if scope.recordings or scope.everyone or scope.attendee_keys or scope.webinar_changed:
            _plan_recordings(session, conn, settings, webinar, ops)
        upsert_ops(session, conn.portal_id, webinar, ops)
        _record_exclusions(session, conn.portal_id, webinar, excluded, allowed_keys)
        result.ops += len(ops)
        result.excluded += len(excluded)
    return result


def recording_host(session: Session, webinar: Webinar, recording: Recording) -> HostFacts:
    """The host's facts; the recording event's `host_email` fills in an email never seen before."""
    host = host_facts(session, webinar, webinar.host_id or recording.host_id)
    if host.email is None and recording.host_email:
        host = replace(host, email=recording.host_email)
    return host


def _plan_recordings(
    session: Session,
    conn: Connection,
    settings: PortalSettings,
    webinar: Webinar,
    ops: set[tuple[str, str, str | None]],
) -> None:
    """One call-record operation per recording the settings allow (S2/S3/S5); the dispatcher checks
    files, transcript and attendees when it sends, since those may still change."""
    recordings = session.exec(
        select(Recording).where(
            Recording.zoom_account_id == webinar.zoom_account_id, Recording.webinar_id == webinar.webinar_id
        )
    ).all()
    rules = portal_rules(settings)
    for rec in recordings:
        if recording_decision(rules, recording_host(session, webinar, rec), webinar_syncs=True) is not None:
            audit_recording_settings_off(session, conn, webinar.webinar_id)
            continue
        ops.add(
            (
                OpKind.RECORDING_CALL,
                f"{webinar.zoom_account_id}:{webinar.webinar_id}:{rec.instance_uuid}",
                None,
            )
        )


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


def _op_exists(session: Session, portal_id: int, kind: OpKind, target: str) -> bool:
    found = session.exec(
        select(OutboxOp.id).where(
            OutboxOp.portal_id == portal_id, OutboxOp.kind == kind.value, OutboxOp.target_key == target
        )
    ).first()
    return found is not None


def _needing_write(
    session: Session, portal_id: int, ops: set[tuple[str, str, str | None]]
) -> set[tuple[str, str, str | None]]:
    """Drop operations already waiting to be sent: the dispatcher reads current values when it sends,
    so planning them again changes nothing. In-flight (leased) or delivered ones must be bumped."""
    by_kind: dict[str, list[str]] = {}
    for kind, target, _ in ops:
        by_kind.setdefault(str(kind), []).append(target)
    idle_pending: set[tuple[str, str]] = set()
    for kind, targets in by_kind.items():
        # (portal_id, kind, target_key) is the unique index: query by all three to use it.
        for part in chunks(sorted(set(targets)), 400):
            rows = session.execute(
                select(col(OutboxOp.target_key)).where(
                    col(OutboxOp.portal_id) == portal_id,
                    col(OutboxOp.kind) == kind,
                    col(OutboxOp.target_key).in_(part),
                    col(OutboxOp.state) == OutboxState.PENDING.value,
                    col(OutboxOp.locked_until).is_(None),
                )
            ).scalars()
            idle_pending |= {(kind, target) for target in rows}
    return {op for op in ops if (str(op[0]), op[1]) not in idle_pending}


_IMMUTABLE = frozenset({OpKind.REGISTRATION_EVENT.value, OpKind.ATTENDANCE_EVENT.value})
_MUTABLE = frozenset(k.value for k in OpKind) - _IMMUTABLE


def upsert_ops(
    session: Session, portal_id: int, webinar: Webinar, ops: set[tuple[str, str, str | None]]
) -> None:
    if session.get_bind().dialect.name == "sqlite":
        # On SQLite the Python-side cost of each upserted row dominates, so skip rows that would not
        # change anything. On PostgreSQL the lookup costs more than the server-side conflict check
        # it saves (measured: an IN-list lookup per kind ran at ~66 ms on a 10k-row outbox).
        ops = _needing_write(session, portal_id, ops)
    if not ops:
        return
    now = utcnow()
    table = OutboxOp.__table__  # type: ignore[attr-defined]
    rows = [
        {
            "portal_id": portal_id,
            "kind": str(kind),
            "target_key": target[:400],
            "zoom_account_id": webinar.zoom_account_id,
            "webinar_id": webinar.webinar_id if kind != OpKind.CONTACT_REFRESH else None,
            "email": email,
            "state": OutboxState.PENDING.value,
            "planned_version": 1,
            "done_version": 0,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
            "updated_at": now,
            "pending_since": now,
        }
        for kind, target, email in sorted(ops)  # one lock order for every writer: no deadlocks
    ]
    insert = dialect_insert(session, table)
    # Bound parameters (not literal values) keep the statement's compiled form cached: a multi-row
    # VALUES statement recompiles for every batch and costs far more than it saves.
    replan = {
        "planned_version": table.c.planned_version + 1,
        "state": OutboxState.PENDING.value,
        "attempts": 0,
        "next_attempt_at": bindparam("now_at"),
        "last_error": None,
        "updated_at": bindparam("now_at"),
        # Waiting anew once delivered; a version still waiting keeps its place.
        "pending_since": case(
            (
                table.c.state == OutboxState.PENDING.value,
                func.coalesce(table.c.pending_since, bindparam("now_at")),
            ),
            else_=bindparam("now_at"),
        ),
    }
    stmt = insert.on_conflict_do_update(index_elements=["portal_id", "kind", "target_key"], set_=replan)
    # Timeline events are immutable at HubSpot (and carry deterministic ids): once planned, planning
    # them again would only re-send what HubSpot refuses as a duplicate. Only a failed one is revived.
    immutable = insert.on_conflict_do_update(
        index_elements=["portal_id", "kind", "target_key"],
        set_=replan,
        where=table.c.state == OutboxState.FAILED.value,
    )
    for kinds, statement in ((_MUTABLE, stmt), (_IMMUTABLE, immutable)):
        selected = [row for row in rows if row["kind"] in kinds]
        for chunk in chunks(selected, 500):
            session.execute(statement, [row | {"now_at": now} for row in chunk])


_PERSON_WEBINAR_KINDS = [
    OpKind.REGISTRATION_EVENT.value,
    OpKind.ATTENDANCE_EVENT.value,
    OpKind.MARKETING_STATE.value,
]


def _record_exclusions(
    session: Session,
    portal_id: int,
    webinar: Webinar,
    excluded: list[tuple[Person, EmailExclusion]],
    allowed_keys: list[str],
) -> None:
    account, wid = webinar.zoom_account_id, webinar.webinar_id
    base = (
        col(ExcludedEmail.portal_id) == portal_id,
        col(ExcludedEmail.zoom_account_id) == account,
        col(ExcludedEmail.webinar_id) == wid,
    )
    # Someone allowed now (settings changed) is no longer excluded.
    for keys in chunks(allowed_keys, 400):
        session.execute(delete(ExcludedEmail).where(*base, col(ExcludedEmail.person_key).in_(keys)))
    if not excluded:
        return
    # Webinar-level operations planned before the person became excluded (a setting changed) and
    # never delivered are withdrawn. Contact refreshes stay: the contact may come from another webinar,
    # and the dispatcher applies the rules again when it sends.
    prefix = f"{account}:{wid}:"
    withdrawn = [prefix + p.email for p, _ in excluded if p.email]
    for targets in chunks(withdrawn, 400):
        session.execute(
            delete(OutboxOp).where(
                col(OutboxOp.portal_id) == portal_id,
                col(OutboxOp.kind).in_(_PERSON_WEBINAR_KINDS),
                col(OutboxOp.target_key).in_(targets),
                col(OutboxOp.done_version) == 0,
            )
        )
    table = ExcludedEmail.__table__  # type: ignore[attr-defined]
    now = utcnow()
    rows = {
        person.key[:400]: {
            "portal_id": portal_id,
            "zoom_account_id": account,
            "webinar_id": wid,
            "person_key": person.key[:400],
            "email": person.raw_email or person.email,
            "reason": str(reason),
            "role": person.role,
            "at": now,
        }
        for person, reason in excluded
    }
    for chunk in chunks([rows[k] for k in sorted(rows)], 500):
        insert = dialect_insert(session, table).values(list(chunk))
        session.execute(
            insert.on_conflict_do_update(
                index_elements=["portal_id", "zoom_account_id", "webinar_id", "person_key"],
                set_={
                    "reason": insert.excluded.reason,
                    "role": insert.excluded.role,
                    "email": insert.excluded.email,
                },
            )
        )


# ---------------------------------------------------------------------------------------------
# Audit: one current entry per webinar and cause, so the log stays readable and replays converge.
# ---------------------------------------------------------------------------------------------


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
                status=status.value,
                code=code,
                message=message,
                details=details,
                aggregate_key=key,
            )
        )
    elif (
        entry.details != details
        or entry.message != message
        or entry.status != status.value
        or entry.code != code
    ):
        entry.code = code
        entry.details = details
        entry.message = message
        entry.status = status.value
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
            status=status.value,
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
        "approved": statuses.get("approved", 0),
        "pending": statuses.get("pending", 0),
        "cancelled": statuses.get("cancelled", 0),
        "denied": statuses.get("denied", 0),
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
