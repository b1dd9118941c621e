"""The dispatcher against respx: the exact requests it sends to HubSpot for each kind of operation.

The database is prepared the way the worker prepares it (stored Zoom events, then the inbox
processor), and a real `Dispatcher` sends the planned operations through a real `HubSpotClient`.
HubSpot is a small stateful fake behind respx (contacts it knows, ids it hands out, timeline event
ids it has seen) whose answers a test can replace one call at a time. The dispatcher runs on a clock
the test moves forward, so retries and back-off need no real waiting.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy import update
from sqlmodel import Session, col, select

from app.db import unit_of_work, utcnow
from app.delivery.dispatcher import DispatchConfig, Dispatcher, DispatchOutcome
from app.delivery.facts import FactsResolver, db_hubspot_facts
from app.delivery.ops import event_id
from app.ingest.replan import enqueue_replan
from app.integrations.hubspot import HubSpotClient
from app.integrations.hubspot.setup import PortalSetup
from app.models import AuditEntry, Connection, OutboxOp, PortalSettings, Registration, TimelineBackend
from app.queue_status import status_counts
from app.sandbox.zoom_webhooks import WebinarScenario
from app.sync.inbox_processor import InboxProcessor
from tests.fixtures.databases import Database
from tests.fixtures.inbox import store_events
from tests.fixtures.service import ACCOUNT_ID, PORTAL_ID

pytestmark = pytest.mark.anyio

BASE = "https://api.hubapi.test"
TOKEN = "pat-na1-dispatch-test-token"
WEBINAR = "85000000001"
TOPIC = "Dispatch webinar"
HOST_EMAIL = "host@hostco.com"
JOIN_URL = f"https://us06web.zoom.us/j/{WEBINAR}"
T0 = datetime(2026, 4, 2, 15, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
TEMPLATES = {"Zoom webinar registration": "t-reg", "Zoom webinar attendance": "t-att"}
READ_PROPERTIES = ["email", "hs_additional_emails", "firstname", "lastname"]
CARA_ID = "901"  # cara is a contact in HubSpot already; ann and bob are new

P1 = "zoom_webinar_average_attendance_percent"
P2 = "zoom_last_registered_webinar_url"
P3 = "zoom_webinar_registration_count"
P4 = "zoom_webinar_attendance_count"


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


# --------------------------------------------------------------------------------------------------
# The local side: Zoom events stored and processed as the worker does
# --------------------------------------------------------------------------------------------------

ANN_REGISTERED = T0 - timedelta(days=3)
BOB_REGISTERED = T0 - timedelta(days=2)
CARA_REGISTERED = T0 - timedelta(days=3) + timedelta(hours=1)


def small_webinar() -> WebinarScenario:
    """Ann attends 0-30 of 60 min (50 %); Bob registers then cancels; Cara attends 10-20 and,
    rejoining, 15-50: the union is 10-50, 40 of 60 min (66.7 %)."""
    s = WebinarScenario(
        account_id=ACCOUNT_ID,
        webinar_id=WEBINAR,
        host_id="hostD",
        host_email=HOST_EMAIL,
        topic=TOPIC,
        start=T0,
        duration_minutes=60,
        seed=77,
    )
    s.created(at=T0 - timedelta(days=5))
    ann = s.register("ann@example.com", "Ann", "Tester", at=ANN_REGISTERED)
    bob = s.register("bob@example.com", "Bob", "Tester", at=BOB_REGISTERED)
    cara = s.register("cara@example.com", "Cara", "Tester", at=CARA_REGISTERED)
    s.cancel(bob, at=T0 - timedelta(days=1))
    s.started(at=T0)
    p = s.participant_for(ann)
    s.join(p, at=T0)
    s.leave(p, at=T0 + 30 * MINUTE)
    c1 = s.participant_for(cara)
    s.join(c1, at=T0 + 10 * MINUTE)
    s.leave(c1, at=T0 + 20 * MINUTE)
    c2 = s.rejoin_as(c1)
    s.join(c2, at=T0 + 15 * MINUTE)
    s.leave(c2, at=T0 + 50 * MINUTE)
    s.ended(at=T0 + 60 * MINUTE)
    return s


def crowd_webinar(n: int) -> WebinarScenario:
    """n registrations, nobody attended yet (the webinar has not run)."""
    s = WebinarScenario(
        account_id=ACCOUNT_ID,
        webinar_id=WEBINAR,
        host_id="hostD",
        host_email=HOST_EMAIL,
        topic=TOPIC,
        start=T0,
        seed=78,
    )
    s.created(at=T0 - timedelta(days=10))
    for i in range(n):
        s.register(f"person{i:03d}@example.com", f"P{i}", "Crowd", at=T0 - timedelta(days=5, minutes=-i))
    return s


def connect_portal(db: Database) -> None:
    with unit_of_work(db.engine) as session:
        session.add(Connection(portal_id=PORTAL_ID, zoom_account_id=ACCOUNT_ID, is_primary=True))
        session.add(PortalSettings(portal_id=PORTAL_ID, webinar_sync_enabled=True))


def process_inbox(db: Database) -> None:
    processor = InboxProcessor(db.engine, hubspot_facts=db_hubspot_facts)
    for _ in range(50):
        if processor.run_once().claimed == 0:
            return
    raise AssertionError("the inbox never became idle")


def prepare(db: Database, scenario: WebinarScenario) -> None:
    connect_portal(db)
    store_events(db, scenario.envelopes)
    process_inbox(db)


def replan(db: Database) -> None:
    """A replay of the webinar (what Sync now / a settings change asks for)."""
    with unit_of_work(db.engine) as session:
        enqueue_replan(session, ACCOUNT_ID, WEBINAR)
    process_inbox(db)


def ops(db: Database, kind: str | None = None) -> list[OutboxOp]:
    with Session(db.engine) as session:
        query = select(OutboxOp).order_by(col(OutboxOp.id))
        if kind is not None:
            query = query.where(OutboxOp.kind == kind)
        rows = list(session.exec(query).all())
        for row in rows:
            session.expunge(row)
        return rows


def webinar_audit(db: Database) -> list[AuditEntry]:
    """The rows GET /api/v1/portals/{portal}/webinars/{webinar}/audit-log returns."""
    with Session(db.engine) as session:
        rows = list(
            session.exec(
                select(AuditEntry)
                .where(
                    AuditEntry.portal_id == PORTAL_ID,
                    AuditEntry.zoom_account_id == ACCOUNT_ID,
                    AuditEntry.webinar_id == WEBINAR,
                )
                .order_by(col(AuditEntry.id))
            ).all()
        )
        for row in rows:
            session.expunge(row)
        return rows


def cancelled_at_ms(db: Database, email: str) -> int:
    """When Zoom said the registration was cancelled: the cancel event's time, not processing time."""
    with Session(db.engine) as session:
        reg = session.exec(select(Registration).where(Registration.email == email)).one()
        assert reg.status == "cancelled"
        return reg.status_event_ts


