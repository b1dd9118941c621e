"""Sync now, the automatic reconciliation and replay: pulls from Zoom converge on the same HubSpot state."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import text

from tests.fixtures.databases import Database
from tests.fixtures.e2e import Harness, harness
from tests.fixtures.hubspot_views import hubspot_view
from tests.fixtures.service import ADMIN, PORTAL_ID
from tests.fixtures.webinar_play import Emit, always, every_other, play

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


async def sync_now(h: Harness, wid: str) -> dict[str, Any]:
    r = await h.client.post(f"/api/v1/portals/{PORTAL_ID}/webinars/{wid}/sync", headers=ADMIN)
    assert r.status_code == 202, r.text
    body: dict[str, Any] = r.json()
    return body


async def job(h: Harness, job_id: str) -> dict[str, Any]:
    r = await h.client.get(f"/api/v1/portals/{PORTAL_ID}/sync-jobs/{job_id}", headers=ADMIN)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def run(database: Database, emit: Emit, *, pull: bool, **overrides: Any) -> dict[str, Any]:
    async with harness(database, reconcile_delay_s=0, **overrides) as h:
        await h.settings_patch(webinar_sync_enabled=True)
        wid = await play(h.zoom, emit)
        await h.wait_done()
        if pull:
            started = await sync_now(h, wid)
            await h.wait_done()
            finished = await job(h, started["job_id"])
            assert finished["state"] == "done", finished
        state = h.portal_state()
        state["event_templates"] = [{"id": t.id, "name": t.name} for t in h.hubspot.templates.values()]
        with database.engine.connect() as conn:
            # What to look at when the comparison fails: the jobs and the inbox, by event and state.
            diagnostics = {
                "jobs": conn.execute(
                    text("SELECT kind, state, counts FROM sync_job ORDER BY created_at")
                ).all(),
                "inbox": conn.execute(
                    text("SELECT event, state, count(*) FROM inbox_event GROUP BY event, state ORDER BY 1, 2")
                ).all(),
            }
        diagnostics["status"] = (await h.client.get("/api/v1/status", headers=ADMIN)).json()
        return {"view": hubspot_view(state), "wid": wid, "diagnostics": diagnostics}


async def test_sync_now_after_losing_half_the_webhooks_matches_full_delivery(database: Database) -> None:
    full = await run(database, always, pull=False)
    from tests.fixtures.databases import truncate_all

    truncate_all(database.engine)
    half = await run(database, every_other(), pull=True)
    assert half["view"] == full["view"], half["diagnostics"]
    contacts = full["view"]["contacts"]
    assert contacts["ann@example.com"]["zoom_webinar_attendance_count"] == "1"
    assert float(contacts["cara@example.com"]["zoom_webinar_average_attendance_percent"]) == pytest.approx(
        50.0
    )
    assert contacts["bob@example.com"]["zoom_webinar_registration_count"] == "0"


async def test_concurrent_sync_now_calls_run_once(database: Database) -> None:
    async with harness(database, reconcile_delay_s=0) as h:
        await h.settings_patch(webinar_sync_enabled=True)
        wid = await play(h.zoom, always)
        await h.wait_done()
        # Zoom answers slowly, so the first job is still running when the second call arrives (once
        # a job has finished, a new call rightly starts a new one).
        await h.zoom_http.post("/_sandbox/faults", json={"slow_ms": 300})
        first, second = await asyncio.gather(sync_now(h, wid), sync_now(h, wid))
        assert first["job_id"] == second["job_id"]
        assert sorted([first["created"], second["created"]]) == [False, True]
        await h.wait_done()
        await h.zoom_http.post("/_sandbox/faults", json={"slow_ms": 0})
        done = await job(h, first["job_id"])
        assert done["state"] == "done" and done["counts"]["registrants"] == 3  # bob cancelled: not listed
        audit = (
            await h.client.get(f"/api/v1/portals/{PORTAL_ID}/webinars/{wid}/audit-log", headers=ADMIN)
        ).json()
        pulls = [a for a in audit if a["code"] == "zoom_pulled"]
        assert len(pulls) == 1 and pulls[0]["details"]["job_id"] == first["job_id"]
        # Once done, a new Sync now is a new job.
        again = await sync_now(h, wid)
        assert again["created"] and again["job_id"] != first["job_id"]
        detail = (await h.client.get(f"/api/v1/portals/{PORTAL_ID}/webinars/{wid}", headers=ADMIN)).json()
        assert detail["last_sync_job"]["job_id"] == again["job_id"]


async def test_sync_now_refusals(database: Database) -> None:
    async with harness(database, reconcile_delay_s=0) as h:
        r = await h.client.post(f"/api/v1/portals/{PORTAL_ID}/webinars/123/sync", headers=ADMIN)
        assert r.status_code == 404
        r = await h.client.post("/api/v1/portals/999/webinars/123/sync", headers=ADMIN)
        assert r.status_code == 404
        r = await h.client.post(f"/api/v1/portals/{PORTAL_ID}/webinars/123/sync")
        assert r.status_code == 401
        r = await h.client.get(f"/api/v1/portals/{PORTAL_ID}/sync-jobs/nope", headers=ADMIN)
        assert r.status_code == 404


async def test_reconciliation_fills_in_lost_attendance_by_itself(database: Database) -> None:
    async with harness(database, reconcile_delay_s=0.5) as h:
        await h.settings_patch(webinar_sync_enabled=True)
        wid = await play(h.zoom, every_other())
        await h.wait_done()
        await asyncio.sleep(0.6)  # the reconciliation becomes due
        await h.wait_done()
        audit = (
            await h.client.get(f"/api/v1/portals/{PORTAL_ID}/webinars/{wid}/audit-log", headers=ADMIN)
        ).json()
        pulls = [a for a in audit if a["code"] == "zoom_pulled"]
        assert [p["details"]["kind"] for p in pulls] == ["reconcile"]
        ann = h.contact("ann@example.com")
        assert ann is not None and ann["zoom_webinar_attendance_count"] == "1"
        with database.engine.connect() as conn:
            n = conn.execute(text("SELECT count(*) FROM sync_job WHERE kind = 'reconcile'")).scalar_one()
        assert n == 1
