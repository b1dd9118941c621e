"""What the service knows about Zoom event envelopes before processing them (pure)."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.models import InboxState

HANDLED_EVENTS = frozenset(
    {
        "webinar.created",
        "webinar.updated",
        "webinar.deleted",
        "webinar.started",
        "webinar.ended",
        "webinar.registration_created",
        "webinar.registration_approved",
        "webinar.registration_cancelled",
        "webinar.registration_denied",
        "webinar.participant_joined",
        "webinar.participant_left",
        "recording.completed",
        "recording.transcript_completed",
    }
)
URL_VALIDATION = "endpoint.url_validation"
# Milliseconds since the epoch stay far below this for millennia; larger values are garbage (and
# would overflow a BIGINT column).
MAX_EVENT_TS = 10**14

# Per-delivery fields that Zoom may change between two deliveries of the same occurrence
# (duplicated recording.completed deliveries differ only in these, per Zoom's forum).
_VOLATILE_KEYS = frozenset({"download_token", "download_url", "download_access_token"})
_PARTICIPANT_IDENTITY = (
    "user_id",
    "participant_uuid",
    "id",
    "participant_user_id",
    "registrant_id",
    "email",
    "join_time",
    "leave_time",
)


# Zoom's envelopes nest about six levels; far deeper bodies are refused before any recursive code
# (json.loads, the canonical key) could hit Python's recursion limit.
MAX_DEPTH = 64


class EnvelopeError(ValueError):
    """The body is not a Zoom event envelope; the message says why."""


def json_depth_exceeds(value: Any, limit: int) -> bool:
    """Whether a parsed JSON value nests containers more than `limit` levels deep (iterative)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def unstorable_text(value: str) -> str | None:
    """Why a string cannot be stored in a text column as it is (None when it can).

    PostgreSQL text refuses NUL characters, and a lone surrogate (JSON allows "\\ud800") is not
    encodable as UTF-8 for either database.
    """
    if "\x00" in value:
        return "contains a NUL character"
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            return "is not valid Unicode text (a lone surrogate)"
    return None


def load_json(raw: bytes) -> Any:
    """json.loads that raises only ValueError for any malformed input.

    Besides JSONDecodeError: UnicodeDecodeError, ValueError for integers of more than 4300 digits,
    RecursionError for bodies nested about a thousand levels deep.
    """
    try:
        value = json.loads(raw)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    if json_depth_exceeds(value, MAX_DEPTH):
        raise ValueError(f"nested too deeply (more than {MAX_DEPTH} levels)")
    return value


@dataclass(frozen=True, slots=True)
class Envelope:
    event: str
    event_ts: int | None
    account_id: str | None
    webinar_id: str | None
    body: Mapping[str, Any]


def parse_envelope(raw: bytes) -> Envelope:
    try:
        body = load_json(raw)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors too
        raise EnvelopeError(f"body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise EnvelopeError(f"body must be a JSON object, got {type(body).__name__}")
    event = body.get("event")
    if not isinstance(event, str) or not event:
        raise EnvelopeError("body has no 'event' string")
    payload = body.get("payload")
    if not isinstance(payload, dict):
        raise EnvelopeError("body has no 'payload' object")
    event_ts = body.get("event_ts")
    if isinstance(event_ts, bool) or not isinstance(event_ts, int | float | None):
        raise EnvelopeError("'event_ts' must be a number (milliseconds)")
    if event_ts is not None and not (math.isfinite(event_ts) and 0 <= event_ts < MAX_EVENT_TS):
        raise EnvelopeError("'event_ts' must be milliseconds since the epoch")
    account_id = payload.get("account_id")
    obj = payload.get("object")
    webinar_id: str | None = None
    if isinstance(obj, dict) and event.startswith(("webinar.", "recording.")):
        webinar_id = id_str(obj.get("id"))
    # These three go into text columns of the inbox row: a NUL (or a lone surrogate) could never be
    # stored, so a 503 would only make Zoom retry forever. The delivery is refused with the reason.
    for name, text in (
        ("'event'", event),
        ("payload.account_id", account_id),
        ("payload.object.id", webinar_id),
    ):
        problem = unstorable_text(text) if isinstance(text, str) else None
        if problem is not None:
            raise EnvelopeError(f"{name} {problem}")
    return Envelope(
        event=event,
        event_ts=int(event_ts) if event_ts is not None else None,
        account_id=str(account_id) if isinstance(account_id, str | int) else None,
        webinar_id=webinar_id,
        body=body,
    )


def id_str(value: object) -> str | None:
    """Zoom sends webinar ids as numbers in some events and strings in others."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items() if k not in _VOLATILE_KEYS}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def delivery_key(envelope: Envelope) -> str:
    """A key that is equal for two deliveries of the same occurrence.

    Zoom has no event id in the body and may re-serialise a retried event, so the key is built
    from parsed content: the event, its timestamp, the account and the ids of what it is about.
    Without `event_ts` (not expected from Zoom) the whole canonicalised body is the key.
    """
    body = envelope.body
    payload = body.get("payload") or {}
    obj = payload.get("object") if isinstance(payload, dict) else None
    if envelope.event_ts is None or not isinstance(obj, dict):
        basis: Any = _canonical(body)
    else:
        basis = {
            "event": envelope.event,
            "event_ts": envelope.event_ts,
            "account_id": envelope.account_id,
            "id": id_str(obj.get("id")),
            "uuid": obj.get("uuid"),
        }
        registrant = obj.get("registrant")
        if isinstance(registrant, dict):
            basis["registrant"] = [registrant.get("id"), registrant.get("email")]
        participant = obj.get("participant")
        if isinstance(participant, dict):
            basis["participant"] = [participant.get(k) for k in _PARTICIPANT_IDENTITY]
        files = obj.get("recording_files")
        if isinstance(files, list):
            basis["files"] = sorted(str(f.get("id")) for f in files if isinstance(f, dict))
        if envelope.event in ("webinar.created", "webinar.updated", "webinar.deleted"):
            basis["object"] = _canonical(obj)
        if not envelope.event.startswith(("webinar.", "recording.")):
            basis["payload"] = _canonical(payload)
    encoded = json.dumps(basis, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(encoded).hexdigest()


def inbox_row(envelope: Envelope, raw: bytes, received_at: datetime) -> dict[str, Any]:
    """The `inbox_event` row stored for a verified delivery (handled events wait for the worker)."""
    handled = envelope.event in HANDLED_EVENTS
    return {
        "delivery_key": delivery_key(envelope),
        "event": envelope.event[:100],
        "event_ts": envelope.event_ts,
        "zoom_account_id": (envelope.account_id or "")[:64] or None,
        "webinar_id": (envelope.webinar_id or "")[:32] or None,
        "raw_body": raw,
        "received_at": received_at,
        "state": InboxState.PENDING if handled else InboxState.IGNORED,
        "attempts": 0,
        "next_attempt_at": received_at if handled else None,
        "locked_until": None,
        "last_error": None,
        "processed_at": None if handled else received_at,
    }
