"""HubSpot's one-time set-up (CONTRACT §4): make what this service needs exist, and the `setup` command.

What is needed, and the set-up step for each, lives with its subject: `setup_properties` (the
property group and contact properties, per portal), `setup_templates` (the timeline event
templates, per public app, and how their tokens are encoded); `setup_store` keeps the ids found or
created in `hubspot_setup_item`, and `setup_report` says what a run did.

`ensure_hubspot_setup` looks every item up by name first and creates only what is missing. It never
modifies or deletes anything that exists in HubSpot: an existing item that does not fit (a property
of another type, a template without a token we send) is reported as a problem for an admin to fix.

Several processes may run the set-up at the same moment (API replicas starting together). HubSpot
refuses a second property group or property of the same name (409), which is read as "found". Writes
to `hubspot_setup_item` are single INSERT … ON CONFLICT statements; a template id is only replaced
when the stored one is stale, so concurrent runs agree on one id even if HubSpot accepted two
templates of the same name (the unused one is reported).
"""

from __future__ import annotations

import asyncio
import sys

import httpx
from pydantic import ValidationError
from sqlalchemy.engine import Engine

from app.config import Settings
from app.db import make_engine
from app.integrations.hubspot import HubSpotClient, HubSpotError
from app.integrations.hubspot.setup_properties import ensure_portal_items
from app.integrations.hubspot.setup_report import ItemKind, ItemStatus, SetupItem, SetupReport
from app.integrations.hubspot.setup_store import stored_template_ids
from app.integrations.hubspot.setup_templates import (
    EVENT_TEMPLATES,
    TEMPLATE_ATTENDANCE,
    TEMPLATE_RECORDABLE_EVENT,
    TEMPLATE_REGISTRATION,
    encode_tokens,
    ensure_templates,
)
from app.integrations.shared_rate_limit import DatabaseRateLimiter
from app.migrations import schema_problem

# The TEMPLATE_* names, encode_tokens and stored_template_ids live in setup_templates/setup_store;
# they are named here too because app.delivery (dispatcher, recordings, hubspot_gateway) imports
# them from this module.
__all__ = [
    "TEMPLATE_ATTENDANCE",
    "TEMPLATE_RECORDABLE_EVENT",
    "TEMPLATE_REGISTRATION",
    "encode_tokens",
    "ensure_hubspot_setup",
    "missing_settings",
    "run_setup_command",
    "setup_from_settings",
    "stored_template_ids",
]


async def ensure_hubspot_setup(
    client: HubSpotClient, engine: Engine, *, portal_id: int, app_id: str | None
) -> SetupReport:
    """Make sure the property group, the contact properties and (with an app id) the timeline event
    templates exist; create only what is missing and record the ids. Idempotent and safe to run from
    several processes at once.

    HubSpot failures never escape: they become report entries (`ItemStatus.PROBLEM`), as does an
    existing item that does not fit, which is never modified. Without `app_id` the templates are
    `SKIPPED`: timeline events then cannot be sent. Database errors do propagate.
    """
    report = SetupReport(portal_id=portal_id, app_id=app_id)
    report.items.extend(await ensure_portal_items(client, engine, portal_id))
    if app_id is None or not str(app_id).strip():
        detail = (
            "no HubSpot app id (HUBSPOT_APP_ID): the timeline event templates cannot be set up, "
            "so timeline events cannot be sent"
        )
        report.items.extend(
            SetupItem(ItemKind.EVENT_TEMPLATE, t.name, ItemStatus.SKIPPED, detail=detail)
            for t in EVENT_TEMPLATES
        )
    else:
        report.items.extend(await ensure_templates(client, engine, str(app_id).strip()))
    return report


# --------------------------------------------------------------------------------------------------
# The `setup` command (wired in app.cli)
# --------------------------------------------------------------------------------------------------

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_CONFIG = 2


def missing_settings(settings: Settings) -> list[str]:
    """One line per required variable that is not set."""
    missing: list[str] = []
    token = settings.hubspot_access_token
    if token is None or not token.get_secret_value().strip():
        missing.append(
            "HUBSPOT_ACCESS_TOKEN is not set: the set-up needs the portal's bearer token "
            "(private app or OAuth access token)"
        )
    if settings.hubspot_portal_id is None:
        missing.append("HUBSPOT_PORTAL_ID is not set: the set-up needs the id of the HubSpot account")
    return missing


def _load_settings() -> Settings | list[str]:
    try:
        return Settings()
    except ValidationError as exc:
        return [
            f"{'.'.join(str(part) for part in error['loc']).upper()} is invalid: {error['msg']}"
            for error in exc.errors()
        ]


async def setup_from_settings(settings: Settings, engine: Engine) -> SetupReport:
    """Run `ensure_hubspot_setup` for the env-configured portal, with a real HTTP client."""
    token = settings.hubspot_access_token
    portal_id = settings.hubspot_portal_id
    if token is None or portal_id is None:
        raise ValueError("HUBSPOT_ACCESS_TOKEN and HUBSPOT_PORTAL_ID must be set (see missing_settings)")
    limiter = DatabaseRateLimiter(engine, settings.hubspot_rate_limit_per_10s)
    async with httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=10.0)) as http:
        client = HubSpotClient(
            http,
            base_url=settings.hubspot_api_base_url,
            access_token=token.get_secret_value(),
            portal_id=portal_id,
            rate_limiter=limiter,
        )
        return await ensure_hubspot_setup(client, engine, portal_id=portal_id, app_id=settings.hubspot_app_id)


def run_setup_command(settings: Settings | None = None) -> int:
    """`python -m app.cli setup`: check the configuration and the schema (nothing is migrated),
    set HubSpot up, print the summary. Returns the exit code: 0 all usable, 1 problems, 2 the
    configuration or the database schema is not ready."""
    loaded = settings if settings is not None else _load_settings()
    if isinstance(loaded, list):
        for line in loaded:
            print(f"error: {line}", file=sys.stderr)
        return EXIT_CONFIG
    settings = loaded
    missing = missing_settings(settings)
    if missing:
        for line in missing:
            print(f"error: {line}", file=sys.stderr)
        return EXIT_CONFIG
    engine = make_engine(settings.database_url, pool_size=2)
    try:
        problem = schema_problem(engine)
        if problem is not None:
            print(f"error: {problem}", file=sys.stderr)
            return EXIT_CONFIG
        try:
            report = asyncio.run(setup_from_settings(settings, engine))
        except HubSpotError as exc:  # ensure_hubspot_setup reports these; kept as a safety net
            print(f"error: HubSpot set-up failed: {exc}", file=sys.stderr)
            return EXIT_PROBLEMS
    finally:
        engine.dispose()
    print(report.render())
    if report.templates_skipped:
        print(
            "warning: HUBSPOT_APP_ID is not set, so no timeline event templates: timeline events "
            "(registration, attendance, recordings) cannot be sent.",
            file=sys.stderr,
        )
    return EXIT_OK if report.ok else EXIT_PROBLEMS
