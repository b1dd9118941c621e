"""HubSpot's one-time set-up (CONTRACT §4): make what this service needs exist, and the `setup` command.

What is needed, and the set-up step for each, lives with its subject: `setup_properties` (the
property group and contact properties, per portal), `setup_templates` (the timeline event
templates, per public app, and how their tokens are encoded), `setup_timeline` (which writer the
portal's timeline activities go through, CONTRACT §4.2); `setup_store` keeps the ids found or
created in `hubspot_setup_item` and the chosen writer in `hubspot_portal`, and `setup_report` says
what a run did.

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
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx
from pydantic import ValidationError
from sqlalchemy.engine import Engine

from app.config import Settings
from app.db import make_engine
from app.integrations.hubspot import HubSpotClient, HubSpotError
from app.integrations.hubspot.setup_properties import ensure_portal_items
from app.integrations.hubspot.setup_report import ItemKind, ItemStatus, SetupItem, SetupReport
from app.integrations.hubspot.setup_store import portal_auth_mode, store_timeline_backend, stored_template_ids
from app.integrations.hubspot.setup_templates import (
    EVENT_TEMPLATES,
    TEMPLATE_ATTENDANCE,
    TEMPLATE_RECORDABLE_EVENT,
    TEMPLATE_REGISTRATION,
    encode_tokens,
    ensure_templates,
)
from app.integrations.hubspot.setup_timeline import AUTO, TemplatesOutcome, choose_timeline, needs_templates
from app.integrations.shared_rate_limit import DatabaseRateLimiter
from app.migrations import schema_problem
from app.models import TimelineBackend

# The TEMPLATE_* names, encode_tokens and stored_template_ids live in setup_templates/setup_store;
# they are named here too because app.delivery (dispatcher, recordings, hubspot_gateway) imports
# them from this module.
__all__ = [
    "TEMPLATE_ATTENDANCE",
    "TEMPLATE_RECORDABLE_EVENT",
    "TEMPLATE_REGISTRATION",
    "PortalSetup",
    "encode_tokens",
    "ensure_hubspot_setup",
    "missing_settings",
    "portal_setup",
    "run_setup_command",
    "setup_from_settings",
    "stored_template_ids",
]


async def ensure_hubspot_setup(
    client: HubSpotClient,
    engine: Engine,
    *,
    portal_id: int,
    app_id: str | None,
    timeline_backend: str = AUTO,
    app_event_types: Mapping[str, str] | None = None,
) -> SetupReport:
    """Make sure the property group, the contact properties and (when the portal's timeline writer
    needs them) the classic timeline event templates exist; create only what is missing and record
    the ids; choose the portal's timeline writer (`setup_timeline`) and store it. Idempotent and safe
    to run from several processes at once.

    HubSpot failures never escape: they become report entries (`ItemStatus.PROBLEM`), as does an
    existing item that does not fit, which is never modified, and a forced timeline writer that
    cannot work. Classic templates HubSpot refuses to create under `auto` are `SKIPPED` (notes are
    written instead). Database errors do propagate.
    """
    app = str(app_id).strip() if app_id is not None and str(app_id).strip() else None
    report = SetupReport(portal_id=portal_id, app_id=app_id)
    report.items.extend(await ensure_portal_items(client, engine, portal_id))
    auth_mode = await asyncio.to_thread(portal_auth_mode, engine, portal_id)
    has_event_types = bool(app_event_types)
    templates: TemplatesOutcome | None = None
    template_items: list[SetupItem] = []
    if needs_templates(timeline_backend, has_event_types=has_event_types, auth_mode=auth_mode, app_id=app):
        template_items = await ensure_templates(client, engine, str(app))
        templates = _templates_outcome(template_items)
    choice = choose_timeline(
        timeline_backend,
        has_event_types=has_event_types,
        auth_mode=auth_mode,
        app_id=app,
        templates=templates,
    )
    if templates is None:
        detail = _why_no_templates(choice.backend, app)
        template_items = [
            SetupItem(ItemKind.EVENT_TEMPLATE, t.name, ItemStatus.SKIPPED, detail=detail)
            for t in EVENT_TEMPLATES
        ]
    refused_as = ItemStatus.PROBLEM if choice.problem is not None else ItemStatus.SKIPPED
    report.items.extend(
        SetupItem(item.kind, item.name, refused_as, detail=f"{item.detail}; {choice.reason}")
        if item.status is ItemStatus.REFUSED
        else item
        for item in template_items
    )
    if choice.problem is not None:
        report.items.append(
            SetupItem(ItemKind.TIMELINE, choice.backend.value, ItemStatus.PROBLEM, detail=choice.problem)
        )
    report.timeline_backend, report.timeline_reason = choice.backend, choice.reason
    await asyncio.to_thread(store_timeline_backend, engine, portal_id, choice.backend)
    return report


@dataclass(frozen=True)
class PortalSetup:
    """What delivery needs from a portal's set-up: its timeline writer and what that writer names
    (classic template ids by name, app event type names by activity)."""

    timeline_backend: TimelineBackend
    templates: Mapping[str, str] = field(default_factory=dict)
    app_event_types: Mapping[str, str] = field(default_factory=dict)


def portal_setup(report: SetupReport, engine: Engine, settings: Settings) -> PortalSetup:
    """The `PortalSetup` after a successful set-up run (`report.ok`); reads the stored template ids."""
    backend = report.timeline_backend or TimelineBackend.OFF  # every run chooses one
    app_id = settings.hubspot_app_id
    templates = stored_template_ids(engine, app_id) if backend is TimelineBackend.CLASSIC and app_id else {}
    return PortalSetup(backend, templates, dict(settings.app_event_types))


def _templates_outcome(items: list[SetupItem]) -> TemplatesOutcome:
    if any(item.status is ItemStatus.REFUSED for item in items):
        return TemplatesOutcome.REFUSED
    if any(item.status is ItemStatus.PROBLEM for item in items):
        return TemplatesOutcome.PROBLEM
    return TemplatesOutcome.READY


def _why_no_templates(backend: TimelineBackend, app_id: str | None) -> str:
    if backend is TimelineBackend.CLASSIC or (backend is TimelineBackend.NOTES and app_id is None):
        return "no HubSpot app id (HUBSPOT_APP_ID): the classic timeline event templates cannot be set up" + (
            "" if backend is TimelineBackend.CLASSIC else "; timeline activities are written as notes"
        )
    return f"not used: timeline activities go through {backend.value}"


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
        return await ensure_hubspot_setup(
            client,
            engine,
            portal_id=portal_id,
            app_id=settings.hubspot_app_id,
            timeline_backend=settings.hubspot_timeline_backend,
            app_event_types=settings.app_event_types,
        )


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
    if report.timeline_backend is TimelineBackend.OFF:
        print("warning: HUBSPOT_TIMELINE_BACKEND=off: no timeline activity is written.", file=sys.stderr)
    elif report.timeline_backend is TimelineBackend.NOTES and not settings.hubspot_app_id:
        print(
            "note: HUBSPOT_APP_ID is not set, so no classic timeline event templates: registrations, "
            "attendance and recordings are written as notes on the contacts.",
            file=sys.stderr,
        )
    return EXIT_OK if report.ok else EXIT_PROBLEMS
