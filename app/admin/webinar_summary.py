"""What the webinar list and detail show about each webinar: its sync state, counts, last sync and
latest pull, read for a whole page at once.

Every read is one GROUP BY (or ranked) query over the page's keys, so a page costs the same number
of queries whether it holds one webinar or a hundred: accounts and webinar ids go into `IN` lists
and the rows are matched to the exact (account, webinar) keys here. The per-webinar helpers the
worker uses (`sync.inputs.webinar_skip_reason`, `sync.audit.webinar_people_counts` and
`exclusion_counts`, `pull.schedule.latest_job`) give the same answers one webinar at a time;
tests/admin/test_webinar_summary.py holds the two to each other.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from sqlalchemy import func, or_
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from app.admin.portals import read_portal_settings
from app.models import (
    AttendanceMark,
    AuditEntry,
    ExcludedEmail,
    InboxEvent,
    InboxState,
    OutboxOp,
    OutboxState,
    Recording,
    Registration,
    SyncJob,
    Webinar,
    ZoomUser,
)
from app.sync.inputs import host_facts_of, portal_rules
from app.sync.op_kind import OpKind
from app.sync.planner import WebinarKey
from app.sync.rules import EmailExclusion, HostFacts, WebinarFacts, WebinarSkipReason, webinar_decision


class SyncState(StrEnum):
    """What a person wants to know about a webinar's sync, in the order the checks apply."""

    OFF = "off"  # not synced: the settings (or an unsupported webinar) rule it out
    ERROR = "error"  # something of it failed for good (until a replay or Sync now)
    SYNCING = "syncing"  # work of it is pending: events to process or operations to deliver
    WAITING = "waiting"  # syncs, but no registrations, attendance or recordings received yet
    SYNCED = "synced"  # data received, nothing pending, nothing failed


class SyncErrorReason(StrEnum):
    EVENT_FAILED = "event_failed"  # a Zoom event of the webinar failed or can never be processed
    DELIVERY_FAILED = "delivery_failed"  # an operation for HubSpot failed after its last attempt


@dataclass
class Work:
    """A page of webinars' unfinished work and whether they have data."""

    pending: set[WebinarKey] = field(default_factory=set)
    event_failed: set[WebinarKey] = field(default_factory=set)
    delivery_failed: set[WebinarKey] = field(default_factory=set)
    with_data: set[WebinarKey] = field(default_factory=set)


@dataclass(frozen=True)
class PeopleCounts:
    registrants: int
    approved: int
    pending: int
    cancelled: int
    denied: int
    attendees: int


@dataclass(frozen=True)
class WebinarSummary:
    webinar: Webinar
    skip: WebinarSkipReason | None
    state: SyncState
    state_reason: str | None  # `off`: the skip reason; `error`: a SyncErrorReason
    people: PeopleCounts
    excluded_emails: dict[str, int]  # by reason, sorted
    participants_not_synced: dict[str, int]  # by reason, sorted
    planned: int  # marketing-state operations planned for HubSpot
    synced: int  # of those, delivered
    last_sync_at: datetime | None
    last_job: SyncJob | None


# Outbox kinds that belong to one webinar. Contact refreshes belong to an email (webinar_id NULL).
_WEBINAR_OP_KINDS = sorted(k for k in OpKind if k is not OpKind.CONTACT_REFRESH)
_INBOX_FAILED = (InboxState.FAILED, InboxState.DEAD)


def sync_state(skip: str | None, key: WebinarKey, work: Work) -> tuple[SyncState, str | None]:
    """(state, reason): `off` names the skip reason, `error` what failed."""
    if skip is not None:
        return SyncState.OFF, skip
    if key in work.event_failed:
        return SyncState.ERROR, SyncErrorReason.EVENT_FAILED.value
    if key in work.delivery_failed:
        return SyncState.ERROR, SyncErrorReason.DELIVERY_FAILED.value
    if key in work.pending:
        return SyncState.SYNCING, None
    if key not in work.with_data:
        return SyncState.WAITING, None
    return SyncState.SYNCED, None


def summarize_webinars(session: Session, portal_id: int, webinars: Sequence[Webinar]) -> list[WebinarSummary]:
    """The summaries of `webinars`, in their order, from a fixed number of queries."""
    if not webinars:
        return []
    page = _Page(webinars)
    rules = portal_rules(read_portal_settings(session, portal_id))
    work = _load_work(session, portal_id, page)
    hosts = _hosts(session, page)
    people = _people(session, page)
    emails, participants = _exclusions(session, portal_id, page)
    planned, synced = _marketing_state_ops(session, portal_id, page)
    last_sync = _last_sync(session, portal_id, page)
    jobs = _latest_jobs(session, portal_id, page)
    out: list[WebinarSummary] = []
    for webinar in webinars:
        key = (webinar.zoom_account_id, webinar.webinar_id)
        skip = webinar_decision(
            rules,
            _host_facts(hosts, webinar),
            WebinarFacts(
                sync_enabled=webinar.sync_enabled,
                unsupported_reason=webinar.unsupported_reason,
                host_default_sync=webinar.host_default_sync,
            ),
        )
        state, reason = sync_state(skip.value if skip is not None else None, key, work)
        out.append(
            WebinarSummary(
                webinar=webinar,
                skip=skip,
                state=state,
                state_reason=reason,
                people=people.get(key, _NO_PEOPLE),
                excluded_emails=dict(sorted(emails[key].items())),
                participants_not_synced=dict(sorted(participants[key].items())),
                planned=planned[key],
                synced=synced[key],
                last_sync_at=last_sync.get(key),
                last_job=jobs.get(key),
            )
        )
    return out


