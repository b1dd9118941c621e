"""Request bodies of the fake HubSpot: HubSpot's JSON shapes; unknown fields are kept and ignored."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from app.sandbox import gate
from app.sandbox.hubspot_common import (
    SEARCH_LIMIT,
    Id,
)

# --------------------------------------------------------------------------------------------------
# Request bodies (HubSpot's JSON shapes; unknown fields are kept and ignored)
# --------------------------------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


InputT = TypeVar("InputT", bound=BaseModel)


class Batch(_Body, Generic[InputT]):
    inputs: list[InputT]


class ContactUpsertInput(_Body):
    id: Id
    idProperty: str | None = None
    properties: dict[str, Any] = Field(default_factory=dict)


class ObjectRef(_Body):
    id: Id


class GdprDelete(_Body):
    objectId: Id
    idProperty: str | None = None


class ContactBatchRead(_Body):
    inputs: list[ObjectRef]
    idProperty: str | None = None
    properties: list[str] | None = None
    propertiesWithHistory: list[str] | None = None


class PropertyGroupCreate(_Body):
    name: str
    label: str
    displayOrder: int = -1


class PropertyOption(_Body):
    label: str
    value: str
    description: str | None = None
    displayOrder: int | None = None
    hidden: bool = False


class PropertyCreate(_Body):
    name: str
    label: str
    type: str
    fieldType: str
    groupName: str
    description: str = ""
    options: list[PropertyOption] = Field(default_factory=list)
    displayOrder: int = -1
    hidden: bool = False
    formField: bool = False
    hasUniqueValue: bool = False
    numberDisplayHint: str | None = None
    textDisplayHint: str | None = None


class TemplateToken(_Body):
    name: str
    label: str
    type: str
    options: list[dict[str, Any]] | None = None
    objectPropertyName: str | None = None


class TemplateCreate(_Body):
    name: str
    objectType: str
    tokens: list[TemplateToken]
    headerTemplate: str | None = None
    detailTemplate: str | None = None


class TimelineEventInput(_Body):
    eventTemplateId: Id
    tokens: dict[str, Any]
    id: Id | None = None
    objectId: Id | None = None
    email: str | None = None
    utk: str | None = None
    domain: str | None = None
    timestamp: str | int | None = None
    extraData: Any = None
    timelineIFrame: dict[str, Any] | None = None


class MarketingEventBody(_Body):
    externalAccountId: Id | None = None
    externalEventId: Id | None = None
    eventName: str | None = None
    eventOrganizer: str | None = None
    eventType: str | None = None
    startDateTime: str | None = None
    endDateTime: str | None = None
    eventUrl: str | None = None
    eventDescription: str | None = None
    eventCancelled: bool | None = None
    eventCompleted: bool | None = None
    customProperties: list[dict[str, Any]] | None = None


class AttendanceInput(_Body):
    vid: Id
    interactionDateTime: int | str | None = None
    properties: dict[str, Any] = Field(default_factory=dict)


class CompleteBody(_Body):
    startDateTime: str
    endDateTime: str


class AssociationType(_Body):
    associationCategory: str = "HUBSPOT_DEFINED"
    associationTypeId: int | str


class CallAssociation(_Body):
    to: ObjectRef
    types: list[AssociationType]


class CallCreate(_Body):
    properties: dict[str, Any] = Field(default_factory=dict)
    associations: list[CallAssociation] = Field(default_factory=list)


class PropertiesBody(_Body):
    properties: dict[str, Any] = Field(default_factory=dict)


class CallUpdateInput(_Body):
    id: Id
    properties: dict[str, Any] = Field(default_factory=dict)


class AssociationPair(_Body):
    from_: ObjectRef = Field(alias="from")
    to: ObjectRef


class SearchFilter(_Body):
    propertyName: str
    operator: str
    value: Any = None
    values: list[Any] | None = None


class SearchGroup(_Body):
    filters: list[SearchFilter] = Field(default_factory=list)


class SearchBody(_Body):
    filterGroups: list[SearchGroup] = Field(default_factory=list)
    properties: list[str] | None = None
    sorts: list[Any] = Field(default_factory=list)
    query: str | None = None
    limit: int = Field(default=10, ge=1, le=SEARCH_LIMIT)
    after: str | None = None


class CallbackBody(_Body):
    outputFields: dict[str, Any] = Field(default_factory=dict)
    typedOutputs: dict[str, Any] | None = None
    failureReasonType: str | None = None
    requestContext: dict[str, Any] | None = None


class CallbackInput(CallbackBody):
    callbackId: str = Field(min_length=1)


class SeedUser(_Body):
    email: str
    firstName: str | None = None
    lastName: str | None = None
    id: Id | None = None
    roleIds: list[str] = Field(default_factory=list)
    primaryTeamId: str | None = None
    superAdmin: bool = False


class SeedUsers(_Body):
    portal: int | None = None
    users: list[SeedUser]


class SeedToken(_Body):
    """Another bearer token for a portal, of the app `app_id` (default: the sandbox's own app)."""

    token: str = Field(min_length=1)
    portal: int | None = None
    app_id: str | None = Field(default=None, min_length=1)


class SeedContact(_Body):
    email: str | None = None
    properties: dict[str, Any] = Field(default_factory=dict)
    archived: bool = False
    id: Id | None = None


class SeedContacts(_Body):
    portal: int | None = None
    contacts: list[SeedContact]


class FaultsUpdate(gate.FaultsUpdate):
    rate_limit: int | None = Field(default=None, ge=1)
    window_s: float | None = Field(default=None, gt=0)
    # Apply the next N successful requests to `drop_answer_route`, then lose their answer (504).
    drop_answer_after_apply: int | None = Field(default=None, ge=0)
    # "METHOD /path/template" as in the request statistics; a trailing "*" matches a prefix.
    drop_answer_route: str | None = Field(default=None, min_length=1)
    search_lag_s: float | None = Field(default=None, ge=0)
    legacy_callbacks_gone: bool | None = None
