"""Database tables. Keyed by HubSpot portal and Zoom account from the start, so several
connections can share one database.

State and status columns hold their StrEnum (`StrEnumString`: the value in a VARCHAR), and their
fields are typed as that enum: writers assign members and queries compare with members. One case
the type does not show: a stored value this version does not know (written by a newer version
during a rolling deploy) reads back as `app.db.UnknownEnumValue`, a `str` equal to no member, so
code that sorts rows by state keeps an "anything else" branch (counts by state still count it).

A little over 500 lines on purpose: every table is here, so the schema reads in one place and the
migrations test compares it with Alembic as one metadata."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy import false as sa_false
from sqlmodel import Field, SQLModel

from app.db import StrEnumString, UTCDateTime, utcnow


class Connection(SQLModel, table=True):
    """A Zoom account connected to a HubSpot portal (and its business unit)."""

    __tablename__ = "connection"
    __table_args__ = (UniqueConstraint("portal_id", "zoom_account_id"),)

    id: int | None = Field(default=None, primary_key=True)
    portal_id: int = Field(sa_type=BigInteger(), index=True)
    zoom_account_id: str = Field(max_length=64, index=True)
    business_unit_id: int = Field(default=0, sa_type=BigInteger())
    is_primary: bool = True
    # The Zoom Server-to-Server OAuth app of this account, when the connection was made through the
    # admin API (the env-configured one reads ZOOM_CLIENT_ID / ZOOM_CLIENT_SECRET instead). The secret
    # is encrypted with APP_SECRET_KEY (app.secret_box) and never returned by any endpoint.
    zoom_client_id: str | None = Field(default=None, max_length=200)
    zoom_client_secret: str | None = Field(default=None, sa_type=Text())
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())


class AuthMode(StrEnum):
    STATIC = "static"  # a token copied from the installed app (static-auth project app, private app)
    OAUTH = "oauth"  # the install flow (CONTRACT.md §7): expiring access token + refresh token


class TimelineBackend(StrEnum):
    """How timeline-style activities reach a portal (CONTRACT.md §4.2)."""

    APP_EVENTS = "app_events"  # 2026-03 app events: OAuth apps with approved event types
    CLASSIC = "classic"  # v3 event templates: apps that had (or may create) them
    NOTES = "notes"  # a note on the contact: every account can receive it
    OFF = "off"


class HubSpotPortal(SQLModel, table=True):
    """A HubSpot account's credentials and set-up state.

    Tokens are encrypted with APP_SECRET_KEY (app.secret_box) and never returned by any endpoint. The
    env-configured portal may have no row: its token is HUBSPOT_ACCESS_TOKEN.
    """

    __tablename__ = "hubspot_portal"

    portal_id: int = Field(sa_type=BigInteger(), primary_key=True, sa_column_kwargs={"autoincrement": False})
    auth_mode: AuthMode = Field(default=AuthMode.STATIC, sa_type=StrEnumString(AuthMode, 16))
    access_token: str | None = Field(default=None, sa_type=Text())  # encrypted
    refresh_token: str | None = Field(default=None, sa_type=Text())  # encrypted (oauth)
    access_expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    # Bumped with every new access token, so other processes know their cached one is stale.
    token_version: int = 0
    # One refresh at a time across processes: whoever sets this (compare-and-set) refreshes.
    refresh_lease_until: datetime | None = Field(default=None, sa_type=UTCDateTime())
    # HubSpot refused the refresh token (app uninstalled): work for the portal is parked, not failed.
    needs_reinstall: bool = Field(default=False, sa_column_kwargs={"server_default": sa_false()})
    reinstall_reason: str | None = Field(default=None, max_length=300)
    # Request budget per rolling 10 s; None = HUBSPOT_RATE_LIMIT_PER_10S.
    rate_limit_per_10s: int | None = None
    # The timeline writer chosen at set-up (CONTRACT.md §4.2); None = not chosen yet.
    timeline_backend: TimelineBackend | None = Field(default=None, sa_type=StrEnumString(TimelineBackend, 16))
    # The HubSpot app whose token this is (marketing events are scoped to the app that made them).
    app_id: str | None = Field(default=None, max_length=32)
    installed_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())


class OAuthState(SQLModel, table=True):
    """A `state` handed out by the install link: the callback consumes it once (a reused one is refused)."""

    __tablename__ = "oauth_state"

    nonce: str = Field(max_length=64, primary_key=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())
    expires_at: datetime = Field(sa_type=UTCDateTime())


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
    recording_sync: RecordingSync = Field(
        default=RecordingSync.NONE, sa_type=StrEnumString(RecordingSync, 16)
    )
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
    # The host's "sync newly scheduled webinars by default" as it was when this webinar was first
    # seen with its host (S5): changing a host's default later applies to webinars seen after it.
    # None until the host is known; then the host's current default is used.
    host_default_sync: bool | None = None
    # When the end was first recorded here: attendance is final only a quiet period after it.
    ended_seen_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    unsupported_reason: str | None = Field(default=None, max_length=120)
    deleted_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime(), index=True)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())
    # event_ts of the event that last set each field: webinar.updated carries only the changed
    # fields and may arrive out of order, so each field keeps its own "newest wins" clock.
    field_ts: dict[str, int] = Field(default_factory=dict, sa_type=JSON())


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
    state: InboxState = Field(default=InboxState.PENDING, sa_type=StrEnumString(InboxState, 16))
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
    __table_args__ = (
        Index("ix_audit_entry_webinar", "portal_id", "webinar_id", "id"),
        UniqueConstraint("portal_id", "zoom_account_id", "webinar_id", "aggregate_key"),
    )

    id: int | None = Field(default=None, primary_key=True)
    portal_id: int = Field(sa_type=BigInteger())
    zoom_account_id: str = Field(max_length=64)
    webinar_id: str | None = Field(default=None, max_length=32)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())
    status: AuditStatus = Field(sa_type=StrEnumString(AuditStatus, 16))
    code: str = Field(max_length=64)
    message: str = Field(sa_type=Text())
    details: dict[str, Any] = Field(default_factory=dict, sa_type=JSON())
    # Aggregated entries (one per webinar and cause, kept current) carry a key; events do not.
    aggregate_key: str | None = Field(default=None, max_length=120)


class RegistrationStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    CANCELLED = "cancelled"
    DENIED = "denied"


class Registration(SQLModel, table=True):
    """A Zoom registrant of a webinar (keyed by Zoom's registrant id)."""

    __tablename__ = "registration"
    __table_args__ = (Index("ix_registration_email", "zoom_account_id", "webinar_id", "email"),)

    zoom_account_id: str = Field(max_length=64, primary_key=True)
    webinar_id: str = Field(max_length=32, primary_key=True)
    registrant_id: str = Field(max_length=64, primary_key=True)
    email: str | None = Field(default=None, max_length=320)  # normalised; None when Zoom sent none
    raw_email: str | None = Field(default=None, max_length=320)
    first_name: str | None = Field(default=None, max_length=200)
    last_name: str | None = Field(default=None, max_length=200)
    status: RegistrationStatus = Field(
        default=RegistrationStatus.APPROVED, sa_type=StrEnumString(RegistrationStatus, 16)
    )
    status_event_ts: int = Field(default=0, sa_type=BigInteger())
    join_url: str | None = Field(default=None, sa_type=Text())
    source: str = Field(default="webhook", max_length=16)  # webhook | action | sync_now
    registered_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    # registered_at is Zoom's own creation time (from registration_created or a pull's create_time),
    # not the time of a later status change that happened to arrive first.
    registered_at_exact: bool = Field(default=False, sa_column_kwargs={"server_default": sa_false()})
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())