# --------------------------------------------------------------------------------------------------
# HubSpot: a small stateful fake behind respx
# --------------------------------------------------------------------------------------------------

Answer = Callable[[httpx.Request], httpx.Response]


class FakeHubSpot:
    """Knows contacts (email -> id), hands out ids to new ones, refuses a timeline event id it has
    seen (207 CONFLICT, as HubSpot does). `answer(route, ...)` replaces the next answers of a route;
    `always(route, ...)` replaces all of them."""

    ROUTES = ("users", "read", "upsert", "timeline", "marketing_event", "attendance", "complete")

    def __init__(self, contacts: dict[str, str] | None = None) -> None:
        self.contacts: dict[str, str] = dict(contacts or {})
        self.next_id = 1001
        self.timeline_ids: set[tuple[str, str]] = set()
        self._queued: dict[str, list[Answer]] = defaultdict(list)
        self._always: dict[str, Answer] = {}

    def answer(self, route: str, *answers: Answer) -> None:
        self._queued[route].extend(answers)

    def always(self, route: str, answer: Answer) -> None:
        self._always[route] = answer

    def install(self, router: respx.MockRouter) -> None:
        handlers: dict[str, Answer] = {
            "users": self._users,
            "read": self._read,
            "upsert": self._upsert,
            "timeline": self._timeline,
            "marketing_event": self._marketing_event,
            "attendance": self._attendance,
            "complete": self._complete,
        }

        def dispatch(name: str) -> Callable[..., httpx.Response]:
            def side_effect(request: httpx.Request, **_: Any) -> httpx.Response:
                if self._queued[name]:
                    return self._queued[name].pop(0)(request)
                return self._always.get(name, handlers[name])(request)

            return side_effect

        router.get("/settings/v3/users/", name="users").mock(side_effect=dispatch("users"))
        router.post("/crm/v3/objects/contacts/batch/read", name="read").mock(side_effect=dispatch("read"))
        router.post("/crm/v3/objects/contacts/batch/upsert", name="upsert").mock(
            side_effect=dispatch("upsert")
        )
        router.post("/integrators/timeline/v3/events/batch/create", name="timeline").mock(
            side_effect=dispatch("timeline")
        )
        router.route(
            method="PUT", path__regex=r"^/marketing/v3/marketing-events/events/[^/]+$", name="marketing_event"
        ).mock(side_effect=dispatch("marketing_event"))
        router.route(
            method="POST",
            path__regex=r"^/marketing/v3/marketing-events/attendance/[^/]+/(register|attend|cancel)/create$",
            name="attendance",
        ).mock(side_effect=dispatch("attendance"))
        router.route(
            method="POST",
            path__regex=r"^/marketing/v3/marketing-events/events/[^/]+/complete$",
            name="complete",
        ).mock(side_effect=dispatch("complete"))

    # ---- default answers ---------------------------------------------------------------------------

    @staticmethod
    def _users(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"results": [{"id": "7", "email": "owner@ourco.io"}]})

    def _read(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        wanted = [item["id"] for item in body["inputs"]]
        archived = request.url.params.get("archived") == "true"
        found = [] if archived else [e for e in wanted if e in self.contacts]
        results = [
            {
                "id": self.contacts[e],
                "properties": {"email": e, "hs_additional_emails": None, "firstname": "Known"},
                "archived": False,
            }
            for e in found
        ]
        missing = [e for e in wanted if e not in found]
        out: dict[str, Any] = {"status": "COMPLETE", "results": results}
        if missing:
            out["errors"] = [
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "message": "Could not get some CONTACT objects, they may be deleted or not exist.",
                    "context": {"ids": missing},
                    "errors": [],
                    "links": {},
                }
            ]
            out["numErrors"] = 1
        return httpx.Response(207 if missing else 200, json=out)

    def _upsert(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"status": "COMPLETE", "results": self.upsert_results(request)})

    def upsert_results(self, request: httpx.Request, skip: Sequence[str] = ()) -> list[dict[str, Any]]:
        results = []
        for item in json.loads(request.content)["inputs"]:
            email = item["id"]
            if email in skip:
                continue
            new = email not in self.contacts
            if new:
                self.contacts[email] = str(self.next_id)
                self.next_id += 1
            results.append(
                {
                    "id": self.contacts[email],
                    "properties": dict(item["properties"]),
                    "new": new,
                    "archived": False,
                }
            )
        return results

    def _timeline(self, request: httpx.Request) -> httpx.Response:
        results, errors = [], []
        for event in json.loads(request.content)["inputs"]:
            key = (event["eventTemplateId"], event["id"])
            if key in self.timeline_ids:
                errors.append(
                    {
                        "status": "error",
                        "category": "CONFLICT",
                        "message": f"An event with id {event['id']} already exists.",
                        "context": {"eventTemplateId": [event["eventTemplateId"]], "eventId": [event["id"]]},
                        "errors": [],
                        "links": {},
                    }
                )
                continue
            self.timeline_ids.add(key)
            results.append(
                {
                    "id": event["id"],
                    "eventTemplateId": event["eventTemplateId"],
                    "objectId": event["objectId"],
                    "objectType": "contacts",
                }
            )
        body: dict[str, Any] = {"status": "COMPLETE", "results": results}
        if errors:
            body |= {"errors": errors, "numErrors": len(errors)}
        return httpx.Response(207 if errors else 201, json=body)

    @staticmethod
    def _marketing_event(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        return httpx.Response(200, json={"id": "me-1", "objectId": "me-1", "eventName": body["eventName"]})

    @staticmethod
    def _attendance(request: httpx.Request) -> httpx.Response:
        inputs = json.loads(request.content)["inputs"]
        return httpx.Response(
            200, json={"status": "COMPLETE", "results": [{"vid": i["vid"]} for i in inputs]}
        )

    @staticmethod
    def _complete(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"id": "me-1", "objectId": "me-1", "eventCompleted": True})


