"""Activities any account can receive, in the fake HubSpot (CONTRACT §4.2): 2026-03 app events and
notes on a portal's contacts (one mixin of :class:`~app.sandbox.hubspot_state.PortalState`), and the
app-level switches that decide who may write them (:class:`ActivitySettings`).

Choices where HubSpot's behaviour is not documented (``reference/hubspot-platform.md`` §1, §4, §8):

* App events are refused with a 403 (category ``MISSING_SCOPES``) for a static token, and with a 403
  (category ``FORBIDDEN``) when the app has no approved event types; an ``eventTypeName`` the app does
  not define is a 400 for the whole request, nothing stored.
* A reused event id (per event type) is a 409 for the whole batch, nothing stored: the client cannot
  tell which inputs were new, as with HubSpot's "events are immutable" answer.
* An app event on a contact that does not exist is a 207 error entry naming the event's ``id``.
* ``classic_closed`` plays an app made after the v3 templates were closed: while it has no template,
  creating one answers 403 (apps that already had templates keep them).
* Notes: create (``hs_timestamp`` required) with inline note-to-contact associations (type 202), batch
  read, and the contact's associated notes through the v4 associations route, listed at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.integrations.hubspot.wire import iso_utc, property_value
from app.sandbox.hubspot_common import (
    JSON,
    BatchOutcome,
    SandboxError,
    check_batch_size,
    item_error,
    not_found,
    now_utc,
    order_key,
    validation_error,
)
from app.sandbox.hubspot_contacts import ContactsMixin

NOTE_TO_CONTACT = 202
NOTE_ID_BASE = 80_000
ASSOCIATIONS_PAGE_LIMIT = 500


# ---- bodies ---------------------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class AppEventInput(_Body):
    eventTypeName: str
    id: str
    objectId: str | int | None = None
    email: str | None = None
    timestamp: str | None = None
    properties: dict[str, Any] = Field(default_factory=dict)


class AppEventBatch(_Body):
    inputs: list[AppEventInput]


class _Ref(_Body):
    id: str | int


class _AssociationType(_Body):
    associationCategory: str = "HUBSPOT_DEFINED"
    associationTypeId: int | str


class NoteAssociation(_Body):
    to: _Ref
    types: list[_AssociationType]


class NoteCreate(_Body):
    properties: dict[str, Any] = Field(default_factory=dict)
    associations: list[NoteAssociation] = Field(default_factory=list)


class NotesBatchRead(_Body):
    inputs: list[_Ref]
    properties: list[str] = Field(default_factory=list)


class ActivitySettingsUpdate(_Body):
    app_event_types: list[str] | None = None
    oauth_tokens: list[str] | None = None
    classic_closed: bool | None = None


# ---- records --------------------------------------------------------------------------------------


@dataclass
class ActivitySettings:
    """The app's side: which event types HubSpot approved, which tokens came from an OAuth install
    (the others are static: app events refuse them), whether classic templates are closed to it."""

    app_event_types: set[str] = field(default_factory=set)
    oauth_tokens: set[str] = field(default_factory=set)
    classic_closed: bool = False

    def to_json(self) -> JSON:
        return {
            "app_event_types": sorted(self.app_event_types),
            "oauth_tokens": len(self.oauth_tokens),  # tokens are never echoed
            "classic_closed": self.classic_closed,
        }

    def update(self, body: ActivitySettingsUpdate) -> None:
        if body.app_event_types is not None:
            self.app_event_types = set(body.app_event_types)
        if body.oauth_tokens is not None:
            self.oauth_tokens = set(body.oauth_tokens)
        if body.classic_closed is not None:
            self.classic_closed = body.classic_closed


@dataclass
class AppEventRecord:
    event_type_name: str
    id: str
    object_id: str
    properties: dict[str, str]
    timestamp: str
    created_at: datetime

    def to_json(self) -> JSON:
        return {
            "eventTypeName": self.event_type_name,
            "id": self.id,
            "objectId": self.object_id,
            "properties": dict(self.properties),
            "timestamp": self.timestamp,
            "createdAt": iso_utc(self.created_at),
        }


@dataclass
class Note:
    id: str
    properties: dict[str, str]
    contact_ids: list[str]
    created_at: datetime

    def to_json(self, wanted: Sequence[str] | None = None, *, with_associations: bool = False) -> JSON:
        names = list(self.properties) if wanted is None else ["hs_object_id", *wanted]
        body: JSON = {
            "id": self.id,
            "properties": {name: self.properties.get(name) for name in dict.fromkeys(names)},
            "createdAt": iso_utc(self.created_at),
            "updatedAt": iso_utc(self.created_at),
            "archived": False,
        }
        if with_associations:
            body["associations"] = {
                "contacts": {"results": [{"id": c, "type": "note_to_contact"} for c in self.contact_ids]}
            }
        return body


# ---- the mixin ------------------------------------------------------------------------------------


class ActivitiesMixin(ContactsMixin):
    """App events and notes of a portal's contacts."""

    app_events: dict[tuple[str, str], AppEventRecord]
    notes: dict[str, Note]

    # ---- app events (2026-03) ----------------------------------------------------------------------

    def create_app_events(
        self, inputs: Sequence[AppEventInput], settings: ActivitySettings, *, static_token: bool
    ) -> BatchOutcome:
        check_batch_size(inputs)
        if static_token:
            raise SandboxError(
                403,
                "MISSING_SCOPES",
                "App events need an OAuth access token with the timeline scope; "
                "static tokens are not accepted.",
            )
        if not settings.app_event_types:
            raise SandboxError(403, "FORBIDDEN", "This app has no approved app event types.")
        unknown = sorted({i.eventTypeName for i in inputs} - settings.app_event_types)
        if unknown:
            raise validation_error(
                f"Unknown event type name(s): {', '.join(unknown)}.", eventTypeName=unknown
            )
        seen: set[tuple[str, str]] = set()
        for item in inputs:
            key = (item.eventTypeName, item.id)
            if key in self.app_events or key in seen:
                raise SandboxError(
                    409, "CONFLICT", f"An event with id {item.id} already exists.", context={"id": [item.id]}
                )
            seen.add(key)
        outcome = BatchOutcome()
        moment = now_utc()
        for item in inputs:
            contact = self.live_contact(str(item.objectId)) if item.objectId is not None else None
            if contact is None:
                message = (
                    f"Contact {item.objectId} does not exist (the sandbox identifies contacts by objectId)."
                )
                outcome.errors.append(item_error("OBJECT_NOT_FOUND", message, context={"id": [item.id]}))
                continue
            record = AppEventRecord(
                event_type_name=item.eventTypeName,
                id=item.id,
                object_id=contact.id,
                properties={name: property_value(value) for name, value in item.properties.items()},
                timestamp=item.timestamp or iso_utc(moment),
                created_at=moment,
            )
            self.app_events[(item.eventTypeName, item.id)] = record
            outcome.results.append(record.to_json())
        return outcome

    def app_events_of(self, contact_id: str) -> list[AppEventRecord]:
        return [e for e in self.app_events.values() if e.object_id == contact_id]

    # ---- notes --------------------------------------------------------------------------------------

    def create_note(self, body: NoteCreate) -> JSON:
        values = {name: property_value(value) for name, value in body.properties.items()}
        if not values.get("hs_timestamp"):
            raise validation_error("hs_timestamp is required.", propertyName=["hs_timestamp"])
        contact_ids: list[str] = []
        for association in body.associations:
            for spec in association.types:
                if (
                    str(spec.associationTypeId) != str(NOTE_TO_CONTACT)
                    or spec.associationCategory != "HUBSPOT_DEFINED"
                ):
                    raise validation_error(
                        "The sandbox supports only the note-to-contact association (HUBSPOT_DEFINED, 202)."
                    )
            contact = self.live_contact(str(association.to.id))
            if contact is None:
                raise not_found(f"Contact {association.to.id} does not exist.")
            contact_ids.append(contact.id)
        note_id = str(NOTE_ID_BASE + int(self._new_id("note")))
        values["hs_object_id"] = note_id
        note = Note(note_id, values, contact_ids, now_utc())
        self.notes[note_id] = note
        return note.to_json(with_associations=bool(contact_ids))

    def read_notes(self, body: NotesBatchRead) -> BatchOutcome:
        check_batch_size(body.inputs)
        outcome = BatchOutcome()
        for ref in body.inputs:
            note = self.notes.get(str(ref.id))
            if note is None:
                outcome.errors.append(
                    item_error(
                        "OBJECT_NOT_FOUND", f"Note {ref.id} not found.", context={"ids": [str(ref.id)]}
                    )
                )
                continue
            outcome.results.append(note.to_json(body.properties or ["hs_note_body", "hs_timestamp"]))
        return outcome

    def get_note(self, note_id: str) -> JSON:
        note = self.notes.get(note_id)
        if note is None:
            raise not_found(f"Note {note_id} not found.")
        return note.to_json(with_associations=True)

    def contact_note_associations(self, contact_id: str, *, limit: int, after: str | None) -> JSON:
        """``GET /crm/v4/objects/contacts/{id}/associations/notes``: paged by note id."""
        if not 1 <= limit <= ASSOCIATIONS_PAGE_LIMIT:
            raise validation_error(f"limit must be between 1 and {ASSOCIATIONS_PAGE_LIMIT}.")
        ids = sorted((n.id for n in self.notes.values() if contact_id in n.contact_ids), key=order_key)
        start = int(after) if after and after.isdigit() else 0
        page = ids[start : start + limit]
        body: JSON = {
            "results": [
                {
                    "toObjectId": int(note_id),
                    "associationTypes": [
                        {"category": "HUBSPOT_DEFINED", "typeId": NOTE_TO_CONTACT, "label": None}
                    ],
                }
                for note_id in page
            ]
        }
        if start + limit < len(ids):
            body["paging"] = {"next": {"after": str(start + limit)}}
        return body

    def notes_of(self, contact_id: str) -> list[Note]:
        return [n for n in self.notes.values() if contact_id in n.contact_ids]

    def activities_snapshot(self) -> Mapping[str, Any]:
        return {
            "app_events": [e.to_json() for e in self.app_events.values()],
            "notes": [n.to_json(with_associations=True) for n in self.notes.values()],
        }
