"""Typed HubSpot errors, each carrying the HTTP status and HubSpot's own category.

Exceptions never hold the request (whose headers carry the bearer token), only the method, the
path and what HubSpot said, so `str(exc)` and `repr(exc)` are safe to log.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

_MAX_TEXT_BODY = 300  # chars of a non-JSON body kept in the message


class HubSpotError(Exception):
    """Any failed call to HubSpot. `retryable` says whether trying the same call later may succeed."""

    retryable: ClassVar[bool] = False

    def __init__(
        self,
        status: int | None,
        category: str | None,
        message: str,
        correlation_id: str | None = None,
        context: Mapping[str, Any] | None = None,
        *,
        sub_category: str | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        self.status = status
        self.category = category
        self.message = message
        self.correlation_id = correlation_id
        self.context: dict[str, Any] = dict(context or {})
        self.sub_category = sub_category
        self.method = method
        self.path = path
        super().__init__(self._describe())

    def _describe(self) -> str:
        head = "HubSpot"
        if self.status is not None:
            head += f" {self.status}"
        if self.category:
            head += f" {self.category}"
        text = f"{head}: {self.message}"
        where = " ".join(part for part in (self.method, self.path) if part)
        extras = [where] if where else []
        if self.correlation_id:
            extras.append(f"correlation id {self.correlation_id}")
        if extras:
            text += f" ({'; '.join(extras)})"
        return text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, category={self.category!r}, "
            f"message={self.message!r}, correlation_id={self.correlation_id!r})"
        )


class HubSpotRateLimited(HubSpotError):
    """429: HubSpot asked us to wait `retry_after_s` seconds (policy `TEN_SECONDLY_ROLLING` or `DAILY`)."""

    retryable = True

    def __init__(
        self,
        status: int | None,
        category: str | None,
        message: str,
        correlation_id: str | None = None,
        context: Mapping[str, Any] | None = None,
        *,
        retry_after_s: float,
        policy_name: str | None = None,
        sub_category: str | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        self.retry_after_s = retry_after_s
        self.policy_name = policy_name
        super().__init__(
            status,
            category,
            message,
            correlation_id,
            context,
            sub_category=sub_category,
            method=method,
            path=path,
        )


class HubSpotServerError(HubSpotError):
    """5xx: a temporary problem on HubSpot's side."""

    retryable = True


class HubSpotAuthError(HubSpotError):
    """401/403: the token is invalid, expired or lacks a scope. Retrying the same call cannot help."""


class HubSpotNotFound(HubSpotError):
    """404."""


class HubSpotValidationError(HubSpotError):
    """400/409/422: HubSpot rejected what we sent."""


class HubSpotUnavailable(HubSpotError):
    """HubSpot could not be reached (connection, timeout, protocol errors) on every attempt."""

    retryable = True


def _first_str(body: Mapping[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = body.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def error_from_response(
    status: int,
    body: bytes,
    *,
    retry_after_s: float = 0.0,
    method: str | None = None,
    path: str | None = None,
) -> HubSpotError:
    """Build the typed error for a non-2xx response; tolerates bodies that are not HubSpot's JSON."""
    parsed: Any = None
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = None
    data: Mapping[str, Any] = parsed if isinstance(parsed, dict) else {}

    if data:
        message = _first_str(data, "message") or f"HTTP {status}"
    else:
        text = body.decode("utf-8", errors="replace").strip()
        message = text[:_MAX_TEXT_BODY] if text else f"HTTP {status}"
    # 429 bodies name the kind in `errorType` rather than `category`.
    category = _first_str(data, "category", "errorType")
    correlation_id = _first_str(data, "correlationId")
    sub_category = _first_str(data, "subCategory")
    raw_context = data.get("context")
    context: dict[str, Any] = dict(raw_context) if isinstance(raw_context, dict) else {}
    common: dict[str, Any] = {"sub_category": sub_category, "method": method, "path": path}

    if status == 429:
        return HubSpotRateLimited(
            status,
            category,
            message,
            correlation_id,
            context,
            retry_after_s=retry_after_s,
            policy_name=_first_str(data, "policyName"),
            **common,
        )
    cls: type[HubSpotError]
    if status >= 500:
        cls = HubSpotServerError
    elif status in (401, 403):
        cls = HubSpotAuthError
    elif status == 404:
        cls = HubSpotNotFound
    elif status in (400, 409, 422):
        cls = HubSpotValidationError
    else:
        cls = HubSpotError
    return cls(status, category, message, correlation_id, context, **common)
