"""One Settings class for the whole service, read from the environment (or a `.env` file)."""

from __future__ import annotations

from functools import cached_property
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

APP_EVENT_ACTIVITIES = ("registration", "attendance", "recording", "engagement")
_REQUIRED_APP_EVENT_ACTIVITIES = ("registration", "attendance", "recording")


def parse_app_event_types(value: str) -> dict[str, str]:
    """`registration=a,attendance=b,recording=c[,engagement=d]` → a dict; ValueError names what is wrong."""
    if not value.strip():
        return {}
    names: dict[str, str] = {}
    for part in value.split(","):
        key, sep, name = part.partition("=")
        key, name = key.strip(), name.strip()
        if not sep or not name:
            raise ValueError(f"HUBSPOT_APP_EVENT_TYPES: {part.strip()!r} is not activity=name")
        if key not in APP_EVENT_ACTIVITIES:
            raise ValueError(
                f"HUBSPOT_APP_EVENT_TYPES: unknown activity {key!r} (use {', '.join(APP_EVENT_ACTIVITIES)})"
            )
        names[key] = name
    missing = [k for k in _REQUIRED_APP_EVENT_ACTIVITIES if k not in names]
    if missing:
        raise ValueError(f"HUBSPOT_APP_EVENT_TYPES: missing {', '.join(missing)}")
    return names


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # --- CONTRACT.md §1 ---
    database_url: str = "sqlite:///./data/zoom_hubspot.db"
    run_worker: bool = True
    admin_api_token: SecretStr | None = None
    # Several secrets, comma-separated, so a rotation never rejects in-flight deliveries.
    zoom_webhook_secret_token: SecretStr | None = None
    zoom_account_id: str | None = None
    zoom_client_id: str | None = None
    zoom_client_secret: SecretStr | None = None
    zoom_api_base_url: str = "https://api.zoom.us/v2"
    zoom_oauth_base_url: str = "https://zoom.us"
    hubspot_portal_id: int | None = None
    hubspot_access_token: SecretStr | None = None
    hubspot_api_base_url: str = "https://api.hubapi.com"
    hubspot_app_id: str | None = None
    hubspot_client_secret: SecretStr | None = None
    hubspot_rate_limit_per_10s: int = Field(default=100, ge=1)
    public_base_url: str = "http://127.0.0.1:8000"
    hubspot_auth_mode: Literal["static", "oauth"] = "static"
    hubspot_client_id: str | None = None
    hubspot_oauth_authorize_url: str = "https://app.hubspot.com/oauth/authorize"
    hubspot_timeline_backend: Literal["auto", "app_events", "classic", "notes", "off"] = "auto"
    # `registration=<name>,attendance=<name>,recording=<name>[,engagement=<name>]` (CONTRACT.md §1).
    hubspot_app_event_types: str | None = None
    # Encrypts stored tokens and secrets (app.secret_box) and signs OAuth states and console sessions.
    app_secret_key: SecretStr | None = None
    # Developer account API key: HubSpot documents it for action-definition calls (register-action).
    hubspot_developer_api_key: SecretStr | None = None

    # --- operational knobs (not part of the contract; documented in the README) ---
    # None = migrate automatically on SQLite only: the embedded default must start on a fresh
    # machine, while PostgreSQL deployments migrate as a deliberate one-shot step.
    auto_migrate: bool | None = None
    log_level: str = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"
    webhook_max_body_bytes: int = 1024 * 1024
    webhook_timestamp_tolerance_s: int = 300
    worker_poll_interval_s: float = Field(default=0.2, gt=0)
    worker_batch_size: int = Field(default=500, ge=1, le=5000)
    worker_max_attempts: int = Field(default=8, ge=1)
    worker_retry_base_s: float = Field(default=2.0, gt=0)
    worker_lease_s: float = Field(default=120.0, gt=0)
    dispatch_retry_base_s: float = Field(default=2.0, gt=0)
    # First wait between the HTTP attempts of one HubSpot call (5xx, transport errors; a 429 waits
    # for Retry-After instead); it doubles per attempt, with jitter, capped at 30 s.
    hubspot_retry_base_s: float = Field(default=0.5, gt=0)
    dispatch_max_attempts: int = Field(default=5, ge=1)
    # Automatic reconciliation: pull a webinar from Zoom this long after it ended (Zoom's participant
    # reports lag behind the live events); 0 turns it off.
    reconcile_delay_s: float = Field(default=600.0, ge=0)
    # Timeline events are immutable at HubSpot, so an attendance event (and the marketing event's
    # attend state) is sent only once attendance is final: the webinar has ended, nothing about it
    # waits in the inbox or in a pull from Zoom (the reconciliation), and no new join/leave has been
    # stored for this long. Registration events wait the same quiet period when Zoom's creation time
    # is not known yet (a status change arrived before registration_created).
    attendance_settle_s: float = Field(default=600.0, ge=0)
    # The workflow action answers HubSpot within this long (HubSpot's target: p99 <= 1 s); past it the
    # answer is BLOCK and the registration completes in the background, then by callback.
    action_sync_budget_s: float = Field(default=0.6, gt=0)
    # HTTP server limits (app/server.py, used by `serve`). A client must have sent a request's headers
    # this long after connecting or after the previous response, else it is disconnected (slowloris).
    http_header_timeout_s: float = Field(default=10.0, gt=0)
    # Running requests above which new requests get 503 at once: bounds the bodies (up to 1 MiB each)
    # held in memory. Idle and slow connections do not count (the header timeout closes them).
    http_limit_concurrency: int = Field(default=500, ge=1)
    # SIGTERM: requests still running after this many seconds are cancelled and the process stops.
    http_shutdown_timeout_s: int = Field(default=10, ge=1)
    # HubSpot (or Zoom) calls for a portal failing for longer than this: one audit warning per outage.
    delivery_failing_warn_s: float = Field(default=300.0, ge=0)

    @field_validator(
        "hubspot_api_base_url",
        "zoom_api_base_url",
        "zoom_oauth_base_url",
        "public_base_url",
        "hubspot_oauth_authorize_url",
    )
    @classmethod
    def _strip_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("hubspot_app_event_types")
    @classmethod
    def _check_app_event_types(cls, value: str | None) -> str | None:
        if value is not None:
            parse_app_event_types(value)  # raises ValueError naming the bad part
        return value

    @cached_property
    def app_event_types(self) -> dict[str, str]:
        """HUBSPOT_APP_EVENT_TYPES as {activity: event type name}; empty when not set."""
        return parse_app_event_types(self.hubspot_app_event_types or "")

    @cached_property
    def zoom_webhook_secrets(self) -> tuple[str, ...]:
        if self.zoom_webhook_secret_token is None:
            return ()
        parts = (p.strip() for p in self.zoom_webhook_secret_token.get_secret_value().split(","))
        return tuple(p for p in parts if p)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def should_auto_migrate(self) -> bool:
        return self.is_sqlite if self.auto_migrate is None else self.auto_migrate

    @property
    def has_zoom_api(self) -> bool:
        """Server-to-Server OAuth credentials are set: the service can call Zoom's REST API."""
        secret = self.zoom_client_secret.get_secret_value() if self.zoom_client_secret else ""
        return bool(self.zoom_account_id and self.zoom_client_id and secret)

    @property
    def has_env_connection(self) -> bool:
        return bool(self.zoom_account_id) and self.hubspot_portal_id is not None
