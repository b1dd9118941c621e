"""What the fake Zoom stores (accounts, tokens, users, webinars, registrants, sessions, recordings)
and reports (statistics, gate decisions, webhook deliveries, action results), with Zoom's JSON shapes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

import httpx

from app.sandbox import gate
from app.sandbox.gate import GateOutcome
from app.sandbox.zoom_common import (
    JSON,
    RATE_LIMIT_MESSAGE,
    REGISTRANT_FIELDS,
    ZOOM_WEB,
    RateLabel,
    invalid_token,
    iso,
)
from app.sandbox.zoom_webhook_scenario import Participant, WebinarScenario
from app.sandbox.zoom_webhook_signing import Envelope

# --------------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    id: str
    client_id: str
    client_secret: str


@dataclass
class IssuedToken:
    account_id: str
    expires_at: float


@dataclass
class User:
    id: str
    account_id: str
    email: str
    first_name: str
    last_name: str
    created_at: datetime
    type: int = 2
    pmi: int = 0

    @property
    def display_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip() or self.email.split("@")[0]

    def to_json(self, *, full: bool = False) -> JSON:
        body: JSON = {
            "id": self.id,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "display_name": self.display_name,
            "email": self.email,
            "type": self.type,
            "pmi": self.pmi,
            "timezone": "America/New_York",
            "verified": 1,
            "dept": "",
            "created_at": iso(self.created_at),
            "user_created_at": iso(self.created_at),
            "last_login_time": iso(self.created_at),
            "language": "en-US",
            "status": "active",
            "role_id": "0",
        }
        if full:
            body["account_id"] = self.account_id
            body["role_name"] = "Owner"
            body["group_ids"] = []
        return body


@dataclass
class Registrant:
    id: str
    email: str
    first_name: str
    last_name: str
    status: str
    join_url: str
    create_time: datetime
    fields: dict[str, str] = field(default_factory=dict)
    custom_questions: list[JSON] = field(default_factory=list)
    source: str = "api"

    def to_json(self) -> JSON:
        body: JSON = {
            "id": self.id,
            "email": self.email,
            "first_name": self.first_name,
            "last_name": self.last_name,
        }
        body.update({name: self.fields.get(name, "") for name in REGISTRANT_FIELDS})
        body.update(
            {
                "custom_questions": [dict(q) for q in self.custom_questions],
                "status": self.status,
                "create_time": iso(self.create_time),
                "join_url": self.join_url,
            }
        )
        return body


@dataclass
class Session:
    """One join/leave of one participant (a rejoin is a new session with new ids)."""

    participant: Participant
    guest: bool
    raw_email: str
    join_time: datetime
    seq: int
    leave_time: datetime | None = None

    @property
    def user_id(self) -> str:
        return self.participant.user_id

    @property
    def shown_email(self) -> str:
        return self.participant.email or ""

    def duration(self) -> int:
        if self.leave_time is None:
            return 0
        return max(0, int((self.leave_time - self.join_time).total_seconds()))

    def row(self, *, report: bool, include_registrant_id: bool) -> JSON:
        p = self.participant
        leave = iso(self.leave_time) if self.leave_time is not None else ""
        body: JSON = {}
        if report:
            body["customer_key"] = ""
        body.update({"id": p.participant_user_id, "name": p.name, "user_id": p.user_id})
        if include_registrant_id:
            body["registrant_id"] = p.registrant_id or ""
        body.update(
            {
                "user_email": self.shown_email,
                "join_time": iso(self.join_time),
                "leave_time": leave,
                "duration": self.duration(),
                "failover": False,
                "status": "in_meeting",
            }
        )
        if report:
            body["participant_user_id"] = p.participant_user_id
        return body

    def snapshot(self) -> JSON:
        body = self.row(report=False, include_registrant_id=True)
        body.update(
            guest=self.guest, raw_email=self.raw_email, participant_uuid=self.participant.participant_uuid
        )
        return body


_MEDIA_TYPES = {"MP4": "video/mp4", "M4A": "audio/mp4", "VTT": "text/vtt; charset=utf-8"}


@dataclass
class RecordingFile:
    id: str
    file_type: str
    extension: str
    recording_type: str
    start: datetime
    end: datetime
    status: str
    content: bytes
    available: bool = True
    play_token: str = ""
    cdn_signature: str = ""

    @property
    def media_type(self) -> str:
        return _MEDIA_TYPES.get(self.extension, "application/octet-stream")

    @property
    def downloadable(self) -> bool:
        return self.available and self.status == "completed"

    def to_json(self, *, public_url: str, meeting_uuid: str) -> JSON:
        body: JSON = {
            "id": self.id,
            "meeting_id": meeting_uuid,
            "recording_start": iso(self.start),
            "recording_end": iso(self.end),
            "file_type": self.file_type,
            "file_extension": self.extension,
            "file_size": len(self.content),
        }
        if self.file_type != "TRANSCRIPT":
            body["play_url"] = f"{ZOOM_WEB}/rec/play/{self.play_token}"
        body["download_url"] = f"{public_url}/rec/download/{self.id}"
        body["status"] = self.status
        body["recording_type"] = self.recording_type
        return body


@dataclass
class Recording:
    share_url: str
    passcode: str
    status: str
    files: list[RecordingFile] = field(default_factory=list)
    download_tokens: dict[str, float] = field(default_factory=dict)

    @property
    def transcript(self) -> RecordingFile | None:
        return next((f for f in self.files if f.file_type == "TRANSCRIPT"), None)

    @property
    def media_files(self) -> list[RecordingFile]:
        return [f for f in self.files if f.file_type != "TRANSCRIPT"]


@dataclass
class Webinar:
    id: str
    account_id: str
    host: User
    scenario: WebinarScenario
    agenda: str
    approval_type: int
    alternative_hosts: list[str]
    questions: list[JSON]
    custom_questions: list[JSON]
    created_at: datetime
    password: str
    registration_token: str
    status: str = "waiting"
    registrants: dict[str, Registrant] = field(default_factory=dict)
    active_by_email: dict[str, str] = field(default_factory=dict)
    sessions: list[Session] = field(default_factory=list)
    open_sessions: dict[str, Session] = field(default_factory=dict)
    recording: Recording | None = None
    registration_requests: Counter[tuple[str, date]] = field(default_factory=Counter)

    @property
    def uuid(self) -> str:
        return self.scenario.webinar_uuid

    @property
    def instance_uuid(self) -> str:
        return self.scenario.instance_uuid

    @property
    def topic(self) -> str:
        return self.scenario.topic

    @property
    def type(self) -> int:
        return self.scenario.webinar_type

    @property
    def start_time(self) -> datetime:
        return self.scenario.start

    @property
    def registration_enabled(self) -> bool:
        return self.approval_type != 2

    @property
    def join_url(self) -> str:
        return f"{ZOOM_WEB}/j/{self.id}"

    @property
    def registration_url(self) -> str:
        return f"{ZOOM_WEB}/webinar/register/WN_{self.registration_token}"

    def host_emails(self) -> set[str]:
        return {self.host.email.lower(), *(e.strip().lower() for e in self.alternative_hosts if e.strip())}

    def active_registrant(self, email: str) -> Registrant | None:
        registrant_id = self.active_by_email.get(email.lower())
        return self.registrants.get(registrant_id) if registrant_id else None

    def sorted_sessions(self) -> list[Session]:
        return sorted(self.sessions, key=lambda s: (s.join_time, s.seq))

    def to_json(self) -> JSON:
        s = self.scenario
        body: JSON = {
            "uuid": self.uuid,
            "id": int(self.id),
            "host_id": self.host.id,
            "host_email": self.host.email,
            "topic": s.topic,
            "type": s.webinar_type,
            "start_time": iso(s.start),
            "duration": s.duration_minutes,
            "timezone": s.timezone,
            "agenda": self.agenda,
            "created_at": iso(self.created_at),
            "start_url": f"{ZOOM_WEB}/s/{self.id}?zak=sandbox",
            "join_url": self.join_url,
            "password": self.password,
            "is_simulive": False,
        }
        if self.registration_enabled:
            body["registration_url"] = self.registration_url
        if s.webinar_type == 9:
            body["occurrences"] = [
                {
                    "occurrence_id": str(int(s.start.timestamp() * 1000)),
                    "start_time": iso(s.start),
                    "duration": s.duration_minutes,
                    "status": "available",
                }
            ]
            body["recurrence"] = {"type": 1, "repeat_interval": 1, "end_times": 1}
        body["settings"] = {
            "host_video": True,
            "panelists_video": True,
            "practice_session": False,
            "hd_video": True,
            "approval_type": self.approval_type,
            "registration_type": 1,
            "audio": "both",
            "auto_recording": "cloud",
            "enforce_login": False,
            "close_registration": False,
            "show_share_button": True,
            "allow_multiple_devices": False,
            "on_demand": False,
            "alternative_hosts": ";".join(self.alternative_hosts),
            "registrants_confirmation_email": True,
            "registrants_email_notification": True,
            "registrants_restrict_number": 0,
            "meeting_authentication": False,
            "question_and_answer": {"enable": True},
            "contact_name": self.host.display_name,
            "contact_email": self.host.email,
        }
        return body

    def questions_json(self) -> JSON:
        return {
            "questions": [dict(q) for q in self.questions],
            "custom_questions": [dict(q) for q in self.custom_questions],
        }

    def summary_json(self) -> JSON:
        """An entry of ``GET /users/{userId}/webinars``."""
        s = self.scenario
        return {
            "uuid": self.uuid,
            "id": int(self.id),
            "host_id": self.host.id,
            "topic": s.topic,
            "type": s.webinar_type,
            "start_time": iso(s.start),
            "duration": s.duration_minutes,
            "timezone": s.timezone,
            "agenda": self.agenda,
            "created_at": iso(self.created_at),
            "join_url": self.join_url,
            "is_simulive": False,
        }


@dataclass
class Stats(gate.RequestStats):
    """The gate's counters, plus 429s per ``"METHOD /path/template"``."""

    throttled: Counter[str] = field(default_factory=Counter)

    def to_json(self) -> JSON:
        return {
            **super().to_json(),
            "throttled": dict(sorted(self.throttled.items())),
            "throttled_total": sum(self.throttled.values()),
        }