@dataclass(frozen=True)
class Sent:
    method: str
    path: str
    params: dict[str, str]
    body: Any
    headers: httpx.Headers


def sent(router: respx.MockRouter, route: str | None = None) -> list[Sent]:
    calls = router.calls if route is None else router.routes[route].calls
    return [
        Sent(
            c.request.method,
            c.request.url.path,
            dict(c.request.url.params),
            json.loads(c.request.content) if c.request.content else None,
            c.request.headers,
        )
        for c in calls
    ]


class NoLimit:
    async def acquire(self, portal_id: int) -> None:
        return None

    def penalise(self, portal_id: int, retry_after_s: float) -> None:
        return None


class Clock:
    """The dispatcher's clock: real time plus an offset the test moves forward."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return utcnow() + self.offset

    def advance(self, by: timedelta = timedelta(minutes=10)) -> None:
        self.offset += by


class Harness:
    """A real Dispatcher on the test's clock, with a real client and a stub set-up (template ids)."""

    def __init__(self, db: Database, http: httpx.AsyncClient, **config: Any) -> None:
        self.clock = Clock()
        self.client = HubSpotClient(
            http,
            base_url=BASE,
            access_token=TOKEN,
            portal_id=PORTAL_ID,
            rate_limiter=NoLimit(),
            max_attempts=1,  # every failure goes back to the dispatcher, which owns the retries here
        )
        values: dict[str, Any] = {"max_attempts": 3, "retry_base_s": 0.05}
        values.update(config)
        self.dispatcher = Dispatcher(
            db.engine,
            client_for=lambda portal_id: self.client if portal_id == PORTAL_ID else None,
            setup_for=self._setup,
            facts=FactsResolver(db.engine),
            config=DispatchConfig(**values),
            now=self.clock,
        )

    @staticmethod
    async def _setup(client: HubSpotClient, portal_id: int) -> PortalSetup:
        return PortalSetup(TimelineBackend.CLASSIC, dict(TEMPLATES))

    async def round(self) -> DispatchOutcome:
        outcome = await self.dispatcher.run_once()
        self.clock.advance()
        return outcome

    async def drain(self, max_rounds: int = 40) -> list[DispatchOutcome]:
        outcomes: list[DispatchOutcome] = []
        for _ in range(max_rounds):
            outcome = await self.round()
            if outcome.claimed == 0:
                return outcomes
            outcomes.append(outcome)
        raise AssertionError(f"operations still due after {max_rounds} rounds: {outcomes[-3:]}")


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_mocked=True, assert_all_called=False) as mock:
        yield mock


@pytest.fixture
async def http() -> Any:
    async with httpx.AsyncClient(timeout=5.0) as client:
        yield client


@pytest.fixture
def fake(router: respx.MockRouter) -> FakeHubSpot:
    hubspot = FakeHubSpot({"cara@example.com": CARA_ID})
    hubspot.install(router)
    return hubspot


@pytest.fixture
def harness(
    database: Database, router: respx.MockRouter, http: httpx.AsyncClient, fake: FakeHubSpot
) -> Harness:
    return Harness(database, http)


