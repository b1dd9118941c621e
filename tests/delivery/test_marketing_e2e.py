"""One marketing event per webinar, whichever app the portal's token is of (issue 14 §5).

HubSpot's external-id routes see only the events of the app that made them, and its upsert by
external id makes a SECOND event for any other app. The fake HubSpot behaves so: these tests switch
the portal from a token of app A to one of app B (both served for the same portal) in the middle of a
webinar, start from a deployment that never stored the objectId, lose the create's answer while the
identifiers search lags, and delete the event in HubSpot; every time there is exactly one event,
with every contact's states.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import Session, select

from app.db import unit_of_work
from app.delivery import hubspot_gateway
from app.integrations.hubspot.wire import iso_utc
from app.models import HubSpotMarketingEvent, HubSpotPortal
from app.secret_box import SecretBox
from tests.fixtures.databases import Database
from tests.fixtures.e2e import APP_ID, Harness, harness
from tests.fixtures.recordings import entries
from tests.fixtures.service import ADMIN, PORTAL_ID

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

KEY = "marketing-test-secret-key"
APP_B = "2002"
TOKEN_B = "hs-token-of-app-b"
MINUTE = timedelta(minutes=1)
UPSERT = "PUT /marketing/v3/marketing-events/events/{external_event_id}"
IDENTIFIERS = "GET /marketing/v3/marketing-events/{external_event_id}/identifiers"
OWN_GET = "GET /marketing/v3/marketing-events/events/{external_event_id}"
BY_OBJECT_ID = "POST /marketing/v3/marketing-events/{object_id}/attendance/{state}/create"


@asynccontextmanager
async def service(
    database: Database, monkeypatch: pytest.MonkeyPatch, **kwargs: Any
) -> AsyncIterator[Harness]:
    # A token stored in hubspot_portal is picked up at the next client request, not 5 s later.
    monkeypatch.setattr(hubspot_gateway, "CREDENTIALS_RECHECK_S", 0.0)
    async with harness(database, app_secret_key=KEY, **kwargs) as h:
        await h.settings_patch(webinar_sync_enabled=True)
        yield h


def switch_to_app_b(h: Harness, database: Database, *, app_known: bool = True) -> None:
    """A second app is installed in the same HubSpot account and its token replaces the first's."""
    h.hubspot.add_token(TOKEN_B, PORTAL_ID, APP_B)
    with unit_of_work(database.engine) as session:
        session.merge(
            HubSpotPortal(
                portal_id=PORTAL_ID,
                access_token=SecretBox(KEY).encrypt(TOKEN_B),
                app_id=APP_B if app_known else None,
            )
        )


def marketing_events(h: Harness) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = h.portal_state()["marketing_events"]
    return found


def requests(h: Harness) -> dict[str, int]:
    counts: dict[str, int] = h.portal_state()["stats"]["requests"]
    return counts


def stored(database: Database) -> list[HubSpotMarketingEvent]:
    with Session(database.engine) as session:
        return list(session.exec(select(HubSpotMarketingEvent)).all())


def states_by_email(h: Harness, event: dict[str, Any]) -> dict[str, str]:
    emails = {c["id"]: c["properties"].get("email") for c in h.portal_state()["contacts"]}
    return {emails[cid]: a["state"] for cid, a in event["attendance"].items()}


async def new_webinar(h: Harness) -> tuple[str, datetime]:
    t0 = (datetime.now(UTC) - timedelta(hours=3)).replace(second=0, microsecond=0)
    created = await h.zoom.create_webinar(
        topic="Two apps, one event", start_time=t0, at=t0 - timedelta(days=2)
    )
    return str(created.result["id"]), t0


async def register(h: Harness, webinar_id: str, t0: datetime, *emails: str) -> dict[str, str]:
    ids = {}
    for email in emails:
        reg = await h.zoom.register(
            webinar_id, email, email.split("@")[0].title(), "Tester", at=t0 - timedelta(days=1)
        )
        ids[email] = str(reg.result["id"])
    await h.wait_done()
    return ids


