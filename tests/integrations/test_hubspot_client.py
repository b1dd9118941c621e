"""HubSpotClient against respx: exact outgoing requests, typed results, retries and errors;
InProcessRateLimiter on a fake clock."""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, cast

import httpx
import pytest
import respx

from app.integrations.hubspot import (
    AttendanceInput,
    AttendanceState,
    CallbackCompletion,
    ContactUpsert,
    EventTemplate,
    EventTemplateToken,
    HubSpotAuthError,
    HubSpotClient,
    HubSpotError,
    HubSpotNotFound,
    HubSpotRateLimited,
    HubSpotServerError,
    HubSpotUnavailable,
    HubSpotValidationError,
    InProcessRateLimiter,
    MarketingEvent,
    PropertyDefinition,
    PropertyGroup,
    TimelineEvent,
)
from tests.fixtures.observers import RecordingObserver

pytestmark = pytest.mark.anyio

BASE = "https://api.hubapi.test"
TOKEN = "pat-na1-11111111-2222-3333-4444-555555555555"
PORTAL = 4242
APP_ID = 9001


# --- fakes and fixtures ---------------------------------------------------------------------------


class RecordingLimiter:
    """Lets everything through and remembers what the client asked of it."""

    def __init__(self) -> None:
        self.acquired: list[int] = []
        self.penalised: list[tuple[int, float]] = []

    async def acquire(self, portal_id: int) -> None:
        self.acquired.append(portal_id)

    def penalise(self, portal_id: int, retry_after_s: float) -> None:
        self.penalised.append((portal_id, retry_after_s))


class RecordingSleep:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def limiter() -> RecordingLimiter:
    return RecordingLimiter()


@pytest.fixture
def sleeps() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture(scope="module")
def ssl_context() -> ssl.SSLContext:
    # Building one per client costs ~0.1 s (loading CA certificates); respx never uses it anyway.
    return ssl.create_default_context()


@pytest.fixture
async def http(ssl_context: ssl.SSLContext) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(verify=ssl_context) as client:
        yield client


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as mock:
        yield mock


ClientFactory = Callable[..., HubSpotClient]


@pytest.fixture
def make_client(http: httpx.AsyncClient, limiter: RecordingLimiter, sleeps: RecordingSleep) -> ClientFactory:
    def make(**overrides: Any) -> HubSpotClient:
        options: dict[str, Any] = {
            "base_url": BASE + "/",  # a trailing slash must not double up in URLs
            "access_token": TOKEN,
            "portal_id": PORTAL,
            "rate_limiter": limiter,
            "max_attempts": 5,
            "backoff_base_s": 0.001,
            "backoff_max_s": 0.01,
            "sleep": sleeps,
        }
        options.update(overrides)
        return HubSpotClient(http, **options)

    return make


@pytest.fixture
def client(make_client: ClientFactory) -> HubSpotClient:
    return make_client()


def assert_request(request: httpx.Request, method: str, url: str, body: Any = None) -> None:
    assert request.method == method
    assert str(request.url) == url
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Content-Type"] == "application/json"
    if body is None:
        assert request.content == b""
    else:
        assert json.loads(request.content) == body


def only_request(route: respx.Route) -> httpx.Request:
    assert route.call_count == 1
    request: httpx.Request = route.calls.last.request
    return request


def error_json(category: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"status": "error", "category": category, "message": message, "correlationId": "corr-1", **extra}


def hundred_and_one(make: Callable[[int], Any]) -> list[Any]:
    return [make(i) for i in range(101)]


T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


# --- contacts -------------------------------------------------------------------------------------


class TestContacts:
    async def test_batch_upsert_sends_email_id_property_and_string_values(
        self, client: HubSpotClient, router: respx.MockRouter, limiter: RecordingLimiter
    ) -> None:
        route = router.post(f"{BASE}/crm/v3/objects/contacts/batch/upsert").respond(
            200,
            json={
                "status": "COMPLETE",
                "results": [
                    {"id": "101", "properties": {"email": "ada@example.com"}, "new": True},
                    {"id": 102, "properties": {"email": "bob@example.com", "firstname": None}, "new": False},
                ],
            },
        )
        result = await client.batch_upsert_contacts(
            [
                ContactUpsert(
                    email="ada@example.com",
                    properties={
                        "zoom_webinar_attendance_count": 3,
                        "zoom_webinar_average_attendance_percent": 87.5,
                        "firstname": "Ada",
                    },
                ),
                ContactUpsert(email="bob@example.com", properties={"zoom_last_registered_webinar_url": None}),
            ]
        )
        assert_request(
            only_request(route),
            "POST",
            f"{BASE}/crm/v3/objects/contacts/batch/upsert",
            {
                "inputs": [
                    {
                        "id": "ada@example.com",
                        "idProperty": "email",
                        "properties": {
                            "zoom_webinar_attendance_count": "3",
                            "zoom_webinar_average_attendance_percent": "87.5",
                            "firstname": "Ada",
                        },
                    },
                    {
                        "id": "bob@example.com",
                        "idProperty": "email",
                        "properties": {"zoom_last_registered_webinar_url": ""},
                    },
                ]
            },
        )
        assert [(c.id, c.new, c.email) for c in result.results] == [
            ("101", True, "ada@example.com"),
            ("102", False, "bob@example.com"),
        ]
        assert result.errors == []
        assert limiter.acquired == [PORTAL]
        assert client.stats.requests == 1

    async def test_batch_read_by_email_parses_207_missing_ids(
        self, client: HubSpotClient, router: respx.MockRouter
    ) -> None:
        route = router.post(f"{BASE}/crm/v3/objects/contacts/batch/read").respond(
            207,
            json={
                "status": "COMPLETE",
                "results": [
                    {
                        "id": "7",
                        "properties": {
                            "email": "ada@example.com",
                            "hs_additional_emails": "a2@x.org;a3@y.org",
                        },
                        "archived": False,
                        "createdAt": "2024-01-01T00:00:00.000Z",
                    }
                ],
                "numErrors": 1,
                "errors": [
                    {
                        "status": "error",
                        "category": "OBJECT_NOT_FOUND",
                        "message": "Could not get some CONTACT objects, they may be deleted or not exist.",
                        "context": {"ids": ["gone@example.com"]},
                    }
                ],
            },
        )
        result = await client.batch_read_contacts(
            ["ada@example.com", "gone@example.com"], properties=["email", "hs_additional_emails"]
        )
        assert_request(
            only_request(route),
            "POST",
            f"{BASE}/crm/v3/objects/contacts/batch/read?archived=false",
            {
                "idProperty": "email",
                "inputs": [{"id": "ada@example.com"}, {"id": "gone@example.com"}],
                "properties": ["email", "hs_additional_emails"],
                "propertiesWithHistory": [],
            },
        )
        assert result.results[0].additional_emails == ["a2@x.org", "a3@y.org"]
        assert result.results[0].created_at == datetime(2024, 1, 1, tzinfo=UTC)
        [error] = result.errors
        assert error.category == "OBJECT_NOT_FOUND"
        assert error.message.startswith("Could not get some CONTACT objects")
        assert error.ids == ["gone@example.com"]
        assert result.failed_ids == {"gone@example.com"}

    async def test_batch_read_archived_by_object_id(
        self, client: HubSpotClient, router: respx.MockRouter
    ) -> None:
        route = router.post(f"{BASE}/crm/v3/objects/contacts/batch/read").respond(
            200,
            json={
                "status": "COMPLETE",
                "results": [
                    {
                        "id": "55",
                        "properties": {"email": "old@example.com"},
                        "archived": True,
                        "archivedAt": "2024-03-01T12:00:00Z",
                    }
                ],
            },
        )
        result = await client.batch_read_contacts(
            ["55"], id_property=None, properties=["email"], archived=True
        )
        assert_request(
            only_request(route),
            "POST",
            f"{BASE}/crm/v3/objects/contacts/batch/read?archived=true",
            {"inputs": [{"id": "55"}], "properties": ["email"], "propertiesWithHistory": []},
        )
        [contact] = result.results
        assert contact.archived is True
        assert contact.archived_at == datetime(2024, 3, 1, 12, tzinfo=UTC)