def assert_headers(request: Sent) -> None:
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Accept"] == "application/json"
    if request.body is not None:
        assert request.headers["Content-Type"] == "application/json"


def read_body(emails: Sequence[str]) -> dict[str, Any]:
    return {
        "inputs": [{"id": e} for e in emails],
        "properties": READ_PROPERTIES,
        "propertiesWithHistory": [],
        "idProperty": "email",
    }


ANN_INPUT = {
    "id": "ann@example.com",
    "idProperty": "email",
    "properties": {
        "email": "ann@example.com",
        P1: "50.0",
        P2: JOIN_URL,
        P3: "1",
        P4: "1",
        "firstname": "Ann",
        "lastname": "Tester",
    },
}
# Cancelled: no active registration, no attendance, no average; still the last webinar registered for.
BOB_INPUT = {
    "id": "bob@example.com",
    "idProperty": "email",
    "properties": {
        "email": "bob@example.com",
        P2: JOIN_URL,
        P3: "0",
        P4: "0",
        "firstname": "Bob",
        "lastname": "Tester",
    },
}
# Known to HubSpot already: the names there are left alone.
# Cara exists at HubSpot with a first name ("Known", kept: never overwritten) and no last name: the
# empty one is filled from her registration.
CARA_INPUT = {
    "id": "cara@example.com",
    "idProperty": "email",
    "properties": {
        "email": "cara@example.com",
        P1: "66.7",
        P2: JOIN_URL,
        P3: "1",
        P4: "1",
        "lastname": "Tester",
    },
}


def without_names(item: dict[str, Any]) -> dict[str, Any]:
    props = {k: v for k, v in item["properties"].items() if k not in ("firstname", "lastname")}
    return {**item, "properties": props}


# --------------------------------------------------------------------------------------------------
# One kind of operation at a time
# --------------------------------------------------------------------------------------------------


async def test_contacts_are_read_then_upserted_by_email_with_computed_properties(
    database: Database, harness: Harness, router: respx.MockRouter
) -> None:
    prepare(database, small_webinar())
    await harness.drain()

    users = sent(router, "users")
    assert len(users) == 1  # account users are cached for the resolver's TTL
    assert (users[0].method, users[0].path, users[0].params, users[0].body) == (
        "GET",
        "/settings/v3/users/",
        {"limit": "100"},
        None,
    )
    assert_headers(users[0])

    reads = sent(router, "read")
    # Everyone by email; those HubSpot does not know are looked for among archived contacts (R4).
    assert [(r.method, r.path, r.params, r.body) for r in reads] == [
        (
            "POST",
            "/crm/v3/objects/contacts/batch/read",
            {"archived": "false"},
            read_body(["ann@example.com", "bob@example.com", "cara@example.com"]),
        ),
        (
            "POST",
            "/crm/v3/objects/contacts/batch/read",
            {"archived": "true"},
            read_body(["ann@example.com", "bob@example.com"]),
        ),
    ]
    for r in reads:
        assert_headers(r)

    [upsert] = sent(router, "upsert")
    assert (upsert.method, upsert.path, upsert.params) == (
        "POST",
        "/crm/v3/objects/contacts/batch/upsert",
        {},
    )
    assert_headers(upsert)
    assert upsert.body == {"inputs": [ANN_INPUT, BOB_INPUT, CARA_INPUT]}

    # The order: users and facts before the write, the write before anything that needs the ids.
    order = [c.request.url.path for c in router.calls]
    first_upsert = order.index("/crm/v3/objects/contacts/batch/upsert")
    assert (
        order.index("/settings/v3/users/") < order.index("/crm/v3/objects/contacts/batch/read") < first_upsert
    )
    assert first_upsert < order.index("/integrators/timeline/v3/events/batch/create")
    contact_ops = ops(database, "contact_refresh")
    assert {(o.email, o.state, o.attempts) for o in contact_ops} == {
        ("ann@example.com", "done", 0),
        ("bob@example.com", "done", 0),
        ("cara@example.com", "done", 0),
    }


