"""The fake HubSpot: endpoints, state, auth, rate limit and fault injection, through httpx + ASGITransport."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import uvicorn

from app.sandbox import hubspot as hubspot_module
from app.sandbox.hubspot import create_hubspot_sandbox, sandbox_of
from app.sandbox.hubspot_state import HubSpotSandbox

pytestmark = pytest.mark.anyio

TOKEN = "sandbox-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
APP_ID = "1001"
UPSERT = "/crm/v3/objects/contacts/batch/upsert"
READ = "/crm/v3/objects/contacts/batch/read"
TIMELINE = "/integrators/timeline/v3/events/batch/create"
TEMPLATES = f"/integrators/timeline/v3/{APP_ID}/event-templates"
ME = "/marketing/v3/marketing-events"
ACCOUNT = "zoom-acct-1"


@asynccontextmanager
async def sandbox_client(**options: Any) -> AsyncIterator[tuple[httpx.AsyncClient, HubSpotSandbox]]:
    app = create_hubspot_sandbox(**options)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hubspot.test") as client:
        yield client, sandbox_of(app)


@pytest.fixture
async def hs() -> AsyncIterator[httpx.AsyncClient]:
    async with sandbox_client() as (client, _):
        yield client


def upsert_input(email: str, **properties: Any) -> dict[str, Any]:
    return {"id": email, "idProperty": "email", "properties": properties}


async def upsert(client: httpx.AsyncClient, *inputs: dict[str, Any], headers: Any = AUTH) -> httpx.Response:
    return await client.post(UPSERT, headers=headers, json={"inputs": list(inputs)})


async def seed_contacts(client: httpx.AsyncClient, *contacts: dict[str, Any], portal: int = 1) -> list[str]:
    r = await client.post("/_sandbox/contacts", json={"portal": portal, "contacts": list(contacts)})
    assert r.status_code == 201, r.text
    return [c["id"] for c in r.json()["contacts"]]


async def state(client: httpx.AsyncClient, portal: int = 1) -> dict[str, Any]:
    r = await client.get("/_sandbox/state", params={"portal": portal})
    assert r.status_code == 200
    snapshot: dict[str, Any] = r.json()
    return snapshot


def assert_error_shape(body: dict[str, Any], category: str) -> None:
    assert body["status"] == "error"
    assert body["category"] == category
    assert body["message"]
    assert body["correlationId"]


# --------------------------------------------------------------------------------------------------
# Auth and batch limits
# --------------------------------------------------------------------------------------------------


class TestAuth:
    async def test_missing_or_unknown_token_is_401_with_hubspot_error(self, hs: httpx.AsyncClient) -> None:
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {TOKEN}"}):
            r = await hs.get("/crm/v3/objects/contacts", headers=headers)
            assert r.status_code == 401
            assert_error_shape(r.json(), "INVALID_AUTHENTICATION")
        s = await state(hs)
        assert s["global_stats"]["unauthorized"] == 3
        assert s["contacts"] == []

    async def test_control_api_needs_no_token(self, hs: httpx.AsyncClient) -> None:
        assert (await hs.get("/_sandbox/health")).json() == {"status": "ok"}
        assert (await hs.get("/_sandbox/state")).status_code == 200

    async def test_token_selects_the_portal(self) -> None:
        async with sandbox_client(tokens={"tok-a": 1, "tok-b": 2}) as (client, sandbox):
            r = await upsert(client, upsert_input("a@example.com"), headers={"Authorization": "Bearer tok-b"})
            assert r.status_code == 200
            assert [c["properties"]["email"] for c in (await state(client, 2))["contacts"]] == [
                "a@example.com"
            ]
            assert (await state(client, 1))["contacts"] == []
            assert sandbox.portal(2).stats.requests[f"POST {UPSERT}"] == 1
            assert sandbox.portal(1).stats.total == 0
            assert (await client.get("/_sandbox/state", params={"portal": 3})).status_code == 404


class TestBatchLimits:
    @pytest.mark.parametrize(
        ("path", "item"),
        [
            (UPSERT, upsert_input("x@example.com")),
            (READ, {"id": "x@example.com"}),
            (TIMELINE, {"eventTemplateId": "1", "objectId": "1", "tokens": {}}),
            ("/crm/v3/objects/calls/batch/update", {"id": "1", "properties": {}}),
            (
                "/crm/v4/associations/calls/contacts/batch/associate/default",
                {"from": {"id": 1}, "to": {"id": 2}},
            ),
            ("/automation/v4/actions/callbacks/complete", {"callbackId": "cb", "outputFields": {}}),
        ],
    )
    async def test_more_than_100_inputs_is_400(
        self, hs: httpx.AsyncClient, path: str, item: dict[str, Any]
    ) -> None:
        r = await hs.post(path, headers=AUTH, json={"inputs": [item] * 101})
        assert r.status_code == 400, r.text
        assert_error_shape(r.json(), "VALIDATION_ERROR")
        assert "100" in r.json()["message"]

    async def test_malformed_body_is_400_validation_error(self, hs: httpx.AsyncClient) -> None:
        r = await hs.post(UPSERT, headers=AUTH, json={"inputs": [{"idProperty": "email"}]})
        assert r.status_code == 400
        assert_error_shape(r.json(), "VALIDATION_ERROR")


# --------------------------------------------------------------------------------------------------
# Contacts
# --------------------------------------------------------------------------------------------------


class TestContactUpsert:
    async def test_create_then_update_sets_new_flag(self, hs: httpx.AsyncClient) -> None:
        r = await upsert(hs, upsert_input("Ann@Example.com", firstname="Ann"))
        assert r.status_code == 200
        body = r.json()
        assert body["status"] == "COMPLETE" and "errors" not in body
        (created,) = body["results"]
        assert created["new"] is True and created["archived"] is False
        assert created["properties"]["email"] == "ann@example.com"
        assert created["properties"]["firstname"] == "Ann"
        assert {"id", "createdAt", "updatedAt"} <= created.keys()

        r = await upsert(hs, upsert_input("ann@example.com", lastname="Lee", firstname="Annie"))
        (updated,) = r.json()["results"]
        assert updated["new"] is False
        assert updated["id"] == created["id"]
        assert updated["properties"]["firstname"] == "Annie"
        assert updated["properties"]["lastname"] == "Lee"
        s = await state(hs)
        assert len(s["contacts"]) == 1 and s["contacts"][0]["writes"] == 1

    async def test_invalid_email_is_a_207_error_entry(self, hs: httpx.AsyncClient) -> None:
        r = await upsert(hs, upsert_input("ok@example.com"), upsert_input("not-an-email"))
        assert r.status_code == 207
        body = r.json()
        assert len(body["results"]) == 1 and body["numErrors"] == 1
        (error,) = body["errors"]
        assert error["status"] == "error" and error["category"] == "VALIDATION_ERROR"
        assert "INVALID_EMAIL" in error["message"]
        assert error["errors"][0]["code"] == "INVALID_EMAIL"
        assert error["context"]["id"] == ["not-an-email"]

    async def test_archived_contact_is_not_resurrected(self, hs: httpx.AsyncClient) -> None:
        (gone,) = await seed_contacts(hs, {"email": "gone@example.com", "archived": True})
        r = await upsert(
            hs, upsert_input("gone@example.com", firstname="Back"), upsert_input("new@example.com")
        )
        assert r.status_code == 207
        body = r.json()
        assert [c["properties"]["email"] for c in body["results"]] == ["new@example.com"]
        (error,) = body["errors"]
        assert error["errors"][0]["code"] == "CONTACT_ARCHIVED"
        assert error["context"]["objectId"] == [gone]
        contacts = {c["id"]: c for c in (await state(hs))["contacts"]}
        assert contacts[gone]["archived"] is True
        assert "firstname" not in contacts[gone]["properties"]
        assert len(contacts) == 2

    async def test_contact_deleted_through_the_api_stays_deleted(self, hs: httpx.AsyncClient) -> None:
        (created,) = (await upsert(hs, upsert_input("del@example.com"))).json()["results"]
        r = await hs.delete(f"/crm/v3/objects/contacts/{created['id']}", headers=AUTH)
        assert r.status_code == 204
        assert (await hs.get(f"/crm/v3/objects/contacts/{created['id']}", headers=AUTH)).status_code == 404
        r = await hs.get(
            f"/crm/v3/objects/contacts/{created['id']}", headers=AUTH, params={"archived": "true"}
        )
        assert r.status_code == 200 and r.json()["archived"] is True and r.json()["archivedAt"]
        r = await upsert(hs, upsert_input("del@example.com"))
        assert r.status_code == 207 and r.json()["results"] == []

    async def test_gdpr_delete_removes_the_contact_for_good(self, hs: httpx.AsyncClient) -> None:
        (cid,) = await seed_contacts(hs, {"email": "gdpr@example.com"})
        body = {"objectId": "gdpr@example.com", "idProperty": "email"}
        assert (
            await hs.post("/crm/v3/objects/contacts/gdpr-delete", headers=AUTH, json=body)
        ).status_code == 204
        for archived in ("false", "true"):
            r = await hs.get(f"/crm/v3/objects/contacts/{cid}", headers=AUTH, params={"archived": archived})
            assert r.status_code == 404
        assert (await state(hs))["contacts"] == []

    async def test_duplicate_ids_in_one_batch_are_rejected(self, hs: httpx.AsyncClient) -> None:
        r = await upsert(hs, upsert_input("dup@example.com"), upsert_input("DUP@example.com"))
        assert r.status_code == 400
        assert_error_shape(r.json(), "VALIDATION_ERROR")

    async def test_undefined_and_invalid_properties_are_error_entries(self, hs: httpx.AsyncClient) -> None:
        r = await upsert(hs, upsert_input("p@example.com", zoom_webinar_attendance_count="2"))
        assert r.status_code == 207
        assert r.json()["errors"][0]["errors"][0]["code"] == "PROPERTY_DOESNT_EXIST"
        await hs.post(
            "/crm/v3/properties/contacts/groups",
            headers=AUTH,
            json={"name": "zoom_webinars", "label": "Zoom webinars"},
        )
        prop = {
            "name": "zoom_webinar_attendance_count",
            "label": "Attendance count",
            "type": "number",
            "fieldType": "number",
            "groupName": "zoom_webinars",
        }
        assert (await hs.post("/crm/v3/properties/contacts", headers=AUTH, json=prop)).status_code == 201
        r = await upsert(hs, upsert_input("p@example.com", zoom_webinar_attendance_count=2))
        assert r.status_code == 200
        assert r.json()["results"][0]["properties"]["zoom_webinar_attendance_count"] == "2"
        r = await upsert(hs, upsert_input("p@example.com", zoom_webinar_attendance_count="two"))
        assert r.json()["errors"][0]["errors"][0]["code"] == "INVALID_NUMBER"

    async def test_lenient_mode_accepts_any_property(self) -> None:
        async with sandbox_client(strict_properties=False) as (client, _):
            r = await upsert(client, upsert_input("x@example.com", anything="1"))
            assert r.status_code == 200


class TestContactRead:
    async def test_batch_read_resolves_secondary_emails(self, hs: httpx.AsyncClient) -> None:
        (main_id,) = await seed_contacts(
            hs,
            {
                "email": "main@example.com",
                "properties": {
                    "firstname": "Main",
                    "hs_additional_emails": "alt@example.com; Old@Example.com",
                },
            },
        )
        body = {
            "idProperty": "email",
            "inputs": [
                {"id": "alt@example.com"},
                {"id": "old@example.com"},
                {"id": "main@example.com"},
                {"id": "nobody@example.com"},
            ],
            "properties": ["email", "hs_additional_emails"],
        }
        r = await hs.post(READ, headers=AUTH, json=body)
        assert r.status_code == 207
        data = r.json()
        (result,) = data["results"]  # three inputs resolve to the same contact, returned once
        assert result["id"] == main_id
        assert result["properties"]["email"] == "main@example.com"
        assert result["properties"]["hs_additional_emails"] == "alt@example.com; Old@Example.com"
        assert "firstname" not in result["properties"]
        assert {"hs_object_id", "createdate", "lastmodifieddate"} <= result["properties"].keys()
        (error,) = data["errors"]
        assert error["category"] == "OBJECT_NOT_FOUND"
        assert error["context"]["ids"] == ["nobody@example.com"]

    async def test_batch_read_by_id_and_archived_flag(self, hs: httpx.AsyncClient) -> None:
        live, gone = await seed_contacts(
            hs, {"email": "live@example.com"}, {"email": "gone@example.com", "archived": True}
        )
        r = await hs.post(READ, headers=AUTH, json={"inputs": [{"id": live}, {"id": gone}]})
        assert r.status_code == 207
        assert [c["id"] for c in r.json()["results"]] == [live]
        assert r.json()["errors"][0]["context"]["ids"] == [gone]
        body = {"idProperty": "email", "inputs": [{"id": "gone@example.com"}]}
        r = await hs.post(READ, headers=AUTH, params={"archived": "true"}, json=body)
        assert r.status_code == 200
        (result,) = r.json()["results"]
        assert result["id"] == gone and result["archived"] is True

    async def test_get_single_contact_and_list_with_paging(self, hs: httpx.AsyncClient) -> None:
        ids = await seed_contacts(hs, *({"email": f"c{i}@example.com"} for i in range(5)))
        r = await hs.get(f"/crm/v3/objects/contacts/{ids[0]}", headers=AUTH, params={"properties": "email"})
        assert r.status_code == 200 and r.json()["properties"]["email"] == "c0@example.com"
        r = await hs.get(
            "/crm/v3/objects/contacts/c1@example.com", headers=AUTH, params={"idProperty": "email"}
        )
        assert r.json()["id"] == ids[1]
        missing = await hs.get("/crm/v3/objects/contacts/999999", headers=AUTH)
        assert missing.status_code == 404
        assert_error_shape(missing.json(), "OBJECT_NOT_FOUND")

        seen: list[str] = []
        params: dict[str, Any] = {"limit": 2}
        while True:
            page = (await hs.get("/crm/v3/objects/contacts", headers=AUTH, params=params)).json()
            seen += [c["id"] for c in page["results"]]
            if "paging" not in page:
                break
            params["after"] = page["paging"]["next"]["after"]
        assert seen == ids


# --------------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------------


class TestProperties:
    async def test_groups_and_properties(self, hs: httpx.AsyncClient) -> None:
        group = {"name": "zoom_webinars", "label": "Zoom webinars"}
        r = await hs.post("/crm/v3/properties/contacts/groups", headers=AUTH, json=group)
        assert r.status_code == 201 and r.json()["name"] == "zoom_webinars"
        r = await hs.post("/crm/v3/properties/contacts/groups", headers=AUTH, json=group)
        assert r.status_code == 409
        assert (
            await hs.get("/crm/v3/properties/contacts/groups/zoom_webinars", headers=AUTH)
        ).status_code == 200
        groups = (await hs.get("/crm/v3/properties/contacts/groups", headers=AUTH)).json()["results"]
        assert "zoom_webinars" in {g["name"] for g in groups}

        missing = await hs.get(
            "/crm/v3/properties/contacts/zoom_webinar_average_attendance_percent", headers=AUTH
        )
        assert missing.status_code == 404
        assert_error_shape(missing.json(), "OBJECT_NOT_FOUND")
        prop = {
            "name": "zoom_webinar_average_attendance_percent",
            "label": "Average attendance (%)",
            "type": "number",
            "fieldType": "number",
            "groupName": "zoom_webinars",
            "numberDisplayHint": "percentage",
        }
        r = await hs.post("/crm/v3/properties/contacts", headers=AUTH, json=prop)
        assert r.status_code == 201
        assert r.json()["numberDisplayHint"] == "percentage"
        dup = await hs.post("/crm/v3/properties/contacts", headers=AUTH, json=prop)
        assert dup.status_code == 409
        assert_error_shape(dup.json(), "OBJECT_ALREADY_EXISTS")
        got = await hs.get(f"/crm/v3/properties/contacts/{prop['name']}", headers=AUTH)
        assert got.status_code == 200 and got.json()["groupName"] == "zoom_webinars"
        names = {
            p["name"] for p in (await hs.get("/crm/v3/properties/contacts", headers=AUTH)).json()["results"]
        }
        assert {"email", "hs_additional_emails", prop["name"]} <= names

    async def test_property_in_unknown_group_is_400(self, hs: httpx.AsyncClient) -> None:
        prop = {"name": "x", "label": "X", "type": "string", "fieldType": "text", "groupName": "nope"}
        r = await hs.post("/crm/v3/properties/contacts", headers=AUTH, json=prop)
        assert r.status_code == 400


# --------------------------------------------------------------------------------------------------
# Timeline
# --------------------------------------------------------------------------------------------------

REGISTRATION_TEMPLATE = {
    "name": "Zoom webinar registration",
    "objectType": "contacts",
    "headerTemplate": "Registered for {{webinar_name}}",
    "tokens": [
        {"name": "webinar_id", "label": "Webinar ID", "type": "string"},
        {"name": "webinar_name", "label": "Webinar name", "type": "string"},
    ],
}


async def make_template(client: httpx.AsyncClient) -> str:
    r = await client.post(TEMPLATES, headers=AUTH, json=REGISTRATION_TEMPLATE)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


class TestTimeline:
    async def test_templates(self, hs: httpx.AsyncClient) -> None:
        template_id = await make_template(hs)
        got = (await hs.get(f"{TEMPLATES}/{template_id}", headers=AUTH)).json()
        assert got["name"] == "Zoom webinar registration"
        assert [t["name"] for t in got["tokens"]] == ["webinar_id", "webinar_name"]
        listed = (await hs.get(TEMPLATES, headers=AUTH)).json()["results"]
        assert [t["id"] for t in listed] == [template_id]
        assert (await hs.get(f"{TEMPLATES}/424242", headers=AUTH)).status_code == 404
        assert (await hs.get("/integrators/timeline/v3/999/event-templates", headers=AUTH)).status_code == 404

    async def test_events_are_immutable_and_duplicates_are_error_entries(self, hs: httpx.AsyncClient) -> None:
        template_id = await make_template(hs)
        (contact,) = await seed_contacts(hs, {"email": "t@example.com"})
        event = {
            "eventTemplateId": template_id,
            "objectId": contact,
            "id": "reg-1",
            "tokens": {"webinar_id": "123", "webinar_name": "Launch"},
        }
        r = await hs.post(TIMELINE, headers=AUTH, json={"inputs": [event]})
        assert r.status_code == 201
        assert r.json()["results"][0]["id"] == "reg-1"

        changed = {**event, "tokens": {"webinar_id": "123", "webinar_name": "Changed"}}
        other = {**event, "id": "reg-2"}
        r = await hs.post(TIMELINE, headers=AUTH, json={"inputs": [changed, other]})
        assert r.status_code == 207
        body = r.json()
        assert [e["id"] for e in body["results"]] == ["reg-2"]
        (error,) = body["errors"]
        assert error["errors"][0]["code"] == "DUPLICATE_EVENT_ID"
        assert error["context"]["eventId"] == ["reg-1"]

        stored = await hs.get(f"/integrators/timeline/v3/events/{template_id}/reg-1", headers=AUTH)
        assert stored.status_code == 200
        assert stored.json()["tokens"]["webinar_name"] == "Launch"
        assert len((await state(hs))["timeline_events"]) == 2

    async def test_event_input_errors(self, hs: httpx.AsyncClient) -> None:
        template_id = await make_template(hs)
        (contact,) = await seed_contacts(hs, {"email": "t@example.com"})
        inputs = [
            {"eventTemplateId": template_id, "objectId": "999999", "tokens": {"webinar_id": "1"}},
            {"eventTemplateId": template_id, "objectId": contact, "tokens": {"unknown": "x"}},
            {"eventTemplateId": "424242", "objectId": contact, "tokens": {}},
            {"eventTemplateId": template_id, "email": "t@example.com", "tokens": {}},
        ]
        r = await hs.post(TIMELINE, headers=AUTH, json={"inputs": inputs})
        assert r.status_code == 207
        assert r.json()["results"] == [] and r.json()["numErrors"] == 4
        assert (await state(hs))["timeline_events"] == []
        missing = await hs.get(f"/integrators/timeline/v3/events/{template_id}/nope", headers=AUTH)
        assert missing.status_code == 404


# --------------------------------------------------------------------------------------------------
# Marketing events
# --------------------------------------------------------------------------------------------------

WEBINAR_EVENT = {
    "externalAccountId": ACCOUNT,
    "eventName": "Launch webinar",
    "eventOrganizer": "Example Inc",
    "eventType": "WEBINAR",
    "startDateTime": "2024-06-20T16:00:00Z",
    "endDateTime": "2024-06-20T17:00:00Z",
    "eventUrl": "https://zoom.us/webinar/register/WN_abc",
}


async def attendance(
    client: httpx.AsyncClient, state_name: str, *inputs: dict[str, Any], event_id: str = "555"
) -> httpx.Response:
    return await client.post(
        f"{ME}/attendance/{event_id}/{state_name}/create",
        headers=AUTH,
        params={"externalAccountId": ACCOUNT},
        json={"inputs": list(inputs)},
    )


class TestMarketingEvents:
    async def test_upsert_get_patch_and_not_found(self, hs: httpx.AsyncClient) -> None:
        r = await hs.put(f"{ME}/events/555", headers=AUTH, json=WEBINAR_EVENT)
        assert r.status_code == 200
        object_id = r.json()["objectId"]
        r = await hs.put(f"{ME}/events/555", headers=AUTH, json={**WEBINAR_EVENT, "eventName": "Renamed"})
        assert r.json()["objectId"] == object_id and r.json()["eventName"] == "Renamed"
        r = await hs.patch(
            f"{ME}/events/555",
            headers=AUTH,
            params={"externalAccountId": ACCOUNT},
            json={"eventUrl": "https://x"},
        )
        assert r.status_code == 200 and r.json()["eventUrl"] == "https://x"
        got = (await hs.get(f"{ME}/events/555", headers=AUTH, params={"externalAccountId": ACCOUNT})).json()
        assert (
            got["eventName"] == "Renamed" and got["eventType"] == "WEBINAR" and got["eventCompleted"] is False
        )
        for path in (f"{ME}/events/556", f"{ME}/events/555"):
            account = "other" if path.endswith("555") else ACCOUNT
            r = await hs.get(path, headers=AUTH, params={"externalAccountId": account})
            assert r.status_code == 404
            assert_error_shape(r.json(), "OBJECT_NOT_FOUND")
        r = await hs.post(f"{ME}/events", headers=AUTH, json={**WEBINAR_EVENT, "externalEventId": "555"})
        assert r.status_code == 409
        r = await hs.post(f"{ME}/events", headers=AUTH, json={**WEBINAR_EVENT, "externalEventId": "600"})
        assert r.status_code == 200 and r.json()["externalEventId"] == "600"

    async def test_attendance_states_latest_interaction_wins(self, hs: httpx.AsyncClient) -> None:
        await hs.put(f"{ME}/events/555", headers=AUTH, json=WEBINAR_EVENT)
        a, b, c = await seed_contacts(
            hs, {"email": "a@example.com"}, {"email": "b@example.com"}, {"email": "c@example.com"}
        )
        t0 = 1_718_899_200_000
        r = await attendance(
            hs,
            "register",
            {"vid": int(a), "interactionDateTime": t0},
            {"vid": int(b), "interactionDateTime": t0},
            {"vid": int(c), "interactionDateTime": t0},
            {"vid": 999999, "interactionDateTime": t0},
        )
        assert r.status_code == 200  # HubSpot answers 200 even with failed inputs
        assert [x["vid"] for x in r.json()["results"]] == [int(a), int(b), int(c)]
        assert r.json()["errors"][0]["context"]["vid"] == ["999999"]

        joined = {"joinedAt": "2024-06-20T16:01:00Z", "leftAt": "2024-06-20T16:50:00Z"}
        await attendance(hs, "attend", {"vid": a, "interactionDateTime": t0 + 60_000, "properties": joined})
        await attendance(hs, "cancel", {"vid": b, "interactionDateTime": t0 + 1000})
        # A late, older "register" does not override a newer state.
        await attendance(hs, "register", {"vid": a, "interactionDateTime": t0 - 5000})
        # A newer cancel wins the state, but the attendance is kept with its times.
        await attendance(hs, "cancel", {"vid": c, "interactionDateTime": t0 + 10})
        await attendance(hs, "attend", {"vid": c, "interactionDateTime": t0 + 5, "properties": joined})

        (event,) = (await state(hs))["marketing_events"]
        states = event["attendance"]
        assert states[a]["state"] == "attend"
        assert (states[a]["joinedAt"], states[a]["leftAt"]) == (joined["joinedAt"], joined["leftAt"])
        assert states[b]["state"] == "cancel" and states[b]["attended"] is False
        assert states[c]["state"] == "cancel" and states[c]["attended"] is True
        assert states[c]["joinedAt"] == joined["joinedAt"]
        assert len(states[a]["history"]) == 3
        got = (await hs.get(f"{ME}/events/555", headers=AUTH, params={"externalAccountId": ACCOUNT})).json()
        assert (got["registrants"], got["attendees"], got["cancellations"]) == (3, 2, 2)

    async def test_create_names_the_missing_required_fields(self, hs: httpx.AsyncClient) -> None:
        body = {k: v for k, v in WEBINAR_EVENT.items() if k != "eventOrganizer"}
        r = await hs.post(f"{ME}/events", headers=AUTH, json={**body, "externalEventId": ""})
        assert r.status_code == 400
        assert_error_shape(r.json(), "VALIDATION_ERROR")
        assert r.json()["context"]["fields"] == ["externalEventId", "eventOrganizer"]
        assert (await state(hs))["marketing_events"] == []

    async def test_attendance_without_a_readable_time_takes_the_time_of_the_call(
        self, hs: httpx.AsyncClient
    ) -> None:
        await hs.put(f"{ME}/events/555", headers=AUTH, json=WEBINAR_EVENT)
        a, b = await seed_contacts(hs, {"email": "a@example.com"}, {"email": "b@example.com"})
        before = int(time.time() * 1000)
        await attendance(hs, "register", {"vid": a}, {"vid": b, "interactionDateTime": "not a time"})
        after = int(time.time() * 1000)
        (event,) = (await state(hs))["marketing_events"]
        for contact in (a, b):
            assert before <= event["attendance"][contact]["interactionDateTime"] <= after

    async def test_attendance_errors(self, hs: httpx.AsyncClient) -> None:
        (a,) = await seed_contacts(hs, {"email": "a@example.com"})
        assert (await attendance(hs, "register", {"vid": a})).status_code == 404
        await hs.put(f"{ME}/events/555", headers=AUTH, json=WEBINAR_EVENT)
        assert (await attendance(hs, "wander", {"vid": a})).status_code == 400

    async def test_complete(self, hs: httpx.AsyncClient) -> None:
        await hs.put(f"{ME}/events/555", headers=AUTH, json=WEBINAR_EVENT)
        times = {"startDateTime": "2024-06-20T16:02:00Z", "endDateTime": "2024-06-20T17:05:00Z"}
        r = await hs.post(
            f"{ME}/events/555/complete", headers=AUTH, params={"externalAccountId": ACCOUNT}, json=times
        )
        assert r.status_code == 200
        assert r.json()["eventCompleted"] is True
        assert r.json()["endDateTime"] == "2024-06-20T17:05:00Z"
        (event,) = (await state(hs))["marketing_events"]
        assert event["completedAt"] is not None
        r = await hs.post(
            f"{ME}/events/555/complete", headers=AUTH, params={"externalAccountId": ACCOUNT}, json={}
        )
        assert r.status_code == 400
        r = await hs.post(
            f"{ME}/events/777/complete", headers=AUTH, params={"externalAccountId": ACCOUNT}, json=times
        )
        assert r.status_code == 404


# --------------------------------------------------------------------------------------------------
# Calls
# --------------------------------------------------------------------------------------------------


def call_body(contact_ids: list[str], url: str = "https://zoom.us/rec/share/abc.mp4") -> dict[str, Any]:
    return {
        "properties": {
            "hs_timestamp": "2024-06-20T16:00:00Z",
            "hs_call_title": "Launch webinar recording",
            "hs_call_body": "transcript text",
            "hs_call_recording_url": url,
            "hs_call_duration": 3_600_000,
            "hs_call_status": "COMPLETED",
        },
        "associations": [
            {
                "to": {"id": cid},
                "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 194}],
            }
            for cid in contact_ids
        ],
    }


class TestCalls:
    async def test_recording_url_must_be_https(self, hs: httpx.AsyncClient) -> None:
        r = await hs.post("/crm/v3/objects/calls", headers=AUTH, json=call_body([], url="http://zoom.us/rec"))
        assert r.status_code == 400
        assert_error_shape(r.json(), "VALIDATION_ERROR")
        assert (await state(hs))["calls"] == []

    async def test_create_with_associations_update_and_associate(self, hs: httpx.AsyncClient) -> None:
        a, b, c = await seed_contacts(
            hs, {"email": "a@example.com"}, {"email": "b@example.com"}, {"email": "c@example.com"}
        )
        r = await hs.post("/crm/v3/objects/calls", headers=AUTH, json=call_body([a]))
        assert r.status_code == 201
        call_id = r.json()["id"]
        assert r.json()["properties"]["hs_call_duration"] == "3600000"

        r = await hs.patch(
            f"/crm/v3/objects/calls/{call_id}", headers=AUTH, json={"properties": {"hs_call_title": "New"}}
        )
        assert r.status_code == 200 and r.json()["properties"]["hs_call_title"] == "New"
        bad = {"properties": {"hs_call_recording_url": "ftp://x"}}
        assert (await hs.patch(f"/crm/v3/objects/calls/{call_id}", headers=AUTH, json=bad)).status_code == 400

        r = await hs.put(f"/crm/v4/objects/calls/{call_id}/associations/default/contacts/{b}", headers=AUTH)
        assert r.status_code == 200
        assert r.json()["results"][0]["associationSpec"]["associationTypeId"] == 194
        pairs = {
            "inputs": [
                {"from": {"id": call_id}, "to": {"id": c}},
                {"from": {"id": call_id}, "to": {"id": "9"}},
            ]
        }
        r = await hs.post(
            "/crm/v4/associations/calls/contacts/batch/associate/default", headers=AUTH, json=pairs
        )
        assert r.status_code == 207 and len(r.json()["results"]) == 1
        assert r.json()["errors"][0]["context"]["toId"] == ["9"]

        got = await hs.get(
            f"/crm/v3/objects/calls/{call_id}", headers=AUTH, params={"associations": "contacts"}
        )
        linked = [x["id"] for x in got.json()["associations"]["contacts"]["results"]]
        assert linked == [a, b, c]
        plain = await hs.get(f"/crm/v3/objects/calls/{call_id}", headers=AUTH)
        assert "associations" not in plain.json()
        (call,) = (await state(hs))["calls"]
        assert call["properties"]["hs_call_title"] == "New"

    async def test_batch_update_and_missing_call(self, hs: httpx.AsyncClient) -> None:
        (a,) = await seed_contacts(hs, {"email": "a@example.com"})
        call_id = (await hs.post("/crm/v3/objects/calls", headers=AUTH, json=call_body([a]))).json()["id"]
        inputs = [
            {"id": call_id, "properties": {"hs_call_body": "summary"}},
            {"id": "404", "properties": {}},
            {"id": call_id, "properties": {"hs_call_recording_url": "http://insecure"}},
        ]
        r = await hs.post("/crm/v3/objects/calls/batch/update", headers=AUTH, json={"inputs": inputs})
        assert r.status_code == 207
        assert r.json()["numErrors"] == 2
        assert r.json()["results"][0]["properties"]["hs_call_body"] == "summary"
        assert (await hs.get("/crm/v3/objects/calls/404", headers=AUTH)).status_code == 404

    async def test_association_to_unknown_contact_is_rejected(self, hs: httpx.AsyncClient) -> None:
        r = await hs.post("/crm/v3/objects/calls", headers=AUTH, json=call_body(["999999"]))
        assert r.status_code == 404
        assert (await state(hs))["calls"] == []


CALLS = "/crm/v3/objects/calls"
SEARCH = "/crm/v3/objects/calls/search"


def marked_call(marker: str, title: str = "Launch webinar recording") -> dict[str, Any]:
    body = call_body([])
    body["properties"].update(hs_call_external_id=marker, hs_call_title=title)
    return body


def where(*groups: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"filterGroups": [{"filters": filters} for filters in groups], **extra}


def eq(name: str, value: str) -> dict[str, Any]:
    return {"propertyName": name, "operator": "EQ", "value": value}


async def search(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    r = await client.post(SEARCH, headers=AUTH, json=body)
    assert r.status_code == 200, r.text
    found: dict[str, Any] = r.json()
    return found


def found_ids(page: dict[str, Any]) -> list[str]:
    return [result["id"] for result in page["results"]]


class TestCallSearch:
    async def test_filters_groups_properties_and_paging(self, hs: httpx.AsyncClient) -> None:
        ids = []
        for marker, title in [("m-1", "One"), ("m-2", "Two"), ("m-3", "Two")]:
            r = await hs.post(CALLS, headers=AUTH, json=marked_call(marker, title))
            assert r.status_code == 201
            ids.append(r.json()["id"])
        page = await search(hs, where([eq("hs_call_external_id", "m-2")], properties=["hs_call_title"]))
        assert page["total"] == 1 and found_ids(page) == [ids[1]]
        assert page["results"][0]["properties"] == {"hs_object_id": ids[1], "hs_call_title": "Two"}
        assert "paging" not in page
        # Groups are ORed, filters of a group ANDed.
        page = await search(
            hs,
            where(
                [eq("hs_call_external_id", "m-1")],
                [eq("hs_call_title", "Two"), eq("hs_call_external_id", "m-3")],
            ),
        )
        assert found_ids(page) == [ids[0], ids[2]]
        page = await search(hs, where([{"propertyName": "hs_call_title", "operator": "NEQ", "value": "Two"}]))
        assert found_ids(page) == [ids[0]]
        page = await search(
            hs, where([{"propertyName": "hs_call_external_id", "operator": "IN", "values": ["m-3", "m-9"]}])
        )
        assert found_ids(page) == [ids[2]]
        page = await search(hs, where([{"propertyName": "hs_call_source", "operator": "NOT_HAS_PROPERTY"}]))
        assert page["total"] == 3
        assert (await search(hs, where([eq("hs_call_external_id", "m-9")]))) == {"total": 0, "results": []}
        # Paging through everything, two at a time.
        first = await search(hs, {"limit": 2})
        assert found_ids(first) == ids[:2] and first["total"] == 3
        rest = await search(hs, {"limit": 2, "after": first["paging"]["next"]["after"]})
        assert found_ids(rest) == ids[2:] and "paging" not in rest

    @pytest.mark.parametrize(
        "body",
        [
            {"limit": 201},
            where([{"propertyName": "hs_call_title", "operator": "CONTAINS_TOKEN", "value": "x"}]),
            where([{"propertyName": "hs_call_title", "operator": "EQ"}]),
            where(*[[eq("hs_call_title", "x")] for _ in range(6)]),
            where([eq("hs_call_title", "x")] * 11),
            {"sorts": [{"propertyName": "hs_createdate", "direction": "DESCENDING"}]},
        ],
    )
    async def test_what_it_cannot_do_is_a_400(self, hs: httpx.AsyncClient, body: dict[str, Any]) -> None:
        r = await hs.post(SEARCH, headers=AUTH, json=body)
        assert r.status_code == 400, r.text
        assert_error_shape(r.json(), "VALIDATION_ERROR")

    async def test_search_lags_behind_creates_and_updates(self) -> None:
        now = [1000.0]
        async with sandbox_client(search_lag_s=5.0) as (client, sandbox):
            sandbox.clock = lambda: now[0]
            call_id = (await client.post(CALLS, headers=AUTH, json=marked_call("m-1"))).json()["id"]
            # Reads by id see the call at once; search does not yet.
            assert (await client.get(f"{CALLS}/{call_id}", headers=AUTH)).status_code == 200
            assert (await search(client, where([eq("hs_call_external_id", "m-1")])))["total"] == 0
            now[0] += 5.0
            assert found_ids(await search(client, where([eq("hs_call_external_id", "m-1")]))) == [call_id]
            # An update shows the old values until the index caught up.
            patch = {"properties": {"hs_call_title": "Renamed"}}
            assert (await client.patch(f"{CALLS}/{call_id}", headers=AUTH, json=patch)).status_code == 200
            now[0] += 4.0
            old = where([eq("hs_call_title", "Launch webinar recording")])
            assert found_ids(await search(client, old)) == [call_id]
            assert (await search(client, where([eq("hs_call_title", "Renamed")])))["total"] == 0
            now[0] += 1.0
            assert (await search(client, old))["total"] == 0
            assert found_ids(await search(client, where([eq("hs_call_title", "Renamed")]))) == [call_id]
            # The lag is a fault setting: lifting it shows everything at once.
            r = await client.post("/_sandbox/faults", json={"search_lag_s": 0})
            assert r.json()["search_lag_s"] == 0
            await client.post(CALLS, headers=AUTH, json=marked_call("m-2"))
            assert (await search(client, where([eq("hs_call_external_id", "m-2")])))["total"] == 1


class TestLostAnswers:
    async def test_create_is_applied_then_answered_504(self, hs: httpx.AsyncClient) -> None:
        r = await hs.post("/_sandbox/faults", json={"drop_answer_after_apply": 2})
        assert r.json()["drop_answer_after_apply"] == 2
        assert r.json()["drop_answer_route"] == "POST /crm/v3/objects/calls"
        # A refused request is not applied, so it does not use the fault up.
        assert (await hs.post(CALLS, headers=AUTH, json=call_body([], url="http://x"))).status_code == 400
        # Other routes are not touched, nor is a search of calls.
        assert (await upsert(hs, upsert_input("a@example.com"))).status_code == 200
        assert (await hs.post(SEARCH, headers=AUTH, json={})).status_code == 200
        for marker in ("m-1", "m-2"):
            r = await hs.post(CALLS, headers=AUTH, json=marked_call(marker))
            assert r.status_code == 504
            assert r.headers["content-type"].startswith("text/html")
            assert "Gateway Time-out" in r.text
        r = await hs.post(CALLS, headers=AUTH, json=marked_call("m-3"))
        assert r.status_code == 201
        s = await state(hs)
        # Every create was applied, whatever its answer said.
        assert [c["properties"]["hs_call_external_id"] for c in s["calls"]] == ["m-1", "m-2", "m-3"]
        assert s["faults"]["drop_answer_after_apply"] == 0
        assert s["stats"]["faults"] == 2
        assert s["stats"]["statuses"] == {"400": 1, "200": 2, "504": 2, "201": 1}

    async def test_route_prefix_and_reset(self) -> None:
        async with sandbox_client(drop_answer_after_apply=1, drop_answer_route="PATCH /crm/v3/*") as (
            client,
            sandbox,
        ):
            call_id = (await client.post(CALLS, headers=AUTH, json=marked_call("m-1"))).json()["id"]
            patch = {"properties": {"hs_call_title": "Renamed"}}
            assert (await client.patch(f"{CALLS}/{call_id}", headers=AUTH, json=patch)).status_code == 504
            got = await client.get(f"{CALLS}/{call_id}", headers=AUTH)
            assert got.json()["properties"]["hs_call_title"] == "Renamed"
            assert (await client.patch(f"{CALLS}/{call_id}", headers=AUTH, json=patch)).status_code == 200
            await client.post("/_sandbox/reset")
            assert sandbox.faults.drop_answer_after_apply == 1
            assert sandbox.faults.drop_answer_route == "PATCH /crm/v3/*"


# --------------------------------------------------------------------------------------------------
# Users and callbacks
# --------------------------------------------------------------------------------------------------


class TestUsersAndCallbacks:
    async def test_users_paging(self, hs: httpx.AsyncClient) -> None:
        users = [{"email": f"User{i}@Example.com", "firstName": f"U{i}"} for i in range(150)]
        r = await hs.post("/_sandbox/users", json={"users": users})
        assert r.status_code == 201
        first = (await hs.get("/settings/v3/users/", headers=AUTH, params={"limit": 100})).json()
        assert len(first["results"]) == 100
        after = first["paging"]["next"]["after"]
        second = (await hs.get("/settings/v3/users/", headers=AUTH, params={"after": after})).json()
        assert len(second["results"]) == 50 and "paging" not in second
        emails = [u["email"] for u in first["results"] + second["results"]]
        assert emails == [f"user{i}@example.com" for i in range(150)]
        assert (await hs.get("/settings/v3/users/", headers=AUTH, params={"limit": 101})).status_code == 400

    async def test_callbacks_are_recorded(self, hs: httpx.AsyncClient) -> None:
        inputs = [
            {"callbackId": "cb-1", "outputFields": {"hs_execution_state": "SUCCESS", "registrant_id": "r1"}},
            {
                "callbackId": "cb-2",
                "outputFields": {"hs_execution_state": "FAIL_CONTINUE"},
                "typedOutputs": {},
            },
        ]
        r = await hs.post("/automation/v4/actions/callbacks/complete", headers=AUTH, json={"inputs": inputs})
        assert r.status_code == 204 and r.content == b""
        r = await hs.post(
            "/automation/v4/actions/callbacks/cb-3/complete",
            headers=AUTH,
            json={"outputFields": {"hs_execution_state": "SUCCESS"}},
        )
        assert r.status_code == 204
        callbacks = (await state(hs))["callbacks"]
        assert [c["callbackId"] for c in callbacks] == ["cb-1", "cb-2", "cb-3"]
        assert callbacks[0]["outputFields"]["registrant_id"] == "r1"


# --------------------------------------------------------------------------------------------------
# Rate limit, faults, statistics, control API
# --------------------------------------------------------------------------------------------------


class TestRateLimit:
    async def test_429_after_budget_then_recovery(self) -> None:
        # The sandbox's clock, not the wall clock: on a loaded machine the 0.5 s window could roll
        # over between the first three requests.
        now = [1000.0]
        async with sandbox_client(rate_limit=3, window_s=0.5) as (client, sandbox):
            sandbox.clock = lambda: now[0]
            remaining = []
            for _ in range(3):
                r = await client.get("/settings/v3/users/", headers=AUTH)
                assert r.status_code == 200
                assert r.headers["X-HubSpot-RateLimit-Max"] == "3"
                assert r.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "500"
                remaining.append(r.headers["X-HubSpot-RateLimit-Remaining"])
            assert remaining == ["2", "1", "0"]

            r = await client.get("/settings/v3/users/", headers=AUTH)
            assert r.status_code == 429
            body = r.json()
            assert body["status"] == "error"
            assert body["message"] == "You have reached your secondly limit."
            assert body["errorType"] == "RATE_LIMIT"
            assert body["policyName"] == "TEN_SECONDLY_ROLLING"
            assert body["correlationId"] and body["requestId"]
            assert int(r.headers["Retry-After"]) >= 1
            assert r.headers["X-HubSpot-RateLimit-Max"] == "3"
            assert r.headers["X-HubSpot-RateLimit-Remaining"] == "0"
            assert r.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "500"
            assert sandbox.stats.throttled == 1

            now[0] += 0.55
            r = await client.get("/settings/v3/users/", headers=AUTH)
            assert r.status_code == 200
            assert r.headers["X-HubSpot-RateLimit-Remaining"] == "2"
            s = await state(client)
            assert s["stats"]["throttled"] == 1
            assert s["stats"]["statuses"] == {"200": 4, "429": 1}

    async def test_budgets_are_per_portal(self) -> None:
        async with sandbox_client(tokens={"a": 1, "b": 2}, rate_limit=1, window_s=5) as (client, _):
            assert (
                await client.get("/settings/v3/users/", headers={"Authorization": "Bearer a"})
            ).status_code == 200
            assert (
                await client.get("/settings/v3/users/", headers={"Authorization": "Bearer a"})
            ).status_code == 429
            assert (
                await client.get("/settings/v3/users/", headers={"Authorization": "Bearer b"})
            ).status_code == 200

    async def test_rate_limit_can_be_changed_at_runtime(self, hs: httpx.AsyncClient) -> None:
        r = await hs.post("/_sandbox/faults", json={"rate_limit": 1, "window_s": 5})
        assert r.json()["rate_limit"] == 1
        assert (await hs.get("/settings/v3/users/", headers=AUTH)).status_code == 200
        assert (await hs.get("/settings/v3/users/", headers=AUTH)).status_code == 429


class TestFaults:
    async def test_error_rate_one_gives_5xx_and_changes_nothing(self, hs: httpx.AsyncClient) -> None:
        r = await hs.post("/_sandbox/faults", json={"error_rate": 1.0, "seed": 7})
        assert r.status_code == 200 and r.json()["error_rate"] == 1.0
        codes = set()
        for i in range(30):
            r = await upsert(hs, upsert_input(f"x{i}@example.com"))
            codes.add(r.status_code)
        assert codes == {500, 502, 503}
        s = await state(hs)
        assert s["contacts"] == []
        assert s["stats"]["faults"] == 30

    async def test_seeded_faults_are_deterministic(self) -> None:
        async def run() -> list[int]:
            async with sandbox_client(error_rate=0.5, seed=42) as (client, _):
                return [
                    (await client.get("/settings/v3/users/", headers=AUTH)).status_code for _ in range(20)
                ]

        first = await run()
        assert first == await run()
        assert 200 in first and any(code >= 500 for code in first)

    async def test_down_answers_503_until_lifted(self, hs: httpx.AsyncClient) -> None:
        await hs.post("/_sandbox/faults", json={"down": True})
        r = await hs.get("/settings/v3/users/", headers=AUTH)
        assert r.status_code == 503
        assert (await hs.get("/settings/v3/users/")).status_code == 503  # even before auth
        await hs.post("/_sandbox/faults", json={"down": False})
        assert (await hs.get("/settings/v3/users/", headers=AUTH)).status_code == 200

    async def test_burst_429_ignores_budget(self, hs: httpx.AsyncClient) -> None:
        await hs.post("/_sandbox/faults", json={"burst_429": 2})
        for _ in range(2):
            r = await hs.get("/settings/v3/users/", headers=AUTH)
            assert r.status_code == 429
            assert r.json()["errorType"] == "RATE_LIMIT" and r.headers["Retry-After"] == "1"
            assert r.headers["X-HubSpot-RateLimit-Remaining"] == "100"
        assert (await hs.get("/settings/v3/users/", headers=AUTH)).status_code == 200
        s = await state(hs)
        assert s["stats"]["throttled"] == 2 and s["faults"]["burst_429"] == 0

    async def test_slow_ms_delays_requests(self) -> None:
        async with sandbox_client(slow_ms=60) as (client, _):
            started = time.monotonic()
            assert (await client.get("/settings/v3/users/", headers=AUTH)).status_code == 200
            assert time.monotonic() - started >= 0.055


class TestStatsAndControl:
    async def test_requests_counted_per_method_and_path_template(self, hs: httpx.AsyncClient) -> None:
        ids = await seed_contacts(hs, {"email": "a@example.com"}, {"email": "b@example.com"})
        for cid in ids:
            await hs.get(f"/crm/v3/objects/contacts/{cid}", headers=AUTH)
        await upsert(hs, upsert_input("c@example.com"))
        await hs.get("/settings/v3/users/")  # unauthorised: counted globally only
        s = await state(hs)
        assert s["stats"]["requests"] == {
            "GET /crm/v3/objects/contacts/{contact_id}": 2,
            f"POST {UPSERT}": 1,
        }
        assert s["stats"]["total"] == 3
        assert s["global_stats"]["requests"]["GET /settings/v3/users/"] == 1
        assert s["global_stats"]["total"] == 4

    async def test_reset_restores_the_initial_state(self) -> None:
        async with sandbox_client(burst_429=1) as (client, sandbox):
            await seed_contacts(client, {"email": "a@example.com"})
            await client.post("/_sandbox/users", json={"users": [{"email": "u@example.com"}]})
            await client.post("/_sandbox/faults", json={"down": True})
            assert (await client.post("/_sandbox/reset")).status_code == 200
            s = await state(client)
            assert s["contacts"] == [] and s["users"] == [] and s["stats"]["total"] == 0
            assert s["faults"]["down"] is False and s["faults"]["burst_429"] == 1
            assert sandbox.faults.burst_429 == 1

    async def test_state_is_typed_on_the_app(self) -> None:
        app = create_hubspot_sandbox(app_id="77")
        sandbox = sandbox_of(app)
        assert isinstance(sandbox, HubSpotSandbox) and app.state.sandbox is sandbox
        assert sandbox.app_id == "77" and sandbox.portal().portal_id == 1

    async def test_concurrent_upserts_of_one_email_make_one_contact(self, hs: httpx.AsyncClient) -> None:
        responses = await asyncio.gather(*(upsert(hs, upsert_input("same@example.com")) for _ in range(20)))
        assert all(r.status_code == 200 for r in responses)
        assert sum(r.json()["results"][0]["new"] for r in responses) == 1
        assert len((await state(hs))["contacts"]) == 1


def test_main_runs_uvicorn_on_the_given_port(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []

    def fake_run(app: Any, **kwargs: Any) -> None:
        calls.append({"app": app, **kwargs})

    monkeypatch.setattr(uvicorn, "run", fake_run)  # the module calls uvicorn.run at run time
    hubspot_module.main(["8911", "--token", "tok=5", "--rate-limit", "7"])
    hubspot_module.main([])
    assert calls[0]["port"] == 8911 and calls[1]["port"] == 8901
    sandbox = sandbox_of(calls[0]["app"])
    assert sandbox.tokens == {"tok": 5} and sandbox.rate_limit == 7