# --- users ----------------------------------------------------------------------------------------


class TestUsers:
    async def test_list_users_follows_paging(self, client: HubSpotClient, router: respx.MockRouter) -> None:
        route = router.get(f"{BASE}/settings/v3/users/")
        route.side_effect = [
            httpx.Response(
                200,
                json={
                    "results": [
                        {"id": "1", "email": "Owner@Example.com", "roleIds": ["9"], "superAdmin": True},
                        {"id": "2", "email": "rep@example.com", "firstName": "Rep", "roleIds": []},
                    ],
                    "paging": {"next": {"after": "cursor-2", "link": "ignored"}},
                },
            ),
            httpx.Response(200, json={"results": [{"id": 3, "email": "last@example.com", "roleIds": []}]}),
        ]
        users = await client.list_users()
        assert route.call_count == 2
        assert_request(route.calls[0].request, "GET", f"{BASE}/settings/v3/users/?limit=100")
        assert_request(route.calls[1].request, "GET", f"{BASE}/settings/v3/users/?limit=100&after=cursor-2")
        assert [(u.id, u.email) for u in users] == [
            ("1", "Owner@Example.com"),
            ("2", "rep@example.com"),
            ("3", "last@example.com"),
        ]
        assert users[0].super_admin is True
        assert users[1].first_name == "Rep"

    async def test_repeated_cursor_stops_with_error(
        self, client: HubSpotClient, router: respx.MockRouter
    ) -> None:
        page = {"results": [], "paging": {"next": {"after": "same"}}}
        router.get(f"{BASE}/settings/v3/users/").respond(200, json=page)
        with pytest.raises(HubSpotError, match="paging cursor repeated"):
            await client.list_users()


# --- properties -----------------------------------------------------------------------------------


class TestProperties:
    async def test_get_property_group(self, client: HubSpotClient, router: respx.MockRouter) -> None:
        route = router.get(f"{BASE}/crm/v3/properties/contacts/groups/zoom_webinars").respond(
            200,
            json={"name": "zoom_webinars", "label": "Zoom webinars", "displayOrder": -1, "archived": False},
        )
        group = await client.get_property_group("zoom_webinars")
        assert_request(only_request(route), "GET", f"{BASE}/crm/v3/properties/contacts/groups/zoom_webinars")
        assert group == PropertyGroup(name="zoom_webinars", label="Zoom webinars", display_order=-1)

    async def test_get_property_group_missing_is_none(
        self, client: HubSpotClient, router: respx.MockRouter
    ) -> None:
        router.get(f"{BASE}/crm/v3/properties/contacts/groups/zoom_webinars").respond(
            404, json=error_json("OBJECT_NOT_FOUND", "group not found")
        )
        assert await client.get_property_group("zoom_webinars") is None
        assert client.stats.requests == 1  # 404 is never retried

    async def test_create_property_group(self, client: HubSpotClient, router: respx.MockRouter) -> None:
        route = router.post(f"{BASE}/crm/v3/properties/contacts/groups").respond(
            201, json={"name": "zoom_webinars", "label": "Zoom webinars", "displayOrder": -1}
        )
        group = await client.create_property_group(PropertyGroup(name="zoom_webinars", label="Zoom webinars"))
        assert_request(
            only_request(route),
            "POST",
            f"{BASE}/crm/v3/properties/contacts/groups",
            {"name": "zoom_webinars", "label": "Zoom webinars"},
        )
        assert group.name == "zoom_webinars"

    async def test_get_contact_property(self, client: HubSpotClient, router: respx.MockRouter) -> None:
        url = f"{BASE}/crm/v3/properties/contacts/zoom_webinar_attendance_count"
        route = router.get(url).respond(
            200,
            json={
                "name": "zoom_webinar_attendance_count",
                "label": "Zoom webinar attendance count",
                "type": "number",
                "fieldType": "number",
                "groupName": "zoom_webinars",
                "calculated": False,
                "modificationMetadata": {"archivable": True},
            },
        )
        prop = await client.get_contact_property("zoom_webinar_attendance_count")
        assert_request(only_request(route), "GET", url)
        assert prop is not None
        assert (prop.type, prop.field_type, prop.group_name) == ("number", "number", "zoom_webinars")

    async def test_get_contact_property_missing_is_none(
        self, client: HubSpotClient, router: respx.MockRouter
    ) -> None:
        router.get(f"{BASE}/crm/v3/properties/contacts/nope").respond(404, text="Not Found")
        assert await client.get_contact_property("nope") is None

    async def test_create_contact_property(self, client: HubSpotClient, router: respx.MockRouter) -> None:
        definition = PropertyDefinition(
            name="zoom_webinar_average_attendance_percent",
            label="Zoom webinar average attendance (%)",
            type="number",
            field_type="number",
            group_name="zoom_webinars",
            number_display_hint="percentage",
        )
        route = router.post(f"{BASE}/crm/v3/properties/contacts").respond(
            201,
            json={
                **definition.model_dump(by_alias=True, exclude_none=True),
                "createdAt": "2024-01-01T00:00:00Z",
            },
        )
        created = await client.create_contact_property(definition)
        assert_request(
            only_request(route),
            "POST",
            f"{BASE}/crm/v3/properties/contacts",
            {
                "name": "zoom_webinar_average_attendance_percent",
                "label": "Zoom webinar average attendance (%)",
                "type": "number",
                "fieldType": "number",
                "groupName": "zoom_webinars",
                "numberDisplayHint": "percentage",
            },
        )
        assert created == definition


