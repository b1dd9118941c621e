"""One classic Zoom webinar's life as webhook envelopes: :class:`WebinarScenario` builds created,
updated, deleted, registrations (approve/deny/cancel), started, joins/leaves, ended, recording and
transcript events with ids that are deterministic for a given ``seed``.

Payload shapes follow Zoom's documented webhook payloads: the webinar ``object.id`` is a JSON number in
``webinar.created/updated/deleted``, ``webinar.registration_*`` and ``recording.*``, and a JSON string in
``webinar.started/ended`` and ``webinar.participant_*``; ``download_token`` sits at the top level of the
recording events; ``event_ts`` is in milliseconds. Standard library only; naive datetimes are UTC.

A little over 500 lines because the scenario is one builder: every event method draws from the same
seeded RNG and reads or moves the same webinar state (actual start/end, registrants, share URL), so
splitting it would only spread one webinar's life over modules without making any part independent.
"""

from __future__ import annotations

import base64
import math
import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from app.sandbox.zoom_webhook_signing import Envelope

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ZOOM_HOST = "https://us06web.zoom.us"


# --------------------------------------------------------------------------------------------------
# Time helpers
# --------------------------------------------------------------------------------------------------


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _ms(dt: datetime) -> int:
    return (_utc(dt) - _EPOCH) // timedelta(milliseconds=1)


def _iso(dt: datetime) -> str:
    return _utc(dt).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------------------------------
# Scenario
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Participant:
    """Who joins or leaves.

    ``email`` is ``""`` for guests whose email Zoom removes; ``None`` omits the field from the payload.
    ``registrant_id`` is the stable key of a registered attendee; ``user_id`` and ``participant_uuid`` may
    change when the same person rejoins (see :meth:`WebinarScenario.rejoin_as`). ``participant_user_id`` is
    the Zoom user id of a signed-in user, ``""`` otherwise.
    """

    name: str
    email: str | None
    registrant_id: str | None
    user_id: str
    participant_uuid: str
    participant_user_id: str = ""


@dataclass(frozen=True, slots=True)
class Registrant:
    """A registration as the scenario knows it; ``status`` follows approve/deny/cancel."""

    id: str
    email: str
    first_name: str
    last_name: str
    join_url: str
    status: str


