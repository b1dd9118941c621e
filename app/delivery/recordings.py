"""Recordings and transcripts to HubSpot (RC1, E1): one call record per recording and portal.

For each planned `recording_call` operation:
1. the settings decide again (they may have changed since planning), then the files: a recording
   still processing waits (the transcript event or Sync now plans it again), none at all or no
   synced attendee is audited as `recording_not_synced` with its reason;
2. the transcript (the VTT file) is downloaded once with the event's download token (else an
   OAuth token) and kept as readable text; a 404 is audited as `sync_error`/`transcript_not_found`
   and fetched again when the recording is planned again (transcript event, Sync now);
3. the call record is created once, its id stored at once (so a retry updates, never duplicates),
   and updated only when its properties changed (a later transcript, a new share link). It carries a
   marker naming the recording (`hs_call_external_id`), and the intent to create is stored before the
   create is sent: when HubSpot may have made the record but its answer was lost (5xx, timeout,
   connection dropped, crash), the next attempt looks the marker up and adopts what it finds. CRM
   search shows new records only after a lag, so an empty answer is trusted only once the create is
   `search_lag_s` old (`after_lost_create`);
4. every synced attendee's contact not yet reached is associated with the call (batches of 100)
   and gets a "Zoom: recordable event" activity with a deterministic id, through the portal's
   timeline writer (`activity_writer`: classic event, app event, note, or none when `off`).

A little over 500 lines: the four steps above are one handler whose state (the stored call id, the
intent marker, the transcript) passes from step to step; cut apart, each piece would need it all.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, select

from app.db import unit_of_work, utcnow
from app.delivery.activity_writer import Activity, ActivityKind, writer_for
from app.delivery.facts import contact_ids
from app.delivery.ops import (
    DONE,
    ClaimedOp,
    Result,
    Verdict,
    contacts_pending,
    event_id,
    excluded_emails,
    hubspot_failure,
)
from app.integrations.hubspot import HubSpotClient, HubSpotError
from app.integrations.hubspot.client import may_have_reached_hubspot
from app.integrations.hubspot.setup import PortalSetup
from app.integrations.zoom.errors import ZoomError, ZoomRecordingNotFound
from app.models import (
    AuditStatus,
    Connection,
    ExcludedEmail,
    Recording,
    RecordingCall,
    TranscriptState,
    Webinar,
)
from app.sync.audit import (
    RECORDING_AUDIT_KEY,
    TRANSCRIPT_AUDIT_KEY,
    AuditCode,
    audit_recording_settings_off,
    upsert_audit,
)
from app.sync.events import parse_time
from app.sync.inputs import load_settings, portal_rules, recording_host, webinar_skip_reason
from app.sync.planner import PlanScope, gather_people
from app.sync.rules import RecordingSkipReason, recording_decision, recording_status
from app.sync.transcript import call_body, transcript_text
from app.util import chunks

log = logging.getLogger(__name__)

# (account id, download URL, the event's download token) -> the file's bytes
TranscriptFetcher = Callable[[str, str, str | None], Awaitable[bytes]]

BATCH = 100
# The call property naming the recording a call record was made from. HubSpot defines it on every
# call (calling apps keep their own call id in it), so it needs no set-up and no schema scope.
CALL_MARKER_PROPERTY = "hs_call_external_id"
# HubSpot documents no figure for its search lag ("new or updated objects may take a few moments to
# appear"). After a create whose answer was lost, an empty search is trusted only once the create is
# this old: waiting costs only on that rare path, while a second call record would stay for good.
SEARCH_LAG_S = 30.0
SEARCH_POLL_S = 2.0  # how often the marker is looked up again meanwhile (search: 5 requests/s)
_SKIP_MESSAGES = {
    RecordingSkipReason.NO_RECORDING: "no recording files at Zoom (not recorded, or deleted)",
    RecordingSkipReason.PROCESSING: "Zoom is still processing the recording; it syncs when it is ready",
    RecordingSkipReason.NO_PARTICIPANTS: "no attendee of this webinar could be synced to HubSpot",
}


@dataclass
class _Job:
    op: ClaimedOp
    conn: Connection
    webinar: Webinar
    recording: Recording
    call: RecordingCall | None
    skip: RecordingSkipReason | None
    contacts: dict[str, str]  # email -> contact id, for synced attendees
    waiting_for_contacts: bool


def _split_target(target: str) -> tuple[str, str, str] | None:
    parts = target.split(":", 2)
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 else None


def transcript_file(files: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    for f in files:
        if str(f.get("file_type") or "").upper() == "TRANSCRIPT" and f.get("download_url"):
            return f
    return None


def recording_url(recording: Recording) -> str | None:
    """The HTTPS link people can open: the share link, else a file's play link."""
    candidates = [recording.share_url] + [f.get("play_url") for f in recording.files or []]
    return next((str(u) for u in candidates if isinstance(u, str) and u.startswith("https://")), None)


