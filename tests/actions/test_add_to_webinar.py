"""The workflow action end to end: HubSpot's signed request in, Zoom (sandbox) registration, the
answer, the webhook round trip and the contact's P2 in HubSpot (sandbox)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import text

from app.actions.rules import HOST_MESSAGE
from tests.fixtures.databases import Database
from tests.fixtures.e2e import (
    ACTION_PATH,
    HOST_EMAIL,
    ZOOM_CLIENT_ID,
    ZOOM_CLIENT_SECRET,
    Harness,
    action_body,
    harness,
    hubspot_sandbox_app,
    run_action,
    signed_action,
    zoom_sandbox_app,
)
from tests.fixtures.service import ACCOUNT_ID, ADMIN, PORTAL_ID

pytestmark = pytest.mark.anyio


# The tests of BLOCK answer within production's budget (the other tests have a generous one).
PRODUCTION_BUDGET_S = 0.6


async def new_webinar(h: Harness, **fields: Any) -> str:
    created = await h.zoom.create_webinar(topic=fields.pop("topic", "Action webinar"), **fields)
    return str(created.result["id"])


def registrants(h: Harness, webinar_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = zoom_webinar(h, webinar_id)["registrants"]
    return [r for r in found if r.get("status") != "cancelled"]


def zoom_webinar(h: Harness, webinar_id: str) -> dict[str, Any]:
    webinar: dict[str, Any] = h.zoom.webinar_snapshot(h.zoom.webinar(webinar_id))
    return webinar


def count(db: Database, sql: str) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(text(sql)).scalar_one())


async def test_success_registers_and_refreshes_p2(database: Database) -> None:
    async with harness(database) as h:
        await h.settings_patch(webinar_sync_enabled=True)
        wid = await new_webinar(h)
        out = await run_action(h.client, action_body("cb-ok-1", f"{wid[:3]} {wid[3:7]}-{wid[7:]}"))
        assert out["hs_execution_state"] == "SUCCESS", out
        assert out["registrant_id"] and out["join_url"].startswith("https://")
        [reg] = registrants(h, wid)
        assert (reg["email"], reg["first_name"], reg["last_name"]) == ("ada@example.com", "Ada", "Lovelace")
        assert reg["id"] == out["registrant_id"]
        await h.wait_done()
        # The webhook round trip (registration_created from Zoom) did not double the registration.
        assert count(database, "SELECT count(*) FROM registration") == 1
        contact = h.contact("ada@example.com")
        assert contact is not None
        webinar = zoom_webinar(h, wid)
        assert contact["zoom_last_registered_webinar_url"] == webinar["registration_url"]  # P2
        assert contact["zoom_webinar_registration_count"] == "1"  # P3
        deliveries = [d for d in h.zoom.deliveries if d.event == "webinar.registration_created"]
        assert deliveries and all(d.status_code == 200 for d in deliveries)


async def test_same_callback_id_registers_once(database: Database) -> None:
    async with harness(database) as h:
        wid = await new_webinar(h)
        first = await run_action(h.client, action_body("cb-dup", wid))
        again = await run_action(h.client, action_body("cb-dup", wid))
        assert again == first and first["hs_execution_state"] == "SUCCESS"
        assert len(registrants(h, wid)) == 1
        assert h.zoom.stats.requests["POST /v2/webinars/{webinar_id}/registrants"] == 1
        await h.wait_done()  # the answer is recorded right after it is sent
        assert count(database, "SELECT count(*) FROM action_execution") == 1
        third = await run_action(h.client, action_body("cb-dup", wid))  # now from the stored record
        assert third == first and len(registrants(h, wid)) == 1


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("letters", "invalid_webinar_id"),
        ("unknown", "webinar_not_found"),
        ("no_registration", "registration_not_enabled"),
        ("extra_fields", "extra_required_fields"),
        ("host", "host_cannot_register"),
        ("business_unit", "not_primary_business_unit"),
        ("no_email", "missing_contact_fields"),
        ("global_off", "sync_disabled"),
        ("over", "zoom_error"),
        ("unknown_portal", "zoom_error"),
    ],
)
async def test_failure_codes(database: Database, case: str, code: str) -> None:
    async with harness(database) as h:
        wid = await new_webinar(
            h,
            approval_type=2 if case == "no_registration" else 0,
            questions=[{"field_name": "phone", "required": True}] if case == "extra_fields" else [],
            custom_questions=[{"title": "Company size?", "required": True}] if case == "extra_fields" else [],
        )
        body = action_body(f"cb-{case}", wid)
        if case == "letters":
            body = action_body("cb-letters", "webinar 12")
        elif case == "unknown":
            body = action_body("cb-unknown", "99999999999")
        elif case == "host":
            body = action_body("cb-host", wid, email=HOST_EMAIL.upper())
        elif case == "business_unit":
            body = action_body("cb-bu", wid, business_units="12;34")
        elif case == "no_email":
            body = action_body("cb-no-email", wid, email=None)
        elif case == "global_off":
            await h.settings_patch(global_sync_enabled=False)
        elif case == "over":
            await h.zoom.start(wid)
            await h.zoom.end(wid)
        elif case == "unknown_portal":
            body = action_body("cb-portal", wid, portal_id=999)
        out = await run_action(h.client, body)
        assert out["hs_execution_state"] == "FAIL_CONTINUE", out
        assert out["error_code"] == code, out
        assert out["error_message"]
        if case == "host":
            assert out["error_message"] == HOST_MESSAGE
        if case == "extra_fields":
            assert "phone" in out["error_message"] and "Company size?" in out["error_message"]
        assert registrants(h, wid) == []


async def test_primary_business_unit_contact_registers(database: Database) -> None:
    async with harness(database) as h:
        wid = await new_webinar(h)
        out = await run_action(h.client, action_body("cb-bu0", wid, business_units="0;12"))
        assert out["hs_execution_state"] == "SUCCESS"


async def test_business_units_per_connection(database: Database) -> None:
    """W3 per connection: portal 4242 (env, primary business unit 0) and portal 5252, whose one
    connection serves business unit 7 with another Zoom account; 4242 also serves unit 7 through
    that account. Each contact registers in the account of its business unit's connection."""
    other_portal, other_account = 5252, "acct_unit_seven"
    accounts = {ACCOUNT_ID: (ZOOM_CLIENT_ID, ZOOM_CLIENT_SECRET), other_account: ("client-7", "secret-7")}
    async with harness(
        database, zoom_kwargs={"accounts": accounts}, app_secret_key="business-unit-test-key"
    ) as h:
        for portal_id in (other_portal, PORTAL_ID):
            body = {
                "zoom_account_id": other_account,
                "hubspot_portal_id": portal_id,
                "business_unit_id": 7,
                "primary": False,
                "zoom_client_id": "client-7",
                "zoom_client_secret": "secret-7",
            }
            r = await h.client.post("/api/v1/connections", json=body, headers=ADMIN)
            assert r.status_code == 201, r.text
        main_wid = await new_webinar(h)
        unit_wid = str((await h.zoom.create_webinar(account_id=other_account, topic="Unit 7")).result["id"])

        async def state(callback: str, wid: str, units: str | None, portal_id: int) -> dict[str, str]:
            body = action_body(callback, wid, business_units=units, portal_id=portal_id)
            return await run_action(h.client, body)

        # Portal 5252: only unit 7 is connected.
        assert (await state("w3-1", unit_wid, "7", other_portal))["hs_execution_state"] == "SUCCESS"
        for n, units in enumerate(("0", None, "12")):
            out = await state(f"w3-2-{n}", unit_wid, units, other_portal)
            assert out["error_code"] == "not_primary_business_unit", out
        # Portal 4242: unit 0 reaches the env account, unit 7 the other one, unit 12 nothing.
        assert (await state("w3-3", main_wid, "0", PORTAL_ID))["hs_execution_state"] == "SUCCESS"
        assert (await state("w3-4", unit_wid, "7", PORTAL_ID))["hs_execution_state"] == "SUCCESS"
        out = await state("w3-5", main_wid, "7", PORTAL_ID)  # unit 7's account has no such webinar
        assert out["error_code"] == "webinar_not_found", out
        assert (await state("w3-6", main_wid, "12", PORTAL_ID))["error_code"] == "not_primary_business_unit"
        assert len(registrants(h, unit_wid)) == 1  # the same contact, registered once per webinar
        assert len(registrants(h, main_wid)) == 1


