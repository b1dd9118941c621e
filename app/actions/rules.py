"""Pure rules of the workflow action: input parsing, eligibility and the output fields (no I/O)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from app.ingest.zoom_events import load_json, unstorable_text
from app.sync.rules import is_valid_email, normalize_email

HOST_MESSAGE = "The webinar host cannot register for the webinar"
# HubSpot's custom-action states (reference/hubspot.md §1.4).
SUCCESS = "SUCCESS"
FAIL_CONTINUE = "FAIL_CONTINUE"
BLOCK = "BLOCK"
# How long HubSpot keeps a blocked execution waiting for our callback (ISO-8601 duration).
BLOCK_EXPIRATION = "P1WT1H"
MAX_WEBINAR_ID_DIGITS = 20
# HubSpot portal ids are stored as BIGINT (PostgreSQL refuses anything larger).
MAX_PORTAL_ID = 2**63 - 1
# action_execution.object_id is VARCHAR(64).
MAX_OBJECT_ID_CHARS = 64


class ActionCode(StrEnum):
    """`error_code` values (CONTRACT.md §2)."""

    INVALID_WEBINAR_ID = "invalid_webinar_id"
    WEBINAR_NOT_FOUND = "webinar_not_found"
    REGISTRATION_NOT_ENABLED = "registration_not_enabled"
    EXTRA_REQUIRED_FIELDS = "extra_required_fields"
    HOST_CANNOT_REGISTER = "host_cannot_register"
    NOT_PRIMARY_BUSINESS_UNIT = "not_primary_business_unit"
    MISSING_CONTACT_FIELDS = "missing_contact_fields"
    SYNC_DISABLED = "sync_disabled"
    ZOOM_ERROR = "zoom_error"


class BadActionRequest(ValueError):
    """The body is not a workflow-action execution request (answered 400 with this reason)."""


@dataclass(frozen=True, slots=True)
class ActionFailure:
    code: ActionCode
    message: str

    def output_fields(self) -> dict[str, str]:
        return {
            "hs_execution_state": FAIL_CONTINUE,
            "error_code": self.code.value,
            "error_message": self.message,
        }


@dataclass(frozen=True, slots=True)
class ActionSuccess:
    registrant_id: str
    join_url: str

    def output_fields(self) -> dict[str, str]:
        return {"hs_execution_state": SUCCESS, "registrant_id": self.registrant_id, "join_url": self.join_url}


Outcome = ActionFailure | ActionSuccess


def block_output() -> dict[str, str]:
    return {"hs_execution_state": BLOCK, "hs_expiration_duration": BLOCK_EXPIRATION}


@dataclass(frozen=True, slots=True)
class ActionRequest:
    """What one execution asks for, as HubSpot sent it (values not yet judged)."""

    callback_id: str
    portal_id: int
    object_id: str
    properties: dict[str, str]
    webinar_id_input: str | None

    @property
    def email(self) -> str | None:
        return self.properties.get("email") or None

    @property
    def first_name(self) -> str | None:
        return display_text(self.properties.get("firstname")) or None

    @property
    def last_name(self) -> str | None:
        return display_text(self.properties.get("lastname")) or None


def display_text(value: str | None) -> str:
    """A name as it can be sent to Zoom and stored: NUL characters removed and lone surrogates
    replaced. Names are display text, so dropping a character that no system can hold is harmless
    (the email, which identifies the contact, is not cleaned: it fails the address check instead)."""
    if not value:
        return ""
    if unstorable_text(value) is not None:
        value = value.replace("\x00", "").encode("utf-8", "replace").decode()
    return value.strip()


def _text(value: Any) -> str | None:
    """Input values arrive as strings, but numbers (a webinar id) are tolerated."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float | str):
        return str(value).strip()
    return None


def _input_value(value: Any) -> str | None:
    # HubSpot sends the resolved value; a typed wrapper {"type": ..., "value": ...} is tolerated too.
    if isinstance(value, Mapping):
        return _text(value.get("value"))
    return _text(value)


