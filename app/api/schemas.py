"""Request and response bodies of the admin API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.admin.storable import check_storable
from app.admin.webinar_summary import SyncState
from app.sync.rules import normalize_domain, normalize_email

RecordingSyncMode = Literal["none", "all", "selected"]


def _domains(values: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for raw in values:
        check_storable(raw.strip())
        seen[normalize_domain(raw)] = None  # ValueError names the bad value; pydantic adds the field
    return list(seen)


def zoom_user_refs(values: list[str]) -> list[str]:
    """Zoom user ids or emails, deduplicated; ValueError for anything that cannot be one."""
    out: dict[str, None] = {}
    for raw in values:
        item = raw.strip()
        check_storable(item)
        if not item or len(item) > 320 or any(c.isspace() for c in item):
            raise ValueError(f"{raw!r} is not a Zoom user id or email")
        # Emails compare case-insensitively; Zoom user ids are case-sensitive.
        out[(normalize_email(item) or item) if "@" in item else item] = None
    return list(out)


class PortalSettingsOut(BaseModel):
    portal_id: int
    global_sync_enabled: bool
    webinar_sync_enabled: bool
    recording_sync: RecordingSyncMode
    recording_sync_users: list[str]
    exclusion_domains: list[str]
    recording_exclusion_domains: list[str]
    contact_exclusion_domains: list[str]
    updated_at: datetime


class PortalSettingsPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    global_sync_enabled: bool | None = None
    webinar_sync_enabled: bool | None = None
    recording_sync: RecordingSyncMode | None = None
    recording_sync_users: list[str] | None = None
    exclusion_domains: list[str] | None = None
    recording_exclusion_domains: list[str] | None = None
    contact_exclusion_domains: list[str] | None = None

    @field_validator("exclusion_domains", "recording_exclusion_domains", "contact_exclusion_domains")
    @classmethod
    def _normalise_domains(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _domains(value)

    @field_validator("recording_sync_users")
    @classmethod
    def _normalise_users(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else zoom_user_refs(value)


class ZoomUserOut(BaseModel):
    zoom_account_id: str
    zoom_user_id: str
    email: str | None
    sync_new_webinars_by_default: bool
    sync_recordings: bool
    first_seen_at: datetime


class ZoomUserPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sync_new_webinars_by_default: bool | None = None
    sync_recordings: bool | None = None


class IntegrationHealthOut(BaseModel):
    """How this service's calls to HubSpot or Zoom for one portal went lately."""

    state: Literal["ok", "failing", "rate_limited", "unknown"] = Field(
        description="`failing`: calls fail (5xx, unreachable, token refused) since `since`; "
        "`rate_limited`: a 429 holds calls back until `rate_limited_until`; "
        "`unknown`: no call recorded yet"
    )
    since: datetime | None = Field(
        default=None, description="failing: when the outage began; rate_limited: when the 429 came"
    )
    last_ok_at: datetime | None = None
    last_error: str | None = Field(default=None, description="status code, category and message")
    rate_limited_until: datetime | None = None


class PortalStatusOut(BaseModel):
    """One portal's state. Open: further per-portal fields may join these two."""

    model_config = ConfigDict(extra="allow")

    hubspot: IntegrationHealthOut
    zoom: IntegrationHealthOut


class StatusOut(BaseModel):
    pending: int
    failed: int
    dead: int
    inbox: dict[str, int]
    outbox: dict[str, int]
    # Workflow actions: blocked (waiting for Zoom), callbacks (results to send), callbacks_failed.
    actions: dict[str, int] = {}
    # Pulls from Zoom: due, running, scheduled (later, e.g. reconciliation), failed.
    sync_jobs: dict[str, int] = {}
    details: dict[str, Any] = {}
    # Per configured portal (env connection and stored connections), keyed by portal id.
    portals: dict[str, PortalStatusOut] = {}


# --- Webinars (S5, A1, A3) ----------------------------------------------------------------------


class WebinarCounts(BaseModel):
    registrants: int
    approved: int
    pending: int
    cancelled: int
    denied: int
    attendees: int
    synced: int
    planned: int
    excluded: int
    participants_not_synced: int
    excluded_by_reason: dict[str, int]


class WebinarOut(BaseModel):
    webinar_id: str
    zoom_account_id: str
    topic: str | None
    host_id: str | None
    webinar_type: int | None
    scheduled_start_at: datetime | None
    actual_start_at: datetime | None
    actual_end_at: datetime | None
    registration_url: str | None
    join_url: str | None
    deleted: bool
    sync_enabled: bool | None
    sync_state: SyncState
    # `off`: why it does not sync (the skip reason); `error`: what failed (see SyncErrorReason).
    sync_state_reason: str | None
    skip_reason: str | None
    unsupported_reason: str | None
    counts: WebinarCounts
    last_sync_at: datetime | None
    # The latest pull from Zoom (Sync now, reconciliation, backfill): state and counts.
    last_sync_job: dict[str, Any] | None = None


class WebinarPage(BaseModel):
    items: list[WebinarOut]
    next_cursor: str | None


class WebinarPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sync_enabled: bool | None


class AuditEntryOut(BaseModel):
    id: int
    at: datetime
    status: str
    code: str
    message: str
    details: dict[str, Any]


class ExcludedEmailOut(BaseModel):
    email: str | None
    reason: str
    at: datetime
    role: str


# --- Pulls from Zoom (A2) -------------------------------------------------------------------------


class SyncJobOut(BaseModel):
    job_id: str
    kind: str
    state: str  # queued | running | done | failed
    webinar_id: str | None
    counts: dict[str, Any]
    error: str | None
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    run_after: datetime


class SyncStarted(SyncJobOut):
    created: bool  # false: a Sync now of this webinar was already queued or running; this is it


class BackfillIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    start: date = Field(alias="from", description="first day (webinars starting that day or later)")
    end: date = Field(alias="to", description="last day, inclusive")
    users: list[str] = Field(default_factory=list, description="Zoom user ids or emails; empty: all users")

    @field_validator("users")
    @classmethod
    def _check_users(cls, value: list[str]) -> list[str]:
        return zoom_user_refs(value)