class AttendanceMark(SQLModel, table=True):
    """One join or leave of one participant session (from a webhook or a participants report).

    `session_key` identifies one device session (Zoom's participant_uuid / user_id): the join and
    the leave of a session carry the same one, so pairing inside a session is exact even when a
    person rejoins or uses two devices. Storing marks (a set) instead of intervals makes
    duplicates and out-of-order deliveries converge.
    """

    __tablename__ = "attendance_mark"
    __table_args__ = (
        UniqueConstraint("zoom_account_id", "webinar_id", "session_key", "kind", "at"),
        Index("ix_attendance_mark_person", "zoom_account_id", "webinar_id", "person_key"),
    )

    id: int | None = Field(default=None, primary_key=True)
    zoom_account_id: str = Field(max_length=64)
    webinar_id: str = Field(max_length=32)
    person_key: str = Field(max_length=400)
    session_key: str = Field(max_length=200)
    kind: str = Field(max_length=8)
    at: datetime = Field(sa_type=UTCDateTime())
    email: str | None = Field(default=None, max_length=320)
    registrant_id: str | None = Field(default=None, max_length=64)
    name: str | None = Field(default=None, max_length=200)
    # When this service first stored the mark (not Zoom's time): attendance is final only after a
    # quiet period without new marks. None for marks stored before this column existed.
    received_at: datetime | None = Field(default=None, sa_type=UTCDateTime())


