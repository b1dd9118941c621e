"""The marketing events client's objectId routes and the identifiers lookup, against respx: exact
requests, typed answers, tolerance where HubSpot's answer shape is not verified."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import httpx
import pytest
import respx

from app.integrations.hubspot import (
    AttendanceInput,
    AttendanceState,
    HubSpotClient,
    HubSpotNotFound,
    HubSpotServerError,
    MarketingEvent,
)
from app.integrations.hubspot.marketing_events import parse_identifiers

pytestmark = pytest.mark.anyio

BASE = "https://api.hubapi.test"
ME = f"{BASE}/marketing/v3/marketing-events"
TOKEN = "pat-na1-00000000-1111-2222-3333-444444444444"
T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
EVENT = MarketingEvent(
    external_account_id="acct_1",
    external_event_id="123456789",
    event_name="Launch",
    event_organizer="Ada Host",
    start_at=T0,
    end_at=T0 + timedelta(hours=1),
    event_url="https://zoom.us/webinar/register/WN_abc",
)


class NoLimit:
    async def acquire(self, portal_id: int) -> None:
        return None

    def penalise(self, portal_id: int, retry_after_s: float) -> None:
        return None


async def no_sleep(seconds: float) -> None:
    return None


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as mock:
        yield mock


@pytest.fixture
async def client() -> AsyncIterator[HubSpotClient]:
    async with httpx.AsyncClient() as http:
        yield HubSpotClient(
            http,
            base_url=BASE,
            access_token=TOKEN,
            portal_id=4242,
            rate_limiter=NoLimit(),
            max_attempts=3,
            backoff_base_s=0.001,
            backoff_max_s=0.01,
            sleep=no_sleep,
        )


def only(route: respx.Route) -> httpx.Request:
    assert route.call_count == 1
    request: httpx.Request = route.calls.last.request
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    return request


def body(request: httpx.Request) -> Any:
    return json.loads(request.content)


async def test_update_by_object_id_sends_the_event_fields_without_external_ids(
    client: HubSpotClient, router: respx.MockRouter
) -> None:
    route = router.patch(f"{ME}/555").respond(
        200, json={"objectId": "555", "eventName": "Launch", "appInfo": {"id": "2002", "name": "B"}}
    )
    result = await client.update_marketing_event("555", EVENT)
    assert body(only(route)) == {
        "eventName": "Launch",
        "eventOrganizer": "Ada Host",
        "eventType": "WEBINAR",
        "customProperties": [],
        "startDateTime": "2024-05-01T10:00:00.000Z",
        "endDateTime": "2024-05-01T11:00:00.000Z",
        "eventUrl": "https://zoom.us/webinar/register/WN_abc",
    }
    assert result.hubspot_id == "555"
    assert result.app_info is not None and result.app_info.id == "2002"


async def test_times_by_object_id(client: HubSpotClient, router: respx.MockRouter) -> None:
    route = router.patch(f"{ME}/a%2Fb").respond(200, json={"objectId": 7})
    result = await client.set_marketing_event_times("a/b", T0, T0 + timedelta(minutes=90))
    assert body(only(route)) == {
        "startDateTime": "2024-05-01T10:00:00.000Z",
        "endDateTime": "2024-05-01T11:30:00.000Z",
        "customProperties": [],
    }
    assert result.hubspot_id == "7"  # HubSpot's numbers are kept as strings


async def test_get_by_object_id_and_by_external_ids(client: HubSpotClient, router: respx.MockRouter) -> None:
    by_object = router.get(f"{ME}/555").respond(
        200, json={"objectId": "555", "externalEventId": "123456789", "eventCompleted": True}
    )
    by_external = router.get(f"{ME}/events/123456789").respond(200, json={"id": "555", "objectId": "555"})
    got = await client.get_marketing_event("555")
    assert (got.external_event_id, got.event_completed) == ("123456789", True)
    own = await client.get_marketing_event_by_external_id("123456789", "acct 1")
    assert own.hubspot_id == "555"
    assert only(by_object).content == b""
    assert only(by_external).url.params["externalAccountId"] == "acct 1"


async def test_get_by_external_ids_of_another_apps_event_is_not_found(
    client: HubSpotClient, router: respx.MockRouter
) -> None:
    router.get(f"{ME}/events/123456789").respond(
        404, json={"status": "error", "category": "OBJECT_NOT_FOUND", "message": "not found"}
    )
    with pytest.raises(HubSpotNotFound):
        await client.get_marketing_event_by_external_id("123456789", "acct_1")


async def test_upsert_answer_naming_only_id_gives_the_object_id(
    client: HubSpotClient, router: respx.MockRouter
) -> None:
    router.put(f"{ME}/events/123456789").respond(200, json={"id": "901", "eventName": "Launch"})
    assert (await client.upsert_marketing_event(EVENT)).hubspot_id == "901"


async def test_upsert_at_most_once_is_not_sent_again_after_a_lost_answer(
    client: HubSpotClient, router: respx.MockRouter
) -> None:
    route = router.put(f"{ME}/events/123456789").respond(504, text="<html>504 Gateway Time-out</html>")
    with pytest.raises(HubSpotServerError):
        await client.upsert_marketing_event(EVENT, at_most_once=True)
    assert route.call_count == 1
    with pytest.raises(HubSpotServerError):
        await client.upsert_marketing_event(EVENT)  # an idempotent upsert by the same app: retried
    assert route.call_count == 1 + 3


async def test_attendance_by_object_id(client: HubSpotClient, router: respx.MockRouter) -> None:
    route = router.post(f"{ME}/555/attendance/attend/create").respond(
        200,
        json={
            "status": "COMPLETE",
            "results": [{"vid": 7}],
            "errors": [
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "message": "gone",
                    "context": {"ids": ["8"]},
                }
            ],
        },
    )
    result = await client.record_attendance_by_object_id(
        "555",
        "attend",
        [
            AttendanceInput(vid=7, interaction_at=T0, joined_at=T0, left_at=T0 + timedelta(minutes=30)),
            AttendanceInput(vid=8, interaction_at=T0),
        ],
    )
    request = only(route)
    assert request.url.params == httpx.QueryParams()  # no externalAccountId: the objectId says it all
    ms = int(T0.timestamp() * 1000)
    assert body(request) == {
        "inputs": [
            {
                "vid": 7,
                "interactionDateTime": ms,
                "properties": {"joinedAt": "2024-05-01T10:00:00.000Z", "leftAt": "2024-05-01T10:30:00.000Z"},
            },
            {"vid": 8, "interactionDateTime": ms, "properties": {}},
        ]
    }
    assert [r.vid for r in result.results] == [7] and result.failed_ids == {"8"}


async def test_attendance_by_object_id_checks_its_input(
    client: HubSpotClient, router: respx.MockRouter
) -> None:
    assert (await client.record_attendance_by_object_id("555", "register", [])).results == []
    with pytest.raises(ValueError, match="unknown attendance state"):
        unknown = cast(AttendanceState, "noshow")
        await client.record_attendance_by_object_id(
            "555", unknown, [AttendanceInput(vid=1, interaction_at=T0)]
        )
    with pytest.raises(ValueError):
        await client.record_attendance_by_object_id(
            "555", "register", [AttendanceInput(vid=i, interaction_at=T0) for i in range(101)]
        )
    assert router.calls.call_count == 0


async def test_identifiers_documented_shape(client: HubSpotClient, router: respx.MockRouter) -> None:
    route = router.get(f"{ME}/123456789/identifiers").respond(
        200,
        json={
            "results": [
                {
                    "externalEventId": "123456789",
                    "marketingEventName": "Launch",
                    "objectId": 555,
                    "appInfo": {"id": "1001", "name": "Zoom sync"},
                    "externalAccountId": "acct_1",
                },
                {"externalEventId": "123456789", "marketingEventName": "Launch", "objectId": "556"},
            ],
            "total": 2,
        },
    )
    found = await client.find_marketing_events("123456789")
    assert only(route).url.params == httpx.QueryParams()
    assert [(f.object_id, f.app_id, f.external_account_id) for f in found] == [
        ("555", "1001", "acct_1"),
        ("556", None, None),
    ]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"results": [], "total": 0}, []),
        ([{"objectId": "9"}], ["9"]),  # a bare list
        ({"results": [{"marketingEventName": "no id"}, {"objectId": "9"}]}, ["9"]),  # entry without id
        ({"total": 0}, []),
        ("unexpected", []),
    ],
)
def test_identifiers_tolerate_unverified_shapes(answer: Any, expected: list[str]) -> None:
    assert [f.object_id for f in parse_identifiers(answer)] == expected
