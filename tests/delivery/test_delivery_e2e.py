"""Webhooks in, HubSpot (the sandbox) out: contacts, P1-P4, timeline events, marketing events."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.sandbox.hubspot import create_hubspot_sandbox, sandbox_of
from app.sandbox.zoom_webhooks import WebinarScenario, shuffled_with_duplicates
from tests.fixtures.databases import Database
from tests.fixtures.scenarios import deliver
from tests.fixtures.service import ACCOUNT_ID, ADMIN, PORTAL_ID, make_settings, running_app

pytestmark = pytest.mark.anyio

HS_TOKEN = "hs-sandbox-token"
APP_ID = "1001"
T0 = datetime(2026, 4, 2, 15, 0, tzinfo=UTC)
WEBINAR = "84000000001"
MINUTE = timedelta(minutes=1)


def build() -> WebinarScenario:
    s = WebinarScenario(
        account_id=ACCOUNT_ID,
        webinar_id=WEBINAR,
        host_id="hostE",
        host_email="host@hostco.com",
        topic="Delivery webinar",
        start=T0,
        duration_minutes=60,
        seed=21,
    )
    s.created(at=T0 - timedelta(days=5))
    ids = {}
    for email, first in (
        ("ann@example.com", "Ann"),
        ("bob@example.com", "Bob"),
        ("cara@example.com", "Cara"),
        ("staff@ourco.io", "Staff"),  # a user of the HubSpot account (R2)
        ("alias@example.com", "Alias"),  # only a secondary email of an existing contact (R3)
        ("gone@example.com", "Gone"),  # a contact deleted in HubSpot (R4)
        ("not-an-email", "Bad"),  # R5
        ("me@excluded.example", "Mine"),  # S4 contact exclusion domain
    ):
        ids[email] = s.register(email, first, "Tester", at=T0 - timedelta(days=3))
    s.cancel(ids["bob@example.com"], at=T0 - timedelta(days=1))
    s.started(at=T0)
    ann = s.participant_for(ids["ann@example.com"])
    s.join(ann, at=T0)
    s.leave(ann, at=T0 + 30 * MINUTE)  # 30 of 60 minutes = 50%
    cara = s.participant_for(ids["cara@example.com"])
    s.join(cara, at=T0 + 10 * MINUTE)
    s.leave(cara, at=T0 + 20 * MINUTE)
    cara2 = s.rejoin_as(cara)
    s.join(cara2, at=T0 + 15 * MINUTE)  # overlaps the first session: union is 10..50 = 40 minutes
    s.leave(cara2, at=T0 + 50 * MINUTE)
    staff = s.participant_for(ids["staff@ourco.io"])
    s.join(staff, at=T0)
    s.leave(staff, at=T0 + 60 * MINUTE)
    guest = s.guest("Walk-in Guest")
    s.join(guest, at=T0 + 5 * MINUTE)
    s.leave(guest, at=T0 + 6 * MINUTE)
    s.ended(at=T0 + 60 * MINUTE)
    return s


def delivery_settings(db: Database, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "run_worker": True,
        "worker_poll_interval_s": 0.05,
        "hubspot_access_token": HS_TOKEN,
        "hubspot_api_base_url": "http://hubspot.test",
        "hubspot_app_id": APP_ID,
        "hubspot_rate_limit_per_10s": 1000,
        "dispatch_retry_base_s": 0.05,
        "hubspot_retry_base_s": 0.05,
    }
    values.update(overrides)
    return make_settings(db, **values)


def seeded_sandbox(**kwargs: Any) -> Any:
    sandbox_app = create_hubspot_sandbox(tokens={HS_TOKEN: PORTAL_ID}, app_id=APP_ID, **kwargs)
    state = sandbox_of(sandbox_app)
    portal = state.portal(PORTAL_ID)
    portal.users.clear()
    return sandbox_app


async def seed(http: httpx.AsyncClient) -> None:
    r = await http.post("/_sandbox/users", json={"portal": PORTAL_ID, "users": [{"email": "Staff@ourco.io"}]})
    assert r.status_code < 300, r.text
    r = await http.post(
        "/_sandbox/contacts",
        json={
            "portal": PORTAL_ID,
            "contacts": [
                {"email": "primary@example.com", "properties": {"hs_additional_emails": "alias@example.com"}},
                {"email": "gone@example.com", "archived": True},
            ],
        },
    )
    assert r.status_code < 300, r.text


async def wait_all_done(client: httpx.AsyncClient, timeout_s: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        body: dict[str, Any] = (await client.get("/api/v1/status", headers=ADMIN)).json()
        if body["pending"] == 0:
            return body
        if time.monotonic() > deadline:
            app = client.app  # type: ignore[attr-defined]
            engine = app.state.app_state.engine
            with engine.connect() as conn:
                rows = conn.exec_driver_sql(
                    "SELECT kind, target_key, attempts, last_error, next_attempt_at "
                    "FROM outbox_op WHERE state='pending'"
                ).all()
            raise AssertionError(f"work not finished after {timeout_s}s: {body}; pending: {rows}")
        await asyncio.sleep(0.1)


async def run_scenario(
    db: Database, envelopes: list[dict[str, Any]], **sandbox_kwargs: Any
) -> dict[str, Any]:
    sandbox_app = seeded_sandbox(**sandbox_kwargs)
    transport = httpx.ASGITransport(app=sandbox_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hubspot.test") as hs:
        await seed(hs)
        async with running_app(delivery_settings(db), hubspot_transport=transport) as client:
            r = await client.patch(
                f"/api/v1/portals/{PORTAL_ID}/settings",
                headers=ADMIN,
                json={"webinar_sync_enabled": True, "contact_exclusion_domains": ["excluded.example"]},
            )
            assert r.status_code == 200
            await deliver(client, envelopes)
            status = await wait_all_done(client)
            assert status["failed"] == 0 and status["dead"] == 0, status
            excluded = (
                await client.get(
                    f"/api/v1/portals/{PORTAL_ID}/webinars/{WEBINAR}/excluded-emails", headers=ADMIN
                )
            ).json()
            audit = (
                await client.get(f"/api/v1/portals/{PORTAL_ID}/webinars/{WEBINAR}/audit-log", headers=ADMIN)
            ).json()
        await hs.post("/_sandbox/faults", json={"error_rate": 0, "burst_429": 0, "down": False})
        state: dict[str, Any] = (await hs.get("/_sandbox/state", params={"portal": PORTAL_ID})).json()
    return {"state": state, "excluded": excluded, "audit": audit}


def hubspot_view(state: dict[str, Any]) -> dict[str, Any]:
    """What landed in HubSpot, without ids and times that differ between runs."""
    contacts = {c["properties"]["email"]: c for c in state["contacts"] if not c.get("archived")}
    by_id = {c["id"]: email for email, c in contacts.items()}
    props = (
        "firstname",
        "lastname",
        "zoom_webinar_average_attendance_percent",
        "zoom_last_registered_webinar_url",
        "zoom_webinar_registration_count",
        "zoom_webinar_attendance_count",
    )
    templates = {t["id"]: t["name"] for t in state.get("event_templates", state.get("templates", []))}
    events = sorted(
        (
            templates.get(e["eventTemplateId"], e["eventTemplateId"]),
            by_id.get(e["objectId"]),
            sorted(e["tokens"].items()),
        )
        for e in state["timeline_events"]
    )
    marketing = [
        {
            "event": (
                m["externalAccountId"],
                m["externalEventId"],
                m.get("eventName"),
                m.get("eventCompleted"),
            ),
            "states": sorted(
                (by_id.get(cid), a["state"], a["attended"], a["joinedAt"], a["leftAt"])
                for cid, a in m["attendance"].items()
            ),
        }
        for m in state["marketing_events"]
    ]
    return {
        "contacts": {e: {p: c["properties"].get(p) for p in props} for e, c in sorted(contacts.items())},
        "events": events,
        "marketing": marketing,
    }


async def test_scenario_lands_in_hubspot(database: Database) -> None:
    out = await run_scenario(database, build().envelopes)
    view = hubspot_view(out["state"])
    contacts = view["contacts"]
    # Only the three allowed people became (or touched) contacts; the pre-existing one is untouched.
    assert set(contacts) == {"ann@example.com", "bob@example.com", "cara@example.com", "primary@example.com"}
    ann, bob, cara = contacts["ann@example.com"], contacts["bob@example.com"], contacts["cara@example.com"]
    assert (ann["firstname"], ann["lastname"]) == ("Ann", "Tester")
    # P3: registrations not cancelled; P4: webinars attended; P1: 30/60 min = 50.0, union 40/60 = 66.7
    assert (ann["zoom_webinar_registration_count"], ann["zoom_webinar_attendance_count"]) == ("1", "1")
    assert float(ann["zoom_webinar_average_attendance_percent"]) == 50.0
    assert float(cara["zoom_webinar_average_attendance_percent"]) == 66.7
    assert (bob["zoom_webinar_registration_count"], bob["zoom_webinar_attendance_count"]) == ("0", "0")
    assert bob["zoom_webinar_average_attendance_percent"] in (None, "")
    assert ann["zoom_last_registered_webinar_url"]  # P2: the webinar's URL
    # Timeline: a registration event for each of the three (E3), attendance for the two attendees (E2).
    kinds = [(name, who) for name, who, _ in view["events"]]
    assert sorted(kinds) == sorted(
        [
            ("Zoom webinar registration", "ann@example.com"),
            ("Zoom webinar registration", "bob@example.com"),
            ("Zoom webinar registration", "cara@example.com"),
            ("Zoom webinar attendance", "ann@example.com"),
            ("Zoom webinar attendance", "cara@example.com"),
        ]
    )
    att = {who: dict(tokens) for name, who, tokens in view["events"] if name == "Zoom webinar attendance"}
    assert att["cara@example.com"]["attendance_duration_seconds"] in ("2400", 2400)
    assert float(att["cara@example.com"]["attendance_percent"]) == 66.7
    # Marketing event: created, completed, one state per contact.
    [marketing] = view["marketing"]
    assert marketing["event"][:3] == (ACCOUNT_ID, WEBINAR, "Delivery webinar")
    assert marketing["event"][3] is True
    states = {who: (state, attended) for who, state, attended, _, _ in marketing["states"]}
    assert states == {
        "ann@example.com": ("attend", True),
        "bob@example.com": ("cancel", False),
        "cara@example.com": ("attend", True),
    }
    # Every exclusion has its reason (A3) ...
    reasons = sorted((e["email"] or "", e["reason"]) for e in out["excluded"])
    assert reasons == [
        ("", "no_email"),
        ("alias@example.com", "secondary_email"),
        ("gone@example.com", "deleted_contact"),
        ("me@excluded.example", "excluded_domain"),
        ("not-an-email", "invalid_email"),
        ("staff@ourco.io", "hubspot_user"),
    ]
    # ... and the audit log counts them and names what was delivered.
    codes = {a["code"]: a for a in out["audit"]}
    assert codes["emails_excluded"]["details"]["counts"] == {
        "deleted_contact": 1,
        "excluded_domain": 1,
        "hubspot_user": 1,
        "invalid_email": 1,
        "secondary_email": 1,
    }
    assert codes["hubspot_synced"]["status"] == "success"


async def test_duplicated_shuffled_and_faulty_delivery_converges(database: Database, tmp_path: Any) -> None:
    clean = hubspot_view((await run_scenario(database, build().envelopes))["state"])
    from tests.fixtures.databases import truncate_all

    truncate_all(database.engine)
    noisy = await run_scenario(
        database, shuffled_with_duplicates(build().envelopes, seed=5), error_rate=0.2, burst_429=5, seed=9
    )
    assert hubspot_view(noisy["state"]) == clean
    stats = noisy["state"]["stats"]
    assert stats["throttled"] >= 1 or stats.get("faults", 0) >= 1
