"""Data skipped while a switch was off fills in once it is on (and exclusions follow settings)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from app.sandbox.zoom_webhooks import WebinarScenario
from tests.fixtures.databases import Database
from tests.fixtures.scenarios import deliver, wait_inbox_idle
from tests.fixtures.service import ACCOUNT_ID, ADMIN, PORTAL_ID, make_settings, running_app

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
        assert detail["sync_state"] == "off" and detail["skip_reason"] == "webinar_sync_off"
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


def _other_webinar(webinar_id: str, seed: int) -> WebinarScenario:
    """Another webinar of the same host (hostR)."""
    s = WebinarScenario(
        account_id=ACCOUNT_ID,
        webinar_id=webinar_id,
        host_id="hostR",
        host_email="r@hostco.com",
        topic=f"Other {webinar_id}",
        start=T0,
        seed=seed,
    )
    s.created(at=T0 - timedelta(days=4))
    s.register(f"reg{seed}@example.com", "Reg", "R", at=T0 - timedelta(days=2))
    return s


async def _skip_reason(client: httpx.AsyncClient, webinar_id: str) -> object:
    r = await client.get(f"{BASE}/webinars/{webinar_id}", headers=ADMIN)
    assert r.status_code == 200, r.text
    return r.json()["skip_reason"]


async def test_per_webinar_switch_overrides_host_default(database: Database) -> None:
    settings = make_settings(database, run_worker=True, worker_poll_interval_s=0.05)
    async with running_app(settings) as client:
        await client.patch(f"{BASE}/settings", headers=ADMIN, json={"webinar_sync_enabled": True})
        # The host becomes known through another webinar, and turns its default off...
        await deliver(client, _other_webinar("82000000099", 99).envelopes)
        await wait_inbox_idle(client)
        r = await client.patch(
            f"{BASE}/zoom-users/hostR", headers=ADMIN, json={"sync_new_webinars_by_default": False}
        )
        assert r.status_code == 200
        # ...so this webinar, scheduled afterwards, is not synced by default.
        await deliver(client, _scenario().envelopes)
        await wait_inbox_idle(client)
        assert (await _webinar(client))["skip_reason"] == "host_default_off"

        r = await client.patch(f"{BASE}/webinars/{WEBINAR}", headers=ADMIN, json={"sync_enabled": True})
        assert r.status_code == 200 and r.json()["sync_enabled"] is True
        await wait_inbox_idle(client)
        detail = await _webinar(client)
        assert detail["skip_reason"] is None
        counts = detail["counts"]
        assert isinstance(counts, dict) and counts["planned"] == 2

        r = await client.patch(f"{BASE}/webinars/{WEBINAR}", headers=ADMIN, json={"sync_enabled": "maybe"})
        assert r.status_code == 422
        r = await client.patch(f"{BASE}/webinars/99999", headers=ADMIN, json={"sync_enabled": True})
        assert r.status_code == 404


async def test_host_default_applies_to_webinars_first_seen_after_it_changed(database: Database) -> None:
    """S5: "sync data from newly scheduled webinars by default". Turning it off leaves the host's
    webinars already seen syncing (their data stays in every contact's counts); only webinars first
    seen afterwards follow the new default, and each webinar's own switch still rules."""
    settings = make_settings(database, run_worker=True, worker_poll_interval_s=0.05)
    async with running_app(settings) as client:
        await client.patch(f"{BASE}/settings", headers=ADMIN, json={"webinar_sync_enabled": True})
        await deliver(client, _scenario().envelopes)  # seen while the default is on
        await wait_inbox_idle(client)
        assert await _skip_reason(client, WEBINAR) is None

        r = await client.patch(
            f"{BASE}/zoom-users/hostR", headers=ADMIN, json={"sync_new_webinars_by_default": False}
        )
        assert r.status_code == 200
        await deliver(client, _other_webinar("82000000002", 2).envelopes)  # first seen now
        await wait_inbox_idle(client)
        assert await _skip_reason(client, WEBINAR) is None
        assert await _skip_reason(client, "82000000002") == "host_default_off"
        counts = (await _webinar(client))["counts"]
        assert isinstance(counts, dict) and counts["planned"] == 2  # nothing withdrawn

        # Turning the default on again does not switch on the webinar seen while it was off...
        r = await client.patch(
            f"{BASE}/zoom-users/hostR", headers=ADMIN, json={"sync_new_webinars_by_default": True}
        )
        assert r.status_code == 200
        await wait_inbox_idle(client)
        assert await _skip_reason(client, "82000000002") == "host_default_off"
        # ...its own switch does; and the first webinar's own switch turns it off.
        r = await client.patch(f"{BASE}/webinars/82000000002", headers=ADMIN, json={"sync_enabled": True})
        assert r.status_code == 200
        r = await client.patch(f"{BASE}/webinars/{WEBINAR}", headers=ADMIN, json={"sync_enabled": False})
        assert r.status_code == 200
        await wait_inbox_idle(client)
        assert await _skip_reason(client, "82000000002") is None
        assert await _skip_reason(client, WEBINAR) == "webinar_off"


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