class TranscriptState(StrEnum):
    NONE = "none"  # no transcript file
    FETCHED = "fetched"
    NOT_FOUND = "not_found"  # Zoom answered 404; retried on Sync now


class Recording(SQLModel, table=True):
    """A webinar recording as Zoom announced it (synced by the recordings feature)."""

    __tablename__ = "recording"

    zoom_account_id: str = Field(max_length=64, primary_key=True)
    webinar_id: str = Field(max_length=32, primary_key=True)
    instance_uuid: str = Field(max_length=64, primary_key=True)
    topic: str | None = Field(default=None, sa_type=Text())
    host_id: str | None = Field(default=None, max_length=64)
    host_email: str | None = Field(default=None, max_length=320)
    start_time: datetime | None = Field(default=None, sa_type=UTCDateTime())
    duration_minutes: int | None = None
    share_url: str | None = Field(default=None, sa_type=Text())
    files: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSON())
    download_token: str | None = Field(default=None, sa_type=Text())
    last_event_ts: int = Field(default=0, sa_type=BigInteger())
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())
    # The transcript as readable text, fetched once (Zoom data, shared by every portal).
    transcript_text: str | None = Field(default=None, sa_type=Text())
    transcript_state: TranscriptState = Field(
        default=TranscriptState.NONE,
        sa_type=StrEnumString(TranscriptState, 16),
        sa_column_kwargs={"server_default": TranscriptState.NONE.value},
    )
    transcript_file_id: str | None = Field(default=None, max_length=200)


class RecordingCall(SQLModel, table=True):
    """The HubSpot call record made for one recording in one portal (RC1), and whom it reached."""

    __tablename__ = "recording_call"

    portal_id: int = Field(sa_type=BigInteger(), primary_key=True, sa_column_kwargs={"autoincrement": False})
    zoom_account_id: str = Field(max_length=64, primary_key=True)
    webinar_id: str = Field(max_length=32, primary_key=True)
    instance_uuid: str = Field(max_length=64, primary_key=True)
    call_id: str | None = Field(default=None, max_length=32)
    # Hash of the call properties last written: an unchanged call is not written again.
    properties_hash: str | None = Field(default=None, max_length=64)
    # Contacts already associated with the call and given the "Zoom: recordable event".
    contact_ids: list[str] = Field(default_factory=list, sa_type=JSON())
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())


class HubSpotMarketingEvent(SQLModel, table=True):
    """The marketing event made for a webinar in a portal, by the `objectId` HubSpot returned.

    External-id routes only see events created by the same app, so a token from another app would
    lose them; the objectId routes do not (CONTRACT.md §4.2).
    """

    __tablename__ = "hubspot_marketing_event"

    portal_id: int = Field(sa_type=BigInteger(), primary_key=True, sa_column_kwargs={"autoincrement": False})
    zoom_account_id: str = Field(max_length=64, primary_key=True)
    webinar_id: str = Field(max_length=32, primary_key=True)
    external_event_id: str = Field(max_length=100)
    object_id: str = Field(max_length=32)
    app_id: str | None = Field(default=None, max_length=32)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())


class HubSpotNote(SQLModel, table=True):
    """A note written as a timeline activity (`notes` backend, CONTRACT.md §4.2), created once.

    Notes have no idempotency key at HubSpot: `attempted_at` is stamped before the create goes out and
    `note_id` stored as soon as it is known, so a lost answer is looked for before creating again (the
    same crash window as call records).
    """

    __tablename__ = "hubspot_note"

    portal_id: int = Field(sa_type=BigInteger(), primary_key=True, sa_column_kwargs={"autoincrement": False})
    # Stable id of the activity, the same as the timeline event id it stands for.
    activity_key: str = Field(max_length=400, primary_key=True)
    contact_id: str | None = Field(default=None, max_length=32)
    note_id: str | None = Field(default=None, max_length=32)
    attempted_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())