# --- timeline -------------------------------------------------------------------------------------


class TestTimeline:
    async def test_list_event_templates(self, client: HubSpotClient, router: respx.MockRouter) -> None:
        url = f"{BASE}/integrators/timeline/v3/{APP_ID}/event-templates"
        route = router.get(url).respond(
            200,
            json={
                "results": [
                    {
                        "id": 1001,
                        "name": "Zoom webinar registration",
                        "objectType": "contacts",
                        "headerTemplate": "Registered for {{webinar_name}}",
                        "tokens": [{"name": "webinar_id", "label": "Webinar ID", "type": "string"}],
                    }
                ]
            },
        )
        [template] = await client.list_event_templates(APP_ID)
        assert_request(only_request(route), "GET", url)
        assert template.id == "1001"
        assert template.name == "Zoom webinar registration"
        assert template.tokens == [EventTemplateToken(name="webinar_id", label="Webinar ID", type="string")]

    async def test_create_event_template(self, client: HubSpotClient, router: respx.MockRouter) -> None:
        url = f"{BASE}/integrators/timeline/v3/{APP_ID}/event-templates"
        template = EventTemplate(
            name="Zoom webinar registration",
            header_template="Registered for {{webinar_name}}",
            detail_template="Webinar {{webinar_id}}",
            tokens=[
                EventTemplateToken(name="webinar_id", label="Webinar ID", type="string"),
                EventTemplateToken(name="webinar_name", label="Webinar name", type="string"),
            ],
        )
        route = router.post(url).respond(
            201, json={**template.model_dump(by_alias=True, exclude_none=True), "id": "1002"}
        )
        created = await client.create_event_template(APP_ID, template)
        assert_request(
            only_request(route),
            "POST",
            url,
            {
                "name": "Zoom webinar registration",
                "objectType": "contacts",
                "headerTemplate": "Registered for {{webinar_name}}",
                "detailTemplate": "Webinar {{webinar_id}}",
                "tokens": [
                    {"name": "webinar_id", "label": "Webinar ID", "type": "string"},
                    {"name": "webinar_name", "label": "Webinar name", "type": "string"},
                ],
            },
        )
        assert created.id == "1002"

    async def test_create_timeline_events(self, client: HubSpotClient, router: respx.MockRouter) -> None:
        url = f"{BASE}/integrators/timeline/v3/events/batch/create"
        route = router.post(url).respond(
            201,
            json={
                "status": "COMPLETE",
                "results": [
                    {"id": "reg-1-7", "eventTemplateId": "1001", "objectId": "7", "objectType": "contacts"},
                ],
            },
        )
        result = await client.create_timeline_events(
            [
                TimelineEvent(
                    event_template_id="1001",
                    id="reg-1-7",
                    object_id="7",
                    tokens={"webinar_id": 123456789, "webinar_name": "Launch"},
                    timestamp=datetime(2024, 5, 1, 12, 30, tzinfo=timezone(timedelta(hours=2))),
                ),
                TimelineEvent(
                    event_template_id="1001", id="reg-1-8", object_id="8", tokens={"webinar_id": "1"}
                ),
            ]
        )
        assert_request(
            only_request(route),
            "POST",
            url,
            {
                "inputs": [
                    {
                        "eventTemplateId": "1001",
                        "id": "reg-1-7",
                        "objectId": "7",
                        "tokens": {"webinar_id": "123456789", "webinar_name": "Launch"},
                        "timestamp": "2024-05-01T10:30:00.000Z",
                    },
                    {
                        "eventTemplateId": "1001",
                        "id": "reg-1-8",
                        "objectId": "8",
                        "tokens": {"webinar_id": "1"},
                    },
                ]
            },
        )
        assert [r.id for r in result.results] == ["reg-1-7"]

    async def test_timeline_207_errors(self, client: HubSpotClient, router: respx.MockRouter) -> None:
        router.post(f"{BASE}/integrators/timeline/v3/events/batch/create").respond(
            207,
            json={
                "status": "COMPLETE",
                "results": [],
                "errors": [
                    {
                        "status": "error",
                        "category": "VALIDATION_ERROR",
                        "message": "Event with id reg-1-9 already exists",
                        "context": {"ids": ["reg-1-9"]},
                        "subCategory": "TimelineEventError.DUPLICATE",
                    }
                ],
            },
        )
        result = await client.create_timeline_events(
            [TimelineEvent(event_template_id="1001", id="reg-1-9", object_id="9")]
        )
        [error] = result.errors
        assert (error.category, error.sub_category, error.ids) == (
            "VALIDATION_ERROR",
            "TimelineEventError.DUPLICATE",
            ["reg-1-9"],
        )


# --- marketing events -----------------------------------------------------------------------------


