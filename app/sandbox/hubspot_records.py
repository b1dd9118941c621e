"""What the fake HubSpot stores: contacts, properties, templates, timeline and marketing events,
calls, users and workflow callbacks, each with its HubSpot JSON shape.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.integrations.hubspot.models import HubSpotUser
from app.integrations.hubspot.wire import iso_utc
from app.sandbox.hubspot_bodies import MarketingEventBody
from app.sandbox.hubspot_common import (
    ALWAYS_READ,
    JSON,
    order_key,
    split_emails,
)

# --------------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------------


@dataclass
class Contact:
    id: str
    properties: dict[str, str]
    created_at: datetime
    updated_at: datetime
    archived: bool = False
    archived_at: datetime | None = None
    writes: int = 0

    @property
    def email(self) -> str:
        return self.properties.get("email", "").lower()

    @property
    def secondary_emails(self) -> list[str]:
        return split_emails(self.properties.get("hs_additional_emails", ""))

    def to_json(self, properties: Iterable[str] | None = None, *, new: bool | None = None) -> JSON:
        props: dict[str, str | None]
        if properties is None:
            props = dict(self.properties)
        else:
            props = {name: self.properties.get(name) for name in (*properties, *ALWAYS_READ)}
        body: JSON = {
            "id": self.id,
            "properties": props,
            "createdAt": iso_utc(self.created_at),
            "updatedAt": iso_utc(self.updated_at),
            "archived": self.archived,
        }
        if self.archived_at is not None:
            body["archivedAt"] = iso_utc(self.archived_at)
        if new is not None:
            body["new"] = new
        return body


@dataclass
class PropertyGroup:
    name: str
    label: str
    display_order: int = -1

    def to_json(self) -> JSON:
        return {"name": self.name, "label": self.label, "displayOrder": self.display_order, "archived": False}


@dataclass
class PropertyDefinition:
    name: str
    type: str
    group_name: str
    spec: JSON
    created_at: datetime
    hubspot_defined: bool = False

    def to_json(self) -> JSON:
        body = dict(self.spec)
        body.update(
            {
                "name": self.name,
                "type": self.type,
                "groupName": self.group_name,
                "calculated": False,
                "externalOptions": False,
                "archived": False,
                "hubspotDefined": self.hubspot_defined,
                "createdAt": iso_utc(self.created_at),
                "updatedAt": iso_utc(self.created_at),
            }
        )
        return body


@dataclass
class EventTemplate:
    id: str
    app_id: str
    name: str
    object_type: str
    tokens: list[JSON]
    header_template: str | None
    detail_template: str | None
    created_at: datetime

    def token(self, name: str) -> JSON | None:
        return next((t for t in self.tokens if t["name"] == name), None)

    def to_json(self) -> JSON:
        return {
            "id": self.id,
            "name": self.name,
            "objectType": self.object_type,
            "tokens": self.tokens,
            "headerTemplate": self.header_template,
            "detailTemplate": self.detail_template,
            "createdAt": iso_utc(self.created_at),
            "updatedAt": iso_utc(self.created_at),
        }


@dataclass
class TimelineEvent:
    id: str
    template_id: str
    object_id: str
    object_type: str
    tokens: dict[str, str]
    timestamp: str
    created_at: datetime
    extra_data: Any = None
    timeline_iframe: JSON | None = None
    domain: str | None = None

    def to_json(self) -> JSON:
        return {
            "id": self.id,
            "eventTemplateId": self.template_id,
            "objectId": self.object_id,
            "objectType": self.object_type,
            "tokens": dict(self.tokens),
            "timestamp": self.timestamp,
            "extraData": self.extra_data,
            "timelineIFrame": self.timeline_iframe,
            "domain": self.domain,
            "createdAt": iso_utc(self.created_at),
        }


@dataclass
class Attendance:
    """One contact's state in one marketing event: the latest input by ``interactionDateTime`` wins."""

    contact_id: str
    state: str
    interaction_ms: int
    attend: JSON | None = None
    history: list[JSON] = field(default_factory=list)

    def apply(self, state: str, interaction_ms: int, properties: Mapping[str, Any]) -> None:
        self.history.append(
            {"state": state, "interactionDateTime": interaction_ms, "properties": dict(properties)}
        )
        if state == "attend" and (
            self.attend is None or interaction_ms >= self.attend["interactionDateTime"]
        ):
            self.attend = {
                "interactionDateTime": interaction_ms,
                "joinedAt": properties.get("joinedAt"),
                "leftAt": properties.get("leftAt"),
            }
        if interaction_ms >= self.interaction_ms:
            self.state = state
            self.interaction_ms = interaction_ms

    @property
    def registered(self) -> bool:
        return any(h["state"] == "register" for h in self.history)

    def to_json(self) -> JSON:
        attend = self.attend or {}
        return {
            "state": self.state,
            "interactionDateTime": self.interaction_ms,
            "attended": self.attend is not None,
            "joinedAt": attend.get("joinedAt"),
            "leftAt": attend.get("leftAt"),
            "history": list(self.history),
        }