class ExcludedEmail(SQLModel, table=True):
    """Why a person of a webinar was not synced (A3)."""

    __tablename__ = "excluded_email"

    portal_id: int = Field(sa_type=BigInteger(), primary_key=True, sa_column_kwargs={"autoincrement": False})
    zoom_account_id: str = Field(max_length=64, primary_key=True)
    webinar_id: str = Field(max_length=32, primary_key=True)
    person_key: str = Field(max_length=400, primary_key=True)
    email: str | None = Field(default=None, max_length=320)
    reason: str = Field(max_length=32)
    # registration | attendance: where the person came from (M4 guests are attendance-only)
    role: str = Field(default="registration", max_length=16)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())


class OutboxState(StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class OutboxOp(SQLModel, table=True):
    """A planned HubSpot operation: what must be done, never the values (read when sent).

    One row per (portal, kind, target): planning the same target again bumps `planned_version`
    instead of adding a row, so a burst for one contact coalesces into one operation. The
    dispatcher records the version it sent; the row is pending while planned > done.
    """

    __tablename__ = "outbox_op"
    __table_args__ = (
        UniqueConstraint("portal_id", "kind", "target_key"),
        Index("ix_outbox_op_state_next", "state", "next_attempt_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    portal_id: int = Field(sa_type=BigInteger())
    kind: str = Field(max_length=32)
    target_key: str = Field(max_length=400)
    zoom_account_id: str = Field(max_length=64)
    webinar_id: str | None = Field(default=None, max_length=32)
    email: str | None = Field(default=None, max_length=320)
    state: OutboxState = Field(default=OutboxState.PENDING, sa_type=StrEnumString(OutboxState, 16))
    planned_version: int = 1
    done_version: int = 0
    attempts: int = 0
    next_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    locked_until: datetime | None = Field(default=None, sa_type=UTCDateTime())
    last_error: str | None = Field(default=None, sa_type=Text())
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())
    # Since when the current pending version waits (planned anew after it was delivered, or first
    # planned): values that may still change are held back while Zoom's events still pour in, but
    # never for longer than the dispatcher's hold limit counted from here.
    pending_since: datetime | None = Field(default=None, sa_type=UTCDateTime())


class RateLimitSlot(SQLModel, table=True):
    """One of a portal's N request slots: a ring of the last N send times.

    A request may go out when it can take a slot last used more than one window ago, so no window
    ever holds more than N requests — across every process that shares the database.
    """

    __tablename__ = "rate_limit_slot"

    portal_id: int = Field(sa_type=BigInteger(), primary_key=True, sa_column_kwargs={"autoincrement": False})
    slot: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    used_at: datetime = Field(sa_type=UTCDateTime())


class RateLimitBlock(SQLModel, table=True):
    """HubSpot answered 429 for a portal: nobody sends to it before `blocked_until`."""

    __tablename__ = "rate_limit_block"

    portal_id: int = Field(sa_type=BigInteger(), primary_key=True, sa_column_kwargs={"autoincrement": False})
    blocked_until: datetime = Field(sa_type=UTCDateTime())


class IntegrationHealth(SQLModel, table=True):
    """How calls from this service to HubSpot or Zoom went lately, per portal.

    Kept in the database because the API answering /api/v1/status and the workers making the calls
    may be different processes. Written on a change of state and at most every few tens of seconds
    otherwise (app.delivery.health_rules), never on every call.
    """

    __tablename__ = "integration_health"

    portal_id: int = Field(sa_type=BigInteger(), primary_key=True, sa_column_kwargs={"autoincrement": False})
    service: str = Field(max_length=16, primary_key=True)  # "hubspot" | "zoom"
    last_ok_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    # Null while calls succeed; the start of the current outage otherwise.
    failing_since: datetime | None = Field(default=None, sa_type=UTCDateTime())
    # Status code and the platform's category/message: never a token, never an email address.
    last_error: str | None = Field(default=None, max_length=300)
    last_error_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    rate_limited_until: datetime | None = Field(default=None, sa_type=UTCDateTime())
    # When the audit warning for the current outage was written (null: not yet, or no outage).
    warned_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())


class HubSpotContact(SQLModel, table=True):
    """What this service knows of an email in a portal's HubSpot (R2-R4 facts, contact id)."""

    __tablename__ = "hubspot_contact"

    portal_id: int = Field(sa_type=BigInteger(), primary_key=True, sa_column_kwargs={"autoincrement": False})
    email: str = Field(max_length=320, primary_key=True)
    contact_id: str | None = Field(default=None, max_length=32)
    is_account_user: bool = False  # a user of the HubSpot account (R2)
    # The email is only a secondary address (hs_additional_emails) of this contact (R3).
    secondary_of: str | None = Field(default=None, max_length=32)
    archived: bool = False  # deleted in HubSpot (R4)
    synced: bool = False  # this service wrote it at least once: if it vanishes, it was deleted (R4)
    checked_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    synced_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    # Whether the contact's first/last name is set at HubSpot (None: not known). Names are never
    # overwritten, but an empty one is filled once the service learns it.
    has_firstname: bool | None = None
    has_lastname: bool | None = None


class HubSpotSetupItem(SQLModel, table=True):
    """Ids of what `setup` created in HubSpot (timeline event templates, properties)."""

    __tablename__ = "hubspot_setup_item"

    scope: str = Field(max_length=64, primary_key=True)  # "app:<appId>" or "portal:<portalId>"
    name: str = Field(max_length=200, primary_key=True)
    external_id: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())


