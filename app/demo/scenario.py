"""The scripted scenario: a realistic webinar played at the Zoom sandbox (registrations, exclusions
of every kind, joins and a rejoin, the end, a recording), driven through the admin API like an
admin would, then what landed collected for the summary."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI

from app.demo.run import DemoRun
from app.demo.settings import HUBSPOT_URL, PORTAL_ID
from app.demo.summary import summary
from app.sandbox.zoom_state import ZoomSandbox

# The name the demo's log lines had before the module became a package.
log = logging.getLogger("app.demo")

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
MINUTE = timedelta(minutes=1)


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


async def play(service_app: FastAPI, run: DemoRun) -> None:
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
        run.summary = summary(run)
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
