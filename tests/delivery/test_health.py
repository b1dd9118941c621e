"""A HubSpot outage or rate limit is visible per portal in /api/v1/status, and a long outage is
written to the audit log once, with its end.

The in-process HubSpot sandbox answers every API call with 503 while `down`, and 429 (Retry-After
1 s) to the next `burst_429` calls.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.fixtures.databases import Database
from tests.fixtures.delivery import WEBINAR, build, delivery_settings, seed, seeded_sandbox, wait_all_done
from tests.fixtures.e2e import harness
from tests.fixtures.scenarios import deliver, wait_inbox_idle
from tests.fixtures.service import ADMIN, PORTAL_ID, make_settings, running_app

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

WARN_S = 1.0  # DELIVERY_FAILING_WARN_S for these tests (default 300 s)
TIMEOUT_S = 60.0
EXISTING_KEYS = {"pending", "failed", "dead", "inbox", "outbox", "actions", "sync_jobs", "details"}
FAILING = "hubspot_delivery_failing"
RECOVERED = "hubspot_delivery_recovered"


async def status(client: httpx.AsyncClient) -> dict[str, Any]:
    r = await client.get("/api/v1/status", headers=ADMIN)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def hubspot_of(body: dict[str, Any]) -> dict[str, Any]:
    hubspot: dict[str, Any] = body["portals"][str(PORTAL_ID)]["hubspot"]
    return hubspot


async def wait_hubspot(client: httpx.AsyncClient, ok: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        body = await status(client)
        if ok(hubspot_of(body)):
            return body
        assert time.monotonic() < deadline, f"status never got there: {body.get('portals')}"
        await asyncio.sleep(0.05)


async def audit(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    r = await client.get(f"/api/v1/portals/{PORTAL_ID}/webinars/{WEBINAR}/audit-log", headers=ADMIN)
    assert r.status_code == 200, r.text
    entries: list[dict[str, Any]] = r.json()
    return entries


async def wait_audit(client: httpx.AsyncClient, code: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        entries = await audit(client)
        if any(e["code"] == code for e in entries):
            return entries
        assert time.monotonic() < deadline, f"no {code} entry: {entries}"
        await asyncio.sleep(0.05)


async def faults(hs: httpx.AsyncClient, **values: Any) -> dict[str, Any]:
    r = await hs.post("/_sandbox/faults", json=values)
    assert r.status_code < 300, r.text
    body: dict[str, Any] = r.json()
    return body


async def fault_count(hs: httpx.AsyncClient) -> int:
    r = await hs.get("/_sandbox/state", params={"portal": PORTAL_ID})
    assert r.status_code == 200, r.text
    return int(r.json()["stats"]["faults"])


def moment(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def start_syncing(client: httpx.AsyncClient) -> None:
    r = await client.patch(
        f"/api/v1/portals/{PORTAL_ID}/settings",
        headers=ADMIN,
        json={"webinar_sync_enabled": True, "contact_exclusion_domains": ["excluded.example"]},
    )
    assert r.status_code == 200, r.text
    await deliver(client, build().envelopes)
    await wait_inbox_idle(client)


async def test_outage_shows_failing_warns_once_and_recovers(database: Database) -> None:
    sandbox_app = seeded_sandbox()
    transport = httpx.ASGITransport(app=sandbox_app)
    settings = delivery_settings(database, delivery_failing_warn_s=WARN_S)
    async with httpx.AsyncClient(transport=transport, base_url="http://hubspot.test") as hs:
        await seed(hs)
        async with running_app(settings, hubspot_transport=transport) as client:
            before = await status(client)
            assert set(before) >= EXISTING_KEYS, before  # the contract's keys stay as they were
            assert hubspot_of(before)["state"] == "unknown", before
            assert before["portals"][str(PORTAL_ID)]["zoom"]["state"] == "unknown", before

            down_at = datetime.now(UTC)
            await faults(hs, down=True)
            await start_syncing(client)

            # While HubSpot is down: failing since the outage began, with the last error.
            body = await wait_hubspot(client, lambda h: h["state"] == "failing")
            hub = hubspot_of(body)
            assert moment(hub["since"]) >= down_at, hub
            assert "503" in hub["last_error"] and "SERVICE_UNAVAILABLE" in hub["last_error"], hub
            assert hub["rate_limited_until"] is None, hub
            assert set(body) >= EXISTING_KEYS and body["outbox"]["pending"] > 0, body

            # An API-only process on the same database (the worker being elsewhere) sees the same.
            api_only = make_settings(database, run_worker=False)
            async with running_app(api_only) as other:
                assert hubspot_of(await status(other))["state"] == "failing"

            # Failing for longer than DELIVERY_FAILING_WARN_S: one warning on the webinar waiting.
            entries = await wait_audit(client, FAILING)
            warning = next(e for e in entries if e["code"] == FAILING)
            assert warning["status"] == "warning", warning
            assert "503" in warning["message"] and "since" in warning["message"], warning
            assert moment(warning["details"]["failing_since"]) == moment(hub["since"]), warning
            # HubSpot stays down and the service keeps failing (one more call, all its attempts):
            # still one warning.
            seen = await fault_count(hs)
            deadline = time.monotonic() + TIMEOUT_S
            while await fault_count(hs) < seen + 5:
                assert time.monotonic() < deadline, "the service stopped trying"
                await asyncio.sleep(0.1)
            assert hubspot_of(await status(client))["state"] == "failing"

            await faults(hs, down=False)
            final = await wait_all_done(client, timeout_s=TIMEOUT_S)
            assert final["failed"] == 0, final
            body = await wait_hubspot(client, lambda h: h["state"] == "ok")
            hub = hubspot_of(body)
            assert hub["since"] is None and moment(hub["last_ok_at"]) > moment(warning["at"]), hub
            entries = await wait_audit(client, RECOVERED)

    warnings = [e for e in entries if e["code"] == FAILING]
    recoveries = [e for e in entries if e["code"] == RECOVERED]
    assert len(warnings) == 1 and len(recoveries) == 1, entries
    assert recoveries[0]["status"] == "success", recoveries
    assert moment(recoveries[0]["at"]) >= moment(warnings[0]["at"]), entries


async def test_a_short_outage_shows_but_writes_no_audit_entry(database: Database) -> None:
    sandbox_app = seeded_sandbox()
    transport = httpx.ASGITransport(app=sandbox_app)
    # The default threshold (300 s) is far longer than this outage.
    async with httpx.AsyncClient(transport=transport, base_url="http://hubspot.test") as hs:
        await seed(hs)
        async with running_app(delivery_settings(database), hubspot_transport=transport) as client:
            await faults(hs, down=True)
            await start_syncing(client)
            await wait_hubspot(client, lambda h: h["state"] == "failing")
            await faults(hs, down=False)
            await wait_all_done(client, timeout_s=TIMEOUT_S)
            await wait_hubspot(client, lambda h: h["state"] == "ok")
            entries = await audit(client)
    assert not [e for e in entries if e["code"] in (FAILING, RECOVERED)], entries


async def test_a_burst_of_429s_shows_rate_limited_until_a_time(database: Database) -> None:
    sandbox_app = seeded_sandbox()
    transport = httpx.ASGITransport(app=sandbox_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hubspot.test") as hs:
        await seed(hs)
        async with running_app(delivery_settings(database), hubspot_transport=transport) as client:
            await faults(hs, burst_429=4)
            await start_syncing(client)
            body = await wait_hubspot(client, lambda h: h["state"] == "rate_limited")
            hub = hubspot_of(body)
            assert moment(hub["rate_limited_until"]) > moment(hub["since"]), hub
            assert "429" in hub["last_error"], hub
            final = await wait_all_done(client, timeout_s=TIMEOUT_S)
            assert final["failed"] == 0, final
            # Once the rate limit is over, the portal is ok again: nothing ever failed.
            await wait_hubspot(client, lambda h: h["state"] == "ok" and h["rate_limited_until"] is None)
            entries = await audit(client)
    assert not [e for e in entries if e["code"] in (FAILING, RECOVERED)], entries


async def test_zoom_outage_shows_failing_for_the_portal_and_recovers(database: Database) -> None:
    async with harness(database, reconcile_delay_s=0, delivery_failing_warn_s=WARN_S) as h:
        created = await h.zoom.create_webinar(topic="Health webinar", start_time=datetime.now(UTC), emit=True)
        wid = str(created.result["id"])
        await h.wait_done()
        h.zoom.faults.down = True
        r = await h.client.post(f"/api/v1/portals/{PORTAL_ID}/webinars/{wid}/sync", headers=ADMIN)
        assert r.status_code == 202, r.text
        body = await wait_service(h.client, "zoom", lambda z: z["state"] == "failing")
        zoom = body["portals"][str(PORTAL_ID)]["zoom"]
        assert "503" in zoom["last_error"] and zoom["since"] is not None, zoom
        log = f"/api/v1/portals/{PORTAL_ID}/webinars/{wid}/audit-log"
        entries = await wait_log(h.client, log, "zoom_api_failing")
        h.zoom.faults.down = False
        r = await h.client.post(f"/api/v1/portals/{PORTAL_ID}/webinars/{wid}/sync", headers=ADMIN)
        assert r.status_code == 202, r.text
        await wait_service(h.client, "zoom", lambda z: z["state"] == "ok")
        entries = await wait_log(h.client, log, "zoom_api_recovered")
    assert [e["code"] for e in entries].count("zoom_api_failing") == 1, entries
    assert [e["code"] for e in entries].count("zoom_api_recovered") == 1, entries


async def wait_service(
    client: httpx.AsyncClient, service: str, ok: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        body = await status(client)
        if ok(body["portals"][str(PORTAL_ID)][service]):
            return body
        assert time.monotonic() < deadline, f"status never got there: {body.get('portals')}"
        await asyncio.sleep(0.05)


async def wait_log(client: httpx.AsyncClient, path: str, code: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        r = await client.get(path, headers=ADMIN)
        assert r.status_code == 200, r.text
        entries: list[dict[str, Any]] = r.json()
        if any(e["code"] == code for e in entries):
            return entries
        assert time.monotonic() < deadline, f"no {code} entry: {entries}"
        await asyncio.sleep(0.05)
