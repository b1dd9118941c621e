"""When the demo runs, and the settings it runs with: the sandbox accounts' fixed identities, which
real settings keep it off, and its own throw-away SQLite database next to the configured one."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from app.config import Settings

DEMO_ENV = (
    "ZOOM_HUBSPOT_DEMO"  # "1": run the demo; "0" / "false" / "no" / "off": never; unset: see demo_wanted
)
URL_ENV = "ZOOM_HUBSPOT_DEMO_URL"  # where the server listens (set by `serve`), for the printed commands

PORTAL_ID = 7_700_001
ACCOUNT_ID = "demo-zoom-account"
HUBSPOT_TOKEN = "demo-hubspot-token"  # noqa: S105 - the in-process sandbox's token
HUBSPOT_APP_ID = "1001"
HUBSPOT_CLIENT_SECRET = "demo-hubspot-client-secret"  # noqa: S105
ZOOM_CLIENT_ID = "demo-zoom-client-id"
ZOOM_CLIENT_SECRET = "demo-zoom-client-secret"  # noqa: S105
ZOOM_WEBHOOK_SECRET = "demo-zoom-webhook-secret"  # noqa: S105
HUBSPOT_URL = "http://hubspot.sandbox"  # never resolved: the transports are in-process
ZOOM_URL = "http://zoom.sandbox"
HUBSPOT_MOUNT = "/sandbox/hubspot"
ZOOM_MOUNT = "/sandbox/zoom"
_ON = {"1", "true", "yes", "on"}
_OFF = {"0", "false", "no", "off"}

# Settings that configure a real Zoom or HubSpot side (CONTRACT.md §1). Any one of them means an operator
# is setting the service up for real: the demo (open sandbox routes, a throw-away database, its own
# webhook secret) must then never start by itself. ADMIN_API_TOKEN is not among them: the demo uses it.
REAL_SETTINGS = (
    "zoom_webhook_secret_token",
    "zoom_account_id",
    "zoom_client_id",
    "zoom_client_secret",
    "hubspot_portal_id",
    "hubspot_access_token",
    "hubspot_app_id",
    "hubspot_client_secret",
    "hubspot_developer_api_key",
)


def real_settings_set(settings: Settings) -> list[str]:
    """The environment names of the real Zoom/HubSpot settings that are set (empty values do not count)."""
    found = []
    for name in REAL_SETTINGS:
        value = getattr(settings, name)
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        if value not in (None, ""):
            found.append(name.upper())
    return found


def demo_wanted(settings: Settings) -> bool:
    """``ZOOM_HUBSPOT_DEMO=1`` asks for the demo, ``=0`` never runs it; unset, the demo runs only when
    nothing real is configured: SQLite and none of :data:`REAL_SETTINGS`."""
    choice = os.environ.get(DEMO_ENV, "").strip().lower()
    if choice in _OFF:
        return False
    if choice in _ON:
        return True
    return settings.is_sqlite and not real_settings_set(settings)


def demo_database_url(database_url: str) -> str:
    """The demo's own SQLite file, next to the configured one: ``x.db`` → ``x-demo.db``."""
    database = make_url(database_url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return "sqlite:///./data/zoom_hubspot-demo.db"
    path = Path(database)
    suffix = path.suffix or ".db"
    return f"sqlite:///{path.with_name(path.stem + '-demo' + suffix)}"


def fresh_sqlite(database_url: str) -> None:
    """Delete the demo database and its WAL files: the sandboxes start empty, so must the service."""
    database = make_url(database_url).database
    if not database:
        raise ValueError(f"the demo database is a file, not {database_url!r}")
    path = Path(database)
    path.parent.mkdir(parents=True, exist_ok=True)
    for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
        leftover.unlink(missing_ok=True)


def demo_settings(base: Settings, admin_token: str, public_url: str) -> Settings:
    values: dict[str, Any] = base.model_dump()
    values.update(
        database_url=demo_database_url(base.database_url),
        run_worker=True,
        auto_migrate=True,  # a fresh file every run
        admin_api_token=admin_token,
        zoom_webhook_secret_token=ZOOM_WEBHOOK_SECRET,
        zoom_account_id=ACCOUNT_ID,
        zoom_client_id=ZOOM_CLIENT_ID,
        zoom_client_secret=ZOOM_CLIENT_SECRET,
        zoom_api_base_url=f"{ZOOM_URL}/v2",
        zoom_oauth_base_url=ZOOM_URL,
        hubspot_portal_id=PORTAL_ID,
        hubspot_access_token=HUBSPOT_TOKEN,
        hubspot_api_base_url=HUBSPOT_URL,
        hubspot_app_id=HUBSPOT_APP_ID,
        hubspot_client_secret=HUBSPOT_CLIENT_SECRET,
        public_base_url=public_url,
        worker_poll_interval_s=min(base.worker_poll_interval_s, 0.05),
        dispatch_retry_base_s=min(base.dispatch_retry_base_s, 0.2),
    )
    # The demo's webinar ended a moment ago: reconcile and let attendance settle in seconds, not the
    # production minutes, so the summary shows the attendance events (unless set explicitly).
    for name, seconds in (("reconcile_delay_s", 2.0), ("attendance_settle_s", 2.0)):
        if name not in base.model_fields_set:
            values[name] = seconds
    if "log_level" not in base.model_fields_set:  # keep the terminal for the summary
        values["log_level"] = "WARNING"
    return Settings(_env_file=None, **values)
