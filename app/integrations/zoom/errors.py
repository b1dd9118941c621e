"""Typed Zoom errors, chosen by Zoom's own error `code` first and by the HTTP status second.

Exceptions never hold the request (whose headers carry the bearer token), only the method, the
path and what Zoom said, with email addresses masked, so `str(exc)` and `repr(exc)` are safe to log.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import httpx

# One Retry-After parser for both REST clients.
from app.integrations.retry import parse_retry_after

_MAX_TEXT_BODY = 300  # chars of a non-JSON body kept in the message
_EMAIL = re.compile(r"[^\s@'\"<>()\[\]{},;:]+@[^\s@'\"<>()\[\]{},;:]+")
_EMAIL_MASK = "[email]"

# Zoom error codes this service reacts to (docs: "Error Codes" and each endpoint's responses).
CODE_VALIDATION_OR_INVALID_ID = 300  # "Validation Failed." / "Invalid webinar ID" on GET /webinars/{id}
CODE_ACCESS_TOKEN_INVALID = 124  # "Access token is expired. Invalid access token."
CODE_USER_NOT_FOUND = 1001
CODE_REGISTRATION_NOT_ENABLED = 3000  # also "limit for the number of attendees" and "paid registration"
CODE_WEBINAR_NOT_FOUND = 3001
CODE_HOST_CANNOT_REGISTER = 3027
CODE_WEBINAR_OVER = 3038
CODE_RECORDING_NOT_FOUND = 3301
OAUTH_CODES = range(4700, 4742)  # invalid access token, missing scopes, invalid client, ...

_WEBINAR_PATH = re.compile(r"^/(?:webinars|past_webinars|report/webinars)/[^/]+(?:/|$)")
_GET_WEBINAR_PATH = re.compile(r"^/webinars/[^/]+/?$")
_RECORDINGS_PATH = re.compile(r"^/meetings/[^/]+/recordings/?$")
_USER_PATH = re.compile(r"^/users/[^/]+/?$")


def mask_emails(text: str) -> str:
    """Replace anything that looks like an email address (logs must never carry one)."""
    return _EMAIL.sub(_EMAIL_MASK, text)


class ZoomError(Exception):
    """Any failed call to Zoom. `retryable` says whether trying the same call later may succeed."""

    retryable: ClassVar[bool] = False

    def __init__(
        self,
        status: int | None,
        code: int | None,
        message: str,
        *,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.method = method
        self.path = path
        super().__init__(self._describe())

    def _describe(self) -> str:
        head = "Zoom"
        if self.status is not None:
            head += f" {self.status}"
        if self.code is not None:
            head += f" code {self.code}"
        text = f"{head}: {self.message}"
        where = " ".join(part for part in (self.method, self.path) if part)
        if where:
            text += f" ({where})"
        return text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, code={self.code!r}, "
            f"message={self.message!r}, method={self.method!r}, path={self.path!r})"
        )


class ZoomWebinarNotFound(ZoomError):
    """3001 (not found or expired), 300 "Invalid webinar ID", or a 404 on a webinar path."""


class ZoomRegistrationNotEnabled(ZoomError):
    """3000: registration is off for the webinar. Zoom uses the same code for "reached the limit for
    the number of attendees" and "does not support paid registration": read `message`."""


class ZoomHostCannotRegister(ZoomError):
    """3027: the webinar's host cannot register for it."""


class ZoomWebinarOver(ZoomError):
    """3038: the webinar is over; registration is closed."""


class ZoomUserNotFound(ZoomError):
    """1001: the user does not exist or does not belong to this account."""


class ZoomRecordingNotFound(ZoomError):
    """3301 (no recording for this meeting), or a 404 on a recording or download URL."""


class ZoomAuthError(ZoomError):
    """401, 124 or 4700-4741: the access token or the app's credentials were refused."""


