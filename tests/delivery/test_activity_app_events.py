"""The `app_events` activity writer against respx: the tokens as string properties under the
configured event type names, a reused id (per input, or the whole batch's 409) counted as written,
refusals kept as failures (CONTRACT §4.2)."""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import httpx
import pytest
import respx

from app.delivery.activity_app_events import AppEventsWriter
from app.delivery.activity_writer import Activity, ActivityKind
from app.delivery.ops import DONE, Verdict
from app.integrations.hubspot import HubSpotClient, InProcessRateLimiter

pytestmark = pytest.mark.anyio

BASE = "https://api.hubapi.test"
BATCH = f"{BASE}/integrators/timeline/2026-03/events/batch"
SINGLE = f"{BASE}/integrators/timeline/2026-03/events"
TYPES = {"registration": "zoom_reg", "attendance": "zoom_att", "recording": "zoom_rec"}
T0 = datetime(2026, 4, 2, 15, 0, tzinfo=UTC)


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
            access_token="t",
            portal_id=1,
            rate_limiter=InProcessRateLimiter(100),
            sleep=no_sleep,
        )


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as mock:
        yield mock


def registration(i: int) -> Activity:
    return Activity(
        ActivityKind.REGISTRATION,
        f"zoom-reg-1-{i}",
        str(100 + i),
        T0,
        {"webinar_id": "1", "webinar_name": "Launch"},
    )


def recording() -> Activity:
    values = {"topic": "Launch", "start_time": T0, "recording_url": "https://zoom.us/rec/share/x"}
    return Activity(ActivityKind.RECORDING, "zoom-rec-1-a-b", "101", T0, values)


async def test_properties_are_the_template_tokens_as_strings(
    client: HubSpotClient, router: respx.MockRouter
) -> None:
    route = router.post(BATCH).respond(200, json={"status": "COMPLETE", "results": []})
    written = await AppEventsWriter(TYPES, batch_size=100).write(client, [recording(), registration(1)])
    assert written == {"zoom-rec-1-a-b": DONE, "zoom-reg-1-1": DONE}
    inputs = json.loads(route.calls.last.request.content)["inputs"]
    assert inputs == [
        {
            "eventTypeName": "zoom_rec",
            "id": "zoom-rec-1-a-b",
            "objectId": "101",
            "properties": {
                "topic": "Launch",
                "start_time": "1775142000000",
                "recording_url": "https://zoom.us/rec/share/x",
            },
            "timestamp": "2026-04-02T15:00:00.000Z",
        },
        {
            "eventTypeName": "zoom_reg",
            "id": "zoom-reg-1-1",
            "objectId": "101",
            "properties": {"webinar_id": "1", "webinar_name": "Launch"},
            "timestamp": "2026-04-02T15:00:00.000Z",
        },
    ]


async def test_a_batch_refused_for_a_reused_id_goes_one_by_one(
    client: HubSpotClient, router: respx.MockRouter
) -> None:
    router.post(BATCH).respond(409, json={"status": "error", "category": "CONFLICT", "message": "exists"})
    single = router.post(SINGLE).mock(
        side_effect=[
            httpx.Response(409, json={"status": "error", "category": "CONFLICT", "message": "exists"}),
            httpx.Response(200, json={"id": "zoom-reg-1-2"}),
            httpx.Response(400, json={"status": "error", "category": "VALIDATION_ERROR", "message": "bad"}),
        ]
    )
    written = await AppEventsWriter(TYPES, batch_size=100).write(client, [registration(i) for i in (1, 2, 3)])
    assert written["zoom-reg-1-1"] == DONE and written["zoom-reg-1-2"] == DONE  # existing, then new
    failed = written["zoom-reg-1-3"]
    assert (
        failed.verdict is Verdict.RETRY and not failed.retryable and failed.reason == "timeline_event_failed"
    )
    assert single.call_count == 3


async def test_per_input_errors_fail_their_event_and_duplicates_succeed(
    client: HubSpotClient, router: respx.MockRouter
) -> None:
    router.post(BATCH).respond(
        207,
        json={
            "status": "COMPLETE",
            "results": [],
            "errors": [
                {"category": "CONFLICT", "message": "already exists", "context": {"id": ["zoom-reg-1-1"]}},
                {
                    "category": "OBJECT_NOT_FOUND",
                    "message": "no contact",
                    "context": {"id": ["zoom-reg-1-2"]},
                },
            ],
        },
    )
    written = await AppEventsWriter(TYPES, batch_size=100).write(client, [registration(1), registration(2)])
    assert written["zoom-reg-1-1"] == DONE
    assert written["zoom-reg-1-2"].verdict is Verdict.RETRY and "no contact" in (
        written["zoom-reg-1-2"].error or ""
    )


async def test_a_static_token_refused_is_a_failure_that_counts_attempts(
    client: HubSpotClient, router: respx.MockRouter
) -> None:
    router.post(BATCH).respond(
        403, json={"status": "error", "category": "MISSING_SCOPES", "message": "static"}
    )
    [result] = (await AppEventsWriter(TYPES, batch_size=100).write(client, [registration(1)])).values()
    assert result.verdict is Verdict.RETRY and not result.retryable


async def test_an_activity_without_an_event_type_name_is_not_sent(
    client: HubSpotClient, router: respx.MockRouter
) -> None:
    [result] = (
        await AppEventsWriter({"registration": "zoom_reg"}, batch_size=100).write(client, [recording()])
    ).values()
    assert result.verdict is Verdict.RETRY and "recording" in (result.error or "")
    assert not router.calls