async def test_timeline_events_name_the_contact_id_and_carry_the_contract_tokens(
    database: Database, harness: Harness, router: respx.MockRouter, fake: FakeHubSpot
) -> None:
    prepare(database, small_webinar())
    await harness.drain()

    requests = sent(router, "timeline")
    for r in requests:
        assert (r.method, r.path, r.params) == ("POST", "/integrators/timeline/v3/events/batch/create", {})
        assert_headers(r)
    events = [e for r in requests for e in r.body["inputs"]]
    ids = {
        email: fake.contacts[email] for email in ("ann@example.com", "bob@example.com", "cara@example.com")
    }
    assert ids["cara@example.com"] == CARA_ID and ids["ann@example.com"] != ids["bob@example.com"]

    by_key = {(e["eventTemplateId"], e["objectId"]): e for e in events}
    assert len(by_key) == len(events) == 5
    for e in events:
        assert "@" not in e["objectId"] and "email" not in e  # never by email: no contact is created
        assert "@" not in e["id"]
        prefix = "zoom-reg-" if e["eventTemplateId"] == "t-reg" else "zoom-att-"
        assert e["id"].startswith(prefix + WEBINAR + "-"), e["id"]
    assert len({e["id"] for e in events}) == 5

    def event(template: str, email: str) -> dict[str, Any]:
        found = by_key[(template, ids[email])]
        return {k: v for k, v in found.items() if k != "id"}

    for email, registered in (
        ("ann@example.com", ANN_REGISTERED),
        ("bob@example.com", BOB_REGISTERED),  # E3 also for a registration cancelled later
        ("cara@example.com", CARA_REGISTERED),
    ):
        assert event("t-reg", email) == {
            "eventTemplateId": "t-reg",
            "objectId": ids[email],
            "tokens": {"webinar_id": WEBINAR, "webinar_name": TOPIC},
            "timestamp": iso(registered),
        }
    # E2: dates as epoch milliseconds, duration in whole seconds, percent with one decimal.
    assert event("t-att", "ann@example.com") == {
        "eventTemplateId": "t-att",
        "objectId": ids["ann@example.com"],
        "tokens": {
            "webinar_id": WEBINAR,
            "webinar_name": TOPIC,
            "webinar_date": str(ms(T0)),
            "join_time": str(ms(T0)),
            "leave_time": str(ms(T0 + 30 * MINUTE)),
            "attendance_duration_seconds": "1800",
            "attendance_percent": "50.0",
        },
        "timestamp": iso(T0),
    }
    assert event("t-att", "cara@example.com") == {
        "eventTemplateId": "t-att",
        "objectId": CARA_ID,
        "tokens": {
            "webinar_id": WEBINAR,
            "webinar_name": TOPIC,
            "webinar_date": str(ms(T0)),
            "join_time": str(ms(T0 + 10 * MINUTE)),
            "leave_time": str(ms(T0 + 50 * MINUTE)),
            "attendance_duration_seconds": "2400",
            "attendance_percent": "66.7",
        },
        "timestamp": iso(T0 + 10 * MINUTE),
    }
    assert ("t-att", ids["bob@example.com"]) not in by_key  # bob never attended