class TestMarketingEvents:
    async def test_upsert_marketing_event(self, client: HubSpotClient, router: respx.MockRouter) -> None:
        url = f"{BASE}/marketing/v3/marketing-events/events/123456789"
        route = router.put(url).respond(
            200,
            json={
                "objectId": 555,
                "eventName": "Launch",
                "eventType": "WEBINAR",
                "startDateTime": "2024-05-01T10:00:00Z",
                "endDateTime": "2024-05-01T11:00:00Z",
            },
        )
        result = await client.upsert_marketing_event(
            MarketingEvent(
                external_account_id="acct_1",
                external_event_id="123456789",
                event_name="Launch",
                event_organizer="Ada Host",
                start_at=T0,
                end_at=T0 + timedelta(hours=1),
                event_url="https://zoom.us/webinar/register/WN_abc",
            )
        )
        assert_request(
            only_request(route),
            "PUT",
            url,
            {
                "externalAccountId": "acct_1",
                "externalEventId": "123456789",
                "eventName": "Launch",
                "eventOrganizer": "Ada Host",
                "startDateTime": "2024-05-01T10:00:00.000Z",
                "endDateTime": "2024-05-01T11:00:00.000Z",
                "eventUrl": "https://zoom.us/webinar/register/WN_abc",
                "eventType": "WEBINAR",
                "customProperties": [],
            },
        )
        assert result.object_id == "555"
        assert result.start_at == T0

    async def test_record_attendance_attend(self, client: HubSpotClient, router: respx.MockRouter) -> None:
        url = f"{BASE}/marketing/v3/marketing-events/attendance/123456789/attend/create"
        route = router.post(url).respond(
            200,
            json={
                "status": "COMPLETE",
                "results": [{"vid": 7}],
                "numErrors": 1,
                "errors": [
                    {
                        "status": "error",
                        "category": "OBJECT_NOT_FOUND",
                        "message": "Contact 8 not found",
                        "context": {"ids": ["8"]},
                    }
                ],
            },
        )
        result = await client.record_attendance(
            "123456789",
            "acct_1",
            "attend",
            [
                AttendanceInput(
                    vid=7,
                    interaction_at=T0,
                    joined_at=T0 + timedelta(minutes=1),
                    left_at=T0 + timedelta(minutes=59, milliseconds=250),
                ),
                AttendanceInput(vid=8, interaction_at=T0),
            ],
        )
        epoch_ms = int(T0.timestamp()) * 1000
        assert_request(
            only_request(route),
            "POST",
            f"{url}?externalAccountId=acct_1",
            {
                "inputs": [
                    {
                        "vid": 7,
                        "interactionDateTime": epoch_ms,
                        "properties": {
                            "joinedAt": "2024-05-01T10:01:00.000Z",
                            "leftAt": "2024-05-01T10:59:00.250Z",
                        },
                    },
                    {"vid": 8, "interactionDateTime": epoch_ms, "properties": {}},
                ]
            },
        )
        assert [r.vid for r in result.results] == [7]
        assert result.failed_ids == {"8"}

    async def test_record_attendance_register_escapes_ids(
        self, client: HubSpotClient, router: respx.MockRouter
    ) -> None:
        url = f"{BASE}/marketing/v3/marketing-events/attendance/a%2Fb/register/create"
        route = router.post(url).respond(200, json={"status": "COMPLETE", "results": [{"vid": 1}]})
        await client.record_attendance(
            "a/b", "acct 1&x", "register", [AttendanceInput(vid=1, interaction_at=T0)]
        )
        assert_request(
            only_request(route),
            "POST",
            f"{url}?externalAccountId=acct+1%26x",
            {"inputs": [{"vid": 1, "interactionDateTime": int(T0.timestamp()) * 1000, "properties": {}}]},
        )

    async def test_record_attendance_rejects_unknown_state(self, client: HubSpotClient) -> None:
        with pytest.raises(ValueError, match="unknown attendance state"):
            # A state a caller without a type checker could pass (cast: mypy would refuse it).
            unknown = cast(AttendanceState, "noshow")
            await client.record_attendance("1", "a", unknown, [AttendanceInput(vid=1, interaction_at=T0)])

    async def test_complete_marketing_event(self, client: HubSpotClient, router: respx.MockRouter) -> None:
        url = f"{BASE}/marketing/v3/marketing-events/events/123456789/complete"
        route = router.post(url).respond(200, json={"objectId": "555", "eventCompleted": True})
        result = await client.complete_marketing_event("123456789", "acct_1", T0, T0 + timedelta(minutes=90))
        assert_request(
            only_request(route),
            "POST",
            f"{url}?externalAccountId=acct_1",
            {"startDateTime": "2024-05-01T10:00:00.000Z", "endDateTime": "2024-05-01T11:30:00.000Z"},
        )
        assert result.event_completed is True


# --- calls ----------------------------------------------------------------------------------------


class TestCalls:
    async def test_create_call_with_contact_associations(
        self, client: HubSpotClient, router: respx.MockRouter
    ) -> None:
        route = router.post(f"{BASE}/crm/v3/objects/calls").respond(
            201, json={"id": "900", "properties": {"hs_call_title": "Launch"}}
        )
        call = await client.create_call(
            {
                "hs_timestamp": "2024-05-01T10:00:00.000Z",
                "hs_call_title": "Launch",
                "hs_call_duration": 3600000,
                "hs_call_status": "COMPLETED",
            },
            ["7", 8],
        )
        association = {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 194}
        assert_request(
            only_request(route),
            "POST",
            f"{BASE}/crm/v3/objects/calls",
            {
                "properties": {
                    "hs_timestamp": "2024-05-01T10:00:00.000Z",
                    "hs_call_title": "Launch",
                    "hs_call_duration": "3600000",
                    "hs_call_status": "COMPLETED",
                },
                "associations": [
                    {"to": {"id": "7"}, "types": [association]},
                    {"to": {"id": "8"}, "types": [association]},
                ],
            },
        )
        assert call.id == "900"

    async def test_update_call(self, client: HubSpotClient, router: respx.MockRouter) -> None:
        route = router.patch(f"{BASE}/crm/v3/objects/calls/900").respond(
            200, json={"id": "900", "properties": {"hs_call_body": "transcript"}}
        )
        call = await client.update_call("900", {"hs_call_body": "transcript"})
        assert_request(
            only_request(route),
            "PATCH",
            f"{BASE}/crm/v3/objects/calls/900",
            {"properties": {"hs_call_body": "transcript"}},
        )
        assert call.properties == {"hs_call_body": "transcript"}

    async def test_update_missing_call_raises_not_found(
        self, client: HubSpotClient, router: respx.MockRouter
    ) -> None:
        router.patch(f"{BASE}/crm/v3/objects/calls/1").respond(
            404, json=error_json("OBJECT_NOT_FOUND", "no call")
        )
        with pytest.raises(HubSpotNotFound) as info:
            await client.update_call(1, {"hs_call_body": "x"})
        assert info.value.status == 404
        assert info.value.retryable is False

    async def test_associate_calls_to_contacts(self, client: HubSpotClient, router: respx.MockRouter) -> None:
        url = f"{BASE}/crm/v4/associations/calls/contacts/batch/associate/default"
        route = router.post(url).respond(
            200,
            json={
                "status": "COMPLETE",
                "results": [
                    {
                        "from": {"id": "900"},
                        "to": {"id": "7"},
                        "associationSpec": {
                            "associationCategory": "HUBSPOT_DEFINED",
                            "associationTypeId": 194,
                        },
                    }
                ],
            },
        )
        result = await client.associate_calls_to_contacts([("900", "7"), (900, 8)])
        assert_request(
            only_request(route),
            "POST",
            url,
            {
                "inputs": [
                    {"from": {"id": "900"}, "to": {"id": "7"}},
                    {"from": {"id": "900"}, "to": {"id": "8"}},
                ]
            },
        )
        [assoc] = result.results
        assert (assoc.from_.id, assoc.to.id) == ("900", "7")


