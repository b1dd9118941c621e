"""In-memory state and behaviour of the fake Zoom served by :mod:`app.sandbox.zoom`.

This module knows nothing about HTTP routing. :class:`ZoomSandbox` holds the accounts and their OAuth
apps, issued access tokens, users, webinars (registrants, participant sessions, cloud recordings), the
faults and rate limits of the request gate, request statistics, and the webhook target with the record
of every delivery. Whole-request failures raise :class:`ZoomError`, rendered by the HTTP layer as
Zoom's ``{"code": int, "message": str}`` JSON (OAuth failures as ``{"reason", "error"}``).

Webhook envelopes are built by one :class:`~app.sandbox.zoom_webhooks.WebinarScenario` per webinar (it
also makes the webinar/instance uuids, registrant ids and join URLs, participant ids and download
tokens), then signed with :func:`~app.sandbox.zoom_webhooks.make_delivery` and POSTed to the target.
State changes are synchronous (atomic within the event loop, done under :attr:`ZoomSandbox.lock`);
webhooks are sent afterwards, outside the lock, so the receiving service may call the sandbox's REST
API while it handles the webhook. Deliveries go out one at a time, in the order the events happened.

Choices where Zoom's behaviour is undocumented or simplified (see ``/work/shared/reference/zoom.md``):

* Registrants with status ``cancelled`` are not listed by ``GET /webinars/{id}/registrants`` under any
  ``status`` (``approved``/``pending``/``denied``; other values are a 400 code 300); the state snapshot
  shows them. A cancelled email that registers again gets a new registrant id; an email with an active
  (approved, pending or denied) registration gets that registration back (same id and join_url, 201, no
  webhook).
* Add registrant checks, in order: webinar (400 ``300`` invalid id, 404 ``3001``), registration enabled
  (``3000``), webinar not ended (``3038``), ``email``/``first_name`` present and well-formed (``300``),
  not the host nor an alternative host (``3027``), at most ``registrations_per_day`` requests per UTC day
  for the same email and webinar (429, counted before the duplicate check), then - when
  ``strict_questions`` - every required standard field and custom question answered (``300``; Zoom's
  enforcement is UNVERIFIED). Registrations made through the control API (Zoom's own form) skip the
  per-day limit and the question check.
* A webinar is "over" only after it ended (``/end``), not when its scheduled time has passed. It has
  one instance: it can be started and ended once.
* ``GET /past_webinars/{id}/participants`` and ``GET /report/webinars/{id}/participants`` answer 404
  ``3001`` until the webinar ended. Rows are one per join/leave session in join order; with
  ``include_fields=registrant_id`` every row has ``registrant_id`` (``""`` for non-registrants).
  Guests keep their email in the state, but ``user_email`` (and the webhook ``email``) is ``""``.
  Ending a webinar closes open sessions and sends ``webinar.participant_left`` for each, then
  ``webinar.ended``.
* Recordings need an ended webinar. ``recording.completed`` lists the MP4 and M4A files and is sent only
  when the recording is ``completed`` (a ``processing`` recording is listed by the REST API with
  ``processing`` files that cannot be downloaded). The transcript (``TRANSCRIPT``/``VTT``) is its own
  ``recording.transcript_completed`` event. A transcript file can exist but not be downloadable yet
  (404 code ``3301``, "not found yet"); ``set_transcript`` toggles that and may send the event either
  way, to model the race.
* Downloads accept ``Authorization: Bearer`` with an OAuth token of the recording's account or a
  ``download_token`` of that recording (valid 24 h); tokens in the query string are not accepted (401
  ``124``). With ``redirect_downloads`` the download answers 302 to a signed CDN-like URL on the sandbox.
* The token endpoint and downloads see the ``down``/``error_rate``/``slow_ms`` faults but not
  ``burst_429`` or the per-second rate limits. ``reset`` keeps issued tokens and the accounts.
* Webhooks caused by REST calls (``webinar.registration_created`` after ``POST .../registrants``) are
  sent in the background by default, as Zoom does (``await settle()`` waits for them); webhooks of
  control actions are awaited before the action returns.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import math
import random
import re
import secrets
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import unquote

import httpx
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from app.sandbox import gate
from app.sandbox.gate import Faults, GateOutcome, bearer, injected_fault
from app.sandbox.zoom_webhooks import Envelope, Participant, WebinarScenario, make_delivery

__all__ = [
    "DEFAULT_ACCOUNTS",
    "DEFAULT_PUBLIC_URL",
    "DEFAULT_RATE_LIMITS",
    "DEFAULT_WEBHOOK_SECRET",
    "Account",
    "ActionBody",
    "ActionResult",
    "DeliveryRecord",
    "FaultsUpdate",
    "GateDecision",
    "JoinAction",
    "LeaveAction",
    "RateLabel",
    "RecordingAction",
    "RegisterAction",
    "Registrant",
    "RegistrantAction",
    "RegistrantCreate",
    "RetryAfter",
    "SeedUser",
    "SeedUsers",
    "Session",
    "Stats",
    "TranscriptAction",
    "User",
    "WebhookTarget",
    "WebhookTargetUpdate",
    "Webinar",
    "WebinarCreate",
    "ZoomError",
    "ZoomSandbox",
    "transcript_vtt",
]

JSON = dict[str, Any]
T = TypeVar("T")

DEFAULT_ACCOUNT_ID = "sandbox-account"
DEFAULT_CLIENT_ID = "sandbox-client-id"
DEFAULT_CLIENT_SECRET = "sandbox-client-secret"  # noqa: S105 - a fake app's well-known default
DEFAULT_ACCOUNTS: Mapping[str, tuple[str, str]] = {
    DEFAULT_ACCOUNT_ID: (DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
}
DEFAULT_PUBLIC_URL = "http://zoom-sandbox.local"
DEFAULT_WEBHOOK_SECRET = "zoom-sandbox-webhook-secret"  # noqa: S105 - well-known default
DEFAULT_TRANSPORT_WEBHOOK_URL = "http://service.local/webhooks/zoom"
DEFAULT_HOST_EMAIL = "host@zoom-sandbox.example"
ZOOM_WEB = "https://us06web.zoom.us"
OAUTH_SCOPE = (
    "user:read:admin webinar:read:admin webinar:write:admin report:read:admin "
    "cloud_recording:read:recording:admin"
)
DOWNLOAD_TOKEN_TTL_S = 24 * 3600
REGISTRATIONS_PER_DAY = 3
REGISTRANT_STATUSES = ("approved", "pending", "denied")
REGISTRANT_FIELDS = (
    "address",
    "city",
    "country",
    "zip",
    "state",
    "phone",
    "industry",
    "org",
    "job_title",
    "purchasing_time_frame",
    "role_in_purchase_process",
    "no_of_employees",
    "comments",
)
RATE_LIMIT_MESSAGE = "You have reached the maximum per-second rate limit for this API. Try again later."
_EMAIL_RE = re.compile(r"^[^@\s;,]+@[^@\s;,]+\.[^@\s;,.]{2,}$")


class RateLabel(StrEnum):
    """Zoom's rate-limit labels (the ``X-RateLimit-Category`` header uses the capitalised name)."""

    LIGHT = "LIGHT"
    MEDIUM = "MEDIUM"
    HEAVY = "HEAVY"

    @property
    def category(self) -> str:
        return self.value.capitalize()


class RetryAfter(StrEnum):
    """How a 429 carries ``Retry-After``: seconds, an ISO date-time (as in Zoom's docs), an HTTP date,
    or not at all (Zoom does not always send it)."""

    SECONDS = "seconds"
    DATE = "date"
    HTTP_DATE = "http_date"
    ABSENT = "absent"


DEFAULT_RATE_LIMITS: Mapping[RateLabel, int] = {
    RateLabel.LIGHT: 30,
    RateLabel.MEDIUM: 20,
    RateLabel.HEAVY: 10,
}


# --------------------------------------------------------------------------------------------------
# Small helpers and errors
# --------------------------------------------------------------------------------------------------


