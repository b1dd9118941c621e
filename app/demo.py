"""The one-command demo: the service between both sandboxes, in one process, playing a real webinar.

``python3 dev.py run`` (``python -m app.cli serve``) with no Zoom or HubSpot credentials set runs
:func:`create_demo_app` instead of the plain service: the service app from :func:`app.main.create_app`,
wired to an in-process HubSpot sandbox and Zoom sandbox (ASGI transports, nothing leaves the process),
with both sandboxes mounted for browsing under ``/sandbox/hubspot`` and ``/sandbox/zoom``. Once the
service has started, a background task plays a realistic webinar at the Zoom sandbox, whose signed
webhooks go into the service exactly as Zoom's would: registrations (one cancelled), excluded emails
of every kind (a HubSpot user, an email in a contact exclusion domain, a contact's secondary email, a
deleted contact, an invalid email, a guest whose email Zoom removed), joins and a rejoin, the end,
then a cloud recording with its transcript. When the service has nothing pending, the task prints a
summary of what landed in the HubSpot sandbox and ``curl`` commands to look around.

Real configuration always wins: unless asked for with ``ZOOM_HUBSPOT_DEMO=1``, the demo runs only on
SQLite and only when no Zoom or HubSpot setting is set (:data:`REAL_SETTINGS`: a half-way set-up, say a
webhook secret and a portal id but no token yet, runs the plain service, never the demo with its open
sandbox routes). ``ZOOM_HUBSPOT_DEMO=0`` turns it off (the plain service then runs, with nothing
connected).

The demo keeps its own database next to the configured SQLite file (``zoom_hubspot.db`` →
``zoom_hubspot-demo.db``) and starts it afresh on every run: the sandboxes live in memory, so their
state and the service's must begin together, and the demo never touches the real database.

Run it directly: ``uvicorn --factory app.demo:create_demo_app`` (the summary then uses
``PUBLIC_BASE_URL``, or ``ZOOM_HUBSPOT_DEMO_URL`` when set).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import sys
import textwrap
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy.engine import make_url
from starlette.types import ASGIApp, Receive, Scope, Send

from app.config import Settings
from app.main import create_app
from app.sandbox.hubspot import create_hubspot_sandbox, sandbox_of
from app.sandbox.hubspot_state import HubSpotSandbox
from app.sandbox.zoom import create_zoom_sandbox, zoom_sandbox_of
from app.sandbox.zoom_state import ZoomSandbox

__all__ = [
    "ACCOUNT_ID",
    "DEMO_ENV",
    "PORTAL_ID",
    "REAL_SETTINGS",
    "URL_ENV",
    "DemoRun",
    "create_demo_app",
    "demo_database_url",
    "demo_of",
    "demo_wanted",
    "real_settings_set",
]

log = logging.getLogger(__name__)

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

TOPIC = "From webinar to pipeline: Zoom + HubSpot in practice"
COMPANY_DOMAIN = "ourco.example"  # contact exclusion domain (S4): our own people
HUBSPOT_USER = "alex@northwind-agency.example"  # a user of the HubSpot account (R2)
SECONDARY_OWNER = "grace@example.com"  # an existing contact ...
SECONDARY_EMAIL = "g.hopper@alumni.example"  # ... and her secondary email (R3)
DELETED = "old.lead@example.com"  # a contact deleted in HubSpot (R4)
INVALID = "jane..doe@example.com"  # Zoom takes it; it is not a valid address (R5)
PEOPLE: tuple[tuple[str, str, str], ...] = (
    ("ann@example.com", "Ann", "Archer"),  # attends almost all of it
    ("bob@example.com", "Bob", "Baker"),  # drops out and rejoins
    ("cara@example.com", "Cara", "Chen"),  # cancels
    ("dan@example.com", "Dan", "Diaz"),  # registers, does not show up
    (HUBSPOT_USER, "Alex", "Agency"),
    (f"sam@{COMPANY_DOMAIN}", "Sam", "Colleague"),
    (SECONDARY_EMAIL, "Grace", "Hopper"),
    (DELETED, "Olga", "Oldlead"),
    (INVALID, "Jane", "Doe"),
)
ZOOM_PROPERTIES = (
    "zoom_webinar_registration_count",
    "zoom_webinar_attendance_count",
    "zoom_webinar_average_attendance_percent",
    "zoom_last_registered_webinar_url",
)
MINUTE = timedelta(minutes=1)
_OFF = {"0", "false", "no", "off"}


# --------------------------------------------------------------------------------------------------
# When, and with what
# --------------------------------------------------------------------------------------------------


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
_ON = {"1", "true", "yes", "on"}


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


def _fresh_sqlite(database_url: str) -> None:
    database = make_url(database_url).database
    assert database is not None
    path = Path(database)
    path.parent.mkdir(parents=True, exist_ok=True)
    for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
        leftover.unlink(missing_ok=True)


def _demo_settings(base: Settings, admin_token: str, public_url: str) -> Settings:
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


# --------------------------------------------------------------------------------------------------
# The app
# --------------------------------------------------------------------------------------------------


@dataclass
class DemoRun:
    """The demo's moving parts and outcome (``app.state.demo``; typed access: :func:`demo_of`)."""

    settings: Settings
    base_url: str
    hubspot: HubSpotSandbox
    zoom: ZoomSandbox
    hubspot_app: FastAPI
    zoom_app: FastAPI
    print_summary: bool = True
    done: asyncio.Event = field(default_factory=asyncio.Event)
    webinar_id: str | None = None
    summary: str | None = None
    error: str | None = None
    outcome: dict[str, Any] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None

    @property
    def admin_token(self) -> str:
        assert self.settings.admin_api_token is not None
        return self.settings.admin_api_token.get_secret_value()


