"""The fake HubSpot's marketing events belong to the app whose token made them: external-id routes see
only their app's, objectId routes every app's, and the identifiers search lists every app's after
`search_lag_s` (reference/hubspot-platform.md §5)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from app.sandbox.hubspot import create_hubspot_sandbox, sandbox_of
from app.sandbox.hubspot_state import HubSpotSandbox

pytestmark = pytest.mark.anyio

ME = "/marketing/v3/marketing-events"
ACCOUNT = "zoom-acct-1"
APP_A, APP_B = "1001", "2002"
A = {"Authorization": "Bearer sandbox-token"}
B = {"Authorization": "Bearer token-of-app-b"}
EVENT = {
    "externalAccountId": ACCOUNT,
    "eventName": "Launch webinar",
    "eventOrganizer": "Example Inc",
    "eventType": "WEBINAR",
    "startDateTime": "2024-06-20T16:00:00Z",
    "customProperties": [],
}
ACCOUNT_PARAM = {"externalAccountId": ACCOUNT}


@asynccontextmanager
async def two_apps(**options: Any) -> AsyncIterator[tuple[httpx.AsyncClient, HubSpotSandbox]]:
    """The sandbox with its own token (app A) and, through the control API, one of app B."""
    app = create_hubspot_sandbox(**options)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://hubspot.test"
    ) as client:
        r = await client.post("/_sandbox/tokens", json={"token": "token-of-app-b", "app_id": APP_B})
        assert r.status_code == 201, r.text
        assert r.json() == {"portal": 1, "app_id": APP_B}
        yield client, sandbox_of(app)


async def events(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = (await client.get("/_sandbox/state")).json()["marketing_events"]
    return found


async def identifiers(client: httpx.AsyncClient, event_id: str = "555") -> dict[str, Any]:
    r = await client.get(f"{ME}/{event_id}/identifiers", headers=B)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_external_id_routes_see_only_the_callers_app() -> None:
    async with two_apps() as (client, _):
        made = (await client.put(f"{ME}/events/555", headers=A, json=EVENT)).json()
        assert (await client.get(f"{ME}/events/555", headers=A, params=ACCOUNT_PARAM)).status_code == 200
        wrong_app: list[tuple[str, str, Any]] = [
            ("GET", f"{ME}/events/555", None),
            ("PATCH", f"{ME}/events/555", {"eventName": "x"}),
            ("POST", f"{ME}/events/555/complete", {"startDateTime": "a", "endDateTime": "b"}),
            ("POST", f"{ME}/attendance/555/register/create", {"inputs": []}),
        ]
        for method, path, body in wrong_app:
            r = await client.request(method, path, headers=B, params=ACCOUNT_PARAM, json=body)
            assert r.status_code == 404, (method, path, r.text)
        # App B's upsert does not see app A's event: HubSpot makes a second one.
        second = (await client.put(f"{ME}/events/555", headers=B, json=EVENT)).json()
        assert second["objectId"] != made["objectId"]
        assert sorted((e["objectId"], e["appId"]) for e in await events(client)) == sorted(
            [(made["objectId"], APP_A), (second["objectId"], APP_B)]
        )


async def test_object_id_routes_work_for_every_app_of_the_portal() -> None:
    async with two_apps() as (client, _):
        object_id = (await client.put(f"{ME}/events/555", headers=A, json=EVENT)).json()["objectId"]
        seeded = await client.post("/_sandbox/contacts", json={"contacts": [{"email": "a@example.com"}]})
        contact = seeded.json()["contacts"][0]["id"]

        got = await client.get(f"{ME}/{object_id}", headers=B)
        assert got.status_code == 200
        assert got.json()["appInfo"]["id"] == APP_A and got.json()["externalEventId"] == "555"
        patch = {"endDateTime": "2024-06-20T17:05:00Z", "eventCompleted": True, "customProperties": []}
        r = await client.patch(f"{ME}/{object_id}", headers=B, json=patch)
        assert r.status_code == 200, r.text
        assert r.json()["endDateTime"] == "2024-06-20T17:05:00Z"
        assert r.json()["eventCompleted"] is False  # not a field of the objectId update
        joined = {"joinedAt": "2024-06-20T16:01:00Z", "leftAt": "2024-06-20T16:50:00Z"}
        r = await client.post(
            f"{ME}/{object_id}/attendance/attend/create",
            headers=B,
            json={"inputs": [{"vid": contact, "interactionDateTime": 1, "properties": joined}]},
        )
        assert r.status_code == 200 and r.json()["results"][0]["vid"] == int(contact)
        [event] = await events(client)
        assert event["attendance"][contact]["state"] == "attend"
        assert event["attendance"][contact]["joinedAt"] == joined["joinedAt"]


async def test_object_id_route_errors() -> None:
    async with two_apps() as (client, _):
        object_id = (await client.put(f"{ME}/events/555", headers=A, json=EVENT)).json()["objectId"]
        no_custom = await client.patch(f"{ME}/{object_id}", headers=B, json={"eventName": "x"})
        assert no_custom.status_code == 400
        assert no_custom.json()["context"]["fields"] == ["customProperties"]
        wander = await client.post(
            f"{ME}/{object_id}/attendance/wander/create", headers=B, json={"inputs": []}
        )
        assert wander.status_code == 400
        assert (await client.delete(f"{ME}/{object_id}", headers=B)).status_code == 204
        deleted: list[tuple[str, str, Any]] = [
            ("GET", f"{ME}/{object_id}", None),
            ("PATCH", f"{ME}/{object_id}", {"customProperties": []}),
            ("POST", f"{ME}/{object_id}/attendance/register/create", {"inputs": []}),
            ("DELETE", f"{ME}/{object_id}", None),
        ]
        for method, path, body in deleted:
            r = await client.request(method, path, headers=A, json=body)
            assert r.status_code == 404, (method, path)
            assert r.json()["category"] == "OBJECT_NOT_FOUND"


async def test_identifiers_list_every_apps_events_once_the_search_caught_up() -> None:
    now = [1000.0]
    async with two_apps(search_lag_s=120.0) as (client, sandbox):
        sandbox.clock = lambda: now[0]
        first = (await client.put(f"{ME}/events/555", headers=A, json=EVENT)).json()["objectId"]
        await client.put(f"{ME}/events/555", headers=A, json={**EVENT, "externalAccountId": "other"})
        assert await identifiers(client) == {"results": [], "total": 0}  # "a few minutes after creation"
        now[0] += 60.0
        second = (await client.put(f"{ME}/events/555", headers=B, json=EVENT)).json()["objectId"]
        now[0] += 60.0
        found = await identifiers(client)
        assert found["total"] == 2
        assert [(r["objectId"], r["externalAccountId"], r["appInfo"]["id"]) for r in found["results"]] == [
            (first, ACCOUNT, APP_A),
            (found["results"][1]["objectId"], "other", APP_A),
        ]
        assert found["results"][0]["marketingEventName"] == "Launch webinar"
        now[0] += 60.0
        assert [r["objectId"] for r in (await identifiers(client))["results"]][-1] == second
        assert (await identifiers(client, "777"))["total"] == 0


async def test_a_token_added_for_another_app_is_gone_after_reset() -> None:
    async with two_apps() as (client, sandbox):
        assert sandbox.app_for_token("token-of-app-b") == APP_B
        assert sandbox.app_for_token("sandbox-token") == APP_A
        r = await client.post("/_sandbox/tokens", json={"token": "t3", "portal": 99})
        assert r.status_code == 404  # a portal the sandbox does not serve
        r = await client.post("/_sandbox/tokens", json={"token": "t3", "app_id": APP_A})
        assert r.json() == {"portal": 1, "app_id": APP_A}
        assert (await client.post("/_sandbox/reset")).status_code == 200
        assert (await client.get(f"{ME}/1/identifiers", headers=B)).status_code == 401
        assert sandbox.app_for_token("token-of-app-b") == APP_A
        assert (await client.get(f"{ME}/1/identifiers", headers=A)).status_code == 200
