"""Data skipped while a switch was off fills in once it is on (and exclusions follow settings)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from app.sandbox.zoom_webhooks import WebinarScenario
from tests.conftest import ACCOUNT_ID, ADMIN, PORTAL_ID, Database, make_settings, running_app
from tests.scenario_helpers import deliver, wait_inbox_idle

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
WEBINAR = "82000000001"
BASE = f"/api/v1/portals/{PORTAL_ID}"


def _scenario() -> WebinarScenario:
    s = WebinarScenario(
        account_id=ACCOUNT_ID,
        webinar_id=WEBINAR,
        host_id="hostR",
        host_email="r@hostco.com",
        topic="Replan",
        start=T0,
        seed=11,
    )
    s.created(at=T0 - timedelta(days=3))
    a = s.register("ann@example.com", "Ann", "A", at=T0 - timedelta(days=2))
    s.register("bob@ourco.com", "Bob", "B", at=T0 - timedelta(days=2))
    s.started(at=T0)
    p = s.participant_for(a)
    s.join(p, at=T0 + timedelta(minutes=1))
    s.leave(p, at=T0 + timedelta(minutes=50))
    s.ended(at=T0 + timedelta(minutes=60))
    return s


async def _webinar(client: httpx.AsyncClient) -> dict[str, object]:
    r = await client.get(f"{BASE}/webinars/{WEBINAR}", headers=ADMIN)
    assert r.status_code == 200, r.text
    body: dict[str, object] = r.json()
    return body


async def _audit_codes(client: httpx.AsyncClient) -> list[str]:
    r = await client.get(f"{BASE}/webinars/{WEBINAR}/audit-log", headers=ADMIN)
    return [e["code"] for e in r.json()]


async def test_enabling_sync_later_plans_what_was_skipped(database: Database) -> None:
    settings = make_settings(database, run_worker=True, worker_poll_interval_s=0.05)
    async with running_app(settings) as client:
        await deliver(client, _scenario().envelopes)
        await wait_inbox_idle(client)
        detail = await _webinar(client)
        assert detail["sync_state"] == "skipped" and detail["skip_reason"] == "webinar_sync_off"
        assert await _audit_codes(client) == ["sync_disabled"]
        status = (await client.get("/api/v1/status", headers=ADMIN)).json()
        assert status["outbox"]["pending"] == 0

        r = await client.patch(f"{BASE}/settings", headers=ADMIN, json={"webinar_sync_enabled": True})
        assert r.status_code == 200
        await wait_inbox_idle(client)
        detail = await _webinar(client)
        assert detail["sync_state"] == "syncing"
        counts = detail["counts"]
        assert isinstance(counts, dict)
        assert counts["planned"] == 2 and counts["excluded"] == 0
        assert "webinar_synced" in await _audit_codes(client)

        # A contact exclusion domain added afterwards excludes Bob on the next plan...
        r = await client.patch(
            f"{BASE}/settings", headers=ADMIN, json={"contact_exclusion_domains": ["ourco.com"]}
        )
        assert r.status_code == 200
        await wait_inbox_idle(client)
        excluded = (await client.get(f"{BASE}/webinars/{WEBINAR}/excluded-emails", headers=ADMIN)).json()
        assert [(e["email"], e["reason"]) for e in excluded] == [("bob@ourco.com", "excluded_domain")]
        counts = (await _webinar(client))["counts"]
        assert isinstance(counts, dict) and counts["planned"] == 1  # Bob's undelivered operations withdrawn

        # ...and removing it takes him off the list again.
        r = await client.patch(f"{BASE}/settings", headers=ADMIN, json={"contact_exclusion_domains": []})
        await wait_inbox_idle(client)
        excluded = (await client.get(f"{BASE}/webinars/{WEBINAR}/excluded-emails", headers=ADMIN)).json()
        assert excluded == []
        counts = (await _webinar(client))["counts"]
        assert isinstance(counts, dict) and counts["planned"] == 2


async def test_per_webinar_switch_overrides_host_default(database: Database) -> None:
    settings = make_settings(database, run_worker=True, worker_poll_interval_s=0.05)
    async with running_app(settings) as client:
        await client.patch(f"{BASE}/settings", headers=ADMIN, json={"webinar_sync_enabled": True})
        s = _scenario()
        await deliver(client, s.envelopes[:1])  # webinar.created: the host becomes known
        await wait_inbox_idle(client)
        r = await client.patch(
            f"{BASE}/zoom-users/hostR", headers=ADMIN, json={"sync_new_webinars_by_default": False}
        )
        assert r.status_code == 200
        await deliver(client, s.envelopes[1:])
        await wait_inbox_idle(client)
        assert (await _webinar(client))["skip_reason"] == "host_default_off"

        r = await client.patch(f"{BASE}/webinars/{WEBINAR}", headers=ADMIN, json={"sync_enabled": True})
        assert r.status_code == 200 and r.json()["sync_enabled"] is True
        await wait_inbox_idle(client)
        detail = await _webinar(client)
        assert detail["sync_state"] == "syncing"
        counts = detail["counts"]
        assert isinstance(counts, dict) and counts["planned"] == 2

        r = await client.patch(f"{BASE}/webinars/{WEBINAR}", headers=ADMIN, json={"sync_enabled": "maybe"})
        assert r.status_code == 422
        r = await client.patch(f"{BASE}/webinars/99999", headers=ADMIN, json={"sync_enabled": True})
        assert r.status_code == 404


async def test_webinar_list_paginates_newest_first(database: Database) -> None:
    settings = make_settings(database, run_worker=True, worker_poll_interval_s=0.05)
    async with running_app(settings) as client:
        for i in range(5):
            s = WebinarScenario(
                account_id=ACCOUNT_ID,
                webinar_id=f"8300000000{i}",
                host_id="h",
                host_email="h@hostco.com",
                topic=f"W{i}",
                start=T0,
                seed=i,
            )
            await deliver(client, [s.created(at=T0)])
            await wait_inbox_idle(client)
        seen: list[str] = []
        cursor = None
        while True:
            params = {"limit": "2"} | ({"cursor": cursor} if cursor else {})
            page = (await client.get(f"{BASE}/webinars", headers=ADMIN, params=params)).json()
            seen.extend(w["webinar_id"] for w in page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == [f"8300000000{i}" for i in reversed(range(5))]
        r = await client.get(f"{BASE}/webinars", headers=ADMIN, params={"cursor": "!!bad"})
        assert r.status_code == 422
        r = await client.get(f"{BASE}/webinars", headers=ADMIN, params={"limit": "0"})
        assert r.status_code == 422
        r = await client.get("/api/v1/portals/1/webinars", headers=ADMIN)
        assert r.status_code == 404
