"""Request and response bodies of the admin API."""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.sync.rules import normalize_domain, normalize_email

RecordingSyncMode = Literal["none", "all", "selected"]


def check_storable(raw: str) -> None:
    """Refuse text no column should hold: control characters (NUL above all: PostgreSQL refuses it
    in text) and lone surrogates (not encodable as UTF-8). ValueError names the value and character;
    pydantic adds the field, so the answer is a 422 naming it."""
    for char in raw:
        if unicodedata.category(char) in ("Cc", "Cs"):
            raise ValueError(f"{raw!r} contains the control character U+{ord(char):04X}")


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
