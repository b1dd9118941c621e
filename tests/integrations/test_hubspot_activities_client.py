"""The HubSpot client's activity calls against respx (CONTRACT §4.2): 2026-03 app events, notes with
their contact association, the contact's notes and their batch read; exact requests, typed results."""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
import respx

from app.integrations.hubspot import (
    HubSpotClient,
    HubSpotServerError,
    HubSpotValidationError,
    InProcessRateLimiter,
)
from app.integrations.hubspot.timeline import AppEvent

pytestmark = pytest.mark.anyio

BASE = "https://api.hubapi.test"
TOKEN = "pat-na1-00000000-1111-2222-3333-444444444444"
PORTAL = 4242
BATCH = f"{BASE}/integrators/timeline/2026-03/events/batch"
SINGLE = f"{BASE}/integrators/timeline/2026-03/events"
NOTES = f"{BASE}/crm/v3/objects/notes"


@pytest.fixture(scope="module")
def ssl_context() -> ssl.SSLContext:
    return ssl.create_default_context()


@pytest.fixture
async def client(ssl_context: ssl.SSLContext) -> AsyncIterator[HubSpotClient]:
    async def no_sleep(_: float) -> None:
        return None

    async with httpx.AsyncClient(verify=ssl_context) as http:
        yield HubSpotClient(
            http,
            base_url=BASE,
            access_token=TOKEN,
            portal_id=PORTAL,
            rate_limiter=InProcessRateLimiter(100),
            max_attempts=3,
            sleep=no_sleep,
        )


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as mock:
        yield mock


def sent(route: respx.Route) -> Any:
    assert route.call_count == 1
    request: httpx.Request = route.calls.last.request
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    return json.loads(request.content) if request.content else None


def event(i: int, **extra: Any) -> AppEvent:
    return AppEvent(
        event_type_name="zoom_att",
        id=f"zoom-att-1-{i}",
        object_id=str(100 + i),
        properties={"webinar_id": "1"},
        **extra,
    )


# ---- app events -------------------------------------------------------------------------------------


async def test_app_events_batch_request_and_result(client: HubSpotClient, router: respx.MockRouter) -> None:
    route = router.post(BATCH).respond(
        200,
        json={
            "status": "COMPLETE",
            "results": [{"id": "zoom-att-1-1", "eventTypeName": "zoom_att", "objectId": 101}],
        },
    )
    moment = datetime(2026, 4, 2, 17, 0, tzinfo=timezone(timedelta(hours=2)))
    result = await client.create_app_events([event(1, timestamp=moment), event(2)])
    assert sent(route) == {
        "inputs": [
            {
                "eventTypeName": "zoom_att",
                "id": "zoom-att-1-1",
                "objectId": "101",
                "properties": {"webinar_id": "1"},
                "timestamp": "2026-04-02T15:00:00.000Z",
            },
            {
                "eventTypeName": "zoom_att",
                "id": "zoom-att-1-2",
                "objectId": "102",
                "properties": {"webinar_id": "1"},
            },
        ]
    }
    assert [r.id for r in result.results] == ["zoom-att-1-1"] and result.results[0].object_id == "101"
    assert result.errors == []


async def test_app_events_answer_without_body_is_an_empty_result(
    client: HubSpotClient, router: respx.MockRouter
) -> None:
    router.post(BATCH).respond(204)
    result = await client.create_app_events([event(1)])
    assert (result.results, result.errors) == ([], [])


async def test_app_events_per_input_errors_are_data(client: HubSpotClient, router: respx.MockRouter) -> None:
    router.post(BATCH).respond(
        207,
        json={
            "status": "COMPLETE",
            "results": [],
            "errors": [
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "message": "no",
                    "context": {"id": ["zoom-att-1-1"]},
                }
            ],
        },
    )
    result = await client.create_app_events([event(1)])
    assert [(e.category, e.context["id"]) for e in result.errors] == [("OBJECT_NOT_FOUND", ["zoom-att-1-1"])]


async def test_a_reused_id_is_a_409_and_no_batch_takes_more_than_100(
    client: HubSpotClient, router: respx.MockRouter
) -> None:
    router.post(SINGLE).respond(409, json={"status": "error", "category": "CONFLICT", "message": "exists"})
    with pytest.raises(HubSpotValidationError) as caught:
        await client.create_app_event(event(1))
    assert caught.value.status == 409
    assert await client.create_app_events([]) is not None  # nothing sent for nothing
    with pytest.raises(ValueError, match="at most 100"):
        await client.create_app_events([event(i) for i in range(101)])


async def test_one_app_event_request(client: HubSpotClient, router: respx.MockRouter) -> None:
    route = router.post(SINGLE).respond(200, json={"id": "zoom-att-1-1"})
    await client.create_app_event(event(1))
    assert sent(route)["eventTypeName"] == "zoom_att"


# ---- notes ------------------------------------------------------------------------------------------


async def test_create_note_with_its_contact_association(
    client: HubSpotClient, router: respx.MockRouter
) -> None:
    route = router.post(NOTES).respond(201, json={"id": "80001", "properties": {"hs_note_body": "<p>x</p>"}})
    note = await client.create_note(
        {"hs_timestamp": "2026-04-02T15:00:00.000Z", "hs_note_body": "<p>x</p>"}, 7
    )
    assert note.id == "80001"
    assert sent(route) == {
        "properties": {"hs_timestamp": "2026-04-02T15:00:00.000Z", "hs_note_body": "<p>x</p>"},
        "associations": [
            {
                "to": {"id": "7"},
                "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 202}],
            }
        ],
    }


async def test_a_note_create_that_may_have_reached_hubspot_is_not_retried_when_asked(
    client: HubSpotClient, router: respx.MockRouter
) -> None:
    route = router.post(NOTES).respond(504, text="<html>504 Gateway Time-out</html>")
    with pytest.raises(HubSpotServerError):
        await client.create_note({"hs_timestamp": "1"}, 7, at_most_once=True)
    assert route.call_count == 1  # a second try could make a second note
    route.reset()
    with pytest.raises(HubSpotServerError):
        await client.create_note({"hs_timestamp": "1"}, 7)
    assert route.call_count == 3


async def test_contact_note_ids_follow_every_page(client: HubSpotClient, router: respx.MockRouter) -> None:
    url = f"{BASE}/crm/v4/objects/contacts/7/associations/notes"
    route = router.get(url).mock(
        side_effect=[
            httpx.Response(
                200,
                json={
                    "results": [{"toObjectId": 80001, "associationTypes": [{"typeId": 202}]}],
                    "paging": {"next": {"after": "1"}},
                },
            ),
            httpx.Response(200, json={"results": [{"toObjectId": 80002, "associationTypes": []}]}),
        ]
    )
    assert await client.contact_note_ids("7") == ["80001", "80002"]
    first, second = (call.request for call in route.calls)
    assert first.url.params["limit"] == "500" and "after" not in first.url.params
    assert second.url.params["after"] == "1"


async def test_read_notes_by_id(client: HubSpotClient, router: respx.MockRouter) -> None:
    route = router.post(f"{NOTES}/batch/read").respond(
        200, json={"status": "COMPLETE", "results": [{"id": "80001", "properties": {"hs_note_body": "b"}}]}
    )
    notes = await client.read_notes(["80001", 80002], ["hs_note_body"])
    assert [(n.id, n.properties["hs_note_body"]) for n in notes] == [("80001", "b")]
    assert sent(route) == {"inputs": [{"id": "80001"}, {"id": "80002"}], "properties": ["hs_note_body"]}
    assert await client.read_notes([], ["hs_note_body"]) == []
