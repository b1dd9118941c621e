"""Typed inputs and results of `HubSpotClient`.

Python-side names are snake_case; HubSpot's camelCase names are the aliases used when parsing
responses. Inputs are serialised by the client explicitly, so the wire format is visible in one
place (`client.py`) rather than spread over model configuration.
"""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

# Values HubSpot stores as strings; the client turns these into HubSpot's string form.
PropertyValue = str | int | float | bool | None
TokenValue = str | int | float

AttendanceState = Literal["register", "attend", "cancel"]
PropertyType = Literal["bool", "date", "datetime", "enumeration", "number", "phone_number", "string"]
PropertyFieldType = Literal[
    "booleancheckbox",
    "calculation_equation",
    "checkbox",
    "date",
    "file",
    "html",
    "number",
    "phonenumber",
    "radio",
    "select",
    "text",
    "textarea",
]
TokenType = Literal["date", "enumeration", "number", "string"]


class HubSpotModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        extra="ignore",
        frozen=True,
        # HubSpot sends ids sometimes as numbers, sometimes as strings; we always keep strings.
        coerce_numbers_to_str=True,
    )


# --- inputs -------------------------------------------------------------------------------------


class ContactUpsert(HubSpotModel):
    """One contact written by email (`idProperty: "email"`)."""

    email: str
    properties: dict[str, PropertyValue] = Field(default_factory=dict)


class TimelineEvent(HubSpotModel):
    """One timeline event on a contact, identified by its HubSpot object id (never by email)."""

    event_template_id: str
    id: str  # deterministic, so a replay cannot create a duplicate
    object_id: str
    tokens: dict[str, TokenValue] = Field(default_factory=dict)
    timestamp: AwareDatetime | None = None


class MarketingEvent(HubSpotModel):
    external_account_id: str
    external_event_id: str
    event_name: str
    event_organizer: str
    start_at: AwareDatetime | None = Field(default=None, alias="startDateTime")
    end_at: AwareDatetime | None = Field(default=None, alias="endDateTime")
    event_url: str | None = None
    event_type: str = "WEBINAR"


class AttendanceInput(HubSpotModel):
    """One contact's state change in a marketing event; `joined_at`/`left_at` only for `attend`."""

    vid: int
    interaction_at: AwareDatetime
    joined_at: AwareDatetime | None = None
    left_at: AwareDatetime | None = None


class CallbackCompletion(HubSpotModel):
    """Final output fields of a blocked workflow-action execution."""

    callback_id: str
    output_fields: dict[str, str]


# --- definitions (sent and read back) -----------------------------------------------------------


class PropertyGroup(HubSpotModel):
    name: str
    label: str
    display_order: int | None = None


class PropertyOption(HubSpotModel):
    label: str
    value: str
    display_order: int | None = None
    hidden: bool | None = None
    description: str | None = None


class PropertyDefinition(HubSpotModel):
    name: str
    label: str
    type: PropertyType
    field_type: PropertyFieldType
    group_name: str
    description: str | None = None
    display_order: int | None = None
    number_display_hint: str | None = None
    form_field: bool | None = None
    hidden: bool | None = None
    options: list[PropertyOption] | None = None


class EventTemplateTokenOption(HubSpotModel):
    label: str
    value: str


class EventTemplateToken(HubSpotModel):
    name: str
    label: str
    type: TokenType
    options: list[EventTemplateTokenOption] | None = None


class EventTemplate(HubSpotModel):
    """A timeline event template; `id` is set on templates read from HubSpot."""

    name: str
    object_type: str = "contacts"
    header_template: str | None = None
    detail_template: str | None = None
    tokens: list[EventTemplateToken] = Field(default_factory=list)
    id: str | None = None


# --- results ------------------------------------------------------------------------------------


class CrmObject(HubSpotModel):
    id: str
    properties: dict[str, str | None] = Field(default_factory=dict)
    archived: bool = False
    archived_at: AwareDatetime | None = None
    created_at: AwareDatetime | None = None
    updated_at: AwareDatetime | None = None


class Contact(CrmObject):
    new: bool | None = None  # upsert only: true when HubSpot created the contact

    @property
    def email(self) -> str | None:
        return self.properties.get("email")

    @property
    def additional_emails(self) -> list[str]:
        """Secondary addresses (`hs_additional_emails`, semicolon-separated), when requested."""
        raw = self.properties.get("hs_additional_emails") or ""
        return [part.strip() for part in raw.split(";") if part.strip()]


class HubSpotUser(HubSpotModel):
    id: str
    email: str
    first_name: str | None = None
    last_name: str | None = None
    role_ids: list[str] = Field(default_factory=list)
    primary_team_id: str | None = None
    super_admin: bool = False


class TimelineEventResult(HubSpotModel):
    id: str
    event_template_id: str | None = None
    object_id: str | None = None
    object_type: str | None = None
    created_at: AwareDatetime | None = None


class AppInfo(HubSpotModel):
    """The HubSpot app that made a marketing event (external-id routes only see their own app's)."""

    id: str | None = None
    name: str | None = None


class MarketingEventResult(HubSpotModel):
    object_id: str | None = None
    id: str | None = None
    external_event_id: str | None = None
    external_account_id: str | None = None
    app_info: AppInfo | None = None
    event_name: str | None = None
    event_organizer: str | None = None
    event_type: str | None = None
    event_url: str | None = None
    start_at: AwareDatetime | None = Field(default=None, alias="startDateTime")
    end_at: AwareDatetime | None = Field(default=None, alias="endDateTime")
    event_completed: bool | None = None
    event_cancelled: bool | None = None

    @property
    def hubspot_id(self) -> str | None:
        """The event's objectId. The v3 upsert answer names it both `objectId` and `id` (the same CRM
        object id); either is taken, `objectId` first."""
        return self.object_id or self.id or None


class MarketingEventIdentifier(HubSpotModel):
    """One match of `GET /marketing/v3/marketing-events/{externalEventId}/identifiers`: a marketing
    event of any app of the portal with that externalEventId. HubSpot lists `objectId`,
    `externalEventId` and `marketingEventName` as required and `appInfo`, `externalAccountId` as
    optional; only `objectId` is relied on here."""

    object_id: str
    external_event_id: str | None = None
    external_account_id: str | None = None
    marketing_event_name: str | None = None
    app_info: AppInfo | None = None

    @property
    def app_id(self) -> str | None:
        return self.app_info.id if self.app_info is not None else None


class AttendanceResult(HubSpotModel):
    vid: int | None = None
    email: str | None = None


class ObjectRef(HubSpotModel):
    id: str


class AssociationResult(HubSpotModel):
    from_: ObjectRef = Field(alias="from")
    to: ObjectRef


class BatchError(HubSpotModel):
    """One entry of a batch response's `errors[]` (HubSpot's StandardError)."""

    status: str | None = None
    category: str | None = None
    message: str = ""
    sub_category: str | None = None
    context: dict[str, Any] = Field(default_factory=dict)

    @property
    def ids(self) -> list[str]:
        """The inputs this error is about (`context.ids`: emails or object ids), when HubSpot says."""
        raw = self.context.get("ids")
        if isinstance(raw, list):
            return [str(item) for item in raw]
        return []


ResultT = TypeVar("ResultT", bound=BaseModel)


class BatchResult(HubSpotModel, Generic[ResultT]):
    """What a batch call did: per-input `errors` (207) are data, not exceptions."""

    status: str | None = None
    results: list[ResultT] = Field(default_factory=list)
    errors: list[BatchError] = Field(default_factory=list)

    @property
    def failed_ids(self) -> set[str]:
        return {item for error in self.errors for item in error.ids}