def _duration_ms(recording: Recording, webinar: Webinar) -> int | None:
    starts = [f.get("recording_start") for f in recording.files or []]
    ends = [f.get("recording_end") for f in recording.files or []]
    start_times = [t for t in (parse_time(s) for s in starts) if t is not None]
    end_times = [t for t in (parse_time(e) for e in ends) if t is not None]
    if start_times and end_times:
        return int((max(end_times) - min(start_times)) / timedelta(milliseconds=1))
    if webinar.actual_start_at and webinar.actual_end_at:
        return int((webinar.actual_end_at - webinar.actual_start_at) / timedelta(milliseconds=1))
    if recording.duration_minutes:
        return recording.duration_minutes * 60_000
    return None


def call_marker(recording: Recording) -> str:
    """The recording's mark on its call record: stable, unique per Zoom recording, plain characters
    (Zoom's UUIDs hold `/`, `+` and `=`), so an exact search finds it."""
    key = f"{recording.zoom_account_id}/{recording.webinar_id}/{recording.instance_uuid}"
    return "zoom-recording-" + hashlib.sha256(key.encode()).hexdigest()[:40]


@dataclass(frozen=True)
class LostCreateStep:
    """What to do about a call record whose create was sent but never answered."""

    adopt: str | None = None  # the call record HubSpot made after all
    wait_s: float = 0.0  # nothing found yet, but the search index may still lag: look again then
    # neither: HubSpot has none; create it (again)


def after_lost_create(
    found: Sequence[str], sent_at: datetime, now: datetime, *, lag_s: float, poll_s: float
) -> LostCreateStep:
    """The rule after a create that may have reached HubSpot: adopt what the marker search found (the
    oldest, should there be several), else wait while the search may not show it yet, else create."""
    if found:
        return LostCreateStep(adopt=min(found, key=lambda i: (len(i), i)))
    left = lag_s - (now - sent_at).total_seconds()
    if left > 0:
        return LostCreateStep(wait_s=min(left, poll_s))
    return LostCreateStep()


def call_properties(recording: Recording, webinar: Webinar) -> dict[str, str | int | None]:
    start: datetime | None = recording.start_time or webinar.actual_start_at or webinar.scheduled_start_at
    return {
        CALL_MARKER_PROPERTY: call_marker(recording),
        "hs_timestamp": start.isoformat().replace("+00:00", "Z") if start else None,
        "hs_call_title": recording.topic or webinar.topic or f"Zoom webinar {webinar.webinar_id}",
        "hs_call_body": call_body(recording.transcript_text, recording_url(recording)),
        "hs_call_recording_url": recording_url(recording),
        "hs_call_duration": _duration_ms(recording, webinar),
        "hs_call_status": "COMPLETED",
    }


def _hash(properties: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(properties, sort_keys=True, default=str).encode()).hexdigest()


