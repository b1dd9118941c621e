"""Applying parsed Zoom facts to the local model, in bulk, idempotently.

Every apply step reports what actually changed, so that replays and duplicate deliveries plan
no HubSpot work, while any real change plans exactly what it affects.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import tuple_
from sqlmodel import Session, col, select

from app.db import dialect_insert, utcnow
from app.models import AttendanceMark, Recording, Registration, RegistrationStatus, Webinar, ZoomUser
from app.sync.events import MarkFact, RecordingFact, RegistrationFact, WebinarMeta
from app.sync.rules import normalize_email
from app.util import chunks

WebinarKey = tuple[str, str]  # (zoom_account_id, webinar_id)

# Webinar fields that go into every person's values (P2's URL; P1/E2 measured between the times):
# when one changes, everyone of the webinar is planned again.
PEOPLE_FIELDS = frozenset(
    {"registration_url", "join_url", "scheduled_start_at", "actual_start_at", "actual_end_at"}
)

# At equal event_ts a final state wins over an earlier one.
_STATUS_RANK = {
    RegistrationStatus.PENDING: 0,
    RegistrationStatus.APPROVED: 1,
    RegistrationStatus.DENIED: 2,
    RegistrationStatus.CANCELLED: 3,
}


@dataclass
class Changes:
    """What one batch changed, per webinar."""

    webinars_created: set[WebinarKey] = field(default_factory=set)
    webinar_meta_changed: set[WebinarKey] = field(default_factory=set)
    webinars_ended: set[WebinarKey] = field(default_factory=set)
    # A field every person's values depend on changed (P2's URL, the times attendance is measured in).
    webinars_people_changed: set[WebinarKey] = field(default_factory=set)
    registrants: dict[WebinarKey, set[str]] = field(default_factory=dict)  # registrant ids
    attendees: dict[WebinarKey, set[str]] = field(default_factory=dict)  # person keys of new marks
    recordings: set[WebinarKey] = field(default_factory=set)

    def touched(self) -> set[WebinarKey]:
        return (
            self.webinars_created
            | self.webinar_meta_changed
            | self.webinars_ended
            | set(self.registrants)
            | set(self.attendees)
            | self.recordings
        )


def load_webinars(session: Session, keys: Iterable[WebinarKey]) -> dict[WebinarKey, Webinar]:
    keys = list(set(keys))
    found: dict[WebinarKey, Webinar] = {}
    for chunk in chunks(keys, 400):
        rows = session.exec(
            select(Webinar).where(tuple_(col(Webinar.zoom_account_id), col(Webinar.webinar_id)).in_(chunk))
        ).all()
        found.update({(w.zoom_account_id, w.webinar_id): w for w in rows})
    return found


def apply_webinar_metas(
    session: Session, metas: Sequence[WebinarMeta], changes: Changes
) -> dict[WebinarKey, Webinar]:
    webinars = load_webinars(session, [(m.account_id, m.webinar_id) for m in metas])
    now = utcnow()
    for meta in sorted(metas, key=lambda m: m.event_ts):
        key = (meta.account_id, meta.webinar_id)
        webinar = webinars.get(key)
        if webinar is None:
            webinar = Webinar(zoom_account_id=meta.account_id, webinar_id=meta.webinar_id, field_ts={})
            session.add(webinar)
            webinars[key] = webinar
            changes.webinars_created.add(key)
        clock = dict(webinar.field_ts or {})
        changed = False
        for name, value in meta.fields.items():
            current = getattr(webinar, name)
            if meta.authoritative:
                if meta.event_ts < clock.get(name, -1) or current == value:
                    continue
                clock[name] = meta.event_ts
            elif current is not None:
                continue  # a non-authoritative event only fills gaps
            setattr(webinar, name, value)
            changed = True
            if name in PEOPLE_FIELDS and key not in changes.webinars_created:
                changes.webinars_people_changed.add(key)
            if name == "actual_end_at":
                changes.webinars_ended.add(key)
                webinar.ended_seen_at = now  # attendance settles a quiet period after this
        if meta.deleted and webinar.deleted_at is None:
            webinar.deleted_at = now
            changed = True
        if changed:
            webinar.field_ts = clock
            webinar.updated_at = now
            changes.webinar_meta_changed.add(key)
    defaults = _upsert_hosts(session, metas, webinars)
    _capture_host_defaults(webinars.values(), defaults)
    return webinars


def _capture_host_defaults(webinars: Iterable[Webinar], defaults: dict[tuple[str, str], bool]) -> None:
    """S5: "sync newly scheduled webinars by default" applies to webinars first seen after it was set.

    The host's default is copied onto the webinar once its host is known, so changing a host's
    default later leaves the webinars already seen as they were (their own switch still rules).
    """
    for webinar in webinars:
        if webinar.host_id and webinar.host_default_sync is None:
            webinar.host_default_sync = defaults.get((webinar.zoom_account_id, webinar.host_id), True)


def _upsert_hosts(
    session: Session, metas: Sequence[WebinarMeta], webinars: dict[WebinarKey, Webinar]
) -> dict[tuple[str, str], bool]:
    """Create or update the hosts the events name; returns each host's "sync new webinars by
    default" (a host seen for the first time: true), for the webinars' own hosts too."""
    emails: dict[tuple[str, str], str | None] = {}
    for meta in metas:
        key = (meta.account_id, meta.webinar_id)
        host_id = meta.fields.get("host_id") or webinars[key].host_id
        if not host_id:
            continue
        user_key = (meta.account_id, host_id)
        emails[user_key] = meta.host_email or emails.get(user_key)
    for webinar in webinars.values():  # its host as it stands now, whichever event set it
        if webinar.host_id:
            emails.setdefault((webinar.zoom_account_id, webinar.host_id), None)
    if not emails:
        return {}
    existing = {
        (u.zoom_account_id, u.zoom_user_id): u
        for chunk in chunks(list(emails), 400)
        for u in session.exec(
            select(ZoomUser).where(
                tuple_(col(ZoomUser.zoom_account_id), col(ZoomUser.zoom_user_id)).in_(chunk)
            )
        ).all()
    }
    defaults: dict[tuple[str, str], bool] = {}
    for (account_id, user_id), email in emails.items():
        user = existing.get((account_id, user_id))
        if user is None:
            user = ZoomUser(zoom_account_id=account_id, zoom_user_id=user_id, email=email)
            session.add(user)
        elif email and user.email != email:
            user.email = email
            user.updated_at = utcnow()
        defaults[(account_id, user_id)] = user.sync_new_webinars_by_default
    return defaults


