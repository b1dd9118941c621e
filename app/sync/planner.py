"""From the local model to decisions: planned HubSpot operations and excluded emails.

The rules are pure (`app.sync.rules`); their inputs come from `app.sync.inputs`, and the audit
entries that explain a webinar's state are written by `app.sync.audit`. This module writes the
rules' outputs. It plans what to do, never the values: the dispatcher reads current values
when it sends (late materialisation), so many changes to one contact make one operation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from sqlalchemy import bindparam, case, delete, func
from sqlmodel import Session, col, select

from app.db import dialect_insert, utcnow
from app.models import (
    AttendanceMark,
    Connection,
    ExcludedEmail,
    OutboxOp,
    OutboxState,
    PortalSettings,
    Recording,
    Registration,
    RegistrationStatus,
    Webinar,
)
from app.sync.audit import audit_recording_settings_off
from app.sync.inputs import connections_for, load_settings, portal_rules, recording_host, webinar_skip_reason
from app.sync.op_kind import OpKind
from app.sync.rules import (
    EmailExclusion,
    HubSpotFacts,
    email_decision,
    recording_decision,
)
from app.util import chunks

WebinarKey = tuple[str, str]
HubSpotFactsSource = Callable[[Session, int, Iterable[str]], Mapping[str, HubSpotFacts]]


def no_hubspot_facts(session: Session, portal_id: int, emails: Iterable[str]) -> Mapping[str, HubSpotFacts]:
    """Until HubSpot has been consulted nothing is known; the dispatcher re-checks before sending."""
    return {}


@dataclass
class Person:
    """Someone who registered for or attended one webinar."""

    key: str  # the email, or (no email) a participant key such as "n:guest name"
    email: str | None
    raw_email: str | None
    registration_status: RegistrationStatus | None = None
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


_STATUS_WEIGHT = {
    RegistrationStatus.APPROVED: 3,
    RegistrationStatus.PENDING: 2,
    RegistrationStatus.CANCELLED: 1,
    RegistrationStatus.DENIED: 0,
}


def _status_weight(status: RegistrationStatus) -> int:
    # A stored status this version does not know (`UnknownEnumValue`) weighs least, as before.
    return _STATUS_WEIGHT.get(status, 0)


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
            # The rules already exclude anyone without a valid email; the fallback keeps the types honest.
            if reason is not None or person.email is None:
                excluded.append((person, reason or EmailExclusion.NO_EMAIL))
                continue
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
                    col(OutboxOp.state) == OutboxState.PENDING,
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
            "state": OutboxState.PENDING,
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
        "state": OutboxState.PENDING,
        "attempts": 0,
        "next_attempt_at": bindparam("now_at"),
        "last_error": None,
        "updated_at": bindparam("now_at"),
        # Waiting anew once delivered; a version still waiting keeps its place.
        "pending_since": case(
            (
                table.c.state == OutboxState.PENDING,
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
        where=table.c.state == OutboxState.FAILED,
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
