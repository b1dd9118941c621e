"""Whatever order Zoom's deliveries arrive in, HubSpot ends up the same.

A property test: one webinar with every registration status path, rejoins, overlapping devices, an
open session, a walk-in and a guest is delivered in order once, then in random orders with duplicates
(some re-serialised, so they are stored twice) and a share held back and re-sent late, as Zoom does
after an outage of ours. Every run must leave one identical HubSpot sandbox snapshot: contacts and
their properties (names included), timeline events with their tokens and timestamps, the marketing
event with each contact's state, interaction time, joinedAt and leftAt. Timeline events and marketing
states are immutable or "latest interaction wins" at HubSpot, so a value sent too early would stay.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from app.sandbox.zoom_webhooks import Participant, WebinarScenario, make_delivery, reserialize
from tests.fixtures.databases import Database, truncate_all
from tests.fixtures.delivery import delivery_settings, seeded_sandbox, wait_all_done
from tests.fixtures.hubspot_views import hubspot_snapshot
from tests.fixtures.service import ACCOUNT_ID, ADMIN, PORTAL_ID, ZOOM_SECRET, running_app

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 6, 3, 14, 0, tzinfo=UTC)
WEBINAR = "86000000001"
MIN = timedelta(minutes=1)
# Quiet period before attendance counts as final; held-back deliveries come back well within it.
SETTLE_S = 2.0
LATE_AFTER_S = 0.4


def scenario() -> list[dict[str, Any]]:
    s = WebinarScenario(
        account_id=ACCOUNT_ID,
        webinar_id=WEBINAR,
        host_id="hostV",
        host_email="host@hostco.com",
        topic="Convergence webinar",
        start=T0,
        duration_minutes=60,
        seed=5,
    )
    s.created(at=T0 - timedelta(days=10))
    day = timedelta(days=1)
    reg = {}
    for n, (email, first, status) in enumerate(
        (
            ("ann@example.com", "Ann", "approved"),  # attends, leaves, rejoins until the end
            ("bob@example.com", "Bob", "pending"),  # pending -> approved, attends
            ("cara@example.com", "Cara", "pending"),  # pending -> denied
            ("dan@example.com", "Dan", "approved"),  # approved -> cancelled
            ("eve@example.com", "Eve", "pending"),  # pending -> approved -> cancelled by the host
            ("fay@example.com", "Fay", "pending"),  # stays pending
            ("gus@example.com", "Gus", "approved"),  # two overlapping devices
            ("hal@example.com", "Hal", "approved"),  # no-show
            ("ivy@example.com", "Ivy", "approved"),  # joins, her leave never comes: open until the end
            ("kim@example.com", "Kim", "approved"),  # a contact whose first name HubSpot already has
            ("lee@example.com", "Lee", "approved"),  # a contact HubSpot has without names
        )
    ):
        reg[email] = s.register(email, first, "Tester", at=T0 - 9 * day + n * MIN, status=status)
    s.approve(reg["bob@example.com"], at=T0 - 8 * day)
    s.deny(reg["cara@example.com"], at=T0 - 8 * day)
    s.cancel(reg["dan@example.com"], at=T0 - 7 * day)
    s.approve(reg["eve@example.com"], at=T0 - 8 * day)
    s.cancel(reg["eve@example.com"], at=T0 - 6 * day, by_host=True)
    s.started(at=T0)
    ann = s.participant_for(reg["ann@example.com"])
    s.join(ann, at=T0 + 2 * MIN)
    s.leave(ann, at=T0 + 30 * MIN)
    ann2 = s.rejoin_as(ann)
    s.join(ann2, at=T0 + 40 * MIN)
    s.leave(ann2, at=T0 + 60 * MIN)
    bob = s.participant_for(reg["bob@example.com"])
    s.join(bob, at=T0 + 10 * MIN)
    s.leave(bob, at=T0 + 50 * MIN)
    gus = s.participant_for(reg["gus@example.com"])
    gus2 = s.rejoin_as(gus)  # a second device while the first is still in
    s.join(gus, at=T0 + 5 * MIN)
    s.join(gus2, at=T0 + 15 * MIN)
    s.leave(gus, at=T0 + 20 * MIN)
    s.leave(gus2, at=T0 + 45 * MIN)
    ivy = s.participant_for(reg["ivy@example.com"])
    s.join(ivy, at=T0 + 20 * MIN)
    for email, start, end in (("kim@example.com", 0, 12), ("lee@example.com", 30, 59)):
        p = s.participant_for(reg[email])
        s.join(p, at=T0 + start * MIN)
        s.leave(p, at=T0 + end * MIN)
    walk_in = Participant("Walk In", "walkin@example.com", None, "777001", "WALK-IN-UUID")
    s.join(walk_in, at=T0 + 5 * MIN)
    s.leave(walk_in, at=T0 + 25 * MIN)
    guest = s.guest("Anonymous")
    s.join(guest, at=T0 + 1 * MIN)
    s.leave(guest, at=T0 + 9 * MIN)
    s.ended(at=T0 + 60 * MIN)
    return [dict(e) for e in s.envelopes]


async def post(client: httpx.AsyncClient, deliveries: Sequence[Any], concurrency: int) -> None:
    semaphore = asyncio.Semaphore(concurrency)

    async def one(d: Any) -> None:
        async with semaphore:
            r = await client.post("/webhooks/zoom", content=d.body, headers=d.headers)
        assert r.status_code == 200, r.text

    await asyncio.gather(*(one(d) for d in deliveries))


async def deliver_ordered(client: httpx.AsyncClient, envelopes: list[dict[str, Any]]) -> None:
    await post(client, [make_delivery(ZOOM_SECRET, e) for e in envelopes], concurrency=1)


async def deliver_disordered(client: httpx.AsyncClient, envelopes: list[dict[str, Any]], seed: int) -> None:
    """Shuffled, a third duplicated (half of those re-serialised: a second stored row), a quarter held
    back and re-sent a moment later (with some duplicates of what already arrived)."""
    rng = random.Random(seed)
    deliveries = [make_delivery(ZOOM_SECRET, e) for e in envelopes]
    extra = [
        reserialize(d, ZOOM_SECRET) if rng.random() < 0.5 else d
        for d in rng.sample(deliveries, len(deliveries) // 3)
    ]
    everything = deliveries + extra
    rng.shuffle(everything)
    cut = len(everything) // 4
    late, now = everything[:cut], everything[cut:]
    await post(client, now, concurrency=8)
    await asyncio.sleep(LATE_AFTER_S)
    await post(client, late + rng.sample(now, 5), concurrency=8)


async def run(database: Database, deliver: Any) -> dict[str, Any]:
    truncate_all(database.engine)
    sandbox_app = seeded_sandbox()
    transport = httpx.ASGITransport(app=sandbox_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hubspot.test") as hs:
        r = await hs.post(
            "/_sandbox/contacts",
            json={
                "portal": PORTAL_ID,
                "contacts": [
                    {"email": "kim@example.com", "properties": {"firstname": "Kimberly"}},
                    {"email": "lee@example.com", "properties": {}},
                ],
            },
        )
        assert r.status_code < 300, r.text
        settings = delivery_settings(database, attendance_settle_s=SETTLE_S)
        async with running_app(settings, hubspot_transport=transport) as client:
            r = await client.patch(
                f"/api/v1/portals/{PORTAL_ID}/settings", headers=ADMIN, json={"webinar_sync_enabled": True}
            )
            assert r.status_code == 200, r.text
            await deliver(client)
            status = await wait_all_done(client)
            assert status["failed"] == 0 and status["dead"] == 0, status
        state: dict[str, Any] = (await hs.get("/_sandbox/state", params={"portal": PORTAL_ID})).json()
    return hubspot_snapshot(state)


@pytest.mark.slow
async def test_any_delivery_order_gives_the_ordered_deliverys_hubspot_snapshot(database: Database) -> None:
    envelopes = scenario()
    ordered = await run(database, lambda client: deliver_ordered(client, envelopes))
    for seed in (1, 2, 3):
        disordered = await run(
            database, lambda client, seed=seed: deliver_disordered(client, envelopes, seed)
        )
        for part in ordered:
            assert disordered[part] == ordered[part], (seed, part)
    check_expected_values(ordered)


def check_expected_values(snapshot: dict[str, Any]) -> None:
    """The one snapshot is also the right one (not merely the same wrong one every time)."""
    contacts = {email: dict(props) for email, props in snapshot["contacts"]}
    assert (
        contacts["ann@example.com"]["zoom_webinar_average_attendance_percent"] == "80.0"
    )  # 28 + 20 of 60 minutes
    assert contacts["gus@example.com"]["zoom_webinar_average_attendance_percent"] == "66.7"  # 5..45 of 60
    assert contacts["ivy@example.com"]["zoom_webinar_average_attendance_percent"] == "66.7"  # 20..end
    # Names: filled where HubSpot had none, also for a contact first met through attendance; never
    # overwritten where HubSpot has one.
    assert (contacts["kim@example.com"]["firstname"], contacts["kim@example.com"]["lastname"]) == (
        "Kimberly",
        "Tester",
    )
    for email in ("ann@example.com", "bob@example.com", "lee@example.com"):
        assert contacts[email]["firstname"] and contacts[email]["lastname"] == "Tester", email
    assert "firstname" not in contacts["walkin@example.com"]  # no registration: no name known
    assert contacts["cara@example.com"]["zoom_webinar_registration_count"] == "0"  # denied
    # Every registration Zoom created has its event, whatever its status became; attendance events
    # for the seven attendees with an email.
    by_template: dict[str, int] = {}
    for _, template_id, *_ in snapshot["timeline_events"]:
        by_template[template_id] = by_template.get(template_id, 0) + 1
    assert sorted(by_template.values()) == [7, 11]
    [marketing] = snapshot["marketing_events"]
    states = {row[0]: row for row in marketing["attendance"]}
    assert states["ivy@example.com"][1] == "attend"
    left_at = datetime.fromisoformat(states["ivy@example.com"][5].replace("Z", "+00:00"))
    assert left_at == T0 + 60 * MIN  # her open session closes at the webinar's end, never at "now"
    assert {states[e][1] for e in ("cara@example.com", "dan@example.com", "eve@example.com")} == {"cancel"}
    assert states["fay@example.com"][1] == "register"


# ---- each rule on its own (each of these failed before the rule) -----------------------------------


def _envelope(envelopes: list[dict[str, Any]], event: str, **match: str) -> dict[str, Any]:
    """The one envelope of this event whose payload object (or its participant/registrant) matches."""
    found = []
    for e in envelopes:
        if e["event"] != event:
            continue
        obj = e["payload"]["object"]
        inner = obj.get("participant") or obj.get("registrant") or {}
        if all(inner.get(k) == v or obj.get(k) == v for k, v in match.items()):
            found.append(e)
    assert len(found) == 1, (event, match, len(found))
    return found[0]


async def wait_inbox_processed(client: httpx.AsyncClient) -> None:
    for _ in range(400):
        body = (await client.get("/api/v1/status", headers=ADMIN)).json()
        if body["inbox"]["pending"] == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("inbox not processed")


def _contact_props(snapshot: dict[str, Any], email: str) -> dict[str, str]:
    return dict(next(props for e, props in snapshot["contacts"] if e == email))


def _state(snapshot: dict[str, Any], email: str) -> tuple[Any, ...]:
    [marketing] = snapshot["marketing_events"]
    found: tuple[Any, ...] = next(row for row in marketing["attendance"] if row[0] == email)
    return found


async def test_a_leave_arriving_after_the_end_still_counts_in_the_attendance_event(
    database: Database,
) -> None:
    """Ann's first leave is lost in an outage and re-sent after the webinar.ended was processed: her
    attendance event (immutable) and attend state must carry 80 %, not the 96.7 % of a session left
    open until the end."""
    envelopes = scenario()
    held = _envelope(
        envelopes, "webinar.participant_left", email="ann@example.com", leave_time="2026-06-03T14:30:00Z"
    )

    async def deliver(client: httpx.AsyncClient) -> None:
        await deliver_ordered(client, [e for e in envelopes if e is not held])
        await wait_inbox_processed(client)
        await asyncio.sleep(0.5)  # the dispatcher has had its chance to send with the leave missing
        await deliver_ordered(client, [held])

    snapshot = await run(database, deliver)
    [attendance] = [
        e for e in snapshot["timeline_events"] if e[0].startswith("zoom-att") and e[2] == "ann@example.com"
    ]
    tokens = dict(attendance[3])
    assert (tokens["attendance_percent"], tokens["attendance_duration_seconds"]) == ("80.0", "2880")
    assert _contact_props(snapshot, "ann@example.com")["zoom_webinar_average_attendance_percent"] == "80.0"
    assert _state(snapshot, "ann@example.com")[1:] == (
        "attend",
        int((T0 + 2 * MIN).timestamp() * 1000),
        True,
        "2026-06-03T14:02:00.000Z",
        "2026-06-03T15:00:00.000Z",
    )


async def test_no_attend_state_while_the_webinar_runs(database: Database) -> None:
    """Before the end an open session has no leave time: nothing may go out with leftAt = now."""
    envelopes = scenario()
    running = envelopes[: envelopes.index(_envelope(envelopes, "webinar.ended"))]
    sandbox_app = seeded_sandbox()
    transport = httpx.ASGITransport(app=sandbox_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hubspot.test") as hs:
        settings = delivery_settings(database, attendance_settle_s=0.2)
        async with running_app(settings, hubspot_transport=transport) as client:
            r = await client.patch(
                f"/api/v1/portals/{PORTAL_ID}/settings", headers=ADMIN, json={"webinar_sync_enabled": True}
            )
            assert r.status_code == 200
            await deliver_ordered(client, running)
            await wait_all_done(client)
            state = (await hs.get("/_sandbox/state", params={"portal": PORTAL_ID})).json()
            during = hubspot_snapshot(state)
            assert _state(during, "ivy@example.com")[1:4] == (
                "register",
                int((T0 - timedelta(days=9) + 8 * MIN).timestamp() * 1000),
                False,
            )
            assert not [e for e in during["timeline_events"] if e[0].startswith("zoom-att")]
            await deliver_ordered(client, envelopes[len(running) :])
            await wait_all_done(client)
            after = hubspot_snapshot((await hs.get("/_sandbox/state", params={"portal": PORTAL_ID})).json())
    assert _state(after, "ivy@example.com")[1] == "attend"
    assert _state(after, "ivy@example.com")[5] == "2026-06-03T15:00:00.000Z"


async def test_a_denied_registration_gets_its_event_in_either_order(database: Database) -> None:
    """pending -> denied: the registration event exists whether the denial arrives first or last."""
    envelopes = scenario()
    created = _envelope(envelopes, "webinar.registration_created", email="cara@example.com")
    denied = _envelope(envelopes, "webinar.registration_denied", email="cara@example.com")
    views = []
    for order in ([created, denied], [denied, created]):
        snapshot = await run(
            database, lambda client, order=order: deliver_ordered(client, [envelopes[0], *order])
        )
        views.append([e for e in snapshot["timeline_events"] if e[0].startswith("zoom-reg")])
    assert views[0] == views[1] and len(views[0]) == 1
    # Its time is when Cara registered, not when she was denied (which arrived first in one run).
    assert views[1][0][4] == "2026-05-25T14:02:00.000Z"  # T0 - 9 days + 2 min
