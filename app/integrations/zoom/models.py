"""Typed results of `ZoomClient`, parsed tolerantly from Zoom's REST responses.

Zoom sends ids sometimes as numbers and sometimes as strings: they are always kept as `str`.
Email fields may be `""` (guest emails are removed from API responses) and stay `""`. Date-times
(`yyyy-MM-ddTHH:mm:ssZ`) are parsed to aware datetimes; a missing, null or empty one is None, and a
time without an offset is taken as UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

BASIC_REGISTRATION_FIELDS: frozenset[str] = frozenset({"first_name", "last_name", "email"})
APPROVAL_NO_REGISTRATION = 2  # settings.approval_type: 0 automatic, 1 manual, 2 no registration required


def _optional_datetime(value: Any) -> Any:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        text = value.strip()
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return text  # pydantic reports it
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return value


def _empty_string_for_none(value: Any) -> Any:
    return "" if value is None else value


def _empty_list_for_none(value: Any) -> Any:
    return [] if value is None else value


def _optional_int(value: Any) -> Any:
    # Zoom occasionally sends numbers as strings, or "" for "not set".
    if isinstance(value, str):
        text = value.strip()
        return int(text) if text.lstrip("-").isdigit() else None
    return value


ZoomTime = Annotated[datetime | None, BeforeValidator(_optional_datetime)]
Email = Annotated[str, BeforeValidator(_empty_string_for_none)]
OptionalInt = Annotated[int | None, BeforeValidator(_optional_int)]


class ZoomModel(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
        frozen=True,
        # Zoom ids come as numbers in some payloads and strings in others; we always keep strings.
        coerce_numbers_to_str=True,
    )


# --- webinars -------------------------------------------------------------------------------------


class WebinarSettings(ZoomModel):
    approval_type: OptionalInt = None
    registration_type: OptionalInt = None
    auto_recording: str | None = None  # "local" | "cloud" | "none"
    close_registration: bool | None = None
    registrants_restrict_number: OptionalInt = None
    meeting_authentication: bool | None = None
    on_demand: bool | None = None
    practice_session: bool | None = None


class ZoomWebinar(ZoomModel):
    """`GET /webinars/{webinarId}`."""

    id: str
    uuid: str | None = None
    host_id: str | None = None
    host_email: str | None = None
    topic: str = ""
    type: OptionalInt = None  # 5 webinar, 6 recurring without fixed time, 9 recurring with fixed time
    start_time: ZoomTime = None
    duration: OptionalInt = None  # minutes
    timezone: str | None = None
    join_url: str | None = None
    registration_url: str | None = None
    settings: WebinarSettings = Field(default_factory=WebinarSettings)
    is_simulive: bool | None = None

    @property
    def registration_enabled(self) -> bool:
        """Zoom: `settings.approval_type` 2 means "no registration required"."""
        return self.settings.approval_type != APPROVAL_NO_REGISTRATION


class WebinarSummary(ZoomModel):
    """One entry of `GET /users/{userId}/webinars`."""

    id: str
    uuid: str | None = None
    host_id: str | None = None
    topic: str = ""
    type: OptionalInt = None
    start_time: ZoomTime = None
    duration: OptionalInt = None
    timezone: str | None = None
    join_url: str | None = None


# --- registration ---------------------------------------------------------------------------------


class RegistrationQuestion(ZoomModel):
    field_name: str
    required: bool = False


class CustomQuestion(ZoomModel):
    title: str
    type: str | None = None  # short | single_radio | single_dropdown | multiple
    required: bool = False
    answers: Annotated[list[str], BeforeValidator(_empty_list_for_none)] = Field(default_factory=list)


class RegistrationQuestions(ZoomModel):
    """`GET /webinars/{webinarId}/registrants/questions`."""

    questions: Annotated[list[RegistrationQuestion], BeforeValidator(_empty_list_for_none)] = Field(
        default_factory=list
    )
    custom_questions: Annotated[list[CustomQuestion], BeforeValidator(_empty_list_for_none)] = Field(
        default_factory=list
    )

    def required_beyond_basics(self) -> list[str]:
        """Required standard fields other than first name, last name and email, then the titles of
        required custom questions, in Zoom's order, each once."""
        names: list[str] = []
        for question in self.questions:
            if question.required and question.field_name not in BASIC_REGISTRATION_FIELDS:
                names.append(question.field_name)
        for custom in self.custom_questions:
            if custom.required:
                names.append(custom.title)
        return list(dict.fromkeys(names))


class RegistrantCreated(ZoomModel):
    """`POST /webinars/{webinarId}/registrants` (201)."""

    registrant_id: str
    id: str  # the webinar id
    join_url: str | None = None
    topic: str | None = None
    start_time: ZoomTime = None


class Registrant(ZoomModel):
    """One entry of `GET /webinars/{webinarId}/registrants`.

    `status` is approved, pending or denied: the list endpoint filters on those three only, so
    cancelled registrations may never be listed (they come through webhooks).
    """

    id: str
    email: Email = ""
    first_name: str | None = None
    last_name: str | None = None
    status: str | None = None
    create_time: ZoomTime = None
    join_url: str | None = None


# --- attendance -----------------------------------------------------------------------------------


class Participant(ZoomModel):
    """One join/leave session of `GET /past_webinars/{id}/participants` or
    `GET /report/webinars/{id}/participants` (a participant who rejoins has several rows).

    `registrant_id` is the stable key for registered attendees; `user_email` is often `""`.
    """

    id: str | None = None
    name: str | None = None
    user_id: str | None = None
    registrant_id: str | None = None
    user_email: Email = ""
    join_time: ZoomTime = None
    leave_time: ZoomTime = None
    duration: OptionalInt = None  # seconds
    status: str | None = None
    participant_user_id: str | None = None


# --- users ----------------------------------------------------------------------------------------


class ZoomUser(ZoomModel):
    id: str
    email: Email = ""
    first_name: str | None = None
    last_name: str | None = None
    type: OptionalInt = None
    status: str | None = None


# --- recordings -----------------------------------------------------------------------------------


class RecordingFile(ZoomModel):
    """One file of a cloud recording; CC and TIMELINE entries lack most fields."""

    id: str | None = None
    meeting_id: str | None = None
    recording_start: ZoomTime = None
    recording_end: ZoomTime = None
    file_type: str | None = None  # MP4, M4A, CHAT, TRANSCRIPT (VTT), CSV, TB, CC, CHAT_MESSAGE, SUMMARY, ...
    file_extension: str | None = None
    file_size: OptionalInt = None
    play_url: str | None = None
    download_url: str | None = None
    status: str | None = None
    recording_type: str | None = None


class Recordings(ZoomModel):
    """`GET /meetings/{meetingId}/recordings` (a webinar id or uuid works as meetingId)."""

    uuid: str | None = None
    id: str
    host_id: str | None = None
    topic: str | None = None
    start_time: ZoomTime = None
    duration: OptionalInt = None  # minutes
    share_url: str | None = None
    recording_files: Annotated[list[RecordingFile], BeforeValidator(_empty_list_for_none)] = Field(
        default_factory=list
    )
    download_access_token: str | None = None

    def files_of_type(self, file_type: str) -> list[RecordingFile]:
        wanted = file_type.upper()
        return [item for item in self.recording_files if (item.file_type or "").upper() == wanted]

    @property
    def transcript(self) -> RecordingFile | None:
        """The `TRANSCRIPT` file (VTT), when there is one with a download URL."""
        for item in self.files_of_type("TRANSCRIPT"):
            if item.download_url:
                return item
        return None
