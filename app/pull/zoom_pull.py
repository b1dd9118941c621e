"""One webinar pulled from Zoom's REST API, turned into webhook-shaped events (see app/ingest/synthetic).

The events carry the same keys as Zoom's webhooks (registrant id, participant session and times,
recording file ids), so whatever webhooks already delivered is not doubled, and whatever they lost
is filled in by the normal pipeline. Pure apart from the Zoom calls.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from app.ingest.synthetic import envelope
from app.integrations.zoom.errors import ZoomRecordingNotFound, ZoomUserNotFound, ZoomWebinarNotFound
from app.integrations.zoom.models import Participant, Recordings, Registrant, ZoomUser, ZoomWebinar

REGISTRANT_STATUSES = ("approved", "pending", "denied")


class ZoomPullApi(Protocol):
    async def get_webinar(self, webinar_id: str) -> ZoomWebinar: ...

    async def get_user(self, user_id: str) -> ZoomUser: ...

    async def list_registrants(self, webinar_id: str, *, status: str = "approved") -> list[Registrant]: ...

    async def list_participants(self, webinar_id: str) -> list[Participant]: ...

    async def get_recordings(self, meeting_id: str) -> Recordings: ...


class WebinarGone(Exception):
    """Zoom does not know the webinar (deleted, expired, or another account's)."""


@dataclass
class Pulled:
    envelopes: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment is not None else None


def _webinar_id_value(webinar_id: str) -> int | str:
    return int(webinar_id) if webinar_id.isdigit() else webinar_id


def webinar_object(webinar: ZoomWebinar) -> dict[str, Any]:
    obj = {
        "id": _webinar_id_value(webinar.id),
        "uuid": webinar.uuid,
        "host_id": webinar.host_id,
        "topic": webinar.topic or None,
        "type": webinar.type,
        "start_time": _iso(webinar.start_time),
        "duration": webinar.duration,
        "timezone": webinar.timezone,
        "join_url": webinar.join_url,
        "registration_url": webinar.registration_url,
    }
    return {k: v for k, v in obj.items() if v is not None}


def meta_envelope(
    account_id: str, webinar: ZoomWebinar, host_email: str | None, ts: int, source: str
) -> dict[str, Any]:
    """The webinar as it is now at Zoom; the host (operator) carries the host's email."""
    env = envelope("webinar.updated", ts, account_id, webinar_object(webinar), source=source)
    if host_email and webinar.host_id:
        env["payload"]["operator"] = host_email
        env["payload"]["operator_id"] = webinar.host_id
    return env


def registrant_envelopes(
    account_id: str, webinar: ZoomWebinar, registrants: Sequence[Registrant], ts: int, source: str
) -> list[dict[str, Any]]:
    base = webinar_object(webinar)
    out = []
    for reg in registrants:
        status = (reg.status or "approved").lower()
        event = "webinar.registration_denied" if status == "denied" else "webinar.registration_created"
        registrant = {
            "id": reg.id,
            "email": reg.email,
            "first_name": reg.first_name,
            "last_name": reg.last_name,
            "status": "pending" if status == "pending" else "approved",
            "join_url": reg.join_url,
            "create_time": _iso(reg.create_time),
        }
        obj = {**base, "registrant": {k: v for k, v in registrant.items() if v is not None}}
        # A registration's own time, when Zoom gives it, dates its timeline event; the status clock
        # is the pull's time, so what Zoom says now wins over older webhooks.
        out.append(envelope(event, ts, account_id, obj, source=source))
    return out


def participant_envelopes(
    account_id: str, webinar: ZoomWebinar, rows: Sequence[Participant], ts: int, source: str
) -> list[dict[str, Any]]:
    base = {"id": str(webinar.id), "uuid": webinar.uuid, "host_id": webinar.host_id, "topic": webinar.topic}
    out = []
    for row in rows:
        if row.join_time is None:
            continue
        participant = {
            "user_id": row.user_id or row.id or "",
            "user_name": row.name or "",
            "id": row.participant_user_id or row.id or "",
            "email": row.user_email or "",
            "registrant_id": row.registrant_id or None,
        }
        joined = {**participant, "join_time": _iso(row.join_time)}
        out.append(
            envelope(
                "webinar.participant_joined", ts, account_id, {**base, "participant": joined}, source=source
            )
        )
        if row.leave_time is not None:
            left = {**participant, "leave_time": _iso(row.leave_time)}
            out.append(
                envelope(
                    "webinar.participant_left", ts, account_id, {**base, "participant": left}, source=source
                )
            )
    return out


def ended_envelope(
    account_id: str, webinar: ZoomWebinar, rows: Sequence[Participant], ts: int, source: str
) -> dict[str, Any] | None:
    """The webinar's run, estimated from the report when the webhook `webinar.ended` was lost."""
    joins = [r.join_time for r in rows if r.join_time is not None]
    leaves = [r.leave_time for r in rows if r.leave_time is not None]
    if not joins or not leaves:
        return None
    obj = {
        "id": str(webinar.id),
        "uuid": webinar.uuid,
        "host_id": webinar.host_id,
        "topic": webinar.topic,
        "start_time": _iso(min(joins)),
        "end_time": _iso(max(leaves)),
    }
    return envelope("webinar.ended", ts, account_id, obj, source=source)


def recording_envelope(
    account_id: str, recordings: Recordings, host_email: str | None, ts: int, source: str
) -> dict[str, Any]:
    files = [f.model_dump(mode="json", exclude_none=True) for f in recordings.recording_files]
    obj = {
        "id": _webinar_id_value(recordings.id),
        "uuid": recordings.uuid,
        "host_id": recordings.host_id,
        "host_email": host_email,
        "topic": recordings.topic,
        "start_time": _iso(recordings.start_time),
        "duration": recordings.duration,
        "share_url": recordings.share_url,
        "recording_files": files,
    }
    env = envelope(
        "recording.completed", ts, account_id, {k: v for k, v in obj.items() if v is not None}, source=source
    )
    if recordings.download_access_token:
        env["download_token"] = recordings.download_access_token
    return env


async def pull_webinar(
    zoom: ZoomPullApi,
    account_id: str,
    webinar_id: str,
    *,
    has_actual_end: bool,
    source: str,
    details_only: bool = False,
) -> Pulled:
    """Everything Zoom knows of the webinar now, as events. Raises WebinarGone if Zoom does not know it."""
    ts = int(time.time() * 1000)
    try:
        webinar = await zoom.get_webinar(webinar_id)
    except ZoomWebinarNotFound as exc:
        raise WebinarGone(str(exc)) from exc
    host_email = webinar.host_email
    if not host_email and webinar.host_id:
        try:
            host_email = (await zoom.get_user(webinar.host_id)).email or None
        except ZoomUserNotFound:
            host_email = None
    pulled = Pulled(envelopes=[meta_envelope(account_id, webinar, host_email, ts, source)])
    if details_only:
        pulled.counts = {"registrants": 0, "participant_sessions": 0, "recordings": 0, "events": 1}
        return pulled
    registrants: list[Registrant] = []
    if webinar.registration_enabled:
        for status in REGISTRANT_STATUSES:
            registrants.extend(await zoom.list_registrants(webinar_id, status=status))
    pulled.envelopes += registrant_envelopes(account_id, webinar, registrants, ts, source)
    try:
        rows = await zoom.list_participants(webinar_id)
    except ZoomWebinarNotFound:
        rows = []  # not held yet (or no report): nothing to fill in
    if rows and not has_actual_end:
        ended = ended_envelope(account_id, webinar, rows, ts, source)
        if ended is not None:
            pulled.envelopes.append(ended)
    pulled.envelopes += participant_envelopes(account_id, webinar, rows, ts, source)
    recordings = 0
    try:
        found = await zoom.get_recordings(webinar_id)
    except (ZoomRecordingNotFound, ZoomWebinarNotFound):
        found = None
    if found is not None and found.recording_files:
        pulled.envelopes.append(recording_envelope(account_id, found, host_email, ts, source))
        recordings = 1
    pulled.counts = {
        "registrants": len(registrants),
        "participant_sessions": sum(1 for r in rows if r.join_time is not None),
        "recordings": recordings,
        "events": len(pulled.envelopes),
    }
    return pulled