class ActionState(StrEnum):
    RUNNING = "running"  # a request is executing it now (its lease is `locked_until`)
    BLOCKED = "blocked"  # answered BLOCK: the background completer retries it
    DONE = "done"  # final output fields known


class CallbackState(StrEnum):
    NONE = "none"  # answered synchronously: nothing to send
    PENDING = "pending"  # HubSpot waits for the result through the callbacks API
    SENT = "sent"
    FAILED = "failed"  # HubSpot refused it for good (expired, unknown callback)


class ActionExecution(SQLModel, table=True):
    """One execution of the workflow action, keyed by HubSpot's callbackId (idempotency).

    Stored before Zoom is called and committed before a BLOCK answer, so a retried request never
    registers twice and a restart between BLOCK and completion loses nothing.
    """

    __tablename__ = "action_execution"
    __table_args__ = (
        Index("ix_action_execution_state_next", "state", "next_attempt_at"),
        Index("ix_action_execution_callback", "callback_state"),
    )

    id: int | None = Field(default=None, primary_key=True)
    callback_id: str = Field(sa_column=Column(String(200), nullable=False, unique=True))
    portal_id: int = Field(sa_type=BigInteger())
    zoom_account_id: str | None = Field(default=None, max_length=64)
    object_id: str = Field(max_length=64)
    webinar_id: str | None = Field(default=None, max_length=32)
    # The request as HubSpot sent it (contact properties and input fields): replayed on retry.
    request: dict[str, Any] = Field(default_factory=dict, sa_type=JSON())
    state: ActionState = Field(default=ActionState.RUNNING, sa_type=StrEnumString(ActionState, 16))
    output_fields: dict[str, str] | None = Field(default=None, sa_type=JSON())
    callback_state: CallbackState = Field(
        default=CallbackState.NONE, sa_type=StrEnumString(CallbackState, 16)
    )
    attempts: int = 0
    callback_attempts: int = 0
    next_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    locked_until: datetime | None = Field(default=None, sa_type=UTCDateTime())
    last_error: str | None = Field(default=None, sa_type=Text())
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime())


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class SyncJob(SQLModel, table=True):
    """A pull from Zoom: Sync now (A2), the automatic reconciliation after a webinar ended, a backfill.

    `active_key` ("account:webinar") is set while a Sync now is queued or running and cleared when
    it ends: the unique constraint makes two concurrent Sync-now calls share one job. `dedupe_key`
    is permanent (one reconciliation per webinar, one backfill item per backfill and webinar).
    """

    __tablename__ = "sync_job"
    __table_args__ = (Index("ix_sync_job_state_run", "state", "run_after"),)

    id: str = Field(primary_key=True, max_length=32)
    kind: str = Field(max_length=16)  # sync_now | reconcile | backfill | backfill_item
    portal_id: int = Field(sa_type=BigInteger())
    zoom_account_id: str = Field(max_length=64)
    webinar_id: str | None = Field(default=None, max_length=32, index=True)
    parent_id: str | None = Field(default=None, max_length=32, index=True)
    state: JobState = Field(default=JobState.QUEUED, sa_type=StrEnumString(JobState, 16))
    active_key: str | None = Field(default=None, sa_column=Column(String(120), unique=True, nullable=True))
    dedupe_key: str | None = Field(default=None, sa_column=Column(String(200), unique=True, nullable=True))
    params: dict[str, Any] = Field(default_factory=dict, sa_type=JSON())
    counts: dict[str, Any] = Field(default_factory=dict, sa_type=JSON())
    error: str | None = Field(default=None, sa_type=Text())
    attempts: int = 0
    run_after: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())
    locked_until: datetime | None = Field(default=None, sa_type=UTCDateTime())
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