@dataclass
class WebinarScenario:
    """Builds the webhook envelopes of one classic webinar's life, deterministically from ``seed``.

    Every builder method appends its envelope to :attr:`envelopes` and returns it (``register`` returns the
    new registrant id). ``at`` is when the event happened: ``event_ts`` is ``at`` in milliseconds.
    """

    account_id: str
    webinar_id: str
    host_id: str
    host_email: str
    topic: str
    start: datetime
    duration_minutes: int = 60
    webinar_type: int = 5
    seed: int = 1
    timezone: str = "America/New_York"
    rng: random.Random = field(init=False, repr=False)
    webinar_uuid: str = field(init=False)
    instance_uuid: str = field(init=False)
    actual_start: datetime | None = field(init=False, default=None)
    actual_end: datetime | None = field(init=False, default=None)
    share_url: str | None = field(init=False, default=None)
    _envelopes: list[Envelope] = field(init=False, default_factory=list, repr=False)
    _registrants: dict[str, Registrant] = field(init=False, default_factory=dict, repr=False)
    _next_user_id: int = field(init=False, default=16778240, repr=False)

    def __post_init__(self) -> None:
        if not self.webinar_id.isdigit():
            raise ValueError(f"webinar_id must be digits, got {self.webinar_id!r}")
        self.start = _utc(self.start)
        self.rng = random.Random(self.seed)
        # The scheduled webinar's uuid (registration/created events) and the uuid of the instance that
        # runs (started/ended/participant/recording events) differ, as in Zoom's examples.
        self.webinar_uuid = self._zoom_uuid()
        self.instance_uuid = self._zoom_uuid()

    # ---- random, deterministic ids ---------------------------------------------------------------

    def _zoom_uuid(self) -> str:
        return base64.b64encode(self.rng.randbytes(16)).decode("ascii")

    def _token(self, nbytes: int) -> str:
        return base64.urlsafe_b64encode(self.rng.randbytes(nbytes)).rstrip(b"=").decode("ascii")

    def _file_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128)))

    def _download_token(self) -> str:
        return "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzUxMiJ9." + self._token(48)

    # ---- state ------------------------------------------------------------------------------------

    @property
    def envelopes(self) -> list[Envelope]:
        """All events built so far, in the order built (a new list; the dicts are shared)."""
        return list(self._envelopes)

    def pop_envelopes(self) -> list[Envelope]:
        """The events built since the last call (or since the start), which the scenario then forgets.

        For long-lived users such as the Zoom sandbox, which send each envelope once and must not keep
        them all in memory.
        """
        popped, self._envelopes = self._envelopes, []
        return popped

    @property
    def registrants(self) -> dict[str, Registrant]:
        """Registrations by id, in registration order."""
        return dict(self._registrants)

    def registrant(self, registrant_id: str) -> Registrant:
        try:
            return self._registrants[registrant_id]
        except KeyError:
            raise KeyError(f"unknown registrant {registrant_id!r}") from None

    def _emit(self, event: str, at: datetime, payload: Envelope, **top_level: Any) -> Envelope:
        envelope: Envelope = {"event": event, "event_ts": _ms(at), **top_level, "payload": payload}
        self._envelopes.append(envelope)
        return envelope

    # ---- object shapes ----------------------------------------------------------------------------

    def _scheduled_object(self) -> Envelope:
        """The webinar as in created/deleted/registration events: ``id`` is a number."""
        return {
            "uuid": self.webinar_uuid,
            "id": int(self.webinar_id),
            "host_id": self.host_id,
            "topic": self.topic,
            "type": self.webinar_type,
            "start_time": _iso(self.start),
            "duration": self.duration_minutes,
            "timezone": self.timezone,
        }

    def _live_object(self) -> Envelope:
        """The webinar as in started/ended/participant events: ``id`` is a string."""
        return {
            "id": self.webinar_id,
            "uuid": self.instance_uuid,
            "host_id": self.host_id,
            "topic": self.topic,
            "type": self.webinar_type,
            "start_time": _iso(self.actual_start or self.start),
            "timezone": self.timezone,
            "duration": self.duration_minutes,
        }

    def _host_operator(self) -> Envelope:
        return {"operator": self.host_email, "operator_id": self.host_id}

    # ---- webinar lifecycle ------------------------------------------------------------------------

    def created(self, *, at: datetime | None = None) -> Envelope:
        """``webinar.created``; ``at`` defaults to 14 days before the scheduled start."""
        when = at if at is not None else self.start - timedelta(days=14)
        obj = self._scheduled_object()
        obj.update(
            {
                "join_url": f"{_ZOOM_HOST}/j/{self.webinar_id}",
                "password": self._token(6)[:6],
                "creation_source": "web_portal",
                "settings": {"use_pmi": False, "alternative_hosts": ""},
            }
        )
        return self._emit(
            "webinar.created",
            when,
            {"account_id": self.account_id, **self._host_operator(), "operation": "single", "object": obj},
        )

    def updated(
        self,
        *,
        at: datetime,
        topic: str | None = None,
        start: datetime | None = None,
        duration_minutes: int | None = None,
    ) -> Envelope:
        """``webinar.updated``: the changed fields in ``object``, their previous values in ``old_object``."""
        new: Envelope = {}
        old: Envelope = {}
        if topic is not None and topic != self.topic:
            old["topic"], new["topic"] = self.topic, topic
            self.topic = topic
        if start is not None and _utc(start) != self.start:
            old["start_time"], new["start_time"] = _iso(self.start), _iso(start)
            self.start = _utc(start)
        if duration_minutes is not None and duration_minutes != self.duration_minutes:
            old["duration"], new["duration"] = self.duration_minutes, duration_minutes
            self.duration_minutes = duration_minutes
        if not new:
            raise ValueError("updated() needs at least one changed field")
        webinar_id = int(self.webinar_id)
        return self._emit(
            "webinar.updated",
            at,
            {
                "account_id": self.account_id,
                **self._host_operator(),
                "time_stamp": _ms(at),
                "object": {"id": webinar_id, **new},
                "old_object": {"id": webinar_id, **old},
            },
        )

    def deleted(self, *, at: datetime) -> Envelope:
        """``webinar.deleted``."""
        return self._emit(
            "webinar.deleted",
            at,
            {
                "account_id": self.account_id,
                **self._host_operator(),
                "operation": "single",
                "object": self._scheduled_object(),
            },
        )

    def started(self, *, at: datetime) -> Envelope:
        """``webinar.started``; ``at`` becomes the actual start (``start_time`` of later live events)."""
        self.actual_start = _utc(at)
        return self._emit(
            "webinar.started", at, {"account_id": self.account_id, "object": self._live_object()}
        )

    def ended(self, *, at: datetime) -> Envelope:
        """``webinar.ended`` with ``end_time`` = ``at``."""
        self.actual_end = _utc(at)
        obj = self._live_object()
        obj["end_time"] = _iso(at)
        # Zoom's key order puts end_time next to start_time; keep it realistic.
        ordered = {k: obj[k] for k in ("id", "uuid", "host_id", "topic", "type", "start_time", "end_time")}
        ordered.update(obj)
        return self._emit("webinar.ended", at, {"account_id": self.account_id, "object": ordered})

    # ---- registrations ----------------------------------------------------------------------------

    def _registration_object(self, registrant: Mapping[str, Any]) -> Envelope:
        obj = self._scheduled_object()
        obj["registrant"] = dict(registrant)
        return obj

    def register(
        self,
        email: str,
        first_name: str,
        last_name: str = "",
        *,
        at: datetime,
        status: str = "approved",
        org: str | None = None,
        job_title: str | None = None,
        custom_questions: Sequence[tuple[str, str]] = (),
    ) -> str:
        """``webinar.registration_created``; returns the new registrant id (unique within the scenario)."""
        registrant_id = self._token(16)
        while registrant_id in self._registrants:  # pragma: no cover - 128 random bits
            registrant_id = self._token(16)
        join_url = f"{_ZOOM_HOST}/w/{self.webinar_id}?tk={self._token(32)}"
        reg = Registrant(registrant_id, email, first_name, last_name, join_url, status)
        self._registrants[registrant_id] = reg
        body: Envelope = {
            "id": registrant_id,
            "first_name": first_name,
            "last_name": last_name,
            "email": email,
        }
        if org is not None:
            body["org"] = org
        if job_title is not None:
            body["job_title"] = job_title
        if custom_questions:
            body["custom_questions"] = [{"title": t, "value": v} for t, v in custom_questions]
        body["status"] = status
        body["join_url"] = join_url
        self._emit(
            "webinar.registration_created",
            at,
            {"account_id": self.account_id, "object": self._registration_object(body)},
        )
        return registrant_id

    def _set_status(self, registrant_id: str, status: str) -> Registrant:
        reg = replace(self.registrant(registrant_id), status=status)
        self._registrants[registrant_id] = reg
        return reg

    @staticmethod
    def _registrant_body(reg: Registrant) -> Envelope:
        return {"id": reg.id, "first_name": reg.first_name, "last_name": reg.last_name, "email": reg.email}

    def approve(self, registrant_id: str, *, at: datetime) -> Envelope:
        """``webinar.registration_approved`` (by the host; carries ``join_url``)."""
        reg = self._set_status(registrant_id, "approved")
        body = self._registrant_body(reg)
        body["join_url"] = reg.join_url
        return self._emit(
            "webinar.registration_approved",
            at,
            {
                "account_id": self.account_id,
                **self._host_operator(),
                "object": self._registration_object(body),
            },
        )

    def deny(self, registrant_id: str, *, at: datetime) -> Envelope:
        """``webinar.registration_denied`` (by the host; no ``join_url``)."""
        reg = self._set_status(registrant_id, "denied")
        return self._emit(
            "webinar.registration_denied",
            at,
            {
                "account_id": self.account_id,
                **self._host_operator(),
                "object": self._registration_object(self._registrant_body(reg)),
            },
        )

    def cancel(self, registrant_id: str, *, at: datetime, by_host: bool = False) -> Envelope:
        """``webinar.registration_cancelled``: by the registrant (operator = their email, no
        ``operator_id``) unless ``by_host``."""
        reg = self._set_status(registrant_id, "cancelled")
        operator: Envelope = self._host_operator() if by_host else {"operator": reg.email}
        return self._emit(
            "webinar.registration_cancelled",
            at,
            {
                "account_id": self.account_id,
                **operator,
                "object": self._registration_object(self._registrant_body(reg)),
            },
        )

    # ---- participants -----------------------------------------------------------------------------

    def _participant_ids(self) -> tuple[str, str]:
        user_id = str(self._next_user_id)
        self._next_user_id += self.rng.randint(1, 2048)
        participant_uuid = str(uuid.UUID(int=self.rng.getrandbits(128))).upper()
        return user_id, participant_uuid

    def participant_for(self, registrant_id: str) -> Participant:
        """A participant linked to a registration (same email and name, ``registrant_id`` set)."""
        reg = self.registrant(registrant_id)
        user_id, participant_uuid = self._participant_ids()
        name = f"{reg.first_name} {reg.last_name}".strip()
        return Participant(name, reg.email, reg.id, user_id, participant_uuid)

    def guest(self, name: str) -> Participant:
        """An unregistered guest: Zoom sends its email as ``""``; no ``registrant_id``."""
        user_id, participant_uuid = self._participant_ids()
        return Participant(name, "", None, user_id, participant_uuid)

    def rejoin_as(self, participant: Participant) -> Participant:
        """The same person joining again: fresh ``user_id`` and ``participant_uuid``, same name, email and
        ``registrant_id`` (Zoom: only ``registrant_id`` is stable across rejoins)."""
        user_id, participant_uuid = self._participant_ids()
        return replace(participant, user_id=user_id, participant_uuid=participant_uuid)

    def _participant_body(self, p: Participant, time_key: str, at: datetime) -> Envelope:
        body: Envelope = {"user_id": p.user_id, "user_name": p.name, "id": p.participant_user_id}
        body[time_key] = _iso(at)
        if time_key == "leave_time":
            body["leave_reason"] = "left the webinar."
        if p.email is not None:
            body["email"] = p.email
        if p.registrant_id is not None:
            body["registrant_id"] = p.registrant_id
        body["participant_user_id"] = p.participant_user_id
        body["participant_uuid"] = p.participant_uuid
        return body

    def _participant_event(self, event: str, p: Participant, time_key: str, at: datetime) -> Envelope:
        obj = self._live_object()
        obj["participant"] = self._participant_body(p, time_key, at)
        return self._emit(event, at, {"account_id": self.account_id, "object": obj})

    def join(self, participant: Participant, *, at: datetime) -> Envelope:
        """``webinar.participant_joined`` with ``join_time`` = ``at``."""
        return self._participant_event("webinar.participant_joined", participant, "join_time", at)

    def leave(self, participant: Participant, *, at: datetime) -> Envelope:
        """``webinar.participant_left`` with ``leave_time`` = ``at``."""
        return self._participant_event("webinar.participant_left", participant, "leave_time", at)

    # ---- recordings -------------------------------------------------------------------------------

    def _recording_window(self, at: datetime) -> tuple[datetime, datetime]:
        begin = (self.actual_start or self.start) + timedelta(seconds=5)
        end = (self.actual_end or _utc(at)) - timedelta(seconds=10)
        return begin, max(begin, end)

    def _recording_object(self, at: datetime, files: list[Envelope], share_url: str) -> Envelope:
        begin, end = self._recording_window(at)
        minutes = max(1, math.ceil((end - begin).total_seconds() / 60))
        return {
            "id": int(self.webinar_id),
            "uuid": self.instance_uuid,
            "host_id": self.host_id,
            "account_id": self.account_id,
            "topic": self.topic,
            "type": self.webinar_type,
            "start_time": _iso(self.actual_start or self.start),
            "password": "",
            "timezone": self.timezone,
            "host_email": self.host_email,
            "duration": minutes,
            "share_url": share_url,
            "total_size": sum(int(f["file_size"]) for f in files),
            "recording_count": len(files),
            "recording_files": files,
        }

    def _file(self, at: datetime, file_type: str, extension: str, recording_type: str, size: int) -> Envelope:
        begin, end = self._recording_window(at)
        token = self._token(24)
        entry: Envelope = {
            "id": self._file_id(),
            "meeting_id": self.instance_uuid,
            "recording_start": _iso(begin),
            "recording_end": _iso(end),
            "file_type": file_type,
            "file_size": size,
            "file_extension": extension,
        }
        if file_type != "TRANSCRIPT":
            entry["play_url"] = f"{_ZOOM_HOST}/rec/play/{token}"
        entry["download_url"] = f"{_ZOOM_HOST}/rec/webhook_download/{token}"
        entry["status"] = "completed"
        entry["recording_type"] = recording_type
        return entry

    def _share_url(self, share_url: str | None) -> str:
        if share_url is not None:
            self.share_url = share_url
        elif self.share_url is None:
            self.share_url = f"{_ZOOM_HOST}/rec/share/{self._token(32)}"
        return self.share_url

    def recording_completed(
        self, *, at: datetime, share_url: str | None = None, with_files: bool = True
    ) -> Envelope:
        """``recording.completed`` with a top-level ``download_token``; an MP4 and an M4A file, or no files
        when ``with_files`` is false. ``object.id`` is a number."""
        url = self._share_url(share_url)
        files: list[Envelope] = []
        if with_files:
            files.append(self._file(at, "MP4", "MP4", "shared_screen_with_speaker_view", 100_000_000))
            files.append(self._file(at, "M4A", "M4A", "audio_only", 4_857_600))
        obj = self._recording_object(at, files, url)
        return self._emit(
            "recording.completed",
            at,
            {"account_id": self.account_id, "object": obj},
            download_token=self._download_token(),
        )

    def transcript_completed(self, *, at: datetime, share_url: str | None = None) -> Envelope:
        """``recording.transcript_completed``: one ``TRANSCRIPT`` / ``VTT`` / ``audio_transcript`` file and a
        top-level ``download_token``."""
        url = self._share_url(share_url)
        files = [self._file(at, "TRANSCRIPT", "VTT", "audio_transcript", 48_000)]
        obj = self._recording_object(at, files, url)
        return self._emit(
            "recording.transcript_completed",
            at,
            {"account_id": self.account_id, "object": obj},
            download_token=self._download_token(),
        )