# --- workflow callbacks ---------------------------------------------------------------------------


class TestCallbacks:
    async def test_complete_callbacks(self, client: HubSpotClient, router: respx.MockRouter) -> None:
        url = f"{BASE}/automation/v4/actions/callbacks/complete"
        route = router.post(url).respond(204)
        await client.complete_callbacks(
            [
                CallbackCompletion(
                    callback_id="ap-1-2-3-0",
                    output_fields={
                        "hs_execution_state": "SUCCESS",
                        "registrant_id": "r1",
                        "join_url": "https://j",
                    },
                ),
                CallbackCompletion(
                    callback_id="ap-1-2-4-0",
                    output_fields={"hs_execution_state": "FAIL_CONTINUE", "error_code": "webinar_not_found"},
                ),
            ]
        )
        assert_request(
            only_request(route),
            "POST",
            url,
            {
                "inputs": [
                    {
                        "callbackId": "ap-1-2-3-0",
                        "outputFields": {
                            "hs_execution_state": "SUCCESS",
                            "registrant_id": "r1",
                            "join_url": "https://j",
                        },
                        "typedOutputs": {},
                    },
                    {
                        "callbackId": "ap-1-2-4-0",
                        "outputFields": {
                            "hs_execution_state": "FAIL_CONTINUE",
                            "error_code": "webinar_not_found",
                        },
                        "typedOutputs": {},
                    },
                ]
            },
        )

    async def test_a_404_on_the_legacy_route_completes_through_the_2026_03_one(
        self, client: HubSpotClient, router: respx.MockRouter
    ) -> None:
        legacy = router.post(f"{BASE}/automation/v4/actions/callbacks/complete").respond(
            404, json={"status": "error", "category": "NOT_FOUND", "message": "not found"}
        )
        dated_url = f"{BASE}/automation/actions/callbacks/2026-03/complete"
        dated = router.post(dated_url).respond(204)
        done = [CallbackCompletion(callback_id="ap-1-2-3-0", output_fields={"hs_execution_state": "SUCCESS"})]
        await client.complete_callbacks(done)
        success = {"hs_execution_state": "SUCCESS"}
        body = {"inputs": [{"callbackId": "ap-1-2-3-0", "outputFields": success, "typedOutputs": {}}]}
        assert_request(dated.calls[0].request, "POST", dated_url, body)
        assert legacy.call_count == 1
        # The client remembers: the next completion goes straight to the 2026-03 route.
        await client.complete_callbacks(done)
        assert (legacy.call_count, dated.call_count) == (1, 2)

    async def test_a_404_on_both_routes_is_the_answer(
        self, client: HubSpotClient, router: respx.MockRouter
    ) -> None:
        not_found = {"status": "error", "category": "OBJECT_NOT_FOUND", "message": "CALLBACK_NOT_FOUND"}
        legacy = router.post(f"{BASE}/automation/v4/actions/callbacks/complete")
        legacy.respond(404, json=not_found)
        dated = router.post(f"{BASE}/automation/actions/callbacks/2026-03/complete")
        dated.respond(404, json=not_found)
        with pytest.raises(HubSpotNotFound):
            await client.complete_callbacks(
                [CallbackCompletion(callback_id="gone", output_fields={"hs_execution_state": "SUCCESS"})]
            )
        # Not remembered: the legacy route is still the first choice.
        with pytest.raises(HubSpotNotFound):
            await client.complete_callbacks(
                [CallbackCompletion(callback_id="gone", output_fields={"hs_execution_state": "SUCCESS"})]
            )
        assert (legacy.call_count, dated.call_count) == (2, 2)


# --- batch limits ---------------------------------------------------------------------------------


BatchCall = Callable[[HubSpotClient], Awaitable[Any]]

OVERSIZED_BATCHES: dict[str, BatchCall] = {
    "batch_upsert_contacts": lambda c: c.batch_upsert_contacts(
        hundred_and_one(lambda i: ContactUpsert(email=f"u{i}@example.com"))
    ),
    "batch_read_contacts": lambda c: c.batch_read_contacts(
        hundred_and_one(lambda i: f"u{i}@example.com"), properties=["email"]
    ),
    "create_timeline_events": lambda c: c.create_timeline_events(
        hundred_and_one(lambda i: TimelineEvent(event_template_id="1", id=str(i), object_id=str(i)))
    ),
    "record_attendance": lambda c: c.record_attendance(
        "1", "a", "register", hundred_and_one(lambda i: AttendanceInput(vid=i, interaction_at=T0))
    ),
    "create_call": lambda c: c.create_call({"hs_timestamp": "0"}, hundred_and_one(str)),
    "associate_calls_to_contacts": lambda c: c.associate_calls_to_contacts(
        hundred_and_one(lambda i: ("1", i))
    ),
    "complete_callbacks": lambda c: c.complete_callbacks(
        hundred_and_one(lambda i: CallbackCompletion(callback_id=str(i), output_fields={}))
    ),
}

EMPTY_BATCHES: dict[str, BatchCall] = {
    "batch_upsert_contacts": lambda c: c.batch_upsert_contacts([]),
    "batch_read_contacts": lambda c: c.batch_read_contacts([], properties=["email"]),
    "create_timeline_events": lambda c: c.create_timeline_events([]),
    "record_attendance": lambda c: c.record_attendance("1", "a", "attend", []),
    "associate_calls_to_contacts": lambda c: c.associate_calls_to_contacts([]),
    "complete_callbacks": lambda c: c.complete_callbacks([]),
}


