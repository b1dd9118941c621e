"""Request bodies of the fake Zoom: Zoom's JSON shapes for the REST API and the control API's
bodies; unknown fields are ignored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from app.sandbox import gate
from app.sandbox.zoom_common import (
    RateLabel,
    RetryAfter,
)

# --------------------------------------------------------------------------------------------------
# Request bodies (Zoom's JSON shapes for the REST API; control-API bodies; unknown fields are ignored)
# --------------------------------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


def _to_str(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


Id = Annotated[str, BeforeValidator(_to_str)]


class CustomAnswer(_Body):
    title: str
    value: str = ""


class RegistrantCreate(_Body):
    """``POST /webinars/{id}/registrants``. Everything is optional here so that missing ``email`` or
    ``first_name`` become Zoom's 300 "Validation Failed." rather than a generic parse error."""

    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    address: str | None = None
    city: str | None = None
    country: str | None = None
    zip: str | None = None
    state: str | None = None
    phone: str | None = None
    industry: str | None = None
    org: str | None = None
    job_title: str | None = None
    purchasing_time_frame: str | None = None
    role_in_purchase_process: str | None = None
    no_of_employees: str | None = None
    comments: str | None = None
    custom_questions: list[CustomAnswer] = Field(default_factory=list)
    language: str | None = None
    source_id: str | None = None


class ActionBody(_Body):
    emit: bool = Field(default=True, description="Send the matching webhook (false: a lost webhook).")
    at: datetime | None = Field(default=None, description="When it happened (default: now).")


class RegisterAction(RegistrantCreate, ActionBody):
    """A registration made at Zoom (e.g. through Zoom's own form)."""

    status: Literal["approved", "pending"] | None = Field(
        default=None, description="Default: approved, or pending when approval_type is 1."
    )


class RegistrantAction(ActionBody):
    registrant_id: str
    by_host: bool = Field(default=False, description="Cancellation by the host instead of the registrant.")


class JoinAction(ActionBody):
    """Who joins: a registrant (by id), or someone by name (a guest unless ``email`` is shown)."""

    registrant_id: str | None = None
    name: str | None = None
    email: str | None = None
    guest: bool = Field(default=False, description="Zoom removes this participant's email (§4.1).")
    user_id: str | None = Field(default=None, description="A Zoom user of the account, signed in.")


class LeaveAction(ActionBody):
    user_id: str | None = Field(default=None, description="The session's participant user_id.")
    registrant_id: str | None = Field(default=None, description="Leave the registrant's open session.")


class RecordingAction(ActionBody):
    status: Literal["completed", "processing"] = "completed"
    with_transcript: bool = True
    transcript_available: bool = Field(
        default=True, description="False: the transcript is listed but downloads 404 (not found yet)."
    )
    vtt: str | None = Field(default=None, description="Transcript content (default: a generated WebVTT).")


class TranscriptAction(ActionBody):
    available: bool = True
    vtt: str | None = None


class SeedUser(_Body):
    email: str
    first_name: str = ""
    last_name: str = ""
    id: str | None = None
    type: int = 2


class SeedUsers(_Body):
    account_id: str | None = None
    users: list[SeedUser]


class RegistrationQuestion(_Body):
    field_name: str
    required: bool = False


class CustomQuestion(_Body):
    title: str
    type: Literal["short", "single_radio", "single_dropdown", "multiple"] = "short"
    required: bool = False
    answers: list[str] = Field(default_factory=list)


class WebinarCreate(_Body):
    id: Id | None = Field(default=None, description="Digits; default: a new 11-digit id.")
    account_id: str | None = None
    host_id: str | None = Field(default=None, description="Default: the account's first user.")
    topic: str = "Sandbox webinar"
    agenda: str = ""
    start_time: datetime | None = Field(default=None, description="Default: a week from now.")
    duration: int = Field(default=60, ge=1)
    timezone: str = "America/New_York"
    type: Literal[5, 6, 9] = 5
    approval_type: Literal[0, 1, 2] = Field(default=0, description="0 auto, 1 manual, 2 no registration.")
    alternative_hosts: list[str] = Field(default_factory=list)
    questions: list[RegistrationQuestion] = Field(default_factory=list)
    custom_questions: list[CustomQuestion] = Field(default_factory=list)
    emit: bool = True
    at: datetime | None = None


class FaultsUpdate(gate.FaultsUpdate):
    rate_limit_enabled: bool | None = None
    rate_limits: dict[RateLabel, int] | None = Field(default=None, description="Per second, per account.")
    retry_after: RetryAfter | None = None


class WebhookTargetUpdate(_Body):
    url: str | None = Field(default=None, description="Null: no webhook target.")
    secret: str | None = None