class _Page:
    """A page's keys, and the `IN` lists that find them (rows outside the keys are dropped)."""

    def __init__(self, webinars: Sequence[Webinar]) -> None:
        self.keys: set[WebinarKey] = {(w.zoom_account_id, w.webinar_id) for w in webinars}
        self.accounts = sorted({a for a, _ in self.keys})
        self.ids = sorted({w for _, w in self.keys})
        self.host_ids = sorted({w.host_id for w in webinars if w.host_id})


_NO_PEOPLE = PeopleCounts(registrants=0, approved=0, pending=0, cancelled=0, denied=0, attendees=0)


def _load_work(session: Session, portal_id: int, page: _Page) -> Work:
    work = Work()
    accounts, ids, keys = page.accounts, page.ids, page.keys
    outbox = session.exec(
        select(OutboxOp.zoom_account_id, OutboxOp.webinar_id, OutboxOp.state)
        .where(
            col(OutboxOp.state).in_([OutboxState.PENDING, OutboxState.FAILED]),
            OutboxOp.portal_id == portal_id,
            col(OutboxOp.kind).in_(_WEBINAR_OP_KINDS),
            col(OutboxOp.zoom_account_id).in_(accounts),
            col(OutboxOp.webinar_id).in_(ids),
        )
        .group_by(col(OutboxOp.zoom_account_id), col(OutboxOp.webinar_id), col(OutboxOp.state))
    ).all()
    for account, webinar_id, state in outbox:
        key = (account, str(webinar_id))
        (work.pending if state == OutboxState.PENDING else work.delivery_failed).add(key)
    # Events stored without an account id (rare) belong to the webinar with their webinar id.
    inbox = session.exec(
        select(InboxEvent.zoom_account_id, InboxEvent.webinar_id, InboxEvent.state)
        .where(
            col(InboxEvent.webinar_id).in_(ids),
            col(InboxEvent.state).in_([InboxState.PENDING, *_INBOX_FAILED]),
            or_(col(InboxEvent.zoom_account_id).in_(accounts), col(InboxEvent.zoom_account_id).is_(None)),
        )
        .group_by(col(InboxEvent.zoom_account_id), col(InboxEvent.webinar_id), col(InboxEvent.state))
    ).all()
    for event_account, event_webinar, event_state in inbox:
        matched = {k for k in keys if k[1] == event_webinar and event_account in (None, k[0])}
        (work.pending if event_state == InboxState.PENDING else work.event_failed).update(matched)
    # Data received: registrations, attendance or recordings (what people-level operations come from).
    for model in (Registration, AttendanceMark, Recording):
        found = session.exec(
            select(model.zoom_account_id, model.webinar_id)
            .where(col(model.zoom_account_id).in_(accounts), col(model.webinar_id).in_(ids))
            .distinct()
        ).all()
        work.with_data |= {(a, w) for a, w in found} & keys
    return work


def _hosts(session: Session, page: _Page) -> dict[tuple[str, str], ZoomUser]:
    if not page.host_ids:
        return {}
    users = session.exec(
        select(ZoomUser).where(
            col(ZoomUser.zoom_account_id).in_(page.accounts), col(ZoomUser.zoom_user_id).in_(page.host_ids)
        )
    ).all()
    return {(u.zoom_account_id, u.zoom_user_id): u for u in users}


def _host_facts(hosts: dict[tuple[str, str], ZoomUser], webinar: Webinar) -> HostFacts:
    """`sync.inputs.host_facts` for the webinar's own host, from the page's users."""
    host_id = webinar.host_id
    return host_facts_of(hosts.get((webinar.zoom_account_id, host_id)) if host_id else None, host_id)


def _people(session: Session, page: _Page) -> dict[WebinarKey, PeopleCounts]:
    statuses: defaultdict[WebinarKey, Counter[str]] = defaultdict(Counter)
    for account, webinar_id, status, n in session.exec(
        select(Registration.zoom_account_id, Registration.webinar_id, Registration.status, func.count())
        .where(
            col(Registration.zoom_account_id).in_(page.accounts), col(Registration.webinar_id).in_(page.ids)
        )
        .group_by(col(Registration.zoom_account_id), col(Registration.webinar_id), col(Registration.status))
    ).all():
        statuses[(account, webinar_id)][status] += int(n)
    attendees: dict[WebinarKey, int] = {
        (account, webinar_id): int(n)
        for account, webinar_id, n in session.exec(
            select(
                AttendanceMark.zoom_account_id,
                AttendanceMark.webinar_id,
                func.count(func.distinct(AttendanceMark.person_key)),
            )
            .where(
                col(AttendanceMark.zoom_account_id).in_(page.accounts),
                col(AttendanceMark.webinar_id).in_(page.ids),
                AttendanceMark.kind == "join",
            )
            .group_by(col(AttendanceMark.zoom_account_id), col(AttendanceMark.webinar_id))
        ).all()
    }
    return {
        key: PeopleCounts(
            registrants=sum(statuses[key].values()),
            approved=statuses[key].get("approved", 0),
            pending=statuses[key].get("pending", 0),
            cancelled=statuses[key].get("cancelled", 0),
            denied=statuses[key].get("denied", 0),
            attendees=attendees.get(key, 0),
        )
        for key in page.keys
    }


