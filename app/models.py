"""Database tables. Keyed by HubSpot portal and Zoom account from the start, so several
connections can share one database."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, LargeBinary, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.db import UTCDateTime, utcnow


class Connection(SQLModel, table=True):
    """A Zoom account connected to a HubSpot portal (and its business unit)."""

    __tablename__ = "connection"
    __table_args__ = (UniqueConstraint("portal_id", "zoom_account_id"),)

    id: int | None = Field(default=None, primary_key=True)
    portal_id: int = Field(sa_type=BigInteger(), index=True)
    zoom_account_id: str = Field(max_length=64, index=True)
    business_unit_id: int = Field(default=0, sa_type=BigInteger())
    is_primary: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())


class RecordingSync(StrEnum):
    NONE = "none"
    ALL = "all"
    SELECTED = "selected"


class PortalSettings(SQLModel, table=True):
    """Global settings of one portal (S1-S4)."""

    __tablename__ = "portal_settings"

    portal_id: int = Field(sa_type=BigInteger(), primary_key=True, sa_column_kwargs={"autoincrement": False})
    global_sync_enabled: bool = True
    webinar_sync_enabled: bool = False
    recording_sync: str = Field(default=RecordingSync.NONE.value, max_length=16)
    recording_sync_users: list[str] = Field(default_factory=list, sa_type=JSON())
    exclusion_domains: list[str] = Field(default_factory=list, sa_type=JSON())
    recording_exclusion_domains: list[str] = Field(default_factory=list, sa_type=JSON())
    contact_exclusion_domains: list[str] = Field(default_factory=list, sa_type=JSON())
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())


class ZoomUser(SQLModel, table=True):
    """A Zoom user (webinar host) seen in events, with its per-user settings (S5)."""

    __tablename__ = "zoom_user"

    zoom_account_id: str = Field(max_length=64, primary_key=True)
    zoom_user_id: str = Field(max_length=64, primary_key=True)
    email: str | None = Field(default=None, max_length=320)
    sync_new_webinars_by_default: bool = True
    sync_recordings: bool = False
    first_seen_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())


class Webinar(SQLModel, table=True):
    """The local picture of one Zoom webinar."""

    __tablename__ = "webinar"

    zoom_account_id: str = Field(max_length=64, primary_key=True)
    webinar_id: str = Field(max_length=32, primary_key=True)
    uuid: str | None = Field(default=None, max_length=64)
    host_id: str | None = Field(default=None, max_length=64)
    topic: str | None = Field(default=None, sa_type=Text())
    webinar_type: int | None = None
    scheduled_start_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    duration_minutes: int | None = None
    timezone: str | None = Field(default=None, max_length=64)
    join_url: str | None = Field(default=None, sa_type=Text())
    registration_url: str | None = Field(default=None, sa_type=Text())
    actual_start_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    actual_end_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    # Per-webinar switch (S5); None follows the host's default for new webinars.
    sync_enabled: bool | None = None
    unsupported_reason: str | None = Field(default=None, max_length=120)
    deleted_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime(), index=True)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())
    # Ordering of the last applied "metadata" event, so an older webinar.updated never wins.
    meta_event_ts: int = Field(default=0, sa_type=BigInteger())


class InboxState(StrEnum):
    PENDING = "pending"  # received, not yet processed (or waiting for a retry)
    DONE = "done"
    IGNORED = "ignored"  # an event this service does not use, kept for replays
    FAILED = "failed"  # gave up after the last attempt; kept with its error, re-queued by replay
    DEAD = "dead"  # can never be processed as it is (malformed for its event type)


class InboxEvent(SQLModel, table=True):
    """Every signed Zoom delivery, stored raw before the 200 goes out."""

    __tablename__ = "inbox_event"
    __table_args__ = (Index("ix_inbox_event_state_next", "state", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    delivery_key: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    event: str = Field(max_length=100)
    event_ts: int | None = Field(default=None, sa_type=BigInteger())
    zoom_account_id: str | None = Field(default=None, max_length=64)
    webinar_id: str | None = Field(default=None, max_length=32, index=True)
    raw_body: bytes = Field(sa_column=Column(LargeBinary(), nullable=False))
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())
    state: str = Field(default=InboxState.PENDING.value, max_length=16)
    attempts: int = 0
    next_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    locked_until: datetime | None = Field(default=None, sa_type=UTCDateTime())
    last_error: str | None = Field(default=None, sa_type=Text())
    processed_at: datetime | None = Field(default=None, sa_type=UTCDateTime())


class AuditStatus(StrEnum):
    SUCCESS = "success"
    WARNING = "warning"
    ERROR = "error"


class AuditEntry(SQLModel, table=True):
    """One line of a webinar's audit log (A1)."""

    __tablename__ = "audit_entry"
    __table_args__ = (Index("ix_audit_entry_webinar", "portal_id", "webinar_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    portal_id: int = Field(sa_type=BigInteger())
    zoom_account_id: str = Field(max_length=64)
    webinar_id: str | None = Field(default=None, max_length=32)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())
    status: str = Field(max_length=16)
    code: str = Field(max_length=64)
    message: str = Field(sa_type=Text())
    details: dict[str, Any] = Field(default_factory=dict, sa_type=JSON())