async def test_bad_requests_are_refused_and_nothing_is_done(database: Database) -> None:
    async with harness(database) as h:
        wid = await new_webinar(h)
        body = action_body("cb-bad", wid)
        raw, headers = signed_action(body)
        unsigned = {"content-type": "application/json"}
        r = await h.client.post(ACTION_PATH, content=raw, headers=unsigned)
        assert r.status_code == 401 and "missing" in r.json()["detail"]
        r = await h.client.post(ACTION_PATH, content=raw, headers=signed_action(body, secret="wrong")[1])
        assert r.status_code == 401 and "does not match" in r.json()["detail"]
        stale = signed_action(body, timestamp_ms=int(time.time() * 1000) - 6 * 60 * 1000)[1]
        r = await h.client.post(ACTION_PATH, content=raw, headers=stale)
        assert r.status_code == 401 and "5 minutes" in r.json()["detail"]
        r = await h.client.post(ACTION_PATH, content=raw + b" ", headers=headers)  # body changed in transit
        assert r.status_code == 401
        bad_raw, bad_headers = signed_action(b'{"callbackId": "x"}')
        r = await h.client.post(ACTION_PATH, content=bad_raw, headers=bad_headers)
        assert r.status_code == 400 and "portalId" in r.json()["detail"]
        bad_raw, bad_headers = signed_action(b"{not json")
        r = await h.client.post(ACTION_PATH, content=bad_raw, headers=bad_headers)
        assert r.status_code == 400 and "JSON" in r.json()["detail"]
        assert count(database, "SELECT count(*) FROM action_execution") == 0
        assert registrants(h, wid) == []