def _exclusions(
    session: Session, portal_id: int, page: _Page
) -> tuple[defaultdict[WebinarKey, Counter[str]], defaultdict[WebinarKey, Counter[str]]]:
    """(emails excluded by reason, participants not synced by reason) per webinar."""
    emails: defaultdict[WebinarKey, Counter[str]] = defaultdict(Counter)
    participants: defaultdict[WebinarKey, Counter[str]] = defaultdict(Counter)
    # sqlalchemy's select: sqlmodel's is typed for at most four columns.
    rows = session.execute(
        sa_select(
            col(ExcludedEmail.zoom_account_id),
            col(ExcludedEmail.webinar_id),
            col(ExcludedEmail.reason),
            col(ExcludedEmail.role),
            func.count(),
        )
        .where(
            col(ExcludedEmail.portal_id) == portal_id,
            col(ExcludedEmail.zoom_account_id).in_(page.accounts),
            col(ExcludedEmail.webinar_id).in_(page.ids),
        )
        .group_by(
            col(ExcludedEmail.zoom_account_id),
            col(ExcludedEmail.webinar_id),
            col(ExcludedEmail.reason),
            col(ExcludedEmail.role),
        )
    ).all()
    for account, webinar_id, reason, role, n in rows:
        key = (account, webinar_id)
        if role == "attendance" and reason == EmailExclusion.NO_EMAIL:
            participants[key][reason] += int(n)  # M4: guests whose email Zoom removed
        else:
            emails[key][reason] += int(n)
    return emails, participants


def _marketing_state_ops(
    session: Session, portal_id: int, page: _Page
) -> tuple[Counter[WebinarKey], Counter[WebinarKey]]:
    """(planned, delivered) marketing-state operations per webinar."""
    planned: Counter[WebinarKey] = Counter()
    synced: Counter[WebinarKey] = Counter()
    for account, webinar_id, state, n in session.exec(
        select(OutboxOp.zoom_account_id, OutboxOp.webinar_id, OutboxOp.state, func.count())
        .where(
            OutboxOp.portal_id == portal_id,
            OutboxOp.kind == OpKind.MARKETING_STATE,
            col(OutboxOp.zoom_account_id).in_(page.accounts),
            col(OutboxOp.webinar_id).in_(page.ids),
        )
        .group_by(col(OutboxOp.zoom_account_id), col(OutboxOp.webinar_id), col(OutboxOp.state))
    ).all():
        key = (account, str(webinar_id))
        planned[key] += int(n)
        if state == OutboxState.DONE:
            synced[key] += int(n)
    return planned, synced


def _last_sync(session: Session, portal_id: int, page: _Page) -> dict[WebinarKey, datetime]:
    """The time of each webinar's latest audit entry."""
    rows = session.exec(
        select(AuditEntry.zoom_account_id, AuditEntry.webinar_id, func.max(AuditEntry.at))
        .where(
            AuditEntry.portal_id == portal_id,
            col(AuditEntry.zoom_account_id).in_(page.accounts),
            col(AuditEntry.webinar_id).in_(page.ids),
        )
        .group_by(col(AuditEntry.zoom_account_id), col(AuditEntry.webinar_id))
    ).all()
    return {(account, str(webinar_id)): at for account, webinar_id, at in rows if at is not None}


def _latest_jobs(session: Session, portal_id: int, page: _Page) -> dict[WebinarKey, SyncJob]:
    """Each webinar's latest pull from Zoom: the first job per webinar, newest first."""
    ranked = (
        select(
            col(SyncJob.id).label("id"),
            func.row_number()
            .over(
                partition_by=(col(SyncJob.zoom_account_id), col(SyncJob.webinar_id)),
                order_by=(col(SyncJob.created_at).desc(), col(SyncJob.id).desc()),
            )
            .label("rank"),
        )
        .where(
            col(SyncJob.portal_id) == portal_id,
            col(SyncJob.zoom_account_id).in_(page.accounts),
            col(SyncJob.webinar_id).in_(page.ids),
        )
        .subquery()
    )
    jobs = session.exec(
        select(SyncJob).join(ranked, col(SyncJob.id) == ranked.c.id).where(ranked.c.rank == 1)
    ).all()
    return {(job.zoom_account_id, str(job.webinar_id)): job for job in jobs}