async def test_marketing_event_states_and_completion(
    database: Database, harness: Harness, router: respx.MockRouter, fake: FakeHubSpot
) -> None:
    prepare(database, small_webinar())
    await harness.drain()
    ann, bob = int(fake.contacts["ann@example.com"]), int(fake.contacts["bob@example.com"])
    cara = int(CARA_ID)

    [event] = sent(router, "marketing_event")
    assert_headers(event)
    assert (event.method, event.path, event.params) == (
        "PUT",
        f"/marketing/v3/marketing-events/events/{WEBINAR}",
        {},
    )
    assert event.body == {
        "externalAccountId": ACCOUNT_ID,
        "externalEventId": WEBINAR,
        "eventName": TOPIC,
        "eventOrganizer": HOST_EMAIL,
        "eventType": "WEBINAR",
        "customProperties": [],
        "startDateTime": iso(T0),
        "endDateTime": iso(T0 + 60 * MINUTE),
        "eventUrl": JOIN_URL,
    }

    states = sent(router, "attendance")
    for r in states:
        assert_headers(r)
        assert r.method == "POST" and r.params == {"externalAccountId": ACCOUNT_ID}
    by_state = {r.path.rsplit("/", 2)[-2]: r for r in states}
    assert [r.path for r in states] == [
        f"/marketing/v3/marketing-events/attendance/{WEBINAR}/register/create",
        f"/marketing/v3/marketing-events/attendance/{WEBINAR}/attend/create",
        f"/marketing/v3/marketing-events/attendance/{WEBINAR}/cancel/create",
    ]

    def by_vid(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(items, key=lambda i: int(i["vid"]))

    def rows(state: str) -> list[dict[str, Any]]:
        return by_vid(by_state[state].body["inputs"])

    assert rows("register") == by_vid(
        [
            {"vid": ann, "interactionDateTime": ms(ANN_REGISTERED), "properties": {}},
            {"vid": bob, "interactionDateTime": ms(BOB_REGISTERED), "properties": {}},
            {"vid": cara, "interactionDateTime": ms(CARA_REGISTERED), "properties": {}},
        ]
    )
    assert rows("attend") == by_vid(
        [
            {
                "vid": ann,
                "interactionDateTime": ms(T0),
                "properties": {"joinedAt": iso(T0), "leftAt": iso(T0 + 30 * MINUTE)},
            },
            {
                "vid": cara,
                "interactionDateTime": ms(T0 + 10 * MINUTE),
                "properties": {"joinedAt": iso(T0 + 10 * MINUTE), "leftAt": iso(T0 + 50 * MINUTE)},
            },
        ]
    )
    assert cancelled_at_ms(database, "bob@example.com") == ms(T0 - timedelta(days=1))
    assert rows("cancel") == [
        {"vid": bob, "interactionDateTime": cancelled_at_ms(database, "bob@example.com"), "properties": {}}
    ]

    [complete] = sent(router, "complete")
    assert_headers(complete)
    assert (complete.method, complete.path, complete.params, complete.body) == (
        "POST",
        f"/marketing/v3/marketing-events/events/{WEBINAR}/complete",
        {"externalAccountId": ACCOUNT_ID},
        {"startDateTime": iso(T0), "endDateTime": iso(T0 + 60 * MINUTE)},
    )
    # The event exists before any state is set, and every state is in before it is completed.
    order = [c.request.url.path for c in router.calls]
    event_at = order.index(event.path)
    state_at = [i for i, p in enumerate(order) if "/attendance/" in p]
    assert event_at < min(state_at) and max(state_at) < order.index(complete.path)
    # No state for a contact that has no id yet: every vid is a contact id HubSpot returned.
    assert {i["vid"] for r in states for i in r.body["inputs"]} == {ann, bob, cara}
    assert {o.state for o in ops(database)} == {"done"}


# --------------------------------------------------------------------------------------------------
# Batching and partial failures
# --------------------------------------------------------------------------------------------------


async def test_250_contacts_go_in_three_upserts_of_at_most_100(
    database: Database, harness: Harness, router: respx.MockRouter
) -> None:
    prepare(database, crowd_webinar(250))
    await harness.drain()
    everyone = {f"person{i:03d}@example.com" for i in range(250)}

    upserts = sent(router, "upsert")
    sizes = [len(r.body["inputs"]) for r in upserts]
    assert len(upserts) == 3 and max(sizes) <= 100 and sum(sizes) == 250, sizes
    assert {i["id"] for r in upserts for i in r.body["inputs"]} == everyone
    for r in upserts:
        assert all(
            i["idProperty"] == "email" and i["properties"]["email"] == i["id"] for i in r.body["inputs"]
        )
    for route in ("read", "timeline", "attendance"):
        requests = sent(router, route)
        assert requests and all(len(r.body["inputs"]) <= 100 for r in requests), route
    assert {
        i["id"] for r in sent(router, "read") if r.params == {"archived": "false"} for i in r.body["inputs"]
    } == (everyone)
    assert sum(len(r.body["inputs"]) for r in sent(router, "timeline")) == 250
    assert {o.state for o in ops(database)} == {"done"}


@pytest.mark.parametrize("context_key", ["ids", "id"])
async def test_partial_upsert_error_retries_only_that_input(
    database: Database, harness: Harness, router: respx.MockRouter, fake: FakeHubSpot, context_key: str
) -> None:
    """207 with an error entry for bob: ann and cara are done; the next round sends bob alone.
    (`ids` is what the client reads; `id` is how the sandbox names the input.)"""
    prepare(database, small_webinar())

    def partial(request: httpx.Request) -> httpx.Response:
        body = {
            "status": "COMPLETE",
            "results": fake.upsert_results(request, skip=["bob@example.com"]),
            "numErrors": 1,
            "errors": [
                {
                    "status": "error",
                    "category": "VALIDATION_ERROR",
                    "message": "Property values were not valid",
                    "context": {context_key: ["bob@example.com"]},
                    "errors": [],
                    "links": {},
                }
            ],
        }
        return httpx.Response(207, json=body)

    fake.answer("upsert", partial)
    first = await harness.round()
    assert first.retried >= 1
    contact_ops = {o.email: o for o in ops(database, "contact_refresh")}
    assert (contact_ops["ann@example.com"].state, contact_ops["cara@example.com"].state) == ("done", "done")
    bob = contact_ops["bob@example.com"]
    assert (bob.state, bob.attempts) == ("pending", 1)
    assert bob.last_error is not None and "VALIDATION_ERROR" in bob.last_error

    await harness.drain()
    upserts = sent(router, "upsert")
    assert len(upserts) == 2
    assert upserts[0].body == {"inputs": [ANN_INPUT, BOB_INPUT, CARA_INPUT]}
    assert upserts[1].body == {"inputs": [BOB_INPUT]}  # only the input that failed, still "new"
    reads = sent(router, "read")
    assert reads[-2].body == read_body(["bob@example.com"])
    assert {o.state for o in ops(database)} == {"done"}
    assert "bob@example.com" in fake.contacts
    bob_events = [
        e
        for r in sent(router, "timeline")
        for e in r.body["inputs"]
        if e["objectId"] == fake.contacts["bob@example.com"]
    ]
    assert [e["eventTemplateId"] for e in bob_events] == ["t-reg"]


# --------------------------------------------------------------------------------------------------
# Failures
# --------------------------------------------------------------------------------------------------


def bad_request(request: httpx.Request) -> httpx.Response:
    return httpx.Response(
        400,
        json={
            "status": "error",
            "category": "VALIDATION_ERROR",
            "message": "Property values were not valid: zoom_webinar_attendance_count",
            "correlationId": "3c5b0d1e-0000-4000-8000-000000000001",
        },
    )


async def test_upsert_refused_ends_failed_after_max_attempts_with_audit(
    database: Database, harness: Harness, router: respx.MockRouter, fake: FakeHubSpot
) -> None:
    prepare(database, small_webinar())
    fake.always("upsert", bad_request)
    await harness.drain()

    assert len(sent(router, "upsert")) == 3  # DispatchConfig.max_attempts
    contact_ops = ops(database, "contact_refresh")
    assert len(contact_ops) == 3
    for op in contact_ops:
        assert (op.state, op.attempts) == ("failed", 3), op
        assert op.last_error is not None
        assert "400" in op.last_error and "VALIDATION_ERROR" in op.last_error
    # Cara exists in HubSpot, so her events still go on her contact. Nothing is sent for ann and bob
    # without a contact id; the work that needed one ends failed too, not dropped.
    assert {e["objectId"] for r in sent(router, "timeline") for e in r.body["inputs"]} == {CARA_ID}
    assert {i["vid"] for r in sent(router, "attendance") for i in r.body["inputs"]} == {int(CARA_ID)}
    for op in ops(database):
        if op.kind != "contact_refresh" and op.email in ("ann@example.com", "bob@example.com"):
            assert (op.state, op.attempts, op.last_error) == (
                "failed",
                3,
                "the contact was not written to HubSpot",
            ), op
    with Session(database.engine) as session:
        status = status_counts(session)
    assert status["pending"] == 0, status
    assert isinstance(status["failed"], int) and status["failed"] >= 3, status

    errors = [a for a in webinar_audit(database) if a.code == "sync_error"]
    assert errors, "no sync_error in the webinar's audit log"
    assert all(a.status == "error" for a in errors)
    assert {a.details["reason"] for a in errors} == {"contact_update_failed"}


async def test_failed_contact_write_is_in_the_webinar_audit_log(
    database: Database, harness: Harness, router: respx.MockRouter, fake: FakeHubSpot
) -> None:
    """A contact refresh that fails for good must show in the audit log of the webinar it was
    planned for (MISSION A1 (f) "contact property not updated"; CONTRACT §4 "visible in ... the
    audit log"), with HubSpot's error."""
    prepare(database, small_webinar())
    await harness.drain()
    assert {o.state for o in ops(database)} == {"done"}

    # A replay re-sends everything; this time HubSpot refuses the contact writes.
    fake.always("upsert", bad_request)
    replan(database)
    await harness.drain()
    contact_ops = ops(database, "contact_refresh")
    assert {(o.state, o.attempts) for o in contact_ops} == {("failed", 3)}

    entries = [
        a
        for a in webinar_audit(database)
        if a.code == "sync_error" and a.details.get("reason") == "contact_update_failed"
    ]
    with Session(database.engine) as session:
        unattached = session.exec(
            select(AuditEntry).where(AuditEntry.code == "sync_error", col(AuditEntry.webinar_id).is_(None))
        ).all()
    assert entries, (
        "the contact writes failed for good, yet the webinar's audit log has no sync_error for them; "
        f"the webinar's log: {[(a.code, a.details) for a in webinar_audit(database)]}; "
        f"sync_error entries with no webinar (no API shows them): {[a.details for a in unattached]}"
    )
    assert any("VALIDATION_ERROR" in (a.details.get("error") or "") for a in entries)


async def test_server_error_then_success_is_done_and_attempts_reset(
    database: Database, harness: Harness, router: respx.MockRouter, fake: FakeHubSpot
) -> None:
    prepare(database, small_webinar())

    def unavailable(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            503, json={"status": "error", "category": "SERVICE_UNAVAILABLE", "message": "down"}
        )

    fake.answer("upsert", unavailable)
    await harness.round()
    contact_ops = ops(database, "contact_refresh")
    assert {(o.state, o.attempts) for o in contact_ops} == {("pending", 1)}
    assert all(o.last_error and "503" in o.last_error for o in contact_ops)
    # Only cara (known to HubSpot, her id is known) has events yet; ann's and bob's wait for their ids.
    assert {e["objectId"] for r in sent(router, "timeline") for e in r.body["inputs"]} == {CARA_ID}

    await harness.drain()
    assert len(sent(router, "upsert")) == 2
    assert sent(router, "upsert")[1].body == {"inputs": [ANN_INPUT, BOB_INPUT, CARA_INPUT]}
    for op in ops(database):
        assert (op.state, op.attempts, op.last_error) == ("done", 0, None), op
    assert [a for a in webinar_audit(database) if a.code == "sync_error"] == []


# --------------------------------------------------------------------------------------------------
# Replays
# --------------------------------------------------------------------------------------------------


async def test_replay_sends_the_same_event_ids_and_a_conflict_is_success(
    database: Database, harness: Harness, router: respx.MockRouter, fake: FakeHubSpot
) -> None:
    prepare(database, small_webinar())
    await harness.drain()
    first = sent(router, "timeline")
    first_events = {(e["eventTemplateId"], e["objectId"]): e for r in first for e in r.body["inputs"]}
    calls_before = len(router.calls)

    # A replay does not re-send timeline events already delivered: they are immutable at HubSpot.
    replan(database)
    await harness.drain()
    assert sent(router, "timeline")[len(first) :] == []
    assert {o.state for o in ops(database)} == {"done"}

    # One whose answer was lost (kept as failed) is revived by the next replay and sent again with
    # the same id; HubSpot already has it and refuses it as a duplicate, which counts as success.
    with unit_of_work(database.engine) as session:
        session.execute(
            update(OutboxOp)
            .where(col(OutboxOp.kind).in_(["registration_event", "attendance_event"]))
            .values(state="failed", attempts=3, last_error="answer lost")
        )
    calls_before = len(router.calls)
    replan(database)
    assert {o.state for o in ops(database)} == {"pending"}
    await harness.drain()

    again = sent(router, "timeline")[len(first) :]
    assert again, "the replay sent no timeline events"
    replayed = {(e["eventTemplateId"], e["objectId"]): e for r in again for e in r.body["inputs"]}
    assert replayed == first_events  # same ids, same contacts, same tokens
    # HubSpot refused every one as a duplicate (207 CONFLICT): that is success, nothing retried.
    answers = [c.response for c in router.routes["timeline"].calls][len(first) :]
    assert answers and all(a is not None and a.status_code == 207 for a in answers)
    for answer in answers:
        assert answer is not None
        assert {e["category"] for e in answer.json()["errors"]} == {"CONFLICT"}
    for op in ops(database):
        assert (op.state, op.attempts, op.last_error) == ("done", 0, None), op
    assert [a for a in webinar_audit(database) if a.code == "sync_error"] == []

    # The replay's contact write: same values, and now that the contacts exist and their names are
    # set at HubSpot (Cara's last name by the first write), no names.
    replay_upserts = [c for c in router.calls[calls_before:] if c.request.url.path.endswith("/batch/upsert")]
    assert [json.loads(c.request.content) for c in replay_upserts] == [
        {"inputs": [without_names(ANN_INPUT), without_names(BOB_INPUT), without_names(CARA_INPUT)]}
    ]
    audit = {a.code: a for a in webinar_audit(database)}
    assert audit["hubspot_synced"].status == "success"


def test_event_id_depends_only_on_kind_webinar_and_email() -> None:
    """The replay test's premise: an id is a function of (kind, webinar, email) only."""
    a = event_id("zoom-reg", WEBINAR, "ann@example.com")
    assert a == event_id("zoom-reg", WEBINAR, "ann@example.com")
    assert a != event_id("zoom-att", WEBINAR, "ann@example.com")
    assert a != event_id("zoom-reg", WEBINAR, "bob@example.com")
    assert a != event_id("zoom-reg", "85000000002", "ann@example.com")
    assert re.fullmatch(rf"zoom-reg-{WEBINAR}-[0-9a-f]+", a) and "ann" not in a


# --------------------------------------------------------------------------------------------------
# Holding a person's values while Zoom's events still pour in
# --------------------------------------------------------------------------------------------------


def _unprocessed_zoom_event(database: Database) -> None:
    """A Zoom event stored and not yet processed (the worker is still in the middle of a burst)."""
    other = WebinarScenario(
        account_id=ACCOUNT_ID,
        webinar_id="85999999999",
        host_id="hostD",
        host_email=HOST_EMAIL,
        topic="x",
        start=T0,
    )
    other.register("later@example.com", "Later", "One", at=T0)
    store_events(database, other.envelopes)


async def test_person_values_wait_while_the_inbox_holds_events_then_go_once(
    database: Database, harness: Harness, router: respx.MockRouter
) -> None:
    prepare(database, small_webinar())
    _unprocessed_zoom_event(database)
    await harness.dispatcher.run_once()  # on the same clock: nothing has waited long
    person_routes = ("read", "upsert", "timeline", "attendance")
    assert {r: len(sent(router, r)) for r in person_routes} == dict.fromkeys(person_routes, 0)

    process_inbox(database)  # the burst is processed: the values are final for now
    await harness.drain()
    [upsert] = sent(router, "upsert")  # one write for the burst's contacts, not one per change
    assert {i["id"] for i in upsert.body["inputs"]} == {
        "ann@example.com",
        "bob@example.com",
        "cara@example.com",
        "later@example.com",
    }


async def test_held_values_go_anyway_after_the_hold_limit(
    database: Database, router: respx.MockRouter, http: httpx.AsyncClient, fake: FakeHubSpot
) -> None:
    harness = Harness(database, http, hold_max_s=30.0)
    prepare(database, small_webinar())
    _unprocessed_zoom_event(database)
    await harness.dispatcher.run_once()
    assert sent(router, "upsert") == []
    harness.clock.advance(timedelta(seconds=31))  # Zoom's events keep coming: values wait no longer
    await harness.dispatcher.run_once()
    assert len(sent(router, "upsert")) == 1


# --------------------------------------------------------------------------------------------------
# Leases: a killed worker's operations are free again within the lease; a long round keeps them
# --------------------------------------------------------------------------------------------------


async def test_a_killed_workers_operations_are_claimed_again_within_15_seconds(
    database: Database, http: httpx.AsyncClient, fake: FakeHubSpot
) -> None:
    prepare(database, small_webinar())
    killed = Harness(database, http)
    claimed = await asyncio.to_thread(killed.dispatcher._claim)  # claims, then dies before finishing
    assert claimed
    survivor = Harness(database, http)
    assert await asyncio.to_thread(survivor.dispatcher._claim) == []  # leased to the dead worker
    survivor.clock.advance(timedelta(seconds=15.5))
    again = await asyncio.to_thread(survivor.dispatcher._claim)
    assert {op.id for op in again} == {op.id for op in claimed}


async def test_a_long_round_renews_its_lease_and_stops_renewing_when_done(
    database: Database, http: httpx.AsyncClient, fake: FakeHubSpot
) -> None:
    prepare(database, small_webinar())
    worker = Harness(database, http, lease_s=0.3)
    ops = await asyncio.to_thread(worker.dispatcher._claim)
    done = asyncio.Event()
    heartbeat = asyncio.create_task(worker.dispatcher.leases.keep(ops, done))
    await asyncio.sleep(1.0)  # more than three leases: only renewals keep the operations
    other = Harness(database, http, lease_s=0.3)
    assert await asyncio.to_thread(other.dispatcher._claim) == []
    done.set()
    await heartbeat
    await asyncio.sleep(0.5)  # no renewal after the round: the lease runs out
    assert {op.id for op in await asyncio.to_thread(other.dispatcher._claim)} == {op.id for op in ops}
