"""The parts that keep a call record single when HubSpot's answer to its create is lost: the rule after
such a create, the recording's marker, which failures may have reached HubSpot, and the client's
at-most-once create and marker search, against the HubSpot sandbox."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from app.delivery.recordings import CALL_MARKER_PROPERTY, LostCreateStep, after_lost_create, call_marker
from app.integrations.hubspot import (
    HubSpotClient,
    HubSpotError,
    HubSpotRateLimited,
    HubSpotServerError,
    HubSpotUnavailable,
    HubSpotValidationError,
    InProcessRateLimiter,
)
from app.integrations.hubspot.client import may_have_reached_hubspot
from app.models import Recording
from app.sandbox.hubspot import create_hubspot_sandbox, sandbox_of
from app.sandbox.hubspot_state import HubSpotSandbox

SENT = datetime(2024, 6, 20, 16, 0, tzinfo=UTC)


# ---- the rule after a lost create ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("found", "age_s", "expected"),
    [
        (["501"], 0.0, LostCreateStep(adopt="501")),
        (["501"], 999.0, LostCreateStep(adopt="501")),
        # Several (made before this rule existed): the oldest, in HubSpot's numeric id order.
        (["1000", "999", "5000"], 1.0, LostCreateStep(adopt="999")),
        # Nothing yet: the index may lag; look again soon, never later than the lag allows.
        ([], 0.0, LostCreateStep(wait_s=2.0)),
        ([], 29.0, LostCreateStep(wait_s=1.0)),
        # Nothing although the index had the time: HubSpot never made it, so create it.
        ([], 30.0, LostCreateStep()),
        ([], 3600.0, LostCreateStep()),
    ],
)
def test_after_lost_create(found: list[str], age_s: float, expected: LostCreateStep) -> None:
    now = SENT + timedelta(seconds=age_s)
    assert after_lost_create(found, SENT, now, lag_s=30.0, poll_s=2.0) == expected


def test_the_marker_names_one_recording_in_plain_characters() -> None:
    def rec(account: str, webinar: str, uuid: str) -> Recording:
        return Recording(zoom_account_id=account, webinar_id=webinar, instance_uuid=uuid)

    one = call_marker(rec("acct", "8101", "aB/c+d=="))
    assert one == call_marker(rec("acct", "8101", "aB/c+d=="))
    assert re.fullmatch(r"zoom-recording-[0-9a-f]{40}", one)
    others = {call_marker(rec("acct", "8101", "aB/c+d=")), call_marker(rec("other", "8101", "aB/c+d=="))}
    assert one not in others and len(others) == 2


# ---- which failures may have reached HubSpot ----------------------------------------------------------


def _transport_error(cause: Exception) -> HubSpotUnavailable:
    exc = HubSpotUnavailable(None, "TRANSPORT_ERROR", str(cause))
    exc.__cause__ = cause
    return exc


@pytest.mark.parametrize(
    ("exc", "reached"),
    [
        (HubSpotRateLimited(429, "RATE_LIMIT", "slow down", retry_after_s=1.0), False),
        (HubSpotValidationError(400, "VALIDATION_ERROR", "bad"), False),
        (_transport_error(httpx.ConnectError("refused")), False),
        (_transport_error(httpx.ConnectTimeout("no route")), False),
        (HubSpotServerError(502, None, "Bad Gateway"), True),
        (HubSpotServerError(504, None, "Gateway Time-out"), True),
        (_transport_error(httpx.ReadTimeout("no answer")), True),
        (_transport_error(httpx.RemoteProtocolError("peer closed")), True),
        # HubSpot answered 2xx but the body could not be read: the record exists.
        (HubSpotError(201, "UNEXPECTED_RESPONSE", "response body is not JSON"), True),
        (HubSpotError(None, "UNEXPECTED_RESPONSE", "does not match CrmObject"), True),
    ],
)
def test_may_have_reached_hubspot(exc: HubSpotError, reached: bool) -> None:
    assert may_have_reached_hubspot(exc) is reached


# ---- the client against the sandbox -------------------------------------------------------------------

TOKEN = "sandbox-token"
PROPERTIES = {
    "hs_timestamp": "2024-06-20T16:00:00Z",
    "hs_call_title": "Launch webinar recording",
    CALL_MARKER_PROPERTY: "zoom-recording-abc",
}


class _RefuseFirstConnect(httpx.AsyncBaseTransport):
    """The first request fails to connect (never sent); the rest reach the sandbox."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.refused = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.refused == 0:
            self.refused += 1
            raise httpx.ConnectError("connection refused", request=request)
        return await self.inner.handle_async_request(request)


