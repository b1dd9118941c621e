"""The sync engine end to end: signed webhooks in, local model, plans, exclusions and audit out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from app.sandbox.zoom_webhooks import WebinarScenario, shuffled_with_duplicates
from tests.fixtures.databases import Database, truncate_all
from tests.fixtures.scenarios import deliver, snapshot, wait_inbox_idle
from tests.fixtures.service import ACCOUNT_ID, ADMIN, PORTAL_ID, make_settings, running_app

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
MAIN, EXCLUDED_HOST, DEFAULT_OFF, EVENTS = "81000000001", "81000000002", "81000000003", "81000000004"
EARLIER = "81000000005"  # hostC's webinar seen before hostC's default went off: it keeps syncing (S5)


def _webinar(webinar_id: str, host_id: str, host_email: str, seed: int) -> WebinarScenario:
    return WebinarScenario(
        account_id=ACCOUNT_ID,
        webinar_id=webinar_id,
        host_id=host_id,
        host_email=host_email,
        topic=f"Webinar {webinar_id}",
        start=T0,
        duration_minutes=60,
        seed=seed,
    )


def build_scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """(created events, everything else, expectations)."""
    main = _webinar(MAIN, "hostA", "host@hostco.com", 1)
    earlier = _webinar(EARLIER, "hostC", "carol@hostco.com", 5)
    created = [earlier.created(at=T0 - timedelta(days=9)), main.created(at=T0 - timedelta(days=7))]
    emails = [f"user{i}@example.com" for i in range(47)] + [
        "not-an-email",
        "me@ourco.com",
        "Mixed.Case@Example.org",
    ]
    ids = [
        main.register(e, f"First{i}", f"Last{i}", at=T0 - timedelta(days=6, minutes=-i))
        for i, e in enumerate(emails)
    ]
    for rid in ids[:3]:
        main.cancel(rid, at=T0 - timedelta(days=1))
    main.started(at=T0)
    attendees = ids[3:33]  # 30 attendees, of whom 5 rejoin
    for n, rid in enumerate(attendees):
        p = main.participant_for(rid)
        main.join(p, at=T0 + timedelta(minutes=1 + n % 5))
        if n < 5:
            main.leave(p, at=T0 + timedelta(minutes=20))
            p = main.rejoin_as(p)
            main.join(p, at=T0 + timedelta(minutes=25))
        main.leave(p, at=T0 + timedelta(minutes=55 + n % 5))
    guest = main.guest("Anonymous Guest")
    main.join(guest, at=T0 + timedelta(minutes=2))
    main.leave(guest, at=T0 + timedelta(minutes=30))
    main.ended(at=T0 + timedelta(minutes=62))

    excluded_host = _webinar(EXCLUDED_HOST, "hostB", "boss@excludedhost.com", 2)
    created.append(excluded_host.created(at=T0 - timedelta(days=7)))
    excluded_host.register("someone@example.net", "Some", "One", at=T0 - timedelta(days=2))

    default_off = _webinar(DEFAULT_OFF, "hostC", "carol@hostco.com", 3)
    default_off_created = default_off.created(at=T0 - timedelta(days=7))
    default_off.register("other@example.net", "Oth", "Er", at=T0 - timedelta(days=2))

    events = _webinar(EVENTS, "hostD", "dave@hostco.com", 4)
    ev_created = events.created(at=T0 - timedelta(days=7))
    ev_created["payload"]["object"]["creation_source"] = "zoom_events"
    created.append(ev_created)
    events.register("third@example.net", "Thi", "Rd", at=T0 - timedelta(days=2))

    # hostC's default goes off between `created` and `rest`: DEFAULT_OFF is first seen after that.
    rest: list[dict[str, Any]] = [default_off_created]
    for s in (main, excluded_host, default_off, events):
        rest.extend(e for e in s.envelopes if e["event"] != "webinar.created")
    expect = {"registrants": 50, "cancelled": 3, "attendees": 31, "allowed_attendees": 30}
    return created, rest, expect


async def _run(client: httpx.AsyncClient, created: list[Any], rest: list[Any]) -> None:
    r = await client.patch(
        f"/api/v1/portals/{PORTAL_ID}/settings",
        headers=ADMIN,
        json={
            "webinar_sync_enabled": True,
            "contact_exclusion_domains": ["ourco.com"],
            "exclusion_domains": ["excludedhost.com"],
        },
    )
    assert r.status_code == 200, r.text
    await deliver(client, created)
    await wait_inbox_idle(client)
    r = await client.patch(
        f"/api/v1/portals/{PORTAL_ID}/zoom-users/hostC",
        headers=ADMIN,
        json={"sync_new_webinars_by_default": False},
    )
    assert r.status_code == 200, r.text
    await deliver(client, rest)
    await wait_inbox_idle(client)


async def test_scenario_and_its_shuffled_duplicated_replay_converge(database: Database) -> None:
    created, rest, expect = build_scenario()
    settings = make_settings(database, run_worker=True, worker_poll_interval_s=0.05)
    async with running_app(settings) as client:
        await _run(client, created, rest)
        await _check_outcome(client, expect)
    first = snapshot(database.engine)

    truncate_all(database.engine)
    async with running_app(settings) as client:
        await _run(client, shuffled_with_duplicates(created, seed=7), shuffled_with_duplicates(rest, seed=8))
        await _check_outcome(client, expect)
    second = snapshot(database.engine)
    for table in first:
        assert first[table] == second[table], table


async def _check_outcome(client: httpx.AsyncClient, expect: dict[str, Any]) -> None:
    base = f"/api/v1/portals/{PORTAL_ID}/webinars"
    main = (await client.get(f"{base}/{MAIN}", headers=ADMIN)).json()
    counts = main["counts"]
    assert main["sync_state"] == "syncing"
    assert main["actual_end_at"] is not None
    assert counts["registrants"] == expect["registrants"]
    assert counts["cancelled"] == expect["cancelled"]
    assert counts["attendees"] == expect["attendees"]  # 30 registrants + 1 guest
    assert counts["excluded_by_reason"] == {
        "excluded_domain": 1,
        "invalid_email": 1,
        "participant_no_email": 1,
    }
    assert counts["planned"] == 48  # 50 registrants less the two excluded

    excluded = (await client.get(f"{base}/{MAIN}/excluded-emails", headers=ADMIN)).json()
    assert sorted((e["email"] or "", e["reason"]) for e in excluded) == [
        ("", "no_email"),
        ("me@ourco.com", "excluded_domain"),
        ("not-an-email", "invalid_email"),
    ]

    audit = (await client.get(f"{base}/{MAIN}/audit-log", headers=ADMIN)).json()
    by_code = {a["code"]: a for a in audit}
    assert by_code["emails_excluded"]["status"] == "warning"
    assert by_code["emails_excluded"]["details"]["counts"] == {"excluded_domain": 1, "invalid_email": 1}
    assert by_code["participants_not_synced"]["details"]["counts"] == {"no_email": 1}
    assert by_code["webinar_synced"]["status"] == "success"
    assert len(audit) == 3  # aggregated: one entry per cause, not one per email

    for webinar_id, code, reason in (
        (EXCLUDED_HOST, "sync_disabled", "host_excluded_domain"),
        (DEFAULT_OFF, "sync_disabled", "host_default_off"),
        (EVENTS, "unsupported_webinar", None),
    ):
        detail = (await client.get(f"{base}/{webinar_id}", headers=ADMIN)).json()
        assert detail["sync_state"] == "off", webinar_id
        entries = (await client.get(f"{base}/{webinar_id}/audit-log", headers=ADMIN)).json()
        assert [e["code"] for e in entries] == [code], webinar_id
        if reason is not None:
            assert entries[-1]["details"]["reason"] == reason
        assert detail["counts"]["planned"] == 0

    status = (await client.get("/api/v1/status", headers=ADMIN)).json()
    # The outbox holds what HubSpot must receive (delivered by the dispatcher).
    # contact + marketing state + registration event for 48 people, E2 for 30 attendees, the main
    # webinar's marketing event and its completion, and the marketing event of hostC's webinar seen
    # before its default went off (it still syncs).
    assert status["outbox"]["pending"] == 48 * 3 + expect["allowed_attendees"] + 2 + 1
    assert status["inbox"]["failed"] == 0 and status["inbox"]["dead"] == 0