class RecordingDelivery:
    def __init__(
        self,
        engine: Any,
        *,
        transcripts: TranscriptFetcher | None,
        wait_s: float = 1.0,
        search_lag_s: float = SEARCH_LAG_S,
        search_poll_s: float = SEARCH_POLL_S,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.engine = engine
        self.transcripts = transcripts
        self.wait_s = wait_s
        self.search_lag_s = search_lag_s
        self.search_poll_s = search_poll_s
        self.now = now

    async def run(
        self, client: HubSpotClient, portal_id: int, ops: list[ClaimedOp], setup: PortalSetup
    ) -> dict[int, Result]:
        results: dict[int, Result] = {}
        for op in ops:
            try:
                results[op.id] = await self._one(client, portal_id, op, setup)
            except HubSpotError as exc:
                results[op.id] = hubspot_failure(exc, "webinar_data_not_synced")
        return results

    async def _one(self, client: HubSpotClient, portal_id: int, op: ClaimedOp, setup: PortalSetup) -> Result:
        job = await asyncio.to_thread(self._load, portal_id, op)
        if job is None:
            return DONE
        if job.skip is not None:
            await asyncio.to_thread(self._audit_skip, job)
            return DONE
        if job.waiting_for_contacts:
            return Result(Verdict.WAIT, delay_s=self.wait_s)
        problem = await self._ensure_transcript(job)
        if problem is not None:
            return problem
        properties = call_properties(job.recording, job.webinar)
        digest = _hash(properties)
        call = job.call
        pending = sorted(set(job.contacts.values()) - set(call.contact_ids if call else []), key=int)
        if call is None or call.call_id is None:
            made = await self._create_call(client, job, properties, digest, pending)
            if isinstance(made, Result):
                return made
            call, pending = made
        if call.call_id is None:
            raise ValueError(f"call of {job.recording.instance_uuid} has no HubSpot id after its create")
        if call.properties_hash != digest:
            await client.update_call(call.call_id, properties)
            await asyncio.to_thread(self._store_call, job, call.call_id, digest, [])
        for part in chunks(pending, BATCH):
            await client.associate_calls_to_contacts([(call.call_id, contact_id) for contact_id in part])
            await asyncio.to_thread(self._store_call, job, call.call_id, digest, list(part))
        failure = await self._recordable_events(client, job, setup)
        if failure is not None and (failure.verdict is not Verdict.RETRY or failure.retryable):
            return failure  # HubSpot busy or down: the call record is stored, the activities go again
        timeline_error = None if failure is None else (failure.error or "recordable events failed")
        await asyncio.to_thread(self._audit_synced, job, call.call_id, timeline_error)
        if timeline_error is not None:
            return Result(
                Verdict.RETRY, error=timeline_error, retryable=False, reason="timeline_event_failed"
            )
        return DONE

    # ---- loading ----------------------------------------------------------------------------------

    def _load(self, portal_id: int, op: ClaimedOp) -> _Job | None:
        parsed = _split_target(op.target_key)
        if parsed is None:
            return None
        account_id, webinar_id, uuid = parsed
        with Session(self.engine, expire_on_commit=False) as session:
            recording = session.get(Recording, (account_id, webinar_id, uuid))
            webinar = session.get(Webinar, (account_id, webinar_id))
            conn = session.exec(
                select(Connection).where(
                    Connection.portal_id == portal_id, Connection.zoom_account_id == account_id
                )
            ).first()
            if recording is None or webinar is None or conn is None:
                return None
            settings = load_settings(session, portal_id)
            syncs = webinar_skip_reason(session, settings, webinar) is None
            decision = recording_decision(
                portal_rules(settings), recording_host(session, webinar, recording), syncs
            )
            contacts, waiting = self._attendee_contacts(session, portal_id, webinar)
            skip = recording_status(decision, recording.files or [], len(contacts) + (1 if waiting else 0))
            call = session.get(RecordingCall, (portal_id, account_id, webinar_id, uuid))
            # Wait while some attendee's contact is still being written: all of them go on the call at once.
            return _Job(op, conn, webinar, recording, call, skip, contacts, waiting)

    def _attendee_contacts(
        self, session: Session, portal_id: int, webinar: Webinar
    ) -> tuple[dict[str, str], bool]:
        """Contact ids of the attendees synced to this portal; whether some are still being written."""
        attendees = [
            p for p in gather_people(session, webinar, PlanScope(everyone=True)) if p.attended and p.email
        ]
        excluded_keys = set(
            session.exec(
                select(ExcludedEmail.person_key).where(
                    ExcludedEmail.portal_id == portal_id,
                    ExcludedEmail.zoom_account_id == webinar.zoom_account_id,
                    ExcludedEmail.webinar_id == webinar.webinar_id,
                )
            ).all()
        )
        emails = sorted({p.email for p in attendees if p.email and p.key not in excluded_keys})
        blocked = excluded_emails(session, portal_id, emails)
        emails = [e for e in emails if e not in blocked]
        ids = contact_ids(session, portal_id, emails)
        missing = [e for e in emails if e not in ids]
        waiting = bool(contacts_pending(session, portal_id, missing)) if missing else False
        return ids, waiting

    # ---- transcript -------------------------------------------------------------------------------

    async def _ensure_transcript(self, job: _Job) -> Result | None:
        rec = job.recording
        file = transcript_file(rec.files or [])
        if file is None:
            return None
        file_id = str(file.get("id") or file.get("download_url"))
        if rec.transcript_state == TranscriptState.FETCHED and rec.transcript_file_id == file_id:
            return None
        if self.transcripts is None:
            await asyncio.to_thread(self._transcript_missing, job, file_id, "no Zoom access to download it")
            return None
        try:
            content = await self.transcripts(
                rec.zoom_account_id, str(file["download_url"]), rec.download_token
            )
        except ZoomRecordingNotFound:
            await asyncio.to_thread(self._transcript_missing, job, file_id, "Zoom answered 404 (not found)")
            return None
        except ZoomError as exc:
            if exc.retryable:
                return Result(Verdict.RETRY, error=f"transcript download: {exc}"[:500], retryable=True)
            await asyncio.to_thread(self._transcript_missing, job, file_id, str(exc)[:300])
            return None
        text = transcript_text(content.decode("utf-8", errors="replace"))
        await asyncio.to_thread(self._transcript_fetched, job, file_id, text)
        return None

    def _transcript_fetched(self, job: _Job, file_id: str, text: str) -> None:
        with unit_of_work(self.engine) as session:
            rec = session.get(
                Recording,
                (job.recording.zoom_account_id, job.recording.webinar_id, job.recording.instance_uuid),
            )
            if rec is not None:
                rec.transcript_text, rec.transcript_file_id = text, file_id
                rec.transcript_state = TranscriptState.FETCHED
            upsert_audit(
                session,
                job.conn,
                job.webinar.webinar_id,
                key=TRANSCRIPT_AUDIT_KEY,
                code="transcript_synced",
                status=AuditStatus.SUCCESS,
                message=f"transcript fetched from Zoom ({len(text)} characters)",
                details={"characters": len(text)},
            )
        job.recording.transcript_text, job.recording.transcript_state = text, TranscriptState.FETCHED
        job.recording.transcript_file_id = file_id

    def _transcript_missing(self, job: _Job, file_id: str, why: str) -> None:
        with unit_of_work(self.engine) as session:
            rec = session.get(
                Recording,
                (job.recording.zoom_account_id, job.recording.webinar_id, job.recording.instance_uuid),
            )
            if rec is not None:
                rec.transcript_state, rec.transcript_file_id = TranscriptState.NOT_FOUND, file_id
            upsert_audit(
                session,
                job.conn,
                job.webinar.webinar_id,
                key=TRANSCRIPT_AUDIT_KEY,
                code=AuditCode.SYNC_ERROR,
                status=AuditStatus.ERROR,
                message=(
                    f"transcript not found: {why}; the call record is made without it. Sync now tries again"
                ),
                details={"reason": "transcript_not_found", "file_id": file_id},
            )

    # ---- HubSpot side -----------------------------------------------------------------------------

    async def _create_call(
        self,
        client: HubSpotClient,
        job: _Job,
        properties: Mapping[str, str | int | None],
        digest: str,
        pending: list[str],
    ) -> tuple[RecordingCall, list[str]] | Result:
        """The call record made once: the stored call and the contacts still to associate, or a wait."""
        if job.call is not None:
            # A row without a call id: a create was sent and its answer never came back.
            marker = str(properties[CALL_MARKER_PROPERTY])
            found = await client.find_calls(CALL_MARKER_PROPERTY, marker)
            step = after_lost_create(
                [c.id for c in found],
                job.call.updated_at,
                self.now(),
                lag_s=self.search_lag_s,
                poll_s=self.search_poll_s,
            )
            if step.adopt is not None:
                log.info(
                    "call record found by its marker after a lost answer",
                    extra={"portal_id": job.op.portal_id, "call_id": step.adopt},
                )
                # What that create wrote is not known: the properties and every association are
                # written again (an update and associations are idempotent).
                call = await asyncio.to_thread(self._store_call, job, step.adopt, None, [])
                return call, pending
            if step.wait_s > 0:
                return Result(
                    Verdict.WAIT,
                    error="call record create unanswered: waiting for HubSpot's search to show it",
                    delay_s=step.wait_s,
                )
        await asyncio.to_thread(self._intend_create, job)
        first, rest = pending[:BATCH], pending[BATCH:]
        try:
            created = await client.create_call(properties, first, at_most_once=True)
        except HubSpotError as exc:
            if not may_have_reached_hubspot(exc):
                await asyncio.to_thread(self._forget_intent, job)  # refused: nothing to look for
            raise
        # Stored at once: a crash after this point updates this call instead of making another.
        call = await asyncio.to_thread(self._store_call, job, created.id, digest, first)
        return call, rest

    def _key(self, job: _Job) -> tuple[int, str, str, str]:
        rec = job.recording
        return (job.op.portal_id, rec.zoom_account_id, rec.webinar_id, rec.instance_uuid)

    def _intend_create(self, job: _Job) -> None:
        """Committed before the create is sent: a row without call id, `updated_at` = when sent."""
        key = self._key(job)
        with unit_of_work(self.engine) as session:
            row = session.get(RecordingCall, key)
            if row is None:
                row = RecordingCall(
                    portal_id=key[0], zoom_account_id=key[1], webinar_id=key[2], instance_uuid=key[3]
                )
                session.add(row)
            row.updated_at = self.now()
            session.flush()
            job.call = RecordingCall(**row.model_dump())

    def _forget_intent(self, job: _Job) -> None:
        with unit_of_work(self.engine) as session:
            row = session.get(RecordingCall, self._key(job))
            if row is not None and row.call_id is None:
                session.delete(row)
        job.call = None

    def _store_call(self, job: _Job, call_id: str, digest: str | None, added: list[str]) -> RecordingCall:
        key = self._key(job)
        with unit_of_work(self.engine) as session:
            row = session.get(RecordingCall, key)
            if row is None:
                row = RecordingCall(
                    portal_id=key[0], zoom_account_id=key[1], webinar_id=key[2], instance_uuid=key[3]
                )
                session.add(row)
            row.call_id = call_id
            row.properties_hash = digest
            row.contact_ids = sorted(set(row.contact_ids or []) | set(added), key=int)
            row.updated_at = self.now()
            session.flush()
            job.call = RecordingCall(**row.model_dump())
            return job.call

    async def _recordable_events(self, client: HubSpotClient, job: _Job, setup: PortalSetup) -> Result | None:
        """A "Zoom: recordable event" activity on every synced attendee's contact, through the portal's
        timeline writer; None when all are written (or already were), else the first failure."""
        rec, webinar = job.recording, job.webinar
        start = rec.start_time or webinar.actual_start_at or webinar.scheduled_start_at
        values = {
            "topic": rec.topic or webinar.topic,
            "start_time": start,
            "recording_url": recording_url(rec),
        }
        instance = hashlib.sha256(rec.instance_uuid.encode()).hexdigest()[:12]
        activities = [
            Activity(
                ActivityKind.RECORDING,
                event_id("zoom-rec", f"{webinar.webinar_id}-{instance}", email),
                contact_id,
                start or self.now(),
                values,
            )
            for email, contact_id in sorted(job.contacts.items())
        ]
        writer = writer_for(setup, self.engine, job.op.portal_id, batch_size=BATCH)
        written = await writer.write(client, activities)
        return next(
            (r for a in activities if (r := written.get(a.key, DONE)).verdict is not Verdict.DONE), None
        )

    # ---- audit ------------------------------------------------------------------------------------

    def _audit_skip(self, job: _Job) -> None:
        if job.skip is None:
            raise ValueError("_audit_skip called for a recording that is not skipped")
        with unit_of_work(self.engine) as session:
            if job.skip is RecordingSkipReason.SETTINGS_OFF:
                audit_recording_settings_off(session, job.conn, job.webinar.webinar_id)
                return
            upsert_audit(
                session,
                job.conn,
                job.webinar.webinar_id,
                key=RECORDING_AUDIT_KEY,
                code=AuditCode.RECORDING_NOT_SYNCED,
                status=AuditStatus.WARNING,
                message=f"recording not synced: {_SKIP_MESSAGES[job.skip]}",
                details={"reason": job.skip.value},
            )

    def _audit_synced(self, job: _Job, call_id: str, timeline_error: str | None) -> None:
        rec = job.recording
        with unit_of_work(self.engine) as session:
            upsert_audit(
                session,
                job.conn,
                job.webinar.webinar_id,
                key=RECORDING_AUDIT_KEY,
                code=AuditCode.RECORDING_SYNCED,
                status=AuditStatus.SUCCESS,
                message=(
                    f"recording synced: call record {call_id} "
                    f"{'with' if rec.transcript_state == TranscriptState.FETCHED else 'without'} transcript, "
                    f"on {len(job.contacts)} attendee contacts"
                    + ("" if timeline_error is None else f"; recordable events failed: {timeline_error}")
                ),
                details={
                    "call_id": call_id,
                    "contacts": len(job.contacts),
                    "transcript": rec.transcript_state == TranscriptState.FETCHED,
                },
            )
