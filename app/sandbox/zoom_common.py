"""Constants, rate-limit labels, small helpers and Zoom's errors shared by the fake Zoom's modules."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

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


def parse_basic(authorization: str | None) -> tuple[str, str] | None:
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


def clamp_page_size(value: int | None, *, default: int, maximum: int) -> int:
    if value is None:
        return default
    if value < 1:
        raise validation_failed("page_size")
    return min(value, maximum)