async def run_and_end(h: Harness, webinar_id: str, t0: datetime, attendees: list[str]) -> None:
    await h.zoom.start(webinar_id, at=t0)
    for i, registrant in enumerate(attendees):
        await h.zoom.join(webinar_id, registrant_id=registrant, at=t0 + (i + 1) * MINUTE)
        await h.zoom.leave(webinar_id, registrant_id=registrant, at=t0 + 50 * MINUTE)
    await h.zoom.end(webinar_id, at=t0 + 60 * MINUTE)
    await h.wait_done()


async def test_a_token_of_another_app_goes_on_with_the_same_event(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with service(database, monkeypatch) as h:
        webinar_id, t0 = await new_webinar(h)
        ids = await register(h, webinar_id, t0, "ann@example.com", "bob@example.com")
        [event] = marketing_events(h)
        assert event["appId"] == APP_ID
        [row] = stored(database)
        assert (row.webinar_id, row.object_id) == (webinar_id, event["objectId"])

        switch_to_app_b(h, database)
        ids |= await register(h, webinar_id, t0, "cara@example.com")
        await run_and_end(h, webinar_id, t0, [ids["ann@example.com"], ids["cara@example.com"]])

        [event] = marketing_events(h)  # app B's upsert would have made a second one
        assert event["appId"] == APP_ID
        assert states_by_email(h, event) == {
            "ann@example.com": "attend",
            "bob@example.com": "register",
            "cara@example.com": "attend",
        }
        # Completion by app B: the actual times through the objectId update (its `complete` by
        # external id is app A's alone).
        assert (event["startDateTime"], event["endDateTime"]) == (iso_utc(t0), iso_utc(t0 + 60 * MINUTE))
        counts = requests(h)
        assert counts[UPSERT] == 1 and counts[IDENTIFIERS] == 1, counts
        assert counts[BY_OBJECT_ID] >= 2, counts
        assert not [k for k in counts if k.startswith("POST /marketing/v3/marketing-events/attendance/")]


async def test_an_existing_deployment_finds_its_event_through_identifiers(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with service(database, monkeypatch) as h:
        webinar_id, t0 = await new_webinar(h)
        ids = await register(h, webinar_id, t0, "ann@example.com")
        [event] = marketing_events(h)
        # Made before objectIds were kept: nothing stored. Then the token changes app.
        with unit_of_work(database.engine) as session:
            for row in session.exec(select(HubSpotMarketingEvent)).all():
                session.delete(row)
        switch_to_app_b(h, database, app_known=False)

        ids |= await register(h, webinar_id, t0, "bob@example.com")
        await run_and_end(h, webinar_id, t0, [ids["bob@example.com"]])

        [found] = marketing_events(h)
        assert found["objectId"] == event["objectId"]
        assert states_by_email(h, found) == {"ann@example.com": "register", "bob@example.com": "attend"}
        [row] = stored(database)
        assert (row.object_id, row.app_id) == (event["objectId"], APP_ID)  # the app identifiers named
        assert requests(h)[UPSERT] == 1


async def test_a_lost_create_answer_while_the_search_lags_makes_no_second_event(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The create's answer is lost; before it is tried again the token changes app, and HubSpot's
    # identifiers search does not show the new event yet. App B cannot see app A's event by its
    # external ids: creating now would make a second one, so the service waits for the search.
    # The first retry comes 3 s after the failure: time to switch the token in between.
    async with service(
        database, monkeypatch, hubspot_kwargs={"search_lag_s": 4.0}, dispatch_retry_base_s=3.0
    ) as h:
        h.hubspot.faults.drop_answer_route = UPSERT
        h.hubspot.faults.drop_answer_after_apply = 1
        webinar_id, t0 = await new_webinar(h)
        for _ in range(1000):  # until the create was applied and its answer lost
            if not h.hubspot.faults.drop_answer_after_apply:
                break
            await asyncio.sleep(0.01)
        assert [row.object_id for row in stored(database)] == [""]  # the attempt, no id yet
        switch_to_app_b(h, database)
        await h.wait_done()
        ids = await register(h, webinar_id, t0, "ann@example.com")
        await run_and_end(h, webinar_id, t0, [ids["ann@example.com"]])

        [event] = marketing_events(h)
        assert event["appId"] == APP_ID
        assert states_by_email(h, event) == {"ann@example.com": "attend"}
        [row] = stored(database)
        assert row.object_id == event["objectId"]
        counts = requests(h)
        assert counts[UPSERT] == 1, counts
        assert counts[OWN_GET] >= 1 and counts[IDENTIFIERS] >= 2, counts  # looked, waited, found


async def test_a_lost_create_answer_of_the_same_app_is_found_at_once(database: Database) -> None:
    async with harness(database, hubspot_kwargs={"search_lag_s": 60.0}) as h:
        await h.settings_patch(webinar_sync_enabled=True)
        h.hubspot.faults.drop_answer_route = UPSERT
        h.hubspot.faults.drop_answer_after_apply = 1
        webinar_id, t0 = await new_webinar(h)
        ids = await register(h, webinar_id, t0, "ann@example.com")
        await run_and_end(h, webinar_id, t0, [ids["ann@example.com"]])

        assert h.hubspot.faults.drop_answer_after_apply == 0, "the fault never fired"
        [event] = marketing_events(h)
        assert states_by_email(h, event) == {"ann@example.com": "attend"}
        assert event["eventCompleted"] is True  # the same app: `complete` works too
        counts = requests(h)
        assert counts[UPSERT] == 1 and counts[OWN_GET] == 1, counts


async def delete_event(h: Harness, object_id: str) -> None:
    r = await h.hs_http.delete(
        f"/marketing/v3/marketing-events/{object_id}", headers={"Authorization": "Bearer hs-sandbox-token"}
    )
    assert r.status_code == 204, r.text


async def test_an_event_deleted_in_hubspot_is_made_again_with_every_state(database: Database) -> None:
    async with harness(database) as h:
        await h.settings_patch(webinar_sync_enabled=True)
        webinar_id, t0 = await new_webinar(h)
        ids = await register(h, webinar_id, t0, "ann@example.com", "bob@example.com")
        [first] = marketing_events(h)
        await delete_event(h, first["objectId"])

        # A contact's state is the first call to meet the 404.
        ids |= await register(h, webinar_id, t0, "cara@example.com")
        [second] = marketing_events(h)
        assert second["objectId"] != first["objectId"]
        everyone = {
            "ann@example.com": "register",
            "bob@example.com": "register",
            "cara@example.com": "register",
        }
        assert states_by_email(h, second) == everyone  # the webinar was planned again
        await run_and_end(h, webinar_id, t0, [ids["ann@example.com"]])
        await delete_event(h, second["objectId"])

        # Now the event's own update meets it (Sync now plans the webinar again).
        r = await h.client.post(f"/api/v1/portals/{PORTAL_ID}/webinars/{webinar_id}/sync", headers=ADMIN)
        assert r.status_code == 202, r.text
        await h.wait_done()

        [event] = marketing_events(h)
        assert event["objectId"] not in (first["objectId"], second["objectId"])
        assert states_by_email(h, event) == everyone | {"ann@example.com": "attend"}
        assert event["eventCompleted"] is True
        [row] = stored(database)
        assert row.object_id == event["objectId"]
        warnings = await entries(h, webinar_id, "webinar_data_not_synced")
        assert [(w["status"], w["details"]["reason"], w["details"]["object_id"]) for w in warnings] == [
            ("warning", "marketing_event_deleted", first["objectId"]),
            ("warning", "marketing_event_deleted", second["objectId"]),
        ]
        assert [w["details"]["route"] for w in warnings] == [
            "POST /{objectId}/attendance/{state}/create",
            "PATCH /{objectId}",
        ]