def apply_registrations(session: Session, facts: Sequence[RegistrationFact], changes: Changes) -> None:
    keys = {(f.account_id, f.webinar_id, f.registrant_id) for f in facts}
    existing: dict[tuple[str, str, str], Registration] = {}
    for chunk in chunks(list(keys), 300):
        rows = session.exec(
            select(Registration).where(
                tuple_(
                    col(Registration.zoom_account_id),
                    col(Registration.webinar_id),
                    col(Registration.registrant_id),
                ).in_(chunk)
            )
        ).all()
        existing.update({(r.zoom_account_id, r.webinar_id, r.registrant_id): r for r in rows})
    now = utcnow()
    # New registrants (the common case) are built as plain rows and inserted in bulk; building ORM
    # objects for them cost more than everything else in a registration burst.
    new_rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    for fact in sorted(facts, key=lambda f: f.event_ts):
        key = (fact.account_id, fact.webinar_id, fact.registrant_id)
        reg = existing.get(key)
        if reg is None:
            row = new_rows.get(key)
            if row is None:
                row = new_rows[key] = _new_registration_row(fact, now)
            else:
                _merge_into_row(row, fact)
            changes.registrants.setdefault((fact.account_id, fact.webinar_id), set()).add(fact.registrant_id)
            continue
        changed = False
        if _newer_status(fact, reg.status, reg.status_event_ts):
            reg.status = fact.status
            reg.status_event_ts = fact.event_ts
            changed = True
        # Contact details: fill what is missing; the registration itself is the best source.
        for name, value in _detail_values(fact):
            if value is not None and getattr(reg, name) is None:
                setattr(reg, name, value)
                changed = True
        if _better_time(fact, reg.registered_at, reg.registered_at_exact):
            reg.registered_at = _registered_at(fact)
            reg.registered_at_exact = reg.registered_at_exact or fact.creation
            changed = True
        if changed:
            reg.updated_at = now
            changes.registrants.setdefault((fact.account_id, fact.webinar_id), set()).add(fact.registrant_id)
    if new_rows:
        table = Registration.__table__  # type: ignore[attr-defined]
        for rows_part in chunks([new_rows[k] for k in sorted(new_rows)], 500):
            session.execute(table.insert(), list(rows_part))


def _detail_values(fact: RegistrationFact) -> tuple[tuple[str, str | None], ...]:
    return (
        ("raw_email", fact.raw_email),
        ("email", normalize_email(fact.raw_email)),
        ("first_name", fact.first_name),
        ("last_name", fact.last_name),
        ("join_url", fact.join_url),
    )


def _registered_at(fact: RegistrationFact) -> datetime | None:
    """When the person registered: Zoom's own time when the event carries it (a REST pull does),
    else the event's time."""
    if fact.registered_at is not None:
        return fact.registered_at
    return _ts(fact.event_ts) if fact.event_ts else None