def parse_action_request(raw: bytes) -> ActionRequest:
    try:
        body = load_json(raw)
    except ValueError as exc:  # also too deep, or an integer of thousands of digits
        raise BadActionRequest(f"body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadActionRequest("body must be a JSON object")
    callback_id = body.get("callbackId")
    if not isinstance(callback_id, str) or not callback_id.strip() or len(callback_id) > 200:
        raise BadActionRequest("callbackId must be a non-empty string of at most 200 characters")
    # Identifiers are stored and looked up as they are: text no database can hold is refused.
    if (problem := unstorable_text(callback_id)) is not None:
        raise BadActionRequest(f"callbackId {problem}")
    origin = body.get("origin")
    portal_id = origin.get("portalId") if isinstance(origin, dict) else None
    if isinstance(portal_id, str) and portal_id.isascii() and portal_id.isdigit() and len(portal_id) <= 19:
        portal_id = int(portal_id)
    if not isinstance(portal_id, int) or isinstance(portal_id, bool) or not 0 < portal_id <= MAX_PORTAL_ID:
        raise BadActionRequest(f"origin.portalId must be a positive integer of at most {MAX_PORTAL_ID}")
    obj = body.get("object")
    if not isinstance(obj, dict):
        raise BadActionRequest("object must be a JSON object")
    object_id = _text(obj.get("objectId"))
    if not object_id:
        raise BadActionRequest("object.objectId is missing")
    if len(object_id) > MAX_OBJECT_ID_CHARS:
        raise BadActionRequest(f"object.objectId is longer than {MAX_OBJECT_ID_CHARS} characters")
    if (problem := unstorable_text(object_id)) is not None:
        raise BadActionRequest(f"object.objectId {problem}")
    raw_props = obj.get("properties")
    raw_props = {} if raw_props is None else raw_props
    if not isinstance(raw_props, dict):
        raise BadActionRequest("object.properties must be a JSON object")
    properties = {str(k): v for k, v in ((k, _text(v)) for k, v in raw_props.items()) if v is not None}
    inputs = body.get("inputFields")
    inputs = {} if inputs is None else inputs
    if not isinstance(inputs, dict):
        raise BadActionRequest("inputFields must be a JSON object")
    return ActionRequest(
        callback_id=callback_id.strip(),
        portal_id=portal_id,
        object_id=object_id,
        properties=properties,
        webinar_id_input=_input_value(inputs.get("webinar_id")),
    )


def normalize_webinar_id(raw: str | None) -> str | ActionFailure:
    """W1: spaces and dashes are stripped (people paste `894 1234 5678`); anything else must be digits."""
    if raw is None or not raw.strip():
        return ActionFailure(ActionCode.INVALID_WEBINAR_ID, "No webinar ID was given")
    cleaned = "".join(ch for ch in raw if not ch.isspace() and ch != "-")
    if not cleaned.isascii() or not cleaned.isdigit() or len(cleaned) > MAX_WEBINAR_ID_DIGITS:
        # The message echoes the input: made displayable (a lone surrogate cannot even be encoded).
        shown = raw[:60] if unstorable_text(raw[:60]) is None else display_text(raw[:60])
        return ActionFailure(
            ActionCode.INVALID_WEBINAR_ID,
            f"'{shown}' is not a Zoom webinar ID (digits only; spaces and dashes are allowed)",
        )
    return cleaned


def business_unit_ids(value: str | None) -> set[str]:
    """`hs_all_assigned_business_unit_ids` is `;`-separated (commas tolerated); empty: none at all."""
    if value is None:
        return set()
    return {part.strip() for part in value.replace(",", ";").split(";") if part.strip()}


def in_primary_business_unit(value: str | None) -> bool:
    """W3 for a portal with the one primary connection (business unit 0)."""
    ids = business_unit_ids(value)
    return not ids or "0" in ids


@dataclass(frozen=True, slots=True)
class UnitConnection:
    """One of a portal's connections, as W3 sees it: which business unit reaches which Zoom account."""

    zoom_account_id: str
    business_unit_id: int
    is_primary: bool


def connection_for_contact(connections: Sequence[UnitConnection], value: str | None) -> UnitConnection | None:
    """W3 per connection: the connection whose business unit the contact is assigned to, primary ones
    first, in the order given; a contact with no business unit at all belongs to the primary one.
    None: no connection of the portal serves the contact's business units."""
    ids = business_unit_ids(value)
    ordered = sorted(connections, key=lambda c: not c.is_primary)  # stable: keeps the given order
    if not ids:
        return next((c for c in ordered if c.is_primary), None)
    return next((c for c in ordered if str(c.business_unit_id) in ids), None)


@dataclass(frozen=True, slots=True)
class Contact:
    email: str
    first_name: str
    last_name: str | None


def check_contact(request: ActionRequest) -> Contact | ActionFailure:
    """W2: Zoom needs an email and a first name; the last name is optional at Zoom."""
    first_name = request.first_name
    missing = [name for name, value in (("email", request.email), ("firstname", first_name)) if not value]
    # A missing first name is in `missing` already; the check tells the type checker.
    if missing or first_name is None:
        return ActionFailure(
            ActionCode.MISSING_CONTACT_FIELDS,
            "The contact has no " + " and no ".join(missing) + "; Zoom needs both to register it",
        )
    email = normalize_email(request.email)
    if email is None or not is_valid_email(email):
        return ActionFailure(ActionCode.MISSING_CONTACT_FIELDS, "The contact's email is not a valid address")
    return Contact(email=email, first_name=first_name[:64], last_name=(request.last_name or None))


def extra_required_fields_failure(names: Iterable[str]) -> ActionFailure | None:
    """R1: only first name, last name and email may be required by the registration form."""
    listed = [name for name in names if name]
    if not listed:
        return None
    return ActionFailure(
        ActionCode.EXTRA_REQUIRED_FIELDS,
        "The webinar's registration form requires fields beyond first name, last name and email: "
        + ", ".join(listed),
    )


def is_host(email: str, host_emails: Iterable[str | None]) -> bool:
    """W4: the contact is the webinar's host or the connected Zoom user."""
    return any(normalize_email(h) == email for h in host_emails if h)
