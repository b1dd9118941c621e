"""The fake HubSpot's activities any account can receive (CONTRACT §4.2): 2026-03 app events (who is
refused, and how), notes with their contact associations, classic templates closed to a new app, and
the control switches; through httpx + ASGITransport."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.sandbox.hubspot import create_hubspot_sandbox, sandbox_of
from app.sandbox.hubspot_state import HubSpotSandbox

pytestmark = pytest.mark.anyio

STATIC, OAUTH = "static-token", "oauth-token"
BATCH = "/integrators/timeline/2026-03/events/batch"
NOTES = "/crm/v3/objects/notes"
TEMPLATES = "/integrators/timeline/v3/1001/event-templates"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def hs() -> AsyncIterator[tuple[httpx.AsyncClient, HubSpotSandbox]]:
    app = create_hubspot_sandbox(tokens={STATIC: 1, OAUTH: 1})
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://hubspot.test"
    ) as client:
        r = await client.post(
            "/_sandbox/activities", json={"oauth_tokens": [OAUTH], "app_event_types": ["zoom_reg"]}
        )
        assert r.status_code == 200 and r.json() == {
            "app_event_types": ["zoom_reg"],
            "oauth_tokens": 1,
            "classic_closed": False,
        }
        r = await client.post("/_sandbox/contacts", json={"contacts": [{"email": "ann@example.com"}]})
        assert r.status_code == 201
        yield client, sandbox_of(app)


def contact_id(sandbox: HubSpotSandbox) -> str:
    [contact] = sandbox.portal(1).contacts.values()
    return contact.id


def app_event(object_id: str, event_id: str = "zoom-reg-1", name: str = "zoom_reg") -> dict[str, Any]:
    return {"eventTypeName": name, "id": event_id, "objectId": object_id, "properties": {"webinar_id": "1"}}


async def test_app_events_are_stored_per_contact_for_an_oauth_token(
    hs: tuple[httpx.AsyncClient, HubSpotSandbox],
) -> None:
    client, sandbox = hs
    cid = contact_id(sandbox)
    r = await client.post(BATCH, headers=auth(OAUTH), json={"inputs": [app_event(cid)]})
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["id"] == "zoom-reg-1"
    [stored] = sandbox.portal(1).app_events_of(cid)
    assert (stored.event_type_name, stored.properties) == ("zoom_reg", {"webinar_id": "1"})
    state = (await client.get("/_sandbox/state", params={"portal": 1})).json()
    assert [e["id"] for e in state["app_events"]] == ["zoom-reg-1"]


async def test_app_events_refusals(hs: tuple[httpx.AsyncClient, HubSpotSandbox]) -> None:
    client, sandbox = hs
    cid = contact_id(sandbox)
    static = await client.post(BATCH, headers=auth(STATIC), json={"inputs": [app_event(cid)]})
    assert static.status_code == 403 and static.json()["category"] == "MISSING_SCOPES"
    unknown = await client.post(BATCH, headers=auth(OAUTH), json={"inputs": [app_event(cid, name="other")]})
    assert unknown.status_code == 400 and "other" in unknown.json()["message"]
    assert (
        await client.post(BATCH, headers=auth(OAUTH), json={"inputs": [app_event(cid)]})
    ).status_code == 200
    reused = await client.post(
        BATCH, headers=auth(OAUTH), json={"inputs": [app_event(cid, "new"), app_event(cid)]}
    )
    assert reused.status_code == 409 and reused.json()["category"] == "CONFLICT"
    single = await client.post(BATCH.removesuffix("/batch"), headers=auth(OAUTH), json=app_event(cid))
    assert single.status_code == 409
    missing = await client.post(BATCH, headers=auth(OAUTH), json={"inputs": [app_event("999", "x")]})
    assert missing.status_code == 207 and missing.json()["errors"][0]["context"] == {"id": ["x"]}
    assert len(sandbox.portal(1).app_events) == 1  # refused requests stored nothing
    sandbox.activities.app_event_types = set()
    unapproved = await client.post(BATCH, headers=auth(OAUTH), json={"inputs": [app_event(cid, "y")]})
    assert unapproved.status_code == 403 and unapproved.json()["category"] == "FORBIDDEN"


async def test_notes_with_their_contact_association(hs: tuple[httpx.AsyncClient, HubSpotSandbox]) -> None:
    client, sandbox = hs
    cid = contact_id(sandbox)
    association = {
        "to": {"id": cid},
        "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 202}],
    }
    body = {
        "properties": {"hs_timestamp": "2026-04-02T15:00:00Z", "hs_note_body": "<p>hi</p>"},
        "associations": [association],
    }
    created = await client.post(NOTES, headers=auth(STATIC), json=body)
    assert created.status_code == 201, created.text
    note_id = created.json()["id"]
    listed = await client.get(f"/crm/v4/objects/contacts/{cid}/associations/notes", headers=auth(STATIC))
    assert [r["toObjectId"] for r in listed.json()["results"]] == [int(note_id)]
    read = await client.post(
        f"{NOTES}/batch/read",
        headers=auth(STATIC),
        json={"inputs": [{"id": note_id}], "properties": ["hs_note_body"]},
    )
    assert read.json()["results"][0]["properties"]["hs_note_body"] == "<p>hi</p>"
    got = await client.get(f"{NOTES}/{note_id}", headers=auth(STATIC))
    assert got.json()["associations"]["contacts"]["results"] == [{"id": cid, "type": "note_to_contact"}]
    no_time = await client.post(NOTES, headers=auth(STATIC), json={"properties": {"hs_note_body": "x"}})
    assert no_time.status_code == 400
    wrong_type = {
        **association,
        "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 194}],
    }
    bad = await client.post(NOTES, headers=auth(STATIC), json={**body, "associations": [wrong_type]})
    assert bad.status_code == 400
    assert len(sandbox.portal(1).notes_of(cid)) == 1


async def test_classic_templates_closed_to_a_new_app(hs: tuple[httpx.AsyncClient, HubSpotSandbox]) -> None:
    client, sandbox = hs
    template = {
        "name": "T",
        "objectType": "contacts",
        "headerTemplate": "h",
        "detailTemplate": "d",
        "tokens": [],
    }
    await client.post("/_sandbox/activities", json={"classic_closed": True})
    refused = await client.post(TEMPLATES, headers=auth(STATIC), json=template)
    assert refused.status_code == 403 and refused.json()["category"] == "FORBIDDEN"
    sandbox.activities.classic_closed = False
    assert (await client.post(TEMPLATES, headers=auth(STATIC), json=template)).status_code == 201
    sandbox.activities.classic_closed = True  # an app that already has templates may add more
    assert (
        await client.post(TEMPLATES, headers=auth(STATIC), json={**template, "name": "U"})
    ).status_code == 201
    await client.post("/_sandbox/reset")
    assert sandbox.activities.classic_closed is False and sandbox.portal(1).notes == {}