@dataclass(frozen=True)
class GateDecision:
    outcome: GateOutcome
    status_code: int = 200
    label: RateLabel | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def body(self) -> JSON:
        if self.outcome in (GateOutcome.BURST, GateOutcome.THROTTLED):
            return {"code": 429, "message": RATE_LIMIT_MESSAGE}
        if self.outcome is GateOutcome.UNAUTHORIZED:
            return invalid_token().body()
        if self.outcome is GateOutcome.DOWN:
            return {"code": 503, "message": "Service Unavailable: the Zoom sandbox is down."}
        return {"code": self.status_code, "message": "Injected Zoom sandbox fault."}


@dataclass
class WebhookTarget:
    url: str
    secret: str
    transport: httpx.AsyncBaseTransport | None = None

    def to_json(self) -> JSON:
        kind = "url" if self.transport is None else type(self.transport).__name__
        return {"url": self.url, "transport": kind}


@dataclass
class DeliveryRecord:
    """One webhook POST (or the attempt, when no target is set or the request failed)."""

    index: int
    event: str
    envelope: Envelope
    url: str | None
    request_id: str | None
    status_code: int | None
    response_body: str
    error: str | None
    elapsed_ms: float
    sent_at: datetime
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    def to_json(self, *, with_envelope: bool = True) -> JSON:
        body: JSON = {
            "index": self.index,
            "event": self.event,
            "url": self.url,
            "request_id": self.request_id,
            "status_code": self.status_code,
            "ok": self.ok,
            "response_body": self.response_body,
            "error": self.error,
            "elapsed_ms": round(self.elapsed_ms, 2),
            "sent_at": iso(self.sent_at),
        }
        if with_envelope:
            body["envelope"] = self.envelope
        return body


@dataclass
class ActionResult:
    """What a control action changed, and what happened to its webhooks."""

    result: JSON
    deliveries: list[DeliveryRecord] = field(default_factory=list)
    events: list[str] = field(default_factory=list)

    def to_json(self) -> JSON:
        return {
            "result": self.result,
            "events": list(self.events),
            "deliveries": [d.to_json(with_envelope=False) for d in self.deliveries],
        }