class ZoomRateLimited(ZoomError):
    """429: Zoom asked us to wait `retry_after_s` seconds (None: Zoom did not say)."""

    retryable = True

    def __init__(
        self,
        status: int | None,
        code: int | None,
        message: str,
        *,
        retry_after_s: float | None = None,
        rate_limit_type: str | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        self.retry_after_s = retry_after_s
        self.rate_limit_type = rate_limit_type
        super().__init__(status, code, message, method=method, path=path)

    def _describe(self) -> str:
        text = super()._describe()
        if self.retry_after_s is not None:
            text += f" [retry after {self.retry_after_s:.1f}s]"
        return text


class ZoomUnavailable(ZoomError):
    """5xx, or Zoom could not be reached (connection errors, timeouts)."""

    retryable = True


# --- Retry-After ----------------------------------------------------------------------------------


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _seconds_to_utc_midnight(now: datetime) -> float:
    now = _aware(now).astimezone(UTC)
    midnight = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
    return (midnight - now).total_seconds()


# --- building errors from responses ---------------------------------------------------------------


def _int_code(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def _scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return mask_emails(text)


def parse_error_body(content: bytes) -> tuple[int | None, str | None]:
    """Zoom's `{"code": .., "message": ..}`; (None, None) for bodies that are not that JSON."""
    try:
        parsed: Any = json.loads(content) if content else None
    except ValueError:  # includes UnicodeDecodeError
        return None, None
    if not isinstance(parsed, dict):
        return None, None
    message = parsed.get("message")
    return _int_code(parsed.get("code")), message if isinstance(message, str) and message else None


def _error_class(status: int, code: int | None, method: str | None, path: str) -> type[ZoomError]:
    if code is not None:
        if code == CODE_WEBINAR_NOT_FOUND:
            return ZoomWebinarNotFound
        if code == CODE_REGISTRATION_NOT_ENABLED:
            return ZoomRegistrationNotEnabled
        if code == CODE_HOST_CANNOT_REGISTER:
            return ZoomHostCannotRegister
        if code == CODE_WEBINAR_OVER:
            return ZoomWebinarOver
        if code == CODE_USER_NOT_FOUND:
            return ZoomUserNotFound
        if code == CODE_RECORDING_NOT_FOUND:
            return ZoomRecordingNotFound
        if code == CODE_ACCESS_TOKEN_INVALID or code in OAUTH_CODES:
            return ZoomAuthError
        if (
            code == CODE_VALIDATION_OR_INVALID_ID
            and (method or "").upper() == "GET"
            and _GET_WEBINAR_PATH.match(path)
        ):
            return ZoomWebinarNotFound
    if status == 429:
        return ZoomRateLimited
    if status == 401:
        return ZoomAuthError
    if status >= 500:
        return ZoomUnavailable
    if status == 404:
        if _RECORDINGS_PATH.match(path):
            return ZoomRecordingNotFound
        if _WEBINAR_PATH.match(path):
            return ZoomWebinarNotFound
        if _USER_PATH.match(path):
            return ZoomUserNotFound
    return ZoomError


def error_from_response(
    response: httpx.Response,
    method: str | None,
    path: str | None,
    *,
    now: datetime | None = None,
    redact: Iterable[str] = (),
) -> ZoomError:
    """The typed error for a non-2xx response; tolerates bodies that are not Zoom's JSON.

    `path` is the API path (used both to pick the class and in the message); `redact` lists
    secrets (the bearer token) that must not survive into the message even if Zoom echoes them.
    """
    secrets = tuple(redact)
    status = response.status_code
    content = response.content
    code, message = parse_error_body(content)
    if message is None:
        text = content.decode("utf-8", errors="replace").strip()
        message = text[:_MAX_TEXT_BODY] if text and code is None else f"HTTP {status}"
    message = _scrub(message, secrets)
    safe_path = _scrub(path, secrets) if path else path
    cls = _error_class(status, code, method, path or "")
    if cls is ZoomRateLimited:
        moment = now if now is not None else datetime.now(UTC)
        retry_after_s = parse_retry_after(response.headers.get("Retry-After"), moment)
        limit_type = response.headers.get("X-RateLimit-Type")
        if retry_after_s is None and (
            "daily" in (limit_type or "").lower() or "daily rate limit" in message.lower()
        ):
            # A daily limit without a date: Zoom's daily limits reset at 00:00 UTC.
            retry_after_s = _seconds_to_utc_midnight(moment)
        return ZoomRateLimited(
            status,
            code,
            message,
            retry_after_s=retry_after_s,
            rate_limit_type=limit_type,
            method=method,
            path=safe_path,
        )
    return cls(status, code, message, method=method, path=safe_path)
