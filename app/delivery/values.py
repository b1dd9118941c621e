"""Current values read from the local model when an operation is sent (late materialisation).

Nothing here is incremented: counts and the attendance average are recomputed from the
service's own records every time, so duplicates, replays and retries give the same values.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import Session, col, select

from app.models import AttendanceMark, Registration, RegistrationStatus, Webinar
from app.sync.attendance import Attendance, Mark, MarkKind, attendance_from_sessions, average_percent
from app.sync.local_model import WebinarKey, load_webinars
from app.util import chunks

# Contact property names (CONTRACT.md §4).
P1_AVERAGE = "zoom_webinar_average_attendance_percent"
P2_LAST_URL = "zoom_last_registered_webinar_url"
P3_REGISTRATIONS = "zoom_webinar_registration_count"
P4_ATTENDANCES = "zoom_webinar_attendance_count"

_ACTIVE = (RegistrationStatus.APPROVED, RegistrationStatus.PENDING)


@dataclass
class PersonWebinar:
    """One person's part in one webinar."""

    webinar: Webinar
    registrations: list[Registration] = field(default_factory=list)
    sessions: dict[str, list[Mark]] = field(default_factory=lambda: defaultdict(list))

    @property
    def key(self) -> WebinarKey:
        return (self.webinar.zoom_account_id, self.webinar.webinar_id)

    @property
    def registered(self) -> bool:
        return any(r.status in _ACTIVE for r in self.registrations)

    @property
    def cancelled(self) -> bool:
        return bool(self.registrations) and not self.registered

    @property
    def attended(self) -> bool:
        return any(m.kind is MarkKind.JOIN for marks in self.sessions.values() for m in marks)

    @property
    def registered_at(self) -> datetime | None:
        times = [r.registered_at for r in self.registrations if r.registered_at is not None]
        return max(times) if times else None

    def attendance(self, now: datetime) -> Attendance | None:
        start = self.webinar.actual_start_at or self.webinar.scheduled_start_at
        if start is None or not self.attended:
            return None
        return attendance_from_sessions(self.sessions.values(), start, self.webinar.actual_end_at, now)


def load_people(
    session: Session, account_ids: Sequence[str], emails: Iterable[str]
) -> dict[str, list[PersonWebinar]]:
    """Every webinar (of these Zoom accounts) each email registered for or attended."""
    wanted_set = set(emails)
    wanted = sorted(wanted_set)
    regs: list[Registration] = []
    for part in chunks(wanted, 400):
        regs.extend(
            session.exec(
                select(Registration).where(
                    col(Registration.zoom_account_id).in_(account_ids), col(Registration.email).in_(part)
                )
            ).all()
        )
    email_of_registrant = {(r.zoom_account_id, r.webinar_id, r.registrant_id): r.email for r in regs}
    registrant_ids = sorted({r.registrant_id for r in regs})
    marks: list[AttendanceMark] = []
    # A participant event may lack the email (guest rule) but carry the registrant id: both links count.
    for part in chunks(wanted, 400):
        marks.extend(
            session.exec(
                select(AttendanceMark).where(
                    col(AttendanceMark.zoom_account_id).in_(account_ids), col(AttendanceMark.email).in_(part)
                )
            ).all()
        )
    for part_ids in chunks(registrant_ids, 400):
        marks.extend(
            session.exec(
                select(AttendanceMark).where(
                    col(AttendanceMark.zoom_account_id).in_(account_ids),
                    col(AttendanceMark.registrant_id).in_(part_ids),
                )
            ).all()
        )
    webinars = load_webinars(
        session,
        {(r.zoom_account_id, r.webinar_id) for r in regs}
        | {(m.zoom_account_id, m.webinar_id) for m in marks},
    )
    people: dict[str, dict[WebinarKey, PersonWebinar]] = defaultdict(dict)

    def slot(email: str, key: WebinarKey) -> PersonWebinar | None:
        webinar = webinars.get(key)
        if webinar is None:
            return None
        return people[email].setdefault(key, PersonWebinar(webinar))

    for reg in regs:
        if reg.email is None:  # selected by email, so never: this keeps the types honest
            continue
        pw = slot(reg.email, (reg.zoom_account_id, reg.webinar_id))
        if pw is not None:
            pw.registrations.append(reg)
    seen: set[int | None] = set()
    for mark in marks:
        if mark.id in seen:
            continue  # found both by email and by registrant id
        seen.add(mark.id)
        linked = email_of_registrant.get((mark.zoom_account_id, mark.webinar_id, mark.registrant_id or ""))
        email = linked or mark.email
        if email is None or email not in wanted_set:
            continue
        pw = slot(email, (mark.zoom_account_id, mark.webinar_id))
        if pw is not None:
            pw.sessions[mark.session_key].append(Mark(MarkKind(mark.kind), mark.at))
    return {email: list(by_webinar.values()) for email, by_webinar in people.items()}


def contact_properties(
    webinars: Iterable[PersonWebinar], syncing: set[WebinarKey], now: datetime
) -> dict[str, str | int | float | None]:
    """P1-P4 for one contact, over the webinars that sync (skipped webinars do not count)."""
    mine = [pw for pw in webinars if pw.key in syncing]
    registered = [pw for pw in mine if pw.registered]
    attended = [pw for pw in mine if pw.attended]
    # P1 averages finished webinars only: a running one would report a share of a moving total.
    finished = [pw.attendance(now) for pw in attended if pw.webinar.actual_end_at is not None]
    percents = [a.percent for a in finished if a is not None]
    latest = max(
        (pw for pw in mine if pw.registrations and pw.registered_at is not None),
        key=lambda pw: (pw.registered_at, pw.webinar.webinar_id),
        default=None,
    )
    values: dict[str, str | int | float | None] = {
        P3_REGISTRATIONS: len({pw.key for pw in registered}),
        P4_ATTENDANCES: len({pw.key for pw in attended}),
    }
    average = average_percent(percents)
    if average is not None:
        values[P1_AVERAGE] = average
    if latest is not None:
        url = latest.webinar.registration_url or latest.webinar.join_url
        if url:
            values[P2_LAST_URL] = url
    return values