@asynccontextmanager
async def sandbox_client(
    *, refuse_first_connect: bool = False, **options: Any
) -> AsyncIterator[tuple[HubSpotClient, HubSpotSandbox]]:
    app = create_hubspot_sandbox(**options)
    transport: httpx.AsyncBaseTransport = httpx.ASGITransport(app=app)
    if refuse_first_connect:
        transport = _RefuseFirstConnect(transport)

    async def no_sleep(_: float) -> None:
        return None

    async with httpx.AsyncClient(transport=transport) as http:
        client = HubSpotClient(
            http,
            base_url="http://hubspot.test",
            access_token=TOKEN,
            portal_id=1,
            rate_limiter=InProcessRateLimiter(1000),
            sleep=no_sleep,
        )
        yield client, sandbox_of(app)


def _create_requests(sandbox: HubSpotSandbox) -> int:
    return sandbox.portal(1).stats.requests["POST /crm/v3/objects/calls"]


@pytest.mark.anyio
async def test_at_most_once_create_leaves_a_lost_answer_to_the_caller() -> None:
    async with sandbox_client(drop_answer_after_apply=1) as (client, sandbox):
        with pytest.raises(HubSpotServerError) as raised:
            await client.create_call(PROPERTIES, [], at_most_once=True)
        assert raised.value.status == 504
        assert _create_requests(sandbox) == 1 and len(sandbox.portal(1).calls) == 1
        [found] = await client.find_calls(CALL_MARKER_PROPERTY, "zoom-recording-abc")
        assert found.id in sandbox.portal(1).calls
        assert found.properties[CALL_MARKER_PROPERTY] == "zoom-recording-abc"
        assert await client.find_calls(CALL_MARKER_PROPERTY, "zoom-recording-other") == []


@pytest.mark.anyio
async def test_a_plain_create_is_sent_again_and_doubles() -> None:
    """Why the create of a call record must be at most once: retried, a lost answer makes two."""
    async with sandbox_client(drop_answer_after_apply=1) as (client, sandbox):
        await client.create_call(PROPERTIES, [])
        assert _create_requests(sandbox) == 2 and len(sandbox.portal(1).calls) == 2


@pytest.mark.anyio
async def test_at_most_once_create_is_retried_when_it_was_never_sent() -> None:
    async with sandbox_client(refuse_first_connect=True, burst_429=1) as (client, sandbox):
        created = await client.create_call(PROPERTIES, [], at_most_once=True)
        assert list(sandbox.portal(1).calls) == [created.id]
        assert client.stats.transport_errors == 1 and client.stats.rate_limited == 1


@pytest.mark.anyio
async def test_find_calls_does_not_see_a_new_call_during_the_search_lag() -> None:
    now = [100.0]
    async with sandbox_client(search_lag_s=5.0) as (client, sandbox):
        sandbox.clock = lambda: now[0]
        created = await client.create_call(PROPERTIES, [], at_most_once=True)
        assert await client.find_calls(CALL_MARKER_PROPERTY, "zoom-recording-abc") == []
        now[0] += 5.0
        [found] = await client.find_calls(CALL_MARKER_PROPERTY, "zoom-recording-abc")
        assert found.id == created.id