def demo_of(app: FastAPI) -> DemoRun:
    run = getattr(app.state, "demo", None)
    if not isinstance(run, DemoRun):
        raise TypeError("this app was not built by create_demo_app()")
    return run


class _Prefixed:
    """A sandbox app served under a prefix: it sees its own paths (``/_sandbox/state``, which its
    request gate recognises) while ``root_path`` keeps its OpenAPI docs pointing at the prefix."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        root, path = scope.get("root_path", ""), scope.get("path", "")
        if scope["type"] in ("http", "websocket") and root and path.startswith(root):
            scope = {**scope, "path": path[len(root) :] or "/"}
        await self.app(scope, receive, send)


def create_demo_app(
    base: Settings | None = None, *, base_url: str | None = None, print_summary: bool = True
) -> FastAPI:
    """The service between both sandboxes, with the demo scenario started in the background.

    ``base`` gives the database location, the admin token and the operational knobs (default: the
    environment); the demo sets the Zoom and HubSpot side itself. ``base_url`` is where the server is
    reached, for the printed commands (default ``$ZOOM_HUBSPOT_DEMO_URL``, else ``PUBLIC_BASE_URL``).
    """
    base = base or Settings()
    real = real_settings_set(base)
    log.warning(
        "DEMO MODE: Zoom and HubSpot are in-process sandboxes, open without auth under %s and %s; "
        "nothing reaches a real account, and the demo database is made afresh at every start%s",
        HUBSPOT_MOUNT,
        ZOOM_MOUNT,
        f" (ignoring the configured {', '.join(real)})" if real else "",
    )
    url = (base_url or os.environ.get(URL_ENV) or base.public_base_url).rstrip("/")
    token = base.admin_api_token.get_secret_value() if base.admin_api_token else secrets.token_urlsafe(24)
    settings = _demo_settings(base, token, url)
    _fresh_sqlite(settings.database_url)

    hubspot_app = create_hubspot_sandbox(tokens={HUBSPOT_TOKEN: PORTAL_ID}, app_id=HUBSPOT_APP_ID)
    zoom_app = create_zoom_sandbox(
        accounts={ACCOUNT_ID: (ZOOM_CLIENT_ID, ZOOM_CLIENT_SECRET)},
        public_url=ZOOM_URL,
        webhook_secret=ZOOM_WEBHOOK_SECRET,
    )
    hubspot_transport = httpx.ASGITransport(app=hubspot_app)
    zoom_transport = httpx.ASGITransport(app=zoom_app)
    app = create_app(settings, hubspot_transport=hubspot_transport, zoom_transport=zoom_transport)
    app.mount(HUBSPOT_MOUNT, _Prefixed(hubspot_app), name="hubspot-sandbox")
    app.mount(ZOOM_MOUNT, _Prefixed(zoom_app), name="zoom-sandbox")
    run = DemoRun(
        settings=settings,
        base_url=url,
        hubspot=sandbox_of(hubspot_app),
        zoom=zoom_sandbox_of(zoom_app),
        hubspot_app=hubspot_app,
        zoom_app=zoom_app,
        print_summary=print_summary,
    )
    app.state.demo = run
    service_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(service: FastAPI) -> AsyncIterator[Any]:
        async with service_lifespan(service) as state:
            run.done = asyncio.Event()
            run.zoom.set_webhook_target(app=service, secret=ZOOM_WEBHOOK_SECRET)
            run.task = asyncio.create_task(_play(service, run), name="demo scenario")
            try:
                yield state
            finally:
                run.task.cancel()
                await asyncio.gather(run.task, return_exceptions=True)
                await run.zoom.aclose()

    app.router.lifespan_context = lifespan
    return app


# --------------------------------------------------------------------------------------------------
# The scenario
# --------------------------------------------------------------------------------------------------


class _Service:
    """The admin API, called in-process like an admin would call it over HTTP."""

    def __init__(self, http: httpx.AsyncClient, run: DemoRun) -> None:
        self.http = http
        self.run = run
        self.portal = f"/api/v1/portals/{PORTAL_ID}"

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        r = await self.http.request(method, path, **kwargs)
        if r.status_code >= 300:
            raise RuntimeError(f"{method} {path} answered {r.status_code}: {r.text[:300]}")
        return r.json()

    async def wait_idle(self, timeout_s: float = 60.0) -> dict[str, Any]:
        """Until the Zoom sandbox has sent every webhook and the service has nothing pending."""
        deadline = time.monotonic() + timeout_s
        while True:
            await self.run.zoom.settle()
            status: dict[str, Any] = await self.call("GET", "/api/v1/status")
            if status["pending"] == 0:
                return status
            if time.monotonic() > deadline:
                raise RuntimeError(f"the service still has work pending after {timeout_s:.0f}s: {status}")
            await asyncio.sleep(0.1)


async def _play(service_app: FastAPI, run: DemoRun) -> None:
    started = time.monotonic()
    try:
        headers = {"Authorization": f"Bearer {run.admin_token}"}
        transport = httpx.ASGITransport(app=service_app)
        async with (
            httpx.AsyncClient(transport=transport, base_url=run.base_url, headers=headers) as http,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=run.hubspot_app), base_url=HUBSPOT_URL
            ) as hubspot,
        ):
            service = _Service(http, run)
            await _seed_hubspot(hubspot)
            await service.call(
                "PATCH",
                f"{service.portal}/settings",
                json={
                    "webinar_sync_enabled": True,
                    "contact_exclusion_domains": [COMPANY_DOMAIN],
                    "recording_sync": "all",
                },
            )
            played = await _play_webinar(run.zoom)
            run.webinar_id = played["webinar_id"]
            await service.wait_idle()
            # The host is known to the service once its webinar's webhooks were processed (S5).
            await service.call(
                "PATCH", f"{service.portal}/zoom-users/{played['host_id']}", json={"sync_recordings": True}
            )
            await run.zoom.add_recording(played["webinar_id"], at=played["t0"] + 75 * MINUTE)
            status = await service.wait_idle()
            run.outcome = await _collect(service, run, played, status, time.monotonic() - started)
        run.summary = _summary(run)
        if run.print_summary:
            print(run.summary, file=sys.stderr, flush=True)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.exception("the demo scenario failed")
        run.error = f"{type(exc).__name__}: {exc}"
        if run.print_summary:
            print(f"\nDemo scenario failed: {run.error}\n", file=sys.stderr, flush=True)
    finally:
        run.done.set()


async def _seed_hubspot(hubspot: httpx.AsyncClient) -> None:
    """What the HubSpot account already holds: a user, a contact with a secondary email, a deleted one."""
    users = {"portal": PORTAL_ID, "users": [{"email": HUBSPOT_USER, "firstName": "Alex"}]}
    contacts = {
        "portal": PORTAL_ID,
        "contacts": [
            {
                "email": SECONDARY_OWNER,
                "properties": {
                    "firstname": "Grace",
                    "lastname": "Hopper",
                    "hs_additional_emails": SECONDARY_EMAIL,
                },
            },
            {"email": DELETED, "properties": {"firstname": "Olga"}, "archived": True},
        ],
    }
    for path, body in (("/_sandbox/users", users), ("/_sandbox/contacts", contacts)):
        r = await hubspot.post(path, json=body)
        r.raise_for_status()


async def _play_webinar(zoom: ZoomSandbox) -> dict[str, Any]:
    """Created a week ago, registrations over the week, one cancellation, held two hours ago."""
    t0 = (datetime.now(UTC) - timedelta(hours=2)).replace(second=0, microsecond=0)
    created = await zoom.create_webinar(
        topic=TOPIC,
        agenda="How registrations, attendance and recordings end up on your HubSpot contacts.",
        start_time=t0,
        duration=60,
        at=t0 - timedelta(days=7),
    )
    webinar_id = str(created.result["id"])
    host_id = str(created.result["host_id"])
    ids: dict[str, str] = {}
    for n, (email, first, last) in enumerate(PEOPLE):
        reg = await zoom.register(webinar_id, email, first, last, at=t0 - timedelta(days=6, hours=-n * 9))
        ids[email] = str(reg.result["id"])
    await zoom.cancel(webinar_id, ids["cara@example.com"], at=t0 - timedelta(days=1))
    await zoom.start(webinar_id, at=t0)

    async def attend(email: str, start: int, end: int | None) -> None:
        joined = await zoom.join(webinar_id, registrant_id=ids[email], at=t0 + start * MINUTE)
        if end is not None:
            await zoom.leave(webinar_id, user_id=joined.result["user_id"], at=t0 + end * MINUTE)

    await attend("ann@example.com", 1, 55)
    await attend("bob@example.com", 2, 20)
    await attend(HUBSPOT_USER, 3, 40)
    await attend(f"sam@{COMPANY_DOMAIN}", 0, None)  # stays to the end
    await attend(SECONDARY_EMAIL, 5, 45)
    guest = await zoom.join(webinar_id, name="Walk-in guest", guest=True, at=t0 + 8 * MINUTE)
    await zoom.leave(webinar_id, user_id=guest.result["user_id"], at=t0 + 25 * MINUTE)
    await attend("bob@example.com", 30, None)  # rejoins, until the end
    await zoom.end(webinar_id, at=t0 + 60 * MINUTE)
    return {"webinar_id": webinar_id, "host_id": host_id, "t0": t0}


async def _collect(
    service: _Service, run: DemoRun, played: dict[str, Any], status: dict[str, Any], seconds: float
) -> dict[str, Any]:
    webinar = f"{service.portal}/webinars/{played['webinar_id']}"
    audit: list[dict[str, Any]] = await service.call("GET", f"{webinar}/audit-log")
    excluded: list[dict[str, Any]] = await service.call("GET", f"{webinar}/excluded-emails")
    detail: dict[str, Any] = await service.call("GET", webinar)
    state: dict[str, Any] = run.hubspot.snapshot(PORTAL_ID)
    counts: Counter[str] = Counter()
    for entry in audit:
        if entry["code"] == "emails_excluded":
            counts.update(entry["details"].get("counts", {}))
    return {
        "webinar": detail,
        "audit": audit,
        "excluded": excluded,
        "excluded_counts": dict(counts),
        "hubspot": state,
        "status": status,
        "webhooks": len(run.zoom.deliveries),
        "webhooks_ok": sum(1 for d in run.zoom.deliveries if d.ok),
        "seconds": seconds,
    }


# --------------------------------------------------------------------------------------------------
# The summary
# --------------------------------------------------------------------------------------------------


def _percent(value: str | None) -> str:
    return "-" if value in (None, "") else f"{float(value):.1f}%"


def _summary(run: DemoRun) -> str:
    o = run.outcome
    state, webinar = o["hubspot"], o["webinar"]
    n = webinar["counts"]
    email_of = {c["id"]: c["properties"].get("email") for c in state["contacts"]}
    templates = {t["id"]: t["name"] for t in state["event_templates"]}
    events = Counter(templates.get(e["eventTemplateId"], "?") for e in state["timeline_events"])
    base, wid, token = run.base_url, run.webinar_id, run.admin_token
    auth = f"-H 'Authorization: Bearer {token}'"
    api = f"{base}/api/v1/portals/{PORTAL_ID}"
    rule = "=" * 100
    lines = [
        "",
        rule,
        f" DEMO  Zoom webinar {wid} '{webinar['topic']}'",
        f"       played: {n['registrants']} registrations ({n['cancelled']} cancelled), {n['attendees']} "
        "attendees (one rejoined, one guest), the end, a recording;",
        f"       {o['webhooks_ok']} of {o['webhooks']} signed webhooks accepted; all work done in "
        f"{o['seconds']:.1f}s (pending {o['status']['pending']}, failed {o['status']['failed']})",
        rule,
        f"HubSpot sandbox, portal {PORTAL_ID}: contacts with their zoom_* properties",
        f"  {'contact':<24} {'registrations':>13} {'attendances':>12} {'avg attendance':>15}",
    ]
    urls: dict[str, str] = {}
    untouched: list[str] = []
    for c in (c for c in state["contacts"] if not c.get("archived")):
        p = c["properties"]
        email = str(p.get("email") or c["id"])
        if not any(p.get(name) for name in ZOOM_PROPERTIES):
            untouched.append(email)
            continue
        urls[email] = p.get("zoom_last_registered_webinar_url") or "-"
        lines.append(
            f"  {email:<24} {p.get('zoom_webinar_registration_count') or '0':>13} "
            f"{p.get('zoom_webinar_attendance_count') or '0':>12} "
            f"{_percent(p.get('zoom_webinar_average_attendance_percent')):>15}"
        )
    lines += [
        f"  {email:<24} untouched (an existing contact; its secondary email registered)"
        for email in untouched
    ]
    if len(set(urls.values())) == 1:
        lines.append(f"  last registered webinar (all {len(urls)}): {next(iter(urls.values()))}")
    else:
        lines += [f"  last registered webinar of {email}: {url}" for email, url in urls.items()]
    lines.append("Timeline events: " + ", ".join(f"{n} x {name}" for name, n in sorted(events.items())))
    for m in state["marketing_events"]:
        states = sorted(f"{email_of.get(cid, cid)} {a['state']}" for cid, a in m["attendance"].items())
        done = "completed" if m.get("eventCompleted") else "open"
        text = f"Marketing event ({done}), contact states: " + ", ".join(states)
        lines += textwrap.wrap(text, width=100, subsequent_indent="  ")
    for call in state["calls"]:
        p = call["properties"]
        on = sorted(str(email_of.get(a["id"], a["id"])) for a in call["associations"]["contacts"]["results"])
        body = p.get("hs_call_body") or ""
        lines.append(f"Call record {call['id']} with the transcript ({len(body)} chars), on {', '.join(on)}")
    lines.append("Not created in HubSpot, with the reason (excluded-emails):")
    for e in o["excluded"]:
        lines.append(f"  {e['email'] or '(guest, no email)':<30} {e['reason']:<16} ({e['role']})")
    codes = [a["code"] + ("" if a["status"] == "success" else f" ({a['status']})") for a in o["audit"]]
    counts = ", ".join(f"{reason} {n}" for reason, n in sorted(o["excluded_counts"].items()))
    lines += textwrap.wrap(
        f"Audit log ({len(codes)} entries): {', '.join(codes)}; emails_excluded counts: {counts}",
        width=100,
        subsequent_indent="  ",
    )
    lines += [
        rule,
        f"Look around (admin token: {token}):",
        f"  curl {auth} {base}/api/v1/status",
        f"  curl {auth} {api}/webinars",
        f"  curl {auth} {api}/webinars/{wid}/audit-log",
        f"  curl {auth} {api}/webinars/{wid}/excluded-emails",
        f"  curl '{base}{HUBSPOT_MOUNT}/_sandbox/state?portal={PORTAL_ID}'    # everything in HubSpot",
        f"  curl '{base}{ZOOM_MOUNT}/_sandbox/webinars/{wid}'    # the webinar at Zoom",
        f"  API docs: {base}/docs",
        f"  Sandboxes: {base}{HUBSPOT_MOUNT}/_sandbox/docs  {base}{ZOOM_MOUNT}/_sandbox/docs",
        f"Real accounts: set HUBSPOT_ACCESS_TOKEN / ZOOM_* (see README). {DEMO_ENV}=0 turns the demo off.",
        rule,
    ]
    return "\n".join(lines)