class TestBatchLimits:
    @pytest.mark.parametrize("name", sorted(OVERSIZED_BATCHES))
    async def test_more_than_100_inputs_is_refused(
        self, name: str, client: HubSpotClient, router: respx.MockRouter
    ) -> None:
        with pytest.raises(ValueError, match="at most 100"):
            await OVERSIZED_BATCHES[name](client)
        assert client.stats.requests == 0
        assert not router.calls

    @pytest.mark.parametrize("name", sorted(EMPTY_BATCHES))
    async def test_empty_batch_sends_nothing(
        self, name: str, client: HubSpotClient, router: respx.MockRouter
    ) -> None:
        result = await EMPTY_BATCHES[name](client)
        if result is not None:
            assert result.results == []
            assert result.errors == []
        assert client.stats.requests == 0

    async def test_exactly_100_inputs_are_sent(self, client: HubSpotClient, router: respx.MockRouter) -> None:
        route = router.post(f"{BASE}/crm/v3/objects/contacts/batch/upsert").respond(200, json={"results": []})
        await client.batch_upsert_contacts([ContactUpsert(email=f"u{i}@example.com") for i in range(100)])
        assert len(json.loads(only_request(route).content)["inputs"]) == 100


# --- retries and errors ---------------------------------------------------------------------------

UPSERT_URL = f"{BASE}/crm/v3/objects/contacts/batch/upsert"
OK_UPSERT = httpx.Response(
    200, json={"status": "COMPLETE", "results": [{"id": "1", "properties": {}, "new": True}]}
)


async def upsert_one(client: HubSpotClient) -> Any:
    return await client.batch_upsert_contacts([ContactUpsert(email="ada@example.com", properties={"a": "1"})])


class TestRetries:
    async def test_429_honours_retry_after_and_penalises(
        self,
        client: HubSpotClient,
        router: respx.MockRouter,
        limiter: RecordingLimiter,
        sleeps: RecordingSleep,
    ) -> None:
        route = router.post(UPSERT_URL)
        route.side_effect = [
            httpx.Response(
                429,
                headers={"Retry-After": "1", "X-HubSpot-RateLimit-Interval-Milliseconds": "10000"},
                json={
                    "status": "error",
                    "message": "You have reached your secondly limit.",
                    "errorType": "RATE_LIMIT",
                    "correlationId": "c033cdaa",
                    "policyName": "TEN_SECONDLY_ROLLING",
                },
            ),
            OK_UPSERT,
        ]
        result = await upsert_one(client)
        assert [c.id for c in result.results] == ["1"]
        assert route.call_count == 2
        assert limiter.penalised == [(PORTAL, 1.0)]
        assert limiter.acquired == [PORTAL, PORTAL]  # every attempt waits for the limiter
        assert sleeps.calls == [1.0]
        assert (client.stats.requests, client.stats.rate_limited, client.stats.retries) == (2, 1, 1)
        # Both attempts carry the same request.
        assert route.calls[0].request.content == route.calls[1].request.content

    @pytest.mark.parametrize(
        ("headers", "expected"),
        [
            ({"X-HubSpot-RateLimit-Interval-Milliseconds": "10000"}, 10.0),
            ({"X-HubSpot-RateLimit-Interval-Milliseconds": "2500"}, 2.5),
            ({}, 10.0),
            ({"Retry-After": "soon"}, 10.0),
        ],
    )
    async def test_429_without_retry_after_waits_for_the_window(
        self,
        headers: dict[str, str],
        expected: float,
        client: HubSpotClient,
        router: respx.MockRouter,
        limiter: RecordingLimiter,
        sleeps: RecordingSleep,
    ) -> None:
        router.post(UPSERT_URL).side_effect = [
            httpx.Response(429, headers=headers, text="slow down"),
            OK_UPSERT,
        ]
        await upsert_one(client)
        assert limiter.penalised == [(PORTAL, expected)]
        assert sleeps.calls == [expected]

    async def test_long_retry_after_goes_back_to_caller(
        self, client: HubSpotClient, router: respx.MockRouter, limiter: RecordingLimiter
    ) -> None:
        route = router.post(UPSERT_URL).respond(
            429,
            headers={"Retry-After": "3600"},
            json={
                "status": "error",
                "message": "daily limit",
                "errorType": "RATE_LIMIT",
                "policyName": "DAILY",
            },
        )
        with pytest.raises(HubSpotRateLimited) as info:
            await upsert_one(client)
        assert route.call_count == 1
        assert limiter.penalised == [(PORTAL, 3600.0)]
        exc = info.value
        assert (exc.status, exc.retry_after_s, exc.policy_name, exc.category) == (
            429,
            3600.0,
            "DAILY",
            "RATE_LIMIT",
        )
        assert exc.retryable is True

    async def test_5xx_twice_then_success(
        self, client: HubSpotClient, router: respx.MockRouter, sleeps: RecordingSleep
    ) -> None:
        route = router.post(UPSERT_URL)
        route.side_effect = [
            httpx.Response(502, text="<html>Bad Gateway</html>"),
            httpx.Response(503, json=error_json("INTERNAL_ERROR", "try later")),
            OK_UPSERT,
        ]
        result = await upsert_one(client)
        assert result.results[0].id == "1"
        assert route.call_count == 3
        assert (client.stats.requests, client.stats.server_errors, client.stats.retries) == (3, 2, 2)
        assert len(sleeps.calls) == 2
        assert all(0 < s <= 0.01 for s in sleeps.calls)  # backoff_base_s/backoff_max_s are honoured

    async def test_transport_error_then_success(
        self, client: HubSpotClient, router: respx.MockRouter, limiter: RecordingLimiter
    ) -> None:
        route = router.post(UPSERT_URL)
        route.side_effect = [httpx.ConnectTimeout("timed out"), OK_UPSERT]
        result = await upsert_one(client)
        assert result.results[0].id == "1"
        assert route.call_count == 2
        assert limiter.acquired == [PORTAL, PORTAL]
        assert (client.stats.requests, client.stats.transport_errors) == (2, 1)

    async def test_400_is_not_retried(
        self, client: HubSpotClient, router: respx.MockRouter, sleeps: RecordingSleep
    ) -> None:
        route = router.post(UPSERT_URL).respond(
            400,
            json=error_json(
                "VALIDATION_ERROR",
                'Property values were not valid: [{"name":"zoom_x","message":"Property does not exist"}]',
                context={"properties": ["zoom_x"]},
                subCategory="INVALID_PROPERTY",
            ),
        )
        with pytest.raises(HubSpotValidationError) as info:
            await upsert_one(client)
        assert route.call_count == 1
        assert sleeps.calls == []
        exc = info.value
        assert exc.status == 400
        assert exc.category == "VALIDATION_ERROR"
        assert exc.message.startswith("Property values were not valid")
        assert exc.correlation_id == "corr-1"
        assert exc.context == {"properties": ["zoom_x"]}
        assert exc.sub_category == "INVALID_PROPERTY"
        assert exc.retryable is False
        assert "POST /crm/v3/objects/contacts/batch/upsert" in str(exc)

    @pytest.mark.parametrize("status", [409, 422])
    async def test_conflict_and_unprocessable_are_validation_errors(
        self, status: int, client: HubSpotClient, router: respx.MockRouter
    ) -> None:
        router.post(UPSERT_URL).respond(status, json=error_json("CONFLICT", "already exists"))
        with pytest.raises(HubSpotValidationError) as info:
            await upsert_one(client)
        assert info.value.status == status
        assert client.stats.requests == 1

    @pytest.mark.parametrize("status", [401, 403])
    async def test_auth_errors(self, status: int, client: HubSpotClient, router: respx.MockRouter) -> None:
        router.post(UPSERT_URL).respond(
            status, json=error_json("INVALID_AUTHENTICATION", "Authentication credentials not found.")
        )
        with pytest.raises(HubSpotAuthError) as info:
            await upsert_one(client)
        assert (info.value.status, info.value.category) == (status, "INVALID_AUTHENTICATION")
        assert info.value.retryable is False
        assert client.stats.requests == 1

    async def test_other_4xx_is_plain_error_not_retried(
        self, client: HubSpotClient, router: respx.MockRouter
    ) -> None:
        router.post(UPSERT_URL).respond(405, text="")
        with pytest.raises(HubSpotError) as info:
            await upsert_one(client)
        assert type(info.value) is HubSpotError
        assert info.value.message == "HTTP 405"
        assert client.stats.requests == 1

    async def test_5xx_until_attempts_run_out(
        self, make_client: ClientFactory, router: respx.MockRouter
    ) -> None:
        client = make_client(max_attempts=3)
        route = router.post(UPSERT_URL).respond(500, json=error_json("INTERNAL_ERROR", "boom"))
        with pytest.raises(HubSpotServerError) as info:
            await upsert_one(client)
        assert route.call_count == 3
        assert info.value.status == 500
        assert info.value.retryable is True

    async def test_transport_errors_until_attempts_run_out(
        self, make_client: ClientFactory, router: respx.MockRouter
    ) -> None:
        client = make_client(max_attempts=4)
        route = router.post(UPSERT_URL).mock(side_effect=httpx.ConnectError("connection refused"))
        with pytest.raises(HubSpotUnavailable) as info:
            await upsert_one(client)
        assert route.call_count == 4
        assert info.value.status is None
        assert info.value.retryable is True
        assert "ConnectError" in str(info.value)

    async def test_429_until_attempts_run_out(
        self, make_client: ClientFactory, router: respx.MockRouter, limiter: RecordingLimiter
    ) -> None:
        client = make_client(max_attempts=2)
        router.post(UPSERT_URL).respond(429, headers={"Retry-After": "0"}, json={"message": "limit"})
        with pytest.raises(HubSpotRateLimited):
            await upsert_one(client)
        assert (client.stats.requests, client.stats.rate_limited) == (2, 2)
        assert limiter.penalised == [(PORTAL, 0.0), (PORTAL, 0.0)]

    async def test_unexpected_success_body_is_a_typed_error(
        self, client: HubSpotClient, router: respx.MockRouter
    ) -> None:
        router.post(UPSERT_URL).respond(200, json={"results": [{"properties": {}}]})  # no id
        with pytest.raises(HubSpotError) as info:
            await upsert_one(client)
        assert info.value.category == "UNEXPECTED_RESPONSE"