def _better_time(fact: RegistrationFact, current: datetime | None, current_exact: bool) -> bool:
    """Whether the fact's time should replace the registration time known so far.

    A creation time (registration_created, or Zoom's create_time) beats the time of a status change
    that happened to arrive first; among times of one kind the earliest wins. So the time converges
    to the same value whatever order the events arrive in.
    """
    when = _registered_at(fact)
    if when is None:
        return False
    if current is None:
        return True
    if fact.creation != current_exact:
        return fact.creation
    return when < current


def _new_registration_row(fact: RegistrationFact, now: datetime) -> dict[str, Any]:
    row: dict[str, Any] = {
        "zoom_account_id": fact.account_id,
        "webinar_id": fact.webinar_id,
        "registrant_id": fact.registrant_id,
        "status": fact.status,
        "status_event_ts": fact.event_ts,
        "source": fact.source,
        "registered_at": _registered_at(fact),
        "registered_at_exact": fact.creation,
        "updated_at": now,
    }
    row.update(dict(_detail_values(fact)))
    return row


def _merge_into_row(row: dict[str, Any], fact: RegistrationFact) -> None:
    """A second event for a registrant first seen in this same batch."""
    if _newer_status(fact, row["status"], row["status_event_ts"]):
        row["status"], row["status_event_ts"] = fact.status, fact.event_ts
    for name, value in _detail_values(fact):
        if value is not None and row.get(name) is None:
            row[name] = value
    if _better_time(fact, row["registered_at"], row["registered_at_exact"]):
        row["registered_at"] = _registered_at(fact)
        row["registered_at_exact"] = row["registered_at_exact"] or fact.creation


def _newer_status(fact: RegistrationFact, status: RegistrationStatus, status_event_ts: int) -> bool:
    if fact.status == status:
        return False
    if fact.event_ts != status_event_ts:
        return fact.event_ts > status_event_ts
    # A stored status this version does not know (`UnknownEnumValue`) raises here, as it always has.
    return _STATUS_RANK[fact.status] > _STATUS_RANK[RegistrationStatus(status)]


def _ts(event_ts: int) -> datetime:
    return datetime.fromtimestamp(event_ts / 1000, UTC)


def apply_marks(session: Session, facts: Sequence[MarkFact], changes: Changes) -> None:
    if not facts:
        return
    table = AttendanceMark.__table__  # type: ignore[attr-defined]
    now = utcnow()
    rows = {
        (f.account_id, f.webinar_id, f.session_key, f.kind, f.at): {
            "zoom_account_id": f.account_id,
            "webinar_id": f.webinar_id,
            "person_key": f.person_key,
            "session_key": f.session_key,
            "kind": f.kind,
            "at": f.at,
            "email": normalize_email(f.raw_email),
            "registrant_id": f.registrant_id,
            "name": f.name,
            "received_at": now,
        }
        for f in facts
    }
    stmt = (
        dialect_insert(session, table)
        .on_conflict_do_nothing(index_elements=["zoom_account_id", "webinar_id", "session_key", "kind", "at"])
        .returning(table.c.zoom_account_id, table.c.webinar_id, table.c.person_key)
    )
    for chunk in chunks(list(rows.values()), 500):
        for account_id, webinar_id, person in session.execute(stmt, chunk):
            changes.attendees.setdefault((account_id, webinar_id), set()).add(person)


def apply_recordings(session: Session, facts: Sequence[RecordingFact], changes: Changes) -> None:
    for fact in sorted(facts, key=lambda f: f.event_ts):
        rec = session.get(Recording, (fact.account_id, fact.webinar_id, fact.instance_uuid))
        if rec is None:
            rec = Recording(
                zoom_account_id=fact.account_id, webinar_id=fact.webinar_id, instance_uuid=fact.instance_uuid
            )
            session.add(rec)
        # Files arrive in two events (recording, then transcript): merge them by file id.
        files = {str(f.get("id") or f.get("file_type")): f for f in rec.files or []}
        for f in fact.files:
            files[str(f.get("id") or f.get("file_type"))] = f
        rec.files = list(files.values())
        for name in ("topic", "host_id", "host_email", "start_time", "duration_minutes", "share_url"):
            value = getattr(fact, name)
            if value is not None:
                setattr(rec, name, value)
        if fact.download_token and fact.event_ts >= rec.last_event_ts:
            rec.download_token = fact.download_token
        rec.last_event_ts = max(rec.last_event_ts, fact.event_ts)
        rec.updated_at = utcnow()
        changes.recordings.add((fact.account_id, fact.webinar_id))
