"""Signed Zoom webhook deliveries: :func:`sign`, :func:`make_delivery`, :func:`url_validation` and
:func:`reserialize` turn an event envelope into the exact bytes and headers Zoom would POST
(``x-zm-signature`` is ``v0=`` + hex HMAC-SHA256(secret, ``v0:{timestamp}:{body}``)).

Standard library only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Envelope = dict[str, Any]
"""One webhook body before serialisation: ``{"event": ..., "event_ts": ..., "payload": {...}}``."""

CONTENT_TYPE = "application/json; charset=utf-8"
USER_AGENT = "Zoom Marketplace/1.0a"
URL_VALIDATION_EVENT = "endpoint.url_validation"


# --------------------------------------------------------------------------------------------------
# Signing
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Delivery:
    """One HTTP POST as Zoom would send it: ``body`` is exactly the bytes to send."""

    event: str
    body: bytes
    headers: dict[str, str]

    @property
    def timestamp(self) -> int:
        """The ``x-zm-request-timestamp`` header, in seconds."""
        return int(self.headers["x-zm-request-timestamp"])

    @property
    def request_id(self) -> str:
        return self.headers["x-zm-request-id"]

    def json(self) -> Any:
        """The decoded body."""
        return json.loads(self.body)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``x-zm-signature`` value: ``v0=`` + hex HMAC-SHA256(secret, ``v0:{timestamp}:`` + body)."""
    message = b"v0:%d:" % timestamp + body
    return "v0=" + hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def verify(secret: str, delivery: Delivery) -> bool:
    """Whether ``delivery``'s signature matches ``secret`` (constant-time compare)."""
    expected = sign(secret, delivery.timestamp, delivery.body)
    return hmac.compare_digest(expected, delivery.headers.get("x-zm-signature", ""))


def encrypted_token(secret: str, plain_token: str) -> str:
    """The ``encryptedToken`` a correct ``endpoint.url_validation`` reply carries."""
    return hmac.new(secret.encode("utf-8"), plain_token.encode("utf-8"), hashlib.sha256).hexdigest()


def _json_default(value: Any) -> Any:
    """Let ``json.dumps`` serialise any Mapping (e.g. ``MappingProxyType``), not only dicts."""
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _new_request_id() -> str:
    # Zoom documents ids shaped like ``6009d653_d487_445d_8406_42b654974899``.
    return str(uuid.uuid4()).replace("-", "_")


def _signed(secret: str, event: str, body: bytes, timestamp: int | None, request_id: str | None) -> Delivery:
    ts = int(time.time()) if timestamp is None else int(timestamp)
    headers = {
        "content-type": CONTENT_TYPE,
        "user-agent": USER_AGENT,
        "x-zm-request-timestamp": str(ts),
        "x-zm-signature": sign(secret, ts, body),
        "x-zm-request-id": request_id if request_id is not None else _new_request_id(),
    }
    return Delivery(event=event, body=body, headers=headers)


def _event_name(envelope: Mapping[str, Any]) -> str:
    event = envelope.get("event")
    if not isinstance(event, str) or not event:
        raise ValueError("envelope has no 'event' string")
    return event


def make_delivery(
    secret: str,
    envelope: Mapping[str, Any],
    *,
    timestamp: int | None = None,
    request_id: str | None = None,
) -> Delivery:
    """Serialise ``envelope`` as compact UTF-8 JSON (keys in the given order) and sign it.

    ``timestamp`` (seconds) defaults to now; ``request_id`` to a fresh uuid-shaped id.
    """
    event = _event_name(envelope)
    body = json.dumps(
        dict(envelope), separators=(",", ":"), ensure_ascii=False, default=_json_default
    ).encode("utf-8")
    return _signed(secret, event, body, timestamp, request_id)


def url_validation(
    secret: str,
    plain_token: str,
    *,
    timestamp: int | None = None,
    request_id: str | None = None,
) -> Delivery:
    """A signed ``endpoint.url_validation`` challenge (Zoom's own key order; no ``account_id``)."""
    ts = int(time.time()) if timestamp is None else int(timestamp)
    envelope: Envelope = {
        "payload": {"plainToken": plain_token},
        "event_ts": ts * 1000,
        "event": URL_VALIDATION_EVENT,
    }
    return make_delivery(secret, envelope, timestamp=ts, request_id=request_id)


def _reversed_keys(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _reversed_keys(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [_reversed_keys(v) for v in value]
    return value


def reserialize(
    delivery: Delivery,
    secret: str,
    *,
    timestamp: int | None = None,
    request_id: str | None = None,
) -> Delivery:
    """The same event content serialised differently and signed again: Zoom re-sending an event.

    Object keys come in reverse order at every level and the JSON is pretty-printed, so the body bytes
    differ from the original while ``json.loads`` of both is equal. The new delivery gets a new request id
    unless ``request_id`` is given.
    """
    content = json.loads(delivery.body)
    body = json.dumps(_reversed_keys(content), indent=2, ensure_ascii=False).encode("utf-8")
    if body == delivery.body:  # only possible for scalars / empty containers; still change the bytes
        body = b" " + body + b"\n"
    return _signed(secret, delivery.event, body, timestamp, request_id)