# --- the call observer ----------------------------------------------------------------------------


class TestObserver:
    """What the portal's health (app.delivery.health) is told, and when."""

    async def test_retries_then_success_is_one_call_without_error(
        self, make_client: ClientFactory, router: respx.MockRouter
    ) -> None:
        observer = RecordingObserver[HubSpotError]()
        client = make_client(observer=observer)
        router.post(UPSERT_URL).side_effect = [httpx.Response(502, text="bad gateway"), OK_UPSERT]
        before = datetime.now(UTC)
        await upsert_one(client)
        assert len(observer.calls) == 1
        error, began_at = observer.calls[0]
        assert error is None
        assert before <= began_at <= datetime.now(UTC)

    async def test_a_429_is_told_at_once_then_the_call_when_it_ends(
        self, make_client: ClientFactory, router: respx.MockRouter
    ) -> None:
        observer = RecordingObserver[HubSpotError]()
        client = make_client(observer=observer)
        router.post(UPSERT_URL).side_effect = [
            httpx.Response(429, headers={"Retry-After": "1"}, json={"message": "limit"}),
            OK_UPSERT,
        ]
        await upsert_one(client)
        (limited, limited_at), (last, began_at) = observer.calls
        assert isinstance(limited, HubSpotRateLimited)
        assert last is None
        assert began_at <= limited_at  # the 429 carries its own moment, the call when it began

    async def test_final_failure_is_told_once_with_the_last_error(
        self, make_client: ClientFactory, router: respx.MockRouter
    ) -> None:
        observer = RecordingObserver[HubSpotError]()
        client = make_client(observer=observer, max_attempts=3)
        router.post(UPSERT_URL).side_effect = [
            httpx.Response(500, json=error_json("INTERNAL_ERROR", "one")),
            httpx.ConnectError("refused"),
            httpx.Response(503, json=error_json("INTERNAL_ERROR", "three")),
        ]
        with pytest.raises(HubSpotServerError) as info:
            await upsert_one(client)
        assert [error for error, _ in observer.calls] == [info.value]

    async def test_a_long_429_is_told_twice_and_not_waited(
        self, make_client: ClientFactory, router: respx.MockRouter, sleeps: RecordingSleep
    ) -> None:
        observer = RecordingObserver[HubSpotError]()
        client = make_client(observer=observer)
        router.post(UPSERT_URL).respond(429, headers={"Retry-After": "3600"}, json={"message": "daily"})
        with pytest.raises(HubSpotRateLimited) as info:
            await upsert_one(client)
        assert [error for error, _ in observer.calls] == [info.value, info.value]
        assert sleeps.calls == []

    async def test_a_refused_request_is_told_without_retrying(
        self, make_client: ClientFactory, router: respx.MockRouter
    ) -> None:
        observer = RecordingObserver[HubSpotError]()
        client = make_client(observer=observer)
        router.post(UPSERT_URL).respond(400, json=error_json("VALIDATION_ERROR", "bad"))
        with pytest.raises(HubSpotValidationError) as info:
            await upsert_one(client)
        assert [error for error, _ in observer.calls] == [info.value]
        assert client.stats.requests == 1

    async def test_at_most_once_leaves_a_lost_answer_to_the_caller(
        self, make_client: ClientFactory, router: respx.MockRouter
    ) -> None:
        observer = RecordingObserver[HubSpotError]()
        client = make_client(observer=observer)
        route = router.post(f"{BASE}/crm/v3/objects/calls").respond(502, text="bad gateway")
        with pytest.raises(HubSpotServerError) as info:
            await client.create_call({"hs_call_title": "x"}, [], at_most_once=True)
        assert route.call_count == 1
        assert [error for error, _ in observer.calls] == [info.value]