_MARKETING_FIELDS = (
    "eventName",
    "eventOrganizer",
    "eventType",
    "startDateTime",
    "endDateTime",
    "eventUrl",
    "eventDescription",
    "eventCancelled",
    "eventCompleted",
    "customProperties",
)


@dataclass
class MarketingEvent:
    object_id: str
    external_account_id: str
    external_event_id: str
    fields: JSON
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None = None
    attendance: dict[str, Attendance] = field(default_factory=dict)
    # The app whose token made it (external-id routes see only their app's events) and when, on the
    # portal's clock (the identifiers search shows it `search_lag_s` later).
    app_id: str = ""
    created_clock: float = 0.0

    def apply(self, body: MarketingEventBody, moment: datetime) -> None:
        for name, value in body.model_dump(include=set(_MARKETING_FIELDS), exclude_none=True).items():
            self.fields[name] = value
        self.updated_at = moment

    def counts(self) -> JSON:
        states = [a.state for a in self.attendance.values()]
        completed = bool(self.fields.get("eventCompleted"))
        no_shows = sum(
            1 for a in self.attendance.values() if completed and a.attend is None and a.state == "register"
        )
        return {
            "registrants": sum(1 for a in self.attendance.values() if a.registered),
            "attendees": sum(1 for a in self.attendance.values() if a.attend is not None),
            "cancellations": states.count("cancel"),
            "noShows": no_shows,
        }

    def to_json(self) -> JSON:
        body: JSON = {
            "objectId": self.object_id,
            "externalAccountId": self.external_account_id,
            "externalEventId": self.external_event_id,
            "eventCancelled": False,
            "eventCompleted": False,
            "customProperties": [],
        }
        body.update(self.fields)
        body.update(self.counts())
        body["createdAt"] = iso_utc(self.created_at)
        body["updatedAt"] = iso_utc(self.updated_at)
        return body

    def snapshot(self) -> JSON:
        body = self.to_json()
        body["completedAt"] = iso_utc(self.completed_at) if self.completed_at else None
        body["appId"] = self.app_id
        body["attendance"] = {cid: a.to_json() for cid, a in self.attendance.items()}
        return body


@dataclass
class Call:
    id: str
    properties: dict[str, str]
    created_at: datetime
    updated_at: datetime
    contact_ids: list[str] = field(default_factory=list)
    # (clock time, properties) after each write: what search sees once the index caught up.
    versions: list[tuple[float, dict[str, str]]] = field(default_factory=list)

    def written(self, at: float) -> None:
        self.versions.append((at, dict(self.properties)))

    def indexed(self, as_of: float) -> dict[str, str] | None:
        """The properties search sees at clock time `as_of`: None while the call is not indexed yet."""
        seen = [props for at, props in self.versions if at <= as_of]
        return seen[-1] if seen else None

    def associate(self, contact_id: str) -> None:
        if contact_id not in self.contact_ids:
            self.contact_ids.append(contact_id)

    def to_json(self, *, with_associations: bool = False) -> JSON:
        body: JSON = {
            "id": self.id,
            "properties": dict(self.properties),
            "createdAt": iso_utc(self.created_at),
            "updatedAt": iso_utc(self.updated_at),
            "archived": False,
        }
        if with_associations:
            body["associations"] = {
                "contacts": {"results": [{"id": cid, "type": "call_to_contact"} for cid in self.contact_ids]}
            }
        return body


class User(HubSpotUser):
    """A settings user: the client's own shape of it, plus the JSON the fake serves for it."""

    def to_json(self) -> JSON:
        body: JSON = {
            "id": self.id,
            "email": self.email,
            "firstName": self.first_name,
            "lastName": self.last_name,
            "roleIds": list(self.role_ids),
            "secondaryTeamIds": [],
            "superAdmin": self.super_admin,
        }
        if self.primary_team_id is not None:
            body["primaryTeamId"] = self.primary_team_id
        return body


@dataclass
class CallbackCompletion:
    callback_id: str
    output_fields: JSON
    received_at: datetime
    typed_outputs: JSON | None = None
    failure_reason_type: str | None = None
    request_context: JSON | None = None

    def to_json(self) -> JSON:
        return {
            "callbackId": self.callback_id,
            "outputFields": dict(self.output_fields),
            "typedOutputs": self.typed_outputs,
            "failureReasonType": self.failure_reason_type,
            "requestContext": self.request_context,
            "receivedAt": iso_utc(self.received_at),
        }


def id_order(contact: Contact) -> tuple[int, str]:
    return order_key(contact.id)
