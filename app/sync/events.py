"""Zoom event envelopes turned into typed facts (pure; no I/O).

Tolerant by design: Zoom's payloads vary between events (ids as numbers or strings, emails
removed for guests, fields only present when changed), so anything missing becomes None and
only what is needed to key a fact is required.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from app.ingest.zoom_events import MAX_EVENT_TS, id_str, load_json, unstorable_text
from app.models import RegistrationStatus
from app.sync.rules import classify_webinar, normalize_email


class BadEventError(ValueError):
    """The event can never be processed as it is (it lacks what identifies its subject)."""


@dataclass(frozen=True, slots=True)
class WebinarMeta:
    """Webinar fields carried by an event; `authoritative` ones overwrite, others only fill gaps."""

    account_id: str
    webinar_id: str
    event_ts: int
    fields: dict[str, Any]
    authoritative: bool
    host_email: str | None = None
    deleted: bool = False


@dataclass(frozen=True, slots=True)
class RegistrationFact:
    account_id: str
    webinar_id: str
    event_ts: int
    registrant_id: str
    raw_email: str | None
    first_name: str | None
    last_name: str | None
    status: RegistrationStatus
    join_url: str | None
    source: str = "webhook"  # webhook | action | sync_now: who told us
    registered_at: datetime | None = None  # Zoom's create_time, when the event has it
    # The fact tells when the registration was created (registration_created, or a create_time):
    # unlike a status change, whose time is only an upper bound.
    creation: bool = False


@dataclass(frozen=True, slots=True)
class MarkFact:
    account_id: str
    webinar_id: str
    kind: str  # join | leave
    at: datetime
    person_key: str
    session_key: str
    raw_email: str | None
    registrant_id: str | None
    name: str | None


@dataclass(frozen=True, slots=True)
class RecordingFact:
    account_id: str
    webinar_id: str
    event_ts: int
    instance_uuid: str
    topic: str | None
    host_id: str | None
    host_email: str | None
    start_time: datetime | None
    duration_minutes: int | None
    share_url: str | None
    files: list[dict[str, Any]]
    download_token: str | None


@dataclass(slots=True)
class ParsedEvent:
    event: str
    meta: WebinarMeta | None = None
    registration: RegistrationFact | None = None
    mark: MarkFact | None = None
    recording: RecordingFact | None = None
    host_id: str | None = None
    notes: list[str] = field(default_factory=list)


_STATUS_BY_EVENT: dict[str, RegistrationStatus | None] = {
    "webinar.registration_created": None,  # the registrant's own status (approved or pending)
    "webinar.registration_approved": RegistrationStatus.APPROVED,
    "webinar.registration_cancelled": RegistrationStatus.CANCELLED,
    "webinar.registration_denied": RegistrationStatus.DENIED,
}
# Fields of a webinar object that the local model keeps, with the event field they come from.
_META_FIELDS = {
    "uuid": "uuid",
    "host_id": "host_id",
    "topic": "topic",
    "type": "webinar_type",
    "start_time": "scheduled_start_at",
    "duration": "duration_minutes",
    "timezone": "timezone",
    "join_url": "join_url",
    "registration_url": "registration_url",
}


def parse_time(value: object) -> datetime | None:
    """Zoom times are ISO-8601 (`...Z`); anything unparseable is treated as absent."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


# Integer columns (webinar type, duration) are 32-bit on PostgreSQL: larger values are garbage.
INT32_MAX = 2**31 - 1
_INT_TEXT = re.compile(r"-?[0-9]{1,18}")


def _int(value: object, limit: int = INT32_MAX) -> int | None:
    """A whole number within ±limit; anything else (ASCII digits only) is treated as absent."""
    if isinstance(value, bool):
        return None
    number: int | None = None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and _INT_TEXT.fullmatch(value.strip()):
        number = int(value.strip())
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    return number if number is not None and -limit <= number <= limit else None


# Text no database column can hold: NUL characters (PostgreSQL refuses them) and lone surrogates
# (not encodable as UTF-8). Per field, decided by what the field is for:
# * identifiers (account, webinar, registrant, participant session, recording uuid, host id) and
#   emails: `_ident` raises BadEventError. They key rows and contacts, so a changed value would
#   silently be another person or webinar; the event goes `dead` with the field named.
# * display text (names, topic, timezone): `_str` removes NUL and replaces lone surrogates. What
#   is left is what anyone would read, and the rest of the event stays useful.
# * URLs and tokens: `_str(..., drop_unstorable=True)` treats them as absent, like an unparseable
#   time: a URL with a character removed could point somewhere else.