# --- the token stays secret -----------------------------------------------------------------------


class TestTokenSecrecy:
    async def test_token_never_in_exception_text_or_logs(
        self,
        make_client: ClientFactory,
        router: respx.MockRouter,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        client = make_client(max_attempts=2)
        caplog.set_level(logging.DEBUG)
        route = router.post(UPSERT_URL)
        # A (hypothetical) server that echoes the header back must not leak it either.
        echo = error_json("INVALID_AUTHENTICATION", f"bad header: Bearer {TOKEN}")
        route.side_effect = [httpx.Response(503, json=echo), httpx.Response(401, json=echo)]
        with pytest.raises(HubSpotAuthError) as auth:
            await upsert_one(client)
        route.side_effect = httpx.ConnectError(f"could not connect with {TOKEN}")
        with pytest.raises(HubSpotUnavailable) as unavailable:
            await upsert_one(client)
        for exc in (auth.value, unavailable.value):
            for text in (str(exc), repr(exc), exc.message):
                assert TOKEN not in text
        assert TOKEN not in repr(client)
        assert caplog.records  # the retries were logged...
        assert all(TOKEN not in record.getMessage() for record in caplog.records)  # ...without the token


# --- InProcessRateLimiter -------------------------------------------------------------------------


class FakeClock:
    """Time stands still until someone sleeps; sleeping moves it forward at once."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)  # let other tasks run, as a real sleep would


class TestInProcessRateLimiter:
    async def test_concurrent_acquires_take_whole_windows(self) -> None:
        clock = FakeClock()
        limiter = InProcessRateLimiter(5, 0.5, clock=clock, sleep=clock.sleep)
        granted: list[tuple[int, float]] = []

        async def worker(i: int) -> None:
            await limiter.acquire(PORTAL)
            granted.append((i, clock.now))

        await asyncio.gather(*(worker(i) for i in range(12)))
        times = [t for _, t in granted]
        assert times == [0.0] * 5 + [0.5] * 5 + [1.0] * 2
        assert clock.now >= 0.5  # at least one full window passed
        # Rolling window: no 0.5 s span ever holds more than 5 sends.
        assert all(times[i + 5] - times[i] >= 0.5 for i in range(len(times) - 5))
        assert [i for i, _ in granted] == list(range(12))  # served in arrival order

    async def test_window_rolls_instead_of_resetting(self) -> None:
        clock = FakeClock()
        limiter = InProcessRateLimiter(2, 1.0, clock=clock, sleep=clock.sleep)
        await limiter.acquire(PORTAL)  # t=0
        clock.now = 0.6
        await limiter.acquire(PORTAL)  # t=0.6
        await limiter.acquire(PORTAL)  # must wait only for the t=0 send to leave: t=1.0
        assert clock.now == pytest.approx(1.0)
        await limiter.acquire(PORTAL)  # then for the t=0.6 send: t=1.6
        assert clock.now == pytest.approx(1.6)

    async def test_portals_have_separate_budgets(self) -> None:
        clock = FakeClock()
        limiter = InProcessRateLimiter(1, 10.0, clock=clock, sleep=clock.sleep)
        await limiter.acquire(1)
        await limiter.acquire(2)
        assert clock.now == 0.0
        assert clock.sleeps == []

    async def test_penalise_blocks_the_portal(self) -> None:
        clock = FakeClock()
        limiter = InProcessRateLimiter(100, 10.0, clock=clock, sleep=clock.sleep)
        await limiter.acquire(PORTAL)
        limiter.penalise(PORTAL, 2.0)
        limiter.penalise(PORTAL, 1.0)  # a shorter penalty never shortens the block
        await limiter.acquire(7)  # another portal is unaffected
        assert clock.now == 0.0
        await limiter.acquire(PORTAL)
        assert clock.now == pytest.approx(2.0)

    async def test_penalty_during_a_wait_extends_it(self) -> None:
        clock = FakeClock()
        limiter = InProcessRateLimiter(1, 1.0, clock=clock, sleep=clock.sleep)
        await limiter.acquire(PORTAL)
        waiter = asyncio.ensure_future(limiter.acquire(PORTAL))
        await asyncio.sleep(0)  # the waiter sleeps until t=1.0 (fake clock jumps there at once)
        limiter.penalise(PORTAL, 5.0)  # issued at t=1.0, before the waiter re-checks
        await waiter
        assert clock.now == pytest.approx(6.0)

    async def test_rejects_bad_configuration(self) -> None:
        with pytest.raises(ValueError):
            InProcessRateLimiter(0)
        with pytest.raises(ValueError):
            InProcessRateLimiter(5, 0)

    async def test_works_with_the_client(self, http: httpx.AsyncClient, router: respx.MockRouter) -> None:
        clock = FakeClock()
        limiter = InProcessRateLimiter(100, 10.0, clock=clock, sleep=clock.sleep)
        client = HubSpotClient(
            http,
            base_url=BASE,
            access_token=TOKEN,
            portal_id=PORTAL,
            rate_limiter=limiter,
            sleep=clock.sleep,
        )
        router.post(UPSERT_URL).side_effect = [
            httpx.Response(429, headers={"Retry-After": "3"}, json={"message": "limit"}),
            OK_UPSERT,
        ]
        await upsert_one(client)
        # The client slept the 3 s itself; the limiter's block had expired by then.
        assert clock.now == pytest.approx(3.0)
        assert client.stats.requests == 2