async def test_action_disabled_without_client_secret(database: Database) -> None:
    async with harness(database, hubspot_client_secret=None) as h:
        raw, headers = signed_action(action_body("cb-off", "123"))
        r = await h.client.post(ACTION_PATH, content=raw, headers=headers)
        assert r.status_code == 503 and "HUBSPOT_CLIENT_SECRET" in r.json()["detail"]


def callbacks_for(h: Harness, callback_id: str) -> list[dict[str, str]]:
    return [c.output_fields for c in h.hubspot.portal(PORTAL_ID).callbacks if c.callback_id == callback_id]


async def test_block_when_zoom_rate_limits_then_complete_by_callback(database: Database) -> None:
    async with harness(
        database, zoom_kwargs={"retry_after": "seconds"}, action_sync_budget_s=PRODUCTION_BUDGET_S
    ) as h:
        wid = await new_webinar(h)
        await h.zoom_http.post("/_sandbox/faults", json={"burst_429": 3})
        out = await run_action(h.client, action_body("cb-block", wid))
        assert out["hs_execution_state"] == "BLOCK", out
        assert out["hs_expiration_duration"]
        # HubSpot retrying the request meanwhile gets BLOCK again, and no second registration.
        again = await run_action(h.client, action_body("cb-block", wid))
        assert again["hs_execution_state"] == "BLOCK"
        status = await h.wait_done(timeout_s=60)
        assert status["actions"] == {"blocked": 0, "callbacks": 0, "callbacks_failed": 0}
        [result] = callbacks_for(h, "cb-block")
        assert result["hs_execution_state"] == "SUCCESS" and result["registrant_id"]
        assert len(registrants(h, wid)) == 1


async def test_callback_completes_through_the_2026_03_route_when_the_legacy_one_is_gone(
    database: Database,
) -> None:
    async with harness(
        database, zoom_kwargs={"retry_after": "seconds"}, action_sync_budget_s=PRODUCTION_BUDGET_S
    ) as h:
        r = await h.hs_http.post("/_sandbox/faults", json={"legacy_callbacks_gone": True})
        assert r.status_code == 200 and r.json()["legacy_callbacks_gone"] is True
        wid = await new_webinar(h)
        await h.zoom_http.post("/_sandbox/faults", json={"burst_429": 3})
        out = await run_action(h.client, action_body("cb-dated", wid))
        assert out["hs_execution_state"] == "BLOCK", out
        status = await h.wait_done(timeout_s=60)
        assert status["actions"] == {"blocked": 0, "callbacks": 0, "callbacks_failed": 0}
        [result] = callbacks_for(h, "cb-dated")
        assert result["hs_execution_state"] == "SUCCESS" and result["registrant_id"]
        requests = h.hubspot.stats.requests
        assert any("2026-03" in key for key in requests), dict(requests)


async def test_block_survives_a_restart(database: Database) -> None:
    zoom_app = zoom_sandbox_app()
    hubspot_app = hubspot_sandbox_app()
    async with harness(
        database, zoom_app=zoom_app, hubspot_app=hubspot_app, action_sync_budget_s=PRODUCTION_BUDGET_S
    ) as h:
        wid = await new_webinar(h)
        await h.zoom_http.post("/_sandbox/faults", json={"down": True})
        out = await run_action(h.client, action_body("cb-restart", wid))
        assert out["hs_execution_state"] == "BLOCK"
    # The service stopped with the execution blocked; Zoom comes back; a new process completes it.
    async with harness(database, zoom_app=zoom_app, hubspot_app=hubspot_app) as h:
        await h.zoom_http.post("/_sandbox/faults", json={"down": False})
        await h.wait_done(timeout_s=60)
        [result] = callbacks_for(h, "cb-restart")
        assert result["hs_execution_state"] == "SUCCESS"
        assert len(registrants(h, wid)) == 1


async def test_status_counts_blocked_actions(database: Database) -> None:
    async with harness(database, action_sync_budget_s=PRODUCTION_BUDGET_S) as h:
        wid = await new_webinar(h)
        await h.zoom_http.post("/_sandbox/faults", json={"down": True})
        out = await run_action(h.client, action_body("cb-count", wid))
        assert out["hs_execution_state"] == "BLOCK"
        body = (await h.client.get("/api/v1/status", headers=ADMIN)).json()
        assert body["actions"]["blocked"] == 1 and body["pending"] >= 1
        await h.zoom_http.post("/_sandbox/faults", json={"down": False})
        await h.wait_done(timeout_s=60)