def _str(value: object, limit: int = 2000, *, drop_unstorable: bool = False) -> str | None:
    if not isinstance(value, str):
        return None
    if unstorable_text(value) is not None:
        if drop_unstorable:
            return None
        value = value.replace("\x00", "").encode("utf-8", "replace").decode()
    if value.strip():
        return value.strip()[:limit]
    return None


def _ident(value: object, what: str, limit: int = 2000) -> str | None:
    """An identifier or email: None when absent; BadEventError when it holds unstorable text."""
    if isinstance(value, str) and (problem := unstorable_text(value)) is not None:
        raise BadEventError(f"{what} {problem}")
    return _str(value, limit)


def _meta_fields(obj: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for src, dst in _META_FIELDS.items():
        if src not in obj:
            continue
        raw = obj[src]
        if dst in ("webinar_type", "duration_minutes"):
            value: Any = _int(raw)
        elif dst == "scheduled_start_at":
            value = parse_time(raw)
        elif dst in ("join_url", "registration_url"):
            value = _str(raw, drop_unstorable=True)
        elif dst in ("uuid", "host_id"):
            value = _ident(raw, f"object.{src}")
        else:
            value = _str(raw)
        if value is not None:
            out[dst] = value
    reason = classify_webinar(obj)
    if reason is not None:
        out["unsupported_reason"] = reason[:120]
    return out


def parse_event(raw_body: bytes) -> ParsedEvent:
    try:
        body = load_json(raw_body)  # ValueError for anything malformed, even nested too deeply
    except ValueError as exc:
        raise BadEventError(f"the stored body is not valid JSON: {exc}") from None
    if not isinstance(body, dict) or not isinstance(body.get("event"), str):
        raise BadEventError("the stored body is not a Zoom event")
    event: str = body["event"]
    try:
        return _parse(event, body)
    except BadEventError as exc:
        raise BadEventError(f"{event}: {exc}") from None


def _parse(event: str, body: Mapping[str, Any]) -> ParsedEvent:
    payload = body.get("payload") or {}
    if not isinstance(payload, dict):
        raise BadEventError("payload is not an object")
    obj = payload.get("object")
    if not isinstance(obj, dict):
        raise BadEventError("payload.object is missing")
    account_id = _ident(payload.get("account_id"), "payload.account_id", 64) or _ident(
        obj.get("account_id"), "object.account_id", 64
    )
    if account_id is None:
        raise BadEventError("payload.account_id is missing")
    webinar_id = id_str(obj.get("id"))
    if webinar_id is None or not webinar_id.isascii() or not webinar_id.isdigit() or len(webinar_id) > 20:
        raise BadEventError("object.id is not a webinar id")
    event_ts = _int(body.get("event_ts"), MAX_EVENT_TS) or 0
    parsed = ParsedEvent(event=event, host_id=_ident(obj.get("host_id"), "object.host_id", 64))

    authoritative = event in ("webinar.created", "webinar.updated", "webinar.deleted")
    fields = _meta_fields(obj)
    host_email = None
    operator_id = _str(payload.get("operator_id"))
    if operator_id is not None and operator_id == parsed.host_id:
        # The operator of a host's own change is the host: the only place webhooks give its email.
        host_email = normalize_email(_ident(payload.get("operator"), "payload.operator"))
    if event.startswith("recording."):
        host_email = normalize_email(_ident(obj.get("host_email"), "object.host_email")) or host_email
        # A recording's uuid/start_time are the instance's, not the scheduled webinar's.
        fields = {
            k: v for k, v in fields.items() if k not in ("uuid", "scheduled_start_at", "duration_minutes")
        }
    if event == "webinar.started":
        started = parse_time(obj.get("start_time")) or _ts_time(event_ts)
        fields = {k: v for k, v in fields.items() if k not in ("uuid", "scheduled_start_at")}
        fields["actual_start_at"] = started
    if event == "webinar.ended":
        fields = {k: v for k, v in fields.items() if k not in ("uuid", "scheduled_start_at")}
        ended = parse_time(obj.get("end_time")) or _ts_time(event_ts)
        fields["actual_end_at"] = ended
        started = parse_time(obj.get("start_time"))
        if started is not None:
            fields["actual_start_at"] = started
    if event.startswith("webinar.participant_"):
        fields = {k: v for k, v in fields.items() if k not in ("uuid", "scheduled_start_at")}
    parsed.meta = WebinarMeta(
        account_id=account_id,
        webinar_id=webinar_id,
        event_ts=event_ts,
        fields=fields,
        authoritative=authoritative or event in ("webinar.started", "webinar.ended"),
        host_email=host_email,
        deleted=event == "webinar.deleted",
    )

    if event in _STATUS_BY_EVENT:
        parsed.registration = _registration(event, account_id, webinar_id, event_ts, obj)
        source = _str(body.get("x_source"), 16, drop_unstorable=True)
        if source is not None:
            parsed.registration = replace(parsed.registration, source=source)
    elif event in ("webinar.participant_joined", "webinar.participant_left"):
        parsed.mark = _mark(event, account_id, webinar_id, event_ts, obj)
    elif event.startswith("recording."):
        token = _str(body.get("download_token"), 4000, drop_unstorable=True)
        parsed.recording = _recording(account_id, webinar_id, event_ts, obj, token)
    return parsed


def _ts_time(event_ts: int) -> datetime | None:
    return datetime.fromtimestamp(event_ts / 1000, UTC) if event_ts > 0 else None


def _registration(
    event: str, account_id: str, webinar_id: str, event_ts: int, obj: Mapping[str, Any]
) -> RegistrationFact:
    reg = obj.get("registrant")
    if not isinstance(reg, dict):
        raise BadEventError("object.registrant is missing")
    registrant_id = _ident(reg.get("id"), "registrant.id", 64)
    if registrant_id is None:
        raise BadEventError("registrant.id is missing")
    status = _STATUS_BY_EVENT[event] or (
        RegistrationStatus.PENDING if reg.get("status") == "pending" else RegistrationStatus.APPROVED
    )
    return RegistrationFact(
        account_id=account_id,
        webinar_id=webinar_id,
        event_ts=event_ts,
        registrant_id=registrant_id,
        raw_email=_ident(reg.get("email"), "registrant.email", 320),
        first_name=_str(reg.get("first_name"), 200),
        last_name=_str(reg.get("last_name"), 200),
        status=status,
        join_url=_str(reg.get("join_url"), drop_unstorable=True),
        registered_at=(created := parse_time(reg.get("create_time"))),
        creation=created is not None or event == "webinar.registration_created",
    )


def _mark(event: str, account_id: str, webinar_id: str, event_ts: int, obj: Mapping[str, Any]) -> MarkFact:
    p = obj.get("participant")
    if not isinstance(p, dict):
        raise BadEventError("object.participant is missing")
    joined = event == "webinar.participant_joined"
    at = parse_time(p.get("join_time" if joined else "leave_time")) or _ts_time(event_ts)
    if at is None:
        raise BadEventError(f"participant has no {'join' if joined else 'leave'} time")
    registrant_id = _ident(p.get("registrant_id"), "participant.registrant_id", 64)
    raw_email = _ident(p.get("email"), "participant.email", 320)
    name = _str(p.get("user_name"), 200)
    session = (
        _ident(p.get("participant_uuid"), "participant.participant_uuid", 200)
        or _ident(p.get("user_id"), "participant.user_id", 200)
        or _ident(p.get("id"), "participant.id", 200)
    )
    person = person_key(registrant_id, normalize_email(raw_email), name, session)
    if session is None:
        # Without a device session id, the person is the session (rejoins still pair in time order).
        session = person
    return MarkFact(
        account_id=account_id,
        webinar_id=webinar_id,
        kind="join" if joined else "leave",
        at=at,
        person_key=person[:400],
        session_key=session[:200],
        raw_email=raw_email,
        registrant_id=registrant_id,
        name=name,
    )


def person_key(registrant_id: str | None, email: str | None, name: str | None, session: str | None) -> str:
    """Who a participant is: the registrant, else the email, else (a guest) the display name."""
    if registrant_id:
        return f"r:{registrant_id}"
    if email:
        return f"e:{email}"
    if name:
        return f"n:{name.lower()}"
    return f"s:{session or 'unknown'}"


def _recording(
    account_id: str, webinar_id: str, event_ts: int, obj: Mapping[str, Any], download_token: str | None
) -> RecordingFact:
    files_raw = obj.get("recording_files")
    files = [dict(f) for f in files_raw if isinstance(f, dict)] if isinstance(files_raw, list) else []
    return RecordingFact(
        account_id=account_id,
        webinar_id=webinar_id,
        event_ts=event_ts,
        instance_uuid=_ident(obj.get("uuid"), "object.uuid", 64) or f"webinar:{webinar_id}",
        topic=_str(obj.get("topic")),
        host_id=_ident(obj.get("host_id"), "object.host_id", 64),
        host_email=normalize_email(_ident(obj.get("host_email"), "object.host_email")),
        start_time=parse_time(obj.get("start_time")),
        duration_minutes=_int(obj.get("duration")),
        share_url=_str(obj.get("share_url"), drop_unstorable=True),
        files=files,
        download_token=download_token,
    )
