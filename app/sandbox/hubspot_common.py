"""Constants, small helpers and HubSpot's error shapes shared by the fake HubSpot's modules.

What is one HubSpot format on both sides comes from the client's own modules: the vocabularies
(`app.integrations.hubspot.models`), the date-time form and the string form of a property value
(`app.integrations.hubspot.wire.iso_utc`, `property_value`). Limits the fake enforces (batch sizes,
search limits) stay its own: a fake that read them from the client could not catch the client
going over them.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, get_args

from pydantic import BeforeValidator

from app.integrations.hubspot.models import AttendanceState, PropertyFieldType, PropertyType, TokenType
from app.integrations.hubspot.wire import iso_utc

JSON = dict[str, Any]

BATCH_LIMIT = 100
USERS_PAGE_LIMIT = 100
CALL_TO_CONTACT = 194
# HubSpot's vocabularies are the client's own (app.integrations.hubspot.models), so the fake accepts
# exactly what the client may send and read back; a word added there is accepted here too.
SUBSCRIBER_STATES: tuple[str, ...] = get_args(AttendanceState)
DEFAULT_TOKENS: Mapping[str, int] = {"sandbox-token": 1}

PROPERTY_TYPES = frozenset(get_args(PropertyType))
FIELD_TYPES = frozenset(get_args(PropertyFieldType))
TOKEN_TYPES = frozenset(get_args(TokenType))
TEMPLATE_OBJECT_TYPES = frozenset({"contacts", "companies", "deals", "tickets"})
SEARCH_LIMIT = 200
SEARCH_MAX_GROUPS = 5
SEARCH_MAX_FILTERS_PER_GROUP = 10
SEARCH_MAX_FILTERS = 25
SEARCH_OPERATORS = frozenset({"EQ", "NEQ", "IN", "NOT_IN", "HAS_PROPERTY", "NOT_HAS_PROPERTY"})
CREATE_CALL_ROUTE = "POST /crm/v3/objects/calls"
# Always returned by reads, whatever ``properties`` asks for.
ALWAYS_READ = ("createdate", "hs_object_id", "lastmodifieddate")
DEFAULT_READ = ("email", "firstname", "lastname")
_EMAIL_RE = re.compile(r"^[^@\s;,]+@[^@\s;,]+\.[^@\s;,.]{2,}$")
TOKEN_NAME_RE = re.compile(r"^[A-Za-z0-9._-]+$")


# --------------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------------


def now_utc() -> datetime:
    return datetime.now(UTC)


def new_uuid() -> str:
    return str(uuid.uuid4())


def epoch_ms(value: Any, *, default: int | None = None) -> int | None:
    """Epoch milliseconds from an int, a numeric string or an ISO-8601 string; ``default`` otherwise."""
    if value is None or isinstance(value, bool):
        return default
    if isinstance(value, int | float):
        return int(value)
    text = str(value).strip()
    if re.fullmatch(r"-?\d+(\.\d+)?", text):
        return int(float(text))
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return default
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def valid_email(email: str) -> bool:
    return bool(_EMAIL_RE.fullmatch(email))


def split_emails(raw: str) -> list[str]:
    """``hs_additional_emails`` is semicolon-separated."""
    return [part.strip().lower() for part in raw.split(";") if part.strip()]


def _to_id(value: Any) -> Any:
    """Ids may arrive as JSON numbers; keep them as strings internally."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


Id = Annotated[str, BeforeValidator(_to_id)]


def error_body(
    category: str,
    message: str,
    *,
    sub_category: str | None = None,
    context: Mapping[str, list[str]] | None = None,
    errors: list[JSON] | None = None,
) -> JSON:
    """HubSpot's ``Error`` JSON for a failed request."""
    body: JSON = {"status": "error", "message": message, "correlationId": new_uuid(), "category": category}
    if sub_category:
        body["subCategory"] = sub_category
    if context:
        body["context"] = dict(context)
    if errors:
        body["errors"] = errors
    return body


def item_error(
    category: str,
    message: str,
    *,
    context: Mapping[str, list[str]],
    code: str | None = None,
    sub_category: str | None = None,
) -> JSON:
    """One ``StandardError`` entry of a 207 batch response."""
    entry: JSON = {
        "status": "error",
        "category": category,
        "message": message,
        "errors": [{"message": message, "code": code}] if code else [],
        "context": dict(context),
        "links": {},
    }
    if sub_category or code:
        entry["subCategory"] = sub_category or code
    return entry


class SandboxError(Exception):
    """A whole-request failure; the HTTP layer renders it with HubSpot's error JSON."""

    def __init__(
        self,
        status_code: int,
        category: str,
        message: str,
        *,
        sub_category: str | None = None,
        context: Mapping[str, list[str]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.category = category
        self.message = message
        self.sub_category = sub_category
        self.context = dict(context or {})
        self.headers = dict(headers or {})

    def body(self) -> JSON:
        return error_body(self.category, self.message, sub_category=self.sub_category, context=self.context)


def validation_error(message: str, **context: list[str]) -> SandboxError:
    return SandboxError(400, "VALIDATION_ERROR", message, context=context)


def not_found(message: str) -> SandboxError:
    return SandboxError(404, "OBJECT_NOT_FOUND", message)


def check_batch_size(inputs: Sequence[object], limit: int = BATCH_LIMIT) -> None:
    if len(inputs) > limit:
        raise validation_error(f"Batch input length {len(inputs)} exceeds the limit of {limit} inputs.")


@dataclass
class BatchOutcome:
    """Results and per-input errors of one batch call."""

    results: list[JSON] = field(default_factory=list)
    errors: list[JSON] = field(default_factory=list)

    def status_code(self, ok: int = 200) -> int:
        return 207 if self.errors else ok

    def body(self, started_at: datetime) -> JSON:
        body: JSON = {
            "status": "COMPLETE",
            "results": self.results,
            "startedAt": iso_utc(started_at),
            "completedAt": iso_utc(now_utc()),
        }
        if self.errors:
            body["numErrors"] = len(self.errors)
            body["errors"] = self.errors
        return body


def order_key(ident: str) -> tuple[int, str]:
    """Numeric ids in numeric order, then any other (seeded) ids alphabetically."""
    return (int(ident), "") if ident.isdigit() else (1 << 62, ident)


def is_number(value: str) -> bool:
    try:
        return math.isfinite(float(value))
    except ValueError:
        return False