def iso(moment: datetime) -> str:
    """Zoom's timestamp style: ``2024-06-20T16:00:00Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def valid_email(email: str) -> bool:
    return bool(_EMAIL_RE.fullmatch(email))


class ZoomError(Exception):
    """A whole-request failure with Zoom's error JSON (``body`` overrides it, e.g. for OAuth)."""

    def __init__(
        self,
        status_code: int,
        code: int,
        message: str,
        *,
        errors: list[JSON] | None = None,
        headers: Mapping[str, str] | None = None,
        body: JSON | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.errors = errors
        self.headers = dict(headers or {})
        self._body = body

    def body(self) -> JSON:
        if self._body is not None:
            return dict(self._body)
        body: JSON = {"code": self.code, "message": self.message}
        if self.errors:
            body["errors"] = self.errors
        return body


def invalid_token() -> ZoomError:
    return ZoomError(401, 124, "Invalid access token.")


def webinar_not_found(webinar_id: str) -> ZoomError:
    return ZoomError(404, 3001, f'Webinar "{webinar_id}" not found or has expired.')


def invalid_webinar_id() -> ZoomError:
    return ZoomError(400, 300, "Invalid webinar ID")


def user_not_found(user_id: str) -> ZoomError:
    return ZoomError(404, 1001, f"User does not exist: {user_id}.")


def no_recording() -> ZoomError:
    return ZoomError(404, 3301, "There is no recording for this meeting.")


def validation_failed(*fields: str) -> ZoomError:
    errors = [{"field": name, "message": "Invalid field."} for name in fields]
    return ZoomError(400, 300, "Validation Failed.", errors=errors)


def control_error(status_code: int, message: str) -> ZoomError:
    """A misuse of the control API (``code`` is the HTTP status)."""
    return ZoomError(status_code, status_code, message)


def oauth_error(status_code: int, error: str, reason: str) -> ZoomError:
    return ZoomError(status_code, status_code, reason, body={"reason": reason, "error": error})


# --------------------------------------------------------------------------------------------------
# Request bodies (Zoom's JSON shapes for the REST API; control-API bodies; unknown fields are ignored)
# --------------------------------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


def _to_str(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


Id = Annotated[str, BeforeValidator(_to_str)]


class CustomAnswer(_Body):
    title: str
    value: str = ""


class RegistrantCreate(_Body):
    """``POST /webinars/{id}/registrants``. Everything is optional here so that missing ``email`` or
    ``first_name`` become Zoom's 300 "Validation Failed." rather than a generic parse error."""

    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    address: str | None = None
    city: str | None = None
    country: str | None = None
    zip: str | None = None
    state: str | None = None
    phone: str | None = None
    industry: str | None = None
    org: str | None = None
    job_title: str | None = None
    purchasing_time_frame: str | None = None
    role_in_purchase_process: str | None = None
    no_of_employees: str | None = None
    comments: str | None = None
    custom_questions: list[CustomAnswer] = Field(default_factory=list)
    language: str | None = None
    source_id: str | None = None


class ActionBody(_Body):
    emit: bool = Field(default=True, description="Send the matching webhook (false: a lost webhook).")
    at: datetime | None = Field(default=None, description="When it happened (default: now).")


class RegisterAction(RegistrantCreate, ActionBody):
    """A registration made at Zoom (e.g. through Zoom's own form)."""

    status: Literal["approved", "pending"] | None = Field(
        default=None, description="Default: approved, or pending when approval_type is 1."
    )


class RegistrantAction(ActionBody):
    registrant_id: str
    by_host: bool = Field(default=False, description="Cancellation by the host instead of the registrant.")


class JoinAction(ActionBody):
    """Who joins: a registrant (by id), or someone by name (a guest unless ``email`` is shown)."""

    registrant_id: str | None = None
    name: str | None = None
    email: str | None = None
    guest: bool = Field(default=False, description="Zoom removes this participant's email (§4.1).")
    user_id: str | None = Field(default=None, description="A Zoom user of the account, signed in.")


class LeaveAction(ActionBody):
    user_id: str | None = Field(default=None, description="The session's participant user_id.")
    registrant_id: str | None = Field(default=None, description="Leave the registrant's open session.")


class RecordingAction(ActionBody):
    status: Literal["completed", "processing"] = "completed"
    with_transcript: bool = True
    transcript_available: bool = Field(
        default=True, description="False: the transcript is listed but downloads 404 (not found yet)."
    )
    vtt: str | None = Field(default=None, description="Transcript content (default: a generated WebVTT).")


class TranscriptAction(ActionBody):
    available: bool = True
    vtt: str | None = None


class SeedUser(_Body):
    email: str
    first_name: str = ""
    last_name: str = ""
    id: str | None = None
    type: int = 2


class SeedUsers(_Body):
    account_id: str | None = None
    users: list[SeedUser]


class RegistrationQuestion(_Body):
    field_name: str
    required: bool = False


class CustomQuestion(_Body):
    title: str
    type: Literal["short", "single_radio", "single_dropdown", "multiple"] = "short"
    required: bool = False
    answers: list[str] = Field(default_factory=list)


class WebinarCreate(_Body):
    id: Id | None = Field(default=None, description="Digits; default: a new 11-digit id.")
    account_id: str | None = None
    host_id: str | None = Field(default=None, description="Default: the account's first user.")
    topic: str = "Sandbox webinar"
    agenda: str = ""
    start_time: datetime | None = Field(default=None, description="Default: a week from now.")
    duration: int = Field(default=60, ge=1)
    timezone: str = "America/New_York"
    type: Literal[5, 6, 9] = 5
    approval_type: Literal[0, 1, 2] = Field(default=0, description="0 auto, 1 manual, 2 no registration.")
    alternative_hosts: list[str] = Field(default_factory=list)
    questions: list[RegistrationQuestion] = Field(default_factory=list)
    custom_questions: list[CustomQuestion] = Field(default_factory=list)
    emit: bool = True
    at: datetime | None = None


class FaultsUpdate(gate.FaultsUpdate):
    rate_limit_enabled: bool | None = None
    rate_limits: dict[RateLabel, int] | None = Field(default=None, description="Per second, per account.")
    retry_after: RetryAfter | None = None


class WebhookTargetUpdate(_Body):
    url: str | None = Field(default=None, description="Null: no webhook target.")
    secret: str | None = None


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


# --------------------------------------------------------------------------------------------------
# Generated content
# --------------------------------------------------------------------------------------------------


def _vtt_time(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, ms = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{ms:03d}"


def transcript_vtt(topic: str, speakers: Sequence[str] = ()) -> str:
    """A realistic Zoom transcript: numbered WebVTT cues of ``Speaker Name: text``; the first speaker
    is the host (default ``Ada Lovelace``)."""
    host = speakers[0] if speakers else "Ada Lovelace"
    guests = list(speakers[1:3]) or ["Grace Hopper", "Alan Turing"]
    script = [
        (host, f"Welcome everyone to {topic}.", 3.0),
        (host, "We will take your questions at the end, so keep them coming in the Q&A.", 4.5),
        (guests[0], "Thanks for having us. Will the slides be shared afterwards?", 3.5),
        (host, "Yes, every registrant receives the recording and the slides.", 4.0),
        (guests[-1], "Could you say a little more about the roadmap for next quarter?", 4.0),
        (host, "Sure, let me share my screen.", 2.5),
        (host, "That is all for today. Thank you for joining, and see you next time!", 4.0),
    ]
    lines = ["WEBVTT", ""]
    at = 1.0
    for number, (speaker, text, length) in enumerate(script, start=1):
        lines += [str(number), f"{_vtt_time(at)} --> {_vtt_time(at + length)}", f"{speaker}: {text}", ""]
        at += length + 0.5
    return "\n".join(lines)


_MP4_HEADER = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
_M4A_HEADER = b"\x00\x00\x00\x18ftypM4A \x00\x00\x00\x00M4A mp42"


def _parse_basic(authorization: str | None) -> tuple[str, str] | None:
    if not authorization:
        return None
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, client_secret = decoded.partition(":")
    return (client_id, client_secret) if sep else None


def _page_size(value: int | None, *, default: int, maximum: int) -> int:
    if value is None:
        return default
    if value < 1:
        raise validation_failed("page_size")
    return min(value, maximum)


# --------------------------------------------------------------------------------------------------
# The whole sandbox
# --------------------------------------------------------------------------------------------------


class ZoomSandbox:
    """Every account, its users and webinars, OAuth tokens, faults, rate limits, statistics and
    webhook deliveries. Synchronous methods are REST reads and setup; ``async`` methods change
    webinars and send the matching webhooks."""

    def __init__(
        self,
        *,
        accounts: Mapping[str, tuple[str, str]] | None = None,
        public_url: str = DEFAULT_PUBLIC_URL,
        token_ttl_s: int = 3600,
        rate_limits: Mapping[RateLabel | str, int] | None = None,
        rate_limit_enabled: bool = True,
        retry_after: RetryAfter | str = RetryAfter.SECONDS,
        faults: Faults | None = None,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        webhook_transport: httpx.AsyncBaseTransport | None = None,
        background_api_webhooks: bool = True,
        redirect_downloads: bool = False,
        strict_questions: bool = True,
        registrations_per_day: int = REGISTRATIONS_PER_DAY,
        webhook_timeout_s: float = 10.0,
        seed: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        chosen = dict(DEFAULT_ACCOUNTS if accounts is None else accounts)
        if not chosen:
            raise ValueError("the Zoom sandbox needs at least one account")
        self.accounts: dict[str, Account] = {
            account_id: Account(account_id, client_id, secret)
            for account_id, (client_id, secret) in chosen.items()
        }
        self.public_url = public_url.rstrip("/")
        self.token_ttl_s = token_ttl_s
        self.background_api_webhooks = background_api_webhooks
        self.redirect_downloads = redirect_downloads
        self.strict_questions = strict_questions
        self.registrations_per_day = registrations_per_day
        self.webhook_timeout_s = webhook_timeout_s
        self.seed = seed
        self.clock = clock
        self.lock = asyncio.Lock()
        self.tokens: dict[str, IssuedToken] = {}
        initial_limits = {RateLabel(k): v for k, v in (rate_limits or DEFAULT_RATE_LIMITS).items()}
        self._initial: JSON = {
            "rate_limits": {**DEFAULT_RATE_LIMITS, **initial_limits},
            "rate_limit_enabled": rate_limit_enabled,
            "retry_after": RetryAfter(retry_after),
            "faults": faults or Faults(),
            "webhook": self._make_target(webhook_url, webhook_secret, webhook_transport),
        }
        self._clients: list[httpx.AsyncClient] = []
        self._client: httpx.AsyncClient | None = None
        self._client_target: WebhookTarget | None = None
        self._tail: asyncio.Task[list[DeliveryRecord]] | None = None
        self._pending: set[asyncio.Task[list[DeliveryRecord]]] = set()
        # Set by reset():
        self.rate_limits: dict[RateLabel, int] = {}
        self.rate_limit_enabled = rate_limit_enabled
        self.retry_after = RetryAfter(retry_after)
        self.faults = Faults()
        self.rng = random.Random()
        self._fault_rng = random.Random()
        self.webhook: WebhookTarget | None = None
        self.users: dict[str, User] = {}
        self.webinars: dict[str, Webinar] = {}
        self.deliveries: list[DeliveryRecord] = []
        self.stats = Stats()
        self._by_uuid: dict[str, str] = {}
        self._files: dict[str, tuple[str, RecordingFile]] = {}
        self._page_tokens: dict[str, tuple[str, int]] = {}
        self._windows: dict[tuple[str, RateLabel], deque[float]] = {}
        self._session_seq = 0
        self.reset()

    # ---- setup -------------------------------------------------------------------------------------

    @staticmethod
    def _make_target(
        url: str | None, secret: str | None, transport: httpx.AsyncBaseTransport | None
    ) -> WebhookTarget | None:
        if url is None and transport is None:
            return None
        return WebhookTarget(
            url=url or DEFAULT_TRANSPORT_WEBHOOK_URL,
            secret=secret or DEFAULT_WEBHOOK_SECRET,
            transport=transport,
        )

    def reset(self) -> None:
        """Forget users, webinars, deliveries, statistics and runtime settings: back to the state the
        constructor made. Issued access tokens stay valid."""
        initial = self._initial
        self.rate_limits = dict(initial["rate_limits"])
        self.rate_limit_enabled = bool(initial["rate_limit_enabled"])
        self.retry_after = RetryAfter(initial["retry_after"])
        self.faults = Faults(**initial["faults"].to_json())
        self.rng = random.Random(self.seed)
        self._fault_rng = random.Random(self.faults.seed)
        self.webhook = initial["webhook"]
        self.users = {}
        self.webinars = {}
        self.deliveries = []
        self.stats = Stats()
        self._by_uuid = {}
        self._files = {}
        self._page_tokens = {}
        self._windows = {}
        self._session_seq = 0
        for n, account_id in enumerate(self.accounts):
            email = DEFAULT_HOST_EMAIL if n == 0 else f"host{n + 1}@zoom-sandbox.example"
            self.add_user(email, "Ada", "Lovelace", user_id=f"SbxHostUser{n + 1:010d}", account_id=account_id)

    @property
    def default_account_id(self) -> str:
        return next(iter(self.accounts))

    def account(self, account_id: str | None = None) -> Account:
        found = self.accounts.get(account_id or self.default_account_id)
        if found is None:
            raise control_error(404, f"Account {account_id} is not served by this sandbox.")
        return found

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def _at(self, at: datetime | None) -> datetime:
        return utc(at) if at is not None else self.now().replace(microsecond=0)

    def _random_id(self, nbytes: int = 16) -> str:
        return base64.urlsafe_b64encode(self.rng.randbytes(nbytes)).rstrip(b"=").decode("ascii")

    def set_faults(self, update: FaultsUpdate) -> JSON:
        if gate.apply_faults_update(self.faults, update):
            self._fault_rng = random.Random(self.faults.seed)
        if update.rate_limit_enabled is not None:
            self.rate_limit_enabled = update.rate_limit_enabled
        if update.rate_limits is not None:
            for label, limit in update.rate_limits.items():
                if limit < 1:
                    raise validation_failed(f"rate_limits.{label.value}")
                self.rate_limits[RateLabel(label)] = limit
        if update.retry_after is not None:
            self.retry_after = update.retry_after
        return self.settings()

    def settings(self) -> JSON:
        return {
            **self.faults.to_json(),
            "rate_limit_enabled": self.rate_limit_enabled,
            "rate_limits": {label.value: limit for label, limit in self.rate_limits.items()},
            "retry_after": self.retry_after.value,
        }

    # ---- OAuth -------------------------------------------------------------------------------------

    def issue_token(self, authorization: str | None, grant_type: str | None, account_id: str | None) -> JSON:
        """``POST /oauth/token`` (Server-to-Server OAuth, ``account_credentials`` grant)."""
        credentials = _parse_basic(authorization)
        account = None
        if credentials is not None:
            client_id, client_secret = credentials
            account = next((a for a in self.accounts.values() if a.client_id == client_id), None)
            if account is not None and not hmac.compare_digest(
                client_secret.encode(), account.client_secret.encode()
            ):
                account = None
        if account is None:
            raise oauth_error(401, "invalid_client", "Invalid client_id or client_secret")
        if grant_type != "account_credentials":
            raise oauth_error(400, "unsupported_grant_type", "Unsupported grant type")
        if not account_id or account_id != account.id:
            raise oauth_error(400, "invalid_request", "Invalid account_id")
        token = self.mint_token(account.id)
        return {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": self.token_ttl_s,
            "scope": OAUTH_SCOPE,
            "api_url": self.public_url,
        }

    def mint_token(self, account_id: str | None = None, *, ttl_s: float | None = None) -> str:
        """A new access token for ``account_id`` (in-process shortcut for ``/oauth/token``)."""
        account = self.account(account_id)
        token = "eyJzdiI6IjAwMDAwMSIsImFsZyI6IkhTNTEyIn0." + secrets.token_urlsafe(32)
        ttl = self.token_ttl_s if ttl_s is None else ttl_s
        self.tokens[token] = IssuedToken(account.id, self.clock() + ttl)
        return token

    def expire_tokens(self) -> int:
        """Make every issued access token expire now; returns how many there were."""
        now = self.clock()
        for issued in self.tokens.values():
            issued.expires_at = min(issued.expires_at, now)
        return len(self.tokens)

    def account_for_token(self, token: str | None) -> Account | None:
        issued = self.tokens.get(token) if token else None
        if issued is None or issued.expires_at <= self.clock():
            return None
        return self.accounts.get(issued.account_id)

    # ---- request gate ------------------------------------------------------------------------------

    def record_request(self, key: str) -> None:
        self.stats.requests[key] += 1

    def record_status(self, status_code: int) -> None:
        self.stats.statuses[str(status_code)] += 1

    def fault_gate(self) -> GateDecision:
        """Faults only: ``down`` then random 5xx at ``error_rate`` (token endpoint, downloads)."""
        fault = injected_fault(self.faults, self._fault_rng)
        if fault is None:
            return GateDecision(GateOutcome.OK)
        self.stats.faults += 1
        return GateDecision(*fault)

    def gate(self, token: str | None, label: RateLabel | None, key: str = "") -> GateDecision:
        """One REST request, in order: down, random 5xx, auth, ``burst_429``, per-second rate limit of
        the account for ``label``."""
        decision = self.fault_gate()
        if decision.outcome is not GateOutcome.OK:
            return decision
        account = self.account_for_token(token)
        if account is None:
            self.stats.unauthorized += 1
            return GateDecision(GateOutcome.UNAUTHORIZED, 401)
        category = {"X-RateLimit-Category": label.category, "X-RateLimit-Type": "QPS"} if label else {}
        if self.faults.burst_429 > 0:
            self.faults.burst_429 -= 1
            self.stats.throttled[key] += 1
            headers = {**category, **self._retry_after_headers(1.0)}
            return GateDecision(GateOutcome.BURST, 429, label, headers)
        if label is not None and self.rate_limit_enabled:
            limit = self.rate_limits[label]
            window = self._windows.setdefault((account.id, label), deque())
            now = self.clock()
            while window and window[0] <= now - 1.0:
                window.popleft()
            if len(window) >= limit:
                self.stats.throttled[key] += 1
                wait = window[0] + 1.0 - now
                headers = {**category, "X-RateLimit-Limit": str(limit), **self._retry_after_headers(wait)}
                return GateDecision(GateOutcome.THROTTLED, 429, label, headers)
            window.append(now)
            headers = {
                **category,
                "X-RateLimit-Limit": str(limit),
                "X-RateLimit-Remaining": str(limit - len(window)),
            }
            return GateDecision(GateOutcome.OK, 200, label, headers)
        return GateDecision(GateOutcome.OK, 200, label, category)

    def _retry_after_headers(self, wait_s: float) -> dict[str, str]:
        seconds = max(1, math.ceil(wait_s))
        moment = self.now() + timedelta(seconds=seconds)
        if self.retry_after is RetryAfter.SECONDS:
            return {"Retry-After": str(seconds)}
        if self.retry_after is RetryAfter.DATE:
            return {"Retry-After": iso(moment)}
        if self.retry_after is RetryAfter.HTTP_DATE:
            return {"Retry-After": format_datetime(moment.replace(microsecond=0), usegmt=True)}
        return {}

    # ---- paging ------------------------------------------------------------------------------------

    def _page(
        self,
        key: str,
        items: Sequence[T],
        page_size: int | None,
        next_page_token: str | None,
        *,
        maximum: int,
        default: int = 30,
    ) -> tuple[list[T], JSON]:
        size = _page_size(page_size, default=default, maximum=maximum)
        start = 0
        if next_page_token:
            found = self._page_tokens.get(next_page_token)
            if found is None or found[0] != key:
                raise ZoomError(400, 300, "The next page token is either invalid or has expired.")
            start = found[1]
        page = list(items[start : start + size])
        token = ""
        if start + size < len(items):
            token = secrets.token_urlsafe(24)
            self._page_tokens[token] = (key, start + size)
        meta: JSON = {
            "page_count": math.ceil(len(items) / size) if items else 0,
            "page_size": size,
            "total_records": len(items),
            "next_page_token": token,
        }
        return page, meta

    # ---- users -------------------------------------------------------------------------------------

    def add_user(
        self,
        email: str,
        first_name: str = "",
        last_name: str = "",
        *,
        user_id: str | None = None,
        account_id: str | None = None,
        type: int = 2,
    ) -> User:
        account = self.account(account_id)
        email = email.strip()
        if not valid_email(email):
            raise validation_failed("email")
        if any(u.email.lower() == email.lower() for u in self.users.values()):
            raise ZoomError(409, 1005, f"Email {email} has already been used.")
        ident = user_id or self._random_id()
        if ident in self.users:
            raise ZoomError(409, 1005, f"User {ident} already exists.")
        user = User(
            id=ident,
            account_id=account.id,
            email=email,
            first_name=first_name,
            last_name=last_name,
            created_at=self.now().replace(microsecond=0),
            type=type,
            pmi=self.rng.randrange(10**9, 10**10),
        )
        self.users[ident] = user
        return user

    def _find_user(self, account_id: str, user_id: str) -> User:
        user = self.users.get(user_id)
        if user is None:
            lowered = unquote(user_id).lower()
            user = next((u for u in self.users.values() if u.email.lower() == lowered), None)
        if user is None or user.account_id != account_id:
            raise user_not_found(user_id)
        return user

    def list_users(
        self, account_id: str, *, page_size: int | None = None, next_page_token: str | None = None
    ) -> JSON:
        users = [u for u in self.users.values() if u.account_id == account_id]
        page, meta = self._page(f"users:{account_id}", users, page_size, next_page_token, maximum=2000)
        return {**meta, "page_number": 1, "users": [u.to_json() for u in page]}

    def get_user(self, account_id: str, user_id: str) -> JSON:
        return self._find_user(account_id, user_id).to_json(full=True)

    def list_user_webinars(
        self,
        account_id: str,
        user_id: str,
        *,
        page_size: int | None = None,
        next_page_token: str | None = None,
    ) -> JSON:
        user = self._find_user(account_id, user_id)
        webinars = [w for w in self.webinars.values() if w.host.id == user.id]
        page, meta = self._page(f"webinars:{user.id}", webinars, page_size, next_page_token, maximum=300)
        return {**meta, "webinars": [w.summary_json() for w in page]}

    # ---- webinars: lookup ----------------------------------------------------------------------------

    def find_webinar(self, raw_id: str) -> Webinar | None:
        """By numeric id, scheduled uuid or instance uuid (uuids may arrive URL-encoded, even twice)."""
        key = raw_id
        for _ in range(3):
            found = self.webinars.get(key) or self.webinars.get(self._by_uuid.get(key, ""))
            if found is not None:
                return found
            decoded = unquote(key)
            if decoded == key:
                break
            key = decoded
        return None

    def webinar(self, webinar_id: str | int) -> Webinar:
        """A webinar of any account (control API and in-process use); 404 code 3001 otherwise."""
        found = self.find_webinar(str(webinar_id))
        if found is None:
            raise webinar_not_found(str(webinar_id))
        return found

    def _api_webinar(self, account_id: str, raw_id: str) -> Webinar:
        found = self.find_webinar(raw_id)
        if found is None or found.account_id != account_id:
            if not raw_id.isdigit():
                raise invalid_webinar_id()
            raise webinar_not_found(raw_id)
        return found

    # ---- webinars: REST reads ------------------------------------------------------------------------

    def get_webinar(self, account_id: str, webinar_id: str) -> JSON:
        return self._api_webinar(account_id, webinar_id).to_json()

    def registrant_questions(self, account_id: str, webinar_id: str) -> JSON:
        return self._api_webinar(account_id, webinar_id).questions_json()

    def list_registrants(
        self,
        account_id: str,
        webinar_id: str,
        *,
        status: str | None = None,
        page_size: int | None = None,
        next_page_token: str | None = None,
    ) -> JSON:
        w = self._api_webinar(account_id, webinar_id)
        wanted = status or "approved"
        if wanted not in REGISTRANT_STATUSES:
            raise validation_failed("status")
        rows = [r for r in w.registrants.values() if r.status == wanted]
        key = f"registrants:{w.id}:{wanted}"
        page, meta = self._page(key, rows, page_size, next_page_token, maximum=300)
        return {**meta, "registrants": [r.to_json() for r in page]}

    def _participants(
        self,
        account_id: str,
        webinar_id: str,
        *,
        report: bool,
        page_size: int | None,
        next_page_token: str | None,
        include_fields: str | None,
    ) -> JSON:
        w = self._api_webinar(account_id, webinar_id)
        if w.status != "ended":
            raise webinar_not_found(webinar_id)
        include = {part.strip() for part in (include_fields or "").split(",")}
        sessions = w.sorted_sessions()
        key = f"{'report' if report else 'past'}:{w.id}"
        page, meta = self._page(key, sessions, page_size, next_page_token, maximum=300)
        rows = [s.row(report=report, include_registrant_id="registrant_id" in include) for s in page]
        return {**meta, "participants": rows}

    def past_participants(
        self,
        account_id: str,
        webinar_id: str,
        *,
        page_size: int | None = None,
        next_page_token: str | None = None,
        include_fields: str | None = None,
    ) -> JSON:
        """``GET /past_webinars/{id}/participants``."""
        return self._participants(
            account_id,
            webinar_id,
            report=False,
            page_size=page_size,
            next_page_token=next_page_token,
            include_fields=include_fields,
        )

    def report_participants(
        self,
        account_id: str,
        webinar_id: str,
        *,
        page_size: int | None = None,
        next_page_token: str | None = None,
        include_fields: str | None = None,
    ) -> JSON:
        """``GET /report/webinars/{id}/participants``."""
        return self._participants(
            account_id,
            webinar_id,
            report=True,
            page_size=page_size,
            next_page_token=next_page_token,
            include_fields=include_fields,
        )

    def get_recordings(self, account_id: str, meeting_id: str, *, include_fields: str | None = None) -> JSON:
        """``GET /meetings/{id}/recordings`` for a webinar id or uuid."""
        w = self.find_webinar(meeting_id)
        if w is None or w.account_id != account_id or w.recording is None:
            raise no_recording()
        body = self._recording_json(w, w.recording, w.recording.files)
        if "download_access_token" in {p.strip() for p in (include_fields or "").split(",")}:
            body["download_access_token"] = self._new_download_token(w.recording)
        return body

    def _recording_json(self, w: Webinar, rec: Recording, files: Sequence[RecordingFile]) -> JSON:
        begin = min((f.start for f in files), default=w.start_time)
        end = max((f.end for f in files), default=w.start_time)
        return {
            "uuid": w.instance_uuid,
            "id": int(w.id),
            "account_id": w.account_id,
            "host_id": w.host.id,
            "topic": w.topic,
            "type": w.type,
            "start_time": iso(w.scenario.actual_start or w.start_time),
            "timezone": w.scenario.timezone,
            "duration": max(1, math.ceil((end - begin).total_seconds() / 60)),
            "total_size": sum(len(f.content) for f in files),
            "recording_count": len(files),
            "share_url": rec.share_url,
            "password": "",
            "recording_play_passcode": rec.passcode,
            "recording_files": [
                f.to_json(public_url=self.public_url, meeting_uuid=w.instance_uuid) for f in files
            ],
        }

    def _new_download_token(self, rec: Recording) -> str:
        token = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzUxMiJ9." + secrets.token_urlsafe(48)
        rec.download_tokens[token] = self.clock() + DOWNLOAD_TOKEN_TTL_S
        return token

    # ---- downloads -----------------------------------------------------------------------------------

    def download(self, file_id: str, authorization: str | None) -> RecordingFile:
        """The file behind ``/rec/download/{file_id}``: 404 code 3301 when unknown or not ready yet,
        401 code 124 without a valid OAuth token of its account or ``download_token`` of its recording."""
        found = self._files.get(file_id)
        if found is None:
            raise ZoomError(404, 3301, "This recording file does not exist.")
        webinar_id, rec_file = found
        w = self.webinars[webinar_id]
        token = bearer(authorization)
        account = self.account_for_token(token)
        rec = w.recording
        download_ok = (
            token is not None and rec is not None and rec.download_tokens.get(token, 0.0) > self.clock()
        )
        if not download_ok and (account is None or account.id != w.account_id):
            raise invalid_token()
        if not rec_file.downloadable:
            raise ZoomError(404, 3301, "This recording file does not exist yet.")
        return rec_file

    def cdn_file(self, file_id: str, signature: str | None) -> RecordingFile:
        """The target of a download redirect: the signature in the URL is the credential."""
        found = self._files.get(file_id)
        if found is None or not signature or not hmac.compare_digest(found[1].cdn_signature, signature):
            raise ZoomError(403, 403, "Signature does not match.")
        if not found[1].downloadable:
            raise ZoomError(404, 3301, "This recording file does not exist yet.")
        return found[1]

    def cdn_url(self, rec_file: RecordingFile) -> str:
        return f"{self.public_url}/rec/cdn/{rec_file.id}?signature={rec_file.cdn_signature}"

    # ---- webinars: state changes (synchronous cores; the public async methods send webhooks) --------

    def _create_webinar(self, body: WebinarCreate) -> tuple[JSON, list[Envelope]]:
        account = self.account(body.account_id)
        if body.host_id is not None:
            host = self.users.get(body.host_id)
            if host is None or host.account_id != account.id:
                raise user_not_found(body.host_id)
        else:
            host = next((u for u in self.users.values() if u.account_id == account.id), None)
            if host is None:
                raise control_error(400, f"Account {account.id} has no user to host the webinar.")
        if body.id is not None:
            if not body.id.isdigit() or body.id in self.webinars:
                raise control_error(400, f"Webinar id {body.id!r} must be digits and not in use.")
            webinar_id = body.id
        else:
            webinar_id = str(self.rng.randrange(10**10, 10**11))
            while webinar_id in self.webinars:
                webinar_id = str(self.rng.randrange(10**10, 10**11))
        at = self._at(body.at)
        start = (
            utc(body.start_time) if body.start_time else (at + timedelta(days=7)).replace(minute=0, second=0)
        )
        scenario = WebinarScenario(
            account_id=account.id,
            webinar_id=webinar_id,
            host_id=host.id,
            host_email=host.email,
            topic=body.topic,
            start=start,
            duration_minutes=body.duration,
            webinar_type=body.type,
            seed=(self.seed << 40) ^ int(webinar_id),
            timezone=body.timezone,
        )
        created = scenario.created(at=at)
        w = Webinar(
            id=webinar_id,
            account_id=account.id,
            host=host,
            scenario=scenario,
            agenda=body.agenda,
            approval_type=body.approval_type,
            alternative_hosts=list(body.alternative_hosts),
            questions=[q.model_dump(include={"field_name", "required"}) for q in body.questions],
            custom_questions=[
                q.model_dump(include={"title", "type", "required", "answers"}) for q in body.custom_questions
            ],
            created_at=at,
            password=str(created["payload"]["object"].get("password", "")),
            registration_token=self._random_id(16),
        )
        self.webinars[webinar_id] = w
        self._by_uuid[w.uuid] = webinar_id
        self._by_uuid[w.instance_uuid] = webinar_id
        return w.to_json(), scenario.pop_envelopes()

    def _check_registration_open(self, w: Webinar) -> None:
        if not w.registration_enabled:
            raise ZoomError(400, 3000, f"This webinar does not have registration as required: {w.id}")
        if w.status == "ended":
            raise ZoomError(400, 3038, "Webinar is over, you cannot register now.")

    def _count_request(self, w: Webinar, email: str) -> None:
        day = self.now().date()
        key = (email.lower(), day)
        if w.registration_requests[key] >= self.registrations_per_day:
            midnight = datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC)
            headers = {
                "X-RateLimit-Category": RateLabel.LIGHT.category,
                "X-RateLimit-Type": "Daily-limit",
                **self._retry_after_headers((midnight - self.now()).total_seconds()),
            }
            raise ZoomError(
                429,
                429,
                f"You have exceeded the daily rate limit of ({self.registrations_per_day}) for Add a "
                f"webinar registrant API requests for the registrant ({email}). You can resubmit your "
                "request when the rate limit has reset.",
                headers=headers,
            )
        w.registration_requests[key] += 1

    def _check_questions(self, w: Webinar, body: RegistrantCreate) -> None:
        values = body.model_dump()
        missing = [
            str(q["field_name"])
            for q in w.questions
            if q.get("required") and not str(values.get(str(q["field_name"])) or "").strip()
        ]
        answered = {a.title: a.value for a in body.custom_questions if a.value.strip()}
        missing += [
            f"custom_questions.{q['title']}"
            for q in w.custom_questions
            if q.get("required") and q["title"] not in answered
        ]
        if missing:
            raise validation_failed(*missing)

    def _register(
        self, w: Webinar, body: RegistrantCreate, *, at: datetime, status: str | None, api: bool
    ) -> tuple[Registrant, bool, list[Envelope]]:
        """The rules of a registration; returns (registrant, whether it is new, envelopes)."""
        self._check_registration_open(w)
        email = (body.email or "").strip()
        first_name = (body.first_name or "").strip()
        invalid = [
            name for name, ok in (("email", valid_email(email)), ("first_name", bool(first_name))) if not ok
        ]
        invalid += [f"custom_questions.{a.title}" for a in body.custom_questions if len(a.value) > 128]
        if invalid:
            raise validation_failed(*invalid)
        if email.lower() in w.host_emails():
            raise ZoomError(400, 3027, "Host cannot register.")
        if api:
            self._count_request(w, email)
        existing = w.active_registrant(email)
        if existing is not None:
            return existing, False, []
        if api and self.strict_questions:
            self._check_questions(w, body)
        chosen = status or ("pending" if w.approval_type == 1 else "approved")
        last_name = (body.last_name or "").strip()
        custom = [(a.title, a.value) for a in body.custom_questions]
        registrant_id = w.scenario.register(
            email,
            first_name,
            last_name,
            at=at,
            status=chosen,
            org=body.org or None,
            job_title=body.job_title or None,
            custom_questions=custom,
        )
        fields = body.model_dump(include=set(REGISTRANT_FIELDS), exclude_none=True)
        registrant = Registrant(
            id=registrant_id,
            email=email,
            first_name=first_name,
            last_name=last_name,
            status=chosen,
            join_url=w.scenario.registrant(registrant_id).join_url,
            create_time=at,
            fields={k: str(v) for k, v in fields.items()},
            custom_questions=[{"title": t, "value": v} for t, v in custom],
            source="api" if api else "zoom",
        )
        w.registrants[registrant_id] = registrant
        w.active_by_email[email.lower()] = registrant_id
        return registrant, True, w.scenario.pop_envelopes()

    def _add_registrant_api(
        self, account_id: str, webinar_id: str, body: RegistrantCreate
    ) -> tuple[JSON, list[Envelope]]:
        w = self._api_webinar(account_id, webinar_id)
        registrant, _, envelopes = self._register(w, body, at=self._at(None), status=None, api=True)
        result = {
            "id": int(w.id),
            "registrant_id": registrant.id,
            "join_url": registrant.join_url,
            "start_time": iso(w.start_time),
            "topic": w.topic,
            "occurrences": [],
        }
        return result, envelopes

    def _registrant(self, w: Webinar, registrant_id: str) -> Registrant:
        found = w.registrants.get(registrant_id)
        if found is None:
            raise ZoomError(404, 3063, f"Registrant {registrant_id} not found.")
        return found

    def _set_registrant_status(
        self, webinar_id: str, registrant_id: str, action: str, *, at: datetime | None, by_host: bool
    ) -> tuple[JSON, list[Envelope]]:
        w = self.webinar(webinar_id)
        reg = self._registrant(w, registrant_id)
        allowed = {
            "approve": ("pending", "denied"),
            "deny": ("pending", "approved"),
            "cancel": ("approved", "pending"),
        }
        if reg.status not in allowed[action]:
            raise control_error(400, f"Cannot {action} a registrant whose status is {reg.status}.")
        when = self._at(at)
        if action == "approve":
            w.scenario.approve(reg.id, at=when)
            reg.status = "approved"
        elif action == "deny":
            w.scenario.deny(reg.id, at=when)
            reg.status = "denied"
        else:
            w.scenario.cancel(reg.id, at=when, by_host=by_host)
            reg.status = "cancelled"
            if w.active_by_email.get(reg.email.lower()) == reg.id:
                del w.active_by_email[reg.email.lower()]
        return reg.to_json(), w.scenario.pop_envelopes()

    def _start(self, webinar_id: str, at: datetime | None) -> tuple[JSON, list[Envelope]]:
        w = self.webinar(webinar_id)
        if w.status != "waiting":
            raise control_error(400, f"Webinar {w.id} has already {w.status}; it can start only once.")
        w.scenario.started(at=self._at(at))
        w.status = "started"
        return self._live_json(w), w.scenario.pop_envelopes()

    def _live_json(self, w: Webinar) -> JSON:
        s = w.scenario
        return {
            "id": w.id,
            "uuid": w.instance_uuid,
            "status": w.status,
            "actual_start": iso(s.actual_start) if s.actual_start else None,
            "actual_end": iso(s.actual_end) if s.actual_end else None,
            "open_sessions": len(w.open_sessions),
            "sessions": len(w.sessions),
        }

    def _join(
        self,
        webinar_id: str,
        *,
        registrant_id: str | None,
        name: str | None,
        email: str | None,
        guest: bool,
        user_id: str | None,
        at: datetime | None,
    ) -> tuple[JSON, list[Envelope]]:
        w = self.webinar(webinar_id)
        if w.status != "started":
            raise control_error(400, f"Webinar {w.id} is not in progress (status {w.status}).")
        s = w.scenario
        if registrant_id is not None:
            reg = self._registrant(w, registrant_id)
            if reg.status != "approved":
                raise control_error(400, f"Registrant {reg.id} is {reg.status} and cannot join.")
            participant = s.participant_for(reg.id)
            if name:
                participant = replace(participant, name=name)
            raw_email, is_guest = reg.email, False
        else:
            user = None
            if user_id is not None:
                user = self.users.get(user_id)
                if user is None or user.account_id != w.account_id:
                    raise user_not_found(user_id)
            elif email:
                user = next(
                    (
                        u
                        for u in self.users.values()
                        if u.account_id == w.account_id and u.email.lower() == email.lower()
                    ),
                    None,
                )
            display = name or (user.display_name if user else None)
            if not display:
                raise control_error(400, "A participant needs a registrant_id, a name or an account user.")
            participant = s.guest(display)
            if user is not None:
                participant = replace(participant, email=user.email, participant_user_id=user.id)
                raw_email, is_guest = user.email, False
            else:
                raw_email, is_guest = email or "", guest
                if email and not guest:
                    participant = replace(participant, email=email)
        when = self._at(at)
        self._session_seq += 1
        session = Session(participant, is_guest, raw_email, when, self._session_seq)
        w.sessions.append(session)
        w.open_sessions[participant.user_id] = session
        s.join(participant, at=when)
        return session.snapshot(), s.pop_envelopes()

    def _leave(
        self, webinar_id: str, *, user_id: str | None, registrant_id: str | None, at: datetime | None
    ) -> tuple[JSON, list[Envelope]]:
        w = self.webinar(webinar_id)
        session: Session | None = None
        if user_id is not None:
            session = w.open_sessions.get(user_id)
        elif registrant_id is not None:
            session = next(
                (
                    x
                    for x in reversed(w.sessions)
                    if x.leave_time is None and x.participant.registrant_id == registrant_id
                ),
                None,
            )
        if session is None:
            raise control_error(404, "No open participant session matches.")
        envelopes = self._close_session(w, session, self._at(at))
        return session.snapshot(), envelopes

    def _close_session(self, w: Webinar, session: Session, at: datetime) -> list[Envelope]:
        session.leave_time = max(at, session.join_time)
        w.open_sessions.pop(session.user_id, None)
        w.scenario.leave(session.participant, at=session.leave_time)
        return w.scenario.pop_envelopes()

    def _end(self, webinar_id: str, at: datetime | None) -> tuple[JSON, list[Envelope]]:
        w = self.webinar(webinar_id)
        if w.status != "started":
            raise control_error(400, f"Webinar {w.id} is not in progress (status {w.status}).")
        when = self._at(at)
        envelopes: list[Envelope] = []
        for session in list(w.open_sessions.values()):
            envelopes += self._close_session(w, session, when)
        w.scenario.ended(at=when)
        w.status = "ended"
        envelopes += w.scenario.pop_envelopes()
        return self._live_json(w), envelopes

    def _speakers(self, w: Webinar) -> list[str]:
        names = [w.host.display_name]
        for session in w.sorted_sessions():
            name = session.participant.name
            if not session.guest and name not in names:
                names.append(name)
        return names[:3]

    def _new_file(
        self, w: Webinar, file_type: str, extension: str, recording_type: str, content: bytes, status: str
    ) -> RecordingFile:
        begin = (w.scenario.actual_start or w.start_time) + timedelta(seconds=5)
        end = max(begin, (w.scenario.actual_end or begin) - timedelta(seconds=10))
        rec_file = RecordingFile(
            id=str(uuid.UUID(int=self.rng.getrandbits(128))),
            file_type=file_type,
            extension=extension,
            recording_type=recording_type,
            start=begin,
            end=end,
            status=status,
            content=content,
            play_token=self._random_id(24),
            cdn_signature=secrets.token_urlsafe(16),
        )
        self._files[rec_file.id] = (w.id, rec_file)
        return rec_file

    def _transcript_file(self, w: Webinar, rec: Recording, vtt: str | None, status: str) -> RecordingFile:
        content = (vtt if vtt is not None else transcript_vtt(w.topic, self._speakers(w))).encode("utf-8")
        existing = rec.transcript
        if existing is not None:
            if vtt is not None:
                existing.content = content
            return existing
        rec_file = self._new_file(w, "TRANSCRIPT", "VTT", "audio_transcript", content, status)
        rec.files.append(rec_file)
        return rec_file

    def _recording_event(self, w: Webinar, rec: Recording, *, transcript: bool, at: datetime) -> Envelope:
        s = w.scenario
        if transcript:
            envelope = s.transcript_completed(at=at, share_url=rec.share_url)
            files = [f for f in rec.files if f.file_type == "TRANSCRIPT"]
        else:
            envelope = s.recording_completed(at=at, share_url=rec.share_url, with_files=False)
            files = rec.media_files
        s.pop_envelopes()
        # The scenario's shape, with the sandbox's files (their download URLs point at the sandbox).
        obj = envelope["payload"]["object"]
        obj["recording_files"] = [
            f.to_json(public_url=self.public_url, meeting_uuid=w.instance_uuid) for f in files
        ]
        obj["total_size"] = sum(len(f.content) for f in files)
        obj["recording_count"] = len(files)
        rec.download_tokens[str(envelope["download_token"])] = self.clock() + DOWNLOAD_TOKEN_TTL_S
        return envelope

    def _add_recording(
        self,
        webinar_id: str,
        *,
        status: str,
        with_transcript: bool,
        transcript_available: bool,
        vtt: str | None,
        at: datetime | None,
    ) -> tuple[JSON, list[Envelope]]:
        w = self.webinar(webinar_id)
        if w.status != "ended":
            raise control_error(400, f"Webinar {w.id} has not ended; cloud recordings come after the end.")
        when = self._at(at)
        rec = w.recording
        if rec is not None and rec.status == "completed":
            raise control_error(409, f"Webinar {w.id} already has a completed recording.")
        if rec is None:
            w.scenario.recording_completed(at=when, with_files=False)
            w.scenario.pop_envelopes()
            rec = Recording(
                share_url=w.scenario.share_url or "", passcode=self._random_id(6)[:8], status=status
            )
            w.recording = rec
            mp4 = _MP4_HEADER + self.rng.randbytes(2048)
            m4a = _M4A_HEADER + self.rng.randbytes(1024)
            rec.files.append(self._new_file(w, "MP4", "MP4", "shared_screen_with_speaker_view", mp4, status))
            rec.files.append(self._new_file(w, "M4A", "M4A", "audio_only", m4a, status))
        rec.status = status
        for rec_file in rec.files:
            rec_file.status = status
        transcript = None
        if with_transcript:
            transcript = self._transcript_file(w, rec, vtt, status)
            transcript.status = status
            transcript.available = transcript_available
        envelopes: list[Envelope] = []
        if status == "completed":
            envelopes.append(self._recording_event(w, rec, transcript=False, at=when))
            if transcript is not None and transcript.available:
                envelopes.append(self._recording_event(w, rec, transcript=True, at=when))
        return self._recording_json(w, rec, rec.files), envelopes

    def _set_transcript(
        self, webinar_id: str, *, available: bool, vtt: str | None, at: datetime | None
    ) -> tuple[JSON, list[Envelope]]:
        w = self.webinar(webinar_id)
        rec = w.recording
        if rec is None or rec.status != "completed":
            raise control_error(400, f"Webinar {w.id} has no completed recording yet.")
        transcript = self._transcript_file(w, rec, vtt, "completed")
        transcript.status = "completed"
        transcript.available = available
        envelope = self._recording_event(w, rec, transcript=True, at=self._at(at))
        result = transcript.to_json(public_url=self.public_url, meeting_uuid=w.instance_uuid)
        result["available"] = available
        return result, [envelope]

    # ---- public async operations (state change under the lock, then webhooks outside it) ------------

    async def _act(self, change: Callable[[], tuple[JSON, list[Envelope]]], emit: bool) -> ActionResult:
        async with self.lock:
            result, envelopes = change()
        events = [str(e["event"]) for e in envelopes] if emit else []
        deliveries = await self._deliver(envelopes, background=False) if emit else []
        return ActionResult(result, deliveries, events)

    async def create_webinar(self, body: WebinarCreate | None = None, **fields: Any) -> ActionResult:
        """Create a webinar (``WebinarCreate`` or its fields as keywords); sends ``webinar.created``
        when ``emit``."""
        spec = body if body is not None else WebinarCreate(**fields)
        return await self._act(lambda: self._create_webinar(spec), spec.emit)

    async def add_registrant(self, account_id: str, webinar_id: str, body: RegistrantCreate) -> JSON:
        """``POST /webinars/{id}/registrants`` as the account's app; a new registration sends
        ``webinar.registration_created`` (in the background when ``background_api_webhooks``)."""
        async with self.lock:
            result, envelopes = self._add_registrant_api(account_id, webinar_id, body)
        await self._deliver(envelopes, background=self.background_api_webhooks)
        return result

    async def register(
        self,
        webinar_id: str | int,
        email: str,
        first_name: str,
        last_name: str = "",
        *,
        status: Literal["approved", "pending"] | None = None,
        custom_questions: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        at: datetime | None = None,
        emit: bool = True,
        **fields: str,
    ) -> ActionResult:
        """A registration made at Zoom (its own form): same rules as the API except the per-day limit
        and the required-question check; an existing active registration is returned unchanged."""
        pairs = custom_questions.items() if isinstance(custom_questions, Mapping) else custom_questions
        body = RegisterAction(
            email=email,
            first_name=first_name,
            last_name=last_name,
            custom_questions=[CustomAnswer(title=t, value=v) for t, v in pairs],
            status=status,
            at=at,
            emit=emit,
            **fields,
        )
        return await self.register_body(str(webinar_id), body)

    async def register_body(self, webinar_id: str, body: RegisterAction) -> ActionResult:
        def change() -> tuple[JSON, list[Envelope]]:
            w = self.webinar(webinar_id)
            registrant, created, envelopes = self._register(
                w, body, at=self._at(body.at), status=body.status, api=False
            )
            return {**registrant.to_json(), "created": created}, envelopes

        return await self._act(change, body.emit)

    async def approve(
        self, webinar_id: str | int, registrant_id: str, *, at: datetime | None = None, emit: bool = True
    ) -> ActionResult:
        return await self._act(
            lambda: self._set_registrant_status(
                str(webinar_id), registrant_id, "approve", at=at, by_host=True
            ),
            emit,
        )

    async def deny(
        self, webinar_id: str | int, registrant_id: str, *, at: datetime | None = None, emit: bool = True
    ) -> ActionResult:
        return await self._act(
            lambda: self._set_registrant_status(str(webinar_id), registrant_id, "deny", at=at, by_host=True),
            emit,
        )

    async def cancel(
        self,
        webinar_id: str | int,
        registrant_id: str,
        *,
        by_host: bool = False,
        at: datetime | None = None,
        emit: bool = True,
    ) -> ActionResult:
        return await self._act(
            lambda: self._set_registrant_status(
                str(webinar_id), registrant_id, "cancel", at=at, by_host=by_host
            ),
            emit,
        )

    async def start(
        self, webinar_id: str | int, *, at: datetime | None = None, emit: bool = True
    ) -> ActionResult:
        return await self._act(lambda: self._start(str(webinar_id), at), emit)

    async def join(
        self,
        webinar_id: str | int,
        *,
        registrant_id: str | None = None,
        name: str | None = None,
        email: str | None = None,
        guest: bool = False,
        user_id: str | None = None,
        at: datetime | None = None,
        emit: bool = True,
    ) -> ActionResult:
        """A participant joins; ``result["user_id"]`` identifies the session for :meth:`leave`."""
        return await self._act(
            lambda: self._join(
                str(webinar_id),
                registrant_id=registrant_id,
                name=name,
                email=email,
                guest=guest,
                user_id=user_id,
                at=at,
            ),
            emit,
        )

    async def leave(
        self,
        webinar_id: str | int,
        *,
        user_id: str | None = None,
        registrant_id: str | None = None,
        at: datetime | None = None,
        emit: bool = True,
    ) -> ActionResult:
        return await self._act(
            lambda: self._leave(str(webinar_id), user_id=user_id, registrant_id=registrant_id, at=at), emit
        )

    async def end(
        self, webinar_id: str | int, *, at: datetime | None = None, emit: bool = True
    ) -> ActionResult:
        return await self._act(lambda: self._end(str(webinar_id), at), emit)

    async def add_recording(
        self,
        webinar_id: str | int,
        *,
        status: Literal["completed", "processing"] = "completed",
        with_transcript: bool = True,
        transcript_available: bool = True,
        vtt: str | None = None,
        at: datetime | None = None,
        emit: bool = True,
    ) -> ActionResult:
        """Cloud recording files (MP4, M4A, and a VTT transcript when ``with_transcript``); a
        ``completed`` recording sends ``recording.completed`` and, for an available transcript,
        ``recording.transcript_completed``. Call again with ``completed`` to finish a ``processing`` one."""
        return await self._act(
            lambda: self._add_recording(
                str(webinar_id),
                status=status,
                with_transcript=with_transcript,
                transcript_available=transcript_available,
                vtt=vtt,
                at=at,
            ),
            emit,
        )

    async def set_transcript(
        self,
        webinar_id: str | int,
        *,
        available: bool = True,
        vtt: str | None = None,
        at: datetime | None = None,
        emit: bool = True,
    ) -> ActionResult:
        """Make the transcript downloadable (or 404, "not found yet"), creating it if needed; sends
        ``recording.transcript_completed`` when ``emit`` - also when not available, to model the race
        of an event that arrives before its file."""
        return await self._act(
            lambda: self._set_transcript(str(webinar_id), available=available, vtt=vtt, at=at), emit
        )

    # ---- webhooks ------------------------------------------------------------------------------------

    def set_webhook_target(
        self,
        url: str | None = None,
        *,
        secret: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        app: Any = None,
    ) -> WebhookTarget | None:
        """Where webhooks go: a URL, an ``httpx`` transport, or an ASGI ``app`` (via
        ``httpx.ASGITransport``; its exceptions become 500s). No arguments: no target (deliveries are
        still recorded, with an error)."""
        if app is not None:
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        self.webhook = self._make_target(url, secret, transport)
        return self.webhook

    async def _deliver(self, envelopes: list[Envelope], *, background: bool) -> list[DeliveryRecord]:
        if not envelopes:
            return []
        loop = asyncio.get_running_loop()
        previous = self._tail
        if previous is not None and (previous.done() or previous.get_loop() is not loop):
            previous = None
        task = loop.create_task(self._send_after(previous, self.webhook, envelopes))
        self._tail = task
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        if background:
            return []
        return await task

    async def _send_after(
        self,
        previous: asyncio.Task[list[DeliveryRecord]] | None,
        target: WebhookTarget | None,
        envelopes: list[Envelope],
    ) -> list[DeliveryRecord]:
        if previous is not None:
            await asyncio.wait([previous])
        return [await self._send(target, envelope) for envelope in envelopes]

    def _http_client(self, target: WebhookTarget) -> httpx.AsyncClient:
        if self._client is None or self._client_target is not target:
            self._client = httpx.AsyncClient(transport=target.transport, timeout=self.webhook_timeout_s)
            self._client_target = target
            self._clients.append(self._client)
        return self._client

    async def _send(
        self, target: WebhookTarget | None, envelope: Envelope, *, request_id: str | None = None
    ) -> DeliveryRecord:
        event = str(envelope["event"])
        sent_at = datetime.now(UTC)
        if target is None:
            record = DeliveryRecord(
                len(self.deliveries),
                event,
                envelope,
                None,
                None,
                None,
                "",
                "no webhook target configured",
                0.0,
                sent_at,
            )
            self.deliveries.append(record)
            return record
        delivery = make_delivery(target.secret, envelope, request_id=request_id)
        started = time.perf_counter()
        status_code: int | None = None
        response_body = ""
        error: str | None = None
        try:
            response = await self._http_client(target).post(
                target.url, content=delivery.body, headers=delivery.headers
            )
            status_code, response_body = response.status_code, response.text[:4000]
        except Exception as exc:  # a failed delivery is recorded, never raised into the action
            error = f"{type(exc).__name__}: {exc}"
        record = DeliveryRecord(
            index=len(self.deliveries),
            event=event,
            envelope=envelope,
            url=target.url,
            request_id=delivery.request_id,
            status_code=status_code,
            response_body=response_body,
            error=error,
            elapsed_ms=(time.perf_counter() - started) * 1000,
            sent_at=sent_at,
            body=delivery.body,
            headers=dict(delivery.headers),
        )
        self.deliveries.append(record)
        return record

    async def redeliver(self, index: int) -> DeliveryRecord:
        """Send delivery ``index`` again, as a Zoom retry: same envelope and ``x-zm-request-id``, fresh
        timestamp and signature, to the current target."""
        if not 0 <= index < len(self.deliveries):
            raise control_error(404, f"No delivery {index}.")
        original = self.deliveries[index]
        await self.settle()
        return await self._send(self.webhook, original.envelope, request_id=original.request_id)

    async def settle(self) -> None:
        """Wait until every webhook sent so far (also in the background) has been delivered."""
        loop = asyncio.get_running_loop()
        while True:
            pending = [t for t in self._pending if not t.done() and t.get_loop() is loop]
            if not pending:
                return
            await asyncio.wait(pending)

    async def aclose(self) -> None:
        """Wait for pending webhooks, then close the HTTP clients."""
        await self.settle()
        clients, self._clients, self._client, self._client_target = self._clients, [], None, None
        for client in clients:
            await client.aclose()

    # ---- inspection ----------------------------------------------------------------------------------

    def webinar_snapshot(self, w: Webinar) -> JSON:
        body = w.to_json()
        body.update(
            account_id=w.account_id,
            status=w.status,
            instance_uuid=w.instance_uuid,
            actual_start=iso(w.scenario.actual_start) if w.scenario.actual_start else None,
            actual_end=iso(w.scenario.actual_end) if w.scenario.actual_end else None,
            questions=w.questions_json(),
            registrants=[{**r.to_json(), "source": r.source} for r in w.registrants.values()],
            participants=[s.snapshot() for s in w.sorted_sessions()],
            recording=None,
        )
        rec = w.recording
        if rec is not None:
            rec_json = self._recording_json(w, rec, rec.files)
            rec_json["status"] = rec.status
            for entry, rec_file in zip(rec_json["recording_files"], rec.files, strict=True):
                entry["available"] = rec_file.available
            body["recording"] = rec_json
        return body

    def snapshot(self) -> JSON:
        now = self.clock()
        return {
            "accounts": [{"account_id": a.id, "client_id": a.client_id} for a in self.accounts.values()],
            "public_url": self.public_url,
            "users": [{**u.to_json(), "account_id": u.account_id} for u in self.users.values()],
            "webinars": [self.webinar_snapshot(w) for w in self.webinars.values()],
            "deliveries": [d.to_json() for d in self.deliveries],
            "webhook": self.webhook.to_json() if self.webhook else None,
            "tokens": {
                "issued": len(self.tokens),
                "active": sum(1 for t in self.tokens.values() if t.expires_at > now),
            },
            "faults": self.settings(),
            "stats": self.stats.to_json(),
        }
